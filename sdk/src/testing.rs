//! A native, in-memory implementation of the batch interface, so plugin logic can be unit
//! tested with plain `cargo test` (no wasm, no host).
//!
//! Build a batch with the builders, run your processor through [`run_traces`] (which decodes
//! the config exactly like the host does), then inspect the data:
//!
//! ```
//! use wasmcol_sdk::testing::{MemTraces, span};
//! use wasmcol_sdk::Value;
//!
//! let batch = MemTraces::new().resource(&[("service.name", "checkout".into())], |r| {
//!     r.scope("lib", |s| {
//!         s.item(span("GET /cart").attr("http.status_code", 200));
//!     });
//! });
//! assert_eq!(batch.data().resources[0].scopes[0].items[0].attributes[0].1, Value::Int(200));
//! ```
//!
//! `to_otlp` and `replace_from_otlp` need protobuf, which the SDK deliberately does not
//! carry: the in-memory batches return an empty buffer and an error for them.

use std::cell::{Ref, RefCell};

use crate::Value;
use crate::config::ConfigErrors;
use crate::ops::{
    BatchOps, ItemRef, Level, LogInfo, LogOps, MetricKind, MetricOps, PointInfo, ScopeInfo,
    ScopeRef, SetMode, Signal, SpanInfo, Target, TraceOps,
};
use crate::processor::{Outcome, ProcessError, Processor, configure};
use crate::view::{Logs, Metrics, Traces};

/// An attribute list.
pub type Attrs = Vec<(String, Value)>;

/// A resource with its scopes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MemResource<I> {
    /// Resource attributes.
    pub attributes: Attrs,
    /// Scopes.
    pub scopes: Vec<MemScope<I>>,
}

/// A scope with its items.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MemScope<I> {
    /// Scope name and version.
    pub info: ScopeInfo,
    /// Scope attributes.
    pub attributes: Attrs,
    /// Items.
    pub items: Vec<I>,
}

/// The whole batch.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MemData<I> {
    /// Resources.
    pub resources: Vec<MemResource<I>>,
}

/// A span.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MemSpan {
    /// Fields (its `event_count` is ignored; `events` counts).
    pub info: SpanInfo,
    /// Attributes.
    pub attributes: Attrs,
    /// Each event's attributes.
    pub events: Vec<Attrs>,
}

/// A data point.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MemPoint {
    /// Metric and timestamps.
    pub info: PointInfo,
    /// Attributes.
    pub attributes: Attrs,
}

/// A log record.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MemLog {
    /// Fields.
    pub info: LogInfo,
    /// Attributes.
    pub attributes: Attrs,
}

/// What the in-memory batch needs from an item.
pub trait MemItem {
    /// The item's attributes.
    fn attrs(&mut self) -> &mut Attrs;
    /// Event `e`'s attributes, for spans.
    fn event_attrs(&mut self, e: u32) -> Option<&mut Attrs> {
        let _ = e;
        None
    }
}

impl MemItem for MemSpan {
    fn attrs(&mut self) -> &mut Attrs {
        &mut self.attributes
    }
    fn event_attrs(&mut self, e: u32) -> Option<&mut Attrs> {
        self.events.get_mut(e as usize)
    }
}
impl MemItem for MemPoint {
    fn attrs(&mut self) -> &mut Attrs {
        &mut self.attributes
    }
}
impl MemItem for MemLog {
    fn attrs(&mut self) -> &mut Attrs {
        &mut self.attributes
    }
}

/// An in-memory batch of items `I`. A call with an out-of-range resource, scope, item or
/// event index traps like the host's: the call returns an empty value and changes nothing,
/// the first such call is recorded ([`MemBatch::trap`]), and the `run_*` function returns
/// it as an error. Nothing here panics on a plugin's indices.
#[derive(Debug, Default)]
pub struct MemBatch<I> {
    data: RefCell<MemData<I>>,
    context: RefCell<Vec<(String, Vec<String>)>>,
    trap: RefCell<Option<String>>,
}

