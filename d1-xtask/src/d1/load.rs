//! Loading an SQL export into SQLite one statement at a time.
//!
//! rusqlite's `execute_batch` on a whole export copies the rest of the text for every
//! statement it prepares, so a database of 18 MB took 84 s to load (93 % in `memmove`).
//! Here the file is read a line at a time, statements are cut where the lint's splitter
//! (SQLite's `sqlite3_complete` rules) says they end, and each runs on its own: time grows with the size
//! of the file, and memory with the largest statement.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::time::Instant;

use crate::exit::failed;
use crate::ui;

/// Progress is reported every this many bytes.
const PROGRESS_EVERY: u64 = 16 * 1024 * 1024;

/// What a load read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Loaded {
    pub(crate) statements: u64,
    pub(crate) bytes: u64,
}

/// The first two words of `sql` (upper-cased bare words, as the lint's splitter gives
/// them) when `sql` is whole statements by the rules of SQLite's `sqlite3_complete`
/// (strings, comments, `CREATE TRIGGER ... END;` bodies); `None` while it is not.
fn complete_statement(sql: &str) -> Option<Vec<String>> {
    let split = crate::migrations::sql::split(sql);
    if split.unclosed.is_some() || !split.statements.iter().all(|s| s.terminated) {
        return None;
    }
    Some(
        split
            .statements
            .first()
            .map_or_else(Vec::new, |s| s.leading_words(sql, 2)),
    )
}

/// Runs every statement of the SQL file `path` on `conn`, in order. `what` names the file
/// in progress lines and errors. A text left over at the end that is not a complete
/// statement is an error (an export cut short), as is a statement SQLite refuses.
pub(crate) fn load_sql_file(
    conn: &rusqlite::Connection,
    path: &Path,
    what: &str,
) -> anyhow::Result<Loaded> {
    load(conn, path, what, None)
}

/// Loads into `conn` what an export says of its schema and of the tables `keep` (the
/// tracking tables): every statement but the rows of other tables, which are skipped
/// unread by SQLite. Enough to read the state a backup holds at a fraction of the cost
/// of loading its rows.
pub(crate) fn load_schema_and_tables(
    conn: &rusqlite::Connection,
    path: &Path,
    what: &str,
    keep: &[String],
) -> anyhow::Result<Loaded> {
    load(conn, path, what, Some(keep))
}

/// Runs the statements of `path` on `conn`; with `rows_of`, the `INSERT`s of tables not
/// named there are skipped.
fn load(
    conn: &rusqlite::Connection,
    path: &Path,
    what: &str,
    rows_of: Option<&[String]>,
) -> anyhow::Result<Loaded> {
    let mut n = 0u64;
    for_each_statement(path, what, |stmt, _| {
        n += 1;
        if let (Some(keep), Some(table)) = (rows_of, insert_target(stmt)) {
            if !keep.iter().any(|k| k.eq_ignore_ascii_case(&table)) {
                return Ok(());
            }
        }
        conn.execute_batch(stmt).map_err(|e| {
            failed!(
                "{what} ({}) does not load into SQLite at statement {n}: {e}",
                path.display()
            )
        })
    })
}

/// The table an export's `INSERT INTO <table> ...` statement writes (the export writes
/// them without comments before them), unquoted.
pub(crate) fn insert_target(stmt: &str) -> Option<String> {
    let rest = stmt.trim_start();
    let head = rest.get(..12)?;
    if !head.eq_ignore_ascii_case("INSERT INTO ") {
        return None;
    }
    let rest = rest[12..].trim_start();
    let mut chars = rest.char_indices();
    let (_, first) = chars.next()?;
    let close = match first {
        '"' => '"',
        '`' => '`',
        '[' => ']',
        _ => {
            let end = rest
                .find(|c: char| c.is_whitespace() || c == '(' || c == ';')
                .unwrap_or(rest.len());
            return Some(rest[..end].to_string());
        }
    };
    let mut name = String::new();
    let mut iter = rest[1..].chars().peekable();
    while let Some(c) = iter.next() {
        if c == close {
            if close != ']' && iter.peek() == Some(&close) {
                name.push(c);
                iter.next();
                continue;
            }
            return Some(name);
        }
        name.push(c);
    }
    None
}

