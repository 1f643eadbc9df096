//! Splitting a request into one request per backend, by routing key. Each part keeps its
//! spans' resource and scope, so a backend receives exactly what upstream's exporter
//! would send it.

use std::collections::{BTreeMap, HashMap};

use prost::Message;
use wasmcol_pdata::proto::common::v1::any_value::Value as AnyValue;
use wasmcol_pdata::proto::common::v1::{InstrumentationScope, KeyValue};
use wasmcol_pdata::proto::logs::v1::{ResourceLogs, ScopeLogs};
use wasmcol_pdata::proto::metrics::v1::metric::Data;
use wasmcol_pdata::proto::metrics::v1::{Metric, ResourceMetrics, ScopeMetrics};
use wasmcol_pdata::proto::resource::v1::Resource;
use wasmcol_pdata::proto::trace::v1::{ResourceSpans, ScopeSpans, Span};
use wasmcol_pdata::{
    Batch, DecodeError, ExportLogsServiceRequest, ExportMetricsServiceRequest,
    ExportTraceServiceRequest,
};

use crate::{Ring, RoutingKey, attribute_key};

/// Why a request could not be routed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// The ring has no backend (no resolution has succeeded yet).
    #[error("no backends available")]
    NoBackends,
    /// `routing_key: service` and a resource without a string `service.name`.
    #[error("unable to get service name")]
    NoServiceName,
    /// A routing key this signal's splitter does not handle yet.
    #[error("routing_key {0:?} is not supported for this signal yet")]
    Unsupported(RoutingKey),
}

/// Splits `req` into one request per backend of `ring`, keyed by backend name.
pub fn split_traces(
    req: ExportTraceServiceRequest,
    key: &RoutingKey,
    ring: &Ring,
) -> Result<BTreeMap<String, ExportTraceServiceRequest>, RouteError> {
    if ring.is_empty() {
        return Err(RouteError::NoBackends);
    }
    let mut out: BTreeMap<String, ExportTraceServiceRequest> = BTreeMap::new();
    for rs in req.resource_spans {
        match key {
            RoutingKey::Service => {
                let name = service_name(rs.resource.as_ref()).ok_or(RouteError::NoServiceName)?;
                let backend = ring
                    .endpoint_for(name.as_bytes())
                    .ok_or(RouteError::NoBackends)?;
                out.entry(backend.to_owned())
                    .or_default()
                    .resource_spans
                    .push(rs);
            }
            RoutingKey::TraceId => split_spans(rs, &mut out, |_, _, _, span| {
                ring.endpoint_for(&span.trace_id)
                    .ok_or(RouteError::NoBackends)
            })?,
            RoutingKey::Attributes(names) => {
                // Upstream keys each trace of each resource and scope by its first span.
                let mut routed: HashMap<(usize, Vec<u8>), &str> = HashMap::new();
                split_spans(rs, &mut out, |resource, index, scope, span| {
                    if let Some(backend) = routed.get(&(index, span.trace_id.clone())) {
                        return Ok(*backend);
                    }
                    let key = attribute_key::span_key(names, resource, scope, span);
                    let backend = ring
                        .endpoint_for(key.as_bytes())
                        .ok_or(RouteError::NoBackends)?;
                    routed.insert((index, span.trace_id.clone()), backend);
                    Ok(backend)
                })?
            }
            other => return Err(RouteError::Unsupported(other.clone())),
        }
    }
    Ok(out)
}

/// Moves each span of `rs` to the backend `backend_for` names (given the resource, the
/// scope's index and the scope), under a copy of its resource and scope (one per backend,
/// not one per span).
fn split_spans<'r>(
    rs: ResourceSpans,
    out: &mut BTreeMap<String, ExportTraceServiceRequest>,
    mut backend_for: impl FnMut(
        Option<&Resource>,
        usize,
        Option<&InstrumentationScope>,
        &Span,
    ) -> Result<&'r str, RouteError>,
) -> Result<(), RouteError> {
    let ResourceSpans {
        resource,
        scope_spans,
        schema_url,
    } = rs;
    // backend → (scope index → scope spans), so each backend gets one ResourceSpans.
    let mut parts: BTreeMap<&'r str, BTreeMap<usize, ScopeSpans>> = BTreeMap::new();
    for (index, ss) in scope_spans.into_iter().enumerate() {
        let ScopeSpans {
            scope,
            spans,
            schema_url: scope_schema,
        } = ss;
        for span in spans {
            let backend = backend_for(resource.as_ref(), index, scope.as_ref(), &span)?;
            parts
                .entry(backend)
                .or_default()
                .entry(index)
                .or_insert_with(|| ScopeSpans {
                    scope: scope.clone(),
                    spans: Vec::new(),
                    schema_url: scope_schema.clone(),
                })
                .spans
                .push(span);
        }
    }
    for (backend, scopes) in parts {
        out.entry(backend.to_owned())
            .or_default()
            .resource_spans
            .push(ResourceSpans {
                resource: resource.clone(),
                scope_spans: scopes.into_values().collect(),
                schema_url: schema_url.clone(),
            });
    }
    Ok(())
}

/// The `traceID` split of a batch still in its wire form, without decoding it: each span or
/// log record is routed by its trace id (span field 1, log record field 9; a log record
/// without one goes to a random backend, as in [`split_logs`]) and copied as bytes under
/// copies of its resource and scope. The parts are exactly those of [`split_traces`] /
/// [`split_logs`] and keep the batch's request context. `None` for a decoded batch, metrics
/// or an empty ring.
pub fn split_encoded_by_trace(
    batch: &Batch,
    ring: &Ring,
) -> Result<Option<Vec<(String, Batch)>>, DecodeError> {
    let backends = ring.endpoints();
    if backends.is_empty() {
        return Ok(None);
    }
    let by_trace = |id: &[u8]| ring.index_for(id).unwrap_or(0);
    let named = |parts: Vec<Option<Batch>>| {
        parts
            .into_iter()
            .zip(backends)
            .filter_map(|(p, name)| Some((name.clone(), p?)))
            .collect()
    };
    Ok(match batch {
        Batch::Traces(t) => t
            .partition_by_field(backends.len(), 1, by_trace)?
            .map(|p| named(p.into_iter().map(|p| p.map(Batch::Traces)).collect())),
        Batch::Logs(l) => l
            .partition_by_field(backends.len(), 9, |id| {
                if id.iter().all(|&b| b == 0) {
                    by_trace(&rand::random::<[u8; 16]>())
                } else {
                    by_trace(id)
                }
            })?
            .map(|p| named(p.into_iter().map(|p| p.map(Batch::Logs)).collect())),
        Batch::Metrics(_) => None,
    })
}

