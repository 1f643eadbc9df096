//! Component traits and what factories get to build them.

use std::any::Any;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use async_trait::async_trait;
use indexmap::IndexMap;
use wasmcol_config::{ComponentId, KeyError, Kind, PipelineId};

use crate::health::DeliveryHealth;
use crate::{ConsumerRef, Metrics, Signal, Tasks};

/// A component failed to start or stop.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ComponentError(pub String);

impl ComponentError {
    /// An error with a message.
    pub fn new(message: impl Into<String>) -> Self {
        ComponentError(message.into())
    }
}

/// A component could not be built from its config: every problem found, each with the key
/// path inside the component's body. The graph places them in the component
/// (`receivers::otlp: protocols.grpc.endpoint: ...`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct BuildError(pub Vec<KeyError>);

impl BuildError {
    /// One problem: a [`KeyError`] (from [`wasmcol_config::decode`]), or a message whose key
    /// path, if any, is part of its text.
    pub fn new(problem: impl Into<KeyError>) -> Self {
        BuildError(vec![problem.into()])
    }

    /// One problem at `path` inside the body.
    pub fn at(path: impl Into<String>, message: impl Into<String>) -> Self {
        BuildError(vec![KeyError::new(path, message)])
    }

    /// `Ok` when `problems` is empty, else all of them.
    pub fn check<P: Into<KeyError>>(problems: Vec<P>) -> Result<(), BuildError> {
        if problems.is_empty() {
            Ok(())
        } else {
            Err(BuildError::from(problems))
        }
    }
}

impl From<String> for BuildError {
    fn from(s: String) -> Self {
        BuildError::new(s)
    }
}

impl From<KeyError> for BuildError {
    fn from(e: KeyError) -> Self {
        BuildError::new(e)
    }
}

/// Messages whose key paths are part of their text, or [`KeyError`]s.
impl<P: Into<KeyError>> From<Vec<P>> for BuildError {
    fn from(problems: Vec<P>) -> Self {
        BuildError(problems.into_iter().map(Into::into).collect())
    }
}

/// Start and stop. Building a component has no side effects (no ports bound, no files
/// opened, no tasks spawned) so `wasmcol validate` can build the whole graph safely.
#[async_trait]
pub trait Lifecycle: Send + Sync {
    /// Work between building and starting that may take long but binds nothing and spawns
    /// no task: loading and configuring a plugin (its compile runs on the blocking pool).
    /// `wasmcol validate` runs it too. An error lists one problem per line, each starting
    /// with its key path.
    async fn prepare(&self) -> Result<(), ComponentError> {
        Ok(())
    }

    /// Binds ports, opens files, spawns tasks.
    async fn start(&self) -> Result<(), ComponentError> {
        Ok(())
    }

    /// Stops; processors flush what they hold downstream, exporters drain. The service
    /// bounds the whole shutdown by `service.shutdown_timeout`: the moment it ends is the
    /// component's [`Tasks::deadline`], and waits inside shutdown use
    /// [`Tasks::wait_by_deadline`] / [`Tasks::stop_by_deadline`] rather than their own limits.
    async fn shutdown(&self) -> Result<(), ComponentError> {
        Ok(())
    }
}

/// A receiver: produces batches into its pipelines' consumers.
pub trait Receiver: Lifecycle {
    /// The addresses it will listen on once started, so the graph can report two components
    /// on one address as a config error.
    fn endpoints(&self) -> Vec<crate::Endpoint> {
        Vec::new()
    }
}

/// A processor: a consumer that forwards to the next stage.
pub trait Processor: crate::Consumer + Lifecycle {}

/// An exporter: the end of a pipeline.
pub trait Exporter: crate::Consumer + Lifecycle {
    /// Delivery outcomes, for connectors that route by health (failover).
    fn health(&self) -> Option<Arc<DeliveryHealth>> {
        None
    }

    /// Requests queued or in flight, in the queue's sizer units; `None` without a queue.
    /// The load balancer waits for a removed backend's queue to empty before stopping it.
    fn pending(&self) -> Option<u64> {
        None
    }
}

/// A connector: an exporter in one pipeline and a receiver in others.
pub trait Connector: crate::Consumer + Lifecycle {}

/// An extension: started first, stopped last; others find it by id.
pub trait Extension: Lifecycle {
    /// For downcasting by components that use a specific extension (storage).
    fn as_any(&self) -> &dyn Any;

    /// The addresses it will listen on once started (see [`Receiver::endpoints`]).
    fn endpoints(&self) -> Vec<crate::Endpoint> {
        Vec::new()
    }

    /// The server side, for an authenticator extension receivers name in `auth`.
    fn server_authenticator(&self) -> Option<Arc<dyn crate::auth::ServerAuthenticator>> {
        None
    }

    /// The client side, for an authenticator extension exporters name in `auth`.
    fn client_authenticator(&self) -> Option<Arc<dyn crate::auth::ClientAuthenticator>> {
        None
    }
}

