//! The host side of every `wit/plugin.wit` import: the batch methods a plugin calls on the
//! batch it borrows, and `log`. All of them are implemented on the store's state.

use prost::Message;
use wasmcol_pdata::lazy::{LazyRequest, Slot};
use wasmcol_pdata::proto::common::v1::{AnyValue as PAny, KeyValue as PKv, any_value::Value as PV};
use wasmcol_pdata::proto::metrics::v1::metric::Data;
use wasmtime::component::Resource;

use crate::batch::{
    HostBatch, LogRes, MetricRes, R, ScopeAccess, TraceRes, decode_err, locate_point, oob,
};
use crate::bindings::wasmcol::plugin::batch as wb;
use crate::bindings::wasmcol::plugin::types as wt;
use crate::store::{MemoryCap, StoreState};

/// What one attribute costs the host beyond its key and value bytes.
const KV_OVERHEAD: usize = std::mem::size_of::<PKv>() + std::mem::size_of::<PAny>();

/// Bytes the host holds for one attribute set on the plugin's behalf.
fn kv_cost(key: &str, value: &PAny) -> usize {
    key.len() + value.encoded_len() + KV_OVERHEAD
}

/// Bytes of a value handed to the plugin (what the host copies out of the batch).
fn wit_cost(v: &wt::AnyValue) -> usize {
    KV_OVERHEAD
        + match v {
            wt::AnyValue::Str(s) => s.len(),
            wt::AnyValue::Bytes(b) | wt::AnyValue::Nested(b) => b.len(),
            _ => 8,
        }
}

/// Where an attribute call points.
enum Loc {
    Resource(usize),
    Scope(usize, usize),
    Item(usize, usize, usize),
    Event(usize, usize, usize, usize),
}

fn loc(t: &wt::Target) -> Loc {
    match t {
        wt::Target::Resource(r) => Loc::Resource(*r as usize),
        wt::Target::Scope(s) => Loc::Scope(s.resource as usize, s.scope as usize),
        wt::Target::Item(i) => Loc::Item(i.resource as usize, i.scope as usize, i.item as usize),
        wt::Target::Event(e) => Loc::Event(
            e.resource as usize,
            e.scope as usize,
            e.item as usize,
            e.event as usize,
        ),
    }
}

/// A WIT value as an OTLP value.
pub fn to_proto(v: wt::AnyValue) -> R<PAny> {
    Ok(PAny {
        value: match v {
            wt::AnyValue::Empty => None,
            wt::AnyValue::Str(s) => Some(PV::StringValue(s)),
            wt::AnyValue::Boolean(b) => Some(PV::BoolValue(b)),
            wt::AnyValue::Int(i) => Some(PV::IntValue(i)),
            wt::AnyValue::Double(d) => Some(PV::DoubleValue(d)),
            wt::AnyValue::Bytes(b) => Some(PV::BytesValue(b)),
            wt::AnyValue::Nested(b) => {
                return PAny::decode(b.as_slice()).map_err(|e| {
                    wasmtime::Error::msg(format!("plugin wrote an invalid nested value: {e}"))
                });
            }
        },
    })
}

/// An OTLP value as a WIT value.
pub fn from_proto(v: Option<&PAny>) -> wt::AnyValue {
    match v.and_then(|v| v.value.as_ref()) {
        None => wt::AnyValue::Empty,
        Some(PV::StringValue(s)) => wt::AnyValue::Str(s.clone()),
        Some(PV::BoolValue(b)) => wt::AnyValue::Boolean(*b),
        Some(PV::IntValue(i)) => wt::AnyValue::Int(*i),
        Some(PV::DoubleValue(d)) => wt::AnyValue::Double(*d),
        Some(PV::BytesValue(b)) => wt::AnyValue::Bytes(b.clone()),
        // Arrays, key-value lists and anything newer travel as the protobuf of the AnyValue.
        Some(_) => wt::AnyValue::Nested(v.map(|v| v.encode_to_vec()).unwrap_or_default()),
    }
}

fn kv(key: String, value: PAny) -> PKv {
    PKv {
        key,
        value: Some(value),
        ..Default::default()
    }
}

fn find<'a>(attrs: &'a [PKv], key: &str) -> Option<&'a PKv> {
    attrs.iter().find(|kv| kv.key == key)
}

