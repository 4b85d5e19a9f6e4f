//! `kubernetes` source: one cluster, through the official `kube` client and
//! the `k8s-openapi` types (kubeconfig + context, or the pod's own service
//! account in-cluster).
//!
//! One poll lists, 500 items a page (`limit` + `continue`, a 410 Gone
//! restarts the list, 429 and 5xx are retried within the poll's time):
//!
//! | request | for |
//! |---|---|
//! | `GET /apis/rbac.authorization.k8s.io/v1/clusterroles`, `…/clusterrolebindings` | privilege, humans |
//! | `GET /api/v1/namespaces` (metadata only) | namespace team labels, the namespaces to read when cluster-wide lists are forbidden |
//! | `GET /api/v1/serviceaccounts` | identities |
//! | `GET /api/v1/secrets?fieldSelector=type=kubernetes.io/service-account-token` **metadata only** (`Accept: …;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1`) | legacy tokens — a Secret's data is never requested |
//! | `GET /api/v1/pods?fieldSelector=status.phase!=Succeeded,status.phase!=Failed` (only `spec.serviceAccountName` and `status.phase` are kept) | use |
//! | `GET /apis/rbac.authorization.k8s.io/v1/roles`, `…/rolebindings` | privilege |
//!
//! When a cluster-wide list of the namespaced resources is forbidden (403:
//! the exporter is granted per namespace through RoleBindings), the same
//! lists are made per namespace (8 at a time); a namespace that is still
//! forbidden, or fails, is a failed scope (`auth`, …) that keeps its state.
//! The cluster-scoped lists must succeed: without them no privilege can be
//! judged, and the poll fails without changing anything. A 401 fails it too.
//!
//! Scopes: `ns/<namespace>` per namespace (identities and credentials),
//! `cluster` (the humans). A namespace gone is retired: its identities are
//! removed and its credentials deleted. The `account` (and `scope` label)
//! is `cluster_name`.
//!
//! | identity (kind `service_account`) | value |
//! |---|---|
//! | id | `metadata.uid` |
//! | name | `<namespace>/<name>` (store only) |
//! | created_at | `creationTimestamp` |
//! | last_used_at | the poll's hour while a pod that has not ended (`Pending`, `Running`) runs as it; else the latest `kubernetes.io/legacy-token-last-used` of its token Secrets; the store keeps the latest ever seen |
//! | team | the service account's `policy.team_tag` label, else its namespace's |
//! | privileged, standing | bound (ClusterRoleBinding, or RoleBinding in any namespace — as a `ServiceAccount` subject, or through the groups `system:serviceaccounts` / `system:serviceaccounts:<ns>`) to `cluster-admin`, to a role in `policy.privileged.kubernetes_roles`, or to a (Cluster)Role with a rule granting verb `*` on resource `*`; bindings are permanent, so privilege is standing |
//!
//! `User` and `Group` subjects of the bindings (names not starting with
//! `system:`) are humans (kinds `user`, `group`), counted only in
//! `nhi_human_identities`. `automountServiceAccountToken` is not read: no
//! KPI uses it.
//!
//! | credential | value |
//! |---|---|
//! | `legacy_token` | one per `kubernetes.io/service-account-token` Secret: id `<namespace>/<secret>@<service-account uid>`; created, last rotated = `creationTimestamp`; last used = label `kubernetes.io/legacy-token-last-used`; `inactive` when labelled `kubernetes.io/legacy-token-invalid-since`, or its service account is gone or has another uid; deleted with its Secret |
//! | `bound_token` | only a leaked one: a token named by an open leak whose service account (uid) is in this cluster; id `bound/<uid>/<exp>`, expires at `exp` (`inactive` once past it); deleted with its service account |
//!
//! Confirmed revocation (`confirmed_by="kubernetes"`, see [`token`]): a
//! leaked legacy token's Secret deleted (or the token made inactive), a
//! leaked bound token's service account deleted, or its `exp` passed.

mod api;
mod config;
#[cfg(test)]
mod config_tests;
mod inventory;
#[cfg(test)]
mod inventory_tests;
pub mod token;

pub use config::KubernetesConfig;
pub use inventory::{
    namespace_scope, observations, Binding, Cluster, Namespace, ServiceAccount, Settings, Subject,
    TokenSecret, CLUSTER_SCOPE,
};

use super::registry::Registration;
use super::{bounded, ObservationSender, PollContext, PollFuture, Source};
use crate::model::{ErrorReason, InventoryKinds, SourceError};
use api::list_all;
use k8s_openapi::api::core::v1::{Namespace as K8sNamespace, Pod, Secret, ServiceAccount as K8sSa};
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject as K8sSubject,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{ApiResource, ListParams, Object};
use kube::{Api, Client};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

