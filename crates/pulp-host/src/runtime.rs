//! Runs plugins: each on a thread of its own, events delivered as they arrive,
//! idle ticks that back off, and supervision that replaces a failed instance.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use pulp_ext::host::{HostEvents, Next};
use pulp_ext::Events;

use crate::plugin::{CallError, Interrupter, Plugin};

/// How the runtime paces and supervises plugins.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// The idle tick interval while the plugin is busy.
    pub tick: Duration,
    /// The ceiling the idle interval doubles up to after a second without events.
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

/// Shared view of one running plugin.
#[derive(Clone)]
pub struct Handle {
    name: String,
    events: Events,
    status: Arc<Mutex<(Health, u32)>>,
    interrupter: Interrupter,
}

impl Handle {
    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its event queues.
    pub fn events(&self) -> &Events {
        &self.events
    }

    /// Where it stands.
    pub fn health(&self) -> Health {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .clone()
    }

    /// How many times its instance was replaced.
    pub fn restarts(&self) -> u32 {
        self.status.lock().unwrap_or_else(|p| p.into_inner()).1
    }

    fn set(&self, h: Health) {
        self.status.lock().unwrap_or_else(|p| p.into_inner()).0 = h;
    }
}

/// Plugins running on threads of their own.
pub struct Runtime {
    config: RuntimeConfig,
    running: Vec<(Handle, JoinHandle<Report>)>,
    ended: Arc<(Mutex<usize>, std::sync::Condvar)>,
}

impl Runtime {
    /// An empty runtime.
    pub fn new(config: RuntimeConfig) -> Runtime {
        Runtime {
            config,
            running: Vec::new(),
            ended: Arc::default(),
        }
    }

    /// Starts stepping an initialised plugin on a thread of its own.
    pub fn spawn(&mut self, plugin: Plugin) -> std::io::Result<Handle> {
        let handle = Handle {
            name: plugin.name().to_string(),
            events: plugin.view().events().clone(),
            status: Arc::new(Mutex::new((Health::Running, 0))),
            interrupter: plugin.interrupter(),
        };
        let (h, config, ended) = (handle.clone(), self.config.clone(), self.ended.clone());
        let thread = std::thread::Builder::new()
            .name(format!("pulp:{}", plugin.name()))
            .spawn(move || {
                let report = drive(plugin, &h, &config);
                *ended.0.lock().unwrap_or_else(|p| p.into_inner()) += 1;
                ended.1.notify_all();
                report
            })?;
        self.running.push((handle.clone(), thread));
        Ok(handle)
    }

    /// The running plugins.
    pub fn handles(&self) -> impl Iterator<Item = &Handle> {
        self.running.iter().map(|(h, _)| h)
    }

    /// Waits until every plugin has ended by itself (failed for good), or `timeout`.
    /// True when all have ended.
    pub fn wait_all_ended(&self, timeout: Duration) -> bool {
        let (lock, cv) = &*self.ended;
        let g = lock.lock().unwrap_or_else(|p| p.into_inner());
        let n = self.running.len();
        let (g, _) = cv
            .wait_timeout_while(g, timeout, |ended| *ended < n)
            .unwrap_or_else(|p| p.into_inner());
        *g >= n
    }

