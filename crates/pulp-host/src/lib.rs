//! The Pulp plugin host: manifests, the capability [`Registry`], the [`Plugin`]
//! lifecycle, the [`Runtime`] that drives plugins, and the `pulp` program.
//!
//! ```no_run
//! use pulp_host::{Host, HostConfig, Manifest, Plugin, Registry};
//! let host = Host::new(HostConfig::default())?;
//! let registry = Registry::new()?;
//! let manifest = Manifest::load("examples/heartbeat/pulp.plugin.toml")?;
//! let mut plugin = Plugin::load(&host, &manifest, Some(&registry))?;
//! plugin.init()?;
//! plugin.step_event(None)?; // an idle tick
//! plugin.shutdown()?;
//! # Ok::<(), anyhow::Error>(())
//! ```

#![warn(missing_docs)]

pub mod admin;
pub mod cache;
mod calls;
mod check;
pub mod cli;
pub mod config;
pub mod control;
mod core;
mod envelope;
mod error;
mod host;
mod inspect;
mod limiter;
pub mod links;
mod manifest;
mod new;
mod plugin;
pub mod record;
mod registry;
pub mod replay;
mod runtime;
mod sched;
mod stdio;
mod wasi;
mod watch;

pub use check::check;
pub use host::{Host, HostConfig};
pub use manifest::{
    read_regular, sha256_hex, Limits, Manifest, ManifestError, Secret, SecretSource,
    MAX_MANIFEST_BYTES, MAX_MODULE_BYTES,
};
pub use new::{new_plugin, Lang};
pub use plugin::{CallError, Envelope, Interrupter, Lineage, LoadError, Plugin, RestartError};
pub use registry::{Entry, Registry, RegistryError};
pub use runtime::{Handle, Health, Report, Roster, Runtime, RuntimeConfig};

// `inventory` only sees crates that are linked: this library links each capability
// crate its features name, so `Registry::new()` in any program that depends on it
// (the `pulp` program, an embedder's) sees them. Each crate's capability type is
// public too, for a registry built by hand (`Registry::empty().gated(...)`).
#[cfg(feature = "docker")]
pub use ext_docker;
#[cfg(feature = "entropy")]
pub use ext_entropy;
#[cfg(feature = "fs")]
pub use ext_fs;
#[cfg(feature = "http")]
pub use ext_http;
#[cfg(feature = "logging")]
pub use ext_logging;
#[cfg(feature = "sqlite")]
pub use ext_sqlite;

/// The README's Rust examples, compiled as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
