//! The `tokens` scope: token accessors, their lookups, and how a token's
//! policies make it privileged.

use super::api::{json, opt_time, parse_err, Api, Envelope};
use super::{CONCURRENCY, HUMAN_PATHS, PROVIDER};
use crate::config::Policy;
use crate::model::{CredentialState, ObservedCredential, ObservedIdentity, SourceError};
use crate::sources::{bounded, PollContext};
use serde::Deserialize;
use std::collections::HashMap;

pub(super) async fn read_tokens(
    api: &Api,
    ctx: &PollContext,
    account: &str,
) -> Result<(Vec<ObservedIdentity>, Vec<ObservedCredential>), SourceError> {
    let accessors = api.list("auth/token/accessors").await?;
    let policy = ctx.policy.clone();
    let account = account.to_string();
    let results = bounded(CONCURRENCY, accessors, |accessor| {
        let api = api.clone();
        let policy = policy.clone();
        let account = account.clone();
        async move {
            let path = "auth/token/lookup-accessor";
            let r = api
                .post(path, serde_json::json!({ "accessor": accessor }))
                .await;
            let body = match r {
                Ok(Some(b)) => b,
                // Revoked between the list and the lookup ("invalid accessor").
                Ok(None) => return Ok(TokenEntry::Gone),
                Err(e) if e.status == Some(400) => return Ok(TokenEntry::Gone),
                Err(e) => return Err(e),
            };
            parse_token_lookup(&body, &account, &policy).map_err(|m| parse_err(&api.url(path), m))
        }
    })
    .await?;
    let mut ids = Vec::new();
    let mut creds = Vec::new();
    for r in results {
        match r {
            TokenEntry::Gone | TokenEntry::AppRoleSession => {}
            TokenEntry::Human(i) => ids.push(i),
            TokenEntry::Nhi(i, c) => {
                ids.push(*i);
                creds.push(*c);
            }
        }
    }
    Ok((ids, creds))
}

// ---------------------------------------------------------------------------
// Pure parsing (tested on fixtures).

/// What a token accessor lookup is.
#[derive(Debug, Clone, PartialEq)]
pub enum TokenEntry {
    /// The accessor vanished between list and lookup.
    Gone,
    /// A token of an AppRole login: inventoried with its AppRole.
    AppRoleSession,
    Human(ObservedIdentity),
    Nhi(Box<ObservedIdentity>, Box<ObservedCredential>),
}

#[derive(Deserialize)]
struct TokenLookup {
    accessor: Option<String>,
    #[serde(default)]
    policies: Option<Vec<String>>,
    #[serde(default)]
    identity_policies: Option<Vec<String>>,
    meta: Option<HashMap<String, Option<String>>>,
    display_name: Option<String>,
    path: Option<String>,
    creation_time: Option<i64>,
    expire_time: Option<String>,
}

/// Why the policies make an identity privileged: `policy root`, or the
/// first of `vault_policies` held.
pub fn privileged_reason<'a>(
    policies: impl IntoIterator<Item = &'a str> + Clone,
    policy: &Policy,
) -> Option<String> {
    if policies.clone().into_iter().any(|p| p == "root") {
        return Some("policy root".to_string());
    }
    policy
        .privileged
        .vault_policies
        .iter()
        .find(|want| policies.clone().into_iter().any(|p| p == want.as_str()))
        .map(|p| format!("policy {p}"))
}

/// One `POST auth/token/lookup-accessor` response.
pub fn parse_token_lookup(
    body: &[u8],
    account: &str,
    policy: &Policy,
) -> Result<TokenEntry, String> {
    let e: Envelope<TokenLookup> = json(body)?;
    let t = e.data.ok_or("no data in the lookup response")?;
    let accessor = t
        .accessor
        .filter(|a| !a.is_empty())
        .ok_or("lookup without an accessor")?;
    let path = t.path.unwrap_or_default();
    if path.starts_with("auth/approle/login") {
        return Ok(TokenEntry::AppRoleSession);
    }
    let meta = t.meta.unwrap_or_default();
    let team = meta
        .get(&policy.team_tag)
        .and_then(|v| v.as_deref())
        .filter(|v| !v.is_empty())
        .map(str::to_string);
    let name = t.display_name.unwrap_or_default();
    let human = HUMAN_PATHS.iter().any(|p| path.starts_with(p));
    let expires_at = opt_time("expire_time", t.expire_time.as_deref())?;
    let all: Vec<String> = t
        .policies
        .unwrap_or_default()
        .into_iter()
        .chain(t.identity_policies.unwrap_or_default())
        .collect();
    let privileged = if human {
        None
    } else {
        privileged_reason(all.iter().map(String::as_str), policy)
    };
    let identity = ObservedIdentity {
        provider: PROVIDER,
        account: account.to_string(),
        kind: "token",
        id: accessor.clone(),
        name,
        created_at: t.creation_time,
        last_used_at: None,
        usage_tracked: false,
        team: team.clone(),
        standing: privileged.is_some() && expires_at.is_none(),
        privileged,
        human,
    };
    if human {
        return Ok(TokenEntry::Human(identity));
    }
    let cred = ObservedCredential {
        provider: PROVIDER,
        account: String::new(),
        kind: "token",
        id: accessor.clone(),
        identity: Some(accessor),
        team,
        created_at: t.creation_time,
        last_rotated_at: t.creation_time,
        expires_at,
        last_used_at: None,
        state: CredentialState::Active,
        rotation_enabled: false,
        value_hashes: Vec::new(),
        aliases: Vec::new(),
    };
    Ok(TokenEntry::Nhi(Box::new(identity), Box::new(cred)))
}
