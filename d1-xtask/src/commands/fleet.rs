//! Fleets: many D1 databases of one account migrated and read as one (`fleets` in
//! `xtask.jsonc`). Members are found at run time in the account's database list, and
//! every call goes to D1's HTTP API from this one process (`crate::api`, feature
//! `fleet`), at the API's pace.
//!
//! What is here: `db-status --fleet <name>`. `db-migrate --fleet` is not built yet
//! (docs/limits.md).

#[cfg(feature = "fleet")]
use serde_json::json;

use crate::exit::usage;
#[cfg(feature = "fleet")]
use crate::exit::{stop_with, Exit};
#[cfg(feature = "fleet")]
use crate::ui;
use crate::ui::Report;
#[cfg(feature = "fleet")]
use crate::workspace::settings::{Fleet, Members};
#[cfg(feature = "fleet")]
use crate::workspace::target::{Env, Target};
use crate::workspace::Ctx;

#[cfg(not(feature = "fleet"))]
pub(crate) fn status(_ctx: &Ctx, _name: &str, _check: bool) -> anyhow::Result<Report> {
    Err(not_built())
}

#[cfg(not(feature = "fleet"))]
fn not_built() -> anyhow::Error {
    usage!(
        "this xtask was built without d1-xtask's `fleet` feature (D1's HTTP API, for fleets): add \
         `features = [\"fleet\"]` to its d1-xtask dependency"
    )
}

/// A fleet, resolved: its settings, the environment whose migrations it takes, members.
#[cfg(feature = "fleet")]
pub(crate) struct Resolved {
    pub(crate) name: String,
    pub(crate) target: Target,
    pub(crate) api: crate::api::Api,
    /// `(uuid, name)` of each member, by name.
    pub(crate) members: Vec<(String, String)>,
}

