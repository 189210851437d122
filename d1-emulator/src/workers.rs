//! The Workers API that `wrangler deploy`, `versions list`, `deployments list|status` and
//! `rollback` call (wrangler 4.164), kept per script: versions (each upload), deployments
//! (which version serves 100% of traffic), settings. Paths are under
//! `/client/v4/accounts/<account>/workers/`; the bodies follow what the pinned wrangler's
//! bundle sends and reads (`wrangler-dist/cli.js`: `versions-api.ts`,
//! `validate-worker-props.ts`, `versions/rollback`). Faults apply as on D1's paths.
//!
//! What it checks as the real API does: a D1 binding must name a database of the account
//! (an upload that binds an unknown `id` is refused, nothing is kept); a deployment names
//! versions of that script whose percentages add up to 100; a Worker that does not exist
//! is 404 with code 10007 (wrangler's "not found" for scripts) or 10090 (for services).
//!
//! The state lives in `workers.json` in the data folder, so that a restarted emulator (or
//! a copied data folder) keeps it, as the D1 databases are kept.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::http::{Request, Response};
use crate::store::{iso_ms, md5_hex, now_ms};

/// Who the emulator says uploaded and deployed (D1's API answers the token's owner).
const AUTHOR: &str = "emulator@example.invalid";
/// The account's workers.dev subdomain.
const SUBDOMAIN: &str = "emulated";

#[derive(Default)]
pub struct Workers {
    file: PathBuf,
    /// By script name.
    scripts: BTreeMap<String, Value>,
    /// Last timestamp handed out (ms), so that every record is strictly later than the one
    /// before: wrangler orders deployments by `created_on`.
    last_ms: i64,
    counter: u64,
}

