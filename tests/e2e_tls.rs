//! End-to-end tests of TLS and mutual TLS through the real binary, with certificates made
//! at test time: seed 000's two-region deployment (region collector → mTLS + zstd +
//! persistent queue → gateway collector → backend), a gateway that refuses clients without
//! a valid certificate (and logs why), exporters that do not trust an unknown server or
//! whose certificate the gateway refuses (the data stays queued or is counted as failed,
//! and the log says why), `server_name_override`, the `otlp_http` exporter over mTLS, and
//! `validate` on broken certificate settings, and the seed's long batch timeouts with a
//! partial batch (no duplicate forwards).
// Test code: a failed expectation is reported by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod plugins_support;
mod seed_configs;
mod tls_support;

use std::path::Path;

use common::{Backend, Collector, WAIT, eventually, run_cli, write_config};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use plugins_support::{attr, isolate_cache, spans_request};
use seed_configs::{seed_000_gateway, seed_000_region};
use tls_support::{
    CA, CLIENT_CERT, CLIENT_KEY, GATEWAY_CERT, GATEWAY_KEY, HttpsBackend, OTHER_CA, Pki,
    ROGUE_CERT, ROGUE_KEY, export_over_tls, export_plaintext, has_files, queue_dirs,
};
use wasmcol_testkit::prom::series;

/// Seed 000's gateway from `examples/`, with the test's certificates and backend, and the
/// batch `timeout` when `batch_timeout` differs from the seed's 10s.
fn start_gateway(pki: &Pki, backend: &Backend, batch_timeout: &str) -> Collector {
    seed_000_gateway(pki.dir.path(), backend)
        .set(format!("processors.batch.timeout={batch_timeout}"))
        .start()
}

/// Seed 000's region collector from `examples/`, exporting to `local` and to `gateway`.
fn start_region(pki: &Pki, local: &Backend, gateway: &str, queues: &Path) -> Collector {
    seed_000_region(pki.dir.path(), local, gateway, queues).start()
}

/// (trace id, span id) of every span in a request.
fn ids_of(req: &ExportTraceServiceRequest) -> Vec<(Vec<u8>, Vec<u8>)> {
    req.resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .flat_map(|ss| &ss.spans)
        .map(|s| (s.trace_id.clone(), s.span_id.clone()))
        .collect()
}

/// Asserts that `backend` received each of `sent` (sorted) exactly once and nothing else.
fn assert_delivered_once(backend: &Backend, sent: &[(Vec<u8>, Vec<u8>)], what: &str) {
    let got = span_ids(backend);
    let missing = sent
        .iter()
        .filter(|id| got.binary_search(id).is_err())
        .count();
    let extra = got
        .iter()
        .filter(|id| sent.binary_search(id).is_err())
        .count();
    let dups = got.windows(2).filter(|w| w[0] == w[1]).count();
    assert!(
        missing == 0 && extra == 0 && dups == 0,
        "{what}: {} spans received for {} sent: {missing} missing, {extra} unexpected, {dups} duplicates",
        got.len(),
        sent.len()
    );
}

/// (trace id, span id) of every span a backend received, sorted.
fn span_ids(backend: &Backend) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut ids: Vec<_> = backend
        .spans()
        .into_iter()
        .map(|s| (s.trace_id, s.span_id))
        .collect();
    ids.sort();
    ids
}

