//! The third transport, in process over the D1 emulator's store (D1's limits, authorizer
//! and statement splitter, Time Travel bookmarks) with no Node and no wrangler: the
//! guarded-change pipeline's unit tests run through it in milliseconds. Faults are set per
//! test; every request is written to the test's event log (`testutil::events`).

use std::path::Path;

use d1_emulator::store::{Db, Rules, Store};

use super::{BackupMade, Database, Reply, RestorePoint};
use crate::testutil::{event, TempDir};
use crate::workspace::target::Target;

pub(crate) struct Memory {
    target: Target,
    store: Store,
    _dir: TempDir,
    /// The next requests (`run` and `run_meta`) fail with D1's lock conflict although no
    /// lock row is there: another run released it between our attempt and our look.
    pub(crate) vanishing_conflicts: usize,
    /// The next `run` is refused with this text, nothing of it applied.
    pub(crate) refuse_next: Option<String>,
    /// The next `run` commits, but its reply is lost (a timeout, a dropped connection).
    pub(crate) lose_next_reply: bool,
}

const UUID: &str = "00000000-0000-4000-8000-0000000000aa";

impl Memory {
    pub(crate) fn new(target: &Target) -> Memory {
        let dir = TempDir::new("memory-d1");
        let mut store = Store::open(dir.path(), &[], &Rules::default()).expect("a fresh store");
        store
            .get_or_create(UUID, Some("memory"))
            .expect("a database");
        Memory {
            target: target.clone(),
            store,
            _dir: dir,
            vanishing_conflicts: 0,
            refuse_next: None,
            lose_next_reply: false,
        }
    }

    fn db(&mut self) -> &mut Db {
        self.store.get(UUID).expect("created in new")
    }

    /// One `/query` request with D1's rules: every statement in one transaction.
    fn request(&mut self, sql: &str) -> Reply {
        if self.vanishing_conflicts > 0 {
            self.vanishing_conflicts -= 1;
            // The holder made the tables; its row is gone by the time we look.
            let tables = super::meta_tables_sql(&self.target.db.migrations_table);
            self.db().execute(&tables, true).map_err(|e| e.0)?;
            let table = super::lock_table(&self.target.db.migrations_table);
            return Err(format!(
                "UNIQUE constraint failed: {table}.id: SQLITE_CONSTRAINT"
            ));
        }
        self.db()
            .execute(sql, true)
            .map(|done| Some(done.items))
            .map_err(|e| e.0)
    }
}

impl Database for Memory {
    fn target(&self) -> &Target {
        &self.target
    }

    fn location(&self) -> String {
        "in process".into()
    }

    fn run(&mut self, sql: &str, read_back: Option<&str>) -> anyhow::Result<Reply> {
        event("run");
        if let Some(text) = self.refuse_next.take() {
            return Ok(Err(text));
        }
        let with = match read_back {
            Some(r) => format!("{sql}\n{r}"),
            None => sql.to_string(),
        };
        let reply = self.request(&with);
        if std::mem::take(&mut self.lose_next_reply) && reply.is_ok() {
            return Ok(Err("fetch failed: the connection was reset".into()));
        }
        Ok(reply)
    }

    fn run_meta(&mut self, sql: &str) -> anyhow::Result<Reply> {
        event(if sql.contains("INSERT INTO") && sql.contains("_lock") {
            "lock"
        } else if sql.contains("DELETE FROM") && sql.contains("_lock") {
            "unlock"
        } else {
            "read"
        });
        Ok(self.request(sql))
    }

    fn command_for(&self, sql: &str, _read_back: Option<&str>, _index: usize) -> Vec<String> {
        vec!["(in process)".into(), sql.to_string()]
    }

    fn query(&mut self, sql: &str) -> anyhow::Result<Vec<serde_json::Value>> {
        event("query");
        let items = self
            .db()
            .execute(sql, true)
            .map_err(|e| anyhow::anyhow!(e.0))?
            .items;
        Ok(super::result_rows(items.last()))
    }

    fn restore_point(&mut self, _scratch: &Path) -> anyhow::Result<RestorePoint> {
        event("restore point");
        Ok(RestorePoint::Bookmark(
            self.db().current_bookmark().id.clone(),
        ))
    }

    fn return_to(&mut self, point: &RestorePoint) -> anyhow::Result<Option<String>> {
        event("return");
        let RestorePoint::Bookmark(b) = point else {
            anyhow::bail!("the in-process database has bookmarks only");
        };
        self.db()
            .restore(b)
            .map(Some)
            .map_err(|e| anyhow::anyhow!(e.0))
    }

    fn backup(&mut self, scratch: &Path) -> anyhow::Result<BackupMade> {
        let bookmark = self.db().current_bookmark().id.clone();
        let sql = self
            .db()
            .dump(false, false, &[])
            .map_err(|e| anyhow::anyhow!(e.0))?;
        std::fs::write(scratch, sql)?;
        Ok(BackupMade::Export { bookmark })
    }

    fn wrangler_calls(&self) -> usize {
        0
    }
}
