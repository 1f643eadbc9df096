//! WebAssembly plugins against the same logic compiled into the host.
//!
//! The pipeline is the seed's: `resource/region` (upsert `deployment.region` on every
//! resource) then `attributes/cross-region` (insert `telemetry.source` on every span), ending
//! in the protobuf encode an exporter does. Native: decode → mutate → encode. WASM: the
//! bundled plugins through their processors (lazy decode, host handles) → encode. Inputs are
//! realistic batches (10 attributes and 2 events per span) of 100 and 1000 spans, arriving as
//! wire bytes as they do from the receiver.
//!
//! Scenarios run interleaved in rounds on one thread; the report gives medians per batch and
//! the median of the per-round WASM/native ratios. Also: the fixed cost of one plugin call
//! (an empty batch), instantiation, and loading a plugin with a cold and a warm compile cache.
//!
//! With `WASMCOL_BENCH_PY_PLUGIN` naming the Python region tagger built from
//! `plugins/examples/python-region`, the same resource tag through it and through the bundled
//! Rust `resource` plugin is compared too (per-call cost of a guest language).
//!
//! ```text
//! cargo bench -p wasmcol-benches --bench plugins            # 11 rounds
//! cargo bench -p wasmcol-benches --bench plugins -- 5       # 5 rounds
//! WASMCOL_BENCH_PY_PLUGIN=/tmp/py_region.wasm cargo bench -p wasmcol-benches --bench plugins
//! ```

#![forbid(unsafe_code)]
// A benchmark harness: a setup that fails aborts the run, like a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use prost::Message;
use wasmcol_config::{ComponentId, Kind};
use wasmcol_core::registry::Factory;
use wasmcol_core::{
    Batch, ConsumeError, Consumer, ConsumerRef, CreateContext, Extensions, Metrics, Processor,
    Registry, Signal, Tasks,
};
use wasmcol_pdata::proto::common::v1::{AnyValue, KeyValue, any_value};
use wasmcol_pdata::{ExportTraceServiceRequest, TracesBatch};
use wasmcol_wasm::{Limits, Runtime, RuntimeOptions};

/// The exporter's side: the wire form of what arrives.
struct Encode;

#[async_trait]
impl Consumer for Encode {
    async fn consume(&self, batch: Batch) -> Result<(), ConsumeError> {
        std::hint::black_box(batch.encoded());
        Ok(())
    }
}

/// A built and prepared processor (the plugin compiled and configured).
fn processor(
    rt: &tokio::runtime::Runtime,
    r: &Registry,
    ty: &str,
    id: &str,
    yaml: &str,
    next: ConsumerRef,
) -> Arc<dyn Processor> {
    let Some(Factory::Processor(f)) = r.lookup(Kind::Processor, ty).map(|e| e.factory.clone())
    else {
        panic!("{ty} is not registered");
    };
    let ctx = CreateContext {
        id: id.parse::<ComponentId>().expect("id"),
        kind: Kind::Processor,
        metrics: Metrics::new(),
        tasks: Tasks::new(),
        extensions: Extensions::default(),
        status: Default::default(),
    };
    let config: serde_yaml::Value = serde_yaml::from_str(yaml).expect("yaml");
    let p = match f.create(&ctx, &config, Signal::Traces, next) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    };
    if let Err(e) = rt.block_on(p.prepare()) {
        panic!("{e}");
    }
    p
}

fn sv(v: &str) -> Option<AnyValue> {
    Some(AnyValue {
        value: Some(any_value::Value::StringValue(v.into())),
    })
}

/// The same two processors, natively: decode, upsert / insert, encode.
fn native(bytes: &Bytes) -> Bytes {
    let mut req = ExportTraceServiceRequest::decode(bytes.clone()).expect("decode");
    upsert_region(&mut req);
    for rs in &mut req.resource_spans {
        for ss in &mut rs.scope_spans {
            for s in &mut ss.spans {
                if !s.attributes.iter().any(|a| a.key == "telemetry.source") {
                    s.attributes.push(KeyValue {
                        key: "telemetry.source".into(),
                        value: sv("cross-region-forward"),
                        ..Default::default()
                    });
                }
            }
        }
    }
    Bytes::from(req.encode_to_vec())
}

/// The resource tag natively: the whole request is decoded and encoded again.
fn native_resource_only(bytes: &Bytes) -> Bytes {
    let mut req = ExportTraceServiceRequest::decode(bytes.clone()).expect("decode");
    upsert_region(&mut req);
    Bytes::from(req.encode_to_vec())
}

