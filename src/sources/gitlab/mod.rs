//! `gitlab_secret_detection` source: vulnerabilities of report type
//! `SECRET_DETECTION` of a group (its projects and its subgroups' projects)
//! or of one project, through the GraphQL API (`POST {api_url}/api/graphql`,
//! `Authorization: Bearer <token>`).
//!
//! - The configured group or project is one target (`group:<path>` /
//!   `project:<path>`): the complete listing of its secret detection
//!   vulnerabilities in every state (detected, confirmed, resolved,
//!   dismissed), read by cursor pages of 100 until `hasNextPage` is false. A
//!   vulnerability missing from a complete listing (deleted upstream) is
//!   closed as `disappeared` by the store.
//! - GraphQL has no conditional requests: every poll reads every page. The
//!   target's fingerprint is the SHA-256 of the response bodies; when it
//!   equals the last applied one the target is reported unchanged.
//! - GitLab never returns the secret value (the query does not ask for the
//!   description or the raw source extract either): findings are keyed by
//!   the vulnerability's global id (`ExposureKey::ScannerId`) and cannot merge
//!   with other scanners' exposures of the same secret.
//! - Mapping: `state` DETECTED/CONFIRMED → open; RESOLVED → closed with
//!   resolution `other` at `resolvedAt` (GitLab's "resolved" means fixed or
//!   no longer present, not revoked); DISMISSED → closed at `dismissedAt`
//!   with `dismissalReason` FALSE_POSITIVE → false_positive, USED_IN_TESTS →
//!   used_in_tests, ACCEPTABLE_RISK / NOT_APPLICABLE / MITIGATING_CONTROL →
//!   wont_fix, else other. `findingTokenStatus.status` ACTIVE → live,
//!   INACTIVE → inactive (a confirmed revocation, `validity_check`), else
//!   unknown. The gitleaks rule id among the identifiers is the secret type
//!   (else the title).
//! - Errors: a GraphQL `errors` array fails the target (nothing closed):
//!   "does not exist or you don't have permission" → auth, others →
//!   http_4xx; `data.group`/`data.project` null (GitLab's answer for both
//!   "not found" and "no access") → auth. Error messages never quote the
//!   response. Two errors are adapted to instead: a GitLab older than 18.1
//!   without `findingTokenStatus` (the field is dropped, validity unknown)
//!   and a query complexity limit (the page size is halved, down to 10).
//! - Schema drift: the `Vulnerability` fields a release lacks (2023 releases
//!   have no `uuid`, `dismissalReason`, `updatedAt`, `findingTokenStatus`)
//!   are learned by introspection once per poll and not asked for
//!   ([`schema`]); the KPIs that need them degrade.

mod config;
#[cfg(test)]
mod config_tests;
pub mod schema;

pub use config::{GitlabConfig, GitlabScope};
pub use schema::query;
use schema::Fields;

use super::http::{self, HttpClient};
use super::registry::Registration;
use super::{ObservationSender, PollContext};
use super::{PollFuture, Source};
use crate::model::{
    ErrorReason, ExposureKey, Location, ObservedFinding, Resolution, SourceError, TargetScan,
    Validity,
};
use bytes::Bytes;
use reqwest::Method;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// Vulnerabilities per page (GitLab's maximum page size).
pub const PAGE_SIZE: u32 = 100;
/// The smallest page size a complexity error may bring it down to.
const MIN_PAGE_SIZE: u32 = 10;
/// Requests per target and poll, adaptations included: bounds a listing
/// whose pagination does not end.
const MAX_REQUESTS: usize = 20_000;

#[derive(Debug, Clone)]
pub struct GitlabSource {
    cfg: GitlabConfig,
    client: Arc<Mutex<Option<HttpClient>>>,
    tuning: Arc<Mutex<Tuning>>,
}

/// What this GitLab accepts, learned from its errors; kept across polls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tuning {
    page_size: u32,
    /// `findingTokenStatus` exists (GitLab 18.1+).
    token_status: bool,
}

