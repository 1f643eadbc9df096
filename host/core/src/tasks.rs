//! Tracked background tasks that stop on shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Every task a component spawns goes through here, so shutdown can cancel them and wait for
/// them within a deadline.
///
/// Sets form a tree: each component gets a child set it can stop on its own, and every child
/// (at any depth) is registered with the root, so stopping the root waits for all of them.
#[derive(Clone, Default)]
pub struct Tasks {
    tracker: TaskTracker,
    cancel: CancellationToken,
    /// Trackers of all descendants, shared by the whole tree; only the root waits on them.
    descendants: Arc<Mutex<Vec<TaskTracker>>>,
    /// The service's shutdown deadline, shared by the whole tree; unset until shutdown begins.
    deadline: Arc<Mutex<Option<Instant>>>,
    is_child: bool,
}

impl Tasks {
    /// A fresh set of tasks.
    pub fn new() -> Self {
        Tasks::default()
    }

    /// A child set: cancelled with the parent, separately cancellable, and waited for when the
    /// root stops.
    pub fn child(&self) -> Tasks {
        let tracker = TaskTracker::new();
        self.descendants.lock().push(tracker.clone());
        Tasks {
            tracker,
            cancel: self.cancel.child_token(),
            descendants: self.descendants.clone(),
            deadline: self.deadline.clone(),
            is_child: true,
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

    /// Sets the moment by which shutdown must be over, for every set in the tree. The service
    /// sets it from `service.shutdown_timeout` when its shutdown begins, so each component's
    /// shutdown work is bounded by that one deadline.
    pub fn set_deadline(&self, at: Instant) {
        *self.deadline.lock() = Some(at);
    }

    /// The shutdown deadline, once shutdown has begun.
    pub fn deadline(&self) -> Option<Instant> {
        *self.deadline.lock()
    }

    /// Time left until the shutdown deadline (zero once passed, `None` before shutdown).
    pub fn time_left(&self) -> Option<Duration> {
        self.deadline()
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// Asks every task to stop and waits for them until the shutdown deadline; returns
    /// whether all finished. With no deadline set (a component shut down outside a service,
    /// as in tests), waits until they finish.
    pub async fn stop_by_deadline(&self) -> bool {
        self.cancel.cancel();
        self.wait_by_deadline().await
    }

    /// Waits for tasks without cancelling them until the shutdown deadline; returns whether
    /// all finished. With no deadline set, waits until they finish.
    pub async fn wait_by_deadline(&self) -> bool {
        match self.deadline() {
            Some(at) => tokio::time::timeout_at(at, self.wait_all()).await.is_ok(),
            None => {
                self.wait_all().await;
                true
            }
        }
    }

    /// Asks every task to stop and waits up to `deadline`; returns whether all finished.
    /// On the root this includes every child set.
    pub async fn stop(&self, deadline: Duration) -> bool {
        self.cancel.cancel();
        self.wait(deadline).await
    }

    /// Waits for tasks without cancelling them (used after a component drained itself).
    /// On the root this includes every child set.
    pub async fn wait(&self, deadline: Duration) -> bool {
        tokio::time::timeout(deadline, self.wait_all())
            .await
            .is_ok()
    }

    async fn wait_all(&self) {
        let mut trackers = vec![self.tracker.clone()];
        if !self.is_child {
            trackers.extend(self.descendants.lock().iter().cloned());
        }
        for t in &trackers {
            t.close();
            t.wait().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_root_waits_for_tasks_of_every_child() {
        let root = Tasks::new();
        let child = root.child();
        let grandchild = child.child();
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let d = done.clone();
        let token = grandchild.token();
        grandchild.spawn(async move {
            token.cancelled().await;
            tokio::task::yield_now().await;
            d.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        assert!(root.stop(Duration::from_secs(5)).await);
        assert!(
            done.load(std::sync::atomic::Ordering::SeqCst),
            "the grandchild's task ran to its end"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn every_set_in_the_tree_waits_until_the_one_deadline() {
        let root = Tasks::new();
        let child = root.child();
        child.spawn(std::future::pending::<()>());
        let start = Instant::now();
        root.set_deadline(start + Duration::from_secs(3));
        assert_eq!(child.deadline(), root.deadline());
        assert!(
            !child.stop_by_deadline().await,
            "a hung task is left behind"
        );
        assert_eq!(start.elapsed(), Duration::from_secs(3));
        assert_eq!(child.time_left(), Some(Duration::ZERO));
    }

    #[tokio::test]
    async fn a_child_stops_only_its_own_tasks() {
        let root = Tasks::new();
        let a = root.child();
        let b = root.child();
        let b_token = b.token();
        b.spawn(async move { b_token.cancelled().await });
        assert!(a.stop(Duration::from_millis(100)).await);
        assert!(
            !b.is_cancelled(),
            "stopping one child leaves its sibling running"
        );
        assert!(root.stop(Duration::from_secs(5)).await);
    }
}
