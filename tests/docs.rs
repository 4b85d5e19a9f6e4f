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
