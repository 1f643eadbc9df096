//! The pipeline graph: checks references, builds components in dependency order, and runs
//! the service's start and shutdown.
//!
//! Instances follow upstream: one receiver per id (shared by every pipeline and signal that
//! lists it), one processor per pipeline, one exporter per id and signal, one connector per
//! id and signal pair. Receivers start last and stop first; processors and connectors stop
//! in data-flow order so that what they flush finds its downstream still running.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use indexmap::IndexMap;
use wasmcol_config::{ComponentId, ConfigErrors, Kind, PipelineId, RawConfig};

use crate::component::{
    Connector, ConnectorRoutes, Exporter, Extension, Extensions, Lifecycle, Receiver,
    ReceiverConsumers,
};
use crate::registry::{Entry, Factory};
use crate::{
    Batch, BuildError, ConsumeError, Consumer, ConsumerRef, CreateContext, DeliveryHealth, FanOut,
    Metrics, Registry, ServiceStatus, Signal, Tasks,
};

/// A built, not yet started collector.
pub struct Service {
    extensions: Vec<(String, Arc<dyn Extension>)>,
    exporters: Vec<(String, Arc<dyn Exporter>)>,
    /// Processors and connectors in data-flow order.
    flow: Vec<(String, Arc<dyn Lifecycle>)>,
    receivers: Vec<(String, Arc<dyn Receiver>)>,
    tasks: Tasks,
    status: Arc<ServiceStatus>,
    shutdown_timeout: Duration,
}

fn location(kind: Kind, id: &ComponentId) -> String {
    format!("{}::{}", kind.section(), id)
}

fn pipeline_location(p: &PipelineId) -> String {
    format!("service::pipelines::{p}")
}

/// Counts items in and out of a processor (`otelcol_processor_incoming_items` / `outgoing_items`).
struct Observed {
    inner: ConsumerRef,
    counter: crate::Counter,
}

#[async_trait]
impl Consumer for Observed {
    async fn consume(&self, batch: Batch) -> Result<(), ConsumeError> {
        self.counter.add(batch.item_count() as u64);
        self.inner.consume(batch).await
    }
    fn mutates_data(&self) -> bool {
        self.inner.mutates_data()
    }
    fn answers_on_enqueue(&self) -> bool {
        self.inner.answers_on_enqueue()
    }
    fn adopt_batching(&self, plan: &wasmcol_config::exporterhelper::QueueBatchConfig) {
        self.inner.adopt_batching(plan)
    }
}

/// Stands in for a component that failed to build, so the rest of the graph is still checked.
struct Broken;

#[async_trait]
impl Consumer for Broken {
    async fn consume(&self, _batch: Batch) -> Result<(), ConsumeError> {
        Err(ConsumeError::permanent("component failed to build"))
    }
}

