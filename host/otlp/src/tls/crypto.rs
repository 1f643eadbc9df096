//! `min_version`, `max_version`, `cipher_suites`, `include_insecure_cipher_suites` and
//! `curve_preferences`: upstream's Go names mapped onto rustls (ring). What Go offers and
//! rustls does not (TLS 1.0/1.1, CBC suites, P-521, ML-KEM) is refused with a reason, never
//! accepted and ignored.

use std::sync::Arc;

use rustls::SupportedCipherSuite;
use rustls::SupportedProtocolVersion;
use rustls::crypto::CryptoProvider;
use rustls::crypto::ring::{cipher_suite as cs, kx_group};

/// The cryptographic choices of one `tls` block, ready for a rustls builder.
#[derive(Debug, Clone)]
pub(crate) struct Crypto {
    pub(crate) provider: Arc<CryptoProvider>,
    pub(crate) versions: Vec<&'static SupportedProtocolVersion>,
}

/// The keys that shape the handshake, as written in a `tls` block.
pub(crate) struct CryptoKeys<'a> {
    pub(crate) min_version: Option<&'a str>,
    pub(crate) max_version: Option<&'a str>,
    pub(crate) cipher_suites: &'a [String],
    pub(crate) include_insecure_cipher_suites: bool,
    pub(crate) curve_preferences: &'a [String],
}

