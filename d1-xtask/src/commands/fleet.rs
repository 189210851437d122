//! Fleets: many D1 databases of one account migrated and read as one (`fleets` in
//! `xtask.jsonc`). Members are found at run time in the account's database list, and
//! every call goes to D1's HTTP API from this one process (`crate::api`, feature
//! `fleet`), at the API's pace.
//!
//! `db-status --fleet <name>` and `db-migrate --fleet <name>` (docs/fleets.md).

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

/// `db-migrate --fleet`'s flags.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct MigrateOptions {
    /// The first this many members (by name) go first, one at a time; a failure among
    /// them stops the run.
    pub(crate) canary: usize,
    /// Members migrated at once after the canary.
    pub(crate) parallel: usize,
    pub(crate) continue_on_error: bool,
    pub(crate) resume: bool,
}

#[cfg(not(feature = "fleet"))]
pub(crate) fn migrate(_ctx: &Ctx, _name: &str, _o: &MigrateOptions) -> anyhow::Result<Report> {
    Err(not_built())
}

/// What happened to one member.
#[cfg(feature = "fleet")]
#[derive(Clone, Debug)]
struct MemberRun {
    uuid: String,
    name: String,
    /// `applied`, `up-to-date` or `failed`.
    outcome: &'static str,
    applied: Vec<String>,
    bookmark: Option<String>,
    error: Option<String>,
}

#[cfg(feature = "fleet")]
impl MemberRun {
    fn json(&self) -> serde_json::Value {
        json!({"uuid": self.uuid, "database": self.name, "outcome": self.outcome,
               "applied": self.applied, "bookmark": self.bookmark, "error": self.error})
    }
}

/// The run file: `backups/fleet-runs/<fleet>-<time>.jsonl`, a header line, then one line a
/// member as it finishes (appended whole). `--resume` continues the newest one.
#[cfg(feature = "fleet")]
struct RunFile {
    path: std::path::PathBuf,
    /// Members already done in a resumed run (applied or up to date), by UUID.
    done: std::collections::BTreeSet<String>,
}

#[cfg(feature = "fleet")]
impl RunFile {
    fn open(ctx: &Ctx, fleet: &str, resume: bool) -> anyhow::Result<RunFile> {
        let dir = crate::guarded::backups::backups_dir(&ctx.project).join("fleet-runs");
        std::fs::create_dir_all(&dir)
            .map_err(|e| crate::exit::failed!("cannot create {}: {e}", dir.display()))?;
        if resume {
            let mut runs: Vec<std::path::PathBuf> = std::fs::read_dir(&dir)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                        n.starts_with(&format!("{fleet}-")) && n.ends_with(".jsonl")
                    })
                })
                .collect();
            runs.sort();
            let Some(path) = runs.pop() else {
                return Err(usage!(
                    "--resume: no run of fleet {fleet} in {}: run without --resume",
                    dir.display()
                ));
            };
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let done = text
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .filter(|v| v["outcome"] == "applied" || v["outcome"] == "up-to-date")
                .filter_map(|v| v["uuid"].as_str().map(String::from))
                .collect();
            ui::say(format!("--resume: continuing {}", path.display()));
            return Ok(RunFile { path, done });
        }
        let stamp = crate::time::format_compact(crate::time::unix_now());
        let path = dir.join(format!("{fleet}-{stamp}.jsonl"));
        Ok(RunFile {
            path,
            done: Default::default(),
        })
    }

    fn append(&self, ctx: &Ctx, line: &serde_json::Value) -> anyhow::Result<()> {
        crate::guarded::backups::append_to(
            &ctx.project,
            &self.path,
            "the fleet run file",
            &line.to_string(),
        )
    }
}

/// The names applied, in order, as the tracking table lists them.
#[cfg(feature = "fleet")]
fn applied_names(state: &crate::d1::State) -> Vec<String> {
    state.applied.iter().map(|r| r.name.clone()).collect()
}

