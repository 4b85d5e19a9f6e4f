//! The landing page `/`: the outcome story. Each headline KPI with its
//! trend over the longest configured window, drawn from the store's history
//! ([`crate::kpi::history::trend`]) as inline SVG; the inventory's current
//! values; source health; the bundled dashboards and the docs.
//!
//! The trend runs SQL over the store, so it is computed on a blocking
//! thread, once per snapshot (keyed by its `computed_at`), only when the
//! page is asked for: `/metrics` never waits for it, and an exporter whose
//! page nobody opens never pays for it.

pub mod page;
pub mod svg;
#[cfg(test)]
mod tests;

use crate::app::App;
use crate::config::Policy;
use crate::kpi::history::{TrendBase, TrendPoint};
use crate::kpi::Snapshot;
use crate::store::db::{params, Conn as Connection};
use crate::store::StoreError;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Points sampled over the longest window; 48 draw a smooth line at page
/// width. [`trend`] computes any number of points from one counting pass
/// over the findings and exposures tables plus indexed lookups per point
/// (see docs/ARCHITECTURE.md for the measured cost); the points are still
/// computed coarse to fine in [`levels`], and no level is started once
/// [`BUDGET`] is spent (the first always is): a big store gets fewer
/// points, never an unbounded wait.
pub const POINTS: usize = 48;

/// Time after which no further level of points is computed.
pub const BUDGET: Duration = Duration::from_secs(2);

/// The `n` sample indices in levels, coarse to fine: the first and the last
/// with every 8th, then every 4th, every 2nd, the rest; each index once.
pub fn levels(n: usize) -> Vec<Vec<usize>> {
    let mut done = vec![false; n];
    let mut out: Vec<Vec<usize>> = Vec::new();
    for step in [8, 4, 2, 1] {
        let mut level = Vec::new();
        let firsts = if step == 8 {
            vec![0, n.saturating_sub(1)]
        } else {
            vec![]
        };
        for i in firsts.into_iter().chain((0..n).step_by(step)) {
            if i < n && !done[i] {
                done[i] = true;
                level.push(i);
            }
        }
        if !level.is_empty() {
            out.push(level);
        }
    }
    out
}

/// The dashboards bundled in the binary, served at `/dashboards/<name>.json`:
/// the versions that match the metrics this build exports, reachable
/// where the repository is not (air-gapped installs).
pub const DASHBOARDS: [(&str, &str, &str); 4] = [
    (
        "nhi-outcomes",
        "NHI outcomes (review)",
        include_str!("../../dashboards/nhi-outcomes.json"),
    ),
    (
        "nhi-exposure",
        "NHI exposure",
        include_str!("../../dashboards/nhi-exposure.json"),
    ),
    (
        "nhi-identities",
        "NHI identities and credentials",
        include_str!("../../dashboards/nhi-identities.json"),
    ),
    (
        "nhi-exporter",
        "NHI exporter health",
        include_str!("../../dashboards/nhi-exporter.json"),
    ),
];

/// A bundled dashboard's JSON by its file name (`nhi-outcomes.json`).
pub fn dashboard(file: &str) -> Option<&'static str> {
    let name = file.strip_suffix(".json")?;
    DASHBOARDS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, _, json)| *json)
}

/// Escape text for HTML element content and quoted attribute values.
pub fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// The history behind the charts, as of one snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct Trends {
    /// The snapshot these were computed for.
    pub computed_at: i64,
    /// One per sample time, ascending (times before the history starts are
    /// left out).
    pub points: Vec<TrendPoint>,
    /// Recorded residual exposures at each point (None before recording began).
    pub residual: Vec<Option<f64>>,
    /// Recorded overall posture score at each point (None before the first poll).
    pub posture: Vec<Option<f64>>,
    /// The points sampled; more than `points.len()` when [`BUDGET`] ran out.
    pub sampled: usize,
    /// How long computing them took.
    pub took: Duration,
}

