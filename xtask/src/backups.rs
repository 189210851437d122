//! The backup index and restore points: every backup and every restore point a command
//! takes gets one JSON line in `backups/index.jsonl`, appended, never rewritten. Backup
//! files are created readable by the owner only and never overwrite anything.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::d1::{Database, RestorePoint, State};
use crate::exit::{failed, refused, usage};
use crate::migrations::sha256_hex;
use crate::project::Project;
use crate::target::{Env, Target};
use crate::{ui, Ctx};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A Time Travel bookmark (remote); no file.
    Bookmark,
    /// A copy of the local SQLite file, taken with SQLite's online backup API.
    Snapshot,
    /// An SQL export (remote `wrangler d1 export`), with the bookmark it was taken at.
    Export,
}

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Bookmark => "bookmark",
            Kind::Snapshot => "snapshot",
            Kind::Export => "export",
        }
    }
    fn parse(s: &str) -> Option<Kind> {
        match s {
            "bookmark" => Some(Kind::Bookmark),
            "snapshot" => Some(Kind::Snapshot),
            "export" => Some(Kind::Export),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Entry {
    pub(crate) id: String,
    pub(crate) env: String,
    pub(crate) database: String,
    pub(crate) binding: String,
    pub(crate) database_id: Option<String>,
    pub(crate) created_at: String,
    pub(crate) kind: Kind,
    pub(crate) bookmark: Option<String>,
    /// Where the file is (absolute); stored relative to the workspace when inside it.
    pub(crate) file: Option<PathBuf>,
    pub(crate) size: Option<u64>,
    pub(crate) sha256: Option<String>,
    pub(crate) migrations_applied: Vec<String>,
    pub(crate) reason: String,
}

impl Entry {
    pub(crate) fn new(target: &Target, kind: Kind, applied: &State, reason: &str) -> Entry {
        let now = crate::time::unix_now();
        Entry {
            id: new_id(now),
            env: target.env.name().to_string(),
            database: target.db.label().to_string(),
            binding: target.db.binding.clone(),
            database_id: target.db.id.clone(),
            created_at: crate::time::format_utc(now),
            kind,
            bookmark: None,
            file: None,
            size: None,
            sha256: None,
            migrations_applied: applied.applied.iter().map(|r| r.name.clone()).collect(),
            reason: reason.to_string(),
        }
    }

    pub(crate) fn to_json(&self, root: &Path) -> Value {
        json!({
            "id": self.id,
            "env": self.env,
            "database": self.database,
            "binding": self.binding,
            "database_id": self.database_id,
            "created_at": self.created_at,
            "kind": self.kind.name(),
            "bookmark": self.bookmark,
            "file": self.file.as_ref().map(|f| f.strip_prefix(root).unwrap_or(f).display().to_string()),
            "size": self.size,
            "sha256": self.sha256,
            "migrations_applied": self.migrations_applied,
            "reason": self.reason,
        })
    }

    fn from_json(v: &Value, root: &Path) -> Option<Entry> {
        let s = |k: &str| v[k].as_str().map(String::from);
        Some(Entry {
            id: s("id")?,
            env: s("env")?,
            database: s("database")?,
            binding: s("binding").unwrap_or_default(),
            database_id: s("database_id"),
            created_at: s("created_at").unwrap_or_default(),
            kind: Kind::parse(v["kind"].as_str()?)?,
            bookmark: s("bookmark"),
            file: s("file").map(|f| root.join(f)),
            size: v["size"].as_u64(),
            sha256: s("sha256"),
            migrations_applied: v["migrations_applied"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|m| m.as_str().map(String::from))
                .collect(),
            reason: s("reason").unwrap_or_default(),
        })
    }

    pub(crate) fn belongs_to(&self, target: &Target) -> bool {
        self.env == target.env.name()
            && (self.database == target.db.label() || self.binding == target.db.binding)
    }

    /// One line for listings: id, env, database, time (in `zone`, UTC beside it), what,
    /// size, migrations.
    pub(crate) fn describe(&self, root: &Path, zone: &jiff::tz::TimeZone) -> String {
        let what = match (&self.bookmark, &self.file) {
            (Some(b), Some(f)) => format!(
                "bookmark {b} + {}",
                f.strip_prefix(root).unwrap_or(f).display()
            ),
            (Some(b), None) => format!("bookmark {b}"),
            (None, Some(f)) => f.strip_prefix(root).unwrap_or(f).display().to_string(),
            (None, None) => "-".into(),
        };
        let size = self.size.map_or(String::new(), |s| format!(", {s} bytes"));
        let newest = self
            .migrations_applied
            .last()
            .map_or("none".to_string(), |m| m.clone());
        let n = self.migrations_applied.len();
        let when = match crate::time::parse_utc(&self.created_at) {
            Some(secs) => format!(
                "{} ({} UTC)",
                crate::time::format_in(secs, zone),
                self.created_at
            ),
            None => format!("{} UTC", self.created_at),
        };
        format!(
            "{}  {} {}  {when}  {}{size}  ({n} migration{}, newest {newest}; {})",
            self.id,
            self.env,
            self.database,
            what,
            if n == 1 { "" } else { "s" },
            self.reason
        )
    }
}

pub(crate) fn backups_dir(project: &Project) -> PathBuf {
    project.root.join("backups")
}

pub(crate) fn index_path(project: &Project) -> PathBuf {
    backups_dir(project).join("index.jsonl")
}

/// A new id: UTC time plus a few hex digits from the clock and process, sortable by time.
pub(crate) fn new_id(now: i64) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let stamp = crate::time::format_compact(now);
    format!(
        "{stamp}-{:04x}",
        (nanos ^ std::process::id().rotate_left(16)) & 0xffff
    )
}

pub(crate) fn record(project: &Project, entry: &Entry) -> anyhow::Result<()> {
    let path = index_path(project);
    create_private_dir(&backups_dir(project))?;
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
    let line = format!(
        "{}\n",
        ui::redact(&entry.to_json(&project.root).to_string())
    );
    file.write_all(line.as_bytes())
        .map_err(|e| failed!("cannot write the backup index {}: {e}", path.display()))
}

/// Every entry of the index, oldest first; lines that do not parse are skipped.
pub(crate) fn entries(project: &Project) -> Vec<Entry> {
    std::fs::read_to_string(index_path(project))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| Entry::from_json(&v, &project.root))
        .collect()
}

