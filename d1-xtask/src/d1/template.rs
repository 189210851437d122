//! Template databases for the local test loop. A local reset built through wrangler leaves
//! its result as a template file, keyed by a digest of everything that shaped it; the next
//! reset with the same key copies the template back with SQLite's backup API and starts
//! no wrangler process. The template always comes from wrangler's own engine, so a reset
//! from it holds exactly what a reset through wrangler would. Templates are never used for
//! a remote database.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};
use sha2::{Digest, Sha256};

use crate::exit::failed;
use crate::migrations::Migration;
use crate::workspace::project::Project;
use crate::workspace::target::Target;

/// How many templates a workspace keeps; the least recently used go first.
pub(crate) const KEEP: usize = 8;

/// Everything that shapes the database a reset makes.
pub(crate) struct Inputs<'a> {
    pub(crate) target: &'a Target,
    /// The migrations applied, in order.
    pub(crate) migrations: &'a [&'a Migration],
    /// The seed files loaded after them: name and the SQL sent.
    pub(crate) seeds: Vec<(String, &'a str)>,
    /// `--to`, as given.
    pub(crate) to: Option<&'a str>,
    /// Which wrangler builds it (`Wrangler::fingerprint`).
    pub(crate) wrangler: String,
}

impl Inputs<'_> {
    /// The digest naming the template: 32 hex digits of SHA-256 over every input.
    pub(crate) fn key(&self) -> String {
        let db = &self.target.db;
        let mut lines = vec![
            format!("d1-xtask {}", env!("CARGO_PKG_VERSION")),
            format!("wrangler {}", self.wrangler),
            format!("migrations_table {}", db.migrations_table),
            format!(
                "migrations_dir {}",
                db.migrations_dir
                    .file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
            ),
            format!(
                "migrations_pattern {}",
                db.migrations_pattern.as_deref().unwrap_or("")
            ),
            format!("to {}", self.to.unwrap_or("")),
        ];
        for m in self.migrations {
            lines.push(format!("migration {} {}", m.name, m.sha256));
        }
        for (name, sql) in &self.seeds {
            lines.push(format!(
                "seed {name} {}",
                hex(&Sha256::digest(sql.as_bytes()))
            ));
        }
        let digest = Sha256::digest(lines.join("\n").as_bytes());
        hex(&digest)[..32].to_string()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Where a workspace keeps its templates.
pub(crate) fn dir(project: &Project) -> PathBuf {
    project.scratch_dir().join("templates")
}

/// The template of `key`, if one was made and still reads whole (SQLite's `quick_check`);
/// touched, so that pruning keeps it. A damaged one is removed, and the reset goes
/// through wrangler again.
pub(crate) fn find(project: &Project, key: &str) -> Option<PathBuf> {
    let path = dir(project).join(format!("{key}.sqlite"));
    if !path.is_file() {
        return None;
    }
    let whole = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .and_then(|c| c.query_row("PRAGMA quick_check", [], |r| r.get::<_, String>(0)))
        .is_ok_and(|verdict| verdict == "ok");
    if !whole {
        crate::ui::say(format!(
            "note: the template {} does not read whole; it is removed and this reset goes through wrangler",
            path.display()
        ));
        let _ = std::fs::remove_file(&path);
        return None;
    }
    if let Ok(file) = std::fs::File::options().append(true).open(&path) {
        let _ = file.set_modified(std::time::SystemTime::now());
    }
    Some(path)
}

/// Keeps `db_file` (a database a reset just made) as the template of `key`: copied with
/// SQLite's backup API into a scratch file, then renamed into place, so that a reader never
/// sees half a template. The oldest templates beyond `KEEP` are removed.
pub(crate) fn save(project: &Project, key: &str, db_file: &Path) -> anyhow::Result<PathBuf> {
    let dir = dir(project);
    std::fs::create_dir_all(&dir).map_err(|e| failed!("cannot create {}: {e}", dir.display()))?;
    let path = dir.join(format!("{key}.sqlite"));
    let scratch = dir.join(format!(".{key}-{}.part", std::process::id()));
    let _ = std::fs::remove_file(&scratch);
    let copied = (|| -> rusqlite::Result<()> {
        let src = Connection::open_with_flags(db_file, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        src.busy_timeout(std::time::Duration::from_secs(10))?;
        src.backup(rusqlite::MAIN_DB, &scratch, None)?;
        // One file, whatever journal mode the source used.
        let copy = Connection::open(&scratch)?;
        copy.pragma_update(None, "journal_mode", "DELETE")?;
        Ok(())
    })();
    if let Err(e) = copied {
        let _ = std::fs::remove_file(&scratch);
        return Err(failed!(
            "cannot keep {} as a template: {e}",
            db_file.display()
        ));
    }
    std::fs::rename(&scratch, &path).map_err(|e| {
        let _ = std::fs::remove_file(&scratch);
        failed!("cannot keep the template {}: {e}", path.display())
    })?;
    prune(&dir, KEEP);
    Ok(path)
}

/// Removes all but the `keep` most recently used templates in `dir`.
fn prune(dir: &Path, keep: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut templates: Vec<(std::time::SystemTime, PathBuf)> = entries
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "sqlite"))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    templates.sort_by_key(|t| std::cmp::Reverse(t.0));
    for (_, path) in templates.into_iter().skip(keep) {
        let _ = std::fs::remove_file(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrations::lint::FileFacts;
    use crate::testutil::TempDir;
    use crate::workspace::target::{Database, Env};

    fn target(table: &str) -> Target {
        Target {
            env: Env::Local,
            db: Database {
                binding: "DB".into(),
                name: Some("db".into()),
                id: Some("id".into()),
                preview_id: None,
                migrations_dir: PathBuf::from("/w/migrations"),
                migrations_pattern: None,
                migrations_table: table.into(),
            },
            protected: false,
            config_path: PathBuf::from("/w/wrangler.jsonc"),
        }
    }

    fn migration(name: &str, sql: &str) -> Migration {
        Migration {
            number: 1,
            name: name.into(),
            path: PathBuf::from(name),
            sql: sql.into(),
            sha256: hex(&Sha256::digest(sql.as_bytes())),
            facts: FileFacts::default(),
        }
    }

    #[test]
    fn every_input_changes_the_key() {
        let t = target("d1_migrations");
        let a = migration("0001_a.sql", "CREATE TABLE a (id INTEGER);");
        let chosen = [&a];
        let base = Inputs {
            target: &t,
            migrations: &chosen,
            seeds: vec![("seed-a.sql".into(), "INSERT INTO a VALUES (1);")],
            to: None,
            wrangler: "wrangler@4.164.0".into(),
        };
        let key = base.key();
        assert_eq!(key.len(), 32);
        assert_eq!(
            key,
            Inputs {
                seeds: base.seeds.clone(),
                wrangler: base.wrangler.clone(),
                ..base
            }
            .key()
        );
        let edited = migration("0001_a.sql", "CREATE TABLE a (id INTEGER, v TEXT);");
        let changed = [
            Inputs {
                migrations: &[&edited],
                seeds: base.seeds.clone(),
                wrangler: base.wrangler.clone(),
                ..base
            },
            Inputs {
                seeds: vec![("seed-a.sql".into(), "INSERT INTO a VALUES (2);")],
                wrangler: base.wrangler.clone(),
                ..base
            },
            Inputs {
                seeds: Vec::new(),
                wrangler: base.wrangler.clone(),
                ..base
            },
            Inputs {
                to: Some("1"),
                seeds: base.seeds.clone(),
                wrangler: base.wrangler.clone(),
                ..base
            },
            Inputs {
                wrangler: "wrangler@4.165.0".into(),
                seeds: base.seeds.clone(),
                ..base
            },
        ];
        for c in &changed {
            assert_ne!(c.key(), key);
        }
        let other_table = target("migrations");
        assert_ne!(
            Inputs {
                target: &other_table,
                seeds: base.seeds.clone(),
                wrangler: base.wrangler.clone(),
                ..base
            }
            .key(),
            key
        );
    }

    #[test]
    fn saved_templates_are_found_and_bounded() {
        let tmp = TempDir::new("templates");
        let project = Project::at(tmp.path().to_path_buf(), tmp.path().join("wrangler.jsonc"));
        let db = tmp.path().join("db.sqlite");
        Connection::open(&db)
            .unwrap()
            .execute_batch("CREATE TABLE t (v TEXT); INSERT INTO t VALUES ('x');")
            .unwrap();
        assert!(find(&project, "k0").is_none());
        for i in 0..KEEP + 2 {
            save(&project, &format!("k{i}"), &db).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let kept = std::fs::read_dir(dir(&project)).unwrap().count();
        // A damaged template is not used, and goes.
        let damaged = dir(&project).join(format!("k{}.sqlite", KEEP + 1));
        let bytes = std::fs::read(&damaged).unwrap();
        std::fs::write(&damaged, &bytes[..bytes.len() / 2]).unwrap();
        assert!(find(&project, &format!("k{}", KEEP + 1)).is_none());
        assert!(!damaged.exists());
        save(&project, &format!("k{}", KEEP + 1), &db).unwrap();
        assert_eq!(kept, KEEP);
        assert!(find(&project, "k0").is_none(), "the oldest went first");
        let newest = find(&project, &format!("k{}", KEEP + 1)).unwrap();
        let n: i64 = Connection::open(&newest)
            .unwrap()
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
    }
}
