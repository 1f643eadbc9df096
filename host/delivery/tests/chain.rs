//! The exporter chain: retry timing (paused time), per-attempt timeout, memory queue.
// Test code: a failed expectation is reported by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use support::*;
use tokio::time::Instant;
use wasmcol_config::GoDuration;
use wasmcol_config::exporterhelper::{HelperConfig, QueueConfig, RetryConfig, Sizer};
use wasmcol_core::{ConsumeError, Metrics, PermanentError};

fn sync_helper(retry: RetryConfig) -> HelperConfig {
    HelperConfig {
        timeout: Some(GoDuration::secs(5)),
        retry,
        queue: QueueConfig {
            enabled: false,
            ..QueueConfig::default()
        },
    }
}

fn waits(attempts: &[Instant]) -> Vec<Duration> {
    attempts.windows(2).map(|w| w[1] - w[0]).collect()
}

/// Scenario: the backend refuses forever; default `retry_on_failure`.
/// Guarantees: first wait 2.5–7.5 s, each later wait within ±50 % of an interval growing
/// ×1.5 capped at 30 s; gives up once the next wait would pass 5 min ("no more retries
/// left"); send_failed counted once for the request, sent not at all.
#[tokio::test(start_paused = true)]
async fn default_retry_schedule() {
    let metrics = Metrics::new();
    let sender = FakeSender::new(Mode::Refuse(None));
    let exp = exporter(
        "otlp/x",
        &metrics,
        Default::default(),
        sender.clone(),
        sync_helper(RetryConfig::default()),
    );
    let started = Instant::now();
    let err = exp.consume(traces(0, 3)).await.unwrap_err();
    let total = started.elapsed();
    assert!(err.to_string().starts_with("no more retries left"), "{err}");
    assert!(err.is_retryable());
    let attempts = sender.attempts.lock().clone();
    let w = waits(&attempts);
    assert!(w.len() >= 8, "too few retries: {}", w.len());
    let first = w[0].as_secs_f64();
    assert!((2.5..=7.5).contains(&first), "first wait {first}");
    let mut interval = 5.0f64;
    for (i, wait) in w.iter().enumerate() {
        let s = wait.as_secs_f64();
        assert!(
            s >= interval * 0.5 - 1e-3 && s <= interval * 1.5 + 1e-3,
            "wait {i} = {s}, interval {interval}"
        );
        interval = if interval >= 20.0 {
            30.0
        } else {
            interval * 1.5
        };
    }
    assert!(
        total <= Duration::from_secs(300),
        "retried past 5 min: {total:?}"
    );
    // The last attempt was close enough to the limit that one more wait (≥ 15 s at the cap)
    // would have passed it.
    assert!(
        total >= Duration::from_secs(300 - 45),
        "gave up early: {total:?}"
    );
    assert_eq!(
        counter(
            &metrics,
            "otelcol_exporter_send_failed_spans",
            &[("exporter", "otlp/x")]
        ),
        3
    );
    assert_eq!(
        counter(
            &metrics,
            "otelcol_exporter_sent_spans",
            &[("exporter", "otlp/x")]
        ),
        0
    );
    let h = exp.health().unwrap();
    assert_eq!(h.consecutive_failures(), attempts.len() as u64);
}

/// Scenario: `max_elapsed_time: 0`; the backend refuses for two hours, then accepts.
/// Guarantees: retries go on past 5 min and the request is delivered, counted once as sent.
#[tokio::test(start_paused = true)]
async fn max_elapsed_zero_retries_forever() {
    let metrics = Metrics::new();
    let sender = FakeSender::new(Mode::Refuse(None));
    let exp = exporter(
        "otlp/x",
        &metrics,
        Default::default(),
        sender.clone(),
        sync_helper(RetryConfig {
            max_elapsed_time: GoDuration::secs(0),
            ..RetryConfig::default()
        }),
    );
    let s2 = sender.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(7200)).await;
        s2.set(Mode::Accept);
    });
    let started = Instant::now();
    exp.consume(traces(0, 2)).await.unwrap();
    assert!(started.elapsed() >= Duration::from_secs(7200));
    assert!(sender.attempts() > 200, "{}", sender.attempts());
    assert_eq!(sender.distinct(), 2);
    assert_eq!(
        counter(
            &metrics,
            "otelcol_exporter_sent_spans",
            &[("exporter", "otlp/x")]
        ),
        2
    );
    assert_eq!(
        counter(
            &metrics,
            "otelcol_exporter_send_failed_spans",
            &[("exporter", "otlp/x")]
        ),
        0
    );
}

