//! A loopback server for the REST calls the `gcp` source makes, shaped
//! after Google's discovery documents (`iam/v1`, `cloudresourcemanager/v3`,
//! `secretmanager/v1`, `policyanalyzer/v1`): `pageSize` + `pageToken` /
//! `nextPageToken` paging, Google's error body (`{"error": {"code",
//! "message", "status"}}`), Secret Manager names with the project NUMBER,
//! SYSTEM_MANAGED keys unless `keyTypes=USER_MANAGED`, and the metadata
//! server's token endpoint. Every API is served on one port.
//!
//! Auth: a self-signed service-account JWT (RS256, verified against the
//! test key's public half: `kid`, `iss`, `sub`, `scope`, `exp`) or the
//! metadata server's access token. It records every request; a path it
//! does not serve, a wrong method, missing auth, a key list without
//! `keyTypes=USER_MANAGED`, or any secret value access (`:access`) is a
//! violation for the test to assert on.
#![allow(dead_code)]

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

pub const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";

/// A fault: requests whose path starts with `prefix` get `status`, `times` times.
#[derive(Debug, Clone)]
pub struct Fault {
    pub prefix: String,
    pub status: u16,
    pub times: u32,
}

#[derive(Default)]
pub struct State {
    /// The service account key the JWT must be signed with: (kid, email, public key DER).
    pub key: Option<(String, String, Vec<u8>)>,
    /// The metadata server's access token (also accepted as a bearer).
    pub access_token: Option<String>,
    pub projects: Vec<Value>,
    pub folders: Vec<Value>,
    /// `projects/<number>`, `folders/<id>`, `organizations/<id>` → bindings.
    pub policies: BTreeMap<String, Vec<Value>>,
    /// project id → accounts.
    pub accounts: BTreeMap<String, Vec<Value>>,
    /// account email → keys (USER_MANAGED and SYSTEM_MANAGED).
    pub keys: BTreeMap<String, Vec<Value>>,
    /// project number → secrets.
    pub secrets: BTreeMap<String, Vec<Value>>,
    /// secret name → versions.
    pub versions: BTreeMap<String, Vec<Value>>,
    /// (project id, activity type) → activities.
    pub activities: BTreeMap<(String, String), Vec<Value>>,
    /// At most this many items a page (≤ pageSize).
    pub page: Option<usize>,
    pub faults: Vec<Fault>,
    /// Every request: `METHOD path?query`.
    pub requests: Vec<String>,
    pub violations: Vec<String>,
    /// Time spent building responses (the benchmark subtracts it).
    pub busy: std::time::Duration,
}

pub struct Mock {
    pub port: u16,
    pub state: Arc<Mutex<State>>,
}

/// The public key DER of a PKCS#8 PEM (the test key).
pub fn public_der(pem: &str) -> Vec<u8> {
    use ring::signature::KeyPair;
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    ring::signature::RsaKeyPair::from_pkcs8(&der)
        .unwrap()
        .public_key()
        .as_ref()
        .to_vec()
}

