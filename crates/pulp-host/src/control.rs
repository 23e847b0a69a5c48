//! Steering a running `pulp run`: `pulp ctl status | reload | stop | start` over a
//! Unix socket (mode 0600 in a 0700 folder), and `pulp run --watch`, which reloads a
//! plugin when its manifest or module changes.
//!
//! The socket speaks one JSON line each way per connection: a [`Request`], then an
//! [`Answer`]. Requests are carried out one at a time by the thread that owns the
//! runtime ([`Supervisor`]), so a reload never races a stop.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use crate::{Handle, Health, Host, Manifest, Plugin, Registry, Runtime};

/// Longest request line, in bytes.
const MAX_REQUEST: u64 = 4096;
/// Time a client has to send its request, and to read the answer.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the socket thread waits for the runtime's answer (a reload compiles and
/// initialises a module).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(300);

/// What `pulp ctl` asks.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "op", rename_all = "lowercase", deny_unknown_fields)]
pub enum Request {
    /// Every plugin's state.
    Status,
    /// Load the plugin's manifest and module again, initialise the new version
    /// beside the running one, and let it take over only if that succeeds.
    Reload {
        /// The plugin's name.
        plugin: String,
    },
    /// Stop the plugin (its routes and connections go).
    Stop {
        /// The plugin's name.
        plugin: String,
    },
    /// Start a stopped or failed plugin from its manifest.
    Start {
        /// The plugin's name.
        plugin: String,
    },
}

/// What `pulp ctl` is told.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Answer {
    /// Whether the request was carried out.
    pub ok: bool,
    /// What happened, or why not.
    pub message: String,
    /// Every plugin's state after the request.
    pub plugins: Vec<PluginStatus>,
}

/// One plugin in `pulp ctl status` (a pool summed over its instances). Holds no
/// config: secrets never leave the host this way.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PluginStatus {
    /// The manifest's name.
    pub name: String,
    /// The manifest's version of the version running.
    pub version: String,
    /// running, restarting, failed or stopped (a pool: its worst instance's).
    pub state: String,
    /// Why it failed, when it did.
    pub reason: Option<String>,
    /// Instances running.
    pub instances: usize,
    /// Instances replaced after failures.
    pub restarts: u64,
    /// Steps taken.
    pub steps: u64,
    /// Events waiting in its queues.
    pub queued: usize,
    /// Linear memory of its instances, in bytes.
    pub guest_memory_bytes: u64,
    /// Host memory charged to it (queued events, bodies, buffers), in bytes.
    pub host_memory_bytes: u64,
    /// Time since the version running took over, in ms.
    pub uptime_ms: u64,
}

/// A request on its way to the [`Supervisor`], with where the answer goes (none for
/// `--watch`'s reloads, which are logged).
pub struct Command {
    request: Request,
    reply: Option<Sender<Answer>>,
}

/// The statuses of the plugins in `handles`, one per name, in start order.
pub fn statuses(handles: &[Handle]) -> Vec<PluginStatus> {
    let mut out: Vec<(PluginStatus, usize)> = Vec::new();
    for h in handles {
        let (rank, state, reason) = match h.health() {
            Health::Stopped => (0, "stopped", None),
            Health::Running => (1, "running", None),
            Health::Restarting => (2, "restarting", None),
            Health::Failed(why) => (3, "failed", Some(why)),
        };
        let live = usize::from(matches!(rank, 1 | 2));
        match out.iter_mut().find(|(s, _)| s.name == h.name()) {
            Some((s, worst)) => {
                s.instances += live;
                s.restarts += u64::from(h.restarts());
                s.steps += h.steps();
                s.guest_memory_bytes += h.guest_memory();
                if rank > *worst {
                    *worst = rank;
                    s.state = state.to_string();
                    s.reason = reason;
                }
            }
            None => out.push((
                PluginStatus {
                    name: h.name().to_string(),
                    version: h.version(),
                    state: state.to_string(),
                    reason,
                    instances: live,
                    restarts: u64::from(h.restarts()),
                    steps: h.steps(),
                    queued: h.events().len(),
                    guest_memory_bytes: h.guest_memory(),
                    host_memory_bytes: h.events().budget().used() as u64,
                    uptime_ms: h.uptime().as_millis() as u64,
                },
                rank,
            )),
        }
    }
    out.into_iter().map(|(s, _)| s).collect()
}

