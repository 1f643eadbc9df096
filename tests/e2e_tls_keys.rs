//! End-to-end tests of the `tls` keys through the real binary, with certificates made at
//! test time: mutual TLS on OTLP/HTTP, seed 000's gateway securing both protocols, TLS
//! versions on receivers and exporters, a certificate rotated on disk while a connection
//! stays open, `insecure_skip_verify`, and config errors for what rustls cannot do.
// Test code: a failed expectation is reported by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod plugins_support;
mod seed_configs;
mod tls_support;

use common::{Backend, Collector, WAIT, eventually, run_cli, write_config};
use plugins_support::{isolate_cache, spans_request};
use seed_configs::seed_000_gateway;
use tls_support::{
    CA, CLIENT_KEY, GATEWAY_CERT, GATEWAY_KEY, HttpsBackend, Pki, RawHttps, client_config,
    export_over_tls, handshake, post_https, post_https_with_token,
};
use tokio_rustls::rustls;
use wasmcol_testkit::prom::series;

const TLS12: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS12];
const TLS13: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];
const ANY: &[&rustls::SupportedProtocolVersion] = rustls::DEFAULT_VERSIONS;

/// Seed 000's gateway requires client certificates on both protocols: on OTLP/HTTP a client
/// without a certificate and one whose certificate another CA signed are refused, and a
/// valid client is served; gRPC serves a valid client too. Only the valid clients' spans
/// reach the backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_gateway_requires_client_certificates_on_both_protocols() {
    isolate_cache();
    let pki = Pki::generate();
    let backend = Backend::start().await;
    let gateway = seed_000_gateway(pki.dir.path(), &backend)
        .set("processors.batch.timeout=100ms")
        .start();
    let (grpc, http) = (gateway.grpc["otlp"], gateway.http["otlp"]);

    let none = post_https(
        http,
        client_config(&pki.ca.pem, None, ANY),
        &spans_request(3, 1),
    )
    .await;
    assert!(
        none.is_err(),
        "a client without a certificate was served: {none:?}"
    );
    let rogue = client_config(&pki.ca.pem, Some(&pki.rogue), ANY);
    let rogue = post_https(http, rogue, &spans_request(3, 2)).await;
    assert!(
        rogue.is_err(),
        "a client of another CA was served: {rogue:?}"
    );
    // A client that does not trust the gateway's CA does not send either.
    let distrust = post_https(
        http,
        client_config(&pki.other_ca.pem, Some(&pki.client), ANY),
        &spans_request(3, 3),
    )
    .await;
    assert!(distrust.is_err(), "{distrust:?}");

    // The hardened example wants the regions' bearer token as well: a good certificate with
    // no token or a wrong one is 401.
    for token in [None, Some("not-the-token")] {
        let good = client_config(&pki.ca.pem, Some(&pki.client), ANY);
        let status = post_https_with_token(http, good, &spans_request(3, 9), token).await;
        assert_eq!(status, Ok(401), "token {token:?}");
    }
    let good = client_config(&pki.ca.pem, Some(&pki.client), ANY);
    assert_eq!(post_https(http, good, &spans_request(5, 4)).await, Ok(200));
    export_over_tls(grpc, &pki.ca.pem, Some(&pki.client), spans_request(7, 5))
        .await
        .unwrap();
    assert!(
        backend.wait_for_spans(12).await,
        "backend got {} spans; log:\n{}",
        backend.spans().len(),
        gateway.log().join("\n")
    );
    assert_eq!(
        backend.spans().len(),
        12,
        "only the valid clients' spans arrive"
    );
    let refused = gateway
        .log()
        .iter()
        .filter(|l| l.contains("TLS handshake failed"))
        .count();
    assert!(refused >= 2, "{}", gateway.log().join("\n"));
}

/// A receiver config with TLS on both protocols and `extra` keys in each `tls` block.
fn tls_receiver(cert: &str, key: &str, extra: &str, backend: &Backend) -> String {
    let tls = format!("cert_file: {cert}\n          key_file: {key}\n          {extra}");
    format!(
        r#"
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
        tls:
          {tls}
      http:
        endpoint: 127.0.0.1:0
        tls:
          {tls}
exporters:
  otlp:
    endpoint: http://{backend}
processors:
  batch:
    timeout: 100ms
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [otlp]
"#,
        backend = backend.endpoint(),
    )
}

