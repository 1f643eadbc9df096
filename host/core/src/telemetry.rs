//! The collector's own metrics, rendered as Prometheus text with upstream's names.
//!
//! Counters are registered without the `_total` suffix; [`Metrics::render`] adds it unless the
//! config asks for `without_type_suffix`. Registering the same name and labels twice returns
//! the same series, so components can be rebuilt without duplicating series.
//!
//! `service.telemetry.metrics.level` is applied at registration: a series above the level is
//! handed out detached (its atomics count, nothing reads them) and never reaches an output.
//! [`Metrics::to_otlp`] turns the registry into an OTLP request with upstream's units for the
//! periodic (push) readers.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use parking_lot::Mutex;

mod otlp;

type Labels = Vec<(String, String)>;

/// A monotonic counter.
#[derive(Clone, Default)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    /// Adds one.
    pub fn inc(&self) {
        self.add(1);
    }
    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A gauge that can go up and down.
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

/// A histogram with fixed bucket bounds.
#[derive(Clone)]
pub struct Histogram(Arc<HistogramInner>);

struct HistogramInner {
    bounds: Vec<f64>,
    counts: Vec<AtomicU64>,
    sum_micros: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    fn new(bounds: &[f64]) -> Self {
        Histogram(Arc::new(HistogramInner {
            bounds: bounds.to_vec(),
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }))
    }

    /// Records one observation.
    pub fn observe(&self, v: f64) {
        let i = self
            .0
            .bounds
            .iter()
            .position(|b| v <= *b)
            .unwrap_or(self.0.bounds.len());
        self.0.counts[i].fetch_add(1, Ordering::Relaxed);
        self.0.count.fetch_add(1, Ordering::Relaxed);
        // Sums are kept in millionths so they fit an atomic integer.
        self.0
            .sum_micros
            .fetch_add((v * 1e6).max(0.0) as u64, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.0.count.load(Ordering::Relaxed)
    }
}

enum Series {
    Counter(Counter),
    Gauge(Gauge),
    GaugeFn(Box<dyn Fn() -> f64 + Send + Sync>),
    Histogram(Histogram),
}

struct Family {
    help: String,
    series: BTreeMap<Labels, Series>,
}

/// `service.telemetry.metrics.level`: which series exist.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// No metrics at all.
    None,
    /// The components' item counts, queues and the process.
    Basic,
    /// Adds batch sizes and wasmcol's finer series (the default).
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
    // tail_sampling's histograms (upstream's units, whatever the plugin's name).
    if name.ends_with("_sampling_decision_latency") {
        return "µs";
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

/// The registry of the collector's own metrics. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    families: Arc<Mutex<BTreeMap<String, Family>>>,
    level: Level,
    started: std::time::SystemTime,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::with_level(Level::Normal)
    }
}

/// Labels sorted by name, as Prometheus exporters print them, so a series has one spelling.
fn labels(l: &[(&str, &str)]) -> Labels {
    let mut v: Labels = l
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    v.sort();
    v
}

impl Metrics {
    /// An empty registry at the default level (`normal`).
    pub fn new() -> Self {
        Metrics::default()
    }

    /// An empty registry keeping the series `level` enables.
    pub fn with_level(level: Level) -> Self {
        Metrics {
            families: Arc::default(),
            level,
            started: std::time::SystemTime::now(),
        }
    }

    /// The level series are registered at.
    pub fn level(&self) -> Level {
        self.level
    }

    fn enabled(&self, name: &str) -> bool {
        self.level != Level::None && metric_level(name) <= self.level
    }

    fn series<T: Clone>(
        &self,
        name: &str,
        help: &str,
        l: &[(&str, &str)],
        make: impl FnOnce() -> (T, Series),
        get: impl Fn(&Series) -> Option<T>,
    ) -> T {
        if !self.enabled(name) {
            return make().0;
        }
        let mut fams = self.families.lock();
        let fam = fams.entry(name.to_owned()).or_insert_with(|| Family {
            help: help.to_owned(),
            series: BTreeMap::new(),
        });
        let key = labels(l);
        match fam.series.get(&key) {
            Some(existing) => match get(existing) {
                Some(t) => t,
                None => {
                    // Same name, other kind: a programming error. A detached series keeps the
                    // collector running; the log line makes the mistake visible.
                    tracing::error!(
                        metric = name,
                        "metric registered twice with different kinds"
                    );
                    make().0
                }
            },
            None => {
                let (t, s) = make();
                fam.series.insert(key, s);
                t
            }
        }
    }

