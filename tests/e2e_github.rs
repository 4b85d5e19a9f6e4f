//! `github_secret_scanning` against a loopback mock of the REST API: exact
//! metric values through pagination, ETags, state changes, rate limits,
//! server errors, bad tokens and unreadable repositories.

mod common;
mod github_mock;
use common::*;
use github_mock::{alert, Fault, Mock};
use std::path::{Path, PathBuf};
use std::time::Duration;

const TOKEN: &str = "ghs_canaryTOKENcanaryTOKENcanaryTOKEN00";
const SECRET_A: &str = "ghp_canarySECRETAcanarySECRETAcanary001";

fn config(dir: &Path, mock: &Mock, scope: &str, extra: &str) -> PathBuf {
    std::fs::write(dir.join("token"), format!("{TOKEN}\n")).unwrap();
    let p = dir.join("nhi.yaml");
    std::fs::write(
        &p,
        format!(
            "state: {{path: state/state.db}}\nsources:\n  - name: gh\n    type: github_secret_scanning\n    interval: 1s\n    timeout: 8s\n    api_url: {}\n    {scope}\n    token_file: token\n{extra}",
            mock.url()
        ),
    )
    .unwrap();
    p
}

/// 250 alerts over three repositories of org "acme": three pages of 100.
fn seed(mock: &Mock) {
    mock.with(|st| {
        let mut n = 0;
        for repo in ["acme/api", "acme/web", "acme/infra"] {
            let mut alerts = Vec::new();
            let count = match repo {
                "acme/api" => 120,
                "acme/web" => 100,
                _ => 30,
            };
            for i in 1..=count {
                n += 1;
                let (ty, validity) = if i % 10 == 0 {
                    ("aws_access_key_id", "active")
                } else {
                    ("github_personal_access_token", "unknown")
                };
                alerts.push(alert(
                    repo,
                    i,
                    ty,
                    &format!("secret-{repo}-{i}"),
                    "open",
                    None,
                    validity,
                ));
            }
            st.repos.insert(repo.to_string(), alerts);
        }
        assert_eq!(n, 250);
        st.orgs.insert(
            "acme".into(),
            vec!["acme/api".into(), "acme/web".into(), "acme/infra".into()],
        );
    });
}

