//! `storage.sqlite` (gated): one SQLite database per plugin, at
//! `<storage-root>/<name>/data.db`, created on first use.
//!
//! - `sqlite_exec(q_ptr, q_len, p_ptr, p_len, res_ptr_out, res_len_out) -> status` →
//!   `{rows_affected: i64, last_insert_id: i64}`; without parameters the text may
//!   hold several statements (migrations).
//! - `sqlite_query(q_ptr, q_len, p_ptr, p_len, rows_ptr_out, rows_len_out) -> status` →
//!   `{columns: [str], rows: [[value]]}`.
//!
//! Parameters are a msgpack array of nil, bool, int, float, str, bin (`(0, 0)` = none).
//! Each plugin instance has one connection (WAL, foreign keys on, busy timeout), so
//! a `BEGIN … COMMIT` spanning calls and steps stays on it.
//!
//! Deny by default: an authorizer allowlist (`authorizer.rs`) judges every action,
//! function, pragma and virtual table module; anything else is 9 with the reason,
//! and nothing but the plugin's own `main` and `temp` databases is reachable.
//! Per-connection limits (`confine.rs`) keep any one value or row under
//! `max_result_bytes` inside SQLite (11), and the result is checked value by value
//! as it is built (`encode.rs`). A statement over its time limit is interrupted
//! (12); SQLite's own message reaches `last_error` with 5, with no host path in it.
//!
//! Settings, `[capability."storage.sqlite"]` (all optional):
//! `statement_timeout_ms` (default 5000), `max_result_bytes` (default 8 MiB),
//! `busy_timeout_ms` (default 5000), `max_db_bytes` (default 1 GiB: the database
//! file's cap, 11 past it; the temp database stays in memory, capped alike).

#![warn(missing_docs)]

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pulp_ext::wasmtime::Caller;
use pulp_ext::{Bytes, Capability, Import, OutBytes, Plugin, State, Status, Str};
use rusqlite::types::Value;
use rusqlite::{params_from_iter, Connection, ErrorCode};
use serde::{Deserialize, Serialize};

mod authorizer;
mod confine;
mod encode;

use authorizer::Authorizer;
use encode::Encoder;

/// The capability's name in manifests.
const NAME: &str = "storage.sqlite";

static DB: pulp_ext::Slot<Db> = pulp_ext::Slot::new(NAME);

/// The `storage.sqlite` capability, for a registry built by hand.
pub struct Sqlite;

pulp_ext::register!(Sqlite);

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Toml {
    statement_timeout_ms: Option<u64>,
    max_result_bytes: Option<u64>,
    busy_timeout_ms: Option<u64>,
    max_db_bytes: Option<u64>,
}

/// A plugin's `[capability."storage.sqlite"]` settings with their defaults, checked.
#[derive(Clone)]
pub struct Limits {
    statement: Duration,
    max_result: usize,
    busy: Duration,
    /// The database file's size cap (`max_page_count`), and the temp database's.
    max_db: u64,
}

impl pulp_ext::Settings for Limits {
    fn parse(table: Option<&pulp_ext::toml::Table>, _: &Plugin) -> Result<Limits, Vec<String>> {
        pulp_ext::from_table::<Toml>(table)
            .map_err(|e| vec![e])?
            .limits()
    }
}

impl Toml {
    fn limits(&self) -> Result<Limits, Vec<String>> {
        let mut problems = Vec::new();
        let mut pick =
            |name: &str, v: Option<u64>, default: u64, range: std::ops::RangeInclusive<u64>| {
                let v = v.unwrap_or(default);
                if !range.contains(&v) {
                    problems.push(format!(
                        "{name} = {v} is outside {}..={}",
                        range.start(),
                        range.end()
                    ));
                }
                v
            };
        let statement = pick(
            "statement_timeout_ms",
            self.statement_timeout_ms,
            5_000,
            1..=3_600_000,
        );
        let max_result = pick(
            "max_result_bytes",
            self.max_result_bytes,
            8 << 20,
            1024..=(256 << 20),
        );
        let busy = pick("busy_timeout_ms", self.busy_timeout_ms, 5_000, 0..=600_000);
        let max_db = pick(
            "max_db_bytes",
            self.max_db_bytes,
            1 << 30,
            (1 << 16)..=(1 << 40),
        );
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Limits {
            statement: Duration::from_millis(statement),
            max_result: max_result as usize,
            busy: Duration::from_millis(busy),
            max_db,
        })
    }
}

