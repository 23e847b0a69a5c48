//! storage.sqlite against real SQLite files, from WAT and C guests.

use pulp_tests::{guest, records, statuses, Driver, Fixture};
use rmpv::Value as V;

const DECL: &str = "capabilities = [\"storage.sqlite\", \"test.record\"]";

fn driver(f: &Fixture, name: &str, extra: &str) -> Option<Driver> {
    Driver::start(f, name, &format!("{DECL}\n{extra}"))
}

fn rows(result: &[u8]) -> (Vec<String>, Vec<Vec<V>>) {
    let v: V = rmpv::decode::read_value(&mut &result[..]).unwrap();
    let cols = v["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    let rows = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_array().unwrap().clone())
        .collect();
    (cols, rows)
}

#[test]
fn wat_guest_does_crud_through_the_imports() {
    let f = Fixture::new();
    let mut p = f.load("crud", &guest("sqlite_crud.wat"), DECL).unwrap();
    p.init().unwrap();
    assert_eq!(statuses("crud"), [0, 0, 0, 0, 0]);
    p.step_event(None).unwrap();
    let r = records("crud");
    assert_eq!(r[0], 0i32.to_le_bytes(), "query status");
    let (cols, rows) = rows(&r[1]);
    assert_eq!(cols, ["k", "v"]);
    assert_eq!(rows, [vec![V::from("a"), V::from(43)]]);
    assert!(
        f.dir.path().join("data/crud/data.db").exists(),
        "one database per plugin at <root>/<name>/data.db"
    );
}

#[test]
fn every_parameter_type_round_trips() {
    let f = Fixture::new();
    let Some(mut d) = driver(&f, "types", "") else {
        return;
    };
    let o = d.exec(
        "CREATE TABLE t(id INTEGER PRIMARY KEY, n, b, small, neg, big, huge, f32, f64, s, bin)",
        &[],
    );
    assert_eq!(o.status, 0, "{o:?}");
    let params = vec![
        V::Nil,
        V::Boolean(true),
        V::from(7u8),
        V::from(-5i8),
        V::from(i64::MIN),
        V::from(i64::MAX as u64),
        V::F32(1.5),
        V::F64(-2.25e300),
        V::from("héllo, wörld"),
        V::Binary(vec![0, 1, 2, 255]),
    ];
    let o = d.exec(
        "INSERT INTO t(n, b, small, neg, big, huge, f32, f64, s, bin) VALUES (?,?,?,?,?,?,?,?,?,?)",
        &params,
    );
    assert_eq!(o.status, 0, "{o:?}");
    let v: V = rmpv::decode::read_value(&mut &o.result[..]).unwrap();
    assert_eq!(v["rows_affected"].as_i64(), Some(1));
    assert_eq!(v["last_insert_id"].as_i64(), Some(1));
    let o = d.query(
        "SELECT n, b, small, neg, big, huge, f32, f64, s, bin FROM t WHERE id = ?",
        &[V::from(1)],
    );
    assert_eq!(o.status, 0, "{o:?}");
    let (cols, rows) = rows(&o.result);
    assert_eq!(
        cols,
        ["n", "b", "small", "neg", "big", "huge", "f32", "f64", "s", "bin"]
    );
    assert_eq!(
        rows,
        [vec![
            V::Nil,
            V::from(1), // SQLite has no bool
            V::from(7),
            V::from(-5),
            V::from(i64::MIN),
            V::from(i64::MAX),
            V::F64(1.5),
            V::F64(-2.25e300),
            V::from("héllo, wörld"),
            V::Binary(vec![0, 1, 2, 255]),
        ]]
    );
    let o = d.query("SELECT * FROM t WHERE id = 99", &[]);
    assert_eq!(
        rows_of(&o.result),
        0,
        "no match is an empty rows array, not nil"
    );
}

fn rows_of(result: &[u8]) -> usize {
    let v: V = rmpv::decode::read_value(&mut &result[..]).unwrap();
    v["rows"].as_array().expect("rows is an array").len()
}

#[test]
fn migrations_run_several_statements_without_parameters() {
    let f = Fixture::new();
    let Some(mut d) = driver(&f, "migrate", "") else {
        return;
    };
    let o = d.exec(
        "CREATE TABLE a(x); CREATE TABLE b(y REFERENCES a(x)); INSERT INTO a VALUES (1); INSERT INTO a VALUES (2);",
        &[],
    );
    assert_eq!(o.status, 0, "{o:?}");
    assert_eq!(rows_of(&d.query("SELECT x FROM a", &[]).result), 2);
}

#[test]
fn a_transaction_spans_steps_on_one_connection() {
    let f = Fixture::new();
    let Some(mut d) = driver(&f, "tx", "") else {
        return;
    };
    assert_eq!(d.exec("CREATE TABLE t(x)", &[]).status, 0);
    assert_eq!(d.exec("BEGIN", &[]).status, 0);
    assert_eq!(d.exec("INSERT INTO t VALUES (?)", &[V::from(1)]).status, 0);
    assert_eq!(
        rows_of(&d.query("SELECT x FROM t", &[]).result),
        1,
        "seen inside the transaction"
    );
    assert_eq!(d.exec("ROLLBACK", &[]).status, 0);
    assert_eq!(
        rows_of(&d.query("SELECT x FROM t", &[]).result),
        0,
        "rolled back"
    );
    assert_eq!(d.exec("BEGIN; INSERT INTO t VALUES (2);", &[]).status, 0);
    assert_eq!(d.exec("COMMIT", &[]).status, 0);
    assert_eq!(rows_of(&d.query("SELECT x FROM t", &[]).result), 1);
}

#[test]
fn a_failing_statement_gives_5_and_sqlites_message() {
    let f = Fixture::new();
    let Some(mut d) = driver(&f, "oops", "") else {
        return;
    };
    let o = d.query("SELECT * FROM nowhere", &[]);
    assert_eq!(o.status, 5);
    assert!(o.error.contains("no such table: nowhere"), "{}", o.error);
    let o = d.exec(
        "CREATE TABLE t(x UNIQUE); INSERT INTO t VALUES (1); INSERT INTO t VALUES (1);",
        &[],
    );
    assert_eq!(o.status, 5);
    assert!(o.error.contains("UNIQUE constraint failed"), "{}", o.error);
}

#[test]
fn bad_inputs_get_their_statuses() {
    let f = Fixture::new();
    let Some(mut d) = driver(&f, "bad", "") else {
        return;
    };
    assert_eq!(d.call("sqlite_exec", b"", b"").status, 1, "empty query");
    assert_eq!(
        d.call("sqlite_exec", b"SELECT ?", &[0xc1]).status,
        3,
        "garbage msgpack"
    );
    assert_eq!(
        d.call("sqlite_exec", b"SELECT ?", &[0x81, 0xa1, b'x', 1])
            .status,
        3,
        "a map, not an array"
    );
    assert_eq!(
        d.call("sqlite_exec", &[0xff, 0xfe], b"").status,
        3,
        "query not UTF-8"
    );
    let o = d.exec("SELECT ?", &[V::Array(vec![])]);
    assert_eq!(o.status, 4, "{o:?}");
    let o = d.exec("SELECT ?", &[V::from(u64::MAX)]);
    assert_eq!(o.status, 4, "{o:?}");
}

#[test]
fn two_plugins_see_only_their_own_rows() {
    let f = Fixture::new();
    let (Some(mut a), Some(mut b)) = (driver(&f, "alice", ""), driver(&f, "bob", "")) else {
        return;
    };
    for d in [&mut a, &mut b] {
        assert_eq!(d.exec("CREATE TABLE notes(owner TEXT)", &[]).status, 0);
    }
    a.exec("INSERT INTO notes VALUES ('alice')", &[]);
    b.exec(
        "INSERT INTO notes VALUES ('bob'); INSERT INTO notes VALUES ('bob');",
        &[],
    );
    let (_, ra) = rows(&a.query("SELECT owner FROM notes", &[]).result);
    let (_, rb) = rows(&b.query("SELECT owner FROM notes", &[]).result);
    assert_eq!(ra, [vec![V::from("alice")]]);
    assert_eq!(rb, [vec![V::from("bob")], vec![V::from("bob")]]);
}

#[test]
fn escapes_are_denied_by_the_authorizer() {
    let f = Fixture::new();
    let Some(mut d) = driver(&f, "escape", "") else {
        return;
    };
    let outside = f.dir.path().join("outside.db");
    let target = outside.display().to_string();
    for sql in [
        format!("ATTACH DATABASE '{target}' AS other"),
        format!("ATTACH '{target}' AS other"),
        format!("VACUUM INTO '{target}'"),
        "DETACH DATABASE main".to_string(),
        "SELECT load_extension('/lib/x86_64-linux-gnu/libc.so.6')".to_string(),
    ] {
        let o = d.exec(&sql, &[]);
        assert_eq!(o.status, 9, "{sql}: {o:?}");
        assert!(o.error.contains("not allowed here"), "{}", o.error);
    }
    assert!(
        !outside.exists(),
        "nothing was written outside the plugin's folder"
    );
    assert_eq!(
        d.exec("CREATE TABLE t(x); VACUUM;", &[]).status,
        0,
        "a plain VACUUM still works"
    );
}

#[test]
fn a_runaway_statement_is_interrupted() {
    let f = Fixture::new();
    let settings = "[capability.\"storage.sqlite\"]\nstatement_timeout_ms = 100";
    let Some(mut d) = driver(&f, "runaway", settings) else {
        return;
    };
    let o = d.query(
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c",
        &[],
    );
    assert_eq!(o.status, 12, "{o:?}");
    assert!(o.error.contains("ran past its 100 ms limit"), "{}", o.error);
    assert_eq!(
        d.exec("CREATE TABLE ok(x)", &[]).status,
        0,
        "the connection still works"
    );
}

#[test]
fn an_oversized_result_gives_11() {
    let f = Fixture::new();
    let settings = "[capability.\"storage.sqlite\"]\nmax_result_bytes = 4096";
    let Some(mut d) = driver(&f, "big", settings) else {
        return;
    };
    let o = d.query(
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 10000) SELECT x, 'padding padding' FROM c",
        &[],
    );
    assert_eq!(o.status, 11, "{o:?}");
    assert!(o.error.contains("4096-byte limit"), "{}", o.error);
}

