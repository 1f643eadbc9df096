//! Real consumers and batches for the unit tests.

use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::Mutex;
use tokio::sync::Semaphore;
use wasmcol_config::{ComponentId, Kind, Value};
use wasmcol_core::component::{Extensions, ServiceStatus};
use wasmcol_core::{Batch, ConsumeError, Consumer, CreateContext, Metrics, Tasks};
use wasmcol_pdata::proto::common::v1::{AnyValue, KeyValue, any_value};
use wasmcol_pdata::proto::resource::v1::Resource;
use wasmcol_pdata::proto::trace::v1::{ResourceSpans, ScopeSpans, Span};
use wasmcol_pdata::{ExportTraceServiceRequest, TracesBatch};

/// A create context for component `id` (`type` or `type/name`).
pub fn ctx(kind: Kind, id: &str) -> CreateContext {
    let (ty, name) = match id.split_once('/') {
        Some((t, n)) => (t, Some(n)),
        None => (id, None),
    };
    CreateContext {
        id: ComponentId::new(ty, name),
        kind,
        metrics: Metrics::new(),
        tasks: Tasks::new(),
        extensions: Extensions::default(),
        status: Arc::new(ServiceStatus::default()),
    }
}

/// Parses a YAML component body.
pub fn yaml(s: &str) -> Value {
    match serde_yaml::from_str(s) {
        Ok(v) => v,
        Err(e) => panic!("bad test yaml: {e}"),
    }
}

pub fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

/// One resource with `n` spans named `{prefix}-{i}`, decoded.
pub fn spans(prefix: &str, n: usize) -> Batch {
    Batch::Traces(TracesBatch::from_message(spans_message(prefix, n)))
}

pub fn spans_message(prefix: &str, n: usize) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", prefix)],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: (0..n)
                    .map(|i| Span {
                        trace_id: vec![7; 16],
                        span_id: vec![i as u8; 8],
                        name: format!("{prefix}-{i}"),
                        attributes: vec![kv("k", "v")],
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// Span names of a traces batch, in order.
pub fn span_names(b: &Batch) -> Vec<String> {
    match b {
        Batch::Traces(t) => match t.to_message() {
            Ok(m) => m
                .resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .flat_map(|s| &s.spans)
                .map(|s| s.name.clone())
                .collect(),
            Err(e) => panic!("undecodable batch: {e}"),
        },
        _ => panic!("not a traces batch"),
    }
}

/// A downstream consumer that records what it receives and answers with a configurable result.
/// With a gate, each `consume` waits for one permit, so a test can hold exports in flight.
#[derive(Default)]
pub struct Sink {
    pub received: Mutex<Vec<Batch>>,
    pub fail_with: Mutex<Option<ConsumeError>>,
    /// Answers for the next calls, in order; afterwards `fail_with` (or success) applies.
    pub script: Mutex<std::collections::VecDeque<Result<(), ConsumeError>>>,
    pub gate: Option<Arc<Semaphore>>,
}

impl Sink {
    pub fn new() -> Arc<Sink> {
        Arc::new(Sink::default())
    }

    pub fn gated(gate: Arc<Semaphore>) -> Arc<Sink> {
        Arc::new(Sink {
            gate: Some(gate),
            ..Sink::default()
        })
    }

    pub fn failing(e: ConsumeError) -> Arc<Sink> {
        let s = Sink::default();
        *s.fail_with.lock() = Some(e);
        Arc::new(s)
    }

    pub fn sizes(&self) -> Vec<usize> {
        self.received.lock().iter().map(Batch::item_count).collect()
    }

    pub fn total(&self) -> usize {
        self.sizes().iter().sum()
    }

    pub fn names(&self) -> Vec<String> {
        self.received.lock().iter().flat_map(span_names).collect()
    }
}

#[async_trait]
impl Consumer for Sink {
    async fn consume(&self, batch: Batch) -> Result<(), ConsumeError> {
        if let Some(g) = &self.gate {
            match g.acquire().await {
                Ok(p) => p.forget(),
                Err(_) => return Err(ConsumeError::ShuttingDown),
            }
        }
        self.received.lock().push(batch);
        if let Some(r) = self.script.lock().pop_front() {
            return r;
        }
        match self.fail_with.lock().clone() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}
