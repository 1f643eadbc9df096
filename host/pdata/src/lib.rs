//! Telemetry batches as the host moves them: encoded OTLP bytes until something needs to look
//! inside, decoded on demand, cheap to clone and copied only when a shared batch is mutated.
//!
//! A receiver builds a batch from the request bytes after a validating walk that also counts
//! the items ([`TracesBatch::from_encoded`]); an exporter asks for [`TracesBatch::encoded`] and,
//! when nothing changed the batch, gets those same bytes back without an encode. A processor that
//! edits data calls [`TracesBatch::message_mut`], which decodes once and drops the stale bytes.

#![forbid(unsafe_code)]

mod context;
mod json;
pub mod lazy;
mod split;
mod transcode;
mod wire;

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use prost::Message;

pub use context::RequestContext;
pub use json::{JsonError, JsonFault, from_json, to_json};
pub use opentelemetry_proto::tonic as proto;
pub use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
pub use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
pub use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

/// The three signals a pipeline can carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Signal {
    /// Spans.
    Traces,
    /// Metric data points.
    Metrics,
    /// Log records.
    Logs,
}

impl Signal {
    /// All signals, in the order upstream lists them.
    pub const ALL: [Signal; 3] = [Signal::Traces, Signal::Metrics, Signal::Logs];

    /// The name used in pipeline ids and the `data_type` metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Traces => "traces",
            Signal::Metrics => "metrics",
            Signal::Logs => "logs",
        }
    }

    /// The item noun used in metric names (`otelcol_exporter_sent_spans`).
    pub fn item_name(self) -> &'static str {
        match self {
            Signal::Traces => "spans",
            Signal::Metrics => "metric_points",
            Signal::Logs => "log_records",
        }
    }

    /// Parses `traces`, `metrics` or `logs`.
    pub fn parse(s: &str) -> Option<Signal> {
        match s {
            "traces" => Some(Signal::Traces),
            "metrics" => Some(Signal::Metrics),
            "logs" => Some(Signal::Logs),
            _ => None,
        }
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which of the two OTLP ids a length problem is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    /// A 16-byte trace id.
    Trace,
    /// An 8-byte span id.
    Span,
}

/// Bytes that are not a valid OTLP message of the expected type, or a batch operation that
/// cannot be done. The walk that validates received bytes reports where it stopped: `offset`
/// is the byte position in the request of the element that failed and `field` the protobuf
/// field number being read. The text after the prefix is the one prost gives for the same
/// fault, so a client sees the same message whichever path refused its request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The buffer ends inside a key, a length, a value or a length-delimited body.
    #[error("failed to decode OTLP protobuf: buffer underflow")]
    Truncated {
        /// Where the element that did not fit starts.
        offset: usize,
    },
    /// A varint longer than ten bytes or overflowing 64 bits.
    #[error("failed to decode OTLP protobuf: invalid varint")]
    Varint {
        /// Where the varint starts.
        offset: usize,
    },
    /// A field key with number 0 or beyond the protobuf range.
    #[error("failed to decode OTLP protobuf: invalid field number")]
    FieldNumber {
        /// Where the key starts.
        offset: usize,
    },
    /// A length that does not fit in memory on this platform.
    #[error("failed to decode OTLP protobuf: length overflow")]
    LengthOverflow {
        /// Where the length starts.
        offset: usize,
    },
    /// A wire type the field's declared type does not allow (`field` is `None` for a field
    /// the schema does not know, where only the group and reserved wire types are wrong).
    #[error("failed to decode OTLP protobuf: invalid wire type {wire}{}", match field { Some(f) => format!(" for field {f}"), None => String::new() })]
    WireType {
        /// The field number, when the schema knows the field.
        field: Option<u32>,
        /// The wire type found.
        wire: u8,
        /// Where the field's key starts.
        offset: usize,
    },
    /// A string field whose bytes are not UTF-8.
    #[error("failed to decode OTLP protobuf: invalid string value: data is not UTF-8 encoded")]
    Utf8 {
        /// The string field's number.
        field: u32,
        /// Where the field's key starts.
        offset: usize,
    },
    /// A packed repeated fixed64 field whose length is not a multiple of 8.
    #[error("failed to decode OTLP protobuf: packed fixed64 length not a multiple of 8")]
    PackedLength {
        /// The packed field's number.
        field: u32,
        /// Where the field's key starts.
        offset: usize,
    },
    /// A trace or span id that is neither empty nor of its fixed length (16 and 8 bytes);
    /// the text is upstream pdata's.
    #[error("failed to decode OTLP protobuf: unmarshal: invalid {} length", match id { IdKind::Trace => "TraceID", IdKind::Span => "SpanID" })]
    IdLength {
        /// Which id.
        id: IdKind,
        /// The length found.
        len: usize,
        /// Where the field's key starts (0 for a request that arrived as JSON).
        offset: usize,
    },
    /// Messages nested deeper than prost's recursion limit.
    #[error("failed to decode OTLP protobuf: recursion limit reached")]
    TooDeep {
        /// Where the message that went past the limit starts.
        offset: usize,
    },
    /// prost refused the bytes in a full decode.
    #[error("failed to decode OTLP protobuf: {0}")]
    Protobuf(#[from] prost::DecodeError),
    /// A batch that should hold a decoded request does not (an internal invariant broken).
    #[error("batch is not decoded")]
    NotDecoded,
    /// Two batches of different signals cannot be merged.
    #[error("cannot merge a {other} batch into a {into} batch")]
    SignalMismatch {
        /// The signal of the batch appended to.
        into: Signal,
        /// The signal of the batch appended.
        other: Signal,
    },
}

