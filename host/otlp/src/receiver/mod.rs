//! The `otlp` receiver: one gRPC server and one HTTP server shared by every signal and
//! pipeline that lists the receiver id (upstream's sharedcomponent).

mod grpc;
mod http;
mod limits;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::Mutex;
use serde::{Deserialize, Deserializer};
use wasmcol_config::{GoDuration, KeyError, Value};
use wasmcol_core::{
    Batch, BuildError, ComponentError, ConsumeError, Counter, CreateContext, Lifecycle,
    PermanentError, Receiver, ReceiverConsumers, ReceiverFactory, Signal,
};

use crate::tls::{ServerTls, ServerTlsConfig};
use wasmcol_core::auth::ServerAuthenticator;
use wasmcol_core::pdata::RequestContext;

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    // `grpc:` with an empty body enables the protocol with defaults, so a present null is Some.
    Ok(Some(Value::deserialize(d)?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    protocols: Protocols,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Protocols {
    #[serde(default, deserialize_with = "present")]
    grpc: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    http: Option<Value>,
}

/// `protocols.grpc` (upstream configgrpc ServerConfig).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcServerConfig {
    /// Accepted for configoptional compatibility: `enabled: false` turns the protocol off.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// `host:port` (default `localhost:4317`).
    #[serde(default = "default_grpc_endpoint")]
    pub endpoint: String,
    /// Only `tcp` is supported.
    #[serde(default)]
    pub transport: Option<String>,
    /// Server TLS, optionally mutual (`client_ca_file`).
    #[serde(default)]
    pub tls: Option<ServerTls>,
    /// Largest accepted message after decompression, MiB (0 → 4 MiB like grpc-go).
    #[serde(default)]
    pub max_recv_msg_size_mib: u64,
    /// HTTP/2 concurrent streams per connection (0 or absent: 100; unlimited is not offered).
    #[serde(default)]
    pub max_concurrent_streams: u32,
    /// A tuning hint for grpc-go's buffers; h2 sizes its own.
    #[serde(default)]
    pub read_buffer_size: Option<u64>,
    /// A tuning hint for grpc-go's buffers; h2 sizes its own.
    #[serde(default)]
    pub write_buffer_size: Option<u64>,
    /// Keepalive settings (`server_parameters` are applied; `enforcement_policy` is refused:
    /// h2 does not police client pings).
    #[serde(default)]
    pub keepalive: Option<Keepalive>,
    /// Puts the request's headers into the request context the batch carries.
    #[serde(default)]
    pub include_metadata: bool,
    /// `authenticator`: the server authenticator extension checking every request.
    #[serde(default)]
    pub auth: Option<Value>,
    /// Middlewares: not supported.
    #[serde(default)]
    pub middlewares: Vec<Value>,
}

/// `keepalive`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Keepalive {
    /// Server parameters.
    #[serde(default)]
    pub server_parameters: Option<KeepaliveServer>,
    /// Enforcement policy: refused when set (h2 does not police client pings).
    #[serde(default)]
    pub enforcement_policy: Option<Value>,
}

/// `keepalive.server_parameters`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeepaliveServer {
    /// A connection without a call for this long is closed (0 or absent: never).
    pub max_connection_idle: Option<GoDuration>,
    /// A connection older than this gets a GOAWAY (0 or absent: never).
    pub max_connection_age: Option<GoDuration>,
    /// How long calls may finish after `max_connection_age` before the connection is closed.
    pub max_connection_age_grace: Option<GoDuration>,
    /// HTTP/2 ping interval.
    pub time: Option<GoDuration>,
    /// HTTP/2 ping timeout.
    pub timeout: Option<GoDuration>,
}

fn yes() -> bool {
    true
}
fn default_grpc_endpoint() -> String {
    "localhost:4317".into()
}
fn default_http_endpoint() -> String {
    "localhost:4318".into()
}
fn default_body_limit() -> i64 {
    20 * 1024 * 1024
}

