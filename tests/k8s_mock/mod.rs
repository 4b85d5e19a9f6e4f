//! A loopback Kubernetes API server for the list calls the `kubernetes`
//! source makes, shaped after the Kubernetes OpenAPI (api/openapi-spec):
//! `limit` + `continue` paging (`metadata.continue`, a chunk may hold fewer
//! items than asked), `fieldSelector` on Secret `type` and Pod
//! `status.phase`, metadata-only lists (`Accept: application/json;
//! as=PartialObjectMetadataList;g=meta.k8s.io;v=v1`), bearer auth, and
//! `Status` error bodies (401, 403, 410 Expired). It records every request;
//! a path it does not serve, or a Secret list that is not metadata-only, is
//! recorded as a violation for the test to assert on.
#![allow(dead_code)]

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

/// The resources served: (plural, kind, group path, namespaced).
const RESOURCES: [(&str, &str, &str, bool); 8] = [
    ("namespaces", "Namespace", "/api/v1", false),
    ("serviceaccounts", "ServiceAccount", "/api/v1", true),
    ("secrets", "Secret", "/api/v1", true),
    ("pods", "Pod", "/api/v1", true),
    (
        "clusterroles",
        "ClusterRole",
        "/apis/rbac.authorization.k8s.io/v1",
        false,
    ),
    (
        "clusterrolebindings",
        "ClusterRoleBinding",
        "/apis/rbac.authorization.k8s.io/v1",
        false,
    ),
    ("roles", "Role", "/apis/rbac.authorization.k8s.io/v1", true),
    (
        "rolebindings",
        "RoleBinding",
        "/apis/rbac.authorization.k8s.io/v1",
        true,
    ),
];

#[derive(Default)]
pub struct State {
    pub token: String,
    /// plural → objects as the API returns them.
    pub objects: BTreeMap<String, Vec<Value>>,
    /// Paths (without query) answered 403 Forbidden.
    pub forbidden: HashSet<String>,
    /// The server returns at most this many items per chunk (≤ limit).
    pub chunk: Option<usize>,
    /// Field selectors are ignored, as by a server that does not support
    /// them (the client must filter what it gets).
    pub ignore_field_selectors: bool,
    /// The next request carrying a continue token gets 410 Expired.
    pub expire_next_continue: bool,
    /// Every request: path?query and its Accept header.
    pub requests: Vec<(String, String)>,
    pub violations: Vec<String>,
    /// Time spent building responses (the benchmark subtracts it).
    pub busy: std::time::Duration,
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
                                let started = std::time::Instant::now();
                                let r = handle(&st, req);
                                st.lock().unwrap().busy += started.elapsed();
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

    pub fn add(&self, plural: &str, obj: Value) {
        self.with(|s| s.objects.entry(plural.into()).or_default().push(obj));
    }

    /// Remove the objects of `plural` named `name` in `ns` ("" for cluster scope).
    pub fn delete(&self, plural: &str, ns: &str, name: &str) {
        self.with(|s| {
            let v = s.objects.entry(plural.into()).or_default();
            let before = v.len();
            v.retain(|o| {
                !(str_at(o, "/metadata/name") == name && str_at(o, "/metadata/namespace") == ns)
            });
            assert_eq!(before, v.len() + 1, "{plural} {ns}/{name} not found");
        });
    }

    /// A kubeconfig for this server with a bearer token.
    pub fn kubeconfig(&self, context: &str) -> String {
        let token = self.with(|s| s.token.clone());
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: {context}\nclusters:\n- name: c\n  cluster: {{server: \"{}\"}}\ncontexts:\n- name: {context}\n  context: {{cluster: c, user: u}}\nusers:\n- name: u\n  user: {{token: \"{token}\"}}\n",
            self.url()
        )
    }
}

fn str_at<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or("")
}

fn status(code: u16, reason: &str, message: &str) -> Response<Full<Bytes>> {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code
    });
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

fn query_map(q: &str) -> BTreeMap<String, String> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| {
            let v = v.replace('+', " ");
            let decoded = percent_decode(&v);
            (k.to_string(), decoded)
        })
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

