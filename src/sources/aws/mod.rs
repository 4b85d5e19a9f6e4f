//! `aws` source: the IAM inventory of one account and its Secrets Manager
//! secrets, read with the AWS SDK (standard credential chain, optional
//! `assume_role_arn` with session name `nhi-exporter`, optional
//! `endpoint_url` for moto or LocalStack, standard retry mode so the SDK
//! absorbs throttling within bounded attempts).
//!
//! Each poll sends one complete [`InventoryScan`] per scope; a scope that
//! fails is sent as `TargetFailed` (it keeps its stored state) and the poll
//! fails only when every scope failed. Every scope runs within the poll's
//! deadline. provider is always `aws`.
//!
//! ## Scope `iam` (service `iam`; calls signed for `regions[0]`)
//! `GetAccountAuthorizationDetails` (Filter User, Role, Group,
//! LocalManagedPolicy; `MaxItems` 1000, `Marker` pages) and the credential
//! report (`GenerateCredentialReport` until `COMPLETE`, ~1 s apart, then
//! `GetCredentialReport`; CSV, `<root_account>` skipped). Account = from
//! the ARNs.
//!
//! | IAM | identity / credential |
//! |---|---|
//! | user | kind `user`, id = UserId, name = UserName, created_at = CreateDate, team = tag `policy.team_tag`, usage_tracked, last_used_at = max(password_last_used, access keys' last_used_date) of the report, human = report `password_enabled` TRUE (console user) |
//! | role | kind `role`, id = RoleId, name = RoleName, created_at, last_used_at = RoleLastUsed.LastUsedDate, usage_tracked, team tag; service-linked roles (Path `/aws-service-role/…`) are excluded |
//! | privileged | Some(reason) when a policy ARN of `policy.privileged.aws_policies` is attached directly or through a group (reason = the policy name, e.g. `AdministratorAccess`), or any document — inline user/role/group policies, default version of attached customer-managed policies; URL-encoded JSON — has an `Allow` statement with Action `*` and Resource `*` (string or list; `NotAction` never counts) (reason `statement */*`). standing = privileged (IAM attachments are permanent) |
//! | access key | kind `access_key`, id = AccessKeyId, identity = the user's UserId, team = the user's team, created_at = last_rotated_at = CreateDate, last_used_at = the report slot whose last_rotated equals CreateDate (else `GetAccessKeyLastUsed` for that key), state Active / Inactive (Expired → Inactive), rotation_enabled false; keys of human users included |
//!
//! Call count grows with pages, not users: `ListAccessKeys(UserName)` is
//! called only for a user whose report slots (active flag and last_rotated
//! of access_key_1/2) do not match the known, non-deleted `access_key`
//! credentials of that UserId (`PollContext::known_credentials`, matched by
//! created_at and state; on a match the known ids are reused with the
//! report's state and last use), for a user missing from the report who
//! has known keys, and always for the owner of a key in
//! `PollContext::linked_credentials` (a leaked key gets a fresh look every
//! poll). So the first poll ever makes one `ListAccessKeys` per user with
//! keys; the steady state makes the authorization-details pages, 2–3
//! report calls and one `ListAccessKeys` per changed user.
//!
//! Caveat: AWS regenerates the credential report at most every 4 hours, so
//! a key created or deleted since the report shows up at the latest with
//! the next report (or at once when its user's slots change).
//!
//! ## Scopes `secretsmanager/{region}` (service `secretsmanager`)
//! `ListSecrets` per region (`MaxResults` 100, `NextToken` pages,
//! `IncludePlannedDeletion`): kind `secret`, id = ARN, identity none, team
//! tag, created_at = CreatedDate, last_rotated_at = LastRotatedDate else
//! CreatedDate, last_used_at = LastAccessedDate, expires_at none, state
//! Active (Inactive when DeletedDate is set), rotation_enabled =
//! RotationEnabled. Secret values are never read.
//!
//! ## `organization` (see [`org`])
//! `ListAccounts` with the source's own credentials, then per selected
//! ACTIVE account `AssumeRole` of `role_name` and the scopes above as
//! `<account>/iam` and `<account>/secretsmanager/{region}`, `concurrency`
//! accounts at a time. An account whose role cannot be assumed is one
//! `TargetFailed` (target = the account id); error messages start with
//! `account <id> (<name>): `.
//!
//! ## Errors
//! AccessDenied, UnrecognizedClient, InvalidClientTokenId, ExpiredToken →
//! `auth`; Throttling, ThrottlingException → `rate_limited`; other 4xx →
//! `http_4xx`; 5xx → `http_5xx`; dispatch/connect failures → `io`;
//! timeouts → `timeout`. Messages carry the operation, the error code and
//! AWS's message, never credentials.