/// When the running statement must stop; read by SQLite's progress handler.
struct Deadline {
    base: Instant,
    /// Nanoseconds since `base`.
    at: AtomicU64,
}

impl Deadline {
    fn arm(&self, limit: Duration) {
        let at = self.base.elapsed() + limit;
        self.at.store(at.as_nanos() as u64, Ordering::Relaxed);
    }

    fn passed(&self) -> bool {
        self.base.elapsed().as_nanos() as u64 >= self.at.load(Ordering::Relaxed)
    }
}

/// One instance's database connection and limits. Dropped with the instance, which
/// closes the connection and so rolls back a transaction the instance left open.
struct Db {
    conn: Connection,
    /// Host paths that must never reach a guest, each with what replaces it.
    hide: Vec<(String, &'static str)>,
    limits: Limits,
    deadline: Arc<Deadline>,
    auth: Authorizer,
    /// The plugin's host memory budget, charged while a query's result is built.
    budget: pulp_ext::Budget,
}

#[derive(Serialize)]
struct ExecResult {
    rows_affected: i64,
    last_insert_id: i64,
}

/// Why a query stopped early.
enum Stop {
    Sql(rusqlite::Error),
    Full(encode::Full),
}

impl From<rusqlite::Error> for Stop {
    fn from(e: rusqlite::Error) -> Stop {
        Stop::Sql(e)
    }
}

impl From<encode::Full> for Stop {
    fn from(f: encode::Full) -> Stop {
        Stop::Full(f)
    }
}

/// While it lives, the authorizer knows which statement is being stepped, and a
/// plain `VACUUM` may attach the one private temporary database it needs.
struct Running<'a> {
    db: &'a Db,
    vacuum: bool,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.db.auth.running(authorizer::Running::Other);
        if self.vacuum {
            // Cannot fail: the limit id is valid and the value positive.
            let _ = confine::attached(&self.db.conn, false);
        }
    }
}

impl Db {
    fn open(plugin: &Plugin, limits: Limits) -> Result<Db, String> {
        let dir = plugin
            .create_storage_dir("")
            .map_err(|e| format!("cannot create the plugin's folder: {e}"))?;
        let mut db = Db::open_in(&dir, limits)?;
        db.budget = plugin.budget().clone();
        Ok(db)
    }

    /// Opens (creating it if needed) `<dir>/data.db` for a guest.
    fn open_in(dir: &Path, limits: Limits) -> Result<Db, String> {
        let path = dir.join("data.db");
        let fail = |hide: &[(String, &'static str)], e: rusqlite::Error| {
            format!(
                "cannot open the plugin's database: {}",
                scrub(hide, e.to_string())
            )
        };
        let mut conn = Connection::open(&path).map_err(|e| fail(&hidden(dir, &path), e))?;
        // Now that the file exists and resolves (SQLite may report it resolved).
        let hide = hidden(dir, &path);
        let fail = |e| fail(&hide, e);
        conn.busy_timeout(limits.busy).map_err(fail)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;",
        )
        .map_err(fail)?;
        // Disk: the database file is capped at max_db_bytes; the temp database and
        // SQLite's spill files stay in memory (capped alike), never in the host's
        // temporary folder, outside the plugin's.
        let page: i64 = conn
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .map_err(fail)?;
        let pages = (limits.max_db / (page.max(512) as u64)).max(1);
        conn.execute_batch(&format!(
            "PRAGMA temp_store = MEMORY; PRAGMA main.max_page_count = {pages}; \
             PRAGMA temp.max_page_count = {pages};"
        ))
        .map_err(fail)?;
        confine::confine(&conn, limits.max_result).map_err(fail)?;
        let auth = Authorizer::install(&mut conn).map_err(fail)?;
        let deadline = Arc::new(Deadline {
            base: Instant::now(),
            at: AtomicU64::new(u64::MAX),
        });
        let d = deadline.clone();
        conn.progress_handler(1000, Some(move || d.passed()))
            .map_err(fail)?;
        Ok(Db {
            conn,
            hide,
            limits,
            deadline,
            auth,
            budget: pulp_ext::Budget::default(),
        })
    }

