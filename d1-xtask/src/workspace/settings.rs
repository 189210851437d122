//! The xtask's own settings: `xtask.jsonc` beside the wrangler config, all optional.
//!
//! ```jsonc
//! {
//!   "protected": ["production"],          // environments that need confirmation
//!   "time_travel_retention_days": 30,     // 7 on D1's free plan
//!   "lock_timeout_secs": 60,              // how long to wait for another run's lock
//!   "lock_stale_after_secs": 900,         // when a lock may be broken with --force-unlock
//!   "wrangler_timeout_secs": 600,         // when a hanging wrangler process is stopped
//!   "anonymize": { "users.email": "email", "users.name": "name", "orders.note": { "const": "-" } },
//!   "anonymize_key_file": ".anonymize.key",  // else XTASK_ANONYMIZE_KEY
//!   "test_ranges": { "*": [950000, 999999], "users": [960000, 969999] },
//!   "fleets": { "tenants": { "env": "production", "databases": "tenant-*" } },
//!   "api_requests_per_5_minutes": 1200,   // the fleet commands' pace
//! }
//! ```

use std::path::Path;

use jsonc_parser::{JsonValue, ParseOptions};

use crate::exit::usage;
use rusqlite::types::Value;

pub(crate) const FILE_NAME: &str = "xtask.jsonc";

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Settings {
    pub(crate) protected: Vec<String>,
    pub(crate) retention_days: u32,
    /// How long a command waits for another run's lock.
    pub(crate) lock_timeout_secs: u64,
    /// After how long a lock counts as stale (breakable with --force-unlock).
    pub(crate) lock_stale_after_secs: u64,
    /// How long one wrangler process may take before it is stopped.
    pub(crate) wrangler_timeout_secs: u64,
    /// `db-seed --from`: a rule per `table.column` (lower case).
    pub(crate) anonymize: std::collections::BTreeMap<String, Kind>,
    /// `db-seed --from`: where the key is, relative to the root (else XTASK_ANONYMIZE_KEY).
    pub(crate) anonymize_key_file: Option<String>,
    /// `db-seed --from`: the id range of each table (`*` for all others).
    pub(crate) test_ranges: std::collections::BTreeMap<String, (i64, i64)>,
    /// Seed and cleanup files, relative to the root.
    pub(crate) test_data_dir: String,
    /// Backups, restore points and their index, relative to the root.
    pub(crate) backups_dir: String,
    /// How the undo hints name the xtask (`cargo xtask`; a host may call it otherwise).
    pub(crate) command_prefix: String,
    /// `fleets`: by name.
    pub(crate) fleets: std::collections::BTreeMap<String, Fleet>,
    /// The request rate the fleet commands keep to (Cloudflare's: 1,200 per 5 minutes).
    pub(crate) api_requests_per_5_minutes: u32,
}

/// A fleet: the databases of one environment's account, chosen by a name pattern or a
/// file of names.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Fleet {
    /// Whose account, token, protection and migrations folder.
    pub(crate) env: String,
    pub(crate) members: Members,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Members {
    /// A glob over the names in the account's database list (`*` and `?`).
    Glob(String),
    /// A file (relative to the workspace root) of names or ids, one a line.
    File(String),
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            protected: vec!["production".into()],
            retention_days: 30,
            lock_timeout_secs: 60,
            lock_stale_after_secs: 900,
            wrangler_timeout_secs: 600,
            anonymize: Default::default(),
            anonymize_key_file: None,
            test_ranges: Default::default(),
            test_data_dir: "test-data".into(),
            backups_dir: "backups".into(),
            command_prefix: "cargo xtask".into(),
            fleets: Default::default(),
            api_requests_per_5_minutes: 1200,
        }
    }
}

impl Settings {
    pub(crate) fn load(root: &Path) -> anyhow::Result<Settings> {
        let path = root.join(FILE_NAME);
        match std::fs::read_to_string(&path) {
            Ok(text) => Settings::parse(&text, &path.display().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Settings::default()),
            Err(e) => Err(usage!("cannot read {}: {e}", path.display())),
        }
    }

