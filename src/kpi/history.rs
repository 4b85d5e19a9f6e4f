//! The past: window KPIs at the latest poll or at any earlier time, over
//! the store's observed history and, before the first poll, the history
//! reconstructed from the sources' own timestamps (SPEC §3 windows; issue
//! 18). Findings and exposures keep the times their sources gave
//! (detection, closure, validity statements, credential changes), so
//! counts in a window are exact wherever the sources dated them; the
//! number of open exposures before the first poll is counted from those
//! times; posture and standing privilege need observed history.

use super::{windows, PreviousWindow, Snapshot, WindowKpis};
use crate::config::Policy;
use crate::store::StoreError;
use rusqlite::{params, Connection};
use std::collections::BTreeMap;

/// What the windows are measured against: the value "now" at `now`.
pub(super) struct At<'a> {
    /// Open exposures (all validities) at `now`.
    exposed: f64,
    /// Posture scores at `now` (empty for past points: not reconstructed).
    posture: &'a BTreeMap<String, f64>,
    /// The store's first successful poll: from it on, the recorded
    /// `exposed_secrets` series; before it, the reconstruction.
    observed_from: Option<i64>,
}

/// The earliest time the store's history covers: its first successful poll,
/// or the earliest detection time a source gave for a finding (a GitHub or
/// GitLab alert's creation), whichever is earlier.
pub fn history_start(conn: &Connection) -> Result<Option<i64>, StoreError> {
    let first = meta_i64(conn, "first_success")?;
    let dated = meta_i64(conn, "history_start")?;
    Ok(match (first, dated) {
        (Some(f), Some(d)) => Some(f.min(d)),
        (f, d) => f.or(d),
    })
}

/// A time kept in the store's `meta` table (`first_success`,
/// `history_start`); `None` when absent.
pub(super) fn meta_i64(conn: &Connection, key: &str) -> Result<Option<i64>, StoreError> {
    let v: Option<String> = conn
        .prepare_cached("SELECT value FROM meta WHERE key = ?1")?
        .query_row([key], |r| r.get(0))
        .map(Some)
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(None),
            e => Err(e),
        })?;
    Ok(v.and_then(|v| v.parse().ok()))
}

/// Open exposures (all validities) at each of `ts`: the recorded series
/// from the first poll on; before it, the exposures the sources dated as
/// detected by then and not closed by then (one scan for all such times).
pub(super) fn exposed_many(
    conn: &Connection,
    observed_from: Option<i64>,
    ts: &[i64],
) -> Result<Vec<f64>, StoreError> {
    let mut out = vec![0.0; ts.len()];
    let mut past = Vec::new();
    for (i, &t) in ts.iter().enumerate() {
        let recorded = if observed_from.is_some_and(|f| t >= f) {
            windows::history_at(conn, "exposed_secrets", t)?
        } else {
            None
        };
        match recorded {
            Some(v) => out[i] = v,
            None => past.push(i),
        }
    }
    for chunk in past.chunks(MAX_COLUMNS) {
        let cols: Vec<String> = (1..=chunk.len())
            .map(|p| {
                format!("COUNT(*) FILTER (WHERE first_detected_at <= ?{p} AND (closed_at IS NULL OR closed_at > ?{p}))")
            })
            .collect();
        let sql = format!("SELECT {} FROM exposures", cols.join(", "));
        let params: Vec<i64> = chunk.iter().map(|&i| ts[i]).collect();
        let row: Vec<i64> =
            conn.query_row(&sql, rusqlite::params_from_iter(params.iter()), |r| {
                (0..chunk.len()).map(|c| r.get(c)).collect()
            })?;
        for (&i, v) in chunk.iter().zip(row) {
            out[i] = v as f64;
        }
    }
    Ok(out)
}

/// Result columns of one counting scan (SQLite's default limit is 2,000).
const MAX_COLUMNS: usize = 500;

/// Every configured window as of `s.computed_at`, with the window before
/// each and the standing-privilege change.
pub(super) fn windows_now(
    conn: &Connection,
    policy: &Policy,
    s: &Snapshot,
    history_start: Option<i64>,
    standing: &BTreeMap<String, f64>,
) -> Result<Vec<WindowKpis>, StoreError> {
    let now = s.computed_at;
    let at = At {
        exposed: s.exposed_total() as f64,
        posture: &s.posture,
        observed_from: s.first_success,
    };
    let mut out = windows_many(
        conn,
        policy,
        &[(now, at.exposed)],
        at.posture,
        at.observed_from,
        history_start,
        true,
    )?
    .pop()
    .unwrap_or_default();
    for wk in out.iter_mut() {
        for (source, now_v) in standing {
            let then =
                windows::history_at(conn, &format!("standing_privileged:{source}"), wk.start)?;
            wk.standing_privileged_change
                .push((source.clone(), then.map_or(0.0, |t| now_v - t)));
        }
    }
    Ok(out)
}

