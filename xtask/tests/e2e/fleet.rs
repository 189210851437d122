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

fn fleet_workspace(tag: &str) -> (Workspace, Remote) {
    let ws = Workspace::new(tag);
    ws.migration("0001_notes.sql", M1);
    ws.migration("0002_pinned.sql", M2);
    ws.write(
        "xtask.jsonc",
        r#"{ "fleets": { "tenants": { "env": "staging", "databases": "tenant-*" } } }"#,
    );
    let emu = ws.emulator_with(|o| {
        o.fleets = vec![("tenant-".into(), 200)];
        // Stricter than the xtask's own pace (1,200 per 5 minutes): 429s come and are
        // waited out.
        o.rate_limit = Some(d1_emulator::RateLimit {
            requests: 150,
            window_ms: 2000,
        });
    });
    (ws, emu)
}

/// `db-status --fleet`: how many members are at each migration, which are behind, which
/// are wrong; one request per member (plus the list's pages); 429s waited out; the same
/// view as raw `wrangler d1 migrations list` on a sample of members.
#[test]
fn fleet_status_counts_every_member_at_the_apis_pace_and_agrees_with_wrangler() {
    let (ws, emu) = fleet_workspace("fleet-status");
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
