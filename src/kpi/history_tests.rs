//! History reconstructed from the sources' own timestamps: on the very
//! first poll of a source that dates its alerts (GitHub, GitLab), every
//! window reaches back as far as the alerts do, with exact values.

use super::history::{trend, TrendPoint};
use super::tests::{policy, win};
use super::*;
use crate::model::{Resolution, Validity};
use crate::store::tests::{apply, finding, scan};
use crate::store::Store;

const DAY: i64 = 86_400;
const NOW: i64 = 1_790_000_000;

/// An alert created `created` days ago, resolved `resolved` days ago (with
/// its resolution), whose validity statement was made `validity` days ago.
fn alert(
    id: &str,
    secret: u8,
    created: i64,
    resolved: Option<(i64, Resolution)>,
    validity: Option<(Validity, i64)>,
) -> crate::model::ObservedFinding {
    let mut f = finding(id, secret);
    f.detected_at = Some(NOW - created * DAY);
    f.closed = resolved.map(|(d, r)| (r, Some(NOW - d * DAY)));
    if let Some((v, d)) = validity {
        f.validity = v;
        f.validity_at = Some(NOW - d * DAY);
    }
    f
}

/// Ten alerts over 120 days (see the expected values below).
fn alerts() -> Vec<crate::model::ObservedFinding> {
    use Resolution::{FalsePositive, Revoked};
    use Validity::{Inactive, Live};
    vec![
        alert("A", 1, 120, None, None),
        alert("B", 2, 100, Some((95, Revoked)), Some((Inactive, 95))),
        alert("C", 3, 60, Some((50, FalsePositive)), None),
        alert("D", 4, 40, Some((20, Revoked)), Some((Inactive, 20))),
        alert("E", 5, 25, None, Some((Live, 25))),
        alert("F", 6, 10, Some((4, Revoked)), Some((Inactive, 4))),
        alert("G", 7, 5, None, None),
        alert("H", 8, 3, Some((1, Revoked)), Some((Inactive, 1))),
        alert("I", 9, 6, Some((2, FalsePositive)), None),
        alert("J", 10, 2, None, None),
    ]
}

#[test]
fn the_first_poll_of_dated_alerts_fills_every_window_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::store::testing::open(&dir.path().join("s.db"), "k").unwrap();
    let p = policy(&[7 * DAY, 30 * DAY, 90 * DAY]);
    apply(&store, "gh", NOW, &[scan("org", NOW, alerts())]);
    let s = compute(&store.reader().unwrap(), &p, NOW).unwrap();

    assert_eq!(s.first_success, Some(NOW));
    assert_eq!(s.history_start, Some(NOW - 120 * DAY));
    // Open now: A, E, G, J.
    assert_eq!(s.exposed_total(), 4);
    // Open 7 days ago: A, E, F; 30 days ago: A, D; 90 days ago: A.
    assert_eq!(win(&s, "7d").secrets_in_code_delta, 1.0);
    assert_eq!(win(&s, "30d").secrets_in_code_delta, 2.0);
    assert_eq!(win(&s, "90d").secrets_in_code_delta, 3.0);
    for w in ["7d", "30d", "90d"] {
        let len = crate::config::parse_duration(w).unwrap().as_secs() as i64;
        assert_eq!(
            win(&s, w).start,
            NOW - len,
            "{w} is not clamped to the first poll"
        );
    }
    // Closed in the window / (open at its start + detected in it).
    assert_eq!(win(&s, "7d").closure_ratio, Some(3.0 / 7.0));
    assert_eq!(win(&s, "30d").closure_ratio, Some(4.0 / 8.0));
    assert_eq!(win(&s, "90d").closure_ratio, Some(5.0 / 9.0));
    // Confirmed revoked (inactive statements) / (open unrevoked + opened):
    // lower than closure, false positives are not revocations.
    assert_eq!(win(&s, "7d").exposure_reduction_ratio, Some(2.0 / 7.0));
    assert_eq!(win(&s, "30d").exposure_reduction_ratio, Some(3.0 / 8.0));
    assert_eq!(win(&s, "90d").exposure_reduction_ratio, Some(3.0 / 9.0));
    // Time to revoke: F 6d and H 2d in 7d; D 20d as well in 30d and 90d.
    assert_eq!(win(&s, "7d").time_to_revoke_median, Some((4 * DAY) as f64));
    assert_eq!(win(&s, "30d").time_to_revoke_median, Some((6 * DAY) as f64));
    assert_eq!(win(&s, "90d").time_to_revoke_median, Some((6 * DAY) as f64));
    // The window before: covered for 7d and 30d, not for 90d (120 < 180).
    let prev = |w: &str| win(&s, w).previous.clone();
    assert_eq!(prev("30d").unwrap().closure_ratio, Some(1.0 / 3.0));
    assert_eq!(prev("30d").unwrap().exposure_reduction_ratio, Some(0.0));
    assert_eq!(prev("90d"), None);
    // Every revocation is counted once, at the alert's own time.
    let revoked: f64 = s
        .counters
        .iter()
        .filter(|(n, _, _)| n == "nhi_exposures_revoked_total")
        .map(|c| c.2)
        .sum();
    assert_eq!(revoked, 4.0);

    // The history gauge covers the reconstruction.
    use super::collector::{KpiCollector, KpiView};
    let view = KpiView {
        snapshot: std::sync::Arc::new(s),
        now: NOW,
        ..Default::default()
    };
    let history: Vec<f64> = KpiCollector::families(&view)
        .iter()
        .filter(|f| f.name() == "nhi_store_history_seconds")
        .flat_map(|f| f.get_metric().iter().map(|m| m.get_gauge().get_value()))
        .collect();
    assert_eq!(history, vec![(120 * DAY) as f64]);
}

