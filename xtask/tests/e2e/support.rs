//! End-to-end test support: temporary workspaces, the real xtask binary, the real wrangler.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

pub fn xtask_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_xtask"))
}

pub fn node_bin_dir() -> PathBuf {
    repo_root().join("node_modules").join(".bin")
}

/// The repository's wrangler, installed once per test run by the xtask's own `setup`
/// (which runs `npm ci` from package-lock.json when it is missing).
pub fn wrangler_bin() -> PathBuf {
    static READY: OnceLock<PathBuf> = OnceLock::new();
    READY
        .get_or_init(|| {
            let bin = node_bin_dir().join("wrangler");
            // A lock directory keeps parallel test processes from running npm ci twice.
            let lock = repo_root().join("target").join("e2e-setup.lock");
            std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
            let mut waited = 0;
            while std::fs::create_dir(&lock).is_err() {
                std::thread::sleep(std::time::Duration::from_millis(500));
                waited += 1;
                if waited > 600 {
                    let _ = std::fs::remove_dir(&lock);
                }
            }
            let result = if bin.is_file() {
                Ok(())
            } else {
                let out = Command::new(xtask_bin())
                    .arg("setup")
                    .current_dir(repo_root())
                    .env_remove("WRANGLER")
                    .output()
                    .unwrap();
                if out.status.success() {
                    Ok(())
                } else {
                    Err(String::from_utf8_lossy(&out.stderr).into_owned())
                }
            };
            let _ = std::fs::remove_dir(&lock);
            if let Err(e) = result {
                panic!("cargo xtask setup failed: {e}");
            }
            // `E2E_COUNT_WRANGLER=<log>`: every wrangler process of the suite (the xtask's
            // and the tests' own) logs its folder, command, `--local`/`--remote`, and its
            // wall, user and system seconds (GNU time) there, for finding where the suite's
            // time goes. Off by default.
            match std::env::var_os("E2E_COUNT_WRANGLER") {
                Some(log) => {
                    // Beside the real one, so that the xtask puts the same Node first on
                    // the PATH of what it runs.
                    let wrapper = node_bin_dir().join("counting-wrangler");
                    std::fs::write(
                        &wrapper,
                        format!(
                            "#!/bin/sh\nwhere=-\nfor a in \"$@\"; do case \"$a\" in --local) where=local;; --remote) where=remote;; esac; done\nPATH='{1}':\"$PATH\" exec /usr/bin/time -a -o '{0}' -f \"$PWD|$1 $2 $3|$where|%e %U %S\" '{2}' \"$@\"\n",
                            Path::new(&log).display(),
                            node_bin_dir().display(),
                            bin.display()
                        ),
                    )
                    .unwrap();
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755))
                        .unwrap();
                    wrapper
                }
                None => bin,
            }
        })
        .clone()
}

/// The real wrangler in `dir`, on the project's Node, never prompting, with `env` set
/// (an API base URL only when `env` names one: the caller's own is not passed on).
pub fn run_wrangler(dir: &Path, args: &[&str], env: &[(&str, String)]) -> Run {
    let path = format!(
        "{}:{}",
        node_bin_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new(wrangler_bin());
    cmd.args(args)
        .current_dir(dir)
        .env("PATH", path)
        .env("WRANGLER_SEND_METRICS", "false")
        .env("WRANGLER_HIDE_BANNER", "true")
        .env("CI", "true")
        .env("NO_COLOR", "1")
        // The cache the xtask gives its own wrangler processes (Node's compile cache).
        .env(
            "NODE_COMPILE_CACHE",
            std::env::temp_dir().join("d1-xtask-node-compile-cache"),
        )
        .env_remove("CLOUDFLARE_API_BASE_URL")
        .stdin(std::process::Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    Run::from(cmd.output().unwrap())
}

/// The local D1 files wrangler wrote in the workspace at `dir`, in name order.
pub fn local_d1_files(dir: &Path) -> Vec<PathBuf> {
    let folder = dir.join(".wrangler/state/v3/d1/miniflare-D1DatabaseObject");
    let mut files: Vec<PathBuf> = std::fs::read_dir(folder)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "sqlite")
                && p.file_name().is_some_and(|n| n != "metadata.sqlite")
        })
        .collect();
    files.sort();
    files
}

