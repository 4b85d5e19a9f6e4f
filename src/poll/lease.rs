//! Replicas sharing a PostgreSQL store: each source is polled by one
//! replica at a time, the holder of its lease, and the sources spread over
//! the replicas (each takes at most its share, the number of sources over
//! the live replicas, rounded up). A lease lives `ttl` (half the source's
//! interval, 2 to 30 seconds) and is renewed every third of it, also while
//! a poll runs; when its holder dies, another replica takes it once it
//! expires, and polls when the store says the source is due (its latest
//! successful poll, by any replica, plus the interval): within one
//! interval, and never twice in one.

use crate::config::SourceConfig;
use crate::store::Store;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What [`Leases::await_turn`] found.
pub enum Turn {
    /// This replica polls the source now.
    Poll,
    /// The store cannot be reached: a failed poll (up 0, counted).
    StoreDown(String),
    Cancelled,
}

pub struct Leases {
    store: Arc<Store>,
    /// This replica: host name, process id and a random suffix.
    pub holder: String,
    sources: AtomicUsize,
}

/// How long a lease lives without renewal.
pub fn ttl(interval: Duration) -> Duration {
    (interval / 2).clamp(Duration::from_secs(2), Duration::from_secs(30))
}

fn lease_name(source: &str) -> String {
    format!("source:{source}")
}

impl Leases {
    pub fn new(store: Arc<Store>) -> Self {
        use rand::Rng;
        let host = std::env::var("HOSTNAME")
            .ok()
            .filter(|h| !h.is_empty())
            .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|| "replica".into());
        let suffix: u32 = rand::thread_rng().gen();
        Leases {
            store,
            holder: format!("{host}:{}:{suffix:08x}", std::process::id()),
            sources: AtomicUsize::new(1),
        }
    }

    /// The number of enabled sources (this replica's configuration).
    pub fn set_sources(&self, n: usize) {
        self.sources.store(n.max(1), Ordering::Relaxed);
    }

    /// Whether this replica holds the source's lease now: renewed if held
    /// (or released when this replica holds more than its share), taken if
    /// free and this replica holds less than its share.
    async fn hold(&self, cfg: &SourceConfig, may_take: bool) -> Result<bool, String> {
        let (store, holder, name) = (
            self.store.clone(),
            self.holder.clone(),
            lease_name(&cfg.name),
        );
        let ttl = ttl(cfg.interval).as_secs() as i64;
        let sources = self.sources.load(Ordering::Relaxed) as u64;
        let res = tokio::task::spawn_blocking(move || {
            // A replica renews every third of a lease: one not seen for a
            // whole lease is gone, and its share goes to the others.
            let seen = store.replica_heartbeat(&holder, ttl)?;
            let share = sources.div_ceil(seen.live);
            if store.hold_lease(&name, &holder, ttl, false)? {
                if may_take && seen.held > share {
                    // Rebalance: another replica (below its share) takes it.
                    store.release_lease(&name, &holder)?;
                    return Ok(false);
                }
                return Ok(true);
            }
            if may_take && seen.held < share {
                return store.hold_lease(&name, &holder, ttl, true);
            }
            Ok(false)
        })
        .await;
        match res {
            Ok(Ok(held)) => Ok(held),
            Ok(Err(e)) => {
                tracing::warn!(source = %cfg.name, error = %e, "cannot read or renew the source's lease");
                Err(e.to_string())
            }
            Err(_) => Ok(false),
        }
    }

    /// Wait until this replica holds the source's lease and the source is
    /// due.
    pub async fn await_turn(&self, cfg: &SourceConfig, cancel: &CancellationToken) -> Turn {
        let beat = ttl(cfg.interval) / 3;
        loop {
            let mut wait = beat;
            let held = match self.hold(cfg, true).await {
                Ok(held) => held,
                // The store is unreachable: no replica can apply a poll.
                Err(e) => return Turn::StoreDown(e),
            };
            if held {
                let (store, name) = (self.store.clone(), cfg.name.clone());
                let last = tokio::task::spawn_blocking(move || store.last_success(&name)).await;
                let now = crate::model::unix_now();
                match last {
                    Ok(Ok(last)) => {
                        let due = last.map_or(now, |t| t + cfg.interval.as_secs() as i64);
                        if now >= due {
                            return Turn::Poll;
                        }
                        wait = wait.min(Duration::from_secs((due - now) as u64));
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(source = %cfg.name, error = %e, "cannot read the source's latest poll");
                    }
                    Err(_) => {}
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => return Turn::Cancelled,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Renew the lease while a poll runs or the next one waits; never
    /// returns.
    pub async fn keep(&self, cfg: &SourceConfig) -> std::convert::Infallible {
        loop {
            tokio::time::sleep(ttl(cfg.interval) / 3).await;
            if !self.hold(cfg, false).await.unwrap_or(false) {
                tracing::warn!(source = %cfg.name, "lost the source's lease; another replica may poll it too (applies are idempotent)");
            }
        }
    }

    /// Record a poll's outcome in the store, so that every replica exports
    /// the source's `nhi_source_up` as its poller saw it. A failure to
    /// record is logged: the poller's own gauge is set regardless.
    pub async fn report(&self, cfg: &SourceConfig, up: bool) {
        let (store, name) = (self.store.clone(), cfg.name.clone());
        let res = tokio::task::spawn_blocking(move || store.record_source_health(&name, up)).await;
        if let Ok(Err(e)) = res {
            tracing::warn!(source = %cfg.name, error = %e, "cannot record the poll's outcome in the store");
        }
    }

    /// Give the source's lease up at a clean stop: another replica takes
    /// it at its next heartbeat instead of after the lease expires.
    pub async fn release(&self, cfg: &SourceConfig) {
        let (store, holder, name) = (
            self.store.clone(),
            self.holder.clone(),
            lease_name(&cfg.name),
        );
        let _ = tokio::task::spawn_blocking(move || store.release_lease(&name, &holder)).await;
    }
}
