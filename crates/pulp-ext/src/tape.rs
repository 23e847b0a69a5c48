//! Record and replay at the one place where a plugin meets the host.
//!
//! Everything nondeterministic a guest sees crosses the host: the inputs of its
//! exports (config, envelopes, calls), each import's outcome (bytes written into
//! its memory, status, `last_error`), the WASI clocks and randomness, and whether a
//! `memory.grow` succeeded. An instance whose [`State`] holds a [`Tape`] either
//! writes all of that as [`Rec`]ords ([`Recorder`]), or is fed it back
//! ([`Player`]) while the import wrapper checks that the guest asks for the same
//! things in the same order. No capability code runs in a replay.
//!
//! This module owns the record format (see `docs/ABI.md` §7): a record is a tag
//! byte and fields in LEB128 varints, length-prefixed bytes and strings. How
//! records reach files (chunks, segments, a ring) is the host's business.

use std::fmt::Write as _;
use std::sync::Arc;

use wasmtime::{AsContext, AsContextMut, Caller};

use crate::{Error, State};

/// What an import argument is, for the tape: an `i32`, an input the guest passes
/// as `(ptr, len)` (text, bytes or a msgpack request), a buffer the host fills, or
/// a pair of out-pointers for a result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgKind {
    /// One `i32`, part of the request.
    Int,
    /// UTF-8 text `(ptr, len)`.
    Text,
    /// Bytes `(ptr, len)`.
    Bytes,
    /// A msgpack request `(ptr, len)`.
    Msgpack,
    /// A guest buffer `(ptr, len)` the host fills.
    Buffer,
    /// Out-pointers `(ptr_out, len_out)` of a result.
    Out,
}

impl ArgKind {
    /// How many wasm parameters it takes.
    pub const fn arity(self) -> usize {
        match self {
            ArgKind::Int => 1,
            _ => 2,
        }
    }
}

/// Which export of the guest an entry ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum EntryKind {
    /// Instantiation (`_initialize` or `_start`).
    Instantiate = 0,
    /// `pulp_init(config)`.
    Init = 1,
    /// `pulp_step(envelope)`.
    Step = 2,
    /// `pulp_on_call(name, args)`; the input is `u32 name length, name, args`.
    OnCall = 3,
    /// `pulp_shutdown()`.
    Shutdown = 4,
    /// A diagnostic probe export.
    Probe = 5,
}

impl EntryKind {
    fn from_u8(b: u8) -> Option<EntryKind> {
        Some(match b {
            0 => EntryKind::Instantiate,
            1 => EntryKind::Init,
            2 => EntryKind::Step,
            3 => EntryKind::OnCall,
            4 => EntryKind::Shutdown,
            5 => EntryKind::Probe,
            _ => return None,
        })
    }

    /// The export's name.
    pub fn export(self) -> &'static str {
        match self {
            EntryKind::Instantiate => "instantiation",
            EntryKind::Init => "pulp_init",
            EntryKind::Step => "pulp_step",
            EntryKind::OnCall => "pulp_on_call",
            EntryKind::Shutdown => "pulp_shutdown",
            EntryKind::Probe => "probe",
        }
    }
}

/// The start of an instance: what the replay needs to make the same one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Begin {
    /// The plugin's name.
    pub plugin: String,
    /// Its manifest's version.
    pub version: String,
    /// SHA-256 of its module, in hex (the module is kept beside the recording).
    pub module: String,
    /// The capabilities its manifest declared.
    pub capabilities: Vec<String>,
    /// `[limits] memory_mb`.
    pub memory_mb: u64,
    /// `[limits] max_message_bytes`.
    pub max_message: u64,
    /// `[limits] call_timeout_ms`.
    pub call_timeout_ms: u64,
    /// `[limits] init_timeout_ms`.
    pub init_timeout_ms: u64,
    /// Fuel per call, when the host metered fuel.
    pub fuel: Option<u64>,
    /// Unix nanoseconds when the instance was made.
    pub wall: u64,
    /// The instance's number within its stream (0, then one more per restart).
    pub instance: u64,
}

/// One import call (or a WASI call, named `wasi:<name>`) and its outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportRec {
    /// The import's name.
    pub name: String,
    /// A digest of the request: the `i32` arguments and the bytes of each input.
    pub digest: u64,
    /// The request's input bytes in all.
    pub input_len: u64,
    /// The first bytes of the first input, for divergence reports.
    pub preview: Vec<u8>,
    /// The status (or WASI errno) returned.
    pub code: i32,
    /// The trap that ended the guest's call instead, if any: its code ([`trap_of`])
    /// and text.
    pub trap: Option<(u8, String)>,
    /// `last_error` after a non-zero status.
    pub last_error: Option<String>,
    /// What the host wrote: (argument index, bytes), in order. A result write
    /// (out-pointers) calls `pulp_alloc`; a buffer write copies into the buffer.
    pub writes: Vec<(u8, Vec<u8>)>,
}

/// How an entry ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The export returned this value (and, for `pulp_on_call`, this answer).
    Returned(i64, Vec<u8>),
    /// It trapped: wasmtime's trap code (255 when none) and the message with its
    /// wasm backtrace.
    Trap(u8, String),
    /// The host could not hand the input to the guest (`pulp_alloc` failed).
    Refused(String),
}

/// The code of a `proc_exit` ([`wasmtime_wasi::I32Exit`]) in a record; its text is the status.
pub const TRAP_EXIT: u8 = 254;