/// Scenario: the backend answers with a permanent error.
/// Guarantees: exactly one attempt, "not retryable error", counted as failed.
#[tokio::test(start_paused = true)]
async fn permanent_errors_are_not_retried() {
    let metrics = Metrics::new();
    let sender = FakeSender::new(Mode::Permanent);
    let exp = exporter(
        "otlp/x",
        &metrics,
        Default::default(),
        sender.clone(),
        sync_helper(RetryConfig::default()),
    );
    let err = exp.consume(traces(0, 4)).await.unwrap_err();
    assert_eq!(
        err,
        ConsumeError::Permanent(
            PermanentError::Other("bad request".into()).context("not retryable error")
        )
    );
    assert_eq!(sender.attempts(), 1);
    assert_eq!(
        counter(
            &metrics,
            "otelcol_exporter_send_failed_spans",
            &[("exporter", "otlp/x")]
        ),
        4
    );
}

/// Scenario: the backend throttles with a 60 s hint, then accepts.
/// Guarantees: the wait is max(backoff, hint) = at least 60 s.
#[tokio::test(start_paused = true)]
async fn throttle_hint_is_honoured() {
    let metrics = Metrics::new();
    let sender = FakeSender::new(Mode::Refuse(Some(Duration::from_secs(60))));
    let exp = exporter(
        "otlp/x",
        &metrics,
        Default::default(),
        sender.clone(),
        sync_helper(RetryConfig::default()),
    );
    let s2 = sender.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        s2.set(Mode::Accept);
    });
    exp.consume(traces(0, 1)).await.unwrap();
    let w = waits(&sender.attempts.lock());
    assert_eq!(w.len(), 1);
    assert!(
        w[0] >= Duration::from_secs(60) && w[0] < Duration::from_secs(61),
        "{:?}",
        w[0]
    );
}

/// Scenario: a queue with one worker; the backend answers with the largest hint a
/// `Retry-After` can carry, then recovers. Default `retry_on_failure`.
/// Guarantees: the hint is cut to `MAX_RETRY_HINT` (5 min); the worker survives (it used to
/// panic on `elapsed + hint`) and delivers the next request.
#[tokio::test(start_paused = true)]
async fn huge_hint_does_not_kill_the_queue_worker() {
    let metrics = Metrics::new();
    let sender = FakeSender::new(Mode::Refuse(Some(Duration::MAX)));
    let exp = exporter(
        "otlp/x",
        &metrics,
        Default::default(),
        sender.clone(),
        queue_helper(QueueConfig {
            num_consumers: 1,
            ..QueueConfig::default()
        }),
    );
    exp.start().await.unwrap();
    exp.consume(traces(0, 3)).await.unwrap();
    assert!(
        sender
            .wait_until(Duration::from_secs(5), |s| s.attempts() == 1)
            .await
    );
    sender.set(Mode::Accept);
    exp.consume(traces(3, 2)).await.unwrap();
    // The worker is alive: within one capped hint (5 min) both requests' spans arrive, or
    // the first was given up and the second arrives.
    assert!(
        sender
            .wait_until(Duration::from_secs(600), |s| s
                .received
                .lock()
                .contains_key(&3))
            .await,
        "the queue worker died on the hint"
    );
}