/// Runs `sql` on the SQLite file `file` with D1's foreign keys on, and returns the rows of
/// its last statement as wrangler's `--json` shows them.
pub fn sqlite_rows(file: &Path, sql: &str) -> Vec<serde_json::Value> {
    use rusqlite::fallible_iterator::FallibleIterator;
    use rusqlite::types::ValueRef;
    let conn = rusqlite::Connection::open(file).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(30))
        .unwrap();
    conn.execute_batch("PRAGMA foreign_keys = ON").unwrap();
    let mut batch = rusqlite::Batch::new(&conn, sql);
    let mut last = Vec::new();
    while let Some(mut stmt) = batch.next().unwrap_or_else(|e| panic!("{sql}: {e}")) {
        let names: Vec<String> = stmt.column_names().iter().map(|s| s.to_string()).collect();
        let mut rows = stmt.query([]).unwrap_or_else(|e| panic!("{sql}: {e}"));
        last.clear();
        while let Some(row) = rows.next().unwrap_or_else(|e| panic!("{sql}: {e}")) {
            let mut obj = serde_json::Map::new();
            for (i, name) in names.iter().enumerate() {
                let value = match row.get_ref(i).unwrap() {
                    ValueRef::Null => serde_json::Value::Null,
                    ValueRef::Integer(n) => n.into(),
                    ValueRef::Real(f) => f.into(),
                    ValueRef::Text(s) => String::from_utf8_lossy(s).into_owned().into(),
                    ValueRef::Blob(b) => b.iter().map(|x| serde_json::json!(x)).collect(),
                };
                obj.insert(name.clone(), value);
            }
            last.push(serde_json::Value::Object(obj));
        }
    }
    last
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
    /// The rows of the last statement of a `wrangler d1 execute --json` that succeeded.
    pub fn last_results(&self) -> Vec<serde_json::Value> {
        assert_eq!(
            self.code, 0,
            "wrangler query failed: {}\n{}",
            self.stdout, self.stderr
        );
        let v: serde_json::Value = serde_json::from_str(&self.stdout).unwrap();
        v.as_array().unwrap().last().unwrap()["results"]
            .as_array()
            .unwrap()
            .clone()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
    /// Asserts the exit status and that stderr holds every one of `words`.
    #[track_caller]
    pub fn expect(&self, code: i32, words: &[&str]) -> &Run {
        assert_eq!(
            self.code, code,
            "exit status\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        for w in words {
            assert!(
                self.stderr.contains(w) || self.stdout.contains(w),
                "output lacks `{w}`\nstdout:\n{}\nstderr:\n{}",
                self.stdout,
                self.stderr
            );
        }
        self
    }
}

pub const CONFIG: &str = r#"{
  // a small workspace for the end-to-end tests
  "name": "e2e",
  "d1_databases": [
    { "binding": "DB", "database_name": "e2e-local", "database_id": "00000000-0000-0000-0000-000000000001" },
  ],
  "env": {
    "staging": { "d1_databases": [ { "binding": "DB", "database_name": "e2e-staging", "database_id": "00000000-0000-0000-0000-000000000002" } ] },
    "production": { "d1_databases": [ { "binding": "DB", "database_name": "e2e-prod", "database_id": "00000000-0000-0000-0000-000000000003" } ] },
  },
}
"#;

pub struct Workspace {
    pub dir: PathBuf,
}

