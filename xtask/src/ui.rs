//! What the user sees: human lines on stderr, JSON on stdout, secrets never.

use std::io::Write;

/// Environment variables whose values must never be printed or written.
const SECRET_VARS: &[&str] = &[
    "CLOUDFLARE_API_TOKEN",
    "CLOUDFLARE_API_KEY",
    "CF_API_TOKEN",
    "CF_API_KEY",
];

/// Replaces every secret value found in the environment by `[redacted]`.
pub(crate) fn redact(text: &str) -> String {
    let mut out = text.to_string();
    for var in SECRET_VARS {
        if let Ok(secret) = std::env::var(var) {
            // Very short values would redact ordinary words; real tokens are long.
            if secret.len() >= 6 {
                out = out.replace(&secret, "[redacted]");
            }
        }
    }
    out
}

/// One human line on stderr (stdout stays free for `--json`).
pub(crate) fn say(line: impl AsRef<str>) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{}", redact(line.as_ref()));
}

/// The one JSON document of a `--json` run, on stdout.
pub(crate) fn json(value: &serde_json::Value) {
    let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| "null".into());
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", redact(&text));
}

/// Plain output a person asked for (a listing), on stdout.
pub(crate) fn print(line: impl AsRef<str>) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", redact(line.as_ref()));
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts_secrets_from_the_environment() {
        // Set in the test process only; no other unit test reads this variable.
        std::env::set_var("CF_API_KEY", "sekrit-key-value");
        assert_eq!(
            super::redact("auth: sekrit-key-value; again sekrit-key-value"),
            "auth: [redacted]; again [redacted]"
        );
        std::env::remove_var("CF_API_KEY");
    }
}
