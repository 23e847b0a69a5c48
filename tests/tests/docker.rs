//! spawn.docker against a real Docker engine (Debian's docker.io) with a local image
//! made from busybox-static. Without an engine these tests print a loud skip
//! (`PULP_REQUIRE_DOCKER=1` or `PULP_REQUIRE_ALL=1` makes that a failure).

use pulp_tests::toolchain::{containers_of, TEST_IMAGE};
use pulp_tests::{docker, Driver, Fixture, Outcome};
use rmpv::Value as V;

fn decl(settings: &str) -> String {
    format!(
        "capabilities = [\"spawn.docker\", \"test.record\"]\n[capability.\"spawn.docker\"]\nimages = [\"pulp-test/*\"]\n{settings}"
    )
}

/// A driver plugin with a name no other test uses (labels are per plugin name).
fn driver(f: &Fixture, name: &str, settings: &str) -> Option<Driver> {
    if !docker() {
        return None;
    }
    Driver::start(f, name, &decl(settings))
}

fn call(d: &mut Driver, import: &str, fields: Vec<(&str, V)>) -> Outcome {
    let v = V::Map(fields.into_iter().map(|(k, v)| (V::from(k), v)).collect());
    let mut req = Vec::new();
    rmpv::encode::write_value(&mut req, &v).unwrap();
    d.call(import, &req, b"")
}

fn value(o: &Outcome) -> V {
    assert_eq!(o.status, 0, "{o:?}");
    rmpv::decode::read_value(&mut &o.result[..]).unwrap()
}

fn cmd(args: &[&str]) -> V {
    V::Array(args.iter().map(|a| V::from(*a)).collect())
}

#[test]
fn run_to_completion_with_stdin_stdout_stderr_exit_codes_and_a_timeout() {
    let f = Fixture::new();
    let Some(mut d) = driver(&f, "dk-run", "") else {
        return;
    };
    let r = value(&call(
        &mut d,
        "docker_run",
        vec![
            ("image", V::from(TEST_IMAGE)),
            ("cmd", cmd(&["echo", "hello"])),
        ],
    ));
    assert_eq!(r["exit_code"].as_i64(), Some(0));
    assert_eq!(r["stdout"].as_slice(), Some(&b"hello\n"[..]));
    assert_eq!(r["timed_out"].as_bool(), Some(false));

    let r = value(&call(
        &mut d,
        "docker_run",
        vec![
            ("image", V::from(TEST_IMAGE)),
            ("cmd", cmd(&["sh", "-c", "echo oops >&2; exit 3"])),
        ],
    ));
    assert_eq!(r["exit_code"].as_i64(), Some(3));
    assert_eq!(r["stderr"].as_slice(), Some(&b"oops\n"[..]));
    assert_eq!(r["stdout"].as_slice(), Some(&b""[..]));

    let r = value(&call(
        &mut d,
        "docker_run",
        vec![
            ("image", V::from(TEST_IMAGE)),
            ("cmd", cmd(&["cat"])),
            ("stdin", V::Binary(b"piped through\n".to_vec())),
            ("env", V::Map(vec![(V::from("A"), V::from("1"))])),
        ],
    ));
    assert_eq!(r["stdout"].as_slice(), Some(&b"piped through\n"[..]));

    let r = value(&call(
        &mut d,
        "docker_run",
        vec![
            ("image", V::from(TEST_IMAGE)),
            ("cmd", cmd(&["sh", "-c", "echo $A; echo started; sleep 60"])),
            ("env", V::Map(vec![(V::from("A"), V::from("x"))])),
            ("timeout_ms", V::from(1500)),
        ],
    ));
    assert_eq!(r["timed_out"].as_bool(), Some(true), "{r}");
    assert_eq!(
        r["stdout"].as_slice(),
        Some(&b"x\nstarted\n"[..]),
        "output so far is kept"
    );
    assert_eq!(r["exit_code"].as_i64(), Some(137), "killed");
    assert!(
        containers_of("dk-run").is_empty(),
        "run removes its containers"
    );
}

