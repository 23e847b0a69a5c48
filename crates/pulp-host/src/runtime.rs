//! Runs plugins on a small pool of workers (`sched.rs`): events delivered as they
//! arrive, each plugin's calls one at a time and in order, idle ticks on one timer
//! heap that back off, and supervision that replaces a failed instance.
//!
//! Each plugin instance is a [`Task`]: a state machine (idle, queued, running,
//! running-and-woken) that makes sure it is queued once and runs on one worker at a
//! time, whoever wakes it: a post to its event queues (through their
//! [`Waker`](pulp_ext::host::Waker)), its tick timer, its restart timer, or the stop.
//! A run takes events until none is left or its slice (16 steps or 2 ms) is over, then
//! goes to the back of the queue: a plugin flooded with events cannot hold a worker.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use pulp_ext::host::{HostEvents, Next, Waker};
use pulp_ext::metrics::prometheus_client::metrics::{counter::Counter, gauge::Gauge};
use pulp_ext::metrics::{enabled as metrics_enabled, metrics, Metrics, StepTimes};
use pulp_ext::Events;

use crate::calls::{Attempt, Callee, Directory};
use crate::plugin::{CallError, Interrupter, Plugin};
use crate::sched::{Job, Sched};
use pulp_ext::Status as Abi;

/// How the runtime paces and supervises plugins.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// Worker threads that run plugins' calls (0: one per core).
    pub workers: usize,
    /// Most worker threads, counting those started while every worker is in a long
    /// call (see ARCHITECTURE.md "Scheduling").
    pub max_workers: usize,
    /// The idle tick interval while the plugin is busy (a manifest's `[limits]
    /// tick_ms` overrides it; 0 there means no idle ticks).
    pub tick: Duration,
    /// The ceiling the idle interval doubles up to once the plugin is idle (a
    /// manifest's `[limits] max_tick_ms` overrides it).
    pub max_tick: Duration,
    /// First wait before a failed plugin is restarted; doubles on each failure.
    pub restart_backoff: Duration,
    /// A plugin that fails this many times within `failure_window` is stopped: that
    /// failure is not followed by a restart (5: four restarts, stopped on the fifth).
    pub max_failures: usize,
    /// See `max_failures`.
    pub failure_window: Duration,
    /// How long a stopping plugin may take to finish its step and shut down
    /// before its call is interrupted.
    pub stop_grace: Duration,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            workers: 0,
            max_workers: 64,
            tick: Duration::from_millis(1),
            max_tick: Duration::from_secs(1),
            restart_backoff: Duration::from_millis(100),
            max_failures: 5,
            failure_window: Duration::from_secs(30),
            stop_grace: Duration::from_secs(5),
        }
    }
}

/// Where a running plugin stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Health {
    /// Stepping.
    Running,
    /// Its instance failed; a fresh one is being made.
    Restarting,
    /// Stopped for good after failing too often (the reason is given).
    Failed(String),
    /// Stopped by [`Runtime::stop`].
    Stopped,
}

/// What a plugin left behind when it stopped.
#[derive(Debug)]
pub struct Report {
    /// The plugin's name.
    pub name: String,
    /// `probe_last_call`, if exported.
    pub probe_last_call: Option<u64>,
    /// `probe_config_marker`, if exported.
    pub probe_config_marker: Option<i64>,
    /// Instances replaced after failures.
    pub restarts: u32,
    /// Why the plugin did not shut down cleanly, if it did not.
    pub error: Option<String>,
}

/// Shared view of one running plugin instance (a pool has one per instance).
#[derive(Clone)]
pub struct Handle(Arc<HandleInner>);

struct HandleInner {
    name: String,
    events: Events,
    status: Mutex<Status>,
    /// Steps taken, by every version of this instance.
    steps: AtomicU64,
    /// The instance's linear memory after its last run, in bytes.
    memory: AtomicU64,
}

/// What changes as the instance runs, restarts and is reloaded.
struct Status {
    health: Health,
    restarts: u32,
    /// The manifest's `version` of the version running.
    version: String,
    /// When the version running took over.
    since: Instant,
    interrupter: Interrupter,
}

impl Handle {
    fn new(plugin: &Plugin) -> Handle {
        Handle(Arc::new(HandleInner {
            name: plugin.name().to_string(),
            events: plugin.view().events().clone(),
            status: Mutex::new(Status {
                health: Health::Running,
                restarts: 0,
                version: plugin.manifest().version.clone(),
                since: Instant::now(),
                interrupter: plugin.interrupter(),
            }),
            steps: AtomicU64::new(0),
            memory: AtomicU64::new(plugin.memory_bytes() as u64),
        }))
    }

