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

// `pub(crate)` for the fuzzing entry points (`crate::fuzzing`).
pub(crate) mod api;
pub(crate) mod approle;
mod config;
#[cfg(test)]
mod config_tests;
pub(crate) mod kv;
#[cfg(test)]
mod tests;
pub(crate) mod tokens;

pub use api::{account_of, parse_list, parse_login};
pub use approle::{
    approle_identity, parse_approle_role, parse_auth_mounts, parse_secret_id_lookup,
};
pub use config::{VaultAuth, VaultConfig};
pub use kv::{parse_kv_data_hashes, parse_kv_metadata};
pub use tokens::{parse_token_lookup, privileged_reason, TokenEntry};

use super::http::{self, HttpClient};
use super::registry::Registration;
use super::{ObservationSender, PollContext, PollFuture, Source};
use crate::config::Credential;
use crate::model::{
    ErrorReason, InventoryKinds, InventoryScan, ObservationItem, ObservedCredential, SourceError,
};
use api::{parse_err, Api};
use approle::{read_approle, read_approle_mounts};
use bytes::Bytes;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokens::read_tokens;

const PROVIDER: &str = "vault";
pub const TYPE_NAME: &str = "vault";

/// What a `vault` source inventories.
pub const INVENTORY: InventoryKinds = InventoryKinds {
    provider: PROVIDER,
    identity_kinds: &["token", "approle"],
    credential_kinds: &["kv", "token", "secret_id"],
};

pub const REGISTRATION: Registration = Registration {
    ty: super::registry::SourceType {
        name: TYPE_NAME,
        parse: config::parse,
    },
    build: |spec| {
        let cfg = Registration::settings::<VaultConfig>(spec)?;
        Ok(Arc::new(VaultSource::new(cfg.clone())?))
    },
};

impl Source for VaultSource {
    fn poll<'a>(&'a self, ctx: PollContext, out: ObservationSender) -> PollFuture<'a> {
        Box::pin(VaultSource::poll(self, ctx, out))
    }
}
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
    /// The source with its HTTP client (and CA file) built.
    pub fn new(cfg: VaultConfig) -> Result<Self, String> {
        let client =
            HttpClient::new(cfg.ca_file.as_deref()).map_err(|e| format!("tls.ca_file: {e}"))?;
        Ok(Self {
            cfg,
            client: Arc::new(Mutex::new(Some(client))),
            login: Arc::new(Mutex::new(None)),
            forbidden: Arc::new(Mutex::new(HashSet::new())),
        })
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
        let scan = |identities, mut credentials: Vec<ObservedCredential>| {
            // Every credential lives in this cluster (the `scope` label).
            for c in &mut credentials {
                c.account = account.to_string();
            }
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
