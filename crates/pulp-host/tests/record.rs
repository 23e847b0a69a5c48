//! `pulp run --record` and `pulp replay` as a user runs them: a trap one request
//! triggers in production is reproduced on replay, a fixed build is checked against
//! the recorded traffic, `--until` stops and dumps, and a corrupt, truncated or
//! foreign recording gets a clear error, never a crash. A full disk drops the
//! recording, not the requests.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::{build_c, http, pulp, root, Running};

/// Builds `tests/guests/c/<file>` into `dir`.
fn c_guest(dir: &Path, file: &str) -> Option<PathBuf> {
    let out = dir.join(file.replace(".c", ".wasm"));
    build_c(&root().join("tests/guests/c").join(file), &out).then_some(out)
}

fn buggy_manifest(dir: &Path, wasm: &Path) -> PathBuf {
    let m = dir.join("buggy.plugin.toml");
    std::fs::write(
        &m,
        format!(
            "name = \"buggy\"\nversion = \"1\"\nwasm = \"{}\"\ncapabilities = [\"transport.http.inbound\", \"storage.sqlite\", \"entropy\"]\n",
            wasm.display()
        ),
    )
    .unwrap();
    m
}

fn get(addr: &str, path: &str) -> (String, String) {
    let r = http(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    );
    let status = r.lines().next().unwrap_or("").to_string();
    let body = r.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

/// Runs buggy with `--record` under a few requests, one of them `/share/0`; returns
/// the recording folder and the answers.
fn record_buggy(dir: &Path, wasm: &Path) -> (PathBuf, Vec<(String, String)>) {
    let m = buggy_manifest(dir, wasm);
    let rec = dir.join("rec");
    let mut cmd = pulp(dir);
    cmd.args(["run", "--listen", "127.0.0.1:0", "--record"])
        .arg(&rec)
        .arg(&m);
    let mut p = Running::start(cmd);
    let addr = p.listen_addr();
    p.wait_for("plugin started");
    let mut answers = Vec::new();
    for path in [
        "/share/5", "/fine", "/share/3", "/share/0", "/share/8", "/fine",
    ] {
        answers.push(get(&addr, path));
    }
    p.signal("TERM");
    let (status, _) = p.exit_within(10);
    assert!(status.success());
    (rec, answers)
}

fn replay_cmd(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out = pulp(dir).arg("replay").args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_trap_one_request_triggered_is_reproduced_and_a_fixed_build_differs_only_there() {
    let dir = tempfile::tempdir().unwrap();
    let (Some(buggy), Some(fixed)) = (
        c_guest(dir.path(), "buggy.c"),
        c_guest(dir.path(), "buggy_fixed.c"),
    ) else {
        return;
    };
    let (rec, answers) = record_buggy(dir.path(), &buggy);
    assert!(
        answers[3].0.contains("500"),
        "the bug fails its request: {answers:?}"
    );
    assert!(
        answers[4].1.starts_with("share=125 "),
        "served after the restart: {answers:?}"
    );
    let rec_s = rec.to_str().unwrap();

    // The recorded module, elsewhere: the same trap, same backtrace.
    let (ok, _, err) = replay_cmd(dir.path(), &[rec_s]);
    assert!(ok, "{err}");
    assert!(err.contains("buggy/0: 2 instance(s)"), "{err}");
    assert!(err.contains("trapped as recorded"), "{err}");
    assert!(err.contains("integer divide by zero"), "{err}");
    assert!(
        err.contains("!share"),
        "the backtrace names the function: {err}"
    );
    assert!(err.contains("identical to the recording"), "{err}");

    // The fixed build against the same traffic: one difference, at the bug's step.
    let (ok, _, err) = replay_cmd(dir.path(), &[rec_s, "--module", fixed.to_str().unwrap()]);
    assert!(!ok, "a difference exits 1: {err}");
    let differs: Vec<&str> = err.lines().filter(|l| l.contains("differs at")).collect();
    assert_eq!(differs.len(), 1, "{err}");
    assert!(
        differs[0].contains("`http_respond`") && differs[0].contains("n must not be 0"),
        "{err}"
    );

    // Outputs as JSON lines; two replays diff clean; --from shows the later steps only.
    let (ok, out, _) = replay_cmd(dir.path(), &[rec_s, "--outputs", "-"]);
    assert!(ok);
    let (_, again, _) = replay_cmd(dir.path(), &[rec_s, "--outputs", "-"]);
    assert_eq!(out, again, "a replay is deterministic");
    let bodies: Vec<String> = out
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["import"] == "http_respond")
        .map(|v| v["args"][0]["body"].as_str().unwrap().to_string())
        .collect();
    let served: Vec<String> = answers
        .iter()
        .filter(|(s, _)| s.contains("200"))
        .map(|(_, b)| b.clone())
        .collect();
    assert_eq!(
        bodies, served,
        "the replay's answers are the recorded run's"
    );

    // --until stops before a step and dumps the guest's memory.
    let first_fine = out
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| {
            v["import"] == "http_respond"
                && v["args"][0]["body"].as_str().unwrap().starts_with("fine")
        })
        .unwrap();
    let step = first_fine["step"].as_u64().unwrap();
    let dump = dir.path().join("dump");
    let (ok, out, err) = replay_cmd(
        dir.path(),
        &[
            rec_s,
            "--until",
            &step.to_string(),
            "--dump",
            dump.to_str().unwrap(),
            "--outputs",
            "-",
        ],
    );
    assert!(ok, "{err}");
    assert!(
        err.contains(&format!("stopped before step {step}")),
        "{err}"
    );
    assert!(!out.contains("fine 2"), "nothing of step {step} ran: {out}");
    let mem = std::fs::read(dump.join("memory.bin")).unwrap();
    assert!(
        mem.len() >= 65536 && mem.len().is_multiple_of(65536),
        "{}",
        mem.len()
    );
    // The first answer, still in the guest's heap.
    assert!(
        mem.windows(9).any(|w| w == b"share=200"),
        "the heap holds the first answer"
    );
    let globals: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dump.join("globals.json")).unwrap()).unwrap();
    assert!(globals.is_object(), "{globals}");
}

