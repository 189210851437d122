//! wrangler's local D1: state read straight from its SQLite file (no wrangler process),
//! changes made through `wrangler d1 execute --local` so that D1's own rules apply.

use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use rusqlite::{Connection, OpenFlags, MAIN_DB};
use sha2::{Digest, Sha256};

use super::{quote_ident, AppliedRow, BackupMade, Database, Reply, RestorePoint, State};
use crate::exit::{failed, usage};
use crate::ui;
use crate::workspace::project::Project;
use crate::workspace::target::{self, Target};
use crate::wrangler::{Lazy, Wrangler};

/// The folder wrangler 4 (miniflare, state version 3) keeps local D1 databases in.
const D1_OBJECT_DIR: &str = "v3/d1/miniflare-D1DatabaseObject";

/// The file name miniflare gives a local D1 database: a keyed hash of the id it is
/// stored under (`preview_database_id`, else `database_id`, else the binding).
pub(crate) fn local_db_file_name(db: &target::Database) -> String {
    let name = db
        .preview_id
        .as_deref()
        .or(db.id.as_deref())
        .unwrap_or(&db.binding);
    let key = Sha256::digest(b"miniflare-D1DatabaseObject");
    let mac = |data: &[u8]| -> [u8; 16] {
        let mut m = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes keys of any length");
        m.update(data);
        let full = m.finalize().into_bytes();
        let mut out = [0u8; 16];
        out.copy_from_slice(&full[..16]);
        out
    };
    let a = mac(name.as_bytes());
    let b = mac(&a);
    a.iter()
        .chain(b.iter())
        .map(|x| format!("{x:02x}"))
        .collect::<String>()
        + ".sqlite"
}

/// Where the state is read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Layout {
    /// The SQLite file wrangler writes (it need not exist yet: then the database is empty).
    Direct(PathBuf),
    /// The persistence folder is not laid out as expected: ask wrangler, and say why once.
    ViaWrangler(String),
}

