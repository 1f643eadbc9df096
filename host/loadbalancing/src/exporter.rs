//! The `load_balancing` exporter (traces, metrics and logs): splits each request by routing
//! key over the ring and hands every part to its backend's own `otlp` exporter chain (queue,
//! retry, timeout from `protocol.otlp`). The request is answered once every part is answered
//! — once every part is enqueued, with the backends' default queues.
//!
//! Backends come from the resolver: `static` once at start, `dns` at start and then every
//! `interval` on a tracked task. A failed resolution keeps the last good ring and is
//! counted. A vanished backend's sender hands every later attempt back to the router, so its
//! queue drains into the backends that remain; then its chain is stopped.
//!
//! Each backend's chain has its own component id, so a persistent queue has its own keyspace
//! per backend. Once the first ring exists, the keyspaces of backends not in it (left by a
//! run that had other backends) are opened as removed backends: the same hand-over replays
//! their records through the ring, and each keyspace is deleted once empty.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::RwLock;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use wasmcol_config::exporterhelper::{HelperConfig, QueueConfig, RetryConfig};
use wasmcol_config::{ComponentId, KeyError, Value};
use wasmcol_core::{
    Batch, BuildError, ChainBuilder, ComponentError, ConsumeError, CreateContext, Exporter,
    ExporterFactory, ExporterParts, Lifecycle, Sender, Signal, Tasks,
};
use wasmcol_delivery::retry::Backoff;
use wasmcol_delivery::storage::{FileStorage, queue_name, unescape_queue_name};
use wasmcol_pdata::{LogsBatch, MetricsBatch, TracesBatch};

use crate::{
    Config, Resolver, Ring, RouteError, RoutingKey, split_encoded_by_trace, split_logs,
    split_metrics, split_traces,
};

/// Port added to a backend named without one, as upstream.
const DEFAULT_PORT: &str = "4317";

/// Builds `load_balancing` exporters (alias `loadbalancing`).
pub struct LoadBalancingFactory {
    /// Builds each backend's `otlp` sender.
    pub otlp: Arc<dyn ExporterFactory>,
    /// Wraps each backend's sender in its delivery chain.
    pub chain: Arc<dyn ChainBuilder>,
}

impl ExporterFactory for LoadBalancingFactory {
    fn signals(&self) -> &[Signal] {
        &Signal::ALL
    }

    fn create(
        &self,
        ctx: &CreateContext,
        config: &Value,
        signal: Signal,
    ) -> Result<ExporterParts, BuildError> {
        let cfg: Config = wasmcol_config::decode(config)?;
        let checked = cfg.check(signal);
        // The template must build on its own, so its problems are reported at start with
        // their path rather than when the first backend appears.
        let template = cfg
            .protocol
            .otlp
            .clone()
            .filter(|v| !v.is_null())
            .unwrap_or_else(|| Value::Mapping(Default::default()));
        let template_errors =
            match self
                .otlp
                .create(ctx, &with_endpoint(&template, "localhost:4317"), signal)
            {
                Ok(_) => Vec::new(),
                Err(e) => e.0.into_iter().map(|k| k.within("protocol.otlp")).collect(),
            };
        let checked = match checked {
            Ok(c) if template_errors.is_empty() => c,
            Ok(_) => return Err(BuildError(template_errors)),
            Err(mut errs) => {
                errs.extend(template_errors);
                return Err(BuildError(errs));
            }
        };
        let tasks = ctx.tasks.child();
        let resolver_label = match &checked.resolver {
            Resolver::Static(_) => "static",
            Resolver::Dns { .. } => "dns",
        };
        let metrics = LbMetrics::new(ctx, resolver_label);
        let off = HelperConfig::disabled();
        // Upstream's exporter-level settings are off unless configured. Retry and timeout
        // are applied by the router per part, not around the whole request.
        let helper = HelperConfig {
            timeout: cfg.timeout,
            retry: cfg.retry_on_failure.unwrap_or(off.retry.clone()),
            queue: cfg.sending_queue.unwrap_or(off.queue),
        };
        let errors: Vec<KeyError> = helper
            .validate()
            .into_iter()
            .map(|m| match m.split_once(": ") {
                Some((path, msg)) => KeyError::new(path, msg),
                None => KeyError::new("", m),
            })
            .collect();
        if !errors.is_empty() {
            return Err(BuildError(errors));
        }
        let sender = LoadBalancer(Arc::new_cyclic(|this| Inner {
            ctx: ctx.clone(),
            signal,
            template: checked.otlp,
            routing: checked.routing,
            resolver: checked.resolver,
            otlp: self.otlp.clone(),
            chain: self.chain.clone(),
            state: RwLock::new(State::default()),
            retry: helper.retry.clone(),
            timeout: helper.timeout.map(Duration::from),
            tasks,
            metrics,
            orphans_checked: AtomicBool::new(false),
            this: this.clone(),
        }));
        Ok(ExporterParts {
            sender: Arc::new(sender),
            helper: HelperConfig {
                timeout: None,
                retry: off.retry,
                queue: helper.queue,
            },
        })
    }
}