/// The owner of the runtime in `pulp run`: carries out control requests one at a time.
pub struct Supervisor {
    host: Host,
    registry: Registry,
    runtime: Runtime,
    /// Each plugin's manifest file, by name.
    manifests: Vec<(String, PathBuf)>,
    /// Interrupters of the instances a reload or start is initialising: the stop
    /// signal's thread interrupts them, so no `init_timeout_ms` of a new manifest
    /// holds the host's exit.
    pending: Pending,
}

/// The interrupters of instances being initialised, shared with the signal thread.
pub type Pending = Arc<std::sync::Mutex<Vec<crate::Interrupter>>>;

impl Supervisor {
    /// A supervisor of `runtime`, whose plugins were loaded from `manifests`.
    pub fn new(
        host: Host,
        registry: Registry,
        runtime: Runtime,
        manifests: &[Manifest],
        pending: Pending,
    ) -> Self {
        Supervisor {
            host,
            registry,
            runtime,
            manifests: manifests
                .iter()
                .map(|m| (m.name.clone(), m.path.clone()))
                .collect(),
            pending,
        }
    }

    /// Initialises `p`, interruptible by a stop signal meanwhile.
    fn init(&self, p: &mut Plugin) -> Result<(), crate::CallError> {
        lock(&self.pending).push(p.interrupter());
        let r = p.init();
        lock(&self.pending).clear();
        r
    }

    /// `instances` initialised instances of the plugin `m` describes, the first
    /// loaded by `load` (a successor, or a fresh plugin).
    fn instances(
        &self,
        m: &Manifest,
        load: impl FnOnce() -> Result<Plugin, crate::LoadError>,
        fail: &dyn Fn(&dyn std::fmt::Display) -> String,
    ) -> Result<Vec<Plugin>, String> {
        let mut first = load().map_err(|e| fail(&e))?;
        self.init(&mut first).map_err(|e| fail(&e))?;
        let mut all = vec![];
        for _ in 1..m.limits.instances {
            let mut r = first.replica().map_err(|e| fail(&e))?;
            self.init(&mut r).map_err(|e| fail(&e))?;
            all.push(r);
        }
        all.insert(0, first);
        Ok(all)
    }

    /// The runtime.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// Gives the runtime back (to stop it).
    pub fn into_runtime(self) -> Runtime {
        self.runtime
    }

    /// Carries out one command and answers it (or logs the outcome of a watch reload).
    pub fn handle(&mut self, c: Command) {
        let result = match &c.request {
            Request::Status => Ok(String::new()),
            Request::Reload { plugin } => self.reload(plugin),
            Request::Stop { plugin } => self.stop(plugin),
            Request::Start { plugin } => self.start(plugin),
        };
        // One line each, whatever a plugin put in its manifest or its trap's names.
        let result = result
            .map(|m| pulp_ext::log_text(m.as_bytes()).into_owned())
            .map_err(|e| pulp_ext::log_text(e.as_bytes()).into_owned());
        match &result {
            Ok(m) if !m.is_empty() => tracing::info!(target: "pulp", "{m}"),
            Ok(_) => {}
            Err(e) => tracing::warn!(target: "pulp", "{e}"),
        }
        if let Some(reply) = c.reply {
            let (ok, message) = match result {
                Ok(m) => (true, m),
                Err(e) => (false, e),
            };
            let _ = reply.send(Answer {
                ok,
                message,
                plugins: statuses(&self.runtime.roster().handles()),
            });
        }
    }