    fn status(&self) -> MutexGuard<'_, Status> {
        lock(&self.0.status)
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// Its event queues.
    pub fn events(&self) -> &Events {
        &self.0.events
    }

    /// Where it stands.
    pub fn health(&self) -> Health {
        self.status().health.clone()
    }

    /// How many times its instance was replaced after a failure.
    pub fn restarts(&self) -> u32 {
        self.status().restarts
    }

    /// The manifest `version` of the version running (changed by a reload).
    pub fn version(&self) -> String {
        self.status().version.clone()
    }

    /// How long the version running has run (a reload starts it again).
    pub fn uptime(&self) -> Duration {
        self.status().since.elapsed()
    }

    /// Steps taken so far, across restarts and reloads.
    pub fn steps(&self) -> u64 {
        self.0.steps.load(Ordering::Relaxed)
    }

    /// The instance's linear memory after its last run, in bytes.
    pub fn guest_memory(&self) -> u64 {
        self.0.memory.load(Ordering::Relaxed)
    }

    fn set(&self, h: Health) {
        self.status().health = h;
    }

    fn interrupt(&self) {
        self.status().interrupter.interrupt();
    }
}

/// The handles of every plugin instance the runtime runs, kept current as plugins
/// are started, stopped and reloaded: what the admin listener and `pulp ctl status`
/// read. Cheap to clone.
#[derive(Clone, Default)]
pub struct Roster(Arc<Mutex<Vec<Handle>>>);

impl Roster {
    /// The handles now, in start order.
    pub fn handles(&self) -> Vec<Handle> {
        lock(&self.0).clone()
    }
}

/// How long a plugin counts as busy after its last event: its idle ticks stay at the
/// shortest interval meanwhile, then double on each tick up to the ceiling.
const BUSY: Duration = Duration::from_millis(100);

/// Most steps, and most time, of one run before the plugin goes to the back of the queue.
const SLICE_STEPS: u32 = 16;
const SLICE_TIME: Duration = Duration::from_millis(2);

/// Plugins running on a pool of worker threads.
pub struct Runtime {
    config: RuntimeConfig,
    sched: Option<Arc<Sched>>,
    tasks: Vec<Arc<Task>>,
    ended: Arc<Ended>,
    roster: Roster,
}

/// How many tasks have ended, for [`Runtime::wait_all_ended`] and [`Runtime::stop`].
#[derive(Default)]
struct Ended {
    count: Mutex<usize>,
    changed: Condvar,
}

impl Ended {
    fn add(&self) {
        *lock(&self.count) += 1;
        self.changed.notify_all();
    }

