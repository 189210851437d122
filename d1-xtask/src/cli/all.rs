//! Several databases at once: `--database all` (db-status, db-migrate, db-backup: each
//! database of the environment in turn, each with its own restore point, lock and report;
//! a failure stops the rest) and `db-status --env all` (one table of every environment and
//! database, the remote reads in parallel).

use serde_json::json;

use super::grammar::Command;
use crate::exit::{report_of, status_of, stop_with, usage, Exit};
use crate::migrations::MigrationSet;
use crate::ui::{self, Report};
use crate::workspace::target::{Env, Target};
use crate::workspace::Global;
use crate::{d1, migrations::plan, workspace::Ctx};

/// Runs `command` once per database of the environment, in the config's order, and
/// returns one report holding each database's.
pub(crate) fn every_database(ctx: &Ctx, command: Command) -> anyhow::Result<Report> {
    let env = Env::parse(ctx.global.env.as_deref());
    let bindings = ctx.config.bindings(&env);
    if bindings.is_empty() {
        return Err(usage!(
            "{} has no d1_databases in {}: nothing for --database all to do",
            env,
            ctx.project.config_path.display()
        ));
    }
    let is_status = matches!(command, Command::DbStatus(_));
    let mut all = All {
        env: env.clone(),
        docs: Vec::new(),
        text: Vec::new(),
        done: Vec::new(),
    };
    let mut pending_exit: Option<anyhow::Error> = None;
    for (i, binding) in bindings.iter().enumerate() {
        let one = Ctx {
            global: Global {
                database: Some(binding.clone()),
                ..ctx.global.clone()
            },
            ..ctx.clone()
        };
        let header = format!("── {env} {binding} ({} of {}) ──", i + 1, bindings.len());
        ui::say(&header);
        let result = match command.clone() {
            Command::DbStatus(c) => c.run(&one),
            Command::DbMigrate(c) => c.run(&one),
            Command::DbBackup(c) => c.run(&one),
            _ => Err(usage!(
                "--database all goes with db-status, db-migrate and db-backup; name one database for the others"
            )),
        };
        match result {
            Ok(report) => {
                all.add(&header, &report);
                all.done.push(binding.clone());
            }
            // `db-status --check` finding pending work is a verdict, not a failure: go on.
            Err(e) if is_status && status_of(&e) == Exit::Pending => {
                if let Some(report) = report_of(&e) {
                    all.add(&header, report);
                }
                ui::say(format!("check: {e:#}"));
                all.done.push(binding.clone());
                pending_exit = Some(e);
            }
            Err(e) => {
                if let Some(report) = report_of(&e) {
                    all.add(&header, report);
                }
                let rest = &bindings[i + 1..];
                let message = format!(
                    "{e:#}\n--database all stopped at {binding}: done: {}; not run: {}",
                    list(&all.done),
                    list(rest)
                );
                return Err(stop_with(status_of(&e), message, all.report(Some(binding))));
            }
        }
    }
    match pending_exit {
        Some(_) => Err(stop_with(
            Exit::Pending,
            "at least one database has pending migrations or blocking problems",
            all.report(None),
        )),
        None => Ok(all.report(None)),
    }
}

/// What `--database all` has gathered so far.
struct All {
    env: Env,
    docs: Vec<serde_json::Value>,
    text: Vec<String>,
    done: Vec<String>,
}

impl All {
    /// One database's report, its lines under `header`.
    fn add(&mut self, header: &str, report: &Report) {
        if !report.doc.is_null() {
            self.docs.push(report.doc.clone());
        }
        if !report.text.is_empty() {
            self.text.push(header.to_string());
            self.text.extend(report.text.iter().cloned());
        }
    }