/// `template` with its `endpoint` set.
fn with_endpoint(template: &Value, endpoint: &str) -> Value {
    let mut body = template.clone();
    if let Value::Mapping(m) = &mut body {
        m.insert(
            Value::String("endpoint".into()),
            Value::String(endpoint.into()),
        );
    }
    body
}

/// The exporter endpoint for a ring name: the name, with `:4317` when it has no port.
fn endpoint_of(name: &str) -> String {
    let has_port = match name.strip_prefix('[') {
        Some(rest) => rest.contains("]:"),
        None => name.contains(':'),
    };
    if has_port {
        name.to_owned()
    } else {
        format!("{name}:{DEFAULT_PORT}")
    }
}

/// The backends in use and the ring over them.
#[derive(Default)]
struct State {
    ring: Arc<Ring>,
    backends: BTreeMap<String, Backend>,
    /// Bumped on every ring change, so a routing round can tell that a retry may land
    /// elsewhere.
    generation: u64,
}

/// One backend: its delivery chain and the sender inside it.
#[derive(Clone)]
struct Backend {
    exporter: Arc<dyn Exporter>,
    sender: Arc<BackendSender>,
}

struct LbMetrics {
    resolver: &'static str,
    resolutions_ok: wasmcol_core::Counter,
    resolutions_failed: wasmcol_core::Counter,
    backends: wasmcol_core::Gauge,
    updates: wasmcol_core::Counter,
    outcome_ok: wasmcol_core::Counter,
    outcome_failed: wasmcol_core::Counter,
    metrics: wasmcol_core::Metrics,
}

impl LbMetrics {
    fn new(ctx: &CreateContext, resolver: &'static str) -> Self {
        let m = &ctx.metrics;
        let resolutions = |success: &str| {
            m.counter(
                "otelcol_loadbalancer_num_resolutions",
                "Number of times the resolver has triggered new resolutions.",
                &[("resolver", resolver), ("success", success)],
            )
        };
        let outcome = |success: &str| {
            m.counter(
                "otelcol_loadbalancer_backend_outcome",
                "Number of successes and failures for each endpoint.",
                &[("success", success)],
            )
        };
        LbMetrics {
            resolver,
            resolutions_ok: resolutions("true"),
            resolutions_failed: resolutions("false"),
            backends: m.gauge(
                "otelcol_loadbalancer_num_backends",
                "Current number of backends in use.",
                &[("resolver", resolver)],
            ),
            updates: m.counter(
                "otelcol_loadbalancer_num_backend_updates",
                "Number of times the list of backends was updated.",
                &[("resolver", resolver)],
            ),
            outcome_ok: outcome("true"),
            outcome_failed: outcome("false"),
            metrics: m.clone(),
        }
    }

