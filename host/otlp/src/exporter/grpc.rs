//! `otlp_grpc` (alias `otlp`).

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::Mutex;
use prost::Message;
use serde::Deserialize;
use tonic::codec::CompressionEncoding;
use tonic::metadata::{MetadataKey, MetadataValue};
use tonic::transport::{Channel, Endpoint};
use wasmcol_config::exporterhelper::{HelperConfig, QueueConfig, RetryConfig};
use wasmcol_config::{GoDuration, KeyError, Value};
use wasmcol_core::auth::ClientAuthenticator;
use wasmcol_core::{
    Batch, BuildError, ComponentError, ConsumeError, CreateContext, ExporterFactory, ExporterParts,
    Lifecycle, Sender, Signal,
};

use super::{ExportResponse, log_partial_success};
use crate::BytesCodec;
use crate::compression::Compression;
use crate::status::classify_grpc;
use crate::tls::{ClientTls, ClientTlsConfig};

fn default_compression() -> String {
    "gzip".into()
}
fn default_timeout() -> GoDuration {
    GoDuration::secs(5)
}

/// `otlp_grpc` config, with upstream's keys and defaults.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `host:port`; `http://` means plaintext, `https://` forces TLS.
    #[serde(default)]
    pub endpoint: String,
    /// TLS (on by default with the system roots; `insecure: true` for plaintext).
    #[serde(default)]
    pub tls: ClientTls,
    /// `gzip` (default), `zstd`, `none`.
    #[serde(default = "default_compression")]
    pub compression: String,
    /// gRPC metadata on every call.
    #[serde(default)]
    pub headers: HashMap<String, String>,
    /// Per-attempt timeout (5s).
    #[serde(default = "default_timeout")]
    pub timeout: GoDuration,
    /// A hint (`round_robin`, `pick_first`): the channel connects to the endpoint's first
    /// address that answers.
    #[serde(default)]
    pub balancer_name: Option<String>,
    /// A hint: a call on a channel that is not ready fails at once and the queue retries it,
    /// which is what waiting for readiness would achieve.
    #[serde(default)]
    pub wait_for_ready: bool,
    /// Client keepalive (`time`, `timeout`, `permit_without_stream`).
    #[serde(default)]
    pub keepalive: Option<ClientKeepalive>,
    /// A tuning hint for grpc-go's buffers; h2 sizes its own.
    #[serde(default)]
    pub write_buffer_size: Option<u64>,
    /// A tuning hint for grpc-go's buffers; h2 sizes its own.
    #[serde(default)]
    pub read_buffer_size: Option<u64>,
    /// `:authority` override.
    #[serde(default)]
    pub authority: Option<String>,
    /// User-Agent override.
    #[serde(default)]
    pub user_agent: Option<String>,
    /// Authenticator extension: not supported.
    #[serde(default)]
    pub auth: Option<Value>,
    /// Middlewares: not supported.
    #[serde(default)]
    pub middlewares: Vec<Value>,
    /// Queue.
    #[serde(default)]
    pub sending_queue: QueueConfig,
    /// Retry.
    #[serde(default)]
    pub retry_on_failure: RetryConfig,
}

/// `keepalive` for clients.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientKeepalive {
    /// Ping interval.
    pub time: Option<GoDuration>,
    /// Ping timeout.
    pub timeout: Option<GoDuration>,
    /// Ping without active streams.
    #[serde(default)]
    pub permit_without_stream: bool,
}

