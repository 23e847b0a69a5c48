//! Every import of every capability, called by a real guest with fuzzed bytes: the
//! msgpack request decoding of ABI §4, the guest-memory helpers (wild pointers, huge
//! lengths, out-pointers outside memory, memory that grows, a `pulp_alloc` that
//! traps, returns 0 or returns a pointer outside memory), and each import's own
//! checks, SQLite's authorizer among them. The guest is generated from the registry
//! (like the hostile test), so a new capability is fuzzed without editing this file.
//!
//! Input: byte 0 picks the import (an index into the imports sorted by name, modulo
//! their number), byte 1 the games below, the rest is the request. A 6-parameter
//! import (`sqlite_exec`, `sqlite_query`) splits the request: its first byte is the
//! length `p` of the second input (the parameters), which is the request's last `p`
//! bytes; the first input (the SQL) is what lies between. `fuzz/seeds.py` writes the
//! seed corpus in this format.
//!
//! | bit of byte 1 | game |
//! |---|---|
//! | 1 | the request pointer lies outside memory (just below 4 GiB) |
//! | 2 | the request length is `0x7fff_ffff` |
//! | 4 | the out-pointers (the last two arguments of a 4- or 6-parameter import) lie outside memory |
//! | 8 | memory grows by a page before the call |
//! | 16, 32 | `pulp_alloc` during the call: 1 traps, 2 returns 0, 3 returns a pointer outside memory |
//!
//! Each input runs on a fresh plugin with a fresh storage folder (a fresh SQLite
//! database; `files/hello.txt` and an empty `files/dir`), so a crash reproduces from
//! its input alone. Checked for every input:
//!
//! - the call returns a status of the ABI table: never a trap, never a panic;
//! - after a non-zero status, `last_error` returns 0 with a non-empty text;
//! - a request outside memory (bit 1 with a non-empty request, or bit 2) is never 0;
//! - bad out-pointers give 8 (WRITE_FAILED), and a failing `pulp_alloc` gives 7
//!   (ALLOC_FAILED), wherever the same input with good out-pointers and a working
//!   `pulp_alloc` (run again on another fresh plugin) succeeds and writes its
//!   result; where that result is empty, the failing `pulp_alloc` is never called
//!   and the status stays 0. (A call that times out is left out of this check, and
//!   SQL whose success depends on `random()` or the clock could fail one run and not
//!   the other: each disagreement is run again before it counts.)
#![no_main]

use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use libfuzzer_sys::fuzz_target;
use pulp_ext::{Binding, Status};
use pulp_host::{Envelope, Host, HostConfig, Manifest, Plugin, Registry};

// `inventory` sees only linked crates.
use ext_docker as _;
use ext_entropy as _;
use ext_fs as _;
use ext_http as _;
use ext_logging as _;
use ext_sqlite as _;

/// What the guest's `pulp_step` returns, bit by bit (see `guest`).
const STATUS: i32 = 0xff;
const STATUS_TOO_BIG: i32 = 1 << 24;
const LAST_ERROR_SHIFT: i32 = 8;
const LAST_ERROR_EMPTY: i32 = 1 << 16;
/// The out slots (at 8 and 12) no longer hold the sentinel: the call wrote a result.
const WROTE: i32 = 1 << 17;
/// ... and its length is not zero.
const NON_EMPTY: i32 = 1 << 18;

const WILD: u8 = 1;
const HUGE: u8 = 2;
const BAD_OUT: u8 = 4;
const ALLOC: u8 = 16 | 32;

/// The arguments of an import with `n` parameters: the request `$rp/$rn` (split for
/// six), `$mode` as a log level, and the out-pointer pair `$out`, `$out + 4`.
fn args(n: usize) -> String {
    let a: Vec<&str> = match n {
        2 => vec!["(local.get $rp)", "(local.get $rn)"],
        3 => vec!["(local.get $mode)", "(local.get $rp)", "(local.get $rn)"],
        4 => vec![
            "(local.get $rp)",
            "(local.get $rn)",
            "(local.get $out)",
            "(i32.add (local.get $out) (i32.const 4))",
        ],
        6 => vec![
            "(local.get $qp)",
            "(local.get $ql)",
            "(i32.add (local.get $qp) (local.get $ql))",
            "(local.get $pl)",
            "(local.get $out)",
            "(i32.add (local.get $out) (i32.const 4))",
        ],
        n => (0..n)
            .map(|i| {
                if i % 2 == 0 {
                    "(local.get $rp)"
                } else {
                    "(local.get $rn)"
                }
            })
            .collect(),
    };
    a.join(" ")
}

