//! Randomness from the host's OS generator (`entropy`, always bound).

use crate::status::check;
use crate::{sys, Result};

/// Fills `buf` (at most 64 KiB: [`crate::Status::TooLarge`] over).
///
/// ```no_run
/// let mut token = [0u8; 16];
/// pulp_pdk::entropy::fill(&mut token)?;
/// # Ok::<(), pulp_pdk::Error>(())
/// ```
pub fn fill(buf: &mut [u8]) -> Result<()> {
    // SAFETY: (ptr, len) of a live, writable buffer.
    check(format_args!("entropy_fill"), unsafe {
        sys::entropy_fill(buf.as_mut_ptr(), buf.len())
    })
}

/// A random `u64`.
///
/// ```no_run
/// let id = pulp_pdk::entropy::u64()?;
/// # Ok::<(), pulp_pdk::Error>(())
/// ```
pub fn u64() -> Result<u64> {
    let mut b = [0u8; 8];
    fill(&mut b)?;
    Ok(u64::from_le_bytes(b))
}
