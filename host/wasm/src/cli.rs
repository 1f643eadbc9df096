//! `wasmcol plugin inspect` and `wasmcol plugin run`. The binary runs them on a
//! current-thread runtime of their own; reading and compiling still go to the blocking pool.
//!
//! `plugin run` takes the plugin's config the way a collector config gives it (the body under
//! `processors:`, JSON or YAML) and one export request (OTLP/JSON, or OTLP protobuf with its
//! signal named), calls the plugin exactly as a pipeline would, and reports the outcome with
//! item counts. A signal the plugin does not handle is refused, as `validate` refuses it.

use std::fmt::Write;

use bytes::Bytes;
use wasmcol_pdata::{Batch, Signal};

use crate::call::{Limits, PluginInfo, Processed};
use crate::error::CallError;
use crate::runtime::Runtime;

/// A CLI failure, printed as is.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CliError(pub String);

async fn load(
    runtime: &Runtime,
    path: &str,
) -> Result<std::sync::Arc<crate::plugin::Plugin>, CliError> {
    let p = path.to_owned();
    let bytes = tokio::task::spawn_blocking(move || std::fs::read(p))
        .await
        .map_err(|e| CliError(format!("cannot read {path}: {e}")))?
        .map_err(|e| CliError(format!("cannot read {path}: {e}")))?;
    runtime
        .load(Bytes::from(bytes), false)
        .await
        .map_err(|e| CliError(format!("cannot load {path}: {e}")))
}

/// The plugin's name, version, signals, config schema and hash.
pub async fn inspect(runtime: &Runtime, path: &str) -> Result<String, CliError> {
    let p = load(runtime, path).await?;
    Ok(format!(
        "name: {}\nversion: {}\ncontract: wasmcol:plugin@{}\nsignals: {}\nsha256: {}\nsize: {} bytes\nconfig schema: {}\n",
        p.info.name,
        p.info.version,
        p.contract(),
        signal_list(&p.info),
        p.sha256,
        p.size,
        if p.info.config_schema.is_empty() {
            "(none given)"
        } else {
            &p.info.config_schema
        }
    ))
}

fn signal_list(info: &PluginInfo) -> String {
    let signals: Vec<&str> = info.signals.iter().map(|s| s.as_str()).collect();
    signals.join(", ")
}

/// The plugin config of `plugin run`: the body a collector config has under `processors:`,
/// in JSON or YAML (`{}` when empty), as the JSON `configure` gets.
pub fn plugin_config(text: &str) -> Result<String, CliError> {
    let value: serde_yaml::Value = serde_yaml::from_str(text)
        .map_err(|e| CliError(format!("--plugin-config is neither JSON nor YAML: {e}")))?;
    crate::config::to_json(&value).map_err(|e| CliError(format!("--plugin-config: {e}")))
}

/// Parses one export request: OTLP/JSON (its top-level key names the signal; a `signal`
/// given must agree), or OTLP protobuf of `signal`, which protobuf cannot tell by itself.
pub fn read_input(bytes: &[u8], signal: Option<Signal>) -> Result<Batch, CliError> {
    let json = bytes
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{');
    if !json {
        let Some(signal) = signal else {
            return Err(CliError(
                "the input is not OTLP/JSON; for OTLP protobuf name its signal with \
                 --signal traces|metrics|logs"
                    .into(),
            ));
        };
        return Batch::from_encoded(signal, Bytes::copy_from_slice(bytes)).map_err(|e| {
            CliError(format!(
                "the input is not an OTLP protobuf {signal} export request: {e}"
            ))
        });
    }
    let detected = detect_signal(bytes)?;
    if let Some(signal) = signal.filter(|s| *s != detected) {
        return Err(CliError(format!(
            "--signal {signal}, but the input is an OTLP/JSON {detected} request"
        )));
    }
    Batch::from_json(detected, bytes)
        .map_err(|e| CliError(format!("cannot parse the input as OTLP/JSON: {e}")))
}

/// The signal of an OTLP/JSON export request, from its top-level key.
fn detect_signal(json: &[u8]) -> Result<Signal, CliError> {
    let v: serde_json::Value =
        serde_json::from_slice(json).map_err(|e| CliError(format!("input is not JSON: {e}")))?;
    let has = |k: &str| v.get(k).is_some();
    if has("resourceSpans") || has("resource_spans") {
        Ok(Signal::Traces)
    } else if has("resourceMetrics") || has("resource_metrics") {
        Ok(Signal::Metrics)
    } else if has("resourceLogs") || has("resource_logs") {
        Ok(Signal::Logs)
    } else {
        Err(CliError(
            "input has none of resourceSpans, resourceMetrics, resourceLogs".into(),
        ))
    }
}

/// Resources and items of a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counts {
    /// Resources.
    pub resources: usize,
    /// Spans, data points or log records.
    pub items: usize,
}

