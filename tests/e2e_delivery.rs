//! End-to-end tests of durable delivery through the real binary: the failover topology of
//! seed 001, SIGKILL with a persistent queue, a full queue answering UNAVAILABLE / 503 with a
//! retry hint, and a queue directory holding a corrupted record.
// Test code: a failed expectation is reported by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod delivery_support;
mod seed_configs;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{Backend, Collector, WAIT, eventually};
use delivery_support::{arrivals, client, wait_all};
use parking_lot::Mutex;
use prost::Message;
use seed_configs::{Launch, seed_001};
use tonic_types::StatusExt;
use wasmcol_testkit::prom::series;
use wasmcol_testkit::spans::request;

/// Sends one request of `n` spans every `every` for `dur`, asserting each is accepted.
async fn send_for(
    c: &mut opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient<
        tonic::transport::Channel,
    >,
    next: &mut u64,
    ids: &mut Vec<u64>,
    dur: Duration,
    every: Duration,
    n: u64,
) {
    let end = tokio::time::Instant::now() + dur;
    while tokio::time::Instant::now() < end {
        let r = c.export(request(*next, n)).await;
        assert!(r.is_ok(), "sender saw a failure: {r:?}");
        ids.extend(*next..*next + n);
        *next += n;
        tokio::time::sleep(every).await;
    }
}

/// Seed 001 from `examples/`, with the test's backend and queue directory, and retry timing
/// shortened so an outage of seconds exercises it: `retry_interval` for the connector, 100 ms
/// to 1 s backoff for both exporters.
fn seed_001_launch(backend: &Backend, queues: &std::path::Path, retry_interval: &str) -> Launch {
    let mut launch = seed_001(backend, queues).set(format!(
        "connectors.failover.retry_interval={retry_interval}"
    ));
    for exporter in ["otlp/primary", "otlp/failover"] {
        launch = launch
            .set(format!("exporters.{exporter}.compression=none"))
            .set(format!(
                "exporters.{exporter}.retry_on_failure.initial_interval=100ms"
            ))
            .set(format!(
                "exporters.{exporter}.retry_on_failure.max_interval=1s"
            ));
    }
    launch
}

/// Scenario: seed 001's topology — `otlp` → `failover` → {primary: memory queue; failover:
/// persistent queue} → the same backend. The backend refuses for 4 s, then recovers.
/// Guarantees: the sender sees success throughout; the connector switches to the failover
/// level during the outage (by delivery outcomes: both exporters have queues and retries)
/// and back after it; every span id arrives (duplicates are counted and reported); the
/// failover queue drains to zero; after recovery new data goes to the primary only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_topology_loses_nothing() {
    let backend = Backend::start().await;
    let storage = tempfile::tempdir().unwrap();
    let c = seed_001_launch(&backend, storage.path(), "1s").start();
    let mut cl = client(c.grpc_url("otlp")).await;
    let (mut next, mut ids) = (0u64, Vec::new());
    let every = Duration::from_millis(20);

    send_for(
        &mut cl,
        &mut next,
        &mut ids,
        Duration::from_secs(1),
        every,
        10,
    )
    .await;
    backend.refuse(Some(tonic::Code::Unavailable));
    send_for(
        &mut cl,
        &mut next,
        &mut ids,
        Duration::from_secs(4),
        every,
        10,
    )
    .await;
    let during = c.scrape().await;
    assert_eq!(
        series(
            &during,
            "wasmcol_connector_failover_level",
            "connector=\"failover\""
        ),
        Some(1.0),
        "not on the failover level during the outage:\n{during}"
    );
    assert!(
        series(
            &during,
            "otelcol_connector_failover_count",
            "connector=\"failover\",level=\"0\""
        )
        .unwrap_or(0.0)
            >= 1.0
    );
    let buffered = series(
        &during,
        "otelcol_exporter_queue_size",
        "exporter=\"otlp/failover\",data_type=\"traces\"",
    )
    .unwrap_or(0.0);
    assert!(
        buffered > 0.0,
        "the failover queue should hold the outage's data:\n{during}"
    );

    backend.refuse(None);
    send_for(
        &mut cl,
        &mut next,
        &mut ids,
        Duration::from_secs(3),
        every,
        10,
    )
    .await;
    let missing = wait_all(&backend, &ids, Duration::from_secs(60)).await;
    assert!(
        missing.is_empty(),
        "{} span ids lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    let got = arrivals(&backend);
    let dups: u64 = got.values().map(|n| u64::from(n - 1)).sum();
    eprintln!(
        "failover e2e: {} spans sent, all arrived, {dups} duplicates",
        ids.len()
    );

    assert!(
        eventually(WAIT, || async {
            let t = c.scrape().await;
            series(
                &t,
                "wasmcol_connector_failover_level",
                "connector=\"failover\"",
            ) == Some(0.0)
                && series(
                    &t,
                    "otelcol_exporter_queue_size",
                    "exporter=\"otlp/failover\",data_type=\"traces\"",
                ) == Some(0.0)
                // Probe copies may still sit in the primary's queue; let them finish so the
                // sent counters below are stable.
                && series(
                    &t,
                    "otelcol_exporter_queue_size",
                    "exporter=\"otlp/primary\",data_type=\"traces\"",
                ) == Some(0.0)
        })
        .await,
        "did not return to the primary with an empty failover queue:\n{}",
        c.scrape().await
    );
    let after = c.scrape().await;
    assert!(
        series(
            &after,
            "wasmcol_connector_failover_recovered",
            "connector=\"failover\""
        )
        .unwrap_or(0.0)
            >= 1.0
    );
    let failover_sent = series(
        &after,
        "otelcol_exporter_sent_spans",
        "exporter=\"otlp/failover\"",
    )
    .unwrap_or(0.0);
    assert!(
        failover_sent > 0.0,
        "the failover level delivered nothing:\n{after}"
    );
    let primary_sent = series(
        &after,
        "otelcol_exporter_sent_spans",
        "exporter=\"otlp/primary\"",
    )
    .unwrap_or(0.0);

    // New data after recovery: primary only.
    let (mut fresh, start) = (Vec::new(), next);
    send_for(
        &mut cl,
        &mut next,
        &mut fresh,
        Duration::from_millis(500),
        every,
        10,
    )
    .await;
    assert!(wait_all(&backend, &fresh, WAIT).await.is_empty());
    assert!(start < next);
    let t = c.scrape().await;
    assert_eq!(
        series(
            &t,
            "otelcol_exporter_sent_spans",
            "exporter=\"otlp/failover\""
        ),
        Some(failover_sent)
    );
    assert_eq!(
        series(
            &t,
            "otelcol_exporter_sent_spans",
            "exporter=\"otlp/primary\""
        ),
        Some(primary_sent + fresh.len() as f64)
    );
}

