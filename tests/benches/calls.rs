//! Calls between plugins (`pulp_call` → `pulp_on_call`), same run as the same
//! exchange over the HTTP listener:
//!
//! - round trip of one call with 1 KiB of args and a 1 KiB answer between two idle
//!   plugins: the caller's whole step (envelope, the call, recording its result),
//!   p50 and p99, beside the do-nothing step of the same plugin;
//! - the same 1 KiB exchange as an HTTP request to the C echo example (`POST /echo`)
//!   over one kept-alive connection on 127.0.0.1;
//! - 4 callers on 4 threads calling one target: throughput and p99.
//!
//! `env -u RUST_BACKTRACE cargo bench -p pulp-tests --bench calls`

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use pulp_ext::Event;
use pulp_host::{Plugin, Runtime, RuntimeConfig};
use pulp_tests::{c_module, call_peer, records, Fixture};

const ARGS: usize = 1024;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

/// A caller of `svc.echo` with 1 KiB; `quiet` records nothing (for timing: the
/// recording is the test's, not the call's).
fn caller(f: &Fixture, name: &str, quiet: bool) -> Plugin {
    let args = "a".repeat(ARGS);
    let mut wat = call_peer("svc", "echo", &args, 0);
    if quiet {
        wat = wat.replace("(call $rec (local.get $st))", "").replace(
            "(drop (call $record (i32.load (i32.const 8)) (i32.load (i32.const 12))))",
            "",
        );
    }
    let m = f.manifest(
        name,
        &wat,
        "capabilities = [\"test.record\"]\nconsumes = [\"svc\"]\n[limits]\ntick_ms = 0",
    );
    let mut p = Plugin::load(&f.host, &m, Some(&f.registry)).unwrap();
    p.init().unwrap();
    p
}

/// Times `n` steps of `p` (with `event`, or idle ticks), draining its records.
fn steps(p: &mut Plugin, event: Option<&Event>, n: usize) -> Vec<Duration> {
    let name = p.name().to_string();
    let mut times = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        p.step_event(event).unwrap();
        times.push(t.elapsed());
        if i % 512 == 0 {
            records(&name);
        }
    }
    records(&name);
    times.sort();
    times
}

fn main() {
    let f = Fixture::new();
    let svc = f.manifest(
        "svc",
        &call_peer("x", "x", "x", 0),
        "capabilities = [\"test.record\"]\n[limits]\ntick_ms = 0",
    );
    let mut target = Plugin::load(&f.host, &svc, Some(&f.registry)).unwrap();
    target.init().unwrap();
    let mut runtime = Runtime::new(RuntimeConfig::default());
    runtime.spawn(target).unwrap();

    let go = Event::from_raw("go", vec![0x80]);
    let mut c = caller(&f, "caller", false);
    // Check the exchange once: status 0 and the 1 KiB echoed.
    records("caller");
    c.step_event(Some(&go)).unwrap();
    let r = records("caller");
    assert_eq!(r.len(), 2, "{r:?}");
    assert_eq!(
        &r[0][..4],
        &[0, 0, 0, 0],
        "{}",
        String::from_utf8_lossy(&r[1])
    );
    assert_eq!(r[1].len(), ARGS);

    let mut c = caller(&f, "quiet", true);
    println!("pulp_call, 1 KiB args and answer, two idle plugins");
    for round in 1..=3 {
        steps(&mut c, Some(&go), 2_000);
        let idle = steps(&mut c, None, 20_000);
        let call = steps(&mut c, Some(&go), 20_000);
        println!(
            "round {round}  step with a call p50 {:>8.2?} p99 {:>8.2?}  (do-nothing step p50 {:>7.2?}; the call alone about {:.2?})",
            percentile(&call, 0.5),
            percentile(&call, 0.99),
            percentile(&idle, 0.5),
            percentile(&call, 0.5).saturating_sub(percentile(&idle, 0.5)),
        );
    }

    // The same exchange over the HTTP listener: the C echo example's POST /echo.
    if let Some(echo) = c_module("examples/echo/echo.c") {
        let rt = f.run_module("echo", &echo, "capabilities = [\"transport.http.inbound\", \"transport.ws.inbound\", \"transport.sse\"]", 1);
        let addr = pulp_tests::listener(&f);
        let mut conn = BufReader::new(TcpStream::connect(addr).unwrap());
        conn.get_ref().set_nodelay(true).unwrap();
        let body = vec![b'a'; ARGS];
        let mut request =
            format!("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {ARGS}\r\n\r\n")
                .into_bytes();
        request.extend_from_slice(&body);
        let mut once = || {
            let t = Instant::now();
            conn.get_mut().write_all(&request).unwrap();
            let mut len = 0;
            loop {
                let mut line = String::new();
                conn.read_line(&mut line).unwrap();
                if line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
            }
            let mut answer = vec![0; len];
            conn.read_exact(&mut answer).unwrap();
            assert_eq!(answer, body);
            t.elapsed()
        };
        for _ in 0..500 {
            once();
        }
        let mut http: Vec<Duration> = (0..5_000).map(|_| once()).collect();
        http.sort();
        let call = steps(&mut c, Some(&go), 20_000);
        println!(
            "HTTP listener, same exchange, one kept-alive connection: p50 {:>8.2?} p99 {:>8.2?}; pulp_call step p50 {:.2?}: {:.0}x faster",
            percentile(&http, 0.5),
            percentile(&http, 0.99),
            percentile(&call, 0.5),
            percentile(&http, 0.5).as_secs_f64() / percentile(&call, 0.5).as_secs_f64()
        );
        drop(rt.stop());
    }

    // Contention: 4 callers on 4 threads, one target instance, 2 s.
    let callers: Vec<Plugin> = (0..4)
        .map(|i| caller(&f, &format!("c{i}"), false))
        .collect();
    let until = Instant::now() + Duration::from_secs(2);
    let threads: Vec<_> = callers
        .into_iter()
        .map(|mut p| {
            let go = go.clone();
            std::thread::spawn(move || {
                let name = p.name().to_string();
                let mut times = Vec::new();
                while Instant::now() < until {
                    let t = Instant::now();
                    p.step_event(Some(&go)).unwrap();
                    times.push(t.elapsed());
                    if times.len() % 512 == 0 {
                        let r = records(&name);
                        for c in r.chunks(2) {
                            let why = String::from_utf8_lossy(&c[1]);
                            assert!(c[0][..4] == [0, 0, 0, 0], "a call failed: {why}");
                        }
                    }
                }
                records(&name);
                times
            })
        })
        .collect();
    let mut all: Vec<Duration> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    all.sort();
    println!(
        "4 callers x 1 target: {:.0} calls/s, p50 {:.2?}, p99 {:.2?}",
        all.len() as f64 / 2.0,
        percentile(&all, 0.5),
        percentile(&all, 0.99)
    );
    drop(runtime.stop());
}
