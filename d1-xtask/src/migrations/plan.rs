//! Pure planning: the folder and the tracking table in, what is applied, pending, wrong and
//! to be applied out. No I/O, so `--dry-run` and unit tests see exactly what would run.

use crate::d1::state::{AppliedRow, State};
use crate::migrations::lint::Severity;
use std::collections::BTreeMap;

use crate::d1::state::SchemaObject;
use crate::migrations::{parse_path, Migration, MigrationSet};

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Problem {
    /// Stable identifier for scripts: a lint kind, `missing` or `out-of-order`.
    pub(crate) kind: &'static str,
    pub(crate) migration: String,
    pub(crate) message: String,
    /// Whether it stops `db-migrate` (lint errors and drift) or is only reported.
    pub(crate) blocking: bool,
}

#[derive(Debug)]
pub(crate) struct Status<'a> {
    /// Tracking rows in order, with the file each names where it still exists.
    pub(crate) applied: Vec<(AppliedRow, Option<&'a Migration>)>,
    pub(crate) pending: Vec<&'a Migration>,
    pub(crate) problems: Vec<Problem>,
    /// Applied migrations whose checksum differs from the one recorded: (file, recorded).
    pub(crate) edited: Vec<(&'a Migration, String)>,
    /// Applied migrations with no checksum recorded yet (applied by plain wrangler).
    pub(crate) unrecorded: Vec<&'a Migration>,
}

impl Status<'_> {
    pub(crate) fn blocking(&self) -> impl Iterator<Item = &Problem> {
        self.problems.iter().filter(|p| p.blocking)
    }
}

pub(crate) fn status<'a>(set: &'a MigrationSet, state: &State) -> Status<'a> {
    let mut problems: Vec<Problem> = set
        .findings
        .iter()
        .map(|f| Problem {
            kind: f.kind,
            migration: f.file.clone(),
            message: f.to_string(),
            blocking: f.severity == Severity::Error,
        })
        .collect();
    let applied: Vec<(AppliedRow, Option<&Migration>)> = state
        .applied
        .iter()
        .map(|row| {
            (
                row.clone(),
                set.migrations.iter().find(|m| m.name == row.name),
            )
        })
        .collect();
    let pending: Vec<&Migration> = set
        .migrations
        .iter()
        .filter(|m| !state.is_applied(&m.name))
        .collect();
    let mut edited = Vec::new();
    let mut unrecorded = Vec::new();
    for (row, file) in &applied {
        let recorded = state.checksums.get(&row.name);
        match (file, recorded) {
            (None, _) => {
                let renamed = recorded
                    .and_then(|sha| pending.iter().find(|m| &m.sha256 == sha))
                    .map_or(String::new(), |m| {
                        format!(
                            " ({} has the same content: if it was renamed, rename it back)",
                            m.name
                        )
                    });
                problems.push(Problem {
                    kind: "missing",
                    migration: row.name.clone(),
                    message: format!(
                        "{} was applied on {} but is no longer in {}: restore the file from version control \
                         (deleting an applied migration does not undo it){renamed}",
                        row.name,
                        row.applied_at,
                        set.dir.display()
                    ),
                    blocking: true,
                });
            }
            (Some(m), Some(sha)) if sha != &m.sha256 => {
                problems.push(Problem {
                    kind: "edited",
                    migration: m.name.clone(),
                    message: format!(
                        "{} was previously applied but has been modified: applied with SHA-256 {sha}, the file \
                         now has {}; restore it from version control, or review the change and run \
                         `cargo xtask db-migrate --repair` to record the new checksum",
                        m.name, m.sha256
                    ),
                    blocking: true,
                });
                edited.push((*m, sha.clone()));
            }
            (Some(m), None) => unrecorded.push(*m),
            _ => {}
        }
    }
    let newest = state
        .applied
        .iter()
        .filter_map(|r| parse_path(&r.name).ok().map(|n| (n, r.name.as_str())))
        .max();
    if let Some((newest_number, newest_name)) = newest {
        for m in &pending {
            if (m.number, m.name.as_str()) < (newest_number, newest_name) {
                problems.push(Problem {
                    kind: "out-of-order",
                    migration: m.name.clone(),
                    message: format!(
                        "{} is pending but numbered below {newest_name}, which is applied: wrangler would \
                         apply it out of order; renumber it after {newest_name} (`cargo xtask db-new` \
                         gives the next number)",
                        m.name
                    ),
                    blocking: true,
                });
            }
        }
    }
    Status {
        applied,
        pending,
        problems,
        edited,
        unrecorded,
    }
}

