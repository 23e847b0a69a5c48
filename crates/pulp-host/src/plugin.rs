//! A loaded plugin: its module bound to the host's capabilities, one live instance,
//! and the calls of ABI §2 (`pulp_init`, `pulp_step`, `pulp_shutdown`, probes).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use pulp_ext::host::{HostEvents, HostPlugin, HostState};
use pulp_ext::tape::{Begin, EntryKind, Outcome, Player, Recorder, Tape};
use pulp_ext::wasmtime::{
    self, Engine, InstancePre, Memory, Store, Trap, TypedFunc, UpdateDeadline,
};
use pulp_ext::wasmtime_wasi::{I32Exit, WasiCtxBuilder};
use pulp_ext::{Event, Events, State};

use crate::cache::{self, Source};
pub use crate::envelope::Envelope;
use crate::envelope::{header, unix_nanos};
pub use crate::error::{CallError, LoadError, RestartError};
use crate::inspect::Linked;
use crate::limiter::Limiter;
use crate::stdio::LogStream;
use crate::wasi::{CallClock, CLOCK};
pub use crate::watch::Interrupter;
use crate::watch::{arm, Watch};
use crate::{inspect, Host, Manifest, Registry};

struct Exports {
    instance: wasmtime::Instance,
    memory: Memory,
    alloc: TypedFunc<i32, i32>,
    free: Option<TypedFunc<(i32, i32), ()>>,
    init: TypedFunc<(i32, i32), i32>,
    step: TypedFunc<(i32, i32), i32>,
    shutdown: TypedFunc<(), i32>,
    probe_last_call: Option<TypedFunc<(), i64>>,
    probe_config_marker: Option<TypedFunc<(), i64>>,
    on_call: Option<OnCall>,
}

/// `pulp_on_call(name_ptr, name_len, args_ptr, args_len, resp_ptr_out, resp_len_out) -> i32`.
type OnCall = TypedFunc<(i32, i32, i32, i32, i32, i32), i32>;

struct Live {
    store: Store<State>,
    exports: Exports,
}

/// What the versions of one plugin share across live reloads: the event queues
/// (with what is queued, and the routes and connections that post to them) and the
/// count of live instances whose last one closes them.
#[derive(Clone)]
pub struct Lineage {
    view: pulp_ext::Plugin,
    replicas: Arc<AtomicU64>,
}

/// A loaded plugin (the Go host's `host.Plugin`): load, [`init`](Plugin::init),
/// [`step`](Plugin::step) many times, [`shutdown`](Plugin::shutdown); closed on drop.
pub struct Plugin {
    manifest: Arc<Manifest>,
    view: pulp_ext::Plugin,
    config: Vec<u8>,
    linked: Arc<[Linked]>,
    pre: InstancePre<State>,
    live: Option<Live>,
    watch: Arc<Watch>,
    call_number: u64,
    source: Source,
    scratch: Vec<u8>,
    /// Live instances of this plugin ([`Plugin::replica`]); the last one to go
    /// closes the shared event queues.
    replicas: Arc<AtomicU64>,
    /// Recording this instance slot, or replaying into it.
    taping: Taping,
    /// A replay's player back from an instantiation that failed.
    failed_player: Option<Player>,
    /// Last: dropped after everything that belongs to it (a recording's stream
    /// must go before the host's recording writer, which waits for its streams).
    host: Host,
}

/// Whether a plugin's instances are recorded or replayed ([`pulp_ext::tape`]).
enum Taping {
    Off,
    /// Recording into `stream`; `module` is the module's SHA-256; `instances`
    /// counts the instances made so far.
    Record {
        stream: Arc<crate::record::Stream>,
        module: String,
        instances: u64,
    },
    /// Replaying: the player for the next instantiation, when one is due.
    Replay(Option<Player>),
}

/// Recording for a new instance slot of `plugin` (keeping its module `wasm`, if
/// given, beside the recording). A recording that cannot start is logged and
/// skipped: the plugin runs unrecorded rather than not at all.
fn record_into(w: &crate::record::Writer, plugin: &str, wasm: Option<&[u8]>) -> Taping {
    let module = match wasm.map(|m| w.keep_module(m)) {
        Some(Ok(sha)) => sha,
        Some(Err(e)) => {
            tracing::warn!(
                plugin,
                "recording: cannot keep the module ({e}); a replay will need --module"
            );
            wasm.map(crate::sha256_hex).unwrap_or_default()
        }
        None => String::new(),
    };
    match w.stream(plugin) {
        Ok(stream) => Taping::Record {
            stream,
            module,
            instances: 0,
        },
        Err(e) => {
            tracing::warn!(
                plugin,
                "recording: cannot start ({e}); the plugin runs unrecorded"
            );
            Taping::Off
        }
    }
}

