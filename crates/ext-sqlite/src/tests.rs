//! The connection a guest gets, on a real database file: what ordinary SQL still
//! does, and what the authorizer, the limits and the settings refuse.

use super::*;
use rmpv::Value as V;

fn limits(max_result: usize) -> Limits {
    Limits {
        statement: Duration::from_secs(5),
        max_result,
        busy: Duration::from_secs(1),
        max_db: 1 << 30,
    }
}

/// A folder removed on drop (no dependency for one helper).
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("ext-sqlite-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct T {
    db: Db,
    dir: TempDir,
}

impl T {
    fn new() -> T {
        T::with(8 << 20)
    }

    fn with(max_result: usize) -> T {
        let dir = TempDir::new();
        let plugin = dir.path().join("data").join("p");
        std::fs::create_dir_all(&plugin).unwrap();
        let db = Db::open_in(&plugin, limits(max_result)).unwrap();
        T { db, dir }
    }

    fn exec(&mut self, sql: &str) -> Result<i64, (Status, String)> {
        self.exec_with(sql, vec![])
    }

    fn exec_with(&mut self, sql: &str, params: Vec<Value>) -> Result<i64, (Status, String)> {
        self.db
            .exec(sql, params)
            .map(|r| r.rows_affected)
            .map_err(split)
    }

    fn query(&mut self, sql: &str) -> Result<Vec<Vec<V>>, (Status, String)> {
        self.query_with(sql, vec![])
    }

    fn query_with(
        &mut self,
        sql: &str,
        params: Vec<Value>,
    ) -> Result<Vec<Vec<V>>, (Status, String)> {
        let out = self.db.query(sql, params).map_err(split)?;
        let v = rmpv::decode::read_value(&mut &out[..]).unwrap();
        Ok(v["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_array().unwrap().clone())
            .collect())
    }

    #[track_caller]
    fn ok(&mut self, sql: &str) {
        if let Err(e) = self.exec(sql) {
            panic!("{sql}: {e:?}");
        }
    }

    #[track_caller]
    fn denied(&mut self, sql: &str, reason: &str) {
        let e = self.exec(sql).expect_err(sql);
        assert_eq!(e.0, Status::Denied, "{sql}: {e:?}");
        assert!(e.1.contains(reason), "{sql}: {e:?} should name {reason:?}");
        assert!(e.1.contains("not allowed here"), "{e:?}");
    }
}

fn split(e: pulp_ext::Error) -> (Status, String) {
    match e {
        pulp_ext::Error::Status { status, message } => (status, message),
        other => panic!("{other}"),
    }
}

#[test]
fn ordinary_sql_still_works() {
    let mut t = T::new();
    for sql in [
        // The notes example's statements.
        "CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY AUTOINCREMENT, text TEXT NOT NULL)",
        "INSERT INTO notes (text) VALUES ('a')",
        "DELETE FROM notes WHERE id = 99",
        // Schema changes.
        "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT, b INT DEFAULT (abs(-1)) CHECK (b >= 0), j TEXT, g AS (upper(a)))",
        "CREATE INDEX t_a ON t(a)",
        "CREATE INDEX t_lower ON t(lower(a))",
        "CREATE UNIQUE INDEX t_j ON t(json_extract(j, '$.k'))",
        "ALTER TABLE t ADD COLUMN c REAL",
        "ALTER TABLE t RENAME COLUMN c TO d",
        "ALTER TABLE t DROP COLUMN d",
        "CREATE TABLE u(x REFERENCES t(id) ON DELETE CASCADE)",
        "ALTER TABLE u RENAME TO u2",
        "CREATE VIEW v AS SELECT id, upper(a) AS up FROM t",
        "CREATE TEMP TABLE scratch(x)",
        "CREATE TEMP VIEW tv AS SELECT * FROM t",
        "CREATE TRIGGER t_ins AFTER INSERT ON t BEGIN INSERT INTO u2 VALUES (new.id); END",
        "CREATE TEMP TRIGGER t_tmp AFTER INSERT ON t BEGIN INSERT INTO scratch VALUES (new.id); END",
        // Data.
        "INSERT INTO t(a, j) VALUES ('x', '{\"k\": 1}'), ('y', json_object('k', 2))",
        "INSERT INTO t(a) VALUES ('z') ON CONFLICT DO NOTHING",
        "UPDATE t SET a = printf('%s-%d', a, id) WHERE id > 0",
        "INSERT INTO t(a) VALUES ('r') RETURNING id",
        "BEGIN; SAVEPOINT s; INSERT INTO scratch VALUES (1); ROLLBACK TO s; RELEASE s; COMMIT",
        // Maintenance.
        "ANALYZE",
        "REINDEX",
        "VACUUM",
        "PRAGMA optimize",
        "PRAGMA foreign_keys = ON",
        "PRAGMA user_version = 3",
        "PRAGMA main.application_id = 7",
        "PRAGMA wal_checkpoint(TRUNCATE)",
        "PRAGMA integrity_check",
        "PRAGMA incremental_vacuum",
        "DROP TRIGGER t_tmp",
        "DROP VIEW tv",
        "DROP TABLE scratch",
    ] {
        t.ok(sql);
    }
    let rows = t
        .query(
            "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 3)
             SELECT n, row_number() OVER (ORDER BY n DESC), group_concat(n) OVER (),
                    date('2024-01-02', '+1 day'), typeof(randomblob(4)), coalesce(NULL, 'x'),
                    j.value ->> '$' , sqlite_version() IS NOT NULL
             FROM c, json_each('[10]') AS j",
        )
        .unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0][3], V::from("2024-01-03"));
    let info = t.query("SELECT name FROM pragma_table_info('t')").unwrap();
    assert_eq!(info.len(), 4, "{info:?}");
    assert_eq!(t.query("PRAGMA user_version").unwrap(), [vec![V::from(3)]]);
    assert_eq!(
        t.query("PRAGMA journal_mode").unwrap(),
        [vec![V::from("wal")]]
    );
    assert_eq!(
        t.query("SELECT count(*) FROM u2").unwrap(),
        [vec![V::from(4)]]
    );
    assert!(!t.query("PRAGMA table_info(t)").unwrap().is_empty());
    assert!(!t.query("PRAGMA index_list(t)").unwrap().is_empty());
    assert_eq!(
        t.query("SELECT up FROM v ORDER BY id LIMIT 1").unwrap(),
        [vec![V::from("X-1")]]
    );
}

