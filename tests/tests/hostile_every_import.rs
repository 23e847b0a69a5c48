//! Every import of every registered capability, called with hostile arguments from
//! a generated WAT guest: wild pointers, lengths past memory, zero lengths, garbage
//! and wrongly shaped msgpack, out-pointers outside memory, and a `pulp_alloc` that
//! traps, returns 0 or returns a pointer outside memory. Each call must return a
//! status of the ABI table (never trap the guest, never panic the host), and the
//! plugin must keep working. The import list comes from the registry, so a new
//! capability is covered without editing this test.

use pulp_ext::{Binding, Status, Ty};
use pulp_tests::{capture_logs, statuses, Fixture};

/// A hostile call: its name, the argument for parameter `i` of `n` (level excluded),
/// and how `pulp_alloc` behaves (0 well, 1 traps, 2 returns 0, 3 out of bounds).
type Scenario = (&'static str, fn(usize, usize) -> u32, u32);

const SCENARIOS: &[Scenario] = &[
    ("wild pointers", |_, _| 0xFFFF_FFF0, 0),
    (
        "lengths past memory",
        |i, _| if i.is_multiple_of(2) { 16 } else { 0x7FFF_FFFF },
        0,
    ),
    ("zero lengths", |_, _| 0, 0),
    ("garbage msgpack", |i, n| input_or_out(i, n, 100, 4), 0),
    ("wrong shape", |i, n| input_or_out(i, n, 200, 2), 0),
    (
        "out-pointers outside memory",
        |i, n| {
            if i + 2 >= n && n >= 4 {
                0xFFFF_FFF8
            } else {
                input_or_out(i, n, 300, 4)
            }
        },
        0,
    ),
    ("pulp_alloc traps", |i, n| input_or_out(i, n, 300, 4), 1),
    ("pulp_alloc returns 0", |i, n| input_or_out(i, n, 300, 4), 2),
    (
        "pulp_alloc returns out of bounds",
        |i, n| input_or_out(i, n, 300, 4),
        3,
    ),
];

/// Pairs are (ptr, len); the last pair of a 4- or 6-parameter import is an out-pointer pair.
fn input_or_out(i: usize, n: usize, ptr: u32, len: u32) -> u32 {
    if n >= 4 && i + 2 >= n {
        [8, 12][i % 2]
    } else if i.is_multiple_of(2) {
        ptr
    } else {
        len
    }
}

fn guest(import: &str, params: usize, args: &[u32], evil: u32) -> String {
    let sig = "i32 ".repeat(params);
    let call_args: String = args
        .iter()
        .map(|a| format!("(i32.const {})", *a as i32))
        .collect();
    format!(
        r#"(module
  (import "pulp" "{import}" (func $f (param {sig}) (result i32)))
  (import "pulp" "test_record" (func $record (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 32768))
  (global $evil (mut i32) (i32.const 0))
  (data (i32.const 100) "\c1\c1\c1\c1")
  (data (i32.const 200) "\91\01")
  (data (i32.const 300) "\81\a1a\01")
  (func (export "pulp_alloc") (param $n i32) (result i32)
    (local $p i32)
    (if (i32.eq (global.get $evil) (i32.const 1)) (then unreachable))
    (if (i32.eq (global.get $evil) (i32.const 2)) (then (return (i32.const 0))))
    (if (i32.eq (global.get $evil) (i32.const 3)) (then (return (i32.const 0xFFFFFF00))))
    (local.set $p (global.get $heap))
    (global.set $heap (i32.and (i32.add (i32.add (local.get $p) (local.get $n)) (i32.const 7)) (i32.const -8)))
    (if (i32.gt_u (global.get $heap) (i32.const 65536)) (then (global.set $heap (i32.const 32768))))
    (local.get $p))
  (func (export "pulp_init") (param i32 i32) (result i32)
    (global.set $evil (i32.const {evil}))
    (i32.store (i32.const 0) (call $f {call_args}))
    (global.set $evil (i32.const 0))
    (drop (call $record (i32.const 0) (i32.const 4)))
    (i32.const 0))
  (func (export "pulp_step") (param i32 i32) (result i32) (i32.const 0))
  (func (export "pulp_shutdown") (result i32) (i32.const 0)))"#
    )
}

#[test]
fn every_import_survives_hostile_arguments() {
    // Logs are read only when emitted: capture every level so `log` checks its input.
    let (_g, _logs) = capture_logs();
    let f = Fixture::new();
    let declared: Vec<String> = f
        .registry
        .entries()
        .iter()
        .filter(|e| e.binding == Binding::Gated)
        .map(|e| format!("{:?}", e.capability.name()))
        .collect();
    let extra = format!("capabilities = [{}]", declared.join(", "));
    let codes: Vec<i32> = Status::ALL.iter().map(|s| s.code()).collect();
    let mut calls = 0;
    for entry in f.registry.entries() {
        for import in entry.capability.imports() {
            if import.name == "test_record" {
                continue;
            }
            assert!(
                import.params.iter().all(|t| *t == Ty::I32) && import.results == [Ty::I32],
                "pulp.{} is not of the ABI's all-i32 shape; teach this test its arguments",
                import.name
            );
            let n = import.params.len();
            for (i, (scenario, arg, evil)) in SCENARIOS.iter().enumerate() {
                let args: Vec<u32> = (0..n)
                    .map(|k| {
                        if !n.is_multiple_of(2) && k == 0 {
                            2
                        } else {
                            arg(k - n % 2, n - n % 2)
                        }
                    })
                    .collect();
                let name = format!("h-{}-{i}", import.name);
                let mut p = f
                    .load(&name, &guest(import.name, n, &args, *evil), &extra)
                    .unwrap_or_else(|e| panic!("pulp.{} / {scenario}: {e}", import.name));
                p.init().unwrap_or_else(|e| {
                    panic!(
                        "pulp.{} / {scenario}: the guest trapped or failed: {e}",
                        import.name
                    )
                });
                let got = statuses(&name);
                assert_eq!(got.len(), 1, "pulp.{} / {scenario}", import.name);
                assert!(
                    codes.contains(&got[0]),
                    "pulp.{} / {scenario}: {} is not a status of the ABI table",
                    import.name,
                    got[0]
                );
                if i < 2 {
                    assert_ne!(
                        got[0], 0,
                        "pulp.{} / {scenario}: a call outside memory cannot succeed",
                        import.name
                    );
                }
                p.step_event(None).unwrap_or_else(|e| {
                    panic!(
                        "pulp.{} / {scenario}: the plugin stopped working: {e}",
                        import.name
                    )
                });
                calls += 1;
            }
        }
    }
    assert!(calls >= 9 * 10, "only {calls} hostile calls were made");
}
