//! `db-migrate --rehearse`: the pending migrations applied to a scratch copy of the real
//! database (an export of a remote one, a snapshot of the local one), loaded into a
//! scratch local D1 that is never the user's own; per migration: success or the error,
//! the time taken, and the row counts before and after. Nothing changes on the database.

use std::path::PathBuf;
use std::time::Instant;

use serde_json::json;

use crate::d1::local::Local;
use crate::d1::{ApplyMode, BackupMade, Database, Extras, RestorePoint, State};
use crate::exit::{failed, stop_with, Exit};
use crate::migrations::{Migration, MigrationSet};
use crate::ui::{self, Report};
use crate::workspace::target::Target;
use crate::wrangler::Wrangler;
use crate::{migrations::plan, workspace::Ctx};

/// Rows per table (the user's tables; not the tracking and side tables).
fn counts(db: &mut dyn Database, state: &State, table: &str) -> anyhow::Result<Vec<(String, i64)>> {
    let own = crate::d1::own_tables(table);
    let tables: Vec<&str> = state
        .schema
        .iter()
        .filter(|o| o.kind == "table")
        .map(|o| o.name.as_str())
        .filter(|n| !own.iter().any(|t| t == n) && !crate::d1::is_internal(n))
        .collect();
    crate::d1::row_counts(db, &tables)
}

/// Tables a migration names as the target of DDL or DML.
fn named_tables(m: &Migration) -> Vec<String> {
    let split = crate::migrations::sql::split(&m.sql);
    let mut out = Vec::new();
    for stmt in &split.statements {
        let words = stmt.leading_words(&m.sql, 8);
        let pick = |i: usize| {
            words.get(i).map(|w| {
                w.trim_matches(|c| c == '"' || c == '`' || c == '[' || c == ']')
                    .to_string()
            })
        };
        let name = match words.first().map(String::as_str) {
            Some("CREATE") => words.iter().position(|w| w == "TABLE").and_then(|i| {
                let i = if words.get(i + 1).map(String::as_str) == Some("IF") {
                    i + 4
                } else {
                    i + 1
                };
                pick(i)
            }),
            Some("DROP") if words.get(1).map(String::as_str) == Some("TABLE") => {
                pick(if words.get(2).map(String::as_str) == Some("IF") {
                    4
                } else {
                    2
                })
            }
            Some("ALTER") => pick(2),
            Some("INSERT" | "REPLACE") => words
                .iter()
                .position(|w| w == "INTO")
                .and_then(|i| pick(i + 1)),
            Some("DELETE") => pick(2),
            Some("UPDATE") => pick(1),
            _ => None,
        };
        if let Some(n) = name {
            let n = n.to_ascii_lowercase();
            if !out.contains(&n) {
                out.push(n);
            }
        }
    }
    out
}

pub(crate) fn run(
    ctx: &Ctx,
    target: &Target,
    db: &mut dyn Database,
    set: &MigrationSet,
    to: Option<&Migration>,
    dry_run: bool,
) -> anyhow::Result<Report> {
    let scratch_root: PathBuf = ctx
        .project
        .scratch_dir()
        .join(format!("rehearsal-{}", std::process::id()));
    if dry_run {
        ui::say(format!(
            "dry run: would copy {} into a scratch local D1 under {} and apply the pending migrations there",
            target.describe(),
            scratch_root.display()
        ));
        return Ok(crate::commands::dry_run_report(target));
    }
    let _ = std::fs::remove_dir_all(&scratch_root);
    std::fs::create_dir_all(&scratch_root)
        .map_err(|e| failed!("cannot create {}: {e}", scratch_root.display()))?;
    let result = rehearse(ctx, target, db, set, to, &scratch_root);
    let _ = std::fs::remove_dir_all(&scratch_root);
    result
}

