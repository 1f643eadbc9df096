//! Body compression for OTLP/HTTP, with the decompressed size bounded like upstream
//! (GHSA-c74f-6mfw-mm4v: the limit applies to the decompressed stream too).

use std::io::Read;

use bytes::Bytes;

/// Content-Encoding values the receiver accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// No compression.
    Identity,
    /// gzip
    Gzip,
    /// zstd
    Zstd,
    /// zlib-wrapped deflate (`deflate` and `zlib`, as upstream decodes both with zlib)
    Zlib,
}

impl Encoding {
    /// Parses a Content-Encoding header value.
    pub fn parse(v: &str) -> Option<Encoding> {
        match v.trim().to_ascii_lowercase().as_str() {
            "" | "identity" => Some(Encoding::Identity),
            "gzip" | "x-gzip" => Some(Encoding::Gzip),
            "zstd" => Some(Encoding::Zstd),
            "deflate" | "zlib" => Some(Encoding::Zlib),
            _ => None,
        }
    }
}

/// Why a body could not be decompressed.
#[derive(Debug, thiserror::Error)]
pub enum DecompressError {
    /// The output would pass the body limit.
    #[error("request body too large: more than {0} bytes after decompression")]
    TooLarge(usize),
    /// The stream is corrupt.
    #[error("failed to decompress request body: {0}")]
    Corrupt(std::io::Error),
}

/// Decompresses `body`, refusing output larger than `limit`.
pub fn decompress(enc: Encoding, body: Bytes, limit: usize) -> Result<Bytes, DecompressError> {
    let reader: Box<dyn Read> = match enc {
        Encoding::Identity => return Ok(body),
        Encoding::Gzip => Box::new(flate2::read::MultiGzDecoder::new(&body[..])),
        Encoding::Zlib => Box::new(flate2::read::ZlibDecoder::new(&body[..])),
        Encoding::Zstd => {
            Box::new(zstd::stream::read::Decoder::new(&body[..]).map_err(DecompressError::Corrupt)?)
        }
    };
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(limit));
    let n = reader
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(DecompressError::Corrupt)?;
    if n > limit {
        return Err(DecompressError::TooLarge(limit));
    }
    Ok(Bytes::from(out))
}

/// Compression of exporter request bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// None.
    None,
    /// gzip
    Gzip,
    /// zstd
    Zstd,
    /// zlib / deflate
    Zlib,
}

impl Compression {
    /// Parses the `compression` key (`gzip`, `zstd`, `zlib`, `deflate`, `none`, ``).
    pub fn parse(v: &str) -> Result<Compression, String> {
        match v {
            "" | "none" => Ok(Compression::None),
            "gzip" => Ok(Compression::Gzip),
            "zstd" => Ok(Compression::Zstd),
            "zlib" | "deflate" => Ok(Compression::Zlib),
            "snappy" | "lz4" | "x-snappy-framed" => Err(format!(
                "compression: {v:?} is not supported by wasmcol (use gzip, zstd, zlib, deflate or none)"
            )),
            other => Err(format!(
                "compression: unsupported compression type {other:?}"
            )),
        }
    }

    /// The Content-Encoding header value.
    pub fn header(self) -> Option<&'static str> {
        match self {
            Compression::None => None,
            Compression::Gzip => Some("gzip"),
            Compression::Zstd => Some("zstd"),
            Compression::Zlib => Some("deflate"),
        }
    }

    /// Checks `compression_params.level` against upstream's levels for this algorithm
    /// (gzip, zlib, deflate: 1..=9 or -1 for the library default; zstd: 1, 3, 6 or 11) and
    /// returns it; the message starts with its key path.
    pub fn level(self, level: i64) -> Result<Level, String> {
        let ok = match self {
            Compression::Gzip | Compression::Zlib => level == -1 || (1..=9).contains(&level),
            Compression::Zstd => matches!(level, 1 | 3 | 6 | 11),
            Compression::None => false,
        };
        match (ok, i32::try_from(level)) {
            (true, Ok(l)) => Ok(Level(l)),
            _ => Err(format!(
                "compression_params.level: unsupported compression level {level} for {}",
                self.header().unwrap_or("none")
            )),
        }
    }

    /// Compresses `body` at `level`; `None` is the fastest level, because exports are
    /// latency-bound and the fast levels already shrink OTLP several-fold.
    pub fn compress_at(self, body: &[u8], level: Option<Level>) -> std::io::Result<Vec<u8>> {
        use std::io::Write;
        let flate = match level {
            None => flate2::Compression::fast(),
            Some(Level(-1)) => flate2::Compression::default(),
            Some(Level(l)) => flate2::Compression::new(l.clamp(0, 9).unsigned_abs()),
        };
        match self {
            Compression::None => Ok(body.to_vec()),
            Compression::Gzip => {
                let mut e =
                    flate2::write::GzEncoder::new(Vec::with_capacity(body.len() / 4), flate);
                e.write_all(body)?;
                e.finish()
            }
            Compression::Zlib => {
                let mut e =
                    flate2::write::ZlibEncoder::new(Vec::with_capacity(body.len() / 4), flate);
                e.write_all(body)?;
                e.finish()
            }
            Compression::Zstd => zstd::bulk::compress(body, level.map_or(1, |l| l.0)),
        }
    }
}

/// A compression level checked by [`Compression::level`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Level(i32);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_follow_upstream() {
        let data: Vec<u8> = (0..50_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for (c, good, bad) in [
            (Compression::Gzip, [-1, 1, 9], [0, 10]),
            (Compression::Zlib, [-1, 5, 9], [-2, 12]),
            (Compression::Zstd, [1, 6, 11], [2, 22]),
        ] {
            for l in good {
                let level = c.level(l).unwrap();
                let z = c.compress_at(&data, Some(level)).unwrap();
                let enc = Encoding::parse(c.header().unwrap()).unwrap();
                assert_eq!(decompress(enc, Bytes::from(z), 1 << 20).unwrap(), data);
            }
            for l in bad {
                let e = c.level(l).unwrap_err();
                assert!(e.starts_with("compression_params.level: "), "{e}");
            }
        }
        assert!(Compression::None.level(1).is_err());
        // A higher level is a real setting: it changes the output.
        let fast = Compression::Zstd.compress_at(&data, None).unwrap();
        let best = Compression::Zstd
            .compress_at(&data, Some(Compression::Zstd.level(11).unwrap()))
            .unwrap();
        assert_ne!(fast, best);
    }

    #[test]
    fn round_trips_and_limits() {
        let data = vec![7u8; 10_000];
        for c in [Compression::Gzip, Compression::Zstd, Compression::Zlib] {
            let z = c.compress_at(&data, None).unwrap();
            let enc = Encoding::parse(c.header().unwrap()).unwrap();
            assert_eq!(
                decompress(enc, Bytes::from(z.clone()), 20_000)
                    .unwrap()
                    .len(),
                10_000
            );
            assert!(matches!(
                decompress(enc, Bytes::from(z), 9_999),
                Err(DecompressError::TooLarge(_))
            ));
        }
        assert!(decompress(Encoding::Gzip, Bytes::from_static(b"garbage"), 100).is_err());
        assert_eq!(Encoding::parse("snappy"), None);
    }
}
