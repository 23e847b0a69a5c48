//! WASI preview 1 for plugins, with sleeps that end at the call's deadline.
//!
//! wasmtime-wasi's `poll_oneoff` blocks the thread on a clock subscription, where
//! neither the epoch deadline nor an [`Interrupter`](crate::Interrupter) reaches it:
//! a guest slept 8 s under a 1 s `call_timeout_ms`. Here a poll that waits only on
//! clocks is answered by this module: it sleeps in slices of at most one epoch
//! tick, charges each full tick to the call's deadline as if wasm had run it, and
//! ends the call with the epoch interrupt's own trap (so the call is a timeout, or
//! interrupted) once time is up or the host interrupts. A poll with any fd
//! subscription goes to wasmtime-wasi, which answers it at once: a plugin's stdin is
//! closed, its stdout and stderr always take writes, and it has no other
//! descriptors (no preopens, no sockets). No other WASI call of a plugin blocks.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pulp_ext::host::HostState;
use pulp_ext::tape::Request;
use pulp_ext::wasmtime::{self, AsContextMut, Caller, Extern, Linker, Trap};
use pulp_ext::wasmtime_wasi::p1::{self, wasi_snapshot_preview1 as snapshot, WasiP1Ctx};
use pulp_ext::wasmtime_wasi::{runtime::in_tokio, HostMonotonicClock};
use pulp_ext::State;

use crate::host::EPOCH_TICK;
use crate::watch::Watch;

const MODULE: &str = "wasi_snapshot_preview1";

/// Links WASI preview 1, with this module's `poll_oneoff` in place of wasmtime-wasi's,
/// and the clocks and randomness on the instance's tape when it has one.
pub(crate) fn add_to_linker(linker: &mut Linker<State>) -> wasmtime::Result<()> {
    p1::add_to_linker_sync(linker, |s: &mut State| s.wasi())?;
    linker.allow_shadowing(true);
    linker.func_wrap(MODULE, "poll_oneoff", taped_poll_oneoff)?;
    linker.func_wrap(MODULE, "clock_time_get", clock_time_get)?;
    linker.func_wrap(MODULE, "random_get", random_get)?;
    linker.allow_shadowing(false);
    Ok(())
}

fn taped(caller: &mut Caller<'_, State>) -> bool {
    caller.data_mut().tape().is_some()
}

/// wasmtime-wasi's own `fn` of a WASI call, given the guest's memory.
macro_rules! wasmtime_wasi {
    ($caller:expr, $f:ident($($arg:expr),*)) => {{
        let fuel = $caller.as_context_mut().hostcall_fuel();
        let Some(Extern::Memory(memory)) = $caller.get_export("memory") else {
            wasmtime::bail!(concat!(stringify!($f), ": the plugin exports no memory"));
        };
        let (mem, state) = memory.data_and_store_mut(&mut *$caller);
        let wasi = state.wasi();
        {
            use snapshot::WasiSnapshotPreview1 as _;
            wasi.set_hostcall_fuel(fuel);
        }
        let mut mem = wiggle::GuestMemory::Unshared(mem);
        snapshot::$f(wasi, &mut mem, $($arg),*)
    }};
}

/// `clock_time_get`, the time written to the tape (or read from it).
fn clock_time_get(
    mut caller: Caller<'_, State>,
    id: i32,
    precision: i64,
    out: i32,
) -> wasmtime::Result<i32> {
    if !taped(&mut caller) {
        return wasmtime_wasi!(&mut caller, clock_time_get(id, precision, out));
    }
    pulp_ext::tape::wasi_call(
        &mut caller,
        "wasi:clock_time_get",
        Request::of(&[&id.to_le_bytes(), &precision.to_le_bytes()]),
        &[id, 0, out],
        &[(2, 8)],
        |c| wasmtime_wasi!(c, clock_time_get(id, precision, out)),
        |_| vec![(2, 8)],
    )
}

