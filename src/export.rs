//! `nhi-exporter export-history`: the store's KPI history (observed, and
//! reconstructed from dated sources) as OpenMetrics for
//! `promtool tsdb create-blocks-from openmetrics`.

use crate::app::{unix_now, App};
use crate::cli::ExportHistoryArgs;
use crate::daemon::RunError;
use crate::kpi::openmetrics::{export, ExportRange};
use std::io::Write;
use std::path::Path;

/// A time argument: RFC 3339 (`2026-08-01T00:00:00Z`), or a duration before
/// now (`90d`, `12h`).
pub fn parse_time(s: &str, now: i64) -> Result<i64, String> {
    if let Ok(t) = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339) {
        return Ok(t.unix_timestamp());
    }
    match crate::config::parse_duration(s) {
        Ok(d) => Ok(now - d.as_secs() as i64),
        Err(_) => Err(
            "expected an RFC 3339 time (2026-08-01T00:00:00Z) or a duration before now (90d)"
                .into(),
        ),
    }
}

/// Parse `NAME=VALUE`.
pub fn parse_label(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err("expected NAME=VALUE, e.g. job=nhi-exporter".into()),
    }
}

/// Write the export; returns the number of points written.
pub fn run(config_file: &Path, args: &ExportHistoryArgs) -> Result<usize, RunError> {
    let loaded =
        crate::sources::registry::load(config_file).map_err(|e| RunError::Other(e.to_string()))?;
    let state = &loaded.config.state.path;
    let sqlite = loaded.config.state.backend == crate::config::StoreBackend::Sqlite;
    if sqlite && !state.exists() {
        return Err(RunError::Other(format!(
            "no store at {} (state.path): nothing to export; run the exporter first",
            state.display()
        )));
    }
    let app = App::with_loaded(config_file, loaded)?;
    let now = unix_now();
    let step = crate::config::parse_duration(&args.step)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| RunError::Other("--step: expected a duration above zero, e.g. 1h".into()))?;
    let range = ExportRange {
        from: args
            .from
            .as_deref()
            .map(|s| parse_time(s, now).map_err(|e| RunError::Other(format!("--from: {e}"))))
            .transpose()?,
        to: args
            .to
            .as_deref()
            .map(|s| parse_time(s, now).map_err(|e| RunError::Other(format!("--to: {e}"))))
            .transpose()?
            .unwrap_or(now),
        step: step.as_secs() as i64,
        labels: args.labels.clone(),
    };
    let conn = app.store.reader().map_err(crate::app::StartError::from)?;
    let policy = app.config().policy.clone();
    let fail = |e: crate::kpi::openmetrics::ExportError| RunError::Other(e.to_string());
    match &args.output {
        Some(path) => {
            let tmp = path.with_extension("tmp");
            let mut f =
                std::io::BufWriter::new(std::fs::File::create(&tmp).map_err(|e| {
                    RunError::Other(format!("cannot create {}: {e}", tmp.display()))
                })?);
            let n = export(&conn, &policy, &range, &mut f).map_err(fail)?;
            f.flush()
                .and_then(|_| std::fs::rename(&tmp, path))
                .map_err(|e| RunError::Other(format!("cannot write {}: {e}", path.display())))?;
            Ok(n)
        }
        None => {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            let n = export(&conn, &policy, &range, &mut out).map_err(fail)?;
            out.flush()
                .map_err(|e| RunError::Other(format!("cannot write to stdout: {e}")))?;
            Ok(n)
        }
    }
}
