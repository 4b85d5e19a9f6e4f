//! `azure` source: one Entra ID tenant through Microsoft Graph v1.0, the
//! RBAC role assignments of listed subscriptions through Azure Resource
//! Manager, and the secrets of listed Key Vaults (data plane 7.4). Plain
//! REST with reqwest (see [`api`] for why not the `azure_*` crates).
//!
//! Auth (`auth.method`): `client_secret` (client-credentials grant at
//! `{login}/{tenant}/oauth2/v2.0/token`), `workload_identity` (the AKS
//! projected token as a client assertion, same endpoint), or
//! `managed_identity` (the instance metadata endpoint). One token per
//! audience per poll: Graph, ARM, Key Vault.
//!
//! One poll reads (pages follow `@odata.nextLink` / `nextLink`, same origin
//! only; 429 honours `Retry-After`, 5xx back off, within the poll's time):
//!
//! | request | for |
//! |---|---|
//! | `GET /v1.0/applications?$select=id,appId,displayName,createdDateTime,tags,passwordCredentials,keyCredentials&$top=999` | identities `application`, their credentials |
//! | `GET /v1.0/servicePrincipals?$select=id,appId,displayName,servicePrincipalType,appOwnerOrganizationId,tags,passwordCredentials,keyCredentials&$top=999` | identities `service_principal`, `managed_identity`, their credentials |
//! | `GET /v1.0/roleManagement/directory/roleDefinitions?$select=id,displayName` | the ids of `policy.privileged.azure_directory_roles` |
//! | `GET /v1.0/roleManagement/directory/roleAssignments?$filter=roleDefinitionId eq '{id}'&$expand=principal`, per privileged role | directory privilege, humans |
//! | `GET {arm}/subscriptions/{s}/providers/Microsoft.Authorization/roleDefinitions?api-version=2022-04-01`, per subscription | RBAC role names |
//! | `GET {arm}/subscriptions/{s}/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01&$filter=atScope()`, per subscription | RBAC privilege at subscription scope or above, humans |
//! | `GET /beta/reports/servicePrincipalSignInActivities`, `GET /beta/reports/appCredentialSignInActivities` | last use (needs `AuditLog.Read.All` and an Entra ID P1/P2 licence: a 403 is logged once and use is then not tracked) |
//! | `GET {vault}/secrets?api-version=7.4&maxresults=25`, per vault | Key Vault secrets (attributes, tags) |
//! | `GET {vault}/secrets/{name}?api-version=7.4`, per enabled secret, only with `match_values` | the current value, HMAC'd with the store key and dropped at once |
//!
//! The number of requests grows with pages and privileged roles, not with
//! objects (except the `match_values` reads). Owners are not read: no KPI
//! uses them (team comes from tags).
//!
//! Scopes: `entra` (applications, service principals, their credentials,
//! the humans) and `keyvault/<host>` per vault. A failed vault fails only
//! its scope. Privilege cannot be judged without every listed
//! subscription's assignments, so a failed subscription (or Graph read)
//! fails the `entra` scope, which keeps its previous state, while the
//! vaults are applied. The `account` (and `scope` label) is `tenant_id`.
//!
//! | identity | value |
//! |---|---|
//! | kind | `application` for every application object; a service principal is `managed_identity` when its `servicePrincipalType` is `ManagedIdentity`, else `service_principal` (an application and its service principal are two identities: privileges attach to the service principal, credentials to either) |
//! | id, name | the object `id`; `displayName` (store only) |
//! | created_at | `createdDateTime` of the application (a service principal of the tenant's own application takes its application's: v1.0 does not declare it on service principals) |
//! | last_used_at | the service principal's last sign-in (`lastSignInActivity`), for the application and its service principal |
//! | team | a tag `<team_tag>:<value>` (or `=`); a service principal without one takes its application's |
//! | usage tracked | when the sign-in reports are readable; an identity absent from them was not used within their retention |
//! | privileged, standing | holds a directory role in `policy.privileged.azure_directory_roles` at tenant scope (`directoryScopeId` `/`), or an RBAC role in `policy.privileged.azure_rbac_roles` at a listed subscription's scope or above (management group, root); active assignments are standing |
//!
//! Service principals of Microsoft's first-party applications
//! (`appOwnerOrganizationId` of Microsoft's tenants) are not counted unless
//! privileged. Users holding a privileged directory or RBAC role are humans
//! (kind `user`), counted only in `nhi_human_identities`; groups are not.
//!
//! | credential | value |
//! |---|---|
//! | `client_secret`, `certificate` | `passwordCredentials`, `keyCredentials` of applications and service principals: id `keyId`; created, last rotated = `startDateTime`; expires = `endDateTime` (`inactive` once past it); last used from `appCredentialSignInActivities`; deleted when removed |
//! | `secret` | a Key Vault secret: id = its URL without version; created, last rotated = the current version's `created`; expires = `exp`; `inactive` when disabled; team = tag `<team_tag>`; deleted when deleted |
//!
//! Confirmed revocation (`confirmed_by="azure"`): a leaked client secret
//! linked by its application and hint ([`link`]) removed or expired; a
//! leaked Key Vault value (`match_values`) replaced by a new version without
//! it, or its secret disabled or deleted.

