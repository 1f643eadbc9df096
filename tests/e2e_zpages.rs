//! The `zpages` extension and `wasmcol top` on seed 000's region collector (from `examples/`,
//! with zpages added by a second config file): Debian's `chromium`, headless, renders the
//! graph page with every component of the config, and its numbers change under load; `top
//! --once` shows non-zero rates for the components carrying the load.
//!
//! Without chromium the browser test prints `SKIPPED: ...` and passes, unless
//! `WASMCOL_REQUIRE_CHROMIUM=1` (CI) makes it fail.
// Test code: a failed expectation is reported by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod plugins_support;
mod seed_configs;
mod tls_support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Backend, Collector, eventually};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use plugins_support::isolate_cache;
use seed_configs::{seed_000_gateway, seed_000_region};
use tls_support::Pki;

const CHROMIUM: &str = "/usr/bin/chromium";
/// Every component of the seed's region pipeline, as the graph keys them.
const COMPONENTS: [&str; 6] = [
    "receiver:otlp",
    "processor:memory_limiter",
    "processor:resource/region",
    "processor:batch",
    "exporter:otlp/local",
    "exporter:otlp/cross-region",
];

/// Seed 000's region collector (and its gateway) with zpages on a free port.
struct Fixture {
    region: Collector,
    zpages: SocketAddr,
    local: Backend,
    _rest: (Pki, Backend, Collector, tempfile::TempDir),
}

