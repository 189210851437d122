//! `deploy [--env <env>] [--smoke <command>]` and `deploy --list`: the pipeline of a
//! release, as one guarded change. Under the lock: the live Worker version is noted, a
//! restore point taken, the pending migrations applied (one request), `wrangler deploy`
//! run, then the smoke command. When the deploy or the smoke command fails, the Worker goes
//! back to the version that was live and then the database to the restore point (code
//! first: new code never runs on the old schema for longer than it must), and the run
//! reports where both stand. Every deploy leaves a record (`guarded::deploys`).

use serde_json::json;

use crate::commands::db_migrate::{return_to_point, Migrate};
use crate::d1::{Database, State};
use crate::exit::{failed, refused, usage, Exit};
use crate::guarded::backups::{self, Captured};
use crate::guarded::change::{self, Act, Change, Guard};
use crate::guarded::confirm::Confirm;
use crate::guarded::deploys::{self, Outcome, Record};
use crate::migrations::MigrationSet;
use crate::ui::{self, Report};
use crate::workspace::options::Changing;
use crate::workspace::target::Target;
use crate::wrangler::display_command;
use crate::wrangler::worker::{Deployed, Worker};
use crate::{d1, workspace::Ctx};

/// `deploy` and its flags.
#[derive(clap::Args, Clone, Debug, PartialEq)]
pub struct Deploy {
    /// after `wrangler deploy`, run this shell command (XTASK_ENV, XTASK_WORKER_VERSION and
    /// the project's wrangler on PATH); if it fails, roll the Worker and the database back
    #[arg(long, value_name = "command")]
    pub(crate) smoke: Option<String>,
    /// list this environment's deploy records instead of deploying
    #[arg(long)]
    pub(crate) list: bool,
    /// apply although the live schema differs from what the applied migrations make (schema-drift)
    #[arg(long)]
    pub(crate) allow_drift: bool,
    #[command(flatten)]
    pub(crate) change: Changing,
}

impl Deploy {
    pub(crate) fn run(self, ctx: &Ctx) -> anyhow::Result<Report> {
        let target = ctx.target()?;
        if self.list {
            return list(ctx, &target);
        }
        if !target.env.is_remote() {
            return Err(usage!(
                "deploy needs --env <environment>: `local` is wrangler's local D1, which no Worker is deployed \
                 with (run `wrangler dev` for that); environments: {}",
                ctx.config.env_names()[1..].join(", ")
            ));
        }
        if self.change.no_backup {
            return Err(usage!(
                "deploy always takes a restore point (its rollback returns the database to it): drop --no-backup"
            ));
        }
        let name = ctx.config.worker_name(&target.env).ok_or_else(|| {
            usage!(
                "{}: no `main` for env.{}: deploy needs a Worker (set `main`, the Worker's entry module, at the top \
                 level or in the environment), or migrate without one: `{} db-migrate --env {}`",
                ctx.project.config_path.display(),
                target.env,
                ctx.settings.command_prefix,
                target.env
            )
        })?;
        let set = MigrationSet::for_target(&target)?;
        crate::commands::db_migrate::refuse_lint_errors(&set, "nothing was deployed")?;
        let mut db = d1::open(&ctx.project, &target)?;
        let worker = Worker::new(&ctx.project, &target, name);
        if ctx.global.dry_run {
            return dry_run(
                ctx,
                &target,
                db.as_mut(),
                worker,
                &set,
                self.smoke.as_deref(),
            );
        }
        let mut change = Deploying {
            ctx,
            target: &target,
            migrate: Migrate::holding_lock(ctx, &target, &set, self.allow_drift),
            worker,
            smoke: self.smoke.as_deref(),
            record: None,
            rolled_back: false,
        };
        let guard = Guard {
            command: "deploy",
            confirm: Confirm::Yes,
            restore_point: true,
            restoring: None,
        };
        let result = change::run(ctx, &target, db.as_mut(), guard, &mut change);
        let calls = db.wrangler_calls() + change.worker.calls();
        let doc = change.record.as_ref().map(|r| {
            let mut doc = r.to_json();
            doc["database"] = target.database_json();
            doc["deploy_id"] = json!(r.id);
            doc["wrangler_calls"] = json!(calls);
            doc
        });
        match result {
            Ok(_) => Ok(Report::doc(doc.unwrap_or_default())),
            Err(e) => match doc {
                Some(mut doc) => {
                    // The record as it ended, with the failure as every --json failure has it.
                    let exit = crate::exit::status_of(&e);
                    doc["error"] = json!({
                        "exit": exit as u8,
                        "kind": exit.kind(),
                        "message": ui::redact(&format!("{e:#}")),
                    });
                    Err(crate::exit::stop_with(
                        exit,
                        format!("{e:#}"),
                        Report::doc(doc),
                    ))
                }
                None => Err(e),
            },
        }
    }
}

