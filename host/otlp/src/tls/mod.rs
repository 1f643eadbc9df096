//! `tls` settings (upstream configtls) for servers and clients. Every key is honoured or
//! refused with a reason: versions, cipher suites and curves map onto rustls (ring), and
//! certificates are reloaded from disk with `reload_interval` / `client_ca_file_reload`.

mod client;
mod connector;
mod crypto;
mod pem;
mod server;

use serde::Deserialize;
use wasmcol_config::{GoDuration, Value};

pub use client::ClientTlsConfig;
pub use connector::TlsConnector;
pub use server::ServerTlsConfig;

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
    /// Has no effect on a server, as upstream: checked, and refused without a client CA
    /// (whoever set it expected clients to be verified).
    pub ca_file: Option<String>,
    /// As `ca_file`, inline.
    pub ca_pem: Option<String>,
    /// Clients must present a certificate signed by this CA (mTLS).
    pub client_ca_file: Option<String>,
    /// As `client_ca_file`, inline (a wasmcol key).
    pub client_ca_pem: Option<String>,
    /// Reread `client_ca_file` when it changes (checked every second).
    #[serde(default)]
    pub client_ca_file_reload: bool,
    /// Adds the system CAs to `client_ca_file`'s.
    #[serde(default)]
    pub include_system_ca_certs_pool: bool,
    /// Minimum TLS version, "1.2" (default) or "1.3"; "1.0" and "1.1" are refused.
    pub min_version: Option<String>,
    /// Maximum TLS version, "1.2" or "1.3" (default).
    pub max_version: Option<String>,
    /// TLS 1.2 cipher suites by their Go names (TLS 1.3 suites always stay on, as in Go).
    #[serde(default)]
    pub cipher_suites: Vec<String>,
    /// Refused when true: rustls has none of Go's insecure suites.
    #[serde(default)]
    pub include_insecure_cipher_suites: bool,
    /// Key exchange groups in preference order: X25519, P256, P384.
    #[serde(default)]
    pub curve_preferences: Vec<String>,
    /// Reread the certificate, key and client CA this often (unset or 0: never).
    pub reload_interval: Option<GoDuration>,
    /// Refused when enabled.
    #[serde(default)]
    pub tpm: Option<Value>,
}

/// Client-side `tls`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientTls {
    /// Plaintext connection.
    #[serde(default)]
    pub insecure: bool,
    /// TLS without verifying the server's certificate.
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
    /// Name to send (SNI) and verify instead of the endpoint's host.
    pub server_name_override: Option<String>,
    /// Also trust the system roots when `ca_file` is set.
    #[serde(default)]
    pub include_system_ca_certs_pool: bool,
    /// Minimum TLS version, "1.2" (default) or "1.3"; "1.0" and "1.1" are refused.
    pub min_version: Option<String>,
    /// Maximum TLS version, "1.2" or "1.3" (default).
    pub max_version: Option<String>,
    /// TLS 1.2 cipher suites by their Go names (TLS 1.3 suites always stay on, as in Go).
    #[serde(default)]
    pub cipher_suites: Vec<String>,
    /// Refused when true: rustls has none of Go's insecure suites.
    #[serde(default)]
    pub include_insecure_cipher_suites: bool,
    /// Key exchange groups in preference order: X25519, P256, P384.
    #[serde(default)]
    pub curve_preferences: Vec<String>,
    /// Reread the CA, certificate and key this often (unset or 0: never).
    pub reload_interval: Option<GoDuration>,
    /// Refused when enabled.
    #[serde(default)]
    pub tpm: Option<Value>,
}
