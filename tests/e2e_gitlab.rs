//! `gitlab_secret_detection` against a loopback mock of GitLab's GraphQL
//! API, with the real binary: exact metric values through cursor pages,
//! state and token-status changes, rate limits, server errors, GraphQL
//! errors, unreadable groups, bad tokens and older GitLab versions.

mod common;
mod gitlab_mock;
use common::*;
use gitlab_mock::{seed, Fault, Mock, Vuln, SCHEMA_2023};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Duration;

const TOKEN: &str = "glpat-canaryTOKENcanaryTOKEN01";
const PAT: &str = "gitlab_personal_access_token";

fn config(dir: &Path, mock: &Mock, scope: &str, top: &str, timeout: &str) -> PathBuf {
    std::fs::write(dir.join("token"), format!("{TOKEN}\n")).unwrap();
    let p = dir.join("nhi.yaml");
    std::fs::write(
        &p,
        format!(
            "{top}state: {{path: state/state.db}}\nsources:\n  - name: gl\n    type: gitlab_secret_detection\n    interval: 1s\n    timeout: {timeout}\n    api_url: {}\n    {scope}\n    token_file: token\n",
            mock.url()
        ),
    )
    .unwrap();
    p
}

/// 230 vulnerabilities in group "platform" (two projects and a subgroup's
/// project), plus projects outside it. Every 10th is an AWS key with an
/// ACTIVE token, every 10th + 5 a GitLab token reported INACTIVE, the rest
/// GitLab tokens without a token status.
fn seed_group(mock: &Mock) {
    mock.with(|st| {
        seed(
            st,
            &[
                ("platform/api", 120),
                ("platform/web", 80),
                ("platform/infra/terraform", 30),
                ("other/x", 5),
                ("platform-tools/y", 3),
            ],
            |id, p, i| match i % 10 {
                0 => Vuln::new(id, p, "AWS").token("ACTIVE"),
                5 => Vuln::new(id, p, PAT).token("INACTIVE"),
                _ => Vuln::new(id, p, PAT),
            },
        )
    });
}

fn open(m: &Metrics, secret_type: &str, validity: &str) -> Option<f64> {
    m.get(
        "nhi_findings_open",
        &[
            ("source", "gl"),
            ("secret_type", secret_type),
            ("validity", validity),
        ],
    )
}

fn assert_no_canary(ex: &Exporter, dir: &Path, canaries: &[&str]) {
    let text = ex.metrics();
    let logs = ex.log_text();
    let store = read_all_files(&dir.join("state"));
    for c in canaries {
        assert!(!text.contains(c), "{c} in /metrics");
        assert!(!logs.contains(c), "{c} in the log");
        assert!(!contains(&store, c), "{c} in the store");
    }
}

