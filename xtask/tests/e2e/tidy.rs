//! Keeps the repository honest: aliases, README sections, the sample migrations, formatting.

use std::process::Command;

use crate::support::{repo_root, xtask_bin};

/// Command names as `cargo xtask --help` lists them.
fn commands() -> Vec<String> {
    let out = Command::new(xtask_bin()).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    help.lines()
        .skip_while(|l| !l.starts_with("commands:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect()
}

#[test]
fn every_command_has_an_alias_and_a_readme_section() {
    let config = std::fs::read_to_string(repo_root().join(".cargo/config.toml")).unwrap();
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let commands = commands();
    assert!(commands.len() >= 7, "{commands:?}");
    let mut missing = Vec::new();
    for name in &commands {
        let alias = format!("{name} = \"run --package xtask -- {name}\"");
        if name.starts_with("db-") && !config.contains(&alias) {
            missing.push(format!(".cargo/config.toml: add `{alias}` under [alias]"));
        }
        let tick = format!("`{name}`");
        if !readme
            .lines()
            .any(|l| l.starts_with("### ") && l.contains(&tick))
        {
            missing.push(format!("README.md: add a `### `{name}` section"));
        }
    }
    assert!(config.contains("xtask = \"run --package xtask --\""));
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

#[test]
fn sample_migrations_lint_clean() {
    let out = Command::new(xtask_bin())
        .args(["db-status", "--json"])
        .current_dir(repo_root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let problems = doc["problems"].as_array().unwrap();
    assert!(
        problems.is_empty(),
        "migrations/ has problems (run `cargo xtask db-status`): {problems:#?}"
    );
}

#[test]
fn readme_test_command_is_what_ci_runs() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let ci = std::fs::read_to_string(repo_root().join(".ci/run")).unwrap();
    let command = "cargo test --workspace";
    assert!(readme.contains(command), "README.md must name `{command}`");
    assert!(
        ci.lines().any(|l| l.trim() == command),
        ".ci/run must run `{command}` as written"
    );
}

#[test]
fn formatted() {
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["fmt", "--all", "--check"])
        .current_dir(repo_root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "run `cargo fmt --all`:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
