//! The processor's config, as upstream's `tail_sampling` reads it, and its validation with
//! upstream's error texts.

use serde::Deserialize;
use wasmcol_sdk::ConfigErrors;

use crate::policy::{Composite, Policy, Rule, StringMatch};

/// The processor config (upstream's keys and defaults).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// From a trace's first span to its decision (Go duration; default 30s).
    #[serde(default)]
    pub decision_wait: Option<Duration>,
    /// Traces held at most (default 50000).
    #[serde(default = "default_num_traces")]
    pub num_traces: u64,
    /// Sizing hint only (upstream's too).
    #[serde(default)]
    pub expected_new_traces_per_sec: u64,
    /// The decision caches.
    #[serde(default)]
    pub decision_cache: DecisionCache,
    /// Stop at the first policy that samples.
    #[serde(default)]
    pub sample_on_first_match: bool,
    /// Drop undecided traces on shutdown instead of deciding them.
    #[serde(default)]
    pub drop_pending_traces_on_shutdown: bool,
    /// The policies.
    #[serde(default)]
    pub policies: Vec<PolicyCfg>,
}

fn default_num_traces() -> u64 {
    50_000
}

/// `decision_cache`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionCache {
    /// Sampled trace IDs remembered (0: off).
    #[serde(default)]
    pub sampled_cache_size: u64,
    /// Not sampled trace IDs remembered (0: off).
    #[serde(default)]
    pub non_sampled_cache_size: u64,
}

/// A Go duration (`30s`, `1m30s`, `500ms`) or a number of nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Duration(pub u64);

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(Duration(n)),
            Raw::S(s) => parse_duration(&s)
                .map(Duration)
                .map_err(serde::de::Error::custom),
        }
    }
}

/// Parses a Go duration into nanoseconds.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let bad = || format!("time: invalid duration {s:?}");
    let t = s.trim();
    if t == "0" {
        return Ok(0);
    }
    if t.is_empty() || t.starts_with('-') {
        return Err(bad());
    }
    let mut rest = t.strip_prefix('+').unwrap_or(t);
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("time: missing unit in duration {s:?}"))?;
        let (num, after) = rest.split_at(num_len);
        let value: f64 = num.parse().map_err(|_| bad())?;
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let scale = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(format!("time: unknown unit {unit:?} in duration {s:?}")),
        };
        total += value * scale;
        rest = next;
    }
    Ok(total.round() as u64)
}

