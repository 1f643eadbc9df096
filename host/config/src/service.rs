use indexmap::IndexMap;
use serde::Deserialize;

use crate::{ComponentId, GoDuration, KeyError, PipelineId, Value};

/// The `service` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// Extensions to start, in order.
    #[serde(default)]
    pub extensions: Vec<ComponentId>,
    /// Pipelines by id.
    #[serde(default)]
    pub pipelines: IndexMap<PipelineId, PipelineConfig>,
    /// Self-telemetry.
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    /// How long SIGTERM/SIGINT may take to drain (a wasmcol addition; default 30s).
    #[serde(default = "default_shutdown_timeout")]
    pub shutdown_timeout: GoDuration,
}

fn default_shutdown_timeout() -> GoDuration {
    GoDuration::secs(30)
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            extensions: Vec::new(),
            pipelines: IndexMap::new(),
            telemetry: TelemetryConfig::default(),
            shutdown_timeout: default_shutdown_timeout(),
        }
    }
}

/// One pipeline.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Receivers and connectors feeding the pipeline.
    #[serde(default)]
    pub receivers: Vec<ComponentId>,
    /// Processors, in order.
    #[serde(default)]
    pub processors: Vec<ComponentId>,
    /// Exporters and connectors the pipeline fans out to.
    #[serde(default)]
    pub exporters: Vec<ComponentId>,
}

/// `service.telemetry`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// The collector's own logs.
    #[serde(default)]
    pub logs: LogsTelemetry,
    /// Internal metrics.
    #[serde(default)]
    pub metrics: MetricsTelemetry,
    /// Internal traces: none are produced, so only an empty section or `level: none` is taken.
    #[serde(default)]
    pub traces: Option<Value>,
    /// Resource attributes of the collector's own telemetry; a null value removes a default.
    #[serde(default)]
    pub resource: IndexMap<String, Value>,
}

impl TelemetryConfig {
    /// Refuses what is valid upstream but has no effect here, naming the key under
    /// `telemetry`.
    pub fn check(&self) -> Result<(), crate::KeyError> {
        self.logs.check().map_err(|e| e.within("logs"))?;
        self.metrics.prometheus().map_err(|e| e.within("metrics"))?;
        if let Some(traces) = &self.traces {
            let empty = match traces {
                Value::Null => true,
                Value::Mapping(m) => m
                    .iter()
                    .all(|(k, v)| k.as_str() == Some("level") && v.as_str() == Some("none")),
                _ => false,
            };
            if !empty {
                return Err(crate::KeyError::new(
                    "traces",
                    "not implemented: the collector produces no traces of its own (only `level: none` is accepted)",
                ));
            }
        }
        self.metrics.periodic().map_err(|e| e.within("metrics"))?;
        self.resource_attributes()?;
        Ok(())
    }

    /// The configured resource attributes, in order (`None`: remove a default). Two shapes,
    /// as upstream: the map `{key: value}`, and the declarative configuration's
    /// `{attributes: [{name, value, type}], attributes_list: "k=v,..."}`, told apart by
    /// `attributes` holding a list; a key of `attributes` wins over `attributes_list`.
    fn resource_attributes(&self) -> Result<Vec<(String, Option<String>)>, crate::KeyError> {
        let declarative = matches!(self.resource.get("attributes"), Some(Value::Sequence(_)))
            || matches!(self.resource.get("attributes_list"), Some(Value::String(_)));
        if !declarative {
            return self
                .resource
                .iter()
                .map(|(key, value)| {
                    scalar(value).map(|v| (key.clone(), v)).ok_or_else(|| {
                        crate::KeyError::new(
                            format!("resource.{key}"),
                            "a resource attribute is a string (or null to remove a default); \
                             the declarative form is `attributes: [{name, value, type}]`",
                        )
                    })
                })
                .collect();
        }
        let mut out: Vec<(String, Option<String>)> = Vec::new();
        for (key, value) in &self.resource {
            match (key.as_str(), value) {
                ("attributes", Value::Sequence(list)) => {
                    for (i, entry) in list.iter().enumerate() {
                        let (name, value) = declared(entry).map_err(|(k, why)| {
                            KeyError::new(format!("resource.attributes[{i}]{k}"), why)
                        })?;
                        out.retain(|(n, _)| *n != name);
                        out.push((name, Some(value)));
                    }
                }
                ("attributes_list", Value::String(list)) => {
                    for pair in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                        let Some((name, value)) = pair.split_once('=') else {
                            return Err(KeyError::new(
                                "resource.attributes_list",
                                format!("{pair:?} is not key=value"),
                            ));
                        };
                        // `attributes` takes precedence over the list.
                        if !out.iter().any(|(n, _)| n == name.trim()) {
                            out.push((name.trim().to_owned(), Some(value.trim().to_owned())));
                        }
                    }
                }
                ("attributes" | "attributes_list", _) => {
                    return Err(KeyError::new(
                        format!("resource.{key}"),
                        "`attributes` is a list of {name, value, type}, `attributes_list` a string",
                    ));
                }
                ("schema_url" | "detection/development" | "detectors", _) => {
                    return Err(KeyError::new(
                        format!("resource.{key}"),
                        "not implemented: only attributes and attributes_list are applied",
                    ));
                }
                _ => {
                    return Err(KeyError::new(
                        format!("resource.{key}"),
                        "unknown key in the declarative resource (attributes, attributes_list)",
                    ));
                }
            }
        }
        Ok(out)
    }

    /// The resource of the collector's own telemetry, as upstream: `service.name`,
    /// `service.instance.id` and `service.version` by default, then the configured attributes
    /// (a null value removes the attribute).
    pub fn resource(&self, name: &str, instance_id: &str, version: &str) -> Vec<(String, String)> {
        let mut attrs: IndexMap<String, String> = [
            ("service.name", name),
            ("service.instance.id", instance_id),
            ("service.version", version),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        for (key, value) in self.resource_attributes().unwrap_or_default() {
            match value {
                None => {
                    attrs.shift_remove(&key);
                }
                Some(v) => {
                    attrs.insert(key, v);
                }
            }
        }
        attrs.into_iter().collect()
    }
}

