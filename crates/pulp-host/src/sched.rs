//! The scheduler under the runtime: a few worker threads that run whichever jobs
//! have work, and one timer thread for everything that waits for a time.
//!
//! - A job is queued once however often it is woken (its own state machine, in
//!   `runtime.rs`, decides), and runs on one worker at a time.
//! - A worker that runs out of work spins briefly before it sleeps, so a steady
//!   stream of events is handed over without a futex call each; an idle pool sleeps
//!   on a condition variable and costs nothing.
//! - Timers are one binary heap for every job (idle ticks, restart back-off): no
//!   thread sleeps per plugin.
//! - When work has waited longer than [`STARVED`] while every worker is in a job and
//!   none took any (all are in long calls), the timer thread starts one more worker,
//!   up to `max_workers`; an extra worker leaves as soon as it finds no work. A
//!   plugin blocked in a long call so holds one worker, not the host.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Work waiting this long with no worker free starts another worker.
pub(crate) const STARVED: Duration = Duration::from_millis(5);

/// Timers further away than this are rounded up to a multiple of [`SLOT`], so
/// that the idle ticks of many plugins fire together and one wake-up of a worker
/// serves a batch of them (a tick 1 s away may come up to 10 ms late).
const COALESCE_AFTER: Duration = Duration::from_millis(20);
const SLOT: Duration = Duration::from_millis(10);

/// Each worker thread's stack (see the call nesting note where workers start).
pub(crate) const WORKER_STACK: usize = 16 << 20;

/// How many times a worker looks for work before it sleeps.
const SPINS: u32 = 64;

/// Something the scheduler runs.
pub(crate) trait Job: Send + Sync + 'static {
    /// Runs on a worker (one worker at a time) until it has no work left or its
    /// time slice is over.
    fn run(self: Arc<Self>);
    /// A timer this job set with `token` expired.
    fn fire(self: Arc<Self>, token: u64);
}

struct Timer {
    at: Instant,
    seq: u64,
    token: u64,
    job: Weak<dyn Job>,
}

