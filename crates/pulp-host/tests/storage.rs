//! storage.sqlite durability, as processes: a row acknowledged to the plugin
//! survives `kill -9` of the host.

mod support;

use std::collections::BTreeSet;

use support::{build_c, pulp, root, Running};

fn acked(lines: &[String]) -> BTreeSet<i64> {
    lines
        .iter()
        .filter_map(|l| l.split("acked ").nth(1))
        .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .collect()
}

fn stored(db: &std::path::Path) -> BTreeSet<i64> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn.prepare("SELECT id FROM acks").unwrap();
    let ids = stmt.query_map([], |r| r.get(0)).unwrap();
    ids.map(Result::unwrap).collect()
}

#[test]
fn every_acknowledged_row_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("inserter.wasm");
    if !build_c(&root().join("tests/guests/c/inserter.c"), &wasm) {
        return;
    }
    let manifest = dir.path().join("pulp.plugin.toml");
    std::fs::write(
        &manifest,
        "name = \"inserter\"\nversion = \"1\"\nwasm = \"inserter.wasm\"\ncapabilities = [\"storage.sqlite\"]\n",
    )
    .unwrap();
    let run = || {
        let mut cmd = pulp(dir.path());
        cmd.args(["run", "--max-tick-ms", "1"]).arg(&manifest);
        Running::start(cmd)
    };

    let mut p = run();
    p.wait_for("acked");
    let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while acked(&p.drain(50)).len() < 200 {
        assert!(
            std::time::Instant::now() < until,
            "fewer than 200 rows acknowledged in 30 s"
        );
    }
    p.signal("KILL");
    let (status, _) = p.exit_within(30);
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
    let first = acked(&p.drain(200));
    let db = dir.path().join("data/inserter/data.db");
    let rows = stored(&db);
    let lost: Vec<_> = first.difference(&rows).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged rows lost after kill -9: {lost:?}",
        lost.len()
    );

    // A restart recovers the database and carries on after the last row.
    let mut p = run();
    p.wait_for("acked");
    p.signal("TERM");
    let (status, out) = p.exit_within(30);
    assert!(status.success(), "{out}");
    let second = acked(&p.drain(200));
    assert!(
        second.iter().all(|id| id > first.iter().max().unwrap()),
        "ids continue after the crash"
    );
    let rows = stored(&db);
    assert!(first.union(&second).all(|id| rows.contains(id)));
}
