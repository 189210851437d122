//! `db-migrate [--to <version>] [--per-file] [--no-backup] [--verify <command>]`: lint,
//! check drift, capture a restore point, apply in one request, believe only the tracking
//! table, then verify and undo on failure.

pub(crate) mod baseline;
pub(crate) mod rehearse;

use serde_json::json;

use crate::d1::{ApplyMode, Database, Extras, Restore, RestorePoint, State};
use crate::exit::{failed, refused, stop_with, usage, Exit};
use crate::guarded::backups::Captured;
use crate::guarded::change::{self, Act, Change, Guard};
use crate::guarded::confirm::Confirm;
use crate::migrations::{Migration, MigrationSet};
use crate::ui::{self, Report};
use crate::workspace::options::Changing;
use crate::workspace::target::Target;
use crate::wrangler::display_command;
use crate::{d1, migrations::plan, workspace::Ctx};

/// `db-migrate` and its flags.
#[derive(clap::Args, Clone, Debug, PartialEq)]
pub struct DbMigrate {
    /// apply up to and including this migration (its number or file name)
    #[arg(long, value_name = "version")]
    pub(crate) to: Option<String>,
    /// apply each file in its own request (wrangler's way) instead of all-or-nothing
    #[arg(long)]
    pub(crate) per_file: bool,
    /// after applying, run this shell command; if it fails, restore the restore point and exit 1
    #[arg(long, value_name = "command")]
    pub(crate) verify: Option<String>,
    /// after reviewing an edited applied file, re-record its checksum (and any never recorded)
    #[arg(long)]
    pub(crate) repair: bool,
    /// apply the pending migrations to a scratch copy of the database and report; change nothing
    #[arg(long)]
    pub(crate) rehearse: bool,
    /// record every migration up to this one as applied without running it (a schema made without wrangler)
    #[arg(long, value_name = "version")]
    pub(crate) baseline: Option<String>,
    /// apply although the live schema differs from what the applied migrations make (schema-drift)
    #[arg(long)]
    pub(crate) allow_drift: bool,
    /// every database of this fleet (`fleets` in xtask.jsonc), through D1's API
    #[arg(long, value_name = "name")]
    pub(crate) fleet: Option<String>,
    /// --fleet: members migrated first, one at a time; a failure among them stops the run
    #[arg(long, value_name = "n", default_value_t = 1, requires = "fleet")]
    pub(crate) canary: usize,
    /// --fleet: members migrated at once after the canary
    #[arg(long, value_name = "n", default_value_t = 4, requires = "fleet",
          value_parser = clap::value_parser!(u16).range(1..=64))]
    pub(crate) parallel: u16,
    /// --fleet: go on after a member fails, and report every failure
    #[arg(long, requires = "fleet")]
    pub(crate) continue_on_error: bool,
    /// --fleet: continue the newest run of this fleet (members it finished are skipped)
    #[arg(long, requires = "fleet")]
    pub(crate) resume: bool,
    #[command(flatten)]
    pub(crate) change: Changing,
}

/// What one `db-migrate` run does: its modes exclude each other.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode<'a> {
    /// Apply what is pending (up to `--to`), optionally one file a request, verified.
    Apply,
    /// `--repair`: re-record checksums.
    Repair,
    /// `--rehearse`: apply to a scratch copy and report.
    Rehearse,
    /// `--baseline <version>`: record as applied without running.
    Baseline(&'a str),
}