/// The entry `key` names: an id from the index, or the path of a backup file. A file the
/// index does not know is accepted as the user named it, without a checksum to verify.
pub(crate) fn find(
    project: &Project,
    target: &Target,
    key: &str,
    cwd: &Path,
) -> anyhow::Result<Entry> {
    let all = entries(project);
    if let Some(e) = all.iter().find(|e| e.id == key) {
        if !e.belongs_to(target) {
            return Err(usage!(
                "backup {key} is of {} {}, not of {} {}: pass the matching --env/--database",
                e.env,
                e.database,
                target.env,
                target.db.label()
            ));
        }
        return Ok(e.clone());
    }
    let path = cwd.join(key);
    if !path.is_file() {
        return Err(usage!(
            "no backup `{key}`: not an id in {} and not a file; `cargo xtask db-backup --list` shows them",
            index_path(project).display()
        ));
    }
    let canonical = path.canonicalize().unwrap_or(path.clone());
    if let Some(e) = all
        .iter()
        .find(|e| e.file.as_ref().and_then(|f| f.canonicalize().ok()).as_ref() == Some(&canonical))
    {
        return Ok(e.clone());
    }
    let mut header = [0u8; 16];
    let is_sqlite = std::fs::File::open(&canonical)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut header))
        .is_ok()
        && &header == b"SQLite format 3\0";
    ui::say(format!(
        "note: {} is not in the backup index: there is no checksum to verify it against",
        canonical.display()
    ));
    Ok(Entry {
        id: "(unindexed)".into(),
        env: target.env.name().into(),
        database: target.db.label().into(),
        binding: target.db.binding.clone(),
        database_id: target.db.id.clone(),
        created_at: String::new(),
        kind: if is_sqlite {
            Kind::Snapshot
        } else {
            Kind::Export
        },
        bookmark: None,
        file: Some(canonical),
        size: None,
        sha256: None,
        migrations_applied: Vec::new(),
        reason: "named on the command line".into(),
    })
}

/// The newest restore point or backup of the target.
pub(crate) fn last(project: &Project, target: &Target) -> anyhow::Result<Entry> {
    entries(project)
        .into_iter()
        .rev()
        .find(|e| e.belongs_to(target))
        .ok_or_else(|| {
            usage!(
                "no restore point or backup of {} {} in {}: nothing for --last to restore",
                target.env,
                target.db.label(),
                index_path(project).display()
            )
        })
}

