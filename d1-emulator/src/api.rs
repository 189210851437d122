//! The Cloudflare API v4 routes wrangler's D1 commands call (d1-remote-api.md), plus the
//! signed upload/download URLs and an admin API for tests.

use std::sync::Mutex;

use serde_json::{json, Value};

use crate::faults::{Fault, FaultKind, Faults};
use crate::http::{percent_decode, Request, Response};
use crate::store::{md5_hex, now_ms, parse_iso_ms, Db, SqlError, Store};

pub const BASE_PATH: &str = "/client/v4";

/// One request as the emulator saw it, for tests that count requests.
#[derive(Clone, Debug)]
pub struct Logged {
    pub method: String,
    pub path: String,
    /// The SQL of a `/query` body, else empty.
    pub sql: String,
}

pub struct Shared {
    pub store: Mutex<Store>,
    pub faults: Mutex<Faults>,
    pub log: Mutex<Vec<Logged>>,
    pub token: Option<String>,
    /// `http://127.0.0.1:<port>`, for upload and download URLs.
    pub origin: String,
    /// Create databases on first use instead of answering 404 (off by default).
    pub create_on_use: bool,
    /// How many polls of an import answer `active` before its outcome.
    pub import_active_polls: u32,
    /// Imports under way, by database: polls still to answer `active`, then the outcome.
    pub imports: Mutex<std::collections::BTreeMap<String, (u32, Value)>>,
    /// The account's Workers: versions and deployments per script (`workers.rs`).
    pub workers: Mutex<crate::workers::Workers>,
    pub rate_limit: Option<crate::RateLimit>,
    /// The current rate-limit window: its start (ms) and the requests counted in it.
    pub window: Mutex<(i64, u32)>,
    /// Requests answered 429.
    pub limited: std::sync::atomic::AtomicU64,
}

/// Over the rate limit: Cloudflare's 429 (code 971) with `Retry-After` (whole seconds until
/// the window ends) and the `Ratelimit`/`Ratelimit-Policy` headers.
fn over_limit(shared: &Shared) -> Option<Response> {
    let limit = shared.rate_limit?;
    let now = now_ms();
    let mut window = shared.window.lock().unwrap();
    if now - window.0 >= limit.window_ms as i64 {
        *window = (now, 0);
    }
    if window.1 < limit.requests {
        window.1 += 1;
        return None;
    }
    shared
        .limited
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let left_ms = (window.0 + limit.window_ms as i64 - now).max(1);
    let secs = (left_ms + 999) / 1000;
    let mut resp = error(
        429,
        971,
        "Please wait and consider throttling your request speed",
    );
    resp.headers.push(("Retry-After".into(), secs.to_string()));
    resp.headers
        .push(("Ratelimit".into(), format!("\"default\";r=0;t={secs}")));
    resp.headers.push((
        "Ratelimit-Policy".into(),
        format!(
            "\"default\";q={};w={}",
            limit.requests,
            limit.window_ms / 1000
        ),
    ));
    Some(resp)
}

/// What to do with a connection.
pub enum Outcome {
    Reply(Response),
    /// The request was handled; the reply goes out this many milliseconds late.
    Late(Response, u64),
    /// Close without a reply (fault injection).
    Drop,
}

pub(crate) fn envelope(result: Value) -> Response {
    Response::json(
        200,
        &json!({"success": true, "errors": [], "messages": [], "result": result}),
    )
}

pub(crate) fn error(status: u16, code: u32, message: &str) -> Response {
    Response::json(
        status,
        &json!({"success": false, "errors": [{"code": code, "message": message}], "messages": [], "result": null}),
    )
}