    /// Waits until `n` have ended or `timeout`; true when they have.
    fn wait(&self, n: usize, timeout: Duration) -> bool {
        let g = lock(&self.count);
        let (g, _) = self
            .changed
            .wait_timeout_while(g, timeout, |ended| *ended < n)
            .unwrap_or_else(|p| p.into_inner());
        *g >= n
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Runtime {
    /// An empty runtime; its workers start with the first plugin.
    pub fn new(config: RuntimeConfig) -> Runtime {
        Runtime {
            config,
            sched: None,
            tasks: Vec::new(),
            ended: Arc::default(),
            roster: Roster::default(),
        }
    }

    fn sched(&mut self) -> std::io::Result<Arc<Sched>> {
        if let Some(s) = &self.sched {
            return Ok(s.clone());
        }
        let workers = match self.config.workers {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        };
        let s = Sched::start(workers, self.config.max_workers)?;
        self.sched = Some(s.clone());
        Ok(s)
    }

    /// Worker threads running now (more than configured while some are in long calls).
    pub fn workers(&self) -> usize {
        self.sched.as_ref().map_or(0, |s| s.workers())
    }

    /// Starts stepping an initialised plugin: it runs on the workers whenever it has
    /// an event or an idle tick due.
    pub fn spawn(&mut self, plugin: Plugin) -> std::io::Result<Handle> {
        let sched = self.sched()?;
        let handle = Handle::new(&plugin);
        let (tick, max_tick) = ticks(&self.config, &plugin);
        let group = group(handle.events())?;
        let now = Instant::now();
        let shared = plugin.view().shared().clone();
        let task = Arc::new_cyclic(|me: &Weak<Task>| Task {
            sched,
            shared,
            me: me.clone(),
            handle: handle.clone(),
            state: AtomicU8::new(QUEUED),
            tick_token: AtomicU64::new(0),
            ended: self.ended.clone(),
            life: Mutex::new(Life {
                plugin: Some(plugin),
                config: self.config.clone(),
                tick: (tick > Duration::ZERO).then_some((tick, max_tick)),
                interval: tick,
                // Idle from the start: ticks back off at once (no start-up burst).
                last_event: now - BUSY,
                next_tick: None,
                failures: Vec::new(),
                restart: None,
                report: None,
                metrics: PluginMetrics::new(handle.name()),
            }),
        });
        group.add(&task);
        if let Ok(dir) = task_shared(&task).service(|| Ok::<_, String>(Directory::default())) {
            let callee: Arc<dyn Callee> = task.clone();
            dir.add(
                &lock(&task.life)
                    .plugin
                    .as_ref()
                    .expect("just made")
                    .manifest()
                    .clone(),
                Arc::downgrade(&callee),
            );
        }
        self.tasks.push(task.clone());
        lock(&self.roster.0).push(handle.clone());
        task.sched.push(task.clone());
        Ok(handle)
    }

    /// The running plugins.
    pub fn handles(&self) -> impl Iterator<Item = &Handle> {
        self.tasks.iter().map(|t| &t.handle)
    }

    /// The plugins' handles, kept current as plugins start, stop and are reloaded.
    pub fn roster(&self) -> Roster {
        self.roster.clone()
    }

    /// Whether every plugin has failed for good (none stopped by hand, none running).
    pub fn all_failed(&self) -> bool {
        !self.tasks.is_empty()
            && self
                .tasks
                .iter()
                .all(|t| matches!(t.handle.health(), Health::Failed(_)))
    }

    fn tasks_of<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Arc<Task>> + 'a {
        self.tasks.iter().filter(move |t| t.handle.name() == name)
    }

    /// Instances of plugin `name` that have not ended (running, restarting or in a
    /// call).
    pub fn running(&self, name: &str) -> usize {
        self.tasks_of(name).filter(|t| !t.has_ended()).count()
    }

    /// What the next version of plugin `name` shares with the one running
    /// ([`Plugin::load_successor`]); `None` when it is not running (stopped, failed
    /// for good, or unknown).
    pub fn lineage(&self, name: &str) -> Option<crate::Lineage> {
        self.tasks_of(name)
            .find_map(|t| lock(&t.life).plugin.as_ref().map(Plugin::lineage))
    }

    /// A live reload's takeover: `new`, initialised successors of plugin `name`
    /// (one per instance), replace its running instances between two steps. Queued
    /// events stay queued for the new version; the routes of the old version stop
    /// serving in the same moment the new version's start. Returns the old
    /// instances, for the caller to shut down, or gives `new` back when the plugin is
    /// not running with as many instances.
    pub fn replace(&self, name: &str, new: Vec<Plugin>) -> Result<Vec<Plugin>, Vec<Plugin>> {
        let tasks: Vec<&Arc<Task>> = self.tasks_of(name).collect();
        // Every instance's life at once: no step of the old version runs after the
        // first of the new one. Workers hold one life at a time, so no deadlock.
        let mut lives: Vec<MutexGuard<'_, Life>> = tasks.iter().map(|t| lock(&t.life)).collect();
        if lives.len() != new.len() || lives.iter().any(|l| l.plugin.is_none()) {
            return Err(new);
        }
        let mut old = Vec::new();
        for ((task, life), plugin) in tasks.iter().zip(lives.iter_mut()).zip(new) {
            plugin.set_standing(pulp_ext::Standing::Current);
            let (tick, max_tick) = ticks(&life.config, &plugin);
            life.tick = (tick > Duration::ZERO).then_some((tick, max_tick));
            life.interval = tick;
            life.next_tick = None;
            life.failures.clear();
            life.restart = None;
            let mut st = task.handle.status();
            st.health = Health::Running;
            st.version = plugin.manifest().version.clone();
            st.since = Instant::now();
            st.interrupter = plugin.interrupter();
            drop(st);
            old.extend(life.plugin.replace(plugin));
        }
        for p in &old {
            p.set_standing(pulp_ext::Standing::Retired);
        }
        if let Some((t, l)) = tasks.first().zip(lives.first()) {
            if let (Some(dir), Some(p)) = (task_shared(t).get::<Directory>(), &l.plugin) {
                dir.update(p.manifest());
            }
        }
        drop(lives);
        for t in tasks {
            t.wake();
        }
        Ok(old)
    }

    /// Stops plugin `name` alone, as [`Runtime::stop`] stops all: its queues close
    /// (its routes and connections go), `pulp_shutdown` runs within the grace period.
    /// Its instances stay listed as stopped until [`Runtime::forget`]. False when no
    /// instance of it was running.
    pub fn stop_plugin(&self, name: &str) -> bool {
        let tasks: Vec<&Arc<Task>> = self.tasks_of(name).collect();
        let running = tasks.iter().filter(|t| !t.has_ended()).count();
        if running == 0 {
            return false;
        }
        for t in &tasks {
            t.handle.events().close();
        }
        let live = || tasks.iter().any(|t| !t.has_ended());
        // Woken as each task ends (`Ended::add`), not polled.
        let wait = |d: Duration| {
            let g = lock(&self.ended.count);
            let _ = self.ended.changed.wait_timeout_while(g, d, |_| live());
        };
        wait(self.config.stop_grace);
        if live() {
            tracing::warn!(
                plugin = name,
                "still in a call after the grace period; interrupting it"
            );
            // The step, then `pulp_shutdown`, may each be stuck.
            let until = Instant::now() + Duration::from_secs(1);
            while live() && Instant::now() < until {
                tasks.iter().for_each(|t| t.handle.interrupt());
                wait(Duration::from_millis(20));
            }
        }
        true
    }

    /// Drops the instances of plugin `name` that have ended (stopped or failed for
    /// good), before it is started again. False when one is still running.
    pub fn forget(&mut self, name: &str) -> bool {
        if self.tasks_of(name).any(|t| !t.has_ended()) {
            return false;
        }
        if let Some(dir) = self
            .tasks_of(name)
            .next()
            .and_then(|t| task_shared(t).get::<Directory>())
        {
            dir.remove(name);
        }
        let before = self.tasks.len();
        self.tasks.retain(|t| t.handle.name() != name);
        let gone = before - self.tasks.len();
        let mut ended = lock(&self.ended.count);
        *ended = ended.saturating_sub(gone);
        drop(ended);
        lock(&self.roster.0).retain(|h| h.name() != name);
        true
    }

    /// Waits until every plugin has ended by itself (failed for good), or `timeout`.
    /// True when all have ended.
    pub fn wait_all_ended(&self, timeout: Duration) -> bool {
        self.ended.wait(self.tasks.len(), timeout)
    }

    /// Stops every plugin: no new steps, `pulp_shutdown`, probes. A plugin still in
    /// a call after the grace period is interrupted; one that does not return even
    /// then (blocked in a host call) is left behind and reported.
    pub fn stop(self) -> Vec<Report> {
        // Plugins stop in the reverse of their start order, each within what is left
        // of the one grace period: a plugin's pulp_shutdown may still call the
        // plugins it depends on, which started before it.
        let until = Instant::now() + self.config.stop_grace;
        let mut names: Vec<&str> = Vec::new();
        for t in &self.tasks {
            if !names.contains(&t.handle.name()) {
                names.push(t.handle.name());
            }
        }
        for name in names.iter().rev() {
            let tasks: Vec<&Arc<Task>> = self.tasks_of(name).collect();
            for t in &tasks {
                t.handle.events().close();
            }
            let g = lock(&self.ended.count);
            let left = until.saturating_duration_since(Instant::now());
            let _ = self
                .ended
                .changed
                .wait_timeout_while(g, left, |_| tasks.iter().any(|t| !t.has_ended()));
        }
        let n = self.tasks.len();
        if !self
            .ended
            .wait(n, until.saturating_duration_since(Instant::now()))
        {
            let stuck: Vec<_> = self.tasks.iter().filter(|t| !t.has_ended()).collect();
            for t in &stuck {
                tracing::warn!(
                    plugin = t.handle.name(),
                    "still in a call after the grace period; interrupting it"
                );
            }
            // Interrupt again and again: the step, then `pulp_shutdown`, may each be stuck.
            let until = Instant::now() + Duration::from_secs(1);
            while Instant::now() < until && !self.ended.wait(n, Duration::from_millis(20)) {
                for t in &stuck {
                    t.handle.interrupt();
                }
            }
        }
        if let Some(s) = &self.sched {
            s.stop(Duration::from_millis(100));
        }
        self.tasks
            .iter()
            .map(|t| {
                let report = t.life.try_lock().ok().and_then(|mut l| l.report.take());
                report.unwrap_or_else(|| Report {
                    name: t.handle.name().to_string(),
                    probe_last_call: None,
                    probe_config_marker: None,
                    restarts: t.handle.restarts(),
                    error: Some("blocked in a host call; abandoned".into()),
                })
            })
            .collect()
    }
}

const IDLE: u8 = 0;
const QUEUED: u8 = 1;
const RUNNING: u8 = 2;
/// Running, and woken meanwhile: queue it again when this run ends.
const WOKEN: u8 = 3;

/// One plugin instance on the scheduler.
struct Task {
    sched: Arc<Sched>,
    /// The host's shared services (the call directory among them).
    shared: pulp_ext::Shared,
    me: Weak<Task>,
    handle: Handle,
    state: AtomicU8,
    /// The token of the tick timer that counts; older timers are ignored.
    tick_token: AtomicU64,
    ended: Arc<Ended>,
    /// Locked by the worker running the task (and by `stop` for the report).
    life: Mutex<Life>,
}

/// What a task knows between runs.
struct Life {
    /// `None` once the plugin is closed.
    plugin: Option<Plugin>,
    config: RuntimeConfig,
    /// Shortest and longest idle tick interval; `None`: no idle ticks.
    tick: Option<(Duration, Duration)>,
    interval: Duration,
    last_event: Instant,
    next_tick: Option<Instant>,
    failures: Vec<Instant>,
    /// A restart waiting for its back-off, and the failure that asked for it.
    restart: Option<(Instant, String)>,
    report: Option<Report>,
    metrics: PluginMetrics,
}

/// This plugin's metrics, looked up once (each an `Arc`; updating one is atomic).
struct PluginMetrics {
    step_seconds: StepTimes,
    traps: Counter,
    restarts: Counter,
    guest_memory: Gauge,
}

impl PluginMetrics {
    /// Counts a replaced instance: in the handle (`Handle::restarts`) and the metric.
    fn restarted(&self, h: &Handle) {
        h.status().restarts += 1;
        self.restarts.inc();
    }

