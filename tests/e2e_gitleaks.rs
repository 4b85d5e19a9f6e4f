//! The real binary through several polls of changing gitleaks reports,
//! restarts, bad inputs, staleness, reloads and canary secrets.

mod common;
use common::*;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const CANARY_A: &str = "nhi-canary-7f3a9c1e-alpha-QmFzZTY0";
const CANARY_B: &str = "nhi-canary-2b8d4e6f-beta-c2VjcmV0";
const AWS_SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

fn config(dir: &Path, extra_policy: &str, extra_source: &str) -> std::path::PathBuf {
    let p = dir.join("nhi.yaml");
    std::fs::write(
        &p,
        format!(
            "state: {{path: state/state.db}}\npolicy: {{windows: [7d, 30d]{extra_policy}}}\nsources:\n  - name: ci\n    type: gitleaks\n    interval: 1s\n    timeout: 10s\n    paths: [\"reports/*.json\"]\n{extra_source}"
        ),
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("reports")).unwrap();
    p
}

fn aws_finding() -> serde_json::Value {
    gl_aws_finding(AWS_SECRET)
}

#[test]
fn lifecycle_across_polls_and_restarts_leaks_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "", "");
    let reports = dir.path().join("reports");
    let log = dir.path().join("exporter.log");
    write_report(
        &reports.join("repo1.json"),
        &[
            gl_finding("generic-api-key", CANARY_A, "a.py", 1, "c1"),
            gl_finding("generic-api-key", CANARY_B, "b.py", 2, "c1"),
            aws_finding(),
        ],
    );
    write_report(
        &reports.join("repo2.json"),
        &[gl_finding("generic-api-key", CANARY_A, "x.py", 5, "c9")],
    );

    let mut ex = Exporter::start(&cfg, &log, &[]);
    let m = ex.wait_for("first poll", |m| {
        m.get("nhi_source_up", &[("source", "ci")]) == Some(1.0)
    });
    // Four findings, three distinct secrets (A is in both repositories).
    assert_eq!(
        m.get("nhi_exposed_secrets", &[("validity", "unknown")]),
        Some(3.0)
    );
    assert_eq!(
        m.get("nhi_exposed_secrets", &[("validity", "live")]),
        Some(0.0)
    );
    assert_eq!(
        m.get(
            "nhi_findings_open",
            &[
                ("source", "ci"),
                ("secret_type", "generic_api_key"),
                ("validity", "unknown")
            ]
        ),
        Some(3.0)
    );
    assert_eq!(
        m.get(
            "nhi_findings_open",
            &[("source", "ci"), ("secret_type", "aws_access_token")]
        ),
        Some(1.0)
    );
    assert_eq!(
        m.sum("nhi_findings_detected_total", &[("source", "ci")]),
        4.0
    );
    assert_eq!(
        m.get("nhi_secrets_in_code_delta", &[("window", "7d")]),
        Some(0.0)
    );
    assert_eq!(m.get("nhi_residual_exposures", &[]), Some(0.0));
    let (code, _) = ex.get("/-/ready");
    assert_eq!(code, 200);

    // B removed from repo1's newer scan: closed as disappeared.
    std::thread::sleep(Duration::from_millis(1100)); // a distinct scan time
    write_report(
        &reports.join("repo1.json"),
        &[
            gl_finding("generic-api-key", CANARY_A, "a.py", 1, "c1"),
            aws_finding(),
        ],
    );
    let m = ex.wait_for("B closed", |m| {
        m.get(
            "nhi_findings_closed_total",
            &[("source", "ci"), ("resolution", "disappeared")],
        ) == Some(1.0)
    });
    assert_eq!(
        m.get("nhi_time_to_close_seconds_count", &[("source", "ci")]),
        Some(1.0)
    );
    let ttc = m
        .get("nhi_time_to_close_seconds_sum", &[("source", "ci")])
        .unwrap();
    assert!((1.0..60.0).contains(&ttc), "time to close {ttc}");
    let m = ex.wait_for("KPIs recomputed", |m| {
        m.get("nhi_exposed_secrets", &[("validity", "unknown")]) == Some(2.0)
    });
    assert_eq!(
        m.get("nhi_secrets_in_code_delta", &[("window", "7d")]),
        Some(-1.0)
    );
    assert_eq!(m.get("nhi_closure_ratio", &[("window", "7d")]), Some(0.25));
    assert_eq!(
        m.get("nhi_exposure_reduction_ratio", &[("window", "7d")]),
        Some(0.0)
    );

    let (status, took) = ex.stop();
    assert!(status.success(), "exit status {status:?}");
    assert!(took < Duration::from_secs(10), "shutdown took {took:?}");

    // Restart: counters, histograms and history continue.
    let mut ex = Exporter::start(&cfg, &log, &[]);
    let m = ex.wait_for("poll after restart", |m| {
        m.get("nhi_source_up", &[("source", "ci")]) == Some(1.0)
    });
    assert_eq!(
        m.get(
            "nhi_findings_closed_total",
            &[("source", "ci"), ("resolution", "disappeared")]
        ),
        Some(1.0)
    );
    assert_eq!(
        m.sum("nhi_findings_detected_total", &[("source", "ci")]),
        4.0
    );
    assert_eq!(
        m.get("nhi_time_to_close_seconds_count", &[("source", "ci")]),
        Some(1.0)
    );
    assert_eq!(
        m.get("nhi_secrets_in_code_delta", &[("window", "7d")]),
        Some(-1.0)
    );
    assert!(m.get("nhi_store_history_seconds", &[]).unwrap() >= 1.0);

    // repo2 clean: A is still open in repo1, so the exposure stays open.
    write_report(&reports.join("repo2.json"), &[]);
    let m = ex.wait_for("repo2 closed", |m| {
        m.get(
            "nhi_findings_closed_total",
            &[("source", "ci"), ("resolution", "disappeared")],
        ) == Some(2.0)
    });
    assert_eq!(
        m.get("nhi_time_to_close_seconds_count", &[("source", "ci")]),
        Some(2.0)
    );
    let m = ex.wait_for("KPIs recomputed", |m| {
        m.get(
            "nhi_findings_open",
            &[("source", "ci"), ("secret_type", "generic_api_key")],
        ) == Some(1.0)
    });
    assert_eq!(
        m.get("nhi_exposed_secrets", &[("validity", "unknown")]),
        Some(2.0)
    );
    let metrics_text = m.text.clone();
    let (status, _) = ex.stop();
    assert!(status.success());

    // Canaries: nowhere in /metrics, the logs or any file of the store.
    let store_bytes = read_all_files(&dir.path().join("state"));
    let log_text = std::fs::read_to_string(&log).unwrap();
    for canary in [CANARY_A, CANARY_B, AWS_SECRET] {
        assert!(!metrics_text.contains(canary), "{canary} in /metrics");
        assert!(!log_text.contains(canary), "{canary} in the log");
        assert!(!contains(&store_bytes, canary), "{canary} in the store");
    }
    // Locations are never labels.
    for loc in ["a.py", "repo1", "deploy/prod.env", "git.example.com"] {
        assert!(!metrics_text.contains(loc), "{loc} in /metrics");
    }
}

