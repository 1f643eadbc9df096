use super::*;
use proto::common::v1::{AnyValue, KeyValue, any_value};
use proto::resource::v1::Resource;
use proto::trace::v1::{ResourceSpans, ScopeSpans, Span};

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

fn traces(resources: usize, spans: usize) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: (0..resources)
            .map(|r| ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![kv("service.name", &format!("svc{r}"))],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: (0..spans)
                        .map(|i| Span {
                            trace_id: vec![r as u8; 16],
                            span_id: vec![i as u8; 8],
                            name: format!("span-{i}"),
                            attributes: vec![kv("k", "v")],
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect(),
    }
}

#[test]
fn scan_counts_match_decoded_counts() {
    let msg = traces(3, 7);
    let bytes = Bytes::from(msg.encode_to_vec());
    let batch = TracesBatch::from_encoded(bytes.clone()).unwrap();
    assert_eq!(batch.item_count(), 21);
    assert!(batch.is_encoded());
    // Untouched batches hand back the received bytes, not a re-encode.
    assert_eq!(batch.encoded().as_ptr(), bytes.as_ptr());
}

#[test]
fn scan_rejects_garbage_and_bad_utf8() {
    // A length that runs past the end: reported at the length, which follows the key.
    assert_eq!(
        TracesBatch::from_encoded(Bytes::from_static(b"\x0a\xff\xff")).unwrap_err(),
        DecodeError::Truncated { offset: 1 }
    );
    // 'n' is field 13 with wire type 6, which does not exist.
    assert_eq!(
        TracesBatch::from_encoded(Bytes::from_static(b"not protobuf at all")).unwrap_err(),
        DecodeError::WireType {
            field: None,
            wire: 6,
            offset: 0
        }
    );
    // Field 1 of the request is a message; a varint there is named with its field.
    let e = TracesBatch::from_encoded(Bytes::from_static(b"\x08\x01")).unwrap_err();
    assert_eq!(
        e,
        DecodeError::WireType {
            field: Some(1),
            wire: 0,
            offset: 0
        }
    );
    assert_eq!(
        e.to_string(),
        "failed to decode OTLP protobuf: invalid wire type 0 for field 1"
    );
    // A span name (field 5 of Span) that is not UTF-8: prost would refuse it, so must we.
    let mut msg = traces(1, 1);
    msg.resource_spans[0].scope_spans[0].spans[0].name = "\u{e9}".into();
    let mut bytes = msg.encode_to_vec();
    let pos = bytes.windows(2).position(|w| w == [0xc3, 0xa9]).unwrap();
    bytes[pos] = 0xff;
    assert!(ExportTraceServiceRequest::decode(&bytes[..]).is_err());
    // The offset is that of the name's key, two bytes (key and length) before its text.
    let e = TracesBatch::from_encoded(Bytes::from(bytes)).unwrap_err();
    assert_eq!(
        e,
        DecodeError::Utf8 {
            field: 5,
            offset: pos - 2
        }
    );
    assert_eq!(
        e.to_string(),
        "failed to decode OTLP protobuf: invalid string value: data is not UTF-8 encoded"
    );
}

#[test]
fn deep_nesting_and_bad_json_are_told_apart() {
    // An AnyValue holding an array holding an AnyValue... past prost's recursion limit.
    let mut value = AnyValue {
        value: Some(any_value::Value::StringValue("leaf".into())),
    };
    for _ in 0..60 {
        value = AnyValue {
            value: Some(any_value::Value::ArrayValue(
                proto::common::v1::ArrayValue {
                    values: vec![value],
                },
            )),
        };
    }
    let mut msg = traces(1, 1);
    msg.resource_spans[0].scope_spans[0].spans[0].attributes[0].value = Some(value);
    let e = TracesBatch::from_encoded(Bytes::from(msg.encode_to_vec())).unwrap_err();
    assert!(matches!(e, DecodeError::TooDeep { .. }), "{e:?}");

    let e = Batch::from_json(Signal::Traces, b"{\"resourceSpans\": [").unwrap_err();
    assert!(
        matches!(
            &e,
            JsonError::Json {
                category: JsonFault::Eof,
                line: 1,
                column: 19,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "failed to decode OTLP/JSON: EOF while parsing a list at line 1 column 19"
    );
    let e = Batch::from_json(Signal::Traces, b"{\"resourceSpans\": 3}").unwrap_err();
    assert!(
        matches!(
            &e,
            JsonError::Json {
                category: JsonFault::Data,
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn scan_accepts_what_prost_accepts_for_all_signals() {
    let logs = ExportLogsServiceRequest {
        resource_logs: vec![proto::logs::v1::ResourceLogs {
            scope_logs: vec![proto::logs::v1::ScopeLogs {
                log_records: vec![Default::default(); 4],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let b = LogsBatch::from_encoded(Bytes::from(logs.encode_to_vec())).unwrap();
    assert_eq!(b.item_count(), 4);

    use proto::metrics::v1::{
        Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint, metric,
    };
    let metrics = ExportMetricsServiceRequest {
        resource_metrics: vec![proto::metrics::v1::ResourceMetrics {
            scope_metrics: vec![proto::metrics::v1::ScopeMetrics {
                metrics: vec![
                    Metric {
                        name: "g".into(),
                        data: Some(metric::Data::Gauge(Gauge {
                            data_points: vec![NumberDataPoint::default(); 2],
                        })),
                        ..Default::default()
                    },
                    Metric {
                        name: "h".into(),
                        data: Some(metric::Data::Histogram(Histogram {
                            data_points: vec![HistogramDataPoint {
                                bucket_counts: vec![1, 2, 3],
                                explicit_bounds: vec![1.0, 2.0],
                                ..Default::default()
                            }],
                            aggregation_temporality: 2,
                        })),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let b = MetricsBatch::from_encoded(Bytes::from(metrics.encode_to_vec())).unwrap();
    assert_eq!(b.item_count(), 3);
    assert_eq!(b.to_message().unwrap(), metrics);
}

#[test]
fn mutation_copies_only_when_shared() {
    let batch = TracesBatch::from_message(traces(1, 2));
    let mut edited = batch.clone();
    edited.message_mut().unwrap().resource_spans[0].scope_spans[0]
        .spans
        .pop();
    assert_eq!(batch.item_count(), 2);
    assert_eq!(edited.item_count(), 1);
}

#[test]
fn split_and_append_preserve_items() {
    let mut batch = TracesBatch::from_message(traces(3, 5));
    let front = batch.split_front(7).unwrap().unwrap();
    assert_eq!(front.item_count(), 7);
    assert_eq!(batch.item_count(), 8);
    let mut joined = front;
    joined.append(batch).unwrap();
    assert_eq!(joined.item_count(), 15);
    let names: Vec<_> = joined
        .to_message()
        .unwrap()
        .resource_spans
        .iter()
        .flat_map(|r| {
            r.scope_spans
                .iter()
                .flat_map(|s| s.spans.iter().map(|s| s.name.clone()))
        })
        .collect();
    assert_eq!(names.len(), 15);
}

#[test]
fn json_round_trip_and_snake_case() {
    let msg = traces(1, 2);
    let json = to_json(&msg).unwrap();
    assert!(
        json.contains("\"traceId\":\"00000000000000000000000000000000\""),
        "{json}"
    );
    let back: ExportTraceServiceRequest = from_json(json.as_bytes()).unwrap();
    assert_eq!(back, msg);
    let snake = r#"{"resource_spans":[{"scope_spans":[{"spans":[{"trace_id":"0102030405060708090a0b0c0d0e0f10","span_id":"0102030405060708","name":"x","kind":2,"start_time_unix_nano":"1700000000000000000"}]}]}]}"#;
    let parsed: ExportTraceServiceRequest = from_json(snake.as_bytes()).unwrap();
    let span = &parsed.resource_spans[0].scope_spans[0].spans[0];
    assert_eq!(span.trace_id, (1..=16).collect::<Vec<u8>>());
    assert_eq!(span.kind, 2);
    assert_eq!(span.start_time_unix_nano, 1_700_000_000_000_000_000);
}

fn fuzz<M: OtlpRequest>(valid: Vec<u8>) {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let (mut accepted, mut rejected) = (0, 0);
    for _ in 0..20_000 {
        let mut buf = valid.clone();
        for _ in 0..(next() % 3 + 1) {
            let i = (next() as usize) % buf.len();
            match next() % 4 {
                0 => buf[i] = next() as u8,
                1 => buf[i] ^= 0x80,
                2 => buf.truncate(i),
                _ => buf.insert(i, next() as u8),
            }
            if buf.is_empty() {
                break;
            }
        }
        match (M::scan(&buf), M::decode(&buf[..])) {
            (Ok(n), Ok(m)) => {
                assert_eq!(n, m.count_items());
                accepted += 1;
            }
            (Ok(_), Err(e)) => panic!("scan accepted bytes prost rejects ({e}): {buf:?}"),
            _ => rejected += 1,
        }
    }
    assert!(
        accepted > 100 && rejected > 100,
        "accepted {accepted}, rejected {rejected}"
    );
}

/// The walk's promise: whatever it accepts, prost decodes, with the same item count. Checked
/// over many corruptions of valid requests (a small deterministic fuzz).
#[test]
fn scan_accepts_only_what_prost_decodes() {
    let mut msg = traces(2, 3);
    msg.resource_spans[0].scope_spans[0].spans[0]
        .events
        .push(proto::trace::v1::span::Event {
            name: "e".into(),
            attributes: vec![kv("a", "b")],
            ..Default::default()
        });
    fuzz::<ExportTraceServiceRequest>(msg.encode_to_vec());

    use proto::metrics::v1::{
        ExponentialHistogram, ExponentialHistogramDataPoint, Histogram, HistogramDataPoint, Metric,
        exponential_histogram_data_point::Buckets, metric,
    };
    let metrics = ExportMetricsServiceRequest {
        resource_metrics: vec![proto::metrics::v1::ResourceMetrics {
            scope_metrics: vec![proto::metrics::v1::ScopeMetrics {
                metrics: vec![
                    Metric {
                        name: "h".into(),
                        data: Some(metric::Data::Histogram(Histogram {
                            data_points: vec![HistogramDataPoint {
                                bucket_counts: vec![1, 2, 3],
                                explicit_bounds: vec![1.0, 2.0],
                                attributes: vec![kv("k", "v")],
                                ..Default::default()
                            }],
                            aggregation_temporality: 2,
                        })),
                        ..Default::default()
                    },
                    Metric {
                        name: "e".into(),
                        data: Some(metric::Data::ExponentialHistogram(ExponentialHistogram {
                            data_points: vec![ExponentialHistogramDataPoint {
                                positive: Some(Buckets {
                                    offset: -2,
                                    bucket_counts: vec![5, 300, 70000],
                                }),
                                ..Default::default()
                            }],
                            aggregation_temporality: 1,
                        })),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    fuzz::<ExportMetricsServiceRequest>(metrics.encode_to_vec());
}

/// Scenario: spans, links, log records and exemplars carrying ids of every wrong length,
/// over protobuf and OTLP/JSON.
/// Guarantees: refused with upstream pdata's texts ("unmarshal: invalid TraceID length",
/// "unmarshal: invalid SpanID length"; "invalid length for ID" for JSON); empty and
/// correct-length ids pass.
#[test]
fn ids_of_the_wrong_length_are_refused() {
    let strip = |m: &str| {
        m.trim_start_matches("failed to decode OTLP protobuf: ")
            .to_owned()
    };
    let refused = |m: &ExportTraceServiceRequest| {
        TracesBatch::from_encoded(Bytes::from(m.encode_to_vec()))
            .err()
            .map(|e| strip(&e.to_string()))
    };
    let ok = traces(1, 2);
    assert_eq!(refused(&ok), None);
    let mut empty = ok.clone();
    empty.resource_spans[0].scope_spans[0].spans[0]
        .trace_id
        .clear();
    empty.resource_spans[0].scope_spans[0].spans[0]
        .span_id
        .clear();
    assert_eq!(refused(&empty), None);
    for len in [1usize, 8, 15, 17, 32] {
        let mut m = ok.clone();
        m.resource_spans[0].scope_spans[0].spans[1].trace_id = vec![1; len];
        assert_eq!(
            refused(&m).as_deref(),
            Some("unmarshal: invalid TraceID length"),
            "{len}"
        );
    }
    for len in [1usize, 7, 9, 16] {
        let mut m = ok.clone();
        m.resource_spans[0].scope_spans[0].spans[0].parent_span_id = vec![1; len];
        assert_eq!(
            refused(&m).as_deref(),
            Some("unmarshal: invalid SpanID length")
        );
        let mut m = ok.clone();
        m.resource_spans[0].scope_spans[0].spans[0]
            .links
            .push(proto::trace::v1::span::Link {
                trace_id: vec![1; 16],
                span_id: vec![1; len],
                ..Default::default()
            });
        assert_eq!(
            refused(&m).as_deref(),
            Some("unmarshal: invalid SpanID length")
        );
    }
    let logs = ExportLogsServiceRequest {
        resource_logs: vec![proto::logs::v1::ResourceLogs {
            scope_logs: vec![proto::logs::v1::ScopeLogs {
                log_records: vec![proto::logs::v1::LogRecord {
                    trace_id: vec![1; 12],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let e = Batch::from_encoded(Signal::Logs, Bytes::from(logs.encode_to_vec())).unwrap_err();
    assert_eq!(strip(&e.to_string()), "unmarshal: invalid TraceID length");
    use proto::metrics::v1::{Exemplar, Gauge, Metric, NumberDataPoint, metric};
    let metrics = ExportMetricsServiceRequest {
        resource_metrics: vec![proto::metrics::v1::ResourceMetrics {
            scope_metrics: vec![proto::metrics::v1::ScopeMetrics {
                metrics: vec![Metric {
                    name: "g".into(),
                    data: Some(metric::Data::Gauge(Gauge {
                        data_points: vec![NumberDataPoint {
                            exemplars: vec![Exemplar {
                                span_id: vec![1; 4],
                                ..Default::default()
                            }],
                            ..Default::default()
                        }],
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let bytes = Bytes::from(metrics.encode_to_vec());
    let e = Batch::from_encoded(Signal::Metrics, bytes).unwrap_err();
    assert_eq!(strip(&e.to_string()), "unmarshal: invalid SpanID length");
    assert!(Batch::from_json(Signal::Metrics, to_json(&metrics).unwrap().as_bytes()).is_err());

    let json = r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"0102","spanId":"0102030405060708","name":"x"}]}]}]}"#;
    let e = Batch::from_json(Signal::Traces, json.as_bytes()).unwrap_err();
    assert!(e.to_string().contains("invalid length for ID"), "{e}");
    let good = json.replace("\"0102\"", "\"0102030405060708090a0b0c0d0e0f10\"");
    assert!(Batch::from_json(Signal::Traces, good.as_bytes()).is_ok());
}

fn every_value() -> Vec<KeyValue> {
    use proto::common::v1::{ArrayValue, KeyValueList};
    let v = |value| AnyValue { value: Some(value) };
    vec![
        kv("s", "text \"quoted\" é"),
        KeyValue {
            key: "b".into(),
            value: Some(v(any_value::Value::BoolValue(true))),
            ..Default::default()
        },
        KeyValue {
            key: "i".into(),
            value: Some(v(any_value::Value::IntValue(-9_007_199_254_740_993))),
            ..Default::default()
        },
        KeyValue {
            key: "d".into(),
            value: Some(v(any_value::Value::DoubleValue(-0.125))),
            ..Default::default()
        },
        KeyValue {
            key: "bytes".into(),
            value: Some(v(any_value::Value::BytesValue(vec![0, 1, 254, 255, 7]))),
            ..Default::default()
        },
        KeyValue {
            key: "a".into(),
            value: Some(v(any_value::Value::ArrayValue(ArrayValue {
                values: vec![
                    v(any_value::Value::IntValue(0)),
                    v(any_value::Value::StringValue(String::new())),
                ],
            }))),
            ..Default::default()
        },
        KeyValue {
            key: "kv".into(),
            value: Some(v(any_value::Value::KvlistValue(KeyValueList {
                values: vec![kv("inner", "x")],
            }))),
            ..Default::default()
        },
    ]
}

fn every_resource() -> Resource {
    Resource {
        attributes: every_value(),
        dropped_attributes_count: 3,
        entity_refs: vec![proto::common::v1::EntityRef {
            schema_url: "u".into(),
            r#type: "service".into(),
            id_keys: vec!["service.name".into(), "service.namespace".into()],
            description_keys: vec!["d".into()],
        }],
    }
}

fn every_scope() -> proto::common::v1::InstrumentationScope {
    proto::common::v1::InstrumentationScope {
        name: "scope".into(),
        version: "1.2".into(),
        attributes: vec![kv("sa", "sv")],
        dropped_attributes_count: 4,
    }
}

fn every_trace_field() -> ExportTraceServiceRequest {
    use proto::trace::v1::{Status, span};
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(every_resource()),
            scope_spans: vec![ScopeSpans {
                scope: Some(every_scope()),
                spans: vec![
                    Span {
                        trace_id: (1..=16).collect(),
                        span_id: (1..=8).collect(),
                        trace_state: "a=b".into(),
                        parent_span_id: (9..=16).collect(),
                        flags: 0x301,
                        name: "op".into(),
                        kind: 3,
                        start_time_unix_nano: u64::MAX,
                        end_time_unix_nano: 1_700_000_000_000_000_001,
                        attributes: every_value(),
                        dropped_attributes_count: 5,
                        events: vec![span::Event {
                            time_unix_nano: 7,
                            name: "ev".into(),
                            attributes: vec![kv("e", "f")],
                            dropped_attributes_count: 6,
                        }],
                        dropped_events_count: 7,
                        links: vec![span::Link {
                            trace_id: vec![0xab; 16],
                            span_id: vec![0xcd; 8],
                            trace_state: "c=d".into(),
                            attributes: vec![kv("l", "m")],
                            dropped_attributes_count: 8,
                            flags: 0x100,
                        }],
                        dropped_links_count: 9,
                        status: Some(Status {
                            message: "bad".into(),
                            code: 2,
                        }),
                    },
                    Span::default(),
                ],
                schema_url: "scope-schema".into(),
            }],
            schema_url: "resource-schema".into(),
        }],
    }
}

fn every_log_field() -> ExportLogsServiceRequest {
    use proto::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(every_resource()),
            scope_logs: vec![ScopeLogs {
                scope: Some(every_scope()),
                log_records: vec![
                    LogRecord {
                        time_unix_nano: 1,
                        observed_time_unix_nano: 2,
                        severity_number: 17,
                        severity_text: "ERROR".into(),
                        body: Some(every_value().swap_remove(6).value.unwrap_or_default()),
                        attributes: every_value(),
                        dropped_attributes_count: 3,
                        flags: 1,
                        trace_id: vec![2; 16],
                        span_id: vec![3; 8],
                        event_name: "evt".into(),
                    },
                    LogRecord::default(),
                ],
                schema_url: "s".into(),
            }],
            schema_url: "r".into(),
        }],
    }
}

fn every_metric_field() -> ExportMetricsServiceRequest {
    use proto::metrics::v1::*;
    let exemplar = Exemplar {
        filtered_attributes: vec![kv("x", "y")],
        time_unix_nano: 11,
        span_id: vec![4; 8],
        trace_id: vec![5; 16],
        value: Some(exemplar::Value::AsInt(-3)),
    };
    let number = |value| NumberDataPoint {
        attributes: every_value(),
        start_time_unix_nano: 1,
        time_unix_nano: 2,
        exemplars: vec![exemplar.clone()],
        flags: 1,
        value: Some(value),
    };
    let metric = |name: &str, data| Metric {
        name: name.into(),
        description: "d".into(),
        unit: "ms".into(),
        metadata: vec![kv("m", "n")],
        data: Some(data),
    };
    let buckets = exponential_histogram_data_point::Buckets {
        offset: -4,
        bucket_counts: vec![0, 1, u64::MAX],
    };
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(every_resource()),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(every_scope()),
                metrics: vec![
                    metric(
                        "g",
                        metric::Data::Gauge(Gauge {
                            data_points: vec![number(number_data_point::Value::AsDouble(1.5))],
                        }),
                    ),
                    metric(
                        "s",
                        metric::Data::Sum(Sum {
                            data_points: vec![number(number_data_point::Value::AsInt(i64::MIN))],
                            aggregation_temporality: 2,
                            is_monotonic: true,
                        }),
                    ),
                    metric(
                        "h",
                        metric::Data::Histogram(Histogram {
                            data_points: vec![HistogramDataPoint {
                                attributes: vec![kv("h", "i")],
                                start_time_unix_nano: 1,
                                time_unix_nano: 2,
                                count: 3,
                                sum: Some(0.0),
                                bucket_counts: vec![1, 0, 2],
                                explicit_bounds: vec![0.5, 2.0],
                                exemplars: vec![exemplar.clone()],
                                flags: 1,
                                min: Some(-1.5),
                                max: Some(-3.0),
                            }],
                            aggregation_temporality: 1,
                        }),
                    ),
                    metric(
                        "e",
                        metric::Data::ExponentialHistogram(ExponentialHistogram {
                            data_points: vec![ExponentialHistogramDataPoint {
                                attributes: vec![kv("e", "f")],
                                start_time_unix_nano: 1,
                                time_unix_nano: 2,
                                count: 3,
                                sum: Some(4.5),
                                scale: -2,
                                zero_count: 1,
                                positive: Some(buckets.clone()),
                                negative: Some(buckets),
                                flags: 0,
                                exemplars: vec![exemplar],
                                min: Some(0.0),
                                max: Some(9.0),
                                zero_threshold: 1e-9,
                            }],
                            aggregation_temporality: 2,
                        }),
                    ),
                    metric(
                        "q",
                        metric::Data::Summary(Summary {
                            data_points: vec![SummaryDataPoint {
                                attributes: vec![kv("q", "r")],
                                start_time_unix_nano: 1,
                                time_unix_nano: 2,
                                count: 3,
                                sum: 6.5,
                                quantile_values: vec![summary_data_point::ValueAtQuantile {
                                    quantile: 0.99,
                                    value: 12.0,
                                }],
                                flags: 1,
                            }],
                        }),
                    ),
                ],
                schema_url: "s".into(),
            }],
            schema_url: "r".into(),
        }],
    }
}

/// Every OTLP field printed by opentelemetry-proto's serde reads back identically, in
/// lowerCamelCase and in snake_case, so the schema the transcoder follows has every field's
/// number and type right. (serde_json prints NaN and infinities as `null`, so the values
/// here are finite; their string forms are read in the next test.)
fn json_reads_back<M: OtlpRequest + serde::Serialize + fmt::Debug>(msg: M) {
    let json = to_json(&msg).unwrap();
    let back: M = from_json(json.as_bytes()).unwrap();
    assert_eq!(back.encode_to_vec(), msg.encode_to_vec(), "{json}");
    let batch = Batch::from_json(M::SIGNAL, json.as_bytes()).unwrap();
    assert_eq!(batch.item_count(), msg.count_items());
    let snake = snake_keys(&json);
    assert_ne!(snake, json);
    let back: M = from_json(snake.as_bytes()).unwrap();
    assert_eq!(back.encode_to_vec(), msg.encode_to_vec(), "{snake}");
}

/// Rewrites every object key to snake_case.
fn snake_keys(json: &str) -> String {
    fn walk(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(map) => {
                let old = std::mem::take(map);
                for (k, mut v) in old {
                    walk(&mut v);
                    let mut snake = String::new();
                    for c in k.chars() {
                        if c.is_ascii_uppercase() {
                            snake.push('_');
                            snake.push(c.to_ascii_lowercase());
                        } else {
                            snake.push(c);
                        }
                    }
                    map.insert(snake, v);
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    let mut v: serde_json::Value = serde_json::from_str(json).unwrap();
    walk(&mut v);
    v.to_string()
}

#[test]
fn json_reads_back_every_field_of_every_signal() {
    json_reads_back(every_trace_field());
    json_reads_back(every_log_field());
    json_reads_back(every_metric_field());
}

#[test]
fn json_accepts_numbers_as_strings_and_ignores_unknown_fields() {
    let json = r#"{"resourceSpans":[{"unknown":{"deep":[1,{"x":null}]},"scopeSpans":[{"spans":[
        {"traceId":"0102030405060708090A0B0C0D0E0F10","spanId":"","name":null,
         "kind":"2","startTimeUnixNano":1700000000000000000,"endTimeUnixNano":"1700000000000000001",
         "droppedAttributesCount":"4","status":{"code":2},
         "attributes":[{"key":"i","value":{"intValue":-5}},{"key":"d","value":{"doubleValue":"Infinity"}}]}
    ]}]}]}"#;
    let m: ExportTraceServiceRequest = from_json(json.as_bytes()).unwrap();
    let span = &m.resource_spans[0].scope_spans[0].spans[0];
    assert_eq!(span.trace_id, (1..=16).collect::<Vec<u8>>());
    assert!(span.span_id.is_empty());
    assert_eq!(span.kind, 2);
    assert_eq!(span.start_time_unix_nano, 1_700_000_000_000_000_000);
    assert_eq!(span.end_time_unix_nano, 1_700_000_000_000_000_001);
    assert_eq!(span.dropped_attributes_count, 4);
    assert_eq!(span.status.as_ref().map(|s| s.code), Some(2));
    assert_eq!(
        span.attributes[0].value.as_ref().unwrap().value,
        Some(any_value::Value::IntValue(-5))
    );
    assert_eq!(
        span.attributes[1].value.as_ref().unwrap().value,
        Some(any_value::Value::DoubleValue(f64::INFINITY))
    );

    for bad in [
        r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"kind":"x"}]}]}]}"#,
        r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"droppedAttributesCount":-1}]}]}]}"#,
        r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":3}]}]}]}"#,
        r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz02030405060708090a0b0c0d0e0f10"}]}]}]}"#,
        r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{}]}]}]} trailing"#,
        r#"{"resourceSpans":{}}"#,
    ] {
        let e = Batch::from_json(Signal::Traces, bad.as_bytes()).unwrap_err();
        assert!(matches!(e, JsonError::Json { .. }), "{bad}: {e:?}");
    }
}

/// Splits `batch` repeatedly at `max` items and returns the parts.
fn parts<M: OtlpRequest>(mut batch: Payload<M>, max: usize) -> Vec<Payload<M>> {
    let mut out = Vec::new();
    while let Some(front) = batch.split_front(max).unwrap() {
        out.push(front);
    }
    out.push(batch);
    out
}

#[test]
fn encoded_logs_split_over_their_bytes_like_the_decoded_split() {
    let record = |i: u8| proto::logs::v1::LogRecord {
        severity_text: format!("r{i}"),
        trace_id: vec![i; 16],
        ..Default::default()
    };
    let logs = ExportLogsServiceRequest {
        resource_logs: (0..2u8)
            .map(|r| proto::logs::v1::ResourceLogs {
                resource: Some(Resource {
                    attributes: vec![kv("service.name", &format!("svc{r}"))],
                    ..Default::default()
                }),
                scope_logs: (0..3u8)
                    .map(|s| proto::logs::v1::ScopeLogs {
                        log_records: (0..5).map(|i| record(r * 100 + s * 10 + i)).collect(),
                        schema_url: format!("scope{s}"),
                        ..Default::default()
                    })
                    .collect(),
                schema_url: format!("res{r}"),
            })
            .collect(),
    };
    for max in [1, 4, 5, 11, 15, 29] {
        let encoded = parts(
            LogsBatch::from_encoded(Bytes::from(logs.encode_to_vec())).unwrap(),
            max,
        );
        let decoded = parts(LogsBatch::from_message(logs.clone()), max);
        assert!(encoded.iter().all(LogsBatch::is_encoded), "max {max}");
        let sizes: Vec<usize> = encoded.iter().map(LogsBatch::item_count).collect();
        assert!(sizes.iter().all(|n| *n <= max), "max {max}: {sizes:?}");
        assert_eq!(sizes.iter().sum::<usize>(), 30);
        let messages = |p: &[LogsBatch]| -> Vec<ExportLogsServiceRequest> {
            p.iter().map(|b| b.to_message().unwrap()).collect()
        };
        assert_eq!(messages(&encoded), messages(&decoded), "max {max}");
        // The counts carried without a scan are the true ones.
        for p in &encoded {
            assert_eq!(p.item_count(), p.to_message().unwrap().count_items());
        }
    }
}

#[test]
fn encoded_metrics_split_between_metrics_by_data_points() {
    use proto::metrics::v1::{Gauge, Metric, NumberDataPoint, metric};
    let gauge = |name: &str, points: usize| Metric {
        name: name.into(),
        data: Some(metric::Data::Gauge(Gauge {
            data_points: vec![NumberDataPoint::default(); points],
        })),
        ..Default::default()
    };
    let metrics = ExportMetricsServiceRequest {
        resource_metrics: vec![proto::metrics::v1::ResourceMetrics {
            scope_metrics: vec![proto::metrics::v1::ScopeMetrics {
                metrics: vec![gauge("a", 3), gauge("b", 3), gauge("c", 5), gauge("d", 1)],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let batch = MetricsBatch::from_encoded(Bytes::from(metrics.encode_to_vec())).unwrap();
    let got = parts(batch, 4);
    assert!(got.iter().all(MetricsBatch::is_encoded));
    // A metric's points stay together; one larger than the limit goes alone.
    let sizes: Vec<usize> = got.iter().map(MetricsBatch::item_count).collect();
    assert_eq!(sizes, [3, 3, 5, 1]);
    let names: Vec<Vec<String>> = got
        .iter()
        .map(|b| {
            let m = b.to_message().unwrap();
            assert_eq!(b.item_count(), m.count_items());
            m.resource_metrics
                .iter()
                .flat_map(|r| &r.scope_metrics)
                .flat_map(|s| s.metrics.iter().map(|m| m.name.clone()))
                .collect()
        })
        .collect();
    assert_eq!(names, [["a"], ["b"], ["c"], ["d"]]);
}

/// Scenario: a batch with a request context is split over its bytes, decoded and split,
/// re-encoded, appended to an empty batch and concatenated.
/// Guarantees: every result carries the context; keys are matched without case.
#[test]
fn request_context_survives_every_transformation() {
    let ctx = RequestContext::new([("X-Tenant", vec!["acme".to_owned()])]);
    assert_eq!(ctx.get("x-tenant"), ["acme".to_owned()]);
    assert_eq!(ctx.get("X-TENANT"), ["acme".to_owned()]);
    assert!(RequestContext::new([("k", Vec::new())]).is_empty());
    let req = ExportTraceServiceRequest {
        resource_spans: (0..4)
            .map(|i| proto::trace::v1::ResourceSpans {
                scope_spans: vec![proto::trace::v1::ScopeSpans {
                    spans: vec![proto::trace::v1::Span {
                        name: format!("s{i}"),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect(),
    };
    let mut b = Batch::from_encoded(Signal::Traces, Bytes::from(req.encode_to_vec()))
        .unwrap()
        .with_context(ctx.clone());
    let front = b.split_front(1).unwrap().unwrap();
    assert_eq!(front.context(), &ctx);
    assert_eq!(b.context(), &ctx);
    let mut decoded = Batch::Traces(TracesBatch::from_message(req)).with_context(ctx.clone());
    let part = decoded.split_front(2).unwrap().unwrap();
    assert_eq!(part.context(), &ctx);
    assert_eq!(decoded.clone().into_encoded().context(), &ctx);
    let mut empty = Batch::empty(Signal::Traces);
    empty.append(front.clone()).unwrap();
    assert_eq!(empty.context(), &ctx);
    assert_eq!(Batch::concat(Signal::Traces, &[front, b]).context(), &ctx);
}

/// The wire partition gives each part exactly what partitioning the decoded message gives:
/// the same items in order, under their resources and scopes (schema URLs kept), empty
/// resources and scopes dropped, and the context kept.
#[test]
fn partition_by_field_matches_the_decoded_partition() {
    let mut req = every_trace_field();
    let mut more = traces(3, 5);
    // Spread spans over trace ids, add a second scope and an empty one.
    for (n, rs) in more.resource_spans.iter_mut().enumerate() {
        rs.schema_url = format!("https://schema/{n}");
        for (i, span) in rs.scope_spans[0].spans.iter_mut().enumerate() {
            span.trace_id = vec![(n * 7 + i) as u8; 16];
        }
        let mut second = rs.scope_spans[0].clone();
        second.schema_url = "https://scope-schema".into();
        rs.scope_spans.push(second);
        rs.scope_spans.push(ScopeSpans::default());
    }
    req.resource_spans.extend(more.resource_spans);
    let route = |id: &[u8]| id.first().map_or(0, |b| usize::from(*b % 3));
    let context = RequestContext::new([("x-tenant", vec!["a".to_owned()])]);
    let batch = TracesBatch::from_encoded(Bytes::from(req.encode_to_vec()))
        .unwrap()
        .with_context(context.clone());
    let parts = batch.partition_by_field(3, 1, route).unwrap().unwrap();
    assert_eq!(parts.len(), 3);
    for (p, part) in parts.iter().enumerate() {
        // The same partition over the decoded message.
        let mut want = req.clone();
        for rs in &mut want.resource_spans {
            for ss in &mut rs.scope_spans {
                ss.spans.retain(|s| route(&s.trace_id) == p);
            }
            rs.scope_spans.retain(|ss| !ss.spans.is_empty());
        }
        want.resource_spans.retain(|rs| !rs.scope_spans.is_empty());
        match part {
            None => assert!(want.resource_spans.is_empty(), "part {p} empty"),
            Some(got) => {
                assert_eq!(got.to_message().unwrap(), want, "part {p}");
                assert_eq!(
                    got.item_count(),
                    TracesBatch::from_message(want).item_count()
                );
                assert_eq!(got.context(), &context);
            }
        }
    }
    let total: usize = parts.iter().flatten().map(|p| p.item_count()).sum();
    assert_eq!(total, batch.item_count());
    // A decoded batch is not partitioned here.
    let decoded = TracesBatch::from_message(req);
    assert!(decoded.partition_by_field(3, 1, route).unwrap().is_none());
}