/// Whether `obj` passes a field selector the source sends.
fn selected(obj: &Value, selector: &str) -> bool {
    selector.split(',').filter(|s| !s.is_empty()).all(|term| {
        if let Some((k, v)) = term.split_once("!=") {
            field(obj, k) != v
        } else if let Some((k, v)) = term.split_once('=') {
            field(obj, k.trim_end_matches('=')) == v
        } else {
            true
        }
    })
}

fn field<'a>(obj: &'a Value, k: &str) -> &'a str {
    match k {
        "type" => str_at(obj, "/type"),
        "status.phase" => str_at(obj, "/status/phase"),
        "metadata.name" => str_at(obj, "/metadata/name"),
        "metadata.namespace" => str_at(obj, "/metadata/namespace"),
        other => panic!("field selector on {other} is not supported by the API for this resource"),
    }
}

fn handle(state: &Mutex<State>, req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let mut s = state.lock().unwrap();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let accept = req
        .headers()
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    s.requests.push((format!("{path}?{query}"), accept.clone()));
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    if req.method() != hyper::Method::GET {
        s.violations.push(format!("{} {path}", req.method()));
        return status(405, "MethodNotAllowed", "the exporter only reads");
    }
    if auth != Some(format!("Bearer {}", s.token).as_str()) {
        return status(401, "Unauthorized", "Unauthorized");
    }
    // Route: {group}/{plural} or {group}/namespaces/{ns}/{plural}.
    let mut route = None;
    for (plural, kind, group, namespaced) in RESOURCES {
        if path == format!("{group}/{plural}") {
            route = Some((plural, kind, group, None));
        } else if namespaced {
            if let Some(rest) = path.strip_prefix(&format!("{group}/namespaces/")) {
                if let Some((ns, p)) = rest.split_once('/') {
                    if p == plural {
                        route = Some((plural, kind, group, Some(ns.to_string())));
                    }
                }
            }
        }
    }
    let Some((plural, kind, group, ns)) = route else {
        s.violations.push(format!("unexpected request GET {path}"));
        return status(
            404,
            "NotFound",
            "the server could not find the requested resource",
        );
    };
    if s.forbidden.contains(&path) {
        let msg = format!(
            "{plural} is forbidden: User \"system:serviceaccount:monitoring:nhi-exporter\" cannot list resource \"{plural}\" in API group \"\"{}",
            ns.as_deref().map(|n| format!(" in the namespace \"{n}\"")).unwrap_or_else(|| " at the cluster scope".into())
        );
        return status(403, "Forbidden", &msg);
    }
    let metadata_only = accept.contains("as=PartialObjectMetadataList");
    if plural == "secrets" && !metadata_only {
        s.violations.push(format!(
            "Secret data requested: GET {path}?{query} Accept {accept}"
        ));
    }
    let q = query_map(&query);
    let mut items: Vec<&Value> = s
        .objects
        .get(plural)
        .map(|v| v.iter().collect())
        .unwrap_or_default();
    if let Some(n) = &ns {
        items.retain(|o| str_at(o, "/metadata/namespace") == n);
    }
    if let Some(sel) = q.get("fieldSelector").filter(|_| !s.ignore_field_selectors) {
        items.retain(|o| selected(o, sel));
    }
    let offset = match q.get("continue") {
        Some(c) => {
            if s.expire_next_continue {
                s.expire_next_continue = false;
                return status(410, "Expired", "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.");
            }
            c.strip_prefix("off-")
                .and_then(|o| o.parse().ok())
                .unwrap_or(0)
        }
        None => 0,
    };
    let limit = q
        .get("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(usize::MAX);
    let chunk = s.chunk.unwrap_or(limit).min(limit);
    let end = (offset + chunk).min(items.len());
    let page: Vec<Value> = items[offset.min(end)..end]
        .iter()
        .map(|o| {
            if metadata_only {
                json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]})
            } else {
                (*o).clone()
            }
        })
        .collect();
    let mut meta = json!({"resourceVersion": "12345"});
    if end < items.len() {
        meta["continue"] = json!(format!("off-{end}"));
        meta["remainingItemCount"] = json!(items.len() - end);
    }
    let body = if metadata_only {
        json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "items": page})
    } else {
        let api_version = group
            .trim_start_matches("/apis/")
            .trim_start_matches("/api/");
        json!({"kind": format!("{kind}List"), "apiVersion": api_version, "metadata": meta, "items": page})
    };
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