/// Scenario: `max_elapsed_time: 0` (retry forever); the backend answers with a huge hint,
/// then recovers.
/// Guarantees: the worker waits `MAX_RETRY_HINT` (5 min), not the hint, and delivers.
#[tokio::test(start_paused = true)]
async fn huge_hint_is_capped_when_retrying_forever() {
    let metrics = Metrics::new();
    let sender = FakeSender::new(Mode::Refuse(Some(Duration::MAX)));
    let exp = exporter(
        "otlp/x",
        &metrics,
        Default::default(),
        sender.clone(),
        sync_helper(RetryConfig {
            max_elapsed_time: GoDuration::secs(0),
            ..RetryConfig::default()
        }),
    );
    let s2 = sender.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        s2.set(Mode::Accept);
    });
    exp.consume(traces(0, 1)).await.unwrap();
    let w = waits(&sender.attempts.lock());
    assert_eq!(w, vec![wasmcol_core::MAX_RETRY_HINT]);
}

/// Scenario: a hint shorter than the backoff.
/// Guarantees: the backoff wins (2.5–7.5 s).
#[tokio::test(start_paused = true)]
async fn short_hint_does_not_shorten_backoff() {
    let metrics = Metrics::new();
    let sender = FakeSender::new(Mode::Refuse(Some(Duration::from_millis(10))));
    let exp = exporter(
        "otlp/x",
        &metrics,
        Default::default(),
        sender.clone(),
        sync_helper(RetryConfig::default()),
    );
    let s2 = sender.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        s2.set(Mode::Accept);
    });
    exp.consume(traces(0, 1)).await.unwrap();
    let w = waits(&sender.attempts.lock());
    assert!(
        w[0] >= Duration::from_millis(2500) && w[0] <= Duration::from_millis(7500),
        "{:?}",
        w[0]
    );
}

/// Scenario: the backend hangs; `timeout: 1s`; retry limited to 10 s.
/// Guarantees: each attempt is cut at 1 s and retried; the request fails in about 10 s.
#[tokio::test(start_paused = true)]
async fn timeout_bounds_each_attempt() {
    let metrics = Metrics::new();
    let sender = FakeSender::new(Mode::Hang);
    let mut h = sync_helper(RetryConfig {
        initial_interval: GoDuration::secs(1),
        max_interval: GoDuration::secs(1),
        max_elapsed_time: GoDuration::secs(10),
        randomization_factor: 0.0,
        ..RetryConfig::default()
    });
    h.timeout = Some(GoDuration::secs(1));
    let exp = exporter("otlp/x", &metrics, Default::default(), sender.clone(), h);
    let started = Instant::now();
    let err = exp.consume(traces(0, 1)).await.unwrap_err();
    assert!(err.to_string().contains("timed out"), "{err}");
    let attempts = sender.attempts.lock().clone();
    // attempt (1 s) + wait (1 s) per round.
    for w in waits(&attempts) {
        assert_eq!(w, Duration::from_secs(2));
    }
    assert!(started.elapsed() <= Duration::from_secs(11));
    assert!(attempts.len() >= 4);
}

fn queue_helper(q: QueueConfig) -> HelperConfig {
    HelperConfig {
        timeout: Some(GoDuration::secs(5)),
        retry: RetryConfig::default(),
        queue: q,
    }
}

