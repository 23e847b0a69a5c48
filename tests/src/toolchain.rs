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

/// `pdk/rust/build-wasm` building the Rust plugins of the cargo workspace `manifest`
/// for wasm32-wasip1 (rustup's target, or Debian's rustc-web with -Zbuild-std); it
/// exits 3 when neither toolchain is installed.
pub fn rust_wasm(root: &Path, manifest: &Path) -> Command {
    let mut c = Command::new("bash");
    c.arg(root.join("pdk/rust/build-wasm")).arg(manifest);
    c
}

/// Runs a build: false when the tool is not installed (or, like `build-wasm`, exits
/// 3 to say so); a failed build panics with its output.
pub fn build(cmd: &mut Command) -> bool {
    match cmd.output() {
        Ok(o) if o.status.success() => true,
        Ok(o) if o.status.code() == Some(3) => {
            eprintln!("{}", String::from_utf8_lossy(&o.stderr));
            false
        }
        Ok(o) => panic!(
            "build failed: {cmd:?}\n{}",
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => panic!("{cmd:?}: {e}"),
    }
}

/// The image Docker tests run: a busybox rootfs imported from Debian's `busybox-static`.
pub const TEST_IMAGE: &str = "pulp-test/busybox:1";

/// True when a Docker engine answers and [`TEST_IMAGE`] is on it, making the image
/// (from `/bin/busybox`) when it is missing. False when there is no engine or no busybox.
pub fn docker_ready() -> bool {
    static READY: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *READY.get_or_init(|| {
        let ok = |c: &mut Command| c.output().is_ok_and(|o| o.status.success());
        if !ok(Command::new("docker").arg("info")) {
            return false;
        }
        if ok(Command::new("docker").args(["image", "inspect", TEST_IMAGE])) {
            return true;
        }
        let busybox = Path::new("/bin/busybox");
        if !busybox.exists() {
            return false;
        }
        let dir = std::env::temp_dir().join(format!("pulp-busybox-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for d in ["bin", "tmp", "etc"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        std::fs::copy(busybox, dir.join("bin/busybox")).unwrap();
        for applet in [
            "sh", "echo", "cat", "sleep", "ls", "env", "true", "false", "wget", "nc", "printf",
        ] {
            std::os::unix::fs::symlink("busybox", dir.join("bin").join(applet)).unwrap();
        }
        std::fs::write(dir.join("etc/passwd"), "root:x:0:0:root:/:/bin/sh\n").unwrap();
        let made = ok(Command::new("sh").arg("-c").arg(format!(
            "tar -C {} -c . | docker import - {TEST_IMAGE}",
            dir.display()
        )));
        let _ = std::fs::remove_dir_all(&dir);
        made
    })
}

/// [`docker_ready`], or else `skip` (loud; it fails under `PULP_REQUIRE_ALL=1`), and a
/// failure under `PULP_REQUIRE_DOCKER=1`.
pub fn docker_or_skip(skip: fn(&str)) -> bool {
    if docker_ready() {
        return true;
    }
    if std::env::var("PULP_REQUIRE_DOCKER").is_ok_and(|v| v == "1") {
        panic!(
            "PULP_REQUIRE_DOCKER=1 but no Docker engine answers (or the test image cannot be made)"
        );
    }
    skip("a Docker engine (apt-get install docker.io busybox-static; dockerd)");
    false
}

/// Container ids labelled with plugin `name` (`docker ps -aq`), by the engine's own CLI.
pub fn containers_of(name: &str) -> Vec<String> {
    let o = Command::new("docker")
        .args(["ps", "-aq", "--no-trunc", "--filter"])
        .arg(format!("label=pulp.plugin={name}"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}
