//! End-to-end: how many wrangler processes each command starts (counted by a WRANGLER
//! wrapper that logs every call), and the fast local path's file is the one wrangler writes.

use std::os::unix::fs::PermissionsExt;

use crate::support::{node_bin_dir, wrangler_bin, Workspace};

/// A WRANGLER that logs each call, then runs the real wrangler on the project's Node.
fn counting_wrangler(ws: &Workspace) -> (String, std::path::PathBuf) {
    let log = ws.dir.join("wrangler-calls.log");
    let wrapper = ws.dir.join("counting-wrangler");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\necho \"$1 $2 $3 $4 $5\" >> '{}'\nPATH='{}':\"$PATH\" exec '{}' \"$@\"\n",
            log.display(),
            node_bin_dir().display(),
            wrangler_bin().display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    (wrapper.to_str().unwrap().to_string(), log)
}

fn calls(log: &std::path::Path) -> Vec<String> {
    let calls = std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect();
    let _ = std::fs::remove_file(log);
    calls
}

#[test]
fn local_commands_start_as_few_wrangler_processes_as_the_work_needs() {
    let ws = Workspace::new("count-local");
    for i in 1..=50 {
        ws.migration(
            &format!("{i:04}_m{i}.sql"),
            &format!("CREATE TABLE t{i} (x);\nINSERT INTO t{i} VALUES ({i});\n"),
        );
    }
    let (wrapper, log) = counting_wrangler(&ws);
    let env = [("WRANGLER", wrapper.as_str())];

    ws.xtask_with(&["db-status"], &env)
        .expect(0, &["50 pending"]);
    assert!(
        calls(&log).is_empty(),
        "db-status on local: no wrangler process"
    );

    ws.xtask_with(&["db-migrate"], &env)
        .expect(0, &["applied 50 migrations"]);
    let migrate = calls(&log);
    assert_eq!(migrate.len(), 1, "50 files, one process: {migrate:?}");
    assert!(
        migrate[0].starts_with("d1 execute DB --local"),
        "{migrate:?}"
    );
    assert_eq!(ws.applied_names().len(), 50);

    ws.xtask_with(&["db-migrate"], &env)
        .expect(0, &["nothing to apply"]);
    ws.xtask_with(&["db-status", "--check"], &env)
        .expect(0, &[]);
    ws.xtask_with(&["db-backup"], &env).expect(0, &[]);
    ws.xtask_with(&["db-backup", "--list"], &env).expect(0, &[]);
    assert!(
        calls(&log).is_empty(),
        "nothing to apply, status, backup: no wrangler process"
    );

    ws.xtask_with(&["db-restore", "--last"], &env)
        .expect(0, &[]);
    assert!(
        calls(&log).is_empty(),
        "restoring a local snapshot: no wrangler process"
    );

    ws.xtask_with(&["db-migrate", "--to", "3", "--dry-run"], &env)
        .expect(0, &[]);
    assert!(calls(&log).is_empty(), "a dry run starts nothing");
}

#[test]
fn remote_migrate_starts_three_processes_and_one_request_applies() {
    let ws = Workspace::new("count-remote");
    for i in 1..=20 {
        ws.migration(
            &format!("{i:04}_m{i}.sql"),
            &format!("CREATE TABLE t{i} (x);\n"),
        );
    }
    let emu = ws.emulator();
    let (wrapper, log) = counting_wrangler(&ws);
    ws.xtask_remote(
        &emu,
        &["db-migrate", "--env", "staging"],
        &[("WRANGLER", &wrapper)],
    )
    .expect(0, &["applied 20 migrations"]);
    let c = calls(&log);
    assert_eq!(
        c.len(),
        3,
        "lock + state, bookmark (under the lock), apply: {c:#?}"
    );
    assert!(c[0].starts_with("d1 execute DB"), "{c:?}");
    assert!(c[1].starts_with("d1 time-travel info DB"), "{c:?}");
    let queries = emu
        .emu()
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/query"))
        .count();
    assert_eq!(
        queries, 2,
        "one request reads the state, one applies all 20 files"
    );
}

