//! D1 as it really is: the emulator refuses what D1 refuses (checked through the real
//! wrangler, the client D1 users have), and the xtask works under those rules on a
//! staging database of eight tables, checked afterwards in the emulator's database.

use crate::support::Workspace;
use d1_emulator::{Fault, FaultKind};

/// A migration every shape of D1's splitter trouble is in: lower-case `begin`, CRLF line
/// ends and a `CASE ... END` inside the trigger body, after another statement.
const TRIGGER_MIGRATION: &str = "create table audit_log (id integer primary key, what text not null);\r\n\
create trigger products_audit after update of stock on products\r\n\
begin\r\n\
  insert into audit_log (what) values (case when new.stock = 0 then 'sold out' else 'restocked' end);\r\n\
end;\r\n";

fn remote_args<'a>(env: &'a str, rest: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["d1", "execute", "DB", "--env", env, "--remote"];
    args.extend_from_slice(rest);
    args
}

#[test]
fn wrangler_meets_d1_rules_on_the_emulator() {
    let ws = Workspace::sample("d1-conformance");
    ws.migration("0003_audit.sql", TRIGGER_MIGRATION);
    let emu = ws.emulator_with(|o| {
        o.rules.request_timeout_ms = 300;
        o.rules.retention_days = 7;
        o.rules.max_restores = 1;
    });

    // Section 1: five terms in a compound SELECT, no more.
    let six = "SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4 UNION ALL SELECT 5 UNION ALL SELECT 6";
    let run = ws.wrangler_remote(&emu, &remote_args("staging", &["--command", six]));
    run.expect(1, &["too many terms in compound SELECT", "7500"]);
    // Section 2: the authorizer. Section 6: the offset in a syntax error.
    let run = ws.wrangler_remote(
        &emu,
        &remote_args(
            "staging",
            &[
                "--command",
                "PRAGMA journal_mode = WAL; SELECT * FROM _cf_KV",
            ],
        ),
    );
    run.expect(1, &["not authorized"]);
    ws.wrangler_remote(
        &emu,
        &remote_args("staging", &["--command", "SELECT * FROM _cf_KV"]),
    )
    .expect(1, &["SQLITE_AUTH"]);
    let wide = (0..101)
        .map(|i| format!("c{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    ws.wrangler_remote(
        &emu,
        &remote_args(
            "staging",
            &["--command", &format!("CREATE TABLE wide ({wide})")],
        ),
    )
    .expect(1, &["too many columns"]);
    let run = ws.wrangler_remote(
        &emu,
        &remote_args("staging", &["--command", "SELECT 1 FROM x WHERE;"]),
    );
    run.expect(1, &["syntax error at offset 21"]);
    // Section 7: the request time limit.
    let slow =
        "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c) SELECT count(*) FROM c";
    let run = ws.wrangler_remote(&emu, &remote_args("staging", &["--command", slow]));
    run.expect(1, &["exceeded timeout"]);

    // Section 3: raw `migrations apply --remote` of the trigger migration fails as it does
    // on D1 (each file is one /query request); the files before it stay applied.
    let run = ws.wrangler_remote(
        &emu,
        &[
            "d1",
            "migrations",
            "apply",
            "DB",
            "--env",
            "production",
            "--remote",
        ],
    );
    assert!(
        format!("{}{}", run.stdout, run.stderr).contains("incomplete input"),
        "{}\n{}",
        run.stdout,
        run.stderr
    );
    assert_eq!(
        ws.remote_pending(&emu, "production"),
        ["0003_audit.sql"],
        "0001 and 0002 applied, the trigger migration not"
    );
    // The same file through the import API (`execute --file`) goes through (#15178).
    ws.wrangler_remote(
        &emu,
        &remote_args(
            "production",
            &["--file", "migrations/0003_audit.sql", "--yes"],
        ),
    )
    .expect(0, &[]);
    let triggers = ws.remote_query(
        &emu,
        "production",
        "SELECT name FROM sqlite_master WHERE type = 'trigger'",
    );
    assert_eq!(triggers.len(), 1, "{triggers:?}");

    // Section 8: the export writes integers as JavaScript numbers.
    ws.wrangler_remote(
        &emu,
        &remote_args(
            "staging",
            &[
                "--command",
                "CREATE TABLE n (v INTEGER); INSERT INTO n VALUES (9007199254740993)",
            ],
        ),
    )
    .expect(0, &[]);
    ws.wrangler_remote(
        &emu,
        &[
            "d1", "export", "DB", "--env", "staging", "--remote", "--output", "n.sql",
        ],
    )
    .expect(0, &[]);
    let dump = std::fs::read_to_string(ws.dir.join("n.sql")).unwrap();
    assert!(dump.contains("VALUES(9007199254740992)"), "{dump}");
    assert!(!dump.contains("_cf_KV"), "{dump}");

    // Section 7: retention (7 days here, a free plan; wrangler itself checks 30) and the
    // restore rate (one per window here, ten on D1).
    let ten_days_ago = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 10 * 86_400)
        .to_string();
    let tt = |extra: &[&str]| {
        let mut args = vec!["d1", "time-travel"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["DB", "--env", "staging", "--json"]);
        ws.wrangler_remote(&emu, &args)
    };
    tt(&["info", "--timestamp", &ten_days_ago]).expect(1, &["retention period of 7 days"]);
    let info = tt(&["info"]);
    let bookmark = serde_json::from_str::<serde_json::Value>(&info.stdout).unwrap()["bookmark"]
        .as_str()
        .unwrap()
        .to_string();
    tt(&["restore", "--bookmark", &bookmark]).expect(0, &[]);
    tt(&["restore", "--bookmark", &bookmark]).expect(1, &["too many restores"]);
}