impl Workspace {
    /// A fresh folder under target/e2e holding `wrangler.jsonc` and `migrations/`.
    pub fn new(tag: &str) -> Workspace {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = repo_root()
            .join("target")
            .join("e2e")
            .join(format!("{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("migrations")).unwrap();
        std::fs::write(dir.join("wrangler.jsonc"), CONFIG).unwrap();
        Workspace { dir }
    }

    pub fn write(&self, rel: &str, text: impl AsRef<[u8]>) -> &Workspace {
        let path = self.dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
        self
    }

    pub fn migration(&self, name: &str, sql: &str) -> &Workspace {
        self.write(&format!("migrations/{name}"), sql)
    }

    /// Runs the real xtask binary here, with the repository's wrangler.
    pub fn xtask(&self, args: &[&str]) -> Run {
        let wrangler = wrangler_bin();
        self.xtask_with(args, &[("WRANGLER", wrangler.to_str().unwrap())])
    }

    pub fn xtask_with(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = Command::new(xtask_bin());
        cmd.args(args)
            .current_dir(&self.dir)
            .env("WRANGLER_SEND_METRICS", "false")
            .env("CI", "true")
            .env_remove("WRANGLER");
        for (k, v) in env {
            cmd.env(k, v);
        }
        Run::from(cmd.output().unwrap())
    }

    /// Runs the real wrangler here (not through the xtask), on Node from node_modules.
    pub fn wrangler(&self, args: &[&str]) -> Run {
        run_wrangler(&self.dir, args, &[])
    }

    /// `SELECT ...` on the local database through `wrangler d1 execute --local --json`.
    /// SQL on the local database (a check, or set-up rows), the last statement's rows as
    /// `wrangler d1 execute --json` gives them: straight on the file wrangler wrote,
    /// through SQLite (no Node process: a wrangler process costs seconds here, and the
    /// suite has a time budget); through wrangler while there is no file yet (wrangler
    /// creates it) or when the workspace has several local databases.
    pub fn query(&self, sql: &str) -> Vec<serde_json::Value> {
        match self.only_local_file() {
            Some(file) => sqlite_rows(&file, sql),
            None => self.wrangler_query(sql),
        }
    }

    /// `query` through `wrangler d1 execute --local --json`, for a check that must see
    /// what wrangler itself reads.
    pub fn wrangler_query(&self, sql: &str) -> Vec<serde_json::Value> {
        let run = self.wrangler(&["d1", "execute", "DB", "--local", "--json", "--command", sql]);
        run.last_results()
    }

    /// The local D1 file when the workspace has exactly one.
    fn only_local_file(&self) -> Option<PathBuf> {
        match &local_d1_files(&self.dir)[..] {
            [one] => Some(one.clone()),
            _ => None,
        }
    }

    /// Names in wrangler's tracking table, read back with `query` (empty if it does not
    /// exist).
    pub fn applied_names(&self) -> Vec<String> {
        let exists = self.query("SELECT name FROM sqlite_master WHERE name = 'd1_migrations'");
        if exists.is_empty() {
            return Vec::new();
        }
        self.query("SELECT name FROM d1_migrations ORDER BY id")
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_string())
            .collect()
    }

    /// User tables, read back with `query`.
    pub fn tables(&self) -> Vec<String> {
        self.query(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
             AND substr(name, 1, 4) <> '_cf_' AND name NOT LIKE 'd1_migrations%' ORDER BY name",
        )
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect()
    }

    /// The local D1 file wrangler wrote (the workspace's one local database), to check
    /// through SQLite itself.
    pub fn local_file(&self) -> PathBuf {
        local_d1_files(&self.dir)
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("no local D1 file in {}", self.dir.display()))
    }

    /// What raw `wrangler d1 migrations list --local` says is pending.
    pub fn wrangler_pending(&self) -> Vec<String> {
        let run = self.wrangler(&["d1", "migrations", "list", "DB", "--local"]);
        assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
        if run.stdout.contains("No migrations to apply") {
            return Vec::new();
        }
        run.stdout
            .lines()
            .filter_map(|l| l.split('│').nth(1))
            .map(|s| s.trim().to_string())
            .filter(|s| s.ends_with(".sql"))
            .collect()
    }
}

