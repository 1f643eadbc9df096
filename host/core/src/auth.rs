//! Authentication between components and authenticator extensions (`bearertokenauth`,
//! `basicauth`, `headers_setter`): a receiver's `auth: {authenticator: ID}` checks every
//! request through the extension's [`ServerAuthenticator`]; an exporter's adds the
//! extension's [`ClientAuthenticator`] headers to every request. Extensions are looked up
//! by id among those the service starts, as upstream (`configauth`).

use std::sync::Arc;

use serde::Deserialize;
use wasmcol_config::{ComponentId, KeyError, Value};

use crate::{CreateContext, Extension};

/// Checks incoming requests: the server side of an authenticator extension.
pub trait ServerAuthenticator: Send + Sync {
    /// `Ok` when the request's headers authenticate it, with the attributes the authenticator
    /// established (upstream's `client.AuthData`, read as `auth.<name>` from the request
    /// context); the error is what the client reads (it must not reveal the expected
    /// credentials).
    fn authenticate(&self, headers: &http::HeaderMap) -> Result<AuthData, String>;
}

/// Attribute name and value pairs an authenticator established for a request.
pub type AuthData = Vec<(String, String)>;

/// Adds credentials to outgoing requests: the client side of an authenticator extension.
pub trait ClientAuthenticator: Send + Sync {
    /// Edits the headers of the next request (called per request, so a token reloaded from
    /// its file is used at once). `headers` already holds the exporter's own `headers`;
    /// `context` is the request context of the batch being sent (`headers_setter`'s
    /// `from_context` reads it).
    fn apply(
        &self,
        headers: &mut http::HeaderMap,
        context: &crate::pdata::RequestContext,
    ) -> Result<(), String>;
}

/// A component's `auth` block (upstream `configauth.Config`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// The id of the authenticator extension, e.g. `bearertokenauth/server`.
    pub authenticator: String,
    /// Query parameters handed to the authenticator as headers: refused (no bundled
    /// authenticator reads them).
    #[serde(default)]
    pub request_params: Vec<String>,
}

/// Decodes an `auth` block at `path`; errors carry key paths below it.
fn decode(path: &str, body: &Value) -> Result<(AuthConfig, ComponentId), KeyError> {
    let cfg: AuthConfig = wasmcol_config::decode(body).map_err(|e| e.within(path))?;
    if !cfg.request_params.is_empty() {
        return Err(KeyError::new(
            format!("{path}.request_params"),
            "not supported by wasmcol",
        ));
    }
    let id: ComponentId = cfg
        .authenticator
        .parse()
        .map_err(|e: String| KeyError::new(format!("{path}.authenticator"), e))?;
    Ok((cfg, id))
}

/// The server authenticator named by the `auth` block at `path` (`None` without one).
pub fn server(
    ctx: &CreateContext,
    path: &str,
    body: Option<&Value>,
) -> Result<Option<Arc<dyn ServerAuthenticator>>, KeyError> {
    resolve(ctx, path, body, "server", |e| e.server_authenticator())
}

/// The client authenticator named by the `auth` block at `path` (`None` without one).
pub fn client(
    ctx: &CreateContext,
    path: &str,
    body: Option<&Value>,
) -> Result<Option<Arc<dyn ClientAuthenticator>>, KeyError> {
    resolve(ctx, path, body, "client", |e| e.client_authenticator())
}

/// The `side` of the extension an `auth` block names, through `get`.
fn resolve<T: ?Sized>(
    ctx: &CreateContext,
    path: &str,
    body: Option<&Value>,
    side: &str,
    get: impl Fn(&dyn Extension) -> Option<Arc<T>>,
) -> Result<Option<Arc<T>>, KeyError> {
    let Some(body) = body.filter(|b| !b.is_null()) else {
        return Ok(None);
    };
    let (_, id) = decode(path, body)?;
    let ext = ctx
        .extensions
        .get(&id)
        .ok_or_else(|| not_found(path, &id))?;
    get(ext.as_ref()).map(Some).ok_or_else(|| {
        KeyError::new(
            format!("{path}.authenticator"),
            format!("extension \"{id}\" is not a {side} authenticator"),
        )
    })
}

/// Upstream's text, plus where the extension must be listed.
fn not_found(path: &str, id: &ComponentId) -> KeyError {
    KeyError::new(
        format!("{path}.authenticator"),
        format!(
            "failed to resolve authenticator \"{id}\": authenticator not found (configure it under `extensions` and list it in `service.extensions`)"
        ),
    )
}
