//! The backup index and restore points: every backup and every restore point a command
//! takes gets one JSON line in `backups/index.jsonl`, appended, never rewritten. Backup
//! files are created readable by the owner only and never overwrite anything.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::d1::{Database, RestorePoint, State};
use crate::exit::{failed, refused, usage};
use crate::migrations::sha256_file;
use crate::workspace::project::Project;
use crate::workspace::target::{Env, Target};
use crate::{ui, workspace::Ctx};

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
    /// For the point a restore takes of the state it replaces: the index entry it
    /// restores (when it restores one), so that `--last` can tell a repeat.
    pub(crate) restoring: Option<String>,
    /// Set (from a later `{"completed": id}` line) when the change this point was taken
    /// for finished.
    pub(crate) completed: bool,
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
            restoring: None,
            completed: false,
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
            "restoring": self.restoring,
            "completed": self.completed,
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
            restoring: s("restoring"),
            completed: false,
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
    project.backups.clone()
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
    append_line(
        project,
        &ui::redact(&entry.to_json(&project.root).to_string()),
    )
}

/// Appends one line to the index, whole or not at all: a torn tail left by an earlier
/// crash or full disk is set aside first; the line goes in one write; a failed write is
/// cut back off (so no half line stays); and the line is read back before the caller
/// goes on to print anything that refers to it.
fn append_line(project: &Project, text: &str) -> anyhow::Result<()> {
    append_to(project, &index_path(project), "the backup index", text)
}

/// `append_line` for any JSON-lines file of the backups folder (the index, the deploy
/// records).
pub(crate) fn append_to(
    project: &Project,
    path: &Path,
    what: &str,
    text: &str,
) -> anyhow::Result<()> {
    let path = path.to_path_buf();
    create_private_dir(&backups_dir(project))?;
    set_aside_torn_tail(&path);
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(&path)
        .map_err(|e| failed!("cannot open {what} {}: {e}", path.display()))?;
    let before = file.metadata().map(|m| m.len()).ok();
    // One write per line: appends from concurrent runs do not interleave.
    let line = format!("{text}\n");
    if let Err(e) = file
        .write_all(line.as_bytes())
        .and_then(|()| file.sync_data())
    {
        if let Some(len) = before {
            let _ = file.set_len(len);
        }
        return Err(failed!(
            "cannot write {what} {} ({e}; a full disk?): nothing was recorded; free space and run again",
            path.display()
        ));
    }
    // Ours is at or after where the file ended before the write (another run may have
    // appended after it): only that tail is searched.
    let written = read_index(&path).is_some_and(|all| {
        let tail = &all[before.map_or(0, |b| (b as usize).min(all.len()))..];
        contains(tail, line.as_bytes())
    });
    if !written {
        return Err(failed!(
            "{what} {} does not hold the line just written: nothing can refer to it",
            path.display()
        ));
    }
    Ok(())
}

/// The index's bytes, if it is a regular file (a link to a device or a pipe is never
/// read: it could be endless or block).
pub(crate) fn read_index(path: &Path) -> Option<Vec<u8>> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() {
        ui::say(format!(
            "warning: {} is not a regular file; it is not read",
            path.display()
        ));
        return None;
    }
    std::fs::read(path).ok()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// An index whose last line has no line end was cut short (a crash or a full disk during
/// a write): that tail is moved to `index.jsonl.torn` (appended, never dropped), the index
/// cut back to its last whole line, and the user told.
pub(crate) fn set_aside_torn_tail(path: &Path) {
    let Some(all) = read_index(path) else {
        return;
    };
    if all.is_empty() || all.ends_with(b"\n") {
        return;
    }
    let keep = all.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let torn = &all[keep..];
    let side = path.with_extension("jsonl.torn");
    let saved = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&side)
        .and_then(|mut f| {
            f.write_all(torn)?;
            f.write_all(b"\n")
        });
    if saved.is_err() {
        ui::say(format!(
            "warning: the last line of {} was cut short and could not be set aside in {}: left in place",
            path.display(),
            side.display()
        ));
        return;
    }
    let cut = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| f.set_len(keep as u64));
    ui::say(format!(
        "warning: the last line of {} was cut short (a crash or a full disk while it was written); \
         it was set aside in {}{}",
        path.display(),
        side.display(),
        if cut.is_ok() { "" } else { " (but the index could not be cut back)" }
    ));
}

