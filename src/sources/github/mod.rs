//! `github_secret_scanning` source: secret scanning alerts of an
//! organization, an enterprise or listed repositories, through the REST API
//! (github.com or GitHub Enterprise Server `api_url`).
//!
//! - Pages are followed through the `Link` header (`per_page=100`); each
//!   page is requested with `If-None-Match` and a 304 reuses the page as
//!   last parsed. When every page of a target is unchanged the target is not
//!   applied again.
//! - Each scope (the org, the enterprise, each repository) is one target: a
//!   complete listing of its alerts, open and resolved. A repository the
//!   token cannot read is a failed target (counted, its alerts unchanged).
//! - The alert's `secret` is HMAC'd for the cross-scanner merge and dropped
//!   (`hide_secret: true` asks GitHub not to send it; alerts are then keyed
//!   by their own id).
//! - Mapping: `state` open/resolved; `resolution` revoked, false_positive,
//!   wont_fix, used_in_tests, pattern_edited/pattern_deleted → other;
//!   `resolved_at` is the close time; `validity` active → live, inactive,
//!   unknown. A `revoked` resolution is a claim: it confirms a revocation
//!   only through validity `inactive` (`confirmed_by="validity_check"`).

mod config;
#[cfg(test)]
mod config_tests;

pub use config::{GithubConfig, GithubScope};

use super::http::{self, HttpClient};
use super::registry::Registration;
use super::{ObservationSender, PollContext};
use super::{PollFuture, Source};
use crate::hashing::SecretHasher;
use crate::model::{
    ErrorReason, ExposureKey, Location, ObservedFinding, Resolution, SourceError, TargetScan,
    Validity,
};
use reqwest::Method;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone)]
pub struct GithubSource {
    cfg: GithubConfig,
    client: Arc<Mutex<Option<HttpClient>>>,
    /// Per page URL: its ETag, the findings parsed from it and its next link.
    pages: Arc<Mutex<HashMap<String, CachedPage>>>,
}

#[derive(Debug, Clone)]
struct CachedPage {
    etag: String,
    findings: Vec<ObservedFinding>,
    next: Option<String>,
}

