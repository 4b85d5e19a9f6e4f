//! The keys of a `gcp` source and their validation.

use super::auth::KeyFile;
use crate::config::yaml::{http_url, Issues};
use crate::config::{SourceParse, SourceSettings, SourceSpec};
use crate::model::InventoryKinds;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Google's production endpoints, the defaults of `endpoints`.
pub const IAM: &str = "https://iam.googleapis.com";
pub const RESOURCE_MANAGER: &str = "https://cloudresourcemanager.googleapis.com";
pub const SECRET_MANAGER: &str = "https://secretmanager.googleapis.com";
pub const POLICY_ANALYZER: &str = "https://policyanalyzer.googleapis.com";

/// What the source polls: listed projects, or every ACTIVE project of an
/// organization.
#[derive(Debug, Clone, PartialEq)]
pub enum Estate {
    Projects(Vec<String>),
    /// The organization's number (`123456789012`).
    Organization(String),
}

/// The base URL of each API (no trailing `/`).
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoints {
    pub iam: String,
    pub resourcemanager: String,
    pub secretmanager: String,
    pub policyanalyzer: String,
}

impl Default for Endpoints {
    fn default() -> Self {
        Self {
            iam: IAM.into(),
            resourcemanager: RESOURCE_MANAGER.into(),
            secretmanager: SECRET_MANAGER.into(),
            policyanalyzer: POLICY_ANALYZER.into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct GcpConfig {
    pub estate: Estate,
    /// A service-account (or `authorized_user`) key file; `None`:
    /// Application Default Credentials.
    pub credentials_file: Option<PathBuf>,
    /// Last authentication of keys and accounts from Policy Analyzer.
    pub activity: bool,
    pub endpoints: Endpoints,
}

impl SourceSettings for GcpConfig {
    fn type_name(&self) -> &'static str {
        super::TYPE_NAME
    }
    fn inventory(&self) -> Option<InventoryKinds> {
        Some(super::INVENTORY)
    }
}

pub(super) fn parse(cx: &mut SourceParse<'_>) -> Option<Arc<dyn SourceSpec>> {
    let r: RawGcp = cx.decode()?;
    Some(Arc::new(validate(r, cx.path, cx.base, cx.issues)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGcp {
    projects: Option<Vec<String>>,
    organization: Option<String>,
    credentials_file: Option<String>,
    activity: Option<bool>,
    endpoints: Option<RawEndpoints>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEndpoints {
    iam: Option<String>,
    resourcemanager: Option<String>,
    secretmanager: Option<String>,
    policyanalyzer: Option<String>,
}

/// A project id as Google allows it: 6 to 30 lowercase letters, digits
/// and hyphens, starting with a letter, not ending with a hyphen.
pub fn project_id_ok(p: &str) -> bool {
    let b = p.as_bytes();
    (6..=30).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && b[b.len() - 1] != b'-'
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

fn validate(r: RawGcp, path: &str, base: &Path, issues: &mut Issues) -> GcpConfig {
    let estate = match (r.projects, r.organization) {
        (Some(_), Some(_)) => {
            issues.push(
                format!("{path}.organization"),
                "set either projects or organization, not both",
            );
            Estate::Projects(Vec::new())
        }
        (None, None) => {
            issues.push(
                path.to_string(),
                "needs projects: [...] or organization: \"<number>\"",
            );
            Estate::Projects(Vec::new())
        }
        (Some(ps), None) => {
            if ps.is_empty() {
                issues.push(
                    format!("{path}.projects"),
                    "must list at least one project id",
                );
            }
            let mut seen = std::collections::HashSet::new();
            for (i, p) in ps.iter().enumerate() {
                if !project_id_ok(p) {
                    issues.push(
                        format!("{path}.projects[{i}]"),
                        "is not a project id (6-30 of a-z, 0-9, -), e.g. acme-prod".to_string(),
                    );
                } else if !seen.insert(p.as_str()) {
                    issues.push(
                        format!("{path}.projects[{i}]"),
                        format!("{p} is listed twice"),
                    );
                }
            }
            Estate::Projects(ps)
        }
        (None, Some(o)) => {
            let o = o.trim();
            let number = o.strip_prefix("organizations/").unwrap_or(o);
            if number.is_empty() || number.len() > 32 || !number.bytes().all(|c| c.is_ascii_digit())
            {
                issues.push(
                    format!("{path}.organization"),
                    "must be the organization's number, e.g. \"123456789012\"",
                );
            }
            Estate::Organization(number.to_string())
        }
    };
    let credentials_file = match r.credentials_file.as_deref().map(str::trim) {
        None => None,
        Some("") => {
            issues.push(
                format!("{path}.credentials_file"),
                "must not be empty: a service-account key file, or omit it for Application Default Credentials",
            );
            None
        }
        Some(f) => {
            let file = crate::config::yaml::resolve(base, f);
            // Checked now so that --config.check catches it; re-read at
            // every poll (a rotated key file is picked up). The file's
            // content is never quoted.
            if let Err(e) = KeyFile::read(&file) {
                issues.push(format!("{path}.credentials_file"), e.to_string());
            }
            Some(file)
        }
    };
    let e = r.endpoints.unwrap_or_default();
    let d = Endpoints::default();
    let url = |v: Option<String>, key: &str, default: String, issues: &mut Issues| match v {
        None => default,
        Some(u) => http_url(&u, &format!("{path}.endpoints.{key}"), &default, issues),
    };
    let endpoints = Endpoints {
        iam: url(e.iam, "iam", d.iam, issues),
        resourcemanager: url(
            e.resourcemanager,
            "resourcemanager",
            d.resourcemanager,
            issues,
        ),
        secretmanager: url(e.secretmanager, "secretmanager", d.secretmanager, issues),
        policyanalyzer: url(e.policyanalyzer, "policyanalyzer", d.policyanalyzer, issues),
    };
    GcpConfig {
        estate,
        credentials_file,
        activity: r.activity.unwrap_or(false),
        endpoints,
    }
}
