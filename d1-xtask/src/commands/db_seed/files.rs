//! Test data files: which ones, in what order, and their SQL made fit for D1: a statement
//! over the 100,000-byte limit (a multi-row `INSERT ... VALUES`) is split into several
//! under it. A file still goes to D1 as one request, so it stays all or nothing.

use std::path::{Path, PathBuf};

use crate::exit::usage;
use crate::migrations::lint::MAX_STATEMENT_BYTES;
use crate::migrations::sql::{self, Statement, Unclosed};

/// Split statements are kept this far under D1's limit.
pub(crate) const SPLIT_TARGET: usize = MAX_STATEMENT_BYTES - 4_000;

/// Rows per INSERT sent: D1 allows 25,000 VDBE ops per statement, and each row of a
/// multi-row VALUES costs a few per column, so a short statement of many tiny rows can
/// break that limit while staying under 100,000 bytes.
pub(crate) const MAX_ROWS_PER_INSERT: usize = 500;

/// One seed or cleanup file, ready to send.
#[derive(Debug)]
pub(crate) struct SeedFile {
    pub(crate) path: PathBuf,
    /// The file as written (for line numbers in messages).
    pub(crate) original: String,
    /// The file's SQL with long INSERTs split; one request.
    pub(crate) sql: String,
    /// Statements of the file before and after splitting.
    pub(crate) statements: usize,
    pub(crate) sent_statements: usize,
    /// Tables the file writes to (INSERT, REPLACE, UPDATE, DELETE), in first-seen order.
    pub(crate) tables: Vec<String>,
}

/// `test-data/<prefix>*.sql` in name order.
pub(crate) fn files_with_prefix(dir: &Path, prefix: &str) -> anyhow::Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(usage!("cannot read {}: {e}", dir.display())),
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(prefix) && n.ends_with(".sql"))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// The `<prefix>*.sql` files of `dir`, in name order, loaded.
pub(crate) fn load_with_prefix(dir: &Path, prefix: &str) -> anyhow::Result<Vec<SeedFile>> {
    files_with_prefix(dir, prefix)?
        .iter()
        .map(|p| SeedFile::load(p))
        .collect()
}

/// The SQL of `files` for one request, in order, each behind a comment naming it.
pub(crate) fn joined_sql(files: &[SeedFile]) -> String {
    let mut sql = String::new();
    for f in files {
        sql.push_str(&format!("-- xtask: seed file {}\n", f.path.display()));
        sql.push_str(&f.sql);
        sql.push('\n');
    }
    sql
}

impl SeedFile {
    /// The file's name without its folder, for messages.
    pub(crate) fn short_name(&self) -> String {
        self.path
            .file_name()
            .map_or(self.path.display().to_string(), |n| {
                n.to_string_lossy().into_owned()
            })
    }

    pub(crate) fn load(path: &Path) -> anyhow::Result<SeedFile> {
        let shown = path.display();
        let bytes = std::fs::read(path).map_err(|e| usage!("cannot read {shown}: {e}"))?;
        let text = String::from_utf8(bytes).map_err(|e| {
            usage!(
                "{shown} is not UTF-8 (byte {}): save it as UTF-8",
                e.utf8_error().valid_up_to()
            )
        })?;
        let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
        let split = sql::split(text);
        match split.unclosed {
            Some(Unclosed::Quote { quote, line }) => {
                return Err(usage!(
                    "{shown}:{line}: the {quote} opened here is never closed; nothing was loaded"
                ))
            }
            Some(Unclosed::BlockComment { line }) => {
                return Err(usage!(
                "{shown}:{line}: the /* comment opened here is never closed; nothing was loaded"
            ))
            }
            Some(Unclosed::Trigger { line }) => {
                return Err(usage!(
                    "{shown}:{line}: CREATE TRIGGER without `END;`; nothing was loaded"
                ))
            }
            None => {}
        }
        let mut out = String::new();
        let mut sent = 0;
        let mut tables: Vec<String> = Vec::new();
        for stmt in &split.statements {
            if let Some(t) = written_table(text, stmt) {
                if !tables.contains(&t) {
                    tables.push(t);
                }
            }
            let body = &text[stmt.start..stmt.end];
            // Split when over D1's byte limit, or over the rows a statement may hold; a
            // statement that needs neither is sent as written.
            let long = body.len() > MAX_STATEMENT_BYTES;
            match split_insert(text, stmt, SPLIT_TARGET, MAX_ROWS_PER_INSERT) {
                Some(chunks) if long || chunks.len() > 1 => {
                    for c in &chunks {
                        out.push_str(c);
                        out.push('\n');
                    }
                    sent += chunks.len();
                }
                _ if !long => {
                    out.push_str(body);
                    if !stmt.terminated {
                        out.push(';');
                    }
                    out.push('\n');
                    sent += 1;
                }
                _ => {
                    return Err(usage!(
                        "{shown}:{}: a statement of {} bytes is over D1's limit of {MAX_STATEMENT_BYTES} and is not a \
                         multi-row INSERT ... VALUES that can be split (or one row alone is over the limit); \
                         nothing was loaded",
                        stmt.line,
                        body.len()
                    ))
                }
            }
        }
        Ok(SeedFile {
            path: path.to_path_buf(),
            original: text.to_string(),
            sql: out,
            statements: split.statements.len(),
            sent_statements: sent,
            tables,
        })
    }
}

