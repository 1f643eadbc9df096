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

#[cfg(test)]
mod tests {
    use super::*;

    /// A batch as fjall writes it, with one item per value.
    fn batch_bytes(seqno: u64, values: &[&[u8]]) -> Vec<u8> {
        let mut items = Vec::new();
        for v in values {
            items.push(ITEM);
            items.push(0); // value type
            items.push(0); // no compression
            items.extend_from_slice(&7u64.to_le_bytes());
            items.extend_from_slice(&8u16.to_le_bytes());
            items.extend_from_slice(&(v.len() as u32).to_le_bytes());
            items.extend_from_slice(&(v.len() as u32).to_le_bytes());
            items.extend_from_slice(&seqno.to_be_bytes());
            items.extend_from_slice(v);
        }
        let mut b = vec![START];
        b.extend_from_slice(&(values.len() as u32).to_le_bytes());
        b.extend_from_slice(&seqno.to_le_bytes());
        b.extend_from_slice(&items);
        b.push(END);
        b.extend_from_slice(&xxhash_rust::xxh3::xxh3_64(&items).to_le_bytes());
        b.extend_from_slice(MAGIC);
        b
    }

    #[test]
    fn only_the_damaged_batch_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, c) = (
            batch_bytes(1, &[b"first"]),
            batch_bytes(2, &[b"second", b"third"]),
            batch_bytes(3, &[b"fourth"]),
        );
        let mut journal = [a.clone(), b.clone(), c.clone()].concat();
        let damaged = a.len() + b.len() - 16;
        journal[damaged] ^= 0xff;
        // The zeroed preallocation, and a torn batch before it, stay as they were.
        let torn = &batch_bytes(4, &[b"torn"])[..20];
        journal.extend_from_slice(torn);
        journal.extend_from_slice(&[0; 64]);
        let path = dir.path().join("0.jnl");
        std::fs::write(&path, &journal).unwrap();
        std::fs::write(dir.path().join("other"), b"not a journal").unwrap();

        let cut = cut_damaged_batches(dir.path()).unwrap();
        assert_eq!(cut.len(), 1, "{cut:?}");
        assert_eq!(cut[0].items, 2);
        let mut damaged_b = b.clone();
        damaged_b[b.len() - 16] ^= 0xff;
        assert_eq!(std::fs::read(&cut[0].kept_at).unwrap(), damaged_b);
        let mut expected = [a, c].concat();
        expected.extend_from_slice(torn);
        expected.extend_from_slice(&[0; 64]);
        assert_eq!(std::fs::read(&path).unwrap(), expected);

        // A journal that is whole is left alone.
        assert!(cut_damaged_batches(dir.path()).unwrap().is_empty());
    }
}