#[test]
fn trend_points_read_the_windows_as_they_were() {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::store::testing::open(&dir.path().join("s.db"), "k").unwrap();
    let p = policy(&[7 * DAY]);
    apply(&store, "gh", NOW, &[scan("org", NOW, alerts())]);
    let s = compute(&store.reader().unwrap(), &p, NOW).unwrap();
    record_history(&mut store.writer(), &s, &p).unwrap();
    let conn = store.reader().unwrap();
    // Before the history (130 days ago): left out.
    let pts = trend(&conn, &p, &[NOW - 130 * DAY, NOW - 7 * DAY, NOW]).unwrap();
    assert_eq!(pts.len(), 2);
    let TrendPoint {
        at,
        exposed_secrets,
        windows,
    } = &pts[0];
    assert_eq!(*at, NOW - 7 * DAY);
    // Open 7 days ago: A, E, F; 14 days ago: A, E.
    assert_eq!(*exposed_secrets, 3.0);
    assert_eq!(windows[0].secrets_in_code_delta, 1.0);
    // [-14d, -7d]: nothing closed, 2 open at its start, F detected in it.
    assert_eq!(windows[0].closure_ratio, Some(0.0));
    assert_eq!(windows[0].time_to_revoke_median, None);
    // The latest point equals the snapshot's window (posture aside).
    assert_eq!(pts[1].exposed_secrets, 4.0);
    let now_w = &s.windows[0];
    assert_eq!(
        pts[1].windows[0].secrets_in_code_delta,
        now_w.secrets_in_code_delta
    );
    assert_eq!(pts[1].windows[0].closure_ratio, now_w.closure_ratio);
    assert_eq!(
        pts[1].windows[0].exposure_reduction_ratio,
        now_w.exposure_reduction_ratio
    );
    assert_eq!(
        pts[1].windows[0].time_to_revoke_median,
        now_w.time_to_revoke_median
    );
}

#[test]
fn undated_scans_keep_history_at_the_first_poll() {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::store::testing::open(&dir.path().join("s.db"), "k").unwrap();
    let p = policy(&[7 * DAY]);
    // A report scanned a day ago: its scan time is not a detection history.
    apply(
        &store,
        "gl",
        NOW,
        &[scan("r", NOW - DAY, vec![finding("a", 1)])],
    );
    let s = compute(&store.reader().unwrap(), &p, NOW).unwrap();
    assert_eq!(s.history_start, Some(NOW));
    assert_eq!(win(&s, "7d").start, NOW);
    assert_eq!(win(&s, "7d").secrets_in_code_delta, 0.0);
}

