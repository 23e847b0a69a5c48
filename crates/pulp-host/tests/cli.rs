//! The `pulp` program end to end, as a process.

mod support;

use support::{guest, plugin, pulp, root, Running};

#[test]
fn run_heartbeat_until_sigterm_then_shut_down_with_probes() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = pulp(dir.path());
    cmd.arg("run")
        .arg(root().join("examples/heartbeat/pulp.plugin.toml"));
    let mut p = Running::start(cmd);
    p.wait_for("hello from manifest");
    p.wait_for("heartbeat: tick 0");
    p.signal("TERM");
    let (status, out) = p.exit_within(30);
    assert!(status.success(), "{status}\n{out}");
    assert!(out.contains("heartbeat: shutting down"), "{out}");
    assert!(out.contains("probe_config_marker=424242"), "{out}");
    assert!(out.contains("probe_last_call="), "{out}");
    assert!(out.contains("shut down plugin=\"heartbeat\""), "{out}");

    // A second start loads the compiled module from the cache.
    let mut cmd = pulp(dir.path());
    cmd.arg("run")
        .arg(root().join("examples/heartbeat/pulp.plugin.toml"));
    let mut p = Running::start(cmd);
    let started = p.wait_for("plugin started");
    assert!(started.contains("module=Cached"), "{started}");
    p.signal("INT");
    assert!(p.exit_within(30).0.success());
}

#[test]
fn a_guest_stuck_in_a_step_does_not_prevent_exit() {
    let dir = tempfile::tempdir().unwrap();
    let m = plugin(
        dir.path(),
        "stuck",
        &guest("hostile/loop_in_step.wat"),
        "[limits]\ncall_timeout_ms = 3600000",
    );
    let mut cmd = pulp(dir.path());
    cmd.args(["run", "--stop-grace-ms", "200"]).arg(m);
    let mut p = Running::start(cmd);
    p.wait_for("plugin started");
    std::thread::sleep(std::time::Duration::from_millis(100));
    p.signal("TERM");
    let (status, out) = p.exit_within(30);
    assert!(out.contains("interrupting it"), "{out}");
    assert!(
        status.success(),
        "the step was interrupted, then pulp_shutdown ran: {out}"
    );
}

#[test]
fn init_failure_exits_non_zero_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let m = plugin(
        dir.path(),
        "spin",
        &guest("hostile/loop_in_init.wat"),
        "[limits]\ninit_timeout_ms = 100",
    );
    let mut cmd = pulp(dir.path());
    cmd.arg("run").arg(m);
    let (status, out) = Running::start(cmd).exit_within(30);
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(
        out.contains("plugin \"spin\": pulp_init ran past its 100 ms deadline"),
        "{out}"
    );
}

#[test]
fn check_passes_a_good_plugin_and_lists_every_problem_of_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let out = pulp(dir.path())
        .arg("check")
        .arg(root().join("examples/heartbeat/pulp.plugin.toml"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).ends_with(": ok\n"));

    let wat = r#"(module
      (import "pulp" "teleport" (func (param i32) (result i32)))
      (import "pulp" "test_record" (func (param i32 i32) (result i32)))
      (memory (export "memory") 1)
      (func (export "pulp_init") (param i32 i32) (result i32) (i32.const 0))
      (func (export "pulp_step") (param i32) (result i32) (i32.const 0)))"#;
    let m = plugin(dir.path(), "bad", wat, "capabilities = [\"telepathy\"]\n");
    let out = pulp(dir.path()).arg("check").arg(&m).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "missing required exports: pulp_alloc, pulp_shutdown",
        "export \"pulp_step\" has type (i32) -> i32, expected (i32, i32) -> i32",
        "declares unknown capability \"telepathy\"",
        "imports pulp.teleport, which no capability of this host provides",
        "imports pulp.test_record, which no capability of this host provides",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
}

#[test]
fn check_reports_a_module_that_does_not_compile() {
    let dir = tempfile::tempdir().unwrap();
    let m = plugin(dir.path(), "syntax", "(module", "");
    let out = pulp(dir.path()).arg("check").arg(&m).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("1 problem(s)") && text.contains("plugin.wat does not compile"),
        "{text}"
    );
}

#[test]
fn caps_lists_every_capability_with_its_imports() {
    let dir = tempfile::tempdir().unwrap();
    let out = pulp(dir.path()).arg("caps").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "core [Always]",
        "  pulp.last_error(i32, i32) -> i32",
        "entropy [Always] (alias entropy.read)",
        "  pulp.entropy_fill(i32, i32) -> i32",
        "  pulp.entropy_read(i32, i32, i32, i32) -> i32",
        "logging [Always]",
        "  pulp.log(i32, i32, i32) -> i32",
        "storage.fs [Gated]",
        "  pulp.fs_read(i32, i32, i32, i32) -> i32",
        "  pulp.fs_write(i32, i32, i32, i32) -> i32",
        "  pulp.fs_delete(i32, i32) -> i32",
        "storage.sqlite [Gated]",
        "  pulp.sqlite_exec(i32, i32, i32, i32, i32, i32) -> i32",
        "  pulp.sqlite_query(i32, i32, i32, i32, i32, i32) -> i32",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
}

