//! Deploy records: one per `deploy`, in `backups/deploys.jsonl` beside the backup index.
//! A record is written whole when the deploy starts (so that a killed run leaves one) and
//! again, whole, at every step that changes what it says; the last line of an id wins.
//! Lines are appended, never rewritten (`backups::append_to`).

use serde_json::{json, Value};

use crate::guarded::backups;
use crate::workspace::project::Project;
use crate::workspace::target::Target;

/// How a deploy ended (or where it stands).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Running, or killed before it recorded an end.
    Started,
    /// Migrations applied, code deployed, smoke passed.
    Deployed,
    /// A step failed and both halves were put back.
    RolledBack,
    /// A step failed and putting things back failed too: see `note`.
    Failed,
    /// Undone later by `rollback`.
    Undone,
}

impl Outcome {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Outcome::Started => "started",
            Outcome::Deployed => "deployed",
            Outcome::RolledBack => "rolled-back",
            Outcome::Failed => "failed",
            Outcome::Undone => "undone",
        }
    }
    fn parse(s: &str) -> Option<Outcome> {
        [
            Outcome::Started,
            Outcome::Deployed,
            Outcome::RolledBack,
            Outcome::Failed,
            Outcome::Undone,
        ]
        .into_iter()
        .find(|o| o.name() == s)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Record {
    pub(crate) id: String,
    pub(crate) env: String,
    pub(crate) worker: String,
    /// The database's label and id.
    pub(crate) database: String,
    pub(crate) database_id: Option<String>,
    /// The backup index entry of the restore point, its bookmark and when it was taken.
    pub(crate) restore_point: Option<String>,
    pub(crate) bookmark: Option<String>,
    pub(crate) restore_point_at: Option<i64>,
    /// The Worker version live before the deploy (`None`: the first deploy).
    pub(crate) previous_version: Option<String>,
    pub(crate) new_version: Option<String>,
    pub(crate) migrations_applied: Vec<String>,
    pub(crate) started_at: i64,
    pub(crate) finished_at: Option<i64>,
    pub(crate) outcome: Outcome,
    /// What went wrong, and what was done about it.
    pub(crate) note: Option<String>,
}

impl Record {
    pub(crate) fn new(target: &Target, worker: &str, previous: Option<String>) -> Record {
        let now = crate::time::unix_now();
        Record {
            id: backups::new_id(now),
            env: target.env.name().to_string(),
            worker: worker.to_string(),
            database: target.db.label().to_string(),
            database_id: target.db.id.clone(),
            restore_point: None,
            bookmark: None,
            restore_point_at: None,
            previous_version: previous,
            new_version: None,
            migrations_applied: Vec::new(),
            started_at: now,
            finished_at: None,
            outcome: Outcome::Started,
            note: None,
        }
    }

    pub(crate) fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "env": self.env,
            "worker": self.worker,
            "database": self.database,
            "database_id": self.database_id,
            "restore_point": self.restore_point,
            "bookmark": self.bookmark,
            "restore_point_at": self.restore_point_at.map(crate::time::format_utc),
            "previous_version": self.previous_version,
            "new_version": self.new_version,
            "migrations_applied": self.migrations_applied,
            "started_at": crate::time::format_utc(self.started_at),
            "finished_at": self.finished_at.map(crate::time::format_utc),
            "outcome": self.outcome.name(),
            "note": self.note,
        })
    }

    fn from_json(v: &Value) -> Option<Record> {
        let text = |k: &str| v[k].as_str().map(String::from);
        let time = |k: &str| v[k].as_str().and_then(crate::time::parse_utc);
        Some(Record {
            id: text("id")?,
            env: text("env")?,
            worker: text("worker")?,
            database: text("database")?,
            database_id: text("database_id"),
            restore_point: text("restore_point"),
            bookmark: text("bookmark"),
            restore_point_at: time("restore_point_at"),
            previous_version: text("previous_version"),
            new_version: text("new_version"),
            migrations_applied: v["migrations_applied"]
                .as_array()?
                .iter()
                .filter_map(|m| m.as_str().map(String::from))
                .collect(),
            started_at: time("started_at")?,
            finished_at: time("finished_at"),
            outcome: Outcome::parse(v["outcome"].as_str()?)?,
            note: text("note"),
        })
    }

    /// Writes the record as it stands now (a new line; the newest line of an id wins).
    pub(crate) fn save(&self, project: &Project) -> anyhow::Result<()> {
        backups::append_to(
            project,
            &path(project),
            "the deploy records",
            &crate::ui::redact(&self.to_json().to_string()),
        )
    }

    /// One line for people: id, time, outcome, versions, migrations.
    pub(crate) fn describe(&self, zone: &jiff::tz::TimeZone) -> String {
        let versions = format!(
            "{} -> {}",
            self.previous_version.as_deref().unwrap_or("(none)"),
            self.new_version.as_deref().unwrap_or("(none)")
        );
        format!(
            "{}  {} {}  {}  {}  Worker {} {versions}  {} migration{}{}",
            self.id,
            self.env,
            self.database,
            crate::time::format_in(self.started_at, zone),
            self.outcome.name(),
            self.worker,
            self.migrations_applied.len(),
            if self.migrations_applied.len() == 1 {
                ""
            } else {
                "s"
            },
            self.restore_point
                .as_deref()
                .map_or(String::new(), |r| format!("  restore point {r}"))
        )
    }
}

