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
            bin
        })
        .clone()
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
        let wrangler = wrangler_bin();
        let path = format!(
            "{}:{}",
            node_bin_dir().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let out = Command::new(wrangler)
            .args(args)
            .current_dir(&self.dir)
            .env("PATH", path)
            .env("WRANGLER_SEND_METRICS", "false")
            .env("WRANGLER_HIDE_BANNER", "true")
            .env("CI", "true")
            .env("NO_COLOR", "1")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        Run::from(out)
    }

    /// `SELECT ...` on the local database through `wrangler d1 execute --local --json`.
    pub fn query(&self, sql: &str) -> Vec<serde_json::Value> {
        let run = self.wrangler(&["d1", "execute", "DB", "--local", "--json", "--command", sql]);
        run.last_results()
    }

    /// Names in wrangler's tracking table, read through wrangler (empty if it does not exist).
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

    /// User tables as wrangler sees them.
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
        let dir = self
            .dir
            .join(".wrangler/state/v3/d1/miniflare-D1DatabaseObject");
        std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.extension().is_some_and(|e| e == "sqlite")
                    && p.file_name().is_some_and(|n| n != "metadata.sqlite")
            })
            .unwrap_or_else(|| panic!("no local D1 file in {}", dir.display()))
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

impl Workspace {
    /// A D1 API emulator for this workspace, demanding `TOKEN`, whose account holds the
    /// databases of this workspace's `wrangler.jsonc` (as `--from-config` reads them).
    pub fn emulator(&self) -> d1_emulator::Emulator {
        self.emulator_with(|_| {})
    }

    /// The same, with options changed by `f` (time limit, retention, import polls ...).
    pub fn emulator_with(
        &self,
        f: impl FnOnce(&mut d1_emulator::Options),
    ) -> d1_emulator::Emulator {
        let mut opts = d1_emulator::Options {
            data_dir: self.dir.join("emulator-data"),
            token: Some(TOKEN.to_string()),
            databases: d1_emulator::Options::from_config(&self.dir.join("wrangler.jsonc")).unwrap(),
            ..d1_emulator::Options::default()
        };
        f(&mut opts);
        d1_emulator::Emulator::start(opts).unwrap()
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

    fn remote_env(emu: &d1_emulator::Emulator) -> Vec<(&'static str, String)> {
        vec![
            ("CLOUDFLARE_API_BASE_URL", emu.base_url()),
            ("CLOUDFLARE_API_TOKEN", TOKEN.to_string()),
            ("CLOUDFLARE_ACCOUNT_ID", ACCOUNT.to_string()),
        ]
    }

    /// The xtask with wrangler pointed at the emulator.
    pub fn xtask_remote(
        &self,
        emu: &d1_emulator::Emulator,
        args: &[&str],
        extra: &[(&str, &str)],
    ) -> Run {
        let wrangler = wrangler_bin();
        let env = Self::remote_env(emu);
        let mut all: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        all.push(("WRANGLER", wrangler.to_str().unwrap()));
        all.extend_from_slice(extra);
        self.xtask_with(args, &all)
    }

    /// Raw wrangler against the emulator.
    pub fn wrangler_remote(&self, emu: &d1_emulator::Emulator, args: &[&str]) -> Run {
        let wrangler = wrangler_bin();
        let path = format!(
            "{}:{}",
            node_bin_dir().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut cmd = Command::new(wrangler);
        cmd.args(args)
            .current_dir(&self.dir)
            .env("PATH", path)
            .env("WRANGLER_SEND_METRICS", "false")
            .env("WRANGLER_HIDE_BANNER", "true")
            .env("CI", "true")
            .env("NO_COLOR", "1")
            .stdin(std::process::Stdio::null());
        for (k, v) in Self::remote_env(emu) {
            cmd.env(k, v);
        }
        Run::from(cmd.output().unwrap())
    }

    /// `SELECT ...` on a remote database through `wrangler d1 execute --remote --json`.
    pub fn remote_query(
        &self,
        emu: &d1_emulator::Emulator,
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

    /// The current Time Travel bookmark of a remote database, through raw wrangler.
    pub fn remote_bookmark(&self, emu: &d1_emulator::Emulator, env: &str) -> String {
        let run = self.wrangler_remote(
            emu,
            &["d1", "time-travel", "info", "DB", "--env", env, "--json"],
        );
        assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
        run.json()["bookmark"].as_str().unwrap().to_string()
    }

    /// User tables and tracking rows of a remote database, through wrangler, in one call.
    pub fn remote_tables_and_applied(
        &self,
        emu: &d1_emulator::Emulator,
        env: &str,
    ) -> (Vec<String>, Vec<String>) {
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
    pub fn remote_pending(&self, emu: &d1_emulator::Emulator, env: &str) -> Vec<String> {
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