mod config;
#[cfg(test)]
mod config_tests;
pub mod iam;
pub mod org;
pub mod report;
pub mod secrets;

pub use config::{AwsConfig, AwsService, OrgConfig};

use super::registry::Registration;
use super::{bounded, ObservationSender, PollContext, PollFuture, Source};
use crate::model::InventoryKinds;
use crate::model::{unix_now, ErrorReason, InventoryScan, ObservationItem, SourceError};
use aws_config::BehaviorVersion;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_iam::config::http::HttpResponse;
use aws_sdk_iam::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub const PROVIDER: &str = "aws";
pub const TYPE_NAME: &str = "aws";

/// What an `aws` source inventories.
pub const INVENTORY: InventoryKinds = InventoryKinds {
    provider: PROVIDER,
    identity_kinds: &["user", "role"],
    credential_kinds: &["access_key", "secret"],
};

pub const REGISTRATION: Registration = Registration {
    ty: super::registry::SourceType {
        name: TYPE_NAME,
        parse: config::parse,
    },
    build: |spec| {
        let cfg = Registration::settings::<AwsConfig>(spec)?;
        Ok(Arc::new(AwsSource::new(cfg.clone())))
    },
};

impl Source for AwsSource {
    fn poll<'a>(&'a self, ctx: PollContext, out: ObservationSender) -> PollFuture<'a> {
        Box::pin(AwsSource::poll(self, ctx, out))
    }
}

#[derive(Clone)]
struct Clients {
    iam: aws_sdk_iam::Client,
    /// (region, client) per configured region.
    secrets: Vec<(String, aws_sdk_secretsmanager::Client)>,
}

/// What a source builds once: the SDK configuration with the source's own
/// credentials, its clients, and under `organization` the Organizations
/// and STS clients.
#[derive(Clone)]
struct Base {
    shared: aws_config::SdkConfig,
    clients: Clients,
    orgs: aws_sdk_organizations::Client,
    sts: aws_sdk_sts::Client,
}

/// A member account's session: its clients and when to renew them.
#[derive(Clone)]
struct Session {
    clients: Clients,
    renew_at: i64,
}

#[derive(Clone)]
pub struct AwsSource {
    cfg: AwsConfig,
    base: Arc<Mutex<Option<Base>>>,
    /// Under `organization`: account id → its current session.
    sessions: Arc<Mutex<HashMap<String, Session>>>,
}

impl std::fmt::Debug for AwsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsSource").field("cfg", &self.cfg).finish()
    }
}

/// One scope's outcome: (scope, its complete inventory or why it failed).
type Outcome = (String, Result<InventoryScan, SourceError>);

