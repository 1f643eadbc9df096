//! Client-side TLS for the exporters: one rustls configuration built from the `tls` keys,
//! rebuilt when `reload_interval` finds a new client certificate, key or CA on disk.
//! Connections made after a reload use the new one; open connections are left alone.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::RwLock;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{self, CertificateDer, ServerName};
use wasmcol_core::Tasks;

use super::ClientTls;
use super::crypto::{Crypto, CryptoKeys};
use super::pem::{Pem, certified_key, is_set, read_pem, refuse_tpm, roots};

#[derive(Debug, Clone, PartialEq)]
struct Material {
    ca: Option<Pem>,
    identity: Option<(Pem, Pem)>,
}

/// An exporter's TLS; clones share the current configuration.
#[derive(Clone)]
pub struct ClientTlsConfig {
    shared: Arc<Shared>,
}

struct Shared {
    keys: ClientTls,
    crypto: Crypto,
    alpn: Vec<Vec<u8>>,
    server_name: Option<ServerName<'static>>,
    current: RwLock<(Material, Arc<rustls::ClientConfig>)>,
    /// Bumped on every reload, so users holding a client built on the old configuration
    /// know to build a new one.
    generation: AtomicU64,
}

impl ClientTls {
    /// Checks every key, reads the files (CA and client certificate parse, the key belongs
    /// to the certificate) and builds the rustls configuration offering `alpn`; errors
    /// start with their `tls.` key path.
    pub fn build(&self, alpn: &[&[u8]]) -> Result<ClientTlsConfig, String> {
        refuse_tpm(&self.tpm)?;
        let crypto = CryptoKeys {
            min_version: self.min_version.as_deref(),
            max_version: self.max_version.as_deref(),
            cipher_suites: &self.cipher_suites,
            include_insecure_cipher_suites: self.include_insecure_cipher_suites,
            curve_preferences: &self.curve_preferences,
        }
        .resolve()?;
        let server_name = match self
            .server_name_override
            .as_deref()
            .filter(|n| !n.is_empty())
        {
            Some(n) => Some(ServerName::try_from(n.to_owned()).map_err(|_| {
                format!("tls.server_name_override: {n:?} is neither a DNS name nor an IP address")
            })?),
            None => None,
        };
        let has_files = [&self.ca_file, &self.cert_file, &self.key_file]
            .into_iter()
            .any(is_set);
        if self.reload_interval.is_some_and(|d| !d.is_zero()) && !has_files {
            return Err("tls.reload_interval: nothing to reload: ca_file, cert_file and key_file are unset (inline PEM never changes)".into());
        }
        if self.insecure_skip_verify {
            tracing::warn!(
                "tls.insecure_skip_verify is set: the server's certificate is not verified"
            );
        }
        let material = self.read()?;
        let alpn: Vec<Vec<u8>> = alpn.iter().map(|p| p.to_vec()).collect();
        let config = client_config(self, &crypto, &alpn, server_name.as_ref(), &material)?;
        Ok(ClientTlsConfig {
            shared: Arc::new(Shared {
                keys: self.clone(),
                crypto,
                alpn,
                server_name,
                current: RwLock::new((material, Arc::new(config))),
                generation: AtomicU64::new(0),
            }),
        })
    }

    fn read(&self) -> Result<Material, String> {
        let ca = read_pem(&self.ca_file, &self.ca_pem, "ca_file", "ca_pem", "CA")?;
        let cert = read_pem(
            &self.cert_file,
            &self.cert_pem,
            "cert_file",
            "cert_pem",
            "certificate",
        )?;
        let key = read_pem(&self.key_file, &self.key_pem, "key_file", "key_pem", "key")?;
        let identity = match (cert, key) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => return Err("tls: TLS configuration must include both certificate and key (cert_file/cert_pem and key_file/key_pem)".into()),
        };
        Ok(Material { ca, identity })
    }
}

