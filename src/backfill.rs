//! Backfill: apply dated past scans of a report source (`backfill_dir`) to
//! the store, oldest first, so that a new install's windows cover the past.
//!
//! `backfill_dir` holds one directory per past scan, named by its scan
//! time: an RFC 3339 time (`2026-08-01T06:00:00Z`, or colon-free
//! `2026-08-01T060000Z`), a date (`2026-08-01`, 00:00 UTC) or an age before
//! the start of the source's first backfill (`60d-ago`; the start is kept in
//! the store, so that every run dates a directory alike). Names starting
//! with `.` are ignored.
//! Inside, a file at relative path REL is the scan of the target a live
//! poll would name `<base>/REL`, `<base>` being the static directory (the
//! part before the first glob character) of the first pattern of `paths`
//! that then matches.
//!
//! Each scan is applied exactly as a complete live poll at its time `t`
//! would be ([`poll::apply_poll`]: the source's parser, `scanned_at = t`,
//! the store's `now = t`, the source's poll bookkeeping), then the KPI
//! history point at `t` is recorded. A scan at or before the source's last
//! successful poll in the store is skipped: a backfill never rewrites what
//! the store observed, and a second run is a no-op.

use crate::app::{unix_now, App, StartError};
use crate::config::SourceConfig;
use crate::model::{ErrorReason, ObservationItem, SourceError};
use crate::poll::{self, PollOutcome};
use crate::sources::reports::{files, ReportsConfig};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What one source's backfill did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackfillReport {
    /// Dated scans applied.
    pub applied: u64,
    /// Dated scans at or before the source's last successful poll.
    pub skipped: u64,
    /// Findings read from the applied scans.
    pub findings: u64,
}

/// One dated past scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatedScan {
    pub at: i64,
    pub dir: PathBuf,
}

fn io_error(msg: String) -> SourceError {
    SourceError::new(ErrorReason::Io, msg)
}

/// The scan time a dated directory's name gives, `start` being the
/// backfill's start (for `<duration>-ago`).
pub fn scan_time(name: &str, start: i64) -> Option<i64> {
    if let Some(d) = name.strip_suffix("-ago") {
        let d = crate::config::parse_duration(d).ok()?;
        return i64::try_from(d.as_secs())
            .ok()
            .and_then(|s| start.checked_sub(s));
    }
    if name.len() == 10 {
        let fmt = time::macros::format_description!("[year]-[month]-[day]");
        return time::Date::parse(name, fmt)
            .ok()
            .map(|d| d.midnight().assume_utc().unix_timestamp());
    }
    if !name.contains(':') {
        // `2026-08-01T060000Z` (colons are awkward in file names).
        let (date, rest) = name.split_once('T')?;
        let digits = rest.get(..6)?;
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let with = format!(
            "{date}T{}:{}:{}{}",
            &digits[..2],
            &digits[2..4],
            &digits[4..],
            &rest[6..]
        );
        return crate::sources::rfc3339(&with);
    }
    crate::sources::rfc3339(name)
}

/// The dated scans under `dir`, oldest first. Any name that is not a scan
/// time, any entry that is not a directory, and a time after `start` is an
/// error naming the entry.
pub fn dated_scans(dir: &Path, start: i64) -> Result<Vec<DatedScan>, SourceError> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| io_error(format!("{}: {e}", dir.display())))?;
    let mut scans = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io_error(format!("{}: {e}", dir.display())))?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let Some(at) = scan_time(&name, start) else {
            return Err(io_error(format!(
                "{}: not a scan time: name a past scan's directory by an RFC 3339 UTC time (2026-08-01T06:00:00Z or 2026-08-01T060000Z), a date (2026-08-01) or an age (60d-ago)",
                path.display()
            )));
        };
        match std::fs::metadata(&path) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(io_error(format!(
                    "{}: not a directory (one directory per past scan)",
                    path.display()
                )))
            }
            Err(e) => return Err(io_error(format!("{}: {e}", path.display()))),
        }
        if at > start {
            return Err(io_error(format!(
                "{}: the scan time is in the future",
                path.display()
            )));
        }
        scans.push(DatedScan { at, dir: path });
    }
    scans.sort_by(|a, b| (a.at, &a.dir).cmp(&(b.at, &b.dir)));
    Ok(scans)
}

/// The static directory of a glob pattern: up to the last `/` before its
/// first glob character.
fn static_base(pattern: &str) -> &str {
    let head = pattern
        .find(['*', '?', '['])
        .map_or(pattern, |i| &pattern[..i]);
    head.rfind('/').map_or("", |i| &pattern[..i])
}

