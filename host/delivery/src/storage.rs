//! The `file_storage` extension on fjall.
//!
//! One extension is one fjall database in `<directory>/fjall`; each persistent queue gets a
//! keyspace named like upstream's per-client file, `exporter_<type>_<name>_<signal>`, and a
//! `<that>.quarantine` keyspace for records that fail their checks.
//!
//! All writes go through one writer task per database (a blocking thread from the tracked
//! pool) that commits whatever has accumulated as one fjall batch and then makes it durable
//! once, so many enqueues share one `fsync` (group commit). A write is acknowledged only after
//! that: with `fsync: true` after `fdatasync`, with `fsync: false` (upstream's default) after
//! the journal reached the operating system, which survives a crash of the process but not of
//! the machine.
//!
//! A journal batch (one group commit) that fails its checksum is cut out of the journal and
//! kept beside it (`<n>.jnl.quarantine-<offset>`, logged, counted in
//! `wasmcol_file_storage_journal_quarantined_records`) and the database opens with the rest.
//! A database that fjall still cannot recover is moved aside to `fjall.corrupt-<unix time>` and a
//! fresh one is created (logged, counted in `wasmcol_file_storage_recovered_corrupt`) so a
//! damaged disk never makes the collector crash-loop; the old files stay for inspection.
//!
//! A write that fails (disk full, I/O error) poisons the fjall database: it refuses every
//! later write until opened again. The writer then reopens it in place (see [`Store`]), so a
//! disk that fills up and is freed again costs 503s, not a restart.
//!
//! Each storage is capped, by default at [`DEFAULT_CAP_BYTES`] of queued records
//! (`max_size_mib` / `max_size`, wasmcol keys; `0` for no cap).
//!
//! Keys accepted for upstream compatibility with no effect: `timeout` (fjall takes its lock
//! without waiting), `recreate` (moving a corrupt database aside is always on), and every
//! `compaction.*` key (fjall compacts in the background by itself).

use std::any::Any;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use parking_lot::{Mutex, RwLock};
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot};
use wasmcol_config::{GoDuration, Value};
use wasmcol_core::{
    BuildError, ComponentError, Counter, CreateContext, Extension, ExtensionFactory, Lifecycle,
    Metrics, Tasks,
};

/// Ops the writer takes per commit at most, so one commit's latency stays bounded.
const MAX_GROUP_OPS: usize = 4096;
/// Bytes the writer takes per commit at most.
const MAX_GROUP_BYTES: usize = 64 << 20;
/// Depth of the writer's channel.
const WRITER_CHANNEL: usize = 8192;

/// The storage cap when neither `max_size_mib` nor `max_size` is set: 1 GiB of queued
/// records. A full storage refuses new data as retryable (503 / UNAVAILABLE with a retry hint)
/// instead of filling the disk, which would stop every writer on it.
pub const DEFAULT_CAP_BYTES: u64 = 1 << 30;

/// `compaction` of upstream's file_storage: accepted, no effect (fjall compacts by itself).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompactionConfig {
    /// Accepted, no effect.
    pub on_start: bool,
    /// Accepted, no effect.
    pub on_rebound: bool,
    /// Accepted, no effect.
    pub directory: Option<String>,
    /// Accepted, no effect.
    pub max_transaction_size: Option<i64>,
    /// Accepted, no effect.
    pub rebound_needed_threshold_mib: Option<u64>,
    /// Accepted, no effect.
    pub rebound_trigger_threshold_mib: Option<u64>,
    /// Accepted, no effect.
    pub check_interval: Option<GoDuration>,
    /// Accepted, no effect.
    pub cleanup_on_start: bool,
}

/// `extensions: file_storage`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileStorageConfig {
    /// Where the database lives (upstream default `/var/lib/otelcol/file_storage`).
    pub directory: PathBuf,
    /// Create `directory` when missing (upstream default false).
    pub create_directory: bool,
    /// Permissions of a created directory, octal (`0750`).
    pub directory_permissions: String,
    /// Make every acknowledged write survive a power loss (`fdatasync` per group commit).
    pub fsync: bool,
    /// Cap on the bytes of all queued records in this storage, in MiB (0 = no cap).
    pub max_size_mib: Option<u64>,
    /// The same cap in bytes (0 = no cap); with both set, the smaller non-zero one applies;
    /// with neither, [`DEFAULT_CAP_BYTES`].
    pub max_size: Option<u64>,
    /// Accepted, no effect.
    pub timeout: GoDuration,
    /// Accepted; a corrupt database is always moved aside and recreated.
    pub recreate: bool,
    /// Accepted, no effect.
    pub compaction: CompactionConfig,
}

