//! The persistent queue on a real fjall database in a temp dir.
// Test code: a failed expectation is reported by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use support::*;
use wasmcol_config::exporterhelper::{HelperConfig, QueueConfig, RetryConfig};
use wasmcol_config::{GoDuration, Kind, Value};
use wasmcol_core::{ConsumeError, Exporter, Extension, ExtensionFactory, Metrics};
use wasmcol_delivery::FileStorageFactory;

const QUEUE: &str = "exporter_otlp_disk_traces";

struct Collector {
    storage: Arc<dyn Extension>,
    exporter: Arc<dyn Exporter>,
    metrics: Metrics,
}

fn storage_config(dir: &Path, extra: &str) -> Value {
    serde_yaml::from_str(&format!("directory: {}\n{extra}", dir.display())).unwrap()
}

fn persistent_helper(q: QueueConfig) -> HelperConfig {
    HelperConfig {
        timeout: Some(GoDuration::secs(5)),
        retry: RetryConfig {
            initial_interval: GoDuration::millis(50),
            max_interval: GoDuration::millis(200),
            max_elapsed_time: GoDuration::secs(0),
            ..RetryConfig::default()
        },
        queue: QueueConfig {
            storage: Some("file_storage/q".parse().unwrap()),
            ..q
        },
    }
}

async fn start(
    dir: &Path,
    storage_extra: &str,
    sender: Arc<FakeSender>,
    q: QueueConfig,
) -> Collector {
    let metrics = Metrics::new();
    let sctx = ctx(
        Kind::Extension,
        "file_storage/q",
        &metrics,
        Default::default(),
    );
    let storage = FileStorageFactory
        .create(&sctx, &storage_config(dir, storage_extra))
        .map_err(|e| e.to_string())
        .unwrap();
    storage.start().await.unwrap();
    let exts = extensions(vec![("file_storage/q", storage.clone())]);
    let exporter = exporter("otlp/disk", &metrics, exts, sender, persistent_helper(q));
    exporter.start().await.unwrap();
    Collector {
        storage,
        exporter,
        metrics,
    }
}

impl Collector {
    async fn stop(self) -> Metrics {
        self.exporter.shutdown().await.unwrap();
        self.storage.shutdown().await.unwrap();
        self.metrics
    }

    fn queue_size(&self) -> String {
        let text = self.metrics.render();
        text.lines()
            .find(|l| l.starts_with("otelcol_exporter_queue_size{"))
            .unwrap_or("")
            .rsplit(' ')
            .next()
            .unwrap_or("")
            .to_owned()
    }
}

/// Reads every key of a queue keyspace (after the collector released the database).
fn keys_on_disk(dir: &Path, keyspace: &str) -> Vec<Vec<u8>> {
    let (_db, ks) = open_keyspace(dir, keyspace);
    ks.iter().map(|g| g.key().unwrap().to_vec()).collect()
}

/// Opens a queue keyspace behind the collector's back (after it released the database).
fn open_keyspace(dir: &Path, keyspace: &str) -> (fjall::Database, fjall::Keyspace) {
    let db = fjall::Database::builder(dir.join("fjall")).open().unwrap();
    let ks = db
        .keyspace(keyspace, fjall::KeyspaceCreateOptions::default)
        .unwrap();
    (db, ks)
}

/// Scenario: 20 requests accepted while the backend refuses; the collector stops; it starts
/// again with the backend up.
/// Guarantees: every request was acknowledged, kept on disk (nothing deleted on shutdown,
/// core#15677), and delivered after the restart; the queue drains to zero and the records
/// are deleted once acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_requests_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let refusing = FakeSender::new(Mode::Refuse(None));
    let c = start(dir.path(), "", refusing.clone(), QueueConfig::default()).await;
    for i in 0..20 {
        c.exporter.consume(traces(i * 5, 5)).await.unwrap();
    }
    assert!(
        refusing
            .wait_until(Duration::from_secs(10), |s| s.attempts() >= 3)
            .await
    );
    assert_eq!(c.queue_size(), "20");
    c.stop().await;
    assert_eq!(keys_on_disk(dir.path(), QUEUE).len(), 20);

    let backend = FakeSender::new(Mode::Accept);
    let c = start(dir.path(), "", backend.clone(), QueueConfig::default()).await;
    assert!(
        backend
            .wait_until(Duration::from_secs(20), |s| s.distinct() == 100)
            .await,
        "{}",
        backend.distinct()
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while c.queue_size() != "0" && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(c.queue_size(), "0");
    let m = c.stop().await;
    assert_eq!(
        counter(
            &m,
            "otelcol_exporter_sent_spans",
            &[("exporter", "otlp/disk")]
        ),
        100
    );
    assert!(
        keys_on_disk(dir.path(), QUEUE).is_empty(),
        "acknowledged records must be deleted"
    );
}

