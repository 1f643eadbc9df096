//! Tracked background tasks that stop on shutdown.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Every task a component spawns goes through here, so shutdown can cancel them and wait for
/// them within a deadline.
#[derive(Clone, Default)]
pub struct Tasks {
    tracker: TaskTracker,
    cancel: CancellationToken,
}

impl Tasks {
    /// A fresh set of tasks.
    pub fn new() -> Self {
        Tasks::default()
    }

    /// A child set: cancelled with the parent, and separately cancellable.
    pub fn child(&self) -> Tasks {
        Tasks {
            tracker: TaskTracker::new(),
            cancel: self.cancel.child_token(),
        }
    }

    /// Spawns a tracked task.
    pub fn spawn<F>(&self, fut: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tracker.spawn(fut)
    }

    /// Spawns a tracked blocking task (file I/O, fjall, wasm compilation).
    pub fn spawn_blocking<F, T>(&self, f: F) -> tokio::task::JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.tracker.spawn_blocking(f)
    }

    /// The token tasks watch to know they should stop.
    pub fn token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// Whether stop was requested.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Asks every task to stop and waits up to `deadline`; returns whether all finished.
    pub async fn stop(&self, deadline: Duration) -> bool {
        self.cancel.cancel();
        self.tracker.close();
        tokio::time::timeout(deadline, self.tracker.wait())
            .await
            .is_ok()
    }

    /// Waits for tasks without cancelling them (used after a component drained itself).
    pub async fn wait(&self, deadline: Duration) -> bool {
        self.tracker.close();
        tokio::time::timeout(deadline, self.tracker.wait())
            .await
            .is_ok()
    }
}
