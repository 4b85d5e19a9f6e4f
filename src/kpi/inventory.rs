//! Identity and credential KPIs (SPEC §3 "Identities and privilege",
//! "Credentials") from the inventories the vault and aws sources keep in
//! the store, and the privilege, hygiene and governance posture dimensions.

use crate::config::{LabelsConfig, Policy};
use crate::store::StoreError;
use rusqlite::{params, Connection};
use std::collections::{BTreeMap, BTreeSet, HashMap};

const DAY: i64 = 86_400;

/// The `band` values of `nhi_credentials_by_age`, with their upper bound.
pub const AGE_BANDS: [(&str, i64); 4] = [
    ("lt_30d", 30 * DAY),
    ("30d_90d", 90 * DAY),
    ("90d_365d", 365 * DAY),
    ("gt_365d", i64::MAX),
];

/// (source, provider, kind, team label, scope label; each "" when its
/// label is off or the row has no team / account).
pub type KindKey = (String, String, String, String, String);

#[derive(Debug, Clone, Default, PartialEq)]
pub struct IdentityCounts {
    pub total: u64,
    pub standing_privileged: u64,
    pub unused: u64,
    pub owned: u64,
    pub governed: u64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct CredentialCounts {
    pub active: u64,
    pub inactive: u64,
    pub long_lived: u64,
    pub rotation_enabled: u64,
    /// Age since last rotation of the oldest active credential.
    pub oldest_age: Option<f64>,
    /// Active credentials per [`AGE_BANDS`] entry.
    pub bands: [u64; 4],
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Inventory {
    /// `labels.team.enabled`: the identity and credential gauges carry `team`.
    pub team_labels: bool,
    /// `labels.scope.enabled`: the identity and credential gauges carry `scope`.
    pub scope_labels: bool,
    pub identities: BTreeMap<KindKey, IdentityCounts>,
    /// (source, provider) → human principals.
    pub humans: BTreeMap<(String, String), u64>,
    pub credentials: BTreeMap<KindKey, CredentialCounts>,
}

impl Inventory {
    pub fn is_empty(&self) -> bool {
        self.identities.is_empty() && self.humans.is_empty() && self.credentials.is_empty()
    }

    /// privilege, hygiene and governance scores, for the dimensions with data.
    pub fn posture(&self) -> Vec<(&'static str, f64)> {
        let nhis: u64 = self.identities.values().map(|c| c.total).sum();
        let standing: u64 = self
            .identities
            .values()
            .map(|c| c.standing_privileged)
            .sum();
        let governed: u64 = self.identities.values().map(|c| c.governed).sum();
        let active: u64 = self.credentials.values().map(|c| c.active).sum();
        let long_lived: u64 = self.credentials.values().map(|c| c.long_lived).sum();
        let mut out = Vec::new();
        if nhis > 0 {
            out.push(("privilege", 1.0 - standing as f64 / nhis as f64));
            out.push(("governance", governed as f64 / nhis as f64));
        }
        if active > 0 {
            out.push(("hygiene", 1.0 - long_lived as f64 / active as f64));
        }
        out
    }
}

/// The values of a capped label (`teams` or `scopes` table): the first
/// `max` names by first appearance keep their name, the rest are `other`.
/// `None` when the label is off.
fn capped_labels(
    conn: &Connection,
    table: &str,
    enabled: bool,
    max: usize,
) -> Result<Option<HashMap<String, String>>, StoreError> {
    if !enabled {
        return Ok(None);
    }
    let mut out = HashMap::new();
    let mut stmt = conn.prepare(&format!("SELECT name, rank FROM {table}"))?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
    for r in rows {
        let (name, rank) = r?;
        let label = if rank as usize <= max {
            name.clone()
        } else {
            "other".to_string()
        };
        out.insert(name, label);
    }
    Ok(Some(out))
}

/// A row's label value: "" when the label is off or the row has none.
fn label_of(values: &Option<HashMap<String, String>>, v: Option<String>) -> String {
    match (values, v) {
        (None, _) | (_, None) => String::new(),
        (Some(_), Some(v)) if v.is_empty() => String::new(),
        (Some(m), Some(v)) => m.get(&v).cloned().unwrap_or_else(|| "other".into()),
    }
}

/// Count the inventories as of `now`. `sources`: only these sources'
/// rows (the configured ones); `None` for all.
pub fn compute(
    conn: &Connection,
    policy: &Policy,
    labels: &LabelsConfig,
    sources: Option<&BTreeSet<String>>,
    now: i64,
) -> Result<Inventory, StoreError> {
    let mut inv = Inventory {
        team_labels: labels.team_enabled,
        scope_labels: labels.scope_enabled,
        ..Default::default()
    };
    let teams = capped_labels(conn, "teams", labels.team_enabled, labels.team_max_values)?;
    let scopes = capped_labels(
        conn,
        "scopes",
        labels.scope_enabled,
        labels.scope_max_values,
    )?;
    let unused_cutoff = now - policy.unused_after.as_secs() as i64;
    let age_cutoff = now - policy.max_credential_age.as_secs() as i64;
    let wanted = |s: &str| sources.is_none_or(|set| set.contains(s));

    // An identity is unused when its provider tracks use and it was not
    // used (or, never used, not created) within unused_after. Governed:
    // owned, used, and every active credential within max age or rotated
    // automatically.
    let mut stmt = conn.prepare(
        "SELECT i.source, i.provider, i.kind, i.team, i.human, COUNT(*),
            SUM(i.privileged IS NOT NULL AND i.standing = 1),
            SUM(i.usage_tracked = 1 AND COALESCE(i.last_used_at, i.created_at, 0) < ?1),
            SUM(i.team IS NOT NULL),
            SUM(i.team IS NOT NULL
                AND NOT (i.usage_tracked = 1 AND COALESCE(i.last_used_at, i.created_at, 0) < ?1)
                AND NOT EXISTS (SELECT 1 FROM credentials c
                    WHERE c.source = i.source AND c.identity = i.ext_id AND c.state = 'active'
                      AND c.rotation_enabled = 0
                      AND COALESCE(c.last_rotated_at, c.created_at) < ?2)),
            i.account
         FROM identities i GROUP BY 1, 2, 3, 4, 5, 11",
    )?;
    let mut rows = stmt.query(params![unused_cutoff, age_cutoff])?;
    while let Some(r) = rows.next()? {
        let source: String = r.get(0)?;
        if !wanted(&source) {
            continue;
        }
        let provider: String = r.get(1)?;
        let n = r.get::<_, i64>(5)? as u64;
        if r.get::<_, i64>(4)? != 0 {
            *inv.humans.entry((source, provider)).or_default() += n;
            continue;
        }
        let team = label_of(&teams, r.get(3)?);
        let scope = label_of(&scopes, r.get(10)?);
        let c = inv
            .identities
            .entry((source, provider, r.get(2)?, team, scope))
            .or_default();
        c.total += n;
        c.standing_privileged += r.get::<_, i64>(6)? as u64;
        c.unused += r.get::<_, i64>(7)? as u64;
        c.owned += r.get::<_, i64>(8)? as u64;
        c.governed += r.get::<_, i64>(9)? as u64;
    }

    // Credentials: age is time since last rotation (creation when never
    // rotated). Deleted credentials are history, not inventory.
    let mut stmt = conn.prepare(
        "SELECT source, provider, kind, team, state, COUNT(*),
            SUM(age >= ?2), SUM(rotation_enabled = 1), MAX(age),
            SUM(age < ?3), SUM(age >= ?3 AND age < ?4), SUM(age >= ?4 AND age < ?5), SUM(age >= ?5),
            account
         FROM (SELECT source, provider, kind, team, state, rotation_enabled, account,
                      ?1 - COALESCE(last_rotated_at, created_at) AS age
               FROM credentials WHERE state != 'deleted')
         GROUP BY 1, 2, 3, 4, 5, 14",
    )?;
    let max_age = policy.max_credential_age.as_secs() as i64;
    let mut rows = stmt.query(params![
        now,
        max_age,
        AGE_BANDS[0].1,
        AGE_BANDS[1].1,
        AGE_BANDS[2].1
    ])?;
    while let Some(r) = rows.next()? {
        let source: String = r.get(0)?;
        if !wanted(&source) {
            continue;
        }
        let team = label_of(&teams, r.get(3)?);
        let scope = label_of(&scopes, r.get(13)?);
        let state: String = r.get(4)?;
        let n = r.get::<_, i64>(5)? as u64;
        let c = inv
            .credentials
            .entry((source, r.get(1)?, r.get(2)?, team, scope))
            .or_default();
        if state != "active" {
            c.inactive += n;
            continue;
        }
        c.active += n;
        c.long_lived += r.get::<_, Option<i64>>(6)?.unwrap_or(0) as u64;
        c.rotation_enabled += r.get::<_, Option<i64>>(7)?.unwrap_or(0) as u64;
        if let Some(age) = r.get::<_, Option<i64>>(8)? {
            let age = age.max(0) as f64;
            c.oldest_age = Some(c.oldest_age.map_or(age, |o| o.max(age)));
        }
        for (i, b) in c.bands.iter_mut().enumerate() {
            *b += r.get::<_, Option<i64>>(9 + i)?.unwrap_or(0) as u64;
        }
    }
    Ok(inv)
}
