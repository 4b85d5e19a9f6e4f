//! A cluster's objects, as read, turned into inventory scans: service
//! accounts and their privilege, legacy token Secrets, leaked bound tokens,
//! and the human subjects of bindings. Pure: no I/O.

use super::token::{bound_token_id, legacy_token_id, parse_bound_token_id, PROVIDER};
use crate::model::{
    target_item, CredentialState, InventoryScan, ObservationItem, ObservedCredential,
    ObservedIdentity, SourceError,
};
use std::collections::{BTreeMap, HashMap, HashSet};

/// The scope of the human subjects of bindings.
pub const CLUSTER_SCOPE: &str = "cluster";

/// The inventory scope of a namespace.
pub fn namespace_scope(ns: &str) -> String {
    format!("ns/{ns}")
}

/// A service account, as listed.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceAccount {
    pub name: String,
    pub uid: String,
    pub created_at: Option<i64>,
    /// Its `policy.team_tag` label.
    pub team: Option<String>,
}

/// A `kubernetes.io/service-account-token` Secret, from its metadata only.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenSecret {
    pub name: String,
    pub created_at: Option<i64>,
    /// Annotations `kubernetes.io/service-account.name` and `.uid`.
    pub sa_name: Option<String>,
    pub sa_uid: Option<String>,
    /// Label `kubernetes.io/legacy-token-last-used` (a date), as unix time.
    pub last_used_at: Option<i64>,
    /// Label `kubernetes.io/legacy-token-invalid-since` is set: the API
    /// server rejects the token.
    pub invalid: bool,
}

/// A subject of a binding.
#[derive(Debug, Clone, PartialEq)]
pub struct Subject {
    /// `ServiceAccount`, `User`, `Group`.
    pub kind: String,
    pub name: String,
    pub namespace: Option<String>,
}

/// A ClusterRoleBinding (`namespace` None) or RoleBinding.
#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    pub namespace: Option<String>,
    pub name: String,
    /// `ClusterRole` or `Role`.
    pub role_kind: String,
    pub role_name: String,
    pub subjects: Vec<Subject>,
}

/// What one namespace holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Namespace {
    pub service_accounts: Vec<ServiceAccount>,
    pub token_secrets: Vec<TokenSecret>,
    /// Names of service accounts a pod that has not ended runs as.
    pub used: HashSet<String>,
    pub role_bindings: Vec<Binding>,
    /// Roles by name: whether one grants verb `*` on resource `*`.
    pub roles: HashMap<String, bool>,
}

/// What the cluster-scoped reads give.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cluster {
    /// ClusterRoles by name: whether one grants verb `*` on resource `*`.
    pub cluster_roles: HashMap<String, bool>,
    pub cluster_role_bindings: Vec<Binding>,
    /// Namespaces' `policy.team_tag` label.
    pub namespace_teams: HashMap<String, String>,
}

/// How the inventory is built.
pub struct Settings<'a> {
    pub cluster_name: &'a str,
    /// `policy.privileged.kubernetes_roles`.
    pub privileged_roles: &'a [String],
    pub observed_at: i64,
    /// Ids of credentials linked to leaks not yet confirmed revoked.
    pub linked: &'a HashSet<String>,
}

/// The bindings naming each service account, directly or through its
/// groups: built once, so privilege costs a lookup per service account, not
/// a pass over every binding.
struct Subjects<'a> {
    /// (namespace, name) of a `ServiceAccount` subject → its bindings.
    accounts: HashMap<(&'a str, &'a str), Vec<&'a Binding>>,
    /// `system:serviceaccounts[:<ns>]` → its bindings.
    groups: HashMap<&'a str, Vec<&'a Binding>>,
}

