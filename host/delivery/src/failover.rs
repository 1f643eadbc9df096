//! The `failover` connector: routes each batch to the first healthy level of
//! `priority_levels`, where a level's health comes from what its exporters actually achieve.
//!
//! # Why outcomes, not errors
//!
//! Upstream's connector only learns of trouble when `Consume` fails. Exporters with a sending
//! queue (the default) accept everything while their queue has room and retry in the
//! background, so the connector never fails over (contrib#34582, #39779, #50234). Here every
//! exporter's chain records each send attempt and its queue fill in a
//! [`DeliveryHealth`], and the graph hands those to the connector with each pipeline.
//!
//! # Health thresholds
//!
//! A level is **unhealthy** when any of these holds, else healthy:
//! - one of its exporters has had `health.failure_threshold` (default **3**) consecutive
//!   failed send attempts with no success since — attempts of all requests count, so with
//!   traffic a dead backend is noticed within the first few attempts (about one per request
//!   plus retries), while a single timeout among successes is not;
//! - one of its exporters' queues is at or past `health.queue_high_water` (default **0.8**)
//!   of its capacity — the level could not absorb a burst;
//! - a `consume` into the level returned an error (queue full, shutting down, or a pipeline
//!   without a queue failing), until a later `consume` into it succeeds.
//!
//! # Routing
//!
//! Each batch goes to the first healthy level (the *current* level); when no level is
//! healthy, to the last one — in the seed deployment the disk-backed level, which buffers
//! while its own sends fail. If the chosen level refuses the batch, the levels below it are
//! tried in order; if all refuse, the error goes back to the sender (a retryable error
//! becomes 503 / UNAVAILABLE with its retry hint). Levels above the chosen one are never used
//! as a fallback for a refusal: they were judged unhealthy, and their memory queues would
//! hold data that cannot currently be delivered.
//!
//! # Probing and recovery
//!
//! While the current level is not the first, every `retry_interval` (default **10m**) one
//! live batch is also sent to the higher levels, in order, until one accepts it. A level
//! whose exporters report health then proves itself by the outcome of that send (a success
//! resets its failure count); the same batch is still delivered to the current level, so a
//! probe that ends up failing loses nothing (it may arrive twice). A level without health
//! reports (e.g. a pipeline ending in another connector) is trusted as soon as it accepts.
//! Retries of requests already queued in a higher level count too: the first success makes
//! it healthy again. Once a higher level is healthy, new data goes there while the lower
//! level keeps draining its own queue.
//!
//! Items accepted by the primary's memory queue before the outage was noticed stay there
//! under the primary's `retry_on_failure` policy; set `max_elapsed_time: 0` on the primary
//! so they wait for the backend instead of being dropped after five minutes.
//!
//! # Config
//!
//! `priority_levels` (required), `retry_interval` (10m) or `strategy: standard` with
//! `standard.retry_interval`; the deprecated `retry_gap` and `max_retries` are accepted with
//! a warning and ignored, as upstream does since contrib#38064. A connector-level
//! `sending_queue` is accepted and validated but the connector does not queue: buffering is
//! the exporters' job, and a queue here would hide their failures again.
//! `health.failure_threshold` and `health.queue_high_water` are wasmcol additions.
//!
//! # Metrics
//!
//! `otelcol_connector_failover_count{connector, level}` counts moves away from `level`;
//! `wasmcol_connector_failover_level{connector}` is the current level (0 = primary);
//! `wasmcol_connector_failover_recovered{connector}` counts returns to a higher level.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;
use serde::Deserialize;
use tokio::time::Instant;
use wasmcol_config::exporterhelper::QueueConfig;
use wasmcol_config::{GoDuration, PipelineId, Value};
use wasmcol_core::{
    Batch, BuildError, ConnectorFactory, ConnectorRoutes, ConsumeError, Consumer, ConsumerRef,
    Counter, CreateContext, DeliveryHealth, Gauge, Lifecycle, Signal,
};

/// `standard` strategy settings (newest upstream config shape).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StandardConfig {
    /// Probe interval; overrides the top-level `retry_interval`.
    pub retry_interval: Option<GoDuration>,
}

/// When a level counts as unhealthy (wasmcol addition).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    /// Consecutive failed send attempts of one exporter that make its level unhealthy (3).
    pub failure_threshold: u64,
    /// Queue fill (fraction of capacity) that makes a level unhealthy (0.8).
    pub queue_high_water: f64,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            failure_threshold: 3,
            queue_high_water: 0.8,
        }
    }
}

/// `connectors: failover`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FailoverConfig {
    /// Levels of pipeline ids, highest priority first.
    pub priority_levels: Vec<Vec<PipelineId>>,
    /// How often higher levels are probed with live data (10m).
    pub retry_interval: Option<GoDuration>,
    /// Deprecated upstream; accepted with a warning, ignored.
    pub retry_gap: Option<GoDuration>,
    /// Deprecated upstream; accepted with a warning, ignored.
    pub max_retries: Option<i64>,
    /// Only `standard`.
    pub strategy: Option<String>,
    /// Settings of the `standard` strategy.
    pub standard: Option<StandardConfig>,
    /// Upstream's connector-level queue: accepted and validated; the connector does not queue.
    pub sending_queue: Option<QueueConfig>,
    /// Health thresholds.
    pub health: HealthConfig,
}

