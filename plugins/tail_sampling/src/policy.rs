//! The policies and upstream's decision rules, evaluated on one held trace.

use std::collections::HashMap;

use wasmcol_sdk::{Level, SpanInfo, Traces, Value};

/// What one policy says about a trace (upstream's `sampling.Decision`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Decision {
    /// Keep it.
    Sampled,
    /// Do not keep it (unless another policy does).
    NotSampled,
    /// Drop it whatever the other policies say (`drop` policy).
    Dropped,
    /// An inverted match that keeps (a `NotSampled` elsewhere wins).
    InvertSampled,
    /// An inverted match that drops.
    InvertNotSampled,
}

impl Decision {
    fn samples(self) -> bool {
        matches!(self, Decision::Sampled | Decision::InvertSampled)
    }
}

/// Upstream's final decision over every policy's decision.
pub fn final_decision(decisions: &[Decision]) -> bool {
    let any = |d| decisions.contains(&d);
    if any(Decision::Dropped) || any(Decision::InvertNotSampled) {
        return false;
    }
    if any(Decision::Sampled) {
        return true;
    }
    any(Decision::InvertSampled) && !any(Decision::NotSampled)
}

/// A named policy.
pub struct Policy {
    /// Its name (the `policy` label of the metrics).
    pub name: String,
    /// What it checks.
    pub rule: Rule,
}

/// How a `string_attribute` policy matches.
pub enum StringMatch {
    /// One of these values exactly.
    Exact(Vec<String>),
    /// One of these expressions, anywhere in the value (Go's `MatchString`).
    Regex(Vec<regex::Regex>),
}

impl StringMatch {
    fn matches(&self, v: &str) -> bool {
        match self {
            StringMatch::Exact(values) => values.iter().any(|x| x == v),
            StringMatch::Regex(res) => res.iter().any(|r| r.is_match(v)),
        }
    }
}

/// A token bucket (`golang.org/x/time/rate`: starts full, refills at `rate` per second up
/// to `burst`).
pub struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last_ns: Option<u64>,
}

impl Bucket {
    /// A full bucket.
    pub fn new(rate: f64, burst: f64) -> Self {
        Bucket {
            rate,
            burst,
            tokens: burst,
            last_ns: None,
        }
    }

    /// Takes `n` tokens at `now_ns` if there are enough.
    pub fn allow(&mut self, now_ns: u64, n: f64) -> bool {
        if let Some(last) = self.last_ns {
            let secs = now_ns.saturating_sub(last) as f64 / 1e9;
            self.tokens = (self.tokens + secs * self.rate).min(self.burst);
        }
        self.last_ns = Some(self.last_ns.map_or(now_ns, |l| l.max(now_ns)));
        if n <= self.tokens {
            self.tokens -= n;
            true
        } else {
            false
        }
    }
}

/// A `composite` policy: sub-policies in order, each with a share of the spans per second.
pub struct Composite {
    max_total: i64,
    subs: Vec<(i64, String, Rule)>,
    sampled: Vec<i64>,
    second: u64,
}

impl Composite {
    /// Sub-policies as (allocated spans per second, name, rule).
    pub fn new(max_total: i64, subs: Vec<(i64, String, Rule)>) -> Self {
        Composite {
            max_total,
            sampled: vec![0; subs.len()],
            subs,
            second: 0,
        }
    }

    fn eval(&mut self, t: &mut Trace<'_>, now_ns: u64) -> Decision {
        let second = now_ns / 1_000_000_000;
        if second != self.second {
            self.second = second;
            self.sampled.iter_mut().for_each(|s| *s = 0);
        }
        let spans = t.spans.len() as i64;
        for (i, (allocated, _, rule)) in self.subs.iter_mut().enumerate() {
            if rule.eval(t, now_ns).samples() {
                let next = self.sampled[i] + spans;
                if next <= *allocated && next <= self.max_total {
                    self.sampled[i] = next;
                    return Decision::Sampled;
                }
                // Over its share: not sampled, and the share stays for smaller traces.
                return Decision::NotSampled;
            }
        }
        Decision::NotSampled
    }
}

