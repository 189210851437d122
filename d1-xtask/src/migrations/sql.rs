//! Where SQL statements end, with the semantics of SQLite's `sqlite3_complete()`: strings,
//! quoted identifiers, both comment styles and `CREATE TRIGGER ... BEGIN ... END;` bodies.

/// A token class the statement state machine cares about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Semi,
    Space,
    Other,
    Explain,
    Create,
    Temp,
    Trigger,
    End,
}

/// Where the splitter is inside a statement (the states of `sqlite3_complete`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Start,
    Normal,
    Explain,
    Create,
    /// Inside a trigger body, between `BEGIN` and the `END;` that closes it.
    Trigger,
    /// Inside a trigger body right after a `;`: an `END` here may close the body.
    Semi,
    /// Just after `; END` inside a trigger body: the next `;` ends the statement.
    End,
}

fn step(state: State, class: Class) -> State {
    use Class as C;
    use State as S;
    match (state, class) {
        (S::Trigger | S::Semi | S::End, C::Space) => state,
        (S::Trigger | S::Semi, C::Semi) => S::Semi,
        (S::Semi, C::End) => S::End,
        (S::End, C::Semi) => S::Start,
        (S::Trigger | S::Semi | S::End, _) => S::Trigger,
        (_, C::Semi) => S::Start,
        (S::Start, C::Space) => S::Start,
        (S::Start, C::Explain) => S::Explain,
        (S::Start | S::Explain, C::Create) => S::Create,
        (S::Explain, C::Space | C::Other) => S::Explain,
        (S::Create, C::Space | C::Temp) => S::Create,
        (S::Create, C::Trigger) => S::Trigger,
        _ => S::Normal,
    }
}

/// A token of a statement: its byte range in the source and whether it is a bare word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Token {
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) word: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Statement {
    /// Byte range in the source, from the first token through the closing `;` if any.
    pub(crate) start: usize,
    pub(crate) end: usize,
    /// 1-based line of the first token.
    pub(crate) line: usize,
    /// The tokens other than white space and comments.
    pub(crate) tokens: Vec<Token>,
    /// Whether a `;` ends it (the last statement of a file may go without).
    pub(crate) terminated: bool,
}

impl Statement {
    pub(crate) fn text<'a>(&self, src: &'a str) -> &'a str {
        &src[self.start..self.end]
    }
    /// The first `n` bare words, upper-cased: enough to classify the statement.
    pub(crate) fn leading_words(&self, src: &str, n: usize) -> Vec<String> {
        self.tokens
            .iter()
            .take(n)
            .map(|t| {
                if t.word {
                    src[t.start..t.end].to_ascii_uppercase()
                } else {
                    src[t.start..t.end].to_string()
                }
            })
            .collect()
    }
}

/// Something that leaves the end of the source inside a construct.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Unclosed {
    /// A `'...'`, `"..."`, `` `...` `` or `[...]` with no closing quote, opened on this line.
    Quote {
        quote: char,
        line: usize,
    },
    BlockComment {
        line: usize,
    },
    /// A `CREATE TRIGGER` whose body never reaches `END;`.
    Trigger {
        line: usize,
    },
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Split {
    pub(crate) statements: Vec<Statement>,
    pub(crate) unclosed: Option<Unclosed>,
    /// Lines where a `/*` appears inside a block comment: SQLite comments do not nest.
    pub(crate) nested_comment_lines: Vec<usize>,
}

fn is_id_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

fn keyword_class(word: &[u8]) -> Class {
    let eq = |k: &str| word.eq_ignore_ascii_case(k.as_bytes());
    if eq("CREATE") {
        Class::Create
    } else if eq("TRIGGER") {
        Class::Trigger
    } else if eq("TEMP") || eq("TEMPORARY") {
        Class::Temp
    } else if eq("END") {
        Class::End
    } else if eq("EXPLAIN") {
        Class::Explain
    } else {
        Class::Other
    }
}

