//! Tries to escape the sandbox and records what it got as attributes on every resource:
//! `sandbox.file` (reading `path`), `sandbox.dir` (listing `/`), `sandbox.env` (number of
//! environment variables), `sandbox.args`, `sandbox.socket` (connecting to 127.0.0.1:`port`),
//! `sandbox.clock` (wall-clock seconds since the epoch).

use std::io::Read;

use serde::Deserialize;
use wasmcol_sdk::{
    ConfigErrors, Level, Outcome, ProcessError, Processor, SetMode, Signal, Traces, Value,
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    path: String,
    #[serde(default)]
    port: u16,
}

struct Probe {
    path: String,
    port: u16,
}

fn outcome<T>(r: std::io::Result<T>, ok: impl FnOnce(T) -> String) -> String {
    match r {
        Ok(v) => ok(v),
        Err(e) => format!("denied: {e}"),
    }
}

impl Processor for Probe {
    const NAME: &'static str = "test_sandbox";
    const VERSION: &'static str = "0.0.0";
    const SIGNALS: &'static [Signal] = &[Signal::Traces];
    type Config = Config;

    fn new(c: Config, _signal: Signal) -> Result<Self, ConfigErrors> {
        Ok(Probe {
            path: c.path,
            port: c.port,
        })
    }

    fn process_traces(&mut self, t: Traces<'_>) -> Result<Outcome, ProcessError> {
        let file = outcome(
            std::fs::File::open(&self.path).and_then(|mut f| {
                let mut s = String::new();
                f.read_to_string(&mut s).map(|_| s)
            }),
            |s| format!("read: {s}"),
        );
        let dir = outcome(std::fs::read_dir("/"), |d| {
            format!("listed {} entries", d.count())
        });
        let env = std::env::vars_os().count() as i64;
        let args = std::env::args_os().count() as i64;
        let socket = outcome(
            std::net::TcpStream::connect(("127.0.0.1", self.port)),
            |_| "connected".into(),
        );
        let clock = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(-1);
        let set = |k: &str, v: Value| {
            t.set_all(Level::Resource, k, &v, SetMode::Upsert);
        };
        set("sandbox.file", Value::Str(file));
        set("sandbox.dir", Value::Str(dir));
        set("sandbox.env", Value::Int(env));
        set("sandbox.args", Value::Int(args));
        set("sandbox.socket", Value::Str(socket));
        set("sandbox.clock", Value::Int(clock));
        Ok(Outcome::Forward)
    }
}

wasmcol_sdk::export_processor!(Probe);
