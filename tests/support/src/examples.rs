//! The configs shipped in `examples/`: tests run these files (with endpoints, certificate and
//! directory paths supplied through the environment variables and `--set` overrides each
//! example documents) rather than keeping copies that could drift from what users run.

use std::path::PathBuf;

/// The repository's `examples/` folder.
pub fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

/// The path of `examples/<name>` (`name` with its `.yaml`).
pub fn path(name: &str) -> PathBuf {
    dir().join(name)
}

/// Every example config file, sorted by name.
pub fn all() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir())
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_examples_are_found() {
        let all = super::all();
        assert!(
            all.iter().any(|p| p.ends_with("quickstart.yaml")),
            "{all:?}"
        );
        assert!(super::path("quickstart.yaml").is_file());
    }
}
