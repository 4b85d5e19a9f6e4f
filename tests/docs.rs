//! The documentation stays true: the bundled configs validate, every
//! exposed metric is documented, and `--version` names the build.

mod common;
use common::*;
use std::path::PathBuf;
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn bundled_configs_validate() {
    for (file, env) in [
        (
            "config/example.yaml",
            vec![
                ("SCAN_DIR", "/scans"),
                ("GITLAB_TOKEN", "x"),
                ("GITHUB_TOKEN", "x"),
                ("VAULT_TOKEN", "x"),
                ("AZURE_CLIENT_SECRET", "x"),
            ],
        ),
        ("config/demo.yaml", vec![]),
    ] {
        let out = Command::new(BIN)
            .arg(format!("--config.file={}", repo().join(file).display()))
            .arg("--config.check")
            .envs(env)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{file}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The `--once` exposition of a gitleaks source `d` over the demo reports;
/// `extra` is inserted into the source's keys (e.g. `interval: 7m, `).
fn once_over_demo_reports(extra: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.yaml");
    std::fs::write(
        &cfg,
        format!(
            "state: {{path: s.db}}\nsources: [{{name: d, type: gitleaks, {extra}paths: ['{}/config/demo/gitleaks/*.json']}}]\n",
            repo().display()
        ),
    )
    .unwrap();
    let out = Command::new(BIN)
        .arg(format!("--config.file={}", cfg.display()))
        .arg("--once")
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

/// The demo configuration (config/demo.yaml) over a fresh store: `args`
/// run (e.g. `--once`, or `backfill`); returns (success, stdout, stderr).
fn run_demo_config(dir: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let demo = std::fs::read_to_string(repo().join("config/demo.yaml")).unwrap();
    let cfg = dir.join("demo.yaml");
    let text = demo
        .replace(
            "path: ../target/nhi-demo/state.db",
            &format!("path: {}", dir.join("s.db").display()),
        )
        .replace(" demo/", &format!(" {}/config/demo/", repo().display()));
    assert!(!text.contains(" demo/"), "{text}");
    std::fs::write(&cfg, text).unwrap();
    let out = Command::new(BIN)
        .arg(format!("--config.file={}", cfg.display()))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// The sample value of the series `series` (name and labels, exactly as
/// exposed).
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{series} ")))
        .unwrap_or_else(|| panic!("{series} missing"))
        .parse()
        .unwrap()
}

const DAY: f64 = 86_400.0;

/// The demo's story on its first `--once`, as README and
/// docs/CONFIGURATION.md tell it. Every value is exact: the past scans are
/// dated relative to the backfill's start, so only ages measured against
/// the clock (store history, residual age) move by the seconds the run
/// took.
#[test]
fn demo_tells_the_whole_story_on_its_first_start() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, text, err) = run_demo_config(dir.path(), &["--once"]);
    assert!(ok, "{err}");
    let exact = [
        ("nhi_exposed_secrets{validity=\"live\"}", 0.0),
        ("nhi_exposed_secrets{validity=\"inactive\"}", 2.0),
        ("nhi_exposed_secrets{validity=\"unknown\"}", 6.0),
        ("nhi_secrets_in_code_delta{window=\"7d\"}", -1.0),
        ("nhi_secrets_in_code_delta{window=\"30d\"}", -2.0),
        ("nhi_secrets_in_code_delta{window=\"90d\"}", 1.0),
        ("nhi_closure_ratio{window=\"7d\"}", 0.2),
        ("nhi_closure_ratio{window=\"30d\"}", 5.0 / 17.0),
        ("nhi_closure_ratio{window=\"90d\"}", 7.0 / 19.0),
        ("nhi_exposure_reduction_ratio{window=\"7d\"}", 0.1),
        ("nhi_exposure_reduction_ratio{window=\"30d\"}", 1.0 / 6.0),
        ("nhi_exposure_reduction_ratio{window=\"90d\"}", 1.0 / 7.0),
        ("nhi_exposures_revoked_total{confirmed_by=\"validity_check\"}", 2.0),
        ("nhi_time_to_revoke_seconds_count{confirmed_by=\"validity_check\"}", 2.0),
        // AWS key: live 80 days ago, inactive 10 days ago (70 d); Stripe
        // key: live 45 days ago, inactive 3 days ago (42 d).
        ("nhi_time_to_revoke_seconds_sum{confirmed_by=\"validity_check\"}", 112.0 * DAY),
        ("nhi_time_to_revoke_median_seconds{window=\"7d\"}", 42.0 * DAY),
        ("nhi_time_to_revoke_median_seconds{window=\"30d\"}", 56.0 * DAY),
        ("nhi_time_to_revoke_median_seconds{window=\"90d\"}", 56.0 * DAY),
        ("nhi_residual_exposures", 1.0),
        (
            "nhi_findings_closed_total{resolution=\"false_positive\",source=\"demo-detect-secrets\"}",
            1.0,
        ),
        (
            "nhi_findings_closed_total{resolution=\"disappeared\",source=\"demo-gitleaks\"}",
            5.0,
        ),
        (
            "nhi_findings_closed_total{resolution=\"disappeared\",source=\"demo-trufflehog\"}",
            1.0,
        ),
        ("nhi_posture_score{dimension=\"overall\"}", 0.625),
        ("nhi_posture_score_change{dimension=\"overall\",window=\"7d\"}", 0.625 - 1.0 / 1.8),
        ("nhi_posture_score_change{dimension=\"overall\",window=\"30d\"}", 0.125),
        ("nhi_posture_score_change{dimension=\"overall\",window=\"90d\"}", 0.625 - 1.0 / 1.7),
    ];
    for (series, want) in exact {
        let got = sample(&text, series);
        assert!((got - want).abs() < 1e-9, "{series}: {got} != {want}");
    }
    for (series, want) in [
        ("nhi_store_history_seconds", 80.0 * DAY),
        ("nhi_residual_exposure_oldest_age_seconds", 20.0 * DAY),
    ] {
        let got = sample(&text, series);
        assert!(
            got >= want && got < want + 60.0,
            "{series}: {got} vs {want}"
        );
    }
    for s in ["demo-gitleaks", "demo-trufflehog", "demo-detect-secrets"] {
        assert_eq!(
            sample(
                &text,
                &format!(
                    "nhi_source_up{{source=\"{s}\",source_type=\"{}\"}}",
                    match s {
                        "demo-gitleaks" => "gitleaks",
                        "demo-trufflehog" => "trufflehog",
                        _ => "detect_secrets",
                    }
                )
            ),
            1.0
        );
    }
}

/// `nhi-exporter backfill` over the demo: one line per source; a second
/// run applies nothing; `--once` after it tells the same story.
#[test]
fn backfill_command_over_the_demo() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, out, err) = run_demo_config(dir.path(), &["backfill"]);
    assert!(ok, "{err}");
    assert_eq!(
        out,
        "demo-gitleaks: 6 scans applied, 0 skipped as already observed, 46 findings read\n\
         demo-trufflehog: 6 scans applied, 0 skipped as already observed, 19 findings read\n\
         demo-detect-secrets: 2 scans applied, 0 skipped as already observed, 4 findings read\n"
    );
    let (ok, out, err) = run_demo_config(dir.path(), &["backfill", "--source", "demo-trufflehog"]);
    assert!(ok, "{err}");
    assert_eq!(
        out,
        "demo-trufflehog: 0 scans applied, 6 skipped as already observed, 0 findings read\n"
    );
    let (ok, text, err) = run_demo_config(dir.path(), &["--once"]);
    assert!(ok, "{err}");
    assert_eq!(sample(&text, "nhi_residual_exposures"), 1.0);
    assert_eq!(
        sample(&text, "nhi_time_to_revoke_median_seconds{window=\"30d\"}"),
        56.0 * DAY
    );
    // A directory that names no scan time: exit 1, the directory named.
    let bad = dir.path().join("history");
    std::fs::create_dir_all(bad.join("last-week")).unwrap();
    let backfill_bad = |store: &std::path::Path| {
        run_demo_config(
            store,
            &[
                "backfill",
                "--source",
                "demo-gitleaks",
                "--from",
                bad.to_str().unwrap(),
            ],
        )
    };
    let (ok, out, err) = backfill_bad(dir.path());
    assert!(!ok);
    assert_eq!(out, "");
    assert!(
        err.contains(&format!(
            "demo-gitleaks: backfill failed: io: {}: not a scan time",
            bad.join("last-week").display()
        )),
        "{err}"
    );
    // A file no path of the source would find: exit 1, dir and file named
    // (over a new store, which has not observed that day yet).
    std::fs::remove_dir(bad.join("last-week")).unwrap();
    std::fs::create_dir_all(bad.join("1d-ago")).unwrap();
    std::fs::write(bad.join("1d-ago/report.txt"), "[]").unwrap();
    let fresh = tempfile::tempdir().unwrap();
    let (ok, _, err) = backfill_bad(fresh.path());
    assert!(!ok);
    assert!(
        err.contains(&format!(
            "{}: report.txt matches none of the source's paths",
            bad.join("1d-ago").display()
        )),
        "{err}"
    );
}