/// In-memory spans.
pub type MemTraces = MemBatch<MemSpan>;
/// In-memory data points.
pub type MemMetrics = MemBatch<MemPoint>;
/// In-memory log records.
pub type MemLogs = MemBatch<MemLog>;

/// Builds one resource.
pub struct ResourceBuilder<I> {
    resource: MemResource<I>,
}

impl<I> ResourceBuilder<I> {
    /// Adds a scope named `name` and fills it.
    pub fn scope(&mut self, name: &str, f: impl FnOnce(&mut ScopeBuilder<I>)) -> &mut Self {
        let mut b = ScopeBuilder {
            scope: MemScope {
                info: ScopeInfo {
                    name: name.to_owned(),
                    version: String::new(),
                },
                attributes: Vec::new(),
                items: Vec::new(),
            },
        };
        f(&mut b);
        self.resource.scopes.push(b.scope);
        self
    }
}

/// Builds one scope.
pub struct ScopeBuilder<I> {
    scope: MemScope<I>,
}

impl<I> ScopeBuilder<I> {
    /// Sets the scope version.
    pub fn version(&mut self, v: &str) -> &mut Self {
        self.scope.info.version = v.to_owned();
        self
    }
    /// Adds a scope attribute.
    pub fn attr(&mut self, key: &str, value: impl Into<Value>) -> &mut Self {
        self.scope.attributes.push((key.to_owned(), value.into()));
        self
    }
    /// Adds an item.
    pub fn item(&mut self, item: I) -> &mut Self {
        self.scope.items.push(item);
        self
    }
}

fn attrs_of(list: &[(&str, Value)]) -> Attrs {
    list.iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

impl<I> MemBatch<I> {
    /// An empty batch.
    pub fn new() -> Self {
        MemBatch {
            context: RefCell::default(),
            trap: RefCell::default(),
            data: RefCell::new(MemData {
                resources: Vec::new(),
            }),
        }
    }

    /// Wraps existing data.
    pub fn from_data(data: MemData<I>) -> Self {
        MemBatch {
            context: RefCell::default(),
            trap: RefCell::default(),
            data: RefCell::new(data),
        }
    }

    /// Adds a resource with `attributes` and fills it.
    pub fn resource(
        self,
        attributes: &[(&str, Value)],
        f: impl FnOnce(&mut ResourceBuilder<I>),
    ) -> Self {
        let mut b = ResourceBuilder {
            resource: MemResource {
                attributes: attrs_of(attributes),
                scopes: Vec::new(),
            },
        };
        f(&mut b);
        self.data.borrow_mut().resources.push(b.resource);
        self
    }

    /// The data, for assertions.
    pub fn data(&self) -> Ref<'_, MemData<I>> {
        self.data.borrow()
    }

    /// Takes the data out.
    pub fn into_data(self) -> MemData<I> {
        self.data.into_inner()
    }
}

/// A span named `name` with a fixed trace id (see [`MemSpan::trace_id`]).
pub fn span(name: &str) -> MemSpan {
    MemSpan {
        info: SpanInfo {
            name: name.to_owned(),
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            ..SpanInfo::default()
        },
        ..MemSpan::default()
    }
}

impl MemSpan {
    /// Adds an attribute.
    pub fn attr(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.attributes.push((key.to_owned(), value.into()));
        self
    }
    /// Sets the trace id.
    pub fn trace_id(mut self, id: [u8; 16]) -> Self {
        self.info.trace_id = id.to_vec();
        self
    }
    /// Sets the tracestate.
    pub fn trace_state(mut self, ts: &str) -> Self {
        self.info.trace_state = ts.to_owned();
        self
    }
    /// Sets the kind (OTLP number).
    pub fn kind(mut self, kind: i32) -> Self {
        self.info.kind = kind;
        self
    }
    /// Adds an event with attributes.
    pub fn event(mut self, attributes: &[(&str, Value)]) -> Self {
        self.events.push(attrs_of(attributes));
        self
    }
}

