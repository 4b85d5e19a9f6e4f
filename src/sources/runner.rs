//! One task per source: poll on its interval (±10% jitter), bound each poll
//! by the source's timeout, back off exponentially (bounded) after failures,
//! and apply each successful poll to the store in one transaction. Health
//! metrics are recorded here, for every source type alike.

use super::{
    ApplyMsg, ErrorReason, ObservationItem, ObservationSender, PollContext, Source, SourceError,
};
use crate::app::{unix_now, App};
use crate::config::SourceConfig;
use crate::store::{ApplyStats, PollApplier, Store};
use rand::Rng;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The result of one poll.
#[derive(Debug, Default)]
pub struct PollOutcome {
    pub duration: Duration,
    /// Set when the poll's result was committed to the store.
    pub applied_at: Option<i64>,
    /// The poll's failure and/or each rejected input.
    pub errors: Vec<SourceError>,
    pub stats: ApplyStats,
}

impl PollOutcome {
    /// Up: applied, and every input was read.
    pub fn ok(&self) -> bool {
        self.applied_at.is_some() && self.errors.is_empty()
    }
}

const BACKOFF_BASE: Duration = Duration::from_secs(5);

/// Lowers the scheduling priority of the current thread (nice +10) while
/// it does background poll work (parsing, applying), so that on a busy
/// machine the threads serving scrapes win. Restored on drop: the blocking
/// pool reuses threads. Linux applies `setpriority(PRIO_PROCESS, tid)` to
/// one thread; std and tokio offer no per-thread priority, hence libc.
pub struct BackgroundPriority {
    #[cfg(target_os = "linux")]
    previous: Option<libc::c_int>,
}

impl BackgroundPriority {
    pub fn enter() -> Self {
        #[cfg(target_os = "linux")]
        {
            // SAFETY: plain syscalls on the calling thread's own id.
            unsafe {
                let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
                *libc::__errno_location() = 0;
                let prev = libc::getpriority(libc::PRIO_PROCESS, tid);
                let ok = *libc::__errno_location() == 0;
                if ok && libc::setpriority(libc::PRIO_PROCESS, tid, (prev + 10).min(19)) == 0 {
                    return Self {
                        previous: Some(prev),
                    };
                }
            }
            Self { previous: None }
        }
        #[cfg(not(target_os = "linux"))]
        Self {}
    }
}

impl Drop for BackgroundPriority {
    fn drop(&mut self) {
        #[cfg(target_os = "linux")]
        if let Some(prev) = self.previous {
            // Raising priority back needs CAP_SYS_NICE unless RLIMIT_NICE
            // allows it; if that fails the thread stays lower, which only
            // affects later background work on it.
            // SAFETY: as above.
            unsafe {
                let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
                libc::setpriority(libc::PRIO_PROCESS, tid, prev);
            }
        }
    }
}

/// ±10% jitter so that sources configured alike do not poll in lockstep.
pub fn jittered(d: Duration) -> Duration {
    let f: f64 = rand::thread_rng().gen_range(0.9..=1.1);
    d.mul_f64(f)
}

/// Delay before the next attempt after `failures` consecutive failures:
/// 5s, 10s, 20s, ... capped at the interval.
pub fn backoff(failures: u32, interval: Duration) -> Duration {
    let exp = BACKOFF_BASE.saturating_mul(1u32 << failures.saturating_sub(1).min(16));
    jittered(exp.min(interval))
}

