//! The `iam` scope: users, roles and access keys of the account.
//!
//! Fetching ([`scan`]) is kept apart from the pure mapping
//! ([`AuthDetails`], [`privilege`], [`identities`], [`plan_keys`],
//! [`keys_from_listing`]), which the unit tests drive on fixtures.

use super::report::{self, ReportRow};
use super::{sdk_error, PROVIDER};
use crate::config::Policy;
use crate::model::{
    CredentialState, ErrorReason, InventoryScan, KnownCredential, ObservedCredential,
    ObservedIdentity, SourceError,
};
use crate::sources::{bounded, PollContext};
use aws_sdk_iam::types::{EntityType, ReportStateType, StatusType};
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// How many `ListAccessKeys` / `GetAccessKeyLastUsed` calls run at once.
const KEY_CONCURRENCY: usize = 8;

/// A user or role as `GetAccountAuthorizationDetails` describes it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Principal {
    pub name: String,
    pub id: String,
    pub arn: String,
    pub path: String,
    pub created_at: Option<i64>,
    /// Roles only: `RoleLastUsed.LastUsedDate`.
    pub last_used_at: Option<i64>,
    pub tags: Vec<(String, String)>,
    /// Inline policy documents (URL-encoded JSON).
    pub inline: Vec<String>,
    /// Attached managed policy ARNs.
    pub attached: Vec<String>,
    /// Users only: group names.
    pub groups: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Group {
    pub inline: Vec<String>,
    pub attached: Vec<String>,
}

/// Everything the `iam` scope needs from `GetAccountAuthorizationDetails`
/// (Filter User, Role, Group, LocalManagedPolicy), across its pages.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuthDetails {
    pub users: Vec<Principal>,
    pub roles: Vec<Principal>,
    pub groups: HashMap<String, Group>,
    /// Customer-managed policy ARN → its default version's document.
    pub local_policies: HashMap<String, String>,
}

fn secs(t: Option<&aws_sdk_iam::primitives::DateTime>) -> Option<i64> {
    t.map(|t| t.secs())
}

fn docs(list: &[aws_sdk_iam::types::PolicyDetail]) -> Vec<String> {
    list.iter()
        .filter_map(|p| p.policy_document().map(str::to_string))
        .collect()
}

fn arns(list: &[aws_sdk_iam::types::AttachedPolicy]) -> Vec<String> {
    list.iter()
        .filter_map(|p| p.policy_arn().map(str::to_string))
        .collect()
}

fn tags(list: &[aws_sdk_iam::types::Tag]) -> Vec<(String, String)> {
    list.iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect()
}

impl AuthDetails {
    /// Add one page of `GetAccountAuthorizationDetails`.
    pub fn absorb(
        &mut self,
        page: &aws_sdk_iam::operation::get_account_authorization_details::GetAccountAuthorizationDetailsOutput,
    ) {
        for u in page.user_detail_list() {
            self.users.push(Principal {
                name: u.user_name().unwrap_or_default().to_string(),
                id: u.user_id().unwrap_or_default().to_string(),
                arn: u.arn().unwrap_or_default().to_string(),
                path: u.path().unwrap_or("/").to_string(),
                created_at: secs(u.create_date()),
                last_used_at: None,
                tags: tags(u.tags()),
                inline: docs(u.user_policy_list()),
                attached: arns(u.attached_managed_policies()),
                groups: u.group_list().to_vec(),
            });
        }
        for r in page.role_detail_list() {
            self.roles.push(Principal {
                name: r.role_name().unwrap_or_default().to_string(),
                id: r.role_id().unwrap_or_default().to_string(),
                arn: r.arn().unwrap_or_default().to_string(),
                path: r.path().unwrap_or("/").to_string(),
                created_at: secs(r.create_date()),
                last_used_at: secs(r.role_last_used().and_then(|l| l.last_used_date())),
                tags: tags(r.tags()),
                inline: docs(r.role_policy_list()),
                attached: arns(r.attached_managed_policies()),
                groups: Vec::new(),
            });
        }
        for g in page.group_detail_list() {
            if let Some(name) = g.group_name() {
                self.groups.insert(
                    name.to_string(),
                    Group {
                        inline: docs(g.group_policy_list()),
                        attached: arns(g.attached_managed_policies()),
                    },
                );
            }
        }
        for p in page.policies() {
            let Some(arn) = p.arn() else { continue };
            let default = p.default_version_id();
            let doc = p
                .policy_version_list()
                .iter()
                .find(|v| {
                    v.is_default_version() || (default.is_some() && v.version_id() == default)
                })
                .and_then(|v| v.document());
            if let Some(doc) = doc {
                self.local_policies.insert(arn.to_string(), doc.to_string());
            }
        }
    }

