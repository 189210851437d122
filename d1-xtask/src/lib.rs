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

mod cli;
mod commands;
mod d1;
mod exit;
mod guarded;
mod migrations;
#[cfg(test)]
mod testutil;
mod time;
mod ui;
mod workspace;
mod wrangler;

use std::process::ExitCode;

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

/// Whether `name` is one of this library's commands (`db-migrate`, ...), for a host that
/// dispatches its own commands and hands these to [`run`]. It includes the hidden one
/// the library starts itself with (its guardian of child processes), which a host must
/// hand on too.
pub fn is_command(name: &str) -> bool {
    name == wrangler::proc::GUARD_ARG || cli::grammar::is_command(name)
}
