//! What another plugin's routes cost a neighbour: latency of `GET /hello/<n>` (the
//! WAT hello plugin, one route) over one keep-alive connection, while a second
//! plugin (the C driver guest) holds 1 route, then 1 000 routes, then 1 000 routes
//! and re-registers one of them (a new parameter name each time, so the router
//! replaces it and publishes a new table) in a loop on its own thread.
//!
//! `env -u RUST_BACKTRACE cargo bench -p pulp-tests --bench router`

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pulp_host::{Runtime, RuntimeConfig};
use pulp_tests::{Driver, Fixture};

const ROUND: Duration = Duration::from_secs(3);
const ROUTES: usize = 1000;

fn register(d: &mut Driver, path: &str) -> i32 {
    let v = rmpv::Value::Map(vec![
        ("method".into(), "GET".into()),
        ("path".into(), path.into()),
    ]);
    let mut req = Vec::new();
    rmpv::encode::write_value(&mut req, &v).unwrap();
    d.call("http_register", &req, b"").status
}

fn route(i: usize, param: &str) -> String {
    format!("/r{i}/:{param}/x{}", i % 7)
}

/// Back-to-back requests for `ROUND` on one connection: sorted latencies.
fn latencies(addr: SocketAddr) -> Vec<Duration> {
    let s = TcpStream::connect(addr).unwrap();
    s.set_nodelay(true).unwrap();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    let mut lat = Vec::new();
    let started = Instant::now();
    let mut i = 0u64;
    while started.elapsed() < ROUND {
        let t = Instant::now();
        write!(w, "GET /hello/n{i} HTTP/1.1\r\nHost: bench\r\n\r\n").unwrap();
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        assert!(line.starts_with("HTTP/1.1 200"), "{line}");
        let mut len = 0;
        loop {
            line.clear();
            r.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; len];
        r.read_exact(&mut body).unwrap();
        assert_eq!(body, b"wat");
        lat.push(t.elapsed());
        i += 1;
    }
    lat.sort();
    lat
}

fn report(what: &str, lat: &[Duration]) {
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    let mean = lat.iter().sum::<Duration>() / lat.len() as u32;
    println!(
        "{what:<52} {:>7} req  mean {:>8.1?}  p50 {:>8.1?}  p99 {:>8.1?}  max {:>8.1?}",
        lat.len(),
        mean,
        pct(0.5),
        pct(0.99),
        lat.last().unwrap()
    );
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` would run this too: only run when asked.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let f = Fixture::new();
    let caps = "capabilities = [\"transport.http.inbound\", \"test.record\"]";
    let Some(mut big) = Driver::start(
        &f,
        "big",
        &format!("{caps}\n[capability.\"transport.http.inbound\"]\nmax_routes = {ROUTES}"),
    ) else {
        eprintln!("SKIP: no clang for the driver guest");
        return;
    };
    let mut hello = f
        .load(
            "hello",
            &pulp_tests::guest("http_hello.wat"),
            "capabilities = [\"transport.http.inbound\"]",
        )
        .unwrap();
    hello.init().unwrap();
    let mut runtime = Runtime::new(RuntimeConfig::default());
    runtime.spawn(hello).unwrap();
    let addr = ext_http::listening(f.host.shared()).unwrap();

    println!(
        "GET /hello/<n> on one connection, {} s per round",
        ROUND.as_secs()
    );
    assert_eq!(register(&mut big, &route(0, "id")), 0);
    latencies(addr); // warm-up
    report("neighbour holds 1 route", &latencies(addr));
    let t = Instant::now();
    for i in 1..ROUTES {
        assert_eq!(register(&mut big, &route(i, "id")), 0);
    }
    println!(
        "(registering {} more routes took {:.1?})",
        ROUTES - 1,
        t.elapsed()
    );
    report("neighbour holds 1 000 routes", &latencies(addr));

    let stop = Arc::new(AtomicBool::new(false));
    let churn = std::thread::spawn({
        let stop = stop.clone();
        move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let param = if (n as usize / ROUTES).is_multiple_of(2) {
                    "a"
                } else {
                    "b"
                };
                assert_eq!(register(&mut big, &route(n as usize % ROUTES, param)), 0);
                n += 1;
            }
            n
        }
    });
    let t = Instant::now();
    let lat = latencies(addr);
    stop.store(true, Ordering::Relaxed);
    let n = churn.join().unwrap();
    report("neighbour holds 1 000 routes, re-registering", &lat);
    println!(
        "(the neighbour re-registered {:.0} routes per second meanwhile)",
        n as f64 / t.elapsed().as_secs_f64()
    );
    runtime.stop();
}
