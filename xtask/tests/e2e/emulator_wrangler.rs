//! The D1 API emulator driven by the real wrangler: every `wrangler d1` command of the
//! spec (d1-remote-api.md) works against it.

use crate::support::{remote_id, Workspace};

fn ok(run: crate::support::Run) -> crate::support::Run {
    assert_eq!(
        run.code, 0,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    run
}

#[test]
fn list_info_execute_import_export_and_time_travel() {
    let ws = Workspace::new("emu-wrangler");
    let emu = ws.emulator();
    // 13 databases (the three of the config, ten more): wrangler asks for page 2 after a
    // full page of 10.
    for i in 0..10 {
        emu.emu()
            .create_database(
                &format!("00000000-0000-0000-0000-0000000001{i:02}"),
                &format!("extra-{i}"),
            )
            .unwrap();
    }
    let list = ok(ws.wrangler_remote(&emu, &["d1", "list", "--json"]));
    let list: serde_json::Value = serde_json::from_str(&list.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 13);

    let info = ok(ws.wrangler_remote(&emu, &["d1", "info", "DB", "--env", "staging", "--json"]));
    assert!(info.stdout.contains("e2e-staging"), "{}", info.stdout);
    let by_name = ok(ws.wrangler_remote(&emu, &["d1", "info", "e2e-prod", "--json"]));
    assert!(
        by_name.stdout.contains(remote_id("production")),
        "{}",
        by_name.stdout
    );

    ok(ws.wrangler_remote(
        &emu,
        &[
            "d1",
            "execute",
            "DB",
            "--env",
            "staging",
            "--remote",
            "--command",
            "CREATE TABLE t (id INTEGER PRIMARY KEY, s TEXT)",
        ],
    ));
    let bookmark = ws.remote_bookmark(&emu, "staging");

    ws.write(
        "rows.sql",
        "INSERT INTO t (s) VALUES ('a;b');\r\nINSERT INTO t (s) VALUES ('c');\n",
    );
    ok(ws.wrangler_remote(
        &emu,
        &[
            "d1", "execute", "DB", "--env", "staging", "--remote", "--file", "rows.sql", "--yes",
        ],
    ));
    assert_eq!(
        ws.remote_query(&emu, "staging", "SELECT count(*) AS n FROM t")[0]["n"],
        2
    );

    ok(ws.wrangler_remote(
        &emu,
        &[
            "d1", "export", "DB", "--env", "staging", "--remote", "--output", "dump.sql",
        ],
    ));
    let dump = std::fs::read_to_string(ws.dir.join("dump.sql")).unwrap();
    assert!(dump.starts_with("PRAGMA defer_foreign_keys=TRUE;"));
    assert!(dump.contains("VALUES(1,'a;b');"), "{dump}");
    ok(ws.wrangler_remote(
        &emu,
        &[
            "d1",
            "export",
            "DB",
            "--env",
            "staging",
            "--remote",
            "--no-data",
            "--output",
            "schema.sql",
        ],
    ));
    assert!(!std::fs::read_to_string(ws.dir.join("schema.sql"))
        .unwrap()
        .contains("INSERT"));

    // The export loads into production through the import API and gives the same rows.
    ok(ws.wrangler_remote(
        &emu,
        &[
            "d1",
            "execute",
            "DB",
            "--env",
            "production",
            "--remote",
            "--file",
            "dump.sql",
            "--yes",
        ],
    ));
    assert_eq!(
        ws.remote_query(&emu, "production", "SELECT s FROM t ORDER BY id")[1]["s"],
        "c"
    );

    let restore = ok(ws.wrangler_remote(
        &emu,
        &[
            "d1",
            "time-travel",
            "restore",
            "DB",
            "--env",
            "staging",
            "--bookmark",
            &bookmark,
            "--json",
        ],
    ));
    let restore: serde_json::Value = serde_json::from_str(&restore.stdout).unwrap();
    assert_eq!(
        ws.remote_query(&emu, "staging", "SELECT count(*) AS n FROM t")[0]["n"],
        0
    );
    let previous = restore["previous_bookmark"].as_str().unwrap();
    ok(ws.wrangler_remote(
        &emu,
        &[
            "d1",
            "time-travel",
            "restore",
            "DB",
            "--env",
            "staging",
            "--bookmark",
            previous,
            "--json",
        ],
    ));
    assert_eq!(
        ws.remote_query(&emu, "staging", "SELECT count(*) AS n FROM t")[0]["n"],
        2,
        "previous_bookmark undoes it"
    );

    // By timestamp: a second after the last write names the current state (timestamps
    // have whole seconds; the last write may have happened in the current one).
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    ok(ws.wrangler_remote(
        &emu,
        &[
            "d1",
            "time-travel",
            "restore",
            "DB",
            "--env",
            "staging",
            "--timestamp",
            &now,
            "--json",
        ],
    ));
    assert_eq!(
        ws.remote_query(&emu, "staging", "SELECT count(*) AS n FROM t")[0]["n"],
        2
    );

    let failing = ws.wrangler_remote(
        &emu,
        &[
            "d1",
            "execute",
            "DB",
            "--env",
            "staging",
            "--remote",
            "--command",
            "SELECT * FROM nosuch",
        ],
    );
    assert_eq!(failing.code, 1);
    assert!(
        failing.stderr.contains("no such table: nosuch"),
        "{}",
        failing.stderr
    );
}

/// A Worker config: `CONFIG` with a module Worker (`worker/index.js`, as in the sample
/// workspace), whose D1 binding is the workspace's.
pub const WORKER_CONFIG: &str = r#"{
  "name": "e2e",
  "main": "worker/index.js",
  "compatibility_date": "2025-01-01",
  "d1_databases": [
    { "binding": "DB", "database_name": "e2e-local", "database_id": "00000000-0000-0000-0000-000000000001" },
  ],
  "env": {
    "staging": { "d1_databases": [ { "binding": "DB", "database_name": "e2e-staging", "database_id": "00000000-0000-0000-0000-000000000002" } ] },
    "production": { "d1_databases": [ { "binding": "DB", "database_name": "e2e-prod", "database_id": "00000000-0000-0000-0000-000000000003" } ] },
  },
}
"#;

