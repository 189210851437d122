//! d1-xtask: safe, repeatable Cloudflare D1 migrations, test data and backups for a cargo
//! xtask, on top of the real `wrangler d1` CLI.
//!
//! A host whose xtask only does D1 has a one-line `main`:
//!
//! ```no_run
//! fn main() -> std::process::ExitCode {
//!     d1_xtask::main()
//! }
//! ```
//!
//! A host with commands of its own sends D1's to [`run`] from its own dispatch, asking
//! [`is_command`] which they are. `cargo xtask --help` lists the commands.

#![warn(missing_docs)]

mod all;
mod anonymize;
mod backups;
mod baseline;
mod bench;
mod bench_sweep;
mod change;
mod config;
mod d1;
mod db_backup;
mod db_migrate;
mod db_new;
mod db_reset;
mod db_restore;
mod db_seed;
mod db_status;
mod exit;
mod flags;
mod guard;
mod lock;
mod migrations;
mod plan;
mod proc;
mod project;
mod rehearse;
mod seed_from;
mod seeds;
mod settings;
mod setup;
mod target;
#[cfg(test)]
mod testutil;
mod time;
mod ui;
mod wrangler;

use std::path::PathBuf;
use std::process::ExitCode;

use config::Config;
use exit::{code_of, status_of, usage, Exit};
use flags::{Command, Flags, Global};
use project::Project;
use settings::Settings;
use target::{Env, Target};

/// What every command starts from: its flags, the workspace and the parsed config.
#[derive(Clone)]
pub(crate) struct Ctx {
    pub(crate) global: Global,
    /// Where the user ran the command: `--output` and `--backup` paths are relative to it.
    pub(crate) cwd: PathBuf,
    pub(crate) project: Project,
    pub(crate) config: Config,
    pub(crate) settings: Settings,
}

impl Ctx {
    /// `--env` and `--database` resolved against the config.
    pub(crate) fn target(&self) -> anyhow::Result<Target> {
        let env = Env::parse(self.global.env.as_deref());
        let target = self.config.resolve(
            &env,
            self.global.database.as_deref(),
            &self.settings.protected,
        )?;
        ui::known("env", serde_json::json!(target.env.name()));
        ui::known("database", db_status::database_json(&target));
        Ok(target)
    }
}

/// Runs the whole CLI from the process arguments (the first is the program): what a
/// host's `fn main` returns. Exit statuses: see the README.
pub fn main() -> ExitCode {
    run_os(std::env::args_os().skip(1).collect())
}

/// Runs one command; `args` start at the subcommand (`["db-migrate", "--env",
/// "staging"]`). A `Vec<String>` does.
pub fn run<I, S>(args: I) -> ExitCode
where
    I: IntoIterator<Item = S>,
    S: Into<std::ffi::OsString>,
{
    run_os(args.into_iter().map(Into::into).collect())
}

/// Whether `name` is one of this library's commands (`db-migrate`, ...), for a host that
/// dispatches its own commands and hands these to [`run`]. It includes the hidden one
/// the library starts itself with (its guardian of child processes), which a host must
/// hand on too.
pub fn is_command(name: &str) -> bool {
    name == proc::GUARD_ARG || flags::is_command(name)
}

fn run_os(args: Vec<std::ffi::OsString>) -> ExitCode {
    if args.first().is_some_and(|a| a == proc::GUARD_ARG) {
        return proc::guardian_main();
    }
    let _signals = proc::install_signal_handlers();
    // `--json` as typed, so that even an argument error answers with a document; words
    // after `--` are the user's command (`db-seed -- <command>`), not ours.
    let json = args
        .iter()
        .take_while(|a| *a != "--")
        .any(|a| a == "--json");
    match dispatch(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if proc::interrupted() => {
            ui::say(format!("interrupted: {err:#}"));
            if json {
                ui::json_error(130, "interrupted", &format!("{err:#}"));
            }
            ExitCode::from(130)
        }
        Err(err) => {
            let exit = status_of(&err);
            let label = if exit == Exit::Pending {
                "check"
            } else {
                "error"
            };
            ui::say(format!("{label}: {err:#}"));
            let code = code_of(&err);
            if json {
                // A status passed on from the user's command is that command's.
                let kind = if code != exit as u8 {
                    "command"
                } else {
                    exit.kind()
                };
                ui::json_error(code, kind, &ui::redact(&format!("{err:#}")));
            }
            ExitCode::from(code)
        }
    }
}

fn dispatch(args: Vec<std::ffi::OsString>) -> anyhow::Result<()> {
    let args = args
        .into_iter()
        .map(|a| {
            a.into_string()
                .map_err(|a| usage!("argument {a:?} is not UTF-8"))
        })
        .collect::<anyhow::Result<Vec<String>>>()?;
    let Flags { global, command } = Flags::parse(args)?;
    if let Command::Help(which) = command {
        ui::print(flags::help(which));
        return Ok(());
    }
    if command == Command::Version {
        ui::print(format!("xtask {} (d1-xtask)", env!("CARGO_PKG_VERSION")));
        return Ok(());
    }
    let cwd =
        std::env::current_dir().map_err(|e| usage!("cannot read the current directory: {e}"))?;
    let project = Project::locate(&cwd, global.config.as_deref())?;
    let config = Config::load(&project)?;
    let settings = Settings::load(&project.root)?;
    let project = project.with_settings(&settings);
    let ctx = Ctx {
        global,
        cwd,
        project,
        config,
        settings,
    };
    if ctx.global.env.as_deref() == Some("all") {
        return match command {
            Command::DbStatus(cmd) => crate::all::status_of_every_env(&ctx, cmd.check),
            _ => Err(usage!(
                "--env all goes with db-status only (one view of every environment); other commands take one \
                 environment at a time"
            )),
        };
    }
    if ctx.global.database.as_deref() == Some("all") {
        return match command {
            Command::DbStatus(_) | Command::DbMigrate(_) | Command::DbBackup(_) => {
                crate::all::every_database(&ctx, command)
            }
            _ => Err(usage!(
                "--database all goes with db-status, db-migrate and db-backup; name one database for the others"
            )),
        };
    }
    match command {
        Command::Help(_) | Command::Version => Ok(()),
        Command::Setup => setup::run(&ctx),
        Command::DbNew(cmd) => cmd.run(&ctx),
        Command::DbStatus(cmd) => cmd.run(&ctx),
        Command::DbMigrate(cmd) => cmd.run(&ctx),
        Command::DbBackup(cmd) => cmd.run(&ctx),
        Command::DbRestore(cmd) => cmd.run(&ctx),
        Command::DbReset(cmd) => cmd.run(&ctx),
        Command::DbSeed(cmd) => cmd.run(&ctx),
        Command::Bench(cmd) => cmd.run(&ctx),
    }
}
