//! Graph checks and lifecycle order with small in-process components.
// Test code: a failed expectation is reported by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::Mutex;
use wasmcol_config::{Kind, Value, load_str};
use wasmcol_core::registry::Factory;
use wasmcol_core::*;

type Log = Arc<Mutex<Vec<String>>>;

struct Stage {
    name: String,
    log: Log,
    next: Option<ConsumerRef>,
}

#[async_trait]
impl Consumer for Stage {
    async fn consume(&self, batch: Batch) -> Result<(), ConsumeError> {
        self.log
            .lock()
            .push(format!("consume {} {}", self.name, batch.item_count()));
        match &self.next {
            Some(n) => n.consume(batch).await,
            None => Ok(()),
        }
    }
}

#[async_trait]
impl Lifecycle for Stage {
    async fn start(&self) -> Result<(), ComponentError> {
        self.log.lock().push(format!("start {}", self.name));
        Ok(())
    }
    async fn shutdown(&self) -> Result<(), ComponentError> {
        self.log.lock().push(format!("stop {}", self.name));
        Ok(())
    }
}

impl Processor for Stage {}
impl Receiver for Stage {}
impl Connector for Stage {}

struct SenderStage(Stage);

#[async_trait]
impl Lifecycle for SenderStage {
    async fn start(&self) -> Result<(), ComponentError> {
        self.0.start().await
    }
    async fn shutdown(&self) -> Result<(), ComponentError> {
        self.0.shutdown().await
    }
}

#[async_trait]
impl Sender for SenderStage {
    async fn send(&self, batch: Batch) -> Result<(), ConsumeError> {
        self.0.consume(batch).await
    }
}

struct F(Log, Arc<Mutex<Option<ReceiverConsumers>>>);

impl ReceiverFactory for F {
    fn create(
        &self,
        ctx: &CreateContext,
        _c: &Value,
        consumers: ReceiverConsumers,
    ) -> Result<Arc<dyn Receiver>, BuildError> {
        *self.1.lock() = Some(consumers);
        Ok(Arc::new(Stage {
            name: ctx.id.to_string(),
            log: self.0.clone(),
            next: None,
        }))
    }
}
impl ProcessorFactory for F {
    fn create(
        &self,
        ctx: &CreateContext,
        c: &Value,
        _s: Signal,
        next: ConsumerRef,
    ) -> Result<Arc<dyn Processor>, BuildError> {
        if c.get("bad").is_some() {
            return Err(BuildError::new("bad: this key is wrong"));
        }
        Ok(Arc::new(Stage {
            name: ctx.id.to_string(),
            log: self.0.clone(),
            next: Some(next),
        }))
    }
}
impl ExporterFactory for F {
    fn create(
        &self,
        ctx: &CreateContext,
        _c: &Value,
        _s: Signal,
    ) -> Result<ExporterParts, BuildError> {
        Ok(ExporterParts {
            sender: Arc::new(SenderStage(Stage {
                name: ctx.id.to_string(),
                log: self.0.clone(),
                next: None,
            })),
            helper: wasmcol_config::exporterhelper::HelperConfig::disabled(),
        })
    }
}
impl ConnectorFactory for F {
    fn create(
        &self,
        ctx: &CreateContext,
        _c: &Value,
        _f: Signal,
        _t: Signal,
        routes: ConnectorRoutes,
    ) -> Result<Arc<dyn Connector>, BuildError> {
        let next = FanOut::wrap(routes.pipelines.values().map(|(c, _)| c.clone()).collect());
        Ok(Arc::new(Stage {
            name: ctx.id.to_string(),
            log: self.0.clone(),
            next: Some(next),
        }))
    }
}

fn registry(log: &Log, consumers: &Arc<Mutex<Option<ReceiverConsumers>>>) -> Registry {
    let mut r = Registry::new();
    let f = Arc::new(F(log.clone(), consumers.clone()));
    r.register("rcv", &[], "", Factory::Receiver(f.clone()));
    r.register("proc", &[], "", Factory::Processor(f.clone()));
    r.register("exp", &["old_exp"], "", Factory::Exporter(f.clone()));
    r.register("conn", &[], "", Factory::Connector(f));
    r
}

const TWO_PIPELINES: &str = r#"
receivers: {rcv: }
processors: {proc/a: , proc/b: }
exporters: {exp: , old_exp/x: }
connectors: {conn: }
service:
  pipelines:
    traces/in:
      receivers: [rcv]
      processors: [proc/a]
      exporters: [conn]
    traces/out:
      receivers: [conn]
      processors: [proc/b]
      exporters: [exp, old_exp/x]