    /// The AWS account id, from the first ARN.
    pub fn account(&self) -> Option<String> {
        self.users
            .iter()
            .chain(&self.roles)
            .find_map(|p| account_of(&p.arn))
    }
}

/// `arn:aws:iam::123456789012:user/x` → `123456789012`.
pub fn account_of(arn: &str) -> Option<String> {
    let a = arn.split(':').nth(4)?;
    (!a.is_empty()).then(|| a.to_string())
}

/// Service-linked roles are AWS's, not the account's: excluded.
pub fn is_service_linked(role: &Principal) -> bool {
    role.path.starts_with("/aws-service-role/")
}

/// Decode an IAM policy document (RFC 3986 URL-encoded JSON; plain JSON is
/// accepted too).
pub fn decode_document(doc: &str) -> Option<serde_json::Value> {
    let trimmed = doc.trim_start();
    if trimmed.starts_with('{') {
        return serde_json::from_str(trimmed).ok();
    }
    let bytes = doc.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    serde_json::from_slice(&out).ok()
}

fn has_star(v: Option<&serde_json::Value>) -> bool {
    match v {
        Some(serde_json::Value::String(s)) => s == "*",
        Some(serde_json::Value::Array(a)) => a.iter().any(|x| x.as_str() == Some("*")),
        _ => false,
    }
}

/// Whether a policy document has an `Allow` statement of action `*` on
/// resource `*` (Statement, Action and Resource as a string or a list;
/// `NotAction` never counts).
pub fn allows_everything(doc: &serde_json::Value) -> bool {
    let statements: Vec<&serde_json::Value> = match doc.get("Statement") {
        Some(serde_json::Value::Array(a)) => a.iter().collect(),
        Some(s @ serde_json::Value::Object(_)) => vec![s],
        _ => Vec::new(),
    };
    statements.iter().any(|s| {
        s.get("Effect").and_then(|e| e.as_str()) == Some("Allow")
            && has_star(s.get("Action"))
            && has_star(s.get("Resource"))
    })
}

fn doc_is_admin(doc: &str) -> bool {
    decode_document(doc).is_some_and(|d| allows_everything(&d))
}

