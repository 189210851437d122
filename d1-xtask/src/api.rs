//! D1's HTTP API, called directly (feature `fleet`): the endpoints wrangler itself calls
//! (`GET d1/database` paged, `POST d1/database/<id>/query`, `GET .../time_travel/bookmark`),
//! for work over many databases in one process. Single-database commands keep going
//! through wrangler.
//!
//! It stays under a request rate (`Limiter`: by default Cloudflare's 1,200 requests per
//! 5 minutes per token) and waits out a 429 as long as its `Retry-After` says. Every
//! request is counted.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::exit::{failed, usage};

/// Cloudflare's API, as wrangler reaches it.
const DEFAULT_BASE: &str = "https://api.cloudflare.com/client/v4";

/// At most `requests` requests in any `window`: a sliding window over the send times.
pub(crate) struct Limiter {
    requests: usize,
    window: Duration,
    sent: Mutex<VecDeque<Instant>>,
}

impl Limiter {
    pub(crate) fn new(requests: usize, window: Duration) -> Limiter {
        Limiter {
            requests: requests.max(1),
            window,
            sent: Mutex::new(VecDeque::new()),
        }
    }

    /// Waits until one more request fits in the window, and counts it.
    fn acquire(&self) {
        loop {
            let wait = {
                let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
                let now = Instant::now();
                while sent
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= self.window)
                {
                    sent.pop_front();
                }
                if sent.len() < self.requests {
                    sent.push_back(now);
                    return;
                }
                self.window
                    .saturating_sub(now.duration_since(*sent.front().expect("full")))
            };
            std::thread::sleep(wait.max(Duration::from_millis(5)));
        }
    }
}

/// A failed API call: Cloudflare's code and message, or what went wrong on the way.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: u16,
    pub(crate) code: Option<i64>,
    pub(crate) message: String,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.code {
            Some(code) => write!(f, "{} [code: {code}] (HTTP {})", self.message, self.status),
            None if self.status == 0 => write!(f, "{}", self.message),
            None => write!(f, "{} (HTTP {})", self.message, self.status),
        }
    }
}

/// The account's D1 API.
pub(crate) struct Api {
    base: String,
    account: String,
    token: String,
    agent: ureq::Agent,
    limiter: Limiter,
    /// Requests sent (429s and retries included).
    pub(crate) requests: AtomicUsize,
    /// Replies that were 429.
    pub(crate) throttled: AtomicUsize,
}

