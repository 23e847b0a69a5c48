//! The runtime: a thread per plugin, prompt events, supervision, clean stops.

use std::time::{Duration, Instant};

use pulp_ext::Event;
use pulp_host::{Health, Runtime, RuntimeConfig};
use pulp_tests::{guest, lifecycle, records, Fixture};

const REC: &str = "capabilities = [\"test.record\"]";

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(20);
    while !ok() {
        assert!(Instant::now() < until, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn payload_kinds(envelopes: &[Vec<u8>]) -> Vec<String> {
    envelopes
        .iter()
        .filter(|e| e.len() > 20)
        .map(|e| {
            let v: rmpv::Value = rmpv::decode::read_value(&mut &e[20..]).unwrap();
            v["kind"].as_str().unwrap().to_string()
        })
        .collect()
}

#[test]
fn events_reach_the_plugin_in_order_between_idle_ticks() {
    let f = Fixture::new();
    let mut p = f.load("rt-events", &guest("envelope.wat"), REC).unwrap();
    p.init().unwrap();
    records("rt-events");
    let mut rt = Runtime::new(RuntimeConfig::default());
    let h = rt.spawn(p).unwrap();
    for kind in ["a", "b", "c"] {
        h.events()
            .post("test", Event::from_raw(kind, vec![0x80]))
            .unwrap();
    }
    let mut seen = Vec::new();
    wait_for("three events", || {
        seen.extend(records("rt-events"));
        payload_kinds(&seen).len() == 3
    });
    assert_eq!(payload_kinds(&seen), ["a", "b", "c"]);
    let numbers: Vec<u64> = seen
        .iter()
        .map(|e| u64::from_le_bytes(e[..8].try_into().unwrap()))
        .collect();
    assert!(
        numbers.windows(2).all(|w| w[1] == w[0] + 1),
        "call numbers count every step: {numbers:?}"
    );
    let reports = rt.stop();
    assert_eq!(reports[0].error, None);
}

#[test]
fn supervision_restarts_a_failing_plugin_then_stops_it_while_others_keep_running() {
    let f = Fixture::new();
    let extra = format!("{REC}\n[limits]\ncall_timeout_ms = 50");
    let mut bad = f
        .load("rt-bad", &guest("hostile/loop_in_step.wat"), &extra)
        .unwrap();
    bad.init().unwrap();
    let mut good = f.load("rt-good", &guest("envelope.wat"), REC).unwrap();
    good.init().unwrap();
    let mut rt = Runtime::new(RuntimeConfig {
        restart_backoff: Duration::from_millis(10),
        max_failures: 3,
        ..RuntimeConfig::default()
    });
    let hb = rt.spawn(bad).unwrap();
    let hg = rt.spawn(good).unwrap();
    wait_for("the failing plugin to be stopped", || {
        matches!(hb.health(), Health::Failed(_))
    });
    let Health::Failed(why) = hb.health() else {
        unreachable!()
    };
    assert!(
        why.contains("failed 4 times") && why.contains("rt-bad"),
        "{why}"
    );
    assert_eq!(hb.restarts(), 3);
    // Each replaced instance was detached, and the last one too once the plugin
    // failed for good: it is closed at once (its queues, routes and resources go).
    wait_for("the failed plugin to be closed", || {
        lifecycle("rt-bad").1 == 4
    });
    assert_eq!(lifecycle("rt-bad").0, 4, "four instances attached");
    assert!(hb.events().is_closed());
    records("rt-good");
    wait_for("the healthy plugin to keep stepping", || {
        records("rt-good").len() > 3
    });
    assert_eq!(hg.health(), Health::Running);
    let reports = rt.stop();
    let bad = reports.iter().find(|r| r.name == "rt-bad").unwrap();
    assert!(bad.error.as_deref().unwrap().contains("failed 4 times"));
    let good = reports.iter().find(|r| r.name == "rt-good").unwrap();
    assert_eq!(good.error, None);
    assert_eq!(
        lifecycle("rt-bad"),
        (4, 4),
        "closing released the last instance"
    );
}

fn stop_with_grace(name: &str, file: &str) -> pulp_host::Report {
    let f = Fixture::new();
    let extra = format!("{REC}\n[limits]\ncall_timeout_ms = 3600000");
    let mut p = f.load(name, &guest(file), &extra).unwrap();
    p.init().unwrap();
    let mut rt = Runtime::new(RuntimeConfig {
        stop_grace: Duration::from_millis(100),
        ..RuntimeConfig::default()
    });
    rt.spawn(p).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    rt.stop().pop().unwrap()
}

#[test]
fn stop_interrupts_a_step_stuck_in_a_loop_then_shuts_down_cleanly() {
    let r = stop_with_grace("rt-stuck-step", "hostile/loop_in_step.wat");
    assert_eq!(
        r.error, None,
        "the stuck step was interrupted and pulp_shutdown ran"
    );
}

#[test]
fn stop_interrupts_a_stuck_shutdown_and_reports_it() {
    let r = stop_with_grace("rt-stuck-shutdown", "hostile/loop_in_shutdown.wat");
    let e = r.error.unwrap();
    assert!(
        e.contains("pulp_shutdown was interrupted because the host is stopping"),
        "{e}"
    );
}

#[test]
fn several_plugins_share_one_host() {
    let f = Fixture::new();
    let mut rt = Runtime::new(RuntimeConfig::default());
    let names = ["rt-one", "rt-two", "rt-three"];
    for n in names {
        let mut p = f.load(n, &guest("envelope.wat"), REC).unwrap();
        p.init().unwrap();
        records(n);
        rt.spawn(p).unwrap();
    }
    for n in names {
        wait_for(n, || !records(n).is_empty());
    }
    assert!(rt.stop().iter().all(|r| r.error.is_none()));
}
