//! The seed deployments' configs, run as shipped in `examples/`: a test supplies endpoints,
//! certificate and queue directories through the environment variables the examples read
//! (`${env:X:-default}`) and moves listeners to loopback with `--set`, so a change to an
//! example is a change to what the tests run.
#![allow(dead_code)]
// Test code: a failed expectation is reported by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use crate::common::{Backend, Collector};

/// How to start (or validate) one example config.
#[derive(Clone, Debug)]
pub struct Launch {
    /// The config file in `examples/`.
    pub config: PathBuf,
    /// `--set key=value` overrides.
    pub sets: Vec<String>,
    /// Environment variables for the collector.
    pub env: Vec<(String, String)>,
}

impl Launch {
    /// `examples/<name>` with nothing overridden.
    pub fn example(name: &str) -> Launch {
        Launch {
            config: wasmcol_testkit::examples::path(name),
            sets: Vec::new(),
            env: Vec::new(),
        }
    }

    /// Adds a `--set key=value` override.
    pub fn set(mut self, kv: impl Into<String>) -> Launch {
        self.sets.push(kv.into());
        self
    }

    /// Adds an environment variable.
    pub fn env(mut self, key: &str, value: impl Into<String>) -> Launch {
        self.env.push((key.into(), value.into()));
        self
    }

    fn args(&self) -> Vec<String> {
        self.sets
            .iter()
            .flat_map(|kv| ["--set".to_string(), kv.clone()])
            .collect()
    }

    /// Starts the collector and waits until it is ready.
    pub fn start(&self) -> Collector {
        let args = self.args();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Collector::start_with_env(
            tempfile::tempdir().unwrap(),
            self.config.clone(),
            false,
            &args,
            &self.env,
        )
    }

    /// Runs `wasmcol validate` on it: (success, stdout, stderr).
    pub fn validate(&self) -> (bool, String, String) {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_wasmcol"))
            .arg("validate")
            .arg("--config")
            .arg(&self.config)
            .args(self.args())
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

/// Seed 000's EU-West gateway: mTLS on gRPC and HTTP with the certificates in `certs` (the
/// seed's file names), writing to `backend`.
pub fn seed_000_gateway(certs: &Path, backend: &Backend) -> Launch {
    Launch::example("seed-000-gateway-eu-west.yaml")
        .env("CERT_DIR", certs.display().to_string())
        .env("LOCAL_BACKEND", format!("http://{}", backend.endpoint()))
        .set("receivers.otlp.protocols.grpc.endpoint=127.0.0.1:0")
        .set("receivers.otlp.protocols.http.endpoint=127.0.0.1:0")
}

/// Seed 000's US-East region collector: local export to `local`, cross-region export over
/// mTLS to `gateway` (`host:port`), persistent queues under `queues` (created here).
pub fn seed_000_region(certs: &Path, local: &Backend, gateway: &str, queues: &Path) -> Launch {
    std::fs::create_dir_all(queues.join("local")).unwrap();
    std::fs::create_dir_all(queues.join("cross-region")).unwrap();
    Launch::example("seed-000-region-us-east.yaml")
        .env("CERT_DIR", certs.display().to_string())
        .env("LOCAL_BACKEND", format!("http://{}", local.endpoint()))
        .env("CROSS_REGION_GATEWAY", gateway)
        .env("QUEUE_DIR", queues.display().to_string())
        .set("receivers.otlp.protocols.grpc.endpoint=127.0.0.1:0")
        .set("receivers.otlp.protocols.http.endpoint=127.0.0.1:0")
}

/// Seed 001's failover topology: both levels export to `aggregator`, the failover level's
/// queue under `queues` (created by the collector's storage).
pub fn seed_001(aggregator: &Backend, queues: &Path) -> Launch {
    std::fs::create_dir_all(queues.join("failover")).unwrap();
    Launch::example("seed-001-failover.yaml")
        .env("AGGREGATOR", aggregator.endpoint())
        .env("QUEUE_DIR", queues.display().to_string())
        .set("receivers.otlp.protocols.grpc.endpoint=127.0.0.1:0")
        .set("receivers.otlp.protocols.http.endpoint=127.0.0.1:0")
        .set("extensions.health_check.endpoint=127.0.0.1:0")
}
