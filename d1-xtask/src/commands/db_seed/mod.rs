//! `db-seed [--cleanup] [--file <path>] [-- <command> ...]`: test data in, never into a
//! protected environment, each file in one request; with a command, always cleaned up.

pub(crate) mod anonymize;
pub(crate) mod files;
pub(crate) mod from_env;

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::commands::db_seed::files::{files_with_prefix, load_with_prefix, SeedFile};
use crate::d1::{Database, SchemaObject, State};
use crate::exit::{failed, refused, usage, ChildStatus};
use crate::guarded::backups;
use crate::guarded::change::{self, Act, Change, Guard};
use crate::guarded::confirm::Confirm;
use crate::migrations::{sql, MigrationSet};
use crate::ui::{self, Report};
use crate::workspace::options::{number_in, Changing};
use crate::workspace::target::Target;
use crate::{d1, migrations::plan, workspace::Ctx};

/// `db-seed` and its flags.
#[derive(clap::Args, Clone, Debug, PartialEq)]
pub struct DbSeed {
    /// run the test data's cleanup*.sql instead
    #[arg(long)]
    pub(crate) cleanup: bool,
    /// load only this file
    #[arg(long, value_name = "path")]
    pub(crate) file: Option<PathBuf>,
    /// write anonymized seed and cleanup files from that environment's data (rules in xtask.jsonc)
    #[arg(long, value_name = "env")]
    pub(crate) from: Option<String>,
    /// with --from: the seed file (default <test data>/seed-from-<env>.sql; the cleanup goes beside it)
    #[arg(long, value_name = "path")]
    pub(crate) output: Option<PathBuf>,
    /// with --from: at most this many rows a table, plus the parents they reference
    #[arg(long, value_name = "rows", value_parser = |v: &str| number_in(v, 1, 1_000_000, "rows"))]
    pub(crate) limit: Option<usize>,
    /// with --from: print a rules template for the source's schema, write nothing
    #[arg(long)]
    pub(crate) report: bool,
    /// run this with the test data in, then clean up (its exit status is passed on)
    #[arg(last = true, value_name = "command")]
    pub(crate) command: Vec<String>,
    #[command(flatten)]
    pub(crate) change: Changing,
}