/// A trap as the tape keeps it: its code and its message with the wasm backtrace.
fn trap_outcome(e: &wasmtime::Error) -> Outcome {
    Outcome::Trap(
        e.downcast_ref::<Trap>().map_or(u8::MAX, |t| *t as u8),
        format!("{e:?}"),
    )
}

/// Ends a taped entry: writes its outcome (handing the chunk on at once after a
/// trap, an init or a shutdown, so a crash loses little), or gives it to the player.
fn end_entry(state: &mut State, kind: EntryKind, o: Outcome) {
    match state.tape() {
        Some(Tape::Record(r)) => {
            let urgent = !matches!(o, Outcome::Returned(..))
                || matches!(kind, EntryKind::Init | EntryKind::Shutdown);
            r.leave(&o, urgent);
        }
        Some(Tape::Replay(p)) => p.outcome = Some(o),
        None => {}
    }
}

/// What an export's result is on the tape.
trait Taped {
    fn outcome(&self) -> Outcome;
}

impl Taped for i32 {
    fn outcome(&self) -> Outcome {
        Outcome::Returned(*self as i64, Vec::new())
    }
}

impl Taped for i64 {
    fn outcome(&self) -> Outcome {
        Outcome::Returned(*self, Vec::new())
    }
}

impl Taped for () {
    fn outcome(&self) -> Outcome {
        Outcome::Returned(0, Vec::new())
    }
}

impl Taped for (i32, Vec<u8>) {
    fn outcome(&self) -> Outcome {
        Outcome::Returned(self.0 as i64, self.1.clone())
    }
}

fn taped_outcome<R: Taped>(r: &Result<R, CallFail>) -> Outcome {
    match r {
        Ok(v) => v.outcome(),
        Err(CallFail::Wasm(e)) => trap_outcome(e),
        Err(CallFail::Input(m)) | Err(CallFail::Alloc { message: m, .. }) => {
            Outcome::Refused(m.clone())
        }
    }
}

impl Plugin {
    /// Compiles (or loads from the cache) the manifest's module, binds the
    /// capabilities of `registry` before instantiation (declared or always-bound get
    /// real imports, the rest signature-exact stubs returning 99), and instantiates it.
    /// With no registry the plugin gets WASI only.
    pub fn load(
        host: &Host,
        manifest: &Manifest,
        registry: Option<&Registry>,
    ) -> Result<Plugin, LoadError> {
        Plugin::load_as(host, manifest, registry, None, None)
    }

    /// A plugin for `pulp replay`: `manifest` names the recorded module, its
    /// declared capabilities and limits; no capability is attached (none does real
    /// work), and every instantiation plays `first` (then what
    /// [`Plugin::set_replay`] gives).
    pub(crate) fn load_replay(
        host: &Host,
        manifest: &Manifest,
        registry: &Registry,
        first: Player,
    ) -> Result<Plugin, LoadError> {
        Plugin::load_as(host, manifest, Some(registry), None, Some(first))
    }

    /// The next version of a running plugin for a live reload: `manifest` and its
    /// module loaded like [`Plugin::load`], sharing the running version's event
    /// queues (and what is queued), storage and routes' owner. It is a candidate
    /// ([`pulp_ext::Standing`]): after a successful [`init`](Plugin::init) the runtime
    /// makes it current ([`crate::Runtime::replace`]); dropped before, it is
    /// abandoned and the running version never noticed it. The queues keep their
    /// first `[limits] queue` and `host_memory_mb`.
    pub fn load_successor(
        host: &Host,
        manifest: &Manifest,
        registry: Option<&Registry>,
        of: &Lineage,
    ) -> Result<Plugin, LoadError> {
        if manifest.name != of.view.name() {
            return Err(LoadError::Rejected {
                plugin: of.view.name().to_string(),
                problems: vec![format!(
                    "the manifest {} now names plugin \"{}\"; a reload keeps the name",
                    manifest.path.display(),
                    manifest.name
                )],
            });
        }
        Plugin::load_as(host, manifest, registry, Some(of), None)
    }

