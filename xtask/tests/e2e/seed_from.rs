//! `db-seed --from <env>`: test data made from staging through the emulator and the real
//! wrangler, anonymized, loaded into local, cleaned up and the cleanup verified.

use crate::support::*;

const KEY: &str = "e2e-anonymize-key-0123456789abcdef";

/// Realistic staging rows: people with real-looking emails, names and tokens.
fn fill_staging(ws: &Workspace, emu: &Remote) -> (Vec<String>, Vec<String>, Vec<String>) {
    let first = [
        "Maria", "Jonas", "Aiko", "Samuel", "Priya", "Lukas", "Fatima", "Oskar",
    ];
    let last = [
        "Garcia", "Berger", "Tanaka", "Okafor", "Sharma", "Novak", "Haddad", "Lind",
    ];
    let (mut emails, mut names, mut tokens) = (Vec::new(), Vec::new(), Vec::new());
    let mut sql = String::new();
    for i in 0..8 {
        let name = format!("{} {}", first[i], last[i]);
        let email = format!(
            "{}.{}{}@mailbox.example",
            first[i].to_lowercase(),
            last[i].to_lowercase(),
            1970 + i
        );
        let token = format!(
            "tok_live_{:08x}{:08x}",
            0xdead_0000u32 + i as u32,
            0x1234_5678u32 * (i as u32 + 1)
        );
        sql.push_str(&format!(
            "INSERT INTO users (id, email, name, created_at) VALUES ({id}, '{email}', '{name}', '2026-0{m}-1{i} 08:00:00');
             INSERT INTO user_profiles (user_id, bio, avatar_url) VALUES ({id}, 'Hi, I am {name} and I write about D1', 'https://cdn.example/{id}.png');
             INSERT INTO posts (id, user_id, title, body, published) VALUES ({p}, {id}, 'Notes by {name}', 'Reach me at {email}', 1);
             INSERT INTO tokens (id, user_id, token_hash, expires_at) VALUES ({t}, {id}, '{token}', '2027-01-01 00:00:00');
             INSERT INTO orders (id, user_id, status, total_cents) VALUES ({o}, {id}, 'paid', 2500);
             INSERT INTO order_items (order_id, product_id, quantity, unit_price_cents) VALUES ({o}, {prod}, 1, 2500);\n",
            id = 101 + i,
            m = 1 + i % 9,
            p = 501 + i,
            t = 701 + i,
            o = 301 + i,
            prod = 11 + i % 3,
        ));
        emails.push(email);
        names.push(name);
        tokens.push(token);
    }
    let products = "INSERT INTO products (id, sku, name, price_cents, stock) VALUES \
                    (11, 'SKU-LAMP', 'Desk lamp', 2500, 3), (12, 'SKU-PEN', 'Fountain pen', 2500, 9), \
                    (13, 'SKU-INK', 'Blue ink', 2500, 40);";
    emu.execute(ws, "staging", &format!("{products}\n{sql}"))
        .unwrap();
    (emails, names, tokens)
}

/// Every row of staging, as one text (to tell that nothing changed).
fn staging_content(ws: &Workspace, emu: &Remote) -> String {
    let mut out = String::new();
    for t in [
        "users",
        "user_profiles",
        "posts",
        "tokens",
        "orders",
        "order_items",
        "products",
    ] {
        let items = emu
            .execute(ws, "staging", &format!("SELECT * FROM {t} ORDER BY rowid"))
            .unwrap();
        out.push_str(&serde_json::to_string(&items.last().unwrap()["results"]).unwrap());
    }
    out
}

