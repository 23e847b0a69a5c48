//! Compiled modules cached on disk, keyed by the wasm's hash and the engine's
//! configuration, so a second start of the same plugin does not compile.
//!
//! A cached file is native code that wasmtime runs without checking it, so the cache
//! is untrusted input, and anything below that is not as expected is refused with a
//! warning (naming the path and why) and the module compiled instead:
//! - the folder (created 0700) must be owned by this user and not writable by group
//!   or others; every folder above it must be owned by this user or root and not
//!   writable by group or others unless sticky (like `/tmp`), so that nobody else can
//!   swap the folder or its entries;
//! - an entry is opened without following links and must be a regular file owned
//!   by this user, not writable by group or others;
//! - an entry is wasmtime's artefact followed by a trailer: the cache key it was
//!   written for, a keyed BLAKE3 MAC of the magic, that key and the artefact under a
//!   random per-folder key kept in `key` (0600, same checks, no group/other access
//!   at all), and a magic. Every byte is read and checked before wasmtime maps the
//!   same open file, so an artefact copied under another module's name, altered, or
//!   brought from another cache is recompiled, never run. (A trailer, not a header:
//!   wasmtime maps the file itself, which must start with its ELF image, so the code
//!   stays file-backed memory rather than a copy; reading and checking the 5.9 MB
//!   artefact of the 2.6 MB Go module adds about 2 ms to its load);
//! - entries and the key are written to a temporary file created exclusively
//!   (`O_EXCL`, `O_NOFOLLOW`, 0600), then renamed into place.
//!
//! On other platforms than Unix the cache is not used.

use std::hash::Hasher;

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
/// hash, this crate's version, and the wasm. 64 hex digits.
pub fn key(engine: &Engine, wasm: &[u8]) -> String {
    let mut h = Blake3Hasher(blake3::Hasher::new());
    std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut h);
    h.0.update(env!("CARGO_PKG_VERSION").as_bytes());
    h.0.update(wasm);
    h.0.finalize().to_hex().to_string()
}

/// Compiles `wasm` (binary or text), or loads it from `dir` when it was compiled
/// before and the entry passes the checks of this module's documentation.
/// Counted in the metrics: cache hits, misses, and the time a miss took.
pub fn load(
    engine: &Engine,
    wasm: &[u8],
    dir: Option<&std::path::Path>,
) -> wasmtime::Result<(Module, Source)> {
    let start = std::time::Instant::now();
    let loaded = load_uncounted(engine, wasm, dir)?;
    let m = pulp_ext::metrics::metrics();
    match loaded.1 {
        Source::Cached => m.cache_hits.inc(),
        Source::Compiled => {
            m.cache_misses.inc();
            m.compile_seconds.observe(start.elapsed().as_secs_f64());
            0
        }
    };
    Ok(loaded)
}

