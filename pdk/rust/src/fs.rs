//! The plugin's own folder (`storage.fs`): relative, `/`-separated paths.

use crate::mem::call_out;
use crate::status::check;
use crate::{sys, Result};

/// Reads a file ([`crate::Status::NotFound`] when there is none).
///
/// ```no_run
/// use pulp_pdk::{fs, Status};
/// let seen = match fs::read("state/seen") {
///     Ok(bytes) => bytes,
///     Err(e) if e.status == Status::NotFound => Vec::new(),
///     Err(e) => return Err(e),
/// };
/// # Ok::<(), pulp_pdk::Error>(())
/// ```
pub fn read(path: &str) -> Result<Vec<u8>> {
    call_out(format_args!("fs_read {path}"), |p, n| {
        // SAFETY: a live string and two live out-pointers.
        unsafe { sys::fs_read(path.as_ptr(), path.len(), p, n) }
    })
}

/// Writes a file atomically, creating its folders.
///
/// ```no_run
/// pulp_pdk::fs::write("state/seen", b"42")?;
/// # Ok::<(), pulp_pdk::Error>(())
/// ```
pub fn write(path: &str, data: &[u8]) -> Result<()> {
    // SAFETY: two live buffers.
    check(format_args!("fs_write {path}"), unsafe {
        sys::fs_write(path.as_ptr(), path.len(), data.as_ptr(), data.len())
    })
}

/// Deletes a file, a symlink or an empty folder.
///
/// ```no_run
/// pulp_pdk::fs::delete("state/seen")?;
/// # Ok::<(), pulp_pdk::Error>(())
/// ```
pub fn delete(path: &str) -> Result<()> {
    // SAFETY: a live string.
    check(format_args!("fs_delete {path}"), unsafe {
        sys::fs_delete(path.as_ptr(), path.len())
    })
}