/// What a policy checks.
pub enum Rule {
    /// Every trace.
    AlwaysSample,
    /// Duration from the earliest start to the latest end.
    Latency {
        /// Lower bound, ms.
        threshold_ms: i64,
        /// Upper bound, ms (0: none).
        upper_threshold_ms: i64,
    },
    /// An int attribute in `[min, max]`.
    Numeric {
        /// Attribute key.
        key: String,
        /// Lower bound.
        min: i64,
        /// Upper bound.
        max: i64,
        /// Keep traces without a match.
        invert: bool,
    },
    /// `FNV-1a-64(salt || trace id) <= threshold`.
    Probabilistic {
        /// Hash salt.
        salt: String,
        /// Threshold.
        threshold: u64,
    },
    /// A span status among these codes.
    StatusCode(Vec<i32>),
    /// A string attribute matching.
    Str {
        /// Attribute key.
        key: String,
        /// How values match.
        matcher: StringMatch,
        /// Keep traces without a match.
        invert: bool,
    },
    /// Spans per second.
    RateLimiting(Bucket),
    /// Bytes (OTLP protobuf) per second.
    BytesLimiting(Bucket),
    /// Number of spans (max 0: none).
    SpanCount {
        /// Lower bound.
        min: i64,
        /// Upper bound, 0 for none.
        max: i64,
    },
    /// A tracestate entry `key` with one of `values`.
    TraceState {
        /// tracestate key.
        key: String,
        /// Accepted values.
        values: Vec<String>,
    },
    /// A span with the W3C sampled flag.
    TraceFlags,
    /// A bool attribute equal to `value`.
    Bool {
        /// Attribute key.
        key: String,
        /// Expected value.
        value: bool,
        /// Keep traces without a match.
        invert: bool,
    },
    /// Every sub-policy samples.
    And(Vec<(String, Rule)>),
    /// Every sub-policy matches: drop, whatever else says.
    Drop(Vec<(String, Rule)>),
    /// Sub-policies with rate shares.
    Composite(Composite),
}

/// One key's values on every resource and on every span, in batch order.
type KeyValues = (Vec<Option<Value>>, Vec<Option<Value>>);

/// One held trace as the policies read it: span fields read once, attributes by key.
pub struct Trace<'a> {
    traces: Traces<'a>,
    /// Every span's fields.
    pub spans: Vec<SpanInfo>,
    attrs: HashMap<String, KeyValues>,
}

impl<'a> Trace<'a> {
    /// Reads the spans of `traces`.
    pub fn new(traces: Traces<'a>) -> Self {
        let spans = traces.spans().map(|s| s.info()).collect();
        Trace {
            traces,
            spans,
            attrs: HashMap::new(),
        }
    }

    /// The trace ID (of the first span).
    pub fn id(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        if let Some(s) = self.spans.first()
            && s.trace_id.len() == 16
        {
            out.copy_from_slice(&s.trace_id);
        }
        out
    }

    /// `key` on every resource and every span (two bulk host calls per key, once).
    fn values(&mut self, key: &str) -> &KeyValues {
        let traces = self.traces;
        self.attrs.entry(key.to_owned()).or_insert_with(|| {
            (
                traces.get_all(Level::Resource, key),
                traces.get_all(Level::Item, key),
            )
        })
    }

    /// Whether any resource or span has `key` with a value `f` accepts.
    fn any(&mut self, key: &str, f: impl Fn(&Value) -> bool) -> bool {
        let (res, spans) = self.values(key);
        res.iter().chain(spans).flatten().any(f)
    }
}

/// The upper 64 bits of `u64::MAX × ratio` as Go's `big.Float` computes it: the product
/// rounded to 64 significant bits (nearest even), then truncated to an integer; ratios of 1
/// and above give `u64::MAX`.
pub fn threshold(ratio: f64) -> u64 {
    if ratio.is_nan() || ratio <= 0.0 {
        return 0;
    }
    if ratio >= 1.0 {
        return u64::MAX;
    }
    // ratio = mant × 2^exp, mant < 2^53.
    let bits = ratio.to_bits();
    let raw_exp = ((bits >> 52) & 0x7ff) as i32;
    let frac = bits & ((1u64 << 52) - 1);
    let (mant, exp) = if raw_exp == 0 {
        (frac, -1074)
    } else {
        (frac | (1u64 << 52), raw_exp - 1075)
    };
    let product = u128::from(u64::MAX) * u128::from(mant);
    let width = 128 - product.leading_zeros() as i32;
    let (mut q, mut shift) = if width > 64 {
        let shift = width - 64;
        let q = product >> shift;
        let rem = product & ((1u128 << shift) - 1);
        let half = 1u128 << (shift - 1);
        let q = if rem > half || (rem == half && q & 1 == 1) {
            q + 1
        } else {
            q
        };
        (q, shift)
    } else {
        (product, 0)
    };
    if q >> 64 != 0 {
        q >>= 1;
        shift += 1;
    }
    let scale = shift + exp;
    if scale >= 0 {
        u64::try_from(q << scale.min(63)).unwrap_or(u64::MAX)
    } else if scale <= -128 {
        0
    } else {
        (q >> (-scale)) as u64
    }
}

