//! The deployment example end to end: `pulp-greet`, the `pulp` program plus the
//! `demo.greet` capability, runs a plugin that greets from `pulp_init`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

fn example(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(file)
}

/// `pulp-greet ARGS` with its storage and cache in `dir`.
fn pulp_greet(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pulp-greet"));
    cmd.args(args)
        .arg("--storage-root")
        .arg(dir.join("data"))
        .arg("--cache-dir")
        .arg(dir.join("cache"));
    cmd
}

/// Waits for `child` to end, killing it after `limit`.
fn wait(mut child: Child, limit: Duration) -> Output {
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        if rx.recv_timeout(limit).is_err() {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    });
    child.stdin.take();
    let out = child.wait_with_output().unwrap();
    let _ = tx.send(());
    out
}

#[test]
fn the_plugin_greets_through_the_linked_capability_then_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = example("plugin/pulp.plugin.toml");
    let mut child = pulp_greet(dir.path(), &["run", manifest.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let line = rx.recv_timeout(Duration::from_secs(60));
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let out = wait(child, Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        line.as_deref(),
        Ok("[demo.greet] plugin=greeter hello, world!"),
        "stderr: {stderr}"
    );
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
}

#[test]
fn caps_lists_demo_greet_beside_every_default_capability() {
    let dir = tempfile::tempdir().unwrap();
    let out = pulp_greet(dir.path(), &["caps"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("demo.greet [Gated]\n  pulp.demo_greet(i32, i32) -> i32\n"),
        "{text}"
    );
    for cap in [
        "core",
        "logging",
        "entropy",
        "storage.sqlite",
        "storage.fs",
        "transport.http.outbound",
        "transport.http.inbound",
        "transport.ws.inbound",
        "transport.sse",
        "spawn.docker",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(&format!("{cap} ["))),
            "{cap}: {text}"
        );
    }
}

#[test]
fn an_undeclared_demo_greet_is_99_and_fails_the_init() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("pulp.plugin.toml");
    let wasm = example("plugin/greet.wat");
    std::fs::write(
        &manifest,
        format!(
            "name = \"undeclared\"\nversion = \"0.1.0\"\nwasm = {:?}\n[config]\nname = \"world\"\n",
            wasm.to_str().unwrap()
        ),
    )
    .unwrap();
    let child = pulp_greet(dir.path(), &["run", manifest.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = wait(child, Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("pulp_init returned 99"), "{stderr}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("hello"));
}
