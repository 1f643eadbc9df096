//! The plugin host calls with arbitrary indices and edits, without wasmtime: the operations
//! `host/wasm/src/host.rs` runs for each `wit/plugin.wit` batch method, applied to the same
//! `wasmcol_pdata::lazy::LazyRequest` views, with the same per-signal access as
//! `host/wasm/src/batch.rs`, and the real `host/wasm/src/splice.rs` compiled in by path.
//!
//! Input: byte 0 picks the signal, bytes 1..3 the length of the request that follows (kept
//! only when the receiver's scan accepts it, as a lent batch always is); the rest is a
//! sequence of calls. An index out of range must be refused (the host traps the call), never
//! panic. Asserted after the calls: the lazy view's item count is the decoded count; its
//! encoding is a request the receiver's scan accepts with that count, and equals the batch
//! the processor forwards; a splice (attribute inserted into still-encoded items) decodes to
//! exactly what the decoded insert gives.
//!
//! Two calls hand the host protobuf a plugin wrote: `replace-from-otlp` and a `nested`
//! attribute value. The host decodes them with prost and does not rescan them, so a plugin can
//! put in an id of the wrong length or nest values past the depth the receiver accepts. By
//! default the final validity check is skipped after such a call; `WASMCOL_FUZZ_STRICT=1`
//! keeps it, to reproduce that gap (see fuzz/README.md).
#![no_main]

#[path = "../../host/wasm/src/splice.rs"]
#[allow(dead_code)]
mod splice;

use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use prost::Message;
use wasmcol_fuzz::{assert_valid, loose, signal};
use wasmcol_pdata::lazy::{LazyKind, LazyRequest, LogsKind, MetricsKind, Slot, TracesKind};
use wasmcol_pdata::proto::common::v1::{
    AnyValue as PAny, InstrumentationScope, KeyValue as PKv, any_value::Value as PV,
};
use wasmcol_pdata::proto::logs::v1::ScopeLogs;
use wasmcol_pdata::proto::metrics::v1::{Metric, ScopeMetrics, metric::Data};
use wasmcol_pdata::proto::trace::v1::ScopeSpans;
use wasmcol_pdata::{OtlpRequest, Payload, Signal, metric_points};

// ---- batch.rs's per-signal access, as the host uses it ----

trait Access: LazyKind {
    const SPLICE: Option<(u64, u64)> = None;
    fn scope_attrs(s: &mut Self::Scope) -> &mut Vec<PKv>;
    fn item_attrs(s: &mut Self::Scope, i: usize) -> Option<&mut Vec<PKv>>;
    fn each_item(s: &mut Self::Scope, f: &mut dyn FnMut(&mut Vec<PKv>));
    fn retain(s: &mut Self::Scope, keep: &mut dyn FnMut() -> bool);
    fn event_attrs(_s: &mut Self::Scope, _i: usize, _e: usize) -> Option<&mut Vec<PKv>> {
        None
    }
    fn set_name(_s: &mut Self::Scope, _i: usize, _name: String) -> Option<()> {
        None
    }
}

fn scope_of(s: &mut Option<InstrumentationScope>) -> &mut Vec<PKv> {
    &mut s.get_or_insert_with(Default::default).attributes
}

impl Access for TracesKind {
    const SPLICE: Option<(u64, u64)> = Some((2, 9));
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
    fn set_name(s: &mut ScopeSpans, i: usize, name: String) -> Option<()> {
        s.spans.get_mut(i)?.name = name;
        Some(())
    }
}

impl Access for LogsKind {
    const SPLICE: Option<(u64, u64)> = Some((2, 6));
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

fn locate_point(s: &mut ScopeMetrics, mut i: usize) -> Option<(&mut Metric, usize)> {
    for m in s.metrics.iter_mut() {
        let n = metric_points(m);
        if i < n {
            return Some((m, i));
        }
        i -= n;
    }
    None
}

impl Access for MetricsKind {
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
        s.metrics.retain(|m| metric_points(m) > 0);
    }
}