#[test]
fn corrupt_truncated_and_foreign_recordings_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let Some(buggy) = c_guest(dir.path(), "buggy.c") else {
        return;
    };
    let (rec, _) = record_buggy(dir.path(), &buggy);
    let seg = rec.join("buggy/0/00000000.seg");
    let good = std::fs::read(&seg).unwrap();
    let copy = |name: &str, bytes: &[u8]| {
        let d = dir.path().join(name);
        copy_dir(&rec, &d);
        std::fs::write(d.join("buggy/0/00000000.seg"), bytes).unwrap();
        d
    };
    let run = |d: &Path| {
        let (ok, _, err) = replay_cmd(dir.path(), &[d.to_str().unwrap()]);
        assert!(!err.contains("panicked"), "no crash: {err}");
        (ok, err)
    };

    let cut = copy("cut", &good[..good.len() - 7]);
    let (ok, err) = run(&cut);
    assert!(
        !ok && err.contains("is truncated: the chunk at byte"),
        "{err}"
    );

    let mut flipped = good.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x40;
    let (ok, err) = run(&copy("flip", &flipped));
    assert!(
        !ok && err.contains("is corrupt") && err.contains("checksum"),
        "{err}"
    );

    let (ok, err) = run(&copy("foreign", b"GIF89a this is not a recording"));
    assert!(
        !ok && err.contains("is not a Pulp recording segment"),
        "{err}"
    );

    // A chunk with a right checksum but garbage inside.
    let mut forged = b"PULPREC\x01".to_vec();
    let junk = [3u8, 0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2, 3];
    forged.extend_from_slice(&(junk.len() as u32).to_le_bytes());
    forged.extend_from_slice(&pulp_host::record::checksum(&junk).to_le_bytes());
    forged.extend_from_slice(&junk);
    let (ok, err) = run(&copy("forged", &forged));
    assert!(!ok && err.contains("malformed record"), "{err}");

    let nomod = dir.path().join("nomod");
    copy_dir(&rec, &nomod);
    std::fs::remove_dir_all(nomod.join("modules")).unwrap();
    let (ok, err) = run(&nomod);
    assert!(
        !ok && err.contains("module") && err.contains("missing"),
        "{err}"
    );

    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let (ok, err) = run(&empty);
    assert!(!ok && err.contains("holds no recording"), "{err}");

    // Hundreds of forged recordings (bytes flipped inside chunks whose checksums
    // are then made right): every replay ends, in a report or an error.
    let chunks = chunk_spans(&good);
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let d = dir.path().join("fuzz");
    copy_dir(&rec, &d);
    for _ in 0..200 {
        let mut bytes = good.clone();
        let (start, len) = chunks[(rnd() as usize) % chunks.len()];
        let h = pulp_host::record::CHUNK_HEAD;
        for _ in 0..1 + rnd() % 4 {
            let at = start + h + (rnd() as usize) % len;
            bytes[at] = rnd() as u8;
        }
        let sum = pulp_host::record::checksum(&bytes[start + h..start + h + len]);
        bytes[start + 4..start + h].copy_from_slice(&sum.to_le_bytes());
        std::fs::write(d.join("buggy/0/00000000.seg"), &bytes).unwrap();
        let r = std::panic::catch_unwind(|| {
            pulp_host::replay::replay(pulp_host::replay::ReplayOptions {
                dir: d.clone(),
                ..Default::default()
            })
            .map(|_| ())
        });
        assert!(r.is_ok(), "a forged recording panicked the replay");
    }
}

