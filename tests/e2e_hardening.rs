//! End-to-end hardening tests through the real binary: hostile backends (absurd retry hints,
//! endless response bodies), hostile clients (slowloris, unfinished bodies, idle sockets,
//! HTTP/2 stream abuse) and ids of the wrong length.
// Test code: a failed expectation is reported by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod delivery_support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use common::{Collector, WAIT, eventually};
use delivery_support::client;
use http_body_util::{BodyExt, Full, StreamBody};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wasmcol_testkit::spans::request;

/// What the HTTP backend answers.
const ACCEPT: usize = 0;
const HUGE_RETRY_AFTER: usize = 1;
const ENDLESS_BODY: usize = 2;

/// An OTLP/HTTP backend on 127.0.0.1 that can misbehave.
#[derive(Clone)]
struct HttpBackend {
    addr: SocketAddr,
    mode: Arc<AtomicUsize>,
    refused: Arc<AtomicU64>,
    accepted_spans: Arc<AtomicU64>,
    /// Bytes of endless bodies written, and whether the client hung up on one.
    streamed: Arc<AtomicU64>,
    hung_up: Arc<AtomicBool>,
}

/// Counts what an endless body wrote and notes when the client dropped it.
struct EndlessGuard(Arc<AtomicBool>);

impl Drop for EndlessGuard {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

type BoxBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

impl HttpBackend {
    async fn start(mode: usize) -> HttpBackend {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let b = HttpBackend {
            addr: listener.local_addr().unwrap(),
            mode: Arc::new(AtomicUsize::new(mode)),
            refused: Arc::default(),
            accepted_spans: Arc::default(),
            streamed: Arc::default(),
            hung_up: Arc::default(),
        };
        let state = b.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let state = state.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(state.answer(req).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
                });
            }
        });
        b
    }

    async fn answer(&self, req: http::Request<hyper::body::Incoming>) -> http::Response<BoxBody> {
        let body = req.into_body().collect().await.unwrap().to_bytes();
        let mut res = http::Response::new(Full::new(Bytes::new()).boxed());
        match self.mode.load(Ordering::SeqCst) {
            ACCEPT => {
                let r = ExportTraceServiceRequest::decode(body).unwrap();
                let n: usize = r
                    .resource_spans
                    .iter()
                    .flat_map(|rs| &rs.scope_spans)
                    .map(|s| s.spans.len())
                    .sum();
                self.accepted_spans.fetch_add(n as u64, Ordering::SeqCst);
            }
            HUGE_RETRY_AFTER => {
                self.refused.fetch_add(1, Ordering::SeqCst);
                *res.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
                res.headers_mut().insert(
                    http::header::RETRY_AFTER,
                    http::HeaderValue::from_static("18446744073709551615"),
                );
            }
            _ => {
                self.refused.fetch_add(1, Ordering::SeqCst);
                let guard = EndlessGuard(self.hung_up.clone());
                let streamed = self.streamed.clone();
                let chunks = futures::stream::repeat_with(move || {
                    let _ = &guard;
                    streamed.fetch_add(64 * 1024, Ordering::SeqCst);
                    Ok::<_, Infallible>(hyper::body::Frame::data(Bytes::from(vec![
                        b'x';
                        64 * 1024
                    ])))
                });
                res = http::Response::new(BodyExt::boxed(StreamBody::new(chunks)));
                *res.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
                res.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("text/plain"),
                );
            }
        }
        res
    }
}

fn http_exporter_config(backend: &HttpBackend, extra: &str) -> String {
    format!(
        r#"
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
exporters:
  otlp_http:
    endpoint: http://{addr}
    compression: none
    sending_queue:
      num_consumers: 1
{extra}
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [otlp_http]
"#,
        addr = backend.addr
    )
}

/// Scenario: the OTLP/HTTP backend answers 503 with `Retry-After: 18446744073709551615`;
/// one queue worker; then the backend recovers.
/// Guarantees: the worker survives the hint (it used to panic on `elapsed + hint`, and with
/// every worker dead nothing was delivered again): the refused request is given up ("no more
/// retries left", the capped hint passes the 5 min retry budget) and the next one arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_retry_after_does_not_stop_http_delivery() {
    let backend = HttpBackend::start(HUGE_RETRY_AFTER).await;
    let c = Collector::start(&http_exporter_config(&backend, ""));
    let mut cl = client(c.grpc_url("otlp")).await;
    cl.export(request(0, 3)).await.unwrap();
    assert!(
        eventually(WAIT, || async {
            backend.refused.load(Ordering::SeqCst) >= 1
        })
        .await,
        "the backend saw no attempt"
    );
    assert!(
        eventually(WAIT, || async {
            c.log().iter().any(|l| l.contains("no more retries left"))
        })
        .await,
        "the request was not given up: {:?}",
        c.log()
    );
    backend.mode.store(ACCEPT, Ordering::SeqCst);
    cl.export(request(10, 4)).await.unwrap();
    assert!(
        eventually(WAIT, || async {
            backend.accepted_spans.load(Ordering::SeqCst) == 4
        })
        .await,
        "delivery stopped after the huge hint; log: {:?}",
        c.log()
    );
}