/// `protocols.http` (upstream confighttp ServerConfig plus the URL paths).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpServerConfig {
    /// Accepted for configoptional compatibility.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// `host:port` (default `localhost:4318`).
    #[serde(default = "default_http_endpoint")]
    pub endpoint: String,
    /// Server TLS, optionally mutual (`client_ca_file`); HTTP/1.1 and HTTP/2 are offered.
    #[serde(default)]
    pub tls: Option<ServerTls>,
    /// CORS: refused when it allows any origin (no CORS headers are served yet).
    #[serde(default)]
    pub cors: Option<Value>,
    /// Largest body, raw and decompressed, in bytes (≤ 0 → 20 MiB).
    #[serde(default = "default_body_limit")]
    pub max_request_body_size: i64,
    /// Accepted Content-Encodings.
    #[serde(default)]
    pub compression_algorithms: Option<Vec<String>>,
    /// Time for a request's body after its headers (absent → 60 s, 0 → none); a body that
    /// does not arrive in time is answered 408 and the connection closed.
    #[serde(default)]
    pub read_timeout: Option<GoDuration>,
    /// Time for a request's headers, also the wait for the next request on a keep-alive
    /// connection (absent → 30 s, 0 → `read_timeout`).
    #[serde(default)]
    pub read_header_timeout: Option<GoDuration>,
    /// Time from a request's headers to its response (absent or 0 → none); when it runs
    /// out the connection is closed without an answer.
    #[serde(default)]
    pub write_timeout: Option<GoDuration>,
    /// Time a connection may stay without a request in flight (absent → 60 s, 0 →
    /// `read_timeout`).
    #[serde(default)]
    pub idle_timeout: Option<GoDuration>,
    /// `false`: an HTTP/1 connection serves one request, then closes (default true).
    #[serde(default)]
    pub keep_alives_enabled: Option<bool>,
    /// Puts the request's headers into the request context the batch carries.
    #[serde(default)]
    pub include_metadata: bool,
    /// Static headers on every response.
    #[serde(default)]
    pub response_headers: HashMap<String, String>,
    /// `authenticator`: the server authenticator extension checking every request.
    #[serde(default)]
    pub auth: Option<Value>,
    /// Middlewares: not supported.
    #[serde(default)]
    pub middlewares: Vec<Value>,
    /// Path for traces.
    #[serde(default = "traces_path")]
    pub traces_url_path: String,
    /// Path for metrics.
    #[serde(default = "metrics_path")]
    pub metrics_url_path: String,
    /// Path for logs.
    #[serde(default = "logs_path")]
    pub logs_url_path: String,
}

fn traces_path() -> String {
    "/v1/traces".into()
}
fn metrics_path() -> String {
    "/v1/metrics".into()
}
fn logs_path() -> String {
    "/v1/logs".into()
}

/// Whether a `cors` block allows any origin; upstream serves no CORS headers without
/// `allowed_origins`, so an empty block is what wasmcol does too.
fn cors_allows_an_origin(cors: Option<&Value>) -> bool {
    cors.and_then(|c| c.get("allowed_origins"))
        .and_then(Value::as_sequence)
        .is_some_and(|origins| !origins.is_empty())
}

/// Builds a protocol's TLS (reading and checking its files); a problem is recorded under
/// `prefix`.
fn server_tls(
    tls: &Option<ServerTls>,
    prefix: &str,
    alpn: &[&[u8]],
    errs: &mut Vec<KeyError>,
) -> Option<ServerTlsConfig> {
    let tls = tls.as_ref()?;
    // The TLS builder's message starts with its own key path.
    tls.build(alpn)
        .map_err(|e| errs.push(format!("{prefix}.{e}").into()))
        .ok()
}

/// Builds `otlp` receivers.
pub struct OtlpReceiverFactory;