    fn manifest_path(&self, name: &str) -> Result<&Path, String> {
        match self.manifests.iter().find(|(n, _)| n == name) {
            Some((_, p)) => Ok(p),
            None => Err(format!(
                "no plugin named {name:?} in this host (it runs: {})",
                self.manifests
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }

    /// The plugin's manifest as it is now on disk (`doing`: `reload`, `start`).
    fn load_manifest(&self, doing: &str, name: &str) -> Result<Manifest, String> {
        let path = self.manifest_path(name)?;
        let m = Manifest::load(path).map_err(|e| format!("{doing} {name}: {e}"))?;
        if m.name != name {
            return Err(format!(
                "{doing} {name}: {} now names plugin {:?}; a plugin keeps its name",
                path.display(),
                m.name
            ));
        }
        Ok(m)
    }

    /// A live reload: the new version is made and initialised beside the running
    /// one, which keeps serving until it takes over, and keeps serving for good if
    /// anything fails on the way.
    fn reload(&mut self, name: &str) -> Result<String, String> {
        let started = Instant::now();
        let fail = |e: &dyn std::fmt::Display| {
            format!("reload {name}: {e}; the running version keeps serving")
        };
        self.manifest_path(name)?;
        let handles: Vec<Handle> = self
            .runtime
            .handles()
            .filter(|h| h.name() == name)
            .cloned()
            .collect();
        let live = handles
            .iter()
            .filter(|h| matches!(h.health(), Health::Running | Health::Restarting))
            .count();
        if live == 0 {
            if handles
                .iter()
                .any(|h| matches!(h.health(), Health::Failed(_)))
            {
                // Failed for good: the new version is its way back.
                return self
                    .start(name)
                    .map(|m| format!("{m} (it had failed for good)"));
            }
            return Err(format!(
                "reload {name}: it is stopped (pulp ctl stop); start it with pulp ctl start {name}"
            ));
        }
        if live < handles.len() {
            return Err(fail(&format!(
                "{} of its {} instances failed for good; stop and start it",
                handles.len() - live,
                handles.len()
            )));
        }
        let m = self
            .load_manifest("reload", name)
            .map_err(|e| format!("{e}; the running version keeps serving"))?;
        // Checked before any init runs: a pool's size changes by stop and start.
        if m.limits.instances as usize != handles.len() {
            return Err(fail(&format!(
                "the new version has [limits] instances = {}, the running one {}; stop and start the plugin to change a pool's size",
                m.limits.instances,
                handles.len()
            )));
        }
        let Some(lineage) = self.runtime.lineage(name) else {
            return Err(fail(&"it stopped meanwhile"));
        };
        let (host, registry) = (&self.host, &self.registry);
        let new = self.instances(
            &m,
            || Plugin::load_successor(host, &m, Some(registry), &lineage),
            &fail,
        )?;
        let old = match self.runtime.replace(name, new) {
            Ok(old) => old,
            Err(new) => {
                drop(new);
                return Err(fail(&"an instance failed for good while the new version initialised; stop and start it"));
            }
        };
        let took_over = started.elapsed();
        for mut p in old {
            if let Err(e) = p.shutdown() {
                tracing::warn!(target: "pulp", plugin = name, "the replaced version: {e}");
            }
        }
        Ok(format!(
            "reloaded {name}: version {} serving after {} ms",
            m.version,
            took_over.as_millis()
        ))
    }

    fn stop(&mut self, name: &str) -> Result<String, String> {
        self.manifest_path(name)?;
        if self.runtime.stop_plugin(name) {
            Ok(format!("stopped {name}"))
        } else {
            Err(format!("{name} is not running"))
        }
    }

    fn start(&mut self, name: &str) -> Result<String, String> {
        let m = self.load_manifest("start", name)?;
        if self.runtime.running(name) > 0 {
            return Err(format!("{name} is running; reload it instead"));
        }
        let fail = |e: &dyn std::fmt::Display| format!("start {name}: {e}");
        let (host, registry) = (&self.host, &self.registry);
        // Loaded and initialised before the stopped or failed instances are let go:
        // a start that fails leaves them listed (and /readyz not ready).
        let all = self.instances(&m, || Plugin::load(host, &m, Some(registry)), &fail)?;
        if !self.runtime.forget(name) {
            return Err(format!("{name} started meanwhile"));
        }
        for p in all {
            self.runtime.spawn(p).map_err(|e| fail(&e))?;
        }
        Ok(format!("started {name} version {}", m.version))
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The control socket's default path: `<storage root>/.pulp/control.sock` (no plugin
/// name starts with a dot, so it is no plugin's folder).
pub fn default_path(storage_root: &Path) -> PathBuf {
    storage_root.join(".pulp").join("control.sock")
}

/// A bound control socket; it is removed when this is dropped.
pub struct ControlSocket {
    path: PathBuf,
    stop: Arc<AtomicBool>,
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = std::fs::remove_file(&self.path);
        // Wakes the accept loop so its thread ends.
        let _ = UnixStream::connect(&self.path);
    }
}

/// Binds the control socket at `path` (its folder made 0700 if missing, the socket
/// 0600) and serves it on a thread: each request goes to `commands`. A socket left
/// by a process that died is replaced; one that answers is another `pulp run`, and
/// is an error.
pub fn serve(path: &Path, commands: Sender<Command>) -> std::io::Result<ControlSocket> {
    use std::io::{Error, ErrorKind};
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            pulp_ext::create_private_dir(dir)?;
        }
        // Another user who may rename entries in the folder could swap the socket
        // for one of theirs, and be asked what `pulp ctl` asks.
        let meta = std::fs::symlink_metadata(dir)?;
        let me = rustix::process::geteuid().as_raw();
        let others_write = meta.mode() & 0o022 != 0 && meta.mode() & 0o1000 == 0;
        if !meta.is_dir() || (meta.uid() != me && meta.uid() != 0) || others_write {
            return Err(Error::new(
                ErrorKind::PermissionDenied,
                format!(
                    "{} must be a folder of this user (or root), not writable by others (or sticky), to hold the control socket",
                    dir.display()
                ),
            ));
        }
    }
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket", path.display()),
            ));
        }
        if UnixStream::connect(path).is_ok() {
            return Err(Error::new(
                ErrorKind::AddrInUse,
                format!(
                    "{} is served by another running pulp; give this one its own --control",
                    path.display()
                ),
            ));
        }
        std::fs::remove_file(path)?;
    }
    // Created 0600 (no moment in which another user could connect), then kept so.
    let umask = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o177));
    let bound = UnixListener::bind(path);
    rustix::process::umask(umask);
    let listener = bound.map_err(|e| {
        Error::new(
            e.kind(),
            format!("cannot bind control socket {}: {e}", path.display()),
        )
    })?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = stop.clone();
    std::thread::Builder::new()
        .name("pulp-control".into())
        .spawn(move || {
            for conn in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                // One client at a time: requests are carried out one at a time anyway.
                if let Ok(conn) = conn {
                    if let Err(e) = serve_one(conn, &commands) {
                        tracing::debug!(target: "pulp", "control connection: {e}");
                    }
                }
            }
        })?;
    Ok(ControlSocket {
        path: path.to_path_buf(),
        stop,
    })
}

