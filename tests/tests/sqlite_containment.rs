//! storage.sqlite containment (issue #11, section 1): a plugin reaches nothing but its
//! own database however its SQL is written. First the attacks found in review, one
//! test each; then a seeded fuzzer that runs thousands of statements from a grammar
//! of dangerous forms against canaries (another plugin's database, a folder outside
//! the plugin's own) through a real guest's `sqlite_exec` / `sqlite_query`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use pulp_tests::{Driver, Fixture, Outcome};
use rmpv::Value as V;

const DECL: &str = "capabilities = [\"storage.sqlite\", \"test.record\"]";

fn driver(f: &Fixture, name: &str) -> Option<Driver> {
    Driver::start(f, name, DECL)
}

/// Another plugin's database holding a secret, closed (no WAL left), and an empty
/// folder outside every plugin's folder.
struct Canary {
    db: PathBuf,
    folder: PathBuf,
    secret: String,
    bytes: Vec<u8>,
    mtime: SystemTime,
}

impl Canary {
    fn new(f: &Fixture) -> Option<Canary> {
        let secret = "CANARY-SECRET-7f3a9c".to_string();
        // Records are keyed by plugin name across the test binary: a name of its own
        // for each test's canary, which tests build at the same time.
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let name = format!(
            "canary-{}",
            N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        );
        {
            let mut d = driver(f, &name)?;
            let o = d.exec(
                "CREATE TABLE s(secret TEXT); INSERT INTO s VALUES ('CANARY-SECRET-7f3a9c');",
                &[],
            );
            assert_eq!(o.status, 0, "{o:?}");
            // Dropping the plugin closes its connection, which checkpoints the WAL.
        }
        let db = f.dir.path().join("data").join(&name).join("data.db");
        let folder = f.dir.path().join("canary-folder");
        std::fs::create_dir_all(&folder).unwrap();
        let bytes = std::fs::read(&db).unwrap();
        assert!(
            bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "the secret is in the file"
        );
        let mtime = std::fs::metadata(&db).unwrap().modified().unwrap();
        Some(Canary {
            db,
            folder,
            secret,
            bytes,
            mtime,
        })
    }

    /// The canary database is byte-for-byte the same, untouched, alone in its folder,
    /// and the canary folder is empty.
    #[track_caller]
    fn intact(&self) {
        assert_eq!(
            std::fs::read(&self.db).unwrap(),
            self.bytes,
            "canary bytes changed"
        );
        assert_eq!(
            std::fs::metadata(&self.db).unwrap().modified().unwrap(),
            self.mtime,
            "canary database was written"
        );
        let names: Vec<_> = std::fs::read_dir(self.db.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["data.db"], "the canary's folder gained files");
        assert_eq!(
            std::fs::read_dir(&self.folder).unwrap().count(),
            0,
            "a file was created in the canary folder"
        );
    }

    /// Neither the result nor the message of `o` shows the canary's secret.
    #[track_caller]
    fn unread(&self, o: &Outcome, sql: &str) {
        let leaked = o
            .result
            .windows(self.secret.len())
            .any(|w| w == self.secret.as_bytes())
            || o.error.contains(&self.secret);
        assert!(!leaked, "{sql}: read the canary: {o:?}");
    }
}

/// Every file and folder under `root` except `skip`, with its size and mtime.
fn snapshot(root: &Path, skip: &Path) -> BTreeMap<PathBuf, (u64, SystemTime)> {
    let mut out = BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.starts_with(skip) {
                continue;
            }
            let m = std::fs::symlink_metadata(&p).unwrap();
            out.insert(p.clone(), (m.len(), m.modified().unwrap()));
            if m.is_dir() {
                todo.push(p);
            }
        }
        let m = std::fs::metadata(&dir).unwrap();
        out.insert(dir, (0, m.modified().unwrap()));
    }
    out
}

#[track_caller]
fn denied(o: &Outcome, sql: &str) {
    assert_eq!(o.status, 9, "{sql}: {o:?}");
    assert!(o.error.contains("not allowed here"), "{sql}: {o:?}");
}