/// `resource/region` natively: upsert `deployment.region` on every resource.
fn upsert_region(req: &mut ExportTraceServiceRequest) {
    for rs in &mut req.resource_spans {
        let attrs = &mut rs.resource.get_or_insert_with(Default::default).attributes;
        match attrs.iter_mut().find(|a| a.key == "deployment.region") {
            Some(a) => a.value = sv("us-east-1"),
            None => attrs.push(KeyValue {
                key: "deployment.region".into(),
                value: sv("us-east-1"),
                ..Default::default()
            }),
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Runs `f` repeatedly for about `budget`; returns ns per call.
fn per_op(budget: Duration, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget || n < 3 {
        f();
        n += 1;
    }
    start.elapsed().as_nanos() as f64 / n as f64
}

/// Feeds `batches` (cycled, each already through the receiver's validating scan, as on the
/// native path) to `p` for about `budget`; returns ns per call.
fn per_call(
    rt: &tokio::runtime::Runtime,
    p: &Arc<dyn Processor>,
    batches: &[Batch],
    budget: Duration,
) -> f64 {
    rt.block_on(async {
        let start = Instant::now();
        let mut k = 0usize;
        while start.elapsed() < budget || k < 3 {
            p.consume(batches[k % batches.len()].clone())
                .await
                .expect("consume");
            k += 1;
        }
        start.elapsed().as_nanos() as f64 / k as f64
    })
}

fn fmt_ns(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.1} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

fn main() {
    let rounds: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(11);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let runtime = Arc::new(Runtime::new(RuntimeOptions::from_env()).expect("runtime"));
    let mut r = Registry::new();
    wasmcol_wasm::register(&mut r, runtime.clone());
    let sink: ConsumerRef = Arc::new(Encode);
    let attributes = processor(
        &rt,
        &r,
        "attributes",
        "attributes/cross-region",
        "actions:\n  - key: telemetry.source\n    value: cross-region-forward\n    action: insert\n",
        sink.clone(),
    );
    let resource = processor(
        &rt,
        &r,
        "resource",
        "resource/region",
        "attributes:\n  - key: deployment.region\n    value: us-east-1\n    action: upsert\n",
        attributes.clone(),
    );
    // The same pipeline with `upsert` in the attributes plugin: upsert is not spliced into
    // the span bytes, so the host decodes and re-encodes the spans as the native code does.
    let attributes_upsert = processor(
        &rt,
        &r,
        "attributes",
        "attributes/upsert",
        "actions:\n  - key: telemetry.source\n    value: cross-region-forward\n    action: upsert\n",
        sink.clone(),
    );
    let resource_then_upsert = processor(
        &rt,
        &r,
        "resource",
        "resource/region-upsert",
        "attributes:\n  - key: deployment.region\n    value: us-east-1\n    action: upsert\n",
        attributes_upsert,
    );
    let resource_alone = processor(
        &rt,
        &r,
        "resource",
        "resource/alone",
        "attributes:\n  - key: deployment.region\n    value: us-east-1\n    action: upsert\n",
        Arc::new(Encode),
    );

    println!("plugins vs native, {rounds} interleaved rounds, single thread");
    println!(
        "| N spans | native decode+mutate+encode | WASM, insert spliced (no span decode) | ratio | WASM, upsert (spans decoded + encoded) | ratio | spans/s (upsert) |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for n in [100usize, 1000] {
        let inputs: Vec<Bytes> = (0..16)
            .map(|i| Bytes::from(wasmcol_benches::traces_request(i, n).encode_to_vec()))
            .collect();
        let received: Vec<Batch> = inputs
            .iter()
            .map(|b| Batch::Traces(TracesBatch::from_encoded(b.clone()).expect("valid")))
            .collect();
        // Same output check: both produce the same request.
        let want = ExportTraceServiceRequest::decode(native(&inputs[0])).expect("decode");
        let out = Arc::new(Capture::default());
        let a = processor(
            &rt,
            &r,
            "attributes",
            "attributes/check",
            "actions:\n  - key: telemetry.source\n    value: cross-region-forward\n    action: insert\n",
            out.clone(),
        );
        let p = processor(
            &rt,
            &r,
            "resource",
            "resource/check",
            "attributes:\n  - key: deployment.region\n    value: us-east-1\n    action: upsert\n",
            a,
        );
        let got = rt.block_on(async {
            p.consume(Batch::Traces(
                TracesBatch::from_encoded(inputs[0].clone()).expect("valid"),
            ))
            .await
            .expect("consume");
            out.take()
        });
        assert_eq!(got, want, "WASM and native outputs differ");

        let budget = Duration::from_millis(if n >= 1000 { 150 } else { 60 });
        let run = |p: &Arc<dyn Processor>| per_call(&rt, p, &received, budget);
        let (mut nat, mut wasm, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
        let (mut up, mut up_ratio) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            let mut i = 0;
            let a = per_op(budget, || {
                std::hint::black_box(native(&inputs[i % inputs.len()]));
                i += 1;
            });
            let b = run(&resource);
            let c = run(&resource_then_upsert);
            nat.push(a);
            wasm.push(b);
            ratio.push(b / a);
            up.push(c);
            up_ratio.push(c / a);
        }
        let u = median(up);
        println!(
            "| {n} | {} | {} | {:.2}x | {} | {:.2}x | {:.0} |",
            fmt_ns(median(nat)),
            fmt_ns(median(wasm)),
            median(ratio),
            fmt_ns(u),
            median(up_ratio),
            n as f64 / (u / 1e9)
        );
    }

    // The resource tag alone: natively that still means decoding every span; the plugin host
    // decodes only the resource level (lazy view) and copies the span bytes through.
    println!("\nresource tag only (upsert deployment.region), same {rounds} rounds");
    println!(
        "| N spans | native decode+mutate+encode | WASM resource plugin (lazy) | WASM/native |"
    );
    println!("|---:|---:|---:|---:|");
    for n in [100usize, 1000] {
        let inputs: Vec<Bytes> = (0..16)
            .map(|i| Bytes::from(wasmcol_benches::traces_request(i, n).encode_to_vec()))
            .collect();
        let received: Vec<Batch> = inputs
            .iter()
            .map(|b| Batch::Traces(TracesBatch::from_encoded(b.clone()).expect("valid")))
            .collect();
        let budget = Duration::from_millis(if n >= 1000 { 150 } else { 60 });
        let (mut nat, mut wasm, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            let mut i = 0;
            let a = per_op(budget, || {
                std::hint::black_box(native_resource_only(&inputs[i % inputs.len()]));
                i += 1;
            });
            let b = per_call(&rt, &resource_alone, &received, budget);
            nat.push(a);
            wasm.push(b);
            ratio.push(b / a);
        }
        println!(
            "| {n} | {} | {} | {:.2}x |",
            fmt_ns(median(nat)),
            fmt_ns(median(wasm)),
            median(ratio)
        );
    }

    // Fixed cost of one call: an empty request (one resource, no spans) through the resource
    // plugin (shallow parse + one host call + re-encode) vs the native decode/encode of it.
    let empty = Bytes::from(wasmcol_benches::traces_request(1, 0).encode_to_vec());
    let received = [Batch::Traces(
        TracesBatch::from_encoded(empty.clone()).expect("valid"),
    )];
    let (mut nat, mut wasm) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        nat.push(per_op(Duration::from_millis(30), || {
            std::hint::black_box(native(&empty));
        }));
        wasm.push(per_call(
            &rt,
            &resource_alone,
            &received,
            Duration::from_millis(30),
        ));
    }
    println!(
        "\nper-call overhead (resource plugin, 0 spans): WASM {} vs native {}",
        fmt_ns(median(wasm)),
        fmt_ns(median(nat))
    );

    // Instantiation from InstancePre (what replacing a trapped instance costs).
    let plugin = rt
        .block_on(runtime.load(Bytes::from_static(wasmcol_wasm::bundled::ATTRIBUTES), false))
        .expect("load");
    let inst = instantiate_median(&rt, &plugin, 200);
    println!(
        "instantiate (InstancePre, {} allocator): {}",
        if runtime.pooling() {
            "pooling"
        } else {
            "on-demand"
        },
        fmt_ns(inst)
    );

    // Compile cache: the first start compiles and writes the artifact, a second start with
    // the same cache directory only loads it.
    let (mut cold, mut warm) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        let dir = tempfile::tempdir().expect("tempdir");
        let opts = RuntimeOptions {
            cache_dir: Some(dir.path().to_path_buf()),
        };
        let t = Instant::now();
        let rt1 = Runtime::new(opts.clone()).expect("runtime");
        rt.block_on(rt1.load(Bytes::from_static(wasmcol_wasm::bundled::ATTRIBUTES), false))
            .expect("load");
        rt.block_on(rt1.load(Bytes::from_static(wasmcol_wasm::bundled::RESOURCE), false))
            .expect("load");
        cold.push(t.elapsed().as_nanos() as f64);
        let t = Instant::now();
        let rt2 = Runtime::new(opts).expect("runtime");
        rt.block_on(rt2.load(Bytes::from_static(wasmcol_wasm::bundled::ATTRIBUTES), false))
            .expect("load");
        rt.block_on(rt2.load(Bytes::from_static(wasmcol_wasm::bundled::RESOURCE), false))
            .expect("load");
        warm.push(t.elapsed().as_nanos() as f64);
    }
    println!(
        "start with attributes + resource plugins: first start (compile + cache write) {}, second start (cache hit) {}",
        fmt_ns(median(cold)),
        fmt_ns(median(warm))
    );

    match std::env::var("WASMCOL_BENCH_PY_PLUGIN") {
        Ok(path) => python_vs_rust(&rt, &r, &resource_alone, &path, rounds),
        Err(_) => println!(
            "\n(Python plugin skipped: set WASMCOL_BENCH_PY_PLUGIN to a build of \
             plugins/examples/python-region)"
        ),
    }
}

/// Median time to instantiate `plugin` from its `InstancePre`, over `n` instances.
fn instantiate_median(
    rt: &tokio::runtime::Runtime,
    plugin: &wasmcol_wasm::Plugin,
    n: usize,
) -> f64 {
    rt.block_on(async {
        let mut v = Vec::new();
        for _ in 0..n {
            let t = Instant::now();
            let i = plugin
                .instantiate(&Limits::default(), "bench")
                .await
                .expect("instantiate");
            v.push(t.elapsed().as_nanos() as f64);
            drop(i);
        }
        median(v)
    })
}

/// The resource tag (upsert `deployment.region`, one bulk host call) through the Python
/// plugin and through the bundled Rust `resource` plugin, interleaved: time per call for 0,
/// 100 and 1000 spans, and what instantiating each costs.
fn python_vs_rust(
    rt: &tokio::runtime::Runtime,
    r: &Registry,
    rust: &Arc<dyn Processor>,
    path: &str,
    rounds: usize,
) {
    let python = processor(
        rt,
        r,
        "wasm",
        "wasm/py-region",
        &format!("path: {path}\nconfig: {{region: us-east-1}}\nwatch_interval: 0s\n"),
        Arc::new(Encode),
    );
    println!("\nregion tag, Python (componentize-py) vs Rust plugin, {rounds} interleaved rounds");
    println!("| N spans | Rust `resource` plugin | Python plugin | Python/Rust |");
    println!("|---:|---:|---:|---:|");
    for n in [0usize, 100, 1000] {
        let bytes = Bytes::from(wasmcol_benches::traces_request(1, n).encode_to_vec());
        let batch = [Batch::Traces(
            TracesBatch::from_encoded(bytes).expect("valid"),
        )];
        let budget = Duration::from_millis(if n >= 1000 { 150 } else { 60 });
        let (mut rs, mut py, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            let a = per_call(rt, rust, &batch, budget);
            let b = per_call(rt, &python, &batch, budget);
            rs.push(a);
            py.push(b);
            ratio.push(b / a);
        }
        println!(
            "| {n} | {} | {} | {:.2}x |",
            fmt_ns(median(rs)),
            fmt_ns(median(py)),
            median(ratio)
        );
    }
    let bytes = Bytes::from(std::fs::read(path).expect("read the Python plugin"));
    let size = bytes.len();
    let runtime = Runtime::new(RuntimeOptions::from_env()).expect("runtime");
    let plugin = rt.block_on(runtime.load(bytes, false)).expect("load");
    let inst = instantiate_median(rt, &plugin, 20);
    println!(
        "Python plugin: {size} bytes, instantiate {} (a Rust plugin: see above)",
        fmt_ns(inst)
    );
}

/// Collects the decoded output of a pipeline, for the equality check.
#[derive(Default)]
struct Capture(parking_lot::Mutex<Option<ExportTraceServiceRequest>>);

impl Capture {
    fn take(&self) -> ExportTraceServiceRequest {
        self.0.lock().take().expect("nothing arrived")
    }
}

#[async_trait]
impl Consumer for Capture {
    async fn consume(&self, batch: Batch) -> Result<(), ConsumeError> {
        if let Batch::Traces(t) = batch {
            *self.0.lock() = Some(
                t.to_message()
                    .map_err(|e| ConsumeError::permanent(e.to_string()))?,
            );
        }
        Ok(())
    }
}