impl ReceiverFactory for OtlpReceiverFactory {
    fn create(
        &self,
        ctx: &CreateContext,
        config: &Value,
        consumers: ReceiverConsumers,
    ) -> Result<Arc<dyn Receiver>, BuildError> {
        let cfg: Config = wasmcol_config::decode(config)?;
        let mut errs = Vec::new();
        let mut auth = Auth::default();
        let (mut grpc_tls, mut http_tls) = (None, None);
        let grpc = match &cfg.protocols.grpc {
            Some(v) => match wasmcol_config::decode::<GrpcServerConfig>(v) {
                Ok(g) => {
                    match wasmcol_core::auth::server(ctx, "protocols.grpc.auth", g.auth.as_ref()) {
                        Ok(a) => auth.grpc = a,
                        Err(e) => errs.push(e),
                    }
                    if !g.middlewares.is_empty() {
                        errs.push(KeyError::new(
                            "protocols.grpc.middlewares",
                            "not supported by wasmcol",
                        ));
                    }
                    if g.keepalive.as_ref().is_some_and(|k| {
                        k.enforcement_policy.as_ref().is_some_and(|v| !v.is_null())
                    }) {
                        errs.push(KeyError::new(
                            "protocols.grpc.keepalive.enforcement_policy",
                            "not supported by wasmcol (client pings are not policed)",
                        ));
                    }
                    if g.transport.as_deref().is_some_and(|t| t != "tcp") {
                        errs.push(KeyError::new(
                            "protocols.grpc.transport",
                            format!("only tcp is supported, got {:?}", g.transport),
                        ));
                    }
                    grpc_tls = server_tls(&g.tls, "protocols.grpc", &[b"h2"], &mut errs);
                    auth.grpc_metadata = g.include_metadata;
                    g.enabled.then_some(g)
                }
                Err(e) => {
                    errs.push(e.within("protocols.grpc"));
                    None
                }
            },
            None => None,
        };
        let http = match &cfg.protocols.http {
            Some(v) => match wasmcol_config::decode::<HttpServerConfig>(v) {
                Ok(mut h) => {
                    match wasmcol_core::auth::server(ctx, "protocols.http.auth", h.auth.as_ref()) {
                        Ok(a) => auth.http = a,
                        Err(e) => errs.push(e),
                    }
                    http_tls =
                        server_tls(&h.tls, "protocols.http", &[b"h2", b"http/1.1"], &mut errs);
                    auth.http_metadata = h.include_metadata;
                    // Found by tests/config_keys.rs: accepted and ignored until refused here.
                    if !h.middlewares.is_empty() {
                        errs.push(KeyError::new(
                            "protocols.http.middlewares",
                            "not supported by wasmcol",
                        ));
                    }
                    if cors_allows_an_origin(h.cors.as_ref()) {
                        errs.push(KeyError::new(
                            "protocols.http.cors",
                            "not supported by wasmcol (no CORS headers are served, so browsers would be refused)",
                        ));
                    }
                    for p in [
                        &mut h.traces_url_path,
                        &mut h.metrics_url_path,
                        &mut h.logs_url_path,
                    ] {
                        if !p.starts_with('/') {
                            p.insert(0, '/');
                        }
                    }
                    if let Some(algs) = &h.compression_algorithms {
                        for a in algs {
                            if crate::compression::Encoding::parse(a).is_none()
                                && !matches!(a.as_str(), "snappy" | "lz4" | "x-snappy-framed")
                            {
                                errs.push(KeyError::new(
                                    "protocols.http.compression_algorithms",
                                    format!("unsupported compression algorithm {a:?}"),
                                ));
                            }
                        }
                    }
                    h.enabled.then_some(h)
                }
                Err(e) => {
                    errs.push(e.within("protocols.http"));
                    None
                }
            },
            None => None,
        };
        if cfg.protocols.grpc.is_none() && cfg.protocols.http.is_none() {
            errs.push(KeyError::new(
                "protocols",
                "must specify at least one protocol when using the OTLP receiver",
            ));
        }
        if !errs.is_empty() {
            return Err(BuildError(errs));
        }
        let name = ctx.id.to_string();
        let ingest = Arc::new(Ingest::new(ctx, &name, consumers, auth));
        Ok(Arc::new(OtlpReceiver {
            name,
            grpc,
            http,
            grpc_tls,
            http_tls,
            ingest,
            tasks: ctx.tasks.clone(),
            running: Mutex::new(Running::default()),
        }))
    }
}

