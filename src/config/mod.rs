//! Configuration: raw YAML types (strict: unknown keys are errors), `${VAR}`
//! expansion, defaults, then validation into the domain types the rest of
//! the exporter uses. Every problem is reported with its key path, and all
//! problems are collected, not just the first.

mod duration;
mod raw;

pub use duration::{format_duration, parse_duration, parse_size, Dur};

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One configuration problem, with the key path it concerns
/// (`sources[1].interval`) and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Every problem found in a configuration file.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigError {
    pub file: PathBuf,
    pub issues: Vec<ConfigIssue>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} error(s) in {}:",
            self.issues.len(),
            self.file.display()
        )?;
        for i in &self.issues {
            write!(f, "\n  {i}")?;
        }
        Ok(())
    }
}

/// The validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub state: StateConfig,
    pub policy: Policy,
    pub labels: LabelsConfig,
    pub sources: Vec<SourceConfig>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StateConfig {
    /// SQLite store file.
    pub path: PathBuf,
    /// HMAC key file; `None` means "beside the store".
    pub hash_key_file: Option<PathBuf>,
}

impl StateConfig {
    /// Where the HMAC key lives: the configured file, else `hmac.key` beside the store.
    pub fn hash_key_path(&self) -> PathBuf {
        match &self.hash_key_file {
            Some(p) => p.clone(),
            None => {
                let dir = self.path.parent().unwrap_or_else(|| Path::new("."));
                let stem = self
                    .path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "state.db".into());
                dir.join(format!("{stem}.hmac.key"))
            }
        }
    }
}

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
        raw::default_policy()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Privileged {
    pub aws_policies: Vec<String>,
    pub vault_policies: Vec<String>,
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
}

#[derive(Debug, Clone, PartialEq)]
pub struct SourceConfig {
    pub name: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub enabled: bool,
    pub kind: SourceKind,
}

impl SourceConfig {
    /// The `source_type` label value.
    pub fn type_name(&self) -> &'static str {
        self.kind.type_name()
    }

    /// How long without a successful poll before this source's data is
    /// dropped from `/metrics`.
    pub fn stale_after(&self, policy: &Policy) -> Duration {
        policy.stale_after.unwrap_or(self.interval * 3)
    }
}

/// Type-specific settings; one variant per source `type`.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceKind {
    Gitleaks(GitleaksConfig),
    Trufflehog(TrufflehogConfig),
    DetectSecrets(DetectSecretsConfig),
    GithubSecretScanning(GithubConfig),
    GitlabSecretDetection(GitlabConfig),
    Vault(VaultConfig),
    Aws(AwsConfig),
}

impl SourceKind {
    pub fn type_name(&self) -> &'static str {
        match self {
            SourceKind::Gitleaks(_) => "gitleaks",
            SourceKind::Trufflehog(_) => "trufflehog",
            SourceKind::DetectSecrets(_) => "detect_secrets",
            SourceKind::GithubSecretScanning(_) => "github_secret_scanning",
            SourceKind::GitlabSecretDetection(_) => "gitlab_secret_detection",
            SourceKind::Vault(_) => "vault",
            SourceKind::Aws(_) => "aws",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct GitleaksConfig {
    /// Glob patterns of report files (JSON or SARIF), made absolute.
    pub paths: Vec<String>,
    /// Reports larger than this are rejected (counted `io` error) rather
    /// than read into memory.
    pub max_file_size: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TrufflehogConfig {
    /// Glob patterns of trufflehog v3 `--json` (JSON lines) reports, made
    /// absolute.
    pub paths: Vec<String>,
    /// Reports larger than this are rejected (counted `io` error).
    pub max_file_size: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DetectSecretsConfig {
    /// Glob patterns of detect-secrets baseline files, made absolute.
    pub paths: Vec<String>,
    /// Baselines larger than this are rejected (counted `io` error).
    pub max_file_size: u64,
}

pub const DEFAULT_MAX_FILE_SIZE: u64 = 256 * 1024 * 1024;

pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(300);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Read, expand, parse and validate a configuration file. Relative paths
/// in it are resolved against the file's directory.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read(path).map_err(|e| ConfigError {
        file: path.to_path_buf(),
        issues: vec![ConfigIssue {
            path: String::new(),
            message: format!("cannot read the configuration file: {e}"),
        }],
    })?;
    let text = String::from_utf8(text).map_err(|e| ConfigError {
        file: path.to_path_buf(),
        issues: vec![ConfigIssue {
            path: String::new(),
            message: format!("the configuration file is not UTF-8: {e}"),
        }],
    })?;
    let base = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."));
    parse(&text, base, &|k| std::env::var(k).ok()).map_err(|issues| ConfigError {
        file: path.to_path_buf(),
        issues,
    })
}

/// Parse configuration text. `env` looks up variables for `${VAR}`.
pub fn parse(
    text: &str,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, Vec<ConfigIssue>> {
    raw::parse(text, base_dir, env)
}

#[cfg(test)]
mod tests;

/// A credential read from the config (`token`) or its `*_file` twin. Never
/// printed: `Debug` shows a placeholder.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential(String);

impl Credential {
    pub fn new(s: String) -> Self {
        Credential(s)
    }
    /// The secret itself, for the request header only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credential(<redacted>)")
    }
}

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

/// How a `vault` source logs in.
#[derive(Debug, Clone, PartialEq)]
pub enum VaultAuth {
    Token(Credential),
    AppRole {
        /// Auth mount path without `auth/` (default `approle`).
        mount: String,
        role_id: Credential,
        secret_id: Credential,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct VaultConfig {
    /// `https://vault.example.com:8200`, without a trailing slash.
    pub address: String,
    /// Sent as `X-Vault-Namespace` when not empty (Vault Enterprise, OpenBao).
    pub namespace: String,
    pub auth: VaultAuth,
    /// KV version 2 mounts whose metadata is walked (`secret`).
    pub kv_mounts: Vec<String>,
    /// Read current KV values, HMAC them with the store key and drop them,
    /// to link leaks whose secret equals a vault value.
    pub match_values: bool,
    pub ca_file: Option<PathBuf>,
}

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
}
