//! Recordings on disk: one writer thread per recording folder, one stream of
//! segments per plugin instance slot, and the reader `pulp replay` uses.
//!
//! ```text
//! DIR/modules/<sha256>.wasm            every module recorded, once
//! DIR/<plugin>/<stream>/<seq>.seg      a stream's segments, oldest first
//! ```
//!
//! A segment is the magic `PULPREC\x01` and then chunks: `u32 length, u32 CRC-32
//! of the data, data`, where the data is whole records
//! ([`pulp_ext::tape`]). Recorders hand chunks over without waiting: when the
//! writer is behind (more than [`IN_FLIGHT`] bytes queued) or the disk refuses a
//! write, the chunk is dropped, counted, logged, and a [`Rec::Gap`] marks the
//! place, so a full disk never slows a plugin. A stream keeps at most
//! `max_bytes`: past it, its oldest segment is deleted (a ring). Segments are
//! fsynced when they are closed.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use pulp_ext::tape::{Decoder, Rec, Sink};

/// Magic bytes at the start of every segment.
pub const MAGIC: &[u8; 8] = b"PULPREC\x01";
/// Bytes that may wait for the writer, over all streams; past it chunks are dropped.
pub const IN_FLIGHT: usize = 64 << 20;
/// The largest chunk a reader accepts: a recorder's buffer with one record of at
/// most [`pulp_ext::tape::MAX_RECORD`].
const MAX_CHUNK: usize = pulp_ext::tape::MAX_RECORD + 2 * pulp_ext::tape::CHUNK;
/// A chunk's header: its length and the CRC-32 of its data, both `u32` LE.
pub const CHUNK_HEAD: usize = 8;

/// A chunk's checksum (CRC-32, as zip and PNG use it: cheap on the writer's thread).
pub fn checksum(data: &[u8]) -> u32 {
    crc32fast::hash(data)
}

/// Where and how much to record (`pulp run --record`).
#[derive(Clone, Debug)]
pub struct RecordConfig {
    /// The recording folder.
    pub dir: PathBuf,
    /// A segment is closed (and fsynced) past this many bytes.
    pub segment_bytes: u64,
    /// A stream keeps at most this many bytes; its oldest segments go first.
    pub max_bytes: u64,
    /// Record only these plugins (empty: every plugin).
    pub plugins: Vec<String>,
}

impl RecordConfig {
    /// Recording into `dir` with 16 MiB segments and 256 MiB per stream.
    pub fn new(dir: impl Into<PathBuf>) -> RecordConfig {
        RecordConfig {
            dir: dir.into(),
            segment_bytes: 16 << 20,
            max_bytes: 256 << 20,
            plugins: Vec::new(),
        }
    }
}

enum Msg {
    Chunk(Arc<Stream>, Vec<u8>),
    Sync(SyncSender<()>),
}

/// What the recorders of one `pulp run` share: the writer thread's queue.
pub(crate) struct Writer {
    config: RecordConfig,
    tx: Mutex<Option<SyncSender<Msg>>>,
    in_flight: Arc<AtomicUsize>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Told when the thread has closed every segment.
    ended: Mutex<Option<Receiver<()>>>,
    next: Mutex<BTreeMap<String, u64>>,
    /// Bytes dropped in all (queue full, disk refused).
    pub(crate) dropped: Arc<AtomicU64>,
    spare: Arc<Spare>,
}

/// One stream (an instance slot of a plugin): where its chunks go.
pub(crate) struct Stream {
    dir: PathBuf,
    label: String,
    tx: SyncSender<Msg>,
    in_flight: Arc<AtomicUsize>,
    /// Bytes dropped and not yet marked with a gap record.
    gap: AtomicU64,
    dropped: Arc<AtomicU64>,
    spare: Arc<Spare>,
}

/// A recorder's handle on its stream.
pub(crate) struct StreamSink(pub(crate) Arc<Stream>);