#[test]
fn every_exposed_metric_is_documented() {
    let text = once_over_demo_reports("");
    let doc = std::fs::read_to_string(repo().join("docs/METRICS.md")).unwrap();
    let mut families: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    families.dedup();
    assert!(families.len() >= 20, "{families:?}");
    for f in families {
        assert!(
            doc.contains(&format!("`{f}`")),
            "{f} is not documented in docs/METRICS.md"
        );
    }
    // HELP strings say that values come from the latest poll.
    for l in text.lines().filter(|l| l.starts_with("# HELP nhi_")) {
        let name = l.split_whitespace().nth(2).unwrap();
        let domain = !name.starts_with("nhi_source_")
            && !name.starts_with("nhi_config_")
            && name != "nhi_exporter_build_info";
        if domain {
            assert!(
                l.contains("latest poll"),
                "HELP of {name} must say values come from the latest poll"
            );
        }
    }
}

#[test]
fn version_names_the_build() {
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert!(out.status.success());
    let v = String::from_utf8_lossy(&out.stdout);
    assert!(
        v.starts_with(&format!("nhi-exporter {}", env!("CARGO_PKG_VERSION"))),
        "{v}"
    );
    assert!(v.contains("revision"), "{v}");
}

/// The standard process collector and each source's configured interval are
/// on the exposition (the dashboards and the stale alert read them).
#[test]
fn process_metrics_and_source_interval_are_exposed() {
    let text = once_over_demo_reports("interval: 7m, ");
    assert!(
        text.lines()
            .any(|l| l == "nhi_source_interval_seconds{source=\"d\",source_type=\"gitleaks\"} 420"),
        "{text}"
    );
    let value = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} missing"))
            .parse()
            .unwrap()
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    // Started within the last minute, by this test.
    let started = value("process_start_time_seconds");
    assert!(started <= now && started > now - 60.0, "{started} vs {now}");
    assert!(value("process_resident_memory_bytes") > 1_000_000.0);
    assert!(value("process_open_fds") >= 3.0);
}
