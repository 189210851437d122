//! Helpers for unit tests: a temporary directory removed on drop (no tempfile crate).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new(tag: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("xtask-unit-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

thread_local! {
    static EVENTS: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
    static ANSWER: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Notes what happened, in order, for a test of this thread to read.
pub(crate) fn event(what: &str) {
    EVENTS.with(|e| e.borrow_mut().push(what.to_string()));
}

/// What happened so far on this thread; the log is emptied.
pub(crate) fn events() -> Vec<String> {
    EVENTS.with(|e| std::mem::take(&mut *e.borrow_mut()))
}

/// Makes this thread's confirmation prompts see a terminal that answers `answer`.
pub(crate) fn answer_prompts(answer: &str) {
    ANSWER.with(|a| *a.borrow_mut() = Some(answer.to_string()));
}

/// The answer set by `answer_prompts`, if any.
pub(crate) fn prompt_answer() -> Option<String> {
    ANSWER.with(|a| a.borrow().clone())
}

/// A workspace in `dir` with the sample's shape: one database, `local`, `staging` and a
/// protected `production`, and its context for `flags` (`global` flags only).
pub(crate) fn ctx(dir: &Path, global: crate::workspace::Global) -> crate::workspace::Ctx {
    let config_path = dir.join("wrangler.jsonc");
    std::fs::write(
        &config_path,
        r#"{
  "name": "unit",
  "d1_databases": [{ "binding": "DB", "database_name": "unit-db", "database_id": "00000000-0000-4000-8000-000000000001" }],
  "env": {
    "staging": { "d1_databases": [{ "binding": "DB", "database_name": "unit-staging", "database_id": "00000000-0000-4000-8000-000000000002" }] },
    "production": { "d1_databases": [{ "binding": "DB", "database_name": "unit-prod", "database_id": "00000000-0000-4000-8000-000000000003" }] }
  }
}
"#,
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("migrations")).unwrap();
    let project = crate::workspace::project::Project::at(dir.to_path_buf(), config_path);
    crate::workspace::Ctx {
        global,
        cwd: dir.to_path_buf(),
        config: crate::workspace::config::Config::load(&project).unwrap(),
        settings: crate::workspace::settings::Settings::default(),
        project,
    }
}
