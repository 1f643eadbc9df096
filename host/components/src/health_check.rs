//! The `health_check` extension: an HTTP endpoint (default `localhost:13133/`) that answers
//! 200 with upstream's JSON once the collector has started all pipelines, and 503 while it is
//! starting or shutting down. Any method is answered, as upstream.
//!
//! `check_collector_pipeline` is accepted and validated; upstream documents it as not working
//! (contrib#11780) and it has no effect here either. Of the HTTP server keys, `response_headers`
//! and the timeouts are applied as on the OTLP/HTTP receiver; `include_metadata` and
//! `max_request_body_size` have nothing to act on (the endpoint reads no body and feeds no
//! pipeline); `tls`, `cors` and `auth` are refused until they are supported, rather than
//! silently serving without them.

use std::any::Any;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use wasmcol_config::{GoDuration, Value};
use wasmcol_core::component::ServiceStatus;
use wasmcol_core::http::{Handler, ServerLimits, TimeoutKeys};

use crate::ext_server::ExtensionServer;
use wasmcol_core::{
    BuildError, ComponentError, CreateContext, Extension, ExtensionFactory, Lifecycle,
};

use crate::timefmt::{go_duration, rfc3339};

/// `extensions: health_check:` with upstream's keys and defaults.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthCheckConfig {
    /// `host:port` to listen on (`localhost:13133`).
    pub endpoint: String,
    /// Path answered (`/`); a path ending in `/` also answers everything below it.
    pub path: String,
    /// Bodies replacing the JSON.
    pub response_body: Option<ResponseBody>,
    /// Accepted for compatibility; no effect (see the module docs).
    pub check_collector_pipeline: CheckCollectorPipeline,
    /// Headers added to every response.
    pub response_headers: BTreeMap<String, String>,
    /// Not supported yet.
    pub tls: Option<Value>,
    /// Not supported yet.
    pub cors: Option<Value>,
    /// Not supported yet.
    pub auth: Option<Value>,
    /// Nothing to act on: the endpoint feeds no pipeline.
    pub include_metadata: bool,
    /// Nothing to act on: the endpoint reads no body.
    pub max_request_body_size: Option<i64>,
    /// As on the OTLP/HTTP receiver (absent → 60s, 0 → none).
    pub read_timeout: Option<GoDuration>,
    /// As on the OTLP/HTTP receiver (absent → 30s).
    pub read_header_timeout: Option<GoDuration>,
    /// As on the OTLP/HTTP receiver (absent or 0 → none).
    pub write_timeout: Option<GoDuration>,
    /// As on the OTLP/HTTP receiver (absent → 60s).
    pub idle_timeout: Option<GoDuration>,
    /// `false`: one request per HTTP/1 connection.
    pub keep_alives_enabled: Option<bool>,
}

impl Default for HealthCheckConfig {
    fn default() -> Self {
        HealthCheckConfig {
            endpoint: "localhost:13133".to_owned(),
            path: "/".to_owned(),
            response_body: None,
            check_collector_pipeline: CheckCollectorPipeline::default(),
            response_headers: BTreeMap::new(),
            tls: None,
            cors: None,
            auth: None,
            include_metadata: false,
            max_request_body_size: None,
            read_timeout: None,
            read_header_timeout: None,
            write_timeout: None,
            idle_timeout: None,
            keep_alives_enabled: None,
        }
    }
}

/// `response_body`: replaces the JSON bodies (upstream then sets no JSON content type).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResponseBody {
    /// Body of the 200 answer.
    pub healthy: String,
    /// Body of the 503 answer.
    pub unhealthy: String,
}

/// `check_collector_pipeline`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CheckCollectorPipeline {
    /// Off by default.
    pub enabled: bool,
    /// Window over which exporter failures would be counted (5m).
    pub interval: GoDuration,
    /// Failures within the window that would make the collector unhealthy (5).
    pub exporter_failure_threshold: i64,
}

impl Default for CheckCollectorPipeline {
    fn default() -> Self {
        CheckCollectorPipeline {
            enabled: false,
            interval: GoDuration::secs(300),
            exporter_failure_threshold: 5,
        }
    }
}