    /// The one report of `--database all`: an entry per database that ran.
    fn report(&self, failed: Option<&String>) -> Report {
        Report {
            doc: json!({
                "env": self.env.name(),
                "databases": self.docs,
                "done": self.done,
                "failed": failed,
            }),
            text: self.text.clone(),
        }
    }
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// One row of `db-status --env all`.
struct Row {
    target: Target,
    result: Result<Summary, String>,
}

struct Summary {
    applied: usize,
    pending: usize,
    problems: usize,
    blocking: usize,
    newest: Option<String>,
}

fn summarize(ctx: &Ctx, target: &Target) -> anyhow::Result<Summary> {
    let set = MigrationSet::for_target(target)?;
    let mut db = d1::open(&ctx.project, target)?;
    let state = db.state()?;
    let status = plan::status_with_schema(&set, &state, &target.db.migrations_table);
    Ok(Summary {
        applied: status.applied.len(),
        pending: status.pending.len(),
        problems: status.problems.len(),
        blocking: status.blocking().count(),
        newest: state.applied.last().map(|r| r.name.clone()),
    })
}

/// `db-status --env all`: every environment of the config (local first) and each of its
/// databases (or the one `--database` names), read in parallel, shown as one table.
pub(crate) fn status_of_every_env(ctx: &Ctx, check: bool) -> anyhow::Result<Report> {
    let only = ctx.global.database.as_deref().filter(|d| *d != "all");
    let mut targets = Vec::new();
    for name in ctx.config.env_names() {
        let env = Env::parse(Some(&name));
        for binding in ctx.config.bindings(&env) {
            if only.is_some_and(|o| o != binding) {
                continue;
            }
            targets.push(
                ctx.config
                    .resolve(&env, Some(&binding), &ctx.settings.protected)?,
            );
        }
    }
    if targets.is_empty() {
        return Err(usage!(
            "no environment of {} has {}: nothing to show",
            ctx.project.config_path.display(),
            only.map_or("d1_databases".to_string(), |o| format!("a database `{o}`"))
        ));
    }
    let rows: Vec<Row> = std::thread::scope(|scope| {
        let handles: Vec<_> = targets
            .iter()
            .map(|t| scope.spawn(move || summarize(ctx, t).map_err(|e| format!("{e:#}"))))
            .collect();
        handles
            .into_iter()
            .zip(&targets)
            .map(|(h, t)| Row {
                target: t.clone(),
                result: h
                    .join()
                    .unwrap_or_else(|_| Err("the read stopped unexpectedly".into())),
            })
            .collect()
    });
    let header = [
        "ENV", "DATABASE", "APPLIED", "PENDING", "PROBLEMS", "NEWEST",
    ];
    let mut table: Vec<[String; 6]> = vec![header.map(String::from)];
    for r in &rows {
        let db = r.target.db.label().to_string();
        let env = r.target.env.name().to_string();
        table.push(match &r.result {
            Ok(s) => [
                env,
                db,
                s.applied.to_string(),
                s.pending.to_string(),
                if s.blocking > 0 {
                    format!("{} ({} blocking)", s.problems, s.blocking)
                } else {
                    s.problems.to_string()
                },
                s.newest.clone().unwrap_or_else(|| "-".into()),
            ],
            Err(e) => [
                env,
                db,
                "?".into(),
                "?".into(),
                "?".into(),
                format!("error: {}", e.lines().next().unwrap_or_default()),
            ],
        });
    }
    let mut report = Report::doc(json!({
        "environments": rows.iter().map(|r| {
            let mut doc = json!({
                "env": r.target.env.name(),
                "database": r.target.database_json(),
            });
            match &r.result {
                Ok(s) => {
                    doc["applied"] = json!(s.applied);
                    doc["pending"] = json!(s.pending);
                    doc["problems"] = json!(s.problems);
                    doc["blocking"] = json!(s.blocking);
                    doc["newest"] = json!(s.newest);
                }
                Err(e) => doc["error"] = json!(e),
            }
            doc
        }).collect::<Vec<_>>(),
    }));
    {
        let widths: Vec<usize> = (0..6)
            .map(|i| {
                table
                    .iter()
                    .map(|row| row[i].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for row in &table {
            let cells: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            report.line(cells.join("  ").trim_end());
        }
    }
    let errors: Vec<String> = rows
        .iter()
        .filter_map(|r| {
            r.result
                .as_ref()
                .err()
                .map(|e| format!("{}: {e}", r.target.describe()))
        })
        .collect();
    if !errors.is_empty() {
        return Err(stop_with(
            Exit::Failed,
            format!("could not read {}", errors.join("\n")),
            report,
        ));
    }
    let open: Vec<String> = rows
        .iter()
        .filter_map(|r| {
            let s = r.result.as_ref().ok()?;
            (s.pending > 0 || s.blocking > 0)
                .then(|| format!("{} {}", r.target.env, r.target.db.label()))
        })
        .collect();
    if check && !open.is_empty() {
        return Err(stop_with(
            Exit::Pending,
            format!(
                "pending migrations or blocking problems in: {}",
                open.join(", ")
            ),
            report,
        ));
    }
    Ok(report)
}
