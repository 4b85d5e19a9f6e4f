//! The landing page in a real browser: the binary over a store with 90 days
//! of history, `/` rendered by headless Chromium. Every headline KPI's name
//! and value (read independently from `/metrics`) is in the rendered DOM,
//! and every chart has a line. A screenshot is left in the target dir.
//!
//! Chromium missing: the test fails under CI (`CI=true`), and is skipped
//! with a printed reason elsewhere.

mod common;
use common::*;
use nhi_exporter::app::{unix_now, App};
use nhi_exporter::landing::svg::Unit;
use nhi_exporter::model::{
    ExposureKey, Location, ObservedFinding, Resolution, TargetScan, Validity,
};
use nhi_exporter::store::PollApplier;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const DAY: i64 = 86_400;
const WINDOWS: [&str; 3] = ["7d", "30d", "90d"];

fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|d| ["chromium", "chromium-browser"].map(|n| d.join(n)))
        .find(|p| p.is_file())
}

/// Run Chromium headless with `args` on `url`, bounded to 90 s.
fn run_chromium(bin: &Path, profile: &Path, args: &[&str], url: &str) -> Vec<u8> {
    let mut child = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    let mut out = Vec::new();
    let mut stdout = child.stdout.take().unwrap();
    let reader =
        std::thread::spawn(move || std::io::Read::read_to_end(&mut stdout, &mut out).map(|_| out));
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            assert!(st.success(), "chromium exited with {st}");
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("chromium did not finish within 90 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    reader.join().unwrap().unwrap()
}

fn finding(k: i64, base: i64, day: i64) -> ObservedFinding {
    let detected = base + 3 * k * DAY;
    let mut f = ObservedFinding {
        scanner_id: format!("legacy-{k}"),
        secret_type: "generic-api-key".into(),
        exposure: ExposureKey::Secret([k as u8 + 1; 32]),
        location: Location {
            repository: Some("legacy".into()),
            file: Some(format!("src/f{k}.py")),
            line: Some(1),
            commit: Some("c0ffee".into()),
        },
        detected_at: Some(detected),
        committed_at: None,
        closed: None,
        validity: Validity::Unknown,
        validity_at: None,
        links: vec![],
    };
    match k % 3 {
        // Revoked, 2 to 6 days after detection: closure and outcome.
        0 => {
            let at = detected + (2 + k % 5) * DAY;
            if base + day * DAY >= at {
                f.closed = Some((Resolution::Revoked, Some(at)));
                f.validity = Validity::Inactive;
                f.validity_at = Some(at);
            }
        }
        // Closed as won't fix the next day while the secret still works:
        // activity without outcome, a residual exposure.
        1 => {
            let at = detected + DAY;
            if base + day * DAY >= at {
                f.closed = Some((Resolution::WontFix, Some(at)));
                f.validity = Validity::Live;
                f.validity_at = Some(at);
            }
        }
        _ => {}
    }
    f
}

/// 90 daily polls of a dated source `scans` (target `legacy`, which no
/// report file names), each followed by a KPI recompute, as the daemon does.
fn build_history(cfg: &Path) {
    let app = App::open(cfg).unwrap();
    let now = unix_now() - 120;
    let base = now - 90 * DAY;
    for day in 0..=90 {
        let t = base + day * DAY;
        let findings: Vec<ObservedFinding> = (0..=day / 3).map(|k| finding(k, base, day)).collect();
        {
            let mut conn = app.store.writer();
            let mut ap = PollApplier::begin(&mut conn, "scans", t, 100).unwrap();
            ap.target(&TargetScan {
                target: "legacy".into(),
                fingerprint: format!("day-{day}"),
                scanned_at: t,
                findings,
            })
            .unwrap();
            ap.commit().unwrap();
        }
        app.recompute(t).unwrap();
    }
}

/// The expected text of each headline KPI card, from `/metrics`.
fn expected(m: &Metrics) -> Vec<(&'static str, &'static str, Vec<String>)> {
    let per_window = |name: &str, unit: Unit, signed: bool| -> Vec<String> {
        WINDOWS
            .iter()
            .map(|w| {
                let v = m.get(name, &[("window", w)]).filter(|v| v.is_finite());
                let s = v.map_or("—".to_string(), |v| {
                    let s = unit.format(v);
                    if signed && v > 0.0 {
                        format!("+{s}")
                    } else {
                        s
                    }
                });
                format!("{w}: <b>{s}</b>")
            })
            .collect()
    };
    let total = m.sum("nhi_exposed_secrets", &[]);
    assert!(total > 0.0, "no exposure in the metrics");
    let overall = m
        .get("nhi_posture_score", &[("dimension", "overall")])
        .unwrap();
    assert!(
        !m.has("nhi_standing_privileged_identities"),
        "no inventory source here"
    );
    vec![
        (
            "exposed_secrets",
            "Exposed secrets",
            vec![Unit::Count.format(total)],
        ),
        (
            "secrets_in_code_delta",
            "Secrets-in-code delta",
            per_window("nhi_secrets_in_code_delta", Unit::Count, true),
        ),
        (
            "closure_ratio",
            "Closure ratio (activity)",
            per_window("nhi_closure_ratio", Unit::Ratio, false),
        ),
        (
            "exposure_reduction_ratio",
            "Exposure reduction ratio (outcome)",
            per_window("nhi_exposure_reduction_ratio", Unit::Ratio, false),
        ),
        (
            "time_to_revoke_median",
            "Time to revoke (median)",
            per_window("nhi_time_to_revoke_median_seconds", Unit::Seconds, false),
        ),
        (
            "residual_exposures",
            "Residual exposures",
            vec![Unit::Count.format(m.get("nhi_residual_exposures", &[]).unwrap())],
        ),
        (
            "posture_score",
            "Posture score",
            vec![Unit::Score.format(overall)],
        ),
        (
            "standing_privileged_identities",
            "Standing privileged identities",
            vec!["—".into()],
        ),
        ("unused_identities", "Unused identities", vec!["—".into()]),
    ]
}

/// The text of the card `data-kpi="id"` in the DOM.
fn card<'a>(dom: &'a str, id: &str) -> Option<&'a str> {
    let start = dom.find(&format!("data-kpi=\"{id}\""))?;
    let end = dom[start..].find("</div>")? + start;
    Some(&dom[start..end])
}

