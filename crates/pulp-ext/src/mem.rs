//! Guest memory: the only place that does pointer arithmetic on a plugin's memory.
//!
//! Inputs are `(ptr, len)` pairs read with bounds checks ([`bytes`], [`str`](fn@str),
//! [`decode`]); results go back through out-pointers ([`write_result`]): the
//! host calls the guest's `pulp_alloc`, copies the bytes, and stores the pointer
//! and length as little-endian `u32`s (ABI §4). Every failure is a status with a
//! message; nothing here panics on guest input.

use serde::de::DeserializeOwned;
use serde::Serialize;
use wasmtime::{AsContext, AsContextMut, Caller, Memory, Trap};

use crate::{msgpack, Error, State, Status};

fn memory(caller: &Caller<'_, State>) -> Result<Memory, Error> {
    caller
        .data()
        .guest_memory()
        .ok_or_else(|| Status::BadPointer.err("the plugin exports no memory"))
}

fn range(
    ptr: i32,
    len: i32,
    size: usize,
    what: &(impl std::fmt::Display + ?Sized),
) -> Result<std::ops::Range<usize>, Error> {
    let (start, n) = (ptr as u32 as usize, len as u32 as usize);
    match start.checked_add(n) {
        Some(end) if end <= size => Ok(start..end),
        _ => Err(outside(start, n, size, what)),
    }
}

// Error paths are out of line so that the checks on the hot path stay small.
#[cold]
#[inline(never)]
fn outside(start: usize, n: usize, size: usize, what: &(impl std::fmt::Display + ?Sized)) -> Error {
    Status::BadPointer.err(format!(
        "{what} (ptr {start:#x}, len {n}) lies outside the plugin's {size}-byte memory"
    ))
}

#[cold]
#[inline(never)]
fn over_limit(n: usize, limit: usize, what: &(impl std::fmt::Display + ?Sized)) -> Error {
    Status::TooLarge.err(format!(
        "{what} is {n} bytes, over the plugin's message limit of {limit} bytes"
    ))
}

/// Borrows the `len` bytes at `ptr`. `len == 0` is the empty slice whatever `ptr` is.
/// Inputs outside memory are [`Status::BadPointer`]; inside it but over the plugin's
/// message limit, [`Status::TooLarge`].
pub fn bytes<'a>(
    caller: &'a Caller<'_, State>,
    ptr: i32,
    len: i32,
    what: &(impl std::fmt::Display + ?Sized),
) -> Result<&'a [u8], Error> {
    if len == 0 {
        return Ok(&[]);
    }
    let data = memory(caller)?.data(caller.as_context());
    let r = range(ptr, len, data.len(), what)?;
    let limit = caller.data().max_message();
    if r.len() > limit {
        return Err(over_limit(r.len(), limit, what));
    }
    Ok(&data[r])
}

/// Borrows the `len` bytes at `ptr` for writing (a buffer the guest asked the host to fill).
pub fn bytes_mut<'a>(
    caller: &'a mut Caller<'_, State>,
    ptr: i32,
    len: i32,
    what: &(impl std::fmt::Display + ?Sized),
) -> Result<&'a mut [u8], Error> {
    if len == 0 {
        return Ok(&mut []);
    }
    let mem = memory(caller)?;
    let data = mem.data_mut(caller.as_context_mut());
    let r = range(ptr, len, data.len(), what)?;
    Ok(&mut data[r])
}

/// Borrows UTF-8 text; invalid UTF-8 is [`Status::BadEncoding`].
pub fn str<'a>(
    caller: &'a Caller<'_, State>,
    ptr: i32,
    len: i32,
    what: &(impl std::fmt::Display + ?Sized),
) -> Result<&'a str, Error> {
    std::str::from_utf8(bytes(caller, ptr, len, what)?)
        .map_err(|e| Status::BadEncoding.err(format!("{what} is not UTF-8: {e}")))
}

