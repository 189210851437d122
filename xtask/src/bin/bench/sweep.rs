//! `cargo xtask-bench`'s size sweep: remote `db-backup` and `db-restore --backup` of one
//! database at several sizes against raw `wrangler d1 export` and `wrangler d1 execute
//! --file` of the same database, all through the real wrangler talking to `d1-emulator`
//! (started here from the workspace, on a free port). Figures, not assertions.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::anyhow as failed;

use crate::say;

const TOKEN: &str = "bench-sweep-token";
const ACCOUNT: &str = "0123456789abcdef0123456789abcdef";

const CONFIG: &str = r#"{
  "name": "sweep",
  "d1_databases": [{ "binding": "DB", "database_name": "sweep-local", "database_id": "00000000-0000-0000-0000-0000000000a1" }],
  "env": {
    "staging": { "d1_databases": [{ "binding": "DB", "database_name": "sweep-staging", "database_id": "00000000-0000-0000-0000-0000000000a2" }] },
    "scratch": { "d1_databases": [{ "binding": "DB", "database_name": "sweep-scratch", "database_id": "00000000-0000-0000-0000-0000000000a3" }] }
  }
}
"#;

const TABLE: &str = "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, body TEXT NOT NULL, n INTEGER NOT NULL);\n";

/// Bytes of SQL per row the generator writes (about).
const ROW_BYTES: usize = 200;

/// One size's figures.
pub(crate) struct SweepRow {
    pub(crate) megabytes: usize,
    pub(crate) rows: usize,
    pub(crate) export_bytes: u64,
    pub(crate) raw_export: Duration,
    pub(crate) backup: Duration,
    pub(crate) raw_import: Duration,
    pub(crate) restore: Duration,
}

/// The emulator, stopped when dropped.
struct Served {
    child: Child,
    url: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(manifest: &Path, data: &Path, config: &Path, extra: &[&str]) -> anyhow::Result<Served> {
    let mut child = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["run", "-q", "-p", "d1-emulator", "--manifest-path"])
        .arg(manifest)
        .args(["--", "--port", "0", "--token", TOKEN, "--data"])
        .arg(data)
        .arg("--from-config")
        .arg(config)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let mut line = String::new();
    let out = child.stdout.take().expect("piped");
    BufReader::new(out).read_line(&mut line)?;
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .ok_or_else(|| failed!("bench: d1-emulator did not start: {line}"))?
        .to_string();
    Ok(Served { child, url })
}

