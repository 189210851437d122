//! What every transport shares, written once above the `Database` trait: reading the
//! state, taking and releasing the lock, applying migrations with progress and read-back,
//! restoring, and the raw command that undoes a change.

use super::{
    batch_sql, group_extras, is_lock_conflict, lock_from_json, lock_release_sql, lock_select_sql,
    lock_table, quote_ident, quote_string, replay, result_rows, rows_to_state, schema_copy,
    state_from_items, state_request_sql, ApplyMode, ApplyReport, Database, Extras, LockRow,
    Restore, RestorePoint, State,
};
use crate::exit::{failed, usage};
use crate::migrations::Migration;
use crate::ui;
use crate::workspace::target::Target;
use crate::wrangler::display_command;

fn table<D: Database + ?Sized>(db: &D) -> String {
    db.target().db.migrations_table.clone()
}

/// The state in one bookkeeping request (the tables are created if missing, as
/// `wrangler d1 migrations list` does).
pub(crate) fn read_state<D: Database + ?Sized>(db: &mut D) -> anyhow::Result<State> {
    let label = db.target().describe();
    match db.run_meta(&state_request_sql(&table(db), None))? {
        Ok(Some(items)) => state_from_items(&items).ok_or_else(|| {
            failed!("reading the tracking table of {label}: D1 did not confirm the query; nothing was changed")
        }),
        Ok(None) => Err(failed!(
            "reading the tracking table of {label}: the request returned no rows; nothing was changed"
        )),
        Err(e) => Err(failed!(
            "reading the tracking table of {label} failed: {e}\nnothing was changed"
        )),
    }
}

/// Runs `sql` as one request. `Ok(Err(text))` is D1's or wrangler's refusal (nothing of it
/// applied); `Err` means it could not be run.
pub(crate) fn execute(db: &mut dyn Database, sql: &str) -> anyhow::Result<Result<(), String>> {
    Ok(db.run(sql, None)?.map(|_| ()))
}

/// Runs `sql` as one request and reads the state back, with the rows of one more read
/// (`select`, a single statement): in the same request where the transport returns rows,
/// else in reads of their own right after it.
pub(crate) fn execute_and_query(
    db: &mut dyn Database,
    sql: &str,
    select: Option<&str>,
) -> anyhow::Result<Result<(State, Vec<serde_json::Value>), String>> {
    let mut reads = select.map_or(String::new(), |s| format!("{s};\n"));
    reads.push_str(&state_request_sql(&table(db), None));
    match db.run(sql, Some(&reads))? {
        Err(e) => Ok(Err(e)),
        Ok(None) => {
            let state = db.state()?;
            let rows = match select {
                Some(s) => db.query(s)?,
                None => Vec::new(),
            };
            Ok(Ok((state, rows)))
        }
        Ok(Some(items)) => {
            let state = state_from_items(&items).ok_or_else(|| {
                failed!(
                    "the change on {} was sent, but its read-back is not in the answer",
                    db.target().describe()
                )
            })?;
            // The state is the last four items; the select comes just before them.
            let rows = match select {
                Some(_) => result_rows(items.len().checked_sub(5).map(|i| &items[i])),
                None => Vec::new(),
            };
            Ok(Ok((state, rows)))
        }
    }
}

/// Takes the lock and reads the state in one request. `Ok(Err(row))` names the holder;
/// a holder with an empty token released the lock between our attempt and our look at it.
pub(crate) fn lock_and_state(
    db: &mut dyn Database,
    row: &LockRow,
) -> anyhow::Result<Result<State, LockRow>> {
    let table = table(db);
    let label = db.target().describe();
    match db.run_meta(&state_request_sql(&table, Some(row)))? {
        Ok(Some(items)) => state_from_items(&items)
            .map(Ok)
            .ok_or_else(|| failed!("reading the tracking table of {label} (taking the lock): D1 did not confirm the request; nothing was changed")),
        Ok(None) => Err(failed!(
            "reading the tracking table of {label} (taking the lock): the request returned no rows; nothing was changed"
        )),
        Err(e) if is_lock_conflict(&e, &table) => {
            let holder = db.query(&lock_select_sql(&table))?;
            Ok(Err(holder.first().map(lock_from_json).unwrap_or_else(
                || LockRow {
                    token: String::new(),
                    holder: "(released just now)".into(),
                    host: String::new(),
                    pid: 0,
                    command: String::new(),
                    acquired_at: crate::time::unix_now(),
                    age_secs: 0,
                },
            )))
        }
        Err(e) => Err(failed!(
            "reading the tracking table of {label} (taking the lock) failed: {e}\nnothing was changed"
        )),
    }
}

