//! The keys of a `github_secret_scanning` source and their validation.

use crate::config::yaml::{ca_file, credential, http_url, Issues};
use crate::config::{Credential, SourceParse, SourceSettings, SourceSpec};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Which alerts a `github_secret_scanning` source lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GithubScope {
    Org(String),
    Enterprise(String),
    /// `owner/name` entries.
    Repositories(Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct GithubConfig {
    /// Base API URL without a trailing slash (`https://api.github.com`, or
    /// `https://HOST/api/v3` for GitHub Enterprise Server).
    pub api_url: String,
    pub scope: GithubScope,
    pub token: Credential,
    /// Ask GitHub not to return the secret (`hide_secret=true`): alerts are
    /// then keyed by their own id and cannot merge with other scanners.
    pub hide_secret: bool,
    /// Extra CA bundle for GitHub Enterprise Server.
    pub ca_file: Option<PathBuf>,
}

impl SourceSettings for GithubConfig {
    fn type_name(&self) -> &'static str {
        super::TYPE_NAME
    }
}

pub(super) fn parse(cx: &mut SourceParse<'_>) -> Option<Arc<dyn SourceSpec>> {
    let r: RawGithub = cx.decode()?;
    Some(Arc::new(validate_github(r, cx.path, cx.base, cx.issues)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGithub {
    api_url: Option<String>,
    org: Option<String>,
    enterprise: Option<String>,
    repositories: Option<Vec<String>>,
    token: Option<String>,
    token_file: Option<String>,
    hide_secret: Option<bool>,
    ca_file: Option<String>,
}

fn validate_github(r: RawGithub, path: &str, base: &Path, issues: &mut Issues) -> GithubConfig {
    let api_url = http_url(
        r.api_url.as_deref().unwrap_or("https://api.github.com"),
        &format!("{path}.api_url"),
        "https://api.github.com",
        issues,
    );
    let name_ok = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
    };
    let scope = match (r.org, r.enterprise, r.repositories) {
        (Some(o), None, None) => {
            if !name_ok(&o) {
                issues.push(
                    format!("{path}.org"),
                    "is not an organization login".to_string(),
                );
            }
            GithubScope::Org(o)
        }
        (None, Some(e), None) => {
            if !name_ok(&e) {
                issues.push(
                    format!("{path}.enterprise"),
                    "is not an enterprise slug".to_string(),
                );
            }
            GithubScope::Enterprise(e)
        }
        (None, None, Some(repos)) => {
            if repos.is_empty() {
                issues.push(
                    format!("{path}.repositories"),
                    "must list at least one owner/name",
                );
            }
            for (i, r) in repos.iter().enumerate() {
                let ok = r
                    .split_once('/')
                    .is_some_and(|(o, n)| name_ok(o) && name_ok(n));
                if !ok {
                    issues.push(
                        format!("{path}.repositories[{i}]"),
                        "is not owner/name".to_string(),
                    );
                }
            }
            GithubScope::Repositories(repos)
        }
        _ => {
            issues.push(
                path.to_string(),
                "set exactly one of org, enterprise or repositories",
            );
            GithubScope::Repositories(Vec::new())
        }
    };
    let token = credential(r.token, r.token_file, "token", path, base, issues)
        .unwrap_or_else(|| Credential::new(String::new()));
    GithubConfig {
        api_url,
        scope,
        token,
        hide_secret: r.hide_secret.unwrap_or(false),
        ca_file: ca_file(
            r.ca_file.as_deref(),
            &format!("{path}.ca_file"),
            base,
            issues,
        ),
    }
}
