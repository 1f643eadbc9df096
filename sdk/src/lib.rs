//! Write [wasmcol](https://github.com/wasmcol/wasmcol) processor plugins in Rust.
//!
//! A plugin is a WebAssembly component built with `cargo build --target wasm32-wasip2
//! --release`; it implements the contract `wasmcol:plugin@0.2.0` (`wit/v0.2.0/plugin.wit`). The collector keeps each batch on its side and lends the plugin a handle; the
//! plugin reads and edits the batch through host calls (see `wit/plugin.wit`). This crate
//! hides that: implement [`Processor`] with a typed `Config`, use the views ([`Traces`],
//! [`Metrics`], [`Logs`]) to walk resources, scopes and items and to get and set attributes,
//! and call [`export_processor!`]. The same code unit-tests natively against the in-memory
//! batches of [`testing`].
//!
//! # A complete plugin
//!
//! `Cargo.toml`:
//!
//! ```toml
//! [package]
//! name = "my-tagger"
//! version = "0.1.0"
//! edition = "2024"
//!
//! [lib]
//! crate-type = ["cdylib", "rlib"]
//!
//! [dependencies]
//! wasmcol-sdk = { path = "../../sdk" }
//! serde = { version = "1", features = ["derive"] }
//! ```
//!
//! `src/lib.rs`:
//!
//! ```
//! use wasmcol_sdk::{
//!     ConfigErrors, Level, Outcome, ProcessError, Processor, SetMode, Signal, Traces, Value,
//! };
//!
//! /// Adds `key: value` to every span that does not have it yet.
//! #[derive(Debug)]
//! pub struct Tagger {
//!     key: String,
//!     value: Value,
//! }
//!
//! #[derive(serde::Deserialize)]
//! #[serde(deny_unknown_fields)]
//! pub struct Config {
//!     key: String,
//!     #[serde(default = "default_value")]
//!     value: String,
//! }
//!
//! fn default_value() -> String {
//!     "tagged".into()
//! }
//!
//! impl Processor for Tagger {
//!     const NAME: &'static str = "tagger";
//!     const VERSION: &'static str = "0.1.0";
//!     const SIGNALS: &'static [Signal] = &[Signal::Traces];
//!     type Config = Config;
//!
//!     fn new(config: Config, _signal: Signal) -> Result<Self, ConfigErrors> {
//!         let mut errors = ConfigErrors::new();
//!         if config.key.is_empty() {
//!             errors.push("key", "must not be empty");
//!         }
//!         errors.into_result(Tagger { key: config.key, value: Value::Str(config.value) })
//!     }
//!
//!     fn process_traces(&mut self, traces: Traces<'_>) -> Result<Outcome, ProcessError> {
//!         // One host call for the whole batch rather than one per span.
//!         traces.set_all(Level::Item, &self.key, &self.value, SetMode::Insert);
//!         Ok(Outcome::Forward)
//!     }
//! }
//!
//! wasmcol_sdk::export_processor!(Tagger);
//!
//! // Unit tests run natively with `cargo test`:
//! use wasmcol_sdk::testing::{self, MemTraces, span};
//!
//! let mut p: Tagger = testing::build(r#"{"key": "team"}"#).unwrap();
//! let batch = MemTraces::new().resource(&[], |r| {
//!     r.scope("lib", |s| {
//!         s.item(span("a")).item(span("b").attr("team", "payments"));
//!     });
//! });
//! assert_eq!(testing::run_traces(&mut p, &batch), Ok(Outcome::Forward));
//! let data = batch.data();
//! let spans = &data.resources[0].scopes[0].items;
//! assert_eq!(spans[0].attributes, vec![("team".to_string(), Value::from("tagged"))]);
//! assert_eq!(spans[1].attributes, vec![("team".to_string(), Value::from("payments"))]);
//!
//! // Config errors carry key paths, as the collector will print them.
//! let err = testing::build::<Tagger>(r#"{"key": "", "vaule": 1}"#).unwrap_err();
//! assert_eq!(err.0[0].path, "vaule");
//! ```
//!
//! Build it with `cargo build --target wasm32-wasip2 --release` and point a `wasm` processor
//! at `target/wasm32-wasip2/release/my_tagger.wasm`:
//!
//! ```yaml
//! processors:
//!   wasm/tagger:
//!     path: ./my_tagger.wasm
//!     config: { key: team }
//!     limits: { timeout: 100ms, memory_mib: 32 }
//!     on_error: refuse
//! ```
//!
//! Try it on sample data first: `wasmcol plugin run my_tagger.wasm --config '{"key":"team"}'
//! --input batch.json`.
//!
//! # Performance
//!
//! Each host call costs a fraction of a microsecond. Prefer the bulk calls
//! ([`Traces::set_all`], [`Traces::get_all`], [`Traces::trace_ids`], [`Traces::retain`]) to
//! per-item loops, and touch only the level you need: a plugin that edits resource attributes
//! only never makes the host decode the spans.
//!
//! # Sandbox
//!
//! The host grants no files, environment, network or wall clock; reading any of them fails
//! or comes back empty. Each call runs under a deadline and a memory cap; a trap throws the
//! instance away.