    pub(crate) fn parse(text: &str, shown: &str) -> anyhow::Result<Settings> {
        let options = ParseOptions {
            allow_loose_object_property_names: false,
            allow_missing_commas: false,
            allow_single_quoted_strings: false,
            ..ParseOptions::default()
        };
        let value = jsonc_parser::parse_to_value(text, &options).map_err(|e| {
            usage!(
                "{shown}:{}:{}: {}",
                e.line_display(),
                e.column_display(),
                e.kind()
            )
        })?;
        let mut settings = Settings::default();
        let Some(JsonValue::Object(obj)) = value else {
            return Err(usage!("{shown}: the top level must be an object {{ ... }}"));
        };
        for (key, value) in obj {
            match (key.as_ref(), value) {
                ("protected", JsonValue::Array(items)) => {
                    settings.protected = items
                        .into_iter()
                        .map(|v| match v {
                            JsonValue::String(s) if !s.trim().is_empty() => Ok(s.to_string()),
                            _ => Err(usage!("{shown}: protected must list environment names (strings)")),
                        })
                        .collect::<anyhow::Result<_>>()?;
                    if !settings.protected.iter().any(|p| p == "production") {
                        return Err(usage!(
                            "{shown}: protected must keep \"production\": it is always protected (add others beside it)"
                        ));
                    }
                }
                ("time_travel_retention_days", JsonValue::Number(n)) => {
                    settings.retention_days = n
                        .parse::<u32>()
                        .ok()
                        .filter(|d| (1..=365).contains(d))
                        .ok_or_else(|| usage!("{shown}: time_travel_retention_days must be a whole number of days, 1 to 365"))?;
                }
                (key @ ("lock_timeout_secs" | "lock_stale_after_secs" | "wrangler_timeout_secs"), JsonValue::Number(n)) => {
                    let secs = n
                        .parse::<u64>()
                        .ok()
                        .filter(|s| *s <= 86_400)
                        .ok_or_else(|| usage!("{shown}: {key} must be a whole number of seconds, 0 to 86400"))?;
                    match key {
                        "lock_timeout_secs" => settings.lock_timeout_secs = secs,
                        "lock_stale_after_secs" => settings.lock_stale_after_secs = secs,
                        _ => settings.wrangler_timeout_secs = secs.max(1),
                    }
                }
                ("anonymize", JsonValue::Object(rules)) => {
                    for (column, kind) in rules {
                        let parts: Vec<&str> = column.split('.').collect();
                        if parts.len() != 2 || parts.iter().any(|p| p.trim().is_empty()) {
                            return Err(usage!(
                                "{shown}: anonymize: `{column}` is not `table.column`"
                            ));
                        }
                        let kind = Kind::from_json(&kind).map_err(|e| usage!("{shown}: anonymize.{column}: {e}"))?;
                        settings.anonymize.insert(column.to_lowercase(), kind);
                    }
                }
                ("anonymize_key_file", JsonValue::String(path)) if !path.trim().is_empty() => {
                    settings.anonymize_key_file = Some(path.to_string());
                }
                ("test_ranges", JsonValue::Object(ranges)) => {
                    for (table, range) in ranges {
                        let bounds: Option<Vec<i64>> = match range {
                            JsonValue::Array(items) => items
                                .iter()
                                .map(|v| match v {
                                    JsonValue::Number(n) => n.parse::<i64>().ok(),
                                    _ => None,
                                })
                                .collect(),
                            _ => None,
                        };
                        match bounds.as_deref() {
                            Some(&[lo, hi]) if 0 < lo && lo <= hi => {
                                settings.test_ranges.insert(table.to_lowercase(), (lo, hi));
                            }
                            _ => {
                                return Err(usage!(
                                    "{shown}: test_ranges.{table} must be [first, last], two whole numbers with 0 < first <= last"
                                ))
                            }
                        }
                    }
                }
                (key @ ("test_data_dir" | "backups_dir"), JsonValue::String(dir)) => {
                    let path = std::path::Path::new(dir.as_ref());
                    let inside = !dir.trim().is_empty()
                        && path.is_relative()
                        && !path.components().any(|c| matches!(c, std::path::Component::ParentDir));
                    if !inside {
                        return Err(usage!(
                            "{shown}: {key} must be a folder inside the workspace, relative to it (such as \"{}\"), \
                             without `..`",
                            if key == "backups_dir" { "backups" } else { "test-data" }
                        ));
                    }
                    if key == "backups_dir" {
                        settings.backups_dir = dir.to_string();
                    } else {
                        settings.test_data_dir = dir.to_string();
                    }
                }
                ("command_prefix", JsonValue::String(prefix))
                    if !prefix.trim().is_empty() && !prefix.chars().any(char::is_control) =>
                {
                    settings.command_prefix = prefix.trim().to_string();
                }
                ("fleets", JsonValue::Object(fleets)) => {
                    for (name, value) in fleets.clone() {
                        settings.fleets.insert(name.to_string(), fleet(shown, &name, value)?);
                    }
                }
                ("api_requests_per_5_minutes", JsonValue::Number(n)) => {
                    settings.api_requests_per_5_minutes = n
                        .parse::<u32>()
                        .ok()
                        .filter(|n| (1..=100_000).contains(n))
                        .ok_or_else(|| usage!("{shown}: api_requests_per_5_minutes must be a whole number, 1 to 100000"))?;
                }
                ("protected" | "time_travel_retention_days" | "lock_timeout_secs" | "lock_stale_after_secs"
                | "wrangler_timeout_secs" | "anonymize" | "anonymize_key_file" | "test_ranges"
                | "test_data_dir" | "backups_dir" | "command_prefix" | "fleets"
                | "api_requests_per_5_minutes", _) => {
                    return Err(usage!("{shown}: {key} has the wrong type: see Settings in docs/configuration.md"))
                }
                (other, _) => {
                    return Err(usage!(
                        "{shown}: unknown setting `{other}`: the settings are protected, time_travel_retention_days, \
                         lock_timeout_secs, lock_stale_after_secs, wrangler_timeout_secs, anonymize, \
                         anonymize_key_file, test_ranges, test_data_dir, backups_dir, command_prefix, fleets, \
                         api_requests_per_5_minutes"
                    ))
                }
            }
        }
        Ok(settings)
    }
}