#[test]
fn group_listing_pages_by_cursor_with_exact_counts() {
    let mock = Mock::start(TOKEN);
    seed_group(&mock);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &mock, "group: platform", "", "8s");
    let ex = Exporter::start(&cfg, &dir.path().join("log"), &[]);
    let m = ex.wait_for("first poll", |m| {
        m.get("nhi_source_up", &[("source", "gl")]) == Some(1.0)
    });
    let vars = mock.with(|st| st.variables.clone());
    assert!(vars.len() >= 3);
    assert_eq!(
        &vars[..3],
        &[
            json!({"fullPath": "platform", "after": null, "first": 100}),
            json!({"fullPath": "platform", "after": "eyJpZCI6000100fQ", "first": 100}),
            json!({"fullPath": "platform", "after": "eyJpZCI6000200fQ", "first": 100}),
        ],
        "230 vulnerabilities are three pages of 100, by cursor"
    );
    assert_eq!(
        m.get(
            "nhi_source_up",
            &[("source", "gl"), ("source_type", "gitlab_secret_detection")]
        ),
        Some(1.0)
    );
    // 23 AWS keys live, 23 GitLab tokens inactive, 184 unknown; the 8
    // vulnerabilities outside the group are not listed.
    assert_eq!(open(&m, "aws", "live"), Some(23.0));
    assert_eq!(open(&m, PAT, "inactive"), Some(23.0));
    assert_eq!(open(&m, PAT, "unknown"), Some(184.0));
    assert_eq!(m.sum("nhi_findings_open", &[("source", "gl")]), 230.0);
    let m = ex.wait_for("KPIs", |m| m.sum("nhi_exposed_secrets", &[]) == 230.0);
    assert_eq!(
        m.get("nhi_exposed_secrets", &[("validity", "live")]),
        Some(23.0)
    );
    assert_eq!(
        m.get("nhi_exposed_secrets", &[("validity", "inactive")]),
        Some(23.0)
    );
    assert_eq!(
        m.get("nhi_exposed_secrets", &[("validity", "unknown")]),
        Some(184.0)
    );
    assert_eq!(
        m.get(
            "nhi_findings_detected_total",
            &[("source", "gl"), ("secret_type", "aws")]
        ),
        Some(23.0)
    );
    assert_eq!(
        m.get(
            "nhi_findings_detected_total",
            &[("source", "gl"), ("secret_type", PAT)]
        ),
        Some(207.0)
    );
    // Open but reported INACTIVE by GitLab's validity check: revoked.
    assert_eq!(
        m.get(
            "nhi_exposures_revoked_total",
            &[("confirmed_by", "validity_check")]
        ),
        Some(23.0)
    );
    assert_eq!(m.sum("nhi_findings_closed_total", &[("source", "gl")]), 0.0);
    assert_eq!(m.sum("nhi_source_errors_total", &[("source", "gl")]), 0.0);

    // Nothing changed: every page is read again (GraphQL has no ETags), the
    // target is not applied again.
    let before = mock.with(|st| st.requests);
    std::thread::sleep(Duration::from_millis(2500));
    let after = mock.with(|st| st.requests);
    assert!(after >= before + 3, "requests {before} -> {after}");
    let vars = mock.with(|st| st.variables.clone());
    assert!(
        vars.iter().all(|v| vars[..3].contains(v)),
        "every poll reads the same three pages"
    );
    assert!(
        ex.log_text().contains("targets=0"),
        "an unchanged listing is not re-applied"
    );
    let m = ex.wait_for("steady", |m| {
        m.sum("nhi_findings_open", &[("source", "gl")]) == 230.0
    });
    assert_eq!(
        m.sum("nhi_findings_detected_total", &[("source", "gl")]),
        230.0
    );
    assert_eq!(m.sum("nhi_findings_closed_total", &[("source", "gl")]), 0.0);

    assert_no_canary(&ex, dir.path(), &[TOKEN]);
}

