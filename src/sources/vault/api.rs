//! The authenticated HTTP view of the Vault API for one poll, the bounded
//! concurrency helper, and the helpers every scope shares (paths, JSON,
//! times, LIST responses, the AppRole login response).

use crate::config::Credential;
use crate::model::{ErrorReason, SourceError};
use crate::sources::http::{self, HttpClient};
use bytes::Bytes;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::Value;
use std::time::Instant;

/// An authenticated view of the API for one poll.
#[derive(Clone)]
pub(super) struct Api {
    pub(super) client: HttpClient,
    pub(super) address: String,
    pub(super) headers: HeaderMap,
    pub(super) deadline: Instant,
}

impl Api {
    pub(super) fn url(&self, path: &str) -> String {
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

    pub(super) async fn get(&self, path: &str) -> Result<Option<Bytes>, SourceError> {
        self.call(Method::GET, path, None).await
    }

    pub(super) async fn post(&self, path: &str, body: Value) -> Result<Option<Bytes>, SourceError> {
        self.call(Method::POST, path, Some(body)).await
    }

    /// `LIST` (as `GET ?list=true`); 404 = empty.
    pub(super) async fn list(&self, path: &str) -> Result<Vec<String>, SourceError> {
        let p = format!("{path}?list=true");
        match self.get(&p).await? {
            None => Ok(Vec::new()),
            Some(body) => parse_list(&body).map_err(|m| parse_err(&self.url(path), m)),
        }
    }
}

pub(super) fn parse_err(url: &str, m: String) -> SourceError {
    SourceError::new(
        ErrorReason::Parse,
        format!("{}: {m}", http::redact_url(url)),
    )
}

// ---------------------------------------------------------------------------
// Pure parsing (tested on fixtures).

/// `https://vault.example.com:8200/` → `vault.example.com:8200`.
pub fn account_of(address: &str) -> String {
    let a = address.split_once("://").map(|(_, r)| r).unwrap_or(address);
    a.trim_end_matches('/').to_string()
}

/// Percent-encode one path segment (RFC 3986 unreserved kept).
pub(super) fn encode_segment(s: &str) -> String {
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
pub(super) fn encode_path(p: &str) -> String {
    p.split('/')
        .map(encode_segment)
        .collect::<Vec<_>>()
        .join("/")
}

/// JSON of a response. The error names the position only: serde's messages
/// can quote values, which may be secrets.
pub(super) fn json<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|e| {
        format!(
            "malformed response ({:?} at line {} column {})",
            e.classify(),
            e.line(),
            e.column()
        )
    })
}

/// An RFC 3339 field: `None` when absent or empty, an error when malformed.
pub(super) fn opt_time(field: &str, v: Option<&str>) -> Result<Option<i64>, String> {
    match v.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => crate::sources::rfc3339(s)
            .map(Some)
            .ok_or_else(|| format!("{field} is not an RFC 3339 time")),
    }
}

#[derive(Deserialize)]
pub(super) struct Envelope<T> {
    pub(super) data: Option<T>,
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
