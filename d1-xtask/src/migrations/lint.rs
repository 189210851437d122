//! Lint of migration files: what blocks an apply (errors) and what deserves a look (warnings).

use std::fmt;

use super::sql::{self, Unclosed};

/// D1 rejects any single statement longer than this (SQLITE_TOOBIG).
pub(crate) const MAX_STATEMENT_BYTES: usize = 100_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Severity {
    Warning,
    Error,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Finding {
    pub(crate) severity: Severity,
    /// A stable identifier for scripts (`--json`): `bad-name`, `transaction`, ...
    pub(crate) kind: &'static str,
    /// The migration file name, or the folder for findings about the whole set.
    pub(crate) file: String,
    pub(crate) line: Option<usize>,
    pub(crate) message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        match self.line {
            Some(line) => write!(f, "{sev}: {}:{line}: {}", self.file, self.message),
            None => write!(f, "{sev}: {}: {}", self.file, self.message),
        }
    }
}

/// What one file's lint learned beyond its findings.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct FileFacts {
    /// `PRAGMA defer_foreign_keys` is on when the file ends: the batch switches it off
    /// after this file so that later files run with the checks wrangler would give them.
    pub(crate) leaves_fk_deferred: bool,
    /// The last statement has no `;` (the batch adds one).
    pub(crate) unterminated_tail: bool,
}

pub(crate) fn lint_sql(file: &str, src: &str, findings: &mut Vec<Finding>) -> FileFacts {
    let mut facts = FileFacts::default();
    let mut push = |severity, kind, line, message: String| {
        findings.push(Finding {
            severity,
            kind,
            file: file.to_string(),
            line,
            message,
        })
    };
    let split = sql::split(src);
    if split.statements.is_empty() {
        push(
            Severity::Warning,
            "empty",
            None,
            "holds no SQL statement: it will be recorded as applied and do nothing".into(),
        );
    }
    match split.unclosed {
        Some(Unclosed::Quote { quote, line }) => push(
            Severity::Error,
            "unclosed",
            Some(line),
            format!("the {quote} opened here is never closed: close it, or the rest of the file is one string"),
        ),
        Some(Unclosed::BlockComment { line }) => push(
            Severity::Error,
            "unclosed",
            Some(line),
            "the /* comment opened here is never closed with */".into(),
        ),
        Some(Unclosed::Trigger { line }) => push(
            Severity::Error,
            "unclosed",
            Some(line),
            "the CREATE TRIGGER here never reaches `END;`: close its body with END;".into(),
        ),
        None => {}
    }
    for line in &split.nested_comment_lines {
        push(
            Severity::Warning,
            "nested-comment",
            Some(*line),
            "`/*` inside a block comment: SQLite comments do not nest, the first `*/` ends it and the rest runs as SQL".into(),
        );
    }
    let mut deferred = false;
    for stmt in &split.statements {
        let len = stmt.end - stmt.start;
        if len > MAX_STATEMENT_BYTES {
            push(
                Severity::Error,
                "too-long",
                Some(stmt.line),
                format!(
                    "statement of {len} bytes: D1 rejects statements over {MAX_STATEMENT_BYTES} bytes \
                     (SQLITE_TOOBIG); split it (several INSERTs instead of one multi-row INSERT)"
                ),
            );
        }
        let words = stmt.leading_words(src, 6);
        let first = words.first().map(String::as_str).unwrap_or("");
        match first {
            _ if is_transaction(first) => push(
                Severity::Error,
                "transaction",
                Some(stmt.line),
                format!(
                    "`{first}` statement: D1 runs each migration in its own transaction and rejects \
                     transaction statements; remove it"
                ),
            ),
            "PRAGMA" => {
                let rest: String = words[1..].concat().to_ascii_lowercase();
                let rest = rest.trim_start_matches("main.");
                if let Some(value) = pragma_value(rest, "foreign_keys") {
                    if is_off(&value) {
                        push(
                            Severity::Warning,
                            "foreign-keys-off",
                            Some(stmt.line),
                            "`PRAGMA foreign_keys = OFF` is accepted but has no effect on D1 (each migration \
                             runs in a transaction, where SQLite ignores it): foreign keys stay enforced, so a \
                             table dropped or rebuilt after it is checked and cascades as if the line were not \
                             there; use `PRAGMA defer_foreign_keys = true` (and `false` at the end of the file)"
                                .into(),
                        );
                    }
                } else if let Some(value) = pragma_value(rest, "defer_foreign_keys") {
                    deferred = !is_off(&value);
                }
            }
            _ => {}
        }
        for n in big_integers(src, stmt) {
            push(
                Severity::Warning,
                "big-integer",
                Some(stmt.line),
                format!(
                    "integer {n} is above 2^53: D1 stores it, but its export writes numbers as \
                     JavaScript does, so a backup of this row loses precision; store it as TEXT"
                ),
            );
        }
        if !stmt.terminated {
            facts.unterminated_tail = true;
        }
    }
    if deferred {
        facts.leaves_fk_deferred = true;
        push(
            Severity::Warning,
            "defer-not-reset",
            None,
            "switches `PRAGMA defer_foreign_keys` on and never off: end the file with \
             `PRAGMA defer_foreign_keys = false;` so the violations are checked where you expect"
                .into(),
        );
    }
    facts
}