    /// A counter `name` (without `_total`) with `labels`.
    pub fn counter(&self, name: &str, help: &str, labels: &[(&str, &str)]) -> Counter {
        let make = || {
            let c = Counter::default();
            (c.clone(), Series::Counter(c))
        };
        self.series(name, help, labels, make, |s| match s {
            Series::Counter(c) => Some(c.clone()),
            _ => None,
        })
    }

    /// A gauge `name` with `labels`.
    pub fn gauge(&self, name: &str, help: &str, labels: &[(&str, &str)]) -> Gauge {
        let make = || {
            let g = Gauge::default();
            (g.clone(), Series::Gauge(g))
        };
        self.series(name, help, labels, make, |s| match s {
            Series::Gauge(g) => Some(g.clone()),
            _ => None,
        })
    }

    /// A gauge whose value is read from `f` at scrape time; replaces an earlier one.
    pub fn gauge_fn(
        &self,
        name: &str,
        help: &str,
        labels: &[(&str, &str)],
        f: impl Fn() -> f64 + Send + Sync + 'static,
    ) {
        if !self.enabled(name) {
            return;
        }
        let mut fams = self.families.lock();
        let fam = fams.entry(name.to_owned()).or_insert_with(|| Family {
            help: help.to_owned(),
            series: BTreeMap::new(),
        });
        fam.series
            .insert(self::labels(labels), Series::GaugeFn(Box::new(f)));
    }

    /// A histogram with the given upper bounds.
    pub fn histogram(
        &self,
        name: &str,
        help: &str,
        labels: &[(&str, &str)],
        bounds: &[f64],
    ) -> Histogram {
        let make = || {
            let h = Histogram::new(bounds);
            (h.clone(), Series::Histogram(h))
        };
        self.series(name, help, labels, make, |s| match s {
            Series::Histogram(h) => Some(h.clone()),
            _ => None,
        })
    }

    /// The value of a counter, for tests and the health check.
    pub fn counter_value(&self, name: &str, l: &[(&str, &str)]) -> Option<u64> {
        let fams = self.families.lock();
        match fams.get(name)?.series.get(&labels(l))? {
            Series::Counter(c) => Some(c.get()),
            _ => None,
        }
    }

    /// Prometheus text exposition format. Counters get `_total` unless `without_type_suffix`.
    pub fn render(&self, without_type_suffix: bool) -> String {
        let mut out = String::new();
        let fams = self.families.lock();
        for (name, fam) in fams.iter() {
            let Some(first) = fam.series.values().next() else {
                continue;
            };
            let (ty, exposed) = match first {
                Series::Counter(_) if !without_type_suffix => ("counter", format!("{name}_total")),
                Series::Counter(_) => ("counter", name.clone()),
                Series::Gauge(_) | Series::GaugeFn(_) => ("gauge", name.clone()),
                Series::Histogram(_) => ("histogram", name.clone()),
            };
            let _ = writeln!(out, "# HELP {exposed} {}", fam.help);
            let _ = writeln!(out, "# TYPE {exposed} {ty}");
            for (l, s) in &fam.series {
                match s {
                    Series::Counter(c) => line(&mut out, &exposed, l, None, c.get() as f64),
                    Series::Gauge(g) => line(&mut out, &exposed, l, None, g.get() as f64),
                    Series::GaugeFn(f) => line(&mut out, &exposed, l, None, f()),
                    Series::Histogram(h) => {
                        let mut cum = 0u64;
                        for (i, b) in h.0.bounds.iter().enumerate() {
                            cum += h.0.counts[i].load(Ordering::Relaxed);
                            line(
                                &mut out,
                                &format!("{exposed}_bucket"),
                                l,
                                Some(&format_float(*b)),
                                cum as f64,
                            );
                        }
                        cum += h.0.counts[h.0.bounds.len()].load(Ordering::Relaxed);
                        line(
                            &mut out,
                            &format!("{exposed}_bucket"),
                            l,
                            Some("+Inf"),
                            cum as f64,
                        );
                        line(
                            &mut out,
                            &format!("{exposed}_sum"),
                            l,
                            None,
                            h.0.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
                        );
                        line(
                            &mut out,
                            &format!("{exposed}_count"),
                            l,
                            None,
                            h.count() as f64,
                        );
                    }
                }
            }
        }
        out
    }
}