/// A map-form resource value as text; `Some(None)` for null (remove a default).
fn scalar(value: &Value) -> Option<Option<String>> {
    match value {
        Value::Null => Some(None),
        Value::String(s) => Some(Some(s.clone())),
        Value::Bool(b) => Some(Some(b.to_string())),
        Value::Number(n) => Some(Some(n.to_string())),
        _ => None,
    }
}

/// One `{name, value, type}` of the declarative resource, or the key under the entry that
/// is wrong and why. `type` (default `string`) must agree with the value; arrays are refused.
fn declared(entry: &Value) -> Result<(String, String), (String, String)> {
    let Value::Mapping(m) = entry else {
        return Err((String::new(), "expected {name, value, type}".into()));
    };
    let mut name = None;
    let mut value = None;
    let mut ty = "string".to_owned();
    for (k, v) in m {
        match (k.as_str(), v) {
            (Some("name"), Value::String(s)) if !s.is_empty() => name = Some(s.clone()),
            (Some("name"), _) => return Err((".name".into(), "a non-empty string".into())),
            (Some("value"), v) => value = Some(v.clone()),
            (Some("type"), Value::String(t)) => ty = t.clone(),
            (Some(other), _) if other != "type" => {
                return Err((
                    format!(".{other}"),
                    "unknown key (name, value, type)".into(),
                ));
            }
            _ => return Err((".type".into(), "a string".into())),
        }
    }
    let name = name.ok_or_else(|| (".name".to_owned(), "required".to_owned()))?;
    let value = value.ok_or_else(|| (".value".to_owned(), "required".to_owned()))?;
    let text = match (ty.as_str(), &value) {
        ("string", Value::String(s)) => s.clone(),
        ("bool", Value::Bool(b)) => b.to_string(),
        ("int", Value::Number(n)) if n.is_i64() || n.is_u64() => n.to_string(),
        ("double", Value::Number(n)) => n.to_string(),
        ("string_array" | "bool_array" | "int_array" | "double_array", _) => {
            return Err((
                ".type".into(),
                format!("not implemented: {ty} (resource attributes here are scalars)"),
            ));
        }
        ("string" | "bool" | "int" | "double", _) => {
            return Err((".value".into(), format!("not a {ty}")));
        }
        _ => {
            return Err((
                ".type".into(),
                format!("unknown type {ty:?} (string, bool, int, double)"),
            ));
        }
    };
    Ok((name, text))
}

/// `service.telemetry.logs`, with upstream's (zap production) defaults.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogsTelemetry {
    /// `debug`, `info`, `warn`, `error` (`dpanic`, `panic`, `fatal` log errors only).
    #[serde(default = "default_log_level")]
    pub level: String,
    /// zap's development mode: refused when true (it panics on `dpanic`).
    #[serde(default)]
    pub development: bool,
    /// `console` (tab-separated, as zap) or `json` (one object a line).
    #[serde(default = "default_encoding")]
    pub encoding: String,
    /// Leave out the `caller` (source file and line).
    #[serde(default)]
    pub disable_caller: bool,
    /// No stack traces are written (resolving one costs seconds in a large binary, on the
    /// thread that logs): only `true` is accepted.
    #[serde(default)]
    pub disable_stacktrace: Option<bool>,
    /// Repeated lines per tick: the first `initial`, then every `thereafter`-th.
    #[serde(default)]
    pub sampling: Option<LogSampling>,
    /// `stdout`, `stderr` or file paths the lines go to.
    #[serde(default = "default_output")]
    pub output_paths: Vec<String>,
    /// Where the logger's own failures (a file that cannot be written) are reported.
    #[serde(default = "default_output")]
    pub error_output_paths: Vec<String>,
    /// Fields added to every line.
    #[serde(default)]
    pub initial_fields: IndexMap<String, Value>,
    /// Log record processors exporting the lines over OTLP too (`batch` or `simple`, each
    /// with `exporter.otlp`), as upstream's declarative configuration.
    #[serde(default)]
    pub processors: Vec<LogProcessor>,
}

fn default_log_level() -> String {
    "info".into()
}
fn default_encoding() -> String {
    "console".into()
}
fn default_output() -> Vec<String> {
    vec!["stderr".into()]
}

impl Default for LogsTelemetry {
    fn default() -> Self {
        LogsTelemetry {
            level: default_log_level(),
            development: false,
            encoding: default_encoding(),
            disable_caller: false,
            disable_stacktrace: None,
            sampling: None,
            output_paths: default_output(),
            error_output_paths: default_output(),
            initial_fields: IndexMap::new(),
            processors: Vec::new(),
        }
    }
}

