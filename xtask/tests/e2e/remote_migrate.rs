//! End-to-end: `--env staging` / `--env production` with the real wrangler talking to the
//! D1 API emulator, checked afterwards in the emulator's database and, where wrangler's own
//! view is the point, through wrangler itself.

use crate::support::{Workspace, TOKEN};
use d1_emulator::{Fault, FaultKind};

const USERS: &str = "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE);\n";
const POSTS: &str =
    "CREATE TABLE posts (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users(id));\n";

fn workspace(tag: &str) -> Workspace {
    let ws = Workspace::new(tag);
    ws.migration("0001_users.sql", USERS)
        .migration("0002_posts.sql", POSTS);
    ws
}

/// Every file the run wrote, and every output, must be free of the token.
fn assert_no_token(ws: &Workspace, runs: &[&crate::support::Run]) {
    for run in runs {
        assert!(
            !run.stdout.contains(TOKEN) && !run.stderr.contains(TOKEN),
            "token printed"
        );
    }
    let mut stack = vec![ws.dir.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                if !path.ends_with("emulator-data") {
                    stack.push(path);
                }
            } else if let Ok(bytes) = std::fs::read(&path) {
                assert!(
                    !String::from_utf8_lossy(&bytes).contains(TOKEN),
                    "{} holds the token",
                    path.display()
                );
            }
        }
    }
}

