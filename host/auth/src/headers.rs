//! `headers_setter`: sets, replaces or deletes headers on exporters' requests, with
//! upstream's actions. Values are literal (`value`) or taken per request from the request
//! context of the batch being sent (`from_context`, a header the receiver kept with
//! `include_metadata`, or `auth.<attribute>`), with `default_value` when it is absent. The
//! context reaches an exporter through a `batch` processor only for its `metadata_keys`, as
//! upstream. A key with several values is an error, as upstream; a request with neither a
//! context value nor a default gets no header.

use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;
use wasmcol_config::{KeyError, Value};
use wasmcol_core::auth::ClientAuthenticator;
use wasmcol_core::pdata::RequestContext;
use wasmcol_core::registry::ExtensionFactory;
use wasmcol_core::{BuildError, CreateContext, Extension, Lifecycle};

/// The extension's YAML body (upstream keys).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The headers to act on, in order.
    #[serde(default)]
    pub headers: Vec<HeaderConfig>,
}

/// One entry of `headers`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderConfig {
    /// Header name.
    #[serde(default)]
    pub key: Option<String>,
    /// What to do (`upsert` by default).
    #[serde(default)]
    pub action: Action,
    /// A literal value.
    #[serde(default)]
    pub value: Option<String>,
    /// A request context key to copy the value from.
    #[serde(default)]
    pub from_context: Option<String>,
    /// The value when `from_context` finds nothing: only with `from_context`.
    #[serde(default)]
    pub default_value: Option<String>,
}

/// Upstream's actions.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Set only when absent.
    Insert,
    /// Set only when present.
    Update,
    /// Set in both cases.
    #[default]
    Upsert,
    /// Remove.
    Delete,
}

/// Where a rule's value comes from.
#[derive(Debug, Clone)]
enum Source {
    /// Nothing (`delete`).
    None,
    /// A literal.
    Value(http::HeaderValue),
    /// A request context key, and the value when the context lacks it.
    Context {
        key: String,
        default: Option<http::HeaderValue>,
    },
}

/// A checked entry.
#[derive(Debug, Clone)]
struct Rule {
    name: http::HeaderName,
    action: Action,
    source: Source,
}

impl Rule {
    /// The value for a request of `context`; `None` means the rule sets nothing.
    fn value(&self, context: &RequestContext) -> Result<Option<http::HeaderValue>, String> {
        match &self.source {
            Source::None => Ok(None),
            Source::Value(v) => Ok(Some(v.clone())),
            Source::Context { key, default } => match context.get(key) {
                [] => Ok(default.clone()),
                [one] => http::HeaderValue::try_from(one.as_str())
                    .map(Some)
                    .map_err(|e| format!("value of {key:?} cannot be a header: {e}")),
                many => Err(format!(
                    "{} source keys found in the context, can't determine which one to use",
                    many.len()
                )),
            },
        }
    }
}

impl Config {
    fn rules(&self) -> Result<Vec<Rule>, Vec<KeyError>> {
        let mut errs = Vec::new();
        if self.headers.is_empty() {
            errs.push(KeyError::new("headers", "missing headers configuration"));
        }
        let mut rules = Vec::new();
        for (i, h) in self.headers.iter().enumerate() {
            let at = |k: &str| format!("headers[{i}].{k}");
            let Some(key) = h.key.as_deref().filter(|k| !k.is_empty()) else {
                errs.push(KeyError::new(at("key"), "missing header key"));
                continue;
            };
            let name = match http::HeaderName::try_from(key) {
                Ok(n) => n,
                Err(e) => {
                    errs.push(KeyError::new(at("key"), e.to_string()));
                    continue;
                }
            };
            let literal = |v: &str, key: &str, errs: &mut Vec<KeyError>| {
                http::HeaderValue::try_from(v)
                    .map_err(|e| errs.push(KeyError::new(at(key), e.to_string())))
                    .ok()
            };
            let source = match (&h.value, &h.from_context, h.action) {
                (_, _, Action::Delete) => Source::None,
                (Some(_), Some(_), _) => {
                    errs.push(KeyError::new(
                        at("value"),
                        "only one header source, 'from_context' or 'value', may be set",
                    ));
                    continue;
                }
                (None, None, _) => {
                    errs.push(KeyError::new(
                        at("value"),
                        "missing header source, must be 'from_context' or 'value'",
                    ));
                    continue;
                }
                (Some(v), None, _) => match literal(v, "value", &mut errs) {
                    Some(v) => Source::Value(v),
                    None => continue,
                },
                (None, Some(key), _) => {
                    let default = match &h.default_value {
                        Some(d) => match literal(d, "default_value", &mut errs) {
                            Some(v) => Some(v),
                            None => continue,
                        },
                        None => None,
                    };
                    Source::Context {
                        key: key.clone(),
                        default,
                    }
                }
            };
            if h.default_value.is_some() && h.from_context.is_none() {
                errs.push(KeyError::new(
                    at("default_value"),
                    "only used with from_context",
                ));
                continue;
            }
            rules.push(Rule {
                name,
                action: h.action,
                source,
            });
        }
        if errs.is_empty() {
            Ok(rules)
        } else {
            Err(errs)
        }
    }
}

/// Builds `headers_setter` extensions.
pub struct HeadersSetterFactory;