/// Scenario: the backend hangs, so requests are in flight when the collector stops.
/// Guarantees: in-flight records stay on disk and are sent after the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_requests_are_kept_on_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let hanging = FakeSender::new(Mode::Hang);
    let c = start(dir.path(), "", hanging.clone(), QueueConfig::default()).await;
    for i in 0..3 {
        c.exporter.consume(traces(i * 10, 10)).await.unwrap();
    }
    assert!(
        hanging
            .wait_until(Duration::from_secs(10), |s| s.attempts() == 3)
            .await
    );
    c.stop().await;
    let backend = FakeSender::new(Mode::Accept);
    let c = start(dir.path(), "", backend.clone(), QueueConfig::default()).await;
    assert!(
        backend
            .wait_until(Duration::from_secs(20), |s| s.distinct() == 30)
            .await
    );
    c.stop().await;
}

/// Scenario: a queue directory where one record's bytes were damaged and one key is not a
/// sequence number.
/// Guarantees: the collector starts, moves both to the quarantine keyspace, counts them in
/// `wasmcol_exporter_queue_quarantined_records`, and delivers every other request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_records_are_quarantined() {
    let dir = tempfile::tempdir().unwrap();
    let refusing = FakeSender::new(Mode::Refuse(None));
    let c = start(dir.path(), "", refusing, QueueConfig::default()).await;
    for i in 0..10 {
        c.exporter.consume(traces(i * 2, 2)).await.unwrap();
    }
    c.stop().await;
    {
        let (db, ks) = open_keyspace(dir.path(), QUEUE);
        // Flip one payload byte of the fourth record (seq 3): its checksum no longer matches.
        let key = 3u64.to_be_bytes();
        let mut v = ks.get(key).unwrap().unwrap().to_vec();
        let last = v.len() - 1;
        v[last] ^= 0x5a;
        ks.insert(key, v).unwrap();
        ks.insert(b"junk".as_slice(), b"not a record".as_slice())
            .unwrap();
        db.persist(fjall::PersistMode::SyncAll).unwrap();
    }
    let backend = FakeSender::new(Mode::Accept);
    let c = start(dir.path(), "", backend.clone(), QueueConfig::default()).await;
    assert!(
        backend
            .wait_until(Duration::from_secs(20), |s| s.distinct() == 18)
            .await,
        "{}",
        backend.distinct()
    );
    let quarantined = counter(
        &c.metrics,
        "wasmcol_exporter_queue_quarantined_records",
        &[("exporter", "otlp/disk"), ("data_type", "traces")],
    );
    assert_eq!(quarantined, 2);
    let received = backend.received.lock().clone();
    assert!(
        !received.contains_key(&6) && !received.contains_key(&7),
        "the damaged request must not be sent"
    );
    c.stop().await;
    assert_eq!(
        keys_on_disk(dir.path(), &format!("{QUEUE}.quarantine")).len(),
        2
    );
    assert!(keys_on_disk(dir.path(), QUEUE).is_empty());
}