/// Scenario: a memory queue of 2 requests, 1 consumer, the backend hangs.
/// Guarantees: the third request is refused with a retryable error carrying a retry hint,
/// counted in `otelcol_exporter_enqueue_failed_spans`; the queue gauges report 2 of 2 and
/// the health reports the fill.
#[tokio::test(start_paused = true)]
async fn full_memory_queue_refuses_with_hint() {
    let metrics = Metrics::new();
    let sender = FakeSender::new(Mode::Hang);
    let exp = exporter(
        "otlp/x",
        &metrics,
        Default::default(),
        sender.clone(),
        queue_helper(QueueConfig {
            num_consumers: 1,
            queue_size: 2,
            ..QueueConfig::default()
        }),
    );
    exp.start().await.unwrap();
    exp.consume(traces(0, 5)).await.unwrap();
    exp.consume(traces(5, 5)).await.unwrap();
    let err = exp.consume(traces(10, 7)).await.unwrap_err();
    assert!(err.is_retryable());
    assert!(err.retry_delay().is_some(), "no retry hint: {err:?}");
    assert_eq!(err.to_string(), "sending queue is full");
    assert_eq!(
        counter(
            &metrics,
            "otelcol_exporter_enqueue_failed_spans",
            &[("exporter", "otlp/x")]
        ),
        7
    );
    let labels = "exporter=\"otlp/x\",data_type=\"traces\"";
    assert_eq!(
        series(&metrics, "otelcol_exporter_queue_size", labels),
        Some(2.0)
    );
    assert_eq!(
        series(&metrics, "otelcol_exporter_queue_capacity", labels),
        Some(2.0)
    );
    // The default byte bound is reported beside it, and named in its help text.
    assert_eq!(
        series(&metrics, "wasmcol_exporter_queue_capacity_bytes", labels),
        Some(wasmcol_delivery::chain::MEMORY_QUEUE_MAX_BYTES as f64)
    );
    let text = metrics.render();
    let mib = format!(
        "{} MiB",
        wasmcol_delivery::chain::MEMORY_QUEUE_MAX_BYTES >> 20
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("# HELP otelcol_exporter_queue_capacity ") && l.contains(&mib)),
        "the capacity's help text does not name the byte bound {mib}"
    );
    assert!(exp.health().unwrap().queue_fill() >= 1.0);
}

/// Scenario: a memory queue sized in items.
/// Guarantees: capacity counts spans; a request larger than the whole queue is permanent.
#[tokio::test(start_paused = true)]
async fn items_sizer_and_oversized_request() {
    let metrics = Metrics::new();
    let sender = FakeSender::new(Mode::Hang);
    let exp = exporter(
        "otlp/x",
        &metrics,
        Default::default(),
        sender,
        queue_helper(QueueConfig {
            num_consumers: 1,
            queue_size: 10,
            sizer: Sizer::Items,
            ..QueueConfig::default()
        }),
    );
    exp.start().await.unwrap();
    exp.consume(traces(0, 6)).await.unwrap();
    exp.consume(traces(6, 4)).await.unwrap();
    assert!(exp.consume(traces(10, 1)).await.unwrap_err().is_retryable());
    let err = exp.consume(traces(20, 11)).await.unwrap_err();
    assert!(!err.is_retryable(), "{err}");
}

/// Scenario: `block_on_overflow`; the backend accepts after a while.
/// Guarantees: the caller waits for room instead of failing, and everything arrives.
#[tokio::test(start_paused = true)]
async fn block_on_overflow_waits_for_room() {
    let metrics = Metrics::new();
    let sender = FakeSender::new(Mode::Refuse(None));
    let exp = exporter(
        "otlp/x",
        &metrics,
        Default::default(),
        sender.clone(),
        queue_helper(QueueConfig {
            num_consumers: 1,
            queue_size: 1,
            block_on_overflow: true,
            ..QueueConfig::default()
        }),
    );
    exp.start().await.unwrap();
    exp.consume(traces(0, 1)).await.unwrap();
    let s2 = sender.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(30)).await;
        s2.set(Mode::Accept);
    });
    let started = Instant::now();
    exp.consume(traces(1, 1)).await.unwrap();
    assert!(started.elapsed() >= Duration::from_secs(30));
    assert!(
        sender
            .wait_until(Duration::from_secs(120), |s| s.distinct() == 2)
            .await
    );
    assert_eq!(
        counter(
            &metrics,
            "otelcol_exporter_enqueue_failed_spans",
            &[("exporter", "otlp/x")]
        ),
        0
    );
}