    fn latency(&self, endpoint: &str, elapsed: Duration) {
        self.metrics
            .histogram(
                "otelcol_loadbalancer_backend_latency",
                "Response latency in ms for the backends.",
                &[("endpoint", endpoint)],
                &[
                    5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0,
                ],
            )
            .observe(elapsed.as_secs_f64() * 1000.0);
    }
}

/// The exporter's sender: routes a request over the current ring, retrying only the parts
/// that failed, each time against the ring of that moment.
struct LoadBalancer(Arc<Inner>);

/// What the sender and its resolver task share.
struct Inner {
    ctx: CreateContext,
    signal: Signal,
    template: Value,
    routing: RoutingKey,
    resolver: Resolver,
    otlp: Arc<dyn ExporterFactory>,
    chain: Arc<dyn ChainBuilder>,
    state: RwLock<State>,
    /// Exporter-level `retry_on_failure`, applied per part by [`Inner::route`] rather than
    /// around the whole request, so parts a backend accepted are not sent again.
    retry: RetryConfig,
    /// Exporter-level `timeout`, per routing round.
    timeout: Option<Duration>,
    tasks: Tasks,
    metrics: LbMetrics,
    /// Set once the persistent queues of backends missing from the first ring were looked for.
    orphans_checked: AtomicBool,
    /// Handed to each backend's sender so a removed backend can route through this.
    this: Weak<Inner>,
}

/// How long a removed backend may take to hand its queue to the others before it is
/// stopped anyway (its requests then get one last hand-off attempt each).
const DRAIN_LIMIT: Duration = Duration::from_secs(60);
/// How often a draining backend's queue is looked at.
const DRAIN_POLL: Duration = Duration::from_millis(50);
/// Immediate re-routes after the ring changed under a failed part, before backoff applies.
const RING_CHANGE_RETRIES: u32 = 3;

/// A backend's sender: the `otlp` sender while the backend is in the ring; afterwards each
/// attempt hands the request to the load balancer, which splits it over the current ring.
/// So whatever a removed backend still holds (queued, persistent, or waiting for a retry)
/// reaches the remaining backends instead of being tried once and dropped (upstream).
struct BackendSender {
    otlp: Arc<dyn Sender>,
    removed: AtomicBool,
    /// Items handed to the load balancer since the backend was removed, for the log line.
    handed_over: AtomicU64,
    lb: Weak<Inner>,
}

impl BackendSender {
    fn is_removed(&self) -> bool {
        self.removed.load(Ordering::Acquire)
    }
}

#[async_trait]
impl Lifecycle for BackendSender {
    async fn prepare(&self) -> Result<(), ComponentError> {
        self.otlp.prepare().await
    }

    async fn start(&self) -> Result<(), ComponentError> {
        self.otlp.start().await
    }

    async fn shutdown(&self) -> Result<(), ComponentError> {
        self.otlp.shutdown().await
    }
}

#[async_trait]
impl Sender for BackendSender {
    async fn send(&self, batch: Batch) -> Result<(), ConsumeError> {
        if !self.is_removed() {
            match self.otlp.send(batch.clone()).await {
                Ok(()) => return Ok(()),
                // Removed while this attempt failed: the others take it now.
                Err(_) if self.is_removed() => {}
                Err(e) => return Err(e),
            }
        }
        let items = batch.item_count() as u64;
        match self.lb.upgrade() {
            Some(lb) => {
                lb.route(batch).await?;
                self.handed_over.fetch_add(items, Ordering::Relaxed);
                Ok(())
            }
            None => Err(ConsumeError::ShuttingDown),
        }
    }

    fn diverts(&self) -> bool {
        self.is_removed()
    }
}

/// Why a routing round did not deliver everything.
enum RoundError {
    /// Reported as is, without a retry: a permanent error, or a round that timed out (which
    /// parts landed is unknown, so sending all of them again would duplicate).
    Final(ConsumeError),
    /// These parts failed and may succeed later (the first error says why).
    Retry(Vec<Batch>, ConsumeError),
}

