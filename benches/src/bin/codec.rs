//! Per-span cost of the receiver's validating scan against a full prost decode (what a
//! receiver that decodes pays) and a prost encode, on the load generator's realistic spans.
//!
//! `cargo run --release -p wasmcol-benches --bin codec`

#![forbid(unsafe_code)]

use std::time::Instant;

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use wasmcol_pdata::TracesBatch;

fn time_per_span(spans: usize, rounds: usize, f: impl Fn() -> usize) -> f64 {
    // Best of 5 to shed noise from other processes on the machine.
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        let mut n = 0;
        for _ in 0..rounds {
            n += f();
        }
        assert_eq!(n, spans * rounds);
        best = best.min(t.elapsed().as_secs_f64() * 1e9 / (spans * rounds) as f64);
    }
    best
}

fn main() {
    println!(
        "| spans/request | scan ns/span | prost decode ns/span | prost encode ns/span | scan / decode |"
    );
    println!("| --- | --- | --- | --- | --- |");
    for spans in [100usize, 1000] {
        let msg = wasmcol_benches::traces_request(7, spans);
        let bytes = Bytes::from(msg.encode_to_vec());
        let rounds = 200_000 / spans;
        let scan = time_per_span(spans, rounds, || {
            TracesBatch::from_encoded(bytes.clone())
                .map(|b| b.item_count())
                .unwrap_or(0)
        });
        let decode = time_per_span(spans, rounds, || {
            ExportTraceServiceRequest::decode(bytes.clone())
                .map(|m| {
                    m.resource_spans
                        .iter()
                        .flat_map(|r| &r.scope_spans)
                        .map(|s| s.spans.len())
                        .sum()
                })
                .unwrap_or(0)
        });
        let encode = time_per_span(spans, rounds, || {
            let v = msg.encode_to_vec();
            std::hint::black_box(v);
            spans
        });
        println!(
            "| {spans} | {scan:.0} | {decode:.0} | {encode:.0} | {:.2} |",
            scan / decode
        );
    }
}