impl Default for FileStorageConfig {
    fn default() -> Self {
        FileStorageConfig {
            directory: PathBuf::from("/var/lib/otelcol/file_storage"),
            create_directory: false,
            directory_permissions: "0750".into(),
            fsync: false,
            max_size_mib: None,
            max_size: None,
            timeout: GoDuration::secs(1),
            recreate: false,
            compaction: CompactionConfig::default(),
        }
    }
}

impl FileStorageConfig {
    /// The byte cap, 0 for none (only when set to 0 explicitly).
    pub fn cap_bytes(&self) -> u64 {
        let mib = self.max_size_mib.map(|m| m.saturating_mul(1 << 20));
        match (mib, self.max_size) {
            (None, None) => DEFAULT_CAP_BYTES,
            (Some(0) | None, Some(b)) => b,
            (Some(m), Some(0) | None) => m,
            (Some(m), Some(b)) => m.min(b),
        }
    }

    fn validate(&self) -> Vec<String> {
        let mut e = Vec::new();
        if self.directory.as_os_str().is_empty() {
            e.push("directory: must not be empty".to_owned());
        } else if !self.create_directory {
            match std::fs::metadata(&self.directory) {
                Ok(m) if !m.is_dir() => e.push(format!(
                    "directory: {} is not a directory",
                    self.directory.display()
                )),
                Ok(_) => {}
                Err(err) => e.push(format!(
                    "directory: directory must exist: {}: {err}",
                    self.directory.display()
                )),
            }
        }
        if u32::from_str_radix(self.directory_permissions.trim_start_matches("0o"), 8).is_err() {
            e.push(format!(
                "directory_permissions: {:?} is not an octal mode",
                self.directory_permissions
            ));
        }
        if let Some(n) = self.compaction.max_transaction_size
            && n < 0
        {
            e.push("compaction.max_transaction_size: must not be negative".to_owned());
        }
        e
    }
}

/// A storage failure, shared by every request of a failed group commit.
#[derive(Debug, Clone, thiserror::Error)]
#[error("file_storage: {0}")]
pub struct StorageError(pub String);

impl From<fjall::Error> for StorageError {
    fn from(e: fjall::Error) -> Self {
        StorageError(e.to_string())
    }
}

/// Called on the writer thread once a put is durable (or failed).
pub(crate) type Durable = Box<dyn FnOnce(Result<(), StorageError>) + Send>;

/// A keyspace by name: the writer resolves it in the database it has open, which changes
/// when a poisoned database is reopened.
pub(crate) type KsName = Arc<str>;

pub(crate) enum Op {
    Put {
        ks: KsName,
        key: [u8; 8],
        value: Vec<u8>,
        done: Durable,
    },
    Delete {
        ks: KsName,
        key: Vec<u8>,
    },
    /// Moves a record to the quarantine keyspace (value as found, or empty if unreadable)
    /// under `to_key`, so a later record with the same sequence number cannot overwrite it.
    Quarantine {
        from: KsName,
        to: KsName,
        key: Vec<u8>,
        to_key: Vec<u8>,
        value: Vec<u8>,
    },
    /// Waits for everything before it to be durable.
    Sync(oneshot::Sender<Result<(), StorageError>>),
    Close,
}

impl Op {
    fn bytes(&self) -> usize {
        match self {
            Op::Put { value, .. } | Op::Quarantine { value, .. } => value.len(),
            _ => 0,
        }
    }
}

/// An open database with its writer.
///
/// After a write fails (disk full, I/O error) fjall refuses every later write ("poisoned")
/// until the database is opened again. The writer then closes it and reopens it from disk,
/// retrying with back-off, which replays the journal: everything acknowledged before the
/// fault is still there. Meanwhile [`Store::writable`] is false and queues refuse new data as
/// retryable (503 / UNAVAILABLE), and reads wait for the reopened database.
pub(crate) struct Store {
    path: PathBuf,
    db: RwLock<Option<Database>>,
    writable: AtomicBool,
    tx: mpsc::Sender<Op>,
    cap_bytes: u64,
    used_bytes: Arc<AtomicU64>,
}

impl Store {
    /// Whether writes are possible now; false from a failed write until the reopen.
    pub(crate) fn writable(&self) -> bool {
        self.writable.load(Ordering::Acquire)
    }

