//! The authorizer: an allowlist over everything SQLite asks about while it compiles a
//! guest's statement (and the statements SQLite itself runs on its behalf: VACUUM's
//! copy, the queries of `pragma_*` table-valued functions, FTS5's shadow tables).
//! What is not known to be safe for a guest is denied, with a reason that reaches
//! `last_error` beside status 9. Only the plugin's own `main` and `temp` databases are
//! reachable, however the statement is written: `ATTACH` is judged without looking at
//! its file name (a computed or bound name reaches the authorizer as no name at all).

use std::sync::{Arc, Mutex};

use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::Connection;

/// SQL functions a guest may call: SQLite's core scalar, aggregate, window, date,
/// JSON and math functions, and the FTS5 query helpers. Not here, so denied:
/// `load_extension`, `fts3_tokenizer` (reads and writes a host pointer), `sqlite_log`
/// (SQLite's process-wide log), `fts5()` (hands out an API pointer), the FTS3 and
/// R*Tree helpers (`offsets`, `matchinfo`, `optimize`, `rtreenode`, ...), the
/// compile-option probes, and any function this list does not name.
#[rustfmt::skip]
const FUNCTIONS: &[&str] = &[
    // Core scalar functions.
    "abs", "changes", "char", "coalesce", "concat", "concat_ws", "format", "glob", "hex",
    "if", "ifnull", "iif", "instr", "last_insert_rowid", "length", "like", "likelihood",
    "likely", "lower", "ltrim", "max", "min", "nullif", "octet_length", "printf", "quote",
    "random", "randomblob", "replace", "round", "rtrim", "sign", "soundex",
    "sqlite_source_id", "sqlite_version", "substr", "substring", "subtype", "total_changes",
    "trim", "typeof", "unhex", "unicode", "unistr", "unistr_quote", "unlikely", "upper",
    "zeroblob",
    // Aggregate and window functions.
    "avg", "count", "group_concat", "string_agg", "sum", "total", "cume_dist", "dense_rank",
    "first_value", "lag", "last_value", "lead", "nth_value", "ntile", "percent_rank",
    "rank", "row_number", "median", "percentile", "percentile_cont", "percentile_disc",
    // Date and time.
    "current_date", "current_time", "current_timestamp", "date", "datetime", "julianday",
    "strftime", "time", "timediff", "unixepoch",
    // JSON (the `->` and `->>` operators are functions too).
    "->", "->>", "json", "json_array", "json_array_insert", "json_array_length",
    "json_error_position", "json_extract", "json_group_array", "json_group_object",
    "json_insert", "json_object", "json_patch", "json_pretty", "json_quote", "json_remove",
    "json_replace", "json_set", "json_type", "json_valid", "jsonb", "jsonb_array",
    "jsonb_array_insert", "jsonb_extract", "jsonb_group_array", "jsonb_group_object",
    "jsonb_insert", "jsonb_object", "jsonb_patch", "jsonb_remove", "jsonb_replace",
    "jsonb_set",
    // Math (present when SQLite is built with them).
    "acos", "acosh", "asin", "asinh", "atan", "atan2", "atanh", "ceil", "ceiling", "cos",
    "cosh", "degrees", "exp", "floor", "ln", "log", "log10", "log2", "mod", "pi", "pow",
    "power", "radians", "sin", "sinh", "sqrt", "tan", "tanh", "trunc",
    // FTS5 queries: `t MATCH ?`, `bm25(t)`, `highlight(...)`, `snippet(...)`.
    "match", "bm25", "highlight", "snippet",
];

/// SQLite's own helpers for `ALTER TABLE`, which it calls from the statements it
/// runs for an `ALTER TABLE` (judged like any other). SQLite refuses them in a
/// guest's text ("no such function"), so allowing them here adds nothing a guest
/// can call.
#[rustfmt::skip]
const ALTER_TABLE_HELPERS: &[&str] = &[
    "sqlite_add_constraint", "sqlite_drop_column", "sqlite_drop_constraint", "sqlite_fail",
    "sqlite_find_constraint", "sqlite_rename_column", "sqlite_rename_quotefix",
    "sqlite_rename_table", "sqlite_rename_test",
];

