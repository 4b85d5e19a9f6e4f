//! The REST calls of one poll and the response shapes they use (field
//! names from Google's discovery documents: `iam/v1`,
//! `cloudresourcemanager/v3`, `secretmanager/v1`, `policyanalyzer/v1`).
//! Pages follow `nextPageToken`; retries (429 `RESOURCE_EXHAUSTED`, 5xx,
//! timeouts) are the shared client's, within the poll's deadline. Enums
//! are read as names or as numbers (`$alt=json;enum-encoding=int`), and
//! absent lists as empty: Google omits empty and default values.

use super::config::Endpoints;
use super::inventory::{Binding, Key, Secret, ServiceAccount};
use crate::model::{ErrorReason, SourceError};
use crate::sources::http::{self, HttpClient};
use crate::sources::rfc3339;
use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// The authenticated view of the APIs for one poll.
#[derive(Clone)]
pub struct Api {
    pub client: HttpClient,
    pub endpoints: Endpoints,
    headers: HeaderMap,
    pub deadline: Instant,
    /// Requests sent, retries included.
    pub requests: Arc<AtomicU32>,
}

fn parse_err(url: &str, what: &str) -> SourceError {
    SourceError::new(
        ErrorReason::Parse,
        format!("{}: not {what}", http::redact_url(url)),
    )
}

/// A paged list response: its items (under `field`) and `nextPageToken`.
trait Page: DeserializeOwned {
    type Item;
    fn split(self) -> (Vec<Self::Item>, Option<String>);
}

macro_rules! page {
    ($name:ident, $field:literal, $item:ty) => {
        #[derive(Deserialize)]
        struct $name {
            #[serde(rename = $field, default)]
            items: Vec<$item>,
            #[serde(rename = "nextPageToken", default)]
            next: Option<String>,
        }
        impl Page for $name {
            type Item = $item;
            fn split(self) -> (Vec<$item>, Option<String>) {
                (self.items, self.next.filter(|t| !t.is_empty()))
            }
        }
    };
}

/// A Resource Manager project or folder.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct Container {
    /// `projects/<number>`, `folders/<id>`.
    #[serde(default)]
    pub name: String,
    #[serde(rename = "projectId", default)]
    pub project_id: String,
    /// `folders/<id>`, `organizations/<id>`; absent for an organization-less project.
    #[serde(default)]
    pub parent: Option<String>,
    #[serde(default)]
    pub state: Value,
    #[serde(default)]
    pub labels: HashMap<String, String>,
}

impl Container {
    /// `state` is ACTIVE (1 with int enums).
    pub fn active(&self) -> bool {
        self.state == "ACTIVE" || self.state == 1
    }
}

page!(ProjectsPage, "projects", Container);

#[derive(Deserialize)]
struct RawAccount {
    #[serde(default)]
    name: String,
    #[serde(default)]
    email: String,
    #[serde(rename = "uniqueId", default)]
    unique_id: String,
    #[serde(default)]
    disabled: bool,
}
page!(AccountsPage, "accounts", RawAccount);

#[derive(Deserialize)]
struct RawKey {
    #[serde(default)]
    name: String,
    #[serde(rename = "validAfterTime")]
    valid_after: Option<String>,
    #[serde(rename = "validBeforeTime")]
    valid_before: Option<String>,
    #[serde(default)]
    disabled: bool,
    /// USER_MANAGED (1) or SYSTEM_MANAGED (2): a server that ignores the
    /// `keyTypes` filter still has its system keys dropped here.
    #[serde(rename = "keyType", default)]
    key_type: Value,
}

#[derive(Deserialize)]
struct KeysResponse {
    #[serde(default)]
    keys: Vec<RawKey>,
}

#[derive(Deserialize)]
struct RawBinding {
    #[serde(default)]
    role: String,
    #[serde(default)]
    members: Vec<String>,
    condition: Option<Value>,
}

#[derive(Deserialize)]
struct Policy {
    #[serde(default)]
    bindings: Vec<RawBinding>,
}

#[derive(Deserialize)]
struct Rotation {
    #[serde(rename = "nextRotationTime")]
    next: Option<String>,
}

#[derive(Deserialize)]
struct RawSecret {
    #[serde(default)]
    name: String,
    #[serde(rename = "createTime")]
    create_time: Option<String>,
    #[serde(default)]
    labels: HashMap<String, String>,
    rotation: Option<Rotation>,
    #[serde(rename = "expireTime")]
    expire_time: Option<String>,
}
page!(SecretsPage, "secrets", RawSecret);

