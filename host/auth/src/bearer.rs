//! `bearertokenauth`: one extension for both sides, as upstream. The server side accepts a
//! request whose `header` is `<scheme> <token>` for any configured token; the client side
//! sets that header with the first token. Tokens in `filename` are re-read when the file
//! changes (checked every second on a tracked task); a file that cannot be read or is
//! empty keeps the previous tokens and is logged.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use parking_lot::RwLock;
use serde::Deserialize;
use wasmcol_config::{KeyError, Value};
use wasmcol_core::auth::{AuthData, ClientAuthenticator, ServerAuthenticator};
use wasmcol_core::registry::ExtensionFactory;
use wasmcol_core::{BuildError, ComponentError, CreateContext, Extension, Lifecycle, Tasks};

/// How often `filename` is looked at for changes.
const RELOAD_EVERY: Duration = Duration::from_secs(1);

/// The extension's YAML body (upstream keys).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Header carrying the token (`Authorization`).
    #[serde(default = "authorization")]
    pub header: String,
    /// Scheme before the token (`Bearer`); empty sends the token alone.
    #[serde(default = "bearer")]
    pub scheme: String,
    /// One token.
    #[serde(default)]
    pub token: Option<String>,
    /// Several tokens (the server accepts any; the client sends the first).
    #[serde(default)]
    pub tokens: Vec<String>,
    /// A file of tokens, one per line.
    #[serde(default)]
    pub filename: Option<PathBuf>,
}

fn authorization() -> String {
    "Authorization".into()
}

fn bearer() -> String {
    "Bearer".into()
}

impl Config {
    /// Upstream's checks: exactly one source of tokens.
    fn check(&self) -> Vec<KeyError> {
        let mut errs = Vec::new();
        let sources = usize::from(self.token.as_deref().is_some_and(|t| !t.is_empty()))
            + usize::from(!self.tokens.is_empty())
            + usize::from(self.filename.is_some());
        if sources == 0 {
            errs.push(KeyError::new(
                "",
                "no bearer token provided: set token, tokens or filename",
            ));
        } else if sources > 1 {
            errs.push(KeyError::new(
                "",
                "only one of token, tokens or filename may be set",
            ));
        }
        if http::HeaderName::try_from(self.header.as_str()).is_err() {
            errs.push(KeyError::new("header", "not a valid header name"));
        }
        errs
    }
}

/// Builds `bearertokenauth` extensions.
pub struct BearerTokenAuthFactory;

impl ExtensionFactory for BearerTokenAuthFactory {
    fn create(
        &self,
        ctx: &CreateContext,
        config: &Value,
    ) -> Result<Arc<dyn Extension>, BuildError> {
        let cfg: Config = wasmcol_config::decode(config)?;
        let mut errs = cfg.check();
        let tokens = match (&cfg.filename, &cfg.token) {
            (Some(path), _) => match read_tokens(path) {
                Ok(t) => t,
                Err(e) => {
                    errs.push(KeyError::new("filename", e));
                    Vec::new()
                }
            },
            (None, Some(t)) => vec![t.clone()],
            (None, None) => cfg.tokens.clone(),
        };
        if !errs.is_empty() {
            return Err(BuildError(errs));
        }
        let header = http::HeaderName::try_from(cfg.header.as_str())
            .map_err(|e| BuildError(vec![KeyError::new("header", e.to_string())]))?;
        let modified = cfg.filename.as_deref().and_then(modified_at);
        Ok(Arc::new(BearerTokenAuth {
            shared: Arc::new(Shared {
                header,
                scheme: cfg.scheme.clone(),
                tokens: RwLock::new(tokens),
            }),
            filename: cfg.filename,
            modified,
            tasks: ctx.tasks.child(),
        }))
    }
}

/// The tokens in a file: one per non-empty line.
fn read_tokens(path: &std::path::Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let tokens: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    if tokens.is_empty() {
        return Err(format!("{} holds no token", path.display()));
    }
    Ok(tokens)
}

