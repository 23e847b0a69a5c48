//! What a Pulp capability is and what it may see of a plugin.
//!
//! - [`Capability`]: a named set of `pulp` imports, each declared once ([`Import::new`]
//!   with typed arguments: [`Str`], [`Bytes`], [`Msgpack`], [`Out`], ...), its
//!   [`Settings`] parsed once per plugin, attach / detach per instance; registered
//!   with [`register!`].
//! - [`Plugin`]: a capability's view of a plugin (name, settings, storage folder, events).
//! - [`State`]: the store data of every plugin instance.
//! - [`Shared`]: host-wide settings and services (the HTTP listener).
//! - [`Status`] and [`Error`]: the one status table of ABI §4.
//! - [`Budget`]: the bytes the host holds for a plugin, charged before they are built.
//! - [`mem`] and [`msgpack`]: the only way capabilities touch guest memory and msgpack.
//!
//! What only the host calls (building views and store data, taking events) is in
//! [`host`]. Every crate of the workspace links the one wasmtime re-exported here.

#![warn(missing_docs)]

mod budget;
mod capability;
mod events;
pub mod host;
mod import;
pub mod mem;
pub mod metrics;
pub mod msgpack;
mod plugin;
mod shared;
mod state;
mod status;
pub mod tape;
mod text;

pub use budget::{Budget, Charge, OverBudget, DEFAULT_HOST_MEMORY};
pub use capability::{from_table, registered, status, Binding, Capability, Settings, Ty};
pub use events::{Event, Events, PostError};
pub use import::{Arg, Bytes, BytesMut, Handler, Import, Msgpack, Out, OutBytes, Str};
pub use plugin::{create_private_dir, Plugin, Standing};
pub use shared::Shared;
pub use state::{Slot, State};
pub use status::{Error, Status};
pub use text::log_text;

#[doc(hidden)]
pub use capability::Registration;
#[doc(hidden)]
pub use inventory;
pub use toml;
pub use wasmtime;
pub use wasmtime_wasi;

/// The one tokio runtime capabilities wait on (HTTP, Docker): two worker threads,
/// started on first use. A host function blocks its plugin's thread on it with a
/// deadline (`runtime().block_on(tokio::time::timeout(..))`), never a tokio worker.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("pulp-io")
            .enable_all()
            .build()
            .expect("cannot start the shared tokio runtime")
    })
}
