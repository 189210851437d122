//! `db-restore --bookmark <id> | --timestamp <time> | --backup <id or path> | --last`:
//! restore in place, after capturing the current state, and say how to undo it.

use serde_json::json;

use crate::d1::Restore;
use crate::d1::State;
use crate::exit::{failed, usage};
use crate::guarded::backups::{self, Entry, Kind};
use crate::guarded::change::{self, Act, Change, Guard};
use crate::guarded::confirm::Confirm;
use crate::ui::{self, Report};
use crate::workspace::options::Changing;
use crate::workspace::target::Target;
use crate::{d1, time, workspace::Ctx};

/// `db-restore` and its flags.
#[derive(clap::Args, Clone, Debug, PartialEq)]
pub struct DbRestore {
    /// a Time Travel bookmark (remote)
    #[arg(long, value_name = "id")]
    pub(crate) bookmark: Option<String>,
    /// RFC 3339, Unix seconds, `5 minutes ago`, `yesterday at 3 PM`, `today 09:30` or `2026-11-21 15:00` (local zone); not in the future, within the retention window (remote)
    #[arg(long, value_name = "time")]
    pub(crate) timestamp: Option<String>,
    /// the IANA time zone for times without one (default: TZ, then the system's)
    #[arg(long, value_name = "zone")]
    pub(crate) tz: Option<String>,
    /// copy that environment's data into the local database (an export, read only; local only)
    #[arg(long, value_name = "env")]
    pub(crate) from_env: Option<String>,
    /// an entry of the backup index, or a backup file
    #[arg(long, value_name = "id|path")]
    pub(crate) backup: Option<String>,
    /// the newest restore point or backup of this environment and database
    #[arg(long)]
    pub(crate) last: bool,
    #[command(flatten)]
    pub(crate) change: Changing,
}

