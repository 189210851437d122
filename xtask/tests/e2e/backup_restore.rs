//! End-to-end: db-backup, db-restore and db-migrate --verify, locally and on the emulator,
//! checked afterwards through SQLite on the file wrangler wrote and on the emulator's
//! database (and through wrangler where its own view is what is checked).

use std::os::unix::fs::PermissionsExt;

use crate::support::{Remote, Run, Workspace};

const USERS: &str = "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE);\n";
const POSTS: &str =
    "CREATE TABLE posts (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users(id));\n";
const TAGS: &str = "CREATE TABLE tags (id INTEGER PRIMARY KEY, label TEXT);\n";

/// Everything a restore must bring back, as one string: schema and rows.
const FINGERPRINT: &str = "SELECT group_concat(x, ' | ') AS fp FROM (\
    SELECT type || ':' || name AS x FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' AND substr(name, 1, 4) <> '_cf_' \
    UNION ALL SELECT 'user:' || id || ':' || email FROM users \
    UNION ALL SELECT 'applied:' || name FROM d1_migrations ORDER BY 1)";

fn local_fp(ws: &Workspace) -> String {
    ws.query(FINGERPRINT)[0]["fp"].as_str().unwrap().to_string()
}

fn remote_fp(ws: &Workspace, emu: &Remote, env: &str) -> String {
    ws.remote_query(emu, env, FINGERPRINT)[0]["fp"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The `cargo xtask ...` command a run printed after `label`, as arguments.
fn printed_command(run: &Run, label: &str) -> Vec<String> {
    let line = run
        .stderr
        .lines()
        .find_map(|l| l.split_once(label).map(|(_, rest)| rest.trim().to_string()))
        .unwrap_or_else(|| panic!("no `{label}` in\n{}", run.stderr));
    let args = line
        .strip_prefix("cargo xtask ")
        .unwrap_or_else(|| panic!("not an xtask command: {line}"));
    args.split_whitespace().map(String::from).collect()
}

fn xtask_args(ws: &Workspace, args: &[String]) -> Run {
    ws.xtask(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

#[test]
fn local_backup_change_restore_and_undo() {
    let ws = Workspace::new("local-roundtrip");
    ws.migration("0001_users.sql", USERS);
    ws.xtask(&["db-migrate"])
        .expect(0, &["restore point: snapshot"]);
    ws.query("INSERT INTO users (email) VALUES ('a@x.com'), ('b@x.com')");
    let original = local_fp(&ws);

    let backup = ws.xtask(&["db-backup", "--json"]);
    backup.expect(
        0,
        &[
            "backup ",
            "1 migration applied, the newest 0001_users.sql",
            "restore it with: cargo xtask db-restore --backup",
        ],
    );
    let doc = backup.json();
    let file = ws.dir.join(doc["file"].as_str().unwrap());
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600,
        "owner only"
    );
    assert_eq!(doc["kind"], "snapshot");
    assert_eq!(
        doc["migrations_applied"],
        serde_json::json!(["0001_users.sql"])
    );

    // Change data and schema.
    ws.migration("0002_tags.sql", TAGS);
    ws.xtask(&["db-migrate"]).expect(0, &[]);
    ws.query("DELETE FROM users WHERE email = 'a@x.com'");
    let changed = local_fp(&ws);
    assert_ne!(changed, original);

    let restore = ws.xtask(&["db-restore", "--backup", doc["id"].as_str().unwrap()]);
    restore.expect(
        0,
        &[
            "restored local DB",
            "1 migration applied",
            "to return to the state before this run:",
        ],
    );
    assert_eq!(local_fp(&ws), original, "same rows and schema, read back");
    assert_eq!(ws.wrangler_pending(), vec!["0002_tags.sql"]);

    // The printed command undoes the restore.
    let undo = printed_command(&restore, "to return to the state before this run:");
    xtask_args(&ws, &undo).expect(0, &["restored local DB"]);
    assert_eq!(local_fp(&ws), changed);

    // A backup by path works too, and --output never overwrites.
    let out = ws.xtask(&["db-backup", "--output", "mine.sqlite"]);
    out.expect(0, &["mine.sqlite"]);
    ws.xtask(&["db-backup", "--output", "mine.sqlite"])
        .expect(2, &["exists", "never overwrite"]);
    ws.xtask(&["db-backup", "--list"])
        .expect(0, &["db-backup", "before db-restore", "before db-migrate"]);
}

#[test]
fn remote_backup_change_restore_by_backup_bookmark_and_timestamp() {
    let ws = Workspace::new("remote-roundtrip");
    ws.migration("0001_users.sql", USERS);
    let emu = ws.remote();
    ws.xtask_remote(&emu, &["db-migrate", "--env", "staging"], &[])
        .expect(0, &[]);
    ws.remote_query(
        &emu,
        "staging",
        "INSERT INTO users (email) VALUES ('a@x.com'), ('it''s@x.com')",
    );
    let original = remote_fp(&ws, &emu, "staging");

    let backup = ws.xtask_remote(&emu, &["db-backup", "--env", "staging", "--json"], &[]);
    backup.expect(0, &["at bookmark", "1 migration applied"]);
    let doc = backup.json();
    assert_eq!(doc["kind"], "export");
    let file = ws.dir.join(doc["file"].as_str().unwrap());
    assert!(
        file.starts_with(ws.dir.join("backups/staging")),
        "{}",
        file.display()
    );
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let bookmark = doc["bookmark"].as_str().unwrap().to_string();

    // Restore by timestamp needs a moment strictly between two states.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let between = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    std::thread::sleep(std::time::Duration::from_millis(1100));

    ws.migration("0002_posts.sql", POSTS);
    ws.xtask_remote(&emu, &["db-migrate", "--env", "staging"], &[])
        .expect(0, &[]);
    ws.remote_query(&emu, "staging", "DELETE FROM users");
    let changed = remote_fp(&ws, &emu, "staging");
    assert_ne!(changed, original);

    // From the export file: emptied, then imported.
    let id = doc["id"].as_str().unwrap();
    let restore = ws.xtask_remote(
        &emu,
        &["db-restore", "--env", "staging", "--backup", id],
        &[],
    );
    restore.expect(
        0,
        &[
            "restore point: Time Travel bookmark",
            "restored staging DB",
            "to return to the state before this run: cargo xtask db-restore --env staging --bookmark",
        ],
    );
    assert_eq!(remote_fp(&ws, &emu, "staging"), original);
    assert_eq!(ws.remote_pending(&emu, "staging"), vec!["0002_posts.sql"]);

    // Undo with the printed command: back to the changed state.
    let undo = printed_command(&restore, "to return to the state before this run:");
    let undo: Vec<&str> = undo.iter().map(String::as_str).collect();
    ws.xtask_remote(&emu, &undo, &[])
        .expect(0, &["restored staging DB"]);
    assert_eq!(remote_fp(&ws, &emu, "staging"), changed);

    // By the backup's bookmark, then by a timestamp between the two states. A Time
    // Travel restore's undo is D1's own previous_bookmark, the moment just before it.
    let by_bookmark = ws.xtask_remote(
        &emu,
        &[
            "db-restore",
            "--env",
            "staging",
            "--bookmark",
            &bookmark,
            "--json",
        ],
        &[],
    );
    by_bookmark.expect(0, &[]);
    let previous = by_bookmark.json()["previous_bookmark"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        printed_command(&by_bookmark, "to return to the state before this run:").last(),
        Some(&previous),
        "{}",
        by_bookmark.stderr
    );
    assert_eq!(
        by_bookmark.json()["restore_point"]["bookmark"],
        previous.as_str(),
        "the JSON's restore point is D1's previous_bookmark too"
    );
    assert_eq!(remote_fp(&ws, &emu, "staging"), original);
    ws.xtask_remote(&emu, &undo, &[]).expect(0, &[]);
    assert_eq!(remote_fp(&ws, &emu, "staging"), changed);
    ws.xtask_remote(
        &emu,
        &["db-restore", "--env", "staging", "--timestamp", &between],
        &[],
    )
    .expect(0, &["the state at"]);
    assert_eq!(remote_fp(&ws, &emu, "staging"), original);

    // Protected: production needs --yes without a terminal.
    ws.xtask_remote(
        &emu,
        &["db-restore", "--env", "production", "--bookmark", &bookmark],
        &[],
    )
    .expect(4, &["protected environment", "--yes"]);
}

#[test]
fn verify_failure_restores_local_and_remote() {
    let ws = Workspace::new("verify");
    ws.migration("0001_users.sql", USERS);
    ws.xtask(&["db-migrate"]).expect(0, &[]);
    ws.query("INSERT INTO users (email) VALUES ('keep@x.com')");
    let before = local_fp(&ws);
    ws.migration("0002_posts.sql", POSTS);
    let run = ws.xtask(&["db-migrate", "--verify", "false"]);
    run.expect(
        1,
        &[
            "verification failed: `false`",
            "restored to the restore point",
            "1 migration applied, the newest 0001_users.sql",
        ],
    );
    assert_eq!(
        local_fp(&ws),
        before,
        "schema and data as before, read back"
    );
    ws.xtask(&["db-migrate", "--verify", "true"])
        .expect(0, &["verified: `true` passed"]);
    assert_eq!(ws.applied_names(), vec!["0001_users.sql", "0002_posts.sql"]);
    ws.xtask(&["db-migrate", "--verify", "true", "--no-backup"])
        .expect(2, &["--verify needs the restore point"]);

    let emu = ws.remote();
    ws.xtask_remote(&emu, &["db-migrate", "--env", "staging", "--to", "1"], &[])
        .expect(0, &[]);
    ws.remote_query(
        &emu,
        "staging",
        "INSERT INTO users (email) VALUES ('keep@x.com')",
    );
    let before = remote_fp(&ws, &emu, "staging");
    let run = ws.xtask_remote(
        &emu,
        &[
            "db-migrate",
            "--env",
            "staging",
            "--verify",
            "test \"$XTASK_ENV\" = local",
        ],
        &[],
    );
    run.expect(1, &["verification failed", "restored to the restore point"]);
    assert_eq!(remote_fp(&ws, &emu, "staging"), before);
}

#[test]
fn refusals_change_nothing() {
    let ws = Workspace::new("refusals");
    ws.migration("0001_users.sql", USERS);
    ws.xtask(&["db-migrate"]).expect(0, &[]);
    ws.query("INSERT INTO users (email) VALUES ('a@x.com')");
    let backup = ws.xtask(&["db-backup", "--json"]);
    let doc = backup.json();
    ws.query("INSERT INTO users (email) VALUES ('b@x.com')");
    let before = local_fp(&ws);

    let unknown = ws.xtask(&["db-restore", "--backup", "20990101T000000Z-dead"]);
    unknown.expect(
        2,
        &["no backup `20990101T000000Z-dead`", "db-backup --list"],
    );

    // Corrupt the backup file: the checksum no longer matches.
    let file = ws.dir.join(doc["file"].as_str().unwrap());
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&file, bytes).unwrap();
    ws.xtask(&["db-restore", "--backup", doc["id"].as_str().unwrap()])
        .expect(
            4,
            &[
                "has changed since it was taken",
                "SHA-256",
                "nothing was changed",
            ],
        );

    ws.xtask(&["db-restore", "--bookmark", "abc"])
        .expect(2, &["no Time Travel"]);
    ws.xtask(&["db-restore"]).expect(2, &["exactly one of"]);
    ws.xtask(&["db-restore", "--last", "--bookmark", "x"])
        .expect(2, &["exactly one of"]);
    assert!(!unknown.stderr.contains("$ wrangler"));
    assert_eq!(local_fp(&ws), before, "nothing changed, read back");

    let emu = ws.emulator();
    let future = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600)
        .to_string();
    let r = ws.xtask_remote(
        &emu,
        &["db-restore", "--env", "staging", "--timestamp", &future],
        &[],
    );
    r.expect(2, &["in the future"]);
    let r2 = ws.xtask_remote(
        &emu,
        &[
            "db-restore",
            "--env",
            "staging",
            "--timestamp",
            "2020-01-01T00:00:00Z",
        ],
        &[],
    );
    r2.expect(2, &["retention window of 30 days"]);
    let r3 = ws.xtask_remote(
        &emu,
        &["db-restore", "--env", "staging", "--timestamp", "soon"],
        &[],
    );
    r3.expect(2, &["RFC 3339"]);
    for run in [&r, &r2, &r3] {
        assert!(
            !run.stderr.contains("$ wrangler"),
            "checked before any wrangler call"
        );
    }
    assert!(
        emu.emu().requests().is_empty(),
        "no request reached the API"
    );
}

#[test]
fn restore_staging_to_seconds_ago_and_record_bookmarks() {
    let ws = Workspace::new("time-travel-ago");
    ws.migration("0001_users.sql", USERS);
    let emu = ws.emulator();
    let xt = |args: &[&str], extra: &[(&str, &str)]| ws.xtask_remote(&emu, args, extra);
    xt(&["db-migrate", "--env", "staging"], &[]).expect(0, &[]);
    // A moment 2 s after the first migration and 2 s before the second; each command
    // below names it as "N seconds ago" computed just before it runs, so no command
    // depends on how long another took.
    let between = std::time::Instant::now() + std::time::Duration::from_millis(2000);
    std::thread::sleep(std::time::Duration::from_secs(4));
    ws.migration("0002_posts.sql", POSTS);
    xt(&["db-migrate", "--env", "staging"], &[]).expect(0, &["applied 1 migration"]);

    // `db-backup --bookmark`: the current bookmark and time, no export, GITHUB_OUTPUT.
    let gh = ws.dir.join("github-output");
    let run = xt(
        &["db-backup", "--env", "staging", "--bookmark", "--json"],
        &[("GITHUB_OUTPUT", gh.to_str().unwrap())],
    );
    run.expect(0, &["bookmark", "UTC"]);
    let bookmark = run.json()["bookmark"].as_str().unwrap().to_string();
    assert!(std::fs::read_to_string(&gh)
        .unwrap()
        .contains(&format!("bookmark={bookmark}")));
    assert!(run.json()["file"].is_null(), "no export: {}", run.stdout);
    let list = xt(&["db-backup", "--list"], &[("TZ", "Asia/Tokyo")]);
    list.expect(0, &[&bookmark, "JST (+09:00)", " UTC)"]);

    // "N seconds ago": printed in UTC and local time with its bookmark; a dry run stops.
    let ago = || {
        format!(
            "{} seconds ago",
            between.elapsed().as_secs_f64().round() as u64
        )
    };
    let dry = xt(
        &[
            "db-restore",
            "--env",
            "staging",
            "--timestamp",
            &ago(),
            "--dry-run",
        ],
        &[("TZ", "Europe/Paris")],
    );
    dry.expect(0, &[" UTC = ", "Europe/Paris", "maps", "dry run"]);
    let (_, applied) = ws.remote_tables_and_applied(&emu, "staging");
    assert_eq!(applied.len(), 2, "a dry run changes nothing");
    let run = xt(
        &["db-restore", "--env", "staging", "--timestamp", &ago()],
        &[],
    );
    run.expect(0, &["restored", "to return to the state before this run"]);
    let (tables, applied) = ws.remote_tables_and_applied(&emu, "staging");
    assert_eq!(tables, ["users"]);
    assert_eq!(applied, ["0001_users.sql"]);

    // Refused before any wrangler call: the future, past retention, and nonsense.
    emu.emu().clear_requests();
    for (when, words) in [
        ("in 5 minutes", "5 minutes ago"),
        ("2099-01-01 00:00", "in the future"),
        ("40 days ago", "retention window"),
        ("2026-02-30 10:00", "2026-02-30"),
    ] {
        xt(
            &["db-restore", "--env", "staging", "--timestamp", when],
            &[],
        )
        .expect(2, &[words]);
    }
    assert!(
        emu.emu().requests().is_empty(),
        "{:?}",
        emu.emu().requests()
    );
}

#[test]
fn a_damaged_index_entry_is_refused_before_anything_runs() {
    let ws = Workspace::new("damaged-index");
    ws.migration("0001_users.sql", USERS);
    ws.write(
        "backups/index.jsonl",
        "{\"id\":\"20261122T000000Z-dead\",\"env\":\"staging\",\"database\":\"e2e-staging\",\"binding\":\"DB\",\"created_at\":\"2026-11-22 00:00:00\",\"kind\":\"export\",\"migrations_applied\":[],\"reason\":\"db-backup\"}\n",
    );
    let emu = ws.emulator();
    let run = ws.xtask_remote(
        &emu,
        &[
            "db-restore",
            "--env",
            "staging",
            "--backup",
            "20261122T000000Z-dead",
        ],
        &[],
    );
    run.expect(
        2,
        &[
            "20261122T000000Z-dead",
            "neither a bookmark nor a file",
            "damaged",
        ],
    );
    assert!(!run.stderr.contains("--bookmark ''"), "{}", run.stderr);
    assert!(
        emu.emu().requests().is_empty(),
        "{:?}",
        emu.emu().requests()
    );
}

/// `--last` is the state before the last change that was not a restore: run twice, the
/// second run changes nothing and says so; the restore is undone by its own command.
/// A case of the reliability suite (`reliability.rs`), which runs it.
pub fn rerunning_restore_last_changes_nothing_and_the_restore_has_its_own_undo() {
    let ws = Workspace::new("last-twice");
    ws.migration("0001_users.sql", USERS);
    ws.xtask(&["db-migrate"]).expect(0, &[]);
    ws.migration(
        "0002_tags.sql",
        "CREATE TABLE tags (id INTEGER PRIMARY KEY, name TEXT NOT NULL);\n",
    );
    ws.xtask(&["db-migrate"])
        .expect(0, &["applied 1 migration"]);
    ws.query("INSERT INTO users (email) VALUES ('kept@x.com')");

    let first = ws.xtask(&["db-restore", "--last"]);
    first.expect(0, &["--last:", "before db-migrate", "restored"]);
    assert_eq!(ws.applied_names(), ["0001_users.sql"]);
    let undo = printed_command(&first, "to return to the state before this run: ");

    let again = ws.xtask(&["db-restore", "--last", "--json"]);
    again.expect(0, &["nothing to do", "never undoes a restore"]);
    assert_eq!(again.json()["wrangler_calls"], 0);
    assert_eq!(
        ws.applied_names(),
        ["0001_users.sql"],
        "the second --last did not revert the first"
    );

    // The restore's own undo brings back what it replaced, the row written after too.
    xtask_args(&ws, &undo).expect(0, &["restored"]);
    assert_eq!(ws.applied_names(), ["0001_users.sql", "0002_tags.sql"]);
    assert_eq!(
        ws.query("SELECT count(*) AS n FROM users")[0]["n"],
        1,
        "the row written before the restore is back"
    );
}

/// A line of the backup index cut short (a crash mid-write) is set aside, reported and
/// kept; the undo printed afterwards works. On a full disk nothing is recorded, nothing
/// changes, and no undo line refers to an entry that is not there.
/// A case of the reliability suite (`reliability.rs`), which runs it.
pub fn a_torn_index_line_is_set_aside_and_the_undo_printed_after_it_works() {
    let ws = Workspace::new("torn-index");
    ws.migration("0001_users.sql", USERS);
    ws.xtask(&["db-migrate"]).expect(0, &[]);
    let index = ws.dir.join("backups/index.jsonl");
    let torn = "{\"id\": \"20261206T000000Z-dead\", \"env\": \"loc";
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&index)
            .unwrap();
        f.write_all(torn.as_bytes()).unwrap();
    }
    ws.migration(
        "0002_tags.sql",
        "CREATE TABLE tags (id INTEGER PRIMARY KEY, name TEXT NOT NULL);\n",
    );
    let run = ws.xtask(&["db-migrate"]);
    run.expect(
        0,
        &["was cut short", "index.jsonl.torn", "applied 1 migration"],
    );
    let side = std::fs::read_to_string(ws.dir.join("backups/index.jsonl.torn")).unwrap();
    assert!(side.contains(torn), "kept aside: {side}");
    let text = std::fs::read_to_string(&index).unwrap();
    assert!(text.ends_with('\n'));
    for line in text.lines() {
        serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    }
    let list = ws.xtask(&["db-backup", "--list"]);
    list.expect(0, &[]);
    assert!(!list.stderr.contains("warning"), "{}", list.stderr);
    let undo = printed_command(&run, "to return to the state before this run: ");
    xtask_args(&ws, &undo).expect(0, &["restored"]);
    assert_eq!(ws.applied_names(), ["0001_users.sql"]);
}

