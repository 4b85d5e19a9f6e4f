//! Helpers shared by the benchmarks.
#![allow(dead_code)]

/// An environment override of a size, e.g. `NHI_BENCH_FINDINGS=100000`.
pub fn env_usize(k: &str, d: usize) -> usize {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

/// A `/proc/self/status` memory field in KiB (`VmHWM:` is peak RSS).
pub fn rss_kib(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

use nhi_exporter::config::Policy;
use nhi_exporter::hashing::SecretHasher;
use nhi_exporter::model::{KnownCredential, ObservationItem};
use nhi_exporter::sources::{ObservationSender, PollContext, Source};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What one poll of an inventory source sent.
pub struct Polled {
    /// Its credentials as the next poll would know them.
    pub known: Vec<KnownCredential>,
    pub scopes: usize,
    pub identities: usize,
    pub credentials: usize,
}

/// Poll an inventory source once, as the pipeline would with a store that
/// knows `known`, and count what it sent. Any item other than complete
/// scopes and the scope set is a bench failure.
pub async fn poll_inventory(
    src: &dyn Source,
    name: &str,
    budget: Duration,
    known: Vec<KnownCredential>,
) -> Polled {
    let ctx = PollContext {
        source: name.to_string(),
        hasher: Arc::new(SecretHasher::new([3; 32])),
        known_targets: Default::default(),
        now: 1_800_000_000,
        deadline: Instant::now() + budget,
        policy: Arc::new(Policy::default()),
        known_credentials: known,
        linked_credentials: Default::default(),
    };
    let (tx, mut rx) = ObservationSender::channel(64);
    let collector = tokio::spawn(async move {
        let mut items = Vec::new();
        while let Some(i) = rx.recv().await {
            items.push(i);
        }
        items
    });
    src.poll(ctx, tx).await.expect("poll");
    let items = collector.await.expect("collector");
    let mut out = Polled {
        known: Vec::new(),
        scopes: 0,
        identities: 0,
        credentials: 0,
    };
    for i in &items {
        let s = match i {
            ObservationItem::Inventory(s) => s,
            ObservationItem::InventoryScopes(_) => continue,
            other => panic!("unexpected item: {other:?}"),
        };
        out.scopes += 1;
        out.identities += s.identities.len();
        out.credentials += s.credentials.len();
        out.known.extend(s.known_credentials());
    }
    out
}
