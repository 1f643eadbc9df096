//! The in-memory sending queue (upstream's `memory_queue.go`): bounded in `sizer` units,
//! sizes released only when a request is done, so in-flight requests count against capacity.

use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::{Notify, oneshot};
use tokio_util::sync::CancellationToken;
use wasmcol_config::exporterhelper::Sizer;
use wasmcol_core::{Batch, ConsumeError};

use super::{QueueObs, size_of, too_large};

/// Where a worker reports a request's result when the caller waits for it (`wait_for_result`).
pub type ResultTx = oneshot::Sender<Result<(), ConsumeError>>;

/// One queued request.
pub struct Entry {
    /// The data.
    pub batch: Batch,
    /// Its size in sizer units, released by [`MemoryQueue::done`].
    pub size: u64,
    /// The caller waiting for the result, if any.
    pub result: Option<ResultTx>,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Entry>,
    size: u64,
    closed: bool,
}

/// Bounded FIFO of requests shared by the exporter and its workers.
pub struct MemoryQueue {
    state: Mutex<State>,
    items: Notify,
    space: Notify,
    capacity: u64,
    sizer: Sizer,
    block_on_overflow: bool,
    drop_oldest: bool,
    obs: Arc<QueueObs>,
}

impl MemoryQueue {
    pub(crate) fn new(
        capacity: u64,
        sizer: Sizer,
        block_on_overflow: bool,
        drop_oldest: bool,
        obs: Arc<QueueObs>,
    ) -> Self {
        MemoryQueue {
            state: Mutex::new(State::default()),
            items: Notify::new(),
            space: Notify::new(),
            capacity,
            sizer,
            block_on_overflow,
            drop_oldest,
            obs,
        }
    }

    /// Adds a request. A full queue refuses with a retryable error carrying a retry hint
    /// (counted in `enqueue_failed`), waits for room with `block_on_overflow`, or evicts the
    /// oldest queued requests with `drop_oldest` (counted).
    pub async fn offer(&self, batch: Batch, result: Option<ResultTx>) -> Result<(), ConsumeError> {
        let size = size_of(self.sizer, &batch);
        let items = batch.item_count();
        if size == 0 {
            // Upstream accepts and discards empty requests.
            if let Some(tx) = result {
                let _ = tx.send(Ok(()));
            }
            return Ok(());
        }
        if size > self.capacity {
            self.obs.enqueue_failed(items);
            return Err(too_large(self.sizer, size, self.capacity));
        }
        let mut entry = Some(Entry {
            batch,
            size,
            result,
        });
        loop {
            let space = self.space.notified();
            tokio::pin!(space);
            space.as_mut().enable();
            let mut evicted = Vec::new();
            {
                let mut st = self.state.lock();
                if st.closed {
                    return Err(ConsumeError::ShuttingDown);
                }
                if self.drop_oldest {
                    while st.size + size > self.capacity {
                        let Some(old) = st.queue.pop_front() else {
                            break;
                        };
                        st.size -= old.size;
                        evicted.push(old);
                    }
                }
                if st.size + size <= self.capacity
                    && let Some(e) = entry.take()
                {
                    st.size += size;
                    st.queue.push_back(e);
                    self.obs.set_size(st.size);
                }
            }
            if !evicted.is_empty() {
                self.evicted(evicted);
            }
            if entry.is_none() {
                self.items.notify_one();
                return Ok(());
            }
            if !self.block_on_overflow {
                self.obs.enqueue_failed(items);
                return Err(self.obs.full_error());
            }
            space.await;
        }
    }

    fn evicted(&self, evicted: Vec<Entry>) {
        for e in evicted {
            let items = e.batch.item_count() as u64;
            self.obs.dropped(items);
            tracing::warn!(
                dropped_items = items,
                "sending queue full: dropped the oldest request (drop_oldest)"
            );
            if let Some(tx) = e.result {
                let _ = tx.send(Err(ConsumeError::permanent(
                    "dropped from a full sending queue (drop_oldest)",
                )));
            }
        }
    }

    /// The next request, waiting for one; `None` once the queue is closed and empty, or when
    /// `stop` is cancelled.
    pub async fn pop(&self, stop: &CancellationToken) -> Option<Entry> {
        loop {
            let notified = self.items.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut st = self.state.lock();
                if let Some(e) = st.queue.pop_front() {
                    let more = !st.queue.is_empty();
                    drop(st);
                    if more {
                        // Pass the wake-up on: one notify_one may stand for several pushes.
                        self.items.notify_one();
                    }
                    return Some(e);
                }
                if st.closed {
                    return None;
                }
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = stop.cancelled() => return None,
            }
        }
    }

    /// Releases a finished request's size.
    pub fn done(&self, size: u64) {
        {
            let mut st = self.state.lock();
            st.size = st.size.saturating_sub(size);
            self.obs.set_size(st.size);
        }
        self.space.notify_waiters();
    }

    /// Refuses new requests; workers drain what is queued and then stop.
    pub fn close(&self) {
        self.state.lock().closed = true;
        self.items.notify_waiters();
        self.space.notify_waiters();
    }

    /// Requests queued or in flight, in sizer units.
    pub fn size(&self) -> u64 {
        self.state.lock().size
    }

    /// Drops whatever is still queued (after the shutdown deadline); returns the requests.
    pub(crate) fn take_all(&self) -> Vec<Entry> {
        let mut st = self.state.lock();
        let all: Vec<Entry> = st.queue.drain(..).collect();
        for e in &all {
            st.size = st.size.saturating_sub(e.size);
        }
        self.obs.set_size(st.size);
        all
    }
}