impl LogsTelemetry {
    /// The OTLP exports the log processors ask for, checked.
    pub fn pushes(&self) -> Result<Vec<LogPush>, crate::KeyError> {
        let mut out = Vec::new();
        for (i, p) in self.processors.iter().enumerate() {
            let at = format!("processors[{i}]");
            let (kind, exporter, batch) = match (&p.batch, &p.simple) {
                (Some(b), None) => ("batch", &b.exporter, Some(b)),
                (None, Some(s)) => ("simple", &s.exporter, None),
                _ => {
                    return Err(crate::KeyError::new(at, "exactly one of batch or simple"));
                }
            };
            let at = format!("{at}.{kind}");
            if exporter.console.is_some() {
                return Err(crate::KeyError::new(
                    format!("{at}.exporter.console"),
                    "not implemented: the lines already go to output_paths; only otlp exports",
                ));
            }
            let Some(otlp) = &exporter.otlp else {
                return Err(crate::KeyError::new(format!("{at}.exporter"), "needs otlp"));
            };
            for (key, set) in [
                (
                    "temporality_preference",
                    otlp.temporality_preference.is_some(),
                ),
                (
                    "default_histogram_aggregation",
                    otlp.default_histogram_aggregation.is_some(),
                ),
            ] {
                if set {
                    return Err(crate::KeyError::new(
                        format!("{at}.exporter.otlp.{key}"),
                        "not implemented for logs: a setting of metric exporters",
                    ));
                }
            }
            let get = |v: Option<u64>, default: u64| v.unwrap_or(default);
            let (delay, timeout, queue, max_batch) = match batch {
                // The OpenTelemetry SDKs' defaults for a batch log record processor.
                Some(b) => (
                    get(b.schedule_delay, 1000),
                    get(b.export_timeout, 30_000),
                    get(b.max_queue_size, 2048),
                    get(b.max_export_batch_size, 512),
                ),
                // A simple processor exports each record as it comes.
                None => (0, 30_000, 2048, 1),
            };
            if timeout == 0 || queue == 0 || max_batch == 0 || max_batch > queue {
                return Err(crate::KeyError::new(
                    at,
                    "export_timeout, max_queue_size and max_export_batch_size are above zero, \
                     and max_export_batch_size is at most max_queue_size",
                ));
            }
            let (protocol, exporter) = otlp
                .exporter_config_for(timeout, "logs_endpoint")
                .map_err(|e| e.within(&format!("{at}.exporter.otlp")))?;
            out.push(LogPush {
                path: at,
                schedule_delay: std::time::Duration::from_millis(delay),
                export_timeout: std::time::Duration::from_millis(timeout),
                max_queue_size: queue as usize,
                max_export_batch_size: max_batch as usize,
                protocol,
                exporter,
            });
        }
        Ok(out)
    }

    /// The sampling in effect: upstream samples unless `sampling.enabled: false`.
    pub fn sampling(&self) -> Option<LogSampling> {
        match &self.sampling {
            Some(s) if !s.enabled => None,
            Some(s) => Some(s.clone()),
            None => Some(LogSampling::default()),
        }
    }

    fn check(&self) -> Result<(), crate::KeyError> {
        let level = self.level.to_lowercase();
        if !matches!(
            level.as_str(),
            "debug" | "info" | "warn" | "error" | "dpanic" | "panic" | "fatal"
        ) {
            return Err(crate::KeyError::new(
                "level",
                format!("unknown log level {:?}", self.level),
            ));
        }
        if self.development {
            return Err(crate::KeyError::new(
                "development",
                "not implemented: zap's development mode",
            ));
        }
        if self.disable_stacktrace == Some(false) {
            return Err(crate::KeyError::new(
                "disable_stacktrace",
                "not implemented: log lines carry no stack trace, only true is accepted",
            ));
        }
        if !matches!(self.encoding.as_str(), "console" | "json") {
            return Err(crate::KeyError::new(
                "encoding",
                format!("unknown encoding {:?} (console or json)", self.encoding),
            ));
        }
        self.pushes()?;
        for (key, paths) in [
            ("output_paths", &self.output_paths),
            ("error_output_paths", &self.error_output_paths),
        ] {
            if let Some(p) = paths.iter().find(|p| p.contains("://")) {
                return Err(crate::KeyError::new(
                    key,
                    format!("not implemented: {p:?} (stdout, stderr or a file path)"),
                ));
            }
        }
        Ok(())
    }
}

/// `service.telemetry.logs.sampling`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSampling {
    /// Sampling on (upstream's default) or off.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The window repeated lines are counted in.
    #[serde(default = "default_tick")]
    pub tick: GoDuration,
    /// Lines with the same level and message kept per tick before sampling starts.
    #[serde(default = "default_initial")]
    pub initial: u64,
    /// After `initial`, one line in `thereafter` is kept.
    #[serde(default = "default_thereafter")]
    pub thereafter: u64,
}

fn yes() -> bool {
    true
}
fn default_tick() -> GoDuration {
    GoDuration::secs(10)
}
fn default_initial() -> u64 {
    10
}
fn default_thereafter() -> u64 {
    100
}

impl Default for LogSampling {
    fn default() -> Self {
        LogSampling {
            enabled: true,
            tick: default_tick(),
            initial: default_initial(),
            thereafter: default_thereafter(),
        }
    }
}

