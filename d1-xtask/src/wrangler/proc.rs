//! Child processes, each in a process group of its own, so that a timeout or a Ctrl-C
//! stops all of it: `node_modules/.bin/wrangler` is a launcher that starts the real CLI as
//! a child, which may start workerd; killing the launcher alone would leave them running
//! and holding the pipes the xtask reads.
//!
//! Stopping a group: SIGTERM to every member, a short grace, then SIGKILL. Ctrl-C and
//! SIGTERM to the xtask are caught (`install_signal_handlers`): the child group running
//! at that moment is stopped, and the command's cleanup (releasing the lock, the test
//! data) still runs, then the xtask exits 130.
//!
//! A SIGKILL cannot be caught: for that, every group is also registered with a guardian,
//! a second copy of the xtask (`xtask __guard`, started on the first child) that reads
//! group ids from a pipe. When the xtask dies, however it dies, the pipe closes and the
//! guardian stops every group still registered: no wrangler and no `--verify` command
//! goes on working with nobody watching.

use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long a stopped group gets between SIGTERM and SIGKILL.
pub(crate) const GRACE: Duration = Duration::from_secs(2);

/// Ctrl-C / SIGTERM received so far.
static INTERRUPTS: AtomicUsize = AtomicUsize::new(0);

#[cfg(unix)]
extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTS.fetch_add(1, Ordering::SeqCst);
}

/// Catches SIGINT and SIGTERM while a command runs: they stop the running child group
/// instead of the xtask, which then cleans up and exits 130. The host's own handlers come
/// back when the returned guard is dropped (at the end of `run`): nothing process-wide
/// outlives a command.
pub(crate) fn install_signal_handlers() -> SignalGuard {
    INTERRUPTS.store(0, Ordering::SeqCst);
    #[cfg(unix)]
    // SAFETY: the handler only touches an atomic, which is async-signal-safe.
    unsafe {
        let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        SignalGuard {
            int: libc::signal(libc::SIGINT, handler),
            term: libc::signal(libc::SIGTERM, handler),
        }
    }
    #[cfg(not(unix))]
    SignalGuard {}
}

/// The handlers that were in place before a command ran, put back on drop.
pub(crate) struct SignalGuard {
    #[cfg(unix)]
    int: libc::sighandler_t,
    #[cfg(unix)]
    term: libc::sighandler_t,
}

impl Drop for SignalGuard {
    fn drop(&mut self) {
        #[cfg(unix)]
        // SAFETY: restores handlers that signal(2) returned; no memory involved.
        unsafe {
            libc::signal(libc::SIGINT, self.int);
            libc::signal(libc::SIGTERM, self.term);
        }
    }
}

/// Whether Ctrl-C or SIGTERM arrived since the xtask started.
pub(crate) fn interrupted() -> bool {
    INTERRUPTS.load(Ordering::SeqCst) > 0
}

/// Puts the command's process in a new process group (its own pid is the group id).
pub(crate) fn own_group(cmd: &mut Command) -> &mut Command {
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
    }
    cmd
}

/// Sends `signal` to every process of the child's group.
#[cfg(unix)]
fn signal_group(child: &Child, signal: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) with a negative pid signals a process group; no memory involved.
        unsafe {
            libc::kill(-pid, signal);
        }
    }
}

