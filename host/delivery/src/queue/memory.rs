//! The in-memory sending queue (upstream's `memory_queue.go`): bounded in `sizer` units and,
//! whatever the sizer, in encoded bytes (a wasmcol addition: a queue of 1000 large requests
//! could otherwise hold gigabytes). Sizes are released only when a request is done, so
//! in-flight requests count against capacity.

use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::{Notify, oneshot};
use tokio_util::sync::CancellationToken;
use wasmcol_config::exporterhelper::Sizer;
use wasmcol_core::{Batch, ConsumeError};

use super::{BatchPlan, Group, QueueObs, size_of, too_large};

/// Where a worker reports a request's result when the caller waits for it (`wait_for_result`).
pub type ResultTx = oneshot::Sender<Result<(), ConsumeError>>;

/// One queued request.
pub struct Entry {
    /// The data.
    pub batch: Batch,
    /// Its size in sizer units, released by [`MemoryQueue::done`].
    pub size: u64,
    /// Its encoded size, counted against the queue's byte bound until done.
    pub bytes: u64,
    /// The caller waiting for the result, if any.
    pub result: Option<ResultTx>,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Entry>,
    size: u64,
    bytes: u64,
    closed: bool,
}

/// Bounded FIFO of requests shared by the exporter and its workers.
pub struct MemoryQueue {
    state: Mutex<State>,
    items: Notify,
    space: Notify,
    capacity: u64,
    /// Bound on the encoded bytes queued or in flight, whatever the sizer.
    max_bytes: u64,
    sizer: Sizer,
    block_on_overflow: bool,
    drop_oldest: bool,
    obs: Arc<QueueObs>,
}

impl MemoryQueue {
    pub(crate) fn new(
        capacity: u64,
        max_bytes: u64,
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
            max_bytes,
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
        // Encoded once here, so that retries and merges reuse the bytes.
        let batch = batch.into_encoded();
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
        let bytes = batch.encoded_len() as u64;
        if bytes > self.max_bytes {
            self.obs.enqueue_failed(items);
            return Err(too_large(Sizer::Bytes, bytes, self.max_bytes));
        }
        let mut entry = Some(Entry {
            batch,
            size,
            bytes,
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
                    while st.size + size > self.capacity || st.bytes + bytes > self.max_bytes {
                        let Some(old) = st.queue.pop_front() else {
                            break;
                        };
                        st.size -= old.size;
                        st.bytes -= old.bytes;
                        evicted.push(old);
                    }
                }
                if st.size + size <= self.capacity
                    && st.bytes + bytes <= self.max_bytes
                    && let Some(e) = entry.take()
                {
                    st.size += size;
                    st.bytes += bytes;
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

    /// Queued requests for one merged export (see [`BatchPlan`]): waits for the first, then
    /// takes more until `min_size` is reached, the next would pass `max_size`, or
    /// `flush_timeout` has passed since the first was taken. A closed queue hands out what it
    /// holds without waiting. `None` once the queue is closed and empty, or when `stop` is
    /// cancelled with nothing taken.
    pub async fn pop_group(
        &self,
        stop: &CancellationToken,
        plan: &BatchPlan,
    ) -> Option<Vec<Entry>> {
        let mut group = Group::new();
        loop {
            let notified = self.items.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let closed = {
                let mut st = self.state.lock();
                while !group.ready(plan)
                    && let Some(front) = st.queue.front()
                {
                    let size = plan.measure(
                        front.batch.item_count() as u64,
                        front.batch.encoded_len() as u64,
                    );
                    if !group.admits(plan, size) {
                        break;
                    }
                    if let Some(e) = st.queue.pop_front() {
                        group.push(plan, e, size);
                    }
                }
                st.closed
            };
            if group.ready(plan) || (closed && !group.is_empty()) {
                return group.into_entries();
            }
            if closed {
                return None;
            }
            if group.wait(plan, notified.as_mut(), stop).await {
                return group.into_entries();
            }
        }
    }

    /// Releases a finished request's size and bytes.
    pub fn done(&self, size: u64, bytes: u64) {
        {
            let mut st = self.state.lock();
            st.size = st.size.saturating_sub(size);
            st.bytes = st.bytes.saturating_sub(bytes);
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
            st.bytes = st.bytes.saturating_sub(e.bytes);
        }
        self.obs.set_size(st.size);
        all
    }
}