impl Api {
    /// Where the API is: `CLOUDFLARE_API_BASE_URL` (as wrangler reads it), else Cloudflare's.
    pub(crate) fn base_from_env() -> String {
        std::env::var("CLOUDFLARE_API_BASE_URL")
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| DEFAULT_BASE.to_string())
    }

    /// The API of `account` at `base`, with `token`.
    pub(crate) fn new(
        base: String,
        account: String,
        token: String,
        limiter: Limiter,
    ) -> anyhow::Result<Api> {
        if !base.starts_with("https://") && !base.starts_with("http://") {
            return Err(usage!(
                "CLOUDFLARE_API_BASE_URL is `{base}`: it must be an http(s) URL (unset it for Cloudflare's API)"
            ));
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .into();
        Ok(Api {
            base: base.trim_end_matches('/').to_string(),
            account,
            token,
            agent,
            limiter,
            requests: AtomicUsize::new(0),
            throttled: AtomicUsize::new(0),
        })
    }

    /// One call: `result` of the reply. A 429 is waited out (its `Retry-After`, else 5 s)
    /// and sent again, up to 20 times.
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, ApiError> {
        let url = format!("{}/accounts/{}{path}", self.base, self.account);
        for _ in 0..20 {
            self.limiter.acquire();
            self.requests.fetch_add(1, Ordering::SeqCst);
            let auth = format!("Bearer {}", self.token);
            let sent = match (method, body) {
                ("GET", _) => self.agent.get(&url).header("Authorization", &auth).call(),
                (_, Some(b)) => self
                    .agent
                    .post(&url)
                    .header("Authorization", &auth)
                    .header("Content-Type", "application/json")
                    .send(b.to_string()),
                (_, None) => self
                    .agent
                    .post(&url)
                    .header("Authorization", &auth)
                    .send_empty(),
            };
            let mut resp = sent.map_err(|e| ApiError {
                status: 0,
                code: None,
                message: format!("{method} {path}: {e}"),
            })?;
            let status = resp.status().as_u16();
            if status == 429 {
                self.throttled.fetch_add(1, Ordering::SeqCst);
                let secs = resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .unwrap_or(5);
                std::thread::sleep(Duration::from_secs(secs.min(300)));
                continue;
            }
            let text = resp.body_mut().read_to_string().map_err(|e| ApiError {
                status,
                code: None,
                message: format!("{method} {path}: reading the reply: {e}"),
            })?;
            let value: Value = serde_json::from_str(&text).map_err(|_| ApiError {
                status,
                code: None,
                message: format!(
                    "{method} {path}: the reply is not JSON: {}",
                    text.chars().take(100).collect::<String>()
                ),
            })?;
            if value["success"] != true {
                let first = &value["errors"][0];
                return Err(ApiError {
                    status,
                    code: first["code"].as_i64(),
                    message: first["message"]
                        .as_str()
                        .unwrap_or("the API reported a failure")
                        .to_string(),
                });
            }
            return Ok(value["result"].clone());
        }
        Err(ApiError {
            status: 429,
            code: None,
            message: format!("{method} {path}: still rate-limited after 20 waits"),
        })
    }

    /// Every database of the account, `(uuid, name)`, in the API's order (paged).
    pub(crate) fn databases(&self) -> anyhow::Result<Vec<(String, String)>> {
        const PER_PAGE: usize = 100;
        let mut out = Vec::new();
        for page in 1.. {
            let result = self
                .call(
                    "GET",
                    &format!("/d1/database?per_page={PER_PAGE}&page={page}"),
                    None,
                )
                .map_err(|e| failed!("listing the account's D1 databases: {e}"))?;
            let items = result.as_array().cloned().unwrap_or_default();
            let n = items.len();
            for item in items {
                if let (Some(uuid), Some(name)) = (item["uuid"].as_str(), item["name"].as_str()) {
                    out.push((uuid.to_string(), name.to_string()));
                }
            }
            if n < PER_PAGE {
                break;
            }
        }
        Ok(out)
    }

    /// `sql` as one request (one transaction): the result items, one per statement.
    pub(crate) fn query(&self, uuid: &str, sql: &str) -> Result<Vec<Value>, ApiError> {
        let body = serde_json::json!({ "sql": sql });
        let result = self.call("POST", &format!("/d1/database/{uuid}/query"), Some(&body))?;
        Ok(result.as_array().cloned().unwrap_or_default())
    }

    /// The current Time Travel bookmark (the restore point of a fleet member).
    pub(crate) fn bookmark(&self, uuid: &str) -> Result<String, ApiError> {
        let result = self.call(
            "GET",
            &format!("/d1/database/{uuid}/time_travel/bookmark"),
            None,
        )?;
        result["bookmark"]
            .as_str()
            .map(String::from)
            .ok_or(ApiError {
                status: 200,
                code: None,
                message: "the bookmark reply has no bookmark".into(),
            })
    }

    pub(crate) fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limiter_holds_the_rate() {
        let limiter = Limiter::new(3, Duration::from_millis(300));
        let started = Instant::now();
        for _ in 0..7 {
            limiter.acquire();
        }
        // 7 requests at 3 per 300 ms: the 4th waits for the 1st window, the 7th for the 2nd.
        assert!(
            started.elapsed() >= Duration::from_millis(600),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn a_429_is_waited_out_and_counted() {
        let dir = crate::testutil::TempDir::new("api-429");
        let emu = d1_emulator::Emulator::start(d1_emulator::Options {
            data_dir: dir.path().join("emu"),
            token: Some("t".into()),
            fleets: vec![("tenant-".into(), 30)],
            rate_limit: Some(d1_emulator::RateLimit {
                requests: 2,
                window_ms: 1000,
            }),
            ..Default::default()
        })
        .unwrap();
        // A limiter looser than the API's: the 429s come, and are waited out.
        let api = Api::new(
            emu.base_url(),
            "acc".into(),
            "t".into(),
            Limiter::new(100, Duration::from_secs(1)),
        )
        .unwrap();
        let list: Vec<String> = (0..3)
            .map(|_| api.databases().unwrap().len().to_string())
            .collect();
        assert_eq!(list, ["30", "30", "30"]);
        assert!(api.throttled.load(Ordering::SeqCst) >= 1);
        assert_eq!(
            emu.rate_limited() as usize,
            api.throttled.load(Ordering::SeqCst)
        );
        let uuid = &api.databases().unwrap()[0].0;
        let items = api
            .query(uuid, "CREATE TABLE t(x); SELECT 1 AS one")
            .unwrap();
        assert_eq!(items[1]["results"][0]["one"], 1);
        assert!(!api.bookmark(uuid).unwrap().is_empty());
        let e = api.query(uuid, "SELECT * FROM nosuch").unwrap_err();
        assert_eq!(e.code, Some(7500), "{e}");
    }
}
