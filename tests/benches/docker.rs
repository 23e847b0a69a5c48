//! `docker_run` of a trivial container through a plugin vs `docker run --rm` of the
//! same image and command from the CLI, alternating, same run. Needs a Docker engine
//! and clang (the C driver guest).
//!
//! `env -u RUST_BACKTRACE cargo bench -p pulp-tests --bench docker`

use std::time::{Duration, Instant};

use pulp_tests::toolchain::{docker_ready, TEST_IMAGE};
use pulp_tests::{Driver, Fixture};
use rmpv::Value as V;

const ROUNDS: usize = 15;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    if !docker_ready() {
        eprintln!("SKIP: no Docker engine");
        return;
    }
    let f = Fixture::new();
    let decl = "capabilities = [\"spawn.docker\", \"test.record\"]\n[capability.\"spawn.docker\"]\nimages = [\"pulp-test/*\"]";
    let Some(mut d) = Driver::start(&f, "dk-bench", decl) else {
        eprintln!("SKIP: no clang");
        return;
    };
    let mut req = Vec::new();
    let v = V::Map(vec![
        (V::from("image"), V::from(TEST_IMAGE)),
        (V::from("cmd"), V::Array(vec![V::from("true")])),
    ]);
    rmpv::encode::write_value(&mut req, &v).unwrap();
    let (mut plugin, mut cli) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let t = Instant::now();
        let o = d.call("docker_run", &req, b"");
        plugin.push(t.elapsed());
        assert_eq!(o.status, 0, "{o:?}");
        let t = Instant::now();
        let s = std::process::Command::new("docker")
            .args(["run", "--rm", "--network", "none", TEST_IMAGE, "true"])
            .status()
            .unwrap();
        cli.push(t.elapsed());
        assert!(s.success());
    }
    let (p, c) = (median(plugin), median(cli));
    println!(
        "docker_run `true` through a plugin: median {p:?}; `docker run --rm` from the CLI: median {c:?}; ratio {:.2} (goal <= 1.0), {ROUNDS} rounds",
        p.as_secs_f64() / c.as_secs_f64()
    );
}
