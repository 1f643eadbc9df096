//! The `wasm` processor's config.

use serde::Deserialize;
use wasmcol_config::GoDuration;

use crate::call::Limits;
use crate::engine::MAX_MEMORY_MIB;

/// What to do with a batch when the plugin call fails.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// Refuse the batch: the sender gets a retryable error (503 / UNAVAILABLE), or a
    /// permanent one when the plugin said retrying cannot help. Nothing is silently lost.
    #[default]
    Refuse,
    /// Acknowledge and discard the batch (counted in `wasmcol_plugin_dropped_items`).
    Drop,
    /// Forward the batch unchanged, as if the processor were not there.
    Pass,
}

/// `limits:`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Wall-clock time per call (default 1s), waits inside WASI host calls included.
    #[serde(default)]
    pub timeout: Option<GoDuration>,
    /// Memory budget of each instance in MiB (default 128, at most 1024): all its linear
    /// memories and tables, plus what the host holds for it during a call.
    #[serde(default)]
    pub memory_mib: Option<u64>,
    /// Instructions' worth of fuel per call. Runs the plugin on a fuel-metering engine
    /// (about 15-40 % slower than deadline-only); exhausting it counts as a timeout.
    #[serde(default)]
    pub fuel: Option<u64>,
}

impl LimitsConfig {
    /// Checks ranges and returns the limits, or messages with key paths.
    pub fn resolve(&self, prefix: &str) -> Result<Limits, Vec<String>> {
        let mut errors = Vec::new();
        let mut limits = Limits::default();
        if let Some(t) = self.timeout {
            if t.is_zero() {
                errors.push(format!("{prefix}timeout: must be greater than zero"));
            }
            limits.timeout = t.0;
        }
        if let Some(m) = self.memory_mib {
            if m == 0 || m > MAX_MEMORY_MIB {
                errors.push(format!(
                    "{prefix}memory_mib: must be between 1 and {MAX_MEMORY_MIB}, got {m}"
                ));
            }
            limits.memory_mib = m;
        }
        if let Some(f) = self.fuel {
            if f == 0 {
                errors.push(format!("{prefix}fuel: must be greater than zero"));
            }
            limits.fuel = Some(f);
        }
        if errors.is_empty() {
            Ok(limits)
        } else {
            Err(errors)
        }
    }
}

/// The `wasm` processor: an operator's own component.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WasmConfig {
    /// Path of the `.wasm` component.
    pub path: String,
    /// Expected SHA-256 of the file (hex); a mismatch is an error.
    #[serde(default)]
    pub sha256: Option<String>,
    /// The plugin's own config, passed to it as JSON.
    #[serde(default)]
    pub config: serde_yaml::Value,
    /// Per-call limits.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Failure policy.
    #[serde(default)]
    pub on_error: OnError,
    /// How often `path` is checked for a new version, which is then loaded and swapped in
    /// without a restart (default 1s); `0s` checks only on SIGHUP.
    #[serde(default)]
    pub watch_interval: Option<GoDuration>,
}

impl WasmConfig {
    /// The file-watch period: `None` when only SIGHUP reloads.
    pub fn watch(&self) -> Option<std::time::Duration> {
        match self.watch_interval {
            None => Some(std::time::Duration::from_secs(1)),
            Some(d) if d.is_zero() => None,
            Some(d) => Some(d.0),
        }
    }
}

/// A YAML body as the JSON a plugin's `configure` gets (`{}` for an empty body).
pub fn to_json(value: &serde_yaml::Value) -> Result<String, String> {
    if value.is_null() {
        return Ok("{}".into());
    }
    serde_json::to_string(value)
        .map_err(|e| format!("cannot pass the config to the plugin as JSON: {e}"))
}
