//! Sending-queue benchmark: memory vs persistent (fsync off / on) in one run.
//!
//! For each queue kind: enqueue N requests from concurrent producers while the backend is
//! held (spans/s, MB/s, fsyncs/s), then release the backend and drain (spans/s, MB/s).
//! Then the backlog case: fill a persistent queue with ≥ `--backlog-mib` of requests (the
//! ingest rate), stop, start again (so every record is read back from disk, not from the
//! in-memory cache) and drain it (the drain rate), and report drain / ingest.
//!
//! The backend is an in-process `Sender` that accepts immediately, so the figures are the
//! queue's, not a network's. Run (release, not part of the tests):
//!
//! ```text
//! cargo run --release -p wasmcol-benches --bin queue -- --requests 4000 --backlog-mib 1024
//! ```

#![forbid(unsafe_code)]

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use tokio::sync::Notify;
use wasmcol_config::exporterhelper::{HelperConfig, QueueConfig, RetryConfig};
use wasmcol_config::{ComponentId, GoDuration, Kind, Value};
use wasmcol_core::{
    Batch, ChainBuilder, ConsumeError, CreateContext, Exporter, ExporterParts, Extension,
    ExtensionFactory, Extensions, Lifecycle, Metrics, Sender, Signal, Tasks,
};

/// Holds every attempt until opened, then accepts and counts.
struct GateSender {
    open: AtomicBool,
    gate: Notify,
    spans: AtomicU64,
    bytes: AtomicU64,
    progress: Notify,
}

#[async_trait]
impl Lifecycle for GateSender {}

#[async_trait]
impl Sender for GateSender {
    async fn send(&self, batch: Batch) -> Result<(), ConsumeError> {
        loop {
            let n = self.gate.notified();
            tokio::pin!(n);
            n.as_mut().enable();
            if self.open.load(Ordering::Acquire) {
                break;
            }
            n.await;
        }
        self.spans
            .fetch_add(batch.item_count() as u64, Ordering::Relaxed);
        self.bytes
            .fetch_add(batch.encoded_len() as u64, Ordering::Relaxed);
        self.progress.notify_waiters();
        Ok(())
    }
}

impl GateSender {
    fn new() -> Arc<Self> {
        Arc::new(GateSender {
            open: AtomicBool::new(false),
            gate: Notify::new(),
            spans: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            progress: Notify::new(),
        })
    }
    fn open(&self) {
        self.open.store(true, Ordering::Release);
        self.gate.notify_waiters();
    }
    async fn wait_spans(&self, n: u64, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let p = self.progress.notified();
            tokio::pin!(p);
            p.as_mut().enable();
            if self.spans.load(Ordering::Relaxed) >= n {
                return true;
            }
            if tokio::time::timeout_at(deadline, p).await.is_err() {
                return self.spans.load(Ordering::Relaxed) >= n;
            }
        }
    }
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

