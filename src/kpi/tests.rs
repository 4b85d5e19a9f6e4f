use super::*;
use crate::config::{Privileged, Window};
use crate::model::{Resolution, Validity};
use crate::store::tests::{apply, finding, scan};
use crate::store::Store;
use std::time::Duration;

const DAY: i64 = 86_400;
const T0: i64 = 1_790_000_000;

pub(crate) fn policy(windows: &[i64]) -> Policy {
    Policy {
        max_credential_age: Duration::from_secs(90 * DAY as u64),
        unused_after: Duration::from_secs(90 * DAY as u64),
        stale_after: None,
        team_tag: "team".into(),
        windows: windows
            .iter()
            .map(|d| Window {
                duration: Duration::from_secs(*d as u64),
                label: crate::config::format_duration(Duration::from_secs(*d as u64)),
            })
            .collect(),
        max_secret_types: 100,
        privileged: Privileged {
            aws_policies: vec![],
            vault_policies: vec![],
            kubernetes_roles: vec![],
            gcp_roles: vec![],
            azure_directory_roles: vec![],
            azure_rbac_roles: vec![],
        },
    }
}

/// Apply a poll and record history, as the daemon does.
fn poll(store: &Store, p: &Policy, now: i64, scans: &[crate::model::TargetScan]) -> Snapshot {
    apply(store, "gl", now, scans);
    let s = compute(&store.reader().unwrap(), p, now).unwrap();
    record_history(&mut store.writer(), &s, p).unwrap();
    s
}

pub(super) fn win<'a>(s: &'a Snapshot, label: &str) -> &'a WindowKpis {
    s.windows.iter().find(|w| w.label == label).unwrap()
}

#[test]
fn exposure_gauges_and_windows_with_an_injected_clock() {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::store::testing::open(&dir.path().join("s.db"), "k").unwrap();
    let p = policy(&[DAY, 7 * DAY]);

    // Day 0: three secrets, one of them twice.
    let s0 = poll(
        &store,
        &p,
        T0,
        &[
            scan(
                "t1",
                T0,
                vec![finding("a", 1), finding("b", 2), finding("c", 3)],
            ),
            scan("t2", T0, vec![finding("a2", 1)]),
        ],
    );
    assert_eq!(s0.exposed_secrets["unknown"], 3);
    assert_eq!(s0.exposed_total(), 3);
    assert_eq!(
        s0.findings_open[&("gl".into(), "generic_api_key".into(), "unknown".into())],
        4
    );
    assert_eq!(win(&s0, "1d").secrets_in_code_delta, 0.0);
    assert_eq!(win(&s0, "1d").start, T0); // young history: window starts at the first poll
                                          // exposure = 1 / (1 + 3 open unknown / 10).
    assert_eq!(s0.posture["exposure"], 1.0 / 1.3);
    assert_eq!(s0.posture["overall"], 1.0 / 1.3);

    // Day 1: b removed from t1.
    let s1 = poll(
        &store,
        &p,
        T0 + DAY,
        &[scan("t1", T0 + DAY, vec![finding("a", 1), finding("c", 3)])],
    );
    assert_eq!(s1.exposed_total(), 2);
    assert_eq!(s1.oldest_open_age["unknown"], DAY as f64);

    // Day 3: c removed as well.
    let s3 = poll(
        &store,
        &p,
        T0 + 3 * DAY,
        &[scan("t1", T0 + 3 * DAY, vec![finding("a", 1)])],
    );
    assert_eq!(s3.exposed_total(), 1);
    // 1d window: starts at day 2 (value 2 then) → delta -1.
    let w1 = win(&s3, "1d");
    assert_eq!(w1.start, T0 + 2 * DAY);
    assert_eq!(w1.secrets_in_code_delta, -1.0);
    // closure: closed in [day2, day3] = 1 (c); open at day2 = a, a2, c = 3; detected in it = 0.
    assert_eq!(w1.closure_ratio, Some(1.0 / 3.0));
    // 7d window reaches back before the history: computed over the history there is.
    let w7 = win(&s3, "7d");
    assert_eq!(w7.start, T0);
    assert_eq!(w7.secrets_in_code_delta, -2.0);
    // closed in window 2 (b, c) / (open at start 0 + detected 4).
    assert_eq!(w7.closure_ratio, Some(0.5));
    // No revocation was confirmed: the outcome twin stays at 0.
    assert_eq!(w7.exposure_reduction_ratio, Some(0.0));
    assert_eq!(w7.time_to_revoke_median, None);
    // exposure posture: 1 open unknown → 1 / 1.1.
    assert!((s3.posture["exposure"] - 1.0 / 1.1).abs() < 1e-9);
    let change = w7
        .posture_change
        .iter()
        .find(|(d, _)| d == "exposure")
        .unwrap()
        .1;
    assert!((change - (1.0 / 1.1 - 1.0 / 1.3)).abs() < 1e-9);
}

