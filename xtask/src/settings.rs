//! The xtask's own settings: `xtask.jsonc` beside the wrangler config, all optional.
//!
//! ```jsonc
//! {
//!   "protected": ["production"],          // environments that need confirmation
//!   "time_travel_retention_days": 30,     // 7 on D1's free plan
//!   "lock_timeout_secs": 60,              // how long to wait for another run's lock
//!   "lock_stale_after_secs": 900,         // when a lock may be broken with --force-unlock
//!   "wrangler_timeout_secs": 600,         // when a hanging wrangler process is stopped
//! }
//! ```

use std::path::Path;

use jsonc_parser::{JsonValue, ParseOptions};

use crate::exit::usage;

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
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            protected: vec!["production".into()],
            retention_days: 30,
            lock_timeout_secs: 60,
            lock_stale_after_secs: 900,
            wrangler_timeout_secs: 600,
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
                ("protected" | "time_travel_retention_days" | "lock_timeout_secs" | "lock_stale_after_secs"
                | "wrangler_timeout_secs", _) => {
                    return Err(usage!("{shown}: {key} has the wrong type: see the README's Settings section"))
                }
                (other, _) => {
                    return Err(usage!(
                        "{shown}: unknown setting `{other}`: the settings are protected, time_travel_retention_days, \
                         lock_timeout_secs, lock_stale_after_secs, wrangler_timeout_secs"
                    ))
                }
            }
        }
        Ok(settings)
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
    }

    #[test]
    fn bad_settings_are_usage_errors() {
        for (text, words) in [
            (r#"{"protected": "production"}"#, "wrong type"),
            (r#"{"protected": ["staging"]}"#, "must keep \"production\""),
            (r#"{"time_travel_retention_days": 0}"#, "1 to 365"),
            (r#"{"retention": 3}"#, "unknown setting `retention`"),
            ("{", "x:1:"),
        ] {
            let err = Settings::parse(text, "x").unwrap_err();
            assert_eq!(status_of(&err), Exit::Usage);
            assert!(err.to_string().contains(words), "{err}");
        }
    }
}
