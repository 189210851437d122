//! One database per test, for a team's own Rust tests: each test gets a private copy of a
//! migrated (and seeded) template, so tests run in parallel without sharing state.
//!
//! The template is the one `cargo xtask db-reset` keeps (`.wrangler/xtask/templates/`,
//! keyed by a digest of the migrations, the seed files and the wrangler that builds it).
//! When no template of the current inputs exists, it is built once through the real
//! wrangler, in a scratch local database (the workspace's own local database is never
//! touched), so that it holds exactly what D1's engine makes of the migrations.
//!
//! ```no_run
//! use std::sync::OnceLock;
//! use d1_xtask::testing::TestDatabases;
//!
//! fn databases() -> &'static TestDatabases {
//!     static ONCE: OnceLock<TestDatabases> = OnceLock::new();
//!     ONCE.get_or_init(|| TestDatabases::seeded(env!("CARGO_MANIFEST_DIR")).unwrap())
//! }
//!
//! #[test]
//! fn places_an_order() {
//!     let db = databases().fresh().unwrap();
//!     let conn = db.connect().unwrap();
//!     conn.execute("DELETE FROM orders", []).unwrap();
//! }
//! ```
//!
//! A failing test's database is kept for inspection when `D1_XTASK_KEEP_FAILED_DB=1` is
//! set: its path is printed on stderr.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::commands::db_seed::files::{joined_sql, load_with_prefix, SeedFile};
use crate::d1::local::Local;
use crate::d1::{template, Database, Extras};
use crate::exit::failed;
use crate::migrations::{Migration, MigrationSet};
use crate::workspace::config::Config;
use crate::workspace::project::Project;
use crate::workspace::settings::Settings;
use crate::workspace::target::{Env, Target};
use crate::wrangler::Wrangler;

/// The variable that keeps a failing test's database.
pub const KEEP_FAILED: &str = "D1_XTASK_KEEP_FAILED_DB";

/// The template of a workspace's local database, from which each test gets its own copy.
#[derive(Debug)]
pub struct TestDatabases {
    template: PathBuf,
    built: bool,
}

impl TestDatabases {
    /// Every migration and every seed file of the test data folder, in the local database
    /// of the workspace around `dir` (its `wrangler.jsonc` is found upwards); that
    /// database must be the config's only one, else use [`TestDatabases::of`].
    pub fn seeded(dir: impl AsRef<Path>) -> anyhow::Result<TestDatabases> {
        TestDatabases::of(dir, None, true)
    }

    /// Every migration, no test data.
    pub fn migrated(dir: impl AsRef<Path>) -> anyhow::Result<TestDatabases> {
        TestDatabases::of(dir, None, false)
    }

    /// The local database named by `database` (a binding or a name), migrated, and seeded
    /// when `seeded` is true.
    pub fn of(
        dir: impl AsRef<Path>,
        database: Option<&str>,
        seeded: bool,
    ) -> anyhow::Result<TestDatabases> {
        let located = Project::locate(dir.as_ref(), None)?;
        let config = Config::load(&located)?;
        let settings = Settings::load(&located.root)?;
        let project = located.with_settings(&settings);
        let target = config.resolve(&Env::Local, database, &settings.protected)?;
        let set = MigrationSet::for_target(&target)?;
        let errors: Vec<String> = set.errors().map(|f| format!("  {f}")).collect();
        if !errors.is_empty() {
            return Err(failed!(
                "lint found errors in {}:\n{}",
                set.dir.display(),
                errors.join("\n")
            ));
        }
        let seeds = if seeded {
            load_with_prefix(&project.test_data, "seed-")?
        } else {
            Vec::new()
        };
        let chosen: Vec<&Migration> = set.migrations.iter().collect();
        // Installed first when missing, so that the key names the wrangler that builds.
        let (fingerprint, located) = match Wrangler::fingerprint_for(&project) {
            Some(f) => (f, None),
            None => {
                let w = Wrangler::locate(&project)?;
                (w.fingerprint(), Some(w))
            }
        };
        let inputs = template::Inputs {
            target: &target,
            migrations: &chosen,
            seeds: seeds
                .iter()
                .map(|s| (s.short_name(), s.sql.as_str()))
                .collect(),
            to: None,
            wrangler: fingerprint,
        };
        let key = inputs.key();
        if let Some(template) = template::find(&project, &key) {
            return Ok(TestDatabases {
                template,
                built: false,
            });
        }
        let wrangler = match located {
            Some(w) => w,
            None => Wrangler::locate(&project)?,
        };
        let template = build(&project, &target, &chosen, &seeds, wrangler, &key)?;
        Ok(TestDatabases {
            template,
            built: true,
        })
    }

