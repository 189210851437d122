//! A remote backup of a database that has virtual tables.
//!
//! D1's export refuses such a database outright ("cannot export databases with Virtual
//! Tables"), whatever the tables asked for; it does export named tables of it
//! (`wrangler d1 export --table ...`), as public projects with FTS5 do by hand. So the
//! backup is the export of the ordinary tables, then, in the same file, what the export
//! leaves out, read through `/query`:
//!
//! - each virtual table's `CREATE VIRTUAL TABLE` (its shadow tables follow from it);
//! - its content: FTS5 with external content is rebuilt from its table (`'rebuild'`), an
//!   FTS5 table that keeps its own text and an R*Tree get their rows back, `fts5vocab`
//!   has none of its own; a contentless FTS5 table (`content=''`) cannot be read back,
//!   and the backup says so;
//! - indexes, views and triggers (`IF NOT EXISTS`: D1 may or may not have put them in);
//! - `sqlite_sequence`, so AUTOINCREMENT counters go on where they were.

use super::{quote_ident, quote_string, SchemaObject};

/// What becomes of a virtual table's content in a backup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Content {
    /// Its rows are read and written back (`rowid` too, for FTS5).
    Rows { with_rowid: bool },
    /// FTS5 over an external content table: rebuilt from that table.
    Rebuild,
    /// Nothing of its own (`fts5vocab`).
    Nothing,
    /// Contentless FTS5: the index cannot be read back.
    Lost,
}

/// The module a `CREATE VIRTUAL TABLE` uses, lower case, and the text of its arguments.
fn module_and_args(sql: &str) -> Option<(String, String)> {
    let upper = sql.to_ascii_uppercase();
    let at = upper.find(" USING ")? + " USING ".len();
    let rest = sql[at..].trim_start();
    let end = rest.find(|c: char| c == '(' || c.is_whitespace() || c == ';');
    let module = rest[..end.unwrap_or(rest.len())].to_ascii_lowercase();
    let args = rest
        .find('(')
        .and_then(|open| {
            rest.rfind(')')
                .map(|close| rest[open + 1..close].to_string())
        })
        .unwrap_or_default();
    Some((module, args))
}

/// The value of FTS5's `content` option, unquoted (`Some("")` for contentless).
fn fts5_content_option(args: &str) -> Option<String> {
    for part in args.split(',') {
        let Some((key, value)) = part.split_once('=') else {
            continue;
        };
        if key.trim().eq_ignore_ascii_case("content") {
            let v = value.trim();
            let unquoted = v
                .strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .or_else(|| v.strip_prefix('"').and_then(|v| v.strip_suffix('"')))
                .unwrap_or(v);
            return Some(unquoted.to_string());
        }
    }
    None
}

/// What a backup does with the content of the virtual table `sql` creates.
pub(crate) fn content_of(sql: &str) -> Content {
    let Some((module, args)) = module_and_args(sql) else {
        return Content::Nothing;
    };
    match module.as_str() {
        "fts5" => match fts5_content_option(&args) {
            None => Content::Rows { with_rowid: true },
            Some(c) if c.is_empty() => Content::Lost,
            Some(_) => Content::Rebuild,
        },
        "rtree" | "rtree_i32" => Content::Rows { with_rowid: false },
        _ => Content::Nothing,
    }
}

/// `CREATE ... IF NOT EXISTS ...` for an object as `sqlite_master` holds it (whose text
/// always starts with the normalized `CREATE <kind>`).
pub(crate) fn if_not_exists(sql: &str) -> String {
    for prefix in [
        "CREATE VIRTUAL TABLE ",
        "CREATE UNIQUE INDEX ",
        "CREATE INDEX ",
        "CREATE VIEW ",
        "CREATE TRIGGER ",
        "CREATE TABLE ",
    ] {
        if let Some(rest) = sql.strip_prefix(prefix) {
            if rest.to_ascii_uppercase().starts_with("IF NOT EXISTS") {
                return sql.to_string();
            }
            return format!("{prefix}IF NOT EXISTS {rest}");
        }
    }
    sql.to_string()
}

/// An SQL literal for a value as D1's JSON gives it (a BLOB comes as an array of bytes).
pub(crate) fn literal(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "NULL".into(),
        serde_json::Value::Bool(b) => if *b { "1" } else { "0" }.into(),
        serde_json::Value::Number(n) => n.to_string(),
        serde_json::Value::String(s) => quote_string(s),
        serde_json::Value::Array(bytes) => {
            let hex: String = bytes
                .iter()
                .map(|b| format!("{:02x}", b.as_u64().unwrap_or(0)))
                .collect();
            format!("X'{hex}'")
        }
        serde_json::Value::Object(_) => quote_string(&v.to_string()),
    }
}

