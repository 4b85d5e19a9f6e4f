//! Outcome KPIs derived from the store. [`compute`] runs after each applied
//! poll (never at scrape time) and produces a [`Snapshot`]; the
//! [`collector::KpiCollector`] renders the latest snapshot.

pub mod collector;
pub mod history;
pub mod inventory;
pub mod openmetrics;
pub mod windows;

use crate::config::{LabelsConfig, Policy};
use crate::model::Validity;
use crate::store::db::Conn as Connection;
use crate::store::{decode_labels, events, StoreError};
use std::collections::BTreeMap;

pub type Labels = Vec<(String, String)>;

/// Buckets (seconds) of `nhi_time_to_revoke_seconds` and
/// `nhi_time_to_close_seconds`. The store keeps exact durations, so this
/// layout can change without touching it.
pub const TIME_BUCKETS: [f64; 11] = [
    300.0, 900.0, 3600.0, 14400.0, 43200.0, 86400.0, 259200.0, 604800.0, 1209600.0, 2592000.0,
    7776000.0,
];

/// The metric family of each counted store event.
pub fn counter_metric(event: &str) -> Option<&'static str> {
    match event {
        events::FINDING_DETECTED => Some("nhi_findings_detected_total"),
        events::FINDING_CLOSED => Some("nhi_findings_closed_total"),
        events::EXPOSURE_REVOKED => Some("nhi_exposures_revoked_total"),
        events::EXPOSURE_REOPENED => Some("nhi_exposures_reopened_total"),
        _ => None,
    }
}