impl Inner {
    /// Builds and starts the exporter chain of one backend, with its own component id so a
    /// persistent queue gets its own keyspace per backend. A backend built `removed` hands
    /// everything its queue holds to the ring from the first attempt.
    async fn backend(&self, name: &str, removed: bool) -> Result<Backend, ComponentError> {
        let endpoint = endpoint_of(name);
        let id = ComponentId::new("otlp", Some(&format!("{}/{endpoint}", self.ctx.id)));
        let ctx = CreateContext {
            id,
            ..self.ctx.clone()
        };
        let body = with_endpoint(&self.template, &endpoint);
        let mut sender = None;
        let built = self
            .otlp
            .create(&ctx, &body, self.signal)
            .and_then(|mut parts| {
                let wrapped = Arc::new(BackendSender {
                    otlp: parts.sender,
                    removed: AtomicBool::new(removed),
                    handed_over: AtomicU64::new(0),
                    lb: self.this.clone(),
                });
                sender = Some(wrapped.clone());
                parts.sender = wrapped;
                self.chain.build(&ctx, self.signal, parts)
            })
            .map_err(|e| ComponentError::new(format!("backend {name}: {e}")))?;
        let sender =
            sender.ok_or_else(|| ComponentError::new(format!("backend {name}: no sender")))?;
        built.start().await?;
        Ok(Backend {
            exporter: built,
            sender,
        })
    }

    /// Replaces the ring with one over `names`: starts exporters for new backends, and
    /// drains the vanished ones into the new ring on a tracked task.
    async fn update(&self, mut names: Vec<String>) {
        names.sort();
        names.dedup();
        let existing = {
            let s = self.state.read();
            if s.ring.endpoints() == names.as_slice() {
                return;
            }
            s.backends.clone()
        };
        let mut backends = BTreeMap::new();
        for name in &names {
            match existing.get(name) {
                Some(b) => {
                    backends.insert(name.clone(), b.clone());
                }
                None => match self.backend(name, false).await {
                    Ok(b) => {
                        backends.insert(name.clone(), b);
                    }
                    Err(e) => tracing::error!(error = %e, "load_balancing: backend not started"),
                },
            }
        }
        let ring = Arc::new(Ring::new(backends.keys().cloned()));
        let gone: Vec<(String, Backend)> = existing
            .into_iter()
            .filter(|(k, _)| !backends.contains_key(k))
            .collect();
        self.metrics.backends.set(backends.len() as i64);
        self.metrics.updates.inc();
        tracing::info!(resolver = self.metrics.resolver, backends = ?ring.endpoints(), "load_balancing: backends changed");
        {
            let mut s = self.state.write();
            s.ring = ring;
            s.backends = backends;
            s.generation += 1;
        }
        // Only after the new ring is in place, so a hand-off never lands on a removed backend.
        for (name, backend) in gone {
            backend.sender.removed.store(true, Ordering::Release);
            let stop = self.tasks.token();
            self.tasks.spawn(drain(name, backend, stop));
        }
        if !self.state.read().ring.is_empty() && !self.orphans_checked.swap(true, Ordering::AcqRel)
        {
            self.replay_orphans().await;
        }
    }

    /// The `file_storage` extension of the backends' persistent queues, if they have one.
    fn queue_storage(&self) -> Option<Arc<dyn wasmcol_core::Extension>> {
        let Value::Mapping(m) = &self.template else {
            return None;
        };
        let queue = m.get("sending_queue")?;
        let id = wasmcol_config::decode::<QueueConfig>(queue).ok()?.storage?;
        self.ctx.extensions.get(&id).cloned()
    }