    /// The keyspace `name` in the database open now.
    pub(crate) fn keyspace(&self, name: &str) -> Result<Keyspace, StorageError> {
        let db = self.db.read();
        let db = db.as_ref().ok_or_else(reopening)?;
        Ok(db.keyspace(name, KeyspaceCreateOptions::default)?)
    }

    /// Sends an op to the writer.
    pub(crate) async fn send(&self, op: Op) -> Result<(), StorageError> {
        self.tx
            .send(op)
            .await
            .map_err(|_| StorageError("storage is closed".into()))
    }

    /// A channel slot, taken before any state is reserved so that a cancelled caller leaks
    /// nothing.
    pub(crate) async fn permit(&self) -> Result<mpsc::Permit<'_, Op>, StorageError> {
        self.tx
            .reserve()
            .await
            .map_err(|_| StorageError("storage is closed".into()))
    }

    /// Waits until every op sent before is durable.
    pub(crate) async fn sync(&self) -> Result<(), StorageError> {
        let (tx, rx) = oneshot::channel();
        self.send(Op::Sync(tx)).await?;
        rx.await
            .map_err(|_| StorageError("storage is closed".into()))?
    }

    /// Reserves `bytes` under the storage cap.
    pub(crate) fn reserve(&self, bytes: u64) -> bool {
        if self.cap_bytes == 0 {
            self.used_bytes.fetch_add(bytes, Ordering::Relaxed);
            return true;
        }
        self.used_bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
                (u + bytes <= self.cap_bytes).then_some(u + bytes)
            })
            .is_ok()
    }

    /// Returns reserved bytes.
    pub(crate) fn release(&self, bytes: u64) {
        let _ = self
            .used_bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
                Some(u.saturating_sub(bytes))
            });
    }

    /// Counts bytes found on disk at start (may exceed the cap; new writes wait).
    pub(crate) fn account(&self, bytes: u64) {
        self.used_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Opens (or creates) a queue's keyspace and its quarantine. Blocking.
    pub(crate) fn open_queue(&self, name: &str) -> Result<(Keyspace, Keyspace), StorageError> {
        let data = self.keyspace(name)?;
        let quarantine = self.keyspace(&format!("{name}.quarantine"))?;
        Ok((data, quarantine))
    }
}

fn reopening() -> StorageError {
    StorageError("storage is being reopened after a write failure".into())
}

/// First wait between two attempts to reopen a poisoned database.
const REOPEN_FIRST_BACKOFF: std::time::Duration = std::time::Duration::from_millis(100);
/// Longest wait between two attempts to reopen a poisoned database.
const REOPEN_MAX_BACKOFF: std::time::Duration = std::time::Duration::from_secs(5);

/// The writer: group commit until closed. Runs on a blocking thread.
fn writer(store: Arc<Store>, mut rx: mpsc::Receiver<Op>, fsync: bool, stats: WriterStats) {
    let mode = if fsync {
        PersistMode::SyncData
    } else {
        PersistMode::Buffer
    };
    // Deletes (and quarantine moves) of failed commits, done again once the database is
    // reopened; keys of failed puts are deleted then too, as their callers were told the
    // write failed and a half-written record must not come back.
    let mut redo: Vec<Op> = Vec::new();
    // Failed commits in a row: a disk that is still nearly full lets the reopen's probe
    // through but not the next group commit, so the wait before reopening grows with the
    // streak instead of starting short each time.
    let mut streak = 0u32;
    let mut closing = false;
    while !closing {
        let Some(first) = rx.blocking_recv() else {
            break;
        };
        let mut ops = vec![first];
        let mut bytes = ops[0].bytes();
        while ops.len() < MAX_GROUP_OPS && bytes < MAX_GROUP_BYTES {
            match rx.try_recv() {
                Ok(op) => {
                    bytes += op.bytes();
                    ops.push(op);
                }
                Err(_) => break,
            }
        }
        closing = ops.iter().any(|op| matches!(op, Op::Close));
        let result = if store.writable() {
            commit(&store, &ops, &mut redo, mode, &stats)
        } else {
            Err(reopening())
        };
        if let Err(e) = &result {
            tracing::error!(error = %e, "file_storage: group commit failed; refusing writes until the database is reopened");
            store.writable.store(false, Ordering::Release);
        }
        for op in ops {
            match op {
                Op::Put { ks, key, done, .. } => {
                    if result.is_err() {
                        redo.push(Op::Delete {
                            ks,
                            key: key.to_vec(),
                        });
                    }
                    done(result.clone());
                }
                Op::Sync(tx) => {
                    let _ = tx.send(result.clone());
                }
                op @ (Op::Delete { .. } | Op::Quarantine { .. }) if result.is_err() => {
                    redo.push(op);
                }
                _ => {}
            }
        }
        if result.is_ok() {
            streak = 0;
        } else if !closing {
            streak = streak.saturating_add(1);
            closing = reopen(&store, &mut rx, &mut redo, streak);
        }
    }
    if let Some(db) = store.db.read().as_ref()
        && let Err(e) = db.persist(PersistMode::SyncAll)
    {
        tracing::error!(error = %e, "file_storage: final sync failed");
    }
}