fn load_uncounted(
    engine: &Engine,
    wasm: &[u8],
    dir: Option<&std::path::Path>,
) -> wasmtime::Result<(Module, Source)> {
    #[cfg(unix)]
    if let Some(dir) = dir {
        return unix::load(engine, wasm, dir);
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok((Module::new(engine, wasm)?, Source::Compiled))
}

#[cfg(unix)]
mod unix {
    use std::fs::{File, Metadata, OpenOptions};
    use std::io::{self, ErrorKind, Read, Write};
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    use std::path::{Path, PathBuf};

    use pulp_ext::wasmtime::{self, Engine, Module};

    use super::{key, Source};

    /// The last bytes of an entry; the last byte is the format's version.
    const MAGIC: &[u8; 8] = b"pulpcw\0\x01";
    /// After the artefact: the 64 hex digits of the cache key, the 32-byte MAC, the magic.
    const TRAILER: usize = 64 + 32 + 8;
    /// The MAC key's file in the cache folder.
    const KEY_FILE: &str = "key";

    pub(super) fn load(
        engine: &Engine,
        wasm: &[u8],
        dir: &Path,
    ) -> wasmtime::Result<(Module, Source)> {
        let cache = match Cache::open(dir) {
            Ok(c) => c,
            Err((path, why)) => {
                tracing::warn!(path = %path.display(), "not using the module cache, compiling: {why}");
                return Ok((Module::new(engine, wasm)?, Source::Compiled));
            }
        };
        let name = key(engine, wasm);
        let path = cache.dir.join(format!("{name}.cwasm"));
        match cache.module(engine, &path, &name) {
            Ok(Some(m)) => return Ok((m, Source::Cached)),
            Ok(None) => {}
            Err(why) => {
                tracing::warn!(path = %path.display(), "not running a module cache entry, compiling: {why}")
            }
        }
        let module = Module::new(engine, wasm)?;
        if let Err(e) = cache.store(&path, &name, &module) {
            tracing::warn!(path = %path.display(), "could not write the module cache: {e:#}");
        }
        Ok((module, Source::Compiled))
    }

    /// A cache folder that passed the checks, and its MAC key.
    struct Cache {
        /// Canonical: no link in it is followed again after the checks.
        dir: PathBuf,
        key: [u8; 32],
        uid: u32,
    }

    /// A path and why it was refused.
    type Refusal = (PathBuf, String);

    impl Cache {
        fn open(dir: &Path) -> Result<Cache, Refusal> {
            let refuse = |path: &Path, why: String| (path.to_path_buf(), why);
            pulp_ext::create_private_dir(dir)
                .map_err(|e| refuse(dir, format!("cannot create it: {e}")))?;
            let dir = dir
                .canonicalize()
                .map_err(|e| refuse(dir, format!("cannot resolve it: {e}")))?;
            let uid = rustix::process::geteuid().as_raw();
            let meta = std::fs::symlink_metadata(&dir)
                .map_err(|e| refuse(&dir, format!("cannot read its metadata: {e}")))?;
            if !meta.is_dir() {
                return Err(refuse(&dir, "it is not a folder".into()));
            }
            private(&meta, uid, 0o022).map_err(|why| refuse(&dir, why))?;
            for above in dir.ancestors().skip(1) {
                let m = std::fs::symlink_metadata(above)
                    .map_err(|e| refuse(above, format!("cannot read its metadata: {e}")))?;
                if m.uid() != uid && m.uid() != 0 {
                    return Err(refuse(
                        above,
                        format!(
                            "a folder above the cache is owned by uid {}, neither this user \
                             (uid {uid}) nor root",
                            m.uid()
                        ),
                    ));
                }
                if m.mode() & 0o022 != 0 && m.mode() & 0o1000 == 0 {
                    return Err(refuse(
                        above,
                        format!(
                            "a folder above the cache is writable by group or others and not \
                             sticky (mode {:o})",
                            m.mode() & 0o7777
                        ),
                    ));
                }
            }
            let key = user_key(&dir, uid)?;
            Ok(Cache { dir, key, uid })
        }

        /// The module at `path` if there is one and it is the entry of `name`,
        /// written with this folder's key; `Err` says why an entry is not used.
        fn module(
            &self,
            engine: &Engine,
            path: &Path,
            name: &str,
        ) -> Result<Option<Module>, String> {
            let mut f = match open_nofollow(path) {
                Ok(f) => f,
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(open_error(e)),
            };
            let meta = f
                .metadata()
                .map_err(|e| format!("cannot read its metadata: {e}"))?;
            if !meta.is_file() {
                return Err("it is not a regular file".into());
            }
            private(&meta, self.uid, 0o022)?;
            let mut bytes = Vec::with_capacity(meta.len() as usize);
            f.read_to_end(&mut bytes)
                .map_err(|e| format!("cannot read it: {e}"))?;
            if bytes.len() < TRAILER || !bytes.ends_with(MAGIC) {
                return Err(
                    "it has no pulp cache trailer (an older pulp's entry, or not an entry)".into(),
                );
            }
            let (body, trailer) = bytes.split_at(bytes.len() - TRAILER);
            let (written_for, trailer) = trailer.split_at(64);
            if written_for != name.as_bytes() {
                return Err(format!(
                    "it was written for another module (key {})",
                    String::from_utf8_lossy(written_for)
                ));
            }
            let want: [u8; 32] = trailer[..32].try_into().expect("32 bytes");
            // `blake3::Hash` compares in constant time.
            if mac(&self.key, name, body) != blake3::Hash::from_bytes(want) {
                return Err(
                    "its MAC does not match: changed after it was written, or written with \
                     another cache key"
                        .into(),
                );
            }
            drop(bytes);
            // SAFETY: every byte of this open file was just read and its MAC, under a key
            // only this user can read, proves that this host's `store` wrote it for this
            // very name (the hash of the wasm and of the engine's configuration). The
            // file is a regular file owned by this user that nobody else can write, in a
            // folder nobody else can change, and wasmtime maps this same open file (no
            // path is looked up again), so only this user or root could change it in
            // between, and they can change this process anyway. wasmtime ignores the
            // trailer after its image and checks the engine compatibility again.
            match unsafe { Module::deserialize_open_file(engine, f) } {
                Ok(m) => Ok(Some(m)),
                Err(e) => Err(format!("wasmtime cannot load it: {e:#}")),
            }
        }

        fn store(&self, path: &Path, name: &str, module: &Module) -> wasmtime::Result<()> {
            assert_eq!(name.len(), 64, "a cache key is 64 hex digits");
            let body = module.serialize()?;
            let mac = mac(&self.key, name, &body);
            write_new(
                &self.dir,
                path,
                false,
                &[&body, name.as_bytes(), mac.as_bytes(), MAGIC],
            )?;
            Ok(())
        }
    }

    fn mac(key: &[u8; 32], name: &str, body: &[u8]) -> blake3::Hash {
        let mut h = blake3::Hasher::new_keyed(key);
        h.update(MAGIC).update(name.as_bytes()).update(body);
        h.finalize()
    }

    /// `meta` is owned by `uid` and grants none of the `deny` mode bits.
    fn private(meta: &Metadata, uid: u32, deny: u32) -> Result<(), String> {
        if meta.uid() != uid {
            return Err(format!(
                "it is owned by uid {}, not by this user (uid {uid})",
                meta.uid()
            ));
        }
        let mode = meta.mode() & 0o7777;
        if mode & deny != 0 {
            let what = if deny & 0o044 != 0 {
                "accessible"
            } else {
                "writable"
            };
            return Err(format!("it is {what} by group or others (mode {mode:o})"));
        }
        Ok(())
    }

    /// The folder's MAC key, made at the first use.
    fn user_key(dir: &Path, uid: u32) -> Result<[u8; 32], Refusal> {
        let path = dir.join(KEY_FILE);
        let refuse = |why: String| (path.clone(), why);
        // A second round only when another process made the key at the same time.
        for _ in 0..2 {
            let mut f = match open_nofollow(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == ErrorKind::NotFound => match new_key(dir, &path, false) {
                    Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                    r => return r.map_err(|e| refuse(format!("cannot create it: {e}"))),
                },
                Err(e) => return Err(refuse(open_error(e))),
            };
            let meta = f
                .metadata()
                .map_err(|e| refuse(format!("cannot read its metadata: {e}")))?;
            if !meta.is_file() {
                return Err(refuse("it is not a regular file".into()));
            }
            private(&meta, uid, 0o077).map_err(refuse)?;
            let mut key = [0; 32];
            if meta.len() == 32 {
                f.read_exact(&mut key)
                    .map_err(|e| refuse(format!("cannot read it: {e}")))?;
                return Ok(key);
            }
            tracing::warn!(path = %path.display(), "replacing a malformed module cache key (entries are recompiled)");
            return new_key(dir, &path, true)
                .map_err(|e| refuse(format!("cannot replace it: {e}")));
        }
        Err(refuse("it keeps changing".into()))
    }

    /// A new random key at `path`: `AlreadyExists` when someone made one first
    /// (unless `replace`).
    fn new_key(dir: &Path, path: &Path, replace: bool) -> io::Result<[u8; 32]> {
        let mut key = [0; 32];
        getrandom::fill(&mut key).map_err(|e| io::Error::other(e.to_string()))?;
        write_new(dir, path, !replace, &[&key])?;
        Ok(key)
    }

    /// Writes `parts` to a new temporary file in `dir` and moves it to `path`:
    /// atomically replacing what is there, or with `exclusive` only if nothing is.
    fn write_new(dir: &Path, path: &Path, exclusive: bool, parts: &[&[u8]]) -> io::Result<()> {
        let (tmp, mut f) = temp_file(dir)?;
        let written = (|| {
            for p in parts {
                f.write_all(p)?;
            }
            f.sync_all()?;
            if !exclusive {
                return std::fs::rename(&tmp, path);
            }
            // A hard link does not replace an existing file; where the file system
            // has none, a rename (a rare race then costs one recompilation).
            match std::fs::hard_link(&tmp, path) {
                Err(e) if e.kind() != ErrorKind::AlreadyExists => std::fs::rename(&tmp, path),
                r => r,
            }
        })();
        let _ = std::fs::remove_file(&tmp);
        written
    }

    /// A new file `.tmp-<pid>-ThreadId<n>[-<i>]` in `dir`: created exclusively (a file
    /// or link already there is never opened), mode 0600.
    fn temp_file(dir: &Path) -> io::Result<(PathBuf, File)> {
        let base = format!(
            ".tmp-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        )
        .replace(['(', ')'], "");
        let mut o = OpenOptions::new();
        o.write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(nofollow());
        let mut i = 0;
        loop {
            let path = match i {
                0 => dir.join(&base),
                _ => dir.join(format!("{base}-{i}")),
            };
            match o.open(&path) {
                Err(e) if e.kind() == ErrorKind::AlreadyExists && i < 16 => i += 1,
                r => return r.map(|f| (path, f)),
            }
        }
    }

    fn open_nofollow(path: &Path) -> io::Result<File> {
        OpenOptions::new()
            .read(true)
            .custom_flags(nofollow())
            .open(path)
    }

    fn nofollow() -> i32 {
        rustix::fs::OFlags::NOFOLLOW.bits() as i32
    }

    fn open_error(e: io::Error) -> String {
        if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
            "it is a symbolic link".into()
        } else {
            format!("cannot open it: {e}")
        }
    }
}
