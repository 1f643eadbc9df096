//! Every component type compiled into the binary. Each crate registers its own factories.

use wasmcol_core::Registry;

/// The registry with every built-in component and bundled plugin.
pub fn registry() -> Registry {
    let mut r = Registry::new();
    wasmcol_components::register(&mut r);
    wasmcol_otlp::register(&mut r);
    wasmcol_delivery::register(&mut r);
    wasmcol_wasm::register(&mut r);
    r
}
