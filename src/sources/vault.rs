//! `vault` source: HashiCorp Vault or OpenBao, through the HTTP API v1.
//!
//! Every request carries `X-Vault-Token` (and `X-Vault-Namespace` when
//! `namespace` is set). With `auth: {method: token}` the configured token is
//! used as is; with `auth: {method: approle}` the source logs in with
//! `POST /v1/auth/{mount}/login`, keeps the returned token until 80% of its
//! lease has passed, and logs in again once per poll when a scope is refused
//! (403) with a cached token. A scope still refused right after a fresh login
//! lacks permission: its 403s no longer trigger a login (no token is minted
//! per poll) until it is readable again.
//!
//! One poll sends one complete inventory per scope. A scope that cannot be
//! read (403 permission denied, 5xx after retries, a malformed response) is
//! sent as a failed target and keeps its previous state; the poll fails when
//! every scope failed (e.g. a rejected token), on a 401, and when Vault
//! cannot be reached at all (connection refused, out of time). Every
//! identity's `account` is the address without its scheme
//! (`vault.example.com:8200`); the provider is always `vault`.
//!
//! ## `kv/{mount}` — one scope per entry of `kv_mounts` (KV version 2)
//!
//! `LIST {mount}/metadata/{path}` recursively (keys ending in `/` are
//! folders; a 404 is an empty folder), then `GET {mount}/metadata/{path}`
//! for each secret. One credential per secret:
//!
//! | field | value |
//! |---|---|
//! | kind | `kv` |
//! | id | `{mount}/{path}` |
//! | identity | none |
//! | team | `custom_metadata[policy.team_tag]` |
//! | created_at | `created_time` |
//! | last_rotated_at | `updated_time` |
//! | expires_at, last_used_at | none (Vault does not track them) |
//! | state | `active`, or `inactive` when the current version is destroyed or has a `deletion_time` in the past |
//! | rotation_enabled | `custom_metadata.rotation_period` is a duration (`30d`, `12h`) and the secret was updated within it |
//! | value_hashes | with `match_values: true` only: `GET {mount}/data/{path}`, the keyed hash of each value of the current version (strings as UTF-8, other JSON values as compact JSON); the values are dropped at once |
//!
//! ## `tokens` — token accessors
//!
//! `LIST auth/token/accessors` (needs `sudo`), then
//! `POST auth/token/lookup-accessor` for each accessor (8 in flight). By the
//! token's `path`:
//!
//! - `auth/approle/login…`: a session of an AppRole, skipped (the AppRole
//!   is inventoried in its own scope);
//! - `auth/userpass/`, `auth/ldap/`, `auth/oidc/`, `auth/okta/`,
//!   `auth/github/`, `auth/radius/`: a human (identity with `human: true`,
//!   kind `token`, id = accessor, never privileged; no credential);
//! - anything else: a non-human identity and its credential:
//!
//! | identity field | value |
//! |---|---|
//! | kind | `token` |
//! | id | accessor |
//! | name | `display_name` |
//! | created_at | `creation_time` |
//! | last_used_at | none; `usage_tracked` false (Vault does not record token use) |
//! | team | `meta[policy.team_tag]` |
//! | privileged | `policy root` / `policy NAME` when `policies` ∪ `identity_policies` holds `root` or one of `policy.privileged.vault_policies` |
//! | standing | privileged and `expire_time` is null (the token never expires) |
//!
//! | credential field | value |
//! |---|---|
//! | kind | `token` |
//! | id, identity | accessor |
//! | created_at, last_rotated_at | `creation_time` |
//! | expires_at | `expire_time` |
//! | state | `active` (a revoked token disappears) |
//! | rotation_enabled | false |
//!
//! ## `approle/{mount}` — one scope per auth mount of type `approle`
//!
//! Mounts come from `GET sys/auth`; when that is forbidden the mount
//! `approle` is assumed. `LIST auth/{mount}/role`,
//! `GET auth/{mount}/role/{name}`, `LIST auth/{mount}/role/{name}/secret-id`
//! (404 = none), `POST auth/{mount}/role/{name}/secret-id-accessor/lookup`.
//!
//! | identity field | value |
//! |---|---|
//! | kind | `approle` |
//! | id | `{mount}/{role}` |
//! | name | role name |
//! | created_at | the earliest secret-id `creation_time` (none without secret-ids) |
//! | last_used_at | none; `usage_tracked` false |
//! | team | none |
//! | privileged | as for tokens, from the role's `token_policies` |
//! | standing | privileged and some secret-id never expires (`expiration_time` missing or `0001-01-01T00:00:00Z`) |
//!
//! | credential field | value |
//! |---|---|
//! | kind | `secret_id` |
//! | id | `secret_id_accessor` |
//! | identity | `{mount}/{role}` |
//! | created_at, last_rotated_at | `creation_time` |
//! | expires_at | `expiration_time` (none when it never expires) |
//! | state | `active` (an expired or destroyed secret-id disappears) |
//! | rotation_enabled | false |
//!
//! Secrets never leave memory: response bodies are never put into errors or
//! logs, JSON errors name only the position, and values read under
//! `match_values` are hashed and dropped.

use super::http::{self, HttpClient};
use super::{
    CredentialState, ErrorReason, InventoryScan, ObservationItem, ObservationSender,
    ObservedCredential, ObservedIdentity, PollContext, SourceError,
};
use crate::config::{Credential, Policy, VaultAuth, VaultConfig};
use crate::hashing::SecretHasher;
use bytes::Bytes;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PROVIDER: &str = "vault";
/// Requests in flight for per-item lookups.
const CONCURRENCY: usize = 8;
/// Folders deeper than this are not walked (a loop guard).
const MAX_DEPTH: usize = 64;
/// Token paths of human auth methods.
const HUMAN_PATHS: [&str; 6] = [
    "auth/userpass/",
    "auth/ldap/",
    "auth/oidc/",
    "auth/okta/",
    "auth/github/",
    "auth/radius/",
];
/// Vault's zero time: a secret-id that never expires.
const NEVER: &str = "0001-01-01T00:00:00Z";

