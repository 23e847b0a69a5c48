//! `pulp new`: a plugin skeleton (manifest + source) that passes `pulp check`.

use std::path::{Path, PathBuf};

/// The language of a new plugin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    /// WebAssembly text: runs as written, no compiler needed.
    Wat,
    /// C with `pulp.h` (copied next to it), built with clang for wasm32-wasi.
    C,
}

const WAT: &str = include_str!("../templates/plugin.wat");
const C: &str = include_str!("../templates/plugin.c");
const HEADER: &str = include_str!("../../../pdk/c/pulp.h");

/// Writes a plugin named `name` into `dir` (created; it must be empty or absent) and
/// returns the files written. The name follows the manifest's rules.
pub fn new_plugin(dir: &Path, name: &str, lang: Lang) -> Result<Vec<PathBuf>, String> {
    if !crate::manifest::safe_name(name) {
        return Err(format!(
            "{name:?} is not a plugin name: use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        ));
    }
    if dir.read_dir().is_ok_and(|mut d| d.next().is_some()) {
        return Err(format!("{} exists and is not empty", dir.display()));
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let (wasm, files): (&str, Vec<(&str, String)>) = match lang {
        Lang::Wat => {
            let started = format!("{name}: started");
            let stopping = format!("{name}: shutting down");
            let src = WAT
                .replace("{{started_len}}", &started.len().to_string())
                .replace("{{stopping_len}}", &stopping.len().to_string())
                .replace("{{name}}", name);
            ("plugin.wat", vec![("plugin.wat", src)])
        }
        Lang::C => (
            "plugin.wasm",
            vec![
                ("plugin.c", C.replace("{{name}}", name)),
                ("pulp.h", HEADER.to_string()),
            ],
        ),
    };
    let manifest = format!(
        "# The {name} plugin. Declare capabilities as it needs them, e.g.\n\
         # capabilities = [\"storage.sqlite\", \"transport.http.inbound\"]\n\
         name = \"{name}\"\nversion = \"0.1.0\"\nwasm = \"{wasm}\"\n\n[config]\ngreeting = \"hello\"\n"
    );
    let mut written = Vec::new();
    for (file, text) in std::iter::once(("pulp.plugin.toml", manifest)).chain(files) {
        let path = dir.join(file);
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}
