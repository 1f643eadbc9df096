//! Per-component numbers read from the collector's own metrics in Prometheus text: what the
//! `zpages` graph and `wasmcol top` show. Both read the same exposition (the zpages extension
//! renders the registry in process, `top` scrapes the metrics endpoint), so the two views
//! agree with what Prometheus sees.

use std::collections::BTreeMap;
use std::time::Instant;

use serde::Serialize;

/// One sample: metric name (without a counter's `_total`), labels and value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Name, `_total` removed.
    pub name: String,
    /// Label pairs as written.
    pub labels: Vec<(String, String)>,
    /// Value.
    pub value: f64,
}

/// The samples of a Prometheus text exposition; comments and lines that do not parse are
/// skipped (a view must not fail on a series it does not know).
pub fn parse(text: &str) -> Vec<Sample> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (name, labels, rest) = match line.find('{') {
        Some(open) => {
            let close = line.rfind('}')?;
            (
                &line[..open],
                parse_labels(&line[open + 1..close])?,
                &line[close + 1..],
            )
        }
        None => {
            let (n, r) = line.split_once(char::is_whitespace)?;
            (n, Vec::new(), r)
        }
    };
    let value = rest.split_whitespace().next()?.parse().ok()?;
    let name = name.strip_suffix("_total").unwrap_or(name).to_owned();
    Some(Sample {
        name,
        labels,
        value,
    })
}

/// `a="x",b="y\"z"`: values may hold escaped quotes, backslashes and newlines.
fn parse_labels(s: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Some(out);
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if chars.next()? != '"' {
            return None;
        }
        let mut value = String::new();
        loop {
            match chars.next()? {
                '"' => break,
                '\\' => match chars.next()? {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                c => value.push(c),
            }
        }
        out.push((key.trim().to_owned(), value));
    }
}

/// What a component is in the graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Receives from outside.
    Receiver,
    /// Transforms inside a pipeline.
    Processor,
    /// Sends outside.
    Exporter,
    /// Links pipelines.
    Connector,
}

impl Role {
    /// `receiver`, `processor`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Receiver => "receiver",
            Role::Processor => "processor",
            Role::Exporter => "exporter",
            Role::Connector => "connector",
        }
    }
}

/// Cumulative numbers of one component.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Totals {
    /// Items accepted (receivers) or passed in (processors).
    pub accepted: f64,
    /// Items sent (exporters) or passed on (processors).
    pub sent: f64,
    /// Items refused (receivers) or in failed send attempts (exporters).
    pub failed: f64,
    /// Queue fill, summed over signals, in the queue's sizer units.
    pub queue_size: Option<f64>,
    /// Queue capacity, summed over signals.
    pub queue_capacity: Option<f64>,
    /// The failover connector's current priority level (0 = highest).
    pub level: Option<f64>,
    /// Failed plugin calls (traps, timeouts, memory, errors).
    pub errors: f64,
}

/// Per component (role, id), the totals found in a scrape.
pub type Snapshot = BTreeMap<(Role, String), Totals>;

/// The role a metric belongs to, the label naming the component, and the field it feeds.
type Route = (Role, &'static str, fn(&mut Totals, f64));

/// Which field a metric feeds, and the label naming the component.
fn route(name: &str) -> Option<Route> {
    fn prefix(name: &str, p: &str) -> bool {
        name.strip_prefix(p).is_some_and(|rest| !rest.is_empty())
    }
    let r: Route = if prefix(name, "otelcol_receiver_accepted_") {
        (Role::Receiver, "receiver", |t, v| t.accepted += v)
    } else if prefix(name, "otelcol_receiver_refused_") {
        (Role::Receiver, "receiver", |t, v| t.failed += v)
    } else if name == "otelcol_processor_incoming_items" {
        (Role::Processor, "processor", |t, v| t.accepted += v)
    } else if name == "otelcol_processor_outgoing_items" {
        (Role::Processor, "processor", |t, v| t.sent += v)
    } else if name == "wasmcol_plugin_errors" {
        (Role::Processor, "processor", |t, v| t.errors += v)
    } else if prefix(name, "otelcol_exporter_sent_") {
        (Role::Exporter, "exporter", |t, v| t.sent += v)
    } else if prefix(name, "otelcol_exporter_send_failed_") {
        (Role::Exporter, "exporter", |t, v| t.failed += v)
    } else if name == "otelcol_exporter_queue_size" {
        (Role::Exporter, "exporter", |t, v| {
            *t.queue_size.get_or_insert(0.0) += v
        })
    } else if name == "otelcol_exporter_queue_capacity" {
        (Role::Exporter, "exporter", |t, v| {
            *t.queue_capacity.get_or_insert(0.0) += v
        })
    } else if name == "wasmcol_connector_failover_level" {
        (Role::Connector, "connector", |t, v| t.level = Some(v))
    } else {
        return None;
    };
    Some(r)
}

/// The per-component totals in `samples`.
pub fn snapshot(samples: &[Sample]) -> Snapshot {
    let mut out = Snapshot::new();
    for s in samples {
        let Some((role, label, add)) = route(&s.name) else {
            continue;
        };
        let Some((_, id)) = s.labels.iter().find(|(k, _)| k == label) else {
            continue;
        };
        add(out.entry((role, id.clone())).or_default(), s.value);
    }
    out
}

/// Items per second into and out of a component over the last interval.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Rates {
    /// Accepted (or passed in) per second.
    pub accepted: f64,
    /// Sent (or passed on) per second.
    pub sent: f64,
}

