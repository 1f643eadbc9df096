use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;
use wasmcol_config::Kind;
use wasmcol_core::{Batch, ConsumeError, Consumer, CreateContext, Lifecycle, Signal};
use wasmcol_pdata::TracesBatch;

use super::*;
use crate::testutil::{Sink, ctx, span_names, spans, spans_message, yaml};

fn config(size: u32, max: u32, timeout: Duration) -> BatchConfig {
    BatchConfig {
        send_batch_size: size,
        send_batch_max_size: max,
        timeout: timeout.into(),
        ..BatchConfig::default()
    }
}

async fn started(c: &CreateContext, cfg: &BatchConfig, sink: &Arc<Sink>) -> Arc<BatchProcessor> {
    let p = Arc::new(BatchProcessor::new(c, cfg, Signal::Traces, sink.clone()));
    p.start().await.unwrap();
    p
}

fn counter(c: &CreateContext, name: &str) -> u64 {
    c.metrics
        .counter_value(name, &[("processor", "batch")])
        .unwrap_or(0)
}

#[test]
fn defaults_match_upstream() {
    let cfg: BatchConfig = wasmcol_config::decode(&yaml("")).unwrap();
    assert_eq!(cfg.send_batch_size, 8192);
    assert_eq!(cfg.send_batch_max_size, 0);
    assert_eq!(cfg.timeout, GoDuration::millis(200));
    assert_eq!(cfg.metadata_cardinality_limit, 1000);
    assert!(cfg.validate().is_empty());
}

#[test]
fn validation_messages_name_the_key() {
    let ctx = ctx(Kind::Processor, "batch");
    let sink: ConsumerRef = Sink::new();
    let build = |body: &str| {
        BatchFactory
            .create(&ctx, &yaml(body), Signal::Traces, sink.clone())
            .err()
            .map(|e| e.0.iter().map(ToString::to_string).collect::<Vec<String>>())
            .unwrap_or_default()
    };
    assert_eq!(
        build("send_batch_size: 100\nsend_batch_max_size: 50"),
        ["send_batch_max_size: send_batch_max_size must be greater or equal to send_batch_size"]
    );
    assert_eq!(
        build("metadata_keys: [Tenant, tenant]"),
        ["metadata_keys: duplicate entry in metadata_keys: \"tenant\" (case-insensitive)"]
    );
    let unknown = build("send_batch_sise: 10");
    assert_eq!(unknown.len(), 1);
    assert!(
        unknown[0].starts_with("send_batch_sise: unknown field `send_batch_sise`")
            || unknown[0].contains("unknown field `send_batch_sise`"),
        "{unknown:?}"
    );
    let bad_timeout = build("timeout: 5 parsecs");
    assert!(bad_timeout[0].starts_with("timeout: "), "{bad_timeout:?}");
    let negative = build("send_batch_size: -1");
    assert!(negative[0].starts_with("send_batch_size: "), "{negative:?}");
    assert!(build("send_batch_size: 100\nsend_batch_max_size: 100\ntimeout: 0s").is_empty());
}

/// Scenario: two senders together reach `send_batch_size` long before the timeout.
/// Guarantees: one merged batch goes out at once, and both senders return after it was sent.
#[tokio::test(start_paused = true)]
async fn size_trigger_merges_concurrent_senders() {
    let c = ctx(Kind::Processor, "batch");
    let sink = Sink::new();
    let p = started(&c, &config(10, 0, Duration::from_secs(10)), &sink).await;
    let t0 = Instant::now();
    let (a, b) = tokio::join!(p.consume(spans("a", 6)), p.consume(spans("b", 6)));
    assert_eq!((a, b), (Ok(()), Ok(())));
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "waited for the timeout"
    );
    assert_eq!(sink.sizes(), [12]);
    let mut names = sink.names();
    names.sort();
    assert_eq!(names.len(), 12);
    assert!(names.contains(&"a-5".to_owned()) && names.contains(&"b-0".to_owned()));
    assert_eq!(
        counter(&c, "otelcol_processor_batch_batch_size_trigger_send"),
        1
    );
    assert_eq!(
        counter(&c, "otelcol_processor_batch_timeout_trigger_send"),
        0
    );
    assert!(c.metrics.render().contains(
        "otelcol_processor_batch_batch_send_size_bucket{processor=\"batch\",le=\"25\"} 1"
    ));
}

