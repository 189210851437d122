//! End-to-end: bad configuration and arguments stop before anything runs, with exit 2.

use crate::support::Workspace;

fn ws_with(config: &str) -> Workspace {
    let ws = Workspace::new("config");
    ws.write("wrangler.jsonc", config);
    ws.migration(
        "0001_users.sql",
        "CREATE TABLE users (id INTEGER PRIMARY KEY);\n",
    );
    ws
}

#[test]
fn config_and_argument_errors_exit_2_before_any_wrangler_call() {
    let ws = Workspace::new("config");
    ws.migration(
        "0001_users.sql",
        "CREATE TABLE users (id INTEGER PRIMARY KEY);\n",
    );
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["db-migrate", "--env", "stagign"],
            &[
                "unknown environment `stagign`",
                "local, production, staging",
            ],
        ),
        (
            &["db-migrate", "--database", "NOPE"],
            &["no D1 database `NOPE`"],
        ),
        (&["db-migrate", "--bogus"], &["unknown flag `--bogus`"]),
        (
            &["db-status", "--config", "missing.jsonc"],
            &["does not exist"],
        ),
        (&["db-migrate", "--to", "42"], &["no migration `42`"]),
        (&["db-new", "../escape"], &["cannot name a migration"]),
    ];
    for (args, words) in cases {
        let run = ws.xtask(args);
        run.expect(2, words);
        assert!(!run.stderr.contains("$ wrangler"), "{args:?} ran wrangler");
    }
    assert!(
        !ws.dir.join(".wrangler/state").exists(),
        "nothing was created"
    );
}

#[test]
fn malformed_jsonc_names_file_line_and_column() {
    let ws = ws_with(
        "{\n  \"d1_databases\": [\n    { \"binding\": \"DB\" \"database_id\": \"x\" }\n  ]\n}\n",
    );
    ws.xtask(&["db-status"])
        .expect(2, &["wrangler.jsonc:3:", "JSONC"]);
}

#[test]
fn toml_config_is_refused_clearly() {
    let ws = Workspace::new("toml");
    std::fs::remove_file(ws.dir.join("wrangler.jsonc")).unwrap();
    ws.write("wrangler.toml", "name = \"x\"\n");
    ws.xtask(&["db-status"])
        .expect(2, &["TOML", "wrangler.jsonc"]);
}

#[test]
fn placeholder_and_shared_ids_are_refused() {
    let ws = ws_with(
        r#"{ "d1_databases": [{ "binding": "DB", "database_id": "local" }],
             "env": { "staging": { "d1_databases": [{ "binding": "DB", "database_id": "staging-uuid" }] } } }"#,
    );
    ws.xtask(&["db-status", "--env", "staging"])
        .expect(2, &["staging-uuid", "not a UUID"]);
    // The local default is not blocked by a remote environment's placeholder.
    ws.xtask(&["db-status"]).expect(0, &["[ ] 0001_users.sql"]);
}
