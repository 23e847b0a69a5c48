//! The store data of every plugin instance.

use std::any::Any;
use std::marker::PhantomData;

use wasmtime::{Memory, ResourceLimiter, TypedFunc};
use wasmtime_wasi::p1::WasiP1Ctx;

use prometheus_client::metrics::counter::Counter;

use crate::tape::Tape;
use crate::Plugin;

/// What a plugin instance's `Store` holds: WASI, limits, `last_error`, the guest's
/// memory and `pulp_alloc`, and each capability's own per-instance state.
///
/// Capabilities keep their state here, each in its own [`Slot`] ([`State::put`],
/// [`State::slot`]), never in globals.
pub struct State {
    plugin: Plugin,
    wasi: WasiP1Ctx,
    limits: Box<dyn ResourceLimiter>,
    max_message: usize,
    guest: Option<(Memory, TypedFunc<i32, i32>)>,
    last_error: String,
    exts: Vec<(usize, Box<dyn Any + Send>)>,
    /// This instance's import-call counters, by import and status, looked up once.
    import_calls: Vec<(&'static str, i32, Counter)>,
    /// Recording or replaying this instance ([`crate::tape`]).
    tape: Option<Box<Tape>>,
}

impl crate::host::HostState for State {
    fn new(
        plugin: Plugin,
        wasi: WasiP1Ctx,
        limits: Box<dyn ResourceLimiter>,
        max_message: usize,
    ) -> State {
        State {
            plugin,
            wasi,
            limits,
            max_message,
            guest: None,
            last_error: String::new(),
            exts: Vec::new(),
            import_calls: Vec::new(),
            tape: None,
        }
    }

    fn wasi(&mut self) -> &mut WasiP1Ctx {
        &mut self.wasi
    }

    fn limits(&mut self) -> &mut dyn ResourceLimiter {
        self
    }

    fn set_tape(&mut self, tape: Option<Box<Tape>>) -> Option<Box<Tape>> {
        std::mem::replace(&mut self.tape, tape)
    }

    fn tape(&mut self) -> Option<&mut Tape> {
        self.tape.as_deref_mut()
    }

    fn set_guest(&mut self, memory: Memory, alloc: TypedFunc<i32, i32>) {
        self.guest = Some((memory, alloc));
    }
}

/// The store's limiter: the host's, with each decision written to (or checked
/// against) the tape.
impl ResourceLimiter for State {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let ok = self.limits.memory_growing(current, desired, maximum)?;
        self.taped_grow(false, desired, ok)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let ok = self.limits.table_growing(current, desired, maximum)?;
        self.taped_grow(true, desired, ok)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }
}

impl State {
    fn taped_grow(&mut self, table: bool, desired: usize, ok: bool) -> wasmtime::Result<bool> {
        match self.tape.as_deref_mut() {
            None => Ok(ok),
            Some(Tape::Record(r)) => {
                r.push(&crate::tape::Rec::Grow {
                    table,
                    desired: desired as u64,
                    ok,
                });
                Ok(ok)
            }
            Some(Tape::Replay(p)) => p.grow(table, desired as u64, ok),
        }
    }

    pub(crate) fn tape_ref(&self) -> Option<&Tape> {
        self.tape.as_deref()
    }

    pub(crate) fn tape_mut(&mut self) -> Option<&mut Tape> {
        self.tape.as_deref_mut()
    }

    /// Counts one call of `import` that returned `code` (`pulp_plugin_import_calls_total`):
    /// a scan of this instance's few counters, the registry only on a new pair.
    pub(crate) fn count_import(&mut self, import: &'static str, code: i32) {
        if let Some((.., c)) = self
            .import_calls
            .iter()
            .find(|(i, s, _)| std::ptr::eq(*i, import) && *s == code)
        {
            c.inc();
            return;
        }
        let c = crate::metrics::metrics().import_calls.get_or_create_owned(
            &crate::metrics::ImportLabels {
                plugin: self.plugin.name().to_string(),
                import,
                status: code,
            },
        );
        c.inc();
        self.import_calls.push((import, code, c));
    }

    /// The plugin this instance belongs to.
    pub fn plugin(&self) -> &Plugin {
        &self.plugin
    }

    /// The largest input a guest may hand to an import, in bytes.
    pub fn max_message(&self) -> usize {
        self.max_message
    }

    pub(crate) fn guest_memory(&self) -> Option<Memory> {
        self.guest.as_ref().map(|g| g.0)
    }

