//! Calls between plugins: `pulp.pulp_call(target, name, args) -> answer` runs the
//! target's `pulp_on_call` on one of its instances, serialized with its steps.
//!
//! - **Who may call whom** is the manifests' (`links.rs`): the caller lists the
//!   target in `depends_on`, or in `consumes` the target's name or a name it
//!   provides; otherwise 9.
//! - **Where it runs.** The caller's thread takes a free instance of the target (its
//!   `Life` lock, which its steps hold too) and runs `pulp_on_call` there. A busy
//!   target is waited for until the caller's deadline (then 12); a stopped one is 10.
//! - **Cycles.** The plugins of the calls in progress on a thread form its call
//!   chain. A call to a plugin already in it (A → B → A, through any instance of a
//!   pool) could never get that plugin's instance, so it fails at once with 4 and
//!   a `last_error` naming the chain.
//! - **Deadlines.** A call carries what is left of the caller's deadline; a nested
//!   call the least of its chain's. The target's own `call_timeout_ms` bounds it too.
//! - **Failures.** A trap or overrun in `pulp_on_call` is the caller's status 5 (or
//!   12), never its trap; the target is restarted by supervision as after any trap.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};

use pulp_ext::metrics::prometheus_client::metrics::counter::Counter;
use pulp_ext::wasmtime::Caller;
use pulp_ext::{Binding, Bytes, Capability, Error, Import, OutBytes, State, Status, Str};

use crate::links::Links;
use crate::wasi::CLOCK;

/// The `calls` capability: `pulp_call`, bound for every plugin.
pub struct Calls;

pulp_ext::register!(Calls);

impl Capability for Calls {
    type Settings = ();

    fn name(&self) -> &'static str {
        "calls"
    }

    fn binding(&self) -> Binding {
        Binding::Always
    }

    fn imports(&self) -> Vec<Import> {
        vec![Import::new("pulp_call", pulp_call)]
    }
}

/// What one try at an instance of the target gave.
pub(crate) enum Attempt {
    /// In a step or another call, or restarting: try again.
    Busy,
    /// Stopped, or failed for good.
    Stopped,
    /// Ran: the answer, or the caller's status.
    Done(Result<Vec<u8>, Error>),
}

/// An instance a call can run on (a runtime task).
pub(crate) trait Callee: Send + Sync {
    /// Runs `pulp_on_call(name, args)` within `limit_ms` if the instance is free now.
    /// `limit_ms` below the target's own `call_timeout_ms` is the caller's deadline:
    /// an overrun of it is not the target's failure.
    fn try_call(&self, name: &str, args: &[u8], limit_ms: u64, max_answer: usize) -> Attempt;
}

/// Most plugins in one call chain (the caller's included): each callee's wasm may
/// take its own 512 KiB of the thread's native stack.
pub(crate) const MAX_DEPTH: usize = 8;

/// One plugin the runtime runs, for its callers.
struct Entry {
    links: Links,
    instances: Vec<Weak<dyn Callee>>,
    /// Calls waiting for or running in the plugin.
    callers: Arc<AtomicUsize>,
    max_callers: usize,
    call_timeout_ms: u64,
}

/// The plugins of one host that calls can reach, by name: a service in the host's
/// `Shared`, kept by the runtime as plugins start, reload and stop.
#[derive(Default)]
pub(crate) struct Directory {
    plugins: RwLock<HashMap<String, Entry>>,
}

impl Directory {
    /// Adds an instance of the plugin `m` describes (its links and limits replace
    /// the earlier ones: a reload may change them).
    pub(crate) fn add(&self, m: &crate::Manifest, instance: Weak<dyn Callee>) {
        let mut plugins = self.plugins.write().unwrap_or_else(|p| p.into_inner());
        let e = plugins
            .entry(m.name.clone())
            .or_insert_with(|| Entry::new(m));
        e.instances.retain(|i| i.strong_count() > 0);
        e.instances.push(instance);
        e.update(m);
    }

    /// A plugin being loaded: its links count from now (its `pulp_init` may call
    /// plugins it depends on), unless it is known already (a reload's candidate
    /// changes them only when it takes over, [`Directory::update`]).
    pub(crate) fn declare(&self, m: &crate::Manifest) {
        let mut plugins = self.plugins.write().unwrap_or_else(|p| p.into_inner());
        plugins
            .entry(m.name.clone())
            .or_insert_with(|| Entry::new(m));
    }

    /// A reload's new manifest: its links and limits.
    pub(crate) fn update(&self, m: &crate::Manifest) {
        let mut plugins = self.plugins.write().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = plugins.get_mut(&m.name) {
            e.update(m);
        }
    }

