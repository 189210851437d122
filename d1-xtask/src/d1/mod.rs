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

pub(crate) mod bookkeeping;
pub(crate) mod state;
pub(crate) mod template;

pub(crate) use bookkeeping::*;
pub(crate) use schema::{
    drop_all_sql, is_internal, replay, replayed_schema, row_counts, schema_copy, schema_from_rows,
    COUNTS_PER_QUERY, SCHEMA_SQL,
};
pub(crate) use state::*;

use std::path::{Path, PathBuf};

use crate::workspace::project::Project;
use crate::workspace::target::{Env, Target};

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

pub(crate) fn open(project: &Project, target: &Target) -> anyhow::Result<Box<dyn Database>> {
    // Request files half-written by a run that was killed: gone before this run writes any.
    crate::workspace::project::remove_leftovers(&project.scratch_dir());
    match &target.env {
        Env::Local => Ok(Box::new(local::Local::new(project, target))),
        Env::Remote(_) => Ok(Box::new(remote::Remote::new(project, target))),
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::d1::schema::row_counts_sql;
    use crate::migrations::lint::FileFacts;
    use crate::migrations::Migration;
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
