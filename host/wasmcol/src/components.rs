//! Every component type compiled into the binary. Each crate registers its own factories.

use std::sync::Arc;

use wasmcol_core::Registry;
use wasmcol_wasm::Runtime;

/// The registry with every built-in component and bundled plugin; plugins run on `plugins`.
pub fn registry(plugins: Arc<Runtime>) -> Registry {
    let mut r = Registry::new();
    wasmcol_components::register(&mut r);
    wasmcol_otlp::register(&mut r);
    wasmcol_delivery::register(&mut r);
    wasmcol_auth::register(&mut r);
    wasmcol_loadbalancing::register(
        &mut r,
        Arc::new(wasmcol_otlp::exporter::grpc::OtlpGrpcExporterFactory),
    );
    wasmcol_wasm::register(&mut r, plugins);
    r
}
