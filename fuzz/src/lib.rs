//! Helpers shared by the fuzz targets: the relations the targets assert between wasmcol's
//! own checks and what prost decodes.

use prost::Message;
use wasmcol_pdata::proto::metrics::v1::metric::Data;
use wasmcol_pdata::{
    Batch, ExportLogsServiceRequest, ExportMetricsServiceRequest, ExportTraceServiceRequest,
    OtlpRequest, Signal,
};

/// The three signals, picked by a byte.
pub fn signal(b: u8) -> Signal {
    Signal::ALL[usize::from(b) % 3]
}

fn bad(id: &[u8], len: usize) -> bool {
    !id.is_empty() && id.len() != len
}

/// Whether a decoded traces request holds a trace or span id of the wrong length.
pub fn traces_bad_id(m: &ExportTraceServiceRequest) -> bool {
    m.resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .any(|s| {
            bad(&s.trace_id, 16)
                || bad(&s.span_id, 8)
                || bad(&s.parent_span_id, 8)
                || s.links
                    .iter()
                    .any(|l| bad(&l.trace_id, 16) || bad(&l.span_id, 8))
        })
}

/// Whether a decoded logs request holds a trace or span id of the wrong length.
pub fn logs_bad_id(m: &ExportLogsServiceRequest) -> bool {
    m.resource_logs
        .iter()
        .flat_map(|r| &r.scope_logs)
        .flat_map(|s| &s.log_records)
        .any(|r| bad(&r.trace_id, 16) || bad(&r.span_id, 8))
}

/// Whether a decoded metrics request holds an exemplar id of the wrong length.
pub fn metrics_bad_id(m: &ExportMetricsServiceRequest) -> bool {
    m.resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .any(|m| {
            let ex: Vec<_> = match &m.data {
                Some(Data::Gauge(g)) => g.data_points.iter().flat_map(|p| &p.exemplars).collect(),
                Some(Data::Sum(s)) => s.data_points.iter().flat_map(|p| &p.exemplars).collect(),
                Some(Data::Histogram(h)) => {
                    h.data_points.iter().flat_map(|p| &p.exemplars).collect()
                }
                Some(Data::ExponentialHistogram(h)) => {
                    h.data_points.iter().flat_map(|p| &p.exemplars).collect()
                }
                Some(Data::Summary(_)) | None => Vec::new(),
            };
            ex.iter()
                .any(|e| bad(&e.trace_id, 16) || bad(&e.span_id, 8))
        })
}

/// A metrics request read with every `Metric.data` variant kept: prost's `oneof` keeps only
/// the last variant of a metric that carries several, where the validating scan counts the
/// points of all of them.
pub mod loose {
    use prost::Message;

    /// `ExportMetricsServiceRequest`, down to the points.
    #[derive(Clone, PartialEq, Message)]
    pub struct Request {
        /// resource_metrics
        #[prost(message, repeated, tag = "1")]
        pub resources: Vec<Resource>,
    }
    /// `ResourceMetrics`
    #[derive(Clone, PartialEq, Message)]
    pub struct Resource {
        /// scope_metrics
        #[prost(message, repeated, tag = "2")]
        pub scopes: Vec<Scope>,
    }
    /// `ScopeMetrics`
    #[derive(Clone, PartialEq, Message)]
    pub struct Scope {
        /// metrics
        #[prost(message, repeated, tag = "2")]
        pub metrics: Vec<Metric>,
    }
    /// `Metric` with each `data` variant as its own repeated field.
    #[derive(Clone, PartialEq, Message)]
    pub struct Metric {
        /// gauge
        #[prost(message, repeated, tag = "5")]
        pub gauge: Vec<Points>,
        /// sum
        #[prost(message, repeated, tag = "7")]
        pub sum: Vec<Points>,
        /// histogram
        #[prost(message, repeated, tag = "9")]
        pub histogram: Vec<Points>,
        /// exponential_histogram
        #[prost(message, repeated, tag = "10")]
        pub exp_histogram: Vec<Points>,
        /// summary
        #[prost(message, repeated, tag = "11")]
        pub summary: Vec<Points>,
    }
    /// Any of the five data messages: points are field 1 in each.
    #[derive(Clone, PartialEq, Message)]
    pub struct Points {
        /// data_points, undecoded
        #[prost(bytes = "vec", repeated, tag = "1")]
        pub points: Vec<Vec<u8>>,
    }

    impl Metric {
        /// How many distinct `data` variants the metric carries.
        pub fn variants(&self) -> usize {
            [
                self.gauge.len(),
                self.sum.len(),
                self.histogram.len(),
                self.exp_histogram.len(),
                self.summary.len(),
            ]
            .iter()
            .filter(|n| **n > 0)
            .count()
        }
        /// Points in every variant.
        pub fn points(&self) -> usize {
            [
                &self.gauge,
                &self.sum,
                &self.histogram,
                &self.exp_histogram,
                &self.summary,
            ]
            .iter()
            .flat_map(|v| v.iter())
            .map(|p| p.points.len())
            .sum()
        }
    }

