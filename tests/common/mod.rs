//! Shared helpers for end-to-end tests: spawn the real `wasmcol` binary, wait for it to be
//! ready, find the ports it bound, and run an OTLP backend that records what it receives.
#![allow(dead_code)]
// Test code: a failed expectation is reported by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::Span;
use parking_lot::Mutex;

/// How long any wait in these tests may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(30);

/// A running collector process.
pub struct Collector {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    log: Arc<Mutex<Vec<String>>>,
    /// `receiver id` → gRPC address.
    pub grpc: HashMap<String, SocketAddr>,
    /// `receiver id` → HTTP address.
    pub http: HashMap<String, SocketAddr>,
    /// The Prometheus endpoint.
    pub metrics: Option<SocketAddr>,
}

fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let start = line.find(&format!("{key}="))? + key.len() + 1;
    let rest = &line[start..];
    let end = rest.find(' ').unwrap_or(rest.len());
    Some(rest[..end].trim_matches('"'))
}

impl Collector {
    /// Writes `yaml` to a temp dir and starts the collector on it; waits until it is ready.
    /// Unless the config sets `service.telemetry`, the metrics endpoint binds a free port.
    pub fn start(yaml: &str) -> Collector {
        Self::start_with(yaml, &[])
    }

    /// Like [`Collector::start`] with extra command-line arguments.
    pub fn start_with(yaml: &str, args: &[&str]) -> Collector {
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("config.yaml");
        std::fs::write(&config_path, yaml).unwrap();
        Self::start_in(dir, config_path, yaml.contains("telemetry:"), args)
    }

    /// Like [`Collector::start`], with the open-file limit (soft and hard) set to `n`.
    pub fn start_with_open_files(yaml: &str, n: u64) -> Collector {
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("config.yaml");
        std::fs::write(&config_path, yaml).unwrap();
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
            .arg(env!("CARGO_BIN_EXE_wasmcol"));
        Self::spawn(cmd, dir, config_path, yaml.contains("telemetry:"), &[])
    }

    /// Like [`Collector::start`], with SIGXFSZ ignored, so that once the largest file the
    /// collector may write is limited (`prlimit --pid <pid> --fsize=N`) a write past it fails
    /// with EFBIG, as a write to a full disk fails with ENOSPC, instead of killing it.
    pub fn start_ignoring_sigxfsz(yaml: &str) -> Collector {
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("config.yaml");
        std::fs::write(&config_path, yaml).unwrap();
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg("trap '' XFSZ && exec \"$0\" \"$@\"")
            .arg(env!("CARGO_BIN_EXE_wasmcol"));
        Self::spawn(cmd, dir, config_path, yaml.contains("telemetry:"), &[])
    }

