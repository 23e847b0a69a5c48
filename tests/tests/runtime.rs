//! The runtime: a thread per plugin, prompt events, supervision, clean stops.

use std::time::{Duration, Instant};

use pulp_ext::Event;
use pulp_host::{Health, Runtime, RuntimeConfig};
use pulp_tests::{capture_all_threads_logs, guest, lifecycle, records, statuses, Fixture};

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
        why.contains("failed 3 times") && why.contains("rt-bad"),
        "{why}"
    );
    assert_eq!(hb.restarts(), 2, "restarted after failures 1 and 2, not 3");
    // Each replaced instance was detached, and the last one too once the plugin
    // failed for good: it is closed at once (its queues, routes and resources go).
    wait_for("the failed plugin to be closed", || {
        lifecycle("rt-bad").1 == 3
    });
    assert_eq!(lifecycle("rt-bad").0, 3, "three instances attached");
    assert!(hb.events().is_closed());
    records("rt-good");
    let mut steps = 0;
    wait_for("the healthy plugin to keep stepping", || {
        steps += records("rt-good").len();
        steps > 3
    });
    assert_eq!(hg.health(), Health::Running);
    let reports = rt.stop();
    let bad = reports.iter().find(|r| r.name == "rt-bad").unwrap();
    assert!(bad.error.as_deref().unwrap().contains("failed 3 times"));
    assert_eq!(bad.restarts, 2);
    let good = reports.iter().find(|r| r.name == "rt-good").unwrap();
    assert_eq!(good.error, None);
    assert_eq!(
        lifecycle("rt-bad"),
        (3, 3),
        "closing released the last instance"
    );
}

#[test]
fn by_default_the_fifth_failure_within_30_s_stops_a_plugin_after_four_restarts() {
    // README: "the 5th failure within 30 s stops the plugin (4 restarts ...)".
    let d = RuntimeConfig::default();
    assert_eq!(
        (d.max_failures, d.failure_window),
        (5, Duration::from_secs(30))
    );
    let f = Fixture::new();
    let extra = format!("{REC}\n[limits]\ncall_timeout_ms = 50");
    let mut p = f
        .load("rt-default", &guest("hostile/loop_in_step.wat"), &extra)
        .unwrap();
    p.init().unwrap();
    let mut rt = Runtime::new(RuntimeConfig::default());
    let h = rt.spawn(p).unwrap();
    // Back-off 100 + 200 + 400 + 800 ms between the five 50 ms failures.
    wait_for("the plugin to be stopped for good", || {
        matches!(h.health(), Health::Failed(_))
    });
    let Health::Failed(why) = h.health() else {
        unreachable!()
    };
    assert!(
        why.starts_with("failed 5 times within 30s; stopped (last: plugin \"rt-default\": pulp_step ran past its 50 ms deadline"),
        "{why}"
    );
    assert_eq!(
        h.restarts(),
        4,
        "a restart after each of failures 1-4, none after the 5th"
    );
    wait_for("the failed plugin to be closed", || {
        lifecycle("rt-default").1 == 5
    });
    assert_eq!(
        lifecycle("rt-default"),
        (5, 5),
        "five instances, all released"
    );
    let r = rt.stop().pop().unwrap();
    assert_eq!(r.restarts, 4);
    assert!(r.error.unwrap().starts_with("failed 5 times"));
}

/// Runs `file` as plugin `name` with a 100 ms stop grace and a one-hour call deadline;
/// `ready` says (from what the guest recorded) when to stop it. Returns the report
/// and what the guest recorded after it was ready.
fn stop_with_grace(name: &str, file: &str, ready: &[i32]) -> (pulp_host::Report, Vec<i32>) {
    let f = Fixture::new();
    let extra = format!("{REC}\n[limits]\ncall_timeout_ms = 3600000");
    let mut p = f.load(name, &guest(file), &extra).unwrap();
    p.init().unwrap();
    let mut rt = Runtime::new(RuntimeConfig {
        stop_grace: Duration::from_millis(100),
        ..RuntimeConfig::default()
    });
    let h = rt.spawn(p).unwrap();
    let mut seen = Vec::new();
    wait_for(&format!("{name} to record {ready:?}"), || {
        seen.extend(statuses(name));
        seen.starts_with(ready)
    });
    assert_eq!(seen, ready, "{name}");
    let t = Instant::now();
    let mut reports = rt.stop();
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "stop returned within its grace and interrupt time"
    );
    assert_eq!(h.health(), Health::Stopped);
    (reports.pop().unwrap(), statuses(name))
}

#[test]
fn stop_interrupts_a_step_stuck_in_a_loop_then_shuts_down_cleanly() {
    let logs = capture_all_threads_logs();
    // The first step (call 0) records 1 and loops for ever under a one-hour deadline.
    let (r, after) = stop_with_grace("rt-stuck-step", "hostile/stuck_step.wat", &[1]);
    assert_eq!(r.error, None, "pulp_shutdown ran and returned 0");
    assert_eq!(r.restarts, 0, "being cut at stop is not a failure");
    assert_eq!(
        after,
        [3, 1],
        "pulp_shutdown ran on the instance whose step was in its loop: the step was cut"
    );
    let text = logs.text();
    assert!(
        text.lines().any(|l| l.contains(
            "plugin \"rt-stuck-step\": pulp_step was interrupted because the host is stopping"
        )),
        "{text}"
    );
}

