//! A local emulator of the Cloudflare D1 HTTP API that `wrangler d1 ... --remote` calls,
//! so that staging and production paths are tested with the real wrangler and no network;
//! and of the Workers API that `wrangler deploy` and `wrangler rollback` call (`workers`).
//! Point wrangler at it with `CLOUDFLARE_API_BASE_URL=<Emulator::base_url()>` and set
//! `CLOUDFLARE_API_TOKEN` / `CLOUDFLARE_ACCOUNT_ID`.
//!
//! # D1's rules, applied by default
//!
//! An emulator that accepts what D1 refuses certifies bugs, so it is strict. Each rule,
//! with its evidence (the numbers name the kind of rule: 1 limits, 2 authorizer, 3 splitting, 4
//! transactions, 5 import, 6 errors, 7 time and rate, 8 export):
//!
//! | rule | what the emulator does | evidence |
//! |---|---|---|
//! | connection limits (1) | statement 100,000 bytes, string/row ~2 MB (D1's documented limit; workerd's local one is larger), 100 columns, **5 compound-SELECT terms**, 25,000 VDBE ops, expression depth 100, LIKE pattern 50, 100 bound parameters, trigger depth 10, no attached databases; set with `sqlite3_limit` on every connection (`d1_rules::LIMITS`) | workerd `sqlite.c++`; `wrangler d1 execute --local` answers `too many terms in compound SELECT` |
//! | authorizer (2) | `d1_rules::authorize`, measured against workerd: ATTACH/DETACH, temporary objects, `_cf_` names (any case) and transaction statements refused; PRAGMAs in the forms D1 runs them (`d1_rules::pragma_allowed`: `data_version`, `table_info(t)`, booleans set to booleans, ...); SQL functions from D1's list only (`sqlite_version()`, `power()`, `load_extension()` refused; math functions compiled in); virtual tables of `fts5`, `fts5vocab` and `rtree` only; SQLite's defensive mode (FTS5 shadow tables cannot be dropped by name) | the `conformance` end-to-end test (every shape ends as in workerd); workerd `sqlite.c++`; D1 docs, "SQL statements" |
//! | `_cf_KV` (2) | every database has its own, invisible to users and skipped by exports | D1 docs, `PRAGMA table_list` example |
//! | foreign keys (2) | always on; `PRAGMA foreign_keys = OFF` has no effect; `defer_foreign_keys` works | D1 docs, "Define foreign keys" |
//! | server-side splitter (3) | `/query` splits its `sql` as D1's server does: a trigger body opens on `BEGIN` in capitals only, with a space, tab or LF (not CR) on both sides, and closes at the first `END` (any case) followed by `;` or a space, with no nesting; so a lower-case `begin`, CRLF line ends and an unparenthesised `CASE ... END` in a body cut it short and fail with `incomplete input`. Conservatively, a `CREATE TRIGGER` that follows another statement in the same request is refused too | workers-sdk #10998, #15314 (case), #14991 (CRLF), #4326 (CASE), #15690 (trigger after six tables), wrangler's `splitter.ts` |
//! | one request, one transaction (4) | a failing statement rolls the whole request back | D1 foreign-key docs, #15690 |
//! | import (5) | `execute --file` splits with SQLite's own rules, runs the statements one after another, and on failure returns the database to its state before the import (a new bookmark, as Time Travel makes); the ingest and the first polls answer `active` (`import_active_polls`, 2 by default) before the outcome; `PRAGMA defer_foreign_keys` spans the file, as D1's own exports (which start with it) need | #13272, #15178, #11958 |
//! | errors (6) | SQL errors are HTTP 400 code 7500 `<message>[ at offset N]: SQLITE_<CODE>`; an unknown database UUID is 404 / 7404 `Not Found`, a malformed id 400 / 7400; a wrong token 403 / 7403; a restore over the rate limit 429 / 7429 | #6348, #6347, #4636, wrangler's own tests |
//! | databases (6) | only those declared with `--db <uuid>=<name>`, `--from-config <wrangler.jsonc>` or [`Emulator::create_database`] exist; `--create-on-use` brings back creating on first use, off by default | "A database id that does not exist is an error on D1" |
//! | time (7) | a request's statements must finish within `rules.request_timeout_ms` (30 s by default; small in tests), else `D1 DB storage operation exceeded timeout ...: SQLITE_INTERRUPT` | D1 limits page |
//! | Time Travel (7) | bookmarks and timestamps older than `rules.retention_days` (30) are refused; at most `rules.max_restores` (10) restores per 10 minutes per database | D1 limits page, Time Travel docs |
//! | export (8) | wrangler's local dump format; integers beyond 2^53 written as JavaScript prints them (precision lost); `_cf_*` and `sqlite_*` tables skipped; a virtual table makes it fail | D1 import/export docs, #9349 |
//!
//! Faults for tests ([`FaultKind`]): a `success:false` reply, a non-JSON reply, a dropped
//! connection, a late reply, result items without `success: true`, a request that commits
//! and then drops its connection (`commit_drop`), and an import that fails after N
//! statements (`import_fail:<n>`).