/// Splits `req` into one request per backend of `ring`. By `traceID`, each log record goes
/// to its trace's backend, and a record without a trace id to a random one (as upstream:
/// not every log belongs to a trace); by `service`, each resource goes whole; by
/// `attributes`, as [`split_logs_by_attributes`] describes.
pub fn split_logs(
    req: ExportLogsServiceRequest,
    key: &RoutingKey,
    ring: &Ring,
) -> Result<BTreeMap<String, ExportLogsServiceRequest>, RouteError> {
    if ring.is_empty() {
        return Err(RouteError::NoBackends);
    }
    let mut out: BTreeMap<String, ExportLogsServiceRequest> = BTreeMap::new();
    for rl in req.resource_logs {
        match key {
            RoutingKey::Service => {
                let name = service_name(rl.resource.as_ref()).ok_or(RouteError::NoServiceName)?;
                let backend = ring
                    .endpoint_for(name.as_bytes())
                    .ok_or(RouteError::NoBackends)?;
                out.entry(backend.to_owned())
                    .or_default()
                    .resource_logs
                    .push(rl);
            }
            RoutingKey::TraceId => split_logs_by_trace(rl, ring, &mut out)?,
            RoutingKey::Attributes(names) => split_logs_by_attributes(rl, names, ring, &mut out)?,
            other => return Err(RouteError::Unsupported(other.clone())),
        }
    }
    Ok(out)
}

/// Moves each log record of `rl` to its trace's backend, under one copy of its resource and
/// scope per backend.
fn split_logs_by_trace(
    rl: ResourceLogs,
    ring: &Ring,
    out: &mut BTreeMap<String, ExportLogsServiceRequest>,
) -> Result<(), RouteError> {
    let ResourceLogs {
        resource,
        scope_logs,
        schema_url,
    } = rl;
    let mut parts: BTreeMap<&str, BTreeMap<usize, ScopeLogs>> = BTreeMap::new();
    for (index, sl) in scope_logs.into_iter().enumerate() {
        let ScopeLogs {
            scope,
            log_records,
            schema_url: scope_schema,
        } = sl;
        for record in log_records {
            let backend = if record.trace_id.iter().all(|&b| b == 0) {
                ring.endpoint_for(&rand::random::<[u8; 16]>())
            } else {
                ring.endpoint_for(&record.trace_id)
            }
            .ok_or(RouteError::NoBackends)?;
            parts
                .entry(backend)
                .or_default()
                .entry(index)
                .or_insert_with(|| ScopeLogs {
                    scope: scope.clone(),
                    log_records: Vec::new(),
                    schema_url: scope_schema.clone(),
                })
                .log_records
                .push(record);
        }
    }
    emit_logs(parts, resource, schema_url, out);
    Ok(())
}

/// Puts each backend's scopes of one resource under one copy of that resource.
fn emit_logs(
    parts: BTreeMap<&str, BTreeMap<usize, ScopeLogs>>,
    resource: Option<Resource>,
    schema_url: String,
    out: &mut BTreeMap<String, ExportLogsServiceRequest>,
) {
    for (backend, scopes) in parts {
        out.entry(backend.to_owned())
            .or_default()
            .resource_logs
            .push(ResourceLogs {
                resource: resource.clone(),
                scope_logs: scopes.into_values().collect(),
                schema_url: schema_url.clone(),
            });
    }
}

/// `routing_key: attributes` for logs, as upstream's newest splitter: the names found on
/// the resource make the key `name=value|...` (in configured order); when none is left to
/// find, or the resource has no scopes, the resource goes whole. Otherwise each scope adds
/// the names found on its attributes, and goes whole when none is left. Otherwise each
/// record completes its key with the names still pending (`log.severity`, `log.body`, the
/// record's attributes, `name=|` when missing), and goes under copies of its resource and
/// scope (one per backend).
fn split_logs_by_attributes(
    rl: ResourceLogs,
    names: &[String],
    ring: &Ring,
    out: &mut BTreeMap<String, ExportLogsServiceRequest>,
) -> Result<(), RouteError> {
    let backend_of = |key: &str| {
        ring.endpoint_for(key.as_bytes())
            .ok_or(RouteError::NoBackends)
    };
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut base = String::new();
    let pending = attribute_key::take_found(
        &names,
        rl.resource.as_ref().map_or(&[][..], |r| &r.attributes[..]),
        &mut base,
    );
    if pending.is_empty() || rl.scope_logs.is_empty() {
        out.entry(backend_of(&base)?.to_owned())
            .or_default()
            .resource_logs
            .push(rl);
        return Ok(());
    }
    let ResourceLogs {
        resource,
        scope_logs,
        schema_url,
    } = rl;
    let mut parts: BTreeMap<&str, BTreeMap<usize, ScopeLogs>> = BTreeMap::new();
    for (index, sl) in scope_logs.into_iter().enumerate() {
        let mut scope_key = base.clone();
        let still = attribute_key::take_found(
            &pending,
            sl.scope.as_ref().map_or(&[][..], |s| &s.attributes[..]),
            &mut scope_key,
        );
        if still.is_empty() {
            parts
                .entry(backend_of(&scope_key)?)
                .or_default()
                .insert(index, sl);
            continue;
        }
        let ScopeLogs {
            scope,
            log_records,
            schema_url: scope_schema,
        } = sl;
        for record in log_records {
            let mut key = scope_key.clone();
            attribute_key::push_record_key(&still, &record, &mut key);
            parts
                .entry(backend_of(&key)?)
                .or_default()
                .entry(index)
                .or_insert_with(|| ScopeLogs {
                    scope: scope.clone(),
                    log_records: Vec::new(),
                    schema_url: scope_schema.clone(),
                })
                .log_records
                .push(record);
        }
    }
    emit_logs(parts, resource, schema_url, out);
    Ok(())
}

/// Splits `req` into one request per backend of `ring`: by `service` or `resource` each
/// resource goes whole; by `metric` each metric goes whole to the backend of its name; by
/// `streamID` each data point goes to the backend of its stream (resource, scope, metric name,
/// unit and type, point attributes), under one copy of its resource, scope and metric per
/// backend.
///
/// By `attributes`, as [`split_metrics_by_attributes`] describes (upstream's key exactly).
///
/// The `resource` and `streamID` keys are wasmcol's own encodings of those identities
/// (sorted attributes, protobuf values): stable across wasmcol instances and restarts, but not
/// the hash upstream uses, so a fleet mixing wasmcol and otelcol load balancers should route
/// metrics by `service` or `metric`, which match upstream exactly.
pub fn split_metrics(
    req: ExportMetricsServiceRequest,
    key: &RoutingKey,
    ring: &Ring,
) -> Result<BTreeMap<String, ExportMetricsServiceRequest>, RouteError> {
    if ring.is_empty() {
        return Err(RouteError::NoBackends);
    }
    let mut out: BTreeMap<String, ExportMetricsServiceRequest> = BTreeMap::new();
    for rm in req.resource_metrics {
        let whole = match key {
            RoutingKey::Service => Some(
                service_name(rm.resource.as_ref())
                    .ok_or(RouteError::NoServiceName)?
                    .as_bytes()
                    .to_vec(),
            ),
            RoutingKey::Resource => Some(resource_key(rm.resource.as_ref())),
            RoutingKey::Metric | RoutingKey::StreamId => None,
            RoutingKey::Attributes(names) => {
                split_metrics_by_attributes(rm, names, ring, &mut out)?;
                continue;
            }
            other => return Err(RouteError::Unsupported(other.clone())),
        };
        match whole {
            Some(k) => {
                let backend = ring.endpoint_for(&k).ok_or(RouteError::NoBackends)?;
                out.entry(backend.to_owned())
                    .or_default()
                    .resource_metrics
                    .push(rm);
            }
            None => split_resource_metrics(rm, key, ring, &mut out)?,
        }
    }
    Ok(out)
}

