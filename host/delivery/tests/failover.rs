//! The failover connector over real exporter chains with in-process senders.
// Test code: a failed expectation is reported by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use support::*;
use wasmcol_config::exporterhelper::{HelperConfig, QueueConfig, RetryConfig};
use wasmcol_config::{GoDuration, Kind, PipelineId, Value};
use wasmcol_core::{ConnectorFactory, ConnectorRoutes, ConsumeError, Exporter, Metrics, Signal};
use wasmcol_delivery::FailoverFactory;

fn pid(s: &str) -> PipelineId {
    s.parse().unwrap()
}

fn routes(list: Vec<(&str, Arc<dyn Exporter>)>) -> ConnectorRoutes {
    let mut r = ConnectorRoutes::default();
    for (p, e) in list {
        let h = e.health().into_iter().collect();
        r.pipelines.insert(pid(p), (e, h));
    }
    r
}

fn connector(
    metrics: &Metrics,
    yaml: &str,
    routes: ConnectorRoutes,
) -> Result<Arc<dyn wasmcol_core::Connector>, String> {
    let c = ctx(Kind::Connector, "failover", metrics, Default::default());
    let v: Value = serde_yaml::from_str(yaml).unwrap();
    FailoverFactory
        .create(&c, &v, Signal::Traces, Signal::Traces, routes)
        .map_err(|e| e.to_string())
}

fn queued(max_elapsed: u64) -> HelperConfig {
    HelperConfig {
        timeout: Some(GoDuration::secs(5)),
        retry: RetryConfig {
            max_elapsed_time: GoDuration::secs(max_elapsed),
            ..RetryConfig::default()
        },
        queue: QueueConfig {
            queue_size: 100_000,
            ..QueueConfig::default()
        },
    }
}

fn gauge(metrics: &Metrics, line_start: &str) -> Option<f64> {
    let (name, labels) = line_start.split_once('{').unwrap_or((line_start, ""));
    series(metrics, name, labels)
}

const TWO_LEVELS: &str =
    "priority_levels: [[traces/primary], [traces/failover]]\nretry_interval: 30s\n";

