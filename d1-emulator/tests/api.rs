//! The emulator over HTTP, as any client sees it: envelopes, paging, transactions, Time
//! Travel, import and export, auth and fault injection.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;

use d1_emulator::{Emulator, Fault, FaultKind, Options};
use serde_json::{json, Value};

const ACCT: &str = "0123456789abcdef0123456789abcdef";
const DB: &str = "00000000-0000-0000-0000-000000000001";
const TOKEN: &str = "emulator-test-token";

fn temp(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("d1-emu-api-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// An emulator whose account holds `DB` and `databases`.
fn start(tag: &str, mut databases: Vec<(String, String)>) -> Emulator {
    if !databases.iter().any(|(u, _)| u == DB) {
        databases.push((DB.into(), "main".into()));
    }
    Emulator::start(Options {
        port: 0,
        data_dir: temp(tag),
        token: Some(TOKEN.into()),
        databases,
        faults: Vec::new(),
        ..Options::default()
    })
    .unwrap()
}

struct Reply {
    status: u16,
    headers: String,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

/// One HTTP/1.1 request; `None` when the server closed without a reply.
fn send(
    emu: &Emulator,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &[u8],
) -> Option<Reply> {
    let mut s = TcpStream::connect(("127.0.0.1", emu.port())).unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    if raw.is_empty() {
        return None;
    }
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let headers = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = headers.split_whitespace().nth(1).unwrap().parse().unwrap();
    Some(Reply {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    })
}

fn api(emu: &Emulator, method: &str, path: &str, body: Value) -> Reply {
    let path = format!("/client/v4/accounts/{ACCT}/d1/database{path}");
    let body = if body.is_null() {
        Vec::new()
    } else {
        body.to_string().into_bytes()
    };
    send(emu, method, &path, Some(TOKEN), &body).expect("a reply")
}

fn query(emu: &Emulator, sql: &str) -> Reply {
    api(emu, "POST", &format!("/{DB}/query"), json!({ "sql": sql }))
}

#[test]
fn list_pages_as_wrangler_expects() {
    let dbs = (1..=12)
        .map(|i| {
            (
                format!("00000000-0000-0000-0000-0000000000{i:02}"),
                format!("db-{i}"),
            )
        })
        .collect();
    let emu = start("paging", dbs);
    let page = |n: u32| api(&emu, "GET", &format!("?per_page=10&page={n}"), Value::Null).json();
    assert_eq!(page(1)["result"].as_array().unwrap().len(), 10);
    assert_eq!(page(2)["result"].as_array().unwrap().len(), 2);
    assert_eq!(page(3)["result"].as_array().unwrap().len(), 0);
    let by_name = api(&emu, "GET", "/db-7?fields=uuid%2Cname", Value::Null).json();
    assert_eq!(
        by_name["result"]["uuid"],
        "00000000-0000-0000-0000-000000000007"
    );
    assert_eq!(
        api(&emu, "GET", "/nosuchdb?fields=uuid%2Cname", Value::Null).status,
        404
    );
}

#[test]
fn a_wrong_token_is_refused_with_a_code_that_triggers_no_whoami() {
    let emu = start("auth", vec![]);
    let r = send(
        &emu,
        "POST",
        &format!("/client/v4/accounts/{ACCT}/d1/database/{DB}/query"),
        Some("wrong"),
        b"{\"sql\":\"SELECT 1\"}",
    )
    .unwrap();
    assert_eq!(r.status, 403);
    let code = r.json()["errors"][0]["code"].as_u64().unwrap();
    assert!(code != 9106 && code != 10000);
    assert_eq!(r.json()["success"], false);
}

#[test]
fn queries_are_one_transaction_with_one_result_per_statement() {
    let emu = start("query", vec![]);
    let ok = query(
        &emu,
        "CREATE TABLE a(x INTEGER PRIMARY KEY); INSERT INTO a VALUES (1); SELECT x FROM a;",
    )
    .json();
    assert_eq!(ok["success"], true);
    assert_eq!(ok["result"].as_array().unwrap().len(), 3);
    assert_eq!(ok["result"][2]["results"][0]["x"], 1);
    assert_eq!(ok["result"][1]["meta"]["changes"], 1);

    let bad = query(
        &emu,
        "INSERT INTO a VALUES (2); INSERT INTO nosuch VALUES (1);",
    );
    assert_eq!(bad.json()["success"], false);
    assert_eq!(bad.json()["errors"][0]["code"], 7500);
    assert!(bad.json()["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("no such table: nosuch"));
    let n = query(&emu, "SELECT count(*) AS n FROM a").json();
    assert_eq!(
        n["result"][0]["results"][0]["n"], 1,
        "the failed request rolled back"
    );

    let tx = query(&emu, "BEGIN TRANSACTION; INSERT INTO a VALUES (3); COMMIT;").json();
    assert_eq!(tx["success"], false);
}

#[test]
fn time_travel_bookmarks_timestamps_and_undo() {
    let emu = start("tt", vec![]);
    let bookmark = || {
        api(
            &emu,
            "GET",
            &format!("/{DB}/time_travel/bookmark?"),
            Value::Null,
        )
        .json()["result"]["bookmark"]
            .as_str()
            .unwrap()
            .to_string()
    };
    query(&emu, "CREATE TABLE a(x);");
    let b1 = bookmark();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let between = d1_emulator::store::iso_ms(d1_emulator::store::now_ms());
    std::thread::sleep(std::time::Duration::from_millis(20));
    query(&emu, "INSERT INTO a VALUES (1);");
    let b2 = bookmark();
    assert_ne!(b1, b2, "a committed write makes a new bookmark");
    query(&emu, "SELECT * FROM a;");
    assert_eq!(bookmark(), b2, "a read does not");

    let at = api(
        &emu,
        "GET",
        &format!(
            "/{DB}/time_travel/bookmark?timestamp={}",
            between.replace(':', "%3A")
        ),
        Value::Null,
    )
    .json();
    assert_eq!(at["result"]["bookmark"], b1.as_str());

    let restored = api(
        &emu,
        "POST",
        &format!("/{DB}/time_travel/restore?bookmark={b1}"),
        Value::Null,
    )
    .json();
    assert_eq!(restored["result"]["bookmark"], b1.as_str());
    assert_eq!(restored["result"]["previous_bookmark"], b2.as_str());
    assert_eq!(
        query(&emu, "SELECT count(*) AS n FROM a").json()["result"][0]["results"][0]["n"],
        0
    );
    api(
        &emu,
        "POST",
        &format!("/{DB}/time_travel/restore?bookmark={b2}"),
        Value::Null,
    );
    assert_eq!(
        query(&emu, "SELECT count(*) AS n FROM a").json()["result"][0]["results"][0]["n"],
        1,
        "restoring previous_bookmark undoes the restore"
    );
}

/// Ingests an uploaded file and polls until the import is no longer `active`, as wrangler
/// does; D1 answers `active` at least once first.
fn ingest(emu: &Emulator, etag: &str, filename: &Value) -> Value {
    let mut reply = api(
        emu,
        "POST",
        &format!("/{DB}/import"),
        json!({"action": "ingest", "etag": etag, "filename": filename}),
    )
    .json();
    let mut active = 0;
    while reply["result"]["status"] == "active" {
        active += 1;
        assert!(active < 10, "the import never ends");
        reply = api(
            emu,
            "POST",
            &format!("/{DB}/import"),
            json!({"action": "poll", "current_bookmark": reply["result"]["at_bookmark"]}),
        )
        .json();
    }
    assert!(active >= 1, "an import answers `active` before its outcome");
    reply
}

#[test]
fn import_and_export_round_trip() {
    let other = "00000000-0000-0000-0000-000000000009";
    let emu = start("import", vec![(other.into(), "other".into())]);
    let sql = b"CREATE TABLE t(id INTEGER PRIMARY KEY, s TEXT);\nINSERT INTO t VALUES (1, 'a;b'), (2, 'line\r\nbreak');\n";
    let etag = d1_emulator::store::md5_hex(sql);
    let init = api(
        &emu,
        "POST",
        &format!("/{DB}/import"),
        json!({"action": "init", "etag": etag}),
    )
    .json();
    let upload_url = init["result"]["upload_url"].as_str().unwrap();
    let upload_path = upload_url
        .split_once("127.0.0.1")
        .unwrap()
        .1
        .split_once('/')
        .map(|(_, p)| format!("/{p}"))
        .unwrap();
    let up = send(&emu, "PUT", &upload_path, None, sql).unwrap();
    assert_eq!(up.status, 200);
    assert!(
        up.headers.contains(&etag),
        "ETag is the MD5: {}",
        up.headers
    );
    let ingested = ingest(&emu, &etag, &init["result"]["filename"]);
    assert_eq!(ingested["result"]["status"], "complete");
    assert_eq!(ingested["result"]["result"]["num_queries"], 2);

    let export = api(&emu, "POST", &format!("/{DB}/export"), json!({"output_format": "polling", "dump_options": {"no_schema": false, "no_data": false, "tables": []}})).json();
    assert_eq!(export["result"]["status"], "complete");
    let url = export["result"]["result"]["signed_url"].as_str().unwrap();
    let path = format!("/{}", url.splitn(4, '/').nth(3).unwrap());
    let dump = send(&emu, "GET", &path, None, b"").unwrap();
    assert_eq!(dump.status, 200);
    let dump = String::from_utf8(dump.body).unwrap();
    assert!(
        dump.starts_with("PRAGMA defer_foreign_keys=TRUE;\nCREATE TABLE t("),
        "{dump}"
    );

    // The dump loads into another database and gives the same rows.
    emu.execute(other, &dump).unwrap();
    let rows = emu.execute(other, "SELECT s FROM t ORDER BY id").unwrap();
    assert_eq!(rows[0]["results"][1]["s"], "line\r\nbreak");

    let failing = b"INSERT INTO t VALUES (3, 'x');\nINSERT INTO nosuch VALUES (1);\n";
    let etag = d1_emulator::store::md5_hex(failing);
    let init = api(
        &emu,
        "POST",
        &format!("/{DB}/import"),
        json!({"action": "init", "etag": etag}),
    )
    .json();
    send(
        &emu,
        "PUT",
        &format!("/upload/{}", init["result"]["filename"].as_str().unwrap()),
        None,
        failing,
    );
    let ingested = ingest(&emu, &etag, &init["result"]["filename"]);
    assert_eq!(ingested["result"]["status"], "error");
    assert_eq!(
        query(&emu, "SELECT count(*) AS n FROM t").json()["result"][0]["results"][0]["n"],
        2,
        "a failed import rolls back"
    );
}

#[test]
fn faults_fire_on_the_nth_request() {
    let emu = start("faults", vec![]);
    emu.add_fault(Fault::new("/query", FaultKind::Fail).nth(2));
    assert_eq!(query(&emu, "SELECT 1").json()["success"], true);
    let failed = query(&emu, "SELECT 1");
    assert_eq!(failed.json()["success"], false);
    assert_eq!(
        query(&emu, "SELECT 1").json()["success"],
        true,
        "only the nth"
    );

    emu.clear_faults();
    emu.add_fault(Fault::new("/query", FaultKind::NonJson));
    let html = query(&emu, "SELECT 1");
    assert_eq!(html.status, 502);
    assert!(serde_json::from_slice::<Value>(&html.body).is_err());

    emu.clear_faults();
    emu.add_fault(Fault::new("/query", FaultKind::Drop));
    let path = format!("/client/v4/accounts/{ACCT}/d1/database/{DB}/query");
    assert!(send(&emu, "POST", &path, Some(TOKEN), b"{\"sql\":\"SELECT 1\"}").is_none());

    emu.clear_faults();
    emu.add_fault(Fault::new("/query", FaultKind::Delay(300)));
    let started = std::time::Instant::now();
    assert_eq!(query(&emu, "SELECT 1").json()["success"], true);
    assert!(started.elapsed().as_millis() >= 300);

    emu.clear_faults();
    emu.add_fault(Fault::new("/query", FaultKind::ItemUnsuccessful));
    let item = query(&emu, "CREATE TABLE z(x);").json();
    assert_eq!(item["success"], true);
    assert!(item["result"][0].get("success").is_none());
    let tables = query(
        &emu,
        "SELECT count(*) AS n FROM sqlite_master WHERE name = 'z'",
    )
    .json();
    assert_eq!(
        tables["result"][0]["results"][0]["n"], 0,
        "nothing was committed"
    );

    // The admin API does the same over HTTP.
    let add = send(
        &emu,
        "POST",
        "/__admin/faults",
        None,
        br#"{"path": "/export", "kind": "fail", "nth": 1}"#,
    )
    .unwrap();
    assert_eq!(add.status, 200);
    let listed = send(&emu, "GET", "/__admin/faults", None, b"")
        .unwrap()
        .json();
    assert!(listed
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["path"] == "/export"));
    assert!(emu.requests().iter().any(|r| r.sql == "SELECT 1"));
}

/// Reads one reply with a Content-Length body off a kept-alive connection.
fn read_one(s: &mut std::io::BufReader<TcpStream>) -> (String, Vec<u8>) {
    use std::io::BufRead;
    let mut head = String::new();
    loop {
        let mut line = String::new();
        assert!(s.read_line(&mut line).unwrap() > 0, "closed after: {head}");
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let mut body = vec![0; len];
    s.read_exact(&mut body).unwrap();
    (head, body)
}

#[test]
fn connections_stay_open_until_the_client_closes_them() {
    // Closing right after a large reply made wrangler's undici die on
    // `assert(!this.paused)`; the server keeps the connection for the next request instead.
    let emu = start("keepalive", Vec::new());
    let s = TcpStream::connect(("127.0.0.1", emu.port())).unwrap();
    let mut w = s.try_clone().unwrap();
    let mut r = std::io::BufReader::new(s);
    let path = format!("/client/v4/accounts/{ACCT}/d1/database/{DB}/query");
    for (i, close) in [(1, ""), (2, "Connection: close\r\n")] {
        let body = json!({ "sql": format!("SELECT {i} AS n") }).to_string();
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\n{close}Authorization: Bearer {TOKEN}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        w.write_all(req.as_bytes()).unwrap();
        let (head, body) = read_one(&mut r);
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert_eq!(
            head.contains("Connection: close"),
            !close.is_empty(),
            "{head}"
        );
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["result"][0]["results"][0]["n"], i, "{v}");
    }
    // After `Connection: close` the server ends the connection.
    let mut rest = Vec::new();
    assert_eq!(r.read_to_end(&mut rest).unwrap(), 0);
}
