//! A remote D1 database, everything through `wrangler d1 ... --env <name> --remote`:
//! state and apply through `/query` (one request each), restore points from Time Travel.

use std::path::{Path, PathBuf};

use super::{BackupMade, Database, Reply, RestorePoint};
use crate::exit::failed;
use crate::ui;
use crate::workspace::project::Project;
use crate::workspace::target::Target;
use crate::wrangler::Lazy;

/// Above this, SQL goes through `--file` (D1's import API) instead of `--command`: one
/// argument may not exceed 128 KiB on Linux.
const COMMAND_LIMIT: usize = 100_000;

pub(crate) struct Remote {
    project: Project,
    target: Target,
    wrangler: Lazy,
}

/// How a request reaches D1.
enum Transport {
    /// `execute --command <sql> --json`: one `/query` request; results come back.
    Command,
    /// `execute --file <path> --yes`: the import API; only a summary comes back.
    File(PathBuf),
}

impl Remote {
    /// The backup of a database with virtual tables (`virtual_export`): the ordinary
    /// tables through `wrangler d1 export --table ...`, the rest appended to the same file
    /// from `/query`. Returns how many ordinary and virtual tables it holds.
    fn export_around_virtual_tables(
        &mut self,
        scratch: &Path,
        schema: &[super::SchemaObject],
    ) -> anyhow::Result<(usize, usize)> {
        use super::virtual_export::{self as vx, Content};
        use std::io::Write;
        let shadows = super::schema::shadow_tables(schema);
        let plain: Vec<&str> = schema
            .iter()
            .filter(|o| {
                super::schema::is_ordinary_table(o, &shadows) && !super::is_internal(&o.name)
            })
            .map(|o| o.name.as_str())
            .collect();
        let mut args = self.target.d1_args(&["export"]);
        args.extend(["--output".into(), scratch.display().to_string()]);
        for t in &plain {
            args.extend(["--table".into(), t.to_string()]);
        }
        let run = self.wrangler(&args)?;
        if !run.success || !scratch.is_file() {
            return Err(failed!(
                "the export of its ordinary tables failed: {}",
                run.error_text()
            ));
        }
        let io = |e: std::io::Error| failed!("cannot write {}: {e}", scratch.display());
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(scratch)
            .map_err(io)?;
        let mut w = std::io::BufWriter::new(file);
        writeln!(
            w,
            "\n-- d1-xtask: what D1's export leaves out of a database with virtual tables"
        )
        .map_err(io)?;
        let vtables: Vec<&super::SchemaObject> = schema
            .iter()
            .filter(|o| super::schema::is_virtual(o))
            .collect();
        for o in &vtables {
            writeln!(w, "{};", vx::if_not_exists(&o.sql)).map_err(io)?;
            match vx::content_of(&o.sql) {
                Content::Rows { with_rowid } => {
                    let mut after = i64::MIN;
                    loop {
                        let rows = self.query(&vx::page_sql(&o.name, after))?;
                        w.write_all(vx::insert_rows(&o.name, &rows, with_rowid).as_bytes())
                            .map_err(io)?;
                        match rows.last().and_then(|r| r[vx::ROWID_COLUMN].as_i64()) {
                            Some(last) if rows.len() >= vx::PAGE_ROWS => after = last,
                            _ => break,
                        }
                    }
                }
                Content::Rebuild => {
                    let q = super::quote_ident(&o.name);
                    writeln!(w, "INSERT INTO {q}({q}) VALUES('rebuild');").map_err(io)?;
                }
                Content::Lost => ui::say(format!(
                    "warning: {} is a contentless FTS5 table (content=''): its index cannot be read \
                     back, so the backup recreates it empty; fill it again from your data after a restore",
                    o.name
                )),
                Content::Nothing => {}
            }
        }
        for kind in ["index", "view", "trigger"] {
            for o in schema.iter().filter(|o| o.kind == kind) {
                writeln!(w, "{};", vx::if_not_exists(&o.sql)).map_err(io)?;
            }
        }
        if vx::has_autoincrement(schema) {
            let rows = self.query("SELECT name, seq FROM sqlite_sequence")?;
            writeln!(w, "DELETE FROM sqlite_sequence;").map_err(io)?;
            for r in &rows {
                writeln!(
                    w,
                    "INSERT INTO sqlite_sequence (name, seq) VALUES ({}, {});",
                    vx::literal(&r["name"]),
                    vx::literal(&r["seq"])
                )
                .map_err(io)?;
            }
        }
        w.flush().map_err(io)?;
        Ok((plain.len(), vtables.len()))
    }

