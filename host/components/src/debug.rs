//! The `debug` exporter (logs what it receives) and the `nop` exporter (discards it).
//!
//! `debug` logs upstream's summary line for every batch (`Traces {"resource spans": 1,
//! "spans": 2}`). With `verbosity: normal` it adds upstream's one-line-per-item text; with
//! `detailed` it adds the batch as pretty-printed OTLP/JSON (upstream prints its own text
//! layout there; JSON carries the same fields and can be fed back to `wasmcol plugin run`).
//! Output goes to the collector's log, sampled per second like upstream's zap sampler, or with
//! `use_internal_logger: false` unsampled to stdout. `sending_queue`, `retry_on_failure` and
//! `timeout` are accepted and handed to the delivery chain; all three are off unless set.

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::Mutex;
use serde::{Deserialize, Deserializer};
use tokio::time::{Duration, Instant};
use wasmcol_config::exporterhelper::{HelperConfig, QueueConfig, RetryConfig};
use wasmcol_config::{GoDuration, Value};
use wasmcol_core::{
    Batch, BuildError, ConsumeError, CreateContext, ExporterFactory, ExporterParts, Lifecycle,
    PermanentError, Sender, Signal, Tasks,
};
use wasmcol_pdata::proto::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use wasmcol_pdata::proto::metrics::v1::{metric, number_data_point};

/// How much the debug exporter prints per batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Verbosity {
    /// The summary line only.
    #[default]
    Basic,
    /// Plus one line per span, data point or log record.
    Normal,
    /// Plus the whole batch as OTLP/JSON.
    Detailed,
}

impl<'de> Deserialize<'de> for Verbosity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        // Upstream parses a telemetry level case-insensitively, then rejects `none`.
        match s.to_lowercase().as_str() {
            "basic" => Ok(Verbosity::Basic),
            "normal" => Ok(Verbosity::Normal),
            "detailed" => Ok(Verbosity::Detailed),
            "none" => Err(serde::de::Error::custom(
                "verbosity level \"None\" is not supported",
            )),
            _ => Err(serde::de::Error::custom(format!(
                "unknown metrics level {s:?}"
            ))),
        }
    }
}

/// `exporters: debug:` with upstream's keys and defaults.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DebugConfig {
    /// `basic` (default), `normal` or `detailed`.
    pub verbosity: Verbosity,
    /// Batches logged per second before sampling starts (2).
    pub sampling_initial: u64,
    /// After that, one in this many is logged (1: all; 0: none).
    pub sampling_thereafter: u64,
    /// Log through the collector's logger (true) or print to stdout, unsampled (false).
    pub use_internal_logger: bool,
    /// Queue; off unless configured.
    pub sending_queue: Option<QueueConfig>,
    /// Retry; off unless configured.
    pub retry_on_failure: Option<RetryConfig>,
    /// Per-attempt timeout; none unless configured.
    pub timeout: Option<GoDuration>,
}

impl Default for DebugConfig {
    fn default() -> Self {
        DebugConfig {
            verbosity: Verbosity::Basic,
            sampling_initial: 2,
            sampling_thereafter: 1,
            use_internal_logger: true,
            sending_queue: None,
            retry_on_failure: None,
            timeout: None,
        }
    }
}

impl DebugConfig {
    /// The delivery settings: upstream's defaults where a section is given, off otherwise.
    pub fn helper(&self) -> HelperConfig {
        let off = HelperConfig::disabled();
        HelperConfig {
            timeout: self.timeout,
            retry: self.retry_on_failure.clone().unwrap_or(off.retry),
            queue: self.sending_queue.clone().unwrap_or(off.queue),
        }
    }
}

/// Builds `debug` exporters.
pub struct DebugFactory;

impl ExporterFactory for DebugFactory {
    fn create(
        &self,
        ctx: &CreateContext,
        config: &Value,
        _signal: Signal,
    ) -> Result<ExporterParts, BuildError> {
        let cfg: DebugConfig = wasmcol_config::decode(config).map_err(BuildError::new)?;
        let helper = cfg.helper();
        crate::check(helper.validate())?;
        Ok(ExporterParts {
            sender: Arc::new(DebugSender {
                verbosity: cfg.verbosity,
                use_internal_logger: cfg.use_internal_logger,
                sampler: Sampler::new(cfg.sampling_initial, cfg.sampling_thereafter),
                id: ctx.id.to_string(),
                tasks: ctx.tasks.clone(),
            }),
            helper,
        })
    }
}