/// `service.telemetry.metrics`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsTelemetry {
    /// `none`, `basic`, `normal` or `detailed`; `none` turns the endpoint off.
    #[serde(default = "default_level")]
    pub level: String,
    /// The older `host:port` form of the Prometheus endpoint.
    #[serde(default)]
    pub address: Option<String>,
    /// The newer readers form; one Prometheus pull reader is served, periodic readers are
    /// refused.
    #[serde(default)]
    pub readers: Vec<MetricReader>,
    /// Views: refused unless empty (none are applied).
    #[serde(default)]
    pub views: Option<Value>,
}

fn default_level() -> String {
    "normal".into()
}

impl Default for MetricsTelemetry {
    fn default() -> Self {
        MetricsTelemetry {
            level: default_level(),
            address: None,
            readers: Vec::new(),
            views: None,
        }
    }
}

/// Where and how to serve Prometheus metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrometheusReader {
    /// Listen address, `host:port`.
    pub endpoint: String,
    /// Drop the `_total` suffix on counters (recent upstream's default shape).
    pub without_type_suffix: bool,
    /// No `otel_scope_*` labels (upstream's default for explicit readers).
    pub without_scope_info: bool,
    /// Resource attributes written as labels on every series.
    pub resource_labels: Option<IncludeExclude>,
}

impl PrometheusReader {
    /// An endpoint at `endpoint` with wasmcol's default naming (`_total`, no scope labels, no
    /// resource labels).
    fn default_shape(endpoint: &str) -> PrometheusReader {
        PrometheusReader {
            endpoint: endpoint.to_owned(),
            without_type_suffix: false,
            without_scope_info: true,
            resource_labels: None,
        }
    }
}

/// The declarative configuration's `IncludeExclude` (here `with_resource_constant_labels`):
/// attribute keys, exact or with `*` (any run) and `?` (one character) wildcards.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncludeExclude {
    /// Keys to keep; when absent, every key is kept.
    #[serde(default)]
    pub included: Option<Vec<String>>,
    /// Keys to drop, also when `included` matches them.
    #[serde(default)]
    pub excluded: Vec<String>,
}

impl IncludeExclude {
    /// Whether `key` passes the lists.
    pub fn keeps(&self, key: &str) -> bool {
        if self.excluded.iter().any(|p| glob(p, key)) {
            return false;
        }
        match &self.included {
            Some(included) => included.iter().any(|p| glob(p, key)),
            None => true,
        }
    }
}

/// `*` matches any run of characters, `?` one character, anything else itself.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    // The classic two-pointer walk with one backtrack point: linear in practice.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// One entry of `metrics.readers`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricReader {
    /// A pull reader (a Prometheus endpoint).
    #[serde(default)]
    pub pull: Option<PullReader>,
    /// A periodic reader pushing over OTLP.
    #[serde(default)]
    pub periodic: Option<PeriodicReader>,
}

/// `readers[*].periodic`, upstream's (otelconf) shape: durations in milliseconds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeriodicReader {
    /// Milliseconds between pushes (60000).
    #[serde(default = "default_interval_ms")]
    pub interval: u64,
    /// Milliseconds one push may take (30000).
    #[serde(default = "default_push_timeout_ms")]
    pub timeout: u64,
    /// Where the metrics go.
    pub exporter: PushExporter,
    /// Metric producers: refused unless empty (only the collector's own metrics are read).
    #[serde(default)]
    pub producers: Option<Value>,
    /// Cardinality limits: refused (no limit is applied).
    #[serde(default)]
    pub cardinality_limits: Option<Value>,
}

fn default_interval_ms() -> u64 {
    60_000
}
fn default_push_timeout_ms() -> u64 {
    30_000
}

/// `readers[*].periodic.exporter`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushExporter {
    /// OTLP over gRPC or HTTP.
    #[serde(default)]
    pub otlp: Option<OtlpPush>,
    /// The console exporter: refused.
    #[serde(default)]
    pub console: Option<Value>,
}

/// `readers[*].periodic.exporter.otlp`, upstream's (otelconf) keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpPush {
    /// `grpc`, `http/protobuf` (`http/json` is refused).
    pub protocol: String,
    /// gRPC: `scheme://host:port`; HTTP: the full URL (`http://host:4318/v1/metrics`).
    pub endpoint: String,
    /// CA certificate file to verify the server with.
    #[serde(default)]
    pub certificate: Option<String>,
    /// Client certificate file (mutual TLS).
    #[serde(default)]
    pub client_certificate: Option<String>,
    /// Client key file (mutual TLS).
    #[serde(default)]
    pub client_key: Option<String>,
    /// Headers on every push, as `{name, value}` pairs.
    #[serde(default)]
    pub headers: Vec<NameValue>,
    /// Headers as `name=value,name=value` (the pairs in `headers` win).
    #[serde(default)]
    pub headers_list: Option<String>,
    /// `gzip` or `none` (upstream's default: none).
    #[serde(default)]
    pub compression: Option<String>,
    /// Milliseconds one request may take (10000).
    #[serde(default)]
    pub timeout: Option<u64>,
    /// Plaintext for a gRPC endpoint without a scheme.
    #[serde(default)]
    pub insecure: Option<bool>,
    /// Only `cumulative` (upstream's default) is implemented.
    #[serde(default)]
    pub temporality_preference: Option<String>,
    /// Only `explicit_bucket_histogram` (upstream's default) is implemented.
    #[serde(default)]
    pub default_histogram_aggregation: Option<String>,
}