pub fn worker_source(tag: &str) -> String {
    format!(
        "export default {{\n  async fetch(request, env) {{\n    const row = await env.DB.prepare(\"SELECT 1 AS one\").first();\n    return new Response(\"{tag} \" + row.one);\n  }},\n}};\n"
    )
}

fn paths(emu: &crate::support::Remote) -> Vec<String> {
    emu.emu()
        .requests()
        .iter()
        .map(|r| {
            let path = r.path.split("/workers/").nth(1).unwrap_or(&r.path);
            format!("{} {path}", r.method)
        })
        .collect()
}

/// The Workers API as the pinned wrangler drives it: a first deploy (the upload deployed at
/// once), a later one (a version, then a deployment), `versions list`, `deployments list`,
/// `rollback`; each with the requests workers-api.md lists. Refusals as Cloudflare's:
/// a D1 binding to a database the account lacks, a fault on the deployment.
#[test]
fn workers_deploy_versions_deployments_and_rollback() {
    let ws = Workspace::new("emu-workers");
    ws.write("wrangler.jsonc", WORKER_CONFIG);
    ws.write("worker/index.js", worker_source("v1"));
    let emu = ws.emulator();
    let deploy = ok(ws.wrangler_remote(&emu, &["deploy", "--env", "staging"]));
    assert!(
        deploy.stdout.contains("Current Version ID:"),
        "{}",
        deploy.stdout
    );
    assert_eq!(
        paths(&emu),
        [
            "GET services/e2e-staging",
            "GET scripts/e2e-staging/secrets",
            "GET subdomain",
            "GET scripts/e2e-staging/deployments",
            "GET scripts/e2e-staging/settings",
            "PUT scripts/e2e-staging",
            "PATCH scripts/e2e-staging/script-settings",
            "GET workers/e2e-staging",
            "GET subdomain",
            "POST scripts/e2e-staging/subdomain",
        ]
    );
    let (v1, code) = emu.emu().live_worker("e2e-staging").unwrap();
    assert!(code.contains("\"v1 \""), "{code}");
    assert!(deploy.stdout.contains(&v1), "{}", deploy.stdout);

    ws.write("worker/index.js", worker_source("v2"));
    emu.emu().clear_requests();
    ok(ws.wrangler_remote(&emu, &["deploy", "--env", "staging"]));
    assert_eq!(
        paths(&emu),
        [
            "GET services/e2e-staging",
            "GET scripts/e2e-staging/secrets",
            "GET scripts/e2e-staging/deployments",
            "GET scripts/e2e-staging/settings",
            "POST scripts/e2e-staging/versions",
            "POST scripts/e2e-staging/deployments",
            "PATCH scripts/e2e-staging/script-settings",
            "GET workers/e2e-staging",
            "GET subdomain",
            "POST scripts/e2e-staging/subdomain",
        ]
    );
    let (v2, code) = emu.emu().live_worker("e2e-staging").unwrap();
    assert!(code.contains("\"v2 \"") && v2 != v1, "{code}");

    let list = ok(ws.wrangler_remote(&emu, &["deployments", "list", "--env", "staging", "--json"]));
    let list: serde_json::Value = serde_json::from_str(&list.stdout).unwrap();
    let live: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["versions"][0]["version_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        live,
        [v1.as_str(), v2.as_str()],
        "oldest first, as wrangler sorts them"
    );
    let versions =
        ok(ws.wrangler_remote(&emu, &["versions", "list", "--env", "staging", "--json"]));
    let versions: serde_json::Value = serde_json::from_str(&versions.stdout).unwrap();
    assert_eq!(versions.as_array().unwrap().len(), 2);

    // A fault on the deployment: wrangler fails and v2 stays live.
    emu.emu().add_fault(
        d1_emulator::Fault::new("/deployments", d1_emulator::FaultKind::Fail).method("POST"),
    );
    let failed = ws.wrangler_remote(&emu, &["rollback", "--env", "staging", "--yes"]);
    assert_ne!(failed.code, 0, "{}", failed.stdout);
    assert_eq!(emu.emu().live_worker("e2e-staging").unwrap().0, v2);
    emu.emu().clear_faults();

    emu.emu().clear_requests();
    let back = ok(ws.wrangler_remote(
        &emu,
        &["rollback", "--env", "staging", "--yes", "--message", "back"],
    ));
    assert!(back.stdout.contains(&v1), "{}", back.stdout);
    assert_eq!(
        paths(&emu),
        [
            "GET scripts/e2e-staging/deployments",
            &format!("GET scripts/e2e-staging/versions/{v2}"),
            "GET scripts/e2e-staging/deployments",
            &format!("GET scripts/e2e-staging/versions/{v1}"),
            "POST scripts/e2e-staging/deployments",
        ]
    );
    let (live, code) = emu.emu().live_worker("e2e-staging").unwrap();
    assert_eq!(live, v1);
    assert!(code.contains("\"v1 \""), "{code}");

    // A binding to a database the account does not have is refused; nothing is kept.
    ws.write(
        "wrangler.jsonc",
        WORKER_CONFIG.replace(
            "00000000-0000-0000-0000-000000000002",
            "00000000-0000-0000-0000-0000000000ff",
        ),
    );
    let refused = ws.wrangler_remote(&emu, &["deploy", "--env", "staging"]);
    assert_ne!(refused.code, 0, "{}", refused.stdout);
    assert!(
        format!("{}{}", refused.stdout, refused.stderr).contains("no D1 database"),
        "{}\n{}",
        refused.stdout,
        refused.stderr
    );
    assert_eq!(emu.emu().live_worker("e2e-staging").unwrap().0, v1);
}
