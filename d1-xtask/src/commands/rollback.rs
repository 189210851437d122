//! `rollback [--env <env>] [--to <deploy id>] [--code-only | --db-only]`: undoes a deploy
//! (the newest one recorded as deployed, or the one named), in the order the release
//! runbook gives: the Worker back to the version live before it, then the database to the
//! deploy's restore point. Before anything is restored it says what is lost (a Time Travel
//! restore returns the whole database to that instant: every write since is gone) and asks
//! as the environment requires; it refuses a restore point past the retention window.
//! Afterwards it says how to undo the rollback: the version that was live and the bookmark
//! D1 returned.

use serde_json::json;

use crate::commands::db_restore::RestoreChange;
use crate::d1::{Database, State};
use crate::exit::{failed, refused, usage};
use crate::guarded::backups::Captured;
use crate::guarded::change::{self, Act, Change, Guard};
use crate::guarded::confirm::Confirm;
use crate::guarded::deploys::{Outcome, Record};
use crate::ui::{self, Report};
use crate::workspace::options::Changing;
use crate::workspace::target::Target;
use crate::wrangler::display_command;
use crate::wrangler::worker::Worker;
use crate::{d1, workspace::Ctx};

/// `rollback` and its flags.
#[derive(clap::Args, Clone, Debug, PartialEq)]
pub struct Rollback {
    /// the deploy to undo, by its id (`deploy --list`); default: the newest deployed one
    #[arg(long, value_name = "deploy id")]
    pub(crate) to: Option<String>,
    /// put back the Worker's previous version only; leave the database as it is
    #[arg(long, conflicts_with = "db_only")]
    pub(crate) code_only: bool,
    /// return the database to the deploy's restore point only; leave the Worker as it is
    #[arg(long)]
    pub(crate) db_only: bool,
    #[command(flatten)]
    pub(crate) change: Changing,
}

impl Rollback {
    pub(crate) fn run(self, ctx: &Ctx) -> anyhow::Result<Report> {
        let target = ctx.target()?;
        if !target.env.is_remote() {
            return Err(usage!(
                "rollback needs --env <environment>: deploys go to remote environments only"
            ));
        }
        if self.change.no_backup && target.protected {
            // Refused by the guarded path too; said here before any record is read.
            return Err(refused!(
                "--no-backup is not allowed on {}, a protected environment; nothing was changed",
                target.env
            ));
        }
        let record = crate::commands::deploy::find_record(ctx, &target, self.to.as_deref())?;
        let now = crate::time::unix_now();
        let code = !self.db_only;
        let db_part = !self.code_only && (self.db_only || !record.migrations_applied.is_empty());
        if code && record.previous_version.is_none() && self.code_only {
            return Err(refused!(
                "deploy {} was Worker {}'s first: there is no earlier version to return to; nothing was changed",
                record.id,
                record.worker
            ));
        }
        if db_part {
            let Some(bookmark) = record.bookmark.as_deref() else {
                return Err(refused!(
                    "deploy {} recorded no restore point (it stopped before taking one): the database cannot be \
                     returned to it; nothing was changed",
                    record.id
                ));
            };
            let at = record.restore_point_at.unwrap_or(record.started_at);
            let oldest = now - i64::from(ctx.settings.retention_days) * 86_400;
            if at < oldest {
                return Err(refused!(
                    "the restore point of deploy {} (bookmark {bookmark}, {}) is older than Time Travel keeps \
                     ({} days, `time_travel_retention_days`): D1 can no longer return to it; nothing was changed",
                    record.id,
                    crate::time::format_utc(at),
                    ctx.settings.retention_days
                ));
            }
        }
        let mut db = d1::open(&ctx.project, &target)?;
        let worker = Worker::new(&ctx.project, &target, record.worker.clone());
        let loss = if db_part {
            let at = record.restore_point_at.unwrap_or(record.started_at);
            Some(format!(
                "every write to {} since {} UTC ({} ago) is lost: Time Travel returns the whole database to that \
                 instant (rows are not counted: that would need a copy of the database as it was then)",
                target.describe(),
                crate::time::format_utc(at),
                ago(now - at)
            ))
        } else {
            None
        };
        let bookmark = record.bookmark.clone().unwrap_or_default();
        let from = format!(
            "the restore point of deploy {} (bookmark {bookmark})",
            record.id
        );
        let mut change = RollingBack {
            ctx,
            target: &target,
            record: record.clone(),
            worker,
            code: code && record.previous_version.is_some(),
            restore: db_part.then(|| RestoreChange::bookmark(&target, &bookmark, from)),
            loss,
            live_before: None,
            done_code: false,
        };
        if ctx.global.dry_run {
            ui::say(format!(
                "dry run: nothing is changed; this would {}",
                change.describe()
            ));
            return Ok(crate::commands::dry_run_report(&target));
        }
        if !change.code && change.restore.is_none() {
            ui::say(format!(
                "nothing to roll back for deploy {}: {}",
                record.id,
                if record.previous_version.is_none() {
                    "it was the Worker's first deploy (no earlier version) and it applied no migration"
                } else {
                    "it applied no migration (the database is left as it is; --db-only forces a return to its restore point)"
                }
            ));
        }
        let guard = Guard {
            command: "rollback",
            confirm: Confirm::Yes,
            restore_point: !self.change.no_backup,
            restoring: None,
        };
        let done = change::run(ctx, &target, db.as_mut(), guard, &mut change)?;
        let mut updated = record.clone();
        if done.changed {
            updated.outcome = Outcome::Undone;
            updated.note = Some(format!(
                "rolled back at {} UTC{}{}",
                crate::time::format_utc(crate::time::unix_now()),
                if change.done_code { "; Worker" } else { "" },
                if change.restore.is_some() {
                    "; database"
                } else {
                    ""
                }
            ));
            updated.save(&ctx.project)?;
        }
        Ok(Report::doc(json!({
            "env": target.env.name(),
            "database": target.database_json(),
            "deploy_id": record.id,
            "worker": record.worker,
            "worker_version": if change.done_code { record.previous_version.clone() } else { change.live_before.clone() },
            "worker_version_before": change.live_before,
            "database_restored": change.restore.is_some() && done.changed,
            "previous_bookmark": change.restore.as_ref().and_then(|r| r.previous.clone()),
            "applied": change.restore.as_ref().map(|r| r.after.applied.iter().map(|a| a.name.clone()).collect::<Vec<_>>()),
            "restore_point": done.captured.as_ref().map(Captured::json),
            "wrangler_calls": db.wrangler_calls() + change.worker.calls(),
        })))
    }
}