#[test]
fn revocations_feed_the_reduction_ratio_and_exact_median() {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::store::testing::open(&dir.path().join("s.db"), "k").unwrap();
    let p = policy(&[30 * DAY]);
    let live = |id: &str, k: u8, v: Validity| {
        let mut f = finding(id, k);
        f.validity = v;
        f
    };
    poll(
        &store,
        &p,
        T0,
        &[scan(
            "t",
            T0,
            vec![
                live("a", 1, Validity::Live),
                live("b", 2, Validity::Live),
                live("c", 3, Validity::Live),
                live("d", 4, Validity::Live),
            ],
        )],
    );
    // a revoked after 1h, b after 3h, c after 4h; d stays live.
    poll(
        &store,
        &p,
        T0 + 3600,
        &[scan(
            "t",
            T0 + 3600,
            vec![
                live("a", 1, Validity::Inactive),
                live("b", 2, Validity::Live),
                live("c", 3, Validity::Live),
                live("d", 4, Validity::Live),
            ],
        )],
    );
    poll(
        &store,
        &p,
        T0 + 3 * 3600,
        &[scan(
            "t",
            T0 + 3 * 3600,
            vec![
                live("a", 1, Validity::Inactive),
                live("b", 2, Validity::Inactive),
                live("c", 3, Validity::Live),
                live("d", 4, Validity::Live),
            ],
        )],
    );
    let s = poll(
        &store,
        &p,
        T0 + 4 * 3600,
        &[scan(
            "t",
            T0 + 4 * 3600,
            vec![
                live("a", 1, Validity::Inactive),
                live("b", 2, Validity::Inactive),
                live("c", 3, Validity::Inactive),
                live("d", 4, Validity::Live),
            ],
        )],
    );
    let w = win(&s, "30d");
    assert_eq!(w.exposure_reduction_ratio, Some(0.75));
    assert_eq!(w.time_to_revoke_median, Some(3.0 * 3600.0));
    assert_eq!(s.exposed_secrets["inactive"], 3);
    assert_eq!(s.exposed_secrets["live"], 1);
    // exposure posture counts open live or unknown only: d.
    assert!((s.posture["exposure"] - 1.0 / 1.1).abs() < 1e-9);
    // c was revoked at this poll.
    assert_eq!(s.revocation_idle, Some(0.0));
    assert_eq!(s.residual_oldest_age, None);
    // Closing the live one leaves a residual exposure.
    let mut closed = live("d", 4, Validity::Live);
    closed.closed = Some((Resolution::FalsePositive, None));
    let s = poll(
        &store,
        &p,
        T0 + 5 * 3600,
        &[scan("t", T0 + 5 * 3600, vec![closed])],
    );
    assert_eq!(s.residual_exposures, 1);
    // Residual since its finding closed, at this poll.
    assert_eq!(s.residual_oldest_age, Some(0.0));
    assert_eq!(s.revocation_idle, Some(3600.0));
    let later = compute(&store.reader().unwrap(), &p, T0 + 30 * 3600).unwrap();
    assert_eq!(later.residual_oldest_age, Some(25.0 * 3600.0));
    let (_, labels, h) = s
        .histograms
        .iter()
        .find(|(n, _, _)| n == "nhi_time_to_revoke_seconds")
        .unwrap();
    assert_eq!(
        labels,
        &vec![("confirmed_by".to_string(), "validity_check".to_string())]
    );
    assert_eq!(h.count, 3);
    assert_eq!(h.sum, 8.0 * 3600.0);
}