/// What one signal's OTLP export request needs to provide to be carried in a batch.
pub trait OtlpRequest: Message + Default + Clone + PartialEq + Send + Sync + 'static {
    /// The signal this request carries.
    const SIGNAL: Signal;
    /// Counts spans, data points or log records in a decoded request.
    fn count_items(&self) -> usize;
    /// Validates encoded bytes without decoding and counts their items.
    fn scan(buf: &[u8]) -> Result<usize, DecodeError>;
    /// Moves all resources of `other` to the end of `self`.
    fn append(&mut self, other: &mut Self);
    /// Splits off a request of at most `max` items from the front; returns `None` when the
    /// request already holds no more than `max` items.
    fn split_front(&mut self, max: usize) -> Option<Self>;
}

impl OtlpRequest for ExportTraceServiceRequest {
    const SIGNAL: Signal = Signal::Traces;
    fn count_items(&self) -> usize {
        self.resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum()
    }
    fn scan(buf: &[u8]) -> Result<usize, DecodeError> {
        wire::validate_and_count(buf, &wire::TRACES_REQUEST)
    }
    fn append(&mut self, other: &mut Self) {
        self.resource_spans.append(&mut other.resource_spans);
    }
    fn split_front(&mut self, max: usize) -> Option<Self> {
        split_front(
            &mut self.resource_spans,
            max,
            |r| &mut r.scope_spans,
            |s| &mut s.spans,
        )
        .map(|resource_spans| ExportTraceServiceRequest { resource_spans })
    }
}

impl OtlpRequest for ExportLogsServiceRequest {
    const SIGNAL: Signal = Signal::Logs;
    fn count_items(&self) -> usize {
        self.resource_logs
            .iter()
            .flat_map(|r| &r.scope_logs)
            .map(|s| s.log_records.len())
            .sum()
    }
    fn scan(buf: &[u8]) -> Result<usize, DecodeError> {
        wire::validate_and_count(buf, &wire::LOGS_REQUEST)
    }
    fn append(&mut self, other: &mut Self) {
        self.resource_logs.append(&mut other.resource_logs);
    }
    fn split_front(&mut self, max: usize) -> Option<Self> {
        split_front(
            &mut self.resource_logs,
            max,
            |r| &mut r.scope_logs,
            |s| &mut s.log_records,
        )
        .map(|resource_logs| ExportLogsServiceRequest { resource_logs })
    }
}