#[derive(Deserialize)]
struct RawVersion {
    #[serde(rename = "createTime")]
    create_time: Option<String>,
    #[serde(default)]
    state: Value,
}
page!(VersionsPage, "versions", RawVersion);

#[derive(Deserialize)]
pub struct RawActivity {
    #[serde(rename = "fullResourceName", default)]
    full_resource_name: String,
    #[serde(default)]
    activity: Value,
}
page!(ActivitiesPage, "activities", RawActivity);

fn time(s: &Option<String>) -> Option<i64> {
    s.as_deref().and_then(rfc3339)
}

/// Percent-encoding of a query value (RFC 3986 unreserved kept).
pub fn query_escape(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Api {
    pub fn new(
        client: HttpClient,
        endpoints: Endpoints,
        bearer: HeaderValue,
        deadline: Instant,
    ) -> Api {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, bearer);
        Api {
            client,
            endpoints,
            headers,
            deadline,
            requests: Arc::new(AtomicU32::new(0)),
        }
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        url: &str,
        body: Option<&'static str>,
        what: &str,
    ) -> Result<T, SourceError> {
        let mut h = self.headers.clone();
        if body.is_some() {
            h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        let r = self
            .client
            .send(
                method,
                url,
                &h,
                body.map(|b| Bytes::from_static(b.as_bytes())),
                self.deadline,
            )
            .await;
        let r = match r {
            Ok(r) => {
                self.requests.fetch_add(r.attempts, Ordering::Relaxed);
                r
            }
            Err(e) => {
                self.requests.fetch_add(1, Ordering::Relaxed);
                return Err(e);
            }
        };
        http::error_for_status(&r, url)?;
        serde_json::from_slice(&r.body).map_err(|_| parse_err(url, what))
    }

    async fn get<T: DeserializeOwned>(&self, url: &str, what: &str) -> Result<T, SourceError> {
        self.call(Method::GET, url, None, what).await
    }

    /// Every page of a list: `url` has a query already (`?pageSize=…`).
    async fn pages<P: Page>(&self, url: &str, what: &str) -> Result<Vec<P::Item>, SourceError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let u = match &token {
                None => url.to_string(),
                Some(t) => format!("{url}&pageToken={}", query_escape(t)),
            };
            let (items, next) = self.get::<P>(&u, what).await?.split();
            out.extend(items);
            match next {
                Some(t) if Some(&t) != token.as_ref() => token = Some(t),
                _ => return Ok(out),
            }
        }
    }

    /// `projects/<id or number>` or `folders/<id>`.
    pub async fn container(&self, name: &str) -> Result<Container, SourceError> {
        let url = format!("{}/v3/{name}", self.endpoints.resourcemanager);
        self.get(&url, "a Resource Manager resource").await
    }

    /// Every ACTIVE project the caller can see (`projects:search`).
    pub async fn search_projects(&self) -> Result<Vec<Container>, SourceError> {
        let url = format!(
            "{}/v3/projects:search?query={}&pageSize=500",
            self.endpoints.resourcemanager,
            query_escape("state:ACTIVE")
        );
        let all = self.pages::<ProjectsPage>(&url, "a project list").await?;
        Ok(all.into_iter().filter(Container::active).collect())
    }

    /// The bindings of a project's, folder's or organization's IAM policy.
    pub async fn policy(&self, name: &str, on: &str) -> Result<Vec<Binding>, SourceError> {
        let url = format!("{}/v3/{name}:getIamPolicy", self.endpoints.resourcemanager);
        let body = r#"{"options":{"requestedPolicyVersion":3}}"#;
        let p: Policy = self
            .call(Method::POST, &url, Some(body), "an IAM policy")
            .await?;
        Ok(p.bindings
            .into_iter()
            .map(|b| Binding {
                on: on.to_string(),
                role: b.role,
                members: b.members,
                conditional: b.condition.is_some_and(|c| !c.is_null()),
            })
            .collect())
    }

    /// The project's service accounts, without their keys.
    pub async fn service_accounts(
        &self,
        project: &str,
    ) -> Result<Vec<(String, ServiceAccount)>, SourceError> {
        let url = format!(
            "{}/v1/projects/{project}/serviceAccounts?pageSize=100",
            self.endpoints.iam
        );
        let all = self
            .pages::<AccountsPage>(&url, "a service-account list")
            .await?;
        Ok(all
            .into_iter()
            .filter(|a| !a.unique_id.is_empty())
            .map(|a| {
                let name = if a.name.is_empty() {
                    format!("projects/{project}/serviceAccounts/{}", a.email)
                } else {
                    a.name
                };
                (
                    name,
                    ServiceAccount {
                        email: a.email,
                        unique_id: a.unique_id,
                        disabled: a.disabled,
                        keys: Vec::new(),
                    },
                )
            })
            .collect())
    }

    /// The USER_MANAGED keys of an account (`name` as listed).
    pub async fn keys(&self, account_name: &str) -> Result<Vec<Key>, SourceError> {
        let url = format!(
            "{}/v1/{account_name}/keys?keyTypes=USER_MANAGED",
            self.endpoints.iam
        );
        let r: KeysResponse = self.get(&url, "a key list").await?;
        Ok(r.keys
            .into_iter()
            .filter(|k| !(k.key_type == "SYSTEM_MANAGED" || k.key_type == 2))
            .map(|k| Key {
                valid_after: time(&k.valid_after),
                valid_before: time(&k.valid_before),
                disabled: k.disabled,
                name: k.name,
            })
            .collect())
    }

    /// Secret Manager secrets, without their versions.
    pub async fn secrets(&self, project: &str, team_tag: &str) -> Result<Vec<Secret>, SourceError> {
        let url = format!(
            "{}/v1/projects/{project}/secrets?pageSize=1000",
            self.endpoints.secretmanager
        );
        let all = self.pages::<SecretsPage>(&url, "a secret list").await?;
        Ok(all
            .into_iter()
            .map(|s| Secret {
                created_at: time(&s.create_time),
                team: s.labels.get(team_tag).filter(|v| !v.is_empty()).cloned(),
                next_rotation: s.rotation.and_then(|r| time(&r.next)),
                expires_at: time(&s.expire_time),
                versions: Vec::new(),
                name: s.name,
            })
            .collect())
    }

    /// (createTime, ENABLED) of a secret's versions; values are never read.
    pub async fn versions(&self, secret: &str) -> Result<Vec<(Option<i64>, bool)>, SourceError> {
        let url = format!(
            "{}/v1/{secret}/versions?pageSize=1000",
            self.endpoints.secretmanager
        );
        let all = self.pages::<VersionsPage>(&url, "a version list").await?;
        Ok(all
            .into_iter()
            .map(|v| (time(&v.create_time), v.state == "ENABLED" || v.state == 1))
            .collect())
    }

    /// Last authentications of one activity type
    /// (`serviceAccountKeyLastAuthentication`, `serviceAccountLastAuthentication`).
    pub async fn activities(
        &self,
        project: &str,
        activity_type: &str,
    ) -> Result<Vec<RawActivity>, SourceError> {
        let url = format!(
            "{}/v1/projects/{project}/locations/global/activityTypes/{activity_type}/activities:query?pageSize=1000",
            self.endpoints.policyanalyzer
        );
        self.pages::<ActivitiesPage>(&url, "an activity list").await
    }
}

impl RawActivity {
    /// `(resource, last authentication)`: for a key activity the key id,
    /// for an account activity its unique id and its email (both are keys).
    pub fn last_authentication(&self) -> Vec<(String, i64)> {
        let Some(t) = self
            .activity
            .get("lastAuthenticatedTime")
            .and_then(Value::as_str)
            .and_then(rfc3339)
        else {
            return Vec::new();
        };
        let inner = self
            .activity
            .get("serviceAccountKey")
            .or_else(|| self.activity.get("serviceAccount"));
        let full = inner
            .and_then(|i| i.get("fullResourceName"))
            .and_then(Value::as_str)
            .unwrap_or(&self.full_resource_name);
        let mut out = Vec::new();
        if let Some(last) = full.rsplit('/').next().filter(|s| !s.is_empty()) {
            out.push((last.to_string(), t));
        }
        if self.activity.get("serviceAccount").is_some() {
            if let Some(id) = inner
                .and_then(|i| i.get("serviceAccountId"))
                .and_then(Value::as_str)
            {
                out.push((id.to_string(), t));
            }
        }
        out
    }
}
