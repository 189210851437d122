//! The reliability suite: faults on every remote step, runs killed mid-way, bad input,
//! secrets. Each category counts its cases and checks its row of RELIABILITY.md.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::support::{node_bin_dir, repo_root, wrangler_bin, Remote, Run, Workspace, TOKEN};
use d1_emulator::{Fault, FaultKind};

/// What one category measured.
struct Tally {
    category: &'static str,
    tried: usize,
    failures: Vec<String>,
    lost: i64,
}

impl Tally {
    fn new(category: &'static str) -> Tally {
        Tally {
            category,
            tried: 0,
            failures: Vec::new(),
            lost: 0,
        }
    }

    /// Records one case: `problems` empty means it passed.
    fn case(&mut self, name: &str, problems: Vec<String>) {
        self.tried += 1;
        if !problems.is_empty() {
            self.failures
                .push(format!("{name}:\n  {}", problems.join("\n  ")));
        }
    }

    /// Checks (or with UPDATE_RELIABILITY=1 rewrites) this category's row, then fails on
    /// any failed case.
    fn finish(self) {
        let passed = self.tried - self.failures.len();
        let row = format!(
            "| {} | {} | {} | {} |",
            self.category, self.tried, passed, self.lost
        );
        let path = repo_root().join("RELIABILITY.md");
        let text = std::fs::read_to_string(&path).unwrap();
        let prefix = format!("| {} |", self.category);
        let current = text
            .lines()
            .find(|l| l.starts_with(&prefix))
            .map(String::from);
        if std::env::var_os("UPDATE_RELIABILITY").is_some() {
            let updated: Vec<String> = text
                .lines()
                .map(|l| {
                    if l.starts_with(&prefix) {
                        row.clone()
                    } else {
                        l.to_string()
                    }
                })
                .collect();
            std::fs::write(&path, updated.join("\n") + "\n").unwrap();
        } else {
            assert_eq!(
                current.as_deref(),
                Some(row.as_str()),
                "RELIABILITY.md's row for `{}` differs from what the suite measured; \
                 rerun with UPDATE_RELIABILITY=1 if the change is intended",
                self.category
            );
        }
        assert!(
            self.failures.is_empty(),
            "{} case(s) failed:\n{}",
            self.failures.len(),
            self.failures.join("\n")
        );
        assert_eq!(self.lost, 0, "data lost");
    }
}

/// The words a run's output lacks.
fn lacks(run: &Run, words: &[&str]) -> Vec<String> {
    let all = format!("{}{}", run.stdout, run.stderr);
    words
        .iter()
        .filter(|w| !all.contains(*w))
        .map(|w| format!("output lacks `{w}`"))
        .collect()
}

fn no_panic(run: &Run) -> Vec<String> {
    let all = format!("{}{}", run.stdout, run.stderr);
    if all.contains("panicked") || run.code == 101 {
        vec![format!("panicked:\n{}", run.stderr)]
    } else {
        Vec::new()
    }
}

// ---------------------------------------------------------------- remote faults

pub const USERS: &str = "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL);\n";
pub const POSTS: &str = "CREATE TABLE posts (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id), title TEXT);\n";

struct Step {
    name: &'static str,
    /// Method and path of the request to break, and which match.
    method: &'static str,
    path: &'static str,
    nth: u32,
    /// What the step runs; `{bookmark}` and `{backup}` come from the set-up.
    args: &'static [&'static str],
    /// Words that name the step and the state.
    words: &'static [&'static str],
}

const MIGRATE_STEPS: &[Step] = &[
    Step {
        name: "bookmark capture",
        method: "GET",
        path: "/time_travel/bookmark",
        nth: 1,
        args: &["db-migrate", "--env", "staging"],
        words: &["capturing a restore point", "nothing was changed"],
    },
    Step {
        name: "state read",
        method: "POST",
        path: "/query",
        nth: 1,
        args: &["db-migrate", "--env", "staging"],
        words: &["reading the tracking table", "nothing was changed"],
    },
    Step {
        name: "apply",
        method: "POST",
        path: "/query",
        nth: 2,
        args: &["db-migrate", "--env", "staging"],
        words: &[
            "migration 0002_posts.sql failed",
            "staging DB (e2e-staging, 00000000-0000-0000-0000-000000000002) now has",
            "to return to the state before this run",
        ],
    },
];

const RESTORE_STEPS: &[Step] = &[
    Step {
        name: "read-back",
        method: "POST",
        path: "/query",
        nth: 2,
        args: &["db-restore", "--env", "staging", "--bookmark", "{bookmark}"],
        words: &[
            "reading the tracking table back failed",
            "to return to the state before this run",
        ],
    },
    Step {
        name: "export",
        method: "POST",
        path: "/export",
        nth: 1,
        args: &["db-backup", "--env", "staging"],
        words: &["exporting staging", "nothing was changed"],
    },
    Step {
        name: "import",
        method: "POST",
        path: "/import",
        nth: 1,
        args: &["db-restore", "--env", "staging", "--backup", "{backup}"],
        words: &[
            "loading",
            "as it was",
            "to return to the state before this run",
        ],
    },
    Step {
        name: "restore",
        method: "POST",
        path: "/time_travel/restore",
        nth: 1,
        args: &["db-restore", "--env", "staging", "--bookmark", "{bookmark}"],
        words: &[
            "restoring staging",
            "to return to the state before this run",
        ],
    },
];

const KINDS: &[(&str, FaultKind)] = &[
    ("success:false", FaultKind::Fail),
    ("non-JSON reply", FaultKind::NonJson),
    ("dropped connection", FaultKind::Drop),
    ("slow reply", FaultKind::Delay(15_000)),
];

/// Copies the files of `from` into `to` (folders included).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn remote_faults(category: &'static str, steps: &[Step]) {
    let mut tally = Tally::new(category);
    // Every case starts from the same state: staging with 0001 applied by the xtask. It is
    // made once (three wrangler processes) and copied into each case's workspace, the
    // emulator's data folder with it; the set-up is not what a case tests.
    let fixture = Workspace::new("fault-fixture");
    fixture.migration("0001_users.sql", USERS);
    {
        let emu = fixture.emulator();
        fixture
            .xtask_remote(&emu, &["db-migrate", "--env", "staging"], &[])
            .expect(0, &[]);
    }
    // The cases are independent (each its own workspace and emulator) and half of their
    // time is waiting (a slow reply lasts until the 10 s timeout): two at a time.
    let cases: Vec<(&Step, &(&str, FaultKind))> = steps
        .iter()
        .flat_map(|step| KINDS.iter().map(move |kind| (step, kind)))
        .collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results = std::sync::Mutex::new(vec![None; cases.len()]);
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(&(step, (kind_name, kind))) = cases.get(i) else {
                    break;
                };
                let outcome = fault_case(&fixture, step, kind_name, kind);
                results.lock().unwrap()[i] = Some(outcome);
            });
        }
    });
    for ((step, (kind_name, _)), outcome) in cases.iter().zip(results.into_inner().unwrap()) {
        let (problems, lost) = outcome.expect("every case ran");
        tally.lost += lost;
        tally.case(&format!("{} / {kind_name}", step.name), problems);
    }
    tally.finish();
}

