//! `wrangler.jsonc` read once into typed values, validated, and resolved to a `Target`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use jsonc_parser::{JsonObject, JsonValue, ParseOptions};

use crate::exit::usage;
use crate::workspace::project::Project;
use crate::workspace::target::{Database, Env, Target};

/// wrangler's default tracking table and migrations folder.
pub(crate) const DEFAULT_MIGRATIONS_TABLE: &str = "d1_migrations";
pub(crate) const DEFAULT_MIGRATIONS_DIR: &str = "migrations";

/// One `d1_databases` entry as written, with the JSON path it came from for messages.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct D1Entry {
    pub(crate) path: String,
    pub(crate) binding: String,
    pub(crate) database_name: Option<String>,
    pub(crate) database_id: Option<String>,
    pub(crate) preview_database_id: Option<String>,
    pub(crate) migrations_dir: Option<String>,
    pub(crate) migrations_pattern: Option<String>,
    pub(crate) migrations_table: Option<String>,
}

#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) file: PathBuf,
    root: PathBuf,
    /// Top-level `d1_databases`: what `--env local` uses.
    top: Option<Vec<D1Entry>>,
    /// `env.<name>.d1_databases`; `None` where the environment has none.
    envs: BTreeMap<String, Option<Vec<D1Entry>>>,
    /// The Worker: top-level `name` and whether `main` is set there.
    worker: WorkerEntry,
    /// `env.<name>.name` and `env.<name>.main`, where set.
    env_workers: BTreeMap<String, WorkerEntry>,
}

#[derive(Clone, Debug, Default, PartialEq)]
struct WorkerEntry {
    name: Option<String>,
    main: bool,
}

impl Config {
    pub(crate) fn load(project: &Project) -> anyhow::Result<Config> {
        let file = &project.config_path;
        let bytes =
            std::fs::read(file).map_err(|e| usage!("cannot read {}: {e}", file.display()))?;
        let text = String::from_utf8(bytes).map_err(|e| {
            usage!(
                "{} is not UTF-8 (byte {})",
                file.display(),
                e.utf8_error().valid_up_to()
            )
        })?;
        Config::parse(&text, file, &project.root)
    }

    pub(crate) fn parse(text: &str, file: &Path, root: &Path) -> anyhow::Result<Config> {
        let shown = file.display();
        // wrangler's JSONC: comments and trailing commas, nothing looser.
        let options = ParseOptions {
            allow_comments: true,
            allow_trailing_commas: true,
            allow_loose_object_property_names: false,
            allow_missing_commas: false,
            allow_single_quoted_strings: false,
            allow_hexadecimal_numbers: false,
            allow_unary_plus_numbers: false,
            allow_bare_decimal_point_numbers: false,
            allow_non_finite_numbers: false,
            allow_extended_string_escapes: false,
        };
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let value = jsonc_parser::parse_to_value(text, &options).map_err(|e| {
            usage!(
                "{shown}:{}:{}: {}: fix the JSONC syntax there",
                e.line_display(),
                e.column_display(),
                e.kind()
            )
        })?;
        let Some(JsonValue::Object(top)) = value else {
            return Err(usage!("{shown}: the top level must be an object {{ ... }}"));
        };
        let reader = Reader {
            file: shown.to_string(),
        };
        let top_dbs = reader.d1_databases(&top, "")?;
        let worker = reader.worker(&top, "")?;
        let mut env_workers = BTreeMap::new();
        let mut envs = BTreeMap::new();
        match top.get("env") {
            None | Some(JsonValue::Null) => {}
            Some(JsonValue::Object(env)) => {
                for (name, value) in env.clone() {
                    let JsonValue::Object(obj) = value else {
                        return Err(reader.wrong_type(&format!("env.{name}"), "an object"));
                    };
                    if name == "local" {
                        return Err(usage!(
                            "{shown}: env.local: `local` is the xtask's name for wrangler's local D1 \
                             (the top-level config run with --local): rename this environment"
                        ));
                    }
                    let dbs = reader.d1_databases(&obj, &format!("env.{name}."))?;
                    envs.insert(name.to_string(), dbs);
                    env_workers.insert(
                        name.to_string(),
                        reader.worker(&obj, &format!("env.{name}"))?,
                    );
                }
            }
            Some(_) => return Err(reader.wrong_type("env", "an object")),
        }
        if top.get("migrations_pattern").is_some() {
            return Err(usage!(
                "{}: migrations_pattern is set at the top level: wrangler reads it only inside a d1_databases \
                 entry, beside migrations_dir; move it there",
                reader.file
            ));
        }
        Ok(Config {
            file: file.to_path_buf(),
            root: root.to_path_buf(),
            top: top_dbs,
            envs,
            worker,
            env_workers,
        })
    }