    /// Forgets plugin `name` (before it starts again).
    pub(crate) fn remove(&self, name: &str) {
        let mut plugins = self.plugins.write().unwrap_or_else(|p| p.into_inner());
        plugins.remove(name);
    }
}

impl Entry {
    fn new(m: &crate::Manifest) -> Entry {
        let mut e = Entry {
            links: Links::default(),
            instances: Vec::new(),
            callers: Arc::default(),
            max_callers: 0,
            call_timeout_ms: 0,
        };
        e.update(m);
        e
    }

    fn update(&mut self, m: &crate::Manifest) {
        self.links = Links::of(m);
        self.max_callers = m.limits.max_callers as usize;
        self.call_timeout_ms = m.limits.call_timeout_ms;
    }
}

thread_local! {
    /// The plugins of the calls in progress on this thread, outermost first, and the
    /// deadline of the outermost.
    static CHAIN: RefCell<(Vec<String>, Option<Instant>)> = const { RefCell::new((Vec::new(), None)) };
}

/// A place in this thread's call chain, left when dropped.
struct InChain {
    /// The chain was empty: this call's caller was pushed too.
    root: bool,
}

impl Drop for InChain {
    fn drop(&mut self) {
        CHAIN.with(|c| {
            let mut c = c.borrow_mut();
            c.0.pop();
            if self.root {
                c.0.clear();
                c.1 = None;
            }
        });
    }
}

/// Why a call cannot join this thread's chain.
enum Refused {
    /// The target is in it already (the chain, with the target at its end).
    Cycle(Vec<String>),
    /// It is [`MAX_DEPTH`] long.
    Deeper(Vec<String>),
}
use Refused::{Cycle, Deeper};

/// Enters `target` into this thread's chain below `caller`: the chain's deadline.
fn enter(caller: &str, target: &str, deadline: Instant) -> Result<(InChain, Instant), Refused> {
    CHAIN.with(|c| {
        let mut c = c.borrow_mut();
        let root = c.0.is_empty();
        if root {
            c.0.push(caller.to_string());
            c.1 = Some(deadline);
        }
        if c.0.iter().any(|p| p == target) {
            let mut chain = c.0.clone();
            chain.push(target.to_string());
            if root {
                c.0.clear();
                c.1 = None;
            }
            return Err(Cycle(chain));
        }
        if c.0.len() >= MAX_DEPTH {
            let chain = c.0.clone();
            if root {
                c.0.clear();
                c.1 = None;
            }
            return Err(Deeper(chain));
        }
        c.0.push(target.to_string());
        let deadline = c.1.map_or(deadline, |d| d.min(deadline));
        Ok((InChain { root }, deadline))
    })
}

/// This instance's `pulp_plugin_calls_total` counters by (target, status), looked
/// up in the registry once each.
static COUNTERS: pulp_ext::Slot<Vec<(String, i32, Counter)>> =
    pulp_ext::Slot::new("the calls metric counters");

fn pulp_call(
    c: &mut Caller<'_, State>,
    target: Str,
    name: Str,
    args: Bytes,
    out: OutBytes,
) -> Result<(), Error> {
    // What is left of the caller's own deadline (its call is blocked here, so its
    // epoch ticks do not count down meanwhile).
    let (left, watch) = match c.data_mut().peek(&CLOCK) {
        Some(k) => (k.time_left(), Some(k.watch())),
        None => (Duration::from_secs(10), None),
    };
    let aborted = || watch.as_ref().is_some_and(|w| w.aborted());
    let started = Instant::now();
    let mut resolved = None;
    // The caller's memory is only read until the answer is written: the inputs are
    // borrowed, not copied (the call runs in another store).
    let (result, status) = {
        let (target, name) = (target.read(c)?, name.read(c)?);
        if target.is_empty() || name.is_empty() {
            return Err(Status::Empty.err("pulp_call needs a target plugin and a function name"));
        }
        let args = args.read(c)?;
        let state = c.data();
        let caller = state.plugin().name();
        let result = call(
            state.plugin().shared(),
            state.plugin().budget(),
            &aborted,
            caller,
            (target, &mut resolved),
            name,
            args,
            started + left,
            state.max_message(),
        );
        let status = match &result {
            Ok(_) => 0,
            Err(e) => e.status().map_or(-1, Status::code),
        };
        tracing::debug!(
            target: "pulp::calls",
            caller,
            target = pulp_ext::log_text(target.as_bytes()).as_ref(),
            function = pulp_ext::log_text(name.as_bytes()).as_ref(),
            micros = started.elapsed().as_micros() as u64,
            status,
            "pulp_call"
        );
        (result, status)
    };
    // The time spent here counts against the caller's own deadline, as if its
    // wasm had run it.
    if let Some(k) = c.data_mut().peek(&CLOCK) {
        k.charge(started.elapsed());
    }
    let written = result.and_then(|answer| out.write(c, &answer));
    if pulp_ext::metrics::enabled() {
        let status = match &written {
            Ok(()) => 0,
            Err(e) => e.status().map_or(status, Status::code),
        };
        count(c.data_mut(), resolved, status);
    }
    written
}

