//! The one guarded-change path. Every command that changes a database (migrate, repair,
//! reset, seed, restore) hands its plan and its action to `run`, which owns the sequence
//! and its wording:
//!
//! 1. refusals that need no database: `--no-backup` on a protected environment, a
//!    protected environment that cannot be confirmed (no terminal, no `--yes`/`--confirm`);
//! 2. the confirmation, asked *before* the lock is taken (a prompt never holds the lock):
//!    when a prompt is needed, the plan is made from an unlocked read and shown;
//! 3. the lock, taken with the state read in one step; the plan made again under it (and
//!    refused if it differs from the one confirmed);
//! 4. the restore point, captured under the lock (so that no other run's change can fall
//!    between it and ours, and an undo never takes someone else's work away), and only
//!    if something is to be done. It holds our own lock row: whoever returns to it later
//!    recognises that row by its token and releases it with their own;
//! 5. the action, which reads back what it did;
//! 6. the release of the lock on every path (error, Ctrl-C: the child group is stopped and
//!    the release still runs): our row and a row a restore brought back, by token only;
//!    then the undo hint.

use crate::d1::{Database, State};
use crate::exit::{failed, refused};
use crate::guarded::backups::{self, Captured};
use crate::guarded::confirm::{self, Confirm};
use crate::guarded::lock::{self, Held};
use crate::workspace::target::Target;
use crate::{ui, workspace::Ctx, wrangler::proc};

/// What the pipeline needs to know besides the change itself.
pub(crate) struct Guard<'a> {
    /// The command, for the lock row and the backup index (`db-migrate`).
    pub(crate) command: &'static str,
    pub(crate) confirm: Confirm<'a>,
    /// Capture a restore point first (`false` with `--no-backup`).
    pub(crate) restore_point: bool,
    /// For a restore from the backup index: the entry it restores, recorded with the
    /// point so that `db-restore --last` can tell a repeat.
    pub(crate) restoring: Option<String>,
}

/// What an action works with.
pub(crate) struct Act<'a> {
    pub(crate) target: &'a Target,
    pub(crate) db: &'a mut dyn Database,
    /// The state read under the lock.
    pub(crate) before: State,
    pub(crate) held: &'a mut Held,
    pub(crate) captured: Option<&'a Captured>,
}

impl Act<'_> {
    /// Runs `sql` and the lock's release as one request (one transaction) and reads the
    /// state back. The release doubles as the commit marker: when wrangler reports a
    /// failure but our lock row is gone, the request committed and only its reply was lost
    /// (said so, and taken as done). `Ok(Err(text))`: D1 refused the request, nothing of it
    /// is in the database and the lock is still ours.
    pub(crate) fn commit(&mut self, sql: &str) -> anyhow::Result<Result<State, String>> {
        Ok(self.commit_reading(sql, None)?.map(|(state, _)| state))
    }

    /// `commit`, with the rows of `select` (one statement) read after the change, in the
    /// same request where the transport allows.
    pub(crate) fn commit_reading(
        &mut self,
        sql: &str,
        select: Option<&str>,
    ) -> anyhow::Result<Result<(State, Vec<serde_json::Value>), String>> {
        let release =
            crate::d1::lock_release_sql(&self.target.db.migrations_table, &self.held.tokens());
        let sql = format!("{sql}\n{release}\n");
        match crate::d1::ops::execute_and_query(self.db, &sql, select)? {
            Ok(after) => {
                self.held.released = true;
                Ok(Ok(after))
            }
            Err(e) => {
                let after = self.db.state()?;
                if after
                    .lock
                    .as_ref()
                    .is_some_and(|l| l.token == self.held.token)
                {
                    return Ok(Err(e));
                }
                self.held.released = true;
                ui::say(format!(
                    "note: wrangler reported a failure ({}), but the lock's release, sent in the same \
                     request, is in the database: the request committed and only its reply was lost",
                    e.lines().next().unwrap_or_default().trim()
                ));
                let rows = match select {
                    Some(s) => self.db.query(s)?,
                    None => Vec::new(),
                };
                Ok(Ok((after, rows)))
            }
        }
    }

    /// Replaces the database with `file` (a template a reset made, whose request released
    /// its lock): as a commit with its release, the lock row goes with the old content; a
    /// row of ours that were somehow in the file goes too. The state is read back.
    pub(crate) fn replace_with(&mut self, file: &std::path::Path) -> anyhow::Result<State> {
        self.db
            .return_to(&crate::d1::RestorePoint::Snapshot(file.to_path_buf()))?;
        self.held.released = true;
        let release =
            crate::d1::lock_release_sql(&self.target.db.migrations_table, &self.held.tokens());
        if let Err(e) = self.db.run_meta(&release)? {
            ui::say(format!(
                "warning: clearing the lock after the template failed: {e}"
            ));
        }
        self.db.state()
    }
}

