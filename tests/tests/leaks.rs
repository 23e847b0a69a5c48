//! A thousand lives of a plugin that uses every capability (load → init → 100 steps
//! → shutdown → close): open files, threads, containers and resident memory come
//! back to where they were. Alone in its test binary, so no other test's threads or
//! files blur the counts. Needs clang and a Docker engine.

use pulp_host::{Manifest, Plugin};
use pulp_tests::toolchain::{containers_of, TEST_IMAGE};
use pulp_tests::{c_guest, docker, process_counts, Fixture, TestServer};

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
        std::time::Duration::ZERO,
    );
    let f = Fixture::new();
    let extra = format!(
        r#"capabilities = ["storage.sqlite", "storage.fs", "transport.http.outbound", "transport.http.inbound", "transport.ws.inbound", "transport.sse", "spawn.docker"]
[config]
url = "http://{addr}/ping"
[capability."transport.http.outbound"]
allowed_hosts = ["{addr}"]
[capability."spawn.docker"]
images = ["{TEST_IMAGE}"]"#,
        addr = server.addr
    );
    let manifest = Manifest::load(f.write_for("every-cap", &wasm, &extra)).unwrap();
    let life = || {
        let mut p = Plugin::load(&f.host, &manifest, Some(&f.registry)).unwrap();
        p.init().unwrap();
        for _ in 0..100 {
            assert_eq!(p.step_event(None).unwrap(), 0);
        }
        p.shutdown().unwrap();
        p.close();
    };
    // Warm-up: the module cache, the listener, the shared runtime's threads.
    for _ in 0..50 {
        life();
    }
    let (fds, ths, rss) = process_counts();
    let started = std::time::Instant::now();
    for _ in 0..1000 {
        life();
    }
    let (fds2, ths2, rss2) = process_counts();
    println!(
        "1000 lives in {:.1?}: open files {fds} -> {fds2}, threads {ths} -> {ths2}, resident {} -> {} MiB",
        started.elapsed(),
        rss / 1024,
        rss2 / 1024
    );
    assert!(fds2 <= fds + 4, "open files grew: {fds} -> {fds2}");
    assert!(ths2 <= ths + 2, "threads grew: {ths} -> {ths2}");
    assert!(
        rss2 <= rss + 64 * 1024,
        "resident memory grew: {rss} -> {rss2} KiB"
    );
    assert!(containers_of("every-cap").is_empty());
    assert!(server.connections() >= 1050, "every life fetched");
}