"#;

#[tokio::test]
async fn data_and_lifecycle_follow_the_pipeline_order() {
    let log: Log = Default::default();
    let consumers = Default::default();
    let cfg = load_str(TWO_PIPELINES, &|_| None).unwrap();
    let svc = build(&cfg, &registry(&log, &consumers), &Metrics::new()).unwrap();
    svc.start().await.unwrap();
    assert!(svc.status().is_ready());
    let entry = consumers
        .lock()
        .as_ref()
        .unwrap()
        .get(Signal::Traces)
        .unwrap()
        .clone();
    entry.consume(Batch::empty(Signal::Traces)).await.unwrap();
    assert!(svc.shutdown().await);
    let log = log.lock().clone();
    let pos = |s: &str| {
        log.iter()
            .position(|l| l == s)
            .unwrap_or_else(|| panic!("{s} missing in {log:?}"))
    };
    // Receivers start last and stop first; processors stop in data-flow order; exporters after.
    assert!(pos("start exp") < pos("start proc/b") && pos("start proc/b") < pos("start conn"));
    assert!(pos("start conn") < pos("start proc/a") && pos("start proc/a") < pos("start rcv"));
    assert!(pos("stop rcv") < pos("stop proc/a") && pos("stop proc/a") < pos("stop conn"));
    assert!(pos("stop conn") < pos("stop proc/b") && pos("stop proc/b") < pos("stop exp"));
    let flow: Vec<_> = log
        .iter()
        .filter(|l| l.starts_with("consume"))
        .cloned()
        .collect();
    assert_eq!(
        flow,
        [
            "consume proc/a 0",
            "consume conn 0",
            "consume proc/b 0",
            "consume exp 0",
            "consume old_exp/x 0"
        ]
    );
}

#[test]
fn every_problem_is_reported() {
    let log: Log = Default::default();
    let consumers = Default::default();
    let cfg = load_str(
        r#"
receivers: {rcv: , nope: }
processors: {proc: {bad: 1}}
exporters: {exp: }
connectors: {conn: , conn/lonely: }
extensions: {}
service:
  extensions: [ghost]
  pipelines:
    traces:
      receivers: [rcv, conn]
      processors: [proc, proc, missing]
      exporters: [exp, undefined]
    logs:
      receivers: [rcv]
      exporters: [conn/lonely]
    metrics:
      receivers: [rcv]
"#,
        &|_| None,
    )
    .unwrap();
    let problems = build(&cfg, &registry(&log, &consumers), &Metrics::new())
        .err()
        .unwrap();
    // A component's problem carries the component as a field, not only in its text.
    let bad_key = problems
        .0
        .iter()
        .find(|e| e.to_string().contains("this key is wrong"))
        .expect("the processor's bad key is reported");
    assert_eq!(
        bad_key.component().map(|(k, id)| (k, id.to_string())),
        Some((Kind::Processor, "proc".to_string()))
    );
    let errs = problems.to_string();
    for want in [
        "receivers::nope: unknown type: \"nope\"",
        "processors::proc: bad: this key is wrong",
        "service::extensions: references extension \"ghost\" which is not configured",
        "service::pipelines::traces: references processor \"proc\" multiple times",
        "service::pipelines::traces: references processor \"missing\" which is not configured",
        "service::pipelines::traces: references exporter \"undefined\" which is not configured",
        "service::pipelines::metrics: must have at least one exporter",
        "connectors::conn: connector \"conn\" used as receiver in [traces] pipeline but not used in any supported exporter pipeline",
        "connectors::conn/lonely: connector \"conn/lonely\" used as exporter in [logs] pipeline but not used in any supported receiver pipeline",
    ] {
        assert!(errs.contains(want), "missing {want:?} in:\n{errs}");
    }
}

#[test]
fn connector_cycles_are_rejected() {
    let log: Log = Default::default();
    let consumers = Default::default();
    let cfg = load_str(
        r#"
receivers: {rcv: }
exporters: {exp: }
connectors: {conn: }
service:
  pipelines:
    traces/a:
      receivers: [rcv, conn]
      exporters: [conn, exp]
"#,
        &|_| None,
    )
    .unwrap();
    let errs = build(&cfg, &registry(&log, &consumers), &Metrics::new())
        .err()
        .unwrap()
        .to_string();
    assert!(errs.contains("cycle detected"), "{errs}");
}