/// Calls `f` with each statement of the SQL file `path` (its text up to and including
/// the `;`, with the comments and line ends before it) and its first two words
/// (upper-cased), in order, reading a line at a time; progress goes to stderr every 16 MB. A text left over at the end that is not a
/// complete statement is an error (a file cut short).
pub(crate) fn for_each_statement(
    path: &Path,
    what: &str,
    mut f: impl FnMut(&str, &[String]) -> anyhow::Result<()>,
) -> anyhow::Result<Loaded> {
    let file = std::fs::File::open(path)
        .map_err(|e| failed!("cannot read {what} ({}): {e}", path.display()))?;
    let total = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let started = Instant::now();
    let mut loaded = Loaded::default();
    let mut next_report = PROGRESS_EVERY;
    let mut line = Vec::new();
    let mut stmt = String::new();
    let insert_words = ["INSERT".to_string(), "INTO".to_string()];
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| failed!("cannot read {what} ({}): {e}", path.display()))?;
        if n == 0 {
            break;
        }
        loaded.bytes += n as u64;
        let text = std::str::from_utf8(&line).map_err(|_| {
            failed!(
                "{what} ({}) is not UTF-8 text near byte {}",
                path.display(),
                loaded.bytes
            )
        })?;
        if stmt.is_empty() && is_whole_insert_line(text) {
            f(text, &insert_words)?;
            loaded.statements += 1;
        } else {
            stmt.push_str(text);
        }
        if !stmt.is_empty() && text.trim_end().ends_with(';') {
            if let Some(words) = complete_statement(&stmt) {
                f(&stmt, &words)?;
                loaded.statements += 1;
                stmt.clear();
            }
        }
        if loaded.bytes >= next_report {
            next_report += PROGRESS_EVERY;
            ui::say(format!(
                "  reading {what}: {} of {} read, {:.1} s",
                megabytes(loaded.bytes),
                megabytes(total),
                started.elapsed().as_secs_f64()
            ));
        }
    }
    // What is left after the last `;` may be comments; anything else was cut short.
    let rest = crate::migrations::sql::split(&stmt);
    if !rest.statements.is_empty() || rest.unclosed.is_some() {
        return Err(failed!(
            "{what} ({}) ends inside a statement (cut short?): {}",
            path.display(),
            stmt.trim().chars().take(80).collect::<String>()
        ));
    }
    Ok(loaded)
}

/// Whether `line` is exactly one row statement as exports write them, whole on its line:
/// `INSERT INTO <name> ...;` whose values hold only `'...'` strings (with `''` inside),
/// numbers, blobs and NULL, with no comment, quoted identifier or second statement after
/// the name. Such a line needs no full tokenizer: its strings are skipped with a byte
/// search, which keeps reading an export of hundreds of MB close to the speed of the
/// disk. Anything else (false) goes through the full splitter, so this only has to be
/// right when it says true.
fn is_whole_insert_line(line: &str) -> bool {
    let b = line.as_bytes();
    if !b.starts_with(b"INSERT INTO ") {
        return false;
    }
    let end = b.trim_ascii_end();
    let Some((&b';', body)) = end.split_last() else {
        return false;
    };
    // The table's name, then the column list D1's export writes (`("id","name")`): names
    // bare or in double quotes without `""` inside.
    let mut i = 12;
    let quoted = |i: &mut usize| -> bool {
        let Some(close) = memchr::memchr(b'"', &body[*i + 1..]) else {
            return false;
        };
        *i += close + 2;
        body.get(*i) != Some(&b'"')
    };
    if body.get(i) == Some(&b'"') && !quoted(&mut i) {
        return false;
    }
    while body.get(i) == Some(&b' ') {
        i += 1;
    }
    if body.get(i) == Some(&b'(') {
        i += 1;
        loop {
            match body.get(i) {
                Some(b'"') => {
                    if !quoted(&mut i) {
                        return false;
                    }
                }
                Some(b',' | b' ') => i += 1,
                Some(b')') => {
                    i += 1;
                    break;
                }
                Some(c) if c.is_ascii_alphanumeric() || *c == b'_' => i += 1,
                _ => return false,
            }
        }
    }
    while i < body.len() {
        match body[i] {
            b'\'' => loop {
                let Some(j) = memchr::memchr(b'\'', &body[i + 1..]) else {
                    return false;
                };
                i += j + 1;
                if body.get(i + 1) == Some(&b'\'') {
                    i += 1;
                    continue;
                }
                i += 1;
                break;
            },
            b';' | b'"' | b'`' | b'[' | b'/' => return false,
            b'-' if body.get(i + 1) == Some(&b'-') => return false,
            _ => i += 1,
        }
    }
    true
}