fn token_text<'a>(src: &'a str, stmt: &Statement, i: usize) -> &'a str {
    let t = stmt.tokens[i];
    &src[t.start..t.end]
}

fn unquote(name: &str) -> String {
    let n = name.trim();
    if n.len() >= 2 && (n.starts_with('"') || n.starts_with('`') || n.starts_with('[')) {
        let inner = &n[1..n.len() - 1];
        return inner.replace("\"\"", "\"");
    }
    n.to_string()
}

/// The table an INSERT, REPLACE, UPDATE or DELETE writes to.
fn written_table(src: &str, stmt: &Statement) -> Option<String> {
    let words = stmt.leading_words(src, 8);
    let first = words.first()?.as_str();
    let index = match first {
        "INSERT" | "REPLACE" => words.iter().position(|w| w == "INTO")? + 1,
        "DELETE" => words.iter().position(|w| w == "FROM")? + 1,
        "UPDATE" => {
            // UPDATE [OR <conflict>] <table>
            if words.get(1).map(String::as_str) == Some("OR") {
                3
            } else {
                1
            }
        }
        _ => return None,
    };
    let mut name = unquote(token_text(src, stmt, index));
    // schema.table
    if stmt.tokens.len() > index + 2 && token_text(src, stmt, index + 1) == "." {
        name = unquote(token_text(src, stmt, index + 2));
    }
    Some(name)
}

