//! The `probabilistic_sampler` processor in upstream's `hash_seed` mode, bit for bit:
//! FNV-1a-32 over the little-endian seed followed by the trace id (or a log record
//! attribute), 14-bit buckets, a float32 scaled threshold, the OTel tracestate `th`/`rv`
//! written on kept spans, `sampling.priority` overrides and `fail_closed`.
//!
//! The `proportional` and `equalizing` modes are not implemented; configuring them is an
//! error rather than a silent fallback.

use std::collections::BTreeMap;

use serde::Deserialize;
use wasmcol_sdk::metrics::counter_add;
use wasmcol_sdk::{
    ConfigErrors, Level, Logs, Outcome, ProcessError, Processor, SetMode, Signal, Traces, Value,
};

const NUM_BUCKETS: u32 = 1 << 14;
const BUCKET_MASK: u32 = NUM_BUCKETS - 1;

/// The processor's config (upstream keys and defaults).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Percentage of traces (or records) kept, as float32.
    #[serde(default)]
    pub sampling_percentage: f32,
    /// Seed mixed into the hash; equal seeds in a fleet make equal decisions.
    #[serde(default)]
    pub hash_seed: u32,
    /// `hash_seed` (the default).
    #[serde(default)]
    pub mode: String,
    /// Drop items that carry no usable randomness (default true).
    #[serde(default = "default_true")]
    pub fail_closed: bool,
    /// Hex digits of encoded thresholds (1..=14); accepted and validated, hash_seed thresholds
    /// need at most 4.
    #[serde(default = "default_precision")]
    pub sampling_precision: u32,
    /// Logs: `traceID` (default) or `record`.
    #[serde(default)]
    pub attribute_source: String,
    /// Logs with `attribute_source: record`: the attribute hashed instead of the trace id.
    #[serde(default)]
    pub from_attribute: String,
    /// Logs: a record attribute holding a percentage that overrides the configured one.
    #[serde(default)]
    pub sampling_priority: String,
}

fn default_true() -> bool {
    true
}
fn default_precision() -> u32 {
    4
}

/// The processor.
#[derive(Debug)]
pub struct Sampler {
    seed: u32,
    scaled: u32,
    fail_closed: bool,
    from_record: Option<String>,
    priority_attribute: String,
}

/// FNV-1a, 32 bits.
pub fn fnv1a32(parts: &[&[u8]]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for part in parts {
        for b in *part {
            h ^= u32::from(*b);
            h = h.wrapping_mul(0x0100_0193);
        }
    }
    h
}

/// `uint32(float32(pct) * float32(16384/100))`, with upstream's clamp at 100%.
pub fn scaled_rate(pct: f32) -> u32 {
    let pct = pct.min(100.0);
    let factor: f32 = NUM_BUCKETS as f32 / 100.0;
    (pct * factor) as u32
}

/// The 56-bit OTEP-235 randomness upstream derives from a hash (`randomnessFromBytes`).
pub fn randomness(h: u32) -> u64 {
    let bucket = u64::from(h & BUCKET_MASK);
    let u18 = u64::from(h >> 14);
    let mixed28 = (u18 ^ (u18 << 10)) & ((1 << 28) - 1);
    ((u64::from(BUCKET_MASK) - bucket) << 42) | (mixed28 << 14) | bucket
}

/// Threshold encoding: 14 hex digits with trailing zeros trimmed, `0` for always.
pub fn tvalue(scaled: u32) -> String {
    let t = u64::from(NUM_BUCKETS - scaled.min(NUM_BUCKETS)) << 42;
    if t == 0 {
        return "0".into();
    }
    let s = format!("{t:014x}");
    s.trim_end_matches('0').to_owned()
}

