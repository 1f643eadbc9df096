//! Persistent queue records (host/delivery record.rs): what `file_storage` reads back from
//! disk after a restart, damaged or not, in any format (1: payload as received, 2: zstd, 3
//! and 4: the same with the request context).
//!
//! Input: a stored record value, read by a queue of each signal. Asserted: no panic; `decode`
//! accepts only what `check` accepts, with the payload length the header gives; a decoded
//! version 1 record encodes back (`encode_raw`) to the same bytes apart from the item count,
//! which the checksum does not cover and which `decode` recounts; and the batch, its request
//! context included, survives both encodings (`encode`, `encode_raw`) unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wasmcol_delivery::record::{self, VERSION_RAW};
use wasmcol_pdata::Signal;

fuzz_target!(|data: &[u8]| {
    let _ = record::seq_of(data);
    for signal in Signal::ALL {
        one(data, signal);
    }
});

fn one(data: &[u8], signal: Signal) {
    let checked = record::check(data, signal);
    let Ok(batch) = record::decode(data, signal) else {
        return;
    };
    let info = checked.expect("decode accepted what check refused");
    assert_eq!(info.payload_len as usize, batch.encoded_len());
    if data[2] == VERSION_RAW {
        let again = record::encode_raw(&batch);
        assert_eq!(again.len(), data.len());
        assert_eq!(again[..4], data[..4]);
        assert_eq!(again[8..], data[8..]);
    }
    for again in [record::encode_raw(&batch), record::encode(&batch)] {
        let count = u32::from_le_bytes([again[4], again[5], again[6], again[7]]);
        assert_eq!(count as usize, batch.item_count());
        let back = record::decode(&again, signal).expect("re-encoded record");
        assert_eq!(back.encoded(), batch.encoded());
        assert_eq!(back.item_count(), batch.item_count());
        assert_eq!(back.context(), batch.context());
    }
}
