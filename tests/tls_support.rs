//! Helpers for the TLS end-to-end tests: certificates made at test time with rcgen (two
//! independent CAs, server and client leaves), gRPC clients with or without a client
//! certificate, and an HTTPS OTLP backend (for the `otlp_http` exporter) that can require
//! client certificates.
#![allow(dead_code)]
// Test code: a failed expectation is reported by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use parking_lot::Mutex;
use prost::Message;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A certificate authority that signs leaves.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    /// The CA certificate, PEM.
    pub pem: String,
}

/// A leaf certificate and its key, PEM.
#[derive(Clone)]
pub struct Leaf {
    pub cert: String,
    pub key: String,
}

impl Ca {
    /// A new self-signed CA named `name`.
    pub fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let pem = params.self_signed(&key).unwrap().pem();
        Ca {
            issuer: Issuer::new(params, key),
            pem,
        }
    }

    fn leaf(&self, cn: &str, sans: Vec<SanType>, usage: ExtendedKeyUsagePurpose) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.subject_alt_names = sans;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![usage];
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }

    /// A server certificate for `names` (IP addresses become IP SANs, the rest DNS SANs).
    pub fn server(&self, names: &[&str]) -> Leaf {
        let sans = names
            .iter()
            .map(|n| match n.parse::<IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName((*n).try_into().unwrap()),
            })
            .collect();
        self.leaf(names[0], sans, ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// A client certificate with common name `cn`.
    pub fn client(&self, cn: &str) -> Leaf {
        self.leaf(cn, Vec::new(), ExtendedKeyUsagePurpose::ClientAuth)
    }
}

/// The seed's certificate files, plus a second CA and a client it signed, in a temp dir.
pub struct Pki {
    pub dir: tempfile::TempDir,
    pub ca: Ca,
    pub other_ca: Ca,
    /// The gateway's server certificate: SAN 127.0.0.1 and localhost.
    pub gateway: Leaf,
    /// The region's client certificate, signed by `ca`.
    pub client: Leaf,
    /// A client certificate signed by `other_ca`.
    pub rogue: Leaf,
}

/// File names in [`Pki::dir`]; the first five are the seed's.
pub const CA: &str = "cross-region-ca.crt";
pub const GATEWAY_CERT: &str = "gateway-server.crt";
pub const GATEWAY_KEY: &str = "gateway-server.key";
pub const CLIENT_CERT: &str = "cross-region-client.crt";
pub const CLIENT_KEY: &str = "cross-region-client.key";
pub const OTHER_CA: &str = "other-ca.crt";
pub const ROGUE_CERT: &str = "rogue-client.crt";
pub const ROGUE_KEY: &str = "rogue-client.key";
/// The regions' bearer token file the hardened seed 000 examples read, holding [`TOKEN`].
pub const TOKEN_FILE: &str = "cross-region-token";
/// The bearer token every helper client here sends (harmless to servers without auth).
pub const TOKEN: &str = "wasmcol-test-cross-region-token";

impl Pki {
    /// Generates everything and writes the PEM files.
    pub fn generate() -> Pki {
        let ca = Ca::new("wasmcol test cross-region CA");
        let other_ca = Ca::new("some other CA");
        let gateway = ca.server(&["127.0.0.1", "localhost"]);
        let client = ca.client("us-east-1 region collector");
        let rogue = other_ca.client("us-east-1 region collector");
        let dir = tempfile::tempdir().unwrap();
        for (name, pem) in [
            (CA, &ca.pem),
            (GATEWAY_CERT, &gateway.cert),
            (GATEWAY_KEY, &gateway.key),
            (CLIENT_CERT, &client.cert),
            (CLIENT_KEY, &client.key),
            (OTHER_CA, &other_ca.pem),
            (ROGUE_CERT, &rogue.cert),
            (ROGUE_KEY, &rogue.key),
            (TOKEN_FILE, &format!("{TOKEN}\n")),
        ] {
            std::fs::write(dir.path().join(name), pem).unwrap();
        }
        Pki {
            dir,
            ca,
            other_ca,
            gateway,
            client,
            rogue,
        }
    }

    /// The full path of one of the files, for a config.
    pub fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// Writes an extra PEM file and returns its path.
    pub fn write(&self, name: &str, pem: &str) -> String {
        std::fs::write(self.dir.path().join(name), pem).unwrap();
        self.path(name)
    }
}

/// Connects over TLS to `addr` (verified as 127.0.0.1 against `ca_pem`), optionally with a
/// client certificate, and exports `req`; any failure (handshake or call) as text.
pub async fn export_over_tls(
    addr: SocketAddr,
    ca_pem: &str,
    identity: Option<&Leaf>,
    req: ExportTraceServiceRequest,
) -> Result<(), String> {
    let mut tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(ca_pem));
    if let Some(id) = identity {
        tls = tls.identity(tonic::transport::Identity::from_pem(&id.cert, &id.key));
    }
    let channel = tonic::transport::Endpoint::from_shared(format!("https://{addr}"))
        .map_err(|e| e.to_string())?
        .tls_config(tls)
        .map_err(|e| e.to_string())?
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(10))
        .connect()
        .await
        .map_err(|e| format!("connect: {e:?}"))?;
    let mut req = tonic::Request::new(req);
    req.metadata_mut()
        .insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    TraceServiceClient::new(channel)
        .export(req)
        .await
        .map(|_| ())
        .map_err(|s| format!("export: {s:?}"))
}

