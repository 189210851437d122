//! `db-reset [--to <version>] [--seed]`: drop everything the migrations made and apply
//! them again, in one request, after a restore point; then seed if asked.

use serde_json::json;

use crate::backups;
use crate::d1::{batch_sql, drop_all_sql, Extras, State};
use crate::db_seed::{load, refuse_pending};
use crate::db_status::database_json;
use crate::exit::{failed, refused};
use crate::migrations::{Migration, MigrationSet};
use crate::seeds::{files_with_prefix, SeedFile};
use crate::target::Target;
use crate::{d1, flags, guard, lock, ui, Ctx};

impl flags::DbReset {
    pub fn run(self, ctx: &Ctx) -> anyhow::Result<()> {
        let target = ctx.target()?;
        let set = MigrationSet::scan(&target.db.migrations_dir)?;
        let lint_errors: Vec<String> = set.errors().map(|f| format!("  {f}")).collect();
        if !lint_errors.is_empty() {
            return Err(refused!(
                "lint found errors in {}; nothing was changed:\n{}",
                set.dir.display(),
                lint_errors.join("\n")
            ));
        }
        let to = self.to.as_deref().map(|v| set.find(v)).transpose()?;
        if self.seed && target.protected {
            return Err(refused!(
                "--seed on {}: test data never goes into a protected environment; nothing was changed",
                target.env
            ));
        }
        if self.no_backup && target.protected {
            return Err(refused!(
                "--no-backup is not allowed on {}, a protected environment",
                target.env
            ));
        }
        let seeds = if self.seed {
            let paths = files_with_prefix(&ctx.project.root.join("test-data"), "seed-")?;
            paths
                .iter()
                .map(|p| SeedFile::load(p))
                .collect::<anyhow::Result<Vec<_>>>()?
        } else {
            Vec::new()
        };
        let chosen: Vec<&Migration> = set
            .migrations
            .iter()
            .filter(|m| to.is_none_or(|t| (m.number, &m.name) <= (t.number, &t.name)))
            .collect();
        guard::confirm_name(&target, "reset the database", self.confirm.as_deref())?;

        let mut db = d1::open(&ctx.project, &target)?;
        if ctx.global.dry_run {
            let before = db.state()?;
            describe_plan(&target, &before, &chosen, to);
            ui::say("dry run: nothing is changed");
            return Ok(());
        }
        // The restore point comes before the lock (see db-migrate).
        let taken = if self.no_backup {
            None
        } else {
            Some(backups::take(ctx, db.as_mut())?)
        };
        lock::with_lock(ctx, &target, db.as_mut(), "db-reset", |db, before, held| {
            let dropped = describe_plan(&target, &before, &chosen, to);
            let captured = match taken {
                Some(t) => Some(backups::record_point(
                    ctx,
                    &target,
                    db,
                    t,
                    &before,
                    "before db-reset",
                )?),
                None => None,
            };
            let undo = captured
                .as_ref()
                .map_or(String::new(), backups::Captured::undo_line);
            // One request: the drops and every migration with its tracking row (and, when
            // there is no seeding to follow, the lock's release), so a reset is all or nothing.
            let release = seeds
                .is_empty()
                .then(|| (held.token.clone(), held.acquired_at));
            let extras = Extras {
                first_sight: Vec::new(),
                release: release.clone(),
            };
            let sql = format!(
                "{}PRAGMA defer_foreign_keys = false;\n{}",
                drop_all_sql(&before.schema),
                batch_sql(&target.db.migrations_table, &chosen, &extras)
            );
            if let Err(e) = db.execute_sql(&sql)? {
                return Err(failed!(
                    "reset of {} {} failed: {e}\nit was one request, so the database is as it was{undo}",
                    target.env,
                    target.db.binding
                ));
            }
            if release.is_some() {
                held.released = true;
            } else {
                // The drop took our lock row with the lock table: take it back for the seeding.
                let row = crate::d1::LockRow {
                    token: held.token.clone(),
                    holder: "db-reset".into(),
                    host: String::new(),
                    pid: i64::from(std::process::id()),
                    command: "db-reset --seed".into(),
                    acquired_at: held.acquired_at,
                };
                let _ = db.execute_sql(&crate::d1::lock_insert_sql(
                    &target.db.migrations_table,
                    &row,
                ))?;
            }
            let after = db.state()?;
            let applied: Vec<&str> = after.applied.iter().map(|r| r.name.as_str()).collect();
            let wanted: Vec<&str> = chosen.iter().map(|m| m.name.as_str()).collect();
            if applied != wanted {
                return Err(failed!(
                    "reset of {} {} ran, but the tracking table lists {applied:?} instead of {wanted:?}{undo}",
                    target.env,
                    target.db.binding
                ));
            }
            ui::say(format!(
                "reset {} {}: {} migration{} applied{}{undo}",
                target.env,
                target.db.binding,
                applied.len(),
                if applied.len() == 1 { "" } else { "s" },
                applied
                    .last()
                    .map_or(String::new(), |n| format!(", the newest {n}"))
            ));
            if !seeds.is_empty() {
                refuse_pending(&target, &after)?;
                load(db, &seeds)
                    .map_err(|e| failed!("the reset is done, but seeding failed: {e}"))?;
                ui::say(format!(
                    "seeded {} file{}",
                    seeds.len(),
                    if seeds.len() == 1 { "" } else { "s" }
                ));
            }
            if ctx.global.json {
                ui::json(&json!({
                    "env": target.env.name(),
                    "database": database_json(&target),
                    "dropped": dropped,
                    "applied": applied,
                    "seeded": seeds.iter().map(|s| s.path.display().to_string()).collect::<Vec<_>>(),
                    "restore_point": captured.as_ref().map(backups::Captured::json),
                    "wrangler_calls": db.wrangler_calls(),
                }));
            }
            Ok(())
        })
    }
}

/// Says what a reset will drop and apply; returns the objects it drops.
fn describe_plan(
    target: &Target,
    before: &State,
    chosen: &[&Migration],
    to: Option<&Migration>,
) -> Vec<String> {
    // The tracking and side tables go too, but they are the xtask's, not the user's.
    let table = &target.db.migrations_table;
    let own = [
        table.clone(),
        crate::d1::checksum_table(table),
        crate::d1::lock_table(table),
    ];
    let dropped: Vec<String> = before
        .schema
        .iter()
        .filter(|o| o.kind != "index" && !own.contains(&o.name))
        .map(|o| format!("{} {}", o.kind, o.name))
        .collect();
    ui::say(format!(
        "{} · {}: drop {} object{} ({}) and the tracking tables, then apply {} migration{}{}",
        target.env,
        target.db.describe(),
        dropped.len(),
        if dropped.len() == 1 { "" } else { "s" },
        if dropped.is_empty() {
            "the database is empty".to_string()
        } else {
            dropped.join(", ")
        },
        chosen.len(),
        if chosen.len() == 1 { "" } else { "s" },
        to.map_or(String::new(), |t| format!(" (up to {})", t.name))
    ));
    dropped
}
