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
//! a `BEGIN … COMMIT` spanning calls and steps stays on it. An authorizer denies
//! `ATTACH` of files, `DETACH`, `VACUUM INTO` and `load_extension` (9); a statement
//! over its time limit is interrupted (12); a result over its size limit is 11;
//! SQLite's own message reaches `last_error` with 5.
//!
//! Settings, `[capability."storage.sqlite"]` (all optional):
//! `statement_timeout_ms` (default 5000), `max_result_bytes` (default 8 MiB),
//! `busy_timeout_ms` (default 5000).

#![warn(missing_docs)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pulp_ext::wasmtime::{Caller, Linker};
use pulp_ext::{mem, Binding, Capability, Import, Plugin, State, Status};
use rusqlite::hooks::{AuthAction, Authorization};
use rusqlite::types::{Value, ValueRef};
use rusqlite::{params_from_iter, Connection, ErrorCode};
use serde::{Deserialize, Serialize};

/// The capability's name in manifests.
const NAME: &str = "storage.sqlite";

struct Sqlite;

pulp_ext::register!(Sqlite);

const IMPORTS: &[Import] = &[
    Import::status("sqlite_exec", 6),
    Import::status("sqlite_query", 6),
];

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Settings {
    statement_timeout_ms: Option<u64>,
    max_result_bytes: Option<u64>,
    busy_timeout_ms: Option<u64>,
}

/// Settings with their defaults, checked.
struct Limits {
    statement: Duration,
    max_result: usize,
    busy: Duration,
}

impl Settings {
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
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Limits {
            statement: Duration::from_millis(statement),
            max_result: max_result as usize,
            busy: Duration::from_millis(busy),
        })
    }
}

fn settings(plugin: &Plugin) -> Result<Limits, Vec<String>> {
    plugin
        .settings_as::<Settings>(NAME)
        .map_err(|e| vec![e])?
        .limits()
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
    path: PathBuf,
    limits: Limits,
    deadline: Arc<Deadline>,
    /// Set by the authorizer when it refuses something, so the error maps to 9.
    denied: Arc<AtomicBool>,
}

#[derive(Serialize)]
struct ExecResult {
    rows_affected: i64,
    last_insert_id: i64,
}

impl Db {
    fn open(plugin: &Plugin, limits: Limits) -> Result<Db, String> {
        let dir = plugin
            .create_storage_dir("")
            .map_err(|e| format!("cannot create {}: {e}", plugin.storage_dir().display()))?;
        let path = dir.join("data.db");
        let fail = |e: rusqlite::Error| format!("cannot open {}: {e}", path.display());
        let mut conn = Connection::open(&path).map_err(fail)?;
        conn.busy_timeout(limits.busy).map_err(fail)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;",
        )
        .map_err(fail)?;
        conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)
            .map_err(fail)?;
        let denied = Arc::new(AtomicBool::new(false));
        let flag = denied.clone();
        conn.authorizer(Some(move |ctx: rusqlite::hooks::AuthContext<'_>| {
            let deny = match ctx.action {
                // VACUUM runs `ATTACH '' AS vacuum_…` (a private temporary file) and
                // VACUUM INTO attaches its target: only the first is allowed.
                AuthAction::Attach { filename } => !filename.is_empty(),
                AuthAction::Detach { database_name } => !database_name.starts_with("vacuum_"),
                AuthAction::Function { function_name } => {
                    function_name.eq_ignore_ascii_case("load_extension")
                }
                _ => false,
            };
            if deny {
                flag.store(true, Ordering::Relaxed);
                Authorization::Deny
            } else {
                Authorization::Allow
            }
        }))
        .map_err(fail)?;
        let deadline = Arc::new(Deadline {
            base: Instant::now(),
            at: AtomicU64::new(u64::MAX),
        });
        let d = deadline.clone();
        conn.progress_handler(1000, Some(move || d.passed()))
            .map_err(fail)?;
        Ok(Db {
            conn,
            path,
            limits,
            deadline,
            denied,
        })
    }

    /// Maps a SQLite error to a status, with SQLite's message and the statement.
    fn error(&self, e: rusqlite::Error, sql: &str) -> pulp_ext::Error {
        let sql = if sql.len() > 200 {
            &sql[..sql.floor_char_boundary(200)]
        } else {
            sql
        };
        if self.denied.swap(false, Ordering::Relaxed) {
            return Status::Denied.err(format!(
                "{sql:?}: not allowed here (ATTACH, DETACH, VACUUM INTO and load_extension are denied): {e}"
            ));
        }
        match e.sqlite_error_code() {
            Some(ErrorCode::OperationInterrupted) => Status::Timeout.err(format!(
                "{sql:?} ran past its {} ms limit and was interrupted",
                self.limits.statement.as_millis()
            )),
            _ => Status::Failed.err(format!("{sql:?} failed on {}: {e}", self.path.display())),
        }
    }

    fn start(&self) {
        self.denied.store(false, Ordering::Relaxed);
        self.deadline.arm(self.limits.statement);
    }

    fn exec(&mut self, sql: &str, params: Vec<Value>) -> Result<ExecResult, pulp_ext::Error> {
        self.start();
        let r = if params.is_empty() {
            self.conn
                .execute_batch(sql)
                .map(|()| self.conn.changes() as i64)
        } else {
            self.conn
                .prepare_cached(sql)
                .and_then(|mut s| s.execute(params_from_iter(params)))
                .map(|n| n as i64)
        };
        let rows_affected = r.map_err(|e| self.error(e, sql))?;
        Ok(ExecResult {
            rows_affected,
            last_insert_id: self.conn.last_insert_rowid(),
        })
    }

    /// Runs a query and encodes `{columns, rows}` as it goes, stopping at the size limit.
    fn query(&mut self, sql: &str, params: Vec<Value>) -> Result<Vec<u8>, pulp_ext::Error> {
        self.start();
        // Cached: a plugin runs the same few statements again and again.
        let mut stmt = match self.conn.prepare_cached(sql) {
            Ok(s) => s,
            Err(e) => return Err(self.error(e, sql)),
        };
        let columns: Vec<String> = stmt.column_names().map(str::to_string).collect();
        let n = columns.len();
        let mut rows_buf = Vec::new();
        let mut count = 0u32;
        let max = self.limits.max_result;
        let result = (|| {
            let mut rows = stmt.query(params_from_iter(params))?;
            while let Some(row) = rows.next()? {
                rmp::encode::write_array_len(&mut rows_buf, n as u32).expect("Vec write");
                for i in 0..n {
                    write_value(&mut rows_buf, row.get_ref(i)?);
                }
                count += 1;
                if rows_buf.len() > max {
                    return Ok(false);
                }
            }
            Ok(true)
        })();
        drop(stmt);
        match result {
            Ok(true) => {}
            Ok(false) => {
                return Err(Status::TooLarge.err(format!(
                    "{sql:?}: the result passed the {max}-byte limit after {count} rows"
                )))
            }
            Err(e) => return Err(self.error(e, sql)),
        }
        let mut out = Vec::with_capacity(rows_buf.len() + 64);
        rmp::encode::write_map_len(&mut out, 2).expect("Vec write");
        rmp::encode::write_str(&mut out, "columns").expect("Vec write");
        rmp::encode::write_array_len(&mut out, n as u32).expect("Vec write");
        for c in &columns {
            rmp::encode::write_str(&mut out, c).expect("Vec write");
        }
        rmp::encode::write_str(&mut out, "rows").expect("Vec write");
        rmp::encode::write_array_len(&mut out, count).expect("Vec write");
        out.extend_from_slice(&rows_buf);
        Ok(out)
    }
}

