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
    /// Logging (`level`, `encoding`, ...); `level` is honoured, the rest accepted.
    #[serde(default)]
    pub logs: Option<Value>,
    /// Internal metrics.
    #[serde(default)]
    pub metrics: MetricsTelemetry,
    /// Internal traces: accepted for compatibility, not produced.
    #[serde(default)]
    pub traces: Option<Value>,
    /// Resource attributes of the collector's own telemetry.
    #[serde(default)]
    pub resource: Option<Value>,
}

impl TelemetryConfig {
    /// The `logs.level` setting, if any.
    pub fn log_level(&self) -> Option<String> {
        self.logs
            .as_ref()?
            .get("level")?
            .as_str()
            .map(str::to_owned)
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
    /// The newer readers form; the first Prometheus pull reader is served.
    #[serde(default)]
    pub readers: Vec<Value>,
    /// Views: accepted, not applied.
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PromConfig {
    #[serde(default)]
    host: Option<String>,
    #[serde(default)]
    port: Option<u16>,
    #[serde(default)]
    without_type_suffix: Option<bool>,
    #[serde(default)]
    without_units: Option<bool>,
    #[serde(default)]
    without_scope_info: Option<bool>,
    #[serde(default)]
    with_resource_constant_labels: Option<Value>,
}

impl MetricsTelemetry {
    /// The Prometheus endpoint to serve, or `None` when metrics are off.
    ///
    /// Counters carry `_total` unless `without_type_suffix: true` (`docs/design.md#differences`: the seed's
    /// alert rules use the suffixed names).
    pub fn prometheus(&self) -> Result<Option<PrometheusReader>, crate::KeyError> {
        if self.level == "none" {
            return Ok(None);
        }
        if !matches!(self.level.as_str(), "basic" | "normal" | "detailed") {
            return Err(crate::KeyError::new(
                "level",
                format!("unknown metrics level {:?}", self.level),
            ));
        }
        if let Some(addr) = &self.address {
            return Ok(Some(PrometheusReader {
                endpoint: addr.clone(),
                without_type_suffix: false,
            }));
        }
        for (i, reader) in self.readers.iter().enumerate() {
            let Some(prom) = reader
                .get("pull")
                .and_then(|p| p.get("exporter"))
                .and_then(|e| e.get("prometheus"))
            else {
                continue;
            };
            let cfg: PromConfig = crate::decode(prom)
                .map_err(|e| e.within(&format!("readers[{i}].pull.exporter.prometheus")))?;
            let _ = (
                &cfg.without_units,
                &cfg.without_scope_info,
                &cfg.with_resource_constant_labels,
            );
            let host = cfg.host.unwrap_or_else(|| "localhost".into());
            let port = cfg.port.unwrap_or(8888);
            let host = if host.contains(':') && !host.starts_with('[') {
                format!("[{host}]")
            } else {
                host
            };
            return Ok(Some(PrometheusReader {
                endpoint: format!("{host}:{port}"),
                without_type_suffix: cfg.without_type_suffix.unwrap_or(false),
            }));
        }
        if self.readers.is_empty() {
            return Ok(Some(PrometheusReader {
                endpoint: "localhost:8888".into(),
                without_type_suffix: false,
            }));
        }
        Ok(None)
    }
}
