//! The workspace on disk: where the wrangler config is, and the paths named after it.

use std::path::{Path, PathBuf};

use crate::exit::usage;

/// Config file names wrangler reads, in the order it prefers them; TOML is refused.
const CONFIG_NAMES: [&str; 2] = ["wrangler.jsonc", "wrangler.json"];

#[derive(Debug, Clone)]
pub(crate) struct Project {
    /// The directory holding the wrangler config: wrangler resolves `migrations_dir` and
    /// `.wrangler/state` against it, so the xtask does too.
    pub(crate) root: PathBuf,
    pub(crate) config_path: PathBuf,
    /// Where backups, restore points and their index go (`backups_dir` in xtask.jsonc).
    pub(crate) backups: PathBuf,
    /// Where seed and cleanup files are (`test_data_dir` in xtask.jsonc).
    pub(crate) test_data: PathBuf,
}

impl Project {
    /// Finds the config: `--config` if given (relative to `cwd`), else the nearest
    /// `wrangler.jsonc` / `wrangler.json` in `cwd` or a parent directory.
    pub(crate) fn locate(cwd: &Path, config: Option<&Path>) -> anyhow::Result<Project> {
        let config_path = match config {
            Some(path) => {
                let path = cwd.join(path);
                refuse_toml(&path)?;
                if !path.is_file() {
                    return Err(usage!(
                        "config file {} does not exist: check `--config`",
                        path.display()
                    ));
                }
                path
            }
            None => find_upwards(cwd)?,
        };
        let config_path = config_path.canonicalize().unwrap_or(config_path);
        let root = config_path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        Ok(Project::at(root, config_path))
    }

    /// A project at `root`, with the default folders (`backups/`, `test-data/`).
    pub(crate) fn at(root: PathBuf, config_path: PathBuf) -> Project {
        Project {
            backups: root.join("backups"),
            test_data: root.join("test-data"),
            root,
            config_path,
        }
    }

    /// The folders `settings` names, relative to the root.
    pub(crate) fn with_settings(
        mut self,
        settings: &crate::workspace::settings::Settings,
    ) -> Project {
        self.backups = self.root.join(&settings.backups_dir);
        self.test_data = self.root.join(&settings.test_data_dir);
        self
    }

    /// wrangler's local persistence folder for D1 (`--local` without `--persist-to`).
    pub(crate) fn local_state_dir(&self) -> PathBuf {
        self.root.join(".wrangler").join("state")
    }

    /// Scratch files the xtask writes for one run (batches handed to wrangler); ignored by git.
    pub(crate) fn scratch_dir(&self) -> PathBuf {
        self.root.join(".wrangler").join("xtask")
    }
}

fn refuse_toml(path: &Path) -> anyhow::Result<()> {
    if path.extension().is_some_and(|e| e == "toml") {
        return Err(usage!(
            "{}: TOML wrangler configs are not supported by the xtask: convert it to wrangler.jsonc \
             (wrangler reads both; `npx wrangler` docs show each field in JSON)",
            path.display()
        ));
    }
    Ok(())
}

fn find_upwards(cwd: &Path) -> anyhow::Result<PathBuf> {
    for dir in cwd.ancestors() {
        for name in CONFIG_NAMES {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
        let toml = dir.join("wrangler.toml");
        if toml.is_file() {
            refuse_toml(&toml)?;
        }
    }
    Err(usage!(
        "no wrangler.jsonc or wrangler.json in {} or any parent directory: run the xtask inside \
         the workspace, or name the file with `--config <path>`",
        cwd.display()
    ))
}

/// Removes scratch files (`<pid>-...`, `batch-<pid>-...`, `remote-batch-<pid>-...`) that
/// runs killed before they could clean up left behind: those whose process no longer
/// runs (Linux; elsewhere nothing is removed).
pub(crate) fn remove_leftovers(dir: &Path) {
    let proc_dir = Path::new("/proc");
    if !proc_dir.is_dir() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let rest = name
            .strip_prefix("remote-batch-")
            .or_else(|| name.strip_prefix("batch-"))
            .unwrap_or(name);
        let Some((pid, _)) = rest.split_once('-') else {
            continue;
        };
        if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if !proc_dir.join(pid).exists() && entry.path().is_file() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::{status_of, Exit};

    #[test]
    fn finds_the_nearest_config_and_refuses_toml() {
        let dir = crate::testutil::TempDir::new("project");
        std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
        std::fs::write(dir.path().join("wrangler.jsonc"), "{}").unwrap();
        let p = Project::locate(&dir.path().join("a/b"), None).unwrap();
        assert_eq!(p.root, dir.path().canonicalize().unwrap());

        std::fs::write(dir.path().join("a/wrangler.toml"), "").unwrap();
        let err = Project::locate(&dir.path().join("a/b"), None).unwrap_err();
        assert_eq!(status_of(&err), Exit::Usage);
        assert!(err.to_string().contains("TOML"), "{err}");

        let err = Project::locate(dir.path(), Some(Path::new("nope.jsonc"))).unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err}");
    }
}