/// Counts a call in `pulp_plugin_calls_total`, labelled with the plugin the target
/// resolved to (`-` when none): never the guest's own string, so a caller cannot
/// make series without end by calling made-up names.
fn count(state: &mut State, target: Option<String>, status: i32) {
    let target = target.unwrap_or_else(|| "-".to_string());
    if state.peek(&COUNTERS).is_none() {
        state.put(&COUNTERS, Vec::new());
    }
    let caller = state.plugin().name().to_string();
    let Some(counters) = state.peek(&COUNTERS) else {
        return;
    };
    if let Some((.., c)) = counters
        .iter()
        .find(|(t, s, _)| *t == target && *s == status)
    {
        c.inc();
        return;
    }
    let c =
        pulp_ext::metrics::metrics()
            .calls
            .get_or_create_owned(&pulp_ext::metrics::CallLabels {
                caller,
                target: target.clone(),
                status,
            });
    c.inc();
    counters.push((target, status, c));
}

/// A call from plugin `caller` to function `name` of plugin `target` (or of the
/// one plugin that provides `target`), before `deadline`.
#[allow(clippy::too_many_arguments)]
fn call(
    shared: &pulp_ext::Shared,
    caller_budget: &pulp_ext::Budget,
    aborted: &dyn Fn() -> bool,
    caller: &str,
    (target, resolved): (&str, &mut Option<String>),
    name: &str,
    args: &[u8],
    deadline: Instant,
    max_answer: usize,
) -> Result<Vec<u8>, Error> {
    let Some(dir) = shared.get::<Directory>() else {
        return Err(Status::Unavailable.err(format!(
            "pulp_call {target}: this host runs no plugin that can be called"
        )));
    };
    // Under the read lock: who the target is, and whether the caller may call it.
    let (target, instances, callers, max_callers, timeout_ms) = {
        let plugins = dir.plugins.read().unwrap_or_else(|p| p.into_inner());
        static NONE: std::sync::LazyLock<Links> = std::sync::LazyLock::new(Links::default);
        let from = plugins.get(caller).map_or(&*NONE, |e| &e.links);
        let resolved = match plugins.get(target) {
            Some(e) => Some((target, e)),
            None => {
                let mut providers = plugins
                    .iter()
                    .filter(|(_, e)| e.links.provides.iter().any(|p| p == target));
                match (providers.next(), providers.next()) {
                    (Some((n, e)), None) => Some((n.as_str(), e)),
                    (Some((a, _)), Some((b, _))) => {
                        return Err(Status::Invalid.err(format!(
                            "pulp_call {target}: plugins \"{a}\" and \"{b}\" both provide it; call one by name"
                        )))
                    }
                    _ => None,
                }
            }
        };
        let Some((name_of_target, e)) = resolved else {
            if from.consumes.iter().any(|c| c == target)
                || from.depends_on.iter().any(|d| d == target)
            {
                return Err(Status::Unavailable.err(format!(
                    "pulp_call {target}: no plugin of that name or that provides it is running"
                )));
            }
            return Err(Status::Denied.err(format!(
                "plugin \"{caller}\" may not call \"{target}\": its manifest neither consumes nor depends_on it"
            )));
        };
        if !from.allows(&e.links) {
            return Err(Status::Denied.err(format!(
                "plugin \"{caller}\" may not call plugin \"{name_of_target}\": list it in depends_on, or in consumes it or a name it provides{}",
                if e.links.provides.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", e.links.provides.join(", "))
                }
            )));
        }
        (
            name_of_target.to_string(),
            e.instances.clone(),
            e.callers.clone(),
            e.max_callers,
            e.call_timeout_ms,
        )
    };
    *resolved = Some(target.clone());
    let (_place, deadline) = enter(caller, &target, deadline).map_err(|r| match r {
        Cycle(chain) => Status::Invalid.err(format!(
            "pulp_call {target}.{name}: a call cycle, {}: plugin \"{target}\" is already in this call chain and could never take it",
            chain.join(" → ")
        )),
        Deeper(chain) => Status::TooLarge.err(format!(
            "pulp_call {target}.{name}: the call chain {} is {MAX_DEPTH} plugins deep, the most",
            chain.join(" → ")
        )),
    })?;
    if callers.fetch_add(1, Ordering::SeqCst) >= max_callers {
        callers.fetch_sub(1, Ordering::SeqCst);
        return Err(Status::TooLarge.err(format!(
            "pulp_call {target}.{name}: plugin \"{target}\" already has {max_callers} callers, its [limits] max_callers"
        )));
    }
    let _counted = Decrement(&callers);
    let instances: Vec<Arc<dyn Callee>> = instances.iter().filter_map(Weak::upgrade).collect();
    if instances.is_empty() {
        return Err(Status::Unavailable.err(format!(
            "pulp_call {target}: plugin \"{target}\" is not running"
        )));
    }
    // The args' copy into the target is the caller's doing: charged to the caller.
    let _charge = caller_budget.charge(args.len())?;
    let mut pause = Duration::from_micros(20);
    let mut looks = 0u32;
    let mut _waiting: Option<Waiting> = None;
    loop {
        let now = Instant::now();
        if aborted() {
            return Err(Status::Timeout.err(format!(
                "pulp_call {target}.{name}: the caller was interrupted (the host or pulp ctl is stopping it)"
            )));
        }
        if now >= deadline {
            return Err(Status::Timeout.err(format!(
                "pulp_call {target}.{name}: the caller's deadline passed while plugin \"{target}\" was busy"
            )));
        }
        let limit_ms = ((deadline - now).as_millis() as u64).clamp(1, timeout_ms.max(1));
        let mut stopped = 0;
        for i in &instances {
            match i.try_call(name, args, limit_ms, max_answer) {
                Attempt::Done(r) => return r,
                Attempt::Stopped => stopped += 1,
                Attempt::Busy => {}
            }
        }
        if stopped == instances.len() {
            return Err(Status::Unavailable.err(format!(
                "pulp_call {target}.{name}: plugin \"{target}\" is not running (stopped, or failed for good)"
            )));
        }
        // Busy. Once: is the plugin holding it waiting, through others, for one of
        // this chain's? Then no deadline would help.
        if looks == 0 {
            _waiting = Some(Waiting::enter(&target, instances.len() == 1).map_err(|cycle| {
                Status::Invalid.err(format!(
                    "pulp_call {target}.{name}: a call cycle across threads, {}: each waits for the other's instance",
                    cycle.join(" → ")
                ))
            })?);
        }
        // A few quick looks, then sleeps that double up to a millisecond.
        looks += 1;
        if looks < 16 {
            std::thread::yield_now();
        } else {
            std::thread::sleep(pause.min(deadline.saturating_duration_since(Instant::now())));
            pause = (pause * 2).min(Duration::from_millis(1));
        }
    }
}