/// Commits one group (and any deletes left over from a failed one) and makes it durable.
fn commit(
    store: &Store,
    ops: &[Op],
    redo: &mut Vec<Op>,
    mode: PersistMode,
    stats: &WriterStats,
) -> Result<(), StorageError> {
    let Some(db) = store.db.read().clone() else {
        return Err(reopening());
    };
    let mut handles: std::collections::HashMap<KsName, Keyspace> = Default::default();
    let mut ks = |name: &KsName| -> Result<Keyspace, StorageError> {
        if let Some(k) = handles.get(name) {
            return Ok(k.clone());
        }
        let k = db.keyspace(name, KeyspaceCreateOptions::default)?;
        handles.insert(name.clone(), k.clone());
        Ok(k)
    };
    let mut batch = db.batch();
    let mut durable_needed = !redo.is_empty();
    for op in redo.iter().chain(ops) {
        match op {
            Op::Put {
                ks: name,
                key,
                value,
                ..
            } => {
                batch.insert(&ks(name)?, key.as_slice(), value.as_slice());
                durable_needed = true;
            }
            Op::Delete { ks: name, key } => batch.remove(&ks(name)?, key.as_slice()),
            Op::Quarantine {
                from,
                to,
                key,
                to_key,
                value,
            } => {
                batch.insert(&ks(to)?, to_key.as_slice(), value.as_slice());
                batch.remove(&ks(from)?, key.as_slice());
                durable_needed = true;
            }
            Op::Sync(_) | Op::Close => durable_needed = true,
        }
    }
    // Deletes alone need no fsync: losing one only means a duplicate after a crash.
    let persist = if durable_needed {
        mode
    } else {
        PersistMode::Buffer
    };
    let result = batch
        .commit()
        .and_then(|()| db.persist(persist))
        .map_err(StorageError::from);
    stats.commits.inc();
    if matches!(persist, PersistMode::SyncData) {
        stats.fsyncs.inc();
    }
    if result.is_ok() {
        redo.clear();
    }
    result
}

