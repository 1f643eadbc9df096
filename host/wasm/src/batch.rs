//! The batch a plugin borrows for one call: a lazily decoded request, and what the host
//! needs to know about each signal's scope message to walk it.
//!
//! Reads never mark a batch modified; when a call changed nothing the processor forwards the
//! batch it received (same bytes, nothing re-encoded). The WIT-facing methods are in `host`.

use wasmcol_pdata::lazy::{LazyKind, LazyRequest, LogsKind, MetricsKind, TracesKind};
use wasmcol_pdata::proto::common::v1::{InstrumentationScope, KeyValue as PKv};
use wasmcol_pdata::proto::logs::v1::ScopeLogs;
use wasmcol_pdata::proto::metrics::v1::{Metric, ScopeMetrics, metric::Data};
use wasmcol_pdata::proto::trace::v1::ScopeSpans;
use wasmcol_pdata::{DecodeError, Payload, metric_points};

/// A batch lent to a plugin for one call.
pub struct HostBatch<K: ScopeAccess> {
    pub(crate) lazy: LazyRequest<K>,
    pub(crate) modified: bool,
    /// The request context the batch came with (see [`request_context`]).
    pub(crate) context: RequestContext,
}

pub use wasmcol_pdata::RequestContext;

/// The request context `batch` carries, for the plugins' `*-context` calls (WIT 0.2.0):
/// header names lower case (with the receiver's `include_metadata`), the authenticator's
/// attributes as `auth.<name>`.
pub fn request_context(batch: &wasmcol_pdata::Batch) -> RequestContext {
    batch.context().clone()
}

/// The trace handle's host type.
pub type TraceRes = HostBatch<TracesKind>;
/// The metric handle's host type.
pub type MetricRes = HostBatch<MetricsKind>;
/// The log handle's host type.
pub type LogRes = HostBatch<LogsKind>;

pub(crate) type R<T> = wasmtime::Result<T>;

pub(crate) fn oob(what: &str) -> wasmtime::Error {
    wasmtime::Error::msg(format!("plugin addressed a {what} that does not exist"))
}

pub(crate) fn decode_err(e: DecodeError) -> wasmtime::Error {
    wasmtime::Error::msg(e.to_string())
}

/// What the host needs to know about one signal's scope message.
pub trait ScopeAccess: LazyKind {
    /// Field numbers (item in scope, attributes in item) when items can take an inserted
    /// attribute without being decoded (see `splice`).
    const SPLICE: Option<(u64, u64)> = None;
    /// Scope name and version.
    fn info(s: &Self::Scope) -> (String, String);
    /// The scope's attributes (creating the scope message when absent).
    fn scope_attrs(s: &mut Self::Scope) -> &mut Vec<PKv>;
    /// Item `i`'s attributes.
    fn item_attrs(s: &mut Self::Scope, i: usize) -> Option<&mut Vec<PKv>>;
    /// Every item's attributes in order.
    fn each_item(s: &mut Self::Scope, f: &mut dyn FnMut(&mut Vec<PKv>));
    /// Keeps items for which `keep` says true (called once per item, in order).
    fn retain(s: &mut Self::Scope, keep: &mut dyn FnMut() -> bool);
    /// Event `e` of item `i` (spans only).
    fn event_attrs(_s: &mut Self::Scope, _i: usize, _e: usize) -> Option<&mut Vec<PKv>> {
        None
    }
}

fn scope_of(s: &mut Option<InstrumentationScope>) -> &mut Vec<PKv> {
    &mut s.get_or_insert_with(Default::default).attributes
}

fn scope_info(s: &Option<InstrumentationScope>) -> (String, String) {
    s.as_ref()
        .map(|s| (s.name.clone(), s.version.clone()))
        .unwrap_or_default()
}

impl ScopeAccess for TracesKind {
    // ScopeSpans.spans = 2, Span.attributes = 9.
    const SPLICE: Option<(u64, u64)> = Some((2, 9));
    fn info(s: &ScopeSpans) -> (String, String) {
        scope_info(&s.scope)
    }
    fn scope_attrs(s: &mut ScopeSpans) -> &mut Vec<PKv> {
        scope_of(&mut s.scope)
    }
    fn item_attrs(s: &mut ScopeSpans, i: usize) -> Option<&mut Vec<PKv>> {
        s.spans.get_mut(i).map(|s| &mut s.attributes)
    }
    fn each_item(s: &mut ScopeSpans, f: &mut dyn FnMut(&mut Vec<PKv>)) {
        s.spans.iter_mut().for_each(|s| f(&mut s.attributes))
    }
    fn retain(s: &mut ScopeSpans, keep: &mut dyn FnMut() -> bool) {
        s.spans.retain(|_| keep())
    }
    fn event_attrs(s: &mut ScopeSpans, i: usize, e: usize) -> Option<&mut Vec<PKv>> {
        s.spans
            .get_mut(i)?
            .events
            .get_mut(e)
            .map(|e| &mut e.attributes)
    }
}

