//! D1's rules where they are stricter than SQLite: the limits set on every connection and
//! the authorizer every statement passes (`shared/docs/d1-as-it-is.md`, sections 1 and 2).
//!
//! Evidence: workerd's `src/workerd/util/sqlite.c++` sets the limits with `sqlite3_limit`
//! and installs an authorizer; `wrangler d1 execute --local` (the same workerd) answers
//! `too many terms in compound SELECT` for a six-term `UNION ALL`; Cloudflare's D1 docs
//! list the PRAGMAs D1 supports ("SQL statements" page) and say that foreign keys are
//! always enforced and `_cf_KV` is D1's own table.

use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::limits::Limit;
use rusqlite::Connection;

/// D1 rejects any single statement longer than this (SQLITE_TOOBIG).
pub const MAX_STATEMENT_BYTES: i32 = 100_000;

/// The limits workerd sets on every D1 connection (section 1 of d1-as-it-is.md).
pub const LIMITS: &[(Limit, i32, &str)] = &[
    (
        Limit::SQLITE_LIMIT_SQL_LENGTH,
        MAX_STATEMENT_BYTES,
        "statement length",
    ),
    (
        Limit::SQLITE_LIMIT_LENGTH,
        2_000_000 + 64 * 1024,
        "string, BLOB or row",
    ),
    (Limit::SQLITE_LIMIT_COLUMN, 100, "columns"),
    (
        Limit::SQLITE_LIMIT_COMPOUND_SELECT,
        5,
        "compound SELECT terms",
    ),
    (
        Limit::SQLITE_LIMIT_VDBE_OP,
        25_000,
        "VDBE ops per statement",
    ),
    (Limit::SQLITE_LIMIT_LIKE_PATTERN_LENGTH, 50, "LIKE pattern"),
    (Limit::SQLITE_LIMIT_VARIABLE_NUMBER, 100, "bound parameters"),
    (Limit::SQLITE_LIMIT_FUNCTION_ARG, 127, "function arguments"),
    (Limit::SQLITE_LIMIT_TRIGGER_DEPTH, 10, "trigger depth"),
    (Limit::SQLITE_LIMIT_ATTACHED, 0, "attached databases"),
];

/// Sets D1's limits on `conn`.
pub fn apply_limits(conn: &Connection) -> rusqlite::Result<()> {
    for (limit, value, _) in LIMITS {
        conn.set_limit(*limit, *value)?;
    }
    Ok(())
}

/// Lifts the limits a long multi-row INSERT meets (statement length, VDBE ops) again, for
/// checking seed files whose long INSERTs the xtask splits before sending.
pub fn allow_long_statements(conn: &Connection) -> rusqlite::Result<()> {
    conn.set_limit(Limit::SQLITE_LIMIT_SQL_LENGTH, 1_000_000_000)?;
    conn.set_limit(Limit::SQLITE_LIMIT_LENGTH, 1_000_000_000)?;
    conn.set_limit(Limit::SQLITE_LIMIT_VDBE_OP, i32::MAX)?;
    Ok(())
}

/// The PRAGMAs D1's docs list as supported. Everything else is `not authorized`.
pub const ALLOWED_PRAGMAS: &[&str] = &[
    "table_list",
    "table_info",
    "table_xinfo",
    "index_list",
    "index_info",
    "index_xinfo",
    "foreign_key_list",
    "foreign_key_check",
    "quick_check",
    "optimize",
    "foreign_keys",
    "defer_foreign_keys",
    "case_sensitive_like",
    "ignore_check_constraints",
    "legacy_alter_table",
    "recursive_triggers",
    "reverse_unordered_selects",
];

/// Whether a name is one of D1's own (`_cf_KV` and friends), matched as a prefix.
pub fn is_d1_internal(name: &str) -> bool {
    name.len() >= 4 && name[..4].eq_ignore_ascii_case("_cf_")
}

/// D1's authorizer: what a user's statement may do.
pub fn authorize(ctx: AuthContext<'_>) -> Authorization {
    use AuthAction as A;
    let internal = |name: &str| {
        if is_d1_internal(name) {
            Authorization::Deny
        } else {
            Authorization::Allow
        }
    };
    match ctx.action {
        // Transactions are implicit: one request is one transaction.
        A::Transaction { .. } | A::Savepoint { .. } => Authorization::Deny,
        A::Attach { .. } | A::Detach { .. } => Authorization::Deny,
        A::CreateTempTable { .. }
        | A::CreateTempIndex { .. }
        | A::CreateTempTrigger { .. }
        | A::CreateTempView { .. }
        | A::DropTempTable { .. }
        | A::DropTempIndex { .. }
        | A::DropTempTrigger { .. }
        | A::DropTempView { .. } => Authorization::Deny,
        A::Pragma { pragma_name, .. } => {
            if ALLOWED_PRAGMAS
                .iter()
                .any(|p| p.eq_ignore_ascii_case(pragma_name))
            {
                Authorization::Allow
            } else {
                Authorization::Deny
            }
        }
        A::CreateTable { table_name }
        | A::DropTable { table_name }
        | A::Insert { table_name }
        | A::Delete { table_name }
        | A::Analyze { table_name } => internal(table_name),
        A::Read { table_name, .. } | A::Update { table_name, .. } => internal(table_name),
        A::AlterTable { table_name, .. } => internal(table_name),
        A::CreateIndex {
            index_name,
            table_name,
        }
        | A::DropIndex {
            index_name,
            table_name,
        } => {
            if is_d1_internal(index_name) || is_d1_internal(table_name) {
                Authorization::Deny
            } else {
                Authorization::Allow
            }
        }
        A::CreateTrigger {
            trigger_name,
            table_name,
        }
        | A::DropTrigger {
            trigger_name,
            table_name,
        } => {
            if is_d1_internal(trigger_name) || is_d1_internal(table_name) {
                Authorization::Deny
            } else {
                Authorization::Allow
            }
        }
        A::CreateView { view_name } | A::DropView { view_name } => internal(view_name),
        A::CreateVtable { table_name, .. } | A::DropVtable { table_name, .. } => {
            internal(table_name)
        }
        _ => Authorization::Allow,
    }
}

