//! Queue-side batching (`sending_queue.batch`, or a `batch` processor's settings adopted by
//! the queue): the merge rules for the memory and the persistent queue, in paused time.
// Test code: a failed expectation is reported by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use support::*;
use tokio::time::Instant;
use wasmcol_config::exporterhelper::{
    HelperConfig, QueueBatchConfig, QueueConfig, RetryConfig, Sizer,
};
use wasmcol_config::{GoDuration, Kind, Value};
use wasmcol_core::{Exporter, Extension, ExtensionFactory, Metrics};
use wasmcol_delivery::FileStorageFactory;

const FLUSH: Duration = Duration::from_millis(200);

fn batching(min_size: u64, max_size: u64, sizer: Option<Sizer>) -> QueueBatchConfig {
    QueueBatchConfig {
        flush_timeout: GoDuration::millis(200),
        min_size,
        max_size,
        sizer,
        partition: None,
    }
}

fn memory(batch: Option<QueueBatchConfig>) -> HelperConfig {
    HelperConfig {
        timeout: Some(GoDuration::secs(5)),
        retry: RetryConfig::default(),
        queue: QueueConfig {
            num_consumers: 1,
            batch,
            ..QueueConfig::default()
        },
    }
}

fn memory_exporter(sender: &Arc<FakeSender>, helper: HelperConfig) -> Arc<dyn Exporter> {
    exporter(
        "otlp/x",
        &Metrics::new(),
        Default::default(),
        sender.clone(),
        helper,
    )
}

/// Items and offsets from `t0` of every accepted export.
fn exports(sender: &FakeSender, t0: Instant) -> Vec<(usize, Duration)> {
    sender
        .accepted
        .lock()
        .iter()
        .map(|(n, t)| (*n, *t - t0))
        .collect()
}

/// Scenario: three requests of 5 spans queued at once; `min_size: 10`, `flush_timeout:
/// 200ms`, one consumer.
/// Guarantees: the first two leave merged (10 spans) at once, the third alone exactly one
/// flush timeout later; every span is delivered once.
#[tokio::test(start_paused = true)]
async fn memory_merges_to_min_size_then_flushes_on_timeout() {
    let sender = FakeSender::new(Mode::Accept);
    let exp = memory_exporter(&sender, memory(Some(batching(10, 0, None))));
    exp.start().await.unwrap();
    let t0 = Instant::now();
    for i in 0..3 {
        exp.consume(traces(i * 5, 5)).await.unwrap();
    }
    assert!(sender.wait_until(FLUSH * 10, |s| s.distinct() == 15).await);
    assert_eq!(exports(&sender, t0), vec![(10, Duration::ZERO), (5, FLUSH)]);
    assert_eq!(sender.duplicates(), 0);
    exp.shutdown().await.unwrap();
}

/// Scenario: `min_size: 10`, `max_size: 10`; three requests of 6 spans, then one of 25.
/// Guarantees: a request that would pass `max_size` is not merged (each 6 leaves on its
/// own, the first two at once because the group is full, the last after the flush
/// timeout); a single request larger than `max_size` is split into 10 + 10 + 5.
#[tokio::test(start_paused = true)]
async fn memory_max_size_bounds_merges_and_splits_large_requests() {
    let sender = FakeSender::new(Mode::Accept);
    let exp = memory_exporter(&sender, memory(Some(batching(10, 10, None))));
    exp.start().await.unwrap();
    let t0 = Instant::now();
    for i in 0..3 {
        exp.consume(traces(i * 6, 6)).await.unwrap();
    }
    assert!(sender.wait_until(FLUSH * 10, |s| s.distinct() == 18).await);
    assert_eq!(
        exports(&sender, t0),
        vec![(6, Duration::ZERO), (6, Duration::ZERO), (6, FLUSH)]
    );
    exp.consume(traces(100, 25)).await.unwrap();
    assert!(sender.wait_until(FLUSH * 10, |s| s.distinct() == 43).await);
    assert_eq!(sender.sizes()[3..], [10, 10, 5]);
    assert_eq!(sender.duplicates(), 0);
    exp.shutdown().await.unwrap();
}