pub(crate) fn path(project: &Project) -> std::path::PathBuf {
    backups::backups_dir(project).join("deploys.jsonl")
}

/// Every deploy record, oldest first, each as its newest line says.
pub(crate) fn all(project: &Project) -> Vec<Record> {
    let path = path(project);
    backups::set_aside_torn_tail(&path);
    let text = backups::read_index(&path).unwrap_or_default();
    let mut out: Vec<Record> = Vec::new();
    for (n, line) in text.split(|b| *b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<Value>(line)
            .ok()
            .as_ref()
            .and_then(Record::from_json)
        {
            Some(r) => match out.iter_mut().find(|o| o.id == r.id) {
                Some(o) => *o = r,
                None => out.push(r),
            },
            None => crate::ui::say(format!(
                "warning: line {} of {} cannot be read as a deploy record; it is skipped (left in the file)",
                n + 1,
                path.display()
            )),
        }
    }
    out
}

/// The records of `target`'s environment and database, oldest first.
pub(crate) fn of(project: &Project, target: &Target) -> Vec<Record> {
    all(project)
        .into_iter()
        .filter(|r| r.env == target.env.name() && r.database == target.db.label())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_line_of_an_id_wins_and_bad_lines_are_skipped() {
        let dir = crate::testutil::TempDir::new("deploys");
        let ctx = crate::testutil::ctx(
            dir.path(),
            crate::workspace::Global {
                env: Some("staging".into()),
                ..Default::default()
            },
        );
        let target = ctx.target().unwrap();
        let mut r = Record::new(&target, "app-staging", Some("v1".into()));
        r.save(&ctx.project).unwrap();
        let other = Record::new(&target, "app-staging", None);
        let mut other = other;
        other.id.push('x');
        other.save(&ctx.project).unwrap();
        r.outcome = Outcome::Deployed;
        r.new_version = Some("v2".into());
        r.migrations_applied = vec!["0002_b.sql".into()];
        r.finished_at = Some(r.started_at + 3);
        r.save(&ctx.project).unwrap();
        let mut text = std::fs::read_to_string(path(&ctx.project)).unwrap();
        text.push_str("{\"not\": \"a record\"}\n");
        std::fs::write(path(&ctx.project), text).unwrap();
        let all = of(&ctx.project, &target);
        assert_eq!(all.len(), 2);
        assert_eq!(all[0], r);
        assert_eq!(all[1].outcome, Outcome::Started);
    }
}
