//! A loopback mock of the GitHub secret scanning REST API, shaped after the
//! public description (github/rest-api-description): org, enterprise and
//! repository alert lists, `per_page` + cursor pagination through `Link`,
//! ETag / `If-None-Match`, bearer auth, `hide_secret`, rate-limit headers,
//! and faults injected per request.
#![allow(dead_code)]

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone)]
pub enum Fault {
    Status(u16),
    /// 403 with x-ratelimit-remaining 0 and a reset `secs` from now.
    PrimaryLimit {
        reset_in: u64,
    },
    /// 429 with Retry-After.
    SecondaryLimit {
        retry_after: u64,
    },
}

#[derive(Default)]
pub struct State {
    pub token: String,
    /// full_name → alerts (JSON as the API returns them).
    pub repos: BTreeMap<String, Vec<Value>>,
    pub orgs: BTreeMap<String, Vec<String>>,
    /// Repositories the token cannot read (404 like GitHub).
    pub hidden: HashSet<String>,
    pub faults: VecDeque<Fault>,
    pub requests: u64,
    /// Requests answered so far (after `delay`).
    pub answered: u64,
    pub not_modified: u64,
    /// How long the server takes to answer each request (a slow upstream).
    pub delay: std::time::Duration,
    pub paths: Vec<String>,
    /// `host:port` next-page links point to instead of this server (an
    /// upstream that sends the client elsewhere).
    pub next_host: Option<String>,
}

pub struct Mock {
    pub port: u16,
    pub state: Arc<Mutex<State>>,
}

