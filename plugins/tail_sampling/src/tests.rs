use wasmcol_sdk::testing::{self, MemSpan, MemTraces, span};
use wasmcol_sdk::{Decision as HostDecision, Processor, Traces, Value};

use super::*;
use crate::policy::{fnv1a64, threshold};

fn hex16(s: &str) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

fn timed(name: &str, start_ms: u64, end_ms: u64) -> MemSpan {
    let mut s = span(name);
    s.info.start_time_unix_nano = start_ms * 1_000_000;
    s.info.end_time_unix_nano = end_ms * 1_000_000;
    s
}

fn status(mut s: MemSpan, code: i32) -> MemSpan {
    s.info.status_code = code;
    s
}

fn one_trace(spans: Vec<MemSpan>, resource: &[(&str, Value)]) -> MemTraces {
    MemTraces::new().resource(resource, |r| {
        r.scope("lib", |sc| {
            for s in spans {
                sc.item(s);
            }
        });
    })
}

fn decide(p: &mut TailSampling, batch: &MemTraces) -> bool {
    p.decide_trace(Traces::new(batch), 0, 5_000_000_000)
        .unwrap()
        == HostDecision::Sampled
}

fn build(policies: &str) -> TailSampling {
    testing::build(&format!(
        r#"{{"decision_wait": "2s", "policies": {policies}}}"#
    ))
    .unwrap()
}

fn errors(json: &str) -> Vec<(String, String)> {
    testing::build::<TailSampling>(json)
        .err()
        .unwrap()
        .0
        .into_iter()
        .map(|e| (e.path, e.message))
        .collect()
}

/// The reference vector: default salt, trace 4bf92f35…, FNV-1a-64 a54533ba2e4970b5, not
/// sampled at 10 %.
#[test]
fn probabilistic_hash_is_upstreams() {
    let id = hex16("4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(fnv1a64(&[b"default-hash-seed", &id]), 0xa545_33ba_2e49_70b5);
    let mut p = build(
        r#"[{"name": "p", "type": "probabilistic", "probabilistic": {"sampling_percentage": 10}}]"#,
    );
    let batch = one_trace(vec![span("a").trace_id(id)], &[]);
    assert!(!decide(&mut p, &batch));
    // 70 % keeps it (a545… is about 64.5 % of the range).
    let mut p = build(
        r#"[{"name": "p", "type": "probabilistic", "probabilistic": {"sampling_percentage": 70}}]"#,
    );
    assert!(decide(&mut p, &batch));
}

/// Go's big.Float: MaxUint64 × ratio rounded to 64 bits, truncated.
#[test]
fn threshold_matches_big_float() {
    assert_eq!(threshold(0.0), 0);
    assert_eq!(threshold(1.0), u64::MAX);
    assert_eq!(threshold(0.5), 0x7fff_ffff_ffff_ffff);
    // 0.1 is 0x3FB999999999999A; the exact product, rounded to 64 bits, truncates to …263.
    assert_eq!(threshold(0.1), 1_844_674_407_370_955_263);
}

#[test]
fn latency_status_and_final_rules() {
    let mut p = build(
        r#"[{"name": "errors", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}},
            {"name": "slow", "type": "latency", "latency": {"threshold_ms": 500}}]"#,
    );
    assert!(decide(
        &mut p,
        &one_trace(vec![status(timed("a", 0, 10), 2)], &[])
    ));
    assert!(decide(
        &mut p,
        &one_trace(vec![timed("a", 0, 100), timed("b", 400, 500)], &[])
    ));
    assert!(!decide(&mut p, &one_trace(vec![timed("a", 0, 499)], &[])));
    // Upper bound: strictly above the lower one.
    let mut p = build(
        r#"[{"name": "l", "type": "latency", "latency": {"threshold_ms": 100, "upper_threshold_ms": 200}}]"#,
    );
    assert!(!decide(&mut p, &one_trace(vec![timed("a", 0, 100)], &[])));
    assert!(decide(&mut p, &one_trace(vec![timed("a", 0, 200)], &[])));
}

