//! The one grammar: the commands as a typed enum whose doc comments are `--help`. Each
//! command's own flags are a struct beside the command (`commands::db_migrate::DbMigrate`),
//! and the groups of shared options it takes come from `workspace::options`, so that its
//! `--help` shows exactly what applies to it.
//!
//! clap's derive: a cold build of the library takes about 2 s longer with it (measured in
//! docs/performance.md, "Cold build"), and a host already on clap can embed these
//! commands in its own.

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::commands::db_backup::DbBackup;
use crate::commands::db_migrate::DbMigrate;
use crate::commands::db_new::DbNew;
use crate::commands::db_reset::DbReset;
use crate::commands::db_restore::DbRestore;
use crate::commands::db_seed::DbSeed;
use crate::commands::db_status::DbStatus;
use crate::commands::deploy::Deploy;
use crate::commands::rollback::Rollback;
use crate::commands::setup::Setup;
use crate::exit::usage;
use crate::workspace::Global;

const ENV_ALL: &str =
    "`local` (default: wrangler's local D1), an environment under `env` in wrangler.jsonc, \
                       or `all`: one table of every environment and database";
const DATABASE_ALL: &str =
    "which D1 database of that environment (default: its only one), or `all`: each \
                            database of the environment in turn";

const AFTER_HELP: &str = "exit status: 0 done, 1 a step failed, 2 bad usage or config, 3 pending or problems \
                          (db-status --check), 4 refused by a guard, 130 interrupted\n\
                          `cargo xtask <command> --help` (or `cargo xtask help <command>`) describes one command.";

/// cargo xtask: safe, repeatable Cloudflare D1 migrations from one wrangler.jsonc
#[derive(Parser, Debug)]
#[command(
    name = "xtask",
    bin_name = "cargo xtask",
    version = concat!(env!("CARGO_PKG_VERSION"), " (d1-xtask)"),
    disable_help_subcommand = true,
    subcommand_help_heading = "commands",
    after_help = AFTER_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

/// One of the library's commands with its typed flags, as clap parses it. A host whose
/// own xtask is on clap can flatten it into its own subcommand enum and hand the parsed
/// value to [`run_command`](crate::run_command).
#[derive(Subcommand, Debug, Clone, PartialEq)]
pub enum Command {
    /// create `<migrations_dir>/<NNNN>_<name>.sql` with the next number (never overwrites)
    DbNew(DbNew),
    /// applied migrations, pending ones and problems (drift, lint)
    #[command(
        mut_arg("env", |a| a.help(ENV_ALL)),
        mut_arg("database", |a| a.help(DATABASE_ALL))
    )]
    DbStatus(DbStatus),
    /// lint, check, apply pending migrations in one request, read the tracking table back
    #[command(mut_arg("database", |a| a.help(DATABASE_ALL)))]
    DbMigrate(DbMigrate),
    /// drop everything the migrations made and apply them again (one request), after a restore point
    DbReset(DbReset),
    /// load the test data's seed-*.sql (never into a protected environment); `-- <command>` seeds, runs, cleans up
    DbSeed(DbSeed),
    /// back up (remote: bookmark + export; local: file snapshot) into the backups folder and its index
    #[command(mut_arg("database", |a| a.help(DATABASE_ALL)))]
    DbBackup(DbBackup),
    /// restore in place from a bookmark, timestamp or backup, after capturing the current state
    DbRestore(DbRestore),
    /// migrate and deploy the Worker as one guarded change; roll both back if the deploy or --smoke fails
    Deploy(Deploy),
    /// undo a deploy: the Worker to the version before it, then the database to its restore point
    Rollback(Rollback),
    /// install wrangler and the Node it runs on (npm ci) and check them
    Setup(Setup),
}

impl Command {
    /// The shared options this command was given.
    pub(crate) fn global(&self) -> Global {
        match self {
            Command::DbNew(c) => {
                Global::of(Some(&c.at), None, Some(&c.out), Some(&c.preview), None)
            }
            Command::DbStatus(c) => Global::of(Some(&c.at), None, Some(&c.out), None, None),
            Command::DbMigrate(c) => c.change.global(),
            Command::DbReset(c) => c.change.global(),
            Command::DbSeed(c) => c.change.global(),
            Command::DbBackup(c) => {
                Global::of(Some(&c.at), None, Some(&c.out), Some(&c.preview), None)
            }
            Command::DbRestore(c) => c.change.global(),
            Command::Deploy(c) => c.change.global(),
            Command::Rollback(c) => c.change.global(),
            Command::Setup(c) => Global::of(None, Some(&c.config), None, None, None),
        }
    }
}

/// What the command line asks for.
#[derive(Debug, PartialEq)]
pub(crate) enum Parsed {
    /// Text to print and exit 0: `--help`, `help <command>`, `--version`, no command.
    Print(String),
    Run(Box<Command>),
}

/// Whether `name` is a command of the grammar.
pub(crate) fn is_command(name: &str) -> bool {
    Cli::command().find_subcommand(name).is_some()
}

