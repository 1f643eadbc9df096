//! The collector's own log lines, shaped as otelcol's zap logger shapes them.
//!
//! `service.telemetry.logs` decides the level, the encoding (`console`: tab-separated
//! `time level caller message` as zap writes them, then the fields as `key=value`, which
//! tools that read wasmcol's earlier lines still find; `json`: one object a line with `level`, `ts`,
//! `caller`, `msg` and the fields), the initial fields, the sampling of repeated
//! lines and where the lines go. Writes are synchronous, like zap's: a log line is small and
//! an operator expects it written before the process moves on.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write as _;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use opentelemetry::logs::{AnyValue, LogRecord as _, Severity};
use parking_lot::Mutex;
use serde_json::{Map, Value as Json};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt as _};
use tracing_subscriber::util::SubscriberInitExt as _;
use wasmcol_components::rfc3339;
use wasmcol_config::{LogSampling, LogsTelemetry};

use crate::selflogs::{LogExport, Loggers};

/// Installs the logger for `cfg`; `WASMCOL_LOG` (an `EnvFilter` directive) overrides the level.
/// Returns the OTLP log processors' exports, to start once the service runs.
pub fn init(cfg: &LogsTelemetry) -> anyhow::Result<Vec<LogExport>> {
    let pushes = cfg
        .pushes()
        .map_err(|e| anyhow::anyhow!("service::telemetry::logs: {e}"))?;
    let (loggers, exports) = crate::selflogs::loggers(pushes);
    let level = match cfg.level.to_lowercase().as_str() {
        "dpanic" | "panic" | "fatal" => "error".to_owned(),
        other => other.to_owned(),
    };
    let filter = std::env::var("WASMCOL_LOG").unwrap_or(level).to_lowercase();
    let mut layer = ZapLayer::new(cfg)?;
    layer.otlp = loggers;
    let _ = tracing_subscriber::registry()
        .with(tracing_subscriber::EnvFilter::new(filter))
        .with(layer)
        .try_init();
    Ok(exports)
}

enum Sink {
    Stdout,
    Stderr,
    File(Mutex<File>),
}

impl Sink {
    fn open(path: &str) -> anyhow::Result<Sink> {
        Ok(match path {
            "stdout" => Sink::Stdout,
            "stderr" => Sink::Stderr,
            path => Sink::File(Mutex::new(
                File::options()
                    .create(true)
                    .append(true)
                    .open(path)
                    .with_context(|| format!("cannot open log output {path}"))?,
            )),
        })
    }

    fn write(&self, line: &[u8]) -> std::io::Result<()> {
        match self {
            Sink::Stdout => std::io::stdout().lock().write_all(line),
            Sink::Stderr => std::io::stderr().lock().write_all(line),
            Sink::File(f) => f.lock().write_all(line),
        }
    }
}

/// Counts lines by level and message per tick, as zap's sampler does.
struct Sampler {
    cfg: LogSampling,
    started: Instant,
    seen: Mutex<HashMap<(Level, String), (u64, u64)>>,
}

impl Sampler {
    /// Distinct messages kept track of before the table is cleared (a bound on memory).
    const MAX_KEYS: usize = 4096;

    fn keep(&self, level: Level, message: &str) -> bool {
        let tick = Duration::from(self.cfg.tick).as_nanos().max(1);
        let now = (self.started.elapsed().as_nanos() / tick) as u64;
        let mut seen = self.seen.lock();
        if seen.len() >= Self::MAX_KEYS {
            seen.clear();
        }
        let entry = seen.entry((level, message.to_owned())).or_insert((now, 0));
        if entry.0 != now {
            *entry = (now, 0);
        }
        entry.1 += 1;
        let n = entry.1;
        if n <= self.cfg.initial {
            return true;
        }
        self.cfg.thereafter > 0 && (n - self.cfg.initial).is_multiple_of(self.cfg.thereafter)
    }
}

struct ZapLayer {
    json: bool,
    caller: bool,
    initial: Map<String, Json>,
    out: Vec<Sink>,
    err: Vec<Sink>,
    sampler: Option<Sampler>,
    /// The SDK logger behind the OTLP log processors, when there are any.
    otlp: Option<Loggers>,
}

impl ZapLayer {
    fn new(cfg: &LogsTelemetry) -> anyhow::Result<ZapLayer> {
        let open = |paths: &[String]| -> anyhow::Result<Vec<Sink>> {
            paths.iter().map(|p| Sink::open(p)).collect()
        };
        let mut initial = Map::new();
        for (k, v) in &cfg.initial_fields {
            initial.insert(k.clone(), serde_json::to_value(v).unwrap_or(Json::Null));
        }
        Ok(ZapLayer {
            json: cfg.encoding == "json",
            caller: !cfg.disable_caller,
            initial,
            out: open(&cfg.output_paths)?,
            err: open(&cfg.error_output_paths)?,
            sampler: cfg.sampling().map(|cfg| Sampler {
                cfg,
                started: Instant::now(),
                seen: Mutex::new(HashMap::new()),
            }),
            otlp: None,
        })
    }