/// Checks `config` against `registry` and builds every component. All problems are reported
/// together, each with its component and key path.
pub fn build(
    config: &RawConfig,
    registry: &Registry,
    metrics: &Metrics,
) -> Result<Service, ConfigErrors> {
    let mut errors = ConfigErrors::default();
    let tasks = Tasks::new();
    let status = Arc::new(ServiceStatus::default());

    // Types known?
    let mut entries: HashMap<(Kind, ComponentId), Entry> = HashMap::new();
    for kind in [
        Kind::Receiver,
        Kind::Processor,
        Kind::Exporter,
        Kind::Connector,
        Kind::Extension,
    ] {
        for id in config.section(kind).keys() {
            match registry.lookup(kind, id.ty()) {
                Some(e) => {
                    entries.insert((kind, id.clone()), e.clone());
                }
                None => errors.push(
                    location(kind, id),
                    format!(
                        "unknown type: {:?} for id: {:?} (valid values: {:?})",
                        id.ty(),
                        id.to_string(),
                        registry.names(kind)
                    ),
                ),
            }
        }
    }
    if config.receivers.is_empty() {
        errors.push("", "no receiver configuration specified in config");
    }
    if config.exporters.is_empty() {
        errors.push("", "no exporter configuration specified in config");
    }
    check_structure(config, &mut errors);
    for id in config.connectors.keys() {
        if config.exporters.contains_key(id) {
            errors.push(
                location(Kind::Connector, id),
                format!(
                    "ambiguous ID: Found both {:?} exporter and {:?} connector.",
                    id.to_string(),
                    id.to_string()
                ),
            );
        }
        if config.receivers.contains_key(id) {
            errors.push(
                location(Kind::Connector, id),
                format!(
                    "ambiguous ID: Found both {:?} receiver and {:?} connector.",
                    id.to_string(),
                    id.to_string()
                ),
            );
        }
    }
    let order = match topo_order(config) {
        Ok(o) => o,
        Err(e) => {
            errors.push("service::pipelines", e);
            Vec::new()
        }
    };

    let ctx = |kind: Kind, id: &ComponentId, extensions: &Extensions| CreateContext {
        id: id.clone(),
        kind,
        metrics: metrics.clone(),
        tasks: tasks.child(),
        extensions: extensions.clone(),
        status: status.clone(),
    };

    // Extensions: those listed in service.extensions, in order.
    let mut ext_map: IndexMap<ComponentId, Arc<dyn Extension>> = IndexMap::new();
    let empty_ext = Extensions::default();
    for (kind_id, body) in &config.extensions {
        let Some(Entry {
            factory: Factory::Extension(f),
            ..
        }) = entries.get(&(Kind::Extension, kind_id.clone()))
        else {
            continue;
        };
        match f.create(&ctx(Kind::Extension, kind_id, &empty_ext), body) {
            Ok(ext) => {
                if config.service.extensions.contains(kind_id) {
                    ext_map.insert(kind_id.clone(), ext);
                }
            }
            Err(e) => report(&mut errors, Kind::Extension, kind_id, e),
        }
    }
    let mut extensions_sorted = IndexMap::new();
    for id in &config.service.extensions {
        if let Some(e) = ext_map.shift_remove(id) {
            extensions_sorted.insert(id.clone(), e);
        }
    }
    let extensions = Extensions::new(extensions_sorted);

    // Exporters: one per id and signal used.
    let mut exporters: IndexMap<(ComponentId, Signal), Arc<dyn Exporter>> = IndexMap::new();
    let mut used_exporters = BTreeSet::new();
    for (pid, p) in &config.service.pipelines {
        for id in &p.exporters {
            if config.exporters.contains_key(id) {
                used_exporters.insert((id.clone(), pid.signal));
            }
        }
    }
    for (id, signal) in &used_exporters {
        let Some(Entry {
            factory: Factory::Exporter(f),
            ..
        }) = entries.get(&(Kind::Exporter, id.clone()))
        else {
            continue;
        };
        if !f.signals().contains(signal) {
            errors.push(
                location(Kind::Exporter, id),
                format!("telemetry type is not supported: {signal}"),
            );
            continue;
        }
        let c = ctx(Kind::Exporter, id, &extensions);
        let built = f
            .create(&c, &config.exporters[id], *signal)
            .and_then(|parts| registry.chain().build(&c, *signal, parts));
        match built {
            Ok(e) => {
                exporters.insert((id.clone(), *signal), e);
            }
            Err(e) => report(&mut errors, Kind::Exporter, id, e),
        }
    }
    // Unused exporters, processors, receivers are still checked, as upstream validates them.
    for (id, body) in &config.exporters {
        if used_exporters.iter().any(|(u, _)| u == id) {
            continue;
        }
        if let Some(Entry {
            factory: Factory::Exporter(f),
            ..
        }) = entries.get(&(Kind::Exporter, id.clone()))
            && let Err(e) = f.create(&ctx(Kind::Exporter, id, &extensions), body, f.signals()[0])
        {
            report(&mut errors, Kind::Exporter, id, e);
        }
    }

    // Pipelines, downstream first.
    let mut entry_of: HashMap<PipelineId, ConsumerRef> = HashMap::new();
    let mut health_of: HashMap<PipelineId, Vec<Arc<DeliveryHealth>>> = HashMap::new();
    let mut flow_rev: Vec<Vec<(String, Arc<dyn Lifecycle>)>> = Vec::new();
    let mut connectors: HashMap<(ComponentId, Signal, Signal), Arc<dyn Connector>> = HashMap::new();
    let mut used_processors = BTreeSet::new();
    for pid in order.iter().rev() {
        let p = &config.service.pipelines[pid];
        let mut pipeline_flow: Vec<(String, Arc<dyn Lifecycle>)> = Vec::new();
        let mut outs: Vec<ConsumerRef> = Vec::new();
        let mut health = Vec::new();
        for id in &p.exporters {
            if let Some(e) = exporters.get(&(id.clone(), pid.signal)) {
                if let Some(h) = e.health() {
                    health.push(h);
                }
                outs.push(e.clone());
            } else if config.connectors.contains_key(id) {
                let Some(Entry {
                    factory: Factory::Connector(f),
                    ..
                }) = entries.get(&(Kind::Connector, id.clone()))
                else {
                    outs.push(Arc::new(Broken));
                    continue;
                };
                // One instance per target signal that has pipelines receiving from this connector.
                let mut by_to: IndexMap<Signal, ConnectorRoutes> = IndexMap::new();
                for (qid, q) in &config.service.pipelines {
                    if q.receivers.contains(id) && f.supports(pid.signal, qid.signal) {
                        let entry = entry_of
                            .get(qid)
                            .cloned()
                            .unwrap_or_else(|| Arc::new(Broken));
                        let h = health_of.get(qid).cloned().unwrap_or_default();
                        by_to
                            .entry(qid.signal)
                            .or_default()
                            .pipelines
                            .insert(qid.clone(), (entry, h));
                    }
                }
                if by_to.is_empty() {
                    errors.push(
                        location(Kind::Connector, id),
                        format!("connector {:?} used as exporter in [{pid}] pipeline but not used in any supported receiver pipeline", id.to_string()),
                    );
                    continue;
                }
                for (to, routes) in by_to {
                    for (_, (_, h)) in &routes.pipelines {
                        health.extend(h.iter().cloned());
                    }
                    let key = (id.clone(), pid.signal, to);
                    if let Some(c) = connectors.get(&key) {
                        outs.push(c.clone());
                        continue;
                    }
                    match f.create(
                        &ctx(Kind::Connector, id, &extensions),
                        &config.connectors[id],
                        pid.signal,
                        to,
                        routes,
                    ) {
                        Ok(c) => {
                            connectors.insert(key, c.clone());
                            pipeline_flow.push((location(Kind::Connector, id), c.clone()));
                            outs.push(c);
                        }
                        Err(e) => {
                            report(&mut errors, Kind::Connector, id, e);
                            outs.push(Arc::new(Broken));
                        }
                    }
                }
            }
        }
        let mut next: ConsumerRef = FanOut::wrap(outs);
        let mut procs: Vec<(String, Arc<dyn Lifecycle>)> = Vec::new();
        for id in p.processors.iter().rev() {
            let Some(Entry {
                factory: Factory::Processor(f),
                ..
            }) = entries.get(&(Kind::Processor, id.clone()))
            else {
                continue;
            };
            used_processors.insert(id.clone());
            if !f.signals().contains(&pid.signal) {
                errors.push(
                    pipeline_location(pid),
                    format!(
                        "processor {:?} does not support {}",
                        id.to_string(),
                        pid.signal
                    ),
                );
                continue;
            }
            let name = id.to_string();
            let labels = [
                ("processor", name.as_str()),
                ("otel_signal", pid.signal.as_str()),
            ];
            let outgoing: ConsumerRef = Arc::new(Observed {
                inner: next.clone(),
                counter: metrics.counter(
                    "otelcol_processor_outgoing_items",
                    "Number of items emitted from the processor.",
                    &labels,
                ),
            });
            match f.create(
                &ctx(Kind::Processor, id, &extensions),
                &config.processors[id],
                pid.signal,
                outgoing,
            ) {
                Ok(proc_) => {
                    procs.push((location(Kind::Processor, id), proc_.clone()));
                    next = Arc::new(Observed {
                        inner: proc_,
                        counter: metrics.counter(
                            "otelcol_processor_incoming_items",
                            "Number of items passed to the processor.",
                            &labels,
                        ),
                    });
                }
                Err(e) => report(&mut errors, Kind::Processor, id, e),
            }
        }
        procs.reverse();
        procs.extend(pipeline_flow);
        flow_rev.push(procs);
        entry_of.insert(pid.clone(), next);
        health_of.insert(pid.clone(), health);
    }
    for (id, body) in &config.processors {
        if used_processors.contains(id) {
            continue;
        }
        if let Some(Entry {
            factory: Factory::Processor(f),
            ..
        }) = entries.get(&(Kind::Processor, id.clone()))
        {
            let sig = f.signals()[0];
            if let Err(e) = f.create(
                &ctx(Kind::Processor, id, &extensions),
                body,
                sig,
                Arc::new(Broken),
            ) {
                report(&mut errors, Kind::Processor, id, e);
            }
        }
    }

    // Receivers.
    let mut receivers = Vec::new();
    for (id, body) in &config.receivers {
        let Some(Entry {
            factory: Factory::Receiver(f),
            ..
        }) = entries.get(&(Kind::Receiver, id.clone()))
        else {
            continue;
        };
        let mut by_signal: HashMap<Signal, Vec<ConsumerRef>> = HashMap::new();
        for pid in &order {
            if config.service.pipelines[pid].receivers.contains(id) {
                if !f.signals().contains(&pid.signal) {
                    errors.push(
                        pipeline_location(pid),
                        format!(
                            "receiver {:?} does not support {}",
                            id.to_string(),
                            pid.signal
                        ),
                    );
                    continue;
                }
                if let Some(e) = entry_of.get(pid) {
                    by_signal.entry(pid.signal).or_default().push(e.clone());
                }
            }
        }
        let used = !by_signal.is_empty();
        let consumers = ReceiverConsumers {
            by_signal: by_signal
                .into_iter()
                .map(|(s, v)| (s, FanOut::wrap(v)))
                .collect(),
        };
        match f.create(&ctx(Kind::Receiver, id, &extensions), body, consumers) {
            Ok(r) if used => receivers.push((location(Kind::Receiver, id), r)),
            Ok(_) => {}
            Err(e) => report(&mut errors, Kind::Receiver, id, e),
        }
    }

    let flow = flow_rev.into_iter().rev().flatten().collect();
    errors.into_result(Service {
        extensions: extensions
            .iter()
            .map(|(id, e)| (location(Kind::Extension, id), e.clone()))
            .collect(),
        exporters: exporters
            .into_iter()
            .map(|((id, s), e)| (format!("{}[{s}]", location(Kind::Exporter, &id)), e))
            .collect(),
        flow,
        receivers,
        tasks,
        status,
        shutdown_timeout: config.service.shutdown_timeout.into(),
    })
}

