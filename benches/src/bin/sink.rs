//! A counting OTLP/gRPC sink: receives, decodes every request with prost (the floor a
//! forwarder is compared against) and counts spans. `GET /count` on the HTTP port returns
//! the number of spans received.
//!
//! `sink --grpc 127.0.0.1:0 --http 127.0.0.1:0` prints `grpc=ADDR http=ADDR` when ready.

#![forbid(unsafe_code)]

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use clap::Parser;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use tonic::codegen::{BoxFuture, StdError};
use tonic::server::{NamedService, UnaryService};

#[derive(Parser)]
struct Args {
    /// gRPC listen address.
    #[arg(long, default_value = "127.0.0.1:0")]
    grpc: String,
    /// HTTP listen address for `/count`.
    #[arg(long, default_value = "127.0.0.1:0")]
    http: String,
    /// Count only, without decoding (to measure transport cost alone).
    #[arg(long)]
    no_decode: bool,
}

#[derive(Clone)]
struct Sink {
    spans: Arc<AtomicU64>,
    decode: bool,
}

impl NamedService for Sink {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
}

struct Export(Sink);

impl UnaryService<Bytes> for Export {
    type Response = Bytes;
    type Future = BoxFuture<tonic::Response<Bytes>, tonic::Status>;
    fn call(&mut self, req: tonic::Request<Bytes>) -> Self::Future {
        let sink = self.0.clone();
        Box::pin(async move {
            let body = req.into_inner();
            let n = if sink.decode {
                let r = ExportTraceServiceRequest::decode(body)
                    .map_err(|e| tonic::Status::invalid_argument(e.to_string()))?;
                r.resource_spans
                    .iter()
                    .flat_map(|r| &r.scope_spans)
                    .map(|s| s.spans.len() as u64)
                    .sum()
            } else {
                wasmcol_pdata::TracesBatch::from_encoded(body)
                    .map_err(|e| tonic::Status::invalid_argument(e.to_string()))?
                    .item_count() as u64
            };
            sink.spans.fetch_add(n, Ordering::Relaxed);
            Ok(tonic::Response::new(Bytes::new()))
        })
    }
}

impl<B> tower_service::Service<http::Request<B>> for Sink
where
    B: http_body::Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let sink = self.clone();
        Box::pin(async move {
            let mut accept = tonic::codec::EnabledCompressionEncodings::default();
            accept.enable(tonic::codec::CompressionEncoding::Gzip);
            accept.enable(tonic::codec::CompressionEncoding::Zstd);
            let mut grpc = tonic::server::Grpc::new(wasmcol_otlp::BytesCodec)
                .apply_compression_config(accept, Default::default())
                .apply_max_message_size_config(Some(256 << 20), None);
            Ok(grpc.unary(Export(sink), req).await)
        })
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let spans = Arc::new(AtomicU64::new(0));
    let sink = Sink {
        spans: spans.clone(),
        decode: !a.no_decode,
    };
    let grpc = tokio::net::TcpListener::bind(&a.grpc).await?;
    let grpc_addr = grpc.local_addr()?;
    let http = wasmcol_core::http::bind(&a.http).await?;
    let counter = spans.clone();
    let handler: wasmcol_core::http::Handler = Arc::new(move |_req| {
        let n = counter.load(Ordering::Relaxed);
        Box::pin(async move {
            wasmcol_core::http::response(http::StatusCode::OK, "text/plain", n.to_string())
        })
    });
    let tasks = wasmcol_core::Tasks::new();
    let http_server = wasmcol_core::http::HttpServer::start(http, handler, &tasks)?;
    println!("grpc={grpc_addr} http={}", http_server.local_addr());
    tonic::transport::Server::builder()
        .initial_stream_window_size(Some(4 << 20))
        .initial_connection_window_size(Some(16 << 20))
        .add_service(sink)
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(grpc),
            async {
                let _ = tokio::signal::ctrl_c().await;
            },
        )
        .await?;
    Ok(())
}