/// Applies `mode`; whether the set changed.
fn set_in(attrs: &mut Vec<PKv>, key: &str, value: &PAny, mode: wt::SetMode) -> bool {
    match attrs.iter_mut().find(|kv| kv.key == key) {
        Some(kv) => {
            if mode == wt::SetMode::Insert {
                return false;
            }
            kv.value = Some(value.clone());
            true
        }
        None => {
            if mode == wt::SetMode::Update {
                return false;
            }
            attrs.push(kv(key.to_owned(), value.clone()));
            true
        }
    }
}

impl<K: ScopeAccess> HostBatch<K> {
    fn attrs(&mut self, at: &wt::Target) -> R<&mut Vec<PKv>> {
        Ok(match loc(at) {
            Loc::Resource(r) => {
                &mut self
                    .lazy
                    .resources
                    .get_mut(r)
                    .ok_or_else(|| oob("resource"))?
                    .resource
                    .get_or_insert_with(Default::default)
                    .attributes
            }
            Loc::Scope(r, s) => K::scope_attrs(self.scope(r, s)?),
            Loc::Item(r, s, i) => K::item_attrs(self.scope(r, s)?, i).ok_or_else(|| oob("item"))?,
            Loc::Event(r, s, i, e) => {
                K::event_attrs(self.scope(r, s)?, i, e).ok_or_else(|| oob("span event"))?
            }
        })
    }

    /// Calls `f` on every attribute set of `level`, in batch order. Resource-level walks
    /// never decode scopes.
    fn each(&mut self, level: wt::Level, f: &mut dyn FnMut(&mut Vec<PKv>)) -> R<()> {
        if level == wt::Level::Resource {
            for r in self.lazy.resources.iter_mut() {
                f(&mut r.resource.get_or_insert_with(Default::default).attributes);
            }
            return Ok(());
        }
        for r in 0..self.lazy.resources.len() {
            for s in 0..self.lazy.resources[r].scopes.len() {
                let scope = self.scope(r, s)?;
                match level {
                    wt::Level::Scope => f(K::scope_attrs(scope)),
                    _ => K::each_item(scope, f),
                }
            }
        }
        Ok(())
    }

    fn resource_count(&self) -> u32 {
        self.lazy.resources.len() as u32
    }

    fn scope_count(&self, r: u32) -> R<u32> {
        Ok(self
            .lazy
            .resources
            .get(r as usize)
            .ok_or_else(|| oob("resource"))?
            .scopes
            .len() as u32)
    }

    fn item_count(&mut self, r: u32, s: u32) -> R<u32> {
        Ok(K::scope_items(self.scope(r as usize, s as usize)?) as u32)
    }

    fn total_items(&self) -> u32 {
        self.lazy.item_count() as u32
    }

    fn scope_info(&mut self, at: wt::ScopeRef) -> R<wt::ScopeInfo> {
        let (name, version) = K::info(self.scope(at.resource as usize, at.scope as usize)?);
        Ok(wt::ScopeInfo { name, version })
    }

    fn attribute(&mut self, at: wt::Target, key: String) -> R<Option<wt::AnyValue>> {
        let attrs = self.attrs(&at)?;
        Ok(find(attrs, &key).map(|kv| from_proto(kv.value.as_ref())))
    }

    fn attributes(&mut self, at: wt::Target, cap: &mut MemoryCap) -> R<Vec<wt::KeyValue>> {
        let out: Vec<wt::KeyValue> = self
            .attrs(&at)?
            .iter()
            .map(|kv| wt::KeyValue {
                key: kv.key.clone(),
                value: from_proto(kv.value.as_ref()),
            })
            .collect();
        cap.fits(
            out.iter()
                .map(|kv| kv.key.len() + wit_cost(&kv.value))
                .sum(),
        )?;
        Ok(out)
    }

    fn set_attribute(
        &mut self,
        at: wt::Target,
        key: String,
        value: wt::AnyValue,
        mode: wt::SetMode,
        cap: &mut MemoryCap,
    ) -> R<bool> {
        let value = to_proto(value)?;
        let changed = set_in(self.attrs(&at)?, &key, &value, mode);
        if changed {
            cap.charge(kv_cost(&key, &value))?;
        }
        self.modified |= changed;
        Ok(changed)
    }

    fn remove_attribute(&mut self, at: wt::Target, key: String) -> R<bool> {
        let attrs = self.attrs(&at)?;
        let before = attrs.len();
        attrs.retain(|kv| kv.key != key);
        let changed = attrs.len() != before;
        self.modified |= changed;
        Ok(changed)
    }