impl<'a> Subjects<'a> {
    fn new(bindings: &[&'a Binding]) -> Self {
        let mut accounts: HashMap<(&str, &str), Vec<&Binding>> = HashMap::new();
        let mut groups: HashMap<&str, Vec<&Binding>> = HashMap::new();
        for b in bindings {
            for x in &b.subjects {
                match x.kind.as_str() {
                    "ServiceAccount" => {
                        if let Some(ns) = x.namespace.as_deref().or(b.namespace.as_deref()) {
                            accounts.entry((ns, x.name.as_str())).or_default().push(b);
                        }
                    }
                    "Group" if x.name.starts_with("system:serviceaccounts") => {
                        groups.entry(x.name.as_str()).or_default().push(b);
                    }
                    _ => {}
                }
            }
        }
        Self { accounts, groups }
    }

    /// The bindings of a service account, ClusterRoleBindings first.
    fn of(&self, ns: &str, sa: &str) -> Vec<&'a Binding> {
        let group_ns = format!("system:serviceaccounts:{ns}");
        let mut v: Vec<&Binding> = self
            .accounts
            .get(&(ns, sa))
            .into_iter()
            .chain(self.groups.get("system:serviceaccounts"))
            .chain(self.groups.get(group_ns.as_str()))
            .flatten()
            .copied()
            .collect();
        v.sort_by_key(|b| b.namespace.is_some());
        v
    }
}

/// Why a service account is admin-equivalent, given its bindings.
fn privilege(
    s: &Settings<'_>,
    cluster: &Cluster,
    bindings: &[&Binding],
    roles: &HashMap<(&str, &str), bool>,
) -> Option<String> {
    for b in bindings {
        let named = b.role_name == "cluster-admin" || s.privileged_roles.contains(&b.role_name);
        let wildcard = match (b.role_kind.as_str(), b.namespace.as_deref()) {
            ("ClusterRole", _) => cluster.cluster_roles.get(&b.role_name) == Some(&true),
            ("Role", Some(bns)) => roles.get(&(bns, b.role_name.as_str())) == Some(&true),
            _ => false,
        };
        if named || wildcard {
            let grant = if named { "" } else { " (* on *)" };
            return Some(match &b.namespace {
                None => format!(
                    "ClusterRoleBinding {} → ClusterRole {}{grant}",
                    b.name, b.role_name
                ),
                Some(bns) => format!(
                    "RoleBinding {bns}/{} → {} {}{grant}",
                    b.name, b.role_kind, b.role_name
                ),
            });
        }
    }
    None
}

