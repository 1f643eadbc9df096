use indexmap::IndexMap;
use serde::Deserialize;

use crate::{ComponentId, GoDuration, PipelineId, Value};

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
    /// Resource attributes of the collector's own telemetry: refused until they reach an output.
    #[serde(default)]
    pub resource: Option<Value>,
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
        if matches!(&self.resource, Some(Value::Mapping(m)) if !m.is_empty()) {
            return Err(crate::KeyError::new(
                "resource",
                "not implemented: the Prometheus endpoint does not export resource attributes",
            ));
        }
        Ok(())
    }
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
    /// OTLP log processors: refused (the logs go only to `output_paths`).
    #[serde(default)]
    pub processors: Option<Value>,
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
            processors: None,
        }
    }
}

impl LogsTelemetry {
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
        if matches!(&self.processors, Some(Value::Sequence(s)) if !s.is_empty())
            || matches!(&self.processors, Some(Value::Mapping(_)))
        {
            return Err(crate::KeyError::new(
                "processors",
                "not implemented: the collector's logs are not exported over OTLP",
            ));
        }
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
}

/// One entry of `metrics.readers`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricReader {
    /// A pull reader (a Prometheus endpoint).
    #[serde(default)]
    pub pull: Option<PullReader>,
    /// A periodic reader pushing over OTLP: refused, not implemented.
    #[serde(default)]
    pub periodic: Option<Value>,
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
    /// No `otel_scope_*` labels are written here: only `true` is accepted.
    #[serde(default)]
    pub without_scope_info: Option<bool>,
    /// Refused: no resource attributes are exported.
    #[serde(default)]
    pub with_resource_constant_labels: Option<Value>,
}

impl MetricsTelemetry {
    /// The Prometheus endpoint to serve, or `None` when metrics are off.
    ///
    /// Counters carry `_total` unless `without_type_suffix: true` (`docs/design.md#differences`: the seed's
    /// alert rules use the suffixed names).
    pub fn prometheus(&self) -> Result<Option<PrometheusReader>, crate::KeyError> {
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
            return Ok(None);
        }
        if let Some(addr) = &self.address {
            return Ok(Some(PrometheusReader {
                endpoint: addr.clone(),
                without_type_suffix: false,
            }));
        }
        let mut served = None;
        for (i, reader) in self.readers.iter().enumerate() {
            let at = format!("readers[{i}]");
            if reader.periodic.is_some() {
                return Err(crate::KeyError::new(
                    format!("{at}.periodic"),
                    "not implemented: the collector's own metrics are only served by a pull.exporter.prometheus reader",
                ));
            }
            let Some(pull) = &reader.pull else {
                return Err(crate::KeyError::new(at, "a reader needs pull or periodic"));
            };
            let at = format!("{at}.pull.exporter.prometheus");
            let cfg = &pull.exporter.prometheus;
            for (key, value) in [
                ("without_units", cfg.without_units),
                ("without_scope_info", cfg.without_scope_info),
            ] {
                if value == Some(false) {
                    return Err(crate::KeyError::new(
                        format!("{at}.{key}"),
                        "not implemented: only true (the names and labels wasmcol writes) is accepted",
                    ));
                }
            }
            if cfg.with_resource_constant_labels.is_some() {
                return Err(crate::KeyError::new(
                    format!("{at}.with_resource_constant_labels"),
                    "not implemented: no resource attributes are exported",
                ));
            }
            if served.is_some() {
                return Err(crate::KeyError::new(
                    at,
                    "not implemented: a second Prometheus reader (one endpoint is served)",
                ));
            }
            let host = cfg.host.clone().unwrap_or_else(|| "localhost".into());
            let port = cfg.port.unwrap_or(8888);
            let host = if host.contains(':') && !host.starts_with('[') {
                format!("[{host}]")
            } else {
                host
            };
            served = Some(PrometheusReader {
                endpoint: format!("{host}:{port}"),
                without_type_suffix: cfg.without_type_suffix.unwrap_or(false),
            });
        }
        Ok(Some(served.unwrap_or_else(|| PrometheusReader {
            endpoint: "localhost:8888".into(),
            without_type_suffix: false,
        })))
    }
}
