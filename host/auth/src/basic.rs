//! `basicauth`: the server side checks `Authorization: Basic base64(user:password)` against
//! htpasswd entries (`htpasswd.file` and `htpasswd.inline`, read at start); the client side
//! sends `client_auth`. Entries may be bcrypt (`$2a$`, `$2b$`, `$2y$`), `{SHA}` or plain
//! text; `$apr1$` (MD5) and crypt entries are refused at start rather than never matching.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use sha1::{Digest, Sha1};
use wasmcol_config::{KeyError, Value};
use wasmcol_core::auth::{AuthData, ClientAuthenticator, ServerAuthenticator};
use wasmcol_core::registry::ExtensionFactory;
use wasmcol_core::{BuildError, CreateContext, Extension, Lifecycle};

/// The extension's YAML body (upstream keys).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Server side: who may send.
    #[serde(default)]
    pub htpasswd: Option<Htpasswd>,
    /// Client side: what to send.
    #[serde(default)]
    pub client_auth: Option<ClientAuth>,
}

/// `htpasswd`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Htpasswd {
    /// An htpasswd file.
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// htpasswd lines inline (`user:password-or-hash`).
    #[serde(default)]
    pub inline: Option<String>,
}

/// `client_auth`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientAuth {
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
}

/// One htpasswd entry's secret.
#[derive(Debug, Clone, PartialEq)]
enum Secret {
    Bcrypt(String),
    Sha1(Vec<u8>),
    Plain(String),
}

impl Secret {
    fn parse(hash: &str) -> Result<Secret, String> {
        if hash.starts_with("$2a$") || hash.starts_with("$2b$") || hash.starts_with("$2y$") {
            return Ok(Secret::Bcrypt(hash.to_owned()));
        }
        if let Some(b64) = hash.strip_prefix("{SHA}") {
            return STANDARD
                .decode(b64)
                .map(Secret::Sha1)
                .map_err(|_| "a {SHA} entry that is not base64".to_owned());
        }
        if hash.starts_with("$apr1$")
            || hash.starts_with("$1$")
            || hash.starts_with("$5$")
            || hash.starts_with("$6$")
        {
            return Err("MD5/crypt entries are not supported; use bcrypt (htpasswd -B)".into());
        }
        Ok(Secret::Plain(hash.to_owned()))
    }

    fn matches(&self, password: &str) -> bool {
        match self {
            Secret::Bcrypt(h) => bcrypt::verify(password, h).unwrap_or(false),
            Secret::Sha1(d) => crate::same_secret(&Sha1::digest(password.as_bytes()), d),
            Secret::Plain(p) => crate::same_secret(p.as_bytes(), password.as_bytes()),
        }
    }
}

/// Parses htpasswd text; `source` names it in errors (`htpasswd.file`, `htpasswd.inline`).
fn parse_htpasswd(
    text: &str,
    source: &str,
    users: &mut HashMap<String, Secret>,
    errs: &mut Vec<KeyError>,
) {
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((user, hash)) = line.split_once(':') else {
            errs.push(KeyError::new(
                source,
                format!("line {}: expected user:password", n + 1),
            ));
            continue;
        };
        match Secret::parse(hash) {
            Ok(s) => {
                users.insert(user.to_owned(), s);
            }
            Err(e) => errs.push(KeyError::new(source, format!("line {}: {e}", n + 1))),
        }
    }
}

/// Builds `basicauth` extensions.
pub struct BasicAuthFactory;

impl ExtensionFactory for BasicAuthFactory {
    fn create(
        &self,
        _ctx: &CreateContext,
        config: &Value,
    ) -> Result<Arc<dyn Extension>, BuildError> {
        let cfg: Config = wasmcol_config::decode(config)?;
        let mut errs = Vec::new();
        if cfg.htpasswd.is_none() && cfg.client_auth.is_none() {
            errs.push(KeyError::new(
                "",
                "no credential source provided: set htpasswd (server) or client_auth (client)",
            ));
        }
        let mut users = HashMap::new();
        if let Some(h) = &cfg.htpasswd {
            if let Some(path) = &h.file {
                match std::fs::read_to_string(path) {
                    Ok(text) => parse_htpasswd(&text, "htpasswd.file", &mut users, &mut errs),
                    Err(e) => errs.push(KeyError::new(
                        "htpasswd.file",
                        format!("cannot read {}: {e}", path.display()),
                    )),
                }
            }
            if let Some(text) = &h.inline {
                parse_htpasswd(text, "htpasswd.inline", &mut users, &mut errs);
            }
            if users.is_empty() && errs.is_empty() {
                errs.push(KeyError::new("htpasswd", "no users"));
            }
        }
        let client = match &cfg.client_auth {
            Some(c) => {
                let raw = STANDARD.encode(format!("{}:{}", c.username, c.password));
                match http::HeaderValue::try_from(format!("Basic {raw}")) {
                    Ok(mut v) => {
                        v.set_sensitive(true);
                        Some(v)
                    }
                    Err(e) => {
                        errs.push(KeyError::new("client_auth", e.to_string()));
                        None
                    }
                }
            }
            None => None,
        };
        if !errs.is_empty() {
            return Err(BuildError(errs));
        }
        Ok(Arc::new(BasicAuth {
            server: cfg.htpasswd.is_some().then(|| Arc::new(Server { users })),
            client: client.map(|header| Arc::new(Client { header })),
        }))
    }
}

