//! The seed deployments as containers: the image `deploy/build-image.sh` builds from the binary
//! under test, several collectors on Docker networks, and faults made with Docker itself
//! (a network cut, SIGKILL, a stopped backend). Skipped, saying why, where no Docker engine
//! answers (`WASMCOL_SKIP_DOCKER_TESTS=1` skips them too).
//!
//! Backends are wasmcol containers too: an `otlp` receiver and the `debug` exporter printing
//! one line per span to stdout (`verbosity: normal`), which the test reads back with
//! `docker logs` to count every span id and read its attributes. Senders run in the test on
//! ports published on 127.0.0.1; a span is *acknowledged* when its request was answered OK.
//! Each scenario prints its figures (sent / acknowledged / delivered / duplicated).
// Test code: a failed expectation is reported by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod docker_support;
mod tls_support;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use docker_support::{Docker, Recorded, Spec, parse_recorded, repo_root, unavailable};
use futures::StreamExt as _;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use parking_lot::Mutex;
use tls_support::{CA, CLIENT_CERT, CLIENT_KEY, GATEWAY_CERT, GATEWAY_KEY, TOKEN, TOKEN_FILE};
use wasmcol_testkit::prom::series;
use wasmcol_testkit::spans::request;

/// How long a wait for delivery, readiness or a metric may take.
const WAIT: Duration = Duration::from_secs(90);

/// How long seed 001's aggregator stays down at least.
const OUTAGE: Duration = Duration::from_secs(5);

/// The recording backend's config.
const BACKEND: &str = "\
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 0.0.0.0:4317
exporters:
  debug:
    verbosity: normal
    use_internal_logger: false
extensions:
  health_check:
    endpoint: 0.0.0.0:13133
service:
  extensions: [health_check]
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [debug]
";

fn skip() -> bool {
    match unavailable() {
        Some(why) => {
            eprintln!("SKIPPED: container end-to-end tests need a Docker engine: {why}");
            true
        }
        None => false,
    }
}

