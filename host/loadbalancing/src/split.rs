//! Splitting a request into one request per backend, by routing key. Each part keeps its
//! spans' resource and scope, so a backend receives exactly what upstream's exporter
//! would send it.

use std::collections::BTreeMap;

use wasmcol_pdata::proto::common::v1::any_value::Value as AnyValue;
use wasmcol_pdata::proto::logs::v1::{ResourceLogs, ScopeLogs};
use wasmcol_pdata::proto::resource::v1::Resource;
use wasmcol_pdata::proto::trace::v1::{ResourceSpans, ScopeSpans};
use wasmcol_pdata::{ExportLogsServiceRequest, ExportTraceServiceRequest};

use crate::{Ring, RoutingKey};

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
            RoutingKey::TraceId => split_by_trace(rs, ring, &mut out)?,
            other => return Err(RouteError::Unsupported(other.clone())),
        }
    }
    Ok(out)
}

/// Moves each span of `rs` to its trace's backend, under a copy of its resource and scope
/// (one per backend, not one per span).
fn split_by_trace(
    rs: ResourceSpans,
    ring: &Ring,
    out: &mut BTreeMap<String, ExportTraceServiceRequest>,
) -> Result<(), RouteError> {
    let ResourceSpans {
        resource,
        scope_spans,
        schema_url,
    } = rs;
    // backend → (scope index → scope spans), so each backend gets one ResourceSpans.
    let mut parts: BTreeMap<&str, BTreeMap<usize, ScopeSpans>> = BTreeMap::new();
    for (index, ss) in scope_spans.into_iter().enumerate() {
        let ScopeSpans {
            scope,
            spans,
            schema_url: scope_schema,
        } = ss;
        for span in spans {
            let backend = ring
                .endpoint_for(&span.trace_id)
                .ok_or(RouteError::NoBackends)?;
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

/// Splits `req` into one request per backend of `ring`. By `traceID`, each log record goes
/// to its trace's backend, and a record without a trace id to a random one (as upstream:
/// not every log belongs to a trace); by `service`, each resource goes whole.
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
    Ok(())
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
}
