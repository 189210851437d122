//! What a database holds for the xtask, as plain values: the tracking rows, the lock row,
//! the schema objects; and what a transport reports back (an apply, a restore point, a
//! backup). No I/O here: plans and reports read these without touching a database.

use std::path::PathBuf;

use crate::migrations::Migration;

/// One row of wrangler's tracking table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AppliedRow {
    pub(crate) id: i64,
    pub(crate) name: String,
    pub(crate) applied_at: String,
}

/// A foreign key: `child` references `parent`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ForeignKey {
    pub(crate) child: String,
    pub(crate) parent: String,
    pub(crate) on_delete: String,
}

/// One object of `sqlite_master`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SchemaObject {
    pub(crate) kind: String,
    pub(crate) name: String,
    pub(crate) table: String,
    pub(crate) sql: String,
}

/// The row of the xtask's lock table: who changes this database right now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LockRow {
    /// Random per run: a holder releases only its own row.
    pub(crate) token: String,
    pub(crate) holder: String,
    pub(crate) host: String,
    pub(crate) pid: i64,
    pub(crate) command: String,
    /// Unix seconds, by the database's clock (`unixepoch()` in the insert).
    pub(crate) acquired_at: i64,
    /// Seconds since then, by the database's clock at the read: staleness never compares
    /// clocks of different machines.
    pub(crate) age_secs: i64,
}

/// What the database says is applied.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct State {
    pub(crate) applied: Vec<AppliedRow>,
    /// The schema; it also tells which migration of a failed batch broke it, what a reset
    /// drops and what a seed may write to.
    pub(crate) schema: Vec<SchemaObject>,
    /// SHA-256 recorded for each applied migration (the xtask's side table).
    pub(crate) checksums: std::collections::BTreeMap<String, String>,
    /// The lock row, if someone holds the lock.
    pub(crate) lock: Option<LockRow>,
}

impl State {
    pub(crate) fn is_applied(&self, name: &str) -> bool {
        self.applied.iter().any(|r| r.name == name)
    }
}

/// How a run of migrations reached the database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ApplyMode {
    /// Every file in one request: all of them or none (the default).
    Atomic,
    /// One request per file, as `wrangler d1 migrations apply` does: a failure keeps the
    /// files before it.
    PerFile,
}

impl ApplyMode {
    /// The migrations of each request: all in one, or one file each.
    pub(crate) fn groups<'a>(self, migrations: &[&'a Migration]) -> Vec<Vec<&'a Migration>> {
        match self {
            ApplyMode::Atomic => vec![migrations.to_vec()],
            ApplyMode::PerFile => migrations.iter().map(|m| vec![*m]).collect(),
        }
    }
}

/// What an apply reported.
#[derive(Debug, Default)]
pub(crate) struct ApplyReport {
    /// wrangler's error for the request that failed, if one did.
    pub(crate) error: Option<String>,
    /// The migration that failed, where it could be told.
    pub(crate) failed: Option<String>,
    /// The files of the failed request all ran when sent again in a request that could
    /// not commit: the failure was not in a file (a damaged reply, a fault of D1).
    pub(crate) no_file_failed: bool,
    /// The tracking table as read back in the same request, when the apply could do that.
    pub(crate) after: Option<State>,
}

/// A point the database can be returned to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum RestorePoint {
    /// A Time Travel bookmark of a remote database.
    Bookmark(String),
    /// A copy of the local database file.
    Snapshot(PathBuf),
}

/// What a backup produced in its scratch file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum BackupMade {
    /// A SQLite copy of the local file.
    Snapshot,
    /// An SQL export, taken at this bookmark.
    Export { bookmark: String },
}

/// Where a restore takes the database back to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Restore {
    Bookmark(String),
    /// A local snapshot file: copied back page for page.
    Snapshot(PathBuf),
    /// An SQL export: the database is emptied and the file imported, in one request.
    Sql(PathBuf),
}

/// What one request returned: `Ok(Some(items))`, a result item per statement, each
/// confirmed by D1; `Ok(None)`, done, but the transport returns no rows (the import API,
/// `wrangler --local --file`); `Err(text)`, D1's or wrangler's refusal, nothing of it
/// applied.
pub(crate) type Reply = Result<Option<Vec<serde_json::Value>>, String>;
