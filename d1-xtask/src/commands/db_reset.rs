//! `db-reset [--to <version>] [--seed]`: drop everything the migrations made and apply
//! them again, in one request, after a restore point; then seed if asked.

use std::path::PathBuf;

use serde_json::json;

use crate::commands::db_seed::files::{load_with_prefix, SeedFile};
use crate::commands::db_seed::preflight;
use crate::d1::{batch_sql, drop_all_sql, template, Database, Extras, State};
use crate::exit::{failed, refused};
use crate::guarded::backups;
use crate::guarded::change::{self, Act, Change, Guard};
use crate::guarded::confirm::Confirm;
use crate::migrations::{Migration, MigrationSet};
use crate::ui::{self, Report};
use crate::workspace::options::Changing;
use crate::workspace::project::Project;
use crate::workspace::target::Target;
use crate::wrangler::Wrangler;
use crate::{d1, workspace::Ctx};

/// `db-reset` and its flags.
#[derive(clap::Args, Clone, Debug, PartialEq)]
pub struct DbReset {
    /// apply again only up to and including this migration
    #[arg(long, value_name = "version")]
    pub(crate) to: Option<String>,
    /// load the test data's seed-*.sql afterwards
    #[arg(long)]
    pub(crate) seed: bool,
    /// on a protected environment without a terminal: the database name (--yes is not enough)
    #[arg(long, value_name = "database_name")]
    pub(crate) confirm: Option<String>,
    /// local: build through wrangler even when a template of the same inputs exists
    #[arg(long)]
    pub(crate) rebuild: bool,
    #[command(flatten)]
    pub(crate) change: Changing,
}

impl DbReset {
    pub(crate) fn run(self, ctx: &Ctx) -> anyhow::Result<Report> {
        let target = ctx.target()?;
        let set = MigrationSet::for_target(&target)?;
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
        let seeds = if self.seed {
            load_with_prefix(&ctx.project.test_data, "seed-")?
        } else {
            Vec::new()
        };
        let chosen: Vec<&Migration> = set
            .migrations
            .iter()
            .filter(|m| to.is_none_or(|t| (m.number, &m.name) <= (t.number, &t.name)))
            .collect();
        let mut db = d1::open(&ctx.project, &target)?;
        let template = self.template(ctx, &target, db.as_ref(), &chosen, &seeds);
        // A template of these very inputs was made by a reset (or a test build) that ran
        // them through wrangler: they passed these checks then.
        let from_template = template.as_ref().is_some_and(|t| t.found.is_some());
        if !seeds.is_empty() && !from_template {
            check_seeds(&target, &set, &chosen, &seeds)?;
        }
        if ctx.global.dry_run {
            let before = db.state()?;
            let (plan, _) = describe_plan(&target, &before, &chosen, to);
            ui::say(format!("{}: {plan}", target.describe()));
            if let Some(Template {
                found: Some(path), ..
            }) = &template
            {
                ui::say(format!(
                    "  from the template {} (inputs unchanged): no wrangler process",
                    path.display()
                ));
            }
            ui::say("dry run: nothing is changed");
            return Ok(crate::commands::dry_run_report(&target));
        }
        let mut change = Reset {
            project: &ctx.project,
            target: &target,
            chosen: &chosen,
            to,
            seeds: &seeds,
            template,
            dropped: Vec::new(),
            applied: Vec::new(),
        };
        let guard = Guard {
            command: "db-reset",
            confirm: Confirm::Name(self.confirm.as_deref()),
            restore_point: !self.change.no_backup,
            restoring: None,
        };
        let done = change::run(ctx, &target, db.as_mut(), guard, &mut change)?;
        Ok(Report::doc(json!({
            "env": target.env.name(),
            "database": target.database_json(),
            "dropped": change.dropped,
            "applied": change.applied,
            "seeded": seeds.iter().map(|s| s.path.display().to_string()).collect::<Vec<_>>(),
            "restore_point": done.captured.as_ref().map(backups::Captured::json),
            "template": change.template.as_ref().map(|t| json!({
                "key": t.key,
                "used": t.found.is_some(),
                "made": t.made,
            })),
            "wrangler_calls": db.wrangler_calls(),
        })))
    }

    /// The template of this reset's inputs: local databases read directly only, and only
    /// when the wrangler that would build it is known. `found` is `None` with `--rebuild`.
    fn template(
        &self,
        ctx: &Ctx,
        target: &Target,
        db: &dyn Database,
        chosen: &[&Migration],
        seeds: &[SeedFile],
    ) -> Option<Template> {
        if target.env.is_remote() {
            return None;
        }
        db.local_file()?;
        let inputs = template::Inputs {
            target,
            migrations: chosen,
            seeds: seeds
                .iter()
                .map(|s| (s.short_name(), s.sql.as_str()))
                .collect(),
            to: self.to.as_deref(),
            wrangler: Wrangler::fingerprint_for(&ctx.project)?,
        };
        let key = inputs.key();
        let found = if self.rebuild {
            None
        } else {
            template::find(&ctx.project, &key)
        };
        Some(Template {
            key,
            found,
            made: false,
        })
    }
}

/// The template a local reset restores from, or makes.
struct Template {
    key: String,
    /// The template file when one of the same inputs exists (and `--rebuild` is not given).
    found: Option<PathBuf>,
    /// Whether this reset made it.
    made: bool,
}

/// `db-reset`, as the guarded-change path drives it.
struct Reset<'a> {
    project: &'a Project,
    target: &'a Target,
    chosen: &'a [&'a Migration],
    to: Option<&'a Migration>,
    seeds: &'a [SeedFile],
    template: Option<Template>,
    dropped: Vec<String>,
    applied: Vec<String>,
}