/// Moves each metric (or, by `streamID`, each data point) of `rm` to its backend, under one
/// copy of its resource and scope per backend.
fn split_resource_metrics(
    rm: ResourceMetrics,
    key: &RoutingKey,
    ring: &Ring,
    out: &mut BTreeMap<String, ExportMetricsServiceRequest>,
) -> Result<(), RouteError> {
    let ResourceMetrics {
        resource,
        scope_metrics,
        schema_url,
    } = rm;
    let resource_id = resource_key(resource.as_ref());
    let mut parts: BTreeMap<&str, BTreeMap<usize, ScopeMetrics>> = BTreeMap::new();
    for (index, sm) in scope_metrics.into_iter().enumerate() {
        let ScopeMetrics {
            scope,
            metrics,
            schema_url: scope_schema,
        } = sm;
        let mut scope_id = resource_id.clone();
        if let Some(s) = &scope {
            push_field(&mut scope_id, s.name.as_bytes());
            push_field(&mut scope_id, s.version.as_bytes());
        }
        for metric in metrics {
            let pieces = match key {
                RoutingKey::StreamId => split_points(metric, &scope_id, ring)?,
                _ => vec![(
                    ring.endpoint_for(metric.name.as_bytes())
                        .ok_or(RouteError::NoBackends)?,
                    metric,
                )],
            };
            for (backend, piece) in pieces {
                parts
                    .entry(backend)
                    .or_default()
                    .entry(index)
                    .or_insert_with(|| ScopeMetrics {
                        scope: scope.clone(),
                        metrics: Vec::new(),
                        schema_url: scope_schema.clone(),
                    })
                    .metrics
                    .push(piece);
            }
        }
    }
    emit_metrics(parts, resource, schema_url, out);
    Ok(())
}

/// Puts each backend's scopes of one resource under one copy of that resource.
fn emit_metrics(
    parts: BTreeMap<&str, BTreeMap<usize, ScopeMetrics>>,
    resource: Option<Resource>,
    schema_url: String,
    out: &mut BTreeMap<String, ExportMetricsServiceRequest>,
) {
    for (backend, scopes) in parts {
        out.entry(backend.to_owned())
            .or_default()
            .resource_metrics
            .push(ResourceMetrics {
                resource: resource.clone(),
                scope_metrics: scopes.into_values().collect(),
                schema_url: schema_url.clone(),
            });
    }
}

/// `routing_key: attributes` for metrics, replicating upstream's `splitMetricsByAttributes`
/// byte for byte so a fleet mixing wasmcol and otelcol load balancers routes each data point
/// to the same backend. That key is NOT the `name=value|` form of traces and logs: for each
/// name found, only the value's Go `Str()` is appended (empty for a non-string value), with
/// neither the name nor a separator, and a name a data point lacks contributes nothing.
///
/// The descent: the names found on the resource make the key; when none is left, the
/// resource goes whole. Otherwise each scope adds the names found on its attributes and goes
/// whole (under a copy of its resource) when none is left. Otherwise each data point is keyed
/// by the names still pending, in a copy of its metric that keeps upstream's fields only:
/// name, description, unit, and the sum's monotonicity and temporality or the histograms'
/// temporality; `metadata` is not copied, and a metric without data points (or without data)
/// is not sent, as upstream. Points of one metric that go to the same backend share one copy.
fn split_metrics_by_attributes(
    rm: ResourceMetrics,
    names: &[String],
    ring: &Ring,
    out: &mut BTreeMap<String, ExportMetricsServiceRequest>,
) -> Result<(), RouteError> {
    let backend_of = |key: &str| {
        ring.endpoint_for(key.as_bytes())
            .ok_or(RouteError::NoBackends)
    };
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut base = String::new();
    let pending = attribute_key::take_found_str(
        &names,
        rm.resource.as_ref().map_or(&[][..], |r| &r.attributes[..]),
        &mut base,
    );
    if pending.is_empty() {
        out.entry(backend_of(&base)?.to_owned())
            .or_default()
            .resource_metrics
            .push(rm);
        return Ok(());
    }
    let ResourceMetrics {
        resource,
        scope_metrics,
        schema_url,
    } = rm;
    let mut parts: BTreeMap<&str, BTreeMap<usize, ScopeMetrics>> = BTreeMap::new();
    for (index, sm) in scope_metrics.into_iter().enumerate() {
        let mut scope_key = base.clone();
        let still = attribute_key::take_found_str(
            &pending,
            sm.scope.as_ref().map_or(&[][..], |s| &s.attributes[..]),
            &mut scope_key,
        );
        if still.is_empty() {
            parts
                .entry(backend_of(&scope_key)?)
                .or_default()
                .insert(index, sm);
            continue;
        }
        let ScopeMetrics {
            scope,
            metrics,
            schema_url: scope_schema,
        } = sm;
        for metric in metrics {
            let pieces = group_points(metric, false, |_, attributes| {
                let mut key = scope_key.clone();
                attribute_key::push_point_key(&still, attributes, &mut key);
                backend_of(&key)
            })?;
            for (backend, piece) in pieces {
                parts
                    .entry(backend)
                    .or_default()
                    .entry(index)
                    .or_insert_with(|| ScopeMetrics {
                        scope: scope.clone(),
                        metrics: Vec::new(),
                        schema_url: scope_schema.clone(),
                    })
                    .metrics
                    .push(piece);
            }
        }
    }
    emit_metrics(parts, resource, schema_url, out);
    Ok(())
}

/// A metric's data points grouped by the backend of their stream, each group in a copy of
/// the metric (name, unit, type and its settings kept).
fn split_points<'r>(
    metric: Metric,
    scope_id: &[u8],
    ring: &'r Ring,
) -> Result<Vec<(&'r str, Metric)>, RouteError> {
    let mut metric_id = scope_id.to_vec();
    push_field(&mut metric_id, metric.name.as_bytes());
    push_field(&mut metric_id, metric.unit.as_bytes());
    group_points(metric, true, |kind, attributes| {
        let mut id = metric_id.clone();
        id.push(kind);
        push_attributes(&mut id, attributes);
        ring.endpoint_for(&id).ok_or(RouteError::NoBackends)
    })
}

