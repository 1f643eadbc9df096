//! Upstream's consistent-hash ring, bit for bit: a mixed fleet of wasmcol and otelcol load
//! balancers must send each routing key to the same backend, so nothing here may differ
//! from the Go exporter — not the hash, the point count, the modulus, nor who wins a
//! collision.

/// Positions on the ring ("360 degrees × 100").
pub const MAX_POSITIONS: u32 = 36_000;

/// Points each backend places on the ring.
pub const POINTS_PER_BACKEND: u8 = 100;

/// Where `key` falls on the ring: CRC-32 (IEEE) of its bytes modulo [`MAX_POSITIONS`].
pub fn position(key: &[u8]) -> u32 {
    crc32fast::hash(key) % MAX_POSITIONS
}

/// Where point `i` of `endpoint` sits: CRC-32 of the endpoint's bytes followed by the byte
/// `i`.
fn point(endpoint: &str, i: u8) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(endpoint.as_bytes());
    h.update(&[i]);
    h.finalize() % MAX_POSITIONS
}

/// A ring over a set of backends, each named by the resolver's string for it (`10.0.0.1`
/// or `10.0.0.1:4317`: whether a port is part of the name changes every assignment, as
/// upstream).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ring {
    /// Backend names, sorted and without duplicates.
    endpoints: Vec<String>,
    /// (position, index into `endpoints`), sorted by position, one per position.
    points: Vec<(u32, usize)>,
}

impl Ring {
    /// Builds the ring. Backends are placed in sorted order and a position already taken is
    /// skipped, so the first backend in sorted order wins a collision.
    pub fn new<I, S>(endpoints: I) -> Ring
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut endpoints: Vec<String> = endpoints.into_iter().map(Into::into).collect();
        endpoints.sort();
        endpoints.dedup();
        let mut taken = vec![false; MAX_POSITIONS as usize];
        let mut points = Vec::with_capacity(endpoints.len() * usize::from(POINTS_PER_BACKEND));
        for (index, endpoint) in endpoints.iter().enumerate() {
            for i in 0..POINTS_PER_BACKEND {
                let pos = point(endpoint, i);
                if let Some(slot) = taken.get_mut(pos as usize)
                    && !*slot
                {
                    *slot = true;
                    points.push((pos, index));
                }
            }
        }
        points.sort_unstable();
        Ring { endpoints, points }
    }

    /// The backend for `key`: the first point at or after the key's position, wrapping to
    /// the first point; `None` on an empty ring.
    pub fn endpoint_for(&self, key: &[u8]) -> Option<&str> {
        self.endpoints.get(self.index_for(key)?).map(String::as_str)
    }

    /// [`Ring::endpoint_for`] as an index into [`Ring::endpoints`].
    pub fn index_for(&self, key: &[u8]) -> Option<usize> {
        let p = position(key);
        let i = self.points.partition_point(|&(pos, _)| pos < p);
        let &(_, index) = self.points.get(i).or_else(|| self.points.first())?;
        Some(index)
    }

    /// The backends, sorted.
    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// Whether the ring has no backend.
    pub fn is_empty(&self) -> bool {
        self.endpoints.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vectors in upstream's formula, computed independently (Python's zlib.crc32).
    #[test]
    fn positions_match_upstream_vectors() {
        let trace_id: [u8; 16] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16];
        assert_eq!(crc32fast::hash(&trace_id), 0x094c_80f1);
        assert_eq!(position(&trace_id), 20689);
        assert_eq!(crc32fast::hash(b"checkout"), 0xaf38_2d4e);
        assert_eq!(position(b"checkout"), 6414);
        let first_five: Vec<u32> = (0..5).map(|i| point("backend-1:4317", i)).collect();
        assert_eq!(first_five, [29341, 20683, 26737, 21223, 4324]);
    }

    /// A second, deliberately naive reading of the formula, first half: every point in
    /// sorted backend order, the first owner of each position kept.
    fn naive_ring<'a>(endpoints: &[&'a str]) -> std::collections::BTreeMap<u32, &'a str> {
        let mut sorted: Vec<&str> = endpoints.to_vec();
        sorted.sort();
        let mut owners = std::collections::BTreeMap::new();
        for e in sorted {
            for i in 0..100u8 {
                let mut bytes = e.as_bytes().to_vec();
                bytes.push(i);
                owners.entry(crc32fast::hash(&bytes) % 36_000).or_insert(e);
            }
        }
        owners
    }

    /// Second half: the smallest position at or after the key's, else the smallest.
    fn naive_lookup<'a>(owners: &std::collections::BTreeMap<u32, &'a str>, key: &[u8]) -> &'a str {
        let p = crc32fast::hash(key) % 36_000;
        let (_, e) = owners
            .range(p..)
            .next()
            .or_else(|| owners.iter().next())
            .unwrap();
        e
    }

    /// Scenario: 10,000 pseudo-random trace ids over three backends given unsorted.
    /// Guarantees: every assignment equals the naive formula's, and each backend gets a
    /// share (no backend is starved by a bug in the wrap-around or the collision rule).
    #[test]
    fn ten_thousand_trace_ids_land_where_the_formula_says() {
        let backends = ["gw-3:4317", "gw-1:4317", "gw-2:4317"];
        let ring = Ring::new(backends);
        let owners = naive_ring(&backends);
        assert_eq!(ring.endpoints(), ["gw-1:4317", "gw-2:4317", "gw-3:4317"]);
        let mut counts = std::collections::HashMap::new();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..10_000 {
            let mut id = [0u8; 16];
            for chunk in id.chunks_mut(8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                chunk.copy_from_slice(&x.to_le_bytes());
            }
            let got = ring.endpoint_for(&id).unwrap();
            assert_eq!(got, naive_lookup(&owners, &id), "trace id {id:02x?}");
            *counts.entry(got.to_owned()).or_insert(0u32) += 1;
        }
        assert_eq!(counts.len(), 3, "{counts:?}");
        assert!(counts.values().all(|&n| n > 1_000), "{counts:?}");
    }

    /// Scenario: a key past the last point; an empty ring; a backend listed twice.
    /// Guarantees: the lookup wraps to the first point; an empty ring routes nowhere;
    /// duplicates do not change the ring.
    #[test]
    fn wraps_and_handles_edges() {
        let ring = Ring::new(["a", "b"]);
        let &(last, _) = ring.points.last().unwrap();
        let &(_, first_owner) = ring.points.first().unwrap();
        let key = (0u32..)
            .map(|n| n.to_le_bytes())
            .find(|k| position(k) > last)
            .unwrap();
        assert_eq!(
            ring.endpoint_for(&key),
            Some(ring.endpoints()[first_owner].as_str())
        );
        assert_eq!(Ring::new(Vec::<String>::new()).endpoint_for(b"x"), None);
        assert!(Ring::new(Vec::<String>::new()).is_empty());
        assert_eq!(Ring::new(["b", "a", "b"]), ring);
    }
}
