//! Sources: each polls one upstream (report files, an API) and returns a
//! normalised observation. Sources never touch Prometheus or the store; the
//! [`runner`] applies what they send.

pub mod detect_secrets;
pub mod files;
pub mod github;
pub mod gitlab;
pub mod gitleaks;
pub mod http;
pub mod runner;
pub mod trufflehog;

use crate::config::{SourceConfig, SourceKind};
use crate::hashing::SecretHasher;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Why a poll (or one of its inputs) failed; the `reason` label of
/// `nhi_source_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorReason {
    Timeout,
    Auth,
    RateLimited,
    Http4xx,
    Http5xx,
    Parse,
    Io,
}

impl ErrorReason {
    pub const ALL: [ErrorReason; 7] = [
        ErrorReason::Timeout,
        ErrorReason::Auth,
        ErrorReason::RateLimited,
        ErrorReason::Http4xx,
        ErrorReason::Http5xx,
        ErrorReason::Parse,
        ErrorReason::Io,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorReason::Timeout => "timeout",
            ErrorReason::Auth => "auth",
            ErrorReason::RateLimited => "rate_limited",
            ErrorReason::Http4xx => "http_4xx",
            ErrorReason::Http5xx => "http_5xx",
            ErrorReason::Parse => "parse",
            ErrorReason::Io => "io",
        }
    }
}

impl fmt::Display for ErrorReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failure of a whole poll. The message never contains secret material.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{reason}: {message}")]
pub struct SourceError {
    pub reason: ErrorReason,
    pub message: String,
    /// The upstream's HTTP status, when the failure was a response.
    pub status: Option<u16>,
}

impl SourceError {
    pub fn new(reason: ErrorReason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
            status: None,
        }
    }

    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }
}

/// One API target's outcome as an observation: its complete scan, `None`
/// when unchanged since last applied, or a failed target that keeps its
/// state. A rejected credential (HTTP 401) fails every target, so it fails
/// the whole poll instead.
pub fn target_item(
    target: String,
    outcome: Result<Option<TargetScan>, SourceError>,
) -> Result<ObservationItem, SourceError> {
    Ok(match outcome {
        Ok(Some(scan)) => ObservationItem::Target(scan),
        Ok(None) => ObservationItem::TargetUnchanged { target },
        Err(e) if e.status == Some(401) => return Err(e),
        Err(error) => ObservationItem::TargetFailed { target, error },
    })
}

/// Validity of a secret as reported by a scanner's check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Validity {
    Unknown,
    Inactive,
    Live,
}

impl Validity {
    pub const ALL: [Validity; 3] = [Validity::Live, Validity::Inactive, Validity::Unknown];

    pub fn as_str(self) -> &'static str {
        match self {
            Validity::Live => "live",
            Validity::Inactive => "inactive",
            Validity::Unknown => "unknown",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "live" => Some(Validity::Live),
            "inactive" => Some(Validity::Inactive),
            "unknown" => Some(Validity::Unknown),
            _ => None,
        }
    }
}

/// Why a finding was closed; the `resolution` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resolution {
    Revoked,
    FalsePositive,
    WontFix,
    UsedInTests,
    Disappeared,
    Other,
}

impl Resolution {
    pub const ALL: [Resolution; 6] = [
        Resolution::Revoked,
        Resolution::FalsePositive,
        Resolution::WontFix,
        Resolution::UsedInTests,
        Resolution::Disappeared,
        Resolution::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Resolution::Revoked => "revoked",
            Resolution::FalsePositive => "false_positive",
            Resolution::WontFix => "wont_fix",
            Resolution::UsedInTests => "used_in_tests",
            Resolution::Disappeared => "disappeared",
            Resolution::Other => "other",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// Where a finding is. Kept in the store for operators; never a label.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Location {
    pub repository: Option<String>,
    pub file: Option<String>,
    pub line: Option<i64>,
    pub commit: Option<String>,
}

/// How the exposure behind a finding is identified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExposureKey {
    /// HMAC-SHA256 of the secret value: merges across scanners.
    Secret([u8; 32]),
    /// No value available (redacted report): the scanner's own stable id,
    /// scoped to its source and target. Cannot merge across scanners.
    ScannerId,
    /// A keyed hash of a value only this scanner type reports (detect-secrets'
    /// `hashed_secret`): the same secret found by several of its plugins, or
    /// in several repositories, is one exposure; it never merges with other
    /// scanners, which see the plaintext instead.
    ScannerSecret([u8; 32]),
}

/// A non-secret credential id seen in a leak (e.g. an AWS access key id),
/// used to link the exposure to the credential inventory.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CredentialRef {
    pub provider: &'static str,
    pub id: String,
}

