//! `wasmcol plugin inspect` and `wasmcol plugin run`. The binary runs them on a
//! current-thread runtime of their own; reading and compiling still go to the blocking pool.

use bytes::Bytes;
use wasmcol_pdata::{Batch, Signal};

use crate::call::{Limits, Processed};
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
    let signals: Vec<&str> = p.info.signals.iter().map(|s| s.as_str()).collect();
    Ok(format!(
        "name: {}\nversion: {}\ncontract: wasmcol:plugin@{}\nsignals: {}\nsha256: {}\nsize: {} bytes\nconfig schema: {}\n",
        p.info.name,
        p.info.version,
        p.contract(),
        signals.join(", "),
        p.sha256,
        p.size,
        if p.info.config_schema.is_empty() {
            "(none given)"
        } else {
            &p.info.config_schema
        }
    ))
}

/// The signal of an OTLP/JSON export request, from its top-level key.
fn detect_signal(json: &str) -> Result<Signal, CliError> {
    let v: serde_json::Value =
        serde_json::from_str(json).map_err(|e| CliError(format!("input is not JSON: {e}")))?;
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

/// Runs the plugin once over an OTLP/JSON request and returns the OTLP/JSON result.
pub async fn run(
    runtime: &Runtime,
    path: &str,
    config_json: &str,
    input_json: &str,
) -> Result<String, CliError> {
    let p = load(runtime, path).await?;
    let signal = detect_signal(input_json)?;
    let batch = Batch::from_json(signal, input_json.as_bytes())
        .map_err(|e| CliError(format!("cannot parse the input: {e}")))?;
    let out = {
        let mut inst = p
            .instantiate(&Limits::default(), "plugin-run")
            .await
            .map_err(|e| CliError(e.to_string()))?;
        match inst.configure(config_json, signal).await {
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
            Ok(Ok(settings)) if settings.hold.is_some() => {
                return decide_each(&mut inst, batch).await;
            }
            Ok(Ok(_)) => {}
        }
        inst.process(batch)
            .await
            .map_err(|e| CliError(e.to_string()))?
    };
    match out {
        Processed::Drop => Ok(Batch::empty(signal)
            .to_json()
            .map_err(|e| CliError(e.to_string()))?),
        Processed::Forward(b) => b.to_json().map_err(|e| CliError(e.to_string())),
    }
}

/// `plugin run` for a plugin that holds traces: every trace of the input is decided at once
/// (as if its `decision_wait` had elapsed) and the sampled ones are printed.
async fn decide_each(inst: &mut crate::call::Instance, batch: Batch) -> Result<String, CliError> {
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
    let mut kept = Vec::new();
    for (_, parts) in traces {
        let view =
            crate::batch::HostBatch::from_message(wasmcol_pdata::ExportTraceServiceRequest {
                resource_spans: parts,
            });
        let (decision, back) = inst.decide_trace(view, 0, 0).await;
        if decision.map_err(|e| CliError(e.to_string()))?
            && let Some(back) = back
        {
            let m = back
                .into_payload()
                .and_then(|p| p.into_message())
                .map_err(|e| CliError(e.to_string()))?;
            kept.extend(m.resource_spans);
        }
    }
    Batch::Traces(wasmcol_pdata::Payload::from_message(
        wasmcol_pdata::ExportTraceServiceRequest {
            resource_spans: kept,
        },
    ))
    .to_json()
    .map_err(|e| CliError(e.to_string()))
}
