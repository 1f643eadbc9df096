//! The collector's own metrics, on the OpenTelemetry SDK, with upstream's names.
//!
//! Components ask [`Metrics`] for handles (`counter`, `gauge`, `histogram`, `gauge_fn`) once,
//! when they are built, and keep them: counters and histograms are the SDK's bound
//! instruments (attributes resolved at registration, so a hot-path `add` is an atomic update
//! per reader, never an attribute lookup); gauges are atomics that an observable SDK gauge
//! reads at collection. Registering the same name and labels twice returns the same series,
//! so components can be rebuilt without duplicating series.
//!
//! The SDK's readers make every output: the Prometheus endpoints are
//! `opentelemetry-prometheus` exporters (one per pull reader, each with its own naming
//! flags, plus one for in-process readers such as zpages, [`Metrics::render`]); the periodic
//! OTLP push and [`Metrics::counter_value`] collect from a cumulative manual reader
//! ([`Metrics::to_otlp`]).
//!
//! `service.telemetry.metrics.level` is applied at registration: a series above the level is
//! handed out detached (it records nothing) and never reaches an output.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use opentelemetry::KeyValue;
use opentelemetry::metrics::{BoundCounter, BoundHistogram, Meter, MeterProvider as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::reader::MetricReader;
use opentelemetry_sdk::metrics::{
    InstrumentKind, ManualReader, Pipeline, SdkMeterProvider, Temporality,
};
use parking_lot::Mutex;

type Labels = Vec<(String, String)>;

/// A monotonic counter: an SDK counter bound to its attributes, or detached.
#[derive(Clone, Default)]
pub struct Counter(Option<BoundCounter<u64>>);

impl Counter {
    /// Adds `n`.
    pub fn add(&self, n: u64) {
        if let Some(c) = &self.0 {
            c.add(n);
        }
    }
    /// Adds one.
    pub fn inc(&self) {
        self.add(1);
    }
}

/// A gauge that can go up and down; an observable SDK gauge reads it at collection.
#[derive(Clone, Default)]
pub struct Gauge(Arc<AtomicI64>);

impl Gauge {
    /// Sets the value.
    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }
    /// Adds `d` (may be negative).
    pub fn add(&self, d: i64) {
        self.0.fetch_add(d, Ordering::Relaxed);
    }
    /// The current value.
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A histogram with fixed bucket bounds: an SDK histogram bound to its attributes, or
/// detached.
#[derive(Clone, Default)]
pub struct Histogram(Option<BoundHistogram<f64>>);

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, v: f64) {
        if let Some(h) = &self.0 {
            h.record(v);
        }
    }
}

/// What an observable gauge family reads at collection, per label set.
enum Observed {
    Value(Gauge),
    Fn(Box<dyn Fn() -> f64 + Send + Sync>),
}

type ObservedSeries = Arc<Mutex<BTreeMap<Labels, (Vec<KeyValue>, Observed)>>>;

/// One metric name: its SDK instrument and the handles handed out per label set.
enum Family {
    Counter {
        instrument: opentelemetry::metrics::Counter<u64>,
        series: BTreeMap<Labels, Counter>,
    },
    Histogram {
        instrument: opentelemetry::metrics::Histogram<f64>,
        series: BTreeMap<Labels, Histogram>,
    },
    /// Integer gauges ([`Metrics::gauge`]).
    Gauge(ObservedSeries),
    /// Gauges read from a function ([`Metrics::gauge_fn`]).
    GaugeFn(ObservedSeries),
}

/// How one Prometheus pull endpoint names its series (upstream's `pull.exporter.prometheus`
/// flags that wasmcol implements).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PromNaming {
    /// Drop `_total` on counters.
    pub without_type_suffix: bool,
    /// Add `otel_scope_name` / `otel_scope_version` labels.
    pub with_scope_info: bool,
    /// Resource attributes written as labels on every series.
    pub resource_labels: Option<wasmcol_config::IncludeExclude>,
}