#[test]
fn empty_store_has_defined_values() {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::store::testing::open(&dir.path().join("s.db"), "k").unwrap();
    let s = compute(&store.reader().unwrap(), &policy(&[7 * DAY]), T0).unwrap();
    assert_eq!(s.exposed_total(), 0);
    assert_eq!(s.posture["exposure"], 1.0);
    assert_eq!(s.first_success, None);
    assert_eq!(s.revocation_idle, None);
    assert_eq!(s.residual_oldest_age, None);
    let w = &s.windows[0];
    assert_eq!(w.previous, None);
    assert_eq!(w.closure_ratio, None);
    assert_eq!(w.exposure_reduction_ratio, None);
    assert_eq!(w.secrets_in_code_delta, 0.0);
}

/// A v2 store's bucketed histograms and metric-named counters migrate to
/// events: every v2 bucket count, the exact sum and the counters are kept.
#[test]
fn v2_histograms_and_counters_migrate_to_events() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        for (sql, _) in &crate::store::schema_migrations()[..2] {
            conn.execute_batch(sql).unwrap();
        }
        conn.execute_batch(
            "PRAGMA user_version = 2;
             INSERT INTO meta(key, value) VALUES ('hash_key_id', 'k');
             INSERT INTO counters VALUES ('nhi_findings_closed_total', 'resolution=revoked\x1fsource=gl', 3);
             INSERT INTO counters VALUES ('nhi_exposures_revoked_total', 'confirmed_by=aws', 2);
             INSERT INTO histograms VALUES ('nhi_time_to_close_seconds', 'source=gl',
                 '[1,0,2,0,0,0,0,0,0,0,0]', 7300.5, 4);
             INSERT INTO histograms VALUES ('nhi_time_to_revoke_seconds', 'confirmed_by=aws',
                 '[0,0,0,0,0,1,0,0,0,0,1]', 7800000, 2);",
        )
        .unwrap();
    }
    let store = Store::open(&path, "k").unwrap();
    let snap = compute(&store.reader().unwrap(), &Policy::default(), 10_000).unwrap();
    let counter = |name: &str| -> f64 {
        snap.counters
            .iter()
            .filter(|(n, _, _)| n == name)
            .map(|(_, _, v)| v)
            .sum()
    };
    assert_eq!(counter("nhi_findings_closed_total"), 3.0);
    assert_eq!(counter("nhi_exposures_revoked_total"), 2.0);
    let hist = |name: &str| {
        snap.histograms
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, _, h)| h.clone())
            .unwrap()
    };
    // One of the four closures was past the last bucket (overflow).
    let close = hist("nhi_time_to_close_seconds");
    assert_eq!(close.buckets, vec![1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!((close.sum, close.count), (7300.5, 4));
    let revoke = hist("nhi_time_to_revoke_seconds");
    assert_eq!(revoke.buckets, vec![0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]);
    assert_eq!((revoke.sum, revoke.count), (7800000.0, 2));
    // The v2 table is gone; the store is at the current version.
    let r = store.reader().unwrap();
    let tables: i64 = r
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE name = 'histograms'",
            [],
            |x| x.get(0),
        )
        .unwrap();
    assert_eq!(tables, 0);
}

/// The exposure dimension moves with every leak and every clean-up; a
/// share of the exposures seen stayed at 0 through a burst.
#[test]
fn exposure_posture_moves_on_a_leak_burst_and_a_clean_up() {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::store::testing::open(&dir.path().join("s.db"), "k").unwrap();
    let p = policy(&[7 * DAY]);
    let burst = |n: u8| -> Vec<crate::model::ObservedFinding> {
        (1..=n).map(|k| finding(&format!("f{k}"), k)).collect()
    };
    let s = poll(&store, &p, T0, &[scan("t", T0, burst(2))]);
    assert_eq!(s.posture["exposure"], 1.0 / 1.2);
    // Twelve more leak: the score falls from 0.833 to 0.417.
    let s = poll(&store, &p, T0 + DAY, &[scan("t", T0 + DAY, burst(14))]);
    assert_eq!(s.exposed_secrets["unknown"], 14);
    assert_eq!(s.posture["exposure"], 1.0 / 2.4);
    let change = |s: &Snapshot| {
        win(s, "7d")
            .posture_change
            .iter()
            .find(|(d, _)| d == "exposure")
            .unwrap()
            .1
    };
    assert!((change(&s) - (1.0 / 2.4 - 1.0 / 1.2)).abs() < 1e-12);
    // Clean-up: every finding gone from the target's newer scan.
    let s = poll(&store, &p, T0 + 2 * DAY, &[scan("t", T0 + 2 * DAY, vec![])]);
    assert_eq!(s.exposed_total(), 0);
    assert_eq!(s.posture["exposure"], 1.0);
    assert!((change(&s) - (1.0 - 1.0 / 1.2)).abs() < 1e-12);
    assert_eq!(exposure_score(10), 0.5);
}

