//! A loopback server for the calls the `azure` source makes, shaped after
//! Microsoft's published API descriptions:
//! - the Entra ID v2.0 token endpoint (`POST /{tenant}/oauth2/v2.0/token`,
//!   form-encoded client-credentials grant; errors `{"error":
//!   "invalid_client","error_description":"AADSTS7000215: …"}`);
//! - Microsoft Graph v1.0 (`applications`, `servicePrincipals`,
//!   `roleManagement/directory/roleDefinitions|roleAssignments`) and the beta
//!   sign-in reports: `$select` checked against the v1.0 schema (an unknown
//!   property is a 400, as Graph answers), `$top`, `$filter`, `$expand`,
//!   `@odata.nextLink` paging with `$skiptoken`, error bodies
//!   `{"error":{"code","message","innerError"}}`;
//! - ARM `Microsoft.Authorization` 2022-04-01 `roleDefinitions` and
//!   `roleAssignments` (`$filter=atScope()`), `nextLink` paging;
//! - Key Vault 7.4 `GET /secrets` (`maxresults` ≤ 25, `nextLink`) and
//!   `GET /secrets/{name}`.
//!
//! Paths are prefixed: `/login`, `/graph`, `/arm`, `/kv/{vault}`. Every
//! request is recorded; a path it does not serve, a token for the wrong
//! audience, or an unknown `$select` property is a violation. Failures
//! are injected per path prefix.
#![allow(dead_code)]

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

pub const GRAPH_TOKEN: &str = "graph-access-token-canary-e1";
pub const ARM_TOKEN: &str = "arm-access-token-canary-e2";
pub const VAULT_TOKEN: &str = "vault-access-token-canary-e3";

/// Properties of the v1.0 schema a `$select` may name (a subset).
const APPLICATION_PROPS: &[&str] = &[
    "id",
    "appId",
    "displayName",
    "createdDateTime",
    "tags",
    "passwordCredentials",
    "keyCredentials",
    "signInAudience",
    "publisherDomain",
    "description",
];
const SP_PROPS: &[&str] = &[
    "id",
    "appId",
    "displayName",
    "servicePrincipalType",
    "appOwnerOrganizationId",
    "tags",
    "passwordCredentials",
    "keyCredentials",
    "accountEnabled",
    "appDisplayName",
];
const ROLE_DEFINITION_PROPS: &[&str] =
    &["id", "displayName", "templateId", "isBuiltIn", "isEnabled"];

pub struct VaultSecret {
    pub enabled: bool,
    pub created: i64,
    pub updated: i64,
    pub exp: Option<i64>,
    pub tags: Value,
    pub value: String,
}

/// An injected failure: answered instead of the real response.
pub struct Failure {
    pub prefix: String,
    pub status: u16,
    pub retry_after: Option<u64>,
    /// How many times; `usize::MAX`: always.
    pub times: usize,
}

#[derive(Default)]
pub struct State {
    pub tenant: String,
    pub client_id: String,
    pub client_secret: String,
    /// The projected service-account token a workload identity presents
    /// as its client assertion.
    pub federated_token: String,
    pub applications: Vec<Value>,
    pub service_principals: Vec<Value>,
    pub role_definitions: Vec<Value>,
    /// `unifiedRoleAssignment`s, each with its `principal` (for `$expand`).
    pub role_assignments: Vec<Value>,
    pub sp_sign_ins: Vec<Value>,
    pub credential_sign_ins: Vec<Value>,
    /// The tenant has no P1/P2 licence: the reports answer 403.
    pub sign_ins_forbidden: bool,
    /// subscription → (roleDefinitions, roleAssignments).
    pub arm: BTreeMap<String, (Vec<Value>, Vec<Value>)>,
    /// vault → secret name → secret.
    pub vaults: BTreeMap<String, BTreeMap<String, VaultSecret>>,
    /// Items per page (at most what the request asks).
    pub page: usize,
    pub failures: Vec<Failure>,
    /// Every request: method, path and query.
    pub requests: Vec<String>,
    pub violations: Vec<String>,
    pub tokens_issued: usize,
    /// Time spent building responses (the benchmark subtracts it).
    pub busy: std::time::Duration,
}

pub struct Mock {
    pub port: u16,
    pub state: Arc<Mutex<State>>,
}