/// Scenario: a small batch arrives and nothing else does.
/// Guarantees: it goes out when the timeout passes, not before, and the sender waits for it.
#[tokio::test(start_paused = true)]
async fn timeout_sends_a_partial_batch() {
    let c = ctx(Kind::Processor, "batch");
    let sink = Sink::new();
    let p = started(&c, &config(100, 0, Duration::from_millis(200)), &sink).await;
    let t0 = Instant::now();
    p.consume(spans("a", 5)).await.unwrap();
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_millis(200) && waited < Duration::from_millis(300),
        "{waited:?}"
    );
    assert_eq!(sink.sizes(), [5]);
    assert_eq!(
        counter(&c, "otelcol_processor_batch_timeout_trigger_send"),
        1
    );
    // The timer re-arms for the next batch.
    p.consume(spans("b", 3)).await.unwrap();
    assert_eq!(sink.sizes(), [5, 3]);
    assert_eq!(
        counter(&c, "otelcol_processor_batch_timeout_trigger_send"),
        2
    );
}

/// Scenario: one request larger than `send_batch_max_size`.
/// Guarantees: it is split into parts of at most the maximum, in order, with nothing lost.
#[tokio::test(start_paused = true)]
async fn splits_batches_above_max_size() {
    let c = ctx(Kind::Processor, "batch");
    let sink = Sink::new();
    let p = started(&c, &config(10, 10, Duration::from_secs(1)), &sink).await;
    p.consume(spans("s", 25)).await.unwrap();
    assert_eq!(sink.sizes(), [10, 10, 5]);
    let want: Vec<String> = (0..25).map(|i| format!("s-{i}")).collect();
    assert_eq!(sink.names(), want);
    assert_eq!(
        counter(&c, "otelcol_processor_batch_batch_size_trigger_send"),
        3
    );
}

/// Scenario: `timeout: 0`.
/// Guarantees: every request is sent on its own right away (only splitting applies).
#[tokio::test(start_paused = true)]
async fn zero_timeout_sends_immediately() {
    let c = ctx(Kind::Processor, "batch");
    let sink = Sink::new();
    let p = started(&c, &config(8192, 0, Duration::ZERO), &sink).await;
    let t0 = Instant::now();
    p.consume(spans("a", 3)).await.unwrap();
    p.consume(spans("b", 4)).await.unwrap();
    assert_eq!(t0.elapsed(), Duration::ZERO);
    assert_eq!(sink.sizes(), [3, 4]);
}

/// Scenario: the exporter refuses the merged batch.
/// Guarantees: every sender whose items were in it gets the exporter's error (nothing is
/// acknowledged that was not delivered).
#[tokio::test(start_paused = true)]
async fn downstream_errors_reach_every_sender() {
    let c = ctx(Kind::Processor, "batch");
    let refusal = ConsumeError::retry_after("backend unavailable", Duration::from_secs(3));
    let sink = Sink::failing(refusal.clone());
    let p = started(&c, &config(10, 0, Duration::from_secs(10)), &sink).await;
    let (a, b) = tokio::join!(p.consume(spans("a", 5)), p.consume(spans("b", 5)));
    assert_eq!(a, Err(refusal.clone()));
    assert_eq!(b, Err(refusal));
    assert_eq!(sink.sizes(), [10]);

    // A permanent error travels back unchanged too, after a timeout-triggered flush.
    *sink.fail_with.lock() = Some(ConsumeError::permanent("bad data"));
    let r = p.consume(spans("c", 1)).await;
    assert_eq!(r, Err(ConsumeError::permanent("bad data")));
}

/// Scenario: a split batch whose second part fails.
/// Guarantees: a sender whose items were all in the first part succeeds; the sender whose
/// items straddle both parts gets the error.
#[tokio::test(start_paused = true)]
async fn split_failure_only_fails_the_senders_it_carried() {
    let c = ctx(Kind::Processor, "batch");
    let sink = Sink::new();
    sink.script
        .lock()
        .extend([Ok(()), Err(ConsumeError::retryable("second part refused"))]);
    let p = started(&c, &config(16, 10, Duration::from_secs(10)), &sink).await;
    // a: 8 items (part 1); b: 8 items (2 in part 1, 6 in part 2).
    let (a, b) = tokio::join!(p.consume(spans("a", 8)), p.consume(spans("b", 8)));
    assert_eq!(a, Ok(()));
    assert_eq!(b, Err(ConsumeError::retryable("second part refused")));
    assert_eq!(sink.sizes(), [10, 6]);
}

