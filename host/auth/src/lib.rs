//! Authenticator extensions: [`bearer`] (`bearertokenauth`), [`basic`] (`basicauth`) and
//! [`headers`] (`headers_setter`). Receivers and exporters reach them through the traits in
//! `wasmcol_core::auth`.

#![forbid(unsafe_code)]

pub mod basic;
pub mod bearer;
pub mod headers;

use std::sync::Arc;

use wasmcol_core::Registry;
use wasmcol_core::registry::Factory;

/// Registers the three authenticator extensions.
pub fn register(r: &mut Registry) {
    r.register(
        "bearertokenauth",
        &[],
        "Bearer token authentication for receivers (server) and exporters (client).",
        Factory::Extension(Arc::new(bearer::BearerTokenAuthFactory)),
    );
    r.register(
        "basicauth",
        &[],
        "HTTP Basic authentication: htpasswd for receivers, client_auth for exporters.",
        Factory::Extension(Arc::new(basic::BasicAuthFactory)),
    );
    r.register(
        "headers_setter",
        &["headerssetter"],
        "Sets headers on exporters' requests.",
        Factory::Extension(Arc::new(headers::HeadersSetterFactory)),
    );
}

/// Compares two secrets in time that does not depend on where they differ.
pub(crate) fn same_secret(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}
