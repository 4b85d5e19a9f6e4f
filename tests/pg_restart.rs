//! The PostgreSQL store restarted under a running exporter: polls fail
//! while it is down (`nhi_source_up` 0, counted errors, nothing changed),
//! and the exporter reconnects by itself, with nothing lost or counted
//! twice. A test binary of its own: it stops its database server.

mod common;
use common::*;
use std::time::Duration;

#[test]
fn a_database_restart_is_a_failed_poll_then_recovery_with_nothing_lost() {
    let server = pg::server();
    let dir = tempfile::tempdir().unwrap();
    let url_file = server.fresh_url_file(dir.path(), "restart");
    let reports = dir.path().join("reports");
    std::fs::create_dir_all(&reports).unwrap();
    let secret_a = "nhi-canary-0d1e2f3a-restart-alpha";
    let secret_b = "nhi-canary-4b5c6d7e-restart-beta";
    write_report(
        &reports.join("r.json"),
        &[gl_finding("generic-api-key", secret_a, "a.py", 1, "c1")],
    );
    let cfg = dir.path().join("nhi.yaml");
    std::fs::write(
        &cfg,
        format!(
            "state: {{backend: postgres, url_file: {}, hash_key_file: {}}}\nsources:\n  - name: ci\n    type: gitleaks\n    interval: 2s\n    timeout: 2s\n    paths: [\"{}/*.json\"]\n",
            url_file.display(),
            dir.path().join("hmac.key").display(),
            reports.display()
        ),
    )
    .unwrap();
    let mut e = Exporter::start(&cfg, &dir.path().join("log"), &[]);
    e.wait_for("the first poll", |m| {
        m.get("nhi_source_up", &[("source", "ci")]) == Some(1.0)
            && m.get("nhi_exposed_secrets", &[("validity", "unknown")]) == Some(1.0)
    });

    server.stop_now();
    // A new finding while the store is down: applied once it is back.
    write_report(
        &reports.join("r.json"),
        &[
            gl_finding("generic-api-key", secret_a, "a.py", 1, "c1"),
            gl_finding("generic-api-key", secret_b, "b.py", 2, "c1"),
        ],
    );
    let down = e.wait_for("a failed poll", |m| {
        m.get("nhi_source_up", &[("source", "ci")]) == Some(0.0)
    });
    assert!(down.sum("nhi_source_errors_total", &[("source", "ci")]) >= 1.0);
    // The last snapshot is still served: nothing was taken as closed.
    assert_eq!(
        down.get("nhi_exposed_secrets", &[("validity", "unknown")]),
        Some(1.0)
    );
    std::thread::sleep(Duration::from_secs(2));
    server.start_again();

    let m = e.wait_for("recovery", |m| {
        m.get("nhi_source_up", &[("source", "ci")]) == Some(1.0)
            && m.get("nhi_exposed_secrets", &[("validity", "unknown")]) == Some(2.0)
    });
    assert_eq!(
        m.sum("nhi_findings_detected_total", &[]),
        2.0,
        "nothing counted twice"
    );
    assert_eq!(
        m.sum("nhi_findings_closed_total", &[]),
        0.0,
        "nothing taken as closed"
    );
    let log = e.log_text();
    for secret in [secret_a, secret_b, pg::PASSWORD] {
        assert!(!log.contains(secret), "{secret} in the log");
    }
    e.stop();
}
