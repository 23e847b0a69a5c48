//! `storage.fs` (gated): files under `<storage-root>/<name>/files/`, created on first use.
//!
//! - `fs_read(path_ptr, path_len, data_ptr_out, data_len_out) -> status`
//! - `fs_write(path_ptr, path_len, data_ptr, data_len) -> status`: parents created,
//!   atomic replace (temporary file, fsync, rename), mode 0600.
//! - `fs_delete(path_ptr, path_len) -> status`: a file, or an empty folder.
//!
//! Paths are relative and `/`-separated. Empty, absolute, `..`, `.`, empty
//! components, NUL, backslash, the root itself, and anything that resolves through a
//! symlink outside the root are 4; a missing file is 6; over the size limit or the
//! plugin's quota is 11. Containment is `cap-std`'s: every open resolves beneath the
//! root folder's handle, so a symlink made by anyone cannot lead out.
//!
//! Settings, `[capability."storage.fs"]`: `max_file_bytes` (default 8 MiB) and
//! `max_total_bytes` (default 256 MiB), the plugin's quota: what its whole folder may
//! hold, where a file costs its size plus 4096 bytes and a folder 4096 bytes (so
//! empty files and folders are not free). The folder is measured
//! when the plugin's first instance attaches; every instance of the plugin in the
//! host then charges one shared count, so a pool cannot hold its quota twice.

#![warn(missing_docs)]

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use cap_std::fs::{Dir, OpenOptions};
use pulp_ext::wasmtime::Caller;
use pulp_ext::{Bytes, Capability, Import, OutBytes, Plugin, State, Status, Str};
use serde::Deserialize;

/// The capability's name in manifests.
const NAME: &str = "storage.fs";

static FILES: pulp_ext::Slot<Files> = pulp_ext::Slot::new(NAME);

/// The `storage.fs` capability, for a registry built by hand.
pub struct Fs;

pulp_ext::register!(Fs);

/// What a file costs beside its bytes, and what a folder costs, against
/// `max_total_bytes`: about what an entry takes on disk (a block).
const ENTRY_BYTES: u64 = 4096;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Toml {
    max_file_bytes: Option<u64>,
    max_total_bytes: Option<u64>,
}

/// The plugin's limits from its `[capability."storage.fs"]` settings.
pub struct Limits {
    max_file: usize,
    max_total: u64,
}

impl pulp_ext::Settings for Limits {
    fn parse(table: Option<&pulp_ext::toml::Table>, _: &Plugin) -> Result<Limits, Vec<String>> {
        let s: Toml = pulp_ext::from_table(table).map_err(|e| vec![e])?;
        let mut problems = Vec::new();
        let max_file = s.max_file_bytes.unwrap_or(8 << 20);
        if !(1..=1 << 30).contains(&max_file) {
            problems.push(format!(
                "max_file_bytes = {max_file} is outside 1..=1073741824"
            ));
        }
        let max_total = s.max_total_bytes.unwrap_or(256 << 20);
        if !(1..=1 << 40).contains(&max_total) {
            problems.push(format!(
                "max_total_bytes = {max_total} is outside 1..=1099511627776"
            ));
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Limits {
            max_file: max_file as usize,
            max_total,
        })
    }
}

/// The bytes a plugin's folder holds (files and folders, as `max_total_bytes`
/// counts them), shared by every instance of the plugin; writes and deletes change
/// it under its lock.
struct Usage(Mutex<u64>);

