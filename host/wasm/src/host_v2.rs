//! The host side of what `wit/v0.2.0/plugin.wit` adds: the batch extensions (request
//! context, `remove-attribute-all`), the plugin's own metrics and the world's `log`. The
//! batch methods of 0.1.0 serve 0.2.0 components as they are (`host`).

use wasmtime::component::Resource;

use crate::batch::{LogRes, MetricRes, R, TraceRes};
use crate::bindings::v2::wasmcol::plugin0_2_0::{batch_ext, telemetry, types as t2};
use crate::bindings::wasmcol::plugin::types as wt;
use crate::store::{PluginTelemetry, StoreState};

impl batch_ext::Host for StoreState {
    fn trace_context(&mut self, b: Resource<TraceRes>, key: String) -> R<Vec<String>> {
        let batch = self.table.get(&b)?;
        batch.context_values(&key, &mut self.limiter)
    }
    fn metric_context(&mut self, b: Resource<MetricRes>, key: String) -> R<Vec<String>> {
        let batch = self.table.get(&b)?;
        batch.context_values(&key, &mut self.limiter)
    }
    fn log_context(&mut self, b: Resource<LogRes>, key: String) -> R<Vec<String>> {
        let batch = self.table.get(&b)?;
        batch.context_values(&key, &mut self.limiter)
    }
    fn trace_remove_attribute_all(
        &mut self,
        b: Resource<TraceRes>,
        level: wt::Level,
        key: String,
    ) -> R<u32> {
        self.table.get_mut(&b)?.remove_attribute_all(level, &key)
    }
    fn metric_remove_attribute_all(
        &mut self,
        b: Resource<MetricRes>,
        level: wt::Level,
        key: String,
    ) -> R<u32> {
        self.table.get_mut(&b)?.remove_attribute_all(level, &key)
    }
    fn log_remove_attribute_all(
        &mut self,
        b: Resource<LogRes>,
        level: wt::Level,
        key: String,
    ) -> R<u32> {
        self.table.get_mut(&b)?.remove_attribute_all(level, &key)
    }
}

impl PluginTelemetry {
    /// The labels of a series, `processor` first; `None` (logged once) when the plugin may
    /// not use `name`.
    fn labels(&mut self, name: &str, labels: &[t2::Label]) -> Option<Vec<(String, String)>> {
        if !name.starts_with(&self.prefix) || name.len() == self.prefix.len() {
            if !self.warned {
                self.warned = true;
                tracing::warn!(processor = %self.processor, metric = name, prefix = %self.prefix, "plugin metric ignored: its name must start with the prefix");
            }
            return None;
        }
        let mut out = vec![("processor".to_owned(), self.processor.to_string())];
        out.extend(
            labels
                .iter()
                .filter(|l| l.key != "processor")
                .map(|l| (l.key.clone(), l.value.clone())),
        );
        Some(out)
    }
}

fn borrowed(l: &[(String, String)]) -> Vec<(&str, &str)> {
    l.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

impl telemetry::Host for StoreState {
    fn counter_add(
        &mut self,
        name: String,
        help: String,
        labels: Vec<t2::Label>,
        value: u64,
    ) -> R<()> {
        if let Some(t) = self.telemetry.as_mut()
            && let Some(l) = t.labels(&name, &labels)
        {
            t.metrics.counter(&name, &help, &borrowed(&l)).add(value);
        }
        Ok(())
    }
    fn gauge_set(
        &mut self,
        name: String,
        help: String,
        labels: Vec<t2::Label>,
        value: f64,
    ) -> R<()> {
        if let Some(t) = self.telemetry.as_mut()
            && let Some(l) = t.labels(&name, &labels)
        {
            t.metrics
                .gauge(&name, &help, &borrowed(&l))
                .set(value as i64);
        }
        Ok(())
    }
    fn histogram_record(
        &mut self,
        name: String,
        help: String,
        labels: Vec<t2::Label>,
        bounds: Vec<f64>,
        value: f64,
    ) -> R<()> {
        if let Some(t) = self.telemetry.as_mut()
            && let Some(l) = t.labels(&name, &labels)
        {
            t.metrics
                .histogram(&name, &help, &borrowed(&l), &bounds)
                .observe(value);
        }
        Ok(())
    }
}

impl t2::Host for StoreState {}

impl crate::bindings::v2::ProcessorImports for StoreState {
    fn log(&mut self, level: wt::LogLevel, message: String) -> wasmtime::Result<()> {
        crate::bindings::ProcessorImports::log(self, level, message)
    }
}