/// How an import's trap is recorded: wasmtime's trap code, [`TRAP_EXIT`] for
/// `proc_exit`, 255 for any other error; and its text (the status for an exit).
pub fn trap_of(e: &wasmtime::Error) -> (u8, String) {
    if let Some(t) = e.downcast_ref::<wasmtime::Trap>() {
        return (*t as u8, t.to_string());
    }
    if let Some(x) = e.downcast_ref::<wasmtime_wasi::I32Exit>() {
        return (TRAP_EXIT, x.0.to_string());
    }
    (u8::MAX, format!("{e:#}"))
}

/// The error a replayed import raises for a recorded trap: the same kind of error,
/// so the guest's call ends as it did.
fn raise(code: u8, text: &str) -> wasmtime::Error {
    if code == TRAP_EXIT {
        if let Ok(status) = text.parse() {
            return wasmtime_wasi::I32Exit(status).into();
        }
    }
    match wasmtime::Trap::from_u8(code) {
        Some(t) => t.into(),
        None => wasmtime::format_err!("{text}"),
    }
}

/// Trap code of an epoch interrupt (a deadline or the host's stop): its backtrace
/// depends on where the guest happened to be, so only the code is compared.
pub const TRAP_INTERRUPT: u8 = wasmtime::Trap::Interrupt as u8;

/// One record of a tape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rec {
    /// A new instance.
    Begin(Begin),
    /// An export is called with this input.
    Enter(EntryKind, Vec<u8>),
    /// An import call.
    Import(ImportRec),
    /// A memory (or table) growth and whether it was allowed.
    Grow {
        /// A table, not a memory.
        table: bool,
        /// The size asked for, in bytes (elements for a table).
        desired: u64,
        /// Allowed.
        ok: bool,
    },
    /// The export ended.
    Leave(Outcome),
    /// The recorder dropped this many bytes (disk full or too slow); what follows
    /// until the next [`Rec::Begin`] cannot be replayed.
    Gap(u64),
}

const TAG_BEGIN: u8 = 1;
const TAG_ENTER: u8 = 2;
const TAG_IMPORT: u8 = 3;
const TAG_GROW: u8 = 4;
const TAG_LEAVE: u8 = 5;
const TAG_GAP: u8 = 6;

/// How many bytes of the first input a record keeps for reports.
pub const PREVIEW: usize = 48;

/// A 64-bit digest (BLAKE3, truncated).
pub fn digest(parts: &[&[u8]]) -> u64 {
    let mut h = blake3::Hasher::new();
    for p in parts {
        h.update(&(p.len() as u64).to_le_bytes());
        h.update(p);
    }
    u64::from_le_bytes(h.finalize().as_bytes()[..8].try_into().expect("8 bytes"))
}

// ---- encoding ----

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn zigzag(out: &mut Vec<u8>, v: i64) {
    varint(out, ((v << 1) ^ (v >> 63)) as u64);
}

fn bytes(out: &mut Vec<u8>, b: &[u8]) {
    varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// Appends the encoding of an [`Rec::Enter`] whose input is `parts` joined.
pub fn encode_enter(out: &mut Vec<u8>, kind: EntryKind, parts: &[&[u8]]) {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    out.reserve(12 + len);
    out.push(TAG_ENTER);
    out.push(kind as u8);
    varint(out, len as u64);
    for p in parts {
        out.extend_from_slice(p);
    }
}

impl Rec {
    /// Appends this record's encoding to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Rec::Begin(b) => {
                out.push(TAG_BEGIN);
                bytes(out, b.plugin.as_bytes());
                bytes(out, b.version.as_bytes());
                bytes(out, b.module.as_bytes());
                varint(out, b.capabilities.len() as u64);
                for c in &b.capabilities {
                    bytes(out, c.as_bytes());
                }
                for v in [
                    b.memory_mb,
                    b.max_message,
                    b.call_timeout_ms,
                    b.init_timeout_ms,
                    b.fuel.map_or(0, |f| f.saturating_add(1)),
                    b.wall,
                    b.instance,
                ] {
                    varint(out, v);
                }
            }
            Rec::Enter(kind, input) => encode_enter(out, *kind, &[input]),
            Rec::Import(i) => {
                out.push(TAG_IMPORT);
                bytes(out, i.name.as_bytes());
                out.extend_from_slice(&i.digest.to_le_bytes());
                varint(out, i.input_len);
                bytes(out, &i.preview);
                zigzag(out, i.code as i64);
                let flags = i.trap.is_some() as u8 | (i.last_error.is_some() as u8) << 1;
                out.push(flags);
                if let Some((code, text)) = &i.trap {
                    out.push(*code);
                    bytes(out, text.as_bytes());
                }
                if let Some(e) = &i.last_error {
                    bytes(out, e.as_bytes());
                }
                varint(out, i.writes.len() as u64);
                for (arg, data) in &i.writes {
                    out.push(*arg);
                    bytes(out, data);
                }
            }
            Rec::Grow { table, desired, ok } => {
                out.push(TAG_GROW);
                out.push(*table as u8 | (*ok as u8) << 1);
                varint(out, *desired);
            }
            Rec::Leave(o) => {
                out.push(TAG_LEAVE);
                match o {
                    Outcome::Returned(v, answer) => {
                        out.push(0);
                        zigzag(out, *v);
                        bytes(out, answer);
                    }
                    Outcome::Trap(code, text) => {
                        out.push(1);
                        out.push(*code);
                        bytes(out, text.as_bytes());
                    }
                    Outcome::Refused(text) => {
                        out.push(2);
                        bytes(out, text.as_bytes());
                    }
                }
            }
            Rec::Gap(n) => {
                out.push(TAG_GAP);
                varint(out, *n);
            }
        }
    }
}