impl Drop for Workspace {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The account id every remote test uses.
pub const ACCOUNT: &str = "0123456789abcdef0123456789abcdef";
/// The API token the emulator demands; tests search every output and file for it.
pub const TOKEN: &str = "tok-e2e-5f1d9a7c3b2e4d6f8a0c";

/// The databases of `CONFIG`'s remote environments.
pub fn remote_id(env: &str) -> &'static str {
    match env {
        "staging" => "00000000-0000-0000-0000-000000000002",
        "production" => "00000000-0000-0000-0000-000000000003",
        other => panic!("no remote env {other}"),
    }
}

/// Where a remote test's databases live: the emulator (the default), or, with
/// `D1_XTASK_LIVE=1`, throwaway databases in a real account (see `Live`).
pub enum Remote {
    Emulator(d1_emulator::Emulator),
    Live(Live),
}

impl Remote {
    /// The variables that point wrangler (and the xtask's wrangler) at these databases.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        match self {
            Remote::Emulator(emu) => vec![
                ("CLOUDFLARE_API_BASE_URL", emu.base_url()),
                ("CLOUDFLARE_API_TOKEN", TOKEN.to_string()),
                ("CLOUDFLARE_ACCOUNT_ID", ACCOUNT.to_string()),
            ],
            Remote::Live(live) => live.account.env(),
        }
    }

    /// The emulator itself, for what only it can do (faults, its request log).
    #[track_caller]
    pub fn emu(&self) -> &d1_emulator::Emulator {
        match self {
            Remote::Emulator(emu) => emu,
            Remote::Live(_) => panic!("this test needs the emulator (faults or its request log)"),
        }
    }

    pub fn is_live(&self) -> bool {
        matches!(self, Remote::Live(_))
    }

    /// The database id of a remote environment of the workspace.
    pub fn id(&self, env: &str) -> String {
        match self {
            Remote::Emulator(_) => remote_id(env).to_string(),
            Remote::Live(live) => live
                .dbs
                .iter()
                .find(|d| d.env == env)
                .map(|d| d.uuid.clone())
                .unwrap_or_else(|| panic!("no live database for {env}")),
        }
    }

    /// Runs SQL on an environment's database as one request (test set-up and checks):
    /// straight into the emulator, or through `wrangler d1 execute --remote` when live.
    /// Returns the per-statement results.
    pub fn execute(
        &self,
        ws: &Workspace,
        env: &str,
        sql: &str,
    ) -> Result<Vec<serde_json::Value>, String> {
        match self {
            Remote::Emulator(emu) => emu.execute(&self.id(env), sql),
            Remote::Live(_) => {
                let mut args = vec!["d1", "execute", "DB", "--env", env, "--remote", "--json"];
                let file = ws.dir.join(".live-execute.sql");
                let file_s = file.display().to_string();
                // `--command=<sql>`: SQL that starts with a `--` comment would otherwise be
                // read by wrangler's argument parser as a flag.
                let command = format!("--command={sql}");
                if sql.len() < 90_000 {
                    args.push(&command);
                } else {
                    std::fs::write(&file, sql).unwrap();
                    args.extend(["--file", &file_s, "--yes"]);
                }
                let run = ws.wrangler_remote(self, &args);
                let _ = std::fs::remove_file(&file);
                if run.code != 0 {
                    return Err(format!("{}\n{}", run.stdout, run.stderr));
                }
                let start = run.stdout.find(['[', '{']).unwrap_or(0);
                match serde_json::from_str::<serde_json::Value>(run.stdout[start..].trim()) {
                    Ok(serde_json::Value::Array(items)) => Ok(items),
                    Ok(other) => Ok(vec![other]),
                    Err(e) => Err(format!("wrangler printed no JSON ({e}): {}", run.stdout)),
                }
            }
        }
    }
}

