//! A small harness for the container end-to-end tests: it drives the `docker` command line
//! (no API crate), names everything it creates with one unique run prefix and a label, and
//! removes all of it when dropped, so a failed assertion (a panic) cleans up too. Every
//! command has a deadline.
#![allow(dead_code)]
// Test code: a failed expectation is reported by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Read as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long one `docker` command may take (an image build included).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(180);

/// The label every object of a run carries: `wasmcol-e2e=<run prefix>`.
pub const LABEL: &str = "wasmcol-e2e";

/// Output of a finished command.
pub struct Output {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `program args` with a deadline; kills it when the deadline passes.
pub fn run_with_timeout(program: &str, args: &[&str], timeout: Duration) -> Output {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    // Read both pipes on threads so a large output (container logs) cannot block the child.
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = out.read_to_end(&mut b);
        b
    });
    let t_err = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = err.read_to_end(&mut b);
        b
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{program} {args:?} did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        ok: status.success(),
        stdout: String::from_utf8_lossy(&t_out.join().unwrap()).into_owned(),
        stderr: String::from_utf8_lossy(&t_err.join().unwrap()).into_owned(),
    }
}

/// Why the container tests cannot run here, if they cannot: no `docker` command or no engine
/// answering it.
pub fn unavailable() -> Option<String> {
    if std::env::var("WASMCOL_SKIP_DOCKER_TESTS").is_ok_and(|v| v == "1") {
        return Some("WASMCOL_SKIP_DOCKER_TESTS=1".into());
    }
    match Command::new("docker")
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Err(e) => return Some(format!("no docker command ({e})")),
        Ok(s) if !s.success() => return Some("`docker version` failed: no engine answers".into()),
        Ok(_) => {}
    }
    let info = run_with_timeout("docker", &["info"], Duration::from_secs(30));
    if !info.ok {
        return Some(format!("`docker info` failed: {}", info.stderr.trim()));
    }
    None
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// One container to start.
#[derive(Default, Clone)]
pub struct Spec {
    /// Short name, unique in the run (`gateway-b`); also its alias on its network.
    pub name: String,
    /// The network it starts on (short name).
    pub network: String,
    /// `(source, target)` mounts; a source starting with `/` is a host path (mounted
    /// read-only), anything else a volume of the run (short name).
    pub mounts: Vec<(String, String)>,
    pub env: Vec<(String, String)>,
    /// Container ports published on 127.0.0.1 (a free host port each).
    pub publish: Vec<u16>,
    /// Arguments after the image (the collector's command line).
    pub args: Vec<String>,
    /// Run the image's HEALTHCHECK every second instead of every 10s.
    pub fast_healthcheck: bool,
    /// More DNS names on its network (several containers may share one).
    pub aliases: Vec<String>,
}

/// Everything one test run creates, removed on drop.
pub struct Docker {
    /// Unique prefix of every name.
    pub run: String,
    /// The image built for the run.
    pub image: String,
}

impl Docker {
    /// A run named after `test`, building the image from the binary under test with
    /// `deploy/build-image.sh`.
    pub fn new(test: &str) -> Docker {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let run = format!("wce2e-{test}-{}-{nanos:x}", std::process::id());
        let d = Docker {
            image: format!("{run}:e2e"),
            run,
        };
        let script = repo_root().join("deploy/build-image.sh");
        let out = run_with_timeout(
            script.to_str().unwrap(),
            &["--binary", env!("CARGO_BIN_EXE_wasmcol"), "--tag", &d.image],
            COMMAND_TIMEOUT,
        );
        assert!(
            out.ok,
            "build-image.sh failed:\n{}\n{}",
            out.stdout, out.stderr
        );
        eprintln!("{}", out.stdout.trim());
        d
    }