/// The histogram family of each measured store event.
pub fn histogram_metric(event: &str) -> Option<&'static str> {
    match event {
        events::TIME_TO_CLOSE => Some("nhi_time_to_close_seconds"),
        events::TIME_TO_REVOKE => Some("nhi_time_to_revoke_seconds"),
        _ => None,
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct HistogramValue {
    /// Non-cumulative counts per bucket of [`TIME_BUCKETS`].
    pub buckets: Vec<u64>,
    pub sum: f64,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WindowKpis {
    pub label: String,
    /// Start of the window actually used: `now - window`, or the start of
    /// the store's history (see [`Snapshot::history_start`]) when shorter.
    pub start: i64,
    pub secrets_in_code_delta: f64,
    pub closure_ratio: Option<f64>,
    pub exposure_reduction_ratio: Option<f64>,
    pub time_to_revoke_median: Option<f64>,
    pub posture_change: Vec<(String, f64)>,
    /// The same ratios and median over the window before this one
    /// (`[start - length, start]`); `None` until the store's history covers
    /// that whole previous window.
    pub previous: Option<PreviousWindow>,
    /// source → standing privileged NHIs now minus at the window's start
    /// (or at the source's first recorded poll, so adding a source reads 0).
    pub standing_privileged_change: Vec<(String, f64)>,
}

/// The window before a [`WindowKpis`] window, for trend rules that must not
/// depend on Prometheus keeping that long a history of one instance.
#[derive(Debug, Clone, PartialEq)]
pub struct PreviousWindow {
    pub closure_ratio: Option<f64>,
    pub exposure_reduction_ratio: Option<f64>,
    pub time_to_revoke_median: Option<f64>,
}

/// Everything `/metrics` shows about the domain, as of the latest poll.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub computed_at: i64,
    /// (source, secret_type label, validity) → open findings.
    pub findings_open: BTreeMap<(String, String, String), u64>,
    /// validity → distinct open exposures.
    pub exposed_secrets: BTreeMap<String, u64>,
    pub residual_exposures: u64,
    /// validity → age in seconds of the oldest open exposure.
    pub oldest_open_age: BTreeMap<String, f64>,
    /// Seconds since the oldest residual exposure's findings were all
    /// closed (it has been "closed, still exposed" that long); `None` when
    /// there is no residual exposure.
    pub residual_oldest_age: Option<f64>,
    /// Seconds since the latest confirmed revocation, or since the store's
    /// first successful poll when nothing was revoked since; `None` before
    /// the first successful poll.
    pub revocation_idle: Option<f64>,
    pub counters: Vec<(String, Labels, f64)>,
    pub histograms: Vec<(String, Labels, HistogramValue)>,
    pub windows: Vec<WindowKpis>,
    /// dimension → score; only dimensions with data (plus `exposure`).
    pub posture: BTreeMap<String, f64>,
    /// The store's first successful poll.
    pub first_success: Option<i64>,
    /// The earliest time the store's history covers: the first successful
    /// poll, or an earlier detection time a source gave (reconstructed
    /// history); windows reach back to it.
    pub history_start: Option<i64>,
    /// Identity and credential counts of the inventory sources.
    pub inventory: inventory::Inventory,
}

impl Snapshot {
    pub fn exposed_total(&self) -> u64 {
        self.exposed_secrets.values().sum()
    }
}

const NINETY_DAYS: i64 = 90 * 86_400;

/// Open live-or-unknown exposures at which the `exposure` posture dimension
/// is 0.5: `exposure = 1 / (1 + n / EXPOSURE_HALF_SCORE)`.
pub const EXPOSURE_HALF_SCORE: f64 = 10.0;

/// Map the stored normalised secret type to its label value.
fn type_labels(conn: &Connection, max: usize) -> Result<BTreeMap<String, String>, StoreError> {
    let mut stmt = conn.prepare("SELECT name, rank FROM secret_types")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
    let mut out = BTreeMap::new();
    for r in rows {
        let (name, rank) = r?;
        let label = if rank as usize <= max {
            name.clone()
        } else {
            "other".into()
        };
        out.insert(name, label);
    }
    Ok(out)
}

/// Derive every KPI from the store as of `now` (unix seconds), with team
/// labels off and every source's inventory counted.
pub fn compute(conn: &Connection, policy: &Policy, now: i64) -> Result<Snapshot, StoreError> {
    let labels = LabelsConfig {
        team_enabled: false,
        team_max_values: 0,
        scope_enabled: false,
        scope_max_values: 0,
    };
    compute_with(conn, policy, &labels, None, now)
}

/// Derive every KPI from the store as of `now` (unix seconds). Inventory
/// KPIs count only `sources` (the configured ones) when given.
pub fn compute_with(
    conn: &Connection,
    policy: &Policy,
    labels: &LabelsConfig,
    sources: Option<&std::collections::BTreeSet<String>>,
    now: i64,
) -> Result<Snapshot, StoreError> {
    let mut s = Snapshot {
        computed_at: now,
        ..Default::default()
    };
    s.first_success = history::meta_i64(conn, "first_success")?;

    let types = type_labels(conn, policy.max_secret_types)?;
    {
        // Maintained by every transition: no scan of the findings table.
        let mut stmt = conn.prepare(
            "SELECT source, secret_type, validity, open FROM finding_counts WHERE open > 0",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let t: String = r.get(1)?;
            let label = types.get(&t).cloned().unwrap_or_else(|| "other".into());
            *s.findings_open
                .entry((r.get(0)?, label, r.get(2)?))
                .or_default() += r.get::<_, i64>(3)? as u64;
        }
    }
    // Open exposures per validity and the oldest of each: counts the
    // applier keeps per time (no scan of the exposures). Read from the
    // earliest start of a window or of the window before it.
    let times = history::Times::load(conn, now - 2 * windows::longest(policy))?;
    for v in Validity::ALL {
        let kind = history::TimeKind::open(v);
        s.exposed_secrets
            .insert(v.as_str().into(), times.total(kind).max(0) as u64);
        if let Some(first) = history::oldest(conn, kind)? {
            s.oldest_open_age
                .insert(v.as_str().into(), (now - first).max(0) as f64);
        }
    }
    let (residual, residual_since): (i64, Option<i64>) = conn.query_row(
        "SELECT COUNT(*), MIN(COALESCE(closed_at, first_detected_at)) FROM exposures INDEXED BY exposures_residual WHERE residual = 1",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    s.residual_exposures = residual as u64;
    s.residual_oldest_age = residual_since.map(|t| (now - t).max(0) as f64);
    let last_revoked: Option<i64> =
        conn.query_row("SELECT MAX(revoked_at) FROM exposures", [], |r| r.get(0))?;
    s.revocation_idle = s.first_success.map(|first| {
        let since = last_revoked.map_or(first, |r| r.max(first));
        (now - since).max(0) as f64
    });

    s.counters = read_counters(conn)?;
    s.histograms = read_histograms(conn)?;

    // Posture. exposure = 1 / (1 + open live-or-unknown / 10): 1 with none
    // open, 0.5 with ten, and every new leak lowers it (a share of the
    // exposures seen stays at 0 through a burst when all of them are open).
    let live_or_unknown = s.exposed_secrets.get("live").copied().unwrap_or(0)
        + s.exposed_secrets.get("unknown").copied().unwrap_or(0);
    s.posture
        .insert("exposure".into(), exposure_score(live_or_unknown));
    s.inventory = inventory::compute(conn, policy, labels, sources, now)?;
    for (dim, v) in s.inventory.posture() {
        s.posture.insert(dim.into(), v.clamp(0.0, 1.0));
    }
    let dims: Vec<f64> = s.posture.values().copied().collect();
    s.posture.insert(
        "overall".into(),
        dims.iter().sum::<f64>() / dims.len() as f64,
    );

    s.history_start = history::history_start(conn)?;
    let standing = standing_by_source(&s);
    s.windows = history::windows_now(conn, &times, policy, &s, s.history_start, &standing)?;
    Ok(s)
}

/// The `exposure` posture dimension for `n` open live-or-unknown exposures.
pub fn exposure_score(n: u64) -> f64 {
    1.0 / (1.0 + n as f64 / EXPOSURE_HALF_SCORE)
}

/// source → standing privileged NHIs, over every provider, kind and team.
fn standing_by_source(s: &Snapshot) -> BTreeMap<String, f64> {
    let mut out: BTreeMap<String, f64> = BTreeMap::new();
    for (key, c) in &s.inventory.identities {
        *out.entry(key.0.clone()).or_default() += c.standing_privileged as f64;
    }
    out
}

/// Record the aggregate series the windows look back on (one row per
/// change), and prune what no window can reach any more.
pub fn record_history(
    conn: &mut Connection,
    s: &Snapshot,
    policy: &Policy,
) -> Result<(), StoreError> {
    // History starts at the first successful poll: before it, there is
    // nothing the windows could compare against.
    if s.first_success.is_none() {
        return Ok(());
    }
    let mut series: Vec<(String, f64)> = vec![
        ("exposed_secrets".into(), s.exposed_total() as f64),
        // Not reconstructible from the sources' dates (it needs the
        // secret's state over time): the landing page draws it from here.
        ("residual_exposures".into(), s.residual_exposures as f64),
    ];
    for (dim, v) in &s.posture {
        series.push((format!("posture:{dim}"), *v));
    }
    for (source, v) in standing_by_source(s) {
        series.push((format!("standing_privileged:{source}"), v));
    }
    let longest = policy
        .windows
        .iter()
        .map(|w| w.duration.as_secs() as i64)
        .max()
        .unwrap_or(NINETY_DAYS);
    let cutoff = s.computed_at - longest - 86_400;
    let tx = conn.transaction()?;
    for (name, v) in series {
        windows::record_point(&tx, &name, s.computed_at, v, cutoff)?;
    }
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod history_tests;
#[cfg(test)]
pub(crate) mod tests;

/// Persisted counters, under their metric names. Events this build does not
/// export are skipped.
fn read_counters(conn: &Connection) -> Result<Vec<(String, Labels, f64)>, StoreError> {
    let mut stmt = conn.prepare("SELECT name, labels, value FROM counters")?;
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let event: String = r.get(0)?;
        if let Some(metric) = counter_metric(&event) {
            let labels: String = r.get(1)?;
            out.push((metric.to_string(), decode_labels(&labels), r.get(2)?));
        }
    }
    out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    Ok(out)
}

/// Persisted durations, bucketed into [`TIME_BUCKETS`] under their metric
/// names.
fn read_histograms(conn: &Connection) -> Result<Vec<(String, Labels, HistogramValue)>, StoreError> {
    let mut by_series: BTreeMap<(String, String), HistogramValue> = BTreeMap::new();
    let mut stmt = conn.prepare("SELECT event, labels, seconds, n FROM durations")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let event: String = r.get(0)?;
        let Some(metric) = histogram_metric(&event) else {
            continue;
        };
        let (seconds, n): (i64, i64) = (r.get(2)?, r.get(3)?);
        let h = by_series
            .entry((metric.to_string(), r.get(1)?))
            .or_insert_with(|| HistogramValue {
                buckets: vec![0; TIME_BUCKETS.len()],
                sum: 0.0,
                count: 0,
            });
        if let Some(i) = TIME_BUCKETS.iter().position(|b| seconds as f64 <= *b) {
            h.buckets[i] += n as u64;
        }
        h.sum += (seconds * n) as f64;
        h.count += n as u64;
    }
    let mut stmt = conn.prepare("SELECT event, labels, seconds FROM duration_sum_adjust")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let event: String = r.get(0)?;
        if let Some(metric) = histogram_metric(&event) {
            if let Some(h) = by_series.get_mut(&(metric.to_string(), r.get(1)?)) {
                h.sum += r.get::<_, f64>(2)?;
            }
        }
    }
    Ok(by_series
        .into_iter()
        .map(|((metric, labels), h)| (metric, decode_labels(&labels), h))
        .collect())
}
