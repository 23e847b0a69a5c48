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
