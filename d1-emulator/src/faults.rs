//! Fault injection: make the Nth matching request fail in one of the ways the real API
//! or the network can.

use serde_json::{json, Value};

#[derive(Clone, Debug, PartialEq)]
pub enum FaultKind {
    /// `{"success": false, ...}` with an error code (HTTP 500).
    Fail,
    /// An HTML body where JSON belongs (HTTP 502), as a proxy would send.
    NonJson,
    /// Close the connection without a reply.
    Drop,
    /// Handle the request, then hold the reply back this many milliseconds (a slow
    /// reply: the work is done, the answer comes late).
    Delay(u64),
    /// `/query` only: roll back and answer `success: true` with result items that lack
    /// `success: true` (wrangler's `migrations apply` then marks a file failed, exits 0).
    ItemUnsuccessful,
    /// Handle the request in full (a `/query` commits), then close the connection without
    /// a reply: "a request can commit and still fail to answer" (d1-as-it-is.md, 7).
    CommitThenDrop,
    /// An import's ingest fails after this many statements ("Network connection lost"),
    /// and the database returns to its state before the import.
    ImportFailAfter(u64),
}

impl FaultKind {
    /// The kind from its name and, for `delay` and `import_fail`, its number.
    pub fn from_name(name: &str, arg: Option<u64>) -> Result<FaultKind, String> {
        Ok(match name {
            "fail" => FaultKind::Fail,
            "non_json" => FaultKind::NonJson,
            "drop" => FaultKind::Drop,
            "item_unsuccessful" => FaultKind::ItemUnsuccessful,
            "commit_drop" => FaultKind::CommitThenDrop,
            "delay" => FaultKind::Delay(arg.unwrap_or(1000)),
            "import_fail" => FaultKind::ImportFailAfter(arg.unwrap_or(1)),
            other => {
                return Err(format!(
                    "unknown fault kind `{other}`: fail, non_json, drop, item_unsuccessful, \
                     commit_drop, delay:<ms> or import_fail:<statements>"
                ))
            }
        })
    }

    /// The name and number `from_name` takes.
    pub fn name(&self) -> (&'static str, Option<u64>) {
        match self {
            FaultKind::Fail => ("fail", None),
            FaultKind::NonJson => ("non_json", None),
            FaultKind::Drop => ("drop", None),
            FaultKind::ItemUnsuccessful => ("item_unsuccessful", None),
            FaultKind::CommitThenDrop => ("commit_drop", None),
            FaultKind::Delay(ms) => ("delay", Some(*ms)),
            FaultKind::ImportFailAfter(n) => ("import_fail", Some(*n)),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Fault {
    /// Only requests with this method (any when `None`).
    pub method: Option<String>,
    /// Only requests whose path contains this text (e.g. `/query`, `/time_travel/bookmark`).
    pub path_contains: String,
    /// The first matching request that fails, counting from 1.
    pub nth: u32,
    /// How many matching requests in a row fail from the nth on.
    pub times: u32,
    pub kind: FaultKind,
    seen: u32,
}

impl Fault {
    pub fn new(path_contains: &str, kind: FaultKind) -> Fault {
        Fault {
            method: None,
            path_contains: path_contains.to_string(),
            nth: 1,
            times: 1,
            kind,
            seen: 0,
        }
    }
    pub fn method(mut self, method: &str) -> Fault {
        self.method = Some(method.to_ascii_uppercase());
        self
    }
    pub fn nth(mut self, nth: u32) -> Fault {
        self.nth = nth.max(1);
        self
    }
    pub fn times(mut self, times: u32) -> Fault {
        self.times = times.max(1);
        self
    }

    /// `METHOD:path:nth:kind[:ms]`, e.g. `POST:/query:2:fail` or `*:/export:1:delay:3000`.
    pub fn parse(spec: &str) -> Result<Fault, String> {
        let parts: Vec<&str> = spec.split(':').collect();
        if parts.len() < 4 {
            return Err(format!(
                "fault `{spec}`: expected METHOD:path:nth:kind[:ms]"
            ));
        }
        let arg = match parts.get(4) {
            Some(n) => Some(
                n.parse()
                    .map_err(|_| format!("fault `{spec}`: `{n}` is not a number"))?,
            ),
            None => None,
        };
        let kind =
            FaultKind::from_name(parts[3], arg).map_err(|e| format!("fault `{spec}`: {e}"))?;
        let nth = parts[2]
            .parse()
            .map_err(|_| format!("fault `{spec}`: nth must be a number"))?;
        let mut fault = Fault::new(parts[1], kind).nth(nth);
        if parts[0] != "*" {
            fault = fault.method(parts[0]);
        }
        Ok(fault)
    }

    pub fn from_json(v: &Value) -> Result<Fault, String> {
        let path = v["path"].as_str().ok_or("fault needs \"path\"")?;
        let arg = v["delay_ms"].as_u64().or(v["after"].as_u64());
        let kind = FaultKind::from_name(v["kind"].as_str().unwrap_or(""), arg)?;
        let mut fault = Fault::new(path, kind)
            .nth(v["nth"].as_u64().unwrap_or(1) as u32)
            .times(v["times"].as_u64().unwrap_or(1) as u32);
        if let Some(m) = v["method"].as_str() {
            fault = fault.method(m);
        }
        Ok(fault)
    }

    pub fn to_json(&self) -> Value {
        let (kind, arg) = self.kind.name();
        let delay = arg;
        json!({"method": self.method, "path": self.path_contains, "nth": self.nth, "times": self.times,
               "kind": kind, "delay_ms": delay, "seen": self.seen})
    }
}

/// The faults in force; `check` counts a request against each and says which fires.
#[derive(Default)]
pub struct Faults {
    pub list: Vec<Fault>,
}

impl Faults {
    pub fn check(&mut self, method: &str, path: &str) -> Option<FaultKind> {
        let mut fired = None;
        for f in &mut self.list {
            let method_ok = f.method.as_deref().is_none_or(|m| m == method);
            if method_ok && path.contains(&f.path_contains) {
                f.seen += 1;
                if fired.is_none() && f.seen >= f.nth && f.seen < f.nth + f.times {
                    fired = Some(f.kind.clone());
                }
            }
        }
        fired
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nth_and_times() {
        let mut faults = Faults {
            list: vec![Fault::new("/query", FaultKind::Fail)
                .method("POST")
                .nth(2)
                .times(2)],
        };
        let fired: Vec<bool> = (0..5)
            .map(|_| faults.check("POST", "/a/query").is_some())
            .collect();
        assert_eq!(fired, vec![false, true, true, false, false]);
        assert!(faults.check("GET", "/a/query").is_none());
    }

    #[test]
    fn specs() {
        let f = Fault::parse("POST:/query:2:fail").unwrap();
        assert_eq!(
            (f.method.as_deref(), f.nth, f.kind),
            (Some("POST"), 2, FaultKind::Fail)
        );
        assert_eq!(
            Fault::parse("*:/export:1:delay:300").unwrap().kind,
            FaultKind::Delay(300)
        );
        assert!(Fault::parse("POST:/query").is_err());
        assert!(Fault::parse("POST:/query:x:fail").is_err());
    }
}
