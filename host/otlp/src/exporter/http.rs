//! `otlp_http` (alias `otlphttp`).

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;
use prost::Message;
use serde::Deserialize;
use wasmcol_config::exporterhelper::{HelperConfig, QueueConfig, RetryConfig};
use wasmcol_config::{GoDuration, KeyError, Value};
use wasmcol_core::auth::ClientAuthenticator;
use wasmcol_core::{
    Batch, BuildError, ComponentError, ConsumeError, CreateContext, ExporterFactory, ExporterParts,
    Lifecycle, PermanentError, Sender, Signal,
};

use super::{ExportResponse, log_partial_success};
use crate::compression::{Compression, Level};
use crate::status::{RpcStatus, classify_http, parse_retry_after};
use crate::tls::{ClientTls, ClientTlsConfig};

fn default_compression() -> String {
    "gzip".into()
}
fn default_timeout() -> GoDuration {
    GoDuration::secs(30)
}
fn default_encoding() -> String {
    "proto".into()
}

/// `otlp_http` config, with upstream's keys and defaults.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Base URL; the signal path (`/v1/traces`) is appended.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Full URL for traces.
    #[serde(default)]
    pub traces_endpoint: Option<String>,
    /// Full URL for metrics.
    #[serde(default)]
    pub metrics_endpoint: Option<String>,
    /// Full URL for logs.
    #[serde(default)]
    pub logs_endpoint: Option<String>,
    /// Nothing to send there: wasmcol has no profiles signal.
    #[serde(default)]
    pub profiles_endpoint: Option<String>,
    /// `proto` (default) or `json`.
    #[serde(default = "default_encoding")]
    pub encoding: String,
    /// `gzip` (default), `zstd`, `zlib`, `deflate`, `none`.
    #[serde(default = "default_compression")]
    pub compression: String,
    /// `level`: upstream's levels per algorithm (absent: the fastest).
    #[serde(default)]
    pub compression_params: Option<CompressionParams>,
    /// HTTP client timeout per attempt (30s).
    #[serde(default = "default_timeout")]
    pub timeout: GoDuration,
    /// Headers on every request.
    #[serde(default)]
    pub headers: HashMap<String, String>,
    /// TLS for `https://` endpoints.
    #[serde(default)]
    pub tls: ClientTls,
    /// Proxy.
    #[serde(default)]
    pub proxy_url: Option<String>,
    /// A tuning hint for Go's transport; hyper sizes its own buffers.
    #[serde(default)]
    pub read_buffer_size: Option<u64>,
    /// A tuning hint for Go's transport; hyper sizes its own buffers.
    #[serde(default)]
    pub write_buffer_size: Option<u64>,
    /// A tuning hint: the pool keeps `max_idle_conns_per_host` per host, and this exporter
    /// has one host.
    #[serde(default)]
    pub max_idle_conns: Option<u64>,
    /// Idle connections kept per host.
    #[serde(default)]
    pub max_idle_conns_per_host: Option<usize>,
    /// Refused when above 0: the client has no cap on connections per host (`num_consumers`
    /// bounds the exports in flight).
    #[serde(default)]
    pub max_conns_per_host: Option<u64>,
    /// Idle connection timeout.
    #[serde(default)]
    pub idle_conn_timeout: Option<GoDuration>,
    /// `true`: every request opens a new connection (no idle connection is kept).
    #[serde(default)]
    pub disable_keep_alives: bool,
    /// A hint: HTTP/2 is used when the server offers it over TLS.
    #[serde(default)]
    pub force_attempt_http2: Option<bool>,
    /// HTTP/2 connections idle for this long are pinged (absent or 0: no pings).
    #[serde(default)]
    pub http2_read_idle_timeout: Option<GoDuration>,
    /// How long a ping may go unanswered before the connection is closed (15s when pings
    /// are on).
    #[serde(default)]
    pub http2_ping_timeout: Option<GoDuration>,
    /// `enabled: true` is refused: the client keeps no cookie store.
    #[serde(default)]
    pub cookies: Option<Cookies>,
    /// Authenticator: not supported.
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

/// `compression_params`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompressionParams {
    /// The compression level.
    #[serde(default)]
    pub level: Option<i64>,
}

