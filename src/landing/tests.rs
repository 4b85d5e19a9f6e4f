use super::page::{self, Input};
use super::svg::{self, Chart, Line, Unit};
use super::*;
use crate::app::SourceStatus;
use crate::kpi::{compute, record_history};
use crate::model::{Resolution, Validity};
use crate::store::tests::{apply, finding, scan};
use std::collections::BTreeMap;

const DAY: i64 = 86_400;
const NOW: i64 = 1_790_000_000;

fn chart(title: &str, unit: Unit, times: Vec<i64>, lines: Vec<(&str, Vec<Option<f64>>)>) -> Chart {
    Chart {
        id: "c".into(),
        title: title.into(),
        unit,
        times,
        lines: lines
            .into_iter()
            .map(|(n, v)| Line {
                name: n.into(),
                values: v,
                color: "#000",
                dash: None,
            })
            .collect(),
    }
}

#[test]
fn a_small_series_is_drawn_at_exact_coordinates_with_a_gap_for_none() {
    // x: 56 + t/300 * 412; y: 156 - v/5 * 146 (axis 0..5: 4 rounds up to 5).
    let c = chart(
        "open",
        Unit::Count,
        vec![0, 100, 200, 300],
        vec![("n", vec![Some(0.0), Some(2.0), None, Some(4.0)])],
    );
    let s = svg::render(&c);
    assert!(
        s.contains("<polyline fill=\"none\" stroke=\"#000\" stroke-width=\"2\" points=\"56.0,156.0 193.3,97.6\"/>"),
        "{s}"
    );
    // The run after the gap has one value: a dot, not a line to it.
    assert!(
        s.contains("<circle cx=\"468.0\" cy=\"39.2\" r=\"2.5\" fill=\"#000\"/>"),
        "{s}"
    );
    assert_eq!(s.matches("<polyline").count(), 1);
    assert!(s.contains("data-points=\"3\""), "{s}");
    // Gridlines and their values: 0, 2.5, 5.
    assert!(s.contains(">0</text>") && s.contains(">2.5</text>") && s.contains(">5</text>"));
    assert!(s.contains("<title id=\"c-t\">open</title>"));
    assert!(s.contains("<desc id=\"c-d\">Latest: n: 4</desc>"));
    assert!(s.contains("aria-labelledby=\"c-t c-d\""));
    assert!(s.contains(">1970-01-01</text>"));
}

#[test]
fn gridlines_too_close_to_zero_are_left_out() {
    // Axis -1..20: 0 at y 149.0, 20 at 10.0, -1 at 156.0 (too close to 0),
    // 9.5 at 83.0.
    let c = chart(
        "delta",
        Unit::Count,
        vec![0, 1],
        vec![("d", vec![Some(-1.0), Some(13.0)])],
    );
    let s = svg::render(&c);
    assert_eq!(s.matches("<line ").count(), 3, "{s}");
    for (y, label) in [("149.0", "0"), ("10.0", "20"), ("83.0", "9.5")] {
        assert!(s.contains(&format!("y1=\"{y}\"")), "{y}: {s}");
        assert!(s.contains(&format!(">{label}</text>")), "{label}: {s}");
    }
    assert!(!s.contains(">-1</text>"));
}

#[test]
fn runs_split_at_every_missing_value() {
    let v = [
        None,
        Some(1.0),
        Some(2.0),
        None,
        None,
        Some(3.0),
        Some(f64::NAN),
    ];
    assert_eq!(
        svg::runs(&v),
        vec![vec![(1, 1.0), (2, 2.0)], vec![(5, 3.0)]]
    );
    assert_eq!(svg::runs(&[None, None]), Vec::<Vec<(usize, f64)>>::new());
}