/// An AppRole login token and when to log in again (`None`: never expires).
type CachedLogin = (Credential, Option<Instant>);

#[derive(Debug, Clone)]
pub struct VaultSource {
    cfg: VaultConfig,
    client: Arc<Mutex<Option<HttpClient>>>,
    /// The AppRole login token and when to log in again.
    login: Arc<Mutex<Option<CachedLogin>>>,
    /// Scopes refused (403) right after a fresh login: a lack of
    /// permission, not a stale token, so a 403 there does not log in again
    /// (which would mint a new token every poll).
    forbidden: Arc<Mutex<HashSet<String>>>,
}

impl VaultSource {
    pub fn new(cfg: VaultConfig) -> Self {
        Self {
            cfg,
            client: Arc::new(Mutex::new(None)),
            login: Arc::new(Mutex::new(None)),
            forbidden: Arc::new(Mutex::new(HashSet::new())),
        }
    }

    fn client(&self) -> Result<HttpClient, SourceError> {
        let mut c = self.client.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = c.as_ref() {
            return Ok(c.clone());
        }
        let built = HttpClient::new(self.cfg.ca_file.as_deref())
            .map_err(|e| SourceError::new(ErrorReason::Io, format!("tls.ca_file: {e}")))?;
        *c = Some(built.clone());
        Ok(built)
    }

    /// The `account` of identities: the address without its scheme.
    pub fn account(&self) -> String {
        account_of(&self.cfg.address)
    }

