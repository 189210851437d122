//! The seam between what a command decides and where it happens: the local D1 file
//! (read directly, written through `wrangler --local`) or a remote database (through
//! `wrangler --remote`). Commands talk to `dyn Database` and never ask which one it is.

pub(crate) mod load;
pub(crate) mod local;
#[cfg(test)]
pub(crate) mod memory;
pub(crate) mod ops;
pub(crate) mod remote;
pub(crate) mod schema;
pub(crate) mod virtual_export;

pub(crate) use schema::{drop_all_sql, schema_copy};

use std::path::{Path, PathBuf};

use crate::migrations::Migration;
use crate::project::Project;
use crate::target::{Env, Target};

/// One row of wrangler's tracking table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AppliedRow {
    pub(crate) id: i64,
    pub(crate) name: String,
    pub(crate) applied_at: String,
}

/// The user objects of the schema, as one query returns them. SQLite's and D1's own names
/// are matched as prefixes: in `LIKE '_cf_%'` the `_` is a wildcard, which would hide a
/// user table such as `xcf_notes`.
pub(crate) const SCHEMA_SQL: &str =
    "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE sql IS NOT NULL \
     AND substr(name, 1, 7) <> 'sqlite_' AND lower(substr(name, 1, 4)) <> '_cf_' ORDER BY rowid";

/// Whether `name` is SQLite's (`sqlite_*`) or D1's (`_cf_*`) own: never dropped, counted
/// or exported by the xtask.
pub(crate) fn is_internal(name: &str) -> bool {
    name.starts_with("sqlite_") || d1_rules::is_d1_internal(name)
}

/// A foreign key: `child` references `parent`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ForeignKey {
    pub(crate) child: String,
    pub(crate) parent: String,
    pub(crate) on_delete: String,
}

/// One object of `sqlite_master`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SchemaObject {
    pub(crate) kind: String,
    pub(crate) name: String,
    pub(crate) table: String,
    pub(crate) sql: String,
}

/// The row of the xtask's lock table: who changes this database right now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LockRow {
    /// Random per run: a holder releases only its own row.
    pub(crate) token: String,
    pub(crate) holder: String,
    pub(crate) host: String,
    pub(crate) pid: i64,
    pub(crate) command: String,
    /// Unix seconds, by the database's clock (`unixepoch()` in the insert).
    pub(crate) acquired_at: i64,
    /// Seconds since then, by the database's clock at the read: staleness never compares
    /// clocks of different machines.
    pub(crate) age_secs: i64,
}

/// What the database says is applied.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct State {
    pub(crate) applied: Vec<AppliedRow>,
    /// The schema; it also tells which migration of a failed batch broke it, what a reset
    /// drops and what a seed may write to.
    pub(crate) schema: Vec<SchemaObject>,
    /// SHA-256 recorded for each applied migration (the xtask's side table).
    pub(crate) checksums: std::collections::BTreeMap<String, String>,
    /// The lock row, if someone holds the lock.
    pub(crate) lock: Option<LockRow>,
}

/// Work that rides in the apply request beside the migrations.
#[derive(Clone, Debug, Default)]
pub(crate) struct Extras {
    /// Checksums of migrations applied earlier by plain wrangler, recorded on first sight.
    pub(crate) first_sight: Vec<(String, String)>,
    /// Release the lock in the same transaction: the rows of these tokens (ours, and one
    /// a restore brought back).
    pub(crate) release: Option<Vec<String>>,
}

/// The extras for group `i` of `0..=last`: first-sight checksums with the first request,
/// the lock's release with the last.
pub(crate) fn group_extras(extras: &Extras, i: usize, last: usize) -> Extras {
    Extras {
        first_sight: if i == 0 {
            extras.first_sight.clone()
        } else {
            Vec::new()
        },
        release: if i == last {
            extras.release.clone()
        } else {
            None
        },
    }
}

/// The xtask's side table of checksums, next to wrangler's tracking table.
pub(crate) fn checksum_table(table: &str) -> String {
    format!("{table}_checksums")
}

/// The xtask's lock table: at most one row.
pub(crate) fn lock_table(table: &str) -> String {
    format!("{table}_lock")
}