impl Mock {
    pub fn start() -> Mock {
        let state = Arc::new(Mutex::new(State::default()));
        let (tx, rx) = std::sync::mpsc::channel();
        let st = state.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(listener.local_addr().unwrap().port()).unwrap();
                loop {
                    let (stream, _) = listener.accept().await.unwrap();
                    let st = st.clone();
                    tokio::spawn(async move {
                        let svc = hyper::service::service_fn(
                            move |req: Request<hyper::body::Incoming>| {
                                let st = st.clone();
                                async move {
                                    let (parts, body) = req.into_parts();
                                    let body = body
                                        .collect()
                                        .await
                                        .map(|b| b.to_bytes())
                                        .unwrap_or_default();
                                    let started = std::time::Instant::now();
                                    let r = handle(&st, &parts, &body);
                                    st.lock().unwrap().busy += started.elapsed();
                                    Ok::<_, std::convert::Infallible>(r)
                                }
                            },
                        );
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                            .await;
                    });
                }
            });
        });
        Mock {
            port: rx.recv().unwrap(),
            state,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().unwrap())
    }

    /// `endpoints:` of a source config pointing every API here.
    pub fn endpoints_yaml(&self) -> String {
        let u = self.url();
        format!("{{iam: \"{u}\", resourcemanager: \"{u}\", secretmanager: \"{u}\", policyanalyzer: \"{u}\"}}")
    }

    pub fn add_project(&self, id: &str, number: &str, parent: &str, labels: Value) {
        self.with(|s| {
            s.projects.push(json!({
                "name": format!("projects/{number}"), "projectId": id, "parent": parent,
                "state": "ACTIVE", "displayName": id, "labels": labels,
                "createTime": "2020-01-01T00:00:00.000Z", "etag": "W/\"e1\""
            }))
        });
    }

    pub fn add_folder(&self, id: &str, parent: &str) {
        self.with(|s| {
            s.folders.push(json!({
                "name": format!("folders/{id}"), "parent": parent, "displayName": id,
                "state": "ACTIVE", "etag": "W/\"f1\""
            }))
        });
    }

    pub fn set_policy(&self, resource: &str, bindings: Value) {
        let b = bindings.as_array().cloned().unwrap_or_default();
        self.with(|s| s.policies.insert(resource.into(), b));
    }

    pub fn add_account(&self, project: &str, email: &str, unique_id: &str, disabled: bool) {
        let mut a = json!({
            "name": format!("projects/{project}/serviceAccounts/{email}"),
            "projectId": project, "uniqueId": unique_id, "email": email,
            "displayName": email.split('@').next().unwrap_or(""),
            "oauth2ClientId": unique_id, "etag": "MDEwMjE5MjA="
        });
        if disabled {
            a["disabled"] = json!(true);
        }
        self.with(|s| {
            s.accounts.entry(project.into()).or_default().push(a);
            // Every account has Google-managed keys too.
            s.keys.entry(email.into()).or_default().push(json!({
                "name": format!("projects/{project}/serviceAccounts/{email}/keys/ffffffffffffffffffffffffffffffff{}", &unique_id[unique_id.len().saturating_sub(8)..]),
                "validAfterTime": "2020-01-01T00:00:00Z", "validBeforeTime": "2020-01-17T00:00:00Z",
                "keyAlgorithm": "KEY_ALG_RSA_2048", "keyOrigin": "GOOGLE_PROVIDED", "keyType": "SYSTEM_MANAGED"
            }));
        });
    }

    pub fn set_account_disabled(&self, project: &str, email: &str, disabled: bool) {
        self.with(|s| {
            for a in s.accounts.entry(project.into()).or_default() {
                if a["email"] == email {
                    a["disabled"] = json!(disabled);
                }
            }
        });
    }

    pub fn add_key(
        &self,
        project: &str,
        email: &str,
        id: &str,
        after: &str,
        before: &str,
        disabled: bool,
    ) {
        let mut k = json!({
            "name": format!("projects/{project}/serviceAccounts/{email}/keys/{id}"),
            "validAfterTime": after, "validBeforeTime": before,
            "keyAlgorithm": "KEY_ALG_RSA_2048", "keyOrigin": "GOOGLE_PROVIDED", "keyType": "USER_MANAGED"
        });
        if disabled {
            k["disabled"] = json!(true);
        }
        self.with(|s| s.keys.entry(email.into()).or_default().push(k));
    }

    pub fn set_key_disabled(&self, email: &str, id: &str, disabled: bool) {
        self.with(|s| {
            let mut found = false;
            for k in s.keys.entry(email.into()).or_default() {
                if k["name"]
                    .as_str()
                    .unwrap_or("")
                    .ends_with(&format!("/keys/{id}"))
                {
                    k["disabled"] = json!(disabled);
                    found = true;
                }
            }
            assert!(found, "key {id} not found");
        });
    }

    pub fn delete_key(&self, email: &str, id: &str) {
        self.with(|s| {
            let v = s.keys.entry(email.into()).or_default();
            let before = v.len();
            v.retain(|k| {
                !k["name"]
                    .as_str()
                    .unwrap_or("")
                    .ends_with(&format!("/keys/{id}"))
            });
            assert_eq!(before, v.len() + 1, "key {id} not found");
        });
    }

    pub fn add_secret(&self, number: &str, id: &str, secret: Value, versions: &[(&str, &str)]) {
        let name = format!("projects/{number}/secrets/{id}");
        let mut s = secret;
        s["name"] = json!(name);
        s["replication"] = json!({"automatic": {}});
        s["etag"] = json!("\"1\"");
        let vs: Vec<Value> = versions
            .iter()
            .enumerate()
            .map(|(i, (created, state))| {
                let mut v = json!({"name": format!("{name}/versions/{}", i + 1), "createTime": created, "state": state, "etag": "\"1\""});
                if *state == "DESTROYED" {
                    v["destroyTime"] = json!(created);
                }
                v
            })
            .collect();
        self.with(|st| {
            st.secrets.entry(number.into()).or_default().push(s);
            st.versions.insert(name, vs);
        });
    }

    pub fn add_activity(
        &self,
        project: &str,
        number: &str,
        ty: &str,
        resource: &str,
        unique_id: &str,
        at: &str,
    ) {
        let full = format!("//iam.googleapis.com/projects/{project}/serviceAccounts/{resource}");
        let inner = json!({"fullResourceName": full, "projectNumber": number, "serviceAccountId": unique_id});
        let activity = if ty == "serviceAccountKeyLastAuthentication" {
            json!({"lastAuthenticatedTime": at, "serviceAccountKey": inner})
        } else {
            json!({"lastAuthenticatedTime": at, "serviceAccount": inner})
        };
        self.with(|s| {
            s.activities
                .entry((project.into(), ty.into()))
                .or_default()
                .push(json!({
                    "fullResourceName": full, "activityType": ty, "activity": activity,
                    "observationPeriod": {"startTime": "2025-01-01T00:00:00Z", "endTime": at}
                }))
        });
    }

    pub fn fault(&self, prefix: &str, status: u16, times: u32) {
        self.with(|s| {
            s.faults.push(Fault {
                prefix: prefix.into(),
                status,
                times,
            })
        });
    }
}

