//! `pulp replay`: runs a recorded plugin's module alone, feeding it what the
//! recording says crossed into it, and checks that it asks for the same things.
//!
//! Each stream (an instance slot of a plugin) is replayed on its own: its
//! instances are made again from the kept module (or `--module`), every export
//! call is repeated with the recorded input, every import returns the recorded
//! result and no capability does real work. The first difference is reported
//! with the step it happened in; with another module every difference is listed
//! (up to [`MAX_DIFFERENCES`]), each step starting from the recorded inputs again.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use pulp_ext::tape::{
    show, ArgView, Begin, CallView, EntryKind, Outcome, Player, Rec, TRAP_INTERRUPT,
};

use crate::record::{ReadError, StreamReader};
use crate::{Envelope, Host, HostConfig, Manifest, Plugin, Registry};

/// At most this many differences are listed for a stream.
pub const MAX_DIFFERENCES: usize = 100;

/// What to replay and what to show.
#[derive(Default)]
pub struct ReplayOptions {
    /// The recording folder (`pulp run --record DIR`).
    pub dir: PathBuf,
    /// Only this plugin (every plugin in the recording when `None`).
    pub plugin: Option<String>,
    /// Show outputs from this step (call number) on; earlier steps still run.
    pub from: Option<u64>,
    /// Stop before this step (call number).
    pub until: Option<u64>,
    /// Replay this module instead of the recorded one.
    pub module: Option<PathBuf>,
    /// Where outputs go as JSON lines, one per import call and per entry.
    pub outputs: Option<Box<dyn Write>>,
    /// Where to write the guest's memory and exported globals when `until` stops it.
    pub dump: Option<PathBuf>,
    /// The longest any call may run in the replay, in ms (0: [`DEFAULT_MAX_CALL_MS`]),
    /// whatever the recording's limits say.
    pub max_call_ms: u64,
}

/// A replayed call runs at most this long unless `--max-call-ms` says otherwise:
/// a recording is not trusted to set the replay's deadlines.
pub const DEFAULT_MAX_CALL_MS: u64 = 10_000;

/// One difference between the replay and the recording.
#[derive(Debug, Clone)]
pub struct Difference {
    /// Where: `step 1234`, `pulp_init`, ... and the instance.
    pub at: String,
    /// What differs.
    pub what: String,
}

/// How one stream's replay went.
#[derive(Debug, Default)]
pub struct StreamReport {
    /// `plugin/stream`.
    pub stream: String,
    /// Instances made.
    pub instances: u64,
    /// Export calls replayed.
    pub entries: u64,
    /// Steps among them.
    pub steps: u64,
    /// Differences (empty: the replay matched the recording).
    pub differences: Vec<Difference>,
    /// Traps the recording had and the replay reproduced: (where, the trap).
    pub traps: Vec<(String, String)>,
    /// Gaps in the recording (bytes dropped), and entries skipped for them.
    pub gaps: Vec<u64>,
    /// Entries skipped: their instance began before the recording's first segment, or after a gap.
    pub skipped: u64,
    /// Nanoseconds the recording spans (first to last step's wall time).
    pub recorded_ns: u64,
    /// Seconds the replay took.
    pub replay_secs: f64,
    /// The replay stopped at `until`.
    pub stopped_at: Option<u64>,
}

/// Why a replay could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The recording cannot be read.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The folder holds no recording of the plugin.
    #[error("{0}")]
    Missing(String),
    /// The module cannot be loaded.
    #[error("{0}")]
    Load(String),
}

/// Replays every selected stream of `options.dir`.
pub fn replay(mut options: ReplayOptions) -> Result<Vec<StreamReport>, ReplayError> {
    options.dir = std::fs::canonicalize(&options.dir).map_err(|cause| ReadError::Io {
        path: options.dir.clone(),
        cause,
    })?;
    let streams = streams(&options.dir, options.plugin.as_deref())?;
    let registry = Registry::new().map_err(|e| ReplayError::Load(e.to_string()))?;
    let mut reports = Vec::new();
    for (plugin, n, dir) in streams {
        reports.push(replay_stream(&mut options, &registry, &plugin, n, &dir)?);
    }
    Ok(reports)
}