pub const TYPE_NAME: &str = "kubernetes";

/// What a `kubernetes` source inventories.
pub const INVENTORY: InventoryKinds = InventoryKinds {
    provider: token::PROVIDER,
    identity_kinds: &["service_account"],
    credential_kinds: &["legacy_token", "bound_token"],
};

pub const REGISTRATION: Registration = Registration {
    ty: super::registry::SourceType {
        name: TYPE_NAME,
        parse: config::parse,
    },
    build: |spec| {
        let cfg = Registration::settings::<KubernetesConfig>(spec)?;
        Ok(Arc::new(KubernetesSource::new(cfg.clone())))
    },
};

/// Namespaces read at once when they are read one by one.
const CONCURRENCY: usize = 8;
const TOKEN_TYPE: &str = "type=kubernetes.io/service-account-token";
const NOT_ENDED: &str = "status.phase!=Succeeded,status.phase!=Failed";

pub struct KubernetesSource {
    cfg: KubernetesConfig,
}

impl KubernetesSource {
    /// The source of validated settings; contacts nothing.
    pub fn new(cfg: KubernetesConfig) -> Self {
        Self { cfg }
    }
}

impl Source for KubernetesSource {
    fn poll<'a>(&'a self, ctx: PollContext, out: ObservationSender) -> PollFuture<'a> {
        Box::pin(async move {
            let client = api::client(&self.cfg, ctx.deadline).await?;
            let (items, requests) = self.read(client, &ctx).await?;
            tracing::debug!(source = %ctx.source, requests, "kubernetes inventory read");
            for item in items {
                if out.send(item).await.is_err() {
                    break;
                }
            }
            Ok(())
        })
    }
}