/// One entry of `fleets`: `{ "env": ..., "databases": "<glob>" }` or `{ "env": ...,
/// "databases_file": "<path>" }`.
fn fleet(shown: &str, name: &str, value: JsonValue) -> anyhow::Result<Fleet> {
    let JsonValue::Object(obj) = value else {
        return Err(usage!(
            "{shown}: fleets.{name} must be an object {{ \"env\": ..., \"databases\": \"tenant-*\" }}"
        ));
    };
    let text = |key: &str| match obj.get(key) {
        Some(JsonValue::String(s)) if !s.trim().is_empty() => Ok(Some(s.to_string())),
        None => Ok(None),
        Some(_) => Err(usage!(
            "{shown}: fleets.{name}.{key} must be a non-empty string"
        )),
    };
    for (key, _) in obj.clone().into_iter() {
        if !["env", "databases", "databases_file"].contains(&key.as_ref()) {
            return Err(usage!(
                "{shown}: fleets.{name}: unknown key `{key}` (env, databases, databases_file)"
            ));
        }
    }
    let env = text("env")?.ok_or_else(|| {
        usage!("{shown}: fleets.{name} needs \"env\": the environment whose account and migrations it uses")
    })?;
    if env == "local" {
        return Err(usage!(
            "{shown}: fleets.{name}.env is `local`: a fleet lives in a remote account; name an environment of wrangler.jsonc"
        ));
    }
    let members = match (text("databases")?, text("databases_file")?) {
        (Some(glob), None) => Members::Glob(glob),
        (None, Some(file)) => Members::File(file),
        _ => {
            return Err(usage!(
                "{shown}: fleets.{name} needs exactly one of \"databases\" (a name pattern like \"tenant-*\") \
                 and \"databases_file\" (a file of names, one a line)"
            ))
        }
    };
    Ok(Fleet { env, members })
}

/// What a rule does to a column's values. NULL stays NULL under every rule.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Kind {
    /// The value as it is (not personal: a SKU, a status, a price).
    Keep,
    Null,
    /// One value for every row.
    Const(Value),
    /// `user-<hash>@example.invalid`.
    Email,
    /// A made-up `First Last`.
    Name,
    /// Made-up words about as long as the original.
    Text,
    /// HMAC-SHA256 of the value, hex: equal inputs stay equal (tokens, hashes, keys).
    Hmac,
}

impl Kind {
    pub(crate) fn from_json(value: &jsonc_parser::JsonValue) -> Result<Kind, String> {
        use jsonc_parser::JsonValue as J;
        match value {
            J::String(s) => match s.as_ref() {
                "keep" => Ok(Kind::Keep),
                "null" => Ok(Kind::Null),
                "email" => Ok(Kind::Email),
                "name" => Ok(Kind::Name),
                "text" => Ok(Kind::Text),
                "hmac" => Ok(Kind::Hmac),
                other => Err(format!(
                    "unknown rule `{other}`: the rules are keep, null, email, name, text, hmac and {{\"const\": <value>}}"
                )),
            },
            J::Object(obj) if obj.len() == 1 => match obj.get("const") {
                Some(J::String(s)) => Ok(Kind::Const(Value::Text(s.to_string()))),
                Some(J::Number(n)) => n
                    .parse::<i64>()
                    .map(Value::Integer)
                    .or_else(|_| n.parse::<f64>().map(Value::Real))
                    .map(Kind::Const)
                    .map_err(|_| format!("{n} is not a number SQLite can store")),
                Some(J::Boolean(b)) => Ok(Kind::Const(Value::Integer(i64::from(*b)))),
                Some(J::Null) => Ok(Kind::Null),
                _ => Err("{\"const\": <value>} takes a string, a number, true/false or null".into()),
            },
            _ => Err("a rule is a name (keep, null, email, name, text, hmac) or {\"const\": <value>}".into()),
        }
    }

