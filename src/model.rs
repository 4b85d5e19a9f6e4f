//! The domain model at the bottom of the crate: what sources observe
//! (findings, scans, validity, resolutions, inventory records), why a poll
//! fails, and what the store knows of a source's credentials. It imports no
//! other module of the crate: sources produce these values, the store
//! applies them, the KPIs count them.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The provider and the identity and credential kinds an inventory source
/// reports: the label values its series have before its first poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InventoryKinds {
    pub provider: &'static str,
    pub identity_kinds: &'static [&'static str],
    pub credential_kinds: &'static [&'static str],
}

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
    /// When the scanner made its validity statement (`live` or `inactive`):
    /// the alert's update time for GitHub and GitLab. `None`: the scan time
    /// ([`TargetScan::scanned_at`], a report's modification time). An
    /// exposure's validity is its most recent statement across scanners.
    pub validity_at: Option<i64>,
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

/// State of a credential as the provider reports it. `Deleted` is never
/// observed: it is what the store records for a credential absent from a
/// complete inventory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CredentialState {
    Active,
    Inactive,
}

impl CredentialState {
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialState::Active => "active",
            CredentialState::Inactive => "inactive",
        }
    }
}

/// A principal in one provider (SPEC §2 Identity). Humans are reported too
/// (`human: true`): they are only counted, for the NHI:human ratio.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservedIdentity {
    /// `aws`, `vault`.
    pub provider: &'static str,
    /// AWS account id, Vault cluster (its address host or cluster name).
    pub account: String,
    /// `user`, `role` (aws); `token`, `approle` (vault).
    pub kind: &'static str,
    /// Stable, non-secret id within the source (ARN, token accessor, role).
    pub id: String,
    /// Display name; kept in the store, never a label.
    pub name: String,
    pub created_at: Option<i64>,
    /// Last use the provider reports; `None` with `usage_tracked` = never used.
    pub last_used_at: Option<i64>,
    /// Whether the provider reports use at all. An identity whose use is not
    /// tracked (a Vault token) is never counted unused.
    pub usage_tracked: bool,
    /// Owning team from `policy.team_tag` (tag, custom_metadata, token meta).
    pub team: Option<String>,
    /// Why the identity is admin-equivalent (`AdministratorAccess`,
    /// `inline */*`, `policy root`), `None` when it is not.
    pub privileged: Option<String>,
    /// The privilege is held permanently rather than granted just in time.
    pub standing: bool,
    pub human: bool,
}

/// Secret material of an identity, or a stored secret (SPEC §2 Credential).
#[derive(Debug, Clone, PartialEq)]
pub struct ObservedCredential {
    pub provider: &'static str,
    /// Where the credential lives, as [`ObservedIdentity::account`]: AWS
    /// account id, Vault cluster. The `scope` label value; "" when unknown.
    pub account: String,
    /// `access_key`, `secret` (aws); `kv`, `token`, `secret_id` (vault).
    pub kind: &'static str,
    /// Stable non-secret id: AWS access key id, secret ARN, `mount/path`,
    /// token accessor, secret-id accessor. Leaks link to it by this id.
    pub id: String,
    /// The owning identity's `ObservedIdentity::id`, if any.
    pub identity: Option<String>,
    pub team: Option<String>,
    pub created_at: Option<i64>,
    /// Last rotation (creation when never rotated): the credential's age.
    pub last_rotated_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub state: CredentialState,
    /// Rotated automatically by the provider (or by a declared, honoured
    /// rotation period).
    pub rotation_enabled: bool,
    /// HMACs (store key) of the current secret values, read only under a
    /// vault source's `match_values`. The values themselves are dropped.
    pub value_hashes: Vec<[u8; 32]>,
    /// Other non-secret ids a leak may name this credential by, when the
    /// leak cannot know `id` (an Entra client secret: `<appId>/<hint>`).
    /// A leak linked to an alias is linked to this credential once it is
    /// applied. Sources set it only for aliases the store reports linked
    /// ([`KnownCredential`]s' `linked_credentials`), so that it changes
    /// (and is applied) when a leak names it.
    pub aliases: Vec<String>,
}

/// The complete inventory of one scope of a source (`iam`,
/// `secretsmanager/us-east-1`, `kv/secret`, `tokens`, `approle`). What the
/// store holds for that scope and is absent here was deleted at
/// `observed_at`; a scope that failed is sent as `TargetFailed` with the
/// scope as target and keeps its previous state.
#[derive(Debug, Clone, PartialEq)]
pub struct InventoryScan {
    pub scope: String,
    pub observed_at: i64,
    pub identities: Vec<ObservedIdentity>,
    pub credentials: Vec<ObservedCredential>,
}

impl InventoryScan {
    /// Its credentials as the store knows them once it is applied: what
    /// the source's next poll gets as [`KnownCredential`]s.
    pub fn known_credentials(&self) -> impl Iterator<Item = KnownCredential> + '_ {
        self.credentials.iter().map(|c| KnownCredential {
            scope: self.scope.clone(),
            kind: c.kind.to_string(),
            id: c.id.clone(),
            identity: c.identity.clone(),
            created_at: c.created_at,
            state: c.state,
        })
    }
}

/// What a source sends while it polls.
#[derive(Debug)]
pub enum ObservationItem {
    Target(TargetScan),
    /// The complete inventory of one scope (identities, credentials).
    Inventory(InventoryScan),
    /// One input (a report file, a repository, an inventory scope) could not
    /// be read; it keeps its previous state.
    TargetFailed {
        target: String,
        error: SourceError,
    },
    /// An input is unchanged since it was last applied; it was not re-read.
    TargetUnchanged {
        target: String,
    },
    /// Every inventory scope the source has now, failed ones included, sent
    /// by a source that knows the complete set (an organization's listed
    /// accounts). A stored scope of the source not in it is gone: its
    /// identities are removed and its credentials deleted, as by an empty
    /// complete inventory.
    InventoryScopes(Vec<String>),
}

/// A credential as last applied to the store.
#[derive(Debug, Clone, PartialEq)]
pub struct KnownCredential {
    pub scope: String,
    pub kind: String,
    pub id: String,
    pub identity: Option<String>,
    pub created_at: Option<i64>,
    pub state: CredentialState,
}