/// wrangler's tracking table and the xtask's two beside it: never user data (not
/// dropped by a reset, counted, compared for schema drift or copied into test data).
pub(crate) fn own_tables(table: &str) -> [String; 3] {
    [table.to_string(), checksum_table(table), lock_table(table)]
}

/// Creates the lock table if missing.
fn lock_table_sql(table: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {}(id INTEGER PRIMARY KEY CHECK (id = 1), token TEXT NOT NULL, \
         holder TEXT NOT NULL, host TEXT NOT NULL, pid INTEGER NOT NULL, command TEXT NOT NULL, \
         acquired_at INTEGER NOT NULL);",
        quote_ident(&lock_table(table))
    )
}

/// Creates the side tables if missing.
pub(crate) fn meta_tables_sql(table: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {}(name TEXT PRIMARY KEY, sha256 TEXT NOT NULL, \
         recorded_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP, how TEXT NOT NULL);\n{}",
        quote_ident(&checksum_table(table)),
        lock_table_sql(table)
    )
}

/// Records (or re-records) a checksum.
pub(crate) fn checksum_upsert_sql(table: &str, name: &str, sha256: &str, how: &str) -> String {
    format!(
        "INSERT INTO {} (name, sha256, how) VALUES ({}, {}, {}) ON CONFLICT(name) DO UPDATE SET \
         sha256 = excluded.sha256, how = excluded.how, recorded_at = CURRENT_TIMESTAMP;",
        quote_ident(&checksum_table(table)),
        quote_string(name),
        quote_string(sha256),
        quote_string(how)
    )
}

/// Takes the lock: fails with a UNIQUE constraint error while another row is there. The
/// time is the database's own (`unixepoch()`), so that every runner judges its age by one
/// clock.
pub(crate) fn lock_insert_sql(table: &str, row: &LockRow) -> String {
    format!(
        "INSERT INTO {} (id, token, holder, host, pid, command, acquired_at) VALUES (1, {}, {}, {}, {}, {}, unixepoch());",
        quote_ident(&lock_table(table)),
        quote_string(&row.token),
        quote_string(&row.holder),
        quote_string(&row.host),
        row.pid,
        quote_string(&row.command),
    )
}

/// Releases the lock rows of `tokens`, and only those: ours, and the one a restore brought
/// back (recognised by its token after the restore). Never rows chosen by time. The table
/// is created first if missing: a restore from an export of a database that never had it
/// (plain wrangler's, an empty one) removes it along with the lock row.
pub(crate) fn lock_release_sql(table: &str, tokens: &[String]) -> String {
    let list: Vec<String> = tokens.iter().map(|t| quote_string(t)).collect();
    format!(
        "{}\nDELETE FROM {} WHERE token IN ({});",
        lock_table_sql(table),
        quote_ident(&lock_table(table)),
        list.join(", ")
    )
}

pub(crate) fn checksums_select_sql(table: &str) -> String {
    format!(
        "SELECT name, sha256 FROM {} ORDER BY name",
        quote_ident(&checksum_table(table))
    )
}

pub(crate) fn lock_select_sql(table: &str) -> String {
    format!(
        "SELECT token, holder, host, pid, command, acquired_at, unixepoch() - acquired_at AS age FROM {}",
        quote_ident(&lock_table(table))
    )
}

/// The lock row from a `lock_select_sql` result row.
pub(crate) fn lock_from_json(row: &serde_json::Value) -> LockRow {
    let s = |k: &str| row[k].as_str().unwrap_or_default().to_string();
    LockRow {
        token: s("token"),
        holder: s("holder"),
        host: s("host"),
        pid: row["pid"].as_i64().unwrap_or_default(),
        command: s("command"),
        acquired_at: row["acquired_at"].as_i64().unwrap_or_default(),
        age_secs: row["age"].as_i64().unwrap_or_default(),
    }
}

impl State {
    pub(crate) fn is_applied(&self, name: &str) -> bool {
        self.applied.iter().any(|r| r.name == name)
    }
}

/// How a run of migrations reached the database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ApplyMode {
    /// Every file in one request: all of them or none (the default).
    Atomic,
    /// One request per file, as `wrangler d1 migrations apply` does: a failure keeps the
    /// files before it.
    PerFile,
}