impl GitlabSource {
    /// The source with its HTTP client (and CA file) built.
    pub fn new(cfg: GitlabConfig) -> Result<Self, String> {
        let client =
            HttpClient::new(cfg.ca_file.as_deref()).map_err(|e| format!("ca_file: {e}"))?;
        Ok(Self {
            cfg,
            client: Arc::new(Mutex::new(Some(client))),
            tuning: Arc::new(Mutex::new(Tuning {
                page_size: PAGE_SIZE,
                token_status: true,
            })),
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

    fn tuning(&self) -> Tuning {
        *self.tuning.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set_tuning(&self, t: Tuning) {
        *self.tuning.lock().unwrap_or_else(|p| p.into_inner()) = t;
    }

    /// (target id, GraphQL root field, full path).
    fn target(&self) -> (String, Field, &str) {
        match &self.cfg.scope {
            GitlabScope::Group(g) => (format!("group:{g}"), Field::Group, g.as_str()),
            GitlabScope::Project(p) => (format!("project:{p}"), Field::Project, p.as_str()),
        }
    }

    pub async fn poll(&self, ctx: PollContext, out: ObservationSender) -> Result<(), SourceError> {
        let client = self.client()?;
        let auth = format!("Bearer {}", self.cfg.token.expose());
        let headers = http::headers(&[
            ("accept", "application/json"),
            ("content-type", "application/json"),
            ("authorization", &auth),
        ])?;
        drop(auth);
        let (target, field, path) = self.target();
        let outcome = self
            .fetch_target(&client, &headers, &target, field, path, &ctx)
            .await;
        let item = crate::model::target_item(target, outcome)?;
        out.send(item)
            .await
            .map_err(|_| SourceError::new(ErrorReason::Timeout, "poll cancelled"))?;
        Ok(())
    }

    /// The complete listing of the target, or `None` when its responses are
    /// identical to those last applied.
    async fn fetch_target(
        &self,
        client: &HttpClient,
        headers: &reqwest::header::HeaderMap,
        target: &str,
        field: Field,
        path: &str,
        ctx: &PollContext,
    ) -> Result<Option<TargetScan>, SourceError> {
        let url = format!("{}/api/graphql", self.cfg.api_url);
        let repo_fallback = (field == Field::Project).then_some(path);
        let mut after: Option<String> = None;
        let mut cursors: HashSet<String> = HashSet::new();
        let mut digest = Sha256::new();
        let mut findings = Vec::new();
        let server_fields = self.introspect(client, headers, &url, ctx).await;
        for _ in 0..MAX_REQUESTS {
            let tuning = self.tuning();
            let mut fields = server_fields.clone().unwrap_or_else(Fields::all);
            if !tuning.token_status {
                fields = fields.without("findingTokenStatus");
            }
            let body = serde_json::json!({
                "query": query(field, &fields),
                "variables": {"fullPath": path, "after": after, "first": tuning.page_size},
            });
            let body = Bytes::from(body.to_string());
            let r = client
                .send(Method::POST, &url, headers, Some(body), ctx.deadline)
                .await?;
            http::error_for_status(&r, &url)?;
            match parse_page(&r.body, field, repo_fallback) {
                Ok(page) => {
                    digest.update((r.body.len() as u64).to_le_bytes());
                    digest.update(&r.body);
                    findings.extend(page.findings);
                    match page.next {
                        None => {
                            let fingerprint = hex::encode(digest.finalize());
                            if ctx.known_targets.get(target) == Some(&fingerprint) {
                                return Ok(None);
                            }
                            return Ok(Some(TargetScan {
                                target: target.to_string(),
                                fingerprint,
                                scanned_at: ctx.now,
                                findings,
                            }));
                        }
                        Some(c) => {
                            if !cursors.insert(c.clone()) {
                                return Err(SourceError::new(
                                    ErrorReason::Parse,
                                    format!("{}: {field} {path}: pagination does not advance (a cursor came back)", http::redact_url(&url)),
                                ));
                            }
                            after = Some(c);
                        }
                    }
                }
                Err(PageError::Graphql {
                    kind: GqlKind::TokenStatusUnsupported,
                    ..
                }) if tuning.token_status => {
                    tracing::warn!(source = %ctx.source,
                        "this GitLab has no findingTokenStatus (added in 18.1): listing without it, validity is unknown");
                    self.set_tuning(Tuning {
                        token_status: false,
                        ..tuning
                    });
                }
                Err(PageError::Graphql {
                    kind: GqlKind::TooComplex,
                    ..
                }) if tuning.page_size > MIN_PAGE_SIZE => {
                    let page_size = (tuning.page_size / 2).max(MIN_PAGE_SIZE);
                    tracing::warn!(source = %ctx.source, page_size,
                        "the query exceeds this GitLab's complexity limit: retrying with smaller pages");
                    self.set_tuning(Tuning {
                        page_size,
                        ..tuning
                    });
                }
                Err(e) => {
                    let mut e = e.into_source_error(&url, field, path);
                    if !cursors.is_empty() {
                        e.message
                            .push_str(&format!(" (page {})", cursors.len() + 1));
                    }
                    return Err(e);
                }
            }
        }
        Err(SourceError::new(
            ErrorReason::Parse,
            format!(
                "{}: {field} {path}: pagination does not end after {MAX_REQUESTS} requests",
                http::redact_url(&url)
            ),
        ))
    }
}

impl GitlabSource {
    /// The optional `Vulnerability` fields this GitLab has, by
    /// introspection (one request per poll); `None` when it does not say
    /// (introspection refused, or any failure: the listing adapts instead).
    async fn introspect(
        &self,
        client: &HttpClient,
        headers: &reqwest::header::HeaderMap,
        url: &str,
        ctx: &PollContext,
    ) -> Option<Fields> {
        let body = Bytes::from(serde_json::json!({ "query": schema::INTROSPECTION }).to_string());
        let r = client
            .send(Method::POST, url, headers, Some(body), ctx.deadline)
            .await
            .ok()?;
        if !r.status.is_success() {
            return None;
        }
        let fields = Fields::of(&schema::parse_introspection(&r.body)?);
        let missing = fields.missing();
        if !missing.is_empty() {
            tracing::debug!(source = %ctx.source, missing = ?missing,
                "this GitLab's Vulnerability type lacks fields: listing without them");
        }
        Some(fields)
    }
}

/// The GraphQL root field a target is read through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Group,
    Project,
}

impl Field {
    pub fn as_str(self) -> &'static str {
        match self {
            Field::Group => "group",
            Field::Project => "project",
        }
    }
}

impl std::fmt::Display for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One parsed page: its findings and the cursor of the next page.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub findings: Vec<ObservedFinding>,
    pub next: Option<String>,
}

/// Why a response is not a page. Never holds response text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageError {
    /// Not a GraphQL response of the expected shape (position only).
    Malformed(String),
    /// `data.group` / `data.project` is null: not found, or not readable.
    NotFound,
    /// `vulnerabilities` is null: the token cannot read them.
    NoVulnerabilities,
    /// An `errors` array: how many, the kind and the first error's path
    /// (field names and indices of our own query).
    Graphql {
        kind: GqlKind,
        count: usize,
        path: Option<String>,
    },
}

