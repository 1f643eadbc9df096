//! OTLP over gRPC and HTTP: the `otlp` receiver and the `otlp_grpc` (`otlp`) and
//! `otlp_http` (`otlphttp`) exporters.
//!
//! Both directions move protobuf bytes without decoding them when nothing needs to look
//! inside: the gRPC side uses a bytes codec instead of prost, the receiver validates and
//! counts with a non-allocating walk, and the exporters send [`wasmcol_pdata::Batch::encoded`],
//! which is the received buffer itself when no processor changed the batch.

#![forbid(unsafe_code)]

mod codec;
pub mod compression;
pub mod exporter;
pub mod receiver;
mod status;
pub mod tls;

use std::sync::Arc;

use wasmcol_core::Registry;
use wasmcol_core::registry::Factory;

pub use codec::BytesCodec;
pub use status::RpcStatus;

/// gRPC method paths of the three OTLP services.
pub fn grpc_path(signal: wasmcol_pdata::Signal) -> &'static str {
    match signal {
        wasmcol_pdata::Signal::Traces => {
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
        }
        wasmcol_pdata::Signal::Metrics => {
            "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"
        }
        wasmcol_pdata::Signal::Logs => "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
    }
}

/// Registers the OTLP receiver and exporters.
pub fn register(r: &mut Registry) {
    r.register(
        "otlp",
        &[],
        "OTLP receiver: gRPC and HTTP, protobuf and JSON, gzip/zstd/deflate",
        Factory::Receiver(Arc::new(receiver::OtlpReceiverFactory)),
    );
    r.register(
        "otlp_grpc",
        &["otlp"],
        "OTLP/gRPC exporter",
        Factory::Exporter(Arc::new(exporter::grpc::OtlpGrpcExporterFactory)),
    );
    r.register(
        "otlp_http",
        &["otlphttp"],
        "OTLP/HTTP exporter (protobuf or JSON)",
        Factory::Exporter(Arc::new(exporter::http::OtlpHttpExporterFactory)),
    );
}
