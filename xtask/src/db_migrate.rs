//! `db-migrate [--to <version>] [--per-file]`: lint, check drift, apply in one request,
//! then believe only the tracking table.

use serde_json::json;

use crate::d1::{ApplyMode, Database, State};
use crate::db_status::database_json;
use crate::exit::{failed, refused};
use crate::migrations::{Migration, MigrationSet};
use crate::target::Target;
use crate::wrangler::display_command;
use crate::{d1, flags, plan, ui, Ctx};

impl flags::DbMigrate {
    pub fn run(self, ctx: &Ctx) -> anyhow::Result<()> {
        let target = ctx.target()?;
        let set = MigrationSet::scan(&target.db.migrations_dir)?;
        let lint_errors: Vec<String> = set.errors().map(|f| format!("  {f}")).collect();
        if !lint_errors.is_empty() {
            return Err(refused!(
                "lint found {} error{} in {}; nothing was applied:\n{}",
                lint_errors.len(),
                if lint_errors.len() == 1 { "" } else { "s" },
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
            return report(ctx, &target, db.as_ref(), &[], &before, mode);
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

        let outcome = db.apply(&chosen, mode)?;
        // wrangler can exit 0 on a failed migration: only the tracking table is believed.
        let after = db.state()?;
        let missing: Vec<&&Migration> = chosen
            .iter()
            .filter(|m| !after.is_applied(&m.name))
            .collect();
        if outcome.error.is_none() && missing.is_empty() {
            ui::say(format!(
                "applied {} migration{}: {}",
                chosen.len(),
                if chosen.len() == 1 { "" } else { "s" },
                names.join(", ")
            ));
            return report(ctx, &target, db.as_ref(), &chosen, &after, mode);
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
        Err(failed!("{msg}"))
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
            if after.applied.len() == 1 { "" } else { "s" },
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
) -> anyhow::Result<()> {
    if ctx.global.json {
        ui::json(&json!({
            "env": target.env.name(),
            "database": database_json(target),
            "applied": applied.iter().map(|m| m.name.clone()).collect::<Vec<_>>(),
            "total_applied": after.applied.len(),
            "mode": mode_name(mode),
            "wrangler_calls": db.wrangler_calls(),
        }));
    }
    Ok(())
}
