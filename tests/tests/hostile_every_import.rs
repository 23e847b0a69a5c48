//! Every import of every registered capability, called from a generated WAT guest
//! with hostile arguments: wild pointers, lengths past memory, zero lengths, garbage
//! and wrongly shaped msgpack, and, around a request that passes every input check,
//! out-pointers outside memory and a `pulp_alloc` that traps, returns 0 or returns a
//! pointer outside memory. Each call must return the status docs/ABI.md gives (§4),
//! set `last_error` when it is not 0 (and leave it alone when it is), never trap the
//! guest nor panic the host, and the plugin must keep working. The import list comes
//! from the registry: an import without a row in [`rows`] fails this test.

use pulp_ext::{Binding, Ty};
use pulp_tests::{capture_logs, msgpack_map, records, Fixture, TestServer};
use rmpv::Value;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Scenario {
    WildPointers,
    LengthsPastMemory,
    ZeroLengths,
    GarbageMsgpack,
    WrongShape,
    /// A request that passes every input check, good out-pointers, a good `pulp_alloc`.
    Valid,
    OutPointersOutsideMemory,
    AllocTraps,
    AllocReturnsZero,
    AllocOutOfBounds,
}
use Scenario::*;

const SCENARIOS: [Scenario; 10] = [
    WildPointers,
    LengthsPastMemory,
    ZeroLengths,
    GarbageMsgpack,
    WrongShape,
    Valid,
    OutPointersOutsideMemory,
    AllocTraps,
    AllocReturnsZero,
    AllocOutOfBounds,
];

/// Where the guest keeps its valid inputs.
const IN: [u32; 2] = [1024, 4096];

/// One import: `shape` lists its parameters (`L` a log level, `i` an input
/// `(ptr, len)`, `b` a buffer the host fills, `o` a pair of result out-pointers),
/// `valid` the inputs that pass every check, and `expect` its statuses (ABI §4) for
/// the first six scenarios. The last four follow from the sixth: when the valid
/// call returns 0 and has a result, a bad out-pointer is 8 and a failing
/// `pulp_alloc` 7; otherwise they get what the valid call gets (the call fails, or
/// has no result, before anything is written).
struct Row {
    import: &'static str,
    shape: &'static str,
    valid: [Vec<u8>; 2],
    expect: [i32; 6],
}

fn map(fields: Vec<(&str, Value)>) -> Vec<u8> {
    msgpack_map(fields)
}

fn s(v: &str) -> Value {
    Value::from(v)
}

/// A container id the engine is never asked about: `/` makes it invalid (4).
const NO_ID: &str = "no/such";