/// Scenario: `drop_oldest` on a full memory queue.
/// Guarantees: new data is accepted, the oldest queued request is evicted and counted.
#[tokio::test(start_paused = true)]
async fn drop_oldest_evicts_and_counts() {
    let metrics = Metrics::new();
    let sender = FakeSender::new(Mode::Hang);
    let exp = exporter(
        "otlp/x",
        &metrics,
        Default::default(),
        sender,
        queue_helper(QueueConfig {
            num_consumers: 1,
            queue_size: 2,
            drop_oldest: true,
            ..QueueConfig::default()
        }),
    );
    exp.start().await.unwrap();
    exp.consume(traces(0, 3)).await.unwrap(); // taken by the worker (in flight)
    tokio::task::yield_now().await;
    exp.consume(traces(3, 4)).await.unwrap(); // queued
    exp.consume(traces(7, 5)).await.unwrap(); // evicts the queued one
    assert_eq!(
        counter(
            &metrics,
            "wasmcol_exporter_queue_dropped_spans",
            &[("exporter", "otlp/x")]
        ),
        4
    );
    assert_eq!(
        counter(
            &metrics,
            "otelcol_exporter_enqueue_failed_spans",
            &[("exporter", "otlp/x")]
        ),
        0
    );
}

/// Scenario: `wait_for_result` with a permanently failing backend.
/// Guarantees: the caller gets the export's error, not an enqueue success.
#[tokio::test(start_paused = true)]
async fn wait_for_result_returns_export_error() {
    let metrics = Metrics::new();
    let sender = FakeSender::new(Mode::Permanent);
    let exp = exporter(
        "otlp/x",
        &metrics,
        Default::default(),
        sender,
        queue_helper(QueueConfig {
            wait_for_result: true,
            ..QueueConfig::default()
        }),
    );
    exp.start().await.unwrap();
    let err = exp.consume(traces(0, 1)).await.unwrap_err();
    assert!(!err.is_retryable());
}

/// Scenario: 50 requests queued while the backend is slow to come up, then shutdown.
/// Guarantees: shutdown drains the memory queue (each request tried once) before returning;
/// sent counts every span once; new data after shutdown is refused.
#[tokio::test(start_paused = true)]
async fn shutdown_drains_memory_queue() {
    let metrics = Metrics::new();
    let sender = FakeSender::new(Mode::Refuse(None));
    let exp = exporter(
        "otlp/x",
        &metrics,
        Default::default(),
        sender.clone(),
        queue_helper(QueueConfig {
            num_consumers: 2,
            ..QueueConfig::default()
        }),
    );
    exp.start().await.unwrap();
    for i in 0..50 {
        exp.consume(traces(i * 2, 2)).await.unwrap();
    }
    // Both workers are now waiting to retry; the backend comes back.
    tokio::time::sleep(Duration::from_millis(100)).await;
    sender.set(Mode::Accept);
    exp.shutdown().await.unwrap();
    assert_eq!(sender.distinct(), 100);
    assert_eq!(
        counter(
            &metrics,
            "otelcol_exporter_sent_spans",
            &[("exporter", "otlp/x")]
        ),
        100
    );
    assert!(matches!(
        exp.consume(traces(1000, 1)).await,
        Err(ConsumeError::ShuttingDown)
    ));
}

/// Scenario: a sending_queue.storage naming a missing extension.
/// Guarantees: a build error naming the key path.
#[tokio::test]
async fn missing_storage_is_a_build_error() {
    use wasmcol_core::{ChainBuilder, ExporterParts, Signal};
    let metrics = Metrics::new();
    let c = ctx(
        wasmcol_config::Kind::Exporter,
        "otlp/x",
        &metrics,
        Default::default(),
    );
    let err = wasmcol_delivery::DeliveryChain
        .build(
            &c,
            Signal::Traces,
            ExporterParts {
                sender: FakeSender::new(Mode::Accept),
                helper: queue_helper(QueueConfig {
                    storage: Some("file_storage/nope".parse().unwrap()),
                    ..QueueConfig::default()
                }),
            },
        )
        .err()
        .unwrap();
    assert!(
        err.to_string()
            .starts_with("sending_queue.storage: extension \"file_storage/nope\" is not available"),
        "{err}"
    );
}
