//! Behaviour and error texts checked against upstream's attraction and filter packages
//! (contrib `internal/coreinternal/attraction`, `internal/filter`). Hash digests are the
//! SHA-256 of the byte encodings upstream's hasher feeds (computed independently).

use super::filter::{MatchConfig, Selector, Subject};
use super::*;
use wasmcol_sdk::{ScopeInfo, Signal};

fn actions(json: &str) -> Result<Vec<Action>, ConfigErrors> {
    let cfg: Vec<ActionConfig> = serde_json::from_str(json).unwrap();
    build_actions("actions", &cfg)
}

fn err(json: &str) -> String {
    let e = actions(json).unwrap_err();
    assert_eq!(e.0.len(), 1, "{e}");
    format!("{}", e.0[0])
}

fn attrs(list: &[(&str, Value)]) -> Attrs {
    list.iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

fn run(json: &str, input: &[(&str, Value)]) -> Attrs {
    let a = actions(json).unwrap();
    let mut at = attrs(input);
    apply(&a, &mut at);
    at
}

#[test]
fn insert_sets_only_missing_keys() {
    let a = r#"[{"key":"k","value":"new","action":"insert"}]"#;
    assert_eq!(run(a, &[]), attrs(&[("k", "new".into())]));
    assert_eq!(
        run(a, &[("k", "old".into())]),
        attrs(&[("k", "old".into())])
    );
}

#[test]
fn update_sets_only_present_keys() {
    let a = r#"[{"key":"k","value":123,"action":"UPDATE"}]"#;
    assert_eq!(run(a, &[]), attrs(&[]));
    assert_eq!(
        run(a, &[("k", "old".into())]),
        attrs(&[("k", Value::Int(123))])
    );
}

#[test]
fn upsert_sets_always_with_inferred_types() {
    let a =
        r#"[{"key":"b","value":true,"action":"upsert"},{"key":"d","value":1.5,"action":"upsert"}]"#;
    assert_eq!(
        run(a, &[("b", "x".into())]),
        attrs(&[("b", Value::Bool(true)), ("d", Value::Double(1.5))])
    );
}

#[test]
fn from_attribute_copies_and_missing_source_is_noop() {
    let a = r#"[{"key":"copy","from_attribute":"src","action":"upsert"}]"#;
    assert_eq!(
        run(a, &[("src", Value::Int(7))]),
        attrs(&[("src", Value::Int(7)), ("copy", Value::Int(7))])
    );
    assert_eq!(run(a, &[]), attrs(&[]));
}

#[test]
fn from_context_unresolved_is_never_found() {
    let a = r#"[{"key":"tenant","from_context":"metadata.tenant","action":"upsert"}]"#;
    assert_eq!(run(a, &[]), attrs(&[]));
}

/// Upstream's lookups: `metadata.` prefix or a bare key read a header, `auth.` the
/// authenticator's attribute, several values are joined with `;`, and an action whose key is
/// absent does nothing.
#[test]
fn from_context_resolves_like_upstream() {
    let a = r#"[{"key":"t1","from_context":"metadata.x-tenant","action":"upsert"},
        {"key":"t2","from_context":"x-tenant","action":"insert"},
        {"key":"user","from_context":"auth.username","action":"upsert"},
        {"key":"many","from_context":"x-many","action":"upsert"},
        {"key":"none","from_context":"x-none","action":"upsert"}]"#;
    let cfg: Vec<ActionConfig> = serde_json::from_str(a).unwrap();
    let actions = build_actions("actions", &cfg).unwrap();
    assert!(uses_context(&actions));
    let resolved = resolve_context(&actions, |k| match k {
        "x-tenant" => vec!["acme".to_owned()],
        "auth.username" => vec!["ann".to_owned()],
        "x-many" => vec!["a".to_owned(), "b".to_owned()],
        _ => Vec::new(),
    });
    assert_eq!(resolved.len(), 4);
    let mut got = attrs(&[]);
    apply(&resolved, &mut got);
    assert_eq!(
        got,
        attrs(&[
            ("t1", "acme".into()),
            ("t2", "acme".into()),
            ("user", "ann".into()),
            ("many", "a;b".into())
        ])
    );
}

