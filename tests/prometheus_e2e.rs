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

/// A few seconds into the run, a leak removed from a demo repository's
/// report: a closure for the counters and the time-to-close quantiles.
fn remove_a_demo_leak(dir: &Path) {
    std::thread::sleep(Duration::from_secs(3));
    let report = dir.join("demo/gitleaks/web-frontend.json");
    let mut findings: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    findings.pop();
    write_report(&report, &findings);
}

/// The real Prometheus with the bundled recording and alert rules, scraping
/// `targets` as job `nhi-exporter` every second; its port.
fn start_prometheus(dir: &Path, name: &str, targets: &[u16]) -> (Prom, u16) {
    let prom_bin = which("prometheus")
        .expect("prometheus not found: scripts/test.sh installs Debian's prometheus package");
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
    let targets: Vec<String> = targets.iter().map(|p| format!("'127.0.0.1:{p}'")).collect();
    let prom_cfg = dir.join(format!("{name}.yml"));
    std::fs::write(
        &prom_cfg,
        format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nrule_files: [{:?}, {:?}]\nscrape_configs:\n  - job_name: nhi-exporter\n    static_configs: [{{targets: [{}]}}]\n",
            rules[0],
            rules[1],
            targets.join(", ")
        ),
    )
    .unwrap();
    let plog = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
    let prom = Prom(
        Command::new(prom_bin)
            .arg(format!("--config.file={}", prom_cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join(format!("{name}-tsdb")).display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{pport}"))
            .stdout(Stdio::null())
            .stderr(plog)
            .spawn()
            .unwrap(),
    );
    (prom, pport)
}

#[test]
fn prometheus_loads_the_rules_and_every_dashboard_query_has_data() {
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

    let (_prom, pport) = start_prometheus(dir.path(), "prom", &[ex.port]);
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
    // recording rules have something to show.
    remove_a_demo_leak(dir.path());
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

/// Per-process series: each replica counts its own polls, reloads and
/// resources, so one Prometheus scraping one replica of two cannot see the
/// other's. The KPI panels and rules are what must not change.
const PER_PROCESS: &[&str] = &[
    "process_",
    "scrape_",
    "up{",
    "nhi_source_poll_duration_seconds",
    "nhi_source_errors_total",
    "nhi_config_last_reload",
    "nhi_exporter_build_info",
    "nhi_store_history_seconds",
];

/// An instant query's samples at `time`: labels without `instance` (the
/// replica) → values.
fn samples_at(port: u16, expr: &str, time: f64) -> std::collections::BTreeMap<String, Vec<f64>> {
    let v = api(
        port,
        "/api/v1/query",
        &[("query", expr), ("time", &format!("{time:.3}"))],
    );
    assert_eq!(v["status"], "success", "query {expr} failed: {v}");
    let value = |p: &serde_json::Value| p[1].as_str().unwrap().parse::<f64>().unwrap();
    let mut out = std::collections::BTreeMap::<String, Vec<f64>>::new();
    match v["data"]["resultType"].as_str() {
        Some("vector") => {
            for r in v["data"]["result"].as_array().unwrap() {
                let mut labels = r["metric"].as_object().unwrap().clone();
                labels.remove("instance");
                out.entry(serde_json::Value::Object(labels).to_string())
                    .or_default()
                    .push(value(&r["value"]));
            }
        }
        Some("scalar") => {
            out.insert(String::new(), vec![value(&v["data"]["result"])]);
        }
        other => panic!("query {expr}: unexpected result type {other:?}"),
    }
    out
}

/// The exposition's KPI lines (what the store holds), without the
/// per-process ones and those that move with the clock.
fn kpi_lines(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.starts_with("nhi_"))
        .filter(|l| !PER_PROCESS.iter().any(|p| l.starts_with(p)))
        .filter(|l| {
            !l.starts_with("nhi_source_")
                && !l.contains("age_seconds")
                && !l.contains("idle_seconds")
        })
        .map(str::to_string)
        .collect()
}

/// SPEC §5: two replicas on one PostgreSQL store, both scraped, give the
/// bundled dashboards and rules the numbers one replica gives. One
/// Prometheus scrapes both replicas, another scrapes one of them; every
/// dashboard query, recording rule and alert expression is evaluated on
/// both at the same instant and must agree (per-process series aside:
/// each replica counts its own polls).
#[test]
fn two_replicas_on_postgres_give_the_dashboards_and_rules_the_numbers_of_one() {
    let server = common::pg::server();
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&repo().join("config/demo"), &dir.path().join("demo"));
    let url_file = server.fresh_url_file(dir.path(), "prom_replicas");
    let key = dir.path().join("hmac.key");
    std::fs::write(
        &key,
        "8899aabbccddeeff00112233445566778899aabbccddeeff0011223344556677\n",
    )
    .unwrap();
    let cfg = dir.path().join("nhi.yaml");
    std::fs::write(
        &cfg,
        format!(
            "state: {{backend: postgres, url_file: {}, hash_key_file: {}}}\nsources:\n  - name: demo-gitleaks\n    type: gitleaks\n    interval: 2s\n    paths: [demo/gitleaks/*.json]\n  - name: demo-sarif\n    type: gitleaks\n    interval: 2s\n    paths: [demo/sarif/*.sarif]\n",
            url_file.display(),
            key.display()
        ),
    )
    .unwrap();
    let a = Exporter::start(&cfg, &dir.path().join("a.log"), &[]);
    let b = Exporter::start(&cfg, &dir.path().join("b.log"), &[]);
    for e in [&a, &b] {
        e.wait_for("both sources polled", |m| {
            m.get("nhi_source_up", &[("source", "demo-gitleaks")]) == Some(1.0)
                && m.get("nhi_source_up", &[("source", "demo-sarif")]) == Some(1.0)
                && m.get("nhi_exposed_secrets", &[("validity", "unknown")]) > Some(0.0)
        });
    }
    let (_both, p2) = start_prometheus(dir.path(), "both", &[a.port, b.port]);
    let (_one, p1) = start_prometheus(dir.path(), "one", &[a.port]);
    wait(
        "both Prometheus servers scraping",
        Duration::from_secs(60),
        || {
            [p1, p2]
                .iter()
                .all(|p| std::net::TcpStream::connect(("127.0.0.1", *p)).is_ok())
                && series(p2, "up{job=\"nhi-exporter\"} == 1") == 2
                && series(p1, "up{job=\"nhi-exporter\"} == 1") == 1
        },
    );

    // Activity, so that increases and the time-to-close quantiles have
    // data (whichever replica polls the source).
    remove_a_demo_leak(dir.path());
    for e in [&a, &b] {
        e.wait_for("the closure, on both replicas", |m| {
            m.sum("nhi_findings_closed_total", &[]) == 1.0
        });
    }
    wait(
        "recorded time-to-close quantiles",
        Duration::from_secs(60),
        || {
            series(p1, "instance:nhi_time_to_close_seconds:p50_7d") == 1
                && series(p2, "instance:nhi_time_to_close_seconds:p50_7d") == 2
        },
    );
    // Both replicas serve the same KPIs, then a few scrapes and rule
    // evaluations of that state.
    wait(
        "both replicas serving the same KPIs",
        Duration::from_secs(30),
        || kpi_lines(&a.metrics()) == kpi_lines(&b.metrics()),
    );
    std::thread::sleep(Duration::from_secs(4));
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        - 1.0;

    // Both replicas export every KPI: a plain sum over replicas would be
    // twice the truth, which is what the dashboards must not show.
    let per_replica = samples_at(p2, "count(nhi_exposed_secrets)", at);
    let single = samples_at(p1, "count(nhi_exposed_secrets)", at);
    assert_eq!(per_replica["{}"], vec![2.0 * single["{}"][0]]);

    // (what, expression, what it is computed from)
    let mut exprs: Vec<(String, String, String)> =
        serde_json::from_str::<Vec<serde_json::Value>>(&stdout_ok(
            Command::new("python3")
                .arg(repo().join("scripts/lint-dashboards.py"))
                .args(["--list-queries", "--job", "nhi-exporter"]),
        ))
        .unwrap()
        .iter()
        .map(|q| {
            let expr = q["expr"].as_str().unwrap().to_string();
            (
                format!("{} / {}", q["dashboard"], q["panel"]),
                expr.clone(),
                expr,
            )
        })
        .collect();
    let rules = api(p1, "/api/v1/rules", &[]);
    for g in rules["data"]["groups"].as_array().unwrap() {
        for r in g["rules"].as_array().unwrap() {
            let (name, query) = (r["name"].as_str().unwrap(), r["query"].as_str().unwrap());
            let expr = if r["type"] == "recording" {
                name
            } else {
                query
            };
            exprs.push((format!("rule {name}"), expr.to_string(), query.to_string()));
        }
    }
    let (mut compared, mut with_data, mut differ) = (0, 0, Vec::new());
    for (what, expr, from) in &exprs {
        if PER_PROCESS.iter().any(|p| from.contains(p)) {
            continue;
        }
        compared += 1;
        let (one, both) = (samples_at(p1, expr, at), samples_at(p2, expr, at));
        if !one.is_empty() {
            with_data += 1;
        }
        // An increase over a window is extrapolated from each server's own
        // scrape times: close, not equal. A sum over replicas would be 2×.
        let counter = from.contains("increase(") || from.contains("rate(");
        // A replica learns of another's poll at its next look at the store
        // (every 5 s): the time since a source's last success may lag by
        // that much on the replica that did not poll it.
        // Likewise an age is as of the replica's latest computation (after
        // its own poll, or at its next look at the store).
        let since_poll = from.contains("nhi_source_last_success_timestamp_seconds")
            || from.contains("age_seconds")
            || from.contains("idle_seconds");
        let same = |x: f64, y: f64| {
            let tol = if counter {
                0.2 * y.abs()
            } else if since_poll {
                10.0
            } else {
                1e-9 * y.abs()
            };
            (x - y).abs() <= tol || (x.is_nan() && y.is_nan())
        };
        let agree = one.keys().eq(both.keys())
            && one.iter().all(|(k, v1)| {
                let v2 = &both[k];
                // A per-replica panel shows each replica: each shows the
                // one replica's value.
                v1.len() == 1 && v2.iter().all(|x| same(*x, v1[0]))
            });
        if !agree {
            differ.push(format!("{what}: {expr}\n  one: {one:?}\n  two: {both:?}"));
        }
    }
    println!(
        "{compared} dashboard queries, recording rules and alerts compared, {with_data} with data"
    );
    assert!(with_data > 50, "{with_data} of {compared} with data");
    assert!(
        differ.is_empty(),
        "with two replicas scraped, {} queries differ from one:\n{}",
        differ.len(),
        differ.join("\n")
    );
}
