//! Exit statuses of cli.md and the error type that carries one through `anyhow`.

use std::fmt;

/// Why a command stopped, as the exit status of the contract (cli.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Exit {
    /// A step failed while running; the message says what state the database is in.
    Failed = 1,
    /// Bad usage, configuration or input, found before anything was changed.
    Usage = 2,
    /// `db-status --check` found pending migrations or problems.
    Pending = 3,
    /// Refused by a guard (protected environment, drift, lint error, lock) before any change.
    Refused = 4,
}

impl Exit {
    /// Its name in a `--json` failure document (`error.kind`).
    pub(crate) fn kind(self) -> &'static str {
        match self {
            Exit::Failed => "failed",
            Exit::Usage => "usage",
            Exit::Pending => "pending",
            Exit::Refused => "refused",
        }
    }
}

/// An error that knows its exit status. Anything else that reaches `main` exits 1.
#[derive(Debug)]
pub(crate) struct Stop {
    pub(crate) exit: Exit,
    pub(crate) message: String,
    /// What the command has to show although it stopped (`db-status --check` finding
    /// pending work shows the status; `--database all` the databases it did).
    pub(crate) report: Option<crate::ui::Report>,
}

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Stop {}

/// The exit status of a command the xtask ran for the user (`db-seed -- <command>`),
/// passed on as the xtask's own.
#[derive(Debug)]
pub(crate) struct ChildStatus {
    pub(crate) code: u8,
    pub(crate) message: String,
}

impl fmt::Display for ChildStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ChildStatus {}

/// The process exit code for an error: a child's own status, else the `Exit` of `status_of`.
pub(crate) fn code_of(err: &anyhow::Error) -> u8 {
    err.chain()
        .find_map(|e| e.downcast_ref::<ChildStatus>())
        .map_or(status_of(err) as u8, |c| c.code)
}

/// The exit status an error chain asks for: the outermost `Stop` in it, else `Failed`.
pub(crate) fn status_of(err: &anyhow::Error) -> Exit {
    err.chain()
        .find_map(|e| e.downcast_ref::<Stop>())
        .map_or(Exit::Failed, |stop| stop.exit)
}

pub(crate) fn stop(exit: Exit, message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Stop {
        exit,
        message: message.into(),
        report: None,
    })
}

/// A stop that still shows `report`.
pub(crate) fn stop_with(
    exit: Exit,
    message: impl Into<String>,
    report: crate::ui::Report,
) -> anyhow::Error {
    anyhow::Error::new(Stop {
        exit,
        message: message.into(),
        report: Some(report),
    })
}

/// The report an error carries, if its command had something to show.
pub(crate) fn report_of(err: &anyhow::Error) -> Option<&crate::ui::Report> {
    err.chain()
        .find_map(|e| e.downcast_ref::<Stop>())
        .and_then(|s| s.report.as_ref())
}

/// `return Err(usage!("..."))`-style helpers for the three statuses that are found before any change.
macro_rules! usage {
    ($($arg:tt)*) => { $crate::exit::stop($crate::exit::Exit::Usage, format!($($arg)*)) };
}
macro_rules! refused {
    ($($arg:tt)*) => { $crate::exit::stop($crate::exit::Exit::Refused, format!($($arg)*)) };
}
macro_rules! failed {
    ($($arg:tt)*) => { $crate::exit::stop($crate::exit::Exit::Failed, format!($($arg)*)) };
}
pub(crate) use {failed, refused, usage};

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn status_survives_context() {
        let err = Err::<(), _>(usage!("bad flag"))
            .context("while parsing")
            .unwrap_err();
        assert_eq!(status_of(&err), Exit::Usage);
        assert_eq!(status_of(&anyhow::anyhow!("io")), Exit::Failed);
    }
}