impl Change for Reset<'_> {
    fn plan(&mut self, state: &State) -> anyhow::Result<Option<String>> {
        let (plan, dropped) = describe_plan(self.target, state, self.chosen, self.to);
        self.dropped = dropped;
        Ok(Some(plan))
    }

    fn act(&mut self, act: &mut Act<'_>) -> anyhow::Result<()> {
        let target = self.target;
        let what = if self.seeds.is_empty() {
            "reset"
        } else {
            "reset and seeding"
        };
        if let Some(path) = self.template.as_ref().and_then(|t| t.found.clone()) {
            let after = act.replace_with(&path)?;
            ui::say(format!(
                "{what} of {} from the template of these inputs ({}): no wrangler process",
                target.describe(),
                path.display()
            ));
            return self.check_and_say(target, what, &after, true);
        }
        let table = &target.db.migrations_table;
        // One request: the drops, every migration with its tracking row and checksum, every
        // seed file and the lock's release, so a reset (with its seeding) is all or
        // nothing. The lock table is kept: the lock stays held until the release.
        let mut sql = format!(
            "{}PRAGMA defer_foreign_keys = false;\n{}",
            drop_all_sql(&act.before.schema, &[crate::d1::lock_table(table)]),
            batch_sql(table, self.chosen, &Extras::default())
        );
        sql.push_str(&crate::commands::db_seed::files::joined_sql(self.seeds));
        let after = match act.commit(&sql)? {
            Ok(after) => after,
            Err(e) => {
                return Err(failed!(
                    "{what} of {} failed: {e}\nit was one request, so the database is as it was before the reset",
                    target.describe()
                ))
            }
        };
        self.check_and_say(target, what, &after, false)?;
        if let (Some(template), Some(file)) = (self.template.as_mut(), act.db.local_file()) {
            match template::save(self.project, &template.key, &file) {
                Ok(path) => {
                    template.made = true;
                    ui::say(format!(
                        "kept as the template of these inputs: {} (the next reset of them starts no wrangler process)",
                        path.display()
                    ));
                }
                Err(e) => ui::say(format!(
                    "warning: {e:#}; the next reset runs through wrangler again"
                )),
            }
        }
        Ok(())
    }
}

impl Reset<'_> {
    /// Checks the tracking table the reset left and says what it did.
    fn check_and_say(
        &mut self,
        target: &Target,
        what: &str,
        after: &State,
        from_template: bool,
    ) -> anyhow::Result<()> {
        let applied: Vec<String> = after.applied.iter().map(|r| r.name.clone()).collect();
        let wanted: Vec<String> = self.chosen.iter().map(|m| m.name.clone()).collect();
        if applied != wanted {
            return Err(failed!(
                "{what} of {} ran, but the tracking table lists {applied:?} instead of {wanted:?}",
                target.describe()
            ));
        }
        ui::say(format!(
            "reset {}: {} migration{} applied{}",
            target.describe(),
            applied.len(),
            if applied.len() == 1 { "" } else { "s" },
            applied
                .last()
                .map_or(String::new(), |n| format!(", the newest {n}"))
        ));
        self.applied = applied;
        if !self.seeds.is_empty() {
            let names: Vec<String> = self.seeds.iter().map(|s| s.short_name()).collect();
            ui::say(format!(
                "seeded {} file{} {}: {}",
                self.seeds.len(),
                if self.seeds.len() == 1 { "" } else { "s" },
                if from_template {
                    "(their rows are in the template)"
                } else {
                    "in the same request"
                },
                names.join(", ")
            ));
        }
        Ok(())
    }
}

/// What a reset will drop and apply, in words, and the objects it drops.
fn describe_plan(
    target: &Target,
    before: &State,
    chosen: &[&Migration],
    to: Option<&Migration>,
) -> (String, Vec<String>) {
    // The tracking and side tables go too, but they are the xtask's, not the user's.
    let table = &target.db.migrations_table;
    let own = crate::d1::own_tables(table);
    // A virtual table's shadow tables go with it.
    let shadows = crate::d1::schema::shadow_tables(&before.schema);
    let dropped: Vec<String> = before
        .schema
        .iter()
        .filter(|o| {
            o.kind != "index"
                && !own.contains(&o.name)
                && !shadows.contains(&o.name.to_ascii_lowercase())
        })
        .map(|o| format!("{} {}", o.kind, o.name))
        .collect();
    let plan = format!(
        "drop {} object{} ({}) and the tracking tables, then apply {} migration{}{}",
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
    );
    (plan, dropped)
}

/// Seeding rides in the reset's request, so everything about it is checked first: every
/// migration is applied by the reset (seeds are written for the newest schema), and every
/// statement is valid against the schema the migrations make, replayed in memory.
fn check_seeds(
    target: &Target,
    set: &MigrationSet,
    chosen: &[&Migration],
    seeds: &[SeedFile],
) -> anyhow::Result<()> {
    if chosen.len() < set.migrations.len() {
        let left: Vec<&str> = set.migrations[chosen.len()..]
            .iter()
            .map(|m| m.name.as_str())
            .collect();
        return Err(refused!(
            "--seed with --to leaves {} migration{} unapplied ({}): seed files are written for the newest \
             schema; reset without --seed, or drop --to; nothing was changed",
            left.len(),
            if left.len() == 1 { "" } else { "s" },
            left.join(", ")
        ));
    }
    // A migration that fails on an empty database fails the reset too, with D1's words.
    let Ok(schema) = d1::replayed_schema(&target.db.migrations_table, chosen) else {
        return Ok(());
    };
    for seed in seeds {
        preflight(seed, &schema)?;
    }
    Ok(())
}