impl Sink for StreamSink {
    fn submit(&self, chunk: Vec<u8>, _urgent: bool) {
        let s = &self.0;
        let n = chunk.len();
        if s.in_flight.fetch_add(n, Ordering::Relaxed) + n > IN_FLIGHT {
            s.in_flight.fetch_sub(n, Ordering::Relaxed);
            s.spare.give(chunk);
            return s.dropped(n, "the writer is behind");
        }
        if let Err(e) = s.tx.try_send(Msg::Chunk(s.clone(), chunk)) {
            s.in_flight.fetch_sub(n, Ordering::Relaxed);
            let (std::sync::mpsc::TrySendError::Full(m)
            | std::sync::mpsc::TrySendError::Disconnected(m)) = e;
            if let Msg::Chunk(_, chunk) = m {
                s.spare.give(chunk);
            }
            s.dropped(n, "the writer is behind or stopped");
        }
    }

    fn buffer(&self) -> Vec<u8> {
        self.0.spare.take()
    }
}

/// Written chunks' buffers, kept for the recorders to fill again.
#[derive(Default)]
pub(crate) struct Spare(Mutex<Vec<Vec<u8>>>);

impl Spare {
    /// At most this many buffers wait (4 MiB at 64 KiB each).
    const KEEP: usize = 64;

    fn give(&self, mut b: Vec<u8>) {
        b.clear();
        let mut v = self.0.lock().expect("spare buffers");
        if v.len() < Self::KEEP && b.capacity() <= 2 * pulp_ext::tape::CHUNK {
            v.push(b);
        }
    }

    fn take(&self) -> Vec<u8> {
        let b = self.0.lock().expect("spare buffers").pop();
        b.unwrap_or_else(|| Vec::with_capacity(pulp_ext::tape::CHUNK))
    }
}

impl Stream {
    fn dropped(&self, n: usize, why: &str) {
        self.gap.fetch_add(n as u64, Ordering::Relaxed);
        let before = self.dropped.fetch_add(n as u64, Ordering::Relaxed);
        // Said once, then once per 16 MiB more.
        if before == 0 || (before >> 24) != ((before + n as u64) >> 24) {
            tracing::warn!(
                stream = %self.label,
                bytes = n,
                "recording: dropped a chunk ({why}); a replay resumes at the instance after it"
            );
        }
    }
}

