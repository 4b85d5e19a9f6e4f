//! Projects, as read, turned into inventory scans: service accounts and
//! their privilege, their USER_MANAGED keys, Secret Manager secrets, and
//! the `user:` members of the IAM policies read. Pure: no I/O.

use super::key::{key_id, PROVIDER};
use crate::model::{
    target_item, CredentialState, InventoryScan, ObservationItem, ObservedCredential,
    ObservedIdentity, SourceError,
};
use std::collections::{BTreeSet, HashMap};

/// The scope of the `user:` members of every policy read.
pub const HUMANS_SCOPE: &str = "humans/all";
/// `validBeforeTime` at or after this (9999-01-01) is Google's "never
/// expires" (`9999-12-31T23:59:59Z`).
pub const NEVER_EXPIRES: i64 = 253_370_764_800;

/// The inventory scope of a project's IAM (service accounts, keys): its id.
pub fn iam_scope(project: &str) -> String {
    project.to_string()
}

/// The inventory scope of a project's Secret Manager secrets.
pub fn secrets_scope(project: &str) -> String {
    format!("{project}/secretmanager")
}

/// A project, as Resource Manager returns it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Project {
    /// `acme-prod`: the `account` and `scope` label of what it holds.
    pub id: String,
    /// Its `policy.team_tag` label: the team of its accounts and keys.
    pub team: Option<String>,
}

/// A USER_MANAGED key of a service account.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Key {
    /// `projects/p/serviceAccounts/e/keys/<id>`.
    pub name: String,
    pub valid_after: Option<i64>,
    pub valid_before: Option<i64>,
    pub disabled: bool,
}

/// A service account of the project, with its keys.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ServiceAccount {
    pub email: String,
    pub unique_id: String,
    pub disabled: bool,
    pub keys: Vec<Key>,
}

/// One binding of an IAM policy, on the project or one of its ancestors.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Binding {
    /// `project acme-prod`, `folders/123`, `organizations/456`.
    pub on: String,
    pub role: String,
    pub members: Vec<String>,
    /// The binding has a condition (e.g. an expiry): not standing.
    pub conditional: bool,
}

/// Last authentication times from Policy Analyzer.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Activity {
    /// Key id → last authentication.
    pub keys: HashMap<String, i64>,
    /// Account unique id or email → last authentication.
    pub accounts: HashMap<String, i64>,
}

/// What a project's IAM gives.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Iam {
    pub accounts: Vec<ServiceAccount>,
    /// The project's bindings and its ancestors'.
    pub bindings: Vec<Binding>,
    /// `None` unless `activity: true`.
    pub activity: Option<Activity>,
}

/// A Secret Manager secret with its versions.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Secret {
    /// `projects/<number>/secrets/<id>`.
    pub name: String,
    pub created_at: Option<i64>,
    /// Its `policy.team_tag` label.
    pub team: Option<String>,
    pub next_rotation: Option<i64>,
    pub expires_at: Option<i64>,
    /// (createTime, ENABLED) of every version.
    pub versions: Vec<(Option<i64>, bool)>,
}

/// What one project gives: each part may fail alone.
#[derive(Debug, Clone)]
pub struct ProjectData {
    pub project: Project,
    pub iam: Result<Iam, SourceError>,
    pub secrets: Result<Vec<Secret>, SourceError>,
}

/// How the inventory is built.
pub struct Settings<'a> {
    /// `policy.privileged.gcp_roles`.
    pub privileged_roles: &'a [String],
    pub observed_at: i64,
}

/// Why an account is admin-equivalent: its privileged bindings, an
/// unconditional one first (`(reason, standing)`).
fn privilege(s: &Settings<'_>, bindings: &[&Binding]) -> Option<(String, bool)> {
    let mut found: Option<(String, bool)> = None;
    for b in bindings {
        if !s.privileged_roles.contains(&b.role) {
            continue;
        }
        let reason = format!(
            "{} on {}{}",
            b.role,
            b.on,
            if b.conditional { " (conditional)" } else { "" }
        );
        if !b.conditional {
            return Some((reason, true));
        }
        found.get_or_insert((reason, false));
    }
    found
}

