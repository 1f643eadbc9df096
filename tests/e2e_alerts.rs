//! Seed 000's alert rules (`deploy/k8s/prometheusrule.yaml`) evaluated by `promtool test
//! rules` on series scraped from a running region collector through a cross-region outage.
//!
//! Seed 000's region collector (from `examples/`) exports over mTLS to the gateway through a
//! TCP link the test can cut. The test scrapes the collector's `/metrics` before, during and
//! after a cut, one scrape per promtool minute (the values are real, the clock is
//! compressed: the rules' `for: 5m` and `[5m]` windows count scrapes), writes those series
//! as a promtool test and states when each alert must fire:
//! - `CrossRegionQueueBacklog`: more than 5000 requests pile up in the persistent
//!   cross-region queue during the cut, the alert fires after five minutes of it and is
//!   silent before and after; everything acknowledged arrives once the link is back.
//! - `CrossRegionExportDown`: with the seed's 30-minute `max_elapsed_time` a failed export is
//!   counted only when its retries run out (upstream's semantics), so a cut shorter than that
//!   never fires it: the backlog scenario checks it stays silent. A second scenario shortens
//!   `max_elapsed_time` so exports fail during the cut; the alert fires and resolves once
//!   spans flow again.
//!
//! Without promtool the test is skipped with a message, unless `WASMCOL_REQUIRE_PROMTOOL=1`.
// Test code: a failed expectation is reported by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod plugins_support;
mod seed_configs;
mod tls_support;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{Backend, Collector, eventually};
use futures::StreamExt as _;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use plugins_support::isolate_cache;
use seed_configs::{seed_000_gateway, seed_000_region};
use tls_support::Pki;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use wasmcol_testkit::prom::series;
use wasmcol_testkit::promtool;

/// How long a drain or a metric change may take before the test fails. Generous: the cross
/// -region exporter retries with backoff.
const LONG_WAIT: Duration = Duration::from_secs(120);
/// The exporter the rules watch.
const EXPORTER: &str = "exporter=\"otlp/cross-region\"";
/// The series the rules read.
const RULE_SERIES: [&str; 3] = [
    "otelcol_exporter_queue_size",
    "otelcol_exporter_sent_spans_total",
    "otelcol_exporter_send_failed_spans_total",
];

/// A TCP link between the region collector and the gateway that the test can cut: while cut,
/// open connections are closed and new ones are dropped as soon as they are accepted.
struct Link {
    addr: SocketAddr,
    open: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Link {
    async fn start(target: SocketAddr) -> Link {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (open, rx) = watch::channel(true);
        let task = tokio::spawn(async move {
            // Dropped with the task: aborting the accept loop closes every connection.
            let mut conns = JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                while conns.try_join_next().is_some() {}
                if !*rx.borrow() {
                    continue;
                }
                let mut rx = rx.clone();
                conns.spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = rx.wait_for(|open| !open) => {}
                    }
                });
            }
        });
        Link { addr, open, task }
    }

    fn cut(&self) {
        self.open.send_replace(false);
    }

    fn restore(&self) {
        self.open.send_replace(true);
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What the test sends: numbered single-span requests to the region collector.
struct Sender {
    client: TraceServiceClient<tonic::transport::Channel>,
    next: u64,
    acked: BTreeSet<u64>,
}

impl Sender {
    async fn new(region: &Collector) -> Sender {
        Sender {
            client: TraceServiceClient::connect(region.grpc_url("otlp"))
                .await
                .unwrap(),
            next: 1,
            acked: BTreeSet::new(),
        }
    }

    /// Sends `n` single-span requests, 16 in flight; every one must be acknowledged.
    async fn send(&mut self, n: u64) {
        let first = self.next;
        self.next += n;
        let client = self.client.clone();
        let answers: Vec<(u64, Result<(), tonic::Status>)> =
            futures::stream::iter(first..first + n)
                .map(|i| {
                    let mut c = client.clone();
                    async move {
                        let r = c.export(wasmcol_testkit::spans::request(i, 1)).await;
                        (i, r.map(|_| ()))
                    }
                })
                .buffer_unordered(16)
                .collect()
                .await;
        for (i, r) in answers {
            r.unwrap_or_else(|e| panic!("span {i} refused: {e}"));
            self.acked.insert(i);
        }
    }
}

/// The rule series of the cross-region exporter in one scrape: `name{labels}` → value.
fn rule_series(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter(|(head, _)| {
            let name = head.split('{').next().unwrap_or_default();
            RULE_SERIES.contains(&name) && head.contains(EXPORTER)
        })
        .filter_map(|(head, v)| Some((head.to_owned(), v.trim().parse().ok()?)))
        .collect()
}

/// The `k="v"` labels of a series head.
fn labels(head: &str) -> Vec<(String, String)> {
    let inner = head
        .split_once('{')
        .map_or("", |(_, rest)| rest.trim_end_matches('}'));
    inner
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned()))
        .collect()
}