/// A data point of metric `name`.
pub fn point(name: &str) -> MemPoint {
    MemPoint {
        info: PointInfo {
            metric_name: name.to_owned(),
            kind: MetricKind::Gauge,
            ..PointInfo::default()
        },
        attributes: Vec::new(),
    }
}

impl MemPoint {
    /// Adds an attribute.
    pub fn attr(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.attributes.push((key.to_owned(), value.into()));
        self
    }
}

/// A log record with `body`.
pub fn log(body: impl Into<Value>) -> MemLog {
    MemLog {
        info: LogInfo {
            body: body.into(),
            ..LogInfo::default()
        },
        attributes: Vec::new(),
    }
}

impl MemLog {
    /// Adds an attribute.
    pub fn attr(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.attributes.push((key.to_owned(), value.into()));
        self
    }
    /// Sets the trace id.
    pub fn trace_id(mut self, id: [u8; 16]) -> Self {
        self.info.trace_id = id.to_vec();
        self
    }
    /// Sets the severity text.
    pub fn severity(mut self, text: &str, number: i32) -> Self {
        self.info.severity_text = text.to_owned();
        self.info.severity_number = number;
        self
    }
}

/// Applies `mode` to `attrs` like the host does.
pub fn set_in(attrs: &mut Attrs, key: &str, value: &Value, mode: SetMode) -> bool {
    match attrs.iter_mut().find(|(k, _)| k == key) {
        Some((_, v)) => {
            if mode == SetMode::Insert {
                return false;
            }
            *v = value.clone();
            true
        }
        None => {
            if mode == SetMode::Update {
                return false;
            }
            attrs.push((key.to_owned(), value.clone()));
            true
        }
    }
}

impl<I: MemItem> MemBatch<I> {
    /// Records the first out-of-range call, where the host traps the plugin.
    fn trapped<T: Default>(&self, call: &str) -> T {
        self.trap
            .borrow_mut()
            .get_or_insert_with(|| format!("{call}: index out of range"));
        T::default()
    }

    /// Runs `f` on the attribute set at `at`; a trap (and `None`) when it does not exist.
    fn with_attrs<T>(&self, at: Target, f: impl FnOnce(&mut Attrs) -> T) -> Option<T> {
        let out = self.attrs_at(at, f);
        if out.is_none() {
            self.trapped::<()>("attribute target");
        }
        out
    }

    fn attrs_at<T>(&self, at: Target, f: impl FnOnce(&mut Attrs) -> T) -> Option<T> {
        let mut d = self.data.borrow_mut();
        let attrs = match at {
            Target::Resource(r) => &mut d.resources.get_mut(r as usize)?.attributes,
            Target::Scope(s) => {
                &mut d
                    .resources
                    .get_mut(s.resource as usize)?
                    .scopes
                    .get_mut(s.scope as usize)?
                    .attributes
            }
            Target::Item(i) => d
                .resources
                .get_mut(i.resource as usize)?
                .scopes
                .get_mut(i.scope as usize)?
                .items
                .get_mut(i.item as usize)?
                .attrs(),
            Target::Event(e) => d
                .resources
                .get_mut(e.span.resource as usize)?
                .scopes
                .get_mut(e.span.scope as usize)?
                .items
                .get_mut(e.span.item as usize)?
                .event_attrs(e.event)?,
        };
        Some(f(attrs))
    }

    fn each_set<T>(&self, level: Level, mut f: impl FnMut(&mut Attrs) -> T) -> Vec<T> {
        let mut d = self.data.borrow_mut();
        let mut out = Vec::new();
        for r in d.resources.iter_mut() {
            if level == Level::Resource {
                out.push(f(&mut r.attributes));
                continue;
            }
            for s in r.scopes.iter_mut() {
                if level == Level::Scope {
                    out.push(f(&mut s.attributes));
                    continue;
                }
                for i in s.items.iter_mut() {
                    out.push(f(i.attrs()));
                }
            }
        }
        out
    }

