use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer};

use crate::Signal;

/// The five sections a component can be configured in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// `receivers`
    Receiver,
    /// `processors`
    Processor,
    /// `exporters`
    Exporter,
    /// `connectors`
    Connector,
    /// `extensions`
    Extension,
}

impl Kind {
    /// The section name in the YAML (`receivers`).
    pub fn section(self) -> &'static str {
        match self {
            Kind::Receiver => "receivers",
            Kind::Processor => "processors",
            Kind::Exporter => "exporters",
            Kind::Connector => "connectors",
            Kind::Extension => "extensions",
        }
    }

    /// The singular noun used in messages (`receiver`).
    pub fn noun(self) -> &'static str {
        match self {
            Kind::Receiver => "receiver",
            Kind::Processor => "processor",
            Kind::Exporter => "exporter",
            Kind::Connector => "connector",
            Kind::Extension => "extension",
        }
    }
}

/// A component id, `type` or `type/name`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ComponentId {
    ty: String,
    name: Option<String>,
}

impl ComponentId {
    /// Builds an id from its parts without validation (for ids made in code).
    pub fn new(ty: impl Into<String>, name: Option<&str>) -> Self {
        ComponentId {
            ty: ty.into(),
            name: name.map(str::to_owned),
        }
    }

    /// The type, e.g. `otlp`.
    pub fn ty(&self) -> &str {
        &self.ty
    }

    /// The name after the slash, if any.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
}

impl fmt::Display for ComponentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(n) => write!(f, "{}/{}", self.ty, n),
            None => f.write_str(&self.ty),
        }
    }
}

fn valid_type(t: &str) -> bool {
    let mut chars = t.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && t.len() <= 63
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn valid_name(n: &str) -> bool {
    // Upstream: ^[^\pZ\pC\pS]+$, 1..1024 chars. Without a Unicode-category table we refuse
    // whitespace, control characters and the ASCII symbols in \pS.
    !n.is_empty()
        && n.chars().count() <= 1024
        && n.chars().all(|c| {
            !c.is_whitespace()
                && !c.is_control()
                && !matches!(c, '$' | '+' | '<' | '=' | '>' | '^' | '`' | '|' | '~')
        })
}

impl FromStr for ComponentId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (ty, name) = match s.split_once('/') {
            Some((t, n)) => (t.trim(), Some(n.trim())),
            None => (s.trim(), None),
        };
        if !valid_type(ty) {
            return Err(format!(
                "invalid type {ty:?}: a type must start with an ASCII letter and contain only ASCII letters, digits and '_' (at most 63)"
            ));
        }
        if let Some(n) = name
            && !valid_name(n)
        {
            return Err(format!(
                "invalid name {n:?}: a name must be non-empty and contain no whitespace, control or symbol characters"
            ));
        }
        Ok(ComponentId {
            ty: ty.to_owned(),
            name: name.map(str::to_owned),
        })
    }
}

impl<'de> Deserialize<'de> for ComponentId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A pipeline id, `signal` or `signal/name`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PipelineId {
    /// What the pipeline carries.
    pub signal: Signal,
    /// The name after the slash, if any.
    pub name: Option<String>,
}

impl fmt::Display for PipelineId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(n) => write!(f, "{}/{}", self.signal, n),
            None => write!(f, "{}", self.signal),
        }
    }
}

impl FromStr for PipelineId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (sig, name) = match s.split_once('/') {
            Some((t, n)) => (t, Some(n)),
            None => (s, None),
        };
        let signal = Signal::parse(sig).ok_or_else(|| {
            if sig == "profiles" {
                "profiles pipelines are not supported".to_owned()
            } else {
                format!("unknown signal {sig:?}: expected traces, metrics or logs")
            }
        })?;
        if let Some(n) = name
            && !valid_name(n)
        {
            return Err(format!("invalid pipeline name {n:?}"));
        }
        Ok(PipelineId {
            signal,
            name: name.map(str::to_owned),
        })
    }
}

impl<'de> Deserialize<'de> for PipelineId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_like_upstream() {
        let id: ComponentId = "otlp/cross-region".parse().unwrap();
        assert_eq!(id.ty(), "otlp");
        assert_eq!(id.name(), Some("cross-region"));
        assert!("1otlp".parse::<ComponentId>().is_err());
        assert!("otlp/".parse::<ComponentId>().is_err());
        assert!("otlp/a b".parse::<ComponentId>().is_err());
        assert_eq!(
            "traces/x".parse::<PipelineId>().unwrap().to_string(),
            "traces/x"
        );
        assert!("spans".parse::<PipelineId>().is_err());
    }
}