#[test]
fn the_test_loop_runs_in_one_wrangler_process_locally_and_three_remotely() {
    let ws = Workspace::sample("count-loop");
    let (wrapper, log) = counting_wrangler(&ws);
    let env = [("WRANGLER", wrapper.as_str())];
    let users = |ws: &Workspace| ws.query("SELECT count(*) AS n FROM users")[0]["n"].as_i64();

    // Reset and seed from nothing: drop, both migrations, both seed files, one process.
    ws.xtask_with(&["db-reset", "--seed"], &env).expect(
        0,
        &["2 migrations applied", "seeded 2 files in the same request"],
    );
    let c = calls(&log);
    assert_eq!(c.len(), 1, "reset + seed: {c:?}");
    assert!(ws.wrangler_pending().is_empty());
    assert_eq!(users(&ws), Some(3));

    // Again, on a seeded database (the loop people repeat), with a real row to lose: the
    // inputs are unchanged, so the template the first reset left is copied back, with no
    // wrangler process at all.
    ws.query("INSERT INTO users (id, email, name) VALUES (1, 'real@example.com', 'Real')");
    ws.xtask_with(&["db-reset", "--seed"], &env)
        .expect(0, &["from the template of these inputs"]);
    assert_eq!(calls(&log).len(), 0, "unchanged inputs: the template");
    assert_eq!(
        users(&ws),
        Some(3),
        "the reset dropped the row, the seeds came back"
    );
    // --rebuild goes through wrangler again: one process.
    ws.query("INSERT INTO users (id, email, name) VALUES (1, 'real@example.com', 'Real')");
    ws.xtask_with(&["db-reset", "--seed", "--rebuild"], &env)
        .expect(0, &["seeded 2 files in the same request"]);
    assert_eq!(calls(&log).len(), 1, "--rebuild");
    assert_eq!(users(&ws), Some(3));

    // Several seed files: one process; with a command: seed and cleanup, two.
    ws.xtask_with(&["db-seed", "--no-backup"], &env)
        .expect(0, &[]);
    assert_eq!(calls(&log).len(), 1, "two seed files, one process");
    ws.xtask_with(&["db-seed", "--no-backup", "--", "true"], &env)
        .expect(0, &[]);
    assert_eq!(calls(&log).len(), 2, "seed, then cleanup");
    assert_eq!(users(&ws), Some(0), "the cleanup removed the test users");

    // A failing seed file: the whole request fails, the database is as before the reset.
    ws.query("INSERT INTO users (id, email, name) VALUES (2, 'kept@example.com', 'Kept')");
    ws.write(
        "test-data/seed-zz-broken.sql",
        "INSERT INTO users (id, email, name) VALUES (900100, 'a@example.invalid', 'A');\n\
         INSERT INTO users (id, email, name) VALUES (900100, 'b@example.invalid', 'B');\n",
    );
    ws.xtask_with(&["db-reset", "--seed"], &env).expect(
        1,
        &[
            "UNIQUE constraint failed",
            "the database is as it was before the reset",
        ],
    );
    assert_eq!(calls(&log).len(), 1);
    assert_eq!(
        ws.query("SELECT email FROM users")[0]["email"],
        "kept@example.com",
        "nothing of the failed reset is in the database"
    );
    std::fs::remove_file(ws.dir.join("test-data/seed-zz-broken.sql")).unwrap();

    // Remote: bookmark; state and lock; the change with its read-back and release.
    let emu = ws.remote();
    ws.xtask_remote(&emu, &["db-reset", "--env", "staging", "--seed"], &env)
        .expect(0, &["seeded 2 files"]);
    let c = calls(&log);
    assert_eq!(c.len(), 3, "remote reset + seed: {c:#?}");
    assert_eq!(
        ws.remote_query(&emu, "staging", "SELECT count(*) AS n FROM users")[0]["n"],
        3
    );
    assert!(ws.remote_pending(&emu, "staging").is_empty());
    let lock = ws.remote_query(
        &emu,
        "staging",
        "SELECT count(*) AS n FROM d1_migrations_lock",
    );
    assert_eq!(lock[0]["n"], 0, "the release rode in the change");
}