pub async fn run(app: Arc<App>, cfg: SourceConfig, cancel: CancellationToken) {
    let source = Source::from_config(&cfg);
    tracing::info!(source = %cfg.name, source_type = cfg.type_name(), interval = ?cfg.interval, "source started");
    let mut failures = 0u32;
    loop {
        let out = poll_once(&app, &cfg, &source, &cancel).await;
        if cancel.is_cancelled() {
            return;
        }
        app.record_poll(&cfg, &out);
        app.refresh.notify_one();
        let delay = if out.applied_at.is_some() {
            failures = 0;
            jittered(cfg.interval)
        } else {
            failures += 1;
            backoff(failures, cfg.interval)
        };
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

/// Poll once and apply the result. Never panics on upstream input; every
/// failure is a counted, logged reason.
pub async fn poll_once(
    app: &App,
    cfg: &SourceConfig,
    source: &Source,
    cancel: &CancellationToken,
) -> PollOutcome {
    let started = Instant::now();
    let now = unix_now();
    let mut out = PollOutcome::default();
    let store = app.store.clone();
    let name = cfg.name.clone();
    let known = {
        let store = store.clone();
        let name = name.clone();
        tokio::task::spawn_blocking(move || {
            Ok::<_, crate::store::StoreError>((
                store.target_fingerprints(&name)?,
                store.poll_knowledge(&name)?,
            ))
        })
        .await
    };
    let (known, (known_credentials, linked_credentials)) = match known {
        Ok(Ok(k)) => k,
        Ok(Err(e)) => {
            out.errors
                .push(SourceError::new(ErrorReason::Io, format!("store: {e}")));
            out.duration = started.elapsed();
            log_outcome(cfg, &out);
            return out;
        }
        Err(e) => {
            out.errors.push(SourceError::new(
                ErrorReason::Io,
                format!("store task: {e}"),
            ));
            out.duration = started.elapsed();
            return out;
        }
    };
    let policy = Arc::new(app.config().policy.clone());
    let max_types = policy.max_secret_types;
    let (tx, rx) = mpsc::channel::<ApplyMsg>(4);
    // Time the applier spent waiting for another poll to release SQLite's
    // single writer: not this source's fault, so it extends the deadline.
    let lock_wait = Arc::new(LockWait::default());
    let applier = {
        let name = name.clone();
        let lock_wait = lock_wait.clone();
        tokio::task::spawn_blocking(move || {
            apply_loop(&store, &name, now, max_types, rx, &lock_wait)
        })
    };
    let ctx = PollContext {
        source: name.clone(),
        hasher: app.hasher.clone(),
        known_targets: known,
        now,
        deadline: started + cfg.timeout,
        policy,
        known_credentials,
        linked_credentials,
    };
    let poll = source.poll(ctx, ObservationSender::new(tx.clone()));
    let verdict = tokio::select! {
        r = with_deadline(cfg.timeout, &lock_wait, poll) => match r {
            Ok(Ok(())) => ApplyMsg::Commit,
            Ok(Err(e)) => { out.errors.push(e); ApplyMsg::Abort }
            Err(_) => {
                out.errors.push(SourceError::new(
                    ErrorReason::Timeout,
                    format!("poll did not finish within the timeout of {:?}", cfg.timeout),
                ));
                ApplyMsg::Abort
            }
        },
        _ = cancel.cancelled() => ApplyMsg::Abort,
    };
    let commit = matches!(verdict, ApplyMsg::Commit);
    // The applier may have stopped on a store error: then this send fails
    // and its result tells why.
    let _ = tx.send(verdict).await;
    drop(tx);
    match applier.await {
        Ok(Ok(Some((stats, failed)))) if commit => {
            out.applied_at = Some(now);
            out.stats = stats;
            out.errors.extend(failed);
        }
        Ok(Ok(_)) => {}
        Ok(Err(AllInputsFailed(errors))) => out.errors.extend(errors),
        Ok(Err(ApplyError::Store(e))) => out
            .errors
            .push(SourceError::new(ErrorReason::Io, format!("store: {e}"))),
        Err(e) => out.errors.push(SourceError::new(
            ErrorReason::Io,
            format!("apply task: {e}"),
        )),
    }
    out.duration = started.elapsed();
    if !cancel.is_cancelled() {
        log_outcome(cfg, &out);
    }
    out
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
pub struct LockWait(std::sync::Mutex<(Option<Instant>, Duration)>);

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
    pub fn total(&self) -> Duration {
        let g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        g.1 + g.0.map(|t| t.elapsed()).unwrap_or_default()
    }
}

type Applied = Option<(ApplyStats, Vec<SourceError>)>;

enum ApplyError {
    Store(crate::store::StoreError),
    AllInputsFailed(Vec<SourceError>),
}
use ApplyError::AllInputsFailed;

impl From<crate::store::StoreError> for ApplyError {
    fn from(e: crate::store::StoreError) -> Self {
        ApplyError::Store(e)
    }
}

fn apply_loop(
    store: &Store,
    source: &str,
    now: i64,
    max_types: usize,
    mut rx: mpsc::Receiver<ApplyMsg>,
    lock_wait: &LockWait,
) -> Result<Applied, ApplyError> {
    let _background = BackgroundPriority::enter();
    // Take SQLite's single writer only once there is something to apply, so
    // a source still fetching (or failing) does not hold up the others.
    let first = match rx.blocking_recv() {
        None | Some(ApplyMsg::Abort) => return Ok(None),
        Some(m) => m,
    };
    lock_wait.start();
    let mut conn = store.writer();
    lock_wait.end();
    let mut ap = PollApplier::begin(&mut conn, source, now, max_types)?;
    let mut failed = Vec::new();
    let mut read = 0u64;
    let mut pending = Some(first);
    while let Some(msg) = pending.take().or_else(|| rx.blocking_recv()) {
        match msg {
            ApplyMsg::Item(ObservationItem::Target(scan)) => {
                read += 1;
                ap.target(&scan)?
            }
            ApplyMsg::Item(ObservationItem::Inventory(inv)) => {
                read += 1;
                ap.inventory(&inv)?
            }
            ApplyMsg::Item(ObservationItem::TargetUnchanged { .. }) => read += 1,
            ApplyMsg::Item(ObservationItem::TargetFailed { target, error }) => {
                tracing::warn!(source = %source, target = %target, reason = %error.reason, error = %error.message,
                    "input rejected; its findings keep their previous state");
                failed.push(error);
            }
            ApplyMsg::Commit if read == 0 && !failed.is_empty() => {
                // Every input was rejected: a failed poll, not an empty one.
                return Err(AllInputsFailed(failed));
            }
            ApplyMsg::Commit => {
                let stats = ap.commit()?;
                return Ok(Some((stats, failed)));
            }
            ApplyMsg::Abort => return Ok(None),
        }
    }
    Ok(None)
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

    #[test]
    fn backoff_is_bounded_and_grows() {
        let i = Duration::from_secs(300);
        let b1 = backoff(1, i);
        assert!(b1 >= Duration::from_millis(4_500) && b1 <= Duration::from_millis(5_500));
        let b3 = backoff(3, i);
        assert!(b3 >= Duration::from_secs(18) && b3 <= Duration::from_secs(22));
        for n in [10, 20, 1000, u32::MAX] {
            assert!(backoff(n, i) <= Duration::from_secs(330));
        }
    }

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

    #[test]
    fn jitter_is_ten_percent() {
        for _ in 0..1000 {
            let j = jittered(Duration::from_secs(100));
            assert!(j >= Duration::from_secs(90) && j <= Duration::from_secs(110));
        }
    }
}
