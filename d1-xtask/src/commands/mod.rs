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