/// Decodes a msgpack request map (every request of ABI §4 is a map); an empty
/// one is [`Status::Empty`], anything but a map of the right fields [`Status::BadEncoding`].
pub fn decode<T: DeserializeOwned>(
    caller: &Caller<'_, State>,
    ptr: i32,
    len: i32,
    what: &(impl std::fmt::Display + ?Sized),
) -> Result<T, Error> {
    let raw = bytes(caller, ptr, len, what)?;
    if raw.is_empty() {
        return Err(Status::Empty.err(format!("{what} is empty")));
    }
    msgpack::decode_map(raw, what)
}

/// Writes `data` to a fresh guest buffer from `pulp_alloc` and stores its pointer
/// and length at `ptr_out` and `len_out`. Empty data stores `(0, 0)` and allocates nothing.
///
/// The out-pointers are checked before anything is allocated, so a bad one
/// ([`Status::WriteFailed`]) leaks no guest memory.
pub fn write_result(
    caller: &mut Caller<'_, State>,
    data: &[u8],
    ptr_out: i32,
    len_out: i32,
) -> Result<(), Error> {
    let size = memory(caller)
        .map_err(|_| Status::WriteFailed.err("the plugin exports no memory"))?
        .data_size(caller.as_context());
    for (p, name) in [
        (ptr_out, "result pointer out-pointer"),
        (len_out, "result length out-pointer"),
    ] {
        range(p, 4, size, name).map_err(|e| match e {
            Error::Status { message, .. } => Status::WriteFailed.err(message),
            trap => trap,
        })?;
    }
    crate::tape::note_result(caller.data_mut(), ptr_out, data);
    let ptr = if data.is_empty() {
        0
    } else {
        alloc_copy(caller, data)?
    };
    let mem = memory(caller)?;
    let out = mem.data_mut(caller.as_context_mut());
    // Checked above, and memory never shrinks.
    out[ptr_out as u32 as usize..][..4].copy_from_slice(&ptr.to_le_bytes());
    out[len_out as u32 as usize..][..4].copy_from_slice(&(data.len() as u32).to_le_bytes());
    Ok(())
}

/// Encodes `value` as msgpack and writes it like [`write_result`].
pub fn write_msgpack<T: Serialize + ?Sized>(
    caller: &mut Caller<'_, State>,
    value: &T,
    ptr_out: i32,
    len_out: i32,
) -> Result<(), Error> {
    let bytes = msgpack::encode(value)?;
    write_result(caller, &bytes, ptr_out, len_out)
}

/// Calls the guest's `pulp_alloc(len)`, checks the pointer it returns, and copies `data` there.
///
/// A trap from an exhausted limit (time, fuel) stays a trap; any other failure of
/// `pulp_alloc` is [`Status::AllocFailed`].
pub fn alloc_copy(caller: &mut Caller<'_, State>, data: &[u8]) -> Result<u32, Error> {
    let n = i32::try_from(data.len()).map_err(|_| {
        Status::TooLarge.err(format!(
            "a result of {} bytes does not fit a 32-bit guest",
            data.len()
        ))
    })?;
    let alloc = caller
        .data()
        .guest_alloc()
        .ok_or_else(|| Status::AllocFailed.err("the plugin exports no pulp_alloc"))?;
    let ptr = match alloc.call(caller.as_context_mut(), n) {
        Ok(p) => p,
        Err(e) if is_limit_trap(&e) => return Err(Error::Trap(e)),
        Err(e) => return Err(Status::AllocFailed.err(format!("pulp_alloc({n}) trapped: {e}"))),
    };
    if ptr == 0 {
        return Err(Status::AllocFailed.err(format!("pulp_alloc({n}) returned 0")));
    }
    let mem = memory(caller)?;
    let dst = mem.data_mut(caller.as_context_mut());
    let r = range(ptr, n, dst.len(), "pulp_alloc's buffer").map_err(|_| {
        Status::AllocFailed.err(format!(
            "pulp_alloc({n}) returned {:#x}, outside memory",
            ptr as u32
        ))
    })?;
    dst[r].copy_from_slice(data);
    Ok(ptr as u32)
}

/// True for traps that mean a limit ran out (deadline, fuel): those end the call.
pub fn is_limit_trap(e: &wasmtime::Error) -> bool {
    matches!(
        e.downcast_ref::<Trap>(),
        Some(Trap::Interrupt | Trap::OutOfFuel)
    )
}