/// `status`, with the live schema compared to the one the applied migrations make
/// (`schema_drift`): what `db-status` reports and `db-migrate` checks.
pub(crate) fn status_with_schema<'a>(
    set: &'a MigrationSet,
    state: &State,
    table: &str,
) -> Status<'a> {
    let mut status = status(set, state);
    status.problems.extend(schema_drift(set, state, table));
    status
}

/// Differences between the live schema (tables and their columns and foreign keys,
/// indexes, triggers, views) and the one the applied migrations make, replayed on an
/// in-memory SQLite: an `ALTER TABLE` by hand, a dropped index. SQLite's and D1's own
/// objects and the tracking, checksum and lock tables are left out. Not checked while an
/// applied file is missing or edited: that drift comes first.
pub(crate) fn schema_drift(set: &MigrationSet, state: &State, table: &str) -> Vec<Problem> {
    let mut files = Vec::new();
    for row in &state.applied {
        let Some(m) = set.migrations.iter().find(|m| m.name == row.name) else {
            return Vec::new();
        };
        if state
            .checksums
            .get(&row.name)
            .is_some_and(|sha| sha != &m.sha256)
        {
            return Vec::new();
        }
        files.push(m);
    }
    let problem = |object: &str, message: String, blocking: bool| Problem {
        kind: "schema-drift",
        migration: object.to_string(),
        message,
        blocking,
    };
    let expected = match crate::d1::replayed_schema(table, &files) {
        Ok(schema) => schema,
        Err((file, e)) => {
            return vec![problem(
                &file,
                format!(
                    "the schema was not compared: {file} fails on an empty database ({e}), so the schema the \
                     applied migrations make is unknown"
                ),
                false,
            )]
        }
    };
    let own = crate::d1::own_tables(table);
    let keep = |o: &&SchemaObject| {
        !crate::d1::is_internal(&o.name) && !own.iter().any(|t| t.eq_ignore_ascii_case(&o.table))
    };
    let expected: Vec<SchemaObject> = expected.iter().filter(keep).cloned().collect();
    let live: Vec<SchemaObject> = state.schema.iter().filter(keep).cloned().collect();
    let (Some(want), Some(have)) = (shape(&expected), shape(&live)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for ((kind, name), w) in &want {
        match have.get(&(kind.clone(), name.clone())) {
            None => out.push(problem(
                name,
                format!(
                    "{kind} `{name}` is made by the applied migrations but is not in the database (dropped by \
                     hand?): restore it, or add a migration that drops it"
                ),
                true,
            )),
            Some(h) if h != w => out.push(problem(
                name,
                format!(
                    "{kind} `{name}` differs from what the applied migrations make (changed by hand?): {}; \
                     put the change in a migration, or undo it (`--allow-drift` lets db-migrate go on)",
                    difference(w, h)
                ),
                true,
            )),
            Some(_) => {}
        }
    }
    for (kind, name) in have.keys() {
        if !want.contains_key(&(kind.clone(), name.clone())) {
            out.push(problem(
                name,
                if state.applied.is_empty() {
                    format!(
                        "{kind} `{name}` is in the database, but no migration is recorded as applied: if the \
                         schema was made without wrangler, record the migrations that made it with \
                         `cargo xtask db-migrate --baseline <version>`"
                    )
                } else {
                    format!(
                        "{kind} `{name}` is in the database, but no applied migration makes it (made by hand?): \
                         add a migration that creates it, or drop it"
                    )
                },
                true,
            ));
        }
    }
    out
}

/// Each object of a schema by (kind, lower-case name): a table as its columns and foreign
/// keys, anything else as its SQL with whitespace collapsed.
fn shape(schema: &[SchemaObject]) -> Option<BTreeMap<(String, String), Vec<String>>> {
    let conn = crate::d1::schema_copy(schema)?;
    let mut out = BTreeMap::new();
    for o in schema {
        let key = (o.kind.clone(), o.name.to_lowercase());
        let parts = if o.kind == "table" {
            let mut parts: Vec<String> = conn
                .prepare("SELECT name, upper(type), \"notnull\", dflt_value, pk FROM pragma_table_xinfo(?1) ORDER BY cid")
                .and_then(|mut st| {
                    st.query_map([&o.name], |r| {
                        Ok(format!(
                            "column {} {}{}{}{}",
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            if r.get::<_, i64>(2)? != 0 { " NOT NULL" } else { "" },
                            r.get::<_, Option<String>>(3)?.map_or(String::new(), |d| format!(" DEFAULT {d}")),
                            if r.get::<_, i64>(4)? != 0 { " PRIMARY KEY" } else { "" },
                        ))
                    })?
                    .collect()
                })
                .ok()?;
            let fks: Vec<String> = conn
                .prepare("SELECT \"from\", \"table\", \"to\", on_delete FROM pragma_foreign_key_list(?1) ORDER BY id, seq")
                .and_then(|mut st| {
                    st.query_map([&o.name], |r| {
                        Ok(format!(
                            "reference {} -> {}({}) ON DELETE {}",
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                            r.get::<_, String>(3)?
                        ))
                    })?
                    .collect()
                })
                .ok()?;
            parts.extend(fks);
            parts
        } else {
            vec![o.sql.split_whitespace().collect::<Vec<_>>().join(" ")]
        };
        out.insert(key, parts);
    }
    Some(out)
}

/// The first differences between two shapes, in words.
fn difference(want: &[String], have: &[String]) -> String {
    let mut words = Vec::new();
    for h in have.iter().filter(|h| !want.contains(h)) {
        words.push(format!("the database has `{h}`"));
    }
    for w in want.iter().filter(|w| !have.contains(w)) {
        words.push(format!("the migrations make `{w}`"));
    }
    if words.is_empty() {
        words.push("the order of its parts differs".into());
    }
    words.join(", ")
}

/// What `db-migrate` applies: every pending migration, or those up to and including `to`.
pub(crate) fn select<'a>(status: &Status<'a>, to: Option<&Migration>) -> Vec<&'a Migration> {
    status
        .pending
        .iter()
        .copied()
        .filter(|m| to.is_none_or(|t| (m.number, &m.name) <= (t.number, &t.name)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;

    fn setup(files: &[&str], applied: &[&str]) -> (TempDir, MigrationSet, State) {
        let dir = TempDir::new("plan");
        for f in files {
            std::fs::write(dir.path().join(f), "SELECT 1;").unwrap();
        }
        let set = MigrationSet::scan(dir.path()).unwrap();
        let state = State {
            applied: applied
                .iter()
                .enumerate()
                .map(|(i, n)| AppliedRow {
                    id: i as i64 + 1,
                    name: n.to_string(),
                    applied_at: "2026-11-22 00:00:00".into(),
                })
                .collect(),
            ..State::default()
        };
        (dir, set, state)
    }

    fn names(ms: &[&Migration]) -> Vec<String> {
        ms.iter().map(|m| m.name.clone()).collect()
    }

    #[test]
    fn pending_and_up_to_a_version() {
        let (_d, set, state) = setup(&["0001_a.sql", "0002_b.sql", "0003_c.sql"], &["0001_a.sql"]);
        let st = status(&set, &state);
        assert_eq!(names(&st.pending), vec!["0002_b.sql", "0003_c.sql"]);
        assert!(st.problems.is_empty());
        assert_eq!(names(&select(&st, None)), vec!["0002_b.sql", "0003_c.sql"]);
        let to = set.find("2").unwrap();
        assert_eq!(names(&select(&st, Some(to))), vec!["0002_b.sql"]);
        let to = set.find("1").unwrap();
        assert!(select(&st, Some(to)).is_empty());
    }

    #[test]
    fn checksums_edited_unrecorded_and_renamed() {
        let (_d, set, mut state) = setup(
            &["0001_a.sql", "0002_b.sql", "0003_renamed.sql"],
            &["0001_a.sql", "0002_b.sql", "0003_old.sql"],
        );
        let sha = set.migrations[0].sha256.clone();
        state.checksums.insert("0001_a.sql".into(), "0".repeat(64));
        state.checksums.insert("0003_old.sql".into(), sha);
        let st = status(&set, &state);
        assert_eq!(st.edited.len(), 1);
        assert_eq!(st.edited[0].0.name, "0001_a.sql");
        assert_eq!(
            st.unrecorded
                .iter()
                .map(|m| m.name.as_str())
                .collect::<Vec<_>>(),
            vec!["0002_b.sql"]
        );
        let edited = st.problems.iter().find(|p| p.kind == "edited").unwrap();
        assert!(edited
            .message
            .contains("previously applied but has been modified"));
        let missing = st.problems.iter().find(|p| p.kind == "missing").unwrap();
        assert!(
            missing
                .message
                .contains("0003_renamed.sql has the same content"),
            "{}",
            missing.message
        );
    }

    #[test]
    fn drift_missing_and_out_of_order() {
        let (_d, set, state) = setup(
            &["0001_a.sql", "0002_late.sql", "0003_c.sql"],
            &["0001_a.sql", "0003_c.sql", "0004_gone.sql"],
        );
        let st = status(&set, &state);
        let kinds: Vec<(&str, &str)> = st
            .problems
            .iter()
            .map(|p| (p.kind, p.migration.as_str()))
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("missing", "0004_gone.sql"),
                ("out-of-order", "0002_late.sql")
            ]
        );
        assert_eq!(st.blocking().count(), 2);
        assert!(st.applied[2].1.is_none());
    }

    #[test]
    fn a_schema_changed_by_hand_is_schema_drift() {
        let dir = TempDir::new("schema-drift");
        std::fs::write(
            dir.path().join("0001_users.sql"),
            "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL);\nCREATE INDEX idx_email ON users(email);\n",
        )
        .unwrap();
        let set = MigrationSet::scan(dir.path()).unwrap();
        let live = |extra: &str| {
            let conn = rusqlite::Connection::open_in_memory().unwrap();
            conn.execute_batch(&set.migrations[0].sql).unwrap();
            conn.execute_batch(&crate::d1::meta_tables_sql("d1_migrations"))
                .unwrap();
            conn.execute_batch(&crate::d1::create_tracking_table_sql("d1_migrations"))
                .unwrap();
            conn.execute_batch(extra).unwrap();
            State {
                applied: vec![AppliedRow {
                    id: 1,
                    name: "0001_users.sql".into(),
                    applied_at: String::new(),
                }],
                ..crate::d1::local::read_state(&conn, "d1_migrations").unwrap()
            }
        };
        // As the migrations made it (with the xtask's own tables): nothing to say.
        assert!(schema_drift(&set, &live(""), "d1_migrations").is_empty());
        let state = live(
            "ALTER TABLE users ADD COLUMN phone TEXT; DROP INDEX idx_email; CREATE TABLE notes (x);",
        );
        let found = status_with_schema(&set, &state, "d1_migrations");
        let drift: Vec<&Problem> = found
            .problems
            .iter()
            .filter(|p| p.kind == "schema-drift")
            .collect();
        assert_eq!(drift.len(), 3, "{drift:#?}");
        assert!(drift.iter().all(|p| p.blocking));
        let text: Vec<&str> = drift.iter().map(|p| p.message.as_str()).collect();
        assert!(
            text.iter()
                .any(|m| m.contains("table `users`") && m.contains("column phone TEXT")),
            "{text:#?}"
        );
        assert!(text
            .iter()
            .any(|m| m.contains("index `idx_email`") && m.contains("not in the database")));
        assert!(text
            .iter()
            .any(|m| m.contains("table `notes`") && m.contains("no applied migration")));
    }
}