#[test]
fn settings_are_validated() {
    let f = Fixture::new();
    let e = f
        .load(
            "cfg",
            &guest("sqlite_crud.wat"),
            &format!(
                "{DECL}\n[capability.\"storage.sqlite\"]\nstatement_timeout_ms = 0\ncolour = 1"
            ),
        )
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("storage.sqlite") && e.contains("colour"), "{e}");
}

#[test]
fn undeclared_sqlite_gets_99() {
    let f = Fixture::new();
    let mut p = f
        .load(
            "nosql",
            &guest("sqlite_crud.wat"),
            "capabilities = [\"test.record\"]",
        )
        .unwrap();
    p.init().unwrap();
    assert_eq!(statuses("nosql"), [99, 99, 99, 99, 99]);
    assert!(
        !f.dir.path().join("data/nosql").exists(),
        "no database is made for an undeclared capability"
    );
}

/// Makes the driver's instance trap, then replaces it as supervision does.
fn trap_and_restart(d: &mut Driver) {
    let e = d
        .plugin
        .step_event(Some(&Driver::call_event("trap", b"", b"")))
        .expect_err("the driver traps on `trap`");
    assert!(e.to_string().contains("trapped"), "{e}");
    d.plugin.restart().unwrap();
}

/// A connection of the test's own to plugin `name`'s database, which gives up at
/// once on a lock (so a lock left behind shows as an error, not a wait).
fn own_connection(f: &Fixture, name: &str) -> rusqlite::Connection {
    let path = f.dir.path().join("data").join(name).join("data.db");
    let c = rusqlite::Connection::open(path).unwrap();
    c.busy_timeout(std::time::Duration::ZERO).unwrap();
    c
}