#[test]
fn bad_inputs_are_counted_name_the_file_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "", "    max_file_size: 4KiB\n");
    let reports = dir.path().join("reports");
    let log = dir.path().join("exporter.log");
    write_report(
        &reports.join("good.json"),
        &[gl_finding(
            "generic-api-key",
            "good-value-1",
            "g.py",
            1,
            "c",
        )],
    );
    write_report(
        &reports.join("will-break.json"),
        &[gl_finding(
            "generic-api-key",
            "break-value-1",
            "w.py",
            1,
            "c",
        )],
    );
    let ex = Exporter::start(&cfg, &log, &[]);
    ex.wait_for("first poll", |m| {
        m.get("nhi_source_up", &[("source", "ci")]) == Some(1.0)
    });

    // Malformed JSON (with a canary inside), non-UTF-8, and an oversized report.
    std::fs::write(
        reports.join("will-break.json"),
        format!("[{{\"RuleID\": \"x\", \"Secret\": \"{CANARY_A}\" \"File\": 1}}]"),
    )
    .unwrap();
    std::fs::write(
        reports.join("latin1.json"),
        b"[{\"RuleID\": \"x\", \"Secret\": \"\xe9\xe9\"}]",
    )
    .unwrap();
    let big: Vec<_> = (0..100)
        .map(|i| gl_finding("generic-api-key", &format!("v{i}"), "f", i, "c"))
        .collect();
    write_report(&reports.join("huge.json"), &big);
    let m = ex.wait_for("errors counted", |m| {
        m.get(
            "nhi_source_errors_total",
            &[("source", "ci"), ("reason", "parse")],
        )
        .unwrap_or(0.0)
            >= 2.0
            && m.get(
                "nhi_source_errors_total",
                &[("source", "ci"), ("reason", "io")],
            )
            .unwrap_or(0.0)
                >= 1.0
    });
    assert_eq!(m.get("nhi_source_up", &[("source", "ci")]), Some(0.0));
    // The broken target keeps its finding open; nothing was closed.
    assert_eq!(m.sum("nhi_findings_open", &[("source", "ci")]), 2.0);
    assert_eq!(m.sum("nhi_findings_closed_total", &[("source", "ci")]), 0.0);

    // Other targets are still applied.
    write_report(&reports.join("good.json"), &[]);
    let m = ex.wait_for("good target applied", |m| {
        m.get(
            "nhi_findings_closed_total",
            &[("source", "ci"), ("resolution", "disappeared")],
        ) == Some(1.0)
    });
    assert!(
        m.get(
            "nhi_source_last_success_timestamp_seconds",
            &[("source", "ci")]
        )
        .unwrap()
            > 0.0
    );

    // A vanished report is not a closure.
    std::fs::remove_file(reports.join("will-break.json")).unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    let m = Metrics::parse(&ex.metrics());
    assert_eq!(m.sum("nhi_findings_closed_total", &[("source", "ci")]), 1.0);
    assert_eq!(m.sum("nhi_findings_open", &[("source", "ci")]), 1.0);

    let log_text = ex.log_text();
    assert!(
        log_text.contains("will-break.json: line 1 column"),
        "log:\n{log_text}"
    );
    assert!(
        log_text.contains("latin1.json: line 1 column"),
        "log:\n{log_text}"
    );
    assert!(
        log_text.contains("huge.json: report is"),
        "log:\n{log_text}"
    );
    assert!(!log_text.contains(CANARY_A));
    assert!(!log_text.contains("panicked"));
}