/// Releases the lock rows of `tokens` (ours, and one a restore brought back).
pub(crate) fn unlock(db: &mut dyn Database, tokens: &[String]) -> anyhow::Result<()> {
    let sql = lock_release_sql(&table(db), tokens);
    match db.run_meta(&sql)? {
        Ok(_) => Ok(()),
        Err(e) => Err(failed!(
            "releasing the lock on {} failed: {e}; run `cargo xtask db-status --env {}` and break it \
             with --force-unlock once it is stale",
            db.target().describe(),
            db.target().env
        )),
    }
}

/// Deletes a holder's lock row: a stale one (`--force-unlock`), or our own after a
/// request whose answer was lost.
pub(crate) fn break_lock(db: &mut dyn Database, holder: &LockRow) -> anyhow::Result<()> {
    let sql = format!(
        "DELETE FROM {} WHERE token = {};",
        quote_ident(&lock_table(&table(db))),
        quote_string(&holder.token)
    );
    match db.run_meta(&sql)? {
        Ok(_) => Ok(()),
        Err(e) => Err(failed!(
            "breaking the lock on {} failed: {e}",
            db.target().describe()
        )),
    }
}

/// The read-back that rides in each apply request: the tracking table.
fn tracking_read_sql(table: &str) -> String {
    format!(
        "SELECT id, name, applied_at FROM {} ORDER BY id;",
        quote_ident(table)
    )
}

/// The wrangler argument lists `apply` would run, for `--dry-run`.
pub(crate) fn apply_commands(
    db: &dyn Database,
    migrations: &[&Migration],
    mode: ApplyMode,
) -> Vec<Vec<String>> {
    let table = table(db);
    let read_back = tracking_read_sql(&table);
    mode.groups(migrations)
        .iter()
        .enumerate()
        .map(|(i, g)| {
            db.command_for(
                &batch_sql(&table, g, &Extras::default()),
                Some(&read_back),
                i,
            )
        })
        .collect()
}

/// Applies the migrations with their tracking rows, one request per group, saying which
/// files each request carries. An `Err` means the attempt could not be made or judged; a
/// failed attempt is reported in `ApplyReport::error`, with the migration that broke it
/// where it can be told, and the caller reads the tracking table back.
pub(crate) fn apply(
    db: &mut dyn Database,
    migrations: &[&Migration],
    mode: ApplyMode,
    before: &State,
    extras: &Extras,
) -> anyhow::Result<ApplyReport> {
    let table = table(db);
    let read_back = tracking_read_sql(&table);
    let groups = mode.groups(migrations);
    let total = migrations.len();
    let last = groups.len().saturating_sub(1);
    let mut done = 0;
    let mut after = None;
    for (i, group) in groups.iter().enumerate() {
        let sql = batch_sql(&table, group, &group_extras(extras, i, last));
        let names: Vec<&str> = group.iter().map(|m| m.name.as_str()).collect();
        if names.len() <= 3 {
            ui::say(format!(
                "applying {}-{} of {total}: {}",
                done + 1,
                done + group.len(),
                names.join(", ")
            ));
        } else {
            // A line per file: 200 names on one line help nobody.
            ui::say(format!(
                "applying {}-{} of {total} in one request:",
                done + 1,
                done + group.len()
            ));
            for (k, name) in names.iter().enumerate() {
                ui::say(format!("  [{}/{total}] {name}", done + k + 1));
            }
        }
        match db.run(&sql, Some(&read_back))? {
            Ok(items) => after = items.as_ref().and_then(|i| i.last()).map(rows_to_state),
            Err(error) => {
                let (failed, no_file_failed) = failed_migration(db, &table, group, before);
                return Ok(ApplyReport {
                    error: Some(error),
                    failed,
                    no_file_failed,
                    after: None,
                });
            }
        }
        done += group.len();
    }
    Ok(ApplyReport {
        error: None,
        failed: None,
        no_file_failed: false,
        after,
    })
}

/// The migration of a failed group, and whether D1 showed that no file of it fails: the
/// file itself when it is one; else found by D1 itself, bisecting with requests that
/// cannot commit; else by replaying the group on a copy of the database (with its rows
/// where the transport has one, else on the schema alone). wrangler only says which SQL
/// failed, not in which file.
fn failed_migration(
    db: &mut dyn Database,
    table: &str,
    group: &[&Migration],
    before: &State,
) -> (Option<String>, bool) {
    if let [one] = group {
        return (Some(one.name.clone()), false);
    }
    match bisect(db, table, group) {
        Bisected::Culprit(name) => return (Some(name), false),
        Bisected::NoFile => return (None, true),
        Bisected::Unknown => {}
    }
    let replayed = db
        .copy()
        .or_else(|| schema_copy(&before.schema))
        .and_then(|conn| replay(&conn, table, group).map(|(name, _)| name));
    (replayed, false)
}