    fn replace_attributes(
        &mut self,
        at: wt::Target,
        attributes: Vec<wt::KeyValue>,
        cap: &mut MemoryCap,
    ) -> R<()> {
        let new = attributes
            .into_iter()
            .map(|a| Ok(kv(a.key, to_proto(a.value)?)))
            .collect::<R<Vec<_>>>()?;
        cap.charge(
            new.iter()
                .map(|a| kv_cost(&a.key, a.value.as_ref().unwrap_or(&PAny::default())))
                .sum(),
        )?;
        *self.attrs(&at)? = new;
        self.modified = true;
        Ok(())
    }

    fn set_attribute_all(
        &mut self,
        level: wt::Level,
        key: String,
        value: wt::AnyValue,
        mode: wt::SetMode,
        cap: &mut MemoryCap,
    ) -> R<u32> {
        let value = to_proto(value)?;
        // One copy of the value per attribute set: refuse before copying when every set
        // taking it would not fit, and count what was stored after.
        let per = kv_cost(&key, &value);
        cap.fits(self.set_count(level).saturating_mul(per))?;
        let changed = self.set_attribute_all_unchecked(level, key, value, mode)?;
        cap.charge((changed as usize).saturating_mul(per))?;
        Ok(changed)
    }

    /// How many attribute sets `level` covers.
    fn set_count(&self, level: wt::Level) -> usize {
        match level {
            wt::Level::Resource => self.lazy.resources.len(),
            wt::Level::Scope => self.lazy.resources.iter().map(|r| r.scopes.len()).sum(),
            wt::Level::Item => self.lazy.item_count(),
        }
    }

    fn set_attribute_all_unchecked(
        &mut self,
        level: wt::Level,
        key: String,
        value: PAny,
        mode: wt::SetMode,
    ) -> R<u32> {
        let mut changed = 0u32;
        if level == wt::Level::Item
            && mode == wt::SetMode::Insert
            && let Some((item_field, attr_field)) = K::SPLICE
        {
            // Scopes still in wire form take the attribute without being decoded; the others
            // (and any the splice does not understand) go through the decoded path.
            let kv = kv(key.clone(), value.clone()).encode_to_vec();
            for r in 0..self.lazy.resources.len() {
                for s in 0..self.lazy.resources[r].scopes.len() {
                    let spliced = match &self.lazy.resources[r].scopes[s] {
                        Slot::Raw(bytes) => crate::splice::insert_everywhere(
                            bytes, item_field, attr_field, &key, &kv,
                        ),
                        Slot::Decoded(_) => None,
                    };
                    match spliced {
                        Some((new, n)) => {
                            self.lazy.resources[r].scopes[s] = Slot::Raw(new);
                            changed += n;
                        }
                        None => K::each_item(self.scope(r, s)?, &mut |attrs| {
                            changed += u32::from(set_in(attrs, &key, &value, mode));
                        }),
                    }
                }
            }
            self.modified |= changed > 0;
            return Ok(changed);
        }
        self.each(level, &mut |attrs| {
            changed += u32::from(set_in(attrs, &key, &value, mode));
        })?;
        self.modified |= changed > 0;
        Ok(changed)
    }

    fn attribute_all(
        &mut self,
        level: wt::Level,
        key: String,
        cap: &mut MemoryCap,
    ) -> R<Vec<Option<wt::AnyValue>>> {
        let mut out = Vec::new();
        self.each(level, &mut |attrs| {
            out.push(find(attrs, &key).map(|kv| from_proto(kv.value.as_ref())));
        })?;
        cap.fits(out.iter().flatten().map(wit_cost).sum())?;
        Ok(out)
    }

    /// Removes `key` from every attribute set of `level`; how many sets had it.
    pub(crate) fn remove_attribute_all(&mut self, level: wt::Level, key: &str) -> R<u32> {
        let mut changed = 0u32;
        self.each(level, &mut |attrs| {
            let before = attrs.len();
            attrs.retain(|kv| kv.key != key);
            changed += u32::from(attrs.len() != before);
        })?;
        self.modified |= changed > 0;
        Ok(changed)
    }