    /// (points across every variant, whether some metric carries two or more variants),
    /// or `None` if the loose shape does not decode.
    pub fn count(buf: &[u8]) -> Option<(usize, bool)> {
        let r = Request::decode(buf).ok()?;
        let metrics = r
            .resources
            .iter()
            .flat_map(|r| &r.scopes)
            .flat_map(|s| &s.metrics);
        let mut total = 0;
        let mut multi = false;
        for m in metrics {
            total += m.points();
            multi |= m.variants() > 1;
        }
        Some((total, multi))
    }
}

/// Every occurrence of every trace/span id field, where prost keeps only the last occurrence
/// of a singular field (and only the last `data` variant of a metric): the scan checks each
/// occurrence it walks over.
pub mod ids {
    use prost::Message;
    use wasmcol_pdata::Signal;

    /// Request → resources → scopes → items, keeping only what leads to the ids.
    macro_rules! levels {
        ($req:ident, $res:ident, $scope:ident, $item:ty) => {
            /// request: resources in field 1
            #[derive(Clone, PartialEq, Message)]
            pub struct $req {
                /// resources
                #[prost(message, repeated, tag = "1")]
                pub resources: Vec<$res>,
            }
            /// resource: scopes in field 2
            #[derive(Clone, PartialEq, Message)]
            pub struct $res {
                /// scopes
                #[prost(message, repeated, tag = "2")]
                pub scopes: Vec<$scope>,
            }
            /// scope: items in field 2
            #[derive(Clone, PartialEq, Message)]
            pub struct $scope {
                /// items
                #[prost(message, repeated, tag = "2")]
                pub items: Vec<$item>,
            }
            impl $req {
                fn items(buf: &[u8]) -> Option<Vec<$item>> {
                    let req = $req::decode(buf).ok()?;
                    Some(
                        req.resources
                            .into_iter()
                            .flat_map(|r| r.scopes)
                            .flat_map(|s| s.items)
                            .collect(),
                    )
                }
            }
        };
    }
    levels!(TReq, TRes, TScope, Span);
    levels!(LReq, LRes, LScope, Log);
    levels!(MReq, MRes, MScope, Metric);

    /// A span: ids 1, 2, 4 and links 13.
    #[derive(Clone, PartialEq, Message)]
    pub struct Span {
        /// trace_id
        #[prost(bytes = "vec", repeated, tag = "1")]
        pub trace_id: Vec<Vec<u8>>,
        /// span_id
        #[prost(bytes = "vec", repeated, tag = "2")]
        pub span_id: Vec<Vec<u8>>,
        /// parent_span_id
        #[prost(bytes = "vec", repeated, tag = "4")]
        pub parent: Vec<Vec<u8>>,
        /// links
        #[prost(message, repeated, tag = "13")]
        pub links: Vec<Link>,
    }
    /// A span link: ids 1 and 2.
    #[derive(Clone, PartialEq, Message)]
    pub struct Link {
        /// trace_id
        #[prost(bytes = "vec", repeated, tag = "1")]
        pub trace_id: Vec<Vec<u8>>,
        /// span_id
        #[prost(bytes = "vec", repeated, tag = "2")]
        pub span_id: Vec<Vec<u8>>,
    }
    /// A log record: ids 9 and 10.
    #[derive(Clone, PartialEq, Message)]
    pub struct Log {
        /// trace_id
        #[prost(bytes = "vec", repeated, tag = "9")]
        pub trace_id: Vec<Vec<u8>>,
        /// span_id
        #[prost(bytes = "vec", repeated, tag = "10")]
        pub span_id: Vec<Vec<u8>>,
    }
    /// A metric with every data variant that has exemplars.
    #[derive(Clone, PartialEq, Message)]
    pub struct Metric {
        /// gauge
        #[prost(message, repeated, tag = "5")]
        pub gauge: Vec<Points>,
        /// sum
        #[prost(message, repeated, tag = "7")]
        pub sum: Vec<Points>,
        /// histogram
        #[prost(message, repeated, tag = "9")]
        pub histogram: Vec<Points>,
        /// exponential histogram
        #[prost(message, repeated, tag = "10")]
        pub exp: Vec<Points>,
    }
    /// A data message: points in field 1.
    #[derive(Clone, PartialEq, Message)]
    pub struct Points {
        /// data_points
        #[prost(bytes = "vec", repeated, tag = "1")]
        pub points: Vec<Vec<u8>>,
    }
    /// An exemplar: span id 4, trace id 5.
    #[derive(Clone, PartialEq, Message)]
    pub struct Exemplar {
        /// span_id
        #[prost(bytes = "vec", repeated, tag = "4")]
        pub span_id: Vec<Vec<u8>>,
        /// trace_id
        #[prost(bytes = "vec", repeated, tag = "5")]
        pub trace_id: Vec<Vec<u8>>,
    }
    /// The exemplars (field `e`) of one encoded data point.
    #[derive(Clone, PartialEq, Message)]
    struct Ex5 {
        #[prost(message, repeated, tag = "5")]
        ex: Vec<Exemplar>,
    }
    #[derive(Clone, PartialEq, Message)]
    struct Ex8 {
        #[prost(message, repeated, tag = "8")]
        ex: Vec<Exemplar>,
    }
    #[derive(Clone, PartialEq, Message)]
    struct Ex11 {
        #[prost(message, repeated, tag = "11")]
        ex: Vec<Exemplar>,
    }