fn rows(fetch_url: &str, docker: bool) -> Vec<Row> {
    // 2 wild, 2 past memory, 1 empty, 3 garbage, 3 an array, then the valid call.
    let request = |import: &'static str, shape: &'static str, valid: Vec<u8>, ok: i32| Row {
        import,
        shape,
        valid: [valid, Vec::new()],
        expect: [2, 2, 1, 3, 3, ok],
    };
    // A path or pattern: empty is 4 (ABI: storage.fs, routes), neither is UTF-8 3.
    let path = |import: &'static str, shape: &'static str, valid: &[u8]| Row {
        import,
        shape,
        valid: [valid.to_vec(), Vec::new()],
        expect: [2, 2, 4, 3, 3, 0],
    };
    let id = || vec![("id", s(NO_ID))];
    vec![
        Row {
            import: "last_error",
            shape: "o",
            valid: [vec![], vec![]],
            expect: [8, 8, 0, 0, 0, 0],
        },
        Row {
            import: "log",
            shape: "Li",
            valid: [b"hello".to_vec(), vec![]],
            // Emitted messages are bounds-checked; invalid UTF-8 is logged (0).
            expect: [2, 2, 0, 0, 0, 0],
        },
        Row {
            import: "entropy_fill",
            shape: "b",
            valid: [vec![0; 16], vec![]],
            // Outside memory is 2 before its 64 KiB limit (11); zero touches nothing.
            expect: [2, 2, 0, 0, 0, 0],
        },
        request("entropy_read", "io", map(vec![("n", Value::from(4))]), 0),
        request(
            "docker_run",
            "io",
            map(vec![("image", s("pulp-test/busybox:1"))]),
            9, // no image is granted
        ),
        request(
            "docker_create",
            "io",
            map(vec![("image", s("pulp-test/busybox:1"))]),
            9,
        ),
        request("docker_get", "io", map(id()), 4),
        request(
            "docker_list",
            "io",
            map(vec![]),
            if docker { 0 } else { 10 },
        ),
        request(
            "docker_exec",
            "io",
            map(vec![
                ("id", s(NO_ID)),
                ("cmd", Value::Array(vec![s("true")])),
            ]),
            4,
        ),
        request("docker_logs", "io", map(id()), 4),
        request("docker_stats", "io", map(id()), 4),
        request(
            "docker_files_read",
            "io",
            map(vec![("id", s(NO_ID)), ("path", s("/x"))]),
            4,
        ),
        request(
            "docker_files_write",
            "i",
            map(vec![
                ("id", s(NO_ID)),
                ("path", s("/x")),
                ("data", Value::Binary(b"x".to_vec())),
            ]),
            4,
        ),
        request("docker_restart", "i", map(id()), 4),
        request("docker_destroy", "i", map(id()), 4),
        // Events after the end of time: answered (an empty list) without the engine.
        request(
            "docker_events_poll",
            "io",
            map(vec![("since_nanos", Value::from(i64::MAX))]),
            0,
        ),
        // The file `x` is made before each plugin loads.
        path("fs_read", "io", b"x"),
        Row {
            import: "fs_write",
            shape: "ii",
            valid: [b"x".to_vec(), b"hi".to_vec()],
            expect: [2, 2, 4, 3, 3, 0],
        },
        path("fs_delete", "i", b"x"),
        // The valid call names a plugin this one may not call: 9.
        Row {
            import: "pulp_call",
            shape: "iiio",
            valid: [b"nobody".to_vec(), b"f".to_vec()],
            expect: [2, 2, 1, 3, 3, 9],
        },
        request(
            "sqlite_exec",
            "iio",
            b"CREATE TABLE IF NOT EXISTS t(x)".to_vec(),
            0,
        ),
        request("sqlite_query", "iio", b"SELECT 1".to_vec(), 0),
        request(
            "http_register",
            "i",
            map(vec![("method", s("GET")), ("path", s("/every-import"))]),
            0,
        ),
        // No request 1 is open: 4.
        request(
            "http_respond",
            "i",
            map(vec![("id", Value::from(1)), ("status", Value::from(200))]),
            4,
        ),
        request("http_fetch", "io", map(vec![("url", s(fetch_url))]), 0),
        path("sse_register", "i", b"/every-sse"),
        // Not a path this plugin registered: 4.
        request(
            "sse_emit",
            "i",
            map(vec![("path", s("/every-sse")), ("data", s("x"))]),
            4,
        ),
        path("ws_register", "i", b"/every-ws"),
        // No connection 1: 4.
        request(
            "ws_send",
            "i",
            map(vec![
                ("conn_id", Value::from(1)),
                ("opcode", Value::from(1)),
                ("payload", Value::Binary(b"x".to_vec())),
            ]),
            4,
        ),
        request(
            "ws_close",
            "i",
            map(vec![
                ("conn_id", Value::from(1)),
                ("code", Value::from(1000)),
                ("reason", s("")),
            ]),
            4,
        ),
    ]
}

impl Row {
    fn expected(&self, scenario: Scenario) -> i32 {
        let valid = self.expect[5];
        let writes = valid == 0 && self.shape.contains('o');
        match scenario {
            WildPointers => self.expect[0],
            LengthsPastMemory => self.expect[1],
            ZeroLengths => self.expect[2],
            GarbageMsgpack => self.expect[3],
            WrongShape => self.expect[4],
            Valid => valid,
            OutPointersOutsideMemory if writes => 8,
            AllocTraps | AllocReturnsZero | AllocOutOfBounds if writes => 7,
            _ => valid,
        }
    }