    fn new(plugin: &str) -> PluginMetrics {
        let m = metrics();
        let l = Metrics::plugin(plugin);
        PluginMetrics {
            step_seconds: m.step_seconds.get_or_create_owned(&l),
            traps: m.traps.get_or_create_owned(&l),
            restarts: m.restarts.get_or_create_owned(&l),
            guest_memory: m.guest_memory_bytes.get_or_create_owned(&l),
        }
    }
}

impl Task {
    /// New work: queue the task unless it is queued already; a running task is
    /// queued again when its run ends. True when this call changed its state.
    fn wake(&self) -> bool {
        let mut s = self.state.load(Ordering::SeqCst);
        loop {
            let to = match s {
                IDLE => QUEUED,
                RUNNING => WOKEN,
                _ => return false,
            };
            match self
                .state
                .compare_exchange(s, to, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => {
                    if to == QUEUED {
                        if let Some(me) = self.me.upgrade() {
                            self.sched.push(me);
                        }
                    }
                    return true;
                }
                Err(now) => s = now,
            }
        }
    }

    fn is_idle(&self) -> bool {
        self.state.load(Ordering::SeqCst) == IDLE
    }

    fn has_ended(&self) -> bool {
        self.life.try_lock().is_ok_and(|l| l.plugin.is_none())
    }