/// What a GraphQL error says, from its message (which is never kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GqlKind {
    /// "The resource that you are attempting to access does not exist or
    /// you don't have permission to perform this action".
    NoPermission,
    /// "Field 'findingTokenStatus' doesn't exist on type 'Vulnerability'".
    TokenStatusUnsupported,
    /// "Query has complexity of N, which exceeds max complexity of M".
    TooComplex,
    Other,
}

impl GqlKind {
    fn of(message: &str) -> GqlKind {
        let m = message.to_ascii_lowercase();
        if m.contains("findingtokenstatus")
            && (m.contains("doesn't exist") || m.contains("does not exist"))
        {
            GqlKind::TokenStatusUnsupported
        } else if m.contains("don't have permission")
            || m.contains("do not have permission")
            || m.contains("does not exist or you")
        {
            GqlKind::NoPermission
        } else if m.contains("complexity") {
            GqlKind::TooComplex
        } else {
            GqlKind::Other
        }
    }
}

impl PageError {
    pub fn into_source_error(self, url: &str, field: Field, path: &str) -> SourceError {
        let u = http::redact_url(url);
        match self {
            PageError::Malformed(m) => SourceError::new(ErrorReason::Parse, format!("{u}: {m}")),
            PageError::NotFound => SourceError::new(
                ErrorReason::Auth,
                format!("{u}: {field} {path} does not exist or this token cannot read it (GitLab answers null for both)"),
            ),
            PageError::NoVulnerabilities => SourceError::new(
                ErrorReason::Auth,
                format!("{u}: the vulnerabilities of {field} {path} are not readable with this token (read_api scope, the Developer role or higher, and GitLab Ultimate are needed)"),
            ),
            PageError::Graphql { kind, count, path: at } => {
                let at = at.map(|p| format!(" at {p}")).unwrap_or_default();
                let (reason, what) = match kind {
                    GqlKind::NoPermission => (
                        ErrorReason::Auth,
                        format!("{field} {path} does not exist or this token lacks permission"),
                    ),
                    GqlKind::TokenStatusUnsupported => {
                        (ErrorReason::Http4xx, "findingTokenStatus is not supported by this GitLab".to_string())
                    }
                    GqlKind::TooComplex => (
                        ErrorReason::Http4xx,
                        format!("the query exceeds the complexity limit even with pages of {MIN_PAGE_SIZE}"),
                    ),
                    GqlKind::Other => (ErrorReason::Http4xx, "the query was rejected".to_string()),
                };
                SourceError::new(
                    reason,
                    format!("{u}: GraphQL error{}{at}: {what} (messages are not logged: they may quote data)", if count == 1 { String::new() } else { format!("s ({count})") }),
                )
            }
        }
    }
}

