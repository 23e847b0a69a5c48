//! The capabilities this host offers: every `inventory` registration, plus any
//! the embedder adds (the Go host's `NewRegistry`, `Always`, `Gated`).

use std::sync::Arc;

use pulp_ext::host::AnyCapability;
use pulp_ext::{Binding, Import};

/// Two capabilities clash.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// Two capabilities share a name or alias.
    #[error("two capabilities are named \"{0}\"; capability names must be unique")]
    DuplicateName(String),
    /// Two capabilities provide the same import.
    #[error("capabilities \"{first}\" and \"{second}\" both provide the import pulp.{import}")]
    DuplicateImport {
        /// The import both provide.
        import: String,
        /// The capability registered first.
        first: String,
        /// The capability registered second.
        second: String,
    },
}

/// One capability and how it is bound.
#[derive(Clone)]
pub struct Entry {
    /// The capability.
    pub capability: Arc<dyn AnyCapability>,
    /// Bound for every plugin, or only when declared.
    pub binding: Binding,
    /// Its imports, as it declared them when it joined the registry.
    pub imports: Vec<Import>,
}

/// The capabilities a host offers, in a deterministic order (by name).
#[derive(Clone, Default)]
pub struct Registry {
    entries: Vec<Entry>,
}

impl Registry {
    /// Every capability linked into this program (through `inventory`), bound as each says.
    pub fn new() -> Result<Registry, RegistryError> {
        let mut all: Vec<Arc<dyn AnyCapability>> = pulp_ext::registered().collect();
        all.push(Arc::new(crate::core::Core));
        all.sort_by_key(|c| c.name());
        let mut r = Registry::empty();
        for c in all {
            let binding = c.binding();
            r.add(c, binding)?;
        }
        Ok(r)
    }

    /// A registry with no capabilities at all.
    pub fn empty() -> Registry {
        Registry::default()
    }

    /// Adds a capability bound for every plugin.
    pub fn always(
        &mut self,
        capability: Arc<dyn AnyCapability>,
    ) -> Result<&mut Registry, RegistryError> {
        self.add(capability, Binding::Always)
    }

    /// Adds a capability bound only for plugins that declare it.
    pub fn gated(
        &mut self,
        capability: Arc<dyn AnyCapability>,
    ) -> Result<&mut Registry, RegistryError> {
        self.add(capability, Binding::Gated)
    }

    fn add(
        &mut self,
        capability: Arc<dyn AnyCapability>,
        binding: Binding,
    ) -> Result<&mut Registry, RegistryError> {
        for name in names(&*capability) {
            if self.find(name).is_some() {
                return Err(RegistryError::DuplicateName(name.to_string()));
            }
        }
        let imports = capability.imports();
        for import in &imports {
            if let Some((owner, _)) = self.provider(import.name) {
                return Err(RegistryError::DuplicateImport {
                    import: import.name.to_string(),
                    first: owner.capability.name().to_string(),
                    second: capability.name().to_string(),
                });
            }
        }
        self.entries.push(Entry {
            capability,
            binding,
            imports,
        });
        Ok(self)
    }

    /// Every capability, in order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The capability with this name or alias.
    pub fn find(&self, name: &str) -> Option<&Entry> {
        self.entries
            .iter()
            .find(|e| names(&*e.capability).any(|n| n == name))
    }

    /// Every problem with host-level settings sections (`HostConfig::settings`): a
    /// section no capability of this registry reads (a misspelling, or a capability
    /// not linked) and each owner's own checks. Empty when all is well; `pulp run`
    /// and an embedder call it before starting the host.
    pub fn check_host_settings(
        &self,
        settings: &std::collections::BTreeMap<String, toml::Table>,
    ) -> Vec<String> {
        let mut owners: Vec<(&'static str, &Entry)> = Vec::new();
        for e in &self.entries {
            if let Some(s) = e.capability.host_section() {
                if !owners.iter().any(|(o, _)| *o == s) {
                    owners.push((s, e));
                }
            }
        }
        let mut problems = Vec::new();
        for (section, table) in settings {
            match owners.iter().find(|(o, _)| o == section) {
                Some((_, e)) => {
                    if let Err(p) = e.capability.check_host_section(table) {
                        problems.push(p);
                    }
                }
                None => {
                    let known: Vec<_> = owners.iter().map(|(o, _)| *o).collect();
                    problems.push(format!(
                        "host settings [{section}]: no capability of this host reads it (known sections: {})",
                        if known.is_empty() { "none".to_string() } else { known.join(", ") }
                    ));
                }
            }
        }
        problems
    }

    /// The capability that provides `pulp.<import>`, with the import's signature.
    pub fn provider(&self, import: &str) -> Option<(&Entry, &Import)> {
        self.entries
            .iter()
            .find_map(|e| e.imports.iter().find(|i| i.name == import).map(|i| (e, i)))
    }
}

fn names(c: &dyn AnyCapability) -> impl Iterator<Item = &'static str> {
    std::iter::once(c.name()).chain(c.aliases().iter().copied())
}