/// The fields of a pod the source keeps.
#[derive(Clone, Debug, Default, Deserialize)]
struct PodSpec {
    #[serde(rename = "serviceAccountName")]
    service_account_name: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
struct PodStatus {
    phase: Option<String>,
}

type PodLite = Object<PodSpec, PodStatus>;

fn time_of(m: &ObjectMeta) -> Option<i64> {
    m.creation_timestamp.as_ref().map(|t| t.0.as_second())
}

fn label(m: &ObjectMeta, key: &str) -> Option<String> {
    m.labels
        .as_ref()?
        .get(key)
        .filter(|v| !v.is_empty())
        .cloned()
}

fn annotation(m: &ObjectMeta, key: &str) -> Option<String> {
    m.annotations
        .as_ref()?
        .get(key)
        .filter(|v| !v.is_empty())
        .cloned()
}

/// `2026-11-02` as unix seconds (midnight UTC).
fn date(s: &str) -> Option<i64> {
    let d = time::Date::parse(
        s.trim(),
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .ok()?;
    Some(d.midnight().assume_utc().unix_timestamp())
}

fn wildcard(rules: &Option<Vec<PolicyRule>>) -> bool {
    rules
        .iter()
        .flatten()
        .any(|r| r.verbs.iter().any(|v| v == "*") && r.resources.iter().flatten().any(|x| x == "*"))
}

fn binding(
    namespace: Option<String>,
    name: Option<String>,
    role: RoleRef,
    subjects: Option<Vec<K8sSubject>>,
) -> Binding {
    Binding {
        namespace,
        name: name.unwrap_or_default(),
        role_kind: role.kind,
        role_name: role.name,
        subjects: subjects
            .unwrap_or_default()
            .into_iter()
            .map(|s| Subject {
                kind: s.kind,
                name: s.name,
                namespace: s.namespace.filter(|n| !n.is_empty()),
            })
            .collect(),
    }
}

/// One namespaced list's items with their namespace.
type InNs<T> = Vec<(String, T)>;

impl KubernetesSource {
    /// Read the cluster: the observations of the poll and the requests made.
    async fn read(
        &self,
        client: Client,
        ctx: &PollContext,
    ) -> Result<(Vec<crate::model::ObservationItem>, u32), SourceError> {
        let deadline = ctx.deadline;
        let team_tag = ctx.policy.team_tag.clone();
        let all = ListParams::default();
        let mut requests = 0;
        let (roles, n) = list_all(
            "clusterroles",
            &all,
            deadline,
            |lp| {
                let api: Api<ClusterRole> = Api::all(client.clone());
                async move { api.list(&lp).await }
            },
            |r| Some((r.metadata.name.unwrap_or_default(), wildcard(&r.rules))),
        )
        .await?;
        requests += n;
        let (crbs, n) = list_all(
            "clusterrolebindings",
            &all,
            deadline,
            |lp| {
                let api: Api<ClusterRoleBinding> = Api::all(client.clone());
                async move { api.list(&lp).await }
            },
            |b| Some(binding(None, b.metadata.name, b.role_ref, b.subjects)),
        )
        .await?;
        requests += n;
        // Namespaces: their team labels, and the list to read one by one
        // when cluster-wide lists are forbidden. Not required otherwise.
        let tt = team_tag.clone();
        let namespaces = match list_all(
            "namespaces",
            &all,
            deadline,
            |lp| {
                let api: Api<K8sNamespace> = Api::all(client.clone());
                async move { api.list_metadata(&lp).await }
            },
            |n| {
                Some((
                    n.metadata.name.clone().unwrap_or_default(),
                    label(&n.metadata, &tt),
                ))
            },
        )
        .await
        {
            Ok((v, n)) => {
                requests += n;
                Ok(v)
            }
            // Optional: without it there are no namespace team labels and
            // no per-namespace reads; the rest of the poll goes on.
            Err(e) => {
                tracing::warn!(source = %ctx.source, reason = %e.reason, error = %e.message,
                    "namespaces cannot be listed: no namespace team labels");
                Err(e)
            }
        };
        let mut cluster = Cluster {
            cluster_roles: roles.into_iter().collect(),
            cluster_role_bindings: crbs,
            namespace_teams: HashMap::new(),
        };
        if let Ok(ns) = &namespaces {
            cluster.namespace_teams = ns
                .iter()
                .filter_map(|(n, t)| t.clone().map(|t| (n.clone(), t)))
                .collect();
        }
        let mut by_ns: BTreeMap<String, Result<Namespace, SourceError>> = BTreeMap::new();
        match read_namespaced(&client, None, &team_tag, deadline).await {
            Ok((parts, n)) => {
                requests += n;
                if let Ok(ns) = &namespaces {
                    for (name, _) in ns {
                        by_ns.insert(name.clone(), Ok(Namespace::default()));
                    }
                }
                parts.distribute(&mut by_ns);
            }
            Err(e) if e.status == Some(403) => {
                let ns = namespaces.map_err(|_| {
                    SourceError::new(
                        ErrorReason::Auth,
                        "cluster-wide lists and the namespace list are forbidden: grant list on namespaces, or the cluster-wide lists (deploy/kubernetes/clusterrole.yaml)",
                    )
                    .with_status(403)
                })?;
                let names: Vec<String> = ns.into_iter().map(|(n, _)| n).collect();
                let c = client.clone();
                let reads = bounded(CONCURRENCY, names.clone(), move |name| {
                    let (c, tt) = (c.clone(), team_tag.clone());
                    async move { Ok(read_namespaced(&c, Some(&name), &tt, deadline).await) }
                })
                .await?;
                for (name, r) in names.into_iter().zip(reads) {
                    match r {
                        Ok((parts, n)) => {
                            requests += n;
                            by_ns.insert(name.clone(), Ok(Namespace::default()));
                            parts.distribute(&mut by_ns);
                        }
                        Err(e) => {
                            by_ns.insert(name, Err(e));
                        }
                    }
                }
            }
            Err(e) => return Err(e),
        }
        let settings = Settings {
            cluster_name: &self.cfg.cluster_name,
            privileged_roles: &ctx.policy.privileged.kubernetes_roles,
            observed_at: ctx.now,
            linked: &ctx.linked_credentials,
        };
        Ok((observations(&settings, &cluster, by_ns)?, requests))
    }
}

/// The namespaced lists, across the cluster or in one namespace.
struct Parts {
    service_accounts: InNs<ServiceAccount>,
    token_secrets: InNs<TokenSecret>,
    used: InNs<String>,
    roles: InNs<(String, bool)>,
    role_bindings: InNs<Binding>,
}

impl Parts {
    fn distribute(self, by_ns: &mut BTreeMap<String, Result<Namespace, SourceError>>) {
        fn slot(
            by_ns: &mut BTreeMap<String, Result<Namespace, SourceError>>,
            ns: String,
        ) -> Option<&mut Namespace> {
            by_ns
                .entry(ns)
                .or_insert_with(|| Ok(Namespace::default()))
                .as_mut()
                .ok()
        }
        for (ns, a) in self.service_accounts {
            if let Some(n) = slot(by_ns, ns) {
                n.service_accounts.push(a);
            }
        }
        for (ns, t) in self.token_secrets {
            if let Some(n) = slot(by_ns, ns) {
                n.token_secrets.push(t);
            }
        }
        for (ns, u) in self.used {
            if let Some(n) = slot(by_ns, ns) {
                n.used.insert(u);
            }
        }
        for (ns, (r, w)) in self.roles {
            if let Some(n) = slot(by_ns, ns) {
                n.roles.insert(r, w);
            }
        }
        for (ns, b) in self.role_bindings {
            if let Some(n) = slot(by_ns, ns) {
                n.role_bindings.push(b);
            }
        }
    }
}

/// The namespaced lists: cluster-wide (`ns` None) or in one namespace.
async fn read_namespaced(
    client: &Client,
    ns: Option<&str>,
    team_tag: &str,
    deadline: Instant,
) -> Result<(Parts, u32), SourceError> {
    fn api<K>(c: &Client, ns: Option<&str>) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        match ns {
            Some(n) => Api::namespaced(c.clone(), n),
            None => Api::all(c.clone()),
        }
    }
    let nsname = |m: &ObjectMeta| m.namespace.clone().unwrap_or_default();
    // What a list is, in errors: `serviceaccounts in team-b`.
    let what = |r: &str| match ns {
        Some(n) => format!("{r} in namespace {n}"),
        None => r.to_string(),
    };
    let mut requests = 0;
    let all = ListParams::default();
    let (service_accounts, n) = list_all(
        &what("serviceaccounts"),
        &all,
        deadline,
        |lp| {
            let a: Api<K8sSa> = api(client, ns);
            async move { a.list(&lp).await }
        },
        |s| {
            let m = &s.metadata;
            Some((
                nsname(m),
                ServiceAccount {
                    name: m.name.clone()?,
                    uid: m.uid.clone()?,
                    created_at: time_of(m),
                    team: label(m, team_tag),
                },
            ))
        },
    )
    .await?;
    requests += n;
    let tokens = ListParams::default().fields(TOKEN_TYPE);
    let (token_secrets, n) = list_all(
        &what("secrets (metadata)"),
        &tokens,
        deadline,
        |lp| {
            let a: Api<Secret> = api(client, ns);
            async move { a.list_metadata(&lp).await }
        },
        |s| {
            let m = &s.metadata;
            // A token Secret names its service account; anything else (from
            // a server that ignored the field selector) is not a token.
            let sa_name = annotation(m, "kubernetes.io/service-account.name")?;
            Some((
                nsname(m),
                TokenSecret {
                    name: m.name.clone()?,
                    created_at: time_of(m),
                    sa_name: Some(sa_name),
                    sa_uid: annotation(m, "kubernetes.io/service-account.uid"),
                    last_used_at: label(m, "kubernetes.io/legacy-token-last-used")
                        .and_then(|d| date(&d)),
                    invalid: label(m, "kubernetes.io/legacy-token-invalid-since").is_some(),
                },
            ))
        },
    )
    .await?;
    requests += n;
    let pod_resource = ApiResource::erase::<Pod>(&());
    let not_ended = ListParams::default().fields(NOT_ENDED);
    let (used, n) = list_all(
        &what("pods"),
        &not_ended,
        deadline,
        |lp| {
            let a: Api<PodLite> = match ns {
                Some(n) => Api::namespaced_with(client.clone(), n, &pod_resource),
                None => Api::all_with(client.clone(), &pod_resource),
            };
            async move { a.list(&lp).await }
        },
        |p| {
            let ended = matches!(
                p.status.as_ref().and_then(|s| s.phase.as_deref()),
                Some("Succeeded" | "Failed")
            );
            let sa = p
                .spec
                .service_account_name
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "default".into());
            (!ended).then(|| (nsname(&p.metadata), sa))
        },
    )
    .await?;
    requests += n;
    let (roles, n) = list_all(
        &what("roles"),
        &all,
        deadline,
        |lp| {
            let a: Api<Role> = api(client, ns);
            async move { a.list(&lp).await }
        },
        |r| {
            Some((
                nsname(&r.metadata),
                (r.metadata.name.clone()?, wildcard(&r.rules)),
            ))
        },
    )
    .await?;
    requests += n;
    let (role_bindings, n) = list_all(
        &what("rolebindings"),
        &all,
        deadline,
        |lp| {
            let a: Api<RoleBinding> = api(client, ns);
            async move { a.list(&lp).await }
        },
        |b| {
            let ns = nsname(&b.metadata);
            Some((
                ns.clone(),
                binding(Some(ns), b.metadata.name, b.role_ref, b.subjects),
            ))
        },
    )
    .await?;
    requests += n;
    Ok((
        Parts {
            service_accounts,
            token_secrets,
            used,
            roles,
            role_bindings,
        },
        requests,
    ))
}