impl Workers {
    /// The state kept in `dir` (none yet: no Workers).
    pub fn open(dir: &Path) -> Workers {
        let file = dir.join("workers.json");
        let saved: Value = std::fs::read(&file)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null);
        let scripts = saved["scripts"]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        Workers {
            file,
            scripts,
            last_ms: saved["last_ms"].as_i64().unwrap_or(0),
            counter: saved["counter"].as_u64().unwrap_or(0),
        }
    }

    fn save(&self) {
        let value = json!({
            "scripts": self.scripts,
            "last_ms": self.last_ms,
            "counter": self.counter,
        });
        let tmp = self.file.with_extension("json.tmp");
        if std::fs::write(&tmp, serde_json::to_vec_pretty(&value).unwrap_or_default()).is_ok() {
            let _ = std::fs::rename(&tmp, &self.file);
        }
    }

    fn tick(&mut self) -> (i64, String) {
        let ms = now_ms().max(self.last_ms + 1);
        self.last_ms = ms;
        self.counter += 1;
        let h = md5_hex(format!("{ms}-{}-{}", self.counter, std::process::id()).as_bytes());
        let id = format!(
            "{}-{}-4{}-a{}-{}",
            &h[0..8],
            &h[8..12],
            &h[13..16],
            &h[17..20],
            &h[20..32]
        );
        (ms, id)
    }

    /// The version serving 100% of `script`'s traffic, with its main module's text: what a
    /// request to the Worker would run now (for tests).
    pub fn live(&self, script: &str) -> Option<(String, String)> {
        let s = self.scripts.get(script)?;
        let version = s["deployments"][0]["versions"]
            .as_array()?
            .iter()
            .find(|v| v["percentage"] == 100)?["version_id"]
            .as_str()?
            .to_string();
        let code = s["code"][&version].as_str().unwrap_or_default().to_string();
        Some((version, code))
    }

    /// Routes `workers/<rest>` of the account API; `None` when no route matches.
    pub fn route(
        &mut self,
        req: &Request,
        rest: &[&str],
        d1_exists: &dyn Fn(&str) -> bool,
    ) -> Option<Response> {
        let m = req.method.as_str();
        Some(match rest {
            ["subdomain"] if m == "GET" => ok(json!({ "subdomain": SUBDOMAIN })),
            ["services", name] if m == "GET" => self.service(name),
            ["workers", name] if m == "GET" => self.worker(name),
            ["scripts", name] if m == "PUT" => self.upload(req, name, true, d1_exists),
            ["scripts", name, "versions"] if m == "POST" => {
                self.upload(req, name, false, d1_exists)
            }
            ["scripts", name, "versions"] if m == "GET" => self.versions(name),
            ["scripts", name, "versions", id] if m == "GET" => self.version(name, id),
            ["scripts", name, "deployments"] if m == "GET" => self.deployments(name),
            ["scripts", name, "deployments"] if m == "POST" => self.deploy(req, name),
            ["scripts", name, "settings"] if m == "GET" => self.settings(name),
            // Secrets are not emulated: a Worker has none.
            ["scripts", name, "secrets"] if m == "GET" => match self.scripts.get(*name) {
                Some(_) => ok(json!([])),
                None => not_found_script(name),
            },
            ["scripts", name, "script-settings"] if m == "GET" => self.settings(name),
            ["scripts", name, "script-settings"] if m == "PATCH" => self.patch_settings(req, name),
            ["scripts", name, "subdomain"] if m == "GET" || m == "POST" => {
                match self.scripts.get(*name) {
                    Some(_) => ok(json!({ "enabled": true, "previews_enabled": true })),
                    None => not_found_script(name),
                }
            }
            _ => return None,
        })
    }

    fn service(&self, name: &str) -> Response {
        let Some(s) = self.scripts.get(name) else {
            return error(
                404,
                10090,
                "This Worker does not exist on your account. [code: 10090]",
            );
        };
        let script = json!({
            "id": name,
            "tag": s["tag"],
            "tags": s["settings"]["tags"].clone(),
            "etag": s["etag"],
            "handlers": ["fetch"],
            "last_deployed_from": "wrangler",
            "created_on": s["created_on"],
            "modified_on": s["modified_on"],
        });
        ok(json!({
            "id": name,
            "default_environment": {
                "environment": "production",
                "created_on": s["created_on"],
                "modified_on": s["modified_on"],
                "script": script,
            },
            "created_on": s["created_on"],
            "modified_on": s["modified_on"],
        }))
    }

    fn worker(&self, name: &str) -> Response {
        let Some(s) = self.scripts.get(name) else {
            return not_found_script(name);
        };
        ok(json!({
            "id": s["tag"],
            "name": name,
            "created_on": s["created_on"],
            "updated_on": s["modified_on"],
            "subdomain": { "enabled": true, "previews_enabled": true },
            "observability": { "enabled": false },
            "tags": s["settings"]["tags"].clone(),
            "logpush": false,
            "tail_consumers": [],
        }))
    }

    /// `PUT scripts/<name>` (the first deploy: a version deployed at once) or `POST
    /// scripts/<name>/versions` (a version, deployed by a later `POST deployments`).
    fn upload(
        &mut self,
        req: &Request,
        name: &str,
        deploy_now: bool,
        d1_exists: &dyn Fn(&str) -> bool,
    ) -> Response {
        if !deploy_now && !self.scripts.contains_key(name) {
            return not_found_script(name);
        }
        let form = match multipart(req) {
            Ok(f) => f,
            Err(e) => return error(400, 10021, &format!("Uploaded form is not valid: {e}")),
        };
        let Some(meta) = form
            .iter()
            .find(|(n, _)| n == "metadata")
            .and_then(|(_, b)| serde_json::from_slice::<Value>(b).ok())
        else {
            return error(400, 10021, "Uploaded form has no metadata part");
        };
        let main = meta["main_module"]
            .as_str()
            .or(meta["body_part"].as_str())
            .unwrap_or_default()
            .to_string();
        let Some(code) = form
            .iter()
            .find(|(n, _)| *n == main)
            .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
        else {
            return error(
                400,
                10021,
                &format!("No such module \"{main}\" in the upload (main_module)"),
            );
        };
        let bindings = meta["bindings"].as_array().cloned().unwrap_or_default();
        for b in &bindings {
            if b["type"] == "d1" {
                let id = b["id"].as_str().or(b["database_id"].as_str()).unwrap_or("");
                if !d1_exists(id) {
                    return error(
                        400,
                        10181,
                        &format!(
                            "binding {} of type d1 must have a valid `id` specified: no D1 database {id} in this account [code: 10181]",
                            b["name"].as_str().unwrap_or("?")
                        ),
                    );
                }
            }
        }
        let (ms, version_id) = self.tick();
        let etag = md5_hex(code.as_bytes());
        let now = iso_ms(ms);
        let mut annotations = json!({ "workers/triggered_by": "upload" });
        for key in ["workers/message", "workers/tag"] {
            if let Some(v) = meta["annotations"][key].as_str() {
                annotations[key] = json!(v);
            }
        }
        let script = self.scripts.entry(name.to_string()).or_insert_with(|| {
            json!({
                "tag": md5_hex(name.as_bytes()),
                "created_on": now,
                "versions": [],
                "deployments": [],
                "code": {},
                "settings": { "logpush": false, "tail_consumers": [], "observability": { "enabled": false }, "tags": [] },
            })
        });
        let number = script["versions"].as_array().map_or(0, Vec::len) + 1;
        let version = json!({
            "id": version_id,
            "number": number,
            "metadata": {
                "author_email": AUTHOR,
                "author_id": "emulator",
                "created_on": now,
                "modified_on": now,
                "source": "wrangler",
                "hasPreview": false,
            },
            "annotations": annotations,
            "resources": {
                "script": { "etag": etag, "handlers": ["fetch"], "last_deployed_from": "wrangler" },
                "script_runtime": {
                    "compatibility_date": meta["compatibility_date"],
                    "compatibility_flags": meta["compatibility_flags"].as_array().cloned().unwrap_or_default(),
                    "usage_model": "standard",
                },
                "bindings": bindings,
            },
            "startup_time_ms": 1,
        });
        script["versions"]
            .as_array_mut()
            .expect("a list")
            .push(version.clone());
        script["code"][&version_id] = json!(code);
        script["etag"] = json!(etag);
        script["modified_on"] = json!(now);
        if deploy_now {
            let deployment = json!({
                "id": self.tick().1,
                "source": "wrangler",
                "strategy": "percentage",
                "author_email": AUTHOR,
                "created_on": iso_ms(self.last_ms),
                "annotations": { "workers/triggered_by": "upload" },
                "versions": [{ "version_id": version_id, "percentage": 100 }],
            });
            let script = self.scripts.get_mut(name).expect("just made");
            script["deployments"]
                .as_array_mut()
                .expect("a list")
                .insert(0, deployment);
            self.save();
            let s = &self.scripts[name];
            return ok(json!({
                "id": name,
                "tag": s["tag"],
                "etag": etag,
                "handlers": ["fetch"],
                "deployment_id": version_id,
                "startup_time_ms": 1,
                "created_on": s["created_on"],
                "modified_on": now,
                "compatibility_date": meta["compatibility_date"],
                "usage_model": "standard",
            }));
        }
        self.save();
        ok(version)
    }

    fn versions(&self, name: &str) -> Response {
        let Some(s) = self.scripts.get(name) else {
            return not_found_script(name);
        };
        let mut items = s["versions"].as_array().cloned().unwrap_or_default();
        items.reverse();
        ok(json!({ "items": items }))
    }

    fn version(&self, name: &str, id: &str) -> Response {
        let Some(s) = self.scripts.get(name) else {
            return not_found_script(name);
        };
        match s["versions"]
            .as_array()
            .and_then(|v| v.iter().find(|v| v["id"] == id))
        {
            Some(v) => ok(v.clone()),
            None => error(404, 10234, &format!("Version {id} not found [code: 10234]")),
        }
    }

    fn deployments(&self, name: &str) -> Response {
        match self.scripts.get(name) {
            Some(s) => ok(json!({ "deployments": s["deployments"] })),
            None => not_found_script(name),
        }
    }

    /// `POST scripts/<name>/deployments`: `{strategy, versions: [{version_id, percentage}],
    /// annotations}`; the versions must be the script's and add up to 100%.
    fn deploy(&mut self, req: &Request, name: &str) -> Response {
        if !self.scripts.contains_key(name) {
            return not_found_script(name);
        }
        let Ok(body) = serde_json::from_slice::<Value>(&req.body) else {
            return error(400, 10021, "the deployment is not JSON");
        };
        let versions = body["versions"].as_array().cloned().unwrap_or_default();
        let known = |id: &str| {
            self.scripts[name]["versions"]
                .as_array()
                .is_some_and(|v| v.iter().any(|v| v["id"] == id))
        };
        if versions.is_empty()
            || versions
                .iter()
                .any(|v| !known(v["version_id"].as_str().unwrap_or("")))
        {
            return error(
                400,
                10234,
                "a deployment must name versions of this Worker [code: 10234]",
            );
        }
        let total: f64 = versions
            .iter()
            .map(|v| v["percentage"].as_f64().unwrap_or(0.0))
            .sum();
        if (total - 100.0).abs() > 1e-9 {
            return error(
                400,
                10231,
                &format!(
                    "the percentages of a deployment add up to {total}, not 100 [code: 10231]"
                ),
            );
        }
        // wrangler knows the triggers upload, secret, rollback and promotion: deploying the
        // newest version is taken for the upload's own deployment, an older one for a
        // rollback.
        let newest = self.scripts[name]["versions"]
            .as_array()
            .and_then(|v| v.last())
            .map(|v| v["id"].clone());
        let trigger = if versions.len() == 1 && Some(&versions[0]["version_id"]) == newest.as_ref()
        {
            "upload"
        } else {
            "rollback"
        };
        let (ms, id) = self.tick();
        let mut annotations = json!({ "workers/triggered_by": trigger });
        if let Some(msg) = body["annotations"]["workers/message"].as_str() {
            annotations["workers/message"] = json!(msg);
        }
        let deployment = json!({
            "id": id,
            "source": "wrangler",
            "strategy": "percentage",
            "author_email": AUTHOR,
            "created_on": iso_ms(ms),
            "annotations": annotations,
            "versions": versions,
        });
        let script = self.scripts.get_mut(name).expect("checked");
        script["deployments"]
            .as_array_mut()
            .expect("a list")
            .insert(0, deployment.clone());
        script["modified_on"] = json!(iso_ms(ms));
        self.save();
        ok(deployment)
    }

    fn settings(&self, name: &str) -> Response {
        match self.scripts.get(name) {
            Some(s) => ok(s["settings"].clone()),
            None => not_found_script(name),
        }
    }

    fn patch_settings(&mut self, req: &Request, name: &str) -> Response {
        let Some(s) = self.scripts.get_mut(name) else {
            return not_found_script(name);
        };
        if let Ok(Value::Object(patch)) = serde_json::from_slice::<Value>(&req.body) {
            for (k, v) in patch {
                if !v.is_null() {
                    s["settings"][&k] = v;
                }
            }
        }
        let settings = s["settings"].clone();
        self.save();
        ok(settings)
    }
}