/// The rustls configuration: trusts `ca_file` only when it is set (plus the system roots
/// with `include_system_ca_certs_pool`), otherwise the system roots, like Go's
/// `crypto/tls`; verifies nothing but the handshake with `insecure_skip_verify`; verifies
/// the server as `server_name_override` when that is set; presents the client certificate.
fn client_config(
    keys: &ClientTls,
    crypto: &Crypto,
    alpn: &[Vec<u8>],
    server_name: Option<&ServerName<'static>>,
    material: &Material,
) -> Result<rustls::ClientConfig, String> {
    let builder = rustls::ClientConfig::builder_with_provider(crypto.provider.clone())
        .with_protocol_versions(&crypto.versions)
        .map_err(|e| format!("tls.cipher_suites: {e}"))?;
    let chain = if keys.insecure_skip_verify {
        None
    } else {
        let system = material.ca.is_none() || keys.include_system_ca_certs_pool;
        let roots = roots(material.ca.as_ref(), "the CA", system)?;
        if roots.is_empty() {
            return Err(
                "tls.ca_file: no CA to verify the server with: set ca_file or install the system CA certificates".into(),
            );
        }
        let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            crypto.provider.clone(),
        )
        .build()
        .map_err(|e| format!("tls.ca_file: {e}"))?;
        Some(webpki)
    };
    let verifier = Arc::new(Verifier {
        chain,
        name: server_name.cloned(),
        provider: crypto.provider.clone(),
    });
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match &material.identity {
        Some((cert, key)) => {
            let certified = certified_key(cert, key)?;
            builder.with_client_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(
                certified,
            )))
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.to_vec();
    Ok(config)
}

impl ClientTlsConfig {
    /// The configuration new connections use.
    pub fn current(&self) -> Arc<rustls::ClientConfig> {
        self.shared.current.read().1.clone()
    }

    /// How many times the configuration was reloaded.
    pub fn generation(&self) -> u64 {
        self.shared.generation.load(Ordering::Acquire)
    }

    /// `server_name_override`, when set.
    pub fn server_name(&self) -> Option<&ServerName<'static>> {
        self.shared.server_name.as_ref()
    }

    /// Whether a client certificate is presented.
    pub fn has_identity(&self) -> bool {
        self.shared.current.read().0.identity.is_some()
    }

    /// With `reload_interval`, spawns the task that rereads the CA, certificate and key every
    /// interval and swaps the configuration when they changed; a file that is missing or
    /// does not parse keeps the configuration in force and is logged. Ends with `tasks`.
    pub fn spawn_reload(&self, tasks: &Tasks, component: &str) {
        let Some(interval) = self
            .shared
            .keys
            .reload_interval
            .filter(|d| !d.is_zero())
            .map(Duration::from)
        else {
            return;
        };
        let (this, t, component) = (self.clone(), tasks.clone(), component.to_owned());
        tasks.spawn(async move {
            let cancel = t.token();
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(interval) => {}
                }
                let worker = this.clone();
                match t.spawn_blocking(move || worker.reload()).await {
                    Ok(Ok(true)) => tracing::info!(component = %component, "TLS certificates reloaded from disk"),
                    Ok(Ok(false)) => {}
                    Ok(Err(e)) => tracing::warn!(component = %component, error = %e, "TLS reload failed; the previous certificates stay in use"),
                    Err(e) => tracing::warn!(component = %component, error = %e, "TLS reload task failed"),
                }
            }
        });
    }

    fn reload(&self) -> Result<bool, String> {
        let s = &self.shared;
        let material = s.keys.read()?;
        if material == s.current.read().0 {
            return Ok(false);
        }
        let config = client_config(
            &s.keys,
            &s.crypto,
            &s.alpn,
            s.server_name.as_ref(),
            &material,
        )?;
        *s.current.write() = (material, Arc::new(config));
        s.generation.fetch_add(1, Ordering::AcqRel);
        Ok(true)
    }
}

/// Verifies the server: its chain with WebPKI, for `server_name_override` when that is set
/// rather than the host dialled; with `insecure_skip_verify` (no `chain`) any certificate is
/// accepted, as with Go's `InsecureSkipVerify`. The handshake signatures are checked either
/// way, so the peer holds the key of the certificate it sent.
#[derive(Debug)]
struct Verifier {
    chain: Option<Arc<rustls::client::WebPkiServerVerifier>>,
    name: Option<ServerName<'static>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        dialled: &ServerName<'_>,
        ocsp_response: &[u8],
        now: pki_types::UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        let name = self.name.as_ref().unwrap_or(dialled);
        chain.verify_server_cert(end_entity, intermediates, name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
