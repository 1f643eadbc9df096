//! What the test files of this crate share.

use std::sync::Arc;

use wasmcol_wasm::{Runtime, RuntimeOptions};

/// One plugin runtime for this test process, its compile cache in a temp dir.
pub fn runtime() -> Arc<Runtime> {
    static RUNTIME: std::sync::OnceLock<(tempfile::TempDir, Arc<Runtime>)> =
        std::sync::OnceLock::new();
    let (_, rt) = RUNTIME.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let rt = Runtime::new(RuntimeOptions {
            cache_dir: Some(dir.path().to_path_buf()),
        })
        .unwrap();
        (dir, Arc::new(rt))
    });
    rt.clone()
}