#[test]
fn nothing_to_divide_by_is_a_gap_not_zero() {
    let c = chart(
        "ratio",
        Unit::Ratio,
        vec![0, 10],
        vec![("r", vec![None, None])],
    );
    let s = svg::render(&c);
    assert!(!s.contains("<polyline") && !s.contains("<circle"), "{s}");
    assert!(s.contains("data-points=\"0\""));
    assert!(s.contains(">no data in this period</text>"));
    assert!(s.contains("<desc id=\"c-d\">Latest: r: no data</desc>"));
    // A ratio is on a fixed 0..1 axis: 0.5 at a single time is mid-chart.
    let c = chart("ratio", Unit::Ratio, vec![5], vec![("r", vec![Some(0.5)])]);
    assert!(svg::render(&c).contains("<circle cx=\"262.0\" cy=\"83.0\""));
}

#[test]
fn axes_and_values_read_exactly() {
    assert_eq!(svg::y_range(Unit::Count, [].into_iter()), (0.0, 1.0));
    assert_eq!(
        svg::y_range(Unit::Count, [3.0, 11.0].into_iter()),
        (0.0, 20.0)
    );
    assert_eq!(
        svg::y_range(Unit::Count, [-3.0, 2.0].into_iter()),
        (-5.0, 2.0)
    );
    assert_eq!(svg::y_range(Unit::Ratio, [7.0].into_iter()), (0.0, 1.0));
    // Durations: 4 days rounds to 5 days, 3 hours to 5 hours, 20 min to 20 min.
    let d = 86_400.0;
    assert_eq!(
        svg::y_range(Unit::Seconds, [4.0 * d].into_iter()),
        (0.0, 5.0 * d)
    );
    assert_eq!(
        svg::y_range(Unit::Seconds, [10_800.0].into_iter()),
        (0.0, 18_000.0)
    );
    assert_eq!(
        svg::y_range(Unit::Seconds, [1_200.0].into_iter()),
        (0.0, 1_200.0)
    );
    assert_eq!(Unit::Seconds.format(1_800.0), "30 min");
    assert_eq!(Unit::Seconds.format(7_200.0), "2.0 h");
    assert_eq!(Unit::Seconds.format(259_200.0), "3.0 d");
    assert_eq!(Unit::Ratio.format(3.0 / 7.0), "42.9%");
    assert_eq!(Unit::Score.format(0.666), "0.67");
    assert_eq!(Unit::Count.format(-2.0), "-2");
}

#[test]
fn strings_from_config_and_store_are_escaped() {
    let c = Chart {
        id: "x\"y".into(),
        ..chart(
            "<script>alert('t')</script>&",
            Unit::Count,
            vec![0, 1],
            vec![("<b>", vec![Some(1.0), Some(2.0)])],
        )
    };
    let s = svg::render(&c);
    assert!(
        s.contains("&lt;script&gt;alert(&#39;t&#39;)&lt;/script&gt;&amp;"),
        "{s}"
    );
    assert!(s.contains("Latest: &lt;b&gt;: 2"), "{s}");
    assert!(s.contains("id=\"x&quot;y-t\""));
    assert!(!s.contains("<script") && !s.contains("<b>"));

    let mut statuses = BTreeMap::new();
    statuses.insert(
        "<img src=x onerror=alert(1)>".to_string(),
        SourceStatus {
            source_type: "gitleaks".into(),
            enabled: true,
            polled: true,
            last_errors: vec!["/scans/<a>.json: \"bad\"".into()],
            ..Default::default()
        },
    );
    let snap = Snapshot::default();
    let html = page::render(&Input {
        telemetry_path: "/m\"etrics",
        snapshot: &snap,
        statuses: &statuses,
        trends: None,
    });
    assert!(html.contains("<td>&lt;img src=x onerror=alert(1)&gt;</td><td>gitleaks</td><td>down</td><td>never</td><td>/scans/&lt;a&gt;.json: &quot;bad&quot;</td>"), "{html}");
    assert!(html.contains("<a href=\"/m&quot;etrics\">Metrics</a>"));
    assert!(!html.contains("<img"));
    assert!(html.contains("History unavailable"));
}

