//! Sources: each polls one upstream (report files, an API) and sends
//! normalised observations ([`crate::model`]). Sources never touch
//! Prometheus or the store; the poll pipeline ([`crate::poll`]) applies
//! what they send. One folder per source type, behind the [`Source`] trait
//! and the one [`registry`].

pub mod aws;
pub mod azure;
pub mod gcp;
pub mod github;
pub mod gitlab;
pub mod http;
pub mod kubernetes;
pub mod registry;
pub mod reports;
pub mod vault;

use crate::hashing::SecretHasher;
use crate::model::{ErrorReason, KnownCredential, ObservationItem, SourceError};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use tokio::sync::mpsc;

/// The sending side handed to a source's poll. What it sends is applied
/// to the store in one transaction, and only when the whole poll succeeds.
#[derive(Clone)]
pub struct ObservationSender {
    tx: mpsc::Sender<ObservationItem>,
}

/// The poll's receiver went away (poll cancelled or failed): stop producing.
#[derive(Debug, Clone, Copy)]
pub struct Cancelled;

impl ObservationSender {
    pub fn new(tx: mpsc::Sender<ObservationItem>) -> Self {
        Self { tx }
    }
    /// A sender and the receiving end of a channel of `capacity` items.
    pub fn channel(capacity: usize) -> (Self, mpsc::Receiver<ObservationItem>) {
        let (tx, rx) = mpsc::channel(capacity);
        (Self { tx }, rx)
    }
    /// Send from a blocking thread (file parsing runs in `spawn_blocking`).
    pub fn send_blocking(&self, item: ObservationItem) -> Result<(), Cancelled> {
        self.tx.blocking_send(item).map_err(|_| Cancelled)
    }
    pub async fn send(&self, item: ObservationItem) -> Result<(), Cancelled> {
        self.tx.send(item).await.map_err(|_| Cancelled)
    }
}

/// What a source gets for one poll.
pub struct PollContext {
    pub source: String,
    pub hasher: Arc<SecretHasher>,
    /// Fingerprints of the targets as last applied, to skip unchanged inputs.
    pub known_targets: HashMap<String, String>,
    pub now: i64,
    /// When the poll's timeout runs out: API sources fit their retries in it.
    pub deadline: std::time::Instant,
    /// The policy in force (privileged policies, `team_tag`).
    pub policy: Arc<crate::config::Policy>,
    /// This source's credentials as the store holds them (not deleted), so
    /// an inventory can reuse what it already knows instead of asking the
    /// upstream again (AWS access key ids per user).
    pub known_credentials: Vec<KnownCredential>,
    /// Ids of credentials linked to a leak that is not yet confirmed
    /// revoked: their state is worth a fresh look every poll.
    pub linked_credentials: HashSet<String>,
}

/// A source's one poll, as a boxed future (the trait is object-safe).
pub type PollFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), SourceError>> + Send + 'a>>;

/// How the poll pipeline reads a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetch {
    /// The poll talks to a network upstream: everything it sends is
    /// collected first and applied in one short transaction once the poll
    /// has succeeded, so the store is never held while an upstream answers.
    Collect,
    /// The poll reads local report files, whose findings can outgrow memory
    /// (a million findings): items are applied while the poll still reads.
    Stream,
}

/// A configured source of one type, ready to poll. Built once per
/// configuration (see [`registry`]); a reload builds a new one.
pub trait Source: Send + Sync + 'static {
    /// Poll once, sending observations as they are produced. Never touches
    /// the store or Prometheus.
    fn poll<'a>(&'a self, ctx: PollContext, out: ObservationSender) -> PollFuture<'a>;

    /// How the pipeline reads this source.
    fn fetch(&self) -> Fetch {
        Fetch::Collect
    }
}

/// Run `f` over `items`, at most `limit` at a time, keeping their order.
/// The first failure stops the others and is returned: a scope whose
/// lookups fail is failed as a whole. The one bounded-concurrency helper
/// of the API sources.
pub async fn bounded<I, T, F, Fut>(limit: usize, items: Vec<I>, f: F) -> Result<Vec<T>, SourceError>
where
    I: Send + 'static,
    T: Send + 'static,
    F: Fn(I) -> Fut,
    Fut: std::future::Future<Output = Result<T, SourceError>> + Send + 'static,
{
    let n = items.len();
    let mut results: Vec<Option<T>> = (0..n).map(|_| None).collect();
    // Dropping the set (on an early return) aborts what still runs.
    let mut set = tokio::task::JoinSet::new();
    let mut it = items.into_iter().enumerate();
    loop {
        while set.len() < limit.max(1) {
            let Some((i, item)) = it.next() else { break };
            let fut = f(item);
            set.spawn(async move { (i, fut.await) });
        }
        let Some(done) = set.join_next().await else {
            break;
        };
        let (i, r) = done
            .map_err(|e| SourceError::new(ErrorReason::Io, format!("lookup task failed: {e}")))?;
        results[i] = Some(r?);
    }
    results
        .into_iter()
        .map(|r| r.ok_or_else(|| SourceError::new(ErrorReason::Io, "lost task result")))
        .collect()
}

/// An RFC 3339 time (surrounding white space ignored) as unix seconds.
pub fn rfc3339(s: &str) -> Option<i64> {
    time::OffsetDateTime::parse(s.trim(), &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bounded_keeps_order_limits_and_fails_fast() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let out = bounded(3, (0..20u64).collect(), |i| {
            let (running, peak) = (running.clone(), peak.clone());
            async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(std::time::Duration::from_millis(20 - i)).await;
                running.fetch_sub(1, Ordering::SeqCst);
                Ok(i * 2)
            }
        })
        .await
        .unwrap();
        assert_eq!(out, (0..20u64).map(|i| i * 2).collect::<Vec<_>>());
        assert_eq!(peak.load(Ordering::SeqCst), 3);
        let err = bounded(2, vec![1, 2, 3], |i| async move {
            if i == 2 {
                Err(SourceError::new(ErrorReason::Auth, "denied"))
            } else {
                Ok(i)
            }
        })
        .await
        .unwrap_err();
        assert_eq!(err.reason, ErrorReason::Auth);
    }

    #[test]
    fn rfc3339_times() {
        assert_eq!(rfc3339(" 2026-01-01T00:00:00Z "), Some(1_767_225_600));
        assert_eq!(rfc3339("2026-01-01T01:00:00+01:00"), Some(1_767_225_600));
        assert_eq!(rfc3339("yesterday"), None);
    }
}
