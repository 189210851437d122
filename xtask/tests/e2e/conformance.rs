//! The emulator agrees with workerd, tested by difference.
//!
//! workerd is the engine behind `wrangler d1 execute --local`, and it runs D1's own code
//! (its limits and its authorizer). Every shape below runs three ways, each in a fresh
//! database, one request at a time:
//! - through workerd (`tests/conformance/workerd.mjs`: miniflare's D1 binding, called as
//!   `wrangler d1 execute --local` calls it, one Node process for all shapes);
//! - through the emulator's `/query`;
//! - through the emulator's import (`wrangler d1 execute --file --remote`): the earlier
//!   requests by `/query`, the last one as an imported file.
//!
//! Every request must end the same way (ok or refused) everywhere, except the shapes
//! marked `D1_STRICTER`: there Cloudflare's documented limit is stricter than workerd's
//! local setting (the 2 MB string/BLOB/row limit, D1 limits page), the emulator keeps
//! D1's and refuses, and the test requires exactly that.
//!
//! Two shapes also run through the real `wrangler d1 execute --local`, to show that the
//! harness sees what wrangler sees.

use std::io::{Read, Write};
use std::net::TcpStream;

use serde_json::{json, Value};

use crate::support::{node_bin_dir, repo_root, wrangler_bin, Workspace};

const ACCOUNT: &str = "0123456789abcdef0123456789abcdef";

/// Workerd and the emulator must agree.
const SAME: bool = false;
/// D1's documented limit is stricter than workerd's local one: the emulator refuses.
const D1_STRICTER: bool = true;

struct Shape {
    name: &'static str,
    requests: Vec<String>,
    d1_stricter: bool,
}

fn shape(name: &'static str, requests: &[&str]) -> Shape {
    Shape {
        name,
        requests: requests.iter().map(|s| s.to_string()).collect(),
        d1_stricter: SAME,
    }
}

fn owned(name: &'static str, requests: Vec<String>, d1_stricter: bool) -> Shape {
    Shape {
        name,
        requests,
        d1_stricter,
    }
}

