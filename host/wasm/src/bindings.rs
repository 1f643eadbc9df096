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

/// Host bindings generated from `wit/v0.2.0/plugin.wit`. The `types` and `batch`
/// interfaces of 0.1.0 are the ones above: a batch handle is one resource in both versions.
pub mod v2 {
    wasmtime::component::bindgen!({
        path: "../../wit/v0.2.0",
        world: "wasmcol:plugin/processor@0.2.0",
        imports: { default: trappable },
        exports: { default: async },
        with: {
            "wasmcol:plugin/types@0.1.0": crate::bindings::wasmcol::plugin::types,
            "wasmcol:plugin/batch@0.1.0": crate::bindings::wasmcol::plugin::batch,
        },
    });
}