impl ApplyMode {
    /// The migrations of each request: all in one, or one file each.
    pub(crate) fn groups<'a>(self, migrations: &[&'a Migration]) -> Vec<Vec<&'a Migration>> {
        match self {
            ApplyMode::Atomic => vec![migrations.to_vec()],
            ApplyMode::PerFile => migrations.iter().map(|m| vec![*m]).collect(),
        }
    }
}

/// What an apply reported.
#[derive(Debug, Default)]
pub(crate) struct ApplyReport {
    /// wrangler's error for the request that failed, if one did.
    pub(crate) error: Option<String>,
    /// The migration that failed, where it could be told.
    pub(crate) failed: Option<String>,
    /// The files of the failed request all ran when sent again in a request that could
    /// not commit: the failure was not in a file (a damaged reply, a fault of D1).
    pub(crate) no_file_failed: bool,
    /// The tracking table as read back in the same request, when the apply could do that.
    pub(crate) after: Option<State>,
}

/// A point the database can be returned to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum RestorePoint {
    /// A Time Travel bookmark of a remote database.
    Bookmark(String),
    /// A copy of the local database file.
    Snapshot(PathBuf),
}

/// What a backup produced in its scratch file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum BackupMade {
    /// A SQLite copy of the local file.
    Snapshot,
    /// An SQL export, taken at this bookmark.
    Export { bookmark: String },
}

/// Where a restore takes the database back to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Restore {
    Bookmark(String),
    /// A local snapshot file: copied back page for page.
    Snapshot(PathBuf),
    /// An SQL export: the database is emptied and the file imported, in one request.
    Sql(PathBuf),
}

/// What one request returned: `Ok(Some(items))`, a result item per statement, each
/// confirmed by D1; `Ok(None)`, done, but the transport returns no rows (the import API,
/// `wrangler --local --file`); `Err(text)`, D1's or wrangler's refusal, nothing of it
/// applied.
pub(crate) type Reply = Result<Option<Vec<serde_json::Value>>, String>;

/// The transport to one database: run SQL, read rows, capture and return to a restore
/// point. Everything the xtask decides (the lock, the apply loop, reading back, the undo
/// hint) lives once above it, in `ops`; `local`, `remote` and the in-process `memory` (for
/// the pipeline's unit tests) only move requests.
pub(crate) trait Database {
    /// The environment and database this transport reaches.
    fn target(&self) -> &Target;
    /// Where the state is read from, for people: a file path or `remote`.
    fn location(&self) -> String;
    /// Runs `sql` as one request, which D1 runs as one transaction. When the transport
    /// returns rows, `read_back` (reads only) is appended to the same request and its
    /// items come back too. `Err` means the request could not be made or judged.
    fn run(&mut self, sql: &str, read_back: Option<&str>) -> anyhow::Result<Reply>;
    /// The xtask's bookkeeping (the lock row, reads of the state): like `run`, always with
    /// rows, by the fastest way the transport has (the local file directly).
    fn run_meta(&mut self, sql: &str) -> anyhow::Result<Reply> {
        self.run(sql, None)
    }
    /// Runs the SQL file `path` as one request, like `run` without rows, for a text the
    /// size of a database (remote: D1's import API, which streams the file).
    fn run_file(&mut self, path: &Path) -> anyhow::Result<Reply> {
        let sql = std::fs::read_to_string(path)
            .map_err(|e| crate::exit::failed!("cannot read {}: {e}", path.display()))?;
        self.run(&sql, None)
    }
    /// The wrangler argument list `run` would use for request `index` of `sql`, for
    /// `--dry-run`.
    fn command_for(&self, sql: &str, read_back: Option<&str>, index: usize) -> Vec<String>;
    /// A read-only query; each row of its last statement a JSON object keyed by column.
    fn query(&mut self, sql: &str) -> anyhow::Result<Vec<serde_json::Value>>;
    /// The tracking table, checksums, schema and lock as the database holds them now.
    fn state(&mut self) -> anyhow::Result<State> {
        ops::read_state(self)
    }
    /// Captures the current state: a bookmark, or a snapshot written to `scratch`.
    fn restore_point(&mut self, scratch: &Path) -> anyhow::Result<RestorePoint>;
    /// The Time Travel bookmark of the state at an instant (RFC 3339, UTC).
    fn bookmark_at(&mut self, _rfc3339: &str) -> anyhow::Result<String> {
        Err(ops::no_bookmarks())
    }
    /// Returns the database to `point` in place; the bookmark Time Travel reports as the
    /// one before, where there is one.
    fn return_to(&mut self, point: &RestorePoint) -> anyhow::Result<Option<String>>;
    /// A backup written to `scratch`: a snapshot (local) or an export (remote).
    fn backup(&mut self, scratch: &Path) -> anyhow::Result<BackupMade>;
    /// A private copy of the database with its rows, where one is cheap (the local file),
    /// to tell which migration of a failed batch broke it.
    fn copy(&self) -> Option<rusqlite::Connection> {
        None
    }
    /// The local SQLite file, where there is one the xtask reads directly.
    fn local_file(&self) -> Option<PathBuf> {
        None
    }
    /// wrangler processes started so far.
    fn wrangler_calls(&self) -> usize;

