//! The migrations folder: which files there are, in wrangler's order, with their checksums
//! and lint findings.

pub(crate) mod lint;
pub(crate) mod pattern;
pub(crate) mod plan;
pub(crate) mod sql;

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::exit::usage;
use lint::{FileFacts, Finding, Severity};

#[derive(Clone, Debug)]
pub(crate) struct Migration {
    /// The numeric prefix, as wrangler orders by it.
    pub(crate) number: u64,
    /// The file name with `.sql`: the key of wrangler's tracking table.
    pub(crate) name: String,
    pub(crate) path: PathBuf,
    pub(crate) sql: String,
    /// Lower-case hex SHA-256 of the file's bytes.
    pub(crate) sha256: String,
    pub(crate) facts: FileFacts,
}

#[derive(Debug)]
pub(crate) struct MigrationSet {
    pub(crate) dir: PathBuf,
    /// Whether the folder exists; a missing folder holds no migrations.
    pub(crate) exists: bool,
    /// Well-formed migrations in wrangler's order (number, then name).
    pub(crate) migrations: Vec<Migration>,
    pub(crate) findings: Vec<Finding>,
    /// `migrations_pattern` below the folder, when one is configured.
    pub(crate) pattern: Option<String>,
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(digest: &[u8]) -> String {
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// The size and SHA-256 of a file, read a megabyte at a time (a backup of hundreds of
/// megabytes never sits in memory whole).
pub(crate) fn sha256_file(path: &std::path::Path) -> std::io::Result<(u64, String)> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((size, hex(&hasher.finalize())))
}

/// `<digits>_<name>.sql` -> the number, or why the name is not one wrangler can order.
pub(crate) fn parse_name(file: &str) -> Result<u64, String> {
    let stem = file
        .strip_suffix(".sql")
        .ok_or_else(|| "does not end in `.sql`".to_string())?;
    let (digits, rest) = stem.split_once('_').ok_or_else(|| {
        "does not match `<digits>_<name>.sql` (no `_` after the number)".to_string()
    })?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err("does not match `<digits>_<name>.sql` (it must start with a number)".into());
    }
    if rest.is_empty() {
        return Err("does not match `<digits>_<name>.sql` (the name after `_` is empty)".into());
    }
    if rest.chars().any(|c| c.is_control()) {
        return Err("holds a control character".into());
    }
    digits
        .parse::<u64>()
        .map_err(|_| "has a number too large to order".to_string())
}

/// The number of a migration below a folder (`migrations_pattern`): a file directly in
/// it is `<digits>_<name>.sql`; a nested one takes it from its first folder,
/// `<digits>_<name>/...` (Drizzle's `<timestamp>_<name>/migration.sql`).
pub(crate) fn parse_path(name: &str) -> Result<u64, String> {
    let Some((first, _)) = name.split_once('/') else {
        return parse_name(name);
    };
    let (digits, rest) = first.split_once('_').ok_or_else(|| {
        format!("folder `{first}` does not match `<digits>_<name>` (no `_` after the number)")
    })?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || rest.is_empty() {
        return Err(format!("folder `{first}` does not match `<digits>_<name>`"));
    }
    if name.chars().any(|c| c.is_control()) {
        return Err("holds a control character".into());
    }
    digits
        .parse::<u64>()
        .map_err(|_| "has a number too large to order".to_string())
}

impl MigrationSet {
    /// The migrations of a database: its folder, through its `migrations_pattern` if set.
    pub(crate) fn for_db(db: &crate::workspace::target::Database) -> anyhow::Result<MigrationSet> {
        MigrationSet::scan_with(&db.migrations_dir, db.migrations_pattern.as_deref())
    }

