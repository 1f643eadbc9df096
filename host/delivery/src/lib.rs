//! Durable delivery for wasmcol.
//!
//! - [`chain`]: upstream's exporterhelper chain for every exporter — `sending_queue`
//!   (memory or persistent) → `retry_on_failure` → per-attempt `timeout` → send — with
//!   `otelcol_exporter_sent_*` / `send_failed_*` counted once per request after retries,
//!   `enqueue_failed_*`, `queue_size` / `queue_capacity`, and the delivery health of every
//!   attempt for the failover connector.
//! - [`storage`]: the `file_storage` extension on fjall, with one writer per database doing
//!   group commits.
//! - [`queue::persistent`]: the persistent queue — acknowledged only once durable, deleted
//!   only once delivered, re-sent after a crash, corrupt records quarantined.
//! - [`failover`]: the `failover` connector, which judges a level by delivery outcomes.
//!
//! [`register`] adds all of it to a registry.

#![forbid(unsafe_code)]

pub mod chain;
pub mod failover;
mod journal;
pub mod queue;
pub mod record;
pub mod retry;
pub mod storage;

use std::sync::Arc;

use wasmcol_core::Registry;
use wasmcol_core::registry::Factory;

pub use chain::DeliveryChain;
pub use failover::FailoverFactory;
pub use storage::{FileStorage, FileStorageConfig, FileStorageFactory};

/// Registers `file_storage`, `failover` and the full exporter chain.
pub fn register(r: &mut Registry) {
    r.register(
        "file_storage",
        &[],
        "Durable storage on fjall for persistent sending queues.",
        Factory::Extension(Arc::new(FileStorageFactory)),
    );
    r.register(
        "failover",
        &[],
        "Routes to the first healthy pipeline in priority order, judged by delivery outcomes.",
        Factory::Connector(Arc::new(FailoverFactory)),
    );
    r.set_chain(Arc::new(DeliveryChain));
}
