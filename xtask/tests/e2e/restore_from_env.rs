//! `db-restore --from-env <env>`: staging's data copied into the local database through
//! its export (the emulator, the real wrangler); never the other way.

use crate::support::*;

/// Rows of `users` in the local file; `None` when there is no such table.
fn local_users(ws: &Workspace) -> Option<i64> {
    let conn = rusqlite::Connection::open(ws.local_file()).unwrap();
    conn.query_row("SELECT count(*) FROM users", [], |r| r.get(0))
        .ok()
}

#[test]
fn staging_data_comes_into_local_and_never_goes_back() {
    let ws = Workspace::sample("from-env");
    let emu = ws.emulator();
    ws.xtask_remote(&emu, &["db-migrate", "--env", "staging"], &[])
        .expect(0, &["applied 2 migrations"]);
    emu.execute(&ws, "staging",
        "INSERT INTO users (id, email, name) VALUES (1, 'bug@example.com', 'Bug Reporter'), (2, 'b@example.com', 'B');",
    )
    .unwrap();
    ws.xtask(&["db-migrate", "--no-backup"])
        .expect(0, &["applied 2 migrations"]);
    assert_eq!(local_users(&ws), Some(0));

    // Never into a remote database; a protected source is confirmed before it is read.
    ws.xtask_remote(
        &emu,
        &["db-restore", "--env", "staging", "--from-env", "production"],
        &[],
    )
    .expect(2, &["local database only"]);
    emu.emu().clear_requests();
    ws.xtask_remote(&emu, &["db-restore", "--from-env", "production"], &[])
        .expect(4, &["protected", "--yes"]);
    assert!(
        emu.emu().requests().is_empty(),
        "production was read before the confirmation"
    );

    ws.xtask_remote(&emu, &["db-restore", "--from-env", "staging"], &[])
        .expect(
            0,
            &[
                "restored local",
                "an export of staging",
                "to return to the state before this run",
            ],
        );
    assert_eq!(local_users(&ws), Some(2));
    // The local tracking table is staging's: nothing pending for raw wrangler either.
    assert!(ws.wrangler_pending().is_empty());
    // Staging is as it was.
    let items = emu
        .execute(&ws, "staging", "SELECT count(*) AS n FROM users")
        .unwrap();
    assert_eq!(items.last().unwrap()["results"][0]["n"], 2);

    ws.xtask_remote(
        &emu,
        &["db-restore", "--from-env", "production", "--yes"],
        &[],
    )
    .expect(
        0,
        &[
            "real data of production now sits on this machine",
            "restored local",
        ],
    );
    // Production was never migrated: the local database is now as empty as it is.
    assert_eq!(local_users(&ws), None);
}