/// The recording's streams: (plugin, number, folder), in order.
fn streams(dir: &Path, only: Option<&str>) -> Result<Vec<(String, u64, PathBuf)>, ReplayError> {
    let io = |cause, path: &Path| ReadError::Io {
        path: path.to_path_buf(),
        cause,
    };
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| io(e, dir))?;
    for e in entries {
        let e = e.map_err(|e| io(e, dir))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name == "modules" || !e.path().is_dir() || only.is_some_and(|o| o != name) {
            continue;
        }
        for s in std::fs::read_dir(e.path()).map_err(|c| io(c, &e.path()))? {
            let s = s.map_err(|c| io(c, &e.path()))?;
            if let Some(n) = s.file_name().to_str().and_then(|n| n.parse::<u64>().ok()) {
                out.push((name.clone(), n, s.path()));
            }
        }
    }
    out.sort();
    if out.is_empty() {
        return Err(ReplayError::Missing(match only {
            Some(p) => format!("{} holds no recording of plugin \"{p}\"", dir.display()),
            None => format!("{} holds no recording", dir.display()),
        }));
    }
    Ok(out)
}

/// One export call as recorded: its kind, input, the records inside it and how it ended.
struct Entry {
    kind: EntryKind,
    input: Vec<u8>,
    script: Vec<Rec>,
    leave: Option<Outcome>,
}

enum Item {
    Begin(Begin),
    Entry(Entry),
    Gap(u64),
}

/// The next begin, entry or gap; an entry cut short by the end of the recording
/// has no `leave`.
fn next_item(r: &mut StreamReader) -> Result<Option<Item>, ReadError> {
    let Some(rec) = r.next_rec()? else {
        return Ok(None);
    };
    Ok(Some(match rec {
        Rec::Begin(b) => Item::Begin(b),
        Rec::Gap(n) => Item::Gap(n),
        Rec::Enter(kind, input) => {
            let mut script = Vec::new();
            let leave = loop {
                match r.next_rec()? {
                    Some(Rec::Leave(o)) => break Some(o),
                    Some(Rec::Gap(n)) => return Ok(Some(Item::Gap(n))),
                    Some(Rec::Begin(b)) => {
                        // The instance ended inside the entry (the host stopped).
                        return Ok(Some(Item::Begin(b)));
                    }
                    Some(rec) => script.push(rec),
                    None => break None,
                }
            };
            Item::Entry(Entry {
                kind,
                input,
                script,
                leave,
            })
        }
        // Inside no entry (the ring cut the entry's start): nothing to replay.
        Rec::Import(_) | Rec::Grow { .. } | Rec::Leave(_) => return next_item(r),
    }))
}

fn manifest_for(b: &Begin, wasm: &Path, dir: &Path, max_ms: u64) -> Result<Manifest, ReplayError> {
    let mut t = toml::Table::new();
    t.insert("name".into(), b.plugin.clone().into());
    t.insert("version".into(), b.version.clone().into());
    t.insert("wasm".into(), wasm.display().to_string().into());
    t.insert(
        "capabilities".into(),
        toml::Value::Array(b.capabilities.iter().map(|c| c.clone().into()).collect()),
    );
    let mut l = toml::Table::new();
    let int = |v: u64| toml::Value::Integer(v.min(i64::MAX as u64) as i64);
    l.insert("memory_mb".into(), int(b.memory_mb));
    l.insert("max_message_bytes".into(), int(b.max_message));
    l.insert("call_timeout_ms".into(), int(b.call_timeout_ms.min(max_ms)));
    l.insert("init_timeout_ms".into(), int(b.init_timeout_ms.min(max_ms)));
    if let Some(f) = b.fuel {
        l.insert("fuel".into(), int(f));
    }
    t.insert("limits".into(), toml::Value::Table(l));
    let text = toml::to_string(&t).map_err(|e| ReplayError::Load(e.to_string()))?;
    Manifest::parse(&text, &dir.join("replay.plugin.toml")).map_err(|e| {
        ReplayError::Load(format!(
            "the recording's instance of \"{}\" cannot be set up again: {e}",
            b.plugin
        ))
    })
}

struct Run<'a> {
    options: &'a mut ReplayOptions,
    report: StreamReport,
    instance: u64,
    other_module: bool,
}

impl Run<'_> {
    fn differ(&mut self, at: String, what: String) {
        if self.report.differences.len() < MAX_DIFFERENCES {
            self.report.differences.push(Difference { at, what });
        }
    }

    /// Stop at the first difference unless another module is being compared.
    fn done(&self) -> bool {
        !self.report.differences.is_empty()
            && (!self.other_module || self.report.differences.len() >= MAX_DIFFERENCES)
    }

    fn emit(&mut self, line: serde_json::Value) {
        if let Some(out) = &mut self.options.outputs {
            let _ = writeln!(out, "{line}");
        }
    }
}