#[test]
fn string_attribute_regex_and_invert_read_resources_and_spans() {
    let mut p = build(
        r#"[{"name": "s", "type": "string_attribute", "string_attribute": {"key": "service.name", "values": ["^check.*"], "enabled_regex_matching": true}}]"#,
    );
    assert!(decide(
        &mut p,
        &one_trace(
            vec![span("a")],
            &[("service.name", Value::from("checkout"))]
        )
    ));
    assert!(!decide(
        &mut p,
        &one_trace(vec![span("a")], &[("service.name", Value::from("cart"))])
    ));
    let mut p = build(
        r#"[{"name": "s", "type": "string_attribute", "string_attribute": {"key": "env", "values": ["test"], "invert_match": true}}]"#,
    );
    // A missing key samples under invert_match; a match does not.
    assert!(decide(&mut p, &one_trace(vec![span("a")], &[])));
    assert!(!decide(
        &mut p,
        &one_trace(vec![span("a").attr("env", "test")], &[])
    ));
}

#[test]
fn numeric_boolean_span_count_trace_state_and_flags() {
    let mut p = build(
        r#"[{"name": "n", "type": "numeric_attribute", "numeric_attribute": {"key": "http.status_code", "min_value": 500, "max_value": 599}}]"#,
    );
    assert!(decide(
        &mut p,
        &one_trace(vec![span("a").attr("http.status_code", 503i64)], &[])
    ));
    assert!(!decide(
        &mut p,
        &one_trace(vec![span("a").attr("http.status_code", 200i64)], &[])
    ));
    let mut p = build(
        r#"[{"name": "b", "type": "boolean_attribute", "boolean_attribute": {"key": "debug", "value": true}}]"#,
    );
    assert!(decide(
        &mut p,
        &one_trace(vec![span("a").attr("debug", true)], &[])
    ));
    let mut p = build(r#"[{"name": "c", "type": "span_count", "span_count": {"min_spans": 2}}]"#);
    assert!(!decide(&mut p, &one_trace(vec![span("a")], &[])));
    assert!(decide(&mut p, &one_trace(vec![span("a"), span("b")], &[])));
    let mut p = build(
        r#"[{"name": "t", "type": "trace_state", "trace_state": {"key": "vendor", "values": ["keep"]}}]"#,
    );
    assert!(decide(
        &mut p,
        &one_trace(vec![span("a").trace_state("x=1,vendor=keep")], &[])
    ));
    let mut p = build(r#"[{"name": "f", "type": "trace_flags"}]"#);
    let mut flagged = span("a");
    flagged.info.flags = 1;
    assert!(decide(&mut p, &one_trace(vec![flagged], &[])));
    assert!(!decide(&mut p, &one_trace(vec![span("a")], &[])));
}

#[test]
fn and_drop_and_rate_limits() {
    let mut p = build(
        r#"[{"name": "all", "type": "always_sample"},
            {"name": "no-health", "type": "drop", "drop": {"drop_sub_policy": [
                {"name": "h", "type": "string_attribute", "string_attribute": {"key": "http.route", "values": ["/health"]}}]}}]"#,
    );
    assert!(decide(&mut p, &one_trace(vec![span("a")], &[])));
    assert!(!decide(
        &mut p,
        &one_trace(vec![span("a").attr("http.route", "/health")], &[])
    ));
    let mut p = build(
        r#"[{"name": "both", "type": "and", "and": {"and_sub_policy": [
                {"name": "e", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}},
                {"name": "c", "type": "span_count", "span_count": {"min_spans": 2}}]}}]"#,
    );
    assert!(!decide(&mut p, &one_trace(vec![status(span("a"), 2)], &[])));
    assert!(decide(
        &mut p,
        &one_trace(vec![status(span("a"), 2), span("b")], &[])
    ));
    // 2 spans per second, burst 4: two 2-span traces pass, the third waits for tokens.
    let mut p = build(
        r#"[{"name": "r", "type": "rate_limiting", "rate_limiting": {"spans_per_second": 2}}]"#,
    );
    let t = one_trace(vec![span("a"), span("b")], &[]);
    assert!(decide(&mut p, &t));
    assert!(decide(&mut p, &t));
    assert!(!decide(&mut p, &t));
}