/// A backup file must still be what was recorded: present, same size, same SHA-256.
pub(crate) fn verify(entry: &Entry) -> anyhow::Result<()> {
    let Some(file) = &entry.file else {
        return Ok(());
    };
    let bytes = std::fs::read(file).map_err(|e| {
        refused!(
            "backup {}: cannot read {} ({e}); nothing was changed",
            entry.id,
            file.display()
        )
    })?;
    if let Some(expected) = &entry.sha256 {
        let actual = sha256_hex(&bytes);
        if &actual != expected {
            return Err(refused!(
                "backup {} has changed since it was taken: {} has SHA-256 {actual}, the index recorded {expected}; \
                 refusing to restore from it; nothing was changed",
                entry.id,
                file.display()
            ));
        }
    }
    Ok(())
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
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

/// A private scratch path for a backup being written (inside `backups/`, mode 0700).
pub(crate) fn scratch_file(project: &Project, ext: &str) -> anyhow::Result<PathBuf> {
    let dir = backups_dir(project).join(".partial");
    create_private_dir(&dir)?;
    let path = dir.join(format!(
        "{}-{}.{ext}",
        std::process::id(),
        new_id(crate::time::unix_now())
    ));
    let _ = std::fs::remove_file(&path);
    Ok(path)
}

/// `s` with every character but letters, digits, `-` and `_` replaced by `_`.
fn path_safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `backups/<env>/<database>-<UTC time>.<ext>`, with `-2`, `-3`... if that name is taken.
pub(crate) fn default_path(project: &Project, target: &Target, ext: &str) -> PathBuf {
    let stamp = crate::time::format_compact(crate::time::unix_now());
    // Names from the config never lead out of backups/: only safe characters reach a path.
    let label = path_safe(target.db.label());
    let env = path_safe(target.env.name());
    let dir = backups_dir(project).join(env);
    let mut path = dir.join(format!("{label}-{stamp}.{ext}"));
    let mut n = 2;
    while path.exists() {
        path = dir.join(format!("{label}-{stamp}-{n}.{ext}"));
        n += 1;
    }
    path
}

/// Moves a finished scratch file to `dest`, owner-only, never replacing an existing file
/// (a hard link fails if `dest` exists). Returns its size and SHA-256.
pub(crate) fn publish(scratch: &Path, dest: &Path) -> anyhow::Result<(u64, String)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(scratch, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| failed!("cannot restrict {}: {e}", scratch.display()))?;
    }
    if let Some(parent) = dest.parent() {
        if !parent.as_os_str().is_empty() && !parent.exists() {
            create_private_dir(parent)?;
        }
    }
    let linked = std::fs::hard_link(scratch, dest);
    let _ = std::fs::remove_file(scratch);
    linked.map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            usage!(
                "{} exists: backups never overwrite a file; name another --output",
                dest.display()
            )
        } else {
            failed!("cannot create {}: {e}", dest.display())
        }
    })?;
    let bytes =
        std::fs::read(dest).map_err(|e| failed!("cannot read back {}: {e}", dest.display()))?;
    Ok((bytes.len() as u64, sha256_hex(&bytes)))
}

/// A restore point as the user sees it: its index entry and how to go back to it.
pub(crate) struct Captured {
    pub(crate) point: RestorePoint,
    pub(crate) entry: Entry,
    /// `cargo xtask db-restore ...` that returns to it.
    pub(crate) undo: String,
    /// For bookmarks, the same through raw wrangler.
    pub(crate) undo_wrangler: Option<String>,
}

impl Captured {
    pub(crate) fn json(&self) -> Value {
        json!({
            "backup": self.entry.id,
            "kind": self.entry.kind.name(),
            "bookmark": self.entry.bookmark,
            "file": self.entry.file.as_ref().map(|f| f.display().to_string()),
            "undo": self.undo,
            "undo_wrangler": self.undo_wrangler,
        })
    }

    /// `\nto return to the state before this run: ...`, for messages.
    pub(crate) fn undo_line(&self) -> String {
        let mut line = format!("\nto return to the state before this run: {}", self.undo);
        if let Some(w) = &self.undo_wrangler {
            line.push_str(&format!("\n  (or with wrangler: {w})"));
        }
        line
    }
}