#[test]
fn json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = pulp(dir.path());
    cmd.args(["--log-format", "json", "run"])
        .arg(root().join("examples/heartbeat/pulp.plugin.toml"));
    let mut p = Running::start(cmd);
    let line = p.wait_for("hello from manifest");
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["fields"]["plugin"], "heartbeat");
    assert_eq!(v["level"], "INFO");
    p.signal("TERM");
    assert!(p.exit_within(30).0.success());
}

#[test]
fn two_plugins_with_one_name_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let a = plugin(&dir.path().join("a"), "twin", &guest("reactor.wat"), "");
    let b = plugin(&dir.path().join("b"), "twin", &guest("reactor.wat"), "");
    let out = pulp(dir.path())
        .arg("run")
        .arg(&a)
        .arg(&b)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("both name a plugin \"twin\"; names must be unique"),
        "{err}"
    );
}

#[test]
fn several_plugins_run_in_one_host() {
    let dir = tempfile::tempdir().unwrap();
    let c = plugin(dir.path(), "reactor", &guest("reactor.wat"), "");
    let mut cmd = pulp(dir.path());
    cmd.arg("run")
        .arg(root().join("examples/heartbeat/pulp.plugin.toml"))
        .arg(&c);
    let mut p = Running::start(cmd);
    p.wait_for("plugin started plugin=\"reactor\"");
    p.wait_for("heartbeat: tick 0");
    p.signal("TERM");
    let (status, out) = p.exit_within(30);
    assert!(status.success(), "{out}");
    assert!(
        out.contains("shut down plugin=\"heartbeat\"")
            && out.contains("shut down plugin=\"reactor\""),
        "{out}"
    );
}

#[test]
fn check_flags_imports_of_storage_the_manifest_does_not_declare() {
    let dir = tempfile::tempdir().unwrap();
    let m = plugin(dir.path(), "lazy", &guest("sqlite_crud.wat"), "");
    let out = pulp(dir.path()).arg("check").arg(&m).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("imports pulp.sqlite_exec of capability \"storage.sqlite\", which the manifest does not declare"),
        "{text}"
    );
}

#[test]
fn a_listener_that_cannot_bind_fails_start_up_naming_the_address() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let at = taken.local_addr().unwrap().to_string();
    let m = plugin(
        dir.path(),
        "web",
        &guest("envelope.wat"),
        "capabilities = [\"transport.http.inbound\"]",
    );
    let out = pulp(dir.path())
        .args(["run", "--listen", &at])
        .arg(m)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("cannot listen on {at}")), "{err}");
}

#[test]
fn new_writes_skeletons_that_pass_check_and_run() {
    let dir = tempfile::tempdir().unwrap();
    // WAT: checks and runs as written.
    let out = pulp(dir.path())
        .current_dir(dir.path())
        .args(["new", "my-plugin"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m = dir.path().join("my-plugin/pulp.plugin.toml");
    let check = pulp(dir.path()).arg("check").arg(&m).output().unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    let mut cmd = pulp(dir.path());
    cmd.arg("run").arg(&m);
    let mut p = Running::start(cmd);
    p.wait_for("my-plugin: started");
    p.signal("TERM");
    let (status, out) = p.exit_within(30);
    assert!(
        status.success() && out.contains("my-plugin: shutting down"),
        "{out}"
    );

    // Refused: a bad name, a folder that is not empty.
    let bad = pulp(dir.path())
        .current_dir(dir.path())
        .args(["new", "../x"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a plugin name"));
    let again = pulp(dir.path())
        .current_dir(dir.path())
        .args(["new", "my-plugin"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));

    // C: builds with the copied header, then checks.
    let c_dir = dir.path().join("cplug");
    let out = pulp(dir.path())
        .args(["new", "cplug", "--lang", "c", "--dir"])
        .arg(&c_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let built = support::toolchain::build(
        std::process::Command::new("clang")
            .args([
                "--target=wasm32-wasi",
                "-mexec-model=reactor",
                "-O2",
                "-Wall",
                "-Werror",
                "-I",
            ])
            .arg(&c_dir)
            .arg("-o")
            .arg(c_dir.join("plugin.wasm"))
            .arg(c_dir.join("plugin.c")),
    );
    if !built {
        return support::skip("clang with wasi-libc");
    }
    let check = pulp(dir.path())
        .arg("check")
        .arg(c_dir.join("pulp.plugin.toml"))
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
}
