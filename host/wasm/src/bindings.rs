//! Host bindings generated from `wit/plugin.wit`.

#![allow(missing_docs, clippy::all)]

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "processor",
    imports: { default: trappable },
    exports: { default: async },
    with: {
        "wasmcol:plugin/batch.trace-batch": crate::batch::TraceRes,
        "wasmcol:plugin/batch.metric-batch": crate::batch::MetricRes,
        "wasmcol:plugin/batch.log-batch": crate::batch::LogRes,
    },
});