/// Number of data points in one metric, whatever its type.
pub fn metric_points(m: &proto::metrics::v1::Metric) -> usize {
    use proto::metrics::v1::metric::Data;
    match &m.data {
        Some(Data::Gauge(g)) => g.data_points.len(),
        Some(Data::Sum(s)) => s.data_points.len(),
        Some(Data::Histogram(h)) => h.data_points.len(),
        Some(Data::ExponentialHistogram(h)) => h.data_points.len(),
        Some(Data::Summary(s)) => s.data_points.len(),
        None => 0,
    }
}

impl OtlpRequest for ExportMetricsServiceRequest {
    const SIGNAL: Signal = Signal::Metrics;
    fn count_items(&self) -> usize {
        self.resource_metrics
            .iter()
            .flat_map(|r| &r.scope_metrics)
            .flat_map(|s| &s.metrics)
            .map(metric_points)
            .sum()
    }
    fn scan(buf: &[u8]) -> Result<usize, DecodeError> {
        wire::validate_and_count(buf, &wire::METRICS_REQUEST)
    }
    fn append(&mut self, other: &mut Self) {
        self.resource_metrics.append(&mut other.resource_metrics);
    }
    fn split_front(&mut self, max: usize) -> Option<Self> {
        // Metrics split at metric granularity: a metric's points stay together so that
        // a split never produces two metrics with the same identity in one request.
        if self.count_items() <= max {
            return None;
        }
        let mut out = Vec::new();
        let mut taken = 0usize;
        while taken < max.max(1) && !self.resource_metrics.is_empty() {
            let rm = &mut self.resource_metrics[0];
            let mut scopes = Vec::new();
            while taken < max.max(1) && !rm.scope_metrics.is_empty() {
                let sm = &mut rm.scope_metrics[0];
                let mut n = 0;
                let mut metrics_taken = 0;
                for m in &sm.metrics {
                    let p = metric_points(m);
                    if metrics_taken > 0 && taken + n + p > max {
                        break;
                    }
                    n += p;
                    metrics_taken += 1;
                }
                let metrics: Vec<_> = sm.metrics.drain(..metrics_taken).collect();
                taken += n;
                scopes.push(proto::metrics::v1::ScopeMetrics {
                    scope: sm.scope.clone(),
                    metrics,
                    schema_url: sm.schema_url.clone(),
                });
                if sm.metrics.is_empty() {
                    rm.scope_metrics.remove(0);
                }
            }
            out.push(proto::metrics::v1::ResourceMetrics {
                resource: rm.resource.clone(),
                scope_metrics: scopes,
                schema_url: rm.schema_url.clone(),
            });
            if rm.scope_metrics.is_empty() {
                self.resource_metrics.remove(0);
            }
        }
        Some(ExportMetricsServiceRequest {
            resource_metrics: out,
        })
    }
}

/// Resource and scope envelopes that can be copied without their items.
trait Envelope {
    fn empty_like(&self) -> Self;
}

impl Envelope for proto::trace::v1::ResourceSpans {
    fn empty_like(&self) -> Self {
        Self {
            resource: self.resource.clone(),
            scope_spans: Vec::new(),
            schema_url: self.schema_url.clone(),
        }
    }
}
impl Envelope for proto::trace::v1::ScopeSpans {
    fn empty_like(&self) -> Self {
        Self {
            scope: self.scope.clone(),
            spans: Vec::new(),
            schema_url: self.schema_url.clone(),
        }
    }
}
impl Envelope for proto::logs::v1::ResourceLogs {
    fn empty_like(&self) -> Self {
        Self {
            resource: self.resource.clone(),
            scope_logs: Vec::new(),
            schema_url: self.schema_url.clone(),
        }
    }
}
impl Envelope for proto::logs::v1::ScopeLogs {
    fn empty_like(&self) -> Self {
        Self {
            scope: self.scope.clone(),
            log_records: Vec::new(),
            schema_url: self.schema_url.clone(),
        }
    }
}

