//! The KPI history as OpenMetrics text with timestamps, for
//! `promtool tsdb create-blocks-from openmetrics`: Prometheus then shows
//! the windows' trend from before the exporter was first scraped (history
//! reconstructed from dated alerts, or backfilled from dated reports).
//!
//! Hand-written: the `prometheus` crate's encoders write one value per
//! series without timestamps, and the format needed here is a few lines.

use super::collector::help_of;
use super::history::{history_start, trend, TrendPoint};
use crate::config::Policy;
use crate::store::db::Conn as Connection;
use crate::store::StoreError;
use std::io::Write;

/// What to export.
#[derive(Debug, Clone)]
pub struct ExportRange {
    /// First point; `None`: the start of the store's history.
    pub from: Option<i64>,
    /// Last point (included when on the step grid).
    pub to: i64,
    /// Seconds between points.
    pub step: i64,
    /// Labels added to every series (e.g. the `job` and `instance` that
    /// Prometheus gives the exporter's scraped series).
    pub labels: Vec<(String, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot write the export: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Invalid(String),
}

/// Write the windowed KPIs at every step of the range; returns the number
/// of points (times) written.
pub fn export(
    conn: &Connection,
    policy: &Policy,
    range: &ExportRange,
    out: &mut dyn Write,
) -> Result<usize, ExportError> {
    if range.step <= 0 {
        return Err(ExportError::Invalid("the step must be above zero".into()));
    }
    for (k, _) in &range.labels {
        let valid = k
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !k.starts_with("__");
        if !valid || k == "window" {
            return Err(ExportError::Invalid(format!(
                "label name {k:?} is not a valid Prometheus label name (or is `window`, which the KPIs use)"
            )));
        }
    }
    let Some(start) = history_start(conn)? else {
        // Nothing polled yet: an empty but valid exposition.
        out.write_all(b"# EOF\n")?;
        return Ok(0);
    };
    let from = range.from.unwrap_or(start).max(start);
    let times: Vec<i64> = (0..)
        .map(|i| from + i * range.step)
        .take_while(|t| *t <= range.to)
        .collect();
    let points = trend(conn, policy, &times)?;
    let extra: String = range
        .labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\",", escape(v)))
        .collect();
    type Get = fn(&super::WindowKpis) -> Option<f64>;
    let families: [(&str, Get); 4] = [
        ("nhi_secrets_in_code_delta", |w| {
            Some(w.secrets_in_code_delta)
        }),
        ("nhi_closure_ratio", |w| w.closure_ratio),
        ("nhi_exposure_reduction_ratio", |w| {
            w.exposure_reduction_ratio
        }),
        ("nhi_time_to_revoke_median_seconds", |w| {
            w.time_to_revoke_median
        }),
    ];
    for (name, get) in families {
        family_header(out, name)?;
        for (i, w) in policy.windows.iter().enumerate() {
            for p in &points {
                if let Some(v) = p.windows.get(i).and_then(get) {
                    writeln!(
                        out,
                        "{name}{{{extra}window=\"{}\"}} {} {}",
                        w.label,
                        num(v),
                        p.at
                    )?;
                }
            }
        }
    }
    let name = "nhi_store_history_seconds";
    family_header(out, name)?;
    let labels = if extra.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", extra.trim_end_matches(','))
    };
    for TrendPoint { at, .. } in &points {
        writeln!(out, "{name}{labels} {} {at}", at - start)?;
    }
    out.write_all(b"# EOF\n")?;
    Ok(points.len())
}

fn family_header(out: &mut dyn Write, name: &str) -> std::io::Result<()> {
    writeln!(out, "# HELP {name} {}", escape_help(&help_of(name)))?;
    writeln!(out, "# TYPE {name} gauge")
}

fn num(v: f64) -> String {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}
