//! The `load_balancing` exporter (traces and logs): splits each request by routing key over the ring
//! and hands every part to its backend's own `otlp` exporter chain (queue, retry, timeout
//! from `protocol.otlp`). The request is answered once every part is answered — once every
//! part is enqueued, with the backends' default queues.
//!
//! Backends come from the resolver: `static` once at start, `dns` at start and then every
//! `interval` on a tracked task. A failed resolution keeps the last good ring and is counted. A vanished
//! backend's exporter is shut down, which drains its queue to that backend within the
//! shutdown deadline (upstream's behaviour; re-routing what it held is not done yet).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use parking_lot::RwLock;
use wasmcol_config::exporterhelper::HelperConfig;
use wasmcol_config::{ComponentId, KeyError, Value};
use wasmcol_core::{
    Batch, BuildError, ChainBuilder, ComponentError, ConsumeError, CreateContext, Exporter,
    ExporterFactory, ExporterParts, Lifecycle, Sender, Signal, Tasks,
};
use wasmcol_pdata::{LogsBatch, TracesBatch};

use crate::{Config, Resolver, Ring, RouteError, RoutingKey, split_logs, split_traces};

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
        &[Signal::Traces, Signal::Logs]
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
        let mut template_errors = template_errors;
        if let Ok(c) = &checked
            && !matches!(c.routing, RoutingKey::TraceId | RoutingKey::Service)
        {
            template_errors.push(KeyError::new(
                "routing_key",
                "not supported by wasmcol yet (use traceID or service)",
            ));
        }
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
        let sender = LoadBalancer(Arc::new(Inner {
            ctx: ctx.clone(),
            signal,
            template: checked.otlp,
            routing: checked.routing,
            resolver: checked.resolver,
            otlp: self.otlp.clone(),
            chain: self.chain.clone(),
            state: RwLock::new(State::default()),
            tasks,
            metrics,
        }));
        Ok(ExporterParts {
            sender: Arc::new(sender),
            // Upstream's exporter-level settings are off unless configured.
            helper: HelperConfig {
                timeout: cfg.timeout,
                retry: cfg.retry_on_failure.unwrap_or(off.retry),
                queue: cfg.sending_queue.unwrap_or(off.queue),
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

#[derive(Default)]
struct State {
    ring: Arc<Ring>,
    backends: BTreeMap<String, Arc<dyn Exporter>>,
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

/// The exporter's sender: one attempt routes a request over the current ring.
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
    tasks: Tasks,
    metrics: LbMetrics,
}

impl Inner {
    /// Builds and starts the exporter chain of one backend, with its own component id so a
    /// persistent queue gets its own keyspace per backend.
    async fn backend(&self, name: &str) -> Result<Arc<dyn Exporter>, ComponentError> {
        let id = ComponentId::new(
            "otlp",
            Some(&format!("{}/{}", self.ctx.id, endpoint_of(name))),
        );
        let ctx = CreateContext {
            id,
            ..self.ctx.clone()
        };
        let body = with_endpoint(&self.template, &endpoint_of(name));
        let built = self
            .otlp
            .create(&ctx, &body, self.signal)
            .and_then(|parts| self.chain.build(&ctx, self.signal, parts))
            .map_err(|e| ComponentError::new(format!("backend {name}: {e}")))?;
        built.start().await?;
        Ok(built)
    }

    /// Replaces the ring with one over `names`: starts exporters for new backends, and shuts
    /// down the vanished ones' on a tracked task (their queues drain meanwhile).
    async fn update(&self, mut names: Vec<String>) {
        names.sort();
        names.dedup();
        if self.state.read().ring.endpoints() == names.as_slice() {
            return;
        }
        let existing = self.state.read().backends.clone();
        let mut backends = BTreeMap::new();
        for name in &names {
            match existing.get(name) {
                Some(e) => {
                    backends.insert(name.clone(), e.clone());
                }
                None => match self.backend(name).await {
                    Ok(e) => {
                        backends.insert(name.clone(), e);
                    }
                    Err(e) => tracing::error!(error = %e, "load_balancing: backend not started"),
                },
            }
        }
        let ring = Arc::new(Ring::new(backends.keys().cloned()));
        let gone: Vec<Arc<dyn Exporter>> = existing
            .iter()
            .filter(|(k, _)| !backends.contains_key(*k))
            .map(|(_, v)| v.clone())
            .collect();
        self.metrics.backends.set(backends.len() as i64);
        self.metrics.updates.inc();
        tracing::info!(resolver = self.metrics.resolver, backends = ?ring.endpoints(), "load_balancing: backends changed");
        *self.state.write() = State { ring, backends };
        for e in gone {
            self.tasks.spawn(async move {
                if let Err(err) = e.shutdown().await {
                    tracing::warn!(error = %err, "load_balancing: removed backend did not drain");
                }
            });
        }
    }
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
        inner.tasks.token().cancel();
        let backends = std::mem::take(&mut inner.state.write().backends);
        let mut first_error = None;
        for (_, e) in backends {
            if let Err(err) = e.shutdown().await {
                first_error.get_or_insert(err);
            }
        }
        inner.tasks.stop_by_deadline().await;
        first_error.map_or(Ok(()), Err)
    }
}

#[async_trait]
impl Sender for LoadBalancer {
    async fn send(&self, batch: Batch) -> Result<(), ConsumeError> {
        let lb = &self.0;
        let (ring, backends) = {
            let s = lb.state.read();
            (s.ring.clone(), s.backends.clone())
        };
        let decode = |e: wasmcol_pdata::DecodeError| ConsumeError::permanent(e.to_string());
        let routed = match batch {
            Batch::Traces(t) => split_traces(t.into_message().map_err(decode)?, &lb.routing, &ring)
                .map(|parts| {
                    parts
                        .into_iter()
                        .map(|(k, v)| (k, Batch::Traces(TracesBatch::from_message(v))))
                        .collect::<Vec<_>>()
                }),
            Batch::Logs(l) => split_logs(l.into_message().map_err(decode)?, &lb.routing, &ring)
                .map(|parts| {
                    parts
                        .into_iter()
                        .map(|(k, v)| (k, Batch::Logs(LogsBatch::from_message(v))))
                        .collect()
                }),
            Batch::Metrics(_) => {
                return Err(ConsumeError::permanent(
                    "load_balancing: metrics are not supported yet",
                ));
            }
        };
        let parts = routed.map_err(|e| match e {
            RouteError::NoBackends => {
                ConsumeError::retryable("load_balancing: no backends available")
            }
            other => ConsumeError::permanent(other.to_string()),
        })?;
        let sends = parts.into_iter().map(|(name, part)| {
            let exporter = backends.get(&name).cloned();
            async move {
                let Some(exporter) = exporter else {
                    return Err(ConsumeError::retryable(format!(
                        "load_balancing: backend {name} is gone"
                    )));
                };
                let started = Instant::now();
                let result = exporter.consume(part).await;
                lb.metrics.latency(&endpoint_of(&name), started.elapsed());
                match &result {
                    Ok(()) => lb.metrics.outcome_ok.inc(),
                    Err(_) => lb.metrics.outcome_failed.inc(),
                }
                result
            }
        });
        let results = futures::future::join_all(sends).await;
        // A permanent failure anywhere is reported as such; otherwise the first retryable.
        let mut retryable = None;
        for r in results {
            match r {
                Ok(()) => {}
                Err(e @ ConsumeError::Permanent(_)) => return Err(e),
                Err(e) => {
                    retryable.get_or_insert(e);
                }
            }
        }
        retryable.map_or(Ok(()), Err)
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
    fn key_errors_keep_their_template_path() {
        let e = KeyError::new("tls.insecure", "bad").within("protocol.otlp");
        assert_eq!(e.path, "protocol.otlp.tls.insecure");
    }
}
