//! Applying one poll's observations to the store, inside one transaction:
//! finding transitions (new, reopened, closed, disappeared: [`findings`]),
//! exposure state (open, revoked, residual, closed-unverified:
//! [`exposures`]), complete inventories ([`inventory`]) and the persisted
//! events (here, at commit).

mod exposures;
mod findings;
mod inventory;

use super::db::{
    params, values_list, Conn as Connection, OptionalExt, Param, Tx as Transaction, ROWS_PER_INSERT,
};
use super::events::{
    EXPOSURE_REOPENED, EXPOSURE_REVOKED, FINDING_CLOSED, FINDING_DETECTED, TIME_TO_CLOSE,
    TIME_TO_REVOKE,
};
use super::{encode_labels, normalise_secret_type, StoreError};
use crate::model::{
    ExposureKey, InventoryScan, ObservedCredential, ObservedFinding, Resolution, TargetScan,
    Validity,
};
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
    pub exposures_reopened: u64,
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
    /// When the scanner made its validity statement (live/inactive).
    validity_at: Option<i64>,
    detected_at: i64,
    closed_at: Option<i64>,
    secret_type: String,
}

/// 16 bytes of SHA-256 of a scanner's finding id: the compact unique key.
fn scanner_key(id: &str) -> [u8; 16] {
    let d = Sha256::digest(id.as_bytes());
    let mut k = [0u8; 16];
    k.copy_from_slice(&d[..16]);
    k
}

/// A stored validity (`unknown` for anything else).
fn stored_validity(v: &str) -> Validity {
    Validity::parse(v).unwrap_or(Validity::Unknown)
}

/// The `time_counts` kinds (schema v6): what the KPI windows count per time.
pub(super) mod kind {
    pub const FINDING_DETECTED: u8 = 1;
    pub const FINDING_CLOSED: u8 = 2;
    pub const EXPOSURE_DETECTED: u8 = 3;
    pub const EXPOSURE_REVOKED: u8 = 4;
    /// The earlier of closed and revoked.
    pub const EXPOSURE_GONE: u8 = 5;
    /// Closed: the later of first detected and closed.
    pub const EXPOSURE_CLOSED: u8 = 6;
    /// Open, by first detected: 7 + the validity's index (live, inactive,
    /// unknown), so the oldest open one is the earliest time counted.
    pub const OPEN_BY_VALIDITY: u8 = 7;
}

/// What of an exposure row the KPI counts depend on.
#[derive(Debug, Clone, PartialEq)]
struct ExposureTimes {
    open: bool,
    validity: Validity,
    first_detected: i64,
    closed: Option<i64>,
    revoked: Option<i64>,
}

impl ExposureTimes {
    /// (kind, time) of every count the row adds to.
    fn kinds(&self) -> impl Iterator<Item = (u8, i64)> {
        let gone = match (self.closed, self.revoked) {
            (Some(c), Some(r)) => Some(c.min(r)),
            (c, r) => c.or(r),
        };
        let open = self.open.then(|| {
            let i = Validity::ALL
                .iter()
                .position(|x| *x == self.validity)
                .unwrap_or(0) as u8;
            (kind::OPEN_BY_VALIDITY + i, self.first_detected)
        });
        [
            open,
            Some((kind::EXPOSURE_DETECTED, self.first_detected)),
            self.revoked.map(|t| (kind::EXPOSURE_REVOKED, t)),
            gone.map(|t| (kind::EXPOSURE_GONE, t)),
            self.closed
                .map(|c| (kind::EXPOSURE_CLOSED, c.max(self.first_detected))),
        ]
        .into_iter()
        .flatten()
    }
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
    /// The earliest detection time a source gave for a new finding (not
    /// the scan time): the reconstructed start of the store's history.
    dated_from: Option<i64>,
    /// Change of `time_counts` per (kind, time), written at commit.
    times: HashMap<(u8, i64), i64>,
    /// New findings of the target being applied, not yet written.
    new_findings: Vec<findings::NewFinding>,
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
            dated_from: None,
            times: HashMap::new(),
            new_findings: Vec::new(),
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
        let v = stored_validity(validity).as_str();
        *self
            .open_delta
            .entry((secret_type.to_string(), v))
            .or_default() += d;
    }

    /// Count one more (`d = 1`) or one less (`d = -1`) row of `kind` at `t`.
    fn tick(&mut self, kind: u8, t: i64, d: i64) {
        *self.times.entry((kind, t)).or_default() += d;
    }

    /// Move an exposure's contribution to the KPI counts from its `old`
    /// row (`None`: a new exposure) to its `new` one.
    fn account_exposure(&mut self, old: Option<&ExposureTimes>, new: &ExposureTimes) {
        if old == Some(new) {
            return;
        }
        if let Some(o) = old {
            for (k, t) in o.kinds() {
                self.tick(k, t, -1);
            }
        }
        for (k, t) in new.kinds() {
            self.tick(k, t, 1);
        }
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
                         ON CONFLICT(source, secret_type, validity) DO UPDATE SET open = finding_counts.open + excluded.open",
                    )?
                    .execute(params![source, secret_type, validity, d])?;
            }
        }
        self.tx.execute(
            "DELETE FROM finding_counts WHERE source = ?1 AND open = 0",
            [&source],
        )?;
        for ((kind, t), d) in std::mem::take(&mut self.times) {
            if d != 0 {
                self.tx
                    .prepare_cached(
                        "INSERT INTO time_counts(kind, t, n) VALUES (?1, ?2, ?3)
                         ON CONFLICT(kind, t) DO UPDATE SET n = time_counts.n + excluded.n",
                    )?
                    .execute(params![i64::from(kind), t, d])?;
                if d < 0 {
                    // No row of count 0: the oldest time is the first row.
                    self.tx
                        .prepare_cached(
                            "DELETE FROM time_counts WHERE kind = ?1 AND t = ?2 AND n = 0",
                        )?
                        .execute(params![i64::from(kind), t])?;
                }
            }
        }
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
                     ON CONFLICT(name, labels) DO UPDATE SET value = counters.value + excluded.value",
                )?
                .execute(params![name, labels, by])?;
        }
        for ((event, labels, seconds), n) in std::mem::take(&mut self.durations) {
            self.tx
                .prepare_cached(
                    "INSERT INTO durations(event, labels, seconds, n) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT(event, labels, seconds) DO UPDATE SET n = durations.n + excluded.n",
                )?
                .execute(params![event, labels, seconds, n as i64])?;
        }
        self.tx.execute(
            "INSERT INTO polls(source, first_success, last_success) VALUES (?1, ?2, ?2)
             ON CONFLICT(source) DO UPDATE SET last_success = excluded.last_success",
            params![self.source, self.now],
        )?;
        // The earliest poll applied, live or backfilled (a backfilled past
        // scan may come after another source's live poll).
        self.tx.execute(
            "INSERT INTO meta(key, value) VALUES ('first_success', ?1)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value
             WHERE CAST(excluded.value AS BIGINT) < CAST(meta.value AS BIGINT)",
            [self.now.to_string()],
        )?;
        if let Some(t) = self.dated_from {
            // Windows reach back to the earliest time a source dated.
            self.tx.execute(
                "INSERT INTO meta(key, value) VALUES ('history_start', ?1)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value
                 WHERE CAST(excluded.value AS BIGINT) < CAST(meta.value AS BIGINT)",
                [t.to_string()],
            )?;
        }
        self.tx.commit()?;
        Ok(self.stats)
    }
}
