//! `gcp` source: Google Cloud projects — listed (`projects`), or every
//! ACTIVE project under an `organization` — through the public REST APIs.
//!
//! **Client choice.** REST over the shared `reqwest` client, with
//! hand-written auth ([`auth`]), not the `google-cloud-*` crates: Policy
//! Analyzer has no crate, so REST is needed anyway; Resource Manager v3's
//! `projects:search` and folders have no Rust crate either; and with this
//! crate's MSRV (1.85) `google-cloud-auth` resolves to 1.7, which brings a
//! second `reqwest` (0.13), `google-cloud-gax` and, by default, `aws-lc-rs`
//! — minutes of build on a small machine for two calls' worth of auth. The
//! official clients' own behaviour is kept where it matters: the same
//! self-signed JWT for a key file (no token endpoint call), the same ADC
//! order, `keyTypes=USER_MANAGED`, retries of 429 `RESOURCE_EXHAUSTED` and
//! 5xx — here bounded by the poll's deadline instead of 60 s (SOURCES §11).
//!
//! One poll, for each project (4 at a time; per-account and per-secret
//! lookups 8 at a time):
//!
//! | request | for |
//! |---|---|
//! | `GET cloudresourcemanager v3/projects:search?query=state:ACTIVE` (organization only, paged) | the projects |
//! | `GET v3/projects/{id}` (listed projects), `GET v3/folders/{id}` (each ancestor folder once) | team label, parent chain |
//! | `POST v3/{projects,folders,organizations}/{id}:getIamPolicy` (each ancestor once) | privilege, humans |
//! | `GET iam v1/projects/{id}/serviceAccounts` (paged, 100) | identities |
//! | `GET iam v1/projects/{id}/serviceAccounts/{email}/keys?keyTypes=USER_MANAGED` (per account) | `sa_key` credentials |
//! | `GET policyanalyzer v1/projects/{id}/locations/global/activityTypes/{serviceAccountKeyLastAuthentication,serviceAccountLastAuthentication}/activities:query` (`activity: true`, paged) | last use |
//! | `GET secretmanager v1/projects/{id}/secrets` (paged), `GET v1/{secret}/versions` (per secret) | `secret` credentials — metadata only, never a value (`:access` is never called) |
//!
//! Scopes: `<project id>` (service accounts and keys), `<project
//! id>/secretmanager` (secrets), `humans/all` (the `user:` members). A
//! project that fails (its IAM policy, an ancestor's, a list) fails only
//! its scope(s), which keep their state: a key missing from a failed scope
//! is never a deletion. The humans scope is not sent while any project's
//! IAM failed (a partial set would drop people). A project no longer
//! listed (or no longer ACTIVE in the organization) is retired. A 401
//! fails the whole poll. In `organization` mode, a project whose ancestry
//! cannot be read is kept (and fails) rather than silently dropped.
//!
//! | identity (kind `service_account`) | value |
//! |---|---|
//! | id | `uniqueId` |
//! | name | `email` (store only) |
//! | account, `scope` label | the project id |
//! | created_at | IAM gives none: the oldest key's `validAfterTime` |
//! | last_used_at | `activity: true`: latest Policy Analyzer authentication of the account or its keys; usage is tracked only then |
//! | team | the project's `policy.team_tag` label |
//! | privileged, standing | a member (`serviceAccount:<email>`) of a binding, on the project, a folder above it or the organization, to a role in `policy.privileged.gcp_roles`; standing unless every such binding has a condition |
//!
//! Identities are the service accounts a project lists (its own).
//! Bindings to other members — Google-managed service agents, accounts of
//! other projects, groups, domains — give them no identity here: they are
//! inventoried by the project that owns them, if polled. `user:` members
//! are humans (`nhi_human_identities`, each counted once).
//!
//! | credential | value |
//! |---|---|
//! | `sa_key` | each USER_MANAGED key: id = the key id (last segment of `name`, the key file's `private_key_id`); created, last rotated = `validAfterTime`; expires = `validBeforeTime` unless Google's never (9999-12-31); last used = Policy Analyzer; `inactive` when disabled, expired, or its account is disabled; deleted with the key or its account |
//! | `secret` | each secret: id = `name` (`projects/<number>/secrets/<id>`); created = `createTime`; last rotated = the newest ENABLED version's `createTime`; expires = `expireTime`; rotation enabled = a `rotation` block whose `nextRotationTime` is not overdue; `inactive` without an ENABLED version; team = its label, else the project's |
//!
//! Confirmed revocation (`confirmed_by="gcp"`, see [`key`]): a leaked key
//! file links by `private_key_id` to its key; the key disabled, expired or
//! deleted (or its account disabled or deleted) confirms the revocation.