/// Generic split of a resource → scope → item tree, taking `max` items from the front.
fn split_front<R: Envelope, S: Envelope, I>(
    resources: &mut Vec<R>,
    max: usize,
    scopes_of: impl Fn(&mut R) -> &mut Vec<S>,
    items_of: impl Fn(&mut S) -> &mut Vec<I>,
) -> Option<Vec<R>> {
    let total: usize = resources
        .iter_mut()
        .map(|r| {
            scopes_of(r)
                .iter_mut()
                .map(|s| items_of(s).len())
                .sum::<usize>()
        })
        .sum();
    if total <= max {
        return None;
    }
    let mut out = Vec::new();
    let mut left = max;
    while left > 0 && !resources.is_empty() {
        let r = &mut resources[0];
        let mut new_r = r.empty_like();
        let scopes = scopes_of(r);
        while left > 0 && !scopes.is_empty() {
            let s = &mut scopes[0];
            let mut new_s = s.empty_like();
            let items = items_of(s);
            let n = left.min(items.len());
            *items_of(&mut new_s) = items.drain(..n).collect();
            left -= n;
            if items.is_empty() {
                scopes.remove(0);
            }
            scopes_of(&mut new_r).push(new_s);
        }
        if scopes.is_empty() {
            resources.remove(0);
        }
        out.push(new_r);
    }
    Some(out)
}

#[derive(Clone)]
enum Repr<M> {
    /// Validated wire bytes and their item count.
    Encoded { bytes: Bytes, items: usize },
    /// A decoded message; its wire form is produced on demand.
    Decoded(M),
}

/// One OTLP export request of one signal, shared copy-on-write.
///
/// Cloning is an `Arc` bump; the first mutation through [`Payload::message_mut`] of a shared
/// batch copies it, so a fan-out hands the same batch to every consumer and pays for a copy
/// only where a consumer actually edits.
#[derive(Clone)]
pub struct Payload<M: OtlpRequest> {
    repr: Arc<Repr<M>>,
    /// The request context the items arrived with; kept by every edit, split and merge
    /// (callers merge only payloads of one context).
    context: RequestContext,
}

/// A batch of spans.
pub type TracesBatch = Payload<ExportTraceServiceRequest>;
/// A batch of metric data points.
pub type MetricsBatch = Payload<ExportMetricsServiceRequest>;
/// A batch of log records.
pub type LogsBatch = Payload<ExportLogsServiceRequest>;

impl<M: OtlpRequest> Payload<M> {
    /// Wraps wire bytes after checking they are a valid request; nothing is decoded.
    pub fn from_encoded(bytes: Bytes) -> Result<Self, DecodeError> {
        let items = M::scan(&bytes)?;
        Ok(Payload {
            repr: Arc::new(Repr::Encoded { bytes, items }),
            context: RequestContext::default(),
        })
    }

    /// Wraps bytes the caller knows to be a valid request with `items` items, without
    /// scanning them again (used by [`lazy`] when it re-encodes a validated batch).
    pub fn from_validated(bytes: Bytes, items: usize) -> Self {
        Payload {
            repr: Arc::new(Repr::Encoded { bytes, items }),
            context: RequestContext::default(),
        }
    }

    /// Wraps a decoded request.
    pub fn from_message(message: M) -> Self {
        Payload {
            repr: Arc::new(Repr::Decoded(message)),
            context: RequestContext::default(),
        }
    }

    /// The signal of this batch.
    pub fn signal(&self) -> Signal {
        M::SIGNAL
    }

    /// The request context the items arrived with.
    pub fn context(&self) -> &RequestContext {
        &self.context
    }

    /// The same batch carrying `context`.
    pub fn with_context(mut self, context: RequestContext) -> Self {
        self.context = context;
        self
    }

    /// Spans, data points or log records in the batch; cheap in both representations.
    pub fn item_count(&self) -> usize {
        match &*self.repr {
            Repr::Encoded { items, .. } => *items,
            Repr::Decoded(m) => m.count_items(),
        }
    }

    /// Whether the batch still holds the bytes it was received as.
    pub fn is_encoded(&self) -> bool {
        matches!(&*self.repr, Repr::Encoded { .. })
    }

    /// The protobuf encoding: the received bytes when nothing changed, else a fresh encode.
    pub fn encoded(&self) -> Bytes {
        match &*self.repr {
            Repr::Encoded { bytes, .. } => bytes.clone(),
            Repr::Decoded(m) => Bytes::from(m.encode_to_vec()),
        }
    }