pub(crate) fn detect_layout(state_dir: &Path, db: &target::Database) -> Layout {
    let file = state_dir.join(D1_OBJECT_DIR).join(local_db_file_name(db));
    if state_dir.join("v3").is_dir() || !state_dir.is_dir() {
        return Layout::Direct(file);
    }
    let others: Vec<String> = std::fs::read_dir(state_dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    if others.is_empty() {
        Layout::Direct(file)
    } else {
        Layout::ViaWrangler(format!(
            "{} holds {} but not the v3 layout this xtask reads",
            state_dir.display(),
            others.join(", ")
        ))
    }
}

pub(crate) struct Local {
    project: Project,
    target: Target,
    layout: Layout,
    wrangler: Lazy,
    said_fallback: bool,
    /// Requests sent through a batch file so far (each gets a file of its own).
    requests: usize,
}

impl Local {
    pub(crate) fn new(project: &Project, target: &Target) -> Local {
        Local {
            layout: detect_layout(&project.local_state_dir(), &target.db),
            project: project.clone(),
            target: target.clone(),
            wrangler: Lazy::new(project),
            said_fallback: false,
            requests: 0,
        }
    }

    /// A local database of another (scratch) workspace, run with this workspace's wrangler.
    pub(crate) fn with_wrangler(project: &Project, target: &Target, wrangler: Wrangler) -> Local {
        Local {
            wrangler: Lazy::with(project, wrangler),
            ..Local::new(project, target)
        }
    }

    /// A scratch local D1 database in `root` (a `wrangler.jsonc` of its own naming one
    /// database `name`), read with `like`'s migrations folder and tables, run by
    /// `wrangler`: where a rehearsal or a test template is built, away from the
    /// workspace's own local database.
    pub(crate) fn scratch(
        root: &Path,
        name: &str,
        like: &Target,
        wrangler: Wrangler,
    ) -> anyhow::Result<Local> {
        let config_path = root.join("wrangler.jsonc");
        let config = serde_json::json!({
            "name": name,
            "d1_databases": [{"binding": "DB", "database_name": name, "database_id": name}],
        });
        std::fs::write(&config_path, format!("{config}\n"))
            .map_err(|e| failed!("cannot write {}: {e}", config_path.display()))?;
        let project = Project::at(root.to_path_buf(), config_path.clone());
        let target = Target {
            env: crate::workspace::target::Env::Local,
            db: crate::workspace::target::Database {
                binding: "DB".into(),
                name: Some(name.into()),
                id: Some(name.into()),
                preview_id: None,
                migrations_dir: like.db.migrations_dir.clone(),
                migrations_pattern: like.db.migrations_pattern.clone(),
                migrations_table: like.db.migrations_table.clone(),
            },
            protected: false,
            config_path,
        };
        Ok(Local::with_wrangler(&project, &target, wrangler))
    }

    fn read_file(&self, path: &Path) -> anyhow::Result<State> {
        if !path.exists() {
            return Ok(State::default());
        }
        let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| failed!("cannot open the local D1 file {}: {e}", path.display()))?;
        let _ = conn.busy_timeout(std::time::Duration::from_secs(10));
        read_state(&conn, &self.target.db.migrations_table).map_err(|e| {
            failed!(
                "cannot read the tracking table from {}: {e}",
                path.display()
            )
        })
    }

    /// `execute --command <sql> --json` through wrangler: the result items.
    fn command(&mut self, sql: &str) -> anyhow::Result<Reply> {
        let mut args = self.target.d1_args(&["execute"]);
        args.extend(crate::wrangler::json_command_args(sql));
        let run = self.wrangler.run(&args)?;
        Ok(super::command_reply(&run))
    }

    fn db_file(&self) -> Option<&Path> {
        match &self.layout {
            Layout::Direct(p) => Some(p),
            Layout::ViaWrangler(_) => None,
        }
    }

    fn batch_file(&self, index: usize) -> PathBuf {
        self.project
            .scratch_dir()
            .join(format!("batch-{}-{index}.sql", std::process::id()))
    }

    fn open_rw(&self, path: &Path) -> anyhow::Result<Connection> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| failed!("cannot create {}: {e}", dir.display()))?;
        }
        let conn = Connection::open(path)
            .map_err(|e| failed!("cannot open the local D1 file {}: {e}", path.display()))?;
        let _ = conn.busy_timeout(std::time::Duration::from_secs(10));
        Ok(conn)
    }

    /// A consistent copy of the local file at `dest` (SQLite's online backup API, so it is
    /// safe while `wrangler dev` writes); an empty database if there is no file yet.
    fn snapshot(&self, dest: &Path) -> anyhow::Result<()> {
        let source = match self.db_file() {
            Some(p) if p.exists() => Connection::open_with_flags(p, OpenFlags::SQLITE_OPEN_READ_ONLY)
                .map_err(|e| failed!("cannot open the local D1 file {}: {e}", p.display()))?,
            Some(_) => Connection::open_in_memory().map_err(|e| failed!("cannot snapshot: {e}"))?,
            None => {
                return Err(usage!(
                    "cannot snapshot the local database: its state is not in the layout this xtask reads; \
                     pass --no-backup to go on without a restore point"
                ))
            }
        };
        let _ = source.busy_timeout(std::time::Duration::from_secs(10));
        source.backup(MAIN_DB, dest, None).map_err(|e| {
            failed!(
                "snapshot of the local database to {} failed: {e}",
                dest.display()
            )
        })?;
        // The copy keeps the source's WAL mode in its header: a snapshot is one file, so
        // that reading it (the check before it is recorded) leaves no -wal/-shm beside it.
        Connection::open(dest)
            .and_then(|c| {
                c.query_row("PRAGMA journal_mode = DELETE", [], |r| {
                    r.get::<_, String>(0)
                })
            })
            .map_err(|e| failed!("snapshot {}: {e}", dest.display()))?;
        Ok(())
    }
}

