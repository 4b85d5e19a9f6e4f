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

// The synthetic AWS inventory of the inventory and ingest benchmarks.
use nhi_exporter::model::{CredentialState, InventoryScan, ObservedCredential, ObservedIdentity};

pub const T0: i64 = 1_750_000_000;
pub const DAY: i64 = 86_400;

pub fn key_id(i: usize) -> String {
    format!("AKIA{i:016}")
}

/// A synthetic AWS inventory of one scope: `n_ids` identities (every 50th
/// standing privileged) and `n_creds` credentials (every `inactive_every`th
/// inactive when non-zero).
pub fn inventory(n_ids: usize, n_creds: usize, inactive_every: usize, at: i64) -> InventoryScan {
    let identities = (0..n_ids)
        .map(|i| ObservedIdentity {
            provider: "aws",
            account: "123456789012".into(),
            kind: if i % 5 == 0 { "role" } else { "user" },
            id: format!("AIDA{i:017}"),
            name: format!("svc-{i}"),
            created_at: Some(T0 - (i as i64 % 700) * DAY),
            last_used_at: (i % 3 != 0).then_some(T0 - (i as i64 % 200) * DAY),
            usage_tracked: true,
            team: Some(format!("team-{}", i % 40)),
            privileged: (i % 50 == 0).then(|| "AdministratorAccess".to_string()),
            standing: i % 50 == 0,
            human: i % 20 == 1,
        })
        .collect();
    let credentials = (0..n_creds)
        .map(|i| ObservedCredential {
            provider: "aws",
            account: String::new(),
            kind: if i % 3 == 2 { "secret" } else { "access_key" },
            id: key_id(i),
            identity: Some(format!("AIDA{:017}", i % n_ids.max(1))),
            team: Some(format!("team-{}", i % 40)),
            created_at: Some(T0 - (i as i64 % 800) * DAY),
            last_rotated_at: Some(T0 - (i as i64 % 800) * DAY),
            expires_at: None,
            last_used_at: Some(T0 - (i as i64 % 30) * DAY),
            state: if inactive_every > 0 && i % inactive_every == 0 {
                CredentialState::Inactive
            } else {
                CredentialState::Active
            },
            rotation_enabled: i % 3 == 2 && i % 2 == 0,
            value_hashes: vec![],
            aliases: Vec::new(),
        })
        .collect();
    InventoryScan {
        scope: "iam".into(),
        observed_at: at,
        identities,
        credentials,
    }
}

/// The PostgreSQL server of `NHI_BENCH_BACKEND=postgres` (the tests'
/// harness: Debian's postgresql, initdb into a temporary directory).
#[path = "../../tests/common/pg.rs"]
pub mod pg;

/// `NHI_BENCH_BACKEND=postgres`: the stores of the bench are PostgreSQL
/// databases instead of SQLite files.
pub fn postgres() -> bool {
    std::env::var("NHI_BENCH_BACKEND").is_ok_and(|v| v == "postgres")
}

/// The `state` of a bench configuration in `dir`: the SQLite file
/// `state/state.db`, or a fresh PostgreSQL database `db`.
pub fn state_yaml(dir: &std::path::Path, db: &str) -> String {
    if !postgres() {
        return "{path: state/state.db}".into();
    }
    let url_file = pg::server().fresh_url_file(dir, db);
    format!(
        "{{backend: postgres, url_file: {}, hash_key_file: {}}}",
        url_file.display(),
        dir.join("hmac.key").display()
    )
}

/// A store for a bench: the SQLite file `dir/state.db`, or a fresh
/// PostgreSQL database `db`.
pub fn open_store(dir: &std::path::Path, db: &str) -> nhi_exporter::store::Store {
    if postgres() {
        nhi_exporter::store::Store::open_postgres(&pg::server().fresh_db(db), "bench")
            .expect("store")
    } else {
        nhi_exporter::store::Store::open(&dir.join("state.db"), "bench").expect("store")
    }
}

/// The size of a PostgreSQL store's database, in bytes.
pub fn pg_size(store: &nhi_exporter::store::Store) -> u64 {
    store
        .reader()
        .expect("a connection")
        .query_row("SELECT pg_database_size(current_database())", [], |r| {
            r.get::<_, i64>(0)
        })
        .expect("pg_database_size") as u64
}