#[test]
fn org_alerts_paginate_and_follow_state_changes() {
    let mock = Mock::start(TOKEN);
    seed(&mock);
    mock.with(|st| {
        st.repos.get_mut("acme/api").unwrap()[0] = alert(
            "acme/api",
            1,
            "github_personal_access_token",
            SECRET_A,
            "open",
            None,
            "active",
        );
    });
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &mock, "org: acme", "");
    let log = dir.path().join("log");
    let ex = Exporter::start(&cfg, &log, &[]);
    let m = ex.wait_for("first poll", |m| {
        m.get("nhi_source_up", &[("source", "gh")]) == Some(1.0)
    });
    let requests_first = mock.with(|st| st.requests);
    assert_eq!(
        requests_first, 3,
        "250 alerts at per_page=100 are three requests"
    );
    assert!(mock.with(|st| st.paths[0].contains("per_page=100")));
    // 25 aws keys live (every 10th) + alert #1 of acme/api made live.
    assert_eq!(
        m.get(
            "nhi_findings_open",
            &[
                ("source", "gh"),
                ("secret_type", "aws_access_key_id"),
                ("validity", "live")
            ]
        ),
        Some(25.0)
    );
    assert_eq!(
        m.get(
            "nhi_findings_open",
            &[
                ("source", "gh"),
                ("secret_type", "github_personal_access_token"),
                ("validity", "live")
            ]
        ),
        Some(1.0)
    );
    assert_eq!(
        m.get(
            "nhi_findings_open",
            &[
                ("source", "gh"),
                ("secret_type", "github_personal_access_token"),
                ("validity", "unknown")
            ]
        ),
        Some(224.0)
    );
    let m = ex.wait_for("KPIs", |m| m.sum("nhi_exposed_secrets", &[]) == 250.0);
    assert_eq!(
        m.get("nhi_exposed_secrets", &[("validity", "live")]),
        Some(26.0)
    );
    assert_eq!(
        m.sum("nhi_findings_detected_total", &[("source", "gh")]),
        250.0
    );

    // Nothing changed: conditional requests, all 304, nothing re-applied.
    std::thread::sleep(Duration::from_millis(2500));
    let (req, nm) = mock.with(|st| (st.requests, st.not_modified));
    assert!(req > requests_first && nm >= 3, "requests {req}, 304s {nm}");
    assert_eq!(nm % 3, 0, "every page of a re-poll is a 304");

    // Resolved as revoked while the secret is still active: a claim, not a
    // confirmation. Closed, residual, not revoked.
    mock.with(|st| {
        st.repos.get_mut("acme/api").unwrap()[0] = alert(
            "acme/api",
            1,
            "github_personal_access_token",
            SECRET_A,
            "resolved",
            Some("revoked"),
            "active",
        );
    });
    let m = ex.wait_for("resolution applied", |m| {
        m.get(
            "nhi_findings_closed_total",
            &[("source", "gh"), ("resolution", "revoked")],
        ) == Some(1.0)
            && m.get("nhi_residual_exposures", &[]) == Some(1.0)
    });
    assert_eq!(
        m.get(
            "nhi_exposures_revoked_total",
            &[("confirmed_by", "validity_check")]
        ),
        Some(0.0)
    );
    assert_eq!(
        m.get(
            "nhi_time_to_revoke_seconds_count",
            &[("confirmed_by", "validity_check")]
        ),
        Some(0.0)
    );

    // GitHub's validity check now says inactive: confirmed revocation.
    mock.with(|st| {
        st.repos.get_mut("acme/api").unwrap()[0] = alert(
            "acme/api",
            1,
            "github_personal_access_token",
            SECRET_A,
            "resolved",
            Some("revoked"),
            "inactive",
        );
    });
    let m = ex.wait_for("confirmed", |m| {
        m.get(
            "nhi_exposures_revoked_total",
            &[("confirmed_by", "validity_check")],
        ) == Some(1.0)
    });
    assert_eq!(
        m.get(
            "nhi_time_to_revoke_seconds_count",
            &[("confirmed_by", "validity_check")]
        ),
        Some(1.0)
    );
    let m = ex.wait_for("residual cleared", |m| {
        m.get("nhi_residual_exposures", &[]) == Some(0.0)
    });
    assert_eq!(
        m.get("nhi_exposed_secrets", &[("validity", "live")]),
        Some(25.0)
    );

    // Canaries: no alert secret, no token, anywhere.
    let text = ex.metrics();
    let logs = ex.log_text();
    let store = read_all_files(&dir.path().join("state"));
    for c in [SECRET_A, TOKEN, "secret-acme/api-2"] {
        assert!(
            !text.contains(c) && !logs.contains(c) && !contains(&store, c),
            "{c} leaked"
        );
    }
}

#[test]
fn rate_limits_are_waited_out_when_they_fit_the_timeout() {
    let mock = Mock::start(TOKEN);
    seed(&mock);
    mock.with(|st| {
        st.faults.push_back(Fault::PrimaryLimit { reset_in: 1 });
        st.faults
            .push_back(Fault::SecondaryLimit { retry_after: 1 });
        st.faults.push_back(Fault::Status(502));
    });
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &mock, "org: acme", "");
    let ex = Exporter::start(&cfg, &dir.path().join("log"), &[]);
    let m = ex.wait_for("first poll", |m| {
        m.get("nhi_source_up", &[("source", "gh")]).is_some()
            && m.get(
                "nhi_source_last_success_timestamp_seconds",
                &[("source", "gh")],
            ) != Some(0.0)
    });
    assert_eq!(m.get("nhi_source_up", &[("source", "gh")]), Some(1.0));
    assert_eq!(m.sum("nhi_source_errors_total", &[("source", "gh")]), 0.0);
    assert_eq!(
        mock.with(|st| st.requests),
        6,
        "three retried faults, then three pages"
    );
}

