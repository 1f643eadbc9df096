//! The pipeline graph: checks references, builds components in dependency order, and runs
//! the service's start and shutdown.
//!
//! Instances follow upstream: one receiver per id (shared by every pipeline and signal that
//! lists it), one processor per pipeline, one exporter per id and signal, one connector per
//! id and signal pair. Receivers start last and stop first; processors and connectors stop
//! in data-flow order so that what they flush finds its downstream still running.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use indexmap::IndexMap;
use wasmcol_config::{ComponentId, ConfigErrors, Kind, PipelineId, RawConfig};

use crate::component::{
    Connector, ConnectorRoutes, Exporter, Extension, Extensions, Lifecycle, PipelineTopology,
    Receiver, ReceiverConsumers, Topology,
};
use crate::registry::Factory;
use crate::{
    Batch, BuildError, ConsumeError, Consumer, ConsumerRef, CreateContext, DeliveryHealth,
    Endpoint, FanOut, Metrics, Registry, ServiceStatus, Signal, Tasks,
};

/// Components by display name, in start (or data-flow) order.
type Named = Vec<(String, Arc<dyn Lifecycle>)>;
/// A built, not yet started collector.
pub struct Service {
    extensions: Vec<(String, Arc<dyn Extension>)>,
    exporters: Vec<(String, Arc<dyn Exporter>)>,
    /// Processors and connectors in data-flow order.
    flow: Named,
    receivers: Vec<(String, Arc<dyn Receiver>)>,
    /// Processors configured but in no pipeline: prepared, so `validate` checks their plugin
    /// config too, and never started.
    unused: Named,
    tasks: Tasks,
    status: Arc<ServiceStatus>,
    shutdown_timeout: Duration,
}

fn location(kind: Kind, id: &ComponentId) -> String {
    format!("{}::{}", kind.section(), id)
}

/// The configured service as ids (see [`Topology`]).
fn topology(config: &RawConfig) -> Topology {
    let ids = |v: &[ComponentId]| v.iter().map(ToString::to_string).collect();
    Topology {
        extensions: ids(&config.service.extensions),
        connectors: config.connectors.keys().map(ToString::to_string).collect(),
        pipelines: config
            .service
            .pipelines
            .iter()
            .map(|(id, p)| PipelineTopology {
                id: id.to_string(),
                receivers: ids(&p.receivers),
                processors: ids(&p.processors),
                exporters: ids(&p.exporters),
            })
            .collect(),
    }
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
/// together, each with its component and key path: every phase goes on after a failure, with
/// a `Broken` stand-in for what could not be built.
pub fn build(
    config: &RawConfig,
    registry: &Registry,
    metrics: &Metrics,
) -> Result<Service, ConfigErrors> {
    let mut b = Builder::resolve(config, registry, metrics);
    b.build_extensions();
    b.build_exporters();
    for pid in b.order.clone().iter().rev() {
        b.build_pipeline(pid);
    }
    b.check_unused();
    b.build_receivers();
    b.check_endpoints();
    b.finish()
}

/// The graph as it is built phase by phase; each phase adds components and records problems.
struct Builder<'a> {
    config: &'a RawConfig,
    registry: &'a Registry,
    metrics: &'a Metrics,
    errors: ConfigErrors,
    tasks: Tasks,
    status: Arc<ServiceStatus>,
    /// The factory of every configured component whose type is known.
    factories: HashMap<(Kind, ComponentId), &'a Factory>,
    /// Pipelines, upstream first (a connector's exporting pipeline before its receiving ones).
    order: Vec<PipelineId>,
    extensions: Extensions,
    exporters: IndexMap<(ComponentId, Signal), Arc<dyn Exporter>>,
    connectors: HashMap<(ComponentId, Signal, Signal), Arc<dyn Connector>>,
    /// Each built pipeline's first consumer, and the health of the exporters it ends in.
    entry_of: HashMap<PipelineId, ConsumerRef>,
    health_of: HashMap<PipelineId, Vec<Arc<DeliveryHealth>>>,
    /// Processors and connectors per pipeline, downstream pipelines first.
    flow_rev: Vec<Named>,
    used_processors: BTreeSet<ComponentId>,
    unused: Named,
    receivers: Vec<(String, Arc<dyn Receiver>)>,
}

