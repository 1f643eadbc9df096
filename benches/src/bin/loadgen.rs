//! Sends realistic OTLP/gRPC trace load at a given concurrency and batch size and reports
//! spans/s and latency.
//!
//! `cargo run --release -p wasmcol-benches --bin loadgen -- --endpoint http://127.0.0.1:4317`

#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use wasmcol_benches::{Bodies, FreshTraces};

#[derive(Parser)]
struct Args {
    /// Collector gRPC endpoint.
    #[arg(long, default_value = "http://127.0.0.1:4317")]
    endpoint: String,
    /// Concurrent connections' worth of in-flight requests.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Spans per request.
    #[arg(long, default_value_t = 200)]
    spans: usize,
    /// Seconds of warm-up (not counted).
    #[arg(long, default_value_t = 3)]
    warmup: u64,
    /// Seconds measured.
    #[arg(long, default_value_t = 15)]
    duration: u64,
    /// gzip the requests.
    #[arg(long)]
    gzip: bool,
    /// Send traces of this many spans with trace IDs never sent before in every request
    /// (for tail sampling); without it 64 requests are cycled and trace IDs repeat.
    #[arg(long)]
    spans_per_trace: Option<usize>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let bodies = match a.spans_per_trace {
        Some(per_trace) => {
            // Distinct per run, so runs against one collector do not reuse trace IDs.
            let first = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_nanos() as u64;
            Bodies::FreshTraces(FreshTraces::new(a.spans, per_trace, first)?)
        }
        None => Bodies::Cycle(wasmcol_benches::encoded_requests(64, a.spans)),
    };
    let requests = Arc::new(bodies);
    let r = wasmcol_benches::grpc_load(
        &a.endpoint,
        requests,
        a.spans,
        a.concurrency,
        Duration::from_secs(a.warmup),
        Duration::from_secs(a.duration),
        a.gzip,
    )
    .await?;
    println!(
        "requests={} errors={} spans={} spans_per_sec={:.0} p50_ms={:.2} p99_ms={:.2}",
        r.requests,
        r.errors,
        r.spans,
        r.spans as f64 / r.elapsed.as_secs_f64(),
        r.p50.as_secs_f64() * 1e3,
        r.p99.as_secs_f64() * 1e3
    );
    Ok(())
}