/// Seed 000 end to end over real mTLS: the region collector tags, batches and exports twice
/// (plaintext to its local backend, mTLS + zstd + persistent queue to the other region's
/// gateway), the gateway marks the forwarded data and writes it to its backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_000_two_regions_over_mtls() {
    let cache = isolate_cache();
    let pki = Pki::generate();
    let local = Backend::start().await;
    let remote = Backend::start().await;
    // The seed's batch timeouts stay. Four senders together fill exactly one batch (1024
    // spans). Both tiers answer on enqueue (their exporters queue), so no sender waits for
    // a batch timeout either way; `seed_000_partial_batch_is_forwarded_once` covers a
    // partial batch.
    let gateway = start_gateway(&pki, &remote, "10s");
    let gateway_addr = gateway.grpc["otlp"];
    assert!(gateway_addr.ip().is_loopback());
    let queues = tempfile::tempdir().unwrap();
    let region = start_region(&pki, &local, &gateway_addr.to_string(), queues.path());

    let mut sent = Vec::new();
    let mut senders = Vec::new();
    for tag in 1..=4u8 {
        let req = spans_request(256, tag);
        sent.extend(ids_of(&req));
        let url = region.grpc_url("otlp");
        senders.push(tokio::spawn(async move {
            TraceServiceClient::connect(url).await?.export(req).await?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        }));
    }
    for s in senders {
        s.await.unwrap().unwrap();
    }
    sent.sort();
    assert_eq!(sent.len(), 1024);

    assert!(
        local.wait_for_spans(1024).await,
        "local backend got {} spans",
        local.spans().len()
    );
    assert!(
        remote.wait_for_spans(1024).await,
        "gateway backend got {} spans; region log:\n{}",
        remote.spans().len(),
        region.log().join("\n")
    );

    // Every span arrived once at each backend, tagged as the seed intends.
    assert_delivered_once(&local, &sent, "local backend");
    assert_delivered_once(&remote, &sent, "gateway backend");
    local.with(|r| {
        for rs in r.traces.iter().flat_map(|t| &t.resource_spans) {
            let res = &rs.resource.as_ref().unwrap().attributes;
            assert_eq!(attr(res, "deployment.region").as_deref(), Some("us-east-1"));
            for s in rs.scope_spans.iter().flat_map(|s| &s.spans) {
                assert_eq!(attr(&s.attributes, "telemetry.source"), None);
            }
        }
    });
    remote.with(|r| {
        for rs in r.traces.iter().flat_map(|t| &t.resource_spans) {
            let res = &rs.resource.as_ref().unwrap().attributes;
            assert_eq!(attr(res, "deployment.region").as_deref(), Some("us-east-1"));
            for s in rs.scope_spans.iter().flat_map(|s| &s.spans) {
                assert_eq!(
                    attr(&s.attributes, "telemetry.source").as_deref(),
                    Some("cross-region-forward")
                );
            }
        }
    });

    // The cross-region exporter counted the spans as sent, none failed, and its queue drained.
    let drained = eventually(WAIT, || async {
        let t = region.scrape().await;
        series(
            &t,
            "otelcol_exporter_sent_spans",
            "exporter=\"otlp/cross-region\"",
        ) == Some(1024.0)
            && series(
                &t,
                "otelcol_exporter_queue_size",
                "exporter=\"otlp/cross-region\",data_type=\"traces\"",
            ) == Some(0.0)
    })
    .await;
    let text = region.scrape().await;
    assert!(drained, "{text}");
    assert_eq!(
        series(
            &text,
            "otelcol_exporter_send_failed_spans",
            "exporter=\"otlp/cross-region\""
        ),
        Some(0.0),
        "{text}"
    );
    let gw = gateway.scrape().await;
    assert_eq!(
        series(
            &gw,
            "otelcol_receiver_accepted_spans",
            "receiver=\"otlp\",transport=\"grpc\""
        ),
        Some(1024.0),
        "{gw}"
    );
    // No attempt failed or timed out on the way.
    assert_eq!(
        log_line(&region, "otlp/cross-region", "Exporting failed"),
        None,
        "the cross-region export had to be retried"
    );
    // Both queues are on disk, in the configured directories.
    assert!(has_files(&queues.path().join("local")));
    assert!(has_files(&queues.path().join("cross-region")));
    // The tags came from the bundled WebAssembly plugins, compiled into the cache the
    // collectors were pointed at.
    let calls = gateway
        .metric(r#"wasmcol_plugin_calls_total{processor="attributes/cross-region"}"#)
        .await;
    assert!(calls.unwrap_or(0.0) >= 1.0, "{calls:?}");
    let cached = std::fs::read_dir(cache)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".cwasm"))
        })
        .count();
    assert!(cached >= 2, "{cached} artifacts in the compile cache");
}