    /// Finds the persistent queues of this load balancer's backends that are not in the ring
    /// (a restart with another backend list) and replays each through the ring as a removed
    /// backend, so what they hold is delivered rather than stranded on disk.
    async fn replay_orphans(&self) {
        let Some(ext) = self.queue_storage() else {
            return;
        };
        let Some(storage) = ext.as_any().downcast_ref::<FileStorage>() else {
            return;
        };
        let in_ring: Vec<String> = self
            .state
            .read()
            .ring
            .endpoints()
            .iter()
            .map(|n| endpoint_of(n))
            .collect();
        let (prefix, suffix) = backend_queue_affixes(&self.ctx.id.to_string(), self.signal);
        let names = match storage.keyspaces_with_prefix(&prefix).await {
            Ok(names) => names,
            Err(e) => {
                tracing::error!(error = %e, "load_balancing: cannot list the persistent queues of earlier backends");
                return;
            }
        };
        for keyspace in names {
            let Some(endpoint) = keyspace
                .strip_prefix(&prefix)
                .and_then(|m| m.strip_suffix(&suffix))
                .and_then(unescape_queue_name)
            else {
                continue;
            };
            // A `/` means another load balancer whose id extends this one's.
            if endpoint.is_empty() || endpoint.contains('/') || in_ring.contains(&endpoint) {
                continue;
            }
            let backend = match self.backend(&endpoint, true).await {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(backend = %endpoint, error = %e, "load_balancing: cannot open the persistent queue of an earlier backend");
                    continue;
                }
            };
            tracing::info!(backend = %endpoint, requests = backend.exporter.pending().unwrap_or(0),
                "load_balancing: persistent queue of a backend not in the ring; re-routing it through the ring");
            let stop = self.tasks.token();
            self.tasks.spawn(replay_orphan(
                endpoint,
                backend,
                ext.clone(),
                keyspace,
                stop,
            ));
        }
    }

    /// Routes `batch` over the current ring until every part is accepted, retrying failed
    /// parts alone (`retry_on_failure`), each retry split again over the ring of that moment.
    async fn route(&self, batch: Batch) -> Result<(), ConsumeError> {
        let started = Instant::now();
        let max_elapsed: Duration = self.retry.max_elapsed_time.into();
        let mut backoff = Backoff::new(&self.retry);
        let mut pending = vec![batch];
        let mut ring_changes = 0;
        let stop = self.tasks.token();
        loop {
            let generation = self.state.read().generation;
            let round = match self.timeout.filter(|t| !t.is_zero()) {
                Some(t) => tokio::time::timeout(t, self.round(pending))
                    .await
                    .unwrap_or_else(|_| {
                        Err(RoundError::Final(ConsumeError::retryable(format!(
                            "load_balancing: export attempt timed out after {t:?}"
                        ))))
                    }),
                None => self.round(pending).await,
            };
            let (failed, err) = match round {
                Ok(()) => return Ok(()),
                Err(RoundError::Final(e)) => return Err(e),
                Err(RoundError::Retry(failed, err)) => (failed, err),
            };
            // The ring changed under the failed parts: they may now belong elsewhere.
            if self.state.read().generation != generation && ring_changes < RING_CHANGE_RETRIES {
                ring_changes += 1;
                pending = failed;
                continue;
            }
            if !self.retry.enabled || stop.is_cancelled() {
                return Err(err);
            }
            let delay = backoff
                .next_delay()
                .max(err.retry_delay().unwrap_or_default());
            if !max_elapsed.is_zero()
                && started
                    .elapsed()
                    .checked_add(delay)
                    .is_none_or(|at| at > max_elapsed)
            {
                return Err(ConsumeError::Retryable {
                    message: format!("no more retries left: {err}"),
                    retry_after: err.retry_delay(),
                });
            }
            tracing::info!(error = %err, interval = ?delay, parts = failed.len(), "load_balancing: part failed; will route it again after interval");
            tokio::select! {
                biased;
                _ = stop.cancelled() => return Err(err),
                _ = tokio::time::sleep(delay) => {}
            }
            pending = failed;
        }
    }

    /// One routing round: splits every batch over the current ring and hands each part to
    /// its backend, all at once.
    async fn round(&self, batches: Vec<Batch>) -> Result<(), RoundError> {
        let (ring, backends) = {
            let s = self.state.read();
            (s.ring.clone(), s.backends.clone())
        };
        // No backend yet (nothing resolved): every batch waits for the retry, whole. Before
        // this, the error was returned at once and a top-level queue, whose own retry the
        // router replaces, dropped the request.
        if ring.is_empty() {
            let err = ConsumeError::retryable("load_balancing: no backends available");
            return Err(RoundError::Retry(batches, err));
        }
        let mut parts = Vec::new();
        for batch in batches {
            parts.extend(self.split(batch, &ring).map_err(RoundError::Final)?);
        }
        let sends = parts.into_iter().map(|(name, part)| {
            let exporter = backends.get(&name).map(|b| b.exporter.clone());
            async move {
                let Some(exporter) = exporter else {
                    let e =
                        ConsumeError::retryable(format!("load_balancing: backend {name} is gone"));
                    return Err((part, e));
                };
                let started = Instant::now();
                let result = exporter.consume(part.clone()).await;
                self.metrics.latency(&endpoint_of(&name), started.elapsed());
                match result {
                    Ok(()) => {
                        self.metrics.outcome_ok.inc();
                        Ok(())
                    }
                    Err(e) => {
                        self.metrics.outcome_failed.inc();
                        Err((part, e))
                    }
                }
            }
        });
        let mut failed = Vec::new();
        let mut first = None;
        for r in futures::future::join_all(sends).await {
            match r {
                Ok(()) => {}
                Err((_, e @ ConsumeError::Permanent(_))) => return Err(RoundError::Final(e)),
                Err((part, e)) => {
                    failed.push(part);
                    first.get_or_insert(e);
                }
            }
        }
        match first {
            None => Ok(()),
            Some(e) => Err(RoundError::Retry(failed, e)),
        }
    }

    /// Splits `batch` into one part per backend of `ring`.
    fn split(&self, batch: Batch, ring: &Ring) -> Result<Vec<(String, Batch)>, ConsumeError> {
        let decode = |e: wasmcol_pdata::DecodeError| ConsumeError::permanent(e.to_string());
        if self.routing == RoutingKey::TraceId
            && let Some(parts) = split_encoded_by_trace(&batch, ring).map_err(decode)?
        {
            return Ok(parts);
        }
        let routed = match batch {
            Batch::Traces(t) => {
                split_traces(t.into_message().map_err(decode)?, &self.routing, ring).map(|p| {
                    p.into_iter()
                        .map(|(k, v)| (k, Batch::Traces(TracesBatch::from_message(v))))
                        .collect()
                })
            }
            Batch::Logs(l) => split_logs(l.into_message().map_err(decode)?, &self.routing, ring)
                .map(|p| {
                    p.into_iter()
                        .map(|(k, v)| (k, Batch::Logs(LogsBatch::from_message(v))))
                        .collect()
                }),
            Batch::Metrics(m) => {
                split_metrics(m.into_message().map_err(decode)?, &self.routing, ring).map(|p| {
                    p.into_iter()
                        .map(|(k, v)| (k, Batch::Metrics(MetricsBatch::from_message(v))))
                        .collect()
                })
            }
        };
        routed.map_err(|e| match e {
            RouteError::NoBackends => {
                ConsumeError::retryable("load_balancing: no backends available")
            }
            other => ConsumeError::permanent(other.to_string()),
        })
    }
}