    /// Copies of an existing database file: the local D1 file `cargo xtask db-seed --
    /// <command>` names in `XTASK_D1_LOCAL_FILE`, say.
    pub fn from_file(template: impl Into<PathBuf>) -> TestDatabases {
        TestDatabases {
            template: template.into(),
            built: false,
        }
    }

    /// The template file every copy starts from.
    pub fn template(&self) -> &Path {
        &self.template
    }

    /// Whether this call built the template through wrangler (its inputs had changed),
    /// rather than finding it.
    pub fn built(&self) -> bool {
        self.built
    }

    /// A private copy of the template for one test, removed when dropped.
    pub fn fresh(&self) -> anyhow::Result<TestDatabase> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("d1-xtask-test-{}-{n}.sqlite", std::process::id()));
        // SQLite's backup API, not a file copy: the template may be a live database (a
        // local D1 file in WAL mode while wrangler dev runs).
        let copied = (|| -> rusqlite::Result<()> {
            let src = rusqlite::Connection::open_with_flags(
                &self.template,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )?;
            src.busy_timeout(std::time::Duration::from_secs(10))?;
            src.backup(rusqlite::MAIN_DB, &path, None)
        })();
        copied.map_err(|e| {
            let _ = std::fs::remove_file(&path);
            failed!(
                "cannot copy {} to {}: {e}",
                self.template.display(),
                path.display()
            )
        })?;
        Ok(TestDatabase { path, keep: false })
    }
}

/// One test's own database: a file, removed when dropped (kept when the test fails and
/// `D1_XTASK_KEEP_FAILED_DB=1` is set, or after [`TestDatabase::keep`]).
#[derive(Debug)]
pub struct TestDatabase {
    path: PathBuf,
    keep: bool,
}

impl TestDatabase {
    /// The SQLite file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A connection to it that holds D1's rules: its limits, defensive mode, foreign
    /// keys on, and its authorizer (statements D1 refuses are refused here too).
    pub fn connect(&self) -> anyhow::Result<rusqlite::Connection> {
        let conn = rusqlite::Connection::open(&self.path)
            .map_err(|e| failed!("cannot open {}: {e}", self.path.display()))?;
        conn.execute_batch("PRAGMA foreign_keys = ON;")?;
        d1_rules::apply_limits(&conn)?;
        d1_rules::set_authorizer(&conn, true);
        Ok(conn)
    }

