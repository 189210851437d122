//! The schema as a graph: an in-memory replay of a database's objects, its foreign keys,
//! its virtual tables and their shadow tables, and the order in which everything can be
//! dropped on D1.
//!
//! Real schemas are the test: FTS5 tables (external content, sync triggers), R*Tree,
//! views over views, foreign keys with self-references and cycles, generated columns,
//! STRICT and WITHOUT ROWID tables, and the tables Drizzle rebuilds.

use std::collections::BTreeSet;

use super::bookkeeping::{create_tracking_table_sql, quote_ident, tracking_insert_sql};
use super::state::{ForeignKey, SchemaObject};
use super::{local, Database};
use crate::migrations::Migration;

/// Whether `sql` creates a virtual table.
pub(crate) fn is_virtual(o: &SchemaObject) -> bool {
    o.kind == "table"
        && o.sql
            .split_whitespace()
            .take(3)
            .map(|w| w.to_ascii_uppercase())
            .eq(["CREATE", "VIRTUAL", "TABLE"])
}

/// An in-memory database holding `schema`: virtual tables first (each makes its own
/// shadow tables, which are then not created again by name), then ordinary tables, then
/// indexes, views and triggers. An object that fails is tried again after the others (a
/// view over a view made later); `None` if some object never goes in.
pub(crate) fn schema_copy(schema: &[SchemaObject]) -> Option<rusqlite::Connection> {
    let conn = rusqlite::Connection::open_in_memory().ok()?;
    let rank = |o: &SchemaObject| match o.kind.as_str() {
        "table" if is_virtual(o) => 0,
        "table" => 1,
        "index" => 2,
        "view" => 3,
        _ => 4,
    };
    let mut pending: Vec<&SchemaObject> = schema.iter().collect();
    pending.sort_by_key(|o| rank(o));
    let mut shadows: Option<BTreeSet<String>> = None;
    loop {
        let mut failed = Vec::new();
        let before = pending.len();
        for o in pending {
            if o.kind == "table" && !is_virtual(o) {
                let shadows = shadows.get_or_insert_with(|| shadow_tables_of(&conn));
                if shadows.contains(&o.name.to_ascii_lowercase()) {
                    continue;
                }
            }
            if conn.execute_batch(&o.sql).is_err() {
                failed.push(o);
            }
        }
        if failed.is_empty() {
            return Some(conn);
        }
        if failed.len() == before {
            return None;
        }
        pending = failed;
    }
}

/// Whether `o` is a table of the user's own: neither virtual nor the shadow table of a
/// virtual one (`shadows`, lower case, as `shadow_tables` gives them).
pub(crate) fn is_ordinary_table(o: &SchemaObject, shadows: &BTreeSet<String>) -> bool {
    o.kind == "table" && !is_virtual(o) && !shadows.contains(&o.name.to_ascii_lowercase())
}

/// The shadow tables of the virtual tables in `conn` (lower case), as SQLite itself
/// names them (`PRAGMA table_list`, type `shadow`).
fn shadow_tables_of(conn: &rusqlite::Connection) -> BTreeSet<String> {
    let Ok(mut stmt) = conn.prepare("SELECT name FROM pragma_table_list WHERE type = 'shadow'")
    else {
        return BTreeSet::new();
    };
    stmt.query_map([], |r| r.get::<_, String>(0))
        .map(|rows| rows.flatten().map(|n| n.to_ascii_lowercase()).collect())
        .unwrap_or_default()
}

/// The shadow tables of `schema`'s virtual tables (lower case). They belong to their
/// virtual table: D1 refuses to drop or write them by name.
pub(crate) fn shadow_tables(schema: &[SchemaObject]) -> BTreeSet<String> {
    let vtables: Vec<&SchemaObject> = schema.iter().filter(|o| is_virtual(o)).collect();
    if vtables.is_empty() {
        return BTreeSet::new();
    }
    let Ok(conn) = rusqlite::Connection::open_in_memory() else {
        return BTreeSet::new();
    };
    for v in vtables {
        let _ = conn.execute_batch(&v.sql);
    }
    shadow_tables_of(&conn)
}