/// `cookies`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cookies {
    /// Whether to keep cookies between requests.
    #[serde(default)]
    pub enabled: bool,
}

/// Upstream's ping timeout when `http2_read_idle_timeout` turns pings on.
const DEFAULT_HTTP2_PING_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// Problems with the keys a reqwest client cannot honour, and the compression level.
fn check_client_keys(
    cfg: &Config,
    compression: Option<Compression>,
    errs: &mut Vec<KeyError>,
) -> Option<Level> {
    if cfg.max_conns_per_host.is_some_and(|n| n > 0) {
        errs.push(KeyError::new(
            "max_conns_per_host",
            "not supported by wasmcol (the client has no per-host connection cap; sending_queue.num_consumers bounds exports in flight)",
        ));
    }
    if cfg.cookies.as_ref().is_some_and(|c| c.enabled) {
        errs.push(KeyError::new(
            "cookies.enabled",
            "not supported by wasmcol (the client keeps no cookie store)",
        ));
    }
    let level = cfg.compression_params.as_ref().and_then(|p| p.level)?;
    compression?
        .level(level)
        .map_err(|e| errs.push(e.into()))
        .ok()
}

fn signal_url(cfg: &Config, signal: Signal) -> Option<String> {
    let explicit = match signal {
        Signal::Traces => &cfg.traces_endpoint,
        Signal::Metrics => &cfg.metrics_endpoint,
        Signal::Logs => &cfg.logs_endpoint,
    };
    if let Some(e) = explicit {
        return Some(e.clone());
    }
    let base = cfg.endpoint.as_ref()?;
    let path = match signal {
        Signal::Traces => "v1/traces",
        Signal::Metrics => "v1/metrics",
        Signal::Logs => "v1/logs",
    };
    Some(if base.ends_with('/') {
        format!("{base}{path}")
    } else {
        format!("{base}/{path}")
    })
}

/// Builds `otlp_http` exporters.
pub struct OtlpHttpExporterFactory;

impl ExporterFactory for OtlpHttpExporterFactory {
    fn create(
        &self,
        ctx: &CreateContext,
        config: &Value,
        signal: Signal,
    ) -> Result<ExporterParts, BuildError> {
        let cfg: Config = wasmcol_config::decode(config)?;
        let mut errs: Vec<KeyError> = Vec::new();
        if cfg.endpoint.is_none()
            && cfg.traces_endpoint.is_none()
            && cfg.metrics_endpoint.is_none()
            && cfg.logs_endpoint.is_none()
            && cfg.profiles_endpoint.is_none()
        {
            errs.push(KeyError::new(
                "endpoint",
                "at least one endpoint must be specified",
            ));
        }
        let url = signal_url(&cfg, signal);
        if let Some(u) = &url
            && let Err(e) = reqwest::Url::parse(u)
        {
            errs.push(KeyError::new("endpoint", format!("invalid URL {u:?}: {e}")));
        }
        let json = match cfg.encoding.as_str() {
            "proto" => false,
            "json" => true,
            other => {
                errs.push(KeyError::new(
                    "encoding",
                    format!("invalid encoding type: {other}"),
                ));
                false
            }
        };
        // Messages from the compression and TLS parsers start with their key path.
        let compression = Compression::parse(&cfg.compression)
            .map_err(|e| errs.push(e.into()))
            .ok();
        // Our own rustls config rather than reqwest's: reqwest would add the Mozilla roots to
        // ca_file (upstream trusts only ca_file) and has no knobs for the other keys. A
        // plaintext endpoint needs none, so a host without system CAs can still run it.
        let https = url
            .as_deref()
            .and_then(|u| reqwest::Url::parse(u).ok())
            .is_some_and(|u| u.scheme() == "https");
        let tls = if https {
            cfg.tls
                .build(&[b"h2", b"http/1.1"])
                .map_err(|e| errs.push(e.into()))
                .ok()
        } else {
            None
        };
        let mut headers = reqwest::header::HeaderMap::new();
        for (k, v) in &cfg.headers {
            match (
                reqwest::header::HeaderName::try_from(k.as_str()),
                reqwest::header::HeaderValue::try_from(v.as_str()),
            ) {
                (Ok(k), Ok(v)) => {
                    headers.insert(k, v);
                }
                _ => errs.push(KeyError::new(
                    format!("headers.{k}"),
                    "not a valid HTTP header",
                )),
            }
        }
        let auth = wasmcol_core::auth::client(ctx, "auth", cfg.auth.as_ref())
            .map_err(|e| errs.push(e))
            .ok()
            .flatten();
        if !cfg.middlewares.is_empty() {
            errs.push(KeyError::new("middlewares", "not supported by wasmcol"));
        }
        let level = check_client_keys(&cfg, compression, &mut errs);
        // otlp_http times each attempt with its HTTP client; exporterhelper's timeout is off.
        let helper = HelperConfig {
            timeout: None,
            retry: cfg.retry_on_failure.clone(),
            queue: cfg.sending_queue.clone(),
        };
        errs.extend(helper.validate().into_iter().map(KeyError::from));
        if !errs.is_empty() {
            return Err(BuildError(errs));
        }
        let sender = HttpSender {
            name: ctx.id.to_string(),
            url,
            json,
            compression: compression.unwrap_or(Compression::None),
            level,
            headers,
            auth,
            tls,
            cfg,
            client: Mutex::new(None),
            tasks: ctx.tasks.clone(),
        };
        Ok(ExporterParts {
            sender: Arc::new(sender),
            helper,
        })
    }
}

