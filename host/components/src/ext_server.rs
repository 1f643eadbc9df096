//! The HTTP server an extension (`health_check`, `zpages`) runs: bound on `start`, a second
//! `start` is a no-op, stopped on `shutdown`.

use std::net::SocketAddr;

use parking_lot::Mutex;
use wasmcol_core::ComponentError;
use wasmcol_core::Tasks;
use wasmcol_core::http::{Handler, HttpServer, ServerLimits};

/// One extension's HTTP server, absent until started.
#[derive(Default)]
pub(crate) struct ExtensionServer(Mutex<Option<HttpServer>>);

impl ExtensionServer {
    /// Where it listens, once started.
    pub(crate) fn local_addr(&self) -> Option<SocketAddr> {
        self.0.lock().as_ref().map(HttpServer::local_addr)
    }

    /// Binds `endpoint` and serves `handler` as a tracked task of `tasks`. Returns the bound
    /// address, or `None` when it was already running. `name` prefixes a start error.
    pub(crate) async fn start(
        &self,
        name: &str,
        endpoint: &str,
        handler: Handler,
        limits: ServerLimits,
        tasks: &Tasks,
    ) -> Result<Option<SocketAddr>, ComponentError> {
        if self.0.lock().is_some() {
            return Ok(None);
        }
        let listener = wasmcol_core::http::bind(endpoint).await.map_err(|e| {
            ComponentError::new(format!("failed to bind to address {endpoint}: {e}"))
        })?;
        let server = HttpServer::start_with(listener, handler, limits, tasks)
            .map_err(|e| ComponentError::new(format!("{name}: {e}")))?;
        let addr = server.local_addr();
        *self.0.lock() = Some(server);
        Ok(Some(addr))
    }

    /// Stops the server, if it runs.
    pub(crate) async fn stop(&self) {
        let server = self.0.lock().take();
        if let Some(s) = server {
            s.stop().await;
        }
    }
}
