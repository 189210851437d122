//! `db-new <name>`: the next migration file, never overwriting one.

use std::io::Write;

use crate::exit::{failed, usage};
use crate::migrations::MigrationSet;
use crate::ui::{self, Report};
use crate::workspace::options::{Output, Preview, Where};
use crate::workspace::Ctx;

/// `db-new` and its flags.
#[derive(clap::Args, Clone, Debug, PartialEq)]
pub struct DbNew {
    /// what the migration does, in one or more words: add orders, add_orders (spaces become _)
    #[arg(required = true, num_args = 1.., value_name = "name")]
    pub(crate) name: Vec<String>,
    #[command(flatten)]
    pub(crate) at: Where,
    #[command(flatten)]
    pub(crate) out: Output,
    #[command(flatten)]
    pub(crate) preview: Preview,
}

impl DbNew {
    pub(crate) fn run(self, ctx: &Ctx) -> anyhow::Result<Report> {
        let target = ctx.target()?;
        let slug = slug(&self.name.join(" "))?;
        let dir = &target.db.migrations_dir;
        let set = MigrationSet::for_db(&target.db)?;
        let (number, name) = new_name(&set, &slug)?;
        let path = dir.join(&name);
        if ctx.global.dry_run {
            ui::say(format!("would create {}", path.display()));
        } else {
            let folder = path.parent().unwrap_or(dir);
            std::fs::create_dir_all(folder)
                .map_err(|e| failed!("cannot create {}: {e}", folder.display()))?;
            // `create_new`: never overwrite, even if a file appeared since the scan.
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
                .map_err(|e| failed!("cannot create {}: {e}", path.display()))?;
            let header = format!(
                "-- {name}: created by `cargo xtask db-new` on {} UTC\n\
                 -- D1 runs each migration in one transaction: no BEGIN/COMMIT here.\n\n",
                crate::time::format_utc(crate::time::unix_now())
            );
            file.write_all(header.as_bytes())
                .map_err(|e| failed!("cannot write {}: {e}", path.display()))?;
            ui::say(format!("created {}", path.display()));
        }
        Ok(Report::doc(serde_json::json!({
            "created": path.display().to_string(),
            "name": name,
            "number": number,
            "dry_run": ctx.global.dry_run,
        })))
    }
}

/// The next migration's number and name (its path below the folder). Without a
/// `migrations_pattern`: `<number>_<slug>.sql`, four digits as wrangler writes them or as
/// wide as the folder uses. With one that nests (Drizzle's `*/migration.sql`): a folder
/// `<number>_<slug>/` holding the pattern's file name, the number a UTC timestamp
/// (`YYYYMMDDHHMMSS`, as Drizzle writes it) unless the folder numbers its migrations.
fn new_name(set: &MigrationSet, slug: &str) -> anyhow::Result<(u64, String)> {
    let next = set.next_number();
    let width = set
        .migrations
        .iter()
        .filter_map(|m| m.name.split('_').next().map(str::len))
        .max()
        .unwrap_or(4)
        .max(4);
    let flat = format!("{next:0width$}_{slug}.sql");
    let Some(pattern) = &set.pattern else {
        return Ok((next, flat));
    };
    if crate::migrations::pattern::matches(pattern, &flat) {
        return Ok((next, flat));
    }
    let file = pattern.rsplit('/').next().unwrap_or_default();
    let literal = !file.contains(['*', '?', '[']);
    if pattern.matches('/').count() == 1 && literal {
        let stamps = set
            .migrations
            .iter()
            .all(|m| m.number >= 10_000_000_000_000);
        let number = if stamps {
            let now: u64 = jiff::Timestamp::now()
                .strftime("%Y%m%d%H%M%S")
                .to_string()
                .parse()
                .unwrap_or(next);
            now.max(next)
        } else {
            next
        };
        let name = if stamps {
            format!("{number}_{slug}/{file}")
        } else {
            format!("{number:0width$}_{slug}/{file}")
        };
        if crate::migrations::pattern::matches(pattern, &name) {
            return Ok((number, name));
        }
    }
    Err(usage!(
        "db-new cannot make a file that migrations_pattern `{pattern}` matches: create the migration with \
         the tool that owns that layout (for Drizzle, `drizzle-kit generate`)"
    ))
}

/// The `<name>` part of the file name: spaces become `_`, and nothing that would leave
/// the folder or confuse wrangler's `<digits>_<name>.sql` is accepted.
fn slug(raw: &str) -> anyhow::Result<String> {
    let trimmed = raw.trim();
    let trimmed = trimmed.strip_suffix(".sql").unwrap_or(trimmed);
    // Control characters (a newline, a tab) and bidirectional overrides, which make a file
    // name read differently from what it is, are refused before spaces become `_`.
    if trimmed
        .chars()
        .any(|c| c.is_control() || is_bidi_control(c))
    {
        return Err(usage!(
            "{:?} cannot name a migration: it holds control characters or bidirectional overrides; \
             use letters, digits, `_` and `-` (e.g. add_orders)",
            raw
        ));
    }
    let slug: String = trimmed
        .chars()
        .map(|c| if c == ' ' { '_' } else { c })
        .collect();
    let bad = slug.is_empty()
        || slug.starts_with('.')
        || slug
            .chars()
            .any(|c| c == '/' || c == '\\' || c == '\'' || c == '"' || c.is_whitespace());
    if bad {
        return Err(usage!(
            "`{raw}` cannot name a migration: use letters, digits, `_` and `-` (e.g. add_orders)"
        ));
    }
    Ok(slug)
}

/// The Unicode bidirectional formatting characters (embeddings, overrides, isolates and
/// marks): invisible, and able to reorder how a name is displayed.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::slug;

    #[test]
    fn slugs() {
        assert_eq!(slug("add orders").unwrap(), "add_orders");
        assert_eq!(slug(" add_tags.sql ").unwrap(), "add_tags");
        for bad in [
            "",
            "  ",
            "../x",
            "a/b",
            ".hidden",
            "o'brien",
            "a\nb",
            "a\tb",
            "a\u{202E}lqs.b",
            "x\u{2066}y",
            "a\u{3000}b",
        ] {
            assert!(slug(bad).is_err(), "{bad}");
        }
    }
}