#[test]
fn attach_with_a_computed_file_name_is_denied() {
    let f = Fixture::new();
    let Some(canary) = Canary::new(&f) else {
        return;
    };
    let mut d = driver(&f, "attacker-computed").unwrap();
    let target = canary.db.display();
    let fresh = canary.folder.join("new.db");
    for sql in [
        format!("ATTACH '{target}' || '' AS v"),
        format!("ATTACH DATABASE printf('%s', '{target}') AS v"),
        format!("ATTACH (SELECT '{target}') AS v"),
        format!("ATTACH '{}' || '' AS n", fresh.display()),
    ] {
        let o = d.exec(&sql, &[]);
        denied(&o, &sql);
        assert!(
            o.error
                .contains("ATTACH with a computed or bound file name"),
            "{o:?}"
        );
    }
    for sql in [
        "SELECT secret FROM v.s",
        "INSERT INTO v.s VALUES ('pwned')",
        "CREATE TABLE n.x(y)",
    ] {
        let o = d.query(sql, &[]);
        assert_ne!(o.status, 0, "{sql}: {o:?}");
        canary.unread(&o, sql);
    }
    assert!(
        !fresh.exists(),
        "no database was created outside the plugin's folder"
    );
    canary.intact();
}

#[test]
fn attach_with_a_bound_file_name_is_denied() {
    let f = Fixture::new();
    let Some(canary) = Canary::new(&f) else {
        return;
    };
    let mut d = driver(&f, "attacker-bound").unwrap();
    let fresh = canary.folder.join("bound.db");
    for path in [&canary.db, &fresh] {
        let p = V::from(path.display().to_string());
        let o = d.exec("ATTACH ? AS o", std::slice::from_ref(&p));
        denied(&o, "ATTACH ? AS o");
        let o = d.query("ATTACH DATABASE ? AS o", &[p]);
        denied(&o, "ATTACH DATABASE ? AS o (query)");
    }
    let o = d.query("SELECT secret FROM o.s", &[]);
    assert_ne!(o.status, 0, "{o:?}");
    canary.unread(&o, "SELECT secret FROM o.s");
    assert!(!fresh.exists());
    canary.intact();
}

#[test]
fn fts3_tokenizer_cannot_read_a_host_pointer() {
    let f = Fixture::new();
    let Some(mut d) = driver(&f, "ptr") else {
        return;
    };
    for (sql, params) in [
        ("SELECT fts3_tokenizer(?)", vec![V::from("simple")]),
        ("SELECT fts3_tokenizer('simple')", vec![]),
        ("SELECT hex(fts3_tokenizer('porter'))", vec![]),
    ] {
        let o = d.query(sql, &params);
        denied(&o, sql);
        assert!(o.error.contains("fts3_tokenizer()"), "{o:?}");
        assert!(o.result.is_empty(), "no pointer came back: {o:?}");
    }
}

#[test]
fn fts3_tokenizer_cannot_plant_a_pointer_for_the_host_to_call() {
    let f = Fixture::new();
    let Some(mut d) = driver(&f, "segv") else {
        return;
    };
    let fake = V::Binary(0x4141_4141_4141_4141u64.to_le_bytes().to_vec());
    let o = d.exec("SELECT fts3_tokenizer(?, ?)", &[V::from("evil"), fake]);
    denied(&o, "SELECT fts3_tokenizer(?, ?)");
    // On the old host this called through 0x4141414141414141: SIGSEGV, every plugin gone.
    for sql in [
        "CREATE VIRTUAL TABLE f USING fts3(x, tokenize=evil)",
        "CREATE VIRTUAL TABLE f4 USING fts4(x, tokenize=evil)",
        "CREATE VIRTUAL TABLE t USING fts3tokenize(evil)",
    ] {
        let o = d.exec(sql, &[]);
        denied(&o, sql);
    }
    // Still alive, and full-text search is still there, through FTS5.
    let o = d.exec(
        "CREATE VIRTUAL TABLE ok USING fts5(x); INSERT INTO ok VALUES ('still here');",
        &[],
    );
    assert_eq!(o.status, 0, "{o:?}");
    let o = d.query("SELECT x FROM ok WHERE ok MATCH 'still'", &[]);
    assert_eq!(o.status, 0, "{o:?}");
}