/// Parses `args` (from the subcommand on). Bad usage is exit 2 in the xtask's words.
pub(crate) fn parse(args: Vec<String>) -> anyhow::Result<Parsed> {
    let args = normalize(args)?;
    let command = args.first().filter(|a| is_command(a)).cloned();
    let mut cli = Cli::command();
    let matches = cli.try_get_matches_from_mut(std::iter::once("xtask".to_string()).chain(args));
    let matches = match matches {
        Ok(m) => m,
        Err(e) => return explain(e, command.as_deref()),
    };
    let parsed = Cli::from_arg_matches(&matches).map_err(|e| usage!("{e}"))?;
    match parsed.command {
        Some(c) => Ok(Parsed::Run(Box::new(c))),
        None => Ok(Parsed::Print(cli.render_help().to_string())),
    }
}

/// `help <command>` as `<command> --help`; shared options typed before the command moved
/// after it (`--env staging db-migrate`, as people type it); `db-seed --` with nothing
/// after it refused.
fn normalize(mut args: Vec<String>) -> anyhow::Result<Vec<String>> {
    if args.first().is_some_and(|a| a == "help") {
        args.remove(0);
        args.push("--help".into());
        return Ok(args);
    }
    let leading_option = args.first().is_some_and(|a| {
        a.starts_with('-') && !matches!(a.as_str(), "-h" | "--help" | "-V" | "--version")
    });
    if leading_option {
        let end = args.iter().position(|a| a == "--").unwrap_or(args.len());
        if let Some(i) = args[..end].iter().position(|a| is_command(a)) {
            let name = args.remove(i);
            args.insert(0, name);
        }
    }
    if let Some(i) = args.iter().position(|a| a == "--") {
        if i + 1 == args.len() && args.first().is_some_and(|a| a == "db-seed") {
            return Err(usage!(
                "`db-seed` needs a command after `--`, e.g. `-- cargo test -p app`"
            ));
        }
    }
    Ok(args)
}

/// clap's verdict in the xtask's words: what was wrong, and where to look.
fn explain(err: clap::Error, command: Option<&str>) -> anyhow::Result<Parsed> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let context = |kind: ContextKind| match err.get(kind) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        Some(ContextValue::Strings(v)) => Some(v.join(", ")),
        _ => None,
    };
    let flag = |shown: String| {
        shown
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string()
    };
    let see = match command {
        Some(c) => format!("see `cargo xtask {c} --help`"),
        None => "see `cargo xtask --help`".to_string(),
    };
    let for_command = command.map_or(String::new(), |c| format!(" for `{c}`"));
    let suggestion = context(ContextKind::SuggestedArg)
        .or_else(|| context(ContextKind::SuggestedSubcommand))
        .map_or(String::new(), |s| format!(" (did you mean `{s}`?)"));
    let message = match err.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            return Ok(Parsed::Print(
                err.render().to_string().trim_end().to_string(),
            ))
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            return Ok(Parsed::Print(
                err.render().to_string().trim_end().to_string(),
            ))
        }
        ErrorKind::InvalidSubcommand => format!(
            "unknown command `{}`{suggestion}: the commands are {}",
            context(ContextKind::InvalidSubcommand).unwrap_or_default(),
            command_names().join(", ")
        ),
        ErrorKind::UnknownArgument => {
            let arg = context(ContextKind::InvalidArg).unwrap_or_default();
            if arg.starts_with('-') {
                format!("unknown flag `{arg}`{for_command}{suggestion}: {see}")
            } else {
                format!("unexpected argument `{arg}`{for_command}: {see}")
            }
        }
        ErrorKind::ArgumentConflict => {
            let arg = flag(context(ContextKind::InvalidArg).unwrap_or_default());
            let prior = context(ContextKind::PriorArg).map(flag);
            match prior {
                Some(p) if p == arg => format!("`{arg}` is given twice"),
                Some(p) => format!("`{arg}` does not go with `{p}`: {see}"),
                None => format!("`{arg}` does not go with the other flags given: {see}"),
            }
        }
        ErrorKind::InvalidValue | ErrorKind::ValueValidation => {
            let shown = context(ContextKind::InvalidArg).unwrap_or_default();
            let value = context(ContextKind::InvalidValue).unwrap_or_default();
            let why = std::error::Error::source(&err)
                .map(|s| s.to_string())
                .unwrap_or_default();
            if value.is_empty() && why.is_empty() {
                format!("`{}` needs a value: `{shown}`", flag(shown.clone()))
            } else if value.is_empty() {
                format!(
                    "`{}` needs a non-empty value: `{shown}`",
                    flag(shown.clone())
                )
            } else {
                format!("`{} {value}`: {why}", flag(shown.clone()))
            }
        }
        ErrorKind::MissingRequiredArgument if command == Some("db-new") => {
            "`db-new` needs a name: `cargo xtask db-new add_orders`".to_string()
        }
        ErrorKind::MissingRequiredArgument => format!(
            "`{}` needs {}: {see}",
            command.unwrap_or("xtask"),
            context(ContextKind::InvalidArg).unwrap_or_default()
        ),
        ErrorKind::TooManyValues | ErrorKind::WrongNumberOfValues => {
            let arg = flag(context(ContextKind::InvalidArg).unwrap_or_default());
            format!("`{arg}` is given twice")
        }
        _ => {
            let text = err.render().to_string();
            let first = text
                .lines()
                .next()
                .unwrap_or_default()
                .trim_start_matches("error: ")
                .to_string();
            format!("{first}: {see}")
        }
    };
    Err(usage!("{message}"))
}

