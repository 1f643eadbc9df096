//! Upstream's attribute actions (`internal/coreinternal/attraction`) and include/exclude
//! matching (`internal/filter`), for the `attributes` and `resource` plugins.
//!
//! Validation messages are upstream's, word for word, so configs that fail upstream fail
//! here with the same text (prefixed by the key path of the action).

pub mod filter;

use regex::Regex;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use wasmcol_sdk::{ConfigErrors, Value};

/// One configured action, as written in YAML.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionConfig {
    /// The attribute to act on.
    #[serde(default)]
    pub key: String,
    /// A literal value (`null` counts as not set, as upstream's `any` does).
    #[serde(default)]
    pub value: Option<serde_json::Value>,
    /// Regular expression for `delete`, `hash` (keys) and `extract` (values).
    #[serde(default)]
    pub pattern: String,
    /// Copy the value of another attribute.
    #[serde(default)]
    pub from_attribute: String,
    /// Copy a value from the request context (client metadata).
    #[serde(default)]
    pub from_context: String,
    /// Target type of `convert`.
    #[serde(default)]
    pub converted_type: String,
    /// The action, case-insensitive.
    #[serde(default)]
    pub action: String,
}

/// What a validated action does.
#[derive(Debug, Clone)]
pub enum Action {
    /// Set only when absent.
    Insert {
        /// The attribute key.
        key: String,
        /// Where the value comes from.
        source: Source,
    },
    /// Set only when present.
    Update {
        /// The attribute key.
        key: String,
        /// Where the value comes from.
        source: Source,
    },
    /// Set always.
    Upsert {
        /// The attribute key.
        key: String,
        /// Where the value comes from.
        source: Source,
    },
    /// Remove the key and every key matching the pattern.
    Delete {
        /// The attribute key.
        key: String,
        /// Keys matching this pattern are acted on as well.
        pattern: Option<Regex>,
    },
    /// Replace by the SHA-256 hex of the value.
    Hash {
        /// The attribute key.
        key: String,
        /// Keys matching this pattern are acted on as well.
        pattern: Option<Regex>,
    },
    /// Named groups of the pattern applied to a string value become attributes.
    Extract {
        /// The attribute holding the string to match.
        key: String,
        /// The pattern whose named groups become attributes.
        pattern: Regex,
        /// The names of the pattern's groups.
        names: Vec<String>,
    },
    /// Change the value's type.
    Convert {
        /// The attribute key.
        key: String,
        /// The type to convert to.
        to: Conversion,
    },
}

/// Where a set action takes its value.
#[derive(Debug, Clone)]
pub enum Source {
    /// A literal from the config.
    Value(Value),
    /// Another attribute of the same set.
    Attribute(String),
    /// The request context of the batch (`metadata.<key>` or `<key>` for a request header,
    /// `auth.<attribute>` for the authenticator's), resolved per batch by
    /// [`resolve_context`]; unresolved, it is never found and the action does nothing.
    Context(String),
}

/// Whether any action takes its value from the request context.
pub fn uses_context(actions: &[Action]) -> bool {
    actions.iter().any(|a| {
        matches!(
            a,
            Action::Insert {
                source: Source::Context(_),
                ..
            } | Action::Update {
                source: Source::Context(_),
                ..
            } | Action::Upsert {
                source: Source::Context(_),
                ..
            }
        )
    })
}

/// The actions as they apply to one batch: [`resolve_context`]d when `context` (some action
/// takes a value `from_context`, see [`uses_context`]), else `actions` as they are.
pub fn for_batch<'a>(
    actions: &'a [Action],
    context: bool,
    lookup: impl Fn(&str) -> Vec<String>,
) -> std::borrow::Cow<'a, [Action]> {
    if context {
        std::borrow::Cow::Owned(resolve_context(actions, lookup))
    } else {
        std::borrow::Cow::Borrowed(actions)
    }
}