    fn base_headers(&self, token: &str) -> Result<HeaderMap, SourceError> {
        let mut pairs: Vec<(&'static str, &str)> = vec![("x-vault-token", token)];
        if !self.cfg.namespace.is_empty() {
            pairs.push(("x-vault-namespace", &self.cfg.namespace));
        }
        http::headers(&pairs)
    }

    /// The token to use: the configured one, or a (cached) AppRole login.
    /// The flag says whether it came from the cache.
    async fn token(
        &self,
        client: &HttpClient,
        deadline: Instant,
        fresh: bool,
    ) -> Result<(Credential, bool), SourceError> {
        let (mount, role_id, secret_id) = match &self.cfg.auth {
            VaultAuth::Token(t) => return Ok((t.clone(), false)),
            VaultAuth::AppRole {
                mount,
                role_id,
                secret_id,
            } => (mount, role_id, secret_id),
        };
        if !fresh {
            let cached = self.login.lock().unwrap_or_else(|p| p.into_inner()).clone();
            if let Some((tok, until)) = cached {
                if until.is_none_or(|u| Instant::now() < u) {
                    return Ok((tok, true));
                }
            }
        }
        let url = format!("{}/v1/auth/{}/login", self.cfg.address, mount);
        let body = serde_json::json!({
            "role_id": role_id.expose(),
            "secret_id": secret_id.expose(),
        });
        let body = Bytes::from(body.to_string());
        let mut h = HeaderMap::new();
        if !self.cfg.namespace.is_empty() {
            h = http::headers(&[("x-vault-namespace", &self.cfg.namespace)])?;
        }
        let r = client
            .send(Method::POST, &url, &h, Some(body), deadline)
            .await?;
        if r.status == StatusCode::BAD_REQUEST {
            // "invalid role or secret ID".
            return Err(SourceError::new(
                ErrorReason::Auth,
                format!("{}: AppRole login refused", http::redact_url(&url)),
            )
            .with_status(400));
        }
        http::error_for_status(&r, &url)?;
        let (tok, lease) = parse_login(&r.body).map_err(|m| parse_err(&url, m))?;
        let until = (lease > 0).then(|| Instant::now() + Duration::from_secs(lease * 4 / 5));
        *self.login.lock().unwrap_or_else(|p| p.into_inner()) = Some((tok.clone(), until));
        Ok((tok, false))
    }

    pub async fn poll(&self, ctx: PollContext, out: ObservationSender) -> Result<(), SourceError> {
        let client = self.client()?;
        let (token, cached) = self.token(&client, ctx.deadline, false).await?;
        let mut api = Api {
            client: client.clone(),
            address: self.cfg.address.clone(),
            headers: self.base_headers(token.expose())?,
            deadline: ctx.deadline,
        };
        let account = self.account();
        let mut read_any = false;
        let mut first_failure: Option<SourceError> = None;
        let approle = matches!(self.cfg.auth, VaultAuth::AppRole { .. });
        let mut fresh = !cached;

        // The scopes in order; AppRole mounts are known after `sys/auth`.
        let mut pending: Vec<Scope> = self
            .cfg
            .kv_mounts
            .iter()
            .map(|m| Scope::Kv(m.clone()))
            .collect();
        pending.push(Scope::Tokens);
        pending.push(Scope::AppRoleMounts);
        let mut i = 0;
        while i < pending.len() {
            let scope = pending[i].clone();
            i += 1;
            let mut outcome = self.read_scope(&api, &scope, &ctx, &account).await;
            let refused =
                |o: &Result<ScopeResult, SourceError>| matches!(o, Err(e) if e.status == Some(403));
            let name = scope.name();
            let known_forbidden = self
                .forbidden
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains(&name);
            if refused(&outcome) && !fresh && !known_forbidden {
                // The cached AppRole token may have been revoked: log in
                // again, once per poll.
                fresh = true;
                let (tok, _) = self.token(&client, ctx.deadline, true).await?;
                api.headers = self.base_headers(tok.expose())?;
                outcome = self.read_scope(&api, &scope, &ctx, &account).await;
            }
            if approle {
                let mut f = self.forbidden.lock().unwrap_or_else(|p| p.into_inner());
                if refused(&outcome) && fresh {
                    f.insert(name);
                } else if outcome.is_ok() {
                    f.remove(&name);
                }
            }
            let item = match outcome {
                Ok(ScopeResult::Mounts(mounts)) => {
                    pending.extend(mounts.into_iter().map(Scope::AppRole));
                    continue;
                }
                Ok(ScopeResult::Scan(scan)) => {
                    read_any = true;
                    ObservationItem::Inventory(scan)
                }
                Err(e) if e.status == Some(401) => return Err(e),
                // Vault unreachable or out of time: nothing else can be read.
                Err(e) if matches!(e.reason, ErrorReason::Io | ErrorReason::Timeout) => {
                    return Err(e)
                }
                Err(error) => {
                    let target = scope.name();
                    tracing::warn!(source = %ctx.source, scope = %target, reason = %error.reason, error = %error.message, "vault scope failed");
                    first_failure.get_or_insert_with(|| error.clone());
                    ObservationItem::TargetFailed { target, error }
                }
            };
            out.send(item)
                .await
                .map_err(|_| SourceError::new(ErrorReason::Timeout, "poll cancelled"))?;
        }
        match first_failure {
            // Every scope failed (a rejected token, no permission at all).
            Some(e) if !read_any => {
                if approle {
                    // Start the next poll from a fresh login.
                    *self.login.lock().unwrap_or_else(|p| p.into_inner()) = None;
                    self.forbidden
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .clear();
                }
                Err(SourceError {
                    reason: e.reason,
                    message: format!("every scope failed; first: {}", e.message),
                    status: e.status,
                })
            }
            _ => Ok(()),
        }
    }

    async fn read_scope(
        &self,
        api: &Api,
        scope: &Scope,
        ctx: &PollContext,
        account: &str,
    ) -> Result<ScopeResult, SourceError> {
        let scan = |identities, credentials| {
            ScopeResult::Scan(InventoryScan {
                scope: scope.name(),
                observed_at: ctx.now,
                identities,
                credentials,
            })
        };
        match scope {
            Scope::Kv(mount) => {
                let creds = self.read_kv(api, mount, ctx).await?;
                Ok(scan(Vec::new(), creds))
            }
            Scope::Tokens => {
                let (ids, creds) = read_tokens(api, ctx, account).await?;
                Ok(scan(ids, creds))
            }
            Scope::AppRoleMounts => Ok(ScopeResult::Mounts(read_approle_mounts(api).await?)),
            Scope::AppRole(mount) => {
                let (ids, creds) = read_approle(api, mount, &ctx.policy, account).await?;
                Ok(scan(ids, creds))
            }
        }
    }

    async fn read_kv(
        &self,
        api: &Api,
        mount: &str,
        ctx: &PollContext,
    ) -> Result<Vec<ObservedCredential>, SourceError> {
        let mount = mount.trim_matches('/');
        // Walk the folder tree (depth first).
        let mut leaves = Vec::new();
        let mut folders = vec![(String::new(), 0usize)];
        while let Some((folder, depth)) = folders.pop() {
            let path = format!("{mount}/metadata/{}", encode_path(&folder));
            let keys = api.list(&path).await?;
            for k in keys {
                let full = format!("{folder}{k}");
                if k.ends_with('/') {
                    if depth < MAX_DEPTH && !k.trim_matches('/').is_empty() {
                        folders.push((full, depth + 1));
                    }
                } else if !k.is_empty() {
                    leaves.push(full);
                }
            }
        }
        leaves.sort();
        leaves.dedup();
        let team_tag = ctx.policy.team_tag.clone();
        let now = ctx.now;
        let hasher = ctx.hasher.clone();
        let match_values = self.cfg.match_values;
        let results = bounded(leaves, |leaf| {
            let api = api.clone();
            let team_tag = team_tag.clone();
            let hasher = hasher.clone();
            let mount = mount.to_string();
            async move {
                let path = format!("{mount}/metadata/{}", encode_path(&leaf));
                let Some(body) = api.get(&path).await? else {
                    return Ok(None); // deleted between list and read
                };
                let mut cred = parse_kv_metadata(&body, &mount, &leaf, &team_tag, now)
                    .map_err(|m| parse_err(&api.url(&path), m))?;
                if match_values {
                    let path = format!("{mount}/data/{}", encode_path(&leaf));
                    // 404: the current version is deleted; nothing to hash.
                    if let Some(body) = api.get(&path).await? {
                        cred.value_hashes = parse_kv_data_hashes(&body, &hasher)
                            .map_err(|m| parse_err(&api.url(&path), m))?;
                    }
                }
                Ok(Some(cred))
            }
        })
        .await;
        let mut creds = Vec::new();
        for r in results {
            if let Some(c) = r? {
                creds.push(c);
            }
        }
        Ok(creds)
    }
}

#[derive(Debug, Clone)]
enum Scope {
    Kv(String),
    Tokens,
    /// Not a scope: finds the AppRole mounts.
    AppRoleMounts,
    AppRole(String),
}

impl Scope {
    fn name(&self) -> String {
        match self {
            Scope::Kv(m) => format!("kv/{}", m.trim_matches('/')),
            Scope::Tokens => "tokens".to_string(),
            Scope::AppRoleMounts => "sys/auth".to_string(),
            Scope::AppRole(m) => format!("approle/{m}"),
        }
    }
}

enum ScopeResult {
    Scan(InventoryScan),
    Mounts(Vec<String>),
}

/// An authenticated view of the API for one poll.
#[derive(Clone)]
struct Api {
    client: HttpClient,
    address: String,
    headers: HeaderMap,
    deadline: Instant,
}

impl Api {
    fn url(&self, path: &str) -> String {
        format!("{}/v1/{}", self.address, path)
    }

    /// A 2xx body, `None` on 404, an error otherwise.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Option<Bytes>, SourceError> {
        let url = self.url(path);
        let mut h = self.headers.clone();
        let body = body.map(|b| {
            h.insert(
                reqwest::header::CONTENT_TYPE,
                reqwest::header::HeaderValue::from_static("application/json"),
            );
            Bytes::from(b.to_string())
        });
        let r = self
            .client
            .send(method, &url, &h, body, self.deadline)
            .await?;
        if r.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        http::error_for_status(&r, &url)?;
        Ok(Some(r.body))
    }

