-- seed-products.sql: the catalogue tests order from.
-- Test data lives in reserved id ranges (900000-999999) so that cleanup-test-data.sql can
-- never touch real rows. Rerunnable: seeding twice gives the same rows (upserts).

INSERT INTO products (id, sku, name, price_cents, stock) VALUES
    (900001, 'TEST-MUG',    'Test mug',            1200, 40),
    (900002, 'TEST-TEE',    'Test T-shirt',        2500, 12),
    (900003, 'TEST-STICKER','Test sticker; pack',   300, 500),
    (900004, 'TEST-POSTER', 'Test poster',         1800, 0)
ON CONFLICT(id) DO UPDATE SET
    sku = excluded.sku, name = excluded.name,
    price_cents = excluded.price_cents, stock = excluded.stock;