struct Server {
    users: HashMap<String, Secret>,
}

impl ServerAuthenticator for Server {
    fn authenticate(&self, headers: &http::HeaderMap) -> Result<AuthData, String> {
        let value = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or("no basic auth provided")?;
        let encoded = value
            .strip_prefix("Basic ")
            .ok_or("invalid authorization scheme prefix")?;
        let decoded = STANDARD
            .decode(encoded.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or("invalid base64 in the authorization header")?;
        let (user, password) = decoded
            .split_once(':')
            .ok_or("invalid format of the basic auth credentials")?;
        match self.users.get(user) {
            // Upstream's basicauth exposes the user and the encoded credentials.
            Some(secret) if secret.matches(password) => Ok(vec![
                ("username".to_owned(), user.to_owned()),
                ("raw".to_owned(), encoded.trim().to_owned()),
            ]),
            _ => Err("invalid credentials".into()),
        }
    }
}

struct Client {
    header: http::HeaderValue,
}

impl ClientAuthenticator for Client {
    fn apply(
        &self,
        headers: &mut http::HeaderMap,
        _context: &wasmcol_core::pdata::RequestContext,
    ) -> Result<(), String> {
        headers.insert(http::header::AUTHORIZATION, self.header.clone());
        Ok(())
    }
}

/// A `basicauth` extension: a server side with `htpasswd`, a client side with `client_auth`.
pub struct BasicAuth {
    server: Option<Arc<Server>>,
    client: Option<Arc<Client>>,
}

#[async_trait]
impl Lifecycle for BasicAuth {}

impl Extension for BasicAuth {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn server_authenticator(&self) -> Option<Arc<dyn ServerAuthenticator>> {
        self.server
            .clone()
            .map(|s| s as Arc<dyn ServerAuthenticator>)
    }

    fn client_authenticator(&self) -> Option<Arc<dyn ClientAuthenticator>> {
        self.client
            .clone()
            .map(|c| c as Arc<dyn ClientAuthenticator>)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn basic(user: &str, password: &str) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        let v = format!("Basic {}", STANDARD.encode(format!("{user}:{password}")));
        h.insert(http::header::AUTHORIZATION, v.parse().unwrap());
        h
    }

    /// Scenario: htpasswd with a bcrypt, a {SHA} and a plain entry, then an MD5 one.
    /// Guarantees: each user passes with its password only; unknown users and other schemes
    /// fail; the MD5 line is refused with its line number.
    #[test]
    fn htpasswd_entries() {
        let bcrypt_hash = bcrypt::hash("s3cret", 4).unwrap();
        let sha = STANDARD.encode(Sha1::digest(b"hunter2"));
        let text = format!("# users\nann:{bcrypt_hash}\nbob:{{SHA}}{sha}\ncid:plain-pw\n");
        let mut users = HashMap::new();
        let mut errs = Vec::new();
        parse_htpasswd(&text, "htpasswd.inline", &mut users, &mut errs);
        assert!(errs.is_empty(), "{errs:?}");
        let s = Server { users };
        assert!(s.authenticate(&basic("ann", "s3cret")).is_ok());
        assert!(s.authenticate(&basic("ann", "wrong")).is_err());
        assert!(s.authenticate(&basic("bob", "hunter2")).is_ok());
        assert!(s.authenticate(&basic("cid", "plain-pw")).is_ok());
        assert!(s.authenticate(&basic("dan", "plain-pw")).is_err());
        assert!(s.authenticate(&http::HeaderMap::new()).is_err());
        let mut bearer = http::HeaderMap::new();
        bearer.insert(http::header::AUTHORIZATION, "Bearer x".parse().unwrap());
        assert!(s.authenticate(&bearer).is_err());
        let mut errs = Vec::new();
        parse_htpasswd(
            "eve:$apr1$x$y\n",
            "htpasswd.file",
            &mut HashMap::new(),
            &mut errs,
        );
        assert_eq!(errs.len(), 1);
        assert!(errs[0].message.starts_with("line 1: MD5"), "{errs:?}");
    }

    /// Scenario: the client side of `client_auth`. Guarantees: its header passes a server
    /// with the same user in plain text.
    #[test]
    fn client_header_passes_the_server() {
        let header = format!("Basic {}", STANDARD.encode("u:p"));
        let c = Client {
            header: header.parse().unwrap(),
        };
        let mut h = http::HeaderMap::new();
        c.apply(&mut h, &Default::default()).unwrap();
        let mut users = HashMap::new();
        users.insert("u".to_owned(), Secret::Plain("p".into()));
        assert!(Server { users }.authenticate(&h).is_ok());
    }
}