mod api;
pub mod faults;
mod http;
pub use d1_rules as rules;
mod sqltext;
pub mod store;
mod workers;

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

pub use api::Logged;
pub use faults::{Fault, FaultKind};

#[derive(Clone, Debug)]
pub struct Options {
    /// 0 picks a free port.
    pub port: u16,
    pub data_dir: PathBuf,
    /// When set, API requests must carry it (`Authorization: Bearer` or `X-Auth-Key`).
    pub token: Option<String>,
    /// The databases of the account: (uuid, name). An id D1 does not know is answered
    /// 404/7404, as D1 answers it, unless `create_on_use` is set.
    pub databases: Vec<(String, String)>,
    pub faults: Vec<Fault>,
    /// Create a database on the first request to an unknown UUID (off by default: D1
    /// never does that, and a wrong `database_id` must show in tests).
    pub create_on_use: bool,
    /// Time limit, retention and restore rate.
    pub rules: store::Rules,
    /// How many polls of an import answer `active` before it completes (D1 answers a few).
    pub import_active_polls: u32,
    /// Fleets of databases made at start: (name prefix, count): `tenant-0001`, ... each
    /// created on first use (`store::uuid_for_name` gives their ids).
    pub fleets: Vec<(String, usize)>,
    /// The API's rate limit: at most this many requests per window; over it, 429 with
    /// `Retry-After` until the window ends (`None`: no limit).
    pub rate_limit: Option<RateLimit>,
}

/// Requests allowed per window (Cloudflare's API: 1,200 per 5 minutes per token).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimit {
    pub requests: u32,
    pub window_ms: u64,
}

impl Options {
    /// Options with the account's databases taken from a `wrangler.jsonc`: every
    /// `database_id` with its `database_name`, at the top level and under each `env`.
    pub fn from_config(path: &std::path::Path) -> Result<Vec<(String, String)>, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let value: serde_json::Value =
            jsonc_parser::parse_to_serde_value(&text, &Default::default())
                .map_err(|e| format!("{}: {e}", path.display()))?;
        let mut out = Vec::new();
        let mut add = |v: &serde_json::Value| {
            for db in v["d1_databases"].as_array().into_iter().flatten() {
                if let Some(id) = db["database_id"].as_str() {
                    let name = db["database_name"].as_str().unwrap_or(id);
                    if !out.iter().any(|(u, _): &(String, String)| u == id) {
                        out.push((id.to_string(), name.to_string()));
                    }
                }
            }
        };
        add(&value);
        for env in value["env"]
            .as_object()
            .into_iter()
            .flat_map(|m| m.values())
        {
            add(env);
        }
        Ok(out)
    }
}

pub struct Emulator {
    shared: Arc<api::Shared>,
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            port: 0,
            data_dir: PathBuf::new(),
            token: None,
            databases: Vec::new(),
            faults: Vec::new(),
            create_on_use: false,
            rules: store::Rules::default(),
            import_active_polls: 2,
            fleets: Vec::new(),
            rate_limit: None,
        }
    }
}

