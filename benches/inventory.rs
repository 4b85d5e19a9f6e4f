//! Store apply benchmark for the inventory sources (figures, not pass/fail).
//!
//!   cargo bench --bench inventory
//!   NHI_BENCH_IDENTITIES=10000 NHI_BENCH_CREDENTIALS=30000 cargo bench --bench inventory
//!
//! Applies a synthetic inventory (default 100,000 identities and 300,000
//! credentials in one scope, as one large AWS account would send) to a fresh
//! store, then: the same inventory again (unchanged), one with 1% of the
//! credentials deactivated, with 2,000 leaks linked to access keys; the KPI
//! recompute; and peak RSS.

use nhi_exporter::config::{LabelsConfig, Policy};
use nhi_exporter::kpi;
use nhi_exporter::model::{
    CredentialRef, ExposureKey, InventoryScan, Location, ObservedFinding, TargetScan, Validity,
};
use nhi_exporter::store::{PollApplier, Store};
use std::time::Instant;

mod support;
use support::{env_usize, inventory, key_id, rss_kib, T0};

fn apply_inventory(store: &Store, at: i64, inv: &InventoryScan) -> f64 {
    let t = Instant::now();
    let mut conn = store.writer();
    let mut ap = PollApplier::begin(&mut conn, "aws", at, 100).expect("begin");
    ap.inventory(inv).expect("inventory");
    ap.commit().expect("commit");
    t.elapsed().as_secs_f64()
}

fn main() {
    let n_ids = env_usize("NHI_BENCH_IDENTITIES", 100_000);
    let n_creds = env_usize("NHI_BENCH_CREDENTIALS", 300_000);
    let n_leaks = env_usize("NHI_BENCH_LEAKS", 2_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = support::open_store(dir.path(), "bench_inventory");
    println!("inventory: {n_ids} identities, {n_creds} credentials, {n_leaks} linked leaks");

    let inv = inventory(n_ids, n_creds, 0, T0);
    println!(
        "first apply          {:>8.2} s",
        apply_inventory(&store, T0, &inv)
    );
    let inv = inventory(n_ids, n_creds, 0, T0 + 300);
    println!(
        "unchanged re-apply   {:>8.2} s",
        apply_inventory(&store, T0 + 300, &inv)
    );

    // Leaks of access key ids, through the scanner path.
    let findings = (0..n_leaks)
        .map(|i| ObservedFinding {
            scanner_id: format!("leak-{i}"),
            secret_type: "aws-access-token".into(),
            exposure: ExposureKey::Secret({
                // A distinct fake secret HMAC per leak.
                let mut h = [7u8; 32];
                h[..8].copy_from_slice(&(i as u64).to_le_bytes());
                h
            }),
            location: Location::default(),
            detected_at: Some(T0 + 400),
            committed_at: None,
            closed: None,
            validity: Validity::Unknown,
            validity_at: None,
            links: vec![CredentialRef {
                provider: "aws",
                id: key_id(i * 3 % n_creds.max(1)),
            }],
        })
        .collect();
    {
        let mut conn = store.writer();
        let mut ap = PollApplier::begin(&mut conn, "gitleaks", T0 + 400, 100).expect("begin");
        ap.target(&TargetScan {
            target: "report.json".into(),
            fingerprint: "1".into(),
            scanned_at: T0 + 400,
            findings,
        })
        .expect("target");
        ap.commit().expect("commit");
    }
    // 1% of the credentials deactivated: some of them leaked keys.
    let inv = inventory(n_ids, n_creds, 100, T0 + 3_600);
    println!(
        "1% deactivated       {:>8.2} s",
        apply_inventory(&store, T0 + 3_600, &inv)
    );

    let labels = LabelsConfig {
        team_enabled: true,
        team_max_values: 50,
        scope_enabled: false,
        scope_max_values: 1000,
    };
    let t = Instant::now();
    let snap = kpi::compute_with(
        &store.reader().expect("reader"),
        &Policy::default(),
        &labels,
        None,
        T0 + 3_600,
    )
    .expect("compute");
    println!("KPI recompute        {:>8.2} s", t.elapsed().as_secs_f64());
    let revoked: f64 = snap
        .counters
        .iter()
        .filter(|(n, _, _)| n == "nhi_exposures_revoked_total")
        .map(|c| c.2)
        .sum();
    println!(
        "exposures revoked: {revoked}; identity series: {}; credential series: {}",
        snap.inventory.identities.len(),
        snap.inventory.credentials.len()
    );
    println!("peak RSS             {:>8} MiB", rss_kib("VmHWM:") / 1024);
    // The store and its write-ahead log (not checkpointed here), or the
    // PostgreSQL database.
    let size: u64 = if support::postgres() {
        support::pg_size(&store)
    } else {
        ["state.db", "state.db-wal"]
            .iter()
            .filter_map(|f| std::fs::metadata(dir.path().join(f)).ok())
            .map(|m| m.len())
            .sum()
    };
    println!("store + WAL          {:>8} MiB", size / (1024 * 1024));
}
