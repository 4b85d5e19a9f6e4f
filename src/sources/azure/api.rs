//! Tokens and paged reads of Microsoft Graph, Azure Resource Manager and
//! Key Vault, in plain REST over the crate's retrying [`HttpClient`].
//!
//! Why not the `azure_identity` / `azure_security_keyvault_secrets` crates:
//! their current releases are betas whose types change between releases,
//! they bring a second HTTP stack (`azure_core`/`typespec`) beside reqwest,
//! and the Key Vault client checks the 401 challenge's resource against
//! `*.vault.azure.net`, so it cannot read a sovereign or loopback vault
//! without patching. What this source needs of them is three token requests
//! (each one form POST or GET, documented by Microsoft) and paged JSON
//! lists; Microsoft Graph has no official Rust SDK at all.
//!
//! Credentials go only to their origin: a next-page link (`@odata.nextLink`,
//! `nextLink`) to another scheme, host or port than the request's is an
//! error, never followed with the token.

use super::config::{AzureAuth, AzureConfig};
use crate::model::{ErrorReason, SourceError};
use crate::sources::http::{error_for_status, foreign_link, headers, same_origin, HttpClient};
use bytes::Bytes;
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;
use tokio::sync::OnceCell;

/// Whom a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    Graph,
    Arm,
    KeyVault,
}

/// One poll's client: its tokens are asked for once, when first needed.
pub struct Api<'a> {
    http: &'a HttpClient,
    cfg: &'a AzureConfig,
    deadline: Instant,
    graph: OnceCell<String>,
    arm: OnceCell<String>,
    vault: OnceCell<String>,
    requests: AtomicUsize,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
}

/// One page of a Graph (`@odata.nextLink`), ARM or Key Vault (`nextLink`) list.
#[derive(Deserialize)]
struct Page<T> {
    #[serde(default = "Vec::new")]
    value: Vec<T>,
    #[serde(rename = "@odata.nextLink")]
    odata_next: Option<String>,
    #[serde(rename = "nextLink")]
    next: Option<String>,
}

impl<'a> Api<'a> {
    pub fn new(http: &'a HttpClient, cfg: &'a AzureConfig, deadline: Instant) -> Self {
        Self {
            http,
            cfg,
            deadline,
            graph: OnceCell::new(),
            arm: OnceCell::new(),
            vault: OnceCell::new(),
            requests: AtomicUsize::new(0),
        }
    }

