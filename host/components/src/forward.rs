//! The `forward` connector: hands what one pipeline exports to every pipeline that lists the
//! connector as a receiver, for the same signal. Errors from those pipelines come back joined,
//! as upstream's fan-out joins them.

use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;
use wasmcol_config::Value;
use wasmcol_core::{
    Batch, BuildError, ConnectorFactory, ConnectorRoutes, ConsumeError, Consumer, ConsumerRef,
    CreateContext, FanOut, Lifecycle, Signal,
};

/// `connectors: forward:` takes no keys, as upstream.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardConfig {}

/// Builds `forward` connectors.
pub struct ForwardFactory;

impl ConnectorFactory for ForwardFactory {
    fn create(
        &self,
        _ctx: &CreateContext,
        config: &Value,
        from: Signal,
        to: Signal,
        routes: ConnectorRoutes,
    ) -> Result<Arc<dyn wasmcol_core::Connector>, BuildError> {
        let _: ForwardConfig = wasmcol_config::decode(config).map_err(BuildError::new)?;
        if from != to {
            return Err(BuildError::new(format!(
                "forward connects {from} to {from} only, not to {to}"
            )));
        }
        let targets: Vec<ConsumerRef> = routes.pipelines.into_values().map(|(c, _)| c).collect();
        if targets.is_empty() {
            // An empty fan-out would acknowledge data and drop it.
            return Err(BuildError::new("forward has no pipeline to forward to"));
        }
        Ok(Arc::new(Forward {
            next: FanOut::wrap(targets),
        }))
    }
}

/// A `forward` connector instance.
pub struct Forward {
    next: ConsumerRef,
}

#[async_trait]
impl Consumer for Forward {
    async fn consume(&self, batch: Batch) -> Result<(), ConsumeError> {
        self.next.consume(batch).await
    }

    fn mutates_data(&self) -> bool {
        self.next.mutates_data()
    }

    fn answers_on_enqueue(&self) -> bool {
        self.next.answers_on_enqueue()
    }

    fn adopt_batching(&self, plan: &wasmcol_config::exporterhelper::QueueBatchConfig) {
        self.next.adopt_batching(plan)
    }
}

#[async_trait]
impl Lifecycle for Forward {}

impl wasmcol_core::Connector for Forward {}

#[cfg(test)]
mod tests {
    use wasmcol_config::{Kind, PipelineId};

    use super::*;
    use crate::testutil::{Sink, ctx, spans, yaml};

    fn routes(sinks: &[Arc<Sink>]) -> ConnectorRoutes {
        let mut r = ConnectorRoutes::default();
        for (i, s) in sinks.iter().enumerate() {
            let id: PipelineId = format!("traces/{i}").parse().unwrap();
            r.pipelines
                .insert(id, (s.clone() as ConsumerRef, Vec::new()));
        }
        r
    }

    #[tokio::test]
    async fn feeds_every_route_and_joins_errors() {
        let c = ctx(Kind::Connector, "forward");
        let (a, b) = (Sink::new(), Sink::new());
        let fwd = ForwardFactory
            .create(
                &c,
                &yaml(""),
                Signal::Traces,
                Signal::Traces,
                routes(&[a.clone(), b.clone()]),
            )
            .unwrap();
        fwd.consume(spans("x", 4)).await.unwrap();
        assert_eq!(a.sizes(), [4]);
        assert_eq!(b.sizes(), [4]);

        *b.fail_with.lock() = Some(ConsumeError::retryable("b down"));
        let e = fwd.consume(spans("y", 1)).await.unwrap_err();
        assert_eq!(e, ConsumeError::retryable("b down"));
        assert_eq!(a.sizes(), [4, 1], "the healthy route still got the data");
    }

    #[test]
    fn rejects_keys_signal_changes_and_no_routes() {
        let c = ctx(Kind::Connector, "forward");
        let one = || routes(&[Sink::new()]);
        let e = ForwardFactory
            .create(&c, &yaml("foo: 1"), Signal::Logs, Signal::Logs, one())
            .err()
            .unwrap();
        assert_eq!(e.0[0].path, "foo", "{e}");
        assert!(e.0[0].message.starts_with("unknown field `foo`"), "{e}");
        assert!(ForwardFactory.supports(Signal::Logs, Signal::Logs));
        assert!(!ForwardFactory.supports(Signal::Logs, Signal::Traces));
        assert!(
            ForwardFactory
                .create(&c, &yaml(""), Signal::Logs, Signal::Traces, one())
                .is_err()
        );
        assert!(
            ForwardFactory
                .create(
                    &c,
                    &yaml(""),
                    Signal::Logs,
                    Signal::Logs,
                    ConnectorRoutes::default()
                )
                .is_err()
        );
    }
}