#[test]
fn a_stale_source_drops_its_data_but_keeps_up_at_zero() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), ", stale_after: 3s", "");
    let reports = dir.path().join("reports");
    write_report(
        &reports.join("r.json"),
        &[gl_finding("generic-api-key", "stale-value", "s.py", 1, "c")],
    );
    let ex = Exporter::start(&cfg, &dir.path().join("log"), &[]);
    let m = ex.wait_for("first poll", |m| {
        m.get("nhi_source_up", &[("source", "ci")]) == Some(1.0)
    });
    assert_eq!(m.sum("nhi_findings_open", &[("source", "ci")]), 1.0);
    // Every input rejected from now on: polls fail, the source goes stale.
    std::fs::write(reports.join("r.json"), "[{").unwrap();
    let m = ex.wait_for("stale", |m| !m.has("nhi_findings_open"));
    assert_eq!(m.get("nhi_source_up", &[("source", "ci")]), Some(0.0));
    assert!(m
        .get("nhi_findings_closed_total", &[("source", "ci")])
        .is_none());
    // Health and cross-source exposure state remain.
    assert_eq!(
        m.get("nhi_exposed_secrets", &[("validity", "unknown")]),
        Some(1.0)
    );
    assert!(
        m.get(
            "nhi_source_last_success_timestamp_seconds",
            &[("source", "ci")]
        )
        .unwrap()
            > 0.0
    );
    // Recovery brings the data back.
    write_report(
        &reports.join("r.json"),
        &[gl_finding("generic-api-key", "stale-value", "s.py", 1, "c")],
    );
    let m = ex.wait_for("recovered", |m| {
        m.get("nhi_source_up", &[("source", "ci")]) == Some(1.0) && m.has("nhi_findings_open")
    });
    assert_eq!(m.sum("nhi_findings_closed_total", &[("source", "ci")]), 0.0);
}

#[test]
fn reload_keeps_the_old_config_on_error_and_applies_a_good_one() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "", "");
    let reports = dir.path().join("reports");
    write_report(
        &reports.join("r.json"),
        &[gl_finding(
            "generic-api-key",
            "reload-value",
            "r.py",
            1,
            "c",
        )],
    );
    let ex = Exporter::start(&cfg, &dir.path().join("log"), &["--web.enable-lifecycle"]);
    ex.wait_for("first poll", |m| {
        m.get("nhi_source_up", &[("source", "ci")]) == Some(1.0)
    });
    let good = std::fs::read_to_string(&cfg).unwrap();

    std::fs::write(&cfg, format!("{good}  - {{name: BAD, type: nope}}\n")).unwrap();
    ex.signal("HUP");
    let m = ex.wait_for("reload failure", |m| {
        m.get("nhi_config_last_reload_successful", &[]) == Some(0.0)
    });
    assert_eq!(m.get("nhi_source_up", &[("source", "ci")]), Some(1.0));
    let (code, body) = ex.post("/-/reload");
    assert_eq!(code, 500);
    assert!(
        body.contains("sources[1].name") && body.contains("sources[1].type"),
        "{body}"
    );

    // Valid YAML, but a source that cannot be built (its CA file is
    // missing): the whole new set is refused, nothing is swapped in.
    std::fs::write(
        &cfg,
        format!("{good}  - {{name: v, type: vault, address: 'https://vault.example', auth: {{method: token, token: t}}, tls: {{ca_file: missing-ca.pem}}}}\n"),
    )
    .unwrap();
    let (code, body) = ex.post("/-/reload");
    assert_eq!(code, 500);
    assert!(
        body.contains("sources[1].tls.ca_file: cannot read"),
        "{body}"
    );
    let m = Metrics::parse(&ex.metrics());
    assert_eq!(m.get("nhi_config_last_reload_successful", &[]), Some(0.0));
    assert_eq!(m.get("nhi_source_up", &[("source", "ci")]), Some(1.0));
    assert_eq!(
        m.get("nhi_source_up", &[("source", "v")]),
        None,
        "{}",
        m.text
    );

    std::fs::write(
        &cfg,
        format!("{good}  - name: second\n    type: gitleaks\n    interval: 1s\n    paths: [\"reports/*.json\"]\n"),
    )
    .unwrap();
    let (code, body) = ex.post("/-/reload");
    assert_eq!(code, 200, "{body}");
    let m = ex.wait_for("second source", |m| {
        m.get("nhi_source_up", &[("source", "second")]) == Some(1.0)
    });
    assert_eq!(m.get("nhi_config_last_reload_successful", &[]), Some(1.0));
    // Both scanners report the same finding; it is still one exposure.
    let m = ex.wait_for("recomputed", |m| m.sum("nhi_findings_open", &[]) == 2.0);
    assert_eq!(
        m.get("nhi_exposed_secrets", &[("validity", "unknown")]),
        Some(1.0)
    );
    let (code, _) = ex.get("/-/reload");
    assert_eq!(code, 405);
}

