//! A local emulator of the Cloudflare D1 HTTP API that `wrangler d1 ... --remote` calls,
//! so that staging and production paths are tested with the real wrangler and no network.
//! Point wrangler at it with `CLOUDFLARE_API_BASE_URL=<Emulator::base_url()>` and set
//! `CLOUDFLARE_API_TOKEN` / `CLOUDFLARE_ACCOUNT_ID`.

mod api;
pub mod faults;
mod http;
pub use d1_rules as rules;
mod sqltext;
pub mod store;

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
        }
    }
}

impl Emulator {
    pub fn start(opts: Options) -> io::Result<Emulator> {
        let listener = TcpListener::bind(("127.0.0.1", opts.port))?;
        let addr = listener.local_addr()?;
        let store = store::Store::open(&opts.data_dir, &opts.databases, &opts.rules)
            .map_err(|e| io::Error::other(e.0))?;
        let shared = Arc::new(api::Shared {
            create_on_use: opts.create_on_use,
            import_active_polls: opts.import_active_polls,
            imports: Mutex::new(std::collections::BTreeMap::new()),
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

fn serve(shared: &api::Shared, mut stream: TcpStream) {
    let Ok(req) = http::read_request(&mut stream) else {
        return;
    };
    match api::handle(shared, &req) {
        api::Outcome::Reply(resp) => {
            let _ = http::write_response(&mut stream, &resp);
        }
        api::Outcome::Late(resp, ms) => {
            std::thread::sleep(std::time::Duration::from_millis(ms));
            let _ = http::write_response(&mut stream, &resp);
        }
        api::Outcome::Drop => {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }
}