fn persistent_config(backend: &Backend, storage: &std::path::Path, queue: &str) -> String {
    format!(
        r#"
extensions:
  file_storage:
    directory: {dir}
    create_directory: true
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
      http:
        endpoint: 127.0.0.1:0
exporters:
  otlp/disk:
    endpoint: {ep}
    tls:
      insecure: true
    retry_on_failure:
      initial_interval: 100ms
      max_interval: 500ms
      max_elapsed_time: 0
    sending_queue:
      storage: file_storage
{queue}
service:
  extensions: [file_storage]
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [otlp/disk]
"#,
        dir = storage.display(),
        ep = backend.endpoint(),
    )
}

/// Scenario: a sender keeps sending while the backend refuses; the collector is SIGKILLed
/// mid-stream and restarted with the same config; then the backend recovers.
/// Guarantees: every span whose request was acknowledged arrives (at-least-once; in-flight
/// requests are sent again), duplicates are counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_no_acknowledged_span() {
    let backend = Backend::start().await;
    backend.refuse(Some(tonic::Code::Unavailable));
    let storage = tempfile::tempdir().unwrap();
    let c = Collector::start(&persistent_config(
        &backend,
        storage.path(),
        "      num_consumers: 4",
    ));
    let acked = Arc::new(Mutex::new(Vec::<u64>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let (acked, stop) = (acked.clone(), stop.clone());
        let mut cl = client(c.grpc_url("otlp")).await;
        tokio::spawn(async move {
            let mut next = 0u64;
            while !stop.load(Ordering::Relaxed) && next < 1_000_000 {
                if cl.export(request(next, 20)).await.is_ok() {
                    acked.lock().extend(next..next + 20);
                }
                next += 20;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    assert!(eventually(WAIT, || async { acked.lock().len() >= 4000 }).await);
    let (dir, config) = c.sigkill();
    stop.store(true, Ordering::Relaxed);
    sender.await.unwrap();
    let acked = acked.lock().clone();
    assert!(backend.spans().is_empty(), "the backend was refusing");

    let c = Collector::start_in(dir, config, false, &[]);
    backend.refuse(None);
    let missing = wait_all(&backend, &acked, Duration::from_secs(60)).await;
    assert!(
        missing.is_empty(),
        "{} acknowledged spans lost after SIGKILL, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    let dups: u64 = arrivals(&backend).values().map(|n| u64::from(n - 1)).sum();
    eprintln!(
        "crash e2e: {} acknowledged spans, all arrived, {dups} duplicates",
        acked.len()
    );
    drop(c);
}

/// Scenario: a queue of 2 requests whose backend refuses; more requests arrive.
/// Guarantees: gRPC answers UNAVAILABLE with a RetryInfo delay, HTTP answers 503 with
/// `Retry-After`, and `otelcol_exporter_enqueue_failed_spans` counts the refused spans.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_queue_answers_unavailable_with_hint() {
    let backend = Backend::start().await;
    backend.refuse(Some(tonic::Code::Unavailable));
    let storage = tempfile::tempdir().unwrap();
    let c = Collector::start(&persistent_config(
        &backend,
        storage.path(),
        "      queue_size: 2\n      num_consumers: 1",
    ));
    let mut cl = client(c.grpc_url("otlp")).await;
    cl.export(request(0, 3)).await.unwrap();
    cl.export(request(3, 3)).await.unwrap();
    let status = cl.export(request(6, 5)).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    let hint = status.get_details_retry_info().and_then(|r| r.retry_delay);
    assert!(
        hint.is_some_and(|d| !d.is_zero()),
        "no RetryInfo: {status:?}"
    );

    let resp = reqwest::Client::new()
        .post(format!("{}/v1/traces", c.http_url("otlp")))
        .header("content-type", "application/x-protobuf")
        .body(request(20, 7).encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    assert!(
        resp.headers().get("retry-after").is_some(),
        "{:?}",
        resp.headers()
    );
    let t = c.scrape().await;
    assert_eq!(
        series(
            &t,
            "otelcol_exporter_enqueue_failed_spans",
            "exporter=\"otlp/disk\""
        ),
        Some(12.0),
        "{t}"
    );
}

/// Scenario: a persistent queue directory in which one record's bytes were damaged while
/// the collector was down.
/// Guarantees: the collector starts, quarantines and counts the record, logs it, and
/// delivers every other request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_record_is_quarantined_and_rest_delivered() {
    let backend = Backend::start().await;
    backend.refuse(Some(tonic::Code::Unavailable));
    let storage = tempfile::tempdir().unwrap();
    let yaml = persistent_config(&backend, storage.path(), "      num_consumers: 1");
    let c = Collector::start(&yaml);
    let mut cl = client(c.grpc_url("otlp")).await;
    for i in 0..10 {
        cl.export(request(i * 4, 4)).await.unwrap();
    }
    drop(cl);
    let (dir, config) = c.sigkill();
    {
        let db = fjall::Database::builder(storage.path().join("fjall"))
            .open()
            .unwrap();
        let ks = db
            .keyspace(
                "exporter_otlp_disk_traces",
                fjall::KeyspaceCreateOptions::default,
            )
            .unwrap();
        assert_eq!(ks.iter().count(), 10);
        let key = 5u64.to_be_bytes();
        let mut v = ks.get(key).unwrap().unwrap().to_vec();
        let mid = v.len() / 2;
        v[mid] ^= 0xff;
        ks.insert(key, v).unwrap();
        db.persist(fjall::PersistMode::SyncAll).unwrap();
    }
    backend.refuse(None);
    let c = Collector::start_in(dir, config, false, &[]);
    let expected: Vec<u64> = (0..40).filter(|i| !(20..24).contains(i)).collect();
    let missing = wait_all(&backend, &expected, WAIT).await;
    assert!(missing.is_empty(), "missing {missing:?}");
    let got = arrivals(&backend);
    assert!(
        (20..24).all(|i| !got.contains_key(&i)),
        "the damaged request was sent"
    );
    let t = c.scrape().await;
    assert_eq!(
        series(
            &t,
            "wasmcol_exporter_queue_quarantined_records",
            "exporter=\"otlp/disk\",data_type=\"traces\""
        ),
        Some(1.0),
        "{t}"
    );
    assert!(
        c.log().iter().any(|l| l.contains("quarantine")),
        "no log line about the quarantine"
    );
}

/// Scenario: requests queued on disk while the backend refuses; the collector gets SIGTERM.
/// Guarantees: it exits cleanly within the shutdown deadline without deleting undelivered
/// records (upstream core#15677); after a restart with the backend up every span arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_keeps_undelivered_records() {
    let backend = Backend::start().await;
    backend.refuse(Some(tonic::Code::Unavailable));
    let storage = tempfile::tempdir().unwrap();
    let mut c = Collector::start(&persistent_config(
        &backend,
        storage.path(),
        "      num_consumers: 2",
    ));
    let mut cl = client(c.grpc_url("otlp")).await;
    let mut ids = Vec::new();
    for i in 0..50 {
        cl.export(request(i * 3, 3)).await.unwrap();
        ids.extend(i * 3..i * 3 + 3);
    }
    drop(cl);
    assert!(eventually(WAIT, || async { backend.refused() >= 5 }).await);
    c.sigterm();
    let status = c.wait_exit(Duration::from_secs(20));
    assert!(
        status.success(),
        "exit {status:?}; log:\n{}",
        c.log().join("\n")
    );
    assert!(backend.spans().is_empty());
    let (dir, config) = c.sigkill();
    backend.refuse(None);
    let _c = Collector::start_in(dir, config, false, &[]);
    let missing = wait_all(&backend, &ids, WAIT).await;
    assert!(
        missing.is_empty(),
        "{} spans lost across SIGTERM",
        missing.len()
    );
}