/// The OpenMetrics export holds the windows as they read at each step,
/// and the real promtool turns it into a TSDB block with those samples.
#[test]
fn openmetrics_export_of_the_reconstructed_history_loads_into_promtool() {
    use super::openmetrics::{export, ExportRange};
    let dir = tempfile::tempdir().unwrap();
    let store = crate::store::testing::open(&dir.path().join("s.db"), "k").unwrap();
    let p = policy(&[7 * DAY]);
    apply(&store, "gh", NOW, &[scan("org", NOW, alerts())]);
    let conn = store.reader().unwrap();
    let range = ExportRange {
        from: Some(NOW - 7 * DAY),
        to: NOW,
        step: 7 * DAY,
        labels: vec![("job".into(), "nhi".into())],
    };
    let mut out = Vec::new();
    assert_eq!(export(&conn, &p, &range, &mut out).unwrap(), 2);
    let text = String::from_utf8(out).unwrap();
    let samples: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    let (a, b) = (NOW - 7 * DAY, NOW);
    assert_eq!(
        samples,
        vec![
            format!("nhi_secrets_in_code_delta{{job=\"nhi\",window=\"7d\"}} 1 {a}"),
            format!("nhi_secrets_in_code_delta{{job=\"nhi\",window=\"7d\"}} 1 {b}"),
            format!("nhi_closure_ratio{{job=\"nhi\",window=\"7d\"}} 0 {a}"),
            format!(
                "nhi_closure_ratio{{job=\"nhi\",window=\"7d\"}} {} {b}",
                3.0 / 7.0
            ),
            format!("nhi_exposure_reduction_ratio{{job=\"nhi\",window=\"7d\"}} 0 {a}"),
            format!(
                "nhi_exposure_reduction_ratio{{job=\"nhi\",window=\"7d\"}} {} {b}",
                2.0 / 7.0
            ),
            format!("nhi_time_to_revoke_median_seconds{{job=\"nhi\",window=\"7d\"}} 345600 {b}"),
            format!("nhi_store_history_seconds{{job=\"nhi\"}} {} {a}", 113 * DAY),
            format!("nhi_store_history_seconds{{job=\"nhi\"}} {} {b}", 120 * DAY),
        ]
    );
    assert!(text.ends_with("# EOF\n"));
    assert!(text.contains("# TYPE nhi_closure_ratio gauge\n"));

    // The real promtool accepts it, and the block holds the samples.
    let file = dir.path().join("history.om");
    std::fs::write(&file, &text).unwrap();
    let tsdb = dir.path().join("tsdb");
    let run = |args: &[&std::ffi::OsStr]| {
        let out = std::process::Command::new("promtool")
            .args(args)
            .output()
            .expect("promtool (Debian's prometheus package; scripts/test.sh installs it)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    run(&[
        "tsdb".as_ref(),
        "create-blocks-from".as_ref(),
        "openmetrics".as_ref(),
        file.as_os_str(),
        tsdb.as_os_str(),
    ]);
    // promtool 2.42's dump opens the block directory as a TSDB: it needs a
    // (here empty) write-ahead log directory.
    std::fs::create_dir_all(tsdb.join("wal")).unwrap();
    let dump = run(&[
        "tsdb".as_ref(),
        "dump".as_ref(),
        "--match=nhi_closure_ratio".as_ref(),
        tsdb.as_os_str(),
    ]);
    let mut lines: Vec<&str> = dump.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        vec![
            format!(
                "{{__name__=\"nhi_closure_ratio\", job=\"nhi\", window=\"7d\"}} 0 {}",
                a * 1000
            ),
            format!(
                "{{__name__=\"nhi_closure_ratio\", job=\"nhi\", window=\"7d\"}} {} {}",
                3.0 / 7.0,
                b * 1000
            ),
        ]
    );
}