impl Mock {
    pub fn start(tenant: &str, client_id: &str, client_secret: &str) -> Mock {
        let state = Arc::new(Mutex::new(State {
            tenant: tenant.into(),
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            page: 100,
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
                let port = listener.local_addr().unwrap().port();
                tx.send(port).unwrap();
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
                                    let r = handle(&st, port, &parts, &body);
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

    pub fn url(&self, prefix: &str) -> String {
        format!("http://127.0.0.1:{}/{prefix}", self.port)
    }

    pub fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().unwrap())
    }

    /// The source's `endpoints` block for this server.
    pub fn endpoints_yaml(&self) -> String {
        format!(
            "{{login: '{}', graph: '{}', arm: '{}'}}",
            self.url("login"),
            self.url("graph"),
            self.url("arm")
        )
    }

    pub fn fail(&self, prefix: &str, status: u16, retry_after: Option<u64>, times: usize) {
        self.with(|s| {
            s.failures.push(Failure {
                prefix: prefix.into(),
                status,
                retry_after,
                times,
            })
        });
    }

    pub fn requests_to(&self, prefix: &str) -> usize {
        self.with(|s| s.requests.iter().filter(|r| r.contains(prefix)).count())
    }
}

fn json_response(status: u16, body: Value, extra: &[(&str, String)]) -> Response<Full<Bytes>> {
    let mut b = Response::builder()
        .status(status)
        .header("content-type", "application/json; odata.metadata=minimal");
    for (k, v) in extra {
        b = b.header(*k, v.as_str());
    }
    b.body(Full::new(Bytes::from(body.to_string()))).unwrap()
}

/// Graph's (and ARM's, Key Vault's) error body.
fn error(status: u16, code: &str, message: &str) -> Response<Full<Bytes>> {
    json_response(
        status,
        json!({"error": {"code": code, "message": message,
            "innerError": {"date": "2026-11-29T00:00:00", "request-id": "00000000-0000-0000-0000-000000000001"}}}),
        &[],
    )
}

fn select(obj: &Value, props: &[&str]) -> Value {
    let mut m = serde_json::Map::new();
    for p in props {
        if let Some(v) = obj.get(*p) {
            m.insert(p.to_string(), v.clone());
        }
    }
    Value::Object(m)
}

/// One page of `items` from `$skiptoken` (an offset), with the next link
/// (`link_key`) carrying the same query plus the next offset.
fn page(
    base: &str,
    query: &BTreeMap<String, String>,
    items: Vec<Value>,
    size: usize,
    link_key: &str,
    context: Option<&str>,
) -> Response<Full<Bytes>> {
    let from: usize = query
        .get("$skiptoken")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let to = (from + size.max(1)).min(items.len());
    let mut body = serde_json::Map::new();
    if let Some(c) = context {
        body.insert("@odata.context".into(), json!(c));
    }
    body.insert(
        "value".into(),
        Value::Array(items[from.min(items.len())..to].to_vec()),
    );
    if to < items.len() {
        let mut q: Vec<(String, String)> = query
            .iter()
            .filter(|(k, _)| k.as_str() != "$skiptoken")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        q.push(("$skiptoken".into(), to.to_string()));
        let qs = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(q)
            .finish();
        body.insert(link_key.into(), json!(format!("{base}?{qs}")));
    }
    json_response(200, Value::Object(body), &[])
}

fn handle(
    state: &Mutex<State>,
    port: u16,
    parts: &hyper::http::request::Parts,
    body: &[u8],
) -> Response<Full<Bytes>> {
    let mut s = state.lock().unwrap();
    let path = parts.uri.path().to_string();
    let raw_query = parts.uri.query().unwrap_or("");
    let query: BTreeMap<String, String> = url::form_urlencoded::parse(raw_query.as_bytes())
        .into_owned()
        .collect();
    s.requests
        .push(format!("{} {}?{}", parts.method, path, raw_query));
    if let Some(i) = s
        .failures
        .iter()
        .position(|f| path.starts_with(&f.prefix) && f.times > 0)
    {
        let f = &mut s.failures[i];
        if f.times != usize::MAX {
            f.times -= 1;
        }
        let (status, retry_after) = (f.status, f.retry_after);
        let extra: Vec<(&str, String)> = retry_after
            .map(|r| ("retry-after", r.to_string()))
            .into_iter()
            .collect();
        let (code, msg) = match status {
            429 => ("TooManyRequests", "Too many requests."),
            403 => (
                "Authorization_RequestDenied",
                "Insufficient privileges to complete the operation.",
            ),
            _ => (
                "ServiceUnavailable",
                "The service is temporarily unavailable.",
            ),
        };
        return json_response(
            status,
            json!({"error": {"code": code, "message": msg}}),
            &extra,
        );
    }
    let base = format!("http://127.0.0.1:{port}{path}");
    if path.starts_with("/login/") {
        return token(&mut s, &path, body);
    }
    if path == "/msi/token" {
        // The instance metadata endpoint: GET, `Metadata: true`, `resource`.
        if parts.headers.get("metadata").and_then(|v| v.to_str().ok()) != Some("true")
            || query.get("api-version").map(String::as_str) != Some("2018-02-01")
        {
            s.violations.push(
                "managed identity token request without Metadata: true or api-version".into(),
            );
            return json_response(
                400,
                json!({"error": "invalid_request", "error_description": "Required metadata header not specified"}),
                &[],
            );
        }
        let resource = query.get("resource").cloned().unwrap_or_default();
        let Some(token) = audience_token(&resource) else {
            s.violations.push(format!(
                "managed identity token for unknown resource {resource}"
            ));
            return json_response(400, json!({"error": "invalid_resource"}), &[]);
        };
        s.tokens_issued += 1;
        return json_response(
            200,
            json!({"access_token": token, "expires_in": "3599", "expires_on": "1795975599",
            "resource": resource, "token_type": "Bearer", "client_id": query.get("client_id").cloned().unwrap_or_default()}),
            &[],
        );
    }
    let auth = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let want = if path.starts_with("/graph/") {
        GRAPH_TOKEN
    } else if path.starts_with("/arm/") {
        ARM_TOKEN
    } else {
        VAULT_TOKEN
    };
    if auth != format!("Bearer {want}") {
        s.violations
            .push(format!("{path}: token for another audience or none"));
        return error(
            401,
            "InvalidAuthenticationToken",
            "Access token validation failure. Invalid audience.",
        );
    }
    let size = s.page;
    if let Some(rest) = path.strip_prefix("/graph/") {
        return graph(&mut s, rest, &base, &query, size);
    }
    if let Some(rest) = path.strip_prefix("/arm/subscriptions/") {
        if query.get("api-version").map(String::as_str) != Some("2022-04-01") {
            s.violations.push(format!("{path}: api-version"));
        }
        let (sub, what) = rest
            .split_once("/providers/Microsoft.Authorization/")
            .unwrap_or((rest, ""));
        let Some((defs, assignments)) = s.arm.get(sub).cloned() else {
            return error(
                404,
                "SubscriptionNotFound",
                "The subscription could not be found.",
            );
        };
        return match what {
            "roleDefinitions" => page(&base, &query, defs, size, "nextLink", None),
            "roleAssignments" => {
                if query.get("$filter").map(String::as_str) != Some("atScope()") {
                    s.violations
                        .push(format!("{path}: without $filter=atScope()"));
                }
                page(&base, &query, assignments, size, "nextLink", None)
            }
            _ => {
                s.violations.push(format!("unserved {path}"));
                error(404, "NotFound", "not found")
            }
        };
    }
    if let Some(rest) = path.strip_prefix("/kv/") {
        if query.get("api-version").map(String::as_str) != Some("7.4") {
            s.violations.push(format!("{path}: api-version"));
        }
        let (vault, rest) = rest.split_once('/').unwrap_or((rest, ""));
        let vault_url = format!("http://127.0.0.1:{port}/kv/{vault}");
        let Some(secrets) = s.vaults.get(vault) else {
            return error(404, "VaultNotFound", "vault not found");
        };
        if rest == "secrets" {
            let max: usize = query
                .get("maxresults")
                .and_then(|m| m.parse().ok())
                .unwrap_or(25);
            let items: Vec<Value> = secrets
                .iter()
                .map(|(name, v)| {
                    let mut attributes = json!({"enabled": v.enabled, "created": v.created, "updated": v.updated,
                        "recoveryLevel": "Recoverable+Purgeable", "recoverableDays": 90});
                    if let Some(e) = v.exp {
                        attributes["exp"] = json!(e);
                    }
                    json!({"id": format!("{vault_url}/secrets/{name}"), "attributes": attributes, "tags": v.tags})
                })
                .collect();
            return page(
                &base,
                &query,
                items,
                size.min(max).min(25),
                "nextLink",
                None,
            );
        }
        if let Some(name) = rest.strip_prefix("secrets/") {
            return match secrets.get(name) {
                Some(v) if v.enabled => json_response(
                    200,
                    json!({"value": v.value, "id": format!("{vault_url}/secrets/{name}/{:032x}", v.created),
                        "attributes": {"enabled": true, "created": v.created, "updated": v.updated}}),
                    &[],
                ),
                Some(_) => error(
                    403,
                    "Forbidden",
                    "Operation get is not allowed on a disabled secret.",
                ),
                None => error(
                    404,
                    "SecretNotFound",
                    "A secret with (name/id) was not found in this key vault.",
                ),
            };
        }
    }
    s.violations.push(format!("unserved {path}"));
    error(404, "NotFound", "not found")
}

fn token(s: &mut State, path: &str, body: &[u8]) -> Response<Full<Bytes>> {
    let form: BTreeMap<String, String> = url::form_urlencoded::parse(body).into_owned().collect();
    if path != format!("/login/{}/oauth2/v2.0/token", s.tenant) {
        s.violations.push(format!("token request to {path}"));
        return json_response(
            400,
            json!({"error": "invalid_request", "error_description": "AADSTS90002: Tenant not found."}),
            &[],
        );
    }
    let assertion_ok = form.get("client_assertion_type").map(String::as_str)
        == Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
        && !s.federated_token.is_empty()
        && form.get("client_assertion") == Some(&s.federated_token);
    if form.get("grant_type").map(String::as_str) != Some("client_credentials")
        || form.get("client_id") != Some(&s.client_id)
        || !(form.get("client_secret") == Some(&s.client_secret) || assertion_ok)
    {
        return json_response(
            401,
            json!({"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided.",
                "error_codes": [7000215], "error_uri": "https://login.microsoftonline.com/error?code=7000215"}),
            &[],
        );
    }
    let scope = form.get("scope").cloned().unwrap_or_default();
    let token = if let Some(t) = scope.strip_suffix("/.default").and_then(audience_token) {
        t
    } else {
        s.violations
            .push(format!("token for unknown scope {scope}"));
        return json_response(
            400,
            json!({"error": "invalid_scope", "error_description": "AADSTS70011: invalid scope"}),
            &[],
        );
    };
    s.tokens_issued += 1;
    json_response(
        200,
        json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token}),
        &[],
    )
}

