//! The keys of an `aws` source and their validation.

use crate::config::yaml::{http_url, Issues};
use crate::config::{SourceParse, SourceSettings, SourceSpec};
use crate::model::InventoryKinds;
use serde::Deserialize;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AwsService {
    Iam,
    SecretsManager,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AwsConfig {
    /// Regions whose Secrets Manager is listed; the first also signs IAM
    /// calls (IAM is global).
    pub regions: Vec<String>,
    pub services: Vec<AwsService>,
    pub assume_role_arn: Option<String>,
    /// A compatible endpoint (moto, LocalStack) instead of AWS's own.
    pub endpoint_url: Option<String>,
    /// Poll every member account of the organization instead of one.
    pub organization: Option<OrgConfig>,
}

/// `organization`: the member accounts to poll and the role to assume.
#[derive(Debug, Clone, PartialEq)]
pub struct OrgConfig {
    /// Assumed in each account (`arn:aws:iam::<id>:role/<role_name>`).
    pub role_name: String,
    pub external_id: Option<String>,
    /// Globs on the account id or name; default `*`.
    pub include: Vec<glob::Pattern>,
    pub exclude: Vec<glob::Pattern>,
    /// Accounts polled at once (1..=64, default 8).
    pub concurrency: usize,
}

impl SourceSettings for AwsConfig {
    fn type_name(&self) -> &'static str {
        super::TYPE_NAME
    }
    fn inventory(&self) -> Option<InventoryKinds> {
        Some(super::INVENTORY)
    }
}

pub(super) fn parse(cx: &mut SourceParse<'_>) -> Option<Arc<dyn SourceSpec>> {
    let r: RawAws = cx.decode()?;
    Some(Arc::new(validate_aws(r, cx.path, cx.issues)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAws {
    regions: Option<Vec<String>>,
    services: Option<Vec<String>>,
    assume_role_arn: Option<String>,
    endpoint_url: Option<String>,
    organization: Option<RawOrg>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOrg {
    role_name: Option<String>,
    external_id: Option<String>,
    include: Option<Vec<String>>,
    exclude: Option<Vec<String>>,
    concurrency: Option<i64>,
}

/// IAM role names (with an optional path): `[A-Za-z0-9+=,.@_-]`, `/`
/// between path segments.
fn role_name_ok(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 512
        && !n.starts_with('/')
        && !n.ends_with('/')
        && !n.contains("//")
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-/".contains(c))
}

fn validate_org(r: RawOrg, path: &str, issues: &mut Issues) -> OrgConfig {
    let role_name = r
        .role_name
        .map(|n| n.trim().to_string())
        .unwrap_or_default();
    if role_name.is_empty() {
        issues.push(
            format!("{path}.role_name"),
            "is required: the role assumed in every member account, e.g. nhi-exporter-read (deploy/aws/ creates it)",
        );
    } else if !role_name_ok(&role_name) {
        issues.push(
            format!("{path}.role_name"),
            "is not an IAM role name: use letters, digits and +=,.@_- (a path with /), e.g. nhi-exporter-read".to_string(),
        );
    }
    let external_id = r.external_id.map(|e| e.trim().to_string());
    if let Some(e) = &external_id {
        let ok = (2..=1224).contains(&e.len())
            && e.chars()
                .all(|c| c.is_ascii_alphanumeric() || "+=,.@:/_-".contains(c));
        if !ok {
            issues.push(
                format!("{path}.external_id"),
                "must be 2 to 1224 characters of letters, digits and +=,.@:/_- (the sts:ExternalId of the role's trust policy)",
            );
        }
    }
    let mut globs = |key: &str, list: Vec<String>| -> Vec<glob::Pattern> {
        list.iter()
            .enumerate()
            .filter_map(|(i, g)| match glob::Pattern::new(g.trim()) {
                Ok(p) if !g.trim().is_empty() => Some(p),
                _ => {
                    issues.push(
                        format!("{path}.{key}[{i}]"),
                        "is not a glob of account ids or names, e.g. \"1234*\" or \"prod-*\""
                            .to_string(),
                    );
                    None
                }
            })
            .collect()
    };
    let include = globs("include", r.include.unwrap_or_else(|| vec!["*".into()]));
    let exclude = globs("exclude", r.exclude.unwrap_or_default());
    let concurrency = match r.concurrency {
        None => 8,
        Some(n) if (1..=64).contains(&n) => n as usize,
        Some(n) => {
            issues.push(
                format!("{path}.concurrency"),
                format!("must be between 1 and 64 accounts at a time, got {n}"),
            );
            8
        }
    };
    OrgConfig {
        role_name,
        external_id,
        include,
        exclude,
        concurrency,
    }
}

fn aws_region_ok(r: &str) -> bool {
    let parts: Vec<&str> = r.split('-').collect();
    parts.len() >= 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
}

fn aws_role_arn_ok(a: &str) -> bool {
    let f: Vec<&str> = a.splitn(6, ':').collect();
    f.len() == 6
        && f[0] == "arn"
        && f[1].starts_with("aws")
        && f[2] == "iam"
        && f[3].is_empty()
        && f[4].len() == 12
        && f[4].chars().all(|c| c.is_ascii_digit())
        && f[5].starts_with("role/")
        && f[5].len() > 5
}

fn validate_aws(r: RawAws, path: &str, issues: &mut Issues) -> AwsConfig {
    let mut services = Vec::new();
    match r.services {
        None => services = vec![AwsService::Iam, AwsService::SecretsManager],
        Some(list) => {
            for (i, s) in list.iter().enumerate() {
                let svc = match s.as_str() {
                    "iam" => AwsService::Iam,
                    "secretsmanager" => AwsService::SecretsManager,
                    _ => {
                        issues.push(
                            format!("{path}.services[{i}]"),
                            "unknown service; use iam and/or secretsmanager".to_string(),
                        );
                        continue;
                    }
                };
                if !services.contains(&svc) {
                    services.push(svc);
                }
            }
            if list.is_empty() {
                issues.push(
                    format!("{path}.services"),
                    "must list at least one of iam, secretsmanager",
                );
            }
        }
    }
    let regions = r.regions.unwrap_or_default();
    for (i, reg) in regions.iter().enumerate() {
        if !aws_region_ok(reg) {
            issues.push(
                format!("{path}.regions[{i}]"),
                "is not an AWS region, e.g. us-east-1".to_string(),
            );
        }
    }
    if regions.is_empty() {
        issues.push(
            format!("{path}.regions"),
            "is required: at least one region, e.g. [us-east-1] (Secrets Manager is regional; the first region also signs IAM calls)",
        );
    }
    let assume_role_arn = r.assume_role_arn.map(|a| a.trim().to_string());
    if let Some(a) = &assume_role_arn {
        if !aws_role_arn_ok(a) {
            issues.push(
                format!("{path}.assume_role_arn"),
                "is not a role ARN, e.g. arn:aws:iam::123456789012:role/nhi-exporter-read"
                    .to_string(),
            );
        }
    }
    let endpoint_url = r.endpoint_url.map(|u| {
        http_url(
            &u,
            &format!("{path}.endpoint_url"),
            "http://127.0.0.1:5000",
            issues,
        )
    });
    let organization = r
        .organization
        .map(|o| validate_org(o, &format!("{path}.organization"), issues));
    AwsConfig {
        regions,
        services,
        assume_role_arn,
        endpoint_url,
        organization,
    }
}