    fn load_as(
        host: &Host,
        manifest: &Manifest,
        registry: Option<&Registry>,
        of: Option<&Lineage>,
        replay: Option<Player>,
    ) -> Result<Plugin, LoadError> {
        let replaying = replay.is_some();
        let name = manifest.name.clone();
        let wasm = crate::manifest::read_regular(&manifest.wasm, crate::manifest::MAX_MODULE_BYTES)
            .map_err(|cause| LoadError::Read {
                plugin: name.clone(),
                path: manifest.wasm.clone(),
                cause,
            })?;
        // Checked before anything is compiled: a module that is not the pinned one
        // runs no code, not even the compiler's.
        if let Some(message) = manifest.pin_problem(&wasm, host.config().require_pinned) {
            return Err(LoadError::Pin {
                plugin: name,
                message,
            });
        }
        if let (false, Ok(dir)) = (
            replaying,
            host.shared()
                .service(|| Ok::<_, String>(crate::calls::Directory::default())),
        ) {
            dir.declare(manifest);
        }
        let taping = match (replay, host.recording()) {
            (Some(p), _) => Taping::Replay(Some(p)),
            (None, Some(w)) if w.records(&name) => record_into(w, &name, Some(&wasm)),
            _ => Taping::Off,
        };
        let engine = host.engine();
        let (module, source) = cache::load(engine, &wasm, host.config().cache_dir.as_deref())
            .map_err(|e| LoadError::Compile {
                plugin: name.clone(),
                path: manifest.wasm.clone(),
                message: format!("{e:#}"),
            })?;
        let view = match of {
            Some(of) => of.view.successor(manifest.settings.clone()),
            None => pulp_ext::Plugin::with_shared(
                name.clone(),
                host.config().storage_root.join(&name),
                manifest.settings.clone(),
                Events::with_budget(
                    manifest.limits.queue as usize,
                    pulp_ext::Budget::new((manifest.limits.host_memory_mb as usize) << 20),
                ),
                host.shared().clone(),
            ),
        };
        let rejected = |problems| LoadError::Rejected {
            plugin: name.clone(),
            problems,
        };
        let mut problems = inspect::export_problems(&module);
        let plan = match inspect::plan(Some(&module), manifest, &view, registry, false, replaying) {
            Ok(plan) => Some(plan),
            Err(p) => {
                problems.extend(p);
                None
            }
        };
        if !problems.is_empty() {
            return Err(rejected(problems));
        }
        let plan = plan.expect("no problems means a plan");
        let linker =
            inspect::link(engine, &plan, &name).map_err(|e| rejected(vec![format!("{e:#}")]))?;
        let pre = linker
            .instantiate_pre(&module)
            .map_err(|e| rejected(vec![format!("{e:#}")]))?;
        let mut plugin = Plugin {
            host: host.clone(),
            manifest: Arc::new(manifest.clone()),
            view,
            // A replay's config comes from the recording (secrets included).
            config: if replaying {
                Vec::new()
            } else {
                manifest.encoded_config().map_err(|p| LoadError::Rejected {
                    plugin: name.clone(),
                    problems: vec![p],
                })?
            },
            // Nothing is attached in a replay: the linker has the imports, and the
            // tape answers them.
            linked: if replaying {
                Vec::new().into()
            } else {
                plan.linked.into()
            },
            pre,
            live: None,
            watch: Arc::new(Watch {
                ticks_left: AtomicU64::new(0),
                abort: AtomicBool::new(false),
            }),
            call_number: 0,
            source,
            scratch: Vec::new(),
            replicas: match of {
                Some(of) => {
                    of.replicas.fetch_add(1, Ordering::SeqCst);
                    of.replicas.clone()
                }
                None => Arc::new(AtomicU64::new(1)),
            },
            taping,
            failed_player: None,
        };
        plugin.live = Some(plugin.instantiate()?);
        Ok(plugin)
    }

    /// What the next version of this plugin shares with it ([`Plugin::load_successor`]).
    pub fn lineage(&self) -> Lineage {
        Lineage {
            view: self.view.clone(),
            replicas: self.replicas.clone(),
        }
    }

    /// Moves this version to `standing` (around a live reload).
    pub(crate) fn set_standing(&self, standing: pulp_ext::Standing) {
        self.view.set_standing(standing);
    }