/// One fault case on a copy of `fixture`: the problems found, and the user rows lost.
fn fault_case(
    fixture: &Workspace,
    step: &Step,
    kind_name: &str,
    kind: &FaultKind,
) -> (Vec<String>, i64) {
    let ws = Workspace::new("fault");
    copy_tree(&fixture.dir, &ws.dir);
    let emu = ws.emulator();
    assert_eq!(
        ws.remote_tables_and_applied(&emu, "staging").1,
        ["0001_users.sql"],
        "the copied set-up"
    );
    ws.remote_query(
        &emu,
        "staging",
        "INSERT INTO users (id, email) VALUES (1, 'a@x.com'), (2, 'b@x.com')",
    );
    let bookmark = ws.remote_bookmark(&emu, "staging");
    let backup = if step.name == "import" {
        // Over 100 kB, so that the restore goes through D1's import API.
        ws.remote_query(
            &emu,
            "staging",
            "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 2000) \
                 INSERT INTO users (id, email) SELECT i + 10, \
                 printf('user-%05d-with-a-long-enough-address@example.invalid', i) FROM c",
        );
        let b = ws.xtask_remote(&emu, &["db-backup", "--env", "staging", "--json"], &[]);
        b.json()["id"].as_str().unwrap().to_string()
    } else {
        String::new()
    };
    ws.migration("0002_posts.sql", POSTS);
    // A short wrangler timeout for the faulted run only (set-up runs on a loaded
    // machine may take longer); a slow reply comes well after it.
    ws.write(
        "xtask.jsonc",
        "{ \"wrangler_timeout_secs\": 10, \"lock_timeout_secs\": 0 }",
    );
    emu.emu().add_fault(
        Fault::new(step.path, kind.clone())
            .method(step.method)
            .nth(step.nth),
    );
    let args: Vec<String> = step
        .args
        .iter()
        .map(|a| {
            a.replace("{bookmark}", &bookmark)
                .replace("{backup}", &backup)
        })
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = ws.xtask_remote(&emu, &args, &[]);
    emu.emu().clear_faults();
    // A slow reply is handled at once and answered late: the database is settled.
    // At the apply that means the request committed and only its reply was lost:
    // the read-back shows every planned migration, and the run succeeds saying so.
    let settled = step.name == "apply" && matches!(kind, FaultKind::Delay(_));
    let mut problems = Vec::new();
    if settled {
        if run.code != 0 {
            problems.push(format!(
                "exit {} although the apply committed (a slow reply):\n{}",
                run.code, run.stderr
            ));
        }
        problems.extend(lacks(
            &run,
            &[
                "only its reply was lost",
                "applied 1 migration: 0002_posts.sql",
            ],
        ));
    } else {
        if run.code == 0 {
            problems.push(format!(
                "exit 0 on a {kind_name} at the {}:\n{}",
                step.name, run.stderr
            ));
        }
        problems.extend(lacks(&run, step.words));
    }
    problems.extend(no_panic(&run));
    // The lock is released; what is recorded as applied exists; no user row lost.
    let lock = ws.remote_query(
        &emu,
        "staging",
        "SELECT count(*) AS n FROM d1_migrations_lock",
    );
    if lock[0]["n"] != 0 {
        problems.push("the lock was not released".into());
    }
    let (tables, applied) = ws.remote_tables_and_applied(&emu, "staging");
    if settled && !applied.contains(&"0002_posts.sql".to_string()) {
        problems.push("the settled apply is not recorded".into());
    }
    for m in &applied {
        let table = if m.starts_with("0001") {
            "users"
        } else {
            "posts"
        };
        if !tables.contains(&table.to_string()) {
            problems.push(format!(
                "{m} is recorded as applied but {table} does not exist"
            ));
        }
    }
    let users = ws.remote_query(&emu, "staging", "SELECT count(*) AS n FROM users")[0]["n"]
        .as_i64()
        .unwrap_or(0);
    (problems, 2 - users.min(2))
}

#[test]
fn faults_on_migrate_steps() {
    remote_faults("remote faults: bookmark, state read, apply", MIGRATE_STEPS);
}

#[test]
fn faults_on_restore_steps() {
    remote_faults(
        "remote faults: read-back, export, import, restore",
        RESTORE_STEPS,
    );
}

// ---------------------------------------------------------------- killed mid-way

/// A WRANGLER that says when it starts (and its pid), waits, then runs the real one.
fn slow_wrangler(ws: &Workspace) -> String {
    let wrapper = ws.dir.join("slow-wrangler");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\necho $$ > '{dir}/wrangler.pid'\nsleep 2\nPATH='{node}':\"$PATH\" exec '{real}' \"$@\"\n",
            dir = ws.dir.display(),
            node = node_bin_dir().display(),
            real = wrangler_bin().display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    wrapper.to_str().unwrap().to_string()
}