fn shapes() -> Vec<Shape> {
    let cols = |n: usize| {
        (0..n)
            .map(|i| format!("c{i}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let union = |n: usize| {
        (1..=n)
            .map(|i| format!("SELECT {i}"))
            .collect::<Vec<_>>()
            .join(" UNION ALL ")
    };
    let mut all = vec![
        // FTS5: plain, external content with sync triggers, written in a later request.
        shape(
            "fts5 plain",
            &[
                "CREATE VIRTUAL TABLE notes USING fts5(body)",
                "INSERT INTO notes VALUES ('hello world')",
                "SELECT rowid FROM notes WHERE notes MATCH 'hello'",
                "SELECT highlight(notes, 0, '[', ']'), bm25(notes) FROM notes WHERE notes MATCH 'world'",
                "DROP TABLE notes",
            ],
        ),
        shape(
            "fts5 external content with triggers",
            &[
                "CREATE TABLE posts(id INTEGER PRIMARY KEY, body TEXT NOT NULL)",
                "CREATE VIRTUAL TABLE posts_fts USING fts5(body, content='posts', content_rowid='id')",
                "CREATE TRIGGER posts_ai AFTER INSERT ON posts BEGIN INSERT INTO posts_fts(rowid, body) VALUES (new.id, new.body); END",
                "CREATE TRIGGER posts_ad AFTER DELETE ON posts BEGIN INSERT INTO posts_fts(posts_fts, rowid, body) VALUES ('delete', old.id, old.body); END",
                "INSERT INTO posts(body) VALUES ('first post'), ('second post')",
                "DELETE FROM posts WHERE id = 1",
                "SELECT snippet(posts_fts, 0, '<', '>', '...', 4) FROM posts_fts WHERE posts_fts MATCH 'post'",
                "INSERT INTO posts_fts(posts_fts) VALUES ('rebuild')",
                "INSERT INTO posts_fts(posts_fts) VALUES ('optimize')",
            ],
        ),
        shape(
            "fts5vocab",
            &[
                "CREATE VIRTUAL TABLE t USING fts5(body)",
                "CREATE VIRTUAL TABLE t_vocab USING fts5vocab(t, row)",
                "SELECT * FROM t_vocab",
            ],
        ),
        shape(
            "fts5 shadow table dropped by name",
            &["CREATE VIRTUAL TABLE t USING fts5(body)", "DROP TABLE t_data"],
        ),
        shape("fts4 refused", &["CREATE VIRTUAL TABLE t USING fts4(body)"]),
        shape("fts3 refused", &["CREATE VIRTUAL TABLE t USING fts3(body)"]),
        shape(
            "rtree",
            &[
                "CREATE VIRTUAL TABLE boxes USING rtree(id, x0, x1)",
                "INSERT INTO boxes VALUES (1, 0, 5)",
            ],
        ),
        shape("dbstat absent", &["SELECT * FROM dbstat"]),
        // JSON, math, window, date and string functions.
        shape(
            "json functions",
            &[
                "SELECT json_extract('{\"a\":1}', '$.a'), json_object('a', 1), json_array(1, 2), json('[1]') -> 0, '[1]' ->> 0",
                "SELECT json_group_array(value) FROM json_each('[1,2]')",
                "SELECT key FROM json_tree('{\"a\":{\"b\":1}}')",
                "SELECT json(jsonb('{\"a\":1}')), jsonb_extract(jsonb('[1]'), '$[0]')",
            ],
        ),
        shape("json_pretty refused", &["SELECT json_pretty('[1]')"]),
        shape("json_error_position refused", &["SELECT json_error_position('[')"]),
        shape(
            "math functions",
            &[
                "SELECT sqrt(16), ln(2), log(100), log2(8), exp(1), pow(2, 3), pi(), mod(5, 2)",
                "SELECT ceil(1.5), floor(1.5), trunc(1.5), sin(0), cos(0), atan2(1, 1), degrees(1), radians(1)",
            ],
        ),
        shape("power refused", &["SELECT power(2, 3)"]),
        shape("ceiling refused", &["SELECT ceiling(1.5)"]),
        shape("log10 refused", &["SELECT log10(100)"]),
        shape(
            "window functions",
            &["SELECT row_number() OVER (), rank() OVER (ORDER BY 1), sum(1) OVER (ROWS BETWEEN 1 PRECEDING AND CURRENT ROW), lag(1) OVER ()"],
        ),
        shape(
            "date and string functions",
            &[
                "SELECT date('now'), datetime('now'), unixepoch(), strftime('%s', 'now'), timediff('2024-01-01', '2023-01-01')",
                "SELECT printf('%d', 1), format('%s', 'a'), iif(1, 2, 3), unhex('41'), concat('a', 'b'), concat_ws(',', 'a', 'b'), octet_length('a'), string_agg('a', ',')",
            ],
        ),
        shape("if refused", &["SELECT if(1, 2, 3)"]),
        shape("sqlite_version refused", &["SELECT sqlite_version()"]),
        shape("sqlite_source_id refused", &["SELECT sqlite_source_id()"]),
        shape(
            "sqlite_compileoption_used refused",
            &["SELECT sqlite_compileoption_used('THREADSAFE')"],
        ),
        shape("load_extension refused", &["SELECT load_extension('x')"]),
        shape("subtype refused", &["SELECT subtype(1)"]),
        shape("soundex absent", &["SELECT soundex('a')"]),
        // PRAGMAs D1 lists, in the forms D1 runs them.
        shape(
            "pragmas D1 lists",
            &[
                "CREATE TABLE a(id INTEGER PRIMARY KEY, b INTEGER REFERENCES a(id))",
                "CREATE INDEX a_b ON a(b)",
                "PRAGMA table_list",
                "PRAGMA table_info(a)",
                "PRAGMA table_xinfo(a)",
                "PRAGMA index_list(a)",
                "PRAGMA index_info(a_b)",
                "PRAGMA index_xinfo(a_b)",
                "PRAGMA foreign_key_list(a)",
                "PRAGMA foreign_key_check",
                "PRAGMA foreign_key_check(a)",
                "PRAGMA quick_check",
                "PRAGMA optimize",
                "PRAGMA optimize = 0x10002",
                "PRAGMA data_version",
                "PRAGMA page_size",
                "SELECT * FROM pragma_table_info('a')",
                "PRAGMA main.table_info(a)",
            ],
        ),
        shape(
            "boolean pragmas",
            &[
                "PRAGMA foreign_keys = OFF",
                "PRAGMA foreign_keys",
                "PRAGMA defer_foreign_keys = true",
                "PRAGMA case_sensitive_like = 1",
                "PRAGMA ignore_check_constraints = no",
                "PRAGMA legacy_alter_table = on",
                "PRAGMA recursive_triggers = yes",
                "PRAGMA reverse_unordered_selects = false",
            ],
        ),
        shape("boolean pragma set to 2", &["PRAGMA foreign_keys = 2"]),
        shape("table_info without a table", &["PRAGMA table_info"]),
        shape("page_size set", &["PRAGMA page_size = 4096"]),
        shape("pragma on temp", &["CREATE TABLE a(x)", "PRAGMA temp.table_info(a)"]),
        shape("pragma user_version", &["PRAGMA user_version"]),
        shape("pragma journal_mode", &["PRAGMA journal_mode = WAL"]),
        shape("pragma integrity_check", &["PRAGMA integrity_check"]),
        shape("pragma schema_version", &["PRAGMA schema_version"]),
        shape("pragma writable_schema", &["PRAGMA writable_schema = ON"]),
        shape("pragma function_list", &["PRAGMA function_list"]),
        // Maintenance statements.
        shape(
            "analyze and reindex",
            &[
                "CREATE TABLE a(x)",
                "CREATE INDEX a_x ON a(x)",
                "ANALYZE",
                "ANALYZE a",
                "SELECT * FROM sqlite_stat1",
                "REINDEX",
                "REINDEX a_x",
            ],
        ),
        shape("vacuum", &["VACUUM"]),
        // The authorizer: transactions, ATTACH, temporary objects, `_cf_` names.
        shape("begin", &["BEGIN TRANSACTION"]),
        shape("savepoint", &["SAVEPOINT a"]),
        shape("commit", &["COMMIT"]),
        shape("attach", &["ATTACH DATABASE ':memory:' AS other"]),
        shape("temp table", &["CREATE TEMP TABLE scratch(x)"]),
        shape(
            "temp trigger",
            &[
                "CREATE TABLE a(x)",
                "CREATE TEMP TRIGGER t AFTER INSERT ON a BEGIN SELECT 1; END",
            ],
        ),
        shape("_cf_ table", &["CREATE TABLE _cf_mine(x)"]),
        shape("_cf_ index", &["CREATE TABLE a(x)", "CREATE INDEX _cf_i ON a(x)"]),
        shape("_cf_KV read", &["SELECT * FROM _cf_KV"]),
        shape("_cf_ column is fine", &["CREATE TABLE a(_cf_x)"]),
        shape("sqlite_ name reserved", &["CREATE TABLE sqlite_x(a)"]),
        // Schema shapes real projects use.
        shape(
            "strict, generated, without rowid",
            &[
                "CREATE TABLE s(a INTEGER, b INTEGER GENERATED ALWAYS AS (a * 2) STORED, c INTEGER AS (a + 1)) STRICT",
                "CREATE TABLE w(k TEXT PRIMARY KEY, v) WITHOUT ROWID",
                "INSERT INTO s(a) VALUES (1)",
            ],
        ),
        shape(
            "alter table",
            &[
                "CREATE TABLE a(x)",
                "ALTER TABLE a RENAME TO b",
                "ALTER TABLE b ADD COLUMN y",
                "ALTER TABLE b RENAME COLUMN x TO z",
                "ALTER TABLE b DROP COLUMN y",
            ],
        ),
        shape(
            "upsert returning",
            &[
                "CREATE TABLE a(id INTEGER PRIMARY KEY, v)",
                "INSERT INTO a VALUES (1, 2) ON CONFLICT(id) DO UPDATE SET v = excluded.v RETURNING *",
            ],
        ),
        shape(
            "foreign keys are enforced",
            &[
                "CREATE TABLE p(id INTEGER PRIMARY KEY)",
                "CREATE TABLE c(p INTEGER REFERENCES p(id))",
                "INSERT INTO c VALUES (7)",
            ],
        ),
        shape(
            "autoincrement",
            &[
                "CREATE TABLE a(id INTEGER PRIMARY KEY AUTOINCREMENT)",
                "INSERT INTO a DEFAULT VALUES",
                "SELECT * FROM sqlite_sequence",
            ],
        ),
        // Every limit D1 sets on a connection.
        owned("compound select of 5", vec![union(5)], SAME),
        owned("compound select of 6", vec![union(6)], SAME),
        owned(
            "100 columns",
            vec![format!("CREATE TABLE w({})", cols(100))],
            SAME,
        ),
        owned(
            "101 columns",
            vec![format!("CREATE TABLE w({})", cols(101))],
            SAME,
        ),
        owned(
            "statement under 100,000 bytes",
            vec![format!("SELECT '{}'", "x".repeat(99_980))],
            SAME,
        ),
        owned(
            "statement over 100,000 bytes",
            vec![format!("SELECT '{}'", "x".repeat(100_010))],
            SAME,
        ),
        owned(
            "LIKE pattern of 50",
            vec![format!("SELECT 'a' LIKE '{}'", "a".repeat(50))],
            SAME,
        ),
        owned(
            "LIKE pattern of 51",
            vec![format!("SELECT 'a' LIKE '{}'", "a".repeat(51))],
            SAME,
        ),
        owned(
            "127 function arguments",
            vec![format!("SELECT max({})", vec!["1"; 127].join(", "))],
            SAME,
        ),
        owned(
            "128 function arguments",
            vec![format!("SELECT max({})", vec!["1"; 128].join(", "))],
            SAME,
        ),
        owned(
            "expression deeper than 100",
            vec![format!("SELECT {}", vec!["abs(1)"; 120].join(" + "))],
            SAME,
        ),
        shape(
            "trigger recursion deeper than 10",
            &[
                "CREATE TABLE a(x)",
                "CREATE TRIGGER more AFTER INSERT ON a WHEN new.x < 20 BEGIN INSERT INTO a VALUES (new.x + 1); END",
                "PRAGMA recursive_triggers = ON",
                "INSERT INTO a VALUES (1)",
            ],
        ),
        shape("a string of 1 MB", &["SELECT length(zeroblob(1000000))"]),
        owned(
            "a BLOB of 3 MB",
            vec!["SELECT length(zeroblob(3000000))".to_string()],
            D1_STRICTER,
        ),
        owned(
            "a row of 2.1 MB stored",
            vec![
                "CREATE TABLE a(x)".to_string(),
                "INSERT INTO a VALUES (zeroblob(2100000))".to_string(),
            ],
            D1_STRICTER,
        ),
    ];
    all.sort_by_key(|s| s.name);
    all
}

/// Whether a shape's request ended ok, and the error if not.
#[derive(Clone, Debug)]
struct Outcome {
    ok: bool,
    error: String,
}

fn http(port: u16, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let status = String::from_utf8_lossy(&raw[..split])
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    (status, raw[split + 4..].to_vec())
}

fn api(port: u16, db: &str, tail: &str, body: Value) -> Value {
    let path = format!("/client/v4/accounts/{ACCOUNT}/d1/database/{db}/{tail}");
    let (_, reply) = http(port, "POST", &path, body.to_string().as_bytes());
    serde_json::from_slice(&reply)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&reply)))
}

