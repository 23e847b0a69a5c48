//! Building guest plugins from source with the toolchains the tests use. Shared by
//! the `pulp-tests` crate and the `pulp` program's process tests (included by path).

use std::path::Path;
use std::process::Command;

/// `clang` building the C plugin `source` into the wasm32-wasi reactor `out`, with
/// `pdk/c` (under the workspace `root`) on the include path and warnings as errors.
pub fn clang(root: &Path, source: &Path, out: &Path) -> Command {
    let mut c = Command::new("clang");
    c.args([
        "--target=wasm32-wasi",
        "-mexec-model=reactor",
        "-O2",
        "-Wall",
        "-Wextra",
        "-Werror",
    ])
    .arg("-I")
    .arg(root.join("pdk/c"))
    .arg("-o")
    .arg(out)
    .arg(source);
    c
}

/// `go build` of the Go plugin in `dir` into the wasip1 `-buildmode=c-shared` module `out`.
pub fn go(dir: &Path, out: &Path) -> Command {
    let mut c = Command::new("go");
    c.args(["build", "-buildmode=c-shared", "-o"])
        .arg(out)
        .arg(".")
        .current_dir(dir)
        .env("GOOS", "wasip1")
        .env("GOARCH", "wasm");
    c
}

/// Runs a build: false when the tool is not installed; a failed build panics with its output.
pub fn build(cmd: &mut Command) -> bool {
    match cmd.output() {
        Ok(o) if o.status.success() => true,
        Ok(o) => panic!(
            "build failed: {cmd:?}\n{}",
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => panic!("{cmd:?}: {e}"),
    }
}
