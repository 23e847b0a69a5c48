//! `docker_run` of a trivial container (`pulp-test/busybox:1 true`) three ways, in
//! the same run, the order rotating each round so that none always goes first (a
//! warm engine cache) or last:
//!
//! - `plugin`: the C driver guest calls `docker_run` (a whole step: msgpack
//!   request, grants check, the engine calls below, the result back in the guest);
//! - `bollard`: the same engine calls from this process with `bollard`, on the same
//!   tokio runtime, with the container configuration `docker_run` makes under the
//!   default grants: inspect the image (its VOLUMEs), list the plugin's containers
//!   (`max_containers`), create (256 MiB, 1 CPU, 256 pids, no network, every
//!   capability dropped, no-new-privileges, user 65534, logging off, labels), attach,
//!   start, read the output to its end, wait, remove. The ratio of the two is the
//!   cost of going through a plugin;
//! - `cli`: `docker run --rm` with the same options from the CLI, for scale (a
//!   process start, its own engine connection and API negotiation).
//!
//! Needs a Docker engine and clang (the C driver guest).
//! `env -u RUST_BACKTRACE cargo bench -p pulp-tests --bench docker` (15 rounds;
//! `-- --quick` for 3).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::models::{ContainerCreateBody, HostConfig, HostConfigLogConfig};
use bollard::query_parameters::{
    AttachContainerOptions, CreateContainerOptions, ListContainersOptions, RemoveContainerOptions,
    StartContainerOptions, WaitContainerOptions,
};
use bollard::Docker;
use futures_util::StreamExt;
use pulp_tests::toolchain::{docker_ready, TEST_IMAGE};
use pulp_tests::{Driver, Fixture};
use rmpv::Value as V;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The engine calls of `docker_run` (ext-docker `ops::run`), made directly.
async fn bollard_run(docker: &Docker) -> i64 {
    let labels = HashMap::from([
        ("pulp.plugin".to_string(), "dk-bench-raw".to_string()),
        ("pulp.host".to_string(), "bench".to_string()),
        ("pulp.instance".to_string(), "bench".to_string()),
    ]);
    let volumes = docker
        .inspect_image(TEST_IMAGE)
        .await
        .unwrap()
        .config
        .and_then(|c| c.volumes)
        .unwrap_or_default();
    assert!(volumes.is_empty(), "the test image has no VOLUMEs");
    let live = docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(HashMap::from([(
                "label".to_string(),
                vec![
                    "pulp.plugin=dk-bench-raw".to_string(),
                    "pulp.host=bench".to_string(),
                ],
            )])),
            ..Default::default()
        }))
        .await
        .unwrap();
    assert!(live.is_empty(), "a container was left over");
    let mb = 256i64 << 20;
    let body = ContainerCreateBody {
        image: Some(TEST_IMAGE.to_string()),
        cmd: Some(vec!["true".to_string()]),
        env: Some(vec![]),
        labels: Some(labels),
        attach_stdin: Some(false),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        open_stdin: Some(false),
        stdin_once: Some(false),
        tty: Some(false),
        user: Some("65534:65534".to_string()),
        host_config: Some(HostConfig {
            memory: Some(mb),
            memory_swap: Some(mb),
            nano_cpus: Some(1_000_000_000),
            pids_limit: Some(256),
            network_mode: Some("none".to_string()),
            privileged: Some(false),
            cap_drop: Some(vec!["ALL".to_string()]),
            security_opt: Some(vec!["no-new-privileges".to_string()]),
            log_config: Some(HostConfigLogConfig {
                typ: Some("none".into()),
                config: None,
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let id = docker
        .create_container(None::<CreateContainerOptions>, body)
        .await
        .unwrap()
        .id;
    let mut attached = docker
        .attach_container(
            &id,
            Some(AttachContainerOptions {
                stream: true,
                stdout: true,
                stderr: true,
                ..Default::default()
            }),
        )
        .await
        .unwrap();
    docker
        .start_container(&id, None::<StartContainerOptions>)
        .await
        .unwrap();
    while let Some(item) = attached.output.next().await {
        item.unwrap();
    }
    let code = docker
        .wait_container(&id, None::<WaitContainerOptions>)
        .next()
        .await
        .unwrap()
        .unwrap()
        .status_code;
    docker
        .remove_container(
            &id,
            Some(RemoveContainerOptions {
                force: true,
                v: true,
                ..Default::default()
            }),
        )
        .await
        .unwrap();
    code
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--bench") {
        return;
    }
    let rounds = if args.iter().any(|a| a == "--quick") {
        3
    } else {
        15
    };
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
    let rt = pulp_ext::runtime();
    // Connected and negotiated once, as the plugin's engine client is.
    let docker = rt
        .block_on(Docker::connect_with_defaults().unwrap().negotiate_version())
        .unwrap();
    let cli_args = [
        "run",
        "--rm",
        "--network",
        "none",
        "--memory",
        "256m",
        "--memory-swap",
        "256m",
        "--cpus",
        "1",
        "--pids-limit",
        "256",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "--log-driver",
        "none",
        "--user",
        "65534:65534",
        TEST_IMAGE,
        "true",
    ];
    let mut side = |which: usize| -> Duration {
        let t = Instant::now();
        match which {
            0 => {
                let o = d.call("docker_run", &req, b"");
                let took = t.elapsed();
                assert_eq!(o.status, 0, "{o:?}");
                took
            }
            1 => {
                assert_eq!(rt.block_on(bollard_run(&docker)), 0);
                t.elapsed()
            }
            _ => {
                let s = std::process::Command::new("docker")
                    .args(cli_args)
                    .status()
                    .unwrap();
                let took = t.elapsed();
                assert!(s.success());
                took
            }
        }
    };
    // One unmeasured round: the engine's caches, the plugin's client connection.
    for which in 0..3 {
        side(which);
    }
    let mut times: [Vec<Duration>; 3] = Default::default();
    for round in 0..rounds {
        for k in 0..3 {
            let which = (round + k) % 3;
            times[which].push(side(which));
        }
    }
    let [p, b, c] = times.map(median);
    println!(
        "docker_run `true`, median of {rounds} rounds (order rotating): through a plugin {p:?}; \
         the same engine calls with bollard {b:?} (ratio {:.2}); `docker run --rm` from the CLI {c:?} (ratio {:.2})",
        p.as_secs_f64() / b.as_secs_f64(),
        p.as_secs_f64() / c.as_secs_f64()
    );
}
