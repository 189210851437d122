//! `deploy` and `rollback` against the emulator's D1 and Workers APIs, with the real
//! wrangler: code and database move together, and back together. What is live is checked
//! through raw wrangler (`deployments list --json`, `d1 migrations list`), never through
//! the xtask's own report.

use crate::emulator_wrangler::{worker_source, WORKER_CONFIG};
use crate::reliability::USERS;
use crate::support::{repo_root, Remote, Workspace};

/// A workspace with a small Worker (`worker/index.js`) and its first migration.
pub fn worker_workspace(tag: &str) -> Workspace {
    let ws = Workspace::new(tag);
    ws.write("wrangler.jsonc", WORKER_CONFIG);
    ws.write("worker/index.js", worker_source("v1"));
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

/// The sample workspace's own Worker, smoke script and migrations (with `WORKER_CONFIG`'s
/// databases, which the emulator holds).
fn sample_with_worker(tag: &str) -> Workspace {
    let ws = Workspace::sample(tag);
    ws.write("wrangler.jsonc", WORKER_CONFIG);
    for file in ["worker/index.js", "scripts/smoke.sh"] {
        ws.write(file, std::fs::read(repo_root().join(file)).unwrap());
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        ws.dir.join("scripts/smoke.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    ws
}

const WISHLISTS: &str = "CREATE TABLE wishlists (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users(id), product_id INTEGER NOT NULL REFERENCES products(id));\n";

/// The flow: deploy v1, then a migration and new code as v2 (live, applied, as raw
/// wrangler shows); `rollback` (v1 live, the table gone, the tracking table as before); a
/// failing smoke test rolls both back itself; production without `--yes` or a terminal
/// is refused with nothing changed.
#[test]
fn code_and_database_deploy_and_roll_back_together() {
    let ws = sample_with_worker("deploy");
    let emu = ws.emulator();
    let smoke = ["--smoke", "scripts/smoke.sh"];
    let v1 = ws.xtask_remote(
        &emu,
        &[&["deploy", "--env", "staging", "--json"][..], &smoke].concat(),
        &[],
    );
    v1.expect(
        0,
        &[
            "first deploy",
            "applied 2 migrations",
            "smoke: staging serves",
        ],
    );
    let v1_version = v1.json()["new_version"].as_str().unwrap().to_string();
    assert_eq!(v1.json()["previous_version"], serde_json::Value::Null);
    let (tables, applied) = ws.remote_tables_and_applied(&emu, "staging");
    assert_eq!(applied.len(), 2);
    assert!(!tables.contains(&"wishlists".to_string()));

    // v2: a migration and new code.
    ws.migration("0003_wishlists.sql", WISHLISTS);
    let code = std::fs::read_to_string(repo_root().join("worker/index.js")).unwrap();
    let v2_code = code.replace("ok: true,", "ok: true, release: 2,");
    assert_ne!(v2_code, code);
    ws.write("worker/index.js", v2_code);
    // --dry-run: the plan, the live version, nothing deployed or applied.
    let plan = ws.xtask_remote(
        &emu,
        &["deploy", "--env", "staging", "--dry-run", "--json"],
        &[],
    );
    plan.expect(0, &["dry run: nothing is changed", "wrangler deploy"]);
    assert_eq!(plan.json()["live_version"], v1_version.as_str());
    assert_eq!(plan.json()["would_apply"][0], "0003_wishlists.sql");
    assert_eq!(emu.emu().live_worker("e2e-staging").unwrap().0, v1_version);
    assert_eq!(ws.remote_pending(&emu, "staging"), ["0003_wishlists.sql"]);
    // (The smoke script proved itself on v1; this one checks what it is given.)
    let v2 = ws.xtask_remote(
        &emu,
        &[
            "deploy",
            "--env",
            "staging",
            "--json",
            "--smoke",
            "test \"$XTASK_WORKER_PREVIOUS_VERSION\" != \"$XTASK_WORKER_VERSION\" && test -n \"$XTASK_DEPLOY_ID\"",
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
        .contains("release: 2"));
    assert!(
        ws.remote_pending(&emu, "staging").is_empty(),
        "raw wrangler sees 0003 applied"
    );

    // rollback: v1 live, the migration's table gone, the tracking table as before.
    let back = ws.xtask_remote(
        &emu,
        &["rollback", "--env", "staging", "--yes", "--json"],
        &[],
    );
    back.expect(0, &["is lost", "to undo this rollback:", &v2_version]);
    assert_eq!(emu.emu().live_worker("e2e-staging").unwrap().0, v1_version);
    let (after, applied_after) = ws.remote_tables_and_applied(&emu, "staging");
    assert_eq!(after, tables);
    assert_eq!(applied_after, applied);
    assert_eq!(ws.remote_pending(&emu, "staging"), ["0003_wishlists.sql"]);
    assert!(
        back.json()["previous_bookmark"].is_string(),
        "{}",
        back.stdout
    );

    // A failing smoke command: both halves go back on their own, exit 1.
    let failed = ws.xtask_remote(
        &emu,
        &["deploy", "--env", "staging", "--smoke", "false", "--json"],
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
    // One JSON document: the record as it ended, with the failure.
    let doc = failed.json();
    assert_eq!(doc["outcome"], "rolled-back", "{doc}");
    assert_eq!(doc["error"]["exit"], 1, "{doc}");
    assert_eq!(doc["error"]["kind"], "failed", "{doc}");
    assert_eq!(emu.emu().live_worker("e2e-staging").unwrap().0, v1_version);
    assert_eq!(
        ws.remote_tables_and_applied(&emu, "staging"),
        (tables, applied)
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

/// Refusals that need no wrangler process: each names what to do, exits 2 (usage) or 4
/// (refused), and changes nothing.
#[test]
fn deploy_and_rollback_refuse_before_anything_runs() {
    let ws = worker_workspace("deploy-refusals");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let utc = |secs: i64| {
        let out = std::process::Command::new("date")
            .args(["-u", "-d", &format!("@{secs}"), "+%Y-%m-%d %H:%M:%S"])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let record = |id: &str, age_days: i64, previous: Option<&str>| {
        serde_json::json!({
            "id": id, "env": "staging", "worker": "e2e-staging", "database": "e2e-staging",
            "database_id": "00000000-0000-0000-0000-000000000002",
            "restore_point": "20260101T000000Z-0001", "bookmark": "00000001-00000001-00000001-0",
            "restore_point_at": utc(now - age_days * 86_400),
            "previous_version": previous, "new_version": "v-new",
            "migrations_applied": ["0001_users.sql"],
            "started_at": utc(now - age_days * 86_400), "finished_at": utc(now - age_days * 86_400),
            "outcome": "deployed", "note": null,
        })
        .to_string()
    };
    ws.write(
        "backups/deploys.jsonl",
        format!(
            "{}\n{}\n",
            record("old-deploy", 40, Some("v-old")),
            record("first-deploy", 40, None)
        ),
    );
    // A restore point past Time Travel's 30 days.
    ws.xtask(&["rollback", "--env", "staging", "--to", "old-deploy"])
        .expect(4, &["older than Time Travel keeps", "nothing was changed"]);
    // The newest deployed one is the default, and it is refused the same way.
    ws.xtask(&["rollback", "--env", "staging"])
        .expect(4, &["first-deploy", "older than Time Travel keeps"]);
    // A first deploy has no earlier Worker version.
    ws.xtask(&[
        "rollback",
        "--env",
        "staging",
        "--to",
        "first-deploy",
        "--code-only",
    ])
    .expect(4, &["first", "no earlier version"]);
    ws.xtask(&["rollback", "--env", "staging", "--to", "nope"])
        .expect(2, &["no deploy nope", "deploy --list"]);
    ws.xtask(&["rollback", "--env", "staging", "--code-only", "--db-only"])
        .expect(2, &["--db-only"]);
    ws.xtask(&["rollback"]).expect(2, &["needs --env"]);
    ws.xtask(&["deploy"]).expect(2, &["needs --env", "staging"]);
    ws.xtask(&["deploy", "--env", "staging", "--no-backup"])
        .expect(2, &["drop --no-backup"]);
    ws.xtask(&["deploy", "--list", "--env", "staging"])
        .expect(0, &["old-deploy", "first-deploy"]);
    // A config without `main`: nothing to deploy.
    ws.write("wrangler.jsonc", crate::support::CONFIG);
    ws.xtask(&["deploy", "--env", "staging"])
        .expect(2, &["no `main`", "db-migrate --env staging"]);
    let records = std::fs::read_to_string(ws.dir.join("backups/deploys.jsonl")).unwrap();
    assert_eq!(records.lines().count(), 2, "nothing was recorded");
}