impl Usage {
    fn lock(&self) -> MutexGuard<'_, u64> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A host's [`Usage`] of each plugin folder, by path, while an instance holds it.
#[derive(Default)]
struct Usages(Mutex<HashMap<PathBuf, Weak<Usage>>>);

impl Usages {
    /// The usage of the folder at `path` (open as `root`), measured if no live
    /// instance holds it.
    fn of(&self, path: PathBuf, root: &Dir) -> std::io::Result<Arc<Usage>> {
        let mut all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(u) = all.get(&path).and_then(Weak::upgrade) {
            return Ok(u);
        }
        let u = Arc::new(Usage(Mutex::new(measure(root)?)));
        all.retain(|_, w| w.strong_count() > 0);
        all.insert(path, Arc::downgrade(&u));
        Ok(u)
    }
}

/// What the folder `root` holds, as `max_total_bytes` counts it. Symlinks are not
/// followed (a link costs its own length plus an entry).
fn measure(root: &Dir) -> std::io::Result<u64> {
    let mut total = 0u64;
    let mut folders = vec![PathBuf::new()];
    while let Some(folder) = folders.pop() {
        let entries = if folder.as_os_str().is_empty() {
            root.entries()
        } else {
            root.read_dir(&folder)
        };
        for entry in entries? {
            let entry = entry?;
            let path = folder.join(entry.file_name());
            match root.symlink_metadata(&path) {
                Ok(m) if m.is_dir() => {
                    total = total.saturating_add(ENTRY_BYTES);
                    folders.push(path);
                }
                Ok(m) => total = total.saturating_add(m.len().saturating_add(ENTRY_BYTES)),
                // Removed meanwhile.
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(total)
}

/// One instance's root folder, opened as a capability.
struct Files {
    root: Dir,
    max: usize,
    quota: u64,
    usage: Arc<Usage>,
}

/// Checks a guest path without touching the disk: relative, `/`-separated, no
/// `.`/`..`/empty components, no NUL or backslash, not the root itself.
fn check(path: &str) -> Result<&str, pulp_ext::Error> {
    let invalid = |why: &str| Status::Invalid.err(format!("path {path:?} {why}"));
    if path.is_empty() {
        return Err(invalid("is empty"));
    }
    if path.len() > 4096 {
        return Err(invalid("is longer than 4096 bytes"));
    }
    if path.contains('\0') {
        return Err(invalid("contains NUL"));
    }
    if path.contains('\\') {
        return Err(invalid("contains a backslash; use /"));
    }
    if path.starts_with('/') {
        return Err(invalid(
            "is absolute; paths are relative to the plugin's folder",
        ));
    }
    for part in path.split('/') {
        match part {
            "" => return Err(invalid("has an empty component")),
            "." | ".." => return Err(invalid("has a . or .. component")),
            p if p.len() > 255 => return Err(invalid("has a component longer than 255 bytes")),
            _ => {}
        }
    }
    Ok(path)
}

/// Maps an I/O error of `op` on `path` to a status.
fn io_error(op: &str, path: &str, e: std::io::Error) -> pulp_ext::Error {
    let status = match e.kind() {
        ErrorKind::NotFound => Status::NotFound,
        // cap-std reports a path that resolves outside the root as PermissionDenied.
        ErrorKind::PermissionDenied | ErrorKind::IsADirectory | ErrorKind::NotADirectory => {
            Status::Invalid
        }
        _ => Status::Failed,
    };
    status.err(format!("{op} {path:?}: {e}"))
}

impl Files {
    fn read(&self, path: &str) -> Result<Vec<u8>, pulp_ext::Error> {
        let mut f = self
            .root
            .open(path)
            .map_err(|e| io_error("read", path, e))?;
        let meta = f.metadata().map_err(|e| io_error("read", path, e))?;
        if meta.is_dir() {
            return Err(Status::Invalid.err(format!("read {path:?}: is a folder")));
        }
        if meta.len() > self.max as u64 {
            return Err(self.too_large("read", path, meta.len()));
        }
        let mut data = Vec::with_capacity(meta.len() as usize);
        // The file may grow while it is read: never take more than the limit.
        (&mut f)
            .take(self.max as u64 + 1)
            .read_to_end(&mut data)
            .map_err(|e| io_error("read", path, e))?;
        if data.len() > self.max {
            return Err(self.too_large("read", path, data.len() as u64));
        }
        Ok(data)
    }

    fn too_large(&self, op: &str, path: &str, n: u64) -> pulp_ext::Error {
        Status::TooLarge.err(format!(
            "{op} {path:?}: {n} bytes, over the {}-byte limit",
            self.max
        ))
    }

    /// What the entry at `path` costs against the quota now (0 when there is none);
    /// 4 when it is a folder, which a file cannot replace.
    fn cost(&self, op: &str, path: &str) -> Result<u64, pulp_ext::Error> {
        match self.root.symlink_metadata(path) {
            Ok(m) if m.is_dir() => Err(Status::Invalid.err(format!("{op} {path:?}: is a folder"))),
            Ok(m) => Ok(m.len().saturating_add(ENTRY_BYTES)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(0),
            Err(e) => Err(io_error(op, path, e)),
        }
    }

    /// How many of the folders of `parent` (a `/`-separated path) do not exist yet.
    fn missing_folders(&self, parent: &str) -> u64 {
        let mut end = 0;
        for (i, part) in parent.split('/').enumerate() {
            end += part.len() + usize::from(i > 0);
            match self.root.symlink_metadata(&parent[..end]) {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    return parent[end..].split('/').filter(|p| !p.is_empty()).count() as u64 + 1;
                }
                // Not resolvable (a link out, a file in the way): creating fails later.
                Err(_) => return 0,
            }
        }
        0
    }

    /// 11 when replacing `old` bytes with `new` would take `used` past the quota
    /// (giving bytes back is always allowed).
    fn fits(&self, path: &str, used: u64, old: u64, new: u64) -> Result<(), pulp_ext::Error> {
        let total = used.saturating_sub(old).saturating_add(new);
        if new > old && total > self.quota {
            return Err(Status::TooLarge.err(format!(
                "write {path:?}: the plugin's files would hold {total} bytes, over its \
                 {}-byte max_total_bytes quota (a file counts its size plus {ENTRY_BYTES} \
                 bytes, a folder {ENTRY_BYTES}); delete something first",
                self.quota
            )));
        }
        Ok(())
    }

    fn write(&self, path: &str, data: &[u8]) -> Result<(), pulp_ext::Error> {
        if data.len() > self.max {
            return Err(self.too_large("write", path, data.len() as u64));
        }
        let (parent, name) = match path.rsplit_once('/') {
            Some((p, n)) => (Some(p), n),
            None => (None, path),
        };
        let cost = data.len() as u64 + ENTRY_BYTES;
        {
            // Check the quota before writing anything; make the missing folders
            // and charge them under the lock, so that instances count each once.
            let mut used = self.usage.lock();
            let old = self.cost("write", path)?;
            let folders = parent.map_or(0, |p| self.missing_folders(p));
            self.fits(path, *used, old, folders * ENTRY_BYTES + cost)?;
            if let Some(p) = parent {
                let made = self.root.create_dir_all(p);
                *used += (folders - self.missing_folders(p).min(folders)) * ENTRY_BYTES;
                if let Err(e) = made {
                    // A parent that is a symlink leading out fails here as "exists";
                    // resolving it names the real problem, the escape.
                    let e = self.root.metadata(p).err().unwrap_or(e);
                    return Err(io_error("write", path, e));
                }
            }
        }
        let mut suffix = [0u8; 8];
        getrandom::fill(&mut suffix)
            .map_err(|e| Status::Failed.err(format!("write {path:?}: {e}")))?;
        let tmp_name = format!(".{name}.tmp-{:016x}", u64::from_le_bytes(suffix));
        let tmp = match parent {
            Some(p) => format!("{p}/{tmp_name}"),
            None => tmp_name,
        };
        let mut opts = OpenOptions::new();
        opts.write(true).create_new(true);
        cap_fs_ext::OpenOptionsExt::mode(&mut opts, 0o600);
        let result = (|| {
            let mut f = self.root.open_with(&tmp, &opts)?;
            f.write_all(data)?;
            f.sync_all()
        })()
        .map_err(|e| io_error("write", path, e))
        .and_then(|()| self.replace(&tmp, path, cost));
        if result.is_err() {
            let _ = self.root.remove_file(&tmp);
        }
        result
    }

    /// Renames `tmp` over `path`, whose new entry costs `cost`: the difference is
    /// checked and charged under the lock, as another instance may have changed
    /// the file or the count since the first check.
    fn replace(&self, tmp: &str, path: &str, cost: u64) -> Result<(), pulp_ext::Error> {
        let mut used = self.usage.lock();
        let old = self.cost("write", path)?;
        self.fits(path, *used, old, cost)?;
        self.root
            .rename(tmp, &self.root, path)
            .map_err(|e| io_error("write", path, e))?;
        *used = used.saturating_sub(old) + cost;
        Ok(())
    }

    fn delete(&self, path: &str) -> Result<(), pulp_ext::Error> {
        let mut used = self.usage.lock();
        let meta = self
            .root
            .symlink_metadata(path)
            .map_err(|e| io_error("delete", path, e))?;
        let (r, cost) = if meta.is_dir() {
            (self.root.remove_dir(path), ENTRY_BYTES)
        } else {
            // A symlink is removed itself, never what it points to.
            (self.root.remove_file(path), meta.len() + ENTRY_BYTES)
        };
        r.map_err(|e| io_error("delete", path, e))?;
        *used = used.saturating_sub(cost);
        Ok(())
    }
}

fn files<'a>(c: &'a mut Caller<'_, State>) -> Result<&'a mut Files, pulp_ext::Error> {
    c.data_mut().slot(&FILES)
}

fn path_arg(c: &Caller<'_, State>, path: &Str) -> Result<String, pulp_ext::Error> {
    Ok(check(path.read(c)?)?.to_string())
}

impl Capability for Fs {
    type Settings = Limits;

    fn name(&self) -> &'static str {
        NAME
    }

    fn imports(&self) -> Vec<Import> {
        vec![
            Import::new("fs_read", fs_read),
            Import::new("fs_write", fs_write),
            Import::new("fs_delete", fs_delete),
        ]
    }

    fn attach(&self, plugin: &Plugin, limits: &Limits, state: &mut State) -> Result<(), String> {
        let dir = plugin.create_storage_dir("files").map_err(|e| {
            format!(
                "cannot create {}/files: {e}",
                plugin.storage_dir().display()
            )
        })?;
        let root = Dir::open_ambient_dir(&dir, cap_std::ambient_authority())
            .map_err(|e| format!("cannot open {}: {e}", dir.display()))?;
        let usages = plugin
            .shared()
            .service(|| Ok::<_, std::convert::Infallible>(Usages::default()))
            .unwrap_or_else(|e| match e {});
        let usage = usages
            .of(dir.clone(), &root)
            .map_err(|e| format!("cannot measure {}: {e}", dir.display()))?;
        state.put(
            &FILES,
            Files {
                root,
                max: limits.max_file,
                quota: limits.max_total,
                usage,
            },
        );
        Ok(())
    }
}

fn fs_read(c: &mut Caller<'_, State>, path: Str, out: OutBytes) -> Result<(), pulp_ext::Error> {
    let path = path_arg(c, &path)?;
    let data = files(c)?.read(&path)?;
    out.write(c, &data)
}

fn fs_write(c: &mut Caller<'_, State>, path: Str, data: Bytes) -> Result<(), pulp_ext::Error> {
    let path = path_arg(c, &path)?;
    let data = data.read(c)?.to_vec();
    files(c)?.write(&path, &data)
}

fn fs_delete(c: &mut Caller<'_, State>, path: Str) -> Result<(), pulp_ext::Error> {
    let path = path_arg(c, &path)?;
    files(c)?.delete(&path)
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn lexically_bad_paths_are_invalid() {
        for bad in [
            "",
            "/etc/passwd",
            "..",
            "../x",
            "a/../b",
            "a/..",
            ".",
            "./a",
            "a//b",
            "a/",
            "a\\b",
            "a\0b",
            "/",
        ] {
            let e = check(bad).unwrap_err();
            assert_eq!(e.status(), Some(pulp_ext::Status::Invalid), "{bad:?}");
        }
        for good in ["a", "a/b/c.txt", "..a", "a..", ".hidden", "with space"] {
            check(good).unwrap();
        }
    }
}
