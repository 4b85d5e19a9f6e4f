//! The keys of an `azure` source and their validation.

use crate::config::yaml::{ca_file, credential, http_url, Issues};
use crate::config::{Credential, SourceParse, SourceSettings, SourceSpec};
use crate::model::InventoryKinds;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How an `azure` source gets its tokens (`auth.method`).
#[derive(Debug, Clone, PartialEq)]
pub enum AzureAuth {
    /// An app registration's client secret (client-credentials grant).
    ClientSecret {
        client_id: String,
        secret: Credential,
    },
    /// AKS workload identity: the projected service-account token in
    /// `token_file` is exchanged as a client assertion (federated
    /// credential). Re-read at every token request (kubelet rotates it).
    WorkloadIdentity {
        client_id: String,
        token_file: PathBuf,
    },
    /// The managed identity of the VM or pod (IMDS); `client_id` picks a
    /// user-assigned one.
    ManagedIdentity { client_id: Option<String> },
}

/// Base URLs, for sovereign clouds and tests. No trailing slash.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoints {
    /// Entra ID token endpoint host (`{login}/{tenant}/oauth2/v2.0/token`).
    pub login: String,
    /// Microsoft Graph (`{graph}/v1.0/...`); its token scope is `{graph}/.default`.
    pub graph: String,
    /// Azure Resource Manager; its token scope is `{arm}/.default`.
    pub arm: String,
    /// The Key Vault token resource (scope `{key_vault_resource}/.default`).
    pub key_vault_resource: String,
    /// The instance metadata token endpoint of `managed_identity`.
    pub managed_identity: String,
}