fn wait_for(path: &Path) {
    for _ in 0..400 {
        if path.exists() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    panic!("{} never appeared", path.display());
}

/// Runs the xtask in the background with the slow wrangler; kills the xtask or the
/// wrangler once wrangler has started.
fn kill_during(ws: &Workspace, args: &[&str], kill_xtask: bool) {
    let pid_file = ws.dir.join("wrangler.pid");
    let _ = std::fs::remove_file(&pid_file);
    let mut child = Command::new(crate::support::xtask_bin())
        .args(args)
        .current_dir(&ws.dir)
        .env("WRANGLER", slow_wrangler(ws))
        .env("CI", "true")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(&pid_file);
    if kill_xtask {
        child.kill().unwrap();
        let _ = child.wait();
        // The orphaned wrangler goes on: wait until it has finished, whatever it did.
        let pid = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .to_string();
        for _ in 0..1200 {
            if !Path::new(&format!("/proc/{pid}")).exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    } else {
        let pid = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .to_string();
        let _ = Command::new("kill").args(["-9", &pid]).status();
        let _ = child.wait();
    }
}

#[test]
fn killed_mid_way() {
    let mut tally = Tally::new("killed mid-way");
    for (what, kill_xtask) in [("the xtask", true), ("wrangler", false)] {
        // A multi-migration apply.
        let ws = Workspace::new("killed-migrate");
        for i in 1..=20 {
            ws.migration(
                &format!("{i:04}_m{i}.sql"),
                &format!("CREATE TABLE t{i} (x);\nINSERT INTO t{i} VALUES ({i});\n"),
            );
        }
        kill_during(&ws, &["db-migrate", "--no-backup"], kill_xtask);
        let mut problems = Vec::new();
        let rerun = ws.xtask(&["db-migrate", "--lock-timeout", "0"]);
        // Killed, the xtask leaves its lock row, unless the orphaned wrangler's request
        // (which carries the release) still landed: either is fine, a wrong report is not.
        if kill_xtask && rerun.code == 4 {
            problems.extend(lacks(
                &rerun,
                &[
                    "locked by db-migrate",
                    "no longer running",
                    "--force-unlock",
                ],
            ));
            let forced = ws.xtask(&["db-migrate", "--force-unlock"]);
            problems.extend(lacks(&forced, &["broke the stale lock"]));
            if forced.code != 0 {
                problems.push(format!(
                    "rerun with --force-unlock: exit {}\n{}",
                    forced.code, forced.stderr
                ));
            }
        } else if rerun.code != 0 {
            problems.push(format!(
                "rerun after wrangler was killed: exit {}\n{}",
                rerun.code, rerun.stderr
            ));
        }
        let applied = ws.applied_names();
        let mut unique = applied.clone();
        unique.dedup();
        if applied.len() != 20 || unique.len() != 20 {
            problems.push(format!(
                "applied {} migrations ({} distinct), not 20 once each",
                applied.len(),
                unique.len()
            ));
        }
        tally.case(
            &format!("kill {what} during a 20-migration apply"),
            problems,
        );

        // A seed.
        let ws = Workspace::new("killed-seed");
        for f in [
            "0001_initial_schema.sql",
            "0002_profiles_commerce_tokens.sql",
        ] {
            ws.migration(
                f,
                &std::fs::read_to_string(repo_root().join("migrations").join(f)).unwrap(),
            );
        }
        for f in [
            "seed-products.sql",
            "seed-users.sql",
            "cleanup-test-data.sql",
        ] {
            ws.write(
                &format!("test-data/{f}"),
                std::fs::read(repo_root().join("test-data").join(f)).unwrap(),
            );
        }
        ws.xtask(&["db-migrate", "--no-backup"]).expect(0, &[]);
        kill_during(&ws, &["db-seed", "--no-backup"], kill_xtask);
        let mut problems = Vec::new();
        let rerun = ws.xtask(&[
            "db-seed",
            "--no-backup",
            "--force-unlock",
            "--lock-timeout",
            "0",
        ]);
        if rerun.code != 0 {
            problems.push(format!("rerun: exit {}\n{}", rerun.code, rerun.stderr));
        }
        let n = ws.query("SELECT (SELECT count(*) FROM users WHERE id >= 900000) AS u, (SELECT count(*) FROM products WHERE id >= 900000) AS p, (SELECT count(*) FROM d1_migrations_lock) AS l");
        if n[0]["u"] != 3 || n[0]["p"] != 4 || n[0]["l"] != 0 {
            problems.push(format!("after the rerun: {}", n[0]));
        }
        tally.case(&format!("kill {what} during a seed"), problems);
    }
    tally.finish();
}

// ---------------------------------------------------------------- bad input

/// Schema, tracking rows and row counts of the local file, read with SQLite directly.
fn local_fingerprint(ws: &Workspace) -> String {
    let dir = ws
        .dir
        .join(".wrangler/state/v3/d1/miniflare-D1DatabaseObject");
    let file = dir.join("a36f84ea60804f30bb0c7f7cad9f5336a6cca0165abdab8b9241d93dbf0b6006.sqlite");
    if !file.exists() {
        return "no database".into();
    }
    let conn =
        rusqlite::Connection::open_with_flags(&file, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let mut out = String::new();
    let mut stmt = conn
        .prepare("SELECT type, name, sql FROM sqlite_master ORDER BY name")
        .unwrap();
    let rows: Vec<(String, String, Option<String>)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .flatten()
        .collect();
    for (kind, name, sql) in rows {
        out.push_str(&format!("{kind} {name} {sql:?}\n"));
        if kind == "table"
            && !name.starts_with("sqlite_")
            && !name.starts_with("_cf_")
            && name != "d1_migrations_lock"
        {
            let n: i64 = conn
                .query_row(&format!("SELECT count(*) FROM \"{name}\""), [], |r| {
                    r.get(0)
                })
                .unwrap();
            out.push_str(&format!("  rows {n}\n"));
        }
    }
    out
}

/// One bad-input case: files to write, arguments, expected status and words.
struct Bad {
    name: &'static str,
    files: &'static [(&'static str, &'static [u8])],
    args: &'static [&'static str],
    code: i32,
    words: &'static [&'static str],
}

const GOOD_CONFIG: &[u8] = br#"{ "d1_databases": [{ "binding": "DB", "database_name": "e2e-local", "database_id": "00000000-0000-0000-0000-000000000001" }],
  "env": { "staging": { "d1_databases": [{ "binding": "DB", "database_id": "00000000-0000-0000-0000-000000000002" }] } } }"#;