/// `n` times evenly over `[max(end - longest, history_start), end]`; just
/// `end` when the history starts there; none without history.
pub fn sample_times(end: i64, history_start: Option<i64>, longest: i64, n: usize) -> Vec<i64> {
    let Some(hs) = history_start else {
        return Vec::new();
    };
    let start = (end - longest).max(hs);
    if start >= end || n < 2 {
        return vec![end];
    }
    let span = (end - start) as i128;
    (0..n)
        .map(|i| start + (span * i as i128 / (n as i128 - 1)) as i64)
        .collect()
}

/// The value of a recorded history series at each time: its latest point
/// at or before it; None before its first point.
pub fn recorded(
    conn: &Connection,
    series: &str,
    times: &[i64],
) -> Result<Vec<Option<f64>>, StoreError> {
    let Some(last) = times.iter().max() else {
        return Ok(Vec::new());
    };
    let mut stmt = conn.prepare_cached(
        "SELECT ts, value FROM history WHERE series = ?1 AND ts <= ?2 ORDER BY ts",
    )?;
    let pts: Vec<(i64, f64)> = stmt
        .query_map(params![series, last], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    Ok(times
        .iter()
        .map(|t| pts.iter().take_while(|(ts, _)| ts <= t).last().map(|p| p.1))
        .collect())
}

/// Compute the page's history for `snap`.
pub fn load(conn: &Connection, policy: &Policy, snap: &Snapshot) -> Result<Trends, StoreError> {
    let started = Instant::now();
    let longest = crate::kpi::windows::longest(policy);
    let times = sample_times(snap.computed_at, snap.history_start, longest, POINTS);
    let mut points = Vec::with_capacity(times.len());
    // The counts every level reads, read once.
    let base = match times.iter().min() {
        Some(&earliest) => Some(TrendBase::load(conn, policy, earliest)?),
        None => None,
    };
    for (k, level) in levels(times.len()).into_iter().enumerate() {
        if k >= 1 && started.elapsed() >= BUDGET {
            break;
        }
        let at: Vec<i64> = level.iter().map(|&i| times[i]).collect();
        if let Some(base) = &base {
            points.extend(base.points(conn, policy, &at)?);
        }
    }
    points.sort_by_key(|p| p.at);
    let at: Vec<i64> = points.iter().map(|p| p.at).collect();
    Ok(Trends {
        computed_at: snap.computed_at,
        residual: recorded(conn, "residual_exposures", &at)?,
        posture: recorded(conn, "posture:overall", &at)?,
        points,
        sampled: times.len(),
        took: started.elapsed(),
    })
}

/// The latest [`Trends`], recomputed when the snapshot changed. One
/// computation at a time: concurrent page loads wait for it, and it runs
/// on a task of its own, so a client that goes away does not waste it.
#[derive(Debug, Default)]
pub struct Cache(tokio::sync::Mutex<Option<Arc<Trends>>>);

impl Cache {
    /// The trends of `snap`; None when the store could not be read (logged).
    pub async fn get(
        self: &Arc<Self>,
        app: &Arc<App>,
        snap: &Arc<Snapshot>,
    ) -> Option<Arc<Trends>> {
        let (this, app, snap) = (self.clone(), app.clone(), snap.clone());
        tokio::spawn(async move { this.refresh(&app, &snap).await })
            .await
            .ok()
            .flatten()
    }

    async fn refresh(&self, app: &Arc<App>, snap: &Arc<Snapshot>) -> Option<Arc<Trends>> {
        let mut cached = self.0.lock().await;
        if let Some(t) = cached
            .as_ref()
            .filter(|t| t.computed_at == snap.computed_at)
        {
            return Some(t.clone());
        }
        let (app, s) = (app.clone(), snap.clone());
        let res = tokio::task::spawn_blocking(move || {
            let conn = app.store.reader()?;
            load(&conn, &app.config().policy, &s)
        })
        .await;
        match res {
            Ok(Ok(t)) => {
                tracing::debug!(points = t.points.len(), took = ?t.took, "landing page trends computed");
                let t = Arc::new(t);
                *cached = Some(t.clone());
                Some(t)
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "cannot compute the landing page trends");
                None
            }
            Err(e) => {
                tracing::error!(error = %e, "landing page trends panicked");
                None
            }
        }
    }
}