/// The column holding the rowid in the rows read back.
pub(crate) const ROWID_COLUMN: &str = "_xtask_rowid";

/// Rows of a virtual table read per request.
pub(crate) const PAGE_ROWS: usize = 2000;

/// One page of `table`'s rows after `after` (a rowid), in rowid order.
pub(crate) fn page_sql(table: &str, after: i64) -> String {
    format!(
        "SELECT rowid AS {ROWID_COLUMN}, * FROM {} WHERE rowid > {after} ORDER BY rowid LIMIT {PAGE_ROWS}",
        quote_ident(table)
    )
}

/// `INSERT` statements putting `rows` (as `page_sql` read them) back into `table`.
pub(crate) fn insert_rows(table: &str, rows: &[serde_json::Value], with_rowid: bool) -> String {
    let mut out = String::new();
    for row in rows {
        let Some(map) = row.as_object() else { continue };
        let mut columns = Vec::new();
        let mut values = Vec::new();
        for (k, v) in map {
            if k == ROWID_COLUMN {
                if with_rowid {
                    columns.push("rowid".to_string());
                    values.push(literal(v));
                }
            } else {
                columns.push(quote_ident(k));
                values.push(literal(v));
            }
        }
        out.push_str(&format!(
            "INSERT INTO {} ({}) VALUES ({});\n",
            quote_ident(table),
            columns.join(", "),
            values.join(", ")
        ));
    }
    out
}

/// Whether `schema` has an AUTOINCREMENT table (and so `sqlite_sequence`).
pub(crate) fn has_autoincrement(schema: &[SchemaObject]) -> bool {
    schema
        .iter()
        .any(|o| o.kind == "table" && o.sql.to_ascii_uppercase().contains("AUTOINCREMENT"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_follows_the_module_and_its_options() {
        assert_eq!(
            content_of("CREATE VIRTUAL TABLE f USING fts5(title, body)"),
            Content::Rows { with_rowid: true }
        );
        assert_eq!(
            content_of(
                "CREATE VIRTUAL TABLE f USING fts5(a, content='entries', content_rowid='id', tokenize='unicode61 remove_diacritics 1')"
            ),
            Content::Rebuild
        );
        assert_eq!(
            content_of("CREATE VIRTUAL TABLE f USING fts5(a, content = \"\")"),
            Content::Lost
        );
        assert_eq!(
            content_of("CREATE VIRTUAL TABLE v USING fts5vocab(f, 'row')"),
            Content::Nothing
        );
        assert_eq!(
            content_of("CREATE VIRTUAL TABLE r USING rtree(id, x0, x1)"),
            Content::Rows { with_rowid: false }
        );
        assert_eq!(
            content_of("CREATE VIRTUAL TABLE d USING fts5(id UNINDEXED, body, tokenize='trigram')"),
            Content::Rows { with_rowid: true }
        );
    }

    #[test]
    fn objects_get_if_not_exists_once() {
        assert_eq!(
            if_not_exists("CREATE UNIQUE INDEX a ON t(x)"),
            "CREATE UNIQUE INDEX IF NOT EXISTS a ON t(x)"
        );
        assert_eq!(
            if_not_exists("CREATE TRIGGER IF NOT EXISTS t AFTER INSERT ON a BEGIN SELECT 1; END"),
            "CREATE TRIGGER IF NOT EXISTS t AFTER INSERT ON a BEGIN SELECT 1; END"
        );
        assert_eq!(
            if_not_exists("CREATE VIEW v AS SELECT 1"),
            "CREATE VIEW IF NOT EXISTS v AS SELECT 1"
        );
    }

    #[test]
    fn rows_come_back_as_inserts_that_sqlite_loads() {
        let rows = vec![
            serde_json::json!({"_xtask_rowid": 7, "title": "it's", "body": null, "n": 1.5, "b": [0, 255]}),
        ];
        let sql = insert_rows("docs", &rows, true);
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE docs(title, body, n, b)")
            .unwrap();
        conn.execute_batch(&sql).unwrap();
        let got: (i64, String, Option<String>, f64, Vec<u8>) = conn
            .query_row("SELECT rowid, title, body, n, b FROM docs", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .unwrap();
        assert_eq!(got, (7, "it's".into(), None, 1.5, vec![0, 255]));
    }
}
