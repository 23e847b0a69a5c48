//! The plugin's own SQLite database (`storage.sqlite`).
//!
//! ```no_run
//! use pulp_pdk::sqlite;
//! sqlite::exec("CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT)", &[])?;
//! let id = sqlite::exec("INSERT INTO notes (body) VALUES (?)", &["hello".into()])?.last_insert_id;
//! let rows = sqlite::query("SELECT body FROM notes WHERE id = ?", &[id.into()])?;
//! assert_eq!(rows.rows[0][0].as_str(), Some("hello"));
//! # Ok::<(), pulp_pdk::Error>(())
//! ```

use serde::Deserialize;

use crate::mem::call_out;
pub use crate::msgpack::Value;
use crate::msgpack::{decode, encode};
use crate::{sys, Result};

/// What a statement changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub struct Exec {
    /// Rows inserted, updated or deleted.
    pub rows_affected: i64,
    /// The rowid of the last insert.
    pub last_insert_id: i64,
}

/// A query's answer.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Rows {
    /// Column names.
    pub columns: Vec<String>,
    /// One list of values per row, in column order.
    pub rows: Vec<Vec<Value>>,
}

fn params(p: &[Value]) -> Result<Vec<u8>> {
    if p.is_empty() {
        Ok(Vec::new())
    } else {
        encode(p)
    }
}

type Raw<'a> = &'a dyn Fn(*const u8, usize, *const u8, usize, *mut u32, *mut u32) -> i32;

fn call(name: &str, f: Raw<'_>, sql: &str, p: &[Value]) -> Result<Vec<u8>> {
    let p = params(p)?;
    let pp = if p.is_empty() {
        std::ptr::null()
    } else {
        p.as_ptr()
    };
    // The statement's first 60 characters name it in an error (formatted only then).
    let short = sql.char_indices().nth(60).map_or(sql, |(i, _)| &sql[..i]);
    call_out(format_args!("{name} \"{short}\""), |out, n| {
        f(sql.as_ptr(), sql.len(), pp, p.len(), out, n)
    })
}

/// Runs a statement (without parameters the text may hold several).
pub fn exec(sql: &str, params: &[Value]) -> Result<Exec> {
    // SAFETY: `call` passes live buffers (or (0, 0)) and live out-pointers.
    let f = |a, b, c, d, e, g| unsafe { sys::sqlite_exec(a, b, c, d, e, g) };
    decode(&call("sqlite_exec", &f, sql, params)?)
}

/// Runs a query.
pub fn query(sql: &str, params: &[Value]) -> Result<Rows> {
    // SAFETY: as for `exec`.
    let f = |a, b, c, d, e, g| unsafe { sys::sqlite_query(a, b, c, d, e, g) };
    decode(&call("sqlite_query", &f, sql, params)?)
}
