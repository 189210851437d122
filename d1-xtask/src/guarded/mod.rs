//! The one guarded-change path every command that changes a database takes (`change`):
//! confirmations (`confirm`), the lock (`lock`), restore points and the backup index
//! (`backups`).

pub(crate) mod backups;
pub(crate) mod change;
pub(crate) mod confirm;
pub(crate) mod deploys;
pub(crate) mod lock;
