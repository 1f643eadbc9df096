//! The `load_balancing` exporter ([`exporter`], traces, metrics and logs) and its parts: upstream's
//! consistent-hash ring ([`ring`]), the exporter's config ([`config`]) and the split of a
//! request per backend ([`split`]).

#![forbid(unsafe_code)]

mod attribute_key;
pub mod config;
pub mod exporter;
pub mod ring;
pub mod split;

pub use config::{Checked, Config, Resolver, RoutingKey};
pub use exporter::LoadBalancingFactory;
pub use ring::Ring;
pub use split::{RouteError, split_encoded_by_trace, split_logs, split_metrics, split_traces};

use std::sync::Arc;

use wasmcol_core::registry::Factory;
use wasmcol_core::{ExporterFactory, Registry};

/// Registers `load_balancing` (alias `loadbalancing`). Each backend is an exporter built by
/// `otlp` (the gRPC exporter's factory) inside the registry's delivery chain, so call this
/// after the chain is set.
pub fn register(r: &mut Registry, otlp: Arc<dyn ExporterFactory>) {
    let chain = r.chain().clone();
    r.register(
        "load_balancing",
        &["loadbalancing"],
        "Load-balancing exporter: upstream's consistent-hash ring over static or DNS backends",
        Factory::Exporter(Arc::new(LoadBalancingFactory { otlp, chain })),
    );
}