    /// Emits the line as an SDK log record, as upstream's zap-to-OpenTelemetry bridge writes
    /// it: the message as body, zap's level as severity, the initial and the line's fields as
    /// attributes, the caller as `code.filepath` / `code.lineno`.
    fn emit(&self, loggers: &Loggers, event: &Event<'_>, v: &Fields) {
        let meta = event.metadata();
        let now = SystemTime::now();
        let (severity, text) = match *meta.level() {
            Level::TRACE => (Severity::Trace, "trace"),
            Level::DEBUG => (Severity::Debug, "debug"),
            Level::INFO => (Severity::Info, "info"),
            Level::WARN => (Severity::Warn, "warn"),
            Level::ERROR => (Severity::Error, "error"),
        };
        let value = |j: &Json| match j {
            Json::String(s) => AnyValue::from(s.clone()),
            Json::Bool(b) => AnyValue::Boolean(*b),
            Json::Number(n) => match n.as_i64() {
                Some(i) => AnyValue::Int(i),
                None => AnyValue::Double(n.as_f64().unwrap_or_default()),
            },
            other => AnyValue::from(other.to_string()),
        };
        let mut record = loggers.record();
        record.set_timestamp(now);
        record.set_observed_timestamp(now);
        record.set_severity_number(severity);
        record.set_severity_text(text);
        record.set_body(AnyValue::from(v.message.clone()));
        for (k, j) in self.initial.iter().chain(v.fields.iter()) {
            record.add_attribute(k.clone(), value(j));
        }
        if self.caller {
            if let Some(f) = meta.file().map(str::to_owned).or(v.log_file.clone()) {
                record.add_attribute("code.filepath", f);
            }
            if let Some(l) = meta.line().map(u64::from).or(v.log_line) {
                record.add_attribute("code.lineno", AnyValue::Int(l as i64));
            }
        }
        loggers.emit(record);
    }

    fn line(&self, event: &Event<'_>, v: Fields) -> String {
        let Fields {
            message,
            fields,
            log_file,
            log_line,
        } = v;
        let meta = event.metadata();
        let level = meta.level().as_str().to_lowercase();
        let ts = rfc3339(SystemTime::now());
        let file = meta.file().or(log_file.as_deref());
        let caller = match (self.caller, file, meta.line().map(u64::from).or(log_line)) {
            (true, Some(f), Some(l)) => Some(format!("{f}:{l}")),
            (true, Some(f), None) => Some(f.to_owned()),
            _ => None,
        };
        if self.json {
            let mut obj = Map::new();
            obj.insert("level".into(), Json::String(level));
            obj.insert("ts".into(), Json::String(ts));
            if let Some(c) = caller {
                obj.insert("caller".into(), Json::String(c));
            }
            obj.insert("msg".into(), Json::String(message));
            for (k, v) in self.initial.iter().chain(fields.iter()) {
                obj.insert(k.clone(), v.clone());
            }
            let mut line = Json::Object(obj).to_string();
            line.push('\n');
            return line;
        }
        let mut line = format!("{ts}\t{level}");
        if let Some(c) = caller {
            line.push('\t');
            line.push_str(&c);
        }
        line.push('\t');
        line.push_str(&message);
        for (i, (k, v)) in self.initial.iter().chain(fields.iter()).enumerate() {
            line.push(if i == 0 { '\t' } else { ' ' });
            line.push_str(k);
            line.push('=');
            match v {
                // Bare when it reads back unambiguously (`endpoint=127.0.0.1:4317`), quoted
                // when it has spaces, quotes or `=` in it.
                Json::String(s) if !s.is_empty() && !s.contains([' ', '"', '=', '\t', '\n']) => {
                    line.push_str(s)
                }
                other => line.push_str(&other.to_string()),
            }
        }
        line.push('\n');
        line
    }
}

impl<S: Subscriber> Layer<S> for ZapLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut v = Fields::default();
        event.record(&mut v);
        if let Some(s) = &self.sampler
            && !s.keep(*event.metadata().level(), &v.message)
        {
            return;
        }
        // The SDK's own diagnostics are not fed back into the SDK: a warning it logs while
        // emitting would be emitted again.
        if let Some(loggers) = &self.otlp
            && !event.metadata().target().starts_with("opentelemetry")
        {
            self.emit(loggers, event, &v);
        }
        let line = self.line(event, v);
        for sink in &self.out {
            if let Err(e) = sink.write(line.as_bytes()) {
                let report = format!("{}\tlogger write error: {e}\n", rfc3339(SystemTime::now()));
                for err in &self.err {
                    // Nowhere further to report a failing error output.
                    let _ = err.write(report.as_bytes());
                }
            }
        }
    }
}

#[derive(Default)]
struct Fields {
    message: String,
    fields: Map<String, Json>,
    /// `log.file` / `log.line` of a line bridged from the `log` crate (wasmtime, rustls),
    /// whose metadata has no source location of its own.
    log_file: Option<String>,
    log_line: Option<u64>,
}

impl Fields {
    fn put(&mut self, field: &Field, value: Json) {
        match (field.name(), value) {
            ("message", Json::String(s)) => self.message = s,
            ("message", other) => self.message = other.to_string(),
            ("log.file", Json::String(s)) => self.log_file = Some(s),
            ("log.line", v) => self.log_line = v.as_u64(),
            ("log.target" | "log.module_path", _) => {}
            (name, value) => {
                self.fields.insert(name.to_owned(), value);
            }
        }
    }
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, Json::String(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Json::String(value.to_owned()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Json::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Json::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Json::Bool(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Json::from(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, Json::String(value.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_repeated_lines_like_zap() {
        let s = Sampler {
            cfg: LogSampling {
                enabled: true,
                tick: wasmcol_config::GoDuration::secs(3600),
                initial: 2,
                thereafter: 3,
            },
            started: Instant::now(),
            seen: Mutex::new(HashMap::new()),
        };
        let kept: Vec<bool> = (0..8).map(|_| s.keep(Level::INFO, "m")).collect();
        assert_eq!(kept, [true, true, false, false, true, false, false, true]);
        assert!(s.keep(Level::WARN, "m"), "another level is another key");
    }
}