/// Hundreds of trend points (more ranges than one counting scan takes)
/// read exactly as the same points asked for one at a time.
#[test]
fn many_trend_points_equal_single_points() {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::store::testing::open(&dir.path().join("s.db"), "k").unwrap();
    let p = policy(&[7 * DAY, 30 * DAY]);
    apply(&store, "gh", NOW, &[scan("org", NOW, alerts())]);
    let s = compute(&store.reader().unwrap(), &p, NOW).unwrap();
    record_history(&mut store.writer(), &s, &p).unwrap();
    let conn = store.reader().unwrap();
    let times: Vec<i64> = (0..300).map(|i| NOW - 119 * DAY + i * 34_272).collect();
    let all = trend(&conn, &p, &times).unwrap();
    assert_eq!(all.len(), 300);
    for (i, t) in times.iter().enumerate().step_by(37) {
        assert_eq!(trend(&conn, &p, &[*t]).unwrap()[0], all[i], "point {i}");
    }
    // The delta moves over the 120 days: not a constant series.
    let deltas: std::collections::BTreeSet<i64> = all
        .iter()
        .map(|pt| pt.windows[1].secrets_in_code_delta as i64)
        .collect();
    assert!(deltas.len() >= 3, "{deltas:?}");
}

/// A v5 store (no time counts) migrates to v6 with counts that equal a
/// recount of its rows, and every KPI reads the same as before.
#[test]
fn v5_stores_gain_exact_time_counts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let p = policy(&[7 * DAY, 30 * DAY, 90 * DAY]);
    let before = {
        let store = Store::open(&path, "k").unwrap();
        apply(&store, "gh", NOW, &[scan("org", NOW, alerts())]);
        compute(&store.reader().unwrap(), &p, NOW).unwrap()
    };
    {
        // Back to v5: what the v6 and v7 migrations added, gone.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "DROP TABLE time_counts; DROP INDEX exposures_residual; DROP TABLE leases; DROP TABLE replicas; DROP TABLE source_health;
             PRAGMA user_version = 5;",
        )
        .unwrap();
    }
    let store = Store::open(&path, "k").unwrap();
    crate::store::tests::assert_counts_consistent(&store);
    let after = compute(&store.reader().unwrap(), &p, NOW).unwrap();
    assert_eq!(after.windows, before.windows);
    assert_eq!(after.exposed_secrets, before.exposed_secrets);
    assert_eq!(after.oldest_open_age, before.oldest_open_age);
    assert_eq!(after.residual_exposures, before.residual_exposures);
    // A later poll keeps the migrated counts exact.
    apply(
        &store,
        "gh",
        NOW + DAY,
        &[scan("org", NOW + DAY, alerts()[..5].to_vec())],
    );
}

