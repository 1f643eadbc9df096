//! Writes the seed corpora under fuzz/corpus/<target>/ from a few small, real OTLP requests
//! of each signal. Run from the repository root:
//! `cargo run --manifest-path fuzz/seeds/Cargo.toml`; config seeds are the example configs
//! (copied by fuzz/README.md's command).

use std::io::Write;
use std::path::Path;

use prost::Message;
use wasmcol_pdata::proto::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, any_value::Value,
};
use wasmcol_pdata::proto::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use wasmcol_pdata::proto::metrics::v1::{
    Exemplar, ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Histogram,
    HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, Summary,
    SummaryDataPoint, exponential_histogram_data_point::Buckets, metric::Data, number_data_point,
    summary_data_point::ValueAtQuantile,
};
use wasmcol_pdata::proto::resource::v1::Resource;
use wasmcol_pdata::proto::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span};
use wasmcol_pdata::{
    Batch, ExportLogsServiceRequest, ExportMetricsServiceRequest, ExportTraceServiceRequest, Signal,
};

fn kv(k: &str, v: Value) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

fn s(v: &str) -> Value {
    Value::StringValue(v.into())
}

fn resource() -> Option<Resource> {
    Some(Resource {
        attributes: vec![
            kv("service.name", s("checkout")),
            kv("host.cores", Value::IntValue(8)),
        ],
        ..Default::default()
    })
}

fn scope() -> Option<InstrumentationScope> {
    Some(InstrumentationScope {
        name: "io.opentelemetry.http".into(),
        version: "1.2".into(),
        attributes: vec![kv("scope.flag", Value::BoolValue(true))],
        ..Default::default()
    })
}

fn traces(n: u8) -> ExportTraceServiceRequest {
    let spans = (0..n)
        .map(|i| Span {
            trace_id: vec![i + 1; 16],
            span_id: vec![i + 1; 8],
            parent_span_id: if i == 0 { vec![] } else { vec![1; 8] },
            name: format!("GET /item/{i}"),
            kind: 2,
            start_time_unix_nano: 1_700_000_000_000_000_000,
            end_time_unix_nano: 1_700_000_000_500_000_000,
            attributes: vec![
                kv("http.method", s("GET")),
                kv("http.status_code", Value::IntValue(200)),
                kv(
                    "tags",
                    Value::ArrayValue(ArrayValue {
                        values: vec![AnyValue {
                            value: Some(Value::DoubleValue(0.5)),
                        }],
                    }),
                ),
            ],
            events: vec![span::Event {
                name: "retry".into(),
                attributes: vec![kv("attempt", Value::IntValue(2))],
                ..Default::default()
            }],
            links: vec![span::Link {
                trace_id: vec![9; 16],
                span_id: vec![9; 8],
                ..Default::default()
            }],
            status: Some(Status {
                code: 2,
                message: "boom".into(),
            }),
            flags: 1,
            ..Default::default()
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: resource(),
            scope_spans: vec![
                ScopeSpans {
                    scope: scope(),
                    spans,
                    schema_url: "https://opentelemetry.io/schemas/1.21.0".into(),
                },
                ScopeSpans::default(),
            ],
            schema_url: String::new(),
        }],
    }
}

