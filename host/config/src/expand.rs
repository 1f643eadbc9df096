//! `${env:NAME}`, `${NAME}`, `${env:NAME:-default}` and `$$`, applied to every string scalar
//! after the YAML is parsed, as upstream's confmap does.

use crate::{ConfigErrors, Value};

/// Expands references in every string of `value`; `path` names the position for errors.
pub(crate) fn expand_value(
    value: &mut Value,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
    errors: &mut ConfigErrors,
) {
    match value {
        Value::String(s) if s.contains('$') => match expand_str(s, env) {
            Ok((expanded, whole)) => {
                // A scalar that is exactly one reference takes the referenced text's YAML type
                // (`limit_mib: ${env:LIMIT}` is an int), like upstream.
                *value = if whole {
                    match serde_yaml::from_str::<Value>(&expanded) {
                        Ok(v @ (Value::Bool(_) | Value::Number(_))) => v,
                        _ => Value::String(expanded),
                    }
                } else {
                    Value::String(expanded)
                };
            }
            Err(e) => errors.push(path.to_owned(), e),
        },
        Value::Mapping(map) => {
            for (k, v) in map.iter_mut() {
                let key = match k {
                    Value::String(s) => s.clone(),
                    other => serde_yaml::to_string(other)
                        .unwrap_or_default()
                        .trim()
                        .to_owned(),
                };
                let child = if path.is_empty() {
                    key
                } else {
                    format!("{path}::{key}")
                };
                expand_value(v, &child, env, errors);
            }
        }
        Value::Sequence(items) => {
            for (i, v) in items.iter_mut().enumerate() {
                expand_value(v, &format!("{path}[{i}]"), env, errors);
            }
        }
        Value::Tagged(t) => expand_value(&mut t.value, path, env, errors),
        _ => {}
    }
}

fn valid_env_name(n: &str) -> bool {
    let mut c = n.chars();
    matches!(c.next(), Some(f) if f.is_ascii_alphabetic() || f == '_')
        && c.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Returns the expanded string and whether the input was a single reference.
fn expand_str(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<(String, bool), String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    let mut refs = 0;
    let mut literal = false;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        if pos > 0 {
            literal = true;
        }
        let after = &rest[pos + 1..];
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            literal = true;
            rest = r;
        } else if let Some(r) = after.strip_prefix('{') {
            let end = r
                .find('}')
                .ok_or_else(|| format!("unterminated reference in {s:?}"))?;
            let inner = &r[..end];
            rest = &r[end + 1..];
            refs += 1;
            let (scheme, body) = match inner.split_once(':') {
                // `${NAME:-default}` is the env form with a default, not a scheme called NAME.
                Some((sch, b))
                    if !b.starts_with('-')
                        && sch.chars().all(|c| c.is_ascii_alphanumeric())
                        && !sch.is_empty() =>
                {
                    (sch, b)
                }
                _ => ("env", inner),
            };
            if scheme != "env" {
                return Err(format!(
                    "unsupported reference scheme {scheme:?} in ${{{inner}}}: only env is supported"
                ));
            }
            let (name, default) = match body.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (body, None),
            };
            if !valid_env_name(name) {
                return Err(format!(
                    "environment variable {name:?} has invalid name: must match regex ^[a-zA-Z_][a-zA-Z0-9_]*$"
                ));
            }
            match env(name) {
                Some(v) => {
                    if v.is_empty() {
                        tracing::info!(name, "Configuration references empty environment variable");
                    }
                    out.push_str(&v);
                }
                None => match default {
                    Some(d) => out.push_str(d),
                    None => {
                        tracing::warn!(name, "Configuration references unset environment variable");
                    }
                },
            }
        } else {
            // `$NAME` without braces is not expanded (upstream removed it in v0.107).
            out.push('$');
            literal = true;
            rest = after;
        }
    }
    if !rest.is_empty() {
        literal = true;
    }
    out.push_str(rest);
    Ok((out, refs == 1 && !literal))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(n: &str) -> Option<String> {
        match n {
            "REGION" => Some("us-east-1".into()),
            "LIMIT" => Some("1024".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    fn exp(yaml: &str) -> Result<Value, ConfigErrors> {
        let mut v: Value = serde_yaml::from_str(yaml).unwrap();
        let mut errors = ConfigErrors::default();
        expand_value(&mut v, "", &env, &mut errors);
        errors.into_result(v)
    }

    #[test]
    fn expands_like_upstream() {
        let v = exp("a: ${env:REGION}\nb: ${REGION}-x\nc: ${env:NOPE:-dflt}\nd: $$HOME\ne: $HOME\nf: ${env:LIMIT}\ng: ${EMPTY:-x}\nh: ${env:NOPE}").unwrap();
        assert_eq!(v["a"], Value::from("us-east-1"));
        assert_eq!(v["b"], Value::from("us-east-1-x"));
        assert_eq!(v["c"], Value::from("dflt"));
        assert_eq!(v["d"], Value::from("$HOME"));
        assert_eq!(v["e"], Value::from("$HOME"));
        assert_eq!(v["f"], Value::from(1024));
        assert_eq!(v["g"], Value::from(""));
        assert_eq!(v["h"], Value::from(""));
    }

    #[test]
    fn invalid_names_are_errors_with_path() {
        let e = exp("receivers:\n  otlp:\n    x: ${env:1BAD}").unwrap_err();
        assert_eq!(
            e.0[0].location,
            crate::Location::Other("receivers::otlp::x".into())
        );
        assert!(e.0[0].message.contains("invalid name"), "{e}");
    }
}
