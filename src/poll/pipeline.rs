//! One poll: read what the store knows of the source, run the source's
//! poll under its deadline, and apply its observations in one transaction.
//!
//! A network source ([`Fetch::Collect`]) is read to the end before the
//! store's writer is taken, so a slow upstream never blocks another
//! source's apply or the KPI refresh. A file source ([`Fetch::Stream`]) is
//! applied while it is parsed: its local reads are quick, and a million
//! findings are not held in memory. Either way a failed or timed-out poll
//! rolls back and changes nothing but health.

use super::{PollHost, PollOutcome};
use crate::config::SourceConfig;
use crate::model::{unix_now, ErrorReason, ObservationItem, SourceError};
use crate::sources::{Fetch, ObservationSender, PollContext, Source};
use crate::store::{ApplyStats, PollApplier, Store, StoreError};
use crate::util::spawn_background;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Items in flight between a streaming source and the applier.
const STREAM_BUFFER: usize = 4;

/// Poll once and apply the result. Never panics on upstream input; every
/// failure is a counted, logged reason.
pub async fn poll_once(
    host: &dyn PollHost,
    cfg: &SourceConfig,
    source: &dyn Source,
    cancel: &CancellationToken,
) -> PollOutcome {
    poll_once_at(host, cfg, source, cancel, unix_now()).await
}

/// [`poll_once`] as of `now` (unix seconds): the poll's time in the store
/// (a report's scan time is its modification time, at most `now`).
pub async fn poll_once_at(
    host: &dyn PollHost,
    cfg: &SourceConfig,
    source: &dyn Source,
    cancel: &CancellationToken,
    now: i64,
) -> PollOutcome {
    let started = Instant::now();
    let mut out = PollOutcome::default();
    let store = host.store();
    let known = {
        let (store, name) = (store.clone(), cfg.name.clone());
        let inventory = cfg.spec.inventory().is_some();
        tokio::task::spawn_blocking(move || {
            Ok::<_, StoreError>((
                store.target_fingerprints(&name)?,
                store.poll_knowledge(&name, inventory)?,
            ))
        })
        .await
    };
    let (known_targets, (known_credentials, linked_credentials)) = match known {
        Ok(Ok(k)) => k,
        Ok(Err(e)) => return failed(cfg, out, started, format!("store: {e}")),
        Err(e) => return failed(cfg, out, started, format!("store task: {e}")),
    };
    let policy = host.policy();
    let max_types = policy.max_secret_types;
    let ctx = PollContext {
        source: cfg.name.clone(),
        hasher: host.hasher(),
        known_targets,
        now,
        deadline: started + cfg.timeout,
        policy,
        known_credentials,
        linked_credentials,
    };
    let run = Run {
        store: &store,
        cfg,
        source,
        max_types,
        cancel,
    };
    let applied = match source.fetch() {
        Fetch::Collect => run.collect_then_apply(ctx, &mut out).await,
        Fetch::Stream => run.stream_apply(ctx, &mut out).await,
    };
    match applied {
        Some(Ok(Applied::Committed(stats, rejected))) => {
            out.applied_at = Some(now);
            out.stats = stats;
            out.errors.extend(rejected);
        }
        Some(Ok(Applied::RolledBack)) | None => {}
        Some(Err(ApplyError::AllInputsFailed(errors))) => out.errors.extend(errors),
        Some(Err(ApplyError::Store(e))) => out
            .errors
            .push(SourceError::new(ErrorReason::Io, format!("store: {e}"))),
    }
    if out.applied_at.is_none() && out.errors.is_empty() && !cancel.is_cancelled() {
        // Never expected (the apply thread died): still a counted reason.
        out.errors.push(SourceError::new(
            ErrorReason::Io,
            "the poll was not applied (apply thread failed)",
        ));
    }
    out.duration = started.elapsed();
    if !cancel.is_cancelled() {
        log_outcome(cfg, &out);
    }
    out
}

fn failed(cfg: &SourceConfig, mut out: PollOutcome, started: Instant, msg: String) -> PollOutcome {
    out.errors.push(SourceError::new(ErrorReason::Io, msg));
    out.duration = started.elapsed();
    log_outcome(cfg, &out);
    out
}

/// One poll's settings, shared by both ways of reading a source.
struct Run<'a> {
    store: &'a Arc<Store>,
    cfg: &'a SourceConfig,
    source: &'a dyn Source,
    max_types: usize,
    cancel: &'a CancellationToken,
}