const BAD: &[Bad] = &[
    // wrangler.jsonc and xtask.jsonc
    Bad { name: "malformed JSONC", files: &[("wrangler.jsonc", b"{ \"d1_databases\": [ { \"binding\": \"DB\" \"database_id\": \"x\" } ] }")], args: &["db-migrate"], code: 2, words: &["wrangler.jsonc:1:", "JSONC"] },
    Bad { name: "unclosed object", files: &[("wrangler.jsonc", b"{ \"d1_databases\": [")], args: &["db-status"], code: 2, words: &["wrangler.jsonc:"] },
    Bad { name: "top level not an object", files: &[("wrangler.jsonc", b"[1, 2]")], args: &["db-migrate"], code: 2, words: &["top level must be an object"] },
    Bad { name: "d1_databases of the wrong type", files: &[("wrangler.jsonc", b"{\"d1_databases\": {\"DB\": 1}}")], args: &["db-migrate"], code: 2, words: &["d1_databases must be an array"] },
    Bad { name: "entry of the wrong type", files: &[("wrangler.jsonc", b"{\"d1_databases\": [\"DB\"]}")], args: &["db-migrate"], code: 2, words: &["d1_databases[0] must be an object"] },
    Bad { name: "binding missing", files: &[("wrangler.jsonc", b"{\"d1_databases\": [{\"database_name\": \"x\"}]}")], args: &["db-migrate"], code: 2, words: &["d1_databases[0].binding is missing"] },
    Bad { name: "binding of the wrong type", files: &[("wrangler.jsonc", b"{\"d1_databases\": [{\"binding\": 1}]}")], args: &["db-migrate"], code: 2, words: &["binding must be a string"] },
    Bad { name: "database_id of the wrong type", files: &[("wrangler.jsonc", b"{\"d1_databases\": [{\"binding\": \"DB\", \"database_id\": 7}]}")], args: &["db-migrate"], code: 2, words: &["database_id must be a string"] },
    Bad { name: "unknown env", files: &[], args: &["db-migrate", "--env", "prod"], code: 2, words: &["unknown environment `prod`", "local, staging"] },
    Bad { name: "env without d1_databases", files: &[("wrangler.jsonc", b"{\"d1_databases\": [{\"binding\": \"DB\"}], \"env\": {\"staging\": {\"vars\": {}}}}")], args: &["db-migrate", "--env", "staging"], code: 2, words: &["no d1_databases", "not inherit"] },
    Bad { name: "shared database ids", files: &[("wrangler.jsonc", b"{\"env\": {\"staging\": {\"d1_databases\": [{\"binding\": \"DB\", \"database_id\": \"00000000-0000-0000-0000-00000000000a\"}]}, \"production\": {\"d1_databases\": [{\"binding\": \"DB\", \"database_id\": \"00000000-0000-0000-0000-00000000000a\"}]}}}")], args: &["db-migrate", "--env", "staging"], code: 2, words: &["share database_id"] },
    Bad { name: "placeholder id", files: &[("wrangler.jsonc", b"{\"env\": {\"staging\": {\"d1_databases\": [{\"binding\": \"DB\", \"database_id\": \"staging-uuid\"}]}}}")], args: &["db-status", "--env", "staging"], code: 2, words: &["staging-uuid", "not a UUID"] },
    Bad { name: "TOML config given", files: &[("wrangler.toml", b"name = \"x\"\n")], args: &["db-status", "--config", "wrangler.toml"], code: 2, words: &["TOML", "wrangler.jsonc"] },
    Bad { name: "migrations_pattern outside migrations_dir", files: &[("wrangler.jsonc", b"{\"d1_databases\": [{\"binding\": \"DB\", \"migrations_dir\": \"migrations\", \"migrations_pattern\": \"db/*.sql\"}]}")], args: &["db-migrate"], code: 2, words: &["migrations_pattern", "must start with `migrations/`"] },
    Bad { name: "duplicate binding", files: &[("wrangler.jsonc", b"{\"d1_databases\": [{\"binding\": \"DB\"}, {\"binding\": \"DB\"}]}")], args: &["db-migrate"], code: 2, words: &["used twice"] },
    Bad { name: "several databases, none chosen", files: &[("wrangler.jsonc", b"{\"d1_databases\": [{\"binding\": \"DB\"}, {\"binding\": \"AUDIT\"}]}")], args: &["db-migrate"], code: 2, words: &["--database", "DB, AUDIT"] },
    Bad { name: "config not UTF-8", files: &[("wrangler.jsonc", b"{\"name\": \"caf\xe9\"}")], args: &["db-status"], code: 2, words: &["not UTF-8"] },
    Bad { name: "xtask.jsonc unknown setting", files: &[("xtask.jsonc", b"{\"protect\": [\"production\"]}")], args: &["db-status"], code: 2, words: &["unknown setting `protect`"] },
    Bad { name: "xtask.jsonc wrong type", files: &[("xtask.jsonc", b"{\"lock_timeout_secs\": \"soon\"}")], args: &["db-migrate"], code: 2, words: &["lock_timeout_secs has the wrong type"] },
    // migration files
    Bad { name: "bad file name", files: &[("migrations/0003 add users.sql", b"SELECT 1;")], args: &["db-migrate"], code: 4, words: &["0003 add users.sql", "does not match"] },
    Bad { name: "no number", files: &[("migrations/schema.sql", b"SELECT 1;")], args: &["db-migrate"], code: 4, words: &["schema.sql", "does not match"] },
    Bad { name: "duplicate numbers (valid, warned)", files: &[("migrations/0001_zz_again.sql", b"SELECT 1;")], args: &["db-status", "--check"], code: 3, words: &["0001_zz_again.sql", "has the same number as 0001_users.sql", "1 pending, 0 blocking problems"] },
    Bad { name: "non-UTF-8 file", files: &[("migrations/0003_latin1.sql", b"INSERT INTO users VALUES (9, 'caf\xe9');")], args: &["db-migrate"], code: 4, words: &["0003_latin1.sql:1", "not valid UTF-8"] },
    Bad { name: "UTF-8 BOM", files: &[("migrations/0003_bom.sql", b"\xef\xbb\xbfCREATE TABLE bom (x);")], args: &["db-migrate"], code: 4, words: &["byte order mark"] },
    Bad { name: "statement over the limit", files: &[("migrations/0003_big.sql", b"")], args: &["db-migrate"], code: 4, words: &["0003_big.sql:1", "over 100000 bytes"] },
    Bad { name: "BEGIN TRANSACTION", files: &[("migrations/0003_tx.sql", b"BEGIN TRANSACTION;\nCREATE TABLE tx (x);\nCOMMIT;\n")], args: &["db-migrate"], code: 4, words: &["0003_tx.sql:1", "`BEGIN` statement", "0003_tx.sql:3"] },
    Bad { name: "SAVEPOINT", files: &[("migrations/0003_sp.sql", b"SAVEPOINT a;\nRELEASE a;\n")], args: &["db-migrate"], code: 4, words: &["`SAVEPOINT` statement"] },
    Bad { name: "PRAGMA foreign_keys = OFF (valid, warned)", files: &[("migrations/0003_fk.sql", b"PRAGMA foreign_keys = OFF;\n")], args: &["db-status", "--check"], code: 3, words: &["0003_fk.sql:1", "defer_foreign_keys", "1 pending, 0 blocking problems"] },
    Bad { name: "unclosed string", files: &[("migrations/0003_open.sql", b"INSERT INTO users VALUES (9, 'open);\n")], args: &["db-migrate"], code: 4, words: &["0003_open.sql:1", "never closed"] },
    Bad { name: "trigger without END", files: &[("migrations/0003_trig.sql", b"CREATE TRIGGER t AFTER INSERT ON users BEGIN SELECT 1;\n")], args: &["db-migrate"], code: 4, words: &["never reaches `END;`"] },
    Bad { name: "nested block comment", files: &[("migrations/0003_nested.sql", b"/* outer /* inner */ still comment? */\nCREATE TABLE nested (x);\n")], args: &["db-migrate", "--no-backup"], code: 1, words: &["0003_nested.sql failed", "nothing from this run was applied"] },
    Bad { name: "CRLF line ends (valid)", files: &[("migrations/0003_crlf.sql", b"CREATE TABLE crlf (x);\r\nCREATE INDEX crlf_x ON crlf(x);\r\n")], args: &["db-status", "--check"], code: 3, words: &["1 pending, 0 blocking problems"] },
    Bad { name: "trigger with BEGIN ... END (valid)", files: &[("migrations/0003_trig.sql", b"CREATE TRIGGER users_t AFTER INSERT ON users BEGIN\n  UPDATE users SET email = lower(NEW.email) WHERE id = NEW.id;\nEND;\n")], args: &["db-status", "--check"], code: 3, words: &["1 pending, 0 blocking problems"] },
    Bad { name: "strings and comments holding ; and BEGIN (valid)", files: &[("migrations/0003_odd.sql", b"-- BEGIN; COMMIT;\nINSERT INTO users VALUES (9, 'BEGIN; ROLLBACK;'); /* SAVEPOINT x; */\n")], args: &["db-status", "--check"], code: 3, words: &["1 pending, 0 blocking problems"] },
    // arguments
    Bad { name: "unknown flag", files: &[], args: &["db-migrate", "--force"], code: 2, words: &["unknown flag `--force`"] },
    Bad { name: "unknown command", files: &[], args: &["db-migrat"], code: 2, words: &["unknown command"] },
    Bad { name: "conflicting restore sources", files: &[], args: &["db-restore", "--last", "--bookmark", "x"], code: 2, words: &["exactly one of"] },
    Bad { name: "--to a version that does not exist", files: &[], args: &["db-migrate", "--to", "42"], code: 2, words: &["no migration `42`"] },
    Bad { name: "--to ambiguous", files: &[], args: &["db-migrate", "--to", "0001_nope"], code: 2, words: &["no migration `0001_nope`"] },
    Bad { name: "bad timestamp", files: &[], args: &["db-restore", "--timestamp", "last tuesday"], code: 2, words: &["RFC 3339"] },
    Bad { name: "timestamp in the future", files: &[], args: &["db-restore", "--timestamp", "2999-01-01T00:00:00Z"], code: 2, words: &["in the future"] },
    Bad { name: "timestamp older than retention", files: &[], args: &["db-restore", "--timestamp", "2001-01-01T00:00:00Z"], code: 2, words: &["retention window"] },
    Bad { name: "bad --lock-timeout", files: &[], args: &["db-migrate", "--lock-timeout", "soon"], code: 2, words: &["--lock-timeout soon"] },
    Bad { name: "flag given twice", files: &[], args: &["db-migrate", "--to", "1", "--to", "2"], code: 2, words: &["given twice"] },
    Bad { name: "--verify with --no-backup", files: &[], args: &["db-migrate", "--verify", "true", "--no-backup"], code: 2, words: &["--verify needs the restore point"] },
    Bad { name: "--repair with --to", files: &[], args: &["db-migrate", "--repair", "--to", "1"], code: 2, words: &["--repair only re-records"] },
    Bad { name: "db-new with a path", files: &[], args: &["db-new", "../../etc/passwd"], code: 2, words: &["cannot name a migration"] },
    Bad { name: "db-seed -- without a command", files: &[], args: &["db-seed", "--"], code: 2, words: &["needs a command after `--`"] },
    Bad { name: "--cleanup with --file", files: &[], args: &["db-seed", "--cleanup", "--file", "x.sql"], code: 2, words: &["does not go with --file"] },
    Bad { name: "unknown backup id", files: &[], args: &["db-restore", "--backup", "20990101T000000Z-beef"], code: 2, words: &["no backup `20990101T000000Z-beef`"] },
    // seed files
    Bad { name: "seed malformed halfway", files: &[("test-data/seed-a.sql", b"INSERT INTO users VALUES (900001, 'a@x');\nINSRT INTO users VALUES (900002, 'b@x');\n")], args: &["db-seed"], code: 2, words: &["seed-a.sql:2:", "syntax error", "nothing was loaded"] },
    Bad { name: "seed unknown table", files: &[("test-data/seed-a.sql", b"INSERT INTO users VALUES (900001, 'a@x');\nINSERT INTO nope VALUES (1);\n")], args: &["db-seed"], code: 2, words: &["seed-a.sql:2:", "no such table: nope"] },
    Bad { name: "seed unclosed string", files: &[("test-data/seed-a.sql", b"INSERT INTO users VALUES (900001, 'a@x);\n")], args: &["db-seed"], code: 2, words: &["seed-a.sql:1", "never closed"] },
    Bad { name: "seed not UTF-8", files: &[("test-data/seed-a.sql", b"INSERT INTO users VALUES (900001, 'caf\xe9');\n")], args: &["db-seed"], code: 2, words: &["not UTF-8"] },
];

