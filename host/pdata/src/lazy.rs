//! A partially decoded export request: resources are decoded, each scope (with its spans,
//! metrics or log records) stays as its raw protobuf bytes until something touches it.
//!
//! A processor that edits only resource attributes (the region tag) pays for a shallow parse
//! of the resource level and a re-encode that copies the untouched scope bytes; spans are
//! never decoded. The bytes come from a batch the receiver already validated, so the
//! re-encoded request is valid too and its item count is carried along rather than rescanned.

use bytes::{BufMut, Bytes, BytesMut};
use prost::Message;
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint, key_len};

use crate::proto::logs::v1::{ResourceLogs, ScopeLogs};
use crate::proto::metrics::v1::{ResourceMetrics, ScopeMetrics};
use crate::proto::resource::v1::Resource;
use crate::proto::trace::v1::{ResourceSpans, ScopeSpans};
use crate::{
    DecodeError, ExportLogsServiceRequest, ExportMetricsServiceRequest, ExportTraceServiceRequest,
    OtlpRequest, Payload, metric_points,
};

/// The request's shape for one signal: how it splits into resources and scopes.
pub trait LazyKind {
    /// The export request.
    type Request: OtlpRequest;
    /// The per-scope message (`ScopeSpans`, `ScopeMetrics`, `ScopeLogs`).
    type Scope: Message + Default + Clone + PartialEq;
    /// Splits a decoded request into (resource, scopes, schema url) triples.
    fn into_parts(req: Self::Request) -> Vec<(Option<Resource>, Vec<Self::Scope>, String)>;
    /// Joins triples back into a request.
    fn from_parts(parts: Vec<(Option<Resource>, Vec<Self::Scope>, String)>) -> Self::Request;
    /// Items (spans, points, records) in one scope.
    fn scope_items(scope: &Self::Scope) -> usize;
}

/// Spans.
pub struct TracesKind;
/// Metric data points.
pub struct MetricsKind;
/// Log records.
pub struct LogsKind;

impl LazyKind for TracesKind {
    type Request = ExportTraceServiceRequest;
    type Scope = ScopeSpans;
    fn into_parts(req: Self::Request) -> Vec<(Option<Resource>, Vec<ScopeSpans>, String)> {
        req.resource_spans
            .into_iter()
            .map(|r| (r.resource, r.scope_spans, r.schema_url))
            .collect()
    }
    fn from_parts(parts: Vec<(Option<Resource>, Vec<ScopeSpans>, String)>) -> Self::Request {
        ExportTraceServiceRequest {
            resource_spans: parts
                .into_iter()
                .map(|(resource, scope_spans, schema_url)| ResourceSpans {
                    resource,
                    scope_spans,
                    schema_url,
                })
                .collect(),
        }
    }
    fn scope_items(scope: &ScopeSpans) -> usize {
        scope.spans.len()
    }
}

impl LazyKind for MetricsKind {
    type Request = ExportMetricsServiceRequest;
    type Scope = ScopeMetrics;
    fn into_parts(req: Self::Request) -> Vec<(Option<Resource>, Vec<ScopeMetrics>, String)> {
        req.resource_metrics
            .into_iter()
            .map(|r| (r.resource, r.scope_metrics, r.schema_url))
            .collect()
    }
    fn from_parts(parts: Vec<(Option<Resource>, Vec<ScopeMetrics>, String)>) -> Self::Request {
        ExportMetricsServiceRequest {
            resource_metrics: parts
                .into_iter()
                .map(|(resource, scope_metrics, schema_url)| ResourceMetrics {
                    resource,
                    scope_metrics,
                    schema_url,
                })
                .collect(),
        }
    }
    fn scope_items(scope: &ScopeMetrics) -> usize {
        scope.metrics.iter().map(metric_points).sum()
    }
}