fn respond(code: u16, body: Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(code)
        .header("content-type", "application/json; charset=UTF-8")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

/// Google's error body.
pub fn error(code: u16, message: &str) -> Response<Full<Bytes>> {
    let status = match code {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        503 => "UNAVAILABLE",
        _ => "INTERNAL",
    };
    respond(
        code,
        json!({"error": {"code": code, "message": message, "status": status}}),
    )
}

fn query_map(q: &str) -> BTreeMap<String, String> {
    q.split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_string(), percent_decode(v)))
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(x) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(x);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One page of `items` under `field`.
fn page(
    s: &State,
    items: Vec<Value>,
    field: &str,
    q: &BTreeMap<String, String>,
    max: usize,
) -> Response<Full<Bytes>> {
    let size = q
        .get("pageSize")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(max)
        .min(max)
        .min(s.page.unwrap_or(usize::MAX))
        .max(1);
    let start = q
        .get("pageToken")
        .and_then(|t| t.strip_prefix("off-"))
        .and_then(|t| t.parse::<usize>().ok())
        .unwrap_or(0);
    let end = (start + size).min(items.len());
    let mut body = json!({});
    if start < end {
        body[field] = Value::Array(items[start..end].to_vec());
    }
    if end < items.len() {
        body["nextPageToken"] = json!(format!("off-{end}"));
    }
    respond(200, body)
}

fn b64json(s: &str) -> Option<Value> {
    let b = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .ok()?;
    serde_json::from_slice(&b).ok()
}

