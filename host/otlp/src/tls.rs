//! `tls` settings (upstream configtls) for servers and clients.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{self, CertificateDer, PrivateKeyDer, ServerName, pem::PemObject};
use rustls::sign::CertifiedKey;
use serde::Deserialize;
use wasmcol_config::GoDuration;

/// Server-side `tls`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerTls {
    /// Server certificate file (PEM).
    pub cert_file: Option<String>,
    /// Server certificate (PEM, inline).
    pub cert_pem: Option<String>,
    /// Private key file (PEM).
    pub key_file: Option<String>,
    /// Private key (PEM, inline).
    pub key_pem: Option<String>,
    /// CA for the server's own chain (accepted).
    pub ca_file: Option<String>,
    /// Inline CA (accepted).
    pub ca_pem: Option<String>,
    /// Clients must present a certificate signed by this CA (mTLS).
    pub client_ca_file: Option<String>,
    /// Reload of the client CA (accepted; not implemented).
    #[serde(default)]
    pub client_ca_file_reload: bool,
    /// Minimum TLS version (accepted, not applied: rustls negotiates 1.2 or 1.3, upstream's
    /// default range).
    pub min_version: Option<String>,
    /// Maximum TLS version (accepted, not applied).
    pub max_version: Option<String>,
    /// Cipher suites (accepted; rustls uses its safe defaults).
    #[serde(default)]
    pub cipher_suites: Vec<String>,
    /// Accepted for compatibility.
    #[serde(default)]
    pub include_insecure_cipher_suites: bool,
    /// Accepted for compatibility.
    #[serde(default)]
    pub curve_preferences: Vec<String>,
    /// Certificate reload interval (accepted; not implemented).
    pub reload_interval: Option<GoDuration>,
}

/// PEM bytes and where they came from (the key that named them and, for files, the path),
/// so later parse errors can say which setting to fix.
struct Pem {
    bytes: Vec<u8>,
    /// `tls.cert_file` or `tls.cert_pem`.
    key: String,
    /// `file /path` or `the inline PEM`.
    source: String,
}

fn read_pem(
    file: &Option<String>,
    inline: &Option<String>,
    file_key: &str,
    pem_key: &str,
    what: &str,
) -> Result<Option<Pem>, String> {
    match (file, inline) {
        (Some(_), Some(_)) => Err(format!(
            "tls.{file_key}: provide either a {what} file or the PEM-encoded string ({pem_key}), but not both"
        )),
        (Some(f), None) => std::fs::read(f)
            .map(|bytes| {
                Some(Pem {
                    bytes,
                    key: format!("tls.{file_key}"),
                    source: format!("file {f}"),
                })
            })
            .map_err(|e| format!("tls.{file_key}: failed to load {what} {f}: {e}")),
        (None, Some(p)) => Ok(Some(Pem {
            bytes: p.clone().into_bytes(),
            key: format!("tls.{pem_key}"),
            source: "the inline PEM".into(),
        })),
        (None, None) => Ok(None),
    }
}

/// Every certificate in `pem`. tonic and rustls skip PEM blocks they do not recognise, so a
/// file without a certificate (a key, a DER file, a typo'd path to the wrong file) would
/// otherwise become an empty trust store and fail later as a baffling handshake error.
fn parse_certs(pem: &Pem, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(&pem.bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: cannot parse {what} in {}: {e}", pem.key, pem.source))?;
    if certs.is_empty() {
        return Err(format!(
            "{}: no PEM certificate (-----BEGIN CERTIFICATE-----) in {}",
            pem.key, pem.source
        ));
    }
    Ok(certs)
}

fn parse_key(pem: &Pem) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_slice(&pem.bytes).map_err(|e| match e {
        pki_types::pem::Error::NoItemsFound => format!(
            "{}: no PEM private key (PKCS#8, PKCS#1 or SEC1) in {}",
            pem.key, pem.source
        ),
        e => format!(
            "{}: cannot parse the private key in {}: {e}",
            pem.key, pem.source
        ),
    })
}

/// Checks that the key can sign and belongs to the first certificate, as Go's
/// `tls.X509KeyPair` does, so a mismatched pair fails at `validate` and not at the first
/// handshake.
fn check_pair(cert: &Pem, key: &Pem) -> Result<(), String> {
    let chain = parse_certs(cert, "the certificate")?;
    let der = parse_key(key)?;
    let provider = rustls::crypto::ring::default_provider();
    let signing = provider
        .key_provider
        .load_private_key(der)
        .map_err(|e| format!("{}: unusable private key in {}: {e}", key.key, key.source))?;
    match CertifiedKey::new(chain, signing).keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(()),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(format!(
                "{}: the private key in {} does not belong to the certificate in {} ({})",
                key.key, key.source, cert.source, cert.key
            ))
        }
        Err(e) => Err(format!("{}: {e} ({})", cert.key, cert.source)),
    }
}