fn serve_one(conn: UnixStream, commands: &Sender<Command>) -> std::io::Result<()> {
    conn.set_write_timeout(Some(IO_TIMEOUT))?;
    let line = read_line(&conn, Instant::now() + IO_TIMEOUT)?;
    let answer = match line {
        None => refusal(format!(
            "a request is one JSON line of at most {MAX_REQUEST} bytes"
        )),
        Some(line) => match serde_json::from_slice::<Request>(&line) {
            Err(e) => refusal(format!("not a control request: {e}")),
            Ok(request) => {
                let (tx, rx) = mpsc::channel();
                let sent = commands.send(Command {
                    request,
                    reply: Some(tx),
                });
                match sent.map(|_| rx.recv_timeout(ANSWER_TIMEOUT)) {
                    Ok(Ok(a)) => a,
                    Ok(Err(mpsc::RecvTimeoutError::Timeout)) => refusal(format!(
                        "no answer within {} s; the request may still complete",
                        ANSWER_TIMEOUT.as_secs()
                    )),
                    _ => refusal("the host is stopping".into()),
                }
            }
        },
    };
    let mut out = serde_json::to_vec(&answer).map_err(std::io::Error::other)?;
    out.push(b'\n');
    (&conn).write_all(&out)
}

/// One request line, all of it before `deadline` (a client that trickles bytes
/// cannot hold the socket); `None` when it is longer than [`MAX_REQUEST`].
fn read_line(conn: &UnixStream, deadline: Instant) -> std::io::Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the request did not arrive in time",
            ));
        }
        conn.set_read_timeout(Some(left))?;
        let n = (&*conn).read(&mut buf)?;
        if n == 0 {
            return Ok(Some(line));
        }
        line.extend_from_slice(&buf[..n]);
        if line.len() as u64 > MAX_REQUEST {
            return Ok(None);
        }
        if let Some(end) = line.iter().position(|&b| b == b'\n') {
            line.truncate(end);
            return Ok(Some(line));
        }
    }
}

