//! Hostile and buggy guests (tests/guests/hostile/): the host never panics or hangs,
//! bad input gets the status of ABI §4, and exhausted limits fail only that call.

use std::time::{Duration, Instant};

use pulp_host::CallError;
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
        .load("spin-step", &guest("hostile/loop_in_step.wat"), &extra)
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
    p.restart().unwrap();
    assert_eq!(
        pulp_tests::lifecycle("spin-step"),
        (2, 1),
        "old instance detached, new one attached"
    );
}

#[test]
fn memory_bomb_is_capped_and_fails_the_call() {
    let f = Fixture::new();
    let mut p = f
        .load(
            "bomb",
            &guest("hostile/memory_bomb.wat"),
            "[limits]\nmemory_mb = 16",
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
}

#[test]
fn deep_recursion_traps_with_stack_exhaustion() {
    let f = Fixture::new();
    let mut p = f
        .load("deep", &guest("hostile/deep_recursion.wat"), "")
        .unwrap();
    p.init().unwrap();
    match p.step_event(None) {
        Err(CallError::Trap { message, .. }) => assert!(message.contains("stack"), "{message}"),
        other => panic!("{other:?}"),
    }
    p.restart().unwrap();
}

#[test]
fn a_call_can_be_interrupted_from_another_thread() {
    let f = Fixture::new();
    let extra = format!("{REC}\n[limits]\ncall_timeout_ms = 3600000");
    let mut p = f
        .load("stuck", &guest("hostile/loop_in_step.wat"), &extra)
        .unwrap();
    p.init().unwrap();
    let stop = p.interrupter();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        stop.interrupt();
    });
    let e = p.step_event(None).unwrap_err();
    assert!(matches!(e, CallError::Interrupted { .. }), "{e}");
    t.join().unwrap();
}

#[test]
fn fuel_limits_a_call_when_the_host_meters_fuel() {
    let dir = tempfile::tempdir().unwrap();
    let host = pulp_host::Host::new(pulp_host::HostConfig {
        storage_root: dir.path().join("data"),
        cache_dir: None,
        fuel: true,
        settings: Default::default(),
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