/// Installs (or, with `false`, removes) the authorizer on `conn`.
pub fn set_authorizer(conn: &Connection, on: bool) {
    if on {
        conn.authorizer(Some(authorize));
    } else {
        conn.authorizer(None::<fn(AuthContext<'_>) -> Authorization>);
    }
}

/// Runs `f` with D1's authorizer installed on `conn`, and removes it again.
pub fn authorized<T>(conn: &Connection, f: impl FnOnce() -> T) -> T {
    set_authorizer(conn, true);
    let out = f();
    set_authorizer(conn, false);
    out
}

/// Which of D1's rules an SQLite error comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Broken {
    /// The authorizer refused it (`not authorized`, or `access ... is prohibited`).
    Authorizer,
    /// More than five terms in a compound SELECT.
    CompoundSelect,
    /// More than 100 columns.
    Columns,
    /// Another of the limits (`too many ...`).
    Limit,
}

/// The rule behind an SQLite error message, or `None` for errors of other kinds.
pub fn broken_rule(message: &str) -> Option<Broken> {
    if message.contains("not authorized") || message.contains("prohibited") {
        Some(Broken::Authorizer)
    } else if message.contains("too many terms in compound SELECT") {
        Some(Broken::CompoundSelect)
    } else if message.contains("too many columns") {
        Some(Broken::Columns)
    } else if message.contains("too many") {
        Some(Broken::Limit)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d1() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE _cf_KV(key TEXT PRIMARY KEY, value BLOB); CREATE TABLE t(x);",
        )
        .unwrap();
        apply_limits(&conn).unwrap();
        set_authorizer(&conn, true);
        conn
    }

    fn err(conn: &Connection, sql: &str) -> String {
        conn.execute_batch(sql)
            .err()
            .unwrap_or_else(|| panic!("D1 would refuse: {sql}"))
            .to_string()
    }

    #[test]
    fn the_limits_bite() {
        let conn = d1();
        let six = (1..=6)
            .map(|i| format!("SELECT {i}"))
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        assert!(err(&conn, &six).contains("too many terms in compound SELECT"));
        conn.execute_batch(&six.replace(" UNION ALL SELECT 6", ""))
            .unwrap();
        let cols = (0..101)
            .map(|i| format!("c{i}"))
            .collect::<Vec<_>>()
            .join(", ");
        assert!(err(&conn, &format!("CREATE TABLE wide({cols})")).contains("too many columns"));
        {
            let e = err(&conn, &format!("SELECT '{}'", "x".repeat(100_001)));
            assert!(e.contains("too"), "{e}");
        }
        let like = format!("SELECT 'a' LIKE '{}'", "%".repeat(51));
        assert!(err(&conn, &like).contains("LIKE or GLOB pattern too complex"));
    }

    #[test]
    fn the_authorizer_refuses() {
        let conn = d1();
        for sql in [
            "ATTACH DATABASE ':memory:' AS other",
            "CREATE TEMP TABLE scratch(x)",
            "CREATE TEMP VIEW v AS SELECT 1",
            "SELECT * FROM _cf_KV",
            "INSERT INTO _cf_KV VALUES ('k', 'v')",
            "CREATE TABLE _cf_mine(x)",
            "CREATE TABLE _CF_upper(x)",
            "PRAGMA journal_mode = WAL",
            "PRAGMA writable_schema = ON",
            "SAVEPOINT a",
        ] {
            let e = err(&conn, sql);
            assert!(
                e.contains("not authorized") || e.contains("prohibited"),
                "{sql}: {e}"
            );
        }
        for sql in [
            "PRAGMA table_info(t)",
            "PRAGMA defer_foreign_keys = true",
            "PRAGMA foreign_keys = OFF",
            "SELECT * FROM pragma_table_info('t')",
            "CREATE TABLE xcf_notes(x)",
            "CREATE TABLE s(x INTEGER) STRICT",
            "SELECT json_extract('{\"a\":1}', '$.a'), row_number() OVER ()",
        ] {
            conn.execute_batch(sql)
                .unwrap_or_else(|e| panic!("D1 allows `{sql}`: {e}"));
        }
    }
}
