//! What capabilities share across every plugin of one host.

use std::any::{Any, TypeId};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Host-wide settings and services shared by every plugin of one host (one per
/// `pulp_host::Host`; cheap to clone).
///
/// Settings are tables by section name, given by the embedder or the program's flags
/// (the HTTP listener reads section `"http"`). Services are values a capability
/// starts once, on first use, and that live until the host is dropped (the HTTP
/// listener); keep them here, never in globals, so that two hosts in one process
/// never share one.
///
/// ```
/// use pulp_ext::host::HostShared;
/// let shared = pulp_ext::Shared::new(Default::default());
/// let a = shared.service(|| Ok::<_, String>(41_u32)).unwrap();
/// let b = shared.service(|| Ok::<_, String>(0_u32)).unwrap();
/// assert_eq!((*a, *b), (41, 41)); // started once
/// ```
#[derive(Clone, Default)]
pub struct Shared(Arc<Inner>);

#[derive(Default)]
struct Inner {
    settings: BTreeMap<String, toml::Table>,
    services: Mutex<Vec<(TypeId, Arc<dyn Any + Send + Sync>)>>,
}

impl crate::host::HostShared for Shared {
    fn new(settings: BTreeMap<String, toml::Table>) -> Shared {
        Shared(Arc::new(Inner {
            settings,
            services: Mutex::new(Vec::new()),
        }))
    }
}

impl Shared {
    /// The host-level settings section `section`, if given.
    pub fn settings(&self, section: &str) -> Option<&toml::Table> {
        self.0.settings.get(section)
    }

    /// The service of type `T`, started by `start` if this host has none yet. A
    /// failed start is returned and retried on the next call.
    pub fn service<T: Any + Send + Sync, E>(
        &self,
        start: impl FnOnce() -> Result<T, E>,
    ) -> Result<Arc<T>, E> {
        let mut services = self.0.services.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = find::<T>(&services) {
            return Ok(s);
        }
        let s = Arc::new(start()?);
        services.push((TypeId::of::<T>(), s.clone()));
        Ok(s)
    }

    /// The service of type `T`, if one was started.
    pub fn get<T: Any + Send + Sync>(&self) -> Option<Arc<T>> {
        find(&self.0.services.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

fn find<T: Any + Send + Sync>(services: &[(TypeId, Arc<dyn Any + Send + Sync>)]) -> Option<Arc<T>> {
    let id = TypeId::of::<T>();
    services
        .iter()
        .find(|(t, _)| *t == id)
        .and_then(|(_, s)| s.clone().downcast().ok())
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("settings", &self.0.settings)
            .finish_non_exhaustive()
    }
}