/// Splits `INSERT ... VALUES (row), (row), ... [tail];` into statements of at most
/// `limit` bytes and `max_rows` rows, each `<head> <rows> <tail>;`. `None` when the
/// statement is not of that shape, or a single row does not fit.
pub(crate) fn split_insert(
    src: &str,
    stmt: &Statement,
    limit: usize,
    max_rows: usize,
) -> Option<Vec<String>> {
    let words = stmt.leading_words(src, 1);
    if !matches!(
        words.first().map(String::as_str),
        Some("INSERT" | "REPLACE")
    ) {
        return None;
    }
    let mut depth = 0i32;
    let mut values_at = None;
    for (i, t) in stmt.tokens.iter().enumerate() {
        let text = &src[t.start..t.end];
        match text {
            "(" => depth += 1,
            ")" => depth -= 1,
            _ if depth == 0 && t.word && text.eq_ignore_ascii_case("VALUES") => {
                values_at = Some(i);
                break;
            }
            _ => {}
        }
    }
    let values_at = values_at?;
    // Row groups: `(` ... `)` at depth 0, separated by `,`.
    let mut rows: Vec<(usize, usize)> = Vec::new();
    let mut i = values_at + 1;
    let tokens = &stmt.tokens;
    loop {
        let t = tokens.get(i)?;
        if &src[t.start..t.end] != "(" {
            return None;
        }
        let start = t.start;
        let mut depth = 0;
        let mut end = None;
        while let Some(t) = tokens.get(i) {
            match &src[t.start..t.end] {
                "(" => depth += 1,
                ")" => {
                    depth -= 1;
                    if depth == 0 {
                        end = Some(t.end);
                        i += 1;
                        break;
                    }
                }
                _ => {}
            }
            i += 1;
        }
        rows.push((start, end?));
        match tokens.get(i).map(|t| &src[t.start..t.end]) {
            Some(",") => i += 1,
            _ => break,
        }
    }
    let head = &src[stmt.start..tokens[values_at].end];
    let last_row_end = rows.last()?.1;
    let tail_end = if stmt.terminated {
        stmt.end - 1
    } else {
        stmt.end
    };
    let tail = src[last_row_end..tail_end].trim_end();
    let overhead = head.len() + tail.len() + 3;
    let mut out = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    let mut size = overhead;
    for (s, e) in rows {
        let row = &src[s..e];
        if overhead + row.len() > limit {
            return None;
        }
        if !current.is_empty() && (size + row.len() + 1 > limit || current.len() >= max_rows) {
            out.push(format!("{head} {}{tail};", current.join(",")));
            current.clear();
            size = overhead;
        }
        size += row.len() + 1;
        current.push(row);
    }
    if !current.is_empty() {
        out.push(format!("{head} {}{tail};", current.join(",")));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;

    fn stmt(src: &str) -> Statement {
        sql::split(src).statements.remove(0)
    }

    #[test]
    fn splits_a_long_insert_into_statements_under_the_limit() {
        let rows: Vec<String> = (0..50).map(|i| format!("({i}, 'x,(y);{i}')")).collect();
        let src = format!(
            "INSERT INTO \"t\" (a, b) VALUES {} ON CONFLICT(a) DO NOTHING;",
            rows.join(", ")
        );
        let parts = split_insert(&src, &stmt(&src), 200, 1000).unwrap();
        assert!(parts.len() > 5);
        let mut seen = 0;
        for p in &parts {
            assert!(p.len() <= 200, "{p}");
            assert!(p.starts_with("INSERT INTO \"t\" (a, b) VALUES ("));
            assert!(p.ends_with(" ON CONFLICT(a) DO NOTHING;"), "{p}");
            seen += p.matches("'x,(y);").count();
        }
        assert_eq!(seen, 50, "every row once");
        // The parts run on SQLite and give every row.
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t(a PRIMARY KEY, b)")
            .unwrap();
        conn.execute_batch(&parts.join("\n")).unwrap();
        let n: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 50);
    }

    #[test]
    fn refuses_what_cannot_be_split() {
        for src in [
            "INSERT INTO t SELECT * FROM u;",
            "UPDATE t SET a = 1;",
            "INSERT INTO t VALUES ('a very long row that does not fit');",
        ] {
            assert!(split_insert(src, &stmt(src), 40, 1000).is_none(), "{src}");
        }
    }

    #[test]
    fn tables_written() {
        for (src, table) in [
            ("INSERT OR REPLACE INTO \"users\" VALUES (1);", "users"),
            ("insert into main.posts (a) values (1);", "posts"),
            ("DELETE FROM [order_items] WHERE 1;", "order_items"),
            ("UPDATE OR IGNORE products SET stock = 1;", "products"),
            ("UPDATE tokens SET x = 1;", "tokens"),
        ] {
            assert_eq!(
                written_table(src, &stmt(src)).as_deref(),
                Some(table),
                "{src}"
            );
        }
        assert_eq!(written_table("SELECT 1;", &stmt("SELECT 1;")), None);
    }

    #[test]
    fn loads_files_in_name_order_and_reports_errors_with_lines() {
        let dir = TempDir::new("seeds");
        std::fs::write(dir.path().join("seed-b.sql"), "INSERT INTO b VALUES (1)").unwrap();
        std::fs::write(dir.path().join("seed-a.sql"), "INSERT INTO a VALUES (1);").unwrap();
        std::fs::write(dir.path().join("cleanup.sql"), "DELETE FROM a;").unwrap();
        let files = files_with_prefix(dir.path(), "seed-").unwrap();
        let names: Vec<_> = files
            .iter()
            .map(|f| f.file_name().unwrap().to_str().unwrap())
            .collect();
        assert_eq!(names, vec!["seed-a.sql", "seed-b.sql"]);
        let b = SeedFile::load(&files[1]).unwrap();
        assert_eq!(b.sql, "INSERT INTO b VALUES (1);\n");
        assert_eq!(b.tables, vec!["b"]);

        std::fs::write(
            dir.path().join("bad.sql"),
            "INSERT INTO a VALUES (1);\nINSERT INTO a VALUES ('open);\n",
        )
        .unwrap();
        let err = SeedFile::load(&dir.path().join("bad.sql")).unwrap_err();
        assert!(err.to_string().contains("bad.sql:2:"), "{err}");

        let big = format!("SELECT '{}';", "x".repeat(MAX_STATEMENT_BYTES));
        std::fs::write(dir.path().join("big.sql"), big).unwrap();
        let err = SeedFile::load(&dir.path().join("big.sql")).unwrap_err();
        assert!(err.to_string().contains("not a multi-row INSERT"), "{err}");
    }

    #[test]
    fn many_tiny_rows_are_split_by_count_too() {
        let rows: Vec<String> = (0..1200).map(|i| format!("({i})")).collect();
        let src = format!("INSERT INTO t(x) VALUES {};", rows.join(","));
        let parts = split_insert(&src, &stmt(&src), SPLIT_TARGET, MAX_ROWS_PER_INSERT).unwrap();
        assert_eq!(parts.len(), 3);
        assert!(parts[2].ends_with("(1199);"), "{}", parts[2]);
    }
}