    /// The batch in its wire form: encoded once now if a processor changed it, so that every
    /// later send (retries, a queue's merge) reuses the same bytes.
    pub fn into_encoded(self) -> Self {
        if self.is_encoded() {
            return self;
        }
        let items = self.item_count();
        Payload::from_validated(self.encoded(), items).with_context(self.context)
    }

    /// Size of the protobuf encoding in bytes.
    pub fn encoded_len(&self) -> usize {
        match &*self.repr {
            Repr::Encoded { bytes, .. } => bytes.len(),
            Repr::Decoded(m) => m.encoded_len(),
        }
    }

    /// A decoded copy of the request for reading.
    pub fn to_message(&self) -> Result<M, DecodeError> {
        match &*self.repr {
            Repr::Encoded { bytes, .. } => Ok(M::decode(bytes.clone())?),
            Repr::Decoded(m) => Ok(m.clone()),
        }
    }

    /// The decoded request for editing; decodes once, and copies first if the batch is shared.
    pub fn message_mut(&mut self) -> Result<&mut M, DecodeError> {
        if let Repr::Encoded { bytes, .. } = &*self.repr {
            let decoded = M::decode(bytes.clone())?;
            self.repr = Arc::new(Repr::Decoded(decoded));
        }
        let repr = Arc::make_mut(&mut self.repr);
        match repr {
            Repr::Decoded(m) => Ok(m),
            // Unreachable in practice: the branch above replaced any encoded form.
            Repr::Encoded { .. } => Err(DecodeError::NotDecoded),
        }
    }

    /// Takes the decoded request out of the batch.
    pub fn into_message(self) -> Result<M, DecodeError> {
        match Arc::try_unwrap(self.repr) {
            Ok(Repr::Decoded(m)) => Ok(m),
            Ok(Repr::Encoded { bytes, .. }) => Ok(M::decode(bytes)?),
            Err(shared) => match &*shared {
                Repr::Decoded(m) => Ok(m.clone()),
                Repr::Encoded { bytes, .. } => Ok(M::decode(bytes.clone())?),
            },
        }
    }

    /// Appends another batch's resources to this one (used by the batch processor).
    pub fn append(&mut self, other: Self) -> Result<(), DecodeError> {
        if other.item_count() == 0 {
            return Ok(());
        }
        if self.item_count() == 0 && self.encoded_len() == 0 {
            let context = std::mem::take(&mut self.context);
            *self = other;
            if !context.is_empty() {
                self.context = context;
            }
            return Ok(());
        }
        let mut theirs = other.into_message()?;
        self.message_mut()?.append(&mut theirs);
        Ok(())
    }

    /// Splits off at most `max` items from the front; `None` when the batch is small enough.
    ///
    /// A batch still in its wire form is split over its bytes (both halves stay encoded and
    /// nothing is decoded); a decoded one is split as a message.
    pub fn split_front(&mut self, max: usize) -> Result<Option<Self>, DecodeError> {
        let items = self.item_count();
        if items <= max {
            return Ok(None);
        }
        if let Repr::Encoded { bytes, .. } = &*self.repr {
            let weight = match M::SIGNAL {
                Signal::Metrics => split::Weight::MetricPoints,
                Signal::Traces | Signal::Logs => split::Weight::One,
            };
            if let Some(cut) = split::split_front(bytes, items, max, weight)? {
                let context = self.context.clone();
                *self = Payload::from_validated(cut.rest, items - cut.front_items)
                    .with_context(context.clone());
                return Ok(Some(
                    Payload::from_validated(cut.front, cut.front_items).with_context(context),
                ));
            }
            return Ok(None);
        }
        let context = self.context.clone();
        Ok(self
            .message_mut()?
            .split_front(max)
            .map(|m| Payload::from_message(m).with_context(context)))
    }
}