fn policy_name(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

/// Why a principal is admin-equivalent: a managed policy of
/// `privileged_arns` held directly or through a group (reason: the policy
/// name), else an inline policy, a group's inline policy or an attached
/// customer-managed policy (default version) allowing `*` on `*`
/// (reason `statement */*`).
pub fn privilege(p: &Principal, d: &AuthDetails, privileged_arns: &[String]) -> Option<String> {
    let groups: Vec<&Group> = p.groups.iter().filter_map(|g| d.groups.get(g)).collect();
    let attached: Vec<&String> = p
        .attached
        .iter()
        .chain(groups.iter().flat_map(|g| g.attached.iter()))
        .collect();
    for want in privileged_arns {
        if attached.contains(&want) {
            return Some(policy_name(want).to_string());
        }
    }
    let inline_admin = p
        .inline
        .iter()
        .chain(groups.iter().flat_map(|g| g.inline.iter()))
        .any(|doc| doc_is_admin(doc));
    let managed_admin = attached
        .iter()
        .filter_map(|a| d.local_policies.get(*a))
        .any(|doc| doc_is_admin(doc));
    (inline_admin || managed_admin).then(|| "statement */*".to_string())
}

fn team_of(p: &Principal, team_tag: &str) -> Option<String> {
    p.tags
        .iter()
        .find(|(k, _)| k == team_tag)
        .map(|(_, v)| v.clone())
}

/// Users and roles as identities; service-linked roles are left out.
pub fn identities(
    d: &AuthDetails,
    account: &str,
    report: &HashMap<String, ReportRow>,
    policy: &Policy,
) -> Vec<ObservedIdentity> {
    let arns = &policy.privileged.aws_policies;
    let mut out = Vec::with_capacity(d.users.len() + d.roles.len());
    for u in &d.users {
        let row = report.get(&u.name);
        let privileged = privilege(u, d, arns);
        out.push(ObservedIdentity {
            provider: PROVIDER,
            account: account.to_string(),
            kind: "user",
            id: u.id.clone(),
            name: u.name.clone(),
            created_at: u.created_at,
            last_used_at: row.and_then(ReportRow::last_used),
            usage_tracked: true,
            team: team_of(u, &policy.team_tag),
            standing: privileged.is_some(),
            privileged,
            human: row.is_some_and(|r| r.password_enabled),
        });
    }
    for r in d.roles.iter().filter(|r| !is_service_linked(r)) {
        let privileged = privilege(r, d, arns);
        out.push(ObservedIdentity {
            provider: PROVIDER,
            account: account.to_string(),
            kind: "role",
            id: r.id.clone(),
            name: r.name.clone(),
            created_at: r.created_at,
            last_used_at: r.last_used_at,
            usage_tracked: true,
            team: team_of(r, &policy.team_tag),
            standing: privileged.is_some(),
            privileged,
            human: false,
        });
    }
    out
}

fn access_key(
    id: String,
    user: &Principal,
    team: Option<String>,
    created_at: Option<i64>,
    last_used_at: Option<i64>,
    state: CredentialState,
) -> ObservedCredential {
    ObservedCredential {
        provider: PROVIDER,
        account: account_of(&user.arn).unwrap_or_default(),
        kind: "access_key",
        id,
        identity: Some(user.id.clone()),
        team,
        created_at,
        last_rotated_at: created_at,
        expires_at: None,
        last_used_at,
        state,
        rotation_enabled: false,
        value_hashes: Vec::new(),
        aliases: Vec::new(),
    }
}

fn slot_state(active: bool) -> CredentialState {
    if active {
        CredentialState::Active
    } else {
        CredentialState::Inactive
    }
}

/// What to do about one user's access keys.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyPlan {
    /// The report's slots match the keys already known: no call.
    Known(Vec<ObservedCredential>),
    /// Something changed (or a key is linked to a leak): `ListAccessKeys`.
    List,
}

/// Decide whether a user's keys need `ListAccessKeys`: they do not when
/// the report's slots (creation time, active flag) are exactly the known,
/// non-deleted keys of that user (same creation times and states), and no
/// key of the user is linked to a leak.
pub fn plan_keys(
    user: &Principal,
    team: Option<String>,
    row: Option<&ReportRow>,
    known: &[&KnownCredential],
    linked: bool,
) -> KeyPlan {
    if linked {
        return KeyPlan::List;
    }
    let Some(row) = row else {
        // Not in the report (created after it): only trust "no keys".
        return if known.is_empty() {
            KeyPlan::Known(Vec::new())
        } else {
            KeyPlan::List
        };
    };
    if row.keys.len() != known.len() {
        return KeyPlan::List;
    }
    let mut pool: Vec<&KnownCredential> = known.to_vec();
    let mut out = Vec::with_capacity(row.keys.len());
    for slot in &row.keys {
        let state = slot_state(slot.active);
        let Some(pos) = pool
            .iter()
            .position(|k| k.created_at == Some(slot.last_rotated) && k.state == state)
        else {
            return KeyPlan::List;
        };
        let k = pool.swap_remove(pos);
        out.push(access_key(
            k.id.clone(),
            user,
            team.clone(),
            Some(slot.last_rotated),
            slot.last_used,
            state,
        ));
    }
    KeyPlan::Known(out)
}