#[test]
fn http_reload_needs_the_lifecycle_flag() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "", "");
    let ex = Exporter::start(&cfg, &dir.path().join("log"), &[]);
    ex.wait_for("first poll", |m| {
        m.get("nhi_source_up", &[("source", "ci")]) == Some(1.0)
    });
    let good = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, format!("{good}  - {{name: BAD, type: nope}}\n")).unwrap();
    // Without --web.enable-lifecycle: refused, nothing is re-read, and the
    // body says how to reload instead (no configuration detail).
    let (code, body) = ex.post("/-/reload");
    assert_eq!(code, 403, "{body}");
    assert!(
        body.contains("--web.enable-lifecycle") && !body.contains("sources["),
        "{body}"
    );
    let m = Metrics::parse(&ex.metrics());
    assert_eq!(m.get("nhi_config_last_reload_successful", &[]), Some(1.0));
    // SIGHUP always reloads.
    ex.signal("HUP");
    ex.wait_for("SIGHUP reload", |m| {
        m.get("nhi_config_last_reload_successful", &[]) == Some(0.0)
    });
}

#[test]
fn http_endpoints() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "", "");
    let ex = Exporter::start(
        &cfg,
        &dir.path().join("log"),
        &["--web.telemetry-path=/custom"],
    );
    ex.wait_for_path();
    let (code, body) = ex.get("/");
    assert_eq!(code, 200);
    assert!(
        body.contains("nhi-exporter")
            && body.contains("href=\"/custom\"")
            && body.contains("<td>ci</td>"),
        "{body}"
    );
    assert_eq!(ex.get("/-/healthy").0, 200);
    assert_eq!(ex.get("/nope").0, 404);
    let (code, body) = ex.get("/custom");
    assert_eq!(code, 200);
    assert!(body.contains("nhi_exporter_build_info{"));
    // Prometheus asks for gzip: the compressed body is the same exposition.
    let r = reqwest::blocking::Client::new()
        .get(ex.url("/custom"))
        .header("Accept-Encoding", "gzip")
        .send()
        .unwrap();
    assert_eq!(r.headers()["content-encoding"], "gzip");
    let gz = r.bytes().unwrap();
    let mut plain = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gz[..]), &mut plain).unwrap();
    assert!(plain.contains("nhi_exporter_build_info{"), "{plain}");
    assert_eq!(plain.lines().count(), body.lines().count());
    let r = reqwest::blocking::Client::new()
        .get(ex.url("/custom"))
        .header("Accept-Encoding", "gzip;q=0, identity")
        .send()
        .unwrap();
    assert!(r.headers().get("content-encoding").is_none());
}

trait WaitPath {
    fn wait_for_path(&self);
}
impl WaitPath for Exporter {
    fn wait_for_path(&self) {
        for _ in 0..200 {
            if self.get("/-/ready").0 == 200 {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("never ready");
    }
}

#[test]
fn once_prints_the_exposition_and_reports_failure() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "", "");
    let reports = dir.path().join("reports");
    write_report(
        &reports.join("r.json"),
        &[gl_finding("generic-api-key", "once-value", "o.py", 1, "c")],
    );
    let stdout = once_ok(&cfg, &[]);
    let m = Metrics::parse(&stdout);
    assert_eq!(
        m.get("nhi_exposed_secrets", &[("validity", "unknown")]),
        Some(1.0)
    );
    assert_eq!(m.get("nhi_source_up", &[("source", "ci")]), Some(1.0));

    std::fs::write(reports.join("r.json"), "not json").unwrap();
    let out = Command::new(BIN)
        .arg(format!("--config.file={}", cfg.display()))
        .arg("--once")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let m = Metrics::parse(&String::from_utf8(out.stdout).unwrap());
    assert_eq!(m.get("nhi_source_up", &[("source", "ci")]), Some(0.0));
    assert_eq!(
        m.get(
            "nhi_source_errors_total",
            &[("source", "ci"), ("reason", "parse")]
        ),
        Some(1.0)
    );
    // The failed poll closed nothing.
    assert_eq!(
        m.get("nhi_exposed_secrets", &[("validity", "unknown")]),
        Some(1.0)
    );
}

