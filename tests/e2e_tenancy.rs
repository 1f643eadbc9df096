//! Tenancy end to end: two tenants' requests (`X-Tenant` header) over gRPC and HTTP into the
//! real binary with `include_metadata`, the bundled `attributes` plugin tagging spans
//! `from_context`, a `batch` processor with `metadata_keys: [x-tenant]` and an `otlp`
//! exporter whose `headers_setter` sets `X-Tenant` from the batch's context, in front of a
//! backend that records each request's header with its spans.
// Test code: a failed expectation is reported by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod delivery_support;

use std::sync::Arc;
use std::time::Duration;

use common::{Collector, WAIT};
use delivery_support::client;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use parking_lot::Mutex;
use prost::Message;
use tonic::metadata::MetadataValue;
use wasmcol_testkit::spans::request;

/// One export the backend received: its `x-tenant` header values and its spans as
/// (id, `tenant` attribute).
#[derive(Debug, Clone)]
struct Export {
    headers: Vec<String>,
    spans: Vec<(u64, Option<String>)>,
}

#[derive(Clone, Default)]
struct Recorder {
    exports: Arc<Mutex<Vec<Export>>>,
    notify: Arc<tokio::sync::Notify>,
}

#[tonic::async_trait]
impl TraceService for Recorder {
    async fn export(
        &self,
        req: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let headers = req
            .metadata()
            .get_all("x-tenant")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        let mut spans = Vec::new();
        for rs in &req.get_ref().resource_spans {
            for ss in &rs.scope_spans {
                for s in &ss.spans {
                    let id = u64::from_be_bytes(s.span_id.as_slice().try_into().unwrap());
                    let tenant = s
                        .attributes
                        .iter()
                        .find(|kv| kv.key == "tenant")
                        .and_then(
                            |kv| match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                                Some(Value::StringValue(t)) => Some(t.clone()),
                                _ => None,
                            },
                        );
                    spans.push((id, tenant));
                }
            }
        }
        self.exports.lock().push(Export { headers, spans });
        self.notify.notify_waiters();
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

impl Recorder {
    async fn start() -> (Recorder, String) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let rec = Recorder::default();
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(
                    TraceServiceServer::new(rec.clone())
                        .accept_compressed(tonic::codec::CompressionEncoding::Gzip),
                )
                .serve_with_incoming(incoming),
        );
        (rec, addr.to_string())
    }

    fn span_count(&self) -> usize {
        self.exports.lock().iter().map(|e| e.spans.len()).sum()
    }

    /// Waits (bounded by `WAIT`) until `n` spans arrived.
    async fn wait_for_spans(&self, n: usize) -> bool {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let notified = self.notify.notified();
            if self.span_count() >= n {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.span_count() >= n;
            }
        }
    }
}

/// How the exporter queues.
enum Queue {
    /// A memory queue, which merges with the batch processor's settings.
    Memory,
    /// A persistent (`file_storage`) queue in this directory, which merges likewise.
    Persistent(String),
    /// No queue: the batch processor holds senders and merges itself.
    Off,
}

/// The collector for `backend`, queueing as `queue` says.
fn config(backend: &str, queue: &Queue) -> String {
    let (enabled, storage, ext) = match queue {
        Queue::Memory => (true, String::new(), String::new()),
        Queue::Off => (false, String::new(), String::new()),
        Queue::Persistent(dir) => (
            true,
            "\n      storage: file_storage".to_owned(),
            format!("\n  file_storage:\n    directory: {dir}"),
        ),
    };
    let listed = if ext.is_empty() {
        "headers_setter"
    } else {
        "headers_setter, file_storage"
    };
    format!(
        r#"
extensions:{ext}
  headers_setter:
    headers:
      - key: X-Tenant
        from_context: x-tenant
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
        include_metadata: true
      http:
        endpoint: 127.0.0.1:0
        include_metadata: true
processors:
  attributes:
    actions:
      - key: tenant
        from_context: x-tenant
        action: upsert
  batch:
    metadata_keys: [x-tenant]
    timeout: 300ms
    send_batch_size: 1000
exporters:
  otlp:
    endpoint: {backend}
    tls:
      insecure: true
    auth:
      authenticator: headers_setter
    sending_queue:
      enabled: {enabled}{storage}
service:
  extensions: [{listed}]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [attributes, batch]
      exporters: [otlp]
"#
    )
}