/// The target name of the file at `rel` (relative, `/`-separated) of a
/// dated scan: `<base>/rel` for the first pattern that then matches.
pub fn target_name(patterns: &[String], rel: &str) -> Option<String> {
    let opts = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: false,
    };
    patterns.iter().find_map(|p| {
        let candidate = format!("{}/{rel}", static_base(p));
        let pat = glob::Pattern::new(p).ok()?;
        pat.matches_with(&candidate, opts).then_some(candidate)
    })
}

/// Every regular file under `dir`, as (path, relative `/`-separated name),
/// sorted.
fn files_under(dir: &Path) -> Result<Vec<(PathBuf, String)>, SourceError> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries =
            std::fs::read_dir(&d).map_err(|e| io_error(format!("{}: {e}", d.display())))?;
        for entry in entries {
            let entry = entry.map_err(|e| io_error(format!("{}: {e}", d.display())))?;
            let path = entry.path();
            match std::fs::metadata(&path) {
                Ok(m) if m.is_dir() => stack.push(path),
                Ok(m) if m.is_file() => {
                    let rel = path
                        .strip_prefix(dir)
                        .unwrap_or(&path)
                        .components()
                        .map(|c| c.as_os_str().to_string_lossy().into_owned())
                        .collect::<Vec<_>>()
                        .join("/");
                    out.push((path, rel));
                }
                Ok(_) => {
                    return Err(io_error(format!(
                        "{}: not a regular file (a FIFO, socket or device); not read",
                        path.display()
                    )))
                }
                Err(e) => return Err(io_error(format!("{}: {e}", path.display()))),
            }
        }
    }
    out.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(out)
}

/// Read every report of one dated scan as the scans of their targets at
/// the scan's time. The first unreadable or unmatched file fails it.
fn read_scan(
    cfg: &ReportsConfig,
    scan: &DatedScan,
    hasher: &crate::hashing::SecretHasher,
) -> Result<Vec<ObservationItem>, SourceError> {
    let mut items = Vec::new();
    for (path, rel) in files_under(&scan.dir)? {
        let Some(target) = target_name(&cfg.paths, &rel) else {
            return Err(io_error(format!(
                "{}: {rel} matches none of the source's paths",
                scan.dir.display()
            )));
        };
        let t = files::read_as(
            &path,
            target,
            scan.at,
            cfg.max_file_size,
            cfg.parser(),
            hasher,
        )?;
        items.push(ObservationItem::Target(t));
    }
    Ok(items)
}

/// Backfill one report source from `from` (default: its `backfill_dir`)
/// as of `start`. Blocking: call it off the async runtime. A source
/// without a directory to read has nothing to do.
pub fn backfill_source(
    app: &App,
    cfg: &SourceConfig,
    from: Option<&Path>,
    start: i64,
) -> Result<BackfillReport, SourceError> {
    let job = Job {
        cfg: cfg.clone(),
        from: from.map(Path::to_path_buf),
    };
    backfill_all(app, &[job], start)
        .pop()
        .unwrap_or_else(|| Err(io_error("no backfill result".into())))
}

/// A source to backfill, from `from` or its `backfill_dir`.
#[derive(Debug, Clone)]
pub struct Job {
    pub cfg: SourceConfig,
    pub from: Option<PathBuf>,
}

/// The settings and dated scans of one job.
fn plan<'a>(
    app: &App,
    job: &'a Job,
    start: i64,
) -> Result<(&'a ReportsConfig, Vec<DatedScan>), SourceError> {
    let cfg = &job.cfg;
    let Some(rc) = cfg.settings::<ReportsConfig>() else {
        return Err(io_error(format!(
            "source {}: type {} has no backfill (report sources only)",
            cfg.name,
            cfg.type_name()
        )));
    };
    let Some(dir) = job.from.as_deref().or(rc.backfill_dir.as_deref()) else {
        return Ok((rc, Vec::new()));
    };
    let anchor = app
        .store
        .backfill_anchor(&cfg.name, start)
        .map_err(|e| io_error(format!("store: {e}")))?;
    Ok((rc, dated_scans(dir, anchor.min(start))?))
}