impl HealthCheckConfig {
    /// Upstream's checks, with its messages, each prefixed with its key.
    pub fn validate(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.endpoint.is_empty() {
            p.push("endpoint: bad config: endpoint must be specified".to_owned());
        }
        if self.check_collector_pipeline.exporter_failure_threshold <= 0 {
            p.push("check_collector_pipeline.exporter_failure_threshold: bad config: exporter_failure_threshold expects a positive number".to_owned());
        }
        if !self.path.starts_with('/') {
            p.push("path: bad config: path must start with /".to_owned());
        }
        for (key, what, set) in [
            ("tls", "TLS", self.tls.is_some()),
            ("cors", "CORS", self.cors.is_some()),
            ("auth", "authentication", self.auth.is_some()),
        ] {
            if set {
                p.push(format!(
                    "{key}: {what} on the health_check endpoint is not supported yet; remove the key or put the endpoint behind a proxy"
                ));
            }
        }
        p
    }
}

/// Builds `health_check` extensions.
pub struct HealthCheckFactory;

impl ExtensionFactory for HealthCheckFactory {
    fn create(
        &self,
        ctx: &CreateContext,
        config: &Value,
    ) -> Result<Arc<dyn Extension>, BuildError> {
        let cfg: HealthCheckConfig = wasmcol_config::decode(config).map_err(BuildError::new)?;
        crate::check(cfg.validate())?;
        Ok(Arc::new(HealthCheck::new(
            cfg,
            ctx.status.clone(),
            ctx.tasks.clone(),
        )))
    }
}

/// A `health_check` extension.
pub struct HealthCheck {
    cfg: Arc<HealthCheckConfig>,
    status: Arc<ServiceStatus>,
    tasks: wasmcol_core::Tasks,
    server: ExtensionServer,
}

impl HealthCheck {
    /// An extension reporting `status`; it listens from [`Lifecycle::start`] on, serving
    /// connections in `tasks`.
    pub fn new(
        cfg: HealthCheckConfig,
        status: Arc<ServiceStatus>,
        tasks: wasmcol_core::Tasks,
    ) -> Self {
        HealthCheck {
            cfg: Arc::new(cfg),
            status,
            tasks,
            server: ExtensionServer::default(),
        }
    }

    /// Where it listens, once started.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.server.local_addr()
    }
}

#[async_trait]
impl Lifecycle for HealthCheck {
    async fn start(&self) -> Result<(), ComponentError> {
        if self.server.local_addr().is_some() {
            return Ok(());
        }
        if self.cfg.check_collector_pipeline.enabled {
            tracing::warn!(
                "health_check: check_collector_pipeline has no effect (upstream documents it as not working); readiness alone decides the answer"
            );
        }
        let (cfg, status) = (self.cfg.clone(), self.status.clone());
        let handler: Handler = Arc::new(move |req| {
            let resp = respond(&cfg, &status, req.uri().path());
            Box::pin(async move { resp })
        });
        let limits = ServerLimits::from_keys(TimeoutKeys {
            read_timeout: self.cfg.read_timeout.map(Into::into),
            read_header_timeout: self.cfg.read_header_timeout.map(Into::into),
            write_timeout: self.cfg.write_timeout.map(Into::into),
            idle_timeout: self.cfg.idle_timeout.map(Into::into),
            keep_alives_enabled: self.cfg.keep_alives_enabled,
        });
        let started = self
            .server
            .start(
                "health_check",
                &self.cfg.endpoint,
                handler,
                limits,
                &self.tasks,
            )
            .await?;
        if let Some(addr) = started {
            tracing::info!(endpoint = %addr, path = %self.cfg.path, "health_check listening");
        }
        Ok(())
    }

    async fn shutdown(&self) -> Result<(), ComponentError> {
        self.server.stop().await;
        Ok(())
    }
}

impl Extension for HealthCheck {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn endpoints(&self) -> Vec<wasmcol_core::Endpoint> {
        vec![wasmcol_core::Endpoint::new("endpoint", &self.cfg.endpoint)]
    }
}

/// Upstream's JSON body, fields in its order.
#[derive(Serialize)]
struct Body<'a> {
    status: &'a str,
    #[serde(rename = "upSince")]
    up_since: String,
    uptime: String,
}

