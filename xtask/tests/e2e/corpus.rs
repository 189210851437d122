//! The corpus: migration folders of public D1 projects (`xtask/tests/fixtures/corpus`,
//! each source in its `INDEX.md`). Every command runs on each of them, locally and on
//! staging (the emulator): `db-migrate`, `db-status`, rows written, `db-backup`,
//! `db-reset` (rows gone, objects kept), `db-restore --backup` (rows back), `db-reset
//! --to` the first migration. The objects the xtask makes are compared with what raw
//! `wrangler d1 migrations apply --local` makes from the same folder, and the rows are
//! checked through SQLite (local) and the emulator's store (staging), never through the
//! xtask's own report.

use std::path::{Path, PathBuf};

use crate::support::{repo_root, Remote, Workspace};

/// One project of the corpus: rows its schema accepts, and queries (each giving one
/// number `n`) that see those rows, with the number expected once they are written.
struct Project {
    name: &'static str,
    rows: &'static str,
    checks: &'static [(&'static str, i64)],
}

fn corpus_dir(name: &str) -> PathBuf {
    repo_root()
        .join("xtask/tests/fixtures/corpus")
        .join(name)
        .join("migrations")
}

/// The project's migration files, in the order wrangler applies them.
fn files(name: &str) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(corpus_dir(name))
        .unwrap()
        .flatten()
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .filter(|(n, _)| n.ends_with(".sql"))
        .collect();
    out.sort();
    out
}

fn workspace(tag: &str, name: &str) -> Workspace {
    let ws = Workspace::new(tag);
    for (file, bytes) in files(name) {
        ws.write(&format!("migrations/{file}"), bytes);
    }
    ws
}

/// The user's objects, as `type name on table: sql`, leaving out SQLite's, D1's, and the
/// tracking tables (wrangler's and the xtask's).
const OBJECTS_SQL: &str = "SELECT type || ' ' || name || ' on ' || tbl_name || ': ' || sql AS o \
     FROM sqlite_master WHERE sql IS NOT NULL AND substr(name, 1, 7) <> 'sqlite_' \
     AND lower(substr(name, 1, 4)) <> '_cf_' AND substr(name, 1, 13) <> 'd1_migrations' \
     ORDER BY 1";