/// Lets a removed backend's queue empty through the remaining backends (its sender now hands
/// every attempt over), then stops it. Bounded by [`DRAIN_LIMIT`] and by shutdown; what is
/// left then gets one last hand-off attempt per request from the chain's shutdown.
async fn drain(name: String, backend: Backend, stop: CancellationToken) {
    wait_drained(
        &*backend.exporter,
        Some(Instant::now() + DRAIN_LIMIT),
        &stop,
    )
    .await;
    let left = backend.exporter.pending().unwrap_or(0);
    let items = backend.sender.handed_over.load(Ordering::Relaxed);
    if let Err(err) = backend.exporter.shutdown().await {
        tracing::warn!(backend = %name, left, items, error = %err, "load_balancing: removed backend did not drain");
    } else {
        tracing::info!(backend = %name, items, "load_balancing: removed backend drained into the remaining ones");
    }
}

/// Waits until `exporter` holds nothing, `until` passes or `stop` is cancelled.
async fn wait_drained(exporter: &dyn Exporter, until: Option<Instant>, stop: &CancellationToken) {
    while exporter.pending().unwrap_or(0) > 0 && until.is_none_or(|u| Instant::now() < u) {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(DRAIN_POLL) => {}
        }
    }
}

/// Replays the persistent queue of a backend that was not in the first ring (see
/// [`Inner::replay_orphans`]): no time limit but shutdown, as nothing else would ever read
/// it; the keyspace is deleted once it is empty, else kept for the next start.
async fn replay_orphan(
    name: String,
    backend: Backend,
    storage: Arc<dyn wasmcol_core::Extension>,
    keyspace: String,
    stop: CancellationToken,
) {
    wait_drained(&*backend.exporter, None, &stop).await;
    if let Err(err) = backend.exporter.shutdown().await {
        tracing::warn!(backend = %name, error = %err, "load_balancing: earlier backend's queue stopped with an error");
    }
    let items = backend.sender.handed_over.load(Ordering::Relaxed);
    let Some(storage) = storage.as_any().downcast_ref::<FileStorage>() else {
        return;
    };
    match storage.delete_empty_keyspace(&keyspace).await {
        Ok(true) => {
            // Quarantined records, if any, stay for inspection; an empty quarantine goes too.
            let quarantine = format!("{keyspace}.quarantine");
            if let Err(e) = storage.delete_empty_keyspace(&quarantine).await {
                tracing::warn!(keyspace = %quarantine, error = %e, "load_balancing: cannot delete an empty quarantine keyspace");
            }
            tracing::info!(backend = %name, items, keyspace = %keyspace,
                "load_balancing: queue of a backend no longer in the ring re-routed; its keyspace is deleted");
        }
        Ok(false) => tracing::warn!(backend = %name, items, keyspace = %keyspace,
            "load_balancing: queue of a backend no longer in the ring not emptied before shutdown; kept for the next start"),
        Err(e) => tracing::error!(backend = %name, items, keyspace = %keyspace, error = %e,
            "load_balancing: cannot delete the emptied queue of a backend no longer in the ring"),
    }
}

