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
            let before = issues.len();
            let url = http_url(v, &key, "https://gitlab.example.com", issues);
            let api_suffix = ["/api/graphql", "/api/v4"]
                .into_iter()
                .find(|s| url.ends_with(s));
            // A URL http_url refused is reported once, by it.
            if let Some(api) = api_suffix.filter(|_| issues.len() == before) {
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
                    "is not a group full path, e.g. platform or platform/backend".to_string(),
                );
            }
            GitlabScope::Group(g)
        }
        (None, Some(p)) => {
            if !gitlab_path_ok(&p, true) {
                issues.push(
                    format!("{path}.project"),
                    "is not a project full path, e.g. platform/api".to_string(),
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