/// A case of the reliability suite (`reliability.rs`), which runs it.
pub fn on_a_full_disk_nothing_is_recorded_and_nothing_changes() {
    let ws = Workspace::new("full-disk");
    ws.migration("0001_users.sql", USERS);
    ws.xtask(&["db-migrate"]).expect(0, &[]);
    let index = ws.dir.join("backups/index.jsonl");
    // A full disk: every write to the index fails with ENOSPC.
    std::fs::rename(&index, ws.dir.join("backups/index.saved")).unwrap();
    std::os::unix::fs::symlink("/dev/full", &index).unwrap();
    ws.migration(
        "0002_tags.sql",
        "CREATE TABLE tags (id INTEGER PRIMARY KEY, name TEXT NOT NULL);\n",
    );
    let snapshots = || {
        std::fs::read_dir(ws.dir.join("backups/local"))
            .unwrap()
            .count()
    };
    let before = snapshots();
    let full = ws.xtask(&["db-migrate"]);
    assert_eq!(snapshots(), before, "no snapshot the index does not know");
    full.expect(
        1,
        &["cannot write the backup index", "nothing was recorded"],
    );
    assert!(
        !full
            .stderr
            .contains("to return to the state before this run"),
        "{}",
        full.stderr
    );
    assert_eq!(ws.applied_names(), ["0001_users.sql"], "nothing changed");
}

