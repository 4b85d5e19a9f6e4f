//! Google credentials: a service-account key file (`credentials_file`), or
//! Application Default Credentials — `GOOGLE_APPLICATION_CREDENTIALS`, then
//! gcloud's `application_default_credentials.json`, then the metadata
//! server (GCE, GKE workload identity, Cloud Run; `GCE_METADATA_HOST`
//! overrides its address as in Google's own libraries).
//!
//! Hand-written rather than `google-cloud-auth` (see the module doc of
//! [`super`]): a service-account key is turned into the same self-signed
//! JWT the official Rust client sends (RS256, `kid` = `private_key_id`,
//! `iss` = `sub` = the client email, `scope` = cloud-platform, one hour),
//! signed with `ring`, which the TLS stack already builds; no token
//! endpoint is called for it. An `authorized_user` file (gcloud's ADC) is
//! exchanged at its `token_uri`; the metadata server gives an access token.
//! `external_account` (workload identity federation from outside Google)
//! is refused with a message: use the metadata server or a key file.
//!
//! Neither the key nor a token is ever logged, put in an error or kept
//! past the poll: [`KeyFile`] and [`Bearer`] have no `Debug` of their
//! content.

use crate::model::{ErrorReason, SourceError};
use crate::sources::http::{self, HttpClient};
use base64::Engine;
use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use reqwest::Method;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The scope every call needs (read-only use of it is what the role grants).
pub const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
const METADATA_HOST: &str = "metadata.google.internal";
const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("cannot read {0}: {1}")]
    Read(String, String),
    #[error("{0} is not a Google credentials file (JSON with \"type\")")]
    NotJson(String),
    #[error("{0}: credentials of type {1:?} are not supported (use a service_account key, gcloud's authorized_user, or the metadata server)")]
    Unsupported(String, String),
    #[error("{0}: a service_account key needs client_email, private_key_id and private_key")]
    Incomplete(String),
    #[error("{0}: private_key is not an RSA key in PEM (PKCS#8 or PKCS#1)")]
    BadKey(String),
}

/// A parsed credentials file. No `Debug`: it holds the key.
pub enum KeyFile {
    ServiceAccount {
        client_email: String,
        private_key_id: String,
        key: ring::signature::RsaKeyPair,
    },
    AuthorizedUser {
        client_id: String,
        client_secret: String,
        refresh_token: String,
        token_uri: String,
    },
}

#[derive(Deserialize)]
struct RawFile {
    #[serde(rename = "type")]
    ty: Option<String>,
    client_email: Option<String>,
    private_key_id: Option<String>,
    private_key: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    refresh_token: Option<String>,
    token_uri: Option<String>,
}

/// The DER of a PEM block, whatever its label.
fn pem_der(pem: &str) -> Option<(bool, Vec<u8>)> {
    let pkcs1 = pem.contains("BEGIN RSA PRIVATE KEY");
    let b64: String = pem
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("-----"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64.as_bytes())
        .ok()?;
    Some((pkcs1, der))
}

impl KeyFile {
    /// Read and check a credentials file; errors name the file, never its
    /// content.
    pub fn read(path: &Path) -> Result<KeyFile, AuthError> {
        let shown = path.display().to_string();
        let text = std::fs::read(path)
            .map_err(|e| AuthError::Read(shown.clone(), e.kind().to_string()))?;
        Self::parse(&text, &shown)
    }

    pub fn parse(text: &[u8], shown: &str) -> Result<KeyFile, AuthError> {
        let raw: RawFile =
            serde_json::from_slice(text).map_err(|_| AuthError::NotJson(shown.to_string()))?;
        let ty = raw
            .ty
            .clone()
            .ok_or_else(|| AuthError::NotJson(shown.to_string()))?;
        match ty.as_str() {
            "service_account" => {
                let (Some(client_email), Some(private_key_id), Some(pk)) =
                    (raw.client_email, raw.private_key_id, raw.private_key)
                else {
                    return Err(AuthError::Incomplete(shown.to_string()));
                };
                let (pkcs1, der) = pem_der(&pk).ok_or_else(|| AuthError::BadKey(shown.into()))?;
                let key = if pkcs1 {
                    ring::signature::RsaKeyPair::from_der(&der)
                } else {
                    ring::signature::RsaKeyPair::from_pkcs8(&der)
                }
                .map_err(|_| AuthError::BadKey(shown.to_string()))?;
                Ok(KeyFile::ServiceAccount {
                    client_email,
                    private_key_id,
                    key,
                })
            }
            "authorized_user" => match (raw.client_id, raw.client_secret, raw.refresh_token) {
                (Some(client_id), Some(client_secret), Some(refresh_token)) => {
                    Ok(KeyFile::AuthorizedUser {
                        client_id,
                        client_secret,
                        refresh_token,
                        token_uri: raw.token_uri.unwrap_or_else(|| DEFAULT_TOKEN_URI.into()),
                    })
                }
                _ => Err(AuthError::Incomplete(shown.to_string())),
            },
            other => Err(AuthError::Unsupported(shown.to_string(), other.to_string())),
        }
    }
}

