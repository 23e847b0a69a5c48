//! HTTP echo through a plugin vs a native hyper echo handler, same run, same server
//! settings (hyper http1, header timeout, TCP_NODELAY, the shared tokio runtime).
//!
//! The load generator is in this process: 64 keep-alive connections (hyper client),
//! each sending `GET /echo/m<i>` back to back for a fixed time; every body is
//! checked. Reports requests per second and latency percentiles of each, in two
//! alternating rounds. Needs clang + wasi-libc (the C echo example).
//!
//! `env -u RUST_BACKTRACE cargo bench -p pulp-tests --bench http`

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use pulp_host::Runtime;
use pulp_tests::{c_module, Fixture};

const CONCURRENCY: usize = 64;
const ROUND: Duration = Duration::from_secs(5);

/// The baseline: hyper's http1 server with the listener's settings, answering
/// `/echo/<msg>` with `<msg>` from a handler on the same runtime.
fn native() -> SocketAddr {
    let rt = pulp_ext::runtime();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let svc =
                    hyper::service::service_fn(|req: Request<hyper::body::Incoming>| async move {
                        let msg = req
                            .uri()
                            .path()
                            .strip_prefix("/echo/")
                            .unwrap_or("")
                            .to_string();
                        let mut r = Response::new(Full::new(Bytes::from(msg)));
                        r.headers_mut().insert(
                            hyper::header::CONTENT_TYPE,
                            hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
                        );
                        Ok::<_, std::convert::Infallible>(r)
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(10))
                    .serve_connection(TokioIo::new(stream), svc)
                    .with_upgrades()
                    .await;
            });
        }
    });
    addr
}

/// A stateless plugin with `capabilities` run as a pool of `instances` on a fresh host:
/// the host (keep it alive), its runtime and the listener's address.
fn pool(
    name: &str,
    wasm: &std::path::Path,
    capabilities: &str,
    instances: u32,
) -> (Fixture, Runtime, SocketAddr) {
    pool_of(Fixture::new(), name, wasm, capabilities, instances)
}

fn pool_of(
    f: Fixture,
    name: &str,
    wasm: &std::path::Path,
    capabilities: &str,
    instances: u32,
) -> (Fixture, Runtime, SocketAddr) {
    let extra = format!(
        "stateless = true\ncapabilities = [{capabilities}]\n[limits]\nqueue = 1024\ninstances = {instances}"
    );
    let runtime = f.run_module(name, wasm, &extra, instances);
    let addr = ext_http::listening(f.host.shared()).unwrap();
    (f, runtime, addr)
}

struct Result {
    rps: f64,
    p50: Duration,
    p99: Duration,
    max: Duration,
}

/// 64 connections, back-to-back `GET /echo/<unique>` for `ROUND`, bodies checked.
fn load(addr: SocketAddr) -> Result {
    load_with(addr, Some("/echo/"), CONCURRENCY)
}

/// 64 connections, back-to-back `GET path` for `ROUND`, status 200 checked.
fn load_path(addr: SocketAddr, path: &'static str) -> Result {
    load_with(addr, Some(path), CONCURRENCY)
}

