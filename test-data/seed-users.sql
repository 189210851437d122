-- seed-users.sql: test users and everything they own: profiles, posts, tokens, orders.
-- Loaded after seed-products.sql (name order), so orders can point at test products.
-- Ids 900000-999999 are reserved for test data; rerunnable (upserts).

PRAGMA defer_foreign_keys = true;

INSERT INTO users (id, email, name, created_at) VALUES
    (900001, 'ada@test.invalid',   'Ada Test',   '2026-01-01 10:00:00'),
    (900002, 'brian@test.invalid', 'Brian Test', '2026-01-02 10:00:00'),
    (900003, 'cleo@test.invalid',  'Cleo Test',  '2026-01-03 10:00:00')
ON CONFLICT(id) DO UPDATE SET email = excluded.email, name = excluded.name, created_at = excluded.created_at;

INSERT INTO user_profiles (user_id, bio, avatar_url) VALUES
    (900001, 'Writes the tests.', NULL),
    (900002, 'Buys the mugs; breaks the builds.', 'https://example.invalid/b.png')
ON CONFLICT(user_id) DO UPDATE SET bio = excluded.bio, avatar_url = excluded.avatar_url;

INSERT INTO posts (id, user_id, title, body, published, created_at) VALUES
    (900001, 900001, 'Hello, D1', 'First post; with a semicolon.', 1, '2026-01-05 09:00:00'),
    (900002, 900001, 'Draft', '', 0, '2026-01-06 09:00:00'),
    (900003, 900002, 'It''s quoted', 'Body', 1, '2026-01-07 09:00:00')
ON CONFLICT(id) DO UPDATE SET user_id = excluded.user_id, title = excluded.title, body = excluded.body,
    published = excluded.published, created_at = excluded.created_at;

INSERT INTO tokens (id, user_id, token_hash, expires_at) VALUES
    (900001, 900001, 'test-hash-ada', '2099-01-01 00:00:00'),
    (900002, 900003, 'test-hash-cleo-expired', '2020-01-01 00:00:00')
ON CONFLICT(id) DO UPDATE SET user_id = excluded.user_id, token_hash = excluded.token_hash,
    expires_at = excluded.expires_at;

INSERT INTO orders (id, user_id, status, total_cents, created_at) VALUES
    (900001, 900001, 'paid',    4900, '2026-02-01 12:00:00'),
    (900002, 900002, 'pending',  300, '2026-02-02 12:00:00')
ON CONFLICT(id) DO UPDATE SET user_id = excluded.user_id, status = excluded.status,
    total_cents = excluded.total_cents, created_at = excluded.created_at;

INSERT INTO order_items (order_id, product_id, quantity, unit_price_cents) VALUES
    (900001, 900001, 2, 1200),
    (900001, 900002, 1, 2500),
    (900002, 900003, 1,  300)
ON CONFLICT(order_id, product_id) DO UPDATE SET quantity = excluded.quantity,
    unit_price_cents = excluded.unit_price_cents;

PRAGMA defer_foreign_keys = false;