/// Every `<svg>` element of the DOM.
fn svgs(dom: &str) -> Vec<&str> {
    dom.match_indices("<svg")
        .filter_map(|(i, _)| Some(&dom[i..i + dom[i..].find("</svg>")?]))
        .collect()
}

/// The number of points of each `<polyline>` of an SVG.
fn polylines(svg: &str) -> Vec<usize> {
    svg.match_indices("<polyline")
        .filter_map(|(i, _)| {
            let p = svg[i..].find("points=\"")? + i + 8;
            let e = svg[p..].find('"')? + p;
            Some(svg[p..e].split_whitespace().count())
        })
        .collect()
}

#[test]
fn the_landing_page_tells_the_outcome_story_in_a_browser() {
    let Some(browser) = chromium() else {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("chromium is missing under CI: scripts/test.sh installs it");
        }
        eprintln!("SKIPPED: chromium is not installed (apt-get install chromium)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let reports = dir.path().join("reports");
    std::fs::create_dir_all(&reports).unwrap();
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/demo/gitleaks/payments-api.json");
    std::fs::copy(demo, reports.join("payments-api.json")).unwrap();
    let cfg = dir.path().join("nhi.yaml");
    std::fs::write(
        &cfg,
        "state: {path: state.db}\npolicy: {windows: [7d, 30d, 90d]}\n\
         sources: [{name: scans, type: gitleaks, interval: 1h, paths: ['reports/*.json']}]\n",
    )
    .unwrap();
    build_history(&cfg);

    let ex = Exporter::start(&cfg, &dir.path().join("log"), &[]);
    ex.wait_for("the first poll", |m| {
        m.get("nhi_source_up", &[("source", "scans")]) == Some(1.0)
    });
    let profile = dir.path().join("chromium");
    // The KPI recompute follows the poll: retry until the page and the
    // metrics read the same snapshot.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (dom, want) = loop {
        let dom = String::from_utf8(run_chromium(
            &browser,
            &profile,
            &["--dump-dom"],
            &ex.url("/"),
        ))
        .unwrap();
        let want = expected(&Metrics::parse(&ex.metrics()));
        let ok = want.iter().all(|(id, _, vals)| {
            card(&dom, id).is_some_and(|c| vals.iter().all(|v| c.contains(v.as_str())))
        });
        if ok || Instant::now() > deadline {
            break (dom, want);
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    for (id, name, vals) in &want {
        let c = card(&dom, id).unwrap_or_else(|| panic!("no card {id} in:\n{dom}"));
        assert!(c.contains(&format!("<dt>{name}</dt>")), "{id}: {c}");
        for v in vals {
            assert!(c.contains(v.as_str()), "{id}: {v} not in {c}");
        }
    }
    // The story has happened: closure outpaces exposure reduction.
    let m = Metrics::parse(&ex.metrics());
    let closure = m.get("nhi_closure_ratio", &[("window", "90d")]).unwrap();
    let reduction = m
        .get("nhi_exposure_reduction_ratio", &[("window", "90d")])
        .unwrap();
    assert!(closure > reduction, "{closure} vs {reduction}");
    assert!(m.get("nhi_residual_exposures", &[]).unwrap() > 0.0);

    // One chart per KPI trend, one ratio chart per window, each with a line.
    let charts = svgs(&dom);
    assert_eq!(charts.len(), 5 + WINDOWS.len(), "{dom}");
    for svg in &charts {
        let lines = polylines(svg);
        assert!(
            lines.iter().any(|n| *n >= 2),
            "a chart without a line: {svg}"
        );
        assert!(!svg.contains("data-points=\"0\""), "{svg}");
        assert!(svg.contains("<title id="), "{svg}");
    }
    assert!(
        dom.contains("<td>scans</td><td>gitleaks</td><td>up</td>"),
        "{dom}"
    );
    assert!(dom.contains("href=\"/dashboards/nhi-outcomes.json\""));
    assert!(!dom.contains("<script"));

    // Headers, and the bundled dashboards.
    let r = reqwest::blocking::get(ex.url("/")).unwrap();
    assert_eq!(
        r.headers()["content-security-policy"],
        nhi_exporter::landing::page::CSP
    );
    let (code, json) = ex.get("/dashboards/nhi-outcomes.json");
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["uid"], "nhi-outcomes");
    assert_eq!(ex.get("/dashboards/nope.json").0, 404);

    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("landing.png");
    let _ = std::fs::remove_file(&shot);
    run_chromium(
        &browser,
        &profile,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1280,2000",
        ],
        &ex.url("/"),
    );
    let png = std::fs::read(&shot).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    eprintln!("screenshot: {}", shot.display());
}