mod api;
mod config;
#[cfg(test)]
mod config_tests;
mod inventory;
#[cfg(test)]
mod inventory_tests;
pub mod link;
mod types;

pub use config::{AzureAuth, AzureConfig, Endpoints};
pub use inventory::{entra_scan, vault_scan, Activity, Directory, Grant, Settings, VaultSecret};

use super::registry::Registration;
use super::{ObservationSender, PollContext, PollFuture, Source};
use crate::hashing::SecretHasher;
use crate::model::{InventoryKinds, ObservationItem, SourceError};
use crate::sources::http::HttpClient;
use crate::sources::rfc3339;
use api::{q, Api, Audience};
use futures_util::future::{join_all, try_join_all};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use types::*;

pub const TYPE_NAME: &str = "azure";

/// What an `azure` source inventories.
pub const INVENTORY: InventoryKinds = InventoryKinds {
    provider: link::PROVIDER,
    identity_kinds: &["application", "service_principal", "managed_identity"],
    credential_kinds: &["client_secret", "certificate", "secret"],
};

pub const REGISTRATION: Registration = Registration {
    ty: super::registry::SourceType {
        name: TYPE_NAME,
        parse: config::parse,
    },
    build: |spec| {
        let cfg = Registration::settings::<AzureConfig>(spec)?;
        Ok(Arc::new(AzureSource::new(cfg.clone())?))
    },
};

/// Vaults, and value reads within a vault, at once.
const CONCURRENCY: usize = 4;
const ARM_VERSION: &str = "2022-04-01";
const VAULT_VERSION: &str = "7.4";

pub struct AzureSource {
    cfg: AzureConfig,
    http: HttpClient,
    /// The sign-in reports were refused once (logged once, not again).
    activity_refused: AtomicBool,
}

impl AzureSource {
    /// The source of validated settings; contacts nothing.
    pub fn new(cfg: AzureConfig) -> Result<Self, String> {
        let http = HttpClient::new(cfg.ca_file.as_deref())?;
        Ok(Self {
            cfg,
            http,
            activity_refused: AtomicBool::new(false),
        })
    }
}

impl Source for AzureSource {
    fn poll<'a>(&'a self, ctx: PollContext, out: ObservationSender) -> PollFuture<'a> {
        Box::pin(async move {
            let api = Api::new(&self.http, &self.cfg, ctx.deadline);
            let settings = Settings {
                tenant: &self.cfg.tenant_id,
                observed_at: ctx.now,
                team_tag: &ctx.policy.team_tag,
                linked: &ctx.linked_credentials,
            };
            let (directory, vaults) = tokio::join!(
                self.read_directory(&api, &ctx),
                self.read_vaults(&api, ctx.hasher.as_ref())
            );
            let mut items = Vec::new();
            let mut scopes = vec![inventory::ENTRA_SCOPE.to_string()];
            match directory {
                Ok(d) => items.push(ObservationItem::Inventory(entra_scan(&settings, &d))),
                // A rejected credential fails every read: the whole poll.
                Err(e) if e.status == Some(401) => return Err(e),
                Err(error) => items.push(ObservationItem::TargetFailed {
                    target: inventory::ENTRA_SCOPE.to_string(),
                    error,
                }),
            }
            for (url, r) in self.cfg.key_vaults.iter().zip(vaults) {
                let scope = inventory::vault_scope(url);
                scopes.push(scope.clone());
                items.push(match r {
                    Ok(secrets) => ObservationItem::Inventory(vault_scan(&settings, url, &secrets)),
                    Err(error) => ObservationItem::TargetFailed {
                        target: scope,
                        error,
                    },
                });
            }
            items.push(ObservationItem::InventoryScopes(scopes));
            tracing::debug!(source = %ctx.source, requests = api.requests(), "azure inventory read");
            for item in items {
                if out.send(item).await.is_err() {
                    break;
                }
            }
            Ok(())
        })
    }
}

fn lower(names: &[String]) -> Vec<String> {
    names
        .iter()
        .map(|n| n.trim().to_ascii_lowercase())
        .collect()
}