/// Rates from two snapshots `secs` apart; a counter that went down (a restart) counts from 0.
pub fn rates(before: &Snapshot, after: &Snapshot, secs: f64) -> BTreeMap<(Role, String), Rates> {
    let per_s = |a: f64, b: f64| {
        if secs <= 0.0 {
            0.0
        } else if b >= a {
            (b - a) / secs
        } else {
            b / secs
        }
    };
    after
        .iter()
        .map(|(k, t)| {
            let prev = before.get(k).cloned().unwrap_or_default();
            let r = Rates {
                accepted: per_s(prev.accepted, t.accepted),
                sent: per_s(prev.sent, t.sent),
            };
            (k.clone(), r)
        })
        .collect()
}

/// Keeps the last snapshot so each new one yields rates over at least `min_secs`; requests
/// in between reuse the last rates, so many viewers do not shorten the interval.
#[derive(Debug)]
pub struct Sampler {
    min_secs: f64,
    prev: Option<(Instant, Snapshot)>,
    last: BTreeMap<(Role, String), Rates>,
}

impl Sampler {
    /// A sampler measuring over at least `min_secs`.
    pub fn new(min_secs: f64) -> Self {
        Sampler {
            min_secs,
            prev: None,
            last: BTreeMap::new(),
        }
    }

    /// Takes `now` and returns the rates to show with it.
    pub fn observe(&mut self, now: &Snapshot) -> BTreeMap<(Role, String), Rates> {
        let t = Instant::now();
        match &self.prev {
            None => self.prev = Some((t, now.clone())),
            Some((at, before)) => {
                let secs = t.duration_since(*at).as_secs_f64();
                if secs >= self.min_secs {
                    self.last = rates(before, now, secs);
                    self.prev = Some((t, now.clone()));
                }
            }
        }
        self.last.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP otelcol_receiver_accepted_spans Number of spans.
# TYPE otelcol_receiver_accepted_spans counter
otelcol_receiver_accepted_spans_total{receiver="otlp",transport="grpc"} 10
otelcol_receiver_accepted_spans_total{receiver="otlp",transport="http"} 5
otelcol_receiver_refused_spans_total{receiver="otlp",transport="grpc"} 1
otelcol_processor_incoming_items_total{otel_signal="traces",processor="batch"} 15
otelcol_processor_outgoing_items_total{otel_signal="traces",processor="batch"} 14
wasmcol_plugin_errors_total{processor="wasm/x",reason="trap"} 2
otelcol_exporter_sent_spans_total{exporter="otlp/a\"b"} 14
otelcol_exporter_queue_size{data_type="traces",exporter="otlp/a\"b"} 3
otelcol_exporter_queue_capacity{data_type="traces",exporter="otlp/a\"b"} 1000
wasmcol_connector_failover_level{connector="failover"} 1
otelcol_process_uptime 12.5
garbage line
"#;

    #[test]
    fn totals_per_component() {
        let s = snapshot(&parse(TEXT));
        let get = |r, id: &str| s.get(&(r, id.to_owned())).cloned().unwrap();
        let otlp = get(Role::Receiver, "otlp");
        assert_eq!((otlp.accepted, otlp.failed), (15.0, 1.0));
        let batch = get(Role::Processor, "batch");
        assert_eq!((batch.accepted, batch.sent), (15.0, 14.0));
        assert_eq!(get(Role::Processor, "wasm/x").errors, 2.0);
        let e = get(Role::Exporter, "otlp/a\"b");
        assert_eq!(
            (e.sent, e.queue_size, e.queue_capacity),
            (14.0, Some(3.0), Some(1000.0))
        );
        assert_eq!(get(Role::Connector, "failover").level, Some(1.0));
        assert_eq!(s.len(), 5);
    }

    #[test]
    fn rates_over_an_interval() {
        let a = snapshot(&parse(TEXT));
        let b = snapshot(&parse(
            &TEXT
                .replace("\"grpc\"} 10", "\"grpc\"} 30")
                .replace("} 14\n", "} 4\n"),
        ));
        let r = rates(&a, &b, 2.0);
        assert_eq!(r[&(Role::Receiver, "otlp".to_owned())].accepted, 10.0);
        // Outgoing fell from 14 to 4: a restart, counted from 0.
        assert_eq!(r[&(Role::Processor, "batch".to_owned())].sent, 2.0);
        assert_eq!(
            rates(&a, &b, 0.0)[&(Role::Receiver, "otlp".to_owned())].accepted,
            0.0
        );
    }
}