#[test]
fn state_and_token_status_changes_follow_the_lifecycle() {
    let mock = Mock::start(TOKEN);
    mock.with(|st| {
        st.vulns = vec![
            Vuln::new(1001, "platform/api", PAT),
            Vuln::new(1002, "platform/api", PAT)
                .state("CONFIRMED")
                .token("ACTIVE"),
            Vuln::new(1003, "platform/web", "AWS").token("ACTIVE"),
            Vuln::new(1004, "platform/web", PAT),
            {
                let mut v = Vuln::new(1005, "platform/web", PAT)
                    .state("DISMISSED")
                    .token("UNKNOWN");
                v.dismissal_reason = Some("USED_IN_TESTS");
                v
            },
            Vuln::new(1006, "platform/api", PAT).token("UNKNOWN"),
        ];
    });
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &mock, "group: platform", "", "8s");
    let ex = Exporter::start(&cfg, &dir.path().join("log"), &[]);
    let m = ex.wait_for("first poll", |m| {
        m.sum("nhi_findings_detected_total", &[("source", "gl")]) == 6.0
    });
    assert_eq!(open(&m, PAT, "unknown"), Some(3.0));
    assert_eq!(open(&m, PAT, "live"), Some(1.0));
    assert_eq!(open(&m, "aws", "live"), Some(1.0));
    assert_eq!(
        m.get(
            "nhi_findings_closed_total",
            &[("source", "gl"), ("resolution", "used_in_tests")]
        ),
        Some(1.0),
        "dismissed when first seen"
    );
    let m = ex.wait_for("KPIs", |m| m.sum("nhi_exposed_secrets", &[]) == 5.0);
    assert_eq!(
        m.get("nhi_exposed_secrets", &[("validity", "live")]),
        Some(2.0)
    );
    assert_eq!(m.get("nhi_residual_exposures", &[]), Some(0.0));
    assert_eq!(
        m.get(
            "nhi_exposures_revoked_total",
            &[("confirmed_by", "validity_check")]
        ),
        Some(0.0)
    );

    mock.with(|st| {
        // Dismissed as a false positive.
        let v = st.vuln(1001);
        v.state = "DISMISSED";
        v.dismissal_reason = Some("FALSE_POSITIVE");
        // GitLab's validity check: the token no longer works.
        st.vuln(1002).token = Some("INACTIVE");
        // Resolved while the key still works: closed, still exposed.
        st.vuln(1003).state = "RESOLVED";
        // Deleted upstream: missing from the complete listing.
        st.vulns.retain(|v| v.id != 1004);
    });
    let m = ex.wait_for("changes applied", |m| {
        m.get(
            "nhi_exposures_revoked_total",
            &[("confirmed_by", "validity_check")],
        ) == Some(1.0)
            && m.get("nhi_residual_exposures", &[]) == Some(1.0)
            && m.sum("nhi_findings_closed_total", &[("source", "gl")]) == 4.0
    });
    let closed = |r: &str| {
        m.get(
            "nhi_findings_closed_total",
            &[("source", "gl"), ("resolution", r)],
        )
    };
    assert_eq!(closed("false_positive"), Some(1.0));
    assert_eq!(closed("other"), Some(1.0), "RESOLVED");
    assert_eq!(closed("disappeared"), Some(1.0));
    assert_eq!(closed("used_in_tests"), Some(1.0));
    assert_eq!(
        closed("revoked"),
        Some(0.0),
        "GitLab has no revoked resolution"
    );
    assert_eq!(
        m.get(
            "nhi_time_to_revoke_seconds_count",
            &[("confirmed_by", "validity_check")]
        ),
        Some(1.0)
    );
    assert_eq!(
        m.get("nhi_time_to_close_seconds_count", &[("source", "gl")]),
        Some(4.0)
    );
    assert_eq!(
        open(&m, PAT, "inactive"),
        Some(1.0),
        "confirmed is still open"
    );
    assert_eq!(open(&m, PAT, "unknown"), Some(1.0));
    assert_eq!(m.sum("nhi_findings_open", &[("source", "gl")]), 2.0);
    let m = ex.wait_for("KPIs", |m| m.sum("nhi_exposed_secrets", &[]) == 2.0);
    assert_eq!(
        m.get("nhi_exposed_secrets", &[("validity", "inactive")]),
        Some(1.0)
    );
    assert_eq!(
        m.get("nhi_exposed_secrets", &[("validity", "unknown")]),
        Some(1.0)
    );
    assert_eq!(
        m.get("nhi_exposed_secrets", &[("validity", "live")]),
        Some(0.0)
    );
    assert_no_canary(&ex, dir.path(), &[TOKEN]);
}

#[test]
fn rate_limits_and_server_errors_are_retried_within_the_poll() {
    let mock = Mock::start(TOKEN);
    mock.with(|st| {
        seed(st, &[("platform/api", 40)], |id, p, _| {
            Vuln::new(id, p, PAT)
        });
        st.faults.push_back(Fault::RateLimited {
            retry_after: Some(1),
        });
        st.faults.push_back(Fault::Status(502));
    });
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &mock, "group: platform", "", "8s");
    let started = std::time::Instant::now();
    let stdout = once_ok(&cfg, &[]);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1 was waited out"
    );
    assert_eq!(
        mock.with(|st| st.requests),
        3,
        "two retried faults, then one page"
    );
    let m = Metrics::parse(&stdout);
    assert_eq!(m.get("nhi_source_up", &[("source", "gl")]), Some(1.0));
    assert_eq!(m.sum("nhi_source_errors_total", &[("source", "gl")]), 0.0);
    assert_eq!(m.sum("nhi_findings_open", &[("source", "gl")]), 40.0);
}