/// Every import of the registry of the ABI's all-i32 shape, sorted by name.
fn imports(registry: &Registry) -> Vec<pulp_ext::Import> {
    let mut list: Vec<_> = registry
        .entries()
        .iter()
        .flat_map(|e| e.imports.iter().cloned())
        .filter(|i| i.results.len() == 1 && i.params.iter().all(|t| *t == pulp_ext::Ty::I32))
        .collect();
    list.sort_by_key(|i| i.name);
    list
}

fn guest(imports: &[pulp_ext::Import]) -> String {
    let mut decls = String::new();
    for (k, i) in imports.iter().enumerate() {
        decls += &format!(
            "  (import \"pulp\" \"{}\" (func $f{k} (param {}) (result i32)))\n",
            i.name,
            "i32 ".repeat(i.params.len())
        );
    }
    let last_error = imports
        .iter()
        .position(|i| i.name == "last_error")
        .expect("the registry has core's last_error");
    // A br_table over blocks: the innermost block is import 0.
    let n = imports.len();
    let mut body = format!(
        "(br_table {} (i32.rem_u (local.get $sel) (i32.const {n})))",
        (0..n)
            .map(|k| format!("$b{k}"))
            .collect::<Vec<_>>()
            .join(" ")
            + &format!(" $b{}", n - 1)
    );
    for (k, i) in imports.iter().enumerate() {
        body = format!(
            "(block $b{k} {body})\n      (local.set $s (call $f{k} {}))\n      (br $done)",
            args(i.params.len())
        );
    }
    format!(
        r#"(module
{decls}  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 32768))
  (global $evil (mut i32) (i32.const 0))
  ;; A bump allocator that grows memory; during the call it may misbehave ($evil).
  (func (export "pulp_alloc") (param $n i32) (result i32)
    (local $p i32) (local $end i32) (local $have i32)
    (if (i32.eq (global.get $evil) (i32.const 1)) (then unreachable))
    (if (i32.eq (global.get $evil) (i32.const 2)) (then (return (i32.const 0))))
    (if (i32.eq (global.get $evil) (i32.const 3)) (then (return (i32.const -256))))
    (local.set $p (i32.and (i32.add (global.get $heap) (i32.const 7)) (i32.const -8)))
    (local.set $end (i32.add (local.get $p) (local.get $n)))
    (if (i32.lt_u (local.get $end) (local.get $p)) (then (return (i32.const 0))))
    (local.set $have (i32.mul (memory.size) (i32.const 65536)))
    (if (i32.gt_u (local.get $end) (local.get $have))
      (then
        (if (i32.eq (memory.grow (i32.shr_u (i32.add (i32.sub (local.get $end) (local.get $have))
                                                     (i32.const 65535))
                                            (i32.const 16)))
                    (i32.const -1))
          (then (return (i32.const 0))))))
    (global.set $heap (local.get $end))
    (local.get $p))
  (func (export "pulp_init") (param i32 i32) (result i32) (i32.const 0))
  (func (export "pulp_shutdown") (result i32) (i32.const 0))
  (func (export "pulp_step") (param $p i32) (param $n i32) (result i32)
    (local $sel i32) (local $mode i32) (local $rp i32) (local $rn i32) (local $out i32)
    (local $qp i32) (local $ql i32) (local $pl i32) (local $s i32) (local $r i32)
    (if (i32.lt_u (local.get $n) (i32.const 22)) (then (return (i32.const 0))))
    (local.set $sel (i32.load8_u (i32.add (local.get $p) (i32.const 20))))
    (local.set $mode (i32.load8_u (i32.add (local.get $p) (i32.const 21))))
    (local.set $rp (i32.add (local.get $p) (i32.const 22)))
    (local.set $rn (i32.sub (local.get $n) (i32.const 22)))
    ;; The split of a 6-parameter request, read before the pointer games.
    (if (local.get $rn) (then (local.set $pl (i32.load8_u (local.get $rp)))))
    (if (i32.and (local.get $mode) (i32.const 8)) (then (drop (memory.grow (i32.const 1)))))
    (if (i32.and (local.get $mode) (i32.const 1)) (then (local.set $rp (i32.sub (i32.const -16) (local.get $rn)))))
    (if (i32.and (local.get $mode) (i32.const 2)) (then (local.set $rn (i32.const 0x7fffffff))))
    (local.set $out (select (i32.const -8) (i32.const 8) (i32.and (local.get $mode) (i32.const 4))))
    (local.set $qp (i32.add (local.get $rp) (i32.ne (local.get $rn) (i32.const 0))))
    (if (local.get $rn)
      (then
        (if (i32.gt_u (local.get $pl) (i32.sub (local.get $rn) (i32.const 1)))
          (then (local.set $pl (i32.sub (local.get $rn) (i32.const 1)))))
        (local.set $ql (i32.sub (i32.sub (local.get $rn) (i32.const 1)) (local.get $pl)))))
    (i32.store (i32.const 8) (i32.const 0x5e5e5e5e))
    (i32.store (i32.const 12) (i32.const 0x5e5e5e5e))
    (global.set $evil (i32.and (i32.shr_u (local.get $mode) (i32.const 4)) (i32.const 3)))
    (block $done
      {body})
    (global.set $evil (i32.const 0))
    (local.set $r (i32.and (local.get $s) (i32.const 0xff)))
    (if (i32.gt_u (local.get $s) (i32.const 0xff))
      (then (local.set $r (i32.or (local.get $r) (i32.const {STATUS_TOO_BIG})))))
    (if (local.get $s)
      (then
        (i32.store (i32.const 0) (i32.const 0))
        (i32.store (i32.const 4) (i32.const 0))
        (local.set $r (i32.or (local.get $r)
          (i32.shl (i32.and (call $f{last_error} (i32.const 0) (i32.const 4)) (i32.const 0xff))
                   (i32.const {LAST_ERROR_SHIFT}))))
        (if (i32.eqz (i32.load (i32.const 4)))
          (then (local.set $r (i32.or (local.get $r) (i32.const {LAST_ERROR_EMPTY})))))))
    (if (i32.or (i32.ne (i32.load (i32.const 8)) (i32.const 0x5e5e5e5e))
                (i32.ne (i32.load (i32.const 12)) (i32.const 0x5e5e5e5e)))
      (then (local.set $r (i32.or (local.get $r) (i32.const {WROTE})))))
    (if (i32.and (i32.ne (i32.load (i32.const 12)) (i32.const 0x5e5e5e5e))
                 (i32.ne (i32.load (i32.const 12)) (i32.const 0)))
      (then (local.set $r (i32.or (local.get $r) (i32.const {NON_EMPTY})))))
    (local.get $r)))