/// Whether a statement whose first words are `words` creates an ordinary table
/// (`CREATE TABLE`, not a virtual one).
fn creates_table(words: &[String]) -> bool {
    matches!(words, [create, table, ..] if create == "CREATE" && table == "TABLE")
}

/// Writes to `out` the SQL that replaces a whole database by the export `dump`: `drops`
/// (every current object), the export's `PRAGMA` lines, then every `CREATE TABLE` of
/// the export, then the rest in its order. D1's export lists tables in the order they
/// were made, so a table whose foreign key names a table made after it (Drizzle writes
/// them in name order) comes first, and its rows would be refused ("no such table") were
/// the export loaded as it is. Two passes over the file, one statement in memory.
pub(crate) fn write_replacing_file(drops: &str, dump: &Path, out: &Path) -> anyhow::Result<()> {
    use std::io::Write;
    let file =
        std::fs::File::create(out).map_err(|e| failed!("cannot write {}: {e}", out.display()))?;
    let mut w = std::io::BufWriter::new(file);
    let io = |e: std::io::Error| failed!("cannot write {}: {e}", out.display());
    writeln!(w, "{drops}").map_err(io)?;
    let what = format!("the export {}", dump.display());
    let first =
        |words: &[String]| words.first().is_some_and(|w| w == "PRAGMA") || creates_table(words);
    for pass_first in [true, false] {
        for_each_statement(dump, &what, |stmt, words| {
            if first(words) == pass_first {
                w.write_all(stmt.as_bytes()).map_err(io)?;
            }
            Ok(())
        })?;
    }
    writeln!(w).map_err(io)?;
    w.flush().map_err(io)
}