/// Waits `d`, answering ops that arrive meanwhile with an error (deletes kept for after the
/// reopen). Returns true when `Close` arrived.
fn wait_answering(rx: &mut mpsc::Receiver<Op>, redo: &mut Vec<Op>, d: std::time::Duration) -> bool {
    let until = std::time::Instant::now() + d;
    while std::time::Instant::now() < until {
        while let Ok(op) = rx.try_recv() {
            match op {
                Op::Put { ks, key, done, .. } => {
                    redo.push(Op::Delete {
                        ks,
                        key: key.to_vec(),
                    });
                    done(Err(reopening()));
                }
                Op::Sync(tx) => {
                    let _ = tx.send(Err(reopening()));
                }
                Op::Close => return true,
                op => redo.push(op),
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    false
}

/// Writes (and deletes) a small record, so a database is declared writable again only once
/// a write reaches the file, not as soon as it opens on a disk that is still full.
fn probe(db: Database) -> fjall::Result<Database> {
    let ks = db.keyspace("wasmcol_probe", KeyspaceCreateOptions::default)?;
    let mut batch = db.batch();
    batch.insert(&ks, "probe", vec![0u8; 4096]);
    batch.commit()?;
    db.persist(PersistMode::Buffer)?;
    let mut batch = db.batch();
    batch.remove(&ks, "probe");
    batch.commit()?;
    db.persist(PersistMode::Buffer)?;
    Ok(db)
}

/// Closes the poisoned database and opens it again from disk, with back-off, until that
/// works. Ops arriving meanwhile are answered with an error (deletes kept for later).
/// Returns true when `Close` arrived instead.
fn reopen(store: &Store, rx: &mut mpsc::Receiver<Op>, redo: &mut Vec<Op>, streak: u32) -> bool {
    let mut backoff = REOPEN_FIRST_BACKOFF
        .saturating_mul(1 << streak.saturating_sub(1).min(6))
        .min(REOPEN_MAX_BACKOFF);
    let mut first = true;
    let mut attempts = 0u32;
    loop {
        if first && streak > 1 && wait_answering(rx, redo, backoff) {
            return true;
        }
        first = false;
        // Every handle must go for fjall to release its lock: the store's, and any a reader
        // holds for a moment.
        drop(store.db.write().take());
        match Database::builder(&store.path)
            .manual_journal_persist(true)
            .open()
            .and_then(probe)
        {
            Ok(db) => {
                *store.db.write() = Some(db);
                store.writable.store(true, Ordering::Release);
                tracing::warn!(
                    failed_attempts = attempts,
                    "file_storage: database reopened after a write failure; accepting writes again"
                );
                return false;
            }
            Err(e) => {
                attempts += 1;
                if attempts == 1 || attempts.is_multiple_of(20) {
                    tracing::warn!(error = %e, attempts, "file_storage: cannot reopen the database yet");
                }
            }
        }
        if wait_answering(rx, redo, backoff) {
            return true;
        }
        backoff = (backoff * 2).min(REOPEN_MAX_BACKOFF);
    }
}

#[derive(Clone)]
struct WriterStats {
    commits: Counter,
    fsyncs: Counter,
}

/// The `file_storage` extension.
pub struct FileStorage {
    id: String,
    cfg: FileStorageConfig,
    tasks: Tasks,
    metrics: Metrics,
    store: Mutex<Option<Arc<Store>>>,
    closed: AtomicBool,
}

impl FileStorage {
    /// The open store; `None` before start or after shutdown.
    pub(crate) fn store(&self) -> Option<Arc<Store>> {
        self.store.lock().clone()
    }

    /// The extension's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Where the fjall database lives.
    pub fn db_path(&self) -> PathBuf {
        db_path(&self.cfg.directory)
    }

    /// The names of the keyspaces that start with `prefix`, sorted, so a component can find
    /// queues it owns whose exporter no longer exists (a load balancer's removed backends).
    /// Runs on the blocking pool.
    pub async fn keyspaces_with_prefix(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let store = self.store().ok_or_else(not_started)?;
        let prefix = prefix.to_owned();
        self.tasks
            .spawn_blocking(move || {
                let db = store.db.read();
                let db = db.as_ref().ok_or_else(reopening)?;
                let mut names: Vec<String> = db
                    .list_keyspace_names()
                    .iter()
                    .filter(|n| n.starts_with(prefix.as_str()))
                    .map(|n| n.to_string())
                    .collect();
                names.sort();
                Ok(names)
            })
            .await
            .map_err(|e| StorageError(format!("list task failed: {e}")))?
    }

    /// Deletes the keyspace `name` if it holds no record, once every write sent before is
    /// durable (so a queue's last deletes count, and cannot recreate it afterwards); true when
    /// it is gone (or never existed), false when records remain and it was kept. The caller
    /// makes sure no queue uses it any more. Runs on the blocking pool.
    pub async fn delete_empty_keyspace(&self, name: &str) -> Result<bool, StorageError> {
        let store = self.store().ok_or_else(not_started)?;
        store.sync().await?;
        let name = name.to_owned();
        self.tasks
            .spawn_blocking(move || {
                let db = store.db.read().clone().ok_or_else(reopening)?;
                if !db.keyspace_exists(&name) {
                    return Ok(true);
                }
                let ks = db.keyspace(&name, KeyspaceCreateOptions::default)?;
                if !ks.is_empty()? {
                    return Ok(false);
                }
                db.delete_keyspace(ks)?;
                db.persist(PersistMode::SyncAll)?;
                Ok(true)
            })
            .await
            .map_err(|e| StorageError(format!("delete task failed: {e}")))?
    }
}

fn not_started() -> StorageError {
    StorageError("storage is not started".into())
}

/// The fjall database directory inside a `file_storage` directory.
pub fn db_path(directory: &Path) -> PathBuf {
    directory.join("fjall")
}

/// Whether an open error means damaged files (move aside) rather than an environment
/// problem such as permissions or a second process holding the lock (fail the start).
fn is_corruption(e: &fjall::Error) -> bool {
    match e {
        fjall::Error::Io(io) => matches!(
            io.kind(),
            std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof
        ),
        fjall::Error::Locked | fjall::Error::Poisoned => false,
        _ => true,
    }
}

/// Cuts the journal batches that fail their checksum out of a database fjall would not open
/// (see `journal`); true when something was cut, so opening again may work. The records in a
/// cut batch are lost to the queue but kept on disk, logged and counted.
fn repair(path: &Path, id: &str, e: &fjall::Error, quarantined: &Counter) -> bool {
    if !matches!(e, fjall::Error::JournalRecovery(_)) {
        return false;
    }
    match crate::journal::cut_damaged_batches(path) {
        Ok(cut) if !cut.is_empty() => {
            for b in &cut {
                tracing::error!(extension = %id, error = %e, records = b.items, kept_at = %b.kept_at.display(),
                    "file_storage: damaged journal batch cut out and kept aside; the rest of the database is replayed");
                quarantined.add(u64::from(b.items));
            }
            true
        }
        Ok(_) => false,
        Err(io) => {
            tracing::error!(extension = %id, error = %io, "file_storage: cannot repair the journal");
            false
        }
    }
}

fn open_db(
    cfg: &FileStorageConfig,
    id: &str,
    recovered: &Counter,
    quarantined: &Counter,
) -> Result<Database, String> {
    if cfg.create_directory {
        create_dir(&cfg.directory, &cfg.directory_permissions)
            .map_err(|e| format!("cannot create {}: {e}", cfg.directory.display()))?;
    }
    let path = db_path(&cfg.directory);
    let open = || Database::builder(&path).manual_journal_persist(true).open();
    match open() {
        Ok(db) => Ok(db),
        Err(e) if is_corruption(&e) && repair(&path, id, &e, quarantined) => open().map_err(|e| {
            format!(
                "cannot open {} after cutting damaged batches: {e}",
                path.display()
            )
        }),
        Err(e) if is_corruption(&e) => {
            let secs = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            let aside = cfg.directory.join(format!("fjall.corrupt-{secs}"));
            tracing::error!(extension = %id, error = %e, moved_to = %aside.display(),
                "file_storage: database cannot be recovered; moving it aside and starting empty");
            std::fs::rename(&path, &aside).map_err(|re| {
                format!("database is corrupt ({e}) and cannot be moved aside: {re}")
            })?;
            recovered.inc();
            open().map_err(|e| format!("cannot open {}: {e}", path.display()))
        }
        Err(e) => Err(format!("cannot open {}: {e}", path.display())),
    }
}

fn create_dir(dir: &Path, mode: &str) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        if let Ok(m) = u32::from_str_radix(mode.trim_start_matches("0o"), 8) {
            b.mode(m);
        }
    }
    #[cfg(not(unix))]
    let _ = mode;
    b.create(dir)
}

#[async_trait]
impl Lifecycle for FileStorage {
    async fn start(&self) -> Result<(), ComponentError> {
        if self.store.lock().is_some() {
            return Ok(());
        }
        let labels = [("extension", self.id.as_str())];
        let recovered = self.metrics.counter(
            "wasmcol_file_storage_recovered_corrupt",
            "Databases found corrupt at start, moved aside and recreated.",
            &labels,
        );
        let quarantined = self.metrics.counter(
            "wasmcol_file_storage_journal_quarantined_records",
            "Records in damaged journal batches cut out at start and kept aside.",
            &labels,
        );
        let stats = WriterStats {
            commits: self.metrics.counter(
                "wasmcol_file_storage_commits",
                "Group commits written by the storage writer.",
                &labels,
            ),
            fsyncs: self.metrics.counter(
                "wasmcol_file_storage_fsyncs",
                "fdatasync calls made by the storage writer (fsync: true).",
                &labels,
            ),
        };
        let cfg = self.cfg.clone();
        let id = self.id.clone();
        let db = self
            .tasks
            .spawn_blocking(move || open_db(&cfg, &id, &recovered, &quarantined))
            .await
            .map_err(|e| ComponentError::new(format!("file_storage: open task failed: {e}")))?
            .map_err(|e| ComponentError::new(format!("file_storage: {e}")))?;
        let (tx, rx) = mpsc::channel(WRITER_CHANNEL);
        let fsync = self.cfg.fsync;
        let used_bytes = Arc::new(AtomicU64::new(0));
        let gauge_bytes = used_bytes.clone();
        self.metrics.gauge_fn(
            "wasmcol_file_storage_queued_bytes",
            "Bytes of queue records held in this storage.",
            &labels,
            move || gauge_bytes.load(Ordering::Relaxed) as f64,
        );
        let store = Arc::new(Store {
            path: db_path(&self.cfg.directory),
            db: RwLock::new(Some(db)),
            writable: AtomicBool::new(true),
            tx,
            cap_bytes: self.cfg.cap_bytes(),
            used_bytes,
        });
        let writer_store = store.clone();
        self.tasks
            .spawn_blocking(move || writer(writer_store, rx, fsync, stats));
        *self.store.lock() = Some(store);
        tracing::info!(extension = %self.id, directory = %self.cfg.directory.display(), fsync = self.cfg.fsync, "file_storage started");
        Ok(())
    }

    async fn shutdown(&self) -> Result<(), ComponentError> {
        if self.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        let store = self.store.lock().take();
        if let Some(store) = store {
            // Everything queued before Close is committed and synced before the writer ends.
            let _ = store.tx.send(Op::Close).await;
        }
        // The writer is the only task; it ends after Close.
        if !self.tasks.wait_by_deadline().await {
            return Err(ComponentError::new(
                "file_storage: writer did not finish in time",
            ));
        }
        Ok(())
    }
}

impl Extension for FileStorage {
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Builds `file_storage` extensions; nothing is opened until start.
pub struct FileStorageFactory;

impl ExtensionFactory for FileStorageFactory {
    fn create(
        &self,
        ctx: &CreateContext,
        config: &Value,
    ) -> Result<Arc<dyn Extension>, BuildError> {
        let cfg: FileStorageConfig = wasmcol_config::decode(config).map_err(BuildError::new)?;
        let errors = cfg.validate();
        if !errors.is_empty() {
            return Err(BuildError::from(errors));
        }
        Ok(Arc::new(FileStorage {
            id: ctx.id.to_string(),
            cfg,
            tasks: ctx.tasks.child(),
            metrics: ctx.metrics.clone(),
            store: Mutex::new(None),
            closed: AtomicBool::new(false),
        }))
    }
}

/// The keyspace name of a queue, as upstream names the client's file:
/// `exporter_<type>_<name>_<signal>`, with characters outside `[A-Za-z0-9._-]` escaped as
/// `$XXXX` (upstream escapes with `~`, which fjall does not allow).
pub fn queue_name(kind: &str, ty: &str, name: &str, signal: &str) -> String {
    let raw = format!("{kind}_{ty}_{name}_{signal}");
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
            out.push(c);
        } else {
            out.push_str(&format!("${:04X}", u32::from(c)));
        }
    }
    out
}