/// The counts the windows read from `time_counts` equal the counting
/// queries over the rows they replaced, for random stores (shared secrets,
/// dated detections and closures, validity statements, disappearances over
/// several polls) and random ranges.
#[test]
fn time_counts_answer_what_the_row_scans_answered() {
    use super::history::{exposed_many, exposure_counts, finding_counts, oldest, TimeKind, Times};
    use Validity::{Inactive, Live, Unknown};
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rnd = move |n: i64| -> i64 {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((seed >> 33) % n as u64) as i64
    };
    for round in 0..4 {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::testing::open(&dir.path().join("s.db"), "k").unwrap();
        let all: Vec<crate::model::ObservedFinding> = (0..240)
            .map(|i| {
                let created = 1 + rnd(200);
                let resolved = (rnd(3) == 0).then(|| {
                    let r = if rnd(2) == 0 {
                        Resolution::Revoked
                    } else {
                        Resolution::FalsePositive
                    };
                    (rnd(created), r)
                });
                let validity = match rnd(4) {
                    0 => Some((Live, rnd(created))),
                    1 => Some((Inactive, rnd(created))),
                    _ => None,
                };
                alert(&format!("f{i}"), rnd(90) as u8, created, resolved, validity)
            })
            .collect();
        // Three polls of shrinking and changing subsets: disappearances,
        // reopenings and newer statements.
        for (k, at) in [NOW - 20 * DAY, NOW - 10 * DAY, NOW]
            .into_iter()
            .enumerate()
        {
            let mut scan_of: Vec<_> = all
                .iter()
                .filter(|_| rnd(5) != 0 || k == 0)
                .cloned()
                .collect();
            for f in scan_of.iter_mut() {
                if rnd(6) == 0 {
                    f.validity = if rnd(2) == 0 { Live } else { Inactive };
                    f.validity_at = Some(at - rnd(DAY));
                }
            }
            apply(&store, "gh", at, &[scan("org", at, scan_of)]);
        }
        let conn = store.reader().unwrap();
        // Half the rows are before `from`: summed, not read.
        let from = NOW - 100 * DAY;
        let times = Times::load(&conn, from).unwrap();
        let count = |sql: &str, s: i64, e: i64| -> i64 {
            conn.query_row(sql, crate::store::db::params![s, e], |r| r.get(0))
                .unwrap()
        };
        // Range ends on the stored times too: the edges (< or <=) matter.
        let at: Vec<i64> = conn
            .prepare("SELECT DISTINCT t FROM time_counts ORDER BY t")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        for i in 0..120 {
            let mut pick = |lo: i64| -> i64 {
                let on: Vec<i64> = at.iter().copied().filter(|t| *t >= lo).collect();
                if i % 2 == 0 && !on.is_empty() {
                    on[rnd(on.len() as i64) as usize]
                } else {
                    lo + rnd(NOW + DAY - lo)
                }
            };
            let s = pick(from);
            let e = pick(s);
            let f = "SELECT COUNT(*) FROM findings WHERE ";
            let x = "SELECT COUNT(*) FROM exposures WHERE ";
            assert_eq!(
                finding_counts(&times, (s, e)),
                [
                    count(
                        &format!("{f}detected_at < ?1 AND CAST(?2 AS BIGINT) IS NOT NULL"),
                        s,
                        e
                    ),
                    count(&format!("{f}detected_at >= ?1 AND detected_at <= ?2"), s, e),
                    count(&format!("{f}closed_at >= ?1 AND closed_at <= ?2"), s, e),
                    count(
                        &format!("{f}closed_at < ?1 AND CAST(?2 AS BIGINT) IS NOT NULL"),
                        s,
                        e
                    ),
                ],
                "round {round}: findings in [{s}, {e}]"
            );
            assert_eq!(
                exposure_counts(&times, (s, e)),
                [
                    count(&format!("{x}first_detected_at < ?1 AND CAST(?2 AS BIGINT) IS NOT NULL"), s, e),
                    count(
                        &format!("{x}first_detected_at >= ?1 AND first_detected_at <= ?2"),
                        s,
                        e
                    ),
                    count(&format!("{x}revoked_at >= ?1 AND revoked_at <= ?2"), s, e),
                    count(
                        &format!("{x}(closed_at < ?1 OR revoked_at < ?1) AND CAST(?2 AS BIGINT) IS NOT NULL"),
                        s,
                        e
                    ),
                ],
                "round {round}: exposures in [{s}, {e}]"
            );
            assert_eq!(
                exposed_many(&conn, &times, None, &[s]).unwrap(),
                vec![count(
                    &format!(
                        "{x}first_detected_at <= ?1 AND (closed_at IS NULL OR closed_at > ?1) AND CAST(?2 AS BIGINT) IS NOT NULL"
                    ),
                    s,
                    e
                ) as f64],
                "round {round}: open at {s}"
            );
        }
        for v in [Live, Inactive, Unknown] {
            let (n, min_first): (i64, Option<i64>) = conn
                .query_row(
                    "SELECT COUNT(*), MIN(first_detected_at) FROM exposures
                     WHERE open_findings > 0 AND validity = ?1",
                    [v.as_str()],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .unwrap();
            assert_eq!(times.total(TimeKind::open(v)), n, "round {round}: {v:?}");
            assert_eq!(
                oldest(&conn, TimeKind::open(v)).unwrap(),
                min_first,
                "round {round}: {v:?}"
            );
        }
        // The random stores exercise every kind.
        let kinds: i64 = conn
            .query_row(
                "SELECT COUNT(DISTINCT kind) FROM time_counts WHERE n > 0",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(kinds >= 8, "round {round}: only {kinds} kinds");
    }
}