/// Scrapes taken one promtool minute apart.
#[derive(Default)]
struct Timeline {
    samples: Vec<BTreeMap<String, f64>>,
}

impl Timeline {
    async fn scrape(&mut self, region: &Collector) -> usize {
        self.samples.push(rule_series(&region.scrape().await));
        self.samples.len() - 1
    }

    /// The value of the rule series `name` at minute `at`.
    fn value(&self, name: &str, at: usize) -> f64 {
        self.samples[at]
            .iter()
            .find(|(head, _)| head.split('{').next() == Some(name))
            .map_or(f64::NAN, |(_, v)| *v)
    }

    /// The labels of the rule series `name` (as scraped).
    fn labels(&self, name: &str) -> Vec<(String, String)> {
        self.samples
            .iter()
            .flat_map(|s| s.keys())
            .find(|head| head.split('{').next() == Some(name))
            .map(|head| labels(head))
            .unwrap_or_else(|| panic!("{name} never scraped"))
    }

    /// promtool's `input_series`: one sample a minute, `_` where a scrape lacked the series.
    fn input_series(&self) -> String {
        let heads: BTreeSet<&String> = self.samples.iter().flat_map(|s| s.keys()).collect();
        let mut out = String::new();
        for head in heads {
            let values: Vec<String> = self
                .samples
                .iter()
                .map(|s| s.get(head).map_or("_".to_owned(), |v| v.to_string()))
                .collect();
            writeln!(
                out,
                "      - series: '{head}'\n        values: '{}'",
                values.join(" ")
            )
            .unwrap();
        }
        out
    }
}

/// An expected alert in `promtool test rules` syntax.
struct Expect {
    at: usize,
    alert: &'static str,
    /// `(labels, summary)` when the alert must fire at minute `at`; `None` when silent.
    firing: Option<(Vec<(String, String)>, String)>,
}

/// Runs `promtool test rules` over the timeline with the expectations; panics with the test
/// file and promtool's output when an alert does not behave.
fn promtool_test(timeline: &Timeline, expects: &[Expect]) {
    let mut tests = String::new();
    for e in expects {
        write!(
            tests,
            "      - eval_time: {}m\n        alertname: {}\n",
            e.at, e.alert
        )
        .unwrap();
        match &e.firing {
            None => tests.push_str("        exp_alerts: []\n"),
            Some((labels, summary)) => {
                let labels: Vec<String> = labels
                    .iter()
                    .map(|(k, v)| format!("{k}: {}", serde_json::to_string(v).unwrap()))
                    .collect();
                write!(
                    tests,
                    "        exp_alerts:\n          - exp_labels: {{{}}}\n            \
                     exp_annotations: {{summary: {}}}\n",
                    labels.join(", "),
                    serde_json::to_string(summary).unwrap()
                )
                .unwrap();
            }
        }
    }
    let file = format!(
        "rule_files:\n  - alerts.rules.yaml\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    \
         input_series:\n{}    alert_rule_test:\n{tests}",
        timeline.input_series()
    );
    let dir = tempfile::tempdir().unwrap();
    promtool::write_rules(dir.path()).unwrap();
    std::fs::write(dir.path().join("scraped.test.yaml"), &file).unwrap();
    if let Err(e) = promtool::run(dir.path(), &["test", "rules", "scraped.test.yaml"]) {
        panic!("{e}\nthe test file:\n{file}");
    }
    eprintln!("promtool test on the scraped series passed:\n{file}");
}

