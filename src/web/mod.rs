//! `--web.config.file`: the Prometheus exporter-toolkit web configuration
//! format (`tls_server_config`, `http_server_config`, `basic_auth_users`,
//! `rate_limit`), strict like the original: unknown keys are errors. Errors
//! name the key, never the value.
//!
//! `tls` builds the rustls configuration, `auth` checks basic-auth
//! credentials in a time that does not depend on whether the user exists,
//! `ratelimit` is the toolkit's token bucket.

mod auth;
mod ratelimit;
mod tls;

pub use ratelimit::RateLimiter;

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
#[error("web config {file}: {message}")]
pub struct WebConfigError {
    pub file: PathBuf,
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    tls_server_config: Option<tls::RawTls>,
    http_server_config: Option<RawHttp>,
    basic_auth_users: Option<BTreeMap<String, String>>,
    rate_limit: Option<RawRateLimit>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    http2: Option<bool>,
    headers: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRateLimit {
    interval: Option<serde_yaml::Value>,
    burst: Option<u32>,
}

/// The headers the toolkit lets a web config add, with the values it
/// allows where the header is an enumeration (exporter-toolkit
/// `web/handler.go`, `extraHTTPHeaders`).
const EXTRA_HEADERS: &[(&str, &[&str])] = &[
    ("Strict-Transport-Security", &[]),
    ("X-Content-Type-Options", &["nosniff"]),
    ("X-Frame-Options", &["deny", "sameorigin"]),
    ("X-XSS-Protection", &[]),
    ("Content-Security-Policy", &[]),
];

/// The validated web configuration.
pub struct WebConfig {
    pub tls: Option<Arc<rustls::ServerConfig>>,
    users: auth::Users,
    pub headers: Vec<(String, String)>,
    /// `rate_limit` with a non-zero interval.
    pub rate_limit: Option<RateLimiter>,
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConfig")
            .field("tls", &self.tls.is_some())
            .field("users", &self.users.len())
            .field("rate_limit", &self.rate_limit.is_some())
            .finish()
    }
}

impl WebConfig {
    /// No TLS, no authentication.
    pub fn plain() -> Self {
        Self {
            tls: None,
            users: auth::Users::default(),
            headers: Vec::new(),
            rate_limit: None,
        }
    }

    pub fn load(file: &Path) -> Result<Self, WebConfigError> {
        let text = std::fs::read_to_string(file).map_err(|e| WebConfigError {
            file: file.to_path_buf(),
            message: format!("cannot read: {e}"),
        })?;
        Self::from_text(&text, file)
    }

    /// Parse the text of the web configuration `file` (relative paths in
    /// it are resolved against its directory; the files it names are read).
    pub fn from_text(text: &str, file: &Path) -> Result<Self, WebConfigError> {
        let err = |m: String| WebConfigError {
            file: file.to_path_buf(),
            message: m,
        };
        let base = file.parent().unwrap_or_else(|| Path::new("."));
        // An empty file is an empty configuration, as in the toolkit.
        let raw: Raw = if text.trim().is_empty() {
            Raw {
                tls_server_config: None,
                http_server_config: None,
                basic_auth_users: None,
                rate_limit: None,
            }
        } else {
            serde_path_to_error::deserialize(serde_yaml::Deserializer::from_str(text)).map_err(
                |e| {
                    err(format!(
                        "{}: {}",
                        e.path(),
                        crate::config::yaml::friendly(e.inner().to_string())
                    ))
                },
            )?
        };
        let resolve = |p: &str| {
            let p = Path::new(p);
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };
        let http2 = raw
            .http_server_config
            .as_ref()
            .and_then(|h| h.http2)
            .unwrap_or(true);
        let tls = match raw.tls_server_config {
            Some(t) if t.is_enabled() => {
                Some(Arc::new(tls::build(t, &resolve, http2).map_err(err)?))
            }
            _ => None,
        };
        let users = auth::Users::new(raw.basic_auth_users.unwrap_or_default()).map_err(err)?;
        let mut headers = Vec::new();
        if let Some(h) = raw.http_server_config {
            for (k, v) in h.headers.unwrap_or_default() {
                headers.push(check_header(k, v).map_err(err)?);
            }
        }
        let rate_limit = match raw.rate_limit {
            None => None,
            Some(r) => {
                let interval = match r.interval {
                    None | Some(serde_yaml::Value::Null) => std::time::Duration::ZERO,
                    Some(serde_yaml::Value::Number(n)) if n.as_u64() == Some(0) => {
                        std::time::Duration::ZERO
                    }
                    Some(serde_yaml::Value::String(s)) => crate::config::parse_duration(&s)
                        .map_err(|_| {
                            err("rate_limit.interval: not a duration (e.g. 1s, 500ms)".into())
                        })?,
                    Some(_) => {
                        return Err(err(
                            "rate_limit.interval: not a duration (e.g. 1s, 500ms)".into()
                        ))
                    }
                };
                (!interval.is_zero()).then(|| RateLimiter::new(interval, r.burst.unwrap_or(0)))
            }
        };
        Ok(Self {
            tls,
            users,
            headers,
            rate_limit,
        })
    }

    pub fn auth_required(&self) -> bool {
        !self.users.is_empty()
    }

    /// Check an `Authorization` header value against `basic_auth_users`.
    /// Slow (bcrypt) on a credential not seen before: call it off the
    /// async threads.
    pub fn authorize(&self, header: Option<&str>) -> bool {
        self.users.authorize(header)
    }
}

/// A header of `http_server_config.headers`, as the toolkit validates it:
/// only the headers it allows, and for the enumerated ones only their
/// values. Errors name the header (a key), never the value.
fn check_header(k: String, v: String) -> Result<(String, String), String> {
    let Some((name, allowed)) = EXTRA_HEADERS
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(&k))
    else {
        return Err(format!(
            "http_server_config.headers: HTTP header {:?} can not be configured; allowed: {}",
            sanitize_key(&k),
            EXTRA_HEADERS
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    };
    if !allowed.is_empty() && !allowed.contains(&v.as_str()) {
        return Err(format!(
            "http_server_config.headers.{name}: invalid value for {name}; expected one of: {}",
            allowed.join(", ")
        ));
    }
    if hyper::header::HeaderValue::from_str(&v).is_err() {
        return Err(format!(
            "http_server_config.headers.{name}: invalid header value"
        ));
    }
    Ok((name.to_string(), v))
}

/// A header name as typed, if it is a plain token, else a placeholder: a
/// key, but one that may carry anything.
fn sanitize_key(k: &str) -> &str {
    if !k.is_empty() && k.len() <= 64 && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        k
    } else {
        "<invalid name>"
    }
}

#[cfg(test)]
mod tests;
