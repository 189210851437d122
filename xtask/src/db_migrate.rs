//! `db-migrate [--to <version>] [--per-file] [--no-backup]`: lint, check drift, capture a
//! restore point, apply in one request, then believe only the tracking table.

use serde_json::json;

use crate::d1::{ApplyMode, Database, RestorePoint, State};
use crate::db_status::database_json;
use crate::exit::{failed, refused};
use crate::migrations::{Migration, MigrationSet};
use crate::target::Target;
use crate::wrangler::display_command;
use crate::{backups, d1, flags, guard, plan, ui, Ctx};

/// A restore point as the user sees it: what it is, its index entry, how to go back.
struct Captured {
    point: RestorePoint,
    backup_id: String,
    undo: String,
}

impl Captured {
    fn json(&self) -> serde_json::Value {
        match &self.point {
            RestorePoint::Bookmark(b) => {
                json!({"bookmark": b, "backup": self.backup_id, "undo": self.undo})
            }
        }
    }
}

impl flags::DbMigrate {
    pub fn run(self, ctx: &Ctx) -> anyhow::Result<()> {
        let target = ctx.target()?;
        let set = MigrationSet::scan(&target.db.migrations_dir)?;
        let lint_errors: Vec<String> = set.errors().map(|f| format!("  {f}")).collect();
        if !lint_errors.is_empty() {
            return Err(refused!(
                "lint found {} error{} in {}; nothing was applied:\n{}",
                lint_errors.len(),
                plural(lint_errors.len()),
                set.dir.display(),
                lint_errors.join("\n")
            ));
        }
        // `--to` must name a file that exists: checked before the database is read.
        let to = self.to.as_deref().map(|v| set.find(v)).transpose()?;
        let mode = if self.per_file {
            ApplyMode::PerFile
        } else {
            ApplyMode::Atomic
        };
        if self.no_backup && target.protected {
            return Err(refused!(
                "--no-backup is not allowed on {}, a protected environment: a restore point is always taken there",
                target.env
            ));
        }

        let mut db = d1::open(&ctx.project, &target)?;
        let before = db.state()?;
        let status = plan::status(&set, &before);
        let blocking: Vec<String> = status
            .blocking()
            .map(|p| format!("  {}", p.message))
            .collect();
        if !blocking.is_empty() {
            return Err(refused!(
                "drift: the tracking table and {} disagree; nothing was applied:\n{}",
                set.dir.display(),
                blocking.join("\n")
            ));
        }
        let chosen = plan::select(&status, to);
        if chosen.is_empty() {
            match to {
                Some(t) => ui::say(format!(
                    "nothing to apply: {} and everything before it are applied",
                    t.name
                )),
                None => ui::say(format!(
                    "nothing to apply: all {} migrations are applied",
                    status.applied.len()
                )),
            }
            return report(ctx, &target, db.as_ref(), &[], &before, mode, None);
        }
        let names: Vec<&str> = chosen.iter().map(|m| m.name.as_str()).collect();
        ui::say(format!(
            "{} · {}: {} to apply{}",
            target.env,
            target.db.describe(),
            chosen.len(),
            to.map_or(String::new(), |t| format!(" (up to {})", t.name))
        ));
        if ctx.global.dry_run {
            ui::say("dry run: nothing is changed; this would run:");
            if target.env.is_remote() && !self.no_backup {
                ui::say(format!(
                    "  $ {}",
                    display_command(&target.time_travel_args("info", &["--json"]))
                ));
            }
            for args in db.apply_commands(&chosen, mode) {
                ui::say(format!("  $ {}", display_command(&args)));
            }
            for m in &chosen {
                ui::say(format!("  {}", m.path.display()));
            }
            if ctx.global.json {
                ui::json(&json!({
                    "env": target.env.name(),
                    "database": database_json(&target),
                    "dry_run": true,
                    "would_apply": names,
                    "mode": mode_name(mode),
                }));
            }
            return Ok(());
        }

        guard::confirm(
            &target,
            &format!("apply {} migration{}", chosen.len(), plural(chosen.len())),
            ctx.global.yes,
        )?;
        let captured = if self.no_backup {
            None
        } else {
            capture(ctx, &target, db.as_mut(), &before)?
        };

        let outcome = db.apply(&chosen, mode, &before)?;
        // wrangler can exit 0 on a failed migration: only the tracking table is believed.
        let after = match outcome.after.clone() {
            Some(state) if outcome.error.is_none() => state,
            _ => match db.state() {
                Ok(state) => state,
                Err(e) => {
                    let why = outcome
                        .error
                        .clone()
                        .unwrap_or_else(|| "the apply was not confirmed".into());
                    return Err(failed!(
                        "applying failed: {why}\nreading the tracking table back failed too ({e:#}): what is applied \
                         is unknown; check with `cargo xtask db-status --env {}`{}",
                        target.env,
                        undo_line(captured.as_ref())
                    ));
                }
            },
        };
        let missing: Vec<&&Migration> = chosen
            .iter()
            .filter(|m| !after.is_applied(&m.name))
            .collect();
        if outcome.error.is_none() && missing.is_empty() {
            ui::say(format!(
                "applied {} migration{}: {}{}",
                chosen.len(),
                plural(chosen.len()),
                names.join(", "),
                undo_line(captured.as_ref())
            ));
            return report(
                ctx,
                &target,
                db.as_ref(),
                &chosen,
                &after,
                mode,
                captured.as_ref(),
            );
        }
        let applied_now: Vec<&str> = chosen
            .iter()
            .filter(|m| after.is_applied(&m.name))
            .map(|m| m.name.as_str())
            .collect();
        let culprit = outcome
            .failed
            .clone()
            .or_else(|| missing.first().map(|m| m.name.clone()))
            .unwrap_or_default();
        let why = outcome.error.clone().unwrap_or_else(|| {
            "wrangler reported success, but the tracking table does not record it".into()
        });
        let mut msg = format!("migration {culprit} failed: {why}\n");
        msg.push_str(&describe_after(&target, &after, &applied_now, &missing));
        if !applied_now.is_empty() {
            msg.push_str(&undo_line(captured.as_ref()));
        }
        Err(failed!("{msg}"))
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// Takes the restore point, records it in the backup index and tells the user (and a
/// GitHub workflow) about it.
fn capture(
    ctx: &Ctx,
    target: &Target,
    db: &mut dyn Database,
    before: &State,
) -> anyhow::Result<Option<Captured>> {
    let Some(point) = db.restore_point()? else {
        return Ok(None);
    };
    let applied: Vec<String> = before.applied.iter().map(|r| r.name.clone()).collect();
    let undo = db.undo_command(&point);
    let backup_id = match &point {
        RestorePoint::Bookmark(b) => {
            let id =
                backups::record_bookmark(&ctx.project, target, b, &applied, "before db-migrate")?;
            backups::github_output(b)?;
            ui::say(format!(
                "restore point: Time Travel bookmark {b} (backup index {id})"
            ));
            id
        }
    };
    Ok(Some(Captured {
        point,
        backup_id,
        undo,
    }))
}

fn undo_line(captured: Option<&Captured>) -> String {
    match captured {
        Some(c) => format!("\nto return to the state before this run: {}", c.undo),
        None => String::new(),
    }
}

fn mode_name(mode: ApplyMode) -> &'static str {
    match mode {
        ApplyMode::Atomic => "atomic",
        ApplyMode::PerFile => "per-file",
    }
}

/// What the database holds after a failed run, read from the tracking table.
fn describe_after(
    target: &Target,
    after: &State,
    applied_now: &[&str],
    missing: &[&&Migration],
) -> String {
    let mut out = String::new();
    if applied_now.is_empty() {
        out.push_str("nothing from this run was applied; ");
    } else {
        out.push_str(&format!(
            "applied in this run and kept: {}; ",
            applied_now.join(", ")
        ));
    }
    out.push_str(&format!(
        "not applied: {}\n",
        missing
            .iter()
            .map(|m| m.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    match after.applied.last() {
        Some(last) => out.push_str(&format!(
            "{} {} now has {} migration{} applied, the newest {}",
            target.env,
            target.db.binding,
            after.applied.len(),
            plural(after.applied.len()),
            last.name
        )),
        None => out.push_str(&format!(
            "{} {} has no migration applied",
            target.env, target.db.binding
        )),
    }
    out.push_str("; fix the migration and run `cargo xtask db-migrate` again");
    out
}

fn report(
    ctx: &Ctx,
    target: &Target,
    db: &dyn Database,
    applied: &[&Migration],
    after: &State,
    mode: ApplyMode,
    captured: Option<&Captured>,
) -> anyhow::Result<()> {
    if ctx.global.json {
        ui::json(&json!({
            "env": target.env.name(),
            "database": database_json(target),
            "applied": applied.iter().map(|m| m.name.clone()).collect::<Vec<_>>(),
            "total_applied": after.applied.len(),
            "mode": mode_name(mode),
            "restore_point": captured.map(Captured::json),
            "wrangler_calls": db.wrangler_calls(),
        }));
    }
    Ok(())
}