    /// The name of the Worker that `wrangler deploy --env <env>` deploys, as wrangler
    /// names it (`env.<env>.name`, else the top-level `name` and `-<env>`); `None` when no
    /// `main` is set there or at the top level (nothing to deploy).
    pub(crate) fn worker_name(&self, env: &Env) -> Option<String> {
        let own = match env {
            Env::Local => None,
            Env::Remote(name) => self.env_workers.get(name),
        };
        let main = self.worker.main || own.is_some_and(|w| w.main);
        if !main {
            return None;
        }
        match (env, own.and_then(|w| w.name.clone()), &self.worker.name) {
            (_, Some(name), _) => Some(name),
            (Env::Local, None, top) => top.clone(),
            (Env::Remote(env), None, Some(top)) => Some(format!("{top}-{env}")),
            (Env::Remote(_), None, None) => None,
        }
    }

    /// The environment names a user can pass to `--env`.
    /// The bindings of an environment's databases, in the config's order (none where the
    /// environment has no `d1_databases`).
    pub(crate) fn bindings(&self, env: &Env) -> Vec<String> {
        let entries = match env {
            Env::Local => self.top.as_ref(),
            Env::Remote(name) => self.envs.get(name).and_then(|e| e.as_ref()),
        };
        entries
            .map(|e| e.iter().map(|d| d.binding.clone()).collect())
            .unwrap_or_default()
    }

    pub(crate) fn env_names(&self) -> Vec<String> {
        std::iter::once("local".to_string())
            .chain(self.envs.keys().cloned())
            .collect()
    }