impl Run<'_> {
    /// Run the source's poll under the timeout (extended by the time the
    /// applier waited for another poll's transaction); `Some(())` when it
    /// succeeded.
    async fn poll(
        &self,
        ctx: PollContext,
        tx: ObservationSender,
        lock_wait: &LockWait,
        out: &mut PollOutcome,
    ) -> Option<()> {
        let timeout = self.cfg.timeout;
        tokio::select! {
            r = with_deadline(timeout, lock_wait, self.source.poll(ctx, tx)) => match r {
                Ok(Ok(())) => Some(()),
                Ok(Err(e)) => { out.errors.push(e); None }
                Err(_) => {
                    out.errors.push(SourceError::new(
                        ErrorReason::Timeout,
                        format!("poll did not finish within the timeout of {timeout:?}"),
                    ));
                    None
                }
            },
            _ = self.cancel.cancelled() => None,
        }
    }

    /// Read the whole poll into memory (its observations are small
    /// records), then apply it in one short transaction.
    async fn collect_then_apply(
        &self,
        ctx: PollContext,
        out: &mut PollOutcome,
    ) -> Option<Result<Applied, ApplyError>> {
        let now = ctx.now;
        let (tx, mut rx) = ObservationSender::channel(64);
        let collector = tokio::spawn(async move {
            let mut items = Vec::new();
            while let Some(item) = rx.recv().await {
                items.push(item);
            }
            items
        });
        if self
            .poll(ctx, tx, &LockWait::default(), out)
            .await
            .is_none()
        {
            // Nothing is applied; a task the source left behind holding a
            // sender does not keep this poll waiting.
            collector.abort();
            return Some(Ok(Applied::RolledBack));
        }
        // The poll future, and with it every sender, is gone.
        let items = collector.await.ok()?;
        let (store, name, max_types) = (self.store.clone(), self.cfg.name.clone(), self.max_types);
        spawn_background(&self.cfg.name, move || {
            let mut items = items.into_iter().map(Msg::Item).chain([Msg::Commit]);
            apply_all(&store, &name, now, max_types, &LockWait::default(), || {
                items.next()
            })
        })
        .await
    }

    /// Apply while the source still reads: the writer is taken at the first
    /// observation and released at commit or rollback.
    async fn stream_apply(
        &self,
        ctx: PollContext,
        out: &mut PollOutcome,
    ) -> Option<Result<Applied, ApplyError>> {
        let now = ctx.now;
        let (tx, mut rx) = ObservationSender::channel(STREAM_BUFFER);
        let (verdict_tx, mut verdict_rx) = mpsc::channel::<bool>(1);
        let lock_wait = Arc::new(LockWait::default());
        let (store, name, max_types) = (self.store.clone(), self.cfg.name.clone(), self.max_types);
        let wait = lock_wait.clone();
        let applier = spawn_background(&self.cfg.name, move || {
            let mut items_done = false;
            let mut verdict: Option<bool> = None;
            apply_all(&store, &name, now, max_types, &wait, || {
                if verdict.is_none() {
                    verdict = verdict_rx.try_recv().ok();
                }
                if verdict == Some(false) {
                    return None; // failed or timed out: roll back now
                }
                if !items_done {
                    if let Some(item) = rx.blocking_recv() {
                        return Some(Msg::Item(item));
                    }
                    items_done = true;
                }
                // Every sender is gone: the poll ended; its verdict follows.
                if verdict.is_none() {
                    verdict = verdict_rx.blocking_recv();
                }
                (verdict == Some(true)).then_some(Msg::Commit)
            })
        });
        let poll = async {
            let ok = self.poll(ctx, tx, &lock_wait, out).await;
            let _ = verdict_tx.send(ok.is_some()).await;
        };
        let (_, applied) = tokio::join!(poll, applier);
        applied
    }
}

/// Like `tokio::time::timeout`, but the budget grows by the time recorded
/// in `extra` (waits for the store writer held by another source's poll).
async fn with_deadline<F: std::future::Future>(
    budget: Duration,
    extra: &LockWait,
    fut: F,
) -> Result<F::Output, ()> {
    let start = tokio::time::Instant::now();
    tokio::pin!(fut);
    loop {
        let deadline = start + budget + extra.total();
        tokio::select! {
            out = &mut fut => return Ok(out),
            _ = tokio::time::sleep_until(deadline) => {
                if tokio::time::Instant::now() >= start + budget + extra.total() {
                    return Err(());
                }
            }
        }
    }
}

/// How long a poll's applier has waited for the store writer, including a
/// wait still in progress.
#[derive(Debug, Default)]
struct LockWait(std::sync::Mutex<(Option<Instant>, Duration)>);

impl LockWait {
    fn start(&self) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).0 = Some(Instant::now());
    }
    fn end(&self) {
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = g.0.take() {
            g.1 += t.elapsed();
        }
    }
    fn total(&self) -> Duration {
        let g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        g.1 + g.0.map(|t| t.elapsed()).unwrap_or_default()
    }
}

