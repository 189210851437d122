//! The workspace a command runs in: where it is (`project`), what `wrangler.jsonc` says
//! (`config`), what `xtask.jsonc` says (`settings`), and which environment and database a
//! run means (`target`). Everything here is read once, before any command acts.

pub(crate) mod config;
pub(crate) mod options;
pub(crate) mod project;
pub(crate) mod settings;
pub(crate) mod target;

use std::path::PathBuf;

use crate::ui;
use config::Config;
pub(crate) use options::Global;
use project::Project;
use settings::Settings;
use target::{Env, Target};

/// What every command starts from: its flags, the workspace and the parsed config.
#[derive(Clone)]
pub(crate) struct Ctx {
    pub(crate) global: Global,
    /// Where the user ran the command: `--output` and `--backup` paths are relative to it.
    pub(crate) cwd: PathBuf,
    pub(crate) project: Project,
    pub(crate) config: Config,
    pub(crate) settings: Settings,
}

impl Ctx {
    /// `--env` and `--database` resolved against the config.
    pub(crate) fn target(&self) -> anyhow::Result<Target> {
        let env = Env::parse(self.global.env.as_deref());
        let target = self.config.resolve(
            &env,
            self.global.database.as_deref(),
            &self.settings.protected,
        )?;
        ui::known("env", serde_json::json!(target.env.name()));
        ui::known("database", target.database_json());
        Ok(target)
    }
}