/// The previous window's ratios and median come from the store, once its
/// history covers the whole previous window.
#[test]
fn previous_window_values_once_the_history_covers_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::store::testing::open(&dir.path().join("s.db"), "k").unwrap();
    let p = policy(&[7 * DAY]);
    let with = |id: &str, k: u8, v: Validity| {
        let mut f = finding(id, k);
        f.validity = v;
        f
    };
    // Day 0: a and b live. Day 1: a revoked (1d). Day 9: b revoked (9d),
    // c leaks live. Day 15: c revoked (6d).
    poll(
        &store,
        &p,
        T0,
        &[scan(
            "t",
            T0,
            vec![with("a", 1, Validity::Live), with("b", 2, Validity::Live)],
        )],
    );
    let s = poll(
        &store,
        &p,
        T0 + DAY,
        &[scan(
            "t",
            T0 + DAY,
            vec![
                with("a", 1, Validity::Inactive),
                with("b", 2, Validity::Live),
            ],
        )],
    );
    assert_eq!(win(&s, "7d").previous, None); // one day of history
    let s = poll(
        &store,
        &p,
        T0 + 9 * DAY,
        &[scan(
            "t",
            T0 + 9 * DAY,
            vec![
                with("a", 1, Validity::Inactive),
                with("b", 2, Validity::Inactive),
                with("c", 3, Validity::Live),
            ],
        )],
    );
    assert_eq!(win(&s, "7d").previous, None); // 9 days < two windows
    let s = poll(
        &store,
        &p,
        T0 + 15 * DAY,
        &[scan(
            "t",
            T0 + 15 * DAY,
            vec![
                with("a", 1, Validity::Inactive),
                with("b", 2, Validity::Inactive),
                with("c", 3, Validity::Inactive),
            ],
        )],
    );
    let w = win(&s, "7d");
    // Current window [day 8, day 15]: b (9d) and c (6d) revoked.
    assert_eq!(w.time_to_revoke_median, Some(7.5 * DAY as f64));
    // Previous window [day 1, day 8]: a revoked at day 1 after 1d; b open
    // at its start, so 1 revoked of (b open + a open at day 1 + 0 opened).
    let prev = w.previous.as_ref().unwrap();
    assert_eq!(prev.time_to_revoke_median, Some(DAY as f64));
    assert_eq!(prev.exposure_reduction_ratio, Some(0.5));
    assert_eq!(prev.closure_ratio, Some(0.0));
    assert_eq!(s.revocation_idle, Some(0.0));
}