/// What the registry is built with: the level, the telemetry resource and the Prometheus
/// endpoints to feed.
#[derive(Clone, Debug, Default)]
pub struct MetricsOptions {
    /// `service.telemetry.metrics.level`.
    pub level: Level,
    /// `service.telemetry.resource`, on every output (`target_info` on Prometheus).
    pub resource: Vec<(String, String)>,
    /// One entry per Prometheus pull reader, in config order.
    pub pull: Vec<PromNaming>,
}

/// A manual reader shared between the provider (which owns its readers) and [`Metrics`],
/// which collects from it on demand.
#[derive(Debug, Clone)]
struct SharedReader(Arc<ManualReader>);

impl MetricReader for SharedReader {
    fn register_pipeline(&self, pipeline: std::sync::Weak<Pipeline>) {
        self.0.register_pipeline(pipeline);
    }
    fn collect(&self, rm: &mut ResourceMetrics) -> opentelemetry_sdk::error::OTelSdkResult {
        self.0.collect(rm)
    }
    fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
        self.0.force_flush()
    }
    fn shutdown_with_timeout(
        &self,
        timeout: std::time::Duration,
    ) -> opentelemetry_sdk::error::OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }
    fn temporality(&self, kind: InstrumentKind) -> Temporality {
        self.0.temporality(kind)
    }
}

/// The SDK side of an enabled registry.
struct Sdk {
    provider: SdkMeterProvider,
    meter: Meter,
    /// Cumulative; read by the OTLP push and by [`Metrics::counter_value`].
    snapshot: SharedReader,
    /// The in-process Prometheus view ([`Metrics::render`]): `_total`, no units, no scope.
    render: prometheus::Registry,
    /// One registry per configured pull endpoint.
    pull: Vec<prometheus::Registry>,
}

struct Inner {
    level: Level,
    sdk: Option<Sdk>,
    families: Mutex<BTreeMap<String, Family>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(sdk) = &self.sdk {
            // Readers here are pulled, never pushed: shutting down flushes nothing and
            // cannot block.
            let _ = sdk.provider.shutdown();
        }
    }
}

/// The registry of the collector's own metrics. Cheap to clone.
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

impl Default for Metrics {
    fn default() -> Self {
        Metrics::with_options(MetricsOptions::default())
    }
}

/// Labels sorted by name, so a series has one spelling whatever order a caller gives.
fn labels(l: &[(&str, &str)]) -> Labels {
    let mut v: Labels = l
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    v.sort();
    v
}

fn key_values(l: &Labels) -> Vec<KeyValue> {
    l.iter()
        .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
        .collect()
}

/// A Prometheus exporter feeding a fresh registry, named as `naming` says; `None` (logged)
/// when the library refuses to build one, which leaves that endpoint empty, not the
/// collector down.
fn prometheus_reader(
    naming: &PromNaming,
    resource: &[(String, String)],
) -> Option<(
    opentelemetry_prometheus::PrometheusExporter,
    prometheus::Registry,
)> {
    let registry = prometheus::Registry::new();
    let mut builder = opentelemetry_prometheus::exporter()
        .with_registry(registry.clone())
        .without_units()
        .scope_info_enabled(naming.with_scope_info);
    if naming.without_type_suffix {
        builder = builder.without_counter_suffixes();
    }
    if let Some(lists) = &naming.resource_labels {
        // The resource is fixed for the process: the lists resolve to its keys once.
        let keys = resource
            .iter()
            .filter(|(k, _)| lists.keeps(k))
            .map(|(k, _)| opentelemetry::Key::new(k.clone()))
            .collect();
        builder = builder.with_resource_selector(
            opentelemetry_prometheus::ResourceSelector::KeyAllowList(keys),
        );
    }
    match builder.build() {
        Ok(exporter) => Some((exporter, registry)),
        Err(e) => {
            tracing::error!(error = %e, "cannot build a Prometheus reader for the collector's own metrics");
            None
        }
    }
}