/// The foreign keys of a schema, found by SQLite itself on an in-memory copy (so no
/// pragma has to run on D1).
/// The user objects of the schema, as one query returns them. SQLite's and D1's own names
/// are matched as prefixes: in `LIKE '_cf_%'` the `_` is a wildcard, which would hide a
/// user table such as `xcf_notes`.
pub(crate) const SCHEMA_SQL: &str =
    "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE sql IS NOT NULL \
     AND substr(name, 1, 7) <> 'sqlite_' AND lower(substr(name, 1, 4)) <> '_cf_' ORDER BY rowid";

/// Whether `name` is SQLite's (`sqlite_*`) or D1's (`_cf_*`) own: never dropped, counted
/// or exported by the xtask.
pub(crate) fn is_internal(name: &str) -> bool {
    name.starts_with("sqlite_") || d1_rules::is_d1_internal(name)
}

/// The schema `migrations` make on an empty database, replayed in memory (each file in
/// its own transaction, as wrangler runs them); `Err((file, error))` names the first that
/// fails.
pub(crate) fn replayed_schema(
    table: &str,
    migrations: &[&Migration],
) -> Result<Vec<SchemaObject>, (String, String)> {
    let in_memory = |e: rusqlite::Error| ("(in-memory database)".to_string(), e.to_string());
    let conn = rusqlite::Connection::open_in_memory().map_err(in_memory)?;
    if let Some(failed) = replay(&conn, table, migrations) {
        return Err(failed);
    }
    local::read_state(&conn, table)
        .map(|state| state.schema)
        .map_err(in_memory)
}

/// Replays migrations on `conn` (a copy of the database, or its schema alone), each in
/// its own transaction as wrangler would run them, and names the first that fails.
pub(crate) fn replay(
    conn: &rusqlite::Connection,
    table: &str,
    migrations: &[&Migration],
) -> Option<(String, String)> {
    conn.execute_batch(&format!(
        "PRAGMA foreign_keys = ON;\n{}",
        create_tracking_table_sql(table)
    ))
    .ok()?;
    // D1's limits and authorizer, so that a file fails here where it fails on D1 (a
    // refused function or PRAGMA, a statement too long); transactions are the replay's own.
    d1_rules::apply_limits(conn).ok()?;
    for m in migrations {
        conn.execute_batch("BEGIN;").ok()?;
        let ran = d1_rules::authorized(conn, || conn.execute_batch(&m.sql)).and_then(|()| {
            conn.execute_batch(&format!(
                "{};\nCOMMIT;",
                tracking_insert_sql(table, &m.name)
            ))
        });
        if let Err(e) = ran {
            let _ = conn.execute_batch("ROLLBACK;");
            return Some((m.name.clone(), e.to_string()));
        }
    }
    None
}

/// Schema objects from the rows of `SCHEMA_SQL`, however they were read.
pub(crate) fn schema_from_rows(rows: &[serde_json::Value]) -> Vec<SchemaObject> {
    rows.iter()
        .map(|o| SchemaObject {
            kind: o["type"].as_str().unwrap_or_default().into(),
            name: o["name"].as_str().unwrap_or_default().into(),
            table: o["tbl_name"].as_str().unwrap_or_default().into(),
            sql: o["sql"].as_str().unwrap_or_default().into(),
        })
        .collect()
}

/// Row counts of `tables`: one row with a column per table, at most `COUNTS_PER_QUERY`
/// tables a query (D1 allows 100 columns; a `UNION ALL` would stop at five terms).
pub(crate) fn row_counts(
    db: &mut dyn Database,
    tables: &[&str],
) -> anyhow::Result<Vec<(String, i64)>> {
    let mut out = Vec::new();
    for chunk in tables.chunks(COUNTS_PER_QUERY) {
        let sql = row_counts_sql(chunk);
        let rows = db.query(&sql)?;
        let row = rows.first();
        for (i, t) in chunk.iter().enumerate() {
            let n = row.and_then(|r| r[format!("n{i}")].as_i64()).unwrap_or(0);
            out.push((t.to_string(), n));
        }
    }
    Ok(out)
}

