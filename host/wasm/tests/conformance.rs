//! One semantics: every bundled plugin (and the template) gives the same result natively,
//! through the SDK's test harness (`wasmcol_sdk::testing`), as built for wasm32-wasip2 and
//! run by this host, on the same configs and inputs.
//!
//! Each case runs twice: once on the plugin crate compiled for this machine, over the
//! in-memory batch the harness offers plugin authors, and once on the bundled component
//! through the host's `configure` and `process` (or `decide-trace`) calls, over the OTLP
//! request. Both results are compared as the SDK sees data (resources, scopes, items with
//! their fields and attributes): the outcome (forward, drop, error kind and message), the
//! config errors with their key paths, the data forwarded, and for tail sampling each
//! trace's decision. A plugin author whose unit tests pass on the harness sees the same in a
//! collector.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use support::runtime;

use bytes::Bytes;
use prost::Message;
use wasmcol_pdata::proto::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use wasmcol_pdata::proto::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use wasmcol_pdata::proto::metrics::v1::{
    Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
    Sum, metric::Data as MetricData, number_data_point,
};
use wasmcol_pdata::proto::resource::v1::Resource;
use wasmcol_pdata::proto::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span::Event};
use wasmcol_pdata::{
    Batch, ExportLogsServiceRequest, ExportMetricsServiceRequest, ExportTraceServiceRequest,
    Payload,
};
use wasmcol_sdk::testing::{
    Attrs, MemBatch, MemData, MemLog, MemPoint, MemResource, MemScope, MemSpan, build_for,
    run_logs, run_metrics, run_traces,
};
use wasmcol_sdk::{
    Decision, LogInfo, MetricKind, Outcome, PointInfo, ProcessError, Processor, ScopeInfo,
    SpanInfo, Traces, Value,
};
use wasmcol_wasm::{CallError, Limits, Processed};

// ---- inputs ----------------------------------------------------------------------------