impl DbMigrate {
    /// The mode the flags ask for, refusing flags that do not go with it.
    fn mode(&self) -> anyhow::Result<Mode<'_>> {
        if self.change.no_backup && self.verify.is_some() {
            return Err(usage!(
                "--verify needs the restore point that --no-backup skips: drop one of them"
            ));
        }
        if let Some(v) = self.baseline.as_deref() {
            if self.to.is_some()
                || self.verify.is_some()
                || self.rehearse
                || self.repair
                || self.per_file
                || self.change.no_backup
            {
                return Err(usage!(
                    "--baseline only records migrations as applied: it does not go with --to, --verify, --rehearse, \
                     --repair, --per-file or --no-backup"
                ));
            }
            return Ok(Mode::Baseline(v));
        }
        if self.repair {
            if self.to.is_some() || self.verify.is_some() || self.rehearse {
                return Err(usage!(
                    "--repair only re-records checksums: it does not go with --to, --verify or --rehearse"
                ));
            }
            return Ok(Mode::Repair);
        }
        Ok(if self.rehearse {
            Mode::Rehearse
        } else {
            Mode::Apply
        })
    }

    pub(crate) fn run(self, ctx: &Ctx) -> anyhow::Result<Report> {
        if let Some(name) = &self.fleet {
            if ctx.global.env.is_some()
                || self.to.is_some()
                || self.per_file
                || self.verify.is_some()
                || self.repair
                || self.rehearse
                || self.baseline.is_some()
                || self.allow_drift
                || self.change.no_backup
                || ctx.global.dry_run
            {
                return Err(usage!(
                    "--fleet takes its environment from the fleet and applies every pending migration with a \
                     restore point: it goes with --canary, --parallel, --continue-on-error, --resume, --yes and \
                     --json only"
                ));
            }
            let o = crate::commands::fleet::MigrateOptions {
                canary: self.canary,
                parallel: usize::from(self.parallel),
                continue_on_error: self.continue_on_error,
                resume: self.resume,
            };
            return crate::commands::fleet::migrate(ctx, name, &o);
        }
        let run_mode = self.mode()?;
        let target = ctx.target()?;
        let set = MigrationSet::for_target(&target)?;
        refuse_lint_errors(&set, "nothing was applied")?;
        // `--to` must name a file that exists: checked before the database is read.
        let to = self.to.as_deref().map(|v| set.find(v)).transpose()?;
        let mode = if self.per_file {
            ApplyMode::PerFile
        } else {
            ApplyMode::Atomic
        };
        if let Mode::Baseline(version) = run_mode {
            let upto = set.find(version)?;
            let mut db = d1::open(&ctx.project, &target)?;
            return baseline::run(ctx, &target, db.as_mut(), &set, upto);
        }
        let mut db = d1::open(&ctx.project, &target)?;
        match run_mode {
            Mode::Rehearse => {
                return rehearse::run(ctx, &target, db.as_mut(), &set, to, ctx.global.dry_run)
            }
            _ if ctx.global.dry_run => {
                let before = db.state()?;
                return self.dry_run(&target, db.as_ref(), &set, to, mode, &before);
            }
            Mode::Repair => return repair(ctx, &target, db.as_mut(), &set),
            Mode::Apply | Mode::Baseline(_) => {}
        }
        let mut change = Migrate {
            ctx,
            target: &target,
            set: &set,
            to,
            mode,
            verify: self.verify.as_deref(),
            hold_lock: false,
            allow_drift: self.allow_drift,
            chosen: Vec::new(),
            first_sight: Vec::new(),
            after: State::default(),
        };
        let guard = Guard {
            command: "db-migrate",
            confirm: Confirm::Yes,
            restore_point: !self.change.no_backup,
            restoring: None,
        };
        let done = change::run(ctx, &target, db.as_mut(), guard, &mut change)?;
        report(
            &target,
            db.as_ref(),
            &change.chosen,
            &change.after,
            mode,
            done.captured.as_ref(),
        )
    }

    fn dry_run(
        &self,
        target: &Target,
        db: &dyn Database,
        set: &MigrationSet,
        to: Option<&Migration>,
        mode: ApplyMode,
        before: &State,
    ) -> anyhow::Result<Report> {
        let status = plan::status_with_schema(set, before, &target.db.migrations_table);
        let chosen = plan::select(&status, to);
        ui::say(format!("{}: {} to apply", target.describe(), chosen.len()));
        ui::say("dry run: nothing is changed; this would run:");
        if target.env.is_remote() && !self.change.no_backup {
            ui::say(format!(
                "  $ {}",
                display_command(&target.time_travel_args("info", &["--json"]))
            ));
        } else if !self.change.no_backup {
            ui::say("  snapshot of the local database file into backups/local/");
        }
        if !chosen.is_empty() {
            for args in crate::d1::ops::apply_commands(db, &chosen, mode) {
                ui::say(format!("  $ {}", display_command(&args)));
            }
        }
        for m in &chosen {
            ui::say(format!("  {}", m.path.display()));
        }
        for p in status.blocking() {
            ui::say(format!("  but first: {}", p.message));
        }
        if let Some(cmd) = &self.verify {
            ui::say(format!(
                "  then: sh -c {cmd:?}; on failure, restore the restore point"
            ));
        }
        Ok(Report::doc(json!({
            "env": target.env.name(),
            "database": target.database_json(),
            "dry_run": true,
            "would_apply": chosen.iter().map(|m| m.name.clone()).collect::<Vec<_>>(),
            "mode": mode_name(mode),
        })))
    }
}

