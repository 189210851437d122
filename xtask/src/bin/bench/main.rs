//! `cargo xtask-bench`: the xtask against raw wrangler on identical scratch workspaces,
//! printed as a table: median wall times, their ratio, wrangler processes started;
//! `db-status` over 10,000 files; the cold build of the library. Figures, not assertions.
//!
//! A development tool of this workspace, not part of the product: it drives the built
//! `cargo xtask` from outside, as a user does, and so needs nothing private of d1-xtask.

mod sweep;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::anyhow as failed;
use anyhow::anyhow as usage;
use clap::Parser;

/// One human line on stderr.
fn say(line: impl AsRef<str>) {
    eprintln!("{}", line.as_ref());
}

/// A line of the printed figures, on stdout.
fn print(line: impl AsRef<str>) {
    println!("{}", line.as_ref());
}

/// This workspace's root (the bench measures this workspace's own xtask).
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// `PATH` with `dir` first.
fn path_with(dir: &Path) -> std::ffi::OsString {
    let mut dirs = vec![dir.to_path_buf()];
    dirs.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(dirs).unwrap_or_default()
}

/// The `*.sql` files of `dir` whose names start with `prefix`, in name order.
fn sql_files(dir: &Path, prefix: &str) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "sql")
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(prefix))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// The hand-written reset a team would keep beside its migrations: the migrations replayed
/// on an empty SQLite database, then every view, trigger and table they made dropped
/// (newest first, so that children go before the parents they reference), and the
/// tracking table.
fn hand_written_reset(migrations: &[PathBuf]) -> anyhow::Result<String> {
    let conn = rusqlite::Connection::open_in_memory()?;
    for m in migrations {
        conn.execute_batch(&std::fs::read_to_string(m)?)
            .map_err(|e| {
                failed!(
                    "bench: {} does not apply to an empty database: {e}",
                    m.display()
                )
            })?;
    }
    let mut stmt = conn.prepare(
        "SELECT type, name FROM sqlite_master WHERE type IN ('view', 'trigger', 'table') \
         AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND (sql IS NULL OR sql NOT LIKE 'CREATE TABLE ''%') \
         ORDER BY rowid DESC",
    )?;
    let objects = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    let mut sql = String::from("PRAGMA defer_foreign_keys = true;\n");
    for kind in ["view", "trigger", "table"] {
        for (k, name) in objects.iter().filter(|(k, _)| k == kind) {
            sql.push_str(&format!(
                "DROP {} IF EXISTS \"{}\";\n",
                k.to_uppercase(),
                name.replace('"', "\"\"")
            ));
        }
    }
    sql.push_str("DROP TABLE IF EXISTS d1_migrations;\n");
    Ok(sql)
}

const CONFIG: &str = "{\"name\": \"bench\", \"d1_databases\": [{\"binding\": \"DB\", \"database_name\": \"bench\", \"database_id\": \"00000000-0000-0000-0000-00000000bec4\"}]}\n";

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn secs(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64())
}

struct Runner {
    root: PathBuf,
    manifest: PathBuf,
    wrangler: PathBuf,
    node_bin: PathBuf,
    wrapper: PathBuf,
    log: PathBuf,
}