    fn item<T: Default>(&self, at: ItemRef, f: impl FnOnce(&mut I) -> T) -> T {
        let mut d = self.data.borrow_mut();
        let item = d
            .resources
            .get_mut(at.resource as usize)
            .and_then(|r| r.scopes.get_mut(at.scope as usize))
            .and_then(|s| s.items.get_mut(at.item as usize));
        match item {
            Some(item) => f(item),
            None => self.trapped("item"),
        }
    }

    fn scope<T: Default>(&self, r: u32, s: u32, f: impl FnOnce(&MemScope<I>) -> T) -> T {
        let d = self.data.borrow();
        match d
            .resources
            .get(r as usize)
            .and_then(|r| r.scopes.get(s as usize))
        {
            Some(scope) => f(scope),
            None => self.trapped("scope"),
        }
    }

    fn all_items<T>(&self, mut f: impl FnMut(&I) -> T) -> Vec<T> {
        let d = self.data.borrow();
        d.resources
            .iter()
            .flat_map(|r| r.scopes.iter())
            .flat_map(|s| s.items.iter())
            .map(&mut f)
            .collect()
    }
}

impl<I: MemItem> BatchOps for MemBatch<I> {
    fn resource_count(&self) -> u32 {
        self.data.borrow().resources.len() as u32
    }
    fn scope_count(&self, r: u32) -> u32 {
        let n = self
            .data
            .borrow()
            .resources
            .get(r as usize)
            .map(|r| r.scopes.len() as u32);
        n.unwrap_or_else(|| self.trapped("scope_count"))
    }
    fn item_count(&self, r: u32, s: u32) -> u32 {
        self.scope(r, s, |s| s.items.len() as u32)
    }
    fn total_items(&self) -> u32 {
        self.data
            .borrow()
            .resources
            .iter()
            .flat_map(|r| r.scopes.iter())
            .map(|s| s.items.len() as u32)
            .sum()
    }
    fn scope_info(&self, at: ScopeRef) -> ScopeInfo {
        self.scope(at.resource, at.scope, |s| s.info.clone())
    }
    fn attribute(&self, at: Target, key: &str) -> Option<Value> {
        self.with_attrs(at, |a| {
            a.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
        })
        .flatten()
    }
    fn attributes(&self, at: Target) -> Vec<(String, Value)> {
        self.with_attrs(at, |a| a.clone()).unwrap_or_default()
    }
    fn set_attribute(&self, at: Target, key: &str, value: &Value, mode: SetMode) -> bool {
        self.with_attrs(at, |a| set_in(a, key, value, mode))
            .unwrap_or(false)
    }
    fn remove_attribute(&self, at: Target, key: &str) -> bool {
        self.with_attrs(at, |a| {
            let before = a.len();
            a.retain(|(k, _)| k != key);
            a.len() != before
        })
        .unwrap_or(false)
    }
    fn replace_attributes(&self, at: Target, attributes: &[(String, Value)]) {
        let _ = self.with_attrs(at, |a| *a = attributes.to_vec());
    }
    fn set_attribute_all(&self, level: Level, key: &str, value: &Value, mode: SetMode) -> u32 {
        self.each_set(level, |a| set_in(a, key, value, mode))
            .into_iter()
            .filter(|c| *c)
            .count() as u32
    }
    fn attribute_all(&self, level: Level, key: &str) -> Vec<Option<Value>> {
        self.each_set(level, |a| {
            a.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
        })
    }
    fn retain(&self, keep: &[bool]) -> u32 {
        let mut d = self.data.borrow_mut();
        let mut n = 0usize;
        let mut kept = 0u32;
        for r in d.resources.iter_mut() {
            for s in r.scopes.iter_mut() {
                s.items.retain(|_| {
                    let k = keep.get(n).copied().unwrap_or(true);
                    n += 1;
                    kept += u32::from(k);
                    k
                });
            }
            r.scopes.retain(|s| !s.items.is_empty());
        }
        d.resources.retain(|r| !r.scopes.is_empty());
        kept
    }
    fn to_otlp(&self) -> Vec<u8> {
        Vec::new()
    }
    fn replace_from_otlp(&self, _otlp: &[u8]) -> Result<(), String> {
        Err("replace_from_otlp is not available in the in-memory test harness".into())
    }
    fn remove_attribute_all(&self, level: Level, key: &str) -> u32 {
        self.each_set(level, |a| {
            let before = a.len();
            a.retain(|(k, _)| k != key);
            a.len() != before
        })
        .into_iter()
        .filter(|c| *c)
        .count() as u32
    }
    fn context(&self, key: &str) -> Vec<String> {
        self.context
            .borrow()
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(key))
            .flat_map(|(_, v)| v.iter().cloned())
            .collect()
    }
}