/// Where `db-restore` takes the database back to: exactly one of its sources.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Source<'a> {
    /// A point named directly: a bookmark or an entry of the backup index.
    Named(Named<'a>),
    /// `--timestamp`: Time Travel finds its bookmark.
    Timestamp(&'a str),
    /// `--from-env`: an export of another environment.
    FromEnv(&'a str),
}

/// `--bookmark`, `--backup` or `--last`.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Named<'a> {
    Bookmark(&'a str),
    Backup(&'a str),
    Last,
}

impl DbRestore {
    /// The source the flags name; exactly one is given.
    fn source_flag(&self) -> anyhow::Result<Source<'_>> {
        let given: Vec<Source<'_>> = [
            self.bookmark
                .as_deref()
                .map(|b| Source::Named(Named::Bookmark(b))),
            self.timestamp.as_deref().map(Source::Timestamp),
            self.backup
                .as_deref()
                .map(|b| Source::Named(Named::Backup(b))),
            self.last.then_some(Source::Named(Named::Last)),
            self.from_env.as_deref().map(Source::FromEnv),
        ]
        .into_iter()
        .flatten()
        .collect();
        match given[..] {
            [one] => Ok(one),
            _ => Err(usage!(
                "give exactly one of --bookmark <id>, --timestamp <time>, --backup <id or path>, --last, \
                 --from-env <env>"
            )),
        }
    }

    pub(crate) fn run(self, ctx: &Ctx) -> anyhow::Result<Report> {
        let source = self.source_flag()?;
        let target = ctx.target()?;
        let Source::FromEnv(env) = source else {
            return self.restore(ctx, &target, source, None);
        };
        // Set aside until the change: the export of another environment.
        let (file, from) = copy_from_env(ctx, &target, env)?;
        let result = self.restore(
            ctx,
            &target,
            source,
            Some((Restore::Sql(file.clone()), from)),
        );
        let _ = std::fs::remove_file(file);
        result
    }

    fn restore(
        &self,
        ctx: &Ctx,
        target: &Target,
        source: Source<'_>,
        from_env: Option<(Restore, String)>,
    ) -> anyhow::Result<Report> {
        let target = target.clone();
        // A --timestamp is read and checked before any wrangler call.
        let instant = match source {
            Source::Timestamp(raw) => {
                let zone = time::zone(self.tz.as_deref()).map_err(|e| usage!("{e}"))?;
                let now = jiff::Timestamp::now().to_zoned(zone.clone());
                let secs = check_timestamp(raw, ctx.settings.retention_days, &now)?;
                ui::say(format!(
                    "--timestamp `{raw}` is {}",
                    time::describe(secs, &zone)
                ));
                Some(secs)
            }
            _ => None,
        };
        // `--last` right after a finished restore to the same entry: already there.
        let restoring = match source {
            Source::Named(Named::Last) => {
                let last = backups::last(&ctx.project, &target)?;
                if let Some(restore) = &last.already {
                    return already_there(ctx, &target, &last.candidate, restore);
                }
                Some(last.candidate.id)
            }
            Source::Named(Named::Backup(key)) => backups::entries(&ctx.project)
                .into_iter()
                .find(|e| e.id == key)
                .map(|e| e.id),
            _ => None,
        };
        let mut db = d1::open(&ctx.project, &target)?;
        let (source, from) = match (source, instant, from_env) {
            (_, _, Some(copied)) => copied,
            (_, Some(secs), None) => {
                let rfc = time::format_rfc3339(secs);
                let bookmark = db.bookmark_at(&rfc)?;
                ui::say(format!("Time Travel maps {rfc} to bookmark {bookmark}"));
                (
                    Restore::Bookmark(bookmark.clone()),
                    format!("the state at {rfc} (bookmark {bookmark})"),
                )
            }
            (Source::Named(named), None, None) => self.named_source(ctx, &target, named)?,
            (Source::Timestamp(_) | Source::FromEnv(_), None, None) => {
                return Err(failed!(
                    "db-restore: the source was not resolved (a bug: please report it)"
                ))
            }
        };
        if !target.env.is_remote() && matches!(source, Restore::Bookmark(_)) {
            return Err(usage!(
                "the local database has no Time Travel: restore it with --backup <id or path> or --last"
            ));
        }
        if target.env.is_remote() && matches!(source, Restore::Snapshot(_)) {
            return Err(usage!(
                "{from} is a local snapshot: it cannot be restored into the remote {} database",
                target.env
            ));
        }
        if ctx.global.dry_run {
            ui::say(format!("{}: restore {from}", target.describe()));
            ui::say("dry run: nothing is changed");
            return Ok(crate::commands::dry_run_report(&target));
        }
        let mut change = RestoreChange {
            target: &target,
            source,
            from: from.clone(),
            previous: None,
            after: State::default(),
        };
        let guard = Guard {
            command: "db-restore",
            confirm: Confirm::Yes,
            restore_point: !self.change.no_backup,
            restoring,
        };
        let done = change::run(ctx, &target, db.as_mut(), guard, &mut change)?;
        if let (None, Some(p)) = (&done.captured, &change.previous) {
            ui::say(format!(
                "to return to the state before this run: {}",
                backups::restore_command(ctx, &target, &format!("--bookmark {p}"))
            ));
        }
        Ok(Report::doc(json!({
            "env": target.env.name(),
            "database": target.database_json(),
            "restored_from": from,
            "restore_point": done.captured.as_ref().map(backups::Captured::json),
            "previous_bookmark": change.previous,
            "applied": change.after.applied.iter().map(|r| r.name.clone()).collect::<Vec<_>>(),
            "wrangler_calls": db.wrangler_calls(),
        })))
    }
    /// `--bookmark`, `--backup` or `--last`: what to restore, checked before anything runs,
    /// and how to name it to people.
    fn named_source(
        &self,
        ctx: &Ctx,
        target: &Target,
        named: Named<'_>,
    ) -> anyhow::Result<(Restore, String)> {
        let entry = match named {
            Named::Bookmark(b) => {
                if !b.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-') {
                    return Err(usage!(
                        "`{b}` is not a Time Travel bookmark (letters, digits and `-`)"
                    ));
                }
                return Ok((Restore::Bookmark(b.to_string()), format!("bookmark {b}")));
            }
            Named::Backup(key) => backups::find(&ctx.project, target, key, &ctx.cwd)?,
            Named::Last => {
                let e = backups::last(&ctx.project, target)?.candidate;
                let zone = time::zone(self.tz.as_deref()).map_err(|e| usage!("{e}"))?;
                ui::say(format!("--last: {}", e.describe(&ctx.project.root, &zone)));
                e
            }
        };
        backups::verify(&entry)?;
        from_entry(&entry)
    }
}

