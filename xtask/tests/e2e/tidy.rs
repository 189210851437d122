//! Keeps the repository honest: aliases, a docs section per command, links that resolve,
//! a short README, the sample migrations, formatting.

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
fn every_command_has_an_alias_and_a_docs_section() {
    let config = std::fs::read_to_string(repo_root().join(".cargo/config.toml")).unwrap();
    // Every command has a `## `name`` section somewhere in docs/ (most in commands.md).
    let docs: String = std::fs::read_dir(repo_root().join("docs"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "md"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect();
    let commands = commands();
    assert!(commands.len() >= 7, "{commands:?}");
    let mut missing = Vec::new();
    for name in &commands {
        let alias = format!("{name} = \"run --package xtask -- {name}\"");
        if name.starts_with("db-") && !config.contains(&alias) {
            missing.push(format!(".cargo/config.toml: add `{alias}` under [alias]"));
        }
        let tick = format!("`{name}`");
        if !docs
            .lines()
            .any(|l| l.starts_with("## ") && l.contains(&tick))
        {
            missing.push(format!(
                "docs/: add a `## `{name}` section (docs/commands.md)"
            ));
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

/// The README's worked example runs as written: its `cargo xtask` and `echo` lines run in
/// a copy of the sample workspace, each exits as the block says (`# exit N`, else 0), and
/// every output line of the block that holds no path, time or elision is printed.
#[test]
fn the_readme_worked_example_runs_as_written() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let section = readme
        .split("## Worked example")
        .nth(1)
        .expect("README has a worked example");
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("the worked example is a ```sh block");
    let ws = crate::support::Workspace::sample("readme-example");
    ws.xtask(&["db-migrate"]).expect(0, &[]);
    // Each command with the output lines that follow it.
    let mut steps: Vec<(String, Vec<String>)> = Vec::new();
    for line in block.lines() {
        match line.strip_prefix("$ ") {
            Some(cmd) if cmd.starts_with("cargo xtask ") || cmd.starts_with("echo ") => {
                steps.push((cmd.to_string(), Vec::new()))
            }
            _ => steps
                .last_mut()
                .expect("the block starts with a command")
                .1
                .push(line.to_string()),
        }
    }
    assert!(steps.len() >= 4, "{steps:?}");
    for (cmd, output) in &steps {
        if let Some(rest) = cmd.strip_prefix("echo ") {
            let (text, file) = rest.rsplit_once(" >> ").expect("echo '...' >> file");
            let text = text.trim_matches('\'');
            let path = ws.dir.join(file);
            let mut old = std::fs::read_to_string(&path).unwrap_or_default();
            old.push_str(text);
            old.push('\n');
            std::fs::write(&path, old).unwrap();
            continue;
        }
        let args: Vec<&str> = cmd["cargo xtask ".len()..].split_whitespace().collect();
        let expected_exit = output
            .iter()
            .find_map(|l| l.split("# exit ").nth(1))
            .map_or(0, |n| n.trim().parse::<i32>().unwrap());
        let run = ws.xtask(&args);
        run.expect(expected_exit, &[]);
        let printed = format!("{}{}", run.stdout, run.stderr);
        for line in output {
            let line = line.split("# exit").next().unwrap().trim_end();
            let variable = ["…", "...", "/path", "2026", "$ "]
                .iter()
                .any(|v| line.contains(v));
            if !line.is_empty() && !variable {
                assert!(
                    printed.contains(line),
                    "`{cmd}` did not print `{line}`; it printed:\n{printed}"
                );
            }
        }
    }
}

/// GitHub's anchor for a heading: lower case, spaces to `-`, other punctuation dropped.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a Markdown file's headings (outside code blocks).
fn anchors(text: &str) -> Vec<String> {
    let mut fenced = false;
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with("```") {
            fenced = !fenced;
        } else if !fenced && line.starts_with('#') {
            out.push(slug(line.trim_start_matches('#')));
        }
    }
    out
}

/// The README stays what a newcomer reads in minutes: at most 250 lines, the two set-up
/// commands in its first 40.
#[test]
fn the_readme_is_short() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let n = readme.lines().count();
    assert!(n <= 250, "README.md has {n} lines; move detail into docs/");
    let head: Vec<&str> = readme.lines().take(40).collect();
    for command in ["cargo xtask db-migrate", "cargo test --workspace"] {
        assert!(
            head.iter().any(|l| l.starts_with(command)),
            "`{command}` is not in the README's first 40 lines"
        );
    }
}

/// Every relative link of the repository's Markdown resolves to a file inside it (a clone
/// has nothing beside it), and its `#anchor` to a heading of that file.
#[test]
fn markdown_links_stay_inside_the_repository() {
    let root = repo_root().canonicalize().unwrap();
    let mut files = vec![
        root.join("README.md"),
        root.join("RELIABILITY.md"),
        root.join("CONTRIBUTING.md"),
    ];
    if let Ok(entries) = std::fs::read_dir(root.join("docs")) {
        files.extend(entries.flatten().map(|e| e.path()));
    }
    let mut bad = Vec::new();
    for file in files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "md"))
    {
        let text = std::fs::read_to_string(file).unwrap();
        for piece in text.split("](").skip(1) {
            let link = piece.split(')').next().unwrap_or_default();
            let (target, anchor) = link.split_once('#').unwrap_or((link, ""));
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let resolved = if target.is_empty() {
                file.clone()
            } else {
                file.parent().unwrap().join(target)
            };
            let inside = resolved
                .canonicalize()
                .map(|p| p.starts_with(&root))
                .unwrap_or(false);
            if !inside {
                bad.push(format!("{}: {target}", file.display()));
                continue;
            }
            if !anchor.is_empty() && resolved.extension().is_some_and(|e| e == "md") {
                let there = std::fs::read_to_string(&resolved).unwrap_or_default();
                if !anchors(&there).iter().any(|a| a == anchor) {
                    bad.push(format!("{}: {link} (no such heading)", file.display()));
                }
            }
        }
        if text.contains("../shared") {
            bad.push(format!("{}: mentions ../shared", file.display()));
        }
    }
    assert!(
        bad.is_empty(),
        "links that leave the repository:\n{}",
        bad.join("\n")
    );
}
