//! End-to-end: local commands while `wrangler dev` serves a Worker on the same local state.
//!
//! workerd opens the local D1 file with SQLite's own unix VFS, in WAL mode, and holds
//! POSIX locks on it (seen in /proc/locks), so the xtask's direct writes (lock rows, a
//! snapshot restored through SQLite's backup API) go through the same locking protocol as
//! workerd's. This test checks what that promises: the Worker sees every change, and the
//! file passes `PRAGMA integrity_check` afterwards.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{node_bin_dir, wrangler_bin, Workspace};

/// `wrangler dev` in its own process group, stopped whole when dropped.
struct Dev {
    child: Child,
    port: u16,
}

impl Drop for Dev {
    fn drop(&mut self) {
        let group = self.child.id() as i32;
        assert!(group > 1, "no process group to stop");
        let signal = |sig| unsafe { libc::kill(-group, sig) };
        signal(libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        signal(libc::SIGKILL);
        let _ = self.child.wait();
    }
}

/// Processes of a group that still run (zombies waiting to be reaped do not count).
fn running_in_group(group: i32) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter(|stat| {
            // pid (comm) state ppid pgrp ...
            let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
            let fields: Vec<&str> = after.split_whitespace().collect();
            fields.len() > 2 && fields[0] != "Z" && fields[2] == group.to_string()
        })
        .collect()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_dev(ws: &Workspace) -> Dev {
    let port = free_port();
    let log = std::fs::File::create(ws.dir.join("dev.log")).unwrap();
    let child = Command::new(wrangler_bin())
        .args(["dev", "--ip", "127.0.0.1", "--port", &port.to_string()])
        .args(["--inspector-port", &free_port().to_string()])
        .current_dir(&ws.dir)
        .env(
            "PATH",
            format!(
                "{}:{}",
                node_bin_dir().display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .env("WRANGLER_SEND_METRICS", "false")
        .env("CI", "true")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .process_group(0)
        .spawn()
        .unwrap();
    let dev = Dev { child, port };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let log = std::fs::read_to_string(ws.dir.join("dev.log")).unwrap_or_default();
        if log.contains("Ready on") {
            return dev;
        }
        assert!(
            Instant::now() < deadline,
            "wrangler dev did not start:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

impl Dev {
    /// The Worker's answer to `sql`: the rows as JSON text.
    fn query(&self, sql: &str) -> String {
        let encoded: String = sql
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect();
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        write!(
            s,
            "GET /?sql={encoded} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut reply = String::new();
        s.read_to_string(&mut reply).unwrap();
        let body = reply.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        body.to_string()
    }
}

fn integrity(ws: &Workspace) -> String {
    let conn = rusqlite::Connection::open(ws.local_file()).unwrap();
    conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn local_commands_run_while_wrangler_dev_serves_and_the_worker_sees_each_change() {
    let ws = Workspace::sample("dev-server");
    ws.write(
        "wrangler.jsonc",
        crate::support::CONFIG.replacen(
            "\"name\": \"e2e\",",
            "\"name\": \"e2e\", \"main\": \"worker.js\", \"compatibility_date\": \"2026-11-01\",",
            1,
        ),
    );
    ws.write(
        "worker.js",
        std::fs::read(crate::support::repo_root().join("xtask/tests/fixtures/worker.js")).unwrap(),
    );
    let dev = start_dev(&ws);
    let users = "SELECT count(*) AS n FROM users";

    ws.xtask(&["db-migrate"])
        .expect(0, &["applied 2 migrations"]);
    assert_eq!(dev.query(users), r#"[{"n":0}]"#);
    ws.xtask(&["db-seed"]).expect(0, &["rows now"]);
    assert_eq!(dev.query(users), r#"[{"n":3}]"#, "the Worker sees the seed");
    // A row the Worker writes itself, then a reset: the Worker sees the empty tables.
    dev.query(
        "INSERT INTO users (id, email, name) VALUES (1, 'dev@example.com', 'Dev') RETURNING id",
    );
    assert_eq!(dev.query(users), r#"[{"n":4}]"#);
    ws.xtask(&["db-reset"]).expect(0, &["2 migrations applied"]);
    assert_eq!(
        dev.query(users),
        r#"[{"n":0}]"#,
        "the Worker sees the reset"
    );
    // The snapshot before the reset, copied back into the file workerd holds open.
    ws.xtask(&["db-restore", "--last", "--yes"])
        .expect(0, &["restored"]);
    assert_eq!(
        dev.query(users),
        r#"[{"n":4}]"#,
        "the Worker sees the restored snapshot"
    );
    assert_eq!(
        dev.query("SELECT count(*) AS n FROM d1_migrations_lock"),
        r#"[{"n":0}]"#,
        "no lock row left behind"
    );
    assert_eq!(integrity(&ws), "ok");
    let group = dev.child.id() as i32;
    drop(dev);
    // SIGKILL is sent; a process takes a moment to be gone from /proc.
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut left = running_in_group(group);
    while !left.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        left = running_in_group(group);
    }
    assert!(
        left.is_empty(),
        "processes of wrangler dev left running: {left:?}"
    );
    assert_eq!(integrity(&ws), "ok");
}
