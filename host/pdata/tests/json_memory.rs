//! OTLP/JSON costs memory in proportion to its size whatever its shape: the peak heap while
//! a body is parsed stays within a fixed multiple of the body, even for bodies made of the
//! smallest values (`{}` that each become a whole span, `0` that each become 8 bytes).

// A counting allocator has to implement the unsafe GlobalAlloc trait; it only forwards to
// the system allocator.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use wasmcol_pdata::{Batch, Signal};

/// Counts live heap bytes and the highest count since the last reset.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                let now = LIVE.fetch_add(new_size - layout.size(), Ordering::Relaxed)
                    + (new_size - layout.size());
                PEAK.fetch_max(now, Ordering::Relaxed);
            } else {
                LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// The most the parse may hold, as a multiple of the body. The protobuf it writes is at most
/// 4x the text (packed fixed64 from `0,`) and its buffer grows by doubling.
const FACTOR: usize = 10;

/// `prefix`, then `item` repeated with commas up to about `size` bytes, then `suffix`.
fn body(prefix: &str, item: &str, suffix: &str, size: usize) -> Vec<u8> {
    let mut b = prefix.as_bytes().to_vec();
    b.extend_from_slice(item.as_bytes());
    while b.len() + suffix.len() < size {
        b.push(b',');
        b.extend_from_slice(item.as_bytes());
    }
    b.extend_from_slice(suffix.as_bytes());
    b
}

/// Peak heap growth while `json` is parsed, over its length.
fn amplification(signal: Signal, json: &[u8]) -> f64 {
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let batch = Batch::from_json(signal, json);
    let peak = PEAK.load(Ordering::Relaxed) - base;
    assert!(batch.is_ok(), "{:?}", batch.err());
    drop(batch);
    peak as f64 / json.len() as f64
}

#[test]
fn json_peak_memory_is_a_small_multiple_of_the_body() {
    const SIZE: usize = 4 << 20;
    let spans = "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[";
    let cases: Vec<(&str, Signal, Vec<u8>)> = vec![
        (
            "empty resources",
            Signal::Traces,
            body("{\"resourceSpans\":[", "{}", "]}", SIZE),
        ),
        (
            "empty spans",
            Signal::Traces,
            body(spans, "{}", "]}]}]}", SIZE),
        ),
        (
            "empty attributes",
            Signal::Traces,
            body(
                &format!("{spans}{{\"attributes\":["),
                "{}",
                "]}]}]}]}",
                SIZE,
            ),
        ),
        (
            "empty links",
            Signal::Traces,
            body(&format!("{spans}{{\"links\":["), "{}", "]}]}]}]}", SIZE),
        ),
        (
            "nested empty arrays",
            Signal::Logs,
            body(
                "{\"resourceLogs\":[{\"scopeLogs\":[{\"logRecords\":[{\"body\":{\"arrayValue\":{\"values\":[",
                "{}",
                "]}}}]}]}]}",
                SIZE,
            ),
        ),
        (
            "histogram bucket counts",
            Signal::Metrics,
            body(
                "{\"resourceMetrics\":[{\"scopeMetrics\":[{\"metrics\":[{\"histogram\":{\"dataPoints\":[{\"bucketCounts\":[",
                "0",
                "]}]}}]}]}]}",
                SIZE,
            ),
        ),
        (
            "empty data points",
            Signal::Metrics,
            body(
                "{\"resourceMetrics\":[{\"scopeMetrics\":[{\"metrics\":[{\"histogram\":{\"dataPoints\":[",
                "{}",
                "]}}]}]}]}",
                SIZE,
            ),
        ),
    ];
    let mut worst = 0.0f64;
    for (name, signal, json) in &cases {
        let factor = amplification(*signal, json);
        eprintln!("{name}: {} bytes, peak {factor:.2}x", json.len());
        assert!(
            factor <= FACTOR as f64,
            "{name}: parsing {} bytes peaked at {factor:.1}x the body",
            json.len()
        );
        worst = worst.max(factor);
    }
    eprintln!("worst: {worst:.2}x");
}