/// PEM material read from disk, ready for rustls/tonic.
#[derive(Debug, Clone)]
pub struct ServerPem {
    /// Certificate chain.
    pub cert: Vec<u8>,
    /// Private key.
    pub key: Vec<u8>,
    /// CA clients must chain to, when mTLS is on.
    pub client_ca: Option<Vec<u8>>,
}

impl ServerTls {
    /// Reads and checks the files (the certificate and key parse and belong together, the
    /// client CA holds a certificate); errors carry the `tls.` key path.
    pub fn load(&self) -> Result<ServerPem, String> {
        let cert = read_pem(
            &self.cert_file,
            &self.cert_pem,
            "cert_file",
            "cert_pem",
            "certificate",
        )?;
        let key = read_pem(&self.key_file, &self.key_pem, "key_file", "key_pem", "key")?;
        let (Some(cert), Some(key)) = (cert, key) else {
            return Err("tls: a server needs both cert_file and key_file".into());
        };
        check_pair(&cert, &key)?;
        let client_ca = read_pem(
            &self.client_ca_file,
            &None,
            "client_ca_file",
            "client_ca_file",
            "client CA",
        )?;
        if let Some(ca) = &client_ca {
            parse_certs(ca, "the client CA")?;
        }
        Ok(ServerPem {
            cert: cert.bytes,
            key: key.bytes,
            client_ca: client_ca.map(|c| c.bytes),
        })
    }
}

impl ServerPem {
    /// A rustls server configuration (ring) with this certificate and key; with a client
    /// CA, every client must present a certificate that chains to it (upstream's
    /// `RequireAndVerifyClientCert`). `alpn` lists the protocols offered (`h2` for gRPC).
    pub fn rustls_server_config(&self, alpn: &[&[u8]]) -> Result<rustls::ServerConfig, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("tls: {e}"))?;
        let builder = match &self.client_ca {
            Some(ca) => {
                let pem = Pem {
                    bytes: ca.clone(),
                    key: "tls.client_ca_file".into(),
                    source: "the client CA".into(),
                };
                let mut roots = rustls::RootCertStore::empty();
                for cert in parse_certs(&pem, "the client CA")? {
                    roots
                        .add(cert)
                        .map_err(|e| format!("tls.client_ca_file: unusable CA certificate: {e}"))?;
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()
                .map_err(|e| format!("tls.client_ca_file: {e}"))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let cert = Pem {
            bytes: self.cert.clone(),
            key: "tls.cert_file".into(),
            source: "the server certificate".into(),
        };
        let key = Pem {
            bytes: self.key.clone(),
            key: "tls.key_file".into(),
            source: "the server key".into(),
        };
        let mut config = builder
            .with_single_cert(parse_certs(&cert, "the certificate")?, parse_key(&key)?)
            .map_err(|e| format!("tls.cert_file: {e}"))?;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(config)
    }
}

/// Client-side `tls`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientTls {
    /// Plaintext connection.
    #[serde(default)]
    pub insecure: bool,
    /// TLS without verifying the server (not supported: refused with a clear error).
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// CA file to verify the server (default: system roots).
    pub ca_file: Option<String>,
    /// Inline CA.
    pub ca_pem: Option<String>,
    /// Client certificate for mTLS.
    pub cert_file: Option<String>,
    /// Inline client certificate.
    pub cert_pem: Option<String>,
    /// Client key for mTLS.
    pub key_file: Option<String>,
    /// Inline client key.
    pub key_pem: Option<String>,
    /// Name to verify instead of the endpoint's host.
    pub server_name_override: Option<String>,
    /// Also trust the system roots when `ca_file` is set.
    #[serde(default)]
    pub include_system_ca_certs_pool: bool,
    /// Minimum TLS version (accepted, not applied: rustls negotiates 1.2 or 1.3, upstream's
    /// default range).
    pub min_version: Option<String>,
    /// Maximum TLS version (accepted, not applied).
    pub max_version: Option<String>,
    /// Accepted for compatibility.
    #[serde(default)]
    pub cipher_suites: Vec<String>,
    /// Accepted for compatibility.
    #[serde(default)]
    pub curve_preferences: Vec<String>,
    /// Reload interval (accepted).
    pub reload_interval: Option<GoDuration>,
}