/// The error D1's rules (its connection limits and its authorizer, from `d1-rules`) raise
/// for each statement of `src`, found by *preparing* it on `conn`, an empty database with
/// D1's limits and its `_cf_KV`. Nothing is executed, so the check costs the same for the
/// 10,000th file as for the first: replaying every file made it quadratic (each DDL
/// statement scans `sqlite_master`; 26 s for 10,000 files). What it finds needs no schema:
/// the authorizer runs as a statement is compiled, the compound-SELECT limit and a
/// table's column limit are parse errors. A statement that names a table made by an
/// earlier file stops at "no such table" and is left to the apply; so are the rarer limits
/// that need the schema (more than 100 columns in an index or a result).
pub(crate) fn check_d1_rules(
    conn: &rusqlite::Connection,
    file: &str,
    src: &str,
    findings: &mut Vec<Finding>,
) {
    use d1_rules::Broken;
    let split = sql::split(src);
    for stmt in &split.statements {
        let first = stmt.leading_words(src, 1);
        if first.first().is_some_and(|w| is_transaction(w)) {
            continue; // already an error of its own kind
        }
        let Err(e) = d1_rules::authorized(conn, || conn.prepare(stmt.text(src)).map(|_| ())) else {
            continue;
        };
        let text = e.to_string();
        let (kind, advice) = match d1_rules::broken_rule(&text) {
            Some(Broken::Authorizer) => (
                "d1-refused",
                "D1 refuses it (ATTACH, temporary objects, `_cf_` names and PRAGMAs other than \
                 those D1 lists are not authorized)",
            ),
            Some(Broken::CompoundSelect) => (
                "compound-select",
                "D1 allows at most 5 terms in a compound SELECT (UNION/UNION ALL/INTERSECT/EXCEPT): \
                 split it into several statements",
            ),
            Some(Broken::Columns) => (
                "too-many-columns",
                "D1 allows at most 100 columns in a table, index or result: split the table",
            ),
            Some(Broken::Limit) | None => continue,
        };
        findings.push(Finding {
            severity: Severity::Error,
            kind,
            file: file.to_string(),
            line: Some(stmt.line),
            message: format!("{text}: {advice}"),
        });
    }
}

/// Transaction statements, which D1 refuses (its transactions are implicit).
fn is_transaction(first_word: &str) -> bool {
    matches!(
        first_word,
        "BEGIN" | "COMMIT" | "END" | "ROLLBACK" | "SAVEPOINT" | "RELEASE"
    )
}

/// An in-memory SQLite with D1's limits, for `check_d1_rules`.
pub(crate) fn d1_connection() -> Option<rusqlite::Connection> {
    let conn = rusqlite::Connection::open_in_memory().ok()?;
    conn.execute_batch(
        "PRAGMA foreign_keys = ON;\nCREATE TABLE _cf_KV(key TEXT PRIMARY KEY, value BLOB);",
    )
    .ok()?;
    d1_rules::apply_limits(&conn).ok()?;
    Some(conn)
}

/// Integer literals above 2^53: D1 keeps them, but its export writes numbers as
/// JavaScript does, so a backup loses their precision.
fn big_integers(src: &str, stmt: &sql::Statement) -> Vec<String> {
    stmt.tokens
        .iter()
        .map(|t| &src[t.start..t.end])
        .filter(|w| w.len() >= 16 && w.bytes().all(|b| b.is_ascii_digit()))
        .filter(|w| w.parse::<u128>().map_or(true, |n| n > 1u128 << 53))
        .map(String::from)
        .collect()
}

/// `name=value` or `name(value)` from the words after PRAGMA, joined and lower-cased.
fn pragma_value(rest: &str, name: &str) -> Option<String> {
    let tail = rest.strip_prefix(name)?;
    let value = tail
        .strip_prefix('=')
        .or_else(|| tail.strip_prefix('(').map(|t| t.trim_end_matches(')')))?;
    Some(value.trim_matches(|c| c == '\'' || c == '"').to_string())
}