impl Sdk {
    fn new(options: &MetricsOptions) -> Sdk {
        let snapshot = SharedReader(Arc::new(ManualReader::builder().build()));
        let resource = Resource::builder_empty()
            .with_attributes(
                options
                    .resource
                    .iter()
                    .map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
            )
            .build();
        let mut builder = SdkMeterProvider::builder()
            .with_resource(resource)
            .with_reader(snapshot.clone());
        let mut pull = Vec::new();
        // The in-process view shares a pull endpoint's registry when one has the default
        // naming (the usual case), so each measurement updates one reader fewer.
        let mut render = None;
        for naming in &options.pull {
            match prometheus_reader(naming, &options.resource) {
                Some((exporter, registry)) => {
                    builder = builder.with_reader(exporter);
                    if render.is_none() && *naming == PromNaming::default() {
                        render = Some(registry.clone());
                    }
                    pull.push(registry);
                }
                None => pull.push(prometheus::Registry::new()),
            }
        }
        let render = match render {
            Some(registry) => registry,
            None => match prometheus_reader(&PromNaming::default(), &options.resource) {
                Some((exporter, registry)) => {
                    builder = builder.with_reader(exporter);
                    registry
                }
                None => prometheus::Registry::new(),
            },
        };
        let provider = builder.build();
        let scope = opentelemetry::InstrumentationScope::builder("wasmcol")
            .with_version(env!("CARGO_PKG_VERSION"))
            .build();
        let meter = provider.meter_with_scope(scope);
        Sdk {
            provider,
            meter,
            snapshot,
            render,
            pull,
        }
    }
}

impl Metrics {
    /// An empty registry at the default level (`normal`), with no resource and no pull
    /// endpoint: what tests and tools use.
    pub fn new() -> Self {
        Metrics::default()
    }

    /// An empty registry keeping the series `level` enables.
    pub fn with_level(level: Level) -> Self {
        Metrics::with_options(MetricsOptions {
            level,
            ..MetricsOptions::default()
        })
    }

    /// A registry as `options` say; at level `none` no SDK provider exists at all.
    pub fn with_options(options: MetricsOptions) -> Self {
        let sdk = (options.level != Level::None).then(|| Sdk::new(&options));
        Metrics(Arc::new(Inner {
            level: options.level,
            sdk,
            families: Mutex::default(),
        }))
    }

    /// The level series are registered at.
    pub fn level(&self) -> Level {
        self.0.level
    }

    /// The meter to register `name` with, when the level keeps it.
    fn meter(&self, name: &str) -> Option<&Meter> {
        let sdk = self.0.sdk.as_ref()?;
        (metric_level(name) <= self.0.level).then_some(&sdk.meter)
    }

    /// Same name, other kind: a programming error. A detached series keeps the collector
    /// running; the log line makes the mistake visible.
    fn kind_clash(name: &str) {
        tracing::error!(
            metric = name,
            "metric registered twice with different kinds"
        );
    }

    /// A counter `name` (without `_total`) with `labels`.
    pub fn counter(&self, name: &str, help: &str, l: &[(&str, &str)]) -> Counter {
        let Some(meter) = self.meter(name) else {
            return Counter::default();
        };
        let mut fams = self.0.families.lock();
        let fam = fams
            .entry(name.to_owned())
            .or_insert_with(|| Family::Counter {
                instrument: meter
                    .u64_counter(name.to_owned())
                    .with_description(help.to_owned())
                    .with_unit(metric_unit(name))
                    .build(),
                series: BTreeMap::new(),
            });
        let Family::Counter { instrument, series } = fam else {
            Self::kind_clash(name);
            return Counter::default();
        };
        series
            .entry(labels(l))
            .or_insert_with_key(|key| {
                let bound = instrument.bind(&key_values(key));
                // A series exists from its registration, at 0, as before the first failure
                // (the SDK writes a point only once something was recorded; upstream's
                // `send_failed` series are absent until a failure, which `absent()` alerts
                // trip over).
                bound.add(0);
                Counter(Some(bound))
            })
            .clone()
    }