fn point(v: f64) -> NumberDataPoint {
    NumberDataPoint {
        attributes: vec![kv("route", s("/a"))],
        time_unix_nano: 1_700_000_000_000_000_000,
        value: Some(number_data_point::Value::AsDouble(v)),
        exemplars: vec![Exemplar {
            span_id: vec![2; 8],
            trace_id: vec![3; 16],
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn metrics() -> ExportMetricsServiceRequest {
    let metric = |name: &str, data| Metric {
        name: name.into(),
        unit: "1".into(),
        data: Some(data),
        ..Default::default()
    };
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: resource(),
            scope_metrics: vec![ScopeMetrics {
                scope: scope(),
                metrics: vec![
                    metric(
                        "g",
                        Data::Gauge(Gauge {
                            data_points: vec![point(1.0), point(2.0)],
                        }),
                    ),
                    metric(
                        "s",
                        Data::Sum(Sum {
                            data_points: vec![point(3.0)],
                            aggregation_temporality: 2,
                            is_monotonic: true,
                        }),
                    ),
                    metric(
                        "h",
                        Data::Histogram(Histogram {
                            data_points: vec![HistogramDataPoint {
                                count: 3,
                                bucket_counts: vec![1, 2],
                                explicit_bounds: vec![0.5],
                                ..Default::default()
                            }],
                            aggregation_temporality: 1,
                        }),
                    ),
                    metric(
                        "e",
                        Data::ExponentialHistogram(ExponentialHistogram {
                            data_points: vec![ExponentialHistogramDataPoint {
                                scale: 2,
                                positive: Some(Buckets {
                                    offset: -1,
                                    bucket_counts: vec![1, 300],
                                }),
                                ..Default::default()
                            }],
                            aggregation_temporality: 1,
                        }),
                    ),
                    metric(
                        "q",
                        Data::Summary(Summary {
                            data_points: vec![SummaryDataPoint {
                                count: 2,
                                quantile_values: vec![ValueAtQuantile {
                                    quantile: 0.5,
                                    value: 1.0,
                                }],
                                ..Default::default()
                            }],
                        }),
                    ),
                ],
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

fn logs() -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: resource(),
            scope_logs: vec![ScopeLogs {
                scope: scope(),
                log_records: (0..3u8)
                    .map(|i| LogRecord {
                        time_unix_nano: 1_700_000_000_000_000_000,
                        severity_number: 9,
                        severity_text: "INFO".into(),
                        body: Some(AnyValue {
                            value: Some(s("payment accepted")),
                        }),
                        attributes: vec![kv("order", Value::IntValue(i.into()))],
                        trace_id: vec![i + 1; 16],
                        span_id: vec![i + 1; 8],
                        event_name: "order.paid".into(),
                        ..Default::default()
                    })
                    .collect(),
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

fn write(target: &str, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let dir = Path::new("fuzz/corpus").join(target);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join(name), bytes)
}

fn record(signal: Signal, payload: &[u8]) -> Vec<u8> {
    let batch = Batch::from_encoded(signal, payload.to_vec().into()).expect("seed scans");
    let code = match signal {
        Signal::Traces => 0u8,
        Signal::Metrics => 1,
        Signal::Logs => 2,
    };
    let mut out = b"WQ\x01".to_vec();
    out.push(code);
    out.extend_from_slice(&(batch.item_count() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// The same request as a format-2 record: the payload zstd-compressed after its length.
fn record_zstd(signal: Signal, payload: &[u8]) -> Vec<u8> {
    let raw = record(signal, payload);
    let packed = zstd::bulk::compress(payload, 1).expect("memory");
    let mut out = b"WQ\x02".to_vec();
    out.extend_from_slice(&raw[3..8]);
    out.extend_from_slice(&crc32fast::hash(&packed).to_le_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&packed);
    out
}

fn compress(pick: u8, body: &[u8]) -> Vec<u8> {
    let packed = match pick {
        0 => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(body).expect("memory");
            e.finish().expect("memory")
        }
        1 => zstd::bulk::compress(body, 1).expect("memory"),
        _ => {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(body).expect("memory");
            e.finish().expect("memory")
        }
    };
    let mut out = vec![pick, 0x00, 0x10]; // limit 4096
    out.extend_from_slice(&packed);
    out
}

fn main() -> std::io::Result<()> {
    let requests: Vec<(Signal, &str, Vec<u8>, String)> = vec![
        (
            Signal::Traces,
            "traces",
            traces(3).encode_to_vec(),
            wasmcol_pdata::to_json(&traces(3)).expect("json"),
        ),
        (
            Signal::Traces,
            "traces1",
            traces(1).encode_to_vec(),
            wasmcol_pdata::to_json(&traces(1)).expect("json"),
        ),
        (
            Signal::Metrics,
            "metrics",
            metrics().encode_to_vec(),
            wasmcol_pdata::to_json(&metrics()).expect("json"),
        ),
        (
            Signal::Logs,
            "logs",
            logs().encode_to_vec(),
            wasmcol_pdata::to_json(&logs()).expect("json"),
        ),
    ];
    // Calls for plugin_host: a fixed byte pattern `arbitrary` reads as a handful of calls.
    let calls: &[&[u8]] = &[
        &[2, 0, 0, 0, 0, 1, 0, 4, 1, 0x61, 0, 2],
        &[5, 2, 0, 0, 0, 0, 0, 0],
        &[7, 3, 1, 0, 1, 8, 9, 10],
        &[3, 0, 0, 0, 1, 1, 1, 5, 6, 7, 8],
    ];
    for (signal, name, wire, json) in &requests {
        write("wire_scan", name, wire)?;
        write("json", name, json.as_bytes())?;
        write("record", name, &record(*signal, wire))?;
        write("record", &format!("{name}-zstd"), &record_zstd(*signal, wire))?;
        for pick in 0..3u8 {
            write(
                "decompress",
                &format!("{name}-{pick}"),
                &compress(pick, wire),
            )?;
        }
        let pick = match signal {
            Signal::Traces => 0u8,
            Signal::Metrics => 1,
            Signal::Logs => 2,
        };
        for (i, c) in calls.iter().enumerate() {
            let mut seed = vec![pick];
            seed.extend_from_slice(&(wire.len() as u16).to_le_bytes());
            seed.extend_from_slice(wire);
            seed.extend_from_slice(c);
            write("plugin_host", &format!("{name}-{i}"), &seed)?;
        }
    }
    // snake_case keys, which OTLP/JSON also accepts.
    write(
        "json",
        "snake",
        br#"{"resource_spans":[{"scope_spans":[{"spans":[{"trace_id":"5b8efff798038103d269b633813fc60c","span_id":"eee19b7ec3c1b174","name":"x","kind":2,"start_time_unix_nano":"1544712660000000000"}]}]}]}"#,
    )?;
    Ok(())
}
