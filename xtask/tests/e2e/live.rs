//! The live switch: with `D1_XTASK_LIVE=1`, `CLOUDFLARE_API_TOKEN` and
//! `CLOUDFLARE_ACCOUNT_ID`, `Workspace::remote()` gives the remote tests throwaway
//! databases in a real account instead of the emulator. There is no network here, so the
//! same code is pointed at an emulator that plays the account (an empty one, reached by
//! URL, databases made and deleted through `wrangler d1 create` and `wrangler d1 delete`).

use crate::support::{Live, LiveAccount, Remote, Workspace, ACCOUNT, LIVE_PREFIX, TOKEN};

fn names(account: &LiveAccount) -> Vec<String> {
    let mut n: Vec<String> = account.list().into_iter().map(|(name, _)| name).collect();
    n.sort();
    n
}

#[test]
fn live_mode_creates_uses_and_deletes_throwaway_databases_even_when_a_test_fails() {
    let home = Workspace::new("live-account");
    let emu = d1_emulator::Emulator::start(d1_emulator::Options {
        data_dir: home.dir.join("emulator-data"),
        token: Some(TOKEN.to_string()),
        databases: Vec::new(),
        ..d1_emulator::Options::default()
    })
    .unwrap();
    let account = LiveAccount {
        base_url: Some(emu.base_url()),
        token: TOKEN.to_string(),
        account: ACCOUNT.to_string(),
    };
    // Someone's own database, and a leftover of a live run killed four hours ago.
    emu.create_database("6b0a4c1e-0000-4000-8000-00000000c0de", "customer-db")
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let leftover = format!("{LIVE_PREFIX}{}-1-0-staging", now - 4 * 3600);
    emu.create_database("6b0a4c1e-0000-4000-8000-00000000dead", &leftover)
        .unwrap();
    assert_eq!(account.sweep(3), 1, "the old leftover is swept");
    assert_eq!(names(&account), ["customer-db"]);

    // A workspace with one remote environment: one database made, the config pointed at it.
    let ws = Workspace::new("live-switch");
    let config = std::fs::read_to_string(ws.dir.join("wrangler.jsonc")).unwrap();
    let start = config.find("\"production\"").unwrap();
    let end = config[start..].find("\n").unwrap() + start;
    ws.write(
        "wrangler.jsonc",
        format!("{}{}", &config[..start], &config[end + 1..]),
    );
    ws.migration(
        "0001_notes.sql",
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL);\n",
    );
    let remote = Remote::Live(Live::create(&ws, account.clone()));
    let made = names(&account);
    assert_eq!(made.len(), 2, "{made:?}");
    assert!(made[1].starts_with(LIVE_PREFIX) && made[1].ends_with("-staging"));
    let uuid = remote.id("staging");
    assert!(std::fs::read_to_string(ws.dir.join("wrangler.jsonc"))
        .unwrap()
        .contains(&uuid));

    // The xtask and the checks reach it through wrangler; the account itself agrees.
    ws.xtask_remote(&remote, &["db-migrate", "--env", "staging"], &[])
        .expect(0, &["applied 1 migration"]);
    remote
        .execute(&ws, "staging", "INSERT INTO notes (body) VALUES ('live')")
        .unwrap();
    let rows = remote
        .execute(&ws, "staging", "SELECT body FROM notes")
        .unwrap();
    assert_eq!(rows[0]["results"][0]["body"], "live");
    let direct = emu
        .execute(&uuid, "SELECT name FROM d1_migrations")
        .unwrap();
    assert_eq!(direct[0]["results"][0]["name"], "0001_notes.sql");
    drop(remote);
    assert_eq!(names(&account), ["customer-db"], "deleted after the test");

    // A test that fails still deletes what it made.
    let failing = Workspace::new("live-failing");
    let config = std::fs::read_to_string(ws.dir.join("wrangler.jsonc")).unwrap();
    failing.write(
        "wrangler.jsonc",
        config.replace(&uuid, crate::support::remote_id("staging")),
    );
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let remote = Remote::Live(Live::create(&failing, account.clone()));
        assert_eq!(names(&account).len(), 2);
        let _keep = &remote;
        panic!("a live test failing on purpose");
    }));
    assert!(outcome.is_err());
    assert_eq!(
        names(&account),
        ["customer-db"],
        "deleted although the test failed"
    );
}