impl<M: OtlpRequest> Payload<M> {
    /// Routes each item (span, metric, log record) of a batch still in its wire form to one
    /// of `parts` parts by the value of the item's length-delimited field `field` (an empty
    /// slice when absent): `route` returns the part index (clamped to the last part). Each
    /// part keeps its items' resources and scopes and the batch's context; a part with no
    /// item is `None`. Nothing is decoded, items are copied as bytes. `None` when the batch
    /// is decoded (split the message instead).
    pub fn partition_by_field(
        &self,
        parts: usize,
        field: u64,
        mut route: impl FnMut(&[u8]) -> usize,
    ) -> Result<Option<Vec<Option<Self>>>, DecodeError> {
        let Repr::Encoded { bytes, .. } = &*self.repr else {
            return Ok(None);
        };
        let mut by_field = |item: &[u8]| split::bytes_field(item, field).map(&mut route);
        let split = split::partition(bytes, parts, &mut by_field)?;
        Ok(Some(
            split
                .into_iter()
                .map(|p| {
                    p.map(|(b, n)| Payload::from_validated(b, n).with_context(self.context.clone()))
                })
                .collect(),
        ))
    }
}

impl<M: OtlpRequest> Default for Payload<M> {
    fn default() -> Self {
        Payload::from_message(M::default())
    }
}

impl<M: OtlpRequest> fmt::Debug for Payload<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Payload")
            .field("signal", &M::SIGNAL)
            .field("items", &self.item_count())
            .field("encoded", &self.is_encoded())
            .field("context", &self.context)
            .finish()
    }
}

/// A batch of any signal: what travels through pipelines.
///
/// The graph builder guarantees that a pipeline only ever carries its own signal, so
/// components match on the variant they were built for.
#[derive(Clone, Debug)]
pub enum Batch {
    /// Spans.
    Traces(TracesBatch),
    /// Metric data points.
    Metrics(MetricsBatch),
    /// Log records.
    Logs(LogsBatch),
}

impl Batch {
    /// Wraps validated wire bytes of `signal`'s export request.
    pub fn from_encoded(signal: Signal, bytes: Bytes) -> Result<Batch, DecodeError> {
        Ok(match signal {
            Signal::Traces => Batch::Traces(TracesBatch::from_encoded(bytes)?),
            Signal::Metrics => Batch::Metrics(MetricsBatch::from_encoded(bytes)?),
            Signal::Logs => Batch::Logs(LogsBatch::from_encoded(bytes)?),
        })
    }

    /// Wraps bytes the caller knows to be a valid request of `signal` with `items` items,
    /// without scanning them again.
    pub fn from_validated(signal: Signal, bytes: Bytes, items: usize) -> Batch {
        match signal {
            Signal::Traces => Batch::Traces(TracesBatch::from_validated(bytes, items)),
            Signal::Metrics => Batch::Metrics(MetricsBatch::from_validated(bytes, items)),
            Signal::Logs => Batch::Logs(LogsBatch::from_validated(bytes, items)),
        }
    }

    /// Merges batches of `signal` by concatenating their wire bytes (callers merge batches of
    /// one request context only; the result carries the first one's): an export request is one
    /// repeated field, and protobuf defines concatenated messages as merged ones. Nothing is
    /// decoded or scanned again; a batch a processor changed is encoded once here.
    pub fn concat(signal: Signal, batches: &[Batch]) -> Batch {
        if let [one] = batches {
            return one.clone().into_encoded();
        }
        let parts: Vec<Bytes> = batches.iter().map(Batch::encoded).collect();
        let len = parts.iter().map(Bytes::len).sum();
        let mut buf = bytes::BytesMut::with_capacity(len);
        for p in &parts {
            buf.extend_from_slice(p);
        }
        let items = batches.iter().map(Batch::item_count).sum();
        let context = batches
            .first()
            .map(|b| b.context().clone())
            .unwrap_or_default();
        Batch::from_validated(signal, buf.freeze(), items).with_context(context)
    }

    /// The batch in its wire form (see [`Payload::into_encoded`]).
    pub fn into_encoded(self) -> Batch {
        match self {
            Batch::Traces(b) => Batch::Traces(b.into_encoded()),
            Batch::Metrics(b) => Batch::Metrics(b.into_encoded()),
            Batch::Logs(b) => Batch::Logs(b.into_encoded()),
        }
    }