/// What each protocol takes from a request's headers: the server authenticator
/// (`protocols.*.auth`) and whether the headers go into the request context
/// (`include_metadata`).
#[derive(Default)]
pub(crate) struct Auth {
    grpc: Option<Arc<dyn ServerAuthenticator>>,
    http: Option<Arc<dyn ServerAuthenticator>>,
    grpc_metadata: bool,
    http_metadata: bool,
}

/// Hands decoded requests to the pipelines and keeps upstream's receiver metrics.
pub(crate) struct Ingest {
    consumers: ReceiverConsumers,
    counters: HashMap<(Signal, &'static str), (Counter, Counter)>,
    auth: Auth,
}

impl Ingest {
    fn new(ctx: &CreateContext, name: &str, consumers: ReceiverConsumers, auth: Auth) -> Self {
        let mut counters = HashMap::new();
        for signal in Signal::ALL {
            if consumers.get(signal).is_none() {
                continue;
            }
            let item = signal.item_name();
            for transport in ["grpc", "http"] {
                let labels = [("receiver", name), ("transport", transport)];
                let accepted = ctx.metrics.counter(
                    &format!("otelcol_receiver_accepted_{item}"),
                    &format!("Number of {item} successfully pushed into the pipeline."),
                    &labels,
                );
                let refused = ctx.metrics.counter(
                    &format!("otelcol_receiver_refused_{item}"),
                    &format!("Number of {item} that could not be pushed into the pipeline."),
                    &labels,
                );
                counters.insert((signal, transport), (accepted, refused));
            }
        }
        Ingest {
            consumers,
            counters,
            auth,
        }
    }

    /// Whether `transport` reads requests' headers (to authenticate them or to put them into
    /// the request context).
    pub(crate) fn reads_headers(&self, transport: &'static str) -> bool {
        match transport {
            "grpc" => self.auth.grpc.is_some() || self.auth.grpc_metadata,
            _ => self.auth.http.is_some() || self.auth.http_metadata,
        }
    }

    /// Checks a request against the protocol's authenticator, if any, and returns the batch
    /// with its request context: the authenticator's attributes as `auth.<name>` (carried
    /// whenever it establishes some, as upstream's `client.Info.Auth`) and, with
    /// `include_metadata`, the headers under their lower-case names. Headers named `auth.*`
    /// are left out so that a client cannot pose as an authenticated principal. A refused
    /// request's items are counted as refused; nothing reaches the pipelines. The error is
    /// what the client reads.
    pub(crate) fn admit(
        &self,
        transport: &'static str,
        headers: &::http::HeaderMap,
        batch: Batch,
    ) -> Result<Batch, String> {
        let (auth, metadata) = match transport {
            "grpc" => (&self.auth.grpc, self.auth.grpc_metadata),
            _ => (&self.auth.http, self.auth.http_metadata),
        };
        let principal = match auth {
            Some(auth) => auth.authenticate(headers).inspect_err(|_| {
                if let Some((_, refused)) = self.counters.get(&(batch.signal(), transport)) {
                    refused.add(batch.item_count() as u64);
                }
            })?,
            None => Vec::new(),
        };
        if !metadata && principal.is_empty() {
            return Ok(batch);
        }
        let mut entries: Vec<(String, Vec<String>)> = principal
            .into_iter()
            .map(|(k, v)| (format!("auth.{k}"), vec![v]))
            .collect();
        if metadata {
            for name in headers.keys() {
                if name.as_str().starts_with("auth.") {
                    continue;
                }
                let values = headers
                    .get_all(name)
                    .iter()
                    .filter_map(|v| v.to_str().ok().map(str::to_owned))
                    .collect();
                entries.push((name.as_str().to_owned(), values));
            }
        }
        Ok(batch.with_context(RequestContext::new(entries)))
    }

