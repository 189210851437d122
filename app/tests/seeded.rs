//! The app's queries on a migrated, seeded local D1 database.
//!
//! Under `cargo xtask db-seed -- cargo test -p app` the database is the workspace's own
//! local D1, seeded by the xtask (it sets `XTASK_D1_LOCAL_FILE`). Under a plain
//! `cargo test`, the tests build their own: a scratch copy of the workspace under
//! `target/app-tests/`, where the real xtask runs `db-reset --seed` through the real
//! wrangler, so the developer's local database is never touched.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use app::*;
use rusqlite::{Connection, OpenFlags};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn xtask(dir: &Path, args: &[&str]) -> String {
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(["run", "-q", "--manifest-path"])
        .arg(repo().join("Cargo.toml"))
        .args(["-p", "xtask", "--"])
        .args(args)
        .current_dir(dir)
        .env("WRANGLER_SEND_METRICS", "false");
    if dir != repo() {
        cmd.env("WRANGLER", repo().join("node_modules/.bin/wrangler"));
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "cargo xtask {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

fn seeded_file() -> &'static Path {
    static FILE: OnceLock<PathBuf> = OnceLock::new();
    FILE.get_or_init(|| {
        if let Some(file) = std::env::var_os("XTASK_D1_LOCAL_FILE") {
            return PathBuf::from(file);
        }
        xtask(&repo(), &["setup"]);
        let scratch = repo().join("target").join("app-tests");
        let _ = std::fs::remove_dir_all(&scratch);
        std::fs::create_dir_all(&scratch).unwrap();
        std::fs::copy(
            repo().join("wrangler.jsonc"),
            scratch.join("wrangler.jsonc"),
        )
        .unwrap();
        copy_dir(&repo().join("migrations"), &scratch.join("migrations"));
        copy_dir(&repo().join("test-data"), &scratch.join("test-data"));
        // The fast path: drop, migrations and every seed file in one wrangler process.
        let reset: serde_json::Value = serde_json::from_str(&xtask(
            &scratch,
            &["db-reset", "--seed", "--no-backup", "--json"],
        ))
        .unwrap();
        assert_eq!(reset["wrangler_calls"], 1, "{reset}");
        let status: serde_json::Value =
            serde_json::from_str(&xtask(&scratch, &["db-status", "--json"])).unwrap();
        assert_eq!(status["pending"], serde_json::json!([]));
        scratch.join(status["location"].as_str().unwrap())
    })
}

fn db() -> Connection {
    Connection::open_with_flags(seeded_file(), OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap()
}

/// A private in-memory copy, for tests that write.
fn db_copy() -> Connection {
    let mut copy = Connection::open_in_memory().unwrap();
    rusqlite::backup::Backup::new(&db(), &mut copy)
        .unwrap()
        .run_to_completion(64, std::time::Duration::ZERO, None)
        .unwrap();
    copy.execute_batch("PRAGMA foreign_keys = ON").unwrap();
    copy
}

#[test]
fn users_and_their_posts() {
    let db = db();
    let ada = user_by_email(&db, "ada@test.invalid")
        .unwrap()
        .expect("seeded user");
    assert_eq!((ada.id, ada.name.as_str()), (900001, "Ada Test"));
    assert!(user_by_email(&db, "nobody@test.invalid").unwrap().is_none());

    let published = posts_by_user(&db, ada.id, false).unwrap();
    assert_eq!(
        published
            .iter()
            .map(|p| p.title.as_str())
            .collect::<Vec<_>>(),
        vec!["Hello, D1"]
    );
    let all = posts_by_user(&db, ada.id, true).unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].title, "Draft", "newest first");
    let brian = posts_by_user(&db, 900002, false).unwrap();
    assert_eq!(brian[0].title, "It's quoted");
}

#[test]
fn catalogue_and_orders() {
    let db = db();
    let in_stock: Vec<String> = products_in_stock(&db)
        .unwrap()
        .into_iter()
        .filter(|p| p.id >= 900000)
        .map(|p| p.sku)
        .collect();
    assert_eq!(
        in_stock,
        vec!["TEST-TEE", "TEST-MUG", "TEST-STICKER"],
        "by name; the poster has no stock"
    );

    let orders = orders_for_user(&db, 900001).unwrap();
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0].status, OrderStatus::Paid);
    assert_eq!(
        computed_total_cents(&db, orders[0].id).unwrap(),
        orders[0].total_cents
    );
    let lines = order_lines(&db, orders[0].id).unwrap();
    assert_eq!(
        lines
            .iter()
            .map(|l| (l.product.sku.as_str(), l.quantity))
            .collect::<Vec<_>>(),
        vec![("TEST-TEE", 1), ("TEST-MUG", 2)]
    );

    let top = customer_summaries(&db).unwrap();
    let ada = top.iter().find(|c| c.user.id == 900001).unwrap();
    assert_eq!((ada.orders, ada.spent_cents), (1, 4900));
    let cleo = top.iter().find(|c| c.user.id == 900003).unwrap();
    assert_eq!((cleo.orders, cleo.spent_cents), (0, 0));
}

#[test]
fn tokens_expire() {
    let db = db();
    assert!(token_is_valid(&db, "test-hash-ada", "2026-11-22 00:00:00").unwrap());
    assert!(!token_is_valid(&db, "test-hash-cleo-expired", "2026-11-22 00:00:00").unwrap());
    assert!(!token_is_valid(&db, "unknown", "2026-11-22 00:00:00").unwrap());
}

#[test]
fn placing_an_order_takes_stock_or_refuses() {
    let mut db = db_copy();
    let id = place_order(&mut db, 900003, &[(900001, 3), (900003, 10)]).unwrap();
    assert_eq!(computed_total_cents(&db, id).unwrap(), 3 * 1200 + 10 * 300);
    let mug_stock: i64 = db
        .query_row("SELECT stock FROM products WHERE id = 900001", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(mug_stock, 37);

    assert!(matches!(
        place_order(&mut db, 900003, &[(900004, 1)]),
        Err(OrderError::OutOfStock {
            product: 900004,
            wanted: 1,
            left: 0
        })
    ));
    assert!(matches!(
        place_order(&mut db, 900003, &[(12345, 1)]),
        Err(OrderError::UnknownProduct(12345))
    ));
    assert!(matches!(
        place_order(&mut db, 900003, &[]),
        Err(OrderError::Empty)
    ));
    // A user that does not exist: the foreign key refuses it, and nothing is left behind.
    let before: i64 = db
        .query_row("SELECT count(*) FROM orders", [], |r| r.get(0))
        .unwrap();
    assert!(matches!(
        place_order(&mut db, 4242, &[(900001, 1)]),
        Err(OrderError::Db(_))
    ));
    let after: i64 = db
        .query_row("SELECT count(*) FROM orders", [], |r| r.get(0))
        .unwrap();
    assert_eq!(before, after);
}
