//! Test support shared by the host crates' tests and the end-to-end tests. Not part of the
//! collector.

#![forbid(unsafe_code)]

pub mod examples;
pub mod prom;
pub mod promtool;
pub mod spans;