/// Virtual table modules a guest may create (and drop): FTS5 and R*Tree. FTS3/FTS4
/// (and `fts3tokenize`, `fts4aux`) are denied: their `tokenize=` argument names an
/// entry of a process-wide table of C pointers, and `dbstat` is not needed.
const MODULES: &[&str] = &["fts5", "fts5vocab", "rtree", "rtree_i32"];

/// How a pragma may be used.
#[derive(Clone, Copy, PartialEq)]
enum Use {
    /// Read or set: it reads the plugin's own database or changes only this connection.
    Any,
    /// Read only: the host chooses its value (`journal_mode`, `busy_timeout`, ...) or
    /// setting it would spend host memory (`cache_size`, `mmap_size`).
    Read,
}

/// Pragmas on the allowlist. Not here, so denied: the process-wide ones
/// (`hard_heap_limit`, `soft_heap_limit`, `threads`, `temp_store_directory`,
/// `data_store_directory`), `database_list` (shows host paths), `writable_schema` and
/// `trusted_schema` (lift protections), deprecated and debugging pragmas, and any
/// pragma this list does not name.
const PRAGMAS: &[(&str, Use)] = &[
    ("analysis_limit", Use::Any),
    ("application_id", Use::Any),
    ("auto_vacuum", Use::Any),
    ("automatic_index", Use::Any),
    ("busy_timeout", Use::Read),
    ("cache_size", Use::Read),
    ("cache_spill", Use::Read),
    ("collation_list", Use::Any),
    ("data_version", Use::Any),
    ("defer_foreign_keys", Use::Any),
    ("encoding", Use::Read),
    ("foreign_key_check", Use::Any),
    ("foreign_key_list", Use::Any),
    ("foreign_keys", Use::Any),
    ("freelist_count", Use::Any),
    ("function_list", Use::Any),
    ("incremental_vacuum", Use::Any),
    ("index_info", Use::Any),
    ("index_list", Use::Any),
    ("index_xinfo", Use::Any),
    ("integrity_check", Use::Any),
    ("journal_mode", Use::Read),
    ("journal_size_limit", Use::Read),
    ("locking_mode", Use::Read),
    ("mmap_size", Use::Read),
    ("module_list", Use::Any),
    ("optimize", Use::Any),
    ("page_count", Use::Any),
    ("page_size", Use::Any),
    ("pragma_list", Use::Any),
    ("query_only", Use::Any),
    ("quick_check", Use::Any),
    ("recursive_triggers", Use::Any),
    ("schema_version", Use::Read),
    ("secure_delete", Use::Any),
    ("shrink_memory", Use::Any),
    ("synchronous", Use::Read),
    ("table_info", Use::Any),
    ("table_list", Use::Any),
    ("table_xinfo", Use::Any),
    ("temp_store", Use::Read),
    ("user_version", Use::Any),
    ("wal_autocheckpoint", Use::Read),
    ("wal_checkpoint", Use::Any),
];

/// Why `VACUUM INTO` is denied.
pub(crate) const VACUUM_INTO: &str = "VACUUM INTO (it writes a copy of the database to a file)";

/// What the statement being stepped is, as far as the authorizer cares.
#[derive(Clone, Copy, PartialEq, Debug, Default)]
pub(crate) enum Running {
    /// Nothing is running, or a statement with no special needs.
    #[default]
    Other,
    /// A plain `VACUUM`: SQLite attaches a private temporary database (file name
    /// `''`) as `vacuum_<16 hex digits>` and copies the plugin's tables into it.
    Vacuum,
    /// `VACUUM ... INTO <file>`: refused before it runs (it writes a copy of the
    /// database to a file); the authorizer would deny its ATTACH anyway.
    VacuumInto,
}

impl Running {
    /// Classifies a statement by its first keyword: `VACUUM`, with or without `INTO`.
    pub(crate) fn of(sql: &str) -> Running {
        let mut words = Words(sql);
        match words.next() {
            Some(w) if w.eq_ignore_ascii_case("vacuum") => {
                if words.any(|w| w.eq_ignore_ascii_case("into")) {
                    Running::VacuumInto
                } else {
                    Running::Vacuum
                }
            }
            _ => Running::Other,
        }
    }
}

/// The words of one SQL statement, skipping blanks, comments and punctuation, up to
/// its `;`. Quoted text yields its inside as words too (good enough to find `INTO`).
struct Words<'a>(&'a str);

