//! `db-migrate --baseline <version>`: adopting the xtask on a database whose schema was
//! made without wrangler's tracking table. Every migration up to `<version>` is recorded
//! as applied (wrangler's tracking rows and the xtask's checksums) without being run,
//! through the guarded-change path (confirmation, restore point, lock, read-back).

use serde_json::json;

use crate::d1::{self, Database, State};
use crate::exit::{failed, refused};
use crate::guarded::change::{self, Act, Change, Guard};
use crate::guarded::confirm::Confirm;
use crate::migrations::{Migration, MigrationSet};
use crate::ui::{self, Report};
use crate::workspace::target::Target;
use crate::{migrations::plan, workspace::Ctx};

struct Baseline<'a> {
    target: &'a Target,
    set: &'a MigrationSet,
    upto: &'a Migration,
    chosen: Vec<&'a Migration>,
    after: State,
}

/// The migrations a baseline records: every one up to and including `upto`, in order.
fn chosen<'a>(set: &'a MigrationSet, upto: &Migration) -> Vec<&'a Migration> {
    let end = set
        .migrations
        .iter()
        .position(|m| m.name == upto.name)
        .map_or(0, |i| i + 1);
    set.migrations[..end].iter().collect()
}

impl Change for Baseline<'_> {
    fn plan(&mut self, state: &State) -> anyhow::Result<Option<String>> {
        self.chosen = chosen(self.set, self.upto);
        let listed: Vec<&str> = self
            .chosen
            .iter()
            .filter(|m| state.is_applied(&m.name))
            .map(|m| m.name.as_str())
            .collect();
        if !listed.is_empty() {
            return Err(refused!(
                "--baseline records migrations that were never run through wrangler, but the tracking table of {} \
                 already lists {}: a baseline is for a database without them; nothing was recorded",
                self.target.describe(),
                listed.join(", ")
            ));
        }
        let status = plan::status(self.set, state);
        let blocking: Vec<String> = status
            .blocking()
            .map(|p| format!("  {}", p.message))
            .collect();
        if !blocking.is_empty() {
            return Err(refused!(
                "the migrations folder has problems to fix first; nothing was recorded:\n{}",
                blocking.join("\n")
            ));
        }
        let names: Vec<&str> = self.chosen.iter().map(|m| m.name.as_str()).collect();
        Ok(Some(format!(
            "record {} migration{} as applied without running {} (baseline up to {}): {}",
            names.len(),
            if names.len() == 1 { "" } else { "s" },
            if names.len() == 1 { "it" } else { "them" },
            self.upto.name,
            names.join(", ")
        )))
    }

    fn act(&mut self, act: &mut Act<'_>) -> anyhow::Result<()> {
        let table = &self.target.db.migrations_table;
        let mut sql = d1::create_tracking_table_sql(table);
        sql.push('\n');
        sql.push_str(&d1::meta_tables_sql(table));
        for m in &self.chosen {
            sql.push('\n');
            sql.push_str(&d1::tracking_insert_sql(table, &m.name));
            sql.push('\n');
            sql.push_str(&d1::checksum_upsert_sql(
                table, &m.name, &m.sha256, "baseline",
            ));
        }
        let after = act.commit(&sql)?.map_err(|e| {
            failed!(
                "recording the baseline failed: {e}\nit was one request, so nothing was recorded"
            )
        })?;
        let missing: Vec<&str> = self
            .chosen
            .iter()
            .filter(|m| !after.is_applied(&m.name))
            .map(|m| m.name.as_str())
            .collect();
        if !missing.is_empty() {
            return Err(failed!(
                "the baseline request ran, but the tracking table does not list {}",
                missing.join(", ")
            ));
        }
        self.after = after;
        Ok(())
    }
}

pub(crate) fn run(
    ctx: &Ctx,
    target: &Target,
    db: &mut dyn Database,
    set: &MigrationSet,
    upto: &Migration,
) -> anyhow::Result<Report> {
    let mut change = Baseline {
        target,
        set,
        upto,
        chosen: Vec::new(),
        after: State::default(),
    };
    if ctx.global.dry_run {
        let state = db.state()?;
        let plan = change.plan(&state)?.unwrap_or_default();
        ui::say(format!("{}: {plan}", target.describe()));
        ui::say("dry run: nothing is changed");
        return Ok(crate::commands::dry_run_report(target));
    }
    let guard = Guard {
        command: "db-migrate --baseline",
        confirm: Confirm::Yes,
        restore_point: true,
        restoring: None,
    };
    let done = change::run(ctx, target, db, guard, &mut change)?;
    ui::say(format!(
        "recorded {} migration{} as applied (baseline up to {}); {} is now tracked",
        change.chosen.len(),
        if change.chosen.len() == 1 { "" } else { "s" },
        upto.name,
        target.describe()
    ));
    // The baseline is only as good as the schema: compare it with what those files make.
    for p in plan::schema_drift(set, &change.after, &target.db.migrations_table) {
        ui::say(format!("warning: {}", p.message));
    }
    Ok(Report::doc(json!({
        "env": target.env.name(),
        "database": target.database_json(),
        "baseline": change.chosen.iter().map(|m| m.name.clone()).collect::<Vec<_>>(),
        "restore_point": done.captured.as_ref().map(crate::guarded::backups::Captured::json),
    })))
}
