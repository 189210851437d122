//! One module per command; a command's helpers are its children (`db_migrate::rehearse`,
//! `db_seed::anonymize`). Commands decide what to do; the guarded path and the `d1` seam
//! do it.

pub(crate) mod db_backup;
pub(crate) mod db_migrate;
pub(crate) mod db_new;
pub(crate) mod db_reset;
pub(crate) mod db_restore;
pub(crate) mod db_seed;
pub(crate) mod db_status;
pub(crate) mod deploy;
pub(crate) mod fleet;
pub(crate) mod rollback;
pub(crate) mod setup;

/// The report of a `--dry-run`: which database, and that nothing was changed (the plan
/// itself went to stderr as it was worked out), so that `--json` still prints one document.
pub(crate) fn dry_run_report(target: &crate::workspace::target::Target) -> crate::ui::Report {
    crate::ui::Report::doc(serde_json::json!({
        "env": target.env.name(),
        "database": target.database_json(),
        "dry_run": true,
        "changed": false,
    }))
}

/// How a command the user gave (`--verify`, `--smoke`) ended.
pub(crate) enum UserCommand {
    Passed,
    /// It ran and failed: its exit status, in words.
    Failed(String),
}

/// Runs the user's shell command `cmd` (`sh -c`, or `cmd /C` on Windows) in its own process
/// group with `env` added, its output shown (on stderr under `--json`, where stdout carries
/// the one document). `Err`: it could not run, or Ctrl-C stopped it (`what` names it).
pub(crate) fn run_user_command(
    ctx: &crate::workspace::Ctx,
    what: &str,
    cmd: &str,
    env: Vec<(&'static str, std::ffi::OsString)>,
) -> anyhow::Result<UserCommand> {
    let mut command = if cfg!(windows) {
        let mut c = std::process::Command::new("cmd");
        c.args(["/C", cmd]);
        c
    } else {
        let mut c = std::process::Command::new("sh");
        c.args(["-c", cmd]);
        c
    };
    command.envs(env);
    if ctx.global.json {
        command.stdout(std::io::stderr());
    }
    match crate::wrangler::proc::run_inherited(&mut command) {
        Ok(crate::wrangler::proc::Ended::Exited(status)) if status.success() => {
            Ok(UserCommand::Passed)
        }
        Ok(crate::wrangler::proc::Ended::Exited(status)) => {
            Ok(UserCommand::Failed(status.to_string()))
        }
        Ok(_) => Err(crate::exit::failed!(
            "interrupted while the {what} `{cmd}` ran"
        )),
        Err(e) => Err(crate::exit::failed!(
            "could not run the {what} `{cmd}`: {e}"
        )),
    }
}
