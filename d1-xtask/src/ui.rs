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

thread_local! {
    /// Documents set aside by `collect_json` instead of printed.
    static COLLECTED: std::cell::RefCell<Option<Vec<serde_json::Value>>> =
        const { std::cell::RefCell::new(None) };
}

/// Runs `f` with its `--json` documents set aside and returned, for a command that prints
/// one document for several runs (`--database all`).
pub(crate) fn collect_json<R>(f: impl FnOnce() -> R) -> (R, Vec<serde_json::Value>) {
    COLLECTED.with(|c| *c.borrow_mut() = Some(Vec::new()));
    let out = f();
    let docs = COLLECTED
        .with(|c| c.borrow_mut().take())
        .unwrap_or_default();
    (out, docs)
}

/// Whether a JSON document has gone to stdout.
static PRINTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

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

/// The document a failed `--json` run prints, unless the command printed its own: an
/// `error` object (`exit`, `kind`, `message`) and what is known.
pub(crate) fn json_error(exit: u8, kind: &str, message: &str) {
    if PRINTED.load(std::sync::atomic::Ordering::SeqCst) {
        return;
    }
    let mut doc = KNOWN
        .lock()
        .ok()
        .and_then(|k| k.clone())
        .unwrap_or_default();
    doc.insert(
        "error".into(),
        serde_json::json!({"exit": exit, "kind": kind, "message": message}),
    );
    json(&serde_json::Value::Object(doc));
}

/// The one JSON document of a `--json` run, on stdout.
pub(crate) fn json(value: &serde_json::Value) {
    let set_aside = COLLECTED.with(|c| match c.borrow_mut().as_mut() {
        Some(docs) => {
            docs.push(value.clone());
            true
        }
        None => false,
    });
    if set_aside {
        return;
    }
    PRINTED.store(true, std::sync::atomic::Ordering::SeqCst);
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
