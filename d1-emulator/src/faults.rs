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
        let kind = match (parts[3], parts.get(4)) {
            ("fail", _) => FaultKind::Fail,
            ("non_json", _) => FaultKind::NonJson,
            ("drop", _) => FaultKind::Drop,
            ("item_unsuccessful", _) => FaultKind::ItemUnsuccessful,
            ("delay", Some(ms)) => FaultKind::Delay(
                ms.parse()
                    .map_err(|_| format!("fault `{spec}`: bad delay"))?,
            ),
            _ => {
                return Err(format!(
                    "fault `{spec}`: kind is fail, non_json, drop, item_unsuccessful or delay:<ms>"
                ))
            }
        };
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
        let kind = match v["kind"].as_str().unwrap_or("") {
            "fail" => FaultKind::Fail,
            "non_json" => FaultKind::NonJson,
            "drop" => FaultKind::Drop,
            "item_unsuccessful" => FaultKind::ItemUnsuccessful,
            "delay" => FaultKind::Delay(v["delay_ms"].as_u64().unwrap_or(1000)),
            other => return Err(format!("unknown fault kind `{other}`")),
        };
        let mut fault = Fault::new(path, kind)
            .nth(v["nth"].as_u64().unwrap_or(1) as u32)
            .times(v["times"].as_u64().unwrap_or(1) as u32);
        if let Some(m) = v["method"].as_str() {
            fault = fault.method(m);
        }
        Ok(fault)
    }

    pub fn to_json(&self) -> Value {
        let (kind, delay) = match &self.kind {
            FaultKind::Fail => ("fail", None),
            FaultKind::NonJson => ("non_json", None),
            FaultKind::Drop => ("drop", None),
            FaultKind::ItemUnsuccessful => ("item_unsuccessful", None),
            FaultKind::Delay(ms) => ("delay", Some(*ms)),
        };
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
