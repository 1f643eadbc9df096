//! `wasmcol plugin inspect` and `wasmcol plugin run`.

use crate::runtime::{Limits, Processed, Runtime, block_on};
use wasmcol_pdata::{Batch, Signal};

/// A CLI failure, printed as is.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CliError(pub String);

fn load(path: &str) -> Result<std::sync::Arc<crate::Plugin>, CliError> {
    let bytes = std::fs::read(path).map_err(|e| CliError(format!("cannot read {path}: {e}")))?;
    let runtime = Runtime::global().map_err(|e| CliError(e.to_string()))?;
    runtime
        .load(&bytes, false)
        .map_err(|e| CliError(format!("cannot load {path}: {e}")))
}

/// The plugin's name, version, signals, config schema and hash.
pub fn inspect(path: &str) -> Result<String, CliError> {
    let p = load(path)?;
    let signals: Vec<&str> = p.info.signals.iter().map(|s| s.as_str()).collect();
    Ok(format!(
        "name: {}\nversion: {}\nsignals: {}\nsha256: {}\nsize: {} bytes\nconfig schema: {}\n",
        p.info.name,
        p.info.version,
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
pub fn run(path: &str, config_json: &str, input_json: &str) -> Result<String, CliError> {
    let p = load(path)?;
    let signal = detect_signal(input_json)?;
    let batch = Batch::from_json(signal, input_json.as_bytes())
        .map_err(|e| CliError(format!("cannot parse the input: {e}")))?;
    let out = block_on(async move {
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
            Ok(Ok(())) => {}
        }
        inst.process(batch)
            .await
            .map_err(|e| CliError(e.to_string()))
    })
    .map_err(|e| CliError(e.to_string()))??;
    match out {
        Processed::Drop => Ok(Batch::empty(signal)
            .to_json()
            .map_err(|e| CliError(e.to_string()))?),
        Processed::Forward(b) => b.to_json().map_err(|e| CliError(e.to_string())),
    }
}
