//! The raw batch interface, one method per host call.
//!
//! In a plugin these traits are implemented by the host's handles (each call crosses into the
//! host); in unit tests by the in-memory batches of [`crate::testing`]. Plugin code normally
//! uses the friendlier views in [`crate::view`], which are built on these traits.

use crate::Value;

/// A scope inside a resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ScopeRef {
    /// Resource index.
    pub resource: u32,
    /// Scope index within the resource.
    pub scope: u32,
}

/// One item: a span, data point or log record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ItemRef {
    /// Resource index.
    pub resource: u32,
    /// Scope index within the resource.
    pub scope: u32,
    /// Item index within the scope.
    pub item: u32,
}

/// One span event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EventRef {
    /// The span.
    pub span: ItemRef,
    /// Event index within the span.
    pub event: u32,
}

/// The attribute set a call reads or writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// A resource's attributes.
    Resource(u32),
    /// A scope's attributes.
    Scope(ScopeRef),
    /// An item's attributes.
    Item(ItemRef),
    /// A span event's attributes.
    Event(EventRef),
}

/// Every attribute set of one kind, for bulk calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Level {
    /// Every resource.
    Resource,
    /// Every scope.
    Scope,
    /// Every item.
    Item,
}

/// How a set treats an existing or missing key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SetMode {
    /// Only when absent.
    Insert,
    /// Only when present.
    Update,
    /// Always.
    Upsert,
}

/// The three signals.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Signal {
    /// Spans.
    Traces,
    /// Metric data points.
    Metrics,
    /// Log records.
    Logs,
}

/// Name and version of an instrumentation scope.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScopeInfo {
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
}

/// A span's fields other than attributes, events and links.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SpanInfo {
    /// 16 bytes or empty.
    pub trace_id: Vec<u8>,
    /// 8 bytes or empty.
    pub span_id: Vec<u8>,
    /// 8 bytes or empty.
    pub parent_span_id: Vec<u8>,
    /// W3C tracestate.
    pub trace_state: String,
    /// Name.
    pub name: String,
    /// OTLP span kind number.
    pub kind: i32,
    /// Start, Unix ns.
    pub start_time_unix_nano: u64,
    /// End, Unix ns.
    pub end_time_unix_nano: u64,
    /// OTLP status code.
    pub status_code: i32,
    /// Status message.
    pub status_message: String,
    /// Flags.
    pub flags: u32,
    /// Number of events.
    pub event_count: u32,
    /// Number of links.
    pub link_count: u32,
}

/// OTLP metric types.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MetricKind {
    /// Gauge.
    #[default]
    Gauge,
    /// Sum.
    Sum,
    /// Histogram.
    Histogram,
    /// Exponential histogram.
    ExponentialHistogram,
    /// Summary.
    Summary,
}

/// A data point's metric and timestamps.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PointInfo {
    /// Metric name.
    pub metric_name: String,
    /// Metric unit.
    pub metric_unit: String,
    /// Metric type.
    pub kind: MetricKind,
    /// Start, Unix ns.
    pub start_time_unix_nano: u64,
    /// Time, Unix ns.
    pub time_unix_nano: u64,
}

/// A log record's fields other than attributes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LogInfo {
    /// Time, Unix ns.
    pub time_unix_nano: u64,
    /// Observed time, Unix ns.
    pub observed_time_unix_nano: u64,
    /// OTLP severity number.
    pub severity_number: i32,
    /// Severity text.
    pub severity_text: String,
    /// Body.
    pub body: Value,
    /// 16 bytes or empty.
    pub trace_id: Vec<u8>,
    /// 8 bytes or empty.
    pub span_id: Vec<u8>,
    /// Flags.
    pub flags: u32,
    /// Event name.
    pub event_name: String,
}

/// Methods every batch handle has. See the WIT (`wit/plugin.wit`, `wit/v0.2.0/plugin.wit`)
/// for the exact semantics.
pub trait BatchOps {
    /// Number of resources.
    fn resource_count(&self) -> u32;
    /// Number of scopes in resource `r`.
    fn scope_count(&self, r: u32) -> u32;
    /// Number of items in scope `s` of resource `r`.
    fn item_count(&self, r: u32, s: u32) -> u32;
    /// Number of items in the batch.
    fn total_items(&self) -> u32;
    /// A scope's name and version.
    fn scope_info(&self, at: ScopeRef) -> ScopeInfo;
    /// One attribute.
    fn attribute(&self, at: Target, key: &str) -> Option<Value>;
    /// All attributes of a set, in order.
    fn attributes(&self, at: Target) -> Vec<(String, Value)>;
    /// Sets one attribute by `mode`; whether the set changed.
    fn set_attribute(&self, at: Target, key: &str, value: &Value, mode: SetMode) -> bool;
    /// Removes one attribute; whether it was there.
    fn remove_attribute(&self, at: Target, key: &str) -> bool;
    /// Replaces a whole attribute set.
    fn replace_attributes(&self, at: Target, attributes: &[(String, Value)]);
    /// Sets one attribute on every set of `level`; how many changed.
    fn set_attribute_all(&self, level: Level, key: &str, value: &Value, mode: SetMode) -> u32;
    /// One attribute of every set of `level`, in batch order.
    fn attribute_all(&self, level: Level, key: &str) -> Vec<Option<Value>>;
    /// Keeps the items whose mask entry is true; returns how many remain.
    fn retain(&self, keep: &[bool]) -> u32;
    /// The batch as OTLP protobuf.
    fn to_otlp(&self) -> Vec<u8>;
    /// Replaces the batch with OTLP protobuf.
    fn replace_from_otlp(&self, otlp: &[u8]) -> Result<(), String>;
    /// Removes `key` from every set of `level`; how many sets had it (contract 0.2.0).
    fn remove_attribute_all(&self, level: Level, key: &str) -> u32;
    /// The values of request context `key` the batch arrived with: a request header (lower
    /// case, e.g. `x-tenant`) or `auth.<attribute>`; empty when absent (contract 0.2.0).
    fn context(&self, key: &str) -> Vec<String>;
}

/// A batch of spans.
pub trait TraceOps: BatchOps {
    /// A span's fields.
    fn span(&self, at: ItemRef) -> SpanInfo;
    /// Every span's trace id in batch order, 16 bytes each.
    fn trace_ids(&self) -> Vec<u8>;
    /// Every span's tracestate in batch order.
    fn trace_states(&self) -> Vec<String>;
    /// Replaces a span's tracestate.
    fn set_trace_state(&self, at: ItemRef, trace_state: &str);
    /// Renames a span.
    fn set_span_name(&self, at: ItemRef, name: &str);
}

/// A batch of metric data points.
pub trait MetricOps: BatchOps {
    /// A point's metric and timestamps.
    fn point(&self, at: ItemRef) -> PointInfo;
}

/// A batch of log records.
pub trait LogOps: BatchOps {
    /// A record's fields.
    fn log_record(&self, at: ItemRef) -> LogInfo;
    /// Every record's trace id in batch order, 16 bytes each.
    fn trace_ids(&self) -> Vec<u8>;
}
