//! OTLP/gRPC: three tonic services over the bytes codec.

use std::convert::Infallible;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tonic::codec::{CompressionEncoding, EnabledCompressionEncodings};
use tonic::codegen::{BoxFuture, StdError};
use tonic::server::{NamedService, UnaryService};
use wasmcol_core::{Batch, Tasks};
use wasmcol_pdata::Signal;

use super::{GrpcServerConfig, Ingest};
use crate::BytesCodec;
use crate::receiver::limits::{ConnInfo, LimitedConn, h2_limits, plain_incoming};
use crate::status::grpc_status;
use crate::tls::ServerTlsConfig;
use wasmcol_core::conn_limits::{Acceptor, default_max_connections};

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
            let (metadata, _, body) = request.into_parts();
            let mut batch = Batch::from_encoded(S::SIGNAL, body)
                .map_err(|e| tonic::Status::invalid_argument(e.to_string()))?;
            if ingest.reads_headers("grpc") {
                batch = ingest
                    .admit("grpc", &metadata.into_headers(), batch)
                    .map_err(tonic::Status::unauthenticated)?;
            }
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
        // The connection is busy while a call runs (for `max_connection_idle`).
        let busy = req
            .extensions()
            .get::<ConnInfo>()
            .map(|c| c.activity.begin());
        Box::pin(async move {
            let _busy = busy;
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

/// A running gRPC server. The server, the TLS accept loop and each handshake are tasks of a
/// child of the receiver's task set. tonic runs each connection in a task of its own; the
/// server task waits for those after stop (graceful shutdown), so waiting for it covers them.
pub(crate) struct GrpcServer {
    local_addr: SocketAddr,
    tasks: Tasks,
}

impl GrpcServer {
    pub(crate) async fn start(
        cfg: &GrpcServerConfig,
        tls: Option<ServerTlsConfig>,
        ingest: Arc<Ingest>,
        tasks: &Tasks,
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
        builder = h2_limits(builder, cfg);
        let mut idle = None;
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
            if let Some(t) = sp.max_connection_age.filter(|t| !t.is_zero()) {
                builder = builder.max_connection_age(t.into());
            }
            if let Some(t) = sp.max_connection_age_grace.filter(|t| !t.is_zero()) {
                builder = builder.max_connection_age_grace(t.into());
            }
            idle = sp
                .max_connection_idle
                .filter(|t| !t.is_zero())
                .map(Into::into);
        }
        let acceptor = Acceptor::new(listener, default_max_connections());
        let router = builder
            .add_service(svc::<TracesSvc>(&ingest, max))
            .add_service(svc::<MetricsSvc>(&ingest, max))
            .add_service(svc::<LogsSvc>(&ingest, max));
        let tasks = tasks.child();
        let stop = tasks.token().cancelled_owned();
        // TLS is terminated here rather than by tonic's `tls_config`, which drops failed
        // handshakes silently (an operator needs to see which client was refused and why)
        // and cannot swap certificates.
        match tls {
            Some(tls) => {
                let incoming = tls_incoming(acceptor, tls, local_addr, &tasks, idle);
                tasks.spawn(router.serve_with_incoming_shutdown(incoming, stop));
            }
            None => {
                let incoming = plain_incoming(acceptor, idle);
                tasks.spawn(router.serve_with_incoming_shutdown(incoming, stop));
            }
        }
        Ok(GrpcServer { local_addr, tasks })
    }

    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting new connections; in-flight calls go on.
    pub(crate) fn stop_accepting(&self) {
        self.tasks.token().cancel();
    }
}

/// Accepts TCP connections and completes their TLS handshakes concurrently (a slow or
/// silent client does not hold up the others); yields the established connections.
fn tls_incoming(
    listener: Acceptor,
    tls: ServerTlsConfig,
    local: SocketAddr,
    tasks: &Tasks,
    idle: Option<Duration>,
) -> tokio_stream::wrappers::ReceiverStream<std::io::Result<LimitedConn<TlsConn>>> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let t = tasks.clone();
    tasks.spawn(async move {
        let cancel = t.token();
        loop {
            let (tcp, peer, slot) = tokio::select! {
                _ = cancel.cancelled() => break,
                c = listener.accept() => c,
            };
            let _ = tcp.set_nodelay(true);
            let (tls, tx, cancel) = (tls.clone(), tx.clone(), cancel.clone());
            t.spawn(async move {
                // A handshake still going on at shutdown is dropped with its connection.
                let outcome = tokio::select! {
                    _ = cancel.cancelled() => return,
                    o = tls.accept(tcp, peer, local) => o,
                };
                if let Some(stream) = outcome {
                    let conn = LimitedConn::new(TlsConn(stream), slot, idle);
                    let _ = tx.send(Ok(conn)).await;
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

/// A server-side TLS connection that tonic can serve (tonic's own `Connected` impl for TLS
/// streams needs a feature this workspace does not enable).
struct TlsConn(tokio_rustls::server::TlsStream<tokio::net::TcpStream>);

impl tonic::transport::server::Connected for TlsConn {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.0.get_ref().0.connect_info()
    }
}

impl tokio::io::AsyncRead for TlsConn {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for TlsConn {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }
}
