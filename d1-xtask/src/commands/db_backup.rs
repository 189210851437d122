//! `db-backup [--output <path>] [--list]`: a remote export with its bookmark, or an exact
//! snapshot of the local file, recorded in the backup index; never overwriting anything.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};
use serde_json::json;

use crate::d1::{local::read_state, BackupMade, State};
use crate::exit::{failed, usage};
use crate::guarded::backups::{self, Entry, Kind};
use crate::ui::{self, Report};
use crate::workspace::options::{Output, Preview, Where};
use crate::{d1, workspace::Ctx};

/// `db-backup` and its flags.
#[derive(clap::Args, Clone, Debug, PartialEq)]
pub struct DbBackup {
    /// write the backup here instead of backups/<env>/<database>-<UTC time>.<ext> (never overwrites)
    #[arg(long, value_name = "path")]
    pub(crate) output: Option<PathBuf>,
    /// list the backup index: every backup and restore point
    #[arg(long)]
    pub(crate) list: bool,
    /// record the current Time Travel bookmark and time in the index, without an export (remote)
    #[arg(long)]
    pub(crate) bookmark: bool,
    /// the IANA time zone --list shows times in (default: TZ, then the system's)
    #[arg(long, value_name = "zone")]
    pub(crate) tz: Option<String>,
    #[command(flatten)]
    pub(crate) at: Where,
    #[command(flatten)]
    pub(crate) out: Output,
    #[command(flatten)]
    pub(crate) preview: Preview,
}

/// What one `db-backup` run does: its modes exclude each other.
enum Mode<'a> {
    /// Back up, to `--output` or the default place.
    Make(Option<&'a Path>),
    /// `--list`, times in `--tz`.
    List(Option<&'a str>),
    /// `--bookmark`: record the bookmark alone.
    Bookmark,
}

impl DbBackup {
    /// The one thing this run does; `--list`, `--bookmark` and `--output` exclude each other.
    fn mode(&self) -> anyhow::Result<Mode<'_>> {
        if self.tz.is_some() && !self.list {
            return Err(usage!(
                "--tz goes with --list (the zone its times are shown in)"
            ));
        }
        match (self.list, self.bookmark, self.output.as_deref()) {
            (true, _, Some(_)) => Err(usage!(
                "--list and --output do not go together: list, or back up"
            )),
            (true, true, None) => Err(usage!(
                "--list and --bookmark do not go together: list, or record a bookmark"
            )),
            (true, false, None) => Ok(Mode::List(self.tz.as_deref())),
            (false, true, Some(_)) => Err(usage!(
                "--bookmark records the current bookmark without an export: it writes no file, so --output does not go with it"
            )),
            (false, true, None) => Ok(Mode::Bookmark),
            (false, false, output) => Ok(Mode::Make(output)),
        }
    }

    pub(crate) fn run(self, ctx: &Ctx) -> anyhow::Result<Report> {
        let output = match self.mode()? {
            Mode::List(tz) => return list(ctx, tz),
            Mode::Bookmark => return bookmark_only(ctx, &ctx.target()?),
            Mode::Make(output) => output,
        };
        let target = ctx.target()?;
        let ext = if target.env.is_remote() {
            "sql"
        } else {
            "sqlite"
        };
        let dest = match output {
            Some(path) => {
                let path = ctx.cwd.join(path);
                if path.exists() || path.is_symlink() {
                    return Err(usage!(
                        "{} exists: backups never overwrite a file; name another --output",
                        path.display()
                    ));
                }
                path
            }
            None => backups::default_path(&ctx.project, &target, ext),
        };
        if ctx.global.dry_run {
            ui::say(format!(
                "dry run: would back up {} to {}",
                target.describe(),
                dest.display()
            ));
            return Ok(crate::commands::dry_run_report(&target));
        }
        let mut db = d1::open(&ctx.project, &target)?;
        let scratch = backups::scratch_file(&ctx.project, ext)?;
        let made = db.backup(&scratch)?;
        let (kind, bookmark) = match made {
            BackupMade::Snapshot => (Kind::Snapshot, None),
            BackupMade::Export { bookmark } => (Kind::Export, Some(bookmark)),
        };
        // A backup is recorded only if it reads back whole: every statement of an export
        // complete and loadable, a snapshot passing SQLite's quick_check. What it holds
        // (the migrations) comes from that same reading.
        let state = match inspect(&scratch, &target.db.migrations_table, kind) {
            Ok(state) => state,
            Err(e) => {
                let apart = backups::set_apart(&ctx.project, &scratch, &dest);
                return Err(failed!(
                    "the backup of {} does not read back whole: {e:#}\nit was not recorded{}; \
                     nothing was changed; run db-backup again",
                    target.describe(),
                    apart.map_or_else(
                        || " (and could not be kept apart)".to_string(),
                        |p| format!(" and is kept apart at {}", p.display())
                    )
                ));
            }
        };
        let (size, sha256) = backups::publish(&scratch, &dest)?;
        let entry = Entry {
            kind,
            bookmark,
            file: Some(dest.clone()),
            size: Some(size),
            sha256: Some(sha256.clone()),
            ..Entry::new(&target, kind, &state, "db-backup")
        };
        backups::record(&ctx.project, &entry)?;
        ui::say(format!(
            "backup {}: {} ({size} bytes, SHA-256 {}){}; {} migration{} applied{}",
            entry.id,
            dest.display(),
            &sha256[..16],
            entry
                .bookmark
                .as_ref()
                .map_or(String::new(), |b| format!(", at bookmark {b}")),
            state.applied.len(),
            if state.applied.len() == 1 { "" } else { "s" },
            state
                .applied
                .last()
                .map_or(String::new(), |r| format!(", the newest {}", r.name))
        ));
        ui::say(format!(
            "restore it with: {}",
            backups::restore_command(ctx, &target, &format!("--backup {}", entry.id))
        ));
        let mut doc = entry.to_json(&ctx.project.root);
        doc["database"] = target.database_json();
        doc["wrangler_calls"] = json!(db.wrangler_calls());
        Ok(Report::doc(doc))
    }
}

