use indexmap::IndexMap;

use crate::expand::expand_value;
use crate::{ComponentId, ConfigErrors, Kind, ServiceConfig, Value};

/// A config with ids checked and the `service` section typed; component bodies stay YAML
/// until their factories decode them.
#[derive(Debug, Clone, Default)]
pub struct RawConfig {
    /// `receivers`
    pub receivers: IndexMap<ComponentId, Value>,
    /// `processors`
    pub processors: IndexMap<ComponentId, Value>,
    /// `exporters`
    pub exporters: IndexMap<ComponentId, Value>,
    /// `connectors`
    pub connectors: IndexMap<ComponentId, Value>,
    /// `extensions`
    pub extensions: IndexMap<ComponentId, Value>,
    /// `service`
    pub service: ServiceConfig,
}

impl RawConfig {
    /// The components of one section.
    pub fn section(&self, kind: Kind) -> &IndexMap<ComponentId, Value> {
        match kind {
            Kind::Receiver => &self.receivers,
            Kind::Processor => &self.processors,
            Kind::Exporter => &self.exporters,
            Kind::Connector => &self.connectors,
            Kind::Extension => &self.extensions,
        }
    }
}

/// Reads and merges `paths` (later over earlier), applies `--set key.path=value` overrides,
/// expands environment references and checks the layout. Every problem is reported.
pub fn load(paths: &[String], sets: &[String]) -> Result<RawConfig, ConfigErrors> {
    let mut errors = ConfigErrors::default();
    let mut docs = Vec::new();
    for p in paths {
        let path = p.strip_prefix("file:").unwrap_or(p);
        match std::fs::read_to_string(path) {
            Ok(text) => match serde_yaml::from_str::<Value>(&text) {
                Ok(v) => docs.push(v),
                Err(e) => errors.push(path.to_owned(), format!("cannot parse YAML: {e}")),
            },
            Err(e) => errors.push(path.to_owned(), format!("cannot read config file: {e}")),
        }
    }
    for s in sets {
        match set_to_value(s) {
            Ok(v) => docs.push(v),
            Err(e) => errors.push(format!("--set {s}"), e),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut merged = Value::Mapping(Default::default());
    for d in docs {
        merge(&mut merged, d);
    }
    from_value(merged, &|n| std::env::var(n).ok())
}

/// Loads a single YAML document from a string, with `env` as the environment.
pub fn load_str(
    yaml: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<RawConfig, ConfigErrors> {
    match serde_yaml::from_str::<Value>(yaml) {
        Ok(v) => from_value(v, env),
        Err(e) => Err(ConfigErrors(vec![crate::ConfigError::new(
            "",
            format!("cannot parse YAML: {e}"),
        )])),
    }
}

/// Deep merge: maps merge key by key, anything else (lists included) is replaced.
fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Mapping(b), Value::Mapping(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

/// `a.b.c=value` → `{a: {b: {c: value}}}`, the value parsed as YAML.
fn set_to_value(s: &str) -> Result<Value, String> {
    let (key, val) = s.split_once('=').ok_or("missing equal sign")?;
    let mut value: Value =
        serde_yaml::from_str(val).unwrap_or_else(|_| Value::String(val.to_owned()));
    if value.is_null() && !val.trim().is_empty() && val.trim() != "null" && val.trim() != "~" {
        value = Value::String(val.to_owned());
    }
    // `::` is upstream's separator; `.` is the usual one on the command line.
    let parts: Vec<&str> = if key.contains("::") {
        key.split("::").collect()
    } else {
        key.split('.').collect()
    };
    if parts.iter().any(|p| p.is_empty()) {
        return Err(format!("invalid key {key:?}"));
    }
    for p in parts.iter().rev() {
        let mut m = serde_yaml::Mapping::new();
        m.insert(Value::String((*p).to_owned()), value);
        value = Value::Mapping(m);
    }
    Ok(value)
}

fn from_value(
    mut root: Value,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<RawConfig, ConfigErrors> {
    let mut errors = ConfigErrors::default();
    expand_value(&mut root, "", env, &mut errors);
    let mut cfg = RawConfig::default();
    let map = match root {
        Value::Mapping(m) => m,
        Value::Null => Default::default(),
        _ => {
            errors.push("", "the config must be a map with receivers, processors, exporters, connectors, extensions and service");
            return Err(errors);
        }
    };
    for (k, v) in map {
        let Some(key) = k.as_str() else {
            errors.push("", format!("invalid top-level key {k:?}"));
            continue;
        };
        let kind = match key {
            "receivers" => Kind::Receiver,
            "processors" => Kind::Processor,
            "exporters" => Kind::Exporter,
            "connectors" => Kind::Connector,
            "extensions" => Kind::Extension,
            "service" => {
                match crate::decode::<ServiceConfig>(&v) {
                    Ok(s) => {
                        if let Err(e) = s.telemetry.check() {
                            errors.push("service", e.within("telemetry"));
                        }
                        cfg.service = s;
                    }
                    Err(e) => errors.push("service", e),
                }
                continue;
            }
            other => {
                errors.push("", format!("'{other}' has invalid keys: the top-level keys are receivers, processors, exporters, connectors, extensions and service"));
                continue;
            }
        };
        let section = match v {
            Value::Mapping(m) => m,
            Value::Null => continue,
            _ => {
                errors.push(key, "must be a map of component ids to their configs");
                continue;
            }
        };
        for (id, body) in section {
            let id_str = id
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| format!("{id:?}"));
            match id_str.parse::<ComponentId>() {
                Ok(id) => {
                    let target = match kind {
                        Kind::Receiver => &mut cfg.receivers,
                        Kind::Processor => &mut cfg.processors,
                        Kind::Exporter => &mut cfg.exporters,
                        Kind::Connector => &mut cfg.connectors,
                        Kind::Extension => &mut cfg.extensions,
                    };
                    target.insert(id, body);
                }
                Err(e) => errors.push(format!("{key}::{id_str}"), e),
            }
        }
    }
    errors.into_result(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_maps_and_replaces_lists() {
        let mut a: Value = serde_yaml::from_str("x: {a: 1, l: [1, 2]}\ny: 2").unwrap();
        let b: Value = serde_yaml::from_str("x: {b: 3, l: [9]}").unwrap();
        merge(&mut a, b);
        assert_eq!(a["x"]["a"], Value::from(1));
        assert_eq!(a["x"]["b"], Value::from(3));
        assert_eq!(a["x"]["l"], serde_yaml::from_str::<Value>("[9]").unwrap());
    }

    #[test]
    fn set_builds_nested_values() {
        let v = set_to_value("processors.batch.timeout=2s").unwrap();
        assert_eq!(v["processors"]["batch"]["timeout"], Value::from("2s"));
        let v = set_to_value("processors::batch::send_batch_size=10").unwrap();
        assert_eq!(v["processors"]["batch"]["send_batch_size"], Value::from(10));
        assert!(
            set_to_value("novalue")
                .unwrap_err()
                .contains("missing equal sign")
        );
    }

    #[test]
    fn loads_sections_and_reports_bad_ids() {
        let e = load_str(
            "receivers:\n  otlp/: {}\n  '9x': {}\nfoo: 1\nservice:\n  bogus: 1\n",
            &|_| None,
        )
        .unwrap_err();
        assert_eq!(e.0.len(), 4, "{e}");
        let cfg = load_str("receivers:\n  otlp:\nexporters:\n  debug:\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [debug]\n", &|_| None).unwrap();
        assert_eq!(cfg.receivers.len(), 1);
        assert_eq!(cfg.service.pipelines.len(), 1);
    }
}