fn rehearse(
    ctx: &Ctx,
    target: &Target,
    db: &mut dyn Database,
    set: &MigrationSet,
    to: Option<&Migration>,
    scratch_root: &std::path::Path,
) -> anyhow::Result<Report> {
    let mut copy = Local::scratch(
        scratch_root,
        "rehearsal",
        target,
        Wrangler::locate(&ctx.project)?,
    )?;

    // 1. The copy: an export (remote) or a snapshot (local), loaded into the scratch D1.
    let dump = scratch_root.join("copy.data");
    ui::say(format!(
        "rehearsal: copying {} into a scratch local D1",
        target.describe()
    ));
    match db.backup(&dump)? {
        BackupMade::Export { .. } => {
            let sql = std::fs::read_to_string(&dump)
                .map_err(|e| failed!("cannot read the export: {e}"))?;
            crate::d1::ops::execute(&mut copy, &sql)?.map_err(|e| {
                failed!("loading the export into the scratch D1 failed: {e}; nothing was changed")
            })?;
        }
        BackupMade::Snapshot => {
            copy.return_to(&RestorePoint::Snapshot(dump.clone()))?;
        }
    }
    let before = copy.state()?;
    let status = plan::status(set, &before);
    let chosen = plan::select(&status, to);
    if chosen.is_empty() {
        ui::say("rehearsal: nothing to apply; the copy is up to date");
        return Ok(Report::doc(
            json!({"env": target.env.name(), "database": target.database_json(), "rehearsal": [], "ok": true}),
        ));
    }
    // 2. Each pending migration in its own request, timed, with row counts around it.
    let table = target.db.migrations_table.clone();
    let mut state = before;
    let mut report = Vec::new();
    let mut failure = None;
    for m in &chosen {
        let rows_before = counts(&mut copy, &state, &table)?;
        let started = Instant::now();
        let outcome = crate::d1::ops::apply(
            &mut copy,
            &[*m],
            ApplyMode::PerFile,
            &state,
            &Extras::default(),
        )?;
        let ms = started.elapsed().as_millis();
        let after = copy.state()?;
        let rows_after = counts(&mut copy, &after, &table)?;
        let named = named_tables(m);
        let mut lines = Vec::new();
        let mut lost = Vec::new();
        for (t, n_after) in &rows_after {
            let n_before = rows_before.iter().find(|(b, _)| b == t).map(|(_, n)| *n);
            let touched = named.contains(&t.to_ascii_lowercase()) || n_before != Some(*n_after);
            if touched {
                lines.push(json!({"table": t, "before": n_before, "after": n_after}));
                if let Some(b) = n_before {
                    if *n_after < b && outcome.error.is_none() {
                        lost.push(format!("{t}: {} rows", b - n_after));
                    }
                }
            }
        }
        for (t, b) in &rows_before {
            if !rows_after.iter().any(|(a, _)| a == t) && outcome.error.is_none() {
                lines.push(json!({"table": t, "before": b, "after": null}));
                if *b > 0 {
                    lost.push(format!("{t}: {b} rows (table dropped)"));
                }
            }
        }
        let ok = outcome.error.is_none() && after.is_applied(&m.name);
        let counts_text: Vec<String> = lines
            .iter()
            .map(|l| {
                format!(
                    "{} {}→{}",
                    l["table"].as_str().unwrap_or_default(),
                    l["before"].as_i64().map_or("-".into(), |n| n.to_string()),
                    l["after"]
                        .as_i64()
                        .map_or("dropped".into(), |n| n.to_string())
                )
            })
            .collect();
        ui::say(format!(
            "  {} {}  {ms} ms  {}{}",
            if ok { "ok    " } else { "FAILED" },
            m.name,
            if counts_text.is_empty() {
                "-".to_string()
            } else {
                counts_text.join(", ")
            },
            if lost.is_empty() {
                String::new()
            } else {
                format!("  ROWS LOST: {}", lost.join(", "))
            }
        ));
        report.push(json!({
            "migration": m.name,
            "ok": ok,
            "error": outcome.error,
            "ms": ms,
            "rows": lines,
            "rows_lost": lost,
        }));
        if !ok {
            failure = Some((
                m.name.clone(),
                outcome.error.unwrap_or_else(|| "not recorded".into()),
            ));
            break;
        }
        state = after;
    }
    let not_reached: Vec<&str> = chosen
        .iter()
        .skip(report.len())
        .map(|m| m.name.as_str())
        .collect();
    if !not_reached.is_empty() {
        ui::say(format!("  not reached: {}", not_reached.join(", ")));
    }
    let doc = Report::doc(json!({
        "env": target.env.name(),
        "database": target.database_json(),
        "rehearsal": report,
        "not_reached": not_reached,
        "ok": failure.is_none(),
    }));
    match failure {
        None => {
            ui::say(format!(
                "rehearsal passed: {} migration{} apply cleanly to a copy of {}; nothing was changed there",
                chosen.len(),
                if chosen.len() == 1 { "" } else { "s" },
                target.env
            ));
            Ok(doc)
        }
        Some((name, error)) => Err(stop_with(
            Exit::Failed,
            format!(
                "rehearsal: {name} would fail on {}'s data: {error}\nnothing was changed on {}",
                target.env, target.env
            ),
            doc,
        )),
    }
}