/// A realistic request: `spans` spans with 10 attributes each.
fn request(seed: u64, spans: u64) -> Bytes {
    let req = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", "checkout"), kv("host.name", "node-17")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: (0..spans)
                    .map(|i| Span {
                        trace_id: [seed.to_be_bytes(), i.to_be_bytes()].concat(),
                        span_id: (seed * 1_000_000 + i).to_be_bytes().to_vec(),
                        name: format!("GET /api/v1/items/{i}"),
                        start_time_unix_nano: 1_700_000_000_000_000_000 + i,
                        end_time_unix_nano: 1_700_000_000_100_000_000 + i,
                        attributes: (0..10)
                            .map(|a| kv(&format!("attr.key.{a}"), &format!("value-{seed}-{i}-{a}")))
                            .collect(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    Bytes::from(req.encode_to_vec())
}

fn ctx(kind: Kind, id: &str, metrics: &Metrics, ext: Extensions) -> anyhow::Result<CreateContext> {
    Ok(CreateContext {
        id: id.parse::<ComponentId>().map_err(anyhow::Error::msg)?,
        kind,
        metrics: metrics.clone(),
        tasks: Tasks::new(),
        extensions: ext,
        status: Default::default(),
    })
}

struct Setup {
    exporter: Arc<dyn Exporter>,
    storage: Option<Arc<dyn Extension>>,
    metrics: Metrics,
}

async fn setup(dir: Option<(&Path, bool)>, sender: Arc<GateSender>) -> anyhow::Result<Setup> {
    let metrics = Metrics::new();
    let mut ext = indexmap::IndexMap::new();
    let mut storage = None;
    let mut queue = QueueConfig {
        queue_size: 10_000_000,
        num_consumers: 10,
        ..QueueConfig::default()
    };
    if let Some((dir, fsync)) = dir {
        let v: Value = serde_yaml::from_str(&format!(
            "directory: {}\ncreate_directory: true\nfsync: {fsync}\n",
            dir.display()
        ))?;
        let s = wasmcol_delivery::FileStorageFactory
            .create(
                &ctx(
                    Kind::Extension,
                    "file_storage",
                    &metrics,
                    Extensions::default(),
                )?,
                &v,
            )
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        s.start().await.map_err(|e| anyhow::anyhow!("{e}"))?;
        ext.insert(
            "file_storage"
                .parse::<ComponentId>()
                .map_err(anyhow::Error::msg)?,
            s.clone(),
        );
        storage = Some(s);
        queue.storage = Some("file_storage".parse().map_err(anyhow::Error::msg)?);
    }
    let c = ctx(Kind::Exporter, "otlp/bench", &metrics, Extensions::new(ext))?;
    let exporter = wasmcol_delivery::DeliveryChain
        .build(
            &c,
            Signal::Traces,
            ExporterParts {
                sender,
                helper: HelperConfig {
                    timeout: Some(GoDuration::secs(60)),
                    retry: RetryConfig::default(),
                    queue,
                },
            },
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    exporter.start().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(Setup {
        exporter,
        storage,
        metrics,
    })
}

impl Setup {
    async fn stop(self) -> anyhow::Result<()> {
        self.exporter
            .shutdown()
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        if let Some(s) = self.storage {
            s.shutdown().await.map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        Ok(())
    }
    fn fsyncs(&self) -> u64 {
        self.metrics
            .counter_value(
                "wasmcol_file_storage_fsyncs",
                &[("extension", "file_storage")],
            )
            .unwrap_or(0)
    }
    fn commits(&self) -> u64 {
        self.metrics
            .counter_value(
                "wasmcol_file_storage_commits",
                &[("extension", "file_storage")],
            )
            .unwrap_or(0)
    }
}

/// Enqueues `reqs` from `producers` concurrent tasks; returns the elapsed time.
async fn enqueue(
    exporter: &Arc<dyn Exporter>,
    reqs: &Arc<Vec<Bytes>>,
    producers: usize,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut joins = Vec::new();
    for p in 0..producers {
        let e = exporter.clone();
        let reqs = reqs.clone();
        joins.push(tokio::spawn(async move {
            for r in reqs.iter().skip(p).step_by(producers) {
                let b =
                    Batch::from_encoded(Signal::Traces, r.clone()).map_err(|e| e.to_string())?;
                e.consume(b).await.map_err(|e| e.to_string())?;
            }
            Ok::<_, String>(())
        }));
    }
    for j in joins {
        j.await?.map_err(anyhow::Error::msg)?;
    }
    Ok(started.elapsed())
}

fn rate(spans: u64, bytes: u64, d: Duration) -> String {
    let s = d.as_secs_f64().max(1e-9);
    format!(
        "{:>10.0} spans/s {:>8.1} MB/s",
        spans as f64 / s,
        bytes as f64 / s / 1e6
    )
}

#[derive(Clone, Copy)]
struct Args {
    requests: usize,
    spans: u64,
    producers: usize,
    backlog_mib: u64,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut a = Args {
        requests: 4000,
        spans: 100,
        producers: 8,
        backlog_mib: 1024,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it
            .next()
            .ok_or_else(|| anyhow::anyhow!("{k} needs a value"))?;
        match k.as_str() {
            "--requests" => a.requests = v.parse()?,
            "--spans" => a.spans = v.parse()?,
            "--producers" => a.producers = v.parse()?,
            "--backlog-mib" => a.backlog_mib = v.parse()?,
            other => anyhow::bail!("unknown argument {other}"),
        }
    }
    Ok(a)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let reqs: Arc<Vec<Bytes>> = Arc::new(
        (0..args.requests as u64)
            .map(|i| request(i, args.spans))
            .collect(),
    );
    let total_bytes: u64 = reqs.iter().map(|r| r.len() as u64).sum();
    let total_spans = args.requests as u64 * args.spans;
    println!(
        "queue bench: {} requests x {} spans ({:.1} KB each, {:.1} MB total), {} producers, 10 consumers, in-process backend",
        args.requests,
        args.spans,
        total_bytes as f64 / args.requests as f64 / 1e3,
        total_bytes as f64 / 1e6,
        args.producers
    );
    let root = tempfile::Builder::new()
        .prefix("wasmcol-queue-bench")
        .tempdir()?;
    for (label, dir) in [
        ("memory", None),
        ("persistent fsync=false", Some(false)),
        ("persistent fsync=true", Some(true)),
    ] {
        let path = root.path().join(label.replace([' ', '='], "_"));
        let sender = GateSender::new();
        let s = setup(dir.map(|f| (path.as_path(), f)), sender.clone()).await?;
        let enq = enqueue(&s.exporter, &reqs, args.producers).await?;
        let fsyncs = s.fsyncs();
        let commits = s.commits();
        let started = Instant::now();
        sender.open();
        if !sender
            .wait_spans(total_spans, Duration::from_secs(600))
            .await
        {
            anyhow::bail!("{label}: drain did not finish");
        }
        let drain = started.elapsed();
        println!(
            "{label:<24} enqueue {}  | drain {}",
            rate(total_spans, total_bytes, enq),
            rate(total_spans, total_bytes, drain)
        );
        if dir.is_some() {
            println!(
                "{:<24} {} group commits, {} fsyncs during enqueue = {:.0} fsyncs/s, {:.1} requests per commit",
                "",
                commits,
                fsyncs,
                fsyncs as f64 / enq.as_secs_f64(),
                args.requests as f64 / commits.max(1) as f64
            );
        }
        s.stop().await?;
    }

    // Backlog: ingest ≥ backlog_mib into a persistent queue, restart, drain from disk.
    let per = total_bytes / args.requests as u64;
    let n = ((args.backlog_mib << 20) / per + 1) as usize;
    let rounds = n.div_ceil(args.requests);
    let path = root.path().join("backlog");
    let sender = GateSender::new();
    let s = setup(Some((path.as_path(), false)), sender.clone()).await?;
    let mut ingest = Duration::ZERO;
    for _ in 0..rounds {
        ingest += enqueue(&s.exporter, &reqs, args.producers).await?;
    }
    let spans = (rounds * args.requests) as u64 * args.spans;
    let bytes = rounds as u64 * total_bytes;
    s.stop().await?;
    let sender = GateSender::new();
    let load_started = Instant::now();
    let s = setup(Some((path.as_path(), false)), sender.clone()).await?;
    let load = load_started.elapsed();
    let started = Instant::now();
    sender.open();
    if !sender.wait_spans(spans, Duration::from_secs(1200)).await {
        anyhow::bail!("backlog drain did not finish");
    }
    let drain = started.elapsed();
    s.stop().await?;
    let ingest_rate = bytes as f64 / ingest.as_secs_f64();
    let drain_rate = bytes as f64 / drain.as_secs_f64();
    println!(
        "backlog {:.2} GB ({} requests): ingest {}  | restart scan {:.2} s | drain from disk {}  | drain/ingest = {:.2}",
        bytes as f64 / 1e9,
        rounds * args.requests,
        rate(spans, bytes, ingest),
        load.as_secs_f64(),
        rate(spans, bytes, drain),
        drain_rate / ingest_rate
    );
    Ok(())
}
