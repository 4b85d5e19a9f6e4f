//! Applying one poll's observations to the store, inside one transaction:
//! finding transitions (new, reopened, closed, disappeared), exposure state
//! (open, revoked, residual, closed-unverified) and the persisted counters.

use super::events::{
    EXPOSURE_REVOKED, FINDING_CLOSED, FINDING_DETECTED, TIME_TO_CLOSE, TIME_TO_REVOKE,
};
use super::{encode_labels, normalise_secret_type, StoreError};
use crate::model::{
    ExposureKey, InventoryScan, ObservedCredential, ObservedFinding, Resolution, TargetScan,
    Validity,
};
use rusqlite::{params, Connection, Transaction};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};

/// What one poll changed, for logs and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ApplyStats {
    pub targets: u64,
    pub findings_new: u64,
    pub findings_closed: u64,
    pub findings_reopened: u64,
    pub exposures_new: u64,
    pub exposures_revoked: u64,
    pub inventories: u64,
    pub identities_changed: u64,
    pub credentials_changed: u64,
}

/// Deleted credentials no leak links to are forgotten after this long.
const DELETED_CREDENTIAL_RETENTION: i64 = 400 * 86_400;

/// Compact digest of an observed row: unchanged rows are not rewritten.
fn digest_of(v: &impl std::fmt::Debug) -> Vec<u8> {
    Sha256::digest(format!("{v:?}").as_bytes())[..16].to_vec()
}

/// The `exposures.key` a secret HMAC maps to (see `exposure_key`).
fn secret_key(h: &[u8; 32]) -> Vec<u8> {
    let mut k = Vec::with_capacity(17);
    k.push(b's');
    k.extend_from_slice(&h[..16]);
    k
}

struct KnownCred {
    id: i64,
    digest: Vec<u8>,
    state: String,
}

struct Existing {
    id: i64,
    exposure_id: i64,
    open: bool,
    validity: String,
    detected_at: i64,
    secret_type: String,
}

/// 16 bytes of SHA-256 of a scanner's finding id: the compact unique key.
fn scanner_key(id: &str) -> [u8; 16] {
    let d = Sha256::digest(id.as_bytes());
    let mut k = [0u8; 16];
    k.copy_from_slice(&d[..16]);
    k
}