/// Waits until a scrape satisfies `cond`.
async fn wait_scrape(region: &Collector, what: &str, cond: impl Fn(&str) -> bool) {
    let t = Instant::now();
    let mut last = String::new();
    while t.elapsed() < LONG_WAIT {
        last = region.scrape().await;
        if cond(&last) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what}: not within {LONG_WAIT:?}; last scrape:\n{last}");
}

fn cross(text: &str, name: &str) -> f64 {
    series(text, name, EXPORTER).unwrap_or(0.0)
}

/// One scrape per minute while spans flow normally: each minute one request is sent and
/// its span counted as sent cross-region before the scrape.
async fn flowing(region: &Collector, sender: &mut Sender, timeline: &mut Timeline, minutes: usize) {
    for _ in 0..minutes {
        let before = cross(&region.scrape().await, "otelcol_exporter_sent_spans");
        sender.send(1).await;
        wait_scrape(region, "a span is sent cross-region", |t| {
            cross(t, "otelcol_exporter_sent_spans") > before
        })
        .await;
        timeline.scrape(region).await;
    }
}

/// Seed 000 with the gateway behind a [`Link`], a sender and an empty timeline.
struct Fixture {
    remote: Backend,
    link: Link,
    region: Collector,
    sender: Sender,
    timeline: Timeline,
    _rest: (Pki, Backend, Collector, tempfile::TempDir),
}

impl Fixture {
    /// Seed 000's gateway and region collector, the region exporting through a [`Link`] with
    /// the cross-region `retry_on_failure` intervals `(initial, max, max_elapsed)` (the
    /// seed's 10s/300s would make the test wait for retries) and a 100ms batch timeout;
    /// `None` (the test skips) without promtool.
    async fn start((initial, max, max_elapsed_time): (&str, &str, &str)) -> Option<Fixture> {
        if !promtool::available().unwrap() {
            eprintln!("SKIPPED: promtool not installed (Debian: apt-get install prometheus)");
            return None;
        }
        isolate_cache();
        let pki = Pki::generate();
        let (local, remote) = (Backend::start().await, Backend::start().await);
        let gateway = seed_000_gateway(pki.dir.path(), &remote).start();
        let link = Link::start(gateway.grpc["otlp"]).await;
        let queues = tempfile::tempdir().unwrap();
        let retry = "exporters.otlp/cross-region.retry_on_failure";
        let gateway_addr = link.addr.to_string();
        let region = seed_000_region(pki.dir.path(), &local, &gateway_addr, queues.path())
            .set(format!("{retry}.initial_interval={initial}"))
            .set(format!("{retry}.max_interval={max}"))
            .set(format!("{retry}.max_elapsed_time={max_elapsed_time}"))
            // The seed's 5s batch timeout would hold every probe span for 5s.
            .set("processors.batch.timeout=100ms")
            .start();
        Some(Fixture {
            sender: Sender::new(&region).await,
            timeline: Timeline::default(),
            remote,
            link,
            region,
            _rest: (pki, local, gateway, queues),
        })
    }
}

