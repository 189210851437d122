//! Pure planning: the folder and the tracking table in, what is applied, pending, wrong and
//! to be applied out. No I/O, so `--dry-run` and unit tests see exactly what would run.

use crate::d1::{AppliedRow, State};
use crate::migrations::lint::Severity;
use crate::migrations::{parse_name, Migration, MigrationSet};

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
        .filter_map(|r| parse_name(&r.name).ok().map(|n| (n, r.name.as_str())))
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
}