/// What the run expects a member to hold before its apply: the tracking table's names in
/// order, the checksums recorded for them, and the checksums to record on first sight
/// (files plain wrangler applied).
#[cfg(feature = "fleet")]
#[derive(Clone, Debug, Default, PartialEq)]
struct Expected {
    names: Vec<String>,
    checksums: Vec<(String, String)>,
    first_sight: Vec<(String, String)>,
    /// The user's schema as `schema_text_sql` renders it (the first member's, read in full
    /// and checked against the migrations); `None` skips the comparison (a schema whose
    /// text would not fit in a statement).
    schema: Option<String>,
}

/// The longest schema text compared inside the guarded request (D1 refuses statements
/// over 100,000 bytes).
#[cfg(feature = "fleet")]
const MAX_SCHEMA_TEXT: usize = 60_000;

/// One value: the user's objects (not SQLite's, D1's or the xtask's tables) as their
/// `sqlite_master` rows, one a line, in a fixed order.
#[cfg(feature = "fleet")]
fn schema_text_sql(table: &str) -> String {
    use crate::d1::quote_string;
    format!(
        "(SELECT coalesce(group_concat(x, char(10)), '') FROM (SELECT type || ' ' || name || ' ' || tbl_name || ' ' || \
         coalesce(sql, '') AS x FROM sqlite_master WHERE substr(name, 1, 7) <> 'sqlite_' AND \
         lower(substr(name, 1, 4)) <> '_cf_' AND name NOT IN ({}, {}, {}) ORDER BY type, name))",
        quote_string(table),
        quote_string(&crate::d1::checksum_table(table)),
        quote_string(&crate::d1::lock_table(table))
    )
}

/// The one request that, under the lock, checks that the tracking table and the recorded
/// checksums are exactly what `expected` says, applies `pending` with their tracking rows
/// and checksums, releases the lock and reads the state back. A difference makes `json()`
/// fail on its message, which rolls the whole request back (D1 runs a request as one
/// transaction).
#[cfg(feature = "fleet")]
fn guarded_apply_sql(
    table: &str,
    expected: &Expected,
    pending: &[&crate::migrations::Migration],
    lock: &crate::d1::LockRow,
) -> String {
    use crate::d1::{lock_insert_sql, quote_string};
    let q = |t: &str| format!("\"{}\"", t.replace('"', "\"\""));
    let mut sql = crate::d1::create_tracking_table_sql(table);
    sql.push('\n');
    sql.push_str(&crate::d1::meta_tables_sql(table));
    sql.push('\n');
    sql.push_str(&lock_insert_sql(table, lock));
    sql.push('\n');
    let mut sums = expected.checksums.clone();
    sums.sort();
    let sums: Vec<String> = sums.iter().map(|(n, h)| format!("{n}:{h}")).collect();
    let schema = match &expected.schema {
        Some(text) => format!(" AND {} = {}", schema_text_sql(table), quote_string(text)),
        None => String::new(),
    };
    sql.push_str(&format!(
        "SELECT CASE WHEN (SELECT coalesce(group_concat(name, '|'), '') FROM (SELECT name FROM {} ORDER BY id)) = {} \
         AND (SELECT coalesce(group_concat(name || ':' || sha256, '|'), '') FROM (SELECT name, sha256 FROM {} ORDER BY name)) = {}{schema} \
         THEN 1 ELSE json('d1-xtask: the tracking table changed') END AS xtask_expected;\n",
        q(table),
        quote_string(&expected.names.join("|")),
        q(&crate::d1::checksum_table(table)),
        quote_string(&sums.join("|"))
    ));
    let extras = crate::d1::Extras {
        first_sight: expected.first_sight.clone(),
        release: Some(vec![lock.token.clone()]),
    };
    sql.push_str(&crate::d1::batch_sql(table, pending, &extras));
    // The reads of `state_request_sql`, last: the state after the apply.
    let reads = crate::d1::state_request_sql(table, None);
    sql.push_str(&reads);
    sql
}