    /// One more instance of this plugin (`[limits] instances`): its own store,
    /// memory, deadline and call numbers, the same module, manifest, routes and event
    /// queues, so events go to whichever instance is free. Call
    /// [`init`](Plugin::init) on it before stepping it.
    pub fn replica(&self) -> Result<Plugin, LoadError> {
        self.replicas.fetch_add(1, Ordering::SeqCst);
        let mut p = Plugin {
            host: self.host.clone(),
            manifest: self.manifest.clone(),
            view: self.view.clone(),
            config: self.config.clone(),
            linked: self.linked.clone(),
            pre: self.pre.clone(),
            live: None,
            watch: Arc::new(Watch {
                ticks_left: AtomicU64::new(0),
                abort: AtomicBool::new(false),
            }),
            call_number: 0,
            source: self.source,
            scratch: Vec::new(),
            replicas: self.replicas.clone(),
            taping: match (&self.taping, self.host.recording()) {
                (Taping::Record { module, .. }, Some(w)) => match record_into(w, self.name(), None)
                {
                    Taping::Record { stream, .. } => Taping::Record {
                        stream,
                        module: module.clone(),
                        instances: 0,
                    },
                    off => off,
                },
                _ => Taping::Off,
            },
            failed_player: None,
        };
        p.live = Some(p.instantiate()?);
        Ok(p)
    }

    /// The manifest's name.
    pub fn name(&self) -> &str {
        self.view.name()
    }

    /// The manifest the plugin was loaded from.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The capabilities' view of this plugin (its event queues among others).
    pub fn view(&self) -> &pulp_ext::Plugin {
        &self.view
    }

    /// Whether the module was compiled now or loaded from the on-disk cache.
    pub fn module_source(&self) -> Source {
        self.source
    }

    /// The size of the instance's linear memory in bytes (0 when it is closed).
    pub fn memory_bytes(&self) -> usize {
        self.live
            .as_ref()
            .map_or(0, |l| l.exports.memory.data_size(&l.store))
    }

    /// A handle that interrupts this plugin's calls from another thread.
    pub fn interrupter(&self) -> Interrupter {
        Interrupter(self.watch.clone())
    }

    fn instantiate(&mut self) -> Result<Live, LoadError> {
        let name = self.name().to_string();
        let fail = |message: String| LoadError::Instantiate {
            plugin: name.clone(),
            message,
        };
        let manifest = self.manifest.clone();
        let limits = &manifest.limits;
        let clock = CallClock::new(self.watch.clone());
        let wasi = WasiCtxBuilder::new()
            .stdout(LogStream::new(&name, false))
            .stderr(LogStream::new(&name, true))
            .monotonic_clock(clock.guest_clock())
            .build_p1();
        // One budget for every memory and table of the instance together.
        let limiter = Limiter::new((limits.memory_mb as usize) << 20);
        let mut state = State::new(
            self.view.clone(),
            wasi,
            Box::new(limiter),
            limits.max_message_bytes as usize,
        );
        state.put(&CLOCK, clock);
        let tape = self.first_tape();
        let taped = tape.is_some();
        state.set_tape(tape);
        let mut store = Store::new(self.host.engine(), state);
        store.limiter(|s| s.limits());
        let watch = self.watch.clone();
        store.epoch_deadline_callback(move |_| {
            if watch.tick() {
                Err(Trap::Interrupt.into())
            } else {
                Ok(UpdateDeadline::Continue(1))
            }
        });
        for l in self.linked.iter() {
            l.capability()
                .attach(&self.view, &l.settings, store.data_mut())
                .map_err(|e| fail(format!("capability \"{}\": {e}", l.capability().name())))?;
        }
        let limit = limits.init_timeout_ms;
        arm(&mut store, &self.watch, self.fuel(), limit);
        let result = (|| {
            let instance = self.pre.instantiate(&mut store)?;
            // Export types were checked at load; `get_func` avoids building an error
            // (and, with RUST_BACKTRACE set, a backtrace) for each optional export.
            macro_rules! optional {
                ($name:literal) => {
                    match instance.get_func(&mut store, $name) {
                        Some(f) => Some(f.typed(&store)?),
                        None => None,
                    }
                };
            }
            macro_rules! required {
                ($name:literal) => {
                    optional!($name).ok_or_else(|| wasmtime::format_err!("no {} export", $name))?
                };
            }
            let start: Option<TypedFunc<(), ()>> = optional!("_initialize");
            let start = match start {
                Some(f) => Some(f),
                None => optional!("_start"),
            };
            if let Some(f) = start {
                match f.call(&mut store, ()) {
                    Err(e) if e.downcast_ref::<I32Exit>().is_some_and(|x| x.0 == 0) => {}
                    r => r?,
                }
            }
            let memory = instance
                .get_memory(&mut store, "memory")
                .ok_or_else(|| wasmtime::format_err!("no memory export"))?;
            Ok::<_, wasmtime::Error>(Exports {
                instance,
                memory,
                alloc: required!("pulp_alloc"),
                free: optional!("pulp_free"),
                init: required!("pulp_init"),
                step: required!("pulp_step"),
                shutdown: required!("pulp_shutdown"),
                probe_last_call: optional!("probe_last_call"),
                probe_config_marker: optional!("probe_config_marker"),
                on_call: optional!("pulp_on_call"),
            })
        })();
        if taped {
            let o = match &result {
                Ok(_) => Outcome::Returned(0, Vec::new()),
                Err(e) => trap_outcome(e),
            };
            end_entry(store.data_mut(), EntryKind::Instantiate, o);
        }
        let exports = match result {
            Ok(e) => e,
            Err(e) => {
                let why = self.classify("instantiation", limit, e).to_string();
                for l in self.linked.iter() {
                    l.capability().detach(store.data_mut());
                }
                if let Some(Tape::Replay(p)) = store.data_mut().set_tape(None).map(|t| *t) {
                    self.failed_player = Some(p);
                }
                return Err(fail(why));
            }
        };
        store
            .data_mut()
            .set_guest(exports.memory, exports.alloc.clone());
        Ok(Live { store, exports })
    }

