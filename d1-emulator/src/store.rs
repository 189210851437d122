//! Databases on disk: one SQLite file each, D1's query semantics, Time Travel bookmarks
//! as snapshots taken after every committed write, and export in wrangler's dump format.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use md5::{Digest, Md5};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, MAIN_DB};
use serde_json::{json, Map, Value};

use crate::{rules, sqltext};

/// The service's rules of time and rate (d1-as-it-is.md, section 7).
#[derive(Clone, Debug)]
pub struct Rules {
    /// A request's statements must finish within this (D1: 30 s for a whole batch).
    pub request_timeout_ms: u64,
    /// How far back Time Travel reaches (30 days on paid plans, 7 on free).
    pub retention_days: i64,
    /// At most this many restores per database within `restore_window_ms` (D1: 10 in 10 min).
    pub max_restores: usize,
    pub restore_window_ms: i64,
}

impl Default for Rules {
    fn default() -> Rules {
        Rules {
            request_timeout_ms: 30_000,
            retention_days: 30,
            max_restores: 10,
            restore_window_ms: 10 * 60 * 1000,
        }
    }
}

/// D1's text when a request runs past its time limit.
pub const TIMEOUT_MESSAGE: &str =
    "D1 DB storage operation exceeded timeout which caused object to be reset: SQLITE_INTERRUPT";

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

pub fn md5_hex(bytes: &[u8]) -> String {
    Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[derive(Clone, Debug)]
pub struct Bookmark {
    pub id: String,
    pub seq: u64,
    pub at_ms: i64,
}

pub struct Db {
    pub uuid: String,
    pub name: String,
    pub created_ms: i64,
    dir: PathBuf,
    conn: Connection,
    bookmarks: Vec<Bookmark>,
    rules: Rules,
    /// When the recent restores happened (Unix ms), for the rate limit.
    restores: Vec<i64>,
}

/// A failed request: D1's error text (`<message>: SQLITE_<CODE>`).
#[derive(Debug)]
pub struct SqlError(pub String);

fn code_name(code: rusqlite::ffi::ErrorCode) -> &'static str {
    use rusqlite::ffi::ErrorCode as C;
    match code {
        C::ConstraintViolation => "SQLITE_CONSTRAINT",
        C::TooBig => "SQLITE_TOOBIG",
        C::AuthorizationForStatementDenied => "SQLITE_AUTH",
        C::TypeMismatch => "SQLITE_MISMATCH",
        C::DatabaseBusy => "SQLITE_BUSY",
        C::ReadOnly => "SQLITE_READONLY",
        C::ApiMisuse => "SQLITE_MISUSE",
        C::OutOfMemory => "SQLITE_NOMEM",
        C::OperationInterrupted => "SQLITE_INTERRUPT",
        _ => "SQLITE_ERROR",
    }
}

fn sql_error(e: rusqlite::Error) -> SqlError {
    match &e {
        // D1 adds where SQLite saw the problem (workers-sdk #6348).
        rusqlite::Error::SqlInputError {
            error, msg, offset, ..
        } => SqlError(format!(
            "{msg} at offset {offset}: {}",
            code_name(error.code)
        )),
        rusqlite::Error::SqliteFailure(f, _)
            if f.code == rusqlite::ffi::ErrorCode::OperationInterrupted =>
        {
            SqlError(TIMEOUT_MESSAGE.into())
        }
        rusqlite::Error::SqliteFailure(f, Some(msg)) => {
            SqlError(format!("{msg}: {}", code_name(f.code)))
        }
        rusqlite::Error::SqliteFailure(f, None) => SqlError(format!("{f}: {}", code_name(f.code))),
        other => SqlError(format!("{other}: SQLITE_ERROR")),
    }
}

fn cell(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => json!(i),
        ValueRef::Real(f) => json!(f),
        ValueRef::Text(t) => Value::String(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Array(b.iter().map(|x| json!(x)).collect()),
    }
}

/// How a request's statements were run.
#[derive(Debug)]
pub struct Executed {
    /// One D1 result object per statement.
    pub items: Vec<Value>,
    pub changed: bool,
    pub duration_ms: f64,
    pub rows_read: u64,
    pub rows_written: u64,
}

