//! Throughput benchmark: OTLP/gRPC in → collector → OTLP/gRPC out to a counting sink.
//!
//! One command measures everything issue 8 asks for, in one run on one machine:
//!
//! * for each `--concurrency` (closed-loop senders) at `--spans` spans per request and
//!   `--compression`: wasmcol with a memory sending queue and, with `--rotel`, the peer
//!   collector rotel (delivered spans/s, p50/p99 latency, CPU per span, RSS);
//! * at `--persistent-concurrency` (default: the largest concurrency): wasmcol with a
//!   `file_storage` persistent sending queue, `fsync: true`, compared with the memory queue;
//! * at `--floor-spans` spans per request, `--floor-compression` (default 1000, none): wasmcol
//!   against the sink alone fed by the same load (the floor: a forwarder cannot do less than
//!   receive plus send).
//!
//! It then prints each ratio next to its target.
//!
//! ```text
//! cargo build --release -p wasmcol -p wasmcol-benches
//! target/release/throughput --concurrency 1,4,64 --spans 200 --compression gzip \
//!     --rotel /path/to/rotel/rotel-agent
//! ```

#![forbid(unsafe_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use wasmcol_benches::{Bodies, cpu_seconds, encoded_requests, grpc_load, rss_bytes};

#[derive(Parser)]
struct Args {
    /// The collector binary.
    #[arg(long, default_value = "target/release/wasmcol")]
    wasmcol: String,
    /// The sink binary.
    #[arg(long, default_value = "target/release/sink")]
    sink: String,
    /// Spans per request, comma separated.
    #[arg(long, default_value = "200", value_delimiter = ',')]
    spans: Vec<usize>,
    /// Concurrent in-flight requests (closed-loop senders), comma separated.
    #[arg(long, default_value = "1,4,64", value_delimiter = ',')]
    concurrency: Vec<usize>,
    /// Warm-up seconds.
    #[arg(long, default_value_t = 3)]
    warmup: u64,
    /// Measured seconds.
    #[arg(long, default_value_t = 12)]
    duration: u64,
    /// Exporter compression (`none` or `gzip`); the loadgen gzips too when `gzip`.
    #[arg(long, default_value = "gzip")]
    compression: String,
    /// A config template; `{SINK}` is replaced by the sink endpoint and `{COMPRESSION}` by the
    /// compression. Default: otlp → batch (8192 / 200ms) → otlp with a memory queue.
    #[arg(long)]
    config: Option<String>,
    /// A label for the collector row.
    #[arg(long, default_value = "wasmcol memory queue")]
    label: String,
    /// Concurrency of the persistent-queue row (`file_storage`, `fsync: true`); default the
    /// largest `--concurrency`; 0 leaves the row out. Not run with `--config`.
    #[arg(long)]
    persistent_concurrency: Option<usize>,
    /// Spans per request of the CPU-floor rows (wasmcol vs the sink alone); 0 leaves them out.
    #[arg(long, default_value_t = 1000)]
    floor_spans: usize,
    /// Compression of the CPU-floor rows.
    #[arg(long, default_value = "none")]
    floor_compression: String,
    /// Concurrency of the CPU-floor rows.
    #[arg(long, default_value_t = 4)]
    floor_concurrency: usize,
    /// The peer collector rotel's `rotel-agent` binary (from the `rotel` wheel on PyPI), to
    /// add a row for it at each concurrency. It always gzips its exports: compare with
    /// `--compression gzip`.
    #[arg(long)]
    rotel: Option<String>,
}

/// otlp → batch → otlp, memory sending queue (the default one).
const DEFAULT_CONFIG: &str = r#"
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
processors:
  batch:
    send_batch_size: 8192
    timeout: 200ms
exporters:
  otlp:
    endpoint: {SINK}
    compression: {COMPRESSION}
    tls:
      insecure: true
service:
  telemetry:
    metrics:
      level: none
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [otlp]
"#;

/// The same with a persistent sending queue as the seed configs have it, made durable against
/// power loss (`fsync: true`): a sender is answered after the group-commit `fdatasync`.
const PERSISTENT_CONFIG: &str = r#"
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
processors:
  batch:
    send_batch_size: 8192
    timeout: 200ms