    /// Like [`Collector::start`], in a private mount namespace whose `/etc/resolv.conf` is
    /// `resolv_conf`, so the system resolver asks the test's own DNS server. `None` when this
    /// machine cannot make one (it takes root and util-linux `unshare`).
    pub fn start_with_resolv_conf(yaml: &str, resolv_conf: &Path) -> Option<Collector> {
        let bind = "mount --bind \"$RESOLV\" /etc/resolv.conf";
        let probe = Command::new("unshare")
            .args(["--mount", "sh", "-c", bind])
            .env("RESOLV", resolv_conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if !probe.is_ok_and(|s| s.success()) {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("config.yaml");
        std::fs::write(&config_path, yaml).unwrap();
        let mut cmd = Command::new("unshare");
        cmd.args(["--mount", "sh", "-c"])
            .arg(format!("{bind} && exec \"$0\" \"$@\""))
            .arg(env!("CARGO_BIN_EXE_wasmcol"))
            .env("RESOLV", resolv_conf);
        Some(Self::spawn(
            cmd,
            dir,
            config_path,
            yaml.contains("telemetry:"),
            &[],
        ))
    }

    /// Starts (again) on an existing config file, e.g. after a crash.
    pub fn start_in(
        dir: tempfile::TempDir,
        config_path: PathBuf,
        has_telemetry: bool,
        args: &[&str],
    ) -> Collector {
        Self::start_with_env(dir, config_path, has_telemetry, args, &[])
    }

    /// Like [`Collector::start_in`], with extra environment variables for the collector
    /// (the example configs take their endpoints and paths from `${env:...}`).
    pub fn start_with_env(
        dir: tempfile::TempDir,
        config_path: PathBuf,
        has_telemetry: bool,
        args: &[&str],
        env: &[(String, String)],
    ) -> Collector {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_wasmcol"));
        cmd.envs(env.iter().map(|(k, v)| (k, v)));
        Self::spawn(cmd, dir, config_path, has_telemetry, args)
    }

    fn spawn(
        mut cmd: Command,
        dir: tempfile::TempDir,
        config_path: PathBuf,
        has_telemetry: bool,
        args: &[&str],
    ) -> Collector {
        cmd.arg("--config").arg(&config_path);
        if !has_telemetry {
            cmd.arg("--set")
                .arg("service.telemetry.metrics.address=127.0.0.1:0");
        }
        cmd.args(args)
            .env(
                "WASMCOL_LOG",
                std::env::var("WASMCOL_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn wasmcol");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let log2 = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if std::env::var("WASMCOL_TEST_ECHO").is_ok() {
                    eprintln!("[wasmcol] {line}");
                }
                log2.lock().push(line.clone());
                let _ = tx.send(line);
            }
        });
        let mut c = Collector {
            child: Some(child),
            dir,
            config_path,
            log,
            grpc: HashMap::new(),
            http: HashMap::new(),
            metrics: None,
        };
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if line.contains("Starting GRPC server") {
                        c.grpc.insert(
                            field(&line, "receiver").unwrap().into(),
                            field(&line, "endpoint").unwrap().parse().unwrap(),
                        );
                    } else if line.contains("Starting HTTP server") {
                        c.http.insert(
                            field(&line, "receiver").unwrap().into(),
                            field(&line, "endpoint").unwrap().parse().unwrap(),
                        );
                    } else if line.contains("Serving Prometheus metrics") {
                        c.metrics = Some(field(&line, "endpoint").unwrap().parse().unwrap());
                    } else if line.contains("Everything is ready") {
                        return c;
                    }
                }
                Err(_) => {
                    let status = c.child.as_mut().unwrap().try_wait().ok().flatten();
                    panic!(
                        "collector not ready within {WAIT:?} (exit: {status:?}); log:\n{}",
                        c.log().join("\n")
                    );
                }
            }
        }
    }

    /// Everything the collector logged so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().clone()
    }

    /// The gRPC endpoint URL of receiver `id`.
    pub fn grpc_url(&self, id: &str) -> String {
        format!("http://{}", self.grpc[id])
    }

    /// The HTTP base URL of receiver `id`.
    pub fn http_url(&self, id: &str) -> String {
        format!("http://{}", self.http[id])
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Sends SIGTERM.
    pub fn sigterm(&self) {
        self.signal("TERM");
    }

    /// SIGKILLs the process and waits for it; returns the temp dir so a restart can reuse it.
    pub fn sigkill(mut self) -> (tempfile::TempDir, PathBuf) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        (dir, self.config_path.clone())
    }

    /// Waits for the process to exit (bounded).
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let child = self.child.as_mut().unwrap();
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = child.try_wait().unwrap() {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "collector did not exit within {timeout:?}; log:\n{}",
                self.log().join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Scrapes `/metrics`.
    pub async fn scrape(&self) -> String {
        let addr = self.metrics.expect("metrics endpoint");
        reqwest::get(format!("http://{addr}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The value of one series in a scrape (exact name and label text), if present.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        let text = self.scrape().await;
        metric_value(&text, series)
    }
}

/// Finds `series value` in Prometheus text.
pub fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(series)
            .and_then(|rest| rest.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
    })
}

