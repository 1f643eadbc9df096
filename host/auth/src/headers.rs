//! `headers_setter`: sets, replaces or deletes headers on exporters' requests, with
//! upstream's actions. Values are literal (`value`); `from_context` (a value taken from the
//! request's metadata) is refused, since request metadata does not reach exporters yet.

use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;
use wasmcol_config::{KeyError, Value};
use wasmcol_core::auth::ClientAuthenticator;
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
    /// A request metadata key to copy the value from: refused.
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

/// A checked entry.
#[derive(Debug, Clone)]
struct Rule {
    name: http::HeaderName,
    action: Action,
    value: Option<http::HeaderValue>,
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
            if h.from_context.is_some() || h.default_value.is_some() {
                errs.push(KeyError::new(
                    at("from_context"),
                    "not supported by wasmcol yet (request metadata does not reach exporters); use value",
                ));
                continue;
            }
            let value = match (&h.value, h.action) {
                (_, Action::Delete) => None,
                (None, _) => {
                    errs.push(KeyError::new(
                        at("value"),
                        "missing header source, must be 'from_context' or 'value'",
                    ));
                    continue;
                }
                (Some(v), _) => match http::HeaderValue::try_from(v.as_str()) {
                    Ok(v) => Some(v),
                    Err(e) => {
                        errs.push(KeyError::new(at("value"), e.to_string()));
                        continue;
                    }
                },
            };
            rules.push(Rule {
                name,
                action: h.action,
                value,
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
    fn apply(&self, headers: &mut http::HeaderMap) -> Result<(), String> {
        for r in &self.0 {
            let present = headers.contains_key(&r.name);
            match (r.action, &r.value) {
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
        r.apply(&mut h).unwrap();
        assert_eq!(h.get("x-a").unwrap(), "up");
        assert_eq!(h.get("x-b").unwrap(), "b");
        assert!(h.get("x-c").is_none());
        assert_eq!(h.get("x-e").unwrap(), "e");
        assert!(h.get("x-d").is_none());
    }

    /// Scenario: bad entries. Guarantees: each is named by its index and key, and
    /// `from_context` is refused rather than ignored.
    #[test]
    fn bad_entries_are_named() {
        let e = rules("headers:\n- {value: v}\n- {key: x}\n- {key: x-t, from_context: tenant}")
            .err()
            .unwrap();
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(e[0].starts_with("headers[0].key: missing header key"));
        assert!(e[1].starts_with("headers[1].value: missing header source"));
        assert!(e[2].starts_with("headers[2].from_context: not supported"));
        assert!(rules("headers: []").is_err());
    }
}
