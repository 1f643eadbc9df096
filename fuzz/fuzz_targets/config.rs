//! Config loading (host/config load/expand) and graph building (host/core graph.rs).
//!
//! The input is YAML text. It goes through `load_str` (the parse, `${env:...}` expansion and
//! layout checks the binary's `load` runs on each file) with an environment whose values hold
//! references again (expansion must not recurse), through `load` with the input's `k=v`
//! lines as `--set` overrides, and, when it loads, through `wasmcol_core::build` with every
//! component of the binary except the WebAssembly processors (their factories need
//! wasmtime). Building creates components without starting them: nothing binds or opens
//! files. Asserted: no panic, and every refusal carries at least one problem.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use wasmcol_core::{Metrics, Registry};

fn registry() -> &'static Registry {
    static R: OnceLock<Registry> = OnceLock::new();
    R.get_or_init(|| {
        let mut r = Registry::new();
        wasmcol_components::register(&mut r);
        wasmcol_otlp::register(&mut r);
        wasmcol_delivery::register(&mut r);
        r
    })
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    })
}

fn env(name: &str) -> Option<String> {
    match name.len() % 3 {
        0 => None,
        1 => Some(format!("${{env:{name}}}")),
        _ => Some(format!("{name}: [1, 2]")),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let sets: Vec<String> = text
        .lines()
        .filter(|l| l.contains('='))
        .map(str::to_owned)
        .collect();
    if !sets.is_empty()
        && let Err(e) = wasmcol_config::load(&[], &sets)
    {
        assert!(!e.is_empty());
        let _ = e.to_string();
    }
    let cfg = match wasmcol_config::load_str(text, &env) {
        Ok(cfg) => cfg,
        Err(e) => {
            assert!(!e.is_empty(), "refused without a problem");
            let _ = e.to_string();
            return;
        }
    };
    let _ = cfg.service.telemetry.check();
    let _ = cfg.service.telemetry.logs.sampling();
    let _ = cfg.service.telemetry.metrics.prometheus();
    let _guard = runtime().enter();
    match wasmcol_core::build(&cfg, registry(), &Metrics::new()) {
        Ok(service) => drop(service),
        Err(e) => {
            assert!(!e.is_empty(), "graph refused without a problem");
            let _ = e.to_string();
        }
    }
});
