//! The compile cache: compiled components on disk, named by the component's SHA-256 and the
//! engine's compatibility hash (settings and wasmtime version), so a restart deserializes
//! instead of compiling. Everything here blocks; the runtime calls it on the blocking pool.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::error::LoadError;

/// Feeds `Hash` output into SHA-256 so engine settings give a stable cache key.
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The SHA-256 of `bytes`, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Where compiled components are kept; `None` compiles every time.
#[derive(Clone, Debug)]
pub(crate) struct CompileCache {
    dir: Option<PathBuf>,
}

impl CompileCache {
    pub(crate) fn new(dir: Option<PathBuf>) -> Self {
        CompileCache { dir }
    }

    /// The cache file for `sha` under `engine`'s settings and wasmtime version.
    fn path(&self, engine: &Engine, sha: &str) -> Option<PathBuf> {
        let dir = self.dir.as_ref()?;
        let mut h = ShaHasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut h);
        let settings = hex(&h.0.finalize());
        Some(dir.join(format!("{sha}-{}.cwasm", &settings[..16])))
    }

    /// The compiled component for `bytes` (whose SHA-256 is `sha`): from the cache when a
    /// usable artifact is there, else compiled and written to the cache. Blocking.
    pub(crate) fn compile(
        &self,
        engine: &Engine,
        bytes: &[u8],
        sha: &str,
    ) -> Result<Component, LoadError> {
        let path = self.path(engine, sha);
        if let Some(p) = &path
            && p.exists()
        {
            // SAFETY: the file was written by `Component::serialize` of this host (the name
            // carries the content hash and the engine's compatibility hash, and the cache
            // directory belongs to the collector); wasmtime also checks the header and the
            // engine settings before using it.
            #[allow(unsafe_code)]
            let loaded = unsafe { Component::deserialize_file(engine, p) };
            match loaded {
                Ok(c) => return Ok(c),
                Err(e) => {
                    tracing::warn!(path = %p.display(), error = %e, "ignoring unusable cached plugin artifact")
                }
            }
        }
        let component =
            Component::new(engine, bytes).map_err(|e| LoadError::Invalid(format!("{e:#}")))?;
        if let Some(p) = &path
            && let Err(e) = write_atomically(p, &component)
        {
            tracing::warn!(path = %p.display(), error = %e, "cannot cache compiled plugin");
        }
        Ok(component)
    }
}

fn write_atomically(path: &Path, component: &Component) -> Result<(), String> {
    let bytes = component.serialize().map_err(|e| e.to_string())?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(|e| e.to_string())?;
    std::fs::rename(&tmp, path).map_err(|e| e.to_string())
}
