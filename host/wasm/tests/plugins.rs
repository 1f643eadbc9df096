//! The plugin runtime with the real components built from `plugins/`: bundled plugins end to
//! end through their factories, the misbehaving test plugins (trap, loop, alloc, error, sleep,
//! amplify), the sandbox, the template, config errors with key paths, and the compile cache.
// Test code: a failed expectation is reported by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::time::Duration;
use support::runtime;

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;
use prost::Message;
use wasmcol_config::{ComponentId, Kind};
use wasmcol_core::registry::Factory;
use wasmcol_core::{
    Batch, ConsumeError, Consumer, ConsumerRef, CreateContext, Extensions, Metrics, Processor,
    Registry, Signal, Tasks,
};
use wasmcol_pdata::proto::common::v1::{AnyValue, KeyValue, any_value};
use wasmcol_pdata::proto::resource::v1::Resource;
use wasmcol_pdata::proto::trace::v1::{ResourceSpans, ScopeSpans, Span};
use wasmcol_pdata::{ExportTraceServiceRequest, TracesBatch};
use wasmcol_wasm::bundled::test_paths;
use wasmcol_wasm::{Runtime, RuntimeOptions};

/// Records what reaches it.
#[derive(Default)]
struct Capture {
    batches: Mutex<Vec<Batch>>,
}

#[async_trait]
impl Consumer for Capture {
    async fn consume(&self, batch: Batch) -> Result<(), ConsumeError> {
        self.batches.lock().push(batch);
        Ok(())
    }
}

impl Capture {
    fn traces(&self) -> Vec<ExportTraceServiceRequest> {
        self.batches
            .lock()
            .iter()
            .map(|b| match b {
                Batch::Traces(t) => t.to_message().unwrap(),
                _ => panic!("not traces"),
            })
            .collect()
    }
    fn spans(&self) -> usize {
        self.batches.lock().iter().map(Batch::item_count).sum()
    }
}

fn ctx(id: &str, metrics: &Metrics) -> CreateContext {
    CreateContext {
        id: id.parse::<ComponentId>().unwrap(),
        kind: Kind::Processor,
        metrics: metrics.clone(),
        tasks: Tasks::new(),
        extensions: Extensions::default(),
        status: Default::default(),
    }
}

fn registry() -> Registry {
    let mut r = Registry::new();
    wasmcol_wasm::register(&mut r, runtime());
    r
}

/// The problems a build or prepare reported, one per entry.
#[derive(Debug)]
struct Problems(Vec<String>);

impl std::fmt::Display for Problems {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join("; "))
    }
}

/// Builds and prepares a processor, as the collector does before starting it.
async fn build(
    ty: &str,
    id: &str,
    yaml: &str,
    metrics: &Metrics,
    next: ConsumerRef,
) -> Result<Arc<dyn Processor>, Problems> {
    let r = registry();
    let Some(entry) = r.lookup(Kind::Processor, ty) else {
        panic!("no {ty}")
    };
    let Factory::Processor(f) = &entry.factory else {
        panic!("not a processor")
    };
    let config: serde_yaml::Value = serde_yaml::from_str(yaml).unwrap();
    let p = f
        .create(&ctx(id, metrics), &config, Signal::Traces, next)
        .map_err(|e| Problems(vec![e.to_string()]))?;
    p.prepare()
        .await
        .map_err(|e| Problems(e.to_string().lines().map(String::from).collect()))?;
    Ok(p)
}

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

fn get<'a>(attrs: &'a [KeyValue], k: &str) -> Option<&'a str> {
    attrs
        .iter()
        .find(|a| a.key == k)
        .and_then(|a| match &a.value {
            Some(AnyValue {
                value: Some(any_value::Value::StringValue(s)),
            }) => Some(s.as_str()),
            _ => None,
        })
}

/// `n` spans under one resource, `per_trace` spans per trace id, ids derived from `seed`.
fn request(n: usize, per_trace: usize, seed: u64) -> ExportTraceServiceRequest {
    let spans = (0..n)
        .map(|i| {
            let t = (i / per_trace) as u64 + seed * 1_000_003;
            let mut trace_id = [0u8; 16];
            trace_id[..8].copy_from_slice(&t.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_le_bytes());
            trace_id[8..].copy_from_slice(
                &(t ^ 0x5555)
                    .wrapping_mul(0xbf58_476d_1ce4_e5b9)
                    .to_le_bytes(),
            );
            Span {
                trace_id: trace_id.to_vec(),
                span_id: (i as u64 + 1).to_le_bytes().to_vec(),
                name: format!("GET /api/{i}"),
                attributes: vec![kv("http.method", "GET")],
                ..Default::default()
            }
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", "checkout")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            schema_url: String::new(),
        }],
    }
}

fn encoded(req: &ExportTraceServiceRequest) -> Batch {
    Batch::Traces(TracesBatch::from_encoded(Bytes::from(req.encode_to_vec())).unwrap())
}

fn counter(m: &Metrics, name: &str, labels: &[(&str, &str)]) -> u64 {
    m.counter_value(name, labels).unwrap_or(0)
}

/// A consumer standing for a sending queue: answers on enqueue and records the merge
/// settings a `batch` in front of it offers.
#[derive(Default)]
struct Queued {
    adopted: Mutex<Vec<u64>>,
}

#[async_trait]
impl Consumer for Queued {
    async fn consume(&self, _batch: Batch) -> Result<(), ConsumeError> {
        Ok(())
    }

    fn answers_on_enqueue(&self) -> bool {
        true
    }

    fn adopt_batching(&self, plan: &wasmcol_config::exporterhelper::QueueBatchConfig) {
        self.adopted.lock().push(plan.min_size);
    }
}