    /// The migrations of a target's database, which must have its folder: a missing one
    /// (a typo in `migrations_dir`, a dangling link, a link loop) is a configuration error
    /// naming the environment and the path, never "nothing to apply" (raw wrangler says
    /// "No migrations present" and fails too).
    pub(crate) fn for_target(
        target: &crate::workspace::target::Target,
    ) -> anyhow::Result<MigrationSet> {
        let dir = &target.db.migrations_dir;
        if !dir.is_dir() {
            let what = match (std::fs::symlink_metadata(dir), std::fs::metadata(dir)) {
                (Err(_), _) => "does not exist".to_string(),
                (Ok(link), Err(e)) if link.file_type().is_symlink() => {
                    format!("is a link that leads nowhere ({e})")
                }
                (Ok(_), Err(e)) => format!("cannot be read ({e})"),
                (Ok(_), Ok(_)) => "is not a folder".to_string(),
            };
            return Err(usage!(
                "the migrations folder of {} (binding {}) is {}, which {what}: check `migrations_dir` \
                 for that database in the wrangler config, or create the folder \
                 (`cargo xtask db-new <name>` does); nothing was changed",
                target.env,
                target.db.binding,
                dir.display()
            ));
        }
        MigrationSet::for_db(&target.db)
    }

    /// Reads and lints every `*.sql` file directly in `dir` (wrangler's default pattern).
    #[cfg(test)]
    pub(crate) fn scan(dir: &Path) -> anyhow::Result<MigrationSet> {
        MigrationSet::scan_with(dir, None)
    }

