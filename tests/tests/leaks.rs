//! A thousand lives of a plugin that uses every capability, each life driven by real
//! clients: load → init → a WebSocket client opens, sends and gets its echo → an SSE
//! subscriber connects → an inbound HTTP request whose answer proves a SQLite insert,
//! a file written and read back, an outbound fetch and (every `DOCKER_EVERY`th life) a
//! `docker_run` and a long-lived container that only the host's close removes → the
//! SSE subscriber gets the life's event → the WebSocket closes → shutdown → close.
//! Afterwards open files and threads are back at their level, no container is left,
//! and resident memory grew by less than `RSS_SLACK_MIB` over the lives after a
//! warm-up. Alone in its test binary, so no other test's threads or files blur the
//! counts. Needs clang and a Docker engine.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use pulp_ext::host::{HostEvents, Next};
use pulp_host::{Manifest, Plugin};
use pulp_tests::toolchain::{containers_of, TEST_IMAGE};
use pulp_tests::{c_guest, docker, listener, process_counts, Fixture, TestServer};
use tokio_tungstenite::tungstenite::Message;

const NAME: &str = "every-cap";
/// Lives before the baseline is taken: the module cache, the listener, the shared
/// runtimes' threads, the allocator's arenas settle.
const WARM_UP: u64 = 100;
/// Lives measured.
const LIVES: u64 = 1000;
/// Docker takes about a second a life (a run, a create, a forced removal on close)
/// against some 30 ms for the rest, so only every 10th life uses it: 110 of the 1100
/// lives, 100 of them measured (Docker in every life would take some 20 minutes).
const DOCKER_EVERY: u64 = 10;
/// Resident memory may grow this much over the measured lives. Measured growth here
/// is 0.3–0.5 MiB over 1000 lives (allocator noise and creep); a leak of 4 KiB a
/// life, or of 40 KiB a Docker life, goes over it.
const RSS_SLACK_MIB: u64 = 4;

/// Waits up to 10 s for the plugin's next event, checks its kind and steps it (0).
fn step(p: &mut Plugin, kind: &str) {
    match p.view().events().next(Duration::from_secs(10)) {
        Next::Event(e) => {
            assert_eq!(e.kind(), kind, "the next event");
            assert_eq!(p.step_event(Some(&e)).unwrap(), 0, "the step of {kind}");
        }
        other => panic!("no {kind} event within 10 s: {other:?}"),
    }
}

/// Runs `fut` on `rt`, failing after 20 s (a docker run is in some of them).
fn within<F: std::future::Future>(rt: &tokio::runtime::Runtime, what: &str, fut: F) -> F::Output {
    rt.block_on(async { tokio::time::timeout(Duration::from_secs(20), fut).await })
        .unwrap_or_else(|_| panic!("{what}: nothing within 20 s"))
}