    /// The import's arguments in `scenario`.
    fn args(&self, scenario: Scenario) -> Vec<u32> {
        let mut inputs = 0;
        let mut out = Vec::new();
        for kind in self.shape.chars() {
            let pair: [u32; 2] = match (kind, scenario) {
                ('L', _) => {
                    out.push(2);
                    continue;
                }
                (_, WildPointers) => [0xFFFF_FFF0; 2],
                (_, LengthsPastMemory) => [16, 0x7FFF_FFFF],
                (_, ZeroLengths) => [0, 0],
                ('o', OutPointersOutsideMemory) => [0xFFFF_FFF8, 12],
                ('o', _) => [8, 12],
                (_, GarbageMsgpack) => [100, 4],
                (_, WrongShape) => [200, 2],
                (_, _) => {
                    // A third input (pulp_call's args) reuses the first's.
                    let k = inputs % 2;
                    inputs += 1;
                    [IN[k], self.valid[k].len() as u32]
                }
            };
            out.extend(pair);
        }
        out
    }
}

fn wat_bytes(b: &[u8]) -> String {
    b.iter().map(|c| format!("\\{c:02x}")).collect()
}

/// The guest: in `pulp_init` it records `last_error` (status, then text), calls the
/// import with `args` while `pulp_alloc` misbehaves as `evil` says (0 well, 1 traps,
/// 2 returns 0, 3 out of bounds), records its status, then `last_error` again. With
/// `prime`, a bad `log` call sets `last_error` first (so that reading it allocates).
fn guest(import: &str, params: usize, args: &[u32], evil: u32, row: &Row, prime: bool) -> String {
    let sig = "i32 ".repeat(params);
    let call_args: String = args
        .iter()
        .map(|a| format!("(i32.const {})", *a as i32))
        .collect();
    let prime = if prime {
        "(drop (call $log (i32.const 2) (i32.const 0xFFFFFF00) (i32.const 1)))"
    } else {
        ""
    };
    let (a, b) = (wat_bytes(&row.valid[0]), wat_bytes(&row.valid[1]));
    let (in0, in1) = (IN[0], IN[1]);
    format!(
        r#"(module
  (import "pulp" "{import}" (func $f (param {sig}) (result i32)))
  (import "pulp" "test_record" (func $record (param i32 i32) (result i32)))
  (import "pulp" "last_error" (func $last_error (param i32 i32) (result i32)))
  (import "pulp" "log" (func $log (param i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 32768))
  (global $evil (mut i32) (i32.const 0))
  (data (i32.const 100) "\c1\c1\c1\c1")
  (data (i32.const 200) "\91\01")
  (data (i32.const {in0}) "{a}")
  (data (i32.const {in1}) "{b}")
  (func (export "pulp_alloc") (param $n i32) (result i32)
    (local $p i32)
    (if (i32.eq (global.get $evil) (i32.const 1)) (then unreachable))
    (if (i32.eq (global.get $evil) (i32.const 2)) (then (return (i32.const 0))))
    (if (i32.eq (global.get $evil) (i32.const 3)) (then (return (i32.const 0xFFFFFF00))))
    (local.set $p (global.get $heap))
    (global.set $heap (i32.and (i32.add (i32.add (local.get $p) (local.get $n)) (i32.const 7)) (i32.const -8)))
    (if (i32.gt_u (global.get $heap) (i32.const 65536)) (then (global.set $heap (i32.const 32768))))
    (local.get $p))
  (func $report
    (i32.store (i32.const 24) (call $last_error (i32.const 16) (i32.const 20)))
    (drop (call $record (i32.const 24) (i32.const 4)))
    (drop (call $record (i32.load (i32.const 16)) (i32.load (i32.const 20)))))
  (func (export "pulp_init") (param i32 i32) (result i32)
    {prime}
    (call $report)
    (global.set $evil (i32.const {evil}))
    (i32.store (i32.const 0) (call $f {call_args}))
    (global.set $evil (i32.const 0))
    (drop (call $record (i32.const 0) (i32.const 4)))
    (call $report)
    (i32.const 0))
  (func (export "pulp_step") (param i32 i32) (result i32) (i32.const 0))
  (func (export "pulp_shutdown") (result i32) (i32.const 0)))"#
    )
}