#[test]
fn the_derived_local_file_is_the_one_wrangler_writes() {
    let ws = Workspace::new("derived-path");
    ws.write(
        "wrangler.jsonc",
        r#"{ "d1_databases": [
            { "binding": "BYID", "database_name": "by-id", "database_id": "00000000-0000-0000-0000-000000000001" },
            { "binding": "BYPREVIEW", "database_name": "by-preview", "database_id": "00000000-0000-0000-0000-000000000001", "preview_database_id": "prev-1234" },
            { "binding": "ONLYBINDING" }
        ] }"#,
    );
    let mut locations = Vec::new();
    for binding in ["BYID", "BYPREVIEW", "ONLYBINDING"] {
        let run = ws.wrangler(&[
            "d1",
            "execute",
            binding,
            "--local",
            "--command",
            &format!("CREATE TABLE made_by_{binding} (x)"),
        ]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        let status = ws
            .xtask(&["db-status", "--database", binding, "--json"])
            .json();
        let location = status["location"].as_str().unwrap().to_string();
        let file = ws.dir.join(&location);
        assert!(
            file.is_file(),
            "{binding}: {location} is not where wrangler wrote"
        );
        // The file (with its write-ahead log) holds the table wrangler just created
        // through that binding.
        let mut bytes = std::fs::read(&file).unwrap();
        bytes.extend(std::fs::read(format!("{}-wal", file.display())).unwrap_or_default());
        assert!(
            String::from_utf8_lossy(&bytes).contains(&format!("made_by_{binding}")),
            "{binding}"
        );
        locations.push(location);
    }
    assert!(locations[0]
        .ends_with("a36f84ea60804f30bb0c7f7cad9f5336a6cca0165abdab8b9241d93dbf0b6006.sqlite"));
    assert_ne!(
        locations[0], locations[1],
        "preview_database_id switches the local database"
    );
    assert_ne!(locations[1], locations[2]);
}

/// Processes whose command line names `needle` (a workspace path), zombies left out.
fn processes_naming(needle: &str) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let dir = entry.path();
        let zombie = std::fs::read_to_string(dir.join("stat"))
            .ok()
            .and_then(|s| {
                s.rsplit_once(')')
                    .map(|(_, r)| r.trim_start().starts_with('Z'))
            })
            .unwrap_or(true);
        let cmdline = std::fs::read(dir.join("cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default();
        if !zombie && cmdline.contains(needle) {
            out.push(cmdline);
        }
    }
    out
}

#[test]
fn a_wrangler_timeout_stops_every_process_of_it_within_seconds() {
    let ws = Workspace::new("timeout-group");
    ws.migration("0001_a.sql", "CREATE TABLE a (id INTEGER PRIMARY KEY);\n");
    ws.write("xtask.jsonc", "{ \"wrangler_timeout_secs\": 5 }");
    let emu = ws.emulator();
    // The state read's reply is held back a minute.
    emu.emu().add_fault(
        d1_emulator::Fault::new("/query", d1_emulator::FaultKind::Delay(60_000)).method("POST"),
    );
    let started = std::time::Instant::now();
    let run = ws.xtask_remote(&emu, &["db-status", "--env", "staging"], &[]);
    let took = started.elapsed();
    run.expect(
        1,
        &[
            "did not answer within 5 s",
            "stopped with all its processes",
        ],
    );
    // The deadline, the grace between SIGTERM and SIGKILL, and start-up: far below 60 s.
    assert!(took < std::time::Duration::from_secs(25), "took {took:?}");
    let left = processes_naming(ws.dir.to_str().unwrap());
    assert!(left.is_empty(), "processes left running: {left:#?}");
}

