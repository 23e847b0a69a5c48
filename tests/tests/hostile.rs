//! Hostile and buggy guests (tests/guests/hostile/): the host never panics or hangs,
//! bad input gets the status of ABI §4, and exhausted limits fail only that call.

use std::time::{Duration, Instant};

use pulp_host::{CallError, Envelope, Plugin};
use pulp_tests::{capture_logs, guest, records, statuses, Fixture};

const REC: &str = "capabilities = [\"test.record\"]";

#[test]
fn wild_pointers_and_bad_msgpack_get_statuses_and_the_plugin_keeps_working() {
    // Logs are read only when emitted: capture at every level so they are.
    let (_g, _logs) = capture_logs();
    let f = Fixture::new();
    let mut p = f
        .load("wild", &guest("hostile/wild_pointers.wat"), REC)
        .unwrap();
    p.init().unwrap();
    assert_eq!(
        statuses("wild"),
        [
            2,  // log: pointer past the end
            2,  // log: range straddles the end
            2,  // log: length past memory
            0,  // log: empty message
            2,  // entropy_fill: buffer outside memory
            11, // entropy_fill: over 64 KiB
            8,  // last_error: pointer out-pointer outside memory
            8,  // last_error: length out-pointer straddles the end
            3,  // entropy_read: garbage msgpack
            3,  // entropy_read: msgpack of the wrong shape
            4,  // entropy_read: n = 0
            11, // entropy_read: n = 70000
            8,  // entropy_read: out-pointer outside memory
            1,  // entropy_read: empty request
            2,  // entropy_read: request outside memory
            0,  // log: invalid UTF-8 is logged with replacement characters
            0,  // entropy_read: a good call still works
        ]
    );
    p.step_event(None).unwrap();
    let text = String::from_utf8(records("wild").pop().unwrap()).unwrap();
    assert!(
        text.starts_with("entropy_read request (ptr 0xfffffffe, len 4) lies outside the plugin's 131072-byte memory"),
        "last_error: {text}"
    );
    p.shutdown().unwrap();
}

fn alloc_misbehaves(file: &str) {
    let (_g, _logs) = capture_logs();
    let f = Fixture::new();
    let name = file.trim_end_matches(".wat");
    let mut p = f
        .load(name, &guest(&format!("hostile/{file}")), REC)
        .unwrap();
    p.init().unwrap();
    // log: 2; last_error and entropy_read need pulp_alloc: 7; then alloc behaves: 0.
    assert_eq!(statuses(name), [2, 7, 7, 0], "{file}");
    p.step_event(None).expect("the plugin keeps working");
}

#[test]
fn pulp_alloc_that_traps_gives_7() {
    alloc_misbehaves("alloc_traps.wat");
}

#[test]
fn pulp_alloc_returning_zero_gives_7() {
    alloc_misbehaves("alloc_returns_zero.wat");
}

#[test]
fn pulp_alloc_returning_out_of_bounds_gives_7() {
    alloc_misbehaves("alloc_out_of_bounds.wat");
}