fn local_objects(file: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(file).unwrap();
    let mut stmt = conn.prepare(OBJECTS_SQL).unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn remote_objects(ws: &Workspace, emu: &Remote) -> Vec<String> {
    emu.execute(ws, "staging", OBJECTS_SQL).unwrap()[0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["o"].as_str().unwrap().to_string())
        .collect()
}

fn local_checks(file: &Path, p: &Project) -> Vec<i64> {
    let conn = rusqlite::Connection::open(file).unwrap();
    p.checks
        .iter()
        .map(|(sql, _)| conn.query_row(sql, [], |r| r.get(0)).unwrap())
        .collect()
}

fn remote_checks(ws: &Workspace, emu: &Remote, p: &Project) -> Vec<i64> {
    p.checks
        .iter()
        .map(|(sql, _)| {
            emu.execute(ws, "staging", sql).unwrap()[0]["results"][0]["n"]
                .as_i64()
                .unwrap()
        })
        .collect()
}

/// `--to` for the first file: its number as the xtask reads versions.
fn first_version(files: &[(String, Vec<u8>)]) -> String {
    let digits: String = files[0]
        .0
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse::<u64>().unwrap().to_string()
}

fn applied_locally(file: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(file).unwrap();
    let mut stmt = conn
        .prepare("SELECT name FROM d1_migrations ORDER BY id")
        .unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn run(p: &Project) {
    let files = files(p.name);
    let names: Vec<String> = files.iter().map(|(n, _)| n.clone()).collect();
    let count = format!(
        "applied {} migration{}",
        files.len(),
        if files.len() == 1 { "" } else { "s" }
    );
    let expected: Vec<i64> = p.checks.iter().map(|(_, n)| *n).collect();
    let zeros = vec![0; p.checks.len()];
    let first = first_version(&files);

    // What raw wrangler makes of the folder.
    let raw = workspace(&format!("corpus-raw-{}", p.name), p.name);
    let applied = raw.wrangler(&["d1", "migrations", "apply", "DB", "--local"]);
    assert_eq!(applied.code, 0, "{}\n{}", applied.stdout, applied.stderr);
    let made = local_objects(&raw.local_file());
    drop(raw);

    // Locally.
    let ws = workspace(&format!("corpus-{}", p.name), p.name);
    ws.xtask(&["db-migrate"]).expect(0, &[&count]);
    let file = ws.local_file();
    assert_eq!(
        local_objects(&file),
        made,
        "{}: the objects raw wrangler makes",
        p.name
    );
    ws.xtask(&["db-status"])
        .expect(0, &[&format!("{} applied, 0 pending", files.len())]);
    {
        let conn = rusqlite::Connection::open(&file).unwrap();
        conn.execute_batch(&format!("PRAGMA foreign_keys = ON;\n{}", p.rows))
            .unwrap_or_else(|e| panic!("{}: the rows: {e}", p.name));
    }
    assert_eq!(local_checks(&file, p), expected, "{}: rows written", p.name);
    let backup = ws.xtask(&["db-backup", "--json"]);
    backup.expect(0, &[]);
    let id = backup.json()["id"].as_str().unwrap().to_string();
    ws.xtask(&["db-reset"]).expect(0, &["reset"]);
    assert_eq!(
        local_objects(&file),
        made,
        "{}: objects after db-reset",
        p.name
    );
    assert_eq!(
        local_checks(&file, p),
        zeros,
        "{}: no rows after db-reset",
        p.name
    );
    ws.xtask(&["db-restore", "--backup", &id])
        .expect(0, &["restored local DB"]);
    assert_eq!(
        local_checks(&file, p),
        expected,
        "{}: rows restored",
        p.name
    );
    assert_eq!(local_objects(&file), made, "{}: objects restored", p.name);
    ws.xtask(&["db-reset", "--to", &first])
        .expect(0, &["1 migration applied"]);
    assert_eq!(applied_locally(&file), names[..1], "{}: reset --to", p.name);

    // On staging, through the emulator.
    let emu = ws.remote();
    ws.xtask_remote(&emu, &["db-migrate", "--env", "staging"], &[])
        .expect(0, &[&count]);
    assert_eq!(
        remote_objects(&ws, &emu),
        made,
        "{}: staging objects",
        p.name
    );
    ws.xtask_remote(&emu, &["db-status", "--env", "staging"], &[])
        .expect(0, &[&format!("{} applied, 0 pending", files.len())]);
    emu.execute(&ws, "staging", p.rows)
        .unwrap_or_else(|e| panic!("{}: the rows on staging: {e}", p.name));
    assert_eq!(
        remote_checks(&ws, &emu, p),
        expected,
        "{}: staging rows",
        p.name
    );
    let backup = ws.xtask_remote(&emu, &["db-backup", "--env", "staging", "--json"], &[]);
    backup.expect(0, &[]);
    let id = backup.json()["id"].as_str().unwrap().to_string();
    ws.xtask_remote(&emu, &["db-reset", "--env", "staging"], &[])
        .expect(0, &["reset"]);
    assert_eq!(
        remote_objects(&ws, &emu),
        made,
        "{}: staging objects after reset",
        p.name
    );
    assert_eq!(
        remote_checks(&ws, &emu, p),
        zeros,
        "{}: staging rows after reset",
        p.name
    );
    ws.xtask_remote(
        &emu,
        &["db-restore", "--env", "staging", "--backup", &id],
        &[],
    )
    .expect(0, &["restored staging DB"]);
    assert_eq!(
        remote_checks(&ws, &emu, p),
        expected,
        "{}: staging rows restored",
        p.name
    );
    assert_eq!(
        remote_objects(&ws, &emu),
        made,
        "{}: staging objects restored",
        p.name
    );
    ws.xtask_remote(&emu, &["db-reset", "--env", "staging", "--to", &first], &[])
        .expect(0, &["1 migration applied"]);
    let applied = emu
        .execute(&ws, "staging", "SELECT name FROM d1_migrations ORDER BY id")
        .unwrap()[0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect::<Vec<_>>();
    assert_eq!(applied, names[..1], "{}: staging reset --to", p.name);
}

macro_rules! corpus {
    ($($test:ident => $project:expr;)*) => {
        $(
            #[test]
            fn $test() {
                run(&$project);
            }
        )*
    };
}

corpus! {
    saas_admin => Project {
        name: "saas-admin",
        rows: "INSERT INTO customers (name, email) VALUES ('Ada', 'ada@example.com');
INSERT INTO subscriptions (name, description, price) VALUES ('Pro', 'all of it', 10);
INSERT INTO customer_subscriptions (customer_id, subscription_id, subscription_ends_at) VALUES (1, 1, '2030-01-01');
INSERT INTO user (name, email) VALUES ('u', 'u@example.com');
INSERT INTO apiKey (name, key, userId) VALUES ('ci', 'k-1', 1);",
        checks: &[
            ("SELECT count(*) AS n FROM customer_subscriptions WHERE status = 'active'", 1),
            ("SELECT count(*) AS n FROM apiKey", 1),
        ],
    };
    ownlist => Project {
        name: "ownlist",
        rows: "INSERT INTO subscribers (email, unsub_token, confirmed_at) VALUES ('a@example.com', 't1', '2026-01-01');",
        checks: &[("SELECT count(*) AS n FROM subscribers WHERE confirmed_at IS NOT NULL", 1)],
    };
    wvfoia_sync => Project {
        name: "wvfoia-sync",
        rows: "INSERT INTO entries (id, agency, subject) VALUES (1, 'DOT', 'road salt'), (2, 'DHHR', 'records');",
        checks: &[
            ("SELECT count(*) AS n FROM entries", 2),
            ("SELECT count(*) AS n FROM entries_fts WHERE entries_fts MATCH 'salt'", 1),
        ],
    };
    tsundoku => Project {
        name: "tsundoku",
        rows: "INSERT INTO users (id, username, opds_verifier, kosync_verifier, created_at, password_set_at) VALUES ('u1', 'ann', 'x', 'y', 1, 1);
INSERT INTO books (id, r2_key, format, mime, filename, byte_size, title, sort_title, added_at, added_by, updated_at) VALUES ('b1', 'k', 'epub', 'application/epub+zip', 'a.epub', 10, 'Dune', 'dune', 1, 'u1', 1);
INSERT INTO books_fts (book_id, title, authors) VALUES ('b1', 'Dune', 'Frank Herbert');",
        checks: &[
            ("SELECT count(*) AS n FROM books", 1),
            ("SELECT count(*) AS n FROM books_fts WHERE books_fts MATCH 'herbert'", 1),
        ],
    };
    discover => Project {
        name: "discover",
        rows: "INSERT INTO feeds (id, title) VALUES ('f1', 'Indie web');
INSERT INTO feed_sources (feed_id, source_url) VALUES ('f1', 'https://a.example/rss');
INSERT INTO feeds_fts (feed_id, title) VALUES ('f1', 'Indie web');",
        checks: &[
            ("SELECT count(*) AS n FROM feed_sources", 1),
            ("SELECT count(*) AS n FROM feeds_fts WHERE feeds_fts MATCH 'indie'", 1),
        ],
    };
    mempalace => Project {
        name: "mempalace",
        rows: "INSERT INTO entities (id, name) VALUES ('e1', 'Ada'), ('e2', 'Babbage');
INSERT INTO triples (id, subject, predicate, object) VALUES ('t1', 'e1', 'knew', 'e2');
INSERT INTO drawers_fts (id, wing, room, content) VALUES ('d1', 'w', 'r', 'analytical engine');",
        checks: &[
            ("SELECT count(*) AS n FROM triples", 1),
            ("SELECT count(*) AS n FROM drawers_fts WHERE drawers_fts MATCH 'ngin'", 1),
        ],
    };
    techtalk => Project {
        name: "techtalk",
        rows: "INSERT INTO inquiry_evaluations (name, email, message_excerpt, rule_score, rule_tier, llm_verdict, routed_as, ml_verdict) VALUES ('a', 'a@example.com', 'hi', 1, 'low', 'normal', 'normal', 'gray');",
        checks: &[("SELECT count(*) AS n FROM inquiry_evaluations WHERE ml_verdict = 'gray'", 1)],
    };
    northwind => Project {
        name: "northwind",
        rows: "INSERT INTO \"Category\" (\"Id\", \"CategoryName\") VALUES (1, 'Beverages');
INSERT INTO \"Supplier\" (\"Id\", \"CompanyName\") VALUES (1, 'Exotic Liquids');
INSERT INTO \"Product\" (\"Id\", \"ProductName\", \"SupplierId\", \"CategoryId\", \"UnitPrice\", \"UnitsInStock\", \"UnitsOnOrder\", \"ReorderLevel\", \"Discontinued\") VALUES (1, 'Chai', 1, 1, 18, 39, 0, 10, 0);
INSERT INTO \"Order\" (\"Id\", \"EmployeeId\", \"Freight\") VALUES (10248, 5, 32.38);",
        checks: &[
            ("SELECT count(*) AS n FROM ProductDetails_V WHERE SupplierName = 'Exotic Liquids'", 1),
            ("SELECT count(*) AS n FROM \"Order\"", 1),
        ],
    };
    nodewarden => Project {
        name: "nodewarden",
        rows: "INSERT INTO users (id, email, master_password_hash, key, kdf_type, kdf_iterations, security_stamp, created_at, updated_at) VALUES ('u1', 'a@example.com', 'h', 'k', 0, 600000, 's', 't', 't');
INSERT INTO ciphers (id, user_id, type, data, created_at, updated_at) VALUES ('c1', 'u1', 1, '{}', 't', 't');
INSERT INTO invites (code, created_by, used_by, expires_at, status, created_at, updated_at) VALUES ('i1', 'u1', 'u1', 't', 'used', 't', 't');",
        checks: &[
            ("SELECT count(*) AS n FROM ciphers", 1),
            ("SELECT count(*) AS n FROM invites WHERE used_by = 'u1'", 1),
        ],
    };
    lesbian_quest => Project {
        name: "lesbian-quest",
        rows: "INSERT INTO users (id, clerk_id, username, email) VALUES ('u1', 'c1', 'v', 'v@example.com');
INSERT INTO adventures (id, author_id, title, description) VALUES ('a1', 'u1', 'Quest', 'd');
INSERT INTO likes (id, user_id, adventure_id) VALUES ('l1', 'u1', 'a1');",
        checks: &[("SELECT count(*) AS n FROM likes", 1)],
    };
    handmade_drizzle_rebuild => Project {
        name: "handmade-drizzle-rebuild",
        rows: "INSERT INTO users (id, email, name) VALUES (1, 'a@example.com', 'A');
INSERT INTO posts (id, author_id, title) VALUES (1, 1, 'first');",
        checks: &[("SELECT count(*) AS n FROM posts JOIN users ON users.id = posts.author_id", 1)],
    };
}

/// A folder D1 refuses (a `sqlite3 .dump` with `BEGIN TRANSACTION` pasted as a
/// migration) is refused by lint before anything runs, naming the file, locally and on
/// staging, where raw wrangler would pass it locally and fail it on D1.
#[test]
fn a_folder_d1_refuses_is_refused_by_lint_naming_the_file() {
    let ws = workspace("corpus-refused", "handmade-refused");
    ws.xtask(&["db-migrate"]).expect(
        4,
        &["0001_dump.sql:2", "`BEGIN` statement", "0001_dump.sql:5"],
    );
    assert!(
        !ws.dir.join(".wrangler").exists(),
        "nothing was written locally"
    );
    let emu = ws.remote();
    ws.xtask_remote(&emu, &["db-migrate", "--env", "staging"], &[])
        .expect(4, &["0001_dump.sql"]);
    let tables = emu
        .execute(
            &ws,
            "staging",
            "SELECT count(*) AS n FROM sqlite_master WHERE name NOT LIKE '_cf_%'",
        )
        .unwrap();
    assert_eq!(
        tables[0]["results"][0]["n"], 0,
        "nothing was written on staging"
    );
    // Raw wrangler passes it locally (it deletes the first `BEGIN TRANSACTION;` and
    // `COMMIT;` of the text before workerd sees it) and fails it on staging, where the
    // statements reach D1: the trap the lint closes.
    let local = ws.wrangler(&["d1", "migrations", "apply", "DB", "--local"]);
    assert_eq!(local.code, 0, "{}\n{}", local.stdout, local.stderr);
    let remote = ws.wrangler_remote(
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
    assert_ne!(remote.code, 0, "D1 refuses it:\n{}", remote.stdout);
}