impl ScopeAccess for LogsKind {
    // ScopeLogs.log_records = 2, LogRecord.attributes = 6.
    const SPLICE: Option<(u64, u64)> = Some((2, 6));
    fn info(s: &ScopeLogs) -> (String, String) {
        scope_info(&s.scope)
    }
    fn scope_attrs(s: &mut ScopeLogs) -> &mut Vec<PKv> {
        scope_of(&mut s.scope)
    }
    fn item_attrs(s: &mut ScopeLogs, i: usize) -> Option<&mut Vec<PKv>> {
        s.log_records.get_mut(i).map(|r| &mut r.attributes)
    }
    fn each_item(s: &mut ScopeLogs, f: &mut dyn FnMut(&mut Vec<PKv>)) {
        s.log_records.iter_mut().for_each(|r| f(&mut r.attributes))
    }
    fn retain(s: &mut ScopeLogs, keep: &mut dyn FnMut() -> bool) {
        s.log_records.retain(|_| keep())
    }
}

/// Attributes of every data point of a metric, in order.
fn metric_point_attrs(m: &mut Metric) -> Vec<&mut Vec<PKv>> {
    match m.data.as_mut() {
        Some(Data::Gauge(g)) => g
            .data_points
            .iter_mut()
            .map(|p| &mut p.attributes)
            .collect(),
        Some(Data::Sum(s)) => s
            .data_points
            .iter_mut()
            .map(|p| &mut p.attributes)
            .collect(),
        Some(Data::Histogram(h)) => h
            .data_points
            .iter_mut()
            .map(|p| &mut p.attributes)
            .collect(),
        Some(Data::ExponentialHistogram(h)) => h
            .data_points
            .iter_mut()
            .map(|p| &mut p.attributes)
            .collect(),
        Some(Data::Summary(s)) => s
            .data_points
            .iter_mut()
            .map(|p| &mut p.attributes)
            .collect(),
        None => Vec::new(),
    }
}

fn retain_points(m: &mut Metric, keep: &mut dyn FnMut() -> bool) {
    match m.data.as_mut() {
        Some(Data::Gauge(g)) => g.data_points.retain(|_| keep()),
        Some(Data::Sum(s)) => s.data_points.retain(|_| keep()),
        Some(Data::Histogram(h)) => h.data_points.retain(|_| keep()),
        Some(Data::ExponentialHistogram(h)) => h.data_points.retain(|_| keep()),
        Some(Data::Summary(s)) => s.data_points.retain(|_| keep()),
        None => {}
    }
}

/// The metric holding point `i` of a scope, and the point's index within it.
pub(crate) fn locate_point(s: &mut ScopeMetrics, mut i: usize) -> Option<(&mut Metric, usize)> {
    for m in s.metrics.iter_mut() {
        let n = metric_points(m);
        if i < n {
            return Some((m, i));
        }
        i -= n;
    }
    None
}

impl ScopeAccess for MetricsKind {
    fn info(s: &ScopeMetrics) -> (String, String) {
        scope_info(&s.scope)
    }
    fn scope_attrs(s: &mut ScopeMetrics) -> &mut Vec<PKv> {
        scope_of(&mut s.scope)
    }
    fn item_attrs(s: &mut ScopeMetrics, i: usize) -> Option<&mut Vec<PKv>> {
        let (m, p) = locate_point(s, i)?;
        metric_point_attrs(m).into_iter().nth(p)
    }
    fn each_item(s: &mut ScopeMetrics, f: &mut dyn FnMut(&mut Vec<PKv>)) {
        for m in s.metrics.iter_mut() {
            for a in metric_point_attrs(m) {
                f(a)
            }
        }
    }
    fn retain(s: &mut ScopeMetrics, keep: &mut dyn FnMut() -> bool) {
        for m in s.metrics.iter_mut() {
            retain_points(m, keep);
        }
        // A metric left without points is dropped, as upstream's filters do.
        s.metrics.retain(|m| metric_points(m) > 0);
    }
}

impl<K: ScopeAccess> HostBatch<K> {
    /// Lends a batch: encoded batches are parsed only down to the resources.
    pub fn new(p: Payload<K::Request>) -> Result<Self, DecodeError> {
        Ok(HostBatch {
            lazy: LazyRequest::from_payload(p)?,
            modified: false,
            context: RequestContext::default(),
        })
    }

    /// Lends a decoded request.
    pub(crate) fn from_message(req: K::Request) -> Self {
        HostBatch {
            lazy: LazyRequest::from_message(req),
            modified: false,
            context: RequestContext::default(),
        }
    }

    /// Whether any call changed the batch.
    pub fn modified(&self) -> bool {
        self.modified
    }

    /// The batch after the call.
    pub fn into_payload(self) -> Result<Payload<K::Request>, DecodeError> {
        self.lazy.into_payload()
    }

    pub(crate) fn scope(&mut self, r: usize, s: usize) -> R<&mut K::Scope> {
        self.lazy
            .scope_mut(r, s)
            .map_err(decode_err)?
            .ok_or_else(|| oob("scope"))
    }
}