/// `random_get`, the bytes written to the tape (or read from it).
fn random_get(mut caller: Caller<'_, State>, buf: i32, len: i32) -> wasmtime::Result<i32> {
    if !taped(&mut caller) {
        return wasmtime_wasi!(&mut caller, random_get(buf, len));
    }
    pulp_ext::tape::wasi_call(
        &mut caller,
        "wasi:random_get",
        Request::of(&[&len.to_le_bytes()]),
        &[buf, len],
        &[(0, len as u32 as usize)],
        |c| wasmtime_wasi!(c, random_get(buf, len)),
        |_| vec![(0, len as u32 as usize)],
    )
}

/// `poll_oneoff` on the tape: the events it wrote (a replay does not sleep).
fn taped_poll_oneoff(
    mut caller: Caller<'_, State>,
    subs: i32,
    events: i32,
    n: i32,
    nevents: i32,
) -> wasmtime::Result<i32> {
    if !taped(&mut caller) {
        return poll_oneoff(&mut caller, subs, events, n, nevents);
    }
    // Digested where it lies (no copy; past the record limit, by its length).
    let request = {
        let mem = match caller.get_export("memory") {
            Some(Extern::Memory(m)) => m.data(&caller),
            _ => &[],
        };
        let start = subs as u32 as usize;
        let len = (n as u32 as usize).saturating_mul(SUBSCRIPTION);
        let subs = mem.get(start..start.saturating_add(len)).unwrap_or(&[]);
        Request::of(&[subs, &n.to_le_bytes()])
    };
    let most = (n as u32 as usize).saturating_mul(EVENT);
    pulp_ext::tape::wasi_call(
        &mut caller,
        "wasi:poll_oneoff",
        request,
        &[subs, events, n, nevents],
        &[(1, most), (3, 4)],
        |c| poll_oneoff(c, subs, events, n, nevents),
        |mem| {
            let at = nevents as u32 as usize;
            let count = mem
                .get(at..at + 4)
                .map_or(0, |b| u32::from_le_bytes(b.try_into().expect("4")) as usize);
            vec![(1, count.saturating_mul(EVENT)), (3, 4)]
        },
    )
}

/// What `poll_oneoff` needs of its instance, kept in the instance's [`State`].
/// The host's slot for an instance's [`CallClock`].
pub(crate) static CLOCK: pulp_ext::Slot<CallClock> = pulp_ext::Slot::new("the host's call clock");

pub(crate) struct CallClock {
    watch: Arc<Watch>,
    /// Time 0 of the guest's monotonic clock.
    base: Instant,
}

impl CallClock {
    /// For an instance whose calls `watch` times.
    pub(crate) fn new(watch: Arc<Watch>) -> CallClock {
        CallClock {
            watch,
            base: Instant::now(),
        }
    }

    /// What is left of the running call's deadline (its epoch ticks).
    pub(crate) fn time_left(&self) -> Duration {
        let ticks = self
            .watch
            .ticks_left
            .load(std::sync::atomic::Ordering::Relaxed);
        crate::host::EPOCH_TICK.saturating_mul(ticks.saturating_sub(1) as u32)
    }

    /// Charges `spent` (time the call spent in the host, not in wasm, so not
    /// counted by epoch ticks) to the running call's deadline. What is used up stays
    /// used up: a call that took the rest leaves one tick (up to 10 ms more) for the
    /// guest to see the status it got, then the call traps as a timeout, however
    /// many more calls it makes (each finds no time left and returns at once).
    pub(crate) fn charge(&self, spent: Duration) {
        let ticks = (spent.as_nanos() / EPOCH_TICK.as_nanos()) as u64;
        let _ = self.watch.ticks_left.fetch_update(
            std::sync::atomic::Ordering::Relaxed,
            std::sync::atomic::Ordering::Relaxed,
            // 2: the first epoch check after the host call takes one.
            |t| Some(t.saturating_sub(ticks).max(t.min(2))),
        );
    }

    /// The running call's deadline and interrupt.
    pub(crate) fn watch(&self) -> Arc<Watch> {
        self.watch.clone()
    }

    /// The guest's monotonic clock (for its `WasiCtxBuilder`).
    pub(crate) fn guest_clock(&self) -> GuestClock {
        GuestClock(self.base)
    }
}