#[test]
fn config_check_prints_ok_or_every_error() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "", "");
    let out = Command::new(BIN)
        .arg(format!("--config.file={}", cfg.display()))
        .arg("--config.check")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "OK");
    // It contacts nothing: no store was created.
    assert!(!dir.path().join("state").exists());

    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "policy: {windows: [7x]}\nsources:\n  - {name: a, type: gitleaks, paths: ['${NOT_SET_ANYWHERE}/*.json']}\n  - {name: a, type: gitleaks, paths: [x], color: blue}\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .arg(format!("--config.file={}", bad.display()))
        .arg("--config.check")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    for want in [
        "policy.windows[0]",
        "sources[0].paths[0]: environment variable NOT_SET_ANYWHERE",
        "sources[1].color",
    ] {
        assert!(err.contains(want), "missing {want} in:\n{err}");
    }

    // A CA file is read and checked by --config.check, not at the first
    // poll; its content is never shown.
    std::fs::write(dir.path().join("not-a-ca.pem"), "canary-ca-content").unwrap();
    let ca = dir.path().join("ca.yaml");
    std::fs::write(
        &ca,
        "sources:\n  - {name: g, type: github_secret_scanning, org: acme, token: t, ca_file: missing.pem}\n  - {name: l, type: gitlab_secret_detection, api_url: 'https://gl.example', group: g, token: t, ca_file: not-a-ca.pem}\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .arg(format!("--config.file={}", ca.display()))
        .arg("--config.check")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("sources[0].ca_file: cannot read"), "{err}");
    assert!(err.contains("sources[1].ca_file:"), "{err}");
    assert!(!err.contains("canary-ca-content"), "{err}");
}

#[test]
fn corrupt_store_stops_start_up_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "", "");
    std::fs::create_dir_all(dir.path().join("state")).unwrap();
    let junk = b"definitely not SQLite ".repeat(200);
    std::fs::write(dir.path().join("state/state.db"), &junk).unwrap();
    let out = Command::new(BIN)
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{}", free_port()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("corrupt") && err.contains("left untouched"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(dir.path().join("state/state.db")).unwrap(),
        junk
    );
}

/// The state files: private whatever the umask; a foreign SQLite database
/// refused untouched; a missing key next to an existing store reported
/// before any new key is written; an empty key file (an earlier failed
/// write) no obstacle on a new store.
#[cfg(unix)]
#[test]
fn state_files_are_private_and_never_replaced_or_altered() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "", "");
    let state = dir.path().join("state");
    // An empty key file, as a failed write of an older version left it.
    std::fs::create_dir_all(dir.path().join("keys")).unwrap();
    std::fs::write(dir.path().join("keys/k"), "").unwrap();
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        text.replace(
            "state: {path: state/state.db}",
            "state: {path: state/state.db, hash_key_file: keys/k}",
        ),
    )
    .unwrap();
    // --once under umask 022 (the command's own umask).
    let once = |extra: &str| {
        Command::new("sh")
            .arg("-c")
            .arg(format!(
                "umask 022; exec {BIN} --config.file={} --once {extra}",
                cfg.display()
            ))
            .output()
            .unwrap()
    };
    let out = once("");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(mode(&state), 0o700, "store directory");
    for f in ["state.db", "state.db-wal", "state.db-shm"] {
        let p = state.join(f);
        if p.exists() {
            assert_eq!(mode(&p), 0o600, "{f}");
        }
    }
    assert_eq!(mode(&dir.path().join("keys/k")), 0o600, "key file");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("keys/k"))
            .unwrap()
            .trim()
            .len(),
        64
    );
    assert!(
        std::fs::read_dir(dir.path().join("keys")).unwrap().count() == 1,
        "no temporary file left"
    );

    // The key goes missing: the store refuses a new key, and none is written.
    std::fs::remove_file(dir.path().join("keys/k")).unwrap();
    let out = once("");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("hash key file") && err.contains("is missing"),
        "{err}"
    );
    assert!(!dir.path().join("keys/k").exists(), "a new key was written");

    // state.path at another application's database: refused, unchanged.
    let foreign = dir.path().join("other.db");
    {
        let c = rusqlite::Connection::open(&foreign).unwrap();
        c.execute_batch("CREATE TABLE users(name TEXT); INSERT INTO users VALUES ('x');")
            .unwrap();
    }
    let before = std::fs::read(&foreign).unwrap();
    std::fs::write(
        &cfg,
        text.replace(
            "state: {path: state/state.db}",
            "state: {path: other.db, hash_key_file: keys/k2}",
        ),
    )
    .unwrap();
    let out = once("");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("another application") && err.contains("left untouched"),
        "{err}"
    );
    assert_eq!(std::fs::read(&foreign).unwrap(), before);
    assert!(
        !dir.path().join("keys/k2").exists(),
        "a key was written for a refused store"
    );
}

#[test]
fn kill_9_loses_at_most_the_poll_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "", "");
    let reports = dir.path().join("reports");
    for r in 0..20 {
        let findings: Vec<_> = (0..500)
            .map(|i| {
                gl_finding(
                    "generic-api-key",
                    &format!("k9-{r}-{i}"),
                    &format!("f{i}.py"),
                    i,
                    "c",
                )
            })
            .collect();
        write_report(&reports.join(format!("r{r}.json")), &findings);
    }
    for delay in [0u64, 150, 400] {
        let mut ex = Exporter::start(&cfg, &dir.path().join("log"), &[]);
        std::thread::sleep(Duration::from_millis(delay));
        ex.signal("KILL");
        let _ = ex.child.take().unwrap().wait();
    }
    let ex = Exporter::start(&cfg, &dir.path().join("log"), &[]);
    let m = ex.wait_for("consistent store", |m| {
        m.sum("nhi_findings_open", &[]) == 10_000.0
    });
    assert_eq!(
        m.get("nhi_exposed_secrets", &[("validity", "unknown")]),
        Some(10_000.0)
    );
    assert_eq!(m.sum("nhi_findings_detected_total", &[]), 10_000.0);
}