/// `3 h 12 min`, `12 min`, `40 s`.
fn ago(secs: i64) -> String {
    let secs = secs.max(0);
    match secs {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min", s / 60),
        s if s < 86_400 => format!("{} h {} min", s / 3600, (s % 3600) / 60),
        s => format!("{} days {} h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// The rollback, as the guarded-change path drives it.
struct RollingBack<'a> {
    ctx: &'a Ctx,
    target: &'a Target,
    record: Record,
    worker: Worker,
    /// Put the Worker's previous version back.
    code: bool,
    /// The database half: a return to the deploy's restore point.
    restore: Option<RestoreChange<'a>>,
    /// What the database half loses, in words.
    loss: Option<String>,
    /// The Worker version live when the rollback began (the way back for the code).
    live_before: Option<String>,
    done_code: bool,
}

impl RollingBack<'_> {
    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.code {
            parts.push(format!(
                "return Worker {} to version {} (live before deploy {})",
                self.record.worker,
                self.record.previous_version.as_deref().unwrap_or("?"),
                self.record.id
            ));
        }
        if self.restore.is_some() {
            parts.push(format!(
                "return the database to the restore point of deploy {} (bookmark {}): {}",
                self.record.id,
                self.record.bookmark.as_deref().unwrap_or("?"),
                self.loss.as_deref().unwrap_or("")
            ));
        }
        parts.join("; then ")
    }
}

impl Change for RollingBack<'_> {
    fn plan(&mut self, _state: &State) -> anyhow::Result<Option<String>> {
        if !self.code && self.restore.is_none() {
            return Ok(None);
        }
        Ok(Some(self.describe()))
    }

    fn previous_bookmark(&self) -> Option<String> {
        self.restore.as_ref().and_then(|r| r.previous.clone())
    }

    fn prepare(&mut self, _db: &mut dyn Database) -> anyhow::Result<()> {
        if self.code {
            self.worker.ready()?;
            self.live_before = self.worker.live()?;
        }
        Ok(())
    }

    fn act(&mut self, act: &mut Act<'_>) -> anyhow::Result<()> {
        if self.code {
            let prev = self.record.previous_version.clone().unwrap_or_default();
            if self.live_before.as_deref() == Some(prev.as_str()) {
                ui::say(format!(
                    "Worker {}: version {prev} is live already",
                    self.record.worker
                ));
            } else {
                let message = format!("d1-xtask: rollback of deploy {}", self.record.id);
                if let Err(text) = self.worker.rollback(&prev, &message)? {
                    return Err(failed!(
                        "rolling Worker {} back to version {prev} failed: {text}\nnothing was changed: the Worker \
                         still runs {}, and the database was not touched",
                        self.record.worker,
                        self.live_before.as_deref().unwrap_or("the version it ran")
                    ));
                }
                ui::say(format!(
                    "Worker {}: version {prev} is live again",
                    self.record.worker
                ));
            }
            self.done_code = true;
        }
        if let Some(restore) = self.restore.as_mut() {
            if let Err(e) = restore.act(act) {
                let code = if self.done_code {
                    format!(
                        "the Worker was rolled back to {} (undo: {})",
                        self.record.previous_version.as_deref().unwrap_or("?"),
                        self.live_before
                            .as_deref()
                            .map(|v| display_command(&self.worker.rollback_args(v)))
                            .unwrap_or_else(|| "none".into())
                    )
                } else {
                    "the Worker was left as it was".into()
                };
                return Err(failed!(
                    "{e:#}\n{code}; finish the database by hand: {} --bookmark {}",
                    crate::guarded::backups::command_line(self.ctx, self.target, "db-restore", ""),
                    self.record.bookmark.as_deref().unwrap_or("?")
                ));
            }
        }
        Ok(())
    }

    fn undo_line(&self, captured: Option<&Captured>) -> String {
        let mut lines = Vec::new();
        if self.done_code {
            if let Some(v) = &self.live_before {
                lines.push(format!(
                    "the Worker: {}",
                    display_command(&self.worker.rollback_args(v))
                ));
            }
        }
        if self.restore.is_some() {
            let bookmark = self
                .previous_bookmark()
                .or_else(|| captured.and_then(|c| c.entry.bookmark.clone()));
            if let Some(b) = bookmark {
                lines.push(format!(
                    "the database: {}",
                    crate::guarded::backups::command_line(
                        self.ctx,
                        self.target,
                        "db-restore",
                        &format!("--bookmark {b}")
                    )
                ));
            }
        }
        if lines.is_empty() {
            return captured.map_or(String::new(), Captured::undo_line);
        }
        format!("\nto undo this rollback:\n  {}", lines.join("\n  "))
    }
}