/// Tables counted in one query.
pub(crate) const COUNTS_PER_QUERY: usize = 50;

/// `SELECT (SELECT count(*) FROM "a") AS n0, ...`: no compound SELECT at all.
pub(crate) fn row_counts_sql(tables: &[&str]) -> String {
    let columns: Vec<String> = tables
        .iter()
        .enumerate()
        .map(|(i, t)| format!("(SELECT count(*) FROM {}) AS n{i}", quote_ident(t)))
        .collect();
    format!("SELECT {}", columns.join(", "))
}

#[cfg(test)]
pub(crate) fn foreign_keys(schema: &[SchemaObject]) -> Vec<ForeignKey> {
    schema_copy(schema).map_or_else(Vec::new, |conn| foreign_keys_in(&conn))
}

/// The foreign keys of the schema in `conn`, as SQLite reports them.
fn foreign_keys_in(conn: &rusqlite::Connection) -> Vec<ForeignKey> {
    let Ok(mut stmt) = conn.prepare(
        "SELECT m.name, p.\"table\", p.on_delete FROM sqlite_master AS m, pragma_foreign_key_list(m.name) AS p \
         WHERE m.type = 'table' ORDER BY m.rowid, p.id",
    ) else {
        return Vec::new();
    };
    stmt.query_map([], |r| {
        Ok(ForeignKey {
            child: r.get(0)?,
            parent: r.get(1)?,
            on_delete: r.get(2)?,
        })
    })
    .map(|rows| rows.flatten().collect())
    .unwrap_or_default()
}

