//! End-to-end: checksums, the lock, rehearsal and the cascade trap, through the real
//! wrangler, locally and on the emulator.

use std::process::Command;

use crate::support::{Run, Workspace};

const USERS: &str = "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE);\n";
const POSTS: &str = "CREATE TABLE posts (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE, title TEXT);\n";
const TAGS: &str = "CREATE TABLE tags (id INTEGER PRIMARY KEY, label TEXT);\n";

#[test]
fn an_edited_applied_file_blocks_until_repaired() {
    let ws = Workspace::new("edited");
    ws.migration("0001_users.sql", USERS);
    ws.xtask(&["db-migrate"]).expect(0, &[]);
    ws.migration(
        "0001_users.sql",
        &format!("{USERS}-- edited after it was applied\n"),
    );
    ws.migration("0002_tags.sql", TAGS);

    let status = ws.xtask(&["db-status", "--check", "--json"]);
    assert_eq!(status.code, 3);
    let doc = status.json();
    let problem = doc["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["kind"] == "edited")
        .unwrap()
        .clone();
    assert_eq!(problem["migration"], "0001_users.sql");
    let msg = problem["message"].as_str().unwrap();
    assert!(
        msg.contains("previously applied but has been modified")
            && msg.matches("SHA-256").count() == 1
            && msg.contains("now has"),
        "{msg}"
    );

    let refused = ws.xtask(&["db-migrate"]);
    refused.expect(
        4,
        &[
            "drift",
            "0001_users.sql was previously applied but has been modified",
            "nothing was applied",
        ],
    );
    assert_eq!(
        ws.applied_names(),
        vec!["0001_users.sql"],
        "0002 was not applied (read back from the file)"
    );

    ws.xtask(&["db-migrate", "--repair"])
        .expect(0, &["re-recorded 0001_users.sql: SHA-256 "]);
    ws.xtask(&["db-status", "--check"])
        .expect(3, &["1 pending, 0 blocking problems"]);
    ws.xtask(&["db-migrate"])
        .expect(0, &["applied 1 migration: 0002_tags.sql"]);
    ws.xtask(&["db-migrate", "--repair"])
        .expect(0, &["nothing to repair"]);
}

#[test]
fn deleted_out_of_order_and_plain_wrangler_rows() {
    let ws = Workspace::new("deleted");
    ws.migration("0001_users.sql", USERS)
        .migration("0003_tags.sql", TAGS);
    // Applied by plain wrangler: no checksums yet.
    let raw = ws.wrangler(&["d1", "migrations", "apply", "DB", "--local"]);
    assert_eq!(raw.code, 0, "{}", raw.stderr);
    ws.migration("0004_more.sql", "CREATE TABLE more (x);\n");
    ws.xtask(&["db-migrate"]).expect(
        0,
        &[
            "recording the checksums of 2 migrations applied without one (by plain wrangler)",
            "applied 1 migration: 0004_more.sql",
        ],
    );

    ws.migration("0002_late.sql", "CREATE TABLE late (x);\n");
    std::fs::remove_file(ws.dir.join("migrations/0003_tags.sql")).unwrap();
    let status = ws.xtask(&["db-status", "--check"]);
    status.expect(
        3,
        &[
            "[!] 0003_tags.sql",
            "file missing",
            "0003_tags.sql was applied on",
            "0002_late.sql is pending but numbered below 0004_more.sql",
        ],
    );
    ws.xtask(&["db-migrate"])
        .expect(4, &["drift", "no longer in"]);
    assert!(!ws.applied_names().contains(&"0002_late.sql".to_string()));
}

/// Starts two xtask runs at once and waits for both.
fn concurrently(ws: &Workspace, env: &[(&str, String)], args: &[&str]) -> (Run, Run) {
    let spawn = || {
        let mut cmd = Command::new(crate::support::xtask_bin());
        cmd.args(args)
            .current_dir(&ws.dir)
            .env("WRANGLER", crate::support::wrangler_bin())
            .env("CI", "true");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let done = |c: std::process::Child| {
        let out = c.wait_with_output().unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    };
    (done(a), done(b))
}

#[test]
fn two_concurrent_runs_apply_each_migration_once() {
    let ws = Workspace::new("concurrent");
    ws.migration("0001_users.sql", USERS)
        .migration("0002_posts.sql", POSTS)
        .migration("0003_tags.sql", TAGS);
    let (a, b) = concurrently(&ws, &[], &["db-migrate", "--lock-timeout", "120"]);
    assert_eq!((a.code, b.code), (0, 0), "{}\n---\n{}", a.stderr, b.stderr);
    let both = format!("{}{}", a.stderr, b.stderr);
    assert_eq!(both.matches("applied 3 migrations").count(), 1, "{both}");
    assert!(both.contains("nothing to apply"), "{both}");
    assert_eq!(
        ws.applied_names(),
        vec!["0001_users.sql", "0002_posts.sql", "0003_tags.sql"]
    );

    let emu = ws.remote();
    let env = emu.env();
    let (a, b) = concurrently(
        &ws,
        &env,
        &["db-migrate", "--env", "staging", "--lock-timeout", "120"],
    );
    assert_eq!((a.code, b.code), (0, 0), "{}\n---\n{}", a.stderr, b.stderr);
    let (_, applied) = ws.remote_tables_and_applied(&emu, "staging");
    assert_eq!(
        applied,
        vec!["0001_users.sql", "0002_posts.sql", "0003_tags.sql"],
        "each once"
    );
}

#[test]
fn a_stale_lock_is_broken_only_with_force_unlock() {
    let ws = Workspace::new("stale");
    ws.migration("0001_users.sql", USERS);
    ws.xtask(&["db-migrate"]).expect(0, &[]);
    ws.migration("0002_tags.sql", TAGS);
    // A lock left by a run on another machine, two hours ago.
    let old = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 7200;
    ws.query(&format!(
        "INSERT INTO d1_migrations_lock (id, token, holder, host, pid, command, acquired_at) \
         VALUES (1, 'gone', 'ci', 'runner-9', 4242, 'db-migrate', {old})"
    ));
    let held = ws.xtask(&["db-migrate", "--lock-timeout", "0"]);
    held.expect(
        4,
        &[
            "is locked by db-migrate by ci on runner-9 (pid 4242)",
            "stale",
            "--force-unlock",
            "nothing was changed",
        ],
    );
    ws.xtask(&[
        "db-seed",
        "--lock-timeout",
        "1",
        "--file",
        "migrations/0001_users.sql",
    ])
    .expect(4, &["locked by"]);
    assert_eq!(ws.applied_names(), vec!["0001_users.sql"]);

    ws.xtask(&["db-migrate", "--force-unlock"]).expect(
        0,
        &["broke the stale lock", "runner-9", "applied 1 migration"],
    );
    assert!(
        ws.query("SELECT * FROM d1_migrations_lock").is_empty(),
        "released after the run"
    );

    // A fresh lock is not broken.
    let now = old + 7200;
    ws.query(&format!(
        "INSERT INTO d1_migrations_lock (id, token, holder, host, pid, command, acquired_at) \
         VALUES (1, 'busy', 'ci', 'runner-9', 4242, 'db-migrate', {now})"
    ));
    ws.xtask(&["db-reset", "--force-unlock"])
        .expect(4, &["breaks only a stale lock", "not stale"]);
}

#[test]
fn rehearsal_reports_failures_and_lost_rows_without_touching_the_remote() {
    let ws = Workspace::new("rehearse");
    ws.migration("0001_users.sql", USERS)
        .migration("0002_posts.sql", POSTS);
    let emu = ws.remote();
    ws.xtask_remote(&emu, &["db-migrate", "--env", "staging"], &[])
        .expect(0, &[]);
    ws.remote_query(&emu, "staging", "INSERT INTO users (id, email) VALUES (1, 'a@x.com'), (2, 'b@x.com'); INSERT INTO posts VALUES (1, 1, 'p1'), (2, 2, 'p2')");
    // A parent rebuild whose cascade empties posts; then a NOT NULL column that existing rows cannot fill.
    ws.migration(
        "0003_rebuild_users.sql",
        "PRAGMA defer_foreign_keys = true;\nCREATE TABLE users_new (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE, name TEXT);\n\
         INSERT INTO users_new (id, email) SELECT id, email FROM users;\nDROP TABLE users;\n\
         ALTER TABLE users_new RENAME TO users;\nPRAGMA defer_foreign_keys = false;\n",
    );
    let lint = ws.xtask_remote(&emu, &["db-status", "--env", "staging", "--json"], &[]);
    let cascade = lint.json()["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["kind"] == "cascade")
        .cloned()
        .expect("cascade warning");
    assert!(
        cascade["message"].as_str().unwrap().contains("`posts`"),
        "{cascade}"
    );
    assert_eq!(cascade["blocking"], false);

    let before = ws.remote_bookmark(&emu, "staging");
    let ok = ws.xtask_remote(
        &emu,
        &["db-migrate", "--env", "staging", "--rehearse", "--json"],
        &[],
    );
    ok.expect(0, &["rehearsal passed", "ROWS LOST: posts: 2 rows"]);
    let report = ok.json()["rehearsal"][0].clone();
    assert_eq!(report["migration"], "0003_rebuild_users.sql");
    assert_eq!(report["rows_lost"], serde_json::json!(["posts: 2 rows"]));

    ws.migration(
        "0004_nick.sql",
        "CREATE TABLE users_next (id INTEGER PRIMARY KEY, email TEXT NOT NULL, nick TEXT NOT NULL);\n\
         INSERT INTO users_next (id, email) SELECT id, email FROM users;\n",
    );
    let failed = ws.xtask_remote(&emu, &["db-migrate", "--env", "staging", "--rehearse"], &[]);
    failed.expect(
        1,
        &[
            "FAILED 0004_nick.sql",
            "NOT NULL constraint failed",
            "rehearsal: 0004_nick.sql would fail",
            "nothing was changed on staging",
        ],
    );
    assert_eq!(
        ws.remote_bookmark(&emu, "staging"),
        before,
        "not one write reached the remote"
    );
    let (tables, applied) = ws.remote_tables_and_applied(&emu, "staging");
    assert_eq!(applied, vec!["0001_users.sql", "0002_posts.sql"]);
    assert!(!tables.contains(&"users_new".to_string()));
    assert_eq!(
        ws.remote_query(&emu, "staging", "SELECT count(*) AS n FROM posts")[0]["n"],
        2
    );
    assert!(
        !ws.dir
            .join(".wrangler/xtask")
            .read_dir()
            .map(|mut d| d.any(|e| e
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("rehearsal")))
            .unwrap_or(false),
        "scratch state deleted"
    );
}

/// A case of the reliability suite (`reliability.rs`), which runs it.
pub fn a_lock_left_by_a_dead_process_of_this_host_is_broken_without_waiting() {
    let ws = Workspace::new("dead-holder");
    ws.migration("0001_users.sql", USERS);
    ws.xtask(&["db-migrate"]).expect(0, &[]);
    ws.migration("0002_tags.sql", TAGS);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string();
    // pid 2^31 - 2 never runs (pid_max is at most 2^22).
    ws.query(&format!(
        "INSERT INTO d1_migrations_lock (id, token, holder, host, pid, command, acquired_at) \
         VALUES (1, 'killed', 'me', '{host}', 2147483646, 'db-migrate', unixepoch())"
    ));
    let run = ws.xtask(&["db-migrate", "--lock-timeout", "60"]);
    run.expect(
        0,
        &[
            "broke the lock of a run that ended without releasing it",
            "process 2147483646 on this host is no longer running",
            "applied 1 migration",
        ],
    );
    assert!(!run.stderr.contains("waiting up to"), "{}", run.stderr);
    assert!(ws.query("SELECT * FROM d1_migrations_lock").is_empty());
}

/// Two workspaces on one staging database: B starts while A holds the lock (A's
/// `--verify` sleeps). B's restore point is taken once B holds the lock, after A's
/// migration; running the undo B prints takes B's seed away and keeps A's migration.
/// A case of the reliability suite (`reliability.rs`), which runs it.
pub fn the_undo_of_a_run_that_waited_for_the_lock_keeps_the_other_runs_migration() {
    let a = Workspace::sample("undo-a");
    let emu = a.remote();
    let b = Workspace::sample("undo-b");
    b.write(
        "wrangler.jsonc",
        std::fs::read(a.dir.join("wrangler.jsonc")).unwrap(),
    );
    a.xtask_remote(&emu, &["db-migrate", "--env", "staging"], &[])
        .expect(0, &[]);
    let tags = "CREATE TABLE tags (id INTEGER PRIMARY KEY, name TEXT NOT NULL);\n";
    a.migration("0003_tags.sql", tags);
    b.migration("0003_tags.sql", tags);

    let env = emu.env();
    let log = a.dir.join("a.log");
    let mut cmd = Command::new(crate::support::xtask_bin());
    cmd.args(["db-migrate", "--env", "staging", "--verify", "sleep 8"])
        .current_dir(&a.dir)
        .env("WRANGLER", crate::support::wrangler_bin())
        .env("CI", "true")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    for (k, v) in &env {
        cmd.env(k, v);
    }
    let mut first = cmd.spawn().unwrap();
    // B starts once A holds the lock (A's restore point is taken under it).
    let started = std::time::Instant::now();
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("restore point:")
    {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(120),
            "A never took its restore point:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let seeded = b.xtask_remote(
        &emu,
        &["db-seed", "--env", "staging", "--lock-timeout", "120"],
        &[],
    );
    let a_status = first.wait().unwrap();
    let a_log = std::fs::read_to_string(&log).unwrap();
    assert!(a_status.success(), "{a_log}");
    seeded.expect(0, &["waiting up to", "restore point:"]);
    let undo = seeded
        .stderr
        .lines()
        .find_map(|l| l.split("to return to the state before this run: ").nth(1))
        .unwrap_or_else(|| panic!("no undo line:\n{}", seeded.stderr))
        .trim()
        .to_string();
    let args: Vec<&str> = undo
        .strip_prefix("cargo xtask ")
        .unwrap()
        .split_whitespace()
        .collect();
    b.xtask_remote(&emu, &args, &[]).expect(0, &["restored"]);
    let (tables, applied) = b.remote_tables_and_applied(&emu, "staging");
    assert!(
        applied.contains(&"0003_tags.sql".to_string()) && tables.contains(&"tags".to_string()),
        "A's migration is gone after B's undo: {applied:?} {tables:?}"
    );
    assert_eq!(
        b.remote_query(&emu, "staging", "SELECT count(*) AS n FROM products")[0]["n"],
        0,
        "B's seed is undone"
    );
    assert!(b
        .remote_query(&emu, "staging", "SELECT * FROM d1_migrations_lock")
        .is_empty());
}
