//! The OTLP/HTTP receiver's decompressors (host/otlp compression.rs): gzip, zstd and
//! zlib/deflate, each with the body limit.
//!
//! Input: byte 0 picks the encoding, bytes 1..3 the limit (0..65535), the rest is the body.
//! Asserted: no panic; the output never exceeds the limit; a body the exporter side
//! compressed decompresses to the original under a limit that fits and is refused as too
//! large under one byte less.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use wasmcol_otlp::compression::{Compression, DecompressError, Encoding, decompress};

fuzz_target!(|data: &[u8]| {
    let [pick, lo, hi, body @ ..] = data else {
        return;
    };
    let (enc, comp) = match pick % 4 {
        0 => (Encoding::Gzip, Compression::Gzip),
        1 => (Encoding::Zstd, Compression::Zstd),
        2 => (Encoding::Zlib, Compression::Zlib),
        _ => (Encoding::Identity, Compression::None),
    };
    let limit = usize::from(u16::from_le_bytes([*lo, *hi]));
    match decompress(enc, Bytes::copy_from_slice(body), limit) {
        Ok(out) if enc != Encoding::Identity => {
            assert!(
                out.len() <= limit,
                "{enc:?}: {} bytes out, limit {limit}",
                out.len()
            )
        }
        Ok(_) | Err(DecompressError::TooLarge(_)) | Err(DecompressError::Corrupt(_)) => {}
    }
    // The same bytes as the plain body, compressed the way the exporters compress.
    let packed = comp.compress_at(body, None).expect("compress into memory");
    let out = decompress(enc, Bytes::from(packed.clone()), body.len()).expect("round trip");
    assert_eq!(&out[..], body, "{enc:?} round trip");
    if enc != Encoding::Identity && !body.is_empty() {
        assert!(
            matches!(
                decompress(enc, Bytes::from(packed), body.len() - 1),
                Err(DecompressError::TooLarge(_))
            ),
            "{enc:?}: output one byte over the limit not refused"
        );
    }
});