/// `12.3 MB`.
pub(crate) fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1_000_000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_targets_are_read_in_every_quoting() {
        assert_eq!(
            insert_target("INSERT INTO \"a\"\"b\" (x) VALUES(1);").as_deref(),
            Some("a\"b")
        );
        assert_eq!(
            insert_target("INSERT INTO items VALUES(1);").as_deref(),
            Some("items")
        );
        assert_eq!(
            insert_target("insert into `t` VALUES(1);").as_deref(),
            Some("t")
        );
        assert_eq!(
            insert_target("INSERT INTO [Order] VALUES(1);").as_deref(),
            Some("Order")
        );
        assert_eq!(insert_target("CREATE TABLE t(x);"), None);
    }

    #[test]
    fn a_schema_load_keeps_the_tracking_rows_and_skips_the_rest() {
        let p = file(
            "schema-only",
            "PRAGMA defer_foreign_keys=TRUE;\nCREATE TABLE d1_migrations(id INTEGER PRIMARY KEY, name TEXT);\n\
             INSERT INTO \"d1_migrations\" (\"id\",\"name\") VALUES(1,'0001_a.sql');\n\
             CREATE TABLE items(x);\nINSERT INTO \"items\" (\"x\") VALUES('a;b');\nCREATE INDEX i ON items(x);\n",
        );
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let loaded =
            load_schema_and_tables(&conn, &p, "the export", &["d1_migrations".into()]).unwrap();
        assert_eq!(loaded.statements, 6);
        let n = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap();
        assert_eq!(n("SELECT count(*) FROM d1_migrations"), 1);
        assert_eq!(n("SELECT count(*) FROM items"), 0);
        assert_eq!(n("SELECT count(*) FROM sqlite_master WHERE name = 'i'"), 1);
        let _ = std::fs::remove_file(p);
    }

    fn file(tag: &str, text: &str) -> std::path::PathBuf {
        let p = std::env::temp_dir().join(format!("xtask-load-{tag}-{}", std::process::id()));
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn loads_statements_with_semicolons_inside_and_trigger_bodies() {
        let p = file(
            "ok",
            "PRAGMA defer_foreign_keys=TRUE;\nCREATE TABLE t(x);\nINSERT INTO t VALUES('a;\nb');\n\
             CREATE TRIGGER tr AFTER INSERT ON t BEGIN\n  SELECT 1;\n  SELECT 2;\nEND;\n-- done\n",
        );
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let loaded = load_sql_file(&conn, &p, "the test file").unwrap();
        assert_eq!(loaded.statements, 4);
        let v: String = conn.query_row("SELECT x FROM t", [], |r| r.get(0)).unwrap();
        assert_eq!(v, "a;\nb");
        std::fs::remove_file(p).unwrap();
    }

    #[test]
    fn whole_insert_lines_are_told_apart_from_everything_else() {
        let whole = [
            "INSERT INTO \"items\" VALUES(1,'a;b',NULL,-2.5e3,X'00ff');\n",
            "INSERT INTO items VALUES('it''s; -- not a comment /* nor this */','{\"k\": [1]}');\n",
            "INSERT INTO \"t\" VALUES('');",
            "INSERT INTO \"d1_migrations\" (\"id\",\"name\") VALUES(1,'0001_a.sql');\n",
            "INSERT INTO t (a, b_2) VALUES(1,2);\n",
        ];
        let not = [
            "INSERT INTO \"items\" VALUES(1,'open\n",
            "INSERT INTO \"items\" VALUES(1); -- trailing\n",
            "INSERT INTO \"items\" VALUES(1); INSERT INTO \"items\" VALUES(2);\n",
            "INSERT INTO \"a\"\"b\" VALUES(1);\n",
            "INSERT INTO \"items\" (\"i\"\"d\") VALUES(1);\n",
            "INSERT INTO \"items\" (\"id\" VALUES(1);\n",
            "INSERT INTO items VALUES(1 /* c */);\n",
            "INSERT INTO items VALUES('a'';\n",
            "CREATE TABLE t(x);\n",
            "insert into t values(1);\n",
        ];
        for line in whole {
            assert!(is_whole_insert_line(line), "{line}");
            // The full splitter agrees: one statement, complete.
            let split = crate::migrations::sql::split(line);
            assert_eq!(split.statements.len(), 1, "{line}");
            assert!(
                split.statements[0].terminated && split.unclosed.is_none(),
                "{line}"
            );
        }
        for line in not {
            assert!(!is_whole_insert_line(line), "{line}");
        }
    }

    #[test]
    fn a_file_cut_short_is_refused() {
        let p = file("cut", "CREATE TABLE t(x);\nINSERT INTO t VALUES('abc");
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let e = load_sql_file(&conn, &p, "the export")
            .unwrap_err()
            .to_string();
        assert!(e.contains("ends inside a statement"), "{e}");
        std::fs::remove_file(p).unwrap();
    }

    #[test]
    fn time_grows_linearly() {
        // 200,000 one-line INSERTs (about 9 MB): a whole-text execute_batch copies the
        // rest of the text per statement; this stays well under a second in release.
        let mut text = String::from("CREATE TABLE t(id INTEGER PRIMARY KEY, s TEXT);\n");
        for i in 0..200_000 {
            text.push_str(&format!(
                "INSERT INTO t VALUES({i},'row number {i} of the table');\n"
            ));
        }
        let p = file("big", &text);
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let loaded = load_sql_file(&conn, &p, "the test file").unwrap();
        assert_eq!(loaded.statements, 200_001);
        std::fs::remove_file(p).unwrap();
    }
}