#[test]
fn delete_by_key_and_pattern() {
    let a = r#"[{"key":"a","pattern":"^secret\\.","action":"delete"}]"#;
    assert_eq!(
        run(
            a,
            &[
                ("a", "1".into()),
                ("secret.x", "2".into()),
                ("keep", "3".into()),
                ("my.secret.y", "4".into())
            ]
        ),
        attrs(&[("keep", "3".into()), ("my.secret.y", "4".into())])
    );
}

#[test]
fn hash_matches_upstream_sha256_encodings() {
    let a = r#"[{"key":"s","action":"hash"},{"key":"i","action":"hash"},{"key":"d","action":"hash"},
        {"key":"t","action":"hash"},{"key":"f","action":"hash"},{"key":"e","action":"hash"},{"key":"b","action":"hash"}]"#;
    let out = run(
        a,
        &[
            ("s", "foo".into()),
            ("i", Value::Int(123)),
            ("d", Value::Double(2.5)),
            ("t", Value::Bool(true)),
            ("f", Value::Bool(false)),
            ("e", "".into()),
            ("b", Value::Bytes(vec![1, 2])),
        ],
    );
    assert_eq!(
        out,
        attrs(&[
            (
                "s",
                "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae".into()
            ),
            (
                "i",
                "4f319987a786107dc63b2b70115b3734cb9880b099b70c463c5e1b05521ab764".into()
            ),
            (
                "d",
                "5caaabe50da77f59f448b3edf650d68fbca7b858390664c251c52b3f458a881c".into()
            ),
            (
                "t",
                "4bf5122f344554c53bde2ebb8cd2b7e3d1600ad631c385a5d7cce23c7785459a".into()
            ),
            (
                "f",
                "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d".into()
            ),
            // An empty string and non-scalar values hash to "".
            ("e", "".into()),
            ("b", "".into()),
        ])
    );
}

#[test]
fn hash_key_that_also_matches_pattern_is_hashed_twice() {
    let a = r#"[{"key":"user.id","pattern":"^user\\.","action":"hash"}]"#;
    assert_eq!(
        run(a, &[("user.id", "foo".into())]),
        attrs(&[(
            "user.id",
            "505221025f9701f8a05cc22cbafeec897598b2924a9d665cbc10f0073d66da20".into()
        )])
    );
}

#[test]
fn extract_named_groups_from_strings_only() {
    let a = r#"[{"key":"http.url","pattern":"^(?P<http_protocol>.*):\\/\\/(?P<http_domain>.*)\\/(?P<http_path>.*)(?:\\?|\\&)(?P<http_query_params>.*)","action":"extract"}]"#;
    let out = run(
        a,
        &[(
            "http.url",
            "http://example.com/path?queryParam1=value1,queryParam2=value2".into(),
        )],
    );
    assert_eq!(
        out,
        attrs(&[
            (
                "http.url",
                "http://example.com/path?queryParam1=value1,queryParam2=value2".into()
            ),
            ("http_protocol", "http".into()),
            ("http_domain", "example.com".into()),
            ("http_path", "path".into()),
            (
                "http_query_params",
                "queryParam1=value1,queryParam2=value2".into()
            ),
        ])
    );
    // Not a string, or no match: nothing happens.
    assert_eq!(
        run(a, &[("http.url", Value::Int(1))]),
        attrs(&[("http.url", Value::Int(1))])
    );
    assert_eq!(
        run(a, &[("http.url", "nope".into())]),
        attrs(&[("http.url", "nope".into())])
    );
}

#[test]
fn extract_overwrites_existing_targets() {
    let a = r#"[{"key":"p","pattern":"^/(?P<version>v\\d+)/","action":"extract"}]"#;
    assert_eq!(
        run(a, &[("version", "old".into()), ("p", "/v2/users".into())]),
        attrs(&[("version", "v2".into()), ("p", "/v2/users".into())])
    );
}

#[test]
fn convert_follows_upstream_rules() {
    let a = r#"[{"key":"a","action":"convert","converted_type":"int"},
        {"key":"b","action":"convert","converted_type":"int"},
        {"key":"c","action":"convert","converted_type":"int"},
        {"key":"d","action":"convert","converted_type":"double"},
        {"key":"e","action":"convert","converted_type":"string"},
        {"key":"f","action":"convert","converted_type":"string"},
        {"key":"g","action":"convert","converted_type":"double"}]"#;
    let out = run(
        a,
        &[
            ("a", "123".into()),
            ("b", Value::Double(-2.9)),
            ("c", "12.5".into()),
            ("d", Value::Bool(true)),
            ("e", Value::Double(2.0)),
            ("f", Value::Bool(false)),
            ("g", "3.25".into()),
        ],
    );
    assert_eq!(
        out,
        attrs(&[
            ("a", Value::Int(123)),
            ("b", Value::Int(-2)),
            // Unconvertible: left as is.
            ("c", "12.5".into()),
            ("d", Value::Double(1.0)),
            ("e", "2".into()),
            ("f", "false".into()),
            ("g", Value::Double(3.25)),
        ])
    );
}

