//! The OTLP exporters. Each provides a [`wasmcol_core::Sender`] (one attempt) and its
//! exporterhelper settings; the registry's chain adds the queue, retries and timeout.

pub mod grpc;
pub mod http;

use prost::Message;

/// `partial_success` of any `Export*ServiceResponse`: the fields share numbers across signals
/// (1: rejected count, 2: error message), so one type decodes all three.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct ExportResponse {
    #[prost(message, optional, tag = "1")]
    pub partial_success: Option<PartialSuccess>,
}

#[derive(Clone, PartialEq, Message)]
pub(crate) struct PartialSuccess {
    #[prost(int64, tag = "1")]
    pub rejected: i64,
    #[prost(string, tag = "2")]
    pub error_message: String,
}

/// Logs a partial success the way upstream does; it still counts as success (no retry).
pub(crate) fn log_partial_success(exporter: &str, resp: &ExportResponse) {
    if let Some(p) = &resp.partial_success
        && (p.rejected != 0 || !p.error_message.is_empty())
    {
        tracing::warn!(exporter, dropped = p.rejected, message = %p.error_message, "Partial success response");
    }
}