impl LazyKind for LogsKind {
    type Request = ExportLogsServiceRequest;
    type Scope = ScopeLogs;
    fn into_parts(req: Self::Request) -> Vec<(Option<Resource>, Vec<ScopeLogs>, String)> {
        req.resource_logs
            .into_iter()
            .map(|r| (r.resource, r.scope_logs, r.schema_url))
            .collect()
    }
    fn from_parts(parts: Vec<(Option<Resource>, Vec<ScopeLogs>, String)>) -> Self::Request {
        ExportLogsServiceRequest {
            resource_logs: parts
                .into_iter()
                .map(|(resource, scope_logs, schema_url)| ResourceLogs {
                    resource,
                    scope_logs,
                    schema_url,
                })
                .collect(),
        }
    }
    fn scope_items(scope: &ScopeLogs) -> usize {
        scope.log_records.len()
    }
}

/// The resource level of any signal's request, with scopes left as bytes. The three
/// `Resource*` messages share field numbers (resource 1, scopes 2, schema url 3).
#[derive(Clone, PartialEq, Message)]
struct ShallowResource {
    #[prost(message, optional, tag = "1")]
    resource: Option<Resource>,
    #[prost(bytes = "bytes", repeated, tag = "2")]
    scopes: Vec<Bytes>,
    #[prost(string, tag = "3")]
    schema_url: String,
}

#[derive(Clone, PartialEq, Message)]
struct ShallowRequest {
    #[prost(message, repeated, tag = "1")]
    resources: Vec<ShallowResource>,
}

/// One scope: raw bytes until decoded.
#[derive(Clone, Debug)]
pub enum Slot<S> {
    /// The scope's protobuf encoding, untouched.
    Raw(Bytes),
    /// The decoded scope.
    Decoded(S),
}

/// One resource with its scopes.
#[derive(Clone, Debug)]
pub struct LazyResource<S> {
    /// The resource (decoded).
    pub resource: Option<Resource>,
    /// Its scopes.
    pub scopes: Vec<Slot<S>>,
    /// Schema URL.
    pub schema_url: String,
}

/// A request with lazily decoded scopes.
pub struct LazyRequest<K: LazyKind> {
    /// The resources, in order.
    pub resources: Vec<LazyResource<K::Scope>>,
    /// Items held in scopes that are still raw.
    raw_items: usize,
}

impl<K: LazyKind> LazyRequest<K> {
    /// Parses the resource level of validated request bytes holding `items` items; scope
    /// bytes are shared with `bytes`, not copied.
    pub fn from_encoded(bytes: Bytes, items: usize) -> Result<Self, DecodeError> {
        let shallow = ShallowRequest::decode(bytes)?;
        Ok(LazyRequest {
            resources: shallow
                .resources
                .into_iter()
                .map(|r| LazyResource {
                    resource: r.resource,
                    scopes: r.scopes.into_iter().map(Slot::Raw).collect(),
                    schema_url: r.schema_url,
                })
                .collect(),
            raw_items: items,
        })
    }

    /// Wraps a decoded request.
    pub fn from_message(req: K::Request) -> Self {
        LazyRequest {
            resources: K::into_parts(req)
                .into_iter()
                .map(|(resource, scopes, schema_url)| LazyResource {
                    resource,
                    scopes: scopes.into_iter().map(Slot::Decoded).collect(),
                    schema_url,
                })
                .collect(),
            raw_items: 0,
        }
    }

    /// Takes a batch: encoded batches are parsed shallowly, decoded ones are moved (copied
    /// only when shared).
    pub fn from_payload(p: Payload<K::Request>) -> Result<Self, DecodeError> {
        if p.is_encoded() {
            let items = p.item_count();
            Self::from_encoded(p.encoded(), items)
        } else {
            Ok(Self::from_message(p.into_message()?))
        }
    }