    fn bad(ids: &[Vec<u8>], len: usize) -> bool {
        ids.iter().any(|id| !id.is_empty() && id.len() != len)
    }

    fn exemplars(points: &[Vec<u8>], field: u32) -> Vec<Exemplar> {
        points
            .iter()
            .flat_map(|p| match field {
                5 => Ex5::decode(p.as_slice()).map(|e| e.ex).unwrap_or_default(),
                8 => Ex8::decode(p.as_slice()).map(|e| e.ex).unwrap_or_default(),
                _ => Ex11::decode(p.as_slice()).map(|e| e.ex).unwrap_or_default(),
            })
            .collect()
    }

    /// Whether any occurrence of an id field in `buf`, read as `signal`'s request, has the
    /// wrong length.
    pub fn any_bad(signal: Signal, buf: &[u8]) -> bool {
        match signal {
            Signal::Traces => TReq::items(buf).is_some_and(|spans| {
                spans.iter().any(|s| {
                    bad(&s.trace_id, 16)
                        || bad(&s.span_id, 8)
                        || bad(&s.parent, 8)
                        || s.links
                            .iter()
                            .any(|l| bad(&l.trace_id, 16) || bad(&l.span_id, 8))
                })
            }),
            Signal::Logs => LReq::items(buf).is_some_and(|logs| {
                logs.iter()
                    .any(|l| bad(&l.trace_id, 16) || bad(&l.span_id, 8))
            }),
            Signal::Metrics => MReq::items(buf).is_some_and(|metrics| {
                metrics.iter().any(|m| {
                    let mut ex = Vec::new();
                    for p in m.gauge.iter().chain(&m.sum) {
                        ex.extend(exemplars(&p.points, 5));
                    }
                    for p in &m.histogram {
                        ex.extend(exemplars(&p.points, 8));
                    }
                    for p in &m.exp {
                        ex.extend(exemplars(&p.points, 11));
                    }
                    ex.iter()
                        .any(|e| bad(&e.trace_id, 16) || bad(&e.span_id, 8))
                })
            }),
        }
    }
}

/// The canonical protobuf of `signal`'s request in `buf` (prost's decode and encode), or
/// `None` if prost refuses it.
pub fn canonical(signal: Signal, buf: &[u8]) -> Option<Vec<u8>> {
    match signal {
        Signal::Traces => ExportTraceServiceRequest::decode(buf)
            .ok()
            .map(|m| m.encode_to_vec()),
        Signal::Metrics => ExportMetricsServiceRequest::decode(buf)
            .ok()
            .map(|m| m.encode_to_vec()),
        Signal::Logs => ExportLogsServiceRequest::decode(buf)
            .ok()
            .map(|m| m.encode_to_vec()),
    }
}

/// The item count prost sees in `buf` as `signal`'s request, or `None` if prost refuses it,
/// with whether the decoded request holds an id of the wrong length.
pub fn prost_count(signal: Signal, buf: &[u8]) -> Option<(usize, bool)> {
    match signal {
        Signal::Traces => ExportTraceServiceRequest::decode(buf)
            .ok()
            .map(|m| (m.count_items(), traces_bad_id(&m))),
        Signal::Metrics => ExportMetricsServiceRequest::decode(buf)
            .ok()
            .map(|m| (m.count_items(), metrics_bad_id(&m))),
        Signal::Logs => ExportLogsServiceRequest::decode(buf)
            .ok()
            .map(|m| (m.count_items(), logs_bad_id(&m))),
    }
}

/// Asserts that `bytes` is a request of `signal` the receiver accepts, holding `items` items.
pub fn assert_valid(signal: Signal, bytes: bytes::Bytes, items: usize) {
    match Batch::from_encoded(signal, bytes.clone()) {
        Ok(b) => assert_eq!(b.item_count(), items, "item count of re-encoded request"),
        Err(e) => panic!("re-encoded {signal} request refused by the scan: {e}; {bytes:?}"),
    }
}