#[test]
fn fts5_and_rtree_work() {
    let mut t = T::new();
    t.ok("CREATE TABLE docs(id INTEGER PRIMARY KEY, body TEXT)");
    t.ok("CREATE VIRTUAL TABLE docs_fts USING fts5(body, content='docs', content_rowid='id', tokenize='porter unicode61')");
    // External content kept in sync by triggers: needs the module to be innocuous
    // under trusted_schema = OFF.
    t.ok("CREATE TRIGGER docs_ai AFTER INSERT ON docs BEGIN INSERT INTO docs_fts(rowid, body) VALUES (new.id, new.body); END");
    t.ok("INSERT INTO docs(body) VALUES ('the quick brown fox'), ('lazy dogs sleep')");
    let rows = t
        .query("SELECT rowid, highlight(docs_fts, 0, '[', ']'), snippet(docs_fts, 0, '<', '>', '…', 4), bm25(docs_fts) FROM docs_fts WHERE docs_fts MATCH 'fox' ORDER BY rank")
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0][1], V::from("the quick brown [fox]"));
    t.ok("INSERT INTO docs_fts(docs_fts) VALUES ('optimize')");
    t.ok("CREATE VIRTUAL TABLE v USING fts5vocab(docs_fts, row)");
    assert!(!t.query("SELECT term FROM v").unwrap().is_empty());
    t.ok("CREATE VIRTUAL TABLE boxes USING rtree(id, x0, x1, y0, y1)");
    t.ok("INSERT INTO boxes VALUES (1, 0, 10, 0, 10)");
    assert_eq!(
        t.query("SELECT id FROM boxes WHERE x0 <= 5 AND x1 >= 5")
            .unwrap(),
        [vec![V::from(1)]]
    );
    t.ok("VACUUM");
    t.ok("DROP TABLE docs_fts");
    t.ok("DROP TABLE boxes");
}

#[test]
fn attach_is_denied_however_the_name_is_written() {
    let mut t = T::new();
    let other = t.dir.path().join("other.db");
    let path = other.display().to_string();
    t.denied(&format!("ATTACH '{path}' AS o"), "ATTACH");
    t.denied(
        &format!("ATTACH DATABASE '{path}' || '' AS o"),
        "ATTACH with a computed",
    );
    t.denied("ATTACH '' AS o", "ATTACH");
    t.denied("ATTACH ':memory:' AS o", "ATTACH");
    t.denied("ATTACH 'file:x?mode=memory' AS o", "ATTACH");
    t.denied("ATTACH printf('%s', 'x.db') AS o", "ATTACH with a computed");
    let e = t
        .exec_with("ATTACH ? AS o", vec![Value::Text(path.clone())])
        .unwrap_err();
    assert_eq!(e.0, Status::Denied, "{e:?}");
    assert!(e.1.contains("ATTACH with a computed or bound"), "{e:?}");
    t.denied("DETACH main", "DETACH");
    t.denied("DETACH temp", "DETACH");
    t.denied(&format!("VACUUM INTO '{path}'"), "VACUUM INTO");
    t.denied("VACUUM INTO ''", "VACUUM INTO");
    let e = t
        .exec_with("VACUUM INTO ?", vec![Value::Text(path.clone())])
        .unwrap_err();
    assert_eq!(e.0, Status::Denied, "{e:?}");
    // Inside a transaction too (SQLite would refuse it there before attaching).
    t.ok("BEGIN");
    t.denied(&format!("VACUUM INTO '{path}'"), "VACUUM INTO");
    t.ok("ROLLBACK");
    assert!(!other.exists(), "no file was made");
    assert!(!t.dir.path().join("data/p/x.db").exists());
    assert!(!std::path::Path::new("x.db").exists());
    // After all that, the connection works and VACUUM still does.
    t.ok("CREATE TABLE ok(x); VACUUM; VACUUM main");
}