impl Mock {
    pub fn start(token: &str) -> Mock {
        let state = Arc::new(Mutex::new(State {
            token: token.into(),
            ..Default::default()
        }));
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
                        let svc = hyper::service::service_fn(move |req| {
                            let st = st.clone();
                            async move {
                                let delay = st.lock().unwrap().delay;
                                if !delay.is_zero() {
                                    tokio::time::sleep(delay).await;
                                }
                                let r = handle(&st, req);
                                st.lock().unwrap().answered += 1;
                                Ok::<_, std::convert::Infallible>(r)
                            }
                        });
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
}

/// An alert as the API returns it.
#[allow(clippy::too_many_arguments)]
pub fn alert(
    repo: &str,
    number: u64,
    secret_type: &str,
    secret: &str,
    state: &str,
    resolution: Option<&str>,
    validity: &str,
) -> Value {
    let resolved = state == "resolved";
    json!({
        "number": number,
        "created_at": "2026-01-10T08:00:00Z",
        "updated_at": "2026-01-10T08:00:00Z",
        "url": format!("https://api.github.com/repos/{repo}/secret-scanning/alerts/{number}"),
        "html_url": format!("https://github.com/{repo}/security/secret-scanning/{number}"),
        "locations_url": format!("https://api.github.com/repos/{repo}/secret-scanning/alerts/{number}/locations"),
        "state": state,
        "resolution": resolution,
        "resolved_at": if resolved { json!("2026-01-11T08:00:00Z") } else { Value::Null },
        "resolved_by": if resolved { json!({"login": "sec-lead", "id": 1, "type": "User"}) } else { Value::Null },
        "resolution_comment": Value::Null,
        "secret_type": secret_type,
        "secret_type_display_name": secret_type,
        "provider": "Example",
        "provider_slug": "example",
        "secret": secret,
        "is_base64_encoded": false,
        "repository": {"id": 42, "name": repo.split('/').nth(1).unwrap_or(repo), "full_name": repo, "private": true,
                        "owner": {"login": repo.split('/').next().unwrap_or(repo), "id": 7, "type": "Organization"}},
        "push_protection_bypassed": false,
        "push_protection_bypassed_by": Value::Null,
        "push_protection_bypassed_at": Value::Null,
        "validity": validity,
        "publicly_leaked": false,
        "multi_repo": false,
        "first_location_detected": {"path": "config/app.env", "start_line": 4, "end_line": 4, "start_column": 1, "end_column": 40,
            "blob_sha": "b10b", "blob_url": "https://api.github.com/x", "commit_sha": "c0ffee", "commit_url": "https://api.github.com/y"},
        "has_more_locations": false,
        "assigned_to": Value::Null
    })
}

fn respond(status: u16, headers: &[(&str, String)], body: Bytes) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = StatusCode::from_u16(status).unwrap();
    for (k, v) in headers {
        r.headers_mut().insert(
            hyper::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            hyper::header::HeaderValue::from_str(v).unwrap(),
        );
    }
    r.headers_mut().insert(
        "content-type",
        "application/json; charset=utf-8".parse().unwrap(),
    );
    r
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn handle(state: &Mutex<State>, req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let mut st = state.lock().unwrap();
    st.requests += 1;
    let path = req.uri().path().to_string();
    st.paths.push(req.uri().to_string());
    let limit_headers = vec![
        ("x-ratelimit-limit", "5000".to_string()),
        ("x-ratelimit-remaining", "4999".to_string()),
        ("x-ratelimit-reset", (now() + 3600).to_string()),
        ("x-ratelimit-resource", "core".to_string()),
    ];
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if auth != format!("Bearer {}", st.token) {
        return respond(401, &limit_headers, Bytes::from_static(br#"{"message":"Bad credentials","documentation_url":"https://docs.github.com/rest","status":"401"}"#));
    }
    if let Some(f) = st.faults.pop_front() {
        return match f {
            Fault::Status(s) => respond(
                s,
                &limit_headers,
                Bytes::from_static(br#"{"message":"Server Error"}"#),
            ),
            Fault::PrimaryLimit { reset_in } => respond(
                403,
                &[
                    ("x-ratelimit-limit", "5000".into()),
                    ("x-ratelimit-remaining", "0".into()),
                    ("x-ratelimit-reset", (now() + reset_in).to_string()),
                ],
                Bytes::from_static(
                    br#"{"message":"API rate limit exceeded for installation ID 1."}"#,
                ),
            ),
            Fault::SecondaryLimit { retry_after } => respond(
                429,
                &[("retry-after", retry_after.to_string())],
                Bytes::from_static(br#"{"message":"You have exceeded a secondary rate limit."}"#),
            ),
        };
    }
    let q: BTreeMap<String, String> = req
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect();
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    // The scope's repositories, in order; alerts are paged across them
    // without copying the whole listing.
    let repos: Vec<String> = match segs.as_slice() {
        ["orgs", org, "secret-scanning", "alerts"]
        | ["enterprises", org, "secret-scanning", "alerts"] => {
            let Some(repos) = st.orgs.get(*org) else {
                return respond(
                    404,
                    &limit_headers,
                    Bytes::from_static(br#"{"message":"Not Found"}"#),
                );
            };
            repos
                .iter()
                .filter(|r| !st.hidden.contains(*r))
                .cloned()
                .collect()
        }
        ["repos", owner, name, "secret-scanning", "alerts"] => {
            let full = format!("{owner}/{name}");
            if !st.repos.contains_key(&full) || st.hidden.contains(&full) {
                return respond(
                    404,
                    &limit_headers,
                    Bytes::from_static(br#"{"message":"Not Found"}"#),
                );
            }
            vec![full]
        }
        _ => {
            return respond(
                404,
                &limit_headers,
                Bytes::from_static(br#"{"message":"Not Found"}"#),
            )
        }
    };
    let total: usize = repos
        .iter()
        .map(|r| st.repos.get(r).map_or(0, Vec::len))
        .sum();
    let per_page: usize = q
        .get("per_page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(30)
        .clamp(1, 100);
    let start: usize = q
        .get("after")
        .and_then(|c| c.strip_prefix("Y3Vyc29y").map(str::to_string))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let hide = q.get("hide_secret").map(String::as_str) == Some("true");
    let mut page: Vec<Value> = repos
        .iter()
        .flat_map(|r| st.repos.get(r).into_iter().flatten())
        .skip(start)
        .take(per_page)
        .cloned()
        .collect();
    if hide {
        for a in &mut page {
            a.as_object_mut().unwrap().remove("secret");
        }
    }
    let body = serde_json::to_vec(&page).unwrap();
    let etag = format!("W/\"{}\"", hex::encode(&Sha256::digest(&body)[..16]));
    let mut headers = limit_headers;
    headers.push(("etag", etag.clone()));
    if start + per_page < total {
        let mut next = format!(
            "http://127.0.0.1{path}?per_page={per_page}&after=Y3Vyc29y{}",
            start + per_page
        );
        if hide {
            next.push_str("&hide_secret=true");
        }
        // The host is rewritten by the caller's base; GitHub returns absolute URLs.
        let host = req
            .headers()
            .get("host")
            .and_then(|h| h.to_str().ok())
            .unwrap_or("127.0.0.1");
        let host = st.next_host.clone().unwrap_or_else(|| host.to_string());
        next = next.replacen("127.0.0.1", &host, 1);
        headers.push(("link", format!("<{next}>; rel=\"next\"")));
    }
    if req
        .headers()
        .get("if-none-match")
        .and_then(|v| v.to_str().ok())
        == Some(etag.as_str())
    {
        st.not_modified += 1;
        return respond(304, &headers, Bytes::new());
    }
    respond(200, &headers, Bytes::from(body))
}
