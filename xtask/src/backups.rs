//! The backup index: one JSON line per restore point or backup, appended, never rewritten.

use std::io::Write;
use std::path::PathBuf;

use serde_json::{json, Value};

use crate::exit::failed;
use crate::project::Project;
use crate::target::Target;

pub fn index_path(project: &Project) -> PathBuf {
    project.root.join("backups").join("index.jsonl")
}

/// A new id: UTC time plus a few hex digits from the clock and process, sortable by time.
pub fn new_id(now: i64) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let stamp = crate::time::format_utc(now)
        .replace(['-', ':'], "")
        .replace(' ', "T");
    format!(
        "{stamp}Z-{:04x}",
        (nanos ^ std::process::id().rotate_left(16)) & 0xffff
    )
}

/// Records a restore point (a bookmark) taken before `reason`.
pub fn record_bookmark(
    project: &Project,
    target: &Target,
    bookmark: &str,
    applied: &[String],
    reason: &str,
) -> anyhow::Result<String> {
    let now = crate::time::unix_now();
    let id = new_id(now);
    let entry = json!({
        "id": id,
        "env": target.env.name(),
        "database": target.db.label(),
        "binding": target.db.binding,
        "database_id": target.db.id,
        "created_at": crate::time::format_utc(now),
        "kind": "bookmark",
        "bookmark": bookmark,
        "migrations_applied": applied,
        "reason": reason,
    });
    append(project, &entry)?;
    Ok(id)
}

fn append(project: &Project, entry: &Value) -> anyhow::Result<()> {
    let path = index_path(project);
    let dir = path.parent().expect("index is inside backups/");
    create_private_dir(dir)?;
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(&path)
        .map_err(|e| failed!("cannot open the backup index {}: {e}", path.display()))?;
    // One write per line: appends from concurrent runs do not interleave.
    let line = format!("{}\n", crate::ui::redact(&entry.to_string()));
    file.write_all(line.as_bytes())
        .map_err(|e| failed!("cannot write the backup index {}: {e}", path.display()))
}

fn create_private_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .map_err(|e| failed!("cannot create {}: {e}", dir.display()))
}

/// Appends `bookmark=<id>` to `$GITHUB_OUTPUT` when a workflow set it.
pub fn github_output(bookmark: &str) -> anyhow::Result<()> {
    let Some(path) = std::env::var_os("GITHUB_OUTPUT").filter(|p| !p.is_empty()) else {
        return Ok(());
    };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| {
            failed!(
                "cannot append to GITHUB_OUTPUT ({}): {e}",
                PathBuf::from(&path).display()
            )
        })?;
    writeln!(file, "bookmark={bookmark}").map_err(|e| failed!("cannot write GITHUB_OUTPUT: {e}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_sort_by_time() {
        let a = super::new_id(1_763_770_768);
        let b = super::new_id(1_763_770_769);
        assert!(a.starts_with("20251122T001928Z-"), "{a}");
        assert!(a < b);
    }
}