fn modified_at(path: &std::path::Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// What both sides read; the reload task replaces `tokens`.
struct Shared {
    header: http::HeaderName,
    scheme: String,
    tokens: RwLock<Vec<String>>,
}

impl Shared {
    fn expected(&self, token: &str) -> String {
        if self.scheme.is_empty() {
            token.to_owned()
        } else {
            format!("{} {token}", self.scheme)
        }
    }
}

impl ServerAuthenticator for Shared {
    fn authenticate(&self, headers: &http::HeaderMap) -> Result<AuthData, String> {
        let Some(got) = headers.get(&self.header) else {
            return Err(format!(
                "missing or empty authorization header: {}",
                self.header
            ));
        };
        let tokens = self.tokens.read();
        // Every token is compared, so the time taken does not tell which one came close.
        let mut ok = false;
        for t in tokens.iter() {
            ok |= crate::same_secret(got.as_bytes(), self.expected(t).as_bytes());
        }
        // Like upstream's bearertokenauth, a match establishes no attributes.
        if ok {
            Ok(AuthData::new())
        } else {
            Err("authentication didn't succeed".into())
        }
    }
}

impl ClientAuthenticator for Shared {
    fn apply(
        &self,
        headers: &mut http::HeaderMap,
        _context: &wasmcol_core::pdata::RequestContext,
    ) -> Result<(), String> {
        let tokens = self.tokens.read();
        let token = tokens.first().ok_or("bearertokenauth: no token")?;
        let mut value = http::HeaderValue::try_from(self.expected(token))
            .map_err(|_| "bearertokenauth: the token is not a valid header value")?;
        value.set_sensitive(true);
        headers.insert(self.header.clone(), value);
        Ok(())
    }
}

/// A `bearertokenauth` extension.
pub struct BearerTokenAuth {
    shared: Arc<Shared>,
    filename: Option<PathBuf>,
    modified: Option<SystemTime>,
    tasks: Tasks,
}

#[async_trait]
impl Lifecycle for BearerTokenAuth {
    async fn start(&self) -> Result<(), ComponentError> {
        let Some(path) = self.filename.clone() else {
            return Ok(());
        };
        let shared = self.shared.clone();
        let stop = self.tasks.token();
        let mut seen = self.modified;
        let tasks = self.tasks.clone();
        self.tasks.spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(RELOAD_EVERY) => {}
                }
                let p = path.clone();
                let before = seen;
                // The file is read only when its modification time moved.
                let Ok((now, read)) = tasks
                    .spawn_blocking(move || {
                        let now = modified_at(&p);
                        let read = (now != before).then(|| read_tokens(&p));
                        (now, read)
                    })
                    .await
                else {
                    continue;
                };
                let Some(read) = read else { continue };
                seen = now;
                match read {
                    Ok(t) => {
                        *shared.tokens.write() = t;
                        tracing::info!(file = %path.display(), "bearertokenauth: tokens reloaded");
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "bearertokenauth: keeping the previous tokens")
                    }
                }
            }
        });
        Ok(())
    }

    async fn shutdown(&self) -> Result<(), ComponentError> {
        self.tasks.stop_by_deadline().await;
        Ok(())
    }
}

impl Extension for BearerTokenAuth {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn server_authenticator(&self) -> Option<Arc<dyn ServerAuthenticator>> {
        Some(self.shared.clone())
    }

    fn client_authenticator(&self) -> Option<Arc<dyn ClientAuthenticator>> {
        Some(self.shared.clone())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn shared(scheme: &str, tokens: &[&str]) -> Shared {
        Shared {
            header: http::header::AUTHORIZATION,
            scheme: scheme.into(),
            tokens: RwLock::new(tokens.iter().map(|t| (*t).to_owned()).collect()),
        }
    }

    fn with(value: &str) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        h.insert(http::header::AUTHORIZATION, value.parse().unwrap());
        h
    }

    /// Scenario: a server with two tokens; requests with each, a wrong one, a wrong scheme,
    /// none. Guarantees: only `Bearer <token>` of a configured token passes; the client side
    /// writes exactly what the server accepts.
    #[test]
    fn tokens_schemes_and_the_client_header() {
        let s = shared("Bearer", &["alpha", "beta"]);
        assert!(s.authenticate(&with("Bearer alpha")).is_ok());
        assert!(s.authenticate(&with("Bearer beta")).is_ok());
        assert!(s.authenticate(&with("Bearer gamma")).is_err());
        assert!(s.authenticate(&with("Basic alpha")).is_err());
        assert!(s.authenticate(&http::HeaderMap::new()).is_err());
        let mut out = http::HeaderMap::new();
        s.apply(&mut out, &Default::default()).unwrap();
        assert!(s.authenticate(&out).is_ok());
        let raw = shared("", &["alpha"]);
        assert!(raw.authenticate(&with("alpha")).is_ok());
    }

    /// Scenario: configs with no token, with two sources, with a bad header name.
    /// Guarantees: each is refused with its key.
    #[test]
    fn config_needs_exactly_one_source() {
        let check = |y: &str| {
            let c: Config = serde_yaml::from_str(y).unwrap();
            c.check()
                .into_iter()
                .map(|e| format!("{}: {}", e.path, e.message))
                .collect::<Vec<_>>()
        };
        assert_eq!(check("scheme: Bearer").len(), 1);
        assert_eq!(check("token: a\ntokens: [b]").len(), 1);
        assert!(check("token: a\nheader: 'bad header'")[0].starts_with("header:"));
        assert!(check("tokens: [a, b]").is_empty());
    }
}
