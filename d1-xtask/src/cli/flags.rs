//! The whole command grammar: every command, every flag and its `--help` text.
//!
//! A table-driven parser rather than clap: the xtask is rebuilt on every fresh CI runner
//! and clap's derive costs more to compile than the rest of the xtask together.

use std::path::PathBuf;

use crate::exit::usage;
use crate::workspace::Global;

/// One `--flag` of a command. `value` names its argument in `--help`; `None` is a switch.
pub(crate) struct Opt {
    pub(crate) long: &'static str,
    pub(crate) value: Option<&'static str>,
    pub(crate) help: &'static str,
}

/// One subcommand. `positional` names its one free argument; `trailing` takes `-- <command> ...`.
pub(crate) struct Spec {
    pub(crate) name: &'static str,
    pub(crate) summary: &'static str,
    pub(crate) positional: Option<(&'static str, &'static str)>,
    pub(crate) trailing: bool,
    pub(crate) opts: &'static [Opt],
    /// Where a command is not built yet, the section of docs/limits.md that says so.
    pub(crate) not_yet: Option<&'static str>,
}

const fn switch(long: &'static str, help: &'static str) -> Opt {
    Opt {
        long,
        value: None,
        help,
    }
}
const fn valued(long: &'static str, value: &'static str, help: &'static str) -> Opt {
    Opt {
        long,
        value: Some(value),
        help,
    }
}

/// Options every command takes (cli.md, "Options every command takes").
pub(crate) const GLOBAL: &[Opt] = &[
    valued("env", "name", "`local` (default: wrangler's local D1) or an environment under `env` in wrangler.jsonc; never --preview"),
    valued("database", "binding|name", "which D1 database of that environment (default: its only one)"),
    valued("config", "path", "wrangler config (default: wrangler.jsonc, then wrangler.json, found upwards from here)"),
    switch("yes", "answer yes to confirmations"),
    switch("json", "print one JSON document on stdout; human lines go to stderr"),
    switch("dry-run", "print the plan (wrangler commands and files) and change nothing"),
    valued(
        "lock-timeout",
        "secs",
        "how long to wait for another run's lock (default 60, or xtask.jsonc)",
    ),
    switch("force-unlock", "break a stale lock (older than the stated age, or of a dead process) and go on"),
];

