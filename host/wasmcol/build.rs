//! Embeds the SDK crate's packaged sources, so `wasmcol plugin new` writes a project that
//! builds outside this repository and without a registry copy of the (unpublished) SDK.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// What `cargo package -p wasmcol-sdk` ships, without `tests/` (a vendored dependency's own
/// tests are never built, and they need the generator dev-dependencies).
const ROOTS: &[&str] = &["Cargo.toml", "README.md", "src", "wit"];

fn main() {
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sdk");
    let mut files = Vec::new();
    for root in ROOTS {
        let path = sdk.join(root);
        println!("cargo:rerun-if-changed={}", path.display());
        collect(&path, &mut files);
    }
    files.sort();
    let mut out = String::from("&[\n");
    for file in &files {
        let rel = file
            .strip_prefix(&sdk)
            .unwrap_or(file)
            .to_string_lossy()
            .replace('\\', "/");
        let abs = std::fs::canonicalize(file).unwrap_or_else(|_| file.clone());
        let contents = if rel == "Cargo.toml" {
            // The packaged manifest: standalone, like the one `cargo package` normalises.
            let manifest = std::fs::read_to_string(file).unwrap_or_default();
            format!("{:?}", standalone_manifest(&manifest))
        } else {
            format!("include_str!({:?})", abs.to_string_lossy())
        };
        let _ = writeln!(out, "    ({rel:?}, {contents}),");
    }
    out.push(']');
    let dest = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default()).join("sdk_files.rs");
    if let Err(e) = std::fs::write(&dest, out) {
        println!("cargo:warning=cannot write {}: {e}", dest.display());
    }
}

fn collect(path: &Path, files: &mut Vec<PathBuf>) {
    if path.is_file() {
        files.push(path.to_path_buf());
    } else if let Ok(entries) = std::fs::read_dir(path) {
        for entry in entries.flatten() {
            collect(&entry.path(), files);
        }
    }
}

/// The SDK manifest without the tables that only make sense inside this workspace:
/// `[lints] workspace = true` (no workspace to inherit from in a plugin project) and the
/// dev-dependencies of its binding-check test (not shipped).
fn standalone_manifest(manifest: &str) -> String {
    let mut out = String::new();
    let mut skip = false;
    for line in manifest.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            skip = t == "[lints]" || t == "[dev-dependencies]";
        }
        if !skip {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}
