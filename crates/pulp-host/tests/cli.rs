//! The `pulp` program end to end, as a process.

mod support;

use std::time::Duration;

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

/// A load failure is said once: one `pulp:` line (human logs) or one error record
/// (JSON logs), and an I/O cause once inside it.
#[test]
fn a_load_failure_is_reported_once() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("pulp.plugin.toml");
    std::fs::write(
        &m,
        "name = \"gone\"\nversion = \"1\"\nwasm = \"gone.wat\"\n",
    )
    .unwrap();
    for json in [false, true] {
        let mut cmd = pulp(dir.path());
        if json {
            cmd.args(["--log-format", "json"]);
        }
        cmd.arg("run").arg(&m);
        let (status, out) = Running::start(cmd).exit_within(30);
        assert_eq!(status.code(), Some(1), "{out}");
        assert_eq!(
            out.matches("cannot read module").count(),
            1,
            "json {json}: {out}"
        );
        assert_eq!(
            out.matches("No such file or directory").count(),
            1,
            "json {json}: {out}"
        );
    }
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

/// `pulp check` passes on manifest `m`; `pulp run` logs `started`, and on SIGTERM
/// `stopped`, then exits 0.
fn checks_runs_and_stops(dir: &std::path::Path, m: &std::path::Path, started: &str, stopped: &str) {
    let check = pulp(dir).arg("check").arg(m).output().unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    let mut cmd = pulp(dir);
    cmd.arg("run").arg(m);
    let mut p = Running::start(cmd);
    p.wait_for(started);
    p.signal("TERM");
    let (status, out) = p.exit_within(30);
    assert!(status.success() && out.contains(stopped), "{out}");
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
    checks_runs_and_stops(
        dir.path(),
        &m,
        "my-plugin: started",
        "my-plugin: shutting down",
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

#[test]
fn new_rust_skeleton_builds_with_its_copy_of_the_sdk_checks_and_runs() {
    let dir = tempfile::tempdir().unwrap();
    let r_dir = dir.path().join("rplug");
    let out = pulp(dir.path())
        .args(["new", "r.plug", "--lang", "rust", "--dir"])
        .arg(&r_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(r_dir.join("pulp-pdk/src/lib.rs").exists());
    // The examples' target folder: Debian's route then builds std once for both.
    let target = support::root().join("examples/rust/target");
    let built = support::toolchain::build(
        support::toolchain::rust_wasm(&support::root(), &r_dir.join("Cargo.toml"))
            .arg("--target-dir")
            .arg(&target),
    );
    if !built {
        return support::skip("a Rust toolchain for wasm32-wasip1");
    }
    let wasm = "target/wasm32-wasip1/release/r_plug.wasm";
    std::fs::create_dir_all(r_dir.join(wasm).parent().unwrap()).unwrap();
    std::fs::copy(
        target.join("wasm32-wasip1/release/r_plug.wasm"),
        r_dir.join(wasm),
    )
    .unwrap();
    let m = r_dir.join("pulp.plugin.toml");
    checks_runs_and_stops(
        dir.path(),
        &m,
        "r.plug: started (hello)",
        "r.plug: shutting down after 0 events",
    );
}

#[test]
fn new_go_skeleton_builds_with_its_copy_of_the_sdk_checks_and_runs() {
    let dir = tempfile::tempdir().unwrap();
    let g_dir = dir.path().join("gplug");
    let out = pulp(dir.path())
        .args(["new", "g-plug", "--lang", "go", "--dir"])
        .arg(&g_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let built = support::toolchain::build(&mut support::toolchain::go(
        &g_dir,
        &g_dir.join("plugin.wasm"),
    ));
    if !built {
        return support::skip("Go 1.24 or newer");
    }
    let m = g_dir.join("pulp.plugin.toml");
    checks_runs_and_stops(
        dir.path(),
        &m,
        "g-plug: started (hello)",
        "g-plug: shutting down after 0 events",
    );
}

/// A guest that logs `text` on every step and whose `pulp_step` and
/// `pulp_shutdown` are the given WAT bodies (each ends with an i32 on the stack).
fn logging_guest(text: &str, step: &str, shutdown: &str) -> String {
    format!(
        r#"(module
  (import "pulp" "log" (func $log (param i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "{text}")
  (func (export "pulp_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "pulp_init") (param i32 i32) (result i32) (i32.const 0))
  (func (export "pulp_step") (param i32 i32) (result i32)
    (drop (call $log (i32.const 2) (i32.const 16) (i32.const {len})))
    {step})
  (func (export "pulp_shutdown") (result i32) {shutdown}))"#,
        len = text.len()
    )
}

/// Every file under `dir` (none when it does not exist).
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.map(Result::unwrap) {
            if e.file_type().unwrap().is_dir() {
                todo.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

#[test]
fn a_second_signal_exits_at_once_with_130() {
    let dir = tempfile::tempdir().unwrap();
    // pulp_shutdown never returns, and nothing would cut it for an hour.
    let m = plugin(
        dir.path(),
        "stubborn",
        &guest("hostile/loop_in_shutdown.wat"),
        "[limits]\ncall_timeout_ms = 3600000",
    );
    let mut cmd = pulp(dir.path());
    cmd.args(["run", "--stop-grace-ms", "3600000"]).arg(m);
    let mut p = Running::start(cmd);
    p.wait_for("plugin started");
    p.signal("TERM");
    let said = p.wait_for("SIGTERM: stopping");
    assert!(
        said.contains("3600000 ms to finish (send it again to exit at once)"),
        "{said}"
    );
    p.drain(300);
    assert!(
        p.child.try_wait().unwrap().is_none(),
        "the first signal waits for pulp_shutdown"
    );
    p.signal("INT");
    let (status, out) = p.exit_within(10);
    assert_eq!(status.code(), Some(130), "{status}\n{out}");
    assert!(
        out.contains("second SIGINT: exiting now (status 130) without waiting"),
        "{out}"
    );
    // Not a terminal: no colour codes.
    assert!(!out.contains('\u{1b}'), "{out:?}");
}

#[test]
fn every_plugin_failing_for_good_exits_1_but_one_of_two_does_not() {
    let trapper = logging_guest("about to trap", "(unreachable)", "(i32.const 0)");
    let dir = tempfile::tempdir().unwrap();
    let a = plugin(dir.path(), "trap-a", &trapper, "");
    let b = plugin(dir.path(), "trap-b", &trapper, "");
    let mut cmd = pulp(dir.path());
    cmd.arg("run").arg(&a).arg(&b);
    // No signal: the process ends by itself once both are stopped for good.
    let (status, out) = Running::start(cmd).exit_within(60);
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(
        out.contains("every plugin has stopped after failing"),
        "{out}"
    );
    for name in ["trap-a", "trap-b"] {
        assert!(
            out.contains(&format!(
                "; stopped (last: plugin \"{name}\": pulp_step trapped"
            )),
            "{name} was stopped for good:\n{out}"
        );
    }

    // One of two failing for good: the other keeps the process running.
    let dir = tempfile::tempdir().unwrap();
    let a = plugin(dir.path(), "trap-c", &trapper, "");
    let mut cmd = pulp(dir.path());
    cmd.arg("run")
        .arg(&a)
        .arg(root().join("examples/heartbeat/pulp.plugin.toml"));
    let mut p = Running::start(cmd);
    p.wait_for("; stopped (last:");
    p.drain(500);
    assert!(
        p.child.try_wait().unwrap().is_none(),
        "heartbeat still runs, so pulp does:\n{}",
        p.seen.join("\n")
    );
    p.signal("TERM");
    let (_, out) = p.exit_within(30);
    assert!(out.contains("shut down plugin=\"heartbeat\""), "{out}");
}

#[test]
fn a_failing_pulp_shutdown_exits_1_naming_the_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let refuses = plugin(
        dir.path(),
        "refuses",
        &logging_guest("step", "(i32.const 0)", "(i32.const 3)"),
        "",
    );
    let traps = plugin(
        dir.path(),
        "traps",
        &logging_guest("step", "(i32.const 0)", "(unreachable)"),
        "",
    );
    let fine = plugin(dir.path(), "fine", &guest("reactor.wat"), "");
    for (failing, why) in [
        (&refuses, "plugin \"refuses\": pulp_shutdown returned 3"),
        (&traps, "plugin \"traps\": pulp_shutdown trapped: "),
    ] {
        let mut cmd = pulp(dir.path());
        cmd.arg("run").arg(failing).arg(&fine);
        let mut p = Running::start(cmd);
        p.wait_for("plugin started plugin=\"fine\"");
        p.signal("TERM");
        let (status, out) = p.exit_within(30);
        assert_eq!(status.code(), Some(1), "{why}:\n{out}");
        assert!(
            out.contains(&format!("did not shut down cleanly: {why}")),
            "{why}:\n{out}"
        );
        assert!(out.contains("shut down plugin=\"fine\""), "{out}");
    }
}

#[test]
fn no_cache_neither_writes_nor_reads_the_module_cache() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let heartbeat = root().join("examples/heartbeat/pulp.plugin.toml");
    let run = |no_cache: bool| {
        let mut cmd = pulp(dir.path());
        if no_cache {
            cmd.arg("--no-cache");
        }
        cmd.arg("run").arg(&heartbeat);
        let mut p = Running::start(cmd);
        let started = p.wait_for("plugin started");
        p.signal("TERM");
        let (status, out) = p.exit_within(30);
        assert!(status.success(), "{out}");
        started
    };
    let started = run(true);
    assert!(started.contains("module=Compiled"), "{started}");
    assert_eq!(
        files_under(&cache),
        Vec::<std::path::PathBuf>::new(),
        "nothing written"
    );
    let started = run(false);
    assert!(started.contains("module=Compiled"), "{started}");
    assert!(!files_under(&cache).is_empty(), "the entry is written");
    let started = run(true);
    assert!(
        started.contains("module=Compiled"),
        "a good entry is there, but --no-cache does not read it: {started}"
    );
    let started = run(false);
    assert!(started.contains("module=Cached"), "{started}");
}

#[test]
fn pulp_environment_variables_set_storage_cache_and_listener() {
    let dir = tempfile::tempdir().unwrap();
    let m = plugin(
        dir.path(),
        "envy",
        &guest("reactor.wat"),
        "capabilities = [\"storage.sqlite\", \"transport.http.inbound\"]",
    );
    let (data, cache, home) = (
        dir.path().join("env-data"),
        dir.path().join("env-cache"),
        dir.path().join("home"),
    );
    // No flags: only the variables say where things go. Without them, storage would be
    // ./data, the cache under $HOME/.cache, the listener 127.0.0.1:8080.
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_pulp"));
    cmd.current_dir(dir.path())
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .env("HOME", &home)
        .env_remove("XDG_CACHE_HOME")
        .env("PULP_STORAGE_ROOT", &data)
        .env("PULP_CACHE_DIR", &cache)
        .env("PULP_LISTEN", "127.0.0.2:0")
        .stdin(std::process::Stdio::null())
        .arg("run")
        .arg(&m);
    let mut p = Running::start(cmd);
    let addr = p.listen_addr();
    assert!(addr.starts_with("127.0.0.2:"), "{addr}");
    p.wait_for("plugin started");
    let answer = support::http(
        &addr,
        "GET /nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    p.signal("TERM");
    let (status, out) = p.exit_within(30);
    assert!(status.success(), "{out}");
    assert!(
        data.join("envy/data.db").is_file(),
        "storage under PULP_STORAGE_ROOT"
    );
    assert!(!dir.path().join("data").exists(), "not under ./data");
    assert!(
        !files_under(&cache).is_empty(),
        "the module cached in PULP_CACHE_DIR"
    );
    assert_eq!(
        files_under(&home),
        Vec::<std::path::PathBuf>::new(),
        "nothing under $HOME"
    );
}

#[test]
fn idle_ticks_back_off_from_tick_ms_to_max_tick_ms_without_a_start_up_burst() {
    let dir = tempfile::tempdir().unwrap();
    let m = plugin(
        dir.path(),
        "ticker",
        &logging_guest("idle tick", "(i32.const 0)", "(i32.const 0)"),
        "",
    );
    let mut cmd = pulp(dir.path());
    cmd.args(["run", "--tick-ms", "1", "--max-tick-ms", "1000"])
        .arg(m);
    let mut p = Running::start(cmd);
    p.wait_for("plugin started");
    let ticks = |seen: &[String]| seen.iter().filter(|l| l.contains("idle tick")).count();
    // A plugin without events starts idle: the interval doubles from 1 ms on every
    // tick (2, 4, 8 ... ms), so about ten ticks in the first second, not a thousand.
    let early = ticks(&p.drain(1500));
    // By then it is at 1000 ms: about one tick a second (`drain` returns every line so far).
    let late = ticks(&p.drain(3000)) - early;
    p.signal("TERM");
    let (status, out) = p.exit_within(30);
    assert!(status.success(), "{out}");
    assert!(
        (4..=40).contains(&early),
        "{early} ticks in the first 1.5 s: backing off from 1 ms gives about ten, a 1 ms burst hundreds"
    );
    assert!(
        (1..=6).contains(&late),
        "{late} ticks in 3 s once backed off (1 ms would give thousands, 1000 ms about 3; {early} in the first 1.5 s)"
    );
}

#[test]
fn pinned_modules_run_and_a_changed_or_unpinned_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let wat = guest("reactor.wat");
    let m = plugin(dir.path(), "pinned", &wat, "");
    // `pulp check` prints the module's digest: what a manifest pins.
    let out = pulp(dir.path()).arg("check").arg(&m).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{text}");
    let digest = text
        .split("sha256 ")
        .nth(1)
        .and_then(|t| t.get(..64))
        .unwrap_or_else(|| panic!("no digest in:\n{text}"))
        .to_string();
    assert!(digest.bytes().all(|b| b.is_ascii_hexdigit()), "{digest}");

    // Unpinned: refused with --require-pinned, by check and by run.
    let out = pulp(dir.path())
        .args(["check", "--require-pinned"])
        .arg(&m)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("is not pinned") && text.contains(&digest),
        "{text}"
    );
    let mut cmd = pulp(dir.path());
    cmd.args(["run", "--require-pinned"]).arg(&m);
    let (status, out) = Running::start(cmd).exit_within(30);
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(
        out.contains("plugin \"pinned\"") && out.contains("is not pinned"),
        "{out}"
    );

    // Pinned with its digest (any case): checks and runs with --require-pinned.
    let manifest = std::fs::read_to_string(&m).unwrap();
    let pinned = format!("wasm_sha256 = \"{}\"\n{manifest}", digest.to_uppercase());
    std::fs::write(&m, &pinned).unwrap();
    let out = pulp(dir.path())
        .args(["check", "--require-pinned"])
        .arg(&m)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let mut cmd = pulp(dir.path());
    cmd.args(["run", "--require-pinned"]).arg(&m);
    let mut p = Running::start(cmd);
    p.wait_for("plugin started");
    p.signal("TERM");
    assert!(p.exit_within(30).0.success());

    // The module changes under the manifest: refused, naming both digests, before
    // it is compiled.
    let module = dir.path().join("pinned/plugin.wat");
    std::fs::write(&module, format!("{wat}\n;; changed\n")).unwrap();
    let mut cmd = pulp(dir.path());
    cmd.arg("run").arg(&m);
    let (status, out) = Running::start(cmd).exit_within(30);
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(
        out.contains("but the manifest pins wasm_sha256 = ") && out.contains(&digest),
        "{out}"
    );
    assert!(!out.contains("plugin started"), "{out}");
    let out = pulp(dir.path()).arg("check").arg(&m).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("but the manifest pins"), "{text}");

    // A digest that is not one is a manifest problem.
    std::fs::write(&m, format!("wasm_sha256 = \"abc\"\n{manifest}")).unwrap();
    let out = pulp(dir.path()).arg("check").arg(&m).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("wasm_sha256 \"abc\" is not a SHA-256 digest"),
        "{text}"
    );
}

/// The value of the sample `series` (name and labels, exactly as exposed).
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn the_admin_listener_serves_metrics_health_and_readiness() {
    let dir = tempfile::tempdir().unwrap();
    let hello = plugin(
        dir.path(),
        "hello",
        &guest("http_hello.wat"),
        "capabilities = [\"transport.http.inbound\"]\n",
    );
    // Traps in every step: failed for good after five failures (a second or so).
    let trapper = plugin(
        dir.path(),
        "trapper",
        &logging_guest("about to trap", "(unreachable)", "(i32.const 0)"),
        "",
    );
    let mut cmd = pulp(dir.path());
    cmd.args(["run", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
        .arg(&hello)
        .arg(&trapper);
    let mut p = Running::start(cmd);
    let listen = p.listen_addr();
    let line = p.wait_for("admin listener");
    let admin = line
        .split("addr=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no addr in {line}"))
        .to_string();
    let get = |path: &str| {
        support::http(
            &admin,
            &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        )
    };
    assert!(get("/healthz").starts_with("HTTP/1.1 200"));
    for i in 0..3 {
        let a = support::http(
            &listen,
            &format!("GET /hello/n{i} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        );
        assert!(a.starts_with("HTTP/1.1 200"), "{a}");
    }
    p.wait_for("failed 5 times");
    // Not ready: one plugin failed for good; `pulp health` says so with exit 1.
    let r = get("/readyz");
    assert!(r.starts_with("HTTP/1.1 503"), "{r}");
    assert!(r.contains("not ready: failed for good: trapper"), "{r}");
    let out = pulp(dir.path()).args(["health", &admin]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("503"),
        "{out:?}"
    );
    let out = pulp(dir.path())
        .args(["health", &admin, "--path", "/healthz"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");

    let m = get("/metrics");
    assert!(m.starts_with("HTTP/1.1 200"), "{m}");
    assert!(
        m.contains("content-type: application/openmetrics-text"),
        "{m}"
    );
    let body = m.split_once("\r\n\r\n").unwrap().1;
    assert!(body.trim_end().ends_with("# EOF"), "{body}");
    for family in [
        "# TYPE pulp_plugin_step_seconds histogram",
        "# TYPE pulp_http_requests counter",
        "# TYPE pulp_http_request_seconds histogram",
        "# TYPE pulp_module_cache_misses counter",
    ] {
        assert!(body.contains(family), "no {family:?} in\n{body}");
    }
    let v = |s: &str| sample(body, s).unwrap_or_else(|| panic!("no {s} in\n{body}"));
    assert!(v(r#"pulp_plugin_step_seconds_count{plugin="hello"}"#) >= 3.0);
    assert_eq!(
        v(
            r#"pulp_http_requests_total{plugin="hello",method="GET",route="/hello/:name",status="200"}"#
        ),
        3.0
    );
    assert_eq!(
        v(r#"pulp_http_request_seconds_count{plugin="hello",method="GET",route="/hello/:name"}"#),
        3.0
    );
    assert_eq!(
        v(r#"pulp_plugin_state{plugin="hello",state="running"}"#),
        1.0
    );
    assert_eq!(
        v(r#"pulp_plugin_state{plugin="trapper",state="failed"}"#),
        1.0
    );
    assert_eq!(
        v(r#"pulp_plugin_state{plugin="trapper",state="running"}"#),
        0.0
    );
    assert_eq!(v(r#"pulp_plugin_traps_total{plugin="trapper"}"#), 5.0);
    assert_eq!(v(r#"pulp_plugin_restarts_total{plugin="trapper"}"#), 4.0);
    assert_eq!(v(r#"pulp_plugin_instances{plugin="trapper"}"#), 0.0);
    assert!(v(r#"pulp_plugin_guest_memory_bytes{plugin="hello"}"#) >= 65536.0);
    assert_eq!(
        v(r#"pulp_plugin_import_calls_total{plugin="hello",import="http_register",status="0"}"#),
        1.0
    );
    assert_eq!(
        v(r#"pulp_plugin_import_calls_total{plugin="hello",import="http_respond",status="0"}"#),
        3.0
    );
    assert_eq!(v("pulp_module_cache_misses_total"), 2.0);
    assert_eq!(v("pulp_module_compile_seconds_count"), 2.0);
    assert!(get("/nothing").starts_with("HTTP/1.1 404"));

    p.signal("TERM");
    let (status, out) = p.exit_within(30);
    // 1: a plugin failed for good during the run.
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(out.contains("shut down plugin=\"hello\""), "{out}");
}

#[test]
fn secrets_come_from_the_environment_and_files_and_are_never_logged() {
    let dir = tempfile::tempdir().unwrap();
    let wat = std::fs::read_to_string(root().join("examples/heartbeat/heartbeat.wat")).unwrap();
    std::fs::write(dir.path().join("hb.wat"), wat).unwrap();
    std::fs::write(dir.path().join("greeting.txt"), "from a file\n").unwrap();
    let manifest = |secrets: &str| {
        let m = dir.path().join("pulp.plugin.toml");
        std::fs::write(
            &m,
            format!("name = \"hb\"\nversion = \"1\"\nwasm = \"hb.wat\"\n[config]\nmarker = 7\n[secrets]\n{secrets}"),
        )
        .unwrap();
        m
    };
    let run = |m: &std::path::Path, wait: &str| {
        let mut cmd = pulp(dir.path());
        cmd.env(
            "RUST_LOG",
            "trace,wasmtime=info,cranelift_codegen=info,cranelift=info",
        )
        .env("HB_GREETING", "from the environment")
        .env("HB_TOKEN", "s3cr3t-t0ken")
        .arg("run")
        .arg(m);
        let mut p = Running::start(cmd);
        p.wait_for(wait);
        p.signal("TERM");
        p.exit_within(30)
    };

    // From the environment, beside a token the plugin never prints: the host does
    // not print it either, at any log level.
    let m = manifest("greeting = { env = \"HB_GREETING\" }\ntoken = { env = \"HB_TOKEN\" }");
    let (status, out) = run(&m, "from the environment");
    assert!(status.success(), "{out}");
    assert!(!out.contains("s3cr3t-t0ken"), "{out}");
    // From a file, its trailing newline removed.
    let m = manifest("greeting = { file = \"greeting.txt\" }");
    let (status, out) = run(&m, "from a file");
    assert!(status.success(), "{out}");
    assert!(!out.contains("from a file\\n"), "{out}");

    // Missing ones are load errors naming the secret, for check and for run.
    let m = manifest("greeting = { env = \"HB_NOT_SET\" }\nkey = { file = \"absent.pem\" }");
    let out = pulp(dir.path()).arg("check").arg(&m).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("secret \"greeting\": environment variable HB_NOT_SET is not set"),
        "{text}"
    );
    assert!(
        text.contains("secret \"key\": file ") && text.contains("absent.pem"),
        "{text}"
    );
    let mut cmd = pulp(dir.path());
    cmd.arg("run").arg(&m);
    let (status, out) = Running::start(cmd).exit_within(30);
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(
        out.contains("plugin \"hb\" cannot load: secret \"greeting\""),
        "{out}"
    );

    // Only regular files, and at most 64 KiB of one: a device or a FIFO could be
    // read for ever (or wait for ever).
    std::fs::write(dir.path().join("big.txt"), vec![b'x'; 70_000]).unwrap();
    let m = manifest("greeting = { file = \"/dev/zero\" }\nbig = { file = \"big.txt\" }");
    let out = pulp(dir.path()).arg("check").arg(&m).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        text.contains("file /dev/zero: not a regular file"),
        "{text}"
    );
    assert!(
        text.contains("big.txt: 70000 bytes, larger than the 65536-byte limit"),
        "{text}"
    );

    // Malformed entries and a key given twice are manifest problems.
    let m = manifest("a = \"plain\"\nb = { env = \"X\", file = \"y\" }\nmarker = { env = \"X\" }");
    let out = pulp(dir.path()).arg("check").arg(&m).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    for want in [
        "[secrets] a must be { env = \"NAME\" } or { file = \"PATH\" }",
        "[secrets] b must be",
        "[secrets] marker is also a key of [config]",
    ] {
        assert!(text.contains(want), "no {want:?} in {text}");
    }
}

#[test]
fn the_admin_listener_closes_idle_connections_and_serves_past_a_flood_of_them() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let m = plugin(dir.path(), "quiet", &guest("reactor.wat"), "");
    let mut cmd = pulp(dir.path());
    cmd.args(["run", "--admin", "127.0.0.1:0"]).arg(&m);
    let mut p = Running::start(cmd);
    let line = p.wait_for("admin listener");
    let admin = line
        .split("addr=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap()
        .to_string();
    // Forty connections that never send a byte (more than it serves at once).
    let mut idle: Vec<std::net::TcpStream> = (0..40)
        .map(|_| std::net::TcpStream::connect(&admin).unwrap())
        .collect();
    let started = std::time::Instant::now();
    let first = &mut idle[0];
    first
        .set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    let mut buf = [0u8; 64];
    let n = first.read(&mut buf).unwrap_or(usize::MAX);
    assert_eq!(n, 0, "the server closed the idle connection");
    assert!(started.elapsed() < std::time::Duration::from_secs(15));
    // Served while the other 39 are still open (they are cut in turn).
    let answer = support::http(
        &admin,
        "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    drop(idle);
    p.signal("TERM");
    assert!(p.exit_within(30).0.success());
}

/// `http_hello.wat` answering with `body` (3 bytes) on route `route` (12 bytes, like
/// `/hello/:name`); with `fail_init` its `pulp_init` registers the route, then fails.
fn hello_guest(body: &str, route: &str, fail_init: bool) -> String {
    assert_eq!((body.len(), route.len()), (3, 12));
    let g = guest("http_hello.wat")
        .replace("\\c4\\03wat", &format!("\\c4\\03{body}"))
        .replace("\\ac/hello/:name", &format!("\\ac{route}"));
    if fail_init {
        g.replace(
            "(call $register (i32.const 1024) (i32.const 30)))",
            "(drop (call $register (i32.const 1024) (i32.const 30))) (i32.const 1))",
        )
    } else {
        g
    }
}

/// Writes version `version` of plugin `name` (its module and manifest) into `dir`.
fn write_version(dir: &std::path::Path, name: &str, version: &str, wat: &str) {
    let d = dir.join(name);
    std::fs::write(d.join("plugin.wat"), wat).unwrap();
    std::fs::write(
        d.join("pulp.plugin.toml"),
        format!("name = \"{name}\"\nversion = \"{version}\"\nwasm = \"plugin.wat\"\ncapabilities = [\"transport.http.inbound\"]\n"),
    )
    .unwrap();
}

/// GETs `path` over a kept-alive connection: (status line, body).
fn keep_alive_get(
    conn: &mut std::io::BufReader<std::net::TcpStream>,
    path: &str,
) -> std::io::Result<(String, String)> {
    use std::io::{BufRead, Read, Write};
    conn.get_mut()
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())?;
    let mut status = String::new();
    conn.read_line(&mut status)?;
    let mut len = 0;
    loop {
        let mut h = String::new();
        if conn.read_line(&mut h)? == 0 {
            return Err(std::io::Error::other("closed in the head"));
        }
        if h == "\r\n" {
            break;
        }
        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; len];
    conn.read_exact(&mut body)?;
    Ok((
        status.trim_end().to_string(),
        String::from_utf8_lossy(&body).into_owned(),
    ))
}

/// `pulp ctl` against the running `pulp run` whose storage root is under `dir`.
fn ctl(dir: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out = pulp(dir).arg("ctl").args(args).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Live reload under load, as an operator does it: a real `pulp run`, real
/// `pulp ctl` processes, two clients sending requests without pause on kept-alive
/// connections. Twenty reloads lose no request and answer none twice (each answer
/// is one version's body, the versions in order per client); each new version
/// serves once `ctl reload` returns; a version whose `pulp_init` fails is refused
/// with its reason while the old one keeps serving, and leaves no route behind; a
/// reload that drops a route drops it.
#[test]
fn twenty_live_reloads_under_load_lose_no_request() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let m = plugin(dir.path(), "hello", "", "");
    write_version(
        dir.path(),
        "hello",
        "0",
        &hello_guest("v00", "/hello/:name", false),
    );
    let mut cmd = pulp(dir.path());
    cmd.args(["run", "--listen", "127.0.0.1:0"]).arg(&m);
    let mut p = Running::start(cmd);
    let listen = p.listen_addr();
    p.wait_for("control socket");

    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..2)
        .map(|_| {
            let (listen, stop) = (listen.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut conn =
                    std::io::BufReader::new(std::net::TcpStream::connect(&listen).unwrap());
                let (mut bodies, mut errors) = (Vec::new(), Vec::new());
                let until = std::time::Instant::now() + Duration::from_secs(120);
                while !stop.load(Ordering::SeqCst) && std::time::Instant::now() < until {
                    match keep_alive_get(&mut conn, "/hello/x") {
                        Ok((s, b)) if s == "HTTP/1.1 200 OK" => bodies.push(b),
                        Ok((s, b)) => errors.push(format!("{s}: {b}")),
                        Err(e) => {
                            errors.push(format!("I/O: {e}"));
                            break;
                        }
                    }
                }
                (bodies, errors)
            })
        })
        .collect();

    let mut took = Vec::new();
    for v in 1..=20 {
        let body = format!("v{v:02}");
        write_version(
            dir.path(),
            "hello",
            &v.to_string(),
            &hello_guest(&body, "/hello/:name", false),
        );
        let t = std::time::Instant::now();
        let (ok, out) = ctl(dir.path(), &["reload", "hello"]);
        took.push(t.elapsed());
        assert!(ok, "reload {v}: {out}");
        assert!(
            out.contains(&format!("reloaded hello: version {v} serving after")),
            "{out}"
        );
        // Serving as soon as the reload returned.
        let a = support::http(
            &listen,
            "GET /hello/y HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        assert!(a.ends_with(&body), "after reload {v}: {a}");
        if v == 10 {
            // A version that fails its init: refused with the reason, v10 serves on.
            write_version(
                dir.path(),
                "hello",
                "bad",
                &hello_guest("bad", "/fails/:name", true),
            );
            let (ok, out) = ctl(dir.path(), &["reload", "hello"]);
            assert!(!ok, "{out}");
            assert!(
                out.contains("pulp_init returned 1")
                    && out.contains("the running version keeps serving"),
                "{out}"
            );
            let a = support::http(
                &listen,
                "GET /fails/y HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            );
            assert!(
                a.starts_with("HTTP/1.1 404"),
                "the failed version's route: {a}"
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::SeqCst);
    let mut total = 0;
    for c in clients {
        let (bodies, errors) = c.join().unwrap();
        assert!(
            errors.is_empty(),
            "requests failed across reloads: {errors:?}"
        );
        assert!(bodies.len() > 20, "the load ran: {} requests", bodies.len());
        // Each answer is one version's, and versions only move forward.
        let order: Vec<u32> = bodies
            .iter()
            .map(|b| {
                b.strip_prefix('v')
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| panic!("answer {b:?}"))
            })
            .collect();
        assert!(order.windows(2).all(|w| w[0] <= w[1]), "versions went back");
        assert_eq!(order.last(), Some(&20));
        total += bodies.len();
    }
    took.sort();
    eprintln!(
        "20 reloads under load: {total} requests, 0 errors; `pulp ctl reload` took {:?} (median), {:?} (max)",
        took[took.len() / 2],
        took[took.len() - 1]
    );

    // `ctl status` names the version serving.
    let (ok, out) = ctl(dir.path(), &["status"]);
    assert!(ok, "{out}");
    let row = out
        .lines()
        .find(|l| l.starts_with("hello "))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        row.split_whitespace().nth(1) == Some("20") && row.contains("running"),
        "{out}"
    );

    // A version that serves another route: the old route goes with the old version.
    write_version(
        dir.path(),
        "hello",
        "21",
        &hello_guest("v21", "/howdy/:name", false),
    );
    let (ok, out) = ctl(dir.path(), &["reload", "hello"]);
    assert!(ok, "{out}");
    let a = support::http(
        &listen,
        "GET /hello/y HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(a.starts_with("HTTP/1.1 404"), "{a}");
    let a = support::http(
        &listen,
        "GET /howdy/y HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(a.starts_with("HTTP/1.1 200") && a.ends_with("v21"), "{a}");
    p.signal("TERM");
    let (st, _) = p.exit_within(10);
    assert!(st.success());
}

/// `pulp ctl` as an operator uses it, and `pulp run --watch`: the socket is the
/// owner's alone; status as a table and as JSON (no config in it); stop and start
/// one plugin while another keeps serving; a second `pulp run` on the same storage
/// root is refused before its plugins start; a module edited on disk is reloaded by
/// the watcher, and a broken edit leaves the running version serving.
#[test]
fn ctl_steers_a_running_host_and_watch_reloads_edits() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let m = plugin(dir.path(), "hello", "", "");
    write_version(
        dir.path(),
        "hello",
        "1",
        &hello_guest("one", "/hello/:name", false),
    );
    let other = plugin(
        dir.path(),
        "other",
        &guest("reactor.wat"),
        "[config]\ntoken = \"s3cret-value\"\n",
    );
    let mut cmd = pulp(dir.path());
    cmd.args(["run", "--watch", "--listen", "127.0.0.1:0"])
        .arg(&m)
        .arg(&other);
    let mut p = Running::start(cmd);
    let listen = p.listen_addr();
    p.wait_for("watching the plugins");
    let get = |path: &str| {
        support::http(
            &listen,
            &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        )
    };
    let sock = dir.path().join("data/.pulp/control.sock");
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode();
    assert_eq!(
        mode & 0o777,
        0o600,
        "the control socket is the owner's alone"
    );
    let dir_mode = std::fs::metadata(sock.parent().unwrap())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(dir_mode & 0o777, 0o700);

    let (ok, out) = ctl(dir.path(), &["status"]);
    assert!(ok, "{out}");
    assert!(out.starts_with("NAME "), "{out}");
    assert!(out.contains("hello") && out.contains("other"), "{out}");
    let (ok, json) = ctl(dir.path(), &["status", "--json"]);
    assert!(ok, "{json}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let plugins = v["plugins"].as_array().unwrap();
    assert_eq!(plugins.len(), 2);
    assert_eq!(plugins[0]["name"], "hello");
    assert_eq!(plugins[0]["state"], "running");
    assert_eq!(plugins[0]["instances"], 1);
    assert!(!json.contains("s3cret"), "status shows no config: {json}");

    // A second host on the same storage root stops at the socket, before any plugin.
    let out = pulp(dir.path())
        .args(["run", "--listen", "127.0.0.1:0"])
        .arg(&other)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("served by another running pulp"),
        "{err}"
    );
    assert!(!err.contains("plugin started"), "{err}");

    // Stop one plugin; the other keeps running; start it again.
    let (ok, out) = ctl(dir.path(), &["stop", "hello"]);
    assert!(ok && out.contains("stopped hello"), "{out}");
    assert!(
        get("/hello/x").starts_with("HTTP/1.1 404"),
        "a stopped plugin's routes go"
    );
    let (_, json) = ctl(dir.path(), &["status", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["plugins"][0]["state"], "stopped");
    assert_eq!(v["plugins"][1]["state"], "running");
    let (ok, out) = ctl(dir.path(), &["stop", "hello"]);
    assert!(!ok && out.contains("hello is not running"), "{out}");
    let (ok, out) = ctl(dir.path(), &["start", "hello"]);
    assert!(ok && out.contains("started hello"), "{out}");
    assert!(get("/hello/x").ends_with("one"));
    let (ok, out) = ctl(dir.path(), &["reload", "nobody"]);
    assert!(!ok && out.contains("no plugin named \"nobody\""), "{out}");

    // --watch: an edit is reloaded; a broken edit is refused and the old one serves.
    write_version(
        dir.path(),
        "hello",
        "2",
        &hello_guest("two", "/hello/:name", false),
    );
    p.wait_for("reloaded hello: version 2");
    assert!(get("/hello/x").ends_with("two"));
    std::fs::write(dir.path().join("hello/plugin.wat"), "(module (func $oops").unwrap();
    p.wait_for("the running version keeps serving");
    assert!(get("/hello/x").ends_with("two"));
    // What the operator stopped, an edit does not start.
    let (ok, out) = ctl(dir.path(), &["stop", "hello"]);
    assert!(ok, "{out}");
    write_version(
        dir.path(),
        "hello",
        "3",
        &hello_guest("thr", "/hello/:name", false),
    );
    p.wait_for("start it with pulp ctl start hello");
    assert!(get("/hello/x").starts_with("HTTP/1.1 404"));
    p.signal("TERM");
    let (st, _) = p.exit_within(10);
    assert!(st.success());
    assert!(!sock.exists(), "the socket is removed at exit");
}

/// `pulp ctl stop` of a plugin stuck in a step: it is interrupted after the grace
/// period and stops; the host and its other plugins keep going, and `pulp ctl`
/// answers within the grace (plus the interrupt), not never.
#[test]
fn ctl_stop_interrupts_a_stuck_plugin_and_the_others_keep_serving() {
    let dir = tempfile::tempdir().unwrap();
    let stuck = plugin(
        dir.path(),
        "stuck",
        &guest("hostile/loop_in_step.wat"),
        "[limits]\ncall_timeout_ms = 3600000",
    );
    let m = plugin(dir.path(), "hello", "", "");
    write_version(
        dir.path(),
        "hello",
        "1",
        &hello_guest("one", "/hello/:name", false),
    );
    let mut cmd = pulp(dir.path());
    cmd.args(["run", "--stop-grace-ms", "300", "--listen", "127.0.0.1:0"])
        .arg(&stuck)
        .arg(&m);
    let mut p = Running::start(cmd);
    let listen = p.listen_addr();
    p.wait_for("control socket");
    std::thread::sleep(Duration::from_millis(100));
    let t = std::time::Instant::now();
    let (ok, out) = ctl(dir.path(), &["stop", "stuck"]);
    assert!(ok && out.contains("stopped stuck"), "{out}");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    p.wait_for("interrupting it");
    let (_, json) = ctl(dir.path(), &["status", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["plugins"][0]["state"], "stopped", "{json}");
    let a = support::http(
        &listen,
        "GET /hello/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(a.ends_with("one"), "{a}");
    p.signal("TERM");
    let (st, out) = p.exit_within(10);
    assert!(st.success(), "{out}");
}

/// What a plugin author (or a careless edit) can hand a reload, and a slow client
/// can do to the control socket: a module that is a FIFO or `/dev/zero`, a
/// manifest that is a FIFO, a version with terminal escapes, a client that trickles
/// its request. Each is refused at once with its reason, the control loop keeps
/// answering, and the running version keeps serving.
#[test]
fn hostile_reloads_are_refused_at_once_and_the_host_keeps_answering() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let m = plugin(dir.path(), "hello", "", "");
    write_version(
        dir.path(),
        "hello",
        "1",
        &hello_guest("one", "/hello/:name", false),
    );
    let mut cmd = pulp(dir.path());
    cmd.args(["run", "--listen", "127.0.0.1:0"]).arg(&m);
    let mut p = Running::start(cmd);
    let listen = p.listen_addr();
    p.wait_for("control socket");
    let serving = || {
        support::http(
            &listen,
            "GET /hello/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .ends_with("one")
    };
    let fifo = dir.path().join("hello/fifo");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let manifest = |wasm: &str, version: &str| {
        std::fs::write(
            dir.path().join("hello/pulp.plugin.toml"),
            format!("name = \"hello\"\nversion = {version}\nwasm = {wasm:?}\ncapabilities = [\"transport.http.inbound\"]\n"),
        )
        .unwrap()
    };
    for (wasm, version, why) in [
        ("fifo", "\"2\"", "not a regular file"),
        ("/dev/zero", "\"2\"", "not a regular file"),
        // In TOML escapes: a terminal's clear-screen, and a forged table row.
        (
            "plugin.wat",
            r#""2\u001b[2J\nFAKE 9 running""#,
            "without control characters",
        ),
    ] {
        manifest(wasm, version);
        let t = std::time::Instant::now();
        let (ok, out) = ctl(dir.path(), &["reload", "hello"]);
        assert!(
            !ok && out.contains(why) && out.contains("keeps serving"),
            "{wasm}: {out}"
        );
        assert!(
            !out.contains('\u{1b}'),
            "no escape reaches the terminal: {out:?}"
        );
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "{wasm}: {:?}",
            t.elapsed()
        );
        assert!(serving(), "{wasm}");
    }
    // The manifest itself a FIFO.
    let m_path = dir.path().join("hello/pulp.plugin.toml");
    std::fs::remove_file(&m_path).unwrap();
    assert!(std::process::Command::new("mkfifo")
        .arg(&m_path)
        .status()
        .unwrap()
        .success());
    let (ok, out) = ctl(dir.path(), &["reload", "hello"]);
    assert!(!ok && out.contains("not a regular file"), "{out}");

    // A client that sends a byte now and then holds the socket for 5 s at most.
    let sock = dir.path().join("data/.pulp/control.sock");
    let mut slow = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    let trickle = std::thread::spawn(move || {
        for _ in 0..8 {
            if slow.write_all(b" ").is_err() {
                return;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    std::thread::sleep(Duration::from_millis(200));
    let t = std::time::Instant::now();
    let (ok, out) = ctl(dir.path(), &["status"]);
    assert!(ok, "{out}");
    assert!(
        t.elapsed() < Duration::from_secs(7),
        "status waited {:?}",
        t.elapsed()
    );
    trickle.join().unwrap();
    assert!(serving());
    p.signal("TERM");
    let (st, _) = p.exit_within(10);
    assert!(st.success());
}

/// SIGTERM while a reload initialises a version whose `pulp_init` never returns
/// (and whose manifest allows it an hour): the host stops within its grace, not
/// the candidate's.
#[test]
fn a_stop_signal_interrupts_a_reload_in_progress() {
    let dir = tempfile::tempdir().unwrap();
    let m = plugin(dir.path(), "hello", "", "");
    write_version(
        dir.path(),
        "hello",
        "1",
        &hello_guest("one", "/hello/:name", false),
    );
    let mut cmd = pulp(dir.path());
    cmd.args(["run", "--listen", "127.0.0.1:0", "--stop-grace-ms", "500"])
        .arg(&m);
    let mut p = Running::start(cmd);
    p.wait_for("control socket");
    std::fs::write(
        dir.path().join("hello/plugin.wat"),
        guest("hostile/loop_in_init.wat"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("hello/pulp.plugin.toml"),
        "name = \"hello\"\nversion = \"2\"\nwasm = \"plugin.wat\"\n[limits]\ninit_timeout_ms = 3600000\n",
    )
    .unwrap();
    let d = dir.path().to_path_buf();
    let reload = std::thread::spawn(move || ctl(&d, &["reload", "hello"]));
    std::thread::sleep(Duration::from_millis(500));
    let t = std::time::Instant::now();
    p.signal("TERM");
    let (st, out) = p.exit_within(10);
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "{:?}: {out}",
        t.elapsed()
    );
    assert!(st.success(), "{out}");
    let (ok, answer) = reload.join().unwrap();
    assert!(!ok, "{answer}");
}

/// A plugin that failed for good, then a start that fails: it stays listed as
/// failed (and /readyz not ready), instead of vanishing.
#[test]
fn a_failed_start_leaves_the_plugin_listed_and_not_ready() {
    let dir = tempfile::tempdir().unwrap();
    let trapper = plugin(
        dir.path(),
        "trapper",
        &logging_guest("about to trap", "(unreachable)", "(i32.const 0)"),
        "",
    );
    let hello = plugin(dir.path(), "hello", &guest("reactor.wat"), "");
    let mut cmd = pulp(dir.path());
    cmd.args(["run", "--admin", "127.0.0.1:0"])
        .arg(&trapper)
        .arg(&hello);
    let mut p = Running::start(cmd);
    let line = p.wait_for("admin listener");
    let admin = line
        .split("addr=")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    p.wait_for("failed 5 times");
    std::fs::write(
        dir.path().join("trapper/plugin.wat"),
        guest("hostile/loop_in_init.wat"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("trapper/pulp.plugin.toml"),
        "name = \"trapper\"\nversion = \"2\"\nwasm = \"plugin.wat\"\n[limits]\ninit_timeout_ms = 100\n",
    )
    .unwrap();
    let (ok, out) = ctl(dir.path(), &["start", "trapper"]);
    assert!(!ok && out.contains("start trapper"), "{out}");
    let (_, json) = ctl(dir.path(), &["status", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["plugins"][0]["name"], "trapper", "{json}");
    assert_eq!(v["plugins"][0]["state"], "failed", "{json}");
    let ready = support::http(
        &admin,
        "GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(ready.starts_with("HTTP/1.1 503"), "{ready}");
}

/// The auth/api example pair, as a user runs it: `api` calls `auth` in process on
/// each request (`pulp_call`), `pulp check` lists who may call whom, and the links
/// are checked before anything starts (a missing provider, a cycle).
#[test]
fn the_auth_and_api_examples_call_each_other_and_links_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let mut manifests = Vec::new();
    for e in ["auth", "api"] {
        let d = dir.path().join(e);
        std::fs::create_dir_all(&d).unwrap();
        if !support::build_c(
            &root().join(format!("examples/{e}/{e}.c")),
            &d.join(format!("{e}.wasm")),
        ) {
            return;
        }
        let m = d.join("pulp.plugin.toml");
        std::fs::copy(root().join(format!("examples/{e}/pulp.plugin.toml")), &m).unwrap();
        manifests.push(m);
    }
    let out = pulp(dir.path())
        .arg("check")
        .args(&manifests)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("calls: api → auth: depends_on \"auth\""),
        "{text}"
    );

    // Alone, api's consumes names no plugin: refused before anything starts.
    let out = pulp(dir.path())
        .arg("run")
        .arg(&manifests[1])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("plugin \"api\"")
            && err.contains(
                "consumes \"auth\", but no other plugin of this run is named so or provides it"
            ),
        "{err}"
    );
    // A cycle in depends_on, named.
    let a = plugin(
        dir.path(),
        "ca",
        &guest("reactor.wat"),
        "depends_on = [\"cb\"]\n",
    );
    let b = plugin(
        dir.path(),
        "cb",
        &guest("reactor.wat"),
        "depends_on = [\"ca\"]\n",
    );
    let out = pulp(dir.path())
        .arg("run")
        .arg(&a)
        .arg(&b)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("depends_on makes a cycle: ca → cb → ca"),
        "{err}"
    );

    // Given in any order, auth starts first (api depends on it).
    let mut cmd = pulp(dir.path());
    cmd.args(["run", "--listen", "127.0.0.1:0"])
        .arg(&manifests[1])
        .arg(&manifests[0]);
    let mut p = Running::start(cmd);
    let listen = p.listen_addr();
    p.wait_for("control socket");
    let started: Vec<&String> = p
        .seen
        .iter()
        .filter(|l| l.contains("plugin started"))
        .collect();
    assert!(started[0].contains("plugin=\"auth\""), "{started:?}");
    let whoami = |auth: &str| {
        support::http(
            &listen,
            &format!("GET /whoami HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n"),
        )
    };
    let a = whoami("Authorization: Bearer demo-token\r\n");
    assert!(
        a.starts_with("HTTP/1.1 200") && a.ends_with("hello ada\n"),
        "{a}"
    );
    let a = whoami("Authorization: Bearer forged\r\n");
    assert!(
        a.starts_with("HTTP/1.1 401") && a.ends_with("unknown token\n"),
        "{a}"
    );
    let a = whoami("");
    assert!(a.starts_with("HTTP/1.1 401"), "{a}");
    p.signal("TERM");
    let (st, out) = p.exit_within(10);
    assert!(st.success(), "{out}");
}
