//! Every import of every capability, called by a real guest with fuzzed bytes: the
//! msgpack request decoding of ABI §4, the guest-memory helpers (wild pointers, huge
//! lengths, out-pointers outside memory, memory that grows), and each import's own
//! checks. The guest is generated from the registry (like the hostile test), so a
//! new capability is fuzzed without editing this file.
//!
//! Input: byte 0 picks the import, byte 1 the pointer games, the rest is the request.
//! Every call must return a status of the ABI table; a trap or a panic is a crash.
#![no_main]

use std::sync::{Mutex, OnceLock};

use libfuzzer_sys::fuzz_target;
use pulp_ext::Binding;
use pulp_host::{Envelope, Host, HostConfig, Manifest, Plugin, Registry};

// `inventory` sees only linked crates.
use ext_docker as _;
use ext_entropy as _;
use ext_fs as _;
use ext_http as _;
use ext_logging as _;
use ext_sqlite as _;

struct Target {
    plugin: Plugin,
    _dir: tempfile::TempDir,
    calls: u64,
}

/// The arguments of an import with `n` parameters, from the request range
/// `$rp/$rn`, its halves, and the out-pointer `$out`.
fn args(n: usize) -> String {
    let a: Vec<&str> = match n {
        2 => vec!["(local.get $rp)", "(local.get $rn)"],
        3 => vec!["(local.get $mode)", "(local.get $rp)", "(local.get $rn)"],
        4 => vec!["(local.get $rp)", "(local.get $rn)", "(local.get $out)", "(i32.add (local.get $out) (i32.const 4))"],
        6 => vec![
            "(local.get $rp)",
            "(local.get $half)",
            "(i32.add (local.get $rp) (local.get $half))",
            "(i32.sub (local.get $rn) (local.get $half))",
            "(local.get $out)",
            "(i32.add (local.get $out) (i32.const 4))",
        ],
        n => (0..n).map(|i| if i % 2 == 0 { "(local.get $rp)" } else { "(local.get $rn)" }).collect(),
    };
    a.join(" ")
}

fn guest(registry: &Registry) -> String {
    let imports: Vec<_> = registry
        .entries()
        .iter()
        .flat_map(|e| e.capability.imports().iter().copied())
        .filter(|i| i.results.len() == 1 && i.params.iter().all(|t| *t == pulp_ext::Ty::I32))
        .collect();
    let mut decls = String::new();
    let mut blocks = String::new();
    for (k, i) in imports.iter().enumerate() {
        decls += &format!(
            "  (import \"pulp\" \"{}\" (func $f{k} (param {}) (result i32)))\n",
            i.name,
            "i32 ".repeat(i.params.len())
        );
    }
    // A br_table over blocks: the innermost block is import 0.
    let n = imports.len();
    let mut body = format!(
        "(br_table {} (i32.rem_u (local.get $sel) (i32.const {n})))",
        (0..n).map(|k| format!("$b{k}")).collect::<Vec<_>>().join(" ") + &format!(" $b{}", n - 1)
    );
    for (k, i) in imports.iter().enumerate() {
        body = format!(
            "(block $b{k} {body})\n      (return (call $f{k} {}))",
            args(i.params.len())
        );
    }
    blocks += &body;
    format!(
        r#"(module
{decls}  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 32768))
  (func (export "pulp_alloc") (param $n i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.and (i32.add (i32.add (local.get $p) (local.get $n)) (i32.const 7)) (i32.const -8)))
    (if (i32.gt_u (global.get $heap) (i32.mul (memory.size) (i32.const 65536)))
      (then
        (local.set $p (i32.const 32768))
        (global.set $heap (i32.and (i32.add (i32.add (local.get $p) (local.get $n)) (i32.const 7)) (i32.const -8)))
        (if (i32.gt_u (global.get $heap) (i32.mul (memory.size) (i32.const 65536)))
          (then (global.set $heap (i32.const 32768)) (return (i32.const 0))))))
    (local.get $p))
  (func (export "pulp_init") (param i32 i32) (result i32) (i32.const 0))
  (func (export "pulp_shutdown") (result i32) (i32.const 0))
  (func (export "pulp_step") (param $p i32) (param $n i32) (result i32)
    (local $sel i32) (local $mode i32) (local $rp i32) (local $rn i32) (local $half i32) (local $out i32)
    (if (i32.lt_u (local.get $n) (i32.const 22)) (then (return (i32.const 0))))
    (local.set $sel (i32.load8_u (i32.add (local.get $p) (i32.const 20))))
    (local.set $mode (i32.load8_u (i32.add (local.get $p) (i32.const 21))))
    (local.set $rp (i32.add (local.get $p) (i32.const 22)))
    (local.set $rn (i32.sub (local.get $n) (i32.const 22)))
    (if (i32.and (local.get $mode) (i32.const 8)) (then (drop (memory.grow (i32.const 1)))))
    (if (i32.and (local.get $mode) (i32.const 1)) (then (local.set $rp (i32.sub (i32.const -16) (local.get $rn)))))
    (if (i32.and (local.get $mode) (i32.const 2)) (then (local.set $rn (i32.const 0x7fffffff))))
    (local.set $out (select (i32.const -8) (i32.const 8) (i32.and (local.get $mode) (i32.const 4))))
    (local.set $half (i32.shr_u (local.get $rn) (i32.const 1)))
    {blocks}
    (i32.const 0)))
"#
    )
}

fn target() -> &'static Mutex<Target> {
    static T: OnceLock<Mutex<Target>> = OnceLock::new();
    T.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let settings = [
            ("http".to_string(), toml::toml! { listen = "127.0.0.1:0" }),
            ("docker".to_string(), toml::toml! { host = "unix:///nonexistent/docker.sock" }),
        ];
        let host = Host::new(HostConfig {
            storage_root: dir.path().join("data"),
            cache_dir: None,
            fuel: false,
            settings: settings.into(),
        })
        .unwrap();
        let registry = Registry::new().unwrap();
        let gated: Vec<String> = registry
            .entries()
            .iter()
            .filter(|e| e.binding == Binding::Gated)
            .map(|e| format!("\"{}\"", e.capability.name()))
            .collect();
        std::fs::write(dir.path().join("fuzz.wat"), guest(&registry)).unwrap();
        let text = format!(
            r#"name = "fuzz"
version = "1"
wasm = "fuzz.wat"
capabilities = [{}]
[limits]
memory_mb = 16
[capability."transport.http.outbound"]
allowed_hosts = ["192.0.2.1"]
timeout_ms = 1
[capability."spawn.docker"]
images = ["none/*"]
timeout_ms = 50
"#,
            gated.join(", ")
        );
        let path = dir.path().join("pulp.plugin.toml");
        std::fs::write(&path, &text).unwrap();
        let manifest = Manifest::load(&path).unwrap();
        let mut plugin = Plugin::load(&host, &manifest, Some(&registry)).unwrap();
        plugin.init().unwrap();
        Mutex::new(Target { plugin, _dir: dir, calls: 0 })
    })
}

fuzz_target!(|data: &[u8]| {
    let mut t = target().lock().unwrap_or_else(|p| p.into_inner());
    t.calls += 1;
    let env = Envelope { call_number: t.calls, wall_time: 0, payload: data.to_vec() };
    let status = t.plugin.step(&env).expect("an import call never traps the guest");
    assert!(
        pulp_ext::Status::from_code(status).is_some(),
        "import returned {status}, not a status of the ABI table"
    );
});
