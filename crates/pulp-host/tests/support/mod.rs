//! Running the `pulp` program as a process, as a user would.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// `pulp` with storage and cache in `dir`, human logs, no colours.
pub fn pulp(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pulp"));
    c.arg("--storage-root")
        .arg(dir.join("data"))
        .arg("--cache-dir")
        .arg(dir.join("cache"))
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    c
}

/// A running `pulp`, its stderr read line by line on a thread.
pub struct Running {
    pub child: Child,
    lines: Receiver<String>,
    pub seen: Vec<String>,
}

impl Running {
    pub fn start(mut cmd: Command) -> Running {
        let mut child = cmd
            .stderr(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = channel();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Running {
            child,
            lines: rx,
            seen: Vec::new(),
        }
    }

    /// Waits (at most 30 s) for a stderr line containing `text`.
    pub fn wait_for(&mut self, text: &str) -> String {
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(l) = self.seen.iter().find(|l| l.contains(text)) {
                return l.clone();
            }
            let left = until.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => self.seen.push(l),
                Err(_) => panic!(
                    "no line with {text:?} within 30 s; got:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// Waits (at most `secs`) for the process to exit; kills it and fails if it does not.
    pub fn exit_within(&mut self, secs: u64) -> (ExitStatus, String) {
        let until = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                while let Ok(l) = self.lines.recv_timeout(Duration::from_millis(200)) {
                    self.seen.push(l);
                }
                return (st, self.seen.join("\n"));
            }
            if Instant::now() > until {
                let _ = self.child.kill();
                panic!(
                    "pulp did not exit within {secs} s:\n{}",
                    self.seen.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes a plugin folder (`plugin.wat` + manifest) under `dir` and returns the manifest path.
pub fn plugin(dir: &Path, name: &str, wat: &str, extra: &str) -> PathBuf {
    let d = dir.join(name);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("plugin.wat"), wat).unwrap();
    let m = d.join("pulp.plugin.toml");
    std::fs::write(
        &m,
        format!("name = \"{name}\"\nversion = \"1\"\nwasm = \"plugin.wat\"\n{extra}"),
    )
    .unwrap();
    m
}

/// A guest from `tests/guests`, its prelude markers filled in. The `pulp` program
/// has no `test.record` capability, so `test_record` becomes a local no-op (it is
/// the last import of the prelude, so definitions still follow imports).
pub fn guest(name: &str) -> String {
    let dir = root().join("tests/guests");
    let read = |n: &str| std::fs::read_to_string(dir.join(n)).unwrap();
    let imports = read("prelude/imports.wat").replace(
        r#"(import "pulp" "test_record" (func $record (param i32 i32) (result i32)))"#,
        "(func $record (param i32 i32) (result i32) (i32.const 0))",
    );
    read(name)
        .replace(";; @imports", &imports)
        .replace(";; @alloc", &read("prelude/alloc.wat"))
}

/// Skips a test that needs `what`, loudly; with `PULP_REQUIRE_ALL=1` (set by CI) it fails instead.
pub fn skip(what: &str) {
    if std::env::var("PULP_REQUIRE_ALL").is_ok_and(|v| v == "1") {
        panic!("PULP_REQUIRE_ALL=1 but this test needs {what}, which is missing");
    }
    eprintln!("\n!!!!!!!! SKIPPED: this test needs {what}, which this machine lacks !!!!!!!!\n");
}

#[path = "../../../../tests/src/toolchain.rs"]
pub mod toolchain;

/// Builds the C plugin `source` into `out`; false (after a loud skip) without clang.
pub fn build_c(source: &Path, out: &Path) -> bool {
    let built = toolchain::build(&mut toolchain::clang(&root(), source, out));
    if !built {
        skip(
            "clang with wasi-libc (apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32)",
        );
    }
    built
}

impl Running {
    /// Every line seen so far, after waiting `ms` for more (bounded even when the
    /// process never stops writing).
    pub fn drain(&mut self, ms: u64) -> Vec<String> {
        std::thread::sleep(Duration::from_millis(ms));
        while let Ok(l) = self.lines.try_recv() {
            self.seen.push(l);
        }
        self.seen.clone()
    }
}

impl Running {
    /// Waits for the listener's start-up line and returns its address (`127.0.0.1:port`).
    pub fn listen_addr(&mut self) -> String {
        let line = self.wait_for("listening on http://");
        line.split("listening on http://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .expect("an address after `listening on http://`")
            .to_string()
    }
}

/// One raw HTTP/1.1 exchange over a fresh connection; the whole answer as text.
pub fn http(addr: &str, request: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}