    /// A histogram with the given upper bounds (the first registration of a name sets them).
    pub fn histogram(
        &self,
        name: &str,
        help: &str,
        l: &[(&str, &str)],
        bounds: &[f64],
    ) -> Histogram {
        let Some(meter) = self.meter(name) else {
            return Histogram::default();
        };
        let mut fams = self.0.families.lock();
        let fam = fams
            .entry(name.to_owned())
            .or_insert_with(|| Family::Histogram {
                instrument: meter
                    .f64_histogram(name.to_owned())
                    .with_description(help.to_owned())
                    .with_unit(metric_unit(name))
                    .with_boundaries(bounds.to_vec())
                    .build(),
                series: BTreeMap::new(),
            });
        let Family::Histogram { instrument, series } = fam else {
            Self::kind_clash(name);
            return Histogram::default();
        };
        series
            .entry(labels(l))
            .or_insert_with_key(|key| Histogram(Some(instrument.bind(&key_values(key)))))
            .clone()
    }

    /// The series map of an observable family `name`, registering its SDK instrument on
    /// first use; `None` when the level drops it or the name has another kind.
    fn observed(&self, name: &str, help: &str, from_fn: bool) -> Option<ObservedSeries> {
        let meter = self.meter(name)?;
        let mut fams = self.0.families.lock();
        if let Some(fam) = fams.get(name) {
            return match (fam, from_fn) {
                (Family::Gauge(s), false) | (Family::GaugeFn(s), true) => Some(s.clone()),
                _ => {
                    Self::kind_clash(name);
                    None
                }
            };
        }
        let series = ObservedSeries::default();
        let read = series.clone();
        let observe = move |o: &dyn opentelemetry::metrics::AsyncInstrument<f64>| {
            for (attrs, source) in read.lock().values() {
                let v = match source {
                    Observed::Value(g) => g.get() as f64,
                    Observed::Fn(f) => f(),
                };
                o.observe(v, attrs);
            }
        };
        let (name_owned, help_owned, unit) = (name.to_owned(), help.to_owned(), metric_unit(name));
        // The SDK keeps the callback for the provider's life; the handle it returns is not
        // needed to keep it registered.
        if is_observed_sum(name) {
            let _ = meter
                .f64_observable_counter(name_owned)
                .with_description(help_owned)
                .with_unit(unit)
                .with_callback(observe)
                .build();
        } else {
            let _ = meter
                .f64_observable_gauge(name_owned)
                .with_description(help_owned)
                .with_unit(unit)
                .with_callback(observe)
                .build();
        }
        let fam = if from_fn {
            Family::GaugeFn(series.clone())
        } else {
            Family::Gauge(series.clone())
        };
        fams.insert(name.to_owned(), fam);
        Some(series)
    }

    /// A gauge `name` with `labels`.
    pub fn gauge(&self, name: &str, help: &str, l: &[(&str, &str)]) -> Gauge {
        let Some(series) = self.observed(name, help, false) else {
            return Gauge::default();
        };
        let key = labels(l);
        let mut series = series.lock();
        let entry = series
            .entry(key)
            .or_insert_with_key(|key| (key_values(key), Observed::Value(Gauge::default())));
        match &entry.1 {
            Observed::Value(g) => g.clone(),
            Observed::Fn(_) => Gauge::default(),
        }
    }

    /// A gauge whose value is read from `f` at collection; replaces an earlier one.
    pub fn gauge_fn(
        &self,
        name: &str,
        help: &str,
        l: &[(&str, &str)],
        f: impl Fn() -> f64 + Send + Sync + 'static,
    ) {
        let Some(series) = self.observed(name, help, true) else {
            return;
        };
        let key = labels(l);
        let attrs = key_values(&key);
        series
            .lock()
            .insert(key, (attrs, Observed::Fn(Box::new(f))));
    }

    /// Everything collected now from the cumulative snapshot reader; `None` at level `none`.
    fn collect(&self) -> Option<ResourceMetrics> {
        let sdk = self.0.sdk.as_ref()?;
        let mut rm = ResourceMetrics::default();
        match sdk.snapshot.collect(&mut rm) {
            Ok(()) => Some(rm),
            Err(e) => {
                tracing::debug!(error = %e, "collecting the collector's own metrics failed");
                None
            }
        }
    }