#[test]
fn process_wide_pragmas_are_denied_and_a_neighbour_is_unaffected() {
    let f = Fixture::new();
    let (Some(mut a), Some(mut b)) = (driver(&f, "noisy"), driver(&f, "neighbour")) else {
        return;
    };
    let elsewhere = f.dir.path().join("canary-folder");
    std::fs::create_dir_all(&elsewhere).unwrap();
    for sql in [
        "PRAGMA hard_heap_limit = 1".to_string(),
        "PRAGMA soft_heap_limit = 1".to_string(),
        format!("PRAGMA temp_store_directory = '{}'", elsewhere.display()),
        format!("PRAGMA data_store_directory = '{}'", elsewhere.display()),
        "PRAGMA threads = 8".to_string(),
        "SELECT * FROM pragma_hard_heap_limit".to_string(),
        "PRAGMA main.hard_heap_limit = 1".to_string(),
    ] {
        let o = a.exec(&sql, &[]);
        denied(&o, &sql);
        assert!(
            o.error.contains("PRAGMA") || o.error.contains("pragma"),
            "{o:?}"
        );
    }
    // The neighbour works as if nothing happened (on the old host every statement of
    // every plugin failed with "out of memory" from here on).
    let o = b.exec(
        "CREATE TABLE t(x); INSERT INTO t VALUES (randomblob(1000)); VACUUM;",
        &[],
    );
    assert_eq!(o.status, 0, "{o:?}");
    let o = b.query("SELECT length(x) FROM t", &[]);
    assert_eq!(o.status, 0, "{o:?}");
    // And so does the plugin that tried.
    let o = a.exec("CREATE TABLE t(x); VACUUM;", &[]);
    assert_eq!(o.status, 0, "{o:?}");
    assert_eq!(
        std::fs::read_dir(&elsewhere).unwrap().count(),
        0,
        "no temporary file went to the folder a pragma named"
    );
}

#[test]
fn last_error_never_shows_a_host_path() {
    let f = Fixture::new();
    let Some(mut d) = driver(&f, "paths") else {
        return;
    };
    let root = f.dir.path().display().to_string();
    let own = f
        .dir
        .path()
        .join("data/paths/data.db")
        .display()
        .to_string();
    for sql in [
        "SELECT * FROM nowhere".to_string(),
        "INSERT INTO nowhere VALUES (1)".to_string(),
        format!("SELECT * FROM \"{own}\""),
        "ATTACH 'x.db' AS x".to_string(),
        "PRAGMA database_list".to_string(),
        "SELECT * FROM pragma_database_list".to_string(),
        "CREATE TABLE t(x UNIQUE); INSERT INTO t VALUES (1); INSERT INTO t VALUES (1);".to_string(),
    ] {
        let o = d.exec(&sql, &[]);
        assert_ne!(o.status, 0, "{sql}: {o:?}");
        assert!(!o.error.contains(&root), "{sql}: {}", o.error);
        assert!(!o.error.contains("/data/paths"), "{sql}: {}", o.error);
    }
    let o = d.exec("SELECT * FROM nowhere", &[]);
    assert!(o.error.contains("the plugin's database"), "{}", o.error);
}

/// The process's peak resident memory in KiB (VmHWM).
fn peak_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn a_randomblob_bomb_fails_before_sqlite_allocates_it() {
    let f = Fixture::new();
    let Some(mut d) = driver(&f, "bomb") else {
        return;
    };
    let before = peak_kib();
    for sql in [
        "SELECT randomblob(400000000), randomblob(400000000)",
        "SELECT length(randomblob(400000000))",
        "SELECT zeroblob(400000000) || x'00'",
        "SELECT printf('%.*c', 400000000, 'x')",
    ] {
        let o = d.query(sql, &[]);
        assert_eq!(o.status, 11, "{sql}: {o:?}");
        assert!(o.error.contains("8388608 bytes"), "{sql}: {}", o.error);
    }
    let grown = peak_kib().saturating_sub(before);
    assert!(
        grown < 100 * 1024,
        "peak memory grew by {grown} KiB; one value is bounded by max_result_bytes"
    );
    let o = d.query("SELECT length(randomblob(1000000))", &[]);
    assert_eq!(o.status, 0, "values under the limit still work: {o:?}");
}

// ---------------------------------------------------------------------------------
// The fuzzer.