/// Every entry of the index, oldest first; lines that do not parse are skipped. A
/// `{"completed": id, "previous_bookmark": b}` line marks the change of entry `id` as
/// finished (and, after a Time Travel restore, replaces its bookmark by D1's own
/// `previous_bookmark`: the exact moment before the restore).
pub(crate) fn entries(project: &Project) -> Vec<Entry> {
    let path = index_path(project);
    set_aside_torn_tail(&path);
    let text = read_index(&path).unwrap_or_default();
    let mut values: Vec<Value> = Vec::new();
    for (n, line) in text.split(|b| *b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<Value>(line) {
            Ok(v)
                if v.get("completed").is_some()
                    || Entry::from_json(&v, &project.root).is_some() =>
            {
                values.push(v)
            }
            _ => ui::say(format!(
                "warning: line {} of {} cannot be read as a backup index entry; it is skipped \
                 (left in the file)",
                n + 1,
                path.display()
            )),
        }
    }
    let mut out: Vec<Entry> = Vec::new();
    for v in values {
        if let Some(id) = v["completed"].as_str() {
            if let Some(e) = out.iter_mut().find(|e| e.id == id) {
                e.completed = true;
                if let Some(b) = v["previous_bookmark"].as_str() {
                    e.bookmark = Some(b.to_string());
                }
            }
            continue;
        }
        if let Some(e) = Entry::from_json(&v, &project.root) {
            out.push(e);
        }
    }
    out
}

/// Appends the line that marks entry `id`'s change as finished.
pub(crate) fn record_completed(
    project: &Project,
    id: &str,
    previous_bookmark: Option<&str>,
) -> anyhow::Result<()> {
    let line = json!({"completed": id, "previous_bookmark": previous_bookmark});
    append_line(project, &line.to_string())
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
        restoring: None,
        completed: false,
        migrations_applied: Vec::new(),
        reason: "named on the command line".into(),
    })
}

/// What `db-restore --last` picks: `candidate`, unless `already` (the newest finished
/// restore since it) went to that very entry, and then nothing is to be done.
pub(crate) struct Last {
    pub(crate) candidate: Entry,
    pub(crate) already: Option<Entry>,
}

/// `--last`: the newest restore point or backup of `target` taken before a change that is
/// not itself a restore (the points restores take are skipped: returning to one would
/// undo the restore). When the newest finished restore since then went to that very
/// entry, the database is already there and `--last` is a no-op.
pub(crate) fn last(project: &Project, target: &Target) -> anyhow::Result<Last> {
    let all: Vec<Entry> = entries(project)
        .into_iter()
        .filter(|e| e.belongs_to(target))
        .collect();
    let Some(at) = all.iter().rposition(|e| !is_restore_point(e)) else {
        return Err(no_last(project, target));
    };
    let candidate = all[at].clone();
    let already = all[at + 1..]
        .iter()
        .rev()
        .find(|e| is_restore_point(e) && e.completed)
        .filter(|r| r.restoring.as_deref() == Some(candidate.id.as_str()))
        .cloned();
    Ok(Last { candidate, already })
}

/// The point a restore takes of the state it replaces.
pub(crate) fn is_restore_point(e: &Entry) -> bool {
    e.reason == RESTORE_REASON
}

/// The reason recorded for the point `db-restore` takes.
pub(crate) const RESTORE_REASON: &str = "before db-restore";

fn no_last(project: &Project, target: &Target) -> anyhow::Error {
    usage!(
        "no restore point or backup of {} {} in {} taken before a change other than a restore: \
         nothing for --last to restore",
        target.env,
        target.db.label(),
        index_path(project).display()
    )
}

