//! The store data of every plugin instance.

use std::any::{Any, TypeId};

use wasmtime::{Memory, ResourceLimiter, TypedFunc};
use wasmtime_wasi::p1::WasiP1Ctx;

use crate::Plugin;

/// What a plugin instance's `Store` holds: WASI, limits, `last_error`, the guest's
/// memory and `pulp_alloc`, and each capability's own per-instance state.
///
/// Capabilities keep their state here by type ([`State::insert`], [`State::get_mut`]),
/// never in globals.
pub struct State {
    plugin: Plugin,
    wasi: WasiP1Ctx,
    limits: Box<dyn ResourceLimiter>,
    max_message: usize,
    guest: Option<(Memory, TypedFunc<i32, i32>)>,
    last_error: String,
    exts: Vec<(TypeId, Box<dyn Any + Send>)>,
}

impl State {
    /// Store data for one instance of `plugin`. Called by the host.
    pub fn new(
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
        }
    }

    /// The plugin this instance belongs to.
    pub fn plugin(&self) -> &Plugin {
        &self.plugin
    }

    /// The WASI preview 1 context (for the host's linker).
    pub fn wasi(&mut self) -> &mut WasiP1Ctx {
        &mut self.wasi
    }

    /// The store's resource limiter (for the host's `Store::limiter`).
    pub fn limits(&mut self) -> &mut dyn ResourceLimiter {
        &mut *self.limits
    }

    /// The largest input a guest may hand to an import, in bytes.
    pub fn max_message(&self) -> usize {
        self.max_message
    }

    /// Records the guest's exports once it is instantiated. Called by the host.
    pub fn set_guest(&mut self, memory: Memory, alloc: TypedFunc<i32, i32>) {
        self.guest = Some((memory, alloc));
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

    /// Keeps a capability's per-instance state, replacing any of the same type.
    pub fn insert<T: Any + Send>(&mut self, value: T) {
        let id = TypeId::of::<T>();
        self.exts.retain(|(t, _)| *t != id);
        self.exts.push((id, Box::new(value)));
    }

    /// The per-instance state of type `T`, if a capability inserted one.
    pub fn get_mut<T: Any + Send>(&mut self) -> Option<&mut T> {
        let id = TypeId::of::<T>();
        self.exts
            .iter_mut()
            .find(|(t, _)| *t == id)
            .and_then(|(_, b)| b.downcast_mut())
    }

    /// The per-instance state of type `T` that `capability` made in `attach`; a
    /// host function's way to reach it (5 when it is missing, which is a host bug).
    pub fn attached<T: Any + Send>(&mut self, capability: &str) -> Result<&mut T, crate::Error> {
        self.get_mut::<T>().ok_or_else(|| {
            crate::Status::Failed.err(format!("{capability} is not attached to this instance"))
        })
    }

    /// Removes and returns the per-instance state of type `T`.
    pub fn remove<T: Any + Send>(&mut self) -> Option<T> {
        let id = TypeId::of::<T>();
        let i = self.exts.iter().position(|(t, _)| *t == id)?;
        self.exts.swap_remove(i).1.downcast().ok().map(|b| *b)
    }
}