    /// Sets a timer for an idle tick at `at`; earlier ones stop counting.
    fn arm_tick(&self, at: Instant) {
        let token = self.tick_token.fetch_add(1, Ordering::SeqCst) + 1;
        let me: Weak<dyn Job> = self.me.clone();
        self.sched.at(at, token, me);
    }

    /// Sets a timer that wakes the task at `at` whatever it is for (restart back-off).
    fn wake_at(&self, at: Instant) {
        let me: Weak<dyn Job> = self.me.clone();
        self.sched.at(at, 0, me);
    }
}

impl Job for Task {
    fn run(self: Arc<Self>) {
        self.state.store(RUNNING, Ordering::SeqCst);
        let again = {
            let mut life = lock(&self.life);
            let had = life.plugin.is_some();
            let again = life.run(&self);
            if had && life.plugin.is_none() {
                drop(life);
                self.ended.add();
            }
            again
        };
        if again
            || self
                .state
                .compare_exchange(RUNNING, IDLE, Ordering::SeqCst, Ordering::SeqCst)
                .is_err()
        {
            self.state.store(QUEUED, Ordering::SeqCst);
            self.sched.push(self.clone());
        }
    }

    fn fire(self: Arc<Self>, token: u64) {
        if token == 0 || token == self.tick_token.load(Ordering::SeqCst) {
            self.wake();
        }
    }
}

impl Life {
    /// One run: a pending restart, then events until none is left or the slice is
    /// over, then an idle tick if one is due. True when it should run again at once.
    fn run(&mut self, task: &Task) -> bool {
        let Some(plugin) = self.plugin.as_mut() else {
            return false;
        };
        let h = &task.handle;
        let name = h.name();
        if let Some((at, err)) = self.restart.take() {
            if !h.events().is_closed() {
                if Instant::now() < at {
                    self.restart = Some((at, err)); // woken early; its timer still runs
                    return false;
                }
                match plugin.restart() {
                    Ok(()) => {
                        self.metrics.restarted(h);
                        h.set(Health::Running);
                    }
                    Err(e) => return self.failed(task, e.to_string()),
                }
            }
        }
        let start = Instant::now();
        let mut last = start;
        let mut steps = 0;
        loop {
            let plugin = self.plugin.as_mut().expect("checked above");
            let event = match h.events().try_next() {
                Next::Closed => {
                    self.finish(h, None);
                    return false;
                }
                Next::Event(e) => {
                    self.last_event = Instant::now();
                    Some(e)
                }
                Next::Idle => {
                    let due = self.next_tick.is_some_and(|t| Instant::now() >= t);
                    if !due {
                        break;
                    }
                    None
                }
            };
            let idle = event.is_none();
            match plugin.step_event(event.as_ref()) {
                Ok(_) => {}
                // The event did not fit the guest: its sender is told (413, close 1009);
                // not the plugin's failure, so it does not count towards stopping it.
                Err(CallError::Refused {
                    message, trapped, ..
                }) => {
                    tracing::warn!(plugin = name, "an event was refused: {message}");
                    if let Some(e) = &event {
                        e.refuse(&message);
                    }
                    if trapped {
                        self.metrics.traps.inc();
                        if let Err(e) = plugin.restart() {
                            return self.failed(task, e.to_string());
                        }
                        self.metrics.restarted(h);
                    }
                }
                // The host is stopping and cut a step that outlived the grace period: not
                // a failure of the plugin, and nothing to restart; it shuts down below.
                Err(e @ CallError::Interrupted { .. }) if h.events().is_closed() => {
                    tracing::warn!(plugin = name, "{e}");
                    self.finish(h, None);
                    return false;
                }
                Err(e) => {
                    self.metrics.traps.inc();
                    let why = e.to_string();
                    if let Some(e) = &event {
                        e.fail(&why);
                    }
                    return self.failed(task, why);
                }
            }
            steps += 1;
            h.0.steps.fetch_add(1, Ordering::Relaxed);
            // One clock read per step serves both the histogram and the slice.
            let now = Instant::now();
            if metrics_enabled() {
                let ns = (now - last).as_nanos().min(u64::MAX as u128) as u64;
                self.metrics.step_seconds.record(ns);
            }
            last = now;
            if idle {
                self.next_tick = None; // re-armed below
                break;
            }
            if steps >= SLICE_STEPS || now - start >= SLICE_TIME {
                self.note_memory(h);
                self.arm(task);
                return true;
            }
        }
        self.note_memory(h);
        self.arm(task);
        false
    }

