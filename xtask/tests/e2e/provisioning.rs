//! End-to-end: how the xtask finds, installs and checks wrangler and its Node.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::support::{repo_root, Workspace};

/// PATH without any folder that holds a wrangler, so that only the project's own counts.
fn path_without_wrangler() -> String {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .filter(|dir| !dir.join("wrangler").exists())
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(":")
}

fn script(path: &Path, body: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn a_fresh_workspace_installs_wrangler_and_node_itself() {
    let ws = Workspace::new("fresh");
    for f in ["package.json", "package-lock.json"] {
        std::fs::copy(repo_root().join(f), ws.dir.join(f)).unwrap();
    }
    ws.migration(
        "0001_users.sql",
        "CREATE TABLE users (id INTEGER PRIMARY KEY);\n",
    );
    let path = path_without_wrangler();
    let run = ws.xtask_with(&["db-migrate"], &[("PATH", &path)]);
    run.expect(0, &["running `npm ci`", "applied 1 migration"]);
    let node = ws.dir.join("node_modules/.bin/node");
    let version = std::process::Command::new(&node)
        .arg("--version")
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&version.stdout).starts_with("v22."),
        "Node 22 from npm"
    );
    assert_eq!(ws.applied_names(), vec!["0001_users.sql"]);
    // Installed once: the next run finds it and does not run npm again.
    let again = ws.xtask_with(&["db-migrate"], &[("PATH", &path)]);
    again.expect(0, &["nothing to apply"]);
    assert!(!again.stderr.contains("npm ci"));
}

#[test]
fn too_old_node_is_a_clear_error() {
    let ws = Workspace::new("old-node");
    ws.migration(
        "0001_users.sql",
        "CREATE TABLE users (id INTEGER PRIMARY KEY);\n",
    );
    script(&ws.dir.join("node_modules/.bin/node"), "echo v20.11.0");
    script(
        &ws.dir.join("node_modules/.bin/wrangler"),
        "echo should not run; exit 9",
    );
    let run = ws.xtask_with(&["db-migrate"], &[("PATH", &path_without_wrangler())]);
    run.expect(2, &["needs Node.js >= 22.12", "v20.11.0", "npm ci"]);
    assert!(!run.stderr.contains("should not run"));
}

#[test]
fn missing_npm_says_what_to_install() {
    let ws = Workspace::new("no-npm");
    ws.migration(
        "0001_users.sql",
        "CREATE TABLE users (id INTEGER PRIMARY KEY);\n",
    );
    std::fs::copy(
        repo_root().join("package-lock.json"),
        ws.dir.join("package-lock.json"),
    )
    .unwrap();
    let empty = ws.dir.join("empty-bin");
    std::fs::create_dir_all(&empty).unwrap();
    let run = ws.xtask_with(&["db-migrate"], &[("PATH", empty.to_str().unwrap())]);
    run.expect(2, &["npm is not on PATH", "install Node.js"]);
}

#[test]
fn no_wrangler_and_no_lock_file() {
    let ws = Workspace::new("no-lock");
    ws.migration(
        "0001_users.sql",
        "CREATE TABLE users (id INTEGER PRIMARY KEY);\n",
    );
    let run = ws.xtask_with(&["db-migrate"], &[("PATH", &path_without_wrangler())]);
    run.expect(2, &["wrangler not found", "package-lock.json"]);
    // db-status needs no wrangler at all on local.
    ws.xtask_with(&["db-status"], &[("PATH", "/nonexistent")])
        .expect(0, &["[ ] 0001_users.sql"]);
}

#[test]
fn wrangler_env_must_name_a_file() {
    let ws = Workspace::new("bad-env");
    ws.migration(
        "0001_users.sql",
        "CREATE TABLE users (id INTEGER PRIMARY KEY);\n",
    );
    ws.xtask_with(&["db-migrate"], &[("WRANGLER", "/nonexistent/wrangler")])
        .expect(2, &["WRANGLER is set to /nonexistent/wrangler"]);
}