/// Seed 000 with a batch smaller than `send_batch_size`, timeouts exactly as in the seed.
/// wasmcol's batch processor answers a sender only once its batch went downstream, so the
/// gateway's 10s `timeout` would hold the region's export past its 5s attempt `timeout` and
/// make it re-send; `max_hold` (1s by default) caps the hold, so every span arrives once and
/// no attempt fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_000_partial_batch_is_forwarded_once() {
    isolate_cache();
    let pki = Pki::generate();
    let local = Backend::start().await;
    let remote = Backend::start().await;
    let gateway = start_gateway(&pki, &remote, "10s");
    let queues = tempfile::tempdir().unwrap();
    let region = start_region(
        &pki,
        &local,
        &gateway.grpc["otlp"].to_string(),
        queues.path(),
    );
    let req = spans_request(10, 1);
    let mut sent = ids_of(&req);
    sent.sort();
    TraceServiceClient::connect(region.grpc_url("otlp"))
        .await
        .unwrap()
        .export(req)
        .await
        .unwrap();
    assert!(remote.wait_for_spans(10).await);
    // The forward is finished when the cross-region queue is empty; both batch processors
    // hold a sender at most `max_hold` (1s).
    let drained = eventually(WAIT, || async {
        series(
            &region.scrape().await,
            "otelcol_exporter_queue_size",
            "exporter=\"otlp/cross-region\",data_type=\"traces\"",
        ) == Some(0.0)
    })
    .await;
    assert_delivered_once(&local, &sent, "local backend");
    assert_delivered_once(&remote, &sent, "gateway backend");
    assert!(
        drained,
        "the cross-region queue did not drain; region log:\n{}",
        region.log().join("\n")
    );
    assert_eq!(
        log_line(&region, "otlp/cross-region", "Exporting failed"),
        None
    );
}