mod api;
pub mod auth;
mod config;
#[cfg(test)]
mod config_tests;
mod inventory;
#[cfg(test)]
mod inventory_tests;
pub mod key;

pub use config::{Endpoints, Estate, GcpConfig};
pub use inventory::{
    iam_scope, observations, secrets_scope, Activity, Binding, Iam, Key, Project, ProjectData,
    Secret, ServiceAccount, Settings, HUMANS_SCOPE,
};

use super::registry::Registration;
use super::{bounded, ObservationSender, PollContext, PollFuture, Source};
use crate::model::{InventoryKinds, SourceError};
use crate::sources::http::HttpClient;
use api::{Api, Container};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

pub const TYPE_NAME: &str = "gcp";

/// What a `gcp` source inventories.
pub const INVENTORY: InventoryKinds = InventoryKinds {
    provider: key::PROVIDER,
    identity_kinds: &["service_account"],
    credential_kinds: &["sa_key", "secret"],
};

pub const REGISTRATION: Registration = Registration {
    ty: super::registry::SourceType {
        name: TYPE_NAME,
        parse: config::parse,
    },
    build: |spec| {
        let cfg = Registration::settings::<GcpConfig>(spec)?;
        Ok(Arc::new(GcpSource::new(cfg.clone())?))
    },
};

/// Projects read at once.
const PROJECTS_AT_ONCE: usize = 4;
/// Per-account key lists and per-secret version lists at once.
const LOOKUPS_AT_ONCE: usize = 8;

pub struct GcpSource {
    cfg: GcpConfig,
    client: HttpClient,
}

impl GcpSource {
    /// The source of validated settings; contacts nothing.
    pub fn new(cfg: GcpConfig) -> Result<Self, String> {
        Ok(Self {
            cfg,
            client: HttpClient::new(None)?,
        })
    }
}

impl Source for GcpSource {
    fn poll<'a>(&'a self, ctx: PollContext, out: ObservationSender) -> PollFuture<'a> {
        Box::pin(async move {
            let creds = auth::Credentials::resolve(self.cfg.credentials_file.as_deref());
            // The JWT is dated by the wall clock (not the poll's `now`, which a
            // test or benchmark may fix): Google checks `iat`/`exp` against its own.
            let issued = crate::model::unix_now();
            let bearer = creds.bearer(&self.client, issued, ctx.deadline).await?;
            let api = Api::new(
                self.client.clone(),
                self.cfg.endpoints.clone(),
                bearer.0,
                ctx.deadline,
            );
            let items = self.read(&api, &ctx).await?;
            tracing::debug!(source = %ctx.source, requests = api.requests.load(Ordering::Relaxed), "gcp inventory read");
            for item in items {
                if out.send(item).await.is_err() {
                    break;
                }
            }
            Ok(())
        })
    }
}

/// A project to read: its id, and its Resource Manager record or why it
/// could not be read.
type Listed = (String, Result<Container, SourceError>);

/// A project's record and its ancestors (nearest first), or why not.
type Placed = Result<(Container, Vec<String>), SourceError>;

/// Policies and parents of the ancestors (folders, organization) read once
/// per poll, by resource name.
#[derive(Default)]
struct Ancestors {
    parents: HashMap<String, Result<Option<String>, SourceError>>,
    policies: HashMap<String, Result<Vec<Binding>, SourceError>>,
}