/// Go's ServeMux: a pattern ending in `/` matches its subtree, any other only itself.
fn path_matches(pattern: &str, path: &str) -> bool {
    if pattern.ends_with('/') {
        path.starts_with(pattern)
    } else {
        path == pattern
    }
}

fn respond(
    cfg: &HealthCheckConfig,
    status: &ServiceStatus,
    path: &str,
) -> http::Response<http_body_util::Full<bytes::Bytes>> {
    let mut resp = if !path_matches(&cfg.path, path) {
        wasmcol_core::http::response(
            http::StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "404 page not found\n",
        )
    } else {
        let ready = status.is_ready();
        let code = if ready {
            http::StatusCode::OK
        } else {
            http::StatusCode::SERVICE_UNAVAILABLE
        };
        match &cfg.response_body {
            Some(b) => wasmcol_core::http::response(
                code,
                "text/plain; charset=utf-8",
                if ready {
                    b.healthy.clone()
                } else {
                    b.unhealthy.clone()
                },
            ),
            None => {
                // `ready_since` is set right after the flag; a request in between counts
                // its uptime from now.
                let since = ready.then(|| status.ready_since().unwrap_or_else(SystemTime::now));
                let body = match since {
                    Some(t) => Body {
                        status: "Server available",
                        up_since: rfc3339(t),
                        uptime: go_duration(
                            SystemTime::now().duration_since(t).unwrap_or_default(),
                        ),
                    },
                    None => Body {
                        status: "Server not available",
                        up_since: "0001-01-01T00:00:00Z".to_owned(),
                        uptime: String::new(),
                    },
                };
                let json = serde_json::to_string(&body).unwrap_or_default();
                wasmcol_core::http::response(code, "application/json", json)
            }
        }
    };
    for (k, v) in &cfg.response_headers {
        if let (Ok(k), Ok(v)) = (
            http::HeaderName::from_bytes(k.as_bytes()),
            http::HeaderValue::from_str(v),
        ) {
            resp.headers_mut().insert(k, v);
        }
    }
    resp
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use wasmcol_config::Kind;

    use super::*;
    use crate::testutil::{ctx, yaml};

    struct Reply {
        status: u16,
        headers: String,
        body: String,
    }

    /// A plain HTTP/1.1 request over a real socket.
    async fn request(addr: SocketAddr, method: &str, path: &str) -> Reply {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let req = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut raw = String::new();
        tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut raw))
            .await
            .unwrap()
            .unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap();
        let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        Reply {
            status,
            headers: head.to_lowercase(),
            body: body.to_owned(),
        }
    }

    async fn started(body: &str) -> (Arc<HealthCheck>, Arc<ServiceStatus>) {
        let c = ctx(Kind::Extension, "health_check");
        let cfg: HealthCheckConfig = wasmcol_config::decode(&yaml(body)).unwrap();
        assert!(cfg.validate().is_empty());
        let hc = Arc::new(HealthCheck::new(cfg, c.status.clone(), c.tasks.clone()));
        hc.start().await.unwrap();
        (hc, c.status)
    }

    #[tokio::test]
    async fn answers_503_until_ready_then_200() {
        let (hc, status) = started("endpoint: 127.0.0.1:0").await;
        let addr = hc.local_addr().unwrap();

        let r = request(addr, "GET", "/").await;
        assert_eq!(r.status, 503);
        assert!(
            r.headers.contains("content-type: application/json"),
            "{}",
            r.headers
        );
        assert_eq!(
            r.body,
            r#"{"status":"Server not available","upSince":"0001-01-01T00:00:00Z","uptime":""}"#
        );

        status.set_ready(true);
        let r = request(addr, "HEAD", "/").await;
        assert_eq!(r.status, 200, "any method is answered");
        let r = request(addr, "GET", "/").await;
        assert_eq!(r.status, 200);
        assert!(r.headers.contains("content-type: application/json"));
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["status"], "Server available");
        let up = v["upSince"].as_str().unwrap();
        assert!(
            up.len() >= 20 && up.ends_with('Z') && up.as_bytes()[10] == b'T',
            "{up}"
        );
        let uptime = v["uptime"].as_str().unwrap();
        assert!(uptime.ends_with('s') && !uptime.is_empty(), "{uptime}");
        let keys: Vec<&str> = r.body.split('"').skip(1).step_by(4).collect();
        assert_eq!(
            keys,
            ["status", "upSince", "uptime"],
            "upstream field order"
        );

        // Shutting down: not ready again.
        status.set_ready(false);
        assert_eq!(request(addr, "GET", "/").await.status, 503);

        hc.shutdown().await.unwrap();
        assert!(hc.local_addr().is_none());
        assert!(
            TcpStream::connect(addr).await.is_err(),
            "still listening after shutdown"
        );
    }

    #[tokio::test]
    async fn custom_path_bodies_and_headers() {
        let (hc, status) = started(
            "endpoint: 127.0.0.1:0\npath: /health/status\nresponse_body:\n  healthy: I'm OK\n  unhealthy: I'm bad\nresponse_headers:\n  X-Test: yes",
        )
        .await;
        let addr = hc.local_addr().unwrap();
        let r = request(addr, "GET", "/health/status").await;
        assert_eq!((r.status, r.body.as_str()), (503, "I'm bad"));
        assert!(r.headers.contains("x-test: yes"));
        status.set_ready(true);
        let r = request(addr, "POST", "/health/status").await;
        assert_eq!((r.status, r.body.as_str()), (200, "I'm OK"));
        let r = request(addr, "GET", "/").await;
        assert_eq!((r.status, r.body.as_str()), (404, "404 page not found\n"));
        let r = request(addr, "GET", "/health/status/x").await;
        assert_eq!(
            r.status, 404,
            "a path without trailing slash matches only itself"
        );
        hc.shutdown().await.unwrap();

        // The default path "/" answers every path, as Go's mux does.
        let (hc, _) = started("endpoint: 127.0.0.1:0").await;
        assert_eq!(
            request(hc.local_addr().unwrap(), "GET", "/anything")
                .await
                .status,
            503
        );
        hc.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn start_fails_when_the_port_is_taken() {
        let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = taken.local_addr().unwrap().to_string();
        let hc = HealthCheck::new(
            HealthCheckConfig {
                endpoint: endpoint.clone(),
                ..HealthCheckConfig::default()
            },
            Arc::new(ServiceStatus::default()),
            wasmcol_core::Tasks::new(),
        );
        let e = hc.start().await.unwrap_err();
        assert!(
            e.to_string()
                .starts_with(&format!("failed to bind to address {endpoint}")),
            "{e}"
        );
    }

    #[test]
    fn validation_messages_match_upstream() {
        let c = ctx(Kind::Extension, "health_check");
        let errors = |body: &str| {
            HealthCheckFactory
                .create(&c, &yaml(body))
                .err()
                .map(|e| e.0.iter().map(ToString::to_string).collect::<Vec<String>>())
                .unwrap_or_default()
        };
        let cfg: HealthCheckConfig = wasmcol_config::decode(&yaml("")).unwrap();
        assert_eq!(cfg.endpoint, "localhost:13133");
        assert_eq!(cfg.path, "/");
        assert_eq!(cfg.check_collector_pipeline.interval, GoDuration::secs(300));
        assert!(errors("").is_empty(), "building binds nothing");
        assert_eq!(
            errors(
                "endpoint: ''\npath: health\ncheck_collector_pipeline:\n  exporter_failure_threshold: 0"
            ),
            [
                "endpoint: bad config: endpoint must be specified",
                "check_collector_pipeline.exporter_failure_threshold: bad config: exporter_failure_threshold expects a positive number",
                "path: bad config: path must start with /",
            ]
        );
        let e = errors("check_collector_pipeline:\n  interval: often");
        assert!(
            e[0].starts_with("check_collector_pipeline.interval: "),
            "{e:?}"
        );
        let e = errors("tls:\n  cert_file: a.pem");
        assert!(
            e[0].starts_with("tls: TLS on the health_check endpoint is not supported"),
            "{e:?}"
        );
        let e = errors("endpont: 0.0.0.0:1");
        assert!(e[0].contains("unknown field `endpont`"), "{e:?}");
        assert!(errors("read_timeout: 5s\ninclude_metadata: true\ncheck_collector_pipeline:\n  enabled: true").is_empty());
    }
}