/// The mTLS gateway refuses a client without a certificate, a client whose certificate
/// another CA signed, and a plaintext client; nothing of theirs reaches the backend, and a
/// valid client is served afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_refuses_clients_without_a_valid_certificate() {
    isolate_cache();
    let pki = Pki::generate();
    let backend = Backend::start().await;
    // Batch timeout lowered from the seed's 10s so the small valid export is flushed quickly.
    let gateway = start_gateway(&pki, &backend, "100ms");
    let addr = gateway.grpc["otlp"];

    let no_cert = export_over_tls(addr, &pki.ca.pem, None, spans_request(10, 1)).await;
    assert!(
        no_cert.is_err(),
        "a client without a certificate was served"
    );
    let rogue = export_over_tls(addr, &pki.ca.pem, Some(&pki.rogue), spans_request(10, 2)).await;
    assert!(
        rogue.is_err(),
        "a client certificate from another CA was accepted"
    );
    let plain = export_plaintext(addr, spans_request(10, 3)).await;
    assert!(plain.is_err(), "a plaintext client was served");

    // The gateway is still up and serves a client with a valid certificate.
    export_over_tls(addr, &pki.ca.pem, Some(&pki.client), spans_request(7, 4))
        .await
        .unwrap();
    assert!(backend.wait_for_spans(7).await);
    let spans = backend.spans();
    assert_eq!(spans.len(), 7, "only the valid client's spans arrive");
    assert!(spans.iter().all(|s| s.trace_id[8..] == [4u8; 8]));
    let text = gateway.scrape().await;
    assert_eq!(
        series(
            &text,
            "otelcol_receiver_accepted_spans",
            "receiver=\"otlp\",transport=\"grpc\""
        ),
        Some(7.0),
        "{text}"
    );
    // The gateway says whom it refused and why.
    let handshake_failure = |why: &'static str| {
        let log = gateway.log();
        log.into_iter()
            .find(|l| l.contains("TLS handshake failed") && l.contains(why))
    };
    assert!(
        eventually(WAIT, || async {
            handshake_failure("peer sent no certificates").is_some()
                && handshake_failure("UnknownIssuer").is_some()
        })
        .await,
        "gateway log:\n{}",
        gateway.log().join("\n")
    );
    eprintln!(
        "refusals seen by clients:\n  no cert: {no_cert:?}\n  rogue: {rogue:?}\n  plaintext: {plain:?}\nby the gateway:\n{}",
        gateway
            .log()
            .into_iter()
            .filter(|l| l.contains("TLS handshake"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// The first log line of `exporter` that contains `text` (case-insensitive).
fn log_line(c: &Collector, exporter: &str, text: &str) -> Option<String> {
    let tag = format!("exporter={exporter}");
    let text = text.to_ascii_lowercase();
    c.log()
        .into_iter()
        .find(|l| l.split_whitespace().any(|w| w == tag) && l.to_ascii_lowercase().contains(&text))
}

/// An exporter that trusts another CA does not deliver to the gateway: with the seed's
/// persistent queue and retries the data stays queued; without retries it is counted as
/// failed; either way the log names the certificate problem and nothing reaches the gateway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exporter_does_not_trust_an_unknown_server() {
    isolate_cache();
    let pki = Pki::generate();
    let remote = Backend::start().await;
    let gateway = start_gateway(&pki, &remote, "100ms");
    let gateway_addr = gateway.grpc["otlp"].to_string();
    let queues = tempfile::tempdir().unwrap();
    let (_, cross_dir) = queue_dirs(queues.path());
    let config = format!(
        r#"
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
processors:
  batch:
    timeout: 50ms
exporters:
  # The seed's cross-region exporter, but its ca_file is a CA that did not sign the gateway.
  otlp/cross-region:
    endpoint: {gateway_addr}
    tls:
      cert_file: {cert}
      key_file: {key}
      ca_file: {other_ca}
    sending_queue:
      queue_size: 10000
      storage: file_storage/cross_region
    retry_on_failure:
      initial_interval: 10s
      max_interval: 300s
      max_elapsed_time: 1800s
    compression: zstd
  otlp/no-retry:
    endpoint: {gateway_addr}
    tls:
      cert_file: {cert}
      key_file: {key}
      ca_file: {other_ca}
    retry_on_failure:
      enabled: false
extensions:
  file_storage/cross_region:
    directory: {cross_dir}
service:
  extensions: [file_storage/cross_region]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [otlp/cross-region, otlp/no-retry]
"#,
        cert = pki.path(CLIENT_CERT),
        key = pki.path(CLIENT_KEY),
        other_ca = pki.path(OTHER_CA),
        cross_dir = cross_dir.display(),
    );
    let region = Collector::start(&config);
    let mut client = TraceServiceClient::connect(region.grpc_url("otlp"))
        .await
        .unwrap();
    client.export(spans_request(25, 1)).await.unwrap();

    let settled = eventually(WAIT, || async {
        let t = region.scrape().await;
        series(
            &t,
            "otelcol_exporter_send_failed_spans",
            "exporter=\"otlp/no-retry\"",
        ) == Some(25.0)
            && series(
                &t,
                "otelcol_exporter_queue_size",
                "exporter=\"otlp/cross-region\",data_type=\"traces\"",
            )
            .is_some_and(|n| n >= 1.0)
            && log_line(&region, "otlp/cross-region", "Will retry").is_some()
    })
    .await;
    let text = region.scrape().await;
    assert!(settled, "{text}\n{}", region.log().join("\n"));
    for exporter in ["otlp/cross-region", "otlp/no-retry"] {
        assert_eq!(
            series(
                &text,
                "otelcol_exporter_sent_spans",
                &format!("exporter=\"{exporter}\"")
            )
            .unwrap_or(0.0),
            0.0,
            "{exporter} claims to have sent data:\n{text}"
        );
    }
    // Retrying keeps the request; it is not counted as failed while it waits.
    assert_eq!(
        series(
            &text,
            "otelcol_exporter_send_failed_spans",
            "exporter=\"otlp/cross-region\""
        )
        .unwrap_or(0.0),
        0.0,
        "{text}"
    );
    // The log says why: certificate verification, for both exporters.
    let retry = log_line(&region, "otlp/cross-region", "Will retry").unwrap();
    assert!(
        retry.to_ascii_lowercase().contains("certificate"),
        "{retry}"
    );
    let dropped = log_line(&region, "otlp/no-retry", "Dropping data")
        .unwrap_or_else(|| panic!("no drop logged:\n{}", region.log().join("\n")));
    assert!(
        dropped.to_ascii_lowercase().contains("certificate"),
        "{dropped}"
    );
    assert!(
        remote.spans().is_empty(),
        "nothing may reach the gateway's backend"
    );
    eprintln!("retry log line: {retry}\ndrop log line: {dropped}");
}

/// The gateway refuses the exporter's client certificate (signed by another CA, or none at
/// all). The refusal is a connection failure, so it is retried like upstream's UNAVAILABLE:
/// with the seed's persistent queue the data stays queued; without retries it is counted as
/// failed; the log points at the client certificate; nothing reaches the gateway's backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_refusing_the_exporter_certificate_keeps_the_data_queued() {
    isolate_cache();
    let pki = Pki::generate();
    let remote = Backend::start().await;
    let gateway = start_gateway(&pki, &remote, "100ms");
    let gateway_addr = gateway.grpc["otlp"].to_string();
    let queues = tempfile::tempdir().unwrap();
    let (_, cross_dir) = queue_dirs(queues.path());
    let config = format!(
        r#"
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
processors:
  batch:
    timeout: 50ms
exporters:
  # The seed's cross-region exporter with a client certificate from another CA.
  otlp/cross-region:
    endpoint: {gateway_addr}
    tls:
      cert_file: {rogue_cert}
      key_file: {rogue_key}
      ca_file: {ca}
    sending_queue:
      queue_size: 10000
      storage: file_storage/cross_region
    retry_on_failure:
      initial_interval: 10s
      max_interval: 300s
      max_elapsed_time: 1800s
    compression: zstd
  # No client certificate at all.
  otlp/no-cert:
    endpoint: {gateway_addr}
    tls:
      ca_file: {ca}
    retry_on_failure:
      enabled: false
extensions:
  file_storage/cross_region:
    directory: {cross_dir}
service:
  extensions: [file_storage/cross_region]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [otlp/cross-region, otlp/no-cert]
"#,
        rogue_cert = pki.path(ROGUE_CERT),
        rogue_key = pki.path(ROGUE_KEY),
        ca = pki.path(CA),
        cross_dir = cross_dir.display(),
    );
    let region = Collector::start(&config);
    TraceServiceClient::connect(region.grpc_url("otlp"))
        .await
        .unwrap()
        .export(spans_request(9, 1))
        .await
        .unwrap();
    let settled = eventually(WAIT, || async {
        let t = region.scrape().await;
        series(
            &t,
            "otelcol_exporter_send_failed_spans",
            "exporter=\"otlp/no-cert\"",
        ) == Some(9.0)
            && series(
                &t,
                "otelcol_exporter_queue_size",
                "exporter=\"otlp/cross-region\",data_type=\"traces\"",
            )
            .is_some_and(|n| n >= 1.0)
            && log_line(&region, "otlp/cross-region", "Will retry").is_some()
    })
    .await;
    let text = region.scrape().await;
    assert!(settled, "{text}\n{}", region.log().join("\n"));
    assert_eq!(
        series(
            &text,
            "otelcol_exporter_send_failed_spans",
            "exporter=\"otlp/cross-region\""
        )
        .unwrap_or(0.0),
        0.0,
        "a refused client certificate must not drop queued data:\n{}",
        region.log().join("\n")
    );
    for exporter in ["otlp/cross-region", "otlp/no-cert"] {
        let line = log_line(&region, exporter, "Exporting failed").unwrap();
        assert!(line.contains("client certificate"), "{line}");
    }
    assert!(remote.spans().is_empty());
    eprintln!(
        "refused-certificate log lines:\n{}\n{}",
        log_line(&region, "otlp/cross-region", "Exporting failed").unwrap_or_default(),
        log_line(&region, "otlp/no-cert", "Exporting failed").unwrap_or_default()
    );
}

/// `server_name_override`: the gateway's certificate names only the seed's public host name;
/// an exporter that dials 127.0.0.1 verifies it under that name (gRPC and HTTP exporters),
/// and without the override the same exporter is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_name_override_verifies_the_named_host() {
    isolate_cache();
    let pki = Pki::generate();
    let name = "otel-gateway.eu-west-1.example.com";
    let named = pki.ca.server(&[name]);
    let cert = pki.write("named.crt", &named.cert);
    let key = pki.write("named.key", &named.key);
    let backend = Backend::start().await;
    let https = HttpsBackend::start(&named, Some(&pki.ca.pem)).await;
    let gateway = Collector::start(&format!(
        r#"
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
        tls:
          cert_file: {cert}
          key_file: {key}
          client_ca_file: {ca}
exporters:
  otlp:
    endpoint: http://{backend}
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [otlp]
"#,
        ca = pki.path(CA),
        backend = backend.endpoint(),
    ));
    let tls = format!(
        "      cert_file: {}\n      key_file: {}\n      ca_file: {}\n",
        pki.path(CLIENT_CERT),
        pki.path(CLIENT_KEY),
        pki.path(CA)
    );
    let region = Collector::start(&format!(
        r#"
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
exporters:
  otlp/named:
    endpoint: {gateway}
    tls:
{tls}      server_name_override: {name}
  otlp/unnamed:
    endpoint: {gateway}
    retry_on_failure:
      enabled: false
    tls:
{tls}  otlp_http/named:
    endpoint: {https}
    retry_on_failure:
      enabled: false
    tls:
{tls}      server_name_override: {name}
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [otlp/named, otlp/unnamed, otlp_http/named]
"#,
        gateway = gateway.grpc["otlp"],
        https = https.url(),
    ));
    let mut client = TraceServiceClient::connect(region.grpc_url("otlp"))
        .await
        .unwrap();
    client.export(spans_request(5, 1)).await.unwrap();
    assert!(
        backend.wait_for_spans(5).await,
        "{}",
        region.log().join("\n")
    );
    assert!(
        https.wait_until(WAIT, |b| b.span_count() == 5).await,
        "{}",
        region.log().join("\n")
    );
    let failed = eventually(WAIT, || async {
        let t = region.scrape().await;
        series(
            &t,
            "otelcol_exporter_send_failed_spans",
            "exporter=\"otlp/unnamed\"",
        ) == Some(5.0)
    })
    .await;
    assert!(failed, "{}", region.scrape().await);
    let why = log_line(&region, "otlp/unnamed", "Dropping data").unwrap();
    assert!(why.to_ascii_lowercase().contains("certificate"), "{why}");
    // Exactly the named exporter's copy arrived.
    assert_eq!(backend.spans().len(), 5);
}

