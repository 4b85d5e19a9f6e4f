//! The HTTP client of API sources: bounded retries with exponential backoff
//! and jitter on timeouts, 5xx, 429 and rate-limited 403s, honouring
//! `Retry-After` and rate-limit reset headers, all within the poll's
//! deadline; every failure mapped to a `reason` of `nhi_source_errors_total`.
//! Response bodies are never put into error messages (they may hold secrets).

use crate::model::{ErrorReason, SourceError};
use bytes::Bytes;
use rand::Rng;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

/// Retries after the first attempt.
pub const MAX_RETRIES: u32 = 4;
const BASE_DELAY: Duration = Duration::from_millis(500);
/// GitHub documents at least a minute for secondary rate limits without
/// `Retry-After`.
const SECONDARY_LIMIT_WAIT: Duration = Duration::from_secs(60);

/// The largest response body read (64 MiB): an upstream streaming an
/// endless or huge body fails that request (`io`) instead of growing the
/// process. The largest real pages (GitHub 100 alerts, Graph 999 objects,
/// Key Vault 25 secrets) are a few MiB.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    max_response: usize,
}

#[derive(Debug)]
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// Requests sent for this call, retries included.
    pub attempts: u32,
}

impl HttpClient {
    /// A client trusting the system roots plus an optional CA file.
    pub fn new(ca_file: Option<&Path>) -> Result<Self, String> {
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .user_agent(concat!("nhi-exporter/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::limited(3));
        if let Some(ca) = ca_file {
            let pem = std::fs::read(ca).map_err(|e| format!("{}: {e}", ca.display()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| format!("{}: not a PEM certificate bundle: {e}", ca.display()))?;
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        let client = b.build().map_err(|e| format!("HTTP client: {e}"))?;
        Ok(Self {
            client,
            max_response: MAX_RESPONSE_BYTES,
        })
    }

    /// The same client with another response size limit.
    pub fn with_max_response(mut self, bytes: usize) -> Self {
        self.max_response = bytes;
        self
    }

    /// Send a request, retrying transient failures while the deadline allows.
    /// Returns any response that is not retried: the caller classifies
    /// 304/2xx as success and uses [`error_for_status`] for the rest.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &HeaderMap,
        body: Option<Bytes>,
        deadline: Instant,
    ) -> Result<Response, SourceError> {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(SourceError::new(
                    ErrorReason::Timeout,
                    format!("{} {}: out of time", method, redact_url(url)),
                ));
            }
            let mut req = self
                .client
                .request(method.clone(), url)
                .headers(headers.clone())
                .timeout(remaining);
            if let Some(b) = &body {
                req = req.body(b.clone());
            }
            let outcome = match req.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    let headers = resp.headers().clone();
                    match read_limited(resp, self.max_response, url).await {
                        Ok(body) => Ok(Response {
                            status,
                            headers,
                            body,
                            attempts: attempt,
                        }),
                        // The same upstream would send it again: not retried.
                        Err(Read::TooLarge(e)) => return Err(e),
                        Err(Read::Failed(e)) => Err(e),
                    }
                }
                Err(e) => Err(classify_reqwest(&e, url)),
            };
            let (retry_after, last_err) = match outcome {
                Ok(r) => match retry_decision(&r, SystemTime::now()) {
                    None => return Ok(r),
                    Some(wait) => {
                        let err = error_for_status(&r, url).err().unwrap_or_else(|| {
                            SourceError::new(
                                ErrorReason::Http5xx,
                                format!("{}: HTTP {}", redact_url(url), r.status),
                            )
                        });
                        (wait, err)
                    }
                },
                Err(e) if matches!(e.reason, ErrorReason::Timeout | ErrorReason::Io) => (None, e),
                Err(e) => return Err(e),
            };
            if attempt > MAX_RETRIES {
                return Err(last_err);
            }
            let backoff = {
                let exp = BASE_DELAY.saturating_mul(1 << (attempt - 1).min(10));
                exp.mul_f64(rand::thread_rng().gen_range(0.8..=1.2))
            };
            let wait = retry_after.map(|w| w.max(backoff)).unwrap_or(backoff);
            if Instant::now() + wait >= deadline {
                // The wait does not fit the poll's timeout: fail now, with
                // the reason of the last attempt.
                return Err(last_err);
            }
            tracing::debug!(url = %redact_url(url), attempt, wait_ms = wait.as_millis() as u64, reason = %last_err.reason, "retrying");
            tokio::time::sleep(wait).await;
        }
    }
}

