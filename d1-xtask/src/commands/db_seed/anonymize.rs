//! Test data made from a copy of a real database (`db-seed --from <env>`): every TEXT and
//! BLOB column through a rule, ids moved into reserved ranges with every reference
//! rewritten, an optional referentially closed subset, and the result written as an
//! idempotent upsert seed file and the cleanup that removes exactly its rows. Works on a
//! scratch SQLite copy; it never sees the source database itself.

use std::collections::{BTreeMap, HashMap, HashSet};

use hmac::{Hmac, Mac};
use rusqlite::types::Value;
use rusqlite::Connection;
use sha2::Sha256;

use crate::d1::{quote_ident, quote_string};
use crate::exit::{failed, usage};
use crate::workspace::settings::Kind;

/// What `make` needs besides the copy.
pub(crate) struct Options<'a> {
    /// The source environment's name, for the files' headers and names.
    pub(crate) env: &'a str,
    pub(crate) rules: &'a BTreeMap<String, Kind>,
    pub(crate) key: Option<&'a [u8]>,
    /// Id range per table (lower case), `*` for the rest.
    pub(crate) ranges: &'a BTreeMap<String, (i64, i64)>,
    pub(crate) limit: Option<usize>,
    /// Tables left out: wrangler's tracking table and the xtask's own.
    pub(crate) skip: &'a [String],
    /// The seed and cleanup files' names, for their headers.
    pub(crate) seed_name: &'a str,
    pub(crate) cleanup_name: &'a str,
}

/// The files `make` wrote, and what went into them.
#[derive(Debug)]
pub(crate) struct Made {
    pub(crate) seed_sql: String,
    pub(crate) cleanup_sql: String,
    /// Rows per table, in load order.
    pub(crate) rows: Vec<(String, usize)>,
}

#[derive(Clone, Debug)]
struct Column {
    name: String,
    /// TEXT or BLOB affinity (or no type): personal data may sit here.
    textual: bool,
    notnull: bool,
}

#[derive(Clone, Debug)]
struct ForeignKey {
    parent: String,
    /// (child column, parent column)
    pairs: Vec<(String, String)>,
}

#[derive(Clone, Debug)]
struct Table {
    name: String,
    columns: Vec<Column>,
    pk: Vec<String>,
    /// The single INTEGER PRIMARY KEY: its values move into the table's range.
    id: Option<String>,
    fks: Vec<ForeignKey>,
    /// Column sets under a UNIQUE constraint (the primary key included).
    unique: Vec<Vec<String>>,
    without_rowid: bool,
}

fn lower(s: &str) -> String {
    s.to_ascii_lowercase()
}

/// SQLite's column affinity rules (datatype3.html, 3.1), reduced to: may it hold text?
fn textual(decl: &str) -> bool {
    let d = decl.to_ascii_uppercase();
    if d.contains("INT") {
        return false;
    }
    if d.contains("CHAR") || d.contains("CLOB") || d.contains("TEXT") {
        return true;
    }
    d.is_empty() || d.contains("BLOB")
}

fn sqlerr(e: rusqlite::Error) -> anyhow::Error {
    failed!("reading the copy failed: {e}")
}