    /// The tape for a new instance: a recorder that has written the instance's
    /// [`Begin`], or the replay's player for it; `None` when not taped.
    fn first_tape(&mut self) -> Option<Box<Tape>> {
        let fuel = self.fuel();
        match &mut self.taping {
            Taping::Off => None,
            Taping::Replay(p) => p.take().map(|p| Box::new(Tape::Replay(p))),
            Taping::Record {
                stream,
                module,
                instances,
            } => {
                let (l, name) = (&self.manifest.limits, self.view.name());
                let mut r = Recorder::new(Arc::new(crate::record::StreamSink(stream.clone())));
                r.push(&pulp_ext::tape::Rec::Begin(Begin {
                    plugin: name.to_string(),
                    version: self.manifest.version.clone(),
                    module: module.clone(),
                    capabilities: self.manifest.capabilities.clone(),
                    memory_mb: l.memory_mb as u64,
                    max_message: l.max_message_bytes as u64,
                    call_timeout_ms: l.call_timeout_ms,
                    init_timeout_ms: l.init_timeout_ms,
                    fuel,
                    wall: unix_nanos(),
                    instance: *instances,
                }));
                *instances += 1;
                r.enter(EntryKind::Instantiate, &[]);
                Some(Box::new(Tape::Record(r)))
            }
        }
    }

    /// Fuel per call, when the host meters fuel.
    fn fuel(&self) -> Option<u64> {
        self.host
            .config()
            .fuel
            .then(|| self.manifest.limits.fuel.unwrap_or(u64::MAX))
    }