/// An `Authorization` header value for one poll. No `Debug`.
pub struct Bearer(pub HeaderValue);

fn b64url(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// The self-signed JWT of a service-account key (AIP-4111), valid an hour.
pub fn self_signed_jwt(
    client_email: &str,
    private_key_id: &str,
    key: &ring::signature::RsaKeyPair,
    now: i64,
) -> Result<String, SourceError> {
    let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": private_key_id});
    let claims = serde_json::json!({
        "iss": client_email, "sub": client_email, "scope": SCOPE,
        "iat": now, "exp": now + 3600,
    });
    let signing_input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let mut sig = vec![0u8; key.public().modulus_len()];
    key.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        signing_input.as_bytes(),
        &mut sig,
    )
    .map_err(|_| SourceError::new(ErrorReason::Auth, "signing the service-account JWT failed"))?;
    Ok(format!("{signing_input}.{}", b64url(&sig)))
}

/// Where the credentials of a poll come from.
pub enum Credentials {
    File(PathBuf),
    MetadataServer(String),
}

impl Credentials {
    /// `credentials_file`, else Application Default Credentials.
    pub fn resolve(credentials_file: Option<&Path>) -> Credentials {
        if let Some(f) = credentials_file {
            return Credentials::File(f.to_path_buf());
        }
        if let Some(f) =
            std::env::var_os("GOOGLE_APPLICATION_CREDENTIALS").filter(|v| !v.is_empty())
        {
            return Credentials::File(PathBuf::from(f));
        }
        if let Some(home) = std::env::var_os("HOME") {
            let f = Path::new(&home).join(".config/gcloud/application_default_credentials.json");
            if f.is_file() {
                return Credentials::File(f);
            }
        }
        let host = std::env::var("GCE_METADATA_HOST")
            .ok()
            .filter(|h| !h.trim().is_empty())
            .unwrap_or_else(|| METADATA_HOST.into());
        Credentials::MetadataServer(host)
    }

    /// A bearer for this poll's calls.
    pub async fn bearer(
        &self,
        client: &HttpClient,
        now: i64,
        deadline: Instant,
    ) -> Result<Bearer, SourceError> {
        let token = match self {
            Credentials::File(f) => match KeyFile::read(f)
                .map_err(|e| SourceError::new(ErrorReason::Auth, e.to_string()))?
            {
                KeyFile::ServiceAccount {
                    client_email,
                    private_key_id,
                    key,
                } => self_signed_jwt(&client_email, &private_key_id, &key, now)?,
                KeyFile::AuthorizedUser {
                    client_id,
                    client_secret,
                    refresh_token,
                    token_uri,
                } => {
                    let body = format!(
                        "grant_type=refresh_token&client_id={}&client_secret={}&refresh_token={}",
                        form(&client_id),
                        form(&client_secret),
                        form(&refresh_token)
                    );
                    let mut h = HeaderMap::new();
                    h.insert(
                        CONTENT_TYPE,
                        HeaderValue::from_static("application/x-www-form-urlencoded"),
                    );
                    access_token(client, Method::POST, &token_uri, h, Some(body), deadline).await?
                }
            },
            Credentials::MetadataServer(host) => {
                let url = format!(
                    "http://{host}/computeMetadata/v1/instance/service-accounts/default/token"
                );
                let mut h = HeaderMap::new();
                h.insert("metadata-flavor", HeaderValue::from_static("Google"));
                access_token(client, Method::GET, &url, h, None, deadline).await?
            }
        };
        let mut v = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
            SourceError::new(ErrorReason::Auth, "the access token is not a header value")
        })?;
        v.set_sensitive(true);
        Ok(Bearer(v))
    }
}

/// `application/x-www-form-urlencoded` escaping of one value.
fn form(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: Option<String>,
}

async fn access_token(
    client: &HttpClient,
    method: Method,
    url: &str,
    headers: HeaderMap,
    body: Option<String>,
    deadline: Instant,
) -> Result<String, SourceError> {
    let r = client
        .send(method, url, &headers, body.map(Bytes::from), deadline)
        .await?;
    if let Err(mut e) = http::error_for_status(&r, url) {
        // A refused token request is an authentication failure, whatever
        // its status (400 invalid_grant, 403 on the metadata server).
        if r.status.is_client_error() {
            e.reason = ErrorReason::Auth;
        }
        return Err(e);
    }
    let t: TokenResponse = serde_json::from_slice(&r.body).map_err(|_| {
        SourceError::new(
            ErrorReason::Parse,
            format!("{}: not a token response", http::redact_url(url)),
        )
    })?;
    t.access_token.filter(|t| !t.is_empty()).ok_or_else(|| {
        SourceError::new(
            ErrorReason::Auth,
            format!("{}: no access_token", http::redact_url(url)),
        )
    })
}