/// The token of an audience (`{graph}`, `{arm}`, the Key Vault resource).
fn audience_token(resource: &str) -> Option<&'static str> {
    if resource.ends_with("/graph") {
        Some(GRAPH_TOKEN)
    } else if resource.ends_with("/arm") {
        Some(ARM_TOKEN)
    } else if resource == "https://vault.azure.net" {
        Some(VAULT_TOKEN)
    } else {
        None
    }
}

fn graph(
    s: &mut State,
    rest: &str,
    base: &str,
    query: &BTreeMap<String, String>,
    size: usize,
) -> Response<Full<Bytes>> {
    let top: usize = query
        .get("$top")
        .and_then(|t| t.parse().ok())
        .unwrap_or(100);
    let size = size.min(top);
    let selected = |s: &mut State,
                    items: &[Value],
                    allowed: &[&str],
                    ty: &str|
     -> Result<Vec<Value>, Box<Response<Full<Bytes>>>> {
        let Some(sel) = query.get("$select") else {
            return Ok(items.to_vec());
        };
        let props: Vec<&str> = sel.split(',').collect();
        if let Some(bad) = props.iter().find(|p| !allowed.contains(p)) {
            s.violations
                .push(format!("$select of unknown property {bad} on {ty}"));
            return Err(Box::new(error(
                400,
                "Request_BadRequest",
                &format!("Could not find a property named '{bad}' on type 'microsoft.graph.{ty}'."),
            )));
        }
        Ok(items.iter().map(|o| select(o, &props)).collect())
    };
    match rest {
        "v1.0/applications" => {
            match selected(s, &s.applications.clone(), APPLICATION_PROPS, "application") {
                Ok(items) => page(
                    base,
                    query,
                    items,
                    size,
                    "@odata.nextLink",
                    Some("https://graph.microsoft.com/v1.0/$metadata#applications"),
                ),
                Err(r) => *r,
            }
        }
        "v1.0/servicePrincipals" => match selected(
            s,
            &s.service_principals.clone(),
            SP_PROPS,
            "servicePrincipal",
        ) {
            Ok(items) => page(
                base,
                query,
                items,
                size,
                "@odata.nextLink",
                Some("https://graph.microsoft.com/v1.0/$metadata#servicePrincipals"),
            ),
            Err(r) => *r,
        },
        "v1.0/roleManagement/directory/roleDefinitions" => {
            match selected(
                s,
                &s.role_definitions.clone(),
                ROLE_DEFINITION_PROPS,
                "unifiedRoleDefinition",
            ) {
                Ok(items) => page(base, query, items, size, "@odata.nextLink", None),
                Err(r) => *r,
            }
        }
        "v1.0/roleManagement/directory/roleAssignments" => {
            let filter = query.get("$filter").cloned().unwrap_or_default();
            let Some(def) = filter
                .strip_prefix("roleDefinitionId eq '")
                .and_then(|f| f.strip_suffix('\''))
            else {
                s.violations
                    .push(format!("roleAssignments $filter {filter:?}"));
                return error(400, "Request_UnsupportedQuery", "Unsupported query.");
            };
            let expand = query.get("$expand").map(String::as_str) == Some("principal");
            let items: Vec<Value> = s
                .role_assignments
                .iter()
                .filter(|a| a["roleDefinitionId"] == def)
                .map(|a| {
                    let mut a = a.clone();
                    if !expand {
                        a.as_object_mut().unwrap().remove("principal");
                    }
                    a
                })
                .collect();
            page(base, query, items, size, "@odata.nextLink", None)
        }
        "beta/reports/servicePrincipalSignInActivities"
        | "beta/reports/appCredentialSignInActivities" => {
            if s.sign_ins_forbidden {
                return error(
                    403,
                    "Authentication_RequestFromNonPremiumTenantOrB2CTenant",
                    "Neither tenant is B2C or tenant doesn't have premium license",
                );
            }
            let items = if rest.ends_with("servicePrincipalSignInActivities") {
                s.sp_sign_ins.clone()
            } else {
                s.credential_sign_ins.clone()
            };
            page(base, query, items, size, "@odata.nextLink", None)
        }
        _ => {
            s.violations.push(format!("unserved graph {rest}"));
            error(400, "BadRequest", "Resource not found for the segment.")
        }
    }
}

