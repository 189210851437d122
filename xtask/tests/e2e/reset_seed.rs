//! End-to-end: db-reset and db-seed through the real wrangler, locally and on the emulator.

use crate::support::Workspace;

/// Circular foreign keys, a view, a trigger, indexes: what a reset must take apart.
const SCHEMA: &str = "\
CREATE TABLE teams (id INTEGER PRIMARY KEY, name TEXT NOT NULL, captain_id INTEGER REFERENCES players(id));
CREATE TABLE players (id INTEGER PRIMARY KEY, name TEXT NOT NULL, team_id INTEGER REFERENCES teams(id));
CREATE INDEX idx_players_team ON players(team_id);
CREATE VIEW team_sizes AS SELECT team_id, count(*) AS n FROM players GROUP BY team_id;
CREATE TABLE audit (id INTEGER PRIMARY KEY AUTOINCREMENT, what TEXT);
CREATE TRIGGER players_audit AFTER INSERT ON players BEGIN
  INSERT INTO audit (what) VALUES ('player ' || NEW.name);
END;
";
const LATER: &str = "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);\n";

const SCHEMA_SQL: &str = "SELECT type, name, sql FROM sqlite_master \
    WHERE name NOT LIKE 'sqlite_%' AND substr(name, 1, 4) <> '_cf_' ORDER BY type, name";

fn schema(ws: &Workspace) -> Vec<String> {
    ws.query(SCHEMA_SQL).iter().map(|r| r.to_string()).collect()
}

fn count(ws: &Workspace, sql: &str) -> i64 {
    ws.query(sql)[0]["n"].as_i64().unwrap()
}

#[test]
fn reset_leaves_exactly_the_migrations_schema() {
    // The reference: a fresh database migrated from empty.
    let fresh = Workspace::new("reset-fresh");
    fresh
        .migration("0001_league.sql", SCHEMA)
        .migration("0002_notes.sql", LATER);
    fresh.xtask(&["db-migrate"]).expect(0, &[]);
    let expected = schema(&fresh);

    let ws = Workspace::new("reset");
    ws.migration("0001_league.sql", SCHEMA)
        .migration("0002_notes.sql", LATER);
    ws.xtask(&["db-migrate"]).expect(0, &[]);
    // Data across the cycle, and objects no migration made.
    ws.query(
        "INSERT INTO teams (id, name) VALUES (1, 'Reds'); INSERT INTO players VALUES (1, 'Ann', 1); \
         UPDATE teams SET captain_id = 1; CREATE TABLE stray (x); CREATE VIEW stray_view AS SELECT 1; \
         CREATE INDEX stray_idx ON notes(body)",
    );
    assert_ne!(schema(&ws), expected);

    let run = ws.xtask(&["db-reset", "--json"]);
    run.expect(
        0,
        &[
            "restore point: snapshot",
            "reset local DB (e2e-local, 00000000-0000-0000-0000-000000000001): 2 migrations applied",
        ],
    );
    assert_eq!(
        schema(&ws),
        expected,
        "exactly the migrations' schema, read back"
    );
    assert_eq!(count(&ws, "SELECT count(*) AS n FROM players"), 0);
    assert_eq!(count(&ws, "SELECT count(*) AS n FROM audit"), 0);
    assert!(ws.wrangler_pending().is_empty());
    assert_eq!(run.json()["applied"].as_array().unwrap().len(), 2);

    // --to: later files pending, as raw wrangler sees it.
    ws.xtask(&["db-reset", "--to", "1"])
        .expect(0, &["1 migration applied"]);
    assert_eq!(ws.wrangler_pending(), vec!["0002_notes.sql"]);

    // An empty database resets too.
    let empty = Workspace::new("reset-empty");
    empty.migration("0001_league.sql", SCHEMA);
    empty
        .xtask(&["db-reset"])
        .expect(0, &["the database is empty", "1 migration applied"]);
    assert_eq!(empty.applied_names(), vec!["0001_league.sql"]);
}