/// `sampling.priority`: `Some(true)` keep, `Some(false)` drop, `None` no override.
fn priority(v: Option<&Value>) -> Option<bool> {
    let n = match v? {
        Value::Int(i) => *i as f64,
        Value::Double(d) => *d,
        Value::Str(s) => s.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    if n > 0.0 {
        Some(true)
    } else if n == 0.0 {
        Some(false)
    } else {
        None
    }
}

/// Splits a W3C tracestate into members and finds the `ot` member.
struct TraceState {
    ot: Vec<(String, String)>,
    others: Vec<String>,
}

impl TraceState {
    fn parse(s: &str) -> Result<TraceState, String> {
        let mut ot = Vec::new();
        let mut others = Vec::new();
        for member in s.split(',').map(str::trim).filter(|m| !m.is_empty()) {
            let Some((key, value)) = member.split_once('=') else {
                return Err(format!("invalid tracestate member {member:?}"));
            };
            if key == "ot" {
                for kv in value.split(';').filter(|p| !p.is_empty()) {
                    let Some((k, v)) = kv.split_once(':') else {
                        return Err(format!("invalid ot tracestate value {value:?}"));
                    };
                    ot.push((k.to_owned(), v.to_owned()));
                }
            } else {
                others.push(member.to_owned());
            }
        }
        Ok(TraceState { ot, others })
    }

    fn has(&self, k: &str) -> bool {
        self.ot.iter().any(|(key, _)| key == k)
    }

    /// Writes `th` then `rv` ahead of other `ot` subkeys, and the `ot` member first, as
    /// upstream's serialisation does.
    fn serialize_with(&self, th: &str, rv: u64) -> String {
        let mut ot = format!("th:{th};rv:{rv:014x}");
        for (k, v) in &self.ot {
            if k != "th" && k != "rv" {
                ot.push_str(&format!(";{k}:{v}"));
            }
        }
        let mut out = format!("ot={ot}");
        for m in &self.others {
            out.push(',');
            out.push_str(m);
        }
        out
    }
}

/// What the hash decision says for one item.
enum Decision {
    /// Sampled by hash; carries the hash for the tracestate.
    Keep(u32),
    /// Not sampled by hash.
    Drop,
    /// No usable randomness (zero trace id, rv/th already present, bad tracestate).
    Missing,
}

/// Upstream's `count_traces_sampled` / `count_logs_sampled` per (policy, sampled), summed
/// over a batch so that the host is called once per series rather than once per item.
#[derive(Default)]
struct Tally(BTreeMap<(String, bool), u64>);

impl Tally {
    fn add(&mut self, policy: &str, sampled: bool) {
        *self.0.entry((policy.to_owned(), sampled)).or_default() += 1;
    }

    /// Publishes the batch's counts as `otelcol_processor_probabilistic_sampler_<name>`.
    fn publish(self, name: &str, help: &str) {
        let name = format!("otelcol_processor_probabilistic_sampler_{name}");
        for ((policy, sampled), n) in self.0 {
            let sampled = if sampled { "true" } else { "false" };
            counter_add(&name, help, &[("policy", &policy), ("sampled", sampled)], n);
        }
    }
}

/// Policy names as upstream labels them.
const TRACE_ID_HASH: &str = "trace_id_hash";
const SAMPLING_PRIORITY: &str = "sampling_priority";
const MISSING_RANDOMNESS: &str = "missing_randomness";

impl Sampler {
    fn decide(&self, bytes: &[u8]) -> Decision {
        let h = fnv1a32(&[&self.seed.to_le_bytes(), bytes]);
        if (h & BUCKET_MASK) < self.scaled {
            Decision::Keep(h)
        } else {
            Decision::Drop
        }
    }
}

impl Processor for Sampler {
    const NAME: &'static str = "probabilistic_sampler";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const SIGNALS: &'static [Signal] = &[Signal::Traces, Signal::Logs];
    const CONFIG_SCHEMA: &'static str = "upstream probabilistic_sampler (hash_seed mode): sampling_percentage (float32), hash_seed (uint32), mode: hash_seed, fail_closed (true), sampling_precision (4), attribute_source: traceID|record, from_attribute, sampling_priority";
    type Config = Config;

    fn new(config: Config, _signal: Signal) -> Result<Self, ConfigErrors> {
        let mut errors = ConfigErrors::new();
        let pct = config.sampling_percentage;
        let ratio = f64::from(pct) / 100.0;
        if pct.is_infinite() || pct.is_nan() {
            errors.push(
                "sampling_percentage",
                format!("sampling rate is invalid: {pct:.6}%"),
            );
        } else if ratio < 0.0 {
            errors.push(
                "sampling_percentage",
                format!("sampling rate is negative: {pct:.6}%"),
            );
        } else if ratio > 0.0 && ratio < 2f64.powi(-56) {
            errors.push(
                "sampling_percentage",
                format!("sampling rate is too small: {pct}%"),
            );
        }
        match config.mode.as_str() {
            "" | "hash_seed" => {}
            "proportional" | "equalizing" => errors.push(
                "mode",
                format!(
                    "sampler mode {:?} is not supported by wasmcol yet (only hash_seed)",
                    config.mode
                ),
            ),
            other => errors.push("mode", format!("unsupported sampler mode {other:?}")),
        }
        let from_record = match config.attribute_source.as_str() {
            "" | "traceID" => None,
            "record" => Some(config.from_attribute.clone()),
            other => {
                errors.push(
                    "attribute_source",
                    format!("invalid attribute source: {other}. Expected: traceID or record"),
                );
                None
            }
        };
        if config.sampling_precision == 0 {
            errors.push("sampling_precision", "invalid sampling precision: 0");
        } else if config.sampling_precision > 14 {
            errors.push(
                "sampling_precision",
                format!(
                    "sampling precision is too great, should be <= 14: {}",
                    config.sampling_precision
                ),
            );
        }
        errors.into_result(Sampler {
            seed: config.hash_seed,
            scaled: if pct.is_finite() && pct > 0.0 {
                scaled_rate(pct)
            } else {
                0
            },
            fail_closed: config.fail_closed,
            from_record,
            priority_attribute: config.sampling_priority,
        })
    }

    fn process_traces(&mut self, traces: Traces<'_>) -> Result<Outcome, ProcessError> {
        let ids = traces.trace_ids();
        if ids.is_empty() {
            return Ok(Outcome::Forward);
        }
        let states = traces.trace_states();
        let priorities = traces.get_all(Level::Item, "sampling.priority");
        let th = tvalue(self.scaled);
        let mut keep = Vec::with_capacity(ids.len());
        let mut dropped = 0usize;
        let mut tally = Tally::default();
        for (n, span) in traces.spans().enumerate() {
            let prio = priority(priorities.get(n).and_then(Option::as_ref));
            if prio == Some(false) {
                keep.push(false);
                dropped += 1;
                tally.add(SAMPLING_PRIORITY, false);
                continue;
            }
            let id = ids.get(n).copied().unwrap_or_default();
            let state = states.get(n).map(String::as_str).unwrap_or_default();
            let parsed = TraceState::parse(state);
            let decision = match &parsed {
                _ if id == [0u8; 16] => Decision::Missing,
                Err(_) => Decision::Missing,
                Ok(ts) if ts.has("rv") || ts.has("th") => Decision::Missing,
                Ok(_) => self.decide(&id),
            };
            let sampled = match decision {
                Decision::Keep(h) => {
                    if let Ok(ts) = &parsed {
                        span.set_trace_state(&ts.serialize_with(&th, randomness(h)));
                    }
                    true
                }
                Decision::Drop => false,
                Decision::Missing => !self.fail_closed,
            };
            let kept = sampled || prio == Some(true);
            let policy = match decision {
                _ if prio == Some(true) => SAMPLING_PRIORITY,
                Decision::Missing => MISSING_RANDOMNESS,
                Decision::Keep(_) | Decision::Drop => TRACE_ID_HASH,
            };
            tally.add(policy, kept);
            dropped += usize::from(!kept);
            keep.push(kept);
        }
        tally.publish(
            "count_traces_sampled",
            "Count of traces that were sampled or not",
        );
        if dropped > 0 {
            traces.retain(&keep);
        }
        Ok(Outcome::Forward)
    }

    fn process_logs(&mut self, logs: Logs<'_>) -> Result<Outcome, ProcessError> {
        let n = logs.len();
        if n == 0 {
            return Ok(Outcome::Forward);
        }
        // The bytes hashed per record: the trace id, or the configured attribute.
        let sources: Vec<Option<Vec<u8>>> = match &self.from_record {
            None => logs
                .trace_ids()
                .into_iter()
                .map(|id| (id != [0u8; 16]).then(|| id.to_vec()))
                .collect(),
            Some(attr) => logs
                .get_all(Level::Item, attr)
                .into_iter()
                .map(|v| match v {
                    Some(Value::Bytes(b)) => Some(b),
                    Some(Value::Empty) | None => None,
                    Some(other) => Some(other.to_string_lossy().into_bytes()),
                })
                .collect(),
        };
        let overrides: Vec<Option<Value>> = if self.priority_attribute.is_empty() {
            Vec::new()
        } else {
            logs.get_all(Level::Item, &self.priority_attribute)
        };
        let mut keep = Vec::with_capacity(n);
        let mut dropped = 0usize;
        let mut tally = Tally::default();
        // Upstream labels a hash on a record attribute with the attribute's name.
        let hashed = self.from_record.as_deref().unwrap_or(TRACE_ID_HASH);
        for (i, record) in logs.records().enumerate() {
            // A per-record percentage replaces the configured one (0 drops, >= 100 keeps).
            let scaled = match overrides.get(i).and_then(Option::as_ref) {
                Some(Value::Int(p)) => scaled_rate((*p).max(0) as f32),
                Some(Value::Double(p)) => scaled_rate(p.max(0.0) as f32),
                _ => self.scaled,
            };
            let decision = match sources.get(i).and_then(Option::as_ref) {
                None => Decision::Missing,
                Some(bytes) => {
                    let h = fnv1a32(&[&self.seed.to_le_bytes(), bytes]);
                    if (h & BUCKET_MASK) < scaled {
                        Decision::Keep(h)
                    } else {
                        Decision::Drop
                    }
                }
            };
            let kept = match decision {
                Decision::Keep(_) => {
                    record.attributes().set(
                        "sampling.threshold",
                        &Value::Str(tvalue(scaled)),
                        SetMode::Upsert,
                    );
                    true
                }
                Decision::Drop => false,
                Decision::Missing => !self.fail_closed,
            };
            let policy = match decision {
                Decision::Missing => MISSING_RANDOMNESS,
                Decision::Keep(_) | Decision::Drop => hashed,
            };
            tally.add(policy, kept);
            dropped += usize::from(!kept);
            keep.push(kept);
        }
        tally.publish(
            "count_logs_sampled",
            "Count of logs that were sampled or not",
        );
        if dropped > 0 {
            logs.retain(&keep);
        }
        Ok(Outcome::Forward)
    }
}

wasmcol_sdk::export_processor!(Sampler);

#[cfg(test)]
mod tests {
    use super::*;
    use wasmcol_sdk::testing::{self, MemTraces, span};

    fn hex16(s: &str) -> [u8; 16] {
        let mut out = [0u8; 16];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }

    /// Upstream's test vectors (probabilisticsamplerprocessor's hash and decision tests): FNV value, bucket and decisions at 1/10/25/50 %.
    #[test]
    fn reference_vectors() {
        let cases: [(u32, &str, u32, u32, [bool; 4]); 4] = [
            (
                0,
                "0102030405060708090a0b0c0d0e0f10",
                0xdf241a25,
                6693,
                [false, false, false, true],
            ),
            (
                0,
                "4bf92f3577b34da6a3ce929d0e0e4736",
                0x3420408d,
                141,
                [true, true, true, true],
            ),
            (
                0,
                "00000000000000000000000000000001",
                0xb8fee2c2,
                8898,
                [false, false, false, false],
            ),
            (
                22,
                "4bf92f3577b34da6a3ce929d0e0e4736",
                0x5610306b,
                12395,
                [false, false, false, false],
            ),
        ];
        for (seed, id, fnv, bucket, decisions) in cases {
            let h = fnv1a32(&[&seed.to_le_bytes(), &hex16(id)]);
            assert_eq!(h, fnv, "{id}");
            assert_eq!(h & BUCKET_MASK, bucket);
            for (pct, want) in [1.0f32, 10.0, 25.0, 50.0].into_iter().zip(decisions) {
                assert_eq!(bucket < scaled_rate(pct), want, "{id} at {pct}%");
            }
        }
        assert_eq!(scaled_rate(1.0), 163);
        assert_eq!(scaled_rate(10.0), 1638);
        assert_eq!(scaled_rate(25.0), 4096);
        assert_eq!(scaled_rate(50.0), 8192);
        assert_eq!(scaled_rate(0.1), 16);
        assert_eq!(scaled_rate(33.3), 5455);
        assert_eq!(scaled_rate(99.99), 16382);
        assert_eq!(scaled_rate(100.0), 16384);
        assert_eq!(scaled_rate(250.0), 16384);
    }

    /// Upstream's own golden values (`TestEmptyHashFunction`).
    #[test]
    fn upstream_empty_hash_golden_values() {
        assert_eq!(fnv1a32(&[&0u32.to_le_bytes()]) & BUCKET_MASK, 0x3515);
        assert_eq!(
            fnv1a32(&[&0u32.to_le_bytes(), &[0u8; 16]]) & BUCKET_MASK,
            0x2455
        );
    }

    #[test]
    fn kept_span_gets_th_and_rv() {
        let mut p: Sampler = testing::build(r#"{"sampling_percentage":25}"#).unwrap();
        let batch = MemTraces::new().resource(&[], |r| {
            r.scope("s", |s| {
                s.item(span("keep").trace_id(hex16("4bf92f3577b34da6a3ce929d0e0e4736")))
                    .item(span("drop").trace_id(hex16("0102030405060708090a0b0c0d0e0f10")));
            });
        });
        testing::run_traces(&mut p, &batch).unwrap();
        let d = batch.data();
        let items = &d.resources[0].scopes[0].items;
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].info.name, "keep");
        assert_eq!(items[0].info.trace_state, "ot=th:c;rv:fdc8d0b520408d");
    }

    #[test]
    fn priority_and_existing_randomness() {
        let mut p: Sampler = testing::build(r#"{"sampling_percentage":0.0001}"#).unwrap();
        let id = hex16("0102030405060708090a0b0c0d0e0f10");
        let batch = MemTraces::new().resource(&[], |r| {
            r.scope("s", |s| {
                s.item(span("forced").trace_id(id).attr("sampling.priority", 1))
                    .item(span("rv").trace_id(id).trace_state("ot=rv:abcdefabcdefab"))
                    .item(span("plain").trace_id(id));
            });
        });
        testing::run_traces(&mut p, &batch).unwrap();
        let d = batch.data();
        let names: Vec<_> = d.resources[0].scopes[0]
            .items
            .iter()
            .map(|s| s.info.name.as_str())
            .collect();
        assert_eq!(names, ["forced"]);
        // fail_closed: false keeps spans without usable randomness.
        let mut p: Sampler =
            testing::build(r#"{"sampling_percentage":0.0001,"fail_closed":false}"#).unwrap();
        let batch = MemTraces::new().resource(&[], |r| {
            r.scope("s", |s| {
                s.item(span("zero").trace_id([0; 16]))
                    .item(span("pri0").trace_id(id).attr("sampling.priority", 0));
            });
        });
        testing::run_traces(&mut p, &batch).unwrap();
        let d = batch.data();
        let names: Vec<_> = d.resources[0].scopes[0]
            .items
            .iter()
            .map(|s| s.info.name.as_str())
            .collect();
        assert_eq!(names, ["zero"]);
    }

    /// Upstream's counter, per policy and outcome, one series per (policy, sampled).
    #[test]
    fn counts_traces_sampled_per_policy() {
        let count = |policy: &str, sampled: &str| {
            wasmcol_sdk::metrics::value(
                "otelcol_processor_probabilistic_sampler_count_traces_sampled",
                &[("policy", policy), ("sampled", sampled)],
            )
        };
        let mut p: Sampler = testing::build(r#"{"sampling_percentage":25}"#).unwrap();
        let batch = MemTraces::new().resource(&[], |r| {
            r.scope("s", |s| {
                s.item(span("keep").trace_id(hex16("4bf92f3577b34da6a3ce929d0e0e4736")))
                    .item(span("drop").trace_id(hex16("0102030405060708090a0b0c0d0e0f10")))
                    .item(span("drop2").trace_id(hex16("0102030405060708090a0b0c0d0e0f10")))
                    .item(span("zero").trace_id([0; 16]))
                    .item(
                        span("forced")
                            .trace_id([0; 16])
                            .attr("sampling.priority", 1),
                    )
                    .item(
                        span("vetoed")
                            .trace_id([1; 16])
                            .attr("sampling.priority", 0),
                    );
            });
        });
        testing::run_traces(&mut p, &batch).unwrap();
        assert_eq!(count("trace_id_hash", "true"), Some(1.0));
        assert_eq!(count("trace_id_hash", "false"), Some(2.0));
        assert_eq!(count("missing_randomness", "false"), Some(1.0));
        assert_eq!(count("sampling_priority", "true"), Some(1.0));
        assert_eq!(count("sampling_priority", "false"), Some(1.0));
    }

    #[test]
    fn config_errors() {
        let e = testing::build::<Sampler>(r#"{"sampling_percentage":-5}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "sampling_percentage: sampling rate is negative: -5.000000%"
        );
        let e = testing::build::<Sampler>(r#"{"mode":"weird"}"#).unwrap_err();
        assert_eq!(e.to_string(), "mode: unsupported sampler mode \"weird\"");
        let e = testing::build::<Sampler>(r#"{"sampling_precision":20}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "sampling_precision: sampling precision is too great, should be <= 14: 20"
        );
    }

    #[test]
    fn tvalues() {
        assert_eq!(tvalue(4096), "c");
        assert_eq!(tvalue(16384), "0");
        assert_eq!(tvalue(8192), "8");
    }
}