#[test]
fn failures_count_a_reason_and_close_nothing() {
    let mock = Mock::start(TOKEN);
    seed(&mock);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &mock, "org: acme", "");
    // Keep the source's series visible through the failures (not stale).
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, format!("policy: {{stale_after: 1h}}\n{text}")).unwrap();
    let ex = Exporter::start(&cfg, &dir.path().join("log"), &[]);
    ex.wait_for("first poll", |m| {
        m.sum("nhi_findings_open", &[("source", "gh")]) == 250.0
    });

    // A rate limit whose reset is beyond the timeout: rate_limited, nothing closed.
    mock.with(|st| st.faults.push_back(Fault::PrimaryLimit { reset_in: 3600 }));
    let m = ex.wait_for("rate limited", |m| {
        m.get(
            "nhi_source_errors_total",
            &[("source", "gh"), ("reason", "rate_limited")],
        ) >= Some(1.0)
    });
    assert_eq!(m.sum("nhi_findings_closed_total", &[("source", "gh")]), 0.0);

    // Persistent 5xx: retried, then http_5xx.
    mock.with(|st| (0..20).for_each(|_| st.faults.push_back(Fault::Status(503))));
    let m = ex.wait_for("5xx", |m| {
        m.get(
            "nhi_source_errors_total",
            &[("source", "gh"), ("reason", "http_5xx")],
        ) >= Some(1.0)
    });
    assert_eq!(m.get("nhi_source_up", &[("source", "gh")]), Some(0.0));
    mock.with(|st| st.faults.clear());

    // The token is revoked: auth.
    mock.with(|st| st.token = "another".into());
    let m = ex.wait_for("auth", |m| {
        m.get(
            "nhi_source_errors_total",
            &[("source", "gh"), ("reason", "auth")],
        ) >= Some(1.0)
    });
    assert_eq!(m.get("nhi_source_up", &[("source", "gh")]), Some(0.0));
    assert_eq!(m.sum("nhi_findings_closed_total", &[("source", "gh")]), 0.0);
    let m = ex.wait_for("KPIs", |m| m.sum("nhi_exposed_secrets", &[]) == 250.0);
    assert_eq!(m.sum("nhi_findings_open", &[("source", "gh")]), 250.0);
    assert!(!ex.log_text().contains(TOKEN));
}

#[test]
fn the_token_never_follows_a_next_link_to_another_origin() {
    use std::io::Read;
    // Another server on loopback: it must never receive a request.
    let foreign = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let foreign_addr = foreign.local_addr().unwrap();
    foreign.set_nonblocking(true).unwrap();
    let mock = Mock::start(TOKEN);
    seed(&mock);
    mock.with(|st| st.next_host = Some(foreign_addr.to_string()));
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &mock, "org: acme", "");
    let ex = Exporter::start(&cfg, &dir.path().join("log"), &[]);
    let m = ex.wait_for("foreign next link refused", |m| {
        m.get(
            "nhi_source_errors_total",
            &[("source", "gh"), ("reason", "http_4xx")],
        ) >= Some(1.0)
    });
    assert_eq!(m.get("nhi_source_up", &[("source", "gh")]), Some(0.0));
    assert_eq!(
        m.sum("nhi_findings_open", &[("source", "gh")]),
        0.0,
        "nothing applied from a partial list"
    );
    let mut received = Vec::new();
    while let Ok((mut c, _)) = foreign.accept() {
        let _ = c.set_nonblocking(false);
        let _ = c.set_read_timeout(Some(std::time::Duration::from_millis(200)));
        let mut b = [0u8; 4096];
        let n = c.read(&mut b).unwrap_or(0);
        received.push(String::from_utf8_lossy(&b[..n]).into_owned());
    }
    assert!(
        received.is_empty(),
        "the foreign host was contacted: {received:?}"
    );
    assert!(ex.log_text().contains("points to another origin"));
}

