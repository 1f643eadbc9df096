//! OTLP/gRPC: three tonic services over the bytes codec.

use std::convert::Infallible;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio_util::sync::CancellationToken;
use tonic::codec::{CompressionEncoding, EnabledCompressionEncodings};
use tonic::codegen::{BoxFuture, StdError};
use tonic::server::{NamedService, UnaryService};
use wasmcol_core::Batch;
use wasmcol_pdata::Signal;

use super::{GrpcServerConfig, Ingest};
use crate::BytesCodec;
use crate::status::grpc_status;

/// Ties a service type to its OTLP service name and signal.
pub(crate) trait OtlpSignal: Send + Sync + 'static {
    const NAME: &'static str;
    const SIGNAL: Signal;
}

pub(crate) struct TracesSvc;
pub(crate) struct MetricsSvc;
pub(crate) struct LogsSvc;

impl OtlpSignal for TracesSvc {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
    const SIGNAL: Signal = Signal::Traces;
}
impl OtlpSignal for MetricsSvc {
    const NAME: &'static str = "opentelemetry.proto.collector.metrics.v1.MetricsService";
    const SIGNAL: Signal = Signal::Metrics;
}
impl OtlpSignal for LogsSvc {
    const NAME: &'static str = "opentelemetry.proto.collector.logs.v1.LogsService";
    const SIGNAL: Signal = Signal::Logs;
}

struct OtlpService<S> {
    ingest: Arc<Ingest>,
    max_message: usize,
    _signal: PhantomData<fn() -> S>,
}

impl<S> Clone for OtlpService<S> {
    fn clone(&self) -> Self {
        OtlpService {
            ingest: self.ingest.clone(),
            max_message: self.max_message,
            _signal: PhantomData,
        }
    }
}

impl<S: OtlpSignal> NamedService for OtlpService<S> {
    const NAME: &'static str = S::NAME;
}

struct Export<S> {
    ingest: Arc<Ingest>,
    _signal: PhantomData<fn() -> S>,
}

impl<S: OtlpSignal> UnaryService<Bytes> for Export<S> {
    type Response = Bytes;
    type Future = BoxFuture<tonic::Response<Bytes>, tonic::Status>;

    fn call(&mut self, request: tonic::Request<Bytes>) -> Self::Future {
        let ingest = self.ingest.clone();
        Box::pin(async move {
            let batch = Batch::from_encoded(S::SIGNAL, request.into_inner())
                .map_err(|e| tonic::Status::invalid_argument(e.to_string()))?;
            match ingest.push("grpc", batch).await {
                // An empty Export*ServiceResponse encodes to zero bytes.
                Ok(()) => Ok(tonic::Response::new(Bytes::new())),
                Err(e) => Err(grpc_status(&e)),
            }
        })
    }
}

impl<S, B> tower::Service<http::Request<B>> for OtlpService<S>
where
    S: OtlpSignal,
    B: http_body::Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let ingest = self.ingest.clone();
        let max = self.max_message;
        let known = req.uri().path() == crate::grpc_path(S::SIGNAL);
        Box::pin(async move {
            if !known || !ingest.serves(S::SIGNAL) {
                return Ok(tonic::Status::unimplemented("unknown method").into_http());
            }
            let mut accept = EnabledCompressionEncodings::default();
            accept.enable(CompressionEncoding::Gzip);
            accept.enable(CompressionEncoding::Zstd);
            accept.enable(CompressionEncoding::Deflate);
            let mut grpc = tonic::server::Grpc::new(BytesCodec)
                .apply_compression_config(accept, EnabledCompressionEncodings::default())
                .apply_max_message_size_config(Some(max), None);
            let mut res = grpc
                .unary(
                    Export::<S> {
                        ingest,
                        _signal: PhantomData,
                    },
                    req,
                )
                .await;
            // tonic answers an over-limit message with OUT_OF_RANGE, which OTLP clients treat as
            // retryable; grpc-go (and so upstream) answers RESOURCE_EXHAUSTED, which they do not.
            let out_of_range = http::HeaderValue::from(tonic::Code::OutOfRange as i32);
            if res.headers().get(tonic::Status::GRPC_STATUS) == Some(&out_of_range) {
                res.headers_mut().insert(
                    tonic::Status::GRPC_STATUS,
                    http::HeaderValue::from(tonic::Code::ResourceExhausted as i32),
                );
            }
            Ok(res)
        })
    }
}

fn svc<S: OtlpSignal>(ingest: &Arc<Ingest>, max: usize) -> OtlpService<S> {
    OtlpService {
        ingest: ingest.clone(),
        max_message: max,
        _signal: PhantomData,
    }
}

/// A running gRPC server.
pub(crate) struct GrpcServer {
    local_addr: SocketAddr,
    cancel: CancellationToken,
    task: parking_lot::Mutex<Option<tokio::task::JoinHandle<Result<(), tonic::transport::Error>>>>,
}

impl GrpcServer {
    pub(crate) async fn start(
        cfg: &GrpcServerConfig,
        ingest: Arc<Ingest>,
    ) -> Result<GrpcServer, String> {
        let listener = wasmcol_core::http::bind(&cfg.endpoint)
            .await
            .map_err(|e| e.to_string())?;
        let local_addr = listener.local_addr().map_err(|e| e.to_string())?;
        let max = if cfg.max_recv_msg_size_mib > 0 {
            (cfg.max_recv_msg_size_mib as usize) << 20
        } else {
            4 << 20
        };
        // Large windows: OTLP messages are often hundreds of KiB, and h2's 64 KiB default
        // window costs a WINDOW_UPDATE round per 64 KiB.
        let mut builder = tonic::transport::Server::builder()
            .initial_stream_window_size(Some(4 << 20))
            .initial_connection_window_size(Some(16 << 20));
        if let Some(tls) = &cfg.tls {
            let pem = tls.load()?;
            let mut t = tonic::transport::ServerTlsConfig::new()
                .identity(tonic::transport::Identity::from_pem(pem.cert, pem.key));
            if let Some(ca) = pem.client_ca {
                t = t.client_ca_root(tonic::transport::Certificate::from_pem(ca));
            }
            builder = builder.tls_config(t).map_err(|e| format!("tls: {e}"))?;
        }
        if cfg.max_concurrent_streams > 0 {
            builder = builder.max_concurrent_streams(Some(cfg.max_concurrent_streams));
        }
        if let Some(sp) = cfg
            .keepalive
            .as_ref()
            .and_then(|k| k.server_parameters.as_ref())
        {
            if let Some(t) = sp.time.filter(|t| !t.is_zero()) {
                builder = builder.http2_keepalive_interval(Some(t.into()));
            }
            if let Some(t) = sp.timeout.filter(|t| !t.is_zero()) {
                builder = builder.http2_keepalive_timeout(Some(t.into()));
            }
        }
        let router = builder
            .add_service(svc::<TracesSvc>(&ingest, max))
            .add_service(svc::<MetricsSvc>(&ingest, max))
            .add_service(svc::<LogsSvc>(&ingest, max));
        let cancel = CancellationToken::new();
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let task = tokio::spawn(
            router.serve_with_incoming_shutdown(incoming, cancel.clone().cancelled_owned()),
        );
        Ok(GrpcServer {
            local_addr,
            cancel,
            task: parking_lot::Mutex::new(Some(task)),
        })
    }

    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting new connections; in-flight calls go on.
    pub(crate) fn stop_accepting(&self) {
        self.cancel.cancel();
    }

    /// Waits (bounded) for in-flight calls to finish.
    pub(crate) async fn wait(&self) {
        let task = self.task.lock().take();
        if let Some(t) = task {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
    }
}
