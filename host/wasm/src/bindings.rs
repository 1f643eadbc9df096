//! Host bindings generated from `wit/plugin.wit`.

#![allow(missing_docs, clippy::all)]

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "processor",
    imports: { default: trappable },
    exports: { default: async },
    with: {
        "wasmcol:plugin/batch.trace-batch": crate::host::TraceRes,
        "wasmcol:plugin/batch.metric-batch": crate::host::MetricRes,
        "wasmcol:plugin/batch.log-batch": crate::host::LogRes,
    },
});
