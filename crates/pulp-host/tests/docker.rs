//! spawn.docker under `pulp run`: containers are gone after a clean stop, and after
//! `kill -9` the next start removes the leftovers. Needs a Docker engine (a loud
//! skip without one; a failure with `PULP_REQUIRE_DOCKER=1` or `PULP_REQUIRE_ALL=1`).

mod support;

use support::toolchain::{containers_of, docker_or_skip};
use support::{guest, plugin, pulp, skip, Running};

fn engine() -> bool {
    docker_or_skip(skip)
}

#[test]
fn containers_are_reaped_after_kill_9_and_removed_at_a_clean_stop() {
    if !engine() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let name = format!("dk-crash-{}", std::process::id());
    let m = plugin(
        dir.path(),
        &name,
        &guest("docker_keeper.wat"),
        "capabilities = [\"spawn.docker\"]\n[capability.\"spawn.docker\"]\nimages = [\"pulp-test/busybox:1\"]",
    );
    let start = || {
        let mut cmd = pulp(dir.path());
        cmd.arg("run").arg(&m);
        let mut p = Running::start(cmd);
        p.wait_for("plugin started");
        p
    };
    let mut first = start();
    let before = containers_of(&name);
    assert_eq!(before.len(), 1, "pulp_init made one container");
    first.child.kill().unwrap(); // SIGKILL: no detach runs
    first.child.wait().unwrap();
    assert_eq!(containers_of(&name), before, "left behind by the crash");

    let mut second = start();
    let after = containers_of(&name);
    assert_eq!(
        after.len(),
        1,
        "the leftover was reaped; init made a new one"
    );
    assert_ne!(after, before);
    second.signal("TERM");
    let (status, out) = second.exit_within(60);
    assert!(status.success(), "{out}");
    assert!(
        containers_of(&name).is_empty(),
        "a clean stop removes them: {out}"
    );
}

#[test]
fn an_unreachable_engine_fails_init_with_10_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let m = plugin(
        dir.path(),
        "dk-noengine",
        &guest("docker_keeper.wat"),
        "capabilities = [\"spawn.docker\"]\n[capability.\"spawn.docker\"]\nimages = [\"pulp-test/busybox:1\"]",
    );
    let out = pulp(dir.path())
        .env(
            "DOCKER_HOST",
            format!("unix://{}/closed.sock", dir.path().display()),
        )
        .arg("run")
        .arg(m)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    // docker_create's status is the guest's init result: the line must end with it
    // (a bare "10" would also match timestamps and temporary paths).
    assert!(
        err.lines()
            .any(|l| l.ends_with("init failed: plugin \"dk-noengine\": pulp_init returned 10")),
        "init fails with docker_create's status 10: {err}"
    );
    // ... because the engine at the configured socket cannot be reached, said by name.
    let cause = format!(
        "UNAVAILABLE (10): the Docker engine at unix://{}/closed.sock cannot be reached",
        dir.path().display()
    );
    assert!(err.contains(&cause), "no {cause:?} in: {err}");
}
