//! `db-seed --from <env> [--output <file>] [--limit <rows>] [--report]`: test data made
//! from a real database. The source is only read, through its export (remote) or a
//! snapshot (local); the copy goes into a scratch SQLite on this machine, through the
//! rules of `xtask.jsonc` (`anonymize.rs`), and out as a seed file and its cleanup.

use std::path::{Path, PathBuf};

use rusqlite::Connection;
use serde_json::json;

use crate::commands::db_seed::anonymize::{self, Options};
use crate::commands::db_seed::DbSeed;
use crate::d1::{self, BackupMade};
use crate::exit::{failed, usage};
use crate::ui::{self, Report};
use crate::workspace::target::{Env, Target};
use crate::{guarded::backups, guarded::confirm, workspace::Ctx};

/// The key file or variable must give at least this many bytes.
const MIN_KEY: usize = 16;

/// `db-seed --from <env>` (its flags checked by `DbSeed::mode`).
pub(crate) fn run(ctx: &Ctx, cmd: &DbSeed, from: &str) -> anyhow::Result<Report> {
    if ctx.global.env.is_some() {
        return Err(usage!(
            "--from names the environment to read; --env does not apply (nothing is loaded): load the output \
             with `cargo xtask db-seed --env <env> --file <seed file>`"
        ));
    }
    let target = ctx.config.resolve(
        &Env::parse(Some(from)),
        ctx.global.database.as_deref(),
        &ctx.settings.protected,
    )?;
    let (seed_path, cleanup_path) = outputs(ctx, cmd.output.as_deref(), target.env.name())?;
    let skip = d1::own_tables(&target.db.migrations_table);
    let key = if cmd.report { None } else { key(ctx)? };
    if ctx.global.dry_run {
        ui::say(format!(
            "dry run: would read {} (its {}) and write {} and {}",
            target.describe(),
            if target.env.is_remote() {
                "export"
            } else {
                "snapshot"
            },
            seed_path.display(),
            cleanup_path.display()
        ));
        return Ok(crate::commands::dry_run_report(&target));
    }
    // Reading a protected environment is allowed here, and confirmed.
    confirm::confirm_read(
        &target,
        ctx.global.yes,
        "db-seed --from",
        "copy every row into test data on this machine (a read: nothing is changed there)",
    )?;

    let conn = copy(ctx, &target)?;
    if cmd.report {
        let template = anonymize::report(&conn, &skip, &ctx.settings.anonymize)?;
        let mut report =
            Report::doc(json!({ "from": target.env.name(), "rules_template": template }));
        report.line(template);
        return Ok(report);
    }
    let seed_name = file_name(&seed_path);
    let cleanup_name = file_name(&cleanup_path);
    let made = anonymize::make(
        &conn,
        &Options {
            env: target.env.name(),
            rules: &ctx.settings.anonymize,
            key: key.as_deref(),
            ranges: &ranges(ctx)?,
            limit: cmd.limit,
            skip: &skip,
            seed_name: &seed_name,
            cleanup_name: &cleanup_name,
        },
    )?;
    write(&seed_path, &made.seed_sql)?;
    write(&cleanup_path, &made.cleanup_sql)?;
    let summary: Vec<String> = made.rows.iter().map(|(t, n)| format!("{t} {n}")).collect();
    ui::say(format!(
        "wrote {} ({}) and {}; load it with `cargo xtask db-seed --file {}`",
        seed_path.display(),
        summary.join(", "),
        cleanup_path.display(),
        seed_path.display()
    ));
    Ok(Report::doc(json!({
        "from": target.env.name(),
        "database": target.database_json(),
        "seed_file": seed_path.display().to_string(),
        "cleanup_file": cleanup_path.display().to_string(),
        "rows": made.rows.iter().map(|(t, n)| json!({"table": t, "rows": n})).collect::<Vec<_>>(),
    })))
}

