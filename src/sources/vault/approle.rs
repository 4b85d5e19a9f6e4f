//! The `approle/{mount}` scopes: AppRole auth mounts, their roles and
//! secret-id accessors, and the parsers of those responses.

use super::api::{encode_segment, json, opt_time, parse_err, Api, Envelope};
use super::tokens::privileged_reason;
use super::{CONCURRENCY, NEVER, PROVIDER};
use crate::config::Policy;
use crate::model::{
    CredentialState, ErrorReason, ObservedCredential, ObservedIdentity, SourceError,
};
use crate::sources::bounded;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

/// AppRole auth mounts from `sys/auth`; `approle` when it is forbidden.
pub(super) async fn read_approle_mounts(api: &Api) -> Result<Vec<String>, SourceError> {
    match api.get("sys/auth").await {
        Ok(Some(body)) => parse_auth_mounts(&body).map_err(|m| parse_err(&api.url("sys/auth"), m)),
        Ok(None) => Ok(vec!["approle".to_string()]),
        Err(e) if e.reason == ErrorReason::Auth && e.status == Some(403) => {
            Ok(vec!["approle".to_string()])
        }
        Err(e) => Err(e),
    }
}

pub(super) async fn read_approle(
    api: &Api,
    mount: &str,
    policy: &Arc<Policy>,
    account: &str,
) -> Result<(Vec<ObservedIdentity>, Vec<ObservedCredential>), SourceError> {
    let roles = api.list(&format!("auth/{mount}/role")).await?;
    let mut ids = Vec::new();
    let mut creds = Vec::new();
    for role in roles {
        let enc = encode_segment(&role);
        let rpath = format!("auth/{mount}/role/{enc}");
        let Some(body) = api.get(&rpath).await? else {
            continue; // deleted between list and read
        };
        let policies = parse_approle_role(&body).map_err(|m| parse_err(&api.url(&rpath), m))?;
        let accessors = api.list(&format!("{rpath}/secret-id")).await?;
        let lpath = format!("{rpath}/secret-id-accessor/lookup");
        let identity = format!("{mount}/{role}");
        let results = bounded(CONCURRENCY, accessors, |acc| {
            let api = api.clone();
            let lpath = lpath.clone();
            let identity = identity.clone();
            async move {
                let r = api
                    .post(&lpath, serde_json::json!({ "secret_id_accessor": acc }))
                    .await;
                let body = match r {
                    Ok(Some(b)) => b,
                    Ok(None) => return Ok(None),
                    // Expired and tidied between the list and the lookup.
                    Err(e) if e.status == Some(400) => return Ok(None),
                    Err(e) => return Err(e),
                };
                parse_secret_id_lookup(&body, &identity)
                    .map(Some)
                    .map_err(|m| parse_err(&api.url(&lpath), m))
            }
        })
        .await?;
        let mut role_creds = Vec::new();
        let mut never_expires = false;
        for (c, never) in results.into_iter().flatten() {
            never_expires |= never;
            role_creds.push(c);
        }
        ids.push(approle_identity(
            mount,
            &role,
            &policies,
            &role_creds,
            never_expires,
            account,
            policy,
        ));
        creds.extend(role_creds);
    }
    Ok((ids, creds))
}

// ---------------------------------------------------------------------------
// Pure parsing (tested on fixtures).

#[derive(Deserialize)]
struct AuthMount {
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// AppRole mount paths (without `auth/` and the trailing `/`) from
/// `GET sys/auth`, sorted.
pub fn parse_auth_mounts(body: &[u8]) -> Result<Vec<String>, String> {
    let v: Value = json(body)?;
    // Newer servers wrap the map in `data`; older ones send it at the top.
    let map = match v.get("data") {
        Some(d) if d.is_object() => d.clone(),
        _ => v,
    };
    let map: BTreeMap<String, Value> = match map {
        Value::Object(m) => m.into_iter().collect(),
        _ => return Err("sys/auth is not an object".into()),
    };
    let mut out = Vec::new();
    for (path, m) in map {
        if !path.ends_with('/') {
            continue; // request_id, lease_id...
        }
        let Ok(m) = serde_json::from_value::<AuthMount>(m) else {
            continue;
        };
        if m.kind.as_deref() == Some("approle") {
            out.push(path.trim_end_matches('/').to_string());
        }
    }
    Ok(out)
}

/// The token policies of an AppRole role (`token_policies`, or the legacy
/// `policies`).
pub fn parse_approle_role(body: &[u8]) -> Result<Vec<String>, String> {
    #[derive(Deserialize)]
    struct Role {
        token_policies: Option<Vec<String>>,
        policies: Option<Vec<String>>,
    }
    let e: Envelope<Role> = json(body)?;
    let r = e.data.ok_or("no data in the role response")?;
    let mut p = r.token_policies.unwrap_or_default();
    for x in r.policies.unwrap_or_default() {
        if !p.contains(&x) {
            p.push(x);
        }
    }
    Ok(p)
}

/// One secret-id accessor lookup: the credential of `identity`
/// (`{mount}/{role}`), and whether the secret-id never expires.
pub fn parse_secret_id_lookup(
    body: &[u8],
    identity: &str,
) -> Result<(ObservedCredential, bool), String> {
    #[derive(Deserialize)]
    struct Lookup {
        secret_id_accessor: Option<String>,
        creation_time: Option<String>,
        expiration_time: Option<String>,
    }
    let e: Envelope<Lookup> = json(body)?;
    let l = e.data.ok_or("no data in the secret-id lookup response")?;
    let id = l
        .secret_id_accessor
        .filter(|a| !a.is_empty())
        .ok_or("lookup without a secret_id_accessor")?;
    let created_at = opt_time("creation_time", l.creation_time.as_deref())?;
    let exp = l.expiration_time.filter(|s| s.trim() != NEVER);
    let expires_at = opt_time("expiration_time", exp.as_deref())?;
    Ok((
        ObservedCredential {
            provider: PROVIDER,
            account: String::new(),
            kind: "secret_id",
            id,
            identity: Some(identity.to_string()),
            team: None,
            created_at,
            last_rotated_at: created_at,
            expires_at,
            last_used_at: None,
            state: CredentialState::Active,
            rotation_enabled: false,
            value_hashes: Vec::new(),
            aliases: Vec::new(),
        },
        expires_at.is_none(),
    ))
}

/// The identity of an AppRole role from its policies and secret-ids.
pub fn approle_identity(
    mount: &str,
    role: &str,
    policies: &[String],
    secret_ids: &[ObservedCredential],
    some_never_expires: bool,
    account: &str,
    policy: &Policy,
) -> ObservedIdentity {
    let privileged = privileged_reason(policies.iter().map(String::as_str), policy);
    ObservedIdentity {
        provider: PROVIDER,
        account: account.to_string(),
        kind: "approle",
        id: format!("{mount}/{role}"),
        name: role.to_string(),
        created_at: secret_ids.iter().filter_map(|c| c.created_at).min(),
        last_used_at: None,
        usage_tracked: false,
        team: None,
        standing: privileged.is_some() && some_never_expires,
        privileged,
        human: false,
    }
}
