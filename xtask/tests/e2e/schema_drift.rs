//! Schema drift: an `ALTER TABLE` run by hand on staging (through the emulator) is
//! reported by `db-status`, fails `--check`, and stops `db-migrate` unless `--allow-drift`.

use crate::support::*;

#[test]
fn a_column_added_by_hand_on_staging_is_reported_and_blocks_migrate() {
    let ws = Workspace::sample("schema-drift");
    let emu = ws.remote();
    ws.xtask_remote(&emu, &["db-migrate", "--env", "staging"], &[])
        .expect(0, &["applied 2 migrations"]);
    // Someone fixes production-like data by hand: a column and an index nobody wrote down.
    emu.execute(
        &ws,
        "staging",
        "ALTER TABLE users ADD COLUMN phone TEXT; DROP INDEX idx_posts_user_id;",
    )
    .unwrap();

    let run = ws.xtask_remote(&emu, &["db-status", "--env", "staging", "--json"], &[]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let doc = run.json();
    let drift: Vec<&serde_json::Value> = doc["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["kind"] == "schema-drift")
        .collect();
    assert_eq!(drift.len(), 2, "{doc:#}");
    let text = serde_json::to_string(&drift).unwrap();
    assert!(
        text.contains("column phone TEXT") && text.contains("idx_posts_user_id"),
        "{text}"
    );
    ws.xtask_remote(&emu, &["db-status", "--env", "staging", "--check"], &[])
        .expect(3, &["blocking problem"]);

    // A new migration is not applied over it...
    ws.migration(
        "0003_tags.sql",
        "CREATE TABLE tags (id INTEGER PRIMARY KEY, name TEXT NOT NULL);\n",
    );
    ws.xtask_remote(&emu, &["db-migrate", "--env", "staging"], &[])
        .expect(
            4,
            &[
                "table `users` differs",
                "column phone TEXT",
                "nothing was applied",
            ],
        );
    assert_eq!(ws.remote_pending(&emu, "staging"), ["0003_tags.sql"]);
    // ...unless the drift is accepted, said as a warning.
    ws.xtask_remote(
        &emu,
        &["db-migrate", "--env", "staging", "--allow-drift"],
        &[],
    )
    .expect(0, &["warning (--allow-drift)", "applied 1 migration"]);
    assert!(ws.remote_pending(&emu, "staging").is_empty());
}