impl Writer {
    /// Starts the writer thread for `config.dir` (made 0700 if missing).
    pub(crate) fn start(config: RecordConfig) -> std::io::Result<Arc<Writer>> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(config.dir.join("modules"))?;
        let (tx, rx) = sync_channel(4096);
        let in_flight = Arc::new(AtomicUsize::new(0));
        let dropped = Arc::new(AtomicU64::new(0));
        let (end, ended) = sync_channel(1);
        let thread = {
            let (in_flight, dropped, config) = (in_flight.clone(), dropped.clone(), config.clone());
            std::thread::Builder::new()
                .name("pulp-record".into())
                .spawn(move || {
                    write_loop(rx, config, in_flight, dropped);
                    let _ = end.send(());
                })?
        };
        Ok(Arc::new(Writer {
            config,
            tx: Mutex::new(Some(tx)),
            in_flight,
            thread: Mutex::new(Some(thread)),
            ended: Mutex::new(Some(ended)),
            spare: Arc::default(),
            next: Mutex::new(BTreeMap::new()),
            dropped,
        }))
    }

    /// Whether plugin `name` is recorded.
    pub(crate) fn records(&self, name: &str) -> bool {
        self.config.plugins.is_empty() || self.config.plugins.iter().any(|p| p == name)
    }

    /// Keeps `wasm` as `modules/<sha256>.wasm` (once) and returns the digest.
    pub(crate) fn keep_module(&self, wasm: &[u8]) -> std::io::Result<String> {
        use sha2::Digest;
        let sha = hex(&sha2::Sha256::digest(wasm));
        let path = self.config.dir.join("modules").join(format!("{sha}.wasm"));
        if !path.exists() {
            let tmp = path.with_extension(format!("tmp{}", std::process::id()));
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(wasm)?;
            f.sync_all()?;
            fs::rename(&tmp, &path)?;
        }
        Ok(sha)
    }

    /// A new stream for an instance slot of `plugin`, numbered after every stream
    /// the folder already has.
    pub(crate) fn stream(&self, plugin: &str) -> std::io::Result<Arc<Stream>> {
        let base = self.config.dir.join(plugin);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&base)?;
        let mut next = self.next.lock().expect("stream numbers");
        let n = match next.get(plugin) {
            Some(n) => *n,
            None => fs::read_dir(&base)?
                .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u64>().ok())
                .map(|n| n + 1)
                .max()
                .unwrap_or(0),
        };
        next.insert(plugin.to_string(), n + 1);
        let dir = base.join(n.to_string());
        fs::DirBuilder::new().mode(0o700).create(&dir)?;
        let tx = self
            .tx
            .lock()
            .expect("writer queue")
            .clone()
            .ok_or_else(|| std::io::Error::other("the recording has ended"))?;
        Ok(Arc::new(Stream {
            dir,
            label: format!("{plugin}/{n}"),
            tx,
            in_flight: self.in_flight.clone(),
            gap: AtomicU64::new(0),
            dropped: self.dropped.clone(),
            spare: self.spare.clone(),
        }))
    }

    /// Waits until every chunk handed over so far is written.
    pub fn sync(&self) {
        let tx = self.tx.lock().expect("writer queue").clone();
        if let Some(tx) = tx {
            let (ack, done) = sync_channel(1);
            if tx.send(Msg::Sync(ack)).is_ok() {
                let _ = done.recv();
            }
        }
    }

    /// Writes what is queued, closes and fsyncs every segment, and stops the thread.
    pub(crate) fn finish(&self) {
        self.sync();
        self.tx.lock().expect("writer queue").take();
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.finish();
        // Every stream belongs to a plugin, and every plugin holds the host that
        // holds this writer: here none should be left, and the thread ends at once.
        // Not waited for beyond a few seconds, whatever holds a stream still.
        let ended = self.ended.lock().expect("writer end").take();
        let t = self.thread.lock().expect("writer thread").take();
        if let (Some(ended), Some(t)) = (ended, t) {
            match ended.recv_timeout(std::time::Duration::from_secs(3)) {
                Ok(()) => {
                    let _ = t.join();
                }
                Err(_) => tracing::warn!(
                    dir = %self.config.dir.display(),
                    "recording: a stream is still open at exit; its last segment is not fsynced"
                ),
            }
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// An open segment of a stream.
struct Open {
    file: File,
    seq: u64,
    bytes: u64,
}

fn write_loop(
    rx: Receiver<Msg>,
    config: RecordConfig,
    in_flight: Arc<AtomicUsize>,
    dropped: Arc<AtomicU64>,
) {
    let _ = &dropped;
    let mut open: BTreeMap<PathBuf, Open> = BTreeMap::new();
    while let Ok(msg) = rx.recv() {
        match msg {
            Msg::Sync(ack) => {
                for o in open.values_mut() {
                    let _ = o.file.flush();
                }
                let _ = ack.send(());
            }
            Msg::Chunk(stream, data) => {
                in_flight.fetch_sub(data.len(), Ordering::Relaxed);
                let gap = stream.gap.swap(0, Ordering::Relaxed);
                let mut ok = true;
                if gap > 0 {
                    let mut g = Vec::new();
                    Rec::Gap(gap).encode(&mut g);
                    ok = write_chunk(&mut open, &stream, &config, &g).is_ok();
                }
                let r = if ok {
                    write_chunk(&mut open, &stream, &config, &data)
                } else {
                    Err(std::io::Error::other("the gap record failed"))
                };
                if let Err(e) = r {
                    // Give back the gap this chunk was to close, plus the chunk.
                    stream.gap.fetch_add(gap, Ordering::Relaxed);
                    stream.dropped(data.len(), &format!("cannot write: {e}"));
                    // Cut a half-written chunk off (a reader would stop at it), close
                    // the segment and start a new one for what comes next.
                    if let Some(o) = open.remove(&stream.dir) {
                        let _ = o.file.set_len(o.bytes);
                        let _ = o.file.sync_all();
                    }
                }
                stream.spare.give(data);
            }
        }
    }
    for (_, o) in open {
        let _ = o.file.sync_all();
    }
}

fn write_chunk(
    open: &mut BTreeMap<PathBuf, Open>,
    stream: &Stream,
    config: &RecordConfig,
    data: &[u8],
) -> std::io::Result<()> {
    if !open.contains_key(&stream.dir) {
        let seq = segments(&stream.dir)?.last().map_or(0, |(n, _)| n + 1);
        let path = stream.dir.join(format!("{seq:08}.seg"));
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        file.write_all(MAGIC)?;
        open.insert(
            stream.dir.clone(),
            Open {
                file,
                seq,
                bytes: MAGIC.len() as u64,
            },
        );
    }
    let o = open.get_mut(&stream.dir).expect("opened above");
    let mut head = [0u8; CHUNK_HEAD];
    head[..4].copy_from_slice(&(data.len() as u32).to_le_bytes());
    head[4..].copy_from_slice(&checksum(data).to_le_bytes());
    // One write, so a chunk is whole on disk or (cut back by the caller) absent.
    let mut whole = Vec::with_capacity(head.len() + data.len());
    whole.extend_from_slice(&head);
    whole.extend_from_slice(data);
    o.file.write_all(&whole)?;
    o.bytes += (head.len() + data.len()) as u64;
    if o.bytes >= config.segment_bytes {
        let o = open.remove(&stream.dir).expect("open");
        o.file.sync_all()?;
        ring(&stream.dir, config, o.seq)?;
    }
    Ok(())
}

/// Deletes a stream's oldest segments until the rest fit `max_bytes`.
fn ring(dir: &Path, config: &RecordConfig, newest: u64) -> std::io::Result<()> {
    let segs = segments(dir)?;
    let mut total: u64 = segs
        .iter()
        .filter_map(|(_, p)| fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    for (n, p) in segs {
        if total <= config.max_bytes || n >= newest {
            break;
        }
        total -= fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
        fs::remove_file(&p)?;
    }
    Ok(())
}

/// A stream's segments, oldest first.
pub(crate) fn segments(dir: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut v: Vec<(u64, PathBuf)> = fs::read_dir(dir)?
        .filter_map(|e| {
            let e = e.ok()?;
            let name = e.file_name();
            let n = name.to_str()?.strip_suffix(".seg")?.parse().ok()?;
            Some((n, e.path()))
        })
        .collect();
    v.sort();
    Ok(v)
}

// ---- reading ----

/// Why a recording cannot be read: which file, where, and what was wrong.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file could not be read.
    #[error("cannot read {}: {cause}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        cause: std::io::Error,
    },
    /// Not a segment of a recording.
    #[error("{} is not a Pulp recording segment (its first bytes are not PULPREC\\x01)", path.display())]
    NotASegment {
        /// The file.
        path: PathBuf,
    },
    /// The file ends inside a chunk.
    #[error("{} is truncated: the chunk at byte {at} needs {need} bytes, {have} are left", path.display())]
    Truncated {
        /// The file.
        path: PathBuf,
        /// The chunk's offset.
        at: u64,
        /// Bytes the chunk needs.
        need: u64,
        /// Bytes left in the file.
        have: u64,
    },
    /// A chunk's digest does not match its data.
    #[error("{} is corrupt: the chunk at byte {at} does not match its checksum", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The chunk's offset.
        at: u64,
    },
    /// A chunk's records do not decode.
    #[error("{} at chunk byte {at}: {cause}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// The chunk's offset in the file.
        at: u64,
        /// What was wrong.
        cause: pulp_ext::tape::Malformed,
    },
}