    /// The value of a counter, for tests and tools.
    pub fn counter_value(&self, name: &str, l: &[(&str, &str)]) -> Option<u64> {
        let want = labels(l);
        let rm = self.collect()?;
        let metric = rm
            .scope_metrics()
            .flat_map(|s| s.metrics())
            .find(|m| m.name() == name)?;
        let AggregatedMetrics::U64(MetricData::Sum(sum)) = metric.data() else {
            return None;
        };
        sum.data_points()
            .find(|p| {
                let mut have: Labels = p
                    .attributes()
                    .map(|kv| (kv.key.to_string(), kv.value.to_string()))
                    .collect();
                have.sort();
                have == want
            })
            .map(|p| p.value())
    }

    /// Every series as one OTLP request, values cumulative since the registry was made,
    /// under the telemetry resource, with upstream's units.
    pub fn to_otlp(&self) -> wasmcol_pdata::ExportMetricsServiceRequest {
        match self.collect() {
            Some(rm) => wasmcol_pdata::ExportMetricsServiceRequest::from(&rm),
            None => wasmcol_pdata::ExportMetricsServiceRequest::default(),
        }
    }

    /// Prometheus text of the in-process view (`_total` on counters, no unit suffixes, no
    /// scope labels): what zpages, `top` and tests read.
    pub fn render(&self) -> String {
        match &self.0.sdk {
            Some(sdk) => encode(&sdk.render),
            None => String::new(),
        }
    }

    /// Prometheus text of pull endpoint `index` (its position in
    /// [`MetricsOptions::pull`]).
    pub fn render_pull(&self, index: usize) -> String {
        match self.0.sdk.as_ref().and_then(|sdk| sdk.pull.get(index)) {
            Some(registry) => encode(registry),
            None => String::new(),
        }
    }
}

fn encode(registry: &prometheus::Registry) -> String {
    use prometheus::Encoder as _;
    let mut out = Vec::new();
    if let Err(e) = prometheus::TextEncoder::new().encode(&registry.gather(), &mut out) {
        tracing::debug!(error = %e, "encoding the collector's own metrics failed");
    }
    String::from_utf8(out).unwrap_or_default()
}

/// Serves pull endpoint `index` of `metrics` as Prometheus text on `endpoint` at `/metrics`;
/// the server's tasks are children of `tasks`.
pub async fn serve(
    endpoint: &str,
    metrics: Metrics,
    index: usize,
    tasks: &crate::Tasks,
) -> std::io::Result<crate::http::HttpServer> {
    let listener = crate::http::bind(endpoint).await?;
    let handler: crate::http::Handler = Arc::new(move |req| {
        let metrics = metrics.clone();
        Box::pin(async move {
            if req.uri().path() == "/metrics" {
                crate::http::response(
                    http::StatusCode::OK,
                    "text/plain; version=0.0.4; charset=utf-8",
                    metrics.render_pull(index),
                )
            } else {
                crate::http::response(
                    http::StatusCode::NOT_FOUND,
                    "text/plain",
                    "404 page not found\n",
                )
            }
        })
    });
    crate::http::HttpServer::start(listener, handler, tasks)
}

/// `service.telemetry.metrics.level`: which series exist.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// No metrics at all.
    None,
    /// The components' item counts, queues and the process.
    Basic,
    /// Adds batch sizes and wasmcol's finer series (the default).
    #[default]
    Normal,
    /// Adds byte-size histograms.
    Detailed,
}

impl Level {
    /// Parses `none`, `basic`, `normal` or `detailed`.
    pub fn parse(s: &str) -> Option<Level> {
        match s {
            "none" => Some(Level::None),
            "basic" => Some(Level::Basic),
            "normal" => Some(Level::Normal),
            "detailed" => Some(Level::Detailed),
            _ => None,
        }
    }
}

