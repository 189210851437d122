//! The sample app's data layer for the schema in `migrations/`: typed rows and the queries
//! the app runs. The SQL is D1's (SQLite's); here it runs on a `rusqlite::Connection`, which
//! is what wrangler's local D1 file is, so the integration tests read the same database the
//! xtask migrated and seeded.

use rusqlite::{params, Connection, OptionalExtension, Row};

pub type Result<T> = rusqlite::Result<T>;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub email: String,
    pub name: String,
    pub created_at: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Post {
    pub id: i64,
    pub user_id: i64,
    pub title: String,
    pub body: String,
    pub published: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Product {
    pub id: i64,
    pub sku: String,
    pub name: String,
    pub price_cents: i64,
    pub stock: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderStatus {
    Pending,
    Paid,
    Shipped,
    Cancelled,
}

impl OrderStatus {
    fn parse(s: &str) -> Option<OrderStatus> {
        match s {
            "pending" => Some(OrderStatus::Pending),
            "paid" => Some(OrderStatus::Paid),
            "shipped" => Some(OrderStatus::Shipped),
            "cancelled" => Some(OrderStatus::Cancelled),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Order {
    pub id: i64,
    pub user_id: i64,
    pub status: OrderStatus,
    pub total_cents: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderLine {
    pub product: Product,
    pub quantity: i64,
    pub unit_price_cents: i64,
}

/// What a customer's page shows: the user and their order count and spend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CustomerSummary {
    pub user: User,
    pub orders: i64,
    pub spent_cents: i64,
}

/// Why an order could not be placed.
#[derive(Debug)]
pub enum OrderError {
    UnknownProduct(i64),
    OutOfStock {
        product: i64,
        wanted: i64,
        left: i64,
    },
    Empty,
    Db(rusqlite::Error),
}

impl From<rusqlite::Error> for OrderError {
    fn from(e: rusqlite::Error) -> OrderError {
        OrderError::Db(e)
    }
}

fn user(row: &Row) -> Result<User> {
    Ok(User {
        id: row.get("id")?,
        email: row.get("email")?,
        name: row.get("name")?,
        created_at: row.get("created_at")?,
    })
}

fn product(row: &Row) -> Result<Product> {
    Ok(Product {
        id: row.get("id")?,
        sku: row.get("sku")?,
        name: row.get("name")?,
        price_cents: row.get("price_cents")?,
        stock: row.get("stock")?,
    })
}

fn order(row: &Row) -> Result<Order> {
    let status: String = row.get("status")?;
    Ok(Order {
        id: row.get("id")?,
        user_id: row.get("user_id")?,
        status: OrderStatus::parse(&status).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                2,
                rusqlite::types::Type::Text,
                format!("status {status}").into(),
            )
        })?,
        total_cents: row.get("total_cents")?,
    })
}

pub fn user_by_email(db: &Connection, email: &str) -> Result<Option<User>> {
    db.query_row(
        "SELECT id, email, name, created_at FROM users WHERE email = ?1",
        [email],
        user,
    )
    .optional()
}

/// A user's posts, newest first; drafts only when asked for.
pub fn posts_by_user(db: &Connection, user_id: i64, include_drafts: bool) -> Result<Vec<Post>> {
    let mut stmt = db.prepare(
        "SELECT id, user_id, title, body, published FROM posts
         WHERE user_id = ?1 AND (published = 1 OR ?2) ORDER BY created_at DESC, id DESC",
    )?;
    let rows = stmt.query_map(params![user_id, include_drafts], |r| {
        Ok(Post {
            id: r.get(0)?,
            user_id: r.get(1)?,
            title: r.get(2)?,
            body: r.get(3)?,
            published: r.get::<_, i64>(4)? == 1,
        })
    })?;
    rows.collect()
}

pub fn products_in_stock(db: &Connection) -> Result<Vec<Product>> {
    let mut stmt = db.prepare(
        "SELECT id, sku, name, price_cents, stock FROM products WHERE stock > 0 ORDER BY name",
    )?;
    let rows = stmt.query_map([], product)?;
    rows.collect()
}

pub fn orders_for_user(db: &Connection, user_id: i64) -> Result<Vec<Order>> {
    let mut stmt = db.prepare(
        "SELECT id, user_id, status, total_cents FROM orders WHERE user_id = ?1 ORDER BY created_at, id",
    )?;
    let rows = stmt.query_map([user_id], order)?;
    rows.collect()
}

pub fn order_lines(db: &Connection, order_id: i64) -> Result<Vec<OrderLine>> {
    let mut stmt = db.prepare(
        "SELECT p.id, p.sku, p.name, p.price_cents, p.stock, i.quantity, i.unit_price_cents
         FROM order_items AS i JOIN products AS p ON p.id = i.product_id
         WHERE i.order_id = ?1 ORDER BY p.name",
    )?;
    let rows = stmt.query_map([order_id], |r| {
        Ok(OrderLine {
            product: product(r)?,
            quantity: r.get("quantity")?,
            unit_price_cents: r.get("unit_price_cents")?,
        })
    })?;
    rows.collect()
}

/// The total an order's lines add up to (what `orders.total_cents` must say).
pub fn computed_total_cents(db: &Connection, order_id: i64) -> Result<i64> {
    db.query_row(
        "SELECT COALESCE(SUM(quantity * unit_price_cents), 0) FROM order_items WHERE order_id = ?1",
        [order_id],
        |r| r.get(0),
    )
}

/// Users with their number of non-cancelled orders and what those cost, biggest spender first.
pub fn customer_summaries(db: &Connection) -> Result<Vec<CustomerSummary>> {
    let mut stmt = db.prepare(
        "SELECT u.id, u.email, u.name, u.created_at,
                COUNT(o.id) AS orders, COALESCE(SUM(o.total_cents), 0) AS spent
         FROM users AS u LEFT JOIN orders AS o ON o.user_id = u.id AND o.status <> 'cancelled'
         GROUP BY u.id ORDER BY spent DESC, u.id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(CustomerSummary {
            user: user(r)?,
            orders: r.get("orders")?,
            spent_cents: r.get("spent")?,
        })
    })?;
    rows.collect()
}

/// Whether a token is known and not expired at `now` (`YYYY-MM-DD HH:MM:SS`).
pub fn token_is_valid(db: &Connection, token_hash: &str, now: &str) -> Result<bool> {
    db.query_row(
        "SELECT EXISTS(SELECT 1 FROM tokens WHERE token_hash = ?1 AND expires_at > ?2)",
        params![token_hash, now],
        |r| r.get(0),
    )
}

/// Places an order: checks stock, inserts the order and its lines, takes the stock.
/// Returns the new order's id. D1 refuses `BEGIN`: the caller runs this as one request
/// (one D1 batch, one transaction; in tests `d1_xtask::testing::request`), so that a
/// failure leaves nothing behind.
pub fn place_order(
    db: &Connection,
    user_id: i64,
    items: &[(i64, i64)],
) -> std::result::Result<i64, OrderError> {
    if items.is_empty() {
        return Err(OrderError::Empty);
    }
    let tx = db;
    let mut total = 0;
    let mut priced = Vec::new();
    for &(product_id, quantity) in items {
        let found: Option<(i64, i64)> = tx
            .query_row(
                "SELECT price_cents, stock FROM products WHERE id = ?1",
                [product_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let (price, stock) = found.ok_or(OrderError::UnknownProduct(product_id))?;
        if stock < quantity {
            return Err(OrderError::OutOfStock {
                product: product_id,
                wanted: quantity,
                left: stock,
            });
        }
        total += price * quantity;
        priced.push((product_id, quantity, price));
    }
    tx.execute(
        "INSERT INTO orders (user_id, status, total_cents) VALUES (?1, 'pending', ?2)",
        params![user_id, total],
    )?;
    let order_id = tx.last_insert_rowid();
    for (product_id, quantity, price) in priced {
        tx.execute(
            "INSERT INTO order_items (order_id, product_id, quantity, unit_price_cents) VALUES (?1, ?2, ?3, ?4)",
            params![order_id, product_id, quantity, price],
        )?;
        tx.execute(
            "UPDATE products SET stock = stock - ?2 WHERE id = ?1",
            params![product_id, quantity],
        )?;
    }
    Ok(order_id)
}