/// A statement that always fails, so that a request ending with it never commits.
const SENTINEL_TABLE: &str = "xtask: rollback sentinel";

/// What bisecting a failed group found.
enum Bisected {
    /// The first file that fails.
    Culprit(String),
    /// Every file ran: the failure was not in a file.
    NoFile,
    /// A reply could not be judged.
    Unknown,
}

/// Whether `group` runs up to a statement that always fails, in a request that therefore
/// never commits (D1 runs a request as one transaction): `Some(true)` if the files got as
/// far as the sentinel, `Some(false)` if one of them failed, `None` if the reply cannot
/// be judged.
fn runs_to_sentinel(db: &mut dyn Database, table: &str, group: &[&Migration]) -> Option<bool> {
    let sql = format!(
        "{}\nSELECT * FROM {};\n",
        batch_sql(table, group, &Extras::default()),
        quote_ident(SENTINEL_TABLE)
    );
    match db.run(&sql, None) {
        Ok(Err(e)) => Some(e.contains(SENTINEL_TABLE)),
        // The sentinel cannot succeed: a reply that says so is not to be trusted.
        Ok(Ok(_)) | Err(_) => None,
    }
}

/// Finds the first file of a failed group: the whole group is tried again, then halves,
/// each followed by the sentinel. About log2(n) + 1 requests, spent only after a failure.
fn bisect(db: &mut dyn Database, table: &str, group: &[&Migration]) -> Bisected {
    ui::say(format!(
        "finding which of the {} files failed, with requests that are rolled back",
        group.len()
    ));
    match runs_to_sentinel(db, table, group) {
        Some(true) => return Bisected::NoFile,
        Some(false) => {}
        None => return Bisected::Unknown,
    }
    // group[..good] gets through; group[..bad] fails.
    let (mut good, mut bad) = (0, group.len());
    while bad - good > 1 {
        let mid = (good + bad) / 2;
        match runs_to_sentinel(db, table, &group[..mid]) {
            Some(true) => good = mid,
            Some(false) => bad = mid,
            None => return Bisected::Unknown,
        }
    }
    Bisected::Culprit(group[good].name.clone())
}

/// Restores in place: a restore point through the transport, an SQL export by emptying
/// the database and loading the file in one request (`before.schema` says what to drop).
/// Returns the bookmark Time Travel reports as the one before.
pub(crate) fn restore(
    db: &mut dyn Database,
    source: &Restore,
    before: &State,
) -> anyhow::Result<Option<String>> {
    match source {
        Restore::Bookmark(b) => db.return_to(&RestorePoint::Bookmark(b.clone())),
        Restore::Snapshot(p) => db.return_to(&RestorePoint::Snapshot(p.clone())),
        Restore::Sql(file) => {
            let name = file
                .file_name()
                .map_or_else(|| "export".into(), |n| n.to_string_lossy().into_owned());
            let request =
                file.with_file_name(format!(".{name}.replacing-{}.sql", std::process::id()));
            let drops = super::drop_all_sql(&before.schema, &[]);
            let written = super::load::write_replacing_file(&drops, file, &request);
            let outcome = written.and_then(|()| db.run_file(&request));
            let _ = std::fs::remove_file(&request);
            match outcome? {
                Ok(_) => Ok(None),
                Err(e) => Err(failed!(
                    "loading {} into {} failed: {e}; the request was one transaction, so the database \
                     should be as it was: check with `cargo xtask db-status --env {}`",
                    file.display(),
                    db.target().describe(),
                    db.target().env
                )),
            }
        }
    }
}

/// The raw command that returns the database to `point`: wrangler's Time Travel restore
/// for a bookmark; a local snapshot has no wrangler command, `db-restore` copies it back.
pub(crate) fn undo_command(target: &Target, point: &RestorePoint) -> String {
    match point {
        RestorePoint::Bookmark(b) => {
            display_command(&target.time_travel_args("restore", &["--bookmark", b]))
        }
        RestorePoint::Snapshot(p) => format!("(copy back the snapshot {})", p.display()),
    }
}

/// Refusals of a restore point the transport cannot return to.
pub(crate) fn no_bookmarks() -> anyhow::Error {
    usage!("the local database has no Time Travel: restore it with --backup <id or path> or --last")
}