/// The deploy, as the guarded-change path drives it.
struct Deploying<'a> {
    ctx: &'a Ctx,
    target: &'a Target,
    migrate: Migrate<'a>,
    worker: Worker,
    smoke: Option<&'a str>,
    /// Written in `prepare`, then at every step.
    record: Option<Record>,
    /// A failure past the migrations was rolled back (`undo` ran).
    rolled_back: bool,
}

impl Deploying<'_> {
    fn record(&mut self) -> &mut Record {
        self.record.as_mut().expect("written in prepare")
    }

    fn save(&mut self) -> anyhow::Result<()> {
        let project = self.ctx.project.clone();
        self.record().save(&project)
    }

    /// The rollback command of this deploy, as the user types it.
    fn rollback_command(&self) -> String {
        let id = self.record.as_ref().map_or("", |r| r.id.as_str());
        backups::command_line(self.ctx, self.target, "rollback", &format!("--to {id}"))
    }

    /// After a failure past the migration: the Worker back to the version that was live,
    /// then the database to the restore point; a report of where both stand, exit 1.
    fn undo(&mut self, act: &mut Act<'_>, why: String, deploy_failed: bool) -> anyhow::Error {
        self.rolled_back = true;
        let name = self.worker.name.clone();
        let previous = self.record().previous_version.clone();
        let new = self.record().new_version.clone();
        ui::say(format!(
            "{why}: rolling back, the Worker first, then the database"
        ));
        let mut by_hand: Vec<String> = Vec::new();
        let code = match &previous {
            Some(prev) => {
                // A deploy that failed may not have replaced the version at all.
                let live = if deploy_failed {
                    self.worker.live().ok().flatten()
                } else {
                    None
                };
                if live.as_deref() == Some(prev.as_str()) {
                    Ok(format!(
                        "Worker {name}: version {prev} is live, as before this deploy (the failed deploy did not replace it)"
                    ))
                } else {
                    let message = format!(
                        "d1-xtask: deploy {} failed",
                        self.record.as_ref().map_or("", |r| r.id.as_str())
                    );
                    match self.worker.rollback(prev, &message) {
                        Ok(Ok(())) => Ok(format!(
                            "Worker {name}: version {prev} is live again (the one before this deploy)"
                        )),
                        Ok(Err(text)) => Err(format!("rolling Worker {name} back to {prev} failed: {text}")),
                        Err(e) => Err(format!("rolling Worker {name} back to {prev} failed: {e:#}")),
                    }
                    .map_err(|e| {
                        by_hand.push(display_command(&self.worker.rollback_args(prev)));
                        format!(
                            "{e}\nWorker {name}: {} may still be live",
                            new.as_deref().map_or("the new version".into(), |v| format!("version {v}"))
                        )
                    })
                }
            }
            None => Ok(match &new {
                Some(v) => format!(
                    "Worker {name}: this was its first deploy, so there is no earlier version to return to; \
                     version {v} stays live (remove it with `wrangler delete --env {}` if it must go)",
                    self.target.env
                ),
                None => format!(
                    "Worker {name}: this was its first deploy and it did not complete; there is no earlier version"
                ),
            }),
        };
        let applied = !self.record().migrations_applied.is_empty();
        let db = if !applied {
            Ok(
                "database: this deploy applied no migration, so it is as it was (not restored)"
                    .to_string(),
            )
        } else if code.is_err() {
            // The order matters: the new version still serves traffic, and it expects the
            // new schema. The database goes back only once the Worker has.
            let undo = act.captured.map_or(String::new(), |c| c.undo.clone());
            by_hand.push(undo);
            Err("database: left as this deploy made it (its migrations applied), so that the Worker version \
                 still live runs on the schema it was built for; restore it once the Worker is rolled back"
                .to_string())
        } else {
            match act.captured {
                Some(captured) => {
                    let after = self.migrate.after().clone();
                    match return_to_point(self.target, act.db, captured, &act.before, &after) {
                        Ok(restored) => Ok(format!(
                            "database: back at the restore point {} ({}), its tracking table confirms it: {}",
                            captured.entry.id,
                            captured.entry.bookmark.as_deref().unwrap_or("snapshot"),
                            applied_words(&restored)
                        )),
                        Err(e) => {
                            by_hand.push(captured.undo.clone());
                            Err(format!("database: {e:#}"))
                        }
                    }
                }
                None => Err("database: no restore point was taken".to_string()),
            }
        };
        let settled = code.is_ok() && db.is_ok();
        let (code, db) = (either(code), either(db));
        let outcome = if settled {
            Outcome::RolledBack
        } else {
            Outcome::Failed
        };
        let record = self.record();
        record.outcome = outcome;
        record.finished_at = Some(crate::time::unix_now());
        record.note = Some(format!("{why}\n{code}\n{db}"));
        let saved = self.save();
        let mut text = format!("{why}; rolled back:\n  {code}\n  {db}");
        if !by_hand.is_empty() {
            text.push_str(&format!("\nto finish by hand:\n  {}", by_hand.join("\n  ")));
        }
        if let Err(e) = saved {
            text.push_str(&format!("\n{e:#}"));
        }
        crate::exit::stop(Exit::Failed, text)
    }
}