/// (offset, length) of each chunk of a segment.
fn chunk_spans(seg: &[u8]) -> Vec<(usize, usize)> {
    let h = pulp_host::record::CHUNK_HEAD;
    let mut at = 8;
    let mut out = Vec::new();
    while at + h <= seg.len() {
        let len = u32::from_le_bytes(seg[at..at + 4].try_into().unwrap()) as usize;
        out.push((at, len));
        at += h + len;
    }
    out
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let t = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &t);
        } else {
            std::fs::copy(e.path(), t).unwrap();
        }
    }
}

#[test]
fn a_full_disk_drops_the_recording_not_the_requests() {
    let dir = tempfile::tempdir().unwrap();
    let Some(echo) = c_guest_at(dir.path(), "examples/echo/echo.c") else {
        return;
    };
    let m = dir.path().join("echo.plugin.toml");
    std::fs::write(
        &m,
        format!(
            "name = \"echo\"\nversion = \"1\"\nwasm = \"{}\"\ncapabilities = [\"transport.http.inbound\", \"transport.ws.inbound\", \"transport.sse\"]\n",
            echo.display()
        ),
    )
    .unwrap();
    let rec = dir.path().join("rec");
    // Every file this process writes may hold at most the module and a little more
    // (RLIMIT_FSIZE, with SIGXFSZ ignored so a write fails with EFBIG instead): each
    // segment fills up within a few hundred requests and its next chunk fails.
    // `ulimit -f` counts 512-byte blocks in POSIX shells.
    let blocks = (std::fs::metadata(&echo).unwrap().len() + (4 << 10)) / 512 + 1;
    let cmd_line = format!("ulimit -f {blocks}; trap '' XFSZ; exec \"$0\" \"$@\"");
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(cmd_line).arg(env!("CARGO_BIN_EXE_pulp"));
    let template = pulp(dir.path());
    cmd.args(template.get_args());
    for (k, v) in template.get_envs() {
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    cmd.args([
        "--no-cache",
        "run",
        "--listen",
        "127.0.0.1:0",
        "--record-segment-mb",
        "1",
        "--record",
    ])
    .arg(&rec)
    .arg(&m)
    .stdin(std::process::Stdio::null());
    let mut p = Running::start(cmd);
    let addr = p.listen_addr();
    p.wait_for("plugin started");
    let started = std::time::Instant::now();
    let mut ok = 0;
    for i in 0..1500 {
        let (status, body) = get(&addr, &format!("/echo/m{i}"));
        if status.contains("200") && body == format!("m{i}") {
            ok += 1;
        }
    }
    let took = started.elapsed();
    assert_eq!(ok, 1500, "every request answered while the disk was full");
    let lines = p.drain(300);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("recording: dropped a chunk") && l.contains("cannot write")),
        "the drop is logged: {lines:#?}"
    );
    p.signal("TERM");
    let (status, _) = p.exit_within(10);
    assert!(status.success());
    eprintln!("1500 requests in {took:?} with the recording's writes failing");
    let (_, _, err) = replay_cmd(dir.path(), &[rec.to_str().unwrap()]);
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        err.contains("gap: the recorder dropped"),
        "the replay names the gap: {err}"
    );
    assert!(!err.contains("diverged"), "what was kept replays: {err}");
    std::thread::sleep(Duration::from_millis(10));
}