/// `cargo xtask db-restore ...` for this target, with the flags that chose it.
pub(crate) fn restore_command(ctx: &Ctx, target: &Target, how: &str) -> String {
    let mut cmd = String::from("cargo xtask db-restore");
    if let Env::Remote(name) = &target.env {
        cmd.push_str(&format!(" --env {name}"));
    }
    if let Some(db) = &ctx.global.database {
        cmd.push_str(&format!(" --database {db}"));
    }
    if let Some(cfg) = &ctx.global.config {
        cmd.push_str(&format!(" --config {}", cfg.display()));
    }
    if target.protected {
        cmd.push_str(" --yes");
    }
    cmd.push(' ');
    cmd.push_str(how);
    cmd
}

/// A restore point taken but not recorded yet: commands take it before the lock (a point
/// taken under the lock would bring the lock row back on restore), and record it once
/// they know they change something.
pub(crate) struct Taken {
    point: RestorePoint,
}

impl Taken {
    /// Drops a point that turned out not to be needed (nothing to do).
    pub(crate) fn discard(self) {
        if let RestorePoint::Snapshot(p) = &self.point {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Drops a restore point that turned out not to be needed, if one was taken.
pub(crate) fn discard(taken: Option<Taken>) {
    if let Some(t) = taken {
        t.discard();
    }
}

pub(crate) fn take(ctx: &Ctx, db: &mut dyn Database) -> anyhow::Result<Taken> {
    let scratch = scratch_file(&ctx.project, "sqlite")?;
    Ok(Taken {
        point: db.restore_point(&scratch)?,
    })
}

/// Records a taken restore point in the index (`state` says which migrations it holds)
/// and tells the user, and a GitHub workflow for bookmarks, how to return to it.
pub(crate) fn record_point(
    ctx: &Ctx,
    target: &Target,
    taken: Taken,
    state: &State,
    reason: &str,
) -> anyhow::Result<Captured> {
    let point = taken.point;
    let captured = match &point {
        RestorePoint::Bookmark(b) => {
            let mut entry = Entry::new(target, Kind::Bookmark, state, reason);
            entry.bookmark = Some(b.clone());
            record(&ctx.project, &entry)?;
            github_output(b)?;
            ui::say(format!(
                "restore point: Time Travel bookmark {b} (backup index {})",
                entry.id
            ));
            Captured {
                undo: restore_command(ctx, target, &format!("--bookmark {b}")),
                undo_wrangler: Some(crate::d1::ops::undo_command(target, &point)),
                entry,
                point,
            }
        }
        RestorePoint::Snapshot(file) => {
            let dest = default_path(&ctx.project, target, "sqlite");
            let (size, sha) = publish(file, &dest)?;
            let mut entry = Entry::new(target, Kind::Snapshot, state, reason);
            entry.file = Some(dest.clone());
            entry.size = Some(size);
            entry.sha256 = Some(sha);
            record(&ctx.project, &entry)?;
            ui::say(format!(
                "restore point: snapshot {} (backup index {})",
                dest.strip_prefix(&ctx.project.root)
                    .unwrap_or(&dest)
                    .display(),
                entry.id
            ));
            Captured {
                undo: restore_command(ctx, target, &format!("--backup {}", entry.id)),
                undo_wrangler: None,
                point: RestorePoint::Snapshot(dest),
                entry,
            }
        }
    };
    Ok(captured)
}

/// Appends `bookmark=<id>` to `$GITHUB_OUTPUT` when a workflow set it.
pub(crate) fn github_output(bookmark: &str) -> anyhow::Result<()> {
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
    use super::*;

    #[test]
    fn ids_sort_by_time() {
        let a = new_id(1_763_770_768);
        let b = new_id(1_763_770_769);
        assert!(a.starts_with("20251122T001928Z-"), "{a}");
        assert!(a < b);
    }

    #[test]
    fn publish_never_overwrites_and_is_owner_only() {
        let dir = crate::testutil::TempDir::new("publish");
        let scratch = dir.path().join("s.part");
        std::fs::write(&scratch, b"abc").unwrap();
        let dest = dir.path().join("out/b.sql");
        let (size, sha) = publish(&scratch, &dest).unwrap();
        assert_eq!(
            (size, sha.as_str()),
            (
                3,
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
            )
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&dest).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        std::fs::write(&scratch, b"other").unwrap();
        let err = publish(&scratch, &dest).unwrap_err();
        assert!(err.to_string().contains("never overwrite"), "{err}");
        assert_eq!(std::fs::read(&dest).unwrap(), b"abc");
    }
}