#[test]
fn bad_input() {
    let mut tally = Tally::new("bad input");
    let base = Workspace::new("bad-input");
    base.write("wrangler.jsonc", GOOD_CONFIG);
    base.migration("0001_users.sql", USERS);
    base.xtask(&["db-migrate", "--no-backup"]).expect(0, &[]);
    base.query("INSERT INTO users (id, email) VALUES (1, 'a@x.com')");
    let through_wrangler = base.query("SELECT count(*) AS n FROM users");
    let big = format!(
        "INSERT INTO users (email) VALUES ('{}');\n",
        "x".repeat(100_001)
    );
    for case in BAD {
        let before = local_fingerprint(&base);
        let mut written = Vec::new();
        let mut saved_config = None;
        for (rel, body) in case.files {
            let path = base.dir.join(rel);
            if *rel == "wrangler.jsonc" {
                saved_config = Some(std::fs::read(&path).unwrap());
            }
            let body: &[u8] = if rel.ends_with("0003_big.sql") {
                big.as_bytes()
            } else {
                body
            };
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, body).unwrap();
            if *rel != "wrangler.jsonc" {
                written.push(path);
            }
        }
        let run = base.xtask(case.args);
        let mut problems = no_panic(&run);
        if run.code != case.code {
            problems.push(format!(
                "exit {} instead of {}:\n{}",
                run.code, case.code, run.stderr
            ));
        }
        problems.extend(lacks(&run, case.words));
        let after = local_fingerprint(&base);
        if after != before {
            problems.push(format!("the database changed:\n{before}\n---\n{after}"));
        }
        for p in written {
            let _ = std::fs::remove_file(p);
        }
        if let Some(c) = saved_config {
            std::fs::write(base.dir.join("wrangler.jsonc"), c).unwrap();
        }
        tally.case(case.name, problems);
    }
    // A non-UTF-8 argument.
    {
        use std::os::unix::ffi::OsStrExt;
        let out = Command::new(crate::support::xtask_bin())
            .arg("db-new")
            .arg(std::ffi::OsStr::from_bytes(b"caf\xe9"))
            .current_dir(&base.dir)
            .output()
            .unwrap();
        let run = Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        let mut problems = no_panic(&run);
        if run.code != 2 {
            problems.push(format!("exit {}", run.code));
        }
        problems.extend(lacks(&run, &["is not UTF-8"]));
        tally.case("argument not UTF-8", problems);
    }
    // Through wrangler too: the rows are as they were.
    assert_eq!(
        base.query("SELECT count(*) AS n FROM users"),
        through_wrangler
    );
    assert_eq!(base.applied_names(), vec!["0001_users.sql"]);
    tally.finish();
}

// ---------------------------------------------------------------- restore points and the lock