    /// Whether a pipeline of `signal` lists this receiver.
    pub(crate) fn serves(&self, signal: Signal) -> bool {
        self.consumers.get(signal).is_some()
    }

    /// Pushes a batch into the pipelines; 0-item requests succeed without being forwarded.
    pub(crate) async fn push(
        &self,
        transport: &'static str,
        batch: Batch,
    ) -> Result<(), ConsumeError> {
        let signal = batch.signal();
        let items = batch.item_count();
        if items == 0 {
            return Ok(());
        }
        let Some(consumer) = self.consumers.get(signal) else {
            return Err(PermanentError::NoPipeline { signal }.into());
        };
        let result = consumer.consume(batch).await;
        if let Some((accepted, refused)) = self.counters.get(&(signal, transport)) {
            match &result {
                Ok(()) => accepted.add(items as u64),
                Err(_) => refused.add(items as u64),
            }
        }
        result
    }
}

#[derive(Default)]
struct Running {
    grpc: Option<grpc::GrpcServer>,
    http: Option<wasmcol_core::http::HttpServer>,
    /// The certificate reload tasks, stopped with the servers.
    reload: Option<wasmcol_core::Tasks>,
}

/// The `otlp` receiver.
pub struct OtlpReceiver {
    name: String,
    grpc: Option<GrpcServerConfig>,
    http: Option<HttpServerConfig>,
    grpc_tls: Option<ServerTlsConfig>,
    http_tls: Option<ServerTlsConfig>,
    ingest: Arc<Ingest>,
    tasks: wasmcol_core::Tasks,
    running: Mutex<Running>,
}

impl Receiver for OtlpReceiver {
    fn endpoints(&self) -> Vec<wasmcol_core::Endpoint> {
        let grpc = self
            .grpc
            .iter()
            .map(|g| wasmcol_core::Endpoint::new("protocols::grpc::endpoint", &g.endpoint));
        let http = self
            .http
            .iter()
            .map(|h| wasmcol_core::Endpoint::new("protocols::http::endpoint", &h.endpoint));
        grpc.chain(http).collect()
    }
}

#[async_trait]
impl Lifecycle for OtlpReceiver {
    async fn start(&self) -> Result<(), ComponentError> {
        let reload = self.tasks.child();
        let enabled = [
            (&self.grpc_tls, self.grpc.is_some(), "grpc"),
            (&self.http_tls, self.http.is_some(), "http"),
        ];
        for (tls, on, protocol) in enabled {
            if let Some(tls) = tls.as_ref().filter(|_| on) {
                tls.spawn_reload(&reload, &format!("{} ({protocol})", self.name));
            }
        }
        self.running.lock().reload = Some(reload);
        if let Some(g) = &self.grpc {
            let tls = self.grpc_tls.clone();
            let server = grpc::GrpcServer::start(g, tls, self.ingest.clone(), &self.tasks)
                .await
                .map_err(|e| ComponentError::new(format!("grpc server on {}: {e}", g.endpoint)))?;
            tracing::info!(receiver = %self.name, endpoint = %server.local_addr(), "Starting GRPC server");
            self.running.lock().grpc = Some(server);
        }
        if let Some(h) = &self.http {
            let tls = self.http_tls.clone();
            let server = http::start(h, tls, self.ingest.clone(), &self.tasks)
                .await
                .map_err(|e| ComponentError::new(format!("http server on {}: {e}", h.endpoint)))?;
            tracing::info!(receiver = %self.name, endpoint = %server.local_addr(), "Starting HTTP server");
            self.running.lock().http = Some(server);
        }
        Ok(())
    }

