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
use crate::store::db::{params, Conn as Connection, DbError};
use crate::store::StoreError;
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
            DbError::NoRows => Ok(None),
            e => Err(e),
        })?;
    Ok(v.and_then(|v| v.parse().ok()))
}

/// Open exposures (all validities) at each of `ts`: the recorded series
/// from the first poll on; before it, the exposures the sources dated as
/// detected by then and not closed by then (from `times`).
pub(super) fn exposed_many(
    conn: &Connection,
    times: &Times,
    observed_from: Option<i64>,
    ts: &[i64],
) -> Result<Vec<f64>, StoreError> {
    let mut out = vec![0.0; ts.len()];
    for (i, &t) in ts.iter().enumerate() {
        let recorded = if observed_from.is_some_and(|f| t >= f) {
            windows::history_at(conn, "exposed_secrets", t)?
        } else {
            None
        };
        // Detected by then, less detected and closed by then.
        out[i] = recorded.unwrap_or_else(|| {
            (times.le(TimeKind::ExposureDetected, t) - times.le(TimeKind::ExposureClosed, t)) as f64
        });
    }
    Ok(out)
}

/// Which count of [`Times`]: the store's `time_counts` kinds (schema v6,
/// kept by triggers).
#[derive(Debug, Clone, Copy)]
pub(super) enum TimeKind {
    /// Findings by `detected_at`.
    FindingDetected = 1,
    /// Findings by `closed_at`.
    FindingClosed = 2,
    /// Exposures by `first_detected_at`.
    ExposureDetected = 3,
    /// Exposures by `revoked_at`.
    ExposureRevoked = 4,
    /// Exposures by the earlier of `closed_at` and `revoked_at`.
    ExposureGone = 5,
    /// Closed exposures by the later of `first_detected_at` and `closed_at`.
    ExposureClosed = 6,
    /// Open exposures by `first_detected_at`, per validity (7 live,
    /// 8 inactive, 9 unknown; [`TimeKind::open`]).
    OpenLive = 7,
    OpenInactive = 8,
    OpenUnknown = 9,
}

impl TimeKind {
    /// The open exposures of validity `v`.
    pub(super) fn open(v: crate::model::Validity) -> Self {
        use crate::model::Validity::*;
        match v {
            Live => TimeKind::OpenLive,
            Inactive => TimeKind::OpenInactive,
            Unknown => TimeKind::OpenUnknown,
        }
    }
}

/// The counts the windows need, per time, from `from` on: rows before it
/// are summed in SQL (one number per kind), rows after it are read once
/// (one row per distinct time, not per finding), and every range of every
/// point is then two binary searches. Ranges must start at or after `from`.
#[derive(Debug, Default)]
pub(super) struct Times {
    from: i64,
    /// Per kind (index `kind - 1`): the rows before `from`.
    before: [i64; KINDS],
    /// Per kind: (time, rows at or before it), by time, from `from` on.
    cumulative: [Vec<(i64, i64)>; KINDS],
}

/// The earliest time counted for `kind` (the oldest open exposure of a
/// validity for kinds 7–9); rows whose count fell to 0 are deleted at
/// commit, so this is one index lookup.
pub(super) fn oldest(conn: &Connection, kind: TimeKind) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT t FROM time_counts WHERE kind = ?1 AND n > 0 ORDER BY t LIMIT 1")?
        .query_row([kind as i64], |r| r.get(0))
        .map(Some)
        .or_else(|e| match e {
            DbError::NoRows => Ok(None),
            e => Err(e),
        })?)
}

/// The kinds [`Times`] reads (the store's `time_counts` kinds 1..=9).
const KINDS: usize = 9;

impl Times {
    /// The counts for ranges starting at or after `from`.
    pub(super) fn load(conn: &Connection, from: i64) -> Result<Self, StoreError> {
        let mut out = Times {
            from,
            ..Default::default()
        };
        let slot = |kind: i64| usize::try_from(kind - 1).ok().filter(|k| *k < KINDS);
        {
            let mut stmt = conn.prepare_cached(
                "SELECT kind, CAST(SUM(n) AS BIGINT) FROM time_counts WHERE t < ?1 GROUP BY kind",
            )?;
            let mut rows = stmt.query([from])?;
            while let Some(r) = rows.next()? {
                if let Some(k) = slot(r.get(0)?) {
                    out.before[k] = r.get(1)?;
                }
            }
        }
        let mut stmt = conn.prepare_cached(
            "SELECT kind, t, n FROM time_counts WHERE t >= ?1 AND n != 0 ORDER BY kind, t",
        )?;
        let mut rows = stmt.query([from])?;
        while let Some(r) = rows.next()? {
            let Some(k) = slot(r.get(0)?) else {
                continue; // a kind a newer build added
            };
            let v = &mut out.cumulative[k];
            let total = v.last().map_or(out.before[k], |x| x.1) + r.get::<_, i64>(2)?;
            v.push((r.get(1)?, total));
        }
        Ok(out)
    }

