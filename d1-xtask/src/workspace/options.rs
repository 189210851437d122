//! The options commands share, as groups of flags: each command takes the groups that mean
//! something for it, so that its `--help` lists only those, and a flag that would do
//! nothing is refused. [`Global`] is what the rest of the xtask reads.

use std::path::PathBuf;

use clap::Args;

/// The heading the shared groups appear under in `--help`.
const COMMON: &str = "Common options";

/// Which wrangler config: `--config`.
#[derive(Args, Clone, Debug, Default, PartialEq)]
pub(crate) struct ConfigPath {
    /// wrangler config (default: wrangler.jsonc, then wrangler.json, found upwards from here)
    #[arg(long, value_name = "path", help_heading = COMMON, value_parser = non_empty_path)]
    pub(crate) config: Option<PathBuf>,
}

/// Which database: `--env`, `--database` and the config they are read from.
#[derive(Args, Clone, Debug, Default, PartialEq)]
pub(crate) struct Where {
    /// `local` (default: wrangler's local D1) or an environment under `env` in wrangler.jsonc; never --preview
    #[arg(long, value_name = "name", help_heading = COMMON, value_parser = non_empty)]
    pub(crate) env: Option<String>,
    /// which D1 database of that environment (default: its only one)
    #[arg(long, value_name = "binding|name", help_heading = COMMON, value_parser = non_empty)]
    pub(crate) database: Option<String>,
    #[command(flatten)]
    pub(crate) config: ConfigPath,
}

/// `--json`.
#[derive(Args, Clone, Debug, Default, PartialEq)]
pub(crate) struct Output {
    /// print one JSON document on stdout; human lines go to stderr
    #[arg(long, help_heading = COMMON)]
    pub(crate) json: bool,
}

/// `--dry-run`.
#[derive(Args, Clone, Debug, Default, PartialEq)]
pub(crate) struct Preview {
    /// print the plan (wrangler commands and files) and change nothing
    #[arg(long, help_heading = COMMON)]
    pub(crate) dry_run: bool,
}

/// What a change through the guarded path is told: confirmations and the lock.
#[derive(Args, Clone, Debug, Default, PartialEq)]
pub(crate) struct Guarded {
    /// answer yes to confirmations
    #[arg(long, help_heading = COMMON)]
    pub(crate) yes: bool,
    /// how long to wait for another run's lock (default 60, or xtask.jsonc)
    #[arg(long, value_name = "secs", help_heading = COMMON, value_parser = lock_seconds)]
    pub(crate) lock_timeout: Option<u64>,
    /// break a stale lock (older than the stated age, or of a dead process) and go on
    #[arg(long, help_heading = COMMON)]
    pub(crate) force_unlock: bool,
}

/// Everything a command that changes a database through the guarded path shares: the
/// restore point it may skip, which database, the output, the dry run, confirmations and
/// the lock.
#[derive(Args, Clone, Debug, Default, PartialEq)]
pub(crate) struct Changing {
    /// take no restore point first (refused on protected environments)
    #[arg(long)]
    pub(crate) no_backup: bool,
    #[command(flatten)]
    pub(crate) at: Where,
    #[command(flatten)]
    pub(crate) out: Output,
    #[command(flatten)]
    pub(crate) preview: Preview,
    #[command(flatten)]
    pub(crate) guarded: Guarded,
}

impl Changing {
    /// The shared options these give.
    pub(crate) fn global(&self) -> Global {
        Global::of(
            Some(&self.at),
            None,
            Some(&self.out),
            Some(&self.preview),
            Some(&self.guarded),
        )
    }
}

/// The shared options of one run, whichever groups its command takes.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Global {
    pub(crate) env: Option<String>,
    pub(crate) database: Option<String>,
    pub(crate) config: Option<PathBuf>,
    pub(crate) yes: bool,
    pub(crate) json: bool,
    pub(crate) dry_run: bool,
    pub(crate) lock_timeout: Option<u64>,
    pub(crate) force_unlock: bool,
}

impl Global {
    /// The options of a command that takes `at`, `out`, `preview` and `guarded` (each
    /// when it has that group).
    pub(crate) fn of(
        at: Option<&Where>,
        config: Option<&ConfigPath>,
        out: Option<&Output>,
        preview: Option<&Preview>,
        guarded: Option<&Guarded>,
    ) -> Global {
        let guarded = guarded.cloned().unwrap_or_default();
        Global {
            env: at.and_then(|w| w.env.clone()),
            database: at.and_then(|w| w.database.clone()),
            config: at
                .map(|w| &w.config)
                .or(config)
                .and_then(|c| c.config.clone()),
            yes: guarded.yes,
            json: out.is_some_and(|o| o.json),
            dry_run: preview.is_some_and(|p| p.dry_run),
            lock_timeout: guarded.lock_timeout,
            force_unlock: guarded.force_unlock,
        }
    }
}

fn non_empty(value: &str) -> Result<String, String> {
    if value.is_empty() {
        Err("give a non-empty value".into())
    } else {
        Ok(value.to_string())
    }
}

fn non_empty_path(value: &str) -> Result<PathBuf, String> {
    non_empty(value).map(PathBuf::from)
}

fn lock_seconds(value: &str) -> Result<u64, String> {
    value
        .parse::<u64>()
        .ok()
        .filter(|s| *s <= 86_400)
        .ok_or_else(|| "give whole seconds, 0 to 86400".to_string())
}

/// A whole number from `min` to `max`, for a flag's value parser.
pub(crate) fn number_in(value: &str, min: usize, max: usize, what: &str) -> Result<usize, String> {
    value
        .parse::<usize>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| format!("give a number of {what} from {min} to {max}"))
}
