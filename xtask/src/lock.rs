//! The lock against concurrent runs: one row in the xtask's lock table, taken before a
//! command changes a database and released after, on success and on failure.

use crate::d1::{Database, LockRow, State};
use crate::exit::refused;
use crate::target::Target;
use crate::{time, ui, Ctx};

/// Our hold on the lock.
pub(crate) struct Held {
    pub(crate) token: String,
    pub(crate) acquired_at: i64,
    /// Set when the release already rode in a request that succeeded.
    pub(crate) released: bool,
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

fn new_row(command: &str) -> LockRow {
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
        (time::unix_now() - row.acquired_at).max(0)
    )
}

/// Why a lock may be broken: older than the stated age, or held by a process of this
/// host that no longer runs.
pub(crate) fn stale_reason(row: &LockRow, stale_after: u64) -> Option<String> {
    let age = time::unix_now() - row.acquired_at;
    if age > stale_after as i64 {
        return Some(format!("older than {stale_after} s"));
    }
    let proc_dir = std::path::Path::new("/proc");
    if row.host == host_name() && proc_dir.is_dir() && !proc_dir.join(row.pid.to_string()).exists()
    {
        return Some(format!(
            "process {} on this host is no longer running",
            row.pid
        ));
    }
    None
}

/// Takes the lock and reads the state under it; waits up to the lock timeout while
/// another run holds it; breaks a stale lock only with `--force-unlock`.
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
                let held = Held {
                    token: row.token.clone(),
                    acquired_at: row.acquired_at,
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