/// The start of a scenario: its clock, a runtime for the senders and the image built; `None`
/// (having said why) where the tests cannot run.
fn begin(test: &str) -> Option<(Instant, tokio::runtime::Runtime, Docker)> {
    if skip() {
        return None;
    }
    Some((Instant::now(), runtime(), Docker::new(test)))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn client(addr: SocketAddr) -> TraceServiceClient<tonic::transport::Channel> {
    let ch = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .connect_lazy();
    TraceServiceClient::new(ch)
}

/// Sends `requests` requests of `per` spans numbered from `first`, `concurrency` at a time;
/// returns the acknowledged ids.
async fn send(
    addr: SocketAddr,
    first: u64,
    requests: u64,
    per: u64,
    concurrency: usize,
) -> Vec<u64> {
    let c = client(addr);
    let acked: Vec<Vec<u64>> = futures::stream::iter(0..requests)
        .map(|i| {
            let mut c = c.clone();
            let start = first + i * per;
            async move {
                match c.export(request(start, per)).await {
                    Ok(_) => (start..start + per).collect(),
                    Err(e) => {
                        eprintln!("request {start}+{per} refused: {e}");
                        Vec::new()
                    }
                }
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    acked.into_iter().flatten().collect()
}

/// A sender that keeps sending until stopped, counting what was attempted and acknowledged.
struct Stream {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<u64>>>,
    next: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Stream {
    /// Four tasks, each sending a request of `per` spans every `pace` at most.
    fn start(
        rt: &tokio::runtime::Runtime,
        addr: SocketAddr,
        first: u64,
        per: u64,
        pace: Duration,
    ) -> Stream {
        let s = Stream {
            stop: Arc::new(AtomicBool::new(false)),
            acked: Arc::new(Mutex::new(Vec::new())),
            next: Arc::new(AtomicU64::new(first)),
            failed: Arc::new(AtomicU64::new(0)),
            tasks: Vec::new(),
        };
        let c = {
            let _rt = rt.enter();
            client(addr)
        };
        let tasks = (0..4)
            .map(|_| {
                let (stop, acked, next, failed) = (
                    s.stop.clone(),
                    s.acked.clone(),
                    s.next.clone(),
                    s.failed.clone(),
                );
                let mut c = c.clone();
                rt.spawn(async move {
                    while !stop.load(Ordering::SeqCst) {
                        let start = next.fetch_add(per, Ordering::SeqCst);
                        match c.export(request(start, per)).await {
                            Ok(_) => acked.lock().extend(start..start + per),
                            Err(_) => {
                                failed.fetch_add(1, Ordering::SeqCst);
                                tokio::time::sleep(Duration::from_millis(50)).await;
                            }
                        }
                        tokio::time::sleep(pace).await;
                    }
                })
            })
            .collect();
        Stream { tasks, ..s }
    }

    fn acked_len(&self) -> usize {
        self.acked.lock().len()
    }

    /// Stops; returns (ids attempted, acknowledged ids, failed requests).
    fn finish(self, rt: &tokio::runtime::Runtime, first: u64) -> (u64, Vec<u64>, u64) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.tasks {
            rt.block_on(t).unwrap();
        }
        let acked = std::mem::take(&mut *self.acked.lock());
        (
            self.next.load(Ordering::SeqCst) - first,
            acked,
            self.failed.load(Ordering::SeqCst),
        )
    }
}

/// Waits until `backend` has received every id in `want`; returns everything it recorded.
fn wait_delivered(d: &Docker, backend: &str, want: &BTreeSet<u64>) -> Vec<Recorded> {
    let deadline = Instant::now() + WAIT;
    loop {
        let got = parse_recorded(&d.logs(backend).0);
        let have: BTreeSet<u64> = got.iter().map(|r| r.id).collect();
        let missing = want.difference(&have).count();
        if missing == 0 {
            return got;
        }
        if Instant::now() >= deadline {
            panic!(
                "{backend}: {missing} of {} acknowledged spans missing after {WAIT:?} (first: {:?})",
                want.len(),
                want.difference(&have).next()
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Waits until every id in `want` has reached one of `backends`; returns what each recorded.
fn wait_delivered_any(d: &Docker, backends: &[&str], want: &BTreeSet<u64>) -> Vec<Vec<Recorded>> {
    let deadline = Instant::now() + WAIT;
    loop {
        let got: Vec<Vec<Recorded>> = backends
            .iter()
            .map(|b| parse_recorded(&d.logs(b).0))
            .collect();
        let have: BTreeSet<u64> = got.iter().flatten().map(|r| r.id).collect();
        let missing = want.difference(&have).count();
        if missing == 0 {
            return got;
        }
        if Instant::now() >= deadline {
            panic!(
                "{backends:?}: {missing} of {} acknowledged spans missing after {WAIT:?}",
                want.len()
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Arrivals per id of the ids in `range`.
fn arrivals(got: &[Recorded], range: std::ops::Range<u64>) -> BTreeMap<u64, u32> {
    let mut m = BTreeMap::new();
    for r in got.iter().filter(|r| range.contains(&r.id)) {
        *m.entry(r.id).or_default() += 1;
    }
    m
}

/// Duplicated arrivals (arrivals beyond the first) among `range`.
fn duplicates(got: &[Recorded], range: std::ops::Range<u64>) -> u32 {
    arrivals(got, range).values().map(|n| n - 1).sum()
}

/// Scrapes a collector's metrics on a published port.
fn scrape(rt: &tokio::runtime::Runtime, addr: SocketAddr) -> String {
    rt.block_on(async {
        let r = reqwest::Client::new()
            .get(format!("http://{addr}/metrics"))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .unwrap();
        r.text().await.unwrap()
    })
}

/// Waits until `f(scrape)` holds; returns the last scrape.
fn wait_metric(
    rt: &tokio::runtime::Runtime,
    addr: SocketAddr,
    what: &str,
    f: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let text = scrape(rt, addr);
        if f(&text) {
            return text;
        }
        if Instant::now() >= deadline {
            panic!("{what}: not within {WAIT:?}; metrics:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn queue_size(text: &str, exporter: &str) -> f64 {
    series(
        text,
        "otelcol_exporter_queue_size",
        &format!("exporter=\"{exporter}\""),
    )
    .unwrap_or(-1.0)
}

/// A host directory (readable by the image's user) holding `files`, for a read-only mount.
fn host_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

fn s(v: &str) -> String {
    v.to_string()
}

fn recorder(name: &str, network: &str, conf: &tempfile::TempDir) -> Spec {
    Spec {
        name: s(name),
        network: s(network),
        mounts: vec![(conf.path().display().to_string(), s("/test"))],
        args: vec![s("--config"), s("/test/backend.yaml")],
        fast_healthcheck: true,
        ..Spec::default()
    }
}

/// Seed 000's region collector for region `region`: `examples/seed-000-region-us-east.yaml`
/// as shipped, with its endpoints, certificates and queue root from the environment, the
/// region tag replaced for the second region, metrics on all interfaces, and the
/// cross-region retry backoff shortened (1s to 2s instead of 10s to 300s) so a cut of
/// seconds is retried within the test's time.
fn region_collector(
    name: &str,
    network: &str,
    region: &str,
    gateway: &str,
    backend: &str,
    certs: &tempfile::TempDir,
) -> Spec {
    let mut spec = seed_spec(name, network, certs, backend);
    spec.mounts
        .push((format!("queue-{name}"), s("/var/otel/queue")));
    spec.env.extend([
        (s("CROSS_REGION_GATEWAY"), format!("{gateway}:4317")),
        (s("QUEUE_DIR"), s("/var/otel/queue")),
    ]);
    Spec {
        publish: vec![4317, 8888],
        args: [
            "--config",
            "/examples/seed-000-region-us-east.yaml",
            "--set",
            "service.telemetry.metrics.address=0.0.0.0:8888",
            "--set",
            &format!(
                "processors.resource/region.attributes=[{{key: deployment.region, value: {region}, action: upsert}}]"
            ),
            "--set",
            "exporters.otlp/cross-region.retry_on_failure.initial_interval=1s",
            "--set",
            "exporters.otlp/cross-region.retry_on_failure.max_interval=2s",
        ]
        .map(s)
        .to_vec(),
        ..spec
    }
}

/// A seed 000 collector: `examples/` and the certificates mounted, `CERT_DIR` and
/// `LOCAL_BACKEND` set.
fn seed_spec(name: &str, network: &str, certs: &tempfile::TempDir, backend: &str) -> Spec {
    Spec {
        name: s(name),
        network: s(network),
        mounts: vec![
            (
                repo_root().join("examples").display().to_string(),
                s("/examples"),
            ),
            (certs.path().display().to_string(), s("/certs")),
        ],
        env: vec![
            (s("CERT_DIR"), s("/certs")),
            (s("LOCAL_BACKEND"), format!("http://{backend}:4317")),
        ],
        ..Spec::default()
    }
}

/// Seed 000's gateway as shipped, its backend and certificates from the environment.
fn gateway(name: &str, network: &str, backend: &str, certs: &tempfile::TempDir) -> Spec {
    Spec {
        args: ["--config", "/examples/seed-000-gateway-eu-west.yaml"]
            .map(s)
            .to_vec(),
        ..seed_spec(name, network, certs, backend)
    }
}

/// Checks `got` (one backend's arrivals) for spans `range` of one region: each acknowledged
/// id present, with the region tag, and with the gateway's mark when `forwarded`.
fn check_attrs(got: &[Recorded], acked: &[u64], region: &str, forwarded: bool, backend: &str) {
    let want: BTreeSet<u64> = acked.iter().copied().collect();
    for r in got.iter().filter(|r| want.contains(&r.id)) {
        assert_eq!(r.region.as_deref(), Some(region), "{backend}: {r:?}");
        let source = forwarded.then_some("cross-region-forward");
        assert_eq!(r.source.as_deref(), source, "{backend}: {r:?}");
    }
}

/// Scenario: seed 000 as six containers on two networks. Region A (us-east-1) and region B
/// (eu-west-1) each have a region collector (persistent queues on a named volume), a
/// gateway (mTLS receiver) and a recording backend on their own network; each gateway is also
/// attached to the other region's network, which is how the other region's collector
/// reaches it (over mTLS with zstd).
/// 1. Steady state: each region's spans reach both backends, tagged with
///    `deployment.region`, and those that crossed marked `telemetry.source`.
/// 2. Partition: region B's gateway is disconnected from region A's network while region A
///    takes spans: A's cross-region queue grows (`otelcol_exporter_queue_size` > 0); once
///    reconnected everything acknowledged reaches backend B and the queue returns to 0.
/// 3. SIGKILL: region A's collector is killed mid-stream and started again on the same
///    volume: every acknowledged span reaches both backends.
#[test]
fn seed_000_two_regions_in_containers() {
    let Some((t0, rt, d)) = begin("seed000") else {
        return;
    };
    let ca = tls_support::Ca::new("wasmcol e2e cross-region CA");
    let server = ca.server(&["gateway-a", "gateway-b"]);
    let client_leaf = ca.client("region collector");
    let certs = host_dir(&[
        (CA, &ca.pem),
        (GATEWAY_CERT, &server.cert),
        (GATEWAY_KEY, &server.key),
        (CLIENT_CERT, &client_leaf.cert),
        (CLIENT_KEY, &client_leaf.key),
        (TOKEN_FILE, TOKEN),
    ]);
    let conf = host_dir(&[("backend.yaml", BACKEND)]);
    for n in ["region-a", "region-b"] {
        d.network(n);
    }
    for v in ["queue-collector-a", "queue-collector-b"] {
        d.volume(v);
    }
    d.start(&recorder("backend-a", "region-a", &conf));
    d.start(&recorder("backend-b", "region-b", &conf));
    d.start(&gateway("gateway-a", "region-a", "backend-a", &certs));
    d.start(&gateway("gateway-b", "region-b", "backend-b", &certs));
    d.connect("region-b", "gateway-a", "gateway-a");
    d.connect("region-a", "gateway-b", "gateway-b");
    d.start(&region_collector(
        "collector-a",
        "region-a",
        "us-east-1",
        "gateway-b",
        "backend-a",
        &certs,
    ));
    d.start(&region_collector(
        "collector-b",
        "region-b",
        "eu-west-1",
        "gateway-a",
        "backend-b",
        &certs,
    ));
    for c in [
        "backend-a",
        "backend-b",
        "gateway-a",
        "gateway-b",
        "collector-a",
        "collector-b",
    ] {
        d.wait_ready(c, 1, WAIT);
    }
    // The image's own HEALTHCHECK (`wasmcol healthcheck`) passes, and the collector runs as
    // the image's non-root user.
    d.wait_healthy("backend-a", WAIT);
    assert_eq!(d.inspect("collector-a", "{{.Config.User}}"), "10001:10001");
    let top = d.ok(&["top", &d.name("collector-a"), "-o", "pid,uid,comm"]);
    assert!(
        top.lines()
            .skip(1)
            .all(|l| l.split_whitespace().nth(1) == Some("10001")),
        "{top}"
    );
    let setup = t0.elapsed();

    let a = d.port("collector-a", 4317);
    let b = d.port("collector-b", 4317);
    let a_metrics = d.port("collector-a", 8888);

    // 1. Steady state.
    let t = Instant::now();
    let acked_a = rt.block_on(send(a, 1_000_000, 20, 100, 4));
    let acked_b = rt.block_on(send(b, 2_000_000, 20, 100, 4));
    assert_eq!((acked_a.len(), acked_b.len()), (2000, 2000));
    let all: BTreeSet<u64> = acked_a.iter().chain(&acked_b).copied().collect();
    let got_a = wait_delivered(&d, "backend-a", &all);
    let got_b = wait_delivered(&d, "backend-b", &all);
    check_attrs(&got_a, &acked_a, "us-east-1", false, "backend-a");
    check_attrs(&got_a, &acked_b, "eu-west-1", true, "backend-a");
    check_attrs(&got_b, &acked_b, "eu-west-1", false, "backend-b");
    check_attrs(&got_b, &acked_a, "us-east-1", true, "backend-b");
    eprintln!(
        "steady: sent 4000 spans (2000 per region), acknowledged {}, delivered to backend-a {} \
         (dup {}), to backend-b {} (dup {}), {:?}",
        all.len(),
        arrivals(&got_a, 1_000_000..3_000_000).len(),
        duplicates(&got_a, 1_000_000..3_000_000),
        arrivals(&got_b, 1_000_000..3_000_000).len(),
        duplicates(&got_b, 1_000_000..3_000_000),
        t.elapsed()
    );

    partition(&rt, &d, a, a_metrics);
    sigkill(&rt, &d);
    eprintln!(
        "seed 000 in containers: setup {setup:?}, total {:?}",
        t0.elapsed()
    );
}

/// Step 2 of [`seed_000_two_regions_in_containers`].
fn partition(rt: &tokio::runtime::Runtime, d: &Docker, a: SocketAddr, a_metrics: SocketAddr) {
    let t = Instant::now();
    d.disconnect("region-a", "gateway-b");
    // One span per request, so that more than 5000 requests queue: the condition of the
    // seed's CrossRegionQueueBacklog alert (tests/e2e_alerts.rs runs promtool on it).
    let acked = rt.block_on(send(a, 3_000_000, 5100, 1, 16));
    assert_eq!(acked.len(), 5100, "region A refused spans during the cut");
    let text = wait_metric(rt, a_metrics, "CrossRegionQueueBacklog's condition", |m| {
        queue_size(m, "otlp/cross-region") > 5000.0
    });
    let peak = queue_size(&text, "otlp/cross-region");
    // The series the seed's alert rules (deploy/k8s/prometheusrule.yaml) read, with the
    // labels deploy/k8s/alerts.test.yaml gives them.
    for (name, labels) in [
        (
            "otelcol_exporter_queue_size",
            "data_type=\"traces\",exporter=\"otlp/cross-region\"",
        ),
        (
            "otelcol_exporter_sent_spans_total",
            "exporter=\"otlp/cross-region\"",
        ),
        (
            "otelcol_exporter_send_failed_spans_total",
            "exporter=\"otlp/cross-region\"",
        ),
    ] {
        let line = format!("{name}{{{labels}}} ");
        assert!(
            text.lines().any(|l| l.starts_with(&line)),
            "no {line} in:\n{text}"
        );
    }
    let failed = series(
        &text,
        "otelcol_exporter_send_failed_spans",
        "exporter=\"otlp/cross-region\"",
    );
    // The local path is not cut: region A's own backend has them meanwhile.
    let want: BTreeSet<u64> = acked.iter().copied().collect();
    wait_delivered(d, "backend-a", &want);
    let cut = t.elapsed();
    d.connect("region-a", "gateway-b", "gateway-b");
    let got = wait_delivered(d, "backend-b", &want);
    check_attrs(&got, &acked, "us-east-1", true, "backend-b");
    wait_metric(rt, a_metrics, "cross-region queue drains to 0", |m| {
        queue_size(m, "otlp/cross-region") == 0.0 && queue_size(m, "otlp/local") == 0.0
    });
    eprintln!(
        "partition: sent 5100 spans in 5100 requests during a {cut:?} cut, acknowledged {}, \
         cross-region queue peak seen {peak} requests, send_failed_spans {failed:?}; \
         delivered to backend-b {} (dup {}) within {:?} of reconnecting",
        acked.len(),
        arrivals(&got, 3_000_000..4_000_000).len(),
        duplicates(&got, 3_000_000..4_000_000),
        t.elapsed() - cut
    );
}

/// Step 3 of [`seed_000_two_regions_in_containers`].
fn sigkill(rt: &tokio::runtime::Runtime, d: &Docker) {
    let t = Instant::now();
    let first = 4_000_000;
    let a = d.port("collector-a", 4317);
    let stream = Stream::start(rt, a, first, 10, Duration::from_millis(5));
    let deadline = Instant::now() + WAIT;
    while stream.acked_len() < 1500 {
        assert!(Instant::now() < deadline, "the stream did not get going");
        std::thread::sleep(Duration::from_millis(20));
    }
    d.container("kill", "collector-a");
    let (sent, acked, failed) = stream.finish(rt, first);
    d.container("start", "collector-a");
    d.wait_ready("collector-a", 2, WAIT);
    let want: BTreeSet<u64> = acked.iter().copied().collect();
    let got_a = wait_delivered(d, "backend-a", &want);
    let got_b = wait_delivered(d, "backend-b", &want);
    let range = first..first + sent;
    let unacked_a = arrivals(&got_a, range.clone()).len() - want.len();
    eprintln!(
        "sigkill: sent {sent} spans ({failed} requests failed), acknowledged {}, delivered \
         to backend-a {} acked + {unacked_a} unacknowledged (dup {}), to backend-b {} (dup {}), \
         {:?}",
        want.len(),
        want.len(),
        duplicates(&got_a, range.clone()),
        arrivals(&got_b, range.clone()).len(),
        duplicates(&got_b, range),
        t.elapsed()
    );
}

/// Scenario: seed 001 (`examples/seed-001-failover.yaml` as shipped, the failover
/// connector's `retry_interval` shortened to 3s and the exporters' backoff to 100ms–1s) in a
/// container with its failover queue on a named volume, sending to a recording aggregator
/// container. The aggregator is stopped: the connector fails over to the disk-backed level;
/// it is started again: everything acknowledged arrives, the connector returns to the
/// primary and new spans go there.
#[test]
fn seed_001_failover_in_containers() {
    let Some((t0, rt, d)) = begin("seed001") else {
        return;
    };
    let conf = host_dir(&[("backend.yaml", BACKEND)]);
    d.network("net");
    d.volume("queue");
    d.start(&recorder("aggregator", "net", &conf));
    let mut args = vec![
        s("--config"),
        s("/examples/seed-001-failover.yaml"),
        s("--set"),
        s("service.telemetry.metrics.address=0.0.0.0:8888"),
        s("--set"),
        s("connectors.failover.retry_interval=3s"),
    ];
    for e in ["otlp/primary", "otlp/failover"] {
        args.extend([
            s("--set"),
            format!("exporters.{e}.retry_on_failure.initial_interval=100ms"),
            s("--set"),
            format!("exporters.{e}.retry_on_failure.max_interval=1s"),
        ]);
    }
    d.start(&Spec {
        name: s("collector"),
        network: s("net"),
        mounts: vec![
            (
                repo_root().join("examples").display().to_string(),
                s("/examples"),
            ),
            (s("queue"), s("/var/otel/queue")),
        ],
        env: vec![
            (s("AGGREGATOR"), s("aggregator:4317")),
            (s("QUEUE_DIR"), s("/var/otel/queue")),
        ],
        publish: vec![4317, 8888],
        args,
        fast_healthcheck: true,
        ..Spec::default()
    });
    d.wait_ready("aggregator", 1, WAIT);
    d.wait_ready("collector", 1, WAIT);
    // Seed 001's config has the health_check extension on :13133: the image's HEALTHCHECK.
    d.wait_healthy("collector", WAIT);
    let c = d.port("collector", 4317);
    let m = d.port("collector", 8888);
    let level = |t: &str| series(t, "wasmcol_connector_failover_level", "").unwrap_or(-1.0);
    let sent_by = |t: &str, e: &str| {
        series(
            t,
            "otelcol_exporter_sent_spans",
            &format!("exporter=\"{e}\""),
        )
        .unwrap_or(0.0)
    };

    let before = rt.block_on(send(c, 1, 20, 50, 2));
    assert_eq!(before.len(), 1000);
    wait_delivered(&d, "aggregator", &before.iter().copied().collect());

    let t = Instant::now();
    d.container("stop", "aggregator");
    // Keep sending while the aggregator is down, until the connector has failed over and the
    // failover level has queued some, then a little more.
    let stream = Stream::start(&rt, c, 1_000_000, 10, Duration::from_millis(10));
    let text = wait_metric(&rt, m, "failover to the disk-backed level", |t| {
        level(t) == 1.0 && queue_size(t, "otlp/failover") > 0.0
    });
    let peak = queue_size(&text, "otlp/failover");
    let floor = stream.acked_len() + 500;
    let deadline = Instant::now() + WAIT;
    while stream.acked_len() < floor || t.elapsed() < OUTAGE {
        assert!(
            Instant::now() < deadline,
            "the collector stopped accepting during the outage"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let (sent, acked, failed) = stream.finish(&rt, 1_000_000);
    let outage = t.elapsed();
    d.container("start", "aggregator");
    d.wait_ready("aggregator", 2, WAIT);
    let want: BTreeSet<u64> = acked.iter().copied().collect();
    let got = wait_delivered(&d, "aggregator", &want);
    let range = 1_000_000..1_000_000 + sent;
    eprintln!(
        "failover: aggregator down {outage:?}: sent {sent} spans ({failed} requests failed), \
         acknowledged {}, failover queue peak seen {peak} requests; delivered {} (dup {}) \
         within {:?} of restarting",
        want.len(),
        arrivals(&got, range.clone()).len(),
        duplicates(&got, range),
        t.elapsed() - outage
    );

    // The connector probes the primary with live data every retry_interval: keep sending
    // until it is back on the primary with both queues empty.
    let stream = Stream::start(&rt, c, 2_000_000, 10, Duration::from_millis(10));
    wait_metric(&rt, m, "back to the primary, queues empty", |t| {
        level(t) == 0.0
            && queue_size(t, "otlp/failover") == 0.0
            && queue_size(t, "otlp/primary") == 0.0
    });
    let (sent, acked, failed) = stream.finish(&rt, 2_000_000);
    assert_eq!(failed, 0, "refusals after recovery");
    let got = wait_delivered(&d, "aggregator", &acked.iter().copied().collect());
    let range = 2_000_000..2_000_000 + sent;
    eprintln!(
        "recovery: sent {sent} spans while the connector returned to the primary ({:?} after \
         the restart), delivered {} (dup {})",
        t.elapsed() - outage,
        arrivals(&got, range.clone()).len(),
        duplicates(&got, range)
    );

    // Back on the primary: new spans go there, the failover exporter sends nothing more.
    let text = wait_metric(&rt, m, "both queues empty", |t| {
        queue_size(t, "otlp/failover") == 0.0 && queue_size(t, "otlp/primary") == 0.0
    });
    let failover_sent = sent_by(&text, "otlp/failover");
    let primary_sent = sent_by(&text, "otlp/primary");
    let after = rt.block_on(send(c, 3_000_000, 10, 50, 2));
    assert_eq!(after.len(), 500);
    let got = wait_delivered(&d, "aggregator", &after.iter().copied().collect());
    let text = wait_metric(&rt, m, "the primary sent the new spans", |t| {
        sent_by(t, "otlp/primary") >= primary_sent + 500.0
    });
    assert_eq!(sent_by(&text, "otlp/failover"), failover_sent);
    eprintln!(
        "after recovery: sent 500, delivered {} (dup {}) through the primary; total {:?}",
        arrivals(&got, 3_000_000..3_000_500).len(),
        duplicates(&got, 3_000_000..3_000_500),
        t0.elapsed()
    );
}

/// Scenario: seed 002's first tier (`examples/seed-002-lb-dns.yaml` as shipped, the DNS
/// resolver's interval shortened to 1s) resolving Docker's embedded DNS: the gateways are
/// recording backends sharing the network alias `gateways`.
/// 1. Two gateways: every span arrives at one of them, and both get some.
/// 2. Scale up under load: a third gateway joins the alias while spans stream in; the
///    resolver finds it (it receives spans) and every acknowledged span arrives.
/// 3. Scale down under load: a gateway is stopped while spans stream in; once the resolver
///    has dropped it, what the load balancer held for it is re-routed: every acknowledged
///    span arrives (at the stopped gateway before it stopped, or at the two left).
#[test]
fn seed_002_lb_dns_in_containers() {
    let Some((t0, rt, d)) = begin("seed002") else {
        return;
    };
    let conf = host_dir(&[("backend.yaml", BACKEND)]);
    d.network("net");
    let gateway = |n: &str| Spec {
        aliases: vec![s("gateways")],
        ..recorder(n, "net", &conf)
    };
    d.start(&gateway("gateway-1"));
    d.start(&gateway("gateway-2"));
    d.start(&Spec {
        name: s("lb"),
        network: s("net"),
        mounts: vec![(
            repo_root().join("examples").display().to_string(),
            s("/examples"),
        )],
        env: vec![(s("GATEWAYS"), s("gateways"))],
        publish: vec![4317, 8888],
        args: [
            "--config",
            "/examples/seed-002-lb-dns.yaml",
            "--set",
            "service.telemetry.metrics.address=0.0.0.0:8888",
            "--set",
            "exporters.loadbalancing.resolver.dns.interval=1s",
        ]
        .map(s)
        .to_vec(),
        ..Spec::default()
    });
    for c in ["gateway-1", "gateway-2", "lb"] {
        d.wait_ready(c, 1, WAIT);
    }
    let lb = d.port("lb", 4317);
    let m = d.port("lb", 8888);
    let backends = |t: &str| series(t, "otelcol_loadbalancer_num_backends", "").unwrap_or(-1.0);
    wait_metric(&rt, m, "two gateways resolved", |t| backends(t) == 2.0);

    let acked = rt.block_on(send(lb, 1, 20, 50, 4));
    assert_eq!(acked.len(), 1000);
    let got = wait_delivered_any(
        &d,
        &["gateway-1", "gateway-2"],
        &acked.iter().copied().collect(),
    );
    let shares: Vec<usize> = got.iter().map(|g| arrivals(g, 1..1001).len()).collect();
    assert!(
        shares.iter().all(|n| *n > 0),
        "a gateway got nothing: {shares:?}"
    );
    eprintln!("lb, two gateways: sent 1000, acknowledged 1000, delivered {shares:?}");

    let t = Instant::now();
    let stream = Stream::start(&rt, lb, 1_000_000, 10, Duration::from_millis(10));
    d.start(&gateway("gateway-3"));
    d.wait_ready("gateway-3", 1, WAIT);
    let deadline = Instant::now() + WAIT;
    while parse_recorded(&d.logs("gateway-3").0).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the resolver never found gateway-3"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let (sent, acked, failed) = stream.finish(&rt, 1_000_000);
    let all = ["gateway-1", "gateway-2", "gateway-3"];
    let got = wait_delivered_any(&d, &all, &acked.iter().copied().collect());
    let range = 1_000_000..1_000_000 + sent;
    let shares: Vec<usize> = got
        .iter()
        .map(|g| arrivals(g, range.clone()).len())
        .collect();
    let dup: u32 = got
        .iter()
        .map(|g| duplicates(g, range.clone()))
        .sum::<u32>()
        + (shares.iter().sum::<usize>() as u32).saturating_sub(acked.len() as u32);
    eprintln!(
        "lb, scale up under load: sent {sent} spans ({failed} requests failed), acknowledged {}, \
         delivered {shares:?} (dup or unacknowledged {dup}), {:?}",
        acked.len(),
        t.elapsed()
    );

    // Scale down under load: what the load balancer still holds for the stopped gateway
    // (queued, or waiting for a retry) goes to the two left once DNS drops it.
    let t = Instant::now();
    let stream = Stream::start(&rt, lb, 2_000_000, 10, Duration::from_millis(10));
    while stream.acked_len() < 200 {
        assert!(t.elapsed() < WAIT, "the stream did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    d.container("stop", "gateway-1");
    wait_metric(&rt, m, "gateway-1 dropped", |t| backends(t) == 2.0);
    let before = stream.acked_len();
    while stream.acked_len() < before + 200 {
        assert!(
            t.elapsed() < WAIT * 2,
            "the stream stalled after the scale-down"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (sent, acked, failed) = stream.finish(&rt, 2_000_000);
    // gateway-1's log keeps what it recorded before it stopped.
    let got = wait_delivered_any(&d, &all, &acked.iter().copied().collect());
    let range = 2_000_000..2_000_000 + sent;
    let shares: Vec<usize> = got
        .iter()
        .map(|g| arrivals(g, range.clone()).len())
        .collect();
    eprintln!(
        "lb, scale down under load: sent {sent} spans ({failed} requests failed), acknowledged {}, \
         delivered {shares:?}, {:?}; total {:?}",
        acked.len(),
        t.elapsed(),
        t0.elapsed()
    );
}