/// What the persistent queue keyspaces of this load balancer's backends start and end with:
/// a backend's chain is `otlp/<lb id>/<endpoint>`, its keyspace `exporter_otlp_<lb
/// id>/<endpoint>_<signal>`, escaped (see [`queue_name`]).
fn backend_queue_affixes(lb_id: &str, signal: Signal) -> (String, String) {
    let with_empty_signal = queue_name("exporter", "otlp", &format!("{lb_id}/"), "");
    let prefix = with_empty_signal
        .strip_suffix('_')
        .unwrap_or(&with_empty_signal)
        .to_owned();
    (prefix, format!("_{}", signal.as_str()))
}

impl Inner {
    /// One DNS resolution: the name's addresses (IPv6 as `[addr]`), each with the port when
    /// one is configured. A failure or an empty answer keeps the current ring.
    async fn resolve_dns(&self, hostname: &str, port: Option<&str>, timeout: Duration) {
        let found = tokio::time::timeout(timeout, tokio::net::lookup_host((hostname, 0))).await;
        let names: Vec<String> = match found {
            Ok(Ok(addrs)) => addrs
                .map(|a| {
                    let ip = match a.ip() {
                        std::net::IpAddr::V4(v4) => v4.to_string(),
                        std::net::IpAddr::V6(v6) => format!("[{v6}]"),
                    };
                    match port {
                        Some(p) => format!("{ip}:{p}"),
                        None => ip,
                    }
                })
                .collect(),
            Ok(Err(e)) => {
                tracing::warn!(hostname, error = %e, "load_balancing: DNS resolution failed");
                Vec::new()
            }
            Err(_) => {
                tracing::warn!(
                    hostname,
                    ?timeout,
                    "load_balancing: DNS resolution timed out"
                );
                Vec::new()
            }
        };
        if names.is_empty() {
            self.metrics.resolutions_failed.inc();
            return;
        }
        self.metrics.resolutions_ok.inc();
        self.update(names).await;
    }
}