/// One `{name, value}` header.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NameValue {
    /// Header name.
    pub name: String,
    /// Header value.
    pub value: String,
}

/// The transport of a periodic reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushProtocol {
    /// OTLP/gRPC.
    Grpc,
    /// OTLP/HTTP with protobuf bodies.
    HttpProtobuf,
}

/// A periodic reader, resolved: how often, how long, and the OTLP exporter (`otlp` or
/// `otlphttp` component config) that sends the pushes.
#[derive(Debug, Clone)]
pub struct PeriodicPush {
    /// Key path, for messages.
    pub path: String,
    /// Time between pushes.
    pub interval: std::time::Duration,
    /// Time one push may take.
    pub timeout: std::time::Duration,
    /// Which exporter the config is for.
    pub protocol: PushProtocol,
    /// The exporter's component config, built from the reader's keys.
    pub exporter: Value,
}

/// One entry of `service.telemetry.logs.processors`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogProcessor {
    /// A batch log record processor.
    #[serde(default)]
    pub batch: Option<BatchLogProcessor>,
    /// A simple log record processor (each record exported as it comes).
    #[serde(default)]
    pub simple: Option<SimpleLogProcessor>,
}

/// `processors[*].batch`: the OpenTelemetry SDKs' batch log record processor.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchLogProcessor {
    /// Milliseconds between exports (1000).
    #[serde(default)]
    pub schedule_delay: Option<u64>,
    /// Milliseconds one export may take (30000).
    #[serde(default)]
    pub export_timeout: Option<u64>,
    /// Records waiting at most; more are dropped and counted (2048).
    #[serde(default)]
    pub max_queue_size: Option<u64>,
    /// Records per export at most (512).
    #[serde(default)]
    pub max_export_batch_size: Option<u64>,
    /// Where the records go.
    pub exporter: LogExporter,
}

/// `processors[*].simple`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimpleLogProcessor {
    /// Where the records go.
    pub exporter: LogExporter,
}

/// A log processor's exporter: `otlp` (`console` is refused).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogExporter {
    /// Over OTLP, with the same keys as a periodic metric reader's exporter.
    #[serde(default)]
    pub otlp: Option<OtlpPush>,
    /// Refused: the lines already go to `output_paths`.
    #[serde(default)]
    pub console: Option<Value>,
}

/// A log processor, checked: its queue and batching, and the exporter config to build.
#[derive(Debug, Clone)]
pub struct LogPush {
    /// Key path, for messages.
    pub path: String,
    /// Time between exports (zero: as soon as records wait).
    pub schedule_delay: std::time::Duration,
    /// Time one export may take.
    pub export_timeout: std::time::Duration,
    /// Records waiting at most.
    pub max_queue_size: usize,
    /// Records per export at most.
    pub max_export_batch_size: usize,
    /// Which exporter the config is for.
    pub protocol: PushProtocol,
    /// The exporter's component config, built from the processor's keys.
    pub exporter: Value,
}

impl OtlpPush {
    /// The `otlp` / `otlphttp` exporter config that does what these keys ask, with the
    /// exporter's own queue and retries off: a failed push is dropped and the next one carries
    /// the (cumulative) values again.
    fn exporter_config(
        &self,
        push_timeout_ms: u64,
    ) -> Result<(PushProtocol, Value), crate::KeyError> {
        self.exporter_config_for(push_timeout_ms, "metrics_endpoint")
    }

    /// As [`exporter_config`](Self::exporter_config), with the `otlphttp` exporter's
    /// per-signal endpoint key (`metrics_endpoint`, `logs_endpoint`) the URL goes to.
    fn exporter_config_for(
        &self,
        push_timeout_ms: u64,
        http_endpoint_key: &str,
    ) -> Result<(PushProtocol, Value), crate::KeyError> {
        use serde_yaml::Mapping;
        let protocol = match self.protocol.as_str() {
            "grpc" => PushProtocol::Grpc,
            "http/protobuf" => PushProtocol::HttpProtobuf,
            "http/json" => {
                return Err(crate::KeyError::new(
                    "protocol",
                    "not implemented: http/json (grpc or http/protobuf)",
                ));
            }
            other => {
                return Err(crate::KeyError::new(
                    "protocol",
                    format!("unknown protocol {other:?} (grpc, http/protobuf)"),
                ));
            }
        };
        if self.endpoint.is_empty() {
            return Err(crate::KeyError::new("endpoint", "required"));
        }
        for (key, value, only) in [
            (
                "temporality_preference",
                &self.temporality_preference,
                "cumulative",
            ),
            (
                "default_histogram_aggregation",
                &self.default_histogram_aggregation,
                "explicit_bucket_histogram",
            ),
        ] {
            if let Some(v) = value
                && v != only
            {
                return Err(crate::KeyError::new(
                    key,
                    format!("not implemented: {v:?} (only {only})"),
                ));
            }
        }
        let compression = match self.compression.as_deref() {
            None | Some("none") | Some("") => "none",
            Some("gzip") => "gzip",
            Some(other) => {
                return Err(crate::KeyError::new(
                    "compression",
                    format!("unknown compression {other:?} (gzip or none)"),
                ));
            }
        };
        let mut headers = Mapping::new();
        if let Some(list) = &self.headers_list {
            for pair in list.split(',').filter(|p| !p.trim().is_empty()) {
                let Some((k, v)) = pair.split_once('=') else {
                    return Err(crate::KeyError::new(
                        "headers_list",
                        format!("{pair:?} is not name=value"),
                    ));
                };
                headers.insert(k.trim().into(), v.trim().into());
            }
        }
        for h in &self.headers {
            headers.insert(h.name.clone().into(), h.value.clone().into());
        }
        let mut tls = Mapping::new();
        if let Some(insecure) = self.insecure {
            tls.insert("insecure".into(), insecure.into());
        }
        for (key, ours) in [
            (&self.certificate, "ca_file"),
            (&self.client_certificate, "cert_file"),
            (&self.client_key, "key_file"),
        ] {
            if let Some(file) = key {
                tls.insert(ours.into(), file.clone().into());
            }
        }
        let timeout_ms = self.timeout.unwrap_or(10_000).min(push_timeout_ms);
        let mut cfg = Mapping::new();
        let endpoint_key = match protocol {
            PushProtocol::Grpc => "endpoint",
            PushProtocol::HttpProtobuf => http_endpoint_key,
        };
        cfg.insert(endpoint_key.into(), self.endpoint.clone().into());
        cfg.insert("compression".into(), compression.into());
        cfg.insert("headers".into(), Value::Mapping(headers));
        cfg.insert("tls".into(), Value::Mapping(tls));
        cfg.insert("timeout".into(), format!("{timeout_ms}ms").into());
        let off = || {
            let mut m = Mapping::new();
            m.insert("enabled".into(), false.into());
            Value::Mapping(m)
        };
        cfg.insert("retry_on_failure".into(), off());
        cfg.insert("sending_queue".into(), off());
        Ok((protocol, Value::Mapping(cfg)))
    }
}

