//! The epoch ticker: a thread owned by the runtime that advances its engines' epochs every
//! millisecond while at least one plugin call is in flight, and parks otherwise. Deadlines
//! are checked, and calls yield to the executor, at each tick. The thread stops and is
//! joined when the runtime shuts down or is dropped; calls after that are refused, since
//! nothing would interrupt them.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::{JoinHandle, Thread};
use std::time::Duration;

use parking_lot::Mutex;
use wasmtime::Engine;

use crate::error::LoadError;

/// Epoch tick: the granularity of deadlines and of yields to the executor.
pub(crate) const TICK: Duration = Duration::from_millis(1);

struct Shared {
    engines: Mutex<Vec<Engine>>,
    active: AtomicUsize,
    stopped: AtomicBool,
    thread: OnceLock<Thread>,
}

impl Shared {
    fn wake(&self) {
        if let Some(t) = self.thread.get() {
            t.unpark();
        }
    }
}

/// The ticker thread and its state; owned by one runtime.
pub(crate) struct Epoch {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// What plugins and instances keep to mark calls in flight.
#[derive(Clone)]
pub(crate) struct EpochHandle(Arc<Shared>);

/// Keeps the ticker running while a call is in flight.
pub(crate) struct TickGuard(Arc<Shared>);

impl Epoch {
    /// Starts the ticker thread.
    pub(crate) fn start() -> Result<Epoch, LoadError> {
        let shared = Arc::new(Shared {
            engines: Mutex::new(Vec::new()),
            active: AtomicUsize::new(0),
            stopped: AtomicBool::new(false),
            thread: OnceLock::new(),
        });
        let ticker = shared.clone();
        let handle = std::thread::Builder::new()
            .name("wasmcol-epoch".into())
            .spawn(move || run(&ticker))
            .map_err(|e| {
                LoadError::Runtime(format!("cannot start the plugin epoch thread: {e}"))
            })?;
        let _ = shared.thread.set(handle.thread().clone());
        Ok(Epoch {
            shared,
            thread: Mutex::new(Some(handle)),
        })
    }

    /// Adds an engine whose epoch the thread advances.
    pub(crate) fn register(&self, engine: &Engine) {
        self.shared.engines.lock().push(engine.clone());
    }

    /// A handle for marking calls in flight.
    pub(crate) fn handle(&self) -> EpochHandle {
        EpochHandle(self.shared.clone())
    }

    /// Stops the thread and waits for it (at most one tick, as it is woken).
    pub(crate) fn stop(&self) {
        self.shared.stopped.store(true, Ordering::Release);
        self.shared.wake();
        let handle = self.thread.lock().take();
        if let Some(h) = handle
            && h.join().is_err()
        {
            tracing::error!("the plugin epoch thread panicked");
        }
    }
}

impl Drop for Epoch {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(shared: &Shared) {
    while !shared.stopped.load(Ordering::Acquire) {
        if shared.active.load(Ordering::Acquire) == 0 {
            std::thread::park_timeout(Duration::from_secs(1));
            continue;
        }
        std::thread::sleep(TICK);
        for e in shared.engines.lock().iter() {
            e.increment_epoch();
        }
    }
}

impl EpochHandle {
    /// Marks a call in flight; `None` once the ticker has stopped.
    pub(crate) fn enter(&self) -> Option<TickGuard> {
        let s = &self.0;
        if s.stopped.load(Ordering::Acquire) {
            return None;
        }
        if s.active.fetch_add(1, Ordering::AcqRel) == 0 {
            s.wake();
        }
        Some(TickGuard(s.clone()))
    }
}

impl Drop for TickGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_joins_the_thread_and_refuses_further_calls() {
        let epoch = Epoch::start().unwrap();
        let handle = epoch.handle();
        let guard = handle.enter();
        assert!(guard.is_some());
        drop(guard);
        epoch.stop();
        assert!(epoch.thread.lock().is_none(), "the thread was not joined");
        assert!(handle.enter().is_none());
        // Stopping again (as drop does) is harmless.
        epoch.stop();
    }
}
