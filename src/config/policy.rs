//! The `policy` and `labels` sections: thresholds, windows, the privileged
//! roles per provider, and the opt-in labels.

use super::yaml::{positive, Issues};
use super::{format_duration, Dur};
use serde::Deserialize;
use std::collections::HashSet;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub max_credential_age: Duration,
    pub unused_after: Duration,
    /// `None`: 3 x each source's interval.
    pub stale_after: Option<Duration>,
    pub team_tag: String,
    pub windows: Vec<Window>,
    pub max_secret_types: usize,
    pub privileged: Privileged,
}

impl Default for Policy {
    fn default() -> Self {
        default_policy()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Privileged {
    pub aws_policies: Vec<String>,
    pub vault_policies: Vec<String>,
    /// Kubernetes (Cluster)Role names that make a bound service account
    /// privileged, beside `cluster-admin` and any role granting `*` on `*`.
    pub kubernetes_roles: Vec<String>,
    /// GCP roles and Azure directory / RBAC roles that make an identity
    /// privileged (SPEC §4), for the `gcp` and `azure` source types.
    pub gcp_roles: Vec<String>,
    pub azure_directory_roles: Vec<String>,
    pub azure_rbac_roles: Vec<String>,
}

/// A KPI window, with the label value it is exported under (`7d`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub duration: Duration,
    pub label: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelsConfig {
    pub team_enabled: bool,
    pub team_max_values: usize,
    /// `labels.scope`: identity and credential gauges carry `scope` (AWS
    /// account id, Vault address ...), the first `scope_max_values` scopes
    /// by first appearance, the rest `other`.
    pub scope_enabled: bool,
    pub scope_max_values: usize,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPolicy {
    max_credential_age: Option<Dur>,
    unused_after: Option<Dur>,
    stale_after: Option<Dur>,
    team_tag: Option<String>,
    windows: Option<Vec<Dur>>,
    max_secret_types: Option<i64>,
    #[serde(default)]
    privileged: RawPrivileged,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPrivileged {
    aws_policies: Option<Vec<String>>,
    vault_policies: Option<Vec<String>>,
    kubernetes_roles: Option<Vec<String>>,
    gcp_roles: Option<Vec<String>>,
    azure_directory_roles: Option<Vec<String>>,
    azure_rbac_roles: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLabels {
    #[serde(default)]
    team: RawCapped,
    #[serde(default)]
    scope: RawCapped,
}

/// An opt-in label capped at `max_values` (`labels.team`, `labels.scope`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCapped {
    enabled: Option<bool>,
    max_values: Option<i64>,
}

pub const DEFAULT_AWS_PRIVILEGED: [&str; 3] = [
    "arn:aws:iam::aws:policy/AdministratorAccess",
    "arn:aws:iam::aws:policy/IAMFullAccess",
    "arn:aws:iam::aws:policy/PowerUserAccess",
];

/// SPEC §4's default privileged GCP roles.
pub const DEFAULT_GCP_PRIVILEGED: [&str; 6] = [
    "roles/owner",
    "roles/editor",
    "roles/iam.securityAdmin",
    "roles/resourcemanager.projectIamAdmin",
    "roles/iam.serviceAccountTokenCreator",
    "roles/iam.serviceAccountKeyAdmin",
];

/// SPEC §4's default privileged Entra directory roles.
pub const DEFAULT_AZURE_DIRECTORY_PRIVILEGED: [&str; 4] = [
    "Global Administrator",
    "Privileged Role Administrator",
    "Application Administrator",
    "Cloud Application Administrator",
];

/// The policy of a config that sets none.
pub(crate) fn default_policy() -> Policy {
    validate_policy(RawPolicy::default(), &mut Issues::default())
}

pub(crate) fn validate_policy(p: RawPolicy, issues: &mut Issues) -> Policy {
    let day = Duration::from_secs(86_400);
    let max_credential_age = positive(
        p.max_credential_age,
        day * 90,
        "policy.max_credential_age",
        issues,
    );
    let unused_after = positive(p.unused_after, day * 90, "policy.unused_after", issues);
    let stale_after = p.stale_after.map(|d| d.0);
    if stale_after.is_some_and(|d| d.is_zero()) {
        issues.push(
            "policy.stale_after",
            "must be greater than 0 (or left out for 3 x each source's interval)",
        );
    }
    let team_tag = p.team_tag.unwrap_or_else(|| "team".into());
    if team_tag.trim().is_empty() {
        issues.push("policy.team_tag", "must not be empty");
    }
    let raw_windows = p
        .windows
        .map(|w| w.into_iter().map(|d| d.0).collect::<Vec<_>>())
        .unwrap_or_else(|| vec![day * 7, day * 30, day * 90]);
    if raw_windows.is_empty() {
        issues.push(
            "policy.windows",
            "must list at least one window, e.g. [7d, 30d, 90d]",
        );
    }
    let mut windows = Vec::new();
    let mut seen = HashSet::new();
    for (i, d) in raw_windows.into_iter().enumerate() {
        if d < Duration::from_secs(60) {
            issues.push(format!("policy.windows[{i}]"), "must be at least 1m");
            continue;
        }
        let label = format_duration(d);
        if !seen.insert(label.clone()) {
            issues.push(
                format!("policy.windows[{i}]"),
                format!("duplicate window {label}"),
            );
            continue;
        }
        windows.push(Window { duration: d, label });
    }
    let max_secret_types = match p.max_secret_types {
        None => 100,
        Some(n) if (1..=10_000).contains(&n) => n as usize,
        Some(n) => {
            issues.push(
                "policy.max_secret_types",
                format!("must be between 1 and 10000, got {n}"),
            );
            100
        }
    };
    let aws_policies = p.privileged.aws_policies.unwrap_or_else(|| {
        DEFAULT_AWS_PRIVILEGED
            .iter()
            .map(|s| s.to_string())
            .collect()
    });
    for (i, a) in aws_policies.iter().enumerate() {
        if !a.starts_with("arn:") {
            issues.push(
                format!("policy.privileged.aws_policies[{i}]"),
                "is not a policy ARN (e.g. arn:aws:iam::aws:policy/AdministratorAccess)"
                    .to_string(),
            );
        }
    }
    let vault_policies = p
        .privileged
        .vault_policies
        .unwrap_or_else(|| vec!["root".into()]);
    for (i, v) in vault_policies.iter().enumerate() {
        if v.trim().is_empty() {
            issues.push(
                format!("policy.privileged.vault_policies[{i}]"),
                "must not be empty",
            );
        }
    }
    let mut names = |v: Option<Vec<String>>, key: &str, default: &[&str], example: &str| {
        let v = v.unwrap_or_else(|| default.iter().map(|s| s.to_string()).collect());
        for (i, r) in v.iter().enumerate() {
            if r.trim().is_empty() {
                issues.push(
                    format!("policy.privileged.{key}[{i}]"),
                    format!("must not be empty: a role name, e.g. {example}"),
                );
            }
        }
        v
    };
    let kubernetes_roles = names(
        p.privileged.kubernetes_roles,
        "kubernetes_roles",
        &["cluster-admin"],
        "cluster-admin",
    );
    let gcp_roles = names(
        p.privileged.gcp_roles,
        "gcp_roles",
        &DEFAULT_GCP_PRIVILEGED,
        "roles/owner",
    );
    let azure_directory_roles = names(
        p.privileged.azure_directory_roles,
        "azure_directory_roles",
        &DEFAULT_AZURE_DIRECTORY_PRIVILEGED,
        "Global Administrator",
    );
    let azure_rbac_roles = names(
        p.privileged.azure_rbac_roles,
        "azure_rbac_roles",
        &["Owner", "Contributor", "User Access Administrator"],
        "Owner",
    );
    Policy {
        max_credential_age,
        unused_after,
        stale_after,
        team_tag,
        windows,
        max_secret_types,
        privileged: Privileged {
            aws_policies,
            vault_policies,
            kubernetes_roles,
            gcp_roles,
            azure_directory_roles,
            azure_rbac_roles,
        },
    }
}

/// `max_values` of a capped label: `default` when absent, else 1..=`limit`.
fn max_values(v: Option<i64>, key: &str, default: usize, limit: i64, issues: &mut Issues) -> usize {
    match v {
        None => default,
        Some(n) if (1..=limit).contains(&n) => n as usize,
        Some(n) => {
            issues.push(key, format!("must be between 1 and {limit}, got {n}"));
            default
        }
    }
}

pub(crate) fn validate_labels(l: RawLabels, issues: &mut Issues) -> LabelsConfig {
    LabelsConfig {
        team_enabled: l.team.enabled.unwrap_or(false),
        team_max_values: max_values(
            l.team.max_values,
            "labels.team.max_values",
            50,
            1_000,
            issues,
        ),
        scope_enabled: l.scope.enabled.unwrap_or(false),
        scope_max_values: max_values(
            l.scope.max_values,
            "labels.scope.max_values",
            1_000,
            10_000,
            issues,
        ),
    }
}
