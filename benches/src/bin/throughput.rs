//! Throughput benchmark: OTLP/gRPC in → wasmcol → OTLP/gRPC out to a counting sink, compared
//! with the sink alone (the floor: a forwarder cannot do less than receive plus send).
//!
//! Reports, for each request size, spans/s delivered and CPU-seconds per million spans for the
//! collector (utime+stime from /proc) and for the sink, all from one run.
//!
//! ```text
//! cargo build --release -p wasmcol -p wasmcol-benches
//! target/release/throughput --spans 100,1000
//! ```

#![forbid(unsafe_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use wasmcol_benches::{cpu_seconds, encoded_requests, grpc_load, rss_bytes};

#[derive(Parser)]
struct Args {
    /// The collector binary.
    #[arg(long, default_value = "target/release/wasmcol")]
    wasmcol: String,
    /// The sink binary.
    #[arg(long, default_value = "target/release/sink")]
    sink: String,
    /// Spans per request, comma separated.
    #[arg(long, default_value = "100,1000", value_delimiter = ',')]
    spans: Vec<usize>,
    /// Concurrent in-flight requests.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Warm-up seconds.
    #[arg(long, default_value_t = 3)]
    warmup: u64,
    /// Measured seconds.
    #[arg(long, default_value_t = 15)]
    duration: u64,
    /// Exporter compression (`none` or `gzip`); the loadgen gzips too when `gzip`.
    #[arg(long, default_value = "none")]
    compression: String,
    /// A config template; `{SINK}` is replaced by the sink endpoint and `{COMPRESSION}` by the
    /// compression. Default: otlp → batch (8192 / 200ms) → otlp.
    #[arg(long)]
    config: Option<String>,
    /// A label for the collector row.
    #[arg(long, default_value = "wasmcol forward")]
    label: String,
    /// The peer collector rotel's `rotel-agent` binary (from the `rotel` wheel on PyPI), to
    /// add a row for it in the same run. It always gzips its exports: compare with
    /// `--compression gzip`.
    #[arg(long)]
    rotel: Option<String>,
}

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