/// The `otlp_http` exporter over mTLS: it presents its certificate and delivers to a
/// backend that requires one; with a `ca_file` that did not sign the backend it refuses
/// to send, counts the spans as failed and logs a certificate error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_http_exporter_over_mtls() {
    isolate_cache();
    let pki = Pki::generate();
    let https = HttpsBackend::start(&pki.gateway, Some(&pki.ca.pem)).await;
    let region = Collector::start(&format!(
        r#"
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
exporters:
  otlp_http/trusting:
    endpoint: {url}
    compression: gzip
    tls:
      cert_file: {cert}
      key_file: {key}
      ca_file: {ca}
  otlp_http/untrusting:
    endpoint: {url}
    retry_on_failure:
      enabled: false
    tls:
      cert_file: {cert}
      key_file: {key}
      ca_file: {other_ca}
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [otlp_http/trusting, otlp_http/untrusting]
"#,
        url = https.url(),
        cert = pki.path(CLIENT_CERT),
        key = pki.path(CLIENT_KEY),
        ca = pki.path(CA),
        other_ca = pki.path(OTHER_CA),
    ));
    let mut client = TraceServiceClient::connect(region.grpc_url("otlp"))
        .await
        .unwrap();
    client.export(spans_request(12, 1)).await.unwrap();
    assert!(
        https.wait_until(WAIT, |b| b.span_count() >= 12).await,
        "{}",
        region.log().join("\n")
    );
    assert!(
        https.with_client_cert() >= 1,
        "the exporter presented no certificate"
    );
    let failed = eventually(WAIT, || async {
        let t = region.scrape().await;
        series(
            &t,
            "otelcol_exporter_send_failed_spans",
            "exporter=\"otlp_http/untrusting\"",
        ) == Some(12.0)
    })
    .await;
    assert!(failed, "{}", region.scrape().await);
    // The backend saw the untrusting exporter abort its handshake.
    assert!(https.wait_until(WAIT, |b| b.failed_handshakes() >= 1).await);
    let why = log_line(&region, "otlp_http/untrusting", "Dropping data").unwrap();
    assert!(why.to_ascii_lowercase().contains("certificate"), "{why}");
    // Only the trusting exporter's copy arrived.
    assert_eq!(https.span_count(), 12);
}