#[test]
fn failures_count_a_reason_and_close_nothing() {
    let mock = Mock::start(TOKEN);
    mock.with(|st| {
        seed(
            st,
            &[("platform/api", 100), ("platform/web", 50)],
            |id, p, _| Vuln::new(id, p, PAT),
        )
    });
    let dir = tempfile::tempdir().unwrap();
    // Keep the source's series visible through the failures (not stale).
    let cfg = config(
        dir.path(),
        &mock,
        "group: platform",
        "policy: {stale_after: 1h}\n",
        "3s",
    );
    let ex = Exporter::start(&cfg, &dir.path().join("log"), &[]);
    ex.wait_for("first poll", |m| {
        m.sum("nhi_findings_open", &[("source", "gl")]) == 150.0
    });
    let errors = |m: &Metrics, reason: &str| {
        m.get(
            "nhi_source_errors_total",
            &[("source", "gl"), ("reason", reason)],
        )
        .unwrap_or(0.0)
    };
    let unchanged = |m: &Metrics| {
        assert_eq!(m.get("nhi_source_up", &[("source", "gl")]), Some(0.0));
        assert_eq!(m.sum("nhi_findings_closed_total", &[("source", "gl")]), 0.0);
        assert_eq!(m.sum("nhi_findings_open", &[("source", "gl")]), 150.0);
    };

    // Persistent 5xx: retried, then http_5xx.
    mock.with(|st| (0..40).for_each(|_| st.faults.push_back(Fault::Status(500))));
    let m = ex.wait_for("5xx", |m| errors(m, "http_5xx") >= 1.0);
    unchanged(&m);
    mock.with(|st| st.faults.clear());

    // A GraphQL error on the second page: the listing is incomplete, so
    // the 50 vulnerabilities of the second page are not closed. The
    // message is not logged (it may quote data).
    mock.with(|st| {
        for _ in 0..3 {
            st.faults.push_back(Fault::Pass);
            st.faults.push_back(Fault::GraphqlError(
                "Internal server error canary-GQL-MESSAGE".into(),
            ));
        }
    });
    let m = ex.wait_for("graphql error", |m| errors(m, "http_4xx") >= 1.0);
    unchanged(&m);
    assert!(ex.log_text().contains("GraphQL error: the query was rejected (messages are not logged: they may quote data) (page 2)"));
    assert_eq!(errors(&m, "parse"), 0.0);

    // The group is no longer readable: GitLab answers data.group = null.
    mock.with(|st| {
        st.faults.clear();
        st.forbidden.insert("platform".into());
    });
    let m = ex.wait_for("null group", |m| errors(m, "auth") >= 1.0);
    unchanged(&m);
    assert!(ex
        .log_text()
        .contains("group platform does not exist or this token cannot read it"));

    // The token is revoked: HTTP 401, auth.
    let auth_before = errors(&m, "auth");
    mock.with(|st| {
        st.forbidden.clear();
        st.token = "another".into();
    });
    let m = ex.wait_for("401", |m| errors(m, "auth") > auth_before + 1.0);
    unchanged(&m);
    assert!(ex.log_text().contains("HTTP 401"));

    // Back to normal: nothing was lost.
    mock.with(|st| st.token = TOKEN.into());
    let m = ex.wait_for("recovered", |m| {
        m.get("nhi_source_up", &[("source", "gl")]) == Some(1.0)
    });
    assert_eq!(m.sum("nhi_findings_open", &[("source", "gl")]), 150.0);
    assert_eq!(m.sum("nhi_findings_closed_total", &[("source", "gl")]), 0.0);
    assert_no_canary(&ex, dir.path(), &[TOKEN, "canary-GQL-MESSAGE"]);
}

#[test]
fn older_gitlab_and_complexity_limits_are_adapted_to() {
    let mock = Mock::start(TOKEN);
    mock.with(|st| {
        seed(st, &[("platform/api", 60)], |id, p, _| {
            Vuln::new(id, p, PAT).token("ACTIVE")
        });
        st.no_token_status = true;
        st.max_first = Some(25);
        // Introspection refused: the listing adapts to the errors instead.
        st.introspection_refused = true;
    });
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &mock, "group: platform", "", "8s");
    let out = std::process::Command::new(BIN)
        .arg(format!("--config.file={}", cfg.display()))
        .arg("--once")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("findingTokenStatus"), "{stderr}");
    assert!(stderr.contains("complexity"), "{stderr}");
    let firsts: Vec<u64> = mock.with(|st| {
        st.variables
            .iter()
            .map(|v| v["first"].as_u64().unwrap())
            .collect()
    });
    // Without token status at 100, then 50, then pages of 25.
    assert_eq!(firsts, [100, 100, 50, 25, 25, 25]);
    let m = Metrics::parse(&String::from_utf8(out.stdout).unwrap());
    assert_eq!(
        open(&m, PAT, "unknown"),
        Some(60.0),
        "no token status: validity unknown"
    );
    assert_eq!(m.sum("nhi_source_errors_total", &[("source", "gl")]), 0.0);
}