impl<'a> Builder<'a> {
    /// Resolve: every type known, references and ids consistent, pipelines ordered. Needs no
    /// factory to run.
    fn resolve(config: &'a RawConfig, registry: &'a Registry, metrics: &'a Metrics) -> Self {
        let mut errors = ConfigErrors::default();
        let mut factories = HashMap::new();
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
                        factories.insert((kind, id.clone()), &e.factory);
                    }
                    None => errors.component(
                        kind,
                        id,
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
        check_ambiguous_ids(config, &mut errors);
        let order = topo_order(config).unwrap_or_else(|e| {
            errors.push("service::pipelines", e);
            Vec::new()
        });
        let status = Arc::new(ServiceStatus::default());
        status.set_topology(topology(config));
        Builder {
            config,
            registry,
            metrics,
            errors,
            tasks: Tasks::new(),
            status,
            factories,
            order,
            extensions: Extensions::default(),
            exporters: IndexMap::new(),
            connectors: HashMap::new(),
            entry_of: HashMap::new(),
            health_of: HashMap::new(),
            flow_rev: Vec::new(),
            used_processors: BTreeSet::new(),
            unused: Vec::new(),
            receivers: Vec::new(),
        }
    }

    /// What a factory gets: its id, metrics, a child task set and the extensions built so far.
    fn ctx(&self, kind: Kind, id: &ComponentId) -> CreateContext {
        CreateContext {
            id: id.clone(),
            kind,
            metrics: self.metrics.clone(),
            tasks: self.tasks.child(),
            extensions: self.extensions.clone(),
            status: self.status.clone(),
        }
    }