/// The tracking table inside a backup file: a snapshot is opened; an export's schema
/// and tracking rows are loaded into an in-memory SQLite (its other rows are skipped).
fn inspect(file: &Path, table: &str, kind: Kind) -> anyhow::Result<State> {
    let conn = match kind {
        Kind::Snapshot => {
            let conn = Connection::open_with_flags(file, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
            let check: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
            if check != "ok" {
                anyhow::bail!("SQLite's quick_check of the snapshot says: {check}");
            }
            conn
        }
        _ => {
            let conn = Connection::open_in_memory()?;
            let keep = crate::d1::own_tables(table).to_vec();
            crate::d1::load::load_schema_and_tables(&conn, file, "the export", &keep)?;
            conn
        }
    };
    Ok(read_state(&conn, table)?)
}

/// `db-backup --bookmark`: the current Time Travel bookmark and time, recorded in the
/// backup index (and `$GITHUB_OUTPUT`) without an export; the brief's `timetravel info`.
fn bookmark_only(ctx: &Ctx, target: &crate::workspace::target::Target) -> anyhow::Result<Report> {
    if !target.env.is_remote() {
        return Err(usage!(
            "--bookmark: the local database has no Time Travel; `cargo xtask db-backup` snapshots it instead"
        ));
    }
    if ctx.global.dry_run {
        ui::say(format!(
            "dry run: would record the current Time Travel bookmark of {}",
            target.describe()
        ));
        return Ok(crate::commands::dry_run_report(target));
    }
    let mut db = d1::open(&ctx.project, target)?;
    let state = db.state()?;
    let taken = backups::take(ctx, db.as_mut())?;
    let captured = backups::record_point(ctx, target, taken, &state, "db-backup --bookmark", None)?;
    let zone = crate::time::zone(None).unwrap_or_else(|e| {
        ui::say(format!("warning: {e}; the time below is in UTC"));
        jiff::tz::TimeZone::UTC
    });
    let now = crate::time::unix_now();
    ui::say(format!(
        "{}: bookmark {} at {}; {} migration{} applied",
        target.describe(),
        captured.entry.bookmark.as_deref().unwrap_or(""),
        crate::time::describe(now, &zone),
        state.applied.len(),
        if state.applied.len() == 1 { "" } else { "s" },
    ));
    ui::say(format!("return to it with: {}", captured.undo));
    let mut doc = captured.entry.to_json(&ctx.project.root);
    doc["database"] = target.database_json();
    doc["wrangler_calls"] = json!(db.wrangler_calls());
    Ok(Report::doc(doc))
}

fn list(ctx: &Ctx, tz: Option<&str>) -> anyhow::Result<Report> {
    let zone = crate::time::zone(tz).map_err(|e| usage!("{e}"))?;
    let entries = backups::entries(&ctx.project);
    let mut report = Report::doc(json!(entries
        .iter()
        .map(|e| e.to_json(&ctx.project.root))
        .collect::<Vec<_>>()));
    if entries.is_empty() {
        report.line(format!(
            "no backups or restore points yet ({} does not list any)",
            backups::index_path(&ctx.project).display()
        ));
        return Ok(report);
    }
    for e in &entries {
        report.line(e.describe(&ctx.project.root, &zone));
    }
    report.line(format!(
        "{} entr{}",
        entries.len(),
        if entries.len() == 1 { "y" } else { "ies" }
    ));
    Ok(report)
}
