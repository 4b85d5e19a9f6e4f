//! The one registry of source types. Adding a type is one folder under
//! `src/sources/` (its settings, validation, construction and poll) and one
//! line here.

use super::{aws, azure, gcp, github, gitlab, kubernetes, reports, vault, Source};
use crate::config::{self, Config, ConfigError, ConfigIssue, SourceConfig, SourceSpec};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

pub use crate::config::SourceType;

/// Builds a source from its type's validated settings (HTTP clients and
/// their CA files included); contacts nothing.
pub type BuildFn = fn(&dyn SourceSpec) -> Result<Arc<dyn Source>, String>;

/// A source type: how its keys are parsed and how a source is built from
/// its validated settings.
#[derive(Clone, Copy)]
pub struct Registration {
    pub ty: SourceType,
    pub build: BuildFn,
}

impl Registration {
    /// The settings of a spec built by this type's parser.
    pub fn settings<T: 'static>(spec: &dyn SourceSpec) -> Result<&T, String> {
        spec.as_any()
            .downcast_ref::<T>()
            .ok_or_else(|| format!("settings of another type ({})", spec.type_name()))
    }
}

/// Every source type this build knows.
pub const REGISTRY: &[Registration] = &[
    reports::GITLEAKS,
    reports::TRUFFLEHOG,
    reports::DETECT_SECRETS,
    github::REGISTRATION,
    gitlab::REGISTRATION,
    vault::REGISTRATION,
    aws::REGISTRATION,
    kubernetes::REGISTRATION,
    azure::REGISTRATION,
    gcp::REGISTRATION,
];

/// The parsers of every known type, for the configuration.
pub fn types() -> Vec<SourceType> {
    REGISTRY.iter().map(|r| r.ty).collect()
}

/// Parse configuration text with every known source type.
pub fn parse_config(
    text: &str,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, Vec<ConfigIssue>> {
    config::parse(text, base_dir, env, &types())
}

/// A configuration and its sources, built: what a start or a reload swaps
/// in at once.
#[derive(Clone)]
pub struct Loaded {
    pub config: Arc<Config>,
    /// One built source per enabled source, by name.
    pub sources: BTreeMap<String, Arc<dyn Source>>,
}

/// Load a configuration file and build every enabled source (HTTP clients
/// with their CA files included). Contacts nothing. Any failure fails the
/// whole load, naming the source's key path.
pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
    let config = config::load(path, &types())?;
    let mut sources = BTreeMap::new();
    let mut issues = Vec::new();
    for (i, s) in config.sources.iter().enumerate() {
        if !s.enabled {
            continue;
        }
        match build(s) {
            Ok(src) => {
                sources.insert(s.name.clone(), src);
            }
            Err(message) => issues.push(ConfigIssue {
                path: format!("sources[{i}]"),
                message,
            }),
        }
    }
    if !issues.is_empty() {
        return Err(ConfigError {
            file: path.to_path_buf(),
            issues,
        });
    }
    Ok(Loaded {
        config: Arc::new(config),
        sources,
    })
}

/// Build one source from its configuration.
pub fn build(cfg: &SourceConfig) -> Result<Arc<dyn Source>, String> {
    let reg = REGISTRY
        .iter()
        .find(|r| r.ty.name == cfg.type_name())
        .ok_or_else(|| format!("unknown source type {:?}", cfg.type_name()))?;
    (reg.build)(cfg.spec.as_ref())
}