    /// Resolves `--env` and `--database` (cli.md) to one validated target.
    /// The target of `env` (and `--database`); `protected` lists the protected environments
    /// (`Settings::protected`, the one definition: `production` and what xtask.jsonc adds).
    pub(crate) fn resolve(
        &self,
        env: &Env,
        database: Option<&str>,
        protected: &[String],
    ) -> anyhow::Result<Target> {
        let shown = self.file.display();
        let (entries, scope) = match env {
            Env::Local => (self.top.as_ref(), "the top level".to_string()),
            Env::Remote(name) => {
                let Some(entries) = self.envs.get(name) else {
                    return Err(usage!(
                        "unknown environment `{name}` in {shown}: the environments are {}",
                        self.env_names().join(", ")
                    ));
                };
                if entries.is_none() {
                    return Err(usage!(
                        "{shown}: env.{name} has no d1_databases: wrangler does not inherit \
                         bindings from the top level, so copy the entry into env.{name}.d1_databases \
                         with that environment's own database_id"
                    ));
                }
                (entries.as_ref(), format!("env.{name}"))
            }
        };
        let entries = match entries {
            Some(e) if !e.is_empty() => e,
            _ => {
                return Err(usage!(
                    "{shown}: {scope} has no d1_databases entries: add one with a binding, \
                     database_name and database_id"
                ))
            }
        };
        let entry = match database {
            Some(wanted) => entries
                .iter()
                .find(|e| e.binding == wanted || e.database_name.as_deref() == Some(wanted))
                .ok_or_else(|| {
                    usage!(
                        "{shown}: {scope} has no D1 database `{wanted}`: its databases are {}",
                        list_entries(entries)
                    )
                })?,
            None if entries.len() == 1 => &entries[0],
            None => {
                return Err(usage!(
                    "{shown}: {scope} has {} D1 databases: choose one with `--database <binding>` \
                     ({})",
                    entries.len(),
                    list_entries(entries)
                ))
            }
        };
        if let Env::Remote(name) = env {
            self.check_remote(name, entry)?;
        }
        let dir = entry
            .migrations_dir
            .as_deref()
            .unwrap_or(DEFAULT_MIGRATIONS_DIR);
        Ok(Target {
            env: env.clone(),
            db: Database {
                binding: entry.binding.clone(),
                name: entry.database_name.clone(),
                id: entry.database_id.clone(),
                preview_id: entry.preview_database_id.clone(),
                migrations_dir: self.root.join(dir),
                migrations_pattern: entry
                    .migrations_pattern
                    .as_deref()
                    .and_then(|p| crate::migrations::pattern::relative_to_dir(p, dir).ok()),
                migrations_table: entry
                    .migrations_table
                    .clone()
                    .unwrap_or_else(|| DEFAULT_MIGRATIONS_TABLE.into()),
            },
            protected: protected.iter().any(|p| p == env.name()),
            config_path: self.file.clone(),
        })
    }

    /// A remote database must name a real UUID, and no other environment may share it.
    fn check_remote(&self, env: &str, entry: &D1Entry) -> anyhow::Result<()> {
        let shown = self.file.display();
        let field = format!("{}.database_id", entry.path);
        let Some(id) = &entry.database_id else {
            return Err(usage!(
                "{shown}: {field} is missing: a remote database needs its UUID \
                 (`wrangler d1 list` shows it)"
            ));
        };
        if !is_uuid(id) {
            return Err(usage!(
                "{shown}: {field} is \"{id}\", which is not a UUID: it looks like a placeholder; \
                 put the id of the `{env}` database there (`wrangler d1 list` shows it)"
            ));
        }
        for (other, entries) in &self.envs {
            if other == env {
                continue;
            }
            for e in entries.iter().flatten() {
                if e.database_id
                    .as_deref()
                    .is_some_and(|o| o.eq_ignore_ascii_case(id))
                {
                    return Err(usage!(
                        "{shown}: `{env}` and `{other}` share database_id {id} ({} and {}): \
                         a command on one would change the other; point each environment at its \
                         own database",
                        entry.path,
                        e.path
                    ));
                }
            }
        }
        Ok(())
    }
}

