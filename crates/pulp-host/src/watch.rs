//! Deadlines and interrupts of a plugin's calls, counted in epoch ticks.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use pulp_ext::wasmtime::Store;
use pulp_ext::State;

use crate::host::EPOCH_TICK;

/// Interrupts a plugin's running call from another thread.
#[derive(Clone)]
pub struct Interrupter(pub(crate) Arc<Watch>);

impl Interrupter {
    /// Makes the plugin's running call trap within one epoch tick (10 ms). The
    /// interrupt is kept until a call sees it: one that lands between calls (or just
    /// before a call starts) interrupts the next call as soon as it runs, instead of
    /// being lost and leaving that call its whole deadline.
    pub fn interrupt(&self) {
        self.0.abort.store(true, Ordering::SeqCst);
    }
}

/// The deadline of the current call, counted in epoch ticks so that arming it
/// costs no clock read. The epoch callback runs once per tick while wasm runs; a
/// WASI sleep (`crate::wasi`) ticks it while it sleeps.
pub(crate) struct Watch {
    /// Ticks the running call may still take.
    pub(crate) ticks_left: AtomicU64,
    /// An interrupt no call has seen yet. Arming a call leaves it set; it is taken
    /// (cleared) only when a call ends because of it ([`Watch::take_abort`]).
    pub(crate) abort: AtomicBool,
}

impl Watch {
    pub(crate) fn arm(&self, limit_ms: u64) {
        const TICK_MS: u64 = EPOCH_TICK.as_millis() as u64;
        // `abort` is not cleared here: an interrupt that landed before this call
        // started is for this call.
        // +1: the first tick may come at once after arming.
        let ticks = limit_ms.div_ceil(TICK_MS) + 1;
        self.ticks_left.store(ticks, Ordering::Relaxed);
    }

    /// Whether the host interrupted the call.
    pub(crate) fn aborted(&self) -> bool {
        self.abort.load(Ordering::SeqCst)
    }

    /// Takes the pending interrupt: true when there was one (the call that ended
    /// on an interrupt trap saw it, so it is not kept for the next call).
    pub(crate) fn take_abort(&self) -> bool {
        self.abort.swap(false, Ordering::SeqCst)
    }

    /// One epoch tick passed while the guest ran: true when its time is up.
    pub(crate) fn tick(&self) -> bool {
        self.aborted() || self.ticks_left.fetch_sub(1, Ordering::Relaxed) <= 1
    }
}

/// Arms the deadline (and fuel) of one call on `store`.
pub(crate) fn arm(store: &mut Store<State>, watch: &Watch, fuel: Option<u64>, limit_ms: u64) {
    store.set_epoch_deadline(1);
    if let Some(fuel) = fuel {
        let _ = store.set_fuel(fuel);
    }
    watch.arm(limit_ms);
}