#[test]
fn sample_times_are_even_over_the_longest_window_from_the_history_start() {
    assert_eq!(
        sample_times(1000, Some(0), 900, 4),
        vec![100, 400, 700, 1000]
    );
    // Shorter history: from its start.
    assert_eq!(
        sample_times(1000, Some(700), 900, 4),
        vec![700, 800, 900, 1000]
    );
    assert_eq!(sample_times(1000, Some(1000), 900, 4), vec![1000]);
    assert_eq!(sample_times(1000, None, 900, 4), Vec::<i64>::new());
}

#[test]
fn points_are_computed_coarse_to_fine_first_and_last_first() {
    let o = levels(POINTS).concat();
    assert_eq!(o[..7], [0, 47, 8, 16, 24, 32, 40]);
    assert_eq!(o[7..13], [4, 12, 20, 28, 36, 44]);
    assert_eq!(o[13..16], [2, 6, 10]);
    assert_eq!(o[25..28], [1, 3, 5]);
    let mut all = o.clone();
    all.sort();
    assert_eq!(all, (0..POINTS).collect::<Vec<_>>());
    assert_eq!(levels(1).concat(), vec![0]);
    assert_eq!(levels(0).concat(), Vec::<usize>::new());
}

#[test]
fn an_empty_store_reads_no_history_yet_without_a_chart() {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::store::testing::open(&dir.path().join("s.db"), "k").unwrap();
    let p = crate::kpi::tests::policy(&[7 * DAY, 30 * DAY]);
    let snap = compute(&store.reader().unwrap(), &p, NOW).unwrap();
    let t = load(&store.reader().unwrap(), &p, &snap).unwrap();
    assert!(t.points.is_empty() && t.residual.is_empty() && t.posture.is_empty());
    assert_eq!(t.sampled, 0);
    let html = page::render(&Input {
        telemetry_path: "/metrics",
        snapshot: &snap,
        statuses: &BTreeMap::new(),
        trends: Some(&t),
    });
    assert!(html.contains("No history yet"), "{html}");
    assert!(!html.contains("<svg"));
    // The KPI cards are there, with their current (empty) values.
    assert!(
        html.contains("<dt>Exposed secrets</dt><dd class=\"v\">0</dd>"),
        "{html}"
    );
    assert!(html.contains("<dt>Standing privileged identities</dt><dd class=\"v\">—</dd>"));
}