/// A gRPC backend that refuses with a `RetryInfo` of the largest delay protobuf can carry
/// until told to accept.
#[derive(Clone, Default)]
struct ThrottlingBackend {
    refuse: Arc<AtomicBool>,
    refused: Arc<AtomicU64>,
    accepted_spans: Arc<AtomicU64>,
}

#[tonic::async_trait]
impl TraceService for ThrottlingBackend {
    async fn export(
        &self,
        req: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        use tonic_types::{ErrorDetails, StatusExt};
        if self.refuse.load(Ordering::SeqCst) {
            self.refused.fetch_add(1, Ordering::SeqCst);
            return Err(tonic::Status::with_error_details(
                tonic::Code::Unavailable,
                "come back in 10000 years",
                ErrorDetails::with_retry_info(Some(Duration::MAX)),
            ));
        }
        let n: usize = req
            .into_inner()
            .resource_spans
            .iter()
            .flat_map(|rs| &rs.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        self.accepted_spans.fetch_add(n as u64, Ordering::SeqCst);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// Scenario: the gRPC backend answers UNAVAILABLE with a `RetryInfo` of ~10,000 years; one
/// queue worker; then the backend recovers.
/// Guarantees: as over HTTP, the worker survives and the next request is delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_retry_info_does_not_stop_grpc_delivery() {
    let backend = ThrottlingBackend::default();
    backend.refuse.store(true, Ordering::SeqCst);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(
                TraceServiceServer::new(backend.clone())
                    .accept_compressed(tonic::codec::CompressionEncoding::Gzip),
            )
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let c = Collector::start(&format!(
        r#"
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
exporters:
  otlp:
    endpoint: {addr}
    tls:
      insecure: true
    sending_queue:
      num_consumers: 1
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [otlp]
"#
    ));
    let mut cl = client(c.grpc_url("otlp")).await;
    cl.export(request(0, 3)).await.unwrap();
    assert!(
        eventually(WAIT, || async {
            c.log().iter().any(|l| l.contains("no more retries left"))
        })
        .await,
        "the request was not given up: {:?}",
        c.log()
    );
    assert_eq!(backend.refused.load(Ordering::SeqCst), 1);
    backend.refuse.store(false, Ordering::SeqCst);
    cl.export(request(10, 4)).await.unwrap();
    assert!(
        eventually(WAIT, || async {
            backend.accepted_spans.load(Ordering::SeqCst) == 4
        })
        .await,
        "delivery stopped after the huge RetryInfo; log: {:?}",
        c.log()
    );
}

/// Scenario: the OTLP/HTTP backend answers 503 with a body that never ends; the exporter's
/// per-attempt timeout is far away (10 min).
/// Guarantees: the exporter reads a bounded prefix of the body and hangs up (the backend
/// sees its body dropped after a few MiB at most), instead of reading until the timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_response_body_is_not_read_to_the_end() {
    let backend = HttpBackend::start(ENDLESS_BODY).await;
    let c = Collector::start(&http_exporter_config(&backend, "    timeout: 10m"));
    let mut cl = client(c.grpc_url("otlp")).await;
    cl.export(request(0, 1)).await.unwrap();
    assert!(
        eventually(WAIT, || async { backend.hung_up.load(Ordering::SeqCst) }).await,
        "the exporter kept reading an endless body ({} bytes so far)",
        backend.streamed.load(Ordering::SeqCst)
    );
    let streamed = backend.streamed.load(Ordering::SeqCst);
    assert!(streamed < 64 << 20, "{streamed} bytes read");
}

fn receiver_config(http_extra: &str) -> String {
    format!(
        r#"
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
      http:
        endpoint: 127.0.0.1:0
{http_extra}
exporters:
  debug:
    verbosity: basic
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [debug]
"#
    )
}

/// Reads until the server closes the connection (EOF or reset); returns what it sent.
async fn until_closed(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(WAIT, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return out,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => panic!(
                "the server kept the connection open for {WAIT:?}; got {:?}",
                String::from_utf8_lossy(&out)
            ),
        }
    }
}

const TIMEOUTS: &str =
    "        read_header_timeout: 1s\n        read_timeout: 2s\n        idle_timeout: 1s";

