// The sample app's Worker: the HTTP face of the same D1 database the xtask migrates.
// `cargo xtask deploy --env staging` applies the pending migrations, then deploys this
// file with `wrangler deploy` (wrangler bundles it; no build step). It is JavaScript
// because this workspace is built and tested where no wasm32 target can be installed;
// docs/deploy.md shows the same deploy for a workers-rs (Rust) Worker.

/** @param {D1Database} db */
async function health(db) {
  // The newest migration the database has: what a smoke test compares with the folder.
  const row = await db
    .prepare("SELECT name FROM d1_migrations ORDER BY id DESC LIMIT 1")
    .first();
  return Response.json({ ok: true, migration: row ? row.name : null });
}

/** @param {D1Database} db */
async function productsInStock(db) {
  const { results } = await db
    .prepare(
      "SELECT id, sku, name, price_cents, stock FROM products WHERE stock > 0 ORDER BY name",
    )
    .all();
  return Response.json(results);
}

export default {
  /**
   * @param {Request} request
   * @param {{ DB: D1Database }} env
   */
  async fetch(request, env) {
    const { pathname } = new URL(request.url);
    switch (pathname) {
      case "/health":
        return health(env.DB);
      case "/products":
        return productsInStock(env.DB);
      default:
        return new Response("not found", { status: 404 });
    }
  },
};