/// The user tables of the copy, with their columns, keys and references.
fn tables(conn: &Connection, skip: &[String]) -> anyhow::Result<Vec<Table>> {
    let mut stmt = conn
        .prepare(
            "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND sql IS NOT NULL ORDER BY rowid",
        )
        .map_err(sqlerr)?;
    let listed: Vec<(String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(sqlerr)?
        .collect::<rusqlite::Result<_>>()
        .map_err(sqlerr)?;
    let mut out = Vec::new();
    for (name, sql) in listed {
        if crate::d1::is_internal(&name) || skip.iter().any(|s| s.eq_ignore_ascii_case(&name)) {
            continue;
        }
        if sql.to_ascii_uppercase().starts_with("CREATE VIRTUAL") {
            return Err(usage!(
                "table `{name}` is a virtual table: db-seed --from cannot copy it; nothing was written"
            ));
        }
        let mut columns = Vec::new();
        let mut pk: Vec<(i64, String)> = Vec::new();
        let mut id_type = String::new();
        let mut stmt = conn
            .prepare("SELECT name, type, \"notnull\", pk, hidden FROM pragma_table_xinfo(?1)")
            .map_err(sqlerr)?;
        let rows = stmt
            .query_map([&name], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?,
                ))
            })
            .map_err(sqlerr)?;
        for row in rows {
            let (col, decl, notnull, pk_pos, hidden) = row.map_err(sqlerr)?;
            if hidden != 0 {
                continue; // generated columns are computed again on insert
            }
            if pk_pos > 0 {
                pk.push((pk_pos, col.clone()));
                id_type = decl.clone();
            }
            columns.push(Column {
                name: col,
                textual: textual(&decl),
                notnull: notnull != 0,
            });
        }
        pk.sort();
        let pk: Vec<String> = pk.into_iter().map(|(_, c)| c).collect();
        let without_rowid = sql.to_ascii_uppercase().contains("WITHOUT ROWID");
        let id = (pk.len() == 1 && id_type.eq_ignore_ascii_case("INTEGER") && !without_rowid)
            .then(|| pk[0].clone());
        let mut fks: BTreeMap<i64, ForeignKey> = BTreeMap::new();
        let mut stmt = conn
            .prepare("SELECT id, \"table\", \"from\", \"to\" FROM pragma_foreign_key_list(?1) ORDER BY id, seq")
            .map_err(sqlerr)?;
        let rows = stmt
            .query_map([&name], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<String>>(3)?,
                ))
            })
            .map_err(sqlerr)?;
        for row in rows {
            let (id, parent, from, to) = row.map_err(sqlerr)?;
            let fk = fks.entry(id).or_insert_with(|| ForeignKey {
                parent: parent.clone(),
                pairs: Vec::new(),
            });
            fk.pairs.push((from, to.unwrap_or_default()));
        }
        let mut unique = vec![pk.clone()];
        let mut stmt = conn
            .prepare("SELECT name FROM pragma_index_list(?1) WHERE \"unique\" = 1")
            .map_err(sqlerr)?;
        let indexes: Vec<String> = stmt
            .query_map([&name], |r| r.get(0))
            .map_err(sqlerr)?
            .collect::<rusqlite::Result<_>>()
            .map_err(sqlerr)?;
        for index in indexes {
            let mut stmt = conn
                .prepare("SELECT name FROM pragma_index_info(?1) ORDER BY seqno")
                .map_err(sqlerr)?;
            let cols: Vec<Option<String>> = stmt
                .query_map([&index], |r| r.get(0))
                .map_err(sqlerr)?
                .collect::<rusqlite::Result<_>>()
                .map_err(sqlerr)?;
            if cols.iter().all(Option::is_some) {
                unique.push(cols.into_iter().flatten().collect());
            }
        }
        unique.retain(|u| !u.is_empty());
        out.push(Table {
            name,
            columns,
            pk,
            id,
            fks: fks.into_values().collect(),
            unique,
            without_rowid,
        });
    }
    // A reference without a column names the parent's primary key.
    let pks: HashMap<String, Vec<String>> =
        out.iter().map(|t| (lower(&t.name), t.pk.clone())).collect();
    for t in &mut out {
        for fk in &mut t.fks {
            let parent_pk = pks.get(&lower(&fk.parent)).cloned().unwrap_or_default();
            for (i, (_, to)) in fk.pairs.iter_mut().enumerate() {
                if to.is_empty() {
                    *to = parent_pk.get(i).cloned().unwrap_or_default();
                }
            }
        }
    }
    Ok(out)
}

/// Tables with parents before children (a cycle keeps the remaining order; the seed
/// file defers foreign keys).
fn load_order(tables: &[Table]) -> Vec<usize> {
    let mut left: Vec<usize> = (0..tables.len()).collect();
    let mut order = Vec::new();
    while !left.is_empty() {
        let ready = left.iter().position(|&i| {
            tables[i].fks.iter().all(|fk| {
                fk.parent.eq_ignore_ascii_case(&tables[i].name)
                    || !left
                        .iter()
                        .any(|&j| tables[j].name.eq_ignore_ascii_case(&fk.parent))
            })
        });
        order.push(left.remove(ready.unwrap_or(0)));
    }
    order
}

/// The column a reference leads to, when it leads to a moved id: (parent table, its id).
fn moved_parent<'a>(tables: &'a [Table], fk: &ForeignKey, to: &str) -> Option<&'a Table> {
    tables
        .iter()
        .find(|t| t.name.eq_ignore_ascii_case(&fk.parent))
        .filter(|p| {
            p.id.as_deref()
                .is_some_and(|id| id.eq_ignore_ascii_case(to))
        })
}

/// Where a column's values come from.
#[derive(Clone, Debug)]
enum Source {
    /// The table's own id: moved into its range.
    Id,
    /// A reference to a moved id: the parent's new id.
    Ref(String),
    Rule(Kind),
}

/// The rule of every column; `Err` lists each TEXT/BLOB column without one.
fn sources(tables: &[Table], rules: &BTreeMap<String, Kind>) -> anyhow::Result<Vec<Vec<Source>>> {
    let mut missing = Vec::new();
    let mut out = Vec::new();
    for t in tables {
        let mut row = Vec::new();
        for c in &t.columns {
            let key = format!("{}.{}", lower(&t.name), lower(&c.name));
            let moved_ref = t.fks.iter().find_map(|fk| {
                fk.pairs
                    .iter()
                    .find(|(from, _)| from.eq_ignore_ascii_case(&c.name))
                    .and_then(|(_, to)| moved_parent(tables, fk, to))
                    .map(|p| p.name.clone())
            });
            // A reference to a column that is not a moved id takes the parent column's
            // rule, so that both sides still match.
            let parent_rule = t.fks.iter().find_map(|fk| {
                fk.pairs
                    .iter()
                    .find(|(from, _)| from.eq_ignore_ascii_case(&c.name))
                    .and_then(|(_, to)| rules.get(&format!("{}.{}", lower(&fk.parent), lower(to))))
            });
            let source = if t.id.as_deref() == Some(c.name.as_str()) {
                Source::Id
            } else if let Some(parent) = moved_ref {
                Source::Ref(parent)
            } else if let Some(kind) = parent_rule.or_else(|| rules.get(&key)) {
                if matches!(kind, Kind::Null) && c.notnull {
                    return Err(usage!(
                        "anonymize.{}.{}: `null` on a NOT NULL column; use `const` or another rule; nothing was written",
                        t.name,
                        c.name
                    ));
                }
                Source::Rule(kind.clone())
            } else if c.textual {
                missing.push(format!("{}.{}", t.name, c.name));
                Source::Rule(Kind::Keep)
            } else {
                Source::Rule(Kind::Keep)
            };
            row.push(source);
        }
        out.push(row);
    }
    if !missing.is_empty() {
        return Err(usage!(
            "no anonymize rule for {} (TEXT or BLOB: it may hold personal data): add a rule for each to \
             \"anonymize\" in xtask.jsonc (`cargo xtask db-seed --from <env> --report` prints a template); \
             nothing was written",
            missing.join(", ")
        ));
    }
    let known: HashSet<String> = tables
        .iter()
        .flat_map(|t| {
            t.columns
                .iter()
                .map(move |c| format!("{}.{}", lower(&t.name), lower(&c.name)))
        })
        .collect();
    let unknown: Vec<&String> = rules.keys().filter(|k| !known.contains(*k)).collect();
    if !unknown.is_empty() {
        let names: Vec<&str> = unknown.iter().map(|s| s.as_str()).collect();
        return Err(usage!(
            "anonymize rules for columns the database does not have: {} (a typo, or an old column): fix \
             xtask.jsonc; nothing was written",
            names.join(", ")
        ));
    }
    Ok(out)
}