#[test]
fn composite_shares_spans_per_second() {
    let mut p = build(
        r#"[{"name": "c", "type": "composite", "composite": {
            "max_total_spans_per_second": 4,
            "policy_order": ["errors", "rest"],
            "composite_sub_policy": [
                {"name": "errors", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}},
                {"name": "rest", "type": "always_sample"}],
            "rate_allocation": [{"policy": "errors", "percent": 50}, {"policy": "rest", "percent": 50}]}}]"#,
    );
    let err = one_trace(vec![status(span("a"), 2), status(span("b"), 2)], &[]);
    assert!(decide(&mut p, &err));
    assert!(
        !decide(&mut p, &err),
        "the errors share (2 spans/s) is used up"
    );
    assert!(decide(&mut p, &one_trace(vec![span("a")], &[])));
}

#[test]
fn config_errors_are_upstreams_with_key_paths() {
    let e = errors(
        r#"{"policies": [
            {"name": "", "type": "always_sample"},
            {"name": "a", "type": "always_sample"},
            {"name": "a", "type": "always_sample"},
            {"name": "x", "type": "nope"},
            {"name": "s", "type": "status_code", "status_code": {"status_codes": ["BAD"]}},
            {"name": "o", "type": "ottl_condition", "ottl_condition": {"span": ["true"]}},
            {"name": "n", "type": "and", "and": {"and_sub_policy": [{"name": "d", "type": "drop"}]}}]}"#,
    );
    let want = [
        ("policies[0].name", "policy name cannot be empty"),
        ("policies[2].name", "duplicate policy name \"a\""),
        (
            "policies[3].type",
            "failed to create policy evaluator for \"x\": unknown sampling policy type nope",
        ),
        (
            "policies[4].status_code.status_codes",
            "failed to create policy evaluator for \"s\": unknown status code \"BAD\", supported: OK, ERROR, UNSET",
        ),
        (
            "policies[6].and.and_sub_policy[0].type",
            "failed to create policy evaluator for \"n\": unknown sampling policy type drop",
        ),
    ];
    for (path, message) in want {
        assert!(
            e.iter().any(|(p, m)| p == path && m == message),
            "missing {path}: {message} in {e:?}"
        );
    }
    assert!(
        e.iter()
            .any(|(p, m)| p == "policies[5].type" && m.contains("ottl_condition is not supported")),
        "{e:?}"
    );
    let e = errors(r#"{"decision_wait": "soon", "policies": []}"#);
    assert_eq!(e[0].0, "decision_wait");
    let e = errors(r#"{"num_traces": 0, "policies": [], "unknown_key": 1}"#);
    assert_eq!(e[0].0, "unknown_key");
}

#[test]
fn holds_traces_with_the_configured_buffer() {
    let p: TailSampling = testing::build(
        r#"{"decision_wait": "10s", "num_traces": 100, "decision_cache": {"sampled_cache_size": 7}, "policies": []}"#,
    )
    .unwrap();
    let h = p.hold_traces().unwrap();
    assert_eq!(h.decision_wait_ms, 10_000);
    assert_eq!(h.num_traces, 100);
    assert_eq!(h.sampled_cache_size, 7);
    let d: TailSampling = testing::build(r#"{"policies": []}"#).unwrap();
    assert_eq!(d.hold_traces().unwrap().decision_wait_ms, 30_000);
    assert_eq!(d.hold_traces().unwrap().num_traces, 50_000);
}

#[test]
fn metrics_count_per_policy_and_overall() {
    let mut p = build(r#"[{"name": "all", "type": "always_sample"}]"#);
    decide(&mut p, &one_trace(vec![span("a")], &[]));
    let v = wasmcol_sdk::metrics::value(
        "otelcol_processor_tail_sampling_count_traces_sampled",
        &[("policy", "all"), ("sampled", "true")],
    );
    assert_eq!(v, Some(1.0));
    let g = wasmcol_sdk::metrics::value(
        "otelcol_processor_tail_sampling_global_count_traces_sampled",
        &[("sampled", "true")],
    );
    assert_eq!(g, Some(1.0));
    decide(&mut p, &one_trace(vec![span("a"), span("b")], &[]));
    let spans = wasmcol_sdk::metrics::value(
        "otelcol_processor_tail_sampling_count_spans_sampled",
        &[("policy", "all"), ("sampled", "true")],
    );
    assert_eq!(spans, Some(3.0));
}