impl Runner {
    /// A fresh scratch workspace with `n` migrations.
    fn workspace(&self, name: &str, n: usize) -> anyhow::Result<PathBuf> {
        let dir = self.root.join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("migrations"))?;
        std::fs::write(dir.join("wrangler.jsonc"), CONFIG)?;
        for i in 1..=n {
            std::fs::write(
                dir.join("migrations").join(format!("{i:04}_bench_{i}.sql")),
                format!("CREATE TABLE t_{i} (id INTEGER PRIMARY KEY, v TEXT NOT NULL);\nINSERT INTO t_{i} (v) VALUES ('row {i}');\n"),
            )?;
        }
        Ok(dir)
    }

    fn path_env(&self) -> std::ffi::OsString {
        path_with(&self.node_bin)
    }

    /// `cargo xtask <args>` in `dir`, as a user runs it (cargo's start-up included).
    fn ours(&self, dir: &Path, args: &[&str]) -> anyhow::Result<(Duration, usize)> {
        let _ = std::fs::remove_file(&self.log);
        let started = Instant::now();
        let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["run", "-q", "--manifest-path"])
            .arg(&self.manifest)
            .args(["-p", "xtask", "--"])
            .args(args)
            .current_dir(dir)
            .env("WRANGLER", &self.wrapper)
            .env("XTASK_BENCH_LOG", &self.log)
            .env("PATH", self.path_env())
            .env("WRANGLER_SEND_METRICS", "false")
            .output()?;
        let took = started.elapsed();
        if !out.status.success() {
            return Err(failed!(
                "bench: cargo xtask {args:?} failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let calls = std::fs::read_to_string(&self.log).map_or(0, |l| l.lines().count());
        Ok((took, calls))
    }

    /// Raw `wrangler <args>` in `dir`.
    fn raw(&self, dir: &Path, args: &[&str]) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let out = Command::new(&self.wrangler)
            .args(args)
            .current_dir(dir)
            .env("PATH", self.path_env())
            .env("WRANGLER_SEND_METRICS", "false")
            .env("WRANGLER_HIDE_BANNER", "true")
            .env("CI", "true")
            .stdin(std::process::Stdio::null())
            .output()?;
        let took = started.elapsed();
        if !out.status.success() {
            return Err(failed!(
                "bench: wrangler {args:?} failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(took)
    }
}

/// One row of the test-loop table.
struct LoopRow {
    step: &'static str,
    ours: Duration,
    ours_calls: usize,
    hand: Duration,
    hand_calls: usize,
}

struct TestLoop {
    migrations: usize,
    seeds: usize,
    rows: Vec<LoopRow>,
    /// `d1_xtask::testing`: one test's own copy of the template, connected.
    per_test_copy: Duration,
}

impl Runner {
    /// A scratch workspace holding the project's own migrations and test data.
    fn sample(&self, name: &str, project: &Path) -> anyhow::Result<PathBuf> {
        let dir = self.workspace(name, 0)?;
        for sub in ["migrations", "test-data"] {
            std::fs::create_dir_all(dir.join(sub))?;
            for entry in std::fs::read_dir(project.join(sub))?.flatten() {
                if entry.path().extension().is_some_and(|e| e == "sql") {
                    std::fs::copy(entry.path(), dir.join(sub).join(entry.file_name()))?;
                }
            }
        }
        Ok(dir)
    }

    /// `db-reset --seed` and `db-seed` against the hand-written workflow, each from a
    /// seeded database, on identical copies of the project's migrations and seeds.
    fn test_loop(&self, project: &Path, runs: usize) -> anyhow::Result<TestLoop> {
        let migrations = sql_files(&project.join("migrations"), "")?;
        let seeds = sql_files(&project.join("test-data"), "seed-")?;
        if migrations.is_empty() || seeds.is_empty() {
            return Err(usage!(
                "bench: the test loop needs migrations/ and test-data/seed-*.sql in {}",
                project.display()
            ));
        }
        let reset_sql = hand_written_reset(&migrations)?;
        let seed_args: Vec<String> = seeds
            .iter()
            .map(|p| {
                format!(
                    "test-data/{}",
                    p.file_name().unwrap_or_default().to_string_lossy()
                )
            })
            .collect();

        say(format!("bench: the test loop, {runs} run(s) each"));
        let ours_ws = self.sample("loop-ours", project)?;
        self.ours(&ours_ws, &["db-reset", "--seed"])?;
        let hand_ws = self.sample("loop-hand", project)?;
        std::fs::write(hand_ws.join("reset.sql"), &reset_sql)?;
        let hand_seed = |dir: &Path| -> anyhow::Result<(Duration, usize)> {
            let mut took = Duration::ZERO;
            for file in &seed_args {
                took += self.raw(
                    dir,
                    &["d1", "execute", "DB", "--local", "--file", file, "--yes"],
                )?;
            }
            Ok((took, seed_args.len()))
        };
        let hand_reset = |dir: &Path| -> anyhow::Result<(Duration, usize)> {
            let mut took = self.raw(
                dir,
                &[
                    "d1",
                    "execute",
                    "DB",
                    "--local",
                    "--file",
                    "reset.sql",
                    "--yes",
                ],
            )?;
            took += self.raw(dir, &["d1", "migrations", "apply", "DB", "--local"])?;
            let (t, n) = hand_seed(dir)?;
            Ok((took + t, n + 2))
        };
        hand_reset(&hand_ws)?;

        let mut rows = Vec::new();
        for (step, ours_args) in [
            (
                "`db-reset --seed`, inputs unchanged (the template)",
                &["db-reset", "--seed"][..],
            ),
            (
                "`db-reset --seed --rebuild` (as when an input changed: through wrangler)",
                &["db-reset", "--seed", "--rebuild"][..],
            ),
            ("`db-seed`", &["db-seed"][..]),
        ] {
            let (mut ours_t, mut hand_t) = (Vec::new(), Vec::new());
            let (mut ours_calls, mut hand_calls) = (0, 0);
            for _ in 0..runs {
                let (t, c) = self.ours(&ours_ws, ours_args)?;
                ours_t.push(t);
                ours_calls = c;
                let (t, c) = if ours_args[0] == "db-reset" {
                    hand_reset(&hand_ws)?
                } else {
                    hand_seed(&hand_ws)?
                };
                hand_t.push(t);
                hand_calls = c;
            }
            rows.push(LoopRow {
                step,
                ours: median(ours_t),
                ours_calls,
                hand: median(hand_t),
                hand_calls,
            });
        }
        // One database per test: a copy of the seeded template, opened with D1's rules.
        let template = std::fs::read_dir(ours_ws.join(".wrangler/xtask/templates"))?
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "sqlite"))
            .ok_or_else(|| failed!("bench: db-reset --seed left no template"))?;
        let databases = d1_xtask::testing::TestDatabases::from_file(&template);
        let mut copy_t = Vec::new();
        for _ in 0..100 {
            let started = Instant::now();
            let db = databases.fresh()?;
            let conn = db.connect()?;
            copy_t.push(started.elapsed());
            drop(conn);
        }
        Ok(TestLoop {
            migrations: migrations.len(),
            seeds: seeds.len(),
            rows,
            per_test_copy: median(copy_t),
        })
    }
}

/// Benchmarks `cargo xtask` against raw wrangler on scratch workspaces and prints tables.
#[derive(Parser, Debug)]
#[command(name = "xtask-bench", bin_name = "cargo xtask-bench")]
struct Bench {
    /// runs per measurement; the median is reported (default 3)
    #[arg(long, value_name = "n", value_parser = clap::value_parser!(u16).range(1..=50))]
    runs: Option<u16>,
    /// numbers of migrations, comma-separated (default 1,50,200)
    #[arg(long, value_name = "list")]
    sizes: Option<String>,
    /// database sizes of the remote backup/restore sweep, comma-separated (default 1,10,100; 0 skips it)
    #[arg(long, value_name = "list")]
    megabytes: Option<String>,
    /// do not measure the cold build of the library
    #[arg(long)]
    skip_build: bool,
    /// databases of the fleet run (default 1000; 0 skips it)
    #[arg(long, value_name = "n")]
    fleet: Option<usize>,
}

fn main() -> std::process::ExitCode {
    match Bench::parse().run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

impl Bench {
    fn run(self) -> anyhow::Result<()> {
        let runs = usize::from(self.runs.unwrap_or(3));
        let project = workspace_root();
        let sizes: Vec<usize> = match &self.sizes {
            None => vec![1, 50, 200],
            Some(s) => s
                .split(',')
                .map(|x| {
                    x.trim()
                        .parse::<usize>()
                        .ok()
                        .filter(|n| (1..=2000).contains(n))
                })
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| usage!("--sizes takes numbers from 1 to 2000, like 1,50,200"))?,
        };
        let manifest = project.join("Cargo.toml");
        if !manifest.is_file() {
            return Err(usage!(
                "bench runs from the xtask's own workspace (no Cargo.toml in {})",
                project.display()
            ));
        }
        let root = project.join("target").join("bench");
        std::fs::create_dir_all(&root)?;
        // The workspace's own wrangler and Node, installed by `cargo xtask setup` if missing.
        let path_dir = project.join("node_modules").join(".bin");
        let program = path_dir.join("wrangler");
        if !program.is_file() {
            let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
                .args(["run", "-q", "--manifest-path"])
                .arg(&manifest)
                .args(["-p", "xtask", "--", "setup"])
                .status()?;
            if !status.success() || !program.is_file() {
                return Err(failed!(
                    "bench: `cargo xtask setup` did not install wrangler"
                ));
            }
        }
        let wrapper = root.join("wrangler-counting");
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\necho \"$*\" >> \"$XTASK_BENCH_LOG\"\nexec '{}' \"$@\"\n",
                program.display()
            ),
        )?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755))?;
        }
        let bench = Runner {
            log: root.join("wrangler-calls.log"),
            root,
            manifest,
            wrangler: program,
            node_bin: path_dir,
            wrapper,
        };
        // Warm: the xtask is built, wrangler's files are in the page cache.
        let warm = bench.workspace("warm", 1)?;
        bench.ours(&warm, &["db-status"])?;
        bench.raw(&warm, &["d1", "migrations", "list", "DB", "--local"])?;

        let mut rows = Vec::new();
        for &n in &sizes {
            say(format!("bench: {n} migrations, {runs} run(s) each"));
            let status_ws = bench.workspace(&format!("status-{n}"), n)?;
            let mut ours_t = Vec::new();
            let mut ours_calls = 0;
            let mut raw_t = Vec::new();
            for _ in 0..runs {
                let (t, c) = bench.ours(&status_ws, &["db-status"])?;
                ours_t.push(t);
                ours_calls = c;
                raw_t.push(bench.raw(&status_ws, &["d1", "migrations", "list", "DB", "--local"])?);
            }
            rows.push((
                "db-status",
                n,
                median(ours_t),
                ours_calls,
                median(raw_t),
                "wrangler d1 migrations list --local",
            ));

            let mut ours_t = Vec::new();
            let mut raw_t = Vec::new();
            for r in 0..runs {
                let ws = bench.workspace(&format!("migrate-ours-{n}-{r}"), n)?;
                let (t, c) = bench.ours(&ws, &["db-migrate"])?;
                ours_t.push(t);
                ours_calls = c;
                let ws = bench.workspace(&format!("migrate-raw-{n}-{r}"), n)?;
                raw_t.push(bench.raw(&ws, &["d1", "migrations", "apply", "DB", "--local"])?);
            }
            rows.push((
                "db-migrate",
                n,
                median(ours_t),
                ours_calls,
                median(raw_t),
                "wrangler d1 migrations apply --local",
            ));
        }

        let test_loop = bench.test_loop(&project, runs)?;

        let megabytes: Vec<usize> = match &self.megabytes {
            None => vec![1, 10, 100],
            Some(s) => s
                .split(',')
                .map(|x| x.trim().parse::<usize>().ok().filter(|n| *n <= 2000))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| usage!("--megabytes takes numbers from 0 to 2000, like 1,10,100"))?
                .into_iter()
                .filter(|n| *n > 0)
                .collect(),
        };
        let sweep = if megabytes.is_empty() {
            Vec::new()
        } else {
            sweep::sweep(
                &bench.root,
                &bench.manifest,
                &bench.wrangler,
                &bench.path_env(),
                &megabytes,
                runs,
            )?
        };

        let fleet_n = self.fleet.unwrap_or(1000);
        let fleet = if fleet_n > 0 {
            Some(sweep::fleet(
                &bench.root,
                &bench.manifest,
                &bench.wrangler,
                &bench.path_env(),
                fleet_n,
                5,
            )?)
        } else {
            None
        };

        print(format!("\n{}\n", machine()));
        print("| command | migrations | xtask (s) | xtask wrangler processes | raw wrangler (s) | raw command | raw / xtask |");
        print("|---|---:|---:|---:|---:|---|---:|");
        for (cmd, n, ours, calls, raw, raw_cmd) in &rows {
            print(format!(
                "| `cargo xtask {cmd}` | {n} | {} | {calls} | {} | `{raw_cmd}` (1 process) | {:.1}x |",
                secs(*ours),
                secs(*raw),
                raw.as_secs_f64() / ours.as_secs_f64().max(1e-9)
            ));
        }

        print(format!(
            "\nThe test loop on the sample project ({} migrations, {} seed files), from a seeded database; \
             the hand-written workflow is `wrangler d1 execute --file reset.sql` (the same drops), \
             `wrangler d1 migrations apply`, then one `wrangler d1 execute --file` per seed file:\n",
            test_loop.migrations, test_loop.seeds
        ));
        print("| step | xtask (s) | xtask wrangler processes | hand-written (s) | hand-written processes | hand / xtask |");
        print("|---|---:|---:|---:|---:|---:|");
        for row in &test_loop.rows {
            print(format!(
                "| {} | {} | {} | {} | {} | {:.1}x |",
                row.step,
                secs(row.ours),
                row.ours_calls,
                secs(row.hand),
                row.hand_calls,
                row.hand.as_secs_f64() / row.ours.as_secs_f64().max(1e-9)
            ));
        }
        print(format!(
            "\none database per test (`d1_xtask::testing`: a copy of the seeded template, connected with D1's rules): {:.2} ms (median of 100)",
            test_loop.per_test_copy.as_secs_f64() * 1000.0
        ));

        if !sweep.is_empty() {
            print(sweep::table(&sweep, runs));
        }
        if let Some(f) = &fleet {
            print(sweep::fleet_table(f));
        }

        // `db-status` over 10,000 files: lint, SHA-256 of each, the plan (and cargo's start-up).
        let lint_ws = bench.workspace("lint-10000", 0)?;
        let lint_dir = lint_ws.join("migrations");
        for i in 1..=10_000 {
            std::fs::write(
                lint_dir.join(format!("{i:05}_m_{i}.sql")),
                format!("-- migration {i}\nCREATE TABLE t_{i} (id INTEGER PRIMARY KEY, v TEXT NOT NULL DEFAULT 'a;b');\nCREATE INDEX i_{i} ON t_{i}(v);\n"),
            )?;
        }
        let mut lint_t = Vec::new();
        for _ in 0..runs {
            let started = Instant::now();
            let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
                .args(["run", "-q", "--manifest-path"])
                .arg(&bench.manifest)
                .args(["-p", "xtask", "--", "db-status", "--json"])
                .current_dir(&lint_ws)
                .env("WRANGLER", &bench.wrapper)
                .env("XTASK_BENCH_LOG", &bench.log)
                .env("PATH", bench.path_env())
                .output()?;
            lint_t.push(started.elapsed());
            let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
                .map_err(|e| failed!("bench: db-status --json printed no JSON ({e})"))?;
            let pending = doc["pending"].as_array().map_or(0, Vec::len);
            if pending != 10_000 {
                return Err(failed!(
                    "bench: db-status saw {pending} of 10000 files pending"
                ));
            }
        }
        print(format!(
            "\n`cargo xtask db-status` over 10,000 migration files (lint + SHA-256 + plan, no database yet): {} s (median of {runs})",
            secs(median(lint_t))
        ));

        // `cargo xtask --help`, built.
        let mut help_t = Vec::new();
        for _ in 0..runs {
            let started = Instant::now();
            let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
                .args(["run", "-q", "--manifest-path"])
                .arg(&bench.manifest)
                .args(["-p", "xtask", "--", "--help"])
                .output()?;
            help_t.push(started.elapsed());
            if !out.status.success() {
                return Err(failed!("bench: cargo xtask --help failed"));
            }
        }
        print(format!(
            "`cargo xtask --help` (built): {} s (median of {runs})",
            secs(median(help_t))
        ));

        // One wrangler process: npm's launcher (`bin/wrangler.js`, which starts a second
        // Node on the bundle) against the bundle started directly, as the xtask does.
        let bundle = project.join("node_modules/wrangler/wrangler-dist/cli.js");
        let node = bench.node_bin.join("node");
        if bundle.is_file() && node.is_file() {
            let n = runs.max(10);
            // CPU seconds (user + system) of the children, from /proc (Linux): Node uses
            // helper threads, so wall time says less than CPU time about what a process costs.
            let children_cpu = || -> Option<f64> {
                let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
                let after = stat.rsplit_once(')')?.1;
                let f: Vec<&str> = after.split_whitespace().collect();
                // Fields 16 and 17 of the whole line: cutime, cstime (in clock ticks, 100 a second).
                let ticks = f.get(13)?.parse::<f64>().ok()? + f.get(14)?.parse::<f64>().ok()?;
                Some(ticks / 100.0)
            };
            let mut launcher = (Vec::new(), 0.0);
            let mut direct_run = (Vec::new(), 0.0);
            for _ in 0..n {
                for direct in [false, true] {
                    let mut cmd = if direct {
                        let mut c = Command::new(&node);
                        c.arg("--no-warnings").arg(&bundle);
                        c
                    } else {
                        Command::new(&bench.wrangler)
                    };
                    cmd.arg("--version")
                        .env("PATH", path_with(&bench.node_bin))
                        .env("WRANGLER_SEND_METRICS", "false")
                        .env(
                            "NODE_COMPILE_CACHE",
                            std::env::temp_dir().join("d1-xtask-node-compile-cache"),
                        );
                    let cpu_before = children_cpu().unwrap_or(0.0);
                    let started = Instant::now();
                    let out = cmd.output()?;
                    let took = started.elapsed();
                    let cpu = children_cpu().unwrap_or(0.0) - cpu_before;
                    if !out.status.success() {
                        return Err(failed!("bench: wrangler --version failed"));
                    }
                    let slot = if direct {
                        &mut direct_run
                    } else {
                        &mut launcher
                    };
                    slot.0.push(took);
                    slot.1 += cpu;
                }
            }
            let (lw, dw) = (median(launcher.0), median(direct_run.0));
            let (lc, dc) = (launcher.1 / n as f64, direct_run.1 / n as f64);
            print(format!(
                "one wrangler process (`wrangler --version`, Node's compile cache warm), {n} of each, alternating: \
                 npm's launcher {} s wall (median), {lc:.3} s CPU (mean); the bundle started directly (the xtask's way) \
                 {} s wall, {dc:.3} s CPU: {:.0} ms of CPU less a process",
                secs(lw),
                secs(dw),
                (lc - dc) * 1000.0
            ));
        }

        if !self.skip_build {
            let target = bench.root.join("cold-target");
            let _ = std::fs::remove_dir_all(&target);
            let started = Instant::now();
            let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
                .args(["build", "-q", "-p", "d1-xtask", "--manifest-path"])
                .arg(&bench.manifest)
                .arg("--target-dir")
                .arg(&target)
                .output()?;
            let took = started.elapsed();
            let _ = std::fs::remove_dir_all(&target);
            if !out.status.success() {
                return Err(failed!(
                    "bench: cold build failed:\n{}",
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            print(format!("cold `cargo build -p d1-xtask` (empty target directory, crates already downloaded): {} s", secs(took)));
        }
        Ok(())
    }
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines().next().map(|l| {
                l.split_whitespace()
                    .nth(1)
                    .unwrap_or("0")
                    .parse::<u64>()
                    .unwrap_or(0)
                    / 1024
                    / 1024
            })
        })
        .unwrap_or(0);
    format!(
        "machine: {cores} cores ({cpu}), {mem} GiB memory, {}",
        std::env::consts::OS
    )
}