/// Scenario: many senders at once, fewer items than `send_batch_size`.
/// Guarantees: they are merged into one export, and each gets its outcome.
#[tokio::test(start_paused = true)]
async fn many_concurrent_senders_share_one_export() {
    let c = ctx(Kind::Processor, "batch");
    let sink = Sink::new();
    let p = started(&c, &config(1000, 0, Duration::from_millis(100)), &sink).await;
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..50 {
        let p = p.clone();
        calls.spawn(async move { p.consume(spans(&format!("c{i}"), 3)).await });
    }
    let mut ok = 0;
    while let Some(r) = calls.join_next().await {
        assert_eq!(r.unwrap(), Ok(()));
        ok += 1;
    }
    assert_eq!(ok, 50);
    assert_eq!(sink.sizes(), [150]);
}

/// Scenario: the collector stops while a batch is held (long timeout, size not reached).
/// Guarantees: `shutdown` sends it downstream before returning and the sender gets `Ok`.
#[tokio::test(start_paused = true)]
async fn shutdown_flushes_held_data() {
    let c = ctx(Kind::Processor, "batch");
    let sink = Sink::new();
    let p = started(&c, &config(1000, 0, Duration::from_secs(3600)), &sink).await;
    let sender = {
        let p = p.clone();
        tokio::spawn(async move { p.consume(spans("held", 5)).await })
    };
    // Readiness: the batch is held by the processor.
    let deadline = Instant::now() + Duration::from_secs(5);
    while p.held_items() < 5 {
        assert!(Instant::now() < deadline, "batch never held");
        tokio::task::yield_now().await;
    }
    assert!(sink.sizes().is_empty());
    p.shutdown().await.unwrap();
    assert_eq!(
        sink.sizes(),
        [5],
        "held data must reach the exporter before shutdown returns"
    );
    assert_eq!(sender.await.unwrap(), Ok(()));
    // After shutdown nothing is held back: data goes straight through.
    p.consume(spans("late", 2)).await.unwrap();
    assert_eq!(sink.sizes(), [5, 2]);
}

/// Scenario: the exporter is slow and senders keep coming.
/// Guarantees: no more than the configured room of items is held or in flight; further
/// senders wait (back-pressure) and complete once room frees up.
#[tokio::test(start_paused = true)]
async fn waits_for_room_when_too_much_is_pending() {
    let c = ctx(Kind::Processor, "batch");
    let gate = Arc::new(Semaphore::new(0));
    let sink = Sink::gated(gate.clone());
    let p = Arc::new(BatchProcessor::with_room(
        &c,
        &config(10, 0, Duration::ZERO),
        Signal::Traces,
        sink.clone(),
        20,
    ));
    p.start().await.unwrap();
    let spawn = |name: &'static str| {
        let p = p.clone();
        tokio::spawn(async move { p.consume(spans(name, 10)).await })
    };
    let a = spawn("a");
    let b = spawn("b");
    let mut c3 = spawn("c");
    // a and b fill the room and are stuck in the exporter; c cannot get in.
    assert!(
        tokio::time::timeout(Duration::from_secs(5), &mut c3)
            .await
            .is_err(),
        "third sender should wait for room"
    );
    assert_eq!(p.inner.room.available_permits(), 0);
    assert_eq!(p.held_items(), 0, "c must not be held while waiting");
    gate.add_permits(3);
    assert_eq!(a.await.unwrap(), Ok(()));
    assert_eq!(b.await.unwrap(), Ok(()));
    assert_eq!(c3.await.unwrap(), Ok(()));
    assert_eq!(sink.total(), 30);
    assert_eq!(p.inner.room.available_permits(), 20);
}