#[test]
fn create_exec_files_logs_stats_restart_events_destroy() {
    let f = Fixture::new();
    let Some(mut d) = driver(&f, "dk-life", "") else {
        return;
    };
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    let c = value(&call(
        &mut d,
        "docker_create",
        vec![
            ("image", V::from(TEST_IMAGE)),
            ("cmd", cmd(&["sh", "-c", "echo booted; exec sleep 3600"])),
            ("mem_limit_mb", V::from(64)),
            ("name", V::from("worker")),
        ],
    ));
    let id = c["id"].as_str().unwrap().to_string();
    assert_eq!(c["name"].as_str(), Some("pulp-dk-life-worker"));
    let by_id = |id: &str| vec![("id", V::from(id))];

    let g = value(&call(&mut d, "docker_get", by_id(&id)));
    assert_eq!(g["state"].as_str(), Some("running"));
    assert_eq!(g["image"].as_str(), Some(TEST_IMAGE));
    assert!(g["exit_code"].is_nil());

    let e = value(&call(
        &mut d,
        "docker_exec",
        vec![
            ("id", V::from(id.as_str())),
            ("cmd", cmd(&["sh", "-c", "echo in; exit 4"])),
        ],
    ));
    assert_eq!(e["output"].as_str(), Some("in\n"));
    assert_eq!(e["exit_code"].as_i64(), Some(4));

    let w = call(
        &mut d,
        "docker_files_write",
        vec![
            ("id", V::from(id.as_str())),
            ("path", V::from("/tmp/note.txt")),
            ("data", V::Binary(b"written \x00 bytes".to_vec())),
        ],
    );
    assert_eq!(w.status, 0, "{w:?}");
    let r = value(&call(
        &mut d,
        "docker_files_read",
        vec![
            ("id", V::from(id.as_str())),
            ("path", V::from("/tmp/note.txt")),
        ],
    ));
    assert_eq!(r.as_slice(), Some(&b"written \x00 bytes"[..]));
    let missing = call(
        &mut d,
        "docker_files_read",
        vec![("id", V::from(id.as_str())), ("path", V::from("/tmp/none"))],
    );
    assert_eq!(missing.status, 6, "{missing:?}");
    let rel = call(
        &mut d,
        "docker_files_read",
        vec![("id", V::from(id.as_str())), ("path", V::from("tmp/../x"))],
    );
    assert_eq!(rel.status, 4);

    let l = value(&call(&mut d, "docker_logs", by_id(&id)));
    assert_eq!(l["logs"].as_str(), Some("booted\n"));

    let s = value(&call(&mut d, "docker_stats", by_id(&id)));
    assert_eq!(
        s["mem_limit_bytes"].as_u64(),
        Some(64 << 20),
        "the memory limit is applied"
    );
    assert!(s["mem_bytes"].as_u64().unwrap() > 0);
    assert!(s["cpu_percent"].as_f64().unwrap() >= 0.0);

    assert_eq!(call(&mut d, "docker_restart", by_id(&id)).status, 0);
    // The restart returns once the container is started; its command prints a
    // moment later (on a loaded machine, after the first `docker_logs`).
    let mut logs = String::new();
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while logs != "booted\nbooted\n" && std::time::Instant::now() < until {
        std::thread::sleep(std::time::Duration::from_millis(50));
        let l = value(&call(&mut d, "docker_logs", by_id(&id)));
        logs = l["logs"].as_str().unwrap_or("").to_string();
    }
    assert_eq!(logs, "booted\nbooted\n", "it ran again");

    let list = value(&call(&mut d, "docker_list", vec![]));
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"].as_str(), Some(id.as_str()));
    let none = value(&call(
        &mut d,
        "docker_list",
        vec![(
            "filter",
            V::Map(vec![(V::from("state"), V::from("exited"))]),
        )],
    ));
    assert!(none.as_array().unwrap().is_empty());

    assert_eq!(call(&mut d, "docker_destroy", by_id(&id)).status, 0);
    assert_eq!(call(&mut d, "docker_get", by_id(&id)).status, 6);
    let ev = value(&call(
        &mut d,
        "docker_events_poll",
        vec![("since_nanos", V::from(since))],
    ));
    let actions: Vec<&str> = ev
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["container_id"].as_str() == Some(id.as_str()))
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for want in ["create", "start", "die", "destroy"] {
        assert!(actions.contains(&want), "{want} in {actions:?}");
    }
}

#[test]
fn grants_are_enforced_and_plugins_see_only_their_own_containers() {
    let f = Fixture::new();
    let Some(mut a) = driver(&f, "dk-own-a", "max_containers = 1\nmax_memory_mb = 128") else {
        return;
    };
    let mut b = driver(&f, "dk-own-b", "").unwrap();
    let run = |d: &mut Driver, extra: Vec<(&str, V)>| {
        let mut fields = vec![("cmd", cmd(&["true"]))];
        fields.extend(extra);
        call(d, "docker_run", fields)
    };
    let o = run(&mut a, vec![("image", V::from("debian:12"))]);
    assert_eq!(o.status, 9, "{o:?}");
    assert!(o.error.contains("debian:12"), "{}", o.error);
    assert_eq!(
        run(
            &mut a,
            vec![("image", V::from(TEST_IMAGE)), ("network", V::from(true))]
        )
        .status,
        9
    );
    assert_eq!(
        run(
            &mut a,
            vec![
                ("image", V::from(TEST_IMAGE)),
                ("mem_limit_mb", V::from(512))
            ]
        )
        .status,
        9
    );
    let missing = run(&mut a, vec![("image", V::from("pulp-test/absent:1"))]);
    assert_eq!(missing.status, 6, "not pulled: {missing:?}");

    let c = value(&call(
        &mut a,
        "docker_create",
        vec![
            ("image", V::from(TEST_IMAGE)),
            ("cmd", cmd(&["sleep", "3600"])),
        ],
    ));
    let id = c["id"].as_str().unwrap().to_string();
    let more = call(
        &mut a,
        "docker_create",
        vec![
            ("image", V::from(TEST_IMAGE)),
            ("cmd", cmd(&["sleep", "3600"])),
        ],
    );
    assert_eq!(more.status, 9, "max_containers: {more:?}");

    // Every import that takes a container id: 6, as if the container did not exist,
    // with last_error naming the id and the calling plugin; and nothing happens to it.
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
        - 60_000_000_000;
    let short = &id[..12];
    for (import, extra) in [
        ("docker_get", vec![]),
        ("docker_destroy", vec![]),
        ("docker_restart", vec![]),
        ("docker_logs", vec![]),
        ("docker_stats", vec![]),
        ("docker_exec", vec![("cmd", cmd(&["true"]))]),
        ("docker_files_read", vec![("path", V::from("/etc/passwd"))]),
        (
            "docker_files_write",
            vec![
                ("path", V::from("/tmp/planted")),
                ("data", V::Binary(b"from b".to_vec())),
            ],
        ),
    ] {
        for who in [id.as_str(), short] {
            let mut fields = vec![("id", V::from(who))];
            fields.extend(extra.clone());
            let o = call(&mut b, import, fields);
            assert_eq!(
                o.status, 6,
                "{import} on another plugin's container: {}",
                o.error
            );
            assert_eq!(
                o.error,
                format!("{import}: no container {who} of plugin \"dk-own-b\""),
                "{import}"
            );
        }
    }
    assert_eq!(
        inspect(&id, "{{.State.Running}} {{.RestartCount}}"),
        "true 0"
    );
    let planted = call(
        &mut a,
        "docker_files_read",
        vec![
            ("id", V::from(id.as_str())),
            ("path", V::from("/tmp/planted")),
        ],
    );
    assert_eq!(
        planted.status, 6,
        "b's docker_files_write wrote: {planted:?}"
    );
    assert!(value(&call(&mut b, "docker_list", vec![]))
        .as_array()
        .unwrap()
        .is_empty());
    let seen_by_b = value(&call(
        &mut b,
        "docker_events_poll",
        vec![("since_nanos", V::from(since))],
    ));
    assert!(
        !seen_by_b
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["container_id"].as_str() == Some(id.as_str())),
        "b sees a's container's events: {seen_by_b}"
    );
    assert_eq!(
        value(&call(
            &mut a,
            "docker_get",
            vec![("id", V::from(&id[..12]))]
        ))["id"]
            .as_str(),
        Some(id.as_str())
    );

    // No network unless granted: the container has only loopback.
    let mode = std::process::Command::new("docker")
        .args([
            "inspect",
            "-f",
            "{{.HostConfig.NetworkMode}} {{.HostConfig.Privileged}} {{.HostConfig.PidsLimit}}",
            &id,
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&mode.stdout).trim(),
        "none false 256"
    );
    let listener = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let e = value(&call(
        &mut a,
        "docker_exec",
        vec![
            ("id", V::from(id.as_str())),
            (
                "cmd",
                cmd(&[
                    "wget",
                    "-T",
                    "2",
                    "-q",
                    "-O",
                    "-",
                    &format!("http://172.17.0.1:{port}/"),
                ]),
            ),
        ],
    ));
    assert_ne!(e["exit_code"].as_i64(), Some(0), "{e}");
    assert!(listener.accept().is_err(), "no connection reached the host");

    // Closing the plugin removes its containers.
    drop(a);
    assert!(containers_of("dk-own-a").is_empty());
}

