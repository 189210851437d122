//! `db-restore --bookmark <id> | --timestamp <time> | --backup <id or path> | --last`:
//! restore in place, after capturing the current state, and say how to undo it.

use serde_json::json;

use crate::backups::{self, Entry, Kind};
use crate::d1::Restore;
use crate::db_status::database_json;
use crate::exit::{failed, refused, usage};
use crate::target::Target;
use crate::{d1, flags, guard, lock, time, ui, Ctx};

impl flags::DbRestore {
    pub fn run(self, ctx: &Ctx) -> anyhow::Result<()> {
        let given = [
            self.bookmark.is_some(),
            self.timestamp.is_some(),
            self.backup.is_some(),
            self.last,
        ]
        .iter()
        .filter(|g| **g)
        .count();
        if given != 1 {
            return Err(usage!(
                "give exactly one of --bookmark <id>, --timestamp <time>, --backup <id or path>, --last"
            ));
        }
        let target = ctx.target()?;
        // A --timestamp is read and checked before any wrangler call.
        let instant = match &self.timestamp {
            Some(raw) => {
                let zone = time::zone(self.tz.as_deref()).map_err(|e| usage!("{e}"))?;
                let now = jiff::Timestamp::now().to_zoned(zone.clone());
                let secs = check_timestamp(raw, ctx.settings.retention_days, &now)?;
                ui::say(format!(
                    "--timestamp `{raw}` is {}",
                    time::describe(secs, &zone)
                ));
                Some(secs)
            }
            None => None,
        };
        if instant.is_some() && !target.env.is_remote() {
            return Err(usage!(
                "the local database has no Time Travel: restore it with --backup <id or path> or --last"
            ));
        }
        let mut db = d1::open(&ctx.project, &target)?;
        let (source, from) = match instant {
            Some(secs) => {
                let rfc = time::format_rfc3339(secs);
                let bookmark = db.bookmark_at(&rfc)?;
                ui::say(format!("Time Travel maps {rfc} to bookmark {bookmark}"));
                (
                    Restore::Bookmark(bookmark.clone()),
                    format!("the state at {rfc} (bookmark {bookmark})"),
                )
            }
            None => self.source(ctx, &target)?,
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
        if self.no_backup && target.protected {
            return Err(refused!(
                "--no-backup is not allowed on {}, a protected environment",
                target.env
            ));
        }
        ui::say(format!(
            "{} · {}: restore {from}",
            target.env,
            target.db.describe()
        ));
        if ctx.global.dry_run {
            ui::say("dry run: nothing is changed");
            return Ok(());
        }
        guard::precheck(&target, &format!("restore {from}"), ctx.global.yes)?;
        guard::confirm(&target, &format!("restore {from}"), ctx.global.yes)?;

        // The restore point comes before the lock (see db-migrate); the lock's release
        // afterwards also clears lock rows older than ours that the restore brought back.
        let taken = if self.no_backup {
            None
        } else {
            Some(backups::take(ctx, db.as_mut())?)
        };
        lock::with_lock(
            ctx,
            &target,
            db.as_mut(),
            "db-restore",
            |db, before, _held| {
                let captured = match taken {
                    Some(t) => Some(backups::record_point(
                        ctx,
                        &target,
                        db,
                        t,
                        &before,
                        "before db-restore",
                    )?),
                    None => None,
                };
                let undo = captured.as_ref().map_or(String::new(), |c| {
                    format!("\nto undo this restore: {}", c.undo)
                });
                let previous = db
                    .restore(&source, &before)
                    .map_err(|e| failed!("{e:#}{undo}"))?;
                let after = db.state().map_err(|e| {
                    failed!(
                        "the restore ran, but reading the tracking table back failed: {e:#}\nthe database holds \
                         the restored state unless the restore itself failed: check with \
                         `cargo xtask db-status --env {}`{undo}",
                        target.env
                    )
                })?;
                ui::say(format!(
                    "restored {} {} to {from}: {} migration{} applied{}",
                    target.env,
                    target.db.binding,
                    after.applied.len(),
                    if after.applied.len() == 1 { "" } else { "s" },
                    after
                        .applied
                        .last()
                        .map_or(String::new(), |r| format!(", the newest {}", r.name))
                ));
                if let Some(c) = &captured {
                    ui::say(format!("to undo this restore: {}", c.undo));
                } else if let Some(p) = &previous {
                    ui::say(format!(
                        "to undo this restore: {}",
                        backups::restore_command(ctx, &target, &format!("--bookmark {p}"))
                    ));
                }
                if ctx.global.json {
                    ui::json(&json!({
                        "env": target.env.name(),
                        "database": database_json(&target),
                        "restored_from": from,
                        "restore_point": captured.as_ref().map(backups::Captured::json),
                        "previous_bookmark": previous,
                        "applied": after.applied.iter().map(|r| r.name.clone()).collect::<Vec<_>>(),
                        "wrangler_calls": db.wrangler_calls(),
                    }));
                }
                Ok(())
            },
        )
    }

    /// What to restore, checked before anything runs, and how to name it to people.
    fn source(&self, ctx: &Ctx, target: &Target) -> anyhow::Result<(Restore, String)> {
        if let Some(b) = &self.bookmark {
            if !b.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-') {
                return Err(usage!(
                    "`{b}` is not a Time Travel bookmark (letters, digits and `-`)"
                ));
            }
            return Ok((Restore::Bookmark(b.clone()), format!("bookmark {b}")));
        }
        let entry = match &self.backup {
            Some(key) => backups::find(&ctx.project, target, key, &ctx.cwd)?,
            None => {
                let e = backups::last(&ctx.project, target)?;
                let zone = time::zone(self.tz.as_deref()).map_err(|e| usage!("{e}"))?;
                ui::say(format!("--last: {}", e.describe(&ctx.project.root, &zone)));
                e
            }
        };
        backups::verify(&entry)?;
        Ok(from_entry(&entry))
    }
}

fn from_entry(entry: &Entry) -> (Restore, String) {
    let what = format!("backup {}", entry.id);
    match (entry.kind, &entry.bookmark, &entry.file) {
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
        (_, None, None) => (Restore::Bookmark(String::new()), what),
    }
}

/// A `--timestamp` must parse (see `time::FORMS`), must not be in the future and must be
/// inside Time Travel's retention window; checked before any wrangler call.
pub fn check_timestamp(raw: &str, retention_days: u32, now: &jiff::Zoned) -> anyhow::Result<i64> {
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