fn c_guest_at(dir: &Path, path: &str) -> Option<PathBuf> {
    let out = dir
        .join(Path::new(path).file_name().unwrap())
        .with_extension("wasm");
    build_c(&root().join(path), &out).then_some(out)
}

/// Writes a one-segment stream `dir/<plugin>/0` of `recs` (one chunk), and `wat`
/// compiled... kept as text: wasmtime reads WAT too, so a module file may be WAT.
fn forge(dir: &Path, plugin: &str, wat: &str, recs: &[pulp_ext::tape::Rec]) -> String {
    use sha2::Digest;
    let sha: String = sha2::Sha256::digest(wat.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    std::fs::create_dir_all(dir.join("modules")).unwrap();
    std::fs::write(dir.join("modules").join(format!("{sha}.wasm")), wat).unwrap();
    let mut data = Vec::new();
    for r in recs {
        let mut r = r.clone();
        if let pulp_ext::tape::Rec::Begin(b) = &mut r {
            if b.module.is_empty() {
                b.module = sha.clone();
            }
        }
        r.encode(&mut data);
    }
    let s = dir.join(plugin).join("0");
    std::fs::create_dir_all(&s).unwrap();
    let mut seg = b"PULPREC\x01".to_vec();
    seg.extend_from_slice(&(data.len() as u32).to_le_bytes());
    seg.extend_from_slice(&pulp_host::record::checksum(&data).to_le_bytes());
    seg.extend_from_slice(&data);
    std::fs::write(s.join("00000000.seg"), seg).unwrap();
    sha
}

fn begin(plugin: &str, call_timeout_ms: u64) -> pulp_ext::tape::Rec {
    pulp_ext::tape::Rec::Begin(pulp_ext::tape::Begin {
        plugin: plugin.into(),
        version: "1".into(),
        module: String::new(),
        capabilities: vec![],
        memory_mb: 16,
        max_message: 1 << 20,
        call_timeout_ms,
        init_timeout_ms: call_timeout_ms,
        fuel: None,
        wall: 0,
        instance: 0,
    })
}

const LOOPING: &str = r#"(module
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "pulp_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "pulp_init") (param i32 i32) (result i32) (i32.const 0))
  (func (export "pulp_step") (param i32 i32) (result i32)
    (drop (call $clock (i32.const 0) (i64.const 0) (i32.const 64)))
    (loop $l (br $l)) (i32.const 0))
  (func (export "pulp_shutdown") (result i32) (i32.const 0)))"#;

