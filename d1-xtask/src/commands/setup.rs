//! `setup`: install wrangler and the Node it runs on, and show what will be used.

use crate::wrangler::Wrangler;
use crate::{ui, workspace::Ctx};

pub(crate) fn run(ctx: &Ctx) -> anyhow::Result<()> {
    let mut wrangler = Wrangler::locate(&ctx.project)?;
    let run = wrangler.run(&["--version".to_string()])?;
    if !run.success {
        return Err(crate::exit::failed!(
            "wrangler does not start: {}",
            run.error_text()
        ));
    }
    ui::say(format!("wrangler {} is ready", run.stdout.trim()));
    Ok(())
}
