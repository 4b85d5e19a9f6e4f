//! The `kv/{mount}` scopes: the walk of a KV version 2 mount and the
//! parsers of its metadata and data responses.

use super::api::{encode_path, json, opt_time, parse_err, Api, Envelope};
use super::{VaultSource, CONCURRENCY, MAX_DEPTH, PROVIDER};
use crate::hashing::SecretHasher;
use crate::model::{CredentialState, ObservedCredential, SourceError};
use crate::sources::{bounded, PollContext};
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;

impl VaultSource {
    pub(super) async fn read_kv(
        &self,
        api: &Api,
        mount: &str,
        ctx: &PollContext,
    ) -> Result<Vec<ObservedCredential>, SourceError> {
        let mount = mount.trim_matches('/');
        // Walk the folder tree (depth first).
        let mut leaves = Vec::new();
        let mut folders = vec![(String::new(), 0usize)];
        while let Some((folder, depth)) = folders.pop() {
            let path = format!("{mount}/metadata/{}", encode_path(&folder));
            let keys = api.list(&path).await?;
            for k in keys {
                let full = format!("{folder}{k}");
                if k.ends_with('/') {
                    if depth < MAX_DEPTH && !k.trim_matches('/').is_empty() {
                        folders.push((full, depth + 1));
                    }
                } else if !k.is_empty() {
                    leaves.push(full);
                }
            }
        }
        leaves.sort();
        leaves.dedup();
        let team_tag = ctx.policy.team_tag.clone();
        let now = ctx.now;
        let hasher = ctx.hasher.clone();
        let match_values = self.cfg.match_values;
        let results = bounded(CONCURRENCY, leaves, |leaf| {
            let api = api.clone();
            let team_tag = team_tag.clone();
            let hasher = hasher.clone();
            let mount = mount.to_string();
            async move {
                let path = format!("{mount}/metadata/{}", encode_path(&leaf));
                let Some(body) = api.get(&path).await? else {
                    return Ok(None); // deleted between list and read
                };
                let mut cred = parse_kv_metadata(&body, &mount, &leaf, &team_tag, now)
                    .map_err(|m| parse_err(&api.url(&path), m))?;
                if match_values {
                    let path = format!("{mount}/data/{}", encode_path(&leaf));
                    // 404: the current version is deleted; nothing to hash.
                    if let Some(body) = api.get(&path).await? {
                        cred.value_hashes = parse_kv_data_hashes(&body, &hasher)
                            .map_err(|m| parse_err(&api.url(&path), m))?;
                    }
                }
                Ok(Some(cred))
            }
        })
        .await?;
        Ok(results.into_iter().flatten().collect())
    }
}

// ---------------------------------------------------------------------------
// Pure parsing (tested on fixtures).

#[derive(Deserialize)]
struct KvMetadata {
    created_time: Option<String>,
    updated_time: Option<String>,
    #[serde(default)]
    current_version: u64,
    custom_metadata: Option<HashMap<String, Option<String>>>,
    #[serde(default)]
    versions: HashMap<String, KvVersion>,
}

#[derive(Deserialize)]
struct KvVersion {
    deletion_time: Option<String>,
    #[serde(default)]
    destroyed: bool,
}

/// One KV v2 secret from `GET {mount}/metadata/{path}` (no value hashes).
pub fn parse_kv_metadata(
    body: &[u8],
    mount: &str,
    path: &str,
    team_tag: &str,
    now: i64,
) -> Result<ObservedCredential, String> {
    let e: Envelope<KvMetadata> = json(body)?;
    let m = e.data.ok_or("no data in the metadata response")?;
    let created_at = opt_time("created_time", m.created_time.as_deref())?;
    let updated = opt_time("updated_time", m.updated_time.as_deref())?;
    let custom = m.custom_metadata.unwrap_or_default();
    let meta = |k: &str| {
        custom
            .get(k)
            .and_then(|v| v.as_deref())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    let team = meta(team_tag);
    let last_rotated_at = updated.or(created_at);
    let rotation_enabled = match (meta("rotation_period"), last_rotated_at) {
        (Some(p), Some(at)) => match crate::config::parse_duration(&p) {
            Ok(d) if !d.is_zero() => now.saturating_sub(at) <= d.as_secs() as i64,
            _ => false,
        },
        _ => false,
    };
    let inactive = match m.versions.get(&m.current_version.to_string()) {
        Some(v) => {
            v.destroyed
                || opt_time("deletion_time", v.deletion_time.as_deref())?.is_some_and(|t| t <= now)
        }
        None => false,
    };
    Ok(ObservedCredential {
        provider: PROVIDER,
        account: String::new(),
        kind: "kv",
        id: format!("{}/{}", mount.trim_matches('/'), path),
        identity: None,
        team,
        created_at,
        last_rotated_at,
        expires_at: None,
        last_used_at: None,
        state: if inactive {
            CredentialState::Inactive
        } else {
            CredentialState::Active
        },
        rotation_enabled,
        value_hashes: Vec::new(),
        aliases: Vec::new(),
    })
}

/// Keyed hashes of the current values of `GET {mount}/data/{path}`: strings
/// as their UTF-8 bytes, other values as compact JSON. Values are dropped
/// here; the error never quotes the body.
pub fn parse_kv_data_hashes(body: &[u8], hasher: &SecretHasher) -> Result<Vec<[u8; 32]>, String> {
    #[derive(Deserialize)]
    struct Data {
        data: Option<serde_json::Map<String, Value>>,
    }
    let e: Envelope<Data> = json(body)?;
    let Some(values) = e.data.and_then(|d| d.data) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::with_capacity(values.len());
    for (_, v) in values {
        let h = match &v {
            Value::String(s) => hasher.hash(s.as_bytes()),
            other => hasher.hash(other.to_string().as_bytes()),
        };
        out.push(h);
    }
    Ok(out)
}