/// SQL that drops every object of `schema` except the tables named in `keep`, in an
/// order D1 accepts with foreign keys enforced:
/// 1. triggers (so that no trigger fires while tables go);
/// 2. views;
/// 3. virtual tables, each with `DROP TABLE <name>`, which drops its shadow tables (D1
///    refuses to drop a shadow table by name);
/// 4. ordinary tables, children before parents (self-references ignored; the tables of
///    a cycle in any order, with foreign keys deferred). Indexes go with their tables.
///
/// SQLite's and D1's own objects are kept.
pub(crate) fn drop_all_sql(schema: &[SchemaObject], keep: &[String]) -> String {
    let mut sql = String::from("PRAGMA defer_foreign_keys = true;\n");
    let kept = |name: &str| is_internal(name) || keep.iter().any(|k| k.eq_ignore_ascii_case(name));
    for kind in ["trigger", "view"] {
        for o in schema.iter().filter(|o| o.kind == kind && !kept(&o.name)) {
            sql.push_str(&format!(
                "DROP {} IF EXISTS {};\n",
                kind.to_uppercase(),
                quote_ident(&o.name)
            ));
        }
    }
    for o in schema.iter().filter(|o| is_virtual(o) && !kept(&o.name)) {
        sql.push_str(&format!("DROP TABLE IF EXISTS {};\n", quote_ident(&o.name)));
    }
    // One replay gives both the shadow tables and the foreign keys; without one (an
    // object that SQLite here cannot make) the shadows still come from the virtual
    // tables alone, and the tables go in the order they were made.
    let copy = schema_copy(schema);
    let shadows = copy
        .as_ref()
        .map_or_else(|| shadow_tables(schema), shadow_tables_of);
    let mut tables: Vec<String> = schema
        .iter()
        .filter(|o| is_ordinary_table(o, &shadows) && !kept(&o.name))
        .map(|o| o.name.clone())
        .collect();
    let fks = copy.as_ref().map(foreign_keys_in).unwrap_or_default();
    // Children first: repeatedly drop a table that no remaining table references.
    while !tables.is_empty() {
        let free = tables.iter().position(|t| {
            !fks.iter().any(|fk| {
                fk.parent.eq_ignore_ascii_case(t)
                    && !fk.child.eq_ignore_ascii_case(t)
                    && tables.iter().any(|c| c.eq_ignore_ascii_case(&fk.child))
            })
        });
        // A cycle: any order works while the keys are deferred.
        let next = tables.remove(free.unwrap_or(0));
        sql.push_str(&format!("DROP TABLE IF EXISTS {};\n", quote_ident(&next)));
    }
    sql
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::d1::SCHEMA_SQL;

    /// The schema objects `sqls` make, read as the xtask reads them.
    pub(crate) fn schema(sqls: &[&str]) -> Vec<SchemaObject> {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        for s in sqls {
            conn.execute_batch(s).unwrap();
        }
        let mut stmt = conn.prepare(SCHEMA_SQL).unwrap();
        stmt.query_map([], |r| {
            Ok(SchemaObject {
                kind: r.get(0)?,
                name: r.get(1)?,
                table: r.get(2)?,
                sql: r.get(3)?,
            })
        })
        .unwrap()
        .flatten()
        .collect()
    }

    /// Runs `drop_all_sql` on a database made of `sqls` (with `rows` in it) with foreign
    /// keys on and D1's defensive mode, and returns what is left.
    fn drop_everything(sqls: &[&str], rows: &str) -> (String, i64) {
        let s = schema(sqls);
        let sql = drop_all_sql(&s, &[]);
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        d1_rules::apply_limits(&conn).unwrap();
        conn.execute_batch("PRAGMA foreign_keys = ON;").unwrap();
        for q in sqls {
            conn.execute_batch(q).unwrap();
        }
        conn.execute_batch(rows).unwrap();
        conn.execute_batch(&format!("BEGIN; {sql} COMMIT;"))
            .unwrap_or_else(|e| panic!("{e}\n{sql}"));
        let left: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
            .unwrap();
        (sql, left)
    }

    #[test]
    fn drops_children_first_and_survives_cycles() {
        let s = schema(&[
            "CREATE TABLE a(id INTEGER PRIMARY KEY, b_id INTEGER REFERENCES b(id))",
            "CREATE TABLE b(id INTEGER PRIMARY KEY, a_id INTEGER REFERENCES a(id))",
            "CREATE TABLE users(id INTEGER PRIMARY KEY)",
            "CREATE TABLE posts(id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id) ON DELETE CASCADE)",
            "CREATE TABLE \"odd\"\"name\"(x)",
            "CREATE INDEX i ON posts(user_id)",
            "CREATE VIEW v AS SELECT * FROM users",
            "CREATE TRIGGER t AFTER INSERT ON users BEGIN SELECT 1; END",
        ]);
        let fks = foreign_keys(&s);
        assert!(fks.contains(&ForeignKey {
            child: "posts".into(),
            parent: "users".into(),
            on_delete: "CASCADE".into()
        }));
        let sql = drop_all_sql(&s, &[]);
        let pos = |needle: &str| {
            sql.find(needle)
                .unwrap_or_else(|| panic!("{needle} missing in\n{sql}"))
        };
        assert!(pos("DROP TABLE IF EXISTS \"posts\"") < pos("DROP TABLE IF EXISTS \"users\""));
        assert!(pos("DROP TRIGGER IF EXISTS \"t\"") < pos("DROP TABLE IF EXISTS \"users\""));
        assert!(sql.contains("DROP VIEW IF EXISTS \"v\""));
        assert!(sql.contains("DROP TABLE IF EXISTS \"odd\"\"name\""));
        // It runs on SQLite with foreign keys on and leaves nothing but internals.
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        d1_rules::apply_limits(&conn).unwrap();
        conn.execute_batch("PRAGMA foreign_keys = ON;").unwrap();
        for o in &s {
            conn.execute_batch(&o.sql).unwrap();
        }
        conn.execute_batch("INSERT INTO a VALUES (1, NULL); INSERT INTO b VALUES (1, 1); UPDATE a SET b_id = 1; INSERT INTO users VALUES (1); INSERT INTO posts VALUES (1, 1);").unwrap();
        conn.execute_batch(&format!("BEGIN; {sql} COMMIT;"))
            .unwrap();
        let left: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 0);
    }

    #[test]
    fn fts5_rtree_views_over_views_and_self_references() {
        let (sql, left) = drop_everything(
            &[
                "CREATE TABLE claims(id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES claims(id), body TEXT NOT NULL)",
                "CREATE VIRTUAL TABLE claims_fts USING fts5(body, content='claims', content_rowid='id')",
                "CREATE TRIGGER claims_ai AFTER INSERT ON claims BEGIN INSERT INTO claims_fts(rowid, body) VALUES (new.id, new.body); END",
                "CREATE TABLE votes(id INTEGER PRIMARY KEY, claim_id INTEGER NOT NULL REFERENCES claims(id) ON DELETE CASCADE, w INTEGER GENERATED ALWAYS AS (id * 2) VIRTUAL) STRICT",
                "CREATE TABLE tags(k TEXT PRIMARY KEY, claim_id INTEGER REFERENCES claims(id)) WITHOUT ROWID",
                "CREATE VIRTUAL TABLE places USING rtree(id, x0, x1)",
                "CREATE VIEW v1 AS SELECT * FROM claims",
                "CREATE VIEW v2 AS SELECT * FROM v1 JOIN votes ON votes.claim_id = v1.id",
                "CREATE INDEX votes_claim ON votes(claim_id)",
            ],
            "INSERT INTO claims(id, parent_id, body) VALUES (1, NULL, 'a'), (2, 1, 'b'); \
             INSERT INTO votes(id, claim_id) VALUES (1, 1); INSERT INTO tags VALUES ('x', 2); \
             INSERT INTO places VALUES (1, 0, 1);",
        );
        assert_eq!(left, 0, "{sql}");
        assert!(
            !sql.contains("claims_fts_data"),
            "shadow tables are never named:\n{sql}"
        );
        assert!(!sql.contains("places_node"), "{sql}");
        let pos = |needle: &str| {
            sql.find(needle)
                .unwrap_or_else(|| panic!("{needle}:\n{sql}"))
        };
        assert!(pos("\"votes\"") < pos("TABLE IF EXISTS \"claims\""));
        assert!(pos("\"tags\"") < pos("TABLE IF EXISTS \"claims\""));
    }

    #[test]
    fn the_replay_takes_fts5_shadows_and_late_views() {
        // The order sqlite_master lists them in: the shadows after their virtual table,
        // and a view made before the table it reads (renamed in later).
        let objects = vec![
            SchemaObject {
                kind: "table".into(),
                name: "docs".into(),
                table: "docs".into(),
                sql: "CREATE VIRTUAL TABLE docs USING fts5(body)".into(),
            },
            SchemaObject {
                kind: "table".into(),
                name: "docs_data".into(),
                table: "docs_data".into(),
                sql: "CREATE TABLE 'docs_data'(id INTEGER PRIMARY KEY, block BLOB)".into(),
            },
            SchemaObject {
                kind: "view".into(),
                name: "late".into(),
                table: "late".into(),
                sql: "CREATE VIEW late AS SELECT * FROM early".into(),
            },
            SchemaObject {
                kind: "view".into(),
                name: "early".into(),
                table: "early".into(),
                sql: "CREATE VIEW early AS SELECT * FROM parent".into(),
            },
            SchemaObject {
                kind: "table".into(),
                name: "parent".into(),
                table: "parent".into(),
                sql: "CREATE TABLE parent(id INTEGER PRIMARY KEY)".into(),
            },
            SchemaObject {
                kind: "table".into(),
                name: "child".into(),
                table: "child".into(),
                sql: "CREATE TABLE child(p INTEGER REFERENCES parent(id))".into(),
            },
        ];
        assert!(schema_copy(&objects).is_some());
        assert_eq!(foreign_keys(&objects).len(), 1);
        assert!(shadow_tables(&objects).contains("docs_data"));
    }
}