fn commerce(tag: &str) -> Workspace {
    Workspace::sample(tag)
}

const TEST_ROWS: &str = "SELECT (SELECT count(*) FROM users WHERE id >= 900000) + (SELECT count(*) FROM products WHERE id >= 900000) \
    + (SELECT count(*) FROM orders WHERE id >= 900000) + (SELECT count(*) FROM order_items WHERE order_id >= 900000) \
    + (SELECT count(*) FROM posts WHERE id >= 900000) + (SELECT count(*) FROM tokens WHERE id >= 900000) \
    + (SELECT count(*) FROM user_profiles WHERE user_id >= 900000) AS n";

#[test]
fn seed_twice_cleanup_and_refusals() {
    let ws = commerce("seed");
    ws.xtask(&["db-seed"]).expect(
        4,
        &[
            "2 migrations are pending",
            "run `cargo xtask db-migrate` first",
        ],
    );
    ws.xtask(&["db-migrate"]).expect(0, &[]);
    ws.query("INSERT INTO users (id, email, name) VALUES (1, 'real@x.com', 'Real')");

    let first = ws.xtask(&["db-seed", "--no-backup", "--json"]);
    first.expect(
        0,
        &[
            "seed-products.sql, seed-users.sql: 9 statements in one request",
            "rows now: products 4, users 4",
        ],
    );
    let seeded = count(&ws, TEST_ROWS);
    assert_eq!(seeded, 3 + 4 + 2 + 3 + 3 + 2 + 2);
    ws.xtask(&["db-seed", "--no-backup"]).expect(0, &[]);
    assert_eq!(
        count(&ws, TEST_ROWS),
        seeded,
        "seeding twice gives the same rows"
    );

    ws.xtask(&["db-seed", "--cleanup", "--no-backup"])
        .expect(0, &["cleanup-test-data.sql"]);
    assert_eq!(count(&ws, TEST_ROWS), 0, "no test rows left");
    assert_eq!(
        count(&ws, "SELECT count(*) AS n FROM users"),
        1,
        "real rows stay"
    );

    // `-- false`: seeds, runs, still cleans up, exits with the command's status.
    let run = ws.xtask(&[
        "db-seed",
        "--no-backup",
        "--",
        "sh",
        "-c",
        "test \"$XTASK_D1_LOCAL_FILE\" != '' && exit 7",
    ]);
    run.expect(7, &["cleaning up", "exited with 7"]);
    assert_eq!(count(&ws, TEST_ROWS), 0);
    ws.xtask(&["db-seed", "--no-backup", "--", "false"])
        .expect(1, &["the test data was cleaned up"]);
    assert_eq!(count(&ws, TEST_ROWS), 0);
    // A command that cannot start (a typo) still gets the cleanup, and exits 127.
    ws.xtask(&["db-seed", "--no-backup", "--", "no-such-command-7c1e"])
        .expect(
            127,
            &[
                "could not start `no-such-command-7c1e`",
                "the test data was cleaned up",
            ],
        );
    assert_eq!(count(&ws, TEST_ROWS), 0, "the typo left test data behind");

    // Malformed SQL halfway through a file: caught before anything is sent.
    ws.write("broken.sql", "INSERT INTO products (id, sku, name, price_cents) VALUES (900050, 'A', 'a', 1);\nINSRT INTO products VALUES (1);\n");
    let broken = ws.xtask(&["db-seed", "--file", "broken.sql"]);
    broken.expect(2, &["broken.sql:2:", "syntax error", "nothing was loaded"]);
    assert!(!broken.stderr.contains("$ wrangler"));
    assert_eq!(
        count(&ws, "SELECT count(*) AS n FROM products WHERE id = 900050"),
        0
    );
}

