//! Limits that hold (issue #11 §6): `memory_mb` bounds the sum of an instance's
//! memories and tables, `call_timeout_ms` cuts a step that sleeps in WASI, the
//! `storage.fs` quota counts the plugin's whole folder, and guest text cannot forge
//! host log lines.

use std::path::PathBuf;

use pulp_host::{CallError, Envelope, LoadError, Plugin};
use pulp_tests::{capture_logs, guest, records, statuses, Driver, Fixture};

const REC: &str = "capabilities = [\"test.record\"]";
const PAGE: i32 = 65536;

#[test]
fn memory_mb_bounds_the_sum_of_four_memories() {
    let f = Fixture::new();
    let mut p = f
        .load(
            "four-memories",
            &guest("hostile/four_memories.wat"),
            &format!("{REC}\n[limits]\nmemory_mb = 64"),
        )
        .unwrap();
    p.init().unwrap();
    p.step_event(None).unwrap();
    assert_eq!(
        statuses("four-memories"),
        [(64 << 20) / PAGE, -1],
        "pages held by the four memories together, then table.grow once they hold it all"
    );
}

#[test]
fn table_elements_count_against_memory_mb() {
    let f = Fixture::new();
    let mut p = f
        .load(
            "table-bomb",
            &guest("hostile/table_bomb.wat"),
            &format!("{REC}\n[limits]\nmemory_mb = 16"),
        )
        .unwrap();
    p.init().unwrap();
    p.step_event(None).unwrap();
    // 16 bytes per element (README, limits); the guest's memory keeps its 2 pages.
    let elements = ((16 << 20) - 2 * PAGE) / 16;
    assert_eq!(
        statuses("table-bomb"),
        [elements, -1],
        "the table takes what the memory leaves, then memory.grow is refused"
    );
}

#[test]
fn shared_memories_are_refused_at_load() {
    // Store limiters never see a shared memory grow: the engine must not take one.
    let f = Fixture::new();
    let wat =
        guest("hostile/four_memories.wat").replace("(memory $m1 0)", "(memory $m1 1 65536 shared)");
    match f.load("shared-memory", &wat, REC) {
        Err(LoadError::Compile { message, .. }) => {
            assert!(message.contains("threads"), "{message}")
        }
        Err(e) => panic!("refused, but not as a compile error: {e}"),
        Ok(_) => panic!("a shared memory was accepted"),
    }
}

#[test]
fn max_message_bytes_is_11_after_the_bounds_check_which_is_2() {
    let f = Fixture::new();
    let mut p = f
        .load(
            "message-limit",
            &guest("hostile/message_limit.wat"),
            &format!("{REC}\n[limits]\nmax_message_bytes = 1024"),
        )
        .unwrap();
    p.init().unwrap();
    let r = records("message-limit");
    let got: Vec<(i32, String)> = r
        .chunks(2)
        .map(|c| {
            let status = i32::from_le_bytes(c[0][..4].try_into().unwrap());
            (status, String::from_utf8_lossy(&c[1]).into_owned())
        })
        .collect();
    let statuses: Vec<i32> = got.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        statuses,
        [11, 3, 2, 2, 11],
        "1025 bytes, 1024 bytes, outside memory, straddling its end, 1025 to test_record: {got:?}"
    );
    let over = "is 1025 bytes, over the plugin's message limit of 1024 bytes";
    assert_eq!(got[0].1, format!("entropy_read request {over}"));
    assert!(!got[1].1.contains("limit"), "{}", got[1].1);
    assert_eq!(
        got[2].1,
        "entropy_read request (ptr 0xffff0000, len 2000) lies outside the plugin's 131072-byte memory"
    );
    assert_eq!(
        got[3].1,
        "entropy_read request (ptr 0x1f000, len 8192) lies outside the plugin's 131072-byte memory"
    );
    assert_eq!(got[4].1, format!("test_record data {over}"));
    p.step_event(None).expect("the plugin keeps working");
}

/// The sleeping guest with `call_timeout_ms`; each step's call number picks a sleep
/// (see `hostile/sleep_in_step.wat`).
fn sleeper(f: &Fixture, name: &str, call_timeout_ms: u64) -> Plugin {
    let mut p = f
        .load(
            name,
            &guest("hostile/sleep_in_step.wat"),
            &format!("{REC}\n[limits]\ncall_timeout_ms = {call_timeout_ms}"),
        )
        .unwrap();
    p.init().unwrap();
    p
}