/// One policy (also the shape of `and`/`drop`/`composite` sub-policies).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyCfg {
    /// Name, for metrics and logs.
    #[serde(default)]
    pub name: String,
    /// Policy type.
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    latency: LatencyCfg,
    #[serde(default)]
    numeric_attribute: NumericCfg,
    #[serde(default)]
    probabilistic: ProbabilisticCfg,
    #[serde(default)]
    status_code: StatusCodeCfg,
    #[serde(default)]
    string_attribute: StringCfg,
    #[serde(default)]
    rate_limiting: RateCfg,
    #[serde(default)]
    bytes_limiting: BytesCfg,
    #[serde(default)]
    span_count: SpanCountCfg,
    #[serde(default)]
    trace_state: TraceStateCfg,
    #[serde(default)]
    boolean_attribute: BoolCfg,
    /// Refused with a clear error: wasmcol has no OTTL engine.
    #[serde(default)]
    ottl_condition: Option<serde_json::Value>,
    #[serde(default)]
    and: AndCfg,
    #[serde(default)]
    drop: DropCfg,
    #[serde(default)]
    composite: CompositeCfg,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LatencyCfg {
    #[serde(default)]
    threshold_ms: i64,
    #[serde(default)]
    upper_threshold_ms: i64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NumericCfg {
    #[serde(default)]
    key: String,
    #[serde(default)]
    min_value: Option<i64>,
    #[serde(default)]
    max_value: Option<i64>,
    #[serde(default)]
    invert_match: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProbabilisticCfg {
    #[serde(default)]
    hash_salt: String,
    #[serde(default)]
    sampling_percentage: f64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusCodeCfg {
    #[serde(default)]
    status_codes: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StringCfg {
    #[serde(default)]
    key: String,
    #[serde(default)]
    values: Vec<String>,
    #[serde(default)]
    enabled_regex_matching: bool,
    /// Upstream caches regex results; matching here is cheap enough without.
    #[serde(default)]
    #[allow(dead_code)]
    cache_max_size: u64,
    #[serde(default)]
    invert_match: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RateCfg {
    #[serde(default)]
    spans_per_second: i64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct BytesCfg {
    #[serde(default)]
    bytes_per_second: i64,
    #[serde(default)]
    burst_capacity: i64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SpanCountCfg {
    #[serde(default)]
    min_spans: i64,
    #[serde(default)]
    max_spans: i64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TraceStateCfg {
    #[serde(default)]
    key: String,
    #[serde(default)]
    values: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct BoolCfg {
    #[serde(default)]
    key: String,
    #[serde(default)]
    value: bool,
    #[serde(default)]
    invert_match: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AndCfg {
    #[serde(default)]
    and_sub_policy: Vec<PolicyCfg>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DropCfg {
    #[serde(default)]
    drop_sub_policy: Vec<PolicyCfg>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CompositeCfg {
    #[serde(default)]
    max_total_spans_per_second: i64,
    #[serde(default)]
    policy_order: Vec<String>,
    #[serde(default)]
    composite_sub_policy: Vec<PolicyCfg>,
    #[serde(default)]
    rate_allocation: Vec<RateAllocation>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RateAllocation {
    #[serde(default)]
    policy: String,
    #[serde(default)]
    percent: i64,
}

/// Where a policy may appear: nested `and`/`drop`/`composite` are not allowed (upstream).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Depth {
    Top,
    Sub,
}

/// Builds the policies, reporting every problem with its key path in `errors`.
pub fn build_policies(cfgs: &[PolicyCfg], errors: &mut ConfigErrors) -> Vec<Policy> {
    let mut out = Vec::new();
    let mut names: Vec<&str> = Vec::new();
    for (i, cfg) in cfgs.iter().enumerate() {
        let path = format!("policies[{i}]");
        if cfg.name.is_empty() {
            errors.push(format!("{path}.name"), "policy name cannot be empty");
            continue;
        }
        if names.contains(&cfg.name.as_str()) {
            errors.push(
                format!("{path}.name"),
                format!("duplicate policy name {:?}", cfg.name),
            );
            continue;
        }
        names.push(&cfg.name);
        match rule(cfg, Depth::Top, &path) {
            Ok(rule) => out.push(Policy {
                name: cfg.name.clone(),
                rule,
            }),
            Err((key, message)) => errors.push(
                key,
                format!(
                    "failed to create policy evaluator for {:?}: {message}",
                    cfg.name
                ),
            ),
        }
    }
    out
}

type RuleError = (String, String);

fn unknown(cfg: &PolicyCfg, path: &str) -> RuleError {
    (
        format!("{path}.type"),
        format!("unknown sampling policy type {}", cfg.kind),
    )
}

fn subs(list: &[PolicyCfg], path: &str) -> Result<Vec<(String, Rule)>, RuleError> {
    list.iter()
        .enumerate()
        .map(|(i, c)| {
            let p = format!("{path}[{i}]");
            Ok((c.name.clone(), rule(c, Depth::Sub, &p)?))
        })
        .collect()
}

fn rule(cfg: &PolicyCfg, depth: Depth, path: &str) -> Result<Rule, RuleError> {
    if cfg.ottl_condition.is_some() || cfg.kind == "ottl_condition" {
        return Err((
            format!("{path}.type"),
            "ottl_condition is not supported: wasmcol has no OTTL engine; express the condition \
             with the other policy types (string_attribute, numeric_attribute, status_code, \
             and, ...)"
                .into(),
        ));
    }
    Ok(match cfg.kind.as_str() {
        "always_sample" => Rule::AlwaysSample,
        "latency" => Rule::Latency {
            threshold_ms: cfg.latency.threshold_ms,
            upper_threshold_ms: cfg.latency.upper_threshold_ms,
        },
        "numeric_attribute" => {
            let n = &cfg.numeric_attribute;
            Rule::Numeric {
                key: n.key.clone(),
                min: n.min_value.unwrap_or(i64::MIN),
                max: n.max_value.unwrap_or(i64::MAX),
                invert: n.invert_match,
            }
        }
        "probabilistic" => {
            let p = &cfg.probabilistic;
            let salt = if p.hash_salt.is_empty() {
                "default-hash-seed".to_owned()
            } else {
                p.hash_salt.clone()
            };
            Rule::Probabilistic {
                salt,
                threshold: crate::policy::threshold(p.sampling_percentage / 100.0),
            }
        }
        "status_code" => Rule::StatusCode(status_codes(&cfg.status_code.status_codes, path)?),
        "string_attribute" => {
            let s = &cfg.string_attribute;
            let matcher = if s.enabled_regex_matching {
                let mut res = Vec::new();
                for (i, v) in s.values.iter().enumerate() {
                    res.push(regex::Regex::new(v).map_err(|e| {
                        (
                            format!("{path}.string_attribute.values[{i}]"),
                            format!("error parsing regexp: {e}"),
                        )
                    })?);
                }
                StringMatch::Regex(res)
            } else {
                StringMatch::Exact(s.values.clone())
            };
            Rule::Str {
                key: s.key.clone(),
                matcher,
                invert: s.invert_match,
            }
        }
        "rate_limiting" => Rule::RateLimiting(crate::policy::Bucket::new(
            cfg.rate_limiting.spans_per_second as f64,
            2.0 * cfg.rate_limiting.spans_per_second as f64,
        )),
        "bytes_limiting" => {
            let b = &cfg.bytes_limiting;
            let burst = if b.burst_capacity > 0 {
                b.burst_capacity
            } else {
                2 * b.bytes_per_second
            };
            Rule::BytesLimiting(crate::policy::Bucket::new(
                b.bytes_per_second as f64,
                burst as f64,
            ))
        }
        "span_count" => Rule::SpanCount {
            min: cfg.span_count.min_spans,
            max: cfg.span_count.max_spans,
        },
        "trace_state" => Rule::TraceState {
            key: cfg.trace_state.key.clone(),
            values: cfg.trace_state.values.clone(),
        },
        "trace_flags" => Rule::TraceFlags,
        "boolean_attribute" => Rule::Bool {
            key: cfg.boolean_attribute.key.clone(),
            value: cfg.boolean_attribute.value,
            invert: cfg.boolean_attribute.invert_match,
        },
        "and" if depth == Depth::Top => Rule::And(subs(
            &cfg.and.and_sub_policy,
            &format!("{path}.and.and_sub_policy"),
        )?),
        "drop" if depth == Depth::Top => Rule::Drop(subs(
            &cfg.drop.drop_sub_policy,
            &format!("{path}.drop.drop_sub_policy"),
        )?),
        "composite" if depth == Depth::Top => Rule::Composite(composite(cfg, path)?),
        _ => return Err(unknown(cfg, path)),
    })
}

fn status_codes(codes: &[String], path: &str) -> Result<Vec<i32>, RuleError> {
    let key = format!("{path}.status_code.status_codes");
    if codes.is_empty() {
        return Err((key, "expected at least one status code to filter on".into()));
    }
    codes
        .iter()
        .map(|c| match c.as_str() {
            "UNSET" => Ok(0),
            "OK" => Ok(1),
            "ERROR" => Ok(2),
            other => Err((
                key.clone(),
                format!("unknown status code {other:?}, supported: OK, ERROR, UNSET"),
            )),
        })
        .collect()
}

fn composite(cfg: &PolicyCfg, path: &str) -> Result<Composite, RuleError> {
    let c = &cfg.composite;
    let max_total = c.max_total_spans_per_second as f64;
    let n = c.composite_sub_policy.len().max(1) as f64;
    // Upstream: a listed policy gets `percent` of the total, a listed one with no percent an
    // equal share, an unlisted one nothing.
    let allocated = |name: &str| {
        c.rate_allocation
            .iter()
            .find(|a| a.policy == name)
            .map(|a| {
                if a.percent > 0 {
                    a.percent as f64 / 100.0 * max_total
                } else {
                    max_total / n
                }
            })
            .unwrap_or(0.0) as i64
    };
    let mut subs = subs(
        &c.composite_sub_policy,
        &format!("{path}.composite.composite_sub_policy"),
    )?;
    // Sub-policies are tried in `policy_order` (those it names first, in its order; the
    // rest after them, as listed), so the first match takes its share.
    let rank = |name: &str| {
        c.policy_order
            .iter()
            .position(|n| n == name)
            .unwrap_or(usize::MAX)
    };
    subs.sort_by_key(|(name, _)| rank(name));
    Ok(Composite::new(
        c.max_total_spans_per_second,
        subs.into_iter()
            .map(|(name, rule)| (allocated(&name), name, rule))
            .collect(),
    ))
}