    /// Decodes scope `s` of resource `r` if needed; `None` when out of range.
    pub fn scope_mut(&mut self, r: usize, s: usize) -> Result<Option<&mut K::Scope>, DecodeError> {
        let Some(slot) = self.resources.get_mut(r).and_then(|r| r.scopes.get_mut(s)) else {
            return Ok(None);
        };
        if let Slot::Raw(bytes) = slot {
            let decoded = K::Scope::decode(bytes.clone())?;
            self.raw_items = self.raw_items.saturating_sub(K::scope_items(&decoded));
            *slot = Slot::Decoded(decoded);
        }
        match slot {
            Slot::Decoded(s) => Ok(Some(s)),
            Slot::Raw(_) => Ok(None),
        }
    }

    /// Decodes every scope.
    pub fn decode_all(&mut self) -> Result<(), DecodeError> {
        for r in 0..self.resources.len() {
            for s in 0..self.resources[r].scopes.len() {
                self.scope_mut(r, s)?;
            }
        }
        Ok(())
    }

    /// Whether any scope is still raw.
    pub fn has_raw(&self) -> bool {
        self.resources
            .iter()
            .any(|r| r.scopes.iter().any(|s| matches!(s, Slot::Raw(_))))
    }

    /// Items in the request.
    pub fn item_count(&self) -> usize {
        self.raw_items
            + self
                .resources
                .iter()
                .flat_map(|r| &r.scopes)
                .map(|s| match s {
                    Slot::Decoded(s) => K::scope_items(s),
                    Slot::Raw(_) => 0,
                })
                .sum::<usize>()
    }

    /// The protobuf encoding; raw scopes are copied as they are.
    pub fn encode(&self) -> Bytes {
        let mut lens = Vec::with_capacity(self.resources.len());
        let mut total = 0usize;
        for r in &self.resources {
            let len = resource_len(r);
            total += key_len(1) + encoded_len_varint(len as u64) + len;
            lens.push(len);
        }
        let mut buf = BytesMut::with_capacity(total);
        for (r, len) in self.resources.iter().zip(lens) {
            encode_key(1, WireType::LengthDelimited, &mut buf);
            encode_varint(len as u64, &mut buf);
            if let Some(res) = &r.resource {
                prost::encoding::message::encode(1, res, &mut buf);
            }
            for s in &r.scopes {
                match s {
                    Slot::Raw(b) => {
                        encode_key(2, WireType::LengthDelimited, &mut buf);
                        encode_varint(b.len() as u64, &mut buf);
                        buf.put_slice(b);
                    }
                    Slot::Decoded(m) => prost::encoding::message::encode(2, m, &mut buf),
                }
            }
            if !r.schema_url.is_empty() {
                prost::encoding::string::encode(3, &r.schema_url, &mut buf);
            }
        }
        buf.freeze()
    }

    /// The fully decoded request.
    pub fn into_message(mut self) -> Result<K::Request, DecodeError> {
        self.decode_all()?;
        Ok(K::from_parts(
            self.resources
                .into_iter()
                .map(|r| {
                    let scopes = r
                        .scopes
                        .into_iter()
                        .filter_map(|s| match s {
                            Slot::Decoded(s) => Some(s),
                            Slot::Raw(_) => None,
                        })
                        .collect();
                    (r.resource, scopes, r.schema_url)
                })
                .collect(),
        ))
    }

    /// Back to a batch: encoded when scopes are still raw (nothing was decoded for nothing),
    /// decoded otherwise (the exporter encodes once).
    pub fn into_payload(self) -> Result<Payload<K::Request>, DecodeError> {
        if self.has_raw() {
            let items = self.item_count();
            Ok(Payload::from_validated(self.encode(), items))
        } else {
            Ok(Payload::from_message(self.into_message()?))
        }
    }
}

