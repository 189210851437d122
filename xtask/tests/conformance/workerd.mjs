// Runs SQL shapes through workerd's D1, the way `wrangler d1 execute --local` does: a
// Miniflare with a D1 binding, each request sent as `db.batch([db.prepare(sql)])`.
// One process and one workerd for every shape (a database each), instead of a wrangler
// process per shape. Input: a JSON file [{ "name", "requests": [sql, ...] }]. Output
// (stdout): [{ "name", "outcomes": [{ "ok": bool, "error"?: string }] }].
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import path from 'node:path';

const root = process.argv[3];
const require = createRequire(path.join(root, 'node_modules', 'wrangler', 'package.json'));
const { Miniflare, convertV4MiniflareOptions } = require('miniflare');

const shapes = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const d1Databases = {};
shapes.forEach((_, i) => { d1Databases[`DB${i}`] = `conformance-${i}`; });
const mf = new Miniflare(convertV4MiniflareOptions({ modules: true, script: '', d1Databases }));
const out = [];
try {
  for (const [i, shape] of shapes.entries()) {
    const db = await mf.getD1Database(`DB${i}`);
    const outcomes = [];
    for (const sql of shape.requests) {
      try {
        await db.batch([db.prepare(sql)]);
        outcomes.push({ ok: true });
      } catch (e) {
        outcomes.push({ ok: false, error: String((e.cause ?? e).message) });
      }
    }
    out.push({ name: shape.name, outcomes });
  }
} finally {
  await mf.dispose();
}
process.stdout.write(JSON.stringify(out));