/// `min_version: "1.3"` refuses a client that speaks only TLS 1.2, on both protocols, and
/// serves a TLS 1.3 client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_version_13_refuses_tls12_clients() {
    isolate_cache();
    let pki = Pki::generate();
    let backend = Backend::start().await;
    let c = Collector::start(&tls_receiver(
        &pki.path(GATEWAY_CERT),
        &pki.path(GATEWAY_KEY),
        "min_version: \"1.3\"",
        &backend,
    ));
    for addr in [c.grpc["otlp"], c.http["otlp"]] {
        let old = handshake(addr, client_config(&pki.ca.pem, None, TLS12)).await;
        let Err(err) = old else {
            panic!("a TLS 1.2 client was accepted");
        };
        assert!(err.to_lowercase().contains("protocolversion"), "{err}");
        let new = handshake(addr, client_config(&pki.ca.pem, None, TLS13)).await;
        let new = new.unwrap();
        assert_eq!(
            new.get_ref().1.protocol_version(),
            Some(rustls::ProtocolVersion::TLSv1_3)
        );
    }
    let ok = post_https(
        c.http["otlp"],
        client_config(&pki.ca.pem, None, TLS13),
        &spans_request(2, 1),
    )
    .await;
    assert_eq!(ok, Ok(200));
    // Without min_version, TLS 1.2 is accepted (upstream's default minimum).
    let backend2 = Backend::start().await;
    let c2 = Collector::start(&tls_receiver(
        &pki.path(GATEWAY_CERT),
        &pki.path(GATEWAY_KEY),
        "",
        &backend2,
    ));
    for addr in [c2.grpc["otlp"], c2.http["otlp"]] {
        handshake(addr, client_config(&pki.ca.pem, None, TLS12))
            .await
            .unwrap();
    }
}

/// With `reload_interval`, a certificate replaced on disk is served to new connections
/// without a restart, while a connection opened before keeps working; a broken file later
/// is logged and the certificate in force stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_certificate_is_served_after_reload_interval() {
    isolate_cache();
    let pki = Pki::generate();
    let first = pki.ca.server(&["127.0.0.1"]);
    let second = pki.ca.server(&["127.0.0.1"]);
    let cert = pki.write("rotating.crt", &first.cert);
    let key = pki.write("rotating.key", &first.key);
    let backend = Backend::start().await;
    let c = Collector::start(&tls_receiver(
        &cert,
        &key,
        "reload_interval: 100ms",
        &backend,
    ));
    let addr = c.http["otlp"];
    let config = || client_config(&pki.ca.pem, None, ANY);
    let mut old = RawHttps::connect(addr, config()).await.unwrap();
    let first_der = old.peer_cert();
    assert_eq!(old.post_traces(&spans_request(1, 1)).await, Ok(200));

    pki.write("rotating.key", &second.key);
    pki.write("rotating.crt", &second.cert);
    let rotated = eventually(WAIT, || async {
        let conn = RawHttps::connect(addr, config()).await.unwrap();
        conn.peer_cert() != first_der
    })
    .await;
    assert!(
        rotated,
        "the new certificate was never served:\n{}",
        c.log().join("\n")
    );
    let mut fresh = RawHttps::connect(addr, config()).await.unwrap();
    let second_der = fresh.peer_cert();
    assert_eq!(fresh.post_traces(&spans_request(1, 2)).await, Ok(200));
    // The connection opened before the rotation was not dropped.
    assert_eq!(old.post_traces(&spans_request(1, 3)).await, Ok(200));
    assert_eq!(old.peer_cert(), first_der);
    assert!(
        c.log()
            .iter()
            .any(|l| l.contains("TLS certificates reloaded"))
    );

    // A broken file is logged and changes nothing.
    pki.write("rotating.crt", "not a certificate");
    let logged = eventually(WAIT, || async {
        c.log().iter().any(|l| l.contains("TLS reload failed"))
    })
    .await;
    assert!(logged, "{}", c.log().join("\n"));
    let mut after = RawHttps::connect(addr, config()).await.unwrap();
    assert_eq!(after.peer_cert(), second_der);
    assert_eq!(after.post_traces(&spans_request(1, 4)).await, Ok(200));
    assert_eq!(old.post_traces(&spans_request(1, 5)).await, Ok(200));
    assert!(backend.wait_for_spans(5).await);
}

