//! Server-side TLS: the rustls configuration built from a receiver's `tls` keys, swapped for
//! a new one when `reload_interval` or `client_ca_file_reload` finds new files on disk.
//! Connections take the configuration current when they arrive, so a reload never touches
//! an established connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use tokio::net::TcpStream;
use wasmcol_core::Tasks;

use super::ServerTls;
use super::crypto::{Crypto, CryptoKeys};
use super::pem::{Pem, certified_key, is_set, parse_certs, read_pem, refuse_tpm, roots};

/// How long a client may take to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often `client_ca_file_reload` looks at the client CA file (upstream watches it).
const CLIENT_CA_POLL: Duration = Duration::from_secs(1);

/// The files and inline PEM of one configuration, compared to tell whether a reload changed
/// anything.
#[derive(Debug, Clone, PartialEq)]
struct Material {
    cert: Pem,
    key: Pem,
    client_ca: Option<Pem>,
}

/// A receiver's TLS, ready to accept connections; clones share the current configuration.
#[derive(Clone)]
pub struct ServerTlsConfig {
    shared: Arc<Shared>,
}

struct Shared {
    keys: ServerTls,
    crypto: Crypto,
    alpn: Vec<Vec<u8>>,
    current: RwLock<(Material, Arc<rustls::ServerConfig>)>,
}

impl ServerTls {
    /// Checks every key and reads the files (the certificate and key parse and belong
    /// together, the client CA holds a certificate) and builds the rustls configuration
    /// offering `alpn`; errors start with their `tls.` key path.
    pub fn build(&self, alpn: &[&[u8]]) -> Result<ServerTlsConfig, String> {
        refuse_tpm(&self.tpm)?;
        let crypto = CryptoKeys {
            min_version: self.min_version.as_deref(),
            max_version: self.max_version.as_deref(),
            cipher_suites: &self.cipher_suites,
            include_insecure_cipher_suites: self.include_insecure_cipher_suites,
            curve_preferences: &self.curve_preferences,
        }
        .resolve()?;
        self.check_server_keys()?;
        let material = self.read(None)?;
        let alpn: Vec<Vec<u8>> = alpn.iter().map(|p| p.to_vec()).collect();
        let config = server_config(self, &crypto, &alpn, &material)?;
        Ok(ServerTlsConfig {
            shared: Arc::new(Shared {
                keys: self.clone(),
                crypto,
                alpn,
                current: RwLock::new((material, Arc::new(config))),
            }),
        })
    }

    /// Keys that mean something only with others, refused alone rather than ignored.
    fn check_server_keys(&self) -> Result<(), String> {
        let has_client_ca = is_set(&self.client_ca_file) || is_set(&self.client_ca_pem);
        let has_ca = is_set(&self.ca_file) || is_set(&self.ca_pem);
        if has_ca && !has_client_ca {
            return Err("tls.ca_file: a server does not verify clients with ca_file or ca_pem (upstream ignores them there); set client_ca_file to require client certificates signed by that CA".into());
        }
        if has_ca {
            // Checked so a broken file is still reported, as upstream loads it too.
            let ca = read_pem(&self.ca_file, &self.ca_pem, "ca_file", "ca_pem", "CA")?;
            if let Some(ca) = &ca {
                parse_certs(ca, "the CA")?;
            }
            tracing::warn!(
                "tls.ca_file / ca_pem on a server has no effect (as upstream); clients are verified against client_ca_file"
            );
        }
        if self.include_system_ca_certs_pool && !has_client_ca {
            return Err("tls.include_system_ca_certs_pool: on a server it only adds the system CAs to client_ca_file; set client_ca_file too".into());
        }
        if self.client_ca_file_reload && !is_set(&self.client_ca_file) {
            return Err(
                "tls.client_ca_file_reload: needs client_ca_file (there is no file to reload)"
                    .into(),
            );
        }
        let has_files = [&self.cert_file, &self.key_file, &self.client_ca_file]
            .into_iter()
            .any(is_set);
        if self.reload_interval.is_some_and(|d| !d.is_zero()) && !has_files {
            return Err("tls.reload_interval: nothing to reload: cert_file, key_file and client_ca_file are unset (inline PEM never changes)".into());
        }
        Ok(())
    }

    /// Reads the material; with `keep_identity`, the certificate and key are those given
    /// rather than read again.
    fn read(&self, keep_identity: Option<(&Pem, &Pem)>) -> Result<Material, String> {
        let (cert, key) = match keep_identity {
            Some((c, k)) => (c.clone(), k.clone()),
            None => {
                let cert = read_pem(
                    &self.cert_file,
                    &self.cert_pem,
                    "cert_file",
                    "cert_pem",
                    "certificate",
                )?;
                let key = read_pem(&self.key_file, &self.key_pem, "key_file", "key_pem", "key")?;
                match (cert, key) {
                    (Some(c), Some(k)) => (c, k),
                    (None, None) => return Err("tls: TLS configuration must include both certificate and key for server connections (cert_file and key_file)".into()),
                    _ => return Err("tls: TLS configuration must include both certificate and key (cert_file/cert_pem and key_file/key_pem)".into()),
                }
            }
        };
        let client_ca = read_pem(
            &self.client_ca_file,
            &self.client_ca_pem,
            "client_ca_file",
            "client_ca_pem",
            "client CA",
        )?;
        Ok(Material {
            cert,
            key,
            client_ca,
        })
    }
}