async fn start() -> Fixture {
    isolate_cache();
    let pki = Pki::generate();
    let (local, remote) = (Backend::start().await, Backend::start().await);
    let gateway = seed_000_gateway(pki.dir.path(), &remote).start();
    let queues = tempfile::tempdir().unwrap();
    let launch = seed_000_region(
        pki.dir.path(),
        &local,
        &gateway.grpc["otlp"].to_string(),
        queues.path(),
    )
    .set("processors.batch.timeout=100ms");
    let dir = tempfile::tempdir().unwrap();
    let overlay = common::write_config(
        &dir,
        "zpages.yaml",
        "extensions:\n  zpages:\n    endpoint: 127.0.0.1:0\nservice:\n  extensions: [bearertokenauth/cross-region, file_storage/local, file_storage/cross_region, zpages]\n",
    );
    let mut args = vec!["--config".to_owned(), overlay];
    for kv in &launch.sets {
        args.extend(["--set".to_owned(), kv.clone()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let region = Collector::start_with_env(dir, launch.config.clone(), false, &args, &launch.env);
    let zpages = region
        .log()
        .iter()
        .find(|l| l.contains("zpages listening"))
        .and_then(|l| {
            let start = l.find("endpoint=")? + "endpoint=".len();
            l[start..].split_whitespace().next()?.parse().ok()
        })
        .expect("zpages listening line");
    Fixture {
        region,
        zpages,
        local,
        _rest: (pki, remote, gateway, queues),
    }
}

/// Sends `n` single-span requests to the region's gRPC receiver, each acknowledged.
async fn send(region: &Collector, first: u64, n: u64) {
    let mut c = TraceServiceClient::connect(region.grpc_url("otlp"))
        .await
        .unwrap();
    for i in first..first + n {
        c.export(wasmcol_testkit::spans::request(i, 1))
            .await
            .unwrap();
    }
}

/// Runs chromium headless with `args` on `url`, bounded in time; its stdout.
fn chromium(profile: &Path, args: &[&str], url: &str) -> String {
    let mut child = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn chromium");
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut s).ok();
        s
    });
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            child.kill().ok();
            child.wait().ok();
            panic!("chromium did not finish within 90s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    reader.join().unwrap()
}

/// The graph page's DOM after its script ran.
async fn dump(profile: PathBuf, url: String) -> String {
    tokio::task::spawn_blocking(move || {
        chromium(
            &profile,
            &["--dump-dom", "--virtual-time-budget=3000"],
            &url,
        )
    })
    .await
    .unwrap()
}

/// `data-<attr>` of the node keyed `key` in a dumped DOM.
fn node_attr(dom: &str, key: &str, attr: &str) -> Option<f64> {
    let at = dom.find(&format!("data-key=\"{key}\""))?;
    let rest = &dom[at..];
    let end = rest.find('>')?;
    let tag = &rest[..end];
    let start = tag.find(&format!("data-{attr}=\""))? + attr.len() + 7;
    tag[start..].split('"').next()?.parse().ok()
}

/// Where test artifacts go: `<target>/test-artifacts`.
fn artifacts() -> PathBuf {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_wasmcol"));
    let dir = bin
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread")]
async fn graph_page_renders_every_component_and_moves_under_load() {
    if !Path::new(CHROMIUM).exists() {
        if std::env::var("WASMCOL_REQUIRE_CHROMIUM").as_deref() == Ok("1") {
            panic!("{CHROMIUM} missing and WASMCOL_REQUIRE_CHROMIUM=1");
        }
        eprintln!("SKIPPED: chromium not installed (Debian: apt-get install chromium)");
        return;
    }
    let f = start().await;
    let base = format!("http://{}/debug", f.zpages);
    for (page, want) in [
        ("servicez", "graphz"),
        ("pipelinez", "resource/region"),
        ("extensionz", "file_storage/cross_region"),
    ] {
        let body = reqwest::get(format!("{base}/{page}"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(body.contains(want), "{page} lacks {want}: {body}");
    }

    send(&f.region, 1, 20).await;
    let profile = tempfile::tempdir().unwrap();
    let url = format!("{base}/graphz");
    let first = dump(profile.path().to_owned(), url.clone()).await;
    assert!(first.contains("<svg"), "no graph drawn: {first}");
    for key in COMPONENTS {
        assert!(
            node_attr(&first, key, "accepted").is_some(),
            "{key} not drawn: {first}"
        );
    }
    let accepted = |dom: &str| node_attr(dom, "receiver:otlp", "accepted").unwrap();
    let sent = |dom: &str| node_attr(dom, "exporter:otlp/local", "sent").unwrap();
    assert!(accepted(&first) >= 20.0, "{first}");

    send(&f.region, 21, 200).await;
    assert!(f.local.wait_for_spans(220).await, "spans not delivered");
    let second = dump(profile.path().to_owned(), url.clone()).await;
    assert!(
        accepted(&second) >= accepted(&first) + 200.0,
        "accepted did not move: {} -> {}",
        accepted(&first),
        accepted(&second)
    );
    assert!(sent(&second) > sent(&first), "sent did not move");

    let shot = artifacts().join("zpages-graphz.png");
    let arg = format!("--screenshot={}", shot.display());
    let p = profile.path().to_owned();
    tokio::task::spawn_blocking(move || {
        chromium(
            &p,
            &[&arg, "--window-size=1500,700", "--virtual-time-budget=3000"],
            &url,
        )
    })
    .await
    .unwrap();
    assert!(
        std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0) > 1000,
        "no screenshot at {}",
        shot.display()
    );
    println!("zpages graph screenshot: {}", shot.display());
}

#[tokio::test(flavor = "multi_thread")]
async fn top_once_shows_rates_under_load() {
    let f = start().await;
    let metrics = format!("http://{}/metrics", f.region.metrics.unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let stop = stop.clone();
        let url = f.region.grpc_url("otlp");
        tokio::spawn(async move {
            let mut c = TraceServiceClient::connect(url).await.unwrap();
            let deadline = Instant::now() + Duration::from_secs(120);
            let mut i = 1;
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                c.export(wasmcol_testkit::spans::request(i, 10))
                    .await
                    .unwrap();
                i += 10;
            }
        })
    };
    // Load is flowing once spans reach the local backend.
    assert!(
        eventually(Duration::from_secs(30), || async {
            f.local.with(|r| !r.traces.is_empty())
        })
        .await
    );
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_wasmcol"))
            .args(["top", "--once", "--interval", "2", "--metrics", &metrics])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{table}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{table}");
    let col = |kind: &str, id: &str, n: usize| -> f64 {
        let row = table
            .lines()
            .find(|l| {
                let mut w = l.split_whitespace();
                w.next() == Some(kind) && w.next() == Some(id)
            })
            .unwrap_or_else(|| panic!("no {kind} {id} row in:\n{table}"));
        let v = row.split_whitespace().nth(n).unwrap();
        v.trim_end_matches(['k', 'M']).parse().unwrap_or(0.0)
    };
    assert!(col("receiver", "otlp", 2) > 0.0, "{table}");
    assert!(col("processor", "batch", 2) > 0.0, "{table}");
    assert!(col("processor", "batch", 3) > 0.0, "{table}");
    assert!(col("exporter", "otlp/local", 3) > 0.0, "{table}");
}
