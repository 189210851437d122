//! The SQL of the xtask's own tables beside wrangler's tracking table (checksums, the
//! lock) and of the requests that read and write them together with the migrations, and
//! how their replies are read back into a `State`.

use super::schema::{schema_from_rows, SCHEMA_SQL};
use super::state::{AppliedRow, LockRow, State};
use crate::migrations::Migration;

/// Work that rides in the apply request beside the migrations.
#[derive(Clone, Debug, Default)]
pub(crate) struct Extras {
    /// Checksums of migrations applied earlier by plain wrangler, recorded on first sight.
    pub(crate) first_sight: Vec<(String, String)>,
    /// Release the lock in the same transaction: the rows of these tokens (ours, and one
    /// a restore brought back).
    pub(crate) release: Option<Vec<String>>,
}

/// The extras for group `i` of `0..=last`: first-sight checksums with the first request,
/// the lock's release with the last.
pub(crate) fn group_extras(extras: &Extras, i: usize, last: usize) -> Extras {
    Extras {
        first_sight: if i == 0 {
            extras.first_sight.clone()
        } else {
            Vec::new()
        },
        release: if i == last {
            extras.release.clone()
        } else {
            None
        },
    }
}

/// The xtask's side table of checksums, next to wrangler's tracking table.
pub(crate) fn checksum_table(table: &str) -> String {
    format!("{table}_checksums")
}

/// The xtask's lock table: at most one row.
pub(crate) fn lock_table(table: &str) -> String {
    format!("{table}_lock")
}

/// wrangler's tracking table and the xtask's two beside it: never user data (not
/// dropped by a reset, counted, compared for schema drift or copied into test data).
pub(crate) fn own_tables(table: &str) -> [String; 3] {
    [table.to_string(), checksum_table(table), lock_table(table)]
}

/// Creates the lock table if missing.
fn lock_table_sql(table: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {}(id INTEGER PRIMARY KEY CHECK (id = 1), token TEXT NOT NULL, \
         holder TEXT NOT NULL, host TEXT NOT NULL, pid INTEGER NOT NULL, command TEXT NOT NULL, \
         acquired_at INTEGER NOT NULL);",
        quote_ident(&lock_table(table))
    )
}

/// Creates the side tables if missing.
pub(crate) fn meta_tables_sql(table: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {}(name TEXT PRIMARY KEY, sha256 TEXT NOT NULL, \
         recorded_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP, how TEXT NOT NULL);\n{}",
        quote_ident(&checksum_table(table)),
        lock_table_sql(table)
    )
}

/// Records (or re-records) a checksum.
pub(crate) fn checksum_upsert_sql(table: &str, name: &str, sha256: &str, how: &str) -> String {
    format!(
        "INSERT INTO {} (name, sha256, how) VALUES ({}, {}, {}) ON CONFLICT(name) DO UPDATE SET \
         sha256 = excluded.sha256, how = excluded.how, recorded_at = CURRENT_TIMESTAMP;",
        quote_ident(&checksum_table(table)),
        quote_string(name),
        quote_string(sha256),
        quote_string(how)
    )
}

/// Takes the lock: fails with a UNIQUE constraint error while another row is there. The
/// time is the database's own (`unixepoch()`), so that every runner judges its age by one
/// clock.
pub(crate) fn lock_insert_sql(table: &str, row: &LockRow) -> String {
    format!(
        "INSERT INTO {} (id, token, holder, host, pid, command, acquired_at) VALUES (1, {}, {}, {}, {}, {}, unixepoch());",
        quote_ident(&lock_table(table)),
        quote_string(&row.token),
        quote_string(&row.holder),
        quote_string(&row.host),
        row.pid,
        quote_string(&row.command),
    )
}

/// Releases the lock rows of `tokens`, and only those: ours, and the one a restore brought
/// back (recognised by its token after the restore). Never rows chosen by time. The table
/// is created first if missing: a restore from an export of a database that never had it
/// (plain wrangler's, an empty one) removes it along with the lock row.
pub(crate) fn lock_release_sql(table: &str, tokens: &[String]) -> String {
    let list: Vec<String> = tokens.iter().map(|t| quote_string(t)).collect();
    format!(
        "{}\nDELETE FROM {} WHERE token IN ({});",
        lock_table_sql(table),
        quote_ident(&lock_table(table)),
        list.join(", ")
    )
}

pub(crate) fn checksums_select_sql(table: &str) -> String {
    format!(
        "SELECT name, sha256 FROM {} ORDER BY name",
        quote_ident(&checksum_table(table))
    )
}

pub(crate) fn lock_select_sql(table: &str) -> String {
    format!(
        "SELECT token, holder, host, pid, command, acquired_at, unixepoch() - acquired_at AS age FROM {}",
        quote_ident(&lock_table(table))
    )
}

/// The lock row from a `lock_select_sql` result row.
pub(crate) fn lock_from_json(row: &serde_json::Value) -> LockRow {
    let s = |k: &str| row[k].as_str().unwrap_or_default().to_string();
    LockRow {
        token: s("token"),
        holder: s("holder"),
        host: s("host"),
        pid: row["pid"].as_i64().unwrap_or_default(),
        command: s("command"),
        acquired_at: row["acquired_at"].as_i64().unwrap_or_default(),
        age_secs: row["age"].as_i64().unwrap_or_default(),
    }
}

