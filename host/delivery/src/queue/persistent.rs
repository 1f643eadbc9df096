//! The persistent sending queue on a `file_storage` extension.
//!
//! ```text
//!   offer ──▶ reserve size ──▶ writer (group commit, fsync) ──▶ durable ──▶ ready ──▶ worker
//!                                                                                    │
//!   delete ◀──────────────── backend acknowledged (or request given up) ◀────────────┘
//! ```
//!
//! A request is acknowledged to the caller only once its record is durable. It stays on disk
//! while a worker sends it and is deleted only after the backend accepted it (or it failed
//! permanently or ran out of retries, counted as `send_failed`). Nothing is deleted on
//! shutdown: a worker interrupted mid-send leaves its record, so after a restart or a crash
//! every record still on disk is sent again (at-least-once, duplicates possible).
//!
//! At start the keyspace is scanned in key order; a record whose header, checksum or payload
//! is bad is moved to the quarantine keyspace and counted in
//! `wasmcol_exporter_queue_quarantined_records`, never retried and never fatal. A backlog
//! larger than the capacity is loaded as is; new data is refused until it drains.
//!
//! Recently enqueued requests are also kept in memory (up to [`CACHE_BYTES`] per queue) so a
//! queue that keeps up never reads back what it just wrote.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::{Notify, oneshot};
use tokio_util::sync::CancellationToken;
use wasmcol_config::exporterhelper::Sizer;
use wasmcol_core::{Batch, ConsumeError, Counter, Signal, Tasks};

use super::{BatchPlan, Group, QueueObs, size_of, too_large};
use crate::record::{self, CorruptRecord};
use crate::storage::{Op, StorageError, Store};

/// Bytes of recently enqueued requests a queue keeps in memory besides on disk.
pub const CACHE_BYTES: u64 = 32 << 20;

#[derive(Clone)]
struct Meta {
    size: u64,
    /// Stored record bytes (counted against the storage cap and the cache).
    bytes: u64,
    /// Protobuf payload bytes, as the `bytes` sizer counts them.
    payload: u64,
    items: u64,
    cached: Option<Batch>,
}

#[derive(Default)]
struct State {
    ready: BTreeMap<u64, Meta>,
    size: u64,
    next_seq: u64,
    cached_bytes: u64,
    started: bool,
    closed: bool,
}

/// Wait before a read that found the storage reopening is tried again.
const READ_RETRY: std::time::Duration = std::time::Duration::from_millis(100);

/// Why a record could not be read.
enum Unread {
    /// The record is damaged (its bytes, if any could be read, and why).
    Corrupt(Vec<u8>, CorruptRecord),
    /// The storage is being reopened; the record is fine.
    Unavailable(StorageError),
}

/// Reads and decodes one record. Blocking.
fn fetch(
    ks: Result<&fjall::Keyspace, StorageError>,
    seq: u64,
    signal: Signal,
) -> Result<Option<Batch>, Unread> {
    let ks = ks.map_err(Unread::Unavailable)?;
    match ks.get(record::key(seq)) {
        Ok(Some(v)) => match record::decode(&v, signal) {
            Ok(b) => Ok(Some(b)),
            Err(why) => Err(Unread::Corrupt(v.to_vec(), why)),
        },
        Ok(None) => Ok(None),
        Err(e) => Err(Unread::Corrupt(
            Vec::new(),
            CorruptRecord::Payload(format!("unreadable: {e}")),
        )),
    }
}

/// An opened queue keyspace.
pub(crate) struct Client {
    pub(crate) store: Arc<Store>,
    pub(crate) data: crate::storage::KsName,
    pub(crate) quarantine: crate::storage::KsName,
}

/// A request taken by a worker.
pub struct Taken {
    seq: u64,
    meta: Meta,
}

/// What [`PersistentQueue::load`] found on disk.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// Requests queued from before.
    pub requests: u64,
    /// Records moved to quarantine.
    pub quarantined: u64,
}