impl<I> MemBatch<I> {
    /// Why the last `run_*` over this batch trapped (the first out-of-range call), if it did.
    pub fn trap(&self) -> Option<String> {
        self.trap.borrow().clone()
    }

    /// Adds request context `key` with `values`, as a request header or the authenticator
    /// would give it.
    pub fn with_context(self, key: &str, values: &[&str]) -> Self {
        self.context.borrow_mut().push((
            key.to_owned(),
            values.iter().map(|v| (*v).to_owned()).collect(),
        ));
        self
    }
}

fn id16(id: &[u8]) -> [u8; 16] {
    let mut out = [0u8; 16];
    if id.len() == 16 {
        out.copy_from_slice(id);
    }
    out
}

impl TraceOps for MemTraces {
    fn span(&self, at: ItemRef) -> SpanInfo {
        self.item(at, |s| {
            let mut info = s.info.clone();
            info.event_count = s.events.len() as u32;
            info
        })
    }
    fn trace_ids(&self) -> Vec<u8> {
        self.all_items(|s| id16(&s.info.trace_id)).concat()
    }
    fn trace_states(&self) -> Vec<String> {
        self.all_items(|s| s.info.trace_state.clone())
    }
    fn set_trace_state(&self, at: ItemRef, trace_state: &str) {
        self.item(at, |s| s.info.trace_state = trace_state.to_owned())
    }
    fn set_span_name(&self, at: ItemRef, name: &str) {
        self.item(at, |s| s.info.name = name.to_owned())
    }
}

impl MetricOps for MemMetrics {
    fn point(&self, at: ItemRef) -> PointInfo {
        self.item(at, |p| p.info.clone())
    }
}

impl LogOps for MemLogs {
    fn log_record(&self, at: ItemRef) -> LogInfo {
        self.item(at, |l| l.info.clone())
    }
    fn trace_ids(&self) -> Vec<u8> {
        self.all_items(|l| id16(&l.info.trace_id)).concat()
    }
}

/// Builds processor `P` from a JSON config exactly as the host's `configure` does, for the
/// first signal in `P::SIGNALS`.
pub fn build<P: Processor>(config_json: &str) -> Result<P, ConfigErrors> {
    let signal = P::SIGNALS.first().copied().unwrap_or(Signal::Traces);
    configure::<P>(config_json, signal)
}

/// Builds processor `P` for a pipeline of `signal`.
pub fn build_for<P: Processor>(config_json: &str, signal: Signal) -> Result<P, ConfigErrors> {
    configure::<P>(config_json, signal)
}