/// Standing privilege change per source comes from the store's history, so
/// it survives restarts; a source added later reads 0 at first.
#[test]
fn standing_privilege_change_per_source_and_window() {
    use crate::model::{InventoryScan, ObservedIdentity};
    use crate::store::PollApplier;
    let dir = tempfile::tempdir().unwrap();
    let store = crate::store::testing::open(&dir.path().join("s.db"), "k").unwrap();
    let p = policy(&[7 * DAY]);
    let ident = |id: &str, admin: bool| ObservedIdentity {
        provider: "aws",
        account: "123456789012".into(),
        kind: "role",
        id: id.into(),
        name: id.into(),
        created_at: Some(T0 - 400 * DAY),
        last_used_at: Some(T0),
        usage_tracked: true,
        team: None,
        privileged: admin.then(|| "AdministratorAccess".to_string()),
        standing: admin,
        human: false,
    };
    let inv = |source: &str, at: i64, ids: Vec<ObservedIdentity>| {
        {
            let mut conn = store.writer();
            let mut ap = PollApplier::begin(&mut conn, source, at, 100).unwrap();
            ap.inventory(&InventoryScan {
                scope: "iam".into(),
                observed_at: at,
                identities: ids,
                credentials: vec![],
            })
            .unwrap();
            ap.commit().unwrap();
        }
        let s = compute(&store.reader().unwrap(), &p, at).unwrap();
        record_history(&mut store.writer(), &s, &p).unwrap();
        s
    };
    let change = |s: &Snapshot, source: &str| {
        win(s, "7d")
            .standing_privileged_change
            .iter()
            .find(|(src, _)| src == source)
            .map(|c| c.1)
    };
    let s = inv("aws", T0, vec![ident("r1", true), ident("r2", false)]);
    assert_eq!(change(&s, "aws"), Some(0.0));
    // Three days later two more roles are admins; a new source appears
    // with one admin role: it has no history before its first poll.
    inv(
        "aws",
        T0 + 3 * DAY,
        vec![ident("r1", true), ident("r2", true), ident("r3", true)],
    );
    let s = inv("aws2", T0 + 3 * DAY, vec![ident("x", true)]);
    assert_eq!(change(&s, "aws"), Some(2.0));
    assert_eq!(change(&s, "aws2"), Some(0.0));
    // Day 9: the 7d window starts at day 2 (1 admin then in aws).
    let s = inv(
        "aws",
        T0 + 9 * DAY,
        vec![ident("r1", true), ident("r2", true), ident("r3", false)],
    );
    assert_eq!(change(&s, "aws"), Some(1.0));
    assert_eq!(change(&s, "aws2"), Some(0.0));
}

/// The collector renders the new families with their labels and exact
/// values, and drops a stale source's standing privilege change.
#[test]
fn collector_renders_previous_windows_ages_and_standing_change() {
    use super::collector::{KpiCollector, KpiView};
    use std::sync::Arc;
    let mut snap = Snapshot {
        residual_oldest_age: Some(7200.0),
        revocation_idle: Some(86_400.0),
        first_success: Some(T0),
        history_start: Some(T0),
        ..Default::default()
    };
    snap.windows.push(WindowKpis {
        label: "7d".into(),
        start: T0,
        secrets_in_code_delta: 0.0,
        closure_ratio: Some(0.5),
        exposure_reduction_ratio: Some(0.25),
        time_to_revoke_median: Some(7200.0),
        posture_change: vec![],
        previous: Some(PreviousWindow {
            closure_ratio: Some(0.75),
            exposure_reduction_ratio: None,
            time_to_revoke_median: Some(3600.0),
        }),
        standing_privileged_change: vec![("aws".into(), 2.0), ("old".into(), 5.0)],
    });
    let view = KpiView {
        snapshot: Arc::new(snap),
        sources: vec![("aws".into(), "aws".into()), ("old".into(), "aws".into())],
        stale: ["old".to_string()].into_iter().collect(),
        now: T0 + DAY,
        ..Default::default()
    };
    let fams = KpiCollector::families(&view);
    let values = |name: &str| -> Vec<(Vec<(String, String)>, f64)> {
        fams.iter()
            .filter(|f| f.name() == name)
            .flat_map(|f| f.get_metric().iter())
            .map(|m| {
                let l = m
                    .get_label()
                    .iter()
                    .map(|p| (p.name().to_string(), p.value().to_string()))
                    .collect();
                (l, m.get_gauge().get_value())
            })
            .collect()
    };
    let w = |v: &str| vec![("window".to_string(), v.to_string())];
    assert_eq!(
        values("nhi_residual_exposure_oldest_age_seconds"),
        vec![(vec![], 7200.0)]
    );
    assert_eq!(
        values("nhi_exposure_revocation_idle_seconds"),
        vec![(vec![], 86_400.0)]
    );
    assert_eq!(values("nhi_closure_ratio_previous"), vec![(w("7d"), 0.75)]);
    // No previous reduction ratio (nothing to divide by): omitted, not 0.
    assert_eq!(values("nhi_exposure_reduction_ratio_previous"), vec![]);
    assert_eq!(
        values("nhi_time_to_revoke_median_previous_seconds"),
        vec![(w("7d"), 3600.0)]
    );
    assert_eq!(
        values("nhi_standing_privileged_identities_change"),
        vec![(
            vec![
                ("source".to_string(), "aws".to_string()),
                ("window".to_string(), "7d".to_string())
            ],
            2.0
        )]
    );
    assert_eq!(
        values("nhi_store_history_seconds"),
        vec![(vec![], DAY as f64)]
    );
}
