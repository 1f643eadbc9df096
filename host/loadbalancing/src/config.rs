//! `exporters: load_balancing:` with upstream's keys, defaults and validation texts.

use serde::Deserialize;
use wasmcol_config::exporterhelper::{QueueConfig, RetryConfig};
use wasmcol_config::{GoDuration, KeyError, Value};
use wasmcol_pdata::Signal;

/// The exporter's YAML body.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// What is hashed to choose a backend (default per signal: [`RoutingKey::default_for`]).
    #[serde(default)]
    pub routing_key: Option<String>,
    /// Attributes making up the key when `routing_key` is `attributes`.
    #[serde(default)]
    pub routing_attributes: Vec<String>,
    /// The per-backend exporter template.
    #[serde(default)]
    pub protocol: Protocol,
    /// Where the backends come from: exactly one resolver.
    #[serde(default)]
    pub resolver: ResolverConfig,
    /// Exporter-level timeout (off unless set, as upstream).
    #[serde(default)]
    pub timeout: Option<GoDuration>,
    /// Exporter-level retries (off unless set, as upstream).
    #[serde(default)]
    pub retry_on_failure: Option<RetryConfig>,
    /// Exporter-level queue (off unless set, as upstream).
    #[serde(default)]
    pub sending_queue: Option<QueueConfig>,
}

/// `protocol`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Protocol {
    /// An `otlp` (gRPC) exporter's config; its `endpoint` is replaced per backend.
    #[serde(default)]
    pub otlp: Option<Value>,
}

/// `resolver`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolverConfig {
    /// A fixed list of backends.
    #[serde(default, rename = "static")]
    pub static_: Option<StaticResolver>,
    /// Backends from a DNS name's A/AAAA records.
    #[serde(default)]
    pub dns: Option<DnsResolver>,
    /// Refused: not supported by wasmcol.
    #[serde(default)]
    pub k8s: Option<Value>,
    /// Refused: not supported by wasmcol.
    #[serde(default)]
    pub aws_cloud_map: Option<Value>,
}

/// `resolver.static`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticResolver {
    /// `host:port` of each backend.
    #[serde(default)]
    pub hostnames: Vec<String>,
}

/// `resolver.dns`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsResolver {
    /// The name to resolve.
    #[serde(default)]
    pub hostname: String,
    /// Added to each address (a number or a string); when empty the ring key is the bare
    /// address and the exporter endpoint gets `:4317`.
    #[serde(default)]
    pub port: Option<Value>,
    /// Time between resolutions (5s).
    #[serde(default = "five_seconds")]
    pub interval: GoDuration,
    /// Time one resolution may take (1s).
    #[serde(default = "one_second")]
    pub timeout: GoDuration,
}

fn five_seconds() -> GoDuration {
    GoDuration::secs(5)
}

fn one_second() -> GoDuration {
    GoDuration::secs(1)
}

/// What identifies the unit that must stay on one backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoutingKey {
    /// The 16 bytes of the trace id (spans, logs).
    TraceId,
    /// The resource's `service.name`.
    Service,
    /// The whole resource attribute set (logs, metrics).
    Resource,
    /// The metric name.
    Metric,
    /// The metric stream identity.
    StreamId,
    /// `name=value|` of the listed attributes, in order.
    Attributes(Vec<String>),
}

impl RoutingKey {
    /// Upstream's default: `traceID` for traces, `service` for metrics and logs.
    pub fn default_for(signal: Signal) -> RoutingKey {
        match signal {
            Signal::Traces => RoutingKey::TraceId,
            Signal::Metrics | Signal::Logs => RoutingKey::Service,
        }
    }

    fn valid_for(&self, signal: Signal) -> bool {
        match self {
            RoutingKey::TraceId => matches!(signal, Signal::Traces | Signal::Logs),
            RoutingKey::Service | RoutingKey::Attributes(_) => true,
            RoutingKey::Resource => matches!(signal, Signal::Metrics | Signal::Logs),
            RoutingKey::Metric | RoutingKey::StreamId => signal == Signal::Metrics,
        }
    }
}

/// Where the backends come from, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolver {
    /// A fixed list.
    Static(Vec<String>),
    /// A DNS name resolved every `interval`.
    Dns {
        /// The name.
        hostname: String,
        /// The port added to each address, if any.
        port: Option<String>,
        /// Time between resolutions.
        interval: std::time::Duration,
        /// Time one resolution may take.
        timeout: std::time::Duration,
    },
}