    fn factory(&self, kind: Kind, id: &ComponentId) -> Option<&'a Factory> {
        self.factories.get(&(kind, id.clone())).copied()
    }

    fn report(&mut self, kind: Kind, id: &ComponentId, e: BuildError) {
        for m in e.0 {
            self.errors.component(kind, id, m);
        }
    }

    /// Extensions: every configured one is checked; those listed in `service.extensions` are
    /// kept, in that order, and handed to the components built after them.
    fn build_extensions(&mut self) {
        let config = self.config;
        let mut built: IndexMap<ComponentId, Arc<dyn Extension>> = IndexMap::new();
        for (id, body) in &config.extensions {
            let Some(Factory::Extension(f)) = self.factory(Kind::Extension, id) else {
                continue;
            };
            match f.create(&self.ctx(Kind::Extension, id), body) {
                Ok(ext) => {
                    if self.config.service.extensions.contains(id) {
                        built.insert(id.clone(), ext);
                    }
                }
                Err(e) => self.report(Kind::Extension, id, e),
            }
        }
        let mut sorted = IndexMap::new();
        for id in &self.config.service.extensions {
            if let Some(e) = built.shift_remove(id) {
                sorted.insert(id.clone(), e);
            }
        }
        self.extensions = Extensions::new(sorted);
    }

    /// Exporters: one per id and signal that a pipeline uses, each wrapped in the registry's
    /// delivery chain.
    fn build_exporters(&mut self) {
        let mut used = BTreeSet::new();
        for (pid, p) in &self.config.service.pipelines {
            for id in &p.exporters {
                if self.config.exporters.contains_key(id) {
                    used.insert((id.clone(), pid.signal));
                }
            }
        }
        let config = self.config;
        for (id, signal) in used {
            let Some(Factory::Exporter(f)) = self.factory(Kind::Exporter, &id) else {
                continue;
            };
            if !f.signals().contains(&signal) {
                self.errors.component(
                    Kind::Exporter,
                    &id,
                    format!("telemetry type is not supported: {signal}"),
                );
                continue;
            }
            let c = self.ctx(Kind::Exporter, &id);
            let built = f
                .create(&c, &config.exporters[&id], signal)
                .and_then(|parts| self.registry.chain().build(&c, signal, parts));
            match built {
                Ok(e) => {
                    self.exporters.insert((id, signal), e);
                }
                Err(e) => self.report(Kind::Exporter, &id, e),
            }
        }
    }

    /// One pipeline, from its end to its start: exporters and connectors behind a fan-out,
    /// then its processors. Pipelines are built downstream first, so a connector finds the
    /// pipelines it feeds already built.
    fn build_pipeline(&mut self, pid: &PipelineId) {
        let mut flow = Vec::new();
        let mut health = Vec::new();
        let outs = self.pipeline_outputs(pid, &mut flow, &mut health);
        let (entry, mut procs) = self.pipeline_processors(pid, FanOut::wrap(outs));
        procs.extend(flow);
        self.flow_rev.push(procs);
        self.entry_of.insert(pid.clone(), entry);
        self.health_of.insert(pid.clone(), health);
    }

    /// The consumers at the end of a pipeline: its exporters and one connector instance per
    /// signal of the pipelines the connector feeds. Collects the connectors into `flow` and
    /// the delivery health of every exporter reached into `health`.
    fn pipeline_outputs(
        &mut self,
        pid: &PipelineId,
        flow: &mut Named,
        health: &mut Vec<Arc<DeliveryHealth>>,
    ) -> Vec<ConsumerRef> {
        let config = self.config;
        let mut outs: Vec<ConsumerRef> = Vec::new();
        for id in &config.service.pipelines[pid].exporters {
            if let Some(e) = self.exporters.get(&(id.clone(), pid.signal)) {
                health.extend(e.health());
                outs.push(e.clone());
                continue;
            }
            if !config.connectors.contains_key(id) {
                continue;
            }
            let Some(Factory::Connector(f)) = self.factory(Kind::Connector, id) else {
                outs.push(Arc::new(Broken));
                continue;
            };
            let by_to = self.connector_routes(id, pid.signal, |from, to| f.supports(from, to));
            if by_to.is_empty() {
                self.errors.component(
                    Kind::Connector,
                    id,
                    format!("connector {:?} used as exporter in [{pid}] pipeline but not used in any supported receiver pipeline", id.to_string()),
                );
                continue;
            }
            for (to, routes) in by_to {
                for (_, h) in routes.pipelines.values() {
                    health.extend(h.iter().cloned());
                }
                let key = (id.clone(), pid.signal, to);
                if let Some(c) = self.connectors.get(&key) {
                    outs.push(c.clone());
                    continue;
                }
                let c = self.ctx(Kind::Connector, id);
                match f.create(&c, &config.connectors[id], pid.signal, to, routes) {
                    Ok(c) => {
                        self.connectors.insert(key, c.clone());
                        flow.push((location(Kind::Connector, id), c.clone()));
                        outs.push(c);
                    }
                    Err(e) => {
                        self.report(Kind::Connector, id, e);
                        outs.push(Arc::new(Broken));
                    }
                }
            }
        }
        outs
    }

    /// The already built pipelines that connector `id` feeds from a `from` pipeline, grouped
    /// by their signal (one connector instance per target signal).
    fn connector_routes(
        &self,
        id: &ComponentId,
        from: Signal,
        supports: impl Fn(Signal, Signal) -> bool,
    ) -> IndexMap<Signal, ConnectorRoutes> {
        let mut by_to: IndexMap<Signal, ConnectorRoutes> = IndexMap::new();
        for (qid, q) in &self.config.service.pipelines {
            if q.receivers.contains(id) && supports(from, qid.signal) {
                let entry = self
                    .entry_of
                    .get(qid)
                    .cloned()
                    .unwrap_or_else(|| Arc::new(Broken));
                let h = self.health_of.get(qid).cloned().unwrap_or_default();
                by_to
                    .entry(qid.signal)
                    .or_default()
                    .pipelines
                    .insert(qid.clone(), (entry, h));
            }
        }
        by_to
    }

    /// A pipeline's processors, last first, each feeding the one after it (counted in and
    /// out); returns the pipeline's entry and its processors in data-flow order.
    fn pipeline_processors(
        &mut self,
        pid: &PipelineId,
        mut next: ConsumerRef,
    ) -> (ConsumerRef, Named) {
        let config = self.config;
        let mut procs: Named = Vec::new();
        for id in config.service.pipelines[pid].processors.iter().rev() {
            let Some(Factory::Processor(f)) = self.factory(Kind::Processor, id) else {
                continue;
            };
            self.used_processors.insert(id.clone());
            if !f.signals().contains(&pid.signal) {
                self.errors.push(
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
                counter: self.metrics.counter(
                    "otelcol_processor_outgoing_items",
                    "Number of items emitted from the processor.",
                    &labels,
                ),
            });
            let c = self.ctx(Kind::Processor, id);
            match f.create(&c, &config.processors[id], pid.signal, outgoing) {
                Ok(proc_) => {
                    procs.push((location(Kind::Processor, id), proc_.clone()));
                    next = Arc::new(Observed {
                        inner: proc_,
                        counter: self.metrics.counter(
                            "otelcol_processor_incoming_items",
                            "Number of items passed to the processor.",
                            &labels,
                        ),
                    });
                }
                Err(e) => self.report(Kind::Processor, id, e),
            }
        }
        procs.reverse();
        (next, procs)
    }

    /// Exporters and processors no pipeline uses are still built and thrown away, so their
    /// config is checked as upstream checks it (receivers are checked in
    /// [`Builder::build_receivers`]).
    fn check_unused(&mut self) {
        let config = self.config;
        for (id, body) in &config.exporters {
            if self.exporters.keys().any(|(u, _)| u == id) {
                continue;
            }
            if let Some(Factory::Exporter(f)) = self.factory(Kind::Exporter, id)
                && let Err(e) = f.create(&self.ctx(Kind::Exporter, id), body, f.signals()[0])
            {
                self.report(Kind::Exporter, id, e);
            }
        }
        for (id, body) in &config.processors {
            if self.used_processors.contains(id) {
                continue;
            }
            if let Some(Factory::Processor(f)) = self.factory(Kind::Processor, id) {
                let c = self.ctx(Kind::Processor, id);
                match f.create(&c, body, f.signals()[0], Arc::new(Broken)) {
                    Ok(p) => self
                        .unused
                        .push((location(Kind::Processor, id), p as Arc<dyn Lifecycle>)),
                    Err(e) => self.report(Kind::Processor, id, e),
                }
            }
        }
    }

    /// Receivers: one per id, fed by a fan-out into every pipeline of each signal that lists
    /// it. Unused receivers are built (their config checked) but not kept.
    fn build_receivers(&mut self) {
        let (config, order) = (self.config, self.order.clone());
        for (id, body) in &config.receivers {
            let Some(Factory::Receiver(f)) = self.factory(Kind::Receiver, id) else {
                continue;
            };
            let mut by_signal: HashMap<Signal, Vec<ConsumerRef>> = HashMap::new();
            for pid in &order {
                if !config.service.pipelines[pid].receivers.contains(id) {
                    continue;
                }
                if !f.signals().contains(&pid.signal) {
                    self.errors.push(
                        pipeline_location(pid),
                        format!(
                            "receiver {:?} does not support {}",
                            id.to_string(),
                            pid.signal
                        ),
                    );
                    continue;
                }
                if let Some(e) = self.entry_of.get(pid) {
                    by_signal.entry(pid.signal).or_default().push(e.clone());
                }
            }
            let used = !by_signal.is_empty();
            let consumers = ReceiverConsumers {
                by_signal: by_signal
                    .into_iter()
                    .map(|(s, v)| (s, FanOut::wrap(v)))
                    .collect(),
            };
            match f.create(&self.ctx(Kind::Receiver, id), body, consumers) {
                Ok(r) if used => self.receivers.push((location(Kind::Receiver, id), r)),
                Ok(_) => {}
                Err(e) => self.report(Kind::Receiver, id, e),
            }
        }
    }

    /// Two components that will listen on the same address are a config error, found here
    /// rather than as a bind failure at start: the receivers and extensions that start, and
    /// the collector's own metrics endpoint.
    fn check_endpoints(&mut self) {
        let mut listens = Vec::new();
        for (name, r) in &self.receivers {
            listens.extend(r.endpoints().into_iter().map(|e| (name.clone(), e)));
        }
        for (id, e) in self.extensions.iter() {
            let name = location(Kind::Extension, id);
            listens.extend(e.endpoints().into_iter().map(|e| (name.clone(), e)));
        }
        if let Ok(pulls) = self.config.service.telemetry.metrics.prometheus() {
            listens.extend(pulls.into_iter().map(|p| {
                (
                    "service::telemetry".to_owned(),
                    Endpoint::new("metrics", p.endpoint),
                )
            }));
        }
        for (at, message) in crate::endpoint::clashes(&listens) {
            self.errors.push(at, message);
        }
    }

    /// The service, or every problem found on the way.
    fn finish(self) -> Result<Service, ConfigErrors> {
        let flow = self.flow_rev.into_iter().rev().flatten().collect();
        self.errors.into_result(Service {
            extensions: self
                .extensions
                .iter()
                .map(|(id, e)| (location(Kind::Extension, id), e.clone()))
                .collect(),
            exporters: self
                .exporters
                .into_iter()
                .map(|((id, s), e)| (format!("{}[{s}]", location(Kind::Exporter, &id)), e))
                .collect(),
            flow,
            receivers: self.receivers,
            unused: self.unused,
            tasks: self.tasks,
            status: self.status,
            shutdown_timeout: self.config.service.shutdown_timeout.into(),
        })
    }
}