/// What one `db-seed` run does: its modes exclude each other.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode<'a> {
    /// Load the seed files (or `--file`), and with `-- <command>` run it and clean up.
    Load { file: Option<&'a Path> },
    /// `--cleanup`: run the cleanup files.
    Cleanup,
    /// `--from <env>`: write anonymized test data from that environment.
    From(&'a str),
}

impl DbSeed {
    /// The mode the flags ask for, refusing flags that do not go with it.
    fn mode(&self) -> anyhow::Result<Mode<'_>> {
        if let Some(env) = self.from.as_deref() {
            if self.cleanup
                || self.file.is_some()
                || !self.command.is_empty()
                || self.change.no_backup
            {
                return Err(usage!(
                    "--from writes seed files and loads nothing: it does not go with --cleanup, --file, --no-backup \
                     or `-- <command>`; load its output afterwards with `cargo xtask db-seed --file <seed file>`"
                ));
            }
            return Ok(Mode::From(env));
        }
        if self.output.is_some() || self.limit.is_some() || self.report {
            return Err(usage!(
                "--output, --limit and --report go with --from <env> (test data made from an environment)"
            ));
        }
        if self.cleanup {
            if self.file.is_some() || !self.command.is_empty() {
                return Err(usage!(
                    "--cleanup runs test-data/cleanup*.sql alone: it does not go with --file or `-- <command>` \
                     (which cleans up by itself)"
                ));
            }
            return Ok(Mode::Cleanup);
        }
        Ok(Mode::Load {
            file: self.file.as_deref(),
        })
    }

    pub(crate) fn run(self, ctx: &Ctx) -> anyhow::Result<Report> {
        let (file, cleanup) = match self.mode()? {
            Mode::From(env) => return from_env::run(ctx, &self, env),
            Mode::Cleanup => (None, true),
            Mode::Load { file } => (file.map(Path::to_path_buf), false),
        };
        let target = ctx.target()?;
        if target.protected {
            return Err(refused!(
                "db-seed refuses {}: test data never goes into a protected environment; nothing was changed",
                target.env
            ));
        }
        let dir = ctx.project.test_data.clone();
        let paths = match (&file, cleanup) {
            (Some(f), _) => vec![ctx.cwd.join(f)],
            (None, true) => files_with_prefix(&dir, "cleanup")?,
            (None, false) => files_with_prefix(&dir, "seed-")?,
        };
        if paths.is_empty() {
            return Err(usage!(
                "no {} files in {}",
                if cleanup {
                    "test-data/cleanup*.sql"
                } else {
                    "test-data/seed-*.sql"
                },
                dir.display()
            ));
        }
        let files = paths
            .iter()
            .map(|p| SeedFile::load(p))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let cleanup_files = if self.command.is_empty() {
            Vec::new()
        } else {
            load_with_prefix(&dir, "cleanup")?
        };

        let reserved = crate::commands::db_seed::from_env::reserved_ranges(ctx, true)?;
        let mut db = d1::open(&ctx.project, &target)?;
        let verb = if cleanup { "clean up with" } else { "load" };
        if ctx.global.dry_run {
            let state = db.state()?;
            self.check(&target, &state, &files, &cleanup_files)?;
            for f in &files {
                ui::say(format!(
                    "  {} ({} statements, sent as {} in one request)",
                    f.path.display(),
                    f.statements,
                    f.sent_statements
                ));
            }
            ui::say("dry run: nothing is changed");
            return Ok(crate::commands::dry_run_report(&target));
        }
        let mut change = Seed {
            command: &self,
            target: &target,
            files: &files,
            cleanup_files: &cleanup_files,
            verb,
            counts: Vec::new(),
            reserved: &reserved,
        };
        let guard = Guard {
            command: if cleanup {
                "db-seed --cleanup"
            } else {
                "db-seed"
            },
            confirm: Confirm::Yes,
            restore_point: !self.change.no_backup,
            restoring: None,
        };
        let loaded = change::run(ctx, &target, db.as_mut(), guard, &mut change);
        let counts = std::mem::take(&mut change.counts);
        if self.command.is_empty() {
            let done = loaded?;
            return Ok(report(
                &target,
                db.as_ref(),
                &files,
                &counts,
                done.captured.as_ref(),
            ));
        }

        // seed, run, always clean up, exit with the command's status.
        let (status, seeded) = match &loaded {
            Ok(done) => {
                let seeded = report(
                    &target,
                    db.as_ref(),
                    &files,
                    &counts,
                    done.captured.as_ref(),
                );
                (
                    Some(run_command(ctx, &target, db.as_ref(), &self.command)),
                    seeded,
                )
            }
            Err(e) => {
                ui::say(format!("error: {e:#}"));
                (None, Report::default())
            }
        };
        let cleaned = if cleanup_files.is_empty() {
            ui::say("warning: no test-data/cleanup*.sql: the test data stays in the database");
            Ok(())
        } else {
            ui::say("cleaning up");
            let mut cleanup = Cleanup {
                files: &cleanup_files,
                reserved: &reserved,
            };
            let guard = Guard {
                command: "db-seed cleanup",
                confirm: Confirm::Yes,
                restore_point: false,
                restoring: None,
            };
            change::run(ctx, &target, db.as_mut(), guard, &mut cleanup).map(|_| ())
        };
        let shown = self.command.join(" ");
        match (status, cleaned) {
            (Some(CommandOutcome::Exited(0)), Ok(())) => Ok(seeded),
            (Some(CommandOutcome::Exited(code)), Ok(())) => Err(anyhow::Error::new(ChildStatus {
                code: u8::try_from(code).unwrap_or(1).max(1),
                message: format!("`{shown}` exited with {code}; the test data was cleaned up"),
            })),
            (Some(CommandOutcome::NotStarted(why)), Ok(())) => Err(anyhow::Error::new(ChildStatus {
                code: 127,
                message: format!("{why}; the test data was cleaned up"),
            })),
            (Some(CommandOutcome::Interrupted), Ok(())) => Err(failed!(
                "interrupted while `{shown}` ran: it was stopped, and the test data was cleaned up"
            )),
            (None, Ok(())) => Err(failed!("seeding failed, the command did not run; the test data was cleaned up")),
            (_, Err(e)) => Err(failed!("cleaning up failed: {e:#}; test rows may remain: run `cargo xtask db-seed --cleanup`")),
        }
    }
}

