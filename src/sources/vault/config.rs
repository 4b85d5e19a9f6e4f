//! The keys of a `vault` source and their validation.

use crate::config::yaml::{ca_file, credential, http_url, Issues};
use crate::config::{Credential, SourceParse, SourceSettings, SourceSpec};
use crate::model::InventoryKinds;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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

impl SourceSettings for VaultConfig {
    fn type_name(&self) -> &'static str {
        super::TYPE_NAME
    }
    fn inventory(&self) -> Option<InventoryKinds> {
        Some(super::INVENTORY)
    }
}

pub(super) fn parse(cx: &mut SourceParse<'_>) -> Option<Arc<dyn SourceSpec>> {
    let r: RawVault = cx.decode()?;
    Some(Arc::new(validate_vault(r, cx.path, cx.base, cx.issues)))
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

fn validate_vault(r: RawVault, path: &str, base: &Path, issues: &mut Issues) -> VaultConfig {
    let address = match r.address.as_deref() {
        Some(a) => http_url(
            a,
            &format!("{path}.address"),
            "https://vault.example.com:8200",
            issues,
        ),
        None => {
            issues.push(
                format!("{path}.address"),
                "is required, e.g. https://vault.example.com:8200",
            );
            String::new()
        }
    };
    let apath = format!("{path}.auth");
    let empty = || Credential::new(String::new());
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
                        "is not an auth mount path, e.g. approle".to_string(),
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
            Some(_) => {
                issues.push(
                    format!("{apath}.method"),
                    "unknown method; use token or approle".to_string(),
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
                "is not a mount path, e.g. secret".to_string(),
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
            "is not a namespace path, e.g. team-a or team-a/prod".to_string(),
        );
    }
    VaultConfig {
        address,
        namespace,
        auth,
        kv_mounts,
        match_values: r.match_values.unwrap_or(false),
        ca_file: ca_file(
            r.tls.and_then(|t| t.ca_file).as_deref(),
            &format!("{path}.tls.ca_file"),
            base,
            issues,
        ),
    }
}