fn list_entries(entries: &[D1Entry]) -> String {
    entries
        .iter()
        .map(|e| match &e.database_name {
            Some(n) => format!("{} ({n})", e.binding),
            None => e.binding.clone(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// 8-4-4-4-12 hexadecimal digits, as D1 database ids are.
pub(crate) fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Reads fields with messages that name the file and the field path.
struct Reader {
    file: String,
}

impl Reader {
    fn wrong_type(&self, field: &str, expected: &str) -> anyhow::Error {
        usage!("{}: {field} must be {expected}", self.file)
    }

    fn d1_databases(&self, obj: &JsonObject, prefix: &str) -> anyhow::Result<Option<Vec<D1Entry>>> {
        let field = format!("{prefix}d1_databases");
        let array = match obj.get("d1_databases") {
            None | Some(JsonValue::Null) => return Ok(None),
            Some(JsonValue::Array(a)) => a,
            Some(_) => {
                return Err(self.wrong_type(
                    &field,
                    "an array of { binding, database_name, database_id } objects",
                ))
            }
        };
        let mut entries = Vec::new();
        for (i, item) in array.iter().enumerate() {
            let path = format!("{field}[{i}]");
            let JsonValue::Object(o) = item else {
                return Err(
                    self.wrong_type(&path, "an object { binding, database_name, database_id }")
                );
            };
            let binding = self.string(o, &path, "binding")?.ok_or_else(|| {
                usage!("{}: {path}.binding is missing: every D1 entry needs a binding name such as \"DB\"", self.file)
            })?;
            let entry = D1Entry {
                binding,
                database_name: self.string(o, &path, "database_name")?,
                database_id: self.string(o, &path, "database_id")?,
                preview_database_id: self.string(o, &path, "preview_database_id")?,
                migrations_dir: self.string(o, &path, "migrations_dir")?,
                migrations_pattern: self.string(o, &path, "migrations_pattern")?,
                migrations_table: self.string(o, &path, "migrations_table")?,
                path: path.clone(),
            };
            if let Some(p) = &entry.migrations_pattern {
                let Some(dir) = &entry.migrations_dir else {
                    return Err(usage!(
                        "{}: {path}.migrations_pattern is set without migrations_dir: wrangler requires both, and the \
                         pattern must start with `<migrations_dir>/`; add \"migrations_dir\" (for example \"migrations\")",
                        self.file
                    ));
                };
                crate::migrations::pattern::relative_to_dir(p, dir).map_err(|why| {
                    usage!("{}: {path}.migrations_pattern \"{p}\" {why}", self.file)
                })?;
            }
            if entries.iter().any(|e: &D1Entry| e.binding == entry.binding) {
                return Err(usage!(
                    "{}: {}.binding \"{}\" is used twice in {field}: give each database its own binding",
                    self.file, entry.path, entry.binding
                ));
            }
            entries.push(entry);
        }
        Ok(Some(entries))
    }

    /// `name` and `main` of the top level or of an environment. Read leniently: they
    /// matter to `deploy` only, and wrangler judges them there; the database commands
    /// never refuse a config over them.
    fn worker(&self, obj: &JsonObject, _path: &str) -> anyhow::Result<WorkerEntry> {
        let text = |key: &str| match obj.get(key) {
            Some(JsonValue::String(s)) if !s.trim().is_empty() => Some(s.to_string()),
            _ => None,
        };
        Ok(WorkerEntry {
            name: text("name"),
            main: text("main").is_some(),
        })
    }

    fn string(&self, o: &JsonObject, path: &str, key: &str) -> anyhow::Result<Option<String>> {
        match o.get(key) {
            None | Some(JsonValue::Null) => Ok(None),
            Some(JsonValue::String(s)) if s.trim().is_empty() => Err(usage!(
                "{}: {path}.{key} is empty: remove it or give it a value",
                self.file
            )),
            Some(JsonValue::String(s)) => Ok(Some(s.to_string())),
            Some(_) => Err(self.wrong_type(&format!("{path}.{key}"), "a string")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::{status_of, Exit};

    const SAMPLE: &str = r#"{
      // comments and trailing commas are fine
      "name": "app",
      "d1_databases": [
        { "binding": "DB", "database_name": "app-local", "database_id": "local-db", },
      ],
      "env": {
        "staging": {
          "d1_databases": [
            { "binding": "DB", "database_name": "app-staging",
              "database_id": "00000000-0000-0000-0000-000000000002", "migrations_dir": "db/migrations" },
          ],
        },
        "production": {
          "d1_databases": [
            { "binding": "DB", "database_name": "app-prod", "database_id": "00000000-0000-0000-0000-000000000003",
              "migrations_table": "schema_history" },
          ],
        },
      },
    }"#;

    fn parse(text: &str) -> anyhow::Result<Config> {
        Config::parse(text, Path::new("wrangler.jsonc"), Path::new("/w"))
    }

    fn resolve(text: &str, env: &str, db: Option<&str>) -> anyhow::Result<Target> {
        let protected = crate::workspace::settings::Settings::default().protected;
        parse(text)?.resolve(&Env::parse(Some(env)), db, &protected)
    }

    /// Asserts exit 2 and that the message holds every one of `words`.
    fn usage_error(result: anyhow::Result<impl std::fmt::Debug>, words: &[&str]) {
        let err = result.unwrap_err();
        assert_eq!(status_of(&err), Exit::Usage, "{err}");
        let msg = err.to_string();
        for w in words {
            assert!(msg.contains(w), "`{msg}` lacks `{w}`");
        }
    }

    #[test]
    fn resolves_each_environment() {
        let local = resolve(SAMPLE, "local", None).unwrap();
        assert_eq!(local.env, Env::Local);
        assert_eq!(local.db.migrations_dir, PathBuf::from("/w/migrations"));
        assert_eq!(local.db.migrations_table, "d1_migrations");
        assert!(!local.protected);

        let staging = resolve(SAMPLE, "staging", Some("app-staging")).unwrap();
        assert_eq!(
            staging.db.id.as_deref(),
            Some("00000000-0000-0000-0000-000000000002")
        );
        assert_eq!(staging.db.migrations_dir, PathBuf::from("/w/db/migrations"));

        let prod = resolve(SAMPLE, "production", Some("DB")).unwrap();
        assert!(prod.protected);
        assert_eq!(prod.db.migrations_table, "schema_history");
    }

    #[test]
    fn syntax_errors_name_line_and_column() {
        usage_error(
            parse("{\n  \"d1_databases\": [\n    { \"binding\": DB }\n  ]\n}"),
            &["wrangler.jsonc:3:", "JSONC"],
        );
        usage_error(parse("[]"), &["top level must be an object"]);
    }

    #[test]
    fn wrong_types_and_missing_fields_name_the_field() {
        usage_error(
            parse(r#"{"d1_databases": {}}"#),
            &["d1_databases must be an array"],
        );
        usage_error(
            parse(r#"{"d1_databases": [3]}"#),
            &["d1_databases[0] must be an object"],
        );
        usage_error(
            parse(r#"{"d1_databases": [{"database_name": "x"}]}"#),
            &["d1_databases[0].binding is missing"],
        );
        usage_error(
            parse(r#"{"d1_databases": [{"binding": 7}]}"#),
            &["d1_databases[0].binding must be a string"],
        );
        usage_error(
            parse(r#"{"env": {"staging": 1}}"#),
            &["env.staging must be an object"],
        );
        usage_error(
            parse(r#"{"d1_databases": [{"binding": "DB"}, {"binding": "DB"}]}"#),
            &["used twice"],
        );
    }

    #[test]
    fn unknown_env_lists_the_known_ones() {
        usage_error(
            resolve(SAMPLE, "stagign", None),
            &[
                "unknown environment `stagign`",
                "local, production, staging",
            ],
        );
    }

    #[test]
    fn env_without_d1_databases_says_bindings_are_not_inherited() {
        let text = r#"{"d1_databases": [{"binding": "DB", "database_id": "x"}], "env": {"staging": {"vars": {}}}}"#;
        usage_error(
            resolve(text, "staging", None),
            &["env.staging has no d1_databases", "not inherit"],
        );
    }

    #[test]
    fn several_databases_need_a_choice() {
        let text = r#"{"d1_databases": [{"binding": "DB", "database_name": "main"}, {"binding": "AUDIT"}]}"#;
        usage_error(
            resolve(text, "local", None),
            &["--database", "DB (main), AUDIT"],
        );
        usage_error(
            resolve(text, "local", Some("nope")),
            &["no D1 database `nope`"],
        );
        assert_eq!(
            resolve(text, "local", Some("main")).unwrap().db.binding,
            "DB"
        );
        assert_eq!(
            resolve(text, "local", Some("AUDIT")).unwrap().db.binding,
            "AUDIT"
        );
    }

    #[test]
    fn remote_placeholder_ids_are_refused() {
        let text = r#"{"env": {"staging": {"d1_databases": [{"binding": "DB", "database_id": "staging-uuid"}]}}}"#;
        usage_error(
            resolve(text, "staging", None),
            &[
                "env.staging.d1_databases[0].database_id",
                "staging-uuid",
                "not a UUID",
            ],
        );
        let text = r#"{"env": {"staging": {"d1_databases": [{"binding": "DB"}]}}}"#;
        usage_error(resolve(text, "staging", None), &["database_id is missing"]);
        // Locally any id names the local file: placeholders are fine there.
        assert!(resolve(SAMPLE, "local", None).is_ok());
    }

    #[test]
    fn environments_sharing_a_database_are_refused() {
        let text = r#"{"env": {
            "staging": {"d1_databases": [{"binding": "DB", "database_id": "00000000-0000-0000-0000-00000000000A"}]},
            "production": {"d1_databases": [{"binding": "DB", "database_id": "00000000-0000-0000-0000-00000000000a"}]}}}"#;
        usage_error(
            resolve(text, "staging", None),
            &["`staging` and `production` share database_id"],
        );
    }

    #[test]
    fn migrations_pattern_is_read_as_wrangler_reads_it() {
        let text = r#"{"d1_databases": [{"binding": "DB", "migrations_pattern": "*.sql"}]}"#;
        usage_error(
            parse(text),
            &[
                "d1_databases[0].migrations_pattern",
                "without migrations_dir",
            ],
        );
        let text = r#"{"d1_databases": [{"binding": "DB", "migrations_dir": "drizzle", "migrations_pattern": "migrations/*.sql"}]}"#;
        usage_error(parse(text), &["must start with `drizzle/`"]);
        let text = r#"{"d1_databases": [{"binding": "DB", "migrations_dir": "./drizzle/", "migrations_pattern": "drizzle/*/migration.sql"}]}"#;
        let target = resolve(text, "local", None).unwrap();
        assert_eq!(
            target.db.migrations_pattern.as_deref(),
            Some("*/migration.sql")
        );
        usage_error(
            parse(r#"{"migrations_pattern": "x"}"#),
            &["inside a d1_databases entry"],
        );
    }

    #[test]
    fn the_worker_is_named_as_wrangler_names_it() {
        let staging = Env::Remote("staging".into());
        let prod = Env::Remote("production".into());
        let c = parse(
            r#"{"name": "app", "main": "src/index.js",
                "env": {"staging": {}, "production": {"name": "app-live"}}}"#,
        )
        .unwrap();
        assert_eq!(c.worker_name(&staging).as_deref(), Some("app-staging"));
        assert_eq!(c.worker_name(&prod).as_deref(), Some("app-live"));
        // No `main` anywhere: nothing to deploy. `main` in one environment only: that one.
        let c = parse(r#"{"name": "app", "env": {"staging": {"main": "w.js"}, "production": {}}}"#)
            .unwrap();
        assert_eq!(c.worker_name(&staging).as_deref(), Some("app-staging"));
        assert_eq!(c.worker_name(&prod), None);
        // Odd values never stop the database commands: they are read leniently.
        assert!(parse(r#"{"name": 7, "main": ""}"#)
            .unwrap()
            .worker_name(&staging)
            .is_none());
    }

    #[test]
    fn env_named_local_is_refused() {
        usage_error(parse(r#"{"env": {"local": {}}}"#), &["env.local"]);
    }

    #[test]
    fn uuid_shape() {
        assert!(is_uuid("00000000-0000-0000-0000-000000000001"));
        assert!(is_uuid("5AB6C8F0-1234-4abc-9def-0123456789ab"));
        assert!(!is_uuid("staging-uuid"));
        assert!(!is_uuid("00000000-0000-0000-0000-00000000001"));
        assert!(!is_uuid("0000000g-0000-0000-0000-000000000001"));
    }
}
