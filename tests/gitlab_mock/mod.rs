//! A loopback mock of GitLab's GraphQL API for secret detection
//! vulnerabilities: `POST /api/graphql` with a bearer token, the query's
//! `variables` (`fullPath`, `after`, `first`) read from the JSON body (the
//! GraphQL text itself is not parsed), `group(fullPath:)` covering the
//! projects of the group and its subgroups, `project(fullPath:)` one
//! project, cursor pages shaped like GitLab's schema, and faults injected
//! per request.
#![allow(dead_code)]

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Value};
use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone)]
pub enum Fault {
    /// An HTTP status with a GitLab-like error body.
    Status(u16),
    /// 429, with `Retry-After` when given (GitLab sometimes omits it).
    RateLimited { retry_after: Option<u64> },
    /// HTTP 200 with an `errors` array holding this message.
    GraphqlError(String),
    /// Serve this request normally (to fault a later page).
    Pass,
}

/// One secret detection vulnerability, as the mock serves it.
#[derive(Debug, Clone)]
pub struct Vuln {
    pub id: u64,
    pub project: String,
    /// The gitleaks rule id (an identifier of type `gitleaks_rule_id`).
    pub rule: String,
    pub title: String,
    /// DETECTED, CONFIRMED, RESOLVED or DISMISSED.
    pub state: &'static str,
    pub dismissal_reason: Option<&'static str>,
    /// ACTIVE, INACTIVE, UNKNOWN, or `None` (no token status record).
    pub token: Option<&'static str>,
    pub file: String,
    pub line: u32,
}

impl Vuln {
    pub fn new(id: u64, project: &str, rule: &str) -> Vuln {
        Vuln {
            id,
            project: project.into(),
            rule: rule.into(),
            title: format!("{rule} detected"),
            state: "DETECTED",
            dismissal_reason: None,
            token: None,
            file: format!("config/file-{id}.env"),
            line: (id % 50 + 1) as u32,
        }
    }

    pub fn token(mut self, t: &'static str) -> Vuln {
        self.token = Some(t);
        self
    }

    pub fn state(mut self, s: &'static str) -> Vuln {
        self.state = s;
        self
    }

    /// The node as GitLab returns it for the exporter's query.
    pub fn node(&self, with_token_status: bool) -> Value {
        let t = |day: u32| format!("2026-01-{day:02}T08:00:00Z");
        let resolved = self.state == "RESOLVED";
        let dismissed = self.state == "DISMISSED";
        let mut n = json!({
            "id": format!("gid://gitlab/Vulnerability/{}", self.id),
            "uuid": format!("5f0b2b0e-3c8a-5a1e-9d4e-{:012x}", self.id),
            "title": self.title,
            "state": self.state,
            "severity": "CRITICAL",
            "reportType": "SECRET_DETECTION",
            "detectedAt": t(10),
            "resolvedAt": if resolved { json!(t(11)) } else { Value::Null },
            "dismissedAt": if dismissed { json!(t(12)) } else { Value::Null },
            "dismissalReason": self.dismissal_reason,
            "updatedAt": t(12),
            "location": {
                "file": self.file,
                "startLine": self.line.to_string(),
                "blobPath": format!("/{}/-/blob/0a1b2c3d4e5f/{}#L{}", self.project, self.file, self.line)
            },
            "identifiers": [
                {"externalType": "gitleaks_rule_id", "externalId": self.rule, "name": format!("Gitleaks rule ID {}", self.rule)}
            ],
            "project": {"fullPath": self.project}
        });
        if with_token_status {
            n["findingTokenStatus"] = match self.token {
                Some(s) => json!({"status": s}),
                None => Value::Null,
            };
        }
        n
    }
}

/// The `Vulnerability` fields of the current GitLab the source asks about.
pub const CURRENT_SCHEMA: [&str; 15] = [
    "id",
    "uuid",
    "title",
    "state",
    "severity",
    "reportType",
    "detectedAt",
    "resolvedAt",
    "dismissedAt",
    "dismissalReason",
    "updatedAt",
    "findingTokenStatus",
    "location",
    "identifiers",
    "project",
];

