//! OTLP/JSON (host/pdata json.rs through `Batch::from_json` / `Batch::to_json`, the calls the
//! HTTP receiver and the debug exporter make).
//!
//! Asserted: no panic; a JSON request that decodes is carried as protobuf the receiver's own
//! scan accepts with the same item count, and printing it as JSON and decoding that gives the
//! same request. The same bytes read as protobuf, when the scan accepts them, go through
//! JSON and back unchanged too.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use wasmcol_fuzz::{assert_valid, canonical};
use wasmcol_pdata::{Batch, Signal};

fn round_trip(signal: Signal, batch: &Batch, what: &str) {
    // Received bytes are compared in prost's canonical form (field order, unknown fields).
    let wire = canonical(signal, &batch.encoded()).expect("a carried batch decodes");
    let json = match batch.to_json() {
        Ok(j) => j,
        Err(e) => panic!("{signal}: {what} does not print as JSON: {e}"),
    };
    match Batch::from_json(signal, json.as_bytes()) {
        // The transcoder may write default values prost leaves out, so both sides are
        // compared in prost's canonical form.
        Ok(again) => assert_eq!(
            &canonical(signal, &again.encoded()).expect("transcoded JSON decodes")[..],
            &wire[..],
            "{signal}: {what} changed through {json}"
        ),
        Err(e) => panic!("{signal}: {what} printed as JSON that does not decode: {e}: {json}"),
    }
}

fuzz_target!(|data: &[u8]| {
    for signal in Signal::ALL {
        if let Ok(batch) = Batch::from_json(signal, data) {
            assert_valid(signal, batch.encoded(), batch.item_count());
            round_trip(signal, &batch, "decoded JSON");
        }
        if let Ok(batch) = Batch::from_encoded(signal, Bytes::copy_from_slice(data)) {
            round_trip(signal, &batch, "scanned protobuf");
        }
    }
});
