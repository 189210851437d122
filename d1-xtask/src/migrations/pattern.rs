//! `migrations_pattern`, read as wrangler 4.164 reads it (`getD1MigrationFiles` in
//! workers-utils): the pattern is relative to the config's folder and must start with
//! `<migrations_dir>/`; the rest is matched with minimatch (`dot: false`) against every
//! file below the migrations folder, by its `/`-separated path; a migration's name (the
//! key of the tracking table) is that path, for example `20250101120000_init/migration.sql`;
//! the files are ordered segment by segment, a segment's leading number first
//! (`compareMigrationPaths`). The subset of minimatch read here: `*`, `?`, `[...]` and a
//! whole-segment `**`; braces and extglobs are refused rather than read differently.

use std::cmp::Ordering;
use std::path::Path;

/// `p` with `\` as `/`, `.` and `..` resolved as `path.posix.normalize` does, and no
/// trailing `/`.
pub(crate) fn normalize(p: &str) -> String {
    let forward = p.replace('\\', "/");
    let absolute = forward.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for seg in forward.split('/') {
        match seg {
            "" | "." => {}
            ".." if out.last().is_some_and(|l| *l != "..") => {
                out.pop();
            }
            ".." if absolute => {}
            other => out.push(other),
        }
    }
    let joined = out.join("/");
    match (absolute, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

/// The pattern below the migrations folder, as wrangler strips it; `Err` says why the
/// configured pattern is not one wrangler (or the xtask) reads.
pub(crate) fn relative_to_dir(pattern: &str, dir: &str) -> Result<String, String> {
    let pattern = normalize(pattern);
    let dir = normalize(dir);
    let rest = if dir == "." {
        pattern.clone()
    } else {
        pattern
            .strip_prefix(&format!("{dir}/"))
            .map(String::from)
            .ok_or_else(|| {
                format!(
                    "must start with `{dir}/` to match \"migrations_dir\": \"{dir}\" (for example \"{dir}/*/migration.sql\")"
                )
            })?
    };
    if let Some(c) = rest
        .chars()
        .find(|c| matches!(c, '{' | '}' | '!' | '+' | '@'))
    {
        return Err(format!(
            "uses `{c}`: the xtask reads patterns made of `*`, `?`, `[...]` and `**` only (wrangler would read \
             minimatch's braces and extglobs, which the xtask does not, so the two could disagree)"
        ));
    }
    if rest.is_empty() || rest == "." {
        return Err("names the folder itself, not files in it".into());
    }
    Ok(rest)
}

/// One segment of a glob against one path segment (`*`, `?`, `[...]`).
fn segment_matches(pat: &[char], s: &[char]) -> bool {
    match pat.first() {
        None => s.is_empty(),
        Some('*') => (0..=s.len()).any(|i| segment_matches(&pat[1..], &s[i..])),
        Some('?') => !s.is_empty() && segment_matches(&pat[1..], &s[1..]),
        Some('[') => {
            let Some(close) = pat.iter().skip(2).position(|c| *c == ']').map(|p| p + 2) else {
                return s.first() == Some(&'[') && segment_matches(&pat[1..], &s[1..]);
            };
            let Some(c) = s.first() else { return false };
            let class = &pat[1..close];
            let (negate, class) = match class.first() {
                Some('!' | '^') => (true, &class[1..]),
                _ => (false, class),
            };
            let mut hit = false;
            let mut i = 0;
            while i < class.len() {
                if i + 2 < class.len() && class[i + 1] == '-' {
                    hit |= class[i] <= *c && *c <= class[i + 2];
                    i += 3;
                } else {
                    hit |= class[i] == *c;
                    i += 1;
                }
            }
            hit != negate && segment_matches(&pat[close + 1..], &s[1..])
        }
        Some(p) => s.first() == Some(p) && segment_matches(&pat[1..], &s[1..]),
    }
}

/// Whether `path` (below the folder, `/`-separated) matches `pattern`, with minimatch's
/// `dot: false`: a wildcard never matches a segment starting with `.`.
pub(crate) fn matches(pattern: &str, path: &str) -> bool {
    let pat: Vec<&str> = pattern.split('/').collect();
    let segs: Vec<&str> = path.split('/').collect();
    fn go(pat: &[&str], segs: &[&str]) -> bool {
        match pat.first() {
            None => segs.is_empty(),
            Some(&"**") => (0..=segs.len()).any(|i| {
                segs[..i].iter().all(|s| !s.starts_with('.')) && go(&pat[1..], &segs[i..])
            }),
            Some(p) => {
                let Some(s) = segs.first() else { return false };
                if s.starts_with('.') && !p.starts_with('.') {
                    return false;
                }
                let pc: Vec<char> = p.chars().collect();
                let sc: Vec<char> = s.chars().collect();
                segment_matches(&pc, &sc) && go(&pat[1..], &segs[1..])
            }
        }
    }
    go(&pat, &segs)
}

/// Every file below `dir` whose path matches `pattern`, in wrangler's order; files whose
/// path is not UTF-8 are returned apart (lint names them).
pub(crate) fn files(dir: &Path, pattern: &str) -> std::io::Result<(Vec<String>, Vec<String>)> {
    let mut out = Vec::new();
    let mut not_utf8 = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), String::new())];
    while let Some((abs, rel)) = stack.pop() {
        let entries = match std::fs::read_dir(&abs) {
            Ok(e) => e,
            Err(e) if abs == dir => return Err(e),
            Err(_) => continue,
        };
        for entry in entries.flatten() {
            let Some(name) = entry.file_name().to_str().map(String::from) else {
                not_utf8.push(format!("{rel}{}", entry.file_name().to_string_lossy()));
                continue;
            };
            let child = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                if !name.starts_with('.') {
                    stack.push((entry.path(), child));
                }
            } else if kind.is_file() && matches(pattern, &child) {
                out.push(child);
            }
        }
    }
    out.sort_by(|a, b| compare(a, b));
    Ok((out, not_utf8))
}