/// Scenario: the bytes sizer, `min_size` twice one request's encoded size; three requests.
/// Guarantees: sizes count payload bytes: two requests merge, the third waits for the
/// flush timeout.
#[tokio::test(start_paused = true)]
async fn memory_bytes_sizer_counts_encoded_bytes() {
    let len = traces(0, 5).encoded_len() as u64;
    let sender = FakeSender::new(Mode::Accept);
    let exp = memory_exporter(
        &sender,
        memory(Some(batching(2 * len, 0, Some(Sizer::Bytes)))),
    );
    exp.start().await.unwrap();
    let t0 = Instant::now();
    for i in 0..3 {
        exp.consume(traces(i * 5, 5)).await.unwrap();
    }
    assert!(sender.wait_until(FLUSH * 10, |s| s.distinct() == 15).await);
    assert_eq!(exports(&sender, t0), vec![(10, Duration::ZERO), (5, FLUSH)]);
    exp.shutdown().await.unwrap();
}

/// Scenario: a merged export the backend refuses permanently; both callers wait for the
/// result (`wait_for_result`).
/// Guarantees: one attempt carries both requests, and both callers get its error.
#[tokio::test(start_paused = true)]
async fn memory_merged_failure_reaches_every_caller() {
    let sender = FakeSender::new(Mode::Permanent);
    let mut helper = memory(Some(batching(10, 0, None)));
    helper.queue.wait_for_result = true;
    let exp = memory_exporter(&sender, helper);
    exp.start().await.unwrap();
    let (a, b) = tokio::join!(exp.consume(traces(0, 5)), exp.consume(traces(5, 5)));
    assert!(!a.unwrap_err().is_retryable());
    assert!(!b.unwrap_err().is_retryable());
    assert_eq!(sender.attempts(), 1);
    exp.shutdown().await.unwrap();
}

/// Scenario: exporters offered a `batch` processor's settings (`adopt_batching`).
/// Guarantees: a queued exporter answers on enqueue and merges with the offered settings; an
/// exporter with its own `sending_queue.batch` keeps it; one without a queue does not answer
/// on enqueue.
#[tokio::test(start_paused = true)]
async fn adopted_settings_apply_unless_the_queue_has_its_own() {
    let offered = batching(10, 0, None);

    let sender = FakeSender::new(Mode::Accept);
    let exp = memory_exporter(&sender, memory(None));
    assert!(exp.answers_on_enqueue());
    exp.adopt_batching(&offered);
    exp.start().await.unwrap();
    let t0 = Instant::now();
    for i in 0..3 {
        exp.consume(traces(i * 5, 5)).await.unwrap();
    }
    assert!(sender.wait_until(FLUSH * 10, |s| s.distinct() == 15).await);
    assert_eq!(exports(&sender, t0), vec![(10, Duration::ZERO), (5, FLUSH)]);
    exp.shutdown().await.unwrap();

    let sender = FakeSender::new(Mode::Accept);
    let exp = memory_exporter(&sender, memory(Some(batching(100, 0, None))));
    exp.adopt_batching(&offered);
    exp.start().await.unwrap();
    let t0 = Instant::now();
    for i in 0..3 {
        exp.consume(traces(i * 5, 5)).await.unwrap();
    }
    assert!(sender.wait_until(FLUSH * 10, |s| s.distinct() == 15).await);
    assert_eq!(exports(&sender, t0), vec![(15, FLUSH)]);
    exp.shutdown().await.unwrap();

    let mut sync = memory(None);
    sync.queue.enabled = false;
    assert!(!memory_exporter(&FakeSender::new(Mode::Accept), sync).answers_on_enqueue());
    let mut waiting = memory(None);
    waiting.queue.wait_for_result = true;
    assert!(!memory_exporter(&FakeSender::new(Mode::Accept), waiting).answers_on_enqueue());
}

struct Disk {
    storage: Arc<dyn Extension>,
    exporter: Arc<dyn Exporter>,
}

async fn start_disk(dir: &Path, sender: Arc<FakeSender>, batch: Option<QueueBatchConfig>) -> Disk {
    let metrics = Metrics::new();
    let sctx = ctx(
        Kind::Extension,
        "file_storage/q",
        &metrics,
        Default::default(),
    );
    let body: Value = serde_yaml::from_str(&format!("directory: {}", dir.display())).unwrap();
    let storage = FileStorageFactory
        .create(&sctx, &body)
        .map_err(|e| e.to_string())
        .unwrap();
    storage.start().await.unwrap();
    let helper = HelperConfig {
        timeout: Some(GoDuration::secs(5)),
        retry: RetryConfig {
            initial_interval: GoDuration::millis(50),
            max_interval: GoDuration::millis(200),
            max_elapsed_time: GoDuration::secs(0),
            ..RetryConfig::default()
        },
        queue: QueueConfig {
            num_consumers: 1,
            storage: Some("file_storage/q".parse().unwrap()),
            batch,
            ..QueueConfig::default()
        },
    };
    let exts = extensions(vec![("file_storage/q", storage.clone())]);
    let exporter = exporter("otlp/disk", &metrics, exts, sender, helper);
    exporter.start().await.unwrap();
    Disk { storage, exporter }
}