#[test]
fn the_xtask_works_under_d1_rules_on_staging() {
    let ws = Workspace::sample("d1-staging");
    ws.migration("0003_audit.sql", TRIGGER_MIGRATION);
    let emu = ws.remote();
    let xt = |args: &[&str]| ws.xtask_remote(&emu, args, &[]);

    // Lint knows what D1 refuses before anything is sent.
    ws.migration("0004_bad.sql", "CREATE TEMP TABLE scratch (x);\n");
    xt(&["db-migrate", "--env", "staging"]).expect(4, &["0004_bad.sql:1", "not authorized"]);
    std::fs::remove_file(ws.dir.join("migrations/0004_bad.sql")).unwrap();

    // A rehearsal on a copy; then the real thing: the trigger migration goes through.
    xt(&["db-migrate", "--env", "staging", "--rehearse"]).expect(0, &["0003_audit.sql"]);
    assert!(ws.remote_pending(&emu, "staging").len() == 3);
    xt(&["db-migrate", "--env", "staging"]).expect(0, &["applied 3 migrations"]);
    assert!(ws.remote_pending(&emu, "staging").is_empty());
    let (tables, _) = ws.remote_tables_and_applied(&emu, "staging");
    assert_eq!(tables.len(), 8, "{tables:?}");
    // Its meaning is intact: the CASE decides, the trigger fires.
    emu.execute(
        &ws,
        "staging",
        "INSERT INTO products (id, sku, name, price_cents, stock) VALUES (1, 'A', 'a', 100, 3)",
    )
    .unwrap();
    ws.wrangler_remote(
        &emu,
        &remote_args(
            "staging",
            &["--command", "UPDATE products SET stock = 0 WHERE id = 1"],
        ),
    )
    .expect(0, &[]);
    let audit = ws.remote_query(&emu, "staging", "SELECT what FROM audit_log");
    assert_eq!(audit[0]["what"], "sold out");

    // A stray table whose name a LIKE '_cf_%' would hide.
    emu.execute(&ws, "staging",
        "CREATE TABLE xcf_notes (id INTEGER PRIMARY KEY, body TEXT); INSERT INTO xcf_notes VALUES (1, 'keep me')",
    )
    .unwrap();
    let status = xt(&["db-status", "--env", "staging", "--json"]);
    status.expect(0, &[]);

    // Seeding writes six tables and counts them under D1's five-term limit.
    let seed = xt(&["db-seed", "--env", "staging", "--json"]);
    seed.expect(0, &["rows now"]);
    let counts = seed.json()["row_counts"].as_array().unwrap().len();
    assert!(counts >= 6, "{}", seed.stdout);
    let users = ws.remote_query(
        &emu,
        "staging",
        "SELECT count(*) AS n FROM users WHERE id >= 900000",
    );
    assert!(users[0]["n"].as_i64().unwrap() > 0);

    // Backup, damage, restore from the backup: rows and the stray table come back.
    let backup = xt(&["db-backup", "--env", "staging", "--json"]);
    backup.expect(0, &[]);
    let id = backup.json()["id"].as_str().unwrap().to_string();
    emu.execute(
        &ws,
        "staging",
        "DELETE FROM audit_log; DELETE FROM xcf_notes",
    )
    .unwrap();
    xt(&["db-restore", "--env", "staging", "--backup", &id]).expect(0, &["restored"]);
    let back = ws.remote_query(
        &emu,
        "staging",
        "SELECT (SELECT count(*) FROM audit_log) AS a, (SELECT count(*) FROM xcf_notes) AS x, \
         (SELECT count(*) FROM sqlite_master WHERE type = 'trigger') AS t",
    );
    assert_eq!(
        (&back[0]["a"], &back[0]["x"], &back[0]["t"]),
        (&1.into(), &1.into(), &1.into())
    );

    // A reset drops everything the database holds, the stray table too, and re-applies.
    xt(&["db-reset", "--env", "staging"]).expect(0, &[]);
    let (tables, applied) = ws.remote_tables_and_applied(&emu, "staging");
    assert_eq!(tables.len(), 8, "{tables:?}");
    assert!(!tables.contains(&"xcf_notes".to_string()), "{tables:?}");
    assert_eq!(applied.len(), 3);

    // A database_id D1 does not know: a clear error, nothing created.
    let config = std::fs::read_to_string(ws.dir.join("wrangler.jsonc")).unwrap();
    let ghost = "00000000-0000-4000-8000-00000000dead";
    ws.write(
        "wrangler.jsonc",
        config.replace(
            "\"production\": {",
            &format!("\"ghost\": {{ \"d1_databases\": [ {{ \"binding\": \"DB\", \"database_name\": \"ghost-db\", \"database_id\": \"{ghost}\" }} ] }},\n    \"production\": {{"),
        ),
    );
    let run = xt(&["db-migrate", "--env", "ghost"]);
    run.expect(2, &["ghost", ghost, "7404", "nothing was changed"]);
    if !emu.is_live() {
        assert!(
            emu.emu().execute(ghost, "SELECT 1").is_err(),
            "D1 never creates it"
        );
    }
}

