//! The collector's YAML, read the way otelcol-contrib reads it.
//!
//! Loading is in two steps. [`load`] merges the `--config` files and `--set` overrides,
//! expands `${env:...}` references, checks component and pipeline ids and the `service`
//! section, and keeps each component's body as YAML. Each factory later decodes its own body
//! into a typed struct with [`decode`], so the error for a bad key names the component and
//! the key path (`processors::attributes/x: actions[2].value: ...`).

#![forbid(unsafe_code)]

mod duration;
mod error;
mod expand;
pub mod exporterhelper;
mod id;
mod load;
mod service;

pub use duration::{GoDuration, parse_duration};
pub use error::{ConfigError, ConfigErrors, KeyError, Location};
pub use id::{ComponentId, Kind, PipelineId};
pub use load::{RawConfig, load, load_str};
pub use service::{
    BatchLogProcessor, IncludeExclude, LogExporter, LogProcessor, LogPush, LogSampling,
    LogsTelemetry, MetricReader, MetricsTelemetry, NameValue, OtlpPush, PeriodicPush,
    PeriodicReader, PipelineConfig, PromConfig, PrometheusReader, PullExporter, PullReader,
    PushExporter, PushProtocol, ServiceConfig, SimpleLogProcessor, TelemetryConfig,
};
pub use wasmcol_pdata::Signal;

/// A YAML value as read from the config, after expansion.
pub type Value = serde_yaml::Value;

/// Decodes a component body into its typed config; an empty body (`otlp:`) means defaults.
///
/// The error carries the key path inside the body; the caller places it in its component
/// (`receivers::otlp`).
pub fn decode<T: serde::de::DeserializeOwned>(value: &Value) -> Result<T, KeyError> {
    let value = match value {
        Value::Null => Value::Mapping(Default::default()),
        v => v.clone(),
    };
    serde_path_to_error::deserialize::<_, T>(value).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        if path == "." {
            KeyError::new("", message)
        } else {
            KeyError::new(path, message)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Action {
        key: String,
        value: Option<u32>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        actions: Vec<Action>,
    }

    fn yaml(s: &str) -> Value {
        serde_yaml::from_str(s).unwrap()
    }

    #[test]
    fn decode_errors_carry_the_key_path_and_print_as_before() {
        let e = decode::<Body>(&yaml("actions:\n- key: a\n- key: b\n  value: x")).unwrap_err();
        assert_eq!(e.path, "actions[1].value");
        assert!(e.message.starts_with("invalid type: string \"x\""), "{e}");
        let mut errors = ConfigErrors::default();
        let id: ComponentId = "attributes/x".parse().unwrap();
        errors.component(Kind::Processor, &id, e.clone());
        assert_eq!(errors.0[0].component(), Some((Kind::Processor, &id)));
        assert_eq!(errors.0[0].path, "actions[1].value");
        assert_eq!(
            errors.to_string(),
            format!("processors::attributes/x: actions[1].value: {}", e.message)
        );
        // An unknown key is named by the path.
        let e = decode::<Body>(&yaml("bogus: 1")).unwrap_err();
        assert_eq!(e.path, "bogus");
        assert!(e.message.starts_with("unknown field `bogus`"), "{e}");
        // Seen from an enclosing body.
        assert_eq!(
            KeyError::new("[2].key", "bad").within("actions"),
            KeyError::new("actions[2].key", "bad")
        );
        assert_eq!(
            KeyError::new("", "bad")
                .within("protocols.grpc")
                .to_string(),
            "protocols.grpc: bad"
        );
    }
}