impl Ancestors {
    /// The chain above `parent` (nearest first), or the first failure on it.
    fn chain(&self, mut parent: Option<String>) -> Result<Vec<String>, SourceError> {
        let mut out = Vec::new();
        while let Some(p) = parent {
            if out.contains(&p) || out.len() > 32 {
                break; // a cycle or an absurd depth: stop rather than loop
            }
            out.push(p.clone());
            parent = if p.starts_with("folders/") {
                match self.parents.get(&p) {
                    Some(Ok(pp)) => pp.clone(),
                    Some(Err(e)) => return Err(e.clone()),
                    None => None,
                }
            } else {
                None
            };
        }
        Ok(out)
    }

    /// Read the folders above `parents` (level by level, each once), then
    /// every ancestor's IAM policy once.
    async fn read(api: &Api, parents: Vec<String>) -> Ancestors {
        let mut a = Ancestors::default();
        let mut pending: Vec<String> = parents;
        let mut all: Vec<String> = Vec::new();
        while !pending.is_empty() {
            pending.sort();
            pending.dedup();
            pending.retain(|p| !all.contains(p));
            all.extend(pending.iter().cloned());
            let folders: Vec<String> = pending
                .drain(..)
                .filter(|p| p.starts_with("folders/"))
                .collect();
            let api2 = api.clone();
            let got = bounded(LOOKUPS_AT_ONCE, folders.clone(), move |f| {
                let api = api2.clone();
                async move { Ok(api.container(&f).await.map(|c| c.parent)) }
            })
            .await
            .unwrap_or_default();
            for (f, r) in folders.into_iter().zip(got) {
                if let Ok(Some(p)) = &r {
                    pending.push(p.clone());
                }
                a.parents.insert(f, r);
            }
        }
        let api2 = api.clone();
        let got = bounded(LOOKUPS_AT_ONCE, all.clone(), move |name| {
            let api = api2.clone();
            async move { Ok(api.policy(&name, &name).await) }
        })
        .await
        .unwrap_or_default();
        a.policies = all.into_iter().zip(got).collect();
        a
    }
}

impl GcpSource {
    /// The projects to read, with their Resource Manager records.
    async fn projects(&self, api: &Api) -> Result<Vec<Listed>, SourceError> {
        match &self.cfg.estate {
            Estate::Projects(ids) => {
                let api2 = api.clone();
                let got = bounded(LOOKUPS_AT_ONCE, ids.clone(), move |id| {
                    let api = api2.clone();
                    async move { Ok(api.container(&format!("projects/{id}")).await) }
                })
                .await?;
                Ok(ids.iter().cloned().zip(got).collect())
            }
            Estate::Organization(_) => Ok(api
                .search_projects()
                .await?
                .into_iter()
                .map(|c| (c.project_id.clone(), Ok(c)))
                .collect()),
        }
    }

    async fn read(
        &self,
        api: &Api,
        ctx: &PollContext,
    ) -> Result<Vec<crate::model::ObservationItem>, SourceError> {
        let listed = self.projects(api).await?;
        if let Some(e) = listed
            .iter()
            .find_map(|(_, r)| r.as_ref().err().filter(|e| e.status == Some(401)))
        {
            return Err(e.clone());
        }
        let parents: Vec<String> = listed
            .iter()
            .filter_map(|(_, r)| r.as_ref().ok()?.parent.clone())
            .collect();
        let ancestors = Ancestors::read(api, parents).await;
        let org = match &self.cfg.estate {
            Estate::Organization(o) => Some(format!("organizations/{o}")),
            Estate::Projects(_) => None,
        };
        let mut todo: Vec<(Project, Placed)> = Vec::new();
        for (id, r) in listed {
            let team = r
                .as_ref()
                .ok()
                .and_then(|c| c.labels.get(&ctx.policy.team_tag))
                .filter(|t| !t.is_empty())
                .cloned();
            let r = r.and_then(|c| {
                let chain = ancestors.chain(c.parent.clone());
                Ok((c, chain?))
            });
            if let (Some(org), Ok((_, chain))) = (&org, &r) {
                if !chain.contains(org) {
                    continue; // a project of another organization
                }
            }
            todo.push((Project { id, team }, r));
        }
        let ancestors = Arc::new(ancestors);
        let (team_tag, activity) = (ctx.policy.team_tag.clone(), self.cfg.activity);
        let api2 = api.clone();
        let data = bounded(PROJECTS_AT_ONCE, todo, move |(project, r)| {
            let (api, ancestors, team_tag) = (api2.clone(), ancestors.clone(), team_tag.clone());
            async move {
                let (iam, secrets) = match r {
                    Err(e) => (Err(e.clone()), Err(e)),
                    Ok((c, chain)) => {
                        let iam = read_iam(&api, &project.id, &c, &chain, &ancestors, activity);
                        let secrets = read_secrets(&api, &project.id, &team_tag);
                        tokio::join!(iam, secrets)
                    }
                };
                Ok(ProjectData {
                    project,
                    iam,
                    secrets,
                })
            }
        })
        .await?;
        let settings = Settings {
            privileged_roles: &ctx.policy.privileged.gcp_roles,
            observed_at: ctx.now,
        };
        for p in &data {
            for e in [p.iam.as_ref().err(), p.secrets.as_ref().err()]
                .into_iter()
                .flatten()
            {
                tracing::warn!(source = %ctx.source, project = %p.project.id, reason = %e.reason, error = %e.message, "gcp project scope failed");
            }
        }
        observations(&settings, &data)
    }
}