/// `actions` for one batch: each `from_context` source becomes the value `lookup` finds, as
/// upstream reads `client.Info` (`metadata.` stripped, `auth.` kept since the host stores
/// the authenticator's attributes under that prefix; several values joined with `;`), and
/// an action whose key has no value is left out, as upstream skips it.
pub fn resolve_context(actions: &[Action], lookup: impl Fn(&str) -> Vec<String>) -> Vec<Action> {
    let resolve = |source: &Source| -> Option<Source> {
        let Source::Context(key) = source else {
            return Some(source.clone());
        };
        let key = key.strip_prefix("metadata.").unwrap_or(key);
        let values = lookup(key);
        (!values.is_empty()).then(|| Source::Value(Value::Str(values.join(";"))))
    };
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Insert { key, source } => resolve(source).map(|source| Action::Insert {
                key: key.clone(),
                source,
            }),
            Action::Update { key, source } => resolve(source).map(|source| Action::Update {
                key: key.clone(),
                source,
            }),
            Action::Upsert { key, source } => resolve(source).map(|source| Action::Upsert {
                key: key.clone(),
                source,
            }),
            other => Some(other.clone()),
        })
        .collect()
}

/// `converted_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conversion {
    /// `int`.
    Int,
    /// `double`.
    Double,
    /// `string`.
    String,
}

/// Validates `actions` as upstream's `NewAttrProc` does. Each problem is reported at
/// `{prefix}[i]` with upstream's message. Unlike upstream, every action is checked (upstream
/// stops at the first problem).
pub fn build_actions(prefix: &str, actions: &[ActionConfig]) -> Result<Vec<Action>, ConfigErrors> {
    let mut errors = ConfigErrors::new();
    let mut out = Vec::with_capacity(actions.len());
    for (i, a) in actions.iter().enumerate() {
        match build_action(i, a) {
            Ok(action) => out.push(action),
            Err(message) => errors.push(format!("{prefix}[{i}]"), message),
        }
    }
    errors.into_result(out)
}

fn value_set(v: &Option<serde_json::Value>) -> bool {
    !matches!(v, None | Some(serde_json::Value::Null))
}