    /// Makes sure the transport can run (wrangler found, its Node new enough) before a
    /// command writes anything: a restore point, an index entry or a file.
    fn ready(&mut self) -> anyhow::Result<()> {
        Ok(())
    }

    /// `PATH` for the commands the xtask runs for the user: the transport's wrangler and
    /// its Node first (`None`: leave `PATH` as it is).
    fn child_path(&self) -> Option<std::ffi::OsString> {
        None
    }
}

/// The schema `migrations` make on an empty database, replayed in memory (each file in
/// its own transaction, as wrangler runs them); `Err((file, error))` names the first that
/// fails.
pub(crate) fn replayed_schema(
    table: &str,
    migrations: &[&Migration],
) -> Result<Vec<SchemaObject>, (String, String)> {
    let in_memory = |e: rusqlite::Error| ("(in-memory database)".to_string(), e.to_string());
    let conn = rusqlite::Connection::open_in_memory().map_err(in_memory)?;
    if let Some(failed) = replay(&conn, table, migrations) {
        return Err(failed);
    }
    local::read_state(&conn, table)
        .map(|state| state.schema)
        .map_err(in_memory)
}

pub(crate) fn open(project: &Project, target: &Target) -> anyhow::Result<Box<dyn Database>> {
    // Request files half-written by a run that was killed: gone before this run writes any.
    crate::backups::remove_leftovers(&project.scratch_dir());
    match &target.env {
        Env::Local => Ok(Box::new(local::Local::new(project, target))),
        Env::Remote(_) => Ok(Box::new(remote::Remote::new(project, target))),
    }
}

/// wrangler's tracking table, created exactly as wrangler creates it, so that
/// `wrangler d1 migrations list` and the xtask read the same rows.
pub(crate) fn create_tracking_table_sql(table: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {}(\n\t\tid         INTEGER PRIMARY KEY AUTOINCREMENT,\n\t\tname       TEXT UNIQUE,\n\t\tapplied_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP NOT NULL\n);",
        quote_ident(table)
    )
}

/// The row wrangler inserts after a migration file, byte for byte the same statement.
pub(crate) fn tracking_insert_sql(table: &str, name: &str) -> String {
    format!(
        "INSERT INTO {} (name)\nvalues ({});",
        quote_ident(table),
        quote_string(name)
    )
}

pub(crate) fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