fn command_names() -> Vec<String> {
    Cli::command()
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .map(|c| c.get_name().to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::{status_of, Exit};

    fn parse_str(s: &str) -> anyhow::Result<Parsed> {
        parse(s.split_whitespace().map(String::from).collect())
    }

    fn command(s: &str) -> Command {
        match parse_str(s).unwrap() {
            Parsed::Run(c) => *c,
            Parsed::Print(text) => panic!("{s}: printed {text}"),
        }
    }

    fn printed(s: &str) -> String {
        match parse_str(s).unwrap() {
            Parsed::Print(text) => text,
            Parsed::Run(c) => panic!("{s}: ran {c:?}"),
        }
    }

    fn usage_error(s: &str) -> String {
        let err = parse_str(s).unwrap_err();
        assert_eq!(status_of(&err), Exit::Usage, "{s}: {err}");
        err.to_string()
    }

    #[test]
    fn shared_options_go_before_or_after_the_command() {
        let a = command("--env staging db-migrate --to 3 --yes");
        let b = command("db-migrate --to=3 --yes --env=staging");
        assert_eq!(a, b);
        let global = a.global();
        assert_eq!(global.env.as_deref(), Some("staging"));
        assert!(global.yes);
        let Command::DbMigrate(m) = a else {
            panic!("not db-migrate")
        };
        assert_eq!(m.to.as_deref(), Some("3"));
    }

    #[test]
    fn trailing_command_and_words_of_a_name() {
        let Command::DbSeed(s) = command("db-seed --no-backup -- cargo test -p app --release")
        else {
            panic!("not db-seed")
        };
        assert!(s.change.no_backup);
        assert_eq!(s.command, ["cargo", "test", "-p", "app", "--release"]);
        let Command::DbNew(n) = command("db-new add tags") else {
            panic!("not db-new")
        };
        assert_eq!(n.name.join(" "), "add tags");
    }

    #[test]
    fn help_and_version() {
        assert!(printed("").contains("db-migrate"));
        assert!(printed("--help").contains("commands:"));
        assert!(printed("--version").contains("(d1-xtask)"));
        let migrate = printed("help db-migrate");
        assert_eq!(migrate, printed("db-migrate --help"));
        assert!(migrate.contains("--to <version>"), "{migrate}");
        assert!(migrate.contains("--lock-timeout"), "{migrate}");
        assert!(migrate.contains("or `all`"), "{migrate}");
    }

    #[test]
    fn each_help_shows_only_the_options_that_apply() {
        let status = printed("db-status --help");
        assert!(
            status.contains("--env") && status.contains("--json"),
            "{status}"
        );
        for absent in ["--yes", "--dry-run", "--lock-timeout", "--force-unlock"] {
            assert!(
                !status.contains(absent),
                "db-status --help lists {absent}:\n{status}"
            );
        }
        assert!(
            status.contains("one table of every environment"),
            "{status}"
        );
        let reset = printed("db-reset --help");
        assert!(
            reset.contains("--yes") && reset.contains("--force-unlock"),
            "{reset}"
        );
        assert!(!reset.contains("or `all`"), "{reset}");
        let setup = printed("setup --help");
        assert!(
            !setup.contains("--env") && setup.contains("--config"),
            "{setup}"
        );
    }

    #[test]
    fn bad_usage_is_exit_2_with_a_way_out() {
        assert!(usage_error("db-migrate --frobnicate").contains("unknown flag `--frobnicate`"));
        assert!(usage_error("db-status --yes").contains("unknown flag `--yes` for `db-status`"));
        assert!(usage_error("db-status --check --check").contains("given twice"));
        assert!(usage_error("db-migrate --to").contains("needs a value"));
        assert!(usage_error("db-status --check=yes").contains("--check"));
        assert!(usage_error("db-new").contains("needs a name"));
        assert!(usage_error("db-reset extra").contains("unexpected argument `extra`"));
        assert!(usage_error("db-migrat").contains("unknown command `db-migrat`"));
        assert!(usage_error("db-status --to 3").contains("unknown flag `--to`"));
        assert!(usage_error("db-status -x").contains("unknown flag `-x`"));
        assert!(usage_error("db-status -- true").contains("unexpected argument `true`"));
        assert!(usage_error("db-seed --").contains("needs a command after `--`"));
        assert!(usage_error("db-restore --bookmark").contains("needs a value"));
        assert!(usage_error("db-migrate --env=").contains("non-empty"));
        assert!(usage_error("db-migrate --lock-timeout 99999999").contains("whole seconds"));
        assert!(usage_error("db-seed --limit 0").contains("from 1 to 1000000"));
    }
}
