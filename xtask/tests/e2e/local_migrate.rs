//! End-to-end: the real xtask binary against the real wrangler's local D1, checked through
//! wrangler itself.

use crate::support::Workspace;

const USERS: &str = "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE);\n";
const POSTS: &str = "-- posts\nCREATE TABLE posts (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users(id));\nCREATE INDEX idx_posts_user ON posts(user_id);\n";
const TAGS: &str = "CREATE TABLE tags (id INTEGER PRIMARY KEY, label TEXT NOT NULL);\n";
/// Fails on D1: the table it inserts into does not exist. The table it creates first must
/// not survive the failure.
const BROKEN: &str = "CREATE TABLE half_done (x);\nINSERT INTO no_such_table VALUES (1);\n";

fn names(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| {
            x.as_str()
                .map(String::from)
                .unwrap_or_else(|| x["name"].as_str().unwrap().to_string())
        })
        .collect()
}

#[test]
fn migrate_from_empty_then_nothing_to_do() {
    let ws = Workspace::new("from-empty");
    ws.migration("0001_users.sql", USERS)
        .migration("0002_posts.sql", POSTS);

    let run = ws.xtask(&["db-migrate", "--json"]);
    run.expect(
        0,
        &["applied 2 migrations", "$ wrangler d1 execute DB --local"],
    );
    let doc = run.json();
    assert_eq!(
        names(&doc["applied"]),
        vec!["0001_users.sql", "0002_posts.sql"]
    );
    // One wrangler process for the whole run: state and read-back come from the file.
    assert_eq!(doc["wrangler_calls"], 1);

    assert_eq!(ws.applied_names(), vec!["0001_users.sql", "0002_posts.sql"]);
    assert_eq!(ws.tables(), vec!["posts", "users"]);
    assert!(
        ws.wrangler_pending().is_empty(),
        "raw wrangler sees nothing pending"
    );

    let again = ws.xtask(&["db-migrate", "--json"]);
    again.expect(0, &["nothing to apply"]);
    assert_eq!(again.json()["applied"], serde_json::json!([]));
    assert_eq!(again.json()["wrangler_calls"], 0);

    let status = ws.xtask(&["db-status", "--check", "--json"]);
    status.expect(0, &[]);
    let doc = status.json();
    assert_eq!(doc["env"], "local");
    assert_eq!(doc["database"]["binding"], "DB");
    assert_eq!(doc["database"]["remote"], false);
    assert_eq!(
        names(&doc["applied"]),
        vec!["0001_users.sql", "0002_posts.sql"]
    );
    assert_eq!(doc["pending"], serde_json::json!([]));
    assert_eq!(
        doc["wrangler_calls"], 0,
        "db-status on local starts no wrangler"
    );
}

#[test]
fn db_new_shows_pending_then_applies() {
    let ws = Workspace::new("db-new");
    ws.migration("0001_users.sql", USERS);
    ws.xtask(&["db-migrate"])
        .expect(0, &["applied 1 migration"]);

    let run = ws.xtask(&["db-new", "add", "tags", "--json"]);
    run.expect(0, &["created"]);
    assert_eq!(run.json()["name"], "0002_add_tags.sql");
    let path = ws.dir.join("migrations/0002_add_tags.sql");
    let header = std::fs::read_to_string(&path).unwrap();
    assert!(header.starts_with("-- 0002_add_tags.sql"), "{header}");

    // db-new never overwrites: a second file with the same name gets the next number.
    ws.xtask(&["db-new", "add_tags"])
        .expect(0, &["0003_add_tags.sql"]);
    std::fs::remove_file(ws.dir.join("migrations/0003_add_tags.sql")).unwrap();

    std::fs::write(&path, format!("{header}{TAGS}")).unwrap();
    let check = ws.xtask(&["db-status", "--check"]);
    check.expect(
        3,
        &["[ ] 0002_add_tags.sql", "[x] 0001_users.sql", "1 pending"],
    );

    ws.xtask(&["db-migrate"])
        .expect(0, &["applied 1 migration: 0002_add_tags.sql"]);
    ws.xtask(&["db-status", "--check"])
        .expect(0, &["2 applied, 0 pending"]);
    assert_eq!(
        ws.applied_names(),
        vec!["0001_users.sql", "0002_add_tags.sql"]
    );
    assert!(ws.tables().contains(&"tags".to_string()));
}