#[test]
fn an_unreadable_repository_keeps_its_alerts_and_others_apply() {
    let mock = Mock::start(TOKEN);
    seed(&mock);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        &mock,
        "repositories: [acme/api, acme/infra]",
        "",
    );
    let ex = Exporter::start(&cfg, &dir.path().join("log"), &[]);
    ex.wait_for("first poll", |m| {
        m.sum("nhi_findings_open", &[("source", "gh")]) == 150.0
    });
    assert_eq!(
        mock.with(|st| st.requests),
        3,
        "acme/api: 2 pages; acme/infra: 1"
    );

    // The token loses access to acme/api; acme/infra's alert 1 gets resolved.
    mock.with(|st| {
        st.hidden.insert("acme/api".into());
        st.repos.get_mut("acme/infra").unwrap()[0] = alert(
            "acme/infra",
            1,
            "github_personal_access_token",
            "secret-acme/infra-1",
            "resolved",
            Some("false_positive"),
            "unknown",
        );
    });
    ex.wait_for("infra applied", |m| {
        m.get(
            "nhi_findings_closed_total",
            &[("source", "gh"), ("resolution", "false_positive")],
        ) == Some(1.0)
    });
    let m = ex.wait_for("error counted", |mm| {
        mm.get(
            "nhi_source_errors_total",
            &[("source", "gh"), ("reason", "http_4xx")],
        ) >= Some(1.0)
    });
    assert_eq!(m.get("nhi_source_up", &[("source", "gh")]), Some(0.0));
    // acme/api's 120 alerts are not closed by the failure.
    assert_eq!(m.sum("nhi_findings_open", &[("source", "gh")]), 149.0);
    assert_eq!(m.sum("nhi_findings_closed_total", &[("source", "gh")]), 1.0);
}

#[test]
fn the_same_secret_in_github_and_gitleaks_is_one_exposure() {
    let mock = Mock::start(TOKEN);
    mock.with(|st| {
        st.repos.insert(
            "acme/api".into(),
            vec![alert(
                "acme/api",
                1,
                "github_personal_access_token",
                SECRET_A,
                "open",
                None,
                "active",
            )],
        );
    });
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("reports")).unwrap();
    write_report(
        &dir.path().join("reports/api.json"),
        &[gl_finding("github-pat", SECRET_A, "ci.yml", 3, "c1")],
    );
    let cfg = config(
        dir.path(),
        &mock,
        "repositories: [acme/api]",
        "  - name: gl\n    type: gitleaks\n    interval: 1s\n    paths: [\"reports/*.json\"]\n",
    );
    let ex = Exporter::start(&cfg, &dir.path().join("log"), &[]);
    let m = ex.wait_for("both polled", |m| {
        m.sum("nhi_findings_open", &[("source", "gh")]) == 1.0
            && m.sum("nhi_findings_open", &[("source", "gl")]) == 1.0
    });
    let m = ex.wait_for("merged", |mm| {
        mm.sum("nhi_exposed_secrets", &[]) == 1.0 || mm.text != m.text
    });
    assert_eq!(m.sum("nhi_exposed_secrets", &[]), 1.0);
    // The exposure is live: GitHub's validity check wins over gitleaks' unknown.
    assert_eq!(
        m.get("nhi_exposed_secrets", &[("validity", "live")]),
        Some(1.0)
    );
}

#[test]
fn hide_secret_asks_github_not_to_send_it() {
    let mock = Mock::start(TOKEN);
    seed(&mock);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        &mock,
        "repositories: [acme/infra]\n    hide_secret: true",
        "",
    );
    let stdout = once_ok(&cfg, &[]);
    assert!(mock.with(|st| st.paths.iter().all(|p| p.contains("hide_secret=true"))));
    let m = Metrics::parse(&stdout);
    assert_eq!(m.sum("nhi_exposed_secrets", &[]), 30.0);
}