/// A 2023 GitLab's (16.0) `Vulnerability`: no `uuid`, `dismissalReason`,
/// `updatedAt` or `findingTokenStatus`.
pub const SCHEMA_2023: [&str; 11] = [
    "id",
    "title",
    "state",
    "severity",
    "reportType",
    "detectedAt",
    "resolvedAt",
    "dismissedAt",
    "location",
    "identifiers",
    "project",
];

#[derive(Default)]
pub struct State {
    pub token: String,
    pub vulns: Vec<Vuln>,
    /// Full paths (groups or projects) answered with `null`, as GitLab does
    /// for a path that does not exist or the token cannot read.
    pub forbidden: HashSet<String>,
    pub faults: VecDeque<Fault>,
    /// A GitLab older than 18.1: a query asking for `findingTokenStatus`
    /// fails with GraphQL's undefined-field error.
    pub no_token_status: bool,
    /// A complexity limit: a page size above this fails.
    pub max_first: Option<u64>,
    /// The `Vulnerability` fields of an older GitLab (`None`: the current
    /// schema): asking for another one is GraphQL's undefined-field error,
    /// and introspection lists only these.
    pub schema: Option<Vec<&'static str>>,
    /// Introspection answered with an error (as a server that disables it).
    pub introspection_refused: bool,
    pub introspections: u64,
    pub requests: u64,
    /// The `variables` of every well-formed request.
    pub variables: Vec<Value>,
}