// ---- decoding ----

/// Why bytes are not a record: what was expected, at which offset of the chunk.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed record at byte {at} of its chunk: {what}")]
pub struct Malformed {
    /// Offset within the decoded bytes.
    pub at: usize,
    /// What was wrong.
    pub what: String,
}

/// Reads records from one chunk of bytes.
pub struct Decoder<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Decoder<'a> {
    /// A decoder over `data`.
    pub fn new(data: &'a [u8]) -> Decoder<'a> {
        Decoder { data, at: 0 }
    }

    fn bad(&self, what: impl Into<String>) -> Malformed {
        Malformed {
            at: self.at,
            what: what.into(),
        }
    }

    fn byte(&mut self) -> Result<u8, Malformed> {
        let b = *self
            .data
            .get(self.at)
            .ok_or_else(|| self.bad("it ends early"))?;
        self.at += 1;
        Ok(b)
    }

    fn varint(&mut self) -> Result<u64, Malformed> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= ((b & 0x7f) as u64) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.bad("a number longer than 64 bits"))
    }

    fn zigzag(&mut self) -> Result<i64, Malformed> {
        let v = self.varint()?;
        Ok((v >> 1) as i64 ^ -((v & 1) as i64))
    }

    fn bytes(&mut self) -> Result<Vec<u8>, Malformed> {
        let n = self.varint()?;
        let left = self.data.len() - self.at;
        if n > left as u64 {
            return Err(self.bad(format!("a field of {n} bytes with {left} left")));
        }
        let b = self.data[self.at..self.at + n as usize].to_vec();
        self.at += n as usize;
        Ok(b)
    }

    fn string(&mut self) -> Result<String, Malformed> {
        String::from_utf8(self.bytes()?).map_err(|_| self.bad("text that is not UTF-8"))
    }

    fn u64le(&mut self) -> Result<u64, Malformed> {
        let left = self.data.len() - self.at;
        if left < 8 {
            return Err(self.bad("it ends early"));
        }
        let v = u64::from_le_bytes(self.data[self.at..self.at + 8].try_into().expect("8"));
        self.at += 8;
        Ok(v)
    }

    fn count(&mut self, what: &str) -> Result<usize, Malformed> {
        let n = self.varint()?;
        // Every element takes at least one byte.
        if n > (self.data.len() - self.at) as u64 {
            return Err(self.bad(format!("{n} {what} cannot fit")));
        }
        Ok(n as usize)
    }

    /// The next record, `None` at the end of the data.
    pub fn next_rec(&mut self) -> Result<Option<Rec>, Malformed> {
        if self.at == self.data.len() {
            return Ok(None);
        }
        let start = self.at;
        let tag = self.byte()?;
        let rec = match tag {
            TAG_BEGIN => {
                let plugin = self.string()?;
                let version = self.string()?;
                let module = self.string()?;
                let n = self.count("capabilities")?;
                let capabilities = (0..n).map(|_| self.string()).collect::<Result<_, _>>()?;
                let mut v = [0u64; 7];
                for x in &mut v {
                    *x = self.varint()?;
                }
                Rec::Begin(Begin {
                    plugin,
                    version,
                    module,
                    capabilities,
                    memory_mb: v[0],
                    max_message: v[1],
                    call_timeout_ms: v[2],
                    init_timeout_ms: v[3],
                    fuel: v[4].checked_sub(1),
                    wall: v[5],
                    instance: v[6],
                })
            }
            TAG_ENTER => {
                let k = self.byte()?;
                let kind =
                    EntryKind::from_u8(k).ok_or_else(|| self.bad(format!("entry kind {k}")))?;
                Rec::Enter(kind, self.bytes()?)
            }
            TAG_IMPORT => {
                let name = self.string()?;
                let digest = self.u64le()?;
                let input_len = self.varint()?;
                let preview = self.bytes()?;
                let code = i32::try_from(self.zigzag()?).map_err(|_| self.bad("a status"))?;
                let flags = self.byte()?;
                let trap = if flags & 1 != 0 {
                    let code = self.byte()?;
                    Some((code, self.string()?))
                } else {
                    None
                };
                let last_error = if flags & 2 != 0 {
                    Some(self.string()?)
                } else {
                    None
                };
                let n = self.count("writes")?;
                let mut writes = Vec::with_capacity(n);
                for _ in 0..n {
                    let arg = self.byte()?;
                    writes.push((arg, self.bytes()?));
                }
                Rec::Import(ImportRec {
                    name,
                    digest,
                    input_len,
                    preview,
                    code,
                    trap,
                    last_error,
                    writes,
                })
            }
            TAG_GROW => {
                let f = self.byte()?;
                Rec::Grow {
                    table: f & 1 != 0,
                    ok: f & 2 != 0,
                    desired: self.varint()?,
                }
            }
            TAG_LEAVE => match self.byte()? {
                0 => {
                    let v = self.zigzag()?;
                    Rec::Leave(Outcome::Returned(v, self.bytes()?))
                }
                1 => {
                    let code = self.byte()?;
                    Rec::Leave(Outcome::Trap(code, self.string()?))
                }
                2 => Rec::Leave(Outcome::Refused(self.string()?)),
                o => return Err(self.bad(format!("outcome {o}"))),
            },
            TAG_GAP => Rec::Gap(self.varint()?),
            t => {
                self.at = start;
                return Err(self.bad(format!("unknown record tag {t}")));
            }
        };
        Ok(Some(rec))
    }
}

// ---- recording ----