fn where_(kind: EntryKind, input: &[u8], instance: u64) -> (String, Option<u64>) {
    match kind {
        EntryKind::Step if input.len() >= 20 => {
            let n = u64::from_le_bytes(input[..8].try_into().expect("8"));
            (format!("step {n} (instance {instance})"), Some(n))
        }
        k => (format!("{} (instance {instance})", k.export()), None),
    }
}

fn replay_stream(
    options: &mut ReplayOptions,
    registry: &Registry,
    plugin: &str,
    n: u64,
    dir: &Path,
) -> Result<StreamReport, ReplayError> {
    let mut reader = StreamReader::open(dir)?;
    let other_module = options.module.is_some();
    let mut run = Run {
        options,
        report: StreamReport {
            stream: format!("{plugin}/{n}"),
            ..Default::default()
        },
        instance: 0,
        other_module,
    };
    let started = Instant::now();
    let mut host: Option<Host> = None;
    let mut live: Option<Plugin> = None;
    let mut begin: Option<Begin> = None;
    let (mut first_wall, mut last_wall) = (None::<u64>, 0u64);
    while let Some(item) = next_item(&mut reader)? {
        if run.done() {
            break;
        }
        match item {
            Item::Gap(bytes) => {
                run.report.gaps.push(bytes);
                live = None;
                begin = None;
            }
            Item::Begin(b) => {
                // The instantiation is the entry that follows.
                let Some(Item::Entry(e)) = next_item(&mut reader)? else {
                    continue;
                };
                run.instance = b.instance;
                run.report.instances += 1;
                let wasm = match &run.options.module {
                    Some(m) => m.clone(),
                    None => kept_module(&run.options.dir, plugin, &b)?,
                };
                if host.is_none() {
                    let root =
                        std::env::temp_dir().join(format!("pulp-replay-{}", std::process::id()));
                    host = Some(
                        Host::new(HostConfig {
                            storage_root: root,
                            cache_dir: None,
                            fuel: b.fuel.is_some(),
                            ..HostConfig::default()
                        })
                        .map_err(|e| ReplayError::Load(format!("{e:#}")))?,
                    );
                }
                let max_ms = match run.options.max_call_ms {
                    0 => DEFAULT_MAX_CALL_MS,
                    ms => ms,
                };
                let manifest = manifest_for(&b, &wasm, dir, max_ms)?;
                let mut player = Player::new(e.script, !other_module, false);
                player.interrupted = interrupted(e.leave.as_ref());
                let (player, result) = match live.take() {
                    Some(mut p) if begin.as_ref().is_some_and(|x| x.module == b.module) => {
                        let (player, r) = p.replay_instantiate(player);
                        live = Some(p);
                        (player, r.map_err(|e| e.to_string()))
                    }
                    _ => {
                        let host = host.as_ref().expect("made above");
                        match Plugin::load_replay(host, &manifest, registry, player) {
                            Ok(mut p) => {
                                let player = p.swap_player(None);
                                live = Some(p);
                                (player, Ok(()))
                            }
                            Err(crate::LoadError::Instantiate { message, .. }) => {
                                (None, Err(message))
                            }
                            Err(e) => return Err(ReplayError::Load(e.to_string())),
                        }
                    }
                };
                begin = Some(b);
                let at = format!("instantiation (instance {})", run.instance);
                match (player, result) {
                    (Some(p), _) => check(&mut run, &at, (e.kind, None), p, e.leave.as_ref()),
                    (None, Err(why)) => {
                        if !matches!(e.leave, Some(Outcome::Trap(..))) {
                            run.differ(at, format!("the instance could not be made: {why}"));
                        }
                        live = None;
                    }
                    (None, Ok(())) => {}
                }
            }
            Item::Entry(e) => {
                let Some(p) = live.as_mut() else {
                    run.report.skipped += 1;
                    continue;
                };
                let b = begin.as_ref().expect("an instance has begun");
                let (at, step) = where_(e.kind, &e.input, run.instance);
                if let (Some(until), Some(s)) = (run.options.until, step) {
                    if s >= until {
                        run.report.stopped_at = Some(s);
                        if let Some(d) = &run.options.dump {
                            p.dump(d).map_err(|e| {
                                ReplayError::Load(format!("cannot dump to {}: {e}", d.display()))
                            })?;
                        }
                        break;
                    }
                }
                if e.kind == EntryKind::Step && e.input.len() >= 20 {
                    let wall = u64::from_le_bytes(e.input[8..16].try_into().expect("8"));
                    first_wall.get_or_insert(wall);
                    last_wall = wall;
                    run.report.steps += 1;
                }
                run.report.entries += 1;
                let show_outputs = run.options.outputs.is_some()
                    && run.options.from.is_none_or(|f| step.is_none_or(|s| s >= f));
                let mut player = Player::new(e.script, !other_module, show_outputs);
                player.interrupted = interrupted(e.leave.as_ref());
                p.swap_player(Some(player));
                match e.kind {
                    EntryKind::Init => {
                        let _ = p.init_with(&e.input);
                    }
                    EntryKind::Step => match Envelope::parse(&e.input) {
                        Some(env) => {
                            let _ = p.step(&env);
                        }
                        None => {
                            run.differ(at.clone(), "the recorded envelope is malformed".into());
                        }
                    },
                    EntryKind::OnCall => match split_call(&e.input) {
                        Some((name, args)) => {
                            let _ = p.on_call(name, args, b.call_timeout_ms, usize::MAX);
                        }
                        None => run.differ(at.clone(), "the recorded call is malformed".into()),
                    },
                    EntryKind::Shutdown => {
                        let _ = p.shutdown();
                    }
                    EntryKind::Probe => {
                        let _ = p.probe(&String::from_utf8_lossy(&e.input));
                    }
                    EntryKind::Instantiate => {}
                }
                if let Some(player) = p.swap_player(None) {
                    check(&mut run, &at, (e.kind, step), player, e.leave.as_ref());
                }
            }
        }
    }
    run.report.recorded_ns = last_wall.saturating_sub(first_wall.unwrap_or(last_wall));
    run.report.replay_secs = started.elapsed().as_secs_f64();
    if reader.first_segment.is_some_and(|s| s > 0) && run.report.skipped > 0 {
        tracing::info!(
            stream = %run.report.stream,
            "the recording's older segments were deleted (ring); replay began at the first instance left"
        );
    }
    Ok(run.report)
}