    async fn get(&self, path: &str) -> Result<Option<Bytes>, SourceError> {
        self.call(Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> Result<Option<Bytes>, SourceError> {
        self.call(Method::POST, path, Some(body)).await
    }

    /// `LIST` (as `GET ?list=true`); 404 = empty.
    async fn list(&self, path: &str) -> Result<Vec<String>, SourceError> {
        let p = format!("{path}?list=true");
        match self.get(&p).await? {
            None => Ok(Vec::new()),
            Some(body) => parse_list(&body).map_err(|m| parse_err(&self.url(path), m)),
        }
    }
}

fn parse_err(url: &str, m: String) -> SourceError {
    SourceError::new(
        ErrorReason::Parse,
        format!("{}: {m}", http::redact_url(url)),
    )
}

/// Run `f` over `items` with at most [`CONCURRENCY`] in flight; results in
/// the order of `items`.
async fn bounded<I, T, F, Fut>(items: Vec<I>, f: F) -> Vec<Result<T, SourceError>>
where
    F: Fn(I) -> Fut,
    Fut: Future<Output = Result<T, SourceError>> + Send + 'static,
    T: Send + 'static,
{
    let n = items.len();
    let mut out: Vec<Option<Result<T, SourceError>>> = (0..n).map(|_| None).collect();
    let mut set = tokio::task::JoinSet::new();
    let mut iter = items.into_iter().enumerate();
    loop {
        while set.len() < CONCURRENCY {
            let Some((i, item)) = iter.next() else { break };
            let fut = f(item);
            set.spawn(async move { (i, fut.await) });
        }
        let Some(joined) = set.join_next().await else {
            break;
        };
        match joined {
            Ok((i, r)) => {
                let failed = r.is_err();
                out[i] = Some(r);
                if failed {
                    // The scope fails anyway: stop the others.
                    set.abort_all();
                    while set.join_next().await.is_some() {}
                    return out.into_iter().flatten().collect();
                }
            }
            Err(e) => {
                set.abort_all();
                while set.join_next().await.is_some() {}
                return vec![Err(SourceError::new(
                    ErrorReason::Io,
                    format!("lookup task failed: {e}"),
                ))];
            }
        }
    }
    out.into_iter().flatten().collect()
}

async fn read_tokens(
    api: &Api,
    ctx: &PollContext,
    account: &str,
) -> Result<(Vec<ObservedIdentity>, Vec<ObservedCredential>), SourceError> {
    let accessors = api.list("auth/token/accessors").await?;
    let policy = ctx.policy.clone();
    let account = account.to_string();
    let results = bounded(accessors, |accessor| {
        let api = api.clone();
        let policy = policy.clone();
        let account = account.clone();
        async move {
            let path = "auth/token/lookup-accessor";
            let r = api
                .post(path, serde_json::json!({ "accessor": accessor }))
                .await;
            let body = match r {
                Ok(Some(b)) => b,
                // Revoked between the list and the lookup ("invalid accessor").
                Ok(None) => return Ok(TokenEntry::Gone),
                Err(e) if e.status == Some(400) => return Ok(TokenEntry::Gone),
                Err(e) => return Err(e),
            };
            parse_token_lookup(&body, &account, &policy).map_err(|m| parse_err(&api.url(path), m))
        }
    })
    .await;
    let mut ids = Vec::new();
    let mut creds = Vec::new();
    for r in results {
        match r? {
            TokenEntry::Gone | TokenEntry::AppRoleSession => {}
            TokenEntry::Human(i) => ids.push(i),
            TokenEntry::Nhi(i, c) => {
                ids.push(*i);
                creds.push(*c);
            }
        }
    }
    Ok((ids, creds))
}

/// AppRole auth mounts from `sys/auth`; `approle` when it is forbidden.
async fn read_approle_mounts(api: &Api) -> Result<Vec<String>, SourceError> {
    match api.get("sys/auth").await {
        Ok(Some(body)) => parse_auth_mounts(&body).map_err(|m| parse_err(&api.url("sys/auth"), m)),
        Ok(None) => Ok(vec!["approle".to_string()]),
        Err(e) if e.reason == ErrorReason::Auth && e.status == Some(403) => {
            Ok(vec!["approle".to_string()])
        }
        Err(e) => Err(e),
    }
}

async fn read_approle(
    api: &Api,
    mount: &str,
    policy: &Arc<Policy>,
    account: &str,
) -> Result<(Vec<ObservedIdentity>, Vec<ObservedCredential>), SourceError> {
    let roles = api.list(&format!("auth/{mount}/role")).await?;
    let mut ids = Vec::new();
    let mut creds = Vec::new();
    for role in roles {
        let enc = encode_segment(&role);
        let rpath = format!("auth/{mount}/role/{enc}");
        let Some(body) = api.get(&rpath).await? else {
            continue; // deleted between list and read
        };
        let policies = parse_approle_role(&body).map_err(|m| parse_err(&api.url(&rpath), m))?;
        let accessors = api.list(&format!("{rpath}/secret-id")).await?;
        let lpath = format!("{rpath}/secret-id-accessor/lookup");
        let identity = format!("{mount}/{role}");
        let results = bounded(accessors, |acc| {
            let api = api.clone();
            let lpath = lpath.clone();
            let identity = identity.clone();
            async move {
                let r = api
                    .post(&lpath, serde_json::json!({ "secret_id_accessor": acc }))
                    .await;
                let body = match r {
                    Ok(Some(b)) => b,
                    Ok(None) => return Ok(None),
                    // Expired and tidied between the list and the lookup.
                    Err(e) if e.status == Some(400) => return Ok(None),
                    Err(e) => return Err(e),
                };
                parse_secret_id_lookup(&body, &identity)
                    .map(Some)
                    .map_err(|m| parse_err(&api.url(&lpath), m))
            }
        })
        .await;
        let mut role_creds = Vec::new();
        let mut never_expires = false;
        for r in results {
            if let Some((c, never)) = r? {
                never_expires |= never;
                role_creds.push(c);
            }
        }
        ids.push(approle_identity(
            mount,
            &role,
            &policies,
            &role_creds,
            never_expires,
            account,
            policy,
        ));
        creds.extend(role_creds);
    }
    Ok((ids, creds))
}

// ---------------------------------------------------------------------------
// Pure parsing (tested on fixtures).

/// `https://vault.example.com:8200/` → `vault.example.com:8200`.
pub fn account_of(address: &str) -> String {
    let a = address.split_once("://").map(|(_, r)| r).unwrap_or(address);
    a.trim_end_matches('/').to_string()
}

/// Percent-encode one path segment (RFC 3986 unreserved kept).
fn encode_segment(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            o.push(b as char);
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}

/// Percent-encode a `/`-separated path, keeping the separators.
fn encode_path(p: &str) -> String {
    p.split('/')
        .map(encode_segment)
        .collect::<Vec<_>>()
        .join("/")
}

/// JSON of a response. The error names the position only: serde's messages
/// can quote values, which may be secrets.
fn json<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|e| {
        format!(
            "malformed response ({:?} at line {} column {})",
            e.classify(),
            e.line(),
            e.column()
        )
    })
}