/// A metric's data points grouped by the backend `backend_of` names for each (given the
/// data's protobuf field number and the point's attributes), each group in a copy of the
/// metric with its data settings (temporality, monotonicity). With `whole_shell` the copy
/// keeps `metadata` and a metric without data goes to the backend of no attributes; without
/// it, upstream's attribute split: no `metadata`, and a metric without data is not sent.
fn group_points<'r>(
    metric: Metric,
    whole_shell: bool,
    mut backend_of: impl FnMut(u8, &[KeyValue]) -> Result<&'r str, RouteError>,
) -> Result<Vec<(&'r str, Metric)>, RouteError> {
    let Metric {
        name,
        description,
        unit,
        metadata,
        data,
    } = metric;
    let metadata = if whole_shell { metadata } else { Vec::new() };
    let shell = |data: Option<Data>| Metric {
        name: name.clone(),
        description: description.clone(),
        unit: unit.clone(),
        metadata: metadata.clone(),
        data,
    };
    // Each arm: take the points out, group them by backend, and put each group back into a
    // copy of the metric's data (temporality, monotonicity kept).
    macro_rules! by_point {
        ($variant:ident, $kind:expr, $d:expr) => {{
            let mut d = $d;
            let points = std::mem::take(&mut d.data_points);
            let mut groups: BTreeMap<&'r str, Vec<_>> = BTreeMap::new();
            for p in points {
                groups
                    .entry(backend_of($kind, &p.attributes)?)
                    .or_default()
                    .push(p);
            }
            groups
                .into_iter()
                .map(|(b, pts)| {
                    let mut part = d.clone();
                    part.data_points = pts;
                    (b, shell(Some(Data::$variant(part))))
                })
                .collect()
        }};
    }
    Ok(match data {
        Some(Data::Gauge(d)) => by_point!(Gauge, 5, d),
        Some(Data::Sum(d)) => by_point!(Sum, 7, d),
        Some(Data::Histogram(d)) => by_point!(Histogram, 9, d),
        Some(Data::ExponentialHistogram(d)) => by_point!(ExponentialHistogram, 10, d),
        Some(Data::Summary(d)) => by_point!(Summary, 11, d),
        None if whole_shell => vec![(backend_of(0, &[])?, shell(None))],
        None => Vec::new(),
    })
}

/// The identity of a resource: its attributes sorted by key, each key and protobuf value.
fn resource_key(resource: Option<&Resource>) -> Vec<u8> {
    let mut id = Vec::new();
    push_attributes(&mut id, resource.map_or(&[][..], |r| &r.attributes[..]));
    id
}

/// Appends an attribute set to an identity, sorted by key so order does not matter.
fn push_attributes(id: &mut Vec<u8>, attributes: &[KeyValue]) {
    let mut sorted: Vec<&KeyValue> = attributes.iter().collect();
    sorted.sort_by(|a, b| a.key.cmp(&b.key));
    for kv in sorted {
        push_field(id, kv.key.as_bytes());
        push_field(
            id,
            &kv.value
                .as_ref()
                .map(Message::encode_to_vec)
                .unwrap_or_default(),
        );
    }
}

/// Appends one length-prefixed field, so no two different field lists encode alike.
fn push_field(id: &mut Vec<u8>, field: &[u8]) {
    id.extend_from_slice(&(field.len() as u64).to_le_bytes());
    id.extend_from_slice(field);
}

