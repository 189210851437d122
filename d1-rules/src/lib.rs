//! D1's rules where they are stricter than SQLite: the limits set on every connection and
//! the authorizer every statement passes. The xtask's lint, its in-memory replays and the
//! D1 API emulator all apply them, so that what lint accepts the emulator accepts, and
//! both agree with D1.
//!
//! # Evidence
//!
//! - **workerd**, the engine behind `wrangler d1 execute --local` and D1 itself, measured
//!   by difference: the end-to-end test `conformance` (in `xtask/tests/e2e`) runs a list
//!   of SQL shapes through workerd (miniflare's D1 binding, exactly as
//!   `wrangler d1 execute --local` calls it) and through the emulator, over `/query` and
//!   over import, and requires every shape to end the same way. The lists below
//!   (PRAGMA forms, functions, modules, the expression-depth limit) are what workerd
//!   answered for every PRAGMA and function SQLite 3.50 has.
//! - **Cloudflare's D1 docs** where production is stricter than workerd's local settings:
//!   the limits page gives 2 MB as the largest string, BLOB or row. workerd locally lets a
//!   3 MB `zeroblob` through; D1 does not, so this crate keeps D1's limit (the conformance
//!   list marks those shapes as "D1 stricter").
//! - `wrangler d1 execute --local` answers `too many terms in compound SELECT` for a
//!   six-term `UNION ALL`; D1's docs say foreign keys are always enforced and `_cf_KV` is
//!   D1's own table.
//!
//! SQLite's math functions (`sqrt`, `ln`, ...) must be compiled in: the workspace sets
//! `LIBSQLITE3_FLAGS=-DSQLITE_ENABLE_MATH_FUNCTIONS` in `.cargo/config.toml`, and
//! [`tests`] fails if they are missing.

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
    (Limit::SQLITE_LIMIT_EXPR_DEPTH, 100, "expression depth"),
    (Limit::SQLITE_LIMIT_ATTACHED, 0, "attached databases"),
];

/// Sets D1's limits on `conn`, and SQLite's defensive mode, which D1 runs in: shadow
/// tables (an FTS5 table's `<name>_data` and friends) cannot be dropped or written by
/// name, and the schema cannot be written directly.
pub fn apply_limits(conn: &Connection) -> rusqlite::Result<()> {
    for (limit, value, _) in LIMITS {
        conn.set_limit(*limit, *value)?;
    }
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)?;
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

/// PRAGMAs D1 runs with no argument (`PRAGMA data_version`, or `pragma_data_version` as a
/// table-valued function). FTS5 runs `PRAGMA data_version` itself on every write, so a
/// rule without it refuses every FTS5 insert.
pub const PRAGMAS_BARE: &[&str] = &[
    "case_sensitive_like",
    "data_version",
    "defer_foreign_keys",
    "foreign_key_check",
    "foreign_keys",
    "ignore_check_constraints",
    "legacy_alter_table",
    "optimize",
    "page_size",
    "quick_check",
    "recursive_triggers",
    "reverse_unordered_selects",
    "table_list",
];

/// PRAGMAs D1 runs with any argument (a table or index name): `PRAGMA table_info(t)`.
/// Without one, those of them not in [`PRAGMAS_BARE`] are refused.
pub const PRAGMAS_WITH_NAME: &[&str] = &[
    "foreign_key_check",
    "foreign_key_list",
    "index_info",
    "index_list",
    "index_xinfo",
    "quick_check",
    "table_info",
    "table_list",
    "table_xinfo",
];

/// PRAGMAs D1 lets a statement set, to a boolean only (`on`, `off`, `true`, `false`,
/// `yes`, `no`, `1`, `0`, any case, quoted or not); any other value is refused.
pub const PRAGMAS_BOOLEAN: &[&str] = &[
    "case_sensitive_like",
    "defer_foreign_keys",
    "foreign_keys",
    "ignore_check_constraints",
    "legacy_alter_table",
    "recursive_triggers",
    "reverse_unordered_selects",
];

/// Whether D1 runs `PRAGMA <name> [= <value>]` (or `PRAGMA <name>(<value>)`).
pub fn pragma_allowed(name: &str, value: Option<&str>) -> bool {
    let is = |list: &[&str]| list.iter().any(|p| p.eq_ignore_ascii_case(name));
    let Some(value) = value else {
        return is(PRAGMAS_BARE);
    };
    if is(PRAGMAS_WITH_NAME) {
        return true;
    }
    let value = value.trim_matches(|c| c == '\'' || c == '"');
    if is(PRAGMAS_BOOLEAN) {
        return ["on", "off", "true", "false", "yes", "no", "1", "0"]
            .iter()
            .any(|b| b.eq_ignore_ascii_case(value));
    }
    if name.eq_ignore_ascii_case("optimize") {
        // A mask: decimal or 0x hex, possibly negative.
        let digits = value.strip_prefix('-').unwrap_or(value);
        return match digits
            .strip_prefix("0x")
            .or_else(|| digits.strip_prefix("0X"))
        {
            Some(hex) => !hex.is_empty() && hex.chars().all(|c| c.is_ascii_hexdigit()),
            None => !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()),
        };
    }
    false
}