    pub(crate) fn guest_alloc(&self) -> Option<TypedFunc<i32, i32>> {
        self.guest.as_ref().map(|g| g.1.clone())
    }

    /// The text of the most recent failure, for `last_error`.
    pub fn last_error(&self) -> &str {
        &self.last_error
    }

    /// Records the text `last_error` returns.
    pub fn set_last_error(&mut self, message: impl Into<String>) {
        self.last_error = message.into();
    }

    /// Keeps a capability's per-instance state in its `slot`, replacing what the
    /// slot held (other slots, even of the same type, are untouched).
    pub fn put<T: Any + Send>(&mut self, slot: &'static Slot<T>, value: T) {
        let key = slot.key();
        self.exts.retain(|(k, _)| *k != key);
        self.exts.push((key, Box::new(value)));
    }

    /// What `slot` holds in this instance, if anything.
    pub fn peek<T: Any + Send>(&mut self, slot: &'static Slot<T>) -> Option<&mut T> {
        let key = slot.key();
        self.exts
            .iter_mut()
            .find(|(k, _)| *k == key)
            .and_then(|(_, b)| b.downcast_mut())
    }

    /// What `slot` holds: a host function's way to reach the state its capability
    /// made in `attach` (5, naming the capability, when it is missing: a host bug).
    pub fn slot<T: Any + Send>(&mut self, slot: &'static Slot<T>) -> Result<&mut T, crate::Error> {
        let owner = slot.owner;
        self.peek(slot).ok_or_else(|| {
            crate::Status::Failed.err(format!("{owner} is not attached to this instance"))
        })
    }

    /// Empties `slot` and returns what it held.
    pub fn take<T: Any + Send>(&mut self, slot: &'static Slot<T>) -> Option<T> {
        let key = slot.key();
        let i = self.exts.iter().position(|(k, _)| *k == key)?;
        self.exts.swap_remove(i).1.downcast().ok().map(|b| *b)
    }
}

/// A capability's own place for one per-instance value in [`State`]. Declare it as
/// a `static`: each static is a distinct slot, so two capabilities that both keep a
/// `String` never see each other's.
///
/// ```
/// use pulp_ext::Slot;
/// static GREETING: Slot<String> = Slot::new("demo.greet");
/// static OTHER: Slot<String> = Slot::new("demo.other");
/// # let _ = (&GREETING, &OTHER);
/// // in attach:        state.put(&GREETING, "hello".to_string());
/// // in a host fn:     let g = c.data_mut().slot(&GREETING)?;
/// ```
pub struct Slot<T> {
    owner: &'static str,
    // Interior mutability: a static holding it is never merged with another.
    _distinct: std::sync::atomic::AtomicBool,
    _value: PhantomData<fn() -> T>,
}

impl<T> Slot<T> {
    /// A slot of the capability named `owner` (used in the error when it is empty).
    pub const fn new(owner: &'static str) -> Slot<T> {
        Slot {
            owner,
            _distinct: std::sync::atomic::AtomicBool::new(false),
            _value: PhantomData,
        }
    }

    /// A static's address: unique for as long as the program runs.
    fn key(&'static self) -> usize {
        self as *const Slot<T> as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static MINE: Slot<String> = Slot::new("mine");
    static THEIRS: Slot<String> = Slot::new("theirs");

    fn state() -> State {
        use crate::host::{HostEvents, HostPlugin};
        let plugin = Plugin::new(
            "p",
            "/nonexistent",
            Default::default(),
            crate::Events::new(1),
        );
        let wasi = wasmtime_wasi::WasiCtxBuilder::new().build_p1();
        <State as crate::host::HostState>::new(
            plugin,
            wasi,
            Box::new(wasmtime::StoreLimits::default()),
            1024,
        )
    }

    #[test]
    fn two_slots_of_one_type_keep_their_own_values() {
        let mut s = state();
        s.put(&MINE, "mine".into());
        s.put(&THEIRS, "theirs".into());
        assert_eq!(s.slot(&MINE).unwrap(), "mine");
        assert_eq!(s.slot(&THEIRS).unwrap(), "theirs");
        s.put(&MINE, "again".into());
        assert_eq!(s.take(&MINE).as_deref(), Some("again"));
        assert!(s.peek(&MINE).is_none());
        assert_eq!(s.peek(&THEIRS).map(|t| t.as_str()), Some("theirs"));
        let e = s.slot(&MINE).unwrap_err();
        assert_eq!(e.status(), Some(crate::Status::Failed));
        assert!(e.to_string().contains("mine is not attached"), "{e}");
    }
}