/// One scanner report of a secret where it must not be.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservedFinding {
    /// The scanner's stable id for this finding within its target.
    pub scanner_id: String,
    /// The scanner's rule id (normalised later).
    pub secret_type: String,
    pub exposure: ExposureKey,
    pub location: Location,
    /// The scanner's own detection time, if it has one.
    pub detected_at: Option<i64>,
    pub committed_at: Option<i64>,
    /// `None` while open; the resolution and the close time when closed.
    pub closed: Option<(Resolution, Option<i64>)>,
    pub validity: Validity,
    pub links: Vec<CredentialRef>,
}

/// The complete, latest scan of one target (a report file, a repository).
/// A finding the store holds for this target that is absent here was
/// closed with resolution `disappeared` at `scanned_at`.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetScan {
    pub target: String,
    /// Change marker of the input (size, mtime...); stored so that an
    /// unchanged input is not parsed again.
    pub fingerprint: String,
    /// When this scan ran (unix seconds), as well as the source can tell.
    pub scanned_at: i64,
    pub findings: Vec<ObservedFinding>,
}

/// What a source sends while it polls.
#[derive(Debug)]
pub enum ObservationItem {
    Target(TargetScan),
    /// One input could not be read; that target keeps its previous state.
    TargetFailed {
        target: String,
        error: SourceError,
    },
    /// An input is unchanged since it was last applied; it was not re-read.
    TargetUnchanged {
        target: String,
    },
}

/// What the applier receives: the source's items, then the runner's verdict.
#[derive(Debug)]
pub enum ApplyMsg {
    Item(ObservationItem),
    /// The poll succeeded: commit everything applied so far.
    Commit,
    /// The poll failed or timed out: roll back.
    Abort,
}

/// The sending side handed to a source's poll; items are applied in one
/// store transaction when the poll succeeds.
#[derive(Clone)]
pub struct ObservationSender {
    tx: mpsc::Sender<ApplyMsg>,
}

/// The applier went away (poll cancelled): stop producing.
#[derive(Debug, Clone, Copy)]
pub struct Cancelled;

impl ObservationSender {
    pub fn new(tx: mpsc::Sender<ApplyMsg>) -> Self {
        Self { tx }
    }
    /// Send from a blocking thread (file parsing runs in `spawn_blocking`).
    pub fn send_blocking(&self, item: ObservationItem) -> Result<(), Cancelled> {
        self.tx
            .blocking_send(ApplyMsg::Item(item))
            .map_err(|_| Cancelled)
    }
    pub async fn send(&self, item: ObservationItem) -> Result<(), Cancelled> {
        self.tx
            .send(ApplyMsg::Item(item))
            .await
            .map_err(|_| Cancelled)
    }
}

/// What a source gets for one poll.
pub struct PollContext {
    pub source: String,
    pub hasher: Arc<SecretHasher>,
    /// Fingerprints of the targets as last applied, to skip unchanged inputs.
    pub known_targets: HashMap<String, String>,
    pub now: i64,
    /// When the poll's timeout runs out: API sources fit their retries in it.
    pub deadline: std::time::Instant,
}

/// A configured source, ready to poll. One variant per source type.
#[derive(Debug, Clone)]
pub enum Source {
    Gitleaks(gitleaks::GitleaksSource),
    Trufflehog(trufflehog::TrufflehogSource),
    DetectSecrets(detect_secrets::DetectSecretsSource),
    Github(github::GithubSource),
    Gitlab(gitlab::GitlabSource),
}

impl Source {
    pub fn from_config(cfg: &SourceConfig) -> Self {
        match &cfg.kind {
            SourceKind::Gitleaks(g) => Source::Gitleaks(gitleaks::GitleaksSource::new(g.clone())),
            SourceKind::Trufflehog(t) => {
                Source::Trufflehog(trufflehog::TrufflehogSource::new(t.clone()))
            }
            SourceKind::DetectSecrets(d) => {
                Source::DetectSecrets(detect_secrets::DetectSecretsSource::new(d.clone()))
            }
            SourceKind::GithubSecretScanning(g) => {
                Source::Github(github::GithubSource::new(g.clone()))
            }
            SourceKind::GitlabSecretDetection(g) => {
                Source::Gitlab(gitlab::GitlabSource::new(g.clone()))
            }
        }
    }

    /// Poll once, sending observations as they are produced.
    pub async fn poll(&self, ctx: PollContext, out: ObservationSender) -> Result<(), SourceError> {
        match self {
            Source::Gitleaks(s) => s.poll(ctx, out).await,
            Source::Trufflehog(s) => s.poll(ctx, out).await,
            Source::DetectSecrets(s) => s.poll(ctx, out).await,
            Source::Github(s) => s.poll(ctx, out).await,
            Source::Gitlab(s) => s.poll(ctx, out).await,
        }
    }
}