fn refusal(message: String) -> Answer {
    Answer {
        ok: false,
        message,
        plugins: Vec::new(),
    }
}

/// `pulp ctl`'s side: sends `request` to the socket at `path` and reads the answer.
pub fn ask(path: &Path, request: &Request) -> Result<Answer, String> {
    let conn = UnixStream::connect(path).map_err(|e| {
        format!(
            "cannot connect to {}: {e} (is `pulp run` running with this --control / --storage-root?)",
            path.display()
        )
    })?;
    conn.set_write_timeout(Some(IO_TIMEOUT))
        .and_then(|_| conn.set_read_timeout(Some(ANSWER_TIMEOUT)))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let mut line = serde_json::to_vec(request).map_err(|e| e.to_string())?;
    line.push(b'\n');
    (&conn)
        .write_all(&line)
        .map_err(|e| format!("{}: sending the request: {e}", path.display()))?;
    let mut answer = Vec::new();
    BufReader::new(&conn)
        .read_until(b'\n', &mut answer)
        .map_err(|e| format!("{}: reading the answer: {e}", path.display()))?;
    serde_json::from_slice(&answer)
        .map_err(|e| format!("{}: not a control answer: {e}", path.display()))
}

/// `pulp ctl status`'s table.
pub fn table(plugins: &[PluginStatus]) -> String {
    let mut rows = vec![[
        "NAME",
        "VERSION",
        "STATE",
        "INSTANCES",
        "RESTARTS",
        "STEPS",
        "QUEUED",
        "MEMORY",
        "UPTIME",
    ]
    .map(String::from)];
    // A plugin's version and reasons are its author's text: no escape reaches the terminal.
    let clean = |t: &str| pulp_ext::log_text(t.as_bytes()).into_owned();
    for p in plugins {
        rows.push([
            clean(&p.name),
            clean(&p.version),
            p.state.clone(),
            p.instances.to_string(),
            p.restarts.to_string(),
            p.steps.to_string(),
            p.queued.to_string(),
            format!(
                "{}+{}",
                bytes(p.guest_memory_bytes),
                bytes(p.host_memory_bytes)
            ),
            if p.state == "running" || p.state == "restarting" {
                duration(p.uptime_ms)
            } else {
                "-".into()
            },
        ]);
    }
    let widths: Vec<usize> = (0..9)
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in &rows {
        let cells: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    for p in plugins {
        if let Some(why) = &p.reason {
            out.push_str(&format!("{}: {}\n", clean(&p.name), clean(why)));
        }
    }
    out
}

fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1}G", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1}M", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1}K", n as f64 / 1024.0),
        n => format!("{n}B"),
    }
}