/// Writes `rows` rows of about `ROW_BYTES` each as multi-row INSERTs (100 rows, about
/// 20 kB a statement: under D1's 100 kB statement limit).
fn write_rows(path: &Path, rows: usize) -> anyhow::Result<()> {
    let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
    let filler = "x".repeat(ROW_BYTES - 60);
    let mut id = 1;
    while id <= rows {
        let end = (id + 99).min(rows);
        let values: Vec<String> = (id..=end)
            .map(|i| format!("({i},'item {i}','{filler} {i}',{})", i * 7))
            .collect();
        writeln!(
            w,
            "INSERT INTO items (id, name, body, n) VALUES {};",
            values.join(",")
        )?;
        id = end + 1;
    }
    w.flush()?;
    Ok(())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The sweep: for each size, a fresh emulator and workspace, the database filled, then
/// `runs` runs of each of the four commands.
pub(crate) fn sweep(
    root: &Path,
    manifest: &Path,
    wrangler: &Path,
    path_env: &std::ffi::OsString,
    megabytes: &[usize],
    runs: usize,
) -> anyhow::Result<Vec<SweepRow>> {
    let mut out = Vec::new();
    for &mb in megabytes {
        say(format!("bench: size sweep, {mb} MB, {runs} run(s) each"));
        let dir = root.join(format!("sweep-{mb}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("migrations"))?;
        std::fs::write(dir.join("wrangler.jsonc"), CONFIG)?;
        std::fs::write(dir.join("migrations/0001_items.sql"), TABLE)?;
        let served = serve(
            manifest,
            &dir.join("emulator-data"),
            &dir.join("wrangler.jsonc"),
            &[],
        )?;
        let env: Vec<(&str, &str)> = vec![
            ("CLOUDFLARE_API_BASE_URL", served.url.as_str()),
            ("CLOUDFLARE_API_TOKEN", TOKEN),
            ("CLOUDFLARE_ACCOUNT_ID", ACCOUNT),
            ("WRANGLER_SEND_METRICS", "false"),
            ("WRANGLER_HIDE_BANNER", "true"),
            ("CI", "true"),
        ];
        let run =
            |program: &Path, args: &[&str], pre: &[&str]| -> anyhow::Result<(Duration, String)> {
                let started = std::time::Instant::now();
                let o = Command::new(program)
                    .args(pre)
                    .args(args)
                    .current_dir(&dir)
                    .env("PATH", path_env)
                    .env("WRANGLER", wrangler)
                    .envs(env.iter().copied())
                    .stdin(Stdio::null())
                    .output()?;
                let took = started.elapsed();
                if !o.status.success() {
                    return Err(failed!(
                        "bench: {} {args:?} failed:\n{}",
                        program.display(),
                        String::from_utf8_lossy(&o.stderr)
                    ));
                }
                Ok((took, String::from_utf8_lossy(&o.stdout).into_owned()))
            };
        let cargo = PathBuf::from(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        let manifest_s = manifest.display().to_string();
        let xtask_pre = [
            "run",
            "-q",
            "--manifest-path",
            &manifest_s,
            "-p",
            "xtask",
            "--",
        ];
        let ours = |args: &[&str]| run(&cargo, args, &xtask_pre);
        let raw = |args: &[&str]| run(wrangler, args, &[]);

        ours(&["db-migrate", "--env", "staging", "--no-backup"])?;
        let rows = mb * 1_000_000 / ROW_BYTES;
        let fill = dir.join("rows.sql");
        write_rows(&fill, rows)?;
        raw(&[
            "d1",
            "execute",
            "DB",
            "--env",
            "staging",
            "--remote",
            "--file",
            &fill.display().to_string(),
            "--yes",
        ])?;
        let _ = std::fs::remove_file(&fill);

        let raw_file = dir.join("raw-export.sql");
        let mut raw_export = Vec::new();
        let mut backup = Vec::new();
        let mut raw_import = Vec::new();
        let mut restore = Vec::new();
        for i in 0..runs {
            let _ = std::fs::remove_file(&raw_file);
            raw_export.push(
                raw(&[
                    "d1",
                    "export",
                    "DB",
                    "--env",
                    "staging",
                    "--remote",
                    "--output",
                    &raw_file.display().to_string(),
                ])?
                .0,
            );
            let (t, stdout) = ours(&["db-backup", "--env", "staging", "--json"])?;
            backup.push(t);
            let doc: serde_json::Value = serde_json::from_str(&stdout)
                .map_err(|e| failed!("bench: db-backup --json printed no JSON ({e})"))?;
            let backup_id = doc["id"].as_str().unwrap_or_default().to_string();
            // The raw import goes into an emptied database of its own.
            raw(&[
                "d1", "execute", "DB", "--env", "scratch", "--remote", "--command",
                "DROP TABLE IF EXISTS items; DROP TABLE IF EXISTS d1_migrations; \
                 DROP TABLE IF EXISTS d1_migrations_checksums; DROP TABLE IF EXISTS d1_migrations_lock;",
            ])?;
            raw_import.push(
                raw(&[
                    "d1",
                    "execute",
                    "DB",
                    "--env",
                    "scratch",
                    "--remote",
                    "--file",
                    &raw_file.display().to_string(),
                    "--yes",
                ])?
                .0,
            );
            restore.push(
                ours(&[
                    "db-restore",
                    "--env",
                    "staging",
                    "--backup",
                    &backup_id,
                    "--yes",
                ])?
                .0,
            );
            say(format!("  run {} of {runs} done", i + 1));
        }
        let export_bytes = std::fs::metadata(&raw_file).map_or(0, |m| m.len());
        drop(served);
        let _ = std::fs::remove_dir_all(&dir);
        out.push(SweepRow {
            megabytes: mb,
            rows,
            export_bytes,
            raw_export: median(raw_export),
            backup: median(backup),
            raw_import: median(raw_import),
            restore: median(restore),
        });
    }
    Ok(out)
}

/// The sweep as a table.
pub(crate) fn table(rows: &[SweepRow], runs: usize) -> String {
    let mut s = format!(
        "\nsize sweep: remote, real wrangler against d1-emulator; median of {runs}; `cargo xtask` times include cargo's start-up\n\
         {:>5} {:>8} {:>10} | {:>10} {:>10} {:>6} | {:>10} {:>11} {:>6}\n",
        "MB", "rows", "export MB", "export s", "db-backup", "ratio", "import s", "db-restore", "ratio"
    );
    for r in rows {
        let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(1e-9);
        s.push_str(&format!(
            "{:>5} {:>8} {:>10.1} | {:>10.2} {:>10.2} {:>6.2} | {:>10.2} {:>11.2} {:>6.2}\n",
            r.megabytes,
            r.rows,
            r.export_bytes as f64 / 1e6,
            r.raw_export.as_secs_f64(),
            r.backup.as_secs_f64(),
            ratio(r.backup, r.raw_export),
            r.raw_import.as_secs_f64(),
            r.restore.as_secs_f64(),
            ratio(r.restore, r.raw_import),
        ));
    }
    s
}

/// The fleet run's figures.
pub(crate) struct FleetFigures {
    pub(crate) databases: usize,
    pub(crate) wall: Duration,
    pub(crate) requests: u64,
    pub(crate) xtask_processes: usize,
    pub(crate) raw_sample: usize,
    pub(crate) raw_per_db: Duration,
    pub(crate) raw_requests_per_db: f64,
}

/// `db-migrate --fleet` over `n` fresh databases (two migrations each) on the emulator,
/// against a loop of raw `wrangler d1 migrations apply --remote` over a sample of `sample`
/// other members.
pub(crate) fn fleet(
    root: &Path,
    manifest: &Path,
    wrangler: &Path,
    path_env: &std::ffi::OsString,
    n: usize,
    sample: usize,
) -> anyhow::Result<FleetFigures> {
    say(format!("bench: fleet of {n} databases, 2 migrations each"));
    let dir = root.join("fleet");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("migrations"))?;
    std::fs::write(dir.join("wrangler.jsonc"), CONFIG)?;
    std::fs::write(dir.join("migrations/0001_items.sql"), TABLE)?;
    std::fs::write(
        dir.join("migrations/0002_items_n.sql"),
        "CREATE INDEX items_n ON items (n);\n",
    )?;
    std::fs::write(
        dir.join("xtask.jsonc"),
        r#"{ "fleets": { "tenants": { "env": "staging", "databases": "tenant-*" } } }"#,
    )?;
    let total = n + sample;
    let served = serve(
        manifest,
        &dir.join("emulator-data"),
        &dir.join("wrangler.jsonc"),
        &["--fleet", &format!("tenant-:{total}")],
    )?;
    let env: Vec<(&str, &str)> = vec![
        ("CLOUDFLARE_API_BASE_URL", served.url.as_str()),
        ("CLOUDFLARE_API_TOKEN", TOKEN),
        ("CLOUDFLARE_ACCOUNT_ID", ACCOUNT),
        ("WRANGLER_SEND_METRICS", "false"),
        ("WRANGLER_HIDE_BANNER", "true"),
        ("CI", "true"),
    ];
    let log = dir.join("wrangler-calls.log");
    let counting = dir.join("counting-wrangler");
    std::fs::write(
        &counting,
        format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\nexec '{}' \"$@\"\n",
            log.display(),
            wrangler.display()
        ),
    )?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&counting, std::fs::Permissions::from_mode(0o755))?;
    }
    // The fleet: every member but the sample (whose names sort last).
    let width = total.to_string().len().max(4);
    let pattern_file = dir.join("tenants.txt");
    let names: Vec<String> = (1..=n).map(|i| format!("tenant-{i:0width$}")).collect();
    std::fs::write(&pattern_file, names.join("\n"))?;
    // The emulator has no rate limit: the run shows the xtask's own speed (its default pace,
    // 1,200 requests per 5 minutes, would make it the API's; see the estimate below).
    std::fs::write(
        dir.join("xtask.jsonc"),
        r#"{ "fleets": { "tenants": { "env": "staging", "databases_file": "tenants.txt" } },
             "api_requests_per_5_minutes": 100000 }"#,
    )?;
    let cargo = PathBuf::from(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    // Built first, so that the time is the run's, not cargo's.
    let built = Command::new(&cargo)
        .args(["build", "-q", "-p", "xtask", "--manifest-path"])
        .arg(manifest)
        .status()?;
    if !built.success() {
        return Err(failed!("bench: building the xtask failed"));
    }
    let xtask = manifest
        .parent()
        .expect("the manifest's folder")
        .join("target/debug/xtask");
    let started = std::time::Instant::now();
    let o = Command::new(&xtask)
        .args([
            "db-migrate",
            "--fleet",
            "tenants",
            "--parallel",
            "8",
            "--json",
        ])
        .current_dir(&dir)
        .env("PATH", path_env)
        .env("WRANGLER", &counting)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()?;
    let wall = started.elapsed();
    if !o.status.success() {
        return Err(failed!(
            "bench: db-migrate --fleet failed:\n{}",
            String::from_utf8_lossy(&o.stderr)
        ));
    }
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout)?;
    let xtask_processes = std::fs::read_to_string(&log)
        .map(|t| t.lines().count())
        .unwrap_or(0);
    // Raw wrangler over the sample: one `migrations apply --remote` a database, as a loop
    // over the tenants would run it, each entry with its id (found in the account's list).
    let mut entries: Vec<String> = Vec::new();
    for i in n + 1..=total {
        let name = format!("tenant-{i:0width$}");
        let body = http_get(
            &served.url,
            &format!("/client/v4/accounts/{ACCOUNT}/d1/database/{name}?fields=uuid,name"),
        )?;
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let uuid = v["result"]["uuid"]
            .as_str()
            .ok_or_else(|| failed!("bench: no id for {name}: {body}"))?
            .to_string();
        entries.push(format!(
            r#"{{ "binding": "T{i}", "database_name": "{name}", "database_id": "{uuid}", "migrations_dir": "migrations" }}"#
        ));
    }
    std::fs::write(
        dir.join("sample.jsonc"),
        format!(
            r#"{{ "name": "sample", "d1_databases": [ {} ] }}"#,
            entries.join(", ")
        ),
    )?;
    let before = requests_seen(&served.url)?;
    let started = std::time::Instant::now();
    for i in n + 1..=total {
        let o = Command::new(wrangler)
            .args([
                "d1",
                "migrations",
                "apply",
                &format!("T{i}"),
                "--remote",
                "--config",
                "sample.jsonc",
            ])
            .current_dir(&dir)
            .env("PATH", path_env)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .output()?;
        if !o.status.success() {
            return Err(failed!(
                "bench: raw wrangler d1 migrations apply failed:\n{}",
                String::from_utf8_lossy(&o.stderr)
            ));
        }
    }
    let raw = started.elapsed();
    let raw_requests = requests_seen(&served.url)? - before;
    Ok(FleetFigures {
        databases: n,
        wall,
        requests: doc["requests"].as_u64().unwrap_or(0),
        xtask_processes,
        raw_sample: sample,
        raw_per_db: raw / sample.max(1) as u32,
        raw_requests_per_db: raw_requests as f64 / sample.max(1) as f64,
    })
}