/// Refuses a migrations folder with lint errors, listing them; `outcome` says what that
/// means for the command ("nothing was applied").
pub(crate) fn refuse_lint_errors(set: &MigrationSet, outcome: &str) -> anyhow::Result<()> {
    let lint_errors: Vec<String> = set.errors().map(|f| format!("  {f}")).collect();
    if lint_errors.is_empty() {
        return Ok(());
    }
    Err(refused!(
        "lint found {} error{} in {}; {outcome}:\n{}",
        lint_errors.len(),
        plural(lint_errors.len()),
        set.dir.display(),
        lint_errors.join("\n")
    ))
}

/// `db-migrate`, as the guarded-change path drives it.
pub(crate) struct Migrate<'a> {
    ctx: &'a Ctx,
    target: &'a Target,
    set: &'a MigrationSet,
    to: Option<&'a Migration>,
    mode: ApplyMode,
    verify: Option<&'a str>,
    /// Keep the lock after the apply (a later step of the same run needs it: `deploy`).
    hold_lock: bool,
    /// `--allow-drift`: a live schema that differs from the migrations' does not stop it.
    allow_drift: bool,
    /// The plan: what to apply.
    chosen: Vec<&'a Migration>,
    /// Checksums of migrations plain wrangler applied, to record on first sight.
    first_sight: Vec<(String, String)>,
    /// The tracking table read back.
    after: State,
}

impl<'a> Migrate<'a> {
    /// Every pending migration, applied in one request as a step of a larger change that
    /// keeps the lock afterwards (`deploy`).
    pub(crate) fn holding_lock(
        ctx: &'a Ctx,
        target: &'a Target,
        set: &'a MigrationSet,
        allow_drift: bool,
    ) -> Migrate<'a> {
        Migrate {
            ctx,
            target,
            set,
            to: None,
            mode: ApplyMode::Atomic,
            verify: None,
            hold_lock: true,
            allow_drift,
            chosen: Vec::new(),
            first_sight: Vec::new(),
            after: State::default(),
        }
    }

    /// The names of the migrations the plan chose.
    pub(crate) fn chosen(&self) -> Vec<String> {
        self.chosen.iter().map(|m| m.name.clone()).collect()
    }

    /// The tracking table as read back after the apply (or before, when nothing ran).
    pub(crate) fn after(&self) -> &State {
        &self.after
    }
}