fn report(errors: &mut ConfigErrors, kind: Kind, id: &ComponentId, e: BuildError) {
    for m in e.0 {
        errors.push(location(kind, id), m);
    }
}

/// Reference checks that need no factory.
fn check_structure(config: &RawConfig, errors: &mut ConfigErrors) {
    let svc = &config.service;
    if svc.pipelines.is_empty() {
        errors.push("service", "service must have at least one pipeline");
    }
    for id in &svc.extensions {
        if !config.extensions.contains_key(id) {
            errors.push(
                "service::extensions",
                format!(
                    "references extension {:?} which is not configured",
                    id.to_string()
                ),
            );
        }
    }
    let mut as_exporter: HashMap<&ComponentId, Vec<&PipelineId>> = HashMap::new();
    let mut as_receiver: HashMap<&ComponentId, Vec<&PipelineId>> = HashMap::new();
    for (pid, p) in &svc.pipelines {
        let loc = pipeline_location(pid);
        if p.receivers.is_empty() {
            errors.push(loc.clone(), "must have at least one receiver");
        }
        if p.exporters.is_empty() {
            errors.push(loc.clone(), "must have at least one exporter");
        }
        for id in &p.receivers {
            if config.connectors.contains_key(id) {
                as_receiver.entry(id).or_default().push(pid);
            } else if !config.receivers.contains_key(id) {
                errors.push(
                    loc.clone(),
                    format!(
                        "references receiver {:?} which is not configured",
                        id.to_string()
                    ),
                );
            }
        }
        let mut seen = BTreeSet::new();
        for id in &p.processors {
            if !config.processors.contains_key(id) {
                errors.push(
                    loc.clone(),
                    format!(
                        "references processor {:?} which is not configured",
                        id.to_string()
                    ),
                );
            }
            if !seen.insert(id) {
                errors.push(
                    loc.clone(),
                    format!("references processor {:?} multiple times", id.to_string()),
                );
            }
        }
        for id in &p.exporters {
            if config.connectors.contains_key(id) {
                as_exporter.entry(id).or_default().push(pid);
            } else if !config.exporters.contains_key(id) {
                errors.push(
                    loc.clone(),
                    format!(
                        "references exporter {:?} which is not configured",
                        id.to_string()
                    ),
                );
            }
        }
    }
    for (id, pids) in &as_receiver {
        if !as_exporter.contains_key(id) {
            let list = pids
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            errors.push(
                location(Kind::Connector, id),
                format!("connector {:?} used as receiver in [{list}] pipeline but not used in any supported exporter pipeline", id.to_string()),
            );
        }
    }
    for (id, pids) in &as_exporter {
        if !as_receiver.contains_key(id) {
            let list = pids
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            errors.push(
                location(Kind::Connector, id),
                format!("connector {:?} used as exporter in [{list}] pipeline but not used in any supported receiver pipeline", id.to_string()),
            );
        }
    }
}