/// Client PEM material.
#[derive(Debug, Clone, Default)]
pub struct ClientPem {
    /// CA to verify the server.
    pub ca: Option<Vec<u8>>,
    /// Client identity (cert, key).
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
    /// Server name override.
    pub server_name: Option<String>,
    /// Trust the system roots as well as `ca`.
    pub include_system_roots: bool,
}

impl ClientTls {
    /// Reads and checks the files (CA and client certificate parse, the key belongs to the
    /// certificate); errors carry the `tls.` key path.
    pub fn load(&self) -> Result<ClientPem, String> {
        if self.insecure_skip_verify {
            return Err("tls.insecure_skip_verify: not supported; configure ca_file with the server's CA instead".into());
        }
        let ca = read_pem(&self.ca_file, &self.ca_pem, "ca_file", "ca_pem", "CA")?;
        if let Some(ca) = &ca {
            parse_certs(ca, "the CA")?;
        }
        let cert = read_pem(
            &self.cert_file,
            &self.cert_pem,
            "cert_file",
            "cert_pem",
            "certificate",
        )?;
        let key = read_pem(&self.key_file, &self.key_pem, "key_file", "key_pem", "key")?;
        let identity = match (cert, key) {
            (Some(c), Some(k)) => {
                check_pair(&c, &k)?;
                Some((c.bytes, k.bytes))
            }
            (None, None) => None,
            _ => return Err("tls: for mutual TLS provide both cert_file and key_file".into()),
        };
        if let Some(n) = &self.server_name_override
            && ServerName::try_from(n.as_str()).is_err()
        {
            return Err(format!(
                "tls.server_name_override: {n:?} is neither a DNS name nor an IP address"
            ));
        }
        Ok(ClientPem {
            ca: ca.map(|c| c.bytes),
            identity,
            server_name: self.server_name_override.clone(),
            include_system_roots: self.include_system_ca_certs_pool,
        })
    }
}

impl ClientPem {
    /// A rustls client configuration (ring) for HTTP clients: trusts `ca_file` only when it
    /// is set (plus the system roots with `include_system_ca_certs_pool`), otherwise the
    /// system roots, like Go's `crypto/tls`; presents the client certificate; and verifies
    /// the server as `server_name_override` when that is set.
    pub fn rustls_client_config(&self) -> Result<rustls::ClientConfig, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        if let Some(ca) = &self.ca {
            let pem = Pem {
                bytes: ca.clone(),
                key: "tls.ca_file".into(),
                source: "the CA".into(),
            };
            for cert in parse_certs(&pem, "the CA")? {
                roots
                    .add(cert)
                    .map_err(|e| format!("tls.ca_file: unusable CA certificate: {e}"))?;
            }
        }
        if self.ca.is_none() || self.include_system_roots {
            let native = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(native.certs);
        }
        if roots.is_empty() {
            return Err(
                "tls.ca_file: no CA to verify the server with: set ca_file or install the system CA certificates".into(),
            );
        }
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("tls: {e}"))?;
        let builder = match &self.server_name {
            Some(name) => {
                let name = ServerName::try_from(name.clone()).map_err(|_| {
                    format!(
                        "tls.server_name_override: {name:?} is neither a DNS name nor an IP address"
                    )
                })?;
                let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()
                .map_err(|e| format!("tls.ca_file: {e}"))?;
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(NamedServerVerifier { inner, name }))
            }
            None => builder.with_root_certificates(roots),
        };
        let mut config = match &self.identity {
            Some((cert, key)) => {
                let cert = Pem {
                    bytes: cert.clone(),
                    key: "tls.cert_file".into(),
                    source: "the client certificate".into(),
                };
                let key = Pem {
                    bytes: key.clone(),
                    key: "tls.key_file".into(),
                    source: "the client key".into(),
                };
                builder
                    .with_client_auth_cert(parse_certs(&cert, "the certificate")?, parse_key(&key)?)
                    .map_err(|e| format!("tls.cert_file: {e}"))?
            }
            None => builder.with_no_client_auth(),
        };
        // A preconfigured rustls config is used as is by reqwest, ALPN included.
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    }
}

/// Verifies the server's certificate for a fixed name (`server_name_override`) rather than
/// the host the client dialled. All checks but the name are the standard WebPKI ones.
#[derive(Debug)]
struct NamedServerVerifier {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    name: ServerName<'static>,
}

impl ServerCertVerifier for NamedServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _dialled: &ServerName<'_>,
        ocsp_response: &[u8],
        now: pki_types::UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