/// Whether a recorded entry ended at its deadline (or the host's stop).
fn interrupted(o: Option<&Outcome>) -> bool {
    matches!(o, Some(Outcome::Trap(code, _)) if *code == TRAP_INTERRUPT)
}

/// The recorded module of `b`, checked: its name is a SHA-256 and the file has it.
fn kept_module(dir: &Path, plugin: &str, b: &Begin) -> Result<PathBuf, ReplayError> {
    let plugin = pulp_ext::log_text(plugin.as_bytes());
    if b.module.len() != 64
        || !b
            .module
            .bytes()
            .all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(ReplayError::Load(format!(
            "the recording of \"{plugin}\" names its module {}, which is not a SHA-256",
            pulp_ext::log_text(b.module.as_bytes())
        )));
    }
    let path = dir.join("modules").join(format!("{}.wasm", b.module));
    let wasm = crate::read_regular(&path, crate::MAX_MODULE_BYTES).map_err(|e| {
        ReplayError::Missing(format!(
            "the module of \"{plugin}\" is missing or unreadable: {}: {e}",
            path.display()
        ))
    })?;
    if crate::sha256_hex(&wasm) != b.module {
        return Err(ReplayError::Load(format!(
            "{} does not hold the module the recording names (its SHA-256 differs)",
            path.display()
        )));
    }
    Ok(path)
}

fn split_call(input: &[u8]) -> Option<(&str, &[u8])> {
    let n = u32::from_le_bytes(input.get(..4)?.try_into().ok()?) as usize;
    let name = std::str::from_utf8(input.get(4..4 + n)?).ok()?;
    Some((name, &input[4 + n..]))
}