impl AzureSource {
    async fn read_directory(
        &self,
        api: &Api<'_>,
        ctx: &PollContext,
    ) -> Result<Directory, SourceError> {
        let g = &self.cfg.endpoints.graph;
        let apps_url = format!(
            "{g}/v1.0/applications?$select=id,appId,displayName,createdDateTime,tags,passwordCredentials,keyCredentials&$top=999"
        );
        let sps_url = format!(
            "{g}/v1.0/servicePrincipals?$select=id,appId,displayName,servicePrincipalType,appOwnerOrganizationId,tags,passwordCredentials,keyCredentials&$top=999"
        );
        let (applications, service_principals, directory_grants, rbac_grants, activity) = tokio::try_join!(
            api.list::<DirectoryApp>(Audience::Graph, &apps_url),
            api.list::<DirectoryApp>(Audience::Graph, &sps_url),
            self.directory_grants(api, &ctx.policy.privileged.azure_directory_roles),
            self.rbac_grants(api, &ctx.policy.privileged.azure_rbac_roles),
            async { Ok(self.activity(api, &ctx.source).await) },
        )?;
        let mut grants = directory_grants;
        grants.extend(rbac_grants);
        Ok(Directory {
            applications,
            service_principals,
            grants,
            activity,
        })
    }

    /// Tenant-wide assignments of the privileged directory roles.
    async fn directory_grants(
        &self,
        api: &Api<'_>,
        roles: &[String],
    ) -> Result<Vec<Grant>, SourceError> {
        let g = &self.cfg.endpoints.graph;
        let wanted = lower(roles);
        let defs: Vec<RoleDefinition> = api
            .list(
                Audience::Graph,
                &format!(
                    "{g}/v1.0/roleManagement/directory/roleDefinitions?$select=id,displayName"
                ),
            )
            .await?;
        let mut grants = Vec::new();
        for d in defs {
            let Some(name) = d
                .display_name
                .filter(|n| wanted.contains(&n.to_ascii_lowercase()))
            else {
                continue;
            };
            let filter = q(&format!("roleDefinitionId eq '{}'", d.id));
            let url = format!(
                "{g}/v1.0/roleManagement/directory/roleAssignments?$filter={filter}&$expand=principal"
            );
            let assignments: Vec<RoleAssignment> = api.list(Audience::Graph, &url).await?;
            for a in assignments {
                // A role scoped to one application or administrative unit
                // is not tenant-wide privilege.
                if a.directory_scope_id.as_deref().unwrap_or("/") != "/" {
                    continue;
                }
                let user = a
                    .principal
                    .and_then(|p| p.odata_type)
                    .is_some_and(|t| t == "#microsoft.graph.user");
                grants.push(Grant {
                    principal_id: a.principal_id,
                    user,
                    reason: format!("directory role {name}"),
                });
            }
        }
        Ok(grants)
    }

    /// Assignments of the privileged RBAC roles at each listed
    /// subscription's scope or above.
    async fn rbac_grants(
        &self,
        api: &Api<'_>,
        roles: &[String],
    ) -> Result<Vec<Grant>, SourceError> {
        let wanted = lower(roles);
        let arm = self.cfg.endpoints.arm.clone();
        let mut grants = Vec::new();
        for sub in &self.cfg.subscriptions {
            let base = format!("{arm}/subscriptions/{sub}/providers/Microsoft.Authorization");
            let with_sub = |e: SourceError| SourceError {
                message: format!("subscription {sub}: {}", e.message),
                ..e
            };
            let defs: Vec<ArmRoleDefinition> = api
                .list(
                    Audience::Arm,
                    &format!("{base}/roleDefinitions?api-version={ARM_VERSION}"),
                )
                .await
                .map_err(with_sub)?;
            let names: HashMap<String, String> = defs
                .into_iter()
                .filter_map(|d| Some((d.name.to_ascii_lowercase(), d.properties.role_name?)))
                .collect();
            let filter = q("atScope()");
            let assignments: Vec<ArmRoleAssignment> = api
                .list(
                    Audience::Arm,
                    &format!("{base}/roleAssignments?api-version={ARM_VERSION}&$filter={filter}"),
                )
                .await
                .map_err(with_sub)?;
            let sub_scope = format!("/subscriptions/{sub}");
            for a in assignments.into_iter().map(|a| a.properties) {
                let scope = a.scope.unwrap_or_default();
                let at_or_above = scope == "/"
                    || scope.eq_ignore_ascii_case(&sub_scope)
                    || scope
                        .to_ascii_lowercase()
                        .starts_with("/providers/microsoft.management/managementgroups/");
                let def = a
                    .role_definition_id
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_ascii_lowercase();
                let Some(name) = names.get(&def) else {
                    continue;
                };
                if !at_or_above || !wanted.contains(&name.to_ascii_lowercase()) {
                    continue;
                }
                grants.push(Grant {
                    principal_id: a.principal_id,
                    user: a.principal_type.as_deref() == Some("User"),
                    reason: format!("rbac {name} on {scope}"),
                });
            }
        }
        Ok(grants)
    }