fn status(b: &[u8]) -> i32 {
    i32::from_le_bytes(b[..4].try_into().expect("a 4-byte status record"))
}

#[test]
fn every_import_gets_the_abi_status_and_a_last_error_for_hostile_arguments() {
    // Logs are read only when emitted: capture every level so `log` checks its input.
    let (_g, _logs) = capture_logs();
    let docker = pulp_tests::docker();
    let server = TestServer::start(
        "127.0.0.1",
        TestServer::response("200 OK", &[], b"hi"),
        std::time::Duration::ZERO,
    );
    let f = Fixture::new();
    let declared: Vec<String> = f
        .registry
        .entries()
        .iter()
        .filter(|e| e.binding == Binding::Gated)
        .map(|e| format!("{:?}", e.capability.name()))
        .collect();
    let extra = format!(
        "capabilities = [{}]\n[capability.\"transport.http.outbound\"]\nallowed_hosts = [\"{}\"]",
        declared.join(", "),
        server.addr
    );
    let rows = rows(&format!("http://{}/", server.addr), docker);
    let mut calls = 0;
    for entry in f.registry.entries() {
        for import in entry.capability.imports() {
            if import.name == "test_record" {
                continue;
            }
            let row = rows
                .iter()
                .find(|r| r.import == import.name)
                .unwrap_or_else(|| {
                    panic!(
                        "pulp.{} has no row in this test: add its statuses from docs/ABI.md",
                        import.name
                    )
                });
            assert!(
                import.params.iter().all(|t| *t == Ty::I32) && import.results == [Ty::I32],
                "pulp.{} is not of the ABI's all-i32 shape; teach this test its arguments",
                import.name
            );
            let n = import.params.len();
            let width: usize = row
                .shape
                .chars()
                .map(|c| if c == 'L' { 1 } else { 2 })
                .sum();
            assert_eq!(width, n, "pulp.{}: its row's shape", import.name);
            for (i, scenario) in SCENARIOS.iter().enumerate() {
                let at = format!("pulp.{} / {scenario:?}", import.name);
                let evil = match scenario {
                    AllocTraps => 1,
                    AllocReturnsZero => 2,
                    AllocOutOfBounds => 3,
                    _ => 0,
                };
                let prime = import.name == "last_error";
                let name = format!("h-{}-{i}", import.name);
                let files = f.dir.path().join("data").join(&name).join("files");
                std::fs::create_dir_all(&files).unwrap();
                std::fs::write(files.join("x"), b"hi").unwrap();
                let wat = guest(import.name, n, &row.args(*scenario), evil, row, prime);
                let mut p = f
                    .load(&name, &wat, &extra)
                    .unwrap_or_else(|e| panic!("{at}: {e}"));
                p.init()
                    .unwrap_or_else(|e| panic!("{at}: the guest trapped or failed: {e}"));
                let r = records(&name);
                assert_eq!(r.len(), 5, "{at}: records");
                let (before, got, after) = (&r[1], status(&r[2]), &r[4]);
                assert_eq!((status(&r[0]), status(&r[3])), (0, 0), "{at}: last_error");
                assert_eq!(
                    before.is_empty(),
                    !prime,
                    "{at}: last_error before the call"
                );
                let after_text = String::from_utf8_lossy(after);
                assert_eq!(
                    got,
                    row.expected(*scenario),
                    "{at}: status (last_error: {after_text:?})"
                );
                if got == 0 {
                    assert_eq!(after, before, "{at}: a success leaves last_error alone");
                } else {
                    assert!(
                        !after.is_empty() && after != before,
                        "{at}: status {got} set no last_error of its own: {after_text:?}"
                    );
                }
                p.step_event(None)
                    .unwrap_or_else(|e| panic!("{at}: the plugin stopped working: {e}"));
                calls += 1;
            }
        }
    }
    assert!(calls >= 29 * 10, "only {calls} hostile calls were made");
}