#[test]
fn a_two_megabyte_insert_that_raw_wrangler_rejects_loads_every_row() {
    let ws = commerce("seed-big");
    ws.xtask(&["db-migrate", "--no-backup"]).expect(0, &[]);
    let rows: Vec<String> = (0..20_000)
        .map(|i| format!("({}, 'BIG-{i:05}', 'Generated product {i} with a name long enough to matter; ok', {}, 1)", 910_000 + i, i % 997))
        .collect();
    let sql = format!(
        "INSERT INTO products (id, sku, name, price_cents, stock) VALUES\n{};\n",
        rows.join(",\n")
    );
    assert!(sql.len() > 1_900_000, "{}", sql.len());
    ws.write("big-seed.sql", &sql);

    let raw = ws.wrangler(&[
        "d1",
        "execute",
        "DB",
        "--local",
        "--file",
        "big-seed.sql",
        "--yes",
    ]);
    assert_ne!(raw.code, 0, "raw wrangler must reject it");
    assert!(
        format!("{}{}", raw.stdout, raw.stderr).contains("SQLITE_TOOBIG"),
        "{}\n{}",
        raw.stdout,
        raw.stderr
    );
    assert_eq!(count(&ws, "SELECT count(*) AS n FROM products"), 0);

    let run = ws.xtask(&["db-seed", "--no-backup", "--file", "big-seed.sql", "--json"]);
    run.expect(0, &["rows now: products 20000"]);
    let doc = run.json();
    assert!(
        doc["files"][0]["sent_statements"].as_u64().unwrap() >= 20,
        "split into statements under the limit"
    );
    assert_eq!(count(&ws, "SELECT count(*) AS n FROM products"), 20_000);
    assert_eq!(
        count(
            &ws,
            "SELECT count(*) AS n FROM products WHERE sku = 'BIG-19999'"
        ),
        1
    );
}

#[test]
fn remote_seed_reset_and_protection() {
    let ws = commerce("seed-remote");
    let emu = ws.remote();
    ws.xtask_remote(&emu, &["db-migrate", "--env", "staging"], &[])
        .expect(0, &[]);
    ws.xtask_remote(&emu, &["db-seed", "--env", "staging"], &[])
        .expect(
            0,
            &[
                "restore point: Time Travel bookmark",
                "rows now: products 4",
            ],
        );
    assert_eq!(ws.remote_query(&emu, "staging", TEST_ROWS)[0]["n"], 19);
    ws.xtask_remote(&emu, &["db-seed", "--env", "staging", "--cleanup"], &[])
        .expect(0, &[]);
    assert_eq!(ws.remote_query(&emu, "staging", TEST_ROWS)[0]["n"], 0);

    // Production: seeding is refused outright, reset needs the database name.
    ws.xtask_remote(&emu, &["db-migrate", "--env", "production", "--yes"], &[])
        .expect(0, &[]);
    let refused = ws.xtask_remote(&emu, &["db-seed", "--env", "production"], &[]);
    refused.expect(4, &["test data never goes into a protected environment"]);
    assert!(!refused.stderr.contains("$ wrangler"));
    assert_eq!(ws.remote_query(&emu, "production", TEST_ROWS)[0]["n"], 0);
    ws.xtask_remote(&emu, &["db-reset", "--env", "production", "--yes"], &[])
        .expect(4, &["--confirm e2e-prod", "--yes is not enough"]);
    ws.xtask_remote(
        &emu,
        &[
            "db-reset",
            "--env",
            "production",
            "--confirm",
            "e2e-staging",
        ],
        &[],
    )
    .expect(4, &["is not the database name"]);
    ws.remote_query(
        &emu,
        "production",
        "INSERT INTO products (id, sku, name, price_cents) VALUES (1, 'REAL', 'Real', 5)",
    );
    ws.xtask_remote(
        &emu,
        &["db-reset", "--env", "production", "--confirm", "e2e-prod"],
        &[],
    )
    .expect(
        0,
        &["confirmed by the database name", "2 migrations applied"],
    );
    assert_eq!(
        ws.remote_query(&emu, "production", "SELECT count(*) AS n FROM products")[0]["n"],
        0
    );
    assert!(ws.remote_pending(&emu, "production").is_empty());
}
