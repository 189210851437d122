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

fn serve(manifest: &Path, data: &Path, config: &Path) -> anyhow::Result<Served> {
    let mut child = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["run", "-q", "-p", "d1-emulator", "--manifest-path"])
        .arg(manifest)
        .args(["--", "--port", "0", "--token", TOKEN, "--data"])
        .arg(data)
        .arg("--from-config")
        .arg(config)
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
