//! The small native components, with otelcol-contrib's keys, defaults, validation messages
//! and internal metrics:
//!
//! - processors: [`batch`] (merges concurrent requests and, unlike upstream, returns the
//!   export's outcome to every caller) and [`memory_limiter`] (refuses with a retryable error
//!   while the process is above its soft memory limit);
//! - exporters: [`debug`] (logs what passes) and `nop` (discards);
//! - connector: [`forward`] (same signal in and out);
//! - extension: [`health_check`] (HTTP readiness endpoint), [`zpages`] (live pages of the
//!   service and its pipeline graph).

#![forbid(unsafe_code)]

pub mod batch;
pub mod debug;
mod ext_server;
pub mod forward;
pub mod health_check;
pub mod memory_limiter;
mod timefmt;
pub mod zpages;

/// Timestamps as Go marshals them; the binary's JSON log lines use it too.
pub use timefmt::rfc3339;

#[cfg(test)]
mod testutil;

use std::sync::Arc;

use wasmcol_core::Registry;
use wasmcol_core::registry::Factory;

/// Registers this crate's factories.
pub fn register(r: &mut Registry) {
    r.register(
        "batch",
        &[],
        "Groups spans, data points or log records into batches by size and time; returns the export's outcome to every sender.",
        Factory::Processor(Arc::new(batch::BatchFactory)),
    );
    r.register(
        "memory_limiter",
        &[],
        "Refuses data with a retryable error while the collector's memory use is above its soft limit.",
        Factory::Processor(Arc::new(memory_limiter::MemoryLimiterFactory)),
    );
    r.register(
        "debug",
        &[],
        "Logs a summary (or a dump) of every batch it receives.",
        Factory::Exporter(Arc::new(debug::DebugFactory)),
    );
    r.register(
        "nop",
        &[],
        "Accepts and discards every batch.",
        Factory::Exporter(Arc::new(debug::NopFactory)),
    );
    r.register(
        "forward",
        &[],
        "Passes data from the pipelines that export to it to the pipelines that receive from it.",
        Factory::Connector(Arc::new(forward::ForwardFactory)),
    );
    r.register(
        "health_check",
        &[],
        "Answers HTTP requests with 200 once the collector is ready and 503 otherwise.",
        Factory::Extension(Arc::new(health_check::HealthCheckFactory)),
    );
    r.register(
        "zpages",
        &[],
        "Serves live pages of the service: servicez, pipelinez, extensionz and a pipeline graph with rates (graphz).",
        Factory::Extension(Arc::new(zpages::ZPagesFactory)),
    );
}

/// Turns a list of validation messages into a build error, or `Ok` when there are none.
fn check(problems: Vec<String>) -> Result<(), wasmcol_core::BuildError> {
    wasmcol_core::BuildError::check(problems)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmcol_config::Kind;

    #[test]
    fn registers_every_component() {
        let mut r = Registry::new();
        register(&mut r);
        assert_eq!(r.names(Kind::Processor), ["batch", "memory_limiter"]);
        assert_eq!(r.names(Kind::Exporter), ["debug", "nop"]);
        assert_eq!(r.names(Kind::Connector), ["forward"]);
        assert_eq!(r.names(Kind::Extension), ["health_check", "zpages"]);
    }
}
