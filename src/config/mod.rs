//! Configuration: strict YAML (unknown keys are errors naming their path),
//! `${VAR}` expansion, defaults, then validation into the types the rest of
//! the exporter uses. Every problem is reported with its key path, and all
//! problems are collected, not just the first.
//!
//! This module holds the YAML machinery ([`yaml`]), the top level, `state`,
//! `policy` and `labels` ([`policy`]), and the keys every source has. Each
//! source type's own keys, their validation and their settings type live
//! with the source in `src/sources/<type>/`, behind [`SourceSpec`]; the
//! source types are handed in by the caller (`sources::registry`).

mod duration;
mod policy;
pub mod yaml;

pub use duration::{format_duration, parse_duration, parse_size, Dur};
pub use policy::{LabelsConfig, Policy, Privileged, Window, DEFAULT_AWS_PRIVILEGED};
pub use yaml::{Issues, SourceParse};

use crate::model::InventoryKinds;
use policy::{validate_labels, validate_policy, RawLabels, RawPolicy};
use serde::Deserialize;
use serde_yaml::{Mapping, Value};
use std::any::Any;
use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use yaml::{decode, expand_env, key_str, positive, resolve, section};

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
    /// Which store: the SQLite file `path`, or PostgreSQL.
    pub backend: StoreBackend,
    /// SQLite store file (backend sqlite).
    pub path: PathBuf,
    /// HMAC key file; `None` means "beside the store" (sqlite only).
    pub hash_key_file: Option<PathBuf>,
}

/// `state.backend`.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreBackend {
    /// The embedded default: one instance, the file `state.path`.
    Sqlite,
    /// Shared by replicas; the URL (with its password) is read from
    /// `url_file` at start-up and never logged.
    Postgres { url_file: PathBuf },
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

/// One configured source: the keys every source has, and its type's own
/// validated settings.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    pub name: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub enabled: bool,
    pub spec: Arc<dyn SourceSpec>,
}

impl PartialEq for SourceConfig {
    fn eq(&self, o: &Self) -> bool {
        self.name == o.name
            && self.interval == o.interval
            && self.timeout == o.timeout
            && self.enabled == o.enabled
            && self.spec.same(o.spec.as_ref())
    }
}

impl SourceConfig {
    /// The `source_type` label value.
    pub fn type_name(&self) -> &'static str {
        self.spec.type_name()
    }

    /// How long without a successful poll before this source's data is
    /// dropped from `/metrics`.
    pub fn stale_after(&self, policy: &Policy) -> Duration {
        policy.stale_after.unwrap_or(self.interval * 3)
    }

    /// This source's settings as its type's own struct.
    pub fn settings<T: 'static>(&self) -> Option<&T> {
        self.spec.as_any().downcast_ref()
    }
}

/// A source type's validated settings. Implemented through
/// [`SourceSettings`] by each type's settings struct.
pub trait SourceSpec: fmt::Debug + Send + Sync + 'static {
    /// The `type` key and `source_type` label value.
    fn type_name(&self) -> &'static str;
    fn as_any(&self) -> &dyn Any;
    /// Equal settings (a reload keeps a source whose settings are equal).
    fn same(&self, other: &dyn SourceSpec) -> bool;
    /// The provider and kinds an inventory source reports, for zero-valued
    /// series before its first poll; `None` for scanners.
    fn inventory(&self) -> Option<InventoryKinds>;
}

/// What a source type's settings struct implements to be a [`SourceSpec`].
pub trait SourceSettings: fmt::Debug + PartialEq + Send + Sync + 'static {
    fn type_name(&self) -> &'static str;
    fn inventory(&self) -> Option<InventoryKinds> {
        None
    }
}

impl<T: SourceSettings> SourceSpec for T {
    fn type_name(&self) -> &'static str {
        SourceSettings::type_name(self)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn same(&self, other: &dyn SourceSpec) -> bool {
        other.as_any().downcast_ref::<T>() == Some(self)
    }
    fn inventory(&self) -> Option<InventoryKinds> {
        SourceSettings::inventory(self)
    }
}

