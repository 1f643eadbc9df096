//! The registry as an OTLP metrics request, the shape upstream's periodic reader pushes:
//! counters as cumulative monotonic sums, gauges, explicit-bucket histograms, upstream's units.

use std::sync::atomic::Ordering;
use std::time::SystemTime;

use wasmcol_pdata::ExportMetricsServiceRequest;
use wasmcol_pdata::proto::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use wasmcol_pdata::proto::metrics::v1::{
    AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, metric::Data, number_data_point,
};
use wasmcol_pdata::proto::resource::v1::Resource;

use super::{Labels, Metrics, Series, is_observed_sum, metric_unit};

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn attr(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_owned())),
        }),
        ..Default::default()
    }
}

fn attrs(l: &Labels) -> Vec<KeyValue> {
    l.iter().map(|(k, v)| attr(k, v)).collect()
}

struct Times {
    start: u64,
    now: u64,
}

impl Times {
    fn point(&self, l: &Labels, value: number_data_point::Value) -> NumberDataPoint {
        NumberDataPoint {
            attributes: attrs(l),
            start_time_unix_nano: self.start,
            time_unix_nano: self.now,
            value: Some(value),
            ..Default::default()
        }
    }
}

fn cumulative_sum(points: Vec<NumberDataPoint>) -> Data {
    Data::Sum(Sum {
        data_points: points,
        aggregation_temporality: AggregationTemporality::Cumulative as i32,
        is_monotonic: true,
    })
}

fn histogram_point(t: &Times, l: &Labels, h: &super::Histogram) -> HistogramDataPoint {
    let counts: Vec<u64> =
        h.0.counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
    HistogramDataPoint {
        attributes: attrs(l),
        start_time_unix_nano: t.start,
        time_unix_nano: t.now,
        count: counts.iter().sum(),
        sum: Some(h.0.sum_micros.load(Ordering::Relaxed) as f64 / 1e6),
        bucket_counts: counts,
        explicit_bounds: h.0.bounds.clone(),
        ..Default::default()
    }
}

/// One family as an OTLP metric; `None` when it has no series.
fn metric(
    name: &str,
    help: &str,
    series: &std::collections::BTreeMap<Labels, Series>,
    t: &Times,
) -> Option<Metric> {
    use number_data_point::Value as V;
    let first = series.values().next()?;
    let data = match first {
        Series::Counter(_) => cumulative_sum(
            series
                .iter()
                .filter_map(|(l, s)| match s {
                    Series::Counter(c) => Some(t.point(l, V::AsInt(c.get() as i64))),
                    _ => None,
                })
                .collect(),
        ),
        Series::Gauge(_) | Series::GaugeFn(_) => {
            let points = series
                .iter()
                .filter_map(|(l, s)| match s {
                    Series::Gauge(g) => Some(t.point(l, V::AsInt(g.get()))),
                    Series::GaugeFn(f) => Some(t.point(l, V::AsDouble(f()))),
                    _ => None,
                })
                .collect();
            if is_observed_sum(name) {
                cumulative_sum(points)
            } else {
                Data::Gauge(Gauge {
                    data_points: points,
                })
            }
        }
        Series::Histogram(_) => Data::Histogram(Histogram {
            data_points: series
                .iter()
                .filter_map(|(l, s)| match s {
                    Series::Histogram(h) => Some(histogram_point(t, l, h)),
                    _ => None,
                })
                .collect(),
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
        }),
    };
    Some(Metric {
        name: name.to_owned(),
        description: help.to_owned(),
        unit: metric_unit(name).to_owned(),
        data: Some(data),
        ..Default::default()
    })
}

impl Metrics {
    /// Every series as one OTLP request under `resource`, values cumulative since the
    /// registry was made. `target_info` (the Prometheus form of the resource) is left out.
    pub fn to_otlp(&self, resource: &[(String, String)]) -> ExportMetricsServiceRequest {
        let t = Times {
            start: nanos(self.started),
            now: nanos(SystemTime::now()),
        };
        let metrics = {
            let fams = self.families.lock();
            fams.iter()
                .filter(|(name, _)| name.as_str() != "target_info")
                .filter_map(|(name, fam)| metric(name, &fam.help, &fam.series, &t))
                .collect()
        };
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(Resource {
                    attributes: resource.iter().map(|(k, v)| attr(k, v)).collect(),
                    ..Default::default()
                }),
                scope_metrics: vec![ScopeMetrics {
                    scope: Some(InstrumentationScope {
                        name: "wasmcol".into(),
                        version: env!("CARGO_PKG_VERSION").into(),
                        ..Default::default()
                    }),
                    metrics,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        }
    }
}