/// The debug exporter's send step.
pub struct DebugSender {
    verbosity: Verbosity,
    use_internal_logger: bool,
    sampler: Sampler,
    id: String,
    tasks: Tasks,
}

#[async_trait]
impl Sender for DebugSender {
    async fn send(&self, batch: Batch) -> Result<(), ConsumeError> {
        let text = render(&batch, self.verbosity)
            .map_err(|e| PermanentError::from(e).context("debug exporter"))?;
        if self.use_internal_logger {
            if self.sampler.allow() {
                tracing::info!(exporter = %self.id, "{}", text.summary);
                if let Some(detail) = text.detail {
                    tracing::info!(exporter = %self.id, "{detail}");
                }
            }
            return Ok(());
        }
        let mut out = text.summary;
        out.push('\n');
        if let Some(detail) = text.detail {
            out.push_str(&detail);
        }
        // Writing to stdout can block when it is a pipe nobody reads.
        self.tasks
            .spawn_blocking(move || {
                let mut stdout = std::io::stdout().lock();
                stdout.write_all(out.as_bytes())?;
                stdout.flush()
            })
            .await
            .map_err(|e| ConsumeError::permanent(format!("debug exporter: {e}")))?
            .map_err(|e| ConsumeError::retryable(format!("debug exporter: writing to stdout: {e}")))
    }
}

#[async_trait]
impl Lifecycle for DebugSender {}

/// zap's sampler: per one-second window, the first `initial` messages pass, then every
/// `thereafter`-th.
struct Sampler {
    initial: u64,
    thereafter: u64,
    window: Mutex<(Instant, u64)>,
}

impl Sampler {
    fn new(initial: u64, thereafter: u64) -> Self {
        Sampler {
            initial,
            thereafter,
            window: Mutex::new((Instant::now(), 0)),
        }
    }

    fn allow(&self) -> bool {
        let now = Instant::now();
        let mut w = self.window.lock();
        if now.duration_since(w.0) >= Duration::from_secs(1) {
            *w = (now, 0);
        }
        w.1 += 1;
        let n = w.1;
        n <= self.initial
            || (self.thereafter > 0 && (n - self.initial).is_multiple_of(self.thereafter))
    }
}

/// What the debug exporter prints for one batch.
pub struct Rendered {
    /// Upstream's summary line.
    pub summary: String,
    /// The per-item text (normal) or OTLP/JSON (detailed).
    pub detail: Option<String>,
}

/// Renders `batch` at `verbosity`.
pub fn render(batch: &Batch, verbosity: Verbosity) -> Result<Rendered, wasmcol_pdata::JsonError> {
    let detail = match verbosity {
        Verbosity::Basic => None,
        Verbosity::Normal => Some(normal(batch)?),
        Verbosity::Detailed => Some(pretty_json(&batch.to_json()?)),
    };
    Ok(Rendered {
        summary: summary(batch)?,
        detail,
    })
}

fn pretty_json(compact: &str) -> String {
    serde_json::from_str::<serde_json::Value>(compact)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or_else(|_| compact.to_owned())
}

/// Upstream's summary line: `Traces {"resource spans": 1, "spans": 2}`.
pub fn summary(batch: &Batch) -> Result<String, wasmcol_pdata::DecodeError> {
    Ok(match batch {
        Batch::Traces(t) => {
            let m = t.to_message()?;
            format!(
                "Traces {{\"resource spans\": {}, \"spans\": {}}}",
                m.resource_spans.len(),
                t.item_count()
            )
        }
        Batch::Metrics(b) => {
            let m = b.to_message()?;
            let metrics: usize = m
                .resource_metrics
                .iter()
                .flat_map(|r| &r.scope_metrics)
                .map(|s| s.metrics.len())
                .sum();
            format!(
                "Metrics {{\"resource metrics\": {}, \"metrics\": {metrics}, \"data points\": {}}}",
                m.resource_metrics.len(),
                b.item_count()
            )
        }
        Batch::Logs(l) => {
            let m = l.to_message()?;
            format!(
                "Logs {{\"resource logs\": {}, \"log records\": {}}}",
                m.resource_logs.len(),
                l.item_count()
            )
        }
    })
}

