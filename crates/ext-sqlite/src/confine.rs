//! What a guest's connection is allowed to grow to: SQLite's per-connection limits
//! (`sqlite3_limit`) and the database settings that close doors the authorizer does
//! not see (`fts3_tokenizer` with a bound pointer, triggers and views that call
//! unsafe functions, writes to the schema, attaching files).

use rusqlite::config::DbConfig;
use rusqlite::limits::Limit;
use rusqlite::Connection;

/// The longest statement text (bytes): SQLite also counts the rest of a batch.
pub(crate) const SQL_LENGTH: i32 = 1 << 20;

/// SQLite's limits on a guest's connection, besides `LENGTH` (one value or row at most
/// `max_result_bytes`, so no single value can pass the result limit in SQLite's own
/// memory) and `ATTACHED` (0; 1 only while a plain `VACUUM` runs).
const LIMITS: &[(Limit, i32, &str)] = &[
    (
        Limit::SQLITE_LIMIT_SQL_LENGTH,
        SQL_LENGTH,
        "statement text, bytes",
    ),
    (
        Limit::SQLITE_LIMIT_COLUMN,
        500,
        "columns in a table, index, result or ORDER BY",
    ),
    (Limit::SQLITE_LIMIT_EXPR_DEPTH, 500, "expression depth"),
    (
        Limit::SQLITE_LIMIT_COMPOUND_SELECT,
        500,
        "terms of a compound SELECT",
    ),
    (
        Limit::SQLITE_LIMIT_VDBE_OP,
        250_000,
        "instructions of one compiled statement",
    ),
    (
        Limit::SQLITE_LIMIT_FUNCTION_ARG,
        127,
        "arguments of a function",
    ),
    (
        Limit::SQLITE_LIMIT_VARIABLE_NUMBER,
        32_766,
        "highest parameter number",
    ),
    (
        Limit::SQLITE_LIMIT_TRIGGER_DEPTH,
        100,
        "nested trigger depth",
    ),
    (
        Limit::SQLITE_LIMIT_LIKE_PATTERN_LENGTH,
        10_000,
        "LIKE or GLOB pattern, bytes",
    ),
    (Limit::SQLITE_LIMIT_WORKER_THREADS, 0, "sorter threads"),
    (
        Limit::SQLITE_LIMIT_SCHEMA,
        10_000,
        "tables, indexes, triggers and views",
    ),
    (
        Limit::SQLITE_LIMIT_TRIGGER_STEPS,
        1_000,
        "statements in one trigger",
    ),
];

/// Database settings: (setting, value).
const CONFIG: &[(DbConfig, bool)] = &[
    // No writes to the schema table, shadow tables or page-level tricks.
    (DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true),
    // Functions and virtual tables used by views, triggers, CHECK and DEFAULT must be
    // marked innocuous, and the schema cannot turn this back on.
    (DbConfig::SQLITE_DBCONFIG_TRUSTED_SCHEMA, false),
    // `fts3_tokenizer(name, ptr)` from SQL text; the function is denied as well.
    (DbConfig::SQLITE_DBCONFIG_ENABLE_FTS3_TOKENIZER, false),
    (DbConfig::SQLITE_DBCONFIG_WRITABLE_SCHEMA, false),
    // Should an ATTACH ever pass the authorizer, it could neither create nor write
    // a file (SQLite turns both on for its own VACUUM only).
    (DbConfig::SQLITE_DBCONFIG_ENABLE_ATTACH_CREATE, false),
    (DbConfig::SQLITE_DBCONFIG_ENABLE_ATTACH_WRITE, false),
];

/// Applies the limits and settings; `max_value` is the largest value or row in bytes.
/// (Extension loading is never enabled: SQLite's default, which this crate keeps.)
pub(crate) fn confine(conn: &Connection, max_value: usize) -> rusqlite::Result<()> {
    for &(setting, on) in CONFIG {
        conn.set_db_config(setting, on)?;
    }
    conn.set_limit(
        Limit::SQLITE_LIMIT_LENGTH,
        max_value.min(i32::MAX as usize) as i32,
    )?;
    attached(conn, false)?;
    for &(limit, value, _) in LIMITS {
        conn.set_limit(limit, value)?;
    }
    Ok(())
}

/// Allows the one attached database a plain `VACUUM` needs, or none.
pub(crate) fn attached(conn: &Connection, vacuum: bool) -> rusqlite::Result<()> {
    conn.set_limit(Limit::SQLITE_LIMIT_ATTACHED, vacuum as i32)
        .map(|_| ())
}