/// One member: its bookmark, then one guarded request. A member that is not where `guess`
/// says the fleet is costs one more request: its whole state is read (tracking table,
/// checksums, live schema) and checked as `db-migrate` checks one database, and the
/// member is planned from it.
#[cfg(feature = "fleet")]
fn migrate_member(
    api: &crate::api::Api,
    set: &crate::migrations::MigrationSet,
    table: &str,
    guess: &std::sync::Mutex<Option<Expected>>,
    uuid: &str,
    name: &str,
) -> MemberRun {
    let mut run = MemberRun {
        uuid: uuid.to_string(),
        name: name.to_string(),
        outcome: "failed",
        applied: Vec::new(),
        bookmark: None,
        error: None,
    };
    let bookmark = match api.bookmark(uuid) {
        Ok(b) => b,
        Err(e) => {
            run.error = Some(format!(
                "capturing the restore point failed, nothing was changed: {e}"
            ));
            return run;
        }
    };
    run.bookmark = Some(bookmark);
    let mut expected = guess.lock().unwrap_or_else(|p| p.into_inner()).clone();
    for attempt in 0..2 {
        let (before, pending) = match expected.clone() {
            Some(e) => {
                let state = names_state(&e.names);
                let pending = crate::migrations::plan::status(set, &state).pending.clone();
                (e, pending)
            }
            None => {
                let read = format!(
                    "{}\nSELECT {} AS xtask_schema;",
                    crate::d1::state_request_sql(table, None),
                    schema_text_sql(table)
                );
                let unconfirmed = "D1 did not confirm the state read; nothing was changed";
                let (state, schema_text) = match api.query(uuid, &read) {
                    Ok(items) if !items.is_empty() => {
                        let n = items.len() - 1;
                        let text = items[n]["results"][0]["xtask_schema"]
                            .as_str()
                            .map(String::from);
                        match (crate::d1::state_from_items(&items[..n]), text) {
                            (Some(state), Some(text)) => (state, text),
                            _ => {
                                run.error = Some(unconfirmed.into());
                                return run;
                            }
                        }
                    }
                    Ok(_) => {
                        run.error = Some(unconfirmed.into());
                        return run;
                    }
                    Err(e) => {
                        run.error = Some(format!(
                            "reading the tracking table failed, nothing was changed: {e}"
                        ));
                        return run;
                    }
                };
                let status = crate::migrations::plan::status_with_schema(set, &state, table);
                let blocking: Vec<String> = status.blocking().map(|p| p.message.clone()).collect();
                if !blocking.is_empty() {
                    run.error = Some(format!(
                        "drift, nothing was changed: {}",
                        blocking.join("; ")
                    ));
                    return run;
                }
                let before = Expected {
                    names: applied_names(&state),
                    checksums: state.checksums.clone().into_iter().collect(),
                    first_sight: status
                        .unrecorded
                        .iter()
                        .map(|m| (m.name.clone(), m.sha256.clone()))
                        .collect(),
                    schema: (schema_text.len() <= MAX_SCHEMA_TEXT).then_some(schema_text),
                };
                (before, status.pending.clone())
            }
        };
        let lock = crate::guarded::lock::new_row("db-migrate --fleet");
        match api.query(uuid, &guarded_apply_sql(table, &before, &pending, &lock)) {
            Ok(items) => {
                let after = items
                    .len()
                    .checked_sub(4)
                    .and_then(|n| crate::d1::state_from_items(&items[n..]));
                let Some(after) = after else {
                    run.error = Some("the apply's read-back did not confirm the state".into());
                    return run;
                };
                let names = applied_names(&after);
                let missing: Vec<&str> = pending
                    .iter()
                    .map(|m| m.name.as_str())
                    .filter(|n| !names.iter().any(|a| a == n))
                    .collect();
                if !missing.is_empty() {
                    run.error = Some(format!(
                        "the tracking table read back lacks {}",
                        missing.join(", ")
                    ));
                    return run;
                }
                *guess.lock().unwrap_or_else(|p| p.into_inner()) = Some(before);
                run.applied = pending.iter().map(|m| m.name.clone()).collect();
                run.outcome = if pending.is_empty() {
                    "up-to-date"
                } else {
                    "applied"
                };
                return run;
            }
            Err(e) if e.message.contains("malformed JSON") && attempt == 0 => {
                // Not where the fleet's other members were: read its own state, once.
                expected = None;
            }
            Err(e) if crate::d1::is_lock_conflict(&e.message, table) => {
                run.error = Some(format!("locked by another run, nothing was changed: {e}"));
                return run;
            }
            Err(e) => {
                run.error = Some(format!(
                    "the request failed and D1 rolled it back, nothing of it is applied: {e}"
                ));
                return run;
            }
        }
    }
    run.error = Some("the tracking table kept changing under the run; nothing was changed".into());
    run
}