    /// `docker args`: its stdout, or a panic with its stderr.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = run_with_timeout("docker", args, COMMAND_TIMEOUT);
        assert!(out.ok, "docker {args:?} failed: {}", out.stderr.trim());
        out.stdout
    }

    /// The full name of a run's object.
    pub fn name(&self, short: &str) -> String {
        format!("{}-{short}", self.run)
    }

    fn label(&self) -> String {
        format!("{LABEL}={}", self.run)
    }

    /// Creates a bridge network.
    pub fn network(&self, short: &str) {
        let (name, label) = (self.name(short), self.label());
        self.ok(&["network", "create", "--label", &label, &name]);
    }

    /// Creates a named volume.
    pub fn volume(&self, short: &str) {
        let (name, label) = (self.name(short), self.label());
        self.ok(&["volume", "create", "--label", &label, &name]);
    }

    /// Starts a container (detached).
    pub fn start(&self, spec: &Spec) {
        let mut a: Vec<String> = [
            "run",
            "--detach",
            "--label",
            &self.label(),
            "--name",
            &self.name(&spec.name),
            "--hostname",
            &spec.name,
            "--network",
            &self.name(&spec.network),
            "--network-alias",
            &spec.name,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for alias in &spec.aliases {
            a.extend(["--network-alias".into(), alias.clone()]);
        }
        for (src, dst) in &spec.mounts {
            if src.starts_with('/') {
                a.extend(["--volume".into(), format!("{src}:{dst}:ro")]);
            } else {
                a.extend(["--volume".into(), format!("{}:{dst}", self.name(src))]);
            }
        }
        for (k, v) in &spec.env {
            a.extend(["--env".into(), format!("{k}={v}")]);
        }
        for p in &spec.publish {
            a.extend(["--publish".into(), format!("127.0.0.1::{p}")]);
        }
        if spec.fast_healthcheck {
            a.extend([
                "--health-interval=1s".into(),
                "--health-start-period=1s".into(),
            ]);
        }
        a.push(self.image.clone());
        a.extend(spec.args.iter().cloned());
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        self.ok(&a);
    }

    /// Connects a container to one more network under `alias`.
    pub fn connect(&self, network: &str, container: &str, alias: &str) {
        let (n, c) = (self.name(network), self.name(container));
        self.ok(&["network", "connect", "--alias", alias, &n, &c]);
    }

    /// Disconnects a container from a network.
    pub fn disconnect(&self, network: &str, container: &str) {
        let (n, c) = (self.name(network), self.name(container));
        self.ok(&["network", "disconnect", &n, &c]);
    }

    /// What the container wrote to stdout, and to stderr.
    pub fn logs(&self, container: &str) -> (String, String) {
        let c = self.name(container);
        let out = run_with_timeout("docker", &["logs", &c], COMMAND_TIMEOUT);
        assert!(out.ok, "docker logs {c}: {}", out.stderr);
        (out.stdout, out.stderr)
    }

    /// Waits until the collector in `container` has logged that it is ready `times` times
    /// (a restarted container's log holds every run's lines).
    pub fn wait_ready(&self, container: &str, times: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let (_, err) = self.logs(container);
            if err.matches("Everything is ready").count() >= times {
                return;
            }
            let state = self.ok(&[
                "inspect",
                "--format",
                "{{.State.Status}}",
                &self.name(container),
            ]);
            if Instant::now() >= deadline || state.trim() == "exited" {
                panic!(
                    "{container} not ready (state {}) within {timeout:?}; log:\n{err}",
                    state.trim()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The host address a published container port is reachable at.
    pub fn port(&self, container: &str, port: u16) -> SocketAddr {
        let out = self.ok(&["port", &self.name(container), &format!("{port}/tcp")]);
        out.lines()
            .find_map(|l| l.trim().parse().ok())
            .unwrap_or_else(|| panic!("no published 127.0.0.1 port for {container}:{port}: {out}"))
    }

    /// `docker inspect --format FORMAT` on a container.
    pub fn inspect(&self, container: &str, format: &str) -> String {
        self.ok(&["inspect", "--format", format, &self.name(container)])
            .trim()
            .to_string()
    }

    /// Waits until Docker reports the container's health check `healthy`.
    pub fn wait_healthy(&self, container: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let h = self.inspect(container, "{{.State.Health.Status}}");
            if h == "healthy" {
                return;
            }
            if Instant::now() >= deadline {
                let log = self.inspect(container, "{{json .State.Health.Log}}");
                panic!("{container} is {h}, not healthy, after {timeout:?}: {log}");
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Runs a docker command on a container of the run (`kill`, `stop`, `start`).
    pub fn container(&self, verb: &str, container: &str) {
        self.ok(&[verb, &self.name(container)]);
    }
}

impl Drop for Docker {
    fn drop(&mut self) {
        // Best effort, never panicking (this may run while a failed test unwinds): every
        // container, network and volume carrying the run's label, then the image.
        let label = format!("label={}", self.label());
        let quiet = |args: &[&str]| {
            Command::new("docker")
                .args(args)
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default()
        };
        let ids = quiet(&["ps", "-aq", "--filter", &label]);
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if !ids.is_empty() {
            let mut a = vec!["rm", "--force", "--volumes"];
            a.extend(&ids);
            quiet(&a);
        }
        for kind in ["network", "volume"] {
            let names = quiet(&[kind, "ls", "-q", "--filter", &label]);
            for n in names.split_whitespace() {
                quiet(&[kind, "rm", n]);
            }
        }
        quiet(&["rmi", "--force", &self.image]);
    }
}

/// What a recording backend (a wasmcol whose `debug` exporter prints `verbosity: normal`
/// lines to stdout) received: one entry per span line, with its resource's
/// `deployment.region` and its own `telemetry.source`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub id: u64,
    pub region: Option<String>,
    pub source: Option<String>,
}

/// Parses the debug exporter's `normal` text: `ResourceTraces #i k=v ...` lines give the
/// resource attributes of the span lines (`name traceid spanid k=v ...`) below them.
pub fn parse_recorded(stdout: &str) -> Vec<Recorded> {
    let mut region = None;
    let mut out = Vec::new();
    let value = |tokens: &[&str], key: &str| {
        tokens
            .iter()
            .find_map(|t| t.strip_prefix(key)?.strip_prefix('='))
            .map(str::to_string)
    };
    for line in stdout.lines() {
        let tokens: Vec<&str> = line.split_ascii_whitespace().collect();
        match tokens.first() {
            Some(&"ResourceTraces") => region = value(&tokens[1..], "deployment.region"),
            Some(name) if name.starts_with("span-") && tokens.len() >= 3 => {
                let Ok(id) = u64::from_str_radix(tokens[2], 16) else {
                    continue;
                };
                out.push(Recorded {
                    id,
                    region: region.clone(),
                    source: value(&tokens[3..], "telemetry.source"),
                });
            }
            _ => {}
        }
    }
    out
}

#[test]
fn recorded_lines_parse() {
    let text = "Traces {\"resource spans\": 1, \"spans\": 2}\n\
        ResourceTraces #0 deployment.region=us-east-1\nScopeTraces #0\n\
        span-1 00000000000000000000000000000001 0000000000000001\n\
        span-2 00000000000000000000000000000002 0000000000000002 telemetry.source=cross-region-forward\n\
        ResourceTraces #1\nScopeTraces #1\n\
        span-3 00000000000000000000000000000003 0000000000000003\n";
    let r = parse_recorded(text);
    assert_eq!(r.len(), 3);
    assert_eq!(r[0].region.as_deref(), Some("us-east-1"));
    assert_eq!(r[0].source, None);
    assert_eq!(r[1].source.as_deref(), Some("cross-region-forward"));
    assert_eq!((r[2].id, r[2].region.clone()), (3, None));
}
