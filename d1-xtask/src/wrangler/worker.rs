//! The Worker of an environment, through wrangler: which version is live
//! (`deployments list --json`), deploying (`deploy`, whose version id wrangler writes to
//! its output file) and returning to a version (`rollback <version-id> --yes`).

use std::path::PathBuf;

use crate::exit::failed;
use crate::workspace::project::Project;
use crate::workspace::target::Target;
use crate::wrangler::{Lazy, Run};

/// One environment's Worker.
pub(crate) struct Worker {
    /// As wrangler names it (`<name>-<env>` unless the environment names it).
    pub(crate) name: String,
    env: String,
    config: PathBuf,
    wrangler: Lazy,
    scratch: PathBuf,
}

/// What `wrangler deploy` did.
pub(crate) enum Deployed {
    /// The version now serving all traffic.
    Version(String),
    /// wrangler failed; its words.
    Failed(String),
}

impl Worker {
    pub(crate) fn new(project: &Project, target: &Target, name: String) -> Worker {
        Worker {
            name,
            env: target.env.name().to_string(),
            config: target.config_path.clone(),
            wrangler: Lazy::new(project),
            scratch: project.scratch_dir(),
        }
    }

    fn args(&self, sub: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = sub.iter().map(|s| s.to_string()).collect();
        args.extend([
            "--env".to_string(),
            self.env.clone(),
            "--config".to_string(),
            self.config.display().to_string(),
        ]);
        args
    }

    /// The wrangler argument list of `deploy`, for `--dry-run` and the hints.
    pub(crate) fn deploy_args(&self) -> Vec<String> {
        self.args(&["deploy"])
    }

    /// The wrangler argument list that puts `version` back, for the hints.
    pub(crate) fn rollback_args(&self, version: &str) -> Vec<String> {
        self.args(&["rollback", version, "--yes"])
    }

    pub(crate) fn ready(&mut self) -> anyhow::Result<()> {
        self.wrangler.ready()
    }

    pub(crate) fn calls(&self) -> usize {
        self.wrangler.calls()
    }

    /// The version serving 100% of the Worker's traffic, from its newest deployment;
    /// `None` when the Worker was never deployed (Cloudflare's code 10007).
    pub(crate) fn live(&mut self) -> anyhow::Result<Option<String>> {
        let run = self
            .wrangler
            .run(&self.args(&["deployments", "list", "--json"]))?;
        if !run.success {
            let text = run.error_text();
            if never_deployed(&run) {
                return Ok(None);
            }
            return Err(failed!(
                "reading the live version of Worker {} failed: {text}",
                self.name
            ));
        }
        live_version(&run.stdout)
            .map_err(|e| failed!("reading the live version of Worker {}: {e}", self.name))
    }

    /// `wrangler deploy`: the version it deployed, read from wrangler's output file.
    pub(crate) fn deploy(&mut self) -> anyhow::Result<Deployed> {
        std::fs::create_dir_all(&self.scratch)
            .map_err(|e| failed!("cannot create {}: {e}", self.scratch.display()))?;
        let out = self
            .scratch
            .join(format!("wrangler-output-{}.jsonl", std::process::id()));
        let _ = std::fs::remove_file(&out);
        let args = self.deploy_args();
        let run = self
            .wrangler
            .run_with_env(&args, &[("WRANGLER_OUTPUT_FILE_PATH", out.as_os_str())])?;
        let written = std::fs::read_to_string(&out).unwrap_or_default();
        let _ = std::fs::remove_file(&out);
        if !run.success {
            return Ok(Deployed::Failed(run.error_text()));
        }
        match deployed_version(&written).or_else(|| current_version_line(&run)) {
            Some(v) => Ok(Deployed::Version(v)),
            None => Ok(Deployed::Failed(
                "wrangler exited 0 but named no deployed version (no `version_id` in its output file)"
                    .into(),
            )),
        }
    }

    /// `wrangler rollback <version> --yes --message <message>`: `version` serves all
    /// traffic afterwards. `Err` carries wrangler's words.
    pub(crate) fn rollback(
        &mut self,
        version: &str,
        message: &str,
    ) -> anyhow::Result<Result<(), String>> {
        let mut args = self.rollback_args(version);
        args.extend(["--message".to_string(), message.to_string()]);
        let run = self.wrangler.run(&args)?;
        Ok(if run.success {
            Ok(())
        } else {
            Err(run.error_text())
        })
    }

    /// `PATH` for the smoke command: the project's wrangler and Node first.
    pub(crate) fn child_path(&self) -> Option<std::ffi::OsString> {
        self.wrangler.child_path()
    }
}

/// wrangler's answer for a Worker that does not exist: Cloudflare's code 10007 ("This
/// Worker does not exist on your account").
fn never_deployed(run: &Run) -> bool {
    let all = format!("{}\n{}", run.stdout, run.stderr);
    all.contains("[code: 10007]") || all.contains("\"code\": 10007") || all.contains("code: 10007")
}

/// The version at 100% in the newest deployment of `deployments list --json` (wrangler
/// prints them oldest first).
pub(crate) fn live_version(stdout: &str) -> anyhow::Result<Option<String>> {
    let start = stdout.find('[').unwrap_or(0);
    let list: serde_json::Value = serde_json::from_str(stdout[start..].trim())
        .map_err(|e| failed!("wrangler's `deployments list --json` is not JSON ({e})"))?;
    let Some(list) = list.as_array() else {
        return Err(failed!(
            "wrangler's `deployments list --json` is not a list"
        ));
    };
    let newest = list.iter().max_by(|a, b| {
        a["created_on"]
            .as_str()
            .unwrap_or("")
            .cmp(b["created_on"].as_str().unwrap_or(""))
    });
    Ok(newest.and_then(|d| {
        d["versions"]
            .as_array()?
            .iter()
            .find(|v| v["percentage"].as_f64() == Some(100.0))?["version_id"]
            .as_str()
            .map(String::from)
    }))
}

/// `version_id` of the `deploy` record in wrangler's output file (one JSON object a line).
fn deployed_version(jsonl: &str) -> Option<String> {
    jsonl
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["type"] == "deploy")
        .find_map(|v| v["version_id"].as_str().map(String::from))
}

/// `Current Version ID: <id>`, as wrangler prints it (when the output file is missing).
fn current_version_line(run: &Run) -> Option<String> {
    run.stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("Current Version ID:"))
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_live_version_is_the_newest_deployments_full_one() {
        let out = r#"[
          {"created_on": "2026-12-07T05:16:37.515Z", "versions": [{"version_id": "a", "percentage": 100}]},
          {"created_on": "2026-12-07T05:16:41.356Z", "versions": [{"version_id": "b", "percentage": 100}]}
        ]"#;
        assert_eq!(live_version(out).unwrap().as_deref(), Some("b"));
        let split = r#"[{"created_on": "x", "versions": [{"version_id": "a", "percentage": 60}, {"version_id": "b", "percentage": 40}]}]"#;
        assert_eq!(live_version(split).unwrap(), None);
        assert_eq!(live_version("[]").unwrap(), None);
        assert!(live_version("not json").is_err());
    }

    #[test]
    fn the_deployed_version_comes_from_the_output_file() {
        let file = "{\"version\":1,\"type\":\"wrangler-session\"}\n{\"version\":1,\"type\":\"deploy\",\"version_id\":\"v-2\"}\n";
        assert_eq!(deployed_version(file).as_deref(), Some("v-2"));
        assert_eq!(deployed_version(""), None);
    }
}