/// A restore, as the guarded-change path drives it (and `rollback`, for its database half).
pub(crate) struct RestoreChange<'a> {
    target: &'a Target,
    source: Restore,
    from: String,
    /// The bookmark Time Travel reports as the one before the restore.
    pub(crate) previous: Option<String>,
    pub(crate) after: State,
}

impl<'a> RestoreChange<'a> {
    /// A return to Time Travel bookmark `bookmark`; `from` names it to people.
    pub(crate) fn bookmark(target: &'a Target, bookmark: &str, from: String) -> RestoreChange<'a> {
        RestoreChange {
            target,
            source: Restore::Bookmark(bookmark.to_string()),
            from,
            previous: None,
            after: State::default(),
        }
    }
}

impl Change for RestoreChange<'_> {
    fn plan(&mut self, _state: &State) -> anyhow::Result<Option<String>> {
        Ok(Some(format!("restore {}", self.from)))
    }

    fn previous_bookmark(&self) -> Option<String> {
        self.previous.clone()
    }

    fn act(&mut self, act: &mut Act<'_>) -> anyhow::Result<()> {
        self.previous = crate::d1::ops::restore(act.db, &self.source, &act.before)?;
        self.after = act.db.state().map_err(|e| {
            failed!(
                "the restore ran, but reading the tracking table back failed: {e:#}\nthe database holds \
                 the restored state unless the restore itself failed"
            )
        })?;
        // The restored state may hold the lock row of whoever captured it: ours goes, and
        // that one with it (by its token), when the lock is released.
        act.held.note_restored(self.after.lock.as_ref());
        let n = self.after.applied.len();
        ui::say(format!(
            "restored {} to {}: {n} migration{} applied{}",
            self.target.describe(),
            self.from,
            if n == 1 { "" } else { "s" },
            self.after
                .applied
                .last()
                .map_or(String::new(), |r| format!(", the newest {}", r.name))
        ));
        Ok(())
    }
}

/// `--last` when the newest finished restore already went to the entry it would pick:
/// nothing is run, and the way to undo that restore is said.
fn already_there(
    ctx: &Ctx,
    target: &Target,
    candidate: &Entry,
    restore: &Entry,
) -> anyhow::Result<Report> {
    let undo = backups::restore_command(ctx, target, &format!("--backup {}", restore.id));
    ui::say(format!(
        "--last: nothing to do: the last change to {} was a restore to backup {} ({}), and it \
         finished; --last never undoes a restore. To undo that restore: {undo}",
        target.describe(),
        candidate.id,
        candidate.reason
    ));
    Ok(Report::doc(json!({
        "env": target.env.name(),
        "database": target.database_json(),
        "restored_from": null,
        "already_restored_to": candidate.id,
        "undo": undo,
        "wrangler_calls": 0,
    })))
}

fn from_entry(entry: &Entry) -> anyhow::Result<(Restore, String)> {
    let what = format!("backup {}", entry.id);
    Ok(match (entry.kind, &entry.bookmark, &entry.file) {
        (Kind::Bookmark, Some(b), _) => (
            Restore::Bookmark(b.clone()),
            format!("{what} (bookmark {b})"),
        ),
        (Kind::Snapshot, _, Some(f)) => (
            Restore::Snapshot(f.clone()),
            format!("{what} ({})", f.display()),
        ),
        (_, _, Some(f)) => (Restore::Sql(f.clone()), format!("{what} ({})", f.display())),
        (_, Some(b), None) => (
            Restore::Bookmark(b.clone()),
            format!("{what} (bookmark {b})"),
        ),
        (_, None, None) => {
            return Err(usage!(
                "backup {} has neither a bookmark nor a file in the backup index: the entry is damaged; \
                 pick another with `cargo xtask db-backup --list`",
                entry.id
            ))
        }
    })
}

