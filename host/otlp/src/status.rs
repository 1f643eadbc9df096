//! Mapping between the core's [`ConsumeError`] and gRPC / HTTP statuses, both ways.

use std::time::Duration;

use prost::Message;
use wasmcol_core::{BackendStatus, ConsumeError, MAX_RETRY_HINT, PermanentError};

/// `google.rpc.Status`, the error body of OTLP/HTTP responses.
#[derive(Clone, PartialEq, Message)]
pub struct RpcStatus {
    /// A `google.rpc.Code`.
    #[prost(int32, tag = "1")]
    pub code: i32,
    /// Developer-facing message.
    #[prost(string, tag = "2")]
    pub message: String,
    /// Details (`RetryInfo`, ...).
    #[prost(message, repeated, tag = "3")]
    pub details: Vec<prost_types::Any>,
}

/// The gRPC status a receiver answers for a pipeline error (upstream `GetStatusFromError`,
/// plus a `RetryInfo` detail when the error carries a delay).
pub fn grpc_status(e: &ConsumeError) -> tonic::Status {
    use tonic_types::{ErrorDetails, StatusExt};
    match e {
        // Data a processor fails on every time is the client's problem, like a malformed
        // request; other permanent errors are the collector's or the backend's (upstream
        // answers Internal for a permanent error without a gRPC status).
        ConsumeError::Permanent(m) if m.is_invalid_data() => {
            tonic::Status::invalid_argument(m.to_string())
        }
        ConsumeError::Permanent(m) => tonic::Status::internal(m.to_string()),
        ConsumeError::Retryable {
            message,
            retry_after: Some(d),
        } => tonic::Status::with_error_details(
            tonic::Code::Unavailable,
            message.clone(),
            ErrorDetails::with_retry_info(Some(*d)),
        ),
        ConsumeError::Retryable {
            message,
            retry_after: None,
        } => tonic::Status::unavailable(message.clone()),
        ConsumeError::ShuttingDown => tonic::Status::unavailable(e.to_string()),
    }
}

/// Upstream `GetHTTPStatusCodeFromStatus`.
pub fn http_code_for_grpc(code: tonic::Code) -> http::StatusCode {
    use tonic::Code::*;
    match code {
        Ok => http::StatusCode::OK,
        Cancelled | DeadlineExceeded | Aborted | OutOfRange | Unavailable | DataLoss => {
            http::StatusCode::SERVICE_UNAVAILABLE
        }
        ResourceExhausted => http::StatusCode::TOO_MANY_REQUESTS,
        InvalidArgument => http::StatusCode::BAD_REQUEST,
        Unauthenticated => http::StatusCode::UNAUTHORIZED,
        PermissionDenied => http::StatusCode::FORBIDDEN,
        Unimplemented => http::StatusCode::NOT_FOUND,
        _ => http::StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// How an exporter classifies a gRPC status from the backend (upstream `shouldRetry`).
pub fn classify_grpc(status: &tonic::Status) -> ConsumeError {
    use tonic::Code::*;
    use tonic_types::StatusExt;
    let retry_after = status
        .get_details_retry_info()
        .and_then(|r| r.retry_delay)
        .map(|d| d.min(MAX_RETRY_HINT));
    let message = format!(
        "rpc error: code = {:?} desc = {}",
        status.code(),
        status.message()
    );
    match status.code() {
        Cancelled | DeadlineExceeded | Aborted | OutOfRange | Unavailable | DataLoss => {
            ConsumeError::Retryable {
                message,
                retry_after: retry_after.filter(|d| !d.is_zero()),
            }
        }
        // Retryable only when the server says when (upstream); otherwise it is a hard refusal.
        ResourceExhausted if retry_after.is_some() => ConsumeError::Retryable {
            message,
            retry_after,
        },
        code => ConsumeError::Permanent(PermanentError::Rejected {
            status: BackendStatus::Grpc(code as i32),
            message,
        }),
    }
}

/// How an exporter classifies an HTTP status from the backend: 429, 502, 503, 504 retry.
pub fn classify_http(
    status: http::StatusCode,
    retry_after: Option<Duration>,
    message: String,
) -> ConsumeError {
    match status.as_u16() {
        429 | 502 | 503 | 504 => ConsumeError::Retryable {
            message,
            retry_after,
        },
        code => ConsumeError::Permanent(PermanentError::Rejected {
            status: BackendStatus::Http(code),
            message,
        }),
    }
}

/// Parses a `Retry-After` header: integer seconds or an HTTP date, at most
/// [`MAX_RETRY_HINT`]. A number too large for `u64` is a far-future hint too.
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        let secs = v.parse::<u64>().unwrap_or(u64::MAX);
        return Some(Duration::from_secs(secs).min(MAX_RETRY_HINT));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO)
            .min(MAX_RETRY_HINT),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_classification_matches_upstream() {
        assert!(classify_grpc(&tonic::Status::unavailable("x")).is_retryable());
        assert!(!classify_grpc(&tonic::Status::resource_exhausted("x")).is_retryable());
        assert!(!classify_grpc(&tonic::Status::invalid_argument("x")).is_retryable());
        let s = grpc_status(&ConsumeError::retry_after("full", Duration::from_secs(3)));
        assert_eq!(s.code(), tonic::Code::Unavailable);
        assert_eq!(
            classify_grpc(&s).retry_delay(),
            Some(Duration::from_secs(3))
        );
        let s = <tonic::Status as tonic_types::StatusExt>::with_error_details(
            tonic::Code::ResourceExhausted,
            "slow down",
            tonic_types::ErrorDetails::with_retry_info(Some(Duration::from_secs(2))),
        );
        assert_eq!(
            classify_grpc(&s).retry_delay(),
            Some(Duration::from_secs(2))
        );
        let s = grpc_status(&ConsumeError::retry_after("later", Duration::MAX));
        assert_eq!(classify_grpc(&s).retry_delay(), Some(MAX_RETRY_HINT));
    }

    #[test]
    fn http_classification_and_retry_after() {
        assert!(
            classify_http(http::StatusCode::SERVICE_UNAVAILABLE, None, String::new())
                .is_retryable()
        );
        assert!(
            !classify_http(http::StatusCode::INTERNAL_SERVER_ERROR, None, String::new())
                .is_retryable()
        );
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT").is_some());
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(
            parse_retry_after("18446744073709551615"),
            Some(MAX_RETRY_HINT)
        );
        assert_eq!(
            parse_retry_after("99999999999999999999999"),
            Some(MAX_RETRY_HINT)
        );
        assert_eq!(
            parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT"),
            Some(MAX_RETRY_HINT)
        );
        assert_eq!(http_code_for_grpc(tonic::Code::ResourceExhausted), 429);
    }

    #[test]
    fn invalid_data_is_invalid_argument_other_permanent_errors_internal() {
        let bad = ConsumeError::Permanent(
            PermanentError::InvalidData {
                processor: "wasm/p".into(),
                reason: "trap".into(),
            }
            .context("fan-out"),
        );
        let s = grpc_status(&bad);
        assert_eq!(s.code(), tonic::Code::InvalidArgument);
        assert_eq!(http_code_for_grpc(s.code()), 400);
        assert!(s.message().contains("processor wasm/p"), "{}", s.message());
        let other = grpc_status(&ConsumeError::permanent("backend said no"));
        assert_eq!(other.code(), tonic::Code::Internal);
    }
}
