//! What can go wrong loading, calling and restarting a plugin. Every message
//! names the plugin (and the export, for calls).

use std::path::PathBuf;

/// A plugin could not be loaded. Every message names the plugin.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The module file could not be read.
    #[error("plugin \"{plugin}\": cannot read module {}: {cause}", path.display())]
    Read {
        /// The plugin.
        plugin: String,
        /// The module's path.
        path: PathBuf,
        /// The I/O error (in the message, so not also a `source()`).
        cause: std::io::Error,
    },
    /// The module's digest is not the one the manifest pins (`wasm_sha256`), or it
    /// pins none and the host requires pinned modules.
    #[error("plugin \"{plugin}\": {message}")]
    Pin {
        /// The plugin.
        plugin: String,
        /// Both digests, or why an unpinned module is refused.
        message: String,
    },
    /// The module is not valid wasm (or WAT).
    #[error("plugin \"{plugin}\": module {} does not compile: {message}", path.display())]
    Compile {
        /// The plugin.
        plugin: String,
        /// The module's path.
        path: PathBuf,
        /// The compiler's message.
        message: String,
    },
    /// The module does not fit the contract or the host; every problem is listed.
    #[error("plugin \"{plugin}\" cannot load: {}", problems.join("; "))]
    Rejected {
        /// The plugin.
        plugin: String,
        /// Each problem found.
        problems: Vec<String>,
    },
    /// Instantiating the module (or a capability's attach) failed.
    #[error("plugin \"{plugin}\": instantiation failed: {message}")]
    Instantiate {
        /// The plugin.
        plugin: String,
        /// What failed.
        message: String,
    },
}

/// A call into the plugin failed. Every message names the plugin and the export.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The guest trapped (or ran out of memory or fuel).
    #[error("plugin \"{plugin}\": {export} trapped: {message}")]
    Trap {
        /// The plugin.
        plugin: String,
        /// The export that was called.
        export: &'static str,
        /// The trap.
        message: String,
    },
    /// The call ran past its deadline and was interrupted.
    #[error(
        "plugin \"{plugin}\": {export} ran past its {limit_ms} ms deadline and was interrupted"
    )]
    Timeout {
        /// The plugin.
        plugin: String,
        /// The export that was called.
        export: &'static str,
        /// The deadline, in ms.
        limit_ms: u64,
    },
    /// The host interrupted the call because it is stopping.
    #[error("plugin \"{plugin}\": {export} was interrupted because the host is stopping")]
    Interrupted {
        /// The plugin.
        plugin: String,
        /// The export that was called.
        export: &'static str,
    },
    /// The export returned a failure code.
    #[error("plugin \"{plugin}\": {export} returned {code}")]
    Returned {
        /// The plugin.
        plugin: String,
        /// The export that was called.
        export: &'static str,
        /// The code it returned.
        code: i32,
    },
    /// The host could not hand the guest its input.
    #[error("plugin \"{plugin}\": {export}: {message}")]
    Input {
        /// The plugin.
        plugin: String,
        /// The export that was to be called.
        export: &'static str,
        /// What went wrong.
        message: String,
    },
    /// The guest's `pulp_alloc` could not take the call's input (it returned 0 or
    /// an address outside memory, or trapped, or the input is larger than the
    /// plugin's whole `memory_mb`). For a step this is the event's fault, not the
    /// plugin's: the runtime refuses the event to its sender (413, close 1009) and
    /// does not count it as a failure; when `trapped`, the instance is replaced.
    #[error("plugin \"{plugin}\": {export}: the input does not fit the guest: {message}")]
    Refused {
        /// The plugin.
        plugin: String,
        /// The export that was to be called.
        export: &'static str,
        /// What went wrong.
        message: String,
        /// Whether `pulp_alloc` trapped (the instance must be replaced).
        trapped: bool,
    },
    /// The plugin has no live instance (its last instantiation failed).
    #[error("plugin \"{plugin}\" has no live instance")]
    Dead {
        /// The plugin.
        plugin: String,
    },
}

/// A restart failed: the new instance did not instantiate, or its `pulp_init` failed.
#[derive(Debug, thiserror::Error)]
pub enum RestartError {
    /// Instantiation failed.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// `pulp_init` failed.
    #[error(transparent)]
    Init(#[from] CallError),
}