/// A GitLab of 2023 (16.0): its `Vulnerability` has no `uuid`,
/// `dismissalReason`, `updatedAt` or `findingTokenStatus`. Introspection
/// tells the source, which asks only for what exists: no error, every
/// vulnerability listed, dismissals closed as `other`, validity unknown.
#[test]
fn a_2023_gitlab_schema_is_introspected_and_listed_without_error() {
    let mock = Mock::start(TOKEN);
    mock.with(|st| {
        seed(st, &[("platform/api", 30)], |id, p, i| match i % 3 {
            0 => Vuln::new(id, p, PAT).token("ACTIVE"),
            1 => Vuln::new(id, p, PAT).state("DISMISSED"),
            _ => Vuln::new(id, p, PAT),
        });
        for v in st.vulns.iter_mut() {
            if v.state == "DISMISSED" {
                v.dismissal_reason = Some("FALSE_POSITIVE");
            }
        }
        st.schema = Some(SCHEMA_2023.to_vec());
    });
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &mock, "group: platform", "", "8s");
    let out = std::process::Command::new(BIN)
        .arg(format!("--config.file={}", cfg.display()))
        .arg("--once")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let m = Metrics::parse(&String::from_utf8(out.stdout).unwrap());
    assert_eq!(
        open(&m, PAT, "unknown"),
        Some(20.0),
        "no token status: validity unknown"
    );
    assert_eq!(open(&m, PAT, "live"), None);
    assert_eq!(
        m.get(
            "nhi_findings_closed_total",
            &[("source", "gl"), ("resolution", "other")]
        ),
        Some(10.0),
        "no dismissalReason: dismissals close as other"
    );
    assert_eq!(m.sum("nhi_source_errors_total", &[("source", "gl")]), 0.0);
    let (introspections, firsts) = mock.with(|st| (st.introspections, st.variables.len()));
    assert_eq!(introspections, 1, "once per poll");
    assert_eq!(firsts, 1, "one page, no failed attempt");
}

#[test]
fn a_project_with_the_token_from_the_environment() {
    let mock = Mock::start(TOKEN);
    seed_group(&mock);
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("nhi.yaml");
    std::fs::write(
        &cfg,
        format!(
            "state: {{path: state/state.db}}\nsources:\n  - name: gl\n    type: gitlab_secret_detection\n    api_url: {}\n    project: platform/infra/terraform\n    token: ${{GITLAB_TOKEN}}\n",
            mock.url()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(BIN)
        .arg(format!("--config.file={}", cfg.display()))
        .arg("--once")
        .env("GITLAB_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let vars = mock.with(|st| st.variables.clone());
    assert_eq!(
        vars,
        [json!({"fullPath": "platform/infra/terraform", "after": null, "first": 100})]
    );
    let m = Metrics::parse(&String::from_utf8(out.stdout).unwrap());
    assert_eq!(m.sum("nhi_findings_open", &[("source", "gl")]), 30.0);
    assert_eq!(open(&m, "aws", "live"), Some(3.0));
    assert!(!String::from_utf8_lossy(&out.stderr).contains(TOKEN));

    // Wrong token: the poll fails (exit 1) with reason auth.
    let out = std::process::Command::new(BIN)
        .arg(format!("--config.file={}", cfg.display()))
        .arg("--once")
        .env("GITLAB_TOKEN", "glpat-wrong")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let m = Metrics::parse(&String::from_utf8(out.stdout).unwrap());
    assert_eq!(
        m.get(
            "nhi_source_errors_total",
            &[("source", "gl"), ("reason", "auth")]
        ),
        Some(1.0)
    );
}
