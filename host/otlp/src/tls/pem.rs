//! Reading and checking PEM material, with errors that name the key to fix.

use rustls::pki_types::{self, CertificateDer, PrivateKeyDer, pem::PemObject};
use rustls::sign::CertifiedKey;

/// PEM bytes and where they came from (the key that named them and, for files, the path),
/// so later parse errors can say which setting to fix.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Pem {
    pub(crate) bytes: Vec<u8>,
    /// `tls.cert_file` or `tls.cert_pem`.
    pub(crate) key: String,
    /// `file /path` or `the inline PEM`.
    pub(crate) source: String,
}

/// Whether a string key is set (upstream treats an empty string as unset).
pub(crate) fn is_set(v: &Option<String>) -> bool {
    v.as_deref().is_some_and(|s| !s.is_empty())
}

/// Reads `file` or takes `inline` (not both); `None` when neither is set.
pub(crate) fn read_pem(
    file: &Option<String>,
    inline: &Option<String>,
    file_key: &str,
    pem_key: &str,
    what: &str,
) -> Result<Option<Pem>, String> {
    match (
        file.as_ref().filter(|f| !f.is_empty()),
        inline.as_ref().filter(|p| !p.is_empty()),
    ) {
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

/// Every certificate in `pem`. rustls skips PEM blocks it does not recognise, so a file
/// without a certificate (a key, a DER file, a typo'd path to the wrong file) would
/// otherwise become an empty trust store and fail later as a baffling handshake error.
pub(crate) fn parse_certs(pem: &Pem, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
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

/// A trust store of every certificate in `pem`, plus the system roots with `system`.
pub(crate) fn roots(
    pem: Option<&Pem>,
    what: &str,
    system: bool,
) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    if let Some(pem) = pem {
        for cert in parse_certs(pem, what)? {
            roots
                .add(cert)
                .map_err(|e| format!("{}: unusable CA certificate: {e}", pem.key))?;
        }
    }
    if system {
        let native = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(native.certs);
    }
    Ok(roots)
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

/// The certificate chain with its signing key, checked as Go's `tls.X509KeyPair` does (the
/// key can sign and belongs to the first certificate), so a mismatched pair fails at
/// `validate` and not at the first handshake.
pub(crate) fn certified_key(cert: &Pem, key: &Pem) -> Result<CertifiedKey, String> {
    let chain = parse_certs(cert, "the certificate")?;
    let der = parse_key(key)?;
    let provider = rustls::crypto::ring::default_provider();
    let signing = provider
        .key_provider
        .load_private_key(der)
        .map_err(|e| format!("{}: unusable private key in {}: {e}", key.key, key.source))?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            Ok(certified)
        }
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(format!(
                "{}: the private key in {} does not belong to the certificate in {} ({})",
                key.key, key.source, cert.source, cert.key
            ))
        }
        Err(e) => Err(format!("{}: {e} ({})", cert.key, cert.source)),
    }
}

/// Whether a `tls.tpm` block asks for the TPM; wasmcol has no TPM support.
pub(crate) fn refuse_tpm(tpm: &Option<wasmcol_config::Value>) -> Result<(), String> {
    let enabled = tpm
        .as_ref()
        .and_then(|t| t.get("enabled"))
        .and_then(wasmcol_config::Value::as_bool)
        .unwrap_or(false);
    if enabled {
        return Err(
            "tls.tpm: not supported by wasmcol (keys are read from key_file or key_pem)".into(),
        );
    }
    Ok(())
}