/// A SIGKILL cannot be caught: the guardian the xtask starts with its first child stops
/// the `--verify` command (and any wrangler) it was running, instead of letting it work on
/// with nobody watching.
/// A case of the reliability suite (`reliability.rs`), which runs it.
pub fn a_killed_xtask_leaves_no_command_running() {
    let ws = Workspace::new("sigkill-verify");
    ws.migration(
        "0001_users.sql",
        "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT);\n",
    );
    // The sleep itself (the xtask's own command line names it too).
    let sleeping = || -> Vec<String> {
        processes_naming("sleep 41.75")
            .into_iter()
            .filter(|c| c.starts_with("sleep 41.75"))
            .collect()
    };
    let log = ws.dir.join("xtask.log");
    let mut child = std::process::Command::new(crate::support::xtask_bin())
        .args(["db-migrate", "--verify", "sleep 41.75"])
        .current_dir(&ws.dir)
        .env("WRANGLER", crate::support::wrangler_bin())
        .env("CI", "true")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while sleeping().is_empty() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(120),
            "the verify command never started:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let killed = std::time::Instant::now();
    while !sleeping().is_empty() {
        assert!(
            killed.elapsed() < std::time::Duration::from_secs(20),
            "the verify command outlived the killed xtask: {:?}",
            sleeping()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// The schema and every table's row count, through raw wrangler.
fn schema_and_counts(ws: &Workspace) -> (Vec<serde_json::Value>, Vec<serde_json::Value>) {
    let schema = ws.wrangler_query(
        "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' \
         AND name NOT LIKE '_cf_%' ORDER BY type, name",
    );
    let counts = ws.wrangler_query(
        "SELECT (SELECT count(*) FROM users) AS users, (SELECT count(*) FROM posts) AS posts, \
         (SELECT count(*) FROM user_profiles) AS user_profiles, (SELECT count(*) FROM products) AS products, \
         (SELECT count(*) FROM orders) AS orders, (SELECT count(*) FROM order_items) AS order_items, \
         (SELECT count(*) FROM tokens) AS tokens, (SELECT count(*) FROM d1_migrations) AS applied",
    );
    (schema, counts)
}

#[test]
fn a_reset_of_unchanged_inputs_comes_from_the_template_and_any_edit_rebuilds_it() {
    let ws = Workspace::sample("template-loop");
    let (wrapper, log) = counting_wrangler(&ws);
    let env = [("WRANGLER", wrapper.as_str())];

    // Built through wrangler: one process, and the result kept as the template.
    let built = ws.xtask_with(&["db-reset", "--seed", "--json"], &env);
    built.expect(0, &["kept as the template of these inputs"]);
    assert_eq!(calls(&log).len(), 1);
    assert_eq!(built.json()["template"]["made"], true);
    let through_wrangler = schema_and_counts(&ws);

    // Rows and a table added by hand, then a reset of the same inputs: no process, and the
    // database is what wrangler built, byte for byte in schema and rows.
    ws.query(
        "INSERT INTO users (id, email, name) VALUES (1, 'real@example.com', 'Real'); \
         CREATE TABLE scratch_notes (id INTEGER PRIMARY KEY)",
    );
    let again = ws.xtask_with(&["db-reset", "--seed", "--json"], &env);
    again.expect(
        0,
        &["from the template of these inputs", "no wrangler process"],
    );
    assert_eq!(
        calls(&log).len(),
        0,
        "unchanged inputs start no wrangler process"
    );
    assert_eq!(again.json()["template"]["used"], true);
    assert_eq!(again.json()["wrangler_calls"], 0);
    assert_eq!(schema_and_counts(&ws), through_wrangler);
    assert!(
        ws.wrangler_pending().is_empty(),
        "wrangler sees every migration applied"
    );

    // A seed file edited: one process rebuilds, and the new row is there.
    let seed = ws.dir.join("test-data/seed-users.sql");
    let mut text = std::fs::read_to_string(&seed).unwrap();
    text.push_str(
        "\nINSERT INTO users (id, email, name) VALUES (900777, 'new@example.invalid', 'New');\n",
    );
    std::fs::write(&seed, text).unwrap();
    ws.xtask_with(&["db-reset", "--seed"], &env)
        .expect(0, &["seeded 2 files in the same request"]);
    assert_eq!(calls(&log).len(), 1, "an edited seed file rebuilds");
    assert_eq!(
        ws.wrangler_query("SELECT email FROM users WHERE id = 900777")[0]["email"],
        "new@example.invalid",
        "the new row, through raw wrangler"
    );

    // A migration edited: one process rebuilds, and what it adds is there.
    let migration = ws.dir.join("migrations/0002_profiles_commerce_tokens.sql");
    let mut text = std::fs::read_to_string(&migration).unwrap();
    text.push_str("\nCREATE INDEX users_by_name ON users(name);\n");
    std::fs::write(&migration, text).unwrap();
    ws.xtask_with(&["db-reset", "--seed"], &env).expect(0, &[]);
    assert_eq!(calls(&log).len(), 1, "an edited migration rebuilds");
    assert_eq!(
        ws.query("SELECT name FROM sqlite_master WHERE name = 'users_by_name'")
            .len(),
        1
    );
    // And the rebuilt template serves the next reset.
    ws.xtask_with(&["db-reset", "--seed"], &env)
        .expect(0, &["from the template of these inputs"]);
    assert_eq!(calls(&log).len(), 0);
}
