//! The `zpages` extension: HTTP pages (default `localhost:55679`) showing the running
//! service. As upstream: `/debug/servicez`, `/debug/pipelinez`, `/debug/extensionz`. Added:
//! `/debug/graphz`, the pipeline graph with live rates, queue fill, the failover level and
//! plugin errors, refreshing itself from `/debug/graphz.json`. Everything is inline (no
//! external assets), so the pages work offline.
//!
//! Numbers come from the collector's own metrics registry rendered as Prometheus text and
//! read back by [`stats`], the same reading `wasmcol top` does of the metrics endpoint.
//!
//! Of upstream's keys only `endpoint` is implemented; the other HTTP server keys and
//! `expvar` are refused with their path rather than accepted and ignored.

mod pages;
pub mod stats;

use std::any::Any;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use serde::Deserialize;
use wasmcol_config::Value;
use wasmcol_core::component::ServiceStatus;
use wasmcol_core::http::{Handler, ServerLimits};

use crate::ext_server::ExtensionServer;
use wasmcol_core::{
    BuildError, ComponentError, CreateContext, Extension, ExtensionFactory, Lifecycle, Metrics,
};

/// `extensions: zpages:`. Upstream embeds the full HTTP server config; the keys listed as
/// `Option<Value>` are known and refused.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ZPagesConfig {
    /// `host:port` to listen on (`localhost:55679`).
    pub endpoint: String,
    /// Not supported.
    pub expvar: Option<Value>,
    /// Not supported.
    pub tls: Option<Value>,
    /// Not supported.
    pub cors: Option<Value>,
    /// Not supported.
    pub auth: Option<Value>,
    /// Not supported.
    pub include_metadata: Option<Value>,
    /// Not supported.
    pub max_request_body_size: Option<Value>,
    /// Not supported.
    pub response_headers: Option<Value>,
    /// Not supported.
    pub compression_algorithms: Option<Value>,
    /// Not supported.
    pub read_timeout: Option<Value>,
    /// Not supported.
    pub read_header_timeout: Option<Value>,
    /// Not supported.
    pub write_timeout: Option<Value>,
    /// Not supported.
    pub idle_timeout: Option<Value>,
    /// Not supported.
    pub keep_alives_enabled: Option<Value>,
    /// Not supported.
    pub middlewares: Option<Value>,
}

impl Default for ZPagesConfig {
    fn default() -> Self {
        ZPagesConfig {
            endpoint: "localhost:55679".to_owned(),
            expvar: None,
            tls: None,
            cors: None,
            auth: None,
            include_metadata: None,
            max_request_body_size: None,
            response_headers: None,
            compression_algorithms: None,
            read_timeout: None,
            read_header_timeout: None,
            write_timeout: None,
            idle_timeout: None,
            keep_alives_enabled: None,
            middlewares: None,
        }
    }
}

impl ZPagesConfig {
    /// Every problem, each prefixed with its key.
    pub fn validate(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.endpoint.is_empty() {
            p.push("endpoint: bad config: endpoint must be specified".to_owned());
        }
        for (key, set) in [
            ("expvar", self.expvar.is_some()),
            ("tls", self.tls.is_some()),
            ("cors", self.cors.is_some()),
            ("auth", self.auth.is_some()),
            ("include_metadata", self.include_metadata.is_some()),
            (
                "max_request_body_size",
                self.max_request_body_size.is_some(),
            ),
            ("response_headers", self.response_headers.is_some()),
            (
                "compression_algorithms",
                self.compression_algorithms.is_some(),
            ),
            ("read_timeout", self.read_timeout.is_some()),
            ("read_header_timeout", self.read_header_timeout.is_some()),
            ("write_timeout", self.write_timeout.is_some()),
            ("idle_timeout", self.idle_timeout.is_some()),
            ("keep_alives_enabled", self.keep_alives_enabled.is_some()),
            ("middlewares", self.middlewares.is_some()),
        ] {
            if set {
                p.push(format!(
                    "{key}: not supported on the zpages extension; remove the key (only endpoint is implemented)"
                ));
            }
        }
        p
    }
}

/// Builds `zpages` extensions.
pub struct ZPagesFactory;

impl ExtensionFactory for ZPagesFactory {
    fn create(
        &self,
        ctx: &CreateContext,
        config: &Value,
    ) -> Result<Arc<dyn Extension>, BuildError> {
        let cfg: ZPagesConfig = wasmcol_config::decode(config).map_err(BuildError::new)?;
        crate::check(cfg.validate())?;
        Ok(Arc::new(ZPages::new(
            cfg,
            ctx.metrics.clone(),
            ctx.status.clone(),
            ctx.tasks.clone(),
        )))
    }
}

/// A `zpages` extension.
pub struct ZPages {
    cfg: ZPagesConfig,
    state: Arc<pages::State>,
    tasks: wasmcol_core::Tasks,
    server: ExtensionServer,
}

impl ZPages {
    /// An extension showing `status`'s service and `metrics`; it listens from
    /// [`Lifecycle::start`] on, serving connections in `tasks`.
    pub fn new(
        cfg: ZPagesConfig,
        metrics: Metrics,
        status: Arc<ServiceStatus>,
        tasks: wasmcol_core::Tasks,
    ) -> Self {
        ZPages {
            cfg,
            state: Arc::new(pages::State::new(metrics, status, SystemTime::now())),
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
impl Lifecycle for ZPages {
    async fn start(&self) -> Result<(), ComponentError> {
        let state = self.state.clone();
        let handler: Handler = Arc::new(move |req| {
            let resp = state.respond(req.uri().path());
            Box::pin(async move { resp })
        });
        let started = self
            .server
            .start(
                "zpages",
                &self.cfg.endpoint,
                handler,
                ServerLimits::default(),
                &self.tasks,
            )
            .await?;
        if let Some(addr) = started {
            tracing::info!(endpoint = %addr, "zpages listening");
        }
        Ok(())
    }

    async fn shutdown(&self) -> Result<(), ComponentError> {
        self.server.stop().await;
        Ok(())
    }
}

impl Extension for ZPages {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn endpoints(&self) -> Vec<wasmcol_core::Endpoint> {
        vec![wasmcol_core::Endpoint::new("endpoint", &self.cfg.endpoint)]
    }
}