/// Default probe interval, upstream's.
pub const DEFAULT_RETRY_INTERVAL: Duration = Duration::from_secs(600);

impl FailoverConfig {
    /// The probe interval in effect.
    pub fn effective_retry_interval(&self) -> Duration {
        self.standard
            .as_ref()
            .and_then(|s| s.retry_interval)
            .or(self.retry_interval)
            .map_or(DEFAULT_RETRY_INTERVAL, Duration::from)
    }

    fn validate(&self, routes: &ConnectorRoutes) -> Vec<String> {
        let mut e = Vec::new();
        if self.priority_levels.is_empty() {
            e.push("priority_levels: No pipelines are defined in the priority list".to_owned());
        }
        for (i, level) in self.priority_levels.iter().enumerate() {
            if level.is_empty() {
                e.push(format!(
                    "priority_levels[{i}]: a level must list at least one pipeline"
                ));
            }
            for (j, p) in level.iter().enumerate() {
                if !routes.pipelines.contains_key(p) {
                    e.push(format!(
                        "priority_levels[{i}][{j}]: pipeline {:?} does not receive from this connector",
                        p.to_string()
                    ));
                }
            }
        }
        if self.effective_retry_interval().is_zero() {
            e.push("retry_interval: Retry interval must be positive".to_owned());
        }
        if let Some(s) = &self.strategy
            && s != "standard"
        {
            e.push(format!(
                "strategy: strategy is invalid: {s:?} (valid values: [standard])"
            ));
        }
        if !(0.0..=1.0).contains(&self.health.queue_high_water)
            || self.health.queue_high_water == 0.0
        {
            e.push("health.queue_high_water: must be within (0, 1]".to_owned());
        }
        if let Some(q) = &self.sending_queue {
            e.extend(q.validate());
        }
        e
    }
}

struct Level {
    pipelines: Vec<ConsumerRef>,
    health: Vec<Arc<DeliveryHealth>>,
    /// A consume into the level failed and none has succeeded since.
    refused: AtomicBool,
    failed_from: Counter,
}

impl Level {
    async fn consume(&self, batch: Batch) -> Result<(), ConsumeError> {
        // A level is a fan-out over its pipelines, like upstream: one failure fails the level.
        let mut errors = Vec::new();
        let last = self.pipelines.len().saturating_sub(1);
        let mut batch = Some(batch);
        for (i, p) in self.pipelines.iter().enumerate() {
            let b = if i == last {
                batch.take()
            } else {
                batch.clone()
            };
            if let Some(b) = b
                && let Err(e) = p.consume(b).await
            {
                errors.push(e);
            }
        }
        match ConsumeError::join(errors) {
            None => {
                self.refused.store(false, Ordering::Relaxed);
                Ok(())
            }
            Some(e) => {
                self.refused.store(true, Ordering::Relaxed);
                Err(e)
            }
        }
    }
}

/// The connector.
pub struct FailoverConnector {
    name: String,
    levels: Vec<Level>,
    current: AtomicUsize,
    next_probe: Mutex<Option<Instant>>,
    retry_interval: Duration,
    health: HealthConfig,
    level_gauge: Gauge,
    recovered: Counter,
}

impl FailoverConnector {
    fn healthy(&self, i: usize) -> bool {
        let Some(level) = self.levels.get(i) else {
            return false;
        };
        !level.refused.load(Ordering::Relaxed)
            && !level.health.iter().any(|h| {
                h.is_unhealthy(self.health.failure_threshold, self.health.queue_high_water)
            })
    }

    /// The level new data should go to now.
    fn choose(&self) -> usize {
        (0..self.levels.len())
            .find(|&i| self.healthy(i))
            .unwrap_or(self.levels.len().saturating_sub(1))
    }

