//! Guards before a change: confirmation on protected environments.

use std::io::{BufRead, IsTerminal, Write};

use crate::exit::refused;
use crate::target::Target;
use crate::ui;

/// Refuses at once, before any wrangler call, where a confirmation will be needed and
/// cannot be given: a protected environment, no `--yes`, no terminal.
pub fn precheck(target: &Target, action: &str, yes: bool) -> anyhow::Result<()> {
    if target.protected && !yes && !std::io::stdin().is_terminal() {
        return Err(refused!(
            "{} is a protected environment and there is no terminal to confirm: pass --yes to {action} \
             on {} {}; nothing was changed",
            target.env,
            target.env,
            target.db.describe()
        ));
    }
    Ok(())
}

/// Asks before `action` on a protected environment. Without a terminal, `--yes` is the
/// only way through; a refusal changes nothing and exits 4.
pub fn confirm(target: &Target, action: &str, yes: bool) -> anyhow::Result<()> {
    if !target.protected {
        return Ok(());
    }
    let what = format!("{action} on {} {}", target.env, target.db.describe());
    if yes {
        ui::say(format!(
            "{} is protected: confirmed by --yes: {what}",
            target.env
        ));
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(refused!(
            "{} is a protected environment and there is no terminal to confirm: pass --yes to {what}; \
             nothing was changed",
            target.env
        ));
    }
    let mut err = std::io::stderr().lock();
    let _ = write!(
        err,
        "{what}? This is a protected environment. Type y to continue: "
    );
    let _ = err.flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    match answer.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" => Ok(()),
        _ => Err(refused!(
            "not confirmed: nothing was changed on {}",
            target.env
        )),
    }
}

/// A protected environment's destructive command (db-reset) needs the database name:
/// typed at the prompt, or `--confirm <name>` without a terminal. `--yes` is not enough.
pub fn confirm_name(target: &Target, action: &str, given: Option<&str>) -> anyhow::Result<()> {
    if !target.protected {
        return Ok(());
    }
    let name = target.db.name.as_deref().unwrap_or(&target.db.binding);
    let typed = match given {
        Some(g) => g.to_string(),
        None if std::io::stdin().is_terminal() => {
            let mut err = std::io::stderr().lock();
            let _ = write!(
                err,
                "{action} on {} {}: this is a protected environment. Type the database name ({name}) to continue: ",
                target.env,
                target.db.describe()
            );
            let _ = err.flush();
            let mut answer = String::new();
            let _ = std::io::stdin().lock().read_line(&mut answer);
            answer.trim().to_string()
        }
        None => {
            return Err(refused!(
                "{} is a protected environment: to {action} there, pass --confirm {name} (the database name; \
                 --yes is not enough); nothing was changed",
                target.env
            ))
        }
    };
    if typed == name {
        ui::say(format!(
            "{} is protected: confirmed by the database name {name}",
            target.env
        ));
        Ok(())
    } else {
        Err(refused!(
            "`{typed}` is not the database name `{name}` of {}: nothing was changed",
            target.env
        ))
    }
}