fn ints(o: &pulp_tests::Outcome) -> Vec<i64> {
    assert_eq!(o.status, 0, "{o:?}");
    rows(&o.result)
        .1
        .iter()
        .map(|r| r[0].as_i64().unwrap())
        .collect()
}

#[test]
fn an_open_transaction_is_rolled_back_when_the_instance_is_replaced() {
    let f = Fixture::new();
    // A short busy timeout: a lock the old instance left behind fails fast (5).
    let settings = "[capability.\"storage.sqlite\"]\nbusy_timeout_ms = 200";
    let Some(mut d) = driver(&f, "txtrap", settings) else {
        return;
    };
    assert_eq!(d.exec("CREATE TABLE t(x)", &[]).status, 0);
    assert_eq!(d.exec("INSERT INTO t VALUES (1)", &[]).status, 0);
    assert_eq!(d.exec("BEGIN", &[]).status, 0);
    assert_eq!(d.exec("INSERT INTO t VALUES (2)", &[]).status, 0);
    assert_eq!(ints(&d.query("SELECT x FROM t", &[])), [1, 2]);
    trap_and_restart(&mut d);
    assert_eq!(
        ints(&d.query("SELECT x FROM t ORDER BY x", &[])),
        [1],
        "the new instance does not see the trapped instance's uncommitted row"
    );
    let o = d.exec("INSERT INTO t VALUES (3)", &[]);
    assert_eq!(o.status, 0, "the database is not locked: {o:?}");
    // Nor is anything left for a later commit to bring back.
    let c = own_connection(&f, "txtrap");
    c.execute_batch("BEGIN IMMEDIATE; INSERT INTO t VALUES (4); COMMIT;")
        .expect("no lock is left on the file");
    assert_eq!(ints(&d.query("SELECT x FROM t ORDER BY x", &[])), [1, 3, 4]);
}