/// The level from which a metric exists, following upstream (the service drops the byte-size
/// histograms below `detailed`; batch sizes are `normal`). Series not listed are `basic`.
pub fn metric_level(name: &str) -> Level {
    if name.ends_with("_send_size_bytes") {
        Level::Detailed
    } else if matches!(
        name,
        "otelcol_processor_batch_batch_send_size"
            | "otelcol_processor_batch_metadata_cardinality"
            | "otelcol_exporter_queue_batch_send_size"
            | "otelcol_loadbalancer_backend_latency"
            | "wasmcol_plugin_duration_seconds"
    ) {
        Level::Normal
    } else {
        Level::Basic
    }
}

/// Upstream's unit for a metric (UCUM, `{items}` style annotations), used by the OTLP push.
pub fn metric_unit(name: &str) -> &'static str {
    match name {
        "otelcol_process_uptime" | "otelcol_process_cpu_seconds" => return "s",
        "otelcol_process_memory_rss" => return "By",
        "otelcol_processor_incoming_items" | "otelcol_processor_outgoing_items" => {
            return "{items}";
        }
        "otelcol_exporter_queue_size" | "otelcol_exporter_queue_capacity" => return "{batches}",
        // As upstream's generated documentation.md of the batch processor and exporterhelper.
        "otelcol_processor_batch_batch_send_size" | "otelcol_exporter_queue_batch_send_size" => {
            return "{units}";
        }
        "otelcol_processor_batch_metadata_cardinality" => return "{combinations}",
        "otelcol_processor_batch_batch_size_trigger_send"
        | "otelcol_processor_batch_timeout_trigger_send" => return "{times}",
        "otelcol_loadbalancer_backend_latency" => return "ms",
        "otelcol_loadbalancer_num_backends" => return "{backends}",
        _ => {}
    }
    // tail_sampling's histograms (upstream's units, whatever the plugin's name). Upstream
    // writes microseconds `µs`; the Rust SDK takes ASCII units only, so this is UCUM's ASCII
    // spelling of the same unit.
    if name.ends_with("_sampling_decision_latency") {
        return "us";
    } else if name.ends_with("_sampling_decision_timer_latency") {
        return "ms";
    } else if name.ends_with("_sampling_late_span_age")
        || name.ends_with("_sampling_trace_removal_age")
    {
        return "s";
    }
    if name.ends_with("_bytes") {
        "By"
    } else if name.ends_with("_seconds") {
        "s"
    } else if name.ends_with("_spans") {
        "{spans}"
    } else if name.ends_with("_metric_points") {
        "{datapoints}"
    } else if name.ends_with("_log_records") {
        "{records}"
    } else {
        ""
    }
}

/// Gauges read at collection that upstream exports as cumulative sums.
fn is_observed_sum(name: &str) -> bool {
    matches!(
        name,
        "otelcol_process_uptime" | "otelcol_process_cpu_seconds"
    )
}

/// `otelcol_process_uptime`, `otelcol_process_memory_rss`, `otelcol_process_cpu_seconds`.
pub fn register_process_metrics(metrics: &Metrics) {
    let started = std::time::Instant::now();
    metrics.gauge_fn(
        "otelcol_process_uptime",
        "Uptime of the process in seconds.",
        &[],
        move || started.elapsed().as_secs_f64(),
    );
    metrics.gauge_fn(
        "otelcol_process_memory_rss",
        "Total physical memory (resident set size) in bytes.",
        &[],
        || process_rss_bytes().unwrap_or(0) as f64,
    );
    metrics.gauge_fn(
        "otelcol_process_cpu_seconds",
        "Total CPU user and system time in seconds.",
        &[],
        || process_cpu_seconds().unwrap_or(0.0),
    );
}