    /// Requests sent so far (token requests and retries included).
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::Relaxed)
    }

    fn resource(&self, aud: Audience) -> &str {
        let e = &self.cfg.endpoints;
        match aud {
            Audience::Graph => &e.graph,
            Audience::Arm => &e.arm,
            Audience::KeyVault => &e.key_vault_resource,
        }
    }

    async fn token(&self, aud: Audience) -> Result<&str, SourceError> {
        let cell = match aud {
            Audience::Graph => &self.graph,
            Audience::Arm => &self.arm,
            Audience::KeyVault => &self.vault,
        };
        cell.get_or_try_init(|| self.fetch_token(aud))
            .await
            .map(String::as_str)
    }

    async fn fetch_token(&self, aud: Audience) -> Result<String, SourceError> {
        let resource = self.resource(aud).to_string();
        let scope = format!("{resource}/.default");
        let e = &self.cfg.endpoints;
        let (method, url, hdrs, body) = match &self.cfg.auth {
            AzureAuth::ClientSecret { client_id, secret } => {
                let body = url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("grant_type", "client_credentials")
                    .append_pair("client_id", client_id)
                    .append_pair("client_secret", secret.expose())
                    .append_pair("scope", &scope)
                    .finish();
                (Method::POST, self.token_url(), form_headers()?, Some(body))
            }
            AzureAuth::WorkloadIdentity {
                client_id,
                token_file,
            } => {
                // Re-read every time: the kubelet rotates the projected token.
                let assertion = std::fs::read_to_string(token_file).map_err(|err| {
                    SourceError::new(
                        ErrorReason::Auth,
                        format!(
                            "cannot read the federated token file {}: {}",
                            token_file.display(),
                            err.kind()
                        ),
                    )
                })?;
                let body = url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("grant_type", "client_credentials")
                    .append_pair("client_id", client_id)
                    .append_pair(
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    )
                    .append_pair("client_assertion", assertion.trim())
                    .append_pair("scope", &scope)
                    .finish();
                (Method::POST, self.token_url(), form_headers()?, Some(body))
            }
            AzureAuth::ManagedIdentity { client_id } => {
                let mut q = url::form_urlencoded::Serializer::new(String::new());
                q.append_pair("api-version", "2018-02-01")
                    .append_pair("resource", &resource);
                if let Some(c) = client_id {
                    q.append_pair("client_id", c);
                }
                let url = format!("{}?{}", e.managed_identity, q.finish());
                (Method::GET, url, headers(&[("metadata", "true")])?, None)
            }
        };
        let r = self
            .send(method, &url, &hdrs, body.map(Bytes::from))
            .await?;
        error_for_status(&r, &url).map_err(|mut err| {
            // A refused client credential is an authentication failure
            // whatever the status (Entra answers 400 invalid_client).
            if r.status.is_client_error() && r.status.as_u16() != 429 {
                err.reason = ErrorReason::Auth;
                err.message = format!("token request refused: HTTP {}", r.status);
            }
            err
        })?;
        let t: TokenResponse = serde_json::from_slice(&r.body).map_err(|_| {
            SourceError::new(
                ErrorReason::Parse,
                "token response is not a token (JSON with access_token)",
            )
        })?;
        Ok(t.access_token)
    }

    fn token_url(&self) -> String {
        format!(
            "{}/{}/oauth2/v2.0/token",
            self.cfg.endpoints.login, self.cfg.tenant_id
        )
    }

    async fn send(
        &self,
        method: Method,
        url: &str,
        hdrs: &reqwest::header::HeaderMap,
        body: Option<Bytes>,
    ) -> Result<crate::sources::http::Response, SourceError> {
        let r = self
            .http
            .send(method, url, hdrs, body, self.deadline)
            .await?;
        self.requests
            .fetch_add(r.attempts as usize, Ordering::Relaxed);
        Ok(r)
    }

    /// GET a JSON document with a token for `aud`.
    pub async fn get<T: DeserializeOwned>(
        &self,
        aud: Audience,
        url: &str,
    ) -> Result<T, SourceError> {
        let token = self.token(aud).await?;
        let auth = format!("Bearer {token}");
        let hdrs = headers(&[("authorization", &auth), ("accept", "application/json")])?;
        let r = self.send(Method::GET, url, &hdrs, None).await?;
        error_for_status(&r, url)?;
        serde_json::from_slice(&r.body).map_err(|e| {
            SourceError::new(
                ErrorReason::Parse,
                format!(
                    "{}: unexpected response shape at line {} column {}",
                    crate::util::redact_url(url),
                    e.line(),
                    e.column()
                ),
            )
        })
    }

    /// Every item of a paged list, following `@odata.nextLink` / `nextLink`
    /// on the same origin only.
    pub async fn list<T: DeserializeOwned>(
        &self,
        aud: Audience,
        first: &str,
    ) -> Result<Vec<T>, SourceError> {
        let mut out = Vec::new();
        let mut url = first.to_string();
        loop {
            let page: Page<T> = self.get(aud, &url).await?;
            out.extend(page.value);
            match page.odata_next.or(page.next).filter(|n| !n.is_empty()) {
                None => return Ok(out),
                Some(next) => {
                    if !same_origin(first, &next) {
                        return Err(foreign_link(first));
                    }
                    url = next;
                }
            }
        }
    }
}

fn form_headers() -> Result<reqwest::header::HeaderMap, SourceError> {
    headers(&[
        ("content-type", "application/x-www-form-urlencoded"),
        ("accept", "application/json"),
    ])
}

/// Percent-encode one query value (`$filter=...`).
pub fn q(v: &str) -> String {
    url::form_urlencoded::byte_serialize(v.as_bytes()).collect()
}