    /// The values of request context `key` (header names are matched without case).
    pub(crate) fn context_values(&self, key: &str, cap: &mut MemoryCap) -> R<Vec<String>> {
        let out: Vec<String> = self.context.get(key).to_vec();
        cap.fits(
            out.iter()
                .map(|v| v.len() + std::mem::size_of::<String>())
                .sum(),
        )?;
        Ok(out)
    }

    fn retain(&mut self, keep: Vec<bool>) -> R<u32> {
        self.lazy.decode_all().map_err(decode_err)?;
        let mut n = 0usize;
        let mut dropped = false;
        let mut next = || {
            let k = keep.get(n).copied().unwrap_or(true);
            n += 1;
            dropped |= !k;
            k
        };
        for r in 0..self.lazy.resources.len() {
            for s in 0..self.lazy.resources[r].scopes.len() {
                K::retain(self.scope(r, s)?, &mut next);
            }
        }
        if dropped {
            self.modified = true;
            for r in self.lazy.resources.iter_mut() {
                r.scopes.retain(|s| match s {
                    Slot::Decoded(s) => K::scope_items(s) > 0,
                    Slot::Raw(_) => true,
                });
            }
            self.lazy.resources.retain(|r| !r.scopes.is_empty());
        }
        Ok(self.lazy.item_count() as u32)
    }

    fn to_otlp(&self, cap: &mut MemoryCap) -> R<Vec<u8>> {
        let out = self.lazy.encode().to_vec();
        cap.fits(out.len())?;
        Ok(out)
    }

    fn replace_from_otlp(&mut self, otlp: Vec<u8>, cap: &mut MemoryCap) -> R<Result<(), String>> {
        // The decoded batch takes at least its encoded size.
        cap.charge(otlp.len())?;
        Ok(self.replace_from_bytes(&otlp))
    }

    fn replace_from_bytes(&mut self, otlp: &[u8]) -> Result<(), String> {
        let req = K::Request::decode(otlp).map_err(|e| e.to_string())?;
        self.lazy = LazyRequest::from_message(req);
        self.modified = true;
        Ok(())
    }
}

fn span_info(s: &wasmcol_pdata::proto::trace::v1::Span) -> wb::SpanInfo {
    let status = s.status.as_ref();
    wb::SpanInfo {
        trace_id: s.trace_id.clone(),
        span_id: s.span_id.clone(),
        parent_span_id: s.parent_span_id.clone(),
        trace_state: s.trace_state.clone(),
        name: s.name.clone(),
        kind: s.kind,
        start_time_unix_nano: s.start_time_unix_nano,
        end_time_unix_nano: s.end_time_unix_nano,
        status_code: status.map(|s| s.code).unwrap_or_default(),
        status_message: status.map(|s| s.message.clone()).unwrap_or_default(),
        flags: s.flags,
        event_count: s.events.len() as u32,
        link_count: s.links.len() as u32,
    }
}

fn id16(id: &[u8]) -> [u8; 16] {
    let mut out = [0u8; 16];
    if id.len() == 16 {
        out.copy_from_slice(id);
    }
    out
}

impl TraceRes {
    fn span_mut(&mut self, at: &wt::ItemRef) -> R<&mut wasmcol_pdata::proto::trace::v1::Span> {
        self.scope(at.resource as usize, at.scope as usize)?
            .spans
            .get_mut(at.item as usize)
            .ok_or_else(|| oob("span"))
    }

    fn all_spans(&mut self, f: &mut dyn FnMut(&wasmcol_pdata::proto::trace::v1::Span)) -> R<()> {
        for r in 0..self.lazy.resources.len() {
            for s in 0..self.lazy.resources[r].scopes.len() {
                self.scope(r, s)?.spans.iter().for_each(&mut *f);
            }
        }
        Ok(())
    }
}

impl LogRes {
    fn record_mut(
        &mut self,
        at: &wt::ItemRef,
    ) -> R<&mut wasmcol_pdata::proto::logs::v1::LogRecord> {
        self.scope(at.resource as usize, at.scope as usize)?
            .log_records
            .get_mut(at.item as usize)
            .ok_or_else(|| oob("log record"))
    }
}

