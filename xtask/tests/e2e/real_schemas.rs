//! `db-reset` on the shapes real projects have: full-text search with FTS5 external
//! content and sync triggers, a foreign-key graph with a self-reference, a cycle and
//! cascades, views over views, R*Tree, STRICT, WITHOUT ROWID and generated columns.
//! Checked through SQLite on the local file and through the emulator's store.

use crate::support::Workspace;

const SCHEMA: &str = "\
CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE, invited_by INTEGER REFERENCES users(id));
CREATE TABLE teams (id INTEGER PRIMARY KEY, owner_id INTEGER REFERENCES users(id), name TEXT NOT NULL) STRICT;
CREATE TABLE claims (id INTEGER PRIMARY KEY, team_id INTEGER NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
  author_id INTEGER NOT NULL REFERENCES users(id), parent_id INTEGER REFERENCES claims(id),
  title TEXT NOT NULL, body TEXT NOT NULL, words INTEGER GENERATED ALWAYS AS (length(body)) VIRTUAL);
CREATE TABLE votes (claim_id INTEGER NOT NULL REFERENCES claims(id) ON DELETE CASCADE,
  user_id INTEGER NOT NULL REFERENCES users(id), up INTEGER NOT NULL, PRIMARY KEY (claim_id, user_id)) WITHOUT ROWID;
CREATE INDEX votes_user ON votes(user_id);
CREATE VIRTUAL TABLE claims_fts USING fts5(title, body, content='claims', content_rowid='id');
CREATE TRIGGER claims_ai AFTER INSERT ON claims BEGIN
  INSERT INTO claims_fts(rowid, title, body) VALUES (new.id, new.title, new.body);
END;
CREATE TRIGGER claims_ad AFTER DELETE ON claims BEGIN
  INSERT INTO claims_fts(claims_fts, rowid, title, body) VALUES ('delete', old.id, old.title, old.body);
END;
CREATE TRIGGER claims_au AFTER UPDATE ON claims BEGIN
  INSERT INTO claims_fts(claims_fts, rowid, title, body) VALUES ('delete', old.id, old.title, old.body);
  INSERT INTO claims_fts(rowid, title, body) VALUES (new.id, new.title, new.body);
END;
";

const SECOND: &str = "\
CREATE TABLE regions (id INTEGER PRIMARY KEY, capital_id INTEGER REFERENCES cities(id));
CREATE TABLE cities (id INTEGER PRIMARY KEY, region_id INTEGER REFERENCES regions(id), name TEXT);
CREATE VIRTUAL TABLE city_boxes USING rtree(id, min_x, max_x, min_y, max_y);
CREATE VIEW claim_scores AS SELECT c.id, c.title, sum(v.up) AS score FROM claims c LEFT JOIN votes v ON v.claim_id = c.id GROUP BY c.id;
CREATE VIEW top_claims AS SELECT * FROM claim_scores WHERE score > 0;
";

const ROWS: &str = "\
INSERT INTO users (id, email, invited_by) VALUES (1, 'a@example.com', NULL), (2, 'b@example.com', 1);
INSERT INTO teams (id, owner_id, name) VALUES (1, 1, 'core');
INSERT INTO claims (id, team_id, author_id, parent_id, title, body) VALUES (1, 1, 1, NULL, 'first', 'full text search'), (2, 1, 2, 1, 'reply', 'more text');
INSERT INTO votes (claim_id, user_id, up) VALUES (1, 2, 1);
INSERT INTO regions (id, capital_id) VALUES (1, NULL);
INSERT INTO cities (id, region_id, name) VALUES (1, 1, 'x');
UPDATE regions SET capital_id = 1;
INSERT INTO city_boxes VALUES (1, 0, 1, 0, 1);
";

fn workspace(tag: &str) -> Workspace {
    let ws = Workspace::new(tag);
    ws.migration("0001_schema.sql", SCHEMA)
        .migration("0002_places_and_views.sql", SECOND);
    ws
}

/// User objects and row counts of a database, through SQLite.
fn objects(conn: &rusqlite::Connection) -> Vec<String> {
    let mut stmt = conn
        .prepare(
            "SELECT type || ' ' || name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' \
             AND substr(name, 1, 4) <> '_cf_' ORDER BY 1",
        )
        .unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn reset_works_on_fts5_and_a_foreign_key_graph_locally_and_on_staging() {
    // Locally: migrate, fill through SQLite, reset, reset --to 1.
    let ws = workspace("real-reset");
    ws.xtask(&["db-migrate"])
        .expect(0, &["applied 2 migrations"]);
    let file = ws.local_file();
    let made = {
        let conn = rusqlite::Connection::open(&file).unwrap();
        conn.execute_batch(&format!("PRAGMA foreign_keys = ON; {ROWS}"))
            .unwrap();
        objects(&conn)
    };
    ws.xtask(&["db-reset"])
        .expect(0, &["reset", "2 migrations applied"]);
    {
        let conn = rusqlite::Connection::open(&file).unwrap();
        assert_eq!(objects(&conn), made, "the same objects after the reset");
        let users: i64 = conn
            .query_row("SELECT count(*) FROM users", [], |r| r.get(0))
            .unwrap();
        assert_eq!(users, 0, "the rows are gone");
        let fts: i64 = conn
            .query_row(
                "SELECT count(*) FROM claims_fts WHERE claims_fts MATCH 'text'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(fts, 0);
    }
    ws.xtask(&["db-reset", "--to", "1"])
        .expect(0, &["1 migration applied"]);
    assert!(ws.tables().contains(&"claims".to_string()));
    assert!(!ws.tables().contains(&"cities".to_string()));

    // Staging, on the emulator (D1's authorizer and defensive mode).
    let emu = ws.remote();
    ws.xtask_remote(&emu, &["db-migrate", "--env", "staging"], &[])
        .expect(0, &["applied 2 migrations"]);
    emu.execute(&ws, "staging", ROWS).unwrap();
    ws.xtask_remote(&emu, &["db-reset", "--env", "staging"], &[])
        .expect(0, &["reset", "2 migrations applied"]);
    let rows = emu
        .execute(&ws, "staging",
            "SELECT count(*) AS n FROM users; SELECT count(*) AS n FROM claims_fts WHERE claims_fts MATCH 'text'; \
             SELECT count(*) AS n FROM d1_migrations;",
        )
        .unwrap();
    assert_eq!(rows[0]["results"][0]["n"], 0, "{rows:?}");
    assert_eq!(rows[1]["results"][0]["n"], 0, "{rows:?}");
    assert_eq!(rows[2]["results"][0]["n"], 2, "{rows:?}");
    // What raw wrangler sees: nothing pending.
    assert!(ws.remote_pending(&emu, "staging").is_empty());
}