/// Parsed endpoint: URI for tonic and whether TLS is used.
pub(crate) fn parse_endpoint(endpoint: &str, tls: &ClientTls) -> Result<(String, bool), String> {
    if endpoint.is_empty() {
        return Err("endpoint: requires a non-empty \"endpoint\"".into());
    }
    let (rest, scheme_tls) = if let Some(r) = endpoint.strip_prefix("https://") {
        (r, Some(true))
    } else if let Some(r) = endpoint.strip_prefix("http://") {
        (r, Some(false))
    } else if let Some(r) = endpoint.strip_prefix("dns:///") {
        (r, None)
    } else if endpoint.starts_with("unix://") {
        return Err("endpoint: unix sockets are not supported".into());
    } else {
        (endpoint, None)
    };
    let rest = rest.trim_end_matches('/');
    let Some((host, port)) = rest.rsplit_once(':') else {
        return Err(format!("endpoint: {endpoint:?} must be host:port"));
    };
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(format!("endpoint: invalid port in {endpoint:?}"));
    }
    let use_tls = scheme_tls.unwrap_or(!tls.insecure);
    Ok((
        format!("{}://{rest}", if use_tls { "https" } else { "http" }),
        use_tls,
    ))
}

/// Builds `otlp_grpc` exporters.
pub struct OtlpGrpcExporterFactory;

impl ExporterFactory for OtlpGrpcExporterFactory {
    fn create(
        &self,
        ctx: &CreateContext,
        config: &Value,
        signal: Signal,
    ) -> Result<ExporterParts, BuildError> {
        let cfg: Config = wasmcol_config::decode(config)?;
        // Messages from the endpoint, compression and TLS parsers start with their key path.
        let mut errs: Vec<KeyError> = Vec::new();
        let endpoint = parse_endpoint(&cfg.endpoint, &cfg.tls)
            .map_err(|e| errs.push(e.into()))
            .ok();
        let compression = Compression::parse(&cfg.compression)
            .map_err(|e| errs.push(e.into()))
            .ok();
        if compression == Some(Compression::Zlib) {
            errs.push(KeyError::new(
                "compression",
                "deflate/zlib is not a gRPC compression; use gzip, zstd or none",
            ));
        }
        let tls = if endpoint.as_ref().is_some_and(|(_, t)| *t) {
            cfg.tls
                .build(&[b"h2"])
                .map_err(|e| errs.push(e.into()))
                .ok()
        } else {
            None
        };
        let auth = wasmcol_core::auth::client(ctx, "auth", cfg.auth.as_ref())
            .map_err(|e| errs.push(e))
            .ok()
            .flatten();
        if !cfg.middlewares.is_empty() {
            errs.push(KeyError::new("middlewares", "not supported by wasmcol"));
        }
        let mut headers = Vec::new();
        for (k, v) in &cfg.headers {
            match (
                MetadataKey::from_str(&k.to_ascii_lowercase()),
                MetadataValue::try_from(v.as_str()),
            ) {
                (Ok(k), Ok(v)) => headers.push((k, v)),
                _ => errs.push(KeyError::new(
                    format!("headers.{k}"),
                    "not a valid gRPC metadata entry",
                )),
            }
        }
        let helper = HelperConfig {
            timeout: Some(cfg.timeout),
            retry: cfg.retry_on_failure.clone(),
            queue: cfg.sending_queue.clone(),
        };
        errs.extend(helper.validate().into_iter().map(KeyError::from));
        let (Some((uri, _)), Some(compression), true) = (endpoint, compression, errs.is_empty())
        else {
            return Err(BuildError(errs));
        };
        let sender = GrpcSender {
            name: ctx.id.to_string(),
            signal,
            uri,
            tls,
            compression,
            headers,
            auth,
            cfg,
            channel: Mutex::new(None),
            tasks: ctx.tasks.clone(),
        };
        Ok(ExporterParts {
            sender: Arc::new(sender),
            helper,
        })
    }
}

struct GrpcSender {
    name: String,
    signal: Signal,
    uri: String,
    tls: Option<ClientTlsConfig>,
    compression: Compression,
    headers: Vec<(
        MetadataKey<tonic::metadata::Ascii>,
        MetadataValue<tonic::metadata::Ascii>,
    )>,
    /// `auth`: the client authenticator that edits each request's headers.
    auth: Option<Arc<dyn ClientAuthenticator>>,
    cfg: Config,
    channel: Mutex<Option<Channel>>,
    /// Where the certificate reload task runs.
    tasks: wasmcol_core::Tasks,
}

