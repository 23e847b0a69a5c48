//! `storage.fs` (gated): files under `<storage-root>/<name>/files/`, created on first use.
//!
//! - `fs_read(path_ptr, path_len, data_ptr_out, data_len_out) -> status`
//! - `fs_write(path_ptr, path_len, data_ptr, data_len) -> status`: parents created,
//!   atomic replace (temporary file, fsync, rename), mode 0600.
//! - `fs_delete(path_ptr, path_len) -> status`: a file, or an empty folder.
//!
//! Paths are relative and `/`-separated. Empty, absolute, `..`, `.`, empty
//! components, NUL, backslash, the root itself, and anything that resolves through a
//! symlink outside the root are 4; a missing file is 6; over the size limit is 11.
//! Containment is `cap-std`'s: every open resolves beneath the root folder's handle,
//! so a symlink made by anyone cannot lead out.
//!
//! Settings, `[capability."storage.fs"]`: `max_file_bytes` (default 8 MiB).

#![warn(missing_docs)]

use std::io::{ErrorKind, Read, Write};

use cap_std::fs::{Dir, OpenOptions};
use pulp_ext::wasmtime::{Caller, Linker};
use pulp_ext::{mem, Binding, Capability, Import, Plugin, State, Status};
use serde::Deserialize;

/// The capability's name in manifests.
const NAME: &str = "storage.fs";

struct Fs;

pulp_ext::register!(Fs);

const IMPORTS: &[Import] = &[
    Import::status("fs_read", 4),
    Import::status("fs_write", 4),
    Import::status("fs_delete", 2),
];

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Settings {
    max_file_bytes: Option<u64>,
}

fn max_file_bytes(plugin: &Plugin) -> Result<usize, Vec<String>> {
    let s: Settings = plugin.settings_as(NAME).map_err(|e| vec![e])?;
    match s.max_file_bytes.unwrap_or(8 << 20) {
        v @ 1..=0x4000_0000 => Ok(v as usize),
        v => Err(vec![format!(
            "max_file_bytes = {v} is outside 1..=1073741824"
        )]),
    }
}

/// One instance's root folder, opened as a capability.
struct Files {
    root: Dir,
    max: usize,
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

    fn write(&self, path: &str, data: &[u8]) -> Result<(), pulp_ext::Error> {
        if data.len() > self.max {
            return Err(self.too_large("write", path, data.len() as u64));
        }
        let (parent, name) = match path.rsplit_once('/') {
            Some((p, n)) => (Some(p), n),
            None => (None, path),
        };
        if let Some(p) = parent {
            if let Err(e) = self.root.create_dir_all(p) {
                // A parent that is a symlink leading out fails here as "exists";
                // resolving it names the real problem, the escape.
                let e = self.root.metadata(p).err().unwrap_or(e);
                return Err(io_error("write", path, e));
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
            f.sync_all()?;
            self.root.rename(&tmp, &self.root, path)
        })();
        if let Err(e) = result {
            let _ = self.root.remove_file(&tmp);
            return Err(io_error("write", path, e));
        }
        Ok(())
    }

    fn delete(&self, path: &str) -> Result<(), pulp_ext::Error> {
        let meta = self
            .root
            .symlink_metadata(path)
            .map_err(|e| io_error("delete", path, e))?;
        let r = if meta.is_dir() {
            self.root.remove_dir(path)
        } else {
            // A symlink is removed itself, never what it points to.
            self.root.remove_file(path)
        };
        r.map_err(|e| io_error("delete", path, e))
    }
}

fn files<'a>(c: &'a mut Caller<'_, State>) -> Result<&'a mut Files, pulp_ext::Error> {
    c.data_mut().attached::<Files>(NAME)
}

fn path_arg(c: &Caller<'_, State>, ptr: i32, len: i32) -> Result<String, pulp_ext::Error> {
    Ok(check(mem::str(c, ptr, len, "path")?)?.to_string())
}

impl Capability for Fs {
    fn name(&self) -> &'static str {
        NAME
    }

    fn binding(&self) -> Binding {
        Binding::Gated
    }

    fn imports(&self) -> &'static [Import] {
        IMPORTS
    }

    fn configure(&self, plugin: &Plugin) -> Result<(), Vec<String>> {
        max_file_bytes(plugin).map(|_| ())
    }

    fn attach(&self, plugin: &Plugin, state: &mut State) -> Result<(), String> {
        let max = max_file_bytes(plugin).map_err(|p| p.join("; "))?;
        let dir = plugin.create_storage_dir("files").map_err(|e| {
            format!(
                "cannot create {}/files: {e}",
                plugin.storage_dir().display()
            )
        })?;
        let root = Dir::open_ambient_dir(&dir, cap_std::ambient_authority())
            .map_err(|e| format!("cannot open {}: {e}", dir.display()))?;
        state.insert(Files { root, max });
        Ok(())
    }

    fn link(&self, linker: &mut Linker<State>) -> pulp_ext::wasmtime::Result<()> {
        linker.func_wrap(
            "pulp",
            "fs_read",
            |mut c: Caller<'_, State>, p: i32, pl: i32, out: i32, out_len: i32| {
                pulp_ext::status(&mut c, |c| {
                    let path = path_arg(c, p, pl)?;
                    let data = files(c)?.read(&path)?;
                    mem::write_result(c, &data, out, out_len)
                })
            },
        )?;
        linker.func_wrap(
            "pulp",
            "fs_write",
            |mut c: Caller<'_, State>, p: i32, pl: i32, d: i32, dl: i32| {
                pulp_ext::status(&mut c, |c| {
                    let path = path_arg(c, p, pl)?;
                    let data = mem::bytes(c, d, dl, "fs_write data")?.to_vec();
                    files(c)?.write(&path, &data)
                })
            },
        )?;
        linker.func_wrap(
            "pulp",
            "fs_delete",
            |mut c: Caller<'_, State>, p: i32, pl: i32| {
                pulp_ext::status(&mut c, |c| {
                    let path = path_arg(c, p, pl)?;
                    files(c)?.delete(&path)
                })
            },
        )?;
        Ok(())
    }
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
