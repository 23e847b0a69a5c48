//! The guest SDKs inside a real host, the same probe in each language
//! (`tests/guests/rust/probe` with `pdk/rust`, `tests/guests/go_probe` with
//! `pdk/go`): config decoded from the manifest's int64 wire form into the author's
//! types, errors and panics reaching the host log, the plugin restarted after a
//! panic like after any trap.

use std::time::{Duration, Instant};

use pulp_ext::Event;
use pulp_host::{Runtime, RuntimeConfig};
use pulp_tests::{
    capture_all_threads_logs, go_module, msgpack_map, rust_example, Fixture, TestServer,
};

/// The log records (a line with a timestamp and its continuation lines) that name
/// plugin `name`.
fn of(text: &str, name: &str) -> String {
    let quoted = format!("\"{name}\"");
    let mut out = String::new();
    let mut record = String::new();
    for line in text.lines() {
        if line.starts_with("20") && !record.is_empty() {
            if record.contains(&quoted) {
                out.push_str(&record);
            }
            record.clear();
        }
        record.push_str(line);
        record.push('\n');
    }
    if record.contains(&quoted) {
        out.push_str(&record);
    }
    out
}

fn wait_for(logs: &pulp_tests::Logs, name: &str, what: &str) -> String {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let text = of(&logs.text(), name);
        if text.contains(what) {
            return text;
        }
        assert!(Instant::now() < until, "no {what:?} in the log:\n{text}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn config_errors_and_panics_of_a_rust_plugin_reach_the_host() {
    let Some(wasm) = rust_example("probe") else {
        return;
    };
    probe(&wasm, "probe-rust", "panic: panicked at");
}

#[test]
fn config_errors_and_panics_of_a_go_plugin_reach_the_host() {
    let Some(wasm) = go_module("tests/guests/go_probe") else {
        return;
    };
    probe(&wasm, "probe-go", "panic in pulp_step:");
}

/// Drives a probe named `name`; `panicked` starts the SDK's log line for a panic.
fn probe(wasm: &std::path::Path, name: &str, panicked: &str) {
    let logs = capture_all_threads_logs();
    let f = Fixture::new();
    let server = TestServer::start(
        "127.0.0.1",
        TestServer::response("200 OK", &[], b"pong"),
        Duration::ZERO,
    );
    let config = format!(
        "capabilities = [\"storage.fs\", \"transport.http.outbound\"]\n\
         [capability.\"transport.http.outbound\"]\nallowed_hosts = [\"127.0.0.1:{}\"]\n\
         [limits]\ntick_ms = 0\n[config]\nmarker = 424242\ngreeting = \"hé\"\n[config.nested]\nlist = [1, -2, 3000000000]",
        server.addr.port()
    );
    let mut p = f.load_module(name, wasm, &config).unwrap();
    p.init().unwrap();
    // Integers arrive as int64 (0xd3) and fit the plugin's u32 and i64 fields.
    wait_for(
        &logs,
        name,
        r#"probe: marker 424242 greeting "hé" list [1, -2, 3000000000]"#,
    );

    let mut rt = Runtime::new(RuntimeConfig {
        restart_backoff: Duration::from_millis(10),
        ..RuntimeConfig::default()
    });
    let h = rt.spawn(p).unwrap();
    // The wrappers no example uses (fs, entropy, fetch), against the real host.
    let url = format!("http://127.0.0.1:{}/ping", server.addr.port());
    let args = msgpack_map(vec![("url", rmpv::Value::from(url.as_str()))]);
    h.events()
        .post("test", Event::from_raw("imports", args))
        .unwrap();
    wait_for(
        &logs,
        name,
        r#"probe imports: read "hello" then Err(NotFound); escape Err(Invalid); entropy true nonzero; fetch 200 "pong"; metadata Err(Denied)"#,
    );
    h.events()
        .post("test", Event::from_raw("error", vec![0x80]))
        .unwrap();
    wait_for(&logs, name, "the probe was asked to fail (status 4)");
    h.events()
        .post("test", Event::from_raw("panic", vec![0x80]))
        .unwrap();
    let text = wait_for(&logs, name, "restarting it");
    let panic = text
        .find(panicked)
        .unwrap_or_else(|| panic!("the panic's message is logged:\n{text}"));
    assert!(
        text[panic..].contains("the probe was asked to panic"),
        "{text}"
    );
    assert!(
        panic < text.find("restarting it").unwrap(),
        "logged before the trap is reported:\n{text}"
    );
    // The fresh instance is made from the same config and keeps working.
    let until = Instant::now() + Duration::from_secs(20);
    while h.restarts() < 1 {
        assert!(Instant::now() < until, "no restart");
        std::thread::sleep(Duration::from_millis(10));
    }
    h.events()
        .post("test", Event::from_raw("error", vec![0x80]))
        .unwrap();
    let until = Instant::now() + Duration::from_secs(20);
    while of(&logs.text(), name)
        .matches("the probe was asked to fail")
        .count()
        < 2
    {
        assert!(Instant::now() < until, "the restarted plugin did not step");
        std::thread::sleep(Duration::from_millis(10));
    }
    let reports = rt.stop();
    assert_eq!(reports[0].error, None, "{:?}", reports[0]);
}

/// The Go SDK's host-independent parts (msgpack, events, config) have unit tests of
/// their own, run natively with `go test`.
#[test]
fn the_go_sdks_own_unit_tests_pass() {
    let out = std::process::Command::new("go")
        .args(["test", "./..."])
        .current_dir(pulp_tests::root().join("pdk/go"))
        .output();
    match out {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => pulp_tests::skip("Go 1.24 or newer"),
        Err(e) => panic!("go test: {e}"),
        Ok(o) => assert!(
            o.status.success(),
            "go test in pdk/go failed:\n{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    }
}

/// What both probes log after calling every docker wrapper against the real engine.
const DOCKER_KIT: &str = r#"probe docker: run 3 "in" "err\n"; name true; running, listed 1; exec 0 "x\n"; file "data"; logs "started\n"; memory limit true; restarted running; start event true; destroyed then Err(NotFound); other image Err(Denied)"#;

/// Runs the probe's "docker" event: every docker wrapper of the SDK against a real
/// engine and the locally made test image.
fn docker_kit(wasm: &std::path::Path, name: &str) {
    let logs = capture_all_threads_logs();
    let f = Fixture::new();
    let manifest = "capabilities = [\"spawn.docker\"]\n\
         [capability.\"spawn.docker\"]\nimages = [\"pulp-test/*\"]\n\
         [limits]\ntick_ms = 0\ncall_timeout_ms = 60000";
    let mut p = f.load_module(name, wasm, manifest).unwrap();
    p.init().unwrap();
    let mut rt = Runtime::new(RuntimeConfig::default());
    let h = rt.spawn(p).unwrap();
    let args = msgpack_map(vec![(
        "image",
        rmpv::Value::from(pulp_tests::toolchain::TEST_IMAGE),
    )]);
    h.events()
        .post("test", Event::from_raw("docker", args))
        .unwrap();
    let until = Instant::now() + Duration::from_secs(90);
    let text = loop {
        let text = of(&logs.text(), name);
        if text.contains("probe docker:") || text.contains("step ") {
            break text;
        }
        assert!(
            Instant::now() < until,
            "the docker kit did not finish:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(text.contains(DOCKER_KIT), "{text}");
    let reports = rt.stop();
    assert_eq!(reports[0].error, None, "{:?}", reports[0]);
}

#[test]
fn the_rust_sdks_docker_wrappers_work_end_to_end() {
    if !pulp_tests::docker() {
        return;
    }
    let Some(wasm) = rust_example("probe") else {
        return;
    };
    docker_kit(&wasm, "probe-rust-docker");
}

#[test]
fn the_go_sdks_docker_wrappers_work_end_to_end() {
    if !pulp_tests::docker() {
        return;
    }
    let Some(wasm) = go_module("tests/guests/go_probe") else {
        return;
    };
    docker_kit(&wasm, "probe-go-docker");
}

/// A step that returns an error while handling a request: the SDK answers it 500 at
/// once (the client does not wait for the host's request timeout).
fn failed_request(wasm: &std::path::Path, name: &str) {
    let f = Fixture::new();
    let manifest = "capabilities = [\"transport.http.inbound\"]\n[limits]\ntick_ms = 0";
    let rt = f.run_module(name, wasm, manifest, 1);
    let addr = ext_http::listening(f.host.shared()).unwrap();
    let started = Instant::now();
    let (status, _, body) = pulp_tests::http_once(addr, "GET", "/fail", "");
    assert_eq!(
        (status, body.as_str()),
        (500, "the plugin failed while handling this request\n")
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    rt.stop();
}

#[test]
fn a_rust_step_that_fails_on_a_request_answers_it_500() {
    if let Some(wasm) = rust_example("probe") {
        failed_request(&wasm, "probe-rust-500");
    }
}

#[test]
fn a_go_step_that_fails_on_a_request_answers_it_500() {
    if let Some(wasm) = go_module("tests/guests/go_probe") {
        failed_request(&wasm, "probe-go-500");
    }
}