    /// Stops every plugin: no new steps, `pulp_shutdown`, probes. A plugin still in
    /// a call after the grace period is interrupted; one that does not return even
    /// then (blocked in a host call) is left behind and reported.
    pub fn stop(self) -> Vec<Report> {
        for (h, _) in &self.running {
            h.events.close();
        }
        let deadline = Instant::now() + self.config.stop_grace;
        let mut reports = Vec::new();
        for (h, t) in self.running {
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if !t.is_finished() {
                tracing::warn!(
                    plugin = h.name,
                    "still in a call after the grace period; interrupting it"
                );
                // Interrupt again and again: the step, then `pulp_shutdown`, may each be stuck.
                let until = Instant::now() + Duration::from_secs(1);
                while !t.is_finished() && Instant::now() < until {
                    h.interrupter.interrupt();
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            if t.is_finished() {
                reports.push(t.join().unwrap_or_else(|_| Report {
                    name: h.name.clone(),
                    probe_last_call: None,
                    probe_config_marker: None,
                    restarts: h.restarts(),
                    error: Some("its thread panicked".into()),
                }));
            } else {
                reports.push(Report {
                    name: h.name.clone(),
                    probe_last_call: None,
                    probe_config_marker: None,
                    restarts: h.restarts(),
                    error: Some("blocked in a host call; abandoned".into()),
                });
            }
        }
        reports
    }
}

/// One plugin's thread: step until closed, supervise failures, shut down.
fn drive(mut plugin: Plugin, h: &Handle, config: &RuntimeConfig) -> Report {
    let name = plugin.name().to_string();
    let mut interval = config.tick;
    let mut idle_since = Instant::now();
    let mut failures: Vec<Instant> = Vec::new();
    let mut failed: Option<String> = None;
    loop {
        let event = match h.events.next(interval) {
            Next::Closed => break,
            Next::Event(e) => {
                interval = config.tick;
                idle_since = Instant::now();
                Some(e)
            }
            Next::Idle => {
                if idle_since.elapsed() >= Duration::from_secs(1) {
                    interval = (interval * 2).min(config.max_tick.max(config.tick));
                }
                None
            }
        };
        let err = match plugin.step_event(event.as_ref()) {
            Ok(_) => continue,
            // The event did not fit the guest: its sender is told (413, close 1009);
            // not the plugin's failure, so it does not count towards stopping it.
            Err(CallError::Refused {
                message, trapped, ..
            }) => {
                tracing::warn!(plugin = name, "an event was refused: {message}");
                if let Some(e) = &event {
                    e.refuse(&message);
                }
                if !trapped {
                    continue;
                }
                if let Err(e) = plugin.restart() {
                    e.to_string()
                } else {
                    h.status.lock().unwrap_or_else(|p| p.into_inner()).1 += 1;
                    continue;
                }
            }
            // The host is stopping and cut a step that outlived the grace period: not
            // a failure of the plugin, and nothing to restart; it shuts down below.
            Err(e @ CallError::Interrupted { .. }) if h.events.is_closed() => {
                tracing::warn!(plugin = name, "{e}");
                break;
            }
            Err(e) => e.to_string(),
        };
        // Supervision: replace the instance with back-off until it fails too often.
        let mut err = err;
        loop {
            let now = Instant::now();
            failures.retain(|t| now.duration_since(*t) < config.failure_window);
            failures.push(now);
            if failures.len() >= config.max_failures {
                let why = format!(
                    "failed {} times within {:?}; stopped (last: {err})",
                    failures.len(),
                    config.failure_window
                );
                tracing::error!(plugin = name, "{why}");
                h.set(Health::Failed(why.clone()));
                failed = Some(why);
                break;
            }
            tracing::warn!(plugin = name, "{err}; restarting it");
            h.set(Health::Restarting);
            let backoff = config
                .restart_backoff
                .saturating_mul(2u32.saturating_pow(failures.len() as u32 - 1));
            if let Next::Closed = wait_closed(&h.events, backoff.min(Duration::from_secs(5))) {
                break;
            }
            match plugin.restart() {
                Ok(()) => {
                    h.status.lock().unwrap_or_else(|p| p.into_inner()).1 += 1;
                    h.set(Health::Running);
                    break;
                }
                Err(e) => err = e.to_string(),
            }
        }
        if failed.is_some() {
            // Stopped for good: closing the plugin below closes its queues (when it is
            // the last instance), so later events are refused at once and nothing
            // piles up for a plugin that will never read it.
            break;
        }
    }
    let mut report = Report {
        name: name.clone(),
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
    report
}

/// Sleeps up to `d`, returning early with `Closed` when the queues close.
/// Events that arrive meanwhile stay queued.
fn wait_closed(events: &Events, d: Duration) -> Next {
    let until = Instant::now() + d;
    while Instant::now() < until {
        if events.is_closed() {
            return Next::Closed;
        }
        std::thread::sleep(Duration::from_millis(10).min(until - Instant::now()));
    }
    if events.is_closed() {
        Next::Closed
    } else {
        Next::Idle
    }
}
