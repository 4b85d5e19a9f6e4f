//! The real Prometheus (Debian's package) scrapes the real exporter on the
//! demo reports with the bundled recording and alert rules loaded: every
//! rule group must load and evaluate healthy, and every dashboard query must
//! return data, except those over metrics that the gitleaks source alone
//! cannot produce (listed explicitly below, and printed). Those are checked
//! with data by `scripts/demo-stack.sh --check` (run by scripts/test.sh),
//! whose exporter also polls OpenBao, moto and a verifying scanner.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Metrics the gitleaks-only stack of this test cannot produce: the identity
/// and credential inventory comes from the vault/aws sources; a live or
/// revoked exposure needs a scanner that verifies secrets or a credential
/// inventory (gitleaks does neither). Here they are reported, not asserted;
/// scripts/demo-stack.sh --check asserts them with data.
/// `a&b` matches a query containing both.
const NEEDS_INVENTORY_SOURCES: &[&str] = &[
    "nhi_identities",
    "nhi_human_identities",
    "nhi_standing_privileged_identities",
    "nhi_unused_identities",
    "nhi_identities_owned",
    "nhi_identities_governed",
    "nhi_credentials",
    "nhi_long_lived_credentials",
    "nhi_credentials_rotation_enabled",
    "nhi_credentials_by_age",
    "nhi_credential_oldest_age_seconds",
    "instance:nhi_identities",
    "instance:nhi_human_identities",
    "instance:nhi_standing_privileged_identities",
    "instance:nhi_time_to_revoke_seconds",
    "nhi_time_to_revoke_median_seconds",
    // Age of the oldest *live* exposure: absent while nothing is live.
    "nhi_exposure_oldest_open_age_seconds&validity=\"live\"",
];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn which(cmd: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(cmd))
            .find(|p| p.is_file())
    })
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dest = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &dest);
        } else {
            std::fs::copy(&p, &dest).unwrap();
        }
    }
}

struct Prom(Child);
impl Drop for Prom {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn api(port: u16, path: &str, query: &[(&str, &str)]) -> serde_json::Value {
    let r = reqwest::blocking::Client::new()
        .get(format!("http://127.0.0.1:{port}{path}"))
        .query(query)
        .send()
        .unwrap();
    serde_json::from_str(&r.text().unwrap()).unwrap()
}

fn series(port: u16, expr: &str) -> usize {
    let v = api(port, "/api/v1/query", &[("query", expr)]);
    assert_eq!(v["status"], "success", "query {expr} failed: {v}");
    match &v["data"]["result"] {
        serde_json::Value::Array(a) => a.len(),
        serde_json::Value::Null => 0,
        _ => 1, // scalar
    }
}

fn wait(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!("timed out waiting for {what}");
}

#[test]
fn prometheus_loads_the_rules_and_every_dashboard_query_has_data() {
    let prom_bin = which("prometheus")
        .expect("prometheus not found: scripts/test.sh installs Debian's prometheus package");
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&repo().join("config/demo"), &dir.path().join("demo"));
    let cfg = dir.path().join("nhi.yaml");
    std::fs::write(
        &cfg,
        "state: {path: state/state.db}\nsources:\n  - name: demo-gitleaks\n    type: gitleaks\n    interval: 1s\n    paths: [demo/gitleaks/*.json, demo/sarif/*.sarif]\n",
    )
    .unwrap();
    let ex = Exporter::start(&cfg, &dir.path().join("exporter.log"), &[]);
    ex.wait_for("first poll", |m| {
        m.get("nhi_source_up", &[("source", "demo-gitleaks")]) == Some(1.0)
    });

    let pport = free_port();
    let rules: Vec<String> = ["nhi-recording.rules.yml", "nhi-alerts.rules.yml"]
        .iter()
        .map(|f| {
            repo()
                .join("deploy/prometheus")
                .join(f)
                .display()
                .to_string()
        })
        .collect();
    let prom_cfg = dir.path().join("prometheus.yml");
    std::fs::write(
        &prom_cfg,
        format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nrule_files: [{:?}, {:?}]\nscrape_configs:\n  - job_name: nhi-exporter\n    static_configs: [{{targets: ['127.0.0.1:{}']}}]\n",
            rules[0], rules[1], ex.port
        ),
    )
    .unwrap();
    let plog = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
    let _prom = Prom(
        Command::new(prom_bin)
            .arg(format!("--config.file={}", prom_cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{pport}"))
            .stdout(Stdio::null())
            .stderr(plog)
            .spawn()
            .unwrap(),
    );
    wait(
        "Prometheus scraping the exporter",
        Duration::from_secs(60),
        || {
            std::net::TcpStream::connect(("127.0.0.1", pport)).is_ok()
                && series(pport, "up{job=\"nhi-exporter\"} == 1") == 1
                && series(pport, "nhi_exposed_secrets") == 3
        },
    );

    // Activity during the run, so that rate/increase-based panels and
    // recording rules have something to show: a leak removed from a repo.
    std::thread::sleep(Duration::from_secs(3));
    let report = dir.path().join("demo/gitleaks/web-frontend.json");
    let mut findings: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    findings.pop();
    write_report(&report, &findings);
    ex.wait_for("closure", |m| {
        m.sum("nhi_findings_closed_total", &[]) == 1.0
    });
    wait(
        "recorded time-to-close quantile",
        Duration::from_secs(60),
        || series(pport, "instance:nhi_time_to_close_seconds:p50_7d") >= 1,
    );

    // Every rule group loads and evaluates healthy.
    let rules = api(pport, "/api/v1/rules", &[]);
    let groups = rules["data"]["groups"].as_array().unwrap();
    assert!(groups.len() >= 2, "{rules}");
    let mut n_rules = 0;
    for g in groups {
        for r in g["rules"].as_array().unwrap() {
            n_rules += 1;
            assert_eq!(
                r["health"], "ok",
                "rule {} in {}: {}",
                r["name"], g["name"], r["lastError"]
            );
        }
    }

    // Every dashboard query (variables substituted) returns data.
    let queries: Vec<serde_json::Value> = serde_json::from_str(&stdout_ok(
        Command::new("python3")
            .arg(repo().join("scripts/lint-dashboards.py"))
            .args(["--list-queries", "--job", "nhi-exporter"]),
    ))
    .unwrap();
    assert!(queries.len() > 50);
    let (mut checked, mut pending, mut empty) = (0, Vec::new(), Vec::new());
    for q in &queries {
        let expr = q["expr"].as_str().unwrap();
        if NEEDS_INVENTORY_SOURCES
            .iter()
            .any(|m| m.split('&').all(|part| expr.contains(part)))
        {
            pending.push(format!("{} / {}", q["dashboard"], q["panel"]));
            continue;
        }
        checked += 1;
        if series(pport, expr) == 0 {
            empty.push(format!("{} / {}: {expr}", q["dashboard"], q["panel"]));
        }
    }
    println!(
        "{n_rules} rules healthy; {checked} dashboard queries returned data; {} need the inventory sources (checked by scripts/demo-stack.sh --check):\n  {}",
        pending.len(),
        pending.join("\n  ")
    );
    assert!(
        empty.is_empty(),
        "dashboard queries without data:\n{}",
        empty.join("\n")
    );
}