fn rfc3339(s: &str) -> Option<i64> {
    time::OffsetDateTime::parse(s.trim(), &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

/// An RFC 3339 field: `None` when absent or empty, an error when malformed.
fn opt_time(field: &str, v: Option<&str>) -> Result<Option<i64>, String> {
    match v.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => rfc3339(s)
            .map(Some)
            .ok_or_else(|| format!("{field} is not an RFC 3339 time")),
    }
}

#[derive(Deserialize)]
struct Envelope<T> {
    data: Option<T>,
}

#[derive(Deserialize)]
struct Keys {
    #[serde(default)]
    keys: Vec<String>,
}

/// The keys of a LIST response.
pub fn parse_list(body: &[u8]) -> Result<Vec<String>, String> {
    let e: Envelope<Keys> = json(body)?;
    Ok(e.data.map(|d| d.keys).unwrap_or_default())
}

#[derive(Deserialize)]
struct KvMetadata {
    created_time: Option<String>,
    updated_time: Option<String>,
    #[serde(default)]
    current_version: u64,
    custom_metadata: Option<HashMap<String, Option<String>>>,
    #[serde(default)]
    versions: HashMap<String, KvVersion>,
}

#[derive(Deserialize)]
struct KvVersion {
    deletion_time: Option<String>,
    #[serde(default)]
    destroyed: bool,
}

/// One KV v2 secret from `GET {mount}/metadata/{path}` (no value hashes).
pub fn parse_kv_metadata(
    body: &[u8],
    mount: &str,
    path: &str,
    team_tag: &str,
    now: i64,
) -> Result<ObservedCredential, String> {
    let e: Envelope<KvMetadata> = json(body)?;
    let m = e.data.ok_or("no data in the metadata response")?;
    let created_at = opt_time("created_time", m.created_time.as_deref())?;
    let updated = opt_time("updated_time", m.updated_time.as_deref())?;
    let custom = m.custom_metadata.unwrap_or_default();
    let meta = |k: &str| {
        custom
            .get(k)
            .and_then(|v| v.as_deref())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    let team = meta(team_tag);
    let last_rotated_at = updated.or(created_at);
    let rotation_enabled = match (meta("rotation_period"), last_rotated_at) {
        (Some(p), Some(at)) => match crate::config::parse_duration(&p) {
            Ok(d) if !d.is_zero() => now.saturating_sub(at) <= d.as_secs() as i64,
            _ => false,
        },
        _ => false,
    };
    let inactive = match m.versions.get(&m.current_version.to_string()) {
        Some(v) => {
            v.destroyed
                || opt_time("deletion_time", v.deletion_time.as_deref())?.is_some_and(|t| t <= now)
        }
        None => false,
    };
    Ok(ObservedCredential {
        provider: PROVIDER,
        kind: "kv",
        id: format!("{}/{}", mount.trim_matches('/'), path),
        identity: None,
        team,
        created_at,
        last_rotated_at,
        expires_at: None,
        last_used_at: None,
        state: if inactive {
            CredentialState::Inactive
        } else {
            CredentialState::Active
        },
        rotation_enabled,
        value_hashes: Vec::new(),
    })
}

/// Keyed hashes of the current values of `GET {mount}/data/{path}`: strings
/// as their UTF-8 bytes, other values as compact JSON. Values are dropped
/// here; the error never quotes the body.
pub fn parse_kv_data_hashes(body: &[u8], hasher: &SecretHasher) -> Result<Vec<[u8; 32]>, String> {
    #[derive(Deserialize)]
    struct Data {
        data: Option<serde_json::Map<String, Value>>,
    }
    let e: Envelope<Data> = json(body)?;
    let Some(values) = e.data.and_then(|d| d.data) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::with_capacity(values.len());
    for (_, v) in values {
        let h = match &v {
            Value::String(s) => hasher.hash(s.as_bytes()),
            other => hasher.hash(other.to_string().as_bytes()),
        };
        out.push(h);
    }
    Ok(out)
}

/// What a token accessor lookup is.
#[derive(Debug, Clone, PartialEq)]
pub enum TokenEntry {
    /// The accessor vanished between list and lookup.
    Gone,
    /// A token of an AppRole login: inventoried with its AppRole.
    AppRoleSession,
    Human(ObservedIdentity),
    Nhi(Box<ObservedIdentity>, Box<ObservedCredential>),
}

#[derive(Deserialize)]
struct TokenLookup {
    accessor: Option<String>,
    #[serde(default)]
    policies: Option<Vec<String>>,
    #[serde(default)]
    identity_policies: Option<Vec<String>>,
    meta: Option<HashMap<String, Option<String>>>,
    display_name: Option<String>,
    path: Option<String>,
    creation_time: Option<i64>,
    expire_time: Option<String>,
}

/// Why the policies make an identity privileged: `policy root`, or the
/// first of `vault_policies` held.
pub fn privileged_reason<'a>(
    policies: impl IntoIterator<Item = &'a str> + Clone,
    policy: &Policy,
) -> Option<String> {
    if policies.clone().into_iter().any(|p| p == "root") {
        return Some("policy root".to_string());
    }
    policy
        .privileged
        .vault_policies
        .iter()
        .find(|want| policies.clone().into_iter().any(|p| p == want.as_str()))
        .map(|p| format!("policy {p}"))
}

/// One `POST auth/token/lookup-accessor` response.
pub fn parse_token_lookup(
    body: &[u8],
    account: &str,
    policy: &Policy,
) -> Result<TokenEntry, String> {
    let e: Envelope<TokenLookup> = json(body)?;
    let t = e.data.ok_or("no data in the lookup response")?;
    let accessor = t
        .accessor
        .filter(|a| !a.is_empty())
        .ok_or("lookup without an accessor")?;
    let path = t.path.unwrap_or_default();
    if path.starts_with("auth/approle/login") {
        return Ok(TokenEntry::AppRoleSession);
    }
    let meta = t.meta.unwrap_or_default();
    let team = meta
        .get(&policy.team_tag)
        .and_then(|v| v.as_deref())
        .filter(|v| !v.is_empty())
        .map(str::to_string);
    let name = t.display_name.unwrap_or_default();
    let human = HUMAN_PATHS.iter().any(|p| path.starts_with(p));
    let expires_at = opt_time("expire_time", t.expire_time.as_deref())?;
    let all: Vec<String> = t
        .policies
        .unwrap_or_default()
        .into_iter()
        .chain(t.identity_policies.unwrap_or_default())
        .collect();
    let privileged = if human {
        None
    } else {
        privileged_reason(all.iter().map(String::as_str), policy)
    };
    let identity = ObservedIdentity {
        provider: PROVIDER,
        account: account.to_string(),
        kind: "token",
        id: accessor.clone(),
        name,
        created_at: t.creation_time,
        last_used_at: None,
        usage_tracked: false,
        team: team.clone(),
        standing: privileged.is_some() && expires_at.is_none(),
        privileged,
        human,
    };
    if human {
        return Ok(TokenEntry::Human(identity));
    }
    let cred = ObservedCredential {
        provider: PROVIDER,
        kind: "token",
        id: accessor.clone(),
        identity: Some(accessor),
        team,
        created_at: t.creation_time,
        last_rotated_at: t.creation_time,
        expires_at,
        last_used_at: None,
        state: CredentialState::Active,
        rotation_enabled: false,
        value_hashes: Vec::new(),
    };
    Ok(TokenEntry::Nhi(Box::new(identity), Box::new(cred)))
}

#[derive(Deserialize)]
struct AuthMount {
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// AppRole mount paths (without `auth/` and the trailing `/`) from
/// `GET sys/auth`, sorted.
pub fn parse_auth_mounts(body: &[u8]) -> Result<Vec<String>, String> {
    let v: Value = json(body)?;
    // Newer servers wrap the map in `data`; older ones send it at the top.
    let map = match v.get("data") {
        Some(d) if d.is_object() => d.clone(),
        _ => v,
    };
    let map: BTreeMap<String, Value> = match map {
        Value::Object(m) => m.into_iter().collect(),
        _ => return Err("sys/auth is not an object".into()),
    };
    let mut out = Vec::new();
    for (path, m) in map {
        if !path.ends_with('/') {
            continue; // request_id, lease_id...
        }
        let Ok(m) = serde_json::from_value::<AuthMount>(m) else {
            continue;
        };
        if m.kind.as_deref() == Some("approle") {
            out.push(path.trim_end_matches('/').to_string());
        }
    }
    Ok(out)
}

/// The token policies of an AppRole role (`token_policies`, or the legacy
/// `policies`).
pub fn parse_approle_role(body: &[u8]) -> Result<Vec<String>, String> {
    #[derive(Deserialize)]
    struct Role {
        token_policies: Option<Vec<String>>,
        policies: Option<Vec<String>>,
    }
    let e: Envelope<Role> = json(body)?;
    let r = e.data.ok_or("no data in the role response")?;
    let mut p = r.token_policies.unwrap_or_default();
    for x in r.policies.unwrap_or_default() {
        if !p.contains(&x) {
            p.push(x);
        }
    }
    Ok(p)
}

/// One secret-id accessor lookup: the credential of `identity`
/// (`{mount}/{role}`), and whether the secret-id never expires.
pub fn parse_secret_id_lookup(
    body: &[u8],
    identity: &str,
) -> Result<(ObservedCredential, bool), String> {
    #[derive(Deserialize)]
    struct Lookup {
        secret_id_accessor: Option<String>,
        creation_time: Option<String>,
        expiration_time: Option<String>,
    }
    let e: Envelope<Lookup> = json(body)?;
    let l = e.data.ok_or("no data in the secret-id lookup response")?;
    let id = l
        .secret_id_accessor
        .filter(|a| !a.is_empty())
        .ok_or("lookup without a secret_id_accessor")?;
    let created_at = opt_time("creation_time", l.creation_time.as_deref())?;
    let exp = l.expiration_time.filter(|s| s.trim() != NEVER);
    let expires_at = opt_time("expiration_time", exp.as_deref())?;
    Ok((
        ObservedCredential {
            provider: PROVIDER,
            kind: "secret_id",
            id,
            identity: Some(identity.to_string()),
            team: None,
            created_at,
            last_rotated_at: created_at,
            expires_at,
            last_used_at: None,
            state: CredentialState::Active,
            rotation_enabled: false,
            value_hashes: Vec::new(),
        },
        expires_at.is_none(),
    ))
}

/// The identity of an AppRole role from its policies and secret-ids.
pub fn approle_identity(
    mount: &str,
    role: &str,
    policies: &[String],
    secret_ids: &[ObservedCredential],
    some_never_expires: bool,
    account: &str,
    policy: &Policy,
) -> ObservedIdentity {
    let privileged = privileged_reason(policies.iter().map(String::as_str), policy);
    ObservedIdentity {
        provider: PROVIDER,
        account: account.to_string(),
        kind: "approle",
        id: format!("{mount}/{role}"),
        name: role.to_string(),
        created_at: secret_ids.iter().filter_map(|c| c.created_at).min(),
        last_used_at: None,
        usage_tracked: false,
        team: None,
        standing: privileged.is_some() && some_never_expires,
        privileged,
        human: false,
    }
}

/// The token and lease (seconds; 0 = no expiry) of an AppRole login.
pub fn parse_login(body: &[u8]) -> Result<(Credential, u64), String> {
    #[derive(Deserialize)]
    struct Auth {
        client_token: Option<String>,
        #[serde(default)]
        lease_duration: u64,
    }
    #[derive(Deserialize)]
    struct Login {
        auth: Option<Auth>,
    }
    let l: Login = json(body)?;
    let a = l.auth.ok_or("login response without auth")?;
    let tok = a
        .client_token
        .filter(|t| !t.is_empty())
        .ok_or("login response without a client_token")?;
    Ok((Credential::new(tok), a.lease_duration))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fx(name: &str) -> Vec<u8> {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/vault")
            .join(name);
        std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    fn policy() -> Policy {
        let mut p = Policy {
            team_tag: "team".into(),
            ..Default::default()
        };
        p.privileged.vault_policies = vec!["admin".into()];
        p
    }

    fn t(s: &str) -> i64 {
        rfc3339(s).unwrap()
    }

    #[test]
    fn lists_and_accounts() {
        assert_eq!(
            parse_list(&fx("list_metadata.json")).unwrap(),
            ["app/", "old"]
        );
        assert_eq!(
            parse_list(br#"{"errors":[]}"#).unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(
            account_of("https://vault.example.com:8200/"),
            "vault.example.com:8200"
        );
        assert_eq!(account_of("http://127.0.0.1:8200"), "127.0.0.1:8200");
        assert_eq!(encode_path("a b/c%d/"), "a%20b/c%25d/");
    }

    #[test]
    fn kv_metadata_with_rotation_and_team() {
        let now = t("2026-11-28T00:00:00Z");
        let c = parse_kv_metadata(
            &fx("kv_metadata_rotated.json"),
            "secret",
            "app/db",
            "team",
            now,
        )
        .unwrap();
        assert_eq!(
            c,
            ObservedCredential {
                provider: "vault",
                kind: "kv",
                id: "secret/app/db".into(),
                identity: None,
                team: Some("payments".into()),
                created_at: Some(t("2026-11-27T07:32:21Z")),
                last_rotated_at: Some(t("2026-11-27T07:32:21Z")),
                expires_at: None,
                last_used_at: None,
                state: CredentialState::Active,
                rotation_enabled: true,
                value_hashes: vec![],
            }
        );
        // Past its declared rotation period (30d): not honoured.
        let late = t("2027-01-15T00:00:00Z");
        let c = parse_kv_metadata(
            &fx("kv_metadata_rotated.json"),
            "secret",
            "app/db",
            "team",
            late,
        )
        .unwrap();
        assert!(!c.rotation_enabled);
        // Another team tag: no team.
        let c = parse_kv_metadata(
            &fx("kv_metadata_rotated.json"),
            "secret",
            "app/db",
            "owner",
            now,
        )
        .unwrap();
        assert_eq!(c.team, None);
    }

    #[test]
    fn kv_deleted_current_version_is_inactive() {
        let now = t("2026-11-28T00:00:00Z");
        let c = parse_kv_metadata(
            &fx("kv_metadata_deleted.json"),
            "secret",
            "old",
            "team",
            now,
        )
        .unwrap();
        assert_eq!(c.state, CredentialState::Inactive);
        assert_eq!(c.team, None);
        assert!(!c.rotation_enabled);
        // A deletion scheduled in the future (delete_version_after) is not yet.
        let before = t("2026-11-27T07:32:20Z");
        let c = parse_kv_metadata(
            &fx("kv_metadata_deleted.json"),
            "secret",
            "old",
            "team",
            before,
        )
        .unwrap();
        assert_eq!(c.state, CredentialState::Active);
        let destroyed = br#"{"data":{"created_time":"2026-01-01T00:00:00Z","updated_time":"2026-01-01T00:00:00Z","current_version":2,"versions":{"1":{"deletion_time":"","destroyed":false},"2":{"deletion_time":"","destroyed":true}}}}"#;
        let c = parse_kv_metadata(destroyed, "kv", "x", "team", now).unwrap();
        assert_eq!(c.state, CredentialState::Inactive);
        assert_eq!(c.id, "kv/x");
    }

    #[test]
    fn kv_values_are_hashed_and_errors_do_not_quote_them() {
        let h = SecretHasher::new([7; 32]);
        let mut got = parse_kv_data_hashes(&fx("kv_data.json"), &h).unwrap();
        got.sort();
        let mut want = vec![h.hash(b"s3cr3t"), h.hash(b"5432")];
        want.sort();
        assert_eq!(got, want);
        // Deleted current version: data is null.
        let deleted = br#"{"data":{"data":null,"metadata":{"version":1}}}"#;
        assert!(parse_kv_data_hashes(deleted, &h).unwrap().is_empty());
        // A type error would quote the value in serde's message.
        let bad = br#"{"data":{"data":"CANARY-zzz-value"}}"#;
        let e = parse_kv_data_hashes(bad, &h).unwrap_err();
        assert!(!e.contains("CANARY"), "{e}");
        let e = parse_kv_data_hashes(b"{\"data\": \"CANARY-truncated", &h).unwrap_err();
        assert!(!e.contains("CANARY"), "{e}");
    }

    #[test]
    fn token_lookups_are_classified() {
        let p = policy();
        let acct = "127.0.0.1:8200";
        assert_eq!(
            parse_token_lookup(&fx("lookup_token_approle_session.json"), acct, &p).unwrap(),
            TokenEntry::AppRoleSession
        );
        let TokenEntry::Human(h) =
            parse_token_lookup(&fx("lookup_token_userpass.json"), acct, &p).unwrap()
        else {
            panic!("userpass is human")
        };
        assert!(h.human);
        assert_eq!(h.id, "2VCmwQSK6segAVFRgIVfEbma");
        assert_eq!(h.name, "userpass-alice");
        assert_eq!(h.privileged, None);

        let TokenEntry::Nhi(i, c) =
            parse_token_lookup(&fx("lookup_token_root.json"), acct, &p).unwrap()
        else {
            panic!("root token is an NHI")
        };
        assert_eq!(
            *i,
            ObservedIdentity {
                provider: "vault",
                account: acct.into(),
                kind: "token",
                id: "x2uRcY2ssXNklkUagovZJbws".into(),
                name: "token".into(),
                created_at: Some(1795764738),
                last_used_at: None,
                usage_tracked: false,
                team: None,
                privileged: Some("policy root".into()),
                standing: true,
                human: false,
            }
        );
        assert_eq!(
            *c,
            ObservedCredential {
                provider: "vault",
                kind: "token",
                id: "x2uRcY2ssXNklkUagovZJbws".into(),
                identity: Some("x2uRcY2ssXNklkUagovZJbws".into()),
                team: None,
                created_at: Some(1795764738),
                last_rotated_at: Some(1795764738),
                expires_at: None,
                last_used_at: None,
                state: CredentialState::Active,
                rotation_enabled: false,
                value_hashes: vec![],
            }
        );

        let TokenEntry::Nhi(i, c) =
            parse_token_lookup(&fx("lookup_token_ttl.json"), acct, &p).unwrap()
        else {
            panic!("created token is an NHI")
        };
        assert_eq!(i.team.as_deref(), Some("infra"));
        assert_eq!(i.name, "token-ci-bot");
        assert_eq!(i.privileged, None);
        assert!(!i.standing);
        assert_eq!(c.expires_at, Some(t("2026-11-27T08:32:25Z")));
        assert_eq!(c.team.as_deref(), Some("infra"));

        // A privileged policy by identity, with a TTL: privileged, not standing.
        let body = br#"{"data":{"accessor":"acc1","creation_time":100,"display_name":"x","expire_time":"2026-11-27T08:32:25Z","path":"auth/token/create","policies":["default"],"identity_policies":["admin"]}}"#;
        let TokenEntry::Nhi(i, _) = parse_token_lookup(body, acct, &p).unwrap() else {
            panic!()
        };
        assert_eq!(i.privileged.as_deref(), Some("policy admin"));
        assert!(!i.standing);
    }

    #[test]
    fn approle_parts() {
        assert_eq!(
            parse_auth_mounts(&fx("sys_auth.json")).unwrap(),
            ["approle"]
        );
        let two = br#"{"data":{"approle/":{"type":"approle"},"ci/apps/":{"type":"approle"},"token/":{"type":"token"}},"request_id":"r"}"#;
        assert_eq!(parse_auth_mounts(two).unwrap(), ["approle", "ci/apps"]);
        let legacy = br#"{"approle/":{"type":"approle"},"token/":{"type":"token"}}"#;
        assert_eq!(parse_auth_mounts(legacy).unwrap(), ["approle"]);

        assert_eq!(
            parse_approle_role(&fx("approle_role.json")).unwrap(),
            ["ops"]
        );

        let (never, n) = parse_secret_id_lookup(&fx("secret_id_never.json"), "approle/ci").unwrap();
        assert!(n);
        assert_eq!(
            never,
            ObservedCredential {
                provider: "vault",
                kind: "secret_id",
                id: "c22656be-5498-d07e-b532-d2e0825263d0".into(),
                identity: Some("approle/ci".into()),
                team: None,
                created_at: Some(t("2026-11-27T07:32:25Z")),
                last_rotated_at: Some(t("2026-11-27T07:32:25Z")),
                expires_at: None,
                last_used_at: None,
                state: CredentialState::Active,
                rotation_enabled: false,
                value_hashes: vec![],
            }
        );
        let (ttl, n) = parse_secret_id_lookup(&fx("secret_id_ttl.json"), "approle/ci").unwrap();
        assert!(!n);
        assert_eq!(ttl.expires_at, Some(t("2026-11-27T08:32:25Z")));

        let mut p = policy();
        let i = approle_identity(
            "approle",
            "ci",
            &["ops".into()],
            &[never.clone(), ttl.clone()],
            true,
            "h:1",
            &p,
        );
        assert_eq!(i.id, "approle/ci");
        assert_eq!(i.created_at, Some(t("2026-11-27T07:32:25Z")));
        assert_eq!(i.privileged, None);
        assert!(!i.standing);
        p.privileged.vault_policies = vec!["ops".into()];
        let i = approle_identity(
            "approle",
            "ci",
            &["ops".into()],
            &[never, ttl.clone()],
            true,
            "h:1",
            &p,
        );
        assert_eq!(i.privileged.as_deref(), Some("policy ops"));
        assert!(i.standing);
        let i = approle_identity("approle", "ci", &["ops".into()], &[ttl], false, "h:1", &p);
        assert!(!i.standing);
    }

    #[test]
    fn login_token_is_redacted_in_debug() {
        let (tok, lease) = parse_login(&fx("login.json")).unwrap();
        assert_eq!(tok.expose(), "s.FIXTUREFIXTUREFIXTURE00");
        assert_eq!(lease, 2764800);
        assert!(!format!("{tok:?}").contains("FIXTURE"));
        assert!(parse_login(br#"{"auth":null}"#).is_err());
    }
}
