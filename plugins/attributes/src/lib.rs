//! The `attributes` processor: upstream's attribute actions on span, data point and log
//! record attributes, with include/exclude selection.

use serde::Deserialize;
use wasmcol_attraction::filter::{MatchConfig, Selector, Subject};
use wasmcol_attraction::{
    Action, ActionConfig, Attrs, Source, apply, build_actions, for_batch, uses_context,
};
use wasmcol_sdk::{
    BatchOps, ConfigErrors, ItemRef, Level, Logs, Metrics, Outcome, ProcessError, Processor,
    ScopeInfo, SetMode, Signal, Target, Traces, Value,
};

/// The processor's config (upstream keys).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Actions applied in order to each selected item.
    #[serde(default)]
    pub actions: Vec<ActionConfig>,
    /// Process only matching items.
    #[serde(default)]
    pub include: Option<MatchConfig>,
    /// Skip matching items.
    #[serde(default)]
    pub exclude: Option<MatchConfig>,
}

/// The processor.
#[derive(Debug)]
pub struct Attributes {
    actions: Vec<Action>,
    selector: Selector,
    /// When every action sets a literal value and nothing is filtered, each action is one bulk
    /// host call for the whole batch.
    bulk: Option<Vec<(String, Value, SetMode)>>,
    /// Some action reads the request context, so actions are resolved per batch.
    context: bool,
}

impl Processor for Attributes {
    const NAME: &'static str = "attributes";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const SIGNALS: &'static [Signal] = &[Signal::Traces, Signal::Metrics, Signal::Logs];
    const CONFIG_SCHEMA: &'static str = "upstream attributes processor: actions[] {key, value | from_attribute | from_context, pattern, converted_type, action: insert|update|upsert|delete|hash|extract|convert}, include/exclude {match_type: strict|regexp, services, span_names, span_kinds, log_bodies, log_severity_texts, log_severity_number, metric_names, attributes, resources, libraries}";
    type Config = Config;

    fn new(config: Config, signal: Signal) -> Result<Self, ConfigErrors> {
        let mut errors = ConfigErrors::new();
        if config.actions.is_empty() {
            errors.push("actions", "missing required field \"actions\"");
        }
        let actions = match build_actions("actions", &config.actions) {
            Ok(a) => a,
            Err(e) => {
                errors.0.extend(e.0);
                Vec::new()
            }
        };
        let selector =
            match Selector::build(config.include.as_ref(), config.exclude.as_ref(), signal) {
                Ok(s) => s,
                Err(es) => {
                    for (path, message) in es {
                        errors.push(path, message);
                    }
                    Selector::default()
                }
            };
        let bulk = if selector.is_empty() {
            literal_sets(&actions)
        } else {
            None
        };
        let context = uses_context(&actions);
        errors.into_result(Attributes {
            actions,
            selector,
            bulk,
            context,
        })
    }

    fn process_traces(&mut self, traces: Traces<'_>) -> Result<Outcome, ProcessError> {
        if self.bulk_apply(traces.ops()) {
            return Ok(Outcome::Forward);
        }
        let span_info = self.selector.needs_span();
        let selector = &self.selector;
        self.each_item(traces.ops(), |at, subject| {
            let info = span_info.then(|| traces.trace_ops().span(at));
            selector.selects(&Subject {
                span: info.as_ref().map(|i| (i.name.as_str(), i.kind)),
                ..subject
            })
        });
        Ok(Outcome::Forward)
    }

    fn process_metrics(&mut self, metrics: Metrics<'_>) -> Result<Outcome, ProcessError> {
        if self.bulk_apply(metrics.ops()) {
            return Ok(Outcome::Forward);
        }
        let name = self.selector.needs_metric_name();
        let selector = &self.selector;
        self.each_item(metrics.ops(), |at, subject| {
            let info = name.then(|| metrics.metric_ops().point(at));
            selector.selects(&Subject {
                metric_name: info.as_ref().map(|i| i.metric_name.as_str()),
                ..subject
            })
        });
        Ok(Outcome::Forward)
    }

    fn process_logs(&mut self, logs: Logs<'_>) -> Result<Outcome, ProcessError> {
        if self.bulk_apply(logs.ops()) {
            return Ok(Outcome::Forward);
        }
        let need = self.selector.needs_log();
        let selector = &self.selector;
        self.each_item(logs.ops(), |at, subject| {
            let info = need.then(|| logs.log_ops().log_record(at));
            selector.selects(&Subject {
                log: info.as_ref(),
                ..subject
            })
        });
        Ok(Outcome::Forward)
    }
}

fn literal_sets(actions: &[Action]) -> Option<Vec<(String, Value, SetMode)>> {
    actions
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
        .collect()
}

impl Attributes {
    fn bulk_apply(&self, ops: &dyn BatchOps) -> bool {
        let Some(sets) = &self.bulk else {
            return false;
        };
        for (key, value, mode) in sets {
            ops.set_attribute_all(Level::Item, key, value, *mode);
        }
        true
    }

