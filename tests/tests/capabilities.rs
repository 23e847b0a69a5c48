//! The always-bound capabilities: logging and entropy.

use pulp_tests::{capture_logs, guest, records, Fixture};

#[test]
fn logging_reaches_tracing_with_the_plugin_name_and_clamped_levels() {
    let f = Fixture::new();
    let (_g, logs) = capture_logs();
    let mut p = f.load("talker", &guest("log_levels.wat"), "").unwrap();
    p.init().unwrap();
    let text = logs.text();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("pulp::plugin"))
        .collect();
    let want = [
        ("TRACE", "level -1"),
        ("TRACE", "level 0"),
        ("DEBUG", "level 1"),
        ("INFO", "level 2"),
        ("WARN", "level 3"),
        ("ERROR", "level 4"),
        ("ERROR", "level 9"),
    ];
    assert_eq!(lines.len(), want.len(), "{text}");
    for (line, (level, msg)) in lines.iter().zip(want) {
        assert!(
            line.contains(level) && line.contains(msg),
            "{line}: want {level} {msg}"
        );
        assert!(line.contains("plugin=\"talker\""), "{line}");
    }
}

#[test]
fn entropy_fills_exactly_the_requested_bytes_and_differs_between_calls() {
    let f = Fixture::new();
    let mut p = f
        .load(
            "dice",
            &guest("entropy.wat"),
            "capabilities = [\"test.record\"]",
        )
        .unwrap();
    p.init().unwrap();
    let r = records("dice");
    // status, window, status, window, status, entropy_read result
    assert_eq!(r.len(), 6);
    let (a, b) = (&r[1], &r[3]);
    for w in [a, b] {
        assert_eq!(w[..4], [0xAA; 4], "bytes before the buffer untouched");
        assert_eq!(w[36..], [0xAA; 4], "bytes after the buffer untouched");
    }
    assert_ne!(a[4..36], b[4..36], "two fills differ");
    assert_ne!(a[4..36], [0u8; 32]);
    assert_eq!([&r[0], &r[2], &r[4]].map(|s| s[0]), [0, 0, 0], "statuses");
    let v: rmpv::Value = rmpv::decode::read_value(&mut &r[5][..]).unwrap();
    let bytes = v["bytes"].as_slice().expect("{bytes: bin}");
    assert_eq!(bytes.len(), 16);
}

#[test]
fn wasi_stdout_and_stderr_become_log_lines_tagged_with_the_plugin() {
    let f = Fixture::new();
    let (_g, logs) = capture_logs();
    let mut p = f.load("chatty", &guest("stdio.wat"), "").unwrap();
    p.init().unwrap();
    let text = logs.text();
    let line = |s: &str| {
        text.lines()
            .find(|l| l.contains(s))
            .unwrap_or_else(|| panic!("{s}: {text}"))
            .to_string()
    };
    let out = line("to stdout");
    assert!(
        out.contains("INFO")
            && out.contains("plugin=\"chatty\"")
            && out.contains("stream=\"stdout\""),
        "{out}"
    );
    let err = line("to stderr");
    assert!(
        err.contains("WARN") && err.contains("stream=\"stderr\""),
        "{err}"
    );
}

#[test]
fn a_log_below_the_level_filter_is_not_read() {
    let f = Fixture::new();
    // No subscriber on this thread: every level is filtered out, so even a wild
    // pointer costs nothing and returns 0 (the hostile tests cover emitted logs).
    let mut p = f
        .load(
            "quiet",
            &guest("hostile/wild_pointers.wat"),
            "capabilities = [\"test.record\"]",
        )
        .unwrap();
    p.init().unwrap();
    assert_eq!(pulp_tests::statuses("quiet")[..4], [0, 0, 0, 0]);
}