    /// Records the instance's linear memory after a run (it only grows within one).
    fn note_memory(&self, h: &Handle) {
        if let Some(p) = &self.plugin {
            let bytes = p.memory_bytes();
            h.0.memory.store(bytes as u64, Ordering::Relaxed);
            self.metrics.guest_memory.set(bytes as i64);
        }
    }

    /// Sets the next idle tick: the shortest interval while busy, then doubling on
    /// each tick up to the ceiling.
    fn arm(&mut self, task: &Task) {
        let Some((tick, max_tick)) = self.tick else {
            return;
        };
        let busy = self.last_event.elapsed() < BUSY;
        if self.next_tick.is_some() && !busy {
            return; // armed, and nothing changed since
        }
        self.interval = if busy {
            tick
        } else {
            // Just ticked (or just started): the next one twice as far.
            (self.interval * 2).clamp(tick, max_tick)
        };
        let at = Instant::now() + self.interval;
        if self.next_tick.is_none_or(|t| at < t) {
            self.next_tick = Some(at);
            task.arm_tick(at);
        }
    }

    /// Supervision after a failure: replace the instance after a back-off, or stop
    /// the plugin for good when it failed too often.
    fn failed(&mut self, task: &Task, err: String) -> bool {
        let h = &task.handle;
        let name = h.name().to_string();
        if h.events().is_closed() {
            // The host is stopping: a fresh instance would only be shut down again.
            let why = format!("{err}; not restarted: the host is stopping");
            tracing::warn!(plugin = name, "{why}");
            self.finish(h, Some(why));
            return false;
        }
        let now = Instant::now();
        let window = self.config.failure_window;
        self.failures.retain(|t| now.duration_since(*t) < window);
        self.failures.push(now);
        if self.failures.len() >= self.config.max_failures {
            let why = format!(
                "failed {} times within {:?}; stopped (last: {err})",
                self.failures.len(),
                window
            );
            // The state first: whoever reads the log line and then asks sees it.
            h.set(Health::Failed(why.clone()));
            tracing::error!(plugin = name, "{why}");
            // Closing the plugin closes its queues (when it is the last instance), so
            // later events are refused at once and nothing piles up.
            self.finish(h, Some(why));
            return false;
        }
        h.set(Health::Restarting);
        tracing::warn!(plugin = name, "{err}; restarting it");
        let backoff = self
            .config
            .restart_backoff
            .saturating_mul(2u32.saturating_pow(self.failures.len() as u32 - 1))
            .min(Duration::from_secs(5));
        let at = now + backoff;
        self.restart = Some((at, err));
        task.wake_at(at);
        false
    }

