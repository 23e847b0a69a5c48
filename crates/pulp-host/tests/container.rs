//! The container image (`Dockerfile`, built by `deploy/docker/build-local` from this
//! machine, as CI does without a registry) on the local Docker engine: the echo
//! example answers, the image's HEALTHCHECK reports healthy, `docker stop` shuts pulp
//! down cleanly within the grace period; then the same image as a Docker Swarm
//! service of two replicas that converge healthy. Needs a Docker engine and clang
//! (loud skips without; failures under `PULP_REQUIRE_DOCKER=1` / `PULP_REQUIRE_ALL=1`).

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::toolchain::docker_or_skip;
use support::{build_c, root, skip};

/// Runs `docker args…`; its stdout, or a panic naming the command and its stderr.
fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "docker {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Polls `check` every 250 ms for at most `secs`; the last value it gave.
fn eventually(secs: u64, mut check: impl FnMut() -> Option<String>) -> Option<String> {
    let until = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if Instant::now() > until {
            return None;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The image of this build, and one FROM it with the echo example in /plugins.
/// `None` after a loud skip.
fn echo_image(dir: &std::path::Path) -> Option<String> {
    if !docker_or_skip(skip) {
        return None;
    }
    let base = format!("pulp-test/pulp:{}", std::process::id());
    let built = Command::new(root().join("deploy/docker/build-local"))
        .arg(&base)
        .env("PULP_BIN", env!("CARGO_BIN_EXE_pulp"))
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "build-local: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    let ctx = dir.join("ctx");
    std::fs::create_dir_all(ctx.join("echo")).unwrap();
    if !build_c(
        &root().join("examples/echo/echo.c"),
        &ctx.join("echo/echo.wasm"),
    ) {
        return None;
    }
    std::fs::copy(
        root().join("examples/echo/pulp.plugin.toml"),
        ctx.join("echo/pulp.plugin.toml"),
    )
    .unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {base}\nCOPY echo/ /plugins/\n"),
    )
    .unwrap();
    let tag = format!("pulp-test/echo:{}", std::process::id());
    docker(&["build", "-q", "-t", &tag, ctx.to_str().unwrap()]);
    Some(tag)
}

/// Removes the test's containers, services and images whatever the outcome.
struct Cleanup(Vec<Vec<String>>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        // A service's containers go a moment after `service rm`: an image they use
        // cannot be removed until then.
        for c in self.0.iter().rev() {
            for _ in 0..40 {
                let out = Command::new("docker").args(c).output();
                if out.is_ok_and(|o| o.status.success()) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        }
    }
}

#[test]
fn the_image_serves_echo_reports_healthy_and_stops_cleanly_then_scales_as_a_swarm_service() {
    let dir = tempfile::tempdir().unwrap();
    let Some(image) = echo_image(dir.path()) else {
        return;
    };
    let id = std::process::id();
    let mut cleanup = Cleanup(vec![
        vec!["rmi".into(), format!("pulp-test/pulp:{id}")],
        vec!["rmi".into(), image.clone()],
    ]);

    // One container: answered, healthy, and a clean stop on SIGTERM.
    let name = format!("pulp-echo-{id}");
    cleanup.0.push(vec!["rm".into(), "-f".into(), name.clone()]);
    docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "-p",
        "127.0.0.1::8080",
        &image,
    ]);
    let port = docker(&["port", &name, "8080/tcp"]);
    let addr = port.lines().next().unwrap().to_string();
    let health = eventually(30, || {
        let h = docker(&["inspect", "--format", "{{.State.Health.Status}}", &name]);
        (h == "healthy").then_some(h)
    });
    assert!(
        health.is_some(),
        "not healthy within 30 s: {}",
        docker(&["logs", &name])
    );
    let answer = support::http(
        &addr,
        "GET /echo/from-the-container HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.contains("from-the-container"),
        "{answer}"
    );
    // Non-root, and steerable through `docker exec`.
    let status = docker(&["exec", &name, "pulp", "ctl", "status", "--json"]);
    assert!(status.contains("\"name\": \"echo\""), "{status}");
    let user = docker(&["inspect", "--format", "{{.Config.User}}", &name]);
    assert_eq!(user, "10001:10001");
    let t = Instant::now();
    docker(&["stop", "-t", "10", &name]);
    let took = t.elapsed();
    let code = docker(&["inspect", "--format", "{{.State.ExitCode}}", &name]);
    let logs = Command::new("docker")
        .args(["logs", &name])
        .output()
        .unwrap();
    let logs = String::from_utf8_lossy(&logs.stderr);
    assert_eq!(
        code, "0",
        "pulp exits 0 on SIGTERM (137 would be Docker's kill): {logs}"
    );
    assert!(
        took < Duration::from_secs(10),
        "stopped within the grace period: {took:?}"
    );
    assert!(logs.contains("SIGTERM: stopping"), "{logs}");
    assert!(logs.contains("shut down plugin=\"echo\""), "{logs}");

    // Docker Swarm: two replicas of the stateless echo converge and report healthy.
    let swarm = docker(&["info", "--format", "{{.Swarm.LocalNodeState}}"]);
    if swarm != "active" {
        docker(&["swarm", "init", "--advertise-addr", "127.0.0.1"]);
        cleanup
            .0
            .insert(0, vec!["swarm".into(), "leave".into(), "--force".into()]);
    }
    let service = format!("pulp-echo-svc-{id}");
    cleanup
        .0
        .push(vec!["service".into(), "rm".into(), service.clone()]);
    docker(&[
        "service",
        "create",
        "--detach",
        "--no-resolve-image",
        "--name",
        &service,
        "--replicas",
        "2",
        &image,
    ]);
    let healthy = eventually(60, || {
        let out = docker(&[
            "ps",
            "--filter",
            &format!("label=com.docker.swarm.service.name={service}"),
            "--format",
            "{{.Status}}",
        ]);
        (out.lines().filter(|l| l.contains("(healthy)")).count() == 2).then_some(out)
    });
    assert!(
        healthy.is_some(),
        "two healthy replicas within 60 s: {}",
        docker(&["service", "ps", "--no-trunc", &service])
    );
    let replicas = docker(&[
        "service",
        "ls",
        "--filter",
        &format!("name={service}"),
        "--format",
        "{{.Replicas}}",
    ]);
    assert_eq!(replicas, "2/2");
}
