//! Finding, provisioning and running wrangler, and reading what it says.

pub(crate) mod proc;
pub(crate) mod worker;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::exit::{failed, usage};
use crate::ui;
use crate::workspace::project::Project;

/// wrangler 4 refuses to start on an older Node.
const MIN_NODE: (u64, u64) = (22, 12);

pub(crate) struct Wrangler {
    program: PathBuf,
    /// npm's wrangler, started without its launcher (see `direct_launch`): the Node to run
    /// and wrangler's bundle.
    direct: Option<(PathBuf, PathBuf)>,
    /// How long one wrangler process may run before it is stopped.
    timeout: std::time::Duration,
    /// `PATH` for wrangler's process: the folder of a project-installed Node first.
    path_env: Option<OsString>,
    /// How many wrangler processes this run started (reported in `--json`, checked in tests).
    pub(crate) calls: usize,
    /// Processes started after Ctrl-C: one is allowed, for the cleanup.
    calls_after_interrupt: usize,
}

/// wrangler, found on first use: a command that starts no wrangler process never looks
/// for it (nor installs it).
pub(crate) struct Lazy {
    project: Project,
    found: Option<Wrangler>,
}

impl Lazy {
    pub(crate) fn new(project: &Project) -> Lazy {
        Lazy {
            project: project.clone(),
            found: None,
        }
    }

    /// Uses `wrangler` (found already, for another workspace's database).
    pub(crate) fn with(project: &Project, wrangler: Wrangler) -> Lazy {
        Lazy {
            project: project.clone(),
            found: Some(wrangler),
        }
    }

    pub(crate) fn run(&mut self, args: &[String]) -> anyhow::Result<Run> {
        self.ready()?;
        self.found.as_mut().expect("found by ready").run(args)
    }

    /// `run`, with `env` added to wrangler's environment.
    pub(crate) fn run_with_env(
        &mut self,
        args: &[String],
        env: &[(&str, &std::ffi::OsStr)],
    ) -> anyhow::Result<Run> {
        self.ready()?;
        let w = self.found.as_mut().expect("found by ready");
        w.count_start(args)?;
        w.spawn_and_wait_with(args, env)
    }

    pub(crate) fn run_two(&mut self, a: &[String], b: &[String]) -> anyhow::Result<(Run, Run)> {
        self.ready()?;
        self.found.as_mut().expect("found by ready").run_two(a, b)
    }

    /// Finds wrangler now (and checks its Node), so that a missing one is found before
    /// anything is written.
    pub(crate) fn ready(&mut self) -> anyhow::Result<()> {
        if self.found.is_none() {
            self.found = Some(Wrangler::locate(&self.project)?);
        }
        Ok(())
    }

    /// `PATH` for the commands the xtask runs for the user, once wrangler is found.
    pub(crate) fn child_path(&self) -> Option<OsString> {
        self.found.as_ref().and_then(Wrangler::child_path)
    }

    /// wrangler processes started so far.
    pub(crate) fn calls(&self) -> usize {
        self.found.as_ref().map_or(0, |w| w.calls)
    }
}