/// Runs one case written as a test body (it asserts): it passes if it does not panic.
fn case_of(tally: &mut Tally, name: &str, body: fn()) {
    let outcome = std::panic::catch_unwind(body);
    let problems = match outcome {
        Ok(()) => Vec::new(),
        Err(p) => vec![p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panicked".into())],
    };
    tally.case(name, problems);
}

#[test]
fn concurrent_workspaces() {
    let mut tally = Tally::new("concurrent workspaces");
    case_of(
        &mut tally,
        "the undo of a run that waited for the lock keeps the other run's migration",
        crate::drift_lock::the_undo_of_a_run_that_waited_for_the_lock_keeps_the_other_runs_migration,
    );
    tally.finish();
}

#[test]
fn kills_with_reruns() {
    let mut tally = Tally::new("kills with reruns");
    case_of(
        &mut tally,
        "a SIGKILL leaves no --verify command running",
        crate::processes::a_killed_xtask_leaves_no_command_running,
    );
    case_of(
        &mut tally,
        "the lock of a killed run does not make the rerun wait",
        crate::drift_lock::a_lock_left_by_a_dead_process_of_this_host_is_broken_without_waiting,
    );
    case_of(
        &mut tally,
        "rerunning db-restore --last after a restore changes nothing",
        crate::backup_restore::rerunning_restore_last_changes_nothing_and_the_restore_has_its_own_undo,
    );
    tally.finish();
}

#[test]
fn clock_skew() {
    let mut tally = Tally::new("clock skew");
    let ws = Workspace::new("clock-skew");
    ws.write("wrangler.jsonc", GOOD_CONFIG);
    ws.migration("0001_users.sql", USERS);
    ws.xtask(&["db-migrate"]).expect(0, &[]);
    ws.migration(
        "0002_tags.sql",
        "CREATE TABLE tags (id INTEGER PRIMARY KEY, name TEXT NOT NULL);\n",
    );
    let lock_rows = || ws.query("SELECT token FROM d1_migrations_lock");
    // Another machine's lock, written 120 s "ahead" and 1000 s "behind" by the database's
    // clock (as rows from runners with skewed clocks would look): ages come from the
    // database, never from this runner's clock, and no such row is deleted by a release.
    for (name, offset, stale) in [
        (
            "a lock 120 s in the future is held, not broken",
            "+ 120",
            false,
        ),
        (
            "a lock 1000 s old breaks only with --force-unlock",
            "- 1000",
            true,
        ),
    ] {
        ws.query("DELETE FROM d1_migrations_lock");
        ws.query(&format!(
            "INSERT INTO d1_migrations_lock (id, token, holder, host, pid, command, acquired_at) \
             VALUES (1, 'other-machine', 'ci', 'runner-far-away', 4242, 'db-seed', unixepoch() {offset})"
        ));
        let mut problems = Vec::new();
        let waited = ws.xtask(&["db-migrate", "--lock-timeout", "0"]);
        problems.extend(no_panic(&waited));
        if waited.code != 4 {
            problems.push(format!(
                "exit {} instead of 4:\n{}",
                waited.code, waited.stderr
            ));
        }
        problems.extend(lacks(&waited, &["runner-far-away", "nothing was changed"]));
        let forced = ws.xtask(&["db-reset", "--force-unlock"]);
        problems.extend(no_panic(&forced));
        match (stale, forced.code) {
            (false, 4) => problems.extend(lacks(&forced, &["not stale"])),
            (true, 0) => {
                problems.extend(lacks(&forced, &["broke the stale lock", "runner-far-away"]))
            }
            (_, code) => problems.push(format!("--force-unlock: exit {code}:\n{}", forced.stderr)),
        }
        let rows = lock_rows();
        if !stale && rows.len() != 1 {
            problems.push(format!("the other machine's lock row is gone: {rows:?}"));
        }
        if stale && !rows.is_empty() {
            problems.push(format!("the broken lock stayed: {rows:?}"));
        }
        tally.case(name, problems);
    }
    tally.finish();
}

#[test]
fn full_disk() {
    let mut tally = Tally::new("full disk");
    case_of(
        &mut tally,
        "a torn index line is set aside; the undo printed after it works",
        crate::backup_restore::a_torn_index_line_is_set_aside_and_the_undo_printed_after_it_works,
    );
    case_of(
        &mut tally,
        "ENOSPC on the index: exit 1, nothing recorded, nothing changed",
        crate::backup_restore::on_a_full_disk_nothing_is_recorded_and_nothing_changes,
    );
    tally.finish();
}

#[test]
fn truncated_export() {
    let mut tally = Tally::new("truncated export");
    case_of(
        &mut tally,
        "an export cut short and exit 0 is not recorded",
        crate::backup_restore::an_export_cut_short_is_not_recorded,
    );
    tally.finish();
}

// ---------------------------------------------------------------- hostile environment

/// Runs the xtask with `env` set, stopping it if it has not returned within 30 s (a hang
/// is a failed case, not a hung suite).
fn xtask_bounded(ws: &Workspace, args: &[&str], env: &[(&str, &str)]) -> Result<Run, String> {
    let mut cmd = Command::new(crate::support::xtask_bin());
    cmd.args(args)
        .current_dir(&ws.dir)
        .env("WRANGLER", wrangler_bin())
        .env("CI", "true")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if child.try_wait().unwrap().is_some() {
            let out = child.wait_with_output().unwrap();
            return Ok(Run {
                code: out.status.code().unwrap_or(-1),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err("did not return within 30 s".into());
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn hostile_environment() {
    let mut tally = Tally::new("hostile environment");
    let ws = Workspace::new("hostile");
    ws.write("wrangler.jsonc", GOOD_CONFIG);
    ws.migration("0001_users.sql", USERS);
    ws.xtask(&["db-migrate"]).expect(0, &[]);
    let fifo = ws.dir.join("tz-fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let fifo_s = fifo.display().to_string();
    let before = local_fingerprint(&ws);
    let list = ["db-backup", "--list"];
    type Case<'a> = (
        &'a str,
        &'a [&'a str],
        Vec<(&'a str, &'a str)>,
        i32,
        Vec<&'a str>,
    );
    let cases: Vec<Case> = vec![
        (
            "TZ=/dev/zero",
            &list,
            vec![("TZ", "/dev/zero")],
            2,
            vec!["TZ=", "not a regular file"],
        ),
        (
            "TZ=<a fifo>",
            &list,
            vec![("TZ", fifo_s.as_str())],
            2,
            vec!["TZ=", "not a regular file"],
        ),
        (
            "TZ=Mars/Olympus",
            &list,
            vec![("TZ", "Mars/Olympus")],
            2,
            vec!["TZ=\"Mars/Olympus\"", "not a time zone"],
        ),
        (
            "TZ=/etc/hostname (not a zone file)",
            &list,
            vec![("TZ", "/etc/hostname")],
            2,
            vec!["not a time zone file"],
        ),
        (
            "TZ=Europe/Paris (valid)",
            &list,
            vec![("TZ", "Europe/Paris")],
            0,
            vec![],
        ),
        (
            "TZ=EST5EDT (a POSIX rule, valid)",
            &list,
            vec![("TZ", "EST5EDT")],
            0,
            vec![],
        ),
        (
            "WRANGLER_LOG=debug, db-status",
            &["db-status", "--check"],
            vec![("WRANGLER_LOG", "debug")],
            0,
            vec![],
        ),
        (
            "WRANGLER_LOG=debug, db-migrate",
            &["db-migrate"],
            vec![("WRANGLER_LOG", "debug")],
            0,
            vec!["nothing to apply"],
        ),
        (
            "db-new with a newline",
            &["db-new", "a\nb"],
            vec![],
            2,
            vec!["control characters"],
        ),
        (
            "db-new with a right-to-left override",
            &["db-new", "add\u{202E}lqs.txt"],
            vec![],
            2,
            vec!["bidirectional"],
        ),
    ];
    for (name, args, env, code, words) in cases {
        let run = match xtask_bounded(&ws, args, &env) {
            Ok(run) => run,
            Err(e) => {
                tally.case(name, vec![e]);
                continue;
            }
        };
        let mut problems = no_panic(&run);
        if run.code != code {
            problems.push(format!(
                "exit {} instead of {code}:\n{}",
                run.code, run.stderr
            ));
        }
        problems.extend(lacks(&run, &words));
        tally.case(name, problems);
    }
    let files: Vec<String> = std::fs::read_dir(ws.dir.join("migrations"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files, ["0001_users.sql"], "db-new wrote nothing");

    // A migrations_dir that is not a folder: mistyped, a dangling link, a link loop.
    std::os::unix::fs::symlink(ws.dir.join("nowhere"), ws.dir.join("dangling")).unwrap();
    std::os::unix::fs::symlink(ws.dir.join("loop-b"), ws.dir.join("loop-a")).unwrap();
    std::os::unix::fs::symlink(ws.dir.join("loop-a"), ws.dir.join("loop-b")).unwrap();
    let config = String::from_utf8(GOOD_CONFIG.to_vec()).unwrap();
    for (name, dir) in [
        ("migrations_dir mistyped", "migratoins"),
        ("migrations_dir a dangling link", "dangling"),
        ("migrations_dir a link loop", "loop-a"),
    ] {
        ws.write(
            "wrangler.jsonc",
            config.replacen(
                "\"database_id\"",
                &format!("\"migrations_dir\": \"{dir}\", \"database_id\""),
                1,
            ),
        );
        for args in [&["db-migrate"][..], &["db-status", "--check"][..]] {
            let run = ws.xtask(args);
            let mut problems = no_panic(&run);
            if run.code != 2 {
                problems.push(format!("exit {} instead of 2:\n{}", run.code, run.stderr));
            }
            problems.extend(lacks(
                &run,
                &["migrations folder of local", dir, "migrations_dir"],
            ));
            tally.case(&format!("{name}: {}", args[0]), problems);
        }
    }
    ws.write("wrangler.jsonc", GOOD_CONFIG);
    let unchanged = if local_fingerprint(&ws) == before {
        Vec::new()
    } else {
        vec!["the database changed".to_string()]
    };
    tally.case("the database is unchanged", unchanged);
    tally.finish();
}

// ---------------------------------------------------------------- security

fn files_holding(dir: &Path, needle: &str, skip: &str) -> Vec<String> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                if !path.ends_with(skip) {
                    stack.push(path);
                }
            } else if std::fs::read(&path)
                .map(|b| String::from_utf8_lossy(&b).contains(needle))
                .unwrap_or(false)
            {
                hits.push(path.display().to_string());
            }
        }
    }
    hits
}

#[test]
fn security() {
    let mut tally = Tally::new("security");

    // 1-2. The token and the key never appear in output or files.
    let ws = Workspace::new("secrets");
    ws.migration("0001_users.sql", USERS);
    let emu: Remote = ws.remote();
    let gh = ws.dir.join("gh-output");
    let gh_env = [("GITHUB_OUTPUT", gh.to_str().unwrap())];
    let mut runs = vec![
        ws.xtask_remote(&emu, &["db-migrate", "--env", "staging"], &gh_env),
        ws.xtask_remote(&emu, &["db-backup", "--env", "staging"], &gh_env),
        ws.xtask_remote(&emu, &["db-restore", "--env", "staging", "--last"], &gh_env),
        ws.xtask_remote(
            &emu,
            &["db-status", "--env", "staging"],
            &[("CLOUDFLARE_API_TOKEN", "wrong-token-1234567")],
        ),
    ];
    let mut problems = Vec::new();
    for r in &runs {
        if r.stdout.contains(TOKEN) || r.stderr.contains(TOKEN) {
            problems.push("the token was printed".into());
        }
    }
    if runs[0].code != 0 || runs[1].code != 0 || runs[2].code != 0 {
        problems.push("the runs with the token did not succeed".into());
    }
    let hits = files_holding(&ws.dir, TOKEN, "emulator-data");
    if !hits.is_empty() {
        problems.push(format!("files hold the token: {hits:?}"));
    }
    tally.case(
        "API token in output, logs, backup index, GITHUB_OUTPUT",
        problems,
    );

    // The key: wrangler sends X-Auth-Key, which the emulator takes as the token here.
    let key_run = ws.xtask_remote(
        &emu,
        &["db-status", "--env", "staging", "--json"],
        &[
            ("CLOUDFLARE_API_KEY", TOKEN),
            ("CLOUDFLARE_EMAIL", "ops@example.invalid"),
            ("CLOUDFLARE_API_TOKEN", ""),
        ],
    );
    let mut problems = Vec::new();
    if key_run.stdout.contains(TOKEN) || key_run.stderr.contains(TOKEN) {
        problems.push("the key was printed".into());
    }
    runs.push(key_run);
    tally.case("API key in output", problems);

    // 3. Quotes in migration and table names, through every SQL the xtask generates.
    let q = Workspace::new("quotes");
    q.migration(
        "0001_o'brien \"first\".sql",
        "CREATE TABLE \"we\"\"ird'name\" (id INTEGER PRIMARY KEY, v TEXT);\n",
    );
    q.write(
        "test-data/seed-q.sql",
        "INSERT INTO \"we\"\"ird'name\" (id, v) VALUES (1, 'it''s');\n",
    );
    q.write(
        "test-data/cleanup-q.sql",
        "DELETE FROM \"we\"\"ird'name\";\n",
    );
    let mut problems = Vec::new();
    for args in [
        &["db-migrate"][..],
        &["db-seed"][..],
        &["db-reset", "--seed"][..],
        &["db-backup"][..],
        &["db-seed", "--cleanup"][..],
        &["db-restore", "--last"][..],
    ] {
        let r = q.xtask(args);
        if r.code != 0 {
            problems.push(format!("{args:?}: exit {}\n{}", r.code, r.stderr));
        }
    }
    if q.applied_names() != vec!["0001_o'brien \"first\".sql"] {
        problems.push(format!("tracking row: {:?}", q.applied_names()));
    }
    if !q.wrangler_pending().is_empty() {
        problems.push("raw wrangler sees the quoted migration as pending".into());
    }
    let rows = q.query("SELECT v FROM \"we\"\"ird'name\"");
    if rows.len() != 1 || rows[0]["v"] != "it's" {
        problems.push(format!("rows after the last restore: {rows:?}"));
    }
    tally.case("quotes in migration and table names", problems);

    // 4. Names from the config never lead out of backups/.
    let p = Workspace::new("paths");
    p.write(
        "wrangler.jsonc",
        r#"{ "d1_databases": [{ "binding": "DB", "database_name": "../../../escape", "database_id": "x" }],
             "env": { "../../up": { "d1_databases": [{ "binding": "DB", "database_name": "../x", "database_id": "00000000-0000-0000-0000-0000000000ff" }] } } }"#,
    );
    p.migration("0001_users.sql", USERS);
    let mut problems = Vec::new();
    let r = p.xtask(&["db-migrate"]);
    let b = p.xtask(&["db-backup", "--json"]);
    if r.code != 0 || b.code != 0 {
        problems.push(format!("runs failed:\n{}\n{}", r.stderr, b.stderr));
    } else {
        let file = p.dir.join(b.json()["file"].as_str().unwrap());
        let canonical = file.canonicalize().unwrap();
        if !canonical.starts_with(p.dir.join("backups").canonicalize().unwrap()) {
            problems.push(format!("a backup left backups/: {}", canonical.display()));
        }
    }
    tally.case("paths from database and environment names", problems);

    // 5. Backup files and the folder are owner-only.
    let mut problems = Vec::new();
    let backups = p.dir.join("backups");
    let dir_mode = std::fs::metadata(&backups).unwrap().permissions().mode() & 0o777;
    if dir_mode != 0o700 {
        problems.push(format!("backups/ is {dir_mode:o}"));
    }
    let mut stack = vec![backups];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let path = e.path();
            let mode = e.metadata().unwrap().permissions().mode() & 0o777;
            if path.is_dir() {
                stack.push(path);
            } else if mode != 0o600 {
                problems.push(format!("{} is {mode:o}", path.display()));
            }
        }
    }
    tally.case("backup files readable by the owner only", problems);
    tally.finish();
}