struct HttpSender {
    name: String,
    url: Option<String>,
    json: bool,
    compression: Compression,
    level: Option<Level>,
    headers: reqwest::header::HeaderMap,
    /// `auth`: the client authenticator that edits each request's headers.
    auth: Option<Arc<dyn ClientAuthenticator>>,
    tls: Option<ClientTlsConfig>,
    cfg: Config,
    /// The client and the TLS generation it was built with: a certificate reload makes the
    /// next send build a new client (requests in flight keep the old one).
    client: Mutex<Option<(reqwest::Client, u64)>>,
    /// Where the certificate reload task runs.
    tasks: wasmcol_core::Tasks,
}

impl HttpSender {
    /// The client to send with, rebuilt first if the TLS configuration was reloaded.
    fn client(&self) -> Result<Option<reqwest::Client>, ConsumeError> {
        let generation = self.tls.as_ref().map_or(0, ClientTlsConfig::generation);
        let mut slot = self.client.lock();
        match slot.as_ref() {
            None => Ok(None),
            Some((c, g)) if *g == generation => Ok(Some(c.clone())),
            Some(_) => {
                let c = self
                    .build_client()
                    .map_err(|e| ConsumeError::retryable(format!("{}: {e}", self.name)))?;
                *slot = Some((c.clone(), generation));
                Ok(Some(c))
            }
        }
    }

    fn build_client(&self) -> Result<reqwest::Client, String> {
        let mut b = reqwest::Client::builder()
            .timeout(self.cfg.timeout.into())
            .user_agent(format!("wasmcol/{}", env!("CARGO_PKG_VERSION")))
            .default_headers(self.headers.clone())
            .tcp_nodelay(true);
        if let Some(n) = self.cfg.max_idle_conns_per_host {
            b = b.pool_max_idle_per_host(n);
        }
        if let Some(t) = self.cfg.idle_conn_timeout {
            b = b.pool_idle_timeout(Some(t.into()));
        }
        if self.cfg.disable_keep_alives {
            b = b.pool_max_idle_per_host(0);
        }
        if let Some(t) = self
            .cfg
            .http2_read_idle_timeout
            .map(std::time::Duration::from)
            && !t.is_zero()
        {
            let ping = self
                .cfg
                .http2_ping_timeout
                .map(std::time::Duration::from)
                .filter(|d| !d.is_zero())
                .unwrap_or(DEFAULT_HTTP2_PING_TIMEOUT);
            b = b
                .http2_keep_alive_interval(t)
                .http2_keep_alive_timeout(ping)
                .http2_keep_alive_while_idle(true);
        }
        if let Some(p) = &self.cfg.proxy_url {
            b = b.proxy(reqwest::Proxy::all(p).map_err(|e| format!("proxy_url: {e}"))?);
        }
        if let Some(tls) = &self.tls {
            b = b.use_preconfigured_tls(rustls::ClientConfig::clone(&tls.current()));
        }
        b.build().map_err(|e| e.to_string())
    }
}