/// xorshift64: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())]
    }
}

/// What a generated statement must get.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Must {
    /// 9, from the authorizer.
    Deny,
    /// Anything but 0 (9, or 5 when SQLite refuses it before asking: a function that
    /// does not exist, a schema that is not attached).
    Fail,
    /// Whatever SQLite says (ordinary statements mixed in).
    Any,
}

struct Case {
    sql: String,
    params: Vec<V>,
    must: Must,
}

/// Generates statements from a small grammar of dangerous forms, each with a file
/// name written literally, computed, or bound.
struct Grammar {
    paths: Vec<String>,
    folder: String,
    n: usize,
}

impl Grammar {
    /// A file-name expression for `path`, and the parameters it binds.
    fn name(&self, r: &mut Rng, path: &str) -> (String, Vec<V>) {
        let hex: String = path.bytes().map(|b| format!("{b:02X}")).collect();
        let (a, b) = path.split_at(path.len() / 2);
        match r.below(9) {
            0 => (format!("'{path}'"), vec![]),
            1 => (format!("'{path}' || ''"), vec![]),
            2 => (format!("'{a}' || '{b}'"), vec![]),
            3 => (format!("printf('%s', '{path}')"), vec![]),
            4 => (format!("CAST(unhex('{hex}') AS TEXT)"), vec![]),
            5 => (format!("(SELECT '{path}')"), vec![]),
            6 => (format!("coalesce(NULL, iif(1, '{path}', ''))"), vec![]),
            7 => ("?".into(), vec![V::from(path)]),
            _ => ("CAST(? AS TEXT)".into(), vec![V::from(path)]),
        }
    }