    /// Maps a SQLite error to a status, with SQLite's message and the statement,
    /// and no host path.
    fn error(&self, e: rusqlite::Error, sql: &str) -> pulp_ext::Error {
        let sql = short(sql);
        let (status, text) = if let Some(why) = self.auth.take_denial() {
            (Status::Denied, format!("{sql:?}: not allowed here: {why}"))
        } else {
            match e.sqlite_error_code() {
                Some(ErrorCode::OperationInterrupted) => (
                    Status::Timeout,
                    format!(
                        "{sql:?} ran past its {} ms limit and was interrupted",
                        self.limits.statement.as_millis()
                    ),
                ),
                Some(ErrorCode::TooBig) => (
                    Status::TooLarge,
                    format!(
                        "{sql:?}: {e}: a value or row may hold at most {} bytes (max_result_bytes) and a statement's text at most {} bytes",
                        self.limits.max_result,
                        confine::SQL_LENGTH
                    ),
                ),
                Some(ErrorCode::DiskFull) => (
                    Status::TooLarge,
                    format!(
                        "{sql:?}: {e}: the plugin's database may hold at most {} bytes (max_db_bytes)",
                        self.limits.max_db
                    ),
                ),
                _ => (
                    Status::Failed,
                    format!("{sql:?} failed on the plugin's database: {e}"),
                ),
            }
        };
        status.err(scrub(&self.hide, text))
    }

    fn start(&self) {
        self.auth.start();
        self.deadline.arm(self.limits.statement);
    }

    /// Marks `sql` as the statement being stepped, until the guard drops.
    fn running(&self, sql: &str) -> rusqlite::Result<Running<'_>> {
        let what = authorizer::Running::of(sql);
        if what == authorizer::Running::VacuumInto {
            return Err(self.auth.refuse(authorizer::VACUUM_INTO));
        }
        let vacuum = what == authorizer::Running::Vacuum;
        if vacuum {
            confine::attached(&self.conn, true)?;
        }
        self.auth.running(what);
        Ok(Running { db: self, vacuum })
    }

    fn exec(&mut self, sql: &str, params: Vec<Value>) -> Result<ExecResult, pulp_ext::Error> {
        self.start();
        let r = if params.is_empty() {
            self.batch(sql)
        } else {
            self.conn.prepare_cached(sql).and_then(|mut s| {
                let _running = self.running(sql)?;
                s.execute(params_from_iter(params)).map(|n| n as i64)
            })
        };
        let rows_affected = r.map_err(|e| self.error(e, sql))?;
        Ok(ExecResult {
            rows_affected,
            last_insert_id: self.conn.last_insert_rowid(),
        })
    }

    /// Runs each statement of `sql` once, like `execute_batch`, telling the
    /// authorizer what runs once it is compiled.
    fn batch(&self, sql: &str) -> rusqlite::Result<i64> {
        use rusqlite::fallible_iterator::FallibleIterator;
        let mut batch = rusqlite::Batch::new(&self.conn, sql);
        while let Some(mut stmt) = batch.next()? {
            let text = stmt.expanded_sql().unwrap_or_default();
            let _running = self.running(&text)?;
            stmt.raw_query().next()?;
        }
        Ok(self.conn.changes() as i64)
    }

    /// Runs a query and encodes `{columns, rows}` as it goes, stopping at the size limit.
    fn query(&mut self, sql: &str, params: Vec<Value>) -> Result<Vec<u8>, pulp_ext::Error> {
        self.start();
        let max = self.limits.max_result;
        let result = (|| -> Result<Vec<u8>, Stop> {
            // Cached: a plugin runs the same few statements again and again.
            let mut stmt = self.conn.prepare_cached(sql)?;
            let _running = self.running(sql)?;
            let n = stmt.column_count();
            let mut out = Encoder::new(stmt.column_names(), max, &self.budget)?;
            let mut rows = stmt.query(params_from_iter(params))?;
            while let Some(row) = rows.next()? {
                out.row(n)?;
                for i in 0..n {
                    out.value(row.get_ref(i)?)?;
                }
            }
            Ok(out.finish())
        })();
        result.map_err(|stop| match stop {
            Stop::Sql(e) => self.error(e, sql),
            Stop::Full(encode::Full {
                budget: Some(e), ..
            }) => e.into(),
            Stop::Full(full) => Status::TooLarge.err(scrub(
                &self.hide,
                format!(
                    "{:?}: the result passed the {max}-byte limit after {} rows",
                    short(sql),
                    full.rows
                ),
            )),
        })
    }
}

/// The first 200 bytes of a statement, for messages.
fn short(sql: &str) -> &str {
    &sql[..sql.floor_char_boundary(200)]
}