use crate::api::{envelope as ok, error};

fn not_found_script(name: &str) -> Response {
    error(
        404,
        10007,
        &format!("This Worker ({name}) does not exist on your account. [code: 10007]"),
    )
}

/// The parts of a `multipart/form-data` body: (name, bytes).
fn multipart(req: &Request) -> Result<Vec<(String, Vec<u8>)>, String> {
    let ct = req.header("content-type").unwrap_or_default();
    let boundary = ct
        .split(';')
        .filter_map(|p| p.trim().strip_prefix("boundary="))
        .next()
        .map(|b| b.trim_matches('"'))
        .ok_or("no multipart boundary in Content-Type")?;
    let delimiter = format!("--{boundary}");
    let body = &req.body;
    let mut parts = Vec::new();
    let positions: Vec<usize> = find_all(body, delimiter.as_bytes());
    for pair in positions.windows(2) {
        let start = pair[0] + delimiter.len();
        let end = pair[1];
        let chunk = &body[start..end];
        let chunk = chunk.strip_prefix(b"\r\n").unwrap_or(chunk);
        let chunk = chunk.strip_suffix(b"\r\n").unwrap_or(chunk);
        let split = find_all(chunk, b"\r\n\r\n")
            .first()
            .copied()
            .ok_or("a part without headers")?;
        let headers = String::from_utf8_lossy(&chunk[..split]);
        let name = headers
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("content-disposition"))
            .and_then(|l| {
                l.split(';')
                    .filter_map(|p| p.trim().strip_prefix("name="))
                    .next()
            })
            .map(|n| n.trim_matches('"').to_string())
            .ok_or("a part without a name")?;
        parts.push((name, chunk[split + 4..].to_vec()));
    }
    if parts.is_empty() {
        return Err("no parts".into());
    }
    Ok(parts)
}

fn find_all(hay: &[u8], needle: &[u8]) -> Vec<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return Vec::new();
    }
    (0..=hay.len() - needle.len())
        .filter(|&i| &hay[i..i + needle.len()] == needle)
        .collect()
}