fn either(r: Result<String, String>) -> String {
    match r {
        Ok(s) | Err(s) => s,
    }
}

fn applied_words(state: &State) -> String {
    let n = state.applied.len();
    format!(
        "{n} migration{} applied{}",
        if n == 1 { "" } else { "s" },
        state
            .applied
            .last()
            .map_or(String::new(), |r| format!(", the newest {}", r.name))
    )
}

impl Change for Deploying<'_> {
    fn plan(&mut self, state: &State) -> anyhow::Result<Option<String>> {
        let migrations = self
            .migrate
            .plan(state)?
            .unwrap_or_else(|| "no migration pending".into());
        Ok(Some(format!(
            "{migrations}; then deploy Worker {} (wrangler deploy){}",
            self.worker.name,
            if self.smoke.is_some() {
                " and run the smoke command"
            } else {
                ""
            }
        )))
    }

    fn prepare(&mut self, _db: &mut dyn Database) -> anyhow::Result<()> {
        self.worker.ready()?;
        let previous = self.worker.live()?;
        match &previous {
            Some(v) => ui::say(format!("Worker {}: version {v} is live", self.worker.name)),
            None => ui::say(format!(
                "Worker {}: never deployed; this is its first deploy (there is no earlier version to roll back to)",
                self.worker.name
            )),
        }
        // Under the lock, a deploy of this database still marked as started is one that
        // was stopped mid-way (killed, a lost machine): say where it left things.
        for mut old in deploys::of(&self.ctx.project, self.target)
            .into_iter()
            .filter(|r| r.outcome == Outcome::Started)
        {
            ui::say(format!(
                "deploy {} did not finish (stopped mid-way): it had applied {} and deployed {}; the Worker now \
                 runs {}; this deploy goes on from there (`{}` would instead return to that deploy's restore \
                 point{})",
                old.id,
                if old.migrations_applied.is_empty() {
                    "no migration".to_string()
                } else {
                    old.migrations_applied.join(", ")
                },
                old.new_version.as_deref().unwrap_or("no new version"),
                previous.as_deref().unwrap_or("no version"),
                backups::command_line(self.ctx, self.target, "rollback", &format!("--to {}", old.id)),
                old.restore_point
                    .as_deref()
                    .map_or(String::new(), |r| format!(" {r}"))
            ));
            old.outcome = Outcome::Failed;
            old.note = Some(format!(
                "stopped mid-way; found by deploy at {} UTC",
                crate::time::format_utc(crate::time::unix_now())
            ));
            old.save(&self.ctx.project)?;
        }
        let record = Record::new(self.target, &self.worker.name, previous);
        record.save(&self.ctx.project)?;
        ui::known("deploy_id", json!(record.id));
        self.record = Some(record);
        Ok(())
    }

    fn act(&mut self, act: &mut Act<'_>) -> anyhow::Result<()> {
        if let Some(c) = act.captured {
            let record = self.record();
            record.restore_point = Some(c.entry.id.clone());
            record.bookmark = c.entry.bookmark.clone();
            record.restore_point_at = crate::time::parse_utc(&c.entry.created_at);
            self.save()?;
        }
        let chosen = self.migrate.chosen();
        if !chosen.is_empty() {
            if let Err(e) = self.migrate.act(act) {
                let record = self.record();
                record.outcome = Outcome::Failed;
                record.finished_at = Some(crate::time::unix_now());
                record.note = Some(format!(
                    "the migrations failed; the Worker was not deployed: {e:#}"
                ));
                self.save()?;
                return Err(crate::exit::stop(
                    crate::exit::status_of(&e),
                    format!("{e:#}\nthe Worker was not deployed"),
                ));
            }
            self.record().migrations_applied = chosen;
            self.save()?;
        }
        ui::say(format!("deploying Worker {}", self.worker.name));
        match self.worker.deploy()? {
            Deployed::Version(v) => {
                ui::say(format!("Worker {}: version {v} deployed", self.worker.name));
                self.record().new_version = Some(v);
                self.save()?;
            }
            Deployed::Failed(text) => {
                return Err(self.undo(act, format!("wrangler deploy failed: {text}"), true));
            }
        }
        if let Some(cmd) = self.smoke {
            ui::say(format!("smoke test: {cmd}"));
            let mut env = crate::commands::db_seed::xtask_env(self.ctx, self.target, act.db);
            env.retain(|(k, _)| *k != "PATH");
            if let Some(path) = self.worker.child_path() {
                env.push(("PATH", path));
            }
            let record = self.record.as_ref().expect("written in prepare");
            env.push(("XTASK_WORKER", record.worker.clone().into()));
            env.push((
                "XTASK_WORKER_VERSION",
                record.new_version.clone().unwrap_or_default().into(),
            ));
            env.push((
                "XTASK_WORKER_PREVIOUS_VERSION",
                record.previous_version.clone().unwrap_or_default().into(),
            ));
            env.push(("XTASK_DEPLOY_ID", record.id.clone().into()));
            match crate::commands::run_user_command(self.ctx, "smoke command", cmd, env) {
                Ok(crate::commands::UserCommand::Passed) => {
                    ui::say(format!("smoke test passed: `{cmd}`"))
                }
                Ok(crate::commands::UserCommand::Failed(status)) => {
                    return Err(self.undo(
                        act,
                        format!("the smoke command `{cmd}` failed ({status})"),
                        false,
                    ));
                }
                Err(e) => return Err(self.undo(act, format!("{e:#}"), false)),
            }
        }
        let record = self.record();
        record.outcome = Outcome::Deployed;
        record.finished_at = Some(crate::time::unix_now());
        self.save()?;
        let after = self.migrate.after().clone();
        let r = self.record.as_ref().expect("written in prepare");
        ui::say(format!(
            "deployed {} to {}: Worker {} version {} live; {}",
            r.id,
            self.target.env,
            r.worker,
            r.new_version.as_deref().unwrap_or("?"),
            applied_words(&after)
        ));
        Ok(())
    }

    fn undo_line(&self, captured: Option<&Captured>) -> String {
        match self.record.as_ref().map(|r| r.outcome) {
            Some(Outcome::Deployed) => {
                format!("\nto undo this deploy: {}", self.rollback_command())
            }
            // The failure's own message says where both halves stand.
            _ if self.rolled_back => String::new(),
            _ => captured.map_or(String::new(), Captured::undo_line),
        }
    }
}