/// A backup file must still be what was recorded: present, same size, same SHA-256.
pub(crate) fn verify(entry: &Entry) -> anyhow::Result<()> {
    let Some(file) = &entry.file else {
        return Ok(());
    };
    let (_, actual) = sha256_file(file).map_err(|e| {
        refused!(
            "backup {}: cannot read {} ({e}); nothing was changed",
            entry.id,
            file.display()
        )
    })?;
    if let Some(expected) = &entry.sha256 {
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

/// Moves a backup that failed its check to `backups/rejected/`, under the name it would
/// have had: kept for inspection, never in the index.
pub(crate) fn set_apart(project: &Project, scratch: &Path, dest: &Path) -> Option<PathBuf> {
    let dir = backups_dir(project).join("rejected");
    create_private_dir(&dir).ok()?;
    let name = dest.file_name()?;
    let to = dir.join(name);
    std::fs::rename(scratch, &to).ok()?;
    Some(to)
}

/// A private scratch path for a backup being written (inside `backups/`, mode 0700).
pub(crate) fn scratch_file(project: &Project, ext: &str) -> anyhow::Result<Scratch> {
    let dir = backups_dir(project).join(".partial");
    create_private_dir(&dir)?;
    crate::workspace::project::remove_leftovers(&dir);
    crate::workspace::project::remove_leftovers(&project.scratch_dir());
    let path = dir.join(format!(
        "{}-{}.{ext}",
        std::process::id(),
        new_id(crate::time::unix_now())
    ));
    let _ = std::fs::remove_file(&path);
    Ok(Scratch { path: Some(path) })
}

/// A scratch file, removed when dropped (on every exit path: an error, a refusal) unless
/// it was published or handed on with `into_path`.
pub(crate) struct Scratch {
    path: Option<PathBuf>,
}

impl Scratch {
    /// The path, no longer removed on drop: the caller owns it now.
    pub(crate) fn into_path(mut self) -> PathBuf {
        self.path.take().unwrap_or_default()
    }
}

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        self.path.as_deref().unwrap_or(Path::new(""))
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        self
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(p) = &self.path {
            let _ = std::fs::remove_file(p);
        }
    }
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
    sha256_file(dest).map_err(|e| failed!("cannot read back {}: {e}", dest.display()))
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
    command_line(ctx, target, "db-restore", how)
}

/// `<prefix> <command> [--env ..] [--database ..] [--config ..] [--yes] <how>`: a command
/// line of the xtask for this target, as the user runs it.
pub(crate) fn command_line(ctx: &Ctx, target: &Target, command: &str, how: &str) -> String {
    let mut cmd = format!("{} {command}", ctx.settings.command_prefix);
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
    if !how.is_empty() {
        cmd.push(' ');
        cmd.push_str(how);
    }
    cmd
}

/// A restore point taken but not recorded yet: the guarded path takes it under the lock,
/// once it knows something is to be done, and records it at once.
pub(crate) struct Taken {
    point: RestorePoint,
    /// The snapshot's scratch file, removed if the point is never published.
    _scratch: Scratch,
}

pub(crate) fn take(ctx: &Ctx, db: &mut dyn Database) -> anyhow::Result<Taken> {
    let scratch = scratch_file(&ctx.project, "sqlite")?;
    Ok(Taken {
        point: db.restore_point(&scratch)?,
        _scratch: scratch,
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
    restoring: Option<&str>,
) -> anyhow::Result<Captured> {
    let point = taken.point;
    let captured = match &point {
        RestorePoint::Bookmark(b) => {
            let mut entry = Entry::new(target, Kind::Bookmark, state, reason);
            entry.restoring = restoring.map(String::from);
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
            entry.restoring = restoring.map(String::from);
            entry.file = Some(dest.clone());
            entry.size = Some(size);
            entry.sha256 = Some(sha);
            if let Err(e) = record(&ctx.project, &entry) {
                // A snapshot the index does not know would only confuse: it goes too.
                let _ = std::fs::remove_file(&dest);
                return Err(e);
            }
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