impl Default for Endpoints {
    fn default() -> Self {
        Self {
            login: "https://login.microsoftonline.com".into(),
            graph: "https://graph.microsoft.com".into(),
            arm: "https://management.azure.com".into(),
            key_vault_resource: "https://vault.azure.net".into(),
            managed_identity: "http://169.254.169.254/metadata/identity/oauth2/token".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct AzureConfig {
    /// The Entra tenant: the `account` (and `scope` label) of what is read.
    pub tenant_id: String,
    pub auth: AzureAuth,
    /// Subscriptions whose RBAC role assignments are read (`[]`: Entra only).
    pub subscriptions: Vec<String>,
    /// Key Vault URLs (`https://NAME.vault.azure.net`), without trailing `/`.
    pub key_vaults: Vec<String>,
    /// Read current Key Vault values, HMAC them with the store key and drop
    /// them, to link leaks whose secret equals a vault value.
    pub match_values: bool,
    pub endpoints: Endpoints,
    pub ca_file: Option<PathBuf>,
}

impl SourceSettings for AzureConfig {
    fn type_name(&self) -> &'static str {
        super::TYPE_NAME
    }
    fn inventory(&self) -> Option<InventoryKinds> {
        Some(super::INVENTORY)
    }
}

pub(super) fn parse(cx: &mut SourceParse<'_>) -> Option<Arc<dyn SourceSpec>> {
    let r: RawAzure = cx.decode()?;
    Some(Arc::new(validate(r, cx.path, cx.base, cx.issues)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAzure {
    tenant_id: Option<String>,
    auth: Option<RawAuth>,
    subscriptions: Option<Vec<String>>,
    key_vaults: Option<Vec<String>>,
    match_values: Option<bool>,
    endpoints: Option<RawEndpoints>,
    tls: Option<RawTls>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    method: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    client_secret_file: Option<String>,
    token_file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEndpoints {
    login: Option<String>,
    graph: Option<String>,
    arm: Option<String>,
    key_vault_resource: Option<String>,
    managed_identity: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    ca_file: Option<String>,
}

/// A GUID in its usual 8-4-4-4-12 hex form.
pub fn is_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.chars().all(|c| c.is_ascii_hexdigit()))
}

fn guid(v: Option<String>, key: String, what: &str, issues: &mut Issues) -> Option<String> {
    match v.map(|s| s.trim().to_ascii_lowercase()) {
        None => {
            issues.push(key, format!("is required: the {what} (a GUID)"));
            None
        }
        Some(s) if is_guid(&s) => Some(s),
        // Not echoed: a misplaced secret must not reach the log.
        Some(_) => {
            issues.push(
                key,
                format!("must be the {what} as a GUID, e.g. 00000000-0000-0000-0000-000000000000"),
            );
            None
        }
    }
}

fn validate(r: RawAzure, path: &str, base: &Path, issues: &mut Issues) -> AzureConfig {
    let tenant_id = match r.tenant_id.as_deref().map(str::trim) {
        // A verified domain (contoso.onmicrosoft.com) names a tenant too.
        Some(t)
            if is_guid(t)
                || (t.contains('.')
                    && t.len() <= 253
                    && t.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')) =>
        {
            t.to_ascii_lowercase()
        }
        Some(_) => {
            issues.push(
                format!("{path}.tenant_id"),
                "must be the directory (tenant) id as a GUID, or its domain (contoso.onmicrosoft.com)",
            );
            String::new()
        }
        None => {
            issues.push(
                format!("{path}.tenant_id"),
                "is required: the directory (tenant) id, e.g. 00000000-0000-0000-0000-000000000000",
            );
            String::new()
        }
    };
    let auth = validate_auth(r.auth, path, base, issues);
    let mut subscriptions = Vec::new();
    for (i, s) in r.subscriptions.unwrap_or_default().into_iter().enumerate() {
        if let Some(g) = guid(
            Some(s),
            format!("{path}.subscriptions[{i}]"),
            "subscription id",
            issues,
        ) {
            if !subscriptions.contains(&g) {
                subscriptions.push(g);
            }
        }
    }
    let mut key_vaults = Vec::new();
    for (i, v) in r.key_vaults.unwrap_or_default().iter().enumerate() {
        let u = http_url(
            v,
            &format!("{path}.key_vaults[{i}]"),
            "https://acme-prod.vault.azure.net",
            issues,
        );
        if !key_vaults.contains(&u) {
            key_vaults.push(u);
        }
    }
    let mut endpoints = Endpoints::default();
    if let Some(e) = r.endpoints {
        let mut set = |v: Option<String>, key: &str, example: &str, slot: &mut String| {
            if let Some(v) = v {
                *slot = http_url(&v, &format!("{path}.endpoints.{key}"), example, issues);
            }
        };
        set(
            e.login,
            "login",
            "https://login.microsoftonline.com",
            &mut endpoints.login,
        );
        set(
            e.graph,
            "graph",
            "https://graph.microsoft.com",
            &mut endpoints.graph,
        );
        set(
            e.arm,
            "arm",
            "https://management.azure.com",
            &mut endpoints.arm,
        );
        set(
            e.key_vault_resource,
            "key_vault_resource",
            "https://vault.azure.net",
            &mut endpoints.key_vault_resource,
        );
        set(
            e.managed_identity,
            "managed_identity",
            "http://169.254.169.254/metadata/identity/oauth2/token",
            &mut endpoints.managed_identity,
        );
    }
    let ca_file = r.tls.and_then(|t| {
        ca_file(
            t.ca_file.as_deref(),
            &format!("{path}.tls.ca_file"),
            base,
            issues,
        )
    });
    AzureConfig {
        tenant_id,
        auth,
        subscriptions,
        key_vaults,
        match_values: r.match_values.unwrap_or(false),
        endpoints,
        ca_file,
    }
}

fn validate_auth(r: Option<RawAuth>, path: &str, base: &Path, issues: &mut Issues) -> AzureAuth {
    let dummy = AzureAuth::ManagedIdentity { client_id: None };
    let Some(a) = r else {
        issues.push(
            format!("{path}.auth"),
            "is required: {method: client_secret, client_id: ..., client_secret_file: ...}, {method: workload_identity} or {method: managed_identity}",
        );
        return dummy;
    };
    let p = format!("{path}.auth");
    let env_client = || {
        std::env::var("AZURE_CLIENT_ID")
            .ok()
            .filter(|s| !s.is_empty())
    };
    match a.method.as_deref().map(str::trim) {
        Some("client_secret") => {
            for (set, key) in [(a.token_file.is_some(), "token_file")] {
                if set {
                    issues.push(format!("{p}.{key}"), "is only for method workload_identity");
                }
            }
            let client_id = guid(
                a.client_id,
                format!("{p}.client_id"),
                "application (client) id",
                issues,
            );
            let secret = credential(
                a.client_secret,
                a.client_secret_file,
                "client_secret",
                &p,
                base,
                issues,
            );
            match (client_id, secret) {
                (Some(client_id), Some(secret)) => AzureAuth::ClientSecret { client_id, secret },
                _ => dummy,
            }
        }
        Some("workload_identity") => {
            no_secret(&a.client_secret, &a.client_secret_file, &p, issues);
            // The AKS webhook sets AZURE_CLIENT_ID and AZURE_FEDERATED_TOKEN_FILE.
            let client_id = match a.client_id.or_else(env_client) {
                Some(c) => guid(
                    Some(c),
                    format!("{p}.client_id"),
                    "application (client) id",
                    issues,
                ),
                None => {
                    issues.push(
                        format!("{p}.client_id"),
                        "is required (or the AZURE_CLIENT_ID environment variable the workload identity webhook sets)",
                    );
                    None
                }
            };
            let file = a
                .token_file
                .or_else(|| std::env::var("AZURE_FEDERATED_TOKEN_FILE").ok())
                .filter(|f| !f.trim().is_empty());
            let token_file = match file {
                Some(f) => crate::config::yaml::resolve(base, f.trim()),
                None => {
                    issues.push(
                        format!("{p}.token_file"),
                        "is required (or the AZURE_FEDERATED_TOKEN_FILE environment variable the workload identity webhook sets)",
                    );
                    PathBuf::new()
                }
            };
            match client_id {
                Some(client_id) => AzureAuth::WorkloadIdentity {
                    client_id,
                    token_file,
                },
                None => dummy,
            }
        }
        Some("managed_identity") => {
            no_secret(&a.client_secret, &a.client_secret_file, &p, issues);
            if a.token_file.is_some() {
                issues.push(
                    format!("{p}.token_file"),
                    "is only for method workload_identity",
                );
            }
            let client_id = a.client_id.and_then(|c| {
                guid(
                    Some(c),
                    format!("{p}.client_id"),
                    "user-assigned identity's client id",
                    issues,
                )
            });
            AzureAuth::ManagedIdentity { client_id }
        }
        Some(_) | None => {
            issues.push(
                format!("{p}.method"),
                "must be client_secret, workload_identity or managed_identity",
            );
            dummy
        }
    }
}

fn no_secret(inline: &Option<String>, file: &Option<String>, p: &str, issues: &mut Issues) {
    if inline.is_some() || file.is_some() {
        issues.push(
            format!("{p}.client_secret"),
            "is only for method client_secret",
        );
    }
}
