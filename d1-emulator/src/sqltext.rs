//! Statement boundaries: as SQLite itself draws them (`sqlite3_complete`, what D1's
//! import uses) and as D1's server draws them in a `/query` request.

use std::ffi::CString;

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

/// White space as D1's server splitter sees it around `BEGIN` and `END`: a carriage return
/// is not among it, which is how CRLF trigger bodies fail remotely (workers-sdk #14991).
fn splitter_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n')
}

/// Whether `text` ends with `<space>BEGIN<space>`, `BEGIN` in capitals only: D1 matches it
/// case-sensitively, so a lowercase `begin` body is cut at its first `;` (#15314, #10998).
fn opens_compound(text: &[u8]) -> bool {
    let n = text.len();
    n >= 7
        && splitter_space(text[n - 1])
        && &text[n - 6..n - 1] == b"BEGIN"
        && splitter_space(text[n - 7])
}

/// Whether `text` ends with `<space>END` followed by `;` or a space, any case (#10998's
/// working trigger ends in a lowercase `end;`). There is no nesting: the `END` of a
/// `CASE` closes the trigger body early (#4326; parentheses around the CASE avoid it).
fn closes_compound(text: &[u8]) -> bool {
    let n = text.len();
    n >= 5
        && (text[n - 1] == b';' || splitter_space(text[n - 1]))
        && text[n - 4..n - 1].eq_ignore_ascii_case(b"END")
        && splitter_space(text[n - 5])
}

/// How D1 splits the `sql` string of a `/query` request into statements (section 3 of
/// d1-as-it-is.md): on `;` outside strings, quoted names, comments and trigger bodies,
/// where a body opens on `BEGIN` and closes on the first `END` as the functions above
/// say. Pieces that hold only blanks and comments are dropped.
///
/// One more rule is the emulator's own, and conservative: workers-sdk #15690 saw a
/// request of six `CREATE TABLE`s followed by an LF-only, upper-case `BEGIN` trigger fail
/// with `incomplete input` (and roll back), which no public model of the splitter
/// explains, while every report of a trigger going through `/query` has the trigger as
/// the request's first statement. So a `CREATE TRIGGER` that follows another statement in
/// the same request is refused the same way. Import (`execute --file`) splits with
/// SQLite's own rules and is not affected (#15178).
pub fn split_d1_query(sql: &str) -> Result<Vec<&str>, String> {
    let b = sql.as_bytes();
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut in_body = false;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b'\'' | b'"' | b'`' => {
                i = b[i + 1..]
                    .iter()
                    .position(|&x| x == c)
                    .map_or(b.len(), |p| i + 1 + p + 1);
                continue;
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                i = b[i..]
                    .iter()
                    .position(|&x| x == b'\n')
                    .map_or(b.len(), |p| i + p + 1);
                continue;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i = sql[i + 2..].find("*/").map_or(b.len(), |p| i + 2 + p + 2);
                continue;
            }
            _ => {}
        }
        let upto = &b[start..=i];
        if in_body {
            if closes_compound(upto) {
                in_body = false;
            }
        } else if opens_compound(upto) {
            in_body = true;
        }
        if c == b';' && !in_body {
            pieces.push(&sql[start..=i]);
            start = i + 1;
        }
        i += 1;
    }
    pieces.push(&sql[start.min(sql.len())..]);
    let statements: Vec<&str> = pieces
        .into_iter()
        .filter(|p| has_content(p))
        .map(str::trim)
        .collect();
    if statements.iter().skip(1).any(|s| is_create_trigger(s)) {
        return Err("incomplete input: SQLITE_ERROR".into());
    }
    Ok(statements)
}

/// Whether a statement creates a trigger (`CREATE [TEMP] TRIGGER`).
pub fn is_create_trigger(stmt: &str) -> bool {
    let t = strip_comments(stmt).to_ascii_uppercase();
    let mut words = t.split_whitespace();
    words.next() == Some("CREATE")
        && matches!(
            words.next(),
            Some("TRIGGER") | Some("TEMP") | Some("TEMPORARY")
        )
        && t.split_whitespace().take(3).any(|w| w == "TRIGGER")
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
    fn d1_splitter_cuts_where_d1_does() {
        let ok = "CREATE TRIGGER t AFTER INSERT ON a\nBEGIN\n  UPDATE a SET x = 1;\nend;\nINSERT INTO m VALUES ('a;b');";
        assert_eq!(split_d1_query(ok).unwrap().len(), 2);
        // Lower-case `begin` (#10998, #15314): cut at the body's first `;`.
        let lower = "create trigger t after insert on a\nbegin\n  update a set x = 1;\nend;";
        assert_eq!(
            split_d1_query(lower).unwrap()[0],
            "create trigger t after insert on a\nbegin\n  update a set x = 1;"
        );
        // CRLF around BEGIN (#14991).
        let crlf = "CREATE TRIGGER t AFTER INSERT ON a\r\nBEGIN\r\n  UPDATE a SET x = 1;\r\nEND;";
        assert_eq!(split_d1_query(crlf).unwrap().len(), 2);
        // CASE ... END inside a body (#4326), and the parenthesised work-around.
        let case = "CREATE TRIGGER t AFTER INSERT ON a BEGIN SELECT CASE WHEN 1 THEN 2 END; END;";
        assert_eq!(split_d1_query(case).unwrap().len(), 2);
        let paren =
            "CREATE TRIGGER t AFTER INSERT ON a BEGIN SELECT (CASE WHEN 1 THEN 2 END); END;";
        assert_eq!(split_d1_query(paren).unwrap().len(), 1);
        // A trigger after other statements (#15690).
        let after = "CREATE TABLE b(x);\nCREATE TRIGGER t AFTER INSERT ON b\nBEGIN\n  UPDATE b SET x = 1;\nEND;";
        assert!(split_d1_query(after)
            .unwrap_err()
            .contains("incomplete input"));
        // Comments and strings hide `;`.
        assert_eq!(
            split_d1_query("SELECT ';'; -- a;b\n/* ; */ SELECT 2")
                .unwrap()
                .len(),
            2
        );
        assert!(is_create_trigger("/* x */ create temp trigger t"));
        assert!(!is_create_trigger("CREATE TABLE trigger_log(x)"));
    }
}
