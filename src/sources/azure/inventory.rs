//! A tenant's objects, as read, turned into inventory scans: applications,
//! service principals and managed identities with their privilege and
//! credentials, the humans holding privileged roles, and Key Vault
//! secrets. Pure: no I/O.

use super::link::{client_secret_alias, PROVIDER};
use super::types::{DirectoryApp, GraphCredential, VaultSecretItem};
use crate::model::{CredentialState, InventoryScan, ObservedCredential, ObservedIdentity};
use crate::sources::rfc3339;
use std::collections::{BTreeMap, HashMap, HashSet};

/// The scope of the tenant's directory objects (Entra ID + RBAC).
pub const ENTRA_SCOPE: &str = "entra";

/// The tenants of Microsoft's own first-party applications: their service
/// principals in a customer tenant are not the customer's NHIs.
pub const MICROSOFT_TENANTS: [&str; 2] = [
    "f8cdef31-a31e-4b4a-93e4-5f571e91255a",
    "72f988bf-86f1-41af-91ab-2d7cd011db47",
];

/// The inventory scope of a Key Vault: `keyvault/<host>`.
pub fn vault_scope(vault_url: &str) -> String {
    let host = vault_url
        .split_once("://")
        .map_or(vault_url, |(_, r)| r)
        .trim_end_matches('/');
    format!("keyvault/{host}")
}

/// A privileged role held by a principal (directory or RBAC).
#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    pub principal_id: String,
    /// Whether the principal is a user (a human).
    pub user: bool,
    /// `directory role Global Administrator`, `rbac Owner on /subscriptions/…`.
    pub reason: String,
}

/// Last sign-ins, when the tenant's licence lets them be read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Activity {
    /// appId → last sign-in of its service principal (any flow).
    pub by_app: HashMap<String, i64>,
    /// credential keyId → its last sign-in.
    pub by_key: HashMap<String, i64>,
}

/// What the Entra and RBAC reads give.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Directory {
    pub applications: Vec<DirectoryApp>,
    pub service_principals: Vec<DirectoryApp>,
    /// Privileged grants (already filtered by policy).
    pub grants: Vec<Grant>,
    /// `None` when sign-in activity could not be read (not licensed).
    pub activity: Option<Activity>,
}

pub struct Settings<'a> {
    pub tenant: &'a str,
    pub observed_at: i64,
    pub team_tag: &'a str,
    /// Link ids of open leaks (`<appId>/<hint>` for client secrets).
    pub linked: &'a HashSet<String>,
}

/// `team:payments`, `team=payments` (Graph tags are plain strings).
fn tag_team(tags: &[String], key: &str) -> Option<String> {
    tags.iter().find_map(|t| {
        let (k, v) = t.split_once([':', '='])?;
        (k.trim().eq_ignore_ascii_case(key) && !v.trim().is_empty()).then(|| v.trim().to_string())
    })
}

/// The identity kind of a service principal.
pub fn sp_kind(sp: &DirectoryApp) -> &'static str {
    match sp.service_principal_type.as_deref() {
        Some("ManagedIdentity") => "managed_identity",
        _ => "service_principal",
    }
}

fn first_party(sp: &DirectoryApp) -> bool {
    sp.app_owner_organization_id
        .as_deref()
        .is_some_and(|o| MICROSOFT_TENANTS.contains(&o.to_ascii_lowercase().as_str()))
}