exporters:
  otlp:
    endpoint: {SINK}
    compression: {COMPRESSION}
    tls:
      insecure: true
    sending_queue:
      enabled: true
      queue_size: 5000
      storage: file_storage
extensions:
  file_storage:
    directory: {DIR}
    fsync: true
service:
  extensions: [file_storage]
  telemetry:
    metrics:
      level: none
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [otlp]
"#;

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_sink(bin: &str) -> anyhow::Result<(Proc, String, String)> {
    let mut child = Command::new(bin)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let out = child
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let mut line = String::new();
    BufReader::new(out).read_line(&mut line)?;
    let grpc = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("grpc="))
        .ok_or_else(|| anyhow::anyhow!("sink said {line:?}"))?
        .to_owned();
    let http = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("http="))
        .ok_or_else(|| anyhow::anyhow!("sink said {line:?}"))?
        .to_owned();
    Ok((Proc(child), grpc, http))
}

/// Starts the collector with `config`, whose `{DIR}` becomes a fresh temp directory.
fn start_collector(bin: &str, config: &str) -> anyhow::Result<(Proc, String, tempfile_dir::Dir)> {
    let dir = tempfile_dir::Dir::new()?;
    let path = dir.path.join("config.yaml");
    let queue_dir = dir.path.join("queue");
    std::fs::create_dir_all(&queue_dir)?;
    std::fs::write(
        &path,
        config.replace("{DIR}", &queue_dir.display().to_string()),
    )?;
    let mut child = Command::new(bin)
        .arg("--config")
        .arg(&path)
        .env("WASMCOL_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let err = child
        .stderr
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stderr"))?;
    let mut reader = BufReader::new(err);
    let mut endpoint = None;
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            anyhow::bail!("collector exited before it was ready");
        }
        if line.contains("Starting GRPC server") {
            endpoint = line
                .split_whitespace()
                .find_map(|w| w.strip_prefix("endpoint="))
                .map(str::to_owned);
        }
        if line.contains("Everything is ready") {
            break;
        }
    }
    // Keep draining stderr so the collector never blocks on a full pipe.
    std::thread::spawn(move || for _ in reader.lines() {});
    let endpoint = endpoint.ok_or_else(|| anyhow::anyhow!("no gRPC endpoint logged"))?;
    Ok((Proc(child), endpoint, dir))
}