    pub(crate) fn new(project: &Project, target: &Target) -> Remote {
        Remote {
            project: project.clone(),
            target: target.clone(),
            wrangler: Lazy::new(project),
        }
    }

    /// The current Time Travel bookmark, or the one for an instant (`--timestamp`).
    fn bookmark(&mut self, at: Option<&str>) -> anyhow::Result<String> {
        let args = self.bookmark_args(at);
        let run = self.wrangler(&args)?;
        Self::bookmark_from(run, at, &self.target)
    }

    /// `wrangler d1 time-travel info` for now, or for the moment `at`.
    fn bookmark_args(&self, at: Option<&str>) -> Vec<String> {
        let mut extra = vec!["--json"];
        if let Some(t) = at {
            extra.extend(["--timestamp", t]);
        }
        self.target.time_travel_args("info", &extra)
    }

    /// The bookmark in `time-travel info`'s answer, or why there is none.
    fn bookmark_from(
        run: crate::wrangler::Run,
        at: Option<&str>,
        target: &Target,
    ) -> anyhow::Result<String> {
        let what = at.map_or(
            "capturing a restore point (Time Travel bookmark)".to_string(),
            |t| format!("finding the Time Travel bookmark for {t}"),
        );
        if !run.success {
            return Err(failed!(
                "{what} of {} failed: {}\nnothing was changed",
                target.describe(),
                run.error_text()
            ));
        }
        json_field(&run.stdout, "bookmark").ok_or_else(|| {
            failed!(
                "{what}: wrangler's answer holds no bookmark ({}); nothing was changed",
                ui::redact(run.stdout.trim())
            )
        })
    }

    /// Runs wrangler; a database D1 does not know (404, code 7404) is a configuration
    /// error naming the environment and the id, before anything was changed.
    fn wrangler(&mut self, args: &[String]) -> anyhow::Result<crate::wrangler::Run> {
        let run = self.wrangler.run(args)?;
        self.known_database(run)
    }

    fn known_database(&self, run: crate::wrangler::Run) -> anyhow::Result<crate::wrangler::Run> {
        if !run.success && is_unknown_database(&run.error_text()) {
            return Err(crate::exit::usage!(
                "D1 does not know the database of {}: database_id {} of binding {} is not in this \
                 Cloudflare account (D1 answered 404, code 7404); check `database_id` under the \
                 environment in {} (`wrangler d1 list` shows the ids) and CLOUDFLARE_ACCOUNT_ID; \
                 nothing was changed",
                self.target.describe(),
                self.target.db.id.as_deref().unwrap_or("(none)"),
                self.target.db.binding,
                self.project.config_path.display()
            ));
        }
        Ok(run)
    }

    /// `/query` for what D1's server splitter takes; the import API, which splits with
    /// SQLite's own rules (workers-sdk #15178), for a request over the argument limit or
    /// one holding a `CREATE TRIGGER`: D1's splitter cuts trigger bodies written with a
    /// lower-case `begin`, CRLF line ends or a `CASE ... END`, and has failed on triggers
    /// that follow other statements (#10998, #14991, #4326, #15690).
    fn transport(&self, sql: &str, index: usize) -> Transport {
        if sql.len() <= COMMAND_LIMIT && !has_trigger(sql) {
            Transport::Command
        } else {
            Transport::File(
                self.project
                    .scratch_dir()
                    .join(format!("remote-batch-{}-{index}.sql", std::process::id())),
            )
        }
    }