#[test]
fn staging_becomes_anonymized_test_data_that_loads_locally_and_cleans_up() {
    let ws = Workspace::sample("seed-from");
    ws.write(
        "xtask.jsonc",
        std::fs::read(repo_root().join("xtask.jsonc")).unwrap(),
    );
    let emu = ws.remote();
    ws.xtask_remote(&emu, &["db-migrate", "--env", "staging"], &[])
        .expect(0, &["applied 2 migrations"]);
    let (emails, names, tokens) = fill_staging(&ws, &emu);
    let before = staging_content(&ws, &emu);
    let key = [("XTASK_ANONYMIZE_KEY", KEY)];

    // Production is only read with a confirmation: refused at once without a terminal.
    ws.xtask_remote(&emu, &["db-seed", "--from", "production"], &key)
        .expect(4, &["protected", "--yes", "nothing was changed"]);

    let run = ws.xtask_remote(&emu, &["db-seed", "--from", "staging"], &key);
    run.expect(
        0,
        &["wrote", "seed-from-staging.sql", "users 8", "order_items 8"],
    );
    let seed = std::fs::read_to_string(ws.dir.join("test-data/seed-from-staging.sql")).unwrap();
    let cleanup =
        std::fs::read_to_string(ws.dir.join("test-data/cleanup-from-staging.sql")).unwrap();
    let lower = seed.to_lowercase() + &cleanup.to_lowercase();
    for secret in emails.iter().chain(&names).chain(&tokens) {
        assert!(
            !lower.contains(&secret.to_lowercase()),
            "{secret} is in the output:\n{seed}"
        );
    }
    for first in ["maria", "jonas", "aiko", "priya"] {
        assert!(!lower.contains(first), "{first} is in the output");
    }
    assert!(seed.contains("'SKU-LAMP'"), "kept columns stay as they are");

    // Same key, same bytes; staging untouched.
    ws.xtask_remote(&emu, &["db-seed", "--from", "staging"], &key)
        .expect(0, &["wrote"]);
    assert_eq!(
        std::fs::read_to_string(ws.dir.join("test-data/seed-from-staging.sql")).unwrap(),
        seed
    );
    assert_eq!(
        std::fs::read_to_string(ws.dir.join("test-data/cleanup-from-staging.sql")).unwrap(),
        cleanup
    );
    assert_eq!(staging_content(&ws, &emu), before, "staging changed");

    // The files load into local, the foreign keys hold, and the ids are in the test range.
    ws.xtask(&["db-migrate", "--no-backup"])
        .expect(0, &["applied 2 migrations"]);
    ws.xtask(&[
        "db-seed",
        "--no-backup",
        "--file",
        "test-data/seed-from-staging.sql",
    ])
    .expect(0, &["loaded 1 file", "users 8"]);
    let conn = rusqlite::Connection::open(ws.local_file()).unwrap();
    let n = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(n("SELECT count(*) FROM pragma_foreign_key_check"), 0);
    assert_eq!(
        n("SELECT count(*) FROM users WHERE id BETWEEN 950000 AND 999999"),
        8
    );
    assert_eq!(n("SELECT count(*) FROM order_items o JOIN products p ON p.id = o.product_id JOIN orders r ON r.id = o.order_id JOIN users u ON u.id = r.user_id"), 8);
    assert_eq!(
        n("SELECT count(*) FROM users WHERE email LIKE '%@example.invalid'"),
        8
    );

    // The cleanup removes them all, and says it counted.
    ws.xtask(&["db-seed", "--cleanup", "--no-backup"])
        .expect(0, &["cleanup verified", "950000-999999"]);
    assert_eq!(n("SELECT count(*) FROM users"), 0);
    assert_eq!(n("SELECT count(*) FROM products"), 0);

    // A TEXT column without a rule: exit 2 naming it, and the files stay as they were.
    emu.execute(&ws, "staging", "ALTER TABLE users ADD COLUMN phone TEXT")
        .unwrap();
    ws.xtask_remote(&emu, &["db-seed", "--from", "staging"], &key)
        .expect(2, &["users.phone", "--report", "nothing was written"]);
    assert_eq!(
        std::fs::read_to_string(ws.dir.join("test-data/seed-from-staging.sql")).unwrap(),
        seed
    );
}

#[test]
fn a_cleanup_that_leaves_rows_in_the_reserved_ranges_fails_naming_the_table() {
    let ws = Workspace::sample("cleanup-verify");
    ws.xtask(&["db-migrate", "--no-backup"])
        .expect(0, &["applied 2 migrations"]);
    ws.xtask(&["db-seed", "--no-backup"])
        .expect(0, &["loaded 2 files"]);
    // A cleanup file that forgets the products.
    let path = ws.dir.join("test-data/cleanup-test-data.sql");
    let text = std::fs::read_to_string(&path).unwrap();
    let forgetful: String = text
        .lines()
        .filter(|l| !l.starts_with("DELETE FROM products"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&path, forgetful).unwrap();
    ws.xtask(&["db-seed", "--cleanup", "--no-backup"]).expect(
        1,
        &[
            "rows are left in the reserved test ranges",
            "products (4 rows)",
        ],
    );
    // The verification counts through SQLite, not the xtask's report.
    let conn = rusqlite::Connection::open(ws.local_file()).unwrap();
    let left: i64 = conn
        .query_row(
            "SELECT count(*) FROM products WHERE id BETWEEN 900000 AND 999999",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(left, 4);
    let users: i64 = conn
        .query_row("SELECT count(*) FROM users", [], |r| r.get(0))
        .unwrap();
    assert_eq!(users, 0);
}