#[test]
fn one_secret_across_three_scanners_counts_once() {
    let mock = Mock::start(TOKEN);
    mock.with(|st| {
        st.repos.insert(
            "acme/api".into(),
            vec![alert(
                "acme/api",
                1,
                "github_personal_access_token",
                SECRET_A,
                "open",
                None,
                "unknown",
            )],
        );
    });
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("reports")).unwrap();
    std::fs::create_dir_all(dir.path().join("th")).unwrap();
    write_report(
        &dir.path().join("reports/api.json"),
        &[gl_finding("github-pat", SECRET_A, "ci.yml", 3, "c1")],
    );
    let th = serde_json::json!({
        "SourceMetadata": {"Data": {"Git": {"commit": "c1", "file": "ci.yml", "email": "Dev <dev@example.com>",
            "repository": "https://github.com/acme/api.git", "timestamp": "2026-01-01 00:00:00 +0000", "line": 3}}},
        "SourceID": 1, "SourceType": 7, "SourceName": "trufflehog - git",
        "DetectorType": 8, "DetectorName": "Github", "DetectorDescription": "GitHub token",
        "DecoderName": "PLAIN", "Verified": true, "VerificationFromCache": false,
        "Raw": SECRET_A, "RawV2": "", "Redacted": "", "ExtraData": null, "StructuredData": null
    });
    std::fs::write(dir.path().join("th/api.jsonl"), format!("{th}\n")).unwrap();
    let cfg = config(
        dir.path(),
        &mock,
        "repositories: [acme/api]",
        "  - {name: gl, type: gitleaks, interval: 1s, paths: [\"reports/*.json\"]}\n  - {name: th, type: trufflehog, interval: 1s, paths: [\"th/*.jsonl\"]}\n",
    );
    let ex = Exporter::start(&cfg, &dir.path().join("log"), &[]);
    let m = ex.wait_for("three scanners polled and merged", |m| {
        ["gh", "gl", "th"]
            .iter()
            .all(|s| m.sum("nhi_findings_open", &[("source", s)]) == 1.0)
            && m.sum("nhi_exposed_secrets", &[]) == 1.0
    });
    // trufflehog verified it: the one exposure is live.
    assert_eq!(
        m.get("nhi_exposed_secrets", &[("validity", "live")]),
        Some(1.0)
    );
    assert!(!m.text.contains(SECRET_A) && !ex.log_text().contains(SECRET_A));
}