#[test]
fn staging_and_production_migrate_from_empty() {
    let ws = workspace("remote-empty");
    let emu = ws.remote();
    let gh = ws.dir.join("github-output");
    let gh_env = [("GITHUB_OUTPUT", gh.to_str().unwrap())];

    let staging = ws.xtask_remote(&emu, &["db-migrate", "--env", "staging", "--json"], &gh_env);
    staging.expect(
        0,
        &[
            "applied 2 migrations",
            "restore point: Time Travel bookmark",
            "wrangler d1 time-travel restore DB --env staging",
        ],
    );
    let doc = staging.json();
    // Bookmark, state, apply with its read-back: three wrangler processes.
    assert_eq!(doc["wrangler_calls"], 3);
    assert_eq!(doc["database"]["remote"], true);
    let bookmark = doc["restore_point"]["bookmark"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(std::fs::read_to_string(&gh)
        .unwrap()
        .contains(&format!("bookmark={bookmark}\n")));
    assert!(
        ws.remote_pending(&emu, "staging").is_empty(),
        "raw wrangler sees nothing pending"
    );
    assert_eq!(
        ws.remote_tables_and_applied(&emu, "staging"),
        (
            vec!["posts".into(), "users".into()],
            vec!["0001_users.sql".into(), "0002_posts.sql".into()]
        )
    );

    let prod = ws.xtask_remote(
        &emu,
        &["db-migrate", "--env", "production", "--yes"],
        &gh_env,
    );
    prod.expect(0, &["confirmed by --yes", "applied 2 migrations"]);
    assert!(ws.remote_pending(&emu, "production").is_empty());

    let again = ws.xtask_remote(
        &emu,
        &["db-migrate", "--env", "production", "--yes", "--json"],
        &[],
    );
    again.expect(0, &["nothing to apply"]);
    assert_eq!(
        again.json()["wrangler_calls"],
        2,
        "nothing to apply: lock and state, release (the restore point is taken only when there is something to do)"
    );
    let status = ws.xtask_remote(
        &emu,
        &["db-status", "--env", "staging", "--check", "--json"],
        &[],
    );
    status.expect(0, &[]);
    assert_eq!(status.json()["applied"].as_array().unwrap().len(), 2);
    assert_no_token(&ws, &[&staging, &prod, &again, &status]);
}

#[test]
fn the_captured_bookmark_restores_the_schema_from_before() {
    let ws = workspace("remote-bookmark");
    let emu = ws.remote();
    ws.xtask_remote(&emu, &["db-migrate", "--env", "staging", "--to", "1"], &[])
        .expect(0, &[]);
    let run = ws.xtask_remote(&emu, &["db-migrate", "--env", "staging", "--json"], &[]);
    run.expect(0, &["applied 1 migration: 0002_posts.sql"]);
    let undo = run.json()["restore_point"]["undo_wrangler"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(run.json()["restore_point"]["undo"]
        .as_str()
        .unwrap()
        .starts_with("cargo xtask db-restore --env staging --bookmark "));
    let bookmark = run.json()["restore_point"]["bookmark"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(undo.ends_with(&format!("--bookmark {bookmark}")), "{undo}");

    // The printed command, run through raw wrangler, brings back the schema from before.
    let args: Vec<&str> = undo.split_whitespace().skip(1).collect();
    let restored = ws.wrangler_remote(&emu, &args);
    assert_eq!(restored.code, 0, "{}\n{}", restored.stdout, restored.stderr);
    assert_eq!(
        ws.remote_tables_and_applied(&emu, "staging"),
        (vec!["users".into()], vec!["0001_users.sql".into()])
    );
    assert_eq!(ws.remote_pending(&emu, "staging"), vec!["0002_posts.sql"]);
}

#[test]
fn production_without_yes_and_without_a_tty_is_refused() {
    let ws = workspace("remote-refused");
    let emu = ws.remote();
    let run = ws.xtask_remote(&emu, &["db-migrate", "--env", "production"], &[]);
    run.expect(
        4,
        &[
            "production is a protected environment",
            "pass --yes",
            "nothing was changed",
        ],
    );
    assert!(
        !run.stderr.contains("time-travel"),
        "no restore point either"
    );
    let (tables, applied) = ws.remote_tables_and_applied(&emu, "production");
    assert!(
        tables.is_empty() && applied.is_empty(),
        "{tables:?} {applied:?}"
    );
    // --no-backup is refused there too.
    ws.xtask_remote(
        &emu,
        &["db-migrate", "--env", "production", "--yes", "--no-backup"],
        &[],
    )
    .expect(4, &["--no-backup is not allowed"]);
}

#[test]
fn an_unconfirmed_query_item_is_caught_although_wrangler_exits_0() {
    let ws = workspace("remote-item");
    let emu = ws.emulator();
    // /query #1 is the state read; #2 is the apply.
    emu.emu()
        .add_fault(Fault::new("/query", FaultKind::ItemUnsuccessful).nth(2));
    let run = ws.xtask_remote(&emu, &["db-migrate", "--env", "staging"], &[]);
    run.expect(
        1,
        &[
            // Both files run when sent again (rolled back): the fault was not in a file,
            // and the message does not blame one.
            "the failure was not in a migration file",
            "wrangler exited 0, but D1 did not report success",
            "nothing from this run was applied",
            "staging DB (e2e-staging, 00000000-0000-0000-0000-000000000002) has no migration applied",
        ],
    );
    let (tables, applied) = ws.remote_tables_and_applied(&emu, "staging");
    assert!(
        tables.is_empty() && applied.is_empty(),
        "{tables:?} {applied:?}"
    );

    // Raw wrangler under the same fault: it marks the migration failed and exits 0.
    emu.emu().clear_faults();
    emu.emu()
        .add_fault(Fault::new("/query", FaultKind::ItemUnsuccessful).nth(3));
    let raw = ws.wrangler_remote(
        &emu,
        &[
            "d1",
            "migrations",
            "apply",
            "DB",
            "--env",
            "staging",
            "--remote",
        ],
    );
    assert_eq!(raw.code, 0, "wrangler's own exit status on this fault");
}

#[test]
fn a_failing_remote_migration_names_the_file_and_changes_nothing() {
    let ws = workspace("remote-fail");
    ws.migration(
        "0003_broken.sql",
        "CREATE TABLE t (x);\nINSERT INTO no_such_table VALUES (1);\n",
    );
    let emu = ws.remote();
    let run = ws.xtask_remote(&emu, &["db-migrate", "--env", "staging"], &[]);
    run.expect(
        1,
        &[
            "migration 0003_broken.sql failed",
            "no such table",
            "nothing from this run was applied",
        ],
    );
    let (tables, applied) = ws.remote_tables_and_applied(&emu, "staging");
    assert!(
        tables.is_empty() && applied.is_empty(),
        "{tables:?} {applied:?}"
    );
}

#[test]
fn a_wrong_token_is_refused_without_printing_either_token() {
    let ws = workspace("remote-token");
    let emu = ws.remote();
    let wrong = "tok-wrong-0000000000000000";
    let run = ws.xtask_remote(
        &emu,
        &["db-status", "--env", "staging"],
        &[("CLOUDFLARE_API_TOKEN", wrong)],
    );
    run.expect(
        1,
        &[
            "reading the tracking table of staging",
            "Authentication error",
        ],
    );
    assert!(!run.stderr.contains(wrong) && !run.stdout.contains(wrong));
}
