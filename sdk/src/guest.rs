//! The component side of the contract (compiled for `wasm32` only): bindings generated from
//! `wit/v0.2.0/plugin.wit` inside this crate (which uses the `types` and `batch` interfaces of 0.1.0), the batch handles wrapped in the SDK's traits, and the glue that the
//! [`crate::export_processor!`] macro plugs a [`crate::Processor`] into.

#![allow(unsafe_code)]

use std::cell::RefCell;

use crate::config::ConfigErrors;
use crate::ops::{
    BatchOps, ItemRef, Level, LogInfo, LogOps, MetricKind, MetricOps, PointInfo, ScopeInfo,
    ScopeRef, SetMode, Signal, SpanInfo, Target, TraceOps,
};
use crate::processor::{Decision, Outcome, ProcessError, Processor};
use crate::view::{Logs, Metrics, Traces};
use crate::{LogLevel, Value};

/// Generated bindings, committed (`src/bindings/processor.rs`, from `wit/v0.2.0` by the
/// wit-bindgen CLI; see the README) so that building a plugin runs no proc-macro. Not part
/// of the SDK's stable API.
#[doc(hidden)]
#[allow(missing_docs, clippy::all)]
#[rustfmt::skip]
#[path = "bindings/processor.rs"]
pub mod bindings;

use bindings::wasmcol::plugin0_1_0::batch as wb;
use bindings::wasmcol::plugin0_1_0::types as wt;
use bindings::wasmcol::plugin0_2_0::batch_ext as bx;
use bindings::wasmcol::plugin0_2_0::telemetry as tm;
use bindings::wasmcol::plugin0_2_0::types as t2;

pub use bindings::Guest;

pub(crate) fn log(level: LogLevel, message: &str) {
    let level = match level {
        LogLevel::Trace => wt::LogLevel::Trace,
        LogLevel::Debug => wt::LogLevel::Debug,
        LogLevel::Info => wt::LogLevel::Info,
        LogLevel::Warn => wt::LogLevel::Warn,
        LogLevel::Error => wt::LogLevel::Error,
    };
    bindings::log(level, message);
}

fn value_in(v: &Value) -> wt::AnyValue {
    match v {
        Value::Empty => wt::AnyValue::Empty,
        Value::Str(s) => wt::AnyValue::Str(s.clone()),
        Value::Bool(b) => wt::AnyValue::Boolean(*b),
        Value::Int(i) => wt::AnyValue::Int(*i),
        Value::Double(d) => wt::AnyValue::Double(*d),
        Value::Bytes(b) => wt::AnyValue::Bytes(b.clone()),
        Value::Nested(b) => wt::AnyValue::Nested(b.clone()),
    }
}

fn value_out(v: wt::AnyValue) -> Value {
    match v {
        wt::AnyValue::Empty => Value::Empty,
        wt::AnyValue::Str(s) => Value::Str(s),
        wt::AnyValue::Boolean(b) => Value::Bool(b),
        wt::AnyValue::Int(i) => Value::Int(i),
        wt::AnyValue::Double(d) => Value::Double(d),
        wt::AnyValue::Bytes(b) => Value::Bytes(b),
        wt::AnyValue::Nested(b) => Value::Nested(b),
    }
}

fn item(at: ItemRef) -> wt::ItemRef {
    wt::ItemRef {
        resource: at.resource,
        scope: at.scope,
        item: at.item,
    }
}

fn target(at: Target) -> wt::Target {
    match at {
        Target::Resource(r) => wt::Target::Resource(r),
        Target::Scope(s) => wt::Target::Scope(wt::ScopeRef {
            resource: s.resource,
            scope: s.scope,
        }),
        Target::Item(i) => wt::Target::Item(item(i)),
        Target::Event(e) => wt::Target::Event(wt::EventRef {
            resource: e.span.resource,
            scope: e.span.scope,
            item: e.span.item,
            event: e.event,
        }),
    }
}

fn level(l: Level) -> wt::Level {
    match l {
        Level::Resource => wt::Level::Resource,
        Level::Scope => wt::Level::Scope,
        Level::Item => wt::Level::Item,
    }
}

