//! Compiled modules cached on disk, keyed by the wasm's hash and the engine's
//! configuration, so a second start of the same plugin does not compile.
//!
//! A cached file is native code that wasmtime loads without checking it, so the
//! folder is created private (0700) and entries are written atomically.

use std::hash::Hasher;
use std::io::Write;
use std::path::{Path, PathBuf};

use pulp_ext::wasmtime::{self, Engine, Module};

/// Whether a module came from the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Compiled now (and stored if there is a cache).
    Compiled,
    /// Loaded from the on-disk cache.
    Cached,
}

/// Feeds `std::hash::Hash` values into BLAKE3.
struct Blake3Hasher(blake3::Hasher);

impl Hasher for Blake3Hasher {
    fn finish(&self) -> u64 {
        0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// The cache key of `wasm` for `engine`: BLAKE3 (fast enough that hashing a 2.6 MB
/// module costs less than loading its compiled form) of the engine's compatibility
/// hash, this crate's version, and the wasm.
pub fn key(engine: &Engine, wasm: &[u8]) -> String {
    let mut h = Blake3Hasher(blake3::Hasher::new());
    std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut h);
    h.0.update(env!("CARGO_PKG_VERSION").as_bytes());
    h.0.update(wasm);
    h.0.finalize().to_hex().to_string()
}

/// Compiles `wasm` (binary or text), or loads it from `dir` when it was compiled before.
pub fn load(
    engine: &Engine,
    wasm: &[u8],
    dir: Option<&Path>,
) -> wasmtime::Result<(Module, Source)> {
    let Some(dir) = dir else {
        return Ok((Module::new(engine, wasm)?, Source::Compiled));
    };
    let path = dir.join(format!("{}.cwasm", key(engine, wasm)));
    if path.exists() {
        // SAFETY: the file was written by `store` below for this engine configuration
        // (its name is the hash of both) into a folder only this user can write;
        // wasmtime checks the engine compatibility header again while loading.
        match unsafe { Module::deserialize_file(engine, &path) } {
            Ok(m) => return Ok((m, Source::Cached)),
            Err(e) => {
                tracing::warn!(path = %path.display(), "ignoring unreadable cache entry: {e:#}")
            }
        }
    }
    let module = Module::new(engine, wasm)?;
    if let Err(e) = store(dir, &path, &module) {
        tracing::warn!(path = %path.display(), "could not write the module cache: {e:#}");
    }
    Ok((module, Source::Compiled))
}

fn store(dir: &Path, path: &PathBuf, module: &Module) -> wasmtime::Result<()> {
    pulp_ext::create_private_dir(dir)?;
    let bytes = module.serialize()?;
    let mut tmp = tempfile_in(dir)?;
    tmp.1.write_all(&bytes)?;
    tmp.1.sync_all()?;
    std::fs::rename(&tmp.0, path)?;
    Ok(())
}

fn tempfile_in(dir: &Path) -> std::io::Result<(PathBuf, std::fs::File)> {
    let name = format!(
        ".tmp-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    );
    let path = dir.join(name.replace(['(', ')'], ""));
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    Ok((path.clone(), o.open(&path)?))
}
