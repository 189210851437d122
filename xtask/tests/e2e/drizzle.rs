//! `migrations_pattern` as wrangler 4.164 reads it: a Drizzle-layout folder where the
//! xtask and raw `wrangler d1 migrations list/apply` agree on every file, name and order.

use crate::support::*;

const CONFIG_DRIZZLE: &str = r#"{
  "name": "drizzle-e2e",
  "d1_databases": [
    { "binding": "DB", "database_name": "drizzle-local", "database_id": "00000000-0000-0000-0000-0000000000d1",
      "migrations_dir": "drizzle", "migrations_pattern": "drizzle/*/migration.sql" }
  ]
}
"#;

fn pending(ws: &Workspace) -> Vec<String> {
    let run = ws.xtask(&["db-status", "--json"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    run.json()["pending"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_xtask_and_raw_wrangler_agree_on_a_drizzle_folder() {
    let ws = Workspace::new("drizzle");
    ws.write("wrangler.jsonc", CONFIG_DRIZZLE);
    // Drizzle's layout: a folder per migration with migration.sql and a snapshot, a meta
    // journal; numbering by timestamp. A flat file the pattern does not match is ignored
    // by wrangler, and so by the xtask.
    ws.write(
        "drizzle/20250101090000_init/migration.sql",
        "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL);\n",
    );
    ws.write("drizzle/20250101090000_init/snapshot.json", "{}\n");
    ws.write(
        "drizzle/20250102090000_posts/migration.sql",
        "CREATE TABLE posts (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id));\n",
    );
    ws.write(
        "drizzle/20250103090000_tags/migration.sql",
        "CREATE TABLE tags (id INTEGER PRIMARY KEY, name TEXT);\n",
    );
    ws.write("drizzle/meta/_journal.json", "{}\n");
    ws.write("drizzle/0001_stray.sql", "CREATE TABLE stray (x);\n");

    let all = [
        "20250101090000_init/migration.sql",
        "20250102090000_posts/migration.sql",
        "20250103090000_tags/migration.sql",
    ];
    assert_eq!(pending(&ws), all);
    assert_eq!(
        ws.wrangler_pending(),
        all,
        "raw wrangler lists the same files in the same order"
    );

    // --to by folder name; raw wrangler then sees exactly the third pending.
    ws.xtask(&["db-migrate", "--no-backup", "--to", "20250102090000_posts"])
        .expect(0, &["applied 2 migrations"]);
    assert_eq!(ws.wrangler_pending(), [all[2]]);
    assert_eq!(ws.applied_names(), all[..2]);

    // db-new writes the layout the pattern reads: a timestamped folder with migration.sql.
    let run = ws.xtask(&["db-new", "add_labels", "--json"]);
    run.expect(0, &["created"]);
    let created = run.json()["name"].as_str().unwrap().to_string();
    assert!(created.ends_with("_add_labels/migration.sql"), "{created}");
    assert!(created.split('_').next().unwrap().len() == 14, "{created}");
    ws.write(
        &format!("drizzle/{created}"),
        "CREATE TABLE labels (id INTEGER PRIMARY KEY);\n",
    );
    assert_eq!(pending(&ws), [all[2].to_string(), created.clone()]);
    assert_eq!(ws.wrangler_pending(), [all[2].to_string(), created.clone()]);

    // Raw wrangler applies the rest; the xtask reads its rows as its own (no drift).
    let run = ws.wrangler(&["d1", "migrations", "apply", "DB", "--local"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    ws.xtask(&["db-status", "--check"])
        .expect(0, &["4 applied, 0 pending"]);
    assert_eq!(ws.tables(), ["labels", "posts", "tags", "users"]);
}