/// The seed file (`--output`, else `test-data/seed-from-<env>.sql`) and its cleanup beside
/// it (`seed-x.sql` -> `cleanup-x.sql`).
fn outputs(ctx: &Ctx, output: Option<&Path>, env: &str) -> anyhow::Result<(PathBuf, PathBuf)> {
    let seed = match output {
        Some(p) => ctx.cwd.join(p),
        None => ctx.project.test_data.join(format!("seed-from-{env}.sql")),
    };
    let name = file_name(&seed);
    if !name.ends_with(".sql") {
        return Err(usage!(
            "--output {}: the seed file must end in .sql",
            seed.display()
        ));
    }
    let cleanup_name = match name.strip_prefix("seed-") {
        Some(rest) => format!("cleanup-{rest}"),
        None => format!("cleanup-{name}"),
    };
    let cleanup = seed.with_file_name(cleanup_name);
    Ok((seed, cleanup))
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The key: `XTASK_ANONYMIZE_KEY`, else the file named in `xtask.jsonc`; `None` when
/// neither is set (the rules that need one then say so).
fn key(ctx: &Ctx) -> anyhow::Result<Option<Vec<u8>>> {
    let (bytes, from) = match std::env::var("XTASK_ANONYMIZE_KEY") {
        Ok(v) if !v.is_empty() => (v.into_bytes(), "XTASK_ANONYMIZE_KEY".to_string()),
        _ => match &ctx.settings.anonymize_key_file {
            Some(file) => {
                let path = ctx.project.root.join(file);
                let bytes = std::fs::read(&path).map_err(|e| {
                    usage!(
                        "cannot read the anonymize key file {} (anonymize_key_file in xtask.jsonc): {e}",
                        path.display()
                    )
                })?;
                (bytes.trim_ascii().to_vec(), path.display().to_string())
            }
            None => return Ok(None),
        },
    };
    if bytes.len() < MIN_KEY {
        return Err(usage!(
            "the anonymize key in {from} is {} bytes: use at least {MIN_KEY} random bytes (for example \
             `openssl rand -hex 32`)",
            bytes.len()
        ));
    }
    Ok(Some(bytes))
}

/// The id ranges: `test_ranges` from `xtask.jsonc`; by default the upper half of the
/// reserved range the cleanup files name (the hand-written seeds sit in the lower half).
fn ranges(ctx: &Ctx) -> anyhow::Result<std::collections::BTreeMap<String, (i64, i64)>> {
    let mut ranges = ctx.settings.test_ranges.clone();
    if !ranges.contains_key("*") {
        // From the hand-written cleanup files only: what `--from` wrote last time must
        // not move this run's ids.
        let reserved = reserved_ranges(ctx, false)?;
        let (lo, hi) = reserved.first().copied().unwrap_or((900_000, 999_999));
        ranges.insert("*".into(), (lo + (hi - lo + 1) / 2, hi));
    }
    Ok(ranges)
}

/// Every `BETWEEN a AND b` of `test-data/cleanup*.sql` (with `generated`, also of the
/// `cleanup-from-*.sql` that `--from` wrote), in file order, then `test_ranges`: the ids
/// reserved for test data.
pub(crate) fn reserved_ranges(ctx: &Ctx, generated: bool) -> anyhow::Result<Vec<(i64, i64)>> {
    let dir = ctx.project.test_data.clone();
    let mut out: Vec<(i64, i64)> = Vec::new();
    for path in crate::commands::db_seed::files::files_with_prefix(&dir, "cleanup")? {
        let from_env = file_name(&path).starts_with("cleanup-from-");
        if from_env && !generated {
            continue;
        }
        let text = std::fs::read_to_string(&path)
            .map_err(|e| usage!("cannot read {}: {e}", path.display()))?;
        for r in anonymize::ranges_in(&text) {
            if !out.contains(&r) {
                out.push(r);
            }
        }
    }
    for r in ctx.settings.test_ranges.values() {
        if !out.contains(r) {
            out.push(*r);
        }
    }
    Ok(out)
}

/// The source's rows in a scratch SQLite: its export (remote) or a snapshot (local); the
/// file is deleted once loaded.
fn copy(ctx: &Ctx, target: &Target) -> anyhow::Result<Connection> {
    let mut db = d1::open(&ctx.project, target)?;
    let scratch = backups::scratch_file(&ctx.project, "copy")?;
    ui::say(format!(
        "reading {} ({})",
        target.describe(),
        if target.env.is_remote() {
            "its export"
        } else {
            "a snapshot"
        }
    ));
    let made = db.backup(&scratch);
    let loaded = made.and_then(|made| {
        let conn = Connection::open_in_memory()
            .map_err(|e| failed!("cannot open a scratch database: {e}"))?;
        match made {
            BackupMade::Export { .. } => {
                crate::d1::load::load_sql_file(
                    &conn,
                    &scratch,
                    &format!("the export of {}", target.describe()),
                )?;
            }
            BackupMade::Snapshot => {
                let mut conn = conn;
                conn.restore(
                    rusqlite::MAIN_DB,
                    &scratch,
                    None::<fn(rusqlite::backup::Progress)>,
                )
                .map_err(|e| failed!("cannot read the snapshot {}: {e}", scratch.display()))?;
                return Ok(conn);
            }
        }
        Ok(conn)
    });
    let _ = std::fs::remove_file(&scratch);
    loaded
}

/// Writes through a temporary file and a rename: a file is there whole or not at all.
fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| failed!("cannot create {}: {e}", dir.display()))?;
    }
    let tmp = path.with_extension("sql.partial");
    std::fs::write(&tmp, text).map_err(|e| failed!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        failed!("cannot write {}: {e}", path.display())
    })
}