/// Daily polls over 60 days of a store that sees secrets leak and get
/// revoked: the trend's last point is the snapshot, recorded series are
/// gaps before the first poll, every chart has data.
#[test]
fn trends_over_a_store_with_history() {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::store::testing::open(&dir.path().join("s.db"), "k").unwrap();
    let p = crate::kpi::tests::policy(&[7 * DAY, 30 * DAY]);
    let start = NOW - 60 * DAY;
    let mut snap = None;
    for day in 0..=60 {
        let now = start + day * DAY;
        let mut findings = Vec::new();
        for k in 0..=(day / 5) {
            let mut f = finding(&format!("f{k}"), k as u8 + 1);
            f.detected_at = Some(start + k * 5 * DAY);
            // Every third secret is revoked 4 days after its detection.
            if k % 3 == 0 && day >= k * 5 + 4 {
                f.closed = Some((Resolution::Revoked, Some(start + (k * 5 + 4) * DAY)));
                f.validity = Validity::Inactive;
                f.validity_at = Some(start + (k * 5 + 4) * DAY);
            }
            findings.push(f);
        }
        apply(&store, "gl", now, &[scan("repo", now, findings)]);
        let s = compute(&store.reader().unwrap(), &p, now).unwrap();
        record_history(&mut store.writer(), &s, &p).unwrap();
        snap = Some(s);
    }
    let snap = snap.unwrap();
    let t = load(&store.reader().unwrap(), &p, &snap).unwrap();
    assert_eq!(t.points.len(), POINTS);
    assert_eq!(t.sampled, POINTS);
    assert_eq!(t.points[0].at, NOW - 30 * DAY);
    let last = t.points.last().unwrap();
    assert_eq!(last.at, NOW);
    assert_eq!(last.exposed_secrets, snap.exposed_total() as f64);
    assert_eq!(snap.exposed_total(), 9);
    for (a, b) in last.windows.iter().zip(&snap.windows) {
        assert_eq!(a.secrets_in_code_delta, b.secrets_in_code_delta);
        assert_eq!(a.closure_ratio, b.closure_ratio);
        assert_eq!(a.exposure_reduction_ratio, b.exposure_reduction_ratio);
        assert_eq!(a.time_to_revoke_median, b.time_to_revoke_median);
    }
    assert_eq!(
        snap.windows[1].time_to_revoke_median,
        Some(4.0 * DAY as f64)
    );
    assert_eq!(t.residual.last(), Some(&Some(0.0)));
    assert!(t.posture.iter().all(Option::is_some));
    let charts = page::charts(&t);
    assert_eq!(charts.len(), 5 + 2);
    let html = page::render(&Input {
        telemetry_path: "/metrics",
        snapshot: &snap,
        statuses: &BTreeMap::new(),
        trends: Some(&t),
    });
    assert_eq!(html.matches("<svg").count(), 7);
    assert_eq!(html.matches("data-points=\"0\"").count(), 0, "{html}");
    assert!(
        html.contains("<dt>Exposed secrets</dt><dd class=\"v\">9</dd>"),
        "{html}"
    );
    assert!(html.contains("<dt>Time to revoke (median)</dt><dd class=\"v\">4.0 d</dd>"));
    assert!(!html.contains("were not computed"));
    // Each chart's values as a table: the last row of the exposures chart.
    assert_eq!(html.matches("<summary>Data table</summary>").count(), 7);
    assert!(
        html.contains("<tr><td>2026-09-21T14:13:20Z</td><td>9</td></tr></table></details>"),
        "{html}"
    );

    // The budget ran out after the first and the last point: two points,
    // and the page says so.
    let mut cut = t.clone();
    cut.points = vec![t.points[0].clone(), t.points[POINTS - 1].clone()];
    cut.residual = vec![t.residual[0], t.residual[POINTS - 1]];
    cut.posture = vec![t.posture[0], t.posture[POINTS - 1]];
    let html = page::render(&Input {
        telemetry_path: "/metrics",
        snapshot: &snap,
        statuses: &BTreeMap::new(),
        trends: Some(&cut),
    });
    assert!(html.contains("<p class=\"note\">2 points from "), "{html}");
    assert!(html.contains("; 46 more were not computed: the store is large"));
    assert_eq!(html.matches("data-points=\"0\"").count(), 0);
}

#[test]
fn recorded_series_are_gaps_before_their_first_point() {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::store::testing::open(&dir.path().join("s.db"), "k").unwrap();
    {
        let w = store.writer();
        for (ts, v) in [(100i64, 1.0), (300, 3.0)] {
            w.execute(
                "INSERT INTO history(series, ts, value) VALUES ('x', ?1, ?2)",
                crate::store::db::params![ts, v],
            )
            .unwrap();
        }
    }
    let r = recorded(&store.reader().unwrap(), "x", &[50, 100, 200, 300, 400]).unwrap();
    assert_eq!(r, vec![None, Some(1.0), Some(1.0), Some(3.0), Some(3.0)]);
}

#[test]
fn bundled_dashboards_are_served_by_file_name() {
    assert!(dashboard("nhi-outcomes.json").is_some_and(|j| j.contains("\"uid\": \"nhi-outcomes\"")));
    assert_eq!(dashboard("nhi-outcomes"), None);
    assert_eq!(dashboard("../Cargo.toml"), None);
    for (name, _, json) in DASHBOARDS {
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(v["uid"], name);
    }
}