impl State {
    pub fn vuln(&mut self, id: u64) -> &mut Vuln {
        self.vulns
            .iter_mut()
            .find(|v| v.id == id)
            .expect("no such vulnerability")
    }
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
                            async move { Ok::<_, std::convert::Infallible>(handle(&st, req).await) }
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

fn respond(status: u16, headers: &[(&str, String)], body: Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
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

fn gql_error(message: &str) -> Value {
    json!({"errors": [{"message": message, "locations": [{"line": 1, "column": 1}]}]})
}

/// Opaque cursors, like GitLab's base64 keyset cursors.
fn cursor(offset: usize) -> String {
    format!("eyJpZCI6{offset:06}fQ")
}

fn offset(c: &str) -> Option<usize> {
    c.strip_prefix("eyJpZCI6")?.strip_suffix("fQ")?.parse().ok()
}

async fn handle(
    state: &Mutex<State>,
    req: Request<hyper::body::Incoming>,
) -> Response<Full<Bytes>> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let json_ct = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();

    let mut st = state.lock().unwrap();
    // Introspection (once per poll) is counted apart and never faulted:
    // the tests' faults and request counts are about the listing.
    let introspection = String::from_utf8_lossy(&body).contains("__type(name:");
    if !introspection {
        st.requests += 1;
    }
    let limit_headers = vec![
        ("ratelimit-limit", "2000".to_string()),
        ("ratelimit-observed", st.requests.to_string()),
        ("ratelimit-remaining", "1990".to_string()),
        ("ratelimit-reset", (now() + 60).to_string()),
    ];
    if method != hyper::Method::POST || path != "/api/graphql" {
        return respond(404, &limit_headers, json!({"message": "404 Not Found"}));
    }
    if auth != format!("Bearer {}", st.token) {
        return respond(
            401,
            &limit_headers,
            json!({"errors": [{"message": "Invalid token"}]}),
        );
    }
    if let Some(f) = (!introspection).then(|| st.faults.pop_front()).flatten() {
        return match f {
            Fault::Status(s) => {
                respond(s, &limit_headers, json!({"message": format!("{s} Error")}))
            }
            Fault::RateLimited { retry_after } => {
                let h: Vec<(&str, String)> = retry_after
                    .map(|r| vec![("retry-after", r.to_string())])
                    .unwrap_or_default();
                respond(429, &h, json!({"message": "Retry later"}))
            }
            Fault::GraphqlError(m) => respond(200, &limit_headers, gql_error(&m)),
            Fault::Pass => serve(&mut st, &body, json_ct, limit_headers),
        };
    }
    serve(&mut st, &body, json_ct, limit_headers)
}

fn serve(
    st: &mut State,
    body: &[u8],
    json_ct: bool,
    limit_headers: Vec<(&str, String)>,
) -> Response<Full<Bytes>> {
    if !json_ct {
        return respond(
            415,
            &limit_headers,
            json!({"errors": [{"message": "Unsupported content type"}]}),
        );
    }
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return respond(400, &limit_headers, gql_error("Unexpected end of document"));
    };
    let query = request["query"].as_str().unwrap_or("");
    if query.contains("__type(name: \"Vulnerability\")") {
        st.introspections += 1;
        if st.introspection_refused {
            return respond(200, &limit_headers, gql_error("Introspection is disabled"));
        }
        let names: Vec<&str> = st.schema.clone().unwrap_or_else(|| CURRENT_SCHEMA.to_vec());
        let fields: Vec<Value> = names.iter().map(|n| json!({"name": n})).collect();
        return respond(
            200,
            &limit_headers,
            json!({"data": {"__type": {"fields": fields}}}),
        );
    }
    if let Some(schema) = &st.schema {
        for f in ["uuid", "dismissalReason", "updatedAt", "findingTokenStatus"] {
            let asked = query.split(|c: char| !c.is_alphanumeric()).any(|w| w == f);
            if asked && !schema.contains(&f) {
                return respond(
                    200,
                    &limit_headers,
                    gql_error(&format!(
                        "Field '{f}' doesn't exist on type 'Vulnerability'"
                    )),
                );
            }
        }
    }
    let vars = request["variables"].clone();
    st.variables.push(vars.clone());
    if !query.contains("SECRET_DETECTION") {
        return respond(
            200,
            &limit_headers,
            gql_error("the mock serves secret detection vulnerabilities only"),
        );
    }
    let with_token_status = query.contains("findingTokenStatus");
    if with_token_status && st.no_token_status {
        return respond(
            200,
            &limit_headers,
            gql_error("Field 'findingTokenStatus' doesn't exist on type 'Vulnerability'"),
        );
    }
    // The root field, from the query's shape (not parsed): group or project.
    let field = if query.contains("group(fullPath:") {
        "group"
    } else if query.contains("project(fullPath:") {
        "project"
    } else {
        return respond(
            200,
            &limit_headers,
            gql_error("the mock serves group and project queries only"),
        );
    };
    let Some(full_path) = vars["fullPath"].as_str().map(str::to_string) else {
        return respond(
            200,
            &limit_headers,
            gql_error("Variable $fullPath of type ID! was provided invalid value"),
        );
    };
    let first = vars["first"].as_u64().unwrap_or(100);
    if let Some(max) = st.max_first {
        if first > max {
            let message = format!(
                "Query has complexity of {}, which exceeds max complexity of 250",
                250 * first / max
            );
            return respond(200, &limit_headers, gql_error(&message));
        }
    }
    let first = first.clamp(1, 100) as usize;
    if st.forbidden.contains(&full_path) {
        return respond(200, &limit_headers, json!({"data": {field: null}}));
    }
    let prefix = format!("{full_path}/");
    let all: Vec<&Vuln> = st
        .vulns
        .iter()
        .filter(|v| match field {
            "group" => v.project.starts_with(&prefix),
            _ => v.project == full_path,
        })
        .collect();
    let start = match vars["after"].as_str() {
        None => 0,
        Some(c) => match offset(c) {
            Some(o) => o,
            None => {
                return respond(
                    200,
                    &limit_headers,
                    gql_error("Please provide a valid cursor"),
                )
            }
        },
    };
    let page: Vec<Value> = all
        .iter()
        .skip(start)
        .take(first)
        .map(|v| {
            let mut n = v.node(with_token_status);
            if let (Some(schema), Some(o)) = (&st.schema, n.as_object_mut()) {
                o.retain(|k, _| schema.contains(&k.as_str()));
            }
            n
        })
        .collect();
    let end = start + page.len();
    let data = json!({
        field: {
            "vulnerabilities": {
                "pageInfo": {
                    "endCursor": if page.is_empty() { Value::Null } else { json!(cursor(end)) },
                    "hasNextPage": end < all.len()
                },
                "nodes": page
            }
        }
    });
    respond(200, &limit_headers, json!({"data": data}))
}

/// Vulnerabilities for each `(project, count)`, with ids from 1001 on;
/// `make(id, project, i)` builds the i-th (1-based) of a project.
pub fn seed(
    st: &mut State,
    projects: &[(&str, u64)],
    mut make: impl FnMut(u64, &str, u64) -> Vuln,
) {
    let mut id = 1000;
    for (p, n) in projects {
        for i in 1..=*n {
            id += 1;
            st.vulns.push(make(id, p, i));
        }
    }
}