/// Runs `sql` on the file as one `BEGIN IMMEDIATE` transaction, statement by statement
/// (SQLite's own split), with a result item per statement as D1 returns them; a failing
/// statement rolls all of it back. SQLite's locking makes this safe beside a running
/// `wrangler dev` (README, "How local state is found").
fn run_on_file(conn: &Connection, sql: &str) -> Reply {
    let split = crate::migrations::sql::split(sql);
    let attempt = (|| -> rusqlite::Result<Vec<serde_json::Value>> {
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let mut items = Vec::new();
        for stmt in &split.statements {
            let rows = rows_as_json(conn, stmt.text(sql))?;
            items.push(serde_json::json!({"results": rows, "success": true}));
        }
        conn.execute_batch("COMMIT")?;
        Ok(items)
    })();
    attempt.map(Some).map_err(|e| {
        let _ = conn.execute_batch("ROLLBACK");
        e.to_string()
    })
}

impl Database for Local {
    fn target(&self) -> &Target {
        &self.target
    }

    fn location(&self) -> String {
        match &self.layout {
            Layout::Direct(p) => p
                .strip_prefix(&self.project.root)
                .unwrap_or(p)
                .display()
                .to_string(),
            Layout::ViaWrangler(_) => "wrangler --local".into(),
        }
    }

    /// Through `wrangler d1 execute --local --file`, so that D1's own rules apply; it
    /// returns no rows (the caller reads the file).
    fn run(&mut self, sql: &str, _read_back: Option<&str>) -> anyhow::Result<Reply> {
        let scratch = self.batch_file(self.requests);
        self.requests += 1;
        std::fs::create_dir_all(self.project.scratch_dir()).map_err(|e| {
            failed!(
                "cannot create {}: {e}",
                self.project.scratch_dir().display()
            )
        })?;
        std::fs::write(&scratch, sql)
            .map_err(|e| failed!("cannot write {}: {e}", scratch.display()))?;
        let args = self.command_for(sql, None, self.requests - 1);
        let run = self.wrangler.run(&args);
        let _ = std::fs::remove_file(&scratch);
        let run = run?;
        Ok(if run.success {
            Ok(None)
        } else {
            Err(run.error_text())
        })
    }

    /// The lock row and state reads straight on the file, with no wrangler process; with
    /// another layout, through wrangler.
    fn run_meta(&mut self, sql: &str) -> anyhow::Result<Reply> {
        match self.db_file().map(Path::to_path_buf) {
            Some(path) => Ok(run_on_file(&self.open_rw(&path)?, sql)),
            None => self.command(sql),
        }
    }

    fn command_for(&self, _sql: &str, _read_back: Option<&str>, index: usize) -> Vec<String> {
        let mut args = self.target.d1_args(&["execute"]);
        args.extend([
            "--file".into(),
            self.batch_file(index).display().to_string(),
            "--json".into(),
        ]);
        args
    }