impl Disk {
    async fn stop(self) {
        self.exporter.shutdown().await.unwrap();
        self.storage.shutdown().await.unwrap();
    }
}

fn records_on_disk(dir: &Path) -> usize {
    let db = fjall::Database::builder(dir.join("fjall")).open().unwrap();
    let ks = db
        .keyspace(
            "exporter_otlp_disk_traces",
            fjall::KeyspaceCreateOptions::default,
        )
        .unwrap();
    ks.iter().count()
}

/// Waits for `pred`, bounded in real time. The storage writer runs as a blocking task, which
/// keeps the paused clock from advancing by itself, so persistent-queue tests advance it by
/// hand and cannot bound their waits with timers.
async fn settle(sender: &FakeSender, pred: impl Fn(&FakeSender) -> bool) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let notified = sender.progress.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if pred(sender) {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        let tick = tokio::task::spawn_blocking(|| std::thread::sleep(Duration::from_millis(20)));
        tokio::select! {
            _ = notified => {}
            _ = tick => {}
        }
    }
}

/// Scenario: five requests of 4 spans wait on disk (written while the backend hung). The
/// collector restarts with `min_size: 10` and a refusing backend, stops, and starts again
/// with the backend up.
/// Guarantees: the refused merged export deleted nothing (every span still arrives later);
/// once the backend accepts, three records leave merged at once (12 spans) and the other two
/// (8 spans) exactly at the flush timeout, not a millisecond before; every span once, and
/// every record is deleted.
#[tokio::test(start_paused = true)]
async fn persistent_merges_and_deletes_only_after_acceptance() {
    let dir = tempfile::tempdir().unwrap();
    let d = start_disk(dir.path(), FakeSender::new(Mode::Hang), None).await;
    for i in 0..5 {
        d.exporter.consume(traces(i * 4, 4)).await.unwrap();
    }
    d.stop().await;

    let refusing = FakeSender::new(Mode::Refuse(None));
    let d = start_disk(dir.path(), refusing.clone(), Some(batching(10, 0, None))).await;
    assert!(settle(&refusing, |s| s.attempts() >= 1).await);
    d.stop().await;

    let accepting = FakeSender::new(Mode::Accept);
    let d = start_disk(dir.path(), accepting.clone(), Some(batching(10, 0, None))).await;
    assert!(settle(&accepting, |s| s.distinct() == 12).await);
    tokio::time::advance(FLUSH - Duration::from_millis(1)).await;
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    assert_eq!(
        accepting.sizes(),
        [12],
        "the last two wait for the flush timeout"
    );
    tokio::time::advance(Duration::from_millis(1)).await;
    assert!(settle(&accepting, |s| s.distinct() == 20).await);
    assert_eq!(accepting.sizes(), [12, 8]);
    assert_eq!(accepting.duplicates(), 0);
    d.stop().await;
    assert_eq!(records_on_disk(dir.path()), 0);
}

/// Scenario: three requests of 6 spans on disk; `min_size: 10`, `max_size: 10`, then a
/// 25-span request.
/// Guarantees: the persistent queue applies `max_size` like the memory queue: no merge past
/// it, and a larger single record is split into 10 + 10 + 5 and deleted once all parts were
/// accepted.
#[tokio::test(start_paused = true)]
async fn persistent_max_size_bounds_merges_and_splits() {
    let dir = tempfile::tempdir().unwrap();
    let d = start_disk(dir.path(), FakeSender::new(Mode::Hang), None).await;
    for i in 0..3 {
        d.exporter.consume(traces(i * 6, 6)).await.unwrap();
    }
    d.exporter.consume(traces(100, 25)).await.unwrap();
    d.stop().await;

    let accepting = FakeSender::new(Mode::Accept);
    let d = start_disk(dir.path(), accepting.clone(), Some(batching(10, 10, None))).await;
    assert!(settle(&accepting, |s| s.distinct() == 43).await);
    assert_eq!(accepting.sizes(), [6, 6, 6, 10, 10, 5]);
    d.stop().await;
    assert_eq!(records_on_disk(dir.path()), 0);
}