impl Change for Migrate<'_> {
    fn plan(&mut self, state: &State) -> anyhow::Result<Option<String>> {
        let status = plan::status_with_schema(self.set, state, &self.target.db.migrations_table);
        let allowed = |p: &&plan::Problem| self.allow_drift && p.kind == "schema-drift";
        for p in status.blocking().filter(allowed) {
            ui::say(format!("warning (--allow-drift): {}", p.message));
        }
        let blocking: Vec<String> = status
            .blocking()
            .filter(|p| !allowed(p))
            .map(|p| format!("  {}", p.message))
            .collect();
        if !blocking.is_empty() {
            return Err(refused!(
                "drift: the tracking table and {} disagree; nothing was applied:\n{}",
                self.set.dir.display(),
                blocking.join("\n")
            ));
        }
        self.first_sight = status
            .unrecorded
            .iter()
            .map(|m| (m.name.clone(), m.sha256.clone()))
            .collect();
        self.chosen = plan::select(&status, self.to);
        self.after = state.clone();
        if self.chosen.is_empty() {
            return Ok(None);
        }
        let names: Vec<&str> = self.chosen.iter().map(|m| m.name.as_str()).collect();
        Ok(Some(format!(
            "apply {} migration{}{}: {}",
            self.chosen.len(),
            plural(self.chosen.len()),
            self.to
                .map_or(String::new(), |t| format!(" (up to {})", t.name)),
            names.join(", ")
        )))
    }

    fn nothing_to_do(&mut self, act: &mut Act<'_>) -> anyhow::Result<()> {
        match self.to {
            Some(t) => ui::say(format!(
                "nothing to apply: {} and everything before it are applied",
                t.name
            )),
            None => ui::say(format!(
                "nothing to apply: all {} migrations are applied",
                act.before.applied.len()
            )),
        }
        record_first_sight(act.db, self.target, &self.first_sight)
    }

    fn act(&mut self, act: &mut Act<'_>) -> anyhow::Result<()> {
        let target = self.target;
        let chosen = self.chosen.clone();
        let names: Vec<&str> = chosen.iter().map(|m| m.name.as_str()).collect();
        let first_sight = std::mem::take(&mut self.first_sight);
        if !first_sight.is_empty() {
            ui::say(format!(
                "recording the checksums of {} migration{} applied without one (by plain wrangler): {}",
                first_sight.len(),
                plural(first_sight.len()),
                first_sight.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", ")
            ));
        }
        // The lock's release rides in the apply request, unless --verify still needs it.
        let release = (self.verify.is_none() && !self.hold_lock).then(|| act.held.tokens());
        let extras = Extras {
            first_sight,
            release: release.clone(),
        };
        let outcome = crate::d1::ops::apply(act.db, &chosen, self.mode, &act.before, &extras)?;
        // wrangler can exit 0 on a failed migration: only the tracking table is believed.
        let after = match outcome.after.clone() {
            Some(state) if outcome.error.is_none() => state,
            _ => match act.db.state() {
                Ok(state) => state,
                Err(e) => {
                    let why = outcome
                        .error
                        .clone()
                        .unwrap_or_else(|| "the apply was not confirmed".into());
                    return Err(failed!(
                        "applying failed: {why}\nreading the tracking table back failed too ({e:#}): what is applied \
                         is unknown; check with `cargo xtask db-status --env {}`",
                        target.env
                    ));
                }
            },
        };
        let missing: Vec<&&Migration> = chosen
            .iter()
            .filter(|m| !after.is_applied(&m.name))
            .collect();
        if missing.is_empty() {
            match &outcome.error {
                // D1 commits a request whole or not at all: every planned row is there, so
                // the request landed and only its reply was lost (d1-as-it-is.md, 7).
                Some(e) => ui::say(format!(
                    "wrangler reported a failure ({e}), but the tracking table read back lists every \
                     planned migration: the request reached D1 and was committed, only its reply was lost"
                )),
                None if release.is_some() => act.held.released = true,
                None => {}
            }
            ui::say(format!(
                "applied {} migration{}: {}",
                chosen.len(),
                plural(chosen.len()),
                names.join(", "),
            ));
            self.after = after.clone();
            if let (Some(cmd), Some(captured)) = (self.verify, act.captured) {
                verify(self.ctx, target, act.db, cmd, captured, &act.before, &after)?;
            }
            return Ok(());
        }
        let applied_now: Vec<&str> = chosen
            .iter()
            .filter(|m| after.is_applied(&m.name))
            .map(|m| m.name.as_str())
            .collect();
        let why = outcome.error.clone().unwrap_or_else(|| {
            "wrangler reported success, but the tracking table does not record it".into()
        });
        // wrangler names the SQL that failed, not its file: the file is named only when a
        // replay on a copy found it (or the request held one file), never guessed.
        let mut msg = match (&outcome.failed, missing.as_slice()) {
            _ if outcome.no_file_failed => format!(
                "applying failed: {why}\nsent again in a request that cannot commit, every file of it ran: \
                 the failure was not in a migration file (a damaged or lost reply, or a fault of D1); \
                 running the command again is safe\n"
            ),
            (Some(culprit), _) => format!("migration {culprit} failed: {why}\n"),
            (None, [one]) => format!("migration {} failed: {why}\n", one.name),
            (None, many) => format!(
                "one of the {} migrations sent together failed ({}), and a replay on a copy could not tell \
                 which: {why}\n",
                many.len(),
                many.iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join(", ")
            ),
        };
        // Printed even when nothing is applied (by the pipeline's undo line): a request
        // that timed out may still land.
        msg.push_str(&describe_after(target, &after, &applied_now, &missing));
        Err(failed!("{msg}"))
    }
}