fn is_uuid(s: &str) -> bool {
    let g: Vec<&str> = s.split('-').collect();
    g.len() == 5
        && g.iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

pub fn handle(shared: &Shared, req: &Request) -> Outcome {
    let sql = if req.path.ends_with("/query") {
        serde_json::from_slice::<Value>(&req.body)
            .ok()
            .and_then(|v| v["sql"].as_str().map(String::from))
            .unwrap_or_default()
    } else {
        String::new()
    };
    if !req.path.starts_with("/__admin") {
        let mut log = shared.log.lock().unwrap();
        log.push(Logged {
            method: req.method.clone(),
            path: req.path.clone(),
            sql,
        });
    }
    if let Some(rest) = req.path.strip_prefix("/__admin") {
        return Outcome::Reply(admin(shared, req, rest));
    }
    if req.path.starts_with(BASE_PATH) {
        if let Some(resp) = over_limit(shared) {
            return Outcome::Reply(resp);
        }
    }
    let fault = shared.faults.lock().unwrap().check(&req.method, &req.path);
    match fault {
        Some(FaultKind::Drop) => return Outcome::Drop,
        Some(FaultKind::NonJson) => {
            return Outcome::Reply(Response::raw(
                502,
                "text/html",
                b"<html><body><h1>502 Bad Gateway</h1>injected by d1-emulator</body></html>"
                    .to_vec(),
            ))
        }
        Some(FaultKind::Fail) => {
            return Outcome::Reply(error(500, 7500, "injected failure (d1-emulator fault)"))
        }
        _ => {}
    }
    let outcome = route(shared, req, fault.as_ref());
    match (fault, outcome) {
        (Some(FaultKind::Delay(ms)), Outcome::Reply(resp)) => Outcome::Late(resp, ms),
        // The work is done and committed; the answer never arrives.
        (Some(FaultKind::CommitThenDrop), _) => Outcome::Drop,
        (_, outcome) => outcome,
    }
}

/// The routes proper, once faults have had their say.
fn route(shared: &Shared, req: &Request, fault: Option<&FaultKind>) -> Outcome {
    let item_fault = fault == Some(&FaultKind::ItemUnsuccessful);
    let import_fail = match fault {
        Some(FaultKind::ImportFailAfter(n)) => Some(*n as usize),
        _ => None,
    };
    if let Some(name) = req.path.strip_prefix("/upload/") {
        return Outcome::Reply(upload(shared, name, &req.body));
    }
    if let Some(name) = req.path.strip_prefix("/download/") {
        let path = shared
            .store
            .lock()
            .unwrap()
            .dir()
            .join("exports")
            .join(safe_name(name));
        return Outcome::Reply(match std::fs::read(path) {
            Ok(body) => Response::raw(200, "application/sql", body),
            Err(_) => Response::raw(404, "text/plain", b"no such export".to_vec()),
        });
    }
    let Some(api_path) = req.path.strip_prefix(BASE_PATH) else {
        return Outcome::Reply(error(404, 7404, "no such route"));
    };
    if let Some(expected) = &shared.token {
        let bearer = req
            .header("authorization")
            .and_then(|v| v.strip_prefix("Bearer "));
        let key = req.header("x-auth-key");
        if bearer != Some(expected.as_str()) && key != Some(expected.as_str()) {
            return Outcome::Reply(error(
                403,
                7403,
                "Authentication error: the API token is not valid",
            ));
        }
    }
    if api_path == "/graphql" {
        return Outcome::Reply(Response::json(
            200,
            &json!({"data": {"viewer": {"accounts": [{"d1AnalyticsAdaptiveGroups": []}]}}, "errors": null}),
        ));
    }
    let segments: Vec<String> = api_path
        .trim_start_matches('/')
        .split('/')
        .map(percent_decode)
        .collect();
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    if let ["accounts", _, "workers", rest @ ..] = segs.as_slice() {
        let d1_exists = |id: &str| shared.store.lock().unwrap().get(id).is_some();
        let reply = shared.workers.lock().unwrap().route(req, rest, &d1_exists);
        return Outcome::Reply(reply.unwrap_or_else(|| {
            error(
                404,
                7404,
                &format!("no such route: {} {}", req.method, req.path),
            )
        }));
    }
    let reply = match segs.as_slice() {
        ["accounts", _, "d1", "database"] if req.method == "GET" => list(shared, req),
        ["accounts", _, "d1", "database"] if req.method == "POST" => create(shared, req),
        ["accounts", _, "d1", "database", id] if req.method == "DELETE" => delete(shared, id),
        ["accounts", _, "d1", "database", id] if req.method == "GET" => database(shared, req, id),
        ["accounts", _, "d1", "database", id, "query"] if req.method == "POST" => {
            query(shared, req, id, item_fault)
        }
        ["accounts", _, "d1", "database", id, "import"] if req.method == "POST" => {
            import(shared, req, id, import_fail)
        }
        ["accounts", _, "d1", "database", id, "export"] if req.method == "POST" => {
            export(shared, req, id)
        }
        ["accounts", _, "d1", "database", id, "time_travel", "bookmark"] if req.method == "GET" => {
            bookmark(shared, req, id)
        }
        ["accounts", _, "d1", "database", id, "time_travel", "restore"] if req.method == "POST" => {
            restore(shared, req, id)
        }
        _ => error(
            404,
            7404,
            &format!("no such route: {} {}", req.method, req.path),
        ),
    };
    Outcome::Reply(reply)
}

/// Runs `f` on the database `id`. An id that is not a UUID is 400/7400 (#4636); a UUID
/// the account does not have is 404/7404 `Not Found`, as D1 answers it: D1 never creates
/// a database on first use (unless the emulator was started with `create_on_use`).
fn with_db(shared: &Shared, id: &str, f: impl FnOnce(&mut Db) -> Response) -> Response {
    if !is_uuid(id) {
        return error(400, 7400, &format!("The database ID `{id}` is not valid"));
    }
    let mut store = shared.store.lock().unwrap();
    if shared.create_on_use {
        return match store.get_or_create(id, None) {
            Ok(db) => f(db),
            Err(SqlError(e)) => error(500, 7500, &e),
        };
    }
    match store.get(id) {
        Some(db) => f(db),
        None => error(404, 7404, "Not Found"),
    }
}

fn db_json(db: &Db) -> Value {
    listed_json(&crate::store::Listed {
        uuid: db.uuid.clone(),
        name: db.name.clone(),
        created_ms: db.created_ms,
        num_tables: db.table_count(),
        file_size: db.size(),
    })
}

fn listed_json(db: &crate::store::Listed) -> Value {
    json!({
        "uuid": db.uuid,
        "name": db.name,
        "created_at": crate::store::iso_ms(db.created_ms),
        "version": "production",
        "num_tables": db.num_tables,
        "file_size": db.file_size,
        "running_in_region": "LOCAL",
        "read_replication": {"mode": "disabled"},
    })
}

fn list(shared: &Shared, req: &Request) -> Response {
    let per_page: usize = req
        .query_param("per_page")
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
        .max(1);
    let page: usize = req
        .query_param("page")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1);
    let store = shared.store.lock().unwrap();
    let all = store.list();
    let items: Vec<Value> = all
        .iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .map(listed_json)
        .collect();
    let count = items.len();
    Response::json(
        200,
        &json!({"success": true, "errors": [], "messages": [], "result": items,
                "result_info": {"page": page, "per_page": per_page, "count": count, "total_count": all.len()}}),
    )
}