/// Runs `process` over `batch`; a call that trapped makes the run fail like the host's call
/// does: `Permanent("trap: ...")`, whatever the plugin returned.
fn guarded<I>(
    batch: &MemBatch<I>,
    process: impl FnOnce(&MemBatch<I>) -> Result<Outcome, ProcessError>,
) -> Result<Outcome, ProcessError> {
    batch.trap.borrow_mut().take();
    let out = process(batch);
    match batch.trap() {
        Some(why) => Err(ProcessError::Permanent(format!("trap: {why}"))),
        None => out,
    }
}

/// Runs `p` over an in-memory span batch.
pub fn run_traces<P: Processor>(p: &mut P, batch: &MemTraces) -> Result<Outcome, ProcessError> {
    guarded(batch, |b| p.process_traces(Traces::new(b)))
}

/// Runs `p` over an in-memory metric batch.
pub fn run_metrics<P: Processor>(p: &mut P, batch: &MemMetrics) -> Result<Outcome, ProcessError> {
    guarded(batch, |b| p.process_metrics(Metrics::new(b)))
}

/// Runs `p` over an in-memory log batch.
pub fn run_logs<P: Processor>(p: &mut P, batch: &MemLogs) -> Result<Outcome, ProcessError> {
    guarded(batch, |b| p.process_logs(Logs::new(b)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::{EventRef, ItemRef, ScopeRef};

    /// Reads through raw indices, as a plugin holding stale references would.
    struct Stale(u32);

    impl Processor for Stale {
        type Config = Option<()>;
        fn new(_: Option<()>, _: Signal) -> Result<Self, ConfigErrors> {
            Ok(Stale(7))
        }
        fn process_traces(&mut self, traces: Traces<'_>) -> Result<Outcome, ProcessError> {
            let ops = traces.ops();
            let at = ItemRef {
                resource: 0,
                scope: 0,
                item: self.0,
            };
            ops.set_attribute(Target::Item(at), "k", &Value::from("v"), SetMode::Upsert);
            Ok(Outcome::Forward)
        }
    }

    fn one_span() -> MemTraces {
        MemTraces::new().resource(&[], |r| {
            r.scope("lib", |s| {
                s.item(span("a"));
            });
        })
    }

    #[test]
    fn an_out_of_range_index_traps_the_run() {
        let batch = one_span();
        let mut p = Stale(7);
        let e = run_traces(&mut p, &batch).unwrap_err();
        assert_eq!(
            e,
            ProcessError::Permanent("trap: attribute target: index out of range".into())
        );
        assert!(
            batch.data().resources[0].scopes[0].items[0]
                .attributes
                .is_empty()
        );
        // A run in range afterwards starts clean.
        p.0 = 0;
        assert_eq!(run_traces(&mut p, &batch), Ok(Outcome::Forward));
        assert_eq!(batch.trap(), None);
    }

    #[test]
    fn counts_and_fields_out_of_range_trap_and_never_panic() {
        let batch = one_span();
        let bad = ItemRef {
            resource: 0,
            scope: 3,
            item: 0,
        };
        assert_eq!(batch.scope_count(9), 0);
        assert_eq!(
            batch.trap().as_deref(),
            Some("scope_count: index out of range")
        );
        assert_eq!(batch.item_count(0, 9), 0);
        assert_eq!(
            batch.scope_info(ScopeRef {
                resource: 5,
                scope: 0
            }),
            ScopeInfo::default()
        );
        assert_eq!(batch.span(bad), SpanInfo::default());
        batch.set_span_name(bad, "x");
        let event = EventRef {
            span: ItemRef {
                resource: 0,
                scope: 0,
                item: 0,
            },
            event: 2,
        };
        assert_eq!(batch.attribute(Target::Event(event), "k"), None);
        assert!(!batch.remove_attribute(Target::Event(event), "k"));
        // The first trap is the one reported.
        assert_eq!(
            batch.trap().as_deref(),
            Some("scope_count: index out of range")
        );
        assert_eq!(batch.data().resources[0].scopes[0].items[0].info.name, "a");
    }
}