fn format_float(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

fn line(out: &mut String, name: &str, l: &Labels, le: Option<&str>, v: f64) {
    out.push_str(name);
    if !l.is_empty() || le.is_some() {
        out.push('{');
        let mut first = true;
        for (k, val) in l {
            if !first {
                out.push(',');
            }
            first = false;
            let _ = write!(out, "{k}=\"{}\"", escape(val));
        }
        if let Some(le) = le {
            if !first {
                out.push(',');
            }
            let _ = write!(out, "le=\"{le}\"");
        }
        out.push('}');
    }
    let _ = writeln!(out, " {}", format_float(v));
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Serves the registry as Prometheus text on `endpoint` at `/metrics`, with process metrics;
/// the server's tasks are children of `tasks`.
pub async fn serve(
    endpoint: &str,
    metrics: Metrics,
    without_type_suffix: bool,
    tasks: &crate::Tasks,
) -> std::io::Result<crate::http::HttpServer> {
    register_process_metrics(&metrics);
    let listener = crate::http::bind(endpoint).await?;
    let handler: crate::http::Handler = Arc::new(move |req| {
        let metrics = metrics.clone();
        Box::pin(async move {
            if req.uri().path() == "/metrics" {
                crate::http::response(
                    http::StatusCode::OK,
                    "text/plain; version=0.0.4; charset=utf-8",
                    metrics.render(without_type_suffix),
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
        let m = Metrics::new();
        let c = m.counter(
            "otelcol_receiver_accepted_spans",
            "Spans accepted.",
            &[("receiver", "otlp"), ("transport", "grpc")],
        );
        c.add(5);
        m.counter(
            "otelcol_receiver_accepted_spans",
            "Spans accepted.",
            &[("receiver", "otlp"), ("transport", "grpc")],
        )
        .add(2);
        let text = m.render(false);
        assert!(
            text.contains(
                "otelcol_receiver_accepted_spans_total{receiver=\"otlp\",transport=\"grpc\"} 7"
            ),
            "{text}"
        );
        assert!(
            m.render(true).contains(
                "otelcol_receiver_accepted_spans{receiver=\"otlp\",transport=\"grpc\"} 7"
            )
        );
        let h = m.histogram("d", "d", &[], &[0.1, 1.0]);
        h.observe(0.5);
        assert!(m.render(false).contains("d_bucket{le=\"1\"} 1"));
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
        let text = basic.render(false);
        assert!(!text.contains("batch_send_size"), "{text}");
        assert!(
            text.contains("otelcol_receiver_accepted_spans_total 1"),
            "{text}"
        );
        let detailed = Metrics::with_level(Level::Detailed);
        detailed.histogram("otelcol_processor_batch_batch_send_size", "s", &[], &[10.0]);
        assert!(detailed.render(false).contains("batch_send_size"));
        let none = Metrics::with_level(Level::None);
        none.counter("otelcol_receiver_accepted_spans", "a", &[])
            .inc();
        none.gauge_fn("otelcol_process_uptime", "u", &[], || 1.0);
        assert_eq!(none.render(false), "");
    }

    #[test]
    fn otlp_has_upstream_units_and_types() {
        use wasmcol_pdata::proto::metrics::v1::metric::Data;
        let m = Metrics::new();
        m.counter(
            "otelcol_exporter_sent_spans",
            "Sent.",
            &[("exporter", "otlp")],
        )
        .add(4);
        m.gauge("otelcol_exporter_queue_size", "Size.", &[]).set(2);
        m.histogram("wasmcol_plugin_duration_seconds", "D.", &[], &[0.1, 1.0])
            .observe(0.5);
        let req = m.to_otlp(&[("service.name".into(), "wasmcol".into())]);
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
                "µs",
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