    /// Walks every item, decides with `select` (which adds the signal-specific fields to the
    /// subject) and applies the actions, with `from_context` resolved from this batch's
    /// request context, to the selected ones.
    fn each_item(&self, ops: &dyn BatchOps, select: impl Fn(ItemRef, Subject<'_>) -> bool) {
        let actions = for_batch(&self.actions, self.context, |k| ops.context(k));
        let need_resource = self.selector.needs_resource();
        let need_scope = self.selector.needs_scope();
        for r in 0..ops.resource_count() {
            let resource: Option<Attrs> =
                need_resource.then(|| ops.attributes(Target::Resource(r)));
            for s in 0..ops.scope_count(r) {
                let scope: Option<ScopeInfo> = need_scope.then(|| {
                    ops.scope_info(wasmcol_sdk::ScopeRef {
                        resource: r,
                        scope: s,
                    })
                });
                for i in 0..ops.item_count(r, s) {
                    let at = ItemRef {
                        resource: r,
                        scope: s,
                        item: i,
                    };
                    let target = Target::Item(at);
                    let mut attrs = ops.attributes(target);
                    let selected = if self.selector.is_empty() {
                        true
                    } else {
                        let subject = Subject {
                            resource: resource.as_ref(),
                            scope: scope.as_ref(),
                            attributes: Some(&attrs),
                            ..Subject::default()
                        };
                        select(at, subject)
                    };
                    if selected && apply(&actions, &mut attrs) {
                        ops.replace_attributes(target, &attrs);
                    }
                }
            }
        }
    }
}

wasmcol_sdk::export_processor!(Attributes);

#[cfg(test)]
mod tests {
    use super::*;
    use wasmcol_sdk::testing::{self, MemLogs, MemTraces, log, span};

    #[test]
    fn seed_cross_region_insert() {
        let mut p: Attributes = testing::build(
            r#"{"actions":[{"key":"telemetry.source","value":"cross-region-forward","action":"insert"}]}"#,
        )
        .unwrap();
        assert!(p.bulk.is_some());
        let batch = MemTraces::new().resource(&[], |r| {
            r.scope("s", |s| {
                s.item(span("a"))
                    .item(span("b").attr("telemetry.source", "local"));
            });
        });
        testing::run_traces(&mut p, &batch).unwrap();
        let d = batch.data();
        let items = &d.resources[0].scopes[0].items;
        assert_eq!(
            items[0].attributes,
            vec![(
                "telemetry.source".to_string(),
                Value::from("cross-region-forward")
            )]
        );
        assert_eq!(
            items[1].attributes,
            vec![("telemetry.source".to_string(), Value::from("local"))]
        );
    }

    /// `from_context` tags each span with its batch's request context value; a batch without
    /// it is left alone.
    #[test]
    fn from_context_tags_spans_per_batch() {
        let mut p: Attributes = testing::build(
            r#"{"actions":[{"key":"tenant","from_context":"x-tenant","action":"upsert"}]}"#,
        )
        .unwrap();
        assert!(p.bulk.is_none());
        let batch = MemTraces::new()
            .resource(&[], |r| {
                r.scope("s", |s| {
                    s.item(span("a"));
                });
            })
            .with_context("x-tenant", &["acme"]);
        testing::run_traces(&mut p, &batch).unwrap();
        assert_eq!(
            batch.data().resources[0].scopes[0].items[0].attributes,
            vec![("tenant".to_string(), Value::from("acme"))]
        );
        let bare = MemTraces::new().resource(&[], |r| {
            r.scope("s", |s| {
                s.item(span("a"));
            });
        });
        testing::run_traces(&mut p, &bare).unwrap();
        assert!(
            bare.data().resources[0].scopes[0].items[0]
                .attributes
                .is_empty()
        );
    }

    #[test]
    fn include_selects_spans_by_service() {
        let mut p: Attributes = testing::build(
            r#"{"actions":[{"key":"x","action":"delete"}],
                "include":{"match_type":"strict","services":["api"]}}"#,
        )
        .unwrap();
        let batch = MemTraces::new()
            .resource(&[("service.name", "api".into())], |r| {
                r.scope("s", |s| {
                    s.item(span("a").attr("x", 1));
                });
            })
            .resource(&[("service.name", "db".into())], |r| {
                r.scope("s", |s| {
                    s.item(span("b").attr("x", 1));
                });
            });
        testing::run_traces(&mut p, &batch).unwrap();
        let d = batch.data();
        assert!(d.resources[0].scopes[0].items[0].attributes.is_empty());
        assert_eq!(d.resources[1].scopes[0].items[0].attributes.len(), 1);
    }

    #[test]
    fn logs_filtered_by_severity_text() {
        let mut p: Attributes = testing::build_for(
            r#"{"actions":[{"key":"level","from_attribute":"lvl","action":"upsert"}],
                "exclude":{"match_type":"strict","log_severity_texts":["DEBUG"]}}"#,
            Signal::Logs,
        )
        .unwrap();
        let batch = MemLogs::new().resource(&[], |r| {
            r.scope("s", |s| {
                s.item(log("a").attr("lvl", "e").severity("ERROR", 17))
                    .item(log("b").attr("lvl", "d").severity("DEBUG", 5));
            });
        });
        testing::run_logs(&mut p, &batch).unwrap();
        let d = batch.data();
        assert_eq!(d.resources[0].scopes[0].items[0].attributes.len(), 2);
        assert_eq!(d.resources[0].scopes[0].items[1].attributes.len(), 1);
    }

    #[test]
    fn empty_actions_is_an_error_with_upstream_text() {
        let e = testing::build::<Attributes>("{}").unwrap_err();
        assert_eq!(
            e.0[0].to_string(),
            "actions: missing required field \"actions\""
        );
        let e = testing::build::<Attributes>(r#"{"actions":[],"bogus":1}"#).unwrap_err();
        assert!(e.0[0].message.starts_with("unknown field `bogus`"), "{e}");
    }

    #[test]
    fn include_invalid_for_signal_is_reported_with_path() {
        let e = testing::build_for::<Attributes>(
            r#"{"actions":[{"key":"k","action":"delete"}],"include":{"match_type":"strict","services":["a"]}}"#,
            Signal::Logs,
        )
        .unwrap_err();
        assert_eq!(
            e.0[0].to_string(),
            "include: neither services nor span_names should be specified for log records"
        );
    }
}