    fn classify(&self, export: &'static str, limit_ms: u64, e: wasmtime::Error) -> CallError {
        let plugin = self.name().to_string();
        if e.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
            if self.watch.take_abort() {
                return CallError::Interrupted { plugin, export };
            }
            return CallError::Timeout {
                plugin,
                export,
                limit_ms,
            };
        }
        CallError::Trap {
            plugin,
            export,
            message: format!("{e:#}"),
        }
    }

    /// Runs `f` against the live instance under the call deadline; `input` is what
    /// the export is given, for the tape.
    fn call<R: Taped>(
        &mut self,
        kind: EntryKind,
        input: &[&[u8]],
        limit_ms: u64,
        f: impl FnOnce(&mut Live) -> Result<R, CallFail>,
    ) -> Result<R, CallError> {
        let export = kind.export();
        let fuel = self.fuel();
        let Some(live) = self.live.as_mut() else {
            return Err(CallError::Dead {
                plugin: self.name().to_string(),
            });
        };
        arm(&mut live.store, &self.watch, fuel, limit_ms);
        let taped = match live.store.data_mut().tape() {
            None => false,
            Some(Tape::Record(r)) => {
                r.enter(kind, input);
                true
            }
            Some(Tape::Replay(_)) => true,
        };
        let r = f(live);
        if taped {
            end_entry(live.store.data_mut(), kind, taped_outcome(&r));
        }
        r.map_err(|e| match e {
            CallFail::Wasm(e) => self.classify(export, limit_ms, e),
            CallFail::Input(message) => CallError::Input {
                plugin: self.name().to_string(),
                export,
                message,
            },
            CallFail::Alloc { message, trapped } => CallError::Refused {
                plugin: self.name().to_string(),
                export,
                message,
                trapped,
            },
        })
    }

    fn call_limit(&self) -> u64 {
        self.manifest.limits.call_timeout_ms
    }

    /// Calls `pulp_init` with the manifest's `[config]` (`(0, 0)` when there is none).
    pub fn init(&mut self) -> Result<(), CallError> {
        let config = std::mem::take(&mut self.config);
        let r = self.init_with(&config);
        self.config = config;
        r
    }

    /// Calls `pulp_init` with these config bytes.
    pub fn init_with(&mut self, config: &[u8]) -> Result<(), CallError> {
        let limit = self.manifest.limits.init_timeout_ms;
        let code = self.call(EntryKind::Init, &[config], limit, |live| {
            call_with_input(live, |e| &e.init, &[config])
        })?;
        self.returned("pulp_init", code)
    }

    /// Calls `pulp_step` with this envelope; returns the guest's output handle (0 = none).
    pub fn step(&mut self, envelope: &Envelope) -> Result<i32, CallError> {
        let h = header(
            envelope.call_number,
            envelope.wall_time,
            envelope.payload.len(),
        );
        let parts = [&h[..], envelope.payload.as_slice()];
        self.call(EntryKind::Step, &parts, self.call_limit(), |live| {
            call_with_input(live, |e| &e.step, &parts)
        })
    }

    /// Steps with `event` (or an idle tick), numbering the call and stamping the wall
    /// time itself: what the runtime does for every step.
    pub fn step_event(&mut self, event: Option<&Event>) -> Result<i32, CallError> {
        let call_number = self.call_number;
        self.call_number += 1;
        let cap = (self.manifest.limits.memory_mb as usize) << 20;
        if let Some(e) = event.filter(|e| e.size() + 64 > cap) {
            // It could never fit, however empty the guest's heap: do not even ask.
            return Err(CallError::Refused {
                plugin: self.name().to_string(),
                export: "pulp_step",
                message: format!(
                    "a {} event of {} bytes is larger than the plugin's whole memory_mb",
                    e.kind(),
                    e.size()
                ),
                trapped: false,
            });
        }
        // The event's small prefix goes through `scratch`; its payload is copied
        // once, straight into the guest.
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        let payload = event.map_or(&[][..], |e| {
            e.encode_prefix_into(&mut scratch);
            e.payload()
        });
        let h = header(call_number, unix_nanos(), scratch.len() + payload.len());
        let parts = [&h[..], scratch.as_slice(), payload];
        let r = self.call(EntryKind::Step, &parts, self.call_limit(), |live| {
            call_with_input(live, |e| &e.step, &parts)
        });
        self.scratch = scratch;
        r
    }

    /// Calls `pulp_on_call` with function `name` and `args` (another plugin's
    /// `pulp_call`) within `limit_ms`: the code it returned and the answer it wrote
    /// through its out-pointers, copied out and freed (at most `max_answer` bytes).
    /// `None` when the plugin exports no `pulp_on_call`.
    pub fn on_call(
        &mut self,
        name: &str,
        args: &[u8],
        limit_ms: u64,
        max_answer: usize,
    ) -> Option<Result<(i32, Vec<u8>), CallError>> {
        let f = self.live.as_ref()?.exports.on_call.clone()?;
        let n = (name.len() as u32).to_le_bytes();
        Some(self.call(
            EntryKind::OnCall,
            &[&n, name.as_bytes(), args],
            limit_ms,
            |live| {
                let Live { store, exports } = live;
                let (np, nl) = write_input(store, exports, &[name.as_bytes()])?;
                let (ap, al) = write_input(store, exports, &[args])?;
                let (op, ol) = write_input(store, exports, &[&[0u8; 8]])?;
                let code = f
                    .call(&mut *store, (np, nl, ap, al, op, op.wrapping_add(4)))
                    .map_err(CallFail::Wasm)?;
                let mem = exports.memory.data(&*store);
                let word = |at: usize| {
                    mem.get(at..at + 4)
                        .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize)
                };
                let out = op as u32 as usize;
                let (rp, rl) = (word(out).unwrap_or(0), word(out + 4).unwrap_or(0));
                let in_bounds = rp.checked_add(rl).is_some_and(|end| end <= mem.len());
                let answer = if rl > max_answer {
                    Err(format!(
                    "its answer of {rl} bytes is over the caller's {max_answer}-byte message limit"
                ))
                } else if !in_bounds {
                    Err(format!(
                        "its answer ({rp:#x}, {rl}) lies outside its {}-byte memory",
                        mem.len()
                    ))
                } else {
                    Ok(mem[rp..rp + rl].to_vec())
                };
                // Every block goes back, whatever the answer was, newest first: a bump
                // allocator that takes back its newest block (as many small guests
                // have) gets all of them back. An answer outside memory is not freed.
                if let Some(free) = &exports.free {
                    let answer_block = (in_bounds && rl > 0).then_some((rp as i32, rl as i32));
                    for (p, n) in answer_block
                        .into_iter()
                        .chain([(op, ol), (ap, al), (np, nl)])
                    {
                        if n > 0 {
                            free.call(&mut *store, (p, n)).map_err(CallFail::Wasm)?;
                        }
                    }
                }
                let answer = answer.map_err(CallFail::Input)?;
                Ok((code, answer))
            },
        ))
    }

    /// The next call number [`Plugin::step_event`] will use.
    pub fn call_number(&self) -> u64 {
        self.call_number
    }

    /// Calls `pulp_shutdown`; a non-zero result is an error.
    pub fn shutdown(&mut self) -> Result<(), CallError> {
        let code = self.call(EntryKind::Shutdown, &[], self.call_limit(), |live| {
            live.exports
                .shutdown
                .call(&mut live.store, ())
                .map_err(CallFail::Wasm)
        })?;
        self.returned("pulp_shutdown", code)
    }

    fn returned(&self, export: &'static str, code: i32) -> Result<(), CallError> {
        match code {
            0 => Ok(()),
            code => Err(CallError::Returned {
                plugin: self.name().to_string(),
                export,
                code,
            }),
        }
    }

    /// `probe_last_call()` if the plugin exports it (diagnostics).
    pub fn probe_last_call(&mut self) -> Option<u64> {
        self.probe("probe_last_call").map(|v| v as u64)
    }

    /// `probe_config_marker()` if the plugin exports it (diagnostics).
    pub fn probe_config_marker(&mut self) -> Option<i64> {
        self.probe("probe_config_marker")
    }

    /// Runs probe export `name` if the plugin has it.
    pub(crate) fn probe(&mut self, name: &str) -> Option<i64> {
        let e = &self.live.as_ref()?.exports;
        let f = match name {
            "probe_last_call" => e.probe_last_call.clone(),
            "probe_config_marker" => e.probe_config_marker.clone(),
            _ => None,
        }?;
        self.call(
            EntryKind::Probe,
            &[name.as_bytes()],
            self.call_limit(),
            |live| f.call(&mut live.store, ()).map_err(CallFail::Wasm),
        )
        .ok()
    }

    /// Writes the instance's linear memory (`memory.bin`) and its exported globals
    /// (`globals.json`) into folder `dir`, for inspection.
    pub(crate) fn dump(&mut self, dir: &std::path::Path) -> std::io::Result<()> {
        let Some(live) = self.live.as_mut() else {
            return Err(std::io::Error::other("the instance is not live"));
        };
        std::fs::create_dir_all(dir)?;
        std::fs::write(
            dir.join("memory.bin"),
            live.exports.memory.data(&live.store),
        )?;
        let mut globals = serde_json::Map::new();
        let exports: Vec<_> = live
            .exports
            .instance
            .exports(&mut live.store)
            .filter_map(|e| {
                let name = e.name().to_string();
                e.into_global().map(|g| (name, g))
            })
            .collect();
        for (name, g) in exports {
            let v = match g.get(&mut live.store) {
                wasmtime::Val::I32(v) => serde_json::json!(v),
                wasmtime::Val::I64(v) => serde_json::json!(v),
                wasmtime::Val::F32(v) => serde_json::json!(f32::from_bits(v)),
                wasmtime::Val::F64(v) => serde_json::json!(f64::from_bits(v)),
                other => serde_json::json!(format!("{other:?}")),
            };
            globals.insert(name, v);
        }
        std::fs::write(
            dir.join("globals.json"),
            serde_json::to_string_pretty(&globals)?,
        )
    }

    /// Gives the replay's player to the running instance (`Some`), or takes it
    /// back (`None`).
    pub(crate) fn swap_player(&mut self, p: Option<Player>) -> Option<Player> {
        let live = self.live.as_mut()?;
        let old = live
            .store
            .data_mut()
            .set_tape(p.map(|p| Box::new(Tape::Replay(p))));
        match old.map(|t| *t) {
            Some(Tape::Replay(p)) => Some(p),
            _ => None,
        }
    }

    /// Replaces the instance with one made by the replay's `player`; returns the
    /// player (with the instantiation's outcome) and whether it worked.
    pub(crate) fn replay_instantiate(
        &mut self,
        player: Player,
    ) -> (Option<Player>, Result<(), LoadError>) {
        self.close_instance();
        self.taping = Taping::Replay(Some(player));
        match self.instantiate() {
            Ok(live) => {
                self.live = Some(live);
                let p = self.swap_player(None);
                (p, Ok(()))
            }
            Err(e) => (self.failed_player.take(), Err(e)),
        }
    }

    /// Replaces the instance with a fresh one (capabilities detached and attached
    /// again) and calls `pulp_init` on it: what supervision does after a failure.
    pub fn restart(&mut self) -> Result<(), RestartError> {
        self.close_instance();
        self.live = Some(self.instantiate()?);
        self.init()?;
        Ok(())
    }

    fn close_instance(&mut self) {
        if let Some(mut live) = self.live.take() {
            for l in self.linked.iter() {
                l.capability().detach(live.store.data_mut());
            }
        }
    }

    /// Closes the plugin's event queues, then releases the instance and what its
    /// capabilities made (also done on drop). Capabilities see the closed queues in
    /// `detach` and release plugin-wide things too (routes, connections).
    pub fn close(self) {}

    /// The engine the plugin runs on.
    pub fn engine(&self) -> &Engine {
        self.host.engine()
    }
}