/// Scenario: a sender gives up (its request is cancelled) while its batch is held.
/// Guarantees: the items are still sent, and the room they used is released afterwards.
#[tokio::test(start_paused = true)]
async fn cancelled_sender_does_not_lose_data() {
    let c = ctx(Kind::Processor, "batch");
    let sink = Sink::new();
    let p = started(&c, &config(100, 0, Duration::from_millis(200)), &sink).await;
    let r = tokio::time::timeout(Duration::from_millis(50), p.consume(spans("gone", 4))).await;
    assert!(r.is_err(), "sender should still be waiting at 50ms");
    let deadline = Instant::now() + Duration::from_secs(5);
    while sink.total() < 4 {
        assert!(Instant::now() < deadline, "abandoned items were never sent");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(sink.names().len(), 4);
    while p.inner.room.available_permits() < p.inner.capacity {
        assert!(Instant::now() < deadline, "room not released");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Scenario: a lone request that fits in one batch.
/// Guarantees: the exporter gets the received bytes untouched (no decode, no re-encode).
#[tokio::test(start_paused = true)]
async fn single_batch_keeps_its_encoding() {
    let c = ctx(Kind::Processor, "batch");
    let sink = Sink::new();
    let p = started(&c, &config(4, 0, Duration::from_secs(1)), &sink).await;
    let bytes = TracesBatch::from_message(spans_message("e", 4)).encoded();
    let encoded = Batch::Traces(TracesBatch::from_encoded(bytes.clone()).unwrap());
    p.consume(encoded).await.unwrap();
    let got = sink.received.lock()[0].clone();
    assert!(got.is_encoded());
    assert_eq!(got.encoded(), bytes);
    assert_eq!(span_names(&got).len(), 4);
}

/// Scenario: several requests still in their received encoding are merged.
/// Guarantees: the merged batch is built from their bytes (still encoded, nothing decoded),
/// holds every span in arrival order, and mixing in a decoded batch still works.
#[tokio::test(start_paused = true)]
async fn encoded_requests_merge_without_decoding() {
    let c = ctx(Kind::Processor, "batch");
    let sink = Sink::new();
    let p = started(&c, &config(6, 0, Duration::from_secs(1)), &sink).await;
    let encoded = |prefix: &str, n: usize| {
        let bytes = TracesBatch::from_message(spans_message(prefix, n)).encoded();
        Batch::Traces(TracesBatch::from_encoded(bytes).unwrap())
    };
    let (a, b) = tokio::join!(p.consume(encoded("a", 2)), p.consume(encoded("b", 4)));
    assert_eq!((a, b), (Ok(()), Ok(())));
    let got = sink.received.lock()[0].clone();
    assert!(
        got.is_encoded(),
        "merged by concatenating the requests' bytes"
    );
    assert_eq!(got.item_count(), 6);
    assert_eq!(span_names(&got), ["a-0", "a-1", "b-0", "b-1", "b-2", "b-3"]);

    let (a, b) = tokio::join!(p.consume(encoded("c", 3)), p.consume(spans("d", 3)));
    assert_eq!((a, b), (Ok(()), Ok(())));
    assert_eq!(sink.sizes(), [6, 6]);
    assert_eq!(
        span_names(&sink.received.lock()[1]),
        ["c-0", "c-1", "c-2", "d-0", "d-1", "d-2"]
    );
}

/// Scenario: an empty request, and a request of the wrong signal.
/// Guarantees: the empty one passes through with its outcome; the wrong one is refused.
#[tokio::test(start_paused = true)]
async fn empty_and_foreign_batches() {
    let c = ctx(Kind::Processor, "batch");
    let sink = Sink::failing(ConsumeError::retryable("down"));
    let p = started(&c, &config(10, 0, Duration::from_secs(1)), &sink).await;
    assert_eq!(
        p.consume(Batch::empty(Signal::Traces)).await,
        Err(ConsumeError::retryable("down"))
    );
    let e = p.consume(Batch::empty(Signal::Logs)).await.unwrap_err();
    assert!(!e.is_retryable());
    assert_eq!(p.held_items(), 0);
}

#[test]
fn long_timeouts_are_clamped_to_max_hold() {
    let cfg: BatchConfig =
        wasmcol_config::decode(&serde_yaml::from_str("timeout: 10s").unwrap()).unwrap();
    assert_eq!(cfg.effective_timeout(), Duration::from_secs(1));
    let cfg: BatchConfig =
        wasmcol_config::decode(&serde_yaml::from_str("timeout: 10s\nmax_hold: 0s").unwrap())
            .unwrap();
    assert_eq!(cfg.effective_timeout(), Duration::from_secs(10));
    let cfg: BatchConfig =
        wasmcol_config::decode(&serde_yaml::from_str("timeout: 200ms").unwrap()).unwrap();
    assert_eq!(cfg.effective_timeout(), Duration::from_millis(200));
    let cfg: BatchConfig =
        wasmcol_config::decode(&serde_yaml::from_str("timeout: 0s").unwrap()).unwrap();
    assert_eq!(cfg.effective_timeout(), Duration::ZERO);
}

/// A consumer that answers on enqueue, like an exporter with a sending queue, and records
/// the merge settings offered to it.
struct Queued {
    sink: Arc<Sink>,
    adopted: parking_lot::Mutex<Vec<QueueBatchConfig>>,
}

#[async_trait]
impl Consumer for Queued {
    async fn consume(&self, batch: Batch) -> Result<(), ConsumeError> {
        self.sink.consume(batch).await
    }
    fn answers_on_enqueue(&self) -> bool {
        true
    }
    fn adopt_batching(&self, plan: &QueueBatchConfig) {
        self.adopted.lock().push(plan.clone());
    }
}

/// Scenario: a `batch` processor (timeout 10 s, 100 items, max 500) in front of a consumer
/// that answers on enqueue; a sender sends 3 spans.
/// Guarantees: the request is handed on at once (no time passes, nothing held), the
/// processor reports that it answers on enqueue, and the consumer was offered the
/// processor's settings as queue merge settings.
#[tokio::test(start_paused = true)]
async fn hands_on_at_once_when_downstream_queues() {
    let c = ctx(Kind::Processor, "batch");
    let sink = Sink::new();
    let queued = Arc::new(Queued {
        sink: sink.clone(),
        adopted: parking_lot::Mutex::new(Vec::new()),
    });
    let cfg = config(100, 500, Duration::from_secs(10));
    let p = BatchProcessor::new(&c, &cfg, Signal::Traces, queued.clone());
    p.start().await.unwrap();
    assert!(p.answers_on_enqueue());
    assert_eq!(
        *queued.adopted.lock(),
        [QueueBatchConfig {
            flush_timeout: GoDuration::secs(10),
            min_size: 100,
            max_size: 500,
            sizer: Some(Sizer::Items),
            partition: None,
        }]
    );
    let t0 = Instant::now();
    p.consume(spans("a", 3)).await.unwrap();
    assert_eq!(t0.elapsed(), Duration::ZERO);
    assert_eq!(sink.total(), 3);
    assert_eq!(p.held_items(), 0);
    p.shutdown().await.unwrap();

    // Behind a consumer that exports synchronously, the processor holds as before.
    let held = BatchProcessor::new(&c, &cfg, Signal::Traces, Sink::new());
    assert!(!held.answers_on_enqueue());
}

/// Three resources (with schema URLs), each with two scopes of seven spans.
fn tree() -> wasmcol_pdata::ExportTraceServiceRequest {
    let mut req = wasmcol_pdata::ExportTraceServiceRequest::default();
    for r in 0..3 {
        let mut rs = spans_message(&format!("r{r}"), 7).resource_spans.remove(0);
        rs.schema_url = format!("https://schema/r{r}");
        let mut second = rs.scope_spans[0].clone();
        for s in &mut second.spans {
            s.name = format!("second-{}", s.name);
        }
        second.schema_url = format!("https://schema/r{r}/scope");
        rs.scope_spans.push(second);
        req.resource_spans.push(rs);
    }
    req
}

/// The parts the decoded (prost) split makes of `req` at `max` items each.
fn prost_parts(req: &wasmcol_pdata::ExportTraceServiceRequest, max: usize) -> Vec<Batch> {
    let mut rest = TracesBatch::from_message(req.clone());
    let mut parts = Vec::new();
    while let Some(part) = rest.split_front(max).unwrap() {
        parts.push(Batch::Traces(part));
    }
    parts.push(Batch::Traces(rest));
    parts
}

/// Scenario: a received (encoded) request of 42 spans in three resources of two scopes each
/// passes a batch with `send_batch_max_size` 10, 7 (a scope boundary), 3 and 50.
/// Guarantees: the parts have the exact sizes, stay in their wire form (split over the bytes,
/// nothing decoded), and decode to exactly the requests the decoded split makes: same
/// resources, scopes, schema URLs and spans, in order.
#[tokio::test(start_paused = true)]
async fn encoded_batches_split_over_their_bytes() {
    let req = tree();
    let bytes = TracesBatch::from_message(req.clone()).encoded();
    for (max, sizes) in [
        (10, vec![10, 10, 10, 10, 2]),
        (7, vec![7; 6]),
        (3, vec![3; 14]),
        (50, vec![42]),
    ] {
        let c = ctx(Kind::Processor, "batch");
        let sink = Sink::new();
        let p = started(&c, &config(max as u32, max as u32, Duration::ZERO), &sink).await;
        let encoded = Batch::Traces(TracesBatch::from_encoded(bytes.clone()).unwrap());
        p.consume(encoded).await.unwrap();
        assert_eq!(sink.sizes(), sizes, "max {max}");
        let got = sink.received.lock().clone();
        for part in &got {
            assert!(part.is_encoded(), "max {max}: a part was decoded to split");
        }
        let want: Vec<_> = prost_parts(&req, max)
            .iter()
            .map(|b| match b {
                Batch::Traces(t) => t.to_message().unwrap(),
                _ => unreachable!(),
            })
            .collect();
        let got: Vec<_> = got
            .iter()
            .map(|b| match b {
                Batch::Traces(t) => t.to_message().unwrap(),
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(got, want, "max {max}");
    }
}

/// Scenario: a received (encoded) request and one a processor changed (decoded) are merged,
/// then split by `send_batch_max_size`.
/// Guarantees: the merged parts are in wire form: the decoded one is encoded once and
/// concatenated, and the received one is never decoded (decoding both to merge them is what
/// multiplied memory ~70x for large batches).
#[tokio::test(start_paused = true)]
async fn mixed_batches_merge_and_split_without_decoding() {
    let c = ctx(Kind::Processor, "batch");
    let sink = Sink::new();
    let p = started(&c, &config(12, 8, Duration::from_secs(1)), &sink).await;
    let received = Batch::Traces(
        TracesBatch::from_encoded(TracesBatch::from_message(spans_message("a", 6)).encoded())
            .unwrap(),
    );
    let (a, b) = tokio::join!(p.consume(received), p.consume(spans("d", 6)));
    assert_eq!((a, b), (Ok(()), Ok(())));
    assert_eq!(sink.sizes(), [8, 4]);
    for part in sink.received.lock().iter() {
        assert!(part.is_encoded(), "merged or split by decoding");
    }
    let want: Vec<String> = (0..6)
        .map(|i| format!("a-{i}"))
        .chain((0..6).map(|i| format!("d-{i}")))
        .collect();
    assert_eq!(sink.names(), want);
}

fn tenant(batch: Batch, t: &str) -> Batch {
    let ctx = wasmcol_pdata::RequestContext::new([
        ("x-tenant", vec![t.to_owned()]),
        ("user-agent", vec!["sdk".to_owned()]),
    ]);
    batch.with_context(ctx)
}

/// Scenario: two tenants' senders, concurrently, with `metadata_keys: [X-Tenant]`.
/// Guarantees: their items are never merged into one export; each export carries its
/// tenant's value and nothing but the metadata keys; a third value set beyond
/// `metadata_cardinality_limit: 2` is refused with upstream's text.
#[tokio::test(start_paused = true)]
async fn metadata_keys_keep_value_sets_apart() {
    let c = ctx(Kind::Processor, "batch");
    let sink = Sink::new();
    let cfg = BatchConfig {
        metadata_keys: vec!["X-Tenant".to_owned()],
        metadata_cardinality_limit: 2,
        ..config(100, 0, Duration::from_secs(1))
    };
    let p = started(&c, &cfg, &sink).await;
    let (a, b, a2) = tokio::join!(
        p.consume(tenant(spans("a", 6), "acme")),
        p.consume(tenant(spans("b", 6), "globex")),
        p.consume(tenant(spans("c", 2), "acme")),
    );
    assert_eq!((a, b, a2), (Ok(()), Ok(()), Ok(())));
    let got = sink.received.lock().clone();
    let mut seen = Vec::new();
    for batch in &got {
        let t = batch.context().get("x-tenant").to_vec();
        assert_eq!(t.len(), 1, "{:?}", batch.context());
        assert!(batch.context().get("user-agent").is_empty());
        seen.push((t[0].clone(), batch.item_count()));
    }
    seen.sort();
    assert_eq!(seen, [("acme".to_owned(), 8), ("globex".to_owned(), 6)]);
    let refused = p.consume(tenant(spans("d", 1), "initech")).await;
    let e = refused.unwrap_err();
    assert!(matches!(e, ConsumeError::Permanent(_)), "{e:?}");
    assert!(
        e.to_string()
            .contains("too many batcher metadata-value combinations")
    );
}

/// Scenario: a batch with a request context through a processor without `metadata_keys`.
/// Guarantees: the context is dropped, as upstream's single batcher exports under a fresh one.
#[tokio::test(start_paused = true)]
async fn without_metadata_keys_the_context_is_dropped() {
    let c = ctx(Kind::Processor, "batch");
    let sink = Sink::new();
    let p = started(&c, &config(1, 0, Duration::from_secs(1)), &sink).await;
    p.consume(tenant(spans("a", 2), "acme")).await.unwrap();
    assert!(sink.received.lock()[0].context().is_empty());
}