#[test]
fn to_leaves_later_files_pending_and_raw_wrangler_agrees() {
    let ws = Workspace::new("to");
    ws.migration("0001_users.sql", USERS)
        .migration("0002_posts.sql", POSTS)
        .migration("0003_tags.sql", TAGS);

    ws.xtask(&["db-migrate", "--to", "2"])
        .expect(0, &["up to 0002_posts.sql", "applied 2 migrations"]);
    assert_eq!(ws.wrangler_pending(), vec!["0003_tags.sql"]);
    assert_eq!(ws.applied_names(), vec!["0001_users.sql", "0002_posts.sql"]);
    let status = ws.xtask(&["db-status", "--json"]).json();
    assert_eq!(status["pending"], serde_json::json!(["0003_tags.sql"]));

    // --to an applied version has nothing to do; an unknown one is bad usage.
    ws.xtask(&["db-migrate", "--to", "0001_users"])
        .expect(0, &["nothing to apply"]);
    ws.xtask(&["db-migrate", "--to", "9"])
        .expect(2, &["no migration `9`", "newest is 0003_tags.sql"]);

    ws.xtask(&["db-migrate", "--to", "0003_tags.sql"])
        .expect(0, &["applied 1 migration"]);
    assert!(ws.wrangler_pending().is_empty());
}

#[test]
fn a_failing_migration_applies_nothing_and_says_so() {
    let ws = Workspace::new("failing");
    ws.migration("0001_users.sql", USERS);
    ws.xtask(&["db-migrate"]).expect(0, &[]);
    ws.migration("0002_posts.sql", POSTS)
        .migration("0003_broken.sql", BROKEN);

    let run = ws.xtask(&["db-migrate"]);
    run.expect(
        1,
        &[
            "migration 0003_broken.sql failed",
            "no_such_table",
            "nothing from this run was applied",
            "not applied: 0002_posts.sql, 0003_broken.sql",
            "1 migration applied, the newest 0001_users.sql",
        ],
    );
    // Read back from the file: all or nothing, and the failed file left no table behind.
    assert_eq!(ws.applied_names(), vec!["0001_users.sql"]);
    assert_eq!(ws.tables(), vec!["users"]);
}

#[test]
fn per_file_mode_keeps_the_files_before_a_failure() {
    let ws = Workspace::new("per-file");
    ws.migration("0001_users.sql", USERS)
        .migration("0002_posts.sql", POSTS)
        .migration("0003_broken.sql", BROKEN)
        .migration("0004_tags.sql", TAGS);

    let run = ws.xtask(&["db-migrate", "--per-file"]);
    run.expect(
        1,
        &[
            "migration 0003_broken.sql failed",
            "applied in this run and kept: 0001_users.sql, 0002_posts.sql",
            "not applied: 0003_broken.sql, 0004_tags.sql",
        ],
    );
    assert_eq!(ws.applied_names(), vec!["0001_users.sql", "0002_posts.sql"]);
    assert_eq!(ws.tables(), vec!["posts", "users"]);
    assert_eq!(
        ws.wrangler_pending(),
        vec!["0003_broken.sql", "0004_tags.sql"]
    );
}

#[test]
fn a_lint_error_changes_nothing() {
    let ws = Workspace::new("lint");
    ws.migration("0001_users.sql", USERS).migration(
        "0002_tx.sql",
        "BEGIN TRANSACTION;\nCREATE TABLE t(x);\nCOMMIT;\n",
    );
    let run = ws.xtask(&["db-migrate"]);
    run.expect(
        4,
        &[
            "lint found 2 errors",
            "0002_tx.sql:1",
            "`BEGIN` statement",
            "nothing was applied",
        ],
    );
    assert!(
        !run.stderr.contains("$ wrangler"),
        "no wrangler call: {}",
        run.stderr
    );
    assert!(ws.tables().is_empty());
    assert!(ws.applied_names().is_empty());
    ws.xtask(&["db-status", "--check"])
        .expect(3, &["error: 0002_tx.sql:1"]);
}

#[test]
fn dry_run_prints_the_plan_and_changes_nothing() {
    let ws = Workspace::new("dry-run");
    ws.migration("0001_users.sql", USERS)
        .migration("0002_posts.sql", POSTS);
    let run = ws.xtask(&["db-migrate", "--dry-run"]);
    run.expect(
        0,
        &[
            "dry run",
            "$ wrangler d1 execute DB --local",
            "0002_posts.sql",
        ],
    );
    assert!(
        !ws.dir.join(".wrangler/state").exists(),
        "a dry run creates no database"
    );
    // With --json, every dry run still prints one document.
    for args in [
        &["db-reset", "--dry-run", "--json"][..],
        &["db-backup", "--dry-run", "--json"][..],
    ] {
        let run = ws.xtask(args);
        run.expect(0, &["dry run"]);
        let doc = run.json();
        assert_eq!(doc["dry_run"], true, "{args:?}: {doc}");
        assert_eq!(doc["changed"], false, "{args:?}: {doc}");
        assert_eq!(doc["database"]["binding"], "DB", "{args:?}: {doc}");
    }
    assert!(
        !ws.dir.join(".wrangler/state").exists(),
        "still no database"
    );
}