/// Applies one poll. Dropping it without [`PollApplier::commit`] rolls
/// everything back: a failed poll changes nothing.
pub struct PollApplier<'c> {
    tx: Transaction<'c>,
    source: String,
    now: i64,
    max_types: usize,
    types: HashMap<String, i64>,
    counters: HashMap<(&'static str, String), f64>,
    /// Measured durations: (event, labels, whole seconds) → occurrences.
    durations: HashMap<(&'static str, String, i64), u64>,
    /// New findings per secret_type label (hot path: no label encoding).
    detected: HashMap<String, u64>,
    /// Raw scanner rule id → normalised secret type.
    normalised: HashMap<String, String>,
    /// Change of open findings per (secret type, validity).
    open_delta: HashMap<(String, &'static str), i64>,
    stats: ApplyStats,
    /// Whether any credential has value keys (vault `match_values`): only
    /// then are new exposures looked up for a value link.
    has_values: bool,
}

fn validity_of_rank(r: i64) -> Validity {
    match r {
        2 => Validity::Live,
        1 => Validity::Inactive,
        _ => Validity::Unknown,
    }
}

impl<'c> PollApplier<'c> {
    pub fn begin(
        conn: &'c mut Connection,
        source: &str,
        now: i64,
        max_secret_types: usize,
    ) -> Result<Self, StoreError> {
        let tx = conn.transaction()?;
        let types = {
            let mut stmt = tx.prepare("SELECT name, rank FROM secret_types")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<Result<HashMap<String, i64>, _>>()?
        };
        Ok(Self {
            tx,
            source: source.to_string(),
            now,
            max_types: max_secret_types,
            types,
            counters: HashMap::new(),
            durations: HashMap::new(),
            detected: HashMap::new(),
            open_delta: HashMap::new(),
            normalised: HashMap::new(),
            stats: ApplyStats::default(),
            has_values: false,
        })
        .and_then(|mut ap| {
            ap.has_values =
                ap.tx
                    .query_row("SELECT EXISTS(SELECT 1 FROM credential_values)", [], |r| {
                        r.get::<_, i64>(0)
                    })?
                    != 0;
            Ok(ap)
        })
    }

    /// The label value for a raw scanner rule id: its normalised name while
    /// under `policy.max_secret_types` distinct types, else `other`.
    fn type_label(&mut self, name: &str) -> Result<String, StoreError> {
        let rank = match self.types.get(name) {
            Some(r) => *r,
            None => {
                let r = self.types.len() as i64 + 1;
                self.tx.execute(
                    "INSERT INTO secret_types(name, rank) VALUES (?1, ?2)",
                    params![name, r],
                )?;
                self.types.insert(name.to_string(), r);
                r
            }
        };
        Ok(if rank as usize <= self.max_types {
            name.to_string()
        } else {
            "other".to_string()
        })
    }

    fn count(&mut self, name: &'static str, labels: &[(&str, &str)], by: f64) {
        *self
            .counters
            .entry((name, encode_labels(labels)))
            .or_default() += by;
    }

    /// Record one occurrence of a measured duration (clamped at 0). The
    /// store keeps the exact seconds; the KPIs bucket them.
    fn observe(&mut self, event: &'static str, labels: &[(&str, &str)], seconds: i64) {
        *self
            .durations
            .entry((event, encode_labels(labels), seconds.max(0)))
            .or_default() += 1;
    }

    fn adjust_open(&mut self, secret_type: &str, validity: &str, d: i64) {
        let v = Validity::parse(validity)
            .unwrap_or(Validity::Unknown)
            .as_str();
        *self
            .open_delta
            .entry((secret_type.to_string(), v))
            .or_default() += d;
    }

    /// Tag byte + 128 bits: collisions are out of reach (2^64 secrets for a
    /// 50% chance) and the random-order unique index stays small.
    fn exposure_key(&self, target: &str, f: &ObservedFinding) -> Vec<u8> {
        match &f.exposure {
            ExposureKey::Secret(h) => {
                let mut k = Vec::with_capacity(17);
                k.push(b's');
                k.extend_from_slice(&h[..16]);
                k
            }
            ExposureKey::ScannerSecret(h) => {
                let mut k = Vec::with_capacity(17);
                k.push(b'h');
                k.extend_from_slice(&h[..16]);
                k
            }
            ExposureKey::ScannerId => {
                let mut d = Sha256::new();
                d.update(self.source.as_bytes());
                d.update([0]);
                d.update(target.as_bytes());
                d.update([0]);
                d.update(f.scanner_id.as_bytes());
                let mut k = Vec::with_capacity(17);
                k.push(b'i');
                k.extend_from_slice(&d.finalize()[..16]);
                k
            }
        }
    }

    /// Apply the complete latest scan of one target.
    pub fn target(&mut self, scan: &TargetScan) -> Result<(), StoreError> {
        self.stats.targets += 1;
        let target_id: i64 = self.tx.query_row(
            "INSERT INTO targets(source, target, fingerprint, scanned_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(source, target) DO UPDATE SET fingerprint = excluded.fingerprint, scanned_at = excluded.scanned_at
             RETURNING id",
            params![self.source, scan.target, scan.fingerprint, scan.scanned_at],
            |r| r.get(0),
        )?;
        let mut existing: HashMap<String, Existing> = HashMap::new();
        {
            let mut stmt = self.tx.prepare_cached(
                "SELECT id, scanner_id, exposure_id, open, validity, detected_at, secret_type
                 FROM findings WHERE target_id = ?1",
            )?;
            let mut rows = stmt.query([target_id])?;
            while let Some(r) = rows.next()? {
                existing.insert(
                    r.get(1)?,
                    Existing {
                        id: r.get(0)?,
                        exposure_id: r.get(2)?,
                        open: r.get::<_, i64>(3)? != 0,
                        validity: r.get(4)?,
                        detected_at: r.get(5)?,
                        secret_type: r.get(6)?,
                    },
                );
            }
        }
        let at = scan.scanned_at;
        let mut seen: HashSet<&str> = HashSet::with_capacity(scan.findings.len());
        let mut dirty: HashSet<i64> = HashSet::new();
        for f in &scan.findings {
            if !seen.insert(f.scanner_id.as_str()) {
                continue; // a scanner repeating the same finding id
            }
            match existing.get(&f.scanner_id) {
                Some(e) => self.update_existing(e, f, at, &mut dirty)?,
                None => self.insert_new(target_id, &scan.target, f, at, &mut dirty)?,
            }
        }
        for (sid, e) in &existing {
            if e.open && !seen.contains(sid.as_str()) {
                self.close(e, Resolution::Disappeared, at)?;
                dirty.insert(e.exposure_id);
            }
        }
        for eid in dirty {
            self.recompute_exposure(eid, at)?;
        }
        Ok(())
    }

    fn close(&mut self, e: &Existing, resolution: Resolution, at: i64) -> Result<(), StoreError> {
        let closed_at = at.max(e.detected_at);
        self.tx
            .prepare_cached(
                "UPDATE findings SET open = 0, resolution = ?2, closed_at = ?3 WHERE id = ?1",
            )?
            .execute(params![e.id, resolution.as_str(), closed_at])?;
        self.tx
            .prepare_cached("UPDATE exposures SET open_findings = open_findings - 1 WHERE id = ?1")?
            .execute([e.exposure_id])?;
        self.adjust_open(&e.secret_type, &e.validity, -1);
        let source = self.source.clone();
        self.count(
            FINDING_CLOSED,
            &[("source", &source), ("resolution", resolution.as_str())],
            1.0,
        );
        self.observe(
            TIME_TO_CLOSE,
            &[("source", &source)],
            closed_at - e.detected_at,
        );
        self.stats.findings_closed += 1;
        Ok(())
    }

    fn update_existing(
        &mut self,
        e: &Existing,
        f: &ObservedFinding,
        at: i64,
        dirty: &mut HashSet<i64>,
    ) -> Result<(), StoreError> {
        let validity = f.validity.as_str();
        if validity != e.validity {
            self.tx
                .prepare_cached("UPDATE findings SET validity = ?2 WHERE id = ?1")?
                .execute(params![e.id, validity])?;
            dirty.insert(e.exposure_id);
            if e.open {
                self.adjust_open(&e.secret_type, &e.validity, -1);
                self.adjust_open(&e.secret_type, validity, 1);
            }
        }
        // From here on the finding carries its new validity.
        let e = &Existing {
            validity: validity.to_string(),
            secret_type: e.secret_type.clone(),
            ..*e
        };
        match (&f.closed, e.open) {
            (None, true) => {}
            (None, false) => {
                // Back in the newer scan (or reopened upstream).
                self.tx
                    .prepare_cached(
                        "UPDATE findings SET open = 1, resolution = NULL, closed_at = NULL WHERE id = ?1",
                    )?
                    .execute([e.id])?;
                self.tx
                    .prepare_cached(
                        "UPDATE exposures SET open_findings = open_findings + 1 WHERE id = ?1",
                    )?
                    .execute([e.exposure_id])?;
                self.adjust_open(&e.secret_type, &e.validity, 1);
                self.stats.findings_reopened += 1;
                dirty.insert(e.exposure_id);
            }
            (Some((resolution, closed_at)), true) => {
                self.close(e, *resolution, closed_at.unwrap_or(at))?;
                dirty.insert(e.exposure_id);
            }
            (Some(_), false) => {}
        }
        Ok(())
    }

    fn insert_new(
        &mut self,
        target_id: i64,
        target: &str,
        f: &ObservedFinding,
        at: i64,
        dirty: &mut HashSet<i64>,
    ) -> Result<(), StoreError> {
        let type_name = match self.normalised.get(&f.secret_type) {
            Some(n) => n.clone(),
            None => {
                let n = normalise_secret_type(&f.secret_type);
                self.normalised.insert(f.secret_type.clone(), n.clone());
                n
            }
        };
        let type_label = self.type_label(&type_name)?;
        let detected_at = f.detected_at.unwrap_or(at).min(self.now.max(at));
        let open = f.closed.is_none();
        let key = self.exposure_key(target, f);
        // Most keys are new: one statement inserts, and only a conflict
        // costs a second lookup.
        // (No RETURNING: SQLite materialises it in a temporary table per row.)
        let changed = self
            .tx
            .prepare_cached(
                "INSERT INTO exposures(key, secret_type, first_detected_at, open_findings, validity)
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(key) DO NOTHING",
            )?
            .execute(params![key, type_name, detected_at, open as i64, f.validity.as_str()])?;
        let inserted = (changed == 1).then(|| self.tx.last_insert_rowid());
        let exposure_id = match inserted {
            Some(id) => {
                self.stats.exposures_new += 1;
                if !open || f.validity != Validity::Unknown {
                    dirty.insert(id);
                }
                id
            }
            None => {
                let (id, open_before, validity_before): (i64, i64, String) = self
                    .tx
                    .prepare_cached(
                        "SELECT id, open_findings, validity FROM exposures WHERE key = ?1",
                    )?
                    .query_row([&key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
                self.tx
                    .prepare_cached(
                        "UPDATE exposures SET open_findings = open_findings + ?2,
                            first_detected_at = MIN(first_detected_at, ?3) WHERE id = ?1",
                    )?
                    .execute(params![id, open as i64, detected_at])?;
                // Another open finding of an open exposure, adding no validity
                // information, cannot change the exposure's state.
                let unchanged = open
                    && open_before > 0
                    && (f.validity == Validity::Unknown || f.validity.as_str() == validity_before);
                if !unchanged {
                    dirty.insert(id);
                }
                id
            }
        };
        let (resolution, closed_at) = match f.closed {
            None => (None, None),
            Some((r, t)) => (Some(r.as_str()), Some(t.unwrap_or(at).max(detected_at))),
        };
        let loc = &f.location;
        self.tx
            .prepare_cached(
                "INSERT INTO findings(source, target_id, scanner_key, scanner_id, exposure_id, secret_type, repository,
                    file, line, commit_sha, detected_at, committed_at, open, resolution, closed_at, validity)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
            )?
            .execute(params![
                self.source,
                target_id,
                scanner_key(&f.scanner_id),
                f.scanner_id,
                exposure_id,
                type_name,
                loc.repository,
                loc.file,
                loc.line,
                loc.commit,
                detected_at,
                f.committed_at,
                open as i64,
                resolution,
                closed_at,
                f.validity.as_str(),
            ])?;
        for link in &f.links {
            let n = self
                .tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO exposure_links(exposure_id, provider, credential_id) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![exposure_id, link.provider, link.id])?;
            if n > 0 {
                dirty.insert(exposure_id);
            }
        }
        if self.has_values && matches!(f.exposure, ExposureKey::Secret(_)) {
            // A vault value equal to the leaked secret (match_values).
            let n = self
                .tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO exposure_links(exposure_id, provider, credential_id)
                     SELECT ?1, c.provider, c.ext_id FROM credential_values v
                       JOIN credentials c ON c.id = v.credential_id WHERE v.key = ?2",
                )?
                .execute(params![exposure_id, key])?;
            if n > 0 {
                dirty.insert(exposure_id);
            }
        }
        *self.detected.entry(type_label).or_default() += 1;
        if open {
            self.adjust_open(&type_name, f.validity.as_str(), 1);
        }
        self.stats.findings_new += 1;
        if let (Some(r), Some(c)) = (f.closed.map(|c| c.0), closed_at) {
            let source = self.source.clone();
            self.count(
                FINDING_CLOSED,
                &[("source", &source), ("resolution", r.as_str())],
                1.0,
            );
            self.observe(TIME_TO_CLOSE, &[("source", &source)], c - detected_at);
            self.stats.findings_closed += 1;
        }
        Ok(())
    }

    /// Derive an exposure's state from its findings: open while any is open;
    /// revoked (confirmed) once a validity check reports it inactive;
    /// residual when all are closed but the secret is still live.
    fn recompute_exposure(&mut self, id: i64, at: i64) -> Result<(), StoreError> {
        let (open, open_rank, all_rank, last_closed, first_detected, revoked_at): (
            i64,
            Option<i64>,
            Option<i64>,
            Option<i64>,
            i64,
            Option<i64>,
        ) = self
            .tx
            .prepare_cached(
                "SELECT
                    (SELECT COUNT(*) FROM findings WHERE exposure_id = ?1 AND open = 1),
                    (SELECT MAX(CASE validity WHEN 'live' THEN 2 WHEN 'inactive' THEN 1 ELSE 0 END)
                       FROM findings WHERE exposure_id = ?1 AND open = 1),
                    (SELECT MAX(CASE validity WHEN 'live' THEN 2 WHEN 'inactive' THEN 1 ELSE 0 END)
                       FROM findings WHERE exposure_id = ?1),
                    (SELECT MAX(closed_at) FROM findings WHERE exposure_id = ?1),
                    e.first_detected_at, e.revoked_at
                 FROM exposures e WHERE e.id = ?1",
            )?
            .query_row([id], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })?;
        let is_open = open > 0;
        let validity = validity_of_rank(if is_open { open_rank } else { all_rank }.unwrap_or(0));
        let closed_at = if is_open { None } else { last_closed };
        let mut revoked = revoked_at;
        let mut confirmed_by: Option<String> = None;
        if revoked.is_none() && validity == Validity::Inactive {
            let t = at.max(first_detected);
            revoked = Some(t);
            confirmed_by = Some("validity_check".into());
            self.count(EXPOSURE_REVOKED, &[("confirmed_by", "validity_check")], 1.0);
            self.observe(
                TIME_TO_REVOKE,
                &[("confirmed_by", "validity_check")],
                t - first_detected,
            );
            self.stats.exposures_revoked += 1;
        }
        // Linked credentials (AWS access key ids in the leak, vault values):
        // revoked once every linked credential the inventories know is
        // unusable; still working while any of them is usable.
        let mut credential_live = false;
        if revoked.is_none() {
            let linked = self.linked_credential_states(id, first_detected, at)?;
            if !linked.is_empty() {
                if linked.iter().any(|l| l.is_none()) {
                    credential_live = true;
                } else if let Some((t, provider)) = linked.into_iter().flatten().max() {
                    let t = t.max(first_detected);
                    revoked = Some(t);
                    self.count(EXPOSURE_REVOKED, &[("confirmed_by", &provider)], 1.0);
                    self.observe(
                        TIME_TO_REVOKE,
                        &[("confirmed_by", &provider)],
                        t - first_detected,
                    );
                    confirmed_by = Some(provider);
                    self.stats.exposures_revoked += 1;
                }
            }
        }
        let residual =
            !is_open && revoked.is_none() && (validity == Validity::Live || credential_live);
        self.tx
            .prepare_cached(
                "UPDATE exposures SET open_findings = ?2, validity = ?3, closed_at = ?4, revoked_at = ?5,
                    confirmed_by = COALESCE(?6, confirmed_by), residual = ?7 WHERE id = ?1",
            )?
            .execute(params![
                id,
                open,
                validity.as_str(),
                closed_at,
                revoked,
                confirmed_by,
                residual as i64
            ])?;
        Ok(())
    }

    /// For each inventoried credential linked to the exposure: `None` while
    /// usable, else when it became unusable and the `confirmed_by` value.
    #[allow(clippy::type_complexity)]
    fn linked_credential_states(
        &mut self,
        exposure_id: i64,
        first_detected: i64,
        at: i64,
    ) -> Result<Vec<Option<(i64, String)>>, StoreError> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT c.provider, c.kind, c.state, c.state_changed_at, c.last_rotated_at, c.expires_at,
                    EXISTS(SELECT 1 FROM credential_values v WHERE v.credential_id = c.id AND v.key = e.key),
                    EXISTS(SELECT 1 FROM credential_values v WHERE v.credential_id = c.id)
             FROM exposure_links l
             JOIN exposures e ON e.id = l.exposure_id
             JOIN credentials c ON c.provider = l.provider AND c.ext_id = l.credential_id
             WHERE l.exposure_id = ?1",
        )?;
        let mut rows = stmt.query([exposure_id])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            // The provider that shows the credential unusable confirms the
            // revocation (`confirmed_by`); providers are a bounded set.
            let confirmed_by: String = r.get(0)?;
            let kind: String = r.get(1)?;
            let state: String = r.get(2)?;
            let changed_at: i64 = r.get(3)?;
            let rotated_at: Option<i64> = r.get(4)?;
            let expires_at: Option<i64> = r.get(5)?;
            let value_current: bool = r.get::<_, i64>(6)? != 0;
            let has_values: bool = r.get::<_, i64>(7)? != 0;
            let unusable_at = if state != "active" {
                Some(changed_at)
            } else if let Some(x) = expires_at.filter(|x| *x <= at) {
                Some(x)
            } else if kind == "kv" {
                // A new version written after the leak, no longer holding the
                // leaked value (when values are matched), is a rotation.
                rotated_at.filter(|t| *t > first_detected && !(has_values && value_current))
            } else {
                None
            };
            out.push(unusable_at.map(|t| (t, confirmed_by)));
        }
        Ok(out)
    }

    fn team_rank(&mut self, team: &str) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "INSERT OR IGNORE INTO teams(name, rank) SELECT ?1, COALESCE(MAX(rank), 0) + 1 FROM teams",
            )?
            .execute([team])?;
        Ok(())
    }

    /// Apply the complete inventory of one scope of this source: upsert
    /// what changed, delete identities and mark credentials `deleted` that
    /// are absent, link leaks to credential values, and re-derive the
    /// exposures whose linked credentials changed.
    pub fn inventory(&mut self, inv: &InventoryScan) -> Result<(), StoreError> {
        self.stats.inventories += 1;
        let at = inv.observed_at;
        let source = self.source.clone();
        // In order of appearance: the first teams seen keep their label.
        let mut teams: Vec<&str> = Vec::new();
        let mut team_seen: HashSet<&str> = HashSet::new();

        let existing: HashMap<String, (i64, Vec<u8>)> = {
            let mut stmt = self.tx.prepare_cached(
                "SELECT ext_id, id, digest FROM identities WHERE source = ?1 AND scope = ?2",
            )?;
            let rows = stmt.query_map(params![source, inv.scope], |r| {
                Ok((r.get(0)?, (r.get(1)?, r.get(2)?)))
            })?;
            rows.collect::<Result<_, _>>()?
        };
        let mut seen: HashSet<&str> = HashSet::with_capacity(inv.identities.len());
        for i in &inv.identities {
            if !seen.insert(i.id.as_str()) {
                continue;
            }
            if let Some(t) = i.team.as_deref().filter(|t| team_seen.insert(t)) {
                teams.push(t);
            }
            let digest = digest_of(i);
            if existing.get(&i.id).is_some_and(|(_, d)| *d == digest) {
                continue;
            }
            self.stats.identities_changed += 1;
            self.tx
                .prepare_cached(
                    "INSERT INTO identities(source, scope, ext_id, provider, account, kind, name, created_at,
                        last_used_at, usage_tracked, team, privileged, standing, human, digest)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)
                     ON CONFLICT(source, ext_id) DO UPDATE SET scope = excluded.scope,
                        provider = excluded.provider, account = excluded.account, kind = excluded.kind,
                        name = excluded.name, created_at = excluded.created_at,
                        last_used_at = MAX(COALESCE(excluded.last_used_at, last_used_at),
                                           COALESCE(last_used_at, excluded.last_used_at)),
                        usage_tracked = excluded.usage_tracked, team = excluded.team,
                        privileged = excluded.privileged, standing = excluded.standing,
                        human = excluded.human, digest = excluded.digest",
                )?
                .execute(params![
                    source,
                    inv.scope,
                    i.id,
                    i.provider,
                    i.account,
                    i.kind,
                    i.name,
                    i.created_at,
                    i.last_used_at,
                    i.usage_tracked as i64,
                    i.team,
                    i.privileged,
                    i.standing as i64,
                    i.human as i64,
                    digest,
                ])?;
        }
        for (ext, (id, _)) in &existing {
            if !seen.contains(ext.as_str()) {
                self.stats.identities_changed += 1;
                self.tx
                    .prepare_cached("DELETE FROM identities WHERE id = ?1")?
                    .execute([id])?;
            }
        }
        let known: HashMap<String, KnownCred> = {
            let mut stmt = self.tx.prepare_cached(
                "SELECT ext_id, id, digest, state FROM credentials WHERE source = ?1 AND scope = ?2",
            )?;
            let rows = stmt.query_map(params![source, inv.scope], |r| {
                Ok((
                    r.get(0)?,
                    KnownCred {
                        id: r.get(1)?,
                        digest: r.get(2)?,
                        state: r.get(3)?,
                    },
                ))
            })?;
            rows.collect::<Result<_, _>>()?
        };
        let mut changed: Vec<(&str, &str)> = Vec::new();
        let mut seen: HashSet<&str> = HashSet::with_capacity(inv.credentials.len());
        for c in &inv.credentials {
            if !seen.insert(c.id.as_str()) {
                continue;
            }
            if let Some(t) = c.team.as_deref().filter(|t| team_seen.insert(t)) {
                teams.push(t);
            }
            let digest = digest_of(c);
            let state = c.state.as_str();
            let old = known.get(&c.id);
            if old.is_some_and(|k| k.digest == digest && k.state == state) {
                continue;
            }
            self.stats.credentials_changed += 1;
            let state_changed = old.is_none_or(|k| k.state != state);
            let cred_id = self.upsert_credential(&inv.scope, c, &digest, at, state_changed)?;
            // New, or changed (state, rotation, values, links): the exposures
            // linked to it are re-derived below.
            changed.push((c.provider, c.id.as_str()));
            if old.is_some() {
                self.tx
                    .prepare_cached("DELETE FROM credential_values WHERE credential_id = ?1")?
                    .execute([cred_id])?;
            }
            for h in &c.value_hashes {
                let key = secret_key(h);
                self.tx
                    .prepare_cached(
                        "INSERT OR IGNORE INTO credential_values(key, credential_id) VALUES (?1, ?2)",
                    )?
                    .execute(params![key, cred_id])?;
                self.has_values = true;
                // Link a leak of this value (exposures hold the same key).
                self.tx
                    .prepare_cached(
                        "INSERT OR IGNORE INTO exposure_links(exposure_id, provider, credential_id)
                         SELECT id, ?2, ?3 FROM exposures WHERE key = ?1",
                    )?
                    .execute(params![key, c.provider, c.id])?;
            }
        }
        let mut gone: Vec<(String, String)> = Vec::new();
        for (ext, k) in &known {
            if k.state != "deleted" && !seen.contains(ext.as_str()) {
                self.stats.credentials_changed += 1;
                let provider: String = self
                    .tx
                    .prepare_cached(
                        "UPDATE credentials SET state = 'deleted', state_changed_at = ?2 WHERE id = ?1 RETURNING provider",
                    )?
                    .query_row(params![k.id, at], |r| r.get(0))?;
                self.tx
                    .prepare_cached("DELETE FROM credential_values WHERE credential_id = ?1")?
                    .execute([k.id])?;
                gone.push((provider, ext.clone()));
            }
        }
        for t in teams {
            self.team_rank(t)?;
        }
        let mut dirty: HashSet<i64> = HashSet::new();
        {
            let mut stmt = self.tx.prepare_cached(
                "SELECT exposure_id FROM exposure_links WHERE provider = ?1 AND credential_id = ?2",
            )?;
            for (p, c) in changed
                .iter()
                .copied()
                .chain(gone.iter().map(|(p, c)| (p.as_str(), c.as_str())))
            {
                let rows = stmt.query_map(params![p, c], |r| r.get::<_, i64>(0))?;
                for r in rows {
                    dirty.insert(r?);
                }
            }
        }
        for eid in dirty {
            self.recompute_exposure(eid, at)?;
        }
        self.tx
            .prepare_cached(
                "DELETE FROM credentials WHERE source = ?1 AND scope = ?2 AND state = 'deleted'
                   AND state_changed_at < ?3
                   AND NOT EXISTS (SELECT 1 FROM exposure_links l
                                   WHERE l.provider = credentials.provider AND l.credential_id = credentials.ext_id)",
            )?
            .execute(params![source, inv.scope, at - DELETED_CREDENTIAL_RETENTION])?;
        Ok(())
    }

    fn upsert_credential(
        &mut self,
        scope: &str,
        c: &ObservedCredential,
        digest: &[u8],
        at: i64,
        state_changed: bool,
    ) -> Result<i64, StoreError> {
        let id = self
            .tx
            .prepare_cached(
                "INSERT INTO credentials(source, scope, ext_id, provider, kind, identity, team, created_at,
                    last_rotated_at, expires_at, last_used_at, state, state_changed_at, rotation_enabled, digest)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)
                 ON CONFLICT(source, ext_id) DO UPDATE SET scope = excluded.scope,
                    provider = excluded.provider, kind = excluded.kind, identity = excluded.identity,
                    team = excluded.team, created_at = excluded.created_at,
                    last_rotated_at = excluded.last_rotated_at, expires_at = excluded.expires_at,
                    last_used_at = excluded.last_used_at, state = excluded.state,
                    state_changed_at = CASE WHEN ?16 THEN excluded.state_changed_at ELSE state_changed_at END,
                    rotation_enabled = excluded.rotation_enabled, digest = excluded.digest
                 RETURNING id",
            )?
            .query_row(
                params![
                    self.source,
                    scope,
                    c.id,
                    c.provider,
                    c.kind,
                    c.identity,
                    c.team,
                    c.created_at,
                    c.last_rotated_at,
                    c.expires_at,
                    c.last_used_at,
                    c.state.as_str(),
                    at,
                    c.rotation_enabled as i64,
                    digest,
                    state_changed,
                ],
                |r| r.get(0),
            )?;
        Ok(id)
    }

    pub fn stats(&self) -> &ApplyStats {
        &self.stats
    }

    /// Persist counters and the poll's success, then commit.
    pub fn commit(mut self) -> Result<ApplyStats, StoreError> {
        let source = self.source.clone();
        for ((secret_type, validity), d) in std::mem::take(&mut self.open_delta) {
            if d != 0 {
                self.tx
                    .prepare_cached(
                        "INSERT INTO finding_counts(source, secret_type, validity, open) VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT(source, secret_type, validity) DO UPDATE SET open = open + excluded.open",
                    )?
                    .execute(params![source, secret_type, validity, d])?;
            }
        }
        self.tx.execute(
            "DELETE FROM finding_counts WHERE source = ?1 AND open = 0",
            [&source],
        )?;
        for (label, n) in std::mem::take(&mut self.detected) {
            self.count(
                FINDING_DETECTED,
                &[("source", &source), ("secret_type", &label)],
                n as f64,
            );
        }
        for ((name, labels), by) in std::mem::take(&mut self.counters) {
            self.tx
                .prepare_cached(
                    "INSERT INTO counters(name, labels, value) VALUES (?1, ?2, ?3)
                     ON CONFLICT(name, labels) DO UPDATE SET value = value + excluded.value",
                )?
                .execute(params![name, labels, by])?;
        }
        for ((event, labels, seconds), n) in std::mem::take(&mut self.durations) {
            self.tx
                .prepare_cached(
                    "INSERT INTO durations(event, labels, seconds, n) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT(event, labels, seconds) DO UPDATE SET n = n + excluded.n",
                )?
                .execute(params![event, labels, seconds, n as i64])?;
        }
        self.tx.execute(
            "INSERT INTO polls(source, first_success, last_success) VALUES (?1, ?2, ?2)
             ON CONFLICT(source) DO UPDATE SET last_success = excluded.last_success",
            params![self.source, self.now],
        )?;
        self.tx.execute(
            "INSERT OR IGNORE INTO meta(key, value) VALUES ('first_success', ?1)",
            [self.now.to_string()],
        )?;
        self.tx.commit()?;
        Ok(self.stats)
    }
}