/// A rules template for the schema: the columns that need one, with a guess to review.
pub(crate) fn report(
    conn: &Connection,
    skip: &[String],
    rules: &BTreeMap<String, Kind>,
) -> anyhow::Result<String> {
    let tables = tables(conn, skip)?;
    let mut lines = vec![
        "// Rules for every TEXT and BLOB column; review each guess, `keep` above all.".to_string(),
        "\"anonymize\": {".to_string(),
    ];
    for t in &tables {
        for c in &t.columns {
            let key = format!("{}.{}", lower(&t.name), lower(&c.name));
            let is_ref = t.fks.iter().any(|fk| {
                fk.pairs
                    .iter()
                    .any(|(f, _)| f.eq_ignore_ascii_case(&c.name))
            });
            if !c.textual || is_ref || t.id.as_deref() == Some(c.name.as_str()) {
                continue;
            }
            let (kind, how) = match rules.get(&key) {
                Some(k) => (k.name().to_string(), "set in xtask.jsonc"),
                None => (guess(&c.name, c.notnull).to_string(), "guessed"),
            };
            let kind = match rules.get(&key) {
                Some(Kind::Const(v)) => format!("{{ \"const\": {} }}", json_of(v)),
                _ => format!("\"{kind}\""),
            };
            lines.push(format!("  \"{}.{}\": {kind},   // {how}", t.name, c.name));
        }
    }
    lines.push("},".into());
    Ok(lines.join("\n"))
}

fn json_of(v: &Value) -> String {
    match v {
        Value::Integer(i) => i.to_string(),
        Value::Real(f) => f.to_string(),
        Value::Text(s) => serde_json::Value::String(s.clone()).to_string(),
        _ => "null".into(),
    }
}

/// A first guess from a column's name.
fn guess(column: &str, notnull: bool) -> &'static str {
    let c = column.to_ascii_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| c.contains(w));
    if has(&["email", "mail"]) {
        "email"
    } else if has(&["token", "hash", "secret", "password", "key", "salt"]) {
        "hmac"
    } else if has(&["name"]) {
        "name"
    } else if has(&["url", "avatar", "phone", "address", "ip"]) {
        if notnull {
            "text"
        } else {
            "null"
        }
    } else if has(&[
        "bio",
        "body",
        "note",
        "comment",
        "description",
        "message",
        "title",
    ]) {
        "text"
    } else {
        "keep"
    }
}

const FIRST: [&str; 16] = [
    "Alex", "Bea", "Chen", "Dana", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jun", "Kai", "Lena",
    "Milo", "Nia", "Omar", "Pia",
];
const LAST: [&str; 16] = [
    "Archer", "Brook", "Cole", "Dale", "Ellis", "Frost", "Gray", "Hale", "Irwin", "Joss", "Kerr",
    "Lind", "Moss", "Noor", "Oake", "Pryce",
];
const WORDS: [&str; 32] = [
    "amber", "basil", "cedar", "delta", "ember", "fjord", "gable", "harbor", "indigo", "juniper",
    "kelp", "lumen", "maple", "nectar", "onyx", "pebble", "quartz", "river", "saffron", "tundra",
    "umber", "velvet", "willow", "xenon", "yarrow", "zephyr", "acorn", "birch", "cobalt", "dune",
    "elm", "flint",
];

/// The replacement of one value.
struct Anonymizer<'a> {
    key: &'a [u8],
}