/// The cost of the page's trends over a big store (a figure, not a check):
///   NHI_TREND_FINDINGS=1000000 cargo test --release --lib trend_cost -- --ignored --nocapture
#[test]
#[ignore]
fn trend_cost_over_a_big_store() {
    let n: i64 = std::env::var("NHI_TREND_FINDINGS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let store = crate::store::testing::open(&dir.path().join("s.db"), "k").unwrap();
    let base = NOW - 120 * DAY;
    let t = std::time::Instant::now();
    {
        let w = store.writer();
        w.execute_batch(&format!(
            "BEGIN;
             INSERT INTO targets(id, source, target, fingerprint, scanned_at) VALUES (1, 'big', 't', 'f', {base});
             WITH RECURSIVE x(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM x WHERE i < {e})
             INSERT INTO exposures(id, key, secret_type, first_detected_at, open_findings, validity, closed_at, revoked_at, confirmed_by)
             SELECT i, randomblob(32), 'generic', {base} + (i * 7919) % {span},
                    CASE WHEN i % 3 = 0 THEN 0 ELSE 1 END, 'unknown',
                    CASE WHEN i % 3 = 0 THEN {base} + (i * 7919) % {span} + 86400 * (i % 9) END,
                    CASE WHEN i % 3 = 0 THEN {base} + (i * 7919) % {span} + 86400 * (i % 9) END,
                    CASE WHEN i % 3 = 0 THEN 'validity_check' END
             FROM x;
             WITH RECURSIVE x(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM x WHERE i < {n})
             INSERT INTO findings(id, source, target_id, scanner_key, scanner_id, exposure_id, secret_type,
                                  detected_at, open, resolution, closed_at, validity)
             SELECT i, 'big', 1, randomblob(16), 'f' || i, 1 + (i % {e}), 'generic',
                    {base} + ((1 + i % {e}) * 7919) % {span},
                    CASE WHEN (1 + i % {e}) % 3 = 0 THEN 0 ELSE 1 END,
                    CASE WHEN (1 + i % {e}) % 3 = 0 THEN 'revoked' END,
                    CASE WHEN (1 + i % {e}) % 3 = 0 THEN {base} + ((1 + i % {e}) * 7919) % {span} + 86400 * ((1 + i % {e}) % 9) END,
                    'unknown'
             FROM x;
             WITH RECURSIVE d(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM d WHERE i < 60)
             INSERT INTO history(series, ts, value)
             SELECT 'exposed_secrets', {fs} + i * 86400,
                    (SELECT COUNT(*) FROM exposures WHERE first_detected_at <= {fs} + i * 86400
                       AND (closed_at IS NULL OR closed_at > {fs} + i * 86400))
             FROM d;
             INSERT INTO meta(key, value) VALUES ('first_success', '{fs}')
               ON CONFLICT(key) DO UPDATE SET value = excluded.value;
             COMMIT;",
            e = n / 2,
            span = 110 * DAY,
            fs = NOW - 60 * DAY,
        ))
        .unwrap();
        // Written in SQL, not by the applier: count the times from the rows.
        let mut w = w;
        let tx = w.transaction().unwrap();
        crate::store::rebuild_time_counts(&tx).unwrap();
        tx.commit().unwrap();
    }
    eprintln!(
        "built {n} findings, {} exposures in {:.1?}",
        n / 2,
        t.elapsed()
    );
    let p = crate::kpi::tests::policy(&[7 * DAY, 30 * DAY, 90 * DAY]);
    let conn = store.reader().unwrap();
    let snap = compute(&conn, &p, NOW).unwrap();
    for points in [2, 7] {
        let times = sample_times(NOW, snap.history_start, 90 * DAY, points);
        let t = std::time::Instant::now();
        let out = crate::kpi::history::trend(&conn, &p, &times).unwrap();
        eprintln!(
            "trend: {} points over {n} findings in {:.2?} ({:.1?} per point)",
            out.len(),
            t.elapsed(),
            t.elapsed() / out.len().max(1) as u32
        );
    }
    let t = std::time::Instant::now();
    let out = load(&conn, &p, &snap).unwrap();
    eprintln!(
        "load (budget {BUDGET:?}): {} points in {:.2?}",
        out.points.len(),
        t.elapsed()
    );
}
