//! The SDK is self-contained: its `wit/` is the repository's `wit/`, and the committed
//! bindings in `src/bindings/` are what wit-bindgen generates from it, so plugin builds need
//! no proc-macro or WIT parser.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use wit_bindgen_core::wit_parser::Resolve;
use wit_bindgen_core::{Files, WorldGenerator};

fn sdk_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every file under `dir` (symlinks followed) by relative path, with its contents.
fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).unwrap().to_path_buf();
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

#[test]
fn the_sdk_wit_is_the_repository_wit() {
    let repo_wit = sdk_dir().join("../wit");
    if !repo_wit.exists() {
        eprintln!("skipped: no repository wit/ beside the SDK (a packaged copy)");
        return;
    }
    let ours = tree(&sdk_dir().join("wit"));
    let theirs = tree(&repo_wit);
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>(),
        "sdk/wit and wit/ hold different files: copy wit/ into sdk/wit"
    );
    for (path, contents) in &theirs {
        assert!(
            ours[path] == *contents,
            "sdk/wit/{} differs from wit/{}: copy wit/ into sdk/wit",
            path.display(),
            path.display()
        );
    }
}

/// The wit-bindgen CLI's generator (`wit-bindgen rust`) with the options in the SDK README;
/// `WASMCOL_BLESS=1` rewrites the committed file first.
#[test]
fn the_committed_bindings_match_the_wit() {
    let mut resolve = Resolve::default();
    let (pkg, _) = resolve.push_path(sdk_dir().join("wit/v0.2.0")).unwrap();
    let world = resolve
        .select_world(&[pkg], Some("wasmcol:plugin/processor@0.2.0"))
        .unwrap();
    let opts = wit_bindgen_rust::Opts {
        format: true,
        generate_all: true,
        pub_export_macro: true,
        export_macro_name: Some("__wasmcol_export_world".into()),
        ..Default::default()
    };
    let mut files = Files::default();
    opts.build()
        .generate(&mut resolve, world, &mut files)
        .unwrap();
    let mut generated = 0;
    for (name, contents) in files.iter() {
        let path = sdk_dir().join("src/bindings").join(name);
        if std::env::var_os("WASMCOL_BLESS").is_some() {
            std::fs::write(&path, contents).unwrap();
        }
        let committed = std::fs::read(&path).unwrap();
        if committed != contents {
            let fresh = std::env::temp_dir().join(format!("wasmcol-sdk-fresh-{name}"));
            std::fs::write(&fresh, contents).unwrap();
            eprintln!("freshly generated: {}", fresh.display());
        }
        assert!(
            committed == contents,
            "sdk/src/bindings/{name} is stale: regenerate it with \
             `WASMCOL_BLESS=1 cargo test -p wasmcol-sdk --test generated`"
        );
        generated += 1;
    }
    assert_eq!(generated, 1, "one file per world");
}