    /// An empty batch of `signal`.
    pub fn empty(signal: Signal) -> Batch {
        match signal {
            Signal::Traces => Batch::Traces(TracesBatch::default()),
            Signal::Metrics => Batch::Metrics(MetricsBatch::default()),
            Signal::Logs => Batch::Logs(LogsBatch::default()),
        }
    }

    /// The request context the items arrived with (empty unless a receiver has
    /// `include_metadata`).
    pub fn context(&self) -> &RequestContext {
        match self {
            Batch::Traces(b) => b.context(),
            Batch::Metrics(b) => b.context(),
            Batch::Logs(b) => b.context(),
        }
    }

    /// The same batch carrying `context`.
    pub fn with_context(self, context: RequestContext) -> Batch {
        match self {
            Batch::Traces(b) => Batch::Traces(b.with_context(context)),
            Batch::Metrics(b) => Batch::Metrics(b.with_context(context)),
            Batch::Logs(b) => Batch::Logs(b.with_context(context)),
        }
    }

    /// The signal carried.
    pub fn signal(&self) -> Signal {
        match self {
            Batch::Traces(_) => Signal::Traces,
            Batch::Metrics(_) => Signal::Metrics,
            Batch::Logs(_) => Signal::Logs,
        }
    }

    /// Spans, data points or log records in the batch.
    pub fn item_count(&self) -> usize {
        match self {
            Batch::Traces(b) => b.item_count(),
            Batch::Metrics(b) => b.item_count(),
            Batch::Logs(b) => b.item_count(),
        }
    }

    /// The protobuf encoding of the export request.
    pub fn encoded(&self) -> Bytes {
        match self {
            Batch::Traces(b) => b.encoded(),
            Batch::Metrics(b) => b.encoded(),
            Batch::Logs(b) => b.encoded(),
        }
    }

    /// Size of the protobuf encoding.
    pub fn encoded_len(&self) -> usize {
        match self {
            Batch::Traces(b) => b.encoded_len(),
            Batch::Metrics(b) => b.encoded_len(),
            Batch::Logs(b) => b.encoded_len(),
        }
    }

    /// Whether the batch still holds its received bytes.
    pub fn is_encoded(&self) -> bool {
        match self {
            Batch::Traces(b) => b.is_encoded(),
            Batch::Metrics(b) => b.is_encoded(),
            Batch::Logs(b) => b.is_encoded(),
        }
    }

    /// Appends a batch of the same signal; a batch of another signal is an error.
    pub fn append(&mut self, other: Batch) -> Result<(), DecodeError> {
        match (self, other) {
            (Batch::Traces(a), Batch::Traces(b)) => a.append(b),
            (Batch::Metrics(a), Batch::Metrics(b)) => a.append(b),
            (Batch::Logs(a), Batch::Logs(b)) => a.append(b),
            (a, b) => Err(DecodeError::SignalMismatch {
                into: a.signal(),
                other: b.signal(),
            }),
        }
    }

    /// Splits off at most `max` items from the front.
    pub fn split_front(&mut self, max: usize) -> Result<Option<Batch>, DecodeError> {
        Ok(match self {
            Batch::Traces(b) => b.split_front(max)?.map(Batch::Traces),
            Batch::Metrics(b) => b.split_front(max)?.map(Batch::Metrics),
            Batch::Logs(b) => b.split_front(max)?.map(Batch::Logs),
        })
    }

    /// OTLP/JSON of the export request.
    pub fn to_json(&self) -> Result<String, JsonError> {
        match self {
            Batch::Traces(b) => to_json(&b.to_message()?),
            Batch::Metrics(b) => to_json(&b.to_message()?),
            Batch::Logs(b) => to_json(&b.to_message()?),
        }
    }

    /// Parses an OTLP/JSON export request of `signal`.
    ///
    /// The JSON is transcoded to protobuf and then validated like received protobuf, so the
    /// batch starts encoded and costs no more memory than protobuf of the same data.
    pub fn from_json(signal: Signal, json: &[u8]) -> Result<Batch, JsonError> {
        let bytes = json::to_protobuf(signal, json)?;
        Ok(Batch::from_encoded(signal, Bytes::from(bytes))?)
    }
}

#[cfg(test)]
mod tests;
