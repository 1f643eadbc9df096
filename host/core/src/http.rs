//! A small HTTP/1.1 + HTTP/2 server on hyper, shared by the metrics endpoint, `health_check`
//! and the OTLP/HTTP receiver; plaintext, or over whatever stream a [`Handshake`] makes of
//! each connection (the receiver's TLS).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};

use crate::Tasks;

use crate::conn_limits::{Acceptor, ConnActivity, idle_expired};
pub use crate::conn_limits::{ReadDeadline, ServerLimits, TimeoutKeys};

/// A request handler.
pub type Handler = Arc<
    dyn Fn(
            http::Request<Incoming>,
        ) -> Pin<Box<dyn Future<Output = http::Response<Full<Bytes>>> + Send>>
        + Send
        + Sync,
>;

/// Turns an accepted connection (and its peer) into the stream HTTP is served on, such as
/// a TLS handshake; `None` drops the connection (the handshake logs why). It runs in the
/// connection's own task, so a slow peer holds up nobody else, and is abandoned at stop.
pub type Handshake<IO> = Arc<
    dyn Fn(TcpStream, SocketAddr) -> Pin<Box<dyn Future<Output = Option<IO>> + Send>> + Send + Sync,
>;

/// A [`Handshake`] from an async function.
pub fn handshake<IO, F, Fut>(f: F) -> Handshake<IO>
where
    F: Fn(TcpStream, SocketAddr) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Option<IO>> + Send + 'static,
{
    Arc::new(
        move |tcp: TcpStream,
              peer: SocketAddr|
              -> Pin<Box<dyn Future<Output = Option<IO>> + Send>> {
            Box::pin(f(tcp, peer))
        },
    )
}

/// Binds `endpoint` (`host:port`; `localhost` resolves to the loopback addresses).
pub async fn bind(endpoint: &str) -> std::io::Result<TcpListener> {
    let endpoint = endpoint.strip_prefix("http://").unwrap_or(endpoint);
    let mut last = None;
    for addr in tokio::net::lookup_host(endpoint).await? {
        match TcpListener::bind(addr).await {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::AddrNotAvailable,
            format!("{endpoint} resolves to no address"),
        )
    }))
}

/// A running server; stops accepting on [`HttpServer::stop`] and lets open requests finish.
/// Its accept loop, connections and HTTP/2 streams are tasks of a child of the owner's
/// [`Tasks`], so the service waits for them and bounds them by its shutdown deadline.
pub struct HttpServer {
    local_addr: SocketAddr,
    tasks: Tasks,
}

/// Runs hyper's HTTP/2 stream tasks as tracked tasks.
#[derive(Clone)]
struct TasksExecutor(Tasks);

impl<F> hyper::rt::Executor<F> for TasksExecutor
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, fut: F) {
        self.0.spawn(fut);
    }
}

impl HttpServer {
    /// Serves `handler` on `listener` with the default [`ServerLimits`], spawning through a
    /// child set of `tasks`.
    pub fn start(
        listener: TcpListener,
        handler: Handler,
        tasks: &Tasks,
    ) -> std::io::Result<HttpServer> {
        Self::start_with(listener, handler, ServerLimits::default(), tasks)
    }

    /// Serves `handler` on `listener` within `limits`, spawning through a child set of
    /// `tasks`.
    pub fn start_with(
        listener: TcpListener,
        handler: Handler,
        limits: ServerLimits,
        tasks: &Tasks,
    ) -> std::io::Result<HttpServer> {
        let plain = handshake(|tcp, _| std::future::ready(Some(tcp)));
        Self::start_over(listener, handler, limits, plain, tasks)
    }