/// The prefix of every throwaway database live mode creates; a sweep deletes leftovers
/// older than three hours (a run killed before it could clean up).
pub const LIVE_PREFIX: &str = "d1-xtask-live-";

/// An account the live tests may create databases in: Cloudflare's API, or any URL that
/// speaks it (`CLOUDFLARE_API_BASE_URL`: how the switch is tested against the emulator).
#[derive(Clone)]
pub struct LiveAccount {
    pub base_url: Option<String>,
    pub token: String,
    pub account: String,
}

impl LiveAccount {
    /// `D1_XTASK_LIVE=1` with `CLOUDFLARE_API_TOKEN` and `CLOUDFLARE_ACCOUNT_ID`; anything
    /// less is no live mode (and a half-set one says what is missing).
    pub fn from_env() -> Option<LiveAccount> {
        if std::env::var("D1_XTASK_LIVE").ok().as_deref() != Some("1") {
            return None;
        }
        let get = |k: &str| {
            std::env::var(k)
                .ok()
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| panic!("D1_XTASK_LIVE=1 needs {k}"))
        };
        Some(LiveAccount {
            base_url: std::env::var("CLOUDFLARE_API_BASE_URL")
                .ok()
                .filter(|v| !v.is_empty()),
            token: get("CLOUDFLARE_API_TOKEN"),
            account: get("CLOUDFLARE_ACCOUNT_ID"),
        })
    }

    pub fn env(&self) -> Vec<(&'static str, String)> {
        let mut v = vec![
            ("CLOUDFLARE_API_TOKEN", self.token.clone()),
            ("CLOUDFLARE_ACCOUNT_ID", self.account.clone()),
        ];
        if let Some(url) = &self.base_url {
            v.push(("CLOUDFLARE_API_BASE_URL", url.clone()));
        }
        v
    }

    /// Raw wrangler with this account, in `dir` (a folder with no wrangler config, so
    /// that `d1 create` and `d1 delete` touch no workspace's).
    pub fn wrangler(&self, dir: &Path, args: &[&str]) -> Run {
        std::fs::create_dir_all(dir).unwrap();
        run_wrangler(dir, args, &self.env())
    }

    fn admin_dir() -> PathBuf {
        repo_root().join("target").join("e2e").join("live-admin")
    }

    /// Every database of the account: (name, uuid).
    pub fn list(&self) -> Vec<(String, String)> {
        let run = self.wrangler(&Self::admin_dir(), &["d1", "list", "--json"]);
        assert_eq!(
            run.code, 0,
            "wrangler d1 list: {}\n{}",
            run.stdout, run.stderr
        );
        let start = run.stdout.find('[').unwrap_or(0);
        let all: serde_json::Value = serde_json::from_str(run.stdout[start..].trim())
            .unwrap_or_else(|e| panic!("wrangler d1 list --json: {e}: {}", run.stdout));
        all.as_array()
            .into_iter()
            .flatten()
            .map(|d| {
                (
                    d["name"].as_str().unwrap_or_default().to_string(),
                    d["uuid"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    /// Deletes a database by name; true if wrangler said it did.
    pub fn delete(&self, name: &str) -> bool {
        self.wrangler(&Self::admin_dir(), &["d1", "delete", name, "-y"])
            .code
            == 0
    }

    /// Deletes this prefix's databases whose names say they are older than `hours`.
    pub fn sweep(&self, hours: u64) -> usize {
        let now = unix_now();
        let mut n = 0;
        for (name, _) in self.list() {
            let stamp = name
                .strip_prefix(LIVE_PREFIX)
                .and_then(|rest| rest.split('-').next())
                .and_then(|t| t.parse::<u64>().ok());
            if stamp.is_some_and(|t| now.saturating_sub(t) > hours * 3600) && self.delete(&name) {
                n += 1;
            }
        }
        n
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// One live database of a workspace's environment.
pub struct LiveDb {
    pub env: String,
    pub name: String,
    pub uuid: String,
}

/// Throwaway databases made for one workspace (one per remote environment its config
/// names), deleted when this is dropped: when the test passes, and when it panics.
pub struct Live {
    pub account: LiveAccount,
    pub dbs: Vec<LiveDb>,
}

impl Live {
    /// Creates `<prefix><unix time>-<pid>-<n>-<env>` for each remote environment of `ws`
    /// and points the workspace's `wrangler.jsonc` at them.
    pub fn create(ws: &Workspace, account: LiveAccount) -> Live {
        static SWEPT: std::sync::Once = std::sync::Once::new();
        SWEPT.call_once(|| {
            account.sweep(3);
        });
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let config_path = ws.dir.join("wrangler.jsonc");
        let mut config = std::fs::read_to_string(&config_path).unwrap();
        let mut live = Live {
            account,
            dbs: Vec::new(),
        };
        for env in ["staging", "production"] {
            if !config.contains(remote_id(env)) {
                continue;
            }
            let name = format!(
                "{LIVE_PREFIX}{}-{}-{}-{env}",
                unix_now(),
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            );
            let run = live
                .account
                .wrangler(&LiveAccount::admin_dir(), &["d1", "create", &name]);
            assert_eq!(
                run.code, 0,
                "wrangler d1 create {name}: {}\n{}",
                run.stdout, run.stderr
            );
            // Recorded before anything else can fail, so that drop deletes it.
            live.dbs.push(LiveDb {
                env: env.to_string(),
                name: name.clone(),
                uuid: String::new(),
            });
            let uuid = live
                .account
                .list()
                .into_iter()
                .find(|(n, _)| *n == name)
                .map(|(_, u)| u)
                .unwrap_or_else(|| panic!("{name} was created but is not listed"));
            config = config.replace(remote_id(env), &uuid);
            live.dbs.last_mut().unwrap().uuid = uuid;
        }
        std::fs::write(&config_path, config).unwrap();
        live
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        for db in &self.dbs {
            if !self.account.delete(&db.name) {
                eprintln!(
                    "live mode: could not delete {} ({}); the next live run's sweep removes it after three hours",
                    db.name, db.uuid
                );
            }
        }
    }
}

impl Workspace {
    /// The remote side of a test: the emulator, or throwaway live databases when
    /// `D1_XTASK_LIVE=1` (and then this workspace's config points at them).
    pub fn remote(&self) -> Remote {
        match LiveAccount::from_env() {
            Some(account) => Remote::Live(Live::create(self, account)),
            None => self.emulator(),
        }
    }

    /// A D1 API emulator for this workspace, demanding `TOKEN`, whose account holds the
    /// databases of this workspace's `wrangler.jsonc` (as `--from-config` reads them).
    /// For tests that need what only the emulator does; they run on it in live mode too.
    pub fn emulator(&self) -> Remote {
        self.emulator_with(|_| {})
    }

    /// The same, with options changed by `f` (time limit, retention, import polls ...).
    pub fn emulator_with(&self, f: impl FnOnce(&mut d1_emulator::Options)) -> Remote {
        let mut opts = d1_emulator::Options {
            data_dir: self.dir.join("emulator-data"),
            token: Some(TOKEN.to_string()),
            databases: d1_emulator::Options::from_config(&self.dir.join("wrangler.jsonc")).unwrap(),
            ..d1_emulator::Options::default()
        };
        f(&mut opts);
        Remote::Emulator(d1_emulator::Emulator::start(opts).unwrap())
    }

    /// A workspace holding the sample project's migrations and test data (seven tables).
    pub fn sample(tag: &str) -> Workspace {
        let ws = Workspace::new(tag);
        for dir in ["migrations", "test-data"] {
            for entry in std::fs::read_dir(repo_root().join(dir)).unwrap() {
                let path = entry.unwrap().path();
                let name = path.file_name().unwrap().to_str().unwrap().to_string();
                ws.write(&format!("{dir}/{name}"), std::fs::read(&path).unwrap());
            }
        }
        ws
    }

    /// The xtask with wrangler pointed at the remote side.
    pub fn xtask_remote(&self, emu: &Remote, args: &[&str], extra: &[(&str, &str)]) -> Run {
        let wrangler = wrangler_bin();
        let env = emu.env();
        let mut all: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        all.push(("WRANGLER", wrangler.to_str().unwrap()));
        all.extend_from_slice(extra);
        self.xtask_with(args, &all)
    }

    /// Raw wrangler against the remote side.
    pub fn wrangler_remote(&self, emu: &Remote, args: &[&str]) -> Run {
        run_wrangler(&self.dir, args, &emu.env())
    }

    /// SQL on a remote database, the last statement's rows: straight into the emulator's
    /// database (SQLite, no Node process), or through `wrangler d1 execute --remote --json`
    /// in live mode.
    pub fn remote_query(&self, emu: &Remote, env: &str, sql: &str) -> Vec<serde_json::Value> {
        if let Remote::Emulator(e) = emu {
            let items = e
                .execute(&emu.id(env), sql)
                .unwrap_or_else(|err| panic!("{sql}: {err}"));
            return items
                .last()
                .and_then(|i| i["results"].as_array().cloned())
                .unwrap_or_default();
        }
        self.wrangler_remote_query(emu, env, sql)
    }

    /// `remote_query` through `wrangler d1 execute --remote --json`, for a check that must
    /// see what wrangler itself reads.
    pub fn wrangler_remote_query(
        &self,
        emu: &Remote,
        env: &str,
        sql: &str,
    ) -> Vec<serde_json::Value> {
        let run = self.wrangler_remote(
            emu,
            &[
                "d1",
                "execute",
                "DB",
                "--env",
                env,
                "--remote",
                "--json",
                "--command",
                sql,
            ],
        );
        run.last_results()
    }

    /// The current Time Travel bookmark of a remote database: the emulator's own, or through
    /// raw wrangler in live mode.
    pub fn remote_bookmark(&self, emu: &Remote, env: &str) -> String {
        if let Remote::Emulator(e) = emu {
            return e.bookmark(&emu.id(env)).unwrap();
        }
        let run = self.wrangler_remote(
            emu,
            &["d1", "time-travel", "info", "DB", "--env", env, "--json"],
        );
        assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
        run.json()["bookmark"].as_str().unwrap().to_string()
    }

    /// User tables and tracking rows of a remote database, through wrangler, in one call.
    pub fn remote_tables_and_applied(&self, emu: &Remote, env: &str) -> (Vec<String>, Vec<String>) {
        let tables = "SELECT 'table' AS k, name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
             AND substr(name, 1, 4) <> '_cf_' AND name NOT LIKE 'd1_migrations%'";
        let mut rows = self.remote_query(emu, env, &format!("{tables} ORDER BY 1, 2"));
        if self
            .remote_query(
                emu,
                env,
                "SELECT name FROM sqlite_master WHERE name = 'd1_migrations'",
            )
            .len()
            == 1
        {
            rows.extend(self.remote_query(
                emu,
                env,
                "SELECT 'applied' AS k, name FROM d1_migrations ORDER BY id",
            ));
        }
        let pick = |k: &str| {
            rows.iter()
                .filter(|r| r["k"] == k)
                .map(|r| r["name"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        };
        (pick("table"), pick("applied"))
    }

    /// What raw `wrangler d1 migrations list --env <env> --remote` says is pending.
    pub fn remote_pending(&self, emu: &Remote, env: &str) -> Vec<String> {
        let run = self.wrangler_remote(
            emu,
            &["d1", "migrations", "list", "DB", "--env", env, "--remote"],
        );
        assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
        if run.stdout.contains("No migrations to apply") {
            return Vec::new();
        }
        run.stdout
            .lines()
            .filter_map(|l| l.split('│').nth(1))
            .map(|s| s.trim().to_string())
            .filter(|s| s.ends_with(".sql"))
            .collect()
    }
}