impl Anonymizer<'_> {
    fn mac(&self, kind: &str, value: &Value, round: u32) -> [u8; 32] {
        let mut m =
            Hmac::<Sha256>::new_from_slice(self.key).expect("HMAC takes keys of any length");
        m.update(kind.as_bytes());
        m.update(&round.to_le_bytes());
        match value {
            Value::Text(s) => m.update(s.as_bytes()),
            Value::Blob(b) => m.update(b),
            Value::Integer(i) => m.update(i.to_string().as_bytes()),
            Value::Real(f) => m.update(f.to_string().as_bytes()),
            Value::Null => {}
        }
        m.finalize().into_bytes().into()
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn apply(&self, kind: &Kind, value: &Value, unique: bool) -> Value {
        if matches!(value, Value::Null) {
            return Value::Null;
        }
        match kind {
            Kind::Keep => value.clone(),
            Kind::Null => Value::Null,
            Kind::Const(v) => v.clone(),
            Kind::Email => {
                let h = self.mac("email", value, 0);
                Value::Text(format!("user-{}@example.invalid", Self::hex(&h[..8])))
            }
            Kind::Name => {
                let h = self.mac("name", value, 0);
                let mut name = format!(
                    "{} {}",
                    FIRST[usize::from(h[0]) % FIRST.len()],
                    LAST[usize::from(h[1]) % LAST.len()]
                );
                if unique {
                    name.push_str(&format!(" {}", Self::hex(&h[2..6])));
                }
                Value::Text(name)
            }
            Kind::Text => {
                let want = match value {
                    Value::Text(s) => s.chars().count(),
                    Value::Blob(b) => b.len(),
                    _ => 8,
                }
                .clamp(1, 4000);
                let mut out = String::new();
                let mut round = 0;
                'fill: loop {
                    for b in self.mac("text", value, round) {
                        if !out.is_empty() {
                            out.push(' ');
                        }
                        out.push_str(WORDS[usize::from(b) % WORDS.len()]);
                        if out.len() >= want {
                            break 'fill;
                        }
                    }
                    round += 1;
                }
                if unique {
                    out.push_str(&format!(
                        " {}",
                        Self::hex(&self.mac("text", value, u32::MAX)[..4])
                    ));
                }
                Value::Text(out)
            }
            Kind::Hmac => Value::Text(Self::hex(&self.mac("hmac", value, 0))),
        }
    }
}

fn literal(v: &Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::Integer(i) => i.to_string(),
        Value::Real(f) if f.is_finite() => {
            let s = format!("{f:?}");
            if s.contains(['.', 'e', 'E']) {
                s
            } else {
                format!("{s}.0")
            }
        }
        Value::Real(_) => "NULL".into(),
        Value::Text(s) => quote_string(s),
        Value::Blob(b) => format!("X'{}'", Anonymizer::hex(b)),
    }
}

/// Keeps at most `limit` rows a table (the first by key), then every parent of a kept
/// row, until nothing more is added; deletes the rest from the copy.
fn reduce(conn: &Connection, tables: &[Table], limit: usize) -> anyhow::Result<()> {
    if let Some(t) = tables.iter().find(|t| t.without_rowid) {
        return Err(usage!(
            "--limit cannot reduce `{}`, a WITHOUT ROWID table: run without --limit; nothing was written",
            t.name
        ));
    }
    let run = |sql: &str| conn.execute(sql, []).map_err(sqlerr);
    run("CREATE TEMP TABLE IF NOT EXISTS xtask_keep(t TEXT NOT NULL, r INTEGER NOT NULL, PRIMARY KEY (t, r))")?;
    for t in tables {
        run(&format!(
            "INSERT OR IGNORE INTO temp.xtask_keep SELECT {}, rowid FROM {} ORDER BY rowid LIMIT {limit}",
            quote_string(&lower(&t.name)),
            quote_ident(&t.name)
        ))?;
    }
    loop {
        let mut added = 0;
        for t in tables {
            for fk in &t.fks {
                let on: Vec<String> = fk
                    .pairs
                    .iter()
                    .map(|(from, to)| format!("p.{} = c.{}", quote_ident(to), quote_ident(from)))
                    .collect();
                added += run(&format!(
                    "INSERT OR IGNORE INTO temp.xtask_keep SELECT {}, p.rowid FROM {} AS p JOIN {} AS c ON {} \
                     WHERE c.rowid IN (SELECT r FROM temp.xtask_keep WHERE t = {})",
                    quote_string(&lower(&fk.parent)),
                    quote_ident(&fk.parent),
                    quote_ident(&t.name),
                    on.join(" AND "),
                    quote_string(&lower(&t.name))
                ))?;
            }
        }
        if added == 0 {
            break;
        }
    }
    for t in tables {
        run(&format!(
            "DELETE FROM {} WHERE rowid NOT IN (SELECT r FROM temp.xtask_keep WHERE t = {})",
            quote_ident(&t.name),
            quote_string(&lower(&t.name))
        ))?;
    }
    Ok(())
}

/// Rows a statement.
const ROWS_PER_INSERT: usize = 200;