#[derive(Deserialize)]
struct GqlResponse {
    data: Option<GqlData>,
    errors: Option<Vec<GqlError>>,
}

#[derive(Deserialize)]
struct GqlError {
    #[serde(default)]
    message: String,
    path: Option<Vec<serde_json::Value>>,
}

#[derive(Deserialize)]
struct GqlData {
    group: Option<Namespace>,
    project: Option<Namespace>,
}

#[derive(Deserialize)]
struct Namespace {
    vulnerabilities: Option<Connection>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Connection {
    page_info: PageInfo,
    nodes: Vec<Option<Node>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PageInfo {
    end_cursor: Option<String>,
    has_next_page: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Node {
    id: String,
    title: Option<String>,
    state: String,
    detected_at: Option<String>,
    resolved_at: Option<String>,
    dismissed_at: Option<String>,
    dismissal_reason: Option<String>,
    updated_at: Option<String>,
    finding_token_status: Option<TokenStatus>,
    location: Option<SecretLocation>,
    #[serde(default)]
    identifiers: Option<Vec<Identifier>>,
    project: Option<ProjectRef>,
}

#[derive(Deserialize)]
struct TokenStatus {
    status: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SecretLocation {
    file: Option<String>,
    /// A String in GitLab's schema; a number accepted too.
    start_line: Option<LineNo>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum LineNo {
    Int(i64),
    Str(String),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Identifier {
    external_type: Option<String>,
    external_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProjectRef {
    full_path: Option<String>,
}

/// `dismissalReason` → resolution.
pub fn dismissal(reason: Option<&str>) -> Resolution {
    match reason.map(str::to_ascii_uppercase).as_deref() {
        Some("FALSE_POSITIVE") => Resolution::FalsePositive,
        Some("USED_IN_TESTS") => Resolution::UsedInTests,
        Some("ACCEPTABLE_RISK" | "NOT_APPLICABLE" | "MITIGATING_CONTROL") => Resolution::WontFix,
        _ => Resolution::Other,
    }
}

fn time(s: Option<&str>) -> Option<i64> {
    s.and_then(super::rfc3339)
}

/// Parse one GraphQL response of the query for `field`. `repo_fallback`
/// is the location's repository when a node has no project (project scope).
pub fn parse_page(
    body: &[u8],
    field: Field,
    repo_fallback: Option<&str>,
) -> Result<Page, PageError> {
    let resp: GqlResponse = serde_json::from_slice(body).map_err(|e| {
        // Position only: serde's message may quote the input.
        PageError::Malformed(format!(
            "line {} column {}: not a GraphQL response of secret detection vulnerabilities",
            e.line(),
            e.column()
        ))
    })?;
    if let Some(errors) = resp.errors.filter(|e| !e.is_empty()) {
        let kinds: Vec<GqlKind> = errors.iter().map(|e| GqlKind::of(&e.message)).collect();
        let kind = [
            GqlKind::NoPermission,
            GqlKind::TokenStatusUnsupported,
            GqlKind::TooComplex,
        ]
        .into_iter()
        .find(|k| kinds.contains(k))
        .unwrap_or(GqlKind::Other);
        let path = errors[0].path.as_ref().map(|p| {
            let mut s = p
                .iter()
                .map(|v| match v {
                    serde_json::Value::String(s) => s
                        .chars()
                        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect(),
                    serde_json::Value::Number(n) => n.to_string(),
                    _ => "?".to_string(),
                })
                .collect::<Vec<String>>()
                .join(".");
            s.truncate(120);
            s
        });
        return Err(PageError::Graphql {
            kind,
            count: errors.len(),
            path,
        });
    }
    let Some(data) = resp.data else {
        return Err(PageError::Malformed(
            "no data and no errors: not a GraphQL response".into(),
        ));
    };
    let ns = match field {
        Field::Group => data.group,
        Field::Project => data.project,
    };
    let Some(ns) = ns else {
        return Err(PageError::NotFound);
    };
    let Some(conn) = ns.vulnerabilities else {
        return Err(PageError::NoVulnerabilities);
    };
    let next = match (conn.page_info.has_next_page, conn.page_info.end_cursor) {
        (false, _) => None,
        (true, Some(c)) if !c.is_empty() => Some(c),
        (true, _) => {
            return Err(PageError::Malformed(
                "hasNextPage without an endCursor".into(),
            ))
        }
    };
    let mut findings = Vec::with_capacity(conn.nodes.len());
    for (i, node) in conn.nodes.into_iter().enumerate() {
        let Some(n) = node else {
            return Err(PageError::Malformed(format!("node {i} is null")));
        };
        if n.id.is_empty() {
            return Err(PageError::Malformed(format!("node {i} has an empty id")));
        }
        findings.push(finding(n, repo_fallback));
    }
    Ok(Page { findings, next })
}

fn finding(n: Node, repo_fallback: Option<&str>) -> ObservedFinding {
    let rule = n
        .identifiers
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find_map(|i| {
            let gitleaks = i
                .external_type
                .as_deref()
                .is_some_and(|t| t.eq_ignore_ascii_case("gitleaks_rule_id"));
            i.external_id
                .as_deref()
                .filter(|id| gitleaks && !id.trim().is_empty())
                .map(str::to_string)
        });
    let secret_type = rule
        .or_else(|| n.title.filter(|t| !t.trim().is_empty()))
        .unwrap_or_else(|| "unknown".into());
    let closed = match n.state.to_ascii_uppercase().as_str() {
        "RESOLVED" => Some((Resolution::Other, time(n.resolved_at.as_deref()))),
        "DISMISSED" => Some((
            dismissal(n.dismissal_reason.as_deref()),
            time(n.dismissed_at.as_deref()),
        )),
        // DETECTED, CONFIRMED, and any state GitLab may add: open.
        _ => None,
    };
    let validity = match n
        .finding_token_status
        .and_then(|t| t.status)
        .map(|s| s.to_ascii_uppercase())
        .as_deref()
    {
        Some("ACTIVE") => Validity::Live,
        Some("INACTIVE") => Validity::Inactive,
        _ => Validity::Unknown,
    };
    let repository = n
        .project
        .and_then(|p| p.full_path)
        .filter(|p| !p.is_empty())
        .or_else(|| repo_fallback.map(str::to_string));
    let (file, line) = match n.location {
        Some(l) => (
            l.file.filter(|f| !f.is_empty()),
            match l.start_line {
                Some(LineNo::Int(i)) => Some(i),
                Some(LineNo::Str(s)) => s.trim().parse().ok(),
                None => None,
            },
        ),
        None => (None, None),
    };
    ObservedFinding {
        scanner_id: n.id,
        secret_type,
        exposure: ExposureKey::ScannerId,
        location: Location {
            repository,
            file,
            line,
            commit: None,
        },
        detected_at: time(n.detected_at.as_deref()),
        committed_at: None,
        closed,
        validity,
        // A token status change updates the vulnerability.
        validity_at: time(n.updated_at.as_deref()),
        links: Vec::new(),
    }
}

pub const TYPE_NAME: &str = "gitlab_secret_detection";

pub const REGISTRATION: Registration = Registration {
    ty: super::registry::SourceType {
        name: TYPE_NAME,
        parse: config::parse,
    },
    build: |spec| {
        let cfg = Registration::settings::<GitlabConfig>(spec)?;
        Ok(Arc::new(GitlabSource::new(cfg.clone())?))
    },
};

impl Source for GitlabSource {
    fn poll<'a>(&'a self, ctx: PollContext, out: ObservationSender) -> PollFuture<'a> {
        Box::pin(GitlabSource::poll(self, ctx, out))
    }
}

#[cfg(test)]
mod tests;