/// Threads whose call waits for a busy plugin: their call chain (the plugins whose
/// instances they hold) and the plugin they wait for.
static WAITS: std::sync::Mutex<Vec<(std::thread::ThreadId, Vec<String>, String)>> =
    std::sync::Mutex::new(Vec::new());

/// This thread's entry in [`WAITS`] while its call waits; removed when dropped.
struct Waiting;

impl Waiting {
    /// Registers this thread as waiting for `target`, unless that closes a cycle
    /// across threads: a thread that holds `target` (has it in its chain) waits for
    /// a plugin that a thread holding ... waits for one of this thread's chain. Then
    /// the cycle, for the error. Only a `single` instance target can be held whole.
    fn enter(target: &str, single: bool) -> Result<Waiting, Vec<String>> {
        // The chain ends with `target` itself (entered before the wait): the
        // plugins this thread holds are the ones before it.
        let mut mine = CHAIN.with(|c| c.borrow().0.clone());
        mine.pop();
        let me = std::thread::current().id();
        let mut waits = WAITS.lock().unwrap_or_else(|p| p.into_inner());
        if single {
            let mut path = mine.clone();
            let mut want = target.to_string();
            // Each step follows a thread that holds `want` to what it waits for.
            for _ in 0..waits.len() {
                let Some((_, _, next)) = waits
                    .iter()
                    .find(|(t, chain, _)| *t != me && chain.contains(&want))
                else {
                    break;
                };
                path.push(want.clone());
                if mine.contains(next) {
                    path.push(next.clone());
                    return Err(path);
                }
                want = next.clone();
            }
        }
        waits.push((me, mine, target.to_string()));
        Ok(Waiting)
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let me = std::thread::current().id();
        let mut waits = WAITS.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = waits.iter().position(|(t, ..)| *t == me) {
            waits.swap_remove(i);
        }
    }
}

struct Decrement<'a>(&'a AtomicUsize);

impl Drop for Decrement<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
