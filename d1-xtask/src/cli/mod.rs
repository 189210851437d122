//! The command line: the one grammar (`grammar`), and running a parsed command to an
//! exit status.

mod all;
pub(crate) mod grammar;

use std::process::ExitCode;

use crate::commands::setup;
use crate::exit::{code_of, report_of, status_of, usage, Exit};
use crate::ui::{self, Report};
use crate::workspace::config::Config;
use crate::workspace::project::Project;
use crate::workspace::settings::Settings;
use crate::workspace::Ctx;
use crate::wrangler::proc;
use grammar::{Command, Parsed};

pub(crate) fn run_os(args: Vec<std::ffi::OsString>) -> ExitCode {
    if args.first().is_some_and(|a| a == proc::GUARD_ARG) {
        return proc::guardian_main();
    }
    // `--json` as typed, so that even an argument error answers with a document; words
    // after `--` are the user's command (`db-seed -- <command>`), not ours.
    let json = args
        .iter()
        .take_while(|a| *a != "--")
        .any(|a| a == "--json");
    while_running(json, || match parse(args)? {
        Parsed::Print(text) => {
            let mut report = Report::doc(serde_json::json!({ "text": text }));
            report.line(text);
            Ok(report)
        }
        Parsed::Run(command) => execute(*command),
    })
}

/// Runs a command a host parsed itself (its own clap enum flattening [`Command`]).
pub(crate) fn run_command(command: Command) -> ExitCode {
    let json = command.global().json;
    while_running(json, || execute(command))
}

/// Runs `f` with the xtask's signal handling in place (put back after), and turns its
/// outcome into the report printed and the exit status.
fn while_running(json: bool, f: impl FnOnce() -> anyhow::Result<Report>) -> ExitCode {
    let _signals = proc::install_signal_handlers();
    ui::forget_known();
    let result = f();
    match result {
        Ok(report) => {
            report.render(json);
            ExitCode::SUCCESS
        }
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
            if let Some(report) = report_of(&err) {
                report.render(json);
            }
            ui::say(format!("{label}: {err:#}"));
            let code = code_of(&err);
            if json && report_of(&err).is_none() {
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

/// The command line as the grammar reads it.
fn parse(args: Vec<std::ffi::OsString>) -> anyhow::Result<Parsed> {
    let args = args
        .into_iter()
        .map(|a| {
            a.into_string()
                .map_err(|a| usage!("argument {a:?} is not UTF-8"))
        })
        .collect::<anyhow::Result<Vec<String>>>()?;
    grammar::parse(args)
}

/// Reads the workspace once and runs the command to its report.
fn execute(command: Command) -> anyhow::Result<Report> {
    let global = command.global();
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
            Command::DbStatus(cmd) => all::status_of_every_env(&ctx, cmd.check),
            _ => Err(usage!(
                "--env all goes with db-status only (one view of every environment); other commands take one \
                 environment at a time"
            )),
        };
    }
    if ctx.global.database.as_deref() == Some("all") {
        return match command {
            Command::DbStatus(_) | Command::DbMigrate(_) | Command::DbBackup(_) => {
                all::every_database(&ctx, command)
            }
            _ => Err(usage!(
                "--database all goes with db-status, db-migrate and db-backup; name one database for the others"
            )),
        };
    }
    match command {
        Command::Setup(_) => setup::run(&ctx),
        Command::DbNew(cmd) => cmd.run(&ctx),
        Command::DbStatus(cmd) => cmd.run(&ctx),
        Command::DbMigrate(cmd) => cmd.run(&ctx),
        Command::DbBackup(cmd) => cmd.run(&ctx),
        Command::DbRestore(cmd) => cmd.run(&ctx),
        Command::DbReset(cmd) => cmd.run(&ctx),
        Command::DbSeed(cmd) => cmd.run(&ctx),
        Command::Deploy(cmd) => cmd.run(&ctx),
        Command::Rollback(cmd) => cmd.run(&ctx),
    }
}