/// Exporter side: `min_version: "1.3"` refuses a backend that speaks only TLS 1.2 (the
/// spans are counted as failed), the same exporter without it delivers, and
/// `insecure_skip_verify` delivers to a backend whose CA it was not given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exporter_tls_keys_have_their_effect() {
    isolate_cache();
    let pki = Pki::generate();
    let https = HttpsBackend::start_with_versions(&pki.gateway, None, TLS12).await;
    let c = Collector::start(&format!(
        r#"
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
exporters:
  otlp_http/trusting:
    endpoint: {url}
    tls:
      ca_file: {ca}
  otlp_http/min13:
    endpoint: {url}
    retry_on_failure:
      enabled: false
    tls:
      ca_file: {ca}
      min_version: "1.3"
  otlp_http/skip:
    endpoint: {url}
    tls:
      insecure_skip_verify: true
      ca_file: {other}
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [otlp_http/trusting, otlp_http/min13, otlp_http/skip]
"#,
        url = https.url(),
        ca = pki.path(CA),
        other = pki.write("other.crt", &pki.other_ca.pem),
    ));
    let url = c.grpc_url("otlp");
    opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient::connect(url)
        .await
        .unwrap()
        .export(spans_request(4, 1))
        .await
        .unwrap();
    assert!(
        https.wait_until(WAIT, |b| b.span_count() >= 8).await,
        "{} spans; log:\n{}",
        https.span_count(),
        c.log().join("\n")
    );
    let failed = eventually(WAIT, || async {
        let text = c.scrape().await;
        series(
            &text,
            "otelcol_exporter_send_failed_spans",
            "exporter=\"otlp_http/min13\"",
        ) == Some(4.0)
    })
    .await;
    assert!(failed, "{}", c.log().join("\n"));
    let line = c
        .log()
        .into_iter()
        .find(|l| l.contains("otlp_http/min13") && l.contains("Exporting failed"))
        .unwrap();
    assert!(line.to_lowercase().contains("protocolversion"), "{line}");
    assert_eq!(https.span_count(), 8, "min13 delivered nothing");
}

/// Keys rustls cannot honour, and server keys that would mislead (a `ca_file` that verifies
/// no client), are config errors naming the component and key path.
#[test]
fn unsupported_tls_settings_are_config_errors() {
    let pki = Pki::generate();
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        &dir,
        "bad.yaml",
        &format!(
            r#"
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
        tls:
          cert_file: {cert}
          key_file: {key}
          cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_BOGUS_SUITE]
      http:
        endpoint: 127.0.0.1:0
        tls:
          cert_file: {cert}
          key_file: {key}
          min_version: "1.1"
  otlp/ca-only:
    protocols:
      http:
        endpoint: 127.0.0.1:0
        tls:
          cert_file: {cert}
          key_file: {key}
          ca_file: {ca}
exporters:
  otlp/curves:
    endpoint: 127.0.0.1:4317
    tls:
      ca_file: {ca}
      curve_preferences: [X25519, P521]
  otlp/max:
    endpoint: 127.0.0.1:4317
    tls:
      ca_file: {ca}
      min_version: "1.3"
      max_version: "1.2"
  otlp_http/tpm:
    endpoint: https://127.0.0.1:4318
    tls:
      ca_file: {ca}
      key_file: {client_key}
      tpm: {{enabled: true, path: /dev/tpmrm0}}
service:
  pipelines:
    traces:
      receivers: [otlp, otlp/ca-only]
      exporters: [otlp/curves, otlp/max, otlp_http/tpm]
"#,
            cert = pki.path(GATEWAY_CERT),
            key = pki.path(GATEWAY_KEY),
            ca = pki.path(CA),
            client_key = pki.path(CLIENT_KEY),
        ),
    );
    let (ok, out, err) = run_cli(&["validate", "--config", &path]);
    assert!(!ok, "validate must fail:\n{out}{err}");
    for want in [
        "receivers::otlp: protocols.grpc.tls.cipher_suites: invalid TLS cipher suite: \"TLS_BOGUS_SUITE\"",
        "receivers::otlp: protocols.http.tls.min_version: TLS 1.1 is not supported by wasmcol",
        "exporters::otlp/curves: tls.curve_preferences: P521 is not supported by wasmcol",
        "exporters::otlp/max: tls.min_version: invalid TLS configuration: min_version cannot be greater than max_version",
        "exporters::otlp_http/tpm: tls.tpm: not supported by wasmcol",
        "receivers::otlp/ca-only: protocols.http.tls.ca_file: a server does not verify clients with ca_file",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
}