/// The Entra scope: every application and service principal (Microsoft's
/// own not counted unless privileged), their credentials, and the users
/// holding a privileged role.
pub fn entra_scan(s: &Settings<'_>, d: &Directory) -> InventoryScan {
    let mut privileged: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for g in &d.grants {
        privileged
            .entry(g.principal_id.as_str())
            .or_default()
            .push(g.reason.as_str());
    }
    let tracked = d.activity.is_some();
    let app_use = |app_id: &Option<String>| {
        let a = d.activity.as_ref()?;
        a.by_app
            .get(&app_id.as_deref()?.to_ascii_lowercase())
            .copied()
    };
    let mut identities = Vec::new();
    let mut credentials = Vec::new();
    // A service principal of the tenant's own application takes the
    // application's team (when it has no tag) and creation time (Graph
    // v1.0 does not declare `createdDateTime` on service principals).
    let mut push = |o: &DirectoryApp,
                    kind: &'static str,
                    reasons: Option<&Vec<&str>>,
                    app: Option<&(Option<String>, Option<i64>)>| {
        let team = tag_team(&o.tags, s.team_tag).or_else(|| app.and_then(|a| a.0.clone()));
        let mut reasons: Vec<&str> = reasons.cloned().unwrap_or_default();
        reasons.sort_unstable();
        reasons.dedup();
        identities.push(ObservedIdentity {
            provider: PROVIDER,
            account: s.tenant.to_string(),
            kind,
            id: o.id.clone(),
            name: o.display_name.clone().unwrap_or_default(),
            created_at: o
                .created_date_time
                .as_deref()
                .and_then(rfc3339)
                .or_else(|| app.and_then(|a| a.1)),
            last_used_at: app_use(&o.app_id),
            usage_tracked: tracked,
            team: team.clone(),
            privileged: (!reasons.is_empty()).then(|| reasons.join(", ")),
            // Active role assignments are held until removed.
            standing: !reasons.is_empty(),
            human: false,
        });
        for (c, ckind) in o
            .password_credentials
            .iter()
            .map(|c| (c, "client_secret"))
            .chain(o.key_credentials.iter().map(|c| (c, "certificate")))
        {
            if let Some(cred) = credential(s, d, o, c, ckind, team.clone()) {
                credentials.push(cred);
            }
        }
    };
    let mut apps: HashMap<String, (Option<String>, Option<i64>)> = HashMap::new();
    for a in &d.applications {
        if let Some(id) = a.app_id.as_deref() {
            let created = a.created_date_time.as_deref().and_then(rfc3339);
            apps.insert(
                id.to_ascii_lowercase(),
                (tag_team(&a.tags, s.team_tag), created),
            );
        }
        push(a, "application", privileged.get(a.id.as_str()), None);
    }
    for sp in &d.service_principals {
        let reasons = privileged.get(sp.id.as_str());
        if first_party(sp) && reasons.is_none() {
            continue;
        }
        let app = sp
            .app_id
            .as_deref()
            .and_then(|id| apps.get(&id.to_ascii_lowercase()));
        push(sp, sp_kind(sp), reasons, app);
    }
    let mut humans = HashSet::new();
    for g in d.grants.iter().filter(|g| g.user) {
        if humans.insert(g.principal_id.as_str()) {
            identities.push(ObservedIdentity {
                provider: PROVIDER,
                account: s.tenant.to_string(),
                kind: "user",
                id: format!("user:{}", g.principal_id),
                name: String::new(),
                created_at: None,
                last_used_at: None,
                usage_tracked: false,
                team: None,
                privileged: None,
                standing: false,
                human: true,
            });
        }
    }
    InventoryScan {
        scope: ENTRA_SCOPE.to_string(),
        observed_at: s.observed_at,
        identities,
        credentials,
    }
}

fn credential(
    s: &Settings<'_>,
    d: &Directory,
    owner: &DirectoryApp,
    c: &GraphCredential,
    kind: &'static str,
    team: Option<String>,
) -> Option<ObservedCredential> {
    let key_id = c.key_id.as_deref()?.to_ascii_lowercase();
    let start = c.start_date_time.as_deref().and_then(rfc3339);
    let end = c.end_date_time.as_deref().and_then(rfc3339);
    // An expired credential no longer signs anyone in.
    let state = if end.is_some_and(|e| e <= s.observed_at) {
        CredentialState::Inactive
    } else {
        CredentialState::Active
    };
    let aliases = match (kind, owner.app_id.as_deref(), c.hint.as_deref()) {
        ("client_secret", Some(app), Some(hint)) => {
            let a = client_secret_alias(app, hint);
            if s.linked.contains(&a) {
                vec![a]
            } else {
                Vec::new()
            }
        }
        _ => Vec::new(),
    };
    Some(ObservedCredential {
        provider: PROVIDER,
        account: s.tenant.to_string(),
        kind,
        id: key_id.clone(),
        identity: Some(owner.id.clone()),
        team,
        created_at: start,
        last_rotated_at: start,
        expires_at: end,
        last_used_at: d
            .activity
            .as_ref()
            .and_then(|a| a.by_key.get(&key_id).copied()),
        state,
        rotation_enabled: false,
        value_hashes: Vec::new(),
        aliases,
    })
}

/// A Key Vault secret as listed, with the keyed hash of its current value
/// (`match_values` only).
#[derive(Debug, Clone, PartialEq)]
pub struct VaultSecret {
    pub item: VaultSecretItem,
    pub value_hash: Option<[u8; 32]>,
}

/// The scope of one Key Vault: its secrets (current versions).
pub fn vault_scan(s: &Settings<'_>, vault_url: &str, secrets: &[VaultSecret]) -> InventoryScan {
    let credentials = secrets
        .iter()
        .map(|v| {
            let a = &v.item.attributes;
            ObservedCredential {
                provider: PROVIDER,
                account: s.tenant.to_string(),
                kind: "secret",
                // The secret's id without a version: stable across rotations.
                id: v.item.id.trim_end_matches('/').to_string(),
                identity: None,
                team: v
                    .item
                    .tags
                    .get(s.team_tag)
                    .filter(|t| !t.trim().is_empty())
                    .cloned(),
                // The list gives the current version's attributes: its
                // creation is the last rotation.
                created_at: a.created,
                last_rotated_at: a.created,
                expires_at: a.exp,
                last_used_at: None,
                state: if a.enabled == Some(false) {
                    CredentialState::Inactive
                } else {
                    CredentialState::Active
                },
                // Key Vault secrets have no rotation policy (only keys do).
                rotation_enabled: false,
                value_hashes: v.value_hash.into_iter().collect(),
                aliases: Vec::new(),
            }
        })
        .collect();
    InventoryScan {
        scope: vault_scope(vault_url),
        observed_at: s.observed_at,
        identities: Vec::new(),
        credentials,
    }
}