/// A config that passed validation for one signal.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The routing key.
    pub routing: RoutingKey,
    /// The resolver.
    pub resolver: Resolver,
    /// The per-backend `otlp` exporter body (an empty map when absent).
    pub otlp: Value,
}

impl Config {
    /// Checks the config for `signal`, reporting every problem with its key path and
    /// upstream's text.
    pub fn check(&self, signal: Signal) -> Result<Checked, Vec<KeyError>> {
        let mut errs = Vec::new();
        let routing = self.routing(signal, &mut errs);
        let resolver = self.resolver(&mut errs);
        match (routing, resolver, errs.is_empty()) {
            (Some(routing), Some(resolver), true) => Ok(Checked {
                routing,
                resolver,
                otlp: self
                    .protocol
                    .otlp
                    .clone()
                    .filter(|v| !v.is_null())
                    .unwrap_or_else(|| Value::Mapping(Default::default())),
            }),
            _ => Err(errs),
        }
    }

    fn routing(&self, signal: Signal, errs: &mut Vec<KeyError>) -> Option<RoutingKey> {
        let key = match self.routing_key.as_deref() {
            None | Some("") => RoutingKey::default_for(signal),
            Some("traceID") => RoutingKey::TraceId,
            Some("service") => RoutingKey::Service,
            Some("resource") => RoutingKey::Resource,
            Some("metric") => RoutingKey::Metric,
            Some("streamID") => RoutingKey::StreamId,
            Some("attributes") => RoutingKey::Attributes(self.routing_attributes.clone()),
            Some(other) => {
                errs.push(KeyError::new(
                    "routing_key",
                    format!("unsupported routing_key: {other}"),
                ));
                return None;
            }
        };
        match &key {
            RoutingKey::Attributes(a) if a.is_empty() => errs.push(KeyError::new(
                "routing_attributes",
                "routing_attributes must be specified when routing_key is \"attributes\"",
            )),
            RoutingKey::Attributes(_) => {}
            _ if !self.routing_attributes.is_empty() => errs.push(KeyError::new(
                "routing_attributes",
                "routing_attributes can only be used when routing_key is \"attributes\"",
            )),
            _ => {}
        }
        if !key.valid_for(signal) {
            errs.push(KeyError::new(
                "routing_key",
                format!(
                    "unsupported routing_key for {signal:?}: {}",
                    self.routing_key.as_deref().unwrap_or_default()
                ),
            ));
        }
        Some(key)
    }