#[test]
fn an_open_transaction_is_rolled_back_when_the_plugin_closes() {
    let f = Fixture::new();
    let settings = "[capability.\"storage.sqlite\"]\nbusy_timeout_ms = 200";
    let Some(mut d) = driver(&f, "txclose", settings) else {
        return;
    };
    assert_eq!(d.exec("CREATE TABLE t(x)", &[]).status, 0);
    assert_eq!(d.exec("BEGIN; INSERT INTO t VALUES (1);", &[]).status, 0);
    assert_eq!(ints(&d.query("SELECT x FROM t", &[])), [1]);
    d.plugin.close();
    // Another connection to the same file takes the write lock at once and sees nothing.
    let c = own_connection(&f, "txclose");
    c.execute_batch("BEGIN IMMEDIATE; ROLLBACK;")
        .expect("the closed plugin left no lock on its database");
    let n: i64 = c
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 0, "the uncommitted row was rolled back");
    drop(c);
    // The plugin, loaded again on the same storage, neither.
    let Some(mut d) = driver(&f, "txclose", settings) else {
        return;
    };
    assert_eq!(ints(&d.query("SELECT x FROM t", &[])), Vec::<i64>::new());
    let o = d.exec("INSERT INTO t VALUES (2)", &[]);
    assert_eq!(o.status, 0, "{o:?}");
    assert_eq!(ints(&d.query("SELECT x FROM t", &[])), [2]);
}

#[test]
fn foreign_keys_are_enforced_on_every_instance() {
    let f = Fixture::new();
    let Some(mut d) = driver(&f, "fk", "") else {
        return;
    };
    let o = d.exec(
        "CREATE TABLE parent(id INTEGER PRIMARY KEY); \
         CREATE TABLE child(p INTEGER REFERENCES parent(id)); \
         INSERT INTO parent VALUES (1);",
        &[],
    );
    assert_eq!(o.status, 0, "{o:?}");
    assert_eq!(ints(&d.query("PRAGMA foreign_keys", &[])), [1]);
    assert_eq!(
        d.exec("INSERT INTO child VALUES (?)", &[V::from(1)]).status,
        0
    );
    for life in ["first", "replaced"] {
        let o = d.exec("INSERT INTO child VALUES (?)", &[V::from(2)]);
        assert_eq!(o.status, 5, "{life} instance: {o:?}");
        assert!(
            o.error.contains("FOREIGN KEY constraint failed"),
            "{life} instance: {}",
            o.error
        );
        let o = d.exec("DELETE FROM parent WHERE id = 1", &[]);
        assert_eq!(o.status, 5, "{life} instance, a referenced parent: {o:?}");
        assert!(
            o.error.contains("FOREIGN KEY constraint failed"),
            "{}",
            o.error
        );
        assert_eq!(ints(&d.query("SELECT p FROM child", &[])), [1]);
        assert_eq!(ints(&d.query("SELECT id FROM parent", &[])), [1]);
        trap_and_restart(&mut d);
    }
}

#[test]
fn a_locked_database_is_waited_for_up_to_busy_timeout_ms_then_5() {
    use std::time::{Duration, Instant};
    let f = Fixture::new();
    // Waits: another connection holds the write lock and commits 300 ms later.
    let settings = "[capability.\"storage.sqlite\"]\nbusy_timeout_ms = 10000";
    let Some(mut d) = driver(&f, "busywait", settings) else {
        return;
    };
    assert_eq!(d.exec("CREATE TABLE t(x)", &[]).status, 0);
    let c = own_connection(&f, "busywait");
    c.execute_batch("BEGIN IMMEDIATE; INSERT INTO t VALUES (1);")
        .unwrap();
    let holder = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        c.execute_batch("COMMIT").unwrap();
    });
    let o = d.exec("INSERT INTO t VALUES (2)", &[]);
    holder.join().unwrap();
    assert_eq!(o.status, 0, "the write waited for the lock: {o:?}");
    assert_eq!(ints(&d.query("SELECT x FROM t ORDER BY x", &[])), [1, 2]);

    // Gives up: the lock is held past busy_timeout_ms.
    let settings = "[capability.\"storage.sqlite\"]\nbusy_timeout_ms = 300";
    let Some(mut d) = driver(&f, "busyfail", settings) else {
        return;
    };
    assert_eq!(d.exec("CREATE TABLE t(x)", &[]).status, 0);
    let c = own_connection(&f, "busyfail");
    c.execute_batch("BEGIN IMMEDIATE; INSERT INTO t VALUES (1);")
        .unwrap();
    let at = Instant::now();
    let o = d.exec("INSERT INTO t VALUES (2)", &[]);
    let waited = at.elapsed();
    assert_eq!(o.status, 5, "{o:?}");
    assert!(o.error.contains("database is locked"), "{}", o.error);
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_millis(2300),
        "gave up after {waited:?}, not at about 300 ms"
    );
    c.execute_batch("ROLLBACK").unwrap();
    assert_eq!(d.exec("INSERT INTO t VALUES (3)", &[]).status, 0);
    assert_eq!(ints(&d.query("SELECT x FROM t", &[])), [3]);
}