/// A key as `ListAccessKeys` returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedKey {
    pub id: String,
    pub active: bool,
    pub created_at: Option<i64>,
}

/// Credentials of a listed user. Last use comes from the report slot
/// created at the key's creation time; the indexes of keys without such a
/// slot are returned for a `GetAccessKeyLastUsed`.
pub fn keys_from_listing(
    user: &Principal,
    team: Option<String>,
    listed: &[ListedKey],
    row: Option<&ReportRow>,
) -> (Vec<ObservedCredential>, Vec<usize>) {
    let mut out = Vec::with_capacity(listed.len());
    let mut missing = Vec::new();
    for (i, k) in listed.iter().enumerate() {
        let slot = row.and_then(|r| r.keys.iter().find(|s| Some(s.last_rotated) == k.created_at));
        if slot.is_none() {
            missing.push(i);
        }
        out.push(access_key(
            k.id.clone(),
            user,
            team.clone(),
            k.created_at,
            slot.and_then(|s| s.last_used),
            slot_state(k.active),
        ));
    }
    (out, missing)
}

// ---------------------------------------------------------------- fetching

fn check_deadline(ctx: &PollContext, what: &str) -> Result<(), SourceError> {
    if std::time::Instant::now() >= ctx.deadline {
        return Err(SourceError::new(
            ErrorReason::Timeout,
            format!("iam: deadline reached during {what}"),
        ));
    }
    Ok(())
}

async fn fetch_details(client: &aws_sdk_iam::Client) -> Result<AuthDetails, SourceError> {
    let mut d = AuthDetails::default();
    let mut marker: Option<String> = None;
    for _ in 0..100_000 {
        let page = client
            .get_account_authorization_details()
            .filter(EntityType::User)
            .filter(EntityType::Role)
            .filter(EntityType::Group)
            .filter(EntityType::LocalManagedPolicy)
            .max_items(1000)
            .set_marker(marker.take())
            .send()
            .await
            .map_err(|e| sdk_error("GetAccountAuthorizationDetails", e))?;
        d.absorb(&page);
        match page.marker() {
            Some(m) if page.is_truncated() => marker = Some(m.to_string()),
            _ => return Ok(d),
        }
    }
    Err(SourceError::new(
        ErrorReason::Parse,
        "GetAccountAuthorizationDetails: pagination does not end",
    ))
}

async fn fetch_report(
    client: &aws_sdk_iam::Client,
    ctx: &PollContext,
) -> Result<HashMap<String, ReportRow>, SourceError> {
    loop {
        let g = client
            .generate_credential_report()
            .send()
            .await
            .map_err(|e| sdk_error("GenerateCredentialReport", e))?;
        if g.state() == Some(&ReportStateType::Complete) {
            break;
        }
        check_deadline(ctx, "GenerateCredentialReport")?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        check_deadline(ctx, "GenerateCredentialReport")?;
    }
    let r = client
        .get_credential_report()
        .send()
        .await
        .map_err(|e| sdk_error("GetCredentialReport", e))?;
    let content = r.content().map(|b| b.as_ref()).unwrap_or_default();
    report::parse(content).map_err(|m| SourceError::new(ErrorReason::Parse, m))
}

async fn list_keys(
    client: aws_sdk_iam::Client,
    user: String,
) -> Result<Vec<ListedKey>, SourceError> {
    let mut out = Vec::new();
    let mut marker: Option<String> = None;
    for _ in 0..10_000 {
        let page = client
            .list_access_keys()
            .user_name(&user)
            .set_marker(marker.take())
            .send()
            .await
            .map_err(|e| sdk_error("ListAccessKeys", e))?;
        for k in page.access_key_metadata() {
            let Some(id) = k.access_key_id() else {
                continue;
            };
            out.push(ListedKey {
                id: id.to_string(),
                // Expired (and anything else) counts as inactive.
                active: k.status() == Some(&StatusType::Active),
                created_at: secs(k.create_date()),
            });
        }
        match page.marker() {
            Some(m) if page.is_truncated() => marker = Some(m.to_string()),
            _ => return Ok(out),
        }
    }
    Err(SourceError::new(
        ErrorReason::Parse,
        "ListAccessKeys: pagination does not end",
    ))
}

