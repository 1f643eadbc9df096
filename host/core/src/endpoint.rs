//! Addresses components listen on, and the check that no two of them clash, so that a port
//! used twice is a config error `wasmcol validate` reports rather than a bind failure at
//! start.

/// An address a component binds when it starts, with the key path that sets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Key path inside the component's config, e.g. `protocols::grpc::endpoint`.
    pub key: String,
    /// `host:port` as configured.
    pub address: String,
}

impl Endpoint {
    /// An endpoint set by `key`.
    pub fn new(key: impl Into<String>, address: impl Into<String>) -> Self {
        Endpoint {
            key: key.into(),
            address: address.into(),
        }
    }
}

/// The host part of an address, as far as clashes go.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Host {
    /// Every interface (`0.0.0.0`, `::`, empty): clashes with any host on the same port.
    Any,
    /// `localhost`, `127.0.0.1`, `::1`: one loopback, whichever name is used.
    Loopback,
    /// Any other name or address, compared as written (lowercased).
    Named(String),
}

/// `(host, port)`, or `None` for an address that does not parse (the bind reports it).
fn parse(address: &str) -> Option<(Host, u16)> {
    let a = address
        .strip_prefix("http://")
        .or_else(|| address.strip_prefix("https://"))
        .unwrap_or(address);
    let (host, port) = a.rsplit_once(':')?;
    let port = port.parse().ok()?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    let host = match host.as_str() {
        "" | "0.0.0.0" | "::" => Host::Any,
        "localhost" | "127.0.0.1" | "::1" => Host::Loopback,
        _ => Host::Named(host),
    };
    Some((host, port))
}

fn overlap(a: &Host, b: &Host) -> bool {
    *a == Host::Any || *b == Host::Any || a == b
}

/// Every endpoint that clashes with one listed before it, as (key path, message naming the
/// other's key path). `listens` pairs a component's location (`receivers::otlp`) with an
/// endpoint. Port 0 (any free port) never clashes.
pub(crate) fn clashes(listens: &[(String, Endpoint)]) -> Vec<(String, String)> {
    let parsed: Vec<_> = listens.iter().map(|(_, e)| parse(&e.address)).collect();
    let mut out = Vec::new();
    for (i, (name, e)) in listens.iter().enumerate() {
        let Some((host, port)) = &parsed[i] else {
            continue;
        };
        if *port == 0 {
            continue;
        }
        for (j, (other, o)) in listens[..i].iter().enumerate() {
            if let Some((oh, op)) = &parsed[j]
                && op == port
                && overlap(host, oh)
            {
                out.push((
                    format!("{name}::{}", e.key),
                    format!(
                        "endpoint {:?} is already used by {other}::{} ({:?}); two components cannot listen on one address",
                        e.address, o.key, o.address
                    ),
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clash(a: &str, b: &str) -> bool {
        let l = [
            ("receivers::a".to_owned(), Endpoint::new("endpoint", a)),
            ("receivers::b".to_owned(), Endpoint::new("endpoint", b)),
        ];
        !clashes(&l).is_empty()
    }

    #[test]
    fn hosts_are_normalized_before_comparing() {
        assert!(clash("0.0.0.0:4317", "localhost:4317"));
        assert!(clash("localhost:4317", "127.0.0.1:4317"));
        assert!(clash("[::1]:4317", "localhost:4317"));
        assert!(clash(":4317", "10.0.0.1:4317"));
        assert!(clash("http://localhost:4318", "127.0.0.1:4318"));
        assert!(!clash("localhost:4317", "localhost:4318"));
        assert!(!clash("127.0.0.1:4317", "10.0.0.1:4317"));
        assert!(!clash("127.0.0.1:0", "127.0.0.1:0"), "port 0 never clashes");
        assert!(!clash("nonsense", "nonsense"), "left to the bind");
    }

    #[test]
    fn the_message_names_both_components_and_keys() {
        let l = [
            (
                "receivers::otlp".to_owned(),
                Endpoint::new("protocols::grpc::endpoint", "0.0.0.0:4317"),
            ),
            (
                "receivers::otlp/2".to_owned(),
                Endpoint::new("protocols::http::endpoint", "localhost:4317"),
            ),
        ];
        let c = clashes(&l);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].0, "receivers::otlp/2::protocols::http::endpoint");
        assert!(
            c[0].1
                .contains("already used by receivers::otlp::protocols::grpc::endpoint"),
            "{}",
            c[0].1
        );
    }
}
