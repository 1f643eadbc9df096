//! Looking up one series in Prometheus text exposition.

/// The value of the series `name` whose labels include every `k="v"` pair of `labels`
/// (comma-separated, any order), with or without the `_total` suffix.
pub fn series(text: &str, name: &str, labels: &str) -> Option<f64> {
    let want: Vec<&str> = labels.split(',').filter(|l| !l.is_empty()).collect();
    let suffixed = format!("{name}_total");
    text.lines().find_map(|l| {
        if l.starts_with('#') {
            return None;
        }
        let (head, value) = l.rsplit_once(' ')?;
        let (n, rest) = match head.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (head, ""),
        };
        if n != name && n != suffixed {
            return None;
        }
        let have: Vec<&str> = rest.split(',').collect();
        if !want.iter().all(|w| have.contains(w)) {
            return None;
        }
        value.trim().parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::series;

    const TEXT: &str = "# TYPE a_total counter\n\
        a_total{x=\"1\",y=\"2\"} 3\n\
        a_total{x=\"2\"} 4\n\
        b 5\n";

    #[test]
    fn finds_by_labels_in_any_order_and_suffix() {
        assert_eq!(series(TEXT, "a", "y=\"2\",x=\"1\""), Some(3.0));
        assert_eq!(series(TEXT, "a_total", "x=\"2\""), Some(4.0));
        assert_eq!(series(TEXT, "b", ""), Some(5.0));
        assert_eq!(series(TEXT, "a", "x=\"3\""), None);
    }
}