fn sleep(p: &mut Plugin, mode: u64) -> Result<i32, CallError> {
    p.step(&Envelope {
        call_number: mode,
        wall_time: 0,
        payload: Vec::new(),
    })
}

fn assert_timeout(r: Result<i32, CallError>, limit: u64) {
    match r {
        Err(CallError::Timeout {
            export: "pulp_step",
            limit_ms,
            ..
        }) if limit_ms == limit => {}
        other => panic!("expected a pulp_step timeout: {other:?}"),
    }
}

#[test]
fn a_sleep_in_wasi_is_cut_at_the_call_deadline() {
    let f = Fixture::new();
    let mut p = sleeper(&f, "sleep-8s", 1000);
    assert_timeout(sleep(&mut p, 0), 1000);
    assert_eq!(
        statuses("sleep-8s"),
        [0; 0],
        "the guest never got past its 8 s sleep"
    );
    sleep(&mut p, 4).expect("the instance still works");
}

#[test]
fn sleeping_until_the_end_of_time_is_cut_too() {
    let f = Fixture::new();
    let mut p = sleeper(&f, "sleep-forever", 200);
    assert_timeout(sleep(&mut p, 1), 200);
    assert_timeout(sleep(&mut p, 2), 200);
    assert_eq!(statuses("sleep-forever"), [0; 0]);
}

#[test]
fn short_sleeps_add_up_to_the_deadline() {
    let f = Fixture::new();
    let mut p = sleeper(&f, "sleep-loop", 1000);
    assert_timeout(sleep(&mut p, 3), 1000);
    let slept = statuses("sleep-loop").len();
    assert!(
        (1..=12).contains(&slept),
        "{slept} sleeps of 100 ms completed under a 1000 ms deadline"
    );
}

#[test]
fn the_interrupter_cuts_a_sleep() {
    let f = Fixture::new();
    let mut p = sleeper(&f, "sleep-stop", 3_600_000);
    let stop = p.interrupter();
    // Once, 200 ms into the 8 s sleep (an interrupt that landed before the call
    // started would be kept for it, so the order cannot make this test hang).
    let t = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(200));
        stop.interrupt();
    });
    let r = sleep(&mut p, 0);
    t.join().unwrap();
    assert!(matches!(r, Err(CallError::Interrupted { .. })), "{r:?}");
    assert_eq!(statuses("sleep-stop"), [0; 0]);
}

#[test]
fn poll_oneoff_still_answers_like_wasi() {
    let f = Fixture::new();
    let mut p = sleeper(&f, "poll", 10_000);
    let mut run = |mode| {
        assert_eq!(sleep(&mut p, mode).unwrap(), 0);
        statuses("poll")
    };
    assert_eq!(run(4), [0, 1, 42, 0], "1 ms clock: one clock event");
    assert_eq!(
        run(5),
        [0, 1, 7, 2],
        "8 s clock beside a ready stdout: only the fd_write event, at once"
    );
    assert_eq!(run(6), [28], "a CPU-time clock is EINVAL");
    assert_eq!(run(7), [28], "no subscriptions is EINVAL");
}

/// What a file or a folder costs beside its bytes (README, `max_total_bytes`).
const ENTRY: usize = 4096;

fn fs_driver(f: &Fixture, name: &str, quota: usize) -> Option<Driver> {
    Driver::start(
        f,
        name,
        &format!(
            "capabilities = [\"storage.fs\", \"test.record\"]\n\
             [capability.\"storage.fs\"]\nmax_total_bytes = {quota}"
        ),
    )
}

fn files(f: &Fixture, name: &str) -> PathBuf {
    f.dir.path().join("data").join(name).join("files")
}