/// Backfill several sources together: their dated scans are applied in
/// time order across sources (a KPI history point is recorded after each,
/// and the history only moves forward). A source's failure stops that
/// source only (its scans applied so far stay). One result per job, in
/// order. Blocking.
pub fn backfill_all(
    app: &App,
    jobs: &[Job],
    start: i64,
) -> Vec<Result<BackfillReport, SourceError>> {
    let mut results: Vec<Result<BackfillReport, SourceError>> =
        vec![Ok(BackfillReport::default()); jobs.len()];
    let last = match app.store.last_successes() {
        Ok(l) => l,
        Err(e) => {
            let m = format!("store: {e}");
            return jobs.iter().map(|_| Err(io_error(m.clone()))).collect();
        }
    };
    let mut settings = Vec::new();
    let mut all = Vec::new();
    for (i, job) in jobs.iter().enumerate() {
        match plan(app, job, start) {
            Ok((rc, scans)) => {
                settings.push(Some(rc));
                all.extend(scans.into_iter().map(|s| (i, s)));
            }
            Err(e) => {
                settings.push(None);
                results[i] = Err(e);
            }
        }
    }
    all.sort_by_key(|(i, s)| (s.at, *i));
    let mut last: Vec<Option<i64>> = jobs
        .iter()
        .map(|j| last.get(&j.cfg.name).copied())
        .collect();
    for (i, scan) in all {
        let (Some(rc), Ok(report)) = (settings[i], &mut results[i]) else {
            continue;
        };
        let name = &jobs[i].cfg.name;
        if last[i].is_some_and(|l| scan.at <= l) {
            tracing::info!(source = %name, scan = %scan.dir.display(), at = scan.at,
                "past scan skipped: at or before the source's last successful poll");
            report.skipped += 1;
            continue;
        }
        match apply_scan(app, name, rc, &scan) {
            Ok(findings) => {
                report.applied += 1;
                report.findings += findings;
                last[i] = Some(scan.at);
            }
            Err(e) => results[i] = Err(e),
        }
    }
    results
}

/// Apply one dated scan of a source, then record the KPI history point at
/// its time. Returns the findings read.
fn apply_scan(
    app: &App,
    name: &str,
    rc: &ReportsConfig,
    scan: &DatedScan,
) -> Result<u64, SourceError> {
    let store_err = |e: crate::store::StoreError| io_error(format!("store: {e}"));
    let items = read_scan(rc, scan, &app.hasher)?;
    let findings: usize = items
        .iter()
        .map(|i| match i {
            ObservationItem::Target(t) => t.findings.len(),
            _ => 0,
        })
        .sum();
    let max_types = app.config().policy.max_secret_types;
    let stats =
        poll::apply_poll(&app.store, name, scan.at, max_types, items).map_err(|mut e| {
            e.pop()
                .unwrap_or_else(|| io_error("the scan was not applied".into()))
        })?;
    // The windows' history point at the scan's time; never before a point
    // already recorded (the history is a step function in time).
    if app.store.history_end().map_err(store_err)? <= Some(scan.at) {
        app.compute_and_record(scan.at).map_err(store_err)?;
    } else {
        tracing::info!(source = %name, at = scan.at,
            "KPI history already recorded after this past scan: no history point added");
    }
    tracing::info!(source = %name, scan = %scan.dir.display(), at = scan.at,
        targets = stats.targets, new = stats.findings_new, closed = stats.findings_closed,
        revoked = stats.exposures_revoked, "past scan applied");
    Ok(findings as u64)
}

/// The enabled sources with a `backfill_dir`.
fn configured_jobs(app: &App) -> Vec<Job> {
    app.config()
        .sources
        .iter()
        .filter(|s| s.enabled)
        .filter(|s| {
            s.settings::<ReportsConfig>()
                .is_some_and(|r| r.backfill_dir.is_some())
        })
        .map(|s| Job {
            cfg: s.clone(),
            from: None,
        })
        .collect()
}

/// Run `jobs` on a blocking thread; a task that dies fails every job.
async fn run_jobs(app: &Arc<App>, jobs: &[Job]) -> Vec<Result<BackfillReport, SourceError>> {
    let (a, j) = (app.clone(), jobs.to_vec());
    tokio::task::spawn_blocking(move || backfill_all(&a, &j, unix_now()))
        .await
        .unwrap_or_else(|e| {
            let msg = format!("the backfill task failed: {e}");
            jobs.iter().map(|_| Err(io_error(msg.clone()))).collect()
        })
}