/// An id used both as a connector and as an exporter or receiver.
fn check_ambiguous_ids(config: &RawConfig, errors: &mut ConfigErrors) {
    for id in config.connectors.keys() {
        for (kind, taken) in [
            ("exporter", config.exporters.contains_key(id)),
            ("receiver", config.receivers.contains_key(id)),
        ] {
            if taken {
                errors.push(
                    location(Kind::Connector, id),
                    format!(
                        "ambiguous ID: Found both {:?} {kind} and {:?} connector.",
                        id.to_string(),
                        id.to_string()
                    ),
                );
            }
        }
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

    /// The root of every component's task set; servers the binary runs beside the graph (the
    /// metrics endpoint) spawn under it so they stop with the service, by its deadline.
    pub fn tasks(&self) -> &Tasks {
        &self.tasks
    }

    /// The configured drain deadline.
    pub fn shutdown_timeout(&self) -> Duration {
        self.shutdown_timeout
    }

    /// Starts extensions, exporters, processors and connectors (downstream first), then
    /// receivers. On failure, what started is stopped again within `service.shutdown_timeout`.
    pub async fn start(&self) -> Result<(), crate::ComponentError> {
        let mut started: Named = Vec::new();
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
                started.reverse();
                self.stop_in_order(started).await;
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
    /// downstream), then exporters (which drain), then extensions; all by one deadline,
    /// `service.shutdown_timeout` from now. Returns whether everything stopped in time.
    pub async fn shutdown(&self) -> bool {
        self.status.set_ready(false);
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
        self.stop_in_order(stages).await
    }

    /// Shuts `stages` down one after the other, then stops every remaining task, all by the
    /// deadline, which every component also sees through its [`Tasks::deadline`]. A stage
    /// whose shutdown is still running at the deadline is abandoned; the later stages still
    /// get their turn (a finished one does not need time: `timeout_at` polls it first).
    async fn stop_in_order(
        &self,
        stages: impl IntoIterator<Item = (String, Arc<dyn Lifecycle>)>,
    ) -> bool {
        let deadline = tokio::time::Instant::now() + self.shutdown_timeout;
        self.tasks.set_deadline(deadline);
        let mut clean = true;
        for (name, c) in stages {
            match tokio::time::timeout_at(deadline, c.shutdown()).await {
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
        self.tasks.stop_by_deadline().await && clean
    }
}

impl Service {
    /// Runs every built component's [`Lifecycle::prepare`] (plugins load, compile off the
    /// async workers, and check their config), in start order. Call it after building and
    /// before [`Service::start`]; `wasmcol validate` calls it too. Every problem is
    /// reported, each with its component and key path.
    pub async fn prepare(&self) -> Result<(), ConfigErrors> {
        let mut errors = ConfigErrors::default();
        let all = self
            .extensions
            .iter()
            .map(|(n, c)| (n, c.clone() as Arc<dyn Lifecycle>))
            .chain(
                self.exporters
                    .iter()
                    .map(|(n, c)| (n, c.clone() as Arc<dyn Lifecycle>)),
            )
            .chain(self.flow.iter().rev().map(|(n, c)| (n, c.clone())))
            .chain(self.unused.iter().map(|(n, c)| (n, c.clone())))
            .chain(
                self.receivers
                    .iter()
                    .map(|(n, c)| (n, c.clone() as Arc<dyn Lifecycle>)),
            );
        let mut seen = BTreeSet::new();
        for (name, c) in all {
            if let Err(e) = c.prepare().await {
                // A processor listed in several pipelines is one instance per pipeline, each
                // with the same problems: report them once.
                for line in e.to_string().lines() {
                    if seen.insert((name.clone(), line.to_owned())) {
                        errors.push(name.clone(), line);
                    }
                }
            }
        }
        errors.into_result(())
    }
}