    fn case(&mut self, r: &mut Rng) -> Case {
        self.n += 1;
        let alias = r.pick(&["v", "o", "canary", "main2", "aux"]);
        let path = self.paths[r.below(self.paths.len())].clone();
        let (file, params) = self.name(r, &path);
        let folder = self.folder.clone();
        let n = self.n;
        let c = |sql: String, params: Vec<V>, must| Case { sql, params, must };
        match r.below(12) {
            0 => c(format!("ATTACH {file} AS {alias}"), params, Must::Deny),
            1 => c(
                format!("ATTACH DATABASE {file} AS {alias}"),
                params,
                Must::Deny,
            ),
            // Refused before it runs, so 9 even inside a transaction.
            2 => c(format!("VACUUM INTO {file}"), params, Must::Deny),
            3 => c(format!("VACUUM main INTO {file}"), params, Must::Deny),
            4 => {
                let sql = match r.below(7) {
                    0 => format!("SELECT * FROM {alias}.s"),
                    1 => format!("INSERT INTO {alias}.s VALUES ('pwned')"),
                    2 => format!("UPDATE {alias}.s SET secret = 'pwned'"),
                    3 => format!("DELETE FROM {alias}.s"),
                    4 => format!("CREATE TABLE {alias}.t{n}(x)"),
                    5 => format!("DROP TABLE {alias}.s"),
                    _ => format!("DETACH {}", r.pick(&[alias, "main", "temp"])),
                };
                c(sql, vec![], Must::Fail)
            }
            5 => {
                let name = r.pick(&[
                    "hard_heap_limit",
                    "soft_heap_limit",
                    "temp_store_directory",
                    "data_store_directory",
                    "threads",
                    "mmap_size",
                    "database_list",
                    "writable_schema",
                    "trusted_schema",
                    "cache_size",
                    "journal_mode",
                    "locking_mode",
                    "busy_timeout",
                    "compile_options",
                ]);
                let reads_only = matches!(
                    name,
                    "mmap_size" | "cache_size" | "journal_mode" | "locking_mode" | "busy_timeout"
                );
                let value = match r.below(5) {
                    0 => String::new(),
                    1 => " = 1".into(),
                    2 => format!(" = '{folder}'"),
                    3 => " = OFF".into(),
                    _ => format!("('{path}')"),
                };
                let prefix = r.pick(&["", "main.", "temp.", "v.", "canary."]);
                let must = if prefix == "v." || prefix == "canary." {
                    Must::Fail
                } else if reads_only && value.is_empty() {
                    Must::Any
                } else {
                    Must::Deny
                };
                if r.below(4) == 0 && value.is_empty() {
                    // Not every pragma has a table-valued twin ("no such table").
                    let must = if reads_only { Must::Any } else { Must::Fail };
                    c(format!("SELECT * FROM pragma_{name}"), vec![], must)
                } else {
                    c(format!("PRAGMA {prefix}{name}{value}"), vec![], must)
                }
            }
            6 => {
                // (name, must, how many arguments it takes: SQLite checks that first).
                let (f, must, arity) = r.pick(&[
                    ("fts3_tokenizer", Must::Deny, &[1, 2][..]),
                    ("load_extension", Must::Deny, &[1, 2]),
                    ("sqlite_log", Must::Deny, &[2]),
                    ("fts5", Must::Deny, &[1]),
                    ("rtreenode", Must::Deny, &[2]),
                    ("readfile", Must::Fail, &[]),
                    ("writefile", Must::Fail, &[]),
                    ("edit", Must::Fail, &[]),
                    ("fsdir", Must::Fail, &[]),
                    ("sqlite_dbpage", Must::Fail, &[]),
                    ("sqlite_rename_table", Must::Fail, &[]),
                ]);
                let ptr = V::Binary(0x4141_4141_4141_4141u64.to_le_bytes().to_vec());
                let (args, ps, n) = match r.below(4) {
                    0 => (file.clone(), params.clone(), 1),
                    1 => (format!("'simple', {file}"), params.clone(), 2),
                    2 => ("?, ?".to_string(), vec![V::from("evil"), ptr], 2),
                    _ => ("?".to_string(), vec![V::from("simple")], 1),
                };
                let must = if arity.contains(&n) { must } else { Must::Fail };
                c(format!("SELECT {f}({args})"), ps, must)
            }
            7 => {
                let (module, must) = r.pick(&[
                    ("fts3", Must::Deny),
                    ("fts4", Must::Deny),
                    ("fts3tokenize", Must::Deny),
                    ("fts4aux", Must::Deny),
                    ("dbstat", Must::Deny),
                    ("zipfile", Must::Deny),
                    ("csv", Must::Deny),
                    ("fts5", Must::Any),
                    ("rtree", Must::Any),
                ]);
                let args = r.pick(&[
                    "x",
                    "x, tokenize=evil",
                    "x, tokenize=simple",
                    "x, content='canary.s'",
                    "a, b, c",
                ]);
                c(
                    format!("CREATE VIRTUAL TABLE IF NOT EXISTS vt{n} USING {module}({args})"),
                    vec![],
                    must,
                )
            }
            8 => {
                let sql = match r.below(4) {
                    0 => format!("CREATE TEMP VIEW w{n} AS SELECT * FROM {alias}.s"),
                    1 => format!("SELECT * FROM w{}", n.saturating_sub(r.below(20))),
                    2 => format!(
                        "CREATE TEMP TRIGGER tr{n} AFTER INSERT ON {alias}.s BEGIN SELECT 1; END"
                    ),
                    _ => format!(
                        "CREATE TRIGGER own{n} AFTER INSERT ON own BEGIN INSERT INTO own SELECT secret FROM {alias}.s; END"
                    ),
                };
                c(sql, vec![], Must::Any)
            }
            9 => {
                let sql = r.pick(&[
                    "CREATE TABLE IF NOT EXISTS own(x)",
                    "INSERT INTO own VALUES (randomblob(16))",
                    "SELECT count(*) FROM own",
                    "BEGIN",
                    "COMMIT",
                    "ROLLBACK",
                    "VACUUM",
                    "PRAGMA user_version = 2",
                    "PRAGMA table_info(own)",
                    "DELETE FROM own WHERE rowid % 2 = 0",
                ]);
                c(sql.to_string(), vec![], Must::Any)
            }
            10 => c(
                format!("CREATE TEMP VIEW x{n} AS SELECT sqlite_compileoption_get(0), {file}"),
                params,
                Must::Any,
            ),
            _ => c(
                format!("WITH p(f) AS (SELECT {file}) SELECT f FROM p"),
                params,
                Must::Any,
            ),
        }
    }
}