/// The `name` part of a keyspace name made by [`queue_name`], with its `$XXXX` escapes
/// undone; `None` when `escaped` holds an escape that is not one.
pub fn unescape_queue_name(escaped: &str) -> Option<String> {
    let mut out = String::with_capacity(escaped.len());
    let mut rest = escaped;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let hex = rest.get(at + 1..at + 5)?;
        out.push(char::from_u32(u32::from_str_radix(hex, 16).ok()?)?);
        rest = &rest[at + 5..];
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_names_come_back() {
        for name in ["lb/127.0.0.1:4317", "lb/[::1]:5317", "plain", ""] {
            let escaped = queue_name("exporter", "otlp", name, "traces");
            let middle = escaped
                .strip_prefix("exporter_otlp_")
                .and_then(|m| m.strip_suffix("_traces"))
                .unwrap();
            assert_eq!(unescape_queue_name(middle).as_deref(), Some(name));
        }
        assert_eq!(unescape_queue_name("a$00"), None);
        assert_eq!(unescape_queue_name("a$zzzzb"), None);
    }

    /// Scenario: a started file_storage with three queue keyspaces (two under one prefix),
    /// a record in each; the prefix is listed; one keyspace is deleted while it holds its
    /// record, then after the record is removed; the storage restarts on the same directory.
    /// Guarantees: only the prefixed keyspaces are listed; a keyspace holding a record is
    /// kept; the emptied one is gone after the restart; the others stay with their records.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn keyspaces_are_listed_by_prefix_and_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let storage = || FileStorage {
            id: "file_storage".into(),
            cfg: FileStorageConfig {
                directory: dir.path().to_owned(),
                ..Default::default()
            },
            tasks: Tasks::new(),
            metrics: Metrics::default(),
            store: Mutex::new(None),
            closed: AtomicBool::new(false),
        };
        let fs = storage();
        fs.start().await.unwrap();
        let store = fs.store().unwrap();
        for name in [
            "exporter_otlp_lb$002Fa_traces",
            "exporter_otlp_lb$002Fb_traces",
            "exporter_otlp_other_traces",
        ] {
            let (ks, _) = store.open_queue(name).unwrap();
            ks.insert(crate::record::key(1), b"x").unwrap();
        }
        let listed = fs
            .keyspaces_with_prefix("exporter_otlp_lb$002F")
            .await
            .unwrap();
        assert_eq!(
            listed,
            [
                "exporter_otlp_lb$002Fa_traces",
                "exporter_otlp_lb$002Fa_traces.quarantine",
                "exporter_otlp_lb$002Fb_traces",
                "exporter_otlp_lb$002Fb_traces.quarantine"
            ]
        );
        assert!(
            !fs.delete_empty_keyspace("exporter_otlp_lb$002Fa_traces")
                .await
                .unwrap()
        );
        store
            .keyspace("exporter_otlp_lb$002Fa_traces")
            .unwrap()
            .remove(crate::record::key(1))
            .unwrap();
        assert!(
            fs.delete_empty_keyspace("exporter_otlp_lb$002Fa_traces")
                .await
                .unwrap()
        );
        assert!(
            fs.delete_empty_keyspace("exporter_otlp_never_traces")
                .await
                .unwrap()
        );
        assert!(
            fs.delete_empty_keyspace("exporter_otlp_lb$002Fa_traces.quarantine")
                .await
                .unwrap()
        );
        drop(store);
        fs.shutdown().await.unwrap();
        let fs = storage();
        fs.start().await.unwrap();
        assert_eq!(
            fs.keyspaces_with_prefix("exporter_otlp_").await.unwrap(),
            [
                "exporter_otlp_lb$002Fb_traces",
                "exporter_otlp_lb$002Fb_traces.quarantine",
                "exporter_otlp_other_traces",
                "exporter_otlp_other_traces.quarantine"
            ]
        );
        let (b, _) = fs
            .store()
            .unwrap()
            .open_queue("exporter_otlp_lb$002Fb_traces")
            .unwrap();
        assert!(b.get(crate::record::key(1)).unwrap().is_some());
        fs.shutdown().await.unwrap();
    }

    #[test]
    fn queue_names_follow_upstream() {
        assert_eq!(
            queue_name("exporter", "otlp", "", "traces"),
            "exporter_otlp__traces"
        );
        assert_eq!(
            queue_name("exporter", "otlp", "failover", "logs"),
            "exporter_otlp_failover_logs"
        );
        assert_eq!(
            queue_name("exporter", "otlp", "a/b", "logs"),
            "exporter_otlp_a$002Fb_logs"
        );
    }

    #[test]
    fn config_accepts_upstream_keys_and_rejects_unknown() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = format!(
            "directory: {}\nfsync: true\ntimeout: 2s\nmax_size: 1048576\nmax_size_mib: 2\ncompaction:\n  on_start: true\n  directory: /tmp\n  max_transaction_size: 1024\n",
            dir.path().display()
        );
        let v: Value = serde_yaml::from_str(&yaml).unwrap();
        let cfg: FileStorageConfig = wasmcol_config::decode(&v).unwrap();
        assert!(cfg.validate().is_empty());
        assert_eq!(cfg.cap_bytes(), 1 << 20);
        let cap = |yaml: &str| {
            let v: Value = serde_yaml::from_str(yaml).unwrap();
            wasmcol_config::decode::<FileStorageConfig>(&v)
                .unwrap()
                .cap_bytes()
        };
        // A storage has a cap unless one is turned off explicitly.
        assert_eq!(cap("fsync: false"), 1 << 30);
        assert_eq!(cap("max_size: 4294967296"), 4 << 30);
        assert_eq!(cap("max_size_mib: 10"), 10 << 20);
        assert_eq!(cap("max_size_mib: 0"), 0);
        assert_eq!(cap("max_size: 0\nmax_size_mib: 0"), 0);
        let v: Value = serde_yaml::from_str("dirr: /x").unwrap();
        let err = wasmcol_config::decode::<FileStorageConfig>(&v).unwrap_err();
        assert_eq!(err.path, "dirr", "{err}");
        let missing = FileStorageConfig {
            directory: dir.path().join("nope"),
            ..Default::default()
        };
        assert!(missing.validate()[0].starts_with("directory: directory must exist"));
    }
}
