//! The `pulp` program as a library function, so a deployment binary that links one
//! more capability is three lines (the Go host's `run.Main()`):
//!
//! ```no_run
//! // src/main.rs of a program that is `pulp` plus the `ext-greet` capability:
//! // use ext_greet as _; // linked, so `inventory` sees it
//! fn main() -> std::process::ExitCode {
//!     pulp_host::cli::main()
//! }
//! ```
//!
//! The program's capabilities are every capability crate linked into it: those this
//! library's features name (all by default) and any the binary links itself.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::{
    check, control, new_plugin, sha256_hex, Host, HostConfig, Lang, Manifest, Plugin, Registry,
    Runtime, RuntimeConfig,
};
use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "pulp",
    version,
    about = "A capability-gated WebAssembly plugin host"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Root of the plugins' storage folders (`<root>/<plugin name>`).
    #[arg(long, global = true, default_value = "data", env = "PULP_STORAGE_ROOT")]
    storage_root: PathBuf,
    /// Where compiled modules are cached [default: the user's cache dir, `pulp/modules`].
    #[arg(long, global = true, env = "PULP_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Compile every time; use no module cache.
    #[arg(long, global = true)]
    no_cache: bool,
    /// Log format. Filter with `RUST_LOG` (default `info`).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
    /// The control socket of `pulp run`, used by `pulp ctl` [default:
    /// <storage-root>/.pulp/control.sock].
    #[arg(long, global = true, env = "PULP_CONTROL")]
    control: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run plugins until SIGINT or SIGTERM.
    Run {
        /// Manifests (`pulp.plugin.toml`) of the plugins to run.
        #[arg(required = true)]
        manifests: Vec<PathBuf>,
        /// Idle tick interval while a plugin is busy, in ms.
        #[arg(long, default_value_t = 1)]
        tick_ms: u64,
        /// Longest idle tick interval, reached by doubling once a plugin is idle, in ms.
        #[arg(long, default_value_t = 1000)]
        max_tick_ms: u64,
        /// Worker threads that run plugins' calls (0: one per core).
        #[arg(long, default_value_t = 0)]
        workers: usize,
        /// On SIGINT/SIGTERM, how long a plugin may take to finish its step and shut
        /// down before its call is interrupted, in ms.
        #[arg(long, default_value_t = 5000)]
        stop_grace_ms: u64,
        /// Address of the shared HTTP/WebSocket/SSE listener, bound when a plugin
        /// declares an inbound transport.
        #[arg(long, default_value = "127.0.0.1:8080", env = "PULP_LISTEN")]
        listen: String,
        /// PEM certificate chain: serve HTTPS (needs --tls-key).
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// PEM private key for --tls-cert.
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Refuse every module whose manifest does not pin it with `wasm_sha256`.
        #[arg(long, env = "PULP_REQUIRE_PINNED")]
        require_pinned: bool,
        /// Serve /metrics, /healthz and /readyz on this address (off by default;
        /// keep it on loopback or a private network).
        #[arg(long, env = "PULP_ADMIN")]
        admin: Option<String>,
        /// Reload a plugin when its manifest or module changes (development).
        #[arg(long)]
        watch: bool,
        /// Record what crosses into every plugin instance into this folder, for
        /// `pulp replay` (a manifest's `record = true` records that plugin into
        /// `<storage-root>/.pulp/recordings` without it).
        #[arg(long, env = "PULP_RECORD")]
        record: Option<PathBuf>,
        /// Record only this plugin (repeat for more; default: every plugin).
        #[arg(long = "record-plugin", requires = "record")]
        record_plugins: Vec<String>,
        /// Most bytes kept per recorded instance, in MiB; the oldest segments go first.
        #[arg(long, default_value_t = 256)]
        record_max_mb: u64,
        /// Segment size, in MiB: a segment is fsynced when it is closed.
        #[arg(long, default_value_t = 16)]
        record_segment_mb: u64,
    },
    /// Replay a recording (`pulp run --record DIR`) with no capability doing real
    /// work, and report where the guest does something else than recorded.
    Replay {
        /// The recording folder.
        dir: PathBuf,
        /// Only this plugin.
        #[arg(long)]
        plugin: Option<String>,
        /// Show outputs from this step (call number) on; earlier steps still run.
        #[arg(long)]
        from: Option<u64>,
        /// Stop before this step (call number).
        #[arg(long)]
        until: Option<u64>,
        /// Replay this module instead of the recorded one and list every difference.
        #[arg(long)]
        module: Option<PathBuf>,
        /// Write the outputs (each import call, each export's result) as JSON
        /// lines to this file (`-`: standard output).
        #[arg(long)]
        outputs: Option<PathBuf>,
        /// With --until: write the guest's memory and exported globals here.
        #[arg(long, requires = "until")]
        dump: Option<PathBuf>,
        /// The longest any call may run in the replay, in ms, whatever the
        /// recording's limits say.
        #[arg(long, default_value_t = crate::replay::DEFAULT_MAX_CALL_MS)]
        max_call_ms: u64,
    },
    /// Steer a running `pulp run` through its control socket.
    Ctl {
        #[command(subcommand)]
        op: CtlOp,
    },
    /// Ask a running `pulp run --admin ADDR` whether it is ready (exit 0) or not (1):
    /// a container's HEALTHCHECK without curl.
    Health {
        /// The admin listener's address.
        #[arg(default_value = "127.0.0.1:9090", env = "PULP_ADMIN")]
        addr: String,
        /// The route to ask: /readyz, or /healthz for liveness only.
        #[arg(long, default_value = "/readyz")]
        path: String,
        /// Give up after this many ms.
        #[arg(long, default_value_t = 3000)]
        timeout_ms: u64,
    },
    /// Report every problem of a plugin without running it; non-zero exit on any.
    /// Prints each module's SHA-256 (what `wasm_sha256` pins).
    Check {
        /// Manifests to check.
        #[arg(required = true)]
        manifests: Vec<PathBuf>,
        /// Count a module whose manifest has no `wasm_sha256` as a problem.
        #[arg(long, env = "PULP_REQUIRE_PINNED")]
        require_pinned: bool,
    },
    /// List the capabilities compiled into this program, with their imports.
    Caps,
    /// Write a new plugin skeleton (manifest + source) that passes `pulp check`.
    New {
        /// The plugin's name (also its folder's, unless --dir is given).
        name: String,
        /// The language of the skeleton.
        #[arg(long, value_enum, default_value_t = NewLang::Wat)]
        lang: NewLang,
        /// Where to write it [default: ./<name>].
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum CtlOp {
    /// Every plugin: version, state, instances, restarts, steps, queue, memory
    /// (guest+host), uptime.
    Status {
        /// Print the answer as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Load a plugin's manifest and module again; the new version takes over only
    /// if its `pulp_init` succeeds, else the running one keeps serving.
    Reload {
        /// The plugin's name.
        name: String,
    },
    /// Stop a plugin (its routes and connections go; the others keep running).
    Stop {
        /// The plugin's name.
        name: String,
    },
    /// Start a stopped or failed plugin from its manifest.
    Start {
        /// The plugin's name.
        name: String,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum NewLang {
    Wat,
    C,
    Rust,
    Go,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

/// Runs the `pulp` program on this process's arguments and returns its exit code:
/// `run`, `check`, `caps` and `new`, with every capability linked into the program.
/// The program's own log lines have target `pulp`, whatever binary calls this.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let format = cli.log_format;
    init_logging(format);
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            // Said once: a log record where logs are machine-read, else one line.
            match format {
                LogFormat::Json => tracing::error!(target: "pulp", "{e:#}"),
                LogFormat::Human => eprintln!("pulp: {e:#}"),
            }
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only for a person at a terminal, and never with NO_COLOR set
    // (https://no-color.org).
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let control_path = cli
        .control
        .clone()
        .unwrap_or_else(|| control::default_path(&cli.storage_root));
    if let Command::Ctl { op } = &cli.command {
        return ctl(&control_path, op);
    }
    let registry = Registry::new()?;
    let host_config = |fuel, settings, require_pinned| HostConfig {
        storage_root: cli.storage_root.clone(),
        cache_dir: if cli.no_cache {
            None
        } else {
            cli.cache_dir.clone().or_else(HostConfig::default_cache_dir)
        },
        fuel,
        settings,
        require_pinned,
        record: None,
    };
    if let Command::Replay {
        dir,
        plugin,
        from,
        until,
        module,
        outputs,
        dump,
        max_call_ms,
    } = cli.command
    {
        let outputs: Option<Box<dyn std::io::Write>> = match outputs {
            None => None,
            Some(p) if p.as_os_str() == "-" => Some(Box::new(std::io::stdout())),
            Some(p) => Some(Box::new(std::io::BufWriter::new(
                std::fs::File::create(&p)
                    .with_context(|| format!("outputs file {}", p.display()))?,
            ))),
        };
        return replay_command(crate::replay::ReplayOptions {
            dir,
            plugin,
            from,
            until,
            module,
            outputs,
            dump,
            max_call_ms,
        });
    }
    match cli.command {
        Command::Ctl { .. } | Command::Replay { .. } => unreachable!("answered above"),
        Command::Health {
            addr,
            path,
            timeout_ms,
        } => Ok(
            match crate::admin::probe(&addr, &path, Duration::from_millis(timeout_ms)) {
                Ok(body) => {
                    println!("{body}");
                    ExitCode::SUCCESS
                }
                Err(why) => {
                    println!("{why}");
                    ExitCode::FAILURE
                }
            },
        ),
        Command::Caps => {
            for e in registry.entries() {
                let c = &e.capability;
                let aliases = c.aliases();
                let alias = if aliases.is_empty() {
                    String::new()
                } else {
                    format!(" (alias {})", aliases.join(", "))
                };
                println!("{} [{:?}]{alias}", c.name(), e.binding);
                for i in c.imports() {
                    println!("  pulp.{}{}", i.name, i.signature());
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::New { name, lang, dir } => {
            let dir = dir.unwrap_or_else(|| PathBuf::from(&name));
            let lang = match lang {
                NewLang::Wat => Lang::Wat,
                NewLang::C => Lang::C,
                NewLang::Rust => Lang::Rust,
                NewLang::Go => Lang::Go,
            };
            let files = new_plugin(&dir, &name, lang).map_err(anyhow::Error::msg)?;
            for f in &files {
                println!("wrote {}", f.display());
            }
            let manifest = dir.join("pulp.plugin.toml");
            match lang {
                Lang::Wat => println!("run it: pulp run {}", manifest.display()),
                Lang::C => println!(
                    "build it: clang --target=wasm32-wasi -mexec-model=reactor -O2 -I {d} -o {d}/plugin.wasm {d}/plugin.c\nthen: pulp check {m} && pulp run {m}",
                    d = dir.display(),
                    m = manifest.display()
                ),
                Lang::Go => println!(
                    "build it: cd {d} && GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o plugin.wasm .\nthen: pulp check {m} && pulp run {m}",
                    d = dir.display(),
                    m = manifest.display()
                ),
                Lang::Rust => println!(
                    "build it: cargo build --release --target wasm32-wasip1 --manifest-path {d}/Cargo.toml\n  (without rustup's target, on Debian: pdk/rust/build-wasm {d}/Cargo.toml from pulp's repository)\nthen: pulp check {m} && pulp run {m}",
                    d = dir.display(),
                    m = manifest.display()
                ),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Check {
            manifests,
            require_pinned,
        } => {
            let host = Host::new(host_config(false, Default::default(), require_pinned))?;
            let mut failed = false;
            // Links are checked across the manifests given together.
            let loaded: Vec<Manifest> = manifests
                .iter()
                .filter_map(|p| Manifest::load(p).ok())
                .collect();
            if manifests.len() > 1 && loaded.len() == manifests.len() {
                if let Err(problems) = crate::links::start_order(&loaded) {
                    failed = true;
                    println!("links: {} problem(s)", problems.len());
                    for p in problems {
                        println!("  - {p}");
                    }
                }
                for line in crate::links::callers(&loaded) {
                    println!("calls: {line}");
                }
            }
            for path in manifests {
                let problems = check(&host, &path, &registry);
                if let Ok(m) = Manifest::load(&path) {
                    if let Ok(wasm) = crate::read_regular(&m.wasm, crate::MAX_MODULE_BYTES) {
                        println!(
                            "{}: module {} sha256 {}",
                            path.display(),
                            m.wasm.display(),
                            sha256_hex(&wasm)
                        );
                    }
                }
                if problems.is_empty() {
                    println!("{}: ok", path.display());
                } else {
                    failed = true;
                    println!("{}: {} problem(s)", path.display(), problems.len());
                    for p in problems {
                        println!("  - {p}");
                    }
                }
            }
            Ok(if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Run {
            manifests,
            tick_ms,
            max_tick_ms,
            workers,
            stop_grace_ms,
            listen,
            tls_cert,
            tls_key,
            require_pinned,
            admin,
            watch,
            record,
            record_plugins,
            record_max_mb,
            record_segment_mb,
        } => {
            // Before anything else, so a signal during start-up is not the default kill.
            let pending = control::Pending::default();
            let stop = stop_flag(stop_grace_ms, pending.clone())?;
            // Bound first: a second `pulp run` on the same storage root stops here,
            // before its plugins touch their storage. Requests wait in the channel
            // until the plugins run.
            let (commands, requests) = control::channel();
            let _control = control::serve(&control_path, commands.clone())
                .with_context(|| format!("control socket {}", control_path.display()))?;
            let manifests = manifests
                .iter()
                .map(Manifest::load)
                .collect::<Result<Vec<_>, _>>()?;
            for (i, m) in manifests.iter().enumerate() {
                if let Some(first) = manifests[..i].iter().find(|o| o.name == m.name) {
                    anyhow::bail!(
                        "manifests {} and {} both name a plugin \"{}\"; names must be unique (each names a storage folder)",
                        first.path.display(),
                        m.path.display(),
                        m.name
                    );
                }
            }
            // Each plugin after those it depends_on; every link problem at once.
            let order = crate::links::start_order(&manifests)
                .map_err(|p| anyhow::anyhow!("{}", p.join("; ")))?;
            let fuel = manifests.iter().any(|m| m.limits.fuel.is_some());
            let mut http = toml::Table::new();
            http.insert("listen".into(), listen.into());
            for (key, path) in [("tls_cert", tls_cert), ("tls_key", tls_key)] {
                if let Some(p) = path {
                    http.insert(key.into(), p.display().to_string().into());
                }
            }
            // The listener flags go to whichever capability reads "http" (none in a
            // program built without the `http` feature).
            let mut settings = std::collections::BTreeMap::new();
            if registry
                .entries()
                .iter()
                .any(|e| e.capability.host_section() == Some("http"))
            {
                settings.insert("http".to_string(), http);
            }
            let problems = registry.check_host_settings(&settings);
            if !problems.is_empty() {
                anyhow::bail!("{}", problems.join("; "));
            }
            let mut config = host_config(fuel, settings, require_pinned);
            config.record = recording(
                &cli.storage_root,
                &manifests,
                record,
                record_plugins,
                record_max_mb,
                record_segment_mb,
            );
            if let Some(r) = &config.record {
                tracing::info!(dir = %r.dir.display(), "recording for pulp replay");
            }
            let host = Host::new(config)?;
            let mut runtime = Runtime::new(RuntimeConfig {
                workers,
                tick: Duration::from_millis(tick_ms.max(1)),
                max_tick: Duration::from_millis(max_tick_ms.max(tick_ms).max(1)),
                stop_grace: Duration::from_millis(stop_grace_ms),
                ..RuntimeConfig::default()
            });
            // Each plugin runs before the next is initialised: a pulp_init may call
            // the plugins it depends on. A failure stops those already running.
            for m in order.iter().map(|&i| &manifests[i]) {
                let started = (|| -> anyhow::Result<()> {
                    let mut p = Plugin::load(&host, m, Some(&registry))?;
                    p.init().context("init failed")?;
                    let mut replicas = Vec::new();
                    for _ in 1..m.limits.instances {
                        let mut r = p.replica()?;
                        r.init().context("init failed")?;
                        replicas.push(r);
                    }
                    tracing::info!(target: "pulp", plugin = p.name(), version = m.version, module = ?p.module_source(), instances = m.limits.instances, "plugin started");
                    runtime.spawn(p)?;
                    for r in replicas {
                        runtime.spawn(r)?;
                    }
                    Ok(())
                })();
                if let Err(e) = started {
                    runtime.stop();
                    return Err(e);
                }
            }
            let _admin = match admin {
                Some(addr) => {
                    let a = crate::admin::serve(
                        &addr,
                        runtime.roster(),
                        readiness(&host, &manifests, runtime.roster()),
                    )
                    .with_context(|| format!("admin listener {addr}"))?;
                    tracing::info!(target: "pulp", addr = %a.addr(), "admin listener: /metrics /healthz /readyz");
                    Some(a)
                }
                None => None,
            };
            tracing::info!(target: "pulp", path = %control_path.display(), "control socket: pulp ctl status | reload | stop | start");
            let _watcher = watch.then(|| {
                tracing::info!(target: "pulp", "watching the plugins' manifests and modules");
                control::watch(&manifests, commands, Duration::from_millis(300))
            });
            let mut supervisor =
                control::Supervisor::new(host, registry, runtime, &manifests, pending);
            serve_until_signal(&mut supervisor, &requests, &stop)?;
            let runtime = supervisor.into_runtime();
            let mut ok = true;
            for r in runtime.stop() {
                if let Some(v) = r.probe_last_call {
                    tracing::info!(target: "pulp", plugin = r.name, probe_last_call = v, "probe");
                }
                if let Some(v) = r.probe_config_marker {
                    tracing::info!(target: "pulp", plugin = r.name, probe_config_marker = v, "probe");
                }
                match r.error {
                    None => {
                        tracing::info!(target: "pulp", plugin = r.name, restarts = r.restarts, "shut down")
                    }
                    Some(e) => {
                        ok = false;
                        tracing::error!(target: "pulp", plugin = r.name, "did not shut down cleanly: {e}");
                    }
                }
            }
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

/// A flag SIGINT and SIGTERM set. The first says what happens next; a second one,
/// once the flag is set, says so and exits at once (130) without waiting for the
/// plugins.
/// What `pulp run` records: every plugin (or those named) with `--record DIR`,
/// and those whose manifest says `record = true`.
fn recording(
    storage_root: &std::path::Path,
    manifests: &[Manifest],
    dir: Option<PathBuf>,
    only: Vec<String>,
    max_mb: u64,
    segment_mb: u64,
) -> Option<crate::record::RecordConfig> {
    let by_manifest: Vec<String> = manifests
        .iter()
        .filter(|m| m.record)
        .map(|m| m.name.clone())
        .collect();
    let (dir, plugins) = match dir {
        Some(d) if only.is_empty() => (d, Vec::new()),
        Some(d) => (d, only.into_iter().chain(by_manifest).collect()),
        None if by_manifest.is_empty() => return None,
        None => (storage_root.join(".pulp").join("recordings"), by_manifest),
    };
    Some(crate::record::RecordConfig {
        dir,
        segment_bytes: segment_mb.max(1) << 20,
        max_bytes: max_mb.max(1) << 20,
        plugins,
    })
}

/// `pulp replay`: prints a report per recorded instance; exit 1 on any difference.
///
/// Everything printed that came from the recording (names, traps, requests) is
/// escaped line by line, so a recording cannot forge a line of the report.
fn replay_command(options: crate::replay::ReplayOptions) -> anyhow::Result<ExitCode> {
    let other = options.module.is_some();
    let reports = crate::replay::replay(options)?;
    let esc = |s: &str| pulp_ext::log_text(s.as_bytes()).into_owned();
    let mut differ = false;
    for r in &reports {
        let speed = if r.recorded_ns > 0 {
            format!(
                "; the recording spans {:.3} s ({:.0}x faster)",
                r.recorded_ns as f64 / 1e9,
                r.recorded_ns as f64 / 1e9 / r.replay_secs.max(1e-9)
            )
        } else {
            String::new()
        };
        eprintln!(
            "{}: {} instance(s), {} call(s) ({} steps) replayed in {:.3} s{speed}",
            esc(&r.stream),
            r.instances,
            r.entries,
            r.steps,
            r.replay_secs
        );
        if r.entries == 0 && r.instances == 0 {
            differ = true;
            eprintln!("  nothing replayed: the recording holds no instance's start");
        }
        for g in &r.gaps {
            eprintln!(
                "  gap: the recorder dropped {g} bytes here; replay resumed at the next instance"
            );
        }
        if r.skipped > 0 {
            eprintln!(
                "  skipped {} call(s) whose instance began before what the recording kept",
                r.skipped
            );
        }
        for (at, trap) in &r.traps {
            eprintln!("  {}: trapped as recorded:\n{}", esc(at), indent(trap));
        }
        if let Some(s) = r.stopped_at {
            eprintln!("  stopped before step {s}");
        }
        if r.differences.is_empty() {
            eprintln!("  identical to the recording");
        } else {
            differ = true;
            let what = if other { "differs" } else { "diverged" };
            for d in &r.differences {
                eprintln!("  {what} at {}: {}", esc(&d.at), esc(&d.what));
            }
        }
    }
    Ok(if differ {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `s` indented, each line escaped (a trap's text has lines of its own).
fn indent(s: &str) -> String {
    s.lines()
        .map(|l| format!("    {}", pulp_ext::log_text(l.as_bytes())))
        .collect::<Vec<_>>()
        .join("\n")
}

fn stop_flag(grace_ms: u64, pending: control::Pending) -> anyhow::Result<Arc<AtomicBool>> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let flag = Arc::new(AtomicBool::new(false));
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    let set = flag.clone();
    std::thread::Builder::new()
        .name("pulp-signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                let name = if sig == SIGINT { "SIGINT" } else { "SIGTERM" };
                if set.swap(true, Ordering::SeqCst) {
                    tracing::warn!(target: "pulp", "second {name}: exiting now (status 130) without waiting for the plugins to shut down");
                    std::process::exit(130);
                }
                tracing::info!(target: "pulp", "{name}: stopping; the plugins get {grace_ms} ms to finish (send it again to exit at once)");
                // A reload or start initialising a new version gives up now.
                for i in pending.lock().unwrap_or_else(|p| p.into_inner()).iter() {
                    i.interrupt();
                }
            }
        })?;
    Ok(flag)
}

/// `/readyz`: every plugin was initialised before the admin listener started; none
/// has failed for good; the plugins' listener is bound when one declares an inbound
/// transport.
fn readiness(host: &Host, manifests: &[Manifest], roster: crate::Roster) -> crate::admin::Ready {
    let shared = host.shared().clone();
    let inbound = manifests.iter().any(|m| {
        m.capabilities
            .iter()
            .any(|c| c.starts_with("transport.") && c.ends_with(".inbound") || c == "transport.sse")
    });
    let names: Vec<String> = manifests.iter().map(|m| m.name.clone()).collect();
    Arc::new(move || {
        let handles = roster.handles();
        // A plugin whose start failed after it had failed for good is not listed.
        let missing: Vec<&str> = names
            .iter()
            .filter(|n| !handles.iter().any(|h| h.name() == n.as_str()))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Err(format!("not running: {}", missing.join(", ")));
        }
        let mut failed: Vec<&str> = handles
            .iter()
            .filter(|h| matches!(h.health(), crate::Health::Failed(_)))
            .map(|h| h.name())
            .collect();
        failed.dedup();
        if !failed.is_empty() {
            return Err(format!("failed for good: {}", failed.join(", ")));
        }
        #[cfg(feature = "http")]
        if inbound && ext_http::listening(&shared).is_none() {
            return Err("the plugins' HTTP listener is not bound".into());
        }
        let _ = (&shared, inbound);
        Ok(())
    })
}

/// Carries out control requests until the stop flag is set, or until every plugin
/// has failed for good.
fn serve_until_signal(
    supervisor: &mut control::Supervisor,
    requests: &std::sync::mpsc::Receiver<control::Command>,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    use std::sync::mpsc::RecvTimeoutError;
    while !stop.load(Ordering::Relaxed) {
        match requests.recv_timeout(Duration::from_millis(100)) {
            Ok(c) => supervisor.handle(c),
            Err(RecvTimeoutError::Timeout) if supervisor.runtime().all_failed() => {
                anyhow::bail!("every plugin has stopped after failing")
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    Ok(())
}

/// `pulp ctl`: one request to the control socket, its answer printed.
fn ctl(path: &std::path::Path, op: &CtlOp) -> anyhow::Result<ExitCode> {
    use control::Request;
    let (request, json) = match op {
        CtlOp::Status { json } => (Request::Status, *json),
        CtlOp::Reload { name } => (
            Request::Reload {
                plugin: name.clone(),
            },
            false,
        ),
        CtlOp::Stop { name } => (
            Request::Stop {
                plugin: name.clone(),
            },
            false,
        ),
        CtlOp::Start { name } => (
            Request::Start {
                plugin: name.clone(),
            },
            false,
        ),
    };
    let answer = control::ask(path, &request).map_err(anyhow::Error::msg)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
    } else if request == Request::Status {
        print!("{}", control::table(&answer.plugins));
    } else {
        println!("{}", answer.message);
    }
    if !answer.ok {
        if !json && request == Request::Status {
            eprintln!("{}", answer.message);
        }
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