/// An error with its causes. reqwest's own message is only "error sending request for url",
/// while the reason an operator needs (refused, TLS handshake, certificate not trusted)
/// sits further down the source chain.
/// How much of a backend's response body is read (upstream's `maxHTTPResponseReadBytes`):
/// an export response or an error status is small, and a backend that streams an endless
/// body must not grow the collector's memory.
const MAX_RESPONSE_BODY: usize = 64 * 1024;

/// The first `limit` bytes of a response body; the rest is not read (dropping the response
/// closes the connection instead of draining it). A body that fails midway yields what came.
async fn read_limited(mut resp: reqwest::Response, limit: usize) -> Bytes {
    let mut out = bytes::BytesMut::new();
    while out.len() < limit {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                let take = chunk.len().min(limit - out.len());
                out.extend_from_slice(&chunk[..take]);
            }
            Ok(None) | Err(_) => break,
        }
    }
    out.freeze()
}

pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let msg = s.to_string();
        // Wrappers often repeat their cause's text; keep each message once.
        if !out.contains(&msg) {
            out.push_str(": ");
            out.push_str(&msg);
        }
        source = s.source();
    }
    out
}

#[async_trait]
impl Lifecycle for HttpSender {
    async fn start(&self) -> Result<(), ComponentError> {
        let generation = self.tls.as_ref().map_or(0, ClientTlsConfig::generation);
        let c = self.build_client().map_err(ComponentError::new)?;
        *self.client.lock() = Some((c, generation));
        if let Some(tls) = &self.tls {
            tls.spawn_reload(&self.tasks, &self.name);
        }
        Ok(())
    }
}

#[async_trait]
impl Sender for HttpSender {
    async fn send(&self, batch: Batch) -> Result<(), ConsumeError> {
        let Some(client) = self.client()? else {
            return Err(ConsumeError::ShuttingDown);
        };
        let Some(url) = &self.url else {
            return Err(ConsumeError::permanent(format!(
                "{}: no endpoint for {}",
                self.name,
                batch.signal()
            )));
        };
        let (body, content_type) = if self.json {
            let j = batch.to_json().map_err(PermanentError::from)?;
            (Bytes::from(j), "application/json")
        } else {
            (batch.encoded(), "application/x-protobuf")
        };
        let mut req = client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, content_type);
        if let Some(auth) = &self.auth {
            // The client's default headers (`headers`) are what the authenticator edits.
            let mut headers = self.headers.clone();
            auth.apply(&mut headers, batch.context())
                .map_err(|e| ConsumeError::retryable(format!("{}: auth: {e}", self.name)))?;
            req = req.headers(headers);
        }
        let body = match self.compression.header() {
            Some(h) => {
                req = req.header(reqwest::header::CONTENT_ENCODING, h);
                // Compression is CPU work of a few ms for large batches; it stays on this task
                // rather than a blocking pool because it never waits on I/O.
                Bytes::from(
                    self.compression
                        .compress_at(&body, self.level)
                        .map_err(|e| ConsumeError::permanent(e.to_string()))?,
                )
            }
            None => body,
        };
        let resp = req.body(body).send().await.map_err(|e| {
            ConsumeError::retryable(format!(
                "failed to make an HTTP request: {}",
                error_chain(&e)
            ))
        })?;
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let resp_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let body = read_limited(resp, MAX_RESPONSE_BODY).await;
        if status.is_success() {
            if resp_type.starts_with("application/x-protobuf") && !body.is_empty() {
                match ExportResponse::decode(body) {
                    Ok(r) => log_partial_success(&self.name, &r),
                    // Parsing failed after the backend accepted: do not re-send accepted data.
                    Err(e) => {
                        return Err(PermanentError::Response {
                            message: format!("failed to parse export response: {e}"),
                        }
                        .into());
                    }
                }
            }
            return Ok(());
        }
        let detail = if resp_type.starts_with("application/x-protobuf") {
            RpcStatus::decode(body.clone())
                .map(|s| s.message)
                .unwrap_or_default()
        } else {
            String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned()
        };
        let message = format!(
            "error exporting items, request to {url} responded with HTTP Status Code {}, Message={detail}",
            status.as_u16()
        );
        Err(classify_http(status, retry_after, message))
    }
}
