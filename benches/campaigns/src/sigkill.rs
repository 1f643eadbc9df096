//! SIGKILL campaign: kills the collector with SIGKILL again and again while clients send
//! spans through it to a backend, with the exporter's sending queue on `file_storage`, and
//! checks that every span the collector acknowledged reaches the backend.
//!
//! ```text
//! sigkill --collector target/release/wasmcol [--kills 20] [--concurrency 4] [--spans 100]
//!         [--min-ms 1500] [--max-ms 4000] [--drain-secs 180] [--work DIR]
//! ```
//!
//! Every span carries a unique span id (request number × spans + index). The backend (an
//! OTLP/gRPC server in this process) counts deliveries per id; the load records which
//! requests were answered OK. After the last kill the collector is restarted once more and
//! left to drain its queue. Printed: acknowledged spans, spans lost (acknowledged, never
//! delivered: must be 0, else the exit status is 1), duplicate deliveries, spans delivered
//! that were never acknowledged (the kill came between the queue write and the answer), and
//! restart times.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

struct Args {
    collector: PathBuf,
    kills: u32,
    concurrency: usize,
    spans: u64,
    min_ms: u64,
    max_ms: u64,
    drain_secs: u64,
    work: PathBuf,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        collector: PathBuf::new(),
        kills: 20,
        concurrency: 4,
        spans: 100,
        min_ms: 1500,
        max_ms: 4000,
        drain_secs: 180,
        work: std::env::temp_dir().join(format!("wasmcol-sigkill-{}", std::process::id())),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let v = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--collector" => a.collector = v.into(),
            "--kills" => a.kills = v.parse()?,
            "--concurrency" => a.concurrency = v.parse()?,
            "--spans" => a.spans = v.parse()?,
            "--min-ms" => a.min_ms = v.parse()?,
            "--max-ms" => a.max_ms = v.parse()?,
            "--drain-secs" => a.drain_secs = v.parse()?,
            "--work" => a.work = v.into(),
            _ => bail!("unknown flag {flag}"),
        }
    }
    if a.collector.as_os_str().is_empty() {
        bail!("--collector PATH is required");
    }
    Ok(a)
}

/// The backend: deliveries per span id.
#[derive(Clone, Default)]
struct Backend(Arc<Mutex<HashMap<u64, u32>>>);

#[tonic::async_trait]
impl TraceService for Backend {
    async fn export(
        &self,
        req: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let req = req.into_inner();
        let mut seen = self
            .0
            .lock()
            .map_err(|_| tonic::Status::internal("poisoned"))?;
        for span in req
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
        {
            let id: [u8; 8] = span
                .span_id
                .as_slice()
                .try_into()
                .map_err(|_| tonic::Status::invalid_argument("span id"))?;
            *seen.entry(u64::from_be_bytes(id)).or_default() += 1;
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

fn request(n: u64, spans: u64) -> ExportTraceServiceRequest {
    let spans = (0..spans)
        .map(|i| {
            let id = n * spans + i;
            let mut trace_id = n.to_be_bytes().to_vec();
            trace_id.extend_from_slice(&1u64.to_be_bytes());
            Span {
                trace_id,
                span_id: id.to_be_bytes().to_vec(),
                name: format!("op-{}", i % 7),
                kind: 2,
                start_time_unix_nano: 1_700_000_000_000_000_000 + id,
                end_time_unix_nano: 1_700_000_000_000_100_000 + id,
                attributes: vec![KeyValue {
                    key: "request".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::IntValue(n as i64)),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::StringValue("sigkill".into())),
                    }),
                    ..Default::default()
                }],
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

fn config(port: u16, backend: u16, dir: &Path) -> String {
    format!(
        r#"receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:{port}
exporters:
  otlp_grpc:
    endpoint: 127.0.0.1:{backend}
    tls:
      insecure: true
    sending_queue:
      enabled: true
      queue_size: 1000000
      storage: file_storage
    retry_on_failure:
      enabled: true
      max_elapsed_time: 0
extensions:
  file_storage:
    directory: {dir}
    create_directory: true
service:
  extensions: [file_storage]
  telemetry:
    metrics:
      level: none
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [otlp_grpc]
"#,
        dir = dir.display()
    )
}

/// Starts the collector and waits for "Everything is ready"; its log is appended to `log`.
fn start(a: &Args, config: &Path, log: &Path) -> anyhow::Result<(Child, Duration)> {
    let t0 = Instant::now();
    let mut child = Command::new(&a.collector)
        .arg("--config")
        .arg(config)
        .env("WASMCOL_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {}", a.collector.display()))?;
    let stderr = child.stderr.take().context("stderr")?;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let _ = writeln!(file, "{line}");
            if line.contains("Everything is ready") {
                let _ = tx.send(());
            }
        }
    });
    if rx.recv_timeout(Duration::from_secs(60)).is_err() {
        let _ = child.kill();
        bail!("collector not ready within 60 s; see {}", log.display());
    }
    Ok((child, t0.elapsed()))
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

struct Load {
    next: AtomicU64,
    acked: Mutex<Vec<u64>>,
    errors: AtomicU64,
    stop: AtomicBool,
}