/// Pipelines ordered so that a pipeline comes before the pipelines its connectors feed.
fn topo_order(config: &RawConfig) -> Result<Vec<PipelineId>, String> {
    let pipelines = &config.service.pipelines;
    let mut edges: HashMap<&PipelineId, Vec<&PipelineId>> = HashMap::new();
    for (pid, p) in pipelines {
        for c in p
            .exporters
            .iter()
            .filter(|c| config.connectors.contains_key(*c))
        {
            for (qid, q) in pipelines {
                if q.receivers.contains(c) {
                    edges.entry(pid).or_default().push(qid);
                }
            }
        }
    }
    // Depth-first with colours; a grey node reached again is a cycle.
    let mut state: HashMap<&PipelineId, u8> = HashMap::new();
    let mut out = Vec::new();
    fn visit<'a>(
        n: &'a PipelineId,
        edges: &HashMap<&'a PipelineId, Vec<&'a PipelineId>>,
        state: &mut HashMap<&'a PipelineId, u8>,
        out: &mut Vec<PipelineId>,
    ) -> Result<(), String> {
        match state.get(n) {
            Some(2) => return Ok(()),
            Some(1) => {
                return Err(format!(
                    "cycle detected: connectors make pipeline {n} feed itself"
                ));
            }
            _ => {}
        }
        state.insert(n, 1);
        for m in edges.get(n).map(Vec::as_slice).unwrap_or(&[]) {
            visit(m, edges, state, out)?;
        }
        state.insert(n, 2);
        out.push(n.clone());
        Ok(())
    }
    for pid in pipelines.keys() {
        visit(pid, &edges, &mut state, &mut out)?;
    }
    out.reverse();
    Ok(out)
}