impl<'a> Iterator for Words<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        loop {
            let s = self.0;
            let c = s.chars().next()?;
            if c == ';' {
                self.0 = "";
                return None;
            }
            if s.starts_with("--") {
                self.0 = s.find('\n').map_or("", |i| &s[i + 1..]);
            } else if s.starts_with("/*") {
                self.0 = s.find("*/").map_or("", |i| &s[i + 2..]);
            } else if c.is_alphanumeric() || c == '_' {
                let end = s
                    .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .unwrap_or(s.len());
                self.0 = &s[end..];
                return Some(&s[..end]);
            } else {
                self.0 = &s[c.len_utf8()..];
            }
        }
    }
}

/// Shared between the connection's authorizer callback and the code that runs
/// statements.
#[derive(Default)]
struct Shared {
    running: Running,
    /// Why the last action was denied, kept until the next statement starts.
    denial: Option<String>,
}

/// The connection's authorizer: installed once, then told what is running.
pub(crate) struct Authorizer(Arc<Mutex<Shared>>);

impl Authorizer {
    /// Installs the allowlist on `conn`.
    pub(crate) fn install(conn: &mut Connection) -> rusqlite::Result<Authorizer> {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let s = shared.clone();
        conn.authorizer(Some(move |ctx: AuthContext<'_>| {
            let mut s = s.lock().unwrap_or_else(|p| p.into_inner());
            match judge(&ctx, s.running) {
                Ok(()) => Authorization::Allow,
                Err(why) => {
                    s.denial.get_or_insert(why);
                    Authorization::Deny
                }
            }
        }))?;
        Ok(Authorizer(shared))
    }

    fn shared(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets an earlier denial: a new call starts.
    pub(crate) fn start(&self) {
        *self.shared() = Shared::default();
    }

    /// Tells the authorizer which statement is being stepped (`Other` when done).
    pub(crate) fn running(&self, what: Running) {
        self.shared().running = what;
    }

    /// Denies a statement before it runs (`VACUUM INTO`): the error to return.
    pub(crate) fn refuse(&self, why: &str) -> rusqlite::Error {
        self.shared().denial.get_or_insert_with(|| why.to_string());
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_AUTH), None)
    }

    /// Why something was denied since [`Authorizer::start`], if it was.
    pub(crate) fn take_denial(&self) -> Option<String> {
        self.shared().denial.take()
    }
}

/// The plugin's own databases: `main` (its `data.db`) and `temp`.
fn own(schema: &str) -> bool {
    schema.eq_ignore_ascii_case("main") || schema.eq_ignore_ascii_case("temp")
}