/// Checksums of migrations applied by plain wrangler, recorded the first time the xtask
/// sees them (when there is nothing else to apply: a request of their own).
fn record_first_sight(
    db: &mut dyn Database,
    target: &Target,
    first_sight: &[(String, String)],
) -> anyhow::Result<()> {
    if first_sight.is_empty() {
        return Ok(());
    }
    let table = &target.db.migrations_table;
    let mut sql = crate::d1::meta_tables_sql(table);
    for (name, sha) in first_sight {
        sql.push('\n');
        sql.push_str(&crate::d1::checksum_upsert_sql(
            table,
            name,
            sha,
            "first-sight",
        ));
    }
    ui::say(format!(
        "recording the checksums of {} migration{} applied without one (by plain wrangler): {}",
        first_sight.len(),
        plural(first_sight.len()),
        first_sight
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    crate::d1::ops::execute(db, &sql)?.map_err(|e| failed!("recording checksums failed: {e}"))
}

/// `--repair`: after the user reviewed an edited applied file, record its new checksum
/// (Flyway's name for it); also records the checksums never recorded. Says what changed.
struct Repair<'a> {
    target: &'a Target,
    set: &'a MigrationSet,
    /// Drift that --repair does not fix.
    left: Vec<String>,
    doc: serde_json::Value,
    /// The checksum statements the plan found needed, and what to say once they ran.
    sql: String,
    said: Vec<String>,
}

impl Change for Repair<'_> {
    fn plan(&mut self, state: &State) -> anyhow::Result<Option<String>> {
        let status = plan::status(self.set, state);
        self.left = status
            .problems
            .iter()
            .filter(|p| p.blocking && p.kind != "edited")
            .map(|p| format!("  {}", p.message))
            .collect();
        self.doc = json!({
            "env": self.target.env.name(),
            "database": self.target.database_json(),
            "repaired": status.edited.iter().map(|(m, old)| json!({"migration": m.name, "old": old, "new": m.sha256})).collect::<Vec<_>>(),
            "recorded": status.unrecorded.iter().map(|m| m.name.clone()).collect::<Vec<_>>(),
            "remaining_problems": self.left,
        });
        let table = &self.target.db.migrations_table;
        self.sql = crate::d1::meta_tables_sql(table);
        self.said.clear();
        for (m, old) in &status.edited {
            self.sql.push('\n');
            self.sql.push_str(&crate::d1::checksum_upsert_sql(
                table, &m.name, &m.sha256, "repair",
            ));
            self.said.push(format!(
                "re-recorded {}: SHA-256 {old} -> {}",
                m.name, m.sha256
            ));
        }
        for m in &status.unrecorded {
            self.sql.push('\n');
            self.sql.push_str(&crate::d1::checksum_upsert_sql(
                table,
                &m.name,
                &m.sha256,
                "first-sight",
            ));
            self.said.push(format!(
                "recorded {}: SHA-256 {} (it had none)",
                m.name, m.sha256
            ));
        }
        let n = self.said.len();
        Ok((n > 0).then(|| format!("re-record the checksums of {n} migration{}", plural(n))))
    }

    fn nothing_to_do(&mut self, _act: &mut Act<'_>) -> anyhow::Result<()> {
        ui::say("nothing to repair: every applied migration's checksum matches its file");
        Ok(())
    }

    fn act(&mut self, act: &mut Act<'_>) -> anyhow::Result<()> {
        // The lock's release rides in the same request.
        act.commit(&self.sql)?
            .map_err(|e| failed!("repair failed: {e}; nothing was changed"))?;
        for line in &self.said {
            ui::say(line);
        }
        Ok(())
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
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
    let env = crate::commands::db_seed::xtask_env(ctx, target, db);
    let status = match crate::commands::run_user_command(ctx, "--verify command", cmd, env) {
        Ok(crate::commands::UserCommand::Passed) => {
            ui::say(format!("verified: `{cmd}` passed"));
            return Ok(());
        }
        Ok(crate::commands::UserCommand::Failed(status)) => status,
        Err(e) => {
            return Err(failed!(
                "{e:#}: the migrations of this run are applied{}",
                captured.undo_line()
            ))
        }
    };
    ui::say(format!(
        "`{cmd}` failed ({status}): restoring the restore point {}",
        captured.entry.id
    ));
    let restored = match return_to_point(target, db, captured, before, after) {
        Ok(restored) => restored,
        Err(e) => return Err(failed!("`{cmd}` failed ({status}) and {e:#}")),
    };
    Err(failed!(
        "verification failed: `{cmd}` exited with {status}; the database was restored to the restore point {} \
         taken before this run, and its tracking table confirms it: {} migration{} applied{}",
        captured.entry.id,
        restored.applied.len(),
        plural(restored.applied.len()),
        restored.applied.last().map_or(String::new(), |r| format!(", the newest {}", r.name))
    ))
}

/// Returns the database to `captured` after a later step failed, and checks through the
/// tracking table that it holds what it held `before` the run. `Err` says, in words that
/// follow "... and", what went wrong and how to finish by hand.
pub(crate) fn return_to_point(
    target: &Target,
    db: &mut dyn Database,
    captured: &Captured,
    before: &State,
    after: &State,
) -> anyhow::Result<State> {
    let source = match &captured.point {
        RestorePoint::Bookmark(b) => Restore::Bookmark(b.clone()),
        RestorePoint::Snapshot(p) => Restore::Snapshot(p.clone()),
    };
    if let Err(e) = crate::d1::ops::restore(db, &source, after) {
        return Err(failed!(
            "restoring the restore point failed too: {e:#}\nthe migrations of this run are still applied; \
             restore by hand: {}",
            captured.undo
        ));
    }
    let restored = db.state()?;
    let names = |s: &State| s.applied.iter().map(|r| r.name.clone()).collect::<Vec<_>>();
    if names(&restored) != names(before) {
        return Err(failed!(
            "the restore ran, but the tracking table now lists {:?}, not {:?} as before the migration: \
             check with `cargo xtask db-status --env {}`",
            names(&restored),
            names(before),
            target.env
        ));
    }
    Ok(restored)
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
            "{} now has {} migration{} applied, the newest {}",
            target.describe(),
            after.applied.len(),
            plural(after.applied.len()),
            last.name
        )),
        None => out.push_str(&format!("{} has no migration applied", target.describe())),
    }
    out.push_str("; fix the migration and run `cargo xtask db-migrate` again");
    out
}

