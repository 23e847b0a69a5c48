//! `pulp new`: a plugin skeleton (manifest + source) that passes `pulp check`.

use std::path::{Path, PathBuf};

/// The language of a new plugin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    /// WebAssembly text: runs as written, no compiler needed.
    Wat,
    /// C with `pulp.h` (copied next to it), built with clang for wasm32-wasi.
    C,
    /// Rust with the `pulp-pdk` crate (copied next to it), built for wasm32-wasip1.
    Rust,
    /// Go with the `pulp.dev/pdk` package (copied next to it), built for wasip1.
    Go,
}

const WAT: &str = include_str!("../templates/plugin.wat");
const C: &str = include_str!("../templates/plugin.c");
const HEADER: &str = include_str!("../../../pdk/c/pulp.h");
const RUST_CARGO: &str = include_str!("../templates/rust/Cargo.toml");
const RUST_LIB: &str = include_str!("../templates/rust/lib.rs");

/// The Rust SDK's files, copied into a Rust skeleton as `pulp-pdk/`.
macro_rules! pdk_files {
    ($($f:literal),*) => {
        &[$(($f, include_str!(concat!("../../../pdk/rust/", $f)))),*]
    };
}
const PDK: &[(&str, &str)] = pdk_files!(
    "Cargo.toml",
    "README.md",
    "src/lib.rs",
    "src/sys.rs",
    "src/calls.rs",
    "src/mem.rs",
    "src/msgpack.rs",
    "src/status.rs",
    "src/event.rs",
    "src/log.rs",
    "src/entropy.rs",
    "src/sqlite.rs",
    "src/fs.rs",
    "src/http.rs",
    "src/ws.rs",
    "src/sse.rs",
    "src/docker.rs"
);

const GO_MOD: &str = include_str!("../templates/go/go.mod");
const GO_MAIN: &str = include_str!("../templates/go/main.go");

/// The Go SDK's files, copied into a Go skeleton as `pulp-pdk/`.
const GO_PDK: &[(&str, &str)] = &[
    ("go.mod", include_str!("../../../pdk/go/go.mod")),
    ("pdk.go", include_str!("../../../pdk/go/pdk.go")),
    ("api.go", include_str!("../../../pdk/go/api.go")),
    ("msgpack.go", include_str!("../../../pdk/go/msgpack.go")),
    (
        "exports_wasm.go",
        include_str!("../../../pdk/go/exports_wasm.go"),
    ),
    (
        "imports_wasm.go",
        include_str!("../../../pdk/go/imports_wasm.go"),
    ),
    (
        "imports_other.go",
        include_str!("../../../pdk/go/imports_other.go"),
    ),
];

/// The wasm file cargo makes of a Rust skeleton named `name`.
fn rust_wasm_path(name: &str) -> String {
    format!(
        "target/wasm32-wasip1/release/{}.wasm",
        rust_crate(name).replace('-', "_")
    )
}

/// A plugin name as a crate name (no dots).
fn rust_crate(name: &str) -> String {
    name.replace('.', "_")
}
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
    let (wasm, files): (String, Vec<(String, String)>) = match lang {
        Lang::Wat => {
            let started = format!("{name}: started");
            let stopping = format!("{name}: shutting down");
            let src = WAT
                .replace("{{started_len}}", &started.len().to_string())
                .replace("{{stopping_len}}", &stopping.len().to_string())
                .replace("{{name}}", name);
            ("plugin.wat".into(), vec![("plugin.wat".into(), src)])
        }
        Lang::C => (
            "plugin.wasm".into(),
            vec![
                ("plugin.c".into(), C.replace("{{name}}", name)),
                ("pulp.h".into(), HEADER.to_string()),
            ],
        ),
        Lang::Rust => {
            let mut files = vec![
                (
                    "Cargo.toml".to_string(),
                    RUST_CARGO
                        .replace("{{name}}", name)
                        .replace("{{crate}}", &rust_crate(name)),
                ),
                ("src/lib.rs".into(), RUST_LIB.replace("{{name}}", name)),
            ];
            files.extend(
                PDK.iter()
                    .map(|(f, text)| (format!("pulp-pdk/{f}"), text.to_string())),
            );
            (rust_wasm_path(name), files)
        }
        Lang::Go => {
            let mut files = vec![
                ("go.mod".to_string(), GO_MOD.replace("{{name}}", name)),
                ("main.go".into(), GO_MAIN.replace("{{name}}", name)),
            ];
            files.extend(
                GO_PDK
                    .iter()
                    .map(|(f, text)| (format!("pulp-pdk/{f}"), text.to_string())),
            );
            ("plugin.wasm".into(), files)
        }
    };
    let manifest = format!(
        "# The {name} plugin. Declare capabilities as it needs them, e.g.\n\
         # capabilities = [\"storage.sqlite\", \"transport.http.inbound\"]\n\
         name = \"{name}\"\nversion = \"0.1.0\"\nwasm = \"{wasm}\"\n\n[config]\ngreeting = \"hello\"\n"
    );
    let mut written = Vec::new();
    for (file, text) in std::iter::once(("pulp.plugin.toml".to_string(), manifest)).chain(files) {
        let path = dir.join(file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}
