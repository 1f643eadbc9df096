//! Typed plugin config: JSON from the host, decoded with serde, errors with key paths.

use std::fmt;

use serde::de::DeserializeOwned;

/// One config problem, located by key path inside the plugin's config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// Key path, e.g. `actions[2].value`; empty for the config as a whole.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl ConfigError {
    /// A problem at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in a config. Validation should collect them all, not stop early.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// No problems yet.
    pub fn new() -> Self {
        ConfigErrors::default()
    }
    /// Records a problem.
    pub fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigError::new(path, message));
    }
    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// `Ok(v)` when nothing was recorded.
    pub fn into_result<T>(self, v: T) -> Result<T, ConfigErrors> {
        if self.0.is_empty() { Ok(v) } else { Err(self) }
    }
}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> Self {
        ConfigErrors(vec![e])
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Decodes the host's JSON into `T`. An empty string or `null` decodes as `{}`, so a config
/// struct with defaults works for `processors: { myplugin: }`. Errors carry the key path
/// (`actions[2].value`), which the host prefixes with the component id.
pub fn parse<T: DeserializeOwned>(json: &str) -> Result<T, ConfigError> {
    let json = json.trim();
    let json = if json.is_empty() || json == "null" {
        "{}"
    } else {
        json
    };
    let mut de = serde_json::Deserializer::from_str(json);
    serde_path_to_error::deserialize::<_, T>(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        // serde_json appends " at line 1 column 42": meaningless to someone who wrote YAML.
        let message = match message.rfind(" at line ") {
            Some(i) => message[..i].to_owned(),
            None => message,
        };
        ConfigError::new(if path == "." { String::new() } else { path }, message)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct C {
        #[serde(default)]
        items: Vec<Item>,
    }
    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Item {
        key: String,
    }

    #[test]
    fn errors_carry_key_paths() {
        let e = parse::<C>(r#"{"items":[{"key":"a"},{"kee":"b"}]}"#).unwrap_err();
        assert_eq!(e.path, "items[1].kee");
        assert!(
            e.message.starts_with("unknown field `kee`"),
            "{}",
            e.message
        );
        assert!(!e.message.contains("line"), "{}", e.message);
        assert!(parse::<C>("").is_ok());
    }
}