/// `readers[*].pull`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PullReader {
    /// The exporter; only `prometheus` exists upstream.
    pub exporter: PullExporter,
}

/// `readers[*].pull.exporter`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PullExporter {
    /// The Prometheus endpoint's settings.
    pub prometheus: PromConfig,
}

/// `readers[*].pull.exporter.prometheus`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromConfig {
    /// Listen host (default `localhost`).
    #[serde(default)]
    pub host: Option<String>,
    /// Listen port (default 8888).
    #[serde(default)]
    pub port: Option<u16>,
    /// Drop `_total` on counters.
    #[serde(default)]
    pub without_type_suffix: Option<bool>,
    /// Names carry no unit suffix here: only `true` is accepted.
    #[serde(default)]
    pub without_units: Option<bool>,
    /// `false` adds `otel_scope_name` / `otel_scope_version` labels (default `true`).
    #[serde(default)]
    pub without_scope_info: Option<bool>,
    /// Resource attributes to write as labels on every series.
    #[serde(default)]
    pub with_resource_constant_labels: Option<IncludeExclude>,
}

impl MetricsTelemetry {
    /// The Prometheus endpoints to serve, in config order; none when metrics are off or
    /// every reader pushes.
    ///
    /// Counters carry `_total` unless `without_type_suffix: true` (`docs/design.md#differences`: the seed's
    /// alert rules use the suffixed names).
    pub fn prometheus(&self) -> Result<Vec<PrometheusReader>, crate::KeyError> {
        if !matches!(
            self.level.as_str(),
            "none" | "basic" | "normal" | "detailed"
        ) {
            return Err(crate::KeyError::new(
                "level",
                format!("unknown metrics level {:?}", self.level),
            ));
        }
        if matches!(&self.views, Some(Value::Sequence(v)) if !v.is_empty())
            || matches!(&self.views, Some(Value::Mapping(_)))
        {
            return Err(crate::KeyError::new(
                "views",
                "not implemented: views are not applied",
            ));
        }
        // As upstream, `none` turns every reader off, so their settings have nothing to do.
        if self.level == "none" {
            return Ok(Vec::new());
        }
        if let Some(addr) = &self.address {
            return Ok(vec![PrometheusReader {
                endpoint: addr.clone(),
                ..PrometheusReader::default_shape("")
            }]);
        }
        let mut served = Vec::new();
        for (i, reader) in self.readers.iter().enumerate() {
            let at = format!("readers[{i}]");
            let pull = match (&reader.pull, &reader.periodic) {
                (Some(pull), None) => pull,
                (None, Some(_)) => continue,
                _ => {
                    return Err(crate::KeyError::new(
                        at,
                        "a reader needs one of pull or periodic",
                    ));
                }
            };
            let at = format!("{at}.pull.exporter.prometheus");
            let cfg = &pull.exporter.prometheus;
            if cfg.without_units == Some(false) {
                return Err(crate::KeyError::new(
                    format!("{at}.without_units"),
                    "not implemented: only true is accepted (the Prometheus exporter would \
                     write a unit twice on names that already end in it, \
                     `..._seconds_seconds`)",
                ));
            }
            let host = cfg.host.clone().unwrap_or_else(|| "localhost".into());
            let port = cfg.port.unwrap_or(8888);
            let host = if host.contains(':') && !host.starts_with('[') {
                format!("[{host}]")
            } else {
                host
            };
            served.push(PrometheusReader {
                endpoint: format!("{host}:{port}"),
                without_type_suffix: cfg.without_type_suffix.unwrap_or(false),
                without_scope_info: cfg.without_scope_info.unwrap_or(true),
                resource_labels: cfg.with_resource_constant_labels.clone(),
            });
        }
        // Upstream serves localhost:8888 when no reader is configured; readers that only push
        // leave no endpoint.
        if self.readers.is_empty() {
            served.push(PrometheusReader::default_shape("localhost:8888"));
        }
        Ok(served)
    }