/// Scenario: HTTP receiver with `read_header_timeout: 1s`, `read_timeout: 2s`,
/// `idle_timeout: 1s`; a slowloris client (headers never finished), a client that sends 1
/// MiB of a 19 MiB body and stops, a client that connects and says nothing, and a client
/// that stays connected after its request.
/// Guarantees: the server closes every one of them (it used to keep them forever); the
/// unfinished body is answered 408 first; a well-behaved request on the same server works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_receiver_closes_slow_and_idle_connections() {
    let c = Collector::start(&receiver_config(TIMEOUTS));
    let addr = c.http["otlp"];

    let mut slowloris = TcpStream::connect(addr).await.unwrap();
    slowloris
        .write_all(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nX-Slow")
        .await
        .unwrap();
    until_closed(&mut slowloris).await;

    let mut unfinished = TcpStream::connect(addr).await.unwrap();
    unfinished
        .write_all(
            format!(
                "POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nContent-Length: {}\r\n\r\n",
                19 << 20
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    unfinished.write_all(&vec![0u8; 1 << 20]).await.unwrap();
    let answer = String::from_utf8_lossy(&until_closed(&mut unfinished).await).into_owned();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");

    let mut silent = TcpStream::connect(addr).await.unwrap();
    until_closed(&mut silent).await;

    let body = request(0, 1).encode_to_vec();
    let mut kept = TcpStream::connect(addr).await.unwrap();
    kept.write_all(
        format!(
            "POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    kept.write_all(&body).await.unwrap();
    let answer = String::from_utf8_lossy(&until_closed(&mut kept).await).into_owned();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// Scenario: gRPC receiver with `keepalive.server_parameters.max_connection_idle: 1s`; a
/// client connects (HTTP/2 preface and settings) and then sends no call.
/// Guarantees: the connection is closed (tonic has no idle timeout of its own).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_receiver_closes_idle_connections() {
    let c = Collector::start(&receiver_config("").replace(
        "      grpc:\n        endpoint: 127.0.0.1:0\n",
        "      grpc:\n        endpoint: 127.0.0.1:0\n        keepalive:\n          server_parameters:\n            max_connection_idle: 1s\n",
    ));
    let mut s = TcpStream::connect(c.grpc["otlp"]).await.unwrap();
    s.write_all(H2_PREFACE).await.unwrap();
    s.write_all(&frame(4, 0, 0, &[])).await.unwrap();
    until_closed(&mut s).await;
}

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// Reads one HTTP/2 frame: (type, flags, stream, payload).
async fn read_frame(s: &mut TcpStream) -> Option<(u8, u8, u32, Vec<u8>)> {
    let mut head = [0u8; 9];
    s.read_exact(&mut head).await.ok()?;
    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
    let mut payload = vec![0u8; len];
    s.read_exact(&mut payload).await.ok()?;
    Some((head[3], head[4], stream, payload))
}

/// Scenario: a raw HTTP/2 client on the gRPC receiver reads the server's SETTINGS, then
/// opens 2,000 streams whose headers are malformed (an upper-case header name), each of
/// which the server must reset.
/// Guarantees: SETTINGS_MAX_CONCURRENT_STREAMS is 100 (it was unlimited), and the server
/// ends the connection with GOAWAY once the resets pass its limit (it never did).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_receiver_limits_streams_and_resets() {
    let c = Collector::start(&receiver_config(""));
    let mut s = TcpStream::connect(c.grpc["otlp"]).await.unwrap();
    s.write_all(H2_PREFACE).await.unwrap();
    s.write_all(&frame(4, 0, 0, &[])).await.unwrap();
    let (kind, _, _, payload) = tokio::time::timeout(WAIT, read_frame(&mut s))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kind, 4, "the server did not start with SETTINGS");
    let max_streams = payload
        .chunks(6)
        .find(|p| p[..2] == [0, 3])
        .map(|p| u32::from_be_bytes([p[2], p[3], p[4], p[5]]));
    assert_eq!(max_streams, Some(100));
    // HPACK: :method POST, :scheme http, :path /, then a literal "Bad: x" (names must be
    // lower case in HTTP/2, so each stream is malformed).
    let mut block = vec![0x83, 0x86, 0x84];
    block.extend_from_slice(&[0x00, 3, b'B', b'a', b'd', 1, b'x']);
    let writer = {
        let mut w = Vec::new();
        for i in 0..2000u32 {
            w.extend_from_slice(&frame(1, 0x5, 2 * i + 1, &block));
        }
        w
    };
    let (mut rd, mut wr) = s.into_split();
    let send = tokio::spawn(async move {
        let _ = wr.write_all(&writer).await;
        wr
    });
    let mut goaway = false;
    let mut resets = 0u32;
    let read = async {
        let mut head = [0u8; 9];
        while rd.read_exact(&mut head).await.is_ok() {
            let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
            let mut payload = vec![0u8; len];
            if rd.read_exact(&mut payload).await.is_err() {
                break;
            }
            match head[3] {
                3 => resets += 1,
                7 => {
                    goaway = true;
                    break;
                }
                _ => {}
            }
        }
    };
    let _ = tokio::time::timeout(WAIT, read).await;
    let _ = send.await;
    assert!(goaway, "no GOAWAY after {resets} reset streams");
}

/// Scenario: the collector runs with 256 open files (`ulimit -n`); 400 clients connect to
/// the HTTP receiver and say nothing (`idle_timeout: 1s`).
/// Guarantees: the HTTP listener stops at its connection cap (a quarter of the limit) and
/// says so in the log; gRPC, `/metrics` and then HTTP itself keep serving (these sockets
/// used to exhaust the descriptors, and every listener timed out).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sockets_do_not_starve_other_listeners() {
    let c = Collector::start_with_open_files(&receiver_config(TIMEOUTS), 256);
    let addr = c.http["otlp"];
    let mut idle = Vec::new();
    for _ in 0..400 {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    assert!(
        eventually(WAIT, || async {
            c.log()
                .iter()
                .any(|l| l.contains("connection limit reached"))
        })
        .await,
        "no log line about the connection limit"
    );
    let mut cl = client(c.grpc_url("otlp")).await;
    tokio::time::timeout(WAIT, cl.export(request(0, 1)))
        .await
        .expect("gRPC timed out")
        .unwrap();
    let scrape = tokio::time::timeout(WAIT, c.scrape())
        .await
        .expect("/metrics timed out");
    assert!(
        scrape.contains("otelcol_receiver_accepted_spans"),
        "{scrape}"
    );
    let http = reqwest::Client::new();
    let res = tokio::time::timeout(
        WAIT,
        http.post(format!("http://{addr}/v1/traces"))
            .header("content-type", "application/x-protobuf")
            .body(request(1, 1).encode_to_vec())
            .send(),
    )
    .await
    .expect("HTTP timed out behind the idle sockets")
    .unwrap();
    assert_eq!(res.status(), 200);
    drop(idle);
}

/// Scenario: spans whose trace id is 15 bytes, over OTLP/HTTP protobuf and gRPC.
/// Guarantees: 400 / INVALID_ARGUMENT with upstream pdata's text; nothing is forwarded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_of_the_wrong_length_are_refused() {
    let c = Collector::start(&receiver_config(""));
    let mut bad = request(0, 2);
    bad.resource_spans[0].scope_spans[0].spans[1].trace_id = vec![1; 15];
    let mut cl = client(c.grpc_url("otlp")).await;
    let e = cl.export(bad.clone()).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(
        e.message().contains("invalid TraceID length"),
        "{}",
        e.message()
    );
    let res = reqwest::Client::new()
        .post(format!("http://{}/v1/traces", c.http["otlp"]))
        .header("content-type", "application/x-protobuf")
        .body(bad.encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let body = res.bytes().await.unwrap();
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains("unmarshal: invalid TraceID length"), "{text}");
}

/// Sends one OTLP/HTTP request on a raw socket, so the test sees exactly what the server
/// does with the connection afterwards.
async fn post_raw(addr: SocketAddr) -> TcpStream {
    let body = request(0, 1).encode_to_vec();
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!(
            "POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    s.write_all(&body).await.unwrap();
    s
}

/// Scenario: HTTP receiver with `write_timeout: 1s` in front of an exporter without a queue
/// whose backend accepts connections and never answers (exporter timeout 10 minutes).
/// Guarantees: the connection is closed without an answer once `write_timeout` has run out
/// (the key used to be accepted and ignored, leaving the sender waiting on the backend).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_timeout_closes_a_connection_whose_answer_is_late() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let c = Collector::start(&format!(
        r#"
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:0
        write_timeout: 1s
exporters:
  otlp_http:
    endpoint: http://{silent_addr}
    compression: none
    timeout: 10m
    sending_queue:
      enabled: false
    retry_on_failure:
      enabled: false
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [otlp_http]
"#
    ));
    let mut s = post_raw(c.http["otlp"]).await;
    let answer = until_closed(&mut s).await;
    assert!(
        answer.is_empty(),
        "expected the connection closed without an answer, got {:?}",
        String::from_utf8_lossy(&answer)
    );
    holder.abort();
}

/// Scenario: HTTP receiver with `keep_alives_enabled: false`; one request on a raw socket.
/// Guarantees: it is answered 200 and the connection is then closed by the server (it used
/// to stay open until the 60 s idle timeout).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_keep_alives_close_after_one_request() {
    let c = Collector::start(&receiver_config("        keep_alives_enabled: false"));
    let mut s = post_raw(c.http["otlp"]).await;
    let answer = String::from_utf8_lossy(&until_closed(&mut s).await).into_owned();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
}