fn outcome_of(reply: &Value) -> Outcome {
    let ok = reply["success"] == true
        && reply["result"]
            .as_array()
            .is_some_and(|items| items.iter().all(|i| i["success"] == true));
    Outcome {
        ok,
        error: if ok {
            String::new()
        } else {
            reply["errors"].to_string()
        },
    }
}

/// The same request sent as an import: init, upload, ingest, poll until not `active`.
fn import(port: u16, db: &str, sql: &str) -> Outcome {
    let etag = d1_emulator::store::md5_hex(sql.as_bytes());
    let init = api(port, db, "import", json!({"action": "init", "etag": etag}));
    let upload = init["result"]["upload_url"].as_str().unwrap().to_string();
    let upload_path = upload.split_once("127.0.0.1").unwrap().1;
    let upload_path = &upload_path[upload_path.find('/').unwrap()..];
    let (status, _) = http(port, "PUT", upload_path, sql.as_bytes());
    assert_eq!(status, 200, "upload");
    let mut reply = api(
        port,
        db,
        "import",
        json!({"action": "ingest", "etag": etag, "filename": init["result"]["filename"]}),
    );
    for _ in 0..20 {
        if reply["result"]["status"] != "active" {
            break;
        }
        reply = api(
            port,
            db,
            "import",
            json!({"action": "poll", "current_bookmark": reply["result"]["at_bookmark"]}),
        );
    }
    let ok = reply["success"] == true && reply["result"]["status"] == "complete";
    Outcome {
        ok,
        error: if ok {
            String::new()
        } else {
            reply["result"]["error"].to_string()
        },
    }
}