/// The resource's `service.name` when it is a string.
fn service_name(resource: Option<&Resource>) -> Option<&str> {
    resource?
        .attributes
        .iter()
        .find(|kv| kv.key == "service.name")
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            AnyValue::StringValue(s) => Some(s.as_str()),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmcol_pdata::proto::common::v1::{AnyValue as Any, KeyValue};
    use wasmcol_pdata::proto::trace::v1::Span;

    fn resource(service: &str) -> Option<Resource> {
        Some(Resource {
            attributes: vec![KeyValue {
                key: "service.name".into(),
                value: Some(Any {
                    value: Some(AnyValue::StringValue(service.into())),
                }),
                ..Default::default()
            }],
            ..Default::default()
        })
    }

    fn span(trace: u8, n: u8) -> Span {
        Span {
            trace_id: vec![trace; 16],
            span_id: vec![n; 8],
            name: format!("s{trace}-{n}"),
            ..Default::default()
        }
    }

    /// Two resources, two scopes, spans of 40 traces interleaved.
    fn request() -> ExportTraceServiceRequest {
        let scopes = |r: u8| {
            (0..2u8)
                .map(|s| ScopeSpans {
                    spans: (0..40u8).map(|t| span(t, r * 10 + s)).collect(),
                    ..Default::default()
                })
                .collect()
        };
        ExportTraceServiceRequest {
            resource_spans: vec![
                ResourceSpans {
                    resource: resource("checkout"),
                    scope_spans: scopes(1),
                    ..Default::default()
                },
                ResourceSpans {
                    resource: resource("cart"),
                    scope_spans: scopes(2),
                    ..Default::default()
                },
            ],
        }
    }

    fn spans(req: &ExportTraceServiceRequest) -> Vec<(String, Vec<u8>, String)> {
        let mut v: Vec<_> = req
            .resource_spans
            .iter()
            .flat_map(|rs| {
                let svc = service_name(rs.resource.as_ref())
                    .unwrap_or_default()
                    .to_owned();
                rs.scope_spans.iter().flat_map(move |ss| {
                    let svc = svc.clone();
                    ss.spans
                        .iter()
                        .map(move |s| (svc.clone(), s.trace_id.clone(), s.name.clone()))
                })
            })
            .collect();
        v.sort();
        v
    }

    /// Scenario: 160 spans of 40 traces under two services, split by trace id over three
    /// backends.
    /// Guarantees: nothing is lost or duplicated; each trace's spans are at exactly the
    /// backend the ring names for its id, keeping their service; a backend gets one
    /// ResourceSpans per resource.
    #[test]
    fn trace_id_routing_keeps_each_trace_whole() {
        let ring = Ring::new(["gw-1:4317", "gw-2:4317", "gw-3:4317"]);
        let req = request();
        let all = spans(&req);
        let parts = split_traces(req, &RoutingKey::TraceId, &ring).unwrap();
        assert!(parts.len() > 1, "40 traces all on one backend: {parts:?}");
        let mut joined = Vec::new();
        for (backend, part) in &parts {
            assert!(part.resource_spans.len() <= 2);
            for (_, trace, _) in spans(part) {
                assert_eq!(ring.endpoint_for(&trace), Some(backend.as_str()));
            }
            joined.extend(spans(part));
        }
        joined.sort();
        assert_eq!(joined, all);
    }

    /// Scenario: 100 log records under two services, half with a trace id (of 10 traces)
    /// and half without, split by trace id; then by service.
    /// Guarantees: nothing lost or duplicated; a record with a trace id is at the ring's
    /// backend for it; by service each resource goes whole to its service's backend.
    /// The wire split of an encoded batch gives every backend the request the decoded split
    /// gives it, for spans and for log records with trace ids, and keeps the context.
    #[test]
    fn encoded_split_matches_the_decoded_split() {
        use prost::Message as _;
        use wasmcol_pdata::proto::logs::v1::LogRecord;
        use wasmcol_pdata::{LogsBatch, RequestContext, TracesBatch};
        let ring = Ring::new(["gw-1:4317", "gw-2:4317", "gw-3:4317"]);
        let context = RequestContext::new([("x-tenant", vec!["a".to_owned()])]);
        let req = request();
        let batch = Batch::Traces(
            TracesBatch::from_encoded(req.encode_to_vec().into())
                .unwrap()
                .with_context(context.clone()),
        );
        let wire = split_encoded_by_trace(&batch, &ring).unwrap().unwrap();
        let decoded = split_traces(req, &RoutingKey::TraceId, &ring).unwrap();
        assert_eq!(wire.len(), decoded.len());
        assert!(wire.len() > 1, "the spans spread over several backends");
        for (name, part) in &wire {
            let Batch::Traces(t) = part else {
                panic!("{name}: not traces")
            };
            assert_eq!(&t.to_message().unwrap(), &decoded[name], "{name}");
            assert_eq!(t.context(), &context);
        }
        let logs = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: resource("checkout"),
                scope_logs: vec![ScopeLogs {
                    log_records: (1..60u8)
                        .map(|i| LogRecord {
                            trace_id: vec![i; 16],
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let batch = Batch::Logs(LogsBatch::from_encoded(logs.encode_to_vec().into()).unwrap());
        let wire = split_encoded_by_trace(&batch, &ring).unwrap().unwrap();
        let decoded = split_logs(logs, &RoutingKey::TraceId, &ring).unwrap();
        assert_eq!(wire.len(), decoded.len());
        for (name, part) in &wire {
            let Batch::Logs(l) = part else {
                panic!("{name}: not logs")
            };
            assert_eq!(&l.to_message().unwrap(), &decoded[name], "{name}");
        }
        // A decoded batch goes the decoded way.
        let decoded = Batch::Traces(TracesBatch::from_message(request()));
        assert!(split_encoded_by_trace(&decoded, &ring).unwrap().is_none());
    }

    #[test]
    fn logs_route_by_trace_id_or_service() {
        use wasmcol_pdata::proto::logs::v1::LogRecord;
        let ring = Ring::new(["gw-1:4317", "gw-2:4317", "gw-3:4317"]);
        let logs = |svc: &str, base: u8| ResourceLogs {
            resource: resource(svc),
            scope_logs: vec![ScopeLogs {
                log_records: (0..50u8)
                    .map(|i| LogRecord {
                        trace_id: if i % 2 == 0 {
                            vec![i % 10 + 1; 16]
                        } else {
                            Vec::new()
                        },
                        severity_text: format!("{base}-{i}"),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let req = || ExportLogsServiceRequest {
            resource_logs: vec![logs("checkout", 1), logs("cart", 2)],
        };
        let texts = |r: &ExportLogsServiceRequest| -> Vec<(Vec<u8>, String)> {
            r.resource_logs
                .iter()
                .flat_map(|rl| &rl.scope_logs)
                .flat_map(|sl| &sl.log_records)
                .map(|l| (l.trace_id.clone(), l.severity_text.clone()))
                .collect()
        };
        let mut all = texts(&req());
        all.sort();
        let parts = split_logs(req(), &RoutingKey::TraceId, &ring).unwrap();
        let mut joined = Vec::new();
        for (backend, part) in &parts {
            for (trace, text) in texts(part) {
                if !trace.is_empty() {
                    assert_eq!(ring.endpoint_for(&trace), Some(backend.as_str()));
                }
                joined.push((trace, text));
            }
        }
        joined.sort();
        assert_eq!(joined, all);
        let parts = split_logs(req(), &RoutingKey::Service, &ring).unwrap();
        for svc in ["checkout", "cart"] {
            let part = &parts[ring.endpoint_for(svc.as_bytes()).unwrap()];
            let whole = part
                .resource_logs
                .iter()
                .find(|rl| service_name(rl.resource.as_ref()) == Some(svc))
                .unwrap();
            assert_eq!(whole.scope_logs[0].log_records.len(), 50);
        }
    }

    /// Scenario: the same request split by service; then a resource without service.name;
    /// then an empty ring.
    /// Guarantees: each service's resource goes whole to the service's backend; a missing
    /// name is upstream's error; no backend is an error, not a silent drop.
    #[test]
    fn service_routing_and_errors() {
        let ring = Ring::new(["gw-1:4317", "gw-2:4317", "gw-3:4317"]);
        let parts = split_traces(request(), &RoutingKey::Service, &ring).unwrap();
        for svc in ["checkout", "cart"] {
            let backend = ring.endpoint_for(svc.as_bytes()).unwrap();
            let got = spans(&parts[backend]);
            assert_eq!(got.iter().filter(|(s, _, _)| s == svc).count(), 80);
        }
        let mut anonymous = request();
        anonymous.resource_spans[1].resource = None;
        assert_eq!(
            split_traces(anonymous, &RoutingKey::Service, &ring),
            Err(RouteError::NoServiceName)
        );
        assert_eq!(
            split_traces(request(), &RoutingKey::TraceId, &Ring::default()),
            Err(RouteError::NoBackends)
        );
    }

    /// Scenario: 160 spans of 40 traces under two services, routed by `service.name` (a
    /// resource attribute) and the `route` attribute of each trace's first span in its
    /// scope, over three backends; later spans carry another `route`.
    /// Guarantees: each (resource, scope, trace) group goes whole to the backend the ring
    /// names for upstream's key `service.name=<svc>|route=<first span's>|`; nothing is lost.
    #[test]
    fn attribute_routing_keys_each_trace_by_its_first_span() {
        let ring = Ring::new(["gw-1:4317", "gw-2:4317", "gw-3:4317"]);
        let mut req = request();
        for rs in &mut req.resource_spans {
            for ss in &mut rs.scope_spans {
                for (i, span) in ss.spans.iter_mut().enumerate() {
                    // Traces 0..40 appear once per scope; a second span of each trace later
                    // in the scope carries a different value, which must not matter.
                    span.attributes.push(KeyValue {
                        key: "route".into(),
                        value: Some(Any {
                            value: Some(AnyValue::StringValue(format!("/r{}", i % 3))),
                        }),
                        ..Default::default()
                    });
                }
                let mut late = ss.spans[0].clone();
                late.name.push_str("-late");
                late.attributes[0].value = Some(Any {
                    value: Some(AnyValue::StringValue("/other".into())),
                });
                ss.spans.push(late);
            }
        }
        let all = spans(&req);
        let key = RoutingKey::Attributes(vec!["service.name".into(), "route".into()]);
        let parts = split_traces(req, &key, &ring).unwrap();
        assert!(parts.len() > 1, "all on one backend: {parts:?}");
        let mut joined = Vec::new();
        for (backend, part) in &parts {
            for (svc, trace, name) in spans(part) {
                let expected = format!("service.name={svc}|route=/r{}|", trace[0] % 3);
                assert_eq!(
                    ring.endpoint_for(expected.as_bytes()),
                    Some(backend.as_str()),
                    "{name}"
                );
                joined.push((svc, trace, name));
            }
        }
        joined.sort();
        assert_eq!(joined, all);
    }

    /// Four metrics (a gauge, a sum, a histogram, a summary), each with 30 data points over
    /// 10 attribute sets, in two resources.
    fn metrics() -> ExportMetricsServiceRequest {
        use wasmcol_pdata::proto::metrics::v1::{
            Gauge, Histogram, HistogramDataPoint, NumberDataPoint, Sum, Summary, SummaryDataPoint,
        };
        let attrs = |i: u32| {
            vec![KeyValue {
                key: "host".into(),
                value: Some(Any {
                    value: Some(AnyValue::StringValue(format!("h{}", i % 10))),
                }),
                ..Default::default()
            }]
        };
        let number = |i| NumberDataPoint {
            attributes: attrs(i),
            time_unix_nano: u64::from(i),
            ..Default::default()
        };
        let metric = |name: &str, data| Metric {
            name: name.into(),
            unit: "1".into(),
            data: Some(data),
            ..Default::default()
        };
        let scope = ScopeMetrics {
            metrics: vec![
                metric(
                    "g",
                    Data::Gauge(Gauge {
                        data_points: (0..30).map(number).collect(),
                    }),
                ),
                metric(
                    "s",
                    Data::Sum(Sum {
                        data_points: (0..30).map(number).collect(),
                        aggregation_temporality: 2,
                        is_monotonic: true,
                    }),
                ),
                metric(
                    "h",
                    Data::Histogram(Histogram {
                        data_points: (0..30)
                            .map(|i| HistogramDataPoint {
                                attributes: attrs(i),
                                count: u64::from(i),
                                ..Default::default()
                            })
                            .collect(),
                        aggregation_temporality: 1,
                    }),
                ),
                metric(
                    "q",
                    Data::Summary(Summary {
                        data_points: (0..30)
                            .map(|i| SummaryDataPoint {
                                attributes: attrs(i),
                                count: u64::from(i),
                                ..Default::default()
                            })
                            .collect(),
                    }),
                ),
            ],
            ..Default::default()
        };
        ExportMetricsServiceRequest {
            resource_metrics: ["checkout", "cart"]
                .into_iter()
                .map(|svc| ResourceMetrics {
                    resource: resource(svc),
                    scope_metrics: vec![scope.clone()],
                    ..Default::default()
                })
                .collect(),
        }
    }

    /// (service, metric, host attribute) of every data point, with the metric's settings.
    fn points(req: &ExportMetricsServiceRequest) -> Vec<(String, String, String)> {
        let mut out = Vec::new();
        for rm in &req.resource_metrics {
            let svc = service_name(rm.resource.as_ref())
                .unwrap_or_default()
                .to_owned();
            for m in rm.scope_metrics.iter().flat_map(|s| &s.metrics) {
                let hosts: Vec<&[KeyValue]> = match m.data.as_ref().unwrap() {
                    Data::Gauge(d) => d.data_points.iter().map(|p| &p.attributes[..]).collect(),
                    Data::Sum(d) => {
                        assert!(d.is_monotonic && d.aggregation_temporality == 2);
                        d.data_points.iter().map(|p| &p.attributes[..]).collect()
                    }
                    Data::Histogram(d) => {
                        assert_eq!(d.aggregation_temporality, 1);
                        d.data_points.iter().map(|p| &p.attributes[..]).collect()
                    }
                    Data::Summary(d) => d.data_points.iter().map(|p| &p.attributes[..]).collect(),
                    Data::ExponentialHistogram(d) => {
                        d.data_points.iter().map(|p| &p.attributes[..]).collect()
                    }
                };
                for a in hosts {
                    let host = match a[0].value.as_ref().and_then(|v| v.value.as_ref()) {
                        Some(AnyValue::StringValue(h)) => h.clone(),
                        _ => String::new(),
                    };
                    out.push((svc.clone(), m.name.clone(), host));
                }
            }
        }
        out.sort();
        out
    }

    /// Scenario: two resources × four metrics × 30 points, split over three backends by each
    /// metrics routing key.
    /// Guarantees: no point is lost or doubled; by `service` each resource is whole at the
    /// backend of its name (upstream's key); by `metric` each metric is whole at the backend
    /// of its name; by `streamID` every point of one stream (resource, metric, attributes) is at
    /// one backend and the streams spread over several; by `resource` each resource is whole
    /// and the choice does not depend on attribute order.
    #[test]
    fn metrics_routing_keys() {
        let ring = Ring::new(["gw-1:4317", "gw-2:4317", "gw-3:4317"]);
        let all = points(&metrics());
        for key in [
            RoutingKey::Service,
            RoutingKey::Resource,
            RoutingKey::Metric,
            RoutingKey::StreamId,
        ] {
            let parts = split_metrics(metrics(), &key, &ring).unwrap();
            let mut got: Vec<_> = parts.values().flat_map(points).collect();
            got.sort();
            assert_eq!(got, all, "{key:?}");
            let owners = |f: &dyn Fn(&(String, String, String)) -> String| {
                let mut at: BTreeMap<String, std::collections::BTreeSet<&str>> = BTreeMap::new();
                for (backend, req) in &parts {
                    for p in points(req) {
                        at.entry(f(&p)).or_default().insert(backend.as_str());
                    }
                }
                at
            };
            match key {
                RoutingKey::Service => {
                    for (svc, at) in owners(&|p| p.0.clone()) {
                        assert_eq!(
                            at.into_iter().collect::<Vec<_>>(),
                            vec![ring.endpoint_for(svc.as_bytes()).unwrap()]
                        );
                    }
                }
                RoutingKey::Metric => {
                    for (name, at) in owners(&|p| p.1.clone()) {
                        assert_eq!(
                            at.into_iter().collect::<Vec<_>>(),
                            vec![ring.endpoint_for(name.as_bytes()).unwrap()]
                        );
                    }
                }
                RoutingKey::StreamId => {
                    let streams = owners(&|p| format!("{}/{}/{}", p.0, p.1, p.2));
                    assert_eq!(streams.len(), 80);
                    assert!(streams.values().all(|at| at.len() == 1));
                    assert_eq!(parts.len(), 3, "80 streams should reach every backend");
                }
                _ => {
                    assert!(owners(&|p| p.0.clone()).values().all(|at| at.len() == 1));
                    let mut reordered = metrics();
                    for rm in &mut reordered.resource_metrics {
                        if let Some(r) = rm.resource.as_mut() {
                            r.attributes.insert(
                                0,
                                KeyValue {
                                    key: "zone".into(),
                                    ..Default::default()
                                },
                            );
                        }
                    }
                    let mut swapped = reordered.clone();
                    for rm in &mut swapped.resource_metrics {
                        if let Some(r) = rm.resource.as_mut() {
                            r.attributes.reverse();
                        }
                    }
                    let services = |req| {
                        split_metrics(req, &key, &ring)
                            .unwrap()
                            .into_iter()
                            .map(|(b, r)| {
                                let mut s: Vec<String> =
                                    points(&r).into_iter().map(|p| p.0).collect();
                                s.dedup();
                                (b, s)
                            })
                            .collect::<BTreeMap<_, _>>()
                    };
                    assert_eq!(services(reordered), services(swapped));
                }
            }
        }
        assert_eq!(
            split_metrics(metrics(), &RoutingKey::TraceId, &ring),
            Err(RouteError::Unsupported(RoutingKey::TraceId))
        );
    }

    fn attr(key: &str, value: AnyValue) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(Any { value: Some(value) }),
            ..Default::default()
        }
    }

    fn text(key: &str, value: &str) -> KeyValue {
        attr(key, AnyValue::StringValue(value.into()))
    }

    fn scoped(attributes: Vec<KeyValue>) -> Option<InstrumentationScope> {
        Some(InstrumentationScope {
            attributes,
            ..Default::default()
        })
    }

    /// Scenario: `routing_key: attributes` on `[tenant, team, log.severity]` over three
    /// backends: a resource holding all three names, a resource with `tenant` and no scopes,
    /// and a resource with `tenant` whose scopes hold both remaining names, one of them, or
    /// none (records with and without `team`, severities s0..s4).
    /// Guarantees: the key is upstream's `name=value|` in configured order; a resource (or
    /// scope) resolving every name goes whole, untouched; otherwise each record goes to the
    /// backend of its own key under its resource and scope (schema URLs kept); every record
    /// arrives exactly once.
    #[test]
    fn log_attribute_routing_descends_resource_scope_record() {
        use wasmcol_pdata::proto::logs::v1::LogRecord;
        let ring = Ring::new(["gw-1:4317", "gw-2:4317", "gw-3:4317"]);
        let key =
            RoutingKey::Attributes(vec!["tenant".into(), "team".into(), "log.severity".into()]);
        let mut expected: BTreeMap<u64, String> = BTreeMap::new();
        let mut id = 0u64;
        let mut records = |n: usize, key_of: &dyn Fn(&LogRecord) -> String| -> Vec<LogRecord> {
            (0..n)
                .map(|i| {
                    id += 1;
                    let mut r = LogRecord {
                        time_unix_nano: id,
                        severity_text: format!("s{}", i % 5),
                        ..Default::default()
                    };
                    if i % 3 != 0 {
                        r.attributes.push(text("team", &format!("r{}", i % 4)));
                    }
                    expected.insert(id, key_of(&r));
                    r
                })
                .collect()
        };
        let whole = ResourceLogs {
            resource: Some(Resource {
                attributes: vec![
                    text("log.severity", "sev"),
                    text("team", "x"),
                    attr("tenant", AnyValue::IntValue(7)),
                ],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: records(6, &|_| "tenant=7|team=x|log.severity=sev|".into()),
                ..Default::default()
            }],
            schema_url: "res-schema".into(),
        };
        let bare = ResourceLogs {
            resource: Some(Resource {
                attributes: vec![text("tenant", "b")],
                ..Default::default()
            }),
            ..Default::default()
        };
        let team = |r: &LogRecord| {
            r.attributes
                .first()
                .and_then(|kv| kv.value.as_ref()?.value.as_ref())
                .map_or(String::new(), |v| match v {
                    AnyValue::StringValue(s) => s.clone(),
                    _ => String::new(),
                })
        };
        let deep = ResourceLogs {
            resource: Some(Resource {
                attributes: vec![text("tenant", "c")],
                ..Default::default()
            }),
            scope_logs: vec![
                ScopeLogs {
                    scope: scoped(vec![text("log.severity", "S"), text("team", "s")]),
                    log_records: records(9, &|_| "tenant=c|team=s|log.severity=S|".into()),
                    schema_url: "whole-scope".into(),
                },
                ScopeLogs {
                    scope: scoped(vec![text("team", "t")]),
                    log_records: records(30, &|r| {
                        format!("tenant=c|team=t|log.severity={}|", r.severity_text)
                    }),
                    schema_url: "scope-1".into(),
                },
                ScopeLogs {
                    log_records: records(60, &|r| {
                        format!(
                            "tenant=c|team={}|log.severity={}|",
                            team(r),
                            r.severity_text
                        )
                    }),
                    schema_url: "scope-2".into(),
                    ..Default::default()
                },
            ],
            schema_url: "deep".into(),
        };
        let req = ExportLogsServiceRequest {
            resource_logs: vec![whole.clone(), bare.clone(), deep.clone()],
        };
        let parts = split_logs(req, &key, &ring).unwrap();
        assert!(parts.len() > 1, "all on one backend");
        let at = |k: &str| ring.endpoint_for(k.as_bytes()).unwrap();
        assert!(
            parts[at("tenant=7|team=x|log.severity=sev|")]
                .resource_logs
                .contains(&whole)
        );
        assert!(parts[at("tenant=b|")].resource_logs.contains(&bare));
        let mut seen: BTreeMap<u64, u32> = BTreeMap::new();
        for (backend, part) in &parts {
            for rl in &part.resource_logs {
                for sl in &rl.scope_logs {
                    if sl.schema_url == "whole-scope" {
                        assert_eq!(sl, &deep.scope_logs[0]);
                    }
                    for r in &sl.log_records {
                        let k = &expected[&r.time_unix_nano];
                        assert_eq!(at(k), backend.as_str(), "{k}");
                        if rl.schema_url == "deep" {
                            let original = deep
                                .scope_logs
                                .iter()
                                .find(|s| s.log_records.contains(r))
                                .unwrap();
                            assert_eq!(
                                (&sl.scope, &sl.schema_url),
                                (&original.scope, &original.schema_url)
                            );
                            assert_eq!(rl.resource, deep.resource);
                        }
                        *seen.entry(r.time_unix_nano).or_default() += 1;
                    }
                }
            }
        }
        let keys: std::collections::BTreeSet<&String> = expected.values().collect();
        assert!(keys.len() > 10, "{keys:?}");
        assert_eq!(
            seen,
            expected
                .keys()
                .map(|&i| (i, 1))
                .collect::<BTreeMap<u64, u32>>()
        );
    }

    /// Scenario: the key of one log record for the pseudo attributes and a missing name,
    /// with bodies of each type.
    /// Guarantees: `log.body` renders as pdata's `AsString` (JSON for maps and arrays, keys
    /// sorted, HTML-escaped); a missing attribute gives `name=|`.
    #[test]
    fn log_record_keys_render_the_body_as_pdata_as_string() {
        use wasmcol_pdata::proto::common::v1::{ArrayValue, KeyValueList};
        use wasmcol_pdata::proto::logs::v1::LogRecord;
        let key_of = |body: Option<AnyValue>| {
            let record = LogRecord {
                severity_text: "WARN".into(),
                body: body.map(|v| Any { value: Some(v) }),
                attributes: vec![attr("n", AnyValue::DoubleValue(2.5))],
                ..Default::default()
            };
            let mut k = String::new();
            attribute_key::push_record_key(
                &["log.severity", "log.body", "n", "missing"],
                &record,
                &mut k,
            );
            k
        };
        let body = |b: &str| format!("log.severity=WARN|log.body={b}|n=2.5|missing=|");
        assert_eq!(key_of(None), body(""));
        assert_eq!(
            key_of(Some(AnyValue::StringValue("a<b".into()))),
            body("a<b")
        );
        assert_eq!(key_of(Some(AnyValue::IntValue(-3))), body("-3"));
        assert_eq!(key_of(Some(AnyValue::DoubleValue(1e-7))), body("1e-7"));
        assert_eq!(key_of(Some(AnyValue::DoubleValue(1e21))), body("1e+21"));
        assert_eq!(
            key_of(Some(AnyValue::DoubleValue(1e20))),
            body("100000000000000000000")
        );
        assert_eq!(
            key_of(Some(AnyValue::DoubleValue(f64::NAN))),
            body("json: unsupported value: NaN")
        );
        assert_eq!(
            key_of(Some(AnyValue::BytesValue(vec![1, 255]))),
            body("Af8=")
        );
        let map = AnyValue::KvlistValue(KeyValueList {
            values: vec![
                text("z", "x&y\n"),
                attr("a", AnyValue::BoolValue(true)),
                attr(
                    "m",
                    AnyValue::ArrayValue(ArrayValue {
                        values: vec![
                            Any {
                                value: Some(AnyValue::IntValue(1)),
                            },
                            Any { value: None },
                            Any {
                                value: Some(AnyValue::BytesValue(vec![0])),
                            },
                            Any {
                                value: Some(AnyValue::DoubleValue(0.5)),
                            },
                        ],
                    }),
                ),
            ],
        });
        assert_eq!(
            key_of(Some(map)),
            body(r#"{"a":true,"m":[1,null,"AA==",0.5],"z":"x\u0026y\n"}"#)
        );
        let bad = AnyValue::ArrayValue(ArrayValue {
            values: vec![Any {
                value: Some(AnyValue::DoubleValue(f64::INFINITY)),
            }],
        });
        assert_eq!(key_of(Some(bad)), body(""));
    }

    /// The metrics of [`metric_attribute_routing_uses_upstream_raw_values`]: a resource
    /// holding both names, the scope holding `host`, the resource whose points are keyed one
    /// by one, and each point's (time stamp's) expected key.
    fn attribute_metrics() -> (
        ResourceMetrics,
        ScopeMetrics,
        ResourceMetrics,
        BTreeMap<u64, String>,
    ) {
        use wasmcol_pdata::proto::metrics::v1::{
            Gauge, Histogram, HistogramDataPoint, NumberDataPoint, Sum,
        };
        let mut expected: BTreeMap<u64, String> = BTreeMap::new();
        let host = |i: u64| match i % 4 {
            0 => vec![text("host", &format!("h{}", i % 7))],
            1 => vec![attr("host", AnyValue::IntValue(1))],
            _ => vec![text("other", "o")],
        };
        let mut point = |i: u64| {
            let key = match i % 4 {
                0 => format!("h{}", i % 7),
                _ => String::new(),
            };
            expected.insert(i, key);
            (i, host(i))
        };
        let gauge_points: Vec<NumberDataPoint> = (0..40)
            .map(|i| {
                let (t, attributes) = point(i);
                NumberDataPoint {
                    time_unix_nano: t,
                    attributes,
                    ..Default::default()
                }
            })
            .collect();
        let sum_points: Vec<NumberDataPoint> = (40..80)
            .map(|i| {
                let (t, attributes) = point(i);
                NumberDataPoint {
                    time_unix_nano: t,
                    attributes,
                    ..Default::default()
                }
            })
            .collect();
        let histogram_points: Vec<HistogramDataPoint> = (80..120)
            .map(|i| {
                let (t, attributes) = point(i);
                HistogramDataPoint {
                    time_unix_nano: t,
                    attributes,
                    ..Default::default()
                }
            })
            .collect();
        let metric = |name: &str, data: Option<Data>| Metric {
            name: name.into(),
            description: format!("{name} description"),
            unit: "ms".into(),
            metadata: vec![text("meta", "m")],
            data,
        };
        let whole = ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![text("host", "h"), text("tenant", "a")],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![metric("w", None)],
                ..Default::default()
            }],
            ..Default::default()
        };
        let whole_scope = ScopeMetrics {
            scope: scoped(vec![text("host", "s")]),
            metrics: vec![metric("ws", None)],
            schema_url: "whole-scope".into(),
        };
        let deep = ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![attr("tenant", AnyValue::IntValue(7))],
                ..Default::default()
            }),
            scope_metrics: vec![
                whole_scope.clone(),
                ScopeMetrics {
                    metrics: vec![
                        metric(
                            "g",
                            Some(Data::Gauge(Gauge {
                                data_points: gauge_points,
                            })),
                        ),
                        metric(
                            "s",
                            Some(Data::Sum(Sum {
                                data_points: sum_points,
                                aggregation_temporality: 1,
                                is_monotonic: true,
                            })),
                        ),
                        metric(
                            "h",
                            Some(Data::Histogram(Histogram {
                                data_points: histogram_points,
                                aggregation_temporality: 2,
                            })),
                        ),
                        metric("empty", None),
                    ],
                    schema_url: "points".into(),
                    ..Default::default()
                },
            ],
            schema_url: "deep".into(),
        };
        (whole, whole_scope, deep, expected)
    }

    /// Scenario: `routing_key: attributes` on `[tenant, host]` for metrics over three
    /// backends: a resource holding both names; a resource whose `tenant` is an int, with a
    /// scope holding `host`, and a scope whose gauge, sum and histogram points carry `host`
    /// as a string, as an int, or not at all (and a metric without data).
    /// Guarantees: upstream's metrics key, the raw string values only (`ah`, `` for an int,
    /// nothing for a missing name); whole resources and scopes stay untouched; each point
    /// goes to its key's backend in a copy of its metric that keeps name, description, unit
    /// and the sum/histogram settings but not metadata; every point arrives exactly once.
    #[test]
    fn metric_attribute_routing_uses_upstream_raw_values() {
        let ring = Ring::new(["gw-1:4317", "gw-2:4317", "gw-3:4317"]);
        let key = RoutingKey::Attributes(vec!["tenant".into(), "host".into()]);
        let mut k = String::new();
        let pending = attribute_key::take_found_str(
            &["tenant", "host", "zone"],
            &[attr("tenant", AnyValue::IntValue(7)), text("zone", "z")],
            &mut k,
        );
        assert_eq!((k.as_str(), pending), ("z", vec!["host"]));
        let (whole, whole_scope, deep, expected) = attribute_metrics();
        let req = ExportMetricsServiceRequest {
            resource_metrics: vec![whole.clone(), deep.clone()],
        };
        let parts = split_metrics(req, &key, &ring).unwrap();
        let at = |k: &str| ring.endpoint_for(k.as_bytes()).unwrap();
        assert!(parts[at("ah")].resource_metrics.contains(&whole));
        let mut seen: BTreeMap<u64, u32> = BTreeMap::new();
        for (backend, part) in &parts {
            for rm in part
                .resource_metrics
                .iter()
                .filter(|rm| rm.schema_url == "deep")
            {
                assert_eq!(rm.resource, deep.resource);
                for sm in &rm.scope_metrics {
                    if sm.schema_url == "whole-scope" {
                        assert_eq!(sm, &whole_scope);
                        assert_eq!(backend.as_str(), at("s"));
                        continue;
                    }
                    assert_eq!(sm.schema_url, "points");
                    for m in &sm.metrics {
                        assert!(m.metadata.is_empty(), "metadata copied");
                        assert_eq!(
                            (m.description.as_str(), m.unit.as_str()),
                            (&*format!("{} description", m.name), "ms")
                        );
                        let times: Vec<u64> = match m.data.as_ref().unwrap() {
                            Data::Gauge(g) => {
                                g.data_points.iter().map(|p| p.time_unix_nano).collect()
                            }
                            Data::Sum(d) => {
                                assert!(d.is_monotonic && d.aggregation_temporality == 1);
                                d.data_points.iter().map(|p| p.time_unix_nano).collect()
                            }
                            Data::Histogram(d) => {
                                assert_eq!(d.aggregation_temporality, 2);
                                d.data_points.iter().map(|p| p.time_unix_nano).collect()
                            }
                            other => panic!("unexpected {other:?}"),
                        };
                        for t in times {
                            assert_eq!(at(&expected[&t]), backend.as_str(), "point {t}");
                            *seen.entry(t).or_default() += 1;
                        }
                    }
                }
            }
        }
        assert_eq!(
            seen,
            expected
                .keys()
                .map(|&i| (i, 1))
                .collect::<BTreeMap<u64, u32>>()
        );
        let keys: std::collections::BTreeSet<&String> = expected.values().collect();
        assert_eq!(keys.len(), 8, "{keys:?}");
    }
}
