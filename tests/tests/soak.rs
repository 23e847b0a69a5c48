//! A soak: the echo plugin under bounded load while a neighbour traps every 50 steps
//! and is restarted each time. No request is lost or wrong, and open files, threads
//! and resident memory do not grow. 20 s by default (`PULP_SOAK_SECS` for longer);
//! alone in its test binary so the counts are this test's.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use pulp_host::{Runtime, RuntimeConfig};
use pulp_tests::{c_module, guest, process_counts, Fixture};

/// Open files, threads, resident MiB.
fn counts() -> (usize, usize, u64) {
    let (files, threads, kib) = process_counts();
    (files, threads, kib / 1024)
}

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
    runtime.spawn(echo).unwrap();
    let trapper = runtime.spawn(trap).unwrap();
    let base = format!("http://{}", ext_http::listening(f.host.shared()).unwrap());
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
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
        "soak {secs} s: {sent} requests, {} wrong; neighbour restarted {restarts} times; open files {} -> {}, threads {} -> {}, resident {} -> {} MiB",
        bad.len(),
        before.0,
        after.0,
        before.1,
        after.1,
        before.2,
        after.2
    );
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
    assert!(after.2 <= before.2 + 64, "resident memory grew");
    runtime.stop();
}