    fn query(&mut self, sql: &str) -> anyhow::Result<Vec<serde_json::Value>> {
        let Some(path) = self.db_file().map(Path::to_path_buf) else {
            return match self.command(sql)? {
                Ok(items) => Ok(super::result_rows(items.as_ref().and_then(|i| i.last()))),
                Err(e) => Err(failed!("query on the local database failed: {e}")),
            };
        };
        if !path.exists() {
            return Err(failed!(
                "the local database does not exist yet ({})",
                path.display()
            ));
        }
        let conn = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| failed!("cannot open the local D1 file {}: {e}", path.display()))?;
        let _ = conn.busy_timeout(std::time::Duration::from_secs(10));
        rows_as_json(&conn, sql).map_err(|e| failed!("query on {} failed: {e}", path.display()))
    }

    /// Read-only from the file (a missing file or table is an empty state, and nothing is
    /// created); with another layout, through wrangler, said once.
    fn state(&mut self) -> anyhow::Result<State> {
        match self.layout.clone() {
            Layout::Direct(path) => self.read_file(&path),
            Layout::ViaWrangler(why) => {
                if !self.said_fallback {
                    ui::say(format!(
                        "note: {why}; reading the local state through wrangler instead (slower)"
                    ));
                    self.said_fallback = true;
                }
                super::ops::read_state(self)
            }
        }
    }

    fn restore_point(&mut self, scratch: &Path) -> anyhow::Result<RestorePoint> {
        self.snapshot(scratch)?;
        Ok(RestorePoint::Snapshot(scratch.to_path_buf()))
    }

    fn return_to(&mut self, point: &RestorePoint) -> anyhow::Result<Option<String>> {
        let RestorePoint::Snapshot(file) = point else {
            return Err(super::ops::no_bookmarks());
        };
        let Some(db_file) = self.db_file().map(Path::to_path_buf) else {
            return Err(usage!(
                "cannot restore a snapshot here: the local state is not in the layout this xtask reads"
            ));
        };
        let mut conn = self.open_rw(&db_file)?;
        conn.restore(MAIN_DB, file, None::<fn(rusqlite::backup::Progress)>)
            .map_err(|e| {
                failed!(
                    "restoring {} into {} failed: {e}; SQLite's backup API changes all or nothing, \
                     so the local database is as it was",
                    file.display(),
                    db_file.display()
                )
            })?;
        Ok(None)
    }

    fn backup(&mut self, scratch: &Path) -> anyhow::Result<BackupMade> {
        self.snapshot(scratch)?;
        Ok(BackupMade::Snapshot)
    }

    fn copy(&self) -> Option<Connection> {
        let mut copy = Connection::open_in_memory().ok()?;
        if let Some(path) = self.db_file().filter(|p| p.exists()) {
            let src = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).ok()?;
            let backup = rusqlite::backup::Backup::new(&src, &mut copy).ok()?;
            backup
                .run_to_completion(256, std::time::Duration::ZERO, None)
                .ok()?;
        }
        Some(copy)
    }

    fn local_file(&self) -> Option<PathBuf> {
        self.db_file().map(Path::to_path_buf)
    }

    fn wrangler_calls(&self) -> usize {
        self.wrangler.calls()
    }

    fn ready(&mut self) -> anyhow::Result<()> {
        self.wrangler.ready()
    }

    fn child_path(&self) -> Option<std::ffi::OsString> {
        self.wrangler.child_path()
    }
}

/// Every row of `sql` as a JSON object keyed by column name.
pub(crate) fn rows_as_json(
    conn: &Connection,
    sql: &str,
) -> rusqlite::Result<Vec<serde_json::Value>> {
    use rusqlite::types::ValueRef;
    let mut stmt = conn.prepare(sql)?;
    let names: Vec<String> = stmt.column_names().iter().map(|c| c.to_string()).collect();
    let mut rows = stmt.raw_query();
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let mut obj = serde_json::Map::new();
        for (i, name) in names.iter().enumerate() {
            let v = match row.get_ref(i)? {
                ValueRef::Null => serde_json::Value::Null,
                ValueRef::Integer(n) => serde_json::json!(n),
                ValueRef::Real(f) => serde_json::json!(f),
                ValueRef::Text(t) => {
                    serde_json::Value::String(String::from_utf8_lossy(t).into_owned())
                }
                ValueRef::Blob(b) => serde_json::json!(b),
            };
            obj.insert(name.clone(), v);
        }
        out.push(serde_json::Value::Object(obj));
    }
    Ok(out)
}