/// A change, as the pipeline drives it.
pub(crate) trait Change {
    /// What the change will do to a database in `state`, in words for the log and the
    /// confirmation; `None` when there is nothing to do. An error refuses the change
    /// (drift, pending migrations, a bad seed file): nothing has been done yet.
    fn plan(&mut self, state: &State) -> anyhow::Result<Option<String>>;
    /// Under the lock, when there is nothing to do (record checksums first seen, say so).
    fn nothing_to_do(&mut self, _act: &mut Act<'_>) -> anyhow::Result<()> {
        Ok(())
    }
    /// The change itself. It reads back what it did; an error says what the database
    /// holds (the pipeline adds how to return to the restore point).
    fn act(&mut self, act: &mut Act<'_>) -> anyhow::Result<()>;
    /// After a Time Travel restore: D1's own bookmark of the moment before it, the exact
    /// way back (it replaces the restore point's bookmark in the undo and the index).
    fn previous_bookmark(&self) -> Option<String> {
        None
    }
    /// Under the lock, once the plan stands and before the restore point: what the change
    /// must know or record before anything is touched (`deploy`: the live Worker version
    /// and its record). An error changes nothing.
    fn prepare(&mut self, _db: &mut dyn Database) -> anyhow::Result<()> {
        Ok(())
    }
    /// How to undo the change, said after it (and added to its error): by default the way
    /// back to the restore point.
    fn undo_line(&self, captured: Option<&Captured>) -> String {
        captured.map_or(String::new(), Captured::undo_line)
    }
}

/// What the pipeline did, for the command's report.
pub(crate) struct Done {
    /// Something was changed (else there was nothing to do).
    pub(crate) changed: bool,
    pub(crate) captured: Option<Captured>,
}

/// Runs `change` on `db` through the whole guarded sequence (see the module's docs).
pub(crate) fn run(
    ctx: &Ctx,
    target: &Target,
    db: &mut dyn Database,
    guard: Guard<'_>,
    change: &mut dyn Change,
) -> anyhow::Result<Done> {
    if !guard.restore_point && target.protected {
        return Err(refused!(
            "--no-backup is not allowed on {}, a protected environment: a restore point is always taken there; \
             nothing was changed",
            target.env
        ));
    }
    let action = guard.command;
    confirm::precheck(target, guard.confirm, ctx.global.yes, action)?;
    // Everything that needs no database is checked before anything is written.
    db.ready()?;
    // A prompt never holds the lock: plan from an unlocked read, ask, then lock.
    let confirmed = if confirm::needs_prompt(target, guard.confirm, ctx.global.yes) {
        let state = db.state()?;
        match change.plan(&state)? {
            None => None,
            Some(plan) => {
                confirm::ask(target, guard.confirm, &plan)?;
                Some(plan)
            }
        }
    } else {
        None
    };
    if proc::interrupted() {
        return Err(failed!("interrupted before anything was changed"));
    }
    let (mut held, before) = lock::acquire(ctx, target, db, action)?;
    let result = locked(
        ctx, target, db, &guard, change, before, &mut held, confirmed,
    );
    let released = if held.released {
        Ok(())
    } else {
        crate::d1::ops::unlock(db, &held.tokens())
    };
    match (result, released) {
        (Ok(done), Ok(())) => {
            if let Some(c) = done.captured.as_ref().filter(|_| done.changed) {
                let undo = change.undo_line(Some(c));
                if !undo.trim().is_empty() {
                    ui::say(undo.trim_start());
                }
            }
            Ok(done)
        }
        (Ok(_), Err(e)) => Err(failed!(
            "the change is done, but releasing the lock failed: {e:#}; the next run waits for it: break it \
             with `--force-unlock` once it is stale"
        )),
        (Err(first), Ok(())) => Err(first),
        (Err(first), Err(e)) => Err(failed!("{first:#}\nreleasing the lock failed too: {e:#}")),
    }
}

/// Everything under the lock: plan again, record the restore point, act.
#[allow(clippy::too_many_arguments)]
fn locked(
    ctx: &Ctx,
    target: &Target,
    db: &mut dyn Database,
    guard: &Guard<'_>,
    change: &mut dyn Change,
    before: State,
    held: &mut Held,
    confirmed: Option<String>,
) -> anyhow::Result<Done> {
    let plan = change.plan(&before)?;
    let Some(plan) = plan else {
        let mut act = Act {
            target,
            db,
            before,
            held,
            captured: None,
        };
        change.nothing_to_do(&mut act)?;
        return Ok(Done {
            changed: false,
            captured: None,
        });
    };
    if confirmed.as_ref().is_some_and(|c| *c != plan) {
        return Err(refused!(
            "{} changed while you confirmed: it was \"{}\", it is now \"{plan}\"; nothing was changed, run again",
            target.describe(),
            confirmed.unwrap_or_default()
        ));
    }
    if confirmed.is_none() {
        confirm::confirmed_by_flag(target, guard.confirm, &plan);
    }
    ui::say(format!("{}: {plan}", target.describe()));
    change.prepare(db)?;
    let taken = if guard.restore_point {
        Some(backups::take(ctx, db)?)
    } else {
        None
    };
    let reason = format!("before {}", guard.command);
    let captured = match taken {
        Some(t) => Some(backups::record_point(
            ctx,
            target,
            t,
            &before,
            &reason,
            guard.restoring.as_deref(),
        )?),
        None => None,
    };
    if let Some(c) = &captured {
        ui::known("restore_point", c.json());
    }
    let mut act = Act {
        target,
        db,
        before,
        held,
        captured: captured.as_ref(),
    };
    let acted = change.act(&mut act);
    let undo = change.undo_line(captured.as_ref());
    match acted {
        Ok(()) => {
            let mut captured = captured;
            if let Some(c) = captured.as_mut() {
                let previous = change.previous_bookmark();
                if let Some(p) = &previous {
                    c.entry.bookmark = Some(p.clone());
                    c.point = crate::d1::RestorePoint::Bookmark(p.clone());
                    c.undo = backups::restore_command(ctx, target, &format!("--bookmark {p}"));
                    c.undo_wrangler = Some(crate::d1::ops::undo_command(target, &c.point));
                }
                backups::record_completed(&ctx.project, &c.entry.id, previous.as_deref())?;
            }
            Ok(Done {
                changed: true,
                captured,
            })
        }
        // The action's own status (a refusal stays a refusal), with the way back added.
        Err(e) => Err(crate::exit::stop(
            crate::exit::status_of(&e),
            format!("{e:#}{undo}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    //! The pipeline on the in-process D1 (`d1::memory`): no Node, no wrangler.
    use super::*;
    use crate::d1::memory::Memory;
    use crate::exit::Exit;
    use crate::testutil::{answer_prompts, ctx, events, TempDir};
    use crate::workspace::Global;

    /// Inserts one row of a table it creates; `fail` makes the action fail before it sends.
    struct Insert {
        fail: bool,
        /// The lock row as the action saw it, under the lock.
        seen_lock: Option<crate::d1::LockRow>,
    }

    impl Change for Insert {
        fn plan(&mut self, _state: &State) -> anyhow::Result<Option<String>> {
            Ok(Some("insert one row".into()))
        }
        fn act(&mut self, act: &mut Act<'_>) -> anyhow::Result<()> {
            crate::testutil::event("act");
            self.seen_lock = act.before.lock.clone();
            if self.fail {
                anyhow::bail!("the action broke before sending anything");
            }
            match act.commit("CREATE TABLE IF NOT EXISTS t(x); INSERT INTO t VALUES (1);")? {
                Ok(_) => Ok(()),
                Err(e) => Err(failed!("refused: {e}")),
            }
        }
    }

    fn insert() -> Insert {
        Insert {
            fail: false,
            seen_lock: None,
        }
    }

    fn setup(env: Option<&str>, global: Global) -> (TempDir, Ctx, Target) {
        let dir = TempDir::new("pipeline");
        let ctx = ctx(
            dir.path(),
            Global {
                env: env.map(String::from),
                ..global
            },
        );
        let target = ctx.target().unwrap();
        (dir, ctx, target)
    }

    fn guard(confirm: Confirm<'_>) -> Guard<'_> {
        Guard {
            command: "db-test",
            confirm,
            restore_point: true,
            restoring: None,
        }
    }

    fn rows(db: &mut Memory) -> usize {
        db.query("SELECT x FROM t").map_or(0, |r| r.len())
    }

    fn position(events: &[String], what: &str) -> usize {
        events
            .iter()
            .position(|e| e == what)
            .unwrap_or_else(|| panic!("no {what} in {events:?}"))
    }

    #[test]
    fn a_prompt_comes_before_the_restore_point_and_the_lock() {
        let (_dir, ctx, target) = setup(Some("production"), Global::default());
        assert!(target.protected);
        let mut db = Memory::new(&target);
        events();
        answer_prompts("y");
        let done = run(&ctx, &target, &mut db, guard(Confirm::Yes), &mut insert()).unwrap();
        assert!(done.changed);
        let log = events();
        let prompt = position(&log, "prompt");
        assert!(prompt < position(&log, "restore point"), "{log:?}");
        assert!(prompt < position(&log, "lock"), "{log:?}");
        // The restore point is taken under the lock: no other run's change between them.
        assert!(
            position(&log, "lock") < position(&log, "restore point"),
            "{log:?}"
        );
        assert!(position(&log, "lock") < position(&log, "act"), "{log:?}");
        assert_eq!(rows(&mut db), 1);
        assert_eq!(db.state().unwrap().lock, None);
    }

    #[test]
    fn no_at_the_prompt_takes_no_lock_and_changes_nothing() {
        let (_dir, ctx, target) = setup(Some("production"), Global::default());
        let mut db = Memory::new(&target);
        events();
        answer_prompts("n");
        let e = run(&ctx, &target, &mut db, guard(Confirm::Yes), &mut insert())
            .err()
            .unwrap();
        assert_eq!(crate::exit::status_of(&e), Exit::Refused, "{e:#}");
        let log = events();
        assert!(
            !log.iter().any(|e| e == "lock" || e == "run" || e == "act"),
            "{log:?}"
        );
        assert_eq!(rows(&mut db), 0);
    }

    #[test]
    fn the_lock_row_names_this_host_and_process_and_is_released() {
        let (_dir, ctx, target) = setup(None, Global::default());
        let mut db = Memory::new(&target);
        let mut change = insert();
        run(&ctx, &target, &mut db, guard(Confirm::Yes), &mut change).unwrap();
        let row = change.seen_lock.expect("the action runs under the lock");
        assert!(
            !row.host.is_empty() && row.host != "unknown-host",
            "{row:?}"
        );
        assert_eq!(row.pid, i64::from(std::process::id()));
        assert_eq!(row.command, "db-test");
        // A process of this host that is gone makes the row stale: the check can match it.
        let dead = crate::d1::LockRow {
            pid: i64::from(u32::MAX >> 2),
            ..row
        };
        assert!(crate::guarded::lock::stale_reason(&dead, 900).is_some());
        assert_eq!(db.state().unwrap().lock, None);
    }

    /// What a Time Travel restore does to the lock table: our row goes; the restored state
    /// holds the row of whoever captured it (taken long before ours), or none, and then
    /// another run may take the lock before our release.
    struct RestoreLike {
        other: &'static str,
        other_age: i64,
    }

    impl Change for RestoreLike {
        fn plan(&mut self, _state: &State) -> anyhow::Result<Option<String>> {
            Ok(Some("restore".into()))
        }
        fn act(&mut self, act: &mut Act<'_>) -> anyhow::Result<()> {
            let sql = format!(
                "DELETE FROM d1_migrations_lock; INSERT INTO d1_migrations_lock \
                 (id, token, holder, host, pid, command, acquired_at) VALUES \
                 (1, '{}', 'ci', 'runner-9', 4242, 'db-migrate', unixepoch() - {});",
                self.other, self.other_age
            );
            act.db.run_meta(&sql)?.map_err(|e| failed!("{e}"))?;
            let after = act.db.state()?;
            act.held.note_restored(after.lock.as_ref());
            Ok(())
        }
    }

    #[test]
    fn the_release_deletes_a_row_the_restore_brought_back_and_never_a_newer_one() {
        let (_dir, ctx, target) = setup(Some("staging"), Global::default());
        // Brought back: taken an hour before ours, by the database's clock.
        let mut db = Memory::new(&target);
        let mut change = RestoreLike {
            other: "captured",
            other_age: 3600,
        };
        run(&ctx, &target, &mut db, guard(Confirm::Yes), &mut change).unwrap();
        assert_eq!(db.state().unwrap().lock, None);
        // Taken after ours began (in the same second or later): another run's, whatever
        // its machine's clock says. It stays.
        let mut db = Memory::new(&target);
        let mut change = RestoreLike {
            other: "another-run",
            other_age: 0,
        };
        run(&ctx, &target, &mut db, guard(Confirm::Yes), &mut change).unwrap();
        assert_eq!(
            db.state().unwrap().lock.map(|l| l.token).as_deref(),
            Some("another-run")
        );
    }

    #[test]
    fn a_lock_released_meanwhile_is_tried_again_after_a_pause() {
        let (_dir, ctx, target) = setup(None, Global::default());
        let mut db = Memory::new(&target);
        db.vanishing_conflicts = 2;
        events();
        let started = std::time::Instant::now();
        run(&ctx, &target, &mut db, guard(Confirm::Yes), &mut insert()).unwrap();
        let attempts = events().iter().filter(|e| *e == "lock").count();
        assert_eq!(attempts, 3);
        // Two pauses of 250 ms between the three attempts: no busy loop.
        assert!(started.elapsed() >= std::time::Duration::from_millis(450));
        assert_eq!(rows(&mut db), 1);
    }

    #[test]
    fn a_lock_that_keeps_vanishing_gives_up_at_the_deadline() {
        let (_dir, ctx, target) = setup(
            None,
            Global {
                lock_timeout: Some(1),
                ..Global::default()
            },
        );
        let mut db = Memory::new(&target);
        db.vanishing_conflicts = usize::MAX;
        events();
        let e = run(&ctx, &target, &mut db, guard(Confirm::Yes), &mut insert())
            .err()
            .unwrap();
        assert_eq!(crate::exit::status_of(&e), Exit::Refused, "{e:#}");
        assert!(format!("{e:#}").contains("nothing was changed"), "{e:#}");
        // One second at 250 ms a pause: a handful of attempts, not a spin.
        let attempts = events().iter().filter(|e| *e == "lock").count();
        assert!((2..=7).contains(&attempts), "{attempts} attempts");
        assert_eq!(rows(&mut db), 0);
    }

    #[test]
    fn a_refused_request_keeps_nothing_releases_the_lock_and_says_how_to_undo() {
        let (_dir, ctx, target) = setup(Some("staging"), Global::default());
        let mut db = Memory::new(&target);
        db.refuse_next = Some("too many SQL variables: SQLITE_ERROR".into());
        let e = run(&ctx, &target, &mut db, guard(Confirm::Yes), &mut insert())
            .err()
            .unwrap();
        let text = format!("{e:#}");
        assert!(text.contains("too many SQL variables"), "{text}");
        assert!(text.contains("to return to the state before"), "{text}");
        assert_eq!(db.state().unwrap().lock, None);
        assert_eq!(rows(&mut db), 0);
    }

    #[test]
    fn a_lost_reply_after_the_commit_is_read_back_and_taken_as_done() {
        let (_dir, ctx, target) = setup(Some("staging"), Global::default());
        let mut db = Memory::new(&target);
        db.lose_next_reply = true;
        events();
        let done = run(&ctx, &target, &mut db, guard(Confirm::Yes), &mut insert()).unwrap();
        assert!(done.changed);
        let log = events();
        assert!(position(&log, "run") < log.iter().rposition(|e| e == "read").unwrap());
        assert!(!log.contains(&"unlock".to_string()), "{log:?}");
        assert_eq!(rows(&mut db), 1);
        assert_eq!(db.state().unwrap().lock, None);
    }

    #[test]
    fn an_action_that_fails_before_sending_still_releases_the_lock() {
        let (_dir, ctx, target) = setup(None, Global::default());
        let mut db = Memory::new(&target);
        let mut change = Insert {
            fail: true,
            seen_lock: None,
        };
        let e = run(&ctx, &target, &mut db, guard(Confirm::Yes), &mut change)
            .err()
            .unwrap();
        assert!(format!("{e:#}").contains("broke before sending"));
        assert_eq!(db.state().unwrap().lock, None);
    }
}