/// FNV-1a, 64 bits, over the parts in order.
pub fn fnv1a64(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for &b in *p {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

fn yes(b: bool) -> Decision {
    if b {
        Decision::Sampled
    } else {
        Decision::NotSampled
    }
}

fn inverted(matched: bool) -> Decision {
    if matched {
        Decision::InvertNotSampled
    } else {
        Decision::InvertSampled
    }
}

fn trace_state_has(ts: &str, key: &str, values: &[String]) -> bool {
    ts.split(',').any(|kv| {
        kv.trim()
            .split_once('=')
            .is_some_and(|(k, v)| k == key && values.iter().any(|x| x == v))
    })
}

impl Rule {
    /// This rule's decision on `t` at `now_ns`.
    pub fn eval(&mut self, t: &mut Trace<'_>, now_ns: u64) -> Decision {
        match self {
            Rule::AlwaysSample => Decision::Sampled,
            Rule::Latency {
                threshold_ms,
                upper_threshold_ms,
            } => {
                let start = t.spans.iter().map(|s| s.start_time_unix_nano).min();
                let end = t.spans.iter().map(|s| s.end_time_unix_nano).max();
                let ms = match (start, end) {
                    (Some(s), Some(e)) => (e.saturating_sub(s) / 1_000_000) as i64,
                    _ => 0,
                };
                if *upper_threshold_ms == 0 {
                    yes(ms >= *threshold_ms)
                } else {
                    yes(*threshold_ms < ms && ms <= *upper_threshold_ms)
                }
            }
            Rule::Numeric {
                key,
                min,
                max,
                invert,
            } => {
                let (lo, hi) = (*min, *max);
                let m = t.any(key, |v| matches!(v, Value::Int(i) if (lo..=hi).contains(i)));
                if *invert { inverted(m) } else { yes(m) }
            }
            Rule::Probabilistic { salt, threshold } => {
                let id = t.id();
                yes(fnv1a64(&[salt.as_bytes(), &id]) <= *threshold)
            }
            Rule::StatusCode(codes) => yes(t.spans.iter().any(|s| codes.contains(&s.status_code))),
            Rule::Str {
                key,
                matcher,
                invert,
            } => {
                let m = t.any(key, |v| matches!(v, Value::Str(s) if matcher.matches(s)));
                if *invert { inverted(m) } else { yes(m) }
            }
            Rule::RateLimiting(bucket) => yes(bucket.allow(now_ns, t.spans.len() as f64)),
            Rule::BytesLimiting(bucket) => {
                let size = t.traces.trace_ops().to_otlp().len();
                yes(bucket.allow(now_ns, size as f64))
            }
            Rule::SpanCount { min, max } => {
                let n = t.spans.len() as i64;
                yes(n >= *min && (*max == 0 || n <= *max))
            }
            Rule::TraceState { key, values } => yes(t
                .spans
                .iter()
                .any(|s| trace_state_has(&s.trace_state, key, values))),
            Rule::TraceFlags => yes(t.spans.iter().any(|s| s.flags & 1 == 1)),
            Rule::Bool { key, value, invert } => {
                let want = *value;
                let m = t.any(key, |v| matches!(v, Value::Bool(b) if *b == want));
                if *invert { inverted(m) } else { yes(m) }
            }
            Rule::And(subs) => {
                for (_, r) in subs.iter_mut() {
                    if !r.eval(t, now_ns).samples() {
                        return Decision::NotSampled;
                    }
                }
                Decision::Sampled
            }
            Rule::Drop(subs) => {
                for (_, r) in subs.iter_mut() {
                    if !r.eval(t, now_ns).samples() {
                        return Decision::NotSampled;
                    }
                }
                Decision::Dropped
            }
            Rule::Composite(c) => c.eval(t, now_ns),
        }
    }

    /// Whether this is a `drop` policy (evaluated before the others).
    pub fn is_drop(&self) -> bool {
        matches!(self, Rule::Drop(_))
    }
}
