//! The D1 API emulator driven by the real wrangler: every `wrangler d1` command of the
//! spec (d1-remote-api.md) works against it.

use crate::support::{remote_id, Workspace};

fn ok(run: crate::support::Run) -> crate::support::Run {
    assert_eq!(
        run.code, 0,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    run
}

#[test]
fn list_info_execute_import_export_and_time_travel() {
    let ws = Workspace::new("emu-wrangler");
    let emu = ws.emulator();
    // 13 databases (the three of the config, ten more): wrangler asks for page 2 after a
    // full page of 10.
    for i in 0..10 {
        emu.emu()
            .create_database(
                &format!("00000000-0000-0000-0000-0000000001{i:02}"),
                &format!("extra-{i}"),
            )
            .unwrap();
    }
    let list = ok(ws.wrangler_remote(&emu, &["d1", "list", "--json"]));
    let list: serde_json::Value = serde_json::from_str(&list.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 13);

    let info = ok(ws.wrangler_remote(&emu, &["d1", "info", "DB", "--env", "staging", "--json"]));
    assert!(info.stdout.contains("e2e-staging"), "{}", info.stdout);
    let by_name = ok(ws.wrangler_remote(&emu, &["d1", "info", "e2e-prod", "--json"]));
    assert!(
        by_name.stdout.contains(remote_id("production")),
        "{}",
        by_name.stdout
    );

    ok(ws.wrangler_remote(
        &emu,
        &[
            "d1",
            "execute",
            "DB",
            "--env",
            "staging",
            "--remote",
            "--command",
            "CREATE TABLE t (id INTEGER PRIMARY KEY, s TEXT)",
        ],
    ));
    let bookmark = ws.remote_bookmark(&emu, "staging");

    ws.write(
        "rows.sql",
        "INSERT INTO t (s) VALUES ('a;b');\r\nINSERT INTO t (s) VALUES ('c');\n",
    );
    ok(ws.wrangler_remote(
        &emu,
        &[
            "d1", "execute", "DB", "--env", "staging", "--remote", "--file", "rows.sql", "--yes",
        ],
    ));
    assert_eq!(
        ws.remote_query(&emu, "staging", "SELECT count(*) AS n FROM t")[0]["n"],
        2
    );

    ok(ws.wrangler_remote(
        &emu,
        &[
            "d1", "export", "DB", "--env", "staging", "--remote", "--output", "dump.sql",
        ],
    ));
    let dump = std::fs::read_to_string(ws.dir.join("dump.sql")).unwrap();
    assert!(dump.starts_with("PRAGMA defer_foreign_keys=TRUE;"));
    assert!(dump.contains("VALUES(1,'a;b');"), "{dump}");
    ok(ws.wrangler_remote(
        &emu,
        &[
            "d1",
            "export",
            "DB",
            "--env",
            "staging",
            "--remote",
            "--no-data",
            "--output",
            "schema.sql",
        ],
    ));
    assert!(!std::fs::read_to_string(ws.dir.join("schema.sql"))
        .unwrap()
        .contains("INSERT"));

    // The export loads into production through the import API and gives the same rows.
    ok(ws.wrangler_remote(
        &emu,
        &[
            "d1",
            "execute",
            "DB",
            "--env",
            "production",
            "--remote",
            "--file",
            "dump.sql",
            "--yes",
        ],
    ));
    assert_eq!(
        ws.remote_query(&emu, "production", "SELECT s FROM t ORDER BY id")[1]["s"],
        "c"
    );

    let restore = ok(ws.wrangler_remote(
        &emu,
        &[
            "d1",
            "time-travel",
            "restore",
            "DB",
            "--env",
            "staging",
            "--bookmark",
            &bookmark,
            "--json",
        ],
    ));
    let restore: serde_json::Value = serde_json::from_str(&restore.stdout).unwrap();
    assert_eq!(
        ws.remote_query(&emu, "staging", "SELECT count(*) AS n FROM t")[0]["n"],
        0
    );
    let previous = restore["previous_bookmark"].as_str().unwrap();
    ok(ws.wrangler_remote(
        &emu,
        &[
            "d1",
            "time-travel",
            "restore",
            "DB",
            "--env",
            "staging",
            "--bookmark",
            previous,
            "--json",
        ],
    ));
    assert_eq!(
        ws.remote_query(&emu, "staging", "SELECT count(*) AS n FROM t")[0]["n"],
        2,
        "previous_bookmark undoes it"
    );

    // By timestamp: a second after the last write names the current state (timestamps
    // have whole seconds; the last write may have happened in the current one).
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    ok(ws.wrangler_remote(
        &emu,
        &[
            "d1",
            "time-travel",
            "restore",
            "DB",
            "--env",
            "staging",
            "--timestamp",
            &now,
            "--json",
        ],
    ));
    assert_eq!(
        ws.remote_query(&emu, "staging", "SELECT count(*) AS n FROM t")[0]["n"],
        2
    );

    let failing = ws.wrangler_remote(
        &emu,
        &[
            "d1",
            "execute",
            "DB",
            "--env",
            "staging",
            "--remote",
            "--command",
            "SELECT * FROM nosuch",
        ],
    );
    assert_eq!(failing.code, 1);
    assert!(
        failing.stderr.contains("no such table: nosuch"),
        "{}",
        failing.stderr
    );
}
