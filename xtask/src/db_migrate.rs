//! `db-migrate [--to <version>] [--per-file] [--no-backup] [--verify <command>]`: lint,
//! check drift, capture a restore point, apply in one request, believe only the tracking
//! table, then verify and undo on failure.

use serde_json::json;

use crate::backups::{self, Captured};
use crate::d1::{ApplyMode, Database, Restore, RestorePoint, State};
use crate::db_status::database_json;
use crate::exit::{failed, refused, usage};
use crate::migrations::{Migration, MigrationSet};
use crate::target::Target;
use crate::wrangler::display_command;
use crate::{d1, flags, guard, plan, ui, Ctx};

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
        if self.no_backup && self.verify.is_some() {
            return Err(usage!(
                "--verify needs the restore point that --no-backup skips: drop one of them"
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
            if let Some(cmd) = &self.verify {
                ui::say(format!(
                    "  then: sh -c {cmd:?}; on failure, restore the restore point"
                ));
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
            Some(backups::capture(
                ctx,
                &target,
                db.as_mut(),
                &before,
                "before db-migrate",
            )?)
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
            if let (Some(cmd), Some(captured)) = (&self.verify, &captured) {
                verify(ctx, &target, db.as_mut(), cmd, captured, &before, &after)?;
            }
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

fn undo_line(captured: Option<&Captured>) -> String {
    captured.map_or(String::new(), Captured::undo_line)
}

/// Runs the `--verify` command; if it fails, returns the database to the restore point
/// and confirms that through the tracking table.
fn verify(
    ctx: &Ctx,
    target: &Target,
    db: &mut dyn Database,
    cmd: &str,
    captured: &Captured,
    before: &State,
    after: &State,
) -> anyhow::Result<()> {
    ui::say(format!("verifying: {cmd}"));
    let mut command = if cfg!(windows) {
        let mut c = std::process::Command::new("cmd");
        c.args(["/C", cmd]);
        c
    } else {
        let mut c = std::process::Command::new("sh");
        c.args(["-c", cmd]);
        c
    };
    command
        .env("XTASK_ENV", target.env.name())
        .env("XTASK_D1_BINDING", &target.db.binding)
        .env("XTASK_D1_DATABASE", target.db.label())
        .env(
            "XTASK_D1_DATABASE_ID",
            target.db.id.as_deref().unwrap_or(""),
        );
    if ctx.global.json {
        // stdout carries the one JSON document: the command's output goes to stderr.
        command.stdout(std::io::stderr());
    }
    let status = command.status().map_err(|e| {
        failed!(
            "could not run the --verify command `{cmd}`: {e}{}",
            captured.undo_line()
        )
    })?;
    if status.success() {
        ui::say(format!("verified: `{cmd}` passed"));
        return Ok(());
    }
    ui::say(format!(
        "`{cmd}` failed ({status}): restoring the restore point {}",
        captured.entry.id
    ));
    let source = match &captured.point {
        RestorePoint::Bookmark(b) => Restore::Bookmark(b.clone()),
        RestorePoint::Snapshot(p) => Restore::Snapshot(p.clone()),
    };
    if let Err(e) = db.restore(&source, after) {
        return Err(failed!(
            "`{cmd}` failed ({status}) and restoring the restore point failed too: {e:#}\nthe migrations of \
             this run are still applied; restore by hand: {}",
            captured.undo
        ));
    }
    let restored = db.state()?;
    let names = |s: &State| s.applied.iter().map(|r| r.name.clone()).collect::<Vec<_>>();
    if names(&restored) != names(before) {
        return Err(failed!(
            "`{cmd}` failed ({status}); the restore ran, but the tracking table now lists {:?}, not {:?} as \
             before the migration: check with `cargo xtask db-status --env {}`",
            names(&restored),
            names(before),
            target.env
        ));
    }
    Err(failed!(
        "verification failed: `{cmd}` exited with {status}; the database was restored to the restore point {} \
         taken before this run, and its tracking table confirms it: {} migration{} applied{}",
        captured.entry.id,
        restored.applied.len(),
        plural(restored.applied.len()),
        restored.applied.last().map_or(String::new(), |r| format!(", the newest {}", r.name))
    ))
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