/// Scenario: a queue directory holding records of both formats: version 1 (payload as
/// received, written by wasmcol before records were compressed) and version 2 (zstd), then
/// requests enqueued by this build.
/// Guarantees: every record replays; what this build writes is version 2 and smaller than
/// its payload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_of_both_formats_replay() {
    use wasmcol_delivery::record;
    let dir = tempfile::tempdir().unwrap();
    // Create the keyspace the way the collector does, then write records behind its back.
    let c = start(
        dir.path(),
        "",
        FakeSender::new(Mode::Refuse(None)),
        QueueConfig::default(),
    )
    .await;
    c.stop().await;
    {
        let (db, ks) = open_keyspace(dir.path(), QUEUE);
        for i in 0..4u64 {
            let batch = traces(i * 50, 50);
            let value = if i % 2 == 0 {
                record::encode_raw(&batch)
            } else {
                record::encode(&batch)
            };
            assert_eq!(value[2], if i % 2 == 0 { 1 } else { 2 });
            ks.insert(i.to_be_bytes(), value).unwrap();
        }
        db.persist(fjall::PersistMode::SyncAll).unwrap();
    }
    let refusing = FakeSender::new(Mode::Refuse(None));
    let c = start(dir.path(), "", refusing, QueueConfig::default()).await;
    c.exporter.consume(traces(200, 50)).await.unwrap();
    c.stop().await;
    {
        let (_db, ks) = open_keyspace(dir.path(), QUEUE);
        let v = ks.get(4u64.to_be_bytes()).unwrap().unwrap();
        assert_eq!(v[2], record::VERSION_ZSTD, "this build writes version 2");
        assert!(
            v.len() < traces(200, 50).encoded_len() / 2,
            "a record of {} bytes for a payload of {}",
            v.len(),
            traces(200, 50).encoded_len()
        );
    }
    let backend = FakeSender::new(Mode::Accept);
    let c = start(dir.path(), "", backend.clone(), QueueConfig::default()).await;
    assert!(
        backend
            .wait_until(Duration::from_secs(20), |s| s.distinct() == 250)
            .await,
        "{}",
        backend.distinct()
    );
    c.stop().await;
    assert!(keys_on_disk(dir.path(), QUEUE).is_empty());
}

/// Scenario: a persistent queue of 3 requests with a hanging backend, then a storage cap.
/// Guarantees: the 4th request is refused with a retryable error and a retry hint, counted
/// in `otelcol_exporter_enqueue_failed_spans`; a storage over its byte cap refuses the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_persistent_queue_refuses_with_hint() {
    let dir = tempfile::tempdir().unwrap();
    let hanging = FakeSender::new(Mode::Hang);
    let c = start(
        dir.path(),
        "",
        hanging,
        QueueConfig {
            queue_size: 3,
            num_consumers: 1,
            ..QueueConfig::default()
        },
    )
    .await;
    for i in 0..3 {
        c.exporter.consume(traces(i, 1)).await.unwrap();
    }
    let err = c.exporter.consume(traces(10, 4)).await.unwrap_err();
    assert!(
        matches!(
            &err,
            ConsumeError::Retryable {
                retry_after: Some(_),
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        counter(
            &c.metrics,
            "otelcol_exporter_enqueue_failed_spans",
            &[("exporter", "otlp/disk")]
        ),
        4
    );
    c.stop().await;

    let dir = tempfile::tempdir().unwrap();
    let c = start(
        dir.path(),
        "max_size: 600\n",
        FakeSender::new(Mode::Hang),
        QueueConfig::default(),
    )
    .await;
    let mut refused = None;
    for i in 0..20 {
        if let Err(e) = c.exporter.consume(traces(i * 5, 5)).await {
            refused = Some((i, e));
            break;
        }
    }
    let (at, err) = refused.expect("the byte cap never refused");
    assert!(
        at > 0 && err.is_retryable() && err.retry_delay().is_some(),
        "{at} {err:?}"
    );
    c.stop().await;
}

/// Scenario: `drop_oldest` on a full persistent queue with a refusing backend.
/// Guarantees: new requests are accepted, the oldest waiting ones are evicted from disk and
/// counted in `wasmcol_exporter_queue_dropped_spans`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_oldest_evicts_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let hanging = FakeSender::new(Mode::Hang);
    let c = start(
        dir.path(),
        "",
        hanging.clone(),
        QueueConfig {
            queue_size: 3,
            num_consumers: 1,
            drop_oldest: true,
            ..QueueConfig::default()
        },
    )
    .await;
    c.exporter.consume(traces(0, 1)).await.unwrap();
    assert!(
        hanging
            .wait_until(Duration::from_secs(10), |s| s.attempts() == 1)
            .await
    );
    for i in 1..6 {
        c.exporter.consume(traces(i, 1)).await.unwrap();
    }
    assert_eq!(
        counter(
            &c.metrics,
            "wasmcol_exporter_queue_dropped_spans",
            &[("exporter", "otlp/disk")]
        ),
        3
    );
    c.stop().await;
    // In flight (seq 0) plus the two newest remain.
    let keys: Vec<u64> = keys_on_disk(dir.path(), QUEUE)
        .iter()
        .map(|k| u64::from_be_bytes(k.as_slice().try_into().unwrap()))
        .collect();
    assert_eq!(keys, vec![0, 4, 5]);
}