/// A project's failure, naming it (the landing page shows it).
fn in_project(project: &str) -> impl Fn(SourceError) -> SourceError + '_ {
    move |mut e| {
        e.message = format!("project {project}: {}", e.message);
        e
    }
}

async fn read_iam(
    api: &Api,
    project: &str,
    c: &Container,
    chain: &[String],
    ancestors: &Ancestors,
    activity: bool,
) -> Result<Iam, SourceError> {
    let err = in_project(project);
    let mut bindings = api
        .policy(&c.name_or(project), &format!("project {project}"))
        .await
        .map_err(&err)?;
    for a in chain {
        match ancestors.policies.get(a) {
            Some(Ok(b)) => bindings.extend(b.iter().cloned()),
            Some(Err(e)) => return Err(err(e.clone())),
            None => {}
        }
    }
    let listed = api.service_accounts(project).await.map_err(&err)?;
    let api2 = api.clone();
    let keys = bounded(
        LOOKUPS_AT_ONCE,
        listed.iter().map(|(n, _)| n.clone()).collect(),
        move |name| {
            let api = api2.clone();
            async move { api.keys(&name).await }
        },
    )
    .await
    .map_err(&err)?;
    let accounts = listed
        .into_iter()
        .zip(keys)
        .map(|((_, mut a), k)| {
            a.keys = k;
            a
        })
        .collect();
    let activity = if activity {
        let mut x = Activity::default();
        for (ty, map) in [
            ("serviceAccountKeyLastAuthentication", &mut x.keys),
            ("serviceAccountLastAuthentication", &mut x.accounts),
        ] {
            for a in api.activities(project, ty).await.map_err(&err)? {
                for (k, t) in a.last_authentication() {
                    let e = map.entry(k).or_insert(t);
                    *e = (*e).max(t);
                }
            }
        }
        Some(x)
    } else {
        None
    };
    Ok(Iam {
        accounts,
        bindings,
        activity,
    })
}

async fn read_secrets(
    api: &Api,
    project: &str,
    team_tag: &str,
) -> Result<Vec<Secret>, SourceError> {
    let err = in_project(project);
    let mut secrets = api.secrets(project, team_tag).await.map_err(&err)?;
    let api2 = api.clone();
    let versions = bounded(
        LOOKUPS_AT_ONCE,
        secrets.iter().map(|s| s.name.clone()).collect(),
        move |name| {
            let api = api2.clone();
            async move { api.versions(&name).await }
        },
    )
    .await
    .map_err(&err)?;
    for (s, v) in secrets.iter_mut().zip(versions) {
        s.versions = v;
    }
    Ok(secrets)
}

impl Container {
    /// `projects/<number>` as listed, else `projects/<id>`.
    fn name_or(&self, project: &str) -> String {
        if self.name.starts_with("projects/") {
            self.name.clone()
        } else {
            format!("projects/{project}")
        }
    }
}
