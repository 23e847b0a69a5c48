//! The view of a plugin that capabilities get.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::{Events, Shared};

/// What a capability may see of a plugin: its name, its `[capability."x"]` settings,
/// its storage folder and its event queues. Cheap to clone.
#[derive(Clone)]
pub struct Plugin(Arc<Inner>);

struct Inner {
    name: String,
    storage_dir: PathBuf,
    settings: BTreeMap<String, toml::Table>,
    events: Events,
    shared: Shared,
}

impl crate::host::HostPlugin for Plugin {
    fn new(
        name: impl Into<String>,
        storage_dir: impl Into<PathBuf>,
        settings: BTreeMap<String, toml::Table>,
        events: Events,
    ) -> Plugin {
        Plugin::with_shared(name, storage_dir, settings, events, Shared::default())
    }

    fn with_shared(
        name: impl Into<String>,
        storage_dir: impl Into<PathBuf>,
        settings: BTreeMap<String, toml::Table>,
        events: Events,
        shared: Shared,
    ) -> Plugin {
        Plugin(Arc::new(Inner {
            name: name.into(),
            storage_dir: storage_dir.into(),
            settings,
            events,
            shared,
        }))
    }
}

impl Plugin {
    /// The manifest's `name`.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// This plugin's own folder, `<storage-root>/<name>`. Not created until a capability needs it.
    pub fn storage_dir(&self) -> &Path {
        &self.0.storage_dir
    }

    /// Creates (if needed) and returns `<storage-root>/<name>/<sub>`, private to this
    /// user (0700) like the plugin's own folder; `sub` may be empty.
    pub fn create_storage_dir(&self, sub: &str) -> std::io::Result<PathBuf> {
        let dir = if sub.is_empty() {
            self.0.storage_dir.clone()
        } else {
            self.0.storage_dir.join(sub)
        };
        create_private_dir(&dir)?;
        Ok(dir)
    }

    /// The manifest's `[capability."<capability>"]` table, if it has one.
    pub fn settings(&self, capability: &str) -> Option<&toml::Table> {
        self.0.settings.get(capability)
    }

    /// Every `[capability."x"]` table of the manifest, by capability name.
    pub fn all_settings(&self) -> &BTreeMap<String, toml::Table> {
        &self.0.settings
    }

    /// The plugin's event queues: post here to have an event delivered by `pulp_step`.
    pub fn events(&self) -> &Events {
        &self.0.events
    }

    /// The plugin's host memory budget (`[limits] host_memory_mb`): charge every
    /// buffer the host keeps for the plugin or its clients before building it.
    pub fn budget(&self) -> &crate::Budget {
        self.0.events.budget()
    }

    /// The host-wide settings and services of the host this plugin runs on.
    pub fn shared(&self) -> &Shared {
        &self.0.shared
    }
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.0.name)
            .finish_non_exhaustive()
    }
}

/// Creates `dir` and its missing parents with mode 0700 (on Unix).
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
}
