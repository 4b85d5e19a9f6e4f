//! The keys of a `gitlab_secret_detection` source and their validation.

use crate::config::yaml::{ca_file, credential, http_url, Issues};
use crate::config::{Credential, SourceParse, SourceSettings, SourceSpec};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Which vulnerabilities a `gitlab_secret_detection` source lists: a group
/// (with its subgroups' projects) or one project, by full path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GitlabScope {
    Group(String),
    Project(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct GitlabConfig {
    /// Instance URL without a trailing slash (`https://gitlab.com`,
    /// `https://gitlab.example.com`); the GraphQL endpoint is
    /// `{api_url}/api/graphql`.
    pub api_url: String,
    pub scope: GitlabScope,
    pub token: Credential,
    /// Extra CA bundle for a self-managed instance with a private CA.
    pub ca_file: Option<PathBuf>,
}

impl SourceSettings for GitlabConfig {
    fn type_name(&self) -> &'static str {
        super::TYPE_NAME
    }
}

pub(super) fn parse(cx: &mut SourceParse<'_>) -> Option<Arc<dyn SourceSpec>> {
    let r: RawGitlab = cx.decode()?;
    Some(Arc::new(validate_gitlab(r, cx.path, cx.base, cx.issues)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGitlab {
    api_url: Option<String>,
    group: Option<String>,
    project: Option<String>,
    token: Option<String>,
    token_file: Option<String>,
    ca_file: Option<String>,
}

/// A GitLab full path: segments of letters, digits, `_`, `-` and `.`
/// separated by `/` (subgroups); a project has at least two segments.
fn gitlab_path_ok(p: &str, project: bool) -> bool {
    let segs: Vec<&str> = p.split('/').collect();
    (!project || segs.len() >= 2)
        && segs.iter().all(|s| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        })
}

fn validate_gitlab(r: RawGitlab, path: &str, base: &Path, issues: &mut Issues) -> GitlabConfig {
    let key = format!("{path}.api_url");
    let api_url = match r.api_url.as_deref() {
        None => {
            issues.push(
                key,
                "is required: the instance URL, e.g. https://gitlab.example.com",
            );
            String::new()
        }
        Some(v) => {
            let mut checked = Issues::default();
            let url = http_url(v, &key, &mut checked);
            if !checked.is_empty() {
                // Never echo credentials given in the URL (user info, query).
                let shown = url.split(['?', '#']).next().unwrap_or_default();
                let shown = match shown.split_once("://") {
                    Some((scheme, rest)) if rest.contains('@') => {
                        format!(
                            "{scheme}://<redacted>@{}",
                            rest.rsplit_once('@').map(|(_, h)| h).unwrap_or_default()
                        )
                    }
                    _ => shown.to_string(),
                };
                issues.push(
                    key,
                    format!("{shown:?} is not an http(s) URL without credentials, e.g. https://gitlab.example.com"),
                );
            } else if let Some(api) = ["/api/graphql", "/api/v4"]
                .iter()
                .find(|s| url.ends_with(**s))
            {
                issues.push(
                    key,
                    format!(
                        "give the instance URL without {api} (the exporter appends /api/graphql)"
                    ),
                );
            }
            url
        }
    };
    let scope = match (r.group, r.project) {
        (Some(g), None) => {
            if !gitlab_path_ok(&g, false) {
                issues.push(
                    format!("{path}.group"),
                    format!("{g:?} is not a group full path, e.g. platform or platform/backend"),
                );
            }
            GitlabScope::Group(g)
        }
        (None, Some(p)) => {
            if !gitlab_path_ok(&p, true) {
                issues.push(
                    format!("{path}.project"),
                    format!("{p:?} is not a project full path, e.g. platform/api"),
                );
            }
            GitlabScope::Project(p)
        }
        _ => {
            issues.push(path.to_string(), "set exactly one of group or project");
            GitlabScope::Group(String::new())
        }
    };
    let token = credential(r.token, r.token_file, "token", path, base, issues)
        .unwrap_or_else(|| Credential::new(String::new()));
    GitlabConfig {
        api_url,
        scope,
        token,
        ca_file: ca_file(
            r.ca_file.as_deref(),
            &format!("{path}.ca_file"),
            base,
            issues,
        ),
    }
}