/// What one wrangler process did.
pub(crate) struct Run {
    pub(crate) success: bool,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Run {
    /// wrangler's own words for why it failed, without colours, banners or log paths.
    pub(crate) fn error_text(&self) -> String {
        if let Some(text) = json_error(&self.stdout) {
            return text;
        }
        let clean = strip_ansi(&self.stderr);
        let mut lines: Vec<&str> = Vec::new();
        let mut in_error = false;
        for line in clean.lines() {
            if line.contains("[ERROR]") {
                in_error = true;
                lines.push(line.split("[ERROR]").nth(1).unwrap_or(line).trim());
                continue;
            }
            if in_error {
                let t = line.trim();
                if t.starts_with("If you think this is a bug") || t.starts_with("🪵") {
                    break;
                }
                if !t.is_empty() {
                    lines.push(t);
                }
            }
        }
        if lines.is_empty() {
            let tail: Vec<&str> = clean.lines().filter(|l| !l.trim().is_empty()).collect();
            let start = tail.len().saturating_sub(5);
            lines = tail[start..].to_vec();
        }
        ui::redact(&lines.join("\n"))
    }
}

/// `{"error": {"text": ..., "notes": [{"text": ...}]}}`, as `wrangler ... --json` reports failures.
fn json_error(stdout: &str) -> Option<String> {
    let start = stdout.find('{')?;
    let value: serde_json::Value = serde_json::from_str(stdout[start..].trim()).ok()?;
    let error = value.get("error")?;
    let mut text = error.get("text")?.as_str()?.to_string();
    for note in error
        .get("notes")
        .and_then(|n| n.as_array())
        .into_iter()
        .flatten()
    {
        if let Some(t) = note.get("text").and_then(|t| t.as_str()) {
            text.push_str("\n  ");
            text.push_str(t);
        }
    }
    Some(ui::redact(&text))
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

impl Wrangler {
    /// Finds wrangler: `WRANGLER`, then `node_modules/.bin/wrangler`, then `wrangler` on
    /// PATH; failing all three, runs `npm ci` once where a package-lock.json pins it.
    pub(crate) fn locate(project: &Project) -> anyhow::Result<Wrangler> {
        let timeout = crate::workspace::settings::Settings::load(&project.root)
            .map(|s| s.wrangler_timeout_secs)
            .unwrap_or(600);
        let mut w = Wrangler::find(project)?;
        w.timeout = std::time::Duration::from_secs(timeout);
        Ok(w)
    }

    fn find(project: &Project) -> anyhow::Result<Wrangler> {
        if let Some(program) = std::env::var_os("WRANGLER").filter(|v| !v.is_empty()) {
            let program = PathBuf::from(program);
            if !program.is_file() {
                return Err(usage!(
                    "WRANGLER is set to {}, which is not a file: unset it or point it at a wrangler executable",
                    program.display()
                ));
            }
            return Ok(Wrangler::new(program));
        }
        let local = local_bin(&project.root);
        if local.is_file() {
            return Wrangler::checked(local);
        }
        if let Ok(program) = which::which("wrangler") {
            return Wrangler::checked(program);
        }
        let lock = project.root.join("package-lock.json");
        if !lock.is_file() {
            return Err(usage!(
                "wrangler not found (WRANGLER unset, no {}, none on PATH) and no package-lock.json in {} \
                 to install it from: add wrangler to package.json and run `npm install`",
                local.display(),
                project.root.display()
            ));
        }
        provision(&project.root)?;
        if !local.is_file() {
            return Err(failed!(
                "`npm ci` finished but {} is still missing: check that package.json lists wrangler",
                local.display()
            ));
        }
        Wrangler::checked(local)
    }

    /// `PATH` for the commands the xtask runs for the user (`--verify`, `db-seed --`):
    /// wrangler's folder (where `npm ci` also puts the Node it runs on) before the
    /// caller's own, so that `wrangler` and `node` are the project's.
    pub(crate) fn child_path(&self) -> Option<OsString> {
        self.program.parent().map(path_with)
    }

    fn new(program: PathBuf) -> Wrangler {
        let path_env = program
            .parent()
            .filter(|dir| dir.join(node_exe()).is_file())
            .map(path_with);
        let direct = direct_launch(&program, path_env.is_some());
        Wrangler {
            program,
            direct,
            path_env,
            calls: 0,
            calls_after_interrupt: 0,
            timeout: std::time::Duration::from_secs(600),
        }
    }

    /// A wrangler found on disk, after making sure the Node it will run on is new enough.
    /// What names this wrangler (see `fingerprint_for`).
    pub(crate) fn fingerprint(&self) -> String {
        fingerprint(&self.program)
    }

    /// What names the wrangler `locate` would find, without starting anything (no Node
    /// check, no install): `None` when there is none yet.
    pub(crate) fn fingerprint_for(project: &Project) -> Option<String> {
        let program = std::env::var_os("WRANGLER")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| Some(local_bin(&project.root)).filter(|p| p.is_file()))
            .or_else(|| which::which("wrangler").ok())?;
        program.is_file().then(|| fingerprint(&program))
    }

    fn checked(program: PathBuf) -> anyhow::Result<Wrangler> {
        let w = Wrangler::new(program);
        w.check_node()?;
        Ok(w)
    }

    fn check_node(&self) -> anyhow::Result<()> {
        let mut cmd = std::process::Command::new("node");
        cmd.arg("--version").stdin(std::process::Stdio::null());
        if let Some(path) = &self.path_env {
            cmd.env("PATH", path);
            // Command looks a bare program up in the parent's PATH: name the node to run.
            if let Some(dir) = self
                .program
                .parent()
                .filter(|d| d.join(node_exe()).is_file())
            {
                cmd = std::process::Command::new(dir.join(node_exe()));
                cmd.arg("--version")
                    .env("PATH", path)
                    .stdin(std::process::Stdio::null());
            }
        }
        let version = crate::wrangler::proc::run_captured(&mut cmd, Some(std::time::Duration::from_secs(60)))
            .ok()
            .filter(|o| matches!(o.ended, crate::wrangler::proc::Ended::Exited(s) if s.success()))
            .map(|o| o.stdout)
            .ok_or_else(|| {
            usage!(
                "wrangler at {} needs Node.js >= {}.{}, and no `node` runs here: run `npm ci` \
                 in the workspace (package.json installs Node 22 beside wrangler) or install Node 22",
                self.program.display(),
                MIN_NODE.0,
                MIN_NODE.1
            )
        })?;
        match parse_node_version(&version) {
            Some(v) if v >= MIN_NODE => Ok(()),
            _ => Err(usage!(
                "wrangler needs Node.js >= {}.{}, but the `node` it would run on is {}: run `npm ci` \
                 in the workspace so that node_modules/.bin/node (Node 22, pinned in package.json) is \
                 used, or install Node 22",
                MIN_NODE.0,
                MIN_NODE.1,
                version.trim()
            )),
        }
    }

    /// Runs `wrangler <args>`, echoing the command first. Never prompts: stdin is empty,
    /// so wrangler takes it as a script (and the xtask's own guards did the asking). It
    /// runs in a process group of its own, stopped whole at the timeout or on Ctrl-C.
    pub(crate) fn run(&mut self, args: &[String]) -> anyhow::Result<Run> {
        self.count_start(args)?;
        self.spawn_and_wait(args)
    }

    /// Runs two wrangler processes at once (each in its own group, both stopped at the
    /// timeout or on Ctrl-C) and returns both results, in order.
    pub(crate) fn run_two(&mut self, a: &[String], b: &[String]) -> anyhow::Result<(Run, Run)> {
        self.count_start(a)?;
        self.count_start(b)?;
        let this = &*self;
        std::thread::scope(|s| {
            let first = s.spawn(|| this.spawn_and_wait(a));
            let second = this.spawn_and_wait(b);
            let first = first
                .join()
                .unwrap_or_else(|_| Err(failed!("a wrangler process could not be awaited")));
            Ok((first?, second?))
        })
    }

    /// Echoes the command and counts it; after Ctrl-C, only one more process may start
    /// (the cleanup: releasing the lock).
    fn count_start(&mut self, args: &[String]) -> anyhow::Result<()> {
        ui::say(format!("$ {}", display_command(args)));
        if crate::wrangler::proc::interrupted() && self.calls_after_interrupt > 0 {
            return Err(failed!("interrupted: wrangler was not started"));
        }
        if crate::wrangler::proc::interrupted() {
            self.calls_after_interrupt += 1;
        }
        self.calls += 1;
        Ok(())
    }

    fn spawn_and_wait(&self, args: &[String]) -> anyhow::Result<Run> {
        self.spawn_and_wait_with(args, &[])
    }

    fn spawn_and_wait_with(
        &self,
        args: &[String],
        env: &[(&str, &std::ffi::OsStr)],
    ) -> anyhow::Result<Run> {
        let mut cmd = match &self.direct {
            Some((node, bundle)) => {
                let mut cmd = std::process::Command::new(node);
                // What npm's launcher passes (it hides Node's experimental warnings).
                cmd.arg("--no-warnings").arg(bundle);
                cmd
            }
            None => std::process::Command::new(&self.program),
        };
        cmd.args(args)
            .env("WRANGLER_SEND_METRICS", "false")
            .env("WRANGLER_HIDE_BANNER", "true")
            .env("NO_COLOR", "1")
            .env("FORCE_COLOR", "0")
            // wrangler's debug logging (`WRANGLER_LOG=debug` in the caller's shell) goes to
            // stdout, between the JSON the xtask reads: its own level is kept at `log`.
            .env("WRANGLER_LOG", "log");
        if let Some(path) = &self.path_env {
            cmd.env("PATH", path);
        }
        if let Some(dir) = compile_cache() {
            cmd.env("NODE_COMPILE_CACHE", dir);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = crate::wrangler::proc::run_captured(&mut cmd, Some(self.timeout))
            .map_err(|e| failed!("could not start wrangler ({}): {e}", self.program.display()))?;
        let mut stderr = out.stderr;
        let success = match out.ended {
            crate::wrangler::proc::Ended::Exited(status) => status.success(),
            crate::wrangler::proc::Ended::TimedOut => {
                stderr.push_str(&format!(
                    "\n✘ [ERROR] wrangler did not answer within {} s and was stopped with all its \
                     processes (timeout; `wrangler_timeout_secs` in xtask.jsonc)\n",
                    self.timeout.as_secs()
                ));
                false
            }
            crate::wrangler::proc::Ended::Interrupted => {
                stderr.push_str(
                    "\n✘ [ERROR] interrupted (Ctrl-C or SIGTERM): wrangler was stopped with all its processes\n",
                );
                false
            }
        };
        Ok(Run {
            success,
            stdout: out.stdout,
            stderr,
        })
    }
}

/// The caller's `PATH` with `dir` in front.
pub(crate) fn path_with(dir: &Path) -> OsString {
    let mut paths = vec![dir.to_path_buf()];
    if let Some(old) = std::env::var_os("PATH") {
        paths.extend(std::env::split_paths(&old));
    }
    std::env::join_paths(paths).unwrap_or_default()
}

/// `--command <sql> --json`, safe from wrangler's argument parser: a value that starts
/// with `-` (SQL opening with a `-- comment`) is taken by yargs for options ("You must
/// provide either --command or --file", or "Unknown arguments"), so such SQL gets a
/// leading newline, which SQL ignores.
pub(crate) fn json_command_args(sql: &str) -> [String; 3] {
    let value = if sql.starts_with('-') {
        format!("\n{sql}")
    } else {
        sql.to_string()
    };
    ["--command".into(), value, "--json".into()]
}

/// How a wrangler command is shown: `wrangler d1 ...`, each argument quoted if it needs
/// it. SQL passed inline (several lines, or long) is summarised, not printed whole.
pub(crate) fn display_command(args: &[String]) -> String {
    let mut out = String::from("wrangler");
    for arg in args {
        out.push(' ');
        if arg.contains('\n') || arg.len() > 200 {
            out.push_str(&format!("'<SQL, {} bytes>'", arg.len()));
        } else if !arg.is_empty()
            && arg
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_./=:@,+".contains(&b))
        {
            out.push_str(arg);
        } else {
            out.push('\'');
            out.push_str(&arg.replace('\'', "'\\''"));
            out.push('\'');
        }
    }
    ui::redact(&out)
}

/// npm installs wrangler as `bin/wrangler.js`, a launcher that checks Node's version and
/// starts a second Node process on `wrangler-dist/cli.js`, the real bundle. The xtask has
/// checked Node itself (`check_node`) and stops whole process groups, so it starts the
/// bundle directly: one Node process a call instead of two (about 40 ms of CPU and 70 ms
/// of wall time less a call, `cargo xtask-bench`, docs/performance.md). Anything else (a wrapper script, a global
/// install laid out otherwise, Windows' `.cmd`) runs as it is.
fn direct_launch(program: &Path, node_beside: bool) -> Option<(PathBuf, PathBuf)> {
    let real = std::fs::canonicalize(program).ok()?;
    if real.file_name()? != "wrangler.js" || real.parent()?.file_name()? != "bin" {
        return None;
    }
    let bundle = real
        .parent()?
        .parent()?
        .join("wrangler-dist")
        .join("cli.js");
    if !bundle.is_file() {
        return None;
    }
    let node = if node_beside {
        program.parent()?.join(node_exe())
    } else {
        // What the launcher's `#!/usr/bin/env node` would find.
        which::which(node_exe()).ok()?
    };
    Some((node, bundle))
}

fn node_exe() -> &'static str {
    if cfg!(windows) {
        "node.exe"
    } else {
        "node"
    }
}

fn local_bin(root: &Path) -> PathBuf {
    let name = if cfg!(windows) {
        "wrangler.cmd"
    } else {
        "wrangler"
    };
    root.join("node_modules").join(".bin").join(name)
}

/// `npm ci` in the workspace: installs the wrangler and Node that package-lock.json pins.
pub(crate) fn provision(root: &Path) -> anyhow::Result<()> {
    let npm = which::which("npm").map_err(|_| {
        usage!(
            "wrangler is not installed and npm is not on PATH: install Node.js (20 or newer) with npm, \
             then run `cargo xtask setup` (or `npm ci`) in {}",
            root.display()
        )
    })?;
    ui::say(format!(
        "wrangler is not installed: running `npm ci` in {} (once) to install the wrangler and Node pinned in package-lock.json",
        root.display()
    ));
    // npm's warnings here do not concern the user: EBADENGINE compares wrangler's engine
    // field with the system Node, which the xtask never runs wrangler on (it uses the Node
    // 22 that this install puts in node_modules), and skipped install scripts are not
    // needed by `wrangler d1`. Errors are still printed.
    let mut cmd = std::process::Command::new(npm);
    cmd.args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(root);
    let out =
        crate::wrangler::proc::run_captured(&mut cmd, Some(std::time::Duration::from_secs(1800)))
            .map_err(|e| failed!("could not run npm: {e}"))?;
    match out.ended {
        crate::wrangler::proc::Ended::Exited(status) if status.success() => {
            ui::say("npm ci done (its warnings about the system Node are muted: wrangler runs on the Node 22 it installed)");
            Ok(())
        }
        ended => Err(failed!(
            "`npm ci` in {} failed ({ended:?}): the registry must be reachable; npm said:\n{}{}",
            root.display(),
            ui::redact(out.stdout.trim()),
            ui::redact(out.stderr.trim())
        )),
    }
}

/// `v22.12.0` -> (22, 12).
fn parse_node_version(s: &str) -> Option<(u64, u64)> {
    let mut parts = s.trim().trim_start_matches('v').split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// `wrangler@<version>` from the package.json of the install `program` belongs to, else
/// its path, size and modification time (a wrapper script, a global install without one).
fn fingerprint(program: &Path) -> String {
    let real = std::fs::canonicalize(program).unwrap_or_else(|_| program.to_path_buf());
    for dir in real.ancestors().skip(1).take(4) {
        let Ok(text) = std::fs::read_to_string(dir.join("package.json")) else {
            continue;
        };
        let Ok(json) = serde_json::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        if json["name"] == "wrangler" {
            if let Some(v) = json["version"].as_str() {
                return format!("wrangler@{v}");
            }
        }
    }
    let meta = std::fs::metadata(&real).ok();
    let modified = meta
        .as_ref()
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    format!(
        "{} {} {modified}",
        real.display(),
        meta.map_or(0, |m| m.len())
    )
}

/// Where Node keeps the compiled code of wrangler's bundle between processes (Node 22's
/// module compile cache): every wrangler process after the first starts faster. Shared by
/// every workspace on the machine (Node keys entries by the code's content); `None` when
/// the user set `NODE_COMPILE_CACHE` (theirs is used) or `NODE_DISABLE_COMPILE_CACHE`.
fn compile_cache() -> Option<PathBuf> {
    if std::env::var_os("NODE_COMPILE_CACHE").is_some()
        || std::env::var_os("NODE_DISABLE_COMPILE_CACHE").is_some()
    {
        return None;
    }
    Some(std::env::temp_dir().join("d1-xtask-node-compile-cache"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn npm_s_wrangler_starts_its_bundle_directly_and_anything_else_as_it_is() {
        let dir = crate::testutil::TempDir::new("direct-launch");
        let nm = dir.path().join("node_modules");
        std::fs::create_dir_all(nm.join("wrangler/bin")).unwrap();
        std::fs::create_dir_all(nm.join("wrangler/wrangler-dist")).unwrap();
        std::fs::create_dir_all(nm.join(".bin")).unwrap();
        std::fs::write(nm.join("wrangler/bin/wrangler.js"), "").unwrap();
        std::fs::write(nm.join("wrangler/wrangler-dist/cli.js"), "").unwrap();
        std::fs::write(nm.join(".bin/node"), "").unwrap();
        std::os::unix::fs::symlink("../wrangler/bin/wrangler.js", nm.join(".bin/wrangler"))
            .unwrap();
        let (node, bundle) = direct_launch(&nm.join(".bin/wrangler"), true).unwrap();
        assert_eq!(node, nm.join(".bin/node"));
        assert_eq!(
            bundle,
            std::fs::canonicalize(nm.join("wrangler/wrangler-dist/cli.js")).unwrap()
        );
        // A wrapper script (a fault injector, a counter) runs as it is.
        std::fs::write(dir.path().join("fake-wrangler"), "#!/bin/sh\n").unwrap();
        assert_eq!(direct_launch(&dir.path().join("fake-wrangler"), true), None);
        // So does an install without its bundle.
        std::fs::remove_file(nm.join("wrangler/wrangler-dist/cli.js")).unwrap();
        assert_eq!(direct_launch(&nm.join(".bin/wrangler"), true), None);
    }

    #[test]
    fn sql_opening_with_a_comment_is_not_taken_for_options() {
        // `--command '-- c\nSELECT 1'` makes wrangler 4.164 answer "You must provide
        // either --command or --file"; with a leading newline it runs.
        assert_eq!(json_command_args("-- c\nSELECT 1")[1], "\n-- c\nSELECT 1");
        assert_eq!(
            json_command_args("SELECT 1"),
            ["--command", "SELECT 1", "--json"]
        );
    }

    #[test]
    fn node_versions() {
        assert_eq!(parse_node_version("v22.23.3\n"), Some((22, 23)));
        assert!(parse_node_version("v20.20.2").unwrap() < MIN_NODE);
        assert!(parse_node_version("v22.12.0").unwrap() >= MIN_NODE);
        assert_eq!(parse_node_version("garbage"), None);
    }

    #[test]
    fn commands_are_shown_quoted() {
        let args: Vec<String> = ["d1", "execute", "DB", "--command", "SELECT 1; SELECT 'x'"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            display_command(&args),
            "wrangler d1 execute DB --command 'SELECT 1; SELECT '\\''x'\\'''"
        );
        let long = vec!["--command".to_string(), "SELECT 1;\nSELECT 2;".to_string()];
        assert_eq!(
            display_command(&long),
            "wrangler --command '<SQL, 19 bytes>'"
        );
    }

    #[test]
    fn error_text_from_json_and_from_stderr() {
        let run = Run {
            success: false,
            stdout: "\n{\"error\": {\"text\": \"no such table: main.nosuch: SQLITE_ERROR\"}}"
                .into(),
            stderr: String::new(),
        };
        assert_eq!(run.error_text(), "no such table: main.nosuch: SQLITE_ERROR");
        let run = Run {
            success: false,
            stdout: String::new(),
            stderr: "\u{1b}[31m✘ \u{1b}[41;31m[\u{1b}[41;97mERROR\u{1b}[41;31m]\u{1b}[0m \u{1b}[1mA request failed.\u{1b}[0m\n\n  bad thing [code: 7500]\n\n  If you think this is a bug, please open an issue\n".into(),
        };
        assert_eq!(
            run.error_text(),
            "A request failed.\nbad thing [code: 7500]"
        );
    }
}