impl PartialEq for Timer {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Timer {}
impl PartialOrd for Timer {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Timer {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

#[derive(Default)]
struct Timers {
    heap: BinaryHeap<Reverse<Timer>>,
    seq: u64,
}

/// The worker pool, its ready queue and its timers.
pub(crate) struct Sched {
    ready: Mutex<VecDeque<Arc<dyn Job>>>,
    has_work: Condvar,
    /// `ready.len()`, readable without the lock (spinning workers).
    queued: AtomicUsize,
    /// Workers waiting on `has_work` (read and changed under the `ready` lock).
    sleeping: AtomicUsize,
    /// Workers inside a job's `run`.
    running: AtomicUsize,
    timers: Mutex<Timers>,
    timer_changed: Condvar,
    /// The timer thread wakes every [`STARVED`] to look for starvation (work is queued).
    watching: AtomicBool,
    stopping: AtomicBool,
    /// When a worker last took a job (ns since `base`): starvation is work waiting
    /// while this stands still.
    last_take: AtomicU64,
    base: Instant,
    live: AtomicUsize,
    max_workers: usize,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Sched {
    /// Starts `workers` workers (at least one) and the timer thread.
    pub(crate) fn start(workers: usize, max_workers: usize) -> std::io::Result<Arc<Sched>> {
        let workers = workers.max(1);
        let s = Arc::new(Sched {
            ready: Mutex::new(VecDeque::new()),
            has_work: Condvar::new(),
            queued: AtomicUsize::new(0),
            sleeping: AtomicUsize::new(0),
            running: AtomicUsize::new(0),
            timers: Mutex::new(Timers::default()),
            timer_changed: Condvar::new(),
            watching: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            last_take: AtomicU64::new(0),
            base: Instant::now(),
            live: AtomicUsize::new(0),
            max_workers: max_workers.max(workers),
            threads: Mutex::new(Vec::new()),
        });
        for _ in 0..workers {
            s.spawn_worker(false)?;
        }
        let t = s.clone();
        let timer = std::thread::Builder::new()
            .name("pulp-timer".into())
            .spawn(move || t.timer_loop())?;
        lock(&s.threads).push(timer);
        Ok(s)
    }

    fn spawn_worker(self: &Arc<Self>, extra: bool) -> std::io::Result<()> {
        let n = self.live.fetch_add(1, Ordering::SeqCst);
        let s = self.clone();
        let r = std::thread::Builder::new()
            .name(format!("pulp-worker-{n}"))
            // Room for a chain of `pulp_call`s: each callee's wasm may use its own
            // 512 KiB of native stack (wasmtime's max_wasm_stack is per store), and
            // calls nest at most `calls::MAX_DEPTH` deep. Only pages touched are used.
            .stack_size(WORKER_STACK)
            .spawn(move || s.worker(extra));
        match r {
            Ok(t) => {
                // Extra workers leave by themselves; only the base ones are joined.
                if !extra {
                    lock(&self.threads).push(t);
                }
                Ok(())
            }
            Err(e) => {
                self.live.fetch_sub(1, Ordering::SeqCst);
                Err(e)
            }
        }
    }

    /// Worker threads alive now (base and extra).
    pub(crate) fn workers(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }

    fn now_ns(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }

    /// Queues `job` to run (the job makes sure it is queued once).
    pub(crate) fn push(&self, job: Arc<dyn Job>) {
        let mut q = lock(&self.ready);
        q.push_back(job);
        self.queued.fetch_add(1, Ordering::SeqCst);
        if self.sleeping.load(Ordering::SeqCst) > 0 {
            drop(q);
            self.has_work.notify_one();
        } else if !self.watching.load(Ordering::SeqCst)
            && self.running.load(Ordering::SeqCst) >= self.workers()
        {
            // Every worker is in a job: have the timer thread watch for starvation.
            drop(q);
            let _t = lock(&self.timers);
            self.timer_changed.notify_one();
        }
    }

    /// Calls `job.fire(token)` at `at` (or soon after, see [`COALESCE_AFTER`]),
    /// unless the job is gone.
    pub(crate) fn at(&self, at: Instant, token: u64, job: Weak<dyn Job>) {
        let at = if at.saturating_duration_since(Instant::now()) > COALESCE_AFTER {
            let since = at.duration_since(self.base).as_nanos();
            let slot = SLOT.as_nanos();
            self.base + Duration::from_nanos((since.div_ceil(slot) * slot) as u64)
        } else {
            at
        };
        let mut t = lock(&self.timers);
        t.seq += 1;
        let seq = t.seq;
        let earliest = t.heap.peek().is_none_or(|Reverse(top)| at < top.at);
        t.heap.push(Reverse(Timer {
            at,
            seq,
            token,
            job,
        }));
        drop(t);
        if earliest {
            self.timer_changed.notify_one();
        }
    }

    fn take(&self, extra: bool) -> Option<Arc<dyn Job>> {
        for i in 0..SPINS {
            if self.stopping.load(Ordering::Relaxed) {
                return None;
            }
            if self.queued.load(Ordering::SeqCst) > 0 {
                if let Some(j) = self.pop(&mut lock(&self.ready)) {
                    return Some(j);
                }
            }
            if i < SPINS / 2 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        let mut q = lock(&self.ready);
        loop {
            if let Some(j) = self.pop(&mut q) {
                return Some(j);
            }
            if extra || self.stopping.load(Ordering::SeqCst) {
                return None;
            }
            self.sleeping.fetch_add(1, Ordering::SeqCst);
            q = self.has_work.wait(q).unwrap_or_else(|p| p.into_inner());
            self.sleeping.fetch_sub(1, Ordering::SeqCst);
        }
    }

    fn pop(&self, q: &mut VecDeque<Arc<dyn Job>>) -> Option<Arc<dyn Job>> {
        let j = q.pop_front()?;
        self.queued.fetch_sub(1, Ordering::SeqCst);
        self.last_take.store(self.now_ns(), Ordering::SeqCst);
        Some(j)
    }

    fn worker(self: Arc<Self>, extra: bool) {
        while let Some(job) = self.take(extra) {
            self.running.fetch_add(1, Ordering::SeqCst);
            job.run();
            self.running.fetch_sub(1, Ordering::SeqCst);
        }
        self.live.fetch_sub(1, Ordering::SeqCst);
    }

    fn timer_loop(self: Arc<Self>) {
        let mut t = lock(&self.timers);
        loop {
            if self.stopping.load(Ordering::SeqCst) {
                return;
            }
            let now = Instant::now();
            let mut due = Vec::new();
            while t.heap.peek().is_some_and(|Reverse(top)| top.at <= now) {
                let Reverse(timer) = t.heap.pop().expect("peeked");
                due.push(timer);
            }
            if !due.is_empty() {
                drop(t);
                for timer in due {
                    if let Some(job) = timer.job.upgrade() {
                        job.fire(timer.token);
                    }
                }
                t = lock(&self.timers);
                continue;
            }
            self.relieve_starvation();
            let mut wait = t
                .heap
                .peek()
                .map(|Reverse(top)| top.at.saturating_duration_since(now))
                .unwrap_or(Duration::from_secs(3600));
            let watch = self.queued.load(Ordering::SeqCst) > 0;
            self.watching.store(watch, Ordering::SeqCst);
            if watch {
                wait = wait.min(STARVED);
            }
            t = self
                .timer_changed
                .wait_timeout(t, wait)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Work has waited [`STARVED`] and no worker took any meanwhile: every worker
    /// is in a long call. Start another, up to `max_workers`.
    fn relieve_starvation(self: &Arc<Self>) {
        if self.queued.load(Ordering::SeqCst) == 0
            || self.running.load(Ordering::SeqCst) < self.workers()
        {
            return;
        }
        let idle_for = self.now_ns() - self.last_take.load(Ordering::SeqCst);
        if Duration::from_nanos(idle_for) < STARVED || self.workers() >= self.max_workers {
            return;
        }
        if self.spawn_worker(true).is_ok() {
            // Count from now: the new worker needs a moment to take the work.
            self.last_take.store(self.now_ns(), Ordering::SeqCst);
            tracing::debug!(
                workers = self.workers(),
                "every worker is in a long call; started another"
            );
        }
    }

    /// Stops the timer and the workers once they finish their jobs; waits up to
    /// `grace` for each base worker, then leaves it (stuck in a host call).
    pub(crate) fn stop(&self, grace: Duration) {
        self.stopping.store(true, Ordering::SeqCst);
        {
            let _q = lock(&self.ready);
            self.has_work.notify_all();
        }
        {
            let _t = lock(&self.timers);
            self.timer_changed.notify_all();
        }
        let until = Instant::now() + grace;
        for t in lock(&self.threads).drain(..) {
            while !t.is_finished() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(2));
            }
            if t.is_finished() {
                let _ = t.join();
            }
        }
    }
}
