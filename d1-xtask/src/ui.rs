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

/// A progress line that replaces itself, on a terminal only (a log gets the summary).
#[cfg_attr(not(feature = "fleet"), allow(dead_code))]
pub(crate) fn progress(line: impl AsRef<str>) {
    // SAFETY: isatty only reads the descriptor's state.
    if unsafe { libc::isatty(2) } == 1 {
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r{}\x1b[K", redact(line.as_ref()));
        let _ = err.flush();
    }
}

/// Ends a progress line (a new line on a terminal).
#[cfg_attr(not(feature = "fleet"), allow(dead_code))]
pub(crate) fn progress_done() {
    // SAFETY: as above.
    if unsafe { libc::isatty(2) } == 1 {
        let _ = writeln!(std::io::stderr().lock());
    }
}

/// What a command shows when it is done: the one JSON document of `--json`, and the lines
/// a person reads on stdout otherwise (progress went to stderr as it happened). Commands
/// return it; `cli` renders it once, as one or the other.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Report {
    /// The `--json` document (`null`: the command has none).
    pub(crate) doc: serde_json::Value,
    /// Lines for stdout without `--json`.
    pub(crate) text: Vec<String>,
}

impl Report {
    /// A report whose document is `doc`, with no lines for stdout.
    pub(crate) fn doc(doc: serde_json::Value) -> Report {
        Report {
            doc,
            text: Vec::new(),
        }
    }

    /// Adds a line for stdout.
    pub(crate) fn line(&mut self, line: impl Into<String>) {
        self.text.push(line.into());
    }

    /// Prints the report: the document with `json`, else the lines.
    pub(crate) fn render(&self, json: bool) {
        if json {
            if !self.doc.is_null() {
                print_json(&self.doc);
            }
        } else {
            for line in &self.text {
                print(line);
            }
        }
    }
}

/// What is known about the run so far (environment, database, restore point), for the
/// document a failing `--json` run prints.
static KNOWN: std::sync::Mutex<Option<serde_json::Map<String, serde_json::Value>>> =
    std::sync::Mutex::new(None);

/// Records a fact about the run for a failure's JSON document.
pub(crate) fn known(key: &str, value: serde_json::Value) {
    if let Ok(mut known) = KNOWN.lock() {
        known
            .get_or_insert_with(serde_json::Map::new)
            .insert(key.to_string(), value);
    }
}

/// Forgets what an earlier run in this process recorded (a host may call `run` twice).
pub(crate) fn forget_known() {
    if let Ok(mut known) = KNOWN.lock() {
        *known = None;
    }
}

/// The document a failed `--json` run prints when its error carries no report of its
/// own: an `error` object (`exit`, `kind`, `message`) and what is known.
pub(crate) fn json_error(exit: u8, kind: &str, message: &str) {
    let mut doc = KNOWN
        .lock()
        .ok()
        .and_then(|k| k.clone())
        .unwrap_or_default();
    doc.insert(
        "error".into(),
        serde_json::json!({"exit": exit, "kind": kind, "message": message}),
    );
    print_json(&serde_json::Value::Object(doc));
}

/// A JSON document on stdout.
fn print_json(value: &serde_json::Value) {
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
