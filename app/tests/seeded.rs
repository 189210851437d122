//! The app's queries on a migrated, seeded local D1 database, one private copy per test
//! (`d1_xtask::testing`), so the tests run in parallel without sharing state.
//!
//! Under `cargo xtask db-seed -- cargo test -p app` the copies come from the workspace's
//! own local D1, seeded by the xtask (it sets `XTASK_D1_LOCAL_FILE`). Under a plain
//! `cargo test` they come from the template of the current migrations and seed files,
//! built through the real wrangler once when those change (in a scratch database: the
//! developer's local database is never touched).

use std::path::Path;
use std::sync::OnceLock;

use app::*;
use d1_xtask::testing::{request, TestDatabase, TestDatabases};
use rusqlite::Connection;

fn databases() -> &'static TestDatabases {
    static ONCE: OnceLock<TestDatabases> = OnceLock::new();
    ONCE.get_or_init(|| match std::env::var_os("XTASK_D1_LOCAL_FILE") {
        Some(file) => TestDatabases::from_file(file),
        None => {
            let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
            TestDatabases::seeded(repo).unwrap()
        }
    })
}

/// This test's own seeded database, with D1's rules on its connection.
fn db() -> (TestDatabase, Connection) {
    let file = databases().fresh().unwrap();
    let conn = file.connect().unwrap();
    (file, conn)
}

#[test]
fn users_and_their_posts() {
    let (_file, db) = db();
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
    let (_file, db) = db();
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
    let (_file, db) = db();
    assert!(token_is_valid(&db, "test-hash-ada", "2026-11-22 00:00:00").unwrap());
    assert!(!token_is_valid(&db, "test-hash-cleo-expired", "2026-11-22 00:00:00").unwrap());
    assert!(!token_is_valid(&db, "unknown", "2026-11-22 00:00:00").unwrap());
}

#[test]
fn placing_an_order_takes_stock_or_refuses() {
    let (_file, db) = db();
    let id = request(&db, |c| {
        place_order(c, 900003, &[(900001, 3), (900003, 10)])
    })
    .unwrap();
    assert_eq!(computed_total_cents(&db, id).unwrap(), 3 * 1200 + 10 * 300);
    let mug_stock: i64 = db
        .query_row("SELECT stock FROM products WHERE id = 900001", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(mug_stock, 37);

    assert!(matches!(
        request(&db, |c| place_order(c, 900003, &[(900004, 1)])),
        Err(OrderError::OutOfStock {
            product: 900004,
            wanted: 1,
            left: 0
        })
    ));
    assert!(matches!(
        request(&db, |c| place_order(c, 900003, &[(12345, 1)])),
        Err(OrderError::UnknownProduct(12345))
    ));
    assert!(matches!(
        request(&db, |c| place_order(c, 900003, &[])),
        Err(OrderError::Empty)
    ));
    // A user that does not exist: the foreign key refuses it, and nothing is left behind.
    let before: i64 = db
        .query_row("SELECT count(*) FROM orders", [], |r| r.get(0))
        .unwrap();
    assert!(matches!(
        request(&db, |c| place_order(c, 4242, &[(900001, 1)])),
        Err(OrderError::Db(_))
    ));
    let after: i64 = db
        .query_row("SELECT count(*) FROM orders", [], |r| r.get(0))
        .unwrap();
    assert_eq!(before, after);
}

#[test]
fn each_test_has_its_own_database() {
    let (a_file, a) = db();
    let (b_file, b) = db();
    assert_ne!(a_file.path(), b_file.path());
    a.execute("DELETE FROM order_items", []).unwrap();
    a.execute("DELETE FROM orders", []).unwrap();
    let left = |c: &Connection| -> i64 {
        c.query_row("SELECT count(*) FROM orders", [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(left(&a), 0);
    assert!(left(&b) > 0, "the other test's database is untouched");
    // D1's rules hold on the connection: ATTACH is refused, as D1 refuses it.
    assert!(b
        .execute_batch("ATTACH DATABASE ':memory:' AS other")
        .is_err());
    let path = a_file.path().to_path_buf();
    drop(a);
    drop(a_file);
    assert!(!path.exists(), "a passing test's database is removed");
}