/// The identities and keys of one project.
pub fn iam_scan(s: &Settings<'_>, project: &Project, iam: &Iam) -> InventoryScan {
    // `serviceAccount:<email>` → the bindings naming it.
    let mut by_member: HashMap<&str, Vec<&Binding>> = HashMap::new();
    for b in &iam.bindings {
        for m in &b.members {
            if let Some(email) = m.strip_prefix("serviceAccount:") {
                by_member.entry(email).or_default().push(b);
            }
        }
    }
    let mut scan = InventoryScan {
        scope: iam_scope(&project.id),
        observed_at: s.observed_at,
        identities: Vec::new(),
        credentials: Vec::new(),
    };
    let activity = iam.activity.as_ref();
    for a in &iam.accounts {
        let mut last_used = activity.and_then(|x| {
            x.accounts
                .get(&a.unique_id)
                .or_else(|| x.accounts.get(&a.email))
                .copied()
        });
        for k in &a.keys {
            let id = key_id(&k.name).to_string();
            let used = activity.and_then(|x| x.keys.get(&id).copied());
            last_used = last_used.max(used);
            let expires_at = k.valid_before.filter(|t| *t < NEVER_EXPIRES);
            // A key stops working when it is disabled, past its
            // validBeforeTime, or its account is disabled.
            let usable = !k.disabled && !a.disabled && expires_at.is_none_or(|t| t > s.observed_at);
            scan.credentials.push(ObservedCredential {
                provider: PROVIDER,
                account: project.id.clone(),
                kind: "sa_key",
                id,
                identity: Some(a.unique_id.clone()),
                team: project.team.clone(),
                created_at: k.valid_after,
                last_rotated_at: k.valid_after,
                expires_at,
                last_used_at: used,
                state: if usable {
                    CredentialState::Active
                } else {
                    CredentialState::Inactive
                },
                rotation_enabled: false,
                value_hashes: Vec::new(),
                aliases: Vec::new(),
            });
        }
        let bindings = by_member.get(a.email.as_str()).cloned().unwrap_or_default();
        let privileged = privilege(s, &bindings);
        scan.identities.push(ObservedIdentity {
            provider: PROVIDER,
            account: project.id.clone(),
            kind: "service_account",
            id: a.unique_id.clone(),
            name: a.email.clone(),
            // IAM gives no creation time: the oldest key is the best bound.
            created_at: a.keys.iter().filter_map(|k| k.valid_after).min(),
            last_used_at: last_used,
            usage_tracked: activity.is_some(),
            team: project.team.clone(),
            standing: privileged.as_ref().is_some_and(|p| p.1),
            privileged: privileged.map(|p| p.0),
            human: false,
        });
    }
    scan
}

/// The secrets of one project. Values are never read: age is the newest
/// ENABLED version's creation.
pub fn secrets_scan(s: &Settings<'_>, project: &Project, secrets: &[Secret]) -> InventoryScan {
    let credentials = secrets
        .iter()
        .map(|x| {
            let newest = x
                .versions
                .iter()
                .filter(|(_, enabled)| *enabled)
                .filter_map(|(t, _)| *t)
                .max();
            let enabled = x.versions.iter().any(|(_, e)| *e);
            ObservedCredential {
                provider: PROVIDER,
                account: project.id.clone(),
                kind: "secret",
                id: x.name.clone(),
                identity: None,
                team: x.team.clone().or_else(|| project.team.clone()),
                created_at: x.created_at,
                last_rotated_at: newest.or(x.created_at),
                expires_at: x.expires_at,
                last_used_at: None,
                state: if enabled {
                    CredentialState::Active
                } else {
                    CredentialState::Inactive
                },
                // The rotation block only schedules notifications: it counts
                // while its next time is not overdue (someone acts on it).
                rotation_enabled: x.next_rotation.is_some_and(|t| t >= s.observed_at),
                value_hashes: Vec::new(),
                aliases: Vec::new(),
            }
        })
        .collect();
    InventoryScan {
        scope: secrets_scope(&project.id),
        observed_at: s.observed_at,
        identities: Vec::new(),
        credentials,
    }
}

/// The `user:` members of the policies read: humans, counted for the
/// NHI:human ratio (once, however many projects bind them).
fn humans(s: &Settings<'_>, bindings: &[&Binding]) -> InventoryScan {
    let users: BTreeSet<&str> = bindings
        .iter()
        .flat_map(|b| b.members.iter())
        .filter_map(|m| m.strip_prefix("user:"))
        .collect();
    InventoryScan {
        scope: HUMANS_SCOPE.to_string(),
        observed_at: s.observed_at,
        identities: users
            .into_iter()
            .map(|u| ObservedIdentity {
                provider: PROVIDER,
                account: String::new(),
                kind: "user",
                id: format!("user:{u}"),
                name: u.to_string(),
                created_at: None,
                last_used_at: None,
                usage_tracked: false,
                team: None,
                privileged: None,
                standing: false,
                human: true,
            })
            .collect(),
        credentials: Vec::new(),
    }
}

/// The observations of one poll: per project its IAM scope and its
/// Secret Manager scope (each failed alone), the humans (unless a
/// project's IAM failed), and the list of every scope.
pub fn observations(
    s: &Settings<'_>,
    projects: &[ProjectData],
) -> Result<Vec<ObservationItem>, SourceError> {
    let mut out = Vec::new();
    let mut scopes = vec![HUMANS_SCOPE.to_string()];
    let mut bindings: Vec<&Binding> = Vec::new();
    let mut humans_failed = false;
    for p in projects {
        let id = &p.project.id;
        scopes.push(iam_scope(id));
        scopes.push(secrets_scope(id));
        match &p.iam {
            Ok(iam) => {
                bindings.extend(iam.bindings.iter());
                out.push(ObservationItem::Inventory(iam_scan(s, &p.project, iam)));
            }
            Err(e) => {
                humans_failed = true;
                out.push(target_item(iam_scope(id), Err(e.clone()))?);
            }
        }
        out.push(match &p.secrets {
            Ok(secrets) => ObservationItem::Inventory(secrets_scan(s, &p.project, secrets)),
            Err(e) => target_item(secrets_scope(id), Err(e.clone()))?,
        });
    }
    // Not sent while any project's IAM failed: listed in the scopes, the
    // humans then keep their state (a partial set would drop people),
    // without a second error for the same failure.
    if !humans_failed {
        out.insert(0, ObservationItem::Inventory(humans(s, &bindings)));
    }
    out.push(ObservationItem::InventoryScopes(scopes));
    Ok(out)
}