/// A `--timestamp` must parse (see `time::FORMS`), must not be in the future and must be
/// inside Time Travel's retention window; checked before any wrangler call.
pub(crate) fn check_timestamp(
    raw: &str,
    retention_days: u32,
    now: &jiff::Zoned,
) -> anyhow::Result<i64> {
    let secs = time::parse_when(raw, now)
        .map_err(|e| usage!("--timestamp {e}"))?
        .as_second();
    let now_secs = now.timestamp().as_second();
    if secs > now_secs {
        return Err(usage!(
            "--timestamp {} is in the future (now is {}): Time Travel restores the past",
            time::format_rfc3339(secs),
            time::format_rfc3339(now_secs)
        ));
    }
    let oldest = now_secs - i64::from(retention_days) * 86_400;
    if secs < oldest {
        return Err(usage!(
            "--timestamp {} is older than Time Travel's retention window of {retention_days} days (the oldest \
             restorable moment is {}); restore a backup (--backup) instead",
            time::format_rfc3339(secs),
            time::format_rfc3339(oldest)
        ));
    }
    Ok(secs)
}

/// `--from-env <env>`: that environment's export, read into a scratch file, for the local
/// database only (never the other way). A protected source is confirmed, and the user is
/// told that its data now sits on this machine.
fn copy_from_env(
    ctx: &Ctx,
    target: &Target,
    env: &str,
) -> anyhow::Result<(std::path::PathBuf, String)> {
    if target.env.is_remote() {
        return Err(usage!(
            "--from-env copies into the local database only (it never writes to {}): drop --env {}",
            target.env,
            target.env
        ));
    }
    let source = ctx.config.resolve(
        &crate::workspace::target::Env::parse(Some(env)),
        ctx.global.database.as_deref(),
        &ctx.settings.protected,
    )?;
    if !source.env.is_remote() {
        return Err(usage!(
            "--from-env names the environment to copy from: `local` is where it copies to"
        ));
    }
    let plan = format!(
        "copy all data of {} into the local database (a read there; the local database is replaced)",
        source.describe()
    );
    crate::guarded::confirm::confirm_read(&source, ctx.global.yes, "db-restore --from-env", &plan)?;
    if ctx.global.dry_run {
        return Ok((
            std::path::PathBuf::new(),
            format!("an export of {}", source.describe()),
        ));
    }
    let scratch = backups::scratch_file(&ctx.project, "sql")?;
    let mut db = d1::open(&ctx.project, &source)?;
    let bookmark = match db.backup(&scratch)? {
        d1::BackupMade::Export { bookmark } => bookmark,
        d1::BackupMade::Snapshot => String::new(),
    };
    if source.protected {
        ui::say(format!(
            "note: real data of {} now sits on this machine (the local database, and its backups in \
             backups/local/); delete them when done",
            source.env
        ));
    }
    Ok((
        scratch.into_path(),
        format!(
            "an export of {} (at bookmark {bookmark})",
            source.describe()
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::check_timestamp;

    #[test]
    fn timestamps_are_checked_before_anything_runs() {
        let now: jiff::Zoned = "2025-11-22T00:19:28+00:00[UTC]".parse().unwrap();
        let secs = now.timestamp().as_second();
        assert_eq!(
            check_timestamp("2025-11-22T00:00:00Z", 30, &now).unwrap(),
            secs - 1168
        );
        assert_eq!(
            check_timestamp(&(secs - 60).to_string(), 30, &now).unwrap(),
            secs - 60
        );
        assert_eq!(
            check_timestamp("1 minute ago", 30, &now).unwrap(),
            secs - 60
        );
        let future = check_timestamp(&(secs + 3600).to_string(), 30, &now).unwrap_err();
        assert!(future.to_string().contains("in the future"), "{future}");
        let old = check_timestamp("2025-10-01T00:00:00Z", 30, &now).unwrap_err();
        assert!(
            old.to_string().contains("retention window of 30 days"),
            "{old}"
        );
        assert!(check_timestamp("2025-11-20T00:00:00Z", 7, &now).is_ok());
        assert!(check_timestamp("8 days ago", 7, &now).is_err());
        assert!(check_timestamp("last tuesday", 30, &now)
            .unwrap_err()
            .to_string()
            .contains("5 minutes ago"));
    }
}
