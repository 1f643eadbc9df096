//! Hot reload of a `wasm` processor's component: when its file changes (checked every
//! `watch_interval`) or the collector gets SIGHUP, the new component is read, checked
//! (`sha256` when set), compiled on the blocking pool and configured with the processor's
//! config, all off the data path; only then is it swapped in. Calls that began before the
//! swap finish on the old instances (they hold the old [`Prepared`]); calls that begin after
//! it use the new ones, so no request is refused for the swap. A new version that fails any
//! step is not swapped in: the old one keeps serving and the log says why.
//!
//! Plugins that hold traces (tail sampling) are not reloaded: their buffered traces live in
//! the processor's instance state and would be lost with it.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::RwLock;
use wasmcol_core::{Counter, CreateContext};

use super::{PluginProcessor, Prepared, Source, read_file};

/// The live [`Prepared`], shared with the processor's background tasks.
#[derive(Clone, Default)]
pub(super) struct Live(Arc<RwLock<Option<Arc<Prepared>>>>);

impl Live {
    /// The live plugin, if prepared. The lock is only held to clone the `Arc`.
    pub(super) fn get(&self) -> Option<Arc<Prepared>> {
        self.0.read().clone()
    }

    /// Makes `p` the live plugin; the previous one lives on until its last call ends.
    pub(super) fn set(&self, p: Arc<Prepared>) {
        *self.0.write() = Some(p);
    }
}

/// `wasmcol_plugin_reloads{processor, outcome}`.
pub(super) struct ReloadMetrics {
    success: Counter,
    failure: Counter,
}

impl ReloadMetrics {
    pub(super) fn new(ctx: &CreateContext, id: &str) -> Self {
        let counter = |outcome| {
            ctx.metrics.counter(
                "wasmcol_plugin_reloads",
                "Hot reloads of a wasm processor's component, by outcome (success: swapped in; \
                 failure: the previous version kept serving).",
                &[("processor", id), ("outcome", outcome)],
            )
        };
        ReloadMetrics {
            success: counter("success"),
            failure: counter("failure"),
        }
    }
}

/// What identifies a version of the file without reading it.
type Stamp = Option<(SystemTime, u64)>;

async fn stamp(path: &str) -> Stamp {
    let p = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let m = std::fs::metadata(p).ok()?;
        Some((m.modified().ok()?, m.len()))
    })
    .await
    .ok()
    .flatten()
}

impl PluginProcessor {
    /// Starts the task that watches the component's file and SIGHUP (file-backed
    /// processors only).
    pub(super) fn start_reloading(&self) {
        let Source::File { path, watch, .. } = &self.spec.source else {
            return;
        };
        let (path, watch) = (path.clone(), *watch);
        let me = self.me.clone();
        let mut hangups = self.spec.runtime.reload_requests();
        let token = self.tasks.token();
        self.tasks.spawn(async move {
            let mut last = stamp(&path).await;
            // A long period stands in for "never" when only SIGHUP reloads.
            let period = watch.unwrap_or(Duration::from_secs(3600));
            let mut every = tokio::time::interval(period);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            every.tick().await;
            loop {
                let forced = tokio::select! {
                    _ = token.cancelled() => break,
                    changed = hangups.changed() => {
                        if changed.is_err() {
                            break;
                        }
                        true
                    }
                    _ = every.tick() => false,
                };
                if !forced && watch.is_none() {
                    continue;
                }
                let now = stamp(&path).await;
                if !forced && now == last {
                    continue;
                }
                last = now;
                let Some(p) = me.upgrade() else { break };
                p.reload(&path).await;
            }
        });
    }

    /// Loads the file's component and swaps it in, unless it is the live one or fails.
    async fn reload(&self, path: &str) {
        let Source::File { sha256, .. } = &self.spec.source else {
            return;
        };
        let Some(live) = self.live.get() else { return };
        let result = async {
            let bytes = read_file(path, sha256.as_deref()).await?;
            let plugin = self
                .spec
                .runtime
                .load(bytes, self.spec.limits.fuel.is_some())
                .await
                .map_err(|e| format!("path: cannot load {path:?}: {e}"))?;
            if plugin.sha256 == live.plugin.sha256 {
                return Ok(None);
            }
            let prepared = self.assemble(plugin).await?;
            if prepared.held.is_some() {
                return Err(
                    "the new version holds traces; a processor is not switched to or \
                            from holding traces by a reload"
                        .to_owned(),
                );
            }
            Ok(Some(prepared))
        }
        .await;
        match result {
            Ok(None) => {}
            Ok(Some(prepared)) => {
                tracing::info!(processor = %self.id, path, old = %live.plugin.sha256, new = %prepared.plugin.sha256, version = %prepared.plugin.info.version, "plugin reloaded: new calls use the new version");
                self.live.set(Arc::new(prepared));
                self.reloads.success.inc();
            }
            Err(e) => {
                tracing::warn!(processor = %self.id, path, error = %e, "plugin reload failed; the previous version keeps serving");
                self.reloads.failure.inc();
            }
        }
    }
}
