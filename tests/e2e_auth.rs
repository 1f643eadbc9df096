//! Authentication end to end: the real binary with `bearertokenauth` on both receiver
//! protocols in front of a second collector with `basicauth`, which the first reaches through
//! its exporter's `auth`; a recording backend behind both.
// Test code: a failed expectation is reported by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod delivery_support;

use common::{Backend, Collector, WAIT};
use delivery_support::client;
use prost::Message;
use tonic::metadata::MetadataValue;
use wasmcol_testkit::spans::request;

/// The gateway: basic auth on gRPC, forwarding to `backend`.
fn gateway(backend: &Backend) -> String {
    format!(
        r#"
extensions:
  basicauth/server:
    htpasswd:
      inline: |
        region-a:s3cret
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
        auth:
          authenticator: basicauth/server
exporters:
  otlp:
    endpoint: {}
    tls:
      insecure: true
service:
  extensions: [basicauth/server]
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [otlp]
"#,
        backend.endpoint()
    )
}

/// The region collector: bearer token on both protocols, basic auth towards the gateway.
fn region(gateway: &Collector) -> String {
    let gw = gateway.grpc_url("otlp");
    let gw = gw.trim_start_matches("http://");
    format!(
        r#"
extensions:
  bearertokenauth/server:
    token: region-token
  basicauth/client:
    client_auth:
      username: region-a
      password: s3cret
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
        auth:
          authenticator: bearertokenauth/server
      http:
        endpoint: 127.0.0.1:0
        auth:
          authenticator: bearertokenauth/server
exporters:
  otlp:
    endpoint: {gw}
    tls:
      insecure: true
    auth:
      authenticator: basicauth/client
service:
  extensions: [bearertokenauth/server, basicauth/client]
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [otlp]
"#
    )
}

/// Scenario: requests to the region collector over gRPC and HTTP without a token, with a
/// wrong one and with the right one; a request straight to the gateway without basic auth.
/// Guarantees: unauthenticated requests get `UNAUTHENTICATED` / 401, are counted in
/// `otelcol_receiver_refused_spans` and reach nothing; the authenticated one reaches the
/// backend through the gateway, so the exporter's basic auth passed the gateway's check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_and_basic_auth_on_both_protocols() {
    let backend = Backend::start().await;
    let gw = Collector::start(&gateway(&backend));
    let c = Collector::start(&region(&gw));

    let mut cl = client(c.grpc_url("otlp")).await;
    let denied = cl.export(request(0, 10)).await.unwrap_err();
    assert_eq!(denied.code(), tonic::Code::Unauthenticated, "{denied:?}");
    let mut wrong = tonic::Request::new(request(10, 10));
    wrong.metadata_mut().insert(
        "authorization",
        MetadataValue::from_static("Bearer not-the-token"),
    );
    assert_eq!(
        cl.export(wrong).await.unwrap_err().code(),
        tonic::Code::Unauthenticated
    );

    let http = reqwest::Client::new();
    let url = format!("{}/v1/traces", c.http_url("otlp"));
    let body = request(20, 10).encode_to_vec();
    for auth in [
        None,
        Some("Bearer nope"),
        Some("Basic cmVnaW9uLWE6czNjcmV0"),
    ] {
        let mut r = http
            .post(&url)
            .header("content-type", "application/x-protobuf")
            .body(body.clone());
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        let resp = r.send().await.unwrap();
        assert_eq!(resp.status(), 401, "authorization {auth:?}");
    }
    let refused = |transport: &'static str| {
        let c = &c;
        async move {
            c.metric(&format!(
                r#"otelcol_receiver_refused_spans_total{{receiver="otlp",transport="{transport}"}}"#
            ))
            .await
        }
    };
    assert_eq!(refused("grpc").await, Some(20.0));
    assert_eq!(refused("http").await, Some(30.0));

    let mut gw_client = client(gw.grpc_url("otlp")).await;
    assert_eq!(
        gw_client.export(request(40, 10)).await.unwrap_err().code(),
        tonic::Code::Unauthenticated
    );

    let mut good = tonic::Request::new(request(100, 10));
    good.metadata_mut().insert(
        "authorization",
        MetadataValue::from_static("Bearer region-token"),
    );
    cl.export(good).await.unwrap();
    let resp = http
        .post(&url)
        .header("content-type", "application/x-protobuf")
        .header("authorization", "Bearer region-token")
        .body(request(200, 10).encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        backend.wait_for_spans(20).await,
        "authenticated spans did not arrive in {WAIT:?}"
    );
    let ids: std::collections::BTreeSet<u64> =
        delivery_support::arrivals(&backend).into_keys().collect();
    let want: std::collections::BTreeSet<u64> = (100..110).chain(200..210).collect();
    assert_eq!(ids, want, "only the authenticated spans may arrive");
}

/// Scenario: a receiver naming an authenticator that is not configured, one that is
/// configured but not listed in `service.extensions`, a client-only extension used by a
/// receiver, and a headers_setter entry with both `from_context` and `value`.
/// Guarantees: `validate` reports each with its component and key path.
#[test]
fn validate_names_auth_problems() {
    let dir = tempfile::tempdir().unwrap();
    let path = common::write_config(
        &dir,
        "auth.yaml",
        r#"
extensions:
  bearertokenauth/unlisted:
    token: t
  basicauth/client:
    client_auth: {username: u, password: p}
  headers_setter:
    headers:
      - key: X-Tenant
        from_context: tenant
        value: both
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
        auth:
          authenticator: basicauth/client
      http:
        endpoint: 127.0.0.1:0
        auth:
          authenticator: bearertokenauth/unlisted
exporters:
  otlp:
    endpoint: 127.0.0.1:4317
    auth:
      authenticator: nothere
service:
  extensions: [basicauth/client, headers_setter]
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [otlp]
"#,
    );
    let (ok, _out, err) = common::run_cli(&["validate", "--config", &path]);
    assert!(!ok, "validate must fail");
    for expected in [
        "protocols.grpc.auth.authenticator: extension \"basicauth/client\" is not a server authenticator",
        "protocols.http.auth.authenticator: failed to resolve authenticator \"bearertokenauth/unlisted\"",
        "auth.authenticator: failed to resolve authenticator \"nothere\"",
        "headers[0].value: only one header source",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in {err}");
    }
}