fn mode(m: SetMode) -> wt::SetMode {
    match m {
        SetMode::Insert => wt::SetMode::Insert,
        SetMode::Update => wt::SetMode::Update,
        SetMode::Upsert => wt::SetMode::Upsert,
    }
}

/// A borrowed host handle wrapped in the SDK's traits.
pub struct Handle<'a, T>(pub &'a T);

macro_rules! batch_ops {
    ($res:ty, $context:path, $remove_all:path) => {
        impl BatchOps for Handle<'_, $res> {
            fn resource_count(&self) -> u32 {
                self.0.resource_count()
            }
            fn scope_count(&self, r: u32) -> u32 {
                self.0.scope_count(r)
            }
            fn item_count(&self, r: u32, s: u32) -> u32 {
                self.0.item_count(r, s)
            }
            fn total_items(&self) -> u32 {
                self.0.total_items()
            }
            fn scope_info(&self, at: ScopeRef) -> ScopeInfo {
                let i = self.0.scope_info(wt::ScopeRef {
                    resource: at.resource,
                    scope: at.scope,
                });
                ScopeInfo {
                    name: i.name,
                    version: i.version,
                }
            }
            fn attribute(&self, at: Target, key: &str) -> Option<Value> {
                self.0.attribute(target(at), key).map(value_out)
            }
            fn attributes(&self, at: Target) -> Vec<(String, Value)> {
                self.0
                    .attributes(target(at))
                    .into_iter()
                    .map(|kv| (kv.key, value_out(kv.value)))
                    .collect()
            }
            fn set_attribute(&self, at: Target, key: &str, value: &Value, m: SetMode) -> bool {
                self.0
                    .set_attribute(target(at), key, &value_in(value), mode(m))
            }
            fn remove_attribute(&self, at: Target, key: &str) -> bool {
                self.0.remove_attribute(target(at), key)
            }
            fn replace_attributes(&self, at: Target, attributes: &[(String, Value)]) {
                let kvs: Vec<wt::KeyValue> = attributes
                    .iter()
                    .map(|(k, v)| wt::KeyValue {
                        key: k.clone(),
                        value: value_in(v),
                    })
                    .collect();
                self.0.replace_attributes(target(at), &kvs)
            }
            fn set_attribute_all(&self, l: Level, key: &str, value: &Value, m: SetMode) -> u32 {
                self.0
                    .set_attribute_all(level(l), key, &value_in(value), mode(m))
            }
            fn attribute_all(&self, l: Level, key: &str) -> Vec<Option<Value>> {
                self.0
                    .attribute_all(level(l), key)
                    .into_iter()
                    .map(|v| v.map(value_out))
                    .collect()
            }
            fn retain(&self, keep: &[bool]) -> u32 {
                self.0.retain(keep)
            }
            fn to_otlp(&self) -> Vec<u8> {
                self.0.to_otlp()
            }
            fn replace_from_otlp(&self, otlp: &[u8]) -> Result<(), String> {
                self.0.replace_from_otlp(otlp)
            }
            fn remove_attribute_all(&self, l: Level, key: &str) -> u32 {
                $remove_all(self.0, level(l), key)
            }
            fn context(&self, key: &str) -> Vec<String> {
                $context(self.0, key)
            }
        }
    };
}

batch_ops!(
    wb::TraceBatch,
    bx::trace_context,
    bx::trace_remove_attribute_all
);
batch_ops!(
    wb::MetricBatch,
    bx::metric_context,
    bx::metric_remove_attribute_all
);
batch_ops!(wb::LogBatch, bx::log_context, bx::log_remove_attribute_all);

fn labels(l: &[(&str, &str)]) -> Vec<t2::Label> {
    l.iter()
        .map(|(k, v)| t2::Label {
            key: (*k).to_owned(),
            value: (*v).to_owned(),
        })
        .collect()
}

pub(crate) fn counter_add(name: &str, help: &str, l: &[(&str, &str)], value: u64) {
    tm::counter_add(name, help, &labels(l), value);
}

pub(crate) fn gauge_set(name: &str, help: &str, l: &[(&str, &str)], value: f64) {
    tm::gauge_set(name, help, &labels(l), value);
}

pub(crate) fn histogram_record(
    name: &str,
    help: &str,
    l: &[(&str, &str)],
    bounds: &[f64],
    value: f64,
) {
    tm::histogram_record(name, help, &labels(l), bounds, value);
}