impl Drop for Plugin {
    fn drop(&mut self) {
        // A candidate dropped before it took over was never served.
        if self.view.standing() == pulp_ext::Standing::Candidate {
            self.view.set_standing(pulp_ext::Standing::Abandoned);
        }
        if self.replicas.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.view.events().close();
        }
        self.close_instance();
    }
}

enum CallFail {
    Wasm(wasmtime::Error),
    Input(String),
    /// `pulp_alloc` could not take the call's input (returned 0 or out of range,
    /// or trapped: `trapped`).
    Alloc {
        message: String,
        trapped: bool,
    },
}

/// Copies `parts` into one fresh guest buffer from `pulp_alloc`; `(0, 0)` when empty.
fn write_input(
    store: &mut Store<State>,
    exports: &Exports,
    parts: &[&[u8]],
) -> Result<(i32, i32), CallFail> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    if len == 0 {
        return Ok((0, 0));
    }
    let n = i32::try_from(len)
        .map_err(|_| CallFail::Input(format!("{len} bytes do not fit a 32-bit guest")))?;
    let ptr = exports.alloc.call(&mut *store, n).map_err(|e| {
        if e.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
            return CallFail::Wasm(e);
        }
        CallFail::Alloc {
            message: format!("pulp_alloc({n}) trapped: {e:#}"),
            trapped: true,
        }
    })?;
    let mem = exports.memory.data_mut(store);
    let start = ptr as u32 as usize;
    let Some(dst) = (ptr != 0)
        .then(|| mem.get_mut(start..start + len))
        .flatten()
    else {
        return Err(CallFail::Alloc {
            message: format!(
                "pulp_alloc({n}) returned {:#x}, which is 0 or outside the {}-byte memory",
                ptr as u32,
                mem.len()
            ),
            trapped: false,
        });
    };
    let mut at = 0;
    for p in parts {
        dst[at..at + p.len()].copy_from_slice(p);
        at += p.len();
    }
    Ok((ptr, n))
}

/// The ABI's host → plugin protocol: `pulp_alloc`, copy, call the export `pick`
/// chooses with `(ptr, len)`, `pulp_free`. Exports are borrowed, not cloned: a
/// `TypedFunc` clone costs two atomic reference-count updates.
fn call_with_input(
    live: &mut Live,
    pick: impl FnOnce(&Exports) -> &TypedFunc<(i32, i32), i32>,
    parts: &[&[u8]],
) -> Result<i32, CallFail> {
    let Live { store, exports } = live;
    let (ptr, len) = write_input(store, exports, parts)?;
    let out = pick(exports)
        .call(&mut *store, (ptr, len))
        .map_err(CallFail::Wasm)?;
    if let (Some(free), true) = (&exports.free, len > 0) {
        free.call(&mut *store, (ptr, len)).map_err(CallFail::Wasm)?;
    }
    Ok(out)
}