// ---------------------------------------------------------------- deploy faults

/// One way a deploy can fail past its migration.
struct DeployCase {
    name: &'static str,
    /// Faults on the Workers or D1 paths: (method, path, nth).
    faults: &'static [(&'static str, &'static str, u32)],
    smoke: Option<&'static str>,
    code: i32,
    words: &'static [&'static str],
    /// What must be live afterwards: the version before the deploy, or the new one.
    old_code_live: bool,
    /// Whether 0002 stays applied.
    migration_kept: bool,
}

const DEPLOY_CASES: &[DeployCase] = &[
    DeployCase {
        name: "the deploy fails",
        faults: &[("POST", "/workers/scripts/e2e-staging/versions", 1)],
        smoke: None,
        code: 1,
        words: &[
            "wrangler deploy failed",
            "as before this deploy",
            "back at the restore point",
        ],
        old_code_live: true,
        migration_kept: false,
    },
    DeployCase {
        name: "the smoke command fails",
        faults: &[],
        smoke: Some("false"),
        code: 1,
        words: &[
            "the smoke command `false` failed",
            "is live again",
            "back at the restore point",
        ],
        old_code_live: true,
        migration_kept: false,
    },
    DeployCase {
        name: "the Worker rollback fails",
        // The deploy's own deployment is the first POST; the rollback's the second.
        faults: &[("POST", "/workers/scripts/e2e-staging/deployments", 2)],
        smoke: Some("false"),
        code: 1,
        words: &[
            "rolling Worker e2e-staging back to",
            "left as this deploy made it",
            "to finish by hand",
            "wrangler rollback",
            "db-restore --env staging --bookmark",
        ],
        old_code_live: false,
        migration_kept: true,
    },
    DeployCase {
        name: "the database restore fails",
        faults: &[("POST", "/time_travel/restore", 1)],
        smoke: Some("false"),
        code: 1,
        words: &[
            "is live again",
            "restoring the restore point failed",
            "to finish by hand",
            "db-restore --env staging --bookmark",
        ],
        old_code_live: true,
        migration_kept: true,
    },
];