    /// Reads and lints the migrations in `dir`: every `*.sql` directly in it, or every file
    /// below it that `pattern` matches. Only I/O failures are errors here; problems with
    /// the files become findings.
    pub(crate) fn scan_with(dir: &Path, pattern: Option<&str>) -> anyhow::Result<MigrationSet> {
        let mut set = MigrationSet {
            dir: dir.to_path_buf(),
            exists: dir.is_dir(),
            migrations: Vec::new(),
            findings: Vec::new(),
            pattern: pattern.map(String::from),
        };
        if !set.exists {
            return Ok(set);
        }
        if let Some(p) = pattern {
            let (names, not_utf8) = pattern::files(dir, p)
                .map_err(|e| usage!("cannot read the migrations folder {}: {e}", dir.display()))?;
            for name in not_utf8 {
                set.error(
                    "bad-name",
                    &name,
                    None,
                    "path is not UTF-8: rename it".into(),
                );
            }
            set.read(dir, names)?;
            return Ok(set);
        }
        let entries = std::fs::read_dir(dir)
            .map_err(|e| usage!("cannot read the migrations folder {}: {e}", dir.display()))?;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| usage!("cannot read {}: {e}", dir.display()))?;
            let name = entry.file_name();
            let Some(name) = name.to_str().map(str::to_string) else {
                set.error(
                    "bad-name",
                    &name.to_string_lossy(),
                    None,
                    "file name is not UTF-8: rename it".into(),
                );
                continue;
            };
            // wrangler's pattern is `*.sql` without dot files; anything else is not a migration.
            if name.starts_with('.') || !entry.path().is_file() {
                continue;
            }
            if name.to_ascii_lowercase().ends_with(".sql") && !name.ends_with(".sql") {
                set.warning(
                    "bad-name",
                    &name,
                    None,
                    "ends in a capitalised .SQL: wrangler ignores it; rename it to .sql".into(),
                );
                continue;
            }
            if name.ends_with(".sql") {
                names.push(name);
            }
        }
        names.sort();
        set.read(dir, names)?;
        Ok(set)
    }

    /// Reads, checks and orders the files `names` (paths below `dir`).
    fn read(&mut self, dir: &Path, names: Vec<String>) -> anyhow::Result<()> {
        let set = self;
        for name in names {
            let number = match parse_path(&name) {
                Ok(n) => n,
                Err(why) => {
                    set.error(
                        "bad-name",
                        &name,
                        None,
                        format!("{why}: wrangler would still apply it; rename it like `0003_add_orders.sql`"),
                    );
                    continue;
                }
            };
            let path = dir.join(&name);
            let bytes = std::fs::read(&path)
                .map_err(|e| usage!("cannot read migration {}: {e}", path.display()))?;
            let sha256 = sha256_hex(&bytes);
            if bytes.starts_with(b"\xEF\xBB\xBF") {
                set.error(
                    "bom",
                    &name,
                    Some(1),
                    "starts with a UTF-8 byte order mark, which D1 reads as a syntax error: save it as UTF-8 without BOM".into(),
                );
                continue;
            }
            let sql = match String::from_utf8(bytes) {
                Ok(s) => s,
                Err(e) => {
                    let at = e.utf8_error().valid_up_to();
                    let line = e.as_bytes()[..at].iter().filter(|b| **b == b'\n').count() + 1;
                    set.error(
                        "not-utf8",
                        &name,
                        Some(line),
                        format!("is not valid UTF-8 (byte {at}): save it as UTF-8"),
                    );
                    continue;
                }
            };
            let facts = lint::lint_sql(&name, &sql, &mut set.findings);
            if name.contains('\'') || name.contains('"') {
                set.warning(
                    "quote-in-name",
                    &name,
                    None,
                    "has a quote in its name: the xtask quotes it, but other tools may not; prefer letters, digits and _".into(),
                );
            }
            set.migrations.push(Migration {
                number,
                name,
                path,
                sql,
                sha256,
                facts,
            });
        }
        set.migrations
            .sort_by(|a, b| pattern::compare(&a.name, &b.name));
        set.check_numbering();
        set.check_cascades();
        set.check_d1_rules();
        Ok(())
    }

    fn check_numbering(&mut self) {
        let mut dups = Vec::new();
        let mut gaps = Vec::new();
        for pair in self.migrations.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            if a.number == b.number {
                dups.push((a.name.clone(), b.name.clone()));
            } else if b.number > a.number + 1 && self.pattern.is_none() {
                gaps.push((
                    b.name.clone(),
                    format!(
                        "numbering jumps from {} ({}) to {}: fine if intended, otherwise a file is missing",
                        a.number, a.name, b.number
                    ),
                ));
            }
        }
        for (name, msg) in gaps {
            self.warning("gap", &name, None, msg);
        }
        for (a, b) in dups {
            self.warning(
                "duplicate-number",
                &b,
                None,
                format!(
                    "has the same number as {a}: wrangler applies both, in name order, and tracks them by \
                     name, so this works, but `--to` must then give the file name; give new migrations a \
                     number of their own (`cargo xtask db-new` picks the next free one) and do not rename a \
                     file that is applied somewhere (wrangler would apply it again there)"
                ),
            );
        }
    }

    /// The cascade trap: a migration that drops (or rebuilds: create, copy, drop, rename)
    /// a table that others reference with `ON DELETE CASCADE`. D1 still runs the cascade
    /// under `defer_foreign_keys`, so the children lose their rows. The schema at each
    /// migration comes from replaying the files in order on an empty in-memory database.
    fn check_cascades(&mut self) {
        let drops = |sql: &str| sql.to_ascii_uppercase().contains("DROP TABLE");
        if !self.migrations.iter().any(|m| drops(&m.sql)) {
            return;
        }
        let Ok(conn) = rusqlite::Connection::open_in_memory() else {
            return;
        };
        let mut warnings = Vec::new();
        for m in &self.migrations {
            if drops(&m.sql) {
                let split = sql::split(&m.sql);
                for stmt in &split.statements {
                    let words = stmt.leading_words(&m.sql, 5);
                    if words.first().map(String::as_str) != Some("DROP")
                        || words.get(1).map(String::as_str) != Some("TABLE")
                    {
                        continue;
                    }
                    let at = if words.get(2).map(String::as_str) == Some("IF") {
                        4
                    } else {
                        2
                    };
                    let Some(token) = stmt.tokens.get(at) else {
                        continue;
                    };
                    let raw = &m.sql[token.start..token.end];
                    let table = raw.trim_matches(|c| c == '"' || c == '`' || c == '[' || c == ']');
                    let children: Vec<String> = conn
                        .prepare(
                            "SELECT DISTINCT m.name FROM sqlite_master AS m, pragma_foreign_key_list(m.name) AS p \
                             WHERE m.type = 'table' AND p.\"table\" = ?1 COLLATE NOCASE \
                             AND upper(p.on_delete) = 'CASCADE' AND m.name <> ?1 COLLATE NOCASE ORDER BY m.name",
                        )
                        .and_then(|mut s| s.query_map([table], |r| r.get(0))?.collect())
                        .unwrap_or_default();
                    if !children.is_empty() {
                        warnings.push((
                            m.name.clone(),
                            stmt.line,
                            format!(
                                "drops table `{table}`, which {} reference{} with ON DELETE CASCADE: D1 runs the \
                                 cascade even under defer_foreign_keys, so their rows are deleted (a table rebuild \
                                 loses them too); move the children's rows aside first, or rehearse with \
                                 `cargo xtask db-migrate --env <name> --rehearse` to see the rows lost",
                                children.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", "),
                                if children.len() == 1 { "s it" } else { " it" }
                            ),
                        ));
                    }
                }
            }
            // Replay: errors here are not lint's business (they show when applied).
            let _ = conn.execute_batch(&format!("BEGIN;\n{}\n;\nCOMMIT;", m.sql));
            let _ = conn.execute_batch("ROLLBACK;");
        }
        for (file, line, message) in warnings {
            self.push(Severity::Warning, "cascade", &file, Some(line), message);
        }
    }

    /// What D1 would refuse that SQLite accepts: every statement compiled on an in-memory
    /// database with D1's limits and authorizer (`lint::check_d1_rules`).
    fn check_d1_rules(&mut self) {
        let Some(conn) = lint::d1_connection() else {
            return;
        };
        let mut findings = Vec::new();
        for m in &self.migrations {
            lint::check_d1_rules(&conn, &m.name, &m.sql, &mut findings);
        }
        self.findings.extend(findings);
    }

    fn error(&mut self, kind: &'static str, file: &str, line: Option<usize>, message: String) {
        self.push(Severity::Error, kind, file, line, message);
    }
    fn warning(&mut self, kind: &'static str, file: &str, line: Option<usize>, message: String) {
        self.push(Severity::Warning, kind, file, line, message);
    }
    fn push(
        &mut self,
        severity: Severity,
        kind: &'static str,
        file: &str,
        line: Option<usize>,
        message: String,
    ) {
        self.findings.push(Finding {
            severity,
            kind,
            file: file.to_string(),
            line,
            message,
        });
    }

    pub(crate) fn errors(&self) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
    }

    /// The migration a `--to` names: its number (`3`, `0003`), its file name (with or
    /// without `.sql`) or, in a nested layout, its folder (`20250101120000_init`).
    pub(crate) fn find(&self, version: &str) -> anyhow::Result<&Migration> {
        let by_number = version.bytes().all(|b| b.is_ascii_digit());
        let found: Vec<&Migration> = self
            .migrations
            .iter()
            .filter(|m| {
                if by_number {
                    version.parse::<u64>().ok() == Some(m.number)
                } else {
                    m.name == version
                        || m.name.strip_suffix(".sql") == Some(version)
                        || m.name.split_once('/').map(|(folder, _)| folder) == Some(version)
                }
            })
            .collect();
        match found.as_slice() {
            [one] => Ok(one),
            [] => Err(usage!(
                "no migration `{version}` in {}: give a number or file name that exists ({})",
                self.dir.display(),
                self.migrations
                    .last()
                    .map_or("the folder is empty".to_string(), |m| format!(
                        "the newest is {}",
                        m.name
                    ))
            )),
            many => Err(usage!(
                "`{version}` matches {}: give the full file name",
                many.iter()
                    .map(|m| m.name.as_str())
                    .collect::<Vec<_>>()
                    .join(" and ")
            )),
        }
    }

    /// The number `db-new` gives the next file: one past the highest, as wrangler does.
    pub(crate) fn next_number(&self) -> u64 {
        self.migrations.iter().map(|m| m.number).max().unwrap_or(0) + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;

    fn scan(files: &[(&str, &[u8])]) -> (TempDir, MigrationSet) {
        let dir = TempDir::new("migrations");
        for (name, body) in files {
            std::fs::write(dir.path().join(name), body).unwrap();
        }
        let set = MigrationSet::scan(dir.path()).unwrap();
        (dir, set)
    }

    fn kinds(set: &MigrationSet) -> Vec<(&str, &str)> {
        set.findings
            .iter()
            .map(|f| (f.kind, f.file.as_str()))
            .collect()
    }

    #[test]
    fn orders_like_wrangler_numerically_then_by_name() {
        let (_d, set) = scan(&[
            ("10_ten.sql", b"SELECT 1;"),
            ("0002_b.sql", b"SELECT 1;"),
            ("9_nine.sql", b"SELECT 1;"),
            ("0001_a.sql", b"SELECT 1;"),
            ("notes.md", b"x"),
            (".hidden.sql", b"x"),
        ]);
        let names: Vec<&str> = set.migrations.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(
            names,
            vec!["0001_a.sql", "0002_b.sql", "9_nine.sql", "10_ten.sql"]
        );
        assert_eq!(kinds(&set), vec![("gap", "9_nine.sql")]);
        assert_eq!(set.next_number(), 11);
    }

    #[test]
    fn bad_names_duplicates_encoding_and_bom() {
        let (_d, set) = scan(&[
            ("0001_a.sql", b"SELECT 1;"),
            ("0001_b.sql", b"SELECT 1;"),
            ("0003 add users.sql", b"SELECT 1;"),
            ("schema.sql", b"SELECT 1;"),
            ("0004_.sql", b"SELECT 1;"),
            ("0002_latin1.sql", b"SELECT 'caf\xe9';"),
            ("0005_bom.sql", b"\xEF\xBB\xBFSELECT 1;"),
            ("0006_crlf.sql", b"CREATE TABLE a(x);\r\nSELECT 1;\r\n"),
        ]);
        let mut got = kinds(&set);
        got.sort();
        assert_eq!(
            got,
            vec![
                ("bad-name", "0003 add users.sql"),
                ("bad-name", "0004_.sql"),
                ("bad-name", "schema.sql"),
                ("bom", "0005_bom.sql"),
                ("duplicate-number", "0001_b.sql"),
                ("gap", "0006_crlf.sql"),
                ("not-utf8", "0002_latin1.sql"),
            ]
        );
        assert_eq!(
            set.errors().count(),
            5,
            "two files with one number only warn"
        );
    }

    #[test]
    fn find_by_number_or_name() {
        let (_d, set) = scan(&[("0001_a.sql", b"SELECT 1;"), ("0002_b.sql", b"SELECT 1;")]);
        assert_eq!(set.find("2").unwrap().name, "0002_b.sql");
        assert_eq!(set.find("0001").unwrap().name, "0001_a.sql");
        assert_eq!(set.find("0002_b").unwrap().name, "0002_b.sql");
        assert_eq!(set.find("0002_b.sql").unwrap().name, "0002_b.sql");
        assert!(set
            .find("7")
            .unwrap_err()
            .to_string()
            .contains("newest is 0002_b.sql"));
    }

    #[test]
    fn cascade_trap_is_a_warning_naming_the_children() {
        let (_d, set) = scan(&[
            ("0001_users.sql", b"CREATE TABLE users(id INTEGER PRIMARY KEY);\nCREATE TABLE posts(id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id) ON DELETE CASCADE);\nCREATE TABLE tokens(id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id) ON DELETE CASCADE);\nCREATE TABLE logs(user_id INTEGER REFERENCES users(id));"),
            ("0002_rebuild.sql", b"PRAGMA defer_foreign_keys = true;\nCREATE TABLE users_new(id INTEGER PRIMARY KEY, email TEXT);\nINSERT INTO users_new(id) SELECT id FROM users;\nDROP TABLE users;\nALTER TABLE users_new RENAME TO users;\nPRAGMA defer_foreign_keys = false;"),
            ("0003_drop_logs.sql", b"DROP TABLE IF EXISTS logs;"),
        ]);
        let cascade: Vec<&Finding> = set
            .findings
            .iter()
            .filter(|f| f.kind == "cascade")
            .collect();
        assert_eq!(cascade.len(), 1, "{:#?}", set.findings);
        assert_eq!(
            (cascade[0].file.as_str(), cascade[0].line),
            ("0002_rebuild.sql", Some(4))
        );
        assert!(
            cascade[0].message.contains("`posts`, `tokens`"),
            "{}",
            cascade[0].message
        );
        assert_eq!(cascade[0].severity, Severity::Warning);
    }

    #[test]
    fn missing_folder_is_empty() {
        let set = MigrationSet::scan(Path::new("/nonexistent/migrations")).unwrap();
        assert!(!set.exists);
        assert!(set.migrations.is_empty());
    }

    #[test]
    fn checksum_is_sha256_of_the_bytes() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
