//! The PostgreSQL backend through the real binary, against a real server
//! (Debian's postgresql, started by `common::pg`): the same inputs give
//! the same exposition on SQLite and PostgreSQL, poll after poll; the
//! URL's password and planted canary secrets appear nowhere (`pg_dump` of
//! the database, logs, exposition).

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

const CANARY_A: &str = "nhi-canary-5c1d2e3f-pg-alpha-QmFzZTY0";
const CANARY_B: &str = "nhi-canary-9a8b7c6d-pg-beta-c2VjcmV0";
const AWS_SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

/// A config polling `reports/*.json` with its store on `state`.
fn config(dir: &Path, state: &str) -> PathBuf {
    let p = dir.join("nhi.yaml");
    std::fs::write(
        &p,
        format!(
            "state: {state}\npolicy: {{windows: [7d, 30d]}}\nsources:\n  - name: ci\n    type: gitleaks\n    interval: 1m\n    timeout: 10s\n    paths: [\"{}/*.json\"]\n",
            dir.join("reports").display()
        ),
    )
    .unwrap();
    p
}

fn aws_finding() -> serde_json::Value {
    gl_aws_finding(AWS_SECRET)
}

/// The exposition with the values that depend on the wall clock (ages,
/// timestamps, durations measured by the process) replaced by `T`: what
/// two runs a few milliseconds apart cannot share. Every count, label
/// set, HELP and TYPE line, and the order of the series stay as printed.
fn clockless(text: &str) -> String {
    text.lines()
        .map(|l| {
            let name = l.split(['{', ' ']).next().unwrap_or("");
            let timed = !l.starts_with('#')
                && (name.ends_with("_timestamp_seconds")
                    || name.ends_with("_age_seconds")
                    || name.contains("_duration_seconds")
                    || name.ends_with("_seconds_sum")
                    || name == "nhi_store_history_seconds"
                    || name == "nhi_exposure_revocation_idle_seconds"
                    || name.starts_with("process_"));
            match (timed, l.rsplit_once(' ')) {
                (true, Some((series, _))) => format!("{series} T\n"),
                _ => format!("{l}\n"),
            }
        })
        .collect()
}

fn once(cfg: &Path) -> (String, String) {
    let out = Command::new(BIN)
        .arg(format!("--config.file={}", cfg.display()))
        .arg("--once")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    (String::from_utf8(out.stdout).unwrap(), stderr)
}