impl Emulator {
    pub fn start(opts: Options) -> io::Result<Emulator> {
        let listener = TcpListener::bind(("127.0.0.1", opts.port))?;
        let addr = listener.local_addr()?;
        let mut store = store::Store::open(&opts.data_dir, &opts.databases, &opts.rules)
            .map_err(|e| io::Error::other(e.0))?;
        for (prefix, count) in &opts.fleets {
            store.add_fleet(prefix, *count);
        }
        let shared = Arc::new(api::Shared {
            create_on_use: opts.create_on_use,
            import_active_polls: opts.import_active_polls,
            imports: Mutex::new(std::collections::BTreeMap::new()),
            workers: Mutex::new(workers::Workers::open(&opts.data_dir)),
            rate_limit: opts.rate_limit,
            window: Mutex::new((store::now_ms(), 0)),
            limited: std::sync::atomic::AtomicU64::new(0),
            store: Mutex::new(store),
            faults: Mutex::new(faults::Faults { list: opts.faults }),
            log: Mutex::new(Vec::new()),
            token: opts.token,
            origin: format!("http://{addr}"),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let shared = shared.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = conn else { continue };
                    let shared = shared.clone();
                    std::thread::spawn(move || serve(&shared, stream));
                }
            })
        };
        Ok(Emulator {
            shared,
            addr,
            stop,
            thread: Some(thread),
        })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The value for `CLOUDFLARE_API_BASE_URL`.
    pub fn base_url(&self) -> String {
        format!("http://{}{}", self.addr, api::BASE_PATH)
    }

    pub fn add_fault(&self, fault: Fault) {
        self.shared.faults.lock().unwrap().list.push(fault);
    }

    pub fn clear_faults(&self) {
        self.shared.faults.lock().unwrap().list.clear();
    }

    /// How many requests were answered 429 (over the rate limit) so far.
    pub fn rate_limited(&self) -> u64 {
        self.shared.limited.load(Ordering::SeqCst)
    }

    /// Adds a fleet of databases (see `Options::fleets`).
    pub fn add_fleet(&self, prefix: &str, count: usize) {
        self.shared.store.lock().unwrap().add_fleet(prefix, count);
    }

    /// Every API request so far (admin calls excluded).
    pub fn requests(&self) -> Vec<Logged> {
        self.shared.log.lock().unwrap().clone()
    }

    pub fn clear_requests(&self) {
        self.shared.log.lock().unwrap().clear();
    }

    /// Adds a database to the account (as `wrangler d1 create` would).
    pub fn create_database(&self, uuid: &str, name: &str) -> Result<(), String> {
        let mut store = self.shared.store.lock().unwrap();
        store
            .get_or_create(uuid, Some(name))
            .map(|_| ())
            .map_err(|e| e.0)
    }

    /// The current Time Travel bookmark of a database (test set-up and checks), as
    /// `GET .../time_travel/bookmark` answers it.
    pub fn bookmark(&self, uuid: &str) -> Result<String, String> {
        let mut store = self.shared.store.lock().unwrap();
        let db = store
            .get(uuid)
            .ok_or_else(|| format!("no database {uuid}"))?;
        Ok(db.current_bookmark().id.clone())
    }

    /// The version serving all of Worker `script`'s traffic now and its main module's
    /// text (test checks), `None` before its first deploy.
    pub fn live_worker(&self, script: &str) -> Option<(String, String)> {
        self.shared.workers.lock().unwrap().live(script)
    }

    /// Runs SQL on a database directly (test set-up and checks), as one committed request.
    pub fn execute(&self, uuid: &str, sql: &str) -> Result<Vec<serde_json::Value>, String> {
        let mut store = self.shared.store.lock().unwrap();
        let db = store
            .get(uuid)
            .ok_or_else(|| format!("no database {uuid}"))?;
        db.execute(sql, true).map(|out| out.items).map_err(|e| e.0)
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(shared: &api::Shared, stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(http::IDLE));
    let Ok(mut out) = stream.try_clone() else {
        return;
    };
    let mut reader = std::io::BufReader::new(stream);
    // One request after another until the client closes, asks to, or idles out.
    while let Ok(Some(req)) = http::read_request(&mut reader) {
        let close = req.wants_close();
        let sent = match api::handle(shared, &req) {
            api::Outcome::Reply(resp) => http::write_response(&mut out, &resp, close),
            api::Outcome::Late(resp, ms) => {
                std::thread::sleep(std::time::Duration::from_millis(ms));
                http::write_response(&mut out, &resp, close)
            }
            api::Outcome::Drop => {
                let _ = out.shutdown(std::net::Shutdown::Both);
                return;
            }
        };
        if sent.is_err() || close {
            return;
        }
    }
}
