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

#[cfg(feature = "fleet")]
mod api;
mod cli;
mod commands;
mod d1;
mod exit;
mod guarded;
mod migrations;
pub mod testing;
#[cfg(test)]
mod testutil;
mod time;
mod ui;
mod workspace;
mod wrangler;

use std::process::ExitCode;

pub use cli::grammar::Command;

/// Runs the whole CLI from the process arguments (the first is the program): what a
/// host's `fn main` returns. Exit statuses: see the README.
pub fn main() -> ExitCode {
    cli::run_os(std::env::args_os().skip(1).collect())
}

/// Runs one command; `args` start at the subcommand (`["db-migrate", "--env",
/// "staging"]`). A `Vec<String>` does.
pub fn run<I, S>(args: I) -> ExitCode
where
    I: IntoIterator<Item = S>,
    S: Into<std::ffi::OsString>,
{
    cli::run_os(args.into_iter().map(Into::into).collect())
}

/// Runs a command a host parsed with its own clap grammar, which flattens [`Command`]
/// into its own subcommands:
///
/// ```
/// use clap::{Parser, Subcommand};
///
/// #[derive(Parser)]
/// struct HostCli {
///     #[command(subcommand)]
///     command: HostCommand,
/// }
///
/// #[derive(Subcommand)]
/// enum HostCommand {
///     /// the host's own command
///     Greet,
///     #[command(flatten)]
///     D1(d1_xtask::Command),
/// }
///
/// let cli = HostCli::try_parse_from(["xtask", "db-status", "--json"]).unwrap();
/// assert!(matches!(cli.command, HostCommand::D1(_)));
/// // In the host's main: `HostCommand::D1(command) => d1_xtask::run_command(command)`,
/// // after `if let Some(status) = d1_xtask::internal() { return status; }`.
/// ```
pub fn run_command(command: Command) -> ExitCode {
    cli::run_command(command)
}

/// The library's own child process: when the xtask was started as the guardian that
/// stops wrangler's processes if the xtask dies, runs it and returns its status. A host
/// that parses the arguments itself (clap) calls this first; [`main`], [`run`] and
/// [`is_command`] already account for it.
pub fn internal() -> Option<ExitCode> {
    let first = std::env::args_os().nth(1)?;
    (first == wrangler::proc::GUARD_ARG).then(wrangler::proc::guardian_main)
}

/// Whether `name` is one of this library's commands (`db-migrate`, ...), for a host that
/// dispatches its own commands and hands these to [`run`]. It includes the hidden one
/// the library starts itself with (its guardian of child processes), which a host must
/// hand on too.
pub fn is_command(name: &str) -> bool {
    name == wrangler::proc::GUARD_ARG || cli::grammar::is_command(name)
}