    pub(crate) fn name(&self) -> &'static str {
        match self {
            Kind::Keep => "keep",
            Kind::Null => "null",
            Kind::Const(_) => "const",
            Kind::Email => "email",
            Kind::Name => "name",
            Kind::Text => "text",
            Kind::Hmac => "hmac",
        }
    }

    /// Whether the rule needs the key.
    pub(crate) fn keyed(&self) -> bool {
        matches!(self, Kind::Email | Kind::Name | Kind::Text | Kind::Hmac)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::{status_of, Exit};

    #[test]
    fn defaults_and_overrides() {
        assert_eq!(Settings::parse("{}", "x").unwrap(), Settings::default());
        let s = Settings::parse(
            r#"{ // comment
                "protected": ["production", "prod-eu"], "time_travel_retention_days": 7, }"#,
            "x",
        )
        .unwrap();
        assert_eq!(s.protected, vec!["production", "prod-eu"]);
        assert_eq!(s.retention_days, 7);
        let s = Settings::parse(
            r#"{"anonymize": {"Users.Email": "email", "orders.note": {"const": "-"}, "a.n": {"const": 3}},
                "anonymize_key_file": "k", "test_ranges": {"*": [950000, 999999]}}"#,
            "x",
        )
        .unwrap();
        assert_eq!(s.anonymize["users.email"], Kind::Email);
        assert_eq!(
            s.anonymize["orders.note"],
            Kind::Const(rusqlite::types::Value::Text("-".into()))
        );
        assert_eq!(
            s.anonymize["a.n"],
            Kind::Const(rusqlite::types::Value::Integer(3))
        );
        assert_eq!(s.test_ranges["*"], (950000, 999999));
        let dirs = Settings::parse(
            r#"{"test_data_dir": "db/fixtures", "backups_dir": ".d1/backups", "command_prefix": "cargo dev"}"#,
            "x",
        )
        .unwrap();
        assert_eq!(
            (
                dirs.test_data_dir.as_str(),
                dirs.backups_dir.as_str(),
                dirs.command_prefix.as_str()
            ),
            ("db/fixtures", ".d1/backups", "cargo dev")
        );
        for bad in [
            r#"{"backups_dir": "../elsewhere"}"#,
            r#"{"test_data_dir": "/abs"}"#,
            r#"{"backups_dir": ""}"#,
            r#"{"command_prefix": ""}"#,
            r#"{"command_prefix": 3}"#,
        ] {
            let e = Settings::parse(bad, "x").unwrap_err();
            assert_eq!(status_of(&e), Exit::Usage, "{bad}: {e:#}");
        }
        assert_eq!(s.anonymize_key_file.as_deref(), Some("k"));
        // The sample's own settings parse.
        let sample =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../xtask.jsonc"))
                .unwrap();
        assert!(
            Settings::parse(&sample, "xtask.jsonc")
                .unwrap()
                .anonymize
                .len()
                >= 10
        );
    }

    #[test]
    fn bad_settings_are_usage_errors() {
        for (text, words) in [
            (r#"{"protected": "production"}"#, "wrong type"),
            (r#"{"protected": ["staging"]}"#, "must keep \"production\""),
            (r#"{"time_travel_retention_days": 0}"#, "1 to 365"),
            (r#"{"retention": 3}"#, "unknown setting `retention`"),
            (
                r#"{"anonymize": {"users": "email"}}"#,
                "is not `table.column`",
            ),
            (
                r#"{"anonymize": {"users.email": "mask"}}"#,
                "unknown rule `mask`",
            ),
            (
                r#"{"anonymize": {"users.email": {"const": [1]}}}"#,
                "takes a string",
            ),
            (
                r#"{"test_ranges": {"users": [10, 5]}}"#,
                "0 < first <= last",
            ),
            ("{", "x:1:"),
        ] {
            let err = Settings::parse(text, "x").unwrap_err();
            assert_eq!(status_of(&err), Exit::Usage);
            assert!(err.to_string().contains(words), "{err}");
        }
    }
}