fn start_collector(bin: &str, config: &str) -> anyhow::Result<(Proc, String, tempfile_dir::Dir)> {
    let dir = tempfile_dir::Dir::new()?;
    let path = dir.path.join("config.yaml");
    std::fs::write(&path, config)?;
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

struct Row {
    what: String,
    spans_per_req: usize,
    delivered_per_sec: f64,
    cpu_per_million: f64,
    sink_cpu_per_million: f64,
    p50_ms: f64,
    p99_ms: f64,
    rss_mib: f64,
}

/// Runs load against `target` while sampling CPU of `measured` (and the sink) over the window.
async fn measure(
    a: &Args,
    spans: usize,
    target: &str,
    measured: u32,
    sink_pid: u32,
    sink_http: &str,
) -> anyhow::Result<(wasmcol_benches::LoadResult, f64, f64, u64, u64)> {
    let requests = Arc::new(encoded_requests(64, spans));
    let warmup = Duration::from_secs(a.warmup);
    let duration = Duration::from_secs(a.duration);
    let endpoint = format!("http://{target}");
    let (concurrency, gzip) = (a.concurrency, a.compression == "gzip");
    let load = tokio::spawn(async move {
        grpc_load(
            &endpoint,
            requests,
            spans,
            concurrency,
            warmup,
            duration,
            gzip,
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
    let r = load.await??;
    Ok((r, c1 - c0, s1 - s0, n1 - n0, rss))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let template = match &a.config {
        Some(p) => std::fs::read_to_string(p)?,
        None => DEFAULT_CONFIG.to_owned(),
    };
    let mut rows = Vec::new();
    for &spans in &a.spans {
        // The floor: the sink alone, fed by the same load.
        let (sink, grpc, http) = start_sink(&a.sink)?;
        let (r, _, sink_cpu, delivered, rss) =
            measure(&a, spans, &grpc, sink.0.id(), sink.0.id(), &http).await?;
        rows.push(Row {
            what: "sink alone (receive+decode)".into(),
            spans_per_req: spans,
            delivered_per_sec: delivered as f64 / a.duration as f64,
            cpu_per_million: sink_cpu / (delivered.max(1) as f64 / 1e6),
            sink_cpu_per_million: sink_cpu / (delivered.max(1) as f64 / 1e6),
            p50_ms: r.p50.as_secs_f64() * 1e3,
            p99_ms: r.p99.as_secs_f64() * 1e3,
            rss_mib: rss as f64 / 1048576.0,
        });
        drop(sink);

        let (sink, grpc, http) = start_sink(&a.sink)?;
        let config = template
            .replace("{SINK}", &grpc)
            .replace("{COMPRESSION}", &a.compression);
        let (col, endpoint, _dir) = start_collector(&a.wasmcol, &config)?;
        let (r, col_cpu, sink_cpu, delivered, rss) =
            measure(&a, spans, &endpoint, col.0.id(), sink.0.id(), &http).await?;
        if r.errors > 0 {
            eprintln!("warning: {} requests failed during the run", r.errors);
        }
        rows.push(Row {
            what: a.label.clone(),
            spans_per_req: spans,
            delivered_per_sec: delivered as f64 / a.duration as f64,
            cpu_per_million: col_cpu / (delivered.max(1) as f64 / 1e6),
            sink_cpu_per_million: sink_cpu / (delivered.max(1) as f64 / 1e6),
            p50_ms: r.p50.as_secs_f64() * 1e3,
            p99_ms: r.p99.as_secs_f64() * 1e3,
            rss_mib: rss as f64 / 1048576.0,
        });
        drop(col);
        drop(sink);

        if let Some(rotel) = &a.rotel {
            let (sink, grpc, http) = start_sink(&a.sink)?;
            let (peer, endpoint) = start_rotel(rotel, &grpc)?;
            let (r, cpu, sink_cpu, delivered, rss) =
                measure(&a, spans, &endpoint, peer.0.id(), sink.0.id(), &http).await?;
            rows.push(Row {
                what: "rotel (peer)".into(),
                spans_per_req: spans,
                delivered_per_sec: delivered as f64 / a.duration as f64,
                cpu_per_million: cpu / (delivered.max(1) as f64 / 1e6),
                sink_cpu_per_million: sink_cpu / (delivered.max(1) as f64 / 1e6),
                p50_ms: r.p50.as_secs_f64() * 1e3,
                p99_ms: r.p99.as_secs_f64() * 1e3,
                rss_mib: rss as f64 / 1048576.0,
            });
            drop(peer);
            drop(sink);
        }
    }
    println!(
        "| what | spans/req | delivered spans/s | CPU-s per M spans | sink CPU-s per M | p50 ms | p99 ms | RSS MiB |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for r in &rows {
        println!(
            "| {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} |",
            r.what,
            r.spans_per_req,
            r.delivered_per_sec,
            r.cpu_per_million,
            r.sink_cpu_per_million,
            r.p50_ms,
            r.p99_ms,
            r.rss_mib
        );
    }
    for spans in &a.spans {
        let floor = rows
            .iter()
            .find(|r| r.spans_per_req == *spans && r.what.starts_with("sink alone"));
        let fwd = rows.iter().find(|r| {
            r.spans_per_req == *spans
                && !r.what.starts_with("sink alone")
                && !r.what.starts_with("rotel")
        });
        let peer = rows
            .iter()
            .find(|r| r.spans_per_req == *spans && r.what.starts_with("rotel"));
        if let (Some(p), Some(w)) = (peer, fwd) {
            println!(
                "{spans} spans/request: wasmcol CPU per span = {:.2}x rotel's",
                w.cpu_per_million / p.cpu_per_million
            );
        }
        if let (Some(f), Some(w)) = (floor, fwd) {
            println!(
                "{spans} spans/request: collector CPU per span = {:.2}x the sink's floor",
                w.cpu_per_million / f.cpu_per_million
            );
        }
    }
    Ok(())
}