/// The SQL functions D1 lets a statement call. Every other name is refused with `not
/// authorized to use function: <name>`, even where SQLite has it: among them
/// `sqlite_version`, `sqlite_source_id`, `sqlite_compileoption_*`, `load_extension`,
/// `fts5`, `subtype`, `json_pretty`, `json_error_position`, `unistr`, `if` (use `iif`),
/// `ceiling` (use `ceil`), `power` (use `pow`) and `log10` (use `log`). Functions workerd's
/// SQLite lacks (`soundex`, FTS3's `matchinfo`/`offsets`) are refused here too, since
/// D1 answers `no such function` for them.
pub const ALLOWED_FUNCTIONS: &[&str] = &[
    "->",
    "->>",
    "abs",
    "acos",
    "acosh",
    "asin",
    "asinh",
    "atan",
    "atan2",
    "atanh",
    "avg",
    "bm25",
    "ceil",
    "changes",
    "char",
    "coalesce",
    "concat",
    "concat_ws",
    "cos",
    "cosh",
    "count",
    "cume_dist",
    "current_date",
    "current_time",
    "current_timestamp",
    "date",
    "datetime",
    "degrees",
    "dense_rank",
    "exp",
    "first_value",
    "floor",
    "format",
    "glob",
    "group_concat",
    "hex",
    "highlight",
    "ifnull",
    "iif",
    "instr",
    "json",
    "json_array",
    "json_array_length",
    "json_extract",
    "json_group_array",
    "json_group_object",
    "json_insert",
    "json_object",
    "json_patch",
    "json_quote",
    "json_remove",
    "json_replace",
    "json_set",
    "json_type",
    "json_valid",
    "jsonb",
    "jsonb_array",
    "jsonb_extract",
    "jsonb_group_array",
    "jsonb_group_object",
    "jsonb_insert",
    "jsonb_object",
    "jsonb_patch",
    "jsonb_remove",
    "jsonb_replace",
    "jsonb_set",
    "julianday",
    "lag",
    "last_insert_rowid",
    "last_value",
    "lead",
    "length",
    "like",
    "likelihood",
    "likely",
    "ln",
    "log",
    "log2",
    "lower",
    "ltrim",
    "match",
    "max",
    "min",
    "mod",
    "nth_value",
    "ntile",
    "nullif",
    "octet_length",
    "percent_rank",
    "pi",
    "pow",
    "printf",
    "quote",
    "radians",
    "random",
    "randomblob",
    "rank",
    "replace",
    "round",
    "row_number",
    "rtreecheck",
    "rtrim",
    "sign",
    "sin",
    "sinh",
    "snippet",
    "sqrt",
    "strftime",
    "string_agg",
    "substr",
    "substring",
    "sum",
    "tan",
    "tanh",
    "time",
    "timediff",
    "total",
    "total_changes",
    "trim",
    "trunc",
    "typeof",
    "unhex",
    "unicode",
    "unixepoch",
    "unlikely",
    "upper",
    "zeroblob",
];

/// Whether D1 lets a statement call the SQL function `name`. SQLite's own `ALTER TABLE`
/// calls internal functions (`sqlite_rename_table`, `sqlite_drop_column`, ...) that a
/// user's SQL cannot name; they pass, as they do on D1.
pub fn function_allowed(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    ALLOWED_FUNCTIONS.contains(&lower.as_str())
        || lower.starts_with("sqlite_rename_")
        || lower == "sqlite_drop_column"
}

/// The virtual-table modules D1 creates tables with. FTS3/FTS4, `dbstat` and every other
/// module are refused.
pub const ALLOWED_MODULES: &[&str] = &["fts5", "fts5vocab", "rtree", "rtree_i32"];

/// Eponymous virtual tables SQLite has here and D1 does not (`no such table` there).
pub const ABSENT_TABLES: &[&str] = &["dbstat"];

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
        A::Pragma {
            pragma_name,
            pragma_value,
        } => {
            // `PRAGMA temp.x` names the temporary schema, which D1 has none of.
            let other_schema = ctx
                .database_name
                .is_some_and(|d| !d.eq_ignore_ascii_case("main"));
            if !other_schema && pragma_allowed(pragma_name, pragma_value) {
                Authorization::Allow
            } else {
                Authorization::Deny
            }
        }
        A::Function { function_name } => {
            if function_allowed(function_name) {
                Authorization::Allow
            } else {
                Authorization::Deny
            }
        }
        A::Read { table_name, .. }
            if ABSENT_TABLES
                .iter()
                .any(|t| t.eq_ignore_ascii_case(table_name)) =>
        {
            Authorization::Deny
        }
        A::CreateTable { table_name }
        | A::DropTable { table_name }
        | A::Insert { table_name }
        | A::Delete { table_name } => internal(table_name),
        // A plain `ANALYZE` visits every table, D1's own `_cf_KV` included, and D1 runs it.
        A::Analyze { .. } => Authorization::Allow,
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
        A::CreateVtable {
            table_name,
            module_name,
        } => {
            if ALLOWED_MODULES
                .iter()
                .any(|m| m.eq_ignore_ascii_case(module_name))
            {
                internal(table_name)
            } else {
                Authorization::Deny
            }
        }
        A::DropVtable { table_name, .. } => internal(table_name),
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
            "SELECT sqlite_version()",
            "SELECT power(2, 3)",
            "SELECT load_extension('x')",
            "PRAGMA table_info",
            "PRAGMA foreign_keys = 2",
            "PRAGMA user_version",
            "PRAGMA integrity_check",
            "PRAGMA temp.table_info(t)",
            "CREATE VIRTUAL TABLE g USING fts4(body)",
            "SELECT * FROM dbstat",
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
            "SELECT sqrt(16), ln(2), pow(2, 3), ceil(1.5)",
            "PRAGMA data_version",
            "PRAGMA foreign_keys = yes",
            "PRAGMA optimize = 0x10002",
            "PRAGMA main.table_info(t)",
            "CREATE VIRTUAL TABLE f USING fts5(body)",
            "INSERT INTO f VALUES ('words')",
            "SELECT rowid FROM f WHERE f MATCH 'words'",
            "ANALYZE",
        ] {
            conn.execute_batch(sql)
                .unwrap_or_else(|e| panic!("D1 allows `{sql}`: {e}"));
        }
    }
}