/// The body of `GET <path>` on the emulator at `url` (with the bench's token).
fn http_get(url: &str, path: &str) -> anyhow::Result<String> {
    let addr = url
        .trim_end_matches("/client/v4")
        .trim_start_matches("http://")
        .to_string();
    let mut stream = std::net::TcpStream::connect(&addr)?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
    )?;
    let mut all = String::new();
    std::io::Read::read_to_string(&mut stream, &mut all)?;
    Ok(all
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or("")
        .trim()
        .to_string())
}

/// How many API requests the emulator has seen (its admin log).
fn requests_seen(url: &str) -> anyhow::Result<usize> {
    let v: serde_json::Value =
        serde_json::from_str(&http_get(url, "/__admin/requests")?).unwrap_or_default();
    Ok(v.as_array().map_or(0, Vec::len))
}

pub(crate) fn fleet_table(f: &FleetFigures) -> String {
    let per_db = f.requests as f64 / f.databases.max(1) as f64;
    // The API's limit: 1,200 requests per 5 minutes per token.
    let at_limit = |requests_per_db: f64, dbs: f64| requests_per_db * dbs / (1200.0 / 300.0);
    let hours = |s: f64| s / 3600.0;
    format!(
        "\nfleet: {} databases on d1-emulator, 2 migrations each (fresh databases)\n\
         | | wall | API requests | requests a database | wrangler processes |\n\
         |---|---:|---:|---:|---:|\n\
         | `cargo xtask db-migrate --fleet tenants --parallel 8` (pace set to 100,000 requests per 5 minutes) | {:.1} s | {} | {:.2} | {} |\n\
         | raw `wrangler d1 migrations apply --remote`, a loop over {} databases, scaled to {} | {:.0} s ({:.2} s a database) | {:.0} | {:.2} | {} |\n\
         at the API's rate limit (1,200 requests per 5 minutes), 50,000 databases take {:.1} h with the xtask's requests \
         ({:.0} requests) and {:.1} h with raw wrangler's ({:.0} requests; plus its processes: {:.0} CPU-hours at about 1 s each)\n",
        f.databases,
        f.wall.as_secs_f64(),
        f.requests,
        per_db,
        f.xtask_processes,
        f.raw_sample,
        f.databases,
        f.raw_per_db.as_secs_f64() * f.databases as f64,
        f.raw_per_db.as_secs_f64(),
        f.raw_requests_per_db * f.databases as f64,
        f.raw_requests_per_db,
        f.databases,
        hours(at_limit(per_db, 50_000.0)),
        per_db * 50_000.0,
        hours(at_limit(f.raw_requests_per_db, 50_000.0)),
        f.raw_requests_per_db * 50_000.0,
        50_000.0 / 3600.0,
    )
}
