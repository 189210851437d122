//! A remote D1 database, everything through `wrangler d1 ... --env <name> --remote`:
//! state and apply through `/query` (one request each), restore points from Time Travel.

use std::path::{Path, PathBuf};

use super::{batch_sql, execute_items, quote_ident, rows_to_state};
use super::{
    ApplyMode, ApplyReport, BackupMade, Database, Extras, LockRow, Restore, RestorePoint, State,
};
use crate::exit::failed;
use crate::migrations::Migration;
use crate::project::Project;
use crate::target::Target;
use crate::ui;
use crate::wrangler::{display_command, Wrangler};

/// Above this, SQL goes through `--file` (D1's import API) instead of `--command`: one
/// argument may not exceed 128 KiB on Linux.
const COMMAND_LIMIT: usize = 100_000;

pub struct Remote {
    project: Project,
    target: Target,
    wrangler: Option<Wrangler>,
}

/// How a batch reaches D1.
enum Transport {
    /// `execute --command <sql> --json`: one `/query` request; results come back.
    Command(String),
    /// `execute --file <path> --yes`: the import API; only a summary comes back.
    File(PathBuf),
}

impl Remote {
    pub fn new(project: &Project, target: &Target) -> Remote {
        Remote {
            project: project.clone(),
            target: target.clone(),
            wrangler: None,
        }
    }

    fn wrangler(&mut self) -> anyhow::Result<&mut Wrangler> {
        if self.wrangler.is_none() {
            self.wrangler = Some(Wrangler::locate(&self.project)?);
        }
        Ok(self.wrangler.as_mut().expect("set just above"))
    }