/// One point of a KPI trend: the windowed KPIs as they read at `at`.
#[derive(Debug, Clone, PartialEq)]
pub struct TrendPoint {
    pub at: i64,
    /// Open exposures (all validities) at `at`.
    pub exposed_secrets: f64,
    /// One per configured window, in `policy.windows` order (no posture,
    /// no previous window, no standing privilege: those need observed
    /// history and are shown as of the latest poll only).
    pub windows: Vec<WindowKpis>,
}

/// The windowed KPIs at each of `times` (unix seconds, any order), over
/// the history the store holds or reconstructs. Points before the history
/// starts are left out.
pub fn trend(
    conn: &Connection,
    policy: &Policy,
    times: &[i64],
) -> Result<Vec<TrendPoint>, StoreError> {
    let first_success = meta_i64(conn, "first_success")?;
    let start = history_start(conn)?;
    let Some(first) = start else {
        return Ok(Vec::new());
    };
    let times: Vec<i64> = times.iter().copied().filter(|t| *t >= first).collect();
    let exposed = exposed_many(conn, first_success, &times)?;
    let ends: Vec<(i64, f64)> = times.iter().copied().zip(exposed).collect();
    let none = BTreeMap::new();
    let windows = windows_many(conn, policy, &ends, &none, first_success, start, false)?;
    Ok(ends
        .into_iter()
        .zip(windows)
        .map(|((at, exposed_secrets), windows)| TrendPoint {
            at,
            exposed_secrets,
            windows,
        })
        .collect())
}

/// The windows ending at each `(now, open exposures then)`, each starting
/// at `now - length` or at the history's start when that is later. All
/// detection counts and reconstructed exposure counts come from one scan
/// per table, whatever the number of ends and windows.
fn windows_many(
    conn: &Connection,
    policy: &Policy,
    ends: &[(i64, f64)],
    posture: &BTreeMap<String, f64>,
    observed_from: Option<i64>,
    history_start: Option<i64>,
    with_previous: bool,
) -> Result<Vec<Vec<WindowKpis>>, StoreError> {
    let n = policy.windows.len();
    // Per end: each window [start, now], then (with_previous) the one
    // before it [start - len, start].
    let per_end = if with_previous { 2 * n } else { n };
    let mut ranges: Vec<(i64, i64)> = Vec::with_capacity(ends.len() * per_end);
    for &(now, _) in ends {
        let history_start = history_start.unwrap_or(now);
        let starts: Vec<i64> = policy
            .windows
            .iter()
            .map(|w| {
                (now - w.duration.as_secs() as i64)
                    .max(history_start)
                    .min(now)
            })
            .collect();
        ranges.extend(starts.iter().map(|st| (*st, now)));
        if with_previous {
            for (i, w) in policy.windows.iter().enumerate() {
                ranges.push((starts[i] - w.duration.as_secs() as i64, starts[i]));
            }
        }
    }
    let f_counts = range_counts(conn, "findings", &FINDING_COUNTS, &ranges)?;
    let e_counts = range_counts(conn, "exposures", &EXPOSURE_COUNTS, &ranges)?;
    let window_starts: Vec<i64> = ranges
        .chunks(per_end)
        .flat_map(|c| c[..n].iter().map(|r| r.0))
        .collect();
    let exposed_then = exposed_many(conn, observed_from, &window_starts)?;
    let mut out = Vec::with_capacity(ends.len());
    for (j, &(now, exposed)) in ends.iter().enumerate() {
        let at = At {
            exposed,
            posture,
            observed_from,
        };
        let hs = history_start.unwrap_or(now);
        let mut v = Vec::with_capacity(n);
        for (i, w) in policy.windows.iter().enumerate() {
            let k = j * per_end + i;
            let (start, _) = ranges[k];
            let mut wk = window_kpis(
                conn,
                &at,
                &w.label,
                start,
                now,
                f_counts[k],
                e_counts[k],
                exposed_then[j * n + i],
            )?;
            if with_previous && hs <= ranges[k + n].0 {
                let (prev_start, prev_end) = ranges[k + n];
                let p = window_kpis(
                    conn,
                    &at,
                    &w.label,
                    prev_start,
                    prev_end,
                    f_counts[k + n],
                    e_counts[k + n],
                    0.0,
                )?;
                wk.previous = Some(PreviousWindow {
                    closure_ratio: p.closure_ratio,
                    exposure_reduction_ratio: p.exposure_reduction_ratio,
                    time_to_revoke_median: p.time_to_revoke_median,
                });
            }
            v.push(wk);
        }
        out.push(v);
    }
    Ok(out)
}

