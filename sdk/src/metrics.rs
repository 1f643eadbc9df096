//! The plugin's own metrics (contract 0.2.0). The collector exports them with a
//! `processor` label added; a name must start with `otelcol_processor_<NAME>_` (the
//! plugin's [`crate::Processor::NAME`], every character other than ASCII letters and digits
//! written `_`: package `region-tag` → `otelcol_processor_region_tag_`), else the host
//! ignores it. Counters are named without `_total`.
//!
//! Natively (unit tests) the values are kept per thread; read them with [`value`].

#[cfg(not(target_arch = "wasm32"))]
use std::cell::RefCell;
#[cfg(not(target_arch = "wasm32"))]
use std::collections::BTreeMap;

#[cfg(not(target_arch = "wasm32"))]
type Series = (String, Vec<(String, String)>);

#[cfg(not(target_arch = "wasm32"))]
thread_local! {
    static VALUES: RefCell<BTreeMap<Series, f64>> = const { RefCell::new(BTreeMap::new()) };
}

#[cfg(not(target_arch = "wasm32"))]
fn series(name: &str, labels: &[(&str, &str)]) -> Series {
    let mut l: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    l.sort();
    (name.to_owned(), l)
}

/// Adds `value` to counter `name`.
pub fn counter_add(name: &str, help: &str, labels: &[(&str, &str)], value: u64) {
    #[cfg(target_arch = "wasm32")]
    crate::guest::counter_add(name, help, labels, value);
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = help;
        VALUES.with(|v| *v.borrow_mut().entry(series(name, labels)).or_default() += value as f64);
    }
}

/// Sets gauge `name`.
pub fn gauge_set(name: &str, help: &str, labels: &[(&str, &str)], value: f64) {
    #[cfg(target_arch = "wasm32")]
    crate::guest::gauge_set(name, help, labels, value);
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = help;
        VALUES.with(|v| v.borrow_mut().insert(series(name, labels), value));
    }
}

/// Records `value` in histogram `name` with bucket upper `bounds` (used the first time).
pub fn histogram_record(
    name: &str,
    help: &str,
    labels: &[(&str, &str)],
    bounds: &[f64],
    value: f64,
) {
    #[cfg(target_arch = "wasm32")]
    crate::guest::histogram_record(name, help, labels, bounds, value);
    #[cfg(not(target_arch = "wasm32"))]
    {
        // Natively a histogram reads as its number of observations.
        let _ = (help, bounds, value);
        VALUES.with(|v| *v.borrow_mut().entry(series(name, labels)).or_default() += 1.0);
    }
}

/// Natively: a counter's sum, a gauge's value or a histogram's count on this thread.
#[cfg(not(target_arch = "wasm32"))]
pub fn value(name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    VALUES.with(|v| v.borrow().get(&series(name, labels)).copied())
}