fn kv(key: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

fn s(key: &str, v: &str) -> KeyValue {
    kv(key, any_value::Value::StringValue(v.into()))
}

fn i(key: &str, v: i64) -> KeyValue {
    kv(key, any_value::Value::IntValue(v))
}

/// Attributes of every type, so actions meet strings, numbers, booleans, bytes and nested
/// values.
fn mixed(n: i64) -> Vec<KeyValue> {
    vec![
        s("http.url", &format!("https://shop.example/cart?id={n}")),
        s("db.statement", "SELECT * FROM carts WHERE id = 7"),
        s("user.id", &format!("user-{n}")),
        i("http.status_code", 200 + n * 100),
        kv("retry", any_value::Value::BoolValue(n % 2 == 0)),
        kv("ratio", any_value::Value::DoubleValue(0.25 * n as f64)),
        kv("blob", any_value::Value::BytesValue(vec![1, 2, n as u8])),
        kv(
            "tags",
            any_value::Value::ArrayValue(wasmcol_pdata::proto::common::v1::ArrayValue {
                values: vec![AnyValue {
                    value: Some(any_value::Value::StringValue("a".into())),
                }],
            }),
        ),
    ]
}

fn resource(service: &str, extra: Vec<KeyValue>) -> Option<Resource> {
    let mut attributes = vec![s("service.name", service), s("host.name", "node-1")];
    attributes.extend(extra);
    Some(Resource {
        attributes,
        ..Default::default()
    })
}

fn scope(name: &str) -> Option<InstrumentationScope> {
    Some(InstrumentationScope {
        name: name.into(),
        version: "1.2.3".into(),
        attributes: vec![s("scope.attr", name)],
        ..Default::default()
    })
}

fn trace_id(n: u8) -> Vec<u8> {
    // Spread over the hash space, so samplers keep some traces and drop others.
    (0..16)
        .map(|k| n.wrapping_mul(37).wrapping_add(k * 11))
        .collect()
}

fn span(n: i64, trace: u8, name: &str, error: bool) -> Span {
    Span {
        trace_id: trace_id(trace),
        span_id: vec![trace, n as u8, 3, 4, 5, 6, 7, 8],
        name: name.into(),
        kind: 2,
        start_time_unix_nano: 1_000_000_000,
        end_time_unix_nano: 1_000_000_000 + n as u64 * 700_000_000,
        attributes: mixed(n),
        events: vec![Event {
            name: "exception".into(),
            attributes: vec![s("exception.message", "boom")],
            ..Default::default()
        }],
        status: Some(Status {
            code: if error { 2 } else { 0 },
            message: String::new(),
        }),
        trace_state: if n % 2 == 0 {
            "ot=th:8".into()
        } else {
            String::new()
        },
        flags: 1,
        ..Default::default()
    }
}

/// Two services, two scopes, ten traces of two or three spans; trace 3 has an ERROR span.
fn traces() -> ExportTraceServiceRequest {
    let mut resource_spans = Vec::new();
    for (r, service) in ["checkout", "payments"].iter().enumerate() {
        let mut scope_spans = Vec::new();
        for sc in 0..2u8 {
            let spans = (0..5u8)
                .map(|t| {
                    let trace = r as u8 * 5 + t;
                    let n = i64::from(t) + i64::from(sc);
                    span(
                        n,
                        trace,
                        &format!("GET /{service}/{t}"),
                        trace == 3 && sc == 1,
                    )
                })
                .collect();
            scope_spans.push(ScopeSpans {
                scope: scope(&format!("lib-{sc}")),
                spans,
                ..Default::default()
            });
        }
        resource_spans.push(ResourceSpans {
            resource: resource(service, vec![i("shard", r as i64)]),
            scope_spans,
            ..Default::default()
        });
    }
    ExportTraceServiceRequest { resource_spans }
}

fn number(n: i64) -> NumberDataPoint {
    NumberDataPoint {
        attributes: mixed(n),
        start_time_unix_nano: 5,
        time_unix_nano: 10 + n as u64,
        value: Some(number_data_point::Value::AsInt(n)),
        ..Default::default()
    }
}

fn metrics() -> ExportMetricsServiceRequest {
    let metric = |name: &str, data: MetricData| Metric {
        name: name.into(),
        unit: "1".into(),
        data: Some(data),
        ..Default::default()
    };
    let scope_metrics = vec![ScopeMetrics {
        scope: scope("meter"),
        metrics: vec![
            metric(
                "http.server.requests",
                MetricData::Sum(Sum {
                    data_points: vec![number(1), number(2)],
                    aggregation_temporality: 2,
                    is_monotonic: true,
                }),
            ),
            metric(
                "queue.size",
                MetricData::Gauge(Gauge {
                    data_points: vec![number(3)],
                }),
            ),
            metric(
                "http.server.duration",
                MetricData::Histogram(Histogram {
                    data_points: vec![HistogramDataPoint {
                        attributes: mixed(4),
                        time_unix_nano: 20,
                        count: 2,
                        bucket_counts: vec![1, 1],
                        explicit_bounds: vec![10.0],
                        ..Default::default()
                    }],
                    aggregation_temporality: 2,
                }),
            ),
        ],
        ..Default::default()
    }];
    ExportMetricsServiceRequest {
        resource_metrics: vec![
            ResourceMetrics {
                resource: resource("checkout", vec![]),
                scope_metrics: scope_metrics.clone(),
                ..Default::default()
            },
            ResourceMetrics {
                resource: resource("payments", vec![]),
                scope_metrics,
                ..Default::default()
            },
        ],
    }
}

fn logs() -> ExportLogsServiceRequest {
    let record = |n: i64, severity: &str, number: i32| LogRecord {
        time_unix_nano: 100 + n as u64,
        observed_time_unix_nano: 200,
        severity_number: number,
        severity_text: severity.into(),
        body: Some(AnyValue {
            value: Some(any_value::Value::StringValue(format!("request {n} done"))),
        }),
        attributes: mixed(n),
        trace_id: trace_id(n as u8),
        span_id: vec![1, 2, 3, 4, 5, 6, 7, n as u8],
        flags: 1,
        ..Default::default()
    };
    ExportLogsServiceRequest {
        resource_logs: ["checkout", "payments"]
            .iter()
            .map(|service| ResourceLogs {
                resource: resource(service, vec![]),
                scope_logs: vec![ScopeLogs {
                    scope: scope("logger"),
                    log_records: (0..6)
                        .map(|n| match n % 3 {
                            0 => record(n, "ERROR", 17),
                            1 => record(n, "INFO", 9),
                            _ => record(n, "DEBUG", 5),
                        })
                        .collect(),
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect(),
    }
}

// ---- OTLP as the SDK sees it -------------------------------------------------------------

fn value(v: Option<&AnyValue>) -> Value {
    match v.and_then(|v| v.value.as_ref()) {
        None => Value::Empty,
        Some(any_value::Value::StringValue(s)) => Value::Str(s.clone()),
        Some(any_value::Value::BoolValue(b)) => Value::Bool(*b),
        Some(any_value::Value::IntValue(i)) => Value::Int(*i),
        Some(any_value::Value::DoubleValue(d)) => Value::Double(*d),
        Some(any_value::Value::BytesValue(b)) => Value::Bytes(b.clone()),
        Some(other) => Value::Nested(
            AnyValue {
                value: Some(other.clone()),
            }
            .encode_to_vec(),
        ),
    }
}

fn attrs(kvs: &[KeyValue]) -> Attrs {
    kvs.iter()
        .map(|kv| (kv.key.clone(), value(kv.value.as_ref())))
        .collect()
}

fn mem_scope<I>(scope: Option<&InstrumentationScope>, items: Vec<I>) -> MemScope<I> {
    MemScope {
        info: ScopeInfo {
            name: scope.map(|s| s.name.clone()).unwrap_or_default(),
            version: scope.map(|s| s.version.clone()).unwrap_or_default(),
        },
        attributes: scope.map(|s| attrs(&s.attributes)).unwrap_or_default(),
        items,
    }
}

fn mem_resource<I>(resource: Option<&Resource>, scopes: Vec<MemScope<I>>) -> MemResource<I> {
    MemResource {
        attributes: resource.map(|r| attrs(&r.attributes)).unwrap_or_default(),
        scopes,
    }
}

fn mem_span(s: &Span) -> MemSpan {
    MemSpan {
        info: SpanInfo {
            trace_id: s.trace_id.clone(),
            span_id: s.span_id.clone(),
            parent_span_id: s.parent_span_id.clone(),
            trace_state: s.trace_state.clone(),
            name: s.name.clone(),
            kind: s.kind,
            start_time_unix_nano: s.start_time_unix_nano,
            end_time_unix_nano: s.end_time_unix_nano,
            status_code: s.status.as_ref().map_or(0, |st| st.code),
            status_message: s
                .status
                .as_ref()
                .map(|st| st.message.clone())
                .unwrap_or_default(),
            flags: s.flags,
            event_count: 0,
            link_count: s.links.len() as u32,
        },
        attributes: attrs(&s.attributes),
        events: s.events.iter().map(|e| attrs(&e.attributes)).collect(),
    }
}

fn mem_traces(req: &ExportTraceServiceRequest) -> MemData<MemSpan> {
    MemData {
        resources: req
            .resource_spans
            .iter()
            .map(|r| {
                let scopes = r
                    .scope_spans
                    .iter()
                    .map(|sc| mem_scope(sc.scope.as_ref(), sc.spans.iter().map(mem_span).collect()))
                    .collect();
                mem_resource(r.resource.as_ref(), scopes)
            })
            .collect(),
    }
}

fn points(m: &Metric) -> Vec<MemPoint> {
    let point = |kind, a: &[KeyValue], start, time| MemPoint {
        info: PointInfo {
            metric_name: m.name.clone(),
            metric_unit: m.unit.clone(),
            kind,
            start_time_unix_nano: start,
            time_unix_nano: time,
        },
        attributes: attrs(a),
    };
    match &m.data {
        None => Vec::new(),
        Some(MetricData::Gauge(g)) => g
            .data_points
            .iter()
            .map(|p| {
                point(
                    MetricKind::Gauge,
                    &p.attributes,
                    p.start_time_unix_nano,
                    p.time_unix_nano,
                )
            })
            .collect(),
        Some(MetricData::Sum(g)) => g
            .data_points
            .iter()
            .map(|p| {
                point(
                    MetricKind::Sum,
                    &p.attributes,
                    p.start_time_unix_nano,
                    p.time_unix_nano,
                )
            })
            .collect(),
        Some(MetricData::Histogram(g)) => g
            .data_points
            .iter()
            .map(|p| {
                point(
                    MetricKind::Histogram,
                    &p.attributes,
                    p.start_time_unix_nano,
                    p.time_unix_nano,
                )
            })
            .collect(),
        Some(MetricData::ExponentialHistogram(g)) => g
            .data_points
            .iter()
            .map(|p| {
                point(
                    MetricKind::ExponentialHistogram,
                    &p.attributes,
                    p.start_time_unix_nano,
                    p.time_unix_nano,
                )
            })
            .collect(),
        Some(MetricData::Summary(g)) => g
            .data_points
            .iter()
            .map(|p| {
                point(
                    MetricKind::Summary,
                    &p.attributes,
                    p.start_time_unix_nano,
                    p.time_unix_nano,
                )
            })
            .collect(),
    }
}

fn mem_metrics(req: &ExportMetricsServiceRequest) -> MemData<MemPoint> {
    MemData {
        resources: req
            .resource_metrics
            .iter()
            .map(|r| {
                let scopes = r
                    .scope_metrics
                    .iter()
                    .map(|sc| {
                        mem_scope(
                            sc.scope.as_ref(),
                            sc.metrics.iter().flat_map(points).collect(),
                        )
                    })
                    .collect();
                mem_resource(r.resource.as_ref(), scopes)
            })
            .collect(),
    }
}

fn mem_log(l: &LogRecord) -> MemLog {
    MemLog {
        info: LogInfo {
            time_unix_nano: l.time_unix_nano,
            observed_time_unix_nano: l.observed_time_unix_nano,
            severity_number: l.severity_number,
            severity_text: l.severity_text.clone(),
            body: value(l.body.as_ref()),
            trace_id: l.trace_id.clone(),
            span_id: l.span_id.clone(),
            flags: l.flags,
            event_name: l.event_name.clone(),
        },
        attributes: attrs(&l.attributes),
    }
}

fn mem_logs(req: &ExportLogsServiceRequest) -> MemData<MemLog> {
    MemData {
        resources: req
            .resource_logs
            .iter()
            .map(|r| {
                let scopes = r
                    .scope_logs
                    .iter()
                    .map(|sc| {
                        mem_scope(
                            sc.scope.as_ref(),
                            sc.log_records.iter().map(mem_log).collect(),
                        )
                    })
                    .collect();
                mem_resource(r.resource.as_ref(), scopes)
            })
            .collect(),
    }
}

// ---- the two runs ------------------------------------------------------------------------

/// One input of each signal.
#[derive(Clone)]
enum Input {
    Traces(ExportTraceServiceRequest),
    Metrics(ExportMetricsServiceRequest),
    Logs(ExportLogsServiceRequest),
}

impl Input {
    fn sdk_signal(&self) -> wasmcol_sdk::Signal {
        match self {
            Input::Traces(_) => wasmcol_sdk::Signal::Traces,
            Input::Metrics(_) => wasmcol_sdk::Signal::Metrics,
            Input::Logs(_) => wasmcol_sdk::Signal::Logs,
        }
    }

    fn host_signal(&self) -> wasmcol_pdata::Signal {
        match self {
            Input::Traces(_) => wasmcol_pdata::Signal::Traces,
            Input::Metrics(_) => wasmcol_pdata::Signal::Metrics,
            Input::Logs(_) => wasmcol_pdata::Signal::Logs,
        }
    }

    /// As the receiver hands it on: encoded, as it came off the wire.
    fn batch(&self) -> Batch {
        let (signal, bytes) = match self {
            Input::Traces(r) => (self.host_signal(), r.encode_to_vec()),
            Input::Metrics(r) => (self.host_signal(), r.encode_to_vec()),
            Input::Logs(r) => (self.host_signal(), r.encode_to_vec()),
        };
        Batch::from_encoded(signal, Bytes::from(bytes)).unwrap()
    }
}

/// Data as the SDK sees it.
#[derive(Debug, PartialEq)]
enum Data {
    Traces(MemData<MemSpan>),
    Metrics(MemData<MemPoint>),
    Logs(MemData<MemLog>),
}

/// What came of one case.
#[derive(Debug, PartialEq)]
enum Seen {
    /// `configure` refused the config: (key path, message) of each problem.
    Config(Vec<(String, String)>),
    Forward(Data),
    Drop,
    /// `process` returned an error.
    Error {
        permanent: bool,
        message: String,
    },
    /// The call trapped.
    Trap,
    /// Tail sampling: each trace's decision, in input order.
    Decisions(Vec<bool>),
}

fn seen(out: Result<Outcome, ProcessError>, data: impl FnOnce() -> Data) -> Seen {
    match out {
        Ok(Outcome::Forward) => Seen::Forward(data()),
        Ok(Outcome::Drop) => Seen::Drop,
        Err(ProcessError::Permanent(m)) if m.starts_with("trap: ") => Seen::Trap,
        Err(ProcessError::Permanent(message)) => Seen::Error {
            permanent: true,
            message,
        },
        Err(ProcessError::Retryable(message)) => Seen::Error {
            permanent: false,
            message,
        },
    }
}

/// Runs `P` natively through the harness.
fn native<P: Processor>(config: &str, input: &Input) -> Seen {
    let mut p = match build_for::<P>(config, input.sdk_signal()) {
        Ok(p) => p,
        Err(e) => return Seen::Config(e.0.into_iter().map(|e| (e.path, e.message)).collect()),
    };
    if p.hold_traces().is_some() {
        let Input::Traces(req) = input else {
            unreachable!("only traces are held")
        };
        return Seen::Decisions(
            per_trace(req)
                .iter()
                .map(|t| {
                    let batch = MemBatch::from_data(mem_traces(t));
                    let d = p.decide_trace(Traces::new(&batch), 1, NOW);
                    matches!(d, Ok(Decision::Sampled))
                })
                .collect(),
        );
    }
    match input {
        Input::Traces(r) => {
            let b = MemBatch::from_data(mem_traces(r));
            seen(run_traces(&mut p, &b), || Data::Traces(b.into_data()))
        }
        Input::Metrics(r) => {
            let b = MemBatch::from_data(mem_metrics(r));
            seen(run_metrics(&mut p, &b), || Data::Metrics(b.into_data()))
        }
        Input::Logs(r) => {
            let b = MemBatch::from_data(mem_logs(r));
            seen(run_logs(&mut p, &b), || Data::Logs(b.into_data()))
        }
    }
}

/// When held traces are decided (any fixed time: both runs get the same).
const NOW: u64 = 1_700_000_000_000_000_000;

/// The request split into one request per trace, in order of first appearance, each span
/// under a copy of its resource and scope.
fn per_trace(req: &ExportTraceServiceRequest) -> Vec<ExportTraceServiceRequest> {
    let mut out: Vec<(Vec<u8>, ExportTraceServiceRequest)> = Vec::new();
    for r in &req.resource_spans {
        for sc in &r.scope_spans {
            for span in &sc.spans {
                let part = ResourceSpans {
                    resource: r.resource.clone(),
                    scope_spans: vec![ScopeSpans {
                        scope: sc.scope.clone(),
                        spans: vec![span.clone()],
                        schema_url: sc.schema_url.clone(),
                    }],
                    schema_url: r.schema_url.clone(),
                };
                match out.iter_mut().find(|(id, _)| *id == span.trace_id) {
                    Some((_, t)) => t.resource_spans.push(part),
                    None => out.push((
                        span.trace_id.clone(),
                        ExportTraceServiceRequest {
                            resource_spans: vec![part],
                        },
                    )),
                }
            }
        }
    }
    out.into_iter().map(|(_, t)| t).collect()
}

/// Runs the component through the host's calls.
async fn wasm(component: Bytes, config: &str, input: &Input) -> Seen {
    let plugin = runtime().load(component, false).await.unwrap();
    let mut inst = plugin
        .instantiate(&Limits::default(), "conformance")
        .await
        .unwrap();
    let settings = match inst.configure(config, input.host_signal()).await.unwrap() {
        Ok(settings) => settings,
        Err(errors) => {
            return Seen::Config(errors.into_iter().map(|e| (e.path, e.message)).collect());
        }
    };
    if settings.hold.is_some() {
        let Input::Traces(req) = input else {
            unreachable!("only traces are held")
        };
        let mut decisions = Vec::new();
        for t in per_trace(req) {
            decisions.push(inst.decide_request(t, 1, NOW).await.unwrap().is_some());
        }
        return Seen::Decisions(decisions);
    }
    match inst.process(input.batch()).await {
        Ok(Processed::Drop) => Seen::Drop,
        Ok(Processed::Forward(b)) => Seen::Forward(match b {
            Batch::Traces(p) => Data::Traces(mem_traces(&message(p))),
            Batch::Metrics(p) => Data::Metrics(mem_metrics(&message(p))),
            Batch::Logs(p) => Data::Logs(mem_logs(&message(p))),
        }),
        Err(CallError::Plugin { permanent, message }) => Seen::Error { permanent, message },
        Err(_) => Seen::Trap,
    }
}

fn message<M: wasmcol_pdata::OtlpRequest>(p: Payload<M>) -> M {
    p.into_message().unwrap()
}

/// Runs every case of one plugin both ways and reports each disagreement.
async fn conform<P: Processor>(component: &'static [u8], cases: &[(&str, Input)]) -> usize {
    conform_bytes::<P>(Bytes::from_static(component), cases).await
}

async fn conform_bytes<P: Processor>(component: Bytes, cases: &[(&str, Input)]) -> usize {
    let mut forwarded = 0;
    let mut failures = Vec::new();
    for (n, (config, input)) in cases.iter().enumerate() {
        let here = native::<P>(config, input);
        let there = wasm(component.clone(), config, input).await;
        if matches!(here, Seen::Forward(_) | Seen::Decisions(_)) {
            forwarded += 1;
        }
        if here != there {
            failures.push(format!(
                "case {n} ({config}, {:?}): {}",
                input.sdk_signal(),
                first_difference(&here, &there)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    forwarded
}

/// Where the two results part: the first differing line of their pretty forms, with the
/// lines before it for context.
fn first_difference(harness: &Seen, host: &Seen) -> String {
    let (a, b) = (format!("{harness:#?}"), format!("{host:#?}"));
    let (a, b): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    let at = (0..a.len().max(b.len()))
        .find(|&i| a.get(i) != b.get(i))
        .unwrap_or(0);
    let context = a[at.saturating_sub(6)..at.min(a.len())].join("\n");
    format!(
        "at line {at}:\n{context}\n  harness: {}\n  host:    {}",
        a.get(at).unwrap_or(&"(end)"),
        b.get(at).unwrap_or(&"(end)")
    )
}

fn all_signals(config: &'static str) -> Vec<(&'static str, Input)> {
    vec![
        (config, Input::Traces(traces())),
        (config, Input::Metrics(metrics())),
        (config, Input::Logs(logs())),
    ]
}

// ---- the cases ---------------------------------------------------------------------------

#[tokio::test]
async fn attributes_conforms() {
    let mut cases = all_signals(
        r#"{"actions":[
            {"key":"env","value":"prod","action":"insert"},
            {"key":"http.url","action":"delete"},
            {"key":"user.id","action":"hash"},
            {"key":"db.statement","pattern":"^(?P<verb>\\w+) ","action":"extract"},
            {"key":"http.status_code","action":"convert","converted_type":"string"},
            {"key":"copy","from_attribute":"user.id","action":"upsert"},
            {"key":"retry","value":1,"action":"update"},
            {"key":"blob","action":"hash"},
            {"key":"tags","action":"upsert","from_attribute":"tags"}]}"#,
    );
    cases.extend([
        (
            r#"{"include":{"match_type":"strict","services":["payments"]},
                "actions":[{"key":"tagged","value":true,"action":"upsert"}]}"#,
            Input::Traces(traces()),
        ),
        (
            r#"{"exclude":{"match_type":"regexp","span_names":["^GET /checkout/[0-2]$"]},
                "actions":[{"key":"kept","value":1.5,"action":"insert"}]}"#,
            Input::Traces(traces()),
        ),
        (
            r#"{"include":{"match_type":"strict","log_severity_texts":["ERROR"]},
                "actions":[{"key":"alert","value":"yes","action":"insert"}]}"#,
            Input::Logs(logs()),
        ),
        (
            r#"{"include":{"match_type":"regexp","metric_names":["^http\\..*"]},
                "actions":[{"key":"http.url","action":"delete"}]}"#,
            Input::Metrics(metrics()),
        ),
        (
            r#"{"include":{"match_type":"strict","attributes":[{"key":"retry","value":true}]},
                "actions":[{"key":"r","value":"x","action":"upsert"}]}"#,
            Input::Traces(traces()),
        ),
        // Config errors, with their key paths.
        (r#"{"actions":[{"key":"a","action":"insert"}]}"#, Input::Traces(traces())),
        (r#"{"actions":[{"key":"a","value":1,"action":"shout"}]}"#, Input::Logs(logs())),
        (r#"{"actoins":[]}"#, Input::Traces(traces())),
        (
            r#"{"include":{"match_type":"strict","span_names":["a"]},"actions":[{"key":"a","action":"delete"}]}"#,
            Input::Metrics(metrics()),
        ),
    ]);
    let forwarded =
        conform::<wasmcol_plugin_attributes::Attributes>(wasmcol_wasm::bundled::ATTRIBUTES, &cases)
            .await;
    assert!(forwarded >= 8, "only {forwarded} cases forwarded data");
}

#[tokio::test]
async fn resource_conforms() {
    let mut cases = all_signals(
        r#"{"attributes":[
            {"key":"deployment.region","value":"eu-west-1","action":"upsert"},
            {"key":"host.name","action":"delete"},
            {"key":"service.name","action":"hash"},
            {"key":"shard","action":"convert","converted_type":"double"},
            {"key":"owner","from_attribute":"service.name","action":"insert"}]}"#,
    );
    cases.extend(all_signals(
        r#"{"attributes":[{"key":"deployment.region","value":"eu-west-1","action":"insert"}]}"#,
    ));
    cases.extend([
        (r#"{"attributes":[]}"#, Input::Traces(traces())),
        (
            r#"{"attributes":[{"key":"a","action":"upsert"}]}"#,
            Input::Logs(logs()),
        ),
    ]);
    let forwarded = conform::<wasmcol_plugin_resource::ResourceProcessor>(
        wasmcol_wasm::bundled::RESOURCE,
        &cases,
    )
    .await;
    assert!(forwarded >= 6, "only {forwarded} cases forwarded data");
}

#[tokio::test]
async fn probabilistic_sampler_conforms() {
    let cases = vec![
        (
            r#"{"sampling_percentage":50,"hash_seed":22}"#,
            Input::Traces(traces()),
        ),
        (
            r#"{"sampling_percentage":30,"mode":"proportional"}"#,
            Input::Traces(traces()),
        ),
        (
            r#"{"sampling_percentage":60,"mode":"equalizing"}"#,
            Input::Traces(traces()),
        ),
        (
            r#"{"sampling_percentage":50,"hash_seed":7}"#,
            Input::Logs(logs()),
        ),
        (
            r#"{"sampling_percentage":50,"attribute_source":"record","from_attribute":"user.id"}"#,
            Input::Logs(logs()),
        ),
        (r#"{"sampling_percentage":0}"#, Input::Traces(traces())),
        (r#"{"sampling_percentage":100}"#, Input::Logs(logs())),
        (r#"{"sampling_percentage":-1}"#, Input::Traces(traces())),
        (
            r#"{"sampling_percentage":50,"mode":"loud"}"#,
            Input::Logs(logs()),
        ),
    ];
    let forwarded = conform::<wasmcol_plugin_probabilistic_sampler::Sampler>(
        wasmcol_wasm::bundled::PROBABILISTIC_SAMPLER,
        &cases,
    )
    .await;
    assert!(forwarded >= 5, "only {forwarded} cases forwarded data");
}

#[tokio::test]
async fn tail_sampling_conforms() {
    let policies = |p: &str| format!(r#"{{"decision_wait":"1s","policies":[{p}]}}"#);
    let configs: Vec<String> = vec![
        policies(
            r#"{"name":"errors","type":"status_code","status_code":{"status_codes":["ERROR"]}}"#,
        ),
        policies(r#"{"name":"slow","type":"latency","latency":{"threshold_ms":2000}}"#),
        policies(
            r#"{"name":"p","type":"probabilistic","probabilistic":{"sampling_percentage":40}}"#,
        ),
        policies(
            r#"{"name":"pay","type":"string_attribute","string_attribute":{"key":"service.name","values":["pay.*"],"enabled_regex_matching":true}}"#,
        ),
        policies(
            r#"{"name":"codes","type":"numeric_attribute","numeric_attribute":{"key":"http.status_code","min_value":400,"max_value":599}}"#,
        ),
        policies(r#"{"name":"few","type":"rate_limiting","rate_limiting":{"spans_per_second":5}}"#),
        policies(r#"{"name":"big","type":"span_count","span_count":{"min_spans":3}}"#),
        policies(
            r#"{"name":"ts","type":"trace_state","trace_state":{"key":"ot","values":["th:8"]}}"#,
        ),
        policies(
            r#"{"name":"both","type":"and","and":{"and_sub_policy":[
                {"name":"e","type":"status_code","status_code":{"status_codes":["ERROR","UNSET"]}},
                {"name":"s","type":"latency","latency":{"threshold_ms":1000}}]}},
              {"name":"drop-checkout","type":"drop","drop":{"drop_sub_policy":[
                {"name":"c","type":"string_attribute","string_attribute":{"key":"service.name","values":["checkout"]}}]}}"#,
        ),
        policies(r#"{"name":"o","type":"ottl_condition","ottl_condition":{"span":["true"]}}"#),
        r#"{"policies":[{"name":"x","type":"latency"}],"num_traces":0}"#.to_string(),
    ];
    let cases: Vec<(&str, Input)> = configs
        .iter()
        .map(|c| (c.as_str(), Input::Traces(traces())))
        .collect();
    let decided = conform::<wasmcol_plugin_tail_sampling::TailSampling>(
        wasmcol_wasm::bundled::TAIL_SAMPLING,
        &cases,
    )
    .await;
    assert!(decided >= 9, "only {decided} cases were decided");
}

#[tokio::test]
async fn template_conforms() {
    let mut cases = all_signals(r#"{"key":"team","value":"payments"}"#);
    cases.push((r#"{}"#, Input::Traces(traces())));
    let component = std::fs::read(wasmcol_wasm::bundled::test_paths::TEMPLATE).unwrap();
    let forwarded =
        conform_bytes::<wasmcol_plugin_template::Template>(component.into(), &cases).await;
    assert!(forwarded >= 1, "only {forwarded} cases forwarded data");
}