/// The guest's monotonic clock: nanoseconds since its instance was made, as
/// wasmtime-wasi's own clock counts, from a base `poll_oneoff` knows, so that an
/// absolute deadline on it can be turned into an `Instant`.
pub(crate) struct GuestClock(Instant);

impl HostMonotonicClock for GuestClock {
    fn resolution(&self) -> u64 {
        1
    }

    fn now(&self) -> u64 {
        self.0.elapsed().as_nanos().try_into().unwrap_or(u64::MAX)
    }
}

/// Layout of `wasi_snapshot_preview1.witx`: a subscription is 48 bytes (userdata
/// u64 at 0, tag u8 at 8; for a clock: id u32 at 16, timeout u64 at 24, flags u16
/// at 40), an event 32 (userdata u64 at 0, errno u16 at 8, type u8 at 10, nbytes
/// u64 at 16, flags u16 at 24).
const SUBSCRIPTION: usize = 48;
const EVENT: usize = 32;
const TAG_CLOCK: u8 = 0;
const CLOCK_REALTIME: u32 = 0;
const CLOCK_MONOTONIC: u32 = 1;
const SUBCLOCK_ABSTIME: u16 = 1;

/// When `poll_oneoff` was called, on both clocks.
struct Now {
    instant: Instant,
    unix_nanos: u64,
}

/// `poll_oneoff`: a poll on clocks only sleeps here, in ticks charged to the
/// call's deadline; any other goes to wasmtime-wasi (see the module's comment).
fn poll_oneoff(
    caller: &mut Caller<'_, State>,
    subs: i32,
    events: i32,
    n: i32,
    nevents: i32,
) -> wasmtime::Result<i32> {
    let fuel = caller.as_context_mut().hostcall_fuel();
    let Some(Extern::Memory(memory)) = caller.get_export("memory") else {
        wasmtime::bail!("poll_oneoff: the plugin exports no memory");
    };
    let (mem, state) = memory.data_and_store_mut(&mut *caller);
    let Some(clock) = state.peek(&CLOCK) else {
        wasmtime::bail!("poll_oneoff: the instance has no call clock (a host bug)");
    };
    let (watch, base) = (clock.watch.clone(), clock.base);
    let now = Now {
        instant: Instant::now(),
        unix_nanos: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos().try_into().unwrap_or(u64::MAX)),
    };
    let (first, len) = (subs as u32 as usize, n as u32 as usize);
    let Some(wake) = earliest_clock(mem, first, len, &now, base) else {
        return delegate(state.wasi(), fuel, mem, subs, events, n, nevents);
    };
    sleep_until(&watch, wake)?;
    let woke = Instant::now();
    let mut count = 0u32;
    for i in 0..len {
        let due = clock_deadline(mem, first, i, &now, base).flatten();
        if due.is_some_and(|t| t <= woke) {
            // Read before writing: the guest may point events over its subscriptions.
            let sub = first + i * SUBSCRIPTION;
            let userdata: [u8; 8] = mem[sub..sub + 8].try_into().expect("8 bytes");
            let at = out(mem, events, count as usize * EVENT, EVENT, 8)?;
            let e = &mut mem[at..at + EVENT];
            e.fill(0); // errno 0, type 0 (clock), nbytes 0, flags 0
            e[..8].copy_from_slice(&userdata);
            count += 1;
        }
    }
    let at = out(mem, nevents, 0, 4, 4)?;
    mem[at..at + 4].copy_from_slice(&count.to_le_bytes());
    Ok(0)
}

/// The earliest deadline of `n` clock subscriptions at `subs` (`Some(None)`: they
/// never fire); `None` when the poll is not for this module (no subscriptions, one
/// that is not a clock this module reads, a bad pointer): wasmtime-wasi answers it.
fn earliest_clock(
    mem: &[u8],
    subs: usize,
    n: usize,
    now: &Now,
    base: Instant,
) -> Option<Option<Instant>> {
    if n == 0 || !subs.is_multiple_of(8) {
        return None;
    }
    let mut earliest = None;
    for i in 0..n {
        earliest = match (earliest, clock_deadline(mem, subs, i, now, base)?) {
            (Some(a), Some(b)) => Some(std::cmp::min(a, b)),
            (a, b) => a.or(b),
        };
    }
    Some(earliest)
}