"#
    )
}

/// Lets `pulp.log` read every message (a filtered log is not read at all), and
/// drops them.
struct LogSink;

impl tracing::Subscriber for LogSink {
    fn enabled(&self, meta: &tracing::Metadata<'_>) -> bool {
        meta.target() == "pulp::plugin"
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, _: &tracing::Event<'_>) {}
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

struct Target {
    host: Host,
    registry: Registry,
    manifest: Manifest,
    /// The plugin's storage folder, emptied before each run.
    storage: PathBuf,
    imports: Vec<pulp_ext::Import>,
    _dir: tempfile::TempDir,
}

fn target() -> &'static Mutex<Target> {
    static T: OnceLock<Mutex<Target>> = OnceLock::new();
    T.get_or_init(|| {
        tracing::subscriber::set_global_default(LogSink).expect("no other subscriber");
        // tmpfs when there is one: each run makes a new SQLite database.
        let dir = tempfile::Builder::new()
            .prefix("pulp-fuzz-imports")
            .tempdir_in(if std::path::Path::new("/dev/shm").is_dir() {
                "/dev/shm"
            } else {
                "/tmp"
            })
            .unwrap();
        let settings = [
            ("http".to_string(), toml::toml! { listen = "127.0.0.1:0" }),
            (
                "docker".to_string(),
                toml::toml! { host = "unix:///nonexistent/docker.sock" },
            ),
        ];
        let host = Host::new(HostConfig {
            storage_root: dir.path().join("data"),
            cache_dir: Some(dir.path().join("cache")),
            fuel: false,
            settings: settings.into(),
            require_pinned: false,
            record: None,
        })
        .unwrap();
        let registry = Registry::new().unwrap();
        let gated: Vec<String> = registry
            .entries()
            .iter()
            .filter(|e| e.binding == Binding::Gated)
            .map(|e| format!("\"{}\"", e.capability.name()))
            .collect();
        let imports = imports(&registry);
        std::fs::write(dir.path().join("fuzz.wat"), guest(&imports)).unwrap();
        // Short waits everywhere: a call may not hold the fuzzer up, nor run into
        // the call deadline (a trap).
        let text = format!(
            r#"name = "fuzz"
version = "1"
wasm = "fuzz.wat"
capabilities = [{}]
[limits]
memory_mb = 16
call_timeout_ms = 60000
[capability."transport.http.outbound"]
allowed_hosts = ["192.0.2.1"]
timeout_ms = 1
[capability."spawn.docker"]
images = ["none/*"]
timeout_ms = 50
[capability."storage.sqlite"]
statement_timeout_ms = 100
max_result_bytes = 65536
max_db_bytes = 1048576
"#,
            gated.join(", ")
        );
        let path = dir.path().join("pulp.plugin.toml");
        std::fs::write(&path, &text).unwrap();
        let manifest = Manifest::load(&path).unwrap();
        Mutex::new(Target {
            storage: dir.path().join("data").join("fuzz"),
            host,
            registry,
            manifest,
            imports,
            _dir: dir,
        })
    })
}

impl Target {
    /// One call on a fresh plugin with fresh storage: the guest's packed result.
    fn run(&self, data: &[u8]) -> i32 {
        match std::fs::remove_dir_all(&self.storage) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => panic!("{e}"),
            _ => {}
        }
        // Something for fs_read and fs_delete to find.
        std::fs::create_dir_all(self.storage.join("files/dir")).unwrap();
        std::fs::write(self.storage.join("files/hello.txt"), "hello").unwrap();
        let mut plugin = Plugin::load(&self.host, &self.manifest, Some(&self.registry)).unwrap();
        plugin.init().unwrap();
        let env = Envelope {
            call_number: 0,
            wall_time: 0,
            payload: data.to_vec(),
        };
        plugin
            .step(&env)
            .expect("an import call never traps the guest")
    }