#[test]
fn promtool_check_metrics_is_clean() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "", "");
    let reports = dir.path().join("reports");
    write_report(
        &reports.join("r.json"),
        &[
            gl_finding("generic-api-key", "pt-1", "a", 1, "c"),
            aws_finding(),
        ],
    );
    let out = Command::new(BIN)
        .arg(format!("--config.file={}", cfg.display()))
        .arg("--once")
        .output()
        .unwrap();
    assert!(out.status.success());
    let promtool = which("promtool")
        .expect("promtool not found: scripts/test.sh installs Debian's prometheus package");
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(&out.stdout).unwrap();
    let res = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&res.stdout),
        String::from_utf8_lossy(&res.stderr)
    );
    assert!(
        res.status.success() && text.trim().is_empty(),
        "promtool check metrics:\n{text}"
    );
}

fn which(cmd: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(cmd))
            .find(|p| p.is_file())
    })
}

#[test]
fn a_failing_source_does_not_affect_another() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "",
        "  - name: broken\n    type: gitleaks\n    interval: 1s\n    paths: [\"broken/*.json\"]\n",
    );
    std::fs::create_dir_all(dir.path().join("broken")).unwrap();
    std::fs::write(dir.path().join("broken/r.json"), "{{{{ not json").unwrap();
    write_report(
        &dir.path().join("reports/ok.json"),
        &[gl_finding("generic-api-key", "iso-value", "i.py", 1, "c")],
    );
    let ex = Exporter::start(&cfg, &dir.path().join("log"), &[]);
    let m = ex.wait_for("both polled", |m| {
        m.get("nhi_source_up", &[("source", "ci")]) == Some(1.0)
            && m.get(
                "nhi_source_errors_total",
                &[("source", "broken"), ("reason", "parse")],
            )
            .unwrap_or(0.0)
                >= 2.0
    });
    assert_eq!(m.get("nhi_source_up", &[("source", "broken")]), Some(0.0));
    assert_eq!(
        m.get(
            "nhi_source_last_success_timestamp_seconds",
            &[("source", "broken")]
        ),
        Some(0.0)
    );
    assert_eq!(m.sum("nhi_findings_open", &[("source", "ci")]), 1.0);
    let (code, _) = ex.get("/-/ready");
    assert_eq!(
        code, 200,
        "ready once every source was polled, success or not"
    );
}

/// A v7 report, then a clean re-scan written as `null` (gitleaks before
/// v8.2.3 and pipelines serialising a nil list): both findings close as
/// `disappeared`. Before, `null` was refused and nothing ever closed.
#[test]
fn a_v7_report_then_a_null_report_closes_everything() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "", "");
    let report = dir.path().join("reports/legacy.json");
    let canary = "nhi-canary-5e1d0c7a-v7-b2ZmZW5kZXI";
    let v7 = serde_json::json!([
        {"line": "aws_access_key_1 = 'AKIAIOSFODNN7EXAMPLE'", "lineNumber": 13,
         "offender": "AKIAIOSFODNN7EXAMPLE", "offenderEntropy": -1, "commit": "208ae46",
         "repo": "basic", "repoURL": "", "leakURL": "", "rule": "AWS Access Key",
         "commitMessage": "m\n", "author": "Dev", "email": "dev@example.com",
         "file": "secrets.py", "date": "2021-09-07T21:11:39-05:00", "tags": "key, AWS"},
        {"line": format!("password = '{canary}'"), "lineNumber": 4, "offender": canary,
         "offenderEntropy": 3.9, "commit": "", "repo": "", "repoURL": "", "leakURL": "",
         "rule": "Generic Credential", "commitMessage": "", "author": "", "email": "",
         "file": "config/app.env", "date": "0001-01-01T00:00:00Z", "tags": ""}
    ]);
    let write = |text: &[u8]| {
        let tmp = report.with_extension("tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &report).unwrap();
    };
    write(&serde_json::to_vec_pretty(&v7).unwrap());
    let log = dir.path().join("exporter.log");
    let mut ex = Exporter::start(&cfg, &log, &[]);
    let m = ex.wait_for("v7 report applied", |m| {
        m.sum("nhi_findings_open", &[("source", "ci")]) == 2.0
    });
    assert_eq!(
        m.get(
            "nhi_findings_open",
            &[("source", "ci"), ("secret_type", "aws_access_key")]
        ),
        Some(1.0)
    );
    assert_eq!(
        m.get(
            "nhi_findings_open",
            &[("source", "ci"), ("secret_type", "generic_credential")]
        ),
        Some(1.0)
    );
    assert_eq!(
        m.sum("nhi_findings_detected_total", &[("source", "ci")]),
        2.0
    );

    std::thread::sleep(Duration::from_millis(1100)); // a distinct scan time
    write(b"null\n");
    let m = ex.wait_for("both closed", |m| {
        m.get(
            "nhi_findings_closed_total",
            &[("source", "ci"), ("resolution", "disappeared")],
        ) == Some(2.0)
    });
    assert_eq!(
        m.get("nhi_time_to_close_seconds_count", &[("source", "ci")]),
        Some(2.0)
    );
    assert_eq!(
        m.get(
            "nhi_source_errors_total",
            &[("source", "ci"), ("reason", "parse")]
        )
        .unwrap_or(0.0),
        0.0
    );
    let m = ex.wait_for("KPIs recomputed", |m| {
        m.sum("nhi_findings_open", &[("source", "ci")]) == 0.0
    });
    let text = m.text.clone();
    let (status, _) = ex.stop();
    assert!(status.success());
    let store = read_all_files(&dir.path().join("state"));
    let log_text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains(canary), "canary in /metrics");
    assert!(!log_text.contains(canary), "canary in the log");
    assert!(!contains(&store, canary), "canary in the store");
}

