//! The Rust SDK (`pdk/rust`) inside a real host: config decoding from the manifest's
//! int64 wire form, errors and panics reaching the host log, the plugin restarted
//! after a panic like after any trap. The guest is `tests/guests/rust/probe`.

use std::time::{Duration, Instant};

use pulp_ext::Event;
use pulp_host::{Runtime, RuntimeConfig};
use pulp_tests::{capture_all_threads_logs, rust_example, Fixture};

fn wait_for(logs: &pulp_tests::Logs, what: &str) -> String {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let text = logs.text();
        if text.contains(what) {
            return text;
        }
        assert!(Instant::now() < until, "no {what:?} in the log:\n{text}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn config_errors_and_panics_of_a_rust_plugin_reach_the_host() {
    let logs = capture_all_threads_logs();
    let Some(wasm) = rust_example("probe") else {
        return;
    };
    let f = Fixture::new();
    let config = "[limits]\ntick_ms = 0\n[config]\nmarker = 424242\ngreeting = \"hé\"\n[config.nested]\nlist = [1, -2, 3000000000]";
    let mut p = f.load_module("probe", &wasm, config).unwrap();
    p.init().unwrap();
    // Integers arrive as int64 (0xd3) and fit the plugin's u32 and i64 fields.
    wait_for(
        &logs,
        r#"probe: marker 424242 greeting "hé" list [1, -2, 3000000000]"#,
    );

    let mut rt = Runtime::new(RuntimeConfig {
        restart_backoff: Duration::from_millis(10),
        ..RuntimeConfig::default()
    });
    let h = rt.spawn(p).unwrap();
    h.events()
        .post("test", Event::from_raw("error", vec![0x80]))
        .unwrap();
    wait_for(&logs, "the probe was asked to fail (status 4)");
    h.events()
        .post("test", Event::from_raw("panic", vec![0x80]))
        .unwrap();
    let text = wait_for(&logs, "restarting it");
    let panic = text
        .find("panic: panicked at")
        .unwrap_or_else(|| panic!("the panic's message is logged:\n{text}"));
    assert!(
        text[panic..].contains("the probe was asked to panic"),
        "{text}"
    );
    assert!(
        panic < text.find("restarting it").unwrap(),
        "logged before the trap is reported:\n{text}"
    );
    // The fresh instance is made from the same config and keeps working.
    let until = Instant::now() + Duration::from_secs(20);
    while h.restarts() < 1 {
        assert!(Instant::now() < until, "no restart");
        std::thread::sleep(Duration::from_millis(10));
    }
    h.events()
        .post("test", Event::from_raw("error", vec![0x80]))
        .unwrap();
    let until = Instant::now() + Duration::from_secs(20);
    while logs.text().matches("the probe was asked to fail").count() < 2 {
        assert!(Instant::now() < until, "the restarted plugin did not step");
        std::thread::sleep(Duration::from_millis(10));
    }
    let reports = rt.stop();
    assert_eq!(reports[0].error, None, "{:?}", reports[0]);
}