// --- builders of Graph / ARM objects --------------------------------------

pub fn ts(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

pub fn password(key_id: &str, hint: &str, start: i64, end: i64) -> Value {
    json!({"customKeyIdentifier": null, "displayName": "ci", "endDateTime": ts(end), "hint": hint,
        "keyId": key_id, "secretText": null, "startDateTime": ts(start)})
}

pub fn certificate(key_id: &str, start: i64, end: i64) -> Value {
    json!({"customKeyIdentifier": "QUJD", "displayName": "CN=app", "endDateTime": ts(end), "key": null,
        "keyId": key_id, "startDateTime": ts(start), "type": "AsymmetricX509Cert", "usage": "Verify"})
}

pub fn application(
    id: &str,
    app_id: &str,
    name: &str,
    created: i64,
    tags: &[&str],
    passwords: Vec<Value>,
    keys: Vec<Value>,
) -> Value {
    json!({"id": id, "appId": app_id, "displayName": name, "createdDateTime": ts(created), "tags": tags,
        "passwordCredentials": passwords, "keyCredentials": keys, "signInAudience": "AzureADMyOrg"})
}

pub fn service_principal(
    id: &str,
    app_id: &str,
    name: &str,
    ty: &str,
    owner_tenant: &str,
    passwords: Vec<Value>,
) -> Value {
    json!({"id": id, "appId": app_id, "displayName": name, "servicePrincipalType": ty,
        "appOwnerOrganizationId": owner_tenant, "accountEnabled": true, "tags": [],
        "passwordCredentials": passwords, "keyCredentials": []})
}

pub fn role_definition(id: &str, name: &str) -> Value {
    json!({"id": id, "displayName": name, "templateId": id, "isBuiltIn": true, "isEnabled": true})
}

/// A directory role assignment of `principal` (`user`, `servicePrincipal`, `group`).
pub fn role_assignment(def: &str, principal: &str, kind: &str, scope: &str) -> Value {
    json!({"id": format!("{def}-{principal}"), "roleDefinitionId": def, "principalId": principal,
        "directoryScopeId": scope, "principal": {"@odata.type": format!("#microsoft.graph.{kind}"), "id": principal}})
}

pub fn arm_role_definition(sub: &str, guid: &str, name: &str) -> Value {
    json!({"id": format!("/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/{guid}"),
        "name": guid, "type": "Microsoft.Authorization/roleDefinitions",
        "properties": {"roleName": name, "type": "BuiltInRole", "description": "", "permissions": []}})
}

pub fn arm_role_assignment(
    sub: &str,
    def_guid: &str,
    principal: &str,
    principal_type: &str,
    scope: &str,
) -> Value {
    json!({"id": format!("{scope}/providers/Microsoft.Authorization/roleAssignments/{principal}-{def_guid}"),
        "name": format!("{principal}-{def_guid}"), "type": "Microsoft.Authorization/roleAssignments",
        "properties": {"roleDefinitionId": format!("/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/{def_guid}"),
            "principalId": principal, "principalType": principal_type, "scope": scope}})
}