impl GrpcSender {
    fn channel(&self) -> Result<Channel, String> {
        // TLS is made by our connector rather than tonic's, which has no knobs for TLS
        // versions, cipher suites or certificate reloads. tonic refuses an https URI without
        // its own TLS, so the endpoint gets the http form and the origin (what requests
        // carry) keeps https.
        let target = match &self.tls {
            Some(_) => self.uri.replacen("https://", "http://", 1),
            None => self.uri.clone(),
        };
        let mut ep = Endpoint::from_shared(target).map_err(|e| e.to_string())?;
        ep = ep
            .user_agent(
                self.cfg
                    .user_agent
                    .clone()
                    .unwrap_or_else(|| format!("wasmcol/{}", env!("CARGO_PKG_VERSION"))),
            )
            .map_err(|e| e.to_string())?
            .tcp_nodelay(true)
            .initial_stream_window_size(4 << 20)
            .initial_connection_window_size(16 << 20);
        if let Some(k) = &self.cfg.keepalive {
            if let Some(t) = k.time.filter(|t| !t.is_zero()) {
                ep = ep
                    .http2_keep_alive_interval(t.into())
                    .keep_alive_while_idle(k.permit_without_stream);
            }
            if let Some(t) = k.timeout.filter(|t| !t.is_zero()) {
                ep = ep.keep_alive_timeout(t.into());
            }
        }
        if let Some(a) = &self.cfg.authority {
            ep = ep.origin(
                format!(
                    "{}://{a}",
                    if self.tls.is_some() { "https" } else { "http" }
                )
                .parse()
                .map_err(|e| format!("authority: {e}"))?,
            );
        }
        match &self.tls {
            Some(tls) => {
                if self.cfg.authority.is_none() {
                    ep = ep.origin(self.uri.parse().map_err(|e| format!("endpoint: {e}"))?);
                }
                Ok(ep.connect_with_connector_lazy(crate::tls::TlsConnector::new(tls.clone())))
            }
            None => Ok(ep.connect_lazy()),
        }
    }
}

#[async_trait]
impl Lifecycle for GrpcSender {
    async fn start(&self) -> Result<(), ComponentError> {
        // Lazy: no connection is made until the first export, so a backend that is down at
        // start does not stop the collector from starting (its data waits in the queue).
        let ch = self.channel().map_err(ComponentError::new)?;
        *self.channel.lock() = Some(ch);
        if let Some(tls) = &self.tls {
            tls.spawn_reload(&self.tasks, &self.name);
        }
        Ok(())
    }
}

#[async_trait]
impl Sender for GrpcSender {
    async fn send(&self, batch: Batch) -> Result<(), ConsumeError> {
        let Some(channel) = self.channel.lock().clone() else {
            return Err(ConsumeError::ShuttingDown);
        };
        let mut client = tonic::client::Grpc::new(channel);
        client = match self.compression {
            Compression::Gzip => client.send_compressed(CompressionEncoding::Gzip),
            Compression::Zstd => client.send_compressed(CompressionEncoding::Zstd),
            _ => client,
        };
        client = client
            .accept_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(64 << 10);
        client.ready().await.map_err(|e| {
            ConsumeError::retryable(format!("{}: connection not ready: {e}", self.name))
        })?;
        let mut req = tonic::Request::new(batch.encoded());
        for (k, v) in &self.headers {
            req.metadata_mut().insert(k.clone(), v.clone());
        }
        if let Some(auth) = &self.auth {
            let mut headers = std::mem::take(req.metadata_mut()).into_headers();
            auth.apply(&mut headers, batch.context())
                .map_err(|e| ConsumeError::retryable(format!("{}: auth: {e}", self.name)))?;
            *req.metadata_mut() = tonic::metadata::MetadataMap::from_headers(headers);
        }
        let path = http::uri::PathAndQuery::from_static(crate::grpc_path(self.signal));
        match client.unary(req, path, BytesCodec).await {
            Ok(resp) => {
                if let Ok(r) = ExportResponse::decode(resp.into_inner()) {
                    log_partial_success(&self.name, &r);
                }
                Ok(())
            }
            Err(status) => Err(match self.connection_failure(&status) {
                Some(cause) => {
                    ConsumeError::retryable(format!("rpc error: code = Unavailable desc = {cause}"))
                }
                None => classify_grpc(&status),
            }),
        }
    }
}

