//! The `otlp_grpc` exporter's connector: TCP, then TLS with the exporter's rustls
//! configuration as it is when the connection is made (so a reloaded certificate is used by
//! the next connection), sending and verifying `server_name_override` when set.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

use super::ClientTlsConfig;

/// A tower connector for tonic's `connect_with_connector`.
#[derive(Clone)]
pub struct TlsConnector {
    tls: ClientTlsConfig,
}

impl TlsConnector {
    /// Connects with `tls`.
    pub fn new(tls: ClientTlsConfig) -> Self {
        TlsConnector { tls }
    }
}

type Connecting = Pin<
    Box<
        dyn Future<Output = std::io::Result<TokioIo<tokio_rustls::client::TlsStream<TcpStream>>>>
            + Send,
    >,
>;

impl tower::Service<http::Uri> for TlsConnector {
    type Response = TokioIo<tokio_rustls::client::TlsStream<TcpStream>>;
    type Error = std::io::Error;
    type Future = Connecting;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let tls = self.tls.clone();
        Box::pin(async move {
            let invalid = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, m);
            let host = uri
                .host()
                .ok_or_else(|| invalid(format!("no host in {uri}")))?
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            let port = uri.port_u16().unwrap_or(443);
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            let name = match tls.server_name() {
                Some(n) => n.clone(),
                None => {
                    ServerName::try_from(host).map_err(|e| invalid(format!("server name: {e}")))?
                }
            };
            let stream = tokio_rustls::TlsConnector::from(tls.current())
                .connect(name, tcp)
                .await?;
            Ok(TokioIo::new(stream))
        })
    }
}