#[test]
fn infinite_loop_in_init_times_out() {
    let f = Fixture::new();
    let mut p = f
        .load(
            "spin-init",
            &guest("hostile/loop_in_init.wat"),
            "[limits]\ninit_timeout_ms = 200",
        )
        .unwrap();
    let t = Instant::now();
    match p.init() {
        Err(CallError::Timeout {
            export: "pulp_init",
            limit_ms: 200,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "interrupted near its deadline, not hung"
    );
}

#[test]
fn infinite_loop_in_step_times_out_and_the_instance_can_be_replaced() {
    let f = Fixture::new();
    let extra = format!("{REC}\n[limits]\ncall_timeout_ms = 100");
    let mut p = f
        .load("spin-step", &guest("hostile/stuck_step.wat"), &extra)
        .unwrap();
    p.init().unwrap();
    let e = p.step_event(None).unwrap_err();
    assert!(
        matches!(
            e,
            CallError::Timeout {
                export: "pulp_step",
                ..
            }
        ),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains("plugin \"spin-step\": pulp_step ran past its 100 ms deadline"),
        "{e}"
    );
    assert_eq!(statuses("spin-step"), [1], "the step was in its loop");
    p.restart().unwrap();
    assert_eq!(
        pulp_tests::lifecycle("spin-step"),
        (2, 1),
        "old instance detached, new one attached"
    );
    // Only that call failed: the next step (call 1 sleeps 1 ms) runs to its end.
    assert_eq!(p.step_event(None).unwrap(), 0);
    assert_eq!(statuses("spin-step"), [2]);
}

/// Loads the memory bomb under `memory_mb = mb`: its first step grows memory a page
/// at a time until refused, records the pages it holds and what one more page gave,
/// and traps; after a restart, a step records the fresh instance's pages and succeeds.
fn memory_bomb(mb: i32) {
    let name = format!("bomb-{mb}");
    let f = Fixture::new();
    let mut p = f
        .load(
            &name,
            &guest("hostile/memory_bomb.wat"),
            &format!("{REC}\n[limits]\nmemory_mb = {mb}"),
        )
        .unwrap();
    p.init().unwrap();
    match p.step_event(None) {
        Err(CallError::Trap {
            export: "pulp_step",
            message,
            ..
        }) => {
            assert!(message.contains("unreachable"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    // 64 KiB pages: exactly memory_mb, and not one page more (no cap would be 65536).
    assert_eq!(
        statuses(&name),
        [mb * 16, -1],
        "pages reached under memory_mb = {mb}, then one more page"
    );
    p.restart().unwrap();
    assert_eq!(p.step_event(None).unwrap(), 0, "only that call failed");
    assert_eq!(
        statuses(&name),
        [2],
        "a fresh instance with its own 2 pages"
    );
}

#[test]
fn memory_bomb_reaches_exactly_16_mib_and_fails_only_that_call() {
    memory_bomb(16);
}

#[test]
fn memory_bomb_reaches_exactly_32_mib_and_fails_only_that_call() {
    memory_bomb(32);
}

#[test]
fn deep_recursion_traps_with_stack_exhaustion_and_fails_only_that_call() {
    let f = Fixture::new();
    let mut p = f
        .load("deep", &guest("hostile/deep_recursion.wat"), REC)
        .unwrap();
    p.init().unwrap();
    match p.step_event(None) {
        Err(CallError::Trap { message, .. }) => assert!(message.contains("stack"), "{message}"),
        other => panic!("{other:?}"),
    }
    p.restart().unwrap();
    assert_eq!(p.step_event(None).unwrap(), 0, "the next step succeeds");
    assert_eq!(statuses("deep"), [1], "and ran to its end");
}

/// Runs step `call_number` of `p` on another thread; its result, or a panic naming
/// `what` when it has not returned within 20 s (the call's own deadline is an hour).
fn step_within_20s(p: Plugin, call_number: u64, what: &str) -> (Plugin, Result<i32, CallError>) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut p = p;
        let r = p.step(&Envelope {
            call_number,
            wall_time: 0,
            payload: Vec::new(),
        });
        let _ = tx.send((p, r));
    });
    rx.recv_timeout(Duration::from_secs(20))
        .unwrap_or_else(|_| panic!("{what}: the call was not interrupted within 20 s"))
}

fn stuck(f: &Fixture, name: &str) -> Plugin {
    let extra = format!("{REC}\n[limits]\ncall_timeout_ms = 3600000");
    let mut p = f
        .load(name, &guest("hostile/stuck_step.wat"), &extra)
        .unwrap();
    p.init().unwrap();
    p
}

#[test]
fn a_call_can_be_interrupted_from_another_thread() {
    let f = Fixture::new();
    let p = stuck(&f, "stuck");
    let stop = p.interrupter();
    let t = std::thread::spawn(move || {
        // Interrupt once the guest says it is in its loop.
        let until = Instant::now() + Duration::from_secs(20);
        while statuses("stuck") != [1] {
            assert!(Instant::now() < until, "the step never entered its loop");
            std::thread::sleep(Duration::from_millis(5));
        }
        stop.interrupt();
    });
    let (_p, r) = step_within_20s(p, 0, "interrupt during the call");
    t.join().unwrap();
    match r {
        Err(CallError::Interrupted {
            export: "pulp_step",
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_interrupt_that_lands_before_the_call_starts_is_kept_for_it() {
    let f = Fixture::new();
    let p = stuck(&f, "early");
    p.interrupter().interrupt();
    // Under a one-hour deadline: only the interrupt can end this call.
    let (p, r) = step_within_20s(p, 0, "interrupt before the call");
    match r {
        Err(CallError::Interrupted {
            export: "pulp_step",
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(statuses("early"), [1], "the step had entered its loop");
    // The interrupt was taken by the call that saw it: a sleep on the next call
    // (where a pending interrupt is seen at once) runs to its end.
    let (p, r) = step_within_20s(p, 20, "a call after the interrupted one");
    assert_eq!(r.unwrap(), 0, "the next call is not interrupted");
    assert_eq!(statuses("early"), [2]);
    // Between calls, too: kept until a call sees it.
    p.interrupter().interrupt();
    let (_p, r) = step_within_20s(p, 20, "interrupt between calls");
    assert!(matches!(r, Err(CallError::Interrupted { .. })), "{r:?}");
    assert_eq!(statuses("early"), [0; 0], "the sleep was cut");
}

#[test]
fn fuel_limits_a_call_when_the_host_meters_fuel() {
    let dir = tempfile::tempdir().unwrap();
    let host = pulp_host::Host::new(pulp_host::HostConfig {
        storage_root: dir.path().join("data"),
        cache_dir: None,
        fuel: true,
        ..Default::default()
    })
    .unwrap();
    let f = Fixture::new();
    let m = f.manifest(
        "fuel",
        &guest("hostile/loop_in_step.wat"),
        &format!("{REC}\n[limits]\nfuel = 100000"),
    );
    let mut p = pulp_host::Plugin::load(&host, &m, Some(&f.registry)).unwrap();
    p.init().unwrap();
    match p.step_event(None) {
        Err(CallError::Trap { message, .. }) => assert!(message.contains("fuel"), "{message}"),
        other => panic!("{other:?}"),
    }
}
