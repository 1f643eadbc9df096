//! Disk faults under a persistent queue, through the real binary: a write that fails (disk
//! full) and a damaged database.
// Test code: a failed expectation is reported by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod delivery_support;

use std::process::Command;

use common::{Backend, Collector, WAIT};
use delivery_support::{client, wait_all};
use wasmcol_testkit::spans::request;

fn persistent_config(backend: &Backend, storage: &std::path::Path) -> String {
    format!(
        r#"
extensions:
  file_storage:
    directory: {dir}
    create_directory: true
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
exporters:
  otlp/disk:
    endpoint: {ep}
    tls:
      insecure: true
    retry_on_failure:
      initial_interval: 100ms
      max_interval: 500ms
      max_elapsed_time: 0
    sending_queue:
      storage: file_storage
      num_consumers: 2
      # Compressed records are small: the disk, not the request count, must fill first.
      queue_size: 100000
service:
  extensions: [file_storage]
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [otlp/disk]
"#,
        dir = storage.display(),
        ep = backend.endpoint(),
    )
}

/// Sets the soft RLIMIT_FSIZE of a running process (the hard one stays, so no privilege is
/// needed to lift it again).
fn set_file_size_limit(pid: u32, limit: &str) {
    let status = Command::new("prlimit")
        .arg("--pid")
        .arg(pid.to_string())
        .arg(format!("--fsize={limit}:"))
        .status()
        .unwrap();
    assert!(status.success(), "prlimit failed");
}

/// Scenario: the queue's disk fills up while requests keep arriving and the backend
/// refuses; then space comes back. (The largest file the collector may write is limited
/// with RLIMIT_FSIZE, so its journal write fails with EFBIG as a full disk fails with ENOSPC.)
/// Guarantees: while the disk is full requests are refused as UNAVAILABLE; once space is
/// back the queue accepts requests again without a restart (fjall answers every write after
/// a failed one with `Poisoned` until the database is reopened), and every span acknowledged
/// before, during or after the fault reaches the backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_refuses_then_recovers_without_restart() {
    let backend = Backend::start().await;
    backend.refuse(Some(tonic::Code::Unavailable));
    let storage = tempfile::tempdir().unwrap();
    let c = Collector::start_ignoring_sigxfsz(&persistent_config(&backend, storage.path()));
    // fjall preallocates its journal, so the limit is set once the database is open: a write
    // at an offset past it fails whatever the file's length.
    set_file_size_limit(c.pid(), "262144");
    let mut cl = client(c.grpc_url("otlp")).await;
    let mut acked = Vec::new();
    let mut next = 0u64;
    let mut refused = None;
    // 256 KiB of journal holds a few hundred of these; stop at the first refusal.
    for _ in 0..5000 {
        match cl.export(request(next, 20)).await {
            Ok(_) => acked.extend(next..next + 20),
            Err(status) => {
                refused = Some(status);
                next += 20;
                break;
            }
        }
        next += 20;
    }
    let status = refused.expect("the file size limit never refused a write");
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(!acked.is_empty());
    // Still full: everything is refused, for as long as it lasts.
    let full_until = std::time::Instant::now() + std::time::Duration::from_secs(1);
    while std::time::Instant::now() < full_until {
        let status = cl.export(request(next, 20)).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
        next += 20;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    set_file_size_limit(c.pid(), "unlimited");
    // Polled: the collector retries the reopen with back-off, and nothing it exposes says
    // when the disk got space back.
    let deadline = std::time::Instant::now() + WAIT;
    let mut after = None;
    while after.is_none() && std::time::Instant::now() < deadline {
        if cl.export(request(next, 20)).await.is_ok() {
            after = Some(next);
        } else {
            next += 20;
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
    assert!(
        after.is_some(),
        "the queue never accepted a request again after space came back"
    );
    let after = after.unwrap();
    acked.extend(after..after + 20);
    cl.export(request(after + 20, 20)).await.unwrap();
    acked.extend(after + 20..after + 40);
    assert!(
        c.log().iter().any(|l| l.contains("reopened")),
        "no log line about the reopen"
    );

    backend.refuse(None);
    let missing = wait_all(&backend, &acked, WAIT).await;
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged spans lost, e.g. {:?}",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(10)]
    );
}

/// Scenario: 57 requests queued on disk, each its own group commit, while the backend
/// refuses; the collector is SIGKILLed and one byte in the middle of its journal is damaged
/// (a record's payload); then it restarts and the backend recovers.
/// Guarantees: the collector starts on the same database (nothing set aside), cuts out only
/// the damaged batch (kept beside the journal, logged), and delivers the other 56 requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_journal_batch_is_cut_and_rest_replayed() {
    let backend = Backend::start().await;
    backend.refuse(Some(tonic::Code::Unavailable));
    let storage = tempfile::tempdir().unwrap();
    let c = Collector::start(&persistent_config(&backend, storage.path()));
    let mut cl = client(c.grpc_url("otlp")).await;
    for i in 0..57 {
        cl.export(request(i * 4, 4)).await.unwrap();
    }
    drop(cl);
    let (dir, config) = c.sigkill();

    let db = storage.path().join("fjall");
    let journals: Vec<_> = std::fs::read_dir(&db)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jnl"))
        .collect();
    let journal = journals
        .iter()
        .find(|p| {
            let b = std::fs::read(p).unwrap();
            b.windows(2).filter(|w| w == b"WQ").count() >= 57
        })
        .expect("a journal holding the records");
    let mut bytes = std::fs::read(journal).unwrap();
    // The 20th record header ("WQ"), and a byte of its payload well past it.
    let at = bytes
        .windows(2)
        .enumerate()
        .filter(|(_, w)| w == b"WQ")
        .nth(19)
        .map(|(i, _)| i)
        .unwrap();
    bytes[at + 40] ^= 0xff;
    std::fs::write(journal, &bytes).unwrap();

    backend.refuse(None);
    let c = Collector::start_in(dir, config, false, &[]);
    let all: Vec<u64> = (0..57 * 4).collect();
    backend
        .wait_until(WAIT, |r| {
            wasmcol_testkit::spans::ids(&r.traces).len() >= 56 * 4
        })
        .await;
    let got = delivery_support::arrivals(&backend);
    let missing: Vec<u64> = all
        .iter()
        .copied()
        .filter(|i| !got.contains_key(i))
        .collect();
    assert!(
        missing.len() <= 4,
        "{} of {} spans not replayed, e.g. {:?}",
        missing.len(),
        all.len(),
        &missing[..missing.len().min(10)]
    );
    assert!(
        c.log().iter().any(|l| l.contains("damaged journal batch")),
        "no log line about the cut batch"
    );
    let entries: Vec<String> = std::fs::read_dir(storage.path())
        .unwrap()
        .chain(std::fs::read_dir(&db).unwrap())
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !entries.iter().any(|n| n.starts_with("fjall.corrupt")),
        "the database was set aside: {entries:?}"
    );
    assert!(
        entries.iter().any(|n| n.contains(".jnl.quarantine-")),
        "the cut batch was not kept: {entries:?}"
    );
}
