//! The collector's core: the consumer contract every stage implements, the component traits
//! and factories, the registry that maps type names to factories, the pipeline graph, the
//! self-telemetry registry and the service lifecycle.
//!
//! Data flows receiver → processors → fan-out → exporters/connectors as [`Batch`]es through
//! [`Consumer::consume`]; errors flow back the same way as [`ConsumeError`] so the receiver can
//! answer the sender with the right status. No stage swallows an error.

#![forbid(unsafe_code)]

pub mod auth;
pub mod component;
pub mod conn_limits;
pub mod consumer;
pub mod endpoint;
pub mod exporter;
pub mod graph;
pub mod health;
pub mod http;
pub mod registry;
pub mod tasks;
pub mod telemetry;

pub use component::{
    BuildError, ComponentError, Connector, ConnectorRoutes, CreateContext, Exporter, Extension,
    Extensions, Lifecycle, PipelineTopology, Processor, Receiver, ReceiverConsumers, ServiceStatus,
    Topology,
};
pub use consumer::{
    BackendStatus, ConsumeError, Consumer, ConsumerRef, FanOut, MAX_RETRY_HINT, PermanentError,
};
pub use endpoint::Endpoint;
pub use exporter::{ChainBuilder, ExporterParts, Sender, SimpleChain};
pub use graph::{Service, build};
pub use health::DeliveryHealth;
pub use registry::{
    ConnectorFactory, ExporterFactory, ExtensionFactory, ProcessorFactory, ReceiverFactory,
    Registry,
};
pub use tasks::Tasks;
pub use telemetry::{Counter, Gauge, Histogram, Metrics};
pub use wasmcol_config as config;
pub use wasmcol_pdata as pdata;
pub use wasmcol_pdata::{Batch, Signal};
