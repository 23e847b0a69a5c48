//! Record and replay (#18): plugins using every capability are recorded while real
//! clients load them through the runtime, then replayed with the storage deleted
//! and the outbound server gone; the replay must match the recording call for
//! call, and its outputs must be exactly what the clients received.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use pulp_host::replay::{replay, ReplayOptions, StreamReport};
use pulp_host::{Manifest, Plugin, Runtime, RuntimeConfig};
use pulp_tests::toolchain::TEST_IMAGE;
use pulp_tests::{c_guest, docker, listener, Fixture, TestServer};
use tokio_tungstenite::tungstenite::Message;

/// Collects what a replay writes.
#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buf {
    fn lines(&self) -> Vec<serde_json::Value> {
        String::from_utf8(self.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

/// Replays `dir` (one plugin, or all), returning the reports and the outputs.
fn replay_all(dir: &std::path::Path, plugin: Option<&str>) -> (Vec<StreamReport>, Buf) {
    let out = Buf::default();
    let reports = replay(ReplayOptions {
        dir: dir.to_path_buf(),
        plugin: plugin.map(str::to_string),
        outputs: Some(Box::new(out.clone())),
        ..Default::default()
    })
    .unwrap();
    (reports, out)
}

/// Every stream replayed as recorded.
fn assert_identical(reports: &[StreamReport]) {
    for r in reports {
        assert!(
            r.differences.is_empty(),
            "{}: {:?}",
            r.stream,
            r.differences
        );
    }
}

/// The `field` of argument 0 of every output line of `import` by `plugin`'s streams,
/// as text, sorted.
fn sent(lines: &[serde_json::Value], import: &str, field: &str) -> Vec<String> {
    let mut v: Vec<String> = lines
        .iter()
        .filter(|l| l["import"] == import)
        .filter_map(|l| l["args"][0][field].as_str().map(str::to_string))
        .collect();
    v.sort();
    v
}

#[test]
fn every_capability_recorded_under_load_replays_with_identical_outputs() {
    let (Some(every), Some(buggy)) = (c_guest("every_cap.c"), c_guest("buggy.c")) else {
        return;
    };
    let with_docker = docker();
    let server = TestServer::start(
        "127.0.0.1",
        TestServer::response("200 OK", &[], b"pong"),
        Duration::ZERO,
    );
    let f =
        Fixture::recording([("http".to_string(), toml::toml! { listen = "127.0.0.1:0" })].into());
    let docker_cap = if with_docker {
        r#", "spawn.docker""#
    } else {
        ""
    };
    let docker_table = if with_docker {
        format!("[capability.\"spawn.docker\"]\nimages = [\"{TEST_IMAGE}\"]\n")
    } else {
        String::new()
    };
    let every_extra = format!(
        r#"capabilities = ["storage.sqlite", "storage.fs", "transport.http.outbound", "transport.http.inbound", "transport.ws.inbound", "transport.sse"{docker_cap}]
[config]
url = "http://{addr}/ping"
image = "{TEST_IMAGE}"
[capability."transport.http.outbound"]
allowed_hosts = ["{addr}"]
{docker_table}"#,
        addr = server.addr
    );
    let every_m = Manifest::load(f.write_for("rec-every", &every, &every_extra)).unwrap();
    let buggy_m = Manifest::load(f.write_for(
        "rec-buggy",
        &buggy,
        r#"capabilities = ["transport.http.inbound", "storage.sqlite", "entropy"]"#,
    ))
    .unwrap();
    let mut runtime = Runtime::new(RuntimeConfig {
        restart_backoff: Duration::from_millis(5),
        ..RuntimeConfig::default()
    });
    for m in [&every_m, &buggy_m] {
        let mut p = Plugin::load(&f.host, m, Some(&f.registry)).unwrap();
        p.init().unwrap();
        runtime.spawn(p).unwrap();
    }
    let a = listener(&f);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let rt = pulp_tests::rt();

    // The load: four clients at once, each mixing both plugins' routes, a
    // WebSocket conversation each, one SSE subscriber, and one request that
    // triggers buggy's division by zero halfway.
    let (got, echoes, events) = rt.block_on(async {
        let mut sse = client
            .get(format!("http://{a}/leak-sse"))
            .send()
            .await
            .unwrap();
        assert_eq!(sse.status(), 200);
        let mut tasks = Vec::new();
        for c in 0..4u64 {
            let client = client.clone();
            tasks.push(tokio::spawn(async move {
                let mut got = Vec::new();
                let mut echoes = Vec::new();
                let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{a}/leak-ws"))
                    .await
                    .unwrap();
                for i in 0..15u64 {
                    let k = c * 100 + i + 1;
                    let docker_q = if with_docker && i == 7 {
                        "?docker=1"
                    } else {
                        ""
                    };
                    let mut urls = vec![
                        format!("http://{a}/leak/{k}{docker_q}"),
                        format!("http://{a}/share/{k}"),
                        format!("http://{a}/fine"),
                    ];
                    if c == 2 && i == 7 {
                        urls.push(format!("http://{a}/share/0"));
                    }
                    for u in urls {
                        let r = client.get(&u).send().await.unwrap();
                        let status = r.status().as_u16();
                        got.push((u, status, r.text().await.unwrap()));
                    }
                    ws.send(Message::text(format!("ping {k}"))).await.unwrap();
                    match ws.next().await.unwrap().unwrap() {
                        Message::Text(t) => echoes.push(t.to_string()),
                        other => panic!("a WebSocket echo: {other:?}"),
                    }
                }
                ws.close(None).await.unwrap();
                (got, echoes)
            }));
        }
        let (mut got, mut echoes) = (Vec::new(), Vec::new());
        for t in tasks {
            let (g, e) = tokio::time::timeout(Duration::from_secs(120), t)
                .await
                .expect("the clients finish")
                .unwrap();
            got.extend(g);
            echoes.extend(e);
        }
        let mut events = String::new();
        while events.matches("event: life").count() < 60 {
            match tokio::time::timeout(Duration::from_secs(10), sse.chunk()).await {
                Ok(Ok(Some(c))) => events.push_str(std::str::from_utf8(&c).unwrap()),
                other => panic!("SSE: {other:?} after {events:?}"),
            }
        }
        (got, echoes, events)
    });
    let failed: Vec<_> = got
        .iter()
        .filter(|(u, s, _)| *s != 200 && !u.ends_with("/share/0"))
        .collect();
    assert!(
        failed.is_empty(),
        "every request but the buggy one is served: {failed:?}"
    );
    let trapped = got.iter().find(|(u, ..)| u.ends_with("/share/0")).unwrap();
    assert_eq!(trapped.1, 500, "the trap fails its request: {trapped:?}");
    for r in runtime.stop() {
        assert!(r.error.is_none(), "{r:?}");
    }
    f.host.sync_recording();
    assert_eq!(f.host.recording_dropped(), 0, "nothing dropped");

    // Replay with nothing real behind it: no storage, no outbound server.
    drop(server);
    std::fs::remove_dir_all(f.dir.path().join("data")).unwrap();
    let dir = f.recording_dir();
    let (reports, out) = replay_all(&dir, None);
    assert_identical(&reports);
    let stream = |name: &str| {
        reports
            .iter()
            .find(|r| r.stream == format!("{name}/0"))
            .unwrap_or_else(|| panic!("a stream for {name}: {reports:?}"))
    };
    let every_r = stream("rec-every");
    assert!(every_r.entries >= 60 + 8, "{every_r:?}");
    let buggy_r = stream("rec-buggy");
    assert_eq!(buggy_r.instances, 2, "the trap's restart is a new instance");
    assert_eq!(buggy_r.traps.len(), 1, "{buggy_r:?}");
    let trap = &buggy_r.traps[0].1;
    assert!(
        trap.contains("integer divide by zero") && trap.contains("share"),
        "the trap with its backtrace: {trap}"
    );

    // The replay's outputs are what the clients got, answer for answer.
    let lines = out.lines();
    let mut answered: Vec<String> = got
        .iter()
        .filter(|(_, s, _)| *s == 200)
        .map(|(_, _, b)| b.clone())
        .collect();
    answered.sort();
    assert_eq!(
        sent(&lines, "http_respond", "body"),
        answered,
        "HTTP answers (SQLite, files, outbound HTTP, entropy, clocks{} feed them)",
        if with_docker { ", Docker" } else { "" }
    );
    let mut echoes = echoes;
    echoes.sort();
    assert_eq!(
        sent(&lines, "ws_send", "payload"),
        echoes,
        "WebSocket frames"
    );
    let emitted = sent(&lines, "sse_emit", "data");
    assert_eq!(emitted.len(), 60, "one SSE event per /leak request");
    for e in events.split("data: ").skip(1) {
        let data = e.split('\n').next().unwrap().to_string();
        assert!(emitted.contains(&data), "SSE event {data} was emitted");
    }
    for import in [
        "sqlite_exec",
        "fs_write",
        "fs_read",
        "http_fetch",
        "entropy_read",
    ] {
        assert!(
            lines
                .iter()
                .any(|l| l["import"] == import && l["status"] == 0),
            "{import} was replayed"
        );
    }
    if with_docker {
        assert!(lines
            .iter()
            .any(|l| l["import"] == "docker_run" && l["status"] == 0));
    }

    // Deterministic: a second replay writes the same outputs, byte for byte.
    let (_, again) = replay_all(&dir, None);
    assert_eq!(*again.0.lock().unwrap(), *out.0.lock().unwrap());

    let bytes: u64 = walk(&dir.join("rec-every"))
        .iter()
        .map(|p| p.metadata().unwrap().len())
        .sum();
    eprintln!(
        "recorded rec-every: {bytes} bytes for {} calls ({} steps): {} bytes a call; replayed in {:.3} s",
        every_r.entries,
        every_r.steps,
        bytes / every_r.entries.max(1),
        every_r.replay_secs
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn a_recording_of_calls_between_plugins_replays_both_sides() {
    let (Some(auth), Some(api)) = (
        pulp_tests::c_module("examples/auth/auth.c"),
        pulp_tests::c_module("examples/api/api.c"),
    ) else {
        return;
    };
    let f = Fixture::recording(BTreeMap::from([(
        "http".to_string(),
        toml::toml! { listen = "127.0.0.1:0" },
    )]));
    let copy = |example: &str, wasm: &std::path::Path| {
        let d = f.dir.path().join("plugins").join(example);
        std::fs::create_dir_all(&d).unwrap();
        let text = std::fs::read_to_string(
            pulp_tests::root().join(format!("examples/{example}/pulp.plugin.toml")),
        )
        .unwrap();
        std::fs::write(d.join("pulp.plugin.toml"), text).unwrap();
        let m = Manifest::load(d.join("pulp.plugin.toml")).unwrap();
        std::fs::copy(wasm, &m.wasm).unwrap();
        Manifest::load(d.join("pulp.plugin.toml")).unwrap()
    };
    let (auth_m, api_m) = (copy("auth", &auth), copy("api", &api));
    let mut runtime = Runtime::new(RuntimeConfig::default());
    for m in [&auth_m, &api_m] {
        let mut p = Plugin::load(&f.host, m, Some(&f.registry)).unwrap();
        p.init().unwrap();
        runtime.spawn(p).unwrap();
    }
    let a = listener(&f);
    let mut bodies = Vec::new();
    for token in ["", "nope", "demo-token", "demo-token", "other"] {
        let head = if token.is_empty() {
            String::new()
        } else {
            format!("Authorization: Bearer {token}\r\n")
        };
        let r = pulp_tests::raw_http(
            a,
            &format!("GET /whoami HTTP/1.1\r\nHost: x\r\n{head}Connection: close\r\n\r\n"),
        );
        bodies.push(r.split("\r\n\r\n").nth(1).unwrap_or("").to_string());
    }
    runtime.stop();
    f.host.sync_recording();
    let (reports, out) = replay_all(&f.recording_dir(), None);
    assert_eq!(reports.len(), 2, "{reports:?}");
    assert_identical(&reports);
    let lines = out.lines();
    let calls = lines.iter().filter(|l| l["import"] == "pulp_call").count();
    assert!(
        calls >= 4,
        "api's calls of auth were replayed from the recording: {calls}"
    );
    let mut want = bodies.clone();
    want.sort();
    assert_eq!(sent(&lines, "http_respond", "body"), want);
}

#[test]
fn each_instance_of_a_pool_is_its_own_stream_and_replays() {
    let Some(echo) = pulp_tests::c_module("examples/echo/echo.c") else {
        return;
    };
    let f = Fixture::recording(BTreeMap::from([(
        "http".to_string(),
        toml::toml! { listen = "127.0.0.1:0" },
    )]));
    let rt = f.run_module(
        "rec-pool",
        &echo,
        "stateless = true\ncapabilities = [\"transport.http.inbound\", \"transport.ws.inbound\", \"transport.sse\"]\n[limits]\ninstances = 2",
        2,
    );
    let a = listener(&f);
    let threads: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                (0..25)
                    .map(|i| {
                        let r = pulp_tests::raw_http(
                            a,
                            &format!("GET /echo/t{t}i{i} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
                        );
                        r.split("\r\n\r\n").nth(1).unwrap_or("").to_string()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut bodies: Vec<String> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    rt.stop();
    f.host.sync_recording();
    let (reports, out) = replay_all(&f.recording_dir(), None);
    let names: Vec<&str> = reports.iter().map(|r| r.stream.as_str()).collect();
    assert_eq!(names, ["rec-pool/0", "rec-pool/1"]);
    assert_identical(&reports);
    bodies.sort();
    assert_eq!(bodies.len(), 100);
    assert_eq!(sent(&out.lines(), "http_respond", "body"), bodies);
}

/// A step that ends at its deadline while calling imports (or sleeping in WASI):
/// the replay is faster, makes more calls or sleeps less before its own deadline,
/// and that is the same outcome, not a difference.
#[test]
fn steps_that_end_at_their_deadline_replay_without_a_false_difference() {
    let prelude = r#"
  (memory (export "memory") 1)
  (func (export "pulp_alloc") (param i32) (result i32) (i32.const 4096))
  (func (export "pulp_init") (param i32 i32) (result i32) (i32.const 0))
  (func (export "pulp_shutdown") (result i32) (i32.const 0))"#;
    let spin = format!(
        r#"(module
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
  {prelude}
  (func (export "pulp_step") (param i32 i32) (result i32)
    (loop $l (drop (call $clock (i32.const 1) (i64.const 0) (i32.const 64))) (br $l))
    (i32.const 0)))"#
    );
    // One relative 10 s clock subscription at 256 (monotonic), events at 512.
    let sleep = format!(
        r#"(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  {prelude}
  (data (i32.const 272) "\01\00\00\00")
  (data (i32.const 280) "\00\e4\0b\54\02\00\00\00")
  (func (export "pulp_step") (param i32 i32) (result i32)
    (drop (call $poll (i32.const 256) (i32.const 512) (i32.const 1) (i32.const 600)))
    (i32.const 0)))"#
    );
    let f = Fixture::recording(BTreeMap::new());
    for (name, wat) in [("rec-spin", &spin), ("rec-sleep", &sleep)] {
        let mut p = f
            .load(name, wat, "[limits]\ncall_timeout_ms = 100")
            .unwrap();
        p.init().unwrap();
        for _ in 0..2 {
            let e = p.step_event(None).unwrap_err();
            assert!(e.to_string().contains("100 ms"), "{name}: {e}");
        }
        p.shutdown().unwrap();
    }
    f.host.sync_recording();
    let (reports, _) = replay_all(&f.recording_dir(), None);
    assert_eq!(reports.len(), 2);
    for r in &reports {
        assert_eq!(r.steps, 2, "{r:?}");
        assert!(
            r.differences.is_empty(),
            "{}: {:?}",
            r.stream,
            r.differences
        );
    }
}
