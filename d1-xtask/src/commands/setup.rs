//! `setup`: install wrangler and the Node it runs on, and show what will be used.

use crate::ui::{self, Report};
use crate::workspace::options::ConfigPath;
use crate::workspace::Ctx;
use crate::wrangler::Wrangler;

/// `setup` and its flags.
#[derive(clap::Args, Clone, Debug, PartialEq)]
pub struct Setup {
    #[command(flatten)]
    pub(crate) config: ConfigPath,
}

/// Installs wrangler if it is missing and says which one runs.
pub(crate) fn run(ctx: &Ctx) -> anyhow::Result<Report> {
    let mut wrangler = Wrangler::locate(&ctx.project)?;
    let run = wrangler.run(&["--version".to_string()])?;
    if !run.success {
        return Err(crate::exit::failed!(
            "wrangler does not start: {}",
            run.error_text()
        ));
    }
    ui::say(format!("wrangler {} is ready", run.stdout.trim()));
    Ok(Report::doc(
        serde_json::json!({ "wrangler": run.stdout.trim() }),
    ))
}