/// Stops the child's whole group: SIGTERM, up to `GRACE` for it to end, then SIGKILL.
pub(crate) fn stop_group(child: &mut Child) {
    #[cfg(unix)]
    {
        signal_group(child, libc::SIGTERM);
        let until = Instant::now() + GRACE;
        while Instant::now() < until {
            if matches!(child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Members that outlived their leader, or ignored SIGTERM.
        signal_group(child, libc::SIGKILL);
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// How a child ended.
#[derive(Debug)]
pub(crate) enum Ended {
    Exited(ExitStatus),
    /// Past its deadline: the group was stopped.
    TimedOut,
    /// Ctrl-C or SIGTERM reached the xtask while it ran: the group was stopped.
    Interrupted,
}

/// The guardian's end of the pipe, once started (`None` inside: it could not start).
static GUARDIAN: std::sync::Mutex<Option<Option<std::process::ChildStdin>>> =
    std::sync::Mutex::new(None);

/// Tells the guardian that group `pgid` exists (`+`) or is over (`-`). Without a guardian
/// (it could not start) the xtask goes on: Ctrl-C and timeouts still stop groups.
fn guardian_note(sign: char, pgid: u32) {
    use std::io::Write;
    let Ok(mut slot) = GUARDIAN.lock() else {
        return;
    };
    if slot.is_none() {
        *slot = Some(start_guardian());
    }
    if let Some(Some(pipe)) = slot.as_mut() {
        let _ = writeln!(pipe, "{sign}{pgid}");
    }
}

fn start_guardian() -> Option<std::process::ChildStdin> {
    // Under `cargo test` the current executable is the test harness, not the xtask.
    if cfg!(test) {
        return None;
    }
    let exe = std::env::current_exe().ok()?;
    let mut cmd = Command::new(exe);
    cmd.arg(GUARD_ARG)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // A group of its own: a Ctrl-C at the terminal reaches the xtask, not the guardian.
    own_group(&mut cmd);
    let mut child = cmd.spawn().ok()?;
    let pipe = child.stdin.take();
    // Never waited for: it outlives the xtask by design, and init reaps it.
    std::mem::forget(child);
    pipe
}

/// The hidden first argument that makes the xtask a guardian.
pub(crate) const GUARD_ARG: &str = "__guard";

/// The guardian's main loop: `+<pgid>` and `-<pgid>` lines until the pipe closes, then
/// SIGTERM to every group still registered, a grace, SIGKILL.
pub(crate) fn guardian_main() -> std::process::ExitCode {
    use std::io::BufRead;
    #[cfg(unix)]
    // SAFETY: ignoring signals touches no memory.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
    }
    let mut groups: Vec<i32> = Vec::new();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let (sign, n) = line.split_at(line.len().min(1));
        let Ok(pgid) = n.parse::<i32>() else { continue };
        match sign {
            "+" => groups.push(pgid),
            "-" => groups.retain(|g| *g != pgid),
            _ => {}
        }
    }
    #[cfg(unix)]
    if !groups.is_empty() {
        for g in &groups {
            // SAFETY: kill(2) on a process group; no memory involved.
            unsafe {
                libc::kill(-g, libc::SIGTERM);
            }
        }
        std::thread::sleep(GRACE);
        for g in &groups {
            // SAFETY: as above.
            unsafe {
                libc::kill(-g, libc::SIGKILL);
            }
        }
    }
    std::process::ExitCode::SUCCESS
}

/// Waits for `child`, stopping its group at `deadline` or on Ctrl-C / SIGTERM. After the
/// leader exits, stragglers of its group (a workerd the CLI left) are stopped too.
pub(crate) fn wait(child: &mut Child, deadline: Option<Instant>) -> std::io::Result<Ended> {
    guardian_note('+', child.id());
    let ended = wait_inner(child, deadline);
    guardian_note('-', child.id());
    ended
}

fn wait_inner(child: &mut Child, deadline: Option<Instant>) -> std::io::Result<Ended> {
    let seen = INTERRUPTS.load(Ordering::SeqCst);
    loop {
        if let Some(status) = child.try_wait()? {
            #[cfg(unix)]
            signal_group(child, libc::SIGKILL);
            return Ok(Ended::Exited(status));
        }
        if INTERRUPTS.load(Ordering::SeqCst) > seen {
            stop_group(child);
            return Ok(Ended::Interrupted);
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            stop_group(child);
            return Ok(Ended::TimedOut);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What a captured run printed, and how it ended.
pub(crate) struct Captured {
    pub(crate) ended: Ended,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

/// Runs `cmd` in its own group with stdin empty and both outputs captured (drained on
/// threads, so a chatty child never blocks on a full pipe).
pub(crate) fn run_captured(
    cmd: &mut Command,
    timeout: Option<Duration>,
) -> std::io::Result<Captured> {
    own_group(cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn()?;
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let ended = wait(&mut child, timeout.map(|t| Instant::now() + t))?;
    let text = |h: std::thread::JoinHandle<Vec<u8>>| {
        String::from_utf8_lossy(&h.join().unwrap_or_default()).into_owned()
    };
    Ok(Captured {
        ended,
        stdout: text(out),
        stderr: text(err),
    })
}

/// Reads a pipe to its end on a thread of its own.
fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut buf);
        }
        buf
    })
}

/// Runs `cmd` in its own group with the xtask's stdout and stderr (a command the user
/// gave: `--verify`, `db-seed -- <command>`, `npm ci`); Ctrl-C stops its group.
pub(crate) fn run_inherited(cmd: &mut Command) -> std::io::Result<Ended> {
    let mut child = own_group(cmd).stdin(Stdio::null()).spawn()?;
    wait(&mut child, None)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    /// Whether a process runs (a zombie waiting for a parent that does not reap does not).
    fn alive(pid: &str) -> bool {
        std::fs::read_to_string(std::path::Path::new("/proc").join(pid).join("stat")).is_ok_and(
            |stat| {
                stat.rsplit_once(')')
                    .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
            },
        )
    }

    /// The current SIGTERM handler (read by setting one and putting it straight back).
    fn term_handler() -> libc::sighandler_t {
        // SAFETY: signal(2) twice, restoring what it returned; no memory involved.
        unsafe {
            let h = libc::signal(libc::SIGTERM, libc::SIG_DFL);
            libc::signal(libc::SIGTERM, h);
            h
        }
    }

    #[test]
    fn signal_handlers_last_only_while_a_command_runs() {
        let before = term_handler();
        {
            let _guard = install_signal_handlers();
            assert_ne!(term_handler(), before, "the xtask's handler while it runs");
        }
        assert_eq!(term_handler(), before, "the host's handler afterwards");
    }

    #[test]
    fn a_timeout_stops_the_whole_group_within_the_grace() {
        // A launcher that starts a grandchild and waits, as node_modules/.bin/wrangler does.
        let dir = std::env::temp_dir().join(format!("xtask-proc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pidfile = dir.join("grandchild.pid");
        let script = format!("sleep 60 & echo $! > {}; wait", pidfile.display());
        let started = Instant::now();
        let out = run_captured(
            Command::new("sh").args(["-c", &script]),
            Some(Duration::from_millis(300)),
        )
        .unwrap();
        assert!(matches!(out.ended, Ended::TimedOut));
        assert!(
            started.elapsed() < Duration::from_millis(300) + GRACE + Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        let grandchild = std::fs::read_to_string(&pidfile).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        assert!(!alive(grandchild.trim()), "the grandchild survived");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn output_and_status_come_back() {
        let out = run_captured(
            Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]),
            Some(Duration::from_secs(10)),
        )
        .unwrap();
        assert!(matches!(out.ended, Ended::Exited(s) if s.code() == Some(3)));
        assert_eq!(
            (out.stdout.as_str(), out.stderr.as_str()),
            ("out\n", "err\n")
        );
    }
}
