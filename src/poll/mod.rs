//! The poll pipeline, above sources and the store: one supervised task per
//! source (interval with jitter, backoff, deadline), and the apply of each
//! successful poll in one transaction. It never holds the store while an
//! upstream is being read (see [`crate::sources::Fetch`]). It reports each
//! poll's outcome to its [`PollHost`] and knows nothing of HTTP or
//! Prometheus.

mod lease;
mod pipeline;

pub use lease::{Leases, Turn};
pub use pipeline::{apply_poll, poll_once, poll_once_at};

use crate::config::{Policy, SourceConfig};
use crate::hashing::SecretHasher;
use crate::model::SourceError;
use crate::sources::Source;
use crate::store::{ApplyStats, Store};
use rand::Rng;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What the pipeline needs from the daemon: the store, the hash key, the
/// policy in force, and where to report each poll.
pub trait PollHost: Send + Sync + 'static {
    fn store(&self) -> Arc<Store>;
    fn hasher(&self) -> Arc<SecretHasher>;
    fn policy(&self) -> Arc<Policy>;
    /// A poll ended (applied or not): record its health, refresh the KPIs.
    fn polled(&self, cfg: &SourceConfig, outcome: &PollOutcome);
    /// The leases of a store shared by replicas (PostgreSQL); `None` for
    /// one instance, which polls every source.
    fn leases(&self) -> Option<Arc<Leases>> {
        None
    }
}

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

/// The supervised task of one source: poll, report, wait, until cancelled.
pub async fn run(
    host: Arc<dyn PollHost>,
    cfg: SourceConfig,
    source: Arc<dyn Source>,
    cancel: CancellationToken,
) {
    tracing::info!(source = %cfg.name, source_type = cfg.type_name(), interval = ?cfg.interval, "source started");
    let leases = host.leases();
    supervise(&host, &cfg, &source, &cancel, leases.as_deref()).await;
    // A clean stop gives the source's lease up at once.
    if let Some(l) = &leases {
        l.release(&cfg).await;
    }
}

/// Poll, report, wait, until cancelled. On a shared store, only while this
/// replica holds the source's lease, renewed during the poll and the wait.
async fn supervise(
    host: &Arc<dyn PollHost>,
    cfg: &SourceConfig,
    source: &Arc<dyn Source>,
    cancel: &CancellationToken,
    leases: Option<&Leases>,
) {
    let mut failures = 0u32;
    loop {
        let out = match leases {
            None => guarded_poll(host, cfg, source, cancel).await,
            Some(l) => match l.await_turn(cfg, cancel).await {
                Turn::Cancelled => return,
                Turn::StoreDown(e) => PollOutcome {
                    errors: vec![SourceError::new(
                        crate::model::ErrorReason::Io,
                        format!("the store cannot be reached: {e}"),
                    )],
                    ..Default::default()
                },
                Turn::Poll => {
                    let out = holding(leases, cfg, guarded_poll(host, cfg, source, cancel)).await;
                    if !cancel.is_cancelled() {
                        l.report(cfg, out.ok()).await;
                    }
                    out
                }
            },
        };
        if cancel.is_cancelled() {
            return;
        }
        host.polled(cfg, &out);
        let delay = if out.applied_at.is_some() {
            failures = 0;
            jittered(cfg.interval)
        } else {
            failures += 1;
            backoff(failures, cfg.interval)
        };
        // The lease is kept between polls too (its holder polls next).
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = holding(leases, cfg, tokio::time::sleep(delay)) => {}
        }
    }
}

/// `fut`, with the source's lease (if any) renewed while it runs.
async fn holding<T>(
    leases: Option<&Leases>,
    cfg: &SourceConfig,
    fut: impl std::future::Future<Output = T>,
) -> T {
    match leases {
        None => fut.await,
        Some(l) => tokio::select! {
            out = fut => out,
            never = l.keep(cfg) => match never {},
        },
    }
}

/// One poll on a task of its own, so that a panic in a source (a bug, or
/// a library's) is a failed poll with a counted reason instead of the end
/// of the source's polling. The task is aborted if this future is dropped.
async fn guarded_poll(
    host: &Arc<dyn PollHost>,
    cfg: &SourceConfig,
    source: &Arc<dyn Source>,
    cancel: &CancellationToken,
) -> PollOutcome {
    struct AbortOnDrop(tokio::task::AbortHandle);
    impl Drop for AbortOnDrop {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    let started = std::time::Instant::now();
    let (h, c, s, x) = (host.clone(), cfg.clone(), source.clone(), cancel.clone());
    let task = tokio::spawn(async move { poll_once(h.as_ref(), &c, s.as_ref(), &x).await });
    let _guard = AbortOnDrop(task.abort_handle());
    match task.await {
        Ok(out) => out,
        Err(e) => {
            // The panic's message is not repeated: it may quote input.
            tracing::error!(source = %cfg.name, cancelled = e.is_cancelled(), "the poll panicked (a bug); it counts as a failed poll");
            PollOutcome {
                duration: started.elapsed(),
                errors: vec![SourceError::new(
                    crate::model::ErrorReason::Io,
                    "the poll panicked (a bug): see the exporter's log",
                )],
                ..Default::default()
            }
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

    #[test]
    fn jitter_is_ten_percent() {
        for _ in 0..1000 {
            let j = jittered(Duration::from_secs(100));
            assert!(j >= Duration::from_secs(90) && j <= Duration::from_secs(110));
        }
    }
}