/// `POST /accounts/{acct}/d1/database` with `{"name": ...}`: a new, empty database with a
/// fresh UUID. A name in use is D1's code 7502, which wrangler turns into "A database
/// with that name already exists".
fn create(shared: &Shared, req: &Request) -> Response {
    let body: Value = match serde_json::from_slice(&req.body) {
        Ok(v) => v,
        Err(e) => return error(400, 7400, &format!("request body is not JSON: {e}")),
    };
    let Some(name) = body["name"].as_str().filter(|n| !n.is_empty()) else {
        return error(400, 7400, "request body needs \"name\"");
    };
    let mut store = shared.store.lock().unwrap();
    if store.uuid_by_name(name).is_some() {
        return error(400, 7502, "A database with that name already exists");
    }
    let uuid = new_uuid(name);
    match store.get_or_create(&uuid, Some(name)) {
        Ok(db) => envelope(json!({
            "uuid": db.uuid,
            "name": db.name,
            "created_at": crate::store::iso_ms(db.created_ms),
            "version": "production",
            "created_in_region": "WEUR",
        })),
        Err(SqlError(e)) => error(500, 7500, &e),
    }
}

/// `DELETE /accounts/{acct}/d1/database/{uuid}`: the database and its Time Travel history.
fn delete(shared: &Shared, id: &str) -> Response {
    if !is_uuid(id) {
        return error(400, 7400, &format!("The database ID `{id}` is not valid"));
    }
    if shared.store.lock().unwrap().delete(id) {
        envelope(Value::Null)
    } else {
        error(404, 7404, "Not Found")
    }
}

/// A version-4-shaped UUID from the name, the clock and a counter (unique within a run
/// and across restarts; the emulator needs no cryptographic randomness).
fn new_uuid(name: &str) -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let h = crate::store::md5_hex(format!("{name}:{nanos}:{n}:{}", std::process::id()).as_bytes());
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

fn database(shared: &Shared, req: &Request, id: &str) -> Response {
    if is_uuid(id) {
        return with_db(shared, id, |db| {
            if req.query_param("fields").is_some() {
                envelope(json!({"uuid": db.uuid, "name": db.name}))
            } else {
                envelope(db_json(db))
            }
        });
    }
    // A name where the UUID goes: wrangler's lookup for entries without database_id.
    let store = shared.store.lock().unwrap();
    match store.uuid_by_name(id) {
        Some(uuid) => envelope(json!({"uuid": uuid, "name": id})),
        None => error(404, 7404, &format!("database {id} not found")),
    }
}

