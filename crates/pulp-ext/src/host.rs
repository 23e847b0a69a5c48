//! What only the host calls: building a plugin's view, its events and each
//! instance's store data, and taking events out. A capability crate has no use for
//! anything here; `pulp-host` (or another host built on `pulp-ext`) imports it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use wasmtime::{Memory, ResourceLimiter, TypedFunc};
use wasmtime_wasi::p1::WasiP1Ctx;

pub use crate::capability::{AnyCapability, AnySettings, Registration};
pub use crate::events::Next;

use crate::{Budget, Events, Plugin, Shared};

/// Building and running an instance's [`State`](crate::State).
pub trait HostState: Sized {
    /// Store data for one instance of `plugin`.
    fn new(
        plugin: Plugin,
        wasi: WasiP1Ctx,
        limits: Box<dyn ResourceLimiter>,
        max_message: usize,
    ) -> Self;
    /// The WASI preview 1 context (for the host's linker).
    fn wasi(&mut self) -> &mut WasiP1Ctx;
    /// The store's resource limiter (for `Store::limiter`).
    fn limits(&mut self) -> &mut dyn ResourceLimiter;
    /// Sets (or removes) the instance's tape; returns the one it had.
    fn set_tape(&mut self, tape: Option<Box<crate::tape::Tape>>) -> Option<Box<crate::tape::Tape>>;
    /// The instance's tape, if it has one.
    fn tape(&mut self) -> Option<&mut crate::tape::Tape>;
    /// Records the guest's exports once it is instantiated.
    fn set_guest(&mut self, memory: Memory, alloc: TypedFunc<i32, i32>);
}

/// Building a [`Plugin`] view from a manifest.
pub trait HostPlugin: Sized {
    /// A plugin view on a host of its own ([`Shared::default`]).
    fn new(
        name: impl Into<String>,
        storage_dir: impl Into<PathBuf>,
        settings: BTreeMap<String, toml::Table>,
        events: Events,
    ) -> Self;
    /// A plugin view that sees its host's [`Shared`] settings and services.
    fn with_shared(
        name: impl Into<String>,
        storage_dir: impl Into<PathBuf>,
        settings: BTreeMap<String, toml::Table>,
        events: Events,
        shared: Shared,
    ) -> Self;
    /// The next version of this plugin for a live reload: the same name, storage,
    /// event queues and host, new settings; a [`Standing::Candidate`](crate::Standing)
    /// until the host makes it current.
    fn successor(&self, settings: BTreeMap<String, toml::Table>) -> Self;
    /// Moves this version to `standing` (the host does, around a reload).
    fn set_standing(&self, standing: crate::Standing);
}

/// Making a plugin's event queues, taking events out and closing them.
pub trait HostEvents: Sized {
    /// Empty queues that hold at most `capacity` events per source, charged to a
    /// default budget ([`crate::DEFAULT_HOST_MEMORY`]).
    fn new(capacity: usize) -> Self;
    /// Empty queues that hold at most `capacity` events per source; queued events
    /// are charged to `budget`, the plugin's host memory budget.
    fn with_budget(capacity: usize, budget: Budget) -> Self;
    /// Takes the next event, taking sources in turn; waits up to `timeout` for one.
    fn next(&self, timeout: Duration) -> Next;
    /// [`HostEvents::next`] without waiting, and without reading the clock.
    fn try_next(&self) -> Next;
    /// Closes the queues: waiting and later [`HostEvents::next`] calls return
    /// [`Next::Closed`], later posts are refused, and queued events are dropped
    /// (their budget released). The waker is told.
    fn close(&self);
    /// Sets what is told after every post and at close (once per queues; the
    /// waker already set is returned otherwise).
    fn set_waker(&self, waker: Arc<dyn Waker>) -> Result<(), Arc<dyn Waker>>;
    /// The waker [`HostEvents::set_waker`] set, if any.
    fn waker(&self) -> Option<Arc<dyn Waker>>;
}

/// What a scheduler gives a plugin's event queues to be told of new work: called
/// after each post (outside the queues' lock) and when they close. Must be cheap
/// and must not block.
pub trait Waker: std::any::Any + Send + Sync {
    /// New work (an event) for the plugin.
    fn wake(&self);
    /// The queues closed: every instance must stop.
    fn closed(&self) {
        self.wake()
    }
}

/// Making a host's [`Shared`] settings and services.
pub trait HostShared: Sized {
    /// Shared state with these host-level settings sections.
    fn new(settings: BTreeMap<String, toml::Table>) -> Self;
}
