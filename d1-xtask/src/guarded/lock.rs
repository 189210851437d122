//! The lock against concurrent runs: one row in the xtask's lock table, taken before a
//! command changes a database and released after, on success and on failure.

use crate::d1::{Database, LockRow, State};
use crate::exit::refused;
use crate::workspace::target::Target;
use crate::{time, ui, workspace::Ctx};

/// Our hold on the lock.
pub(crate) struct Held {
    pub(crate) token: String,
    /// When we took it, by the database's clock (`i64::MIN` if the read did not show it:
    /// then no other row is ever taken for one a restore brought back).
    pub(crate) acquired_at: i64,
    /// The token of a lock row a restore brought back (the row of whoever held the lock
    /// when the restored state was captured), released with ours.
    pub(crate) brought_back: Option<String>,
    /// Set when the release already rode in a request that succeeded.
    pub(crate) released: bool,
}

impl Held {
    /// The lock rows the release deletes: ours, and one a restore brought back.
    pub(crate) fn tokens(&self) -> Vec<String> {
        let mut t = vec![self.token.clone()];
        t.extend(
            self.brought_back
                .iter()
                .filter(|b| **b != self.token)
                .cloned(),
        );
        t
    }

    /// After a restore: a lock row in the restored state that is not ours and was taken
    /// before ours (both times by the database's one clock) can only have come back with
    /// the restore (nobody else can take the lock while we hold it): it goes with our
    /// release, by its token. A row taken after ours belongs to a run that took the lock
    /// once the restore had removed ours, and is left alone.
    pub(crate) fn note_restored(&mut self, restored: Option<&LockRow>) {
        self.brought_back = restored
            .filter(|row| row.token != self.token && row.acquired_at < self.acquired_at)
            .map(|row| row.token.clone());
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .unwrap_or_else(|| "unknown-host".into())
}

pub(crate) fn new_row(command: &str) -> LockRow {
    let now = time::unix_now();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    LockRow {
        token: format!("{:x}-{:x}", nanos, std::process::id()),
        holder: std::env::var("USER")
            .or_else(|_| std::env::var("USERNAME"))
            .unwrap_or_else(|_| "unknown".into()),
        host: host_name(),
        pid: i64::from(std::process::id()),
        command: command.to_string(),
        acquired_at: now,
        age_secs: 0,
    }
}

/// "db-migrate by alice on ci-7 (pid 4242) since 2026-11-22 01:02:03 UTC, 5 s ago"
pub(crate) fn describe(row: &LockRow) -> String {
    format!(
        "{} by {} on {} (pid {}) since {} UTC, {} s ago",
        row.command,
        row.holder,
        row.host,
        row.pid,
        time::format_utc(row.acquired_at),
        row.age_secs.max(0)
    )
}

/// Why a lock may be broken with `--force-unlock`: older than the stated age, by the
/// database's clock.
pub(crate) fn stale_reason(row: &LockRow, stale_after: u64) -> Option<String> {
    if row.age_secs > stale_after as i64 {
        return Some(format!(
            "held for {} s by the database's clock, more than lock_stale_after_secs ({stale_after} s)",
            row.age_secs
        ));
    }
    dead_holder(row)
}

/// Set when the lock's holder is a process of this host that no longer runs: such a lock
/// is broken without being asked (nobody can release it any more). Hosts are told apart
/// by name, as the lock row records them.
pub(crate) fn dead_holder(row: &LockRow) -> Option<String> {
    let proc_dir = std::path::Path::new("/proc");
    if row.host == host_name()
        && row.pid > 0
        && proc_dir.is_dir()
        && !proc_dir.join(row.pid.to_string()).exists()
    {
        return Some(format!(
            "process {} on this host is no longer running",
            row.pid
        ));
    }
    None
}

/// Takes the lock and reads the state under it; waits up to the lock timeout while
/// another run holds it; breaks the lock of a dead process of this host at once, and one
/// older than `lock_stale_after_secs` (by the database's clock) only with `--force-unlock`.
pub(crate) fn acquire(
    ctx: &Ctx,
    target: &Target,
    db: &mut dyn Database,
    command: &str,
) -> anyhow::Result<(Held, State)> {
    let row = new_row(command);
    let timeout = ctx
        .global
        .lock_timeout
        .unwrap_or(ctx.settings.lock_timeout_secs);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(timeout);
    let mut said = false;
    loop {
        let attempt = match crate::d1::ops::lock_and_state(db, &row) {
            Ok(attempt) => attempt,
            Err(e) => {
                // The request may have landed although its answer did not (a timeout):
                // take back our own row, and only ours.
                let _ = crate::d1::ops::break_lock(db, &row);
                return Err(e);
            }
        };
        let holder = match attempt {
            Ok(state) => {
                let acquired_at = state
                    .lock
                    .as_ref()
                    .filter(|l| l.token == row.token)
                    .map_or(i64::MIN, |l| l.acquired_at);
                let held = Held {
                    token: row.token.clone(),
                    acquired_at,
                    brought_back: None,
                    released: false,
                };
                return Ok((held, state));
            }
            Err(holder) => holder,
        };
        // An empty token: the holder released the lock between our attempt and our look
        // at it. Try again, but within the same deadline and after the same pause.
        let released_meanwhile = holder.token.is_empty();
        let stale = if released_meanwhile {
            None
        } else {
            stale_reason(&holder, ctx.settings.lock_stale_after_secs)
        };
        if !released_meanwhile {
            if let Some(why) = dead_holder(&holder) {
                crate::d1::ops::break_lock(db, &holder)?;
                ui::say(format!(
                    "broke the lock of a run that ended without releasing it ({why}): {}",
                    describe(&holder)
                ));
                continue;
            }
        }
        if ctx.global.force_unlock && !released_meanwhile {
            match &stale {
                Some(why) => {
                    crate::d1::ops::break_lock(db, &holder)?;
                    ui::say(format!("broke the stale lock ({why}): {}", describe(&holder)));
                    continue;
                }
                None => {
                    return Err(refused!(
                        "--force-unlock breaks only a stale lock; {} is locked by {}, which is not stale \
                         (it becomes so after {} s): wait for it; nothing was changed",
                        target.describe(),
                        describe(&holder),
                        ctx.settings.lock_stale_after_secs
                    ))
                }
            }
        }
        if std::time::Instant::now() >= deadline {
            let hint = match stale {
                Some(why) => format!("the lock is stale ({why}): break it with --force-unlock"),
                None => format!(
                    "wait and run again, or raise --lock-timeout (it becomes stale after {} s)",
                    ctx.settings.lock_stale_after_secs
                ),
            };
            return Err(refused!(
                "{} is locked by {}; {hint}; nothing was changed",
                target.describe(),
                describe(&holder)
            ));
        }
        if !said {
            ui::say(format!(
                "waiting up to {timeout} s for the lock held by {}",
                describe(&holder)
            ));
            said = true;
        }
        let pause = if target.env.is_remote() { 2_000 } else { 250 };
        std::thread::sleep(std::time::Duration::from_millis(pause));
    }
}