    fn resolver(&self, errs: &mut Vec<KeyError>) -> Option<Resolver> {
        let r = &self.resolver;
        let set = |v: &Option<Value>| v.as_ref().is_some_and(|v| !v.is_null());
        for (key, present) in [
            ("resolver.k8s", set(&r.k8s)),
            ("resolver.aws_cloud_map", set(&r.aws_cloud_map)),
        ] {
            if present {
                errs.push(KeyError::new(
                    key,
                    "not supported by wasmcol (use the static or dns resolver; a headless Service gives DNS names in Kubernetes)",
                ));
                return None;
            }
        }
        // After the refusals: a resolver wasmcol lacks is named as such, whatever else is set.
        let count = usize::from(r.static_.is_some())
            + usize::from(r.dns.is_some())
            + usize::from(set(&r.k8s))
            + usize::from(set(&r.aws_cloud_map));
        if count > 1 {
            errs.push(KeyError::new(
                "resolver",
                "only one resolver should be specified",
            ));
            return None;
        }
        if let Some(s) = &r.static_ {
            if s.hostnames.is_empty() {
                errs.push(KeyError::new(
                    "resolver.static.hostnames",
                    "no endpoints specified for the static resolver",
                ));
                return None;
            }
            return Some(Resolver::Static(s.hostnames.clone()));
        }
        if let Some(d) = &r.dns {
            if d.hostname.is_empty() {
                errs.push(KeyError::new(
                    "resolver.dns.hostname",
                    "no hostname specified to resolve the backends",
                ));
                return None;
            }
            let port = match &d.port {
                None | Some(Value::Null) => None,
                Some(Value::Number(n)) => Some(n.to_string()),
                Some(Value::String(s)) if s.is_empty() => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(other) => {
                    errs.push(KeyError::new(
                        "resolver.dns.port",
                        format!("expected a port number, got {other:?}"),
                    ));
                    return None;
                }
            };
            if port.as_deref().is_some_and(|p| p.parse::<u16>().is_err()) {
                errs.push(KeyError::new(
                    "resolver.dns.port",
                    format!("invalid port {:?}", port.unwrap_or_default()),
                ));
                return None;
            }
            return Some(Resolver::Dns {
                hostname: d.hostname.clone(),
                port,
                interval: d.interval.into(),
                timeout: d.timeout.into(),
            });
        }
        errs.push(KeyError::new(
            "resolver",
            "no resolvers specified for the exporter",
        ));
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(yaml: &str, signal: Signal) -> Result<Checked, Vec<KeyError>> {
        let body: Value = serde_yaml::from_str(yaml).unwrap();
        match wasmcol_config::decode::<Config>(&body) {
            Ok(c) => c.check(signal),
            Err(e) => Err(vec![e]),
        }
    }

    fn errors(yaml: &str, signal: Signal) -> Vec<String> {
        match check(yaml, signal) {
            Ok(c) => panic!("{yaml:?} passed: {c:?}"),
            Err(e) => e.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn defaults_follow_upstream() {
        let c = check(
            "protocol:\n  otlp:\n    timeout: 1s\nresolver:\n  dns:\n    hostname: gw.example",
            Signal::Traces,
        )
        .unwrap();
        assert_eq!(c.routing, RoutingKey::TraceId);
        assert_eq!(
            c.resolver,
            Resolver::Dns {
                hostname: "gw.example".into(),
                port: None,
                interval: std::time::Duration::from_secs(5),
                timeout: std::time::Duration::from_secs(1),
            }
        );
        let c = check(
            "routing_key: service\nresolver:\n  dns:\n    hostname: gw\n    port: 5317",
            Signal::Traces,
        )
        .unwrap();
        assert!(
            matches!(&c.resolver, Resolver::Dns { port: Some(p), .. } if p == "5317"),
            "{c:?}"
        );
        let c = check(
            "resolver:\n  static:\n    hostnames: [a:4317]",
            Signal::Metrics,
        )
        .unwrap();
        assert_eq!(c.routing, RoutingKey::Service);
        assert_eq!(c.resolver, Resolver::Static(vec!["a:4317".into()]));
        let wasmcol_config::Value::Mapping(m) = c.otlp else {
            panic!("otlp template is not a map")
        };
        assert!(m.is_empty());
    }

    #[test]
    fn validation_uses_upstream_texts_and_key_paths() {
        let statics = "resolver:\n  static:\n    hostnames: [a:4317]\n";
        assert_eq!(
            errors(
                &format!("routing_key: attributes\n{statics}"),
                Signal::Traces
            ),
            [
                "routing_attributes: routing_attributes must be specified when routing_key is \"attributes\""
            ]
        );
        assert_eq!(
            errors(
                &format!("routing_key: service\nrouting_attributes: [a]\n{statics}"),
                Signal::Traces
            ),
            [
                "routing_attributes: routing_attributes can only be used when routing_key is \"attributes\""
            ]
        );
        assert_eq!(
            errors(&format!("routing_key: spanID\n{statics}"), Signal::Traces),
            ["routing_key: unsupported routing_key: spanID"]
        );
        assert_eq!(
            errors(&format!("routing_key: metric\n{statics}"), Signal::Traces),
            ["routing_key: unsupported routing_key for Traces: metric"]
        );
        assert_eq!(
            errors(
                "resolver:\n  static:\n    hostnames: [a]\n  dns:\n    hostname: b",
                Signal::Traces
            ),
            ["resolver: only one resolver should be specified"]
        );
        assert_eq!(
            errors("resolver: {}", Signal::Logs),
            ["resolver: no resolvers specified for the exporter"]
        );
        assert_eq!(
            errors("resolver:\n  static:\n    hostnames: []", Signal::Logs),
            ["resolver.static.hostnames: no endpoints specified for the static resolver"]
        );
        assert_eq!(
            errors("resolver:\n  dns:\n    port: \"4317\"", Signal::Logs),
            ["resolver.dns.hostname: no hostname specified to resolve the backends"]
        );
        let k8s = errors("resolver:\n  k8s:\n    service: lb.ns", Signal::Traces);
        assert_eq!(k8s.len(), 1);
        assert!(
            k8s[0].starts_with("resolver.k8s: not supported by wasmcol"),
            "{k8s:?}"
        );
        let unknown = errors("resolver:\n  static:\n    hostname: [a]", Signal::Traces);
        assert!(
            unknown[0].starts_with("resolver.static.hostname: unknown field"),
            "{unknown:?}"
        );
    }
}