/// The body of `resp`, at most `max` bytes: a larger one (announced, or
/// streamed past the limit) is not read further and fails the request.
enum Read {
    TooLarge(SourceError),
    Failed(SourceError),
}

async fn read_limited(mut resp: reqwest::Response, max: usize, url: &str) -> Result<Bytes, Read> {
    let too_large = || {
        Read::TooLarge(SourceError::new(
            ErrorReason::Io,
            format!(
                "{}: response larger than {} MiB; not read further",
                redact_url(url),
                max / (1024 * 1024)
            ),
        ))
    };
    if resp.content_length().is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    let mut buf = bytes::BytesMut::with_capacity(
        resp.content_length()
            .map_or(8 * 1024, |n| n as usize)
            .min(max),
    );
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| Read::Failed(classify_reqwest(&e, url)))?
    {
        if buf.len() + chunk.len() > max {
            return Err(too_large());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// `Some(wait)` when the response should be retried (`None` inside = use
/// backoff): 5xx, 429, and 403s that are rate limits.
pub fn retry_decision(r: &Response, now: SystemTime) -> Option<Option<Duration>> {
    let status = r.status;
    let rate_limited = is_rate_limited(r);
    if !(status.is_server_error() || rate_limited) {
        return None;
    }
    if let Some(w) = retry_after(&r.headers, now) {
        return Some(Some(w));
    }
    if rate_limited {
        if let Some(w) = reset_wait(&r.headers, now) {
            return Some(Some(w));
        }
        // GitHub's secondary limits (403 + message, no header): at least a
        // minute. A bare 429 (GitLab sometimes omits its headers) backs off.
        if status == StatusCode::FORBIDDEN {
            return Some(Some(SECONDARY_LIMIT_WAIT));
        }
    }
    Some(None)
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::trim)
}

/// 429, or a 403 with the rate-limit markers GitHub and GitLab send.
pub fn is_rate_limited(r: &Response) -> bool {
    if r.status == StatusCode::TOO_MANY_REQUESTS {
        return true;
    }
    if r.status != StatusCode::FORBIDDEN {
        return false;
    }
    header(&r.headers, "x-ratelimit-remaining") == Some("0")
        || header(&r.headers, "ratelimit-remaining") == Some("0")
        || r.headers.contains_key("retry-after")
        || {
            // Secondary limits say so in the message; only a short prefix
            // of the body is looked at, and never logged.
            let head = &r.body[..r.body.len().min(512)];
            String::from_utf8_lossy(head)
                .to_ascii_lowercase()
                .contains("rate limit")
        }
}

/// `Retry-After`: seconds or an HTTP date.
pub fn retry_after(h: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let v = header(h, "retry-after")?;
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// `x-ratelimit-reset` (GitHub) / `RateLimit-Reset` (GitLab): epoch seconds.
pub fn reset_wait(h: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let v = header(h, "x-ratelimit-reset").or_else(|| header(h, "ratelimit-reset"))?;
    let at = v.parse::<u64>().ok()?;
    let now_s = now.duration_since(SystemTime::UNIX_EPOCH).ok()?.as_secs();
    Some(Duration::from_secs(at.saturating_sub(now_s) + 1))
}

/// Map a non-success status to an error reason.
pub fn error_for_status(r: &Response, url: &str) -> Result<(), SourceError> {
    let s = r.status;
    if s.is_success() || s == StatusCode::NOT_MODIFIED {
        return Ok(());
    }
    let reason = if is_rate_limited(r) {
        ErrorReason::RateLimited
    } else if s == StatusCode::UNAUTHORIZED || s == StatusCode::FORBIDDEN {
        ErrorReason::Auth
    } else if s.is_server_error() {
        ErrorReason::Http5xx
    } else {
        ErrorReason::Http4xx
    };
    Err(
        SourceError::new(reason, format!("{}: HTTP {}", redact_url(url), s))
            .with_status(s.as_u16()),
    )
}

fn classify_reqwest(e: &reqwest::Error, url: &str) -> SourceError {
    let reason = if e.is_timeout() {
        ErrorReason::Timeout
    } else {
        ErrorReason::Io
    };
    // reqwest's Display can include the URL; ours is redacted.
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "reading the response failed"
    } else {
        "request failed"
    };
    SourceError::new(reason, format!("{}: {kind}", redact_url(url)))
}

pub use crate::util::redact_url;

/// Build a header map from static names and values; a value that is not a
/// valid header (e.g. a token with a newline) is a configuration error.
pub fn headers(pairs: &[(&'static str, &str)]) -> Result<HeaderMap, SourceError> {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        let mut val = HeaderValue::from_str(v).map_err(|_| {
            SourceError::new(ErrorReason::Auth, format!("invalid value for header {k}"))
        })?;
        if k.eq_ignore_ascii_case("authorization") || k.to_ascii_lowercase().contains("token") {
            val.set_sensitive(true);
        }
        h.insert(HeaderName::from_static(k), val);
    }
    Ok(h)
}