#[test]
fn dangerous_functions_and_modules_are_denied() {
    let mut t = T::new();
    t.denied(
        "SELECT load_extension('/lib/x86_64-linux-gnu/libc.so.6')",
        "load_extension()",
    );
    t.denied("SELECT fts3_tokenizer('simple')", "fts3_tokenizer()");
    let e = t
        .query_with(
            "SELECT fts3_tokenizer(?)",
            vec![Value::Text("simple".into())],
        )
        .unwrap_err();
    assert_eq!(e.0, Status::Denied, "{e:?}");
    let e = t
        .exec_with(
            "SELECT fts3_tokenizer(?, ?)",
            vec![
                Value::Text("evil".into()),
                Value::Blob(0x4141_4141_4141_4141u64.to_le_bytes().to_vec()),
            ],
        )
        .unwrap_err();
    assert_eq!(e.0, Status::Denied, "{e:?}");
    t.denied("SELECT sqlite_log(1, 'x')", "sqlite_log()");
    t.denied("SELECT fts5(NULL)", "fts5()");
    t.denied("SELECT rtreenode(2, x'00')", "rtreenode()");
    t.denied(
        "CREATE VIRTUAL TABLE f USING fts3(x, tokenize=evil)",
        "module \"fts3\"",
    );
    t.denied("CREATE VIRTUAL TABLE f USING fts4(x)", "module \"fts4\"");
    t.denied(
        "CREATE VIRTUAL TABLE f USING fts3tokenize(simple)",
        "module \"fts3tokenize\"",
    );
    t.denied("CREATE VIRTUAL TABLE f USING dbstat", "module \"dbstat\"");
    // A view or trigger cannot smuggle a denied function past the authorizer: it is
    // judged when the statement that uses it is compiled.
    // (Or refused first by trusted_schema = OFF, as an unsafe use in a schema.)
    t.ok("CREATE VIEW bad AS SELECT load_extension('x')");
    let refused = |e: (Status, String), f: &str| {
        assert!(
            e.0 == Status::Denied && e.1.contains(f) || e.1.contains(&format!("unsafe use of {f}")),
            "{e:?}"
        )
    };
    refused(t.exec("SELECT * FROM bad").unwrap_err(), "load_extension()");
    t.ok("CREATE TABLE a(x)");
    t.ok("CREATE TRIGGER bad AFTER INSERT ON a BEGIN SELECT fts3_tokenizer('simple'); END");
    refused(
        t.exec("INSERT INTO a VALUES (1)").unwrap_err(),
        "fts3_tokenizer()",
    );
    t.denied(
        "CREATE TABLE d(x DEFAULT (load_extension('x')))",
        "load_extension()",
    );
    // SQLite's ALTER TABLE helpers are not callable from a guest's text.
    let e = t
        .exec("SELECT sqlite_rename_test('main', 'x', 'y', 'z', 0, 'a', 0)")
        .unwrap_err();
    assert_eq!(e.0, Status::Failed, "{e:?}");
    assert!(e.1.contains("no such function"), "{e:?}");
}

#[test]
fn pragmas_are_judged_by_name_and_schema() {
    let mut t = T::new();
    for p in [
        "hard_heap_limit = 1",
        "hard_heap_limit",
        "soft_heap_limit = 1",
        "threads = 4",
        "temp_store_directory = '/tmp'",
        "data_store_directory = '/tmp'",
        "database_list",
        "writable_schema = ON",
        "trusted_schema = ON",
        "compile_options",
        "no_such_pragma",
    ] {
        t.denied(&format!("PRAGMA {p}"), "PRAGMA ");
    }
    for p in [
        "journal_mode = DELETE",
        "cache_size = -1000000",
        "mmap_size = 1000000000",
        "busy_timeout = 100000",
        "synchronous = OFF",
        "locking_mode = EXCLUSIVE",
        "temp_store = MEMORY",
    ] {
        t.denied(&format!("PRAGMA {p}"), "setting PRAGMA");
    }
    // A schema other than main and temp cannot exist; SQLite refuses it first.
    assert!(t.exec("PRAGMA other.user_version").is_err());
    t.denied("SELECT * FROM pragma_hard_heap_limit", "hard_heap_limit");
    t.denied("SELECT * FROM pragma_database_list", "database_list");
    t.ok("PRAGMA temp.table_info(x)");
    t.ok("PRAGMA busy_timeout; PRAGMA cache_size; PRAGMA mmap_size");
}