impl Counts {
    fn of(batch: &Batch) -> Result<Counts, CliError> {
        let err = |e: wasmcol_pdata::DecodeError| CliError(e.to_string());
        let resources = match batch {
            Batch::Traces(p) => p.to_message().map_err(err)?.resource_spans.len(),
            Batch::Metrics(p) => p.to_message().map_err(err)?.resource_metrics.len(),
            Batch::Logs(p) => p.to_message().map_err(err)?.resource_logs.len(),
        };
        Ok(Counts {
            resources,
            items: batch.item_count(),
        })
    }
}

/// What the plugin made of the batch.
pub enum RunOutcome {
    /// `process` returned the batch to forward.
    Forward(Batch),
    /// `process` dropped the whole batch.
    Drop,
    /// A plugin that holds traces decided each trace of the input; `kept` holds the spans of
    /// the sampled ones.
    Decided {
        /// Traces in the input.
        traces: usize,
        /// Traces sampled.
        sampled: usize,
        /// Their spans.
        kept: Batch,
    },
    /// The call failed: a plugin error, a trap, the time or memory limit.
    Error(CallError),
}

/// `plugin run`'s result.
pub struct RunReport {
    /// The plugin's own description.
    pub plugin: PluginInfo,
    /// Its contract version.
    pub contract: &'static str,
    /// The input's signal.
    pub signal: Signal,
    /// The input's size.
    pub input: Counts,
    /// What came of it.
    pub outcome: RunOutcome,
}

impl RunReport {
    /// Whether the plugin failed on the batch.
    pub fn failed(&self) -> bool {
        matches!(self.outcome, RunOutcome::Error(_))
    }

    /// The batch that would be sent on (an empty one after a drop), if the call succeeded.
    fn output(&self) -> Option<Result<Batch, CliError>> {
        match &self.outcome {
            RunOutcome::Forward(b) | RunOutcome::Decided { kept: b, .. } => Some(Ok(b.clone())),
            RunOutcome::Drop => Some(Ok(Batch::empty(self.signal))),
            RunOutcome::Error(_) => None,
        }
    }

    /// The output alone, as one line of OTLP/JSON (for scripts); a failed call is an error.
    pub fn json(&self) -> Result<String, CliError> {
        match (self.output(), &self.outcome) {
            (Some(out), _) => out?.to_json().map_err(|e| CliError(e.to_string())),
            (None, RunOutcome::Error(e)) => Err(CliError(e.to_string())),
            (None, _) => Err(CliError("no output".into())),
        }
    }

    /// The plugin, the input, the outcome with item counts, then the output as indented
    /// OTLP/JSON.
    pub fn pretty(&self) -> Result<String, CliError> {
        let item = match self.signal {
            Signal::Traces => "spans",
            Signal::Metrics => "data points",
            Signal::Logs => "log records",
        };
        let counts = |c: Counts| format!("{} resources, {} {item}", c.resources, c.items);
        let mut s = String::new();
        let _ = writeln!(
            s,
            "plugin:  {} {} (wasmcol:plugin@{})",
            self.plugin.name, self.plugin.version, self.contract
        );
        let _ = writeln!(s, "input:   {}: {}", self.signal, counts(self.input));
        let outcome = match &self.outcome {
            RunOutcome::Forward(b) => format!("forward: {}", counts(Counts::of(b)?)),
            RunOutcome::Drop => "drop: the whole batch, nothing is sent on".into(),
            RunOutcome::Decided {
                traces,
                sampled,
                kept,
            } => format!(
                "decided {traces} traces (as if each decision_wait had passed): {sampled} sampled, \
                 forward: {}",
                counts(Counts::of(kept)?)
            ),
            RunOutcome::Error(e) => format!("error ({}): {e}", error_kind(e)),
        };
        let _ = writeln!(s, "outcome: {outcome}");
        if let Some(out) = self.output() {
            let json = out?.to_json().map_err(|e| CliError(e.to_string()))?;
            let v: serde_json::Value =
                serde_json::from_str(&json).map_err(|e| CliError(e.to_string()))?;
            let pretty = serde_json::to_string_pretty(&v).map_err(|e| CliError(e.to_string()))?;
            let _ = writeln!(s, "output:\n{pretty}");
        }
        Ok(s)
    }
}