impl TraceOps for Handle<'_, wb::TraceBatch> {
    fn span(&self, at: ItemRef) -> SpanInfo {
        let s = self.0.span(item(at));
        SpanInfo {
            trace_id: s.trace_id,
            span_id: s.span_id,
            parent_span_id: s.parent_span_id,
            trace_state: s.trace_state,
            name: s.name,
            kind: s.kind,
            start_time_unix_nano: s.start_time_unix_nano,
            end_time_unix_nano: s.end_time_unix_nano,
            status_code: s.status_code,
            status_message: s.status_message,
            flags: s.flags,
            event_count: s.event_count,
            link_count: s.link_count,
        }
    }
    fn trace_ids(&self) -> Vec<u8> {
        self.0.trace_ids()
    }
    fn trace_states(&self) -> Vec<String> {
        self.0.trace_states()
    }
    fn set_trace_state(&self, at: ItemRef, trace_state: &str) {
        self.0.set_trace_state(item(at), trace_state)
    }
    fn set_span_name(&self, at: ItemRef, name: &str) {
        self.0.set_span_name(item(at), name)
    }
}

impl MetricOps for Handle<'_, wb::MetricBatch> {
    fn point(&self, at: ItemRef) -> PointInfo {
        let p = self.0.point(item(at));
        PointInfo {
            metric_name: p.metric_name,
            metric_unit: p.metric_unit,
            kind: match p.kind {
                wb::MetricKind::Gauge => MetricKind::Gauge,
                wb::MetricKind::Sum => MetricKind::Sum,
                wb::MetricKind::Histogram => MetricKind::Histogram,
                wb::MetricKind::ExponentialHistogram => MetricKind::ExponentialHistogram,
                wb::MetricKind::Summary => MetricKind::Summary,
            },
            start_time_unix_nano: p.start_time_unix_nano,
            time_unix_nano: p.time_unix_nano,
        }
    }
}

impl LogOps for Handle<'_, wb::LogBatch> {
    fn log_record(&self, at: ItemRef) -> LogInfo {
        let l = self.0.log_record(item(at));
        LogInfo {
            time_unix_nano: l.time_unix_nano,
            observed_time_unix_nano: l.observed_time_unix_nano,
            severity_number: l.severity_number,
            severity_text: l.severity_text,
            body: value_out(l.body),
            trace_id: l.trace_id,
            span_id: l.span_id,
            flags: l.flags,
            event_name: l.event_name,
        }
    }
    fn trace_ids(&self) -> Vec<u8> {
        self.0.trace_ids()
    }
}

/// `info` for processor `P`; `cargo_name` and `cargo_version` (the plugin crate's, from the
/// export macro) stand in for an empty `NAME` or `VERSION`.
pub fn info<P: Processor>(cargo_name: &str, cargo_version: &str) -> bindings::PluginInfo {
    let or = |own: &str, cargo: &str| if own.is_empty() { cargo } else { own }.to_owned();
    bindings::PluginInfo {
        name: or(P::NAME, cargo_name),
        version: or(P::VERSION, cargo_version),
        signals: P::SIGNALS
            .iter()
            .map(|s| match s {
                Signal::Traces => wt::Signal::Traces,
                Signal::Metrics => wt::Signal::Metrics,
                Signal::Logs => wt::Signal::Logs,
            })
            .collect(),
        config_schema: P::CONFIG_SCHEMA.to_owned(),
    }
}

/// `configure` for processor `P`, storing the instance in `slot`.
pub fn configure<P: Processor>(
    slot: &'static std::thread::LocalKey<RefCell<Option<P>>>,
    json: String,
    signal: wt::Signal,
) -> Result<t2::Settings, Vec<bindings::ConfigError>> {
    let signal = match signal {
        wt::Signal::Traces => Signal::Traces,
        wt::Signal::Metrics => Signal::Metrics,
        wt::Signal::Logs => Signal::Logs,
    };
    match crate::processor::configure::<P>(&json, signal) {
        Ok(p) => {
            let hold = p.hold_traces().map(|h| t2::TraceHold {
                decision_wait_ms: h.decision_wait_ms,
                num_traces: h.num_traces,
                sampled_cache_size: h.sampled_cache_size,
                non_sampled_cache_size: h.non_sampled_cache_size,
                drop_pending_on_shutdown: h.drop_pending_on_shutdown,
            });
            slot.with(|s| *s.borrow_mut() = Some(p));
            Ok(t2::Settings { hold_traces: hold })
        }
        Err(ConfigErrors(errors)) => Err(errors
            .into_iter()
            .map(|e| bindings::ConfigError {
                path: e.path,
                message: e.message,
            })
            .collect()),
    }
}