impl AwsSource {
    pub fn new(cfg: AwsConfig) -> Self {
        Self {
            cfg,
            base: Arc::new(Mutex::new(None)),
            sessions: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    async fn base(&self) -> Base {
        if let Some(b) = self.base.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            return b.clone();
        }
        let built = build_base(&self.cfg).await;
        *self.base.lock().unwrap_or_else(|p| p.into_inner()) = Some(built.clone());
        built
    }

    pub async fn poll(&self, ctx: PollContext, out: ObservationSender) -> Result<(), SourceError> {
        let base = self.base().await;
        let ctx = Arc::new(ctx);
        let (outcomes, keep) = match &self.cfg.organization {
            None => (
                scan_account(self.cfg.clone(), base.clients.clone(), ctx.clone(), None).await,
                scopes_of(&self.cfg, None),
            ),
            Some(org) => self.poll_organization(org, &base, ctx.clone()).await?,
        };
        let scopes = outcomes.len();
        let mut failed: Option<SourceError> = None;
        let mut ok = 0usize;
        for (scope, r) in outcomes {
            let item = match r {
                Ok(scan) => {
                    ok += 1;
                    ObservationItem::Inventory(scan)
                }
                Err(error) => {
                    tracing::warn!(scope = %scope, reason = %error.reason, error = %error.message, "aws scope failed");
                    failed = Some(error.clone());
                    ObservationItem::TargetFailed {
                        target: scope,
                        error,
                    }
                }
            };
            out.send(item)
                .await
                .map_err(|_| SourceError::new(ErrorReason::Timeout, "poll cancelled"))?;
        }
        // Every scope this source has now: stored scopes of accounts that
        // left the organization (or of regions and services no longer
        // configured) are retired.
        out.send(ObservationItem::InventoryScopes(keep))
            .await
            .map_err(|_| SourceError::new(ErrorReason::Timeout, "poll cancelled"))?;
        match failed {
            Some(e) if ok == 0 && scopes > 0 => Err(e),
            _ => Ok(()),
        }
    }

    /// List the organization's accounts and scan the selected ones,
    /// `concurrency` at a time. An account whose role cannot be assumed is
    /// one failed target (the account id); its stored state is kept.
    async fn poll_organization(
        &self,
        org: &OrgConfig,
        base: &Base,
        ctx: Arc<PollContext>,
    ) -> Result<(Vec<Outcome>, Vec<String>), SourceError> {
        let deadline = tokio::time::Instant::from_std(ctx.deadline);
        let listed = within(deadline, "ListAccounts", org::list_accounts(&base.orgs)).await?;
        let accounts = org::select(listed, org);
        let keep: Vec<String> = accounts
            .iter()
            .flat_map(|a| scopes_of(&self.cfg, Some(&a.id)))
            .collect();
        if accounts.is_empty() {
            tracing::warn!(source = %ctx.source, "aws organization: no ACTIVE account matches include/exclude");
        }
        let per_account = bounded(org.concurrency, accounts, |account| {
            let (cfg, base, ctx, org) = (self.cfg.clone(), base.clone(), ctx.clone(), org.clone());
            let sessions = self.sessions.clone();
            async move {
                let deadline = tokio::time::Instant::from_std(ctx.deadline);
                let label = format!("account {} ({})", account.id, account.name);
                let cached = sessions
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&account.id)
                    // Sessions expire in wall-clock time.
                    .filter(|s| s.renew_at > unix_now())
                    .map(|s| s.clients.clone());
                let clients = match cached {
                    Some(c) => c,
                    None => match within(deadline, &label, org::assume(&base.sts, &account, &org))
                        .await
                    {
                        Ok((creds, expires)) => {
                            let conf = base
                                .shared
                                .clone()
                                .into_builder()
                                .credentials_provider(SharedCredentialsProvider::new(creds))
                                .build();
                            let clients = clients_for(&conf, &cfg.regions);
                            let renew_at = expires.map_or(0, |e| e - org::RENEW_BEFORE);
                            sessions.lock().unwrap_or_else(|p| p.into_inner()).insert(
                                account.id.clone(),
                                Session {
                                    clients: clients.clone(),
                                    renew_at,
                                },
                            );
                            clients
                        }
                        Err(mut e) => {
                            e.message = format!("{label}: {}", e.message);
                            return Ok(vec![(account.id.clone(), Err(e))]);
                        }
                    },
                };
                let mut outcomes = scan_account(cfg, clients, ctx, Some(account.id.clone())).await;
                for (_, r) in &mut outcomes {
                    if let Err(e) = r {
                        e.message = format!("{label}: {}", e.message);
                    }
                }
                Ok(outcomes)
            }
        })
        .await?;
        Ok((per_account.into_iter().flatten().collect(), keep))
    }
}

/// The scopes of one account (`None`: the source's own), as
/// [`scan_account`] names them.
fn scopes_of(cfg: &AwsConfig, account: Option<&str>) -> Vec<String> {
    let prefix = account.map(|a| format!("{a}/")).unwrap_or_default();
    let mut v = Vec::new();
    if cfg.services.contains(&AwsService::Iam) {
        v.push(format!("{prefix}iam"));
    }
    if cfg.services.contains(&AwsService::SecretsManager) {
        v.extend(
            cfg.regions
                .iter()
                .map(|r| format!("{prefix}secretsmanager/{r}")),
        );
    }
    v
}