/// The queue.
pub struct PersistentQueue {
    name: String,
    signal: Signal,
    capacity: u64,
    sizer: Sizer,
    block_on_overflow: bool,
    drop_oldest: bool,
    state: Mutex<State>,
    client: Mutex<Option<Arc<Client>>>,
    items: Notify,
    space: Notify,
    obs: Arc<QueueObs>,
    quarantined: Counter,
    tasks: Tasks,
}

fn storage_err(e: StorageError) -> ConsumeError {
    ConsumeError::retryable(format!("sending queue: {e}"))
}

impl PersistentQueue {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        name: String,
        signal: Signal,
        capacity: u64,
        sizer: Sizer,
        block_on_overflow: bool,
        drop_oldest: bool,
        obs: Arc<QueueObs>,
        quarantined: Counter,
        tasks: Tasks,
    ) -> Self {
        PersistentQueue {
            name,
            signal,
            capacity,
            sizer,
            block_on_overflow,
            drop_oldest,
            state: Mutex::new(State::default()),
            client: Mutex::new(None),
            items: Notify::new(),
            space: Notify::new(),
            obs,
            quarantined,
            tasks,
        }
    }

    fn client(&self) -> Result<Arc<Client>, ConsumeError> {
        self.client
            .lock()
            .clone()
            .ok_or_else(|| ConsumeError::retryable("sending queue: persistent queue not started"))
    }

    /// Opens the queue's keyspace in `store`, loads what is on disk and quarantines bad
    /// records. Called at start; fjall work runs on the blocking pool.
    pub(crate) async fn load(&self, store: Arc<Store>) -> Result<Loaded, StorageError> {
        let name = self.name.clone();
        let signal = self.signal;
        let sizer = self.sizer;
        let opener = store.clone();
        let scanned = self
            .tasks
            .spawn_blocking(move || -> Result<_, StorageError> {
                let (data, _) = opener.open_queue(&name)?;
                let mut good = Vec::new();
                let mut bad = Vec::new();
                for guard in data.iter() {
                    let (k, v) = guard.into_inner().map_err(StorageError::from)?;
                    let checked = record::seq_of(&k)
                        .and_then(|seq| record::check(&v, signal).map(|info| (seq, info)));
                    match checked {
                        Ok((seq, info)) => good.push((seq, info, v.len() as u64)),
                        Err(why) => bad.push((k.to_vec(), v.to_vec(), why)),
                    }
                }
                Ok((good, bad, sizer))
            })
            .await
            .map_err(|e| StorageError(format!("load task failed: {e}")))??;
        let (good, bad, sizer) = scanned;
        let client = Arc::new(Client {
            store: store.clone(),
            data: self.name.as_str().into(),
            quarantine: format!("{}.quarantine", self.name).into(),
        });
        let quarantined = bad.len() as u64;
        for (key, value, why) in bad {
            self.quarantine_record(&client, key, value, &why).await;
        }
        if quarantined > 0 {
            store.sync().await?;
        }
        let requests = good.len() as u64;
        {
            let mut st = self.state.lock();
            for (seq, info, stored) in good {
                let size = match sizer {
                    Sizer::Requests => 1,
                    Sizer::Items => info.items,
                    Sizer::Bytes => info.payload_len,
                };
                store.account(stored);
                st.size += size;
                st.next_seq = st.next_seq.max(seq + 1);
                st.ready.insert(
                    seq,
                    Meta {
                        size,
                        bytes: stored,
                        payload: info.payload_len,
                        items: info.items,
                        cached: None,
                    },
                );
            }
            st.started = true;
            self.obs.set_size(st.size);
        }
        *self.client.lock() = Some(client);
        if requests > 0 {
            self.items.notify_waiters();
            tracing::info!(queue = %self.name, requests, "persistent queue: resuming requests from disk");
        }
        Ok(Loaded {
            requests,
            quarantined,
        })
    }

    async fn quarantine_record(
        &self,
        client: &Client,
        key: Vec<u8>,
        value: Vec<u8>,
        why: &CorruptRecord,
    ) {
        tracing::error!(queue = %self.name, key = ?key, error = %why, "persistent queue: corrupt record moved to quarantine");
        self.quarantined.inc();
        // Quarantine keys are the original key plus the time, so they never collide.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let mut to_key = key.clone();
        to_key.extend_from_slice(&nanos.to_be_bytes());
        let op = Op::Quarantine {
            from: client.data.clone(),
            to: client.quarantine.clone(),
            key,
            to_key,
            value,
        };
        if let Err(e) = client.store.send(op).await {
            tracing::error!(queue = %self.name, error = %e, "persistent queue: cannot quarantine record");
        }
    }

    /// Writes a request and returns once it is durable. A full queue refuses with a
    /// retryable error and a retry hint (counted in `enqueue_failed`), waits with
    /// `block_on_overflow`, or evicts the oldest waiting requests with `drop_oldest`.
    pub async fn offer(self: &Arc<Self>, batch: Batch) -> Result<(), ConsumeError> {
        // Encoded once: the record and the in-memory copy share the bytes.
        let batch = batch.into_encoded();
        let size = size_of(self.sizer, &batch);
        let items = batch.item_count();
        if size == 0 {
            return Ok(());
        }
        if size > self.capacity {
            self.obs.enqueue_failed(items);
            return Err(too_large(self.sizer, size, self.capacity));
        }
        let client = self.client()?;
        if !client.store.writable() {
            self.obs.enqueue_failed(items);
            return Err(ConsumeError::retryable(
                "sending queue: storage cannot be written (disk full or I/O error); retrying to reopen it",
            ));
        }
        let value = record::encode(&batch);
        let bytes = value.len() as u64;
        let (tx, rx) = oneshot::channel();
        let mut pending = Some((value, tx));
        loop {
            let space = self.space.notified();
            tokio::pin!(space);
            space.as_mut().enable();
            // The channel slot comes first so nothing reserved below can leak if the caller
            // goes away: between here and the send there is no await.
            let permit = client.store.permit().await.map_err(storage_err)?;
            let mut evicted = Vec::new();
            let mut seq = None;
            {
                let mut st = self.state.lock();
                if st.closed {
                    return Err(ConsumeError::ShuttingDown);
                }
                loop {
                    if st.size + size <= self.capacity && client.store.reserve(bytes) {
                        let s = st.next_seq;
                        st.next_seq += 1;
                        st.size += size;
                        self.obs.set_size(st.size);
                        seq = Some(s);
                        break;
                    }
                    if !self.drop_oldest {
                        break;
                    }
                    let Some((old_seq, old)) = st.ready.pop_first() else {
                        break;
                    };
                    st.size -= old.size;
                    if old.cached.is_some() {
                        st.cached_bytes -= old.payload;
                    }
                    client.store.release(old.bytes);
                    evicted.push((old_seq, old));
                }
            }
            if let Some(seq) = seq
                && let Some((value, tx)) = pending.take()
            {
                permit.send(Op::Put {
                    ks: client.data.clone(),
                    key: record::key(seq),
                    value,
                    done: self.on_durable(seq, size, bytes, batch.clone(), tx),
                });
            } else {
                drop(permit);
            }
            for (old_seq, old) in evicted {
                self.obs.dropped(old.items);
                tracing::warn!(queue = %self.name, dropped_items = old.items, "sending queue full: dropped the oldest request (drop_oldest)");
                let _ = client
                    .store
                    .send(Op::Delete {
                        ks: client.data.clone(),
                        key: record::key(old_seq).to_vec(),
                    })
                    .await;
            }
            if pending.is_none() {
                break;
            }
            if !self.block_on_overflow {
                self.obs.enqueue_failed(items);
                return Err(self.obs.full_error());
            }
            space.await;
        }
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(storage_err(e)),
            Err(_) => Err(ConsumeError::retryable(
                "sending queue: storage closed before the write finished",
            )),
        }
    }

    /// Runs on the writer thread once the put is durable: the request becomes visible to
    /// workers whether or not the caller is still waiting.
    fn on_durable(
        self: &Arc<Self>,
        seq: u64,
        size: u64,
        bytes: u64,
        batch: Batch,
        tx: oneshot::Sender<Result<(), StorageError>>,
    ) -> crate::storage::Durable {
        let queue = self.clone();
        Box::new(move |result| {
            match &result {
                Ok(()) => {
                    let mut st = queue.state.lock();
                    let items = batch.item_count() as u64;
                    let payload = batch.encoded_len() as u64;
                    let cached = (st.cached_bytes + payload <= CACHE_BYTES).then_some(batch);
                    if cached.is_some() {
                        st.cached_bytes += payload;
                    }
                    st.ready.insert(
                        seq,
                        Meta {
                            size,
                            bytes,
                            payload,
                            items,
                            cached,
                        },
                    );
                    drop(st);
                    queue.items.notify_one();
                }
                Err(_) => {
                    {
                        let mut st = queue.state.lock();
                        st.size = st.size.saturating_sub(size);
                        queue.obs.set_size(st.size);
                    }
                    if let Some(c) = queue.client.lock().as_ref() {
                        c.store.release(bytes);
                    }
                    queue.space.notify_waiters();
                }
            }
            let _ = tx.send(result);
        })
    }

    /// The oldest waiting request; `None` when `stop` is cancelled.
    pub async fn pop(&self, stop: &CancellationToken) -> Option<Taken> {
        loop {
            let notified = self.items.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut st = self.state.lock();
                if st.closed {
                    return None;
                }
                if let Some((seq, meta)) = st.ready.pop_first() {
                    if meta.cached.is_some() {
                        st.cached_bytes -= meta.payload;
                    }
                    let more = !st.ready.is_empty();
                    drop(st);
                    if more {
                        self.items.notify_one();
                    }
                    return Some(Taken { seq, meta });
                }
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = stop.cancelled() => return None,
            }
        }
    }

    /// Waiting requests for one merged export (see [`BatchPlan`]): waits for the first, then
    /// takes more until `min_size` is reached, the next would pass `max_size`, or
    /// `flush_timeout` has passed since the first was taken. Every record stays on disk until
    /// [`PersistentQueue::finish`]. A closed queue hands out nothing new; what was taken is
    /// returned (and released by the caller's interrupted delivery). `None` when `stop` is
    /// cancelled or the queue closed with nothing taken.
    pub async fn pop_group(
        &self,
        stop: &CancellationToken,
        plan: &BatchPlan,
    ) -> Option<Vec<Taken>> {
        let mut group = Group::new();
        loop {
            let notified = self.items.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut st = self.state.lock();
                if st.closed {
                    return group.into_entries();
                }
                while !group.ready(plan)
                    && let Some((_, meta)) = st.ready.first_key_value()
                {
                    let size = plan.measure(meta.items, meta.payload);
                    if !group.admits(plan, size) {
                        break;
                    }
                    if let Some((seq, meta)) = st.ready.pop_first() {
                        if meta.cached.is_some() {
                            st.cached_bytes -= meta.payload;
                        }
                        group.push(plan, Taken { seq, meta }, size);
                    }
                }
            }
            if group.ready(plan) {
                return group.into_entries();
            }
            if group.wait(plan, notified.as_mut(), stop).await {
                return group.into_entries();
            }
        }
    }

    /// The request's data: from memory, or read back from disk. A record that fails its
    /// checks is quarantined and `None` is returned (the request is finished).
    pub async fn read(&self, taken: &mut Taken) -> Option<Batch> {
        let mut read = self
            .read_group(vec![std::mem::replace(
                taken,
                Taken {
                    seq: taken.seq,
                    meta: taken.meta.clone(),
                },
            )])
            .await;
        let (t, batch) = read.pop()?;
        *taken = t;
        Some(batch)
    }

    /// The data of a merged export's requests, those not in memory read back from disk in
    /// one go on the blocking pool. Requests whose record fails its checks are quarantined
    /// and finished, those the storage cannot serve now are put back in the queue, and all
    /// of them are left out of the result.
    pub async fn read_group(&self, group: Vec<Taken>) -> Vec<(Taken, Batch)> {
        let mut out = Vec::with_capacity(group.len());
        let mut unread = Vec::new();
        for mut t in group {
            match t.meta.cached.take() {
                Some(b) => out.push((t, b)),
                None => unread.push(t),
            }
        }
        if unread.is_empty() {
            return out;
        }
        let Ok(client) = self.client() else {
            return out;
        };
        let store = client.store.clone();
        let name = client.data.clone();
        let seqs: Vec<u64> = unread.iter().map(|t| t.seq).collect();
        let signal = self.signal;
        let read = self
            .tasks
            .spawn_blocking(move || {
                let ks = store.keyspace(&name);
                seqs.into_iter()
                    .map(|seq| fetch(ks.as_ref().map_err(Clone::clone), seq, signal))
                    .collect::<Vec<_>>()
            })
            .await;
        let results = match read {
            Ok(r) => r,
            Err(e) => {
                // The blocking pool is going away (shutdown); the records stay on disk.
                tracing::warn!(queue = %self.name, error = %e, "persistent queue: read interrupted");
                for t in &unread {
                    self.release(t);
                }
                return out;
            }
        };
        let mut deferred = false;
        for (t, result) in unread.into_iter().zip(results) {
            match result {
                Ok(Some(b)) => out.push((t, b)),
                Ok(None) => {
                    tracing::warn!(queue = %self.name, seq = t.seq, "persistent queue: record vanished");
                    self.finish(&t, false).await;
                }
                Err(Unread::Corrupt(value, why)) => {
                    self.quarantine_record(&client, record::key(t.seq).to_vec(), value, &why)
                        .await;
                    self.finish(&t, false).await;
                }
                Err(Unread::Unavailable(e)) => {
                    // The database is being reopened after a write failure: the record is
                    // intact, so it goes back to the front of the queue for a later attempt.
                    tracing::debug!(queue = %self.name, error = %e, "persistent queue: read deferred");
                    if !deferred {
                        tokio::time::sleep(READ_RETRY).await;
                        deferred = true;
                    }
                    self.requeue(&t);
                }
            }
        }
        out
    }

    /// Puts a taken request back, to be handed out again.
    fn requeue(&self, taken: &Taken) {
        let mut st = self.state.lock();
        st.ready.insert(
            taken.seq,
            Meta {
                cached: None,
                ..taken.meta.clone()
            },
        );
        drop(st);
        self.items.notify_one();
    }

    /// The request is done (delivered, or given up and counted): delete it from disk.
    pub async fn finish(&self, taken: &Taken, delete: bool) {
        if let Ok(client) = self.client() {
            if delete
                && let Err(e) = client
                    .store
                    .send(Op::Delete {
                        ks: client.data.clone(),
                        key: record::key(taken.seq).to_vec(),
                    })
                    .await
            {
                tracing::warn!(queue = %self.name, error = %e, "persistent queue: delete failed; the request may be sent again after a restart");
            }
            client.store.release(taken.meta.bytes);
        }
        self.release(taken);
    }

    /// Releases a request's size without touching the disk (shutdown keeps the record).
    pub fn release(&self, taken: &Taken) {
        {
            let mut st = self.state.lock();
            st.size = st.size.saturating_sub(taken.meta.size);
            self.obs.set_size(st.size);
        }
        self.space.notify_waiters();
    }

    /// Items in a taken request.
    pub fn items(taken: &Taken) -> u64 {
        taken.meta.items
    }

    /// Refuses new requests and stops handing out queued ones; records stay on disk.
    pub fn close(&self) {
        self.state.lock().closed = true;
        self.items.notify_waiters();
        self.space.notify_waiters();
    }

    /// Requests queued or in flight, in sizer units.
    pub fn size(&self) -> u64 {
        self.state.lock().size
    }
}