fn dry_run(
    ctx: &Ctx,
    target: &Target,
    db: &mut dyn Database,
    mut worker: Worker,
    set: &MigrationSet,
    smoke: Option<&str>,
) -> anyhow::Result<Report> {
    let state = db.state()?;
    let status =
        crate::migrations::plan::status_with_schema(set, &state, &target.db.migrations_table);
    let chosen = crate::migrations::plan::select(&status, None);
    let live = worker.live()?;
    ui::say(format!(
        "{}: {} migration{} pending; Worker {}: {}",
        target.describe(),
        chosen.len(),
        if chosen.len() == 1 { "" } else { "s" },
        worker.name,
        live.as_deref()
            .map_or("never deployed".to_string(), |v| format!(
                "version {v} live"
            ))
    ));
    ui::say("dry run: nothing is changed; this would run, under the lock:");
    ui::say(format!(
        "  $ {}",
        display_command(&target.time_travel_args("info", &["--json"]))
    ));
    for args in crate::d1::ops::apply_commands(db, &chosen, crate::d1::ApplyMode::Atomic) {
        ui::say(format!("  $ {}", display_command(&args)));
    }
    ui::say(format!("  $ {}", display_command(&worker.deploy_args())));
    if let Some(cmd) = smoke {
        ui::say(format!(
            "  then: sh -c {cmd:?}; on failure, roll back the Worker, then the database"
        ));
    }
    for p in status.blocking() {
        ui::say(format!("  but first: {}", p.message));
    }
    let _ = ctx;
    Ok(Report::doc(json!({
        "env": target.env.name(),
        "database": target.database_json(),
        "dry_run": true,
        "changed": false,
        "worker": worker.name,
        "live_version": live,
        "would_apply": chosen.iter().map(|m| m.name.clone()).collect::<Vec<_>>(),
    })))
}