/// A state holding just these tracking rows (for planning from an expectation).
#[cfg(feature = "fleet")]
fn names_state(names: &[String]) -> crate::d1::State {
    crate::d1::State {
        applied: names
            .iter()
            .enumerate()
            .map(|(i, n)| crate::d1::AppliedRow {
                id: i as i64 + 1,
                name: n.clone(),
                applied_at: String::new(),
            })
            .collect(),
        ..Default::default()
    }
}

/// `db-migrate --fleet <name>`: lint once; the canary members one at a time, then the
/// rest in waves of `--parallel`; two requests per member (a bookmark, then one request
/// that checks the state under the lock, applies, records and reads back); a run file
/// for `--resume`. Stops at the first failure unless `--continue-on-error`.
#[cfg(feature = "fleet")]
pub(crate) fn migrate(ctx: &Ctx, name: &str, o: &MigrateOptions) -> anyhow::Result<Report> {
    let fleet = resolve(ctx, name)?;
    let set = crate::migrations::MigrationSet::for_target(&fleet.target)?;
    crate::commands::db_migrate::refuse_lint_errors(&set, "nothing was applied")?;
    let table = fleet.target.db.migrations_table.clone();
    let run_file = RunFile::open(ctx, name, o.resume)?;
    let todo: Vec<(String, String)> = fleet
        .members
        .iter()
        .filter(|(u, _)| !run_file.done.contains(u))
        .cloned()
        .collect();
    let plan = format!(
        "migrate {} database{} of fleet {} ({} done before)",
        todo.len(),
        if todo.len() == 1 { "" } else { "s" },
        name,
        run_file.done.len()
    );
    let confirm = crate::guarded::confirm::Confirm::Yes;
    crate::guarded::confirm::precheck(
        &fleet.target,
        confirm,
        ctx.global.yes,
        "db-migrate --fleet",
    )?;
    if crate::guarded::confirm::needs_prompt(&fleet.target, confirm, ctx.global.yes) {
        crate::guarded::confirm::ask(&fleet.target, confirm, &plan)?;
    }
    ui::say(format!("{plan}; run file {}", run_file.path.display()));
    if !o.resume {
        run_file.append(
            ctx,
            &json!({"fleet": name, "env": fleet.target.env.name(), "started_at": crate::time::format_utc(crate::time::unix_now()),
                    "migrations": set.migrations.iter().map(|m| m.name.clone()).collect::<Vec<_>>()}),
        )?;
    }
    // The fleet's likely state: all but the newest migration applied (a rollout of one new
    // file). A member elsewhere costs one more request, once.
    // The first member is read in full and checked as `db-migrate` checks one database;
    // what it held becomes what every other member must hold (tracking table, checksums,
    // the schema's text), checked inside each member's one guarded request.
    let guess: std::sync::Mutex<Option<Expected>> = std::sync::Mutex::new(None);
    let started = std::time::Instant::now();
    let results: std::sync::Mutex<Vec<MemberRun>> = std::sync::Mutex::new(Vec::new());
    let stop = std::sync::atomic::AtomicBool::new(false);
    let total = todo.len();
    let progress = |results: &[MemberRun]| {
        let failed = results.iter().filter(|r| r.outcome == "failed").count();
        let done = results.len() - failed;
        let rate = results.len() as f64 / started.elapsed().as_secs_f64().max(0.001);
        let left = total - results.len();
        ui::progress(format!(
            "fleet {name}: {done} done, {failed} failed, {left} remaining, {rate:.1}/s, ETA {:.0} s",
            left as f64 / rate.max(0.001)
        ));
    };
    let record = |r: MemberRun| -> anyhow::Result<()> {
        run_file.append(ctx, &r.json())?;
        let mut all = results.lock().unwrap_or_else(|p| p.into_inner());
        all.push(r);
        progress(&all);
        Ok(())
    };
    let canary = o.canary.min(todo.len());
    for (uuid, db) in &todo[..canary] {
        let r = migrate_member(&fleet.api, &set, &table, &guess, uuid, db);
        let failed = r.outcome == "failed";
        record(r)?;
        if failed {
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
            break;
        }
    }
    let rest = &todo[canary..];
    let next = std::sync::atomic::AtomicUsize::new(0);
    let write_error: std::sync::Mutex<Option<anyhow::Error>> = std::sync::Mutex::new(None);
    if !stop.load(std::sync::atomic::Ordering::SeqCst) {
        std::thread::scope(|s| {
            for _ in 0..o.parallel.clamp(1, rest.len().max(1)) {
                s.spawn(|| loop {
                    if stop.load(std::sync::atomic::Ordering::SeqCst)
                        || crate::wrangler::proc::interrupted()
                    {
                        break;
                    }
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let Some((uuid, db)) = rest.get(i) else { break };
                    let r = migrate_member(&fleet.api, &set, &table, &guess, uuid, db);
                    if r.outcome == "failed" && !o.continue_on_error {
                        stop.store(true, std::sync::atomic::Ordering::SeqCst);
                    }
                    if let Err(e) = record(r) {
                        *write_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                        stop.store(true, std::sync::atomic::Ordering::SeqCst);
                    }
                });
            }
        });
    }
    ui::progress_done();
    if let Some(e) = write_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    let results = results.into_inner().unwrap_or_else(|p| p.into_inner());
    let count = |o: &str| results.iter().filter(|r| r.outcome == o).count();
    let failed: Vec<&MemberRun> = results.iter().filter(|r| r.outcome == "failed").collect();
    let untouched = total - results.len();
    let requests = fleet.api.requests();
    let mut report = Report::doc(json!({
        "fleet": name,
        "env": fleet.target.env.name(),
        "databases": fleet.members.len(),
        "done_before": run_file.done.len(),
        "applied": count("applied"),
        "up_to_date": count("up-to-date"),
        "failed": failed.iter().map(|r| r.json()).collect::<Vec<_>>(),
        "untouched": untouched,
        "requests": requests,
        "throttled": fleet.api.throttled.load(std::sync::atomic::Ordering::SeqCst),
        "seconds": started.elapsed().as_secs_f64(),
        "run_file": run_file.path.display().to_string(),
    }));
    report.line(format!(
        "fleet {name}: {} applied, {} up to date, {} failed, {untouched} untouched ({} done before); {requests} API requests in {:.1} s",
        count("applied"),
        count("up-to-date"),
        failed.len(),
        run_file.done.len(),
        started.elapsed().as_secs_f64()
    ));
    for r in failed.iter().take(50) {
        report.line(format!(
            "  failed: {} ({}): {}",
            r.name,
            r.uuid,
            r.error.as_deref().unwrap_or("")
        ));
    }
    if !failed.is_empty() {
        let how = if untouched > 0 {
            format!(
                "; {untouched} database{} not touched: fix the cause, then `{} db-migrate --fleet {name} --resume`",
                if untouched == 1 { "" } else { "s" },
                ctx.settings.command_prefix
            )
        } else {
            String::new()
        };
        return Err(stop_with(
            Exit::Failed,
            format!(
                "fleet {name}: {} database{} failed{how}",
                failed.len(),
                if failed.len() == 1 { "" } else { "s" }
            ),
            report,
        ));
    }
    Ok(report)
}
