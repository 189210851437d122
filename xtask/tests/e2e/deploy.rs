//! `deploy` and `rollback` against the emulator's D1 and Workers APIs, with the real
//! wrangler: code and database move together, and back together. What is live is checked
//! through raw wrangler (`deployments list --json`, `d1 migrations list`), never through
//! the xtask's own report.

use crate::emulator_wrangler::{worker_source, WORKER_CONFIG};
use crate::reliability::{POSTS, USERS};
use crate::support::{Remote, Workspace};

/// A workspace with a Worker (`src/index.js`, saying `tag`) and its first migration.
pub fn worker_workspace(tag: &str) -> Workspace {
    let ws = Workspace::new(tag);
    ws.write("wrangler.jsonc", WORKER_CONFIG);
    ws.write("src/index.js", worker_source("v1"));
    ws.migration("0001_users.sql", USERS);
    ws
}

/// The version serving all traffic, as raw `wrangler deployments list --json` says.
pub fn live_version(ws: &Workspace, emu: &Remote, env: &str) -> String {
    let run = ws.wrangler_remote(emu, &["deployments", "list", "--env", env, "--json"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let list: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let newest = list.as_array().unwrap().last().unwrap();
    newest["versions"][0]["version_id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn code_and_database_deploy_and_roll_back_together() {
    let ws = worker_workspace("deploy");
    let emu = ws.emulator();
    let v1 = ws.xtask_remote(&emu, &["deploy", "--env", "staging", "--json"], &[]);
    v1.expect(0, &["first deploy", "applied 1 migration: 0001_users.sql"]);
    let v1_doc = v1.json();
    let v1_version = v1_doc["new_version"].as_str().unwrap().to_string();
    assert_eq!(v1_doc["previous_version"], serde_json::Value::Null);

    // v2: a migration and new code, with a smoke command that sees what was deployed.
    ws.migration("0002_posts.sql", POSTS);
    ws.write("src/index.js", worker_source("v2"));
    let v2 = ws.xtask_remote(
        &emu,
        &[
            "deploy",
            "--env",
            "staging",
            "--json",
            "--smoke",
            "test \"$XTASK_ENV\" = staging && test -n \"$XTASK_WORKER_VERSION\" && wrangler --version",
        ],
        &[],
    );
    v2.expect(0, &["smoke test passed", "to undo this deploy:"]);
    let v2_version = v2.json()["new_version"].as_str().unwrap().to_string();
    assert_eq!(v2.json()["previous_version"], v1_version.as_str());
    assert_ne!(v1_version, v2_version);
    assert_eq!(live_version(&ws, &emu, "staging"), v2_version);
    assert!(emu
        .emu()
        .live_worker("e2e-staging")
        .unwrap()
        .1
        .contains("\"v2 \""));
    assert!(
        ws.remote_pending(&emu, "staging").is_empty(),
        "raw wrangler sees 0002 applied"
    );

    // rollback: v1 live, the migration's table gone, the tracking table as before.
    let back = ws.xtask_remote(
        &emu,
        &["rollback", "--env", "staging", "--yes", "--json"],
        &[],
    );
    back.expect(0, &["is lost", "to undo this rollback:", &v2_version]);
    assert_eq!(live_version(&ws, &emu, "staging"), v1_version);
    let (tables, applied) = ws.remote_tables_and_applied(&emu, "staging");
    assert_eq!(tables, ["users"]);
    assert_eq!(applied, ["0001_users.sql"]);
    assert_eq!(ws.remote_pending(&emu, "staging"), ["0002_posts.sql"]);
    assert!(
        back.json()["previous_bookmark"].is_string(),
        "{}",
        back.stdout
    );

    // A failing smoke command: both halves go back on their own, exit 1.
    let failed = ws.xtask_remote(
        &emu,
        &["deploy", "--env", "staging", "--smoke", "false"],
        &[],
    );
    failed.expect(
        1,
        &[
            "the smoke command `false` failed",
            "is live again",
            "back at the restore point",
        ],
    );
    assert_eq!(live_version(&ws, &emu, "staging"), v1_version);
    let (tables, applied) = ws.remote_tables_and_applied(&emu, "staging");
    assert_eq!(
        (tables, applied),
        (
            vec!["users".to_string()],
            vec!["0001_users.sql".to_string()]
        )
    );
    let list = ws.xtask(&["deploy", "--list", "--env", "staging", "--json"]);
    let outcomes: Vec<String> = list.json()["deploys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["outcome"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(outcomes, ["deployed", "undone", "rolled-back"]);

    // Production without --yes and without a terminal: exit 4, nothing changed.
    let before = emu.emu().requests().len();
    let prod = ws.xtask_remote(&emu, &["deploy", "--env", "production"], &[]);
    prod.expect(4, &["production"]);
    assert_eq!(
        emu.emu().requests().len(),
        before,
        "no request reached the API"
    );
    assert_eq!(emu.emu().live_worker("e2e-production"), None);
}