#![deny(missing_docs)]

/// The README's examples are compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

pub mod config;
#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod guest;
pub mod log;
pub mod metrics;
pub mod ops;
pub mod processor;
pub mod testing;
mod value;
pub mod view;

pub use config::{ConfigError, ConfigErrors};
pub use log::LogLevel;
pub use ops::{
    BatchOps, EventRef, ItemRef, Level, LogInfo, LogOps, MetricKind, MetricOps, PointInfo,
    ScopeInfo, ScopeRef, SetMode, Signal, SpanInfo, Target, TraceOps,
};
pub use processor::{Decision, Outcome, ProcessError, Processor, TraceHold};
pub use value::Value;
pub use view::{
    Attributes, Batch, Item, Logs, Metrics, Point, Record, Resource, Scope, Span, Traces,
};

/// What most plugins use, in one import: `use wasmcol_sdk::prelude::*;`.
pub mod prelude {
    pub use crate::{
        Batch, ConfigErrors, Level, Logs, Metrics, Outcome, ProcessError, Processor, SetMode,
        Signal, Traces, Value,
    };
}

/// Exports a [`Processor`] as the component's `processor` world.
///
/// Use it once, at the crate root of a `cdylib` plugin. When compiled for anything but
/// `wasm32` it only checks that the type implements [`Processor`], so the same crate builds
/// natively for unit tests.
#[macro_export]
macro_rules! export_processor {
    ($ty:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            ::std::thread_local! {
                static __WASMCOL_INSTANCE: ::std::cell::RefCell<::std::option::Option<$ty>> =
                    const { ::std::cell::RefCell::new(::std::option::Option::None) };
            }
            struct __WasmcolGlue;
            impl $crate::guest::Guest for __WasmcolGlue {
                fn info() -> $crate::guest::PluginInfo {
                    $crate::guest::info::<$ty>(
                        ::core::env!("CARGO_PKG_NAME"),
                        ::core::env!("CARGO_PKG_VERSION"),
                    )
                }
                fn configure(
                    config_json: ::std::string::String,
                    signal: $crate::guest::WitSignal,
                ) -> ::std::result::Result<$crate::guest::WitSettings, ::std::vec::Vec<$crate::guest::WitConfigError>> {
                    $crate::guest::configure::<$ty>(&__WASMCOL_INSTANCE, config_json, signal)
                }
                fn process_traces(
                    batch: &$crate::guest::TraceBatch,
                ) -> ::std::result::Result<$crate::guest::WitOutcome, $crate::guest::WitProcessError>
                {
                    $crate::guest::process_traces::<$ty>(&__WASMCOL_INSTANCE, batch)
                }
                fn process_metrics(
                    batch: &$crate::guest::MetricBatch,
                ) -> ::std::result::Result<$crate::guest::WitOutcome, $crate::guest::WitProcessError>
                {
                    $crate::guest::process_metrics::<$ty>(&__WASMCOL_INSTANCE, batch)
                }
                fn process_logs(
                    batch: &$crate::guest::LogBatch,
                ) -> ::std::result::Result<$crate::guest::WitOutcome, $crate::guest::WitProcessError>
                {
                    $crate::guest::process_logs::<$ty>(&__WASMCOL_INSTANCE, batch)
                }
                fn tick(now_unix_nano: u64) {
                    $crate::guest::tick::<$ty>(&__WASMCOL_INSTANCE, now_unix_nano)
                }
                fn decide_trace(
                    trace: &$crate::guest::TraceBatch,
                    first_arrival_unix_nano: u64,
                    now_unix_nano: u64,
                ) -> ::std::result::Result<$crate::guest::WitDecision, $crate::guest::WitProcessError>
                {
                    $crate::guest::decide_trace::<$ty>(&__WASMCOL_INSTANCE, trace, first_arrival_unix_nano, now_unix_nano)
                }
            }
            $crate::guest::bindings::__wasmcol_export_world!(__WasmcolGlue with_types_in $crate::guest::bindings);
        };
        #[cfg(not(target_arch = "wasm32"))]
        const _: () = {
            fn __wasmcol_assert_processor<P: $crate::Processor>() {}
            let _ = __wasmcol_assert_processor::<$ty>;
        };
    };
}