/// `db-seed` (and `--cleanup`), as the guarded-change path drives it.
struct Seed<'a> {
    command: &'a DbSeed,
    target: &'a Target,
    files: &'a [SeedFile],
    cleanup_files: &'a [SeedFile],
    verb: &'static str,
    counts: Vec<(String, i64)>,
    /// The id ranges reserved for test data: a cleanup leaves no row in them.
    reserved: &'a [(i64, i64)],
}

impl Change for Seed<'_> {
    fn plan(&mut self, state: &State) -> anyhow::Result<Option<String>> {
        self.command
            .check(self.target, state, self.files, self.cleanup_files)?;
        Ok(Some(files_plan(self.verb, self.files)))
    }

    fn act(&mut self, act: &mut Act<'_>) -> anyhow::Result<()> {
        let verify = self.command.cleanup.then_some(self.reserved);
        load(act, self.files, verify)?;
        self.counts = counts(act.db, self.files, &act.before.schema)?;
        Ok(())
    }
}

/// `load 2 files`, `clean up with 1 file`: a seed run's plan in words.
fn files_plan(verb: &str, files: &[SeedFile]) -> String {
    let n = files.len();
    format!("{verb} {n} file{}", if n == 1 { "" } else { "s" })
}

/// The cleanup after `db-seed -- <command>`: no restore point, the same lock.
struct Cleanup<'a> {
    files: &'a [SeedFile],
    reserved: &'a [(i64, i64)],
}

impl Change for Cleanup<'_> {
    fn plan(&mut self, _state: &State) -> anyhow::Result<Option<String>> {
        Ok(Some(files_plan("clean up with", self.files)))
    }

    fn act(&mut self, act: &mut Act<'_>) -> anyhow::Result<()> {
        load(act, self.files, Some(self.reserved))
    }
}

impl DbSeed {
    /// What must hold before anything is sent: no migration pending (for seeding), and
    /// every statement valid against the live schema.
    fn check(
        &self,
        target: &Target,
        state: &State,
        files: &[SeedFile],
        cleanup: &[SeedFile],
    ) -> anyhow::Result<()> {
        if !self.cleanup {
            refuse_pending(target, state)?;
        }
        for f in files.iter().chain(cleanup) {
            preflight(f, &state.schema)?;
        }
        Ok(())
    }
}

/// Seeding needs the schema the seeds were written for: every migration applied.
pub(crate) fn refuse_pending(target: &Target, state: &State) -> anyhow::Result<()> {
    let set = MigrationSet::for_target(target)?;
    let status = plan::status(&set, state);
    if !status.pending.is_empty() {
        let names: Vec<&str> = status.pending.iter().map(|m| m.name.as_str()).collect();
        return Err(refused!(
            "{} migration{} pending on {} ({}): run `cargo xtask db-migrate` first; nothing was loaded",
            names.len(),
            if names.len() == 1 { " is" } else { "s are" },
            target.env,
            names.join(", ")
        ));
    }
    Ok(())
}