/// The host paths of a plugin's database that messages must not show (as given and
/// as SQLite may resolve them), most specific first.
fn hidden(dir: &Path, db: &Path) -> Vec<(String, &'static str)> {
    let mut hide: Vec<(String, &'static str)> = Vec::new();
    let root = dir.parent().filter(|r| !r.as_os_str().is_empty());
    let places = [
        (Some(db), "the plugin's database"),
        (Some(dir), "the plugin's folder"),
        (root, "the host's storage folder"),
    ];
    for (p, name) in places {
        let Some(p) = p else { continue };
        let real = std::fs::canonicalize(p).ok();
        for p in [Some(p.to_path_buf()), real].into_iter().flatten() {
            let p = p.display().to_string();
            if p.len() > 1 && !hide.iter().any(|(h, _)| *h == p) {
                hide.push((p, name));
            }
        }
    }
    hide
}

/// `text` with every hidden path replaced by its name.
fn scrub(hide: &[(String, &'static str)], mut text: String) -> String {
    for (path, name) in hide {
        if text.contains(path.as_str()) {
            text = text.replace(path.as_str(), name);
        }
    }
    text
}

/// Decodes the parameter array; `(0, 0)` is no parameters.
fn params(raw: &[u8]) -> Result<Vec<Value>, pulp_ext::Error> {
    if raw.is_empty() {
        return Ok(Vec::new());
    }
    let bad = |why: String| Status::BadEncoding.err(format!("parameters: {why}"));
    let v = rmpv::decode::read_value(&mut &raw[..]).map_err(|e| bad(e.to_string()))?;
    let rmpv::Value::Array(items) = v else {
        return Err(bad("must be a msgpack array".into()));
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, v)| match v {
            rmpv::Value::Nil => Ok(Value::Null),
            rmpv::Value::Boolean(b) => Ok(Value::Integer(b as i64)),
            rmpv::Value::Integer(n) => n.as_i64().map(Value::Integer).ok_or_else(|| {
                Status::Invalid.err(format!(
                    "parameter {}: {n} does not fit SQLite's 64-bit integers",
                    i + 1
                ))
            }),
            rmpv::Value::F32(f) => Ok(Value::Real(f as f64)),
            rmpv::Value::F64(f) => Ok(Value::Real(f)),
            rmpv::Value::String(s) => s
                .into_str()
                .map(Value::Text)
                .ok_or_else(|| bad(format!("parameter {} is not UTF-8", i + 1))),
            rmpv::Value::Binary(b) => Ok(Value::Blob(b)),
            other => Err(Status::Invalid.err(format!(
                "parameter {} is {other}; SQLite takes nil, bool, int, float, str or bin",
                i + 1
            ))),
        })
        .collect()
}

/// Reads the query text and parameters of a call (copied: the guest's memory is
/// borrowed from the same store as the connection).
fn inputs(
    c: &Caller<'_, State>,
    sql: &Str,
    params: &Bytes,
    import: &str,
) -> Result<(String, Vec<Value>), pulp_ext::Error> {
    let sql = sql.read(c)?;
    if sql.trim().is_empty() {
        return Err(Status::Empty.err(format!("{import} query is empty")));
    }
    Ok((sql.to_string(), self::params(params.read(c)?)?))
}

fn db<'a>(c: &'a mut Caller<'_, State>) -> Result<&'a mut Db, pulp_ext::Error> {
    c.data_mut().slot(&DB)
}

impl Capability for Sqlite {
    type Settings = Limits;

    fn name(&self) -> &'static str {
        NAME
    }

    fn imports(&self) -> Vec<Import> {
        vec![
            Import::new("sqlite_exec", sqlite_exec),
            Import::new("sqlite_query", sqlite_query),
        ]
    }

    fn attach(&self, plugin: &Plugin, limits: &Limits, state: &mut State) -> Result<(), String> {
        state.put(&DB, Db::open(plugin, limits.clone())?);
        Ok(())
    }
}

fn sqlite_exec(
    c: &mut Caller<'_, State>,
    sql: Str,
    params: Bytes,
    out: OutBytes,
) -> Result<(), pulp_ext::Error> {
    let (sql, params) = inputs(c, &sql, &params, "sqlite_exec")?;
    let result = pulp_ext::msgpack::encode(&db(c)?.exec(&sql, params)?)?;
    out.write(c, &result)
}

fn sqlite_query(
    c: &mut Caller<'_, State>,
    sql: Str,
    params: Bytes,
    out: OutBytes,
) -> Result<(), pulp_ext::Error> {
    let (sql, params) = inputs(c, &sql, &params, "sqlite_query")?;
    let result = db(c)?.query(&sql, params)?;
    out.write(c, &result)
}

#[cfg(test)]
mod tests;