fn build_action(i: usize, a: &ActionConfig) -> Result<Action, String> {
    let action = a.action.to_lowercase();
    match action.as_str() {
        "delete" | "hash" => {
            if a.key.is_empty() && a.pattern.is_empty() {
                return Err(format!(
                    "error creating AttrProc due to missing required field (at least one of \"key\" and \"pattern\" have to be used) at the {i}-th actions"
                ));
            }
        }
        _ => {
            if a.key.is_empty() {
                return Err(format!(
                    "error creating AttrProc due to missing required field \"key\" at the {i}-th actions"
                ));
            }
        }
    }
    let sources = usize::from(value_set(&a.value))
        + usize::from(!a.from_attribute.is_empty())
        + usize::from(!a.from_context.is_empty());
    let key = a.key.clone();
    let no_converted_type = || {
        if a.converted_type.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "error creating AttrProc. Action \"{action}\" does not use the \"converted_type\" field. This must not be specified for {i}-th action"
            ))
        }
    };
    let compile = |p: &str| {
        Regex::new(p).map_err(|_| {
            format!(
                "error creating AttrProc. Field \"pattern\" has invalid pattern: \"{p}\" to be set at the {i}-th actions"
            )
        })
    };
    match action.as_str() {
        "insert" | "update" | "upsert" => {
            if sources == 0 {
                return Err(format!(
                    "error creating AttrProc. Either field \"value\", \"from_attribute\" or \"from_context\" setting must be specified for {i}-th action"
                ));
            }
            if sources > 1 {
                return Err(format!(
                    "error creating AttrProc due to multiple value sources being set at the {i}-th actions"
                ));
            }
            if !a.pattern.is_empty() {
                return Err(format!(
                    "error creating AttrProc. Action \"{action}\" does not use the \"pattern\" field. This must not be specified for {i}-th action"
                ));
            }
            no_converted_type()?;
            let source = match &a.value {
                Some(v) if value_set(&a.value) => {
                    Source::Value(Value::from_json(v).ok_or_else(|| {
                        "value: lists and maps are not supported as attribute values".to_owned()
                    })?)
                }
                _ if !a.from_context.is_empty() => Source::Context(a.from_context.clone()),
                _ => Source::Attribute(a.from_attribute.clone()),
            };
            Ok(match action.as_str() {
                "insert" => Action::Insert { key, source },
                "update" => Action::Update { key, source },
                _ => Action::Upsert { key, source },
            })
        }
        "delete" | "hash" => {
            if value_set(&a.value) || !a.from_attribute.is_empty() {
                return Err(format!(
                    "error creating AttrProc. Action \"{action}\" does not use \"value\" or \"from_attribute\" field. These must not be specified for {i}-th action"
                ));
            }
            let pattern = if a.pattern.is_empty() {
                None
            } else {
                Some(compile(&a.pattern)?)
            };
            no_converted_type()?;
            Ok(if action == "delete" {
                Action::Delete { key, pattern }
            } else {
                Action::Hash { key, pattern }
            })
        }
        "extract" => {
            if sources > 0 {
                return Err(format!(
                    "error creating AttrProc. Action \"{action}\" does not use a value source field. These must not be specified for {i}-th action"
                ));
            }
            if a.pattern.is_empty() {
                return Err(format!(
                    "error creating AttrProc due to missing required field \"pattern\" for action \"{action}\" at the {i}-th action"
                ));
            }
            no_converted_type()?;
            let re = compile(&a.pattern)?;
            let names: Vec<Option<&str>> = re.capture_names().collect();
            if names.len() <= 1 {
                return Err(format!(
                    "error creating AttrProc. Field \"pattern\" contains no named matcher groups at the {i}-th actions"
                ));
            }
            if names.iter().skip(1).any(Option::is_none) {
                return Err(format!(
                    "error creating AttrProc. Field \"pattern\" contains at least one unnamed matcher group at the {i}-th actions"
                ));
            }
            let names = names
                .iter()
                .skip(1)
                .map(|n| n.unwrap_or_default().to_owned())
                .collect();
            Ok(Action::Extract {
                key,
                pattern: re,
                names,
            })
        }
        "convert" => {
            if sources > 0 || !a.pattern.is_empty() {
                return Err(format!(
                    "error creating AttrProc. Action \"{action}\" does not use value sources or \"pattern\" field. These must not be specified for {i}-th action"
                ));
            }
            let to = match a.converted_type.as_str() {
                "int" => Conversion::Int,
                "double" => Conversion::Double,
                "string" => Conversion::String,
                "" => {
                    return Err(format!(
                        "error creating AttrProc due to missing required field \"converted_type\" for action \"{action}\" at the {i}-th action"
                    ));
                }
                other => {
                    return Err(format!(
                        "error creating AttrProc due to invalid value \"{other}\" in field \"converted_type\" for action \"{action}\" at the {i}-th action"
                    ));
                }
            };
            Ok(Action::Convert { key, to })
        }
        _ => Err(format!(
            "error creating AttrProc due to unsupported action {action:?} at the {i}-th actions"
        )),
    }
}

/// An attribute list being edited.
pub type Attrs = Vec<(String, Value)>;

fn get<'a>(attrs: &'a Attrs, key: &str) -> Option<&'a Value> {
    attrs.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

fn put(attrs: &mut Attrs, key: &str, value: Value) {
    match attrs.iter_mut().find(|(k, _)| k == key) {
        Some((_, v)) => *v = value,
        None => attrs.push((key.to_owned(), value)),
    }
}