/// Checks every statement of a file against a copy of the schema before anything is
/// sent: syntax errors, unknown tables or columns, and what D1's limits and authorizer
/// refuse (a compound SELECT of more than five terms, a temporary table, a PRAGMA D1 does
/// not allow) stop the run with nothing loaded. Long INSERTs are split before sending,
/// so the statement-length limit is not checked here.
pub(crate) fn preflight(file: &SeedFile, schema: &[SchemaObject]) -> anyhow::Result<()> {
    let Some(conn) = d1::schema_copy(schema) else {
        return Ok(());
    };
    if d1_rules::apply_limits(&conn).is_err() || d1_rules::allow_long_statements(&conn).is_err() {
        return Ok(());
    }
    let split = sql::split(&file.original);
    for stmt in &split.statements {
        let text = &file.original[stmt.start..stmt.end];
        let first = stmt.leading_words(&file.original, 1);
        let result = d1_rules::authorized(&conn, || match first.first().map(String::as_str) {
            Some("CREATE" | "DROP" | "ALTER") => conn.execute_batch(text).map(|_| ()),
            _ => conn.prepare(text).map(|_| ()),
        });
        if let Err(e) = result {
            let e = e.to_string();
            let why = match d1_rules::broken_rule(&e) {
                Some(d1_rules::Broken::Authorizer) => " (D1 refuses it)",
                Some(_) => " (over one of D1's limits)",
                None => "",
            };
            return Err(usage!(
                "{}:{}: {e}{why}: fix the statement; nothing was loaded",
                file.path.display(),
                stmt.line
            ));
        }
    }
    Ok(())
}

/// Sends every file, in order, with the lock's release, as one request: all of them or
/// none. A cleanup (`verify`: the reserved id ranges) counts, in the same request, the
/// rows left whose id or reference lies in those ranges, and fails naming the tables.
fn load(
    act: &mut Act<'_>,
    files: &[SeedFile],
    verify: Option<&[(i64, i64)]>,
) -> anyhow::Result<()> {
    let names: Vec<String> = files.iter().map(SeedFile::short_name).collect();
    let statements: usize = files.iter().map(|f| f.sent_statements).sum();
    ui::say(format!(
        "{}: {statements} statement{} in one request",
        names.join(", "),
        if statements == 1 { "" } else { "s" }
    ));
    let skip = crate::d1::own_tables(&act.target.db.migrations_table);
    let check = verify.and_then(|ranges| {
        crate::commands::db_seed::anonymize::leftover_sql(&act.before.schema, &skip, ranges)
    });
    let select = check.as_ref().map(|(sql, _)| sql.as_str());
    match act.commit_reading(&crate::commands::db_seed::files::joined_sql(files), select)? {
        Ok((_, rows)) => {
            let Some((_, tables)) = &check else {
                if verify.is_some() {
                    ui::say(
                        "note: the cleanup is not verified: no reserved id range is known (no `BETWEEN a AND b` \
                         in test-data/cleanup*.sql, no test_ranges in xtask.jsonc)",
                    );
                }
                return Ok(());
            };
            let row = rows.first();
            let left: Vec<String> = tables
                .iter()
                .enumerate()
                .filter_map(|(i, t)| {
                    let n = row.and_then(|r| r[format!("n{i}")].as_i64()).unwrap_or(0);
                    (n > 0).then(|| format!("{t} ({n} row{})", if n == 1 { "" } else { "s" }))
                })
                .collect();
            let ranges: Vec<String> = verify
                .unwrap_or_default()
                .iter()
                .map(|(a, b)| format!("{a}-{b}"))
                .collect();
            if !left.is_empty() {
                return Err(failed!(
                    "the cleanup ran, but rows are left in the reserved test ranges ({}): {}; add them to \
                     test-data/cleanup*.sql and run `cargo xtask db-seed --cleanup`",
                    ranges.join(", "),
                    left.join(", ")
                ));
            }
            ui::say(format!(
                "cleanup verified: no row of {} table{} left in the reserved ranges ({})",
                tables.len(),
                if tables.len() == 1 { "" } else { "s" },
                ranges.join(", ")
            ));
            Ok(())
        }
        Err(e) => Err(failed!(
            "loading {} failed: {e}\nthe file{} went as one request, so none of {} is in the database",
            names.join(", "),
            if files.len() == 1 { "" } else { "s" },
            if files.len() == 1 { "it" } else { "them" }
        )),
    }
}

