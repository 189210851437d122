//! Fleets against the emulator: 200 tenant databases made at start, the account's list
//! paged as D1 pages it, a rate limit that answers 429 with `Retry-After`.

use crate::support::{Remote, Workspace};

const M1: &str = "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL);\n";
const M2: &str = "ALTER TABLE notes ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0;\n";
const TRACKING: &str = "CREATE TABLE IF NOT EXISTS d1_migrations(id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT UNIQUE, applied_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP NOT NULL);";

/// Applies the first `n` migrations to a member as plain wrangler would (the files, then
/// wrangler's tracking rows), straight into the emulator's store.
fn apply(emu: &Remote, name: &str, n: usize) {
    let uuid = d1_emulator::store::uuid_for_name(name);
    let mut sql = String::from(TRACKING);
    for (file, body) in [("0001_notes.sql", M1), ("0002_pinned.sql", M2)]
        .iter()
        .take(n)
    {
        sql.push_str(body);
        sql.push_str(&format!(
            "INSERT INTO d1_migrations (name) VALUES ('{file}');"
        ));
    }
    emu.emu().execute(&uuid, &sql).unwrap();
}

/// A workspace with two migrations and the fleet `tenants` (every `tenant-*` database of
/// staging's account), and an emulator holding 200 tenants, with the API's rate limit
/// `rate` (requests, window in ms) if given.
fn fleet_workspace(tag: &str, rate: Option<(u32, u64)>) -> (Workspace, Remote) {
    let ws = Workspace::new(tag);
    ws.migration("0001_notes.sql", M1);
    ws.migration("0002_pinned.sql", M2);
    ws.write(
        "xtask.jsonc",
        r#"{ "fleets": { "tenants": { "env": "staging", "databases": "tenant-*" } } }"#,
    );
    let emu = ws.emulator_with(|o| {
        o.fleets = vec![("tenant-".into(), 200)];
        o.rate_limit = rate.map(|(requests, window_ms)| d1_emulator::RateLimit {
            requests,
            window_ms,
        });
    });
    (ws, emu)
}

/// `db-status --fleet`: how many members are at each migration, which are behind, which
/// are wrong; one request per member (plus the list's pages); 429s waited out; the same
/// view as raw `wrangler d1 migrations list` on a sample of members.
#[test]
fn fleet_status_counts_every_member_at_the_apis_pace_and_agrees_with_wrangler() {
    // The emulator's limit is stricter than the xtask's own pace (1,200 per 5 minutes):
    // 429s come and are waited out.
    let (ws, emu) = fleet_workspace("fleet-status", Some((40, 1000)));
    for i in 1..=200 {
        let name = format!("tenant-{i:04}");
        match i {
            1..=150 => apply(&emu, &name, 2),
            151..=190 => apply(&emu, &name, 1),
            _ => {}
        }
    }
    // One member applied a file the folder no longer has: drift.
    let odd = d1_emulator::store::uuid_for_name("tenant-0007");
    emu.emu()
        .execute(
            &odd,
            "INSERT INTO d1_migrations (name) VALUES ('0003_gone.sql');",
        )
        .unwrap();
    // Raw wrangler on a sample of members: what it says is pending (before the xtask
    // runs, so that the emulator's rate limit is not reached yet).
    ws.write(
        "sample.jsonc",
        format!(
            r#"{{ "name": "sample", "d1_databases": [
              {{ "binding": "A", "database_name": "tenant-0001", "database_id": "{}", "migrations_dir": "migrations" }},
              {{ "binding": "B", "database_name": "tenant-0160", "database_id": "{}", "migrations_dir": "migrations" }} ] }}"#,
            d1_emulator::store::uuid_for_name("tenant-0001"),
            d1_emulator::store::uuid_for_name("tenant-0160")
        ),
    );
    for (binding, pending) in [("A", "No migrations to apply"), ("B", "0002_pinned.sql")] {
        let raw = ws.wrangler_remote(
            &emu,
            &[
                "d1",
                "migrations",
                "list",
                binding,
                "--remote",
                "--config",
                "sample.jsonc",
            ],
        );
        assert_eq!(raw.code, 0, "{}\n{}", raw.stdout, raw.stderr);
        assert!(raw.stdout.contains(pending), "{binding}: {}", raw.stdout);
    }
    emu.emu().clear_requests();
    let run = ws.xtask_remote(&emu, &["db-status", "--fleet", "tenants", "--json"], &[]);
    run.expect(0, &["fleet tenants: 200 databases"]);
    let doc = run.json();
    assert_eq!(doc["databases"], 200);
    assert_eq!(doc["at"]["0002_pinned.sql"], 149, "{doc}");
    assert_eq!(doc["at"]["0003_gone.sql"], 1, "{doc}");
    assert_eq!(doc["at"]["0001_notes.sql"], 40, "{doc}");
    assert_eq!(doc["at"]["(none)"], 10, "{doc}");
    assert_eq!(doc["behind"].as_array().unwrap().len(), 50);
    assert_eq!(doc["problems"].as_array().unwrap().len(), 1);
    assert_eq!(doc["problems"][0]["database"], "tenant-0007");
    // One request per member, plus the list: 200 databases of the fleet and the three of
    // the config, 100 a page.
    let requests = doc["requests"].as_u64().unwrap();
    let sent = emu.emu().requests().len() as u64;
    assert_eq!(requests, sent, "the xtask counts what it sends");
    assert_eq!(requests - emu.emu().rate_limited(), 200 + 3, "{doc}");
    assert!(
        emu.emu().rate_limited() > 0,
        "the emulator's limit was reached"
    );

    // --check: exit 3, the same document.
    let check = ws.xtask_remote(&emu, &["db-status", "--fleet", "tenants", "--check"], &[]);
    check.expect(3, &["50 behind", "1 with problems"]);
}