/// `CrossRegionQueueBacklog` fires during a cut that queues more than 5000 requests, after
/// its five minutes, and is silent before and after; `CrossRegionExportDown` stays silent
/// (no export has run out of the seed's 30 minutes of retries); every acknowledged span
/// arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_region_queue_backlog_fires_on_scraped_series() {
    let Some(Fixture {
        remote,
        link,
        region,
        mut sender,
        mut timeline,
        _rest,
    }) = Fixture::start(("1s", "2s", "1800s")).await
    else {
        return;
    };
    let t0 = Instant::now();

    flowing(&region, &mut sender, &mut timeline, 3).await;
    let before = timeline.samples.len() - 1;

    link.cut();
    sender.send(5100).await;
    wait_scrape(&region, "more than 5000 requests queued", |t| {
        cross(t, "otelcol_exporter_queue_size") > 5000.0
    })
    .await;
    let cut_at = timeline.samples.len();
    for _ in 0..8 {
        sender.send(10).await;
        timeline.scrape(&region).await;
    }
    let during = timeline.samples.len() - 1;
    let failed = timeline.value("otelcol_exporter_send_failed_spans_total", during);
    assert!(
        (cut_at..=during).all(|m| timeline.value("otelcol_exporter_queue_size", m) > 5000.0),
        "the queue stays above 5000 during the cut"
    );
    let cut_for = t0.elapsed();

    link.restore();
    wait_scrape(&region, "the cross-region queue drains", |t| {
        cross(t, "otelcol_exporter_queue_size") == 0.0
    })
    .await;
    flowing(&region, &mut sender, &mut timeline, 3).await;
    let after = timeline.samples.len() - 1;
    let acked = sender.acked.clone();
    assert!(
        eventually(LONG_WAIT, || async {
            let got: BTreeSet<u64> =
                remote.with(|r| wasmcol_testkit::spans::ids(&r.traces).into_iter().collect());
            acked.is_subset(&got)
        })
        .await,
        "every acknowledged span reaches the other region"
    );

    let queue = "otelcol_exporter_queue_size";
    let summary = format!(
        "Cross-region telemetry queue has {} items",
        timeline.value(queue, during)
    );
    let mut firing = timeline.labels(queue);
    firing.push(("severity".into(), "warning".into()));
    let backlog = |at, firing| Expect {
        at,
        alert: "CrossRegionQueueBacklog",
        firing,
    };
    let down = |at| Expect {
        at,
        alert: "CrossRegionExportDown",
        firing: None,
    };
    promtool_test(
        &timeline,
        &[
            backlog(before, None),
            // Pending for its first five minutes.
            backlog(cut_at + 4, None),
            backlog(during, Some((firing, summary))),
            backlog(after, None),
            down(before),
            down(during),
            down(after),
        ],
    );
    eprintln!(
        "backlog: {} spans acknowledged, queue peak {} requests, send_failed {failed} during a \
         {cut_for:?} cut, all delivered after it",
        acked.len(),
        (cut_at..=during)
            .map(|m| timeline.value(queue, m))
            .fold(0.0, f64::max)
    );
}

/// With `max_elapsed_time` shorter than the cut, exports fail: `CrossRegionExportDown` fires
/// once failures have been counted and nothing sent for its five minutes, and resolves as
/// soon as spans are sent again; `CrossRegionQueueBacklog` stays silent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_region_export_down_fires_on_scraped_series() {
    let Some(Fixture {
        remote: _,
        link,
        region,
        mut sender,
        mut timeline,
        _rest,
    }) = Fixture::start(("100ms", "200ms", "500ms")).await
    else {
        return;
    };

    flowing(&region, &mut sender, &mut timeline, 3).await;
    let before = timeline.samples.len() - 1;

    let t0 = Instant::now();
    link.cut();
    let failed = "otelcol_exporter_send_failed_spans";
    for _ in 0..14 {
        let was = cross(&region.scrape().await, failed);
        sender.send(1).await;
        wait_scrape(&region, "a cross-region export fails", |t| {
            cross(t, failed) > was
        })
        .await;
        timeline.scrape(&region).await;
    }
    let during = timeline.samples.len() - 1;
    let cut_for = t0.elapsed();

    link.restore();
    flowing(&region, &mut sender, &mut timeline, 3).await;
    let after = timeline.samples.len() - 1;
    eprintln!(
        "export down: 14 failed exports in a {cut_for:?} cut, flowing again {:?} after it",
        t0.elapsed() - cut_for
    );

    let mut firing = timeline.labels("otelcol_exporter_send_failed_spans_total");
    firing.push(("severity".into(), "critical".into()));
    let summary = "Cross-region telemetry export has completely stopped".to_owned();
    let down = |at, firing| Expect {
        at,
        alert: "CrossRegionExportDown",
        firing,
    };
    let backlog = |at| Expect {
        at,
        alert: "CrossRegionQueueBacklog",
        firing: None,
    };
    promtool_test(
        &timeline,
        &[
            down(before, None),
            down(during, Some((firing, summary))),
            down(after, None),
            backlog(before),
            backlog(during),
            backlog(after),
        ],
    );
}