/// Exports `req` in plaintext to `addr`; any failure as text.
pub async fn export_plaintext(
    addr: SocketAddr,
    req: ExportTraceServiceRequest,
) -> Result<(), String> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| e.to_string())?
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(10))
        .connect()
        .await
        .map_err(|e| format!("connect: {e:?}"))?;
    let mut req = tonic::Request::new(req);
    req.metadata_mut()
        .insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    TraceServiceClient::new(channel)
        .export(req)
        .await
        .map(|_| ())
        .map_err(|s| format!("export: {s:?}"))
}

/// An OTLP/HTTP backend over TLS on 127.0.0.1 that records trace requests and which client
/// certificate (common name bytes) each connection presented.
#[derive(Clone)]
pub struct HttpsBackend {
    pub addr: SocketAddr,
    state: Arc<HttpsState>,
}

#[derive(Default)]
struct HttpsState {
    traces: Mutex<Vec<ExportTraceServiceRequest>>,
    /// Requests that arrived on a connection with a client certificate.
    with_client_cert: AtomicU64,
    /// Handshakes that failed.
    failed_handshakes: AtomicU64,
    notify: tokio::sync::Notify,
}

impl HttpsBackend {
    /// Serves with `server` as identity; with `client_ca`, client certificates signed by it
    /// are required.
    pub async fn start(server: &Leaf, client_ca: Option<&str>) -> HttpsBackend {
        Self::start_with_versions(server, client_ca, rustls::DEFAULT_VERSIONS).await
    }

    /// Like [`HttpsBackend::start`], speaking only the TLS `versions` given.
    pub async fn start_with_versions(
        server: &Leaf,
        client_ca: Option<&str>,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> HttpsBackend {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)
            .unwrap();
        let builder = match client_ca {
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for c in CertificateDer::pem_slice_iter(ca.as_bytes()) {
                    roots.add(c.unwrap()).unwrap();
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()
                .unwrap();
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let certs = CertificateDer::pem_slice_iter(server.cert.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(server.key.as_bytes()).unwrap();
        let mut config = builder.with_single_cert(certs, key).unwrap();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(HttpsState::default());
        let st = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                let st = st.clone();
                tokio::spawn(async move {
                    let tls = match acceptor.accept(tcp).await {
                        Ok(t) => t,
                        Err(_) => {
                            st.failed_handshakes.fetch_add(1, Ordering::Relaxed);
                            st.notify.notify_waiters();
                            return;
                        }
                    };
                    let client_cert = tls.get_ref().1.peer_certificates().is_some();
                    let svc = hyper::service::service_fn(move |req| {
                        let st = st.clone();
                        async move {
                            Ok::<_, std::convert::Infallible>(handle(&st, client_cert, req).await)
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                    .await;
                });
            }
        });
        HttpsBackend { addr, state }
    }

    /// `https://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Spans received so far.
    pub fn span_count(&self) -> usize {
        self.state
            .traces
            .lock()
            .iter()
            .flat_map(|t| &t.resource_spans)
            .flat_map(|rs| &rs.scope_spans)
            .map(|ss| ss.spans.len())
            .sum()
    }

    /// Requests that came on a connection with a verified client certificate.
    pub fn with_client_cert(&self) -> u64 {
        self.state.with_client_cert.load(Ordering::Relaxed)
    }

    /// TLS handshakes that failed.
    pub fn failed_handshakes(&self) -> u64 {
        self.state.failed_handshakes.load(Ordering::Relaxed)
    }

    /// Waits (bounded) until `cond` holds.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        cond: impl Fn(&HttpsBackend) -> bool,
    ) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.state.notify.notified();
            if cond(self) {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return cond(self);
            }
        }
    }
}

async fn handle(
    st: &HttpsState,
    client_cert: bool,
    req: http::Request<hyper::body::Incoming>,
) -> http::Response<Full<Bytes>> {
    let gzip = req
        .headers()
        .get(http::header::CONTENT_ENCODING)
        .is_some_and(|v| v == "gzip");
    let path_ok = req.uri().path() == "/v1/traces";
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return status(400),
    };
    let body = if gzip {
        let mut out = Vec::new();
        if std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut out)
            .is_err()
        {
            return status(400);
        }
        Bytes::from(out)
    } else {
        body
    };
    let Ok(decoded) = ExportTraceServiceRequest::decode(body) else {
        return status(400);
    };
    if !path_ok {
        return status(404);
    }
    if client_cert {
        st.with_client_cert.fetch_add(1, Ordering::Relaxed);
    }
    st.traces.lock().push(decoded);
    st.notify.notify_waiters();
    let mut r = http::Response::new(Full::new(Bytes::new()));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/x-protobuf"),
    );
    r
}

