//! Sends realistic OTLP/gRPC trace load at a given concurrency and batch size and reports
//! spans/s and latency.
//!
//! `cargo run --release -p wasmcol-benches --bin loadgen -- --endpoint http://127.0.0.1:4317`

#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;

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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let requests = Arc::new(wasmcol_benches::encoded_requests(64, a.spans));
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