#[test]
fn postgres_and_sqlite_give_the_same_exposition_and_store_no_secret() {
    let server = pg::server();
    let url = server.fresh_db("e2e_same");
    let lite = tempfile::tempdir().unwrap();
    let pgdir = tempfile::tempdir().unwrap();
    let url_file = pgdir.path().join("pg-url");
    // Surrounding whitespace is trimmed (a file written by `echo`).
    std::fs::write(&url_file, format!("  {url}\n")).unwrap();
    // One key for both, as replicas share theirs.
    let key = tempfile::tempdir().unwrap();
    let key = key.path().join("hmac.key").display().to_string();
    let lite_cfg = config(
        lite.path(),
        &format!("{{path: state/state.db, hash_key_file: {key}}}"),
    );
    let pg_cfg = config(
        pgdir.path(),
        &format!(
            "{{backend: postgres, url_file: {}, hash_key_file: {key}}}",
            url_file.display()
        ),
    );
    let polls: [Vec<(&str, Vec<serde_json::Value>)>; 3] = [
        vec![
            (
                "a.json",
                vec![
                    gl_finding("generic-api-key", CANARY_A, "src/a.py", 1, "c1"),
                    aws_finding(),
                ],
            ),
            (
                "b.json",
                vec![
                    gl_finding("slack-bot-token", CANARY_B, "ops/b.sh", 9, "c2"),
                    gl_finding("generic-api-key", CANARY_A, "src/copy.py", 4, "c2"),
                ],
            ),
        ],
        // The AWS key and one copy of canary A fixed; canary B stays.
        vec![
            ("a.json", vec![]),
            (
                "b.json",
                vec![gl_finding("slack-bot-token", CANARY_B, "ops/b.sh", 9, "c2")],
            ),
        ],
        // Canary A back in a new file: a new finding of a closed exposure.
        vec![(
            "a.json",
            vec![gl_finding(
                "generic-api-key",
                CANARY_A,
                "src/again.py",
                2,
                "c3",
            )],
        )],
    ];
    let mut logs = String::new();
    for (i, poll) in polls.iter().enumerate() {
        // A store keeps one KPI history point per second: polls a second
        // apart, so that neither store folds two polls into one point
        // (which one would depends on where the clock's second falls).
        if i > 0 {
            std::thread::sleep(std::time::Duration::from_millis(1100));
        }
        for dir in [lite.path(), pgdir.path()] {
            std::fs::create_dir_all(dir.join("reports")).unwrap();
            for (file, findings) in poll {
                write_report(&dir.join("reports").join(file), findings);
            }
        }
        let (from_lite, _) = once(&lite_cfg);
        let (from_pg, err) = once(&pg_cfg);
        logs.push_str(&err);
        assert!(
            from_pg.contains("nhi_findings_open") && from_pg.contains("nhi_exposed_secrets"),
            "poll {i}: {from_pg}"
        );
        let (a, b) = (clockless(&from_lite), clockless(&from_pg));
        let differ: Vec<_> = a.lines().zip(b.lines()).filter(|(x, y)| x != y).collect();
        assert!(
            a == b,
            "poll {i}: the expositions differ ({} and {} lines): {differ:#?}",
            a.lines().count(),
            b.lines().count()
        );
        for text in [&from_pg, &logs] {
            for secret in [CANARY_A, CANARY_B, AWS_SECRET, PASSWORD_IN_URL] {
                assert!(!text.contains(secret), "poll {i}: {secret} leaked");
            }
        }
    }
    // The numbers are real, not two equal empty expositions.
    let (last, _) = once(&pg_cfg);
    let m = Metrics::parse(&last);
    assert_eq!(
        m.get("nhi_exposed_secrets", &[("validity", "unknown")]),
        Some(2.0)
    );
    assert_eq!(
        m.get(
            "nhi_findings_closed_total",
            &[("source", "ci"), ("resolution", "disappeared")]
        ),
        // The AWS key and both copies of canary A (poll 1).
        Some(3.0)
    );

    // Nothing secret in the database itself.
    let dump = Command::new(server.bin.join("pg_dump"))
        .arg("--no-owner")
        .arg(&url)
        .output()
        .unwrap();
    assert!(
        dump.status.success(),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    let dump = String::from_utf8_lossy(&dump.stdout).into_owned();
    assert!(
        dump.contains("COPY public.findings"),
        "{}",
        &dump[..dump.len().min(2000)]
    );
    assert!(
        dump.contains("src/again.py"),
        "the findings' locations are stored"
    );
    for secret in [CANARY_A, CANARY_B, AWS_SECRET] {
        assert!(!dump.contains(secret), "{secret} is in the pg_dump");
    }
}

/// The password of the test server's URLs (`common::pg`).
const PASSWORD_IN_URL: &str = pg::PASSWORD;

/// Applied polls of `source` in an exporter's log.
fn applied(log: &str, source: &str) -> usize {
    log.lines()
        .filter(|l| l.contains("poll applied"))
        .filter(|l| {
            l.contains(&format!("source={source} ")) || l.ends_with(&format!("source={source}"))
        })
        .count()
}

#[test]
fn two_replicas_share_the_polling_and_take_over_when_one_dies() {
    let server = pg::server();
    let dir = tempfile::tempdir().unwrap();
    let url_file = server.fresh_url_file(dir.path(), "e2e_replicas");
    let key = dir.path().join("hmac.key");
    // Two sources, each polled every 4 s: lease 2 s, renewed every 0.67 s.
    let mut sources = String::new();
    for s in ["ci", "nightly"] {
        let reports = dir.path().join(s);
        std::fs::create_dir_all(&reports).unwrap();
        write_report(
            &reports.join("r.json"),
            &[gl_finding(
                "generic-api-key",
                &format!("{CANARY_A}-{s}"),
                "a.py",
                1,
                "c1",
            )],
        );
        sources.push_str(&format!(
            "  - name: {s}\n    type: gitleaks\n    interval: 4s\n    timeout: 3s\n    paths: [\"{}/*.json\"]\n",
            reports.display()
        ));
    }
    let cfg = dir.path().join("nhi.yaml");
    std::fs::write(
        &cfg,
        format!(
            "state: {{backend: postgres, url_file: {}, hash_key_file: {}}}\nsources:\n{sources}",
            url_file.display(),
            key.display()
        ),
    )
    .unwrap();
    // The key is made once, as an operator would before starting replicas.
    once(&cfg);
    let (log_a, log_b) = (dir.path().join("a.log"), dir.path().join("b.log"));
    let mut a = Exporter::start(&cfg, &log_a, &[]);
    let mut b = Exporter::start(&cfg, &log_b, &[]);
    let started = std::time::Instant::now();
    std::thread::sleep(std::time::Duration::from_secs(17));
    let elapsed = started.elapsed().as_secs_f64();
    let (la, lb) = (a.log_text(), b.log_text());
    for s in ["ci", "nightly"] {
        let total = applied(&la, s) + applied(&lb, s);
        // The `once` run polled both at t=0: a poll is due 4 s later.
        let most = (elapsed / 4.0).floor() as usize + 1;
        assert!(
            (1..=most).contains(&total),
            "{s}: {total} polls in {elapsed:.1}s by both replicas, at most {most} expected\nA:\n{la}\nB:\n{lb}"
        );
    }
    // Spread: each replica polls one of the two sources.
    let by_a = ["ci", "nightly"].map(|s| applied(&la, s));
    let by_b = ["ci", "nightly"].map(|s| applied(&lb, s));
    eprintln!("polls of [ci, nightly] in {elapsed:.1}s: A {by_a:?}, B {by_b:?}");
    assert!(
        by_a.iter().sum::<usize>() > 0 && by_b.iter().sum::<usize>() > 0,
        "both replicas poll: A {by_a:?}, B {by_b:?}"
    );
    // Both are ready (a source the other replica polls counts as polled).
    for e in [&a, &b] {
        assert_eq!(e.get("/-/ready").0, 200, "{}", e.log_text());
    }
    // Both serve the store's numbers: the same KPIs, and the same health
    // of both sources, whichever replica polls them.
    let kpis = |e: &Exporter| {
        let m = e.wait_for("both findings, both sources up", |m| {
            m.get("nhi_exposed_secrets", &[("validity", "unknown")]) == Some(2.0)
                && m.get("nhi_source_up", &[("source", "ci")]) == Some(1.0)
                && m.get("nhi_source_up", &[("source", "nightly")]) == Some(1.0)
        });
        m.sum("nhi_findings_detected_total", &[])
    };
    assert_eq!(kpis(&a), 2.0);
    assert_eq!(kpis(&b), 2.0);

    // kill -9 the replica polling `ci` now: the other takes over within
    // one interval plus the lease, and nothing is counted twice.
    let (victim, survivor, survivor_log) = if applied(&la, "ci") >= applied(&lb, "ci") {
        (&mut a, &b, &log_b)
    } else {
        (&mut b, &a, &log_a)
    };
    let before = applied(&std::fs::read_to_string(survivor_log).unwrap(), "ci");
    let mut child = victim.child.take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let killed = std::time::Instant::now();
    // The lease expires within 2 s and is taken within 0.7 s more; the
    // poll is then due at most one interval after the dead replica's last
    // one (4 s): 2 s of slack for two processes on a busy host.
    let deadline = killed + std::time::Duration::from_secs(4 + 2);
    loop {
        let now = applied(&std::fs::read_to_string(survivor_log).unwrap(), "ci");
        if now > before {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no takeover of ci within {:?}:\n{}",
            killed.elapsed(),
            survivor.log_text()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    eprintln!(
        "ci taken over {:.1}s after the kill",
        killed.elapsed().as_secs_f64()
    );
    let m = Metrics::parse(&survivor.metrics());
    assert_eq!(
        m.sum("nhi_findings_detected_total", &[]),
        2.0,
        "counts unchanged"
    );
    assert_eq!(
        m.get("nhi_exposed_secrets", &[("validity", "unknown")]),
        Some(2.0)
    );
    for e in [&mut a, &mut b] {
        if e.child.is_some() {
            e.stop();
        }
    }
}

#[test]
fn store_migrate_moves_a_sqlite_installation_with_its_history() {
    let server = pg::server();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("hmac.key").display().to_string();
    let url_file = server.fresh_url_file(dir.path(), "e2e_migrate");
    let lite_cfg = config(
        dir.path(),
        &format!("{{path: state/state.db, hash_key_file: {key}}}"),
    );
    let pg_dir = dir.path().join("pg");
    std::fs::create_dir_all(&pg_dir).unwrap();
    let pg_cfg = {
        let p = pg_dir.join("nhi.yaml");
        let text = std::fs::read_to_string(&lite_cfg).unwrap().replace(
            "state: {path: state/state.db,",
            &format!(
                "state: {{backend: postgres, url_file: {},",
                url_file.display()
            ),
        );
        std::fs::write(&p, text).unwrap();
        p
    };
    let reports = dir.path().join("reports");
    std::fs::create_dir_all(&reports).unwrap();
    write_report(
        &reports.join("a.json"),
        &[
            aws_finding(),
            gl_finding("generic-api-key", CANARY_A, "a.py", 1, "c1"),
        ],
    );
    once(&lite_cfg);
    write_report(
        &reports.join("a.json"),
        &[gl_finding("generic-api-key", CANARY_A, "a.py", 1, "c1")],
    );
    // One KPI history point per second: polls a second apart (see above).
    std::thread::sleep(std::time::Duration::from_millis(1100));
    once(&lite_cfg);

    let migrate = |cfg: &Path| {
        Command::new(BIN)
            .arg(format!("--config.file={}", cfg.display()))
            .args(["store", "migrate", "--from"])
            .arg(format!(
                "sqlite:{}",
                dir.path().join("state/state.db").display()
            ))
            .args(["--to", "postgres"])
            .output()
            .unwrap()
    };
    let out = migrate(&pg_cfg);
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        report.contains("findings 2") && report.contains("exposures 2"),
        "{report}"
    );
    // The copy is refused into a store that holds data, and from a SQLite
    // configuration.
    let again = migrate(&pg_cfg);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already holds data"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert!(!migrate(&lite_cfg).status.success());

    // The next poll gives the same numbers from either store: counters,
    // histograms and the windows' history came along.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let (from_lite, _) = once(&lite_cfg);
    let (from_pg, _) = once(&pg_cfg);
    assert_eq!(clockless(&from_lite), clockless(&from_pg));
    let m = Metrics::parse(&from_pg);
    assert_eq!(
        m.get(
            "nhi_findings_closed_total",
            &[("source", "ci"), ("resolution", "disappeared")]
        ),
        Some(1.0)
    );
    // Every row of the history and of the time counts came along.
    let lite = rusqlite::Connection::open(dir.path().join("state/state.db")).unwrap();
    let mut pg = server.client("e2e_migrate");
    for table in [
        "history",
        "time_counts",
        "durations",
        "counters",
        "findings",
    ] {
        let sql = format!("SELECT COUNT(*) FROM {table}");
        let want: i64 = lite.query_row(&sql, [], |r| r.get(0)).unwrap();
        let got: i64 = pg.query_one(&sql, &[]).unwrap().get(0);
        assert!(want > 0, "{table} is empty");
        assert_eq!(got, want, "{table}");
    }
}

#[test]
fn replicas_started_together_on_an_empty_database_all_come_up() {
    let server = pg::server();
    let dir = tempfile::tempdir().unwrap();
    let url_file = server.fresh_url_file(dir.path(), "e2e_together");
    // The key exists before the replicas start, as DEPLOYMENT.md says.
    std::fs::write(
        dir.path().join("hmac.key"),
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n",
    )
    .unwrap();
    let cfg = config(
        dir.path(),
        &format!(
            "{{backend: postgres, url_file: {}, hash_key_file: {}}}",
            url_file.display(),
            dir.path().join("hmac.key").display()
        ),
    );
    std::fs::create_dir_all(dir.path().join("reports")).unwrap();
    write_report(
        &dir.path().join("reports/a.json"),
        &[gl_finding("generic-api-key", CANARY_A, "a.py", 1, "c1")],
    );
    // Four processes at once on the empty database: each must come up
    // (one migrates under the lock, the others wait and find it current).
    let runs: Vec<_> = (0..4)
        .map(|_| {
            Command::new(BIN)
                .arg(format!("--config.file={}", cfg.display()))
                .arg("--once")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for r in runs {
        let out = r.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let m = Metrics::parse(&String::from_utf8_lossy(&out.stdout));
        assert_eq!(
            m.get("nhi_exposed_secrets", &[("validity", "unknown")]),
            Some(1.0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Migrated once: one schema version, one finding counted once.
    let mut c = server.client("e2e_together");
    let version: String = c
        .query_one("SELECT value FROM meta WHERE key = 'schema_version'", &[])
        .unwrap()
        .get(0);
    assert_eq!(version, "7");
    let findings: i64 = c
        .query_one("SELECT COUNT(*) FROM findings", &[])
        .unwrap()
        .get(0);
    assert_eq!(findings, 1);
    let detected: f64 = c
        .query_one(
            "SELECT SUM(value) FROM counters WHERE name = 'finding_detected'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(detected, 1.0);
}