/// Whether the bearer is a valid self-signed JWT of the test key, or the
/// metadata server's token.
fn authorized(s: &State, auth: &str) -> bool {
    let Some(tok) = auth.strip_prefix("Bearer ") else {
        return false;
    };
    if s.access_token.as_deref() == Some(tok) {
        return true;
    }
    let Some((kid, email, public)) = &s.key else {
        return false;
    };
    let parts: Vec<&str> = tok.split('.').collect();
    if parts.len() != 3 {
        return false;
    }
    let (Some(h), Some(c)) = (b64json(parts[0]), b64json(parts[1])) else {
        return false;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let claims_ok = h["alg"] == "RS256"
        && h["kid"] == kid.as_str()
        && c["iss"] == email.as_str()
        && c["sub"] == email.as_str()
        && c["scope"] == CLOUD_PLATFORM
        && c["exp"]
            .as_i64()
            .is_some_and(|e| e > now && e <= now + 3700);
    let Ok(sig) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(parts[2]) else {
        return false;
    };
    claims_ok
        && ring::signature::UnparsedPublicKey::new(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            public,
        )
        .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
        .is_ok()
}

fn handle(
    st: &Arc<Mutex<State>>,
    parts: &hyper::http::request::Parts,
    body: &[u8],
) -> Response<Full<Bytes>> {
    let mut s = st.lock().unwrap();
    let method = parts.method.as_str().to_string();
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().unwrap_or("").to_string();
    s.requests.push(format!("{method} {path}?{query}"));
    let q = query_map(&query);
    let header = |n: &str| {
        parts
            .headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };

    if path == "/computeMetadata/v1/instance/service-accounts/default/token" {
        if header("metadata-flavor") != "Google" {
            s.violations
                .push("metadata request without Metadata-Flavor".into());
            return error(403, "Missing Metadata-Flavor:Google header.");
        }
        return match &s.access_token {
            Some(t) => respond(
                200,
                json!({"access_token": t, "expires_in": 3599, "token_type": "Bearer"}),
            ),
            None => error(404, "no service account"),
        };
    }
    if !authorized(&s, &header("authorization")) {
        return error(401, "Request had invalid authentication credentials.");
    }
    if let Some(f) = s
        .faults
        .iter_mut()
        .find(|f| f.times > 0 && path.starts_with(&f.prefix))
    {
        f.times -= 1;
        let code = f.status;
        return error(
            code,
            if code == 429 {
                "Quota exceeded for quota metric 'Read requests'."
            } else {
                "The service is currently unavailable."
            },
        );
    }
    if path.contains(":access") {
        s.violations.push(format!("secret value read: {path}"));
        return error(403, "denied");
    }
    let seg: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let get = method == "GET";
    match seg.as_slice() {
        ["v3", "projects:search"] if get => {
            let active = q.get("query").is_some_and(|x| x.contains("state:ACTIVE"));
            let items: Vec<Value> = s
                .projects
                .iter()
                .filter(|p| !active || p["state"] == "ACTIVE")
                .cloned()
                .collect();
            page(&s, items, "projects", &q, 1000)
        }
        ["v3", "projects", id] if get => {
            let p = s
                .projects
                .iter()
                .find(|p| p["projectId"] == *id || p["name"] == format!("projects/{id}"));
            match p {
                Some(p) => respond(200, p.clone()),
                None => error(403, "The caller does not have permission"),
            }
        }
        ["v3", "folders", id] if get => match s
            .folders
            .iter()
            .find(|f| f["name"] == format!("folders/{id}"))
        {
            Some(f) => respond(200, f.clone()),
            None => error(403, "The caller does not have permission"),
        },
        ["v3", kind, rest] if method == "POST" && rest.ends_with(":getIamPolicy") => {
            let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            if body.pointer("/options/requestedPolicyVersion") != Some(&json!(3)) {
                s.violations.push(format!(
                    "getIamPolicy without requestedPolicyVersion 3: {path}"
                ));
            }
            let name = format!("{kind}/{}", rest.trim_end_matches(":getIamPolicy"));
            match s.policies.get(&name) {
                Some(b) => respond(
                    200,
                    json!({"version": 1, "etag": "BwXhqDSEIbg=", "bindings": b}),
                ),
                None if *kind == "projects" || *kind == "folders" || *kind == "organizations" => {
                    respond(200, json!({"version": 1, "etag": "ACAB"}))
                }
                None => error(404, "not found"),
            }
        }
        ["v1", "projects", p, "serviceAccounts"] if get => {
            let items = s.accounts.get(*p).cloned().unwrap_or_default();
            if !s.projects.iter().any(|x| x["projectId"] == *p) {
                return error(403, "Permission 'iam.serviceAccounts.list' denied");
            }
            page(&s, items, "accounts", &q, 100)
        }
        ["v1", "projects", _p, "serviceAccounts", email, "keys"] if get => {
            let user_only = q.get("keyTypes").map(String::as_str) == Some("USER_MANAGED");
            if !user_only {
                s.violations.push(format!(
                    "key list without keyTypes=USER_MANAGED: {path}?{query}"
                ));
            }
            let keys: Vec<Value> = s
                .keys
                .get(*email)
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|k| !user_only || k["keyType"] == "USER_MANAGED")
                .collect();
            let mut body = json!({});
            if !keys.is_empty() {
                body["keys"] = Value::Array(keys);
            }
            respond(200, body)
        }
        ["v1", "projects", p, "locations", "global", "activityTypes", ty, "activities:query"]
            if get =>
        {
            let items = s
                .activities
                .get(&(p.to_string(), ty.to_string()))
                .cloned()
                .unwrap_or_default();
            page(&s, items, "activities", &q, 1000)
        }
        ["v1", "projects", p, "secrets"] if get => {
            let number = s
                .projects
                .iter()
                .find(|x| x["projectId"] == *p || x["name"] == format!("projects/{p}"))
                .and_then(|x| {
                    x["name"]
                        .as_str()
                        .map(|n| n.trim_start_matches("projects/").to_string())
                });
            match number {
                None => error(403, "Permission 'secretmanager.secrets.list' denied"),
                Some(n) => {
                    let items = s.secrets.get(&n).cloned().unwrap_or_default();
                    page(&s, items, "secrets", &q, 25000)
                }
            }
        }
        ["v1", "projects", n, "secrets", id, "versions"] if get => {
            let name = format!("projects/{n}/secrets/{id}");
            match s.versions.get(&name).cloned() {
                Some(v) => page(&s, v, "versions", &q, 25000),
                None => error(404, "Secret not found"),
            }
        }
        _ => {
            s.violations.push(format!("unexpected {method} {path}"));
            error(404, "not found")
        }
    }
}