    /// Keeps the file after the test, and returns its path.
    pub fn keep(mut self) -> PathBuf {
        self.keep = true;
        self.path.clone()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let keep_failed = std::thread::panicking()
            && std::env::var(KEEP_FAILED).is_ok_and(|v| !v.is_empty() && v != "0");
        if keep_failed {
            eprintln!(
                "{KEEP_FAILED}: kept the failed test's database at {}",
                self.path.display()
            );
        }
        if !self.keep && !keep_failed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Runs `f` on `conn` as one D1 request: one transaction, committed when `f` returns
/// `Ok` and rolled back otherwise, as D1 runs a batch. D1 refuses `BEGIN` and `SAVEPOINT`
/// in SQL (the connection from [`TestDatabase::connect`] does too), so a data layer that
/// needs several statements to stand or fall together leaves the transaction to its
/// caller: `db.batch()` in a Worker, this in a test.
pub fn request<T, E>(
    conn: &rusqlite::Connection,
    f: impl FnOnce(&rusqlite::Connection) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<rusqlite::Error>,
{
    // Only the request's own BEGIN and COMMIT pass the authorizer.
    let unguarded = |sql: &str| {
        d1_rules::set_authorizer(conn, false);
        let done = conn.execute_batch(sql);
        d1_rules::set_authorizer(conn, true);
        done
    };
    unguarded("BEGIN")?;
    match f(conn) {
        Ok(v) => match unguarded("COMMIT") {
            Ok(()) => Ok(v),
            Err(e) => {
                let _ = unguarded("ROLLBACK");
                Err(e.into())
            }
        },
        Err(e) => {
            let _ = unguarded("ROLLBACK");
            Err(e)
        }
    }
}

/// Builds the template of these inputs through wrangler, in a scratch local D1 beside
/// the workspace: one `wrangler d1 execute --local --file` with every migration, its
/// tracking row and checksum, the seed files, and the xtask's lock table, as a reset
/// makes it.
fn build(
    project: &Project,
    target: &Target,
    chosen: &[&Migration],
    seeds: &[SeedFile],
    wrangler: Wrangler,
    key: &str,
) -> anyhow::Result<PathBuf> {
    let root = project
        .scratch_dir()
        .join(format!("test-template-{}-{key}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).map_err(|e| failed!("cannot create {}: {e}", root.display()))?;
    let result = (|| {
        let mut db = Local::scratch(&root, "test-template", target, wrangler)?;
        let table = &target.db.migrations_table;
        let mut sql = crate::d1::batch_sql(table, chosen, &Extras::default());
        sql.push_str(&joined_sql(seeds));
        sql.push_str(&crate::d1::lock_release_sql(table, &[]));
        crate::d1::ops::execute(&mut db, &sql)?
            .map_err(|e| failed!("building the test template through wrangler failed: {e}"))?;
        let file = db.local_file().ok_or_else(|| {
            failed!(
                "wrangler's local database file was not found under {}",
                root.display()
            )
        })?;
        template::save(project, key, &file)
    })();
    let _ = std::fs::remove_dir_all(&root);
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;

    fn template(dir: &TempDir) -> TestDatabases {
        let path = dir.path().join("template.sqlite");
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute_batch(
                "CREATE TABLE parents (id INTEGER PRIMARY KEY);
                 CREATE TABLE children (id INTEGER PRIMARY KEY, parent INTEGER NOT NULL REFERENCES parents(id));
                 INSERT INTO parents VALUES (1);",
            )
            .unwrap();
        TestDatabases::from_file(path)
    }

    #[test]
    fn copies_are_private_hold_d1_rules_and_go_away() {
        let dir = TempDir::new("testing-copies");
        let dbs = template(&dir);
        let a = dbs.fresh().unwrap();
        let b = dbs.fresh().unwrap();
        let (ca, cb) = (a.connect().unwrap(), b.connect().unwrap());
        ca.execute("DELETE FROM parents", []).unwrap();
        let n = |c: &rusqlite::Connection| -> i64 {
            c.query_row("SELECT count(*) FROM parents", [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!((n(&ca), n(&cb)), (0, 1));
        // Foreign keys on, BEGIN refused, a request all or nothing.
        assert!(cb
            .execute("INSERT INTO children VALUES (1, 42)", [])
            .is_err());
        assert!(cb.execute_batch("BEGIN").is_err());
        let failed: Result<(), rusqlite::Error> = request(&cb, |c| {
            c.execute("INSERT INTO parents VALUES (2)", [])?;
            c.execute("INSERT INTO children VALUES (1, 42)", [])?;
            Ok(())
        });
        assert!(failed.is_err());
        assert_eq!(n(&cb), 1, "the failed request left nothing behind");
        request(&cb, |c| {
            c.execute("INSERT INTO parents VALUES (2)", []).map(|_| ())
        })
        .unwrap();
        assert_eq!(n(&cb), 2);
        let path = a.path().to_path_buf();
        drop((ca, a));
        assert!(!path.exists());
        let kept = b.keep();
        assert!(kept.exists());
        let _ = std::fs::remove_file(kept);
    }

    #[test]
    fn a_failing_tests_database_is_kept_when_asked() {
        let dir = TempDir::new("testing-keep");
        let dbs = template(&dir);
        // Only this test reads the variable in this process.
        std::env::set_var(KEEP_FAILED, "1");
        let path = std::thread::scope(|s| {
            s.spawn(|| {
                let db = dbs.fresh().unwrap();
                let path = db.path().to_path_buf();
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
                    let _db = db;
                    panic!("a failing test");
                }))
                .unwrap_err();
                path
            })
            .join()
            .unwrap()
        });
        std::env::remove_var(KEEP_FAILED);
        assert!(path.exists(), "kept for inspection");
        let _ = std::fs::remove_file(path);
    }
}