/// A plugin processor is transparent to acknowledgement: a `batch` in front of it hands
/// requests on at once exactly when what follows the plugin queues, and its merge settings
/// reach those queues through the plugin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_processor_passes_on_enqueue_answers_and_batching() {
    let m = Metrics::new();
    let yaml = "attributes:\n  - key: deployment.region\n    value: x\n    action: upsert\n";
    let queued = Arc::new(Queued::default());
    let p = build("resource", "resource/q", yaml, &m, queued.clone())
        .await
        .unwrap();
    assert!(p.answers_on_enqueue());
    let plan = wasmcol_config::exporterhelper::QueueBatchConfig {
        min_size: 1234,
        ..Default::default()
    };
    p.adopt_batching(&plan);
    assert_eq!(*queued.adopted.lock(), vec![1234]);
    let held = build(
        "resource",
        "resource/h",
        yaml,
        &m,
        Arc::new(Capture::default()),
    )
    .await
    .unwrap();
    assert!(!held.answers_on_enqueue());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_region_edits_resources_without_decoding_spans() {
    let m = Metrics::new();
    let out = Arc::new(Capture::default());
    let p = build(
        "resource",
        "resource/region",
        "attributes:\n  - key: deployment.region\n    value: us-east-1\n    action: upsert\n",
        &m,
        out.clone(),
    )
    .await
    .unwrap();
    let req = request(50, 5, 1);
    p.consume(encoded(&req)).await.unwrap();
    let b = out.batches.lock()[0].clone();
    // Scopes stayed raw: the batch is still bytes, and only the resource changed.
    assert!(b.is_encoded(), "spans were decoded for a resource edit");
    let got = out.traces().remove(0);
    let attrs = &got.resource_spans[0].resource.as_ref().unwrap().attributes;
    assert_eq!(get(attrs, "deployment.region"), Some("us-east-1"));
    assert_eq!(
        got.resource_spans[0].scope_spans,
        req.resource_spans[0].scope_spans
    );
    assert_eq!(
        counter(
            &m,
            "wasmcol_plugin_calls",
            &[("processor", "resource/region")]
        ),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attributes_cross_region_inserts_on_every_span() {
    let m = Metrics::new();
    let out = Arc::new(Capture::default());
    let p = build(
        "attributes",
        "attributes/cross-region",
        "actions:\n  - key: telemetry.source\n    value: cross-region-forward\n    action: insert\n",
        &m,
        out.clone(),
    ).await
    .unwrap();
    let mut req = request(20, 2, 2);
    req.resource_spans[0].scope_spans[0].spans[3]
        .attributes
        .push(kv("telemetry.source", "local"));
    p.consume(encoded(&req)).await.unwrap();
    // The insert was spliced into the span bytes: nothing was decoded or re-encoded.
    assert!(out.batches.lock()[0].is_encoded());
    let got = out.traces().remove(0);
    let spans = &got.resource_spans[0].scope_spans[0].spans;
    assert_eq!(spans.len(), 20);
    for (i, s) in spans.iter().enumerate() {
        let want = if i == 3 {
            "local"
        } else {
            "cross-region-forward"
        };
        assert_eq!(
            get(&s.attributes, "telemetry.source"),
            Some(want),
            "span {i}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmodified_batch_is_forwarded_as_received() {
    let m = Metrics::new();
    let out = Arc::new(Capture::default());
    // Update of a key no span has: nothing changes.
    let p = build(
        "attributes",
        "attributes/noop",
        "actions:\n  - key: absent\n    value: x\n    action: update\n",
        &m,
        out.clone(),
    )
    .await
    .unwrap();
    let req = request(10, 1, 3);
    let bytes = Bytes::from(req.encode_to_vec());
    p.consume(Batch::Traces(
        TracesBatch::from_encoded(bytes.clone()).unwrap(),
    ))
    .await
    .unwrap();
    assert_eq!(out.batches.lock()[0].encoded(), bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bundled_config_errors_carry_key_paths_and_upstream_text() {
    let m = Metrics::new();
    let e = build(
        "attributes",
        "attributes/x",
        "actions:\n  - key: a\n    value: 1\n    action: insert\n  - key: b\n    action: upsert\n",
        &m,
        Arc::new(Capture::default()),
    )
    .await
    .err()
    .unwrap();
    assert_eq!(
        e.to_string(),
        "actions[1]: error creating AttrProc. Either field \"value\", \"from_attribute\" or \"from_context\" setting must be specified for 1-th action"
    );
    let e = build(
        "resource",
        "resource/x",
        "{}",
        &m,
        Arc::new(Capture::default()),
    )
    .await
    .err()
    .unwrap();
    assert_eq!(
        e.to_string(),
        "attributes: missing required field \"attributes\""
    );
    let e = build(
        "probabilistic_sampler",
        "probabilistic_sampler",
        "sampling_percentage: 10\nbogus: 1\n",
        &m,
        Arc::new(Capture::default()),
    )
    .await
    .err()
    .unwrap();
    assert!(
        e.0[0]
            .to_string()
            .starts_with("bogus: unknown field `bogus`"),
        "{e:?}"
    );
}

/// Acceptance 2 through the real component: 25% of 100k traces, deterministic across
/// instances, whole traces together.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampler_keeps_a_quarter_deterministically_and_whole_traces() {
    let m = Metrics::new();
    let run = |id: &'static str| {
        let m = m.clone();
        async move {
            let out = Arc::new(Capture::default());
            let p = build(
                "probabilistic_sampler",
                id,
                "sampling_percentage: 25\n",
                &m,
                out.clone(),
            )
            .await
            .unwrap();
            // 100k traces of 2 spans each, in batches of 1000 spans.
            for b in 0..200u64 {
                p.consume(encoded(&request(1000, 2, b))).await.unwrap();
            }
            out
        }
    };
    let first = run("probabilistic_sampler/a").await;
    let second = run("probabilistic_sampler/b").await;
    let ids = |c: &Capture| {
        let mut v: Vec<Vec<u8>> = c
            .traces()
            .into_iter()
            .flat_map(|r| r.resource_spans)
            .flat_map(|r| r.scope_spans)
            .flat_map(|s| s.spans)
            .map(|s| s.trace_id)
            .collect();
        v.sort();
        v
    };
    let a = ids(&first);
    let b = ids(&second);
    assert_eq!(a, b, "the same traces must be kept by two independent runs");
    // Whole traces: every kept trace id appears exactly twice.
    let mut counts = std::collections::HashMap::new();
    for id in &a {
        *counts.entry(id.clone()).or_insert(0usize) += 1;
    }
    assert!(counts.values().all(|c| *c == 2), "a trace was split");
    let fraction = counts.len() as f64 / 100_000.0;
    assert!((fraction - 0.25).abs() <= 0.01, "kept fraction {fraction}");
    // Kept spans carry the OTel sampling state.
    let kept = first.traces().remove(0);
    let ts = &kept.resource_spans[0].scope_spans[0].spans[0].trace_state;
    assert!(ts.starts_with("ot=th:c;rv:"), "{ts}");
}

/// Upstream's test vector (the one in `plugins/probabilistic_sampler` unit tests) through the real component: seed 0, trace 4bf92f…4736 at 25 %.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampler_reference_vector_in_wasm() {
    let m = Metrics::new();
    let out = Arc::new(Capture::default());
    let p = build(
        "probabilistic_sampler",
        "probabilistic_sampler",
        "sampling_percentage: 25\n",
        &m,
        out.clone(),
    )
    .await
    .unwrap();
    let mut req = request(2, 1, 0);
    let spans = &mut req.resource_spans[0].scope_spans[0].spans;
    spans[0].trace_id = hex16("4bf92f3577b34da6a3ce929d0e0e4736");
    spans[1].trace_id = hex16("0102030405060708090a0b0c0d0e0f10");
    p.consume(encoded(&req)).await.unwrap();
    let got = out.traces().remove(0);
    let spans = &got.resource_spans[0].scope_spans[0].spans;
    assert_eq!(spans.len(), 1);
    assert_eq!(spans[0].trace_id, hex16("4bf92f3577b34da6a3ce929d0e0e4736"));
    assert_eq!(spans[0].trace_state, "ot=th:c;rv:fdc8d0b520408d");
}

fn hex16(s: &str) -> Vec<u8> {
    (0..16)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

fn wasm_yaml(path: &str, extra: &str) -> String {
    format!("path: {path}\n{extra}")
}

/// A trap that does not repeat on a fresh instance is not the data's fault: the batch is run
/// again on a fresh instance, whose result goes on, and nothing is refused as invalid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trap_that_does_not_repeat_is_served_by_a_fresh_instance() {
    let m = Metrics::new();
    let out = Arc::new(Capture::default());
    let p = build(
        "wasm",
        "wasm/trap",
        &wasm_yaml(test_paths::TRAP, "config: { every: 2 }\n"),
        &m,
        out.clone(),
    )
    .await
    .unwrap();
    for i in 0..6u64 {
        p.consume(encoded(&request(10, 1, i))).await.unwrap();
    }
    // Used one call at a time, the pool holds one instance: it traps on its second batch,
    // and the fresh one that took that batch over is at its second batch with the next one.
    assert_eq!(
        counter(
            &m,
            "wasmcol_plugin_errors",
            &[("processor", "wasm/trap"), ("reason", "trap")]
        ),
        5
    );
    assert_eq!(
        counter(
            &m,
            "wasmcol_plugin_rejected_items",
            &[("processor", "wasm/trap")]
        ),
        0
    );
    // Every batch arrived whole, once.
    assert_eq!(out.spans(), 60);
    assert_eq!(out.batches.lock().len(), 6);
}

/// A batch the plugin traps on every time (again on a fresh instance) is refused as
/// permanent invalid data, counted, and the sender reads no trap details.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trap_that_repeats_on_a_fresh_instance_is_invalid_data() {
    let m = Metrics::new();
    let out = Arc::new(Capture::default());
    let p = build(
        "wasm",
        "wasm/trap-always",
        &wasm_yaml(test_paths::TRAP, "config: { every: 1 }\n"),
        &m,
        out.clone(),
    )
    .await
    .unwrap();
    for i in 0..2u64 {
        let e = p.consume(encoded(&request(10, 1, i))).await.unwrap_err();
        let ConsumeError::Permanent(pe) = &e else {
            panic!("a repeating trap must be permanent: {e}")
        };
        assert!(pe.is_invalid_data(), "{e}");
        let text = e.to_string();
        assert!(text.contains("wasm/trap-always"), "{text}");
        for internal in ["test_trap", "panicked", "backtrace", "wasm"] {
            assert!(
                !text.replace("wasm/trap-always", "").contains(internal),
                "{internal:?} in {text}"
            );
        }
    }
    assert_eq!(
        counter(
            &m,
            "wasmcol_plugin_rejected_items",
            &[("processor", "wasm/trap-always")]
        ),
        20
    );
    assert_eq!(
        counter(
            &m,
            "wasmcol_plugin_errors",
            &[("processor", "wasm/trap-always"), ("reason", "trap")]
        ),
        4
    );
    assert_eq!(out.spans(), 0);
}

/// A plugin waiting in a WASI host call (`std::thread::sleep`: a monotonic-clock pollable)
/// runs no wasm, so no epoch tick can stop it; the call's deadline still does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_sleeping_in_wasi_is_stopped_at_its_deadline() {
    let m = Metrics::new();
    let out = Arc::new(Capture::default());
    let p = build(
        "wasm",
        "wasm/sleep",
        &wasm_yaml(
            test_paths::SLEEP,
            "config: { ms: 120000 }\nlimits: { timeout: 100ms }\n",
        ),
        &m,
        out.clone(),
    )
    .await
    .unwrap();
    let start = std::time::Instant::now();
    let e = tokio::time::timeout(
        Duration::from_secs(20),
        p.consume(encoded(&request(3, 1, 21))),
    )
    .await
    .expect("the deadline does not cover a plugin waiting in WASI")
    .unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    // A timeout depends on load as much as on the data: retryable, and said plainly.
    assert!(e.is_retryable(), "{e}");
    assert!(e.to_string().contains("time limit"), "{e}");
    assert_eq!(
        counter(
            &m,
            "wasmcol_plugin_errors",
            &[("processor", "wasm/sleep"), ("reason", "timeout")]
        ),
        1
    );
    assert_eq!(out.spans(), 0);
}

/// What the host stores for a plugin counts against the plugin's memory budget: a plugin
/// holding one 1 MiB string cannot make the host keep a copy per span, or per key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_side_copies_count_against_the_memory_budget() {
    let m = Metrics::new();
    let out = Arc::new(Capture::default());
    for (id, config) in [
        // 200 spans x 1 MiB, refused before the host copies anything.
        ("wasm/amp-items", "{ kib: 1024 }"),
        // One resource, 64 keys x 1 MiB, refused once the copies pass the budget.
        ("wasm/amp-keys", "{ kib: 1024, keys: 64, resource: true }"),
    ] {
        let p = build(
            "wasm",
            id,
            &wasm_yaml(
                test_paths::AMPLIFY,
                &format!("config: {config}\nlimits: {{ memory_mib: 16 }}\n"),
            ),
            &m,
            out.clone(),
        )
        .await
        .unwrap();
        let e = p.consume(encoded(&request(200, 1, 22))).await.unwrap_err();
        // It fails the same way on a fresh instance: the data is refused for good.
        assert!(!e.is_retryable(), "{id}: {e}");
        assert!(e.to_string().contains("memory limit"), "{id}: {e}");
        assert_eq!(
            counter(
                &m,
                "wasmcol_plugin_errors",
                &[("processor", id), ("reason", "memory")]
            ),
            2,
            "{id}"
        );
    }
    assert_eq!(out.spans(), 0);
    // Within the budget the same plugin works.
    let p = build(
        "wasm",
        "wasm/amp-small",
        &wasm_yaml(
            test_paths::AMPLIFY,
            "config: { kib: 1, keys: 2 }\nlimits: { memory_mib: 16 }\n",
        ),
        &m,
        out.clone(),
    )
    .await
    .unwrap();
    p.consume(encoded(&request(200, 1, 23))).await.unwrap();
    assert_eq!(out.spans(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_loop_hits_the_deadline_and_the_host_carries_on() {
    let m = Metrics::new();
    let out = Arc::new(Capture::default());
    let p = build(
        "wasm",
        "wasm/loop",
        &wasm_yaml(
            test_paths::LOOP,
            "limits: { timeout: 50ms }\non_error: pass\n",
        ),
        &m,
        out.clone(),
    )
    .await
    .unwrap();
    let start = std::time::Instant::now();
    p.consume(encoded(&request(5, 1, 9))).await.unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "deadline not enforced"
    );
    // on_error: pass forwards the batch unchanged.
    assert_eq!(out.spans(), 5);
    assert_eq!(
        counter(
            &m,
            "wasmcol_plugin_errors",
            &[("processor", "wasm/loop"), ("reason", "timeout")]
        ),
        1
    );
    // A second call gets a fresh instance and times out again, not hangs.
    p.consume(encoded(&request(5, 1, 10))).await.unwrap();
    assert_eq!(out.spans(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbounded_allocation_hits_the_memory_cap() {
    let m = Metrics::new();
    let out = Arc::new(Capture::default());
    let p = build(
        "wasm",
        "wasm/alloc",
        &wasm_yaml(
            test_paths::ALLOC,
            "limits: { memory_mib: 16 }\non_error: drop\n",
        ),
        &m,
        out.clone(),
    )
    .await
    .unwrap();
    p.consume(encoded(&request(7, 1, 11))).await.unwrap();
    assert_eq!(out.spans(), 0, "on_error: drop must not forward");
    assert_eq!(
        counter(
            &m,
            "wasmcol_plugin_errors",
            &[("processor", "wasm/alloc"), ("reason", "memory")]
        ),
        1
    );
    assert_eq!(
        counter(
            &m,
            "wasmcol_plugin_dropped_items",
            &[("processor", "wasm/alloc")]
        ),
        7
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_errors_follow_on_error() {
    let m = Metrics::new();
    let out = Arc::new(Capture::default());
    let refuse = build(
        "wasm",
        "wasm/err",
        &wasm_yaml(test_paths::ERROR, ""),
        &m,
        out.clone(),
    )
    .await
    .unwrap();
    let e = refuse
        .consume(encoded(&request(3, 1, 12)))
        .await
        .unwrap_err();
    assert!(e.is_retryable(), "{e}");
    let permanent = build(
        "wasm",
        "wasm/err-permanent",
        &wasm_yaml(test_paths::ERROR, "config: { permanent: true }\n"),
        &m,
        out.clone(),
    )
    .await
    .unwrap();
    let e = permanent
        .consume(encoded(&request(3, 1, 13)))
        .await
        .unwrap_err();
    assert!(!e.is_retryable(), "{e}");
    let pass = build(
        "wasm",
        "wasm/err-pass",
        &wasm_yaml(test_paths::ERROR, "on_error: pass\n"),
        &m,
        out.clone(),
    )
    .await
    .unwrap();
    pass.consume(encoded(&request(3, 1, 14))).await.unwrap();
    assert_eq!(out.spans(), 3);
    assert_eq!(
        counter(
            &m,
            "wasmcol_plugin_errors",
            &[("processor", "wasm/err"), ("reason", "error")]
        ),
        1
    );
    assert_eq!(
        counter(
            &m,
            "wasmcol_plugin_errors",
            &[("processor", "wasm/err-pass"), ("reason", "error")]
        ),
        1
    );
}

/// Acceptance 5: files, environment, sockets and the wall clock are out of reach.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_grants_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret.txt");
    std::fs::write(&secret, "top secret").unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    // SAFETY-free way to make sure the host process has environment to leak.
    assert!(std::env::vars_os().count() > 0);

    let m = Metrics::new();
    let out = Arc::new(Capture::default());
    let p = build(
        "wasm",
        "wasm/sandbox",
        &wasm_yaml(
            test_paths::SANDBOX,
            &format!(
                "config: {{ path: {:?}, port: {port} }}\n",
                secret.display().to_string()
            ),
        ),
        &m,
        out.clone(),
    )
    .await
    .unwrap();
    p.consume(encoded(&request(1, 1, 15))).await.unwrap();
    let got = out.traces().remove(0);
    let attrs = &got.resource_spans[0].resource.as_ref().unwrap().attributes;
    let val = |k: &str| {
        attrs
            .iter()
            .find(|a| a.key == k)
            .and_then(|a| a.value.clone())
            .and_then(|v| v.value)
    };
    let file = get(attrs, "sandbox.file").unwrap();
    assert!(file.starts_with("denied"), "file: {file}");
    assert!(!file.contains("top secret"));
    let listing = get(attrs, "sandbox.dir").unwrap();
    assert!(listing.starts_with("denied"), "dir: {listing}");
    assert_eq!(val("sandbox.env"), Some(any_value::Value::IntValue(0)));
    assert_eq!(val("sandbox.args"), Some(any_value::Value::IntValue(0)));
    let socket = get(attrs, "sandbox.socket").unwrap();
    assert!(socket.starts_with("denied"), "socket: {socket}");
    assert!(
        listener.accept().is_err(),
        "the plugin reached the listener"
    );
    assert_eq!(val("sandbox.clock"), Some(any_value::Value::IntValue(0)));
}

/// Acceptance 6: the template plugin runs in a `wasm` processor, with its sha256 checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn template_runs_in_a_wasm_processor_with_sha256() {
    let bytes = std::fs::read(test_paths::TEMPLATE).unwrap();
    let sha = wasmcol_wasm::sha256_hex(&bytes);
    let m = Metrics::new();
    let out = Arc::new(Capture::default());
    let p = build(
        "wasm",
        "wasm/template",
        &wasm_yaml(
            test_paths::TEMPLATE,
            &format!("sha256: {sha}\nconfig: {{ key: team, value: payments }}\n"),
        ),
        &m,
        out.clone(),
    )
    .await
    .unwrap();
    p.consume(encoded(&request(4, 1, 16))).await.unwrap();
    let got = out.traces().remove(0);
    for s in &got.resource_spans[0].scope_spans[0].spans {
        assert_eq!(get(&s.attributes, "team"), Some("payments"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wasm_config_errors_name_their_keys() {
    let m = Metrics::new();
    let next: ConsumerRef = Arc::new(Capture::default());
    let e = build(
        "wasm",
        "wasm/t",
        &wasm_yaml(test_paths::TEMPLATE, "sha256: 00ff\nconfig: { key: k }\n"),
        &m,
        next.clone(),
    )
    .await
    .err()
    .unwrap();
    assert!(
        e.0[0]
            .to_string()
            .starts_with("sha256: \"00ff\" does not match"),
        "{e:?}"
    );
    let e = build(
        "wasm",
        "wasm/t",
        &wasm_yaml(test_paths::TEMPLATE, "config: { key: k, vlaue: x }\n"),
        &m,
        next.clone(),
    )
    .await
    .err()
    .unwrap();
    assert!(
        e.0[0]
            .to_string()
            .starts_with("config.vlaue: unknown field `vlaue`"),
        "{e:?}"
    );
    let e = build(
        "wasm",
        "wasm/t",
        &wasm_yaml(
            test_paths::TEMPLATE,
            "limits: { memory_mib: 0, fuel: 10 }\n",
        ),
        &m,
        next.clone(),
    )
    .await
    .err()
    .unwrap();
    assert!(
        e.0[0]
            .to_string()
            .starts_with("limits.memory_mib: must be between 1 and 1024"),
        "{e:?}"
    );
    let e = build(
        "wasm",
        "wasm/t",
        "path: /nonexistent/x.wasm\n",
        &m,
        next.clone(),
    )
    .await
    .err()
    .unwrap();
    assert!(e.0[0].to_string().starts_with("path: cannot read"), "{e:?}");
    let e = build(
        "wasm",
        "wasm/t",
        &wasm_yaml(test_paths::TEMPLATE, "on_error: explode\n"),
        &m,
        next,
    )
    .await
    .err()
    .unwrap();
    assert!(
        e.0[0]
            .to_string()
            .starts_with("on_error: unknown variant `explode`"),
        "{e:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuel_limit_stops_the_loop() {
    let m = Metrics::new();
    let out = Arc::new(Capture::default());
    let p = build(
        "wasm",
        "wasm/fuel",
        &wasm_yaml(
            test_paths::LOOP,
            "limits: { fuel: 1000000, timeout: 10s }\n",
        ),
        &m,
        out.clone(),
    )
    .await
    .unwrap();
    let start = std::time::Instant::now();
    let e = p.consume(encoded(&request(1, 1, 17))).await.unwrap_err();
    assert!(e.is_retryable());
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "fuel did not stop the loop"
    );
    assert_eq!(
        counter(
            &m,
            "wasmcol_plugin_errors",
            &[("processor", "wasm/fuel"), ("reason", "timeout")]
        ),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compile_cache_is_written_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let opts = RuntimeOptions {
        cache_dir: Some(dir.path().to_path_buf()),
    };
    let bytes = std::fs::read(test_paths::TEMPLATE).unwrap();
    let first = Runtime::new(opts.clone()).unwrap();
    let p = first.load(Bytes::from(bytes.clone()), false).await.unwrap();
    assert_eq!(p.info.name, "template");
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].starts_with(&p.sha256) && files[0].ends_with(".cwasm"));
    // A second runtime (a restart) loads the artifact instead of compiling: corrupting the
    // wasm bytes would not matter if it did not, so check it works and the cache is intact.
    let second = Runtime::new(opts).unwrap();
    let again = second.load(Bytes::from(bytes), false).await.unwrap();
    assert_eq!(again.info.name, "template");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

async fn build_for(
    ty: &str,
    id: &str,
    yaml: &str,
    signal: Signal,
    next: ConsumerRef,
) -> Arc<dyn Processor> {
    let r = registry();
    let Some(Factory::Processor(f)) = r.lookup(Kind::Processor, ty).map(|e| e.factory.clone())
    else {
        panic!("no {ty}")
    };
    let config: serde_yaml::Value = serde_yaml::from_str(yaml).unwrap();
    let p = f
        .create(&ctx(id, &Metrics::new()), &config, signal, next)
        .unwrap();
    p.prepare().await.unwrap();
    p
}

/// The general (per-item) path through the component: hash, extract, from_attribute and an
/// include rule, checked against upstream's documented results.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attributes_general_actions_in_wasm() {
    let out = Arc::new(Capture::default());
    let p = build_for(
        "attributes",
        "attributes/general",
        r#"
actions:
  - key: user.email
    action: hash
  - key: http.url
    pattern: ^(?P<http_protocol>.*):\/\/(?P<http_domain>[^/]*)\/(?P<http_path>.*)$
    action: extract
  - key: copied
    from_attribute: http_protocol
    action: insert
include:
  match_type: regexp
  span_names: ["^GET "]
"#,
        Signal::Traces,
        out.clone(),
    )
    .await;
    let mut req = request(2, 1, 20);
    for s in &mut req.resource_spans[0].scope_spans[0].spans {
        s.attributes.push(kv("user.email", "foo"));
        s.attributes.push(kv("http.url", "https://example.com/a/b"));
    }
    req.resource_spans[0].scope_spans[0].spans[1].name = "POST /x".into();
    p.consume(encoded(&req)).await.unwrap();
    let got = out.traces().remove(0);
    let spans = &got.resource_spans[0].scope_spans[0].spans;
    let a = &spans[0].attributes;
    assert_eq!(
        get(a, "user.email"),
        Some("2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae")
    );
    assert_eq!(get(a, "http_protocol"), Some("https"));
    assert_eq!(get(a, "http_domain"), Some("example.com"));
    assert_eq!(get(a, "http_path"), Some("a/b"));
    assert_eq!(get(a, "copied"), Some("https"));
    // Not included: untouched.
    assert_eq!(get(&spans[1].attributes, "user.email"), Some("foo"));
    assert_eq!(get(&spans[1].attributes, "http_protocol"), None);
}

/// Data points are addressed across the metrics of a scope; only matching metrics change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attributes_on_metric_points_in_wasm() {
    use wasmcol_pdata::proto::metrics::v1::{
        Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, metric,
    };
    use wasmcol_pdata::{ExportMetricsServiceRequest, MetricsBatch};
    let point = || NumberDataPoint {
        attributes: vec![kv("host", "a")],
        ..Default::default()
    };
    let req = ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: None,
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![
                    Metric {
                        name: "http.server.duration".into(),
                        data: Some(metric::Data::Gauge(Gauge {
                            data_points: vec![point(), point()],
                        })),
                        ..Default::default()
                    },
                    Metric {
                        name: "db.calls".into(),
                        data: Some(metric::Data::Sum(Sum {
                            data_points: vec![point()],
                            ..Default::default()
                        })),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }],
            schema_url: String::new(),
        }],
    };
    let out = Arc::new(Capture::default());
    let p = build_for(
        "attributes",
        "attributes/metrics",
        "actions:\n  - {key: tier, value: gold, action: upsert}\ninclude:\n  match_type: regexp\n  metric_names: ['^http\\.']\n",
        Signal::Metrics,
        out.clone(),
    ).await;
    p.consume(Batch::Metrics(
        MetricsBatch::from_encoded(Bytes::from(req.encode_to_vec())).unwrap(),
    ))
    .await
    .unwrap();
    let Batch::Metrics(b) = out.batches.lock()[0].clone() else {
        panic!("not metrics")
    };
    let got = b.to_message().unwrap();
    let metrics = &got.resource_metrics[0].scope_metrics[0].metrics;
    let Some(metric::Data::Gauge(g)) = &metrics[0].data else {
        panic!()
    };
    for p in &g.data_points {
        assert_eq!(get(&p.attributes, "tier"), Some("gold"));
    }
    let Some(metric::Data::Sum(s)) = &metrics[1].data else {
        panic!()
    };
    assert_eq!(get(&s.data_points[0].attributes, "tier"), None);
}

/// Log records: the sampler by trace id keeps all or nothing at 100 % / 0 %, and
/// attributes-by-severity through the component.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_through_wasm_plugins() {
    use wasmcol_pdata::proto::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use wasmcol_pdata::{ExportLogsServiceRequest, LogsBatch};
    let req = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: None,
            scope_logs: vec![ScopeLogs {
                log_records: (0..4u8)
                    .map(|i| LogRecord {
                        severity_text: if i % 2 == 0 { "ERROR" } else { "DEBUG" }.into(),
                        severity_number: if i % 2 == 0 { 17 } else { 5 },
                        trace_id: vec![i + 1; 16],
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            schema_url: String::new(),
        }],
    };
    let batch = || Batch::Logs(LogsBatch::from_encoded(Bytes::from(req.encode_to_vec())).unwrap());
    let out = Arc::new(Capture::default());
    let p = build_for(
        "attributes",
        "attributes/logs",
        "actions:\n  - {key: alert, value: true, action: insert}\ninclude:\n  match_type: strict\n  log_severity_texts: [ERROR]\n",
        Signal::Logs,
        out.clone(),
    ).await;
    p.consume(batch()).await.unwrap();
    let Batch::Logs(b) = out.batches.lock()[0].clone() else {
        panic!()
    };
    let got = b.to_message().unwrap();
    let recs = &got.resource_logs[0].scope_logs[0].log_records;
    let has_alert = |r: &LogRecord| r.attributes.iter().any(|a| a.key == "alert");
    assert_eq!(
        recs.iter().map(has_alert).collect::<Vec<_>>(),
        [true, false, true, false]
    );

    let none = Arc::new(Capture::default());
    let drop_all = build_for(
        "probabilistic_sampler",
        "probabilistic_sampler/none",
        "sampling_percentage: 0\n",
        Signal::Logs,
        none.clone(),
    )
    .await;
    drop_all.consume(batch()).await.unwrap();
    assert_eq!(
        none.batches.lock().len(),
        0,
        "an empty batch must not be forwarded"
    );
    let all = Arc::new(Capture::default());
    let keep_all = build_for(
        "probabilistic_sampler",
        "probabilistic_sampler/all",
        "sampling_percentage: 100\n",
        Signal::Logs,
        all.clone(),
    )
    .await;
    keep_all.consume(batch()).await.unwrap();
    assert_eq!(all.batches.lock()[0].item_count(), 4);
}

/// The runtime owns its epoch thread: after `shutdown` (as on collector shutdown) the thread
/// is joined and calls are refused instead of running with no deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_shutdown_stops_the_epoch_thread_and_refuses_calls() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::new(RuntimeOptions {
        cache_dir: Some(dir.path().to_path_buf()),
    })
    .unwrap();
    let bytes = std::fs::read(test_paths::TEMPLATE).unwrap();
    let plugin = rt.load(Bytes::from(bytes), false).await.unwrap();
    let mut inst = plugin
        .instantiate(&wasmcol_wasm::Limits::default(), "t")
        .await
        .unwrap();
    inst.tick(1).await.unwrap();
    rt.shutdown();
    let e = inst.tick(2).await.unwrap_err();
    assert!(e.to_string().contains("shut down"), "{e}");
}

/// A component built against the released `wasmcol:plugin@0.1.0` (not with the SDK, which
/// targets 0.2.0) still loads and runs; the bundled plugins are 0.2.0 components.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_0_1_0_components_still_load_and_run() {
    let rt = runtime();
    let old = rt
        .load(Bytes::from(std::fs::read(test_paths::V010).unwrap()), false)
        .await
        .unwrap();
    assert_eq!(old.contract(), "0.1.0");
    assert_eq!(old.info.name, "test_v010");
    let new = rt
        .load(Bytes::from_static(wasmcol_wasm::bundled::ATTRIBUTES), false)
        .await
        .unwrap();
    assert_eq!(new.contract(), "0.2.0");
    let m = Metrics::new();
    let out = Arc::new(Capture::default());
    let p = build(
        "wasm",
        "wasm/old",
        &wasm_yaml(test_paths::V010, ""),
        &m,
        out.clone(),
    )
    .await
    .unwrap();
    p.consume(encoded(&request(3, 1, 1))).await.unwrap();
    let got = out.traces();
    let spans = &got[0].resource_spans[0].scope_spans[0].spans;
    assert_eq!(spans.len(), 3);
    assert!(
        spans
            .iter()
            .all(|s| get(&s.attributes, "contract") == Some("0.1.0"))
    );
}