fn uuid(kind: u8, i: usize) -> String {
    format!("00000000-0000-4000-8{kind:03}-{i:012}")
}

#[test]
fn the_emulator_ends_every_shape_as_workerd_does() {
    let shapes = shapes();
    assert!(shapes.len() >= 40, "at least 40 shapes");
    wrangler_bin();

    // workerd, all shapes in one Node process.
    let work = Workspace::new("conformance");
    let input: Vec<Value> = shapes
        .iter()
        .map(|s| json!({"name": s.name, "requests": s.requests}))
        .collect();
    work.write("shapes.json", serde_json::to_vec(&input).unwrap());
    let harness = repo_root().join("xtask/tests/conformance/workerd.mjs");
    let out = std::process::Command::new(node_bin_dir().join("node"))
        .arg(&harness)
        .arg(work.dir.join("shapes.json"))
        .arg(repo_root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the workerd harness failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let workerd: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();

    // The emulator: a database per shape for /query, another for import.
    let mut databases = Vec::new();
    for i in 0..shapes.len() {
        databases.push((uuid(1, i), format!("query-{i}")));
        databases.push((uuid(2, i), format!("import-{i}")));
    }
    let emu = d1_emulator::Emulator::start(d1_emulator::Options {
        port: 0,
        data_dir: work.dir.join("emulator"),
        databases,
        import_active_polls: 1,
        ..d1_emulator::Options::default()
    })
    .unwrap();
    let port = emu.port();

    let mut differences = Vec::new();
    let mut table = Vec::new();
    for (i, shape) in shapes.iter().enumerate() {
        let theirs = &workerd[i];
        assert_eq!(theirs["name"], shape.name);
        let last = shape.requests.len() - 1;
        for (j, sql) in shape.requests.iter().enumerate() {
            let w = &theirs["outcomes"][j];
            let w = Outcome {
                ok: w["ok"] == true,
                error: w["error"].as_str().unwrap_or_default().to_string(),
            };
            let q = outcome_of(&api(port, &uuid(1, i), "query", json!({ "sql": sql })));
            let imp = if j == last {
                import(port, &uuid(2, i), sql)
            } else {
                outcome_of(&api(port, &uuid(2, i), "query", json!({ "sql": sql })))
            };
            let expected_emulator_ok = w.ok && !(shape.d1_stricter && j == last);
            if shape.d1_stricter && j == last {
                assert!(
                    w.ok,
                    "{}: marked D1-stricter, so workerd must accept it locally",
                    shape.name
                );
            }
            for (how, got) in [("/query", &q), ("import", &imp)] {
                if got.ok != expected_emulator_ok {
                    differences.push(format!(
                        "{} [{j}] via {how}: workerd {} ({}), emulator {} ({})\n    {}",
                        shape.name,
                        if w.ok { "ok" } else { "refused" },
                        w.error,
                        if got.ok { "ok" } else { "refused" },
                        got.error,
                        sql.chars().take(120).collect::<String>()
                    ));
                }
            }
            if j == last {
                table.push(format!(
                    "{:45} workerd {:8} emulator {}",
                    shape.name,
                    if w.ok { "ok" } else { "refused" },
                    if q.ok { "ok" } else { "refused" }
                ));
            }
        }
    }
    eprintln!("{}", table.join("\n"));
    assert!(
        differences.is_empty(),
        "{} difference(s) between workerd and the emulator:\n{}",
        differences.len(),
        differences.join("\n")
    );
}

/// The harness sees what `wrangler d1 execute --local` sees: one request that workerd
/// accepts (FTS5 written in a later request, math, data_version), one it refuses.
#[test]
fn the_harness_agrees_with_wrangler_execute_local() {
    let work = Workspace::new("conformance-wrangler");
    work.write(
        "wrangler.jsonc",
        r#"{"name": "c", "d1_databases": [{"binding": "DB", "database_name": "c", "database_id": "00000000-0000-4000-8000-0000000000c1"}]}"#,
    );
    work.wrangler(&[
        "d1",
        "execute",
        "DB",
        "--local",
        "--command",
        "CREATE VIRTUAL TABLE n USING fts5(body)",
    ])
    .expect(0, &[]);
    work.wrangler(&[
        "d1",
        "execute",
        "DB",
        "--local",
        "--command",
        "INSERT INTO n VALUES ('x'); SELECT sqrt(16), ln(2); PRAGMA data_version",
    ])
    .expect(0, &[]);
    let refused = work.wrangler(&[
        "d1",
        "execute",
        "DB",
        "--local",
        "--command",
        "SELECT sqlite_version()",
    ]);
    assert_ne!(refused.code, 0);
    assert!(
        refused.stderr.contains("not authorized") || refused.stdout.contains("not authorized"),
        "{}{}",
        refused.stdout,
        refused.stderr
    );
}