/// Makes the seed and cleanup files from the copy on `conn` (which it changes: `--limit`
/// deletes from it).
pub(crate) fn make(conn: &Connection, opts: &Options<'_>) -> anyhow::Result<Made> {
    conn.execute_batch("PRAGMA foreign_keys = OFF;")
        .map_err(sqlerr)?;
    let tables = tables(conn, opts.skip)?;
    if let Some(t) = tables.iter().find(|t| t.pk.is_empty()) {
        return Err(usage!(
            "table `{}` has no primary key: its rows could not be upserted (rerunnable) nor cleaned up by key; \
             nothing was written",
            t.name
        ));
    }
    let sources = sources(&tables, opts.rules)?;
    let keyed = sources
        .iter()
        .flatten()
        .any(|s| matches!(s, Source::Rule(k) if k.keyed()));
    let key = match opts.key {
        Some(k) => k,
        None if keyed => {
            return Err(usage!(
                "the email, name, text and hmac rules need a key: set XTASK_ANONYMIZE_KEY, or name a key file \
                 in xtask.jsonc (\"anonymize_key_file\"); nothing was written"
            ))
        }
        None => &[][..],
    };
    if let Some(limit) = opts.limit {
        reduce(conn, &tables, limit)?;
    }
    let anonymizer = Anonymizer { key };
    let order = load_order(&tables);

    // New ids, table by table: the n-th row by id gets the range's first id + n.
    let mut ids: HashMap<String, HashMap<i64, i64>> = HashMap::new();
    let mut used: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for t in &tables {
        let Some(id) = &t.id else { continue };
        let (lo, hi) = opts
            .ranges
            .get(&lower(&t.name))
            .or_else(|| opts.ranges.get("*"))
            .copied()
            .ok_or_else(|| {
                usage!(
                    "no id range for `{}`: set test_ranges in xtask.jsonc",
                    t.name
                )
            })?;
        let mut stmt = conn
            .prepare(&format!(
                "SELECT {0} FROM {1} WHERE {0} IS NOT NULL ORDER BY {0}",
                quote_ident(id),
                quote_ident(&t.name)
            ))
            .map_err(sqlerr)?;
        let old: Vec<i64> = stmt
            .query_map([], |r| r.get(0))
            .map_err(sqlerr)?
            .collect::<rusqlite::Result<_>>()
            .map_err(sqlerr)?;
        let room = hi - lo + 1;
        if old.len() as i64 > room {
            return Err(usage!(
                "`{}` has {} rows, more than its id range {lo}-{hi} holds ({room}): pass --limit, or widen \
                 test_ranges in xtask.jsonc; nothing was written",
                t.name,
                old.len()
            ));
        }
        ids.insert(
            lower(&t.name),
            old.iter()
                .enumerate()
                .map(|(i, o)| (*o, lo + i as i64))
                .collect(),
        );
        used.insert(lower(&t.name), (lo, hi));
    }

    let mut seed = format!(
        "-- {}: test data made from {env} by `cargo xtask db-seed --from {env}`{}.\n\
         -- Every TEXT and BLOB column went through its rule in xtask.jsonc (\"anonymize\"); ids moved\n\
         -- into the reserved ranges that {} deletes. Rerunnable (upserts).\n\n\
         PRAGMA defer_foreign_keys = true;\n",
        opts.seed_name,
        opts.limit
            .map_or(String::new(), |n| format!(" --limit {n}")),
        opts.cleanup_name,
        env = opts.env
    );
    let mut rows_made = Vec::new();
    let mut output_texts: Vec<String> = Vec::new();
    let mut originals: Vec<String> = Vec::new();
    let mut exact_keys: HashMap<usize, Vec<Vec<Value>>> = HashMap::new();
    for &ti in &order {
        let t = &tables[ti];
        let cols: Vec<String> = t.columns.iter().map(|c| quote_ident(&c.name)).collect();
        let mut stmt = conn
            .prepare(&format!(
                "SELECT {} FROM {} ORDER BY {}",
                cols.join(", "),
                quote_ident(&t.name),
                t.pk.iter()
                    .map(|c| quote_ident(c))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
            .map_err(sqlerr)?;
        let n = t.columns.len();
        let rows: Vec<Vec<Value>> = stmt
            .query_map([], |r| (0..n).map(|i| r.get::<_, Value>(i)).collect())
            .map_err(sqlerr)?
            .collect::<rusqlite::Result<_>>()
            .map_err(sqlerr)?;
        let unique_cols: HashSet<String> = t
            .unique
            .iter()
            .filter(|u| u.len() == 1)
            .map(|u| lower(&u[0]))
            .collect();
        let mut made: Vec<Vec<Value>> = Vec::new();
        for row in &rows {
            let mut out = Vec::with_capacity(n);
            for (ci, (c, v)) in t.columns.iter().zip(row).enumerate() {
                let value = match &sources[ti][ci] {
                    Source::Id => match v {
                        Value::Integer(i) => Value::Integer(ids[&lower(&t.name)][i]),
                        other => other.clone(),
                    },
                    Source::Ref(parent) => match v {
                        Value::Integer(i) => match ids[&lower(parent)].get(i) {
                            Some(new) => Value::Integer(*new),
                            None => {
                                return Err(failed!(
                                    "{}.{} = {i} references a `{parent}` row the copy does not have (the source \
                                     breaks its own foreign key): fix the source data; nothing was written",
                                    t.name,
                                    c.name
                                ))
                            }
                        },
                        other => other.clone(),
                    },
                    Source::Rule(kind) => {
                        if !matches!(kind, Kind::Keep) {
                            if let Value::Text(s) = v {
                                originals.push(s.clone());
                            }
                        }
                        anonymizer.apply(kind, v, unique_cols.contains(&lower(&c.name)))
                    }
                };
                if let Value::Text(s) = &value {
                    output_texts.push(s.clone());
                }
                out.push(value);
            }
            made.push(out);
        }
        // UNIQUE constraints still hold (a `const` on a UNIQUE column would break them).
        for u in &t.unique {
            let idx: Vec<usize> = u
                .iter()
                .filter_map(|c| {
                    t.columns
                        .iter()
                        .position(|x| x.name.eq_ignore_ascii_case(c))
                })
                .collect();
            let mut seen = HashSet::new();
            for row in &made {
                let key: Vec<String> = idx.iter().map(|&i| literal(&row[i])).collect();
                if key.iter().any(|k| k == "NULL") {
                    continue;
                }
                if !seen.insert(key) {
                    return Err(usage!(
                        "the rules make two rows of `{}` equal in UNIQUE ({}): give those columns a rule that keeps \
                         values apart (email, hmac, name, text); nothing was written",
                        t.name,
                        u.join(", ")
                    ));
                }
            }
        }
        if t.id.is_none()
            && !t.fks.iter().any(|fk| {
                fk.pairs
                    .iter()
                    .any(|(_, to)| moved_parent(&tables, fk, to).is_some())
            })
        {
            let pk_idx: Vec<usize> =
                t.pk.iter()
                    .filter_map(|c| {
                        t.columns
                            .iter()
                            .position(|x| x.name.eq_ignore_ascii_case(c))
                    })
                    .collect();
            exact_keys.insert(
                ti,
                made.iter()
                    .map(|r| pk_idx.iter().map(|&i| r[i].clone()).collect())
                    .collect(),
            );
        }
        rows_made.push((t.name.clone(), made.len()));
        if made.is_empty() {
            continue;
        }
        let updates: Vec<String> = t
            .columns
            .iter()
            .filter(|c| !t.pk.iter().any(|p| p.eq_ignore_ascii_case(&c.name)))
            .map(|c| format!("{0} = excluded.{0}", quote_ident(&c.name)))
            .collect();
        let conflict = format!(
            "ON CONFLICT ({}) DO {}",
            t.pk.iter()
                .map(|c| quote_ident(c))
                .collect::<Vec<_>>()
                .join(", "),
            if updates.is_empty() {
                "NOTHING".to_string()
            } else {
                format!("UPDATE SET {}", updates.join(", "))
            }
        );
        for chunk in made.chunks(ROWS_PER_INSERT) {
            seed.push_str(&format!(
                "\nINSERT INTO {} ({}) VALUES\n",
                quote_ident(&t.name),
                cols.join(", ")
            ));
            let values: Vec<String> = chunk
                .iter()
                .map(|r| {
                    format!(
                        "    ({})",
                        r.iter().map(literal).collect::<Vec<_>>().join(", ")
                    )
                })
                .collect();
            seed.push_str(&values.join(",\n"));
            seed.push_str(&format!("\n{conflict};\n"));
        }
    }
    seed.push_str("\nPRAGMA defer_foreign_keys = false;\n");
    scan_for_leaks(&originals, &output_texts)?;

    // The cleanup: children first, every row in the ranges this file used.
    let mut cleanup = format!(
        "-- {}: removes the rows of {}\n\
         -- (`cargo xtask db-seed --from {}`): every row whose id, or a reference, lies in the\n\
         -- ranges it used; children first.\n\n\
         PRAGMA defer_foreign_keys = true;\n\n",
        opts.cleanup_name, opts.seed_name, opts.env
    );
    for &ti in order.iter().rev() {
        let t = &tables[ti];
        let mut terms = Vec::new();
        if let (Some(id), Some((lo, hi))) = (&t.id, used.get(&lower(&t.name))) {
            terms.push(format!("{} BETWEEN {lo} AND {hi}", quote_ident(id)));
        }
        for fk in &t.fks {
            for (from, to) in &fk.pairs {
                if let Some(p) = moved_parent(&tables, fk, to) {
                    if let Some((lo, hi)) = used.get(&lower(&p.name)) {
                        let term = format!("{} BETWEEN {lo} AND {hi}", quote_ident(from));
                        if !terms.contains(&term) {
                            terms.push(term);
                        }
                    }
                }
            }
        }
        if let Some(keys) = exact_keys.get(&ti) {
            for key in keys {
                let parts: Vec<String> =
                    t.pk.iter()
                        .zip(key)
                        .map(|(c, v)| format!("{} = {}", quote_ident(c), literal(v)))
                        .collect();
                terms.push(format!("({})", parts.join(" AND ")));
            }
        }
        if terms.is_empty() {
            continue;
        }
        cleanup.push_str(&format!(
            "DELETE FROM {} WHERE {};\n",
            quote_ident(&t.name),
            terms.join(" OR ")
        ));
    }
    cleanup.push_str("\nPRAGMA defer_foreign_keys = false;\n");
    Ok(Made {
        seed_sql: seed,
        cleanup_sql: cleanup,
        rows: rows_made,
    })
}

/// Refuses output that holds an original value of a column that is not `keep`: a kept
/// free-text column quoting an email, a rule that let one through. Values shorter than
/// four characters are not looked for (they identify nobody and would match anywhere).
fn scan_for_leaks(originals: &[String], outputs: &[String]) -> anyhow::Result<()> {
    const MIN: usize = 4;
    let mut by_prefix: HashMap<Vec<char>, Vec<Vec<char>>> = HashMap::new();
    for o in originals {
        let chars: Vec<char> = o.trim().to_lowercase().chars().collect();
        if chars.len() >= MIN {
            by_prefix
                .entry(chars[..MIN].to_vec())
                .or_default()
                .push(chars);
        }
    }
    if by_prefix.is_empty() {
        return Ok(());
    }
    for out in outputs {
        let chars: Vec<char> = out.to_lowercase().chars().collect();
        for i in 0..chars.len().saturating_sub(MIN - 1) {
            if let Some(candidates) = by_prefix.get(&chars[i..i + MIN]) {
                if let Some(hit) = candidates.iter().find(|c| chars[i..].starts_with(c)) {
                    let shown: String = hit.iter().take(3).collect();
                    return Err(failed!(
                        "an original value ({shown}…, {} characters) of a column that is not `keep` appears in the \
                         output: a kept column quotes it, or a rule let it through; review the rules (a free-text \
                         column may need `text` instead of `keep`); nothing was written",
                        hit.len()
                    ));
                }
            }
        }
    }
    Ok(())
}

/// The reserved id ranges a cleanup file works on: every `BETWEEN <a> AND <b>` in it.
pub(crate) fn ranges_in(sql: &str) -> Vec<(i64, i64)> {
    let words: Vec<&str> = sql.split_whitespace().collect();
    let mut out = Vec::new();
    for w in words.windows(4) {
        if w[0].eq_ignore_ascii_case("BETWEEN") && w[2].eq_ignore_ascii_case("AND") {
            let num = |s: &str| s.trim_end_matches([';', ')', ',']).parse::<i64>().ok();
            if let (Some(a), Some(b)) = (num(w[1]), num(w[3])) {
                if a <= b && !out.contains(&(a, b)) {
                    out.push((a, b));
                }
            }
        }
    }
    out
}

/// One query counting, per table of `schema`, the rows whose id or a reference lies in
/// one of `ranges`: what a cleanup must leave at zero. `None` when nothing can be counted.
pub(crate) fn leftover_sql(
    schema: &[crate::d1::SchemaObject],
    skip: &[String],
    ranges: &[(i64, i64)],
) -> Option<(String, Vec<String>)> {
    if ranges.is_empty() {
        return None;
    }
    let conn = crate::d1::schema_copy(schema)?;
    let tables = tables(&conn, skip).ok()?;
    let mut names = Vec::new();
    let mut counts = Vec::new();
    for t in &tables {
        let mut cols: Vec<&str> = t.id.iter().map(String::as_str).collect();
        for fk in &t.fks {
            for (from, to) in &fk.pairs {
                if moved_parent(&tables, fk, to).is_some() && !cols.contains(&from.as_str()) {
                    cols.push(from);
                }
            }
        }
        if cols.is_empty() {
            continue;
        }
        let terms: Vec<String> = cols
            .iter()
            .flat_map(|c| {
                ranges
                    .iter()
                    .map(move |(a, b)| format!("{} BETWEEN {a} AND {b}", quote_ident(c)))
            })
            .collect();
        counts.push(format!(
            "(SELECT count(*) FROM {} WHERE {}) AS n{}",
            quote_ident(&t.name),
            terms.join(" OR "),
            names.len()
        ));
        names.push(t.name.clone());
    }
    if names.is_empty() || names.len() > crate::d1::COUNTS_PER_QUERY {
        return None;
    }
    Some((format!("SELECT {}", counts.join(", ")), names))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: &str = "
        CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE, name TEXT NOT NULL, created_at TEXT NOT NULL);
        CREATE TABLE posts (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users(id), title TEXT NOT NULL, body TEXT NOT NULL DEFAULT '');
        CREATE TABLE tokens (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users(id), token_hash TEXT NOT NULL UNIQUE);
        CREATE TABLE products (id INTEGER PRIMARY KEY, sku TEXT NOT NULL UNIQUE, name TEXT NOT NULL);
        CREATE TABLE order_items (user_id INTEGER NOT NULL REFERENCES users(id), product_id INTEGER NOT NULL REFERENCES products(id), qty INTEGER, PRIMARY KEY (user_id, product_id));
        CREATE TABLE d1_migrations (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT UNIQUE, applied_at TEXT);
    ";

    fn source() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(SCHEMA).unwrap();
        conn.execute_batch(
            "INSERT INTO users VALUES (7, 'grace@real.example', 'Grace Hopper', '2026-01-01'),
                                      (3, 'alan@real.example', 'Alan Turing', '2026-01-02'),
                                      (11, 'ada@real.example', 'Ada Lovelace', '2026-01-03');
             INSERT INTO posts VALUES (1, 7, 'Compilers', 'about COBOL'), (2, 3, 'Machines', 'can they think'),
                                      (3, 11, 'Notes', 'on the engine'), (4, 7, 'Bugs', 'a moth');
             INSERT INTO tokens VALUES (5, 3, 'secret-token-alan'), (6, 11, 'secret-token-ada');
             INSERT INTO products VALUES (40, 'MUG', 'Mug'), (41, 'TEE', 'Tee');
             INSERT INTO order_items VALUES (7, 41, 2), (3, 40, 1), (11, 41, 5);
             INSERT INTO d1_migrations (name) VALUES ('0001.sql');",
        )
        .unwrap();
        conn
    }

    fn rules() -> BTreeMap<String, Kind> {
        [
            ("users.email", Kind::Email),
            ("users.name", Kind::Name),
            ("users.created_at", Kind::Keep),
            ("posts.title", Kind::Text),
            ("posts.body", Kind::Text),
            ("tokens.token_hash", Kind::Hmac),
            ("products.sku", Kind::Keep),
            ("products.name", Kind::Keep),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    fn ranges() -> BTreeMap<String, (i64, i64)> {
        [("*".to_string(), (950000, 999999))].into_iter().collect()
    }

    fn run(
        conn: &Connection,
        rules: &BTreeMap<String, Kind>,
        limit: Option<usize>,
    ) -> anyhow::Result<Made> {
        make(
            conn,
            &Options {
                env: "staging",
                rules,
                key: Some(b"unit-test-key-0123456789"),
                ranges: &ranges(),
                limit,
                skip: &["d1_migrations".to_string()],
                seed_name: "seed-from-staging.sql",
                cleanup_name: "cleanup-from-staging.sql",
            },
        )
    }

    /// Loads the files into a fresh copy of the schema with foreign keys on.
    fn load(made: &Made) -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(SCHEMA).unwrap();
        conn.execute_batch("PRAGMA foreign_keys = ON;").unwrap();
        conn.execute_batch(&format!("BEGIN; {} COMMIT;", made.seed_sql))
            .unwrap();
        conn
    }

    fn count(conn: &Connection, sql: &str) -> i64 {
        conn.query_row(sql, [], |r| r.get(0)).unwrap()
    }

    #[test]
    fn moves_ids_rewrites_references_and_hides_what_is_personal() {
        let made = run(&source(), &rules(), None).unwrap();
        for secret in [
            "grace@real.example",
            "Grace Hopper",
            "Alan",
            "secret-token-ada",
            "COBOL",
        ] {
            assert!(
                !made.seed_sql.contains(secret),
                "{secret} leaked:\n{}",
                made.seed_sql
            );
        }
        assert!(made.seed_sql.contains("'MUG'"), "kept columns stay");
        let conn = load(&made);
        assert_eq!(
            count(&conn, "SELECT count(*) FROM pragma_foreign_key_check"),
            0
        );
        assert_eq!(count(&conn, "SELECT min(id) FROM users"), 950000);
        // Ids in key order: 3 -> 950000, 7 -> 950001, 11 -> 950002; posts follow their users.
        assert_eq!(
            count(&conn, "SELECT user_id FROM posts WHERE id = 950003"),
            950001
        );
        assert_eq!(
            count(
                &conn,
                "SELECT count(*) FROM order_items WHERE product_id = 950001"
            ),
            2
        );
        assert_eq!(
            count(
                &conn,
                "SELECT count(*) FROM users WHERE email LIKE 'user-%@example.invalid'"
            ),
            3
        );
        // Reruns upsert; the cleanup removes exactly those rows.
        conn.execute_batch(&made.seed_sql).unwrap();
        assert_eq!(count(&conn, "SELECT count(*) FROM posts"), 4);
        conn.execute_batch("INSERT INTO users VALUES (1, 'real@x', 'Real', '');")
            .unwrap();
        conn.execute_batch(&made.cleanup_sql).unwrap();
        assert_eq!(count(&conn, "SELECT count(*) FROM users"), 1);
        assert_eq!(count(&conn, "SELECT count(*) FROM order_items"), 0);
        // The same key gives the same bytes.
        assert_eq!(
            run(&source(), &rules(), None).unwrap().seed_sql,
            made.seed_sql
        );
    }

    #[test]
    fn a_text_column_without_a_rule_is_refused_by_name() {
        let mut r = rules();
        r.remove("posts.body");
        let e = run(&source(), &r, None).unwrap_err();
        assert_eq!(crate::exit::status_of(&e), crate::exit::Exit::Usage);
        assert!(e.to_string().contains("posts.body"), "{e}");
        let mut r = rules();
        r.insert("users.phone".into(), Kind::Null);
        let e = run(&source(), &r, None).unwrap_err();
        assert!(e.to_string().contains("users.phone"), "{e}");
    }

    #[test]
    fn a_limit_keeps_the_parents_of_every_kept_row() {
        let made = run(&source(), &rules(), Some(1)).unwrap();
        let conn = load(&made);
        assert_eq!(
            count(&conn, "SELECT count(*) FROM pragma_foreign_key_check"),
            0
        );
        assert_eq!(count(&conn, "SELECT count(*) FROM posts"), 1);
        assert_eq!(count(&conn, "SELECT count(*) FROM order_items"), 1);
        // The first post's user, the first token's user and the first item's user and product.
        assert!(count(&conn, "SELECT count(*) FROM users") >= 2);
        assert_eq!(count(&conn, "SELECT count(*) FROM products"), 2);
    }

    #[test]
    fn a_kept_column_quoting_a_personal_value_is_refused() {
        let conn = source();
        conn.execute_batch("UPDATE products SET name = 'Mug for ada@real.example' WHERE id = 40;")
            .unwrap();
        let e = run(&conn, &rules(), None).unwrap_err();
        assert!(e.to_string().contains("appears in the output"), "{e}");
        // A const on a UNIQUE column would make rows equal.
        let mut r = rules();
        r.insert(
            "tokens.token_hash".into(),
            Kind::Const(Value::Text("x".into())),
        );
        let e = run(&source(), &r, None).unwrap_err();
        assert!(e.to_string().contains("UNIQUE"), "{e}");
    }

    #[test]
    fn report_lists_every_column_that_needs_a_rule_and_cleanup_ranges_are_read() {
        let text = report(&source(), &["d1_migrations".to_string()], &BTreeMap::new()).unwrap();
        for line in [
            "\"users.email\": \"email\"",
            "\"tokens.token_hash\": \"hmac\"",
            "\"users.name\": \"name\"",
            "\"products.sku\": \"keep\"",
        ] {
            assert!(text.contains(line), "{line} missing in\n{text}");
        }
        assert!(!text.contains("posts.user_id"));
        assert_eq!(
            ranges_in("DELETE FROM t WHERE id BETWEEN 900000 AND 999999 OR x BETWEEN 5 AND 9;"),
            vec![(900000, 999999), (5, 9)]
        );
    }
}