fn query(shared: &Shared, req: &Request, id: &str, item_fault: bool) -> Response {
    let body: Value = match serde_json::from_slice(&req.body) {
        Ok(v) => v,
        Err(e) => return error(400, 7400, &format!("request body is not JSON: {e}")),
    };
    let Some(sql) = body["sql"].as_str() else {
        return error(400, 7400, "request body needs \"sql\"");
    };
    with_db(shared, id, |db| match db.execute(sql, !item_fault) {
        Ok(out) if item_fault => envelope(Value::Array(
            out.items
                .iter()
                .map(|_| json!({"results": [], "meta": {"duration": 0}}))
                .collect(),
        )),
        Ok(out) => envelope(Value::Array(out.items)),
        Err(SqlError(e)) => error(400, 7500, &e),
    })
}

fn safe_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn upload(shared: &Shared, name: &str, body: &[u8]) -> Response {
    let dir = shared.store.lock().unwrap().dir().join("uploads");
    let _ = std::fs::create_dir_all(&dir);
    if std::fs::write(dir.join(safe_name(name)), body).is_err() {
        return Response::raw(500, "text/plain", b"cannot store upload".to_vec());
    }
    let mut resp = Response::raw(200, "text/plain", Vec::new());
    resp.headers
        .push(("ETag".into(), format!("\"{}\"", md5_hex(body))));
    resp
}

fn import(shared: &Shared, req: &Request, id: &str, fail_after: Option<usize>) -> Response {
    let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    let etag = body["etag"].as_str().unwrap_or_default().to_string();
    match body["action"].as_str() {
        Some("init") => with_db(shared, id, |db| {
            let filename = format!("{}-{}.sql", db.uuid, safe_name(&etag));
            envelope(json!({
                "success": true,
                "filename": filename,
                "upload_url": format!("{}/upload/{filename}", shared.origin),
            }))
        }),
        Some("ingest") => {
            let filename = body["filename"].as_str().unwrap_or_default().to_string();
            let path = shared
                .store
                .lock()
                .unwrap()
                .dir()
                .join("uploads")
                .join(safe_name(&filename));
            let Ok(bytes) = std::fs::read(&path) else {
                return error(400, 7400, &format!("no uploaded file {filename}"));
            };
            if md5_hex(&bytes) != etag {
                return error(400, 7400, "uploaded file does not match its etag");
            }
            let sql = String::from_utf8_lossy(&bytes).into_owned();
            with_db(shared, id, |db| {
                let before = db.current_bookmark().id.clone();
                let outcome = match db.import(&sql, fail_after) {
                    Ok(out) => {
                        let bm = db.current_bookmark().id.clone();
                        json!({
                            "success": true, "type": "import", "status": "complete", "at_bookmark": bm,
                            "messages": ["Uploaded file", "Starting import...", "Import complete"],
                            "result": {
                                "success": true, "num_queries": out.items.len(), "final_bookmark": bm,
                                "meta": {"duration": out.duration_ms, "rows_read": out.rows_read,
                                         "rows_written": out.rows_written, "size_after": db.size(),
                                         "changed_db": out.changed, "served_by": "d1-emulator"}
                            }
                        })
                    }
                    Err(SqlError(e)) => json!({
                        "success": true, "type": "import", "status": "error",
                        "at_bookmark": db.current_bookmark().id, "error": e, "errors": [e],
                        "messages": [format!("Import failed; the database was returned to bookmark {before}")],
                    }),
                };
                if shared.import_active_polls == 0 {
                    return envelope(outcome);
                }
                shared
                    .imports
                    .lock()
                    .unwrap()
                    .insert(db.uuid.clone(), (shared.import_active_polls, outcome));
                envelope(json!({
                    "success": true, "type": "import", "status": "active", "at_bookmark": before,
                    "messages": ["Uploaded file", "Starting import..."],
                }))
            })
        }
        Some("poll") => with_db(shared, id, |db| {
            let mut imports = shared.imports.lock().unwrap();
            match imports.get_mut(&db.uuid) {
                Some((left, _)) if *left > 1 => {
                    *left -= 1;
                    envelope(json!({
                        "success": true, "type": "import", "status": "active",
                        "at_bookmark": body["current_bookmark"], "messages": [],
                    }))
                }
                Some(_) => {
                    let (_, outcome) = imports.remove(&db.uuid).expect("just seen");
                    envelope(outcome)
                }
                None => error(400, 7400, "no import is under way for this database"),
            }
        }),
        _ => error(400, 7400, "import action must be init, ingest or poll"),
    }
}

