//! Messages that are true: a failed batch names the file that failed.

use crate::support::Workspace;

/// Eight files sent in one request; the fourth fails on D1 because of a row staging holds
/// (so neither lint nor a replay on the schema can see it coming). The xtask names the
/// fourth file, and raw wrangler applying the files one by one stops at the same one.
#[test]
fn a_failed_batch_names_the_file_that_failed() {
    let ws = Workspace::new("messages-batch");
    ws.migration(
        "0001_things.sql",
        "CREATE TABLE things (id INTEGER PRIMARY KEY, label TEXT);\n",
    );
    let emu = ws.remote();
    ws.xtask_remote(&emu, &["db-migrate", "--env", "staging"], &[])
        .expect(0, &["applied 1 migration"]);
    emu.execute(
        &ws,
        "staging",
        "INSERT INTO things (id, label) VALUES (1, 'made by hand');",
    )
    .unwrap();
    let names = [
        "0002_a.sql",
        "0003_b.sql",
        "0004_c.sql",
        "0005_first_thing.sql",
        "0006_d.sql",
        "0007_e.sql",
        "0008_f.sql",
        "0009_g.sql",
    ];
    for (i, name) in names.iter().enumerate() {
        let sql = if i == 3 {
            "INSERT INTO things (id, label) VALUES (1, 'the first thing');\n".to_string()
        } else {
            format!("CREATE TABLE t_{i} (id INTEGER PRIMARY KEY);\n")
        };
        ws.migration(name, &sql);
    }
    let run = ws.xtask_remote(&emu, &["db-migrate", "--env", "staging"], &[]);
    run.expect(
        1,
        &[
            "migration 0005_first_thing.sql failed",
            "UNIQUE constraint failed",
            // Progress: a line per file, not one line of every name.
            "applying 1-8 of 8 in one request:",
            "  [4/8] 0005_first_thing.sql",
        ],
    );
    assert!(
        !run.stderr.contains("migration 0002_a.sql failed"),
        "{}",
        run.stderr
    );
    // Nothing of the batch committed; the bisecting requests committed nothing either.
    let rows = emu
        .execute(
            &ws,
            "staging",
            "SELECT count(*) AS n FROM d1_migrations; SELECT label FROM things;",
        )
        .unwrap();
    assert_eq!(rows[0]["results"][0]["n"], 1, "{rows:?}");
    assert_eq!(rows[1]["results"][0]["label"], "made by hand", "{rows:?}");
    // Raw wrangler, one file per request, stops at the same file.
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
    assert_ne!(raw.code, 0, "{}{}", raw.stdout, raw.stderr);
    let pending = ws.remote_pending(&emu, "staging");
    assert_eq!(
        pending.first().map(String::as_str),
        Some("0005_first_thing.sql")
    );
}

/// `--verify` and `db-seed -- <command>` run with the project's wrangler and its Node
/// first on PATH (the machine's Node 20 is older than wrangler needs) and the flags for
/// the same environment, so a smoke script can query the database it just changed.
#[test]
fn commands_the_xtask_runs_find_the_projects_wrangler() {
    let ws = Workspace::new("messages-path");
    ws.migration(
        "0001_things.sql",
        "CREATE TABLE things (id INTEGER PRIMARY KEY);\nINSERT INTO things (id) VALUES (7);\n",
    );
    let smoke = "node --version | grep -q '^v2[2-9]' && \
        wrangler d1 execute \"$XTASK_D1_BINDING\" $XTASK_WRANGLER_FLAGS --json \
        --command 'SELECT id FROM things' | grep -q '\"id\": 7'";
    // The machine's PATH alone, without the project's node_modules/.bin.
    let path = std::env::var("PATH").unwrap_or_default();
    let wrangler = crate::support::wrangler_bin();
    let run = ws.xtask_with(
        &["db-migrate", "--verify", smoke],
        &[("PATH", &path), ("WRANGLER", wrangler.to_str().unwrap())],
    );
    run.expect(0, &["applied 1 migration", "verifying"]);
}

/// Exit 2 means nothing changed: with no wrangler to be found, `db-migrate` stops before
/// it writes a restore point, an index entry or an undo line.
#[test]
fn a_missing_wrangler_leaves_no_trace() {
    let ws = Workspace::new("messages-no-wrangler");
    ws.migration(
        "0001_things.sql",
        "CREATE TABLE things (id INTEGER PRIMARY KEY);\n",
    );
    let run = ws.xtask_with(&["db-migrate"], &[("PATH", "/usr/bin:/bin")]);
    run.expect(2, &["wrangler not found"]);
    assert!(!run.stderr.contains("restore point"), "{}", run.stderr);
    assert!(!run.stderr.contains("to return to"), "{}", run.stderr);
    assert!(!ws.dir.join("backups").exists(), "a backup was written");
}

/// With `--json`, a failure still prints one document on stdout: an `error` object with
/// the exit status, its kind and the message, and what is known.
#[test]
fn json_failures_print_one_document() {
    let ws = Workspace::new("messages-json");
    ws.migration("0001_ok.sql", "CREATE TABLE a (id INTEGER PRIMARY KEY);\n")
        .migration(
            "0002_bad.sql",
            "INSERT INTO a (id) VALUES (1);\nINSERT INTO a (id) VALUES (1);\n",
        );
    let unknown = ws.xtask(&["db-migrate", "--env", "nope", "--json"]);
    unknown.expect(2, &[]);
    let doc = unknown.json();
    assert_eq!(doc["error"]["exit"], 2);
    assert_eq!(doc["error"]["kind"], "usage");
    assert!(doc["error"]["message"].as_str().unwrap().contains("nope"));

    let refused = ws.xtask(&["db-migrate", "--env", "production", "--json"]);
    refused.expect(4, &[]);
    let doc = refused.json();
    assert_eq!(doc["error"]["kind"], "refused");
    assert_eq!(doc["env"], "production");
    assert_eq!(doc["database"]["name"], "e2e-prod");

    let failed = ws.xtask(&["db-migrate", "--json"]);
    failed.expect(1, &["0002_bad.sql"]);
    let doc = failed.json();
    assert_eq!(doc["error"]["exit"], 1);
    assert_eq!(doc["error"]["kind"], "failed");
    assert!(doc["restore_point"]["backup"].is_string(), "{doc}");
    assert_eq!(doc["env"], "local");
}