/// Per (start, end) range, what the windows count of the findings:
/// detected before the start, detected in the range, closed in the range,
/// closed before the start.
const FINDING_COUNTS: [&str; 4] = [
    "detected_at < ?S",
    "detected_at >= ?S AND detected_at <= ?E",
    "closed_at >= ?S AND closed_at <= ?E",
    "closed_at < ?S",
];

/// Per range, of the exposures: first detected before the start, first
/// detected in the range, confirmed revoked in the range, closed or
/// revoked before the start.
const EXPOSURE_COUNTS: [&str; 4] = [
    "first_detected_at < ?S",
    "first_detected_at >= ?S AND first_detected_at <= ?E",
    "revoked_at >= ?S AND revoked_at <= ?E",
    "closed_at < ?S OR revoked_at < ?S",
];

/// For each (start, end) range, the rows of `table` matching each of
/// `conds` (`?S` and `?E` standing for the range's start and end), from
/// one scan of the table per [`MAX_COLUMNS`] columns: every window of every
/// point costs no query of its own.
fn range_counts(
    conn: &Connection,
    table: &str,
    conds: &[&str; 4],
    ranges: &[(i64, i64)],
) -> Result<Vec<[i64; 4]>, StoreError> {
    let per_scan = MAX_COLUMNS / conds.len();
    if ranges.len() > per_scan {
        let mut out = Vec::with_capacity(ranges.len());
        for chunk in ranges.chunks(per_scan) {
            out.extend(range_counts(conn, table, conds, chunk)?);
        }
        return Ok(out);
    }
    if ranges.is_empty() {
        return Ok(Vec::new());
    }
    let mut cols = Vec::new();
    let mut params: Vec<i64> = Vec::new();
    for (i, (start, end)) in ranges.iter().enumerate() {
        let (ps, pe) = (2 * i + 1, 2 * i + 2);
        for c in conds {
            let c = c
                .replace("?S", &format!("?{ps}"))
                .replace("?E", &format!("?{pe}"));
            cols.push(format!("COUNT(*) FILTER (WHERE {c})"));
        }
        params.extend([*start, *end]);
    }
    let sql = format!("SELECT {} FROM {table}", cols.join(", "));
    let row = conn.query_row(&sql, rusqlite::params_from_iter(params.iter()), |r| {
        (0..cols.len())
            .map(|i| r.get::<_, i64>(i))
            .collect::<Result<Vec<_>, _>>()
    })?;
    Ok(row
        .chunks(conds.len())
        .map(|c| [c[0], c[1], c[2], c[3]])
        .collect())
}

#[allow(clippy::too_many_arguments)]
fn window_kpis(
    conn: &Connection,
    at: &At,
    label: &str,
    start: i64,
    now: i64,
    [findings_before, detected_in, closed_in, closed_before]: [i64; 4],
    [exposures_before, opened_in, revoked_in, gone_before]: [i64; 4],
    exposed_then: f64,
) -> Result<WindowKpis, StoreError> {
    // Findings: closed in the window / (open at its start + detected in it).
    // A finding closed before the start was detected before it, so
    // open-at-start = detected before - closed before.
    let open_at_start = (findings_before - closed_before).max(0);
    let closure_ratio = windows::ratio(closed_in, open_at_start + detected_in);

    // Exposures: confirmed revoked in the window / (open and unrevoked at its
    // start + opened in it); one closed or revoked before the start was
    // detected before it.
    let exp_open_at_start = (exposures_before - gone_before).max(0);
    let exposure_reduction_ratio = windows::ratio(revoked_in, exp_open_at_start + opened_in);

    let mut ttr: Vec<i64> = {
        let mut stmt = conn.prepare_cached(
            "SELECT revoked_at - COALESCE(reopened_at, first_detected_at) FROM exposures WHERE revoked_at >= ?1 AND revoked_at <= ?2",
        )?;
        let rows = stmt.query_map(params![start, now], |r| r.get(0))?;
        rows.collect::<Result<_, _>>()?
    };
    let time_to_revoke_median = windows::median(&mut ttr);

    let secrets_in_code_delta = at.exposed - exposed_then;
    let mut posture_change = Vec::new();
    for (dim, now_v) in at.posture {
        // Posture needs observed history: before the first poll, the
        // earliest recorded value stands in (a change of 0 on day one).
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