/// `validate` names the component and the key path of each broken certificate setting.
#[test]
fn validate_names_the_broken_tls_setting() {
    let pki = Pki::generate();
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.crt").display().to_string();
    let path = write_config(
        &dir,
        "bad-tls.yaml",
        &format!(
            r#"
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
        tls:
          cert_file: {missing}
          key_file: {gw_key}
exporters:
  otlp/cross-region:
    endpoint: 127.0.0.1:4317
    tls:
      cert_file: {missing}
      key_file: {client_key}
      ca_file: {ca}
  otlp/key-as-ca:
    endpoint: 127.0.0.1:4317
    tls:
      ca_file: {client_key}
  otlp/wrong-key:
    endpoint: 127.0.0.1:4317
    tls:
      cert_file: {client_cert}
      key_file: {gw_key}
      ca_file: {ca}
  otlp_http/cert-as-key:
    endpoint: https://127.0.0.1:4318
    tls:
      cert_file: {client_cert}
      key_file: {client_cert}
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [otlp/cross-region, otlp/key-as-ca, otlp/wrong-key, otlp_http/cert-as-key]
"#,
            gw_key = pki.path(GATEWAY_KEY),
            client_key = pki.path(CLIENT_KEY),
            client_cert = pki.path(CLIENT_CERT),
            ca = pki.path(CA),
        ),
    );
    let (ok, out, err) = run_cli(&["validate", "--config", &path]);
    assert!(!ok, "validate must fail:\n{out}{err}");
    for want in [
        format!(
            "exporters::otlp/cross-region: tls.cert_file: failed to load certificate {missing}"
        ),
        format!(
            "receivers::otlp: protocols.grpc.tls.cert_file: failed to load certificate {missing}"
        ),
        format!(
            "exporters::otlp/key-as-ca: tls.ca_file: no PEM certificate (-----BEGIN CERTIFICATE-----) in file {}",
            pki.path(CLIENT_KEY)
        ),
        "exporters::otlp/wrong-key: tls.key_file: the private key in file".to_string(),
        format!(
            "exporters::otlp_http/cert-as-key: tls.key_file: no PEM private key (PKCS#8, PKCS#1 or SEC1) in file {}",
            pki.path(CLIENT_CERT)
        ),
    ] {
        assert!(err.contains(&want), "missing {want:?} in:\n{err}");
    }
    assert!(err.contains("does not belong to the certificate"), "{err}");

    // The same settings with the right files validate.
    let good = write_config(
        &dir,
        "good-tls.yaml",
        &format!(
            r#"
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
        tls:
          cert_file: {gw_cert}
          key_file: {gw_key}
          client_ca_file: {ca}
exporters:
  otlp/cross-region:
    endpoint: 127.0.0.1:4317
    tls:
      cert_file: {client_cert}
      key_file: {client_key}
      ca_file: {ca}
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [otlp/cross-region]
"#,
            gw_cert = pki.path(GATEWAY_CERT),
            gw_key = pki.path(GATEWAY_KEY),
            client_cert = pki.path(CLIENT_CERT),
            client_key = pki.path(CLIENT_KEY),
            ca = pki.path(CA),
        ),
    );
    let (ok, out, err) = run_cli(&["validate", "--config", &good]);
    assert!(ok, "{out}{err}");
}

/// Every config in `examples/` passes `wasmcol validate` as shipped, given the certificates,
/// endpoints and directories its `${env:...}` references name (the seed configs read their
/// certificates at build time, so the test's PKI stands in for `/certs`).
#[test]
fn every_example_validates() {
    let pki = Pki::generate();
    let queues = tempfile::tempdir().unwrap();
    // file_storage wants its directories to exist, as upstream's does.
    for dir in ["local", "cross-region", "failover"] {
        std::fs::create_dir_all(queues.path().join(dir)).unwrap();
    }
    let examples = wasmcol_testkit::examples::all();
    assert!(examples.len() >= 4, "{examples:?}");
    for path in examples {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let (ok, stdout, stderr) = seed_configs::Launch::example(&name)
            .env("CERT_DIR", pki.dir.path().display().to_string())
            .env("QUEUE_DIR", queues.path().display().to_string())
            .validate();
        assert!(ok, "{name} does not validate:\n{stdout}\n{stderr}");
    }
}
