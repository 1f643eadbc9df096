//! `tls` settings (upstream configtls) for servers and clients.

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
    /// Minimum TLS version (`1.2` default; rustls supports 1.2 and 1.3).
    pub min_version: Option<String>,
    /// Maximum TLS version.
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

fn read_pem(
    file: &Option<String>,
    inline: &Option<String>,
    what: &str,
) -> Result<Option<Vec<u8>>, String> {
    match (file, inline) {
        (Some(_), Some(_)) => Err(format!(
            "provide either a {what} file or the PEM-encoded string, but not both"
        )),
        (Some(f), None) => std::fs::read(f)
            .map(Some)
            .map_err(|e| format!("failed to load {what} {f}: {e}")),
        (None, Some(p)) => Ok(Some(p.clone().into_bytes())),
        (None, None) => Ok(None),
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
    /// Reads the files; errors carry the `tls.` key path.
    pub fn load(&self) -> Result<ServerPem, String> {
        let cert = read_pem(&self.cert_file, &self.cert_pem, "certificate")
            .map_err(|e| format!("tls.cert_file: {e}"))?;
        let key = read_pem(&self.key_file, &self.key_pem, "key")
            .map_err(|e| format!("tls.key_file: {e}"))?;
        let (Some(cert), Some(key)) = (cert, key) else {
            return Err("tls: a server needs both cert_file and key_file".into());
        };
        let client_ca = read_pem(&self.client_ca_file, &None, "client CA")
            .map_err(|e| format!("tls.client_ca_file: {e}"))?;
        Ok(ServerPem {
            cert,
            key,
            client_ca,
        })
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
    /// Also trust the system roots when `ca_file` is set (accepted).
    #[serde(default)]
    pub include_system_ca_certs_pool: bool,
    /// Minimum TLS version.
    pub min_version: Option<String>,
    /// Maximum TLS version.
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
}

impl ClientTls {
    /// Reads the files; errors carry the `tls.` key path.
    pub fn load(&self) -> Result<ClientPem, String> {
        if self.insecure_skip_verify {
            return Err("tls.insecure_skip_verify: not supported; configure ca_file with the server's CA instead".into());
        }
        let ca =
            read_pem(&self.ca_file, &self.ca_pem, "CA").map_err(|e| format!("tls.ca_file: {e}"))?;
        let cert = read_pem(&self.cert_file, &self.cert_pem, "certificate")
            .map_err(|e| format!("tls.cert_file: {e}"))?;
        let key = read_pem(&self.key_file, &self.key_pem, "key")
            .map_err(|e| format!("tls.key_file: {e}"))?;
        let identity = match (cert, key) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => return Err("tls: for mutual TLS provide both cert_file and key_file".into()),
        };
        Ok(ClientPem {
            ca,
            identity,
            server_name: self.server_name_override.clone(),
        })
    }
}