    /// Last sign-ins, or `None` when the reports cannot be read (licence,
    /// permission): logged once, and use is then not tracked.
    async fn activity(&self, api: &Api<'_>, source: &str) -> Option<Activity> {
        let g = &self.cfg.endpoints.graph;
        let read = async {
            let sps: Vec<SpSignIn> = api
                .list(
                    Audience::Graph,
                    &format!("{g}/beta/reports/servicePrincipalSignInActivities"),
                )
                .await?;
            let creds: Vec<CredentialSignIn> = api
                .list(
                    Audience::Graph,
                    &format!("{g}/beta/reports/appCredentialSignInActivities"),
                )
                .await?;
            let time = |s: Option<SignIn>| {
                s.and_then(|s| s.last_sign_in_date_time)
                    .and_then(|t| rfc3339(&t))
            };
            let mut a = Activity::default();
            for s in sps {
                if let (Some(app), Some(t)) = (s.app_id, time(s.last_sign_in_activity)) {
                    let e = a.by_app.entry(app.to_ascii_lowercase()).or_insert(t);
                    *e = (*e).max(t);
                }
            }
            for c in creds {
                if let (Some(k), Some(t)) = (c.key_id, time(c.sign_in_activity)) {
                    let e = a.by_key.entry(k.to_ascii_lowercase()).or_insert(t);
                    *e = (*e).max(t);
                }
            }
            Ok::<_, SourceError>(a)
        };
        match read.await {
            Ok(a) => {
                self.activity_refused.store(false, Ordering::Relaxed);
                Some(a)
            }
            Err(e) => {
                if !self.activity_refused.swap(true, Ordering::Relaxed) {
                    tracing::warn!(source = %source, reason = %e.reason, error = %e.message,
                        "sign-in activity not readable (needs AuditLog.Read.All and an Entra ID P1/P2 licence); last use is not tracked");
                }
                None
            }
        }
    }

    /// Every listed vault, at once (vaults are few), in the listed order.
    async fn read_vaults(
        &self,
        api: &Api<'_>,
        hasher: &SecretHasher,
    ) -> Vec<Result<Vec<VaultSecret>, SourceError>> {
        join_all(
            self.cfg
                .key_vaults
                .iter()
                .map(|url| self.read_vault(api, url, hasher)),
        )
        .await
    }

    async fn read_vault(
        &self,
        api: &Api<'_>,
        vault: &str,
        hasher: &SecretHasher,
    ) -> Result<Vec<VaultSecret>, SourceError> {
        let items: Vec<VaultSecretItem> = api
            .list(
                Audience::KeyVault,
                &format!("{vault}/secrets?api-version={VAULT_VERSION}&maxresults=25"),
            )
            .await?;
        let mut out = Vec::with_capacity(items.len());
        // Value reads (`match_values`), CONCURRENCY at a time.
        for chunk in items.chunks(CONCURRENCY) {
            let hashes = try_join_all(
                chunk
                    .iter()
                    .map(|item| self.value_hash(api, vault, item, hasher)),
            )
            .await?;
            for (item, value_hash) in chunk.iter().zip(hashes) {
                out.push(VaultSecret {
                    item: item.clone(),
                    value_hash,
                });
            }
        }
        Ok(out)
    }

    /// The keyed hash of a secret's current value, read only under
    /// `match_values`; the value is dropped at once.
    async fn value_hash(
        &self,
        api: &Api<'_>,
        vault: &str,
        item: &VaultSecretItem,
        hasher: &SecretHasher,
    ) -> Result<Option<[u8; 32]>, SourceError> {
        // A disabled secret's value cannot be read (403), and it is
        // unusable anyway.
        if !self.cfg.match_values || item.attributes.enabled == Some(false) {
            return Ok(None);
        }
        let name = item
            .id
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or_default();
        let v: VaultSecretValue = api
            .get(
                Audience::KeyVault,
                &format!("{vault}/secrets/{}?api-version={VAULT_VERSION}", q(name)),
            )
            .await?;
        Ok(v.value.map(|s| hasher.hash(s.as_bytes())))
    }
}