fn status_span(trace: u8, span: u8, code: i32) -> Span {
    Span {
        trace_id: vec![trace; 16],
        span_id: vec![span; 8],
        status: (code != 0).then(|| wasmcol_pdata::proto::trace::v1::Status {
            code,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn spans_of(spans: Vec<Span>) -> Batch {
    encoded(&ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    })
}

fn trace_ids(out: &Capture) -> Vec<(u8, u8)> {
    out.traces()
        .iter()
        .flat_map(|r| r.resource_spans.iter())
        .flat_map(|r| r.scope_spans.iter())
        .flat_map(|s| s.spans.iter())
        .map(|s| (s.trace_id[0], s.span_id[0]))
        .collect()
}

/// `tail_sampling` through its factory: the sender is answered once spans are held; after
/// `decision_wait` the ERROR trace goes on whole and the other is dropped; late spans follow
/// the decision while the trace is remembered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_sampling_holds_spans_and_forwards_decided_traces_whole() {
    let m = Metrics::new();
    let out = Arc::new(Capture::default());
    let p = build(
        "tail_sampling",
        "tail_sampling",
        "decision_wait: 100ms\npolicies:\n  - {name: errors, type: status_code, status_code: {status_codes: [ERROR]}}\n",
        &m,
        out.clone(),
    )
    .await
    .unwrap();
    assert!(p.answers_on_enqueue(), "held spans are answered once held");
    p.start().await.unwrap();
    p.consume(spans_of(vec![status_span(1, 1, 0), status_span(2, 1, 0)]))
        .await
        .unwrap();
    p.consume(spans_of(vec![status_span(1, 2, 2), status_span(2, 2, 1)]))
        .await
        .unwrap();
    assert!(
        out.batches.lock().is_empty(),
        "nothing leaves before decision_wait"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while out.spans() < 2 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut got = trace_ids(&out);
    got.sort();
    assert_eq!(got, vec![(1, 1), (1, 2)]);
    // Late spans: the sampled trace's goes on at once, the dropped trace's is dropped.
    p.consume(spans_of(vec![status_span(1, 3, 0), status_span(2, 3, 0)]))
        .await
        .unwrap();
    assert_eq!(trace_ids(&out).last(), Some(&(1, 3)));
    assert_eq!(out.spans(), 3);
    let global = |s| {
        counter(
            &m,
            "otelcol_processor_tail_sampling_global_count_traces_sampled",
            &[("processor", "tail_sampling"), ("sampled", s)],
        )
    };
    assert_eq!((global("true"), global("false")), (1, 1));
    // Upstream's histograms: two decisions, two late parts.
    let text = m.render();
    let count = |h: &str| {
        let line =
            format!("otelcol_processor_tail_sampling_{h}_count{{processor=\"tail_sampling\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(line.as_str()))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("{h} missing:\n{text}"))
    };
    assert_eq!(count("sampling_decision_latency"), 2);
    assert_eq!(count("sampling_trace_removal_age"), 2);
    assert_eq!(count("sampling_late_span_age"), 2);
    assert!(count("sampling_decision_timer_latency") >= 1);
    p.shutdown().await.unwrap();
}

/// A decision that traps loses nothing silently: under `refuse` it is tried on a fresh
/// instance and, failing again, the trace is forwarded; under `drop` it is dropped and
/// counted. Both are counted as plugin errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trapping_decision_forwards_under_refuse_and_counts_under_drop() {
    for (on_error, forwarded) in [("refuse", 2usize), ("drop", 0)] {
        let m = Metrics::new();
        let out = Arc::new(Capture::default());
        let p = build(
            "wasm",
            "wasm/trap",
            &wasm_yaml(
                test_paths::TRAP,
                &format!("config: {{ every: 1, hold: true }}\non_error: {on_error}\n"),
            ),
            &m,
            out.clone(),
        )
        .await
        .unwrap();
        p.start().await.unwrap();
        p.consume(spans_of(vec![status_span(7, 1, 0), status_span(7, 2, 0)]))
            .await
            .unwrap();
        let traps = || {
            counter(
                &m,
                "wasmcol_plugin_errors",
                &[("processor", "wasm/trap"), ("reason", "trap")],
            )
        };
        let dropped = || {
            counter(
                &m,
                "wasmcol_plugin_dropped_items",
                &[("processor", "wasm/trap")],
            )
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while out.spans() + (dropped() as usize) < 2 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        p.shutdown().await.unwrap();
        assert_eq!(out.spans(), forwarded, "on_error: {on_error}");
        assert_eq!(dropped(), (2 - forwarded) as u64, "on_error: {on_error}");
        assert!(traps() >= 1);
    }
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or(0)
        * 4096
}

/// The measurement that placed tail sampling's buffer in the host (run by hand, in release
/// for meaningful times: `cargo test --release --workspace --test plugins -- --ignored
/// --nocapture buffer_placement`). 50,000 traces of 10 spans, in batches of 1,000 spans, go
/// (a) into the host's per-trace buffer (`tail_sampling`, decision_wait 1h) and (b) into a
/// plugin that keeps them itself (`test_keep`: one `to-otlp` copy per batch and nothing
/// else, the least plugin-side buffering costs), under the default 128 MiB and under the
/// 1024 MiB maximum. Prints time per span, memory growth and the plugin's memory failures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn buffer_placement_measurement() {
    let batches: Vec<Batch> = (0..500u64)
        .map(|b| encoded(&request(1000, 10, b)))
        .collect();
    let bytes: usize = batches.iter().map(Batch::encoded_len).sum();
    println!(
        "input: 500,000 spans, {bytes} bytes encoded ({} B/span)",
        bytes / 500_000
    );
    let m = Metrics::new();
    let r0 = rss_bytes();
    let t0 = std::time::Instant::now();
    let p = build(
        "tail_sampling",
        "tail_sampling",
        "decision_wait: 1h\nnum_traces: 50000\npolicies: [{name: all, type: always_sample}]\n",
        &m,
        Arc::new(Capture::default()),
    )
    .await
    .unwrap();
    for b in batches.iter().cloned() {
        p.consume(b).await.unwrap();
    }
    let took = t0.elapsed();
    println!(
        "host buffer: {:.2} µs/span, RSS +{} MiB, dropped_too_early {}",
        took.as_secs_f64() * 1e6 / 500_000.0,
        rss_bytes().saturating_sub(r0) >> 20,
        counter(
            &m,
            "otelcol_processor_tail_sampling_sampling_trace_dropped_too_early",
            &[("processor", "tail_sampling")]
        )
    );
    drop(p);
    for mib in [128u32, 1024] {
        let m = Metrics::new();
        let r0 = rss_bytes();
        let p = build(
            "wasm",
            "wasm/keep",
            &wasm_yaml(
                test_paths::KEEP,
                &format!("limits: {{memory_mib: {mib}}}\non_error: drop\n"),
            ),
            &m,
            Arc::new(Capture::default()),
        )
        .await
        .unwrap();
        let t0 = std::time::Instant::now();
        for b in batches.iter().cloned() {
            p.consume(b).await.unwrap();
        }
        let took = t0.elapsed();
        println!(
            "plugin buffer (memory_mib {mib}): {:.2} µs/span, RSS +{} MiB, batches failed on memory {}, spans lost {}",
            took.as_secs_f64() * 1e6 / 500_000.0,
            rss_bytes().saturating_sub(r0) >> 20,
            counter(
                &m,
                "wasmcol_plugin_errors",
                &[("processor", "wasm/keep"), ("reason", "memory")]
            ),
            counter(
                &m,
                "wasmcol_plugin_dropped_items",
                &[("processor", "wasm/keep")]
            ),
        );
    }
}

fn int_attr(attrs: &[KeyValue], k: &str) -> Option<i64> {
    attrs
        .iter()
        .find(|a| a.key == k)
        .and_then(|a| match &a.value {
            Some(AnyValue {
                value: Some(any_value::Value::IntValue(i)),
            }) => Some(*i),
            _ => None,
        })
}

/// What contract 0.2.0 adds to batches, through a real component: `remove-attribute-all`
/// takes the key off every span in one call, and the request context of a batch reads as
/// what the batch carries (nothing for a batch without context, every value of the key
/// otherwise, matched without case), and the forwarded batch keeps its context.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_0_2_0_removes_everywhere_and_reads_the_request_context() {
    let m = Metrics::new();
    let out = Arc::new(Capture::default());
    let p = build(
        "wasm",
        "wasm/v020",
        &wasm_yaml(
            test_paths::V020,
            "config: { key: http.method, context: x-tenant }\n",
        ),
        &m,
        out.clone(),
    )
    .await
    .unwrap();
    p.consume(encoded(&request(4, 1, 3))).await.unwrap();
    let got = out.traces();
    let spans = &got[0].resource_spans[0].scope_spans[0].spans;
    assert_eq!(spans.len(), 4);
    for s in spans {
        assert_eq!(get(&s.attributes, "http.method"), None);
        assert_eq!(int_attr(&s.attributes, "removed"), Some(4));
        assert_eq!(int_attr(&s.attributes, "context.values"), Some(0));
    }
    let context =
        wasmcol_pdata::RequestContext::new([("X-Tenant", vec!["a".to_owned(), "b".to_owned()])]);
    p.consume(encoded(&request(2, 1, 3)).with_context(context.clone()))
        .await
        .unwrap();
    let got = out.traces();
    for s in &got[1].resource_spans[0].scope_spans[0].spans {
        assert_eq!(int_attr(&s.attributes, "context.values"), Some(2));
    }
    assert_eq!(out.batches.lock()[1].context(), &context);
}