#[test]
fn fleet_settings_and_arguments_are_checked_before_any_request() {
    let ws = Workspace::new("fleet-refusals");
    ws.write(
        "xtask.jsonc",
        r#"{ "fleets": { "t": { "env": "staging" } } }"#,
    );
    ws.xtask(&["db-status", "--fleet", "t"])
        .expect(2, &["fleets.t needs exactly one of"]);
    ws.write(
        "xtask.jsonc",
        r#"{ "fleets": { "t": { "env": "local", "databases": "x-*" } } }"#,
    );
    ws.xtask(&["db-status", "--fleet", "t"])
        .expect(2, &["fleets.t.env is `local`"]);
    ws.write(
        "xtask.jsonc",
        r#"{ "fleets": { "t": { "env": "staging", "databases": "x-*" } } }"#,
    );
    ws.xtask(&["db-status", "--fleet", "nope"])
        .expect(2, &["no fleet `nope`", "the fleets are t"]);
    ws.xtask(&["db-status", "--fleet", "t", "--env", "staging"])
        .expect(2, &["drop --env"]);
    ws.xtask_with(
        &["db-status", "--fleet", "t"],
        &[("CLOUDFLARE_ACCOUNT_ID", ""), ("CLOUDFLARE_API_TOKEN", "x")],
    )
    .expect(2, &["CLOUDFLARE_ACCOUNT_ID is not set"]);
}