/// `(scheme, host, port)` of a URL: what a credential is bound to.
fn origin(url: &str) -> Option<(String, String, u16)> {
    let u = url::Url::parse(url).ok()?;
    Some((
        u.scheme().to_string(),
        u.host_str()?.to_ascii_lowercase(),
        u.port_or_known_default()?,
    ))
}

/// Whether `next` (a next-page link, a cursor URL) is on the same origin
/// (scheme, host, port) as `home`, the configured endpoint it came from: a
/// credential is only ever sent there.
pub fn same_origin(home: &str, next: &str) -> bool {
    matches!((origin(home), origin(next)), (Some(a), Some(b)) if a == b)
}

/// The error for a next-page link to another origin (not followed).
pub fn foreign_link(home: &str) -> SourceError {
    SourceError::new(
        ErrorReason::Http4xx,
        format!(
            "{}: the next-page link points to another origin; not followed (the credential goes only to the configured endpoint)",
            redact_url(home)
        ),
    )
}

/// The `rel="next"` target of an RFC 8288 `Link` header.
pub fn next_link(h: &HeaderMap) -> Option<String> {
    for v in h.get_all("link") {
        let Ok(v) = v.to_str() else { continue };
        for part in v.split(',') {
            let mut segs = part.split(';');
            let Some(target) = segs.next() else { continue };
            let target = target.trim().trim_start_matches('<').trim_end_matches('>');
            if segs.any(|p| {
                let p = p.trim().replace(' ', "");
                p == "rel=\"next\"" || p == "rel=next"
            }) {
                return Some(target.to_string());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A loopback server answering every request with an endless chunked
    /// body (or one that announces `length` bytes).
    async fn endless_server(length: Option<u64>) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut c, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut req = [0u8; 4096];
                    let _ = c.read(&mut req).await;
                    let head = match length {
                        Some(n) => format!("HTTP/1.1 200 OK\r\ncontent-length: {n}\r\n\r\n"),
                        None => "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".into(),
                    };
                    if c.write_all(head.as_bytes()).await.is_err() {
                        return;
                    }
                    let chunk = format!("10000\r\n{}\r\n", "x".repeat(0x10000));
                    while c.write_all(chunk.as_bytes()).await.is_ok() {}
                });
            }
        });
        format!("http://{addr}/endless")
    }

    #[tokio::test]
    async fn an_endless_or_oversized_body_fails_at_the_limit() {
        let client = HttpClient::new(None)
            .unwrap()
            .with_max_response(1024 * 1024);
        let deadline = Instant::now() + Duration::from_secs(20);
        for length in [None, Some(10 * 1024 * 1024 * 1024)] {
            let url = endless_server(length).await;
            let started = Instant::now();
            let e = client
                .send(Method::GET, &url, &HeaderMap::new(), None, deadline)
                .await
                .unwrap_err();
            assert_eq!(e.reason, ErrorReason::Io, "{e}");
            assert!(e.message.contains("response larger than 1 MiB"), "{e}");
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "stopped at the limit"
            );
        }
    }

    fn resp(status: u16, hs: &[(&'static str, &str)], body: &str) -> Response {
        let mut h = HeaderMap::new();
        for (k, v) in hs {
            h.insert(
                HeaderName::from_static(k),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        Response {
            status: StatusCode::from_u16(status).unwrap(),
            headers: h,
            body: Bytes::from(body.to_string()),
            attempts: 1,
        }
    }

    #[test]
    fn classification() {
        let u = "https://u:p@api.example.com/x?token=t";
        assert_eq!(
            error_for_status(&resp(401, &[], ""), u).unwrap_err().reason,
            ErrorReason::Auth
        );
        assert_eq!(
            error_for_status(&resp(403, &[], "{}"), u)
                .unwrap_err()
                .reason,
            ErrorReason::Auth
        );
        assert_eq!(
            error_for_status(&resp(403, &[("x-ratelimit-remaining", "0")], ""), u)
                .unwrap_err()
                .reason,
            ErrorReason::RateLimited
        );
        assert_eq!(
            error_for_status(
                &resp(
                    403,
                    &[],
                    r#"{"message":"You have exceeded a secondary rate limit"}"#
                ),
                u
            )
            .unwrap_err()
            .reason,
            ErrorReason::RateLimited
        );
        assert_eq!(
            error_for_status(&resp(429, &[], ""), u).unwrap_err().reason,
            ErrorReason::RateLimited
        );
        assert_eq!(
            error_for_status(&resp(404, &[], ""), u).unwrap_err().reason,
            ErrorReason::Http4xx
        );
        assert_eq!(
            error_for_status(&resp(502, &[], ""), u).unwrap_err().reason,
            ErrorReason::Http5xx
        );
        assert!(error_for_status(&resp(304, &[], ""), u).is_ok());
        let m = error_for_status(&resp(500, &[], "secret body"), u)
            .unwrap_err()
            .message;
        assert_eq!(
            m,
            "https://<redacted>@api.example.com/x: HTTP 500 Internal Server Error"
        );
    }

    #[test]
    fn retry_waits() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        assert_eq!(retry_decision(&resp(200, &[], ""), now), None);
        assert_eq!(retry_decision(&resp(404, &[], ""), now), None);
        assert_eq!(retry_decision(&resp(503, &[], ""), now), Some(None));
        assert_eq!(
            retry_decision(&resp(503, &[("retry-after", "7")], ""), now),
            Some(Some(Duration::from_secs(7)))
        );
        assert_eq!(
            retry_decision(
                &resp(
                    403,
                    &[
                        ("x-ratelimit-remaining", "0"),
                        ("x-ratelimit-reset", "1010")
                    ],
                    ""
                ),
                now
            ),
            Some(Some(Duration::from_secs(11)))
        );
        assert_eq!(
            retry_decision(
                &resp(
                    429,
                    &[("ratelimit-remaining", "0"), ("ratelimit-reset", "1003")],
                    ""
                ),
                now
            ),
            Some(Some(Duration::from_secs(4)))
        );
        assert_eq!(retry_decision(&resp(429, &[], ""), now), Some(None));
        assert_eq!(
            retry_decision(
                &resp(403, &[], "You have exceeded a secondary rate limit"),
                now
            ),
            Some(Some(SECONDARY_LIMIT_WAIT))
        );
        let date = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(
            retry_after(&resp(429, &[("retry-after", &date)], "").headers, now),
            Some(Duration::from_secs(30))
        );
    }

    #[test]
    fn link_headers() {
        let h = resp(
            200,
            &[("link", r#"<https://api.github.com/x?after=abc&per_page=100>; rel="next", <https://api.github.com/x?before=z>; rel="prev""#)],
            "",
        )
        .headers;
        assert_eq!(
            next_link(&h).as_deref(),
            Some("https://api.github.com/x?after=abc&per_page=100")
        );
        assert_eq!(
            next_link(&resp(200, &[("link", r#"<a>; rel="prev""#)], "").headers),
            None
        );
        assert_eq!(next_link(&HeaderMap::new()), None);
    }
}