#[test]
fn dangerous_sql_from_a_grammar_reaches_nothing_outside_the_plugin() {
    let f = Fixture::new();
    let Some(canary) = Canary::new(&f) else {
        return;
    };
    let mut d = driver(&f, "attacker-grammar").unwrap();
    let own_folder = f.dir.path().join("data/attacker-grammar");
    // The guest writes paths under the fixture's folder itself; the host's storage
    // root is what it must never be told.
    let storage = f.dir.path().join("data").display().to_string();
    let cwd = std::env::current_dir().unwrap();
    let outside = [
        canary.db.display().to_string(),
        canary.folder.join("made.db").display().to_string(),
        f.dir.path().join("data/escape.db").display().to_string(),
        format!("file:{}?mode=ro", canary.db.display()),
        format!("file:{}?mode=rwc", canary.folder.join("uri.db").display()),
        format!("{}/../attacker-rel.db", canary.folder.display()),
        "rel-attack.db".to_string(),
        String::new(),
        ":memory:".to_string(),
        "file::memory:?cache=shared".to_string(),
    ];
    let mut g = Grammar {
        paths: outside.to_vec(),
        folder: canary.folder.display().to_string(),
        n: 0,
    };
    let before = snapshot(f.dir.path(), &own_folder);
    // Fixed by default; PULP_SQLITE_FUZZ_SEED and PULP_SQLITE_FUZZ_STATEMENTS explore.
    let env = |k: &str, default: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let mut r = Rng(env("PULP_SQLITE_FUZZ_SEED", 0x5eed_c0de_1234_5678).max(1));
    let statements = env("PULP_SQLITE_FUZZ_STATEMENTS", 3000);
    let mut counts = BTreeMap::new();
    for i in 0..statements {
        let mut case = g.case(&mut r);
        // Several statements at once, now and then (parameters take one statement).
        if case.params.is_empty() && r.below(5) == 0 {
            let more = g.case(&mut r);
            if more.params.is_empty() {
                case.sql = format!("{}; {}", case.sql, more.sql);
                if more.must != Must::Any {
                    case.must = Must::Fail;
                }
            }
        }
        let query = case.params.is_empty() && !case.sql.contains(';') && r.below(2) == 0
            || !case.params.is_empty() && r.below(2) == 0;
        let o = if query {
            d.query(&case.sql, &case.params)
        } else {
            d.exec(&case.sql, &case.params)
        };
        assert!(
            pulp_ext::Status::from_code(o.status).is_some(),
            "{}: status {} is not in the ABI table",
            case.sql,
            o.status
        );
        match case.must {
            Must::Deny => denied(&o, &case.sql),
            Must::Fail => assert_ne!(o.status, 0, "{}: {o:?}", case.sql),
            Must::Any => {}
        }
        canary.unread(&o, &case.sql);
        assert!(!o.error.contains(&storage), "{}: {}", case.sql, o.error);
        *counts.entry(o.status).or_insert(0) += 1;
        if i % 250 == 0 {
            let o = d.query("SELECT 1", &[]);
            assert_eq!(o.status, 0, "the connection still works: {o:?}");
        }
    }
    eprintln!("statuses over {statements} statements: {counts:?}");
    assert!(
        counts.get(&9).copied().unwrap_or(0) > statements / 3,
        "{counts:?}"
    );
    canary.intact();
    let after = snapshot(f.dir.path(), &own_folder);
    let changed: Vec<_> = after
        .iter()
        .filter(|(p, v)| before.get(*p) != Some(v))
        .map(|(p, _)| p)
        .chain(before.keys().filter(|p| !after.contains_key(*p)))
        .collect();
    assert!(
        changed.is_empty(),
        "outside the plugin's folder: {changed:?}"
    );
    for rel in ["rel-attack.db", "attacker-rel.db"] {
        assert!(
            !cwd.join(rel).exists(),
            "{rel} created in the working directory"
        );
    }
    assert!(!f.dir.path().join("attacker-rel.db").exists());
    // Nothing process-wide changed either: a fresh plugin works normally.
    let mut n = driver(&f, "after").unwrap();
    let o = n.exec(
        "CREATE TABLE t(x); INSERT INTO t VALUES (randomblob(100000)); VACUUM;",
        &[],
    );
    assert_eq!(o.status, 0, "{o:?}");
}
