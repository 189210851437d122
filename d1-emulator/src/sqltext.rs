//! Statement boundaries as SQLite itself draws them (`sqlite3_complete`), and the checks
//! where D1 is stricter than SQLite.

use std::ffi::CString;

/// D1 rejects any single statement longer than this.
pub const MAX_STATEMENT_BYTES: usize = 100_000;

fn complete(sql: &str) -> bool {
    match CString::new(sql) {
        // SAFETY: a NUL-terminated string that lives across the call; sqlite3_complete
        // only reads it.
        Ok(c) => unsafe { rusqlite::ffi::sqlite3_complete(c.as_ptr()) != 0 },
        Err(_) => false,
    }
}

/// Splits `sql` into statements, each ending at a `;` that completes it. Text after the
/// last complete statement is one more statement if it holds anything but blanks.
pub fn split(sql: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, _) in sql.match_indices(';') {
        let candidate = &sql[start..=i];
        if complete(candidate) {
            if has_content(candidate) {
                out.push(candidate.trim());
            }
            start = i + 1;
        }
    }
    let rest = &sql[start..];
    if has_content(rest) {
        out.push(rest.trim());
    }
    out
}

/// Whether text holds anything besides white space, comments and semicolons.
fn has_content(s: &str) -> bool {
    !strip_comments(s).trim().trim_matches(';').trim().is_empty()
}

fn strip_comments(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    loop {
        let t = rest.trim_start();
        if let Some(r) = t.strip_prefix("--") {
            rest = r.split_once('\n').map_or("", |(_, after)| after);
        } else if let Some(r) = t.strip_prefix("/*") {
            rest = r.split_once("*/").map_or("", |(_, after)| after);
        } else {
            out.push_str(t);
            return out;
        }
    }
}

/// The first bare word of a statement, upper-cased, after comments.
pub fn first_word(s: &str) -> Option<String> {
    let t = strip_comments(s);
    let word: String = t
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    (!word.is_empty()).then(|| word.to_ascii_uppercase())
}

/// Why D1 would refuse this statement before running it.
pub fn d1_refusal(stmt: &str) -> Option<String> {
    if stmt.len() > MAX_STATEMENT_BYTES {
        return Some("statement too long: SQLITE_TOOBIG".into());
    }
    match first_word(stmt).as_deref() {
        Some("BEGIN" | "COMMIT" | "END" | "ROLLBACK" | "SAVEPOINT" | "RELEASE") => Some(
            "not authorized: transactions are implicit on D1; BEGIN, COMMIT, ROLLBACK and SAVEPOINT \
             statements are refused: SQLITE_AUTH"
                .into(),
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_sqlite() {
        let sql = "CREATE TABLE a(x);\nINSERT INTO a VALUES ('x;y'); -- c;\n\
                   CREATE TRIGGER t AFTER INSERT ON a BEGIN UPDATE a SET x = 1; END;\nSELECT 1";
        let got = split(sql);
        assert_eq!(got.len(), 4, "{got:?}");
        assert_eq!(got[1], "INSERT INTO a VALUES ('x;y');");
        assert!(got[2].ends_with("END;"));
        assert_eq!(got[3], "SELECT 1");
        assert!(split("-- nothing\n;\n /* x */").is_empty());
    }

    #[test]
    fn refusals() {
        assert!(d1_refusal("BEGIN TRANSACTION;").is_some());
        assert!(d1_refusal("/* c */ savepoint a").is_some());
        assert!(d1_refusal("CREATE TRIGGER t AFTER INSERT ON a BEGIN SELECT 1; END;").is_none());
        assert!(d1_refusal(&format!("SELECT '{}'", "x".repeat(100_000)))
            .unwrap()
            .contains("TOOBIG"));
    }
}