/// Checks a deploy case's end state through the emulator's store.
fn deploy_state(
    ws: &Workspace,
    emu: &Remote,
    old: &str,
    old_code_live: bool,
    migration_kept: bool,
) -> (Vec<String>, i64) {
    let mut problems = Vec::new();
    // What the Workers API serves (the emulator's store; raw wrangler's view of it is
    // checked in `deploy::` and `emulator_wrangler::`).
    let live = emu.emu().live_worker("e2e-staging").unwrap().0;
    if (live == old) != old_code_live {
        problems.push(format!(
            "version {live} is live; expected {}",
            if old_code_live {
                "the old one"
            } else {
                "the new one"
            }
        ));
    }
    let (tables, applied) = ws.remote_tables_and_applied(emu, "staging");
    let expected: &[&str] = if migration_kept {
        &["0001_users.sql", "0002_posts.sql"]
    } else {
        &["0001_users.sql"]
    };
    if applied != expected {
        problems.push(format!("applied {applied:?}, expected {expected:?}"));
    }
    if tables.contains(&"posts".to_string()) != migration_kept {
        problems.push(format!("tables {tables:?}"));
    }
    let lock = ws.remote_query(
        emu,
        "staging",
        "SELECT count(*) AS n FROM d1_migrations_lock",
    );
    if lock[0]["n"] != 0 {
        problems.push("the lock was not released".into());
    }
    let users = ws.remote_query(emu, "staging", "SELECT count(*) AS n FROM users")[0]["n"]
        .as_i64()
        .unwrap_or(0);
    (problems, 2 - users.min(2))
}

/// A copy of the deployed fixture with two user rows, 0002 and v2 code waiting, its
/// emulator running; and the version live.
fn deploy_case_setup(fixture: &Workspace) -> (Workspace, Remote, String) {
    let ws = Workspace::new("deploy-fault");
    copy_tree(&fixture.dir, &ws.dir);
    let emu = ws.emulator();
    ws.remote_query(
        &emu,
        "staging",
        "INSERT INTO users (id, email) VALUES (1, 'a@x.com'), (2, 'b@x.com')",
    );
    let old = emu.emu().live_worker("e2e-staging").unwrap().0;
    ws.migration("0002_posts.sql", POSTS);
    ws.write(
        "worker/index.js",
        crate::emulator_wrangler::worker_source("v2"),
    );
    (ws, emu, old)
}

#[test]
fn deploy_faults() {
    let mut tally =
        Tally::new("deploy faults: deploy, smoke, Worker rollback, database restore, killed");
    // Staging with v1 and 0001 deployed by the xtask: made once, copied into each case.
    let fixture = crate::deploy::worker_workspace("deploy-fault-fixture");
    {
        let emu = fixture.emulator();
        fixture
            .xtask_remote(&emu, &["deploy", "--env", "staging"], &[])
            .expect(0, &[]);
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results = std::sync::Mutex::new(vec![None; DEPLOY_CASES.len() + 1]);
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let outcome = match DEPLOY_CASES.get(i) {
                    Some(case) => deploy_case(&fixture, case),
                    None if i == DEPLOY_CASES.len() => killed_deploy(&fixture),
                    None => break,
                };
                results.lock().unwrap()[i] = Some(outcome);
            });
        }
    });
    let names = DEPLOY_CASES
        .iter()
        .map(|c| c.name)
        .chain(["killed mid-deploy, then run again"]);
    for (name, outcome) in names.zip(results.into_inner().unwrap()) {
        let (problems, lost) = outcome.expect("every case ran");
        tally.lost += lost;
        tally.case(name, problems);
    }
    tally.finish();
}

fn deploy_case(fixture: &Workspace, case: &DeployCase) -> (Vec<String>, i64) {
    let (ws, emu, old) = deploy_case_setup(fixture);
    for (method, path, nth) in case.faults {
        emu.emu().add_fault(
            Fault::new(path, FaultKind::Fail)
                .method(method)
                .nth(*nth)
                .times(10),
        );
    }
    let mut args = vec!["deploy", "--env", "staging"];
    if let Some(s) = case.smoke {
        args.extend(["--smoke", s]);
    }
    let run = ws.xtask_remote(&emu, &args, &[]);
    emu.emu().clear_faults();
    let mut problems = Vec::new();
    if run.code != case.code {
        problems.push(format!(
            "exit {} (expected {}):\n{}",
            run.code, case.code, run.stderr
        ));
    }
    problems.extend(lacks(&run, case.words));
    problems.extend(no_panic(&run));
    let (state, lost) = deploy_state(&ws, &emu, &old, case.old_code_live, case.migration_kept);
    problems.extend(state);
    let list = ws.xtask(&["deploy", "--list", "--env", "staging", "--json"]);
    let last = list.json()["deploys"]
        .as_array()
        .unwrap()
        .last()
        .cloned()
        .unwrap_or_default();
    let expected = if case.old_code_live && !case.migration_kept {
        "rolled-back"
    } else {
        "failed"
    };
    if last["outcome"] != expected {
        problems.push(format!(
            "the record says {}, not {expected}",
            last["outcome"]
        ));
    }
    (problems, lost)
}

/// The xtask killed (SIGKILL) while its smoke command runs, then `deploy` again: the
/// rerun breaks the dead run's lock, says where that deploy left things, and finishes the
/// job with every migration applied once.
fn killed_deploy(fixture: &Workspace) -> (Vec<String>, i64) {
    let (ws, emu, old) = deploy_case_setup(fixture);
    let marker = ws.dir.join("smoke-started");
    let smoke = format!("touch '{}'; sleep 60", marker.display());
    let mut cmd = Command::new(crate::support::xtask_bin());
    cmd.args(["deploy", "--env", "staging", "--smoke", &smoke])
        .current_dir(&ws.dir)
        .env("WRANGLER", wrangler_bin())
        .env("CI", "true")
        .env("WRANGLER_SEND_METRICS", "false")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in emu.env() {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    for _ in 0..2400 {
        if marker.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    let mut problems = Vec::new();
    if !marker.exists() {
        problems.push("the smoke command never started".into());
    }
    child.kill().unwrap();
    let _ = child.wait();
    let rerun = ws.xtask_remote(&emu, &["deploy", "--env", "staging", "--json"], &[]);
    if rerun.code != 0 {
        problems.push(format!(
            "the rerun exited {}:\n{}",
            rerun.code, rerun.stderr
        ));
    }
    problems.extend(lacks(
        &rerun,
        &["did not finish (stopped mid-way)", "broke the lock"],
    ));
    problems.extend(no_panic(&rerun));
    let live = emu.emu().live_worker("e2e-staging").unwrap().0;
    if live == old || Some(live.as_str()) != rerun.json()["new_version"].as_str() {
        problems.push(format!("version {live} is live, not the rerun's"));
    }
    let (state, lost) = deploy_state(&ws, &emu, &old, false, true);
    problems.extend(state);
    let list = ws.xtask(&["deploy", "--list", "--env", "staging", "--json"]);
    let outcomes: Vec<String> = list.json()["deploys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["outcome"].as_str().unwrap_or("").to_string())
        .collect();
    if outcomes != ["deployed", "failed", "deployed"] {
        problems.push(format!("the records say {outcomes:?}"));
    }
    (problems, lost)
}
