//! The command line: the one grammar (`flags`), and running a parsed command to an exit
//! status.

pub(crate) mod flags;

use std::process::ExitCode;

use crate::commands::setup;
use crate::exit::{code_of, status_of, usage, Exit};
use crate::ui;
use crate::workspace::config::Config;
use crate::workspace::project::Project;
use crate::workspace::settings::Settings;
use crate::workspace::Ctx;
use crate::wrangler::proc;
use flags::{Command, Flags};

pub(crate) fn run_os(args: Vec<std::ffi::OsString>) -> ExitCode {
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
            Command::DbStatus(cmd) => crate::commands::all::status_of_every_env(&ctx, cmd.check),
            _ => Err(usage!(
                "--env all goes with db-status only (one view of every environment); other commands take one \
                 environment at a time"
            )),
        };
    }
    if ctx.global.database.as_deref() == Some("all") {
        return match command {
            Command::DbStatus(_) | Command::DbMigrate(_) | Command::DbBackup(_) => {
                crate::commands::all::every_database(&ctx, command)
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