    fn upto(&self, kind: TimeKind, inclusive: bool, t: i64) -> i64 {
        debug_assert!(t >= self.from, "a range before the counts read");
        let k = kind as usize - 1;
        let v = &self.cumulative[k];
        let i = v.partition_point(|x| if inclusive { x.0 <= t } else { x.0 < t });
        if i == 0 {
            self.before[k]
        } else {
            v[i - 1].1
        }
    }

    /// Rows of `kind` in all.
    pub(super) fn total(&self, kind: TimeKind) -> i64 {
        let k = kind as usize - 1;
        self.cumulative[k].last().map_or(self.before[k], |x| x.1)
    }

    /// Rows of `kind` at or before `t`.
    pub(super) fn le(&self, kind: TimeKind, t: i64) -> i64 {
        self.upto(kind, true, t)
    }

    /// Rows of `kind` before `t`.
    pub(super) fn lt(&self, kind: TimeKind, t: i64) -> i64 {
        self.upto(kind, false, t)
    }

    /// Rows of `kind` in `[start, end]`.
    pub(super) fn between(&self, kind: TimeKind, start: i64, end: i64) -> i64 {
        (self.le(kind, end) - self.lt(kind, start)).max(0)
    }
}

/// Every configured window as of `s.computed_at`, with the window before
/// each and the standing-privilege change.
pub(super) fn windows_now(
    conn: &Connection,
    times: &Times,
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
        times,
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
    match times.iter().min() {
        Some(&earliest) => TrendBase::load(conn, policy, earliest)?.points(conn, policy, times),
        None => Ok(Vec::new()),
    }
}

/// What every trend point at or after one time reads from the store,
/// read once: a caller that asks for points in several calls (the landing
/// page, level by level) reads the counts once.
pub struct TrendBase {
    first_success: Option<i64>,
    start: Option<i64>,
    earliest: i64,
    counts: Times,
}

impl TrendBase {
    /// For points at or after `earliest`.
    pub fn load(conn: &Connection, policy: &Policy, earliest: i64) -> Result<Self, StoreError> {
        let first_success = meta_i64(conn, "first_success")?;
        let start = history_start(conn)?;
        // The earliest point kept (none before the history starts), less
        // the longest window.
        let from = earliest.max(start.unwrap_or(earliest)) - windows::longest(policy);
        Ok(TrendBase {
            first_success,
            start,
            earliest,
            counts: Times::load(conn, from)?,
        })
    }

    /// The points at `times` (each at or after the `earliest` loaded for).
    pub fn points(
        &self,
        conn: &Connection,
        policy: &Policy,
        times: &[i64],
    ) -> Result<Vec<TrendPoint>, StoreError> {
        let Some(first) = self.start else {
            return Ok(Vec::new());
        };
        debug_assert!(times.iter().all(|t| *t >= self.earliest));
        let times: Vec<i64> = times.iter().copied().filter(|t| *t >= first).collect();
        let exposed = exposed_many(conn, &self.counts, self.first_success, &times)?;
        let ends: Vec<(i64, f64)> = times.iter().copied().zip(exposed).collect();
        let none = BTreeMap::new();
        let windows = windows_many(
            conn,
            &self.counts,
            policy,
            &ends,
            &none,
            self.first_success,
            self.start,
            false,
        )?;
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
}

/// The windows ending at each `(now, open exposures then)`, each starting
/// at `now - length` or at the history's start when that is later. All
/// detection counts and reconstructed exposure counts come from `times`,
/// whatever the number of ends and windows.
#[allow(clippy::too_many_arguments)]
fn windows_many(
    conn: &Connection,
    times: &Times,
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
    let f_counts: Vec<[i64; 4]> = ranges.iter().map(|r| finding_counts(times, *r)).collect();
    let e_counts: Vec<[i64; 4]> = ranges.iter().map(|r| exposure_counts(times, *r)).collect();
    let window_starts: Vec<i64> = ranges
        .chunks(per_end)
        .flat_map(|c| c[..n].iter().map(|r| r.0))
        .collect();
    let exposed_then = exposed_many(conn, times, observed_from, &window_starts)?;
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
pub(super) fn finding_counts(t: &Times, (start, end): (i64, i64)) -> [i64; 4] {
    use TimeKind::*;
    [
        t.lt(FindingDetected, start),
        t.between(FindingDetected, start, end),
        t.between(FindingClosed, start, end),
        t.lt(FindingClosed, start),
    ]
}

/// Per range, of the exposures: first detected before the start, first
/// detected in the range, confirmed revoked in the range, closed or
/// revoked before the start.
pub(super) fn exposure_counts(t: &Times, (start, end): (i64, i64)) -> [i64; 4] {
    use TimeKind::*;
    [
        t.lt(ExposureDetected, start),
        t.between(ExposureDetected, start, end),
        t.between(ExposureRevoked, start, end),
        t.lt(ExposureGone, start),
    ]
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
