//! Confirmations on protected environments, for the guarded-change path (`change.rs`).

use std::io::{BufRead, IsTerminal, Write};

use crate::exit::refused;
use crate::ui;
use crate::workspace::target::Target;

fn terminal() -> bool {
    #[cfg(test)]
    if crate::testutil::prompt_answer().is_some() {
        return true;
    }
    std::io::stdin().is_terminal()
}

/// How a protected environment confirms the change.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Confirm<'a> {
    /// y at a prompt, or `--yes`.
    Yes,
    /// The database name at a prompt, or `--confirm <name>` (`--yes` is not enough).
    Name(Option<&'a str>),
}

/// The line typed at the prompt.
fn read_answer() -> String {
    #[cfg(test)]
    if let Some(answer) = crate::testutil::prompt_answer() {
        crate::testutil::event("prompt");
        return answer;
    }
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    answer
}

/// The name `Confirm::Name` asks for: the database's label (its name, else its binding).
fn db_name(target: &Target) -> &str {
    target.db.label()
}

/// Refuses at once, before any wrangler call, what cannot be confirmed: a protected
/// environment with no terminal and no `--yes` (or `--confirm <name>`), or a `--confirm`
/// that names another database. A refusal changes nothing and exits 4.
pub(crate) fn precheck(
    target: &Target,
    confirm: Confirm<'_>,
    yes: bool,
    action: &str,
) -> anyhow::Result<()> {
    if !target.protected {
        return Ok(());
    }
    let name = db_name(target);
    match confirm {
        Confirm::Yes if !yes && !terminal() => Err(refused!(
            "{} is a protected environment and there is no terminal to confirm: pass --yes to run {action} \
             on {}; nothing was changed",
            target.env,
            target.describe()
        )),
        Confirm::Name(None) if !terminal() => Err(refused!(
            "{} is a protected environment: to run {action} there, pass --confirm {name} (the database name; \
             --yes is not enough); nothing was changed",
            target.env
        )),
        Confirm::Name(Some(given)) if given != name => Err(refused!(
            "`{given}` is not the database name `{name}` of {}: nothing was changed",
            target.env
        )),
        _ => Ok(()),
    }
}

/// Whether a confirmation must be typed at the terminal (no flag gave it).
pub(crate) fn needs_prompt(target: &Target, confirm: Confirm<'_>, yes: bool) -> bool {
    target.protected
        && match confirm {
            Confirm::Yes => !yes,
            Confirm::Name(given) => given.is_none(),
        }
}

/// Asks at the terminal before `plan` on a protected environment.
pub(crate) fn ask(target: &Target, confirm: Confirm<'_>, plan: &str) -> anyhow::Result<()> {
    let what = format!("{plan} on {}", target.describe());
    let name = db_name(target);
    let question = match confirm {
        Confirm::Yes => format!("{what}? This is a protected environment. Type y to continue: "),
        Confirm::Name(_) => format!(
            "{what}: this is a protected environment. Type the database name ({name}) to continue: "
        ),
    };
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "{question}");
    let _ = err.flush();
    let answer = read_answer();
    let answer = answer.trim();
    let ok = match confirm {
        Confirm::Yes => matches!(answer.to_ascii_lowercase().as_str(), "y" | "yes"),
        Confirm::Name(_) => answer == name,
    };
    if ok {
        Ok(())
    } else {
        Err(refused!(
            "not confirmed: nothing was changed on {}",
            target.env
        ))
    }
}

/// Confirms a read of a protected environment that brings its data onto this machine
/// (`db-seed --from`, `db-restore --from-env`): refused at once without a terminal or
/// `--yes`, asked at a terminal, or said to be confirmed by `--yes`. Nothing is read first.
pub(crate) fn confirm_read(
    target: &Target,
    yes: bool,
    action: &str,
    plan: &str,
) -> anyhow::Result<()> {
    precheck(target, Confirm::Yes, yes, action)?;
    if needs_prompt(target, Confirm::Yes, yes) {
        ask(target, Confirm::Yes, plan)
    } else {
        confirmed_by_flag(target, Confirm::Yes, plan);
        Ok(())
    }
}

/// Says that a flag gave the confirmation (`--yes`, `--confirm <name>`).
pub(crate) fn confirmed_by_flag(target: &Target, confirm: Confirm<'_>, plan: &str) {
    if !target.protected {
        return;
    }
    let by = match confirm {
        Confirm::Yes => "--yes".to_string(),
        Confirm::Name(_) => format!("the database name {}", db_name(target)),
    };
    ui::say(format!(
        "{} is protected: confirmed by {by}: {plan}",
        target.env
    ));
}