/// How a pipeline treats the failure: upstream's retryable or permanent.
fn error_kind(e: &CallError) -> &'static str {
    match e {
        CallError::Plugin {
            permanent: false, ..
        } => "retryable: a pipeline answers the sender with a retryable error",
        CallError::Plugin { .. } => "permanent: a pipeline drops the batch and says why",
        _ => "the plugin failed: the processor's on_error decides",
    }
}

/// Runs the plugin once over `batch` with its config `config_json`, as a pipeline of the
/// batch's signal would.
pub async fn run(
    runtime: &Runtime,
    path: &str,
    config_json: &str,
    batch: Batch,
) -> Result<RunReport, CliError> {
    let p = load(runtime, path).await?;
    let signal = batch.signal();
    if !p.info.signals.contains(&signal) {
        return Err(CliError(format!(
            "plugin {:?} does not handle {signal} (it handles: {}); a collector refuses it in a \
             {signal} pipeline",
            p.info.name,
            signal_list(&p.info)
        )));
    }
    let input = Counts::of(&batch)?;
    let mut inst = p
        .instantiate(&Limits::default(), "plugin-run")
        .await
        .map_err(|e| CliError(e.to_string()))?;
    let hold = match inst.configure(config_json, signal).await {
        Err(e) => return Err(CliError(e.to_string())),
        Ok(Err(errors)) => {
            return Err(CliError(format!(
                "invalid config:\n{}",
                errors
                    .iter()
                    .map(|e| if e.path.is_empty() {
                        format!("  {}", e.message)
                    } else {
                        format!("  {}: {}", e.path, e.message)
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            )));
        }
        Ok(Ok(settings)) => settings.hold.is_some(),
    };
    let outcome = if hold {
        decide_each(&mut inst, batch).await?
    } else {
        match inst.process(batch).await {
            Ok(Processed::Forward(b)) => RunOutcome::Forward(b),
            Ok(Processed::Drop) => RunOutcome::Drop,
            Err(e) => RunOutcome::Error(e),
        }
    };
    Ok(RunReport {
        plugin: p.info.clone(),
        contract: p.contract(),
        signal,
        input,
        outcome,
    })
}

/// `plugin run` for a plugin that holds traces: every trace of the input is decided at once
/// (as if its `decision_wait` had elapsed) and the sampled ones are kept.
async fn decide_each(
    inst: &mut crate::call::Instance,
    batch: Batch,
) -> Result<RunOutcome, CliError> {
    let Batch::Traces(p) = batch else {
        return Err(CliError("a plugin that holds traces takes spans".into()));
    };
    let message = p.into_message().map_err(|e| CliError(e.to_string()))?;
    let mut traces: Vec<(crate::hold::TraceId, Vec<_>)> = Vec::new();
    for (id, part) in crate::hold::split(message.resource_spans) {
        match traces.iter_mut().find(|(t, _)| *t == id) {
            Some((_, parts)) => parts.push(part),
            None => traces.push((id, vec![part])),
        }
    }
    let total = traces.len();
    let mut kept = Vec::new();
    let mut sampled = 0;
    for (_, parts) in traces {
        let request = wasmcol_pdata::ExportTraceServiceRequest {
            resource_spans: parts,
        };
        match inst.decide_request(request, 0, 0).await {
            Ok(Some(back)) => {
                sampled += 1;
                kept.extend(back.resource_spans);
            }
            Ok(None) => {}
            Err(e) => return Ok(RunOutcome::Error(e)),
        }
    }
    Ok(RunOutcome::Decided {
        traces: total,
        sampled,
        kept: Batch::Traces(wasmcol_pdata::Payload::from_message(
            wasmcol_pdata::ExportTraceServiceRequest {
                resource_spans: kept,
            },
        )),
    })
}