fn names(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn the_fs_quota_counts_files_overwrites_and_deletes() {
    let f = Fixture::new();
    let quota = 5 * (1000 + ENTRY);
    let Some(mut d) = fs_driver(&f, "quota", quota) else {
        return;
    };
    let root = files(&f, "quota");
    for i in 0..5 {
        let o = d.call("fs_write", format!("f{i}").as_bytes(), &[1; 1000]);
        assert_eq!(o.status, 0, "f{i}: {o:?}");
    }
    let o = d.call("fs_write", b"f5", b"x");
    assert_eq!(o.status, 11, "{o:?}");
    assert!(
        o.error.contains("max_total_bytes") && o.error.contains(&format!("{quota}-byte")),
        "{}",
        o.error
    );
    assert_eq!(
        names(&root),
        ["f0", "f1", "f2", "f3", "f4"],
        "nothing written"
    );

    // An overwrite counts the difference.
    assert_eq!(d.call("fs_write", b"f0", &[2; 1000]).status, 0, "same size");
    assert_eq!(d.call("fs_write", b"f0", &[2; 1001]).status, 11, "1 more");
    assert_eq!(std::fs::read(root.join("f0")).unwrap(), [2; 1000]);
    assert_eq!(d.call("fs_write", b"f0", &[3; 400]).status, 0, "frees 600");
    assert_eq!(
        d.call("fs_write", b"f1", &[3; 1600]).status,
        0,
        "takes them"
    );
    assert_eq!(d.call("fs_write", b"f1", &[3; 1601]).status, 11);

    // A delete frees the file's bytes and entry; a folder costs an entry.
    assert_eq!(d.call("fs_delete", b"f2", b"").status, 0);
    assert_eq!(d.call("fs_write", b"dir/x", &[4; 1000]).status, 11);
    assert!(
        !root.join("dir").exists(),
        "a refused write makes no folder"
    );
    assert_eq!(d.call("fs_delete", b"f3", b"").status, 0);
    let free = 2 * (1000 + ENTRY);
    let o = d.call("fs_write", b"dir/x", &vec![4; free - 2 * ENTRY]);
    assert_eq!(o.status, 0, "exactly what is free: {o:?}");
    assert_eq!(d.call("fs_write", b"f2", b"").status, 11, "full again");
    assert_eq!(d.call("fs_delete", b"dir/x", b"").status, 0);
    assert_eq!(d.call("fs_delete", b"dir", b"").status, 0);
    let o = d.call("fs_write", b"f2", &vec![5; free - ENTRY]);
    assert_eq!(
        o.status, 0,
        "the file and its folder freed all they held: {o:?}"
    );

    // A new instance counts what is on disk.
    d.plugin.restart().unwrap();
    assert_eq!(d.call("fs_write", b"f5", b"").status, 11);
    assert_eq!(d.call("fs_delete", b"f4", b"").status, 0);
    assert_eq!(d.call("fs_write", b"f5", &[6; 1000]).status, 0);
    assert_eq!(d.call("fs_write", b"f6", b"").status, 11);
}

#[test]
fn files_already_in_the_folder_count_against_the_quota() {
    let f = Fixture::new();
    let root = files(&f, "preloaded");
    std::fs::create_dir_all(root.join("old")).unwrap();
    std::fs::write(root.join("old/big"), vec![0u8; 10_000]).unwrap();
    let quota = 10_000 + 2 * ENTRY + (100 + ENTRY);
    let Some(mut d) = fs_driver(&f, "preloaded", quota) else {
        return;
    };
    assert_eq!(d.call("fs_write", b"new", &[1; 101]).status, 11);
    assert_eq!(d.call("fs_write", b"new", &[1; 100]).status, 0);
}

#[test]
fn the_instances_of_a_pool_share_one_quota() {
    let f = Fixture::new();
    let quota = 2 * (1000 + ENTRY);
    let Some(mut a) = fs_driver(&f, "pooled", quota) else {
        return;
    };
    let mut b = Driver {
        plugin: a.plugin.replica().unwrap(),
    };
    b.plugin.init().unwrap();
    assert_eq!(a.call("fs_write", b"x", &[1; 1000]).status, 0);
    assert_eq!(b.call("fs_write", b"y", &[1; 1000]).status, 0);
    assert_eq!(a.call("fs_write", b"z", b"").status, 11);
    assert_eq!(b.call("fs_write", b"z", b"").status, 11);
    assert_eq!(b.call("fs_delete", b"x", b"").status, 0);
    assert_eq!(a.call("fs_write", b"z", &[1; 1000]).status, 0);
}

#[test]
fn guest_text_cannot_forge_host_log_lines() {
    let (_g, logs) = capture_logs();
    let f = Fixture::new();
    let mut p = f
        .load("forger", &guest("hostile/log_forgery.wat"), "")
        .unwrap();
    p.init().unwrap();
    drop(p);
    let text = logs.text();
    for line in text.lines() {
        assert!(
            !line.starts_with("2026-01-01"),
            "a forged line: {line:?} in\n{text}"
        );
    }
    assert!(
        !text.contains(['\r', '\x1b']),
        "raw control characters: {text:?}"
    );
    assert!(
        text.contains(r"ok\n2026-01-01T00:00:00.000000Z  INFO pulp: plugin"),
        "{text}"
    );
    assert_eq!(
        text.matches(r#""other" forged\r\u{1b}[31mred\u{1b}[0m"#)
            .count(),
        3,
        "pulp.log, stdout and stderr, escaped: {text}"
    );
}