fn export(shared: &Shared, req: &Request, id: &str) -> Response {
    let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    let opts = &body["dump_options"];
    let no_schema = opts["no_schema"].as_bool().unwrap_or(false);
    let no_data = opts["no_data"].as_bool().unwrap_or(false);
    let tables: Vec<String> = opts["tables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t.as_str().map(String::from))
        .collect();
    with_db(shared, id, |db| {
        let bm = db.current_bookmark().id.clone();
        let dump = match db.dump(no_schema, no_data, &tables) {
            Ok(d) => d,
            Err(SqlError(e)) => {
                return envelope(
                    json!({"success": true, "type": "export", "status": "error", "at_bookmark": bm,
                                       "error": e, "messages": []}),
                )
            }
        };
        let filename = format!("{}-{}.sql", db.uuid, bm);
        // `with_db` holds the store's lock: the folder comes from the database itself.
        let exports = db.folder().join("exports");
        let _ = std::fs::create_dir_all(&exports);
        if std::fs::write(exports.join(&filename), dump).is_err() {
            return error(500, 7500, "cannot write the export");
        }
        envelope(json!({
            "success": true, "type": "export", "at_bookmark": bm, "status": "complete",
            "messages": ["Uploaded part 1", format!("Finished uploading {filename} in 1 part.")],
            "result": {"filename": filename, "signed_url": format!("{}/download/{filename}", shared.origin)},
        }))
    })
}

fn bookmark(shared: &Shared, req: &Request, id: &str) -> Response {
    let at = match req.query_param("timestamp") {
        None | Some("") => None,
        Some(t) => match parse_iso_ms(t) {
            Some(ms) => Some(ms),
            None => return error(400, 7400, &format!("timestamp {t} is not an ISO date")),
        },
    };
    with_db(shared, id, |db| {
        let bm = match at {
            None => db.current_bookmark(),
            Some(ms) if ms > now_ms() + 60_000 => {
                return error(400, 7400, "timestamp is in the future")
            }
            Some(ms) => match db.bookmark_at(ms) {
                Ok(bm) => bm,
                Err(SqlError(e)) => return error(400, 7400, &e),
            },
        };
        envelope(json!({"bookmark": bm.id}))
    })
}

fn restore(shared: &Shared, req: &Request, id: &str) -> Response {
    let Some(bm) = req.query_param("bookmark").map(String::from) else {
        return error(400, 7400, "restore needs ?bookmark=");
    };
    with_db(shared, id, |db| match db.restore(&bm) {
        Ok(previous) => envelope(json!({"bookmark": bm, "previous_bookmark": previous,
                                         "message": "Database restored successfully"})),
        Err(SqlError(e)) if e.starts_with("too many restores") => error(429, 7429, &e),
        Err(SqlError(e)) => error(400, 7400, &e),
    })
}

fn admin(shared: &Shared, req: &Request, rest: &str) -> Response {
    match (req.method.as_str(), rest) {
        ("POST", "/faults") => {
            let v: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
            match Fault::from_json(&v) {
                Ok(f) => {
                    shared.faults.lock().unwrap().list.push(f);
                    Response::json(200, &json!({"ok": true}))
                }
                Err(e) => Response::json(400, &json!({"ok": false, "error": e})),
            }
        }
        ("GET", "/faults") => {
            let list: Vec<Value> = shared
                .faults
                .lock()
                .unwrap()
                .list
                .iter()
                .map(Fault::to_json)
                .collect();
            Response::json(200, &Value::Array(list))
        }
        ("DELETE", "/faults") => {
            shared.faults.lock().unwrap().list.clear();
            Response::json(200, &json!({"ok": true}))
        }
        ("GET", "/requests") => {
            let log: Vec<Value> = shared
                .log
                .lock()
                .unwrap()
                .iter()
                .map(|l| json!({"method": l.method, "path": l.path, "sql": l.sql}))
                .collect();
            Response::json(200, &Value::Array(log))
        }
        ("DELETE", "/requests") => {
            shared.log.lock().unwrap().clear();
            Response::json(200, &json!({"ok": true}))
        }
        _ => Response::json(404, &json!({"ok": false, "error": "no such admin route"})),
    }
}