    /// The periodic OTLP readers (none when `level` is `none`).
    pub fn periodic(&self) -> Result<Vec<PeriodicPush>, crate::KeyError> {
        if self.level == "none" {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for (i, reader) in self.readers.iter().enumerate() {
            let Some(p) = &reader.periodic else {
                continue;
            };
            let at = format!("readers[{i}].periodic");
            for (key, value) in [
                ("producers", &p.producers),
                ("cardinality_limits", &p.cardinality_limits),
            ] {
                let empty = match value {
                    None | Some(Value::Null) => true,
                    Some(Value::Sequence(s)) => s.is_empty(),
                    Some(Value::Mapping(m)) => m.is_empty(),
                    Some(_) => false,
                };
                if !empty {
                    return Err(crate::KeyError::new(
                        format!("{at}.{key}"),
                        "not implemented: only the collector's own metrics are pushed, without limits",
                    ));
                }
            }
            if p.interval == 0 || p.timeout == 0 {
                return Err(crate::KeyError::new(
                    at,
                    "interval and timeout are milliseconds above zero",
                ));
            }
            if p.exporter.console.is_some() {
                return Err(crate::KeyError::new(
                    format!("{at}.exporter.console"),
                    "not implemented: only the otlp exporter pushes",
                ));
            }
            let Some(otlp) = &p.exporter.otlp else {
                return Err(crate::KeyError::new(format!("{at}.exporter"), "needs otlp"));
            };
            let (protocol, exporter) = otlp
                .exporter_config(p.timeout)
                .map_err(|e| e.within(&format!("{at}.exporter.otlp")))?;
            out.push(PeriodicPush {
                path: at,
                interval: std::time::Duration::from_millis(p.interval),
                timeout: std::time::Duration::from_millis(p.timeout),
                protocol,
                exporter,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn telemetry(yaml: &str) -> TelemetryConfig {
        serde_yaml::from_str(yaml).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn prometheus_reader_takes_scope_info_and_resource_labels() {
        let t = telemetry(
            "metrics:
  readers:
    - pull:
        exporter:
          prometheus:
            port: 9999
            without_scope_info: false
            with_resource_constant_labels:
              included: ['service.*', 'k8s.pod.name']
              excluded: [service.version]
",
        );
        let p = t.metrics.prometheus().unwrap().remove(0);
        assert_eq!(p.endpoint, "localhost:9999");
        assert!(!p.without_scope_info);
        let labels = p.resource_labels.unwrap();
        for (key, kept) in [
            ("service.name", true),
            ("service.instance.id", true),
            ("service.version", false),
            ("k8s.pod.name", true),
            ("k8s.pod.uid", false),
            ("host.name", false),
        ] {
            assert_eq!(labels.keeps(key), kept, "{key}");
        }
        // Defaults: no scope labels, no resource labels.
        let p = telemetry("metrics: {}")
            .metrics
            .prometheus()
            .unwrap()
            .remove(0);
        assert!(p.without_scope_info);
        assert_eq!(p.resource_labels, None);
        // `?` is one character; without `included` every key not excluded is kept.
        let only_excluded = IncludeExclude {
            included: None,
            excluded: vec!["host.?d".into()],
        };
        assert!(!only_excluded.keeps("host.id"));
        assert!(only_excluded.keeps("host.name"));
        // An unknown key under the lists is refused by name.
        let bad: Result<TelemetryConfig, _> = serde_yaml::from_str(
            "metrics: {readers: [{pull: {exporter: {prometheus: {with_resource_constant_labels: {include: [a]}}}}}]}",
        );
        assert!(bad.unwrap_err().to_string().contains("include"));
    }

    #[test]
    fn periodic_reader_becomes_an_exporter_config() {
        let t = telemetry(
            "metrics:
  readers:
    - periodic:
        interval: 1000
        exporter:
          otlp:
            protocol: http/protobuf
            endpoint: https://backend:4318/v1/metrics
            certificate: ca.pem
            headers_list: a=1,b=2
            headers: [{name: b, value: '3'}]
            compression: gzip
            timeout: 90000
",
        );
        assert!(t.check().is_ok());
        let pushes = t.metrics.periodic().unwrap_or_default();
        assert_eq!(pushes.len(), 1);
        let p = &pushes[0];
        assert_eq!(p.interval, std::time::Duration::from_secs(1));
        assert_eq!(p.timeout, std::time::Duration::from_secs(30));
        assert_eq!(p.protocol, PushProtocol::HttpProtobuf);
        let cfg = &p.exporter;
        assert_eq!(cfg["metrics_endpoint"], "https://backend:4318/v1/metrics");
        assert_eq!(cfg["headers"]["a"], "1");
        assert_eq!(cfg["headers"]["b"], "3", "the pairs win over headers_list");
        assert_eq!(cfg["tls"]["ca_file"], "ca.pem");
        assert_eq!(cfg["compression"], "gzip");
        assert_eq!(cfg["timeout"], "30000ms", "capped by the reader's timeout");
        assert_eq!(cfg["retry_on_failure"]["enabled"], false);
        // A push-only config serves no Prometheus endpoint.
        assert_eq!(t.metrics.prometheus().ok(), Some(Vec::new()));
    }

    #[test]
    fn unimplemented_periodic_keys_are_refused_with_their_path() {
        for (yaml, path) in [
            (
                "exporter: {otlp: {protocol: grpc, endpoint: 'x:1', temporality_preference: delta}}",
                "metrics.readers[0].periodic.exporter.otlp.temporality_preference",
            ),
            (
                "exporter: {console: {}}",
                "metrics.readers[0].periodic.exporter.console",
            ),
            (
                "exporter: {otlp: {protocol: grpc, endpoint: 'x:1'}}\n        producers: [{opencensus: {}}]",
                "metrics.readers[0].periodic.producers",
            ),
        ] {
            let t = telemetry(&format!(
                "metrics:\n  readers:\n    - periodic:\n        {yaml}\n"
            ));
            match t.check() {
                Err(e) => assert_eq!(e.path, path, "{e}"),
                Ok(()) => panic!("accepted: {yaml}"),
            }
        }
    }

    #[test]
    fn resource_defaults_overrides_and_removals() {
        let t = telemetry(
            "resource:
  service.name: edge
  service.version: null
  region: eu
",
        );
        assert!(t.check().is_ok());
        let r = t.resource("wasmcol", "id-1", "1.0");
        let get = |k: &str| r.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
        assert_eq!(get("service.name"), Some("edge"));
        assert_eq!(get("service.instance.id"), Some("id-1"));
        assert_eq!(get("service.version"), None);
        assert_eq!(get("region"), Some("eu"));
        assert!(telemetry("resource: {a: [1]}").check().is_err());
    }

    /// `logs.processors`: the SDKs' batch defaults, a simple processor exporting each record,
    /// the HTTP URL going to the exporter's `logs_endpoint`, and what is refused by path.
    #[test]
    fn log_processors_become_exports() {
        let t = telemetry(
            "logs:
  processors:
    - batch:
        exporter:
          otlp: {protocol: grpc, endpoint: 'http://backend:4317'}
    - simple:
        exporter:
          otlp: {protocol: http/protobuf, endpoint: 'https://backend:4318/v1/logs'}
",
        );
        assert!(t.check().is_ok());
        let p = t.logs.pushes().unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].path, "processors[0].batch");
        assert_eq!(p[0].schedule_delay, std::time::Duration::from_secs(1));
        assert_eq!(
            (p[0].max_queue_size, p[0].max_export_batch_size),
            (2048, 512)
        );
        assert_eq!(p[0].protocol, PushProtocol::Grpc);
        assert_eq!(p[1].schedule_delay, std::time::Duration::ZERO);
        assert_eq!(p[1].max_export_batch_size, 1);
        assert_eq!(
            p[1].exporter.get("logs_endpoint").and_then(Value::as_str),
            Some("https://backend:4318/v1/logs")
        );
        for (yaml, path) in [
            (
                "logs: {processors: [{batch: {max_queue_size: 10, max_export_batch_size: 20, exporter: {otlp: {protocol: grpc, endpoint: x}}}}]}",
                "logs.processors[0].batch",
            ),
            (
                "logs: {processors: [{batch: {exporter: {console: {}}}}]}",
                "logs.processors[0].batch.exporter.console",
            ),
            ("logs: {processors: [{}]}", "logs.processors[0]"),
            (
                "logs: {processors: [{simple: {exporter: {otlp: {protocol: grpc, endpoint: ''}}}}]}",
                "logs.processors[0].simple.exporter.otlp.endpoint",
            ),
        ] {
            match telemetry(yaml).check() {
                Err(e) => assert_eq!(e.path, path, "{yaml}: {e}"),
                Ok(()) => panic!("accepted: {yaml}"),
            }
        }
    }

    /// The declarative configuration's shape: a list of `{name, value, type}`, then
    /// `attributes_list`, over the defaults; each mistake named by its path.
    #[test]
    fn declarative_resource_form() {
        let t = telemetry(
            "resource:
  attributes:
    - name: service.name
      value: edge
    - name: shard
      value: 3
      type: int
  attributes_list: \"team=obs, shard=9\"
",
        );
        assert_eq!(t.check(), Ok(()));
        let r = t.resource("wasmcol", "id-1", "1.0");
        let get = |k: &str| r.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
        assert_eq!(get("service.name"), Some("edge"));
        assert_eq!(get("service.instance.id"), Some("id-1"));
        assert_eq!(
            get("shard"),
            Some("3"),
            "attributes win over attributes_list"
        );
        assert_eq!(get("team"), Some("obs"));
        for (yaml, path) in [
            (
                "resource: {attributes: [{value: x}]}",
                "resource.attributes[0].name",
            ),
            (
                "resource: {attributes: [{name: a, value: x, type: int}]}",
                "resource.attributes[0].value",
            ),
            (
                "resource: {attributes: [{name: a, value: [x], type: string_array}]}",
                "resource.attributes[0].type",
            ),
            (
                "resource: {attributes: [{name: a, value: x, colour: red}]}",
                "resource.attributes[0].colour",
            ),
            (
                "resource: {attributes: [], schema_url: x}",
                "resource.schema_url",
            ),
            (
                "resource: {attributes_list: \"a\"}",
                "resource.attributes_list",
            ),
        ] {
            match telemetry(yaml).check() {
                Err(e) => assert_eq!(e.path, path, "{yaml}: {e}"),
                Ok(()) => panic!("accepted: {yaml}"),
            }
        }
    }
}
