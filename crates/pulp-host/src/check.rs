//! `pulp check`: every problem of a plugin, found without running it.

use std::path::Path;

use pulp_ext::{Events, Plugin as View};

use crate::{cache, inspect, Host, Manifest, Registry};

/// Validates the manifest at `path`, compiles its module, and compares the module's
/// imports and exports with the contract and the declared capabilities. Returns
/// every problem found (none means the plugin would load).
pub fn check(host: &Host, path: &Path, registry: &Registry) -> Vec<String> {
    let manifest = match Manifest::load(path) {
        Ok(m) => m,
        Err(e) => return vec![e.to_string()],
    };
    let wasm = match std::fs::read(&manifest.wasm) {
        Ok(w) => w,
        Err(e) => {
            return vec![format!(
                "cannot read module {}: {e}",
                manifest.wasm.display()
            )]
        }
    };
    let module = match cache::load(host.engine(), &wasm, host.config().cache_dir.as_deref()) {
        Ok((m, _)) => m,
        Err(e) => {
            return vec![format!(
                "module {} does not compile: {e:#}",
                manifest.wasm.display()
            )]
        }
    };
    let view = View::new(
        manifest.name.clone(),
        host.config().storage_root.join(&manifest.name),
        manifest.settings.clone(),
        Events::new(1),
    );
    let mut problems = inspect::export_problems(&module);
    if let Err(p) = inspect::plan(&module, &manifest, &view, Some(registry), true) {
        problems.extend(p);
    }
    problems
}