    /// The current Time Travel bookmark, or the one for an instant (`--timestamp`).
    fn bookmark(&mut self, at: Option<&str>) -> anyhow::Result<String> {
        let mut extra = vec!["--json"];
        if let Some(t) = at {
            extra.extend(["--timestamp", t]);
        }
        let args = self.target.time_travel_args("info", &extra);
        let what = at.map_or(
            "capturing a restore point (Time Travel bookmark)".to_string(),
            |t| format!("finding the Time Travel bookmark for {t}"),
        );
        let run = self.run(&args)?;
        if !run.success {
            return Err(failed!(
                "{what} of {} {} failed: {}\nnothing was changed",
                self.target.env,
                self.target.db.describe(),
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
    fn run(&mut self, args: &[String]) -> anyhow::Result<crate::wrangler::Run> {
        let run = self.wrangler()?.run(args)?;
        if !run.success && is_unknown_database(&run.error_text()) {
            return Err(crate::exit::usage!(
                "D1 does not know the database of {} {}: database_id {} of binding {} is not in this \
                 Cloudflare account (D1 answered 404, code 7404); check `database_id` under the \
                 environment in {} (`wrangler d1 list` shows the ids) and CLOUDFLARE_ACCOUNT_ID; \
                 nothing was changed",
                self.target.env,
                self.target.db.describe(),
                self.target.db.id.as_deref().unwrap_or("(none)"),
                self.target.db.binding,
                self.project.config_path.display()
            ));
        }
        Ok(run)
    }

    fn table(&self) -> String {
        quote_ident(&self.target.db.migrations_table)
    }

    fn read_back_sql(&self) -> String {
        format!(
            "SELECT id, name, applied_at FROM {} ORDER BY id;",
            self.table()
        )
    }

    /// `/query` for what D1's server splitter takes; the import API, which splits with
    /// SQLite's own rules (workers-sdk #15178), for a batch over the argument limit or one
    /// holding a `CREATE TRIGGER`: D1's splitter cuts trigger bodies written with a
    /// lower-case `begin`, CRLF line ends or a `CASE ... END`, and has failed on triggers
    /// that follow other statements (#10998, #14991, #4326, #15690).
    fn transport(&self, sql: String, index: usize) -> Transport {
        if sql.len() <= COMMAND_LIMIT && !has_trigger(&sql) {
            Transport::Command(sql)
        } else {
            Transport::File(
                self.project
                    .scratch_dir()
                    .join(format!("remote-batch-{}-{index}.sql", std::process::id())),
            )
        }
    }

    fn args_for(&self, transport: &Transport) -> Vec<String> {
        let mut args = self.target.d1_args(&["execute"]);
        match transport {
            Transport::Command(sql) => {
                args.extend(crate::wrangler::json_command_args(sql));
            }
            Transport::File(path) => {
                args.extend(["--file".into(), path.display().to_string(), "--yes".into()])
            }
        }
        args
    }

    /// One group of migrations (all of them, or one file) with its read-back when it fits.
    fn group_sql(&self, group: &[&Migration], extras: &Extras) -> (String, bool) {
        let sql = batch_sql(&self.target.db.migrations_table, group, extras);
        let with_read_back = format!("{sql}{}\n", self.read_back_sql());
        if with_read_back.len() <= COMMAND_LIMIT {
            (with_read_back, true)
        } else {
            (sql, false)
        }
    }

    /// Reads the state in one request, taking the lock first when `lock` is given.
    fn read(&mut self, lock: Option<&LockRow>) -> anyhow::Result<Result<State, LockRow>> {
        let table = self.target.db.migrations_table.clone();
        let mut args = self.target.d1_args(&["execute"]);
        args.extend(crate::wrangler::json_command_args(
            &super::state_request_sql(&table, lock),
        ));
        let run = self.run(&args)?;
        if !run.success {
            let error = run.error_text();
            if lock.is_some() && super::is_lock_conflict(&error, &table) {
                let holder = self.query(&super::lock_select_sql(&table))?;
                if let Some(row) = holder.first() {
                    return Ok(Err(super::lock_from_json(row)));
                }
                // Released in between: the caller tries again.
                return Ok(Err(LockRow {
                    token: String::new(),
                    holder: "(released just now)".into(),
                    host: String::new(),
                    pid: 0,
                    command: String::new(),
                    acquired_at: crate::time::unix_now(),
                }));
            }
            return Err(failed!(
                "reading the tracking table of {} {} failed: {error}\nnothing was changed",
                self.target.env,
                self.target.db.describe()
            ));
        }
        let items = execute_items(&run.stdout)?;
        super::state_from_items(&items).map(Ok).ok_or_else(|| {
            failed!(
                "reading the tracking table of {} {}: D1 did not confirm the query (wrangler printed {}); nothing was changed",
                self.target.env,
                self.target.db.describe(),
                ui::redact(run.stdout.trim())
            )
        })
    }

    /// Names the migration that broke a failed batch by replaying it on the schema alone.
    fn diagnose(&self, group: &[&Migration], before: &State) -> Option<String> {
        let conn = super::schema_copy(&before.schema)?;
        super::replay(&conn, &self.target.db.migrations_table, group).map(|(name, _)| name)
    }
}

/// The result items of a `--command ... --json` run that exited 0, when D1 reported success
/// for every statement; wrangler can exit 0 on a failed statement, so anything else is a
/// failure, in words.
fn confirmed_items(stdout: &str) -> Result<Vec<serde_json::Value>, String> {
    let items = execute_items(stdout).unwrap_or_default();
    if items.is_empty() || items.iter().any(|i| i["success"] != true) {
        return Err("wrangler exited 0, but D1 did not report success for every statement".into());
    }
    Ok(items)
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
    fn location(&self) -> String {
        format!("remote (wrangler --env {} --remote)", self.target.env)
    }

    fn state(&mut self) -> anyhow::Result<State> {
        match self.read(None)? {
            Ok(state) => Ok(state),
            Err(_) => unreachable!("a read without the lock cannot meet a lock conflict"),
        }
    }

    fn apply_commands(&self, migrations: &[&Migration], mode: ApplyMode) -> Vec<Vec<String>> {
        let groups = mode.groups(migrations);
        groups
            .iter()
            .enumerate()
            .map(|(i, g)| {
                self.args_for(&self.transport(self.group_sql(g, &Extras::default()).0, i))
            })
            .collect()
    }

    fn apply(
        &mut self,
        migrations: &[&Migration],
        mode: ApplyMode,
        before: &State,
        extras: &Extras,
    ) -> anyhow::Result<ApplyReport> {
        let groups = mode.groups(migrations);
        let total = migrations.len();
        let mut done = 0;
        let mut after = None;
        let last = groups.len().saturating_sub(1);
        for (i, group) in groups.iter().enumerate() {
            let (sql, has_read_back) = self.group_sql(group, &super::group_extras(extras, i, last));
            let transport = self.transport(sql.clone(), i);
            if let Transport::File(path) = &transport {
                std::fs::create_dir_all(self.project.scratch_dir()).map_err(|e| {
                    failed!(
                        "cannot create {}: {e}",
                        self.project.scratch_dir().display()
                    )
                })?;
                std::fs::write(path, &sql)
                    .map_err(|e| failed!("cannot write {}: {e}", path.display()))?;
            }
            let names: Vec<&str> = group.iter().map(|m| m.name.as_str()).collect();
            ui::say(format!(
                "applying {}-{} of {total}: {}",
                done + 1,
                done + group.len(),
                names.join(", ")
            ));
            let args = self.args_for(&transport);
            let run = self.run(&args);
            if let Transport::File(path) = &transport {
                let _ = std::fs::remove_file(path);
            }
            let run = run?;
            let failed_name = |this: &Self| match group.as_slice() {
                [one] => Some(one.name.clone()),
                _ => this.diagnose(group, before),
            };
            if !run.success {
                return Ok(ApplyReport {
                    error: Some(run.error_text()),
                    failed: failed_name(self),
                    after: None,
                });
            }
            if let (Transport::Command(_), true) = (&transport, has_read_back) {
                // Every statement must say success; the last one is the read-back.
                match confirmed_items(&run.stdout) {
                    Ok(items) => after = items.last().map(rows_to_state),
                    Err(error) => {
                        return Ok(ApplyReport {
                            error: Some(error),
                            failed: failed_name(self),
                            after: None,
                        })
                    }
                }
            } else {
                after = None;
            }
            done += group.len();
        }
        Ok(ApplyReport {
            error: None,
            failed: None,
            after,
        })
    }

    fn lock_and_state(&mut self, row: &LockRow) -> anyhow::Result<Result<State, LockRow>> {
        self.read(Some(row))
    }

    fn unlock(&mut self, token: &str, acquired_at: i64) -> anyhow::Result<()> {
        let sql = super::lock_release_sql(&self.target.db.migrations_table, token, acquired_at);
        match self.execute_sql(&sql)? {
            Ok(()) => Ok(()),
            Err(e) => Err(failed!(
                "releasing the lock on {} {} failed: {e}; run `cargo xtask db-status --env {}` and break it \
                 with --force-unlock once it is stale",
                self.target.env,
                self.target.db.describe(),
                self.target.env
            )),
        }
    }

    fn break_lock(&mut self, holder: &LockRow) -> anyhow::Result<()> {
        let sql = format!(
            "DELETE FROM {} WHERE token = {};",
            quote_ident(&super::lock_table(&self.target.db.migrations_table)),
            super::quote_string(&holder.token)
        );
        match self.execute_sql(&sql)? {
            Ok(()) => Ok(()),
            Err(e) => Err(failed!("breaking the lock failed: {e}")),
        }
    }

    fn restore_point(&mut self, _scratch: &Path) -> anyhow::Result<RestorePoint> {
        self.bookmark(None).map(RestorePoint::Bookmark)
    }

    fn bookmark_at(&mut self, rfc3339: &str) -> anyhow::Result<String> {
        self.bookmark(Some(rfc3339))
    }

    fn undo_command(&self, point: &RestorePoint) -> String {
        match point {
            RestorePoint::Bookmark(b) => {
                display_command(&self.target.time_travel_args("restore", &["--bookmark", b]))
            }
            RestorePoint::Snapshot(p) => {
                format!("(a remote database has no snapshots: {})", p.display())
            }
        }
    }

    fn backup(&mut self, scratch: &Path) -> anyhow::Result<BackupMade> {
        let RestorePoint::Bookmark(bookmark) = self.restore_point(scratch)? else {
            unreachable!("remote restore points are bookmarks")
        };
        let mut args = self.target.d1_args(&["export"]);
        args.extend(["--output".into(), scratch.display().to_string()]);
        let run = self.run(&args)?;
        if !run.success || !scratch.is_file() {
            let _ = std::fs::remove_file(scratch);
            return Err(failed!(
                "exporting {} {} failed: {}\nnothing was changed; the bookmark {bookmark} still marks this moment",
                self.target.env,
                self.target.db.describe(),
                run.error_text()
            ));
        }
        Ok(BackupMade::Export { bookmark })
    }

    fn restore(&mut self, source: &Restore, before: &State) -> anyhow::Result<Option<String>> {
        let (extra, what): (Vec<&str>, String) = match source {
            Restore::Bookmark(b) => (vec!["--bookmark", b.as_str()], format!("bookmark {b}")),
            Restore::Snapshot(p) => {
                return Err(crate::exit::usage!(
                    "{} is a local snapshot: it cannot be restored into the remote {} database; \
                     restore an export (db-backup --env {}) or a bookmark instead",
                    p.display(),
                    self.target.env,
                    self.target.env
                ))
            }
            Restore::Sql(file) => {
                let sql = super::replacing_sql(file, &before.schema)?;
                return match self.execute_sql(&sql)? {
                    Ok(()) => Ok(None),
                    Err(e) => Err(failed!(
                        "loading {} into {} {} failed: {e}; D1 runs a request as one transaction, so the \
                         database should be as it was: check with `cargo xtask db-status --env {}`",
                        file.display(),
                        self.target.env,
                        self.target.db.describe(),
                        self.target.env
                    )),
                };
            }
        };
        let mut with_json = extra.clone();
        with_json.push("--json");
        let args = self.target.time_travel_args("restore", &with_json);
        let run = self.run(&args)?;
        if !run.success {
            return Err(failed!(
                "restoring {} {} to {what} failed: {}\nTime Travel restores all or nothing: check with \
                 `cargo xtask db-status --env {}`",
                self.target.env,
                self.target.db.describe(),
                run.error_text(),
                self.target.env
            ));
        }
        Ok(json_field(&run.stdout, "previous_bookmark"))
    }

    fn execute_sql(&mut self, sql: &str) -> anyhow::Result<Result<(), String>> {
        let transport = self.transport(sql.to_string(), 0);
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
        let args = self.args_for(&transport);
        let run = self.run(&args);
        if let Transport::File(path) = &transport {
            let _ = std::fs::remove_file(path);
        }
        let run = run?;
        if !run.success {
            return Ok(Err(run.error_text()));
        }
        if let Transport::Command(_) = transport {
            if let Err(e) = confirmed_items(&run.stdout) {
                return Ok(Err(e));
            }
        }
        Ok(Ok(()))
    }

    fn execute_and_read(&mut self, sql: &str) -> anyhow::Result<Result<State, String>> {
        let table = self.target.db.migrations_table.clone();
        let with_reads = format!("{sql}\n{}", super::state_request_sql(&table, None));
        let transport = self.transport(with_reads, 0);
        if let Transport::File(_) = transport {
            // The import API returns no rows: read back in a request of its own.
            return super::execute_then_read(self, sql);
        }
        let run = self.run(&self.args_for(&transport))?;
        if !run.success {
            return Ok(Err(run.error_text()));
        }
        let items = match confirmed_items(&run.stdout) {
            Ok(items) => items,
            Err(e) => return Ok(Err(e)),
        };
        super::state_from_items(&items).map(Ok).ok_or_else(|| {
            failed!(
                "the change on {} {} was sent, but its read-back is not in wrangler's answer ({})",
                self.target.env,
                self.target.db.describe(),
                ui::redact(run.stdout.trim())
            )
        })
    }

    fn query(&mut self, sql: &str) -> anyhow::Result<Vec<serde_json::Value>> {
        let mut args = self.target.d1_args(&["execute"]);
        args.extend(crate::wrangler::json_command_args(sql));
        let run = self.run(&args)?;
        if !run.success {
            return Err(failed!(
                "query on {} {} failed: {}",
                self.target.env,
                self.target.db.describe(),
                run.error_text()
            ));
        }
        let items = execute_items(&run.stdout)?;
        Ok(items
            .last()
            .and_then(|i| i["results"].as_array().cloned())
            .unwrap_or_default())
    }

    fn wrangler_calls(&self) -> usize {
        self.wrangler.as_ref().map_or(0, |w| w.calls)
    }
}