async fn worker(url: String, load: Arc<Load>, spans: u64) {
    let Ok(endpoint) = tonic::transport::Endpoint::from_shared(url) else {
        return;
    };
    let channel = endpoint
        .timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(1))
        .connect_lazy();
    let mut client = TraceServiceClient::new(channel);
    while !load.stop.load(Ordering::Relaxed) {
        let n = load.next.fetch_add(1, Ordering::Relaxed);
        match client.export(request(n, spans)).await {
            Ok(_) => load.acked.lock().expect("acked").push(n),
            Err(_) => {
                load.errors.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = args()?;
    std::fs::create_dir_all(&a.work)?;
    let backend = Backend::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let backend_port = listener.local_addr()?.port();
    let server = tonic::transport::Server::builder()
        .add_service(
            // The otlp_grpc exporter compresses with gzip unless told otherwise.
            TraceServiceServer::new(backend.clone())
                .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
                .accept_compressed(tonic::codec::CompressionEncoding::Zstd)
                .max_decoding_message_size(64 << 20),
        )
        .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener));
    tokio::spawn(server);

    let port = free_port()?;
    let config_path = a.work.join("config.yaml");
    std::fs::write(
        &config_path,
        config(port, backend_port, &a.work.join("queue")),
    )?;
    let log = a.work.join("collector.log");
    let (mut child, _) = start(&a, &config_path, &log)?;

    let load = Arc::new(Load {
        next: AtomicU64::new(0),
        acked: Mutex::new(Vec::new()),
        errors: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    let workers: Vec<_> = (0..a.concurrency)
        .map(|_| {
            tokio::spawn(worker(
                format!("http://127.0.0.1:{port}"),
                load.clone(),
                a.spans,
            ))
        })
        .collect();

    let mut rng = Rng(std::process::id() as u64 * 0x9e37_79b9_7f4a_7c15 | 1);
    let mut restarts = Vec::new();
    let started = Instant::now();
    for k in 1..=a.kills {
        let wait = a.min_ms + rng.below(a.max_ms.saturating_sub(a.min_ms) + 1);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        // std's Child::kill sends SIGKILL.
        child.kill()?;
        child.wait()?;
        let acked = load.acked.lock().expect("acked").len() as u64 * a.spans;
        let (c, took) = start(&a, &config_path, &log)?;
        child = c;
        restarts.push(took);
        println!(
            "kill {k:2}: after {wait} ms, {acked} spans acknowledged so far, restarted in {} ms",
            took.as_millis()
        );
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    load.stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.await;
    }
    let load_secs = started.elapsed().as_secs_f64();
    let acked: Vec<u64> = load.acked.lock().expect("acked").clone();
    let acked_ids = || {
        acked
            .iter()
            .flat_map(|n| (n * a.spans)..((n + 1) * a.spans))
    };

    // Let the last run drain its queue: done when every acknowledged span has arrived and
    // nothing new arrived for 3 s, or after --drain-secs.
    let drain_start = Instant::now();
    let mut last_total = u64::MAX;
    let mut quiet_since = Instant::now();
    loop {
        let (missing, total) = {
            let seen = backend.0.lock().expect("seen");
            let missing = acked_ids().filter(|id| !seen.contains_key(id)).count();
            (missing, seen.values().map(|c| u64::from(*c)).sum::<u64>())
        };
        if total != last_total {
            last_total = total;
            quiet_since = Instant::now();
        }
        if missing == 0 && quiet_since.elapsed() >= Duration::from_secs(3) {
            break;
        }
        if drain_start.elapsed() >= Duration::from_secs(a.drain_secs) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let drain = drain_start.elapsed();
    let _ = child.kill();
    let _ = child.wait();

    let seen = backend.0.lock().expect("seen").clone();
    let acked_spans = acked.len() as u64 * a.spans;
    let lost = acked_ids().filter(|id| !seen.contains_key(id)).count();
    let acked_set: std::collections::HashSet<u64> = acked.iter().copied().collect();
    let unacked_delivered = seen
        .keys()
        .filter(|id| !acked_set.contains(&(*id / a.spans)))
        .count();
    let duplicate_spans = seen.values().filter(|c| **c > 1).count();
    let extra_deliveries: u64 = seen.values().map(|c| u64::from(c.saturating_sub(1))).sum();
    let mut ms: Vec<u128> = restarts.iter().map(Duration::as_millis).collect();
    ms.sort_unstable();
    println!(
        "kills={} load_secs={load_secs:.0} requests_sent={} requests_acked={} spans_acked={acked_spans} \
         request_errors={} spans_delivered_unique={} lost={lost} duplicate_spans={duplicate_spans} \
         extra_deliveries={extra_deliveries} delivered_unacked={unacked_delivered} \
         restart_ms_median={} restart_ms_max={} drain_secs={:.1} work={}",
        a.kills,
        load.next.load(Ordering::Relaxed),
        acked.len(),
        load.errors.load(Ordering::Relaxed),
        seen.len(),
        ms.get(ms.len() / 2).copied().unwrap_or(0),
        ms.last().copied().unwrap_or(0),
        drain.as_secs_f64(),
        a.work.display()
    );
    if lost > 0 {
        bail!("{lost} acknowledged spans never reached the backend");
    }
    Ok(())
}