impl Db {
    fn open(dir: &Path, uuid: &str, name: &str, rules: &Rules) -> rusqlite::Result<Db> {
        let conn = Connection::open(dir.join(format!("{uuid}.sqlite")))?;
        // D1 always enforces foreign keys; inside a request's transaction SQLite ignores
        // attempts to switch them off, as D1 does. Every D1 database has its own `_cf_KV`.
        conn.execute_batch(
            "PRAGMA foreign_keys = ON; PRAGMA journal_mode = DELETE; \
             CREATE TABLE IF NOT EXISTS _cf_KV (key TEXT PRIMARY KEY, value BLOB) WITHOUT ROWID;",
        )?;
        rules::apply_limits(&conn)?;
        let meta_path = dir.join(format!("{uuid}.meta.json"));
        let meta: Option<Value> = std::fs::read(&meta_path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let mut db = Db {
            uuid: uuid.to_string(),
            name: name.to_string(),
            created_ms: now_ms(),
            dir: dir.to_path_buf(),
            conn,
            bookmarks: Vec::new(),
            rules: rules.clone(),
            restores: Vec::new(),
        };
        if let Some(meta) = meta {
            db.name = meta["name"].as_str().unwrap_or(name).to_string();
            db.created_ms = meta["created_ms"].as_i64().unwrap_or(db.created_ms);
            for b in meta["bookmarks"].as_array().into_iter().flatten() {
                db.bookmarks.push(Bookmark {
                    id: b["id"].as_str().unwrap_or_default().to_string(),
                    seq: b["seq"].as_u64().unwrap_or_default(),
                    at_ms: b["at_ms"].as_i64().unwrap_or_default(),
                });
            }
        }
        if db.bookmarks.is_empty() {
            db.snapshot()
                .map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.0.into()))?;
        }
        Ok(db)
    }

    fn tt_dir(&self) -> PathBuf {
        self.dir.join(format!("{}.tt", self.uuid))
    }

    fn snapshot_file(&self, seq: u64) -> PathBuf {
        self.tt_dir().join(format!("{seq:08}.sqlite"))
    }

    fn save_meta(&self) {
        let meta = json!({
            "uuid": self.uuid,
            "name": self.name,
            "created_ms": self.created_ms,
            "bookmarks": self.bookmarks.iter().map(|b| json!({"id": b.id, "seq": b.seq, "at_ms": b.at_ms})).collect::<Vec<_>>(),
        });
        let _ = std::fs::write(
            self.dir.join(format!("{}.meta.json", self.uuid)),
            meta.to_string(),
        );
    }

    /// Records the current content as a new bookmark.
    fn snapshot(&mut self) -> Result<(), SqlError> {
        let seq = self.bookmarks.last().map_or(1, |b| b.seq + 1);
        let at_ms = now_ms().max(self.bookmarks.last().map_or(0, |b| b.at_ms));
        std::fs::create_dir_all(self.tt_dir()).map_err(|e| SqlError(e.to_string()))?;
        self.conn
            .backup(MAIN_DB, self.snapshot_file(seq), None)
            .map_err(sql_error)?;
        let pages: i64 = self
            .conn
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .unwrap_or(0);
        let hash = md5_hex(format!("{}:{seq}", self.uuid).as_bytes());
        let id = format!(
            "{seq:08x}-{:08x}-{:08x}-{hash}",
            pages as u32,
            (at_ms / 1000) as u32
        );
        self.bookmarks.push(Bookmark { id, seq, at_ms });
        self.save_meta();
        Ok(())
    }

    /// The folder the database's files live in.
    pub fn folder(&self) -> &Path {
        &self.dir
    }

    pub fn current_bookmark(&self) -> &Bookmark {
        self.bookmarks
            .last()
            .expect("a database always has its first bookmark")
    }

    /// The oldest instant Time Travel still reaches.
    fn retention_start(&self) -> i64 {
        now_ms() - self.rules.retention_days * 86_400_000
    }

    /// The bookmark of the state at `ms`: the newest one taken at or before it. Refused
    /// outside the retention window.
    pub fn bookmark_at(&self, ms: i64) -> Result<&Bookmark, SqlError> {
        if ms < self.retention_start() {
            return Err(SqlError(format!(
                "timestamp is older than the Time Travel retention period of {} days",
                self.rules.retention_days
            )));
        }
        Ok(self
            .bookmarks
            .iter()
            .rev()
            .find(|b| b.at_ms <= ms)
            .unwrap_or(&self.bookmarks[0]))
    }

    /// Restores the content of `bookmark` in place; returns the bookmark before the restore.
    /// Refused for a bookmark outside the retention window, and past the restore rate.
    pub fn restore(&mut self, bookmark: &str) -> Result<String, SqlError> {
        let target = self
            .bookmarks
            .iter()
            .find(|b| b.id == bookmark)
            .cloned()
            .ok_or_else(|| SqlError(format!("bookmark {bookmark} not found for this database")))?;
        if target.at_ms < self.retention_start() {
            return Err(SqlError(format!(
                "bookmark {bookmark} is older than the Time Travel retention period of {} days",
                self.rules.retention_days
            )));
        }
        let now = now_ms();
        let window = self.rules.restore_window_ms;
        self.restores.retain(|t| now - t < window);
        if self.restores.len() >= self.rules.max_restores {
            return Err(SqlError(format!(
                "too many restores: at most {} per {} minutes for a database",
                self.rules.max_restores,
                window / 60_000
            )));
        }
        self.restores.push(now);
        let previous = self.current_bookmark().id.clone();
        let file = self.snapshot_file(target.seq);
        self.conn
            .restore(MAIN_DB, &file, None::<fn(rusqlite::backup::Progress)>)
            .map_err(sql_error)?;
        let _ = self.conn.execute_batch("PRAGMA foreign_keys = ON;");
        self.snapshot()?;
        Ok(previous)
    }

    fn state_marker(&self) -> (u64, i64) {
        let schema: i64 = self
            .conn
            .query_row("PRAGMA schema_version", [], |r| r.get(0))
            .unwrap_or(0);
        (self.conn.total_changes(), schema)
    }

    pub fn size(&self) -> i64 {
        self.conn
            .query_row(
                "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
                [],
                |r| r.get(0),
            )
            .unwrap_or(0)
    }

    pub fn table_count(&self) -> i64 {
        self.conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' \
                 AND substr(name, 1, 7) <> 'sqlite_' AND lower(substr(name, 1, 4)) <> '_cf_'",
                [],
                |r| r.get(0),
            )
            .unwrap_or(0)
    }

    /// Runs a `/query` request: `sql` split as D1's server splits it, every statement in
    /// one transaction. With `commit == false` the work is rolled back (fault injection).
    pub fn execute(&mut self, sql: &str, commit: bool) -> Result<Executed, SqlError> {
        let statements = sqltext::split_d1_query(sql).map_err(SqlError)?;
        self.run_in_transaction(&statements, commit, None)
    }

    /// Runs an import (`execute --file`): the file split with SQLite's own rules, its
    /// statements one after another. On a failure (or an injected one after `fail_after`
    /// statements) the database goes back to its state before the import, as D1 does
    /// through Time Travel (#13272), which leaves a new bookmark. `PRAGMA
    /// defer_foreign_keys` spans the file: D1's own export starts with it so that an
    /// import may insert children before parents.
    pub fn import(&mut self, sql: &str, fail_after: Option<usize>) -> Result<Executed, SqlError> {
        let statements = sqltext::split(sql);
        let result = self.run_in_transaction(&statements, true, fail_after);
        if result.is_err() {
            self.snapshot()?;
        }
        result
    }

    fn run_in_transaction(
        &mut self,
        statements: &[&str],
        commit: bool,
        fail_after: Option<usize>,
    ) -> Result<Executed, SqlError> {
        let started = Instant::now();
        let before = self.state_marker();
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(sql_error)?;
        let deadline = started + std::time::Duration::from_millis(self.rules.request_timeout_ms);
        rules::set_authorizer(&self.conn, true);
        self.conn
            .progress_handler(1000, Some(move || Instant::now() > deadline));
        let result = self.run_statements(statements, fail_after);
        self.conn.progress_handler(0, None::<fn() -> bool>);
        rules::set_authorizer(&self.conn, false);
        let result = match result {
            Ok(r) if commit => match self.conn.execute_batch("COMMIT") {
                Ok(()) => Ok(r),
                Err(e) => {
                    let _ = self.conn.execute_batch("ROLLBACK");
                    Err(sql_error(e))
                }
            },
            other => {
                let _ = self.conn.execute_batch("ROLLBACK");
                other
            }
        };
        let (items, rows_read, rows_written) = result?;
        let changed = commit && self.state_marker() != before;
        if changed {
            self.snapshot()?;
        }
        Ok(Executed {
            items,
            changed,
            duration_ms: started.elapsed().as_secs_f64() * 1000.0,
            rows_read,
            rows_written,
        })
    }

    fn run_statements(
        &mut self,
        statements: &[&str],
        fail_after: Option<usize>,
    ) -> Result<(Vec<Value>, u64, u64), SqlError> {
        let mut items = Vec::new();
        let (mut total_read, mut total_written) = (0u64, 0u64);
        for (n, stmt_sql) in statements.iter().enumerate() {
            if fail_after == Some(n) {
                return Err(SqlError(
                    "Network connection lost (injected by d1-emulator in the middle of an import)"
                        .into(),
                ));
            }
            let started = Instant::now();
            let changes_before = self.conn.total_changes();
            let mut stmt = self.conn.prepare(stmt_sql).map_err(sql_error)?;
            let columns: Vec<String> = stmt.column_names().iter().map(|c| c.to_string()).collect();
            let readonly = stmt.readonly();
            let mut rows = stmt.raw_query();
            let mut results = Vec::new();
            while let Some(row) = rows.next().map_err(sql_error)? {
                let mut obj = Map::new();
                for (i, name) in columns.iter().enumerate() {
                    obj.insert(name.clone(), cell(row.get_ref(i).map_err(sql_error)?));
                }
                results.push(Value::Object(obj));
            }
            drop(rows);
            drop(stmt);
            let changes = self.conn.total_changes() - changes_before;
            total_read += results.len() as u64;
            total_written += changes;
            let ms = started.elapsed().as_secs_f64() * 1000.0;
            items.push(json!({
                "results": results,
                "success": true,
                "meta": {
                    "served_by": "d1-emulator",
                    "served_by_region": "LOCAL",
                    "served_by_primary": true,
                    "timings": { "sql_duration_ms": ms },
                    "duration": ms,
                    "changes": changes,
                    "last_row_id": self.conn.last_insert_rowid(),
                    "changed_db": !readonly,
                    "size_after": self.size(),
                    "rows_read": results.len(),
                    "rows_written": changes,
                },
            }));
        }
        Ok((items, total_read, total_written))
    }

    /// The database as SQL in the format of wrangler's local export: tables with their
    /// rows first, then indexes, triggers and views.
    pub fn dump(
        &self,
        no_schema: bool,
        no_data: bool,
        tables: &[String],
    ) -> Result<String, SqlError> {
        let mut out = vec!["PRAGMA defer_foreign_keys=TRUE;".to_string()];
        let mut stmt = self
            .conn
            .prepare(
                "SELECT name, sql FROM sqlite_schema WHERE type = 'table' AND sql NOT NULL \
                 ORDER BY tbl_name = 'sqlite_sequence', rowid",
            )
            .map_err(sql_error)?;
        let list: Vec<(String, String)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(sql_error)?
            .collect::<Result<_, _>>()
            .map_err(sql_error)?;
        for (table, sql) in list {
            if !tables.is_empty() && !tables.contains(&table) {
                continue;
            }
            if table == "sqlite_sequence" {
                if !no_schema {
                    out.push("DELETE FROM sqlite_sequence;".into());
                }
            } else if table.starts_with("sqlite_stat") {
                if !no_schema {
                    out.push("ANALYZE sqlite_schema;".into());
                }
            } else {
                if sql.starts_with("CREATE VIRTUAL TABLE") {
                    return Err(SqlError(
                        "D1 Export error: cannot export databases with Virtual Tables (fts5)"
                            .into(),
                    ));
                }
                if table.starts_with("_cf_") || table.starts_with("sqlite_") {
                    continue;
                }
                if !no_schema {
                    match sql.strip_prefix("CREATE TABLE ") {
                        Some(rest) if rest.starts_with('"') || rest.starts_with('\'') => {
                            out.push(format!("CREATE TABLE IF NOT EXISTS {rest};"))
                        }
                        _ => out.push(format!("{sql};")),
                    }
                }
            }
            if no_data {
                continue;
            }
            let quoted = quote_ident(&table);
            let columns: Vec<String> = self
                .conn
                .prepare(&format!(
                    "SELECT name FROM pragma_table_info({})",
                    quote_string(&table)
                ))
                .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
                .map_err(sql_error)?;
            let col_list = columns
                .iter()
                .map(|c| quote_ident(c))
                .collect::<Vec<_>>()
                .join(",");
            let mut rows_stmt = self
                .conn
                .prepare(&format!(
                    "SELECT {} FROM {quoted}",
                    columns
                        .iter()
                        .map(|c| quote_ident(c))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
                .map_err(sql_error)?;
            let mut rows = rows_stmt.raw_query();
            while let Some(row) = rows.next().map_err(sql_error)? {
                let mut cells = Vec::with_capacity(columns.len());
                for i in 0..columns.len() {
                    cells.push(sql_literal(row.get_ref(i).map_err(sql_error)?));
                }
                out.push(format!(
                    "INSERT INTO {quoted} ({col_list}) VALUES({});",
                    cells.join(",")
                ));
            }
        }
        if !no_schema {
            let mut stmt = self
                .conn
                .prepare(
                    "SELECT name, sql FROM sqlite_schema WHERE sql NOT NULL \
                     AND type IN ('index', 'trigger', 'view') ORDER BY type COLLATE NOCASE",
                )
                .map_err(sql_error)?;
            let rest: Vec<(String, String)> = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(sql_error)?
                .collect::<Result<_, _>>()
                .map_err(sql_error)?;
            for (name, sql) in rest {
                if tables.is_empty() || tables.contains(&name) {
                    out.push(format!("{sql};"));
                }
            }
        }
        Ok(out.join("\n"))
    }
}

fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn quote_string(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A value as an SQL literal, with newlines kept out of the line as the export does.
fn sql_literal(v: ValueRef<'_>) -> String {
    match v {
        ValueRef::Null => "NULL".into(),
        // D1's export writes numbers as JavaScript prints them: integers beyond 2^53 lose
        // precision (D1's import and export docs).
        ValueRef::Integer(i) if i.unsigned_abs() > 1 << 53 => format!("{}", i as f64),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(f) if f.is_finite() => format!("{f:?}"),
        ValueRef::Real(f) => if f > 0.0 { "9e999" } else { "-9e999" }.into(),
        ValueRef::Text(t) => {
            let s = String::from_utf8_lossy(t);
            let mut lit = quote_string(&s.replace('\n', "\\n").replace('\r', "\\r"));
            if s.contains('\r') {
                lit = format!("replace({lit},'\\r',char(13))");
            }
            if s.contains('\n') {
                lit = format!("replace({lit},'\\n',char(10))");
            }
            lit
        }
        ValueRef::Blob(b) => format!(
            "X'{}'",
            b.iter().map(|x| format!("{x:02x}")).collect::<String>()
        ),
    }
}

/// The account's databases. Those in use are open (at most `MAX_OPEN` at a time: a
/// fleet of thousands would otherwise run out of file descriptors); the others are known
/// by name and opened (or, for a fleet member never used, created) on first use.
pub struct Store {
    dir: PathBuf,
    dbs: BTreeMap<String, Db>,
    /// Known but not open: uuid -> (name, created_ms).
    closed: BTreeMap<String, (String, i64)>,
    rules: Rules,
}

/// Open databases kept at once.
const MAX_OPEN: usize = 128;

/// One database as the list API shows it.
pub struct Listed {
    pub uuid: String,
    pub name: String,
    pub created_ms: i64,
    pub num_tables: i64,
    pub file_size: i64,
}

/// A stable UUID for a fleet member's name (the same name, the same id, run after run).
pub fn uuid_for_name(name: &str) -> String {
    let h = md5_hex(format!("d1-emulator fleet {name}").as_bytes());
    format!(
        "{}-{}-4{}-8{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

impl Store {
    /// Opens the databases already in `dir` and those listed in `seeds` (uuid, name).
    pub fn open(dir: &Path, seeds: &[(String, String)], rules: &Rules) -> Result<Store, SqlError> {
        std::fs::create_dir_all(dir).map_err(|e| SqlError(format!("{}: {e}", dir.display())))?;
        let mut store = Store {
            dir: dir.to_path_buf(),
            dbs: BTreeMap::new(),
            closed: BTreeMap::new(),
            rules: rules.clone(),
        };
        for entry in std::fs::read_dir(dir)
            .map_err(|e| SqlError(e.to_string()))?
            .flatten()
        {
            let file = entry.file_name();
            let Some(uuid) = file.to_str().and_then(|n| n.strip_suffix(".meta.json")) else {
                continue;
            };
            let meta: Value = std::fs::read(entry.path())
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or(Value::Null);
            let name = meta["name"].as_str().unwrap_or(uuid).to_string();
            let created = meta["created_ms"].as_i64().unwrap_or_else(now_ms);
            store.closed.insert(uuid.to_string(), (name, created));
        }
        for (uuid, name) in seeds {
            store.get_or_create(uuid, Some(name))?;
        }
        Ok(store)
    }

    /// Adds `count` databases named `<prefix>0001`, `<prefix>0002`, ... (at least four
    /// digits), each with the UUID `uuid_for_name` gives. They are created on first use.
    pub fn add_fleet(&mut self, prefix: &str, count: usize) {
        let width = count.to_string().len().max(4);
        for i in 1..=count {
            let name = format!("{prefix}{i:0width$}");
            let uuid = uuid_for_name(&name);
            if !self.dbs.contains_key(&uuid) {
                self.closed.entry(uuid).or_insert((name, now_ms()));
            }
        }
    }

    pub fn get_or_create(&mut self, uuid: &str, name: Option<&str>) -> Result<&mut Db, SqlError> {
        if !self.dbs.contains_key(uuid) {
            let known = self.closed.remove(uuid);
            let default_name = known.as_ref().map_or(uuid, |(n, _)| n.as_str()).to_string();
            let mut db = Db::open(&self.dir, uuid, name.unwrap_or(&default_name), &self.rules)
                .map_err(sql_error)?;
            if let Some((_, created)) = known {
                db.created_ms = created;
            }
            // Keep the number of open databases bounded: close one not asked for now.
            while self.dbs.len() >= MAX_OPEN {
                let Some(victim) = self.dbs.keys().next().cloned() else {
                    break;
                };
                if let Some(old) = self.dbs.remove(&victim) {
                    old.save_meta();
                    self.closed
                        .insert(victim, (old.name.clone(), old.created_ms));
                }
            }
            self.dbs.insert(uuid.to_string(), db);
        }
        let db = self.dbs.get_mut(uuid).expect("inserted above");
        if let Some(name) = name {
            if db.name != name {
                db.name = name.to_string();
                db.save_meta();
            }
        }
        Ok(db)
    }

    /// A database D1 knows: declared up front, found in the data folder, or of a fleet.
    pub fn get(&mut self, uuid: &str) -> Option<&mut Db> {
        if !self.dbs.contains_key(uuid) && !self.closed.contains_key(uuid) {
            return None;
        }
        self.get_or_create(uuid, None).ok()
    }

    /// Removes a database and its files (as `wrangler d1 delete` does); false if unknown.
    pub fn delete(&mut self, uuid: &str) -> bool {
        let was_closed = self.closed.remove(uuid).is_some();
        let tt = match self.dbs.remove(uuid) {
            Some(db) => db.tt_dir(),
            None if was_closed => self.dir.join(format!("{uuid}.tt")),
            None => return false,
        };
        let _ = std::fs::remove_file(self.dir.join(format!("{uuid}.sqlite")));
        let _ = std::fs::remove_file(self.dir.join(format!("{uuid}.meta.json")));
        let _ = std::fs::remove_dir_all(tt);
        true
    }

    /// The UUID of the database named `name`.
    pub fn uuid_by_name(&self, name: &str) -> Option<String> {
        self.dbs
            .values()
            .find(|d| d.name == name)
            .map(|d| d.uuid.clone())
            .or_else(|| {
                self.closed
                    .iter()
                    .find(|(_, (n, _))| n == name)
                    .map(|(u, _)| u.clone())
            })
    }

    /// Every database, by UUID; the closed ones are not opened (their tables are counted
    /// from their file, if they have one yet).
    pub fn list(&self) -> Vec<Listed> {
        let mut out: Vec<Listed> = self
            .dbs
            .values()
            .map(|d| Listed {
                uuid: d.uuid.clone(),
                name: d.name.clone(),
                created_ms: d.created_ms,
                num_tables: d.table_count(),
                file_size: d.size(),
            })
            .collect();
        for (uuid, (name, created)) in &self.closed {
            let file = self.dir.join(format!("{uuid}.sqlite"));
            let num_tables = rusqlite::Connection::open_with_flags(
                &file,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )
            .ok()
            .and_then(|c| {
                c.query_row(
                    "SELECT count(*) FROM sqlite_master WHERE type = 'table' \
                     AND substr(name, 1, 7) <> 'sqlite_' AND lower(substr(name, 1, 4)) <> '_cf_'",
                    [],
                    |r| r.get(0),
                )
                .ok()
            })
            .unwrap_or(0);
            out.push(Listed {
                uuid: uuid.clone(),
                name: name.clone(),
                created_ms: *created,
                num_tables,
                file_size: std::fs::metadata(&file).map_or(0, |m| m.len() as i64),
            });
        }
        out.sort_by(|a, b| a.uuid.cmp(&b.uuid));
        out
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Unix ms -> `2026-11-21T22:55:34.000Z`.
pub fn iso_ms(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// An RFC 3339 instant (`2026-11-21T22:55:34.000Z`, or with a `+hh:mm` offset) -> Unix
/// ms. Impossible dates and times are refused, never rolled over.
pub fn parse_iso_ms(s: &str) -> Option<i64> {
    s.parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_millisecond())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("d1-emu-unit-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn iso_timestamps() {
        assert_eq!(iso_ms(1_795_301_734_000), "2026-11-21T22:55:34.000Z");
        assert_eq!(parse_iso_ms("1970-01-01T00:00:00.000Z"), Some(0));
        assert_eq!(
            parse_iso_ms("2026-11-21T22:55:34.000Z"),
            Some(1_795_301_734_000)
        );
        assert_eq!(
            parse_iso_ms("2026-11-21T23:55:34+01:00"),
            Some(1_795_301_734_000)
        );
        assert_eq!(parse_iso_ms("yesterday"), None);
        assert_eq!(parse_iso_ms("2026-11-32T00:00:00Z"), None);
        assert_eq!(parse_iso_ms("2026-11-21T25:00:00Z"), None);
    }

    #[test]
    fn a_request_is_one_transaction() {
        let dir = temp("tx");
        let mut store = Store::open(&dir, &[], &Rules::default()).unwrap();
        let db = store
            .get_or_create("00000000-0000-0000-0000-000000000001", Some("t"))
            .unwrap();
        db.execute("CREATE TABLE a(x INTEGER PRIMARY KEY);", true)
            .unwrap();
        let err = db
            .execute("INSERT INTO a VALUES (1); INSERT INTO a VALUES (1);", true)
            .unwrap_err();
        assert!(err.0.contains("SQLITE_CONSTRAINT"), "{}", err.0);
        let out = db.execute("SELECT count(*) AS n FROM a;", true).unwrap();
        assert_eq!(out.items[0]["results"][0]["n"], 0);
        assert!(!out.changed, "a read makes no bookmark");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn d1_rules_apply() {
        let dir = temp("rules");
        let mut store = Store::open(&dir, &[], &Rules::default()).unwrap();
        let db = store.get_or_create("u", None).unwrap();
        assert!(db
            .execute("BEGIN TRANSACTION;", true)
            .unwrap_err()
            .0
            .contains("SQLITE_AUTH"));
        db.execute(
            "CREATE TABLE p(id INTEGER PRIMARY KEY); CREATE TABLE c(p INTEGER REFERENCES p(id));",
            true,
        )
        .unwrap();
        let err = db
            .execute("PRAGMA foreign_keys = OFF; INSERT INTO c VALUES (7);", true)
            .unwrap_err();
        assert!(err.0.contains("FOREIGN KEY"), "{}", err.0);
        // Deferred: the violation may exist until the end of the request.
        db.execute(
            "PRAGMA defer_foreign_keys = true; INSERT INTO c VALUES (7); INSERT INTO p VALUES (7);",
            true,
        )
        .unwrap();
        let big = format!("SELECT '{}';", "x".repeat(100_001));
        assert!(db
            .execute(&big, true)
            .unwrap_err()
            .0
            .contains("SQLITE_TOOBIG"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bookmarks_restore_and_undo() {
        let dir = temp("tt");
        let mut store = Store::open(&dir, &[], &Rules::default()).unwrap();
        let db = store.get_or_create("u", None).unwrap();
        db.execute("CREATE TABLE a(x);", true).unwrap();
        let before = db.current_bookmark().id.clone();
        db.execute("INSERT INTO a VALUES (1), (2);", true).unwrap();
        let after = db.current_bookmark().id.clone();
        assert_ne!(before, after);
        let previous = db.restore(&before).unwrap();
        assert_eq!(previous, after);
        let n = db.execute("SELECT count(*) AS n FROM a", true).unwrap();
        assert_eq!(n.items[0]["results"][0]["n"], 0);
        db.restore(&previous).unwrap();
        let n = db.execute("SELECT count(*) AS n FROM a", true).unwrap();
        assert_eq!(n.items[0]["results"][0]["n"], 2);
        assert!(db.restore("nope").is_err());
        // Reopening the folder keeps the bookmarks.
        let count = db.bookmarks.len();
        drop(store);
        let mut store = Store::open(&dir, &[], &Rules::default()).unwrap();
        assert_eq!(
            store.get_or_create("u", None).unwrap().bookmarks.len(),
            count
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn dump_round_trips() {
        let dir = temp("dump");
        let mut store = Store::open(&dir, &[], &Rules::default()).unwrap();
        let db = store.get_or_create("src", None).unwrap();
        db.execute(
            "CREATE TABLE \"users\"(id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT, pic BLOB, score REAL);\
             CREATE INDEX idx_name ON users(name);\
             CREATE VIEW v AS SELECT name FROM users;\
             INSERT INTO users(name, pic, score) VALUES ('o''brien\nline two', x'00ff', 1.5), (NULL, NULL, NULL);",
            true,
        )
        .unwrap();
        let dump = db.dump(false, false, &[]).unwrap();
        assert!(
            dump.starts_with(
                "PRAGMA defer_foreign_keys=TRUE;\nCREATE TABLE IF NOT EXISTS \"users\""
            ),
            "{dump}"
        );
        let copy = store.get_or_create("dst", None).unwrap();
        copy.execute(&dump, true).unwrap();
        let rows = copy
            .execute(
                "SELECT name, hex(pic) AS pic, score FROM users ORDER BY id",
                true,
            )
            .unwrap();
        assert_eq!(rows.items[0]["results"][0]["name"], "o'brien\nline two");
        assert_eq!(rows.items[0]["results"][0]["pic"], "00FF");
        assert_eq!(rows.items[0]["results"][0]["score"], 1.5);
        assert!(rows.items[0]["results"][1]["name"].is_null());
        let no_data = store
            .get_or_create("src", None)
            .unwrap()
            .dump(false, true, &[])
            .unwrap();
        assert!(!no_data.contains("INSERT INTO \"users\""));
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn strict_db(dir: &Path, rules: Rules) -> Store {
        let _ = std::fs::remove_dir_all(dir);
        Store::open(dir, &[("u".into(), "u".into())], &rules).unwrap()
    }

    #[test]
    fn errors_carry_offsets_and_time_limits_bite() {
        let dir = temp("errs");
        let mut store = strict_db(
            &dir,
            Rules {
                request_timeout_ms: 50,
                ..Rules::default()
            },
        );
        let db = store.get("u").unwrap();
        let e = db.execute("SELECT 1 FROM t WHERE;", true).unwrap_err().0;
        assert_eq!(e, "near \";\": syntax error at offset 21: SQLITE_ERROR");
        let e = db.execute("SELECT * FROM nowhere;", true).unwrap_err().0;
        assert_eq!(e, "no such table: nowhere: SQLITE_ERROR");
        let e = db
            .execute(&format!("SELECT '{}';", "x".repeat(100_001)), true)
            .unwrap_err()
            .0;
        assert!(e.contains("SQLITE_TOOBIG"), "{e}");
        let slow = "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c) SELECT count(*) FROM c;";
        assert_eq!(db.execute(slow, true).unwrap_err().0, TIMEOUT_MESSAGE);
        // Every database has its own _cf_KV, which users can neither see nor touch.
        assert!(db
            .execute("SELECT * FROM _cf_KV;", true)
            .unwrap_err()
            .0
            .contains("SQLITE_AUTH"));
        assert_eq!(db.table_count(), 0);
        db.execute("CREATE TABLE xcf_notes(x);", true).unwrap();
        assert_eq!(db.table_count(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn imports_restore_on_failure_and_exports_write_js_numbers() {
        let dir = temp("import");
        let mut store = strict_db(&dir, Rules::default());
        let db = store.get("u").unwrap();
        db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, big INTEGER);", true)
            .unwrap();
        let sql = "PRAGMA defer_foreign_keys=TRUE;\nINSERT INTO t VALUES (1, 9007199254740993);\nINSERT INTO t VALUES (2, 5);\n";
        let before = db.current_bookmark().id.clone();
        assert!(db
            .import(sql, Some(2))
            .unwrap_err()
            .0
            .contains("Network connection lost"));
        assert_ne!(
            db.current_bookmark().id,
            before,
            "the return is a new bookmark"
        );
        let n = db.execute("SELECT count(*) AS n FROM t;", true).unwrap();
        assert_eq!(
            n.items[0]["results"][0]["n"], 0,
            "nothing of a failed import stays"
        );
        // Import splits as SQLite does: a lower-case trigger body goes through.
        db.import(
            &format!("{sql}create trigger tr after insert on t\r\nbegin\r\n  select 1;\r\nend;\n"),
            None,
        )
        .unwrap();
        let dump = db.dump(false, false, &[]).unwrap();
        assert!(dump.contains("VALUES(1,9007199254740992);"), "{dump}");
        assert!(dump.contains("VALUES(2,5);"), "{dump}");
        assert!(!dump.contains("_cf_KV"), "{dump}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn retention_and_restore_rate() {
        let dir = temp("rate");
        let mut store = strict_db(
            &dir,
            Rules {
                max_restores: 2,
                ..Rules::default()
            },
        );
        let db = store.get("u").unwrap();
        let first = db.current_bookmark().id.clone();
        assert!(db.bookmark_at(now_ms() - 31 * 86_400_000).is_err());
        db.restore(&first).unwrap();
        db.restore(&first).unwrap();
        let e = db.restore(&first).unwrap_err().0;
        assert!(e.starts_with("too many restores"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
