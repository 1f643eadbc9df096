use std::fmt;

use crate::{ComponentId, Kind};

/// What is wrong at a key path inside one config body. [`decode`](crate::decode) returns it
/// without knowing whose body it read; the caller places it ([`ConfigErrors::component`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct KeyError {
    /// Key path inside the body (`actions[2].value`); empty when the body as a whole is wrong.
    pub path: String,
    /// What is wrong there.
    pub message: String,
}

impl KeyError {
    /// A problem at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        KeyError {
            path: path.into(),
            message: message.into(),
        }
    }

    /// The same problem seen from the body that holds this one under `parent`: a problem at
    /// `endpoint` inside `protocols.grpc` is at `protocols.grpc.endpoint`.
    pub fn within(mut self, parent: &str) -> Self {
        self.path = match (parent.is_empty(), self.path.is_empty()) {
            (true, _) => self.path,
            (false, true) => parent.to_owned(),
            (false, false) if self.path.starts_with('[') => format!("{parent}{}", self.path),
            (false, false) => format!("{parent}.{}", self.path),
        };
        self
    }
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// A message whose key path, if any, is part of its text (kept for callers that have not
/// separated the two).
impl From<String> for KeyError {
    fn from(message: String) -> Self {
        KeyError::new("", message)
    }
}

impl From<&str> for KeyError {
    fn from(message: &str) -> Self {
        KeyError::new("", message)
    }
}

/// Where in the configuration a problem is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// The configuration as a whole.
    Config,
    /// A component's body, printed `processors::attributes/x`.
    Component(Kind, ComponentId),
    /// Anywhere else, as printed: `service::pipelines::traces`, a file path, `--set k=v`.
    Other(String),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Config => Ok(()),
            Location::Component(kind, id) => write!(f, "{}::{id}", kind.section()),
            Location::Other(s) => f.write_str(s),
        }
    }
}

/// An empty string is the configuration as a whole.
impl From<String> for Location {
    fn from(s: String) -> Self {
        if s.is_empty() {
            Location::Config
        } else {
            Location::Other(s)
        }
    }
}

impl From<&str> for Location {
    fn from(s: &str) -> Self {
        Location::from(s.to_owned())
    }
}

/// One problem in a config, located by component (or section) and key path. It prints as
/// `processors::attributes/x: actions[2].value: message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// Where: a component, another part of the config, or the config as a whole.
    pub location: Location,
    /// Key path inside the location; empty when the location as a whole is wrong.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl ConfigError {
    /// A problem at `location`.
    pub fn new(location: impl Into<Location>, problem: impl Into<KeyError>) -> Self {
        let KeyError { path, message } = problem.into();
        ConfigError {
            location: location.into(),
            path,
            message,
        }
    }

    /// The component the problem is in, when it is in one.
    pub fn component(&self) -> Option<(Kind, &ComponentId)> {
        match &self.location {
            Location::Component(kind, id) => Some((*kind, id)),
            _ => None,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.location != Location::Config {
            write!(f, "{}: ", self.location)?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found in a config; validation collects them all rather than stopping early.
#[derive(Debug, Clone, Default, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// Records a problem, once: a component built for several signals or pipelines finds
    /// the same problem each time.
    pub fn push(&mut self, location: impl Into<Location>, problem: impl Into<KeyError>) {
        let e = ConfigError::new(location, problem);
        if !self.0.contains(&e) {
            self.0.push(e);
        }
    }

    /// Records a problem in the body of component `id` of section `kind`.
    pub fn component(&mut self, kind: Kind, id: &ComponentId, problem: impl Into<KeyError>) {
        self.push(Location::Component(kind, id.clone()), problem);
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

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}