mod tempfile_dir {
    /// A temp directory removed on drop (kept tiny to avoid a dependency).
    pub struct Dir {
        pub path: std::path::PathBuf,
    }
    impl Dir {
        pub fn new() -> std::io::Result<Dir> {
            let path = std::env::temp_dir().join(format!(
                "wasmcol-bench-{}-{}",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0)
            ));
            std::fs::create_dir_all(&path)?;
            Ok(Dir { path })
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Starts rotel forwarding to `sink`; returns once its gRPC port accepts connections.
fn start_rotel(bin: &str, sink: &str) -> anyhow::Result<(Proc, String)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let endpoint = format!("127.0.0.1:{port}");
    let pid_file = std::env::temp_dir().join(format!("rotel-bench-{port}.pid"));
    let child = Command::new(bin)
        .args([
            "start",
            "--otlp-grpc-endpoint",
            &endpoint,
            "--otlp-http-endpoint",
            "127.0.0.1:0",
        ])
        .args([
            "--exporter",
            "otlp",
            "--otlp-exporter-endpoint",
            &format!("http://{sink}"),
        ])
        .args(["--batch-max-size", "8192", "--batch-timeout", "200ms"])
        .arg("--pid-file")
        .arg(&pid_file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let proc_ = Proc(child);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(&endpoint).is_err() {
        if std::time::Instant::now() > deadline {
            anyhow::bail!("rotel did not listen on {endpoint}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok((proc_, endpoint))
}

async fn sink_count(http: &str) -> anyhow::Result<u64> {
    Ok(reqwest::get(format!("http://{http}/count"))
        .await?
        .text()
        .await?
        .trim()
        .parse()?)
}

/// What a row measures.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// The sink alone: the floor.
    Sink,
    /// wasmcol with the memory queue (or the `--config` template).
    Memory,
    /// wasmcol with a persistent queue, `fsync: true`.
    Persistent,
    /// rotel.
    Rotel,
}

/// One measured run.
#[derive(Clone, Copy)]
struct Load {
    spans: usize,
    concurrency: usize,
    gzip: bool,
}

struct Row {
    kind: Kind,
    what: String,
    load: Load,
    delivered_per_sec: f64,
    cpu_per_million: f64,
    sink_cpu_per_million: f64,
    p50_ms: f64,
    p99_ms: f64,
    rss_mib: f64,
    errors: u64,
}

/// Runs `load` against `target` while sampling CPU of `measured` (and the sink) over the window.
async fn measure(
    a: &Args,
    load: Load,
    target: &str,
    measured: u32,
    sink_pid: u32,
    sink_http: &str,
) -> anyhow::Result<(wasmcol_benches::LoadResult, f64, f64, u64, u64)> {
    let requests = Arc::new(Bodies::Cycle(encoded_requests(64, load.spans)));
    let warmup = Duration::from_secs(a.warmup);
    let duration = Duration::from_secs(a.duration);
    let endpoint = format!("http://{target}");
    let task = tokio::spawn(async move {
        grpc_load(
            &endpoint,
            requests,
            load.spans,
            load.concurrency,
            warmup,
            duration,
            load.gzip,
        )
        .await
    });
    tokio::time::sleep(warmup).await;
    let (c0, s0, n0) = (
        cpu_seconds(measured).unwrap_or(0.0),
        cpu_seconds(sink_pid).unwrap_or(0.0),
        sink_count(sink_http).await?,
    );
    tokio::time::sleep(duration).await;
    let (c1, s1, n1) = (
        cpu_seconds(measured).unwrap_or(0.0),
        cpu_seconds(sink_pid).unwrap_or(0.0),
        sink_count(sink_http).await?,
    );
    let rss = rss_bytes(measured).unwrap_or(0);
    let r = task.await??;
    Ok((r, c1 - c0, s1 - s0, n1 - n0, rss))
}

/// Starts a fresh sink and `kind` in front of it, runs `load`, and returns the row.
async fn run(a: &Args, template: &str, kind: Kind, load: Load) -> anyhow::Result<Row> {
    let compression = if load.gzip { "gzip" } else { "none" };
    let (sink, grpc, http) = start_sink(&a.sink)?;
    let (measured, endpoint, what, _dir) = match kind {
        Kind::Sink => (None, grpc.clone(), "sink alone (floor)".to_owned(), None),
        Kind::Memory | Kind::Persistent => {
            let (template, what) = if kind == Kind::Memory {
                (template, a.label.clone())
            } else {
                (PERSISTENT_CONFIG, "wasmcol persistent queue, fsync".into())
            };
            let config = template
                .replace("{SINK}", &grpc)
                .replace("{COMPRESSION}", compression);
            let (col, endpoint, dir) = start_collector(&a.wasmcol, &config)?;
            (Some(col), endpoint, what, Some(dir))
        }
        Kind::Rotel => {
            let bin = a.rotel.as_deref().unwrap_or("rotel-agent");
            let (peer, endpoint) = start_rotel(bin, &grpc)?;
            (Some(peer), endpoint, "rotel".to_owned(), None)
        }
    };
    let pid = measured.as_ref().map_or(sink.0.id(), |p| p.0.id());
    let (r, cpu, sink_cpu, delivered, rss) =
        measure(a, load, &endpoint, pid, sink.0.id(), &http).await?;
    drop(measured);
    drop(sink);
    let per_million = |cpu: f64| cpu / (delivered.max(1) as f64 / 1e6);
    let row = Row {
        kind,
        what,
        load,
        delivered_per_sec: delivered as f64 / a.duration as f64,
        cpu_per_million: per_million(cpu),
        sink_cpu_per_million: per_million(sink_cpu),
        p50_ms: r.p50.as_secs_f64() * 1e3,
        p99_ms: r.p99.as_secs_f64() * 1e3,
        rss_mib: rss as f64 / 1048576.0,
        errors: r.errors,
    };
    eprintln!(
        "{} spans={} c={} {}: {:.0} spans/s, p50 {:.2} ms",
        row.what, load.spans, load.concurrency, compression, row.delivered_per_sec, row.p50_ms
    );
    Ok(row)
}

/// The runs, in order: per spans size and concurrency the memory queue and rotel, the
/// persistent queue at its concurrency, then the CPU-floor pair.
fn plan(a: &Args) -> Vec<(Kind, Load)> {
    let gzip = a.compression == "gzip";
    let persistent_at = match (a.persistent_concurrency, &a.config) {
        (_, Some(_)) => 0,
        (Some(c), None) => c,
        (None, None) => a.concurrency.iter().copied().max().unwrap_or(0),
    };
    let mut runs = Vec::new();
    for &spans in &a.spans {
        for &concurrency in &a.concurrency {
            let load = Load {
                spans,
                concurrency,
                gzip,
            };
            runs.push((Kind::Memory, load));
            if a.rotel.is_some() {
                runs.push((Kind::Rotel, load));
            }
            if concurrency == persistent_at {
                runs.push((Kind::Persistent, load));
            }
        }
    }
    if a.floor_spans > 0 {
        let load = Load {
            spans: a.floor_spans,
            concurrency: a.floor_concurrency,
            gzip: a.floor_compression == "gzip",
        };
        runs.push((Kind::Sink, load));
        runs.push((Kind::Memory, load));
    }
    runs
}

fn print_table(rows: &[Row]) {
    println!(
        "| what | spans/req | concurrency | compression | delivered spans/s | p50 ms | p99 ms | CPU-s per M spans | sink CPU-s per M | RSS MiB |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} |",
            r.what,
            r.load.spans,
            r.load.concurrency,
            if r.load.gzip { "gzip" } else { "none" },
            r.delivered_per_sec,
            r.p50_ms,
            r.p99_ms,
            r.cpu_per_million,
            r.sink_cpu_per_million,
            r.rss_mib
        );
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok { "ok" } else { "MISSED" }
}

/// Prints each ratio the issue sets a target for, with the target.
fn print_targets(rows: &[Row]) {
    let find = |kind: Kind, l: Load| {
        rows.iter().find(|r| {
            r.kind == kind
                && r.load.spans == l.spans
                && r.load.concurrency == l.concurrency
                && r.load.gzip == l.gzip
        })
    };
    println!();
    for w in rows.iter().filter(|r| r.kind == Kind::Memory) {
        let l = w.load;
        let tag = format!("spans={} c={}", l.spans, l.concurrency);
        if let Some(p) = find(Kind::Rotel, l) {
            let t = w.delivered_per_sec / p.delivered_per_sec.max(1.0);
            println!(
                "{tag}: delivered spans/s = {t:.2}x rotel's (target >= 1): {}",
                verdict(t >= 1.0)
            );
            println!(
                "{tag}: p50 {:.2} ms vs rotel's {:.2} ms (target <=): {}",
                w.p50_ms,
                p.p50_ms,
                verdict(w.p50_ms <= p.p50_ms)
            );
            let c = w.cpu_per_million / p.cpu_per_million;
            println!(
                "{tag}: CPU per span = {c:.2}x rotel's (target <= 0.5): {}",
                verdict(c <= 0.5)
            );
            println!(
                "{tag}: RSS {:.1} MiB vs rotel's {:.1} MiB (target <=): {}",
                w.rss_mib,
                p.rss_mib,
                verdict(w.rss_mib <= p.rss_mib)
            );
        }
        if let Some(p) = find(Kind::Persistent, l) {
            let t = p.delivered_per_sec / w.delivered_per_sec.max(1.0);
            println!(
                "{tag}: persistent queue (fsync) = {t:.2}x the memory queue's spans/s (target >= 0.8): {}",
                verdict(t >= 0.8)
            );
        }
        if let Some(f) = find(Kind::Sink, l) {
            let c = w.cpu_per_million / f.cpu_per_million;
            println!(
                "{tag} {}: CPU per span = {c:.2}x the sink's floor (target <= 1.5): {}",
                if l.gzip { "gzip" } else { "none" },
                verdict(c <= 1.5)
            );
        }
    }
    for r in rows.iter().filter(|r| r.errors > 0) {
        println!(
            "warning: {} requests failed during the {} run (spans={} c={})",
            r.errors, r.what, r.load.spans, r.load.concurrency
        );
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let template = match &a.config {
        Some(p) => std::fs::read_to_string(p)?,
        None => DEFAULT_CONFIG.to_owned(),
    };
    let mut rows = Vec::new();
    for (kind, load) in plan(&a) {
        rows.push(run(&a, &template, kind, load).await?);
    }
    print_table(&rows);
    print_targets(&rows);
    Ok(())
}
