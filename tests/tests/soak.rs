//! A soak: the echo plugin under bounded load while a neighbour traps every 50 steps
//! and is restarted each time. No request is lost or wrong, echo is never restarted,
//! open files, threads and resident memory do not grow, and stopping reports both
//! plugins shut down cleanly. 20 s by default (`PULP_SOAK_SECS` for longer); alone
//! in its test binary so the counts are this test's.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use pulp_host::{Runtime, RuntimeConfig};
use pulp_tests::{c_module, guest, process_counts as counts, Fixture};

/// Resident memory may grow this much over the measured burst. Measured growth here
/// is 0.2–0.3 MiB over 20 s and over 60 s (330 000 to 920 000 requests, 140 to 410
/// restarts of the neighbour); a leak of 16 bytes a request (5 MiB in 20 s) or of
/// 32 KiB a restart of the neighbour (4.4 MiB) goes over it.
const RSS_SLACK_MIB: u64 = 4;

#[test]
fn echo_under_load_beside_a_plugin_that_keeps_trapping() {
    let Some(wasm) = c_module("examples/echo/echo.c") else {
        return;
    };
    let secs: u64 = std::env::var("PULP_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let f = Fixture::new();
    let mut echo = f
        .load_module(
            "echo",
            &wasm,
            "capabilities = [\"transport.http.inbound\", \"transport.ws.inbound\", \"transport.sse\"]\n[limits]\nqueue = 256",
        )
        .unwrap();
    echo.init().unwrap();
    let mut trap = f
        .load(
            "trapper",
            &guest("trap_often.wat"),
            "capabilities = [\"test.record\"]",
        )
        .unwrap();
    trap.init().unwrap();
    let mut runtime = Runtime::new(RuntimeConfig {
        tick: Duration::from_millis(1),
        max_tick: Duration::from_millis(1),
        restart_backoff: Duration::from_millis(1),
        max_failures: usize::MAX,
        failure_window: Duration::from_secs(1),
        ..RuntimeConfig::default()
    });
    let echo = runtime.spawn(echo).unwrap();
    let trapper = runtime.spawn(trap).unwrap();
    let base = format!("http://{}", ext_http::listening(f.host.shared()).unwrap());
    let _ = rustls::crypto::ring::default_provider().install_default();
    // At most as many idle connections as requests in flight: otherwise the client's
    // pool grows whenever a connection comes back a moment after the next request
    // started (more so the faster the host answers), and the open-files count would
    // measure the client.
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(16)
        .build()
        .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let burst = |seconds: u64, tag: &'static str| {
        let until = Instant::now() + Duration::from_secs(seconds);
        rt.block_on(async {
            let (mut sent, mut bad) = (0u64, Vec::new());
            while Instant::now() < until {
                let results: Vec<(String, Result<String, String>)> =
                    futures_util::stream::iter(0..256u32)
                        .map(|i| {
                            let (c, msg) = (client.clone(), format!("{tag}{sent}x{i}"));
                            let url = format!("{base}/echo/{msg}");
                            async move {
                                let r = match c.get(url).send().await {
                                    Ok(r) if r.status() == 200 => {
                                        r.text().await.map_err(|e| e.to_string())
                                    }
                                    Ok(r) => Err(format!("status {}", r.status())),
                                    Err(e) => Err(e.to_string()),
                                };
                                (msg, r)
                            }
                        })
                        .buffer_unordered(16)
                        .collect()
                        .await;
                for (msg, r) in results {
                    if r.as_deref() != Ok(msg.as_str()) {
                        bad.push(format!("{msg}: {r:?}"));
                    }
                }
                sent += 256;
            }
            (sent, bad)
        })
    };
    burst(2, "warm"); // caches, connections, the runtime's threads
    let before = counts();
    let restarts_before = trapper.restarts();
    let (sent, bad) = burst(secs, "m");
    let after = counts();
    let restarts = trapper.restarts() - restarts_before;
    println!(
        "soak {secs} s: {sent} requests, {} wrong; neighbour restarted {restarts} times; open files {} -> {}, threads {} -> {}, resident {} -> {} KiB",
        bad.len(),
        before.0,
        after.0,
        before.1,
        after.1,
        before.2,
        after.2
    );
    assert_eq!(echo.restarts(), 0, "echo never failed");
    assert!(
        bad.is_empty(),
        "lost or wrong: {:?}",
        &bad[..bad.len().min(5)]
    );
    assert!(sent > 1000);
    assert!(
        restarts >= 10,
        "the neighbour kept trapping and coming back: {restarts}"
    );
    assert!(after.0 <= before.0 + 8, "open files grew");
    assert!(after.1 <= before.1 + 2, "threads grew");
    assert!(
        after.2 <= before.2 + RSS_SLACK_MIB * 1024,
        "resident memory grew over {RSS_SLACK_MIB} MiB: {} -> {} KiB",
        before.2,
        after.2
    );
    let reports = runtime.stop();
    let names: Vec<&str> = reports.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["echo", "trapper"], "a report for each plugin");
    for r in &reports {
        assert_eq!(r.error, None, "{} stopped cleanly: {r:?}", r.name);
    }
    assert_eq!(reports[0].restarts, 0, "echo's report: never restarted");
    assert!(
        reports[1].restarts >= restarts,
        "the trapper's report counts its restarts: {:?}",
        reports[1]
    );
}
