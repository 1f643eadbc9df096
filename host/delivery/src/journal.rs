//! Cutting damaged batches out of fjall's journal, so one bad write does not cost the whole
//! database.
//!
//! fjall refuses to open a database whose journal holds a batch that fails its checksum
//! anywhere but at the tail. Each group commit is one such batch, so instead of setting the
//! database aside, the batches that fail are cut out of the journal file and kept next to it
//! (`<journal>.quarantine-<offset>`), and the database opens with everything else.
//!
//! The layout follows fjall 3's journal (`journal/entry.rs`): a batch is `Start` (tag 1,
//! item count u32, seqno u64), that many `Item`s (tag 2, value type u8, compression u8,
//! keyspace id u64, key length u16, value length u32, stored length u32, key, stored value)
//! or `Clear`s (tag 4, keyspace id u64), then `End` (tag 3, xxh3 of the items' bytes u64,
//! `FJL\x03`); all integers little-endian. A byte that is not a tag ends the journal (the
//! preallocated, zeroed tail).

use std::path::{Path, PathBuf};

const START: u8 = 1;
const ITEM: u8 = 2;
const END: u8 = 3;
const CLEAR: u8 = 4;
const MAGIC: &[u8] = b"FJL\x03";

/// A batch cut out of a journal.
#[derive(Debug)]
pub(crate) struct CutBatch {
    /// Where its bytes were kept.
    pub(crate) kept_at: PathBuf,
    /// Items it held.
    pub(crate) items: u32,
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// How one batch starting at `at` reads: its end, and whether its checksum holds. `None`
/// when no whole batch starts there (the end of the journal, or a torn tail fjall drops).
fn batch(b: &[u8], at: usize) -> Option<(usize, bool, u32)> {
    if *b.get(at)? != START {
        return None;
    }
    let count = u32_at(b, at + 1)?;
    let mut pos = at + 13;
    let items_from = pos;
    for _ in 0..count {
        match *b.get(pos)? {
            ITEM => {
                let key = usize::from(u16_at(b, pos + 11)?);
                let stored = u32_at(b, pos + 17)? as usize;
                pos = pos.checked_add(21 + key + stored)?;
            }
            CLEAR => pos += 9,
            _ => return None,
        }
    }
    let items = b.get(items_from..pos)?;
    if *b.get(pos)? != END || b.get(pos + 9..pos + 13)? != MAGIC {
        return None;
    }
    let checksum = u64_at(b, pos + 1)?;
    let ok = xxhash_rust::xxh3::xxh3_64(items) == checksum;
    Some((pos + 13, ok, count))
}

/// Cuts every batch that fails its checksum out of the journal files of the database at
/// `db`, keeping each one's bytes in a file beside its journal. Returns what was cut; an
/// empty list means nothing in the journals explains a failed open.
pub(crate) fn cut_damaged_batches(db: &Path) -> std::io::Result<Vec<CutBatch>> {
    let mut cut = Vec::new();
    for entry in std::fs::read_dir(db)? {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("jnl") {
            continue;
        }
        let bytes = std::fs::read(&path)?;
        let mut kept = Vec::with_capacity(bytes.len());
        let mut at = 0;
        let mut damaged = false;
        while let Some((end, ok, items)) = batch(&bytes, at) {
            if ok {
                kept.extend_from_slice(&bytes[at..end]);
            } else {
                let kept_at = path.with_extension(format!("jnl.quarantine-{at}"));
                std::fs::write(&kept_at, &bytes[at..end])?;
                cut.push(CutBatch { kept_at, items });
                damaged = true;
            }
            at = end;
        }
        if damaged {
            // What follows the last whole batch (a torn tail, the zeroed preallocation) is
            // kept as it was, so fjall treats it as it would have.
            kept.extend_from_slice(&bytes[at..]);
            let tmp = path.with_extension("jnl.repair");
            std::fs::write(&tmp, &kept)?;
            std::fs::File::open(&tmp)?.sync_all()?;
            std::fs::rename(&tmp, &path)?;
        }
    }
    Ok(cut)
}