    fn args_for(&self, sql: &str, transport: &Transport) -> Vec<String> {
        let mut args = self.target.d1_args(&["execute"]);
        match transport {
            Transport::Command => args.extend(crate::wrangler::json_command_args(sql)),
            Transport::File(path) => {
                args.extend(["--file".into(), path.display().to_string(), "--yes".into()])
            }
        }
        args
    }

    /// The SQL to send: with the read-back when it rides along (`/query` only).
    fn with_read_back(&self, sql: &str, read_back: Option<&str>) -> Option<String> {
        let with = format!("{sql}\n{}\n", read_back?);
        matches!(self.transport(&with, 0), Transport::Command).then_some(with)
    }
}

/// Whether any statement of `sql` creates a trigger.
fn has_trigger(sql: &str) -> bool {
    let split = crate::migrations::sql::split(sql);
    split.statements.iter().any(|stmt| {
        let words = stmt.leading_words(sql, 3);
        words.first().map(String::as_str) == Some("CREATE")
            && words[1..].iter().any(|w| w == "TRIGGER")
    })
}

/// D1's answer for a database id it does not have: HTTP 404, code 7404.
fn is_unknown_database(error: &str) -> bool {
    error.contains("7404") || error.contains("404 Not Found")
}

/// A string field of the JSON object wrangler printed (after any log lines); only
/// bookmark-shaped values (letters, digits, `-`) are taken.
fn json_field(stdout: &str, field: &str) -> Option<String> {
    let start = stdout.find('{')?;
    let value: serde_json::Value = serde_json::from_str(stdout[start..].trim()).ok()?;
    value[field]
        .as_str()
        .filter(|b| !b.is_empty() && b.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-'))
        .map(String::from)
}

impl Database for Remote {
    fn target(&self) -> &Target {
        &self.target
    }

    fn location(&self) -> String {
        format!("remote (wrangler --env {} --remote)", self.target.env)
    }

    /// One request: `/query` with the read-back when it fits, else the import API
    /// (which returns no rows: `Ok(None)`).
    fn run(&mut self, sql: &str, read_back: Option<&str>) -> anyhow::Result<Reply> {
        if let Some(with) = self.with_read_back(sql, read_back) {
            let run = self.wrangler(&self.args_for(&with, &Transport::Command))?;
            return Ok(super::command_reply(&run));
        }
        let transport = self.transport(sql, 0);
        if let Transport::File(path) = &transport {
            std::fs::create_dir_all(self.project.scratch_dir()).map_err(|e| {
                failed!(
                    "cannot create {}: {e}",
                    self.project.scratch_dir().display()
                )
            })?;
            std::fs::write(path, sql)
                .map_err(|e| failed!("cannot write {}: {e}", path.display()))?;
        }
        let run = self.wrangler(&self.args_for(sql, &transport));
        if let Transport::File(path) = &transport {
            let _ = std::fs::remove_file(path);
        }
        let run = run?;
        Ok(match transport {
            // The items are the request's own; a read-back asked for is not among them.
            Transport::Command => {
                super::command_reply(&run).map(|items| items.filter(|_| read_back.is_none()))
            }
            Transport::File(_) if run.success => Ok(None),
            Transport::File(_) => Err(run.error_text()),
        })
    }

    fn run_file(&mut self, path: &Path) -> anyhow::Result<Reply> {
        let run = self.wrangler(&self.args_for("", &Transport::File(path.to_path_buf())))?;
        Ok(if run.success {
            Ok(None)
        } else {
            Err(run.error_text())
        })
    }

    fn command_for(&self, sql: &str, read_back: Option<&str>, index: usize) -> Vec<String> {
        match self.with_read_back(sql, read_back) {
            Some(with) => self.args_for(&with, &Transport::Command),
            None => self.args_for(sql, &self.transport(sql, index)),
        }
    }

    fn query(&mut self, sql: &str) -> anyhow::Result<Vec<serde_json::Value>> {
        let run = self.wrangler(&self.args_for(sql, &Transport::Command))?;
        match super::command_reply(&run) {
            Ok(items) => Ok(super::result_rows(items.as_ref().and_then(|i| i.last()))),
            Err(e) => Err(failed!("query on {} failed: {e}", self.target.describe())),
        }
    }

    fn restore_point(&mut self, _scratch: &Path) -> anyhow::Result<RestorePoint> {
        self.bookmark(None).map(RestorePoint::Bookmark)
    }

    fn bookmark_at(&mut self, rfc3339: &str) -> anyhow::Result<String> {
        self.bookmark(Some(rfc3339))
    }

    fn return_to(&mut self, point: &RestorePoint) -> anyhow::Result<Option<String>> {
        let b = match point {
            RestorePoint::Bookmark(b) => b,
            RestorePoint::Snapshot(p) => {
                return Err(crate::exit::usage!(
                    "{} is a local snapshot: it cannot be restored into the remote {} database; \
                     restore an export (db-backup --env {}) or a bookmark instead",
                    p.display(),
                    self.target.env,
                    self.target.env
                ))
            }
        };
        let args = self
            .target
            .time_travel_args("restore", &["--bookmark", b, "--json"]);
        let run = self.wrangler(&args)?;
        if !run.success {
            return Err(failed!(
                "restoring {} to bookmark {b} failed: {}\nTime Travel restores all or nothing: check with \
                 `cargo xtask db-status --env {}`",
                self.target.describe(),
                run.error_text(),
                self.target.env
            ));
        }
        Ok(json_field(&run.stdout, "previous_bookmark"))
    }

    fn backup(&mut self, scratch: &Path) -> anyhow::Result<BackupMade> {
        let mut args = self.target.d1_args(&["export"]);
        args.extend(["--output".into(), scratch.display().to_string()]);
        ui::say(format!(
            "exporting {} (wrangler waits for D1 to write the file, then downloads it); \
             its Time Travel bookmark is read at the same time",
            self.target.describe()
        ));
        let started = std::time::Instant::now();
        // Two processes at once: the bookmark costs no extra wait. Read before or during
        // the export, it marks the same moment as well as it can (wrangler does not print
        // the bookmark D1 exported at).
        let info_args = self.bookmark_args(None);
        let (info, run) = self.wrangler.run_two(&info_args, &args)?;
        let bookmark = self
            .known_database(info)
            .and_then(|info| Self::bookmark_from(info, None, &self.target))
            .inspect_err(|_| {
                let _ = std::fs::remove_file(scratch);
            })?;
        let run = self.known_database(run)?;
        // D1 refuses to export a database that has virtual tables (FTS5): then its
        // ordinary tables are exported and the rest is read.
        let with_virtual_tables = if run.success {
            None
        } else {
            let _ = std::fs::remove_file(scratch);
            let schema = super::schema_from_rows(&self.query(super::SCHEMA_SQL)?);
            schema
                .iter()
                .any(super::schema::is_virtual)
                .then_some(schema)
        };
        let made = match with_virtual_tables {
            None => run.success && scratch.is_file(),
            Some(schema) => {
                let (plain, virtual_tables) = self
                    .export_around_virtual_tables(scratch, &schema)
                    .map_err(|e| {
                        let _ = std::fs::remove_file(scratch);
                        failed!(
                            "exporting {} failed: {e}\nnothing was changed; the bookmark {bookmark} still marks this moment",
                            self.target.describe()
                        )
                    })?;
                ui::say(format!(
                    "D1 does not export a database with virtual tables: exported its {plain} ordinary \
                     table{} and read its {virtual_tables} virtual table{} through queries, in separate \
                     requests (a write in between would be caught by one part and not the other)",
                    if plain == 1 { "" } else { "s" },
                    if virtual_tables == 1 { "" } else { "s" },
                ));
                true
            }
        };
        if !made {
            let _ = std::fs::remove_file(scratch);
            return Err(failed!(
                "exporting {} failed: {}\nnothing was changed; the bookmark {bookmark} still marks this moment",
                self.target.describe(),
                run.error_text()
            ));
        }
        let size = std::fs::metadata(scratch).map_or(0, |m| m.len());
        ui::say(format!(
            "exported {} in {:.1} s",
            super::load::megabytes(size),
            started.elapsed().as_secs_f64()
        ));
        Ok(BackupMade::Export { bookmark })
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