pub(crate) fn quote_string(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The SQL of one request applying `migrations` in order, each followed by its tracking
/// row and its checksum, preceded by the tables' creation, followed by the `extras`.
pub(crate) fn batch_sql(table: &str, migrations: &[&Migration], extras: &Extras) -> String {
    let mut sql = create_tracking_table_sql(table);
    sql.push('\n');
    sql.push_str(&meta_tables_sql(table));
    sql.push('\n');
    let total = migrations.len();
    for (i, m) in migrations.iter().enumerate() {
        // Comments keep a failing batch readable; D1 ignores them.
        sql.push_str(&format!(
            "-- xtask: migration {} of {total}: {}\n",
            i + 1,
            m.name.replace('\n', " ")
        ));
        sql.push_str(&m.sql);
        // A trailing `-- comment` without a newline would swallow what follows.
        sql.push('\n');
        if m.facts.unterminated_tail {
            sql.push_str(";\n");
        }
        if m.facts.leaves_fk_deferred {
            // wrangler gives each file its own transaction, which ends the deferral; in one
            // request the next file would inherit it.
            sql.push_str("PRAGMA defer_foreign_keys = false;\n");
        }
        sql.push_str(&tracking_insert_sql(table, &m.name));
        sql.push('\n');
        sql.push_str(&checksum_upsert_sql(table, &m.name, &m.sha256, "applied"));
        sql.push('\n');
    }
    for (name, sha) in &extras.first_sight {
        sql.push_str(&checksum_upsert_sql(table, name, sha, "first-sight"));
        sql.push('\n');
    }
    if let Some(tokens) = &extras.release {
        sql.push_str(&lock_release_sql(table, tokens));
        sql.push('\n');
    }
    sql
}

/// One request that reads the whole state (and takes the lock first when `lock` is given):
/// the tables are created if missing, as `wrangler d1 migrations list` does; the last four
/// statements are the reads.
pub(crate) fn state_request_sql(table: &str, lock: Option<&LockRow>) -> String {
    let mut sql = create_tracking_table_sql(table);
    sql.push('\n');
    sql.push_str(&meta_tables_sql(table));
    sql.push('\n');
    if let Some(row) = lock {
        sql.push_str(&lock_insert_sql(table, row));
        sql.push('\n');
    }
    sql.push_str(&format!(
        "SELECT id, name, applied_at FROM {} ORDER BY id;\n{SCHEMA_SQL};\n{};\n{};",
        quote_ident(table),
        checksums_select_sql(table),
        lock_select_sql(table)
    ));
    sql
}

/// The rows of one result item (`{"results": [...], "success": true}`).
pub(crate) fn result_rows(item: Option<&serde_json::Value>) -> Vec<serde_json::Value> {
    item.and_then(|i| i["results"].as_array().cloned())
        .unwrap_or_default()
}

/// The state from the result items of `state_request_sql`.
pub(crate) fn state_from_items(items: &[serde_json::Value]) -> Option<State> {
    if items.len() < 4 || items.iter().any(|i| i["success"] != true) {
        return None;
    }
    let n = items.len();
    let rows = |i: usize| {
        items[i]["results"]
            .as_array()
            .map_or(&[][..], |v| v.as_slice())
    };
    let mut state = rows_to_state(&items[n - 4]);
    state.schema = schema_from_rows(rows(n - 3));
    state.checksums = rows(n - 2)
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap_or_default().to_string(),
                r["sha256"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    state.lock = rows(n - 1).first().map(lock_from_json);
    Some(state)
}

/// The reply of `wrangler d1 execute ... --command <sql> --json`: its result items when
/// wrangler exited 0 and D1 reported success for every statement (wrangler can exit 0 on a
/// failed statement: anything else is a failure, in words).
pub(crate) fn command_reply(run: &crate::wrangler::Run) -> Reply {
    if !run.success {
        return Err(run.error_text());
    }
    let items = execute_items(&run.stdout).unwrap_or_default();
    if items.is_empty() || items.iter().any(|i| i["success"] != true) {
        return Err("wrangler exited 0, but D1 did not report success for every statement".into());
    }
    Ok(Some(items))
}

/// Whether D1's error is the lock's primary key refusing a second holder.
pub(crate) fn is_lock_conflict(error: &str, table: &str) -> bool {
    error.contains("UNIQUE constraint failed") && error.contains(&lock_table(table))
}

/// The result items of `wrangler d1 execute --command ... --json`: one per statement.
pub(crate) fn execute_items(stdout: &str) -> anyhow::Result<Vec<serde_json::Value>> {
    let start = stdout.find('[').unwrap_or(0);
    let value: serde_json::Value = serde_json::from_str(stdout[start..].trim()).map_err(|e| {
        crate::exit::failed!(
            "wrangler's --json output is not JSON ({e}): {}",
            crate::ui::redact(stdout.trim())
        )
    })?;
    match value {
        serde_json::Value::Array(items) => Ok(items),
        other => Err(crate::exit::failed!(
            "wrangler's --json output is not a list of results: {other}"
        )),
    }
}

/// Tracking rows from one result item (`SELECT id, name, applied_at ...`).
pub(crate) fn rows_to_state(item: &serde_json::Value) -> State {
    let applied = item["results"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|row| AppliedRow {
            id: row["id"].as_i64().unwrap_or_default(),
            name: row["name"].as_str().unwrap_or_default().to_string(),
            applied_at: row["applied_at"].as_str().unwrap_or_default().to_string(),
        })
        .collect();
    State {
        applied,
        ..State::default()
    }
}

/// Replays migrations on `conn` (a copy of the database, or its schema alone), each in
/// its own transaction as wrangler would run them, and names the first that fails.
pub(crate) fn replay(
    conn: &rusqlite::Connection,
    table: &str,
    migrations: &[&Migration],
) -> Option<(String, String)> {
    conn.execute_batch(&format!(
        "PRAGMA foreign_keys = ON;\n{}",
        create_tracking_table_sql(table)
    ))
    .ok()?;
    // D1's limits and authorizer, so that a file fails here where it fails on D1 (a
    // refused function or PRAGMA, a statement too long); transactions are the replay's own.
    d1_rules::apply_limits(conn).ok()?;
    for m in migrations {
        conn.execute_batch("BEGIN;").ok()?;
        let ran = d1_rules::authorized(conn, || conn.execute_batch(&m.sql)).and_then(|()| {
            conn.execute_batch(&format!(
                "{};\nCOMMIT;",
                tracking_insert_sql(table, &m.name)
            ))
        });
        if let Err(e) = ran {
            let _ = conn.execute_batch("ROLLBACK;");
            return Some((m.name.clone(), e.to_string()));
        }
    }
    None
}

/// Schema objects from the rows of `SCHEMA_SQL`, however they were read.
pub(crate) fn schema_from_rows(rows: &[serde_json::Value]) -> Vec<SchemaObject> {
    rows.iter()
        .map(|o| SchemaObject {
            kind: o["type"].as_str().unwrap_or_default().into(),
            name: o["name"].as_str().unwrap_or_default().into(),
            table: o["tbl_name"].as_str().unwrap_or_default().into(),
            sql: o["sql"].as_str().unwrap_or_default().into(),
        })
        .collect()
}

/// Row counts of `tables`: one row with a column per table, at most `COUNTS_PER_QUERY`
/// tables a query (D1 allows 100 columns; a `UNION ALL` would stop at five terms).
pub(crate) fn row_counts(
    db: &mut dyn Database,
    tables: &[&str],
) -> anyhow::Result<Vec<(String, i64)>> {
    let mut out = Vec::new();
    for chunk in tables.chunks(COUNTS_PER_QUERY) {
        let sql = row_counts_sql(chunk);
        let rows = db.query(&sql)?;
        let row = rows.first();
        for (i, t) in chunk.iter().enumerate() {
            let n = row.and_then(|r| r[format!("n{i}")].as_i64()).unwrap_or(0);
            out.push((t.to_string(), n));
        }
    }
    Ok(out)
}

/// Tables counted in one query.
pub(crate) const COUNTS_PER_QUERY: usize = 50;

/// `SELECT (SELECT count(*) FROM "a") AS n0, ...`: no compound SELECT at all.
pub(crate) fn row_counts_sql(tables: &[&str]) -> String {
    let columns: Vec<String> = tables
        .iter()
        .enumerate()
        .map(|(i, t)| format!("(SELECT count(*) FROM {}) AS n{i}", quote_ident(t)))
        .collect();
    format!("SELECT {}", columns.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrations::lint::FileFacts;
    use std::path::PathBuf;

    fn migration(name: &str, sql: &str, facts: FileFacts) -> Migration {
        Migration {
            number: 1,
            name: name.into(),
            path: PathBuf::from(name),
            sql: sql.into(),
            sha256: String::new(),
            facts,
        }
    }

    use super::schema::tests::schema;

    #[test]
    fn parses_execute_json() {
        let out = r#"[{"results":[],"success":true},{"results":[{"id":1,"name":"0001_a.sql","applied_at":"2026-11-22 00:19:28"}],"success":true}]"#;
        let items = execute_items(out).unwrap();
        let state = rows_to_state(items.last().unwrap());
        assert_eq!(state.applied[0].name, "0001_a.sql");
        assert!(execute_items("{\"error\": 1}").is_err());
    }

    #[test]
    fn tracking_sql_matches_wrangler_and_quotes() {
        assert_eq!(
            tracking_insert_sql("d1_migrations", "0001_a.sql"),
            "INSERT INTO \"d1_migrations\" (name)\nvalues ('0001_a.sql');"
        );
        assert_eq!(
            tracking_insert_sql("odd\"table", "0002_o'brien.sql"),
            "INSERT INTO \"odd\"\"table\" (name)\nvalues ('0002_o''brien.sql');"
        );
        assert!(create_tracking_table_sql("d1_migrations")
            .starts_with("CREATE TABLE IF NOT EXISTS \"d1_migrations\"(\n\t\tid "));
    }

    #[test]
    fn batch_terminates_files_and_resets_deferral() {
        let a = migration(
            "0001_a.sql",
            "CREATE TABLE a(x) -- no semicolon",
            FileFacts {
                unterminated_tail: true,
                leaves_fk_deferred: false,
            },
        );
        let b = migration(
            "0002_b.sql",
            "PRAGMA defer_foreign_keys = true;\nDROP TABLE a;",
            FileFacts {
                unterminated_tail: false,
                leaves_fk_deferred: true,
            },
        );
        let sql = batch_sql("d1_migrations", &[&a, &b], &Extras::default());
        let split = crate::migrations::sql::split(&sql);
        assert!(split.unclosed.is_none());
        let texts: Vec<&str> = split.statements.iter().map(|s| s.text(&sql)).collect();
        assert_eq!(texts.len(), 11, "{texts:#?}");
        assert!(texts[3].starts_with("CREATE TABLE a(x) -- no semicolon\n;"));
        assert_eq!(
            texts[4],
            "INSERT INTO \"d1_migrations\" (name)\nvalues ('0001_a.sql');"
        );
        assert!(texts[5].starts_with("INSERT INTO \"d1_migrations_checksums\""));
        assert_eq!(texts[8], "PRAGMA defer_foreign_keys = false;");
        assert_eq!(
            texts[9],
            "INSERT INTO \"d1_migrations\" (name)\nvalues ('0002_b.sql');"
        );
        // It runs on SQLite: both files, both tracking rows, both checksums.
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(&sql.replace("DROP TABLE a;", "DROP TABLE IF EXISTS a;"))
            .unwrap();
        let n: i64 = conn
            .query_row("SELECT count(*) FROM d1_migrations_checksums", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(n, 2);
    }

    #[test]
    fn row_counts_stay_within_d1_limits_and_internal_names_are_prefixes() {
        let tables: Vec<String> = (0..7).map(|i| format!("t{i}")).collect();
        let refs: Vec<&str> = tables.iter().map(String::as_str).collect();
        let sql = row_counts_sql(&refs);
        assert!(!sql.contains("UNION"), "{sql}");
        let conn = crate::migrations::lint::d1_connection().unwrap();
        for t in &tables {
            conn.execute_batch(&format!("CREATE TABLE {t}(x); INSERT INTO {t} VALUES (1);"))
                .unwrap();
        }
        let n: i64 = conn.query_row(&sql, [], |r| r.get(6)).unwrap();
        assert_eq!(n, 1);
        let s = schema(&[
            "CREATE TABLE xcf_notes(x)",
            "CREATE TABLE _cf_KV(k)",
            "CREATE TABLE a_cf_b(x)",
        ]);
        let names: Vec<&str> = s.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, ["xcf_notes", "a_cf_b"]);
        assert!(
            is_internal("_CF_x") && is_internal("sqlite_sequence") && !is_internal("xcf_notes")
        );
    }
}
