//! Guest memory shared with the host: `pulp_alloc`/`pulp_free`, inputs the host
//! lends for one call, and results it hands over.
//!
//! A block the host keeps until it calls `pulp_free` stays valid until then. Blocks
//! come from one static 4 KiB slot while it is free (each step's input), else from
//! the allocator with alignment 1 and exactly their size. Own a result only through
//! [`take`]: it copies a result out of the slot (and frees the slot), and turns any
//! other block into a `Vec<u8>` without a copy.

use std::alloc::{alloc as raw_alloc, dealloc, Layout};
use std::cell::{Cell, UnsafeCell};

/// The host asks for a block for every step's input and frees it right after the
/// step: one static block serves those (and any small request while it is free)
/// without a trip through the allocator.
const SLOT_SIZE: usize = 4096;

struct Slot {
    bytes: UnsafeCell<[u8; SLOT_SIZE]>,
    busy: Cell<bool>,
}

// SAFETY: wasm32-wasip1 modules are single-threaded; the slot is never shared
// across threads.
unsafe impl Sync for Slot {}

static SLOT: Slot = Slot {
    bytes: UnsafeCell::new([0; SLOT_SIZE]),
    busy: Cell::new(false),
};

fn slot_ptr() -> usize {
    SLOT.bytes.get() as usize
}

fn layout(size: usize) -> Option<Layout> {
    Layout::from_size_align(size.max(1), 1).ok()
}

/// `pulp_alloc`: a block of `size` bytes, 0 when there is none (or `size` < 0).
pub fn alloc(size: i32) -> i32 {
    let Some(l) = usize::try_from(size).ok().and_then(layout) else {
        return 0;
    };
    if l.size() <= SLOT_SIZE && !SLOT.busy.get() {
        SLOT.busy.set(true);
        return slot_ptr() as i32;
    }
    // SAFETY: the layout has a non-zero size.
    let p = unsafe { raw_alloc(l) };
    p as usize as i32
}

/// `pulp_free`: gives back a block `alloc` made with this `size`.
pub fn free(ptr: i32, size: i32) {
    if ptr as u32 as usize == slot_ptr() {
        SLOT.busy.set(false);
        return;
    }
    let Some(l) = usize::try_from(size).ok().and_then(layout) else {
        return;
    };
    if ptr != 0 {
        // SAFETY: the host frees only what `alloc` returned, with its size.
        unsafe { dealloc(ptr as u32 as usize as *mut u8, l) }
    }
}

/// The bytes the host lent for this call (`pulp_init`'s config, a step envelope).
/// Valid until the export returns; copy what must outlive it.
pub fn input<'a>(ptr: i32, len: i32) -> &'a [u8] {
    if ptr == 0 || len <= 0 {
        return &[];
    }
    // SAFETY: the host wrote `len` bytes at `ptr` (a block it got from `alloc`)
    // and frees them only after the export returns.
    unsafe { std::slice::from_raw_parts(ptr as u32 as usize as *const u8, len as usize) }
}

/// Takes ownership of a result the host wrote through out-pointers.
pub fn take(ptr: u32, len: u32) -> Vec<u8> {
    if ptr == 0 || len == 0 {
        return Vec::new();
    }
    let len = len as usize;
    if ptr as usize == slot_ptr() {
        let v = input(ptr as i32, len.min(SLOT_SIZE) as i32).to_vec();
        SLOT.busy.set(false);
        return v;
    }
    // SAFETY: the host allocated exactly `len` bytes with `alloc` (alignment 1)
    // and gave up the block: it is ours, with the layout a Vec<u8> of capacity
    // `len` has.
    unsafe { Vec::from_raw_parts(ptr as usize as *mut u8, len, len) }
}

/// Calls an import that returns bytes through `(ptr_out, len_out)`.
pub(crate) fn call_out(
    what: std::fmt::Arguments<'_>,
    f: impl FnOnce(*mut u32, *mut u32) -> i32,
) -> crate::Result<Vec<u8>> {
    let (mut p, mut n) = (0u32, 0u32);
    let code = f(&mut p, &mut n);
    let bytes = take(p, n);
    crate::status::check(what, code)?;
    Ok(bytes)
}