/// Upstream's `normal` text: a line per resource and scope, then one per item.
pub fn normal(batch: &Batch) -> Result<String, wasmcol_pdata::DecodeError> {
    let mut out = String::new();
    match batch {
        Batch::Traces(t) => {
            for (i, rs) in t.to_message()?.resource_spans.iter().enumerate() {
                let attrs = rs.resource.as_ref().map(|r| &r.attributes[..]);
                let _ = writeln!(
                    out,
                    "ResourceTraces #{i}{}{}",
                    schema(&rs.schema_url),
                    attrs_suffix(attrs.unwrap_or(&[]))
                );
                for ss in &rs.scope_spans {
                    let _ = writeln!(
                        out,
                        "ScopeTraces #{i}{}",
                        scope(ss.scope.as_ref(), &ss.schema_url)
                    );
                    for span in &ss.spans {
                        let _ = write!(
                            out,
                            "{} {} {}",
                            span.name,
                            hex(&span.trace_id),
                            hex(&span.span_id)
                        );
                        if !span.attributes.is_empty() {
                            let _ = write!(out, " {}", attrs_joined(&span.attributes, " "));
                        }
                        out.push('\n');
                    }
                }
            }
        }
        Batch::Logs(l) => {
            for (i, rl) in l.to_message()?.resource_logs.iter().enumerate() {
                let attrs = rl.resource.as_ref().map(|r| &r.attributes[..]);
                let _ = writeln!(
                    out,
                    "ResourceLog #{i}{}{}",
                    schema(&rl.schema_url),
                    attrs_suffix(attrs.unwrap_or(&[]))
                );
                for sl in &rl.scope_logs {
                    let _ = writeln!(
                        out,
                        "ScopeLog #{i}{}",
                        scope(sl.scope.as_ref(), &sl.schema_url)
                    );
                    for r in &sl.log_records {
                        let body = r.body.as_ref().map(any_string).unwrap_or_default();
                        let _ = writeln!(out, "{body} {}", attrs_joined(&r.attributes, " "));
                    }
                }
            }
        }
        Batch::Metrics(b) => {
            for (i, rm) in b.to_message()?.resource_metrics.iter().enumerate() {
                let attrs = rm.resource.as_ref().map(|r| &r.attributes[..]);
                let _ = writeln!(
                    out,
                    "ResourceMetrics #{i}{}{}",
                    schema(&rm.schema_url),
                    attrs_suffix(attrs.unwrap_or(&[]))
                );
                for sm in &rm.scope_metrics {
                    let _ = writeln!(
                        out,
                        "ScopeMetrics #{i}{}",
                        scope(sm.scope.as_ref(), &sm.schema_url)
                    );
                    for m in &sm.metrics {
                        metric_lines(&mut out, m);
                    }
                }
            }
        }
    }
    Ok(out)
}