/// The fleet `name` of the settings, its account's API and its members.
#[cfg(feature = "fleet")]
pub(crate) fn resolve(ctx: &Ctx, name: &str) -> anyhow::Result<Resolved> {
    let fleet: &Fleet = ctx.settings.fleets.get(name).ok_or_else(|| {
        let known: Vec<&str> = ctx.settings.fleets.keys().map(String::as_str).collect();
        usage!(
            "no fleet `{name}` in {}: {}",
            ctx.project
                .root
                .join(crate::workspace::settings::FILE_NAME)
                .display(),
            if known.is_empty() {
                "add one under \"fleets\" (docs/fleets.md)".to_string()
            } else {
                format!("the fleets are {}", known.join(", "))
            }
        )
    })?;
    let env = Env::Remote(fleet.env.clone());
    // The environment's migrations folder, table and protection; its own database is not
    // a member unless the pattern or file names it.
    let target = ctx.config.resolve(
        &env,
        ctx.global.database.as_deref(),
        &ctx.settings.protected,
    )?;
    let account = std::env::var("CLOUDFLARE_ACCOUNT_ID")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| {
            usage!(
                "fleet `{name}`: CLOUDFLARE_ACCOUNT_ID is not set: the fleet commands call D1's API for that \
                 account directly; set it (and CLOUDFLARE_API_TOKEN)"
            )
        })?;
    let token = token(ctx)?;
    let per_5_min = ctx.settings.api_requests_per_5_minutes as usize;
    let api = crate::api::Api::new(
        crate::api::Api::base_from_env(),
        account,
        token,
        crate::api::Limiter::new(per_5_min, std::time::Duration::from_secs(300)),
    )?;
    let all = api.databases()?;
    let mut members: Vec<(String, String)> = match &fleet.members {
        Members::Glob(glob) => all
            .into_iter()
            .filter(|(_, n)| glob_match(glob, n))
            .collect(),
        Members::File(file) => {
            let path = ctx.project.root.join(file);
            let text = std::fs::read_to_string(&path).map_err(|e| {
                usage!(
                    "fleet `{name}`: cannot read its databases_file {}: {e}",
                    path.display()
                )
            })?;
            let wanted: Vec<&str> = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .collect();
            let mut out = Vec::new();
            let mut missing = Vec::new();
            for w in &wanted {
                match all.iter().find(|(u, n)| u == w || n == w) {
                    Some(m) => out.push(m.clone()),
                    None => missing.push(*w),
                }
            }
            if !missing.is_empty() {
                return Err(usage!(
                    "fleet `{name}`: {} of {} in {} are not databases of the account: {}",
                    missing.len(),
                    wanted.len(),
                    path.display(),
                    missing
                        .iter()
                        .take(10)
                        .copied()
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            out
        }
    };
    members.sort_by(|a, b| a.1.cmp(&b.1));
    members.dedup();
    ui::say(format!(
        "fleet {name}: {} database{} of env {} ({})",
        members.len(),
        if members.len() == 1 { "" } else { "s" },
        fleet.env,
        match &fleet.members {
            Members::Glob(g) => format!("names matching {g}"),
            Members::File(f) => format!("listed in {f}"),
        }
    ));
    Ok(Resolved {
        name: name.to_string(),
        target,
        api,
        members,
    })
}

/// The API token: `CLOUDFLARE_API_TOKEN`, else what `wrangler auth token --json` gives
/// (wrangler's own login), one wrangler process for the whole run.
#[cfg(feature = "fleet")]
fn token(ctx: &Ctx) -> anyhow::Result<String> {
    if let Some(t) = std::env::var("CLOUDFLARE_API_TOKEN")
        .ok()
        .filter(|v| !v.trim().is_empty())
    {
        return Ok(t);
    }
    let mut wrangler = crate::wrangler::Lazy::new(&ctx.project);
    let run = wrangler.run(&["auth".into(), "token".into(), "--json".into()])?;
    let value: serde_json::Value = run
        .stdout
        .find('{')
        .and_then(|i| serde_json::from_str(run.stdout[i..].trim()).ok())
        .unwrap_or_default();
    match value["token"].as_str() {
        Some(t) if run.success && !t.is_empty() => Ok(t.to_string()),
        _ => Err(usage!(
            "no API token: set CLOUDFLARE_API_TOKEN, or log wrangler in (`wrangler login`): {}",
            run.error_text()
        )),
    }
}

/// `*` any run of characters, `?` one; everything else literally.
#[cfg_attr(not(feature = "fleet"), allow(dead_code))]
pub(crate) fn glob_match(glob: &str, name: &str) -> bool {
    let (g, n): (Vec<char>, Vec<char>) = (glob.chars().collect(), name.chars().collect());
    let (mut gi, mut ni) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ni < n.len() {
        if gi < g.len() && (g[gi] == '?' || g[gi] == n[ni]) {
            gi += 1;
            ni += 1;
        } else if gi < g.len() && g[gi] == '*' {
            star = Some(gi);
            mark = ni;
            gi += 1;
        } else if let Some(s) = star {
            gi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    while gi < g.len() && g[gi] == '*' {
        gi += 1;
    }
    gi == g.len()
}

/// `db-status --fleet <name>`: every member's tracking table in one request each, read in
/// parallel at the API's pace; how many are at each migration, which are behind, which
/// have problems, which cannot be read. `--check`: exit 3 when any is behind or wrong.
#[cfg(feature = "fleet")]
pub(crate) fn status(ctx: &Ctx, name: &str, check: bool) -> anyhow::Result<Report> {
    let fleet = resolve(ctx, name)?;
    let set = crate::migrations::MigrationSet::for_target(&fleet.target)?;
    let table = fleet.target.db.migrations_table.clone();
    let sql = crate::d1::state_request_sql(&table, None);
    let states = parallel(&fleet.members, 8, |(uuid, _)| {
        match fleet.api.query(uuid, &sql) {
            Ok(items) => crate::d1::state_from_items(&items)
                .ok_or_else(|| "D1 did not confirm the state read".to_string()),
            Err(e) => Err(e.to_string()),
        }
    });
    let newest = set.migrations.last().map(|m| m.name.clone());
    let mut at: std::collections::BTreeMap<String, usize> = Default::default();
    let (mut behind, mut problems, mut unreadable) = (Vec::new(), Vec::new(), Vec::new());
    for ((_, db_name), state) in fleet.members.iter().zip(&states) {
        match state {
            Err(e) => unreadable.push(json!({"database": db_name, "error": e})),
            Ok(state) => {
                let status = crate::migrations::plan::status_with_schema(&set, state, &table);
                let last = state
                    .applied
                    .last()
                    .map_or("(none)".to_string(), |r| r.name.clone());
                *at.entry(last).or_default() += 1;
                if !status.pending.is_empty() {
                    behind.push(json!({"database": db_name, "pending": status.pending.len()}));
                }
                let blocking: Vec<String> = status.blocking().map(|p| p.message.clone()).collect();
                if !blocking.is_empty() {
                    problems.push(json!({"database": db_name, "problems": blocking}));
                }
            }
        }
    }
    let mut report = Report::doc(json!({
        "fleet": fleet.name,
        "env": fleet.target.env.name(),
        "databases": fleet.members.len(),
        "newest_migration": newest,
        "at": at,
        "behind": behind,
        "problems": problems,
        "unreadable": unreadable,
        "requests": fleet.api.requests(),
    }));
    report.line(format!(
        "fleet {} ({} databases, env {}), newest migration {}:",
        fleet.name,
        fleet.members.len(),
        fleet.target.env,
        newest.as_deref().unwrap_or("(none)")
    ));
    for (name, n) in &at {
        report.line(format!("  {n:>6} at {name}"));
    }
    report.line(format!(
        "{} behind, {} with problems, {} unreadable ({} API requests)",
        behind.len(),
        problems.len(),
        unreadable.len(),
        fleet.api.requests()
    ));
    for p in problems.iter().take(20) {
        report.line(format!("  problem: {} {}", p["database"], p["problems"]));
    }
    for u in unreadable.iter().take(20) {
        report.line(format!("  unreadable: {} {}", u["database"], u["error"]));
    }
    if check && (!behind.is_empty() || !problems.is_empty() || !unreadable.is_empty()) {
        return Err(stop_with(
            Exit::Pending,
            format!(
                "fleet {}: {} behind, {} with problems, {} unreadable",
                fleet.name,
                behind.len(),
                problems.len(),
                unreadable.len()
            ),
            report,
        ));
    }
    Ok(report)
}

/// `f` over `items` on up to `threads` threads; results in `items`' order.
#[cfg(feature = "fleet")]
fn parallel<T: Sync, R: Send>(items: &[T], threads: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let out: Vec<std::sync::Mutex<Option<R>>> =
        items.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..threads.clamp(1, items.len().max(1)) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(item) = items.get(i) else { break };
                let r = f(item);
                *out[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
            });
        }
    });
    out.into_iter()
        .map(|m| {
            m.into_inner()
                .unwrap_or_else(|p| p.into_inner())
                .expect("every item ran")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_as_shells_do() {
        assert!(glob_match("tenant-*", "tenant-0001"));
        assert!(glob_match("*-eu", "shop-eu"));
        assert!(glob_match("t?nant-*", "tenant-1"));
        assert!(!glob_match("tenant-*", "staging-db"));
        assert!(!glob_match("tenant-?", "tenant-10"));
        assert!(glob_match("*", "anything"));
    }
}