#[test]
fn a_trap_while_the_host_stops_is_reported_and_not_restarted() {
    let logs = capture_all_threads_logs();
    let name = "rt-trap-stopping";
    let f = Fixture::new();
    let mut p = f
        .load(name, &guest("hostile/trap_while_stopping.wat"), REC)
        .unwrap();
    p.init().unwrap();
    let mut rt = Runtime::new(RuntimeConfig::default());
    rt.spawn(p).unwrap();
    // In its first step's 300 ms sleep; the trap comes after the stop began.
    wait_for("the first step", || !statuses(name).is_empty());
    let r = rt.stop().pop().unwrap();
    let e = r.error.expect("the trap is the plugin's failure");
    assert!(e.contains("unreachable"), "{e}");
    assert_eq!(r.restarts, 0);
    let text = logs.text();
    let ours: Vec<&str> = text.lines().filter(|l| l.contains(name)).collect();
    assert!(
        !ours.iter().any(|l| l.contains("restarting it")),
        "{ours:#?}"
    );
    assert!(
        ours.iter()
            .any(|l| l.contains("not restarted: the host is stopping")),
        "{ours:#?}"
    );
}

#[test]
fn stop_interrupts_a_stuck_shutdown_and_reports_it() {
    // Steps return at once; pulp_shutdown loops for ever under a one-hour deadline.
    let (r, after) = stop_with_grace("rt-stuck-shutdown", "hostile/loop_in_shutdown.wat", &[]);
    let e = r.error.unwrap();
    assert!(
        e.contains("plugin \"rt-stuck-shutdown\": pulp_shutdown was interrupted because the host is stopping"),
        "{e}"
    );
    assert_eq!(after, [0; 0]);
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

/// Events are delivered to every one of 2 000 plugins, which all run on a few
/// worker threads (not a thread each), and every one shuts down cleanly.
#[test]
fn two_thousand_plugins_run_on_a_few_workers() {
    const N: usize = 2000;
    let f = Fixture::new();
    let mut rt = Runtime::new(RuntimeConfig {
        workers: 2,
        ..RuntimeConfig::default()
    });
    let started = Instant::now();
    let mut handles = Vec::new();
    for i in 0..N {
        let name = format!("rt-many-{i}");
        // No idle ticks: each plugin runs only for its event.
        let extra = format!("{REC}\n[limits]\ntick_ms = 0");
        let mut p = f.load(&name, &guest("envelope.wat"), &extra).unwrap();
        p.init().unwrap();
        handles.push(rt.spawn(p).unwrap());
    }
    let threads_before = pulp_tests::process_counts().1;
    for (i, h) in handles.iter().enumerate() {
        h.events()
            .post("test", Event::from_raw(format!("k{i}"), vec![0x80]))
            .unwrap();
    }
    for (i, _) in handles.iter().enumerate() {
        let name = format!("rt-many-{i}");
        let mut seen = Vec::new();
        wait_for(&name, || {
            seen.extend(records(&name));
            !payload_kinds(&seen).is_empty()
        });
        std::thread::sleep(Duration::from_micros(50));
        seen.extend(records(&name));
        assert_eq!(
            payload_kinds(&seen),
            [format!("k{i}")],
            "{name} got its own event, once"
        );
    }
    let threads = pulp_tests::process_counts().1;
    assert!(
        threads <= threads_before + 2 && rt.workers() <= 4,
        "{N} plugins ran on {} workers ({threads} threads in the process, {threads_before} before the events)",
        rt.workers()
    );
    eprintln!(
        "{N} plugins loaded, initialised, scheduled and served in {:?}",
        started.elapsed()
    );
    let reports = rt.stop();
    assert_eq!(reports.len(), N);
    assert!(reports.iter().all(|r| r.error.is_none()));
}

/// Three plugins stuck in long steps on a pool of two workers do not hold up a
/// fourth: another worker is started for it, and its event is served while the
/// long steps still run (they end at their 4 s deadline).
#[test]
fn plugins_in_long_calls_do_not_starve_the_others() {
    let f = Fixture::new();
    let mut rt = Runtime::new(RuntimeConfig {
        workers: 2,
        restart_backoff: Duration::from_secs(60),
        stop_grace: Duration::from_millis(100),
        ..RuntimeConfig::default()
    });
    let long = format!("{REC}\n[limits]\ncall_timeout_ms = 4000");
    let mut stuck = Vec::new();
    for i in 0..3 {
        let name = format!("rt-long-{i}");
        let mut p = f
            .load(&name, &guest("hostile/loop_in_step.wat"), &long)
            .unwrap();
        p.init().unwrap();
        stuck.push(rt.spawn(p).unwrap());
    }
    let mut quick = f.load("rt-quick", &guest("envelope.wat"), REC).unwrap();
    quick.init().unwrap();
    records("rt-quick");
    let q = rt.spawn(quick).unwrap();
    // The long steps start on their first idle tick; give them the workers first.
    std::thread::sleep(Duration::from_millis(200));
    let posted = Instant::now();
    q.events()
        .post("test", Event::from_raw("ping", vec![0x80]))
        .unwrap();
    let mut seen = Vec::new();
    wait_for("the quick plugin's event", || {
        seen.extend(records("rt-quick"));
        payload_kinds(&seen).contains(&"ping".to_string())
    });
    let took = posted.elapsed();
    assert!(
        took < Duration::from_millis(3000),
        "served after {took:?}, before the long steps' 4 s deadline"
    );
    assert!(
        stuck.iter().all(|h| h.health() == Health::Running),
        "the long steps were still running"
    );
    assert!(
        rt.workers() >= 3,
        "another worker was started: {}",
        rt.workers()
    );
    rt.stop();
}