/// Scan one account's scopes side by side (IAM, and Secrets Manager per
/// region). Under `organization` the scopes are `<account>/iam` and
/// `<account>/secretsmanager/<region>`, so each account's complete
/// listing deletes only its own.
async fn scan_account(
    cfg: AwsConfig,
    clients: Clients,
    ctx: Arc<PollContext>,
    account: Option<String>,
) -> Vec<Outcome> {
    let deadline = tokio::time::Instant::from_std(ctx.deadline);
    let prefix = account
        .as_ref()
        .map(|a| format!("{a}/"))
        .unwrap_or_default();
    let iam_scope = async {
        if !cfg.services.contains(&AwsService::Iam) {
            return None;
        }
        let scope = format!("{prefix}iam");
        let r = within(
            deadline,
            &scope,
            iam::scan(&clients.iam, &ctx, &scope, account.as_deref()),
        )
        .await;
        Some((scope, r))
    };
    let secret_scopes = async {
        let mut v = Vec::new();
        if !cfg.services.contains(&AwsService::SecretsManager) {
            return v;
        }
        for (region, client) in &clients.secrets {
            let scope = format!("{prefix}secretsmanager/{region}");
            let r = within(
                deadline,
                &scope,
                secrets::scan(client, &scope, &ctx.policy.team_tag, ctx.now),
            )
            .await;
            v.push((scope, r));
        }
        v
    };
    let (iam_outcome, secret_outcomes) = tokio::join!(iam_scope, secret_scopes);
    iam_outcome.into_iter().chain(secret_outcomes).collect()
}

async fn within<T>(
    deadline: tokio::time::Instant,
    scope: &str,
    fut: impl std::future::Future<Output = Result<T, SourceError>>,
) -> Result<T, SourceError> {
    match tokio::time::timeout_at(deadline, fut).await {
        Ok(r) => r,
        Err(_) => Err(SourceError::new(
            ErrorReason::Timeout,
            format!("{scope}: poll deadline reached"),
        )),
    }
}

async fn build_base(cfg: &AwsConfig) -> Base {
    let first = cfg
        .regions
        .first()
        .cloned()
        .unwrap_or_else(|| "us-east-1".to_string());
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(aws_config::Region::new(first))
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(3))
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(std::time::Duration::from_secs(5))
                .operation_attempt_timeout(std::time::Duration::from_secs(60))
                .build(),
        );
    if let Some(ep) = &cfg.endpoint_url {
        loader = loader.endpoint_url(ep);
    }
    let mut shared = loader.load().await;
    if let Some(arn) = &cfg.assume_role_arn {
        let provider = aws_config::sts::AssumeRoleProvider::builder(arn)
            .session_name("nhi-exporter")
            .configure(&shared)
            .build()
            .await;
        shared = shared
            .into_builder()
            .credentials_provider(SharedCredentialsProvider::new(provider))
            .build();
    }
    Base {
        clients: clients_for(&shared, &cfg.regions),
        orgs: aws_sdk_organizations::Client::new(&shared),
        sts: aws_sdk_sts::Client::new(&shared),
        shared,
    }
}

fn clients_for(shared: &aws_config::SdkConfig, regions: &[String]) -> Clients {
    let iam = aws_sdk_iam::Client::new(shared);
    let secrets = regions
        .iter()
        .map(|r| {
            let conf = aws_sdk_secretsmanager::config::Builder::from(shared)
                .region(aws_config::Region::new(r.clone()))
                .build();
            (r.clone(), aws_sdk_secretsmanager::Client::from_conf(conf))
        })
        .collect();
    Clients { iam, secrets }
}

/// How an SDK call failed, as far as the classification needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    Timeout,
    Dispatch,
    Construction,
    Response,
    Service,
}

/// The error reason of a failed call from its kind, AWS error code and
/// HTTP status.
pub fn classify(kind: FailureKind, code: Option<&str>, status: Option<u16>) -> ErrorReason {
    match kind {
        FailureKind::Timeout => return ErrorReason::Timeout,
        FailureKind::Dispatch | FailureKind::Construction => return ErrorReason::Io,
        FailureKind::Response | FailureKind::Service => {}
    }
    match code {
        Some(
            "AccessDenied"
            | "AccessDeniedException"
            | "UnrecognizedClient"
            | "UnrecognizedClientException"
            | "InvalidClientTokenId"
            | "ExpiredToken"
            | "ExpiredTokenException"
            | "SignatureDoesNotMatch"
            | "MissingAuthenticationToken",
        ) => return ErrorReason::Auth,
        Some("Throttling" | "ThrottlingException" | "TooManyRequestsException") => {
            return ErrorReason::RateLimited
        }
        _ => {}
    }
    match status {
        Some(401 | 403) => ErrorReason::Auth,
        Some(429) => ErrorReason::RateLimited,
        Some(s) if (400..500).contains(&s) => ErrorReason::Http4xx,
        Some(s) if s >= 500 => ErrorReason::Http5xx,
        _ if kind == FailureKind::Response => ErrorReason::Parse,
        _ => ErrorReason::Io,
    }
}