    /// Stops accepting and returns without waiting for requests in flight: those may be
    /// waiting on a batch that the processors flush only after receivers have stopped. The
    /// servers' tasks belong to this receiver's task set, which the service waits for at the
    /// end, by its shutdown deadline.
    async fn shutdown(&self) -> Result<(), ComponentError> {
        let (g, h, reload) = {
            let mut r = self.running.lock();
            (r.grpc.take(), r.http.take(), r.reload.take())
        };
        if let Some(reload) = reload {
            reload.token().cancel();
        }
        if let Some(g) = g {
            g.stop_accepting();
        }
        if let Some(h) = h {
            h.stop_accepting();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmcol_config::{ComponentId, Kind};
    use wasmcol_core::{Extensions, Metrics, ServiceStatus, Tasks};

    fn ctx() -> CreateContext {
        CreateContext {
            id: ComponentId::new("otlp", None),
            kind: Kind::Receiver,
            metrics: Metrics::new(),
            tasks: Tasks::new(),
            extensions: Extensions::default(),
            status: Arc::new(ServiceStatus::default()),
        }
    }

    fn build(yaml: &str) -> BuildError {
        let body: Value = serde_yaml::from_str(yaml).unwrap();
        match OtlpReceiverFactory.create(&ctx(), &body, ReceiverConsumers::default()) {
            Ok(_) => panic!("{yaml:?} built"),
            Err(e) => e,
        }
    }

    #[test]
    fn config_problems_name_their_key_paths() {
        let e = build(
            "protocols:\n  grpc:\n    transport: unix\n    endpooint: x\n  http:\n    compression_algorithms: [br]",
        );
        let paths: Vec<&str> = e.0.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "protocols.grpc.endpooint",
                "protocols.http.compression_algorithms"
            ],
            "{e}"
        );
        assert!(
            e.0[0].message.starts_with("unknown field `endpooint`"),
            "{e}"
        );
        assert_eq!(
            e.0[1],
            KeyError::new(
                "protocols.http.compression_algorithms",
                "unsupported compression algorithm \"br\""
            )
        );
        assert_eq!(
            build("protocols: {}").0,
            [KeyError::new(
                "protocols",
                "must specify at least one protocol when using the OTLP receiver"
            )]
        );
    }

    /// Keys wasmcol cannot honour are refused with their path, not accepted and ignored;
    /// an empty `cors` block (no origin allowed) serves no CORS headers upstream either.
    #[test]
    fn unhonoured_keys_are_refused() {
        let e = build(
            "protocols:\n  grpc:\n    keepalive:\n      enforcement_policy:\n        min_time: 10s\n  http:\n    cors:\n      allowed_origins: [\"https://*.example.com\"]",
        );
        let paths: Vec<&str> = e.0.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "protocols.grpc.keepalive.enforcement_policy",
                "protocols.http.cors"
            ],
            "{e}"
        );
        assert!(
            e.0.iter()
                .all(|p| p.message.starts_with("not supported by wasmcol")),
            "{e}"
        );
        let body: Value = serde_yaml::from_str(
            "protocols:\n  http:\n    cors: {allowed_origins: []}\n    write_timeout: 5s\n    keep_alives_enabled: false",
        )
        .unwrap();
        assert!(
            OtlpReceiverFactory
                .create(&ctx(), &body, ReceiverConsumers::default())
                .is_ok()
        );
    }

    #[tokio::test]
    async fn a_signal_without_pipeline_is_a_typed_refusal() {
        let ingest = Ingest::new(
            &ctx(),
            "otlp",
            ReceiverConsumers::default(),
            Auth::default(),
        );
        let mut req = wasmcol_core::pdata::ExportLogsServiceRequest::default();
        req.resource_logs
            .push(wasmcol_core::pdata::proto::logs::v1::ResourceLogs {
                scope_logs: vec![wasmcol_core::pdata::proto::logs::v1::ScopeLogs {
                    log_records: vec![Default::default()],
                    ..Default::default()
                }],
                ..Default::default()
            });
        let batch = Batch::Logs(wasmcol_core::pdata::LogsBatch::from_message(req));
        assert_eq!(
            ingest.push("http", batch).await,
            Err(ConsumeError::Permanent(PermanentError::NoPipeline {
                signal: Signal::Logs
            }))
        );
    }
}