/// Resident set size of this process, from /proc.
pub fn process_rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// User + system CPU seconds of this process, from /proc.
pub fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are 14th and 15th.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_with_and_without_suffix() {
        let m = Metrics::with_options(MetricsOptions {
            pull: vec![
                PromNaming::default(),
                PromNaming {
                    without_type_suffix: true,
                    ..PromNaming::default()
                },
                PromNaming {
                    with_scope_info: true,
                    resource_labels: Some(wasmcol_config::IncludeExclude {
                        included: Some(vec!["service.*".into()]),
                        excluded: vec![],
                    }),
                    ..PromNaming::default()
                },
            ],
            resource: vec![("service.name".into(), "wasmcol".into())],
            ..MetricsOptions::default()
        });
        let c = m.counter(
            "otelcol_receiver_accepted_spans",
            "Spans accepted.",
            &[("transport", "grpc"), ("receiver", "otlp")],
        );
        c.add(5);
        // The same series, whatever the label order: one handle, one value.
        m.counter(
            "otelcol_receiver_accepted_spans",
            "Spans accepted.",
            &[("receiver", "otlp"), ("transport", "grpc")],
        )
        .add(2);
        let line = "{receiver=\"otlp\",transport=\"grpc\"} 7";
        for text in [m.render(), m.render_pull(0)] {
            assert!(
                text.contains(&format!("otelcol_receiver_accepted_spans_total{line}")),
                "{text}"
            );
            assert!(
                text.contains("target_info{service_name=\"wasmcol\"} 1"),
                "{text}"
            );
        }
        let bare = m.render_pull(1);
        assert!(
            bare.contains(&format!("otelcol_receiver_accepted_spans{line}")),
            "{bare}"
        );
        assert!(!bare.contains("_total"), "{bare}");
        let labelled = m.render_pull(2);
        assert!(
            labelled.contains("otel_scope_name=\"wasmcol\"")
                && labelled.contains("service_name=\"wasmcol\""),
            "{labelled}"
        );
        assert!(!m.render().contains("otel_scope_name"), "{}", m.render());
        assert_eq!(
            m.counter_value(
                "otelcol_receiver_accepted_spans",
                &[("receiver", "otlp"), ("transport", "grpc")]
            ),
            Some(7)
        );
        let h = m.histogram("d", "d", &[], &[0.1, 1.0]);
        h.observe(0.5);
        assert!(
            m.render().contains("d_bucket{le=\"1\"} 1"),
            "{}",
            m.render()
        );
        let g = m.gauge("q", "q", &[("exporter", "e")]);
        g.set(3);
        g.add(-1);
        m.gauge_fn("f", "f", &[], || 1.5);
        m.gauge_fn("f", "f", &[], || 2.5);
        let text = m.render();
        assert!(text.contains("q{exporter=\"e\"} 2"), "{text}");
        assert!(text.contains("f 2.5"), "{text}");
        assert!(!text.contains("f 1.5"), "{text}");
    }

    #[test]
    fn a_name_registered_with_another_kind_is_detached() {
        let m = Metrics::new();
        m.counter("x", "x", &[]).add(1);
        m.gauge("x", "x", &[]).set(5);
        m.histogram("x", "x", &[], &[1.0]).observe(9.0);
        assert_eq!(m.counter_value("x", &[]), Some(1));
        // A registered counter is a series at 0 before anything is counted.
        m.counter("y", "y", &[("exporter", "e")]);
        assert_eq!(m.counter_value("y", &[("exporter", "e")]), Some(0));
        assert!(m.render().contains("x_total 1"), "{}", m.render());
    }

    #[test]
    fn level_decides_which_series_exist() {
        let basic = Metrics::with_level(Level::Basic);
        basic
            .histogram("otelcol_processor_batch_batch_send_size", "s", &[], &[10.0])
            .observe(3.0);
        basic
            .counter("otelcol_receiver_accepted_spans", "a", &[])
            .inc();
        let text = basic.render();
        assert!(!text.contains("batch_send_size"), "{text}");
        assert!(
            text.contains("otelcol_receiver_accepted_spans_total 1"),
            "{text}"
        );
        let detailed = Metrics::with_level(Level::Detailed);
        detailed
            .histogram("otelcol_processor_batch_batch_send_size", "s", &[], &[10.0])
            .observe(1.0);
        assert!(detailed.render().contains("batch_send_size"));
        let none = Metrics::with_level(Level::None);
        none.counter("otelcol_receiver_accepted_spans", "a", &[])
            .inc();
        none.gauge_fn("otelcol_process_uptime", "u", &[], || 1.0);
        assert_eq!(none.render(), "");
        assert_eq!(
            none.counter_value("otelcol_receiver_accepted_spans", &[]),
            None
        );
    }

    #[test]
    fn otlp_has_upstream_units_and_types() {
        use wasmcol_pdata::proto::metrics::v1::metric::Data;
        let m = Metrics::with_options(MetricsOptions {
            resource: vec![("service.name".into(), "wasmcol".into())],
            ..MetricsOptions::default()
        });
        m.counter(
            "otelcol_exporter_sent_spans",
            "Sent.",
            &[("exporter", "otlp")],
        )
        .add(4);
        m.gauge("otelcol_exporter_queue_size", "Size.", &[]).set(2);
        m.histogram("wasmcol_plugin_duration_seconds", "D.", &[], &[0.1, 1.0])
            .observe(0.5);
        m.gauge_fn("otelcol_process_uptime", "Up.", &[], || 3.0);
        let req = m.to_otlp();
        let resource = req.resource_metrics[0].resource.as_ref().unwrap();
        assert_eq!(resource.attributes.len(), 1, "{resource:?}");
        assert_eq!(resource.attributes[0].key, "service.name");
        let metrics = &req.resource_metrics[0].scope_metrics[0].metrics;
        let find = |n: &str| metrics.iter().find(|x| x.name == n).unwrap();
        let sent = find("otelcol_exporter_sent_spans");
        assert_eq!(sent.unit, "{spans}");
        match &sent.data {
            Some(Data::Sum(s)) => {
                assert!(s.is_monotonic);
                assert_eq!(s.data_points[0].attributes[0].key, "exporter");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(find("otelcol_exporter_queue_size").unit, "{batches}");
        // Upstream's uptime is an observable counter: a cumulative monotonic sum.
        match &find("otelcol_process_uptime").data {
            Some(Data::Sum(s)) => assert!(s.is_monotonic),
            other => panic!("{other:?}"),
        }
        match &find("wasmcol_plugin_duration_seconds").data {
            Some(Data::Histogram(h)) => {
                assert_eq!(h.data_points[0].bucket_counts, vec![0, 1, 0]);
                assert_eq!(h.data_points[0].count, 1);
            }
            other => panic!("{other:?}"),
        }
    }

    /// Units as upstream's generated `documentation.md` files give them (batch processor,
    /// exporterhelper, receiverhelper, processorhelper, tail_sampling).
    #[test]
    fn units_are_upstreams() {
        for (name, unit) in [
            ("otelcol_processor_batch_batch_send_size", "{units}"),
            ("otelcol_processor_batch_batch_send_size_bytes", "By"),
            ("otelcol_processor_batch_batch_size_trigger_send", "{times}"),
            ("otelcol_processor_batch_timeout_trigger_send", "{times}"),
            (
                "otelcol_processor_batch_metadata_cardinality",
                "{combinations}",
            ),
            ("otelcol_exporter_queue_batch_send_size", "{units}"),
            ("otelcol_exporter_queue_size", "{batches}"),
            ("otelcol_exporter_sent_spans", "{spans}"),
            ("otelcol_exporter_sent_metric_points", "{datapoints}"),
            ("otelcol_exporter_sent_log_records", "{records}"),
            ("otelcol_receiver_accepted_spans", "{spans}"),
            ("otelcol_processor_incoming_items", "{items}"),
            (
                "otelcol_processor_tail_sampling_sampling_decision_latency",
                "us",
            ),
            (
                "otelcol_processor_tail_sampling_sampling_decision_timer_latency",
                "ms",
            ),
            (
                "otelcol_processor_tail_sampling_sampling_late_span_age",
                "s",
            ),
            ("otelcol_process_uptime", "s"),
        ] {
            assert_eq!(metric_unit(name), unit, "{name}");
        }
    }
}
