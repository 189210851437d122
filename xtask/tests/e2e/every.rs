//! `--database all` (each database of an environment in turn) and `db-status --env all`
//! (every environment and database in one table, remote reads in parallel), against the
//! real wrangler, locally and on staging in the emulator.

use crate::support::*;

const TWO_DATABASES: &str = r#"{
  "name": "every-e2e",
  "d1_databases": [
    { "binding": "DB", "database_name": "e2e-local", "database_id": "00000000-0000-0000-0000-000000000001" },
    { "binding": "AUDIT", "database_name": "e2e-audit-local", "database_id": "00000000-0000-0000-0000-0000000000a1", "migrations_dir": "audit-migrations" }
  ],
  "env": {
    "staging": { "d1_databases": [
      { "binding": "DB", "database_name": "e2e-staging", "database_id": "00000000-0000-0000-0000-000000000002" },
      { "binding": "AUDIT", "database_name": "e2e-audit-staging", "database_id": "00000000-0000-0000-0000-0000000000a2", "migrations_dir": "audit-migrations" }
    ] }
  }
}
"#;

#[test]
fn every_database_and_every_environment() {
    let ws = Workspace::new("every");
    ws.write("wrangler.jsonc", TWO_DATABASES);
    ws.migration(
        "0001_users.sql",
        "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL);\n",
    );
    ws.write(
        "audit-migrations/0001_events.sql",
        "CREATE TABLE events (id INTEGER PRIMARY KEY, what TEXT NOT NULL);\n",
    );
    let emu = ws.remote();

    // Staging, both databases, one JSON document; each has its own restore point.
    let run = ws.xtask_remote(
        &emu,
        &[
            "db-migrate",
            "--env",
            "staging",
            "--database",
            "all",
            "--json",
        ],
        &[],
    );
    run.expect(
        0,
        &["── staging DB (1 of 2) ──", "── staging AUDIT (2 of 2) ──"],
    );
    let doc = run.json();
    assert_eq!(doc["done"], serde_json::json!(["DB", "AUDIT"]));
    let entries = doc["databases"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert!(
        entries
            .iter()
            .all(|e| e["restore_point"]["bookmark"].is_string()),
        "{doc:#}"
    );
    for binding in ["DB", "AUDIT"] {
        let list = ws.wrangler_remote(
            &emu,
            &[
                "d1",
                "migrations",
                "list",
                binding,
                "--env",
                "staging",
                "--remote",
            ],
        );
        assert!(
            list.stdout.contains("No migrations to apply"),
            "{binding}: {}",
            list.stdout
        );
    }

    // One view of everything: local pending, staging done; --check says so with exit 3.
    let run = ws.xtask_remote(&emu, &["db-status", "--env", "all", "--json"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let rows = run.json()["environments"].as_array().unwrap().clone();
    let seen: Vec<(String, String, i64)> = rows
        .iter()
        .map(|r| {
            (
                r["env"].as_str().unwrap().to_string(),
                r["database"]["binding"].as_str().unwrap().to_string(),
                r["pending"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("local".into(), "DB".into(), 1),
            ("local".into(), "AUDIT".into(), 1),
            ("staging".into(), "DB".into(), 0),
            ("staging".into(), "AUDIT".into(), 0)
        ]
    );
    let run = ws.xtask_remote(&emu, &["db-status", "--env", "all", "--check"], &[]);
    run.expect(
        3,
        &[
            "ENV",
            "NEWEST",
            "0001_events.sql",
            "pending migrations or blocking problems in: local e2e-local, local e2e-audit-local",
        ],
    );

    // A failure stops the rest and says what is done: AUDIT's local migration breaks.
    ws.write(
        "audit-migrations/0002_broken.sql",
        "INSERT INTO events (id, what) VALUES (1, NULL);\n",
    );
    let run = ws.xtask(&["db-migrate", "--database", "all", "--no-backup"]);
    assert_ne!(run.code, 0);
    run.expect(
        run.code,
        &[
            "--database all stopped at AUDIT",
            "done: DB",
            "not run: none",
        ],
    );
    assert_eq!(
        ws.applied_names(),
        ["0001_users.sql"],
        "DB was migrated before AUDIT failed"
    );

    // Backups of every database.
    ws.xtask_remote(
        &emu,
        &["db-backup", "--env", "staging", "--database", "all"],
        &[],
    )
    .expect(0, &["── staging AUDIT (2 of 2) ──"]);
    let backups = std::fs::read_dir(ws.dir.join("backups/staging"))
        .unwrap()
        .count();
    assert_eq!(backups, 2);

    // --database all and --env all go only where they make sense.
    ws.xtask(&["db-reset", "--database", "all"])
        .expect(2, &["--database all goes with"]);
    ws.xtask(&["db-migrate", "--env", "all"])
        .expect(2, &["--env all goes with db-status only"]);
}