/// Where a [`Recorder`] hands its filled buffers; the host's writer. `submit`
/// must not block: a sink that cannot keep up drops the chunk and says so.
pub trait Sink: Send + Sync {
    /// Takes one chunk of whole records. `urgent`: write it now (a trap, an
    /// instance's end) rather than when convenient.
    fn submit(&self, chunk: Vec<u8>, urgent: bool);

    /// An empty buffer to fill next, reused from a written chunk when one is free
    /// (a fresh 64 KiB buffer costs its page faults on every chunk).
    fn buffer(&self) -> Vec<u8> {
        Vec::with_capacity(CHUNK)
    }
}

/// Buffers this much before handing a chunk to the sink.
pub const CHUNK: usize = 64 * 1024;
/// Hands a chunk over at least this often (in [`tick`]s) when anything is buffered.
const FLUSH_TICKS: u64 = 50;

/// A coarse clock for the recorders: the host advances it every epoch tick
/// ([`tick`]), so checking how long a buffer waited costs one atomic load.
static TICKS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Advances the recorders' coarse clock; the host calls it every epoch tick (10 ms).
pub fn tick() {
    TICKS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

fn ticks() -> u64 {
    TICKS.load(std::sync::atomic::Ordering::Relaxed)
}

/// An instance's recorder: appends records to a buffer and hands full buffers to
/// its [`Sink`].
pub struct Recorder {
    buf: Vec<u8>,
    sink: Arc<dyn Sink>,
    /// Result writes of the running import: (out-pointer, bytes).
    results: Vec<(i32, Vec<u8>)>,
    /// [`ticks`] at the last hand-over.
    handed: u64,
    /// Bytes of results the running import wrote that were too large to keep.
    oversize: usize,
}

impl Recorder {
    /// A recorder writing to `sink`.
    pub fn new(sink: Arc<dyn Sink>) -> Recorder {
        Recorder {
            buf: sink.buffer(),
            sink,
            results: Vec::new(),
            handed: ticks(),
            oversize: 0,
        }
    }

    /// Appends a record.
    pub fn push(&mut self, rec: &Rec) {
        if let Rec::Import(i) = rec {
            self.room(
                64 + i.name.len()
                    + i.preview.len()
                    + i.writes.iter().map(|w| w.1.len() + 6).sum::<usize>(),
            );
        }
        rec.encode(&mut self.buf);
    }

    /// Appends an [`Rec::Enter`] of `parts` joined (no copy of them first).
    pub fn enter(&mut self, kind: EntryKind, parts: &[&[u8]]) {
        let len = parts.iter().map(|p| p.len()).sum::<usize>();
        if len > MAX_RECORD {
            // Too large to keep: a gap, and the entry's records are orphans a
            // reader skips until the next instance.
            self.push(&Rec::Gap(len as u64));
            return;
        }
        self.room(len + 12);
        encode_enter(&mut self.buf, kind, parts);
    }

    /// Hands the buffer over first when `n` more bytes would not fit it, so a
    /// buffer never grows (a grown one would copy itself on the hot path).
    fn room(&mut self, n: usize) {
        if self.buf.len() + n > self.buf.capacity() && !self.buf.is_empty() {
            self.handed = ticks();
            let chunk = std::mem::replace(&mut self.buf, self.sink.buffer());
            self.sink.submit(chunk, false);
        }
    }

    /// Appends an [`Rec::Leave`] and hands the buffer on when it is full, or at
    /// once when `urgent`.
    pub fn leave(&mut self, outcome: &Outcome, urgent: bool) {
        match outcome {
            // The common case, without building a record: tag, 0, the value, no answer.
            Outcome::Returned(v, answer) if answer.is_empty() => {
                self.buf.reserve(14);
                self.buf.push(TAG_LEAVE);
                self.buf.push(0);
                varint(&mut self.buf, ((v << 1) ^ (v >> 63)) as u64);
                self.buf.push(0);
            }
            o => Rec::Leave(o.clone()).encode(&mut self.buf),
        }
        self.flush_if(urgent);
    }

    /// Hands the buffer to the sink if it is full, waited long enough, or `now`.
    pub fn flush_if(&mut self, now: bool) {
        let due = || ticks().wrapping_sub(self.handed) >= FLUSH_TICKS;
        if self.buf.len() >= CHUNK || (!self.buf.is_empty() && (now || due())) {
            self.handed = ticks();
            let chunk = std::mem::replace(&mut self.buf, self.sink.buffer());
            self.sink.submit(chunk, now);
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.flush_if(true);
    }
}

// ---- replaying ----

/// A difference between the replay and the recording, ending the guest's call.
#[derive(Debug, Clone, thiserror::Error)]
#[error("replay diverged: {0}")]
pub struct Diverged(pub String);

/// One argument of an import call, as the replay shows it.
#[derive(Debug, Clone)]
pub enum ArgView {
    /// An `i32`.
    Int(i32),
    /// Text.
    Text(String),
    /// Bytes.
    Bytes(Vec<u8>),
    /// A msgpack request.
    Msgpack(Vec<u8>),
    /// A buffer of this many bytes for the host to fill.
    Buffer(u32),
    /// An input outside memory or over the limit (its length).
    Unreadable(u32),
}

/// An import call the guest made during a replay: one line of its outputs.
#[derive(Debug, Clone)]
pub struct CallView {
    /// The import.
    pub import: String,
    /// Its request.
    pub args: Vec<ArgView>,
    /// The status it got.
    pub code: i32,
}

/// Feeds one entry's recorded imports back to the guest and checks its requests.
pub struct Player {
    script: std::collections::VecDeque<Rec>,
    /// Import calls made so far in this entry.
    pub calls: usize,
    /// Grows are compared (off when another build is replayed).
    pub check_grows: bool,
    /// The first difference found.
    pub diverged: Option<String>,
    /// Import calls seen, when outputs are wanted.
    pub outputs: Option<Vec<CallView>>,
    /// How the entry ended in the replay.
    pub outcome: Option<Outcome>,
    /// The recorded entry ended at its deadline: running out of recorded calls
    /// is that deadline again (a replay runs faster), not a difference.
    pub interrupted: bool,
}

impl Player {
    /// A player of `script` (the records between an entry's enter and leave).
    pub fn new(script: Vec<Rec>, check_grows: bool, outputs: bool) -> Player {
        Player {
            script: script.into(),
            calls: 0,
            check_grows,
            diverged: None,
            outputs: outputs.then(Vec::new),
            outcome: None,
            interrupted: false,
        }
    }

    /// What the recording still holds for this entry.
    pub fn rest(&self) -> impl Iterator<Item = &Rec> {
        self.script.iter()
    }

    fn diverge(&mut self, why: String) -> wasmtime::Error {
        if self.diverged.is_none() {
            self.diverged = Some(why.clone());
        }
        wasmtime::Error::new(Diverged(why))
    }

    fn next_import(
        &mut self,
        name: &str,
        digest: u64,
        input: &[u8],
    ) -> Result<ImportRec, wasmtime::Error> {
        self.calls += 1;
        let n = self.calls;
        loop {
            match self.script.pop_front() {
                Some(Rec::Import(r)) if r.name == name && r.digest == digest => return Ok(r),
                Some(Rec::Import(r)) if r.name == name => {
                    return Err(self.diverge(format!(
                        "the guest called `{name}` (call {n} of the entry) with another request than recorded: now {}; recorded {}",
                        show(input, input.len() as u64),
                        show(&r.preview, r.input_len)
                    )))
                }
                Some(Rec::Import(r)) => {
                    return Err(self.diverge(format!(
                        "the guest called `{name}` with {} as call {n} of the entry; the recording has `{}` with {}",
                        show(input, input.len() as u64),
                        r.name,
                        show(&r.preview, r.input_len)
                    )))
                }
                Some(Rec::Grow { .. }) if !self.check_grows => continue,
                Some(Rec::Grow { table, desired, .. }) => {
                    return Err(self.diverge(format!(
                        "the guest called `{name}` (call {n} of the entry) where the recording grew its {} to {desired}",
                        if table { "table" } else { "memory" }
                    )))
                }
                Some(other) => {
                    return Err(self.diverge(format!(
                        "the recording is out of order: {other:?} inside an entry"
                    )))
                }
                None if self.interrupted => return Err(wasmtime::Trap::Interrupt.into()),
                None => {
                    return Err(self.diverge(format!(
                        "the guest called `{name}` with {} as call {n} of the entry; the recording has no more calls in it",
                        show(input, input.len() as u64)
                    )))
                }
            }
        }
    }

    /// Checks a growth against the recording; its recorded outcome, or the
    /// divergence.
    pub fn grow(&mut self, table: bool, desired: u64, ok: bool) -> Result<bool, wasmtime::Error> {
        if !self.check_grows {
            return Ok(ok);
        }
        match self.script.front() {
            Some(Rec::Grow {
                table: t,
                desired: d,
                ok: was,
            }) if *t == table && *d == desired => {
                let was = *was;
                self.script.pop_front();
                Ok(was)
            }
            other => {
                let now = format!(
                    "grew its {} to {desired}",
                    if table { "table" } else { "memory" }
                );
                let then = match other {
                    Some(Rec::Grow { table, desired, .. }) => format!(
                        "grew its {} to {desired}",
                        if *table { "table" } else { "memory" }
                    ),
                    Some(Rec::Import(r)) => format!("called `{}`", r.name),
                    _ => "did nothing more".to_string(),
                };
                Err(self.diverge(format!("the guest {now} where the recording {then}")))
            }
        }
    }
}

/// A msgpack value with its UTF-8 binaries as strings, for reports.
fn readable(v: rmpv::Value) -> rmpv::Value {
    use rmpv::Value as V;
    match v {
        V::Binary(b) => match String::from_utf8(b) {
            Ok(s) => V::String(s.into()),
            Err(e) => V::Binary(e.into_bytes()),
        },
        V::Array(a) => V::Array(a.into_iter().map(readable).collect()),
        V::Map(m) => V::Map(m.into_iter().map(|(k, v)| (k, readable(v))).collect()),
        other => other,
    }
}

/// Bytes for a report: a whole msgpack value as its text (`{"id": 3, ...}`), else
/// up to [`PREVIEW`] bytes as escaped text; then the whole length.
pub fn show(b: &[u8], len: u64) -> String {
    if b.len() as u64 == len && !b.is_empty() {
        let mut r = b;
        if let Ok(v) = rmpv::decode::read_value(&mut r) {
            if r.is_empty() && (v.is_map() || v.is_array()) {
                let mut text = readable(v).to_string();
                if text.len() > 4 * PREVIEW {
                    let mut cut = 4 * PREVIEW;
                    while !text.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    text.truncate(cut);
                    text.push('…');
                }
                return format!("{} ({len} bytes)", crate::log_text(text.as_bytes()));
            }
        }
    }
    let cut = &b[..b.len().min(PREVIEW)];
    let mut s = String::from("\"");
    for &c in cut {
        match c {
            b'"' | b'\\' => {
                s.push('\\');
                s.push(c as char);
            }
            0x20..=0x7e => s.push(c as char),
            _ => {
                let _ = write!(s, "\\x{c:02x}");
            }
        }
    }
    s.push('"');
    if (cut.len() as u64) < len {
        s.push('…');
    }
    let _ = write!(s, " ({len} bytes)");
    s
}

/// An instance's tape: recording or replaying.
pub enum Tape {
    /// Writing what crosses into the instance.
    Record(Recorder),
    /// Feeding a recording back.
    Replay(Player),
}

// ---- the import wrapper's side ----

/// The request of an import call: its digest, its inputs' total length, and its
/// first input (borrowed from guest memory; empty when none).
fn request<'m>(mem: &'m [u8], max: usize, kinds: &[ArgKind], raw: &[i32]) -> (u64, u64, &'m [u8]) {
    let mut h = blake3::Hasher::new();
    let mut total = 0u64;
    let mut first: Option<&[u8]> = None;
    let mut at = 0;
    for k in kinds {
        match k {
            ArgKind::Int => {
                h.update(&raw[at].to_le_bytes());
            }
            ArgKind::Text | ArgKind::Bytes | ArgKind::Msgpack => {
                let b = input(mem, max, raw[at], raw[at + 1]);
                match b {
                    Some(b) => {
                        h.update(&(b.len() as u64).to_le_bytes());
                        h.update(b);
                        total += b.len() as u64;
                        first.get_or_insert(b);
                    }
                    // Outside memory or over the limit: the length only.
                    None => {
                        h.update(b"\xff");
                        h.update(&raw[at + 1].to_le_bytes());
                    }
                }
            }
            ArgKind::Buffer => {
                h.update(&raw[at + 1].to_le_bytes());
            }
            ArgKind::Out => {}
        }
        at += k.arity();
    }
    let d = u64::from_le_bytes(h.finalize().as_bytes()[..8].try_into().expect("8 bytes"));
    (d, total, first.unwrap_or(&[]))
}

fn input(mem: &[u8], max: usize, ptr: i32, len: i32) -> Option<&[u8]> {
    let (p, n) = (ptr as u32 as usize, len as u32 as usize);
    if n == 0 {
        return Some(&[]);
    }
    if n > max {
        return None;
    }
    mem.get(p..p.checked_add(n)?)
}

fn views(mem: &[u8], max: usize, kinds: &[ArgKind], raw: &[i32]) -> Vec<ArgView> {
    let mut out = Vec::new();
    let mut at = 0;
    for k in kinds {
        let (p, n) = (raw[at], raw.get(at + 1).copied().unwrap_or(0));
        let read = || input(mem, max, p, n).map(|b| b.to_vec());
        out.push(match k {
            ArgKind::Int => ArgView::Int(p),
            ArgKind::Text => match read() {
                Some(b) => ArgView::Text(String::from_utf8_lossy(&b).into_owned()),
                None => ArgView::Unreadable(n as u32),
            },
            ArgKind::Bytes => read().map_or(ArgView::Unreadable(n as u32), ArgView::Bytes),
            ArgKind::Msgpack => read().map_or(ArgView::Unreadable(n as u32), ArgView::Msgpack),
            ArgKind::Buffer => ArgView::Buffer(n as u32),
            ArgKind::Out => {
                at += 2;
                continue;
            }
        });
        at += k.arity();
    }
    out
}

fn guest_mem<'a>(c: &'a Caller<'_, State>) -> &'a [u8] {
    match c.data().guest_memory() {
        Some(m) => m.data(c.as_context()),
        None => &[],
    }
}

/// Runs import `name` (arguments `kinds`, raw parameters `raw`) on a taped
/// instance: recording, `body` runs and what it did is written down; replaying,
/// `body` does not run and the recorded outcome is played into the guest.
pub(crate) fn around<'a>(
    c: &mut Caller<'a, State>,
    name: &'static str,
    kinds: &[ArgKind],
    raw: &[i32],
    body: impl FnOnce(&mut Caller<'a, State>) -> Result<(), Error>,
) -> wasmtime::Result<i32> {
    let max = c.data().max_message();
    let replaying = matches!(c.data().tape_ref(), Some(Tape::Replay(_)));
    if replaying {
        return replay_import(c, name, kinds, raw);
    }
    let (digest, input_len, first) = {
        let (d, n, f) = request(guest_mem(c), max, kinds, raw);
        (d, n, f[..f.len().min(PREVIEW)].to_vec())
    };
    if let Some(Tape::Record(r)) = c.data_mut().tape_mut() {
        r.results.clear();
        r.oversize = 0;
    }
    let result = crate::status(c, body);
    // Buffers the host filled, read back as they are now: only after a success
    // (a failed call wrote none) and within the message limit, so a guest cannot
    // make the recorder copy its whole memory by naming it as a buffer.
    let mut writes = Vec::new();
    let mut at = 0;
    for k in kinds {
        if *k == ArgKind::Buffer && matches!(result, Ok(0)) {
            if let Some(b) = input(guest_mem(c), max, raw[at], raw[at + 1]) {
                writes.push((at as u8, b.to_vec()));
            }
        }
        at += k.arity();
    }
    let last_error = match &result {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(c.data().last_error().to_string()),
    };
    let Some(Tape::Record(r)) = c.data_mut().tape_mut() else {
        return result;
    };
    let mut all: Vec<(u8, Vec<u8>)> = std::mem::take(&mut r.results)
        .into_iter()
        .map(|(ptr_out, data)| (out_arg(kinds, raw, ptr_out), data))
        .collect();
    all.extend(writes);
    let size = all
        .iter()
        .fold(r.oversize, |n, w| n.saturating_add(w.1.len()));
    if size > MAX_RECORD {
        // Too large to keep: the recording cannot be replayed past here.
        r.push(&Rec::Gap(size as u64));
        return result;
    }
    let (code, trap) = match &result {
        Ok(code) => (*code, None),
        Err(e) => (0, Some(trap_of(e))),
    };
    r.push(&Rec::Import(ImportRec {
        name: name.to_string(),
        digest,
        input_len,
        preview: first,
        code,
        trap,
        last_error,
        writes: all,
    }));
    result
}

/// The index (in wasm parameters) of the out-pointer pair whose first pointer is `ptr_out`.
fn out_arg(kinds: &[ArgKind], raw: &[i32], ptr_out: i32) -> u8 {
    let mut at = 0;
    for k in kinds {
        if *k == ArgKind::Out && raw[at] == ptr_out {
            return at as u8;
        }
        at += k.arity();
    }
    u8::MAX
}

/// The first out-pointer pair's index, for a result write whose pair was not found.
fn first_out(kinds: &[ArgKind]) -> Option<usize> {
    let mut at = 0;
    for k in kinds {
        if *k == ArgKind::Out {
            return Some(at);
        }
        at += k.arity();
    }
    None
}

fn replay_import(
    c: &mut Caller<'_, State>,
    name: &'static str,
    kinds: &[ArgKind],
    raw: &[i32],
) -> wasmtime::Result<i32> {
    let max = c.data().max_message();
    let (digest, _, first) = request(guest_mem(c), max, kinds, raw);
    let first = first.to_vec();
    let view = views(guest_mem(c), max, kinds, raw);
    let Some(Tape::Replay(p)) = c.data_mut().tape_mut() else {
        unreachable!("checked by the caller")
    };
    let rec = p.next_import(name, digest, &first)?;
    for (arg, data) in &rec.writes {
        let at = *arg as usize;
        match kinds_at(kinds, at) {
            Some(ArgKind::Buffer) => {
                let mem = c
                    .data()
                    .guest_memory()
                    .ok_or_else(|| wasmtime::format_err!("no memory"))?;
                let dst = mem.data_mut(c.as_context_mut());
                let start = raw.get(at).copied().unwrap_or(-1) as u32 as usize;
                let len = raw.get(at + 1).copied().unwrap_or(-1) as u32 as usize;
                match dst.get_mut(start..start + data.len()) {
                    Some(d) if data.len() == len => d.copy_from_slice(data),
                    _ => {
                        return Err(replay_diverged(
                            c,
                            format!(
                                "`{name}`'s buffer is ({start:#x}, {len}); the recording filled {} bytes",
                                data.len()
                            ),
                        ))
                    }
                }
            }
            _ => {
                let at = if *arg == u8::MAX {
                    first_out(kinds)
                } else {
                    Some(at)
                };
                let Some((&p, &l)) = at.and_then(|at| Some((raw.get(at)?, raw.get(at + 1)?)))
                else {
                    return Err(replay_diverged(
                        c,
                        format!("the recording writes a result `{name}` has no out-pointers for"),
                    ));
                };
                // A failure here was the recorded one too (the same pulp_alloc).
                let _ = crate::mem::write_result(c, data, p, l);
            }
        }
    }
    if let Some(e) = &rec.last_error {
        c.data_mut().set_last_error(e.clone());
    }
    if let Some(Tape::Replay(p)) = c.data_mut().tape_mut() {
        if let Some(out) = &mut p.outputs {
            out.push(CallView {
                import: name.to_string(),
                args: view,
                code: rec.code,
            });
        }
    }
    match rec.trap {
        Some((code, text)) => Err(raise(code, &text)),
        None => Ok(rec.code),
    }
}

fn kinds_at(kinds: &[ArgKind], param: usize) -> Option<ArgKind> {
    let mut at = 0;
    for k in kinds {
        if at == param {
            return Some(*k);
        }
        at += k.arity();
    }
    None
}

fn replay_diverged(c: &mut Caller<'_, State>, why: String) -> wasmtime::Error {
    match c.data_mut().tape_mut() {
        Some(Tape::Replay(p)) => p.diverge(why),
        _ => wasmtime::Error::new(Diverged(why)),
    }
}

/// What a guest asked of a WASI call, for the tape: a digest of the request's
/// parts, their length, and the first bytes. Parts over [`MAX_RECORD`] are digested
/// by their length only, so a guest cannot make the recorder hash its whole memory.
pub struct Request {
    digest: u64,
    len: u64,
    preview: Vec<u8>,
}

impl Request {
    /// The request made of `parts`.
    pub fn of(parts: &[&[u8]]) -> Request {
        let len: u64 = parts.iter().map(|p| p.len() as u64).sum();
        let first = parts.first().copied().unwrap_or(&[]);
        if len > MAX_RECORD as u64 {
            return Request {
                digest: digest(&[b"over", &len.to_le_bytes()]),
                len,
                preview: Vec::new(),
            };
        }
        Request {
            digest: digest(parts),
            len,
            preview: first[..first.len().min(PREVIEW)].to_vec(),
        }
    }
}

/// The most bytes one record may carry; a bigger call leaves a gap in the
/// recording instead (a sink would drop a chunk that large anyway).
pub const MAX_RECORD: usize = 32 << 20;

/// Records (or replays) a WASI call `name` of a taped instance. `request` is what
/// the guest asked (compared on replay), `run` does the real call, `outs` names,
/// after it, the regions it wrote as (parameter index, length), each at that
/// parameter's pointer; `allowed` is the most each parameter may get, which a
/// replay checks before it writes the recorded bytes at the pointers it has now.
pub fn wasi_call<'a>(
    c: &mut Caller<'a, State>,
    name: &'static str,
    request: Request,
    raw: &[i32],
    allowed: &[(u8, usize)],
    run: impl FnOnce(&mut Caller<'a, State>) -> wasmtime::Result<i32>,
    outs: impl FnOnce(&[u8]) -> Vec<(u8, usize)>,
) -> wasmtime::Result<i32> {
    match c.data().tape_ref() {
        Some(Tape::Replay(_)) => {
            let Some(Tape::Replay(p)) = c.data_mut().tape_mut() else {
                unreachable!("matched above")
            };
            let rec = p.next_import(name, request.digest, &request.preview)?;
            for (arg, data) in &rec.writes {
                let fits = allowed
                    .iter()
                    .any(|(a, max)| a == arg && data.len() <= *max);
                let start = raw.get(*arg as usize).copied().map(|p| p as u32 as usize);
                let mem = c
                    .data()
                    .guest_memory()
                    .ok_or_else(|| wasmtime::format_err!("no memory"))?;
                let dst = mem.data_mut(c.as_context_mut());
                match start.filter(|_| fits).and_then(|s| dst.get_mut(s..s + data.len())) {
                    Some(d) => d.copy_from_slice(data),
                    None => {
                        return Err(replay_diverged(
                            c,
                            format!(
                                "the recording writes {} bytes through parameter {arg} of `{name}`, which this call does not allow",
                                data.len()
                            ),
                        ))
                    }
                }
            }
            match rec.trap {
                Some((code, text)) => Err(raise(code, &text)),
                None => Ok(rec.code),
            }
        }
        Some(Tape::Record(_)) => {
            let result = run(c);
            let mem = guest_mem(c);
            let mut writes = Vec::new();
            let mut size = 0usize;
            if result.is_ok() {
                for (arg, len) in outs(mem) {
                    let start = raw.get(arg as usize).copied().unwrap_or(0) as u32 as usize;
                    size = size.saturating_add(len);
                    if size > MAX_RECORD {
                        break;
                    }
                    if let Some(b) = mem.get(start..start.saturating_add(len)) {
                        writes.push((arg, b.to_vec()));
                    }
                }
            }
            let (code, trap) = match &result {
                Ok(v) => (*v, None),
                Err(e) => (0, Some(trap_of(e))),
            };
            if let Some(Tape::Record(r)) = c.data_mut().tape_mut() {
                if size > MAX_RECORD {
                    r.push(&Rec::Gap(size as u64));
                } else {
                    r.push(&Rec::Import(ImportRec {
                        name: name.to_string(),
                        digest: request.digest,
                        input_len: request.len,
                        preview: request.preview,
                        code,
                        trap,
                        last_error: None,
                        writes,
                    }));
                }
            }
            result
        }
        None => run(c),
    }
}

/// Notes a result write of the running import (from [`crate::mem::write_result`]).
pub(crate) fn note_result(state: &mut State, ptr_out: i32, data: &[u8]) {
    if let Some(Tape::Record(r)) = state.tape_mut() {
        if data.len() > MAX_RECORD {
            r.oversize = r.oversize.saturating_add(data.len());
        } else {
            r.results.push((ptr_out, data.to_vec()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_record_survives_a_round_trip_and_truncation_is_an_error() {
        let recs = vec![
            Rec::Begin(Begin {
                plugin: "p".into(),
                version: "1".into(),
                module: "ab".repeat(32),
                capabilities: vec!["storage.sqlite".into()],
                memory_mb: 64,
                max_message: 8 << 20,
                call_timeout_ms: 1000,
                init_timeout_ms: 5000,
                fuel: Some(0),
                wall: 1_700_000_000_000_000_000,
                instance: 2,
            }),
            Rec::Enter(EntryKind::Step, vec![1, 2, 3]),
            Rec::Import(ImportRec {
                name: "sqlite_query".into(),
                digest: 0x0123_4567_89ab_cdef,
                input_len: 300,
                preview: b"SELECT".to_vec(),
                code: -5,
                trap: None,
                last_error: Some("no such table".into()),
                writes: vec![(2, vec![9; 10]), (4, vec![])],
            }),
            Rec::Grow {
                table: false,
                desired: 1 << 20,
                ok: true,
            },
            Rec::Leave(Outcome::Returned(-1, b"answer".to_vec())),
            Rec::Leave(Outcome::Trap(3, "wasm trap: unreachable".into())),
            Rec::Leave(Outcome::Refused("pulp_alloc(5) returned 0".into())),
            Rec::Gap(12345),
        ];
        let mut buf = Vec::new();
        for r in &recs {
            r.encode(&mut buf);
        }
        let mut d = Decoder::new(&buf);
        let mut back = Vec::new();
        while let Some(r) = d.next_rec().unwrap() {
            back.push(r);
        }
        assert_eq!(back, recs);
        // Every cut ends in an error or a shorter, valid prefix; never a panic.
        for cut in 0..buf.len() {
            let mut d = Decoder::new(&buf[..cut]);
            while let Ok(Some(_)) = d.next_rec() {}
        }
        let mut d = Decoder::new(&[TAG_IMPORT, 0xff, 0xff, 0xff, 0xff, 0x0f]);
        let e = d.next_rec().unwrap_err();
        assert!(e.to_string().contains("bytes with"), "{e}");
    }
}