fn outcome(r: Result<Outcome, ProcessError>) -> Result<bindings::Outcome, bindings::ProcessError> {
    match r {
        Ok(Outcome::Forward) => Ok(bindings::Outcome::Forward),
        Ok(Outcome::Drop) => Ok(bindings::Outcome::Drop),
        Err(ProcessError::Permanent(m)) => Err(bindings::ProcessError::Permanent(m)),
        Err(ProcessError::Retryable(m)) => Err(bindings::ProcessError::Retryable(m)),
    }
}

fn with<P: Processor>(
    slot: &'static std::thread::LocalKey<RefCell<Option<P>>>,
    f: impl FnOnce(&mut P) -> Result<Outcome, ProcessError>,
) -> Result<bindings::Outcome, bindings::ProcessError> {
    slot.with(|s| match s.borrow_mut().as_mut() {
        Some(p) => outcome(f(p)),
        None => Err(bindings::ProcessError::Permanent(
            "the plugin was not configured".into(),
        )),
    })
}

/// `process-traces` for processor `P`.
pub fn process_traces<P: Processor>(
    slot: &'static std::thread::LocalKey<RefCell<Option<P>>>,
    batch: &wb::TraceBatch,
) -> Result<bindings::Outcome, bindings::ProcessError> {
    let h = Handle(batch);
    with(slot, |p| p.process_traces(Traces::new(&h)))
}

/// `process-metrics` for processor `P`.
pub fn process_metrics<P: Processor>(
    slot: &'static std::thread::LocalKey<RefCell<Option<P>>>,
    batch: &wb::MetricBatch,
) -> Result<bindings::Outcome, bindings::ProcessError> {
    let h = Handle(batch);
    with(slot, |p| p.process_metrics(Metrics::new(&h)))
}

/// `process-logs` for processor `P`.
pub fn process_logs<P: Processor>(
    slot: &'static std::thread::LocalKey<RefCell<Option<P>>>,
    batch: &wb::LogBatch,
) -> Result<bindings::Outcome, bindings::ProcessError> {
    let h = Handle(batch);
    with(slot, |p| p.process_logs(Logs::new(&h)))
}

/// `tick` for processor `P`.
pub fn tick<P: Processor>(slot: &'static std::thread::LocalKey<RefCell<Option<P>>>, now: u64) {
    slot.with(|s| {
        if let Some(p) = s.borrow_mut().as_mut() {
            p.tick(now)
        }
    })
}

/// `decide-trace` for processor `P`.
pub fn decide_trace<P: Processor>(
    slot: &'static std::thread::LocalKey<RefCell<Option<P>>>,
    batch: &wb::TraceBatch,
    first: u64,
    now: u64,
) -> Result<t2::Decision, bindings::ProcessError> {
    let h = Handle(batch);
    slot.with(|s| match s.borrow_mut().as_mut() {
        Some(p) => match p.decide_trace(Traces::new(&h), first, now) {
            Ok(Decision::Sampled) => Ok(t2::Decision::Sampled),
            Ok(Decision::NotSampled) => Ok(t2::Decision::NotSampled),
            Err(ProcessError::Permanent(m)) => Err(bindings::ProcessError::Permanent(m)),
            Err(ProcessError::Retryable(m)) => Err(bindings::ProcessError::Retryable(m)),
        },
        None => Err(bindings::ProcessError::Permanent(
            "the plugin was not configured".into(),
        )),
    })
}

pub use bindings::ProcessError as WitProcessError;
/// Types the export macro names.
pub use bindings::{ConfigError as WitConfigError, Outcome as WitOutcome, PluginInfo};
pub use t2::{Decision as WitDecision, Settings as WitSettings};
pub use wb::{LogBatch, MetricBatch, TraceBatch};
pub use wt::Signal as WitSignal;