#[test]
fn one_value_cannot_pass_the_result_limit_inside_sqlite() {
    let mut t = T::with(64 << 10);
    let e = t
        .query("SELECT randomblob(400000000), randomblob(400000000)")
        .unwrap_err();
    assert_eq!(e.0, Status::TooLarge, "{e:?}");
    assert!(e.1.contains("65536 bytes"), "{e:?}");
    for sql in [
        "SELECT zeroblob(100000)",
        "SELECT printf('%.*c', 100000, 'x')",
        "SELECT replace(hex(zeroblob(40000)), '0', '00')",
        "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 100000) SELECT group_concat('xx') FROM c",
    ] {
        let e = t.query(sql).unwrap_err();
        assert_eq!(e.0, Status::TooLarge, "{sql}: {e:?}");
    }
    let e = t
        .exec_with("SELECT ?", vec![Value::Blob(vec![0; 100_000])])
        .unwrap_err();
    assert_eq!(e.0, Status::TooLarge, "a parameter over the limit: {e:?}");
    t.ok("CREATE TABLE b(x)");
    let e = t
        .exec("INSERT INTO b VALUES (zeroblob(40000)), (zeroblob(40000))")
        .map(|_| ());
    assert_eq!(e, Ok(()), "values under the limit are fine");
    let long = format!("SELECT {}1", "1 + ".repeat(300_000));
    let e = t.query(&long).unwrap_err();
    assert_eq!(e.0, Status::TooLarge, "statement text over 1 MiB: {e:?}");
}

#[test]
fn big_but_ordinary_statements_fit_the_limits() {
    let mut t = T::new();
    t.ok("CREATE TABLE m(a, b, c)");
    // A 10 000-row insert with 30 000 parameters.
    let rows = vec!["(?, ?, ?)"; 10_000].join(", ");
    let params = (0..30_000).map(Value::Integer).collect();
    assert_eq!(
        t.exec_with(&format!("INSERT INTO m VALUES {rows}"), params),
        Ok(10_000)
    );
    // The same as literals: about 400 KiB of text.
    let rows: Vec<_> = (0..10_000)
        .map(|i| format!("({i}, 'row {i}', x'00ff')"))
        .collect();
    assert_eq!(
        t.exec(&format!("INSERT INTO m VALUES {}", rows.join(", "))),
        Ok(10_000)
    );
    // A migration of 200 tables in one text.
    let tables: String = (0..200)
        .map(|i| format!("CREATE TABLE t{i}(id INTEGER PRIMARY KEY, v TEXT);"))
        .collect();
    t.ok(&tables);
}

#[test]
fn a_result_is_checked_value_by_value() {
    let mut t = T::with(4096);
    t.ok("CREATE TABLE b(x)");
    t.ok("INSERT INTO b VALUES (zeroblob(3000)), (zeroblob(3000))");
    let e = t.query("SELECT x FROM b").unwrap_err();
    assert_eq!(e.0, Status::TooLarge);
    assert!(e.1.contains("4096-byte limit after 1 rows"), "{e:?}");
    assert_eq!(t.query("SELECT length(x) FROM b").unwrap().len(), 2);
}

#[test]
fn messages_never_show_host_paths() {
    let mut t = T::new();
    let root = t.dir.path().display().to_string();
    let mut seen = Vec::new();
    for sql in [
        "SELECT * FROM nowhere",
        "ATTACH 'x' AS y",
        "PRAGMA database_list",
        "INSERT INTO nowhere VALUES (1)",
    ] {
        seen.push(t.exec(sql).unwrap_err().1);
    }
    // A message SQLite writes with the database's own path in it.
    let path = t.dir.path().join("data/p/data.db").display().to_string();
    let e = t.exec(&format!("SELECT * FROM \"{path}\"")).unwrap_err();
    seen.push(e.1);
    for m in &seen {
        assert!(!m.contains(&root), "{m}");
    }
    assert!(seen[4].contains("the plugin's database"), "{}", seen[4]);
    let e = scrub(&t.db.hide, format!("unable to open {path}-wal"));
    assert_eq!(e, "unable to open the plugin's database-wal");
}

#[test]
fn a_denial_is_forgotten_by_the_next_call() {
    let mut t = T::new();
    t.denied("ATTACH 'x' AS y", "ATTACH");
    let e = t.query("SELECT * FROM nowhere").unwrap_err();
    assert_eq!(e.0, Status::Failed, "{e:?}");
}