#[test]
fn lost_replies_and_failed_imports_are_settled_by_reading_back() {
    let ws = Workspace::sample("d1-faults");
    let emu = ws.emulator();
    let xt = |args: &[&str]| ws.xtask_remote(&emu, args, &[]);

    // The apply commits, then the connection drops before the answer.
    emu.emu().add_fault(
        Fault::new("/query", FaultKind::CommitThenDrop)
            .method("POST")
            .nth(2),
    );
    let run = xt(&["db-migrate", "--env", "staging"]);
    run.expect(
        0,
        &[
            "only its reply was lost",
            "applied 2 migrations: 0001_initial_schema.sql, 0002_profiles_commerce_tokens.sql",
        ],
    );
    emu.emu().clear_faults();
    assert!(ws.remote_pending(&emu, "staging").is_empty());
    xt(&["db-status", "--env", "staging", "--check"]).expect(0, &[]);

    // An import that fails half-way leaves nothing: D1 returns to the state before it.
    ws.migration("0003_audit.sql", TRIGGER_MIGRATION);
    // The second POST to /import is the ingest (the first is its init).
    emu.emu().add_fault(
        Fault::new("/import", FaultKind::ImportFailAfter(3))
            .method("POST")
            .nth(2),
    );
    let run = xt(&["db-migrate", "--env", "staging"]);
    run.expect(1, &["0003_audit.sql", "Network connection lost"]);
    emu.emu().clear_faults();
    assert_eq!(ws.remote_pending(&emu, "staging"), ["0003_audit.sql"]);
    let (tables, _) = ws.remote_tables_and_applied(&emu, "staging");
    assert!(!tables.contains(&"audit_log".to_string()), "{tables:?}");
}