    /// Replaces the instance at once, not counting a failure: its call was cut by
    /// someone else's deadline (a caller's), so its state cannot be trusted, but it
    /// did nothing wrong.
    fn cut(&mut self, task: &Task, why: String) {
        let h = &task.handle;
        if h.events().is_closed() || self.plugin.is_none() {
            return;
        }
        h.set(Health::Restarting);
        tracing::warn!(
            plugin = h.name(),
            "{why}; replacing the instance (not counted as a failure)"
        );
        let now = Instant::now();
        self.restart = Some((now, why));
        task.wake_at(now);
    }

    /// Ends the plugin: probes and `pulp_shutdown` unless it failed, then close.
    fn finish(&mut self, h: &Handle, failed: Option<String>) {
        let Some(mut plugin) = self.plugin.take() else {
            return;
        };
        let mut report = Report {
            name: plugin.name().to_string(),
            probe_last_call: None,
            probe_config_marker: None,
            restarts: h.restarts(),
            error: failed.clone(),
        };
        if failed.is_none() {
            report.probe_last_call = plugin.probe_last_call();
            report.probe_config_marker = plugin.probe_config_marker();
            if let Err(e) = plugin.shutdown() {
                report.error = Some(e.to_string());
            }
            h.set(Health::Stopped);
        }
        plugin.close();
        self.report = Some(report);
    }
}

fn task_shared(t: &Task) -> &pulp_ext::Shared {
    &t.shared
}

impl Callee for Task {
    fn try_call(&self, name: &str, args: &[u8], limit_ms: u64, max_answer: usize) -> Attempt {
        let Ok(mut life) = self.life.try_lock() else {
            return Attempt::Busy;
        };
        if self.handle.events().is_closed() {
            return Attempt::Stopped;
        }
        if life.restart.is_some() {
            return Attempt::Busy; // its instance failed; the new one comes after the back-off
        }
        let Some(plugin) = life.plugin.as_mut() else {
            return Attempt::Stopped;
        };
        let target = self.handle.name();
        let Some(result) = plugin.on_call(name, args, limit_ms, max_answer) else {
            return Attempt::Done(Err(Abi::NotFound.err(format!(
                "pulp_call {target}.{name}: plugin \"{target}\" exports no pulp_on_call"
            ))));
        };
        let (code, answer) = match result {
            Ok(r) => r,
            Err(e) => {
                // The callee's failure is the caller's status. A trap, or an overrun
                // of its own call_timeout_ms, counts as the target's failure (it is
                // restarted, and stopped if it keeps failing); an overrun of the
                // caller's shorter deadline replaces the instance (its call was cut
                // anywhere) without counting against it; an answer that did not fit
                // says nothing of its state.
                let own_limit = plugin.manifest().limits.call_timeout_ms;
                let (status, what) = match &e {
                    CallError::Input { message, .. } => {
                        (Abi::TooLarge, format!("its answer was refused: {message}"))
                    }
                    CallError::Refused {
                        trapped: false,
                        message,
                        ..
                    } => (Abi::Failed, format!("its input did not fit: {message}")),
                    CallError::Timeout { limit_ms: l, .. } if *l < own_limit => {
                        life.metrics.traps.inc();
                        life.cut(self, e.to_string());
                        (
                            Abi::Timeout,
                            "it was cut at the caller's deadline; its instance is replaced"
                                .to_string(),
                        )
                    }
                    _ => {
                        let timeout = matches!(e, CallError::Timeout { .. });
                        life.metrics.traps.inc();
                        life.failed(self, e.to_string());
                        let fate = if life.plugin.is_none() {
                            drop(life);
                            self.ended.add(); // failed for good here, not in a run
                            "it failed for good"
                        } else {
                            "it is being restarted"
                        };
                        let status = if timeout { Abi::Timeout } else { Abi::Failed };
                        let how = if timeout {
                            "it ran past its call_timeout_ms"
                        } else {
                            "it trapped"
                        };
                        (status, format!("{how}; {fate}"))
                    }
                };
                return Attempt::Done(Err(status.err(format!(
                    "pulp_call {target}.{name}: plugin \"{target}\" failed in pulp_on_call: {what}"
                ))));
            }
        };
        if code == 0 {
            return Attempt::Done(Ok(answer));
        }
        // A failure code: an ABI status passes through, any other is 5; what the
        // callee wrote is the caller's `last_error` text.
        // Codes about a call's own inputs (1-3, 7, 8) or declarations (99) would
        // mislead the caller about its call: those are 5 too.
        let status = Abi::from_code(code)
            .filter(|s| {
                matches!(
                    s,
                    Abi::Invalid
                        | Abi::Failed
                        | Abi::NotFound
                        | Abi::Denied
                        | Abi::Unavailable
                        | Abi::TooLarge
                        | Abi::Timeout
                )
            })
            .unwrap_or(Abi::Failed);
        let text = String::from_utf8_lossy(&answer[..answer.len().min(512)]).into_owned();
        Attempt::Done(Err(status.err(format!(
            "pulp_call {target}.{name}: plugin \"{target}\" returned {code}{}",
            if text.is_empty() {
                String::new()
            } else {
                format!(": {}", pulp_ext::log_text(text.as_bytes()))
            }
        ))))
    }
}

/// A plugin's shortest and longest idle tick interval: its manifest's, else the
/// runtime's.
fn ticks(config: &RuntimeConfig, plugin: &Plugin) -> (Duration, Duration) {
    let limits = &plugin.manifest().limits;
    let tick = limits.tick_ms.map_or(config.tick, Duration::from_millis);
    let max_tick = limits
        .max_tick_ms
        .map_or(config.max_tick, Duration::from_millis)
        .max(tick);
    (tick, max_tick)
}

/// The tasks of one plugin's instances (a pool shares one event queue): a post wakes
/// one that is idle, or marks a running one to look again; the close wakes them all.
#[derive(Default)]
struct Group {
    tasks: Mutex<Vec<Weak<Task>>>,
}

impl Group {
    fn add(&self, task: &Arc<Task>) {
        lock(&self.tasks).push(Arc::downgrade(task));
    }
}

impl Waker for Group {
    fn wake(&self) {
        let tasks = lock(&self.tasks);
        let live = || tasks.iter().filter_map(Weak::upgrade);
        if let Some(t) = live().find(|t| t.is_idle()) {
            if t.wake() {
                return;
            }
        }
        for t in live() {
            if t.wake() {
                return;
            }
        }
    }

    fn closed(&self) {
        for t in lock(&self.tasks).iter().filter_map(Weak::upgrade) {
            t.wake();
        }
    }
}

/// The group of tasks behind `events`, made on the first instance's spawn. Queues
/// whose waker is not a runtime's group are refused: their posts would never reach
/// the new task.
fn group(events: &Events) -> std::io::Result<Arc<Group>> {
    let g = Arc::new(Group::default());
    let Err(existing) = events.set_waker(g.clone()) else {
        return Ok(g);
    };
    let any: Arc<dyn std::any::Any + Send + Sync> = existing;
    any.downcast::<Group>().map_err(|_| {
        std::io::Error::other("the plugin's event queues are driven by another scheduler")
    })
}
