//! Shared test parts: an in-process `Sender` (the core's exporter seam, scripted to accept,
//! refuse or hang), batches with numbered spans, and component contexts.
#![allow(dead_code)]
// Test code: a failed expectation is reported by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use indexmap::IndexMap;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use parking_lot::Mutex;
use prost::Message;
use tokio::sync::Notify;
use tokio::time::Instant;
use wasmcol_config::ComponentId;
use wasmcol_config::Kind;
use wasmcol_config::exporterhelper::HelperConfig;
use wasmcol_core::ChainBuilder;
use wasmcol_core::{
    Batch, ConsumeError, CreateContext, Exporter, ExporterParts, Extension, Extensions, Lifecycle,
    Metrics, Sender, Signal, Tasks,
};

/// What the fake backend does with the next attempt.
#[derive(Clone, Debug)]
pub enum Mode {
    Accept,
    Refuse(Option<Duration>),
    Permanent,
    Hang,
}

/// An in-process sender recording every attempt.
pub struct FakeSender {
    pub mode: Mutex<Mode>,
    pub attempts: Mutex<Vec<Instant>>,
    /// Span id → times received (accepted attempts only).
    pub received: Mutex<BTreeMap<u64, u32>>,
    pub accepted_requests: Mutex<u64>,
    /// Items and arrival time of every accepted request, in order.
    pub accepted: Mutex<Vec<(usize, Instant)>>,
    pub progress: Notify,
}

impl FakeSender {
    pub fn new(mode: Mode) -> Arc<Self> {
        Arc::new(FakeSender {
            mode: Mutex::new(mode),
            attempts: Mutex::new(Vec::new()),
            received: Mutex::new(BTreeMap::new()),
            accepted_requests: Mutex::new(0),
            accepted: Mutex::new(Vec::new()),
            progress: Notify::new(),
        })
    }

    pub fn set(&self, mode: Mode) {
        *self.mode.lock() = mode;
    }

    pub fn attempts(&self) -> usize {
        self.attempts.lock().len()
    }

    /// Items of every accepted request, in order.
    pub fn sizes(&self) -> Vec<usize> {
        self.accepted.lock().iter().map(|(n, _)| *n).collect()
    }

    pub fn distinct(&self) -> usize {
        self.received.lock().len()
    }

    pub fn duplicates(&self) -> u64 {
        self.received
            .lock()
            .values()
            .map(|n| u64::from(n.saturating_sub(1)))
            .sum()
    }

    /// Waits (bounded) until `pred` holds.
    pub async fn wait_until(&self, limit: Duration, pred: impl Fn(&FakeSender) -> bool) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            let notified = self.progress.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if pred(self) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return pred(self);
            }
            let _ = tokio::time::timeout(left.min(Duration::from_millis(200)), notified).await;
        }
    }
}

#[async_trait]
impl Lifecycle for FakeSender {}

#[async_trait]
impl Sender for FakeSender {
    async fn send(&self, batch: Batch) -> Result<(), ConsumeError> {
        self.attempts.lock().push(Instant::now());
        let mode = self.mode.lock().clone();
        let r = match mode {
            Mode::Accept => {
                let ids = span_ids(&batch);
                let mut rec = self.received.lock();
                for id in ids {
                    *rec.entry(id).or_default() += 1;
                }
                *self.accepted_requests.lock() += 1;
                self.accepted
                    .lock()
                    .push((batch.item_count(), Instant::now()));
                Ok(())
            }
            Mode::Refuse(hint) => Err(ConsumeError::Retryable {
                message: "backend unavailable".into(),
                retry_after: hint,
            }),
            Mode::Permanent => Err(ConsumeError::permanent("bad request")),
            Mode::Hang => {
                std::future::pending::<()>().await;
                Ok(())
            }
        };
        self.progress.notify_waiters();
        r
    }
}

/// A traces batch whose spans carry ids `first..first+n` (big-endian in `span_id`).
pub fn traces(first: u64, n: u64) -> Batch {
    let req = wasmcol_testkit::spans::request(first, n);
    Batch::from_encoded(Signal::Traces, Bytes::from(req.encode_to_vec())).unwrap()
}

/// The span ids in a traces batch.
pub fn span_ids(batch: &Batch) -> Vec<u64> {
    let req = ExportTraceServiceRequest::decode(batch.encoded()).unwrap();
    wasmcol_testkit::spans::ids([&req])
}

pub fn ctx(kind: Kind, id: &str, metrics: &Metrics, extensions: Extensions) -> CreateContext {
    CreateContext {
        id: id.parse::<ComponentId>().unwrap(),
        kind,
        metrics: metrics.clone(),
        tasks: Tasks::new(),
        extensions,
        status: Default::default(),
    }
}

pub fn extensions(list: Vec<(&str, Arc<dyn Extension>)>) -> Extensions {
    let mut m = IndexMap::new();
    for (id, e) in list {
        m.insert(id.parse::<ComponentId>().unwrap(), e);
    }
    Extensions::new(m)
}

/// Builds an exporter through the delivery chain.
pub fn exporter(
    id: &str,
    metrics: &Metrics,
    extensions: Extensions,
    sender: Arc<FakeSender>,
    helper: HelperConfig,
) -> Arc<dyn Exporter> {
    let c = ctx(Kind::Exporter, id, metrics, extensions);
    wasmcol_delivery::DeliveryChain
        .build(&c, Signal::Traces, ExporterParts { sender, helper })
        .map_err(|e| e.to_string())
        .unwrap()
}

pub fn helper() -> HelperConfig {
    HelperConfig {
        timeout: Some(wasmcol_config::GoDuration::secs(5)),
        retry: Default::default(),
        queue: Default::default(),
    }
}

pub fn counter(metrics: &Metrics, name: &str, labels: &[(&str, &str)]) -> u64 {
    metrics.counter_value(name, labels).unwrap_or(0)
}

/// The value of series `name` whose labels include every `k="v"` pair in `labels` (any order).
pub fn series(metrics: &Metrics, name: &str, labels: &str) -> Option<f64> {
    wasmcol_testkit::prom::series(&metrics.render(), name, labels)
}