/// A segment being read.
struct Segment {
    path: PathBuf,
    reader: std::io::BufReader<File>,
    at: u64,
    size: u64,
}

/// The records of a stream, segment by segment, chunk by chunk.
pub struct StreamReader {
    segments: std::vec::IntoIter<(u64, PathBuf)>,
    current: Option<Segment>,
    pending: std::collections::VecDeque<Rec>,
    /// The first segment number found (a ring may have deleted older ones).
    pub first_segment: Option<u64>,
}

impl StreamReader {
    /// Reads the stream in `dir`.
    pub fn open(dir: &Path) -> Result<StreamReader, ReadError> {
        let segs = segments(dir).map_err(|cause| ReadError::Io {
            path: dir.to_path_buf(),
            cause,
        })?;
        Ok(StreamReader {
            first_segment: segs.first().map(|s| s.0),
            segments: segs.into_iter(),
            current: None,
            pending: Default::default(),
        })
    }

    /// The next record, `None` at the end.
    pub fn next_rec(&mut self) -> Result<Option<Rec>, ReadError> {
        loop {
            if let Some(r) = self.pending.pop_front() {
                return Ok(Some(r));
            }
            if self.current.is_none() {
                let Some((_, path)) = self.segments.next() else {
                    return Ok(None);
                };
                let io = |cause| ReadError::Io {
                    path: path.clone(),
                    cause,
                };
                // Read chunk by chunk: memory holds one chunk, whatever the file's size.
                let f = crate::manifest::open_regular(&path).map_err(io)?;
                let size = f.metadata().map_err(io)?.len();
                let mut r = std::io::BufReader::new(f);
                let mut magic = [0u8; 8];
                if size < MAGIC.len() as u64 || r.read_exact(&mut magic).is_err() || &magic != MAGIC
                {
                    return Err(ReadError::NotASegment { path });
                }
                self.current = Some(Segment {
                    path,
                    reader: r,
                    at: MAGIC.len() as u64,
                    size,
                });
            }
            let seg = self.current.as_mut().expect("set above");
            if seg.at == seg.size {
                self.current = None;
                continue;
            }
            let (start, left) = (seg.at, seg.size - seg.at);
            let truncated = |need: u64| ReadError::Truncated {
                path: seg.path.clone(),
                at: start,
                need,
                have: left,
            };
            let mut head = [0u8; CHUNK_HEAD];
            if left < CHUNK_HEAD as u64 || seg.reader.read_exact(&mut head).is_err() {
                return Err(truncated(CHUNK_HEAD as u64));
            }
            let len = u32::from_le_bytes(head[..4].try_into().expect("4")) as usize;
            let sum = u32::from_le_bytes(head[4..].try_into().expect("4"));
            let need = (CHUNK_HEAD + len) as u64;
            if len == 0 || len > MAX_CHUNK {
                return Err(ReadError::Malformed {
                    path: seg.path.clone(),
                    at: start,
                    cause: pulp_ext::tape::Malformed {
                        at: 0,
                        what: format!("a chunk of {len} bytes (a writer makes 1 to {MAX_CHUNK})"),
                    },
                });
            }
            if need > left {
                return Err(truncated(need));
            }
            let mut chunk = vec![0u8; len];
            seg.reader
                .read_exact(&mut chunk)
                .map_err(|_| truncated(need))?;
            seg.at += need;
            if checksum(&chunk) != sum {
                return Err(ReadError::Corrupt {
                    path: seg.path.clone(),
                    at: start,
                });
            }
            let mut d = Decoder::new(&chunk);
            while let Some(r) = d.next_rec().map_err(|cause| ReadError::Malformed {
                path: seg.path.clone(),
                at: start,
                cause,
            })? {
                self.pending.push_back(r);
            }
        }
    }
}