/// Reads the tracking table through a connection; a missing table is an empty state.
pub(crate) fn read_state(conn: &Connection, table: &str) -> rusqlite::Result<State> {
    let exists: bool = conn.query_row(
        "SELECT EXISTS(SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1)",
        [table],
        |row| row.get(0),
    )?;
    let mut schema_stmt = conn.prepare(super::SCHEMA_SQL)?;
    let schema = schema_stmt
        .query_map([], |r| {
            Ok(super::SchemaObject {
                kind: r.get(0)?,
                name: r.get(1)?,
                table: r.get(2)?,
                sql: r.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    if !exists {
        return Ok(State {
            schema,
            ..State::default()
        });
    }
    let mut stmt = conn.prepare(&format!(
        "SELECT id, name, CAST(applied_at AS TEXT) FROM {} ORDER BY id",
        quote_ident(table)
    ))?;
    let applied = stmt
        .query_map([], |row| {
            Ok(AppliedRow {
                id: row.get(0)?,
                name: row.get::<_, Option<String>>(1)?.unwrap_or_default(),
                applied_at: row.get::<_, Option<String>>(2)?.unwrap_or_default(),
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let has = |name: String| schema.iter().any(|o| o.kind == "table" && o.name == name);
    let checksums = if has(super::checksum_table(table)) {
        rows_as_json(conn, &super::checksums_select_sql(table))?
            .iter()
            .map(|r| {
                (
                    r["name"].as_str().unwrap_or_default().to_string(),
                    r["sha256"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    } else {
        Default::default()
    };
    let lock = if has(super::lock_table(table)) {
        rows_as_json(conn, &super::lock_select_sql(table))?
            .first()
            .map(super::lock_from_json)
    } else {
        None
    };
    Ok(State {
        applied,
        schema,
        checksums,
        lock,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(binding: &str, id: Option<&str>, preview: Option<&str>) -> target::Database {
        target::Database {
            binding: binding.into(),
            name: None,
            id: id.map(String::from),
            preview_id: preview.map(String::from),
            migrations_dir: PathBuf::new(),
            migrations_pattern: None,
            migrations_table: "d1_migrations".into(),
        }
    }

    #[test]
    fn local_file_names_match_what_wrangler_writes() {
        // Values read off the files wrangler 4.164 wrote (d1-facts.md).
        assert_eq!(
            local_db_file_name(&db(
                "DB",
                Some("00000000-0000-0000-0000-000000000001"),
                None
            )),
            "a36f84ea60804f30bb0c7f7cad9f5336a6cca0165abdab8b9241d93dbf0b6006.sqlite"
        );
        let preview = local_db_file_name(&db(
            "DB",
            Some("00000000-0000-0000-0000-000000000001"),
            Some("prev-1234"),
        ));
        assert!(
            preview.starts_with("70d32c55") && preview.ends_with("06d5c.sqlite"),
            "{preview}"
        );
        let binding_only = local_db_file_name(&db("ONLYBINDING", None, None));
        assert!(
            binding_only.starts_with("15eb30a5") && binding_only.ends_with("c8a5.sqlite"),
            "{binding_only}"
        );
    }

    #[test]
    fn layout_falls_back_on_an_unknown_state_version() {
        let dir = crate::testutil::TempDir::new("layout");
        let d = db("DB", Some("x"), None);
        assert!(matches!(
            detect_layout(&dir.path().join("missing"), &d),
            Layout::Direct(_)
        ));
        std::fs::create_dir_all(dir.path().join("v4")).unwrap();
        assert!(
            matches!(detect_layout(dir.path(), &d), Layout::ViaWrangler(w) if w.contains("v4"))
        );
        std::fs::create_dir_all(dir.path().join("v3")).unwrap();
        assert!(matches!(detect_layout(dir.path(), &d), Layout::Direct(_)));
    }

    #[test]
    fn reads_state_and_treats_a_missing_table_as_empty() {
        let conn = Connection::open_in_memory().unwrap();
        assert_eq!(
            read_state(&conn, "d1_migrations").unwrap(),
            State::default()
        );
        conn.execute_batch(&crate::d1::create_tracking_table_sql("d1_migrations"))
            .unwrap();
        conn.execute_batch(&crate::d1::tracking_insert_sql(
            "d1_migrations",
            "0001_a.sql",
        ))
        .unwrap();
        let state = read_state(&conn, "d1_migrations").unwrap();
        assert_eq!(state.applied.len(), 1);
        assert_eq!(state.applied[0].name, "0001_a.sql");
        assert_eq!(
            state.applied[0].applied_at.len(),
            "2026-11-22 00:19:28".len()
        );
    }
}