// ---- the calls ----

#[derive(Arbitrary, Debug)]
enum Target {
    Resource(u8),
    Scope(u8, u8),
    Item(u8, u8, u8),
    Event(u8, u8, u8, u8),
}

#[derive(Arbitrary, Debug, Clone, Copy, PartialEq)]
enum Level {
    Resource,
    Scope,
    Item,
}

#[derive(Arbitrary, Debug, Clone, Copy, PartialEq)]
enum Mode {
    Insert,
    Update,
    Upsert,
}

#[derive(Arbitrary, Debug)]
enum Key {
    Known(u8),
    Any(String),
}

impl Key {
    fn get(self) -> String {
        match self {
            Key::Known(k) => ["telemetry.source", "service.name", "a", "http.method", ""]
                [usize::from(k) % 5]
                .to_owned(),
            Key::Any(s) => s,
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Value {
    Empty,
    Str(String),
    Boolean(bool),
    Int(i64),
    Double(f64),
    Bytes(Vec<u8>),
    Nested(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Call {
    ItemCount(u8, u8),
    Attributes(Target),
    SetAttribute(Target, Key, Value, Mode),
    RemoveAttribute(Target, Key),
    ReplaceAttributes(Target, Vec<(Key, Value)>),
    SetAttributeAll(Level, Key, Value, Mode),
    AttributeAll(Level, Key),
    Retain(Vec<bool>),
    SetSpanName(u8, u8, u8, String),
    ToOtlp,
    ReplaceFromOtlp(Vec<u8>),
}

/// `host.rs` `to_proto`: a nested value is the plugin's protobuf of an `AnyValue`.
fn to_proto(v: Value, foreign: &mut bool) -> Option<PAny> {
    Some(PAny {
        value: match v {
            Value::Empty => None,
            Value::Str(s) => Some(PV::StringValue(s)),
            Value::Boolean(b) => Some(PV::BoolValue(b)),
            Value::Int(i) => Some(PV::IntValue(i)),
            Value::Double(d) => Some(PV::DoubleValue(d)),
            Value::Bytes(b) => Some(PV::BytesValue(b)),
            Value::Nested(b) => {
                let v = PAny::decode(b.as_slice()).ok()?;
                *foreign = true;
                return Some(v);
            }
        },
    })
}

fn kv(key: String, value: PAny) -> PKv {
    PKv {
        key,
        value: Some(value),
        ..Default::default()
    }
}

fn set_in(attrs: &mut Vec<PKv>, key: &str, value: &PAny, mode: Mode) -> bool {
    match attrs.iter_mut().find(|kv| kv.key == key) {
        Some(kv) => {
            if mode == Mode::Insert {
                return false;
            }
            kv.value = Some(value.clone());
            true
        }
        None => {
            if mode == Mode::Update {
                return false;
            }
            attrs.push(kv(key.to_owned(), value.clone()));
            true
        }
    }
}

struct Host<K: Access> {
    lazy: LazyRequest<K>,
    /// A call put plugin-written protobuf into the batch (see the module comment).
    foreign: bool,
}

impl<K: Access> Host<K>
where
    K::Request: OtlpRequest,
{
    fn scope(&mut self, r: usize, s: usize) -> Option<&mut K::Scope> {
        // A lent batch was scanned: its scopes always decode.
        self.lazy
            .scope_mut(r, s)
            .expect("scope of a scanned batch decodes")
    }

    fn attrs(&mut self, at: &Target) -> Option<&mut Vec<PKv>> {
        match *at {
            Target::Resource(r) => Some(
                &mut self
                    .lazy
                    .resources
                    .get_mut(usize::from(r))?
                    .resource
                    .get_or_insert_with(Default::default)
                    .attributes,
            ),
            Target::Scope(r, s) => Some(K::scope_attrs(self.scope(r.into(), s.into())?)),
            Target::Item(r, s, i) => K::item_attrs(self.scope(r.into(), s.into())?, i.into()),
            Target::Event(r, s, i, e) => {
                K::event_attrs(self.scope(r.into(), s.into())?, i.into(), e.into())
            }
        }
    }

    fn each(&mut self, level: Level, f: &mut dyn FnMut(&mut Vec<PKv>)) {
        if level == Level::Resource {
            for r in self.lazy.resources.iter_mut() {
                f(&mut r.resource.get_or_insert_with(Default::default).attributes);
            }
            return;
        }
        for r in 0..self.lazy.resources.len() {
            for s in 0..self.lazy.resources[r].scopes.len() {
                let scope = self.scope(r, s).expect("in range");
                match level {
                    Level::Scope => f(K::scope_attrs(scope)),
                    _ => K::each_item(scope, f),
                }
            }
        }
    }

    /// `set-attribute-all`, with each splice checked against the decoded insert.
    fn set_all(&mut self, level: Level, key: String, value: PAny, mode: Mode) -> u32 {
        let mut changed = 0u32;
        if level == Level::Item
            && mode == Mode::Insert
            && let Some((item_field, attr_field)) = K::SPLICE
        {
            let encoded_kv = kv(key.clone(), value.clone()).encode_to_vec();
            for r in 0..self.lazy.resources.len() {
                for s in 0..self.lazy.resources[r].scopes.len() {
                    let spliced = match &self.lazy.resources[r].scopes[s] {
                        Slot::Raw(bytes) => splice::insert_everywhere(
                            bytes,
                            item_field,
                            attr_field,
                            &key,
                            &encoded_kv,
                        )
                        .map(|out| (bytes.clone(), out)),
                        Slot::Decoded(_) => None,
                    };
                    match spliced {
                        Some((old, (new, n))) => {
                            let mut want = K::Scope::decode(old).expect("raw scope decodes");
                            let mut m = 0u32;
                            K::each_item(&mut want, &mut |a| {
                                m += u32::from(set_in(a, &key, &value, mode))
                            });
                            let got = K::Scope::decode(new.clone()).expect("spliced scope decodes");
                            assert_eq!(
                                got.encode_to_vec(),
                                want.encode_to_vec(),
                                "splice differs from the decoded insert"
                            );
                            assert_eq!(n, m, "splice changed count");
                            self.lazy.resources[r].scopes[s] = Slot::Raw(new);
                            changed += n;
                        }
                        None => K::each_item(self.scope(r, s).expect("in range"), &mut |a| {
                            changed += u32::from(set_in(a, &key, &value, mode));
                        }),
                    }
                }
            }
            return changed;
        }
        self.each(level, &mut |a| {
            changed += u32::from(set_in(a, &key, &value, mode))
        });
        changed
    }

    fn retain(&mut self, keep: Vec<bool>) {
        self.lazy.decode_all().expect("scanned batch decodes");
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
                K::retain(self.scope(r, s).expect("in range"), &mut next);
            }
        }
        if dropped {
            for r in self.lazy.resources.iter_mut() {
                r.scopes.retain(|s| match s {
                    Slot::Decoded(s) => K::scope_items(s) > 0,
                    Slot::Raw(_) => true,
                });
            }
            self.lazy.resources.retain(|r| !r.scopes.is_empty());
        }
    }

    fn call(&mut self, call: Call) {
        let mut foreign = false;
        match call {
            Call::ItemCount(r, s) => {
                let _ = self.scope(r.into(), s.into()).map(|s| K::scope_items(s));
            }
            Call::Attributes(at) => {
                let _ = self.attrs(&at).map(|a| a.len());
            }
            Call::SetAttribute(at, key, value, mode) => {
                let key = key.get();
                if let Some(value) = to_proto(value, &mut foreign)
                    && let Some(attrs) = self.attrs(&at)
                {
                    set_in(attrs, &key, &value, mode);
                }
            }
            Call::RemoveAttribute(at, key) => {
                let key = key.get();
                if let Some(attrs) = self.attrs(&at) {
                    attrs.retain(|kv| kv.key != key);
                }
            }
            Call::ReplaceAttributes(at, list) => {
                let new: Option<Vec<PKv>> = list
                    .into_iter()
                    .map(|(k, v)| Some(kv(k.get(), to_proto(v, &mut foreign)?)))
                    .collect();
                if let Some(new) = new
                    && let Some(attrs) = self.attrs(&at)
                {
                    *attrs = new;
                }
            }
            Call::SetAttributeAll(level, key, value, mode) => {
                if let Some(value) = to_proto(value, &mut foreign) {
                    self.set_all(level, key.get(), value, mode);
                }
            }
            Call::AttributeAll(level, key) => {
                let key = key.get();
                self.each(level, &mut |a| {
                    let _ = a.iter().find(|kv| kv.key == key);
                });
            }
            Call::Retain(keep) => self.retain(keep),
            Call::SetSpanName(r, s, i, name) => {
                if let Some(scope) = self.scope(r.into(), s.into()) {
                    let _ = K::set_name(scope, i.into(), name);
                }
            }
            Call::ToOtlp => {
                let _ = self.lazy.encode();
            }
            Call::ReplaceFromOtlp(otlp) => {
                if let Ok(req) = K::Request::decode(otlp.as_slice()) {
                    self.lazy = LazyRequest::from_message(req);
                    foreign = true;
                }
            }
        }
        self.foreign |= foreign;
    }
}

fn strict() -> bool {
    static S: OnceLock<bool> = OnceLock::new();
    *S.get_or_init(|| std::env::var_os("WASMCOL_FUZZ_STRICT").is_some_and(|v| v == "1"))
}

fn run<K: Access>(signal: Signal, request: Bytes, u: &mut Unstructured)
where
    K::Request: OtlpRequest,
{
    // A metric carrying two `data` variants is counted by the scan with every variant and
    // by prost with the last (see wire_scan.rs): counts of such a batch are not compared.
    let multi = signal == Signal::Metrics && loose::count(&request).is_some_and(|(_, m)| m);
    let Ok(batch) = Payload::<K::Request>::from_encoded(request) else {
        return;
    };
    let mut host = Host::<K> {
        lazy: LazyRequest::from_payload(batch).expect("scanned batch parses shallowly"),
        foreign: false,
    };
    for _ in 0..32 {
        let Ok(call) = Call::arbitrary(u) else {
            break;
        };
        host.call(call);
    }
    let items = host.lazy.item_count();
    let wire = host.lazy.encode();
    let forwarded = host.lazy.into_payload().expect("lazy view back to a batch");
    assert_eq!(
        forwarded.encoded(),
        wire,
        "forwarded batch differs from the view's encoding"
    );
    assert_eq!(forwarded.item_count(), items);
    let decoded = forwarded.to_message().expect("forwarded batch decodes");
    if !multi && (!host.foreign || strict()) {
        assert_eq!(
            decoded.count_items(),
            items,
            "view's item count vs decoded count"
        );
        assert_valid(signal, wire, items);
    }
}

fuzz_target!(|data: &[u8]| {
    let [pick, lo, hi, rest @ ..] = data else {
        return;
    };
    let len = usize::from(u16::from_le_bytes([*lo, *hi])).min(rest.len());
    let (request, calls) = rest.split_at(len);
    let request = Bytes::copy_from_slice(request);
    let mut u = Unstructured::new(calls);
    match signal(*pick) {
        s @ Signal::Traces => run::<TracesKind>(s, request, &mut u),
        s @ Signal::Metrics => run::<MetricsKind>(s, request, &mut u),
        s @ Signal::Logs => run::<LogsKind>(s, request, &mut u),
    }
});