/// Subscription `i`'s deadline when it is a clock subscription this module reads
/// (`Some(None)`: too far to represent, so never).
fn clock_deadline(
    mem: &[u8],
    subs: usize,
    i: usize,
    now: &Now,
    base: Instant,
) -> Option<Option<Instant>> {
    let at = subs.checked_add(i.checked_mul(SUBSCRIPTION)?)?;
    let s = mem.get(at..at.checked_add(SUBSCRIPTION)?)?;
    let u32_at = |o: usize| u32::from_le_bytes(s[o..o + 4].try_into().expect("4 bytes"));
    let u64_at = |o: usize| u64::from_le_bytes(s[o..o + 8].try_into().expect("8 bytes"));
    let flags = u16::from_le_bytes([s[40], s[41]]);
    if s[8] != TAG_CLOCK || flags & !SUBCLOCK_ABSTIME != 0 {
        return None;
    }
    let (id, timeout, absolute) = (u32_at(16), u64_at(24), flags & SUBCLOCK_ABSTIME != 0);
    let after = |ns: u64| now.instant.checked_add(Duration::from_nanos(ns));
    Some(match (id, absolute) {
        (CLOCK_MONOTONIC | CLOCK_REALTIME, false) => after(timeout),
        (CLOCK_MONOTONIC, true) => base.checked_add(Duration::from_nanos(timeout)),
        (CLOCK_REALTIME, true) => after(timeout.saturating_sub(now.unix_nanos)),
        // The CPU-time clocks: wasmtime-wasi's EINVAL.
        _ => return None,
    })
}

/// Sleeps until `wake` (`None`: for ever) in slices of at most one epoch tick; each
/// full tick counts against the call's deadline. Traps like an epoch interrupt when
/// the deadline passes or the host interrupts the call.
fn sleep_until(watch: &Watch, wake: Option<Instant>) -> wasmtime::Result<()> {
    loop {
        if watch.aborted() {
            return Err(Trap::Interrupt.into());
        }
        let now = Instant::now();
        let left = match wake {
            Some(t) if t <= now => return Ok(()),
            Some(t) => t - now,
            None => EPOCH_TICK,
        };
        let slice = left.min(EPOCH_TICK);
        std::thread::sleep(slice);
        if slice == EPOCH_TICK && watch.tick() {
            return Err(Trap::Interrupt.into());
        }
    }
}

/// The offset of `len` bytes at `ptr + offset` in guest memory; a misaligned or
/// out-of-bounds out-pointer traps, as wasmtime-wasi's do.
fn out(mem: &[u8], ptr: i32, offset: usize, len: usize, align: usize) -> wasmtime::Result<usize> {
    let at = (ptr as u32 as usize).checked_add(offset);
    match at {
        Some(at)
            if at.is_multiple_of(align)
                && at.checked_add(len).is_some_and(|end| end <= mem.len()) =>
        {
            Ok(at)
        }
        _ => wasmtime::bail!(
            "poll_oneoff: out-pointer {:#x} is misaligned or outside the plugin's memory",
            ptr as u32
        ),
    }
}

/// wasmtime-wasi's own `poll_oneoff`, for polls that do not only wait on clocks.
fn delegate(
    wasi: &mut WasiP1Ctx,
    fuel: usize,
    mem: &mut [u8],
    subs: i32,
    events: i32,
    n: i32,
    nevents: i32,
) -> wasmtime::Result<i32> {
    use snapshot::WasiSnapshotPreview1 as _;
    wasi.set_hostcall_fuel(fuel);
    let mut mem = wiggle::GuestMemory::Unshared(mem);
    in_tokio(snapshot::poll_oneoff(
        wasi, &mut mem, subs, events, n, nevents,
    ))
}