impl Service {
    /// Readiness, for `health_check` and tests.
    pub fn status(&self) -> &Arc<ServiceStatus> {
        &self.status
    }

    /// The configured drain deadline.
    pub fn shutdown_timeout(&self) -> Duration {
        self.shutdown_timeout
    }

    /// Starts extensions, exporters, processors and connectors (downstream first), then
    /// receivers. On failure, what started is stopped again.
    pub async fn start(&self) -> Result<(), crate::ComponentError> {
        let mut started: Vec<(String, Arc<dyn Lifecycle>)> = Vec::new();
        let all = self
            .extensions
            .iter()
            .map(|(n, c)| (n.clone(), c.clone() as Arc<dyn Lifecycle>))
            .chain(
                self.exporters
                    .iter()
                    .map(|(n, c)| (n.clone(), c.clone() as Arc<dyn Lifecycle>)),
            )
            .chain(self.flow.iter().rev().cloned())
            .chain(
                self.receivers
                    .iter()
                    .map(|(n, c)| (n.clone(), c.clone() as Arc<dyn Lifecycle>)),
            );
        for (name, c) in all {
            if let Err(e) = c.start().await {
                for (_, s) in started.iter().rev() {
                    let _ = s.shutdown().await;
                }
                self.tasks.stop(Duration::from_secs(5)).await;
                return Err(crate::ComponentError::new(format!(
                    "{name}: failed to start: {e}"
                )));
            }
            started.push((name, c));
        }
        self.status.set_ready(true);
        Ok(())
    }

    /// Stops receivers, then processors and connectors in data-flow order (each flushes
    /// downstream), then exporters (which drain), then extensions; all within the deadline.
    /// Returns whether everything stopped in time.
    pub async fn shutdown(&self) -> bool {
        self.status.set_ready(false);
        let deadline = Instant::now() + self.shutdown_timeout;
        let stages = self
            .receivers
            .iter()
            .map(|(n, c)| (n.clone(), c.clone() as Arc<dyn Lifecycle>))
            .chain(self.flow.iter().cloned())
            .chain(
                self.exporters
                    .iter()
                    .map(|(n, c)| (n.clone(), c.clone() as Arc<dyn Lifecycle>)),
            )
            .chain(
                self.extensions
                    .iter()
                    .rev()
                    .map(|(n, c)| (n.clone(), c.clone() as Arc<dyn Lifecycle>)),
            );
        let mut clean = true;
        for (name, c) in stages {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, c.shutdown()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(component = %name, error = %e, "component failed to shut down cleanly");
                    clean = false;
                }
                Err(_) => {
                    tracing::error!(component = %name, "shutdown deadline passed");
                    clean = false;
                }
            }
        }
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(100));
        clean && self.tasks.stop(left).await
    }
}