fn resource_len<S: Message>(r: &LazyResource<S>) -> usize {
    let mut len = 0;
    if let Some(res) = &r.resource {
        len += prost::encoding::message::encoded_len(1, res);
    }
    for s in &r.scopes {
        len += match s {
            Slot::Raw(b) => key_len(2) + encoded_len_varint(b.len() as u64) + b.len(),
            Slot::Decoded(m) => prost::encoding::message::encoded_len(2, m),
        };
    }
    if !r.schema_url.is_empty() {
        len += prost::encoding::string::encoded_len(3, &r.schema_url);
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TracesBatch;
    use crate::proto::common::v1::{AnyValue, KeyValue, any_value};
    use crate::proto::trace::v1::Span;

    fn kv(k: &str, v: &str) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(v.into())),
            }),
            ..Default::default()
        }
    }

    fn request() -> ExportTraceServiceRequest {
        let spans = |n| {
            (0..n)
                .map(|i| Span {
                    name: format!("s{i}"),
                    attributes: vec![kv("a", "b")],
                    ..Default::default()
                })
                .collect()
        };
        ExportTraceServiceRequest {
            resource_spans: vec![
                ResourceSpans {
                    resource: Some(Resource {
                        attributes: vec![kv("service.name", "x")],
                        ..Default::default()
                    }),
                    scope_spans: vec![
                        ScopeSpans {
                            spans: spans(3),
                            ..Default::default()
                        },
                        ScopeSpans {
                            spans: spans(2),
                            schema_url: "u".into(),
                            ..Default::default()
                        },
                    ],
                    schema_url: "https://schema".into(),
                },
                ResourceSpans {
                    resource: None,
                    scope_spans: vec![ScopeSpans {
                        spans: spans(1),
                        ..Default::default()
                    }],
                    schema_url: String::new(),
                },
            ],
        }
    }

    #[test]
    fn untouched_round_trip_is_byte_identical() {
        let bytes = Bytes::from(request().encode_to_vec());
        let batch = TracesBatch::from_encoded(bytes.clone()).unwrap();
        let lazy = LazyRequest::<TracesKind>::from_payload(batch).unwrap();
        assert!(lazy.has_raw());
        assert_eq!(lazy.item_count(), 6);
        assert_eq!(lazy.encode(), bytes);
    }

    #[test]
    fn resource_edit_keeps_scopes_raw() {
        let bytes = Bytes::from(request().encode_to_vec());
        let mut lazy = LazyRequest::<TracesKind>::from_encoded(bytes, 6).unwrap();
        lazy.resources[0]
            .resource
            .as_mut()
            .unwrap()
            .attributes
            .push(kv("deployment.region", "eu"));
        let out = lazy.into_payload().unwrap();
        assert!(out.is_encoded());
        assert_eq!(out.item_count(), 6);
        let mut want = request();
        want.resource_spans[0]
            .resource
            .as_mut()
            .unwrap()
            .attributes
            .push(kv("deployment.region", "eu"));
        assert_eq!(out.to_message().unwrap(), want);
        // The bytes are a valid request by the receiver's own check.
        assert_eq!(
            TracesBatch::from_encoded(out.encoded())
                .unwrap()
                .item_count(),
            6
        );
    }

    #[test]
    fn scope_edit_decodes_only_that_scope_and_counts_follow() {
        let bytes = Bytes::from(request().encode_to_vec());
        let mut lazy = LazyRequest::<TracesKind>::from_encoded(bytes, 6).unwrap();
        lazy.scope_mut(0, 1).unwrap().unwrap().spans.pop();
        assert!(matches!(lazy.resources[0].scopes[0], Slot::Raw(_)));
        assert_eq!(lazy.item_count(), 5);
        let out = lazy.into_payload().unwrap();
        let mut want = request();
        want.resource_spans[0].scope_spans[1].spans.pop();
        assert_eq!(out.to_message().unwrap(), want);
        assert_eq!(out.item_count(), 5);
    }

    #[test]
    fn decoded_input_stays_decoded() {
        let lazy =
            LazyRequest::<TracesKind>::from_payload(TracesBatch::from_message(request())).unwrap();
        assert!(!lazy.has_raw());
        let out = lazy.into_payload().unwrap();
        assert!(!out.is_encoded());
        assert_eq!(out.to_message().unwrap(), request());
    }
}