    /// Serves `handler` within `limits` on the streams `handshake` makes of the connections
    /// `listener` accepts, spawning through a child set of `tasks`.
    pub fn start_over<IO>(
        listener: TcpListener,
        handler: Handler,
        limits: ServerLimits,
        handshake: Handshake<IO>,
        tasks: &Tasks,
    ) -> std::io::Result<HttpServer>
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let local_addr = listener.local_addr()?;
        let tasks = tasks.child();
        let t = tasks.clone();
        let acceptor = Acceptor::new(listener, limits.max_connections);
        tasks.spawn(async move {
            let stop = t.token();
            loop {
                let (stream, peer, slot) = tokio::select! {
                    _ = stop.cancelled() => break,
                    r = acceptor.accept() => r,
                };
                let _ = stream.set_nodelay(true);
                let (h, conn_tasks, hs) = (handler.clone(), t.clone(), handshake.clone());
                t.spawn(async move {
                    let stop = conn_tasks.token();
                    let io = tokio::select! {
                        _ = stop.cancelled() => None,
                        io = hs(stream, peer) => io,
                    };
                    if let Some(io) = io {
                        serve_connection(io, h, limits, conn_tasks).await;
                    }
                    drop(slot);
                });
            }
        });
        Ok(HttpServer { local_addr, tasks })
    }

    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting new connections and asks open ones to close after their current
    /// request; returns at once. A receiver uses this so requests that wait on a batch being
    /// flushed during shutdown can still be answered.
    pub fn stop_accepting(&self) {
        self.tasks.token().cancel();
    }

    /// Waits until every connection is closed, up to the shutdown deadline; returns whether
    /// they all closed.
    pub async fn wait(&self) -> bool {
        self.tasks.wait_by_deadline().await
    }

    /// Stops accepting, finishes open requests (until the shutdown deadline), and returns.
    pub async fn stop(&self) -> bool {
        self.stop_accepting();
        self.wait().await
    }
}

/// Serves one connection until it ends or is idle for `idle_timeout`; when stop is asked it
/// finishes the request in progress, by the shutdown deadline at the latest.
async fn serve_connection<IO: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    stream: IO,
    handler: Handler,
    limits: ServerLimits,
    tasks: Tasks,
) {
    let activity = Arc::new(ConnActivity::default());
    let act = activity.clone();
    let handler_tasks = tasks.clone();
    let svc = hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
        let h = handler.clone();
        let guard = act.begin();
        if let Some(t) = limits.read_timeout {
            req.extensions_mut()
                .insert(ReadDeadline(tokio::time::Instant::now() + t));
        }
        let (write_timeout, spawner) = (limits.write_timeout, handler_tasks.clone());
        async move {
            let res = match write_timeout {
                None => h(req).await,
                Some(limit) => {
                    // Go's WriteTimeout closes the connection but lets the handler finish, so
                    // work it began (enqueueing a batch) is not cut short: run it as its own
                    // task and stop waiting for it, not the task itself.
                    let handle = spawner.spawn(h(req));
                    match tokio::time::timeout(limit, handle).await {
                        Ok(Ok(res)) => res,
                        Ok(Err(e)) => return Err(ServeError::Handler(e)),
                        Err(_) => return Err(ServeError::WriteTimeout(limit)),
                    }
                }
            };
            drop(guard);
            Ok::<_, ServeError>(res)
        }
    });
    let mut builder = hyper_util::server::conn::auto::Builder::new(TasksExecutor(tasks.clone()));
    // hyper runs its header timeout only with a timer; it also times the wait for the next
    // request on a keep-alive connection.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.read_header_timeout)
        .keep_alive(limits.keep_alive);
    builder.http2().timer(TokioTimer::new());
    let conn = builder.serve_connection(TokioIo::new(stream), svc);
    tokio::pin!(conn);
    let stop = tasks.token();
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = idle_expired(&activity, limits.idle_timeout) => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(1), conn).await;
        }
        _ = stop.cancelled() => {
            conn.as_mut().graceful_shutdown();
            match tasks.deadline() {
                Some(at) => {
                    let _ = tokio::time::timeout_at(at, conn).await;
                }
                None => {
                    let _ = conn.await;
                }
            }
        }
    }
}

/// Why a request got no response; hyper closes its connection.
#[derive(Debug, thiserror::Error)]
enum ServeError {
    /// `write_timeout` ran out before the handler answered.
    #[error("no response within write_timeout ({0:?})")]
    WriteTimeout(Duration),
    /// The handler's task ended without an answer (cancelled at shutdown).
    #[error("the request handler ended without a response: {0}")]
    Handler(tokio::task::JoinError),
}

/// A plain response.
pub fn response(
    status: http::StatusCode,
    content_type: &str,
    body: impl Into<Bytes>,
) -> http::Response<Full<Bytes>> {
    let mut r = http::Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    if let Ok(v) = http::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    r
}