pub(crate) const COMMANDS: &[Spec] = &[
    Spec {
        name: "db-new",
        summary:
            "create <migrations_dir>/<NNNN>_<name>.sql with the next number (never overwrites)",
        positional: Some((
            "name",
            "what the migration does, in one or more words: add orders, add_orders (spaces become _)",
        )),
        trailing: false,
        opts: &[],
        not_yet: None,
    },
    Spec {
        name: "db-status",
        summary: "applied migrations, pending ones and problems (drift, lint)",
        positional: None,
        trailing: false,
        opts: &[switch("check", "exit 3 when anything is pending or wrong")],
        not_yet: None,
    },
    Spec {
        name: "db-migrate",
        summary:
            "lint, check, apply pending migrations in one request, read the tracking table back",
        positional: None,
        trailing: false,
        opts: &[
            valued(
                "to",
                "version",
                "apply up to and including this migration (its number or file name)",
            ),
            switch(
                "per-file",
                "apply each file in its own request (wrangler's way) instead of all-or-nothing",
            ),
            switch(
                "no-backup",
                "take no restore point first (refused on protected environments)",
            ),
            valued(
                "verify",
                "command",
                "after applying, run this shell command; if it fails, restore the restore point and exit 1",
            ),
            switch(
                "repair",
                "after reviewing an edited applied file, re-record its checksum (and any never recorded)",
            ),
            switch(
                "rehearse",
                "apply the pending migrations to a scratch copy of the database and report; change nothing",
            ),
            valued(
                "baseline",
                "version",
                "record every migration up to this one as applied without running it (a schema made without wrangler)",
            ),
            switch(
                "allow-drift",
                "apply although the live schema differs from what the applied migrations make (schema-drift)",
            ),
        ],
        not_yet: None,
    },
    Spec {
        name: "db-reset",
        summary: "drop everything the migrations made and apply them again (one request), after a restore point",
        positional: None,
        trailing: false,
        opts: &[
            valued("to", "version", "apply again only up to and including this migration"),
            switch("seed", "load test-data/seed-*.sql afterwards"),
            valued(
                "confirm",
                "database_name",
                "on a protected environment without a terminal: the database name (--yes is not enough)",
            ),
            switch(
                "no-backup",
                "take no restore point first (refused on protected environments)",
            ),
        ],
        not_yet: None,
    },
    Spec {
        name: "db-seed",
        summary: "load test-data/seed-*.sql (never into a protected environment); `-- <command>` seeds, runs, cleans up",
        positional: None,
        trailing: true,
        opts: &[
            switch("cleanup", "run test-data/cleanup*.sql instead"),
            valued("file", "path", "load only this file"),
            switch(
                "no-backup",
                "take no restore point first",
            ),
            valued(
                "from",
                "env",
                "write anonymized seed and cleanup files from that environment's data (rules in xtask.jsonc)",
            ),
            valued(
                "output",
                "path",
                "with --from: the seed file (default test-data/seed-from-<env>.sql; the cleanup goes beside it)",
            ),
            valued(
                "limit",
                "rows",
                "with --from: at most this many rows a table, plus the parents they reference",
            ),
            switch(
                "report",
                "with --from: print a rules template for the source's schema, write nothing",
            ),
        ],
        not_yet: None,
    },
    Spec {
        name: "db-backup",
        summary: "back up (remote: bookmark + export; local: file snapshot) into backups/ and the index",
        positional: None,
        trailing: false,
        opts: &[
            valued(
                "output",
                "path",
                "write the backup here instead of backups/<env>/<database>-<UTC time>.<ext> (never overwrites)",
            ),
            switch("list", "list the backup index: every backup and restore point"),
            switch(
                "bookmark",
                "record the current Time Travel bookmark and time in the index, without an export (remote)",
            ),
            valued("tz", "zone", "the IANA time zone --list shows times in (default: TZ, then the system's)"),
        ],
        not_yet: None,
    },
    Spec {
        name: "db-restore",
        summary: "restore in place from a bookmark, timestamp or backup, after capturing the current state",
        positional: None,
        trailing: false,
        opts: &[
            valued("bookmark", "id", "a Time Travel bookmark (remote)"),
            valued(
                "timestamp",
                "time",
                "RFC 3339, Unix seconds, `5 minutes ago`, `yesterday at 3 PM`, `today 09:30` or `2026-11-21 15:00` \
                 (local zone); not in the future, within the retention window (remote)",
            ),
            valued("tz", "zone", "the IANA time zone for times without one (default: TZ, then the system's)"),
            valued(
                "from-env",
                "env",
                "copy that environment's data into the local database (an export, read only; local only)",
            ),
            valued("backup", "id|path", "an entry of the backup index, or a backup file"),
            switch("last", "the newest restore point or backup of this environment and database"),
            switch(
                "no-backup",
                "take no restore point first (refused on protected environments)",
            ),
        ],
        not_yet: None,
    },
    Spec {
        name: "bench",
        summary: "benchmark the xtask against raw wrangler on scratch workspaces and print a table",
        positional: None,
        trailing: false,
        opts: &[
            valued("runs", "n", "runs per measurement; the median is reported (default 3)"),
            valued("sizes", "list", "numbers of migrations, comma-separated (default 1,50,200)"),
            valued("megabytes", "list", "database sizes of the remote backup/restore sweep, comma-separated (default 1,10,100; 0 skips it)"),
            switch("skip-build", "do not measure the cold build of the xtask"),
        ],
        not_yet: None,
    },
    Spec {
        name: "setup",
        summary: "install wrangler and the Node it runs on (npm ci) and check them",
        positional: None,
        trailing: false,
        opts: &[],
        not_yet: None,
    },
];

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Command {
    /// `--help`, for the whole tool or one command.
    Help(Option<&'static str>),
    /// `--version`.
    Version,
    Setup,
    DbNew(DbNew),
    DbStatus(DbStatus),
    DbMigrate(DbMigrate),
    DbBackup(DbBackup),
    DbRestore(DbRestore),
    DbReset(DbReset),
    DbSeed(DbSeed),
    Bench(Bench),
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Bench {
    pub(crate) runs: Option<usize>,
    pub(crate) sizes: Option<String>,
    pub(crate) megabytes: Option<String>,
    pub(crate) skip_build: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct DbReset {
    pub(crate) to: Option<String>,
    pub(crate) seed: bool,
    pub(crate) confirm: Option<String>,
    pub(crate) no_backup: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct DbSeed {
    pub(crate) cleanup: bool,
    pub(crate) file: Option<PathBuf>,
    pub(crate) no_backup: bool,
    /// `-- <command> ...`: run with the test data in, then clean up.
    pub(crate) command: Vec<String>,
    /// `--from <env>`: write anonymized seed files from that environment instead.
    pub(crate) from: Option<String>,
    pub(crate) output: Option<PathBuf>,
    pub(crate) limit: Option<usize>,
    pub(crate) report: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct DbBackup {
    pub(crate) output: Option<PathBuf>,
    pub(crate) list: bool,
    pub(crate) bookmark: bool,
    pub(crate) tz: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct DbRestore {
    pub(crate) bookmark: Option<String>,
    pub(crate) timestamp: Option<String>,
    pub(crate) backup: Option<String>,
    pub(crate) last: bool,
    pub(crate) no_backup: bool,
    pub(crate) tz: Option<String>,
    pub(crate) from_env: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct DbNew {
    pub(crate) name: String,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct DbStatus {
    pub(crate) check: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct DbMigrate {
    pub(crate) to: Option<String>,
    pub(crate) per_file: bool,
    pub(crate) no_backup: bool,
    pub(crate) verify: Option<String>,
    pub(crate) repair: bool,
    pub(crate) rehearse: bool,
    pub(crate) allow_drift: bool,
    pub(crate) baseline: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Flags {
    pub(crate) global: Global,
    pub(crate) command: Command,
}

/// What the generic pass collects before the command's own typing.
#[derive(Default)]
struct Raw {
    values: Vec<(&'static str, Option<String>)>,
    positional: Option<String>,
    trailing: Vec<String>,
}

impl Raw {
    fn switch(&self, long: &str) -> bool {
        self.values.iter().any(|(l, _)| *l == long)
    }
    fn value(&self, long: &str) -> Option<String> {
        self.values
            .iter()
            .find(|(l, _)| *l == long)
            .and_then(|(_, v)| v.clone())
    }
}

/// Whether `name` is a command of the grammar.
pub(crate) fn is_command(name: &str) -> bool {
    spec(name).is_some()
}

pub(crate) fn spec(name: &str) -> Option<&'static Spec> {
    COMMANDS.iter().find(|c| c.name == name)
}

impl Flags {
    pub(crate) fn parse(args: impl IntoIterator<Item = String>) -> anyhow::Result<Flags> {
        let mut args = args.into_iter();
        let mut command: Option<&'static Spec> = None;
        let mut raw = Raw::default();
        let mut help = false;
        while let Some(arg) = args.next() {
            if arg == "--" {
                match command {
                    Some(spec) if spec.trailing => {
                        raw.trailing = args.by_ref().collect();
                        if raw.trailing.is_empty() {
                            return Err(usage!(
                                "`{}` needs a command after `--`, e.g. `-- cargo test -p app`",
                                spec.name
                            ));
                        }
                        break;
                    }
                    _ => return Err(usage!("unexpected `--`{}", for_command(command))),
                }
            }
            if arg == "-h" || arg == "--help" {
                help = true;
                continue;
            }
            // `help <command>`, and `--version` before any command.
            if command.is_none() && !help && arg == "help" {
                help = true;
                continue;
            }
            if command.is_none() && (arg == "--version" || arg == "-V") {
                return Ok(Flags {
                    global: Global::default(),
                    command: Command::Version,
                });
            }
            if let Some(flag) = arg.strip_prefix("--") {
                let (long, inline) = match flag.split_once('=') {
                    Some((l, v)) => (l, Some(v.to_string())),
                    None => (flag, None),
                };
                let opt = command
                    .into_iter()
                    .flat_map(|c| c.opts.iter())
                    .chain(GLOBAL.iter())
                    .find(|o| o.long == long)
                    .ok_or_else(|| {
                        usage!(
                            "unknown flag `--{long}`{}: see `cargo xtask {}--help`",
                            for_command(command),
                            command.map_or(String::new(), |c| format!("{} ", c.name))
                        )
                    })?;
                if raw.switch(opt.long) {
                    return Err(usage!("`--{long}` is given twice"));
                }
                let value =
                    match (opt.value, inline) {
                        (None, None) => None,
                        (None, Some(_)) => return Err(usage!("`--{long}` takes no value")),
                        (Some(_), Some(v)) => Some(v),
                        (Some(name), None) => Some(args.next().ok_or_else(|| {
                            usage!("`--{long}` needs a value: `--{long} <{name}>`")
                        })?),
                    };
                if let Some(v) = &value {
                    if v.is_empty() {
                        return Err(usage!("`--{long}` needs a non-empty value"));
                    }
                }
                raw.values.push((opt.long, value));
                continue;
            }
            if arg.starts_with('-') && arg.len() > 1 {
                return Err(usage!(
                    "unknown flag `{arg}`{}: see `cargo xtask --help`",
                    for_command(command)
                ));
            }
            match command {
                None => {
                    let spec = spec(&arg).ok_or_else(|| {
                        usage!(
                            "unknown command `{arg}`: the commands are {}",
                            command_list()
                        )
                    })?;
                    command = Some(spec);
                    // Command-specific flags seen before the command name are caught below.
                }
                Some(spec) => match (spec.positional, &raw.positional) {
                    (Some(_), None) => raw.positional = Some(arg),
                    // `db-new add tags`: the words of a name, as people type them.
                    (Some(_), Some(words)) if spec.name == "db-new" => {
                        raw.positional = Some(format!("{words} {arg}"))
                    }
                    _ => {
                        return Err(usage!(
                            "unexpected argument `{arg}` for `{}`: see `cargo xtask {} --help`",
                            spec.name,
                            spec.name
                        ))
                    }
                },
            }
        }

        let global = Global {
            env: raw.value("env"),
            database: raw.value("database"),
            config: raw.value("config").map(PathBuf::from),
            yes: raw.switch("yes"),
            json: raw.switch("json"),
            dry_run: raw.switch("dry-run"),
            lock_timeout: match raw.value("lock-timeout") {
                None => None,
                Some(v) => Some(v.parse::<u64>().ok().filter(|s| *s <= 86_400).ok_or_else(
                    || usage!("`--lock-timeout {v}`: give whole seconds, 0 to 86400"),
                )?),
            },
            force_unlock: raw.switch("force-unlock"),
        };
        let Some(spec) = command else {
            return Ok(Flags {
                global,
                command: Command::Help(None),
            });
        };
        if help {
            return Ok(Flags {
                global,
                command: Command::Help(Some(spec.name)),
            });
        }
        if let Some(section) = spec.not_yet {
            return Err(usage!(
                "`{}` is not available in this version yet: see \"{section}\" in docs/limits.md",
                spec.name
            ));
        }
        let command = match spec.name {
            "setup" => Command::Setup,
            "db-new" => Command::DbNew(DbNew {
                name: raw.positional.ok_or_else(|| {
                    usage!("`db-new` needs a name: `cargo xtask db-new add_orders`")
                })?,
            }),
            "db-status" => Command::DbStatus(DbStatus {
                check: raw.switch("check"),
            }),
            "db-migrate" => Command::DbMigrate(DbMigrate {
                to: raw.value("to"),
                per_file: raw.switch("per-file"),
                no_backup: raw.switch("no-backup"),
                verify: raw.value("verify"),
                repair: raw.switch("repair"),
                rehearse: raw.switch("rehearse"),
                allow_drift: raw.switch("allow-drift"),
                baseline: raw.value("baseline"),
            }),
            "db-backup" => Command::DbBackup(DbBackup {
                output: raw.value("output").map(PathBuf::from),
                list: raw.switch("list"),
                bookmark: raw.switch("bookmark"),
                tz: raw.value("tz"),
            }),
            "db-restore" => Command::DbRestore(DbRestore {
                bookmark: raw.value("bookmark"),
                timestamp: raw.value("timestamp"),
                backup: raw.value("backup"),
                last: raw.switch("last"),
                no_backup: raw.switch("no-backup"),
                tz: raw.value("tz"),
                from_env: raw.value("from-env"),
            }),
            "db-reset" => Command::DbReset(DbReset {
                to: raw.value("to"),
                seed: raw.switch("seed"),
                confirm: raw.value("confirm"),
                no_backup: raw.switch("no-backup"),
            }),
            "db-seed" => Command::DbSeed(DbSeed {
                cleanup: raw.switch("cleanup"),
                file: raw.value("file").map(PathBuf::from),
                no_backup: raw.switch("no-backup"),
                from: raw.value("from"),
                output: raw.value("output").map(PathBuf::from),
                limit: match raw.value("limit") {
                    None => None,
                    Some(v) => Some(
                        v.parse()
                            .ok()
                            .filter(|n| (1..=1_000_000).contains(n))
                            .ok_or_else(|| {
                                usage!("`--limit {v}`: give a number of rows from 1 to 1000000")
                            })?,
                    ),
                },
                report: raw.switch("report"),
                command: raw.trailing,
            }),
            "bench" => Command::Bench(Bench {
                runs: match raw.value("runs") {
                    None => None,
                    Some(v) => Some(
                        v.parse()
                            .ok()
                            .filter(|n| (1..=50).contains(n))
                            .ok_or_else(|| usage!("`--runs {v}`: give a number from 1 to 50"))?,
                    ),
                },
                sizes: raw.value("sizes"),
                megabytes: raw.value("megabytes"),
                skip_build: raw.switch("skip-build"),
            }),
            other => unreachable!("command `{other}` is in COMMANDS but has no typed form"),
        };
        Ok(Flags { global, command })
    }
}

fn for_command(command: Option<&Spec>) -> String {
    command.map_or(String::new(), |c| format!(" for `{}`", c.name))
}

fn command_list() -> String {
    COMMANDS
        .iter()
        .map(|c| c.name)
        .collect::<Vec<_>>()
        .join(", ")
}

fn opt_lines(out: &mut String, opts: &[Opt]) {
    for opt in opts {
        let head = match opt.value {
            Some(v) => format!("--{} <{v}>", opt.long),
            None => format!("--{}", opt.long),
        };
        out.push_str(&format!("  {head:<26} {}\n", opt.help));
    }
}

/// `--help` text, generated from the tables above so that it cannot drift from the parser.
pub(crate) fn help(command: Option<&str>) -> String {
    let mut out = String::new();
    match command.and_then(spec) {
        None => {
            out.push_str(
                "cargo xtask: safe, repeatable Cloudflare D1 migrations from one wrangler.jsonc\n\n\
                 usage: cargo xtask <command> [options]   (or cargo <command> [options])\n\ncommands:\n",
            );
            for c in COMMANDS {
                let note = if c.not_yet.is_some() {
                    " (not available yet)"
                } else {
                    ""
                };
                out.push_str(&format!("  {:<12} {}{note}\n", c.name, c.summary));
            }
            out.push_str("\noptions every command takes:\n");
            opt_lines(&mut out, GLOBAL);
            out.push_str(
                "\nexit status: 0 done, 1 a step failed, 2 bad usage or config, \
                 3 pending or problems (db-status --check), 4 refused by a guard\n\
                 `cargo xtask <command> --help` describes one command.\n",
            );
        }
        Some(c) => {
            let positional = c
                .positional
                .map_or(String::new(), |(n, _)| format!(" <{n}>"));
            let trailing = if c.trailing {
                " [-- <command> ...]"
            } else {
                ""
            };
            out.push_str(&format!(
                "cargo xtask {}{positional} [options]{trailing}\n\n{}\n",
                c.name, c.summary
            ));
            if c.not_yet.is_some() {
                out.push_str("\nnot available in this version yet (see docs/limits.md)\n");
            }
            if let Some((n, h)) = c.positional {
                out.push_str(&format!("\narguments:\n  {:<26} {h}\n", format!("<{n}>")));
            }
            if !c.opts.is_empty() {
                out.push_str("\noptions:\n");
                opt_lines(&mut out, c.opts);
            }
            out.push_str("\noptions every command takes:\n");
            opt_lines(&mut out, GLOBAL);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::{status_of, Exit};

    fn parse(s: &str) -> anyhow::Result<Flags> {
        Flags::parse(s.split_whitespace().map(String::from))
    }

    fn usage_error(s: &str) -> String {
        let err = parse(s).unwrap_err();
        assert_eq!(status_of(&err), Exit::Usage, "{s}: {err}");
        err.to_string()
    }

    #[test]
    fn globals_go_before_or_after_the_command() {
        let a = parse("--env staging db-migrate --to 3 --yes").unwrap();
        let b = parse("db-migrate --to=3 --yes --env=staging").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.global.env.as_deref(), Some("staging"));
        assert!(a.global.yes);
        assert_eq!(
            a.command,
            Command::DbMigrate(DbMigrate {
                to: Some("3".into()),
                per_file: false,
                no_backup: false,
                verify: None,
                repair: false,
                rehearse: false,
                allow_drift: false,
                baseline: None,
            })
        );
    }

    #[test]
    fn trailing_command() {
        let f = parse("db-seed --no-backup -- cargo test -p app --release").unwrap();
        assert_eq!(
            f.command,
            Command::DbSeed(DbSeed {
                cleanup: false,
                file: None,
                no_backup: true,
                from: None,
                output: None,
                limit: None,
                report: false,
                command: vec![
                    "cargo".into(),
                    "test".into(),
                    "-p".into(),
                    "app".into(),
                    "--release".into()
                ],
            })
        );
    }

    #[test]
    fn help_forms() {
        assert_eq!(parse("").unwrap().command, Command::Help(None));
        assert_eq!(parse("--version").unwrap().command, Command::Version);
        assert_eq!(parse("help").unwrap().command, Command::Help(None));
        assert_eq!(
            parse("help db-migrate").unwrap().command,
            Command::Help(Some("db-migrate"))
        );
        assert_eq!(parse("--help").unwrap().command, Command::Help(None));
        assert_eq!(
            parse("db-status -h").unwrap().command,
            Command::Help(Some("db-status"))
        );
        assert!(help(Some("db-migrate")).contains("--to <version>"));
        assert!(help(None).contains("db-new"));
    }

    #[test]
    fn bad_usage_is_exit_2_with_a_way_out() {
        assert!(usage_error("db-migrate --frobnicate").contains("unknown flag `--frobnicate`"));
        assert!(usage_error("db-status --check --check").contains("given twice"));
        assert!(usage_error("db-migrate --to").contains("needs a value"));
        assert!(usage_error("db-status --check=yes").contains("takes no value"));
        assert!(usage_error("db-new").contains("needs a name"));
        assert!(usage_error("db-reset extra").contains("unexpected argument `extra`"));
        // A name in several words, as the README types it: `db-new add tags`.
        assert_eq!(
            parse("db-new add tags").unwrap().command,
            Command::DbNew(DbNew {
                name: "add tags".into()
            })
        );
        assert!(usage_error("db-migrat").contains("unknown command"));
        assert!(usage_error("db-status --to 3").contains("unknown flag `--to`"));
        assert!(usage_error("db-status -x").contains("unknown flag `-x`"));
        assert!(usage_error("db-status -- true").contains("unexpected `--`"));
        assert!(usage_error("db-seed --").contains("needs a command after `--`"));
        assert!(usage_error("db-restore --bookmark").contains("needs a value"));
        assert!(usage_error("db-migrate --env=").contains("non-empty"));
    }
}
