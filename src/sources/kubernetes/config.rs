//! The keys of a `kubernetes` source and their validation.

use crate::config::yaml::Issues;
use crate::config::{SourceParse, SourceSettings, SourceSpec};
use crate::model::InventoryKinds;
use kube::config::Kubeconfig;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The scope label of an in-cluster source without `cluster_name`.
pub const IN_CLUSTER: &str = "in-cluster";

#[derive(Debug, Clone, PartialEq)]
pub struct KubernetesConfig {
    /// The kubeconfig file; `None`: the in-cluster service account.
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context; `None`: its current context.
    pub context: Option<String>,
    /// The cluster's name: the `account` of its identities and the `scope`
    /// label. Default: the context's name, `in-cluster` in a pod.
    pub cluster_name: String,
}

impl SourceSettings for KubernetesConfig {
    fn type_name(&self) -> &'static str {
        super::TYPE_NAME
    }
    fn inventory(&self) -> Option<InventoryKinds> {
        Some(super::INVENTORY)
    }
}

pub(super) fn parse(cx: &mut SourceParse<'_>) -> Option<Arc<dyn SourceSpec>> {
    let r: RawKubernetes = cx.decode()?;
    Some(Arc::new(validate(r, cx.path, cx.base, cx.issues)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKubernetes {
    kubeconfig: Option<String>,
    context: Option<String>,
    cluster_name: Option<String>,
}

fn validate(r: RawKubernetes, path: &str, base: &Path, issues: &mut Issues) -> KubernetesConfig {
    let mut context = r.context.filter(|c| !c.trim().is_empty());
    let kubeconfig = match r.kubeconfig.as_deref().map(str::trim) {
        None => {
            if context.is_some() {
                issues.push(
                    format!("{path}.context"),
                    "needs kubeconfig: in a pod the source uses its own service account (omit context)",
                );
            }
            None
        }
        Some("") => {
            issues.push(
                format!("{path}.kubeconfig"),
                "must not be empty: a kubeconfig file, or omit it to run in-cluster",
            );
            None
        }
        Some(f) => {
            let file = base.join(f);
            match Kubeconfig::read_from(&file) {
                // Only names are reported: a kubeconfig holds credentials.
                Err(e) => issues.push(
                    format!("{path}.kubeconfig"),
                    format!(
                        "cannot read {} as a kubeconfig: {}",
                        file.display(),
                        kubeconfig_error(&e)
                    ),
                ),
                Ok(k) => {
                    let names: Vec<&str> = k.contexts.iter().map(|c| c.name.as_str()).collect();
                    match context.as_deref() {
                        Some(c) if !names.contains(&c) => issues.push(
                            format!("{path}.context"),
                            format!(
                                "is not a context of {} (it has: {})",
                                file.display(),
                                names.join(", ")
                            ),
                        ),
                        Some(_) => {}
                        None => match k.current_context.filter(|c| !c.is_empty()) {
                            Some(c) => context = Some(c),
                            None => issues.push(
                                format!("{path}.context"),
                                format!(
                                    "is required: {} has no current-context (it has: {})",
                                    file.display(),
                                    names.join(", ")
                                ),
                            ),
                        },
                    }
                }
            }
            Some(file)
        }
    };
    let cluster_name = match r.cluster_name {
        Some(n) => {
            let n = n.trim().to_string();
            if n.is_empty() || n.len() > 128 || n.chars().any(char::is_control) {
                issues.push(
                    format!("{path}.cluster_name"),
                    "must be 1 to 128 printable characters, e.g. prod",
                );
            }
            n
        }
        None => context.clone().unwrap_or_else(|| IN_CLUSTER.to_string()),
    };
    KubernetesConfig {
        kubeconfig,
        context,
        cluster_name,
    }
}

/// What is wrong with a kubeconfig, without quoting its content.
fn kubeconfig_error(e: &kube::config::KubeconfigError) -> String {
    use kube::config::KubeconfigError as E;
    match e {
        E::ReadConfig(io, _) => io.to_string(),
        E::Parse(_) | E::KindMismatch | E::ApiVersionMismatch => {
            "not a kubeconfig (YAML with clusters, contexts and users)".into()
        }
        _ => "not a usable kubeconfig".into(),
    }
}