/// `deploy --list`: the environment's deploy records, newest last.
fn list(ctx: &Ctx, target: &Target) -> anyhow::Result<Report> {
    let records = deploys::of(&ctx.project, target);
    let zone = crate::time::zone(None).map_err(|e| failed!("{e}"))?;
    let mut report = Report::doc(json!({
        "env": target.env.name(),
        "database": target.database_json(),
        "deploys": records.iter().map(Record::to_json).collect::<Vec<_>>(),
    }));
    if records.is_empty() {
        report.line(format!("no deploys recorded for {}", target.describe()));
    }
    for r in &records {
        report.line(r.describe(&zone));
    }
    Ok(report)
}

/// The record `--to` names, or the newest one of the target that can be undone.
pub(crate) fn find_record(ctx: &Ctx, target: &Target, id: Option<&str>) -> anyhow::Result<Record> {
    let records = deploys::of(&ctx.project, target);
    match id {
        Some(id) => records.into_iter().find(|r| r.id == id).ok_or_else(|| {
            usage!(
                "no deploy {id} recorded for {} in {}: `{} deploy --list --env {}` lists them",
                target.describe(),
                deploys::path(&ctx.project).display(),
                ctx.settings.command_prefix,
                target.env
            )
        }),
        None => records
            .into_iter()
            .rev()
            .find(|r| matches!(r.outcome, Outcome::Deployed | Outcome::Started))
            .ok_or_else(|| {
                refused!(
                    "no deploy of {} to roll back: none is recorded as deployed (`{} deploy --list --env {}`)",
                    target.describe(),
                    ctx.settings.command_prefix,
                    target.env
                )
            }),
    }
}