/// Go's `tls.CipherSuites()` names of the suites rustls implements (both spellings Go accepts
/// for ChaCha20). TLS 1.3 suites are listed so their names are valid, as in Go; like Go,
/// TLS 1.3 suites are not configurable and stay on.
const SUITES: &[(&str, SupportedCipherSuite)] = &[
    ("TLS_AES_128_GCM_SHA256", cs::TLS13_AES_128_GCM_SHA256),
    ("TLS_AES_256_GCM_SHA384", cs::TLS13_AES_256_GCM_SHA384),
    (
        "TLS_CHACHA20_POLY1305_SHA256",
        cs::TLS13_CHACHA20_POLY1305_SHA256,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
        cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
        cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
];

/// Suites Go counts as secure that rustls does not implement (CBC with SHA-1 MACs).
const GO_ONLY_SUITES: &[&str] = &[
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
];

/// `curve_preferences` names upstream accepts; `None` for those ring does not implement.
const CURVES: &[(&str, Option<&'static dyn rustls::crypto::SupportedKxGroup>)] = &[
    ("X25519", Some(kx_group::X25519)),
    ("P256", Some(kx_group::SECP256R1)),
    ("P384", Some(kx_group::SECP384R1)),
    ("P521", None),
    ("X25519MLKEM768", None),
];

/// A TLS version from `min_version` / `max_version`: 2 for "1.2", 3 for "1.3"; absent or
/// empty is `default`.
fn version(key: &str, v: Option<&str>, default: u8) -> Result<u8, String> {
    match v.unwrap_or("") {
        "" => Ok(default),
        "1.2" => Ok(2),
        "1.3" => Ok(3),
        old @ ("1.0" | "1.1") => Err(format!(
            "tls.{key}: TLS {old} is not supported by wasmcol (rustls implements only TLS 1.2 and 1.3; both are deprecated versions); use \"1.2\" or \"1.3\""
        )),
        other => Err(format!(
            "tls.{key}: invalid TLS {key}: unsupported TLS version: {other:?} (expected \"1.2\" or \"1.3\")"
        )),
    }
}

impl CryptoKeys<'_> {
    /// The provider and versions these keys ask for; errors name the key.
    pub(crate) fn resolve(&self) -> Result<Crypto, String> {
        // Upstream's default minimum is TLS 1.2; the maximum defaults to Go's, TLS 1.3.
        let min = version("min_version", self.min_version, 2)?;
        let max = version("max_version", self.max_version, 3)?;
        if max < min {
            return Err(
                "tls.min_version: invalid TLS configuration: min_version cannot be greater than max_version"
                    .into(),
            );
        }
        let versions: Vec<&'static SupportedProtocolVersion> =
            [(2, &rustls::version::TLS12), (3, &rustls::version::TLS13)]
                .into_iter()
                .filter(|(v, _)| (min..=max).contains(v))
                .map(|(_, p)| p)
                .collect();
        if self.include_insecure_cipher_suites {
            return Err("tls.include_insecure_cipher_suites: not supported by wasmcol (rustls implements none of Go's insecure cipher suites)".into());
        }
        let mut provider = rustls::crypto::ring::default_provider();
        if !self.cipher_suites.is_empty() {
            provider.cipher_suites = self.suites()?;
        }
        if !self.curve_preferences.is_empty() {
            provider.kx_groups = self.curves()?;
        }
        Ok(Crypto {
            provider: Arc::new(provider),
            versions,
        })
    }

    /// The TLS 1.2 suites listed, in their order, then every TLS 1.3 suite (Go does not let
    /// TLS 1.3 suites be chosen either).
    fn suites(&self) -> Result<Vec<SupportedCipherSuite>, String> {
        let mut out = Vec::new();
        let mut invalid = Vec::new();
        let mut unavailable = Vec::new();
        for name in self.cipher_suites {
            match SUITES.iter().find(|(n, _)| n == name) {
                Some((_, s)) if s.version() == &rustls::version::TLS12 => {
                    if !out.contains(s) {
                        out.push(*s);
                    }
                }
                Some(_) => {}
                None if GO_ONLY_SUITES.contains(&name.as_str()) => unavailable.push(name.as_str()),
                None => invalid.push(format!("invalid TLS cipher suite: {name:?}")),
            }
        }
        if !unavailable.is_empty() {
            invalid.push(format!(
                "{} not supported by wasmcol (rustls implements no CBC cipher suite)",
                unavailable.join(", ")
            ));
        }
        if !invalid.is_empty() {
            let known: Vec<&str> = SUITES.iter().map(|(n, _)| *n).collect();
            return Err(format!(
                "tls.cipher_suites: {}; supported: {}",
                invalid.join("; "),
                known.join(", ")
            ));
        }
        out.extend(
            rustls::crypto::ring::ALL_CIPHER_SUITES
                .iter()
                .filter(|s| s.version() == &rustls::version::TLS13),
        );
        Ok(out)
    }

    /// The key exchange groups listed, in preference order.
    fn curves(&self) -> Result<Vec<&'static dyn rustls::crypto::SupportedKxGroup>, String> {
        let mut out: Vec<&'static dyn rustls::crypto::SupportedKxGroup> = Vec::new();
        for name in self.curve_preferences {
            match CURVES.iter().find(|(n, _)| n == name) {
                Some((_, Some(g))) => {
                    if !out.iter().any(|o| o.name() == g.name()) {
                        out.push(*g);
                    }
                }
                Some((n, None)) => {
                    return Err(format!(
                        "tls.curve_preferences: {n} is not supported by wasmcol (its TLS library offers X25519, P256 and P384)"
                    ));
                }
                None => {
                    let known: Vec<&str> = CURVES.iter().map(|(n, _)| *n).collect();
                    return Err(format!(
                        "tls.curve_preferences: invalid curve type: {name:?}. Expected values are {}",
                        known.join(", ")
                    ));
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys<'a>(suites: &'a [String], curves: &'a [String]) -> CryptoKeys<'a> {
        CryptoKeys {
            min_version: None,
            max_version: None,
            cipher_suites: suites,
            include_insecure_cipher_suites: false,
            curve_preferences: curves,
        }
    }

    #[test]
    fn versions_follow_upstream_and_refuse_what_rustls_lacks() {
        let c = keys(&[], &[]).resolve().unwrap();
        assert_eq!(c.versions.len(), 2, "default is 1.2..=1.3");
        let only13 = CryptoKeys {
            min_version: Some("1.3"),
            ..keys(&[], &[])
        };
        assert_eq!(
            only13.resolve().unwrap().versions,
            [&rustls::version::TLS13]
        );
        for (min, max, want) in [
            (
                Some("1.1"),
                None,
                "tls.min_version: TLS 1.1 is not supported",
            ),
            (
                None,
                Some("1.0"),
                "tls.max_version: TLS 1.0 is not supported",
            ),
            (
                Some("1.4"),
                None,
                "tls.min_version: invalid TLS min_version: unsupported TLS version: \"1.4\"",
            ),
            (
                Some("1.3"),
                Some("1.2"),
                "tls.min_version: invalid TLS configuration: min_version cannot be greater than max_version",
            ),
        ] {
            let e = CryptoKeys {
                min_version: min,
                max_version: max,
                ..keys(&[], &[])
            }
            .resolve()
            .unwrap_err();
            assert!(e.starts_with(want), "{e}");
        }
    }

    #[test]
    fn cipher_suites_map_go_names_and_refuse_the_rest() {
        let suites = vec![
            "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305".to_string(),
            "TLS_AES_128_GCM_SHA256".to_string(),
        ];
        let c = keys(&suites, &[]).resolve().unwrap();
        let tls12: Vec<_> = c
            .provider
            .cipher_suites
            .iter()
            .filter(|s| s.version() == &rustls::version::TLS12)
            .collect();
        assert_eq!(tls12, [&cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256]);
        assert_eq!(
            c.provider.cipher_suites.len(),
            4,
            "all three TLS 1.3 suites stay"
        );
        let bad = vec![
            "TLS_BOGUS".to_string(),
            "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA".to_string(),
        ];
        let e = keys(&bad, &[]).resolve().unwrap_err();
        assert!(
            e.starts_with("tls.cipher_suites: invalid TLS cipher suite: \"TLS_BOGUS\"; TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA not supported by wasmcol"),
            "{e}"
        );
    }

    #[test]
    fn curves_map_to_kx_groups() {
        let curves = vec!["P384".to_string(), "X25519".to_string()];
        let c = keys(&[], &curves).resolve().unwrap();
        let names: Vec<_> = c.provider.kx_groups.iter().map(|g| g.name()).collect();
        assert_eq!(
            names,
            [rustls::NamedGroup::secp384r1, rustls::NamedGroup::X25519]
        );
        let e = keys(&[], &["P521".to_string()]).resolve().unwrap_err();
        assert!(
            e.starts_with("tls.curve_preferences: P521 is not supported"),
            "{e}"
        );
        let e = keys(&[], &["p256".to_string()]).resolve().unwrap_err();
        assert!(
            e.starts_with("tls.curve_preferences: invalid curve type: \"p256\""),
            "{e}"
        );
    }
}
