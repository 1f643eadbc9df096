//! The bundled `tail_sampling` processor: upstream's policies and final-decision rules over
//! whole traces.
//!
//! The spans wait in the host, not here: `hold_traces` asks the host (contract 0.2.0) to
//! buffer spans by trace, bounded by `num_traces`, and to call `decide_trace` once per trace
//! when `decision_wait` has elapsed. The plugin keeps only the policies' state (rate
//! limiters, composite shares) and reports `otelcol_processor_tail_sampling_*` metrics.

pub mod config;
pub mod policy;

use wasmcol_sdk::metrics::counter_add;
use wasmcol_sdk::{
    ConfigErrors, Decision as HostDecision, ProcessError, Processor, Signal, TraceHold, Traces,
};

use crate::config::Config;
use crate::policy::{Decision, Policy, Trace, final_decision};

/// Upstream's default `decision_wait`.
const DEFAULT_DECISION_WAIT_NS: u64 = 30_000_000_000;

/// The processor.
pub struct TailSampling {
    hold: TraceHold,
    sample_on_first_match: bool,
    /// `drop` policies first (they override everything), then the others in order.
    policies: Vec<Policy>,
}

const PREFIX: &str = "otelcol_processor_tail_sampling_";

fn count_policy(policy: &str, sampled: bool, spans: usize) {
    let labels = [
        ("policy", policy),
        ("sampled", if sampled { "true" } else { "false" }),
    ];
    counter_add(
        &format!("{PREFIX}count_traces_sampled"),
        "Count of traces that were sampled or not per sampling policy.",
        &labels,
        1,
    );
    counter_add(
        &format!("{PREFIX}count_spans_sampled"),
        "Count of spans that were sampled or not per sampling policy.",
        &labels,
        spans as u64,
    );
}

impl Processor for TailSampling {
    const NAME: &'static str = "tail_sampling";
    const VERSION: &'static str = "0.1.0";
    const SIGNALS: &'static [Signal] = &[Signal::Traces];
    const CONFIG_SCHEMA: &'static str = "upstream's tail_sampling: decision_wait, num_traces, \
        expected_new_traces_per_sec, decision_cache {sampled_cache_size, non_sampled_cache_size}, \
        sample_on_first_match, drop_pending_traces_on_shutdown, policies [{name, type, <type>: {...}}] \
        with types always_sample, latency, numeric_attribute, probabilistic, status_code, \
        string_attribute, rate_limiting, bytes_limiting, span_count, trace_state, trace_flags, \
        boolean_attribute, and, drop, composite (ottl_condition is refused)";
    type Config = Config;

    fn new(c: Config, _signal: Signal) -> Result<Self, ConfigErrors> {
        let mut errors = ConfigErrors::new();
        let wait = c.decision_wait.map_or(DEFAULT_DECISION_WAIT_NS, |d| d.0);
        if wait < 1_000_000 {
            errors.push("decision_wait", "must be at least 1ms");
        }
        if c.num_traces == 0 {
            errors.push("num_traces", "must be greater than 0");
        }
        let mut policies = config::build_policies(&c.policies, &mut errors);
        policies.sort_by_key(|p| !p.rule.is_drop());
        let clamp = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
        errors.into_result(TailSampling {
            hold: TraceHold {
                decision_wait_ms: wait / 1_000_000,
                num_traces: clamp(c.num_traces),
                sampled_cache_size: clamp(c.decision_cache.sampled_cache_size),
                non_sampled_cache_size: clamp(c.decision_cache.non_sampled_cache_size),
                drop_pending_on_shutdown: c.drop_pending_traces_on_shutdown,
            },
            sample_on_first_match: c.sample_on_first_match,
            policies,
        })
    }

    fn hold_traces(&self) -> Option<TraceHold> {
        Some(self.hold.clone())
    }

    fn decide_trace(
        &mut self,
        trace: Traces<'_>,
        _first_arrival_unix_nano: u64,
        now_unix_nano: u64,
    ) -> Result<HostDecision, ProcessError> {
        let sampled = self.decide(&mut Trace::new(trace), now_unix_nano);
        counter_add(
            &format!("{PREFIX}global_count_traces_sampled"),
            "Count of traces that were sampled or not by at least one policy.",
            &[("sampled", if sampled { "true" } else { "false" })],
            1,
        );
        Ok(if sampled {
            HostDecision::Sampled
        } else {
            HostDecision::NotSampled
        })
    }
}

impl TailSampling {
    /// Upstream's evaluation: every policy (drop policies first; with
    /// `sample_on_first_match`, up to the first that samples), then the final rules.
    pub fn decide(&mut self, t: &mut Trace<'_>, now_ns: u64) -> bool {
        let mut decisions = Vec::with_capacity(self.policies.len());
        for p in self.policies.iter_mut() {
            let d = p.rule.eval(t, now_ns);
            count_policy(
                &p.name,
                matches!(d, Decision::Sampled | Decision::InvertSampled),
                t.spans.len(),
            );
            decisions.push(d);
            if d == Decision::Dropped {
                break;
            }
            if self.sample_on_first_match && d == Decision::Sampled {
                break;
            }
        }
        final_decision(&decisions)
    }
}

wasmcol_sdk::export_processor!(TailSampling);

#[cfg(test)]
mod tests;