/// RFC 3339 of a unix time.
pub fn ts(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

pub fn namespace(name: &str, team: Option<&str>) -> Value {
    let mut m =
        json!({"name": name, "uid": format!("ns-{name}"), "creationTimestamp": ts(1_600_000_000)});
    if let Some(t) = team {
        m["labels"] = json!({"team": t, "kubernetes.io/metadata.name": name});
    }
    json!({"metadata": m, "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}})
}

pub fn service_account(ns: &str, name: &str, uid: &str, created: i64, team: Option<&str>) -> Value {
    let mut m = json!({"name": name, "namespace": ns, "uid": uid, "resourceVersion": "1", "creationTimestamp": ts(created)});
    if let Some(t) = team {
        m["labels"] = json!({"team": t});
    }
    json!({"metadata": m})
}

/// A legacy token Secret, with data (which the exporter must never get).
pub fn token_secret(
    ns: &str,
    name: &str,
    sa: &str,
    sa_uid: &str,
    created: i64,
    token: &str,
    labels: Value,
) -> Value {
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    json!({
        "metadata": {
            "name": name, "namespace": ns, "uid": format!("secret-{name}"), "creationTimestamp": ts(created),
            "annotations": {"kubernetes.io/service-account.name": sa, "kubernetes.io/service-account.uid": sa_uid},
            "labels": labels
        },
        "type": "kubernetes.io/service-account-token",
        "data": {"token": b64(token), "ca.crt": b64("-----BEGIN CERTIFICATE-----"), "namespace": b64(ns)}
    })
}

pub fn opaque_secret(ns: &str, name: &str, value: &str) -> Value {
    use base64::Engine;
    json!({
        "metadata": {"name": name, "namespace": ns, "uid": format!("secret-{name}"), "creationTimestamp": ts(1_700_000_000)},
        "type": "Opaque",
        "data": {"password": base64::engine::general_purpose::STANDARD.encode(value)}
    })
}

pub fn pod(ns: &str, name: &str, sa: &str, phase: &str) -> Value {
    json!({
        "metadata": {"name": name, "namespace": ns, "uid": format!("pod-{name}"), "creationTimestamp": ts(1_700_000_000)},
        "spec": {"serviceAccountName": sa, "containers": [{"name": "app", "image": "registry.example.com/app:1"}]},
        "status": {"phase": phase}
    })
}

pub fn cluster_role(name: &str, verbs: &[&str], resources: &[&str]) -> Value {
    json!({"metadata": {"name": name, "uid": format!("cr-{name}")},
           "rules": [{"apiGroups": ["*"], "resources": resources, "verbs": verbs}]})
}

pub fn role(ns: &str, name: &str, verbs: &[&str], resources: &[&str]) -> Value {
    json!({"metadata": {"name": name, "namespace": ns, "uid": format!("role-{ns}-{name}")},
           "rules": [{"apiGroups": [""], "resources": resources, "verbs": verbs}]})
}

/// Subjects: (kind, name, namespace).
pub fn binding(
    ns: Option<&str>,
    name: &str,
    role_kind: &str,
    role: &str,
    subjects: &[(&str, &str, Option<&str>)],
) -> Value {
    let subjects: Vec<Value> = subjects
        .iter()
        .map(|(k, n, sns)| {
            let mut v = json!({"kind": k, "name": n});
            if *k != "ServiceAccount" {
                v["apiGroup"] = json!("rbac.authorization.k8s.io");
            }
            if let Some(x) = sns {
                v["namespace"] = json!(x);
            }
            v
        })
        .collect();
    let mut m = json!({"name": name, "uid": format!("b-{name}")});
    if let Some(n) = ns {
        m["namespace"] = json!(n);
    }
    json!({"metadata": m, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role}, "subjects": subjects})
}
