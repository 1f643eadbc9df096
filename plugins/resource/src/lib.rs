//! The `resource` processor: upstream's attribute actions on resource attributes. Only the
//! resource level of a batch is touched, so the host never decodes spans, points or records
//! for it.

use serde::Deserialize;
use wasmcol_attraction::{
    Action, ActionConfig, Source, apply, build_actions, for_batch, uses_context,
};
use wasmcol_sdk::{
    BatchOps, ConfigErrors, Level, Logs, Metrics, Outcome, ProcessError, Processor, SetMode,
    Signal, Target, Traces, Value,
};

/// The processor's config (upstream keys).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Actions applied in order to each resource's attributes.
    #[serde(default)]
    pub attributes: Vec<ActionConfig>,
}

/// The processor.
#[derive(Debug)]
pub struct ResourceProcessor {
    actions: Vec<Action>,
    bulk: Option<Vec<(String, Value, SetMode)>>,
    /// Some action takes its value `from_context`: resolved per batch.
    context: bool,
}

impl Processor for ResourceProcessor {
    const NAME: &'static str = "resource";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const SIGNALS: &'static [Signal] = &[Signal::Traces, Signal::Metrics, Signal::Logs];
    const CONFIG_SCHEMA: &'static str = "upstream resource processor: attributes[] {key, value | from_attribute | from_context, pattern, converted_type, action: insert|update|upsert|delete|hash|extract|convert}";
    type Config = Config;

    fn new(config: Config, _signal: Signal) -> Result<Self, ConfigErrors> {
        if config.attributes.is_empty() {
            return Err(ConfigErrors::from(wasmcol_sdk::ConfigError::new(
                "attributes",
                "missing required field \"attributes\"",
            )));
        }
        let actions = build_actions("attributes", &config.attributes)?;
        let bulk = actions
            .iter()
            .map(|a| match a {
                Action::Insert {
                    key,
                    source: Source::Value(v),
                } => Some((key.clone(), v.clone(), SetMode::Insert)),
                Action::Update {
                    key,
                    source: Source::Value(v),
                } => Some((key.clone(), v.clone(), SetMode::Update)),
                Action::Upsert {
                    key,
                    source: Source::Value(v),
                } => Some((key.clone(), v.clone(), SetMode::Upsert)),
                _ => None,
            })
            .collect();
        let context = uses_context(&actions);
        Ok(ResourceProcessor {
            actions,
            bulk,
            context,
        })
    }

    fn process_traces(&mut self, traces: Traces<'_>) -> Result<Outcome, ProcessError> {
        self.run(traces.ops());
        Ok(Outcome::Forward)
    }

    fn process_metrics(&mut self, metrics: Metrics<'_>) -> Result<Outcome, ProcessError> {
        self.run(metrics.ops());
        Ok(Outcome::Forward)
    }

    fn process_logs(&mut self, logs: Logs<'_>) -> Result<Outcome, ProcessError> {
        self.run(logs.ops());
        Ok(Outcome::Forward)
    }
}

impl ResourceProcessor {
    fn run(&self, ops: &dyn BatchOps) {
        if let Some(sets) = &self.bulk {
            for (key, value, mode) in sets {
                ops.set_attribute_all(Level::Resource, key, value, *mode);
            }
            return;
        }
        // `from_context` takes this batch's request context, as upstream reads each
        // request's client info.
        let actions = for_batch(&self.actions, self.context, |k| ops.context(k));
        for r in 0..ops.resource_count() {
            let target = Target::Resource(r);
            let mut attrs = ops.attributes(target);
            if apply(&actions, &mut attrs) {
                ops.replace_attributes(target, &attrs);
            }
        }
    }
}

wasmcol_sdk::export_processor!(ResourceProcessor);

#[cfg(test)]
mod tests {
    use super::*;
    use wasmcol_sdk::testing::{self, MemTraces, span};

    #[test]
    fn seed_region_upsert() {
        let mut p: ResourceProcessor = testing::build(
            r#"{"attributes":[{"key":"deployment.region","value":"us-east-1","action":"upsert"}]}"#,
        )
        .unwrap();
        let batch = MemTraces::new()
            .resource(&[("deployment.region", "old".into())], |r| {
                r.scope("s", |s| {
                    s.item(span("a"));
                });
            })
            .resource(&[], |r| {
                r.scope("s", |s| {
                    s.item(span("b"));
                });
            });
        testing::run_traces(&mut p, &batch).unwrap();
        let d = batch.data();
        for r in &d.resources {
            assert_eq!(
                r.attributes,
                vec![("deployment.region".to_string(), Value::from("us-east-1"))]
            );
            // Span attributes untouched.
            assert!(r.scopes[0].items[0].attributes.is_empty());
        }
    }

    /// `from_context` tags each batch's resources with its own request's value, and leaves
    /// them alone when the request had none (upstream skips the action).
    #[test]
    fn from_context_tags_resources_per_batch() {
        let mut p: ResourceProcessor = testing::build(
            r#"{"attributes":[{"key":"tenant","from_context":"x-tenant","action":"upsert"}]}"#,
        )
        .unwrap();
        assert!(p.bulk.is_none());
        let batch = || {
            MemTraces::new().resource(&[], |r| {
                r.scope("s", |s| {
                    s.item(span("a"));
                });
            })
        };
        let tagged = batch().with_context("x-tenant", &["acme", "beta"]);
        testing::run_traces(&mut p, &tagged).unwrap();
        assert_eq!(
            tagged.data().resources[0].attributes,
            vec![("tenant".to_string(), Value::from("acme;beta"))]
        );
        let bare = batch();
        testing::run_traces(&mut p, &bare).unwrap();
        assert!(bare.data().resources[0].attributes.is_empty());
    }

    #[test]
    fn general_actions_on_resources() {
        let mut p: ResourceProcessor = testing::build(
            r#"{"attributes":[{"key":"k8s.cluster.name","from_attribute":"k8s-cluster","action":"insert"},
                              {"key":"redundant-attribute","action":"delete"}]}"#,
        )
        .unwrap();
        let batch = MemTraces::new().resource(
            &[
                ("k8s-cluster", "c1".into()),
                ("redundant-attribute", "x".into()),
            ],
            |r| {
                r.scope("s", |s| {
                    s.item(span("a"));
                });
            },
        );
        testing::run_traces(&mut p, &batch).unwrap();
        assert_eq!(
            batch.data().resources[0].attributes,
            vec![
                ("k8s-cluster".to_string(), Value::from("c1")),
                ("k8s.cluster.name".to_string(), Value::from("c1"))
            ]
        );
    }

    #[test]
    fn missing_attributes_is_an_error() {
        let e = testing::build::<ResourceProcessor>("{}").unwrap_err();
        assert_eq!(
            e.to_string(),
            "attributes: missing required field \"attributes\""
        );
    }
}