async fn key_last_used(
    client: aws_sdk_iam::Client,
    key: String,
) -> Result<Option<i64>, SourceError> {
    let r = client
        .get_access_key_last_used()
        .access_key_id(key)
        .send()
        .await
        .map_err(|e| sdk_error("GetAccessKeyLastUsed", e))?;
    Ok(secs(
        r.access_key_last_used().and_then(|l| l.last_used_date()),
    ))
}

/// The complete `iam` inventory. Calls: the authorization-details pages,
/// the credential report (generate until complete, get), `ListAccessKeys`
/// only for users whose report slots differ from the known keys (or who
/// own a leak-linked key), `GetAccessKeyLastUsed` only for listed keys
/// missing from the report.
pub async fn scan(
    client: &aws_sdk_iam::Client,
    ctx: &PollContext,
    scope: &str,
    account: Option<&str>,
) -> Result<InventoryScan, SourceError> {
    let details = fetch_details(client).await?;
    let report = fetch_report(client, ctx).await?;
    let account = account
        .map(str::to_string)
        .or_else(|| details.account())
        .or_else(|| report.values().find_map(|r| account_of(&r.arn)))
        .unwrap_or_else(|| "unknown".to_string());
    let identities = identities(&details, &account, &report, &ctx.policy);

    let mut known: HashMap<&str, Vec<&KnownCredential>> = HashMap::new();
    // This scope's keys only: under `organization` each account is a scope.
    let mine = ctx.known_credentials.iter().filter(|k| k.scope == scope);
    for k in mine.clone() {
        if k.kind == "access_key" {
            if let Some(owner) = k.identity.as_deref() {
                known.entry(owner).or_default().push(k);
            }
        }
    }
    let linked_owners: HashSet<&str> = mine
        .filter(|k| k.kind == "access_key" && ctx.linked_credentials.contains(&k.id))
        .filter_map(|k| k.identity.as_deref())
        .collect();

    let mut credentials = Vec::new();
    let mut to_list: Vec<&Principal> = Vec::new();
    for u in &details.users {
        let team = team_of(u, &ctx.policy.team_tag);
        let mine = known.get(u.id.as_str()).map(Vec::as_slice).unwrap_or(&[]);
        match plan_keys(
            u,
            team,
            report.get(&u.name),
            mine,
            linked_owners.contains(u.id.as_str()),
        ) {
            KeyPlan::Known(creds) => credentials.extend(creds),
            KeyPlan::List => to_list.push(u),
        }
    }
    check_deadline(ctx, "ListAccessKeys")?;
    let listings = bounded(
        KEY_CONCURRENCY,
        to_list.iter().map(|u| u.name.clone()).collect(),
        |name| list_keys(client.clone(), name),
    )
    .await?;
    let mut lookups: Vec<(usize, String)> = Vec::new();
    for (u, listed) in to_list.iter().zip(listings) {
        let team = team_of(u, &ctx.policy.team_tag);
        let (creds, missing) = keys_from_listing(u, team, &listed, report.get(&u.name));
        let base = credentials.len();
        for i in missing {
            lookups.push((base + i, listed[i].id.clone()));
        }
        credentials.extend(creds);
    }
    if !lookups.is_empty() {
        check_deadline(ctx, "GetAccessKeyLastUsed")?;
        let used = bounded(
            KEY_CONCURRENCY,
            lookups.iter().map(|(_, id)| id.clone()).collect(),
            |id| key_last_used(client.clone(), id),
        )
        .await?;
        for ((idx, _), last) in lookups.iter().zip(used) {
            if let Some(c) = credentials.get_mut(*idx) {
                c.last_used_at = last;
            }
        }
    }
    Ok(InventoryScan {
        scope: scope.to_string(),
        observed_at: ctx.now,
        identities,
        credentials,
    })
}

#[cfg(test)]
#[path = "iam_tests.rs"]
mod tests;
