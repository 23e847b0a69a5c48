//! Record and replay (#18), each figure against a baseline measured in the same run:
//!
//! - the step path with the plugin recorded vs not (`tests/guests/bench.wat`, events
//!   of 0 B and 1 KiB), measured in alternating rounds so that the machine's drift
//!   hits both alike; the median round's ratio and the spread;
//! - bytes recorded per step for the notes example under a mixed load (POST, GET
//!   all, GET one), and how fast the recording replays vs the run it came from.
//!
//! The HTTP echo's throughput recorded vs not, its bytes per step and replay speed
//! are in `--bench http`. Run with `RUST_BACKTRACE` unset:
//! `env -u RUST_BACKTRACE cargo bench -p pulp-tests --bench record`.

use std::time::{Duration, Instant};

use pulp_ext::Event;
use pulp_host::record::RecordConfig;
use pulp_host::{Host, HostConfig, Manifest, Plugin, Registry};
use pulp_tests::{c_module, root, Fixture};

const ROUNDS: usize = 21;
const STEPS: usize = 20_000;

fn bench_plugin(dir: &std::path::Path, host: &Host, registry: &Registry) -> Plugin {
    std::fs::copy(root().join("tests/guests/bench.wat"), dir.join("bench.wat")).unwrap();
    let path = dir.join("pulp.plugin.toml");
    std::fs::write(
        &path,
        "name = \"bench\"\nversion = \"1\"\nwasm = \"bench.wat\"\n",
    )
    .unwrap();
    let mut p = Plugin::load(host, &Manifest::load(path).unwrap(), Some(registry)).unwrap();
    p.init().unwrap();
    p
}

/// An event whose whole StepEvent encoding is `size` bytes (`None` for 0: an idle tick).
fn event(size: usize) -> Option<Event> {
    (size > 0).then(|| {
        let mut v = Vec::new();
        Event::from_raw("bench", vec![]).encode_into(&mut v);
        let mut payload = Vec::new();
        rmp::encode::write_bin(&mut payload, &vec![0x5a; size - v.len() - 3]).unwrap();
        Event::from_raw("bench", payload)
    })
}

fn per_step(p: &mut Plugin, e: Option<&Event>) -> f64 {
    let t = Instant::now();
    for _ in 0..STEPS {
        std::hint::black_box(p.step_event(e).unwrap());
    }
    t.elapsed().as_nanos() as f64 / STEPS as f64
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn steps() {
    let dir = tempfile::tempdir().unwrap();
    let shm = std::path::Path::new("/dev/shm");
    let rec = tempfile::tempdir_in(if shm.is_dir() { shm } else { dir.path() }).unwrap();
    let registry = Registry::new().unwrap();
    let plain_host = Host::new(HostConfig {
        storage_root: dir.path().join("data"),
        cache_dir: None,
        ..Default::default()
    })
    .unwrap();
    let rec_host = Host::new(HostConfig {
        storage_root: dir.path().join("data"),
        cache_dir: None,
        record: Some(RecordConfig {
            max_bytes: 64 << 20,
            ..RecordConfig::new(rec.path())
        }),
        ..Default::default()
    })
    .unwrap();
    let mut plain = bench_plugin(dir.path(), &plain_host, &registry);
    let mut recorded = bench_plugin(dir.path(), &rec_host, &registry);
    println!("step path, recorded vs not ({ROUNDS} alternating rounds of {STEPS} steps):");
    for size in [0usize, 1024] {
        let e = event(size);
        let (mut a, mut b, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..ROUNDS {
            let (x, y) = if round % 2 == 0 {
                let x = per_step(&mut plain, e.as_ref());
                (x, per_step(&mut recorded, e.as_ref()))
            } else {
                let y = per_step(&mut recorded, e.as_ref());
                (per_step(&mut plain, e.as_ref()), y)
            };
            a.push(x);
            b.push(y);
            ratios.push(y / x);
        }
        let (lo, hi) = (
            ratios.iter().cloned().fold(f64::MAX, f64::min),
            ratios.iter().cloned().fold(0.0, f64::max),
        );
        println!(
            "  {size:>5} B: not recorded {:.0} ns, recorded {:.0} ns: recorded / not {:.2} (rounds {lo:.2}-{hi:.2}; goal <= 1.3)",
            median(&mut a),
            median(&mut b),
            median(&mut ratios)
        );
    }
    drop(recorded);
    rec_host.sync_recording();
    println!(
        "  recording dropped {} bytes (the writer fell behind)",
        rec_host.recording_dropped()
    );
}

fn notes() {
    let Some(wasm) = c_module("examples/notes/notes.c") else {
        println!("SKIP notes: no clang");
        return;
    };
    let f =
        Fixture::recording([("http".to_string(), toml::toml! { listen = "127.0.0.1:0" })].into());
    let rt = f.run_module(
        "notes",
        &wasm,
        "capabilities = [\"storage.sqlite\", \"transport.http.inbound\"]",
        1,
    );
    let a = ext_http::listening(f.host.shared()).unwrap();
    let started = Instant::now();
    let n = 400;
    for i in 0..n {
        let body = format!("{{\"text\": \"note {i}\"}}");
        pulp_tests::raw_http(
            a,
            &format!(
                "POST /notes HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            ),
        );
        if i % 4 == 0 {
            pulp_tests::raw_http(
                a,
                "GET /notes HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            );
        }
        pulp_tests::raw_http(
            a,
            &format!(
                "GET /notes/{} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                i + 1
            ),
        );
    }
    let ran = started.elapsed();
    rt.stop();
    f.host.sync_recording();
    let t = Instant::now();
    let reports = pulp_host::replay::replay(pulp_host::replay::ReplayOptions {
        dir: f.recording_dir(),
        ..Default::default()
    })
    .unwrap();
    let replayed = t.elapsed();
    let bytes = pulp_tests::dir_bytes(&f.recording_dir().join("notes"));
    let r = &reports[0];
    let requests = n + n / 4 + n;
    println!(
        "notes: {requests} requests ({} steps with idle ticks) took {ran:.2?}; recorded {bytes} bytes: {} bytes a step, {} a request; replayed in {replayed:.2?} ({:.1}x the run's speed), differences {}",
        r.steps,
        bytes / r.steps.max(1),
        bytes / requests as u64,
        ran.as_secs_f64() / replayed.as_secs_f64(),
        r.differences.len()
    );
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    steps();
    notes();
    std::thread::sleep(Duration::from_millis(10));
}
