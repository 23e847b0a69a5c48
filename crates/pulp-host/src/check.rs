//! `pulp check`: every problem of a plugin, found without running it, in one list.

use std::path::Path;

use pulp_ext::host::{HostEvents, HostPlugin};
use pulp_ext::{Events, Plugin as View};

use crate::{cache, inspect, Host, Manifest, ManifestError, Registry};

/// Validates the manifest at `path`, compiles its module, and compares the module's
/// imports and exports with the contract and the declared capabilities. Returns
/// every problem found (none means the plugin would load): the manifest's own, the
/// module's, and its capabilities' settings, all in one pass where the manifest
/// can be read at all.
pub fn check(host: &Host, path: &Path, registry: &Registry) -> Vec<String> {
    let (manifest, mut problems) = match Manifest::load_all(path) {
        Ok(found) => found,
        Err(ManifestError::Invalid { problems, .. }) => return problems,
        Err(e) => return vec![e.to_string()],
    };
    for secret in &manifest.secrets {
        if let Err(p) = secret.read() {
            problems.push(p);
        }
    }
    let module =
        match crate::manifest::read_regular(&manifest.wasm, crate::manifest::MAX_MODULE_BYTES) {
            Err(e) => {
                problems.push(format!(
                    "cannot read module {}: {e}",
                    manifest.wasm.display()
                ));
                None
            }
            Ok(wasm) => match manifest.pin_problem(&wasm, host.config().require_pinned) {
                Some(problem) => {
                    problems.push(problem);
                    None
                }
                None => match cache::load(host.engine(), &wasm, host.config().cache_dir.as_deref())
                {
                    Ok((m, _)) => Some(m),
                    Err(e) => {
                        problems.push(format!(
                            "module {} does not compile: {e:#}",
                            manifest.wasm.display()
                        ));
                        None
                    }
                },
            },
        };
    let view = View::new(
        manifest.name.clone(),
        host.config().storage_root.join(&manifest.name),
        manifest.settings.clone(),
        Events::new(1),
    );
    if let Some(m) = &module {
        problems.extend(inspect::export_problems(m));
    }
    if let Err(p) = inspect::plan(
        module.as_ref(),
        &manifest,
        &view,
        Some(registry),
        true,
        false,
    ) {
        problems.extend(p);
    }
    problems
}