#[test]
fn actions_apply_in_order() {
    let a = r#"[{"key":"x","value":"1","action":"insert"},{"key":"y","from_attribute":"x","action":"insert"},{"key":"x","action":"delete"}]"#;
    assert_eq!(run(a, &[]), attrs(&[("y", "1".into())]));
}

#[test]
fn config_errors_use_upstream_texts() {
    assert_eq!(
        err(r#"[{"value":1,"action":"insert"}]"#),
        "actions[0]: error creating AttrProc due to missing required field \"key\" at the 0-th actions"
    );
    assert_eq!(
        err(r#"[{"action":"delete"}]"#),
        "actions[0]: error creating AttrProc due to missing required field (at least one of \"key\" and \"pattern\" have to be used) at the 0-th actions"
    );
    assert_eq!(
        err(r#"[{"key":"k","action":"upsert"}]"#),
        "actions[0]: error creating AttrProc. Either field \"value\", \"from_attribute\" or \"from_context\" setting must be specified for 0-th action"
    );
    assert_eq!(
        err(r#"[{"key":"k","value":1,"from_attribute":"x","action":"upsert"}]"#),
        "actions[0]: error creating AttrProc due to multiple value sources being set at the 0-th actions"
    );
    assert_eq!(
        err(r#"[{"key":"k","value":1,"pattern":"x","action":"insert"}]"#),
        "actions[0]: error creating AttrProc. Action \"insert\" does not use the \"pattern\" field. This must not be specified for 0-th action"
    );
    assert_eq!(
        err(r#"[{"key":"k","value":1,"action":"delete"}]"#),
        "actions[0]: error creating AttrProc. Action \"delete\" does not use \"value\" or \"from_attribute\" field. These must not be specified for 0-th action"
    );
    assert_eq!(
        err(r#"[{"key":"k","action":"extract"}]"#),
        "actions[0]: error creating AttrProc due to missing required field \"pattern\" for action \"extract\" at the 0-th action"
    );
    assert_eq!(
        err(r#"[{"key":"k","pattern":"a+","action":"extract"}]"#),
        "actions[0]: error creating AttrProc. Field \"pattern\" contains no named matcher groups at the 0-th actions"
    );
    // Go's SubexpNames counts unnamed groups too: "(a)" has an unnamed group.
    assert_eq!(
        err(r#"[{"key":"k","pattern":"(a)","action":"extract"}]"#),
        "actions[0]: error creating AttrProc. Field \"pattern\" contains at least one unnamed matcher group at the 0-th actions"
    );
    assert_eq!(
        err(r#"[{"key":"k","pattern":"(?P<x>a)(b)","action":"extract"}]"#),
        "actions[0]: error creating AttrProc. Field \"pattern\" contains at least one unnamed matcher group at the 0-th actions"
    );
    assert_eq!(
        err(r#"[{"key":"k","pattern":"(","action":"hash"}]"#),
        "actions[0]: error creating AttrProc. Field \"pattern\" has invalid pattern: \"(\" to be set at the 0-th actions"
    );
    assert_eq!(
        err(r#"[{"key":"k","action":"convert"}]"#),
        "actions[0]: error creating AttrProc due to missing required field \"converted_type\" for action \"convert\" at the 0-th action"
    );
    assert_eq!(
        err(r#"[{"key":"k","action":"convert","converted_type":"bool"}]"#),
        "actions[0]: error creating AttrProc due to invalid value \"bool\" in field \"converted_type\" for action \"convert\" at the 0-th action"
    );
    assert_eq!(
        err(r#"[{"key":"k","value":1,"action":"convert","converted_type":"int"}]"#),
        "actions[0]: error creating AttrProc. Action \"convert\" does not use value sources or \"pattern\" field. These must not be specified for 0-th action"
    );
    assert_eq!(
        err(r#"[{"key":"k","value":1,"action":"upsert","converted_type":"int"}]"#),
        "actions[0]: error creating AttrProc. Action \"upsert\" does not use the \"converted_type\" field. This must not be specified for 0-th action"
    );
    assert_eq!(
        err(r#"[{"key":"k","action":"explode"}]"#),
        "actions[0]: error creating AttrProc due to unsupported action \"explode\" at the 0-th actions"
    );
}

#[test]
fn every_bad_action_is_reported() {
    let e = actions(r#"[{"action":"insert"},{"key":"ok","value":1,"action":"insert"},{"key":"k","action":"nope"}]"#)
        .unwrap_err();
    let paths: Vec<_> = e.0.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["actions[0]", "actions[2]"]);
}

fn selector(include: Option<&str>, exclude: Option<&str>, signal: Signal) -> Selector {
    let i: Option<MatchConfig> = include.map(|j| serde_json::from_str(j).unwrap());
    let e: Option<MatchConfig> = exclude.map(|j| serde_json::from_str(j).unwrap());
    Selector::build(i.as_ref(), e.as_ref(), signal).unwrap()
}

fn build_err(include: &str, signal: Signal) -> String {
    let i: MatchConfig = serde_json::from_str(include).unwrap();
    let e = Selector::build(Some(&i), None, signal).unwrap_err();
    e[0].1.clone()
}

#[test]
fn include_strict_services_and_span_names() {
    let s = selector(
        Some(r#"{"match_type":"strict","services":["svcA","svcB"],"span_names":["login"]}"#),
        None,
        Signal::Traces,
    );
    let res = attrs(&[("service.name", "svcB".into())]);
    let yes = Subject {
        resource: Some(&res),
        span: Some(("login", 2)),
        ..Subject::default()
    };
    assert!(s.selects(&yes));
    let wrong_name = Subject {
        resource: Some(&res),
        span: Some(("logout", 2)),
        ..Subject::default()
    };
    assert!(!s.selects(&wrong_name));
    let no_service = Subject {
        span: Some(("login", 2)),
        ..Subject::default()
    };
    assert!(!s.selects(&no_service));
}

#[test]
fn exclude_regexp_span_names_and_attribute_values() {
    let s = selector(
        None,
        Some(
            r#"{"match_type":"regexp","span_names":["^health"],"attributes":[{"key":"http.status_code","value":"^5"}]}"#,
        ),
        Signal::Traces,
    );
    let a500 = attrs(&[("http.status_code", Value::Int(503))]);
    let a200 = attrs(&[("http.status_code", Value::Int(200))]);
    // Excluded only when both properties match.
    assert!(!s.selects(&Subject {
        span: Some(("healthz", 0)),
        attributes: Some(&a500),
        ..Subject::default()
    }));
    assert!(s.selects(&Subject {
        span: Some(("healthz", 0)),
        attributes: Some(&a200),
        ..Subject::default()
    }));
    assert!(s.selects(&Subject {
        span: Some(("GET /", 0)),
        attributes: Some(&a500),
        ..Subject::default()
    }));
}

#[test]
fn strict_attribute_values_compare_typed_and_absent_value_means_exists() {
    let s = selector(
        Some(r#"{"match_type":"strict","attributes":[{"key":"n","value":3},{"key":"flag"}]}"#),
        None,
        Signal::Logs,
    );
    let good = attrs(&[("n", Value::Int(3)), ("flag", Value::Bool(false))]);
    let string_three = attrs(&[("n", "3".into()), ("flag", Value::Bool(false))]);
    let no_flag = attrs(&[("n", Value::Int(3))]);
    let subj = |a| Subject {
        attributes: Some(a),
        ..Subject::default()
    };
    assert!(s.selects(&subj(&good)));
    assert!(!s.selects(&subj(&string_three)));
    assert!(!s.selects(&subj(&no_flag)));
}

#[test]
fn resources_libraries_and_kinds() {
    let s = selector(
        Some(
            r#"{"match_type":"strict","resources":[{"key":"env","value":"prod"}],"libraries":[{"name":"otel-go","version":"1.0"}],"span_kinds":["SPAN_KIND_SERVER"]}"#,
        ),
        None,
        Signal::Traces,
    );
    let res = attrs(&[("env", "prod".into())]);
    let scope = ScopeInfo {
        name: "otel-go".into(),
        version: "1.0".into(),
    };
    let old = ScopeInfo {
        name: "otel-go".into(),
        version: "0.9".into(),
    };
    let mk = |scope, kind| Subject {
        resource: Some(&res),
        scope: Some(scope),
        span: Some(("x", kind)),
        ..Subject::default()
    };
    assert!(s.selects(&mk(&scope, 2)));
    assert!(!s.selects(&mk(&old, 2)));
    assert!(!s.selects(&mk(&scope, 3)));
}

#[test]
fn include_and_exclude_combine() {
    let s = selector(
        Some(r#"{"match_type":"strict","services":["a"]}"#),
        Some(r#"{"match_type":"strict","span_names":["skip"]}"#),
        Signal::Traces,
    );
    let res = attrs(&[("service.name", "a".into())]);
    assert!(s.selects(&Subject {
        resource: Some(&res),
        span: Some(("keep", 0)),
        ..Subject::default()
    }));
    assert!(!s.selects(&Subject {
        resource: Some(&res),
        span: Some(("skip", 0)),
        ..Subject::default()
    }));
}

#[test]
fn log_severity_and_bodies() {
    let s = selector(
        Some(
            r#"{"match_type":"regexp","log_bodies":["timeout"],"log_severity_number":{"min":"WARN","match_undefined":false}}"#,
        ),
        None,
        Signal::Logs,
    );
    let mut log = wasmcol_sdk::LogInfo {
        body: "db timeout".into(),
        severity_number: 17,
        ..Default::default()
    };
    assert!(s.selects(&Subject {
        log: Some(&log),
        ..Subject::default()
    }));
    log.severity_number = 9;
    assert!(!s.selects(&Subject {
        log: Some(&log),
        ..Subject::default()
    }));
}

#[test]
fn filter_config_errors_use_upstream_texts() {
    assert_eq!(
        build_err(r#"{"match_type":"strict"}"#, Signal::Traces),
        r#"at least one of "services", "span_names", "span_kinds", "attributes", "libraries" or "resources" field must be specified"#
    );
    assert_eq!(
        build_err(
            r#"{"match_type":"strict","log_bodies":["x"]}"#,
            Signal::Traces
        ),
        "log_bodies should not be specified for trace spans"
    );
    assert_eq!(
        build_err(r#"{"match_type":"strict","services":["x"]}"#, Signal::Logs),
        "neither services nor span_names should be specified for log records"
    );
    assert_eq!(
        build_err(r#"{"match_type":"fuzzy","services":["x"]}"#, Signal::Traces),
        "unrecognized match_type: 'fuzzy', valid types are: [regexp strict]"
    );
    assert_eq!(
        build_err(
            r#"{"match_type":"regexp","attributes":[{"key":"k","value":3}]}"#,
            Signal::Traces
        ),
        r#"match_type=regexp for "k" only supports Str, but found Int"#
    );
}

#[test]
fn metric_names_strict_and_regexp() {
    let s = selector(
        Some(r#"{"match_type":"regexp","metric_names":["^http\\."]}"#),
        None,
        Signal::Metrics,
    );
    let subj = |name| Subject {
        metric_name: Some(name),
        ..Subject::default()
    };
    assert!(s.selects(&subj("http.server.duration")));
    assert!(!s.selects(&subj("db.calls")));
    let s = selector(
        None,
        Some(r#"{"match_type":"strict","metric_names":["db.calls"]}"#),
        Signal::Metrics,
    );
    assert!(!s.selects(&subj("db.calls")));
    assert!(s.selects(&subj("db.calls.total")));
    assert_eq!(
        build_err(
            r#"{"match_type":"strict","span_names":["x"]}"#,
            Signal::Metrics
        ),
        "only metric_names, attributes, resources and libraries may be specified for metrics"
    );
}

#[test]
fn log_severity_number_match_undefined() {
    let s = selector(
        Some(r#"{"match_type":"strict","log_severity_number":{"min":9,"match_undefined":true}}"#),
        None,
        Signal::Logs,
    );
    let at = |n| wasmcol_sdk::LogInfo {
        severity_number: n,
        ..Default::default()
    };
    let (undefined, debug, info) = (at(0), at(5), at(9));
    let subj = |l| Subject {
        log: Some(l),
        ..Subject::default()
    };
    assert!(s.selects(&subj(&undefined)));
    assert!(!s.selects(&subj(&debug)));
    assert!(s.selects(&subj(&info)));
}