fn is_off(value: &str) -> bool {
    matches!(value, "off" | "0" | "false" | "no")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<(Severity, &'static str)> {
        let mut f = Vec::new();
        lint_sql("0001_x.sql", src, &mut f);
        f.iter().map(|f| (f.severity, f.kind)).collect()
    }

    #[test]
    fn transaction_statements_are_errors_but_trigger_bodies_are_not() {
        assert_eq!(
            kinds("BEGIN TRANSACTION;\nCREATE TABLE a(x);\nCOMMIT;").len(),
            2
        );
        assert_eq!(
            kinds("SAVEPOINT s; RELEASE s;"),
            vec![(Severity::Error, "transaction"); 2]
        );
        assert_eq!(
            kinds("end transaction;"),
            vec![(Severity::Error, "transaction")]
        );
        assert!(kinds(
            "CREATE TRIGGER t AFTER INSERT ON a BEGIN UPDATE b SET n = n + 1; END;\n\
             INSERT INTO a VALUES ('BEGIN; COMMIT;'); -- ROLLBACK;\n/* BEGIN; */"
        )
        .is_empty());
    }

    #[test]
    fn foreign_keys_off_is_a_warning() {
        for src in [
            "PRAGMA foreign_keys = OFF;",
            "pragma foreign_keys=0;",
            "PRAGMA main.foreign_keys = false;",
            "PRAGMA foreign_keys(off);",
        ] {
            assert_eq!(
                kinds(src),
                vec![(Severity::Warning, "foreign-keys-off")],
                "{src}"
            );
        }
        assert!(kinds("PRAGMA foreign_keys = ON;").is_empty());
    }

    #[test]
    fn deferred_foreign_keys_must_be_switched_back() {
        let mut f = Vec::new();
        let facts = lint_sql(
            "x",
            "PRAGMA defer_foreign_keys = true;\nDROP TABLE a;",
            &mut f,
        );
        assert!(facts.leaves_fk_deferred);
        assert_eq!(f[0].kind, "defer-not-reset");
        let mut f = Vec::new();
        let facts = lint_sql(
            "x",
            "PRAGMA defer_foreign_keys = on;\nDROP TABLE a;\nPRAGMA defer_foreign_keys = off;",
            &mut f,
        );
        assert!(!facts.leaves_fk_deferred);
        assert!(f.is_empty());
    }

    #[test]
    fn statement_size_limit() {
        let values = vec!["(1, 'xxxxxxxxxx')"; 7000].join(",");
        let src = format!("CREATE TABLE a(n, s);\nINSERT INTO a VALUES {values};");
        let mut f = Vec::new();
        lint_sql("0002_big.sql", &src, &mut f);
        assert_eq!(f.len(), 1);
        assert_eq!((f[0].kind, f[0].line), ("too-long", Some(2)));
        assert!(f[0].message.contains("100000"));
    }

    #[test]
    fn empty_and_unclosed() {
        assert_eq!(
            kinds("-- nothing here\n"),
            vec![(Severity::Warning, "empty")]
        );
        assert_eq!(kinds("SELECT 'open;"), vec![(Severity::Error, "unclosed")]);
        assert!(kinds("CREATE TABLE a(x)").is_empty());
    }

    #[test]
    fn what_d1_refuses_is_an_error_with_its_line() {
        let conn = d1_connection().unwrap();
        let six = (1..=6)
            .map(|i| format!("SELECT {i}"))
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        let cols = (0..101)
            .map(|i| format!("c{i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let src = format!(
            "CREATE TABLE ok(x);\nCREATE TEMP TABLE t(x);\nPRAGMA journal_mode = WAL;\n\
             CREATE TABLE _cf_mine(x);\nCREATE VIEW v AS {six};\nCREATE TABLE wide({cols});\n\
             ATTACH 'x.db' AS x;\nINSERT INTO nowhere VALUES (1);\nCREATE TABLE xcf_notes(x);\n\
             SELECT * FROM ok WHERE x IN (SELECT 1 UNION ALL SELECT 2);\n\
             INSERT INTO _cf_KV VALUES ('k', 1);\n"
        );
        let mut f = Vec::new();
        check_d1_rules(&conn, "0001_x.sql", &src, &mut f);
        let got: Vec<(&str, Option<usize>)> = f.iter().map(|f| (f.kind, f.line)).collect();
        assert_eq!(
            got,
            vec![
                ("d1-refused", Some(2)),
                ("d1-refused", Some(3)),
                ("d1-refused", Some(4)),
                ("compound-select", Some(5)),
                ("too-many-columns", Some(6)),
                ("d1-refused", Some(7)),
                ("d1-refused", Some(11)),
            ],
            "{f:#?}"
        );
        assert!(
            kinds("INSERT INTO t VALUES (9007199254740993), (9007199254740992);")
                .contains(&(Severity::Warning, "big-integer"))
        );
        assert_eq!(
            kinds("INSERT INTO t VALUES (9007199254740992, '90071992547409930000');"),
            vec![]
        );
    }
}