fn report(
    target: &Target,
    db: &dyn Database,
    applied: &[&Migration],
    after: &State,
    mode: ApplyMode,
    captured: Option<&Captured>,
) -> anyhow::Result<Report> {
    Ok(Report::doc(json!({
        "env": target.env.name(),
        "database": target.database_json(),
        "applied": applied.iter().map(|m| m.name.clone()).collect::<Vec<_>>(),
        "total_applied": after.applied.len(),
        "mode": mode_name(mode),
        "restore_point": captured.map(Captured::json),
        "wrangler_calls": db.wrangler_calls(),
    })))
}

/// `--repair`: re-record the checksums of edited applied files, through the guarded path.
fn repair(
    ctx: &Ctx,
    target: &Target,
    db: &mut dyn Database,
    set: &MigrationSet,
) -> anyhow::Result<Report> {
    let mut change = Repair {
        target,
        set,
        left: Vec::new(),
        doc: json!(null),
        sql: String::new(),
        said: Vec::new(),
    };
    let guard = Guard {
        command: "db-migrate --repair",
        confirm: Confirm::Yes,
        restore_point: false,
        restoring: None,
    };
    change::run(ctx, target, db, guard, &mut change)?;
    let report = Report::doc(change.doc);
    if !change.left.is_empty() {
        return Err(stop_with(
            Exit::Refused,
            format!(
                "checksums repaired, but other drift remains (--repair does not fix it):\n{}",
                change.left.join("\n")
            ),
            report,
        ));
    }
    Ok(report)
}