/// Compares what the replayed entry did with the recording, and writes its outputs.
fn check(
    run: &mut Run<'_>,
    at: &str,
    (kind, step): (EntryKind, Option<u64>),
    p: Player,
    recorded: Option<&Outcome>,
) {
    let entry = serde_json::json!(step);
    if let Some(calls) = &p.outputs {
        for c in calls {
            let line = call_json(run.instance, (kind, step), c);
            run.emit(line);
        }
    }
    let outcome = p.outcome.clone();
    if let Some(o) = &outcome {
        if p.outputs.is_some() {
            let mut line = serde_json::json!({"instance": run.instance, "entry": kind.export(), "step": entry});
            match o {
                Outcome::Returned(v, answer) => {
                    line["returned"] = (*v).into();
                    if !answer.is_empty() {
                        line["answer"] = bytes_json(answer);
                    }
                }
                Outcome::Trap(_, text) => line["trapped"] = first_line(text).into(),
                Outcome::Refused(text) => line["refused"] = text.clone().into(),
            }
            run.emit(line);
        }
    }
    if let Some(why) = &p.diverged {
        run.differ(at.to_string(), why.clone());
        return;
    }
    // An entry the deadline ended may end with fewer of its calls made: the
    // replay's deadline falls elsewhere.
    if p.interrupted && matches!(p.outcome, Some(Outcome::Trap(c, _)) if c == TRAP_INTERRUPT) {
        return;
    }
    let left: Vec<&Rec> = p
        .rest()
        .filter(|r| !run.other_module || matches!(r, Rec::Import(_)))
        .collect();
    if let Some(next) = left.first() {
        let what = match next {
            Rec::Import(i) => format!(
                "the guest made {} import calls; the recording has {} more, next `{}` with {}",
                p.calls,
                left.len(),
                i.name,
                show(&i.preview, i.input_len)
            ),
            Rec::Grow { desired, .. } => {
                format!("the recording grew the guest's memory to {desired} bytes after its last call; the replay did not")
            }
            other => format!("the recording has {other:?} left"),
        };
        run.differ(at.to_string(), what);
        return;
    }
    let (Some(now), Some(then)) = (outcome, recorded) else {
        return;
    };
    let same = match (&now, then) {
        (Outcome::Trap(a, _), Outcome::Trap(b, _))
            if *a == TRAP_INTERRUPT && *b == TRAP_INTERRUPT =>
        {
            true
        }
        (Outcome::Trap(a, x), Outcome::Trap(b, y)) => a == b && x == y,
        (a, b) => a == b,
    };
    if !same {
        run.differ(
            at.to_string(),
            format!("{}; recorded: {}", describe(&now), describe(then)),
        );
    } else if let Outcome::Trap(_, text) = then {
        run.report.traps.push((at.to_string(), text.clone()));
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").to_string()
}

/// An outcome in words: `returned 0`, `trapped: wasm trap: ...`.
pub fn describe(o: &Outcome) -> String {
    match o {
        Outcome::Returned(v, a) if a.is_empty() => format!("returned {v}"),
        Outcome::Returned(v, a) => format!("returned {v} with answer {}", show(a, a.len() as u64)),
        Outcome::Trap(_, t) => format!("trapped: {t}"),
        Outcome::Refused(t) => format!("the host could not pass the input: {t}"),
    }
}

fn bytes_json(b: &[u8]) -> serde_json::Value {
    match std::str::from_utf8(b) {
        Ok(s) => s.into(),
        Err(_) => {
            serde_json::json!({"hex": b.iter().map(|x| format!("{x:02x}")).collect::<String>()})
        }
    }
}

fn msgpack_json(b: &[u8]) -> serde_json::Value {
    fn conv(v: rmpv::Value) -> serde_json::Value {
        use rmpv::Value as V;
        match v {
            V::Nil => serde_json::Value::Null,
            V::Boolean(b) => b.into(),
            V::Integer(i) => i
                .as_i64()
                .map(Into::into)
                .or_else(|| i.as_u64().map(Into::into))
                .unwrap_or(serde_json::Value::Null),
            V::F32(f) => (f as f64).into(),
            V::F64(f) => f.into(),
            V::String(s) => s.into_str().unwrap_or_default().into(),
            V::Binary(b) => bytes_json(&b),
            V::Array(a) => a.into_iter().map(conv).collect(),
            V::Map(m) => serde_json::Value::Object(
                m.into_iter()
                    .map(|(k, v)| {
                        let k = match k {
                            V::String(s) => s.into_str().unwrap_or_default(),
                            other => other.to_string(),
                        };
                        (k, conv(v))
                    })
                    .collect(),
            ),
            V::Ext(t, d) => serde_json::json!({"ext": t, "data": bytes_json(&d)}),
        }
    }
    match rmpv::decode::read_value(&mut &b[..]) {
        Ok(v) => conv(v),
        Err(_) => bytes_json(b),
    }
}

fn call_json(
    instance: u64,
    (kind, step): (EntryKind, Option<u64>),
    c: &CallView,
) -> serde_json::Value {
    let args: Vec<serde_json::Value> = c
        .args
        .iter()
        .map(|a| match a {
            ArgView::Int(i) => (*i).into(),
            ArgView::Text(s) => s.clone().into(),
            ArgView::Bytes(b) => bytes_json(b),
            ArgView::Msgpack(b) => msgpack_json(b),
            ArgView::Buffer(n) => serde_json::json!({"buffer": n}),
            ArgView::Unreadable(n) => serde_json::json!({"unreadable": n}),
        })
        .collect();
    serde_json::json!({
        "instance": instance,
        "entry": kind.export(),
        "step": step,
        "import": c.import,
        "args": args,
        "status": c.code,
    })
}