#[async_trait]
impl Lifecycle for LoadBalancer {
    async fn start(&self) -> Result<(), ComponentError> {
        let inner = self.0.clone();
        match inner.resolver.clone() {
            Resolver::Static(names) => {
                inner.metrics.resolutions_ok.inc();
                inner.update(names).await;
            }
            Resolver::Dns {
                hostname,
                port,
                interval,
                timeout,
            } => {
                // The first answer comes before start returns, so a resolvable name serves
                // from the first request; an unresolvable one starts empty and retries.
                inner.resolve_dns(&hostname, port.as_deref(), timeout).await;
                let stop = inner.tasks.token();
                let task = inner.clone();
                inner.tasks.spawn(async move {
                    loop {
                        tokio::select! {
                            _ = stop.cancelled() => break,
                            _ = tokio::time::sleep(interval) => {}
                        }
                        task.resolve_dns(&hostname, port.as_deref(), timeout).await;
                    }
                });
            }
        }
        Ok(())
    }

    async fn shutdown(&self) -> Result<(), ComponentError> {
        let inner = &self.0;
        // Removed backends first: they hand what they hold to the current ones, which must
        // still be running to take it.
        inner.tasks.stop_by_deadline().await;
        let backends = std::mem::take(&mut inner.state.write().backends);
        let mut first_error = None;
        for (_, b) in backends {
            if let Err(err) = b.exporter.shutdown().await {
                first_error.get_or_insert(err);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

#[async_trait]
impl Sender for LoadBalancer {
    async fn send(&self, batch: Batch) -> Result<(), ConsumeError> {
        self.0.route(batch).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_get_the_default_port() {
        assert_eq!(
            endpoint_of("collector-3.example.com"),
            "collector-3.example.com:4317"
        );
        assert_eq!(
            endpoint_of("collector-2.example.com:5317"),
            "collector-2.example.com:5317"
        );
        assert_eq!(endpoint_of("10.0.0.1"), "10.0.0.1:4317");
        assert_eq!(endpoint_of("[::1]"), "[::1]:4317");
        assert_eq!(endpoint_of("[::1]:5317"), "[::1]:5317");
    }

    #[test]
    fn backend_queues_are_found_by_their_affixes() {
        let (prefix, suffix) = backend_queue_affixes("loadbalancing/x", Signal::Logs);
        let name = queue_name("exporter", "otlp", "loadbalancing/x/127.0.0.1:4317", "logs");
        let middle = name
            .strip_prefix(&prefix)
            .and_then(|m| m.strip_suffix(&suffix))
            .and_then(unescape_queue_name);
        assert_eq!(middle.as_deref(), Some("127.0.0.1:4317"));
        let other = queue_name("exporter", "otlp", "loadbalancing/xy/a:1", "logs");
        assert!(!other.starts_with(&prefix), "{other} {prefix}");
    }

    #[test]
    fn key_errors_keep_their_template_path() {
        let e = KeyError::new("tls.insecure", "bad").within("protocol.otlp");
        assert_eq!(e.path, "protocol.otlp.tls.insecure");
    }
}
