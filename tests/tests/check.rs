//! `pulp check`'s analysis: stricter than loading about undeclared capabilities.

use pulp_tests::{guest, Fixture};

#[test]
fn check_flags_imports_of_a_capability_the_manifest_does_not_declare() {
    let f = Fixture::new();
    let path = f.write("lazy", &guest("undeclared.wat"), "");
    let problems = pulp_host::check(&f.host, &path, &f.registry);
    assert_eq!(
        problems,
        ["imports pulp.test_record of capability \"test.record\", which the manifest does not declare (every call would return 99)"]
    );
    // Loading is lenient: the import gets a stub.
    f.load("lazy2", &guest("undeclared.wat"), "").unwrap();
}

#[test]
fn check_accepts_a_plugin_that_declares_what_it_imports() {
    let f = Fixture::new();
    let path = f.write(
        "tidy",
        &guest("undeclared.wat"),
        "capabilities = [\"test.record\"]",
    );
    assert!(pulp_host::check(&f.host, &path, &f.registry).is_empty());
}

#[test]
fn check_reports_manifest_problems() {
    let f = Fixture::new();
    let path = f.write("x", "", "colour = \"blue\"");
    let problems = pulp_host::check(&f.host, &path, &f.registry);
    assert!(
        problems[0].contains("unknown manifest fields: colour"),
        "{problems:?}"
    );
}

/// Every problem in one pass, each said once with one label: the manifest's unknown
/// keys (top level and `[limits]`), a module that cannot be read, an unknown
/// capability, and each capability's settings problems.
#[test]
fn check_reports_every_problem_at_once_each_labelled_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pulp.plugin.toml");
    std::fs::write(
        &path,
        r#"
name = "lab"
version = "0.1.0"
wasm = "missing.wat"
capabilities = ["logging", "storage.sqlite", "nope"]
colour = "blue"

[limits]
memory_mb = 16
speed = 3

[capability.logging]
x = 1

[capability."storage.sqlite"]
unknownfield = 3
"#,
    )
    .unwrap();
    let f = Fixture::new();
    let problems = pulp_host::check(&f.host, &path, &f.registry);
    let missing = dir.path().join("missing.wat");
    let want = [
        "unknown manifest fields: colour".to_string(),
        "[limits]: unknown keys speed (known: memory_mb, call_timeout_ms, init_timeout_ms, fuel, max_message_bytes, queue, instances, host_memory_mb, tick_ms, max_tick_ms, max_callers)".to_string(),
        format!("cannot read module {}: No such file or directory (os error 2)", missing.display()),
        "declares unknown capability \"nope\"".to_string(),
        "capability \"logging\": takes no settings".to_string(),
    ];
    assert_eq!(problems[..5], want, "{problems:#?}");
    assert_eq!(problems.len(), 6, "{problems:#?}");
    assert!(
        problems[5].starts_with("capability \"storage.sqlite\": unknown field `unknownfield`"),
        "{problems:#?}"
    );
    // One label per layer: no name repeated inside a problem.
    for p in &problems {
        for word in ["\"logging\"", "\"storage.sqlite\"", "\"lab\"", "manifest"] {
            assert!(p.matches(word).count() <= 1, "{word} twice in {p}");
        }
    }
}