#[test]
fn a_thousand_lives_using_every_capability_leak_nothing() {
    if !docker() {
        return;
    }
    let Some(wasm) = c_guest("every_cap.c") else {
        return;
    };
    let server = TestServer::start(
        "127.0.0.1",
        TestServer::response("200 OK", &[], b"pong"),
        Duration::ZERO,
    );
    let f = Fixture::new();
    let extra = format!(
        r#"capabilities = ["storage.sqlite", "storage.fs", "transport.http.outbound", "transport.http.inbound", "transport.ws.inbound", "transport.sse", "spawn.docker"]
[config]
url = "http://{addr}/ping"
image = "{TEST_IMAGE}"
[capability."transport.http.outbound"]
allowed_hosts = ["{addr}"]
[capability."spawn.docker"]
images = ["{TEST_IMAGE}"]"#,
        addr = server.addr
    );
    let manifest = Manifest::load(f.write_for(NAME, &wasm, &extra)).unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    // No idle connections kept: every life's request is a new connection.
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut containers_seen = 0;
    let mut in_docker_lives = Duration::ZERO;

    let mut life = |k: u64| {
        let with_docker = k.is_multiple_of(DOCKER_EVERY);
        let began = Instant::now();
        let mut p = Plugin::load(&f.host, &manifest, Some(&f.registry)).unwrap();
        p.init().unwrap();
        let a = listener(&f);

        let mut sse = within(
            &rt,
            "SSE subscribe",
            client.get(format!("http://{a}/leak-sse")).send(),
        )
        .unwrap();
        assert_eq!(sse.status(), 200, "SSE subscription");

        let (mut ws, _) = within(
            &rt,
            "WebSocket connect",
            tokio_tungstenite::connect_async(format!("ws://{a}/leak-ws")),
        )
        .unwrap();
        step(&mut p, "ws.open");
        within(
            &rt,
            "WebSocket send",
            ws.send(Message::text(format!("ping {k}"))),
        )
        .unwrap();
        step(&mut p, "ws.frame");
        assert_eq!(
            within(&rt, "WebSocket echo", ws.next()).unwrap().unwrap(),
            Message::text(format!("echo:ping {k}"))
        );

        let query = if with_docker { "?docker=1" } else { "" };
        let request = rt.spawn(client.get(format!("http://{a}/leak/{k}{query}")).send());
        step(&mut p, "http.request");
        let response = within(&rt, "HTTP answer", request).unwrap().unwrap();
        let status = response.status();
        let body = within(&rt, "HTTP body", response.text()).unwrap();
        let ran = if with_docker {
            format!("0 ran-{k}")
        } else {
            "-".into()
        };
        assert_eq!(
            (status.as_u16(), body.as_str()),
            (
                200,
                format!(
                    "life={k} rows={} file={k} fetch=200 pong docker={ran}",
                    k + 1
                )
                .as_str()
            ),
            "life {k}: the plugin's answer"
        );
        if with_docker {
            // docker_run removed its container; the `sleep 600` one is still there.
            assert_eq!(
                containers_of(NAME).len(),
                1,
                "life {k}: the long-lived container"
            );
            containers_seen += 1;
        }

        let want = format!("event: life\ndata: {k}\n\n");
        let mut got = String::new();
        while !got.contains(&want) {
            let chunk = within(&rt, "SSE event", sse.chunk())
                .unwrap()
                .unwrap_or_else(|| panic!("life {k}: the SSE stream ended: {got:?}"));
            got.push_str(std::str::from_utf8(&chunk).unwrap());
        }

        within(&rt, "WebSocket close", ws.close(None)).unwrap();
        step(&mut p, "ws.close");
        while let Some(Ok(m)) = within(&rt, "WebSocket closing", ws.next()) {
            assert!(
                m.is_close(),
                "life {k}: after close only the close frame: {m:?}"
            );
        }
        drop(sse);

        p.shutdown().unwrap();
        p.close();
        if with_docker {
            assert!(
                containers_of(NAME).is_empty(),
                "life {k}: close removes the plugin's containers"
            );
            in_docker_lives += began.elapsed();
        }
    };

    for k in 0..WARM_UP {
        life(k);
    }
    let (fds, ths, rss) = process_counts();
    let started = Instant::now();
    let mut samples = Vec::new();
    for k in WARM_UP..WARM_UP + LIVES {
        life(k);
        if (k + 1 - WARM_UP).is_multiple_of(100) {
            samples.push(process_counts().2 as i64 - rss as i64);
        }
    }
    let elapsed = started.elapsed();
    // Closed sockets and finished blocking-pool threads go within moments.
    let settle = Instant::now() + Duration::from_secs(15);
    let (mut fds2, mut ths2, _) = process_counts();
    while (fds2 > fds || ths2 > ths) && Instant::now() < settle {
        std::thread::sleep(Duration::from_millis(50));
        (fds2, ths2, _) = process_counts();
    }
    let rss2 = process_counts().2;
    println!(
        "{LIVES} lives ({} with Docker, {in_docker_lives:.1?} in all of the {} Docker lives) in {elapsed:.1?}: open files {fds} -> {fds2}, threads {ths} -> {ths2}, resident {rss} -> {rss2} KiB (growth every 100 lives: {samples:?} KiB)",
        LIVES / DOCKER_EVERY,
        (WARM_UP + LIVES).div_ceil(DOCKER_EVERY),
    );
    assert!(fds2 <= fds, "open files grew: {fds} -> {fds2}");
    assert!(ths2 <= ths, "threads grew: {ths} -> {ths2}");
    assert!(
        rss2 <= rss + RSS_SLACK_MIB * 1024,
        "resident memory grew over {RSS_SLACK_MIB} MiB: {rss} -> {rss2} KiB (growth every 100 lives: {samples:?} KiB)"
    );
    let lives = WARM_UP + LIVES;
    assert_eq!(
        containers_seen,
        lives.div_ceil(DOCKER_EVERY),
        "each Docker life had its container"
    );
    assert!(containers_of(NAME).is_empty(), "no container left");
    assert_eq!(
        server.connections() as u64,
        lives,
        "every life fetched once"
    );
    let db = rusqlite::Connection::open(f.dir.path().join(format!("data/{NAME}/data.db"))).unwrap();
    let rows: i64 = db
        .query_row("SELECT count(*) FROM lives", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows as u64, lives, "every life's insert is in the database");
}