/// The database SQLite's `VACUUM` attaches: `vacuum_` and 16 hex digits.
fn vacuum_schema(schema: &str) -> bool {
    schema.len() == 23
        && schema.starts_with("vacuum_")
        && schema[7..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// Judges one action: `Ok` to allow it, or why it is denied.
fn judge(ctx: &AuthContext<'_>, running: Running) -> Result<(), String> {
    use AuthAction as A;
    // The database an action touches, when SQLite names one.
    let schema = |name: Option<&str>| -> Result<(), String> {
        match name {
            None => Ok(()),
            Some(n) if own(n) => Ok(()),
            Some(n) if running == Running::Vacuum && vacuum_schema(n) => Ok(()),
            Some(n) => Err(format!(
                "database \"{n}\" (only the plugin's own database, main and temp, is reachable)"
            )),
        }
    };
    let module = |m: &str| {
        if MODULES.iter().any(|k| k.eq_ignore_ascii_case(m)) {
            Ok(())
        } else {
            Err(format!(
                "virtual table module \"{m}\" (allowed: {})",
                MODULES.join(", ")
            ))
        }
    };
    match ctx.action {
        A::Select | A::Recursive | A::Transaction { .. } | A::Savepoint { .. } => Ok(()),
        A::Read { .. }
        | A::Insert { .. }
        | A::Update { .. }
        | A::Delete { .. }
        | A::CreateTable { .. }
        | A::CreateIndex { .. }
        | A::CreateTrigger { .. }
        | A::CreateView { .. }
        | A::CreateTempTable { .. }
        | A::CreateTempIndex { .. }
        | A::CreateTempTrigger { .. }
        | A::CreateTempView { .. }
        | A::DropTable { .. }
        | A::DropIndex { .. }
        | A::DropTrigger { .. }
        | A::DropView { .. }
        | A::DropTempTable { .. }
        | A::DropTempIndex { .. }
        | A::DropTempTrigger { .. }
        | A::DropTempView { .. }
        | A::Reindex { .. }
        | A::Analyze { .. } => schema(ctx.database_name),
        // SQLite passes the schema as the action's first argument here (and a
        // column name where other actions have the schema).
        A::AlterTable { database_name, .. } => schema(Some(database_name)),
        A::CreateVtable { module_name, .. } | A::DropVtable { module_name, .. } => {
            module(module_name).and(schema(ctx.database_name))
        }
        A::Function { function_name } => {
            let known = |list: &[&str]| list.iter().any(|f| f.eq_ignore_ascii_case(function_name));
            if known(FUNCTIONS) || known(ALTER_TABLE_HELPERS) {
                Ok(())
            } else {
                Err(format!(
                    "the SQL function {function_name}() (not on the allowlist of safe functions)"
                ))
            }
        }
        A::Pragma {
            pragma_name,
            pragma_value,
        } => {
            let found = PRAGMAS
                .iter()
                .find(|(p, _)| p.eq_ignore_ascii_case(pragma_name));
            match found {
                None => Err(format!(
                    "PRAGMA {pragma_name} (process-wide, touching files, or not on the allowlist of per-connection pragmas)"
                )),
                Some((_, Use::Read)) if pragma_value.is_some() => Err(format!(
                    "setting PRAGMA {pragma_name} (the host sets it; reading it is allowed)"
                )),
                Some(_) => schema(ctx.database_name),
            }
        }
        A::Attach { filename } if filename.is_empty() && running == Running::Vacuum => Ok(()),
        A::Attach { .. } if running == Running::VacuumInto => Err(VACUUM_INTO.into()),
        A::Attach { .. } => {
            Err("ATTACH (only the plugin's own database, main and temp, is reachable)".into())
        }
        // ATTACH whose file name is computed or bound: SQLite passes no name.
        A::Unknown { code: 24, .. } if running == Running::VacuumInto => Err(VACUUM_INTO.into()),
        A::Unknown { code: 24, .. } => Err(
            "ATTACH with a computed or bound file name (only the plugin's own database is reachable)"
                .into(),
        ),
        A::Detach { .. } | A::Unknown { code: 25, .. } => {
            Err("DETACH (nothing but the plugin's own database is ever attached)".into())
        }
        A::Unknown { code, .. } => Err(format!(
            "an action SQLite reports as code {code} (not on the allowlist)"
        )),
        _ => Err(format!("{:?} (not on the allowlist)", ctx.action)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vacuum_is_told_apart_from_vacuum_into() {
        assert_eq!(Running::of("VACUUM"), Running::Vacuum);
        assert_eq!(
            Running::of("  -- c\n /* x */ vacuum main;"),
            Running::Vacuum
        );
        assert_eq!(Running::of("VACUUM INTO '/tmp/x'"), Running::VacuumInto);
        assert_eq!(Running::of("vacuum main\ninto ?"), Running::VacuumInto);
        assert_eq!(Running::of("VACUUM/**/INTO'x'"), Running::VacuumInto);
        assert_eq!(Running::of("SELECT 'VACUUM'"), Running::Other);
        assert_eq!(Running::of("/* VACUUM */ SELECT 1"), Running::Other);
        assert_eq!(Running::of(""), Running::Other);
    }

    #[test]
    fn the_vacuum_schema_is_exactly_sqlites_name() {
        assert!(vacuum_schema("vacuum_0123456789abcdef"));
        assert!(!vacuum_schema("vacuum_db"));
        assert!(!vacuum_schema("vacuum_0123456789abcdefg"));
        assert!(!vacuum_schema("main"));
    }

    #[test]
    fn lists_are_lowercase_and_sorted_enough_to_review() {
        for f in FUNCTIONS {
            assert_eq!(*f, f.to_ascii_lowercase());
        }
        for w in PRAGMAS.windows(2) {
            assert!(w[0].0 < w[1].0, "{} before {}", w[0].0, w[1].0);
        }
    }
}