/// Splits `src` into statements. Never fails: what is left open at the end is reported.
pub(crate) fn split(src: &str) -> Split {
    let bytes = src.as_bytes();
    let mut out = Split::default();
    let mut state = State::Start;
    let mut current: Option<Statement> = None;
    let mut line = 1usize;
    let mut i = 0usize;
    while i < bytes.len() {
        let b = bytes[i];
        let start = i;
        let start_line = line;
        let (class, word) = match b {
            b';' => {
                i += 1;
                (Class::Semi, false)
            }
            b'\n' => {
                line += 1;
                i += 1;
                (Class::Space, false)
            }
            b' ' | b'\t' | b'\r' | b'\x0c' => {
                i += 1;
                (Class::Space, false)
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                (Class::Space, false)
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                loop {
                    if i + 1 >= bytes.len() {
                        i = bytes.len();
                        out.unclosed = Some(Unclosed::BlockComment { line: start_line });
                        break;
                    }
                    match (bytes[i], bytes[i + 1]) {
                        (b'*', b'/') => {
                            i += 2;
                            break;
                        }
                        (b'/', b'*') => {
                            out.nested_comment_lines.push(line);
                            i += 1;
                        }
                        (b'\n', _) => {
                            line += 1;
                            i += 1;
                        }
                        _ => i += 1,
                    }
                }
                (Class::Space, false)
            }
            b'\'' | b'"' | b'`' | b'[' => {
                let close = if b == b'[' { b']' } else { b };
                i += 1;
                let mut closed = false;
                while i < bytes.len() {
                    let c = bytes[i];
                    i += 1;
                    if c == b'\n' {
                        line += 1;
                    } else if c == close {
                        // A doubled quote is an escaped one; `]` has no escape.
                        if close != b']' && bytes.get(i) == Some(&close) {
                            i += 1;
                            continue;
                        }
                        closed = true;
                        break;
                    }
                }
                if !closed {
                    out.unclosed = Some(Unclosed::Quote {
                        quote: b as char,
                        line: start_line,
                    });
                }
                (Class::Other, false)
            }
            _ if is_id_byte(b) => {
                while i < bytes.len() && is_id_byte(bytes[i]) {
                    i += 1;
                }
                let word = !b.is_ascii_digit();
                let class = if word {
                    keyword_class(&bytes[start..i])
                } else {
                    Class::Other
                };
                (class, word)
            }
            _ => {
                // One character of punctuation; step over a whole UTF-8 sequence.
                i += 1;
                while i < bytes.len() && (bytes[i] & 0xC0) == 0x80 {
                    i += 1;
                }
                (Class::Other, false)
            }
        };
        if class != Class::Space {
            let stmt = current.get_or_insert_with(|| Statement {
                start,
                end: i,
                line: start_line,
                tokens: Vec::new(),
                terminated: false,
            });
            stmt.end = i;
            if class != Class::Semi {
                stmt.tokens.push(Token {
                    start,
                    end: i,
                    word,
                });
            }
        }
        state = step(state, class);
        if class == Class::Semi && state == State::Start {
            if let Some(mut stmt) = current.take() {
                stmt.terminated = true;
                // A lone `;` is an empty statement: nothing to run, nothing to report.
                if !stmt.tokens.is_empty() {
                    out.statements.push(stmt);
                }
            }
        }
    }
    if let Some(stmt) = current.take() {
        if matches!(state, State::Trigger | State::Semi | State::End) && out.unclosed.is_none() {
            out.unclosed = Some(Unclosed::Trigger { line: stmt.line });
        }
        if !stmt.tokens.is_empty() {
            out.statements.push(stmt);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(src: &str) -> Vec<&str> {
        split(src).statements.iter().map(|s| s.text(src)).collect()
    }

    #[test]
    fn plain_statements() {
        assert_eq!(
            texts("CREATE TABLE a(x);\n\nINSERT INTO a VALUES (1) ;  "),
            vec!["CREATE TABLE a(x);", "INSERT INTO a VALUES (1) ;"]
        );
        let s = split("SELECT 1;\n-- c\nSELECT 2");
        assert_eq!(s.statements[1].line, 3);
        assert!(!s.statements[1].terminated);
        assert!(s.unclosed.is_none());
    }

    #[test]
    fn semicolons_in_strings_identifiers_and_comments_do_not_split() {
        let src = "INSERT INTO t VALUES ('a;b', \"c;d\", `e;f`, [g;h], 'it''s;');\n\
                   -- a comment; with BEGIN\n/* block; BEGIN TRANSACTION; */ SELECT 1;";
        let got = texts(src);
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[0].ends_with("'it''s;');"));
        assert_eq!(got[1], "SELECT 1;");
    }

    #[test]
    fn trigger_bodies_stay_whole() {
        let src = "CREATE TRIGGER t AFTER INSERT ON a BEGIN\n  UPDATE b SET n = n + 1;\n  \
                   SELECT CASE WHEN 1 THEN 2 END;\nEND;\nCREATE TEMP TRIGGER IF NOT EXISTS u \
                   BEFORE DELETE ON a BEGIN SELECT RAISE(ABORT, 'no'); end ;SELECT 3;";
        let got = texts(src);
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(got[0].ends_with("END;"));
        assert!(got[1].starts_with("CREATE TEMP TRIGGER"));
        assert_eq!(got[2], "SELECT 3;");
    }

    #[test]
    fn explain_create_trigger_and_plain_create() {
        assert_eq!(texts("CREATE TABLE trigger_log(x); SELECT 1;").len(), 2);
        assert_eq!(
            texts("EXPLAIN CREATE TRIGGER t AFTER INSERT ON a BEGIN SELECT 1; END; SELECT 2;")
                .len(),
            2
        );
        // A column named `end` outside a trigger is just a word.
        assert_eq!(
            texts("CREATE TABLE e(\"end\" INT, end_at INT); SELECT end_at FROM e;").len(),
            2
        );
    }

    #[test]
    fn unclosed_constructs_are_reported() {
        assert_eq!(
            split("SELECT 'abc").unclosed,
            Some(Unclosed::Quote {
                quote: '\'',
                line: 1
            })
        );
        assert_eq!(
            split("SELECT 1;\n/* open").unclosed,
            Some(Unclosed::BlockComment { line: 2 })
        );
        assert_eq!(
            split("SELECT 1;\nCREATE TRIGGER t AFTER INSERT ON a BEGIN SELECT 1;").unclosed,
            Some(Unclosed::Trigger { line: 2 })
        );
    }

    #[test]
    fn nested_block_comments_end_at_the_first_close() {
        let src = "/* outer /* inner */ SELECT 1; */";
        let s = split(src);
        assert_eq!(s.nested_comment_lines, vec![1]);
        assert_eq!(s.statements[0].text(src), "SELECT 1;");
    }

    #[test]
    fn crlf_and_utf8() {
        let src = "CREATE TABLE é(x);\r\nINSERT INTO é VALUES ('ü;');\r\n";
        let got = texts(src);
        assert_eq!(
            got,
            vec!["CREATE TABLE é(x);", "INSERT INTO é VALUES ('ü;');"]
        );
        assert_eq!(split(src).statements[1].line, 2);
    }

    #[test]
    fn leading_words_classify() {
        let src = "/* x */ begin transaction;";
        let s = &split(src).statements[0];
        assert_eq!(s.leading_words(src, 2), vec!["BEGIN", "TRANSACTION"]);
    }
}