/// wrangler's tracking table, created exactly as wrangler creates it, so that
/// `wrangler d1 migrations list` and the xtask read the same rows.
pub(crate) fn create_tracking_table_sql(table: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {}(\n\t\tid         INTEGER PRIMARY KEY AUTOINCREMENT,\n\t\tname       TEXT UNIQUE,\n\t\tapplied_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP NOT NULL\n);",
        quote_ident(table)
    )
}

/// The row wrangler inserts after a migration file, byte for byte the same statement.
pub(crate) fn tracking_insert_sql(table: &str, name: &str) -> String {
    format!(
        "INSERT INTO {} (name)\nvalues ({});",
        quote_ident(table),
        quote_string(name)
    )
}

pub(crate) fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

pub(crate) fn quote_string(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The SQL of one request applying `migrations` in order, each followed by its tracking
/// row and its checksum, preceded by the tables' creation, followed by the `extras`.
pub(crate) fn batch_sql(table: &str, migrations: &[&Migration], extras: &Extras) -> String {
    let mut sql = create_tracking_table_sql(table);
    sql.push('\n');
    sql.push_str(&meta_tables_sql(table));
    sql.push('\n');
    let total = migrations.len();
    for (i, m) in migrations.iter().enumerate() {
        // Comments keep a failing batch readable; D1 ignores them.
        sql.push_str(&format!(
            "-- xtask: migration {} of {total}: {}\n",
            i + 1,
            m.name.replace('\n', " ")
        ));
        sql.push_str(&m.sql);
        // A trailing `-- comment` without a newline would swallow what follows.
        sql.push('\n');
        if m.facts.unterminated_tail {
            sql.push_str(";\n");
        }
        if m.facts.leaves_fk_deferred {
            // wrangler gives each file its own transaction, which ends the deferral; in one
            // request the next file would inherit it.
            sql.push_str("PRAGMA defer_foreign_keys = false;\n");
        }
        sql.push_str(&tracking_insert_sql(table, &m.name));
        sql.push('\n');
        sql.push_str(&checksum_upsert_sql(table, &m.name, &m.sha256, "applied"));
        sql.push('\n');
    }
    for (name, sha) in &extras.first_sight {
        sql.push_str(&checksum_upsert_sql(table, name, sha, "first-sight"));
        sql.push('\n');
    }
    if let Some(tokens) = &extras.release {
        sql.push_str(&lock_release_sql(table, tokens));
        sql.push('\n');
    }
    sql
}

/// One request that reads the whole state (and takes the lock first when `lock` is given):
/// the tables are created if missing, as `wrangler d1 migrations list` does; the last four
/// statements are the reads.
pub(crate) fn state_request_sql(table: &str, lock: Option<&LockRow>) -> String {
    let mut sql = create_tracking_table_sql(table);
    sql.push('\n');
    sql.push_str(&meta_tables_sql(table));
    sql.push('\n');
    if let Some(row) = lock {
        sql.push_str(&lock_insert_sql(table, row));
        sql.push('\n');
    }
    sql.push_str(&format!(
        "SELECT id, name, applied_at FROM {} ORDER BY id;\n{SCHEMA_SQL};\n{};\n{};",
        quote_ident(table),
        checksums_select_sql(table),
        lock_select_sql(table)
    ));
    sql
}

/// The rows of one result item (`{"results": [...], "success": true}`).
pub(crate) fn result_rows(item: Option<&serde_json::Value>) -> Vec<serde_json::Value> {
    item.and_then(|i| i["results"].as_array().cloned())
        .unwrap_or_default()
}

/// The state from the result items of `state_request_sql`.
pub(crate) fn state_from_items(items: &[serde_json::Value]) -> Option<State> {
    if items.len() < 4 || items.iter().any(|i| i["success"] != true) {
        return None;
    }
    let n = items.len();
    let rows = |i: usize| {
        items[i]["results"]
            .as_array()
            .map_or(&[][..], |v| v.as_slice())
    };
    let mut state = rows_to_state(&items[n - 4]);
    state.schema = schema_from_rows(rows(n - 3));
    state.checksums = rows(n - 2)
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap_or_default().to_string(),
                r["sha256"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    state.lock = rows(n - 1).first().map(lock_from_json);
    Some(state)
}

/// Whether D1's error is the lock's primary key refusing a second holder.
pub(crate) fn is_lock_conflict(error: &str, table: &str) -> bool {
    error.contains("UNIQUE constraint failed") && error.contains(&lock_table(table))
}

/// Tracking rows from one result item (`SELECT id, name, applied_at ...`).
pub(crate) fn rows_to_state(item: &serde_json::Value) -> State {
    let applied = item["results"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|row| AppliedRow {
            id: row["id"].as_i64().unwrap_or_default(),
            name: row["name"].as_str().unwrap_or_default().to_string(),
            applied_at: row["applied_at"].as_str().unwrap_or_default().to_string(),
        })
        .collect();
    State {
        applied,
        ..State::default()
    }
}