fn duration(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        s if s >= 86_400 => format!("{}d{}h", s / 86_400, s % 86_400 / 3600),
        s if s >= 3600 => format!("{}h{}m", s / 3600, s % 3600 / 60),
        s if s >= 60 => format!("{}m{}s", s / 60, s % 60),
        s => format!("{s}s"),
    }
}

/// `pulp run --watch`: polls each plugin's manifest and module every `every`, and
/// asks for a reload of a plugin whose files changed and then stayed unchanged for
/// one more poll (a build that writes its module in pieces is reloaded once).
pub fn watch(manifests: &[Manifest], commands: Sender<Command>, every: Duration) -> Watcher {
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = stop.clone();
    let mut watched: Vec<Watched> = manifests
        .iter()
        .map(|m| {
            let mut w = Watched {
                name: m.name.clone(),
                manifest: m.path.clone(),
                wasm: m.wasm.clone(),
                seen: None,
                pending: None,
            };
            w.seen = Some(w.fingerprint());
            w
        })
        .collect();
    let thread = std::thread::Builder::new()
        .name("pulp-watch".into())
        .spawn(move || {
            while !stopping.load(Ordering::SeqCst) {
                std::thread::sleep(every);
                for w in &mut watched {
                    if w.poll() {
                        let request = Request::Reload {
                            plugin: w.name.clone(),
                        };
                        if commands
                            .send(Command {
                                request,
                                reply: None,
                            })
                            .is_err()
                        {
                            return;
                        }
                    }
                }
            }
        })
        .ok();
    Watcher {
        stop,
        _thread: thread,
    }
}

/// The `--watch` poller; it stops when dropped.
pub struct Watcher {
    stop: Arc<AtomicBool>,
    _thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Size, modification time, change time and inode of a file (`None` while it is
/// missing): an edit that keeps size and mtime (`cp -p`) still changes the others.
type Stamp = Option<(u64, SystemTime, i64, u64)>;

struct Watched {
    name: String,
    manifest: PathBuf,
    wasm: PathBuf,
    /// What the running version was loaded from (as last seen).
    seen: Option<(Stamp, Stamp)>,
    /// A change seen at the last poll, waiting to hold still.
    pending: Option<(Stamp, Stamp)>,
}

impl Watched {
    fn fingerprint(&self) -> (Stamp, Stamp) {
        let stamp = |p: &Path| {
            std::fs::metadata(p).ok().map(|m| {
                (
                    m.len(),
                    m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                    m.ctime_nsec() + m.ctime() * 1_000_000_000,
                    m.ino(),
                )
            })
        };
        (stamp(&self.manifest), stamp(&self.wasm))
    }

    /// True when the files changed and have held still since the last poll.
    fn poll(&mut self) -> bool {
        // The manifest may point at another module now: read it again only while it
        // differs from what runs (it may name secret files; a quiet poll rereads
        // nothing).
        let stamp = self.fingerprint().0;
        if self.seen.as_ref().is_none_or(|(m, _)| *m != stamp) {
            if let Ok(m) = Manifest::load(&self.manifest) {
                self.wasm = m.wasm;
            }
        }
        let now = Some(self.fingerprint());
        if now == self.seen {
            self.pending = None;
            return false;
        }
        if now != self.pending {
            self.pending = now;
            return false;
        }
        // A file being written is missing or empty for a moment: wait for it.
        if now.is_some_and(|(m, w)| m.is_none() || w.is_none_or(|(len, ..)| len == 0)) {
            return false;
        }
        self.seen = now;
        self.pending = None;
        true
    }
}

/// The channel the control socket and the watcher send commands into; the thread
/// that owns the runtime receives them.
pub fn channel() -> (Sender<Command>, Receiver<Command>) {
    mpsc::channel()
}