#[test]
fn an_unreachable_engine_is_10_and_nothing_hangs() {
    let dir = tempfile::tempdir().unwrap();
    let sock = format!("unix://{}/none.sock", dir.path().display());
    let f = Fixture::with_settings(
        [("docker".to_string(), toml::toml! { host = (sock.clone()) })].into(),
    );
    let Some(mut d) = Driver::start(&f, "dk-down", &decl("")) else {
        return;
    };
    let o = call(
        &mut d,
        "docker_run",
        vec![("image", V::from(TEST_IMAGE)), ("cmd", cmd(&["true"]))],
    );
    assert_eq!(o.status, 10, "{o:?}");
    assert!(o.error.contains("none.sock"), "{}", o.error);
    assert_eq!(call(&mut d, "docker_list", vec![]).status, 10);
}

#[test]
fn jobs_example_runs_a_posted_command_in_a_container() {
    if !docker() {
        return;
    }
    let f = Fixture::new();
    let Some(wasm) = pulp_tests::c_module("examples/jobs/jobs.c") else {
        return;
    };
    let extra = pulp_tests::example_manifest("jobs");
    let runtime = f.run_module("jobs-example", &wasm, &extra, 1);
    let addr = ext_http::listening(f.host.shared()).unwrap();
    let post = |body: &str| {
        pulp_tests::raw_http(
            addr,
            &format!(
                "POST /jobs HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            ),
        )
    };
    let ok = post("echo hello jobs");
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    assert!(ok.contains("x-exit-code: 0"), "{ok}");
    assert!(ok.ends_with("\r\n\r\nhello jobs\n"), "{ok}");
    let failed = post("sh -c false");
    assert!(failed.contains("x-exit-code: 1"), "{failed}");
    runtime.stop();
    assert!(containers_of("jobs-example").is_empty());
}

/// Waits (at most `secs`) until `what` gives `Some`; panics with `why` otherwise.
fn wait_for<T>(secs: u64, why: &str, mut what: impl FnMut() -> Option<T>) -> T {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(t) = what() {
            return t;
        }
        assert!(std::time::Instant::now() < until, "{why} (waited {secs} s)");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn a_long_docker_call_does_not_hold_up_other_plugins_or_the_listener() {
    let f = Fixture::new();
    let Some(d) = driver(&f, "dk-slow", "") else {
        return;
    };
    let Some(wasm) = pulp_tests::c_module("examples/echo/echo.c") else {
        return;
    };
    // Both plugins on one runtime: the driver's docker_run is a step like any other.
    let mut runtime = f.run_module(
        "dk-echo",
        &wasm,
        "capabilities = [\"transport.http.inbound\", \"transport.ws.inbound\", \"transport.sse\"]",
        1,
    );
    let addr = ext_http::listening(f.host.shared()).unwrap();
    pulp_tests::records("dk-slow");
    let slow = runtime.spawn(d.plugin).unwrap();
    // The container waits for a file only this test makes, after the echo plugin has
    // answered: docker_run cannot return before then, whatever the clock says.
    let mut req = Vec::new();
    rmpv::encode::write_value(
        &mut req,
        &V::Map(vec![
            (V::from("image"), V::from(TEST_IMAGE)),
            (
                V::from("cmd"),
                cmd(&[
                    "sh",
                    "-c",
                    "until [ -e /tmp/go ]; do sleep 0.05; done; echo released",
                ]),
            ),
        ]),
    )
    .unwrap();
    // (A crashed earlier run of this test may have left one, under another host label.)
    let before = containers_of("dk-slow");
    slow.events()
        .post("test", Driver::call_event("docker_run", &req, b""))
        .unwrap();
    let id = wait_for(30, "docker_run's container never appeared", || {
        containers_of("dk-slow")
            .into_iter()
            .find(|c| !before.contains(c))
    });
    wait_for(30, "docker_run's container never ran", || {
        (inspect(&id, "{{.State.Running}}") == "true").then_some(())
    });

    // The docker_run step is in flight (its container is waiting): the other plugin
    // answers through the shared listener all the same.
    for i in 0..20 {
        let out = pulp_tests::raw_http(
            addr,
            &format!("GET /echo/n{i} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        );
        assert!(
            out.ends_with(&format!("\r\n\r\nn{i}")),
            "request {i} while docker_run was in flight: {out:?}"
        );
    }
    assert!(
        pulp_tests::records("dk-slow").is_empty(),
        "docker_run returned before its container was released"
    );

    let touched = std::process::Command::new("docker")
        .args(["exec", "-u", "0", &id, "sh", "-c", ": > /tmp/go"])
        .output()
        .unwrap();
    assert!(touched.status.success(), "releasing: {touched:?}");
    let record = wait_for(30, "docker_run never returned after the release", || {
        pulp_tests::records("dk-slow").pop()
    });
    let r = rmpv::decode::read_value(&mut &record[..]).unwrap();
    assert_eq!(r["status"].as_i64(), Some(0), "{r}");
    let result = rmpv::decode::read_value(&mut r["result"].as_slice().unwrap()).unwrap();
    assert_eq!(
        result["stdout"].as_slice(),
        Some(&b"released\n"[..]),
        "{result}"
    );
    assert_eq!(result["exit_code"].as_i64(), Some(0), "{result}");
    for report in runtime.stop() {
        assert_eq!(report.error, None, "{report:?}");
        assert_eq!(report.restarts, 0, "{report:?}");
    }
    assert!(
        !containers_of("dk-slow").contains(&id),
        "docker_run removed its container"
    );
}

#[test]
fn the_c_header_docker_wrappers_work_end_to_end() {
    if !docker() {
        return;
    }
    let f = Fixture::new();
    let Some(wasm) = pulp_tests::c_guest("docker_kit.c") else {
        return;
    };
    let mut p = f.load_module("dk-kit", &wasm, &decl("")).unwrap();
    p.init().unwrap();
    pulp_tests::records("dk-kit");
    let ev = pulp_ext::Event::new("go", &std::collections::BTreeMap::<String, u8>::new()).unwrap();
    p.step_event(Some(&ev)).unwrap();
    let got: Vec<String> = pulp_tests::records("dk-kit")
        .into_iter()
        .map(|r| String::from_utf8(r).unwrap())
        .collect();
    assert_eq!(got, ["ok 0 "]);
}

/// `docker inspect -f <format> <id>`, trimmed.
fn inspect(id: &str, format: &str) -> String {
    let o = std::process::Command::new("docker")
        .args(["inspect", "-f", format, id])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// A long-lived container of the driver's plugin: its id.
fn sleeper(d: &mut Driver) -> String {
    let c = value(&call(
        d,
        "docker_create",
        vec![
            ("image", V::from(TEST_IMAGE)),
            ("cmd", cmd(&["sleep", "3600"])),
        ],
    ));
    c["id"].as_str().unwrap().to_string()
}

/// The `field` of `/proc/self/status` of a process exec'd in the container.
fn proc_status(d: &mut Driver, id: &str, field: &str) -> String {
    let e = value(&call(
        d,
        "docker_exec",
        vec![
            ("id", V::from(id)),
            ("cmd", cmd(&["cat", "/proc/self/status"])),
        ],
    ));
    let out = e["output"].as_str().unwrap();
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in {out}"))
        .trim()
        .to_string()
}

#[test]
fn containers_drop_every_capability_and_run_as_nobody_by_default() {
    let f = Fixture::new();
    let Some(mut d) = driver(&f, "dk-caps", "") else {
        return;
    };
    let id = sleeper(&mut d);
    assert_eq!(inspect(&id, "{{json .HostConfig.CapDrop}}"), "[\"ALL\"]");
    assert_eq!(inspect(&id, "{{json .HostConfig.CapAdd}}"), "null");
    assert_eq!(
        inspect(&id, "{{json .HostConfig.SecurityOpt}}"),
        "[\"no-new-privileges\"]"
    );
    assert_eq!(inspect(&id, "{{.Config.User}}"), "65534:65534");
    // What the process inside actually holds.
    assert_eq!(proc_status(&mut d, &id, "CapEff"), "0000000000000000");
    assert_eq!(proc_status(&mut d, &id, "CapBnd"), "0000000000000000");
    assert_eq!(proc_status(&mut d, &id, "NoNewPrivs"), "1");
    assert!(proc_status(&mut d, &id, "Uid").starts_with("65534\t"));
    assert!(proc_status(&mut d, &id, "Gid").starts_with("65534\t"));
    // No mounts, no binds, no volumes, nothing privileged.
    assert_eq!(inspect(&id, "{{json .Mounts}}"), "[]");
    assert_eq!(inspect(&id, "{{json .HostConfig.Binds}}"), "null");
    assert_eq!(inspect(&id, "{{json .HostConfig.Mounts}}"), "null");
    assert_eq!(inspect(&id, "{{json .HostConfig.VolumesFrom}}"), "null");
    assert_eq!(inspect(&id, "{{.HostConfig.Privileged}}"), "false");
    assert_eq!(inspect(&id, "{{json .HostConfig.Devices}}"), "null");
}

#[test]
fn granted_capabilities_and_user_are_all_a_container_gets() {
    let f = Fixture::new();
    let Some(mut d) = driver(
        &f,
        "dk-caps-grant",
        "cap_add = [\"CHOWN\", \"kill\"]\nuser = \"0:0\"",
    ) else {
        return;
    };
    let id = sleeper(&mut d);
    assert_eq!(inspect(&id, "{{json .HostConfig.CapDrop}}"), "[\"ALL\"]");
    assert_eq!(
        inspect(&id, "{{json .HostConfig.CapAdd}}"),
        "[\"CAP_CHOWN\",\"CAP_KILL\"]"
    );
    assert!(proc_status(&mut d, &id, "Uid").starts_with("0\t"));
    // CAP_CHOWN is bit 0, CAP_KILL bit 5: nothing else.
    assert_eq!(proc_status(&mut d, &id, "CapEff"), "0000000000000021");

    // The image's own user when asked for.
    let mut own = driver(&f, "dk-caps-image", "user = \"image\"").unwrap();
    let id = sleeper(&mut own);
    assert_eq!(inspect(&id, "{{.Config.User}}"), "");

    // A capability that gives the host away is refused at load, by name.
    for (bad, named) in [
        ("cap_add = [\"SYS_ADMIN\"]", "SYS_ADMIN"),
        ("cap_add = [\"NET_RAW\"]", "NET_RAW"),
        ("cap_add = [\"ALL\"]", "ALL"),
        ("user = \"a b\"", "a b"),
    ] {
        let wasm = pulp_tests::c_guest("driver.c").unwrap();
        let e = f
            .load_module("dk-caps-bad", &wasm, &decl(bad))
            .err()
            .unwrap_or_else(|| panic!("{bad} was accepted"))
            .to_string();
        assert!(e.contains(named) && e.contains("spawn.docker"), "{e}");
    }
}

#[test]
fn container_logs_are_capped_on_disk_and_docker_logs_still_reads_them() {
    let f = Fixture::new();
    let Some(mut d) = driver(&f, "dk-logcap", "max_output_bytes = 65536") else {
        return;
    };
    // About 1.4 MB of output, then a marker.
    let c = value(&call(
        &mut d,
        "docker_create",
        vec![
            ("image", V::from(TEST_IMAGE)),
            (
                "cmd",
                cmd(&[
                    "sh",
                    "-c",
                    "i=0; while [ $i -lt 20000 ]; do echo 0123456789012345678901234567890123456789012345678901234567890123456789; i=$((i+1)); done; echo done; exec sleep 3600",
                ]),
            ),
        ],
    ));
    let id = c["id"].as_str().unwrap().to_string();
    assert_eq!(inspect(&id, "{{.HostConfig.LogConfig.Type}}"), "json-file");
    let mut last = String::new();
    for _ in 0..600 {
        let l = value(&call(
            &mut d,
            "docker_logs",
            vec![("id", V::from(id.as_str())), ("tail", V::from(1))],
        ));
        last = l["logs"].as_str().unwrap().to_string();
        if last == "done\n" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(last, "done\n", "docker_logs reads the capped log");
    let path = inspect(&id, "{{.LogPath}}");
    let on_disk: u64 = ["", ".1", ".2"]
        .iter()
        .filter_map(|s| std::fs::metadata(format!("{path}{s}")).ok())
        .map(|m| m.len())
        .sum();
    assert!(
        on_disk <= 2 * 65536 + 4096,
        "the engine keeps {on_disk} bytes of logs for a container of a plugin with max_output_bytes = 65536"
    );
}

#[test]
fn docker_run_output_goes_only_through_the_capabilitys_bounded_buffer() {
    let f = Fixture::new();
    let Some(mut d) = driver(&f, "dk-runlog", "") else {
        return;
    };
    let run = std::thread::spawn(move || {
        let o = call(
            &mut d,
            "docker_run",
            vec![
                ("image", V::from(TEST_IMAGE)),
                ("cmd", cmd(&["sh", "-c", "echo hi; sleep 3"])),
            ],
        );
        (value(&o), d)
    });
    let mut seen = None;
    while seen.is_none() && !run.is_finished() {
        seen = containers_of("dk-runlog").into_iter().next();
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let id = seen.expect("the run's container was listed while it ran");
    assert_eq!(inspect(&id, "{{.HostConfig.LogConfig.Type}}"), "none");
    let (r, _d) = run.join().unwrap();
    assert_eq!(r["stdout"].as_slice(), Some(&b"hi\n"[..]));
}

/// `pulp-test/busybox-vol:1`: the test image with `VOLUME /data`.
fn volume_image() -> &'static str {
    const IMAGE: &str = "pulp-test/busybox-vol:1";
    let sh = |script: &str| {
        let o = std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    let has = std::process::Command::new("docker")
        .args(["image", "inspect", IMAGE])
        .output()
        .unwrap()
        .status
        .success();
    if !has {
        sh(&format!(
            "c=$(docker create {TEST_IMAGE} true) && docker export $c | docker import --change 'VOLUME /data' - {IMAGE}; r=$?; docker rm -f $c >/dev/null; exit $r"
        ));
    }
    IMAGE
}

#[test]
fn an_image_volume_becomes_a_bounded_tmpfs_not_a_host_volume() {
    let f = Fixture::new();
    let Some(mut d) = driver(&f, "dk-vol", "") else {
        return;
    };
    let image = volume_image();
    let c = value(&call(
        &mut d,
        "docker_create",
        vec![
            ("image", V::from(image)),
            ("cmd", cmd(&["sleep", "3600"])),
            ("mem_limit_mb", V::from(32)),
        ],
    ));
    let id = c["id"].as_str().unwrap().to_string();
    assert_eq!(
        inspect(&id, "{{range .Mounts}}{{.Type}} {{.Destination}};{{end}}"),
        "tmpfs /data;",
        "no host volume"
    );
    assert_eq!(
        inspect(
            &id,
            "{{range .HostConfig.Mounts}}{{.TmpfsOptions.SizeBytes}}{{end}}"
        ),
        (32u64 << 20).to_string()
    );
    let e = value(&call(
        &mut d,
        "docker_exec",
        vec![
            ("id", V::from(id.as_str())),
            (
                "cmd",
                cmd(&["sh", "-c", "echo kept > /data/f && cat /data/f"]),
            ),
        ],
    ));
    assert_eq!(
        e["output"].as_str(),
        Some("kept\n"),
        "nobody can use it: {e}"
    );
}

/// One `call` step on a plugin whose records are read later (pool replicas share a name).
fn step(p: &mut pulp_host::Plugin, import: &str, fields: Vec<(&str, V)>) {
    let v = V::Map(fields.into_iter().map(|(k, v)| (V::from(k), v)).collect());
    let mut req = Vec::new();
    rmpv::encode::write_value(&mut req, &v).unwrap();
    let event = Driver::call_event(import, &req, b"");
    assert_eq!(p.step_event(Some(&event)).unwrap(), 0);
}

const POOL: &str = "stateless = true\n";

fn pooled(settings: &str, instances: u32) -> String {
    format!(
        "{POOL}{}\n[limits]\ninstances = {instances}",
        decl(settings)
    )
}

#[test]
fn max_containers_holds_when_a_pool_creates_at_once() {
    let f = Fixture::new();
    let name = "dk-race";
    let Some(d) = (if docker() {
        Driver::start(&f, name, &pooled("max_containers = 2", 4))
    } else {
        None
    }) else {
        return;
    };
    let mut pool = vec![d.plugin];
    for _ in 1..4 {
        let mut r = pool[0].replica().unwrap();
        r.init().unwrap();
        pool.push(r);
    }
    pulp_tests::records(name);
    let go = std::sync::Arc::new(std::sync::Barrier::new(pool.len()));
    let threads: Vec<_> = pool
        .into_iter()
        .map(|mut p| {
            let go = go.clone();
            std::thread::spawn(move || {
                go.wait();
                for _ in 0..2 {
                    step(
                        &mut p,
                        "docker_create",
                        vec![
                            ("image", V::from(TEST_IMAGE)),
                            ("cmd", cmd(&["sleep", "3600"])),
                        ],
                    );
                }
                p
            })
        })
        .collect();
    let pool: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let statuses: Vec<i64> = pulp_tests::records(name)
        .iter()
        .map(|r| {
            rmpv::decode::read_value(&mut &r[..]).unwrap()["status"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(statuses.len(), 8);
    assert_eq!(
        containers_of(name).len(),
        2,
        "exactly max_containers exist (statuses {statuses:?})"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 0).count(),
        2,
        "{statuses:?}"
    );
    assert!(statuses.iter().all(|s| *s == 0 || *s == 9), "{statuses:?}");
    drop(pool);
    assert!(containers_of(name).is_empty());
}

#[test]
fn a_replica_starting_restarting_or_closing_leaves_its_siblings_containers_running() {
    let f = Fixture::new();
    let name = "dk-siblings";
    let Some(mut a) = (if docker() {
        Driver::start(&f, name, &pooled("", 2))
    } else {
        None
    }) else {
        return;
    };
    let x = sleeper(&mut a);
    let only_x = vec![x.clone()];
    let running = |id: &str| inspect(id, "{{.State.Running}}") == "true";

    let mut b = Driver {
        plugin: a.plugin.replica().unwrap(),
    };
    b.plugin.init().unwrap();
    assert_eq!(
        containers_of(name),
        only_x,
        "a new replica keeps its sibling's container"
    );
    assert!(running(&x));

    sleeper(&mut b);
    b.plugin.restart().unwrap();
    assert_eq!(
        containers_of(name),
        only_x,
        "a restarted replica removes its own container, not its sibling's"
    );
    assert!(running(&x));
    sleeper(&mut b);
    drop(b);
    assert_eq!(
        containers_of(name),
        only_x,
        "a closed replica removes only its own"
    );

    // A container of an instance that is gone (a crash) is removed by the next replica.
    let host = inspect(&x, "{{index .Config.Labels \"pulp.host\"}}");
    let o = std::process::Command::new("docker")
        .args(["create", "--label", &format!("pulp.plugin={name}")])
        .args(["--label", &format!("pulp.host={host}")])
        .args(["--label", "pulp.instance=gone", TEST_IMAGE, "sleep", "3600"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(containers_of(name).len(), 2);
    let mut c = a.plugin.replica().unwrap();
    c.init().unwrap();
    assert_eq!(
        containers_of(name),
        only_x,
        "the dead instance's container was reaped, the live sibling's kept"
    );
    assert!(running(&x));
    drop(c);
    assert_eq!(containers_of(name), only_x);
    drop(a);
    assert!(containers_of(name).is_empty());
}

/// The CPU quota the kernel gives the container's processes: `quota period` in µs,
/// from cgroup v2 (`cpu.max`) or v1 (`cpu.cfs_quota_us`, `cpu.cfs_period_us`).
fn cpu_quota(d: &mut Driver, id: &str) -> String {
    let e = value(&call(
        d,
        "docker_exec",
        vec![
            ("id", V::from(id)),
            (
                "cmd",
                cmd(&[
                    "sh",
                    "-c",
                    "cat /sys/fs/cgroup/cpu.max 2>/dev/null || echo $(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us) $(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us)",
                ]),
            ),
        ],
    ));
    e["output"].as_str().unwrap().trim().to_string()
}

#[test]
fn cpus_are_the_grant_and_more_than_max_cpus_is_refused() {
    let f = Fixture::new();
    let Some(mut d) = driver(&f, "dk-cpu", "cpus = 0.25\nmax_cpus = 0.75") else {
        return;
    };
    // The default is `cpus`, and what is asked for within `max_cpus` is applied as is.
    let default = sleeper(&mut d);
    assert_eq!(inspect(&default, "{{.HostConfig.NanoCpus}}"), "250000000");
    assert_eq!(cpu_quota(&mut d, &default), "25000 100000");
    let asked = value(&call(
        &mut d,
        "docker_create",
        vec![
            ("image", V::from(TEST_IMAGE)),
            ("cmd", cmd(&["sleep", "3600"])),
            ("cpu_limit", V::from(0.5)),
        ],
    ));
    let asked = asked["id"].as_str().unwrap();
    assert_eq!(inspect(asked, "{{.HostConfig.NanoCpus}}"), "500000000");
    assert_eq!(cpu_quota(&mut d, asked), "50000 100000");

    // Over max_cpus: 9 for docker_create and docker_run alike, and no container.
    let before = containers_of("dk-cpu");
    for (import, over) in [
        ("docker_create", 0.8),
        ("docker_run", 0.76),
        ("docker_run", f64::INFINITY),
    ] {
        let o = call(
            &mut d,
            import,
            vec![
                ("image", V::from(TEST_IMAGE)),
                ("cmd", cmd(&["true"])),
                ("cpu_limit", V::from(over)),
            ],
        );
        assert_eq!(o.status, 9, "{import} with cpu_limit {over}: {}", o.error);
        assert!(
            o.error.contains("cpu_limit") && o.error.contains("max_cpus (0.75)"),
            "{}",
            o.error
        );
    }
    assert_eq!(containers_of("dk-cpu"), before);

    // A grant whose default is over its own ceiling does not load.
    let wasm = pulp_tests::c_guest("driver.c").unwrap();
    for bad in ["cpus = 2.0\nmax_cpus = 1.0", "cpus = 0.0"] {
        let e = f
            .load_module("dk-cpu-bad", &wasm, &decl(bad))
            .err()
            .unwrap_or_else(|| panic!("{bad} was accepted"))
            .to_string();
        assert!(
            e.contains("spawn.docker") && e.contains("cpus = ") && e.contains("max_cpus"),
            "{e}"
        );
    }
}

#[test]
fn two_hosts_on_one_engine_never_reap_each_others_containers() {
    // Two hosts (two storage roots) with a plugin of the same name on the same engine.
    let (one, two) = (Fixture::new(), Fixture::new());
    let name = "dk-twohosts";
    let Some(mut a) = driver(&one, name, "") else {
        return;
    };
    let before = containers_of(name);
    let x = sleeper(&mut a);
    let running = |id: &str| {
        containers_of(name).iter().any(|c| c == id) && inspect(id, "{{.State.Running}}") == "true"
    };

    // The other host's plugin starting (it reaps what its gone instances left) ...
    let mut b = driver(&two, name, "").unwrap();
    assert!(running(&x), "host two's start reaped host one's container");
    let y = sleeper(&mut b);
    let seen = |d: &mut Driver| -> Vec<String> {
        value(&call(d, "docker_list", vec![]))
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        seen(&mut a),
        std::slice::from_ref(&x),
        "each host lists only its own"
    );
    assert_eq!(
        seen(&mut b),
        std::slice::from_ref(&y),
        "each host lists only its own"
    );
    let o = call(&mut b, "docker_destroy", vec![("id", V::from(x.as_str()))]);
    assert_eq!(o.status, 6, "{}", o.error);

    // ... restarting (its old instance's containers go, not the other host's) ...
    b.plugin.restart().unwrap();
    assert!(
        running(&x),
        "host two's restart reaped host one's container"
    );
    assert!(!containers_of(name).contains(&y), "its own went");
    sleeper(&mut b);
    // ... and closing.
    drop(b);
    assert!(running(&x), "host two's close reaped host one's container");
    let mut left = containers_of(name);
    left.retain(|c| !before.contains(c));
    assert_eq!(left, std::slice::from_ref(&x));
    drop(a);
    assert!(!containers_of(name).contains(&x));
}

/// A guest that makes a container in `pulp_init` (like `docker_keeper.wat`) and traps
/// on any step that carries an event (an idle tick's input is the 20-byte header).
fn trap_on_event_guest() -> String {
    let keeper = pulp_tests::guest("docker_keeper.wat");
    let step =
        r#"(func (export "pulp_step") (param $p i32) (param $n i32) (result i32) (i32.const 0))"#;
    assert!(keeper.contains(step));
    keeper.replace(
        step,
        r#"(func (export "pulp_step") (param $p i32) (param $n i32) (result i32)
    (if (i32.gt_u (local.get $n) (i32.const 20)) (then unreachable))
    (i32.const 0))"#,
    )
}

#[test]
fn an_instances_containers_go_when_it_traps_or_restarts() {
    if !docker() {
        return;
    }
    let f = Fixture::new();
    let name = "dk-trap";
    let before = containers_of(name);
    let new = || -> Vec<String> {
        let mut c = containers_of(name);
        c.retain(|c| !before.contains(c));
        c
    };
    let mut p = f
        .load(
            name,
            &trap_on_event_guest(),
            "capabilities = [\"spawn.docker\"]\n[capability.\"spawn.docker\"]\nimages = [\"pulp-test/busybox:1\"]",
        )
        .unwrap();
    p.init().unwrap();
    let first = new();
    assert_eq!(first.len(), 1, "pulp_init made one container");

    // Restart: the old instance's container goes, the new instance's init makes one.
    p.restart().unwrap();
    let second = new();
    assert_eq!(second.len(), 1, "{second:?}");
    assert_ne!(
        second, first,
        "restart removed the old instance's container"
    );

    // Trap on the runtime: supervision replaces the instance; the trapped one's
    // container goes with it.
    let mut runtime = pulp_host::Runtime::new(pulp_host::RuntimeConfig::default());
    let h = runtime.spawn(p).unwrap();
    h.events()
        .post("test", pulp_ext::Event::from_raw("boom", vec![0x80]))
        .unwrap();
    wait_for(30, "the trapped instance was never replaced", || {
        (h.restarts() == 1).then_some(())
    });
    let third = new();
    assert_eq!(third.len(), 1, "{third:?}");
    assert_ne!(third, second, "the trapped instance's container is gone");
    assert_eq!(h.health(), pulp_host::Health::Running);
    runtime.stop();
    assert!(new().is_empty(), "stopping removed the last one");
}

#[test]
fn an_engine_that_accepts_and_never_answers_is_12_within_the_deadline() {
    if !docker() {
        return;
    }
    // An "engine" that takes connections and says nothing: each is kept open.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let at = silent.local_addr().unwrap();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = accepted.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in silent.incoming().map_while(Result::ok) {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            held.push(c);
        }
    });
    let f = Fixture::with_settings(
        [(
            "docker".to_string(),
            toml::toml! { host = (format!("tcp://{at}")) },
        )]
        .into(),
    );
    // Everything runs on a thread the test waits for with a deadline: a missing
    // deadline in the host fails the test instead of hanging it.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let Some(mut d) = Driver::start(&f, "dk-silent", &decl("timeout_ms = 1000")) else {
            return;
        };
        for (import, fields) in [
            ("docker_list", vec![]),
            (
                "docker_run",
                vec![("image", V::from(TEST_IMAGE)), ("cmd", cmd(&["true"]))],
            ),
            ("docker_get", vec![("id", V::from("abc"))]),
        ] {
            let started = std::time::Instant::now();
            let o = call(&mut d, import, fields);
            tx.send((import, o, started.elapsed())).unwrap();
        }
    });
    for _ in 0..3 {
        let (import, o, took) = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("no answer within 30 s from a call whose deadline is 1 s");
        assert_eq!(o.status, 12, "{import}: {}", o.error);
        assert!(
            o.error
                .contains("no answer from the Docker engine within 1000 ms"),
            "{import}: {}",
            o.error
        );
        assert!(
            took < std::time::Duration::from_millis(2500),
            "{import} returned {took:?} after its 1000 ms deadline"
        );
    }
    assert!(
        accepted.load(std::sync::atomic::Ordering::SeqCst) >= 1,
        "the silent engine was connected to"
    );
}

#[test]
fn output_over_max_output_bytes_is_11() {
    let f = Fixture::new();
    let Some(mut d) = driver(&f, "dk-outcap", "max_output_bytes = 1000") else {
        return;
    };
    let before = containers_of("dk-outcap");
    let run = |d: &mut Driver, script: &str| {
        call(
            d,
            "docker_run",
            vec![
                ("image", V::from(TEST_IMAGE)),
                ("cmd", cmd(&["sh", "-c", script])),
            ],
        )
    };
    // Exactly the limit, stdout and stderr together: kept.
    let r = value(&run(&mut d, "printf '%600s' o; printf '%400s' e >&2"));
    assert_eq!(r["stdout"].as_slice().unwrap().len(), 600);
    assert_eq!(r["stderr"].as_slice().unwrap().len(), 400);
    // One byte more: 11, and the container is gone.
    let o = run(&mut d, "printf '%600s' o; printf '%401s' e >&2");
    assert_eq!(o.status, 11, "{}", o.error);
    assert!(o.error.contains("max_output_bytes (1000)"), "{}", o.error);
    assert_eq!(containers_of("dk-outcap"), before, "docker_run removed it");

    // docker_exec, docker_logs and docker_files_read are held to it too.
    let c = value(&call(
        &mut d,
        "docker_create",
        vec![
            ("image", V::from(TEST_IMAGE)),
            (
                "cmd",
                cmd(&["sh", "-c", "printf '%1001s\\n' x; exec sleep 3600"]),
            ),
        ],
    ));
    let id = c["id"].as_str().unwrap();
    let exec = |d: &mut Driver, n: usize| {
        call(
            d,
            "docker_exec",
            vec![
                ("id", V::from(id)),
                ("cmd", cmd(&["printf", &format!("%{n}s"), "x"])),
            ],
        )
    };
    assert_eq!(
        value(&exec(&mut d, 1000))["output"].as_str().unwrap().len(),
        1000
    );
    let o = exec(&mut d, 1001);
    assert_eq!(o.status, 11, "{}", o.error);
    assert!(o.error.contains("max_output_bytes (1000)"), "{}", o.error);

    let logs = wait_for(30, "the container's output never reached its log", || {
        let o = call(&mut d, "docker_logs", vec![("id", V::from(id))]);
        (o.status != 0 || !o.result.is_empty() && value(&o)["logs"] != V::from("")).then_some(o)
    });
    assert_eq!(logs.status, 11, "{}", logs.error);
    assert!(
        logs.error.contains("max_output_bytes (1000)"),
        "{}",
        logs.error
    );

    for (size, want) in [(1000, 0), (1001, 11), (6000, 11)] {
        let w = call(
            &mut d,
            "docker_files_write",
            vec![
                ("id", V::from(id)),
                ("path", V::from("/tmp/f")),
                ("data", V::Binary(vec![b'z'; size])),
            ],
        );
        assert_eq!(w.status, 0, "{}", w.error);
        let r = call(
            &mut d,
            "docker_files_read",
            vec![("id", V::from(id)), ("path", V::from("/tmp/f"))],
        );
        assert_eq!(r.status, want, "a file of {size} bytes: {}", r.error);
        if want == 0 {
            assert_eq!(value(&r).as_slice().unwrap().len(), size);
        } else {
            assert!(r.error.contains("max_output_bytes (1000)"), "{}", r.error);
        }
    }
}