/// Scenario: the seed topology in process — both levels' exporters have memory queues with
/// retries and send to the same backend, which refuses for two minutes and then recovers.
/// Guarantees: every consume succeeds throughout; the connector moves to the failover level
/// because the primary's sends fail (not because `consume` failed); after recovery new data
/// goes to the primary again; every span id arrives; the metrics show both switches.
#[tokio::test(start_paused = true)]
async fn fails_over_on_delivery_outcomes_and_recovers() {
    let metrics = Metrics::new();
    let backend = FakeSender::new(Mode::Accept);
    let primary = exporter(
        "otlp/primary",
        &metrics,
        Default::default(),
        backend.clone(),
        queued(0),
    );
    let failover = exporter(
        "otlp/failover",
        &metrics,
        Default::default(),
        backend.clone(),
        queued(0),
    );
    primary.start().await.unwrap();
    failover.start().await.unwrap();
    let conn = connector(
        &metrics,
        TWO_LEVELS,
        routes(vec![
            ("traces/primary", primary.clone()),
            ("traces/failover", failover.clone()),
        ]),
    )
    .unwrap();
    let sent_by = |name: &str| {
        counter(
            &metrics,
            "otelcol_exporter_sent_spans",
            &[("exporter", name)],
        )
    };

    let next = std::cell::Cell::new(0u64);
    let send_for = |secs: u64| {
        let conn = conn.clone();
        let start = next.get();
        next.set(start + secs * 10);
        async move {
            for i in start..start + secs * 10 {
                conn.consume(traces(i, 1))
                    .await
                    .expect("senders see success throughout");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    send_for(10).await;
    assert_eq!(sent_by("otlp/primary"), 100);
    assert_eq!(sent_by("otlp/failover"), 0);

    backend.set(Mode::Refuse(None));
    send_for(120).await;
    assert_eq!(
        counter(
            &metrics,
            "otelcol_connector_failover_count",
            &[("connector", "failover"), ("level", "0")]
        ),
        1
    );
    assert_eq!(
        gauge(&metrics, "wasmcol_connector_failover_level{"),
        Some(1.0)
    );
    let failover_queue = gauge(
        &metrics,
        "otelcol_exporter_queue_size{exporter=\"otlp/failover\"",
    )
    .unwrap();
    assert!(
        failover_queue > 1000.0,
        "failover level should buffer the outage: {failover_queue}"
    );

    backend.set(Mode::Accept);
    send_for(120).await;
    assert_eq!(
        gauge(&metrics, "wasmcol_connector_failover_level{"),
        Some(0.0)
    );
    assert!(
        counter(
            &metrics,
            "wasmcol_connector_failover_recovered",
            &[("connector", "failover")]
        ) >= 1
    );
    let total = next.get();
    assert!(
        backend
            .wait_until(Duration::from_secs(300), |s| s.distinct() as u64 == total)
            .await
    );
    assert_eq!(backend.distinct() as u64, total, "span ids lost");
    assert_eq!(
        gauge(
            &metrics,
            "otelcol_exporter_queue_size{exporter=\"otlp/failover\""
        ),
        Some(0.0)
    );
    // Fresh data after recovery went to the primary.
    let before = sent_by("otlp/primary");
    send_for(5).await;
    assert!(
        backend
            .wait_until(Duration::from_secs(30), |s| s.distinct() as u64
                == total + 50)
            .await
    );
    assert_eq!(sent_by("otlp/primary"), before + 50);
}

/// Scenario: levels without queues (synchronous exporters); the primary refuses.
/// Guarantees: a refused consume moves the batch and later traffic to the next level at once
/// (upstream's behaviour); after `retry_interval` a live batch probes the primary and, once
/// it is accepted, traffic returns there without duplicating the probe.
#[tokio::test(start_paused = true)]
async fn synchronous_levels_fail_over_on_errors_and_probe() {
    let metrics = Metrics::new();
    let a = FakeSender::new(Mode::Permanent);
    let b = FakeSender::new(Mode::Accept);
    let sync = HelperConfig::disabled();
    let pa = exporter(
        "otlp/a",
        &metrics,
        Default::default(),
        a.clone(),
        sync.clone(),
    );
    let pb = exporter("otlp/b", &metrics, Default::default(), b.clone(), sync);
    let conn = connector(
        &metrics,
        "priority_levels: [[traces/a], [traces/b]]\nretry_interval: 10s\n",
        routes(vec![("traces/a", pa), ("traces/b", pb)]),
    )
    .unwrap();
    conn.consume(traces(0, 1)).await.unwrap();
    assert_eq!(b.distinct(), 1);
    for i in 1..5 {
        conn.consume(traces(i, 1)).await.unwrap();
    }
    assert_eq!(
        a.attempts(),
        1,
        "an unhealthy level is not tried again before the probe"
    );
    a.set(Mode::Accept);
    tokio::time::sleep(Duration::from_secs(11)).await;
    conn.consume(traces(100, 1)).await.unwrap();
    assert_eq!(a.distinct(), 1, "probe carried live data");
    assert!(
        !b.received.lock().contains_key(&100),
        "a proven synchronous probe is not duplicated"
    );
    conn.consume(traces(101, 1)).await.unwrap();
    assert!(a.received.lock().contains_key(&101));
}

/// Scenario: every level refuses.
/// Guarantees: the sender gets a retryable error naming the situation, like upstream's
/// "All provided pipelines return errors".
#[tokio::test(start_paused = true)]
async fn all_levels_refusing_is_an_error() {
    let metrics = Metrics::new();
    let a = FakeSender::new(Mode::Refuse(Some(Duration::from_secs(3))));
    let sync = HelperConfig::disabled();
    let pa = exporter(
        "otlp/a",
        &metrics,
        Default::default(),
        a.clone(),
        sync.clone(),
    );
    let pb = exporter("otlp/b", &metrics, Default::default(), a, sync);
    let conn = connector(
        &metrics,
        "priority_levels: [[traces/a], [traces/b]]\n",
        routes(vec![("traces/a", pa), ("traces/b", pb)]),
    )
    .unwrap();
    let err = conn.consume(traces(0, 1)).await.unwrap_err();
    assert!(
        err.to_string()
            .starts_with("All provided pipelines return errors"),
        "{err}"
    );
    assert!(matches!(
        err,
        ConsumeError::Retryable {
            retry_after: Some(_),
            ..
        }
    ));
}

/// Scenario: config shapes from three upstream generations, and mistakes.
/// Guarantees: deprecated keys and the connector-level queue are accepted; unknown keys,
/// empty levels, pipelines that do not receive from the connector and a zero interval are
/// errors naming the key path.
#[tokio::test]
async fn config_shapes() {
    let metrics = Metrics::new();
    let mk = || {
        let e = exporter(
            "otlp/a",
            &Metrics::new(),
            Default::default(),
            FakeSender::new(Mode::Accept),
            HelperConfig::disabled(),
        );
        routes(vec![("traces/a", e.clone()), ("traces/b", e)])
    };
    for ok in [
        "priority_levels: [[traces/a], [traces/b]]\nretry_interval: 5m\nretry_gap: 30s\nmax_retries: 10\n",
        "priority_levels: [[traces/a, traces/b]]\nstrategy: standard\nstandard:\n  retry_interval: 1m\n",
        "priority_levels: [[traces/a]]\nsending_queue:\n  enabled: true\n  num_consumers: 2\n",
        "priority_levels: [[traces/a]]\nhealth:\n  failure_threshold: 5\n  queue_high_water: 0.5\n",
    ] {
        connector(&metrics, ok, mk()).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    for (bad, expect) in [
        (
            "priority_levels: []\n",
            "priority_levels: No pipelines are defined in the priority list",
        ),
        (
            "priority_levels: [[traces/zz]]\n",
            "priority_levels[0][0]: pipeline \"traces/zz\" does not receive",
        ),
        (
            "priority_levels: [[traces/a]]\nretry_interval: 0s\n",
            "retry_interval: Retry interval must be positive",
        ),
        (
            "priority_levels: [[traces/a]]\nstrategy: fancy\n",
            "strategy: strategy is invalid",
        ),
        (
            "priority_levels: [[traces/a]]\nretry_intervall: 1s\n",
            "unknown field `retry_intervall`",
        ),
    ] {
        let err = connector(&metrics, bad, mk())
            .err()
            .unwrap_or_else(|| panic!("accepted: {bad}"));
        assert!(err.contains(expect), "{bad}: {err}");
    }
}