/// `connections` connections, back-to-back requests for `ROUND`; latencies of
/// every request. A path `/echo/` gets a unique message appended and its body
/// checked; any other path is requested as it is, its status checked.
fn load_with(addr: SocketAddr, path: Option<&'static str>, connections: usize) -> Result {
    let base = path.unwrap_or("/echo/");
    let echo = base == "/echo/";
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let lat: Vec<Duration> = rt.block_on(async {
        let mut tasks = Vec::new();
        for c in 0..connections {
            let stop = stop.clone();
            tasks.push(tokio::spawn(async move {
                let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
                stream.set_nodelay(true).unwrap();
                let (mut send, conn) =
                    hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
                        .await
                        .unwrap();
                tokio::spawn(conn);
                let mut lat = Vec::new();
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let msg = format!("m{c}x{i}");
                    let path = if echo {
                        format!("/echo/{msg}")
                    } else {
                        base.to_string()
                    };
                    let req = Request::get(path)
                        .header("Host", "bench")
                        .body(Empty::new())
                        .unwrap();
                    let t = Instant::now();
                    let resp = send.send_request(req).await.unwrap();
                    assert_eq!(resp.status(), 200);
                    let body = resp.into_body().collect().await.unwrap().to_bytes();
                    lat.push(t.elapsed());
                    assert!(!echo || body == msg.as_bytes(), "a wrong body");
                    i += 1;
                }
                lat
            }));
        }
        tokio::time::sleep(ROUND).await;
        stop.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        all
    });
    let elapsed = started.elapsed();
    let mut lat = lat;
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    Result {
        rps: lat.len() as f64 / elapsed.as_secs_f64(),
        p50: pct(0.50),
        p99: pct(0.99),
        max: *lat.last().unwrap(),
    }
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` would run this too: only run when asked.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let Some(wasm) = c_module("examples/echo/echo.c") else {
        eprintln!("SKIP: no clang for the echo plugin");
        return;
    };
    // The echo plugin with one instance, and (stateless) with two: its own thread,
    // store and memory each, one queue.
    let echo_caps = "\"transport.http.inbound\", \"transport.ws.inbound\", \"transport.sse\"";
    let start = |instances| pool("echo", &wasm, echo_caps, instances);
    let (_f1, rt1, one) = start(1);
    let (_f2, rt2, two) = start(2);
    // The one-instance echo again, recorded (`pulp run --record`) into the fixture's folder.
    let (f3, rt3, recorded) = pool_of(
        Fixture::recording([("http".to_string(), toml::toml! { listen = "127.0.0.1:0" })].into()),
        "echo",
        &wasm,
        echo_caps,
        1,
    );
    let native = native();
    println!(
        "HTTP echo, {CONCURRENCY} connections, {} s per round",
        ROUND.as_secs()
    );
    let (mut ratios, mut p99s) = (Vec::new(), Vec::new());
    for round in 1..=2 {
        let n = load(native);
        let p = load(one);
        let p2 = load(two);
        for (name, r) in [("native hyper", &n), ("plugin x1", &p), ("plugin x2", &p2)] {
            println!(
                "round {round}  {name:<13} {:>8.0} req/s  p50 {:>7.2?}  p99 {:>7.2?}  max {:>7.2?}",
                r.rps, r.p50, r.p99, r.max
            );
        }
        ratios.push((p.rps / n.rps, p2.rps / n.rps));
        p99s.push(p.p99);
        // The same plugin with the per-step and per-request metrics off.
        pulp_ext::metrics::set_enabled(false);
        let off = load(one);
        pulp_ext::metrics::set_enabled(true);
        println!(
            "round {round}  plugin x1, metrics off {:>8.0} req/s  p99 {:>7.2?}: metrics on / off {:.3}",
            off.rps,
            off.p99,
            p.rps / off.rps
        );
        let rec = load(recorded);
        println!(
            "round {round}  plugin x1, recorded    {:>8.0} req/s  p99 {:>7.2?}: recorded / not {:.3} (goal >= 0.9)",
            rec.rps,
            rec.p99,
            rec.rps / p.rps
        );
    }
    rt3.stop();
    f3.host.sync_recording();
    let report = pulp_host::replay::replay(pulp_host::replay::ReplayOptions {
        dir: f3.recording_dir(),
        ..Default::default()
    })
    .unwrap();
    let bytes = pulp_tests::dir_bytes(&f3.recording_dir().join("echo"));
    for r in &report {
        println!(
            "recorded echo: {} calls ({} steps), {bytes} bytes on disk ({} a call), dropped {} bytes; replayed in {:.2} s, the recording spans {:.2} s ({:.1}x); differences: {}",
            r.entries,
            r.steps,
            bytes / r.entries.max(1),
            f3.host.recording_dropped(),
            r.replay_secs,
            r.recorded_ns as f64 / 1e9,
            r.recorded_ns as f64 / 1e9 / r.replay_secs,
            r.differences.len()
        );
    }
    println!(
        "plugin / native requests per second (x1, x2): {}  (goal >= 0.75); plugin p99: {:?} (goal < 5 ms)",
        ratios.iter().map(|(a, b)| format!("{a:.2}, {b:.2}")).collect::<Vec<_>>().join("; "),
        p99s
    );
    // One connection: no queueing anywhere, so this is the latency of the path itself
    // (for the plugin: the hand-off from the listener to a worker and back).
    let n = load_with(native, None, 1);
    let p = load_with(one, None, 1);
    println!(
        "one connection: native p50 {:.2?} p99 {:.2?}; plugin x1 p50 {:.2?} p99 {:.2?}; plugin / native requests per second {:.2}",
        n.p50, n.p99, p.p50, p.p99, p.rps / n.rps
    );
    rt1.stop();
    rt2.stop();

    // Fairness: the echo plugin under the same load beside a plugin whose every step
    // spins 5 ms (ticking as fast as it can) and 1 000 idle plugins, in one runtime.
    {
        let f = Fixture::new();
        let mut rt = Runtime::new(pulp_host::RuntimeConfig::default());
        let echo_extra = format!("capabilities = [{echo_caps}]\n[limits]\nqueue = 1024");
        let mut echo = f.load_module("echo", &wasm, &echo_extra).unwrap();
        echo.init().unwrap();
        rt.spawn(echo).unwrap();
        let busy = pulp_tests::root().join("tests/guests/busy_5ms.wat");
        let mut b = f
            .load_module("busy", &busy, "[limits]\ntick_ms = 1\nmax_tick_ms = 1")
            .unwrap();
        b.init().unwrap();
        rt.spawn(b).unwrap();
        let idle = pulp_tests::root().join("tests/guests/idle.wat");
        for i in 0..1000 {
            let mut p = f.load_module(&format!("idle-{i}"), &idle, "").unwrap();
            p.init().unwrap();
            rt.spawn(p).unwrap();
        }
        let addr = ext_http::listening(f.host.shared()).unwrap();
        std::thread::sleep(Duration::from_secs(2)); // past the idle plugins' first ticks
        let r = load(addr);
        println!(
            "echo beside a 5 ms-step plugin and 1 000 idle ones: {:>8.0} req/s  p50 {:>7.2?}  p99 {:>7.2?}  max {:>7.2?} (goal: p99 < 10 ms); {} workers",
            r.rps,
            r.p50,
            r.p99,
            r.max,
            rt.workers()
        );
        rt.stop();
    }

    // The notes example in each language (#15): module size, and GET /notes/1 (an
    // SQLite query and a JSON answer) under the same load.
    let notes = [
        ("C", pulp_tests::c_module("examples/notes/notes.c")),
        ("Rust", pulp_tests::rust_example("notes")),
        ("Go", pulp_tests::go_module("examples/go/notes")),
    ];
    for (lang, wasm) in notes {
        let Some(wasm) = wasm else { continue };
        let size = std::fs::metadata(&wasm).unwrap().len();
        let f = Fixture::new();
        let rt = f.run_module(
            "notes",
            &wasm,
            "capabilities = [\"storage.sqlite\", \"transport.http.inbound\"]\n[limits]\nqueue = 1024",
            1,
        );
        let addr = ext_http::listening(f.host.shared()).unwrap();
        let (status, _, _) = pulp_tests::http_once(addr, "POST", "/notes", r#"{"text": "milk"}"#);
        assert_eq!(status, 201);
        let r = load_path(addr, "/notes/1");
        println!(
            "notes in {lang:<4} {:>7} KiB  GET /notes/1 {:>8.0} req/s  p50 {:>7.2?}  p99 {:>7.2?}",
            size / 1024,
            r.rps,
            r.p50,
            r.p99
        );
        rt.stop();
    }

    // Where pools pay: a route that works ~5 ms of CPU per request (tests/guests/c/pooled.c).
    let Some(pooled) = pulp_tests::c_guest("pooled.c") else {
        return;
    };
    let pool_caps = "\"transport.http.inbound\", \"storage.sqlite\"";
    let start_pool = |instances| pool("pooled", &pooled, pool_caps, instances);
    let (_g1, w1, one) = start_pool(1);
    let (_g2, w2, two) = start_pool(2);
    for (name, addr) in [("5 ms route x1", one), ("5 ms route x2", two)] {
        let r = load_path(addr, "/who");
        println!(
            "{name:<14} {:>8.0} req/s  p50 {:>7.2?}  p99 {:>7.2?}",
            r.rps, r.p50, r.p99
        );
    }
    w1.stop();
    w2.stop();
}
