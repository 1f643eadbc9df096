//! The validating scan (host/pdata wire.rs) against prost, for arbitrary bytes as each of
//! the three export requests.
//!
//! Asserted relation: the scan accepts ⇒ prost decodes, with the same item count and no id of
//! the wrong length. prost decodes ⇒ the scan accepts, except for the scan's two intended
//! refusals: a trace/span id that is neither empty nor 16/8 bytes (upstream pdata refuses it)
//! in any occurrence of an id field, even one a later occurrence overrides in prost (which
//! keeps the last), and a group (wire type 3) in an unknown field, which prost skips and OTLP
//! never uses.
//! One more intended difference is in the count: a `Metric` carrying two different `data`
//! variants keeps only the last one in prost (a `oneof`), while the scan counts the points of
//! every variant; the scan's count is checked against a decode that keeps them all.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use wasmcol_fuzz::{ids, loose, prost_count};
use wasmcol_pdata::{Batch, DecodeError, Signal};

fuzz_target!(|data: &[u8]| {
    for signal in Signal::ALL {
        let scan = Batch::from_encoded(signal, Bytes::copy_from_slice(data));
        let prost = prost_count(signal, data);
        match (scan, prost) {
            (Ok(batch), Some((n, bad_id))) => {
                assert!(
                    !bad_id && !ids::any_bad(signal, data),
                    "{signal}: scan accepted an id of the wrong length"
                );
                if signal == Signal::Metrics {
                    let (all, multi) = loose::count(data).expect("loose metrics decode");
                    assert_eq!(
                        batch.item_count(),
                        all,
                        "{signal}: scan count vs all points"
                    );
                    if multi {
                        assert!(n <= all);
                    } else {
                        assert_eq!(n, all, "{signal}: prost count vs scan count");
                    }
                } else {
                    assert_eq!(batch.item_count(), n, "{signal}: prost count vs scan count");
                }
            }
            (Ok(batch), None) => {
                panic!(
                    "{signal}: scan accepted ({} items), prost refused",
                    batch.item_count()
                )
            }
            (Err(DecodeError::IdLength { .. }), Some(_)) => {
                assert!(
                    ids::any_bad(signal, data),
                    "{signal}: id refusal without a bad id"
                );
            }
            (
                Err(DecodeError::WireType {
                    field: None,
                    wire: 3,
                    ..
                }),
                Some(_),
            ) => {}
            (Err(e), Some(_)) => panic!("{signal}: scan refused ({e:?}), prost decoded"),
            (Err(_), None) => {}
        }
    }
});