/// Row counts of the tables the files wrote to, in one query.
fn counts(
    db: &mut dyn Database,
    files: &[SeedFile],
    schema: &[SchemaObject],
) -> anyhow::Result<Vec<(String, i64)>> {
    let mut tables: Vec<&String> = Vec::new();
    for t in files.iter().flat_map(|f| &f.tables) {
        let known = schema
            .iter()
            .any(|o| o.kind == "table" && o.name.eq_ignore_ascii_case(t));
        if known && !tables.contains(&t) {
            tables.push(t);
        }
    }
    let tables: Vec<&str> = tables.iter().map(|t| t.as_str()).collect();
    crate::d1::row_counts(db, &tables)
}

/// Says what was loaded, and returns the `--json` document of the load.
fn report(
    target: &Target,
    db: &dyn Database,
    files: &[SeedFile],
    counts: &[(String, i64)],
    captured: Option<&backups::Captured>,
) -> Report {
    let summary: Vec<String> = counts.iter().map(|(t, n)| format!("{t} {n}")).collect();
    ui::say(format!(
        "loaded {} file{}; rows now: {}",
        files.len(),
        if files.len() == 1 { "" } else { "s" },
        if summary.is_empty() {
            "-".to_string()
        } else {
            summary.join(", ")
        }
    ));
    Report::doc(json!({
        "env": target.env.name(),
        "database": target.database_json(),
        "files": files.iter().map(|f| json!({
            "file": f.path.display().to_string(),
            "statements": f.statements,
            "sent_statements": f.sent_statements,
        })).collect::<Vec<_>>(),
        "row_counts": counts.iter().map(|(t, n)| json!({"table": t, "rows": n})).collect::<Vec<_>>(),
        "restore_point": captured.map(backups::Captured::json),
        "wrangler_calls": db.wrangler_calls(),
    }))
}

/// The environment a user's command runs with (`db-seed -- <command>`, `--verify`): which
/// environment and database the xtask just changed.
pub(crate) fn xtask_env(
    ctx: &Ctx,
    target: &Target,
    db: &dyn Database,
) -> Vec<(&'static str, std::ffi::OsString)> {
    let mut env = vec![
        ("XTASK_ENV", target.env.name().into()),
        ("XTASK_D1_BINDING", target.db.binding.clone().into()),
        ("XTASK_D1_DATABASE", target.db.label().into()),
        (
            "XTASK_D1_DATABASE_ID",
            target.db.id.clone().unwrap_or_default().into(),
        ),
        ("XTASK_CONFIG", ctx.project.config_path.clone().into()),
    ];
    if let Some(file) = db.local_file() {
        env.push(("XTASK_D1_LOCAL_FILE", file.into()));
    }
    // The flags that point wrangler at the same environment and database.
    let flags = if target.env.is_remote() {
        format!("--env {} --remote", target.env.name())
    } else {
        "--local".to_string()
    };
    env.push(("XTASK_WRANGLER_FLAGS", flags.into()));
    // The project's wrangler, and the Node it runs on, first on PATH: a smoke script that
    // calls `wrangler` gets the pinned one, on a Node new enough for it.
    if let Some(path) = db.child_path() {
        env.push(("PATH", path));
    }
    env
}

/// How the user's command ended.
enum CommandOutcome {
    Exited(i32),
    /// It could not be started (a typo, no such program): nothing ran.
    NotStarted(String),
    Interrupted,
}

/// Runs the user's command, in a process group of its own, with `xtask_env`.
fn run_command(
    ctx: &Ctx,
    target: &Target,
    db: &dyn Database,
    command: &[String],
) -> CommandOutcome {
    ui::say(format!("running: {}", command.join(" ")));
    let mut cmd = std::process::Command::new(&command[0]);
    cmd.args(&command[1..]).envs(xtask_env(ctx, target, db));
    if ctx.global.json {
        cmd.stdout(std::io::stderr());
    }
    match crate::wrangler::proc::run_inherited(&mut cmd) {
        Ok(crate::wrangler::proc::Ended::Exited(status)) => {
            CommandOutcome::Exited(status.code().unwrap_or(1))
        }
        Ok(_) => CommandOutcome::Interrupted,
        Err(e) => {
            CommandOutcome::NotStarted(format!("could not start `{}`: {e}", command.join(" ")))
        }
    }
}