impl GithubSource {
    /// The source with its HTTP client (and CA file) built.
    pub fn new(cfg: GithubConfig) -> Result<Self, String> {
        let client =
            HttpClient::new(cfg.ca_file.as_deref()).map_err(|e| format!("ca_file: {e}"))?;
        Ok(Self {
            cfg,
            client: Arc::new(Mutex::new(Some(client))),
            pages: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    fn client(&self) -> Result<HttpClient, SourceError> {
        let mut c = self.client.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = c.as_ref() {
            return Ok(c.clone());
        }
        let built = HttpClient::new(self.cfg.ca_file.as_deref())
            .map_err(|e| SourceError::new(ErrorReason::Io, format!("ca_file: {e}")))?;
        *c = Some(built.clone());
        Ok(built)
    }

    /// (target id, first page URL) per scope.
    fn targets(&self) -> Vec<(String, String)> {
        let api = &self.cfg.api_url;
        let q = if self.cfg.hide_secret {
            "?per_page=100&hide_secret=true"
        } else {
            "?per_page=100"
        };
        match &self.cfg.scope {
            GithubScope::Org(o) => vec![(
                format!("org:{o}"),
                format!("{api}/orgs/{o}/secret-scanning/alerts{q}"),
            )],
            GithubScope::Enterprise(e) => vec![(
                format!("enterprise:{e}"),
                format!("{api}/enterprises/{e}/secret-scanning/alerts{q}"),
            )],
            GithubScope::Repositories(rs) => rs
                .iter()
                .map(|r| {
                    (
                        format!("repo:{r}"),
                        format!("{api}/repos/{r}/secret-scanning/alerts{q}"),
                    )
                })
                .collect(),
        }
    }

    pub async fn poll(&self, ctx: PollContext, out: ObservationSender) -> Result<(), SourceError> {
        let client = self.client()?;
        let auth = format!("Bearer {}", self.cfg.token.expose());
        let headers = http::headers(&[
            ("accept", "application/vnd.github+json"),
            ("x-github-api-version", "2022-11-28"),
            ("authorization", &auth),
        ])?;
        let mut visited = HashSet::new();
        for (target, first_url) in self.targets() {
            let outcome = self
                .fetch_target(&client, &headers, &target, &first_url, &ctx, &mut visited)
                .await;
            let item = crate::model::target_item(target, outcome)?;
            out.send(item)
                .await
                .map_err(|_| SourceError::new(ErrorReason::Timeout, "poll cancelled"))?;
        }
        // The cache holds this poll's pages only: its size is bounded by
        // what one poll reads, not by every page ever seen.
        self.pages
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|u, _| visited.contains(u));
        Ok(())
    }

    async fn fetch_target(
        &self,
        client: &HttpClient,
        headers: &reqwest::header::HeaderMap,
        target: &str,
        first_url: &str,
        ctx: &PollContext,
        visited: &mut HashSet<String>,
    ) -> Result<Option<TargetScan>, SourceError> {
        let mut url = Some(first_url.to_string());
        let mut findings = Vec::new();
        let mut etags = Sha256::new();
        let mut all_cached = true;
        let mut seen = 0usize;
        while let Some(u) = url.take() {
            visited.insert(u.clone());
            seen += 1;
            if seen > 100_000 {
                return Err(SourceError::new(
                    ErrorReason::Parse,
                    format!("{}: pagination does not end", http::redact_url(first_url)),
                ));
            }
            let cached = self
                .pages
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&u)
                .cloned();
            let mut h = headers.clone();
            if let Some(c) = &cached {
                if let Ok(v) = reqwest::header::HeaderValue::from_str(&c.etag) {
                    h.insert(reqwest::header::IF_NONE_MATCH, v);
                }
            }
            let r = client.send(Method::GET, &u, &h, None, ctx.deadline).await?;
            if r.status == reqwest::StatusCode::NOT_MODIFIED {
                let Some(c) = cached else {
                    return Err(SourceError::new(
                        ErrorReason::Http4xx,
                        format!("{}: 304 without a cached page", http::redact_url(&u)),
                    ));
                };
                etags.update(c.etag.as_bytes());
                findings.extend(c.findings.iter().cloned());
                url = c.next.clone();
                continue;
            }
            http::error_for_status(&r, &u)?;
            all_cached = false;
            let page = parse_alerts(&r.body, target, &ctx.hasher).map_err(|m| {
                SourceError::new(ErrorReason::Parse, format!("{}: {m}", http::redact_url(&u)))
            })?;
            let next = http::next_link(&r.headers);
            if next
                .as_deref()
                .is_some_and(|n| !http::same_origin(first_url, n))
            {
                // The token would follow it to any host.
                return Err(http::foreign_link(first_url));
            }
            let etag = r
                .headers
                .get(reqwest::header::ETAG)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            match &etag {
                Some(e) => {
                    etags.update(e.as_bytes());
                    self.pages.lock().unwrap_or_else(|p| p.into_inner()).insert(
                        u.clone(),
                        CachedPage {
                            etag: e.clone(),
                            findings: page.clone(),
                            next: next.clone(),
                        },
                    );
                }
                None => etags.update(ctx.now.to_le_bytes()),
            }
            findings.extend(page);
            // Primary rate limit used up: wait for its reset before the
            // next page when that fits the poll, else stop with the reason.
            if next.is_some()
                && r.headers
                    .get("x-ratelimit-remaining")
                    .and_then(|v| v.to_str().ok())
                    == Some("0")
            {
                let wait =
                    http::reset_wait(&r.headers, std::time::SystemTime::now()).unwrap_or_default();
                if std::time::Instant::now() + wait >= ctx.deadline {
                    return Err(SourceError::new(
                        ErrorReason::RateLimited,
                        format!(
                            "{}: rate limit exhausted until its reset",
                            http::redact_url(&u)
                        ),
                    ));
                }
                tokio::time::sleep(wait).await;
            }
            url = next;
        }
        let fingerprint = hex::encode(etags.finalize());
        if all_cached && ctx.known_targets.get(target) == Some(&fingerprint) {
            return Ok(None);
        }
        Ok(Some(TargetScan {
            target: target.to_string(),
            fingerprint,
            scanned_at: ctx.now,
            findings,
        }))
    }
}

#[derive(Deserialize)]
struct Alert {
    number: u64,
    created_at: Option<String>,
    state: String,
    resolution: Option<String>,
    resolved_at: Option<String>,
    updated_at: Option<String>,
    secret_type: Option<String>,
    secret: Option<String>,
    validity: Option<String>,
    repository: Option<Repo>,
    first_location_detected: Option<FirstLocation>,
}

#[derive(Deserialize)]
struct Repo {
    full_name: Option<String>,
}

#[derive(Deserialize)]
struct FirstLocation {
    path: Option<String>,
    start_line: Option<i64>,
    commit_sha: Option<String>,
}

fn resolution(r: Option<&str>) -> Resolution {
    match r {
        Some("revoked") => Resolution::Revoked,
        Some("false_positive") => Resolution::FalsePositive,
        Some("wont_fix") => Resolution::WontFix,
        Some("used_in_tests") => Resolution::UsedInTests,
        _ => Resolution::Other, // pattern_edited, pattern_deleted, null
    }
}

/// Parse one page of alerts. Secrets are HMAC'd and dropped here.
pub fn parse_alerts(
    body: &[u8],
    target: &str,
    hasher: &SecretHasher,
) -> Result<Vec<ObservedFinding>, String> {
    let alerts: Vec<Alert> = serde_json::from_slice(body).map_err(|e| {
        // Position only: serde's message may quote the input.
        format!(
            "line {} column {}: not a list of secret scanning alerts",
            e.line(),
            e.column()
        )
    })?;
    let scope_repo = target.strip_prefix("repo:").map(str::to_string);
    let mut out = Vec::with_capacity(alerts.len());
    for a in alerts {
        let repo = a
            .repository
            .and_then(|r| r.full_name)
            .or_else(|| scope_repo.clone())
            .unwrap_or_default();
        let secret = a.secret.filter(|s| !s.is_empty());
        let (exposure, links) = match secret.as_deref() {
            Some(s) => (
                ExposureKey::Secret(hasher.hash(s.as_bytes())),
                super::reports::files::credential_links(&[Some(s)]),
            ),
            None => (ExposureKey::ScannerId, Vec::new()),
        };
        drop(secret);
        let closed = match a.state.as_str() {
            "open" => None,
            _ => Some((
                resolution(a.resolution.as_deref()),
                a.resolved_at.as_deref().and_then(super::rfc3339),
            )),
        };
        let validity = match a.validity.as_deref() {
            Some("active") => Validity::Live,
            Some("inactive") => Validity::Inactive,
            _ => Validity::Unknown,
        };
        let loc = a.first_location_detected;
        out.push(ObservedFinding {
            scanner_id: format!("{repo}#{}", a.number),
            secret_type: a.secret_type.unwrap_or_else(|| "unknown".into()),
            exposure,
            location: Location {
                repository: (!repo.is_empty()).then(|| repo.clone()),
                file: loc.as_ref().and_then(|l| l.path.clone()),
                line: loc.as_ref().and_then(|l| l.start_line),
                commit: loc.and_then(|l| l.commit_sha),
            },
            detected_at: a.created_at.as_deref().and_then(super::rfc3339),
            committed_at: None,
            closed,
            validity,
            // GitHub's validity check updates the alert.
            validity_at: a.updated_at.as_deref().and_then(super::rfc3339),
            links,
        });
    }
    Ok(out)
}

pub const TYPE_NAME: &str = "github_secret_scanning";

pub const REGISTRATION: Registration = Registration {
    ty: super::registry::SourceType {
        name: TYPE_NAME,
        parse: config::parse,
    },
    build: |spec| {
        let cfg = Registration::settings::<GithubConfig>(spec)?;
        Ok(Arc::new(GithubSource::new(cfg.clone())?))
    },
};

impl Source for GithubSource {
    fn poll<'a>(&'a self, ctx: PollContext, out: ObservationSender) -> PollFuture<'a> {
        Box::pin(GithubSource::poll(self, ctx, out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h() -> SecretHasher {
        SecretHasher::new([9; 32])
    }

    #[test]
    fn maps_alert_fields() {
        let body = br#"[
          {"number": 7, "created_at": "2026-01-01T00:00:00Z", "state": "open", "resolution": null,
           "resolved_at": null, "secret_type": "github_personal_access_token",
           "secret": "ghp_canaryALERTcanaryALERTcanaryALERT01", "validity": "active",
           "publicly_leaked": false, "multi_repo": false,
           "repository": {"id": 1, "full_name": "acme/api"},
           "first_location_detected": {"path": "ci.yml", "start_line": 3, "commit_sha": "abc"}},
          {"number": 8, "created_at": "2026-01-02T00:00:00Z", "state": "resolved", "resolution": "pattern_edited",
           "resolved_at": "2026-01-03T00:00:00Z", "secret_type": "aws_access_key_id",
           "secret": "AKIAIOSFODNN7EXAMPLE", "validity": "inactive", "repository": {"full_name": "acme/api"}},
          {"number": 9, "created_at": "2026-01-02T00:00:00Z", "state": "resolved", "resolution": "revoked",
           "resolved_at": "2026-01-04T00:00:00Z", "secret_type": "x", "validity": "unknown"}
        ]"#;
        let v = parse_alerts(body, "repo:acme/web", &h()).unwrap();
        assert_eq!(v.len(), 3);
        assert_eq!(v[0].scanner_id, "acme/api#7");
        assert_eq!(v[0].validity, Validity::Live);
        assert_eq!(v[0].closed, None);
        assert_eq!(v[0].detected_at, Some(1_767_225_600));
        assert_eq!(
            v[0].exposure,
            ExposureKey::Secret(h().hash(b"ghp_canaryALERTcanaryALERTcanaryALERT01"))
        );
        assert_eq!(v[0].location.file.as_deref(), Some("ci.yml"));
        assert_eq!(v[1].closed, Some((Resolution::Other, Some(1_767_398_400))));
        assert_eq!(v[1].validity, Validity::Inactive);
        assert_eq!(v[1].links[0].id, "AKIAIOSFODNN7EXAMPLE");
        // No secret (hide_secret) and no repository field: keyed by id, scope repo.
        assert_eq!(v[2].exposure, ExposureKey::ScannerId);
        assert_eq!(v[2].scanner_id, "acme/web#9");
        assert_eq!(
            v[2].closed,
            Some((Resolution::Revoked, Some(1_767_484_800)))
        );
    }

    #[test]
    fn bad_pages_name_the_position_not_the_content() {
        for body in [
            &b"{\"message\": \"canary-in-body\"}"[..],
            b"[{\"number\": \"canary\"}]",
            b"[",
            b"",
        ] {
            let e = parse_alerts(body, "org:a", &h()).unwrap_err();
            assert!(e.starts_with("line "), "{e}");
            assert!(!e.contains("canary"), "{e}");
        }
    }
}