/// The rustls configuration for `material`: its certificate, and with a client CA every
/// client must present a certificate that chains to it (upstream's
/// `RequireAndVerifyClientCert`), the system CAs joining it with
/// `include_system_ca_certs_pool`.
fn server_config(
    keys: &ServerTls,
    crypto: &Crypto,
    alpn: &[Vec<u8>],
    material: &Material,
) -> Result<rustls::ServerConfig, String> {
    let certified = certified_key(&material.cert, &material.key)?;
    let builder = rustls::ServerConfig::builder_with_provider(crypto.provider.clone())
        .with_protocol_versions(&crypto.versions)
        .map_err(|e| format!("tls.cipher_suites: {e}"))?;
    let builder = match &material.client_ca {
        Some(ca) => {
            let roots = roots(Some(ca), "the client CA", keys.include_system_ca_certs_pool)?;
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                crypto.provider.clone(),
            )
            .build()
            .map_err(|e| format!("{}: {e}", ca.key))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config =
        builder.with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(certified)));
    config.alpn_protocols = alpn.to_vec();
    Ok(config)
}

impl ServerTlsConfig {
    /// The configuration new connections get.
    pub fn current(&self) -> Arc<rustls::ServerConfig> {
        self.shared.current.read().1.clone()
    }

    /// Completes the TLS handshake of a connection accepted on `local`, within 10 s; logs a
    /// refused client with the reason rustls gives (no client certificate, unknown issuer,
    /// expired, ...) and returns `None` for it.
    pub async fn accept(
        &self,
        tcp: TcpStream,
        peer: SocketAddr,
        local: SocketAddr,
    ) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
        let acceptor = tokio_rustls::TlsAcceptor::from(self.current());
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
            Ok(Ok(tls)) => Some(tls),
            // A client that connects and leaves without a word (a TCP health check, a port
            // scan) is not worth a warning; grpc-go skips EOF too.
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                tracing::debug!(endpoint = %local, peer = %peer, error = %e, "TLS handshake: client closed the connection");
                None
            }
            Ok(Err(e)) => {
                tracing::warn!(endpoint = %local, peer = %peer, error = %e, "TLS handshake failed; connection refused");
                None
            }
            Err(_) => {
                tracing::warn!(endpoint = %local, peer = %peer, timeout = ?HANDSHAKE_TIMEOUT, "TLS handshake timed out; connection closed");
                None
            }
        }
    }

    /// With `reload_interval` (certificate, key and client CA) or `client_ca_file_reload`
    /// (client CA, checked every second), spawns the task that rereads the files and swaps
    /// the configuration when they changed. A file that is missing or does not parse keeps
    /// the configuration in force and is logged. The task ends when `tasks` is cancelled.
    pub fn spawn_reload(&self, tasks: &Tasks, component: &str) {
        let interval = self
            .shared
            .keys
            .reload_interval
            .filter(|d| !d.is_zero())
            .map(Duration::from);
        let ca_poll = self
            .shared
            .keys
            .client_ca_file_reload
            .then_some(CLIENT_CA_POLL);
        let Some(tick) = [interval, ca_poll].into_iter().flatten().min() else {
            return;
        };
        let (this, t, component) = (self.clone(), tasks.clone(), component.to_owned());
        tasks.spawn(async move {
            let cancel = t.token();
            let mut next_identity = interval.map(|i| tokio::time::Instant::now() + i);
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(tick) => {}
                }
                let now = tokio::time::Instant::now();
                let identity_due = next_identity.is_some_and(|at| now >= at);
                if identity_due {
                    next_identity = interval.map(|i| now + i);
                }
                let worker = this.clone();
                match t.spawn_blocking(move || worker.reload(identity_due)).await {
                    Ok(Ok(true)) => tracing::info!(component = %component, "TLS certificates reloaded from disk"),
                    Ok(Ok(false)) => {}
                    Ok(Err(e)) => tracing::warn!(component = %component, error = %e, "TLS reload failed; the previous certificates stay in use"),
                    Err(e) => tracing::warn!(component = %component, error = %e, "TLS reload task failed"),
                }
            }
        });
    }

    /// Rereads the files (the certificate and key only when `identity` is set) and swaps the
    /// configuration if they changed; whether it did.
    fn reload(&self, identity: bool) -> Result<bool, String> {
        let old = self.shared.current.read().0.clone();
        let keep = (!identity).then_some((&old.cert, &old.key));
        let material = self.shared.keys.read(keep)?;
        if material == old {
            return Ok(false);
        }
        let s = &self.shared;
        let config = server_config(&s.keys, &s.crypto, &s.alpn, &material)?;
        *s.current.write() = (material, Arc::new(config));
        Ok(true)
    }
}