fn once(cfg: &Path) -> (bool, String) {
    let out = Command::new(BIN)
        .arg(format!("--config.file={}", cfg.display()))
        .arg("--once")
        .output()
        .unwrap();
    (out.status.success(), String::from_utf8(out.stdout).unwrap())
}

fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{series} ")))
        .map(|v| v.parse().unwrap())
}

/// `--once` with a `backfill_dir`: the past first, then the live poll; a
/// bad past report is a counted `parse` failure of the source, the live
/// poll still runs, and `--once` exits 1.
#[test]
fn once_backfills_before_the_first_poll() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "", "    backfill_dir: history\n");
    let history = dir.path().join("history");
    std::fs::create_dir_all(history.join("20d-ago")).unwrap();
    std::fs::create_dir_all(history.join("10d-ago")).unwrap();
    std::fs::create_dir_all(history.join("2d-ago")).unwrap();
    write_report(&history.join("20d-ago/app.json"), &[aws_finding()]);
    let b = gl_finding("generic-api-key", CANARY_B, "b.py", 1, "c1");
    write_report(&history.join("10d-ago/app.json"), &[aws_finding(), b]);
    write_report(&history.join("2d-ago/app.json"), &[]);
    let live = gl_finding("generic-api-key", CANARY_A, "a.py", 1, "c2");
    write_report(&dir.path().join("reports/app.json"), &[live]);
    let (ok, text) = once(&cfg);
    assert!(ok, "{text}");
    let closed = "nhi_findings_closed_total{resolution=\"disappeared\",source=\"ci\"}";
    assert_eq!(value(&text, closed), Some(2.0));
    let detected = "nhi_findings_detected_total{secret_type=\"aws_access_token\",source=\"ci\"}";
    assert_eq!(value(&text, detected), Some(1.0));
    assert_eq!(
        value(&text, "nhi_exposed_secrets{validity=\"unknown\"}"),
        Some(1.0)
    );
    assert_eq!(
        value(&text, "nhi_secrets_in_code_delta{window=\"30d\"}"),
        Some(0.0)
    );
    assert_eq!(
        value(&text, "nhi_secrets_in_code_delta{window=\"7d\"}"),
        Some(-1.0)
    );
    let history_age = value(&text, "nhi_store_history_seconds").unwrap();
    assert!(
        (1_728_000.0..1_728_060.0).contains(&history_age),
        "{history_age}"
    );

    // A newer past scan that does not parse: counted, logged, the live
    // poll still applied; exit 1. It is never applied later either: the
    // live poll has observed the source since.
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "", "    backfill_dir: history\n");
    let history = dir.path().join("history");
    std::fs::create_dir_all(history.join("1d-ago")).unwrap();
    std::fs::write(history.join("1d-ago/app.json"), "[{").unwrap();
    let live = gl_finding("generic-api-key", CANARY_A, "a.py", 1, "c2");
    write_report(&dir.path().join("reports/app.json"), &[live]);
    let (ok, text) = once(&cfg);
    assert!(!ok);
    let parse = "nhi_source_errors_total{reason=\"parse\",source=\"ci\",source_type=\"gitleaks\"}";
    assert_eq!(value(&text, parse), Some(1.0));
    assert_eq!(
        value(
            &text,
            "nhi_source_up{source=\"ci\",source_type=\"gitleaks\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        value(&text, "nhi_exposed_secrets{validity=\"unknown\"}"),
        Some(1.0)
    );
    let (ok, _) = once(&cfg);
    assert!(ok);
}