/// First start, nothing applied yet (the only source fails): the page says
/// there is no history, draws no chart, and shows the source's error.
#[test]
fn an_empty_store_says_no_history_yet() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.json"), "not a report").unwrap();
    let cfg = dir.path().join("nhi.yaml");
    std::fs::write(
        &cfg,
        "state: {path: state.db}\nsources: [{name: scans, type: gitleaks, interval: 1h, paths: ['bad.json']}]\n",
    )
    .unwrap();
    let ex = Exporter::start(&cfg, &dir.path().join("log"), &[]);
    ex.wait_for("the first poll", |m| {
        m.get("nhi_source_up", &[("source", "scans")]) == Some(0.0)
    });
    let (code, html) = ex.get("/");
    assert_eq!(code, 200);
    assert!(
        html.contains("No history yet: the trends appear after the first successful poll."),
        "{html}"
    );
    assert!(!html.contains("<svg"), "{html}");
    assert!(
        html.contains("<dt>Exposed secrets</dt><dd class=\"v\">0</dd>"),
        "{html}"
    );
    assert!(
        html.contains("<td>scans</td><td>gitleaks</td><td>down</td><td>never</td><td>"),
        "{html}"
    );
    assert!(
        html.contains("bad.json: line 1 column 2: invalid JSON syntax"),
        "{html}"
    );
}