/// Remove anything shaped like a secret access key or session token (long
/// base64 runs) from a message, as a last line of defence.
pub fn redact(msg: &str) -> String {
    static RE: std::sync::OnceLock<Option<regex::Regex>> = std::sync::OnceLock::new();
    match RE.get_or_init(|| regex::Regex::new(r"[A-Za-z0-9/+=]{40,}").ok()) {
        Some(re) => re.replace_all(msg, "[redacted]").into_owned(),
        None => msg.to_string(),
    }
}

/// A failed SDK call as a [`SourceError`].
pub fn sdk_error<E>(op: &str, e: SdkError<E, HttpResponse>) -> SourceError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let (kind, code, status, detail) = match &e {
        SdkError::TimeoutError(_) => (FailureKind::Timeout, None, None, None),
        SdkError::DispatchFailure(d) => (
            if d.is_timeout() {
                FailureKind::Timeout
            } else {
                FailureKind::Dispatch
            },
            None,
            None,
            None,
        ),
        SdkError::ConstructionFailure(_) => (FailureKind::Construction, None, None, None),
        SdkError::ResponseError(r) => (
            FailureKind::Response,
            None,
            Some(r.raw().status().as_u16()),
            None,
        ),
        SdkError::ServiceError(s) => (
            FailureKind::Service,
            s.err().code().map(str::to_string),
            Some(s.raw().status().as_u16()),
            Some(format!(
                "{}: {}",
                s.err().code().unwrap_or("unknown error"),
                s.err().message().unwrap_or("")
            )),
        ),
        _ => (FailureKind::Dispatch, None, None, None),
    };
    let reason = classify(kind, code.as_deref(), status);
    let detail = detail.unwrap_or_else(|| DisplayErrorContext(&e).to_string());
    let mut err = SourceError::new(reason, redact(&format!("{op}: {detail}")));
    if let Some(s) = status {
        err = err.with_status(s);
    }
    err
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_codes_and_statuses() {
        use ErrorReason::*;
        use FailureKind::*;
        for code in [
            "AccessDenied",
            "UnrecognizedClient",
            "InvalidClientTokenId",
            "ExpiredToken",
        ] {
            assert_eq!(classify(Service, Some(code), Some(403)), Auth, "{code}");
        }
        assert_eq!(
            classify(Service, Some("Throttling"), Some(400)),
            RateLimited
        );
        assert_eq!(
            classify(Service, Some("ThrottlingException"), Some(400)),
            RateLimited
        );
        assert_eq!(classify(Service, Some("NoSuchEntity"), Some(404)), Http4xx);
        assert_eq!(
            classify(Service, Some("ServiceFailure"), Some(500)),
            Http5xx
        );
        assert_eq!(classify(Response, None, Some(503)), Http5xx);
        assert_eq!(classify(Response, None, Some(200)), Parse);
        assert_eq!(classify(Dispatch, None, None), Io);
        assert_eq!(
            classify(FailureKind::Timeout, None, None),
            ErrorReason::Timeout
        );
    }

    #[test]
    fn canned_access_denied_is_auth() {
        use aws_sdk_iam::error::ErrorMetadata;
        use aws_sdk_iam::operation::get_account_authorization_details::GetAccountAuthorizationDetailsError;
        let err = GetAccountAuthorizationDetailsError::generic(
            ErrorMetadata::builder()
                .code("AccessDenied")
                .message("User: arn:aws:iam::123456789012:user/x is not authorized to perform: iam:GetAccountAuthorizationDetails")
                .build(),
        );
        let status = 403u16.try_into().expect("status");
        let raw = HttpResponse::new(status, "".into());
        let e = sdk_error(
            "GetAccountAuthorizationDetails",
            SdkError::service_error(err, raw),
        );
        assert_eq!(e.reason, ErrorReason::Auth);
        assert_eq!(e.status, Some(403));
        assert!(e
            .message
            .starts_with("GetAccountAuthorizationDetails: AccessDenied: User:"));
    }

    #[test]
    fn redacts_key_shaped_runs() {
        let m = redact("bad key wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY here");
        assert!(!m.contains("wJalrXUtnFEMI"));
        assert!(m.contains("[redacted]"));
        assert_eq!(
            redact("ListSecrets: ThrottlingException: Rate exceeded"),
            "ListSecrets: ThrottlingException: Rate exceeded"
        );
    }
}