impl ExtensionFactory for HeadersSetterFactory {
    fn create(
        &self,
        _ctx: &CreateContext,
        config: &Value,
    ) -> Result<Arc<dyn Extension>, BuildError> {
        let cfg: Config = wasmcol_config::decode(config)?;
        let rules = cfg.rules().map_err(BuildError)?;
        Ok(Arc::new(HeadersSetter(Arc::new(Rules(rules)))))
    }
}

struct Rules(Vec<Rule>);

impl ClientAuthenticator for Rules {
    fn apply(&self, headers: &mut http::HeaderMap, context: &RequestContext) -> Result<(), String> {
        for r in &self.0 {
            let present = headers.contains_key(&r.name);
            let value = r.value(context)?;
            match (r.action, &value) {
                (Action::Delete, _) => {
                    headers.remove(&r.name);
                }
                (Action::Insert, Some(v)) if !present => {
                    headers.insert(r.name.clone(), v.clone());
                }
                (Action::Update, Some(v)) if present => {
                    headers.insert(r.name.clone(), v.clone());
                }
                (Action::Upsert, Some(v)) => {
                    headers.insert(r.name.clone(), v.clone());
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// A `headers_setter` extension (client side only).
pub struct HeadersSetter(Arc<Rules>);

#[async_trait]
impl Lifecycle for HeadersSetter {}

impl Extension for HeadersSetter {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn client_authenticator(&self) -> Option<Arc<dyn ClientAuthenticator>> {
        Some(self.0.clone())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn rules(yaml: &str) -> Result<Rules, Vec<String>> {
        let c: Config = serde_yaml::from_str(yaml).unwrap();
        c.rules().map(Rules).map_err(|e| {
            e.into_iter()
                .map(|k| format!("{}: {}", k.path, k.message))
                .collect()
        })
    }

    /// Scenario: the four actions on a request that already has `x-a` and `x-d`.
    /// Guarantees: insert leaves an existing header alone and adds a missing one, update
    /// changes only an existing one, upsert sets, delete removes.
    #[test]
    fn actions_as_upstream() {
        let r = rules(
            "headers:\n- {key: x-a, value: new, action: insert}\n- {key: x-b, value: b, action: insert}\n- {key: x-c, value: c, action: update}\n- {key: x-a, value: up, action: update}\n- {key: x-e, value: e}\n- {key: x-d, action: delete}",
        )
        .unwrap();
        let mut h = http::HeaderMap::new();
        h.insert("x-a", "old".parse().unwrap());
        h.insert("x-d", "gone".parse().unwrap());
        r.apply(&mut h, &RequestContext::default()).unwrap();
        assert_eq!(h.get("x-a").unwrap(), "up");
        assert_eq!(h.get("x-b").unwrap(), "b");
        assert!(h.get("x-c").is_none());
        assert_eq!(h.get("x-e").unwrap(), "e");
        assert!(h.get("x-d").is_none());
    }

    /// Scenario: bad entries. Guarantees: each is named by its index and key.
    #[test]
    fn bad_entries_are_named() {
        let e = rules(
            "headers:\n- {value: v}\n- {key: x}\n- {key: x-t, from_context: tenant, value: v}\n- {key: x-u, value: v, default_value: d}",
        )
        .err()
        .unwrap();
        assert_eq!(e.len(), 4, "{e:?}");
        assert!(e[0].starts_with("headers[0].key: missing header key"));
        assert!(e[1].starts_with("headers[1].value: missing header source"));
        assert!(e[2].starts_with("headers[2].value: only one header source"));
        assert!(e[3].starts_with("headers[3].default_value: only used with from_context"));
        assert!(rules("headers: []").is_err());
    }

    /// Scenario: `from_context` rules applied to requests of different contexts.
    /// Guarantees: the context's value is set (key matched without case, `auth.` attributes
    /// too), `default_value` stands in when the key is absent, nothing is set without
    /// either, and two values are an error as upstream.
    #[test]
    fn from_context_takes_each_requests_value() {
        let r = rules(
            "headers:\n- {key: x-tenant, from_context: X-Tenant}\n- {key: x-org, from_context: org, default_value: none}\n- {key: x-user, from_context: auth.username}",
        )
        .unwrap();
        let one = |k: &str, v: &str| (k.to_owned(), vec![v.to_owned()]);
        let ctx = RequestContext::new([one("x-tenant", "acme"), one("auth.username", "ann")]);
        let mut h = http::HeaderMap::new();
        r.apply(&mut h, &ctx).unwrap();
        assert_eq!(h.get("x-tenant").unwrap(), "acme");
        assert_eq!(h.get("x-org").unwrap(), "none");
        assert_eq!(h.get("x-user").unwrap(), "ann");
        let mut h = http::HeaderMap::new();
        r.apply(&mut h, &RequestContext::default()).unwrap();
        assert!(h.get("x-tenant").is_none());
        assert_eq!(h.get("x-org").unwrap(), "none");
        let two = RequestContext::new([("x-tenant", vec!["a".to_owned(), "b".to_owned()])]);
        let e = r.apply(&mut http::HeaderMap::new(), &two).unwrap_err();
        assert!(e.contains("2 source keys"), "{e}");
    }
}