/// `parseInt(segment.split("_")[0], 10)`: the leading digits of the part before `_`.
fn leading_number(segment: &str) -> Option<u128> {
    let head = segment.split('_').next().unwrap_or_default();
    let digits: String = head.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

/// wrangler's `compareMigrationPaths`: segment by segment, numbers before non-numbers and
/// in numeric order, then by the segment's text; a shorter path first when one is a prefix.
pub(crate) fn compare(a: &str, b: &str) -> Ordering {
    let (sa, sb): (Vec<&str>, Vec<&str>) = (a.split('/').collect(), b.split('/').collect());
    for (x, y) in sa.iter().zip(&sb) {
        let by_number = match (leading_number(x), leading_number(y)) {
            (Some(m), Some(n)) => m.cmp(&n),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        };
        // JavaScript compares strings by UTF-16 code units.
        let by_text = || x.encode_utf16().cmp(y.encode_utf16());
        let ord = by_number.then_with(by_text);
        if ord != Ordering::Equal {
            return ord;
        }
    }
    sa.len().cmp(&sb.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drizzle_layout_matches_and_orders_as_wrangler() {
        let p = relative_to_dir("./drizzle/*/migration.sql", "drizzle").unwrap();
        assert_eq!(p, "*/migration.sql");
        assert!(matches(&p, "20250101120000_init/migration.sql"));
        assert!(!matches(&p, "20250101120000_init/snapshot.json"));
        assert!(!matches(&p, "meta/_journal.json"));
        assert!(!matches(&p, ".hidden/migration.sql"));
        assert!(!matches(&p, "0001_flat.sql"));
        assert!(matches("**/*.sql", "a/b/c.sql") && matches("**/*.sql", "c.sql"));
        assert!(!matches("**/*.sql", ".git/c.sql"));
        assert!(matches("[0-9]*_*.sql", "0001_a.sql") && !matches("[!0-9]*.sql", "0001_a.sql"));
        let mut names = vec![
            "10_b/migration.sql",
            "9_a/migration.sql",
            "notes/migration.sql",
            "9_a/extra.sql",
            "0010_a/migration.sql",
        ];
        names.sort_by(|a, b| compare(a, b));
        assert_eq!(
            names,
            [
                "9_a/extra.sql",
                "9_a/migration.sql",
                "0010_a/migration.sql",
                "10_b/migration.sql",
                "notes/migration.sql"
            ]
        );
        assert!(relative_to_dir("db/*.sql", "migrations").is_err());
        assert!(relative_to_dir("migrations/{a,b}/*.sql", "migrations").is_err());
        assert_eq!(normalize("./a/../b/"), "b");
        assert_eq!(normalize("a\\b"), "a/b");
    }
}