/// Implements the methods the three batch resources share.
macro_rules! common_methods {
    ($res:ty) => {
        fn resource_count(&mut self, b: Resource<$res>) -> R<u32> {
            Ok(self.table.get(&b)?.resource_count())
        }
        fn scope_count(&mut self, b: Resource<$res>, r: u32) -> R<u32> {
            self.table.get(&b)?.scope_count(r)
        }
        fn item_count(&mut self, b: Resource<$res>, r: u32, s: u32) -> R<u32> {
            self.table.get_mut(&b)?.item_count(r, s)
        }
        fn total_items(&mut self, b: Resource<$res>) -> R<u32> {
            Ok(self.table.get(&b)?.total_items())
        }
        fn scope_info(&mut self, b: Resource<$res>, at: wt::ScopeRef) -> R<wt::ScopeInfo> {
            self.table.get_mut(&b)?.scope_info(at)
        }
        fn attribute(
            &mut self,
            b: Resource<$res>,
            at: wt::Target,
            key: String,
        ) -> R<Option<wt::AnyValue>> {
            self.table.get_mut(&b)?.attribute(at, key)
        }
        fn attributes(&mut self, b: Resource<$res>, at: wt::Target) -> R<Vec<wt::KeyValue>> {
            self.table.get_mut(&b)?.attributes(at, &mut self.limiter)
        }
        fn set_attribute(
            &mut self,
            b: Resource<$res>,
            at: wt::Target,
            key: String,
            value: wt::AnyValue,
            mode: wt::SetMode,
        ) -> R<bool> {
            self.table
                .get_mut(&b)?
                .set_attribute(at, key, value, mode, &mut self.limiter)
        }
        fn remove_attribute(&mut self, b: Resource<$res>, at: wt::Target, key: String) -> R<bool> {
            self.table.get_mut(&b)?.remove_attribute(at, key)
        }
        fn replace_attributes(
            &mut self,
            b: Resource<$res>,
            at: wt::Target,
            attributes: Vec<wt::KeyValue>,
        ) -> R<()> {
            self.table
                .get_mut(&b)?
                .replace_attributes(at, attributes, &mut self.limiter)
        }
        fn set_attribute_all(
            &mut self,
            b: Resource<$res>,
            level: wt::Level,
            key: String,
            value: wt::AnyValue,
            mode: wt::SetMode,
        ) -> R<u32> {
            self.table
                .get_mut(&b)?
                .set_attribute_all(level, key, value, mode, &mut self.limiter)
        }
        fn attribute_all(
            &mut self,
            b: Resource<$res>,
            level: wt::Level,
            key: String,
        ) -> R<Vec<Option<wt::AnyValue>>> {
            self.table
                .get_mut(&b)?
                .attribute_all(level, key, &mut self.limiter)
        }
        fn retain(&mut self, b: Resource<$res>, keep: Vec<bool>) -> R<u32> {
            self.table.get_mut(&b)?.retain(keep)
        }
        fn to_otlp(&mut self, b: Resource<$res>) -> R<Vec<u8>> {
            self.table.get(&b)?.to_otlp(&mut self.limiter)
        }
        fn replace_from_otlp(&mut self, b: Resource<$res>, otlp: Vec<u8>) -> R<Result<(), String>> {
            self.table
                .get_mut(&b)?
                .replace_from_otlp(otlp, &mut self.limiter)
        }
        fn drop(&mut self, _b: Resource<$res>) -> R<()> {
            // Plugins only ever borrow batches; the host deletes them after the call.
            Ok(())
        }
    };
}

impl wb::HostTraceBatch for StoreState {
    common_methods!(TraceRes);

    fn span(&mut self, b: Resource<TraceRes>, at: wt::ItemRef) -> R<wb::SpanInfo> {
        Ok(span_info(self.table.get_mut(&b)?.span_mut(&at)?))
    }
    fn trace_ids(&mut self, b: Resource<TraceRes>) -> R<Vec<u8>> {
        let mut out = Vec::new();
        self.table
            .get_mut(&b)?
            .all_spans(&mut |s| out.extend_from_slice(&id16(&s.trace_id)))?;
        self.limiter.fits(out.len())?;
        Ok(out)
    }
    fn trace_states(&mut self, b: Resource<TraceRes>) -> R<Vec<String>> {
        let mut out = Vec::new();
        self.table
            .get_mut(&b)?
            .all_spans(&mut |s| out.push(s.trace_state.clone()))?;
        self.limiter.fits(
            out.iter()
                .map(|s| s.len() + std::mem::size_of::<String>())
                .sum(),
        )?;
        Ok(out)
    }
    fn set_trace_state(&mut self, b: Resource<TraceRes>, at: wt::ItemRef, ts: String) -> R<()> {
        self.limiter.charge(ts.len())?;
        let batch = self.table.get_mut(&b)?;
        batch.span_mut(&at)?.trace_state = ts;
        batch.modified = true;
        Ok(())
    }
    fn set_span_name(&mut self, b: Resource<TraceRes>, at: wt::ItemRef, name: String) -> R<()> {
        self.limiter.charge(name.len())?;
        let batch = self.table.get_mut(&b)?;
        batch.span_mut(&at)?.name = name;
        batch.modified = true;
        Ok(())
    }
}

