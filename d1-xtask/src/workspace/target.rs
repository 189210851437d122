//! What a command acts on: one environment and one D1 database of it, resolved once.

use std::fmt;
use std::path::PathBuf;

/// The environment a command runs against (cli.md: `--env`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Env {
    /// wrangler's local D1 for the top-level config (`--local`); the default.
    Local,
    /// `env.<name>` in the config, run with `--env <name> --remote`.
    Remote(String),
}

impl Env {
    pub(crate) fn parse(name: Option<&str>) -> Env {
        match name {
            None | Some("local") => Env::Local,
            Some(other) => Env::Remote(other.to_string()),
        }
    }
    pub(crate) fn name(&self) -> &str {
        match self {
            Env::Local => "local",
            Env::Remote(name) => name,
        }
    }
    pub(crate) fn is_remote(&self) -> bool {
        matches!(self, Env::Remote(_))
    }
}

impl fmt::Display for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One `d1_databases` entry after validation, with its paths resolved.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Database {
    pub(crate) binding: String,
    pub(crate) name: Option<String>,
    pub(crate) id: Option<String>,
    pub(crate) preview_id: Option<String>,
    pub(crate) migrations_dir: PathBuf,
    /// `migrations_pattern` below `migrations_dir` (`*/migration.sql`), when set.
    pub(crate) migrations_pattern: Option<String>,
    pub(crate) migrations_table: String,
}

impl Database {
    /// How the database is named to people: `DB (my-app-db, 0000...)`.
    pub(crate) fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(name) = &self.name {
            parts.push(name.as_str());
        }
        if let Some(id) = &self.id {
            parts.push(id.as_str());
        }
        if parts.is_empty() {
            self.binding.clone()
        } else {
            format!("{} ({})", self.binding, parts.join(", "))
        }
    }
    /// A name that is safe in file names: the database name, else the binding.
    pub(crate) fn label(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.binding)
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Target {
    pub(crate) env: Env,
    pub(crate) db: Database,
    /// Guarded environment (cli.md, "Protected environments").
    pub(crate) protected: bool,
    pub(crate) config_path: PathBuf,
}

impl Target {
    /// The one way messages name a database: `staging DB (my-app-db, 0000...)`.
    pub(crate) fn describe(&self) -> String {
        format!("{} {}", self.env, self.db.describe())
    }

    /// The flags that choose this environment in any `wrangler d1` command. The one place
    /// where an environment becomes wrangler flags; `--preview` is never among them.
    pub(crate) fn location_args(&self) -> Vec<String> {
        match &self.env {
            Env::Local => vec!["--local".into()],
            Env::Remote(name) => vec!["--env".into(), name.clone(), "--remote".into()],
        }
    }

    /// `d1 <subcommand...> <binding> <location> --config <path>`, the argument list of a
    /// wrangler call on this target (without the program).
    pub(crate) fn d1_args(&self, subcommand: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = vec!["d1".into()];
        args.extend(subcommand.iter().map(|s| s.to_string()));
        args.push(self.db.binding.clone());
        args.extend(self.location_args());
        args.push("--config".into());
        args.push(self.config_path.display().to_string());
        args
    }

    /// `d1 time-travel <sub> <binding> [--env <name>] --config <path> <extra...>`: Time
    /// Travel is always remote and takes neither `--remote` nor `--local`.
    pub(crate) fn time_travel_args(&self, sub: &str, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = vec![
            "d1".into(),
            "time-travel".into(),
            sub.into(),
            self.db.binding.clone(),
        ];
        if let Env::Remote(name) = &self.env {
            args.push("--env".into());
            args.push(name.clone());
        }
        args.push("--config".into());
        args.push(self.config_path.display().to_string());
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }
}

impl Target {
    /// The `database` object of every `--json` document (docs/json.md; keep it stable).
    pub(crate) fn database_json(&self) -> serde_json::Value {
        serde_json::json!({
            "binding": self.db.binding,
            "name": self.db.name,
            "id": self.db.id,
            "remote": self.env.is_remote(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(env: Env) -> Target {
        Target {
            env,
            db: Database {
                binding: "DB".into(),
                name: Some("app-db".into()),
                id: Some("00000000-0000-0000-0000-000000000001".into()),
                preview_id: None,
                migrations_dir: PathBuf::from("/w/migrations"),
                migrations_pattern: None,
                migrations_table: "d1_migrations".into(),
            },
            protected: false,
            config_path: PathBuf::from("/w/wrangler.jsonc"),
        }
    }

    #[test]
    fn environments_map_to_wrangler_flags() {
        assert_eq!(
            target(Env::Local)
                .d1_args(&["migrations", "list"])
                .join(" "),
            "d1 migrations list DB --local --config /w/wrangler.jsonc"
        );
        assert_eq!(
            target(Env::Remote("staging".into()))
                .d1_args(&["execute"])
                .join(" "),
            "d1 execute DB --env staging --remote --config /w/wrangler.jsonc"
        );
        for env in [Env::Local, Env::Remote("production".into())] {
            assert!(!target(env)
                .d1_args(&["execute"])
                .iter()
                .any(|a| a == "--preview"));
        }
    }

    #[test]
    fn time_travel_takes_no_location_flag() {
        assert_eq!(
            target(Env::Remote("staging".into()))
                .time_travel_args("restore", &["--bookmark", "b1"])
                .join(" "),
            "d1 time-travel restore DB --env staging --config /w/wrangler.jsonc --bookmark b1"
        );
    }

    #[test]
    fn env_names() {
        assert_eq!(Env::parse(None), Env::Local);
        assert_eq!(Env::parse(Some("local")), Env::Local);
        assert_eq!(Env::parse(Some("staging")), Env::Remote("staging".into()));
    }
}
