//! Applying one poll's observations to the store, inside one transaction:
//! finding transitions (new, reopened, closed, disappeared), exposure state
//! (open, revoked, residual, closed-unverified) and the persisted counters.

use super::{encode_labels, normalise_secret_type, StoreError, TIME_BUCKETS};
use crate::sources::{ExposureKey, ObservedFinding, Resolution, TargetScan, Validity};
use rusqlite::{params, Connection, OptionalExtension, Transaction};
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
}

#[derive(Default, Clone)]
struct Hist {
    buckets: [u64; TIME_BUCKETS.len()],
    sum: f64,
    count: u64,
}

impl Hist {
    fn observe(&mut self, v: f64) {
        if let Some(i) = TIME_BUCKETS.iter().position(|b| v <= *b) {
            self.buckets[i] += 1;
        }
        self.sum += v;
        self.count += 1;
    }
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
    hists: HashMap<(&'static str, String), Hist>,
    /// New findings per secret_type label (hot path: no label encoding).
    detected: HashMap<String, u64>,
    /// Raw scanner rule id → normalised secret type.
    normalised: HashMap<String, String>,
    /// Change of open findings per (secret type, validity).
    open_delta: HashMap<(String, &'static str), i64>,
    stats: ApplyStats,
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
            hists: HashMap::new(),
            detected: HashMap::new(),
            open_delta: HashMap::new(),
            normalised: HashMap::new(),
            stats: ApplyStats::default(),
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

    fn observe(&mut self, name: &'static str, labels: &[(&str, &str)], v: f64) {
        self.hists
            .entry((name, encode_labels(labels)))
            .or_default()
            .observe(v.max(0.0));
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
            "nhi_findings_closed_total",
            &[("source", &source), ("resolution", resolution.as_str())],
            1.0,
        );
        self.observe(
            "nhi_time_to_close_seconds",
            &[("source", &source)],
            (closed_at - e.detected_at) as f64,
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
            self.tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO exposure_links(exposure_id, provider, credential_id) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![exposure_id, link.provider, link.id])?;
        }
        *self.detected.entry(type_label).or_default() += 1;
        if open {
            self.adjust_open(&type_name, f.validity.as_str(), 1);
        }
        self.stats.findings_new += 1;
        if let (Some(r), Some(c)) = (f.closed.map(|c| c.0), closed_at) {
            let source = self.source.clone();
            self.count(
                "nhi_findings_closed_total",
                &[("source", &source), ("resolution", r.as_str())],
                1.0,
            );
            self.observe(
                "nhi_time_to_close_seconds",
                &[("source", &source)],
                (c - detected_at) as f64,
            );
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
        let mut confirmed_by: Option<&str> = None;
        if revoked.is_none() && validity == Validity::Inactive {
            let t = at.max(first_detected);
            revoked = Some(t);
            confirmed_by = Some("validity_check");
            self.count(
                "nhi_exposures_revoked_total",
                &[("confirmed_by", "validity_check")],
                1.0,
            );
            self.observe(
                "nhi_time_to_revoke_seconds",
                &[("confirmed_by", "validity_check")],
                (t - first_detected) as f64,
            );
            self.stats.exposures_revoked += 1;
        }
        let residual = !is_open && revoked.is_none() && validity == Validity::Live;
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

    /// Apply the complete inventory of one scope of this source.
    pub fn inventory(&mut self, _inv: &crate::sources::InventoryScan) -> Result<(), StoreError> {
        Ok(())
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
                "nhi_findings_detected_total",
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
        for ((name, labels), h) in std::mem::take(&mut self.hists) {
            let old: Option<(String, f64, i64)> = self
                .tx
                .query_row(
                    "SELECT buckets, sum, count FROM histograms WHERE name = ?1 AND labels = ?2",
                    params![name, labels],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?;
            let mut merged = h;
            if let Some((b, sum, count)) = old {
                let old_b: Vec<u64> = serde_json::from_str(&b)
                    .map_err(|e| StoreError::Data(format!("histogram {name}: {e}")))?;
                for (m, o) in merged.buckets.iter_mut().zip(old_b) {
                    *m += o;
                }
                merged.sum += sum;
                merged.count += count as u64;
            }
            let buckets = serde_json::to_string(&merged.buckets.to_vec())
                .map_err(|e| StoreError::Data(e.to_string()))?;
            self.tx.execute(
                "INSERT INTO histograms(name, labels, buckets, sum, count) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(name, labels) DO UPDATE SET buckets = excluded.buckets, sum = excluded.sum, count = excluded.count",
                params![name, labels, buckets, merged.sum, merged.count as i64],
            )?;
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
