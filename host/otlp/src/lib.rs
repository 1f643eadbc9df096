//! stub
/// Registers this crate's factories.
pub fn register(_r: &mut wasmcol_core::Registry) {}