/// A source type as the configuration knows it: its `type` name and the
/// parser of its own keys.
#[derive(Clone, Copy)]
pub struct SourceType {
    pub name: &'static str,
    pub parse: fn(&mut SourceParse<'_>) -> Option<Arc<dyn SourceSpec>>,
}

fn type_names(types: &[SourceType]) -> String {
    types.iter().map(|t| t.name).collect::<Vec<_>>().join(", ")
}

pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(300);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Read, expand, parse and validate a configuration file. Relative paths
/// in it are resolved against the file's directory.
pub fn load(path: &Path, types: &[SourceType]) -> Result<Config, ConfigError> {
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
    parse(&text, base, &|k| std::env::var(k).ok(), types).map_err(|issues| ConfigError {
        file: path.to_path_buf(),
        issues,
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawState {
    /// `sqlite` (the default) or `postgres`.
    backend: Option<String>,
    path: Option<String>,
    /// The PostgreSQL backend's URL file.
    url_file: Option<String>,
    hash_key_file: Option<String>,
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

const TOP_KEYS: [&str; 4] = ["state", "policy", "labels", "sources"];

/// Parse configuration text. `env` looks up variables for `${VAR}`;
/// `types` are the source types this build knows (`sources::registry`).
pub fn parse(
    text: &str,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    types: &[SourceType],
) -> Result<Config, Vec<ConfigIssue>> {
    let mut issues = Issues::default();
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

    let backend = match state.backend.as_deref() {
        None | Some("sqlite") => {
            if state.url_file.is_some() {
                issues.push(
                    "state.url_file",
                    "is for backend: postgres; the sqlite backend uses state.path",
                );
            }
            StoreBackend::Sqlite
        }
        Some("postgres") => {
            if state.path.is_some() {
                issues.push(
                    "state.path",
                    "is for backend: sqlite; the postgres backend reads its URL from state.url_file",
                );
            }
            if state.hash_key_file.is_none() {
                issues.push(
                    "state.hash_key_file",
                    "is required with backend: postgres: every replica must hash secrets with the same key (a file all of them read, e.g. a Kubernetes Secret)",
                );
            }
            match state.url_file.as_deref() {
                Some(f) if !f.trim().is_empty() => StoreBackend::Postgres {
                    url_file: resolve(base_dir, f),
                },
                _ => {
                    issues.push(
                        "state.url_file",
                        "is required with backend: postgres: a file holding postgres://USER:PASSWORD@HOST:PORT/DATABASE?sslmode=verify-full",
                    );
                    StoreBackend::Sqlite
                }
            }
        }
        Some(other) => {
            issues.push(
                "state.backend",
                format!("unknown backend {other:?}; use sqlite (the default) or postgres"),
            );
            StoreBackend::Sqlite
        }
    };
    let state = StateConfig {
        backend,
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
                if let Some(s) = validate_source(item, &path, base_dir, types, &mut issues) {
                    if !names.insert(s.name.clone()) {
                        issues.push(
                            format!("{path}.name"),
                            "duplicate source name: source names must be unique",
                        );
                    }
                    sources.push(s);
                }
            }
        }
        Some(_) => issues.push("sources", "must be a list of sources"),
    }

    if issues.is_empty() {
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
    types: &[SourceType],
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
    let before = issues.len();
    let name = match c.name {
        Some(n) if valid_name(&n) => n,
        Some(n) => {
            issues.push(
                format!("{path}.name"),
                "is not a valid source name: use 1-64 characters of a-z, 0-9, _ and -".to_string(),
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
            format!("is required; one of {}", type_names(types)),
        );
        return None;
    };
    let Some(ty) = types.iter().find(|t| t.name == kind_name) else {
        issues.push(
            format!("{path}.type"),
            format!(
                "unknown source type; this build supports {}",
                type_names(types)
            ),
        );
        return None;
    };
    let spec = (ty.parse)(&mut SourceParse::new(path, base, issues, specific));
    let spec = spec?;
    if issues.len() > before {
        return None;
    }
    Some(SourceConfig {
        name,
        interval,
        timeout,
        enabled: c.enabled.unwrap_or(true),
        spec,
    })
}

#[cfg(test)]
pub(crate) mod test_support;
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