impl GrpcSender {
    /// The cause when a call failed in the connection (TCP, TLS, HTTP/2) rather than with a
    /// status the server sent. tonic reports these as UNKNOWN "transport error" or CANCELLED
    /// "operation was canceled", which hide the cause and, for UNKNOWN, would make the data
    /// permanently failed; grpc-go (and so upstream) reports them as UNAVAILABLE and retries.
    fn connection_failure(&self, status: &tonic::Status) -> Option<String> {
        use std::error::Error;
        // Only statuses tonic built from a local error carry a source; a status the server
        // sent in its trailers does not.
        let source = status.source()?;
        let mut closed = false;
        let mut transport = false;
        let mut e: Option<&(dyn Error + 'static)> = Some(source);
        while let Some(err) = e {
            if let Some(h) = err.downcast_ref::<hyper::Error>() {
                transport = true;
                closed |= h.is_canceled() || h.is_closed() || h.is_incomplete_message();
            } else if let Some(io) = err.downcast_ref::<std::io::Error>() {
                transport = true;
                // A TLS alert from the server is a rustls error inside an io error, which h2
                // re-wraps as text on the way up; so match either form. (`io::Error::source`
                // skips the wrapped error, hence `get_ref`.)
                let alert = io.get_ref().is_some_and(|inner| {
                    matches!(
                        inner.downcast_ref::<rustls::Error>(),
                        Some(rustls::Error::AlertReceived(_))
                    )
                }) || io.to_string().starts_with("received fatal alert");
                closed |= alert
                    || matches!(
                        io.kind(),
                        std::io::ErrorKind::BrokenPipe
                            | std::io::ErrorKind::ConnectionReset
                            | std::io::ErrorKind::ConnectionAborted
                            | std::io::ErrorKind::UnexpectedEof
                    );
            } else if err.is::<tonic::transport::Error>() {
                transport = true;
            }
            e = err.source();
        }
        if !transport {
            return None;
        }
        let mut cause = super::http::error_chain(source);
        // With TLS 1.3 a server that rejects the client certificate does so after the client
        // considers the handshake done, so the client sees a closed connection or, if it
        // reads first, the server's alert; say what that usually means.
        if closed && let Some(tls) = &self.tls {
            cause.push_str(match tls.has_identity() {
                true => " (the server ended the TLS session; if it requires client certificates, it did not accept tls.cert_file: check that a CA in its client_ca_file signed it)",
                false => " (the server ended the TLS session; if it requires client certificates, set tls.cert_file and tls.key_file)",
            });
        }
        Some(cause)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_like_upstream() {
        let plain = ClientTls {
            insecure: true,
            ..Default::default()
        };
        assert_eq!(
            parse_endpoint("localhost:4317", &plain).unwrap(),
            ("http://localhost:4317".into(), false)
        );
        assert!(
            parse_endpoint("localhost:4317", &ClientTls::default())
                .unwrap()
                .1
        );
        assert_eq!(
            parse_endpoint("https://a:1", &plain).unwrap(),
            ("https://a:1".into(), true)
        );
        assert_eq!(
            parse_endpoint("http://a:1", &ClientTls::default()).unwrap(),
            ("http://a:1".into(), false)
        );
        assert!(
            parse_endpoint("", &plain)
                .unwrap_err()
                .contains("non-empty")
        );
        assert!(parse_endpoint("a:b", &plain).is_err());
    }
}