fn metric_lines(out: &mut String, m: &wasmcol_pdata::proto::metrics::v1::Metric) {
    let name = &m.name;
    match &m.data {
        Some(metric::Data::Gauge(g)) => number_lines(out, name, &g.data_points),
        Some(metric::Data::Sum(s)) => number_lines(out, name, &s.data_points),
        Some(metric::Data::Histogram(h)) => {
            for p in &h.data_points {
                let mut v = format!("count={}", p.count);
                if let Some(s) = p.sum {
                    let _ = write!(v, " sum={s}");
                }
                if let Some(s) = p.min {
                    let _ = write!(v, " min={s}");
                }
                if let Some(s) = p.max {
                    let _ = write!(v, " max={s}");
                }
                for (i, c) in p.bucket_counts.iter().enumerate() {
                    match p.explicit_bounds.get(i) {
                        Some(b) => {
                            let _ = write!(v, " le{b}={c}");
                        }
                        None => {
                            let _ = write!(v, " {c}");
                        }
                    }
                }
                let _ = writeln!(out, "{name}{{{}}} {v}", attrs_joined(&p.attributes, ","));
            }
        }
        Some(metric::Data::ExponentialHistogram(h)) => {
            for p in &h.data_points {
                let mut v = format!("count={}", p.count);
                if let Some(s) = p.sum {
                    let _ = write!(v, " sum={s}");
                }
                if let Some(s) = p.min {
                    let _ = write!(v, " min={s}");
                }
                if let Some(s) = p.max {
                    let _ = write!(v, " max={s}");
                }
                let _ = writeln!(out, "{name}{{{}}} {v}", attrs_joined(&p.attributes, ","));
            }
        }
        Some(metric::Data::Summary(s)) => {
            for p in &s.data_points {
                let mut v = format!("count={} sum={:.6}", p.count, p.sum);
                for q in &p.quantile_values {
                    let _ = write!(v, " q{}={}", q.quantile, q.value);
                }
                let _ = writeln!(out, "{name}{{{}}} {v}", attrs_joined(&p.attributes, ","));
            }
        }
        None => {}
    }
}

fn number_lines(
    out: &mut String,
    name: &str,
    points: &[wasmcol_pdata::proto::metrics::v1::NumberDataPoint],
) {
    for p in points {
        let value = match p.value {
            Some(number_data_point::Value::AsInt(i)) => i.to_string(),
            Some(number_data_point::Value::AsDouble(d)) => d.to_string(),
            None => String::new(),
        };
        let _ = writeln!(
            out,
            "{name}{{{}}} {value}",
            attrs_joined(&p.attributes, ",")
        );
    }
}

fn schema(url: &str) -> String {
    if url.is_empty() {
        String::new()
    } else {
        format!(" [{url}]")
    }
}

fn scope(s: Option<&InstrumentationScope>, schema_url: &str) -> String {
    let mut d = String::new();
    if let Some(s) = s {
        d.push_str(&s.name);
        if !s.version.is_empty() {
            let _ = write!(d, "@{}", s.version);
        }
    }
    if !schema_url.is_empty() {
        if !d.is_empty() {
            d.push(' ');
        }
        let _ = write!(d, "[{schema_url}]");
    }
    let attrs = s.map(|s| attrs_suffix(&s.attributes)).unwrap_or_default();
    if d.is_empty() {
        attrs
    } else {
        format!(" {d}{attrs}")
    }
}

fn attrs_suffix(attrs: &[KeyValue]) -> String {
    if attrs.is_empty() {
        String::new()
    } else {
        format!(" {}", attrs_joined(attrs, " "))
    }
}

