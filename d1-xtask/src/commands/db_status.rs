//! `db-status [--check]`: applied, pending and what is wrong, without changing anything.

use serde_json::json;

use crate::exit::{stop_with, Exit};
use crate::migrations::MigrationSet;
use crate::ui::Report;
use crate::workspace::options::{Output, Where};
use crate::workspace::target::Target;
use crate::{d1, migrations::plan, workspace::Ctx};

/// `db-status` and its flags.
#[derive(clap::Args, Clone, Debug, PartialEq)]
pub struct DbStatus {
    /// exit 3 when anything is pending or wrong
    #[arg(long)]
    pub(crate) check: bool,
    /// every database of this fleet (`fleets` in xtask.jsonc), through D1's API
    #[arg(long, value_name = "name")]
    pub(crate) fleet: Option<String>,
    #[command(flatten)]
    pub(crate) at: Where,
    #[command(flatten)]
    pub(crate) out: Output,
}

impl DbStatus {
    pub(crate) fn run(self, ctx: &Ctx) -> anyhow::Result<Report> {
        if let Some(name) = &self.fleet {
            if ctx.global.env.is_some() {
                return Err(crate::exit::usage!(
                    "--fleet takes its environment from the fleet's settings: drop --env"
                ));
            }
            return crate::commands::fleet::status(ctx, name, self.check);
        }
        let target = ctx.target()?;
        let set = MigrationSet::for_target(&target)?;
        let mut db = d1::open(&ctx.project, &target)?;
        let state = db.state()?;
        let status = plan::status_with_schema(&set, &state, &target.db.migrations_table);

        let mut doc = status_json(&target, &status);
        doc["location"] = json!(db.location());
        doc["wrangler_calls"] = json!(db.wrangler_calls());
        let mut report = Report::doc(doc);
        {
            report.line(format!("{} · {}", target.describe(), db.location()));
            let width = status
                .applied
                .iter()
                .map(|(r, _)| r.name.len())
                .chain(status.pending.iter().map(|m| m.name.len()))
                .max()
                .unwrap_or(0);
            for (row, file) in &status.applied {
                let mark = if file.is_some() { "[x]" } else { "[!]" };
                let note = if file.is_some() {
                    ""
                } else {
                    "  (file missing)"
                };
                report.line(format!(
                    "{mark} {:<width$}  {}{note}",
                    row.name, row.applied_at
                ));
            }
            for m in &status.pending {
                report.line(format!("[ ] {}", m.name));
            }
            if !status.problems.is_empty() {
                report.line("problems:");
                for p in &status.problems {
                    report.line(format!("  {}", p.message));
                }
            }
            report.line(format!(
                "{} applied, {} pending, {} problem{}",
                status.applied.len(),
                status.pending.len(),
                status.problems.len(),
                if status.problems.len() == 1 { "" } else { "s" }
            ));
        }
        let blocking = status.blocking().count();
        if self.check && (!status.pending.is_empty() || blocking > 0) {
            return Err(stop_with(
                Exit::Pending,
                format!(
                    "{} pending, {blocking} blocking problem{}",
                    status.pending.len(),
                    if blocking == 1 { "" } else { "s" }
                ),
                report,
            ));
        }
        Ok(report)
    }
}

/// The `db-status --json` document (documented in the README; keep it stable).
pub(crate) fn status_json(target: &Target, status: &plan::Status) -> serde_json::Value {
    json!({
        "env": target.env.name(),
        "database": target.database_json(),
        "applied": status.applied.iter().map(|(row, file)| json!({
            "name": row.name,
            "applied_at": row.applied_at,
            "file_present": file.is_some(),
            "sha256": file.map(|f| f.sha256.clone()),
        })).collect::<Vec<_>>(),
        "pending": status.pending.iter().map(|m| m.name.clone()).collect::<Vec<_>>(),
        "problems": status.problems.iter().map(|p| json!({
            "kind": p.kind,
            "migration": p.migration,
            "message": p.message,
            "blocking": p.blocking,
        })).collect::<Vec<_>>(),
    })
}
