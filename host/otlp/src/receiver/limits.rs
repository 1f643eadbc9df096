//! Connection limits of the gRPC receiver: the listener's connection cap, HTTP/2 stream
//! limits, and `keepalive.server_parameters.max_connection_idle`, which tonic does not
//! offer: a connection with no call in flight for that long is closed (the read side
//! reports end of stream, so hyper tears the connection down).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::{Instant, Sleep};
use tonic::transport::server::{Connected, TcpConnectInfo};
use wasmcol_core::conn_limits::{Acceptor, ConnActivity};

use super::GrpcServerConfig;

/// Concurrent streams per connection when `max_concurrent_streams` is 0 or absent (gRPC's
/// recommended minimum; grpc-go's unlimited default lets one peer open any number of
/// streams, each with a 4 MiB window).
pub(crate) const DEFAULT_MAX_CONCURRENT_STREAMS: u32 = 100;
/// Streams a peer may reset before they are accepted, then GOAWAY (h2's own default, set
/// explicitly because tonic passes its unset value through).
const MAX_PENDING_ACCEPT_RESET_STREAMS: usize = 20;
/// Streams the server may reset for protocol errors (malformed headers, ...), then GOAWAY.
/// tonic turns hyper's limit off unless it is set (RUSTSEC-2024-0003).
const MAX_LOCAL_ERROR_RESET_STREAMS: usize = 1024;

/// The HTTP/2 stream limits of the receiver.
pub(crate) fn h2_limits(
    builder: tonic::transport::Server,
    cfg: &GrpcServerConfig,
) -> tonic::transport::Server {
    let streams = match cfg.max_concurrent_streams {
        0 => DEFAULT_MAX_CONCURRENT_STREAMS,
        n => n,
    };
    builder
        .max_concurrent_streams(Some(streams))
        .http2_max_pending_accept_reset_streams(Some(MAX_PENDING_ACCEPT_RESET_STREAMS))
        .http2_max_local_error_reset_streams(Some(MAX_LOCAL_ERROR_RESET_STREAMS))
}

/// What a call learns about its connection: the peer, and the activity record that keeps
/// the connection from being closed as idle while the call runs.
#[derive(Clone)]
pub(crate) struct ConnInfo {
    /// The TCP peer, as tonic reports it.
    #[allow(dead_code)]
    pub(crate) tcp: TcpConnectInfo,
    pub(crate) activity: Arc<ConnActivity>,
}

/// A server connection that holds a slot of the listener's cap and ends itself after
/// `idle` without a call.
pub(crate) struct LimitedConn<IO> {
    io: IO,
    activity: Arc<ConnActivity>,
    idle: Option<Duration>,
    timer: Option<Pin<Box<Sleep>>>,
    _slot: OwnedSemaphorePermit,
}

impl<IO> LimitedConn<IO> {
    pub(crate) fn new(io: IO, slot: OwnedSemaphorePermit, idle: Option<Duration>) -> Self {
        LimitedConn {
            io,
            activity: Arc::new(ConnActivity::default()),
            idle,
            timer: None,
            _slot: slot,
        }
    }

    /// Whether the connection has been idle too long; otherwise arms the timer to wake the
    /// reader when it might be.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(idle) = self.idle else {
            return false;
        };
        let at = match self.activity.idle_since() {
            Some(since) if since.elapsed() >= idle => return true,
            Some(since) => since + idle,
            None => Instant::now() + idle,
        };
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
        if timer.deadline() != at {
            timer.as_mut().reset(at);
        }
        // Registers the waker; if the deadline already passed, check again at once.
        if timer.as_mut().poll(cx).is_ready() {
            cx.waker().wake_by_ref();
        }
        false
    }
}

/// The plaintext listener as a stream of capped connections.
pub(crate) fn plain_incoming(
    acceptor: Acceptor,
    idle: Option<Duration>,
) -> impl futures::Stream<Item = std::io::Result<LimitedConn<TcpStream>>> {
    futures::stream::unfold(acceptor, move |a| async move {
        let (tcp, _, slot) = a.accept().await;
        let _ = tcp.set_nodelay(true);
        Some((Ok(LimitedConn::new(tcp, slot, idle)), a))
    })
}

impl<IO> Connected for LimitedConn<IO>
where
    IO: Connected<ConnectInfo = TcpConnectInfo>,
{
    type ConnectInfo = ConnInfo;

    fn connect_info(&self) -> ConnInfo {
        ConnInfo {
            tcp: self.io.connect_info(),
            activity: self.activity.clone(),
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for LimitedConn<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.expired(cx) {
            // End of stream: hyper closes the connection.
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for LimitedConn<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