/// Sends 4 requests of 5 spans per tenant, interleaved and concurrent, half over gRPC and
/// half over HTTP; returns the span ids sent per tenant.
async fn send_tenants(c: &Collector) -> Vec<(&'static str, Vec<u64>)> {
    let grpc = client(c.grpc_url("otlp")).await;
    let http = reqwest::Client::new();
    let url = format!("{}/v1/traces", c.http_url("otlp"));
    let tenants = [("acme", 1000u64), ("globex", 2000u64)];
    let mut sends = Vec::new();
    for round in 0..4u64 {
        for (tenant, base) in tenants {
            let first = base + round * 10;
            let body = request(first, 5);
            if round % 2 == 0 {
                let mut cl = grpc.clone();
                sends.push(tokio::spawn(async move {
                    let mut req = tonic::Request::new(body);
                    req.metadata_mut()
                        .insert("x-tenant", MetadataValue::from_static(tenant));
                    cl.export(req).await.map(|_| ()).map_err(|e| e.to_string())
                }));
            } else {
                let r = http
                    .post(&url)
                    .header("content-type", "application/x-protobuf")
                    .header("X-Tenant", tenant)
                    .body(body.encode_to_vec());
                sends.push(tokio::spawn(async move {
                    let resp = r.send().await.map_err(|e| e.to_string())?;
                    if resp.status() == 200 {
                        Ok(())
                    } else {
                        Err(format!("http status {}", resp.status()))
                    }
                }));
            }
        }
    }
    for s in sends {
        s.await.unwrap().unwrap();
    }
    tenants
        .iter()
        .map(|(t, base)| {
            let ids = (0..4u64)
                .flat_map(|round| (base + round * 10)..(base + round * 10 + 5))
                .collect();
            (*t, ids)
        })
        .collect()
}

/// Checks that every export carries one tenant's spans only, tagged with that tenant, and
/// that tenant's header; and that each tenant's spans all arrived.
fn check_exports(rec: &Recorder, sent: &[(&'static str, Vec<u64>)]) {
    let exports = rec.exports.lock().clone();
    let mut got: Vec<(String, Vec<u64>)> = Vec::new();
    for e in &exports {
        assert_eq!(e.headers.len(), 1, "one x-tenant header per export: {e:?}");
        let tenant = &e.headers[0];
        for (id, tag) in &e.spans {
            assert_eq!(tag.as_deref(), Some(tenant.as_str()), "span {id} in {e:?}");
            let owner = sent
                .iter()
                .find(|(_, ids)| ids.contains(id))
                .map(|(t, _)| *t);
            assert_eq!(owner, Some(tenant.as_str()), "span {id} mixed into {e:?}");
        }
        got.push((tenant.clone(), e.spans.iter().map(|(id, _)| *id).collect()));
    }
    for (tenant, ids) in sent {
        let mut arrived: Vec<u64> = got
            .iter()
            .filter(|(t, _)| t == tenant)
            .flat_map(|(_, ids)| ids.iter().copied())
            .collect();
        arrived.sort_unstable();
        assert_eq!(&arrived, ids, "{tenant}'s spans");
    }
}

async fn tenants_stay_apart(queue: Queue) {
    let (rec, addr) = Recorder::start().await;
    let c = Collector::start(&config(&addr, &queue));
    let sent = send_tenants(&c).await;
    assert!(
        rec.wait_for_spans(40).await,
        "spans did not arrive in {WAIT:?}: {}",
        rec.span_count()
    );
    // Merging happened: fewer exports than the 8 requests sent (both tenants' requests
    // arrive within one batch timeout), yet never across tenants.
    let exports = rec.exports.lock().len();
    assert!(exports < 8, "batch did not merge: {exports} exports");
    check_exports(&rec, &sent);
    // Nothing more trickles in (a duplicate would show as a second arrival).
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(rec.span_count(), 40);
}

/// Scenario: two tenants' requests, interleaved, over both receiver protocols, with the
/// exporter's sending queue on (the batch processor hands its settings to the queue, which
/// merges). Guarantees: every backend request carries one tenant's spans, each tagged with
/// that tenant by `attributes`, and that tenant's `X-Tenant` header; all spans arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_stay_apart_through_the_queue() {
    tenants_stay_apart(Queue::Memory).await;
}

/// Scenario: as above through a persistent queue. Guarantees: the same. (Requests still
/// cached in memory are sent from the cache; that the context survives the record on disk
/// is `record::tests::the_request_context_is_stored_with_the_record`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_stay_apart_through_the_persistent_queue() {
    let dir = tempfile::tempdir().unwrap();
    tenants_stay_apart(Queue::Persistent(dir.path().display().to_string())).await;
}

/// Scenario: as above with the sending queue off, so the batch processor holds and merges.
/// Guarantees: the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_stay_apart_through_the_holding_batcher() {
    tenants_stay_apart(Queue::Off).await;
}