impl wb::HostMetricBatch for StoreState {
    common_methods!(MetricRes);

    fn point(&mut self, b: Resource<MetricRes>, at: wt::ItemRef) -> R<wb::PointInfo> {
        let batch = self.table.get_mut(&b)?;
        let scope = batch.scope(at.resource as usize, at.scope as usize)?;
        let (m, p) = locate_point(scope, at.item as usize).ok_or_else(|| oob("data point"))?;
        let (kind, start, time) = match m.data.as_ref() {
            Some(Data::Gauge(g)) => g.data_points.get(p).map(|d| {
                (
                    wb::MetricKind::Gauge,
                    d.start_time_unix_nano,
                    d.time_unix_nano,
                )
            }),
            Some(Data::Sum(s)) => s.data_points.get(p).map(|d| {
                (
                    wb::MetricKind::Sum,
                    d.start_time_unix_nano,
                    d.time_unix_nano,
                )
            }),
            Some(Data::Histogram(h)) => h.data_points.get(p).map(|d| {
                (
                    wb::MetricKind::Histogram,
                    d.start_time_unix_nano,
                    d.time_unix_nano,
                )
            }),
            Some(Data::ExponentialHistogram(h)) => h.data_points.get(p).map(|d| {
                (
                    wb::MetricKind::ExponentialHistogram,
                    d.start_time_unix_nano,
                    d.time_unix_nano,
                )
            }),
            Some(Data::Summary(s)) => s.data_points.get(p).map(|d| {
                (
                    wb::MetricKind::Summary,
                    d.start_time_unix_nano,
                    d.time_unix_nano,
                )
            }),
            None => None,
        }
        .ok_or_else(|| oob("data point"))?;
        Ok(wb::PointInfo {
            metric_name: m.name.clone(),
            metric_unit: m.unit.clone(),
            kind,
            start_time_unix_nano: start,
            time_unix_nano: time,
        })
    }
}

impl wb::HostLogBatch for StoreState {
    common_methods!(LogRes);

    fn log_record(&mut self, b: Resource<LogRes>, at: wt::ItemRef) -> R<wb::LogInfo> {
        let r = self.table.get_mut(&b)?.record_mut(&at)?;
        Ok(wb::LogInfo {
            time_unix_nano: r.time_unix_nano,
            observed_time_unix_nano: r.observed_time_unix_nano,
            severity_number: r.severity_number,
            severity_text: r.severity_text.clone(),
            body: from_proto(r.body.as_ref()),
            trace_id: r.trace_id.clone(),
            span_id: r.span_id.clone(),
            flags: r.flags,
            event_name: r.event_name.clone(),
        })
    }
    fn trace_ids(&mut self, b: Resource<LogRes>) -> R<Vec<u8>> {
        let batch = self.table.get_mut(&b)?;
        let mut out = Vec::new();
        for r in 0..batch.lazy.resources.len() {
            for s in 0..batch.lazy.resources[r].scopes.len() {
                for rec in &batch.scope(r, s)?.log_records {
                    out.extend_from_slice(&id16(&rec.trace_id));
                }
            }
        }
        Ok(out)
    }
}

impl wb::Host for StoreState {}
impl wt::Host for StoreState {}

impl crate::bindings::ProcessorImports for StoreState {
    fn log(&mut self, level: wt::LogLevel, message: String) -> wasmtime::Result<()> {
        let plugin = &*self.label;
        match level {
            wt::LogLevel::Trace => tracing::trace!(plugin, "{message}"),
            wt::LogLevel::Debug => tracing::debug!(plugin, "{message}"),
            wt::LogLevel::Info => tracing::info!(plugin, "{message}"),
            wt::LogLevel::Warn => tracing::warn!(plugin, "{message}"),
            wt::LogLevel::Error => tracing::error!(plugin, "{message}"),
        }
        Ok(())
    }
}