/// Scenario: 200 concurrent enqueues with `fsync: true`.
/// Guarantees: all are acknowledged only after durable writes, and they share fsyncs (group
/// commit): fewer fsyncs than requests; all 200 are on disk after the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_shares_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    let c = start(
        dir.path(),
        "fsync: true\n",
        FakeSender::new(Mode::Hang),
        QueueConfig {
            queue_size: 1000,
            num_consumers: 1,
            ..QueueConfig::default()
        },
    )
    .await;
    let mut joins = Vec::new();
    for i in 0..200u64 {
        let e = c.exporter.clone();
        joins.push(tokio::spawn(async move { e.consume(traces(i, 1)).await }));
    }
    for j in joins {
        j.await.unwrap().unwrap();
    }
    let fsyncs = counter(
        &c.metrics,
        "wasmcol_file_storage_fsyncs",
        &[("extension", "file_storage/q")],
    );
    assert!((1..200).contains(&fsyncs), "fsyncs = {fsyncs}");
    c.stop().await;
    assert_eq!(keys_on_disk(dir.path(), QUEUE).len(), 200);
}

/// Scenario: the fjall database files themselves are damaged (every file overwritten with
/// garbage) while the collector is down.
/// Guarantees: the storage starts anyway — the damaged database is moved aside (kept for
/// inspection) and counted in `wasmcol_file_storage_recovered_corrupt` — instead of failing
/// every start (a crash loop).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_database_is_moved_aside() {
    let dir = tempfile::tempdir().unwrap();
    let c = start(
        dir.path(),
        "",
        FakeSender::new(Mode::Refuse(None)),
        QueueConfig::default(),
    )
    .await;
    for i in 0..5 {
        c.exporter.consume(traces(i, 1)).await.unwrap();
    }
    c.stop().await;
    fn scramble(p: &Path) {
        for e in std::fs::read_dir(p).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                scramble(&e.path());
            } else if !e.file_name().to_string_lossy().contains("lock") {
                std::fs::write(e.path(), b"\x00garbage\xffgarbage").unwrap();
            }
        }
    }
    scramble(&dir.path().join("fjall"));
    let backend = FakeSender::new(Mode::Accept);
    let c = start(dir.path(), "", backend.clone(), QueueConfig::default()).await;
    assert_eq!(
        counter(
            &c.metrics,
            "wasmcol_file_storage_recovered_corrupt",
            &[("extension", "file_storage/q")]
        ),
        1
    );
    c.exporter.consume(traces(100, 1)).await.unwrap();
    assert!(
        backend
            .wait_until(Duration::from_secs(10), |s| s.distinct() == 1)
            .await
    );
    c.stop().await;
    let aside = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("fjall.corrupt-")
        })
        .count();
    assert_eq!(aside, 1);
}

/// Scenario: `block_on_overflow` on a persistent queue of one request; the backend refuses
/// at first and accepts later.
/// Guarantees: the second caller waits for room instead of being refused, and both requests
/// arrive; nothing is counted as `enqueue_failed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_on_overflow_waits_for_room_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let backend = FakeSender::new(Mode::Refuse(None));
    let c = start(
        dir.path(),
        "",
        backend.clone(),
        QueueConfig {
            queue_size: 1,
            num_consumers: 1,
            block_on_overflow: true,
            ..QueueConfig::default()
        },
    )
    .await;
    c.exporter.consume(traces(0, 1)).await.unwrap();
    let e = c.exporter.clone();
    let second = tokio::spawn(async move { e.consume(traces(1, 1)).await });
    assert!(
        backend
            .wait_until(Duration::from_secs(10), |s| s.attempts() >= 3)
            .await
    );
    assert!(
        !second.is_finished(),
        "the second request should wait for room"
    );
    backend.set(Mode::Accept);
    second.await.unwrap().unwrap();
    assert!(
        backend
            .wait_until(Duration::from_secs(10), |s| s.distinct() == 2)
            .await
    );
    assert_eq!(
        counter(
            &c.metrics,
            "otelcol_exporter_enqueue_failed_spans",
            &[("exporter", "otlp/disk")]
        ),
        0
    );
    c.stop().await;
}