/// Three gitleaks sources, each with one report holding a secret of
/// `secret_len` bytes, `max_file_size: 40MiB`.
fn huge_report_config(dir: &Path, secret_len: usize) -> std::path::PathBuf {
    let mut sources = String::new();
    for i in 0..3 {
        let secret = format!("{}{}", i, "Q".repeat(secret_len));
        let report = format!(
            r#"[{{"RuleID":"generic-api-key","Secret":"{secret}","Match":"key=...","File":"a.env","StartLine":1,"Commit":"c{i}","Fingerprint":"c{i}:a.env:generic-api-key:1"}}]"#
        );
        std::fs::write(dir.join(format!("r{i}.json")), report).unwrap();
        sources.push_str(&format!(
            "  - {{name: s{i}, type: gitleaks, max_file_size: 40MiB, paths: [\"r{i}.json\"]}}\n"
        ));
    }
    let cfg = dir.join("nhi.yaml");
    std::fs::write(
        &cfg,
        format!("state: {{path: st/state.db}}\nsources:\n{sources}"),
    )
    .unwrap();
    cfg
}

/// `--once` over `cfg` with an optional address-space limit (`ulimit -v`,
/// bytes): (exited 0, peak RSS in KiB measured by the kernel, stdout).
fn once_limited(cfg: &Path, limit: Option<u64>) -> (bool, i64, String) {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nhi-exporter"));
    cmd.arg(format!("--config.file={}", cfg.display()))
        .arg("--once")
        // glibc reserves 64 MiB of address space for each extra malloc
        // arena, made when threads happen to contend (scheduling, not
        // input): one arena, as one would run under a tight `ulimit -v`.
        .env("MALLOC_ARENA_MAX", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    if let Some(bytes) = limit {
        // SAFETY: only async-signal-safe setrlimit between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                let l = libc::rlimit {
                    rlim_cur: bytes as libc::rlim_t,
                    rlim_max: bytes as libc::rlim_t,
                };
                if libc::setrlimit(libc::RLIMIT_AS, &l) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    // Reaped by `wait4` below, which also returns its peak RSS.
    #[allow(clippy::zombie_processes)]
    let child = cmd.spawn().unwrap();
    let pid = child.id() as libc::pid_t;
    let mut stdout = child.stdout.unwrap();
    let mut text = String::new();
    let _ = std::io::Read::read_to_string(&mut stdout, &mut text);
    let mut status = 0;
    // SAFETY: plain syscall on our own child, with valid out-pointers.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid);
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    (ok, usage.ru_maxrss, text) // KiB on Linux
}

/// Issue 17: memory is bounded by configuration, not by the input. Three
/// sources each read a report holding one 32 MiB secret, with
/// `max_file_size: 40MiB`: the secrets are hashed from the report's bytes
/// without a copy, and the process-wide report budget lets only one of the
/// three reports be held at a time.
/// - The peak RSS of `--once` (measured by the kernel, `wait4`) exceeds that
///   of the same run over tiny reports by about one report, not three (or
///   six without borrowing).
/// - Under `ulimit -v` set to the smallest address space the tiny run needs
///   (found by bisection) plus 64 MiB, the huge run completes with every
///   finding; without the budget it needs 96 MiB more and is killed.
#[test]
fn huge_reports_cost_one_report_of_memory_at_a_time() {
    const MIB: u64 = 1024 * 1024;
    let tiny = tempfile::tempdir().unwrap();
    let tiny_cfg = huge_report_config(tiny.path(), 8);
    let huge = tempfile::tempdir().unwrap();
    let huge_cfg = huge_report_config(huge.path(), 32 * MIB as usize);

    let (ok, base, _) = once_limited(&tiny_cfg, None);
    assert!(ok);
    let (ok, peak, text) = once_limited(&huge_cfg, None);
    assert!(ok);
    let m = Metrics::parse(&text);
    assert_eq!(m.sum("nhi_findings_open", &[]), 3.0);
    assert_eq!(m.sum("nhi_exposed_secrets", &[]), 3.0);
    let extra_mib = (peak - base) as f64 / 1024.0;
    assert!(
        extra_mib < 48.0,
        "peak RSS {peak} KiB is {extra_mib:.1} MiB over the baseline ({base} KiB): more than one 32 MiB report at a time"
    );
    assert!(!text.contains("QQQQ"));

    // The smallest address space (8 MiB steps) the tiny run completes in.
    let (mut lo, mut hi) = (16 * MIB, 4096 * MIB);
    assert!(once_limited(&tiny_cfg, Some(hi)).0, "4 GiB is not enough?");
    while hi - lo > 8 * MIB {
        let mid = (lo + hi) / 2;
        // Enough only when it is so twice: threads (and their stacks)
        // started by a run vary a little with scheduling.
        let fits = (0..2).all(|_| {
            let _ = std::fs::remove_dir_all(tiny.path().join("st"));
            once_limited(&tiny_cfg, Some(mid)).0
        });
        if fits {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    // A fresh store: the reports are read again, not skipped as unchanged.
    std::fs::remove_dir_all(huge.path().join("st")).unwrap();
    eprintln!("tiny run needs {} MiB of address space", hi / MIB);
    let (ok, _, text) = once_limited(&huge_cfg, Some(hi + 64 * MIB));
    assert!(
        ok,
        "the huge reports do not fit in {} MiB",
        (hi + 64 * MIB) / MIB
    );
    assert_eq!(Metrics::parse(&text).sum("nhi_findings_open", &[]), 3.0);
}