/// A slow upstream never holds up another source: while a GitHub poll
/// pages slowly through eight repositories (2 s a page), a gitleaks source
/// polling every second keeps applying, and `/metrics` shows each of its
/// polls long before the GitHub poll ends.
#[test]
fn a_slow_upstream_does_not_block_other_sources() {
    let mock = Mock::start(TOKEN);
    let repos: Vec<String> = (0..8).map(|i| format!("acme/r{i}")).collect();
    mock.with(|st| {
        for (i, r) in repos.iter().enumerate() {
            let a = alert(
                r,
                1,
                "github_personal_access_token",
                &format!("slow-{i}"),
                "open",
                None,
                "unknown",
            );
            st.repos.insert(r.clone(), vec![a]);
        }
        st.delay = Duration::from_secs(2);
    });
    let dir = tempfile::tempdir().unwrap();
    let reports = dir.path().join("reports");
    std::fs::create_dir(&reports).unwrap();
    let report = reports.join("repo.json");
    let findings = |n: u32| -> Vec<serde_json::Value> {
        (1..=n)
            .map(|i| {
                gl_finding(
                    "generic-api-key",
                    &format!("fast-secret-{i}"),
                    "a.py",
                    i,
                    "c1",
                )
            })
            .collect()
    };
    write_report(&report, &findings(1));
    std::fs::write(dir.path().join("token"), format!("{TOKEN}\n")).unwrap();
    let cfg = dir.path().join("nhi.yaml");
    std::fs::write(
        &cfg,
        format!(
            "state: {{path: state/state.db}}\nsources:\n  - {{name: gh, type: github_secret_scanning, interval: 1h, timeout: 60s, api_url: '{}', repositories: [{}], token_file: token}}\n  - {{name: gl, type: gitleaks, interval: 1s, paths: ['reports/*.json']}}\n",
            mock.url(),
            repos.join(", ")
        ),
    )
    .unwrap();
    let ex = Exporter::start(&cfg, &dir.path().join("log"), &[]);
    let open_gl = |m: &Metrics| m.sum("nhi_findings_open", &[("source", "gl")]);
    ex.wait_for("the first gitleaks poll", |m| open_gl(m) == 1.0);
    // GitHub has sent its first repositories' alerts and is still paging.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while mock.with(|st| st.answered) < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the mock was never asked"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    for n in [2u32, 3] {
        write_report(&report, &findings(n));
        let asked = std::time::Instant::now();
        loop {
            let m = Metrics::parse(&ex.metrics());
            if open_gl(&m) == f64::from(n) {
                // Within about two gitleaks intervals, GitHub still paging.
                assert!(
                    asked.elapsed() < Duration::from_secs(4),
                    "{:?}",
                    asked.elapsed()
                );
                assert_ne!(m.get("nhi_source_up", &[("source", "gh")]), Some(1.0));
                assert_eq!(m.sum("nhi_findings_open", &[("source", "gh")]), 0.0);
                break;
            }
            assert!(
                asked.elapsed() < Duration::from_secs(4),
                "gitleaks poll {n} not shown:\n{}\n{}",
                m.text,
                ex.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    assert!(
        mock.with(|st| st.answered) < 8,
        "GitHub finished too soon to prove anything"
    );
    // Then GitHub's poll lands whole.
    let m = ex.wait_for("the GitHub poll", |m| {
        m.get("nhi_source_up", &[("source", "gh")]) == Some(1.0)
    });
    let m = if m.sum("nhi_findings_open", &[("source", "gh")]) == 8.0 {
        m
    } else {
        ex.wait_for("GitHub's findings", |m| {
            m.sum("nhi_findings_open", &[("source", "gh")]) == 8.0
        })
    };
    assert_eq!(open_gl(&m), 3.0);
}

fn rfc3339(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// A trufflehog report written at `scanned_at` that verified `secret`.
fn write_trufflehog(path: &Path, secret: &str, scanned_at: i64) {
    let th = serde_json::json!({
        "SourceMetadata": {"Data": {"Git": {"commit": "c1", "file": "ci.yml", "email": "Dev <dev@example.com>",
            "repository": "https://github.com/acme/api.git", "timestamp": "2026-01-01 00:00:00 +0000", "line": 3}}},
        "SourceID": 1, "SourceType": 7, "SourceName": "trufflehog - git",
        "DetectorType": 8, "DetectorName": "Github", "DetectorDescription": "GitHub token",
        "DecoderName": "PLAIN", "Verified": true, "VerificationFromCache": false,
        "Raw": secret, "RawV2": "", "Redacted": "", "ExtraData": null, "StructuredData": null
    });
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{th}\n")).unwrap();
    let f = std::fs::File::options().write(true).open(&tmp).unwrap();
    f.set_modified(std::time::UNIX_EPOCH + Duration::from_secs(scanned_at as u64))
        .unwrap();
    drop(f);
    std::fs::rename(&tmp, path).unwrap();
}

/// SPEC §2: validity is the latest statement. trufflehog verified the key
/// in a CI report 20 days ago; GitHub's validity check said inactive 10 days
/// ago (the alert resolved as revoked): revoked at GitHub's time by the
/// validity check, although the old report still says Verified. A report
/// scanned now that still verifies the key is a re-exposure.
#[test]
fn the_latest_validity_statement_wins_across_scanners() {
    const SECRET: &str = "ghp_canaryLATESTstatementCANARY000001";
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let day = 86_400;
    let mock = Mock::start(TOKEN);
    mock.with(|st| {
        let mut a = alert(
            "acme/api",
            1,
            "github_personal_access_token",
            SECRET,
            "resolved",
            Some("revoked"),
            "inactive",
        );
        // Alerted 25 days ago: the first detection whichever source polls
        // first.
        a["created_at"] = rfc3339(now - 25 * day).into();
        a["resolved_at"] = rfc3339(now - 10 * day).into();
        a["updated_at"] = rfc3339(now - 10 * day).into();
        st.repos.insert("acme/api".into(), vec![a]);
    });
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("th")).unwrap();
    let report = dir.path().join("th/api.jsonl");
    write_trufflehog(&report, SECRET, now - 20 * day);
    let cfg = config(
        dir.path(),
        &mock,
        "repositories: [acme/api]",
        "  - {name: th, type: trufflehog, interval: 1s, paths: [\"th/*.jsonl\"]}\n",
    );
    let ex = Exporter::start(&cfg, &dir.path().join("log"), &[]);
    let m = ex.wait_for("both scanners polled", |m| {
        m.get("nhi_source_up", &[("source", "gh")]) == Some(1.0)
            && m.get("nhi_source_up", &[("source", "th")]) == Some(1.0)
            && m.get(
                "nhi_exposures_revoked_total",
                &[("confirmed_by", "validity_check")],
            ) == Some(1.0)
    });
    // One exposure, still open (the trufflehog finding), but inactive and
    // revoked at GitHub's time (10 days ago): 15 days after its first
    // detection (the alert, 25 days ago).
    assert_eq!(m.sum("nhi_exposed_secrets", &[]), 1.0);
    assert_eq!(
        m.get("nhi_exposed_secrets", &[("validity", "inactive")]),
        Some(1.0)
    );
    assert_eq!(
        m.get(
            "nhi_time_to_revoke_seconds_sum",
            &[("confirmed_by", "validity_check")]
        ),
        Some((15 * day) as f64)
    );
    assert_eq!(m.get("nhi_exposures_reopened_total", &[]), Some(0.0));
    assert_eq!(m.get("nhi_residual_exposures", &[]), Some(0.0));
    // trufflehog scans again now and still verifies the key: re-exposed.
    write_trufflehog(&report, SECRET, now);
    let m = ex.wait_for("the re-exposure", |m| {
        m.get("nhi_exposures_reopened_total", &[]) == Some(1.0)
    });
    assert_eq!(
        m.get("nhi_exposed_secrets", &[("validity", "live")]),
        Some(1.0)
    );
    assert_eq!(
        m.get(
            "nhi_exposures_revoked_total",
            &[("confirmed_by", "validity_check")]
        ),
        Some(1.0)
    );
    let log = ex.log_text();
    assert!(!log.contains(SECRET) && !m.text.contains(SECRET));
}

/// Issue 18: a year-old organisation shows true windows on the first
/// scrape. Ten alerts created, resolved and revalidated over 120 days: on
/// the first poll, every 7d/30d/90d delta, ratio and median is exact,
/// reconstructed from the alerts' own times, and the store's history
/// reaches back to the oldest alert.
#[test]
fn windows_are_reconstructed_from_alert_times_on_the_first_poll() {
    let day = 86_400;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let mock = Mock::start(TOKEN);
    // (created, resolved (days ago, resolution), validity, updated) days ago.
    type Spec = (i64, Option<(i64, &'static str)>, &'static str);
    let specs: [Spec; 10] = [
        (120, None, "unknown"),
        (100, Some((95, "revoked")), "inactive"),
        (60, Some((50, "false_positive")), "unknown"),
        (40, Some((20, "revoked")), "inactive"),
        (25, None, "active"),
        (10, Some((4, "revoked")), "inactive"),
        (5, None, "unknown"),
        (3, Some((1, "revoked")), "inactive"),
        (6, Some((2, "false_positive")), "unknown"),
        (2, None, "unknown"),
    ];
    mock.with(|st| {
        let alerts = specs
            .iter()
            .enumerate()
            .map(|(i, (created, resolved, validity))| {
                let mut a = alert(
                    "acme/api",
                    i as u64 + 1,
                    "github_personal_access_token",
                    &format!("ghp_canaryHISTORY{i:02}canaryHISTORYcanary0"),
                    if resolved.is_some() {
                        "resolved"
                    } else {
                        "open"
                    },
                    resolved.map(|r| r.1),
                    validity,
                );
                let updated = resolved.map_or(*created, |r| r.0);
                a["created_at"] = rfc3339(now - created * day).into();
                a["updated_at"] = rfc3339(now - updated * day).into();
                if let Some((d, _)) = resolved {
                    a["resolved_at"] = rfc3339(now - d * day).into();
                }
                a
            })
            .collect();
        st.repos.insert("acme/api".into(), alerts);
    });
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        &mock,
        "repositories: [acme/api]",
        "policy: {windows: [7d, 30d, 90d]}\n",
    );
    let stdout = once_ok(&cfg, &[]);
    let m = Metrics::parse(&stdout);
    let w = |name: &str, window: &str| m.get(name, &[("window", window)]);
    // Open now: 4; 7, 30 and 90 days ago: 3, 2 and 1.
    assert_eq!(m.sum("nhi_exposed_secrets", &[]), 4.0);
    assert_eq!(w("nhi_secrets_in_code_delta", "7d"), Some(1.0));
    assert_eq!(w("nhi_secrets_in_code_delta", "30d"), Some(2.0));
    assert_eq!(w("nhi_secrets_in_code_delta", "90d"), Some(3.0));
    assert_eq!(w("nhi_closure_ratio", "7d"), Some(3.0 / 7.0));
    assert_eq!(w("nhi_closure_ratio", "30d"), Some(0.5));
    assert_eq!(w("nhi_closure_ratio", "90d"), Some(5.0 / 9.0));
    assert_eq!(w("nhi_exposure_reduction_ratio", "7d"), Some(2.0 / 7.0));
    assert_eq!(w("nhi_exposure_reduction_ratio", "30d"), Some(3.0 / 8.0));
    assert_eq!(w("nhi_exposure_reduction_ratio", "90d"), Some(3.0 / 9.0));
    let med = |window: &str| w("nhi_time_to_revoke_median_seconds", window);
    assert_eq!(med("7d"), Some((4 * day) as f64));
    assert_eq!(med("30d"), Some((6 * day) as f64));
    assert_eq!(med("90d"), Some((6 * day) as f64));
    assert_eq!(
        m.get(
            "nhi_exposures_revoked_total",
            &[("confirmed_by", "validity_check")]
        ),
        Some(4.0)
    );
    // The history reaches back to the oldest alert (the run took seconds).
    let history = m.get("nhi_store_history_seconds", &[]).unwrap();
    assert!(
        (history - (120 * day) as f64).abs() < 60.0,
        "history {history}"
    );
    assert!(!m.text.contains("canaryHISTORY"));

    // The same history for Prometheus: OpenMetrics with timestamps, one
    // point every 30 days over the last 90, the last one reading as now.
    let text = stdout_ok(
        std::process::Command::new(BIN)
            .arg(format!("--config.file={}", cfg.display()))
            .args(["export-history", "--from", "90d", "--step", "30d"])
            .args(["--label", "job=nhi", "--label", "instance=host:10073"]),
    );
    let closure_30d: Vec<&str> = text
        .lines()
        .filter(|l| {
            l.starts_with("nhi_closure_ratio{job=\"nhi\",instance=\"host:10073\",window=\"30d\"}")
        })
        .collect();
    assert_eq!(closure_30d.len(), 4, "{text}");
    assert_eq!(closure_30d[3].split(' ').nth(1), Some("0.5"));
    assert!(text.ends_with("# EOF\n") && !text.contains("canaryHISTORY"));
}