fn attrs_joined(attrs: &[KeyValue], sep: &str) -> String {
    attrs
        .iter()
        .map(|kv| {
            format!(
                "{}={}",
                kv.key,
                kv.value.as_ref().map(any_string).unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join(sep)
}

/// pdata's `Value.AsString`: scalars as text, bytes as base64, arrays and maps as JSON.
fn any_string(v: &AnyValue) -> String {
    match &v.value {
        None => String::new(),
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(any_value::Value::BytesValue(b)) => base64(b),
        Some(_) => any_json(v).to_string(),
    }
}

fn any_json(v: &AnyValue) -> serde_json::Value {
    use serde_json::Value as J;
    match &v.value {
        None => J::Null,
        Some(any_value::Value::StringValue(s)) => J::String(s.clone()),
        Some(any_value::Value::BoolValue(b)) => J::Bool(*b),
        Some(any_value::Value::IntValue(i)) => J::from(*i),
        Some(any_value::Value::DoubleValue(d)) => J::from(*d),
        Some(any_value::Value::BytesValue(b)) => J::String(base64(b)),
        Some(any_value::Value::ArrayValue(a)) => J::Array(a.values.iter().map(any_json).collect()),
        Some(any_value::Value::KvlistValue(kv)) => J::Object(
            kv.values
                .iter()
                .map(|kv| {
                    (
                        kv.key.clone(),
                        kv.value.as_ref().map(any_json).unwrap_or(J::Null),
                    )
                })
                .collect(),
        ),
        // Dictionary references (profiles only) have no text of their own.
        Some(_) => J::Null,
    }
}

fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        let _ = write!(s, "{x:02x}");
    }
    s
}

fn base64(b: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(b.len().div_ceil(3) * 4);
    for chunk in b.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &x)| acc | (u32::from(x) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                s.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

/// `exporters: nop:` takes no keys, as upstream.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NopConfig {}

/// Builds `nop` exporters.
pub struct NopFactory;

impl ExporterFactory for NopFactory {
    fn create(
        &self,
        _ctx: &CreateContext,
        config: &Value,
        _signal: Signal,
    ) -> Result<ExporterParts, BuildError> {
        let _: NopConfig = wasmcol_config::decode(config).map_err(BuildError::new)?;
        Ok(ExporterParts {
            sender: Arc::new(NopSender),
            helper: HelperConfig::disabled(),
        })
    }
}

/// Accepts and drops every batch.
pub struct NopSender;

#[async_trait]
impl Sender for NopSender {
    async fn send(&self, _batch: Batch) -> Result<(), ConsumeError> {
        Ok(())
    }
}

#[async_trait]
impl Lifecycle for NopSender {}

#[cfg(test)]
mod tests {
    use wasmcol_config::Kind;
    use wasmcol_core::SimpleChain;
    use wasmcol_core::exporter::ChainBuilder;
    use wasmcol_pdata::proto::metrics::v1::{
        Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
    };
    use wasmcol_pdata::{ExportMetricsServiceRequest, MetricsBatch};

    use super::*;
    use crate::testutil::{ctx, kv, spans, yaml};

    fn create(body: &str) -> Result<ExporterParts, Vec<String>> {
        DebugFactory
            .create(&ctx(Kind::Exporter, "debug"), &yaml(body), Signal::Traces)
            .map_err(|e| e.0.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn config_defaults_and_errors() {
        let cfg: DebugConfig = wasmcol_config::decode(&yaml("")).unwrap();
        assert_eq!(cfg, DebugConfig::default());
        assert_eq!(cfg.helper(), HelperConfig::disabled());

        let cfg: DebugConfig = wasmcol_config::decode(&yaml("verbosity: Detailed")).unwrap();
        assert_eq!(cfg.verbosity, Verbosity::Detailed);
        assert_eq!(
            create("verbosity: none").err().unwrap(),
            ["verbosity: verbosity level \"None\" is not supported"]
        );
        assert_eq!(
            create("verbosity: loud").err().unwrap(),
            ["verbosity: unknown metrics level \"loud\""]
        );
        let e = create("output_paths: [stdout]").err().unwrap();
        assert!(e[0].contains("unknown field `output_paths`"), "{e:?}");

        // Delivery sections: upstream defaults once given, validated with upstream's messages.
        let parts = create("sending_queue:\n  queue_size: 10\ntimeout: 5s")
            .ok()
            .unwrap();
        assert!(parts.helper.queue.enabled);
        assert_eq!(parts.helper.queue.queue_size, 10);
        assert!(!parts.helper.retry.enabled);
        assert_eq!(parts.helper.timeout, Some(GoDuration::secs(5)));
        assert_eq!(
            create("sending_queue:\n  num_consumers: 0").err().unwrap(),
            ["sending_queue.num_consumers: `num_consumers` must be positive"]
        );
    }

    #[test]
    fn nop_takes_no_keys() {
        let c = ctx(Kind::Exporter, "nop");
        assert!(NopFactory.create(&c, &yaml(""), Signal::Logs).is_ok());
        let e = NopFactory
            .create(&c, &yaml("verbosity: basic"), Signal::Logs)
            .err()
            .unwrap();
        assert_eq!(e.0[0].path, "verbosity", "{e}");
        assert!(
            e.0[0].message.starts_with("unknown field `verbosity`"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn exporters_accept_batches_through_the_chain() {
        for (factory, body) in [
            (&DebugFactory as &dyn ExporterFactory, "verbosity: detailed"),
            (&NopFactory, ""),
        ] {
            let c = ctx(Kind::Exporter, "x");
            let parts = factory.create(&c, &yaml(body), Signal::Traces).unwrap();
            let exporter = SimpleChain.build(&c, Signal::Traces, parts).unwrap();
            exporter.start().await.unwrap();
            exporter.consume(spans("a", 3)).await.unwrap();
            exporter.shutdown().await.unwrap();
            assert_eq!(
                c.metrics
                    .counter_value("otelcol_exporter_sent_spans", &[("exporter", "x")]),
                Some(3)
            );
        }
    }

    #[tokio::test]
    async fn stdout_mode_writes_and_succeeds() {
        let parts = create("use_internal_logger: false\nverbosity: normal")
            .ok()
            .unwrap();
        parts.sender.send(spans("out", 2)).await.unwrap();
    }

    #[test]
    fn summaries_match_upstream() {
        let r = render(&spans("a", 2), Verbosity::Basic).unwrap();
        assert_eq!(r.summary, "Traces {\"resource spans\": 1, \"spans\": 2}");
        assert!(r.detail.is_none());

        let metrics = Batch::Metrics(MetricsBatch::from_message(ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![Metric {
                        name: "queue.depth".into(),
                        data: Some(metric::Data::Gauge(Gauge {
                            data_points: vec![
                                NumberDataPoint {
                                    attributes: vec![kv("q", "a")],
                                    value: Some(number_data_point::Value::AsInt(3)),
                                    ..Default::default()
                                },
                                NumberDataPoint {
                                    value: Some(number_data_point::Value::AsDouble(1.5)),
                                    ..Default::default()
                                },
                            ],
                        })),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }));
        let r = render(&metrics, Verbosity::Normal).unwrap();
        assert_eq!(
            r.summary,
            "Metrics {\"resource metrics\": 1, \"metrics\": 1, \"data points\": 2}"
        );
        assert_eq!(
            r.detail.unwrap(),
            "ResourceMetrics #0\nScopeMetrics #0\nqueue.depth{q=a} 3\nqueue.depth{} 1.5\n"
        );
        let logs = Batch::empty(Signal::Logs);
        assert_eq!(
            summary(&logs).unwrap(),
            "Logs {\"resource logs\": 0, \"log records\": 0}"
        );
    }

    #[test]
    fn normal_and_detailed_traces() {
        let r = render(&spans("svc", 2), Verbosity::Normal).unwrap();
        let want = "ResourceTraces #0 service.name=svc\nScopeTraces #0\n\
                    svc-0 07070707070707070707070707070707 0000000000000000 k=v\n\
                    svc-1 07070707070707070707070707070707 0101010101010101 k=v\n";
        assert_eq!(r.detail.unwrap(), want);
        let r = render(&spans("svc", 1), Verbosity::Detailed).unwrap();
        let detail = r.detail.unwrap();
        assert!(
            detail.contains("\"traceId\": \"07070707070707070707070707070707\""),
            "{detail}"
        );
        assert!(detail.contains("\"name\": \"svc-0\""), "{detail}");
    }

    #[test]
    fn values_print_like_pdata() {
        assert_eq!(base64(b"hello"), "aGVsbG8=");
        assert_eq!(base64(b"hi!"), "aGkh");
        assert_eq!(base64(b"h"), "aA==");
        let arr = AnyValue {
            value: Some(any_value::Value::ArrayValue(
                wasmcol_pdata::proto::common::v1::ArrayValue {
                    values: vec![
                        AnyValue {
                            value: Some(any_value::Value::IntValue(1)),
                        },
                        AnyValue {
                            value: Some(any_value::Value::StringValue("x".into())),
                        },
                    ],
                },
            )),
        };
        assert_eq!(any_string(&arr), "[1,\"x\"]");
    }

    #[tokio::test(start_paused = true)]
    async fn sampler_passes_initial_then_every_nth_per_second() {
        let s = Sampler::new(2, 3);
        let passed: Vec<bool> = (0..8).map(|_| s.allow()).collect();
        assert_eq!(passed, [true, true, false, false, true, false, false, true]);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(s.allow(), "a new second starts a new window");
        let none = Sampler::new(1, 0);
        assert!(none.allow());
        assert!(!none.allow());
    }
}