/// The consumers a receiver feeds, per signal (only signals that have pipelines).
#[derive(Clone, Default)]
pub struct ReceiverConsumers {
    /// Signal → the fan-out into every pipeline of that signal listing this receiver.
    pub by_signal: HashMap<Signal, ConsumerRef>,
}

impl ReceiverConsumers {
    /// The consumer for `signal`, if a pipeline of that signal lists the receiver.
    pub fn get(&self, signal: Signal) -> Option<&ConsumerRef> {
        self.by_signal.get(&signal)
    }
}

/// The pipelines a connector feeds, with the delivery health of the exporters that each
/// pipeline ends in (directly or through further connectors).
#[derive(Clone, Default)]
pub struct ConnectorRoutes {
    /// Pipeline id → its entry consumer and its exporters' health.
    pub pipelines: IndexMap<PipelineId, (ConsumerRef, Vec<Arc<DeliveryHealth>>)>,
}

/// Readiness of the whole service, read by `health_check`.
#[derive(Default)]
pub struct ServiceStatus {
    ready: AtomicBool,
    since: parking_lot::Mutex<Option<SystemTime>>,
    topology: parking_lot::Mutex<Option<Arc<Topology>>>,
}

/// The configured service as ids, for pages that show it (`zpages`): set once the config is
/// resolved, before any component is built.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Topology {
    /// `service.extensions`, in start order.
    pub extensions: Vec<String>,
    /// Ids of the configured connectors (they appear as exporters and receivers of pipelines).
    pub connectors: Vec<String>,
    /// Every pipeline in config order.
    pub pipelines: Vec<PipelineTopology>,
}

/// One pipeline's components, by id.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PipelineTopology {
    /// `traces`, `metrics/name`, ...
    pub id: String,
    /// Receivers and connectors feeding it.
    pub receivers: Vec<String>,
    /// Processors in order.
    pub processors: Vec<String>,
    /// Exporters and connectors it fans out to.
    pub exporters: Vec<String>,
}

impl ServiceStatus {
    /// Marks the service ready (all pipelines started) or not (starting, shutting down).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
        *self.since.lock() = if ready { Some(SystemTime::now()) } else { None };
    }

    /// Whether the service is ready.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// When it became ready.
    pub fn ready_since(&self) -> Option<SystemTime> {
        *self.since.lock()
    }

    /// Records the configured service.
    pub fn set_topology(&self, t: Topology) {
        *self.topology.lock() = Some(Arc::new(t));
    }

    /// The configured service, once resolved.
    pub fn topology(&self) -> Option<Arc<Topology>> {
        self.topology.lock().clone()
    }
}

/// Started extensions by id.
#[derive(Clone, Default)]
pub struct Extensions {
    map: Arc<IndexMap<ComponentId, Arc<dyn Extension>>>,
}

impl Extensions {
    /// Wraps built extensions.
    pub fn new(map: IndexMap<ComponentId, Arc<dyn Extension>>) -> Self {
        Extensions { map: Arc::new(map) }
    }

    /// The extension with `id`.
    pub fn get(&self, id: &ComponentId) -> Option<&Arc<dyn Extension>> {
        self.map.get(id)
    }

    /// All extensions in start order.
    pub fn iter(&self) -> impl Iterator<Item = (&ComponentId, &Arc<dyn Extension>)> {
        self.map.iter()
    }
}

/// What a factory gets besides the config body.
#[derive(Clone)]
pub struct CreateContext {
    /// The component's id.
    pub id: ComponentId,
    /// Its section.
    pub kind: Kind,
    /// The collector's metrics registry.
    pub metrics: Metrics,
    /// Where the component spawns its tasks.
    pub tasks: Tasks,
    /// Extensions configured in `service.extensions` (built before everything else).
    pub extensions: Extensions,
    /// Service readiness.
    pub status: Arc<ServiceStatus>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Cfg {
        endpoint: String,
    }

    #[test]
    fn build_errors_keep_each_key_path() {
        let body: wasmcol_config::Value = serde_yaml::from_str("bogus: 1").unwrap();
        let e = BuildError::from(wasmcol_config::decode::<Cfg>(&body).unwrap_err());
        assert_eq!(e.0.len(), 1);
        assert_eq!(e.0[0].path, "bogus");
        assert!(e.0[0].message.starts_with("unknown field `bogus`"), "{e}");
        let e = BuildError::from(vec![
            KeyError::new("protocols.grpc.endpoint", "must be host:port"),
            KeyError::new("", "must specify at least one protocol"),
        ]);
        assert_eq!(
            e,
            BuildError(vec![
                KeyError::new("protocols.grpc.endpoint", "must be host:port"),
                KeyError::new("", "must specify at least one protocol"),
            ])
        );
        assert_eq!(
            e.to_string(),
            "protocols.grpc.endpoint: must be host:port; must specify at least one protocol"
        );
        assert_eq!(BuildError::check(Vec::<String>::new()), Ok(()));
        assert_eq!(
            BuildError::check(vec!["x: bad".to_owned()]),
            Err(BuildError::new("x: bad"))
        );
    }
}
