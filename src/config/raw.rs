//! Raw YAML types and their validation into [`super::Config`].
//!
//! The file is first read as a YAML tree so that `${VAR}` expansion and the
//! per-section / per-source decoding can report every problem with its key
//! path; each section is then decoded into a `deny_unknown_fields` struct.

use super::{
    format_duration, parse_size, Config, ConfigIssue, DetectSecretsConfig, Dur, GitleaksConfig,
    LabelsConfig, Policy, Privileged, SourceConfig, SourceKind, StateConfig, TrufflehogConfig,
    Window, DEFAULT_INTERVAL, DEFAULT_MAX_FILE_SIZE, DEFAULT_TIMEOUT,
};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_yaml::{Mapping, Value};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawState {
    path: Option<String>,
    hash_key_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
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
struct RawPrivileged {
    aws_policies: Option<Vec<String>>,
    vault_policies: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLabels {
    #[serde(default)]
    team: RawTeam,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTeam {
    enabled: Option<bool>,
    max_values: Option<i64>,
}

/// Keys every source has, whatever its type.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSourceCommon {
    name: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    interval: Option<Dur>,
    timeout: Option<Dur>,
    enabled: Option<bool>,
}
const COMMON_KEYS: [&str; 5] = ["name", "type", "interval", "timeout", "enabled"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGitleaks {
    paths: Vec<String>,
    max_file_size: Option<serde_yaml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTrufflehog {
    paths: Vec<String>,
    max_file_size: Option<serde_yaml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDetectSecrets {
    paths: Vec<String>,
    max_file_size: Option<serde_yaml::Value>,
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

/// A credential given inline (`key`) or by file (`key_file`): exactly one.
/// The file is read here, so a reload re-reads it; its content is never
/// shown in messages.
fn credential(
    inline: Option<String>,
    file: Option<String>,
    key: &str,
    path: &str,
    base: &Path,
    issues: &mut Issues,
) -> Option<super::Credential> {
    match (inline, file) {
        (Some(_), Some(_)) => {
            issues.push(
                format!("{path}.{key}"),
                format!("set either {key} or {key}_file, not both"),
            );
            None
        }
        (None, None) => {
            issues.push(
                format!("{path}.{key}"),
                format!("is required (or {key}_file)"),
            );
            None
        }
        (Some(v), None) => {
            if v.trim().is_empty() {
                issues.push(format!("{path}.{key}"), "must not be empty");
                return None;
            }
            Some(super::Credential::new(v.trim().to_string()))
        }
        (None, Some(f)) => {
            let p = resolve(base, &f);
            match std::fs::read_to_string(&p) {
                Ok(v) if !v.trim().is_empty() => Some(super::Credential::new(v.trim().to_string())),
                Ok(_) => {
                    issues.push(
                        format!("{path}.{key}_file"),
                        format!("{} is empty", p.display()),
                    );
                    None
                }
                Err(e) => {
                    issues.push(
                        format!("{path}.{key}_file"),
                        format!("cannot read {}: {e}", p.display()),
                    );
                    None
                }
            }
        }
    }
}

fn http_url(v: &str, key: &str, issues: &mut Issues) -> String {
    let v = v.trim().trim_end_matches('/').to_string();
    let ok = (v.starts_with("https://") || v.starts_with("http://"))
        && v.split("://")
            .nth(1)
            .is_some_and(|h| !h.is_empty() && !h.contains('@') && !h.contains(' '));
    if !ok {
        // Never echo user info: it may be a credential.
        let shown = match v.split_once("://") {
            Some((scheme, rest)) if rest.contains('@') => {
                format!(
                    "{scheme}://<credentials>@{}",
                    rest.rsplit_once('@').map(|(_, h)| h).unwrap_or("")
                )
            }
            _ => v.clone(),
        };
        issues.push(
            key,
            format!(
                "{shown:?} is not an http(s) URL without credentials, e.g. https://api.github.com"
            ),
        );
    }
    v
}

fn validate_github(
    r: RawGithub,
    path: &str,
    base: &Path,
    issues: &mut Issues,
) -> super::GithubConfig {
    use super::GithubScope;
    let api_url = http_url(
        r.api_url.as_deref().unwrap_or("https://api.github.com"),
        &format!("{path}.api_url"),
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
                    format!("{o:?} is not an organization login"),
                );
            }
            GithubScope::Org(o)
        }
        (None, Some(e), None) => {
            if !name_ok(&e) {
                issues.push(
                    format!("{path}.enterprise"),
                    format!("{e:?} is not an enterprise slug"),
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
                        format!("{r:?} is not owner/name"),
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
        .unwrap_or_else(|| super::Credential::new(String::new()));
    super::GithubConfig {
        api_url,
        scope,
        token,
        hide_secret: r.hide_secret.unwrap_or(false),
        ca_file: r.ca_file.as_deref().map(|f| resolve(base, f)),
    }
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

fn validate_gitlab(
    r: RawGitlab,
    path: &str,
    base: &Path,
    issues: &mut Issues,
) -> super::GitlabConfig {
    use super::GitlabScope;
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
            let mut checked = Issues(Vec::new());
            let url = http_url(v, &key, &mut checked);
            if !checked.0.is_empty() {
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
        .unwrap_or_else(|| super::Credential::new(String::new()));
    super::GitlabConfig {
        api_url,
        scope,
        token,
        ca_file: r.ca_file.as_deref().map(|f| resolve(base, f)),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVault {
    address: Option<String>,
    namespace: Option<String>,
    auth: Option<RawVaultAuth>,
    kv_mounts: Option<Vec<String>>,
    match_values: Option<bool>,
    tls: Option<RawTls>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVaultAuth {
    method: Option<String>,
    token: Option<String>,
    token_file: Option<String>,
    mount: Option<String>,
    role_id: Option<String>,
    role_id_file: Option<String>,
    secret_id: Option<String>,
    secret_id_file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    ca_file: Option<String>,
}

/// A Vault mount or auth path: segments of letters, digits, `_`, `-`, `.`.
fn vault_path_ok(p: &str) -> bool {
    !p.is_empty()
        && p.split('/').all(|s| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        })
}

fn validate_vault(r: RawVault, path: &str, base: &Path, issues: &mut Issues) -> super::VaultConfig {
    use super::VaultAuth;
    let address = match r.address.as_deref() {
        Some(a) => http_url(a, &format!("{path}.address"), issues),
        None => {
            issues.push(
                format!("{path}.address"),
                "is required, e.g. https://vault.example.com:8200",
            );
            String::new()
        }
    };
    let apath = format!("{path}.auth");
    let empty = || super::Credential::new(String::new());
    let auth = match r.auth {
        None => {
            issues.push(
                apath.clone(),
                "is required: {method: token, token_file: ...} or {method: approle, role_id: ..., secret_id_file: ...}",
            );
            VaultAuth::Token(empty())
        }
        Some(a) => match a.method.as_deref() {
            Some("token") => {
                for (k, set) in [
                    ("mount", a.mount.is_some()),
                    ("role_id", a.role_id.is_some() || a.role_id_file.is_some()),
                    (
                        "secret_id",
                        a.secret_id.is_some() || a.secret_id_file.is_some(),
                    ),
                ] {
                    if set {
                        issues.push(format!("{apath}.{k}"), "is only for method: approle");
                    }
                }
                VaultAuth::Token(
                    credential(a.token, a.token_file, "token", &apath, base, issues)
                        .unwrap_or_else(empty),
                )
            }
            Some("approle") => {
                if a.token.is_some() || a.token_file.is_some() {
                    issues.push(format!("{apath}.token"), "is only for method: token");
                }
                let mount = a.mount.unwrap_or_else(|| "approle".to_string());
                if !vault_path_ok(&mount) {
                    issues.push(
                        format!("{apath}.mount"),
                        format!("{mount:?} is not an auth mount path, e.g. approle"),
                    );
                }
                VaultAuth::AppRole {
                    mount,
                    role_id: credential(a.role_id, a.role_id_file, "role_id", &apath, base, issues)
                        .unwrap_or_else(empty),
                    secret_id: credential(
                        a.secret_id,
                        a.secret_id_file,
                        "secret_id",
                        &apath,
                        base,
                        issues,
                    )
                    .unwrap_or_else(empty),
                }
            }
            Some(m) => {
                issues.push(
                    format!("{apath}.method"),
                    format!("unknown method {m:?}; use token or approle"),
                );
                VaultAuth::Token(empty())
            }
            None => {
                issues.push(format!("{apath}.method"), "is required: token or approle");
                VaultAuth::Token(empty())
            }
        },
    };
    let kv_mounts: Vec<String> = r
        .kv_mounts
        .unwrap_or_default()
        .into_iter()
        .map(|m| m.trim_matches('/').to_string())
        .collect();
    for (i, m) in kv_mounts.iter().enumerate() {
        if !vault_path_ok(m) {
            issues.push(
                format!("{path}.kv_mounts[{i}]"),
                format!("{m:?} is not a mount path, e.g. secret"),
            );
        }
    }
    let namespace = r
        .namespace
        .unwrap_or_default()
        .trim_matches('/')
        .to_string();
    if !namespace.is_empty() && !vault_path_ok(&namespace) {
        issues.push(
            format!("{path}.namespace"),
            format!("{namespace:?} is not a namespace path, e.g. team-a or team-a/prod"),
        );
    }
    super::VaultConfig {
        address,
        namespace,
        auth,
        kv_mounts,
        match_values: r.match_values.unwrap_or(false),
        ca_file: r.tls.and_then(|t| t.ca_file).map(|f| resolve(base, &f)),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAws {
    regions: Option<Vec<String>>,
    services: Option<Vec<String>>,
    assume_role_arn: Option<String>,
    endpoint_url: Option<String>,
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

fn validate_aws(r: RawAws, path: &str, issues: &mut Issues) -> super::AwsConfig {
    use super::AwsService;
    let mut services = Vec::new();
    match r.services {
        None => services = vec![AwsService::Iam, AwsService::SecretsManager],
        Some(list) => {
            for (i, s) in list.iter().enumerate() {
                let svc = match s.as_str() {
                    "iam" => AwsService::Iam,
                    "secretsmanager" => AwsService::SecretsManager,
                    other => {
                        issues.push(
                            format!("{path}.services[{i}]"),
                            format!("unknown service {other:?}; use iam and/or secretsmanager"),
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
                format!("{reg:?} is not an AWS region, e.g. us-east-1"),
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
                format!("{a:?} is not a role ARN, e.g. arn:aws:iam::123456789012:role/nhi-exporter-read"),
            );
        }
    }
    let endpoint_url = r
        .endpoint_url
        .map(|u| http_url(&u, &format!("{path}.endpoint_url"), issues));
    super::AwsConfig {
        regions,
        services,
        assume_role_arn,
        endpoint_url,
    }
}

/// The source types this build knows, for messages.
const SOURCE_TYPES: &[&str] = &[
    "gitleaks",
    "trufflehog",
    "detect_secrets",
    "github_secret_scanning",
    "gitlab_secret_detection",
    "vault",
    "aws",
];

const TOP_KEYS: [&str; 4] = ["state", "policy", "labels", "sources"];

pub const DEFAULT_AWS_PRIVILEGED: [&str; 3] = [
    "arn:aws:iam::aws:policy/AdministratorAccess",
    "arn:aws:iam::aws:policy/IAMFullAccess",
    "arn:aws:iam::aws:policy/PowerUserAccess",
];

struct Issues(Vec<ConfigIssue>);

/// The policy of a config that sets none.
pub(super) fn default_policy() -> Policy {
    validate_policy(RawPolicy::default(), &mut Issues(Vec::new()))
}

impl Issues {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigIssue {
            path: path.into(),
            message: message.into(),
        });
    }
}

pub(super) fn parse(
    text: &str,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, Vec<ConfigIssue>> {
    let mut issues = Issues(Vec::new());
    let mut root: Value = match serde_yaml::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            issues.push("", format!("invalid YAML: {e}"));
            return Err(issues.0);
        }
    };
    expand_env(&mut root, "", env, &mut issues);

    let top = match root {
        Value::Mapping(m) => m,
        Value::Null => Mapping::new(),
        _ => {
            issues.push(
                "",
                "the configuration must be a mapping with keys state, policy, labels, sources",
            );
            return Err(issues.0);
        }
    };
    for key in top.keys() {
        let k = key_str(key);
        if !TOP_KEYS.contains(&k.as_str()) {
            issues.push(
                k.clone(),
                format!(
                    "unknown key {k:?}; valid top-level keys are {}",
                    TOP_KEYS.join(", ")
                ),
            );
        }
    }

    let state: RawState = section(&top, "state", &mut issues).unwrap_or_default();
    let policy: RawPolicy = section(&top, "policy", &mut issues).unwrap_or_default();
    let labels: RawLabels = section(&top, "labels", &mut issues).unwrap_or_default();

    let state = StateConfig {
        path: resolve(base_dir, state.path.as_deref().unwrap_or("nhi-exporter.db")),
        hash_key_file: state.hash_key_file.as_deref().map(|p| resolve(base_dir, p)),
    };
    if state.path.as_os_str().is_empty() {
        issues.push("state.path", "must not be empty");
    }

    let policy = validate_policy(policy, &mut issues);
    let labels = validate_labels(labels, &mut issues);

    let mut sources = Vec::new();
    match top.get("sources") {
        None | Some(Value::Null) => {}
        Some(Value::Sequence(items)) => {
            let mut names = HashSet::new();
            for (i, item) in items.iter().enumerate() {
                let path = format!("sources[{i}]");
                if let Some(s) = validate_source(item, &path, base_dir, &mut issues) {
                    if !names.insert(s.name.clone()) {
                        issues.push(
                            format!("{path}.name"),
                            format!(
                                "duplicate source name {:?}; source names must be unique",
                                s.name
                            ),
                        );
                    }
                    sources.push(s);
                }
            }
        }
        Some(_) => issues.push("sources", "must be a list of sources"),
    }

    if issues.0.is_empty() {
        Ok(Config {
            state,
            policy,
            labels,
            sources,
        })
    } else {
        Err(issues.0)
    }
}

fn key_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => serde_yaml::to_string(other)
            .map(|s| s.trim().to_string())
            .unwrap_or_default(),
    }
}

fn resolve(base: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() || p.as_os_str().is_empty() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

/// Decode one section, reporting a decoding error with its full key path.
fn section<T: DeserializeOwned>(top: &Mapping, key: &str, issues: &mut Issues) -> Option<T> {
    let v = top.get(key)?;
    if v.is_null() {
        return None;
    }
    decode(v.clone(), key, issues)
}

fn decode<T: DeserializeOwned>(v: Value, prefix: &str, issues: &mut Issues) -> Option<T> {
    match serde_path_to_error::deserialize::<_, T>(v) {
        Ok(t) => Some(t),
        Err(e) => {
            let inner = e.path().to_string();
            let path = if inner == "." || inner.is_empty() {
                prefix.to_string()
            } else if prefix.is_empty() {
                inner
            } else {
                format!("{prefix}.{inner}")
            };
            issues.push(path, friendly(e.inner().to_string()));
            None
        }
    }
}

/// serde's messages mention Rust-isms; make the common ones operator-friendly.
/// A type error quotes the offending value, which may be a credential: drop it.
fn friendly(msg: String) -> String {
    if let Some(rest) = msg.strip_prefix("unknown field ") {
        // "unknown field `x`, expected one of `a`, `b`"
        return format!("unknown key {}", rest.replace('`', "\""));
    }
    let msg = match (
        msg.strip_prefix("invalid type: string "),
        msg.rfind(", expected "),
    ) {
        (Some(_), Some(at)) => format!("invalid type: a string{}", &msg[at..]),
        _ => msg,
    };
    msg.replace('`', "\"")
}

/// Expand `${VAR}` in every string scalar; `$$` is a literal `$`.
fn expand_env(
    v: &mut Value,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
    issues: &mut Issues,
) {
    match v {
        Value::String(s) if s.contains('$') => match expand_str(s, env) {
            Ok(x) => *s = x,
            Err(e) => issues.push(path.to_string(), e),
        },
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                expand_env(item, &format!("{path}[{i}]"), env, issues);
            }
        }
        Value::Mapping(m) => {
            for (k, item) in m.iter_mut() {
                let k = key_str(k);
                let p = if path.is_empty() {
                    k
                } else {
                    format!("{path}.{k}")
                };
                expand_env(item, &p, env, issues);
            }
        }
        Value::Tagged(t) => expand_env(&mut t.value, path, env, issues),
        _ => {}
    }
}

pub(super) fn expand_str(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(a) = after.strip_prefix('$') {
            out.push('$');
            rest = a;
        } else if let Some(a) = after.strip_prefix('{') {
            let end = a.find('}').ok_or_else(|| {
                "unterminated ${...}: close it with } (write $$ for a literal $)".to_string()
            })?;
            let name = &a[..end];
            let valid = !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit());
            if !valid {
                return Err(format!("invalid variable name {name:?} in ${{...}}"));
            }
            match env(name) {
                Some(val) => out.push_str(&val),
                None => {
                    return Err(format!(
                        "environment variable {name} is not set (referenced as ${{{name}}}); set it or write $$ for a literal $"
                    ))
                }
            }
            rest = &a[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn positive(d: Option<Dur>, default: Duration, path: &str, issues: &mut Issues) -> Duration {
    let d = d.map(|d| d.0).unwrap_or(default);
    if d.is_zero() {
        issues.push(path, "must be greater than 0");
    }
    d
}

fn validate_policy(p: RawPolicy, issues: &mut Issues) -> Policy {
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
                format!(
                    "{a:?} is not a policy ARN (e.g. arn:aws:iam::aws:policy/AdministratorAccess)"
                ),
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
        },
    }
}

fn validate_labels(l: RawLabels, issues: &mut Issues) -> LabelsConfig {
    let max = match l.team.max_values {
        None => 50,
        Some(n) if (1..=1_000).contains(&n) => n as usize,
        Some(n) => {
            issues.push(
                "labels.team.max_values",
                format!("must be between 1 and 1000, got {n}"),
            );
            50
        }
    };
    LabelsConfig {
        team_enabled: l.team.enabled.unwrap_or(false),
        team_max_values: max,
    }
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

fn validate_source(
    item: &Value,
    path: &str,
    base: &Path,
    issues: &mut Issues,
) -> Option<SourceConfig> {
    let Value::Mapping(m) = item else {
        issues.push(
            path,
            "each source must be a mapping with at least name and type",
        );
        return None;
    };
    let mut common = Mapping::new();
    let mut specific = Mapping::new();
    for (k, v) in m {
        if COMMON_KEYS.contains(&key_str(k).as_str()) {
            common.insert(k.clone(), v.clone());
        } else {
            specific.insert(k.clone(), v.clone());
        }
    }
    let c: RawSourceCommon = decode(Value::Mapping(common), path, issues)?;
    let before = issues.0.len();
    let name = match c.name {
        Some(n) if valid_name(&n) => n,
        Some(n) => {
            issues.push(
                format!("{path}.name"),
                format!(
                    "{n:?} is not a valid source name: use 1-64 characters of a-z, 0-9, _ and -"
                ),
            );
            n
        }
        None => {
            issues.push(format!("{path}.name"), "is required");
            String::new()
        }
    };
    let interval = positive(
        c.interval,
        DEFAULT_INTERVAL,
        &format!("{path}.interval"),
        issues,
    );
    if !interval.is_zero() && interval < Duration::from_secs(1) {
        issues.push(format!("{path}.interval"), "must be at least 1s");
    }
    let timeout = positive(
        c.timeout,
        DEFAULT_TIMEOUT,
        &format!("{path}.timeout"),
        issues,
    );
    let Some(kind_name) = c.kind else {
        issues.push(
            format!("{path}.type"),
            format!("is required; one of {}", SOURCE_TYPES.join(", ")),
        );
        return None;
    };
    let kind = match kind_name.as_str() {
        "gitleaks" => {
            let r: RawGitleaks = decode(Value::Mapping(specific), path, issues)?;
            let (paths, max_file_size) =
                report_files(&r.paths, r.max_file_size.as_ref(), path, base, issues);
            SourceKind::Gitleaks(GitleaksConfig {
                paths,
                max_file_size,
            })
        }
        "trufflehog" => {
            let r: RawTrufflehog = decode(Value::Mapping(specific), path, issues)?;
            let (paths, max_file_size) =
                report_files(&r.paths, r.max_file_size.as_ref(), path, base, issues);
            SourceKind::Trufflehog(TrufflehogConfig {
                paths,
                max_file_size,
            })
        }
        "detect_secrets" => {
            let r: RawDetectSecrets = decode(Value::Mapping(specific), path, issues)?;
            let (paths, max_file_size) =
                report_files(&r.paths, r.max_file_size.as_ref(), path, base, issues);
            SourceKind::DetectSecrets(DetectSecretsConfig {
                paths,
                max_file_size,
            })
        }
        "github_secret_scanning" => {
            let r: RawGithub = decode(Value::Mapping(specific), path, issues)?;
            SourceKind::GithubSecretScanning(validate_github(r, path, base, issues))
        }
        "gitlab_secret_detection" => {
            let r: RawGitlab = decode(Value::Mapping(specific), path, issues)?;
            SourceKind::GitlabSecretDetection(validate_gitlab(r, path, base, issues))
        }
        "vault" => {
            let r: RawVault = decode(Value::Mapping(specific), path, issues)?;
            SourceKind::Vault(validate_vault(r, path, base, issues))
        }
        "aws" => {
            let r: RawAws = decode(Value::Mapping(specific), path, issues)?;
            SourceKind::Aws(validate_aws(r, path, issues))
        }
        other => {
            issues.push(
                format!("{path}.type"),
                format!(
                    "unknown source type {other:?}; this build supports {}",
                    SOURCE_TYPES.join(", ")
                ),
            );
            return None;
        }
    };
    if issues.0.len() > before {
        return None;
    }
    Some(SourceConfig {
        name,
        interval,
        timeout,
        enabled: c.enabled.unwrap_or(true),
        kind,
    })
}

/// The keys of the report-file sources: `paths` (globs, made absolute)
/// and `max_file_size`.
fn report_files(
    raw_paths: &[String],
    max_file_size: Option<&Value>,
    path: &str,
    base: &Path,
    issues: &mut Issues,
) -> (Vec<String>, u64) {
    if raw_paths.is_empty() {
        issues.push(
            format!("{path}.paths"),
            "must list at least one glob of report files",
        );
    }
    let mut paths = Vec::new();
    for (i, p) in raw_paths.iter().enumerate() {
        let abs = resolve(base, p).to_string_lossy().into_owned();
        if let Err(e) = glob::Pattern::new(&abs) {
            issues.push(
                format!("{path}.paths[{i}]"),
                format!("invalid glob {p:?}: {e}"),
            );
        }
        paths.push(abs);
    }
    let max_file_size = match max_file_size {
        None => DEFAULT_MAX_FILE_SIZE,
        Some(v) => match size_value(v) {
            Ok(n) if n > 0 => n,
            Ok(_) => {
                issues.push(format!("{path}.max_file_size"), "must be greater than 0");
                DEFAULT_MAX_FILE_SIZE
            }
            Err(e) => {
                issues.push(format!("{path}.max_file_size"), e);
                DEFAULT_MAX_FILE_SIZE
            }
        },
    };
    (paths, max_file_size)
}

fn size_value(v: &Value) -> Result<u64, String> {
    match v {
        Value::Number(n) => n
            .as_u64()
            .ok_or_else(|| format!("invalid size {n}: use a whole number of bytes or e.g. 256MiB")),
        Value::String(s) => parse_size(s),
        _ => Err("invalid size: use a whole number of bytes or e.g. 256MiB".into()),
    }
}