fn status(code: u16) -> http::Response<Full<Bytes>> {
    let mut r = http::Response::new(Full::new(Bytes::new()));
    *r.status_mut() = http::StatusCode::from_u16(code).unwrap();
    r
}

/// Creates the two queue directories of the seed's region collector under `root`.
pub fn queue_dirs(root: &Path) -> (PathBuf, PathBuf) {
    let local = root.join("local");
    let cross = root.join("cross-region");
    std::fs::create_dir_all(&local).unwrap();
    std::fs::create_dir_all(&cross).unwrap();
    (local, cross)
}

/// Whether `dir` holds at least one file (somewhere below it).
pub fn has_files(dir: &Path) -> bool {
    fn walk(p: &Path) -> bool {
        std::fs::read_dir(p).is_ok_and(|rd| {
            rd.flatten().any(|e| {
                let p = e.path();
                if p.is_dir() { walk(&p) } else { true }
            })
        })
    }
    walk(dir)
}

/// A rustls client configuration trusting `ca_pem`, presenting `identity` if given, speaking
/// only the TLS `versions` given.
pub fn client_config(
    ca_pem: &str,
    identity: Option<&Leaf>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> rustls::ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots);
    match identity {
        Some(id) => {
            let certs = CertificateDer::pem_slice_iter(id.cert.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_slice(id.key.as_bytes()).unwrap();
            builder.with_client_auth_cert(certs, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    }
}

/// POSTs `req` as protobuf to `https://addr/v1/traces` with `config`; the status, or the
/// failure with its causes.
pub async fn post_https(
    addr: SocketAddr,
    config: rustls::ClientConfig,
    req: &ExportTraceServiceRequest,
) -> Result<u16, String> {
    post_https_with_token(addr, config, req, Some(TOKEN)).await
}

/// [`post_https`] with `token` as the bearer token, or none.
pub async fn post_https_with_token(
    addr: SocketAddr,
    config: rustls::ClientConfig,
    req: &ExportTraceServiceRequest,
    token: Option<&str>,
) -> Result<u16, String> {
    let client = reqwest::Client::builder()
        .use_preconfigured_tls(config)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut post = client
        .post(format!("https://{addr}/v1/traces"))
        .header("content-type", "application/x-protobuf");
    if let Some(t) = token {
        post = post.header("authorization", format!("Bearer {t}"));
    }
    let resp = post
        .body(req.encode_to_vec())
        .send()
        .await
        .map_err(|e| format!("{e:?}"))?;
    Ok(resp.status().as_u16())
}

/// Completes a TLS handshake with `addr` (verified as 127.0.0.1) and returns the stream.
pub async fn handshake(
    addr: SocketAddr,
    config: rustls::ClientConfig,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, String> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    tokio::time::timeout(
        Duration::from_secs(10),
        tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp),
    )
    .await
    .map_err(|_| "handshake timed out".to_string())?
    .map_err(|e| e.to_string())
}

/// One HTTP/1.1 keep-alive connection over TLS, spoken by hand so a test knows that every
/// request goes over the same connection.
pub struct RawHttps {
    stream: tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
}

impl RawHttps {
    /// Connects and completes the handshake.
    pub async fn connect(
        addr: SocketAddr,
        config: rustls::ClientConfig,
    ) -> Result<RawHttps, String> {
        Ok(RawHttps {
            stream: handshake(addr, config).await?,
        })
    }

    /// The server's certificate (DER) on this connection.
    pub fn peer_cert(&self) -> Vec<u8> {
        self.stream.get_ref().1.peer_certificates().unwrap()[0].to_vec()
    }

    /// POSTs `req` to `/v1/traces` and reads the response; its status.
    pub async fn post_traces(&mut self, req: &ExportTraceServiceRequest) -> Result<u16, String> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let body = req.encode_to_vec();
        let head = format!(
            "POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-protobuf\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let io = async {
            self.stream.write_all(head.as_bytes()).await?;
            self.stream.write_all(&body).await?;
            self.stream.flush().await?;
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .map_or(0, |v| v.trim().parse().unwrap());
                    while buf.len() < end + 4 + len {
                        let n = self.stream.read(&mut chunk).await?;
                        if n == 0 {
                            break;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    let status = head.split(' ').nth(1).unwrap_or("0").parse().unwrap_or(0);
                    return Ok::<u16, std::io::Error>(status);
                }
                let n = self.stream.read(&mut chunk).await?;
                if n == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                buf.extend_from_slice(&chunk[..n]);
            }
        };
        tokio::time::timeout(Duration::from_secs(10), io)
            .await
            .map_err(|_| "no response within 10s".to_string())?
            .map_err(|e| e.to_string())
    }
}