#[test]
fn crafted_recordings_cannot_escape_hang_or_forge_the_report() {
    use pulp_ext::tape::{EntryKind, ImportRec, Outcome, Rec};
    let dir = tempfile::tempdir().unwrap();
    let step = |n: u64| {
        let mut e = n.to_le_bytes().to_vec();
        e.extend_from_slice(&[0; 12]);
        Rec::Enter(EntryKind::Step, e)
    };
    let clock = |name: &str, writes: Vec<(u8, Vec<u8>)>| {
        let id = 0i32.to_le_bytes();
        let precision = 0i64.to_le_bytes();
        Rec::Import(ImportRec {
            name: name.into(),
            digest: pulp_ext::tape::digest(&[&id, &precision]),
            input_len: 12,
            preview: id.to_vec(),
            code: 0,
            trap: None,
            last_error: None,
            writes,
        })
    };
    let start = [
        Rec::Enter(EntryKind::Instantiate, vec![]),
        Rec::Grow {
            table: false,
            desired: 65536,
            ok: true,
        },
        Rec::Leave(Outcome::Returned(0, vec![])),
    ];

    // A step whose recorded limit is an hour: the replay's own cap ends it.
    let hang = dir.path().join("hang");
    let mut recs = vec![begin("p", 3_600_000)];
    recs.extend(start.iter().cloned());
    recs.extend([
        step(0),
        clock("wasi:clock_time_get", vec![(2, vec![0; 8])]),
        Rec::Leave(Outcome::Returned(0, vec![])),
    ]);
    forge(&hang, "p", LOOPING, &recs);
    let t = std::time::Instant::now();
    let (ok, _, err) = replay_cmd(
        dir.path(),
        &[hang.to_str().unwrap(), "--max-call-ms", "300"],
    );
    assert!(!ok && t.elapsed() < Duration::from_secs(20), "{err}");
    assert!(err.contains("step 0") && err.contains("trapped"), "{err}");

    // A module named outside DIR/modules.
    let trav = dir.path().join("trav");
    let mut recs = vec![begin("p", 1000)];
    if let Rec::Begin(b) = &mut recs[0] {
        b.module = "../../elsewhere/evil".into();
    }
    recs.extend(start.iter().cloned());
    forge(&trav, "p", LOOPING, &recs);
    let (ok, _, err) = replay_cmd(dir.path(), &[trav.to_str().unwrap()]);
    assert!(!ok && err.contains("which is not a SHA-256"), "{err}");

    // Writes through parameters the call does not write, or longer than it allows.
    for (name, writes) in [
        ("far", vec![(200u8, vec![1u8; 70_000])]),
        ("long", vec![(2u8, vec![1u8; 100_000])]),
        ("id", vec![(0u8, vec![1u8; 8])]),
    ] {
        let d = dir.path().join(format!("writes-{name}"));
        let mut recs = vec![begin("p", 1000)];
        recs.extend(start.iter().cloned());
        recs.extend([
            step(0),
            clock("wasi:clock_time_get", writes),
            Rec::Leave(Outcome::Returned(0, vec![])),
        ]);
        forge(&d, "p", LOOPING, &recs);
        let (ok, _, err) = replay_cmd(dir.path(), &[d.to_str().unwrap()]);
        assert!(
            !ok && err.contains("which this call does not allow"),
            "{name}: {err}"
        );
    }

    // Text from the recording cannot forge lines of the report.
    let forged = dir.path().join("forged");
    let mut recs = vec![begin("p", 1000)];
    recs.extend(start.iter().cloned());
    recs.extend([
        step(0),
        clock(
            "log\n  identical to the recording\nok/0: 1 instance(s)",
            vec![],
        ),
        Rec::Leave(Outcome::Trap(
            255,
            "x\n  identical to the recording\nfake/0: 9 instance(s)".into(),
        )),
    ]);
    forge(&forged, "p", LOOPING, &recs);
    let (ok, _, err) = replay_cmd(dir.path(), &[forged.to_str().unwrap()]);
    assert!(!ok, "{err}");
    assert!(
        !err.lines().any(|l| l.trim() == "identical to the recording"
            || l.starts_with("ok/0")
            || l.starts_with("fake/0")),
        "no forged line: {err}"
    );

    // An empty chunk, and a recording with no instance's start.
    let empty = dir.path().join("empty-chunk");
    forge(&empty, "p", LOOPING, &[]);
    let (ok, _, err) = replay_cmd(dir.path(), &[empty.to_str().unwrap()]);
    assert!(!ok && err.contains("a chunk of 0 bytes"), "{err}");
    let headless = dir.path().join("headless");
    forge(
        &headless,
        "p",
        LOOPING,
        &[step(0), Rec::Leave(Outcome::Returned(0, vec![]))],
    );
    let (ok, _, err) = replay_cmd(dir.path(), &[headless.to_str().unwrap()]);
    assert!(!ok && err.contains("nothing replayed"), "{err}");
}