/// A wrangler that cuts the export short (its last bytes) and exits 0: the backup does
/// not read back whole, so it is not recorded; it is kept apart, and no scratch is left.
/// A case of the reliability suite (`reliability.rs`), which runs it.
pub fn an_export_cut_short_is_not_recorded() {
    let ws = Workspace::sample("cut-export");
    let emu = ws.emulator();
    ws.xtask_remote(&emu, &["db-migrate", "--env", "staging"], &[])
        .expect(0, &[]);
    ws.xtask_remote(&emu, &["db-seed", "--env", "staging"], &[])
        .expect(0, &[]);
    let wrapper = ws.dir.join("cutting-wrangler.sh");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nPATH=\"{}:$PATH\" \"{}\" \"$@\"\nrc=$?\nout=\nprev=\nfor a in \"$@\"; do\n  [ \"$prev\" = --output ] && out=$a\n  prev=$a\ndone\n\
             if [ -n \"$out\" ] && [ -f \"$out\" ]; then\n  size=$(wc -c < \"$out\")\n  truncate -s $((size - 5)) \"$out\"\nfi\nexit $rc\n",
            crate::support::node_bin_dir().display(),
            crate::support::wrangler_bin().display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let run = ws.xtask_remote(
        &emu,
        &["db-backup", "--env", "staging"],
        &[("WRANGLER", wrapper.to_str().unwrap())],
    );
    run.expect(
        1,
        &[
            "does not read back whole",
            "ends inside a statement",
            "it was not recorded",
            "kept apart",
        ],
    );
    assert!(!run.stderr.contains("restore it with"), "{}", run.stderr);
    let list = ws.xtask(&["db-backup", "--list", "--json"]);
    assert!(
        list.json()
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["kind"] != "export"),
        "{}",
        list.stdout
    );
    let rejected: Vec<_> = std::fs::read_dir(ws.dir.join("backups/rejected"))
        .unwrap()
        .collect();
    assert_eq!(rejected.len(), 1);
    let partial: Vec<_> = std::fs::read_dir(ws.dir.join("backups/.partial"))
        .unwrap()
        .collect();
    assert!(partial.is_empty(), "{partial:?}");
}

/// The folders and the undo prefix are settings: a team whose layout differs from the
/// sample's names its own.
#[test]
fn the_backups_and_test_data_folders_and_the_undo_prefix_are_settings() {
    let ws = Workspace::new("own-layout");
    ws.write(
        "xtask.jsonc",
        r#"{ "test_data_dir": "db/fixtures", "backups_dir": ".d1/backups", "command_prefix": "cargo dev" }"#,
    );
    ws.migration("0001_users.sql", USERS);
    ws.write(
        "db/fixtures/seed-users.sql",
        "INSERT INTO users (id, email) VALUES (900001, 'seed@example.invalid');\n",
    );
    let run = ws.xtask(&["db-migrate"]);
    run.expect(
        0,
        &[
            "restore point: snapshot .d1/backups/local/",
            "to return to the state before this run: cargo dev db-restore --backup",
        ],
    );
    assert!(!ws.dir.join("backups").exists());
    assert!(ws.dir.join(".d1/backups/index.jsonl").is_file());
    ws.xtask(&["db-seed"]).expect(0, &["seed-users.sql"]);
    assert_eq!(
        ws.query("SELECT count(*) AS n FROM users WHERE id = 900001")[0]["n"],
        1
    );
}
