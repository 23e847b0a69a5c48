//! The view of a plugin that capabilities get.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use crate::{Events, Shared};

/// Where one version of a plugin stands. A live reload (`pulp ctl reload`) makes a
/// new version beside the serving one: it is a candidate while its `pulp_init` runs,
/// and takes over (current) only when that succeeds; the old version is then retired.
/// A candidate whose init failed is abandoned and never served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    /// Serving: the plugin's routes and events go to it.
    Current,
    /// Being initialised beside the current version; serves nothing yet.
    Candidate,
    /// Replaced by a newer version after serving.
    Retired,
    /// A candidate that failed to initialise; it never served.
    Abandoned,
}

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
    standing: AtomicU8,
}

const STANDINGS: [Standing; 4] = [
    Standing::Current,
    Standing::Candidate,
    Standing::Retired,
    Standing::Abandoned,
];

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
        let name = name.into();
        events.name_plugin(&name);
        Plugin(Arc::new(Inner {
            name,
            storage_dir: storage_dir.into(),
            settings,
            events,
            shared,
            standing: AtomicU8::new(0),
        }))
    }

    fn successor(&self, settings: BTreeMap<String, toml::Table>) -> Plugin {
        Plugin(Arc::new(Inner {
            name: self.0.name.clone(),
            storage_dir: self.0.storage_dir.clone(),
            settings,
            events: self.0.events.clone(),
            shared: self.0.shared.clone(),
            standing: AtomicU8::new(1),
        }))
    }

    fn set_standing(&self, standing: Standing) {
        let i = STANDINGS.iter().position(|s| *s == standing).unwrap_or(0);
        self.0.standing.store(i as u8, Ordering::SeqCst);
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

    /// Where this version of the plugin stands (see [`Standing`]): a capability
    /// serves requests only to the current version, and lets routes of a retired or
    /// abandoned one go.
    pub fn standing(&self) -> Standing {
        STANDINGS[self.0.standing.load(Ordering::SeqCst) as usize % STANDINGS.len()]
    }

    /// Whether `other` is the same version of the same plugin (not only the same
    /// plugin: a reload's candidate shares its queues with the current version).
    pub fn same_version(&self, other: &Plugin) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
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