    /// Records a move of the current level from `from` to `to`.
    fn switch(&self, from: usize, to: usize) {
        if from == to
            || self
                .current
                .compare_exchange(from, to, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        self.level_gauge.set(to as i64);
        if to > from {
            for l in &self.levels[from..to] {
                l.failed_from.inc();
            }
            tracing::warn!(connector = %self.name, from, to, "failover: level unhealthy, routing to a lower priority level");
            let mut next = self.next_probe.lock();
            if next.is_none() {
                *next = Some(Instant::now() + self.retry_interval);
            }
        } else {
            self.recovered.inc();
            tracing::info!(connector = %self.name, from, to, "failover: higher priority level healthy again");
            if to == 0 {
                *self.next_probe.lock() = None;
            }
        }
    }

    /// Whether this call should probe higher levels; takes the probe slot.
    fn take_probe(&self) -> bool {
        let mut next = self.next_probe.lock();
        let now = Instant::now();
        match *next {
            Some(t) if now >= t => {
                *next = Some(now + self.retry_interval);
                true
            }
            None => {
                *next = Some(now + self.retry_interval);
                false
            }
            _ => false,
        }
    }

    /// The current level index (0 = highest priority).
    pub fn current_level(&self) -> usize {
        self.current.load(Ordering::Relaxed)
    }
}

#[async_trait]
impl Consumer for FailoverConnector {
    async fn consume(&self, batch: Batch) -> Result<(), ConsumeError> {
        let before = self.current.load(Ordering::Relaxed);
        let mut chosen = self.choose();
        self.switch(before, chosen);

        if chosen > 0 && self.take_probe() {
            for i in 0..chosen {
                if self.levels[i].consume(batch.clone()).await.is_ok() {
                    if self.healthy(i) {
                        // Proven by the send itself (no queue, or no health reports).
                        tracing::info!(connector = %self.name, level = i, "failover: probe succeeded");
                        self.switch(self.current.load(Ordering::Relaxed), i);
                        return Ok(());
                    }
                    // Queued: its outcome will show in the level's health; the current
                    // level still gets the batch so a failed probe loses nothing.
                    break;
                }
            }
            chosen = self.current.load(Ordering::Relaxed).max(chosen);
        }

        let mut errors = Vec::new();
        for i in chosen..self.levels.len() {
            match self.levels[i].consume(batch.clone()).await {
                Ok(()) => {
                    if i != chosen {
                        self.switch(self.current.load(Ordering::Relaxed), i);
                    }
                    return Ok(());
                }
                Err(e) => errors.push(e),
            }
        }
        Err(match ConsumeError::join(errors) {
            Some(ConsumeError::Permanent(m)) => {
                ConsumeError::Permanent(m.context("All provided pipelines return errors"))
            }
            Some(ConsumeError::Retryable {
                message,
                retry_after,
            }) => ConsumeError::Retryable {
                message: format!("All provided pipelines return errors: {message}"),
                retry_after,
            },
            Some(ConsumeError::ShuttingDown) | None => ConsumeError::ShuttingDown,
        })
    }

    fn answers_on_enqueue(&self) -> bool {
        self.levels
            .iter()
            .flat_map(|l| &l.pipelines)
            .all(|p| p.answers_on_enqueue())
    }

    fn adopt_batching(&self, plan: &wasmcol_config::exporterhelper::QueueBatchConfig) {
        for p in self.levels.iter().flat_map(|l| &l.pipelines) {
            p.adopt_batching(plan);
        }
    }
}

#[async_trait]
impl Lifecycle for FailoverConnector {}

impl wasmcol_core::Connector for FailoverConnector {}

/// Builds `failover` connectors.
pub struct FailoverFactory;

impl ConnectorFactory for FailoverFactory {
    fn supports(&self, from: Signal, to: Signal) -> bool {
        from == to
    }

    fn create(
        &self,
        ctx: &CreateContext,
        config: &Value,
        _from: Signal,
        _to: Signal,
        routes: ConnectorRoutes,
    ) -> Result<Arc<dyn wasmcol_core::Connector>, BuildError> {
        let cfg: FailoverConfig = wasmcol_config::decode(config).map_err(BuildError::new)?;
        let errors = cfg.validate(&routes);
        if !errors.is_empty() {
            return Err(BuildError::from(errors));
        }
        let name = ctx.id.to_string();
        if cfg.retry_gap.is_some() {
            tracing::warn!(connector = %name, "`retry_gap` is deprecated and ignored (upstream contrib#38064)");
        }
        if cfg.max_retries.is_some() {
            tracing::warn!(connector = %name, "`max_retries` is deprecated and ignored (upstream contrib#38064)");
        }
        if cfg.sending_queue.as_ref().is_some_and(|q| q.enabled) {
            tracing::info!(connector = %name, "failover: connector-level `sending_queue` is accepted but not used; the exporters behind the connector queue and retry");
        }
        let levels = cfg
            .priority_levels
            .iter()
            .enumerate()
            .map(|(i, ids)| {
                let mut pipelines = Vec::new();
                let mut health = Vec::new();
                for id in ids {
                    if let Some((c, h)) = routes.pipelines.get(id) {
                        pipelines.push(c.clone());
                        health.extend(h.iter().cloned());
                    }
                }
                let level = i.to_string();
                Level {
                    pipelines,
                    health,
                    refused: AtomicBool::new(false),
                    failed_from: ctx.metrics.counter(
                        "otelcol_connector_failover_count",
                        "Number of times the connector failed from the respective level.",
                        &[("connector", &name), ("level", &level)],
                    ),
                }
            })
            .collect();
        let labels = [("connector", name.as_str())];
        let level_gauge = ctx.metrics.gauge(
            "wasmcol_connector_failover_level",
            "Priority level the failover connector currently routes to (0 = highest).",
            &labels,
        );
        level_gauge.set(0);
        Ok(Arc::new(FailoverConnector {
            recovered: ctx.metrics.counter(
                "wasmcol_connector_failover_recovered",
                "Number of times the failover connector returned to a higher priority level.",
                &labels,
            ),
            name,
            levels,
            current: AtomicUsize::new(0),
            next_probe: Mutex::new(None),
            retry_interval: cfg.effective_retry_interval(),
            health: cfg.health,
            level_gauge,
        }))
    }
}