/// Applies `actions` in order to one attribute set, as upstream's `AttrProc.Process`.
/// Returns whether anything changed.
pub fn apply(actions: &[Action], attrs: &mut Attrs) -> bool {
    let mut changed = false;
    for action in actions {
        match action {
            Action::Delete { key, pattern } => {
                let before = attrs.len();
                attrs.retain(|(k, _)| k != key);
                if let Some(re) = pattern {
                    attrs.retain(|(k, _)| !re.is_match(k));
                }
                changed |= attrs.len() != before;
            }
            Action::Insert { key, source } => {
                if get(attrs, key).is_some() {
                    continue;
                }
                if let Some(v) = source_value(source, attrs) {
                    attrs.push((key.clone(), v));
                    changed = true;
                }
            }
            Action::Update { key, source } => {
                if get(attrs, key).is_none() {
                    continue;
                }
                if let Some(v) = source_value(source, attrs) {
                    put(attrs, key, v);
                    changed = true;
                }
            }
            Action::Upsert { key, source } => {
                if let Some(v) = source_value(source, attrs) {
                    put(attrs, key, v);
                    changed = true;
                }
            }
            Action::Hash { key, pattern } => {
                // Upstream hashes `key`, then every key matching `pattern`: a key that is both
                // is hashed twice.
                if let Some((_, v)) = attrs.iter_mut().find(|(k, _)| k == key) {
                    *v = Value::Str(hash(v));
                    changed = true;
                }
                if let Some(re) = pattern {
                    for (k, v) in attrs.iter_mut() {
                        if re.is_match(k) {
                            *v = Value::Str(hash(v));
                            changed = true;
                        }
                    }
                }
            }
            Action::Extract {
                key,
                pattern,
                names,
            } => {
                let Some(Value::Str(s)) = get(attrs, key) else {
                    continue;
                };
                let Some(caps) = pattern.captures(s) else {
                    continue;
                };
                // Go's FindStringSubmatch gives "" for a group that did not participate.
                let found: Vec<(String, String)> = names
                    .iter()
                    .enumerate()
                    .map(|(i, name)| {
                        let m = caps.get(i + 1).map(|m| m.as_str()).unwrap_or_default();
                        (name.clone(), m.to_owned())
                    })
                    .collect();
                for (name, m) in found {
                    put(attrs, &name, Value::Str(m));
                }
                changed = true;
            }
            Action::Convert { key, to } => {
                if let Some((_, v)) = attrs.iter_mut().find(|(k, _)| k == key)
                    && let Some(new) = convert(v, *to)
                {
                    *v = new;
                    changed = true;
                }
            }
        }
    }
    changed
}

fn source_value(source: &Source, attrs: &Attrs) -> Option<Value> {
    match source {
        Source::Value(v) => Some(v.clone()),
        Source::Attribute(k) => get(attrs, k).cloned(),
        Source::Context(_) => None,
    }
}

/// Upstream's SHA-256 hasher: strings as UTF-8, booleans as one byte, integers and doubles as
/// 8 little-endian bytes; the lowercase hex digest. Anything else, and an empty string,
/// becomes `""`.
pub fn hash(v: &Value) -> String {
    let bytes: Vec<u8> = match v {
        Value::Str(s) => s.as_bytes().to_vec(),
        Value::Bool(b) => vec![u8::from(*b)],
        Value::Int(i) => i.to_le_bytes().to_vec(),
        Value::Double(d) => d.to_bits().to_le_bytes().to_vec(),
        Value::Empty | Value::Bytes(_) | Value::Nested(_) => Vec::new(),
    };
    if bytes.is_empty() {
        return String::new();
    }
    let digest = Sha256::digest(&bytes);
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 15)]));
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Upstream's `convertValue`; `None` leaves the value as is.
fn convert(v: &Value, to: Conversion) -> Option<Value> {
    match to {
        Conversion::String => match v {
            Value::Str(_) => None,
            // The SDK cannot render nested values as JSON; they stay as they are.
            Value::Nested(_) => None,
            other => Some(Value::Str(other.to_string_lossy())),
        },
        Conversion::Int => match v {
            Value::Double(d) => Some(Value::Int(*d as i64)),
            Value::Bool(b) => Some(Value::Int(i64::from(*b))),
            Value::Str(s) => s.parse::<i64>().ok().map(Value::Int),
            _ => None,
        },
        Conversion::Double => match v {
            Value::Int(i) => Some(Value::Double(*i as f64)),
            Value::Bool(b) => Some(Value::Double(if *b { 1.0 } else { 0.0 })),
            Value::Str(s) => parse_go_float(s).map(Value::Double),
            _ => None,
        },
    }
}

/// `strconv.ParseFloat(s, 64)`: Rust's parser agrees except that Go also takes `inf`/`nan`
/// spellings Rust takes too, and Go refuses a leading `+` on nothing. Close enough for
/// attribute values; underscores (Go only with base prefixes) are refused by both.
fn parse_go_float(s: &str) -> Option<f64> {
    s.parse::<f64>().ok()
}

#[cfg(test)]
mod tests;
