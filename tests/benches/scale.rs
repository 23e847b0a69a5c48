//! Many idle plugins in one host: time until all are loaded, initialised and
//! scheduled, resident memory, threads, and the CPU the host spends once they are
//! settled. Each row runs in a child process of its own (RSS is the process's).
//!
//! `env -u RUST_BACKTRACE cargo bench -p pulp-tests --bench scale [-- N ...]`
//! (default N: 1000 and 10000), for the default idle ticks (1 ms doubling to 1 s)
//! and for `[limits] tick_ms = 0` (no idle ticks: plugins run only for events).

use std::time::{Duration, Instant};

use pulp_host::{Manifest, Plugin, Runtime, RuntimeConfig};
use pulp_tests::{root, Fixture};

/// How long the host settles before idle CPU is measured, and how long it is measured.
const SETTLE: Duration = Duration::from_secs(4);
const MEASURE: Duration = Duration::from_secs(10);

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    if let Some(pos) = std::env::args().position(|a| a == "--child") {
        let a: Vec<String> = std::env::args().skip(pos + 1).collect();
        child(a[0].parse().unwrap(), &a[1]);
        return;
    }
    let ns: Vec<usize> = if args.is_empty() {
        vec![1000, 10_000]
    } else {
        args.iter().filter_map(|a| a.parse().ok()).collect()
    };
    println!("| idle ticks | N | all loaded, initialised and scheduled | RSS | threads | idle CPU once settled |");
    println!("|---|---|---|---|---|---|");
    for ticks in ["default", "off"] {
        for &n in &ns {
            let out = std::process::Command::new(std::env::current_exe().unwrap())
                .args(["--child", &n.to_string(), ticks])
                .output()
                .expect("cannot run the child");
            let line = String::from_utf8_lossy(&out.stdout);
            match line.lines().find(|l| l.starts_with('|')) {
                Some(l) => println!("{l}"),
                None => println!(
                    "| {ticks} | {n} | failed: {} |",
                    String::from_utf8_lossy(&out.stderr)
                        .lines()
                        .last()
                        .unwrap_or("")
                ),
            }
        }
    }
}

fn child(n: usize, ticks: &str) {
    let f = Fixture::new();
    let wasm = root().join("tests/guests/idle.wat");
    let extra = if ticks == "off" {
        "[limits]\ntick_ms = 0\nmemory_mb = 1"
    } else {
        "[limits]\nmemory_mb = 1"
    };
    let manifests: Vec<Manifest> = (0..n)
        .map(|i| Manifest::load(f.write_for(&format!("idle-{i}"), &wasm, extra)).unwrap())
        .collect();
    let start = Instant::now();
    let mut rt = Runtime::new(RuntimeConfig::default());
    for m in &manifests {
        let mut p = Plugin::load(&f.host, m, Some(&f.registry)).unwrap();
        p.init().unwrap();
        rt.spawn(p).unwrap();
    }
    let up = start.elapsed();
    std::thread::sleep(SETTLE);
    let cpu0 = cpu();
    let t0 = Instant::now();
    std::thread::sleep(MEASURE);
    let idle = (cpu() - cpu0).as_secs_f64() / t0.elapsed().as_secs_f64();
    let (rss, threads) = status();
    println!(
        "| {ticks} | {n} | {:.2} s | {} MB | {threads} | {:.2} % of a core |",
        up.as_secs_f64(),
        rss / 1024,
        idle * 100.0
    );
    let reports = rt.stop();
    assert!(reports.iter().all(|r| r.error.is_none()));
}

/// User plus system CPU time of this process.
fn cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    // After the command name: state is field 3, utime 14 and stime 15 (1-based).
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let hz = 100; // USER_HZ on Linux
    Duration::from_millis(ticks * 1000 / hz)
}

/// Resident set in KiB and the number of threads.
fn status() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let field = |name: &str| {
        s.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("Threads:"))
}