/// Run the backfill of every enabled source with a `backfill_dir` before
/// the first polls (daemon and `--once`). A failure is a logged, counted
/// poll failure of that source, never fatal; the live poll still runs.
/// Returns whether every backfill succeeded.
pub async fn before_first_polls(app: &Arc<App>) -> bool {
    let jobs = configured_jobs(app);
    if jobs.is_empty() {
        return true;
    }
    let started = std::time::Instant::now();
    let results = run_jobs(app, &jobs).await;
    let mut all_ok = true;
    for (job, res) in jobs.iter().zip(results) {
        let s = &job.cfg;
        match res {
            Ok(r) => tracing::info!(source = %s.name, applied = r.applied, skipped = r.skipped,
                findings = r.findings, "backfill done"),
            Err(error) => {
                all_ok = false;
                tracing::error!(source = %s.name, reason = %error.reason, error = %error.message,
                    "backfill failed; the live poll still runs");
                let out = PollOutcome {
                    duration: started.elapsed(),
                    errors: vec![error],
                    ..Default::default()
                };
                app.record_poll(s, &out);
            }
        }
    }
    all_ok
}

/// On a reload, before the new configuration is swapped in: backfill each
/// source that the reload starts with a `backfill_dir` (new, re-enabled, or
/// with another `backfill_dir`), so that it too has its past before its
/// first poll. Blocking. Returns each failure, to be recorded as a failed
/// poll of its source once the new configuration is in.
pub fn before_reload(app: &App, new: &crate::config::Config) -> Vec<(SourceConfig, PollOutcome)> {
    let old = app.config();
    let dir_of = |s: &SourceConfig| {
        s.settings::<ReportsConfig>()
            .and_then(|r| r.backfill_dir.clone())
    };
    let jobs: Vec<Job> = new
        .sources
        .iter()
        .filter(|s| s.enabled && dir_of(s).is_some())
        .filter(|s| {
            !old.sources.iter().any(|o| {
                o.enabled
                    && o.name == s.name
                    && o.type_name() == s.type_name()
                    && dir_of(o) == dir_of(s)
            })
        })
        .map(|s| Job {
            cfg: s.clone(),
            from: None,
        })
        .collect();
    if jobs.is_empty() {
        return Vec::new();
    }
    let started = std::time::Instant::now();
    let results = backfill_all(app, &jobs, unix_now());
    let mut failed = Vec::new();
    for (job, res) in jobs.into_iter().zip(results) {
        match res {
            Ok(r) => {
                tracing::info!(source = %job.cfg.name, applied = r.applied, skipped = r.skipped,
                findings = r.findings, "backfill done")
            }
            Err(error) => {
                tracing::error!(source = %job.cfg.name, reason = %error.reason, error = %error.message,
                    "backfill failed; the live poll still runs");
                let out = PollOutcome {
                    duration: started.elapsed(),
                    errors: vec![error],
                    ..Default::default()
                };
                failed.push((job.cfg, out));
            }
        }
    }
    failed
}

/// `nhi-exporter backfill`: backfill every enabled source with a
/// `backfill_dir`, or the one named (from `from` when given). Prints one
/// line per source; returns whether all succeeded.
pub async fn run_command(
    config: &Path,
    source: Option<&str>,
    from: Option<&Path>,
) -> Result<bool, StartError> {
    let app = App::open(config)?;
    let jobs = match source {
        Some(name) => match app.config().sources.iter().find(|s| s.name == name) {
            Some(s) => vec![Job {
                cfg: s.clone(),
                from: from.map(Path::to_path_buf),
            }],
            None => {
                eprintln!("backfill: no source named {name:?} in the configuration");
                return Ok(false);
            }
        },
        None => configured_jobs(&app),
    };
    if jobs.is_empty() {
        println!("no source has a backfill_dir: nothing to backfill");
    }
    let results = run_jobs(&app, &jobs).await;
    let mut ok = true;
    for (job, res) in jobs.iter().zip(results) {
        let name = &job.cfg.name;
        let has_dir = job.from.is_some()
            || job
                .cfg
                .settings::<ReportsConfig>()
                .is_some_and(|r| r.backfill_dir.is_some());
        match res {
            Ok(_) if !has_dir => {
                ok = false;
                eprintln!(
                    "{name}: backfill failed: the source has no backfill_dir; give --from DIR"
                );
            }
            Ok(r) => println!(
                "{name}: {} scans applied, {} skipped as already observed, {} findings read",
                r.applied, r.skipped, r.findings
            ),
            Err(e) => {
                ok = false;
                eprintln!("{name}: backfill failed: {e}");
            }
        }
    }
    let store = app.store.clone();
    if let Ok(Err(e)) = tokio::task::spawn_blocking(move || store.checkpoint()).await {
        tracing::warn!(error = %e, "WAL checkpoint failed");
    }
    Ok(ok)
}

#[cfg(test)]
mod tests;