/// The names in a member's tracking table, from the emulator's store.
fn tracked(emu: &Remote, name: &str) -> Vec<String> {
    let uuid = d1_emulator::store::uuid_for_name(name);
    emu.emu()
        .execute(&uuid, "SELECT name FROM d1_migrations ORDER BY id")
        .map(|items| {
            items.last().unwrap()["results"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["name"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn fleet_at_first(tag: &str, rate: Option<(u32, u64)>) -> (Workspace, Remote) {
    let (ws, emu) = fleet_workspace(tag, rate);
    for i in 1..=200 {
        apply(&emu, &format!("tenant-{i:04}"), 1);
    }
    (ws, emu)
}

/// A member where 0002 fails: the column it adds is there already (added by hand).
fn break_member(emu: &Remote, name: &str) {
    let uuid = d1_emulator::store::uuid_for_name(name);
    emu.emu()
        .execute(&uuid, "ALTER TABLE notes ADD COLUMN pinned INTEGER")
        .unwrap();
}

/// 200 members one migration behind: each gets it in two requests (a bookmark, then one
/// request that checks, applies, records and reads back), exactly once, in wrangler's
/// tracking format; a second run finds nothing to do.
#[test]
fn fleet_migrate_takes_two_requests_a_member_and_applies_once() {
    let (ws, emu) = fleet_at_first("fleet-migrate", None);
    emu.emu().clear_requests();
    let run = ws.xtask_remote(&emu, &["db-migrate", "--fleet", "tenants", "--json"], &[]);
    run.expect(0, &["fleet tenants: 200 databases"]);
    let doc = run.json();
    assert_eq!(doc["applied"], 200, "{doc}");
    assert_eq!(doc["failed"].as_array().unwrap().len(), 0);
    // Two a member, one more for the first (read in full and checked: what it holds is
    // then checked on every other member inside its one request), three list pages.
    let list_pages = 3;
    assert_eq!(doc["requests"], 200 * 2 + 1 + list_pages, "{doc}");
    assert_eq!(emu.emu().requests().len(), 200 * 2 + 1 + list_pages);
    for i in [1, 57, 200] {
        assert_eq!(
            tracked(&emu, &format!("tenant-{i:04}")),
            ["0001_notes.sql", "0002_pinned.sql"]
        );
    }
    // Raw wrangler on a member: nothing pending, in its own tracking format.
    ws.write(
        "sample.jsonc",
        format!(
            r#"{{ "name": "sample", "d1_databases": [ {{ "binding": "A", "database_name": "tenant-0099", "database_id": "{}", "migrations_dir": "migrations" }} ] }}"#,
            d1_emulator::store::uuid_for_name("tenant-0099")
        ),
    );
    let raw = ws.wrangler_remote(
        &emu,
        &[
            "d1",
            "migrations",
            "list",
            "A",
            "--remote",
            "--config",
            "sample.jsonc",
        ],
    );
    assert!(
        raw.stdout.contains("No migrations to apply"),
        "{}",
        raw.stdout
    );
    let again = ws.xtask_remote(&emu, &["db-migrate", "--fleet", "tenants", "--json"], &[]);
    again.expect(0, &[]);
    assert_eq!(again.json()["up_to_date"], 200, "{}", again.stdout);
    assert_eq!(
        tracked(&emu, "tenant-0001").len(),
        2,
        "nothing applied twice"
    );
}

/// A failing canary stops the run: nothing else is touched. With --continue-on-error the
/// run goes on and reports exactly the members made to fail.
#[test]
fn a_failing_canary_stops_the_run_and_continue_on_error_reports_each_failure() {
    let (ws, emu) = fleet_at_first("fleet-canary", None);
    break_member(&emu, "tenant-0001");
    let run = ws.xtask_remote(&emu, &["db-migrate", "--fleet", "tenants", "--json"], &[]);
    run.expect(
        1,
        &["1 database failed", "199 databases not touched", "--resume"],
    );
    let doc = run.json();
    assert_eq!(doc["failed"][0]["database"], "tenant-0001", "{doc}");
    assert_eq!(doc["untouched"], 199);
    for i in 2..=200 {
        assert_eq!(
            tracked(&emu, &format!("tenant-{i:04}")),
            ["0001_notes.sql"],
            "tenant-{i:04}"
        );
    }

    let (ws, emu) = fleet_at_first("fleet-continue", None);
    let broken = ["tenant-0050", "tenant-0100", "tenant-0150"];
    break_member(&emu, broken[0]);
    break_member(&emu, broken[1]);
    // The third fails at the API: a fault injected on that database's requests.
    emu.emu().add_fault(
        d1_emulator::Fault::new(
            &format!("{}/query", d1_emulator::store::uuid_for_name(broken[2])),
            d1_emulator::FaultKind::Fail,
        )
        .method("POST")
        .times(10),
    );
    let run = ws.xtask_remote(
        &emu,
        &[
            "db-migrate",
            "--fleet",
            "tenants",
            "--continue-on-error",
            "--parallel",
            "8",
            "--json",
        ],
        &[],
    );
    run.expect(1, &["3 databases failed"]);
    let doc = run.json();
    let mut failed: Vec<&str> = doc["failed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["database"].as_str().unwrap())
        .collect();
    failed.sort();
    assert_eq!(failed, broken);
    assert_eq!(doc["applied"], 197);
    assert_eq!(
        tracked(&emu, "tenant-0050"),
        ["0001_notes.sql"],
        "rolled back whole"
    );
}

/// Killed in the middle (with the API's rate limit slowing it), then `--resume`: every
/// member ends with each migration once; 429s were waited out.
#[test]
fn a_killed_fleet_run_resumes_to_completion_and_429s_are_waited_out() {
    let (ws, emu) = fleet_at_first("fleet-resume", Some((40, 1000)));
    let mut cmd = std::process::Command::new(crate::support::xtask_bin());
    cmd.args(["db-migrate", "--fleet", "tenants"])
        .current_dir(&ws.dir)
        .env("CI", "true")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    for (k, v) in emu.env() {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let runs = ws.dir.join("backups/fleet-runs");
    let lines = || -> usize {
        std::fs::read_dir(&runs)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| {
                std::fs::read_to_string(e.path())
                    .unwrap_or_default()
                    .lines()
                    .count()
            })
            .sum()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while lines() < 60 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    let _ = child.wait();
    let done_before = lines() - 1;
    assert!(
        (59..200).contains(&done_before),
        "{done_before} members done before the kill"
    );
    let resumed = ws.xtask_remote(
        &emu,
        &["db-migrate", "--fleet", "tenants", "--resume", "--json"],
        &[],
    );
    resumed.expect(0, &["--resume: continuing"]);
    let doc = resumed.json();
    assert_eq!(
        doc["done_before"].as_u64().unwrap() as usize,
        done_before,
        "{doc}"
    );
    assert!(
        emu.emu().rate_limited() > 0,
        "the API's limit was reached and waited out"
    );
    for i in 1..=200 {
        assert_eq!(
            tracked(&emu, &format!("tenant-{i:04}")),
            ["0001_notes.sql", "0002_pinned.sql"],
            "tenant-{i:04}"
        );
    }
    // Raw wrangler on a sample: nothing pending, and its own listing of the tracking table
    // (wrangler's format: id, name, applied_at) has each file once.
    let sample = ["tenant-0001", "tenant-0100", "tenant-0200"];
    let entries: Vec<String> = sample
        .iter()
        .enumerate()
        .map(|(i, n)| {
            format!(
                r#"{{ "binding": "S{i}", "database_name": "{n}", "database_id": "{}", "migrations_dir": "migrations" }}"#,
                d1_emulator::store::uuid_for_name(n)
            )
        })
        .collect();
    ws.write(
        "sample.jsonc",
        format!(
            r#"{{ "name": "sample", "d1_databases": [ {} ] }}"#,
            entries.join(", ")
        ),
    );
    std::thread::sleep(std::time::Duration::from_millis(1100)); // a fresh rate-limit window
    for i in 0..sample.len() {
        let binding = format!("S{i}");
        let raw = ws.wrangler_remote(
            &emu,
            &[
                "d1",
                "migrations",
                "list",
                &binding,
                "--remote",
                "--config",
                "sample.jsonc",
            ],
        );
        assert!(
            raw.stdout.contains("No migrations to apply"),
            "{}",
            raw.stdout
        );
    }
    let rows = ws.wrangler_remote(
        &emu,
        &[
            "d1",
            "execute",
            "S1",
            "--remote",
            "--config",
            "sample.jsonc",
            "--json",
            "--command",
            "SELECT id, name, applied_at FROM d1_migrations ORDER BY id",
        ],
    );
    let names: Vec<String> = rows
        .last_results()
        .iter()
        .map(|r| {
            assert!(r["id"].is_i64() && r["applied_at"].is_string(), "{r}");
            r["name"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(names, ["0001_notes.sql", "0002_pinned.sql"]);
}

/// A member whose applied file was edited since (its recorded checksum differs) is drift:
/// refused, nothing changed, and as the canary it stops the run. A protected environment
/// without --yes and without a terminal: exit 4, naming how many databases, nothing sent
/// to any member.
#[test]
fn fleet_drift_and_protection_refuse() {
    let (ws, emu) = fleet_at_first("fleet-drift", None);
    let uuid = d1_emulator::store::uuid_for_name("tenant-0001");
    emu.emu()
        .execute(
            &uuid,
            "CREATE TABLE IF NOT EXISTS d1_migrations_checksums (name TEXT PRIMARY KEY, sha256 TEXT NOT NULL, \
             recorded_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP, how TEXT NOT NULL DEFAULT 'applied'); \
             INSERT INTO d1_migrations_checksums (name, sha256) VALUES ('0001_notes.sql', 'not-the-file');",
        )
        .unwrap();
    let run = ws.xtask_remote(&emu, &["db-migrate", "--fleet", "tenants", "--json"], &[]);
    run.expect(1, &["drift", "0001_notes.sql", "199 databases not touched"]);
    assert_eq!(tracked(&emu, "tenant-0001"), ["0001_notes.sql"]);
    assert_eq!(tracked(&emu, "tenant-0002"), ["0001_notes.sql"]);

    // A column added by hand on one member (not the first): its request finds a schema
    // other than the first member's, it is read in full, and the live-schema check refuses
    // it; the others are migrated.
    let (ws2, emu2) = fleet_at_first("fleet-schema-drift", None);
    emu2.emu()
        .execute(
            &d1_emulator::store::uuid_for_name("tenant-0100"),
            "ALTER TABLE notes ADD COLUMN extra TEXT",
        )
        .unwrap();
    let run = ws2.xtask_remote(
        &emu2,
        &[
            "db-migrate",
            "--fleet",
            "tenants",
            "--continue-on-error",
            "--json",
        ],
        &[],
    );
    run.expect(1, &["1 database failed"]);
    let doc = run.json();
    assert_eq!(doc["failed"][0]["database"], "tenant-0100", "{doc}");
    assert!(
        doc["failed"][0]["error"]
            .as_str()
            .unwrap()
            .contains("drift"),
        "{doc}"
    );
    assert_eq!(doc["applied"], 199);
    assert_eq!(tracked(&emu2, "tenant-0100"), ["0001_notes.sql"]);

    ws.write(
        "xtask.jsonc",
        r#"{ "fleets": { "tenants": { "env": "production", "databases": "tenant-*" } } }"#,
    );
    emu.emu().clear_requests();
    let refused = ws.xtask_remote(&emu, &["db-migrate", "--fleet", "tenants"], &[]);
    refused.expect(4, &["200 databases", "production"]);
    let touched: Vec<String> = emu
        .emu()
        .requests()
        .iter()
        .filter(|r| r.path.contains("/query") || r.path.contains("time_travel"))
        .map(|r| r.path.clone())
        .collect();
    assert!(touched.is_empty(), "{touched:?}");
}
