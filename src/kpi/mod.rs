//! Outcome KPIs derived from the store. [`compute`] runs after each applied
//! poll (never at scrape time) and produces a [`Snapshot`]; the
//! [`collector::KpiCollector`] renders the latest snapshot.

pub mod collector;
pub mod inventory;
pub mod windows;

use crate::config::{LabelsConfig, Policy};
use crate::model::Validity;
use crate::store::{decode_labels, events, StoreError};
use rusqlite::{params, Connection};
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
    /// Start of the window actually used: `now - window`, or the store's
    /// first successful poll when the history is shorter.
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
    s.first_success = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'first_success'",
            [],
            |r| r.get::<_, String>(0),
        )
        .ok()
        .and_then(|v| v.parse().ok());

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
    for v in Validity::ALL {
        s.exposed_secrets.insert(v.as_str().into(), 0);
    }
    {
        let mut stmt = conn.prepare(
            "SELECT validity, COUNT(*), MIN(first_detected_at) FROM exposures WHERE open_findings > 0 GROUP BY validity",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let v: String = r.get(0)?;
            s.exposed_secrets
                .insert(v.clone(), r.get::<_, i64>(1)? as u64);
            let first: i64 = r.get(2)?;
            s.oldest_open_age.insert(v, (now - first).max(0) as f64);
        }
    }
    let (residual, residual_since): (i64, Option<i64>) = conn.query_row(
        "SELECT COUNT(*), MIN(COALESCE(closed_at, first_detected_at)) FROM exposures WHERE residual = 1",
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

    let history_start = s.first_success.unwrap_or(now);
    let starts: Vec<i64> = policy
        .windows
        .iter()
        .map(|w| {
            (now - w.duration.as_secs() as i64)
                .max(history_start)
                .min(now)
        })
        .collect();
    // Detection counts of every window in one pass per table: cheaper, over
    // a whole poll, than maintaining an index on every insert.
    // Each window, then the one before it: [start, now], [start - len, start].
    let mut ranges: Vec<(i64, i64)> = starts.iter().map(|st| (*st, now)).collect();
    for (i, w) in policy.windows.iter().enumerate() {
        ranges.push((starts[i] - w.duration.as_secs() as i64, starts[i]));
    }
    let f_counts = detection_counts(conn, "findings", "detected_at", &ranges)?;
    let e_counts = detection_counts(conn, "exposures", "first_detected_at", &ranges)?;
    let standing = standing_by_source(&s);
    let n = policy.windows.len();
    for (i, w) in policy.windows.iter().enumerate() {
        let mut wk = window_kpis(conn, &s, &w.label, starts[i], now, f_counts[i], e_counts[i])?;
        let (prev_start, prev_end) = ranges[n + i];
        if s.first_success.is_some_and(|f| f <= prev_start) {
            let p = window_kpis(
                conn,
                &s,
                &w.label,
                prev_start,
                prev_end,
                f_counts[n + i],
                e_counts[n + i],
            )?;
            wk.previous = Some(PreviousWindow {
                closure_ratio: p.closure_ratio,
                exposure_reduction_ratio: p.exposure_reduction_ratio,
                time_to_revoke_median: p.time_to_revoke_median,
            });
        }
        for (source, now_v) in &standing {
            let then =
                windows::history_at(conn, &format!("standing_privileged:{source}"), starts[i])?;
            wk.standing_privileged_change
                .push((source.clone(), then.map_or(0.0, |t| now_v - t)));
        }
        s.windows.push(wk);
    }
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

fn count(conn: &Connection, sql: &str, start: i64, now: i64) -> Result<i64, StoreError> {
    Ok(conn.query_row(sql, params![start, now], |r| r.get(0))?)
}

/// For each (start, end) range: (rows detected before start, rows
/// detected in [start, end]), from one scan of `table`.
fn detection_counts(
    conn: &Connection,
    table: &str,
    column: &str,
    ranges: &[(i64, i64)],
) -> Result<Vec<(i64, i64)>, StoreError> {
    if ranges.is_empty() {
        return Ok(Vec::new());
    }
    let mut cols = Vec::new();
    let mut params: Vec<i64> = Vec::new();
    for (i, (start, end)) in ranges.iter().enumerate() {
        let (ps, pe) = (2 * i + 1, 2 * i + 2);
        cols.push(format!("COUNT(*) FILTER (WHERE {column} < ?{ps})"));
        cols.push(format!(
            "COUNT(*) FILTER (WHERE {column} >= ?{ps} AND {column} <= ?{pe})"
        ));
        params.extend([*start, *end]);
    }
    let sql = format!("SELECT {} FROM {table}", cols.join(", "));
    let row = conn.query_row(&sql, rusqlite::params_from_iter(params.iter()), |r| {
        (0..ranges.len() * 2)
            .map(|i| r.get::<_, i64>(i))
            .collect::<Result<Vec<_>, _>>()
    })?;
    Ok(row.chunks(2).map(|c| (c[0], c[1])).collect())
}

fn window_kpis(
    conn: &Connection,
    s: &Snapshot,
    label: &str,
    start: i64,
    now: i64,
    (findings_before, detected_in): (i64, i64),
    (exposures_before, opened_in): (i64, i64),
) -> Result<WindowKpis, StoreError> {
    // Findings: closed in the window / (open at its start + detected in it).
    // A finding closed before the start was detected before it, so
    // open-at-start = detected before - closed before (closed_at is indexed).
    let closed_in = count(
        conn,
        "SELECT COUNT(*) FROM findings WHERE closed_at >= ?1 AND closed_at <= ?2",
        start,
        now,
    )?;
    let open_at_start = (findings_before
        - count(
            conn,
            "SELECT COUNT(*) FROM findings WHERE closed_at < ?1 AND ?2 >= ?1",
            start,
            now,
        )?)
    .max(0);
    let closure_ratio = windows::ratio(closed_in, open_at_start + detected_in);

    // Exposures: confirmed revoked in the window / (open and unrevoked at its
    // start + opened in it), by inclusion-exclusion over the indexes.
    let revoked_in = count(
        conn,
        "SELECT COUNT(*) FROM exposures WHERE revoked_at >= ?1 AND revoked_at <= ?2",
        start,
        now,
    )?;
    let exp_open_at_start = (exposures_before
        - count(
            conn,
            "SELECT (SELECT COUNT(*) FROM exposures WHERE closed_at < ?1)
                  + (SELECT COUNT(*) FROM exposures WHERE revoked_at < ?1)
                  - (SELECT COUNT(*) FROM exposures WHERE revoked_at < ?1 AND closed_at < ?1) + 0 * ?2",
            start,
            now,
        )?)
    .max(0);
    let exposure_reduction_ratio = windows::ratio(revoked_in, exp_open_at_start + opened_in);

    let mut ttr: Vec<i64> = {
        let mut stmt = conn.prepare_cached(
            "SELECT revoked_at - COALESCE(reopened_at, first_detected_at) FROM exposures WHERE revoked_at >= ?1 AND revoked_at <= ?2",
        )?;
        let rows = stmt.query_map(params![start, now], |r| r.get(0))?;
        rows.collect::<Result<_, _>>()?
    };
    let time_to_revoke_median = windows::median(&mut ttr);

    let past_exposed = windows::history_at(conn, "exposed_secrets", start)?;
    let secrets_in_code_delta = match past_exposed {
        Some(v) => s.exposed_total() as f64 - v,
        None => 0.0,
    };
    let mut posture_change = Vec::new();
    for (dim, now_v) in &s.posture {
        if let Some(then) = windows::history_at(conn, &format!("posture:{dim}"), start)? {
            posture_change.push((dim.clone(), now_v - then));
        } else {
            posture_change.push((dim.clone(), 0.0));
        }
    }
    Ok(WindowKpis {
        label: label.to_string(),
        start,
        secrets_in_code_delta,
        closure_ratio,
        exposure_reduction_ratio,
        time_to_revoke_median,
        posture_change,
        previous: None,
        standing_privileged_change: Vec::new(),
    })
}

/// Record the aggregate series the windows look back on (one row per
/// change), and prune what no window can reach any more.
pub fn record_history(conn: &Connection, s: &Snapshot, policy: &Policy) -> Result<(), StoreError> {
    // History starts at the first successful poll: before it, there is
    // nothing the windows could compare against.
    if s.first_success.is_none() {
        return Ok(());
    }
    let mut series: Vec<(String, f64)> = vec![("exposed_secrets".into(), s.exposed_total() as f64)];
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
    for (name, v) in series {
        windows::record_point(conn, &name, s.computed_at, v, cutoff)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;

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