/// The observations of one poll: the human subjects (scope `cluster`),
/// one complete inventory per readable namespace, a failed target per
/// unreadable one, and the list of every scope (a namespace gone is
/// retired).
pub fn observations(
    s: &Settings<'_>,
    cluster: &Cluster,
    namespaces: BTreeMap<String, Result<Namespace, SourceError>>,
) -> Result<Vec<ObservationItem>, SourceError> {
    let readable: Vec<(&str, &Namespace)> = namespaces
        .iter()
        .filter_map(|(n, r)| r.as_ref().ok().map(|d| (n.as_str(), d)))
        .collect();
    let bindings: Vec<&Binding> = cluster
        .cluster_role_bindings
        .iter()
        .chain(readable.iter().flat_map(|(_, d)| d.role_bindings.iter()))
        .collect();
    let roles: HashMap<(&str, &str), bool> = readable
        .iter()
        .flat_map(|(n, d)| d.roles.iter().map(move |(r, w)| ((*n, r.as_str()), *w)))
        .collect();
    // Leaked bound tokens, by the uid of their service account.
    let mut bound: HashMap<&str, Vec<(&str, i64)>> = HashMap::new();
    for id in s.linked {
        if let Some((uid, exp)) = parse_bound_token_id(id) {
            bound.entry(uid).or_default().push((id.as_str(), exp));
        }
    }
    let subjects = Subjects::new(&bindings);
    let in_use_at = s.observed_at - s.observed_at.rem_euclid(3600);
    let mut out = vec![ObservationItem::Inventory(humans(s, &bindings))];
    let mut scopes = vec![CLUSTER_SCOPE.to_string()];
    for (ns, data) in &namespaces {
        let scope = namespace_scope(ns);
        scopes.push(scope.clone());
        let data = match data {
            Ok(d) => d,
            Err(error) => {
                out.push(target_item(scope, Err(error.clone()))?);
                continue;
            }
        };
        let ns_team = cluster.namespace_teams.get(ns);
        let mut scan = InventoryScan {
            scope,
            observed_at: s.observed_at,
            identities: Vec::new(),
            credentials: Vec::new(),
        };
        let by_name: HashMap<&str, &ServiceAccount> = data
            .service_accounts
            .iter()
            .map(|a| (a.name.as_str(), a))
            .collect();
        for t in &data.token_secrets {
            let owner = t.sa_name.as_deref().and_then(|n| by_name.get(n));
            let uid = t.sa_uid.clone().unwrap_or_default();
            let owned = owner.is_some_and(|a| a.uid == uid);
            let team = owner
                .and_then(|a| a.team.clone())
                .or_else(|| ns_team.cloned());
            scan.credentials.push(ObservedCredential {
                provider: PROVIDER,
                account: s.cluster_name.to_string(),
                kind: "legacy_token",
                id: legacy_token_id(ns, &t.name, &uid),
                identity: owned.then(|| uid.clone()),
                team,
                created_at: t.created_at,
                last_rotated_at: t.created_at,
                expires_at: None,
                last_used_at: t.last_used_at,
                // The API server accepts a legacy token while its Secret
                // exists, is not labelled invalid and its service account
                // is the one it was issued to.
                state: if owned && !t.invalid {
                    CredentialState::Active
                } else {
                    CredentialState::Inactive
                },
                rotation_enabled: false,
                value_hashes: Vec::new(),
                aliases: Vec::new(),
            });
        }
        // The latest legacy-token use of each service account (by uid).
        let mut token_use: HashMap<&str, i64> = HashMap::new();
        for t in &data.token_secrets {
            if let (Some(uid), Some(u)) = (t.sa_uid.as_deref(), t.last_used_at) {
                let e = token_use.entry(uid).or_insert(u);
                *e = (*e).max(u);
            }
        }
        for a in &data.service_accounts {
            let team = a.team.clone().or_else(|| ns_team.cloned());
            let token_use = token_use.get(a.uid.as_str()).copied();
            let pod_use = data.used.contains(&a.name).then_some(in_use_at);
            let privileged = privilege(s, cluster, &subjects.of(ns, &a.name), &roles);
            scan.identities.push(ObservedIdentity {
                provider: PROVIDER,
                account: s.cluster_name.to_string(),
                kind: "service_account",
                id: a.uid.clone(),
                name: format!("{ns}/{}", a.name),
                created_at: a.created_at,
                last_used_at: pod_use.max(token_use),
                usage_tracked: true,
                team: team.clone(),
                standing: privileged.is_some(),
                privileged,
                human: false,
            });
            for (id, exp) in bound.get(a.uid.as_str()).into_iter().flatten() {
                debug_assert_eq!(*id, bound_token_id(&a.uid, *exp));
                scan.credentials.push(ObservedCredential {
                    provider: PROVIDER,
                    account: s.cluster_name.to_string(),
                    kind: "bound_token",
                    id: id.to_string(),
                    identity: Some(a.uid.clone()),
                    team: team.clone(),
                    created_at: None,
                    last_rotated_at: None,
                    expires_at: Some(*exp),
                    last_used_at: None,
                    // Unusable once past `exp` (revoked at `exp`).
                    state: if *exp > s.observed_at {
                        CredentialState::Active
                    } else {
                        CredentialState::Inactive
                    },
                    rotation_enabled: false,
                    value_hashes: Vec::new(),
                    aliases: Vec::new(),
                });
            }
        }
        out.push(ObservationItem::Inventory(scan));
    }
    out.push(ObservationItem::InventoryScopes(scopes));
    Ok(out)
}

/// The User and Group subjects of every binding read: humans, counted for
/// the NHI:human ratio. `system:` names are Kubernetes' own components and
/// groups, not people.
fn humans(s: &Settings<'_>, bindings: &[&Binding]) -> InventoryScan {
    let mut seen = HashSet::new();
    let mut identities = Vec::new();
    for x in bindings.iter().flat_map(|b| b.subjects.iter()) {
        let kind = match x.kind.as_str() {
            "User" => "user",
            "Group" => "group",
            _ => continue,
        };
        if x.name.starts_with("system:") || !seen.insert((kind, x.name.as_str())) {
            continue;
        }
        identities.push(ObservedIdentity {
            provider: PROVIDER,
            account: s.cluster_name.to_string(),
            kind,
            id: format!("{kind}:{}", x.name),
            name: x.name.clone(),
            created_at: None,
            last_used_at: None,
            usage_tracked: false,
            team: None,
            privileged: None,
            standing: false,
            human: true,
        });
    }
    InventoryScan {
        scope: CLUSTER_SCOPE.to_string(),
        observed_at: s.observed_at,
        identities,
        credentials: Vec::new(),
    }
}