impl Drop for Collector {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs `wasmcol` with `args` to completion; returns (exit success, stdout, stderr).
pub fn run_cli(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wasmcol"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Writes a config file into `dir` and returns its path as a string.
pub fn write_config(dir: &tempfile::TempDir, name: &str, yaml: &str) -> String {
    let p = dir.path().join(name);
    let mut f = std::fs::File::create(&p).unwrap();
    f.write_all(yaml.as_bytes()).unwrap();
    p.to_string_lossy().into_owned()
}

/// What a test backend received.
#[derive(Default)]
pub struct Received {
    pub traces: Vec<ExportTraceServiceRequest>,
    pub metrics: Vec<ExportMetricsServiceRequest>,
    pub logs: Vec<ExportLogsServiceRequest>,
}

/// An OTLP/gRPC backend on 127.0.0.1 that records requests and can be told to refuse.
#[derive(Clone)]
pub struct Backend {
    pub addr: SocketAddr,
    state: Arc<BackendState>,
}

struct BackendState {
    received: Mutex<Received>,
    refuse: Mutex<Option<tonic::Code>>,
    refused: AtomicU64,
    notify: tokio::sync::Notify,
}

impl BackendState {
    fn new() -> Arc<BackendState> {
        Arc::new(BackendState {
            received: Mutex::new(Received::default()),
            refuse: Mutex::new(None),
            refused: AtomicU64::new(0),
            notify: tokio::sync::Notify::new(),
        })
    }

    fn check(&self) -> Result<(), tonic::Status> {
        if let Some(code) = *self.refuse.lock() {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return Err(tonic::Status::new(code, "backend refuses on purpose"));
        }
        Ok(())
    }
}

#[derive(Clone)]
struct Svc(Arc<BackendState>);

#[tonic::async_trait]
impl TraceService for Svc {
    async fn export(
        &self,
        req: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0.check()?;
        self.0.received.lock().traces.push(req.into_inner());
        self.0.notify.notify_waiters();
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for Svc {
    async fn export(
        &self,
        req: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.0.check()?;
        self.0.received.lock().metrics.push(req.into_inner());
        self.0.notify.notify_waiters();
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl LogsService for Svc {
    async fn export(
        &self,
        req: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        self.0.check()?;
        self.0.received.lock().logs.push(req.into_inner());
        self.0.notify.notify_waiters();
        Ok(tonic::Response::new(ExportLogsServiceResponse::default()))
    }
}

impl Backend {
    /// Starts a backend on 127.0.0.1:0 (call inside a tokio runtime).
    pub async fn start() -> Backend {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener)
    }

    /// Starts a backend on a given address (to bring a backend back on the same port).
    pub async fn start_on(addr: SocketAddr) -> Backend {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        Self::serve(listener)
    }

    fn serve(listener: tokio::net::TcpListener) -> Backend {
        let addr = listener.local_addr().unwrap();
        let state = BackendState::new();
        let svc = Svc(state.clone());
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(
                    TraceServiceServer::new(svc.clone())
                        .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
                        .accept_compressed(tonic::codec::CompressionEncoding::Zstd)
                        .max_decoding_message_size(64 << 20),
                )
                .add_service(
                    MetricsServiceServer::new(svc.clone())
                        .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
                        .accept_compressed(tonic::codec::CompressionEncoding::Zstd),
                )
                .add_service(
                    LogsServiceServer::new(svc)
                        .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
                        .accept_compressed(tonic::codec::CompressionEncoding::Zstd),
                )
                .serve_with_incoming(incoming),
        );
        Backend { addr, state }
    }

    /// Starts an OTLP/HTTP backend (protobuf bodies, no compression) on 127.0.0.1:0 that
    /// records into the same [`Received`] (call inside a tokio runtime).
    pub async fn start_http() -> Backend {
        use prost::Message as _;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = BackendState::new();
        let backend = Backend {
            addr,
            state: state.clone(),
        };
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = state.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(
                        move |req: http::Request<hyper::body::Incoming>| {
                            let state = state.clone();
                            async move {
                                use http_body_util::BodyExt as _;
                                let path = req.uri().path().to_owned();
                                let body = req.into_body().collect().await?.to_bytes();
                                let status = match (state.check(), path.as_str()) {
                                    (Err(_), _) => http::StatusCode::SERVICE_UNAVAILABLE,
                                    (Ok(()), "/v1/traces") => {
                                        let r = ExportTraceServiceRequest::decode(body).unwrap();
                                        state.received.lock().traces.push(r);
                                        http::StatusCode::OK
                                    }
                                    (Ok(()), "/v1/metrics") => {
                                        let r = ExportMetricsServiceRequest::decode(body).unwrap();
                                        state.received.lock().metrics.push(r);
                                        http::StatusCode::OK
                                    }
                                    (Ok(()), "/v1/logs") => {
                                        let r = ExportLogsServiceRequest::decode(body).unwrap();
                                        state.received.lock().logs.push(r);
                                        http::StatusCode::OK
                                    }
                                    _ => http::StatusCode::NOT_FOUND,
                                };
                                state.notify.notify_waiters();
                                let mut res = http::Response::new(http_body_util::Full::new(
                                    bytes::Bytes::new(),
                                ));
                                *res.status_mut() = status;
                                res.headers_mut().insert(
                                    http::header::CONTENT_TYPE,
                                    http::HeaderValue::from_static("application/x-protobuf"),
                                );
                                Ok::<_, hyper::Error>(res)
                            }
                        },
                    );
                    let _ = hyper_util::server::conn::auto::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
                });
            }
        });
        backend
    }

    /// `host:port` for an exporter's `endpoint`.
    pub fn endpoint(&self) -> String {
        self.addr.to_string()
    }

    /// Makes every export fail with `code` (or succeed again with `None`).
    pub fn refuse(&self, code: Option<tonic::Code>) {
        *self.state.refuse.lock() = code;
    }

    /// Exports refused so far.
    pub fn refused(&self) -> u64 {
        self.state.refused.load(Ordering::Relaxed)
    }

    /// Runs `f` on what was received.
    pub fn with<T>(&self, f: impl FnOnce(&Received) -> T) -> T {
        f(&self.state.received.lock())
    }

    /// All spans received, flattened.
    pub fn spans(&self) -> Vec<Span> {
        self.with(|r| {
            r.traces
                .iter()
                .flat_map(|t| t.resource_spans.iter())
                .flat_map(|rs| rs.scope_spans.iter())
                .flat_map(|ss| ss.spans.iter().cloned())
                .collect()
        })
    }

    /// Waits until `cond` holds on what was received, at most `timeout`.
    pub async fn wait_until(&self, timeout: Duration, cond: impl Fn(&Received) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.state.notify.notified();
            if self.with(&cond) {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.with(&cond);
            }
        }
    }

    /// Waits until at least `n` spans arrived.
    pub async fn wait_for_spans(&self, n: usize) -> bool {
        self.wait_until(WAIT, |r| {
            r.traces
                .iter()
                .flat_map(|t| &t.resource_spans)
                .flat_map(|rs| &rs.scope_spans)
                .map(|s| s.spans.len())
                .sum::<usize>()
                >= n
        })
        .await
    }
}

/// Waits for an async condition, polling every 20 ms, at most `timeout`.
pub async fn eventually<F, Fut>(timeout: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if f().await {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