/// One SQLite value as msgpack: NULL nil, INTEGER int, REAL float64, TEXT str, BLOB bin.
fn write_value(out: &mut Vec<u8>, v: ValueRef<'_>) {
    match v {
        ValueRef::Null => rmp::encode::write_nil(out).expect("Vec write"),
        ValueRef::Integer(i) => {
            rmp::encode::write_sint(out, i).expect("Vec write");
        }
        ValueRef::Real(f) => rmp::encode::write_f64(out, f).expect("Vec write"),
        ValueRef::Text(t) => {
            // SQLite does not check TEXT is UTF-8; its bytes go out as they are.
            rmp::encode::write_str_len(out, t.len() as u32).expect("Vec write");
            out.extend_from_slice(t);
        }
        ValueRef::Blob(b) => rmp::encode::write_bin(out, b).expect("Vec write"),
    }
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
    q: i32,
    ql: i32,
    p: i32,
    pl: i32,
    what: &str,
) -> Result<(String, Vec<Value>), pulp_ext::Error> {
    let sql = mem::str(c, q, ql, what)?;
    if sql.trim().is_empty() {
        return Err(Status::Empty.err(format!("{what} is empty")));
    }
    let sql = sql.to_string();
    let params = params(mem::bytes(c, p, pl, "parameters")?)?;
    Ok((sql, params))
}

fn db<'a>(c: &'a mut Caller<'_, State>) -> Result<&'a mut Db, pulp_ext::Error> {
    c.data_mut().attached::<Db>(NAME)
}

impl Capability for Sqlite {
    fn name(&self) -> &'static str {
        NAME
    }

    fn binding(&self) -> Binding {
        Binding::Gated
    }

    fn imports(&self) -> &'static [Import] {
        IMPORTS
    }

    fn configure(&self, plugin: &Plugin) -> Result<(), Vec<String>> {
        settings(plugin).map(|_| ())
    }

    fn attach(&self, plugin: &Plugin, state: &mut State) -> Result<(), String> {
        let limits = settings(plugin).map_err(|p| p.join("; "))?;
        state.insert(Db::open(plugin, limits)?);
        Ok(())
    }

    fn link(&self, linker: &mut Linker<State>) -> pulp_ext::wasmtime::Result<()> {
        link_sql(
            linker,
            "sqlite_exec",
            "sqlite_exec query",
            |db, sql, params| pulp_ext::msgpack::encode(&db.exec(sql, params)?),
        )?;
        link_sql(linker, "sqlite_query", "sqlite_query query", Db::query)
    }
}

/// What an SQL import does with its statement and parameters: msgpack result bytes.
type Run = fn(&mut Db, &str, Vec<Value>) -> Result<Vec<u8>, pulp_ext::Error>;

/// Links one `(q, q_len, p, p_len, res_out, res_len_out)` import that runs `run`
/// on the instance's connection and hands its msgpack result back.
fn link_sql(
    linker: &mut Linker<State>,
    name: &'static str,
    what: &'static str,
    run: Run,
) -> pulp_ext::wasmtime::Result<()> {
    linker.func_wrap(
        "pulp",
        name,
        move |mut c: Caller<'_, State>,
              q: i32,
              ql: i32,
              p: i32,
              pl: i32,
              out: i32,
              out_len: i32| {
            pulp_ext::status(&mut c, |c| {
                let (sql, params) = inputs(c, q, ql, p, pl, what)?;
                let result = run(db(c)?, &sql, params)?;
                mem::write_result(c, &result, out, out_len)
            })
        },
    )?;
    Ok(())
}
