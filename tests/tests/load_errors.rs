//! Every load error names its culprit and the plugin.

use pulp_tests::{guest, Fixture};

fn load_err(name: &str, wat: &str, extra: &str) -> String {
    match Fixture::new().load(name, wat, extra) {
        Ok(_) => panic!("plugin {name} loaded but should not have"),
        Err(e) => e.to_string(),
    }
}

const EXPORTS: &str = r#"
  (memory (export "memory") 1)
  (func (export "pulp_alloc") (param i32) (result i32) (i32.const 8))
  (func (export "pulp_init") (param i32 i32) (result i32) (i32.const 0))
  (func (export "pulp_step") (param i32 i32) (result i32) (i32.const 0))
  (func (export "pulp_shutdown") (result i32) (i32.const 0))"#;

#[test]
fn unknown_capability_is_named() {
    let e = load_err(
        "uc",
        &guest("reactor.wat"),
        "capabilities = [\"telepathy\"]",
    );
    assert!(
        e.contains("plugin \"uc\"") && e.contains("declares unknown capability \"telepathy\""),
        "{e}"
    );
}

#[test]
fn unknown_pulp_import_is_named() {
    let wat = format!(
        "(module (import \"pulp\" \"teleport\" (func (param i32) (result i32))) {EXPORTS})"
    );
    let e = load_err("ui", &wat, "");
    assert!(
        e.contains("plugin \"ui\"") && e.contains("imports pulp.teleport, which no capability"),
        "{e}"
    );
}

#[test]
fn foreign_import_module_is_named() {
    let wat = format!("(module (import \"env\" \"abort\" (func)) {EXPORTS})");
    let e = load_err("fm", &wat, "");
    assert!(
        e.contains("plugin \"fm\"") && e.contains("imports \"env\".\"abort\""),
        "{e}"
    );
}

#[test]
fn mistyped_import_is_named_with_both_signatures() {
    let wat =
        format!("(module (import \"pulp\" \"log\" (func (param i32) (result i32))) {EXPORTS})");
    let e = load_err("mt", &wat, "");
    assert!(
        e.contains("imports pulp.log as (i32) -> i32, but capability \"logging\" provides (i32, i32, i32) -> i32"),
        "{e}"
    );
}

#[test]
fn every_missing_export_is_listed_at_once() {
    let e = load_err(
        "me",
        "(module (func (export \"pulp_step\") (param i32 i32) (result i32) (i32.const 0)))",
        "",
    );
    assert!(
        e.contains("missing required exports: memory, pulp_alloc, pulp_init, pulp_shutdown"),
        "{e}"
    );
}

#[test]
fn mistyped_exports_are_listed_with_expected_types() {
    let wat = r#"(module
      (memory (export "memory") 1)
      (func (export "pulp_alloc") (param i64) (result i32) (i32.const 8))
      (func (export "pulp_init") (param i32 i32) (result i32) (i32.const 0))
      (func (export "pulp_step") (param i32 i32) (i32.const 0) drop)
      (func (export "pulp_shutdown") (result i32) (i32.const 0))
      (func (export "probe_last_call") (result i32) (i32.const 0)))"#;
    let e = load_err("mx", wat, "");
    assert!(
        e.contains("export \"pulp_alloc\" has type (i64) -> i32, expected (i32) -> i32"),
        "{e}"
    );
    assert!(
        e.contains("export \"pulp_step\" has type (i32, i32) -> (), expected (i32, i32) -> i32"),
        "{e}"
    );
    assert!(
        e.contains("export \"probe_last_call\" has type () -> i32, expected () -> i64"),
        "{e}"
    );
}

#[test]
fn missing_module_file_is_named() {
    let f = Fixture::new();
    let path = f.write("nofile", "", "");
    std::fs::remove_file(path.parent().unwrap().join("plugin.wat")).unwrap();
    let m = pulp_host::Manifest::load(&path).unwrap();
    let e = pulp_host::Plugin::load(&f.host, &m, Some(&f.registry))
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("plugin \"nofile\": cannot read module") && e.contains("plugin.wat"),
        "{e}"
    );
}

#[test]
fn invalid_wasm_is_a_compile_error_naming_the_file() {
    let e = load_err(
        "garbage",
        "(module (func $f (result i32) (i64.const 1)))",
        "",
    );
    assert!(
        e.contains("plugin \"garbage\": module") && e.contains("does not compile"),
        "{e}"
    );
}

#[test]
fn a_start_function_that_traps_fails_instantiation() {
    let wat = format!("(module (func $boom unreachable) (start $boom) {EXPORTS})");
    let e = load_err("boom", &wat, "");
    assert!(
        e.contains("plugin \"boom\": instantiation failed") && e.contains("trapped"),
        "{e}"
    );
}

#[test]
fn manifest_errors_name_the_file() {
    let f = Fixture::new();
    let path = f.write("x", "", "bogus = 1");
    let e = pulp_host::Manifest::load(&path).unwrap_err().to_string();
    assert!(
        e.contains(&path.display().to_string()) && e.contains("unknown manifest fields: bogus"),
        "{e}"
    );
}