enum Msg {
    Item(ObservationItem),
    Commit,
}

enum Applied {
    Committed(ApplyStats, Vec<SourceError>),
    RolledBack,
}

enum ApplyError {
    Store(StoreError),
    AllInputsFailed(Vec<SourceError>),
}

impl From<StoreError> for ApplyError {
    fn from(e: StoreError) -> Self {
        ApplyError::Store(e)
    }
}

/// Apply the observations of one complete poll of `source` made at `now`,
/// in one transaction, exactly as a live poll's are: what a backfilled
/// past scan goes through. `items` holds what was read (a reader stops at
/// its first failed input instead of sending it).
pub fn apply_poll(
    store: &Store,
    source: &str,
    now: i64,
    max_types: usize,
    items: Vec<ObservationItem>,
) -> Result<ApplyStats, Vec<SourceError>> {
    let mut msgs = items.into_iter().map(Msg::Item).chain([Msg::Commit]);
    match apply_all(store, source, now, max_types, &LockWait::default(), || {
        msgs.next()
    }) {
        Ok(Applied::Committed(stats, _)) => Ok(stats),
        Ok(Applied::RolledBack) => Err(vec![SourceError::new(
            ErrorReason::Io,
            "the scan was not applied (rolled back)",
        )]),
        Err(ApplyError::AllInputsFailed(errors)) => Err(errors),
        Err(ApplyError::Store(e)) => Err(vec![SourceError::new(
            ErrorReason::Io,
            format!("store: {e}"),
        )]),
    }
}

/// Apply messages until `Commit` (commit) or the end (roll back). The writer
/// is taken only once there is something to apply.
fn apply_all(
    store: &Store,
    source: &str,
    now: i64,
    max_types: usize,
    lock_wait: &LockWait,
    mut next: impl FnMut() -> Option<Msg>,
) -> Result<Applied, ApplyError> {
    let Some(first) = next() else {
        return Ok(Applied::RolledBack);
    };
    lock_wait.start();
    let mut conn = store.writer();
    lock_wait.end();
    let mut ap = PollApplier::begin(&mut conn, source, now, max_types)?;
    let mut rejected = Vec::new();
    let mut read = 0u64;
    let mut pending = Some(first);
    while let Some(msg) = pending.take().or_else(&mut next) {
        match msg {
            Msg::Item(ObservationItem::Target(scan)) => {
                read += 1;
                ap.target(&scan)?
            }
            Msg::Item(ObservationItem::Inventory(inv)) => {
                read += 1;
                ap.inventory(&inv)?
            }
            Msg::Item(ObservationItem::TargetUnchanged { .. }) => read += 1,
            Msg::Item(ObservationItem::InventoryScopes(keep)) => ap.retire_scopes(&keep)?,
            Msg::Item(ObservationItem::TargetFailed { target, error }) => {
                tracing::warn!(source = %source, target = %target, reason = %error.reason, error = %error.message,
                    "input rejected; its findings keep their previous state");
                rejected.push(error);
            }
            Msg::Commit if read == 0 && !rejected.is_empty() => {
                // Every input was rejected: a failed poll, not an empty one.
                return Err(ApplyError::AllInputsFailed(rejected));
            }
            Msg::Commit => return Ok(Applied::Committed(ap.commit()?, rejected)),
        }
    }
    Ok(Applied::RolledBack)
}

fn log_outcome(cfg: &SourceConfig, out: &PollOutcome) {
    if out.applied_at.is_some() {
        let s = &out.stats;
        tracing::info!(source = %cfg.name, duration_ms = out.duration.as_millis() as u64,
            targets = s.targets, new = s.findings_new, closed = s.findings_closed,
            reopened = s.findings_reopened, revoked = s.exposures_revoked,
            rejected_inputs = out.errors.len(), "poll applied");
    } else {
        for e in &out.errors {
            tracing::error!(source = %cfg.name, reason = %e.reason, error = %e.message,
                "poll failed; nothing was changed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn deadline_grows_with_the_wait_for_the_store() {
        let wait = LockWait::default();
        // Without waits: a plain timeout.
        let r = with_deadline(
            Duration::from_secs(1),
            &wait,
            tokio::time::sleep(Duration::from_secs(2)),
        )
        .await;
        assert!(r.is_err());
        // A wait for another poll's transaction extends the budget.
        wait.0.lock().unwrap().1 = Duration::from_secs(5);
        let r = with_deadline(
            Duration::from_secs(1),
            &wait,
            tokio::time::sleep(Duration::from_secs(4)),
        )
        .await;
        assert!(r.is_ok());
    }
}