    /// `run` of `data` with the games of `clear` off.
    fn run_without(&self, data: &[u8], clear: u8) -> i32 {
        let mut plain = data.to_vec();
        plain[1] &= !clear;
        self.run(&plain)
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let t = target().lock().unwrap_or_else(|p| p.into_inner());
    let import = &t.imports[data[0] as usize % t.imports.len()];
    let (name, params) = (import.name, import.params.len());
    let mode = data[1];
    let r = t.run(data);
    let status = r & STATUS;
    assert!(
        r & STATUS_TOO_BIG == 0 && Status::from_code(status).is_some(),
        "{name} returned {}, not a status of the ABI table",
        if r & STATUS_TOO_BIG != 0 {
            "more than 255".to_string()
        } else {
            status.to_string()
        }
    );
    if status != 0 {
        let le = (r >> LAST_ERROR_SHIFT) & 0xff;
        assert_eq!(
            le, 0,
            "{name} returned {status}; then last_error itself returned {le}"
        );
        assert!(
            r & LAST_ERROR_EMPTY == 0,
            "{name} returned {status} and left last_error empty"
        );
    }
    // The bytes the import is pointed at (the split byte of a 6-parameter one aside).
    let rn = if mode & HUGE != 0 {
        0x7fff_ffff
    } else {
        data.len() - 2
    };
    let pointed = if params == 6 {
        rn.saturating_sub(1)
    } else {
        rn
    };
    if mode & (WILD | HUGE) != 0 && pointed > 0 {
        assert_ne!(
            status, 0,
            "{name} accepted a request outside memory (mode {mode:#x})"
        );
    }
    if params < 4 || mode & (BAD_OUT | ALLOC) == 0 {
        return;
    }
    // What the same call does with good out-pointers and a working pulp_alloc.
    let agree = |r: i32| -> bool {
        let base = t.run_without(data, BAD_OUT | ALLOC);
        let status = r & STATUS;
        if base & STATUS != 0 || base & WROTE == 0 {
            return true; // it fails anyway, or writes nothing through these pointers
        }
        if status == Status::Timeout.code() {
            return true; // a statement near its time limit may pass once and not twice
        }
        if mode & BAD_OUT != 0 {
            status == Status::WriteFailed.code()
        } else if base & NON_EMPTY != 0 {
            status == Status::AllocFailed.code()
        } else {
            status == 0
        }
    };
    if !agree(r) {
        // Once more, both runs, before it counts (see the module docs).
        let again = t.run(data);
        assert!(
            agree(again),
            "{name} (mode {mode:#x}) returned {status}; with good out-pointers and a working \
             pulp_alloc it succeeds (status {:#x}), so the status must be {}",
            t.run_without(data, BAD_OUT | ALLOC),
            if mode & BAD_OUT != 0 {
                "8 (bad out-pointers are checked first)"
            } else {
                "7, or 0 for an empty result"
            }
        );
    }
});
