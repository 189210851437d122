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
