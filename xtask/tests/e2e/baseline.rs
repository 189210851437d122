//! `db-migrate --baseline <version>`: a staging schema made without wrangler's tracking
//! table is adopted; raw wrangler then sees those migrations as applied.

use crate::support::*;

#[test]
fn a_schema_made_by_hand_is_adopted_and_raw_wrangler_agrees() {
    let ws = Workspace::sample("baseline");
    let emu = ws.remote();
    let mut sql = String::new();
    for f in [
        "0001_initial_schema.sql",
        "0002_profiles_commerce_tokens.sql",
    ] {
        sql.push_str(&std::fs::read_to_string(ws.dir.join("migrations").join(f)).unwrap());
    }
    emu.execute(&ws, "staging", &sql).unwrap();
    ws.migration(
        "0003_tags.sql",
        "CREATE TABLE tags (id INTEGER PRIMARY KEY, name TEXT NOT NULL);\n",
    );

    // Before: everything pending, and every table is schema drift pointing at --baseline.
    ws.xtask_remote(&emu, &["db-status", "--env", "staging"], &[])
        .expect(0, &["0 applied, 3 pending", "--baseline <version>"]);
    // Production confirms: refused at once without a terminal or --yes.
    ws.xtask_remote(
        &emu,
        &["db-migrate", "--env", "production", "--baseline", "2"],
        &[],
    )
    .expect(4, &["protected", "--yes"]);

    ws.xtask_remote(
        &emu,
        &["db-migrate", "--env", "staging", "--baseline", "2"],
        &[],
    )
    .expect(
        0,
        &[
            "record 2 migrations as applied without running them",
            "recorded 2 migrations",
        ],
    );
    assert_eq!(ws.remote_pending(&emu, "staging"), ["0003_tags.sql"]);
    // Nothing ran: the tables are the hand-made ones, and the schema matches the files.
    ws.xtask_remote(&emu, &["db-status", "--env", "staging"], &[])
        .expect(0, &["2 applied, 1 pending, 0 problems"]);
    ws.xtask_remote(
        &emu,
        &["db-migrate", "--env", "staging", "--baseline", "1"],
        &[],
    )
    .expect(
        4,
        &[
            "already lists 0001_initial_schema.sql",
            "nothing was recorded",
        ],
    );
    ws.xtask_remote(&emu, &["db-migrate", "--env", "staging"], &[])
        .expect(0, &["applied 1 migration"]);
    assert!(ws.remote_pending(&emu, "staging").is_empty());
}
