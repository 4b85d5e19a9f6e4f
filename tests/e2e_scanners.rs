//! The real binary on the `trufflehog` and `detect_secrets` sources: the
//! real detect-secrets (PyPI, pinned) scanning a generated git repository,
//! the same secret reported by gitleaks and trufflehog counted once, bad
//! input keeping the previous state, and canary secrets found nowhere.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The detect-secrets version the expected results below were taken from
/// (scripts/test.sh installs it into `.venv`).
const DETECT_SECRETS_VERSION: &str = "1.5.0";

const AWS_KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";
const AWS_SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const PRIVATE_KEY_BODY: &str = "MIIEnhiCanaryFakeKeyBody9c4e1a";
const KEYWORD_CANARY: &str = "nhi-canary-6d1f0b2a-ds-keyword";
const TH_CANARY: &str = "nhi-canary-3e9a77c1-trufflehog";

/// Run `--once`; returns the exit code, the parsed exposition and the log.
fn once(cfg: &Path) -> (Option<i32>, Metrics, String) {
    let out = Command::new(BIN)
        .arg(format!("--config.file={}", cfg.display()))
        .arg("--once")
        .arg("--log.level=debug")
        .output()
        .expect("run nhi-exporter --once");
    let text = String::from_utf8(out.stdout).expect("exposition is UTF-8");
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code(), Metrics::parse(&text), log)
}

fn on_path(cmd: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(cmd))
        .find(|p| p.is_file())
}

/// The real detect-secrets: on PATH, or in the repository's `.venv`. Its
/// absence is a failure, never a skip.
fn detect_secrets() -> PathBuf {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/detect-secrets");
    let bin = on_path("detect-secrets")
        .or_else(|| venv.is_file().then_some(venv))
        .unwrap_or_else(|| {
            panic!(
                "detect-secrets is not installed: it is neither on PATH nor at .venv/bin/detect-secrets. \
                 Run scripts/test.sh, or: python3 -m venv .venv && .venv/bin/pip install detect-secrets=={DETECT_SECRETS_VERSION}"
            )
        });
    let out = Command::new(&bin)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(
        version,
        DETECT_SECRETS_VERSION,
        "{} is detect-secrets {version:?}; the tests expect the pinned {DETECT_SECRETS_VERSION}",
        bin.display()
    );
    bin
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn git(repo: &Path, args: &[&str]) {
    run(Command::new("git")
        .current_dir(repo)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .args([
            "-c",
            "user.name=NHI Test",
            "-c",
            "user.email=nhi-test@example.com",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args));
}

/// `detect-secrets scan [--baseline FILE]` in `repo`, as a developer or a
/// CI job runs it; the baseline is written to `repo/.secrets.baseline`.
fn scan(ds: &Path, repo: &Path, update: bool) {
    let baseline = repo.join(".secrets.baseline");
    if update {
        run(Command::new(ds)
            .current_dir(repo)
            .args(["scan", "--baseline", ".secrets.baseline"]));
    } else {
        let out = run(Command::new(ds).current_dir(repo).arg("scan"));
        std::fs::write(&baseline, out.stdout).unwrap();
    }
}

fn read_baseline(repo: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(repo.join(".secrets.baseline")).unwrap()).unwrap()
}

/// (filename, type, line) of every result, sorted.
fn result_keys(baseline: &serde_json::Value) -> Vec<(String, String, i64)> {
    let mut v = Vec::new();
    for list in baseline["results"].as_object().unwrap().values() {
        for r in list.as_array().unwrap() {
            v.push((
                r["filename"].as_str().unwrap().to_string(),
                r["type"].as_str().unwrap().to_string(),
                r["line_number"].as_i64().unwrap_or(0),
            ));
        }
    }
    v.sort();
    v
}

fn hashed_secrets(baseline: &serde_json::Value) -> Vec<String> {
    let mut v = Vec::new();
    for list in baseline["results"].as_object().unwrap().values() {
        for r in list.as_array().unwrap() {
            v.push(r["hashed_secret"].as_str().unwrap().to_string());
        }
    }
    v
}

fn open_findings(m: &Metrics, source: &str, secret_type: &str) -> f64 {
    m.sum(
        "nhi_findings_open",
        &[("source", source), ("secret_type", secret_type)],
    )
}

fn assert_no_secret(what: &str, hay: &[u8], needles: &[&str]) {
    for n in needles {
        assert!(!contains(hay, n), "{n:?} found in {what}");
    }
}

#[test]
fn detect_secrets_baseline_from_the_real_tool() {
    let ds = detect_secrets();
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repos/payments");
    for d in ["deploy", "keys", "config"] {
        std::fs::create_dir_all(repo.join(d)).unwrap();
    }
    git(&repo, &["init", "-q"]);
    std::fs::write(
        repo.join("deploy/prod.env"),
        format!("AWS_ACCESS_KEY_ID={AWS_KEY_ID}\naws_secret_access_key = \"{AWS_SECRET}\"\n"),
    )
    .unwrap();
    std::fs::write(
        repo.join("keys/id_rsa"),
        format!(
            "-----BEGIN RSA PRIVATE KEY-----\n{PRIVATE_KEY_BODY}\n-----END RSA PRIVATE KEY-----\n"
        ),
    )
    .unwrap();
    std::fs::write(
        repo.join("config/settings.py"),
        format!("DEBUG = False\npassword = \"{KEYWORD_CANARY}\"\n"),
    )
    .unwrap();
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "initial"]);
    scan(&ds, &repo, false);

    // What detect-secrets 1.5.0 reports for these files. The quoted AWS
    // secret key is reported three times (three plugins, three types).
    let baseline = read_baseline(&repo);
    let s = |f: &str, t: &str, l: i64| (f.to_string(), t.to_string(), l);
    assert_eq!(
        result_keys(&baseline),
        [
            s("config/settings.py", "Secret Keyword", 2),
            s("deploy/prod.env", "AWS Access Key", 1),
            s("deploy/prod.env", "AWS Access Key", 2),
            s("deploy/prod.env", "Base64 High Entropy String", 2),
            s("deploy/prod.env", "Secret Keyword", 2),
            s("keys/id_rsa", "Private Key", 1),
        ],
        "detect-secrets {DETECT_SECRETS_VERSION} reported other results than expected"
    );
    let mut hashes = hashed_secrets(&baseline);

    let cfg = dir.path().join("nhi.yaml");
    std::fs::write(
        &cfg,
        "state: {path: state/state.db}\nsources:\n  - name: baselines\n    type: detect_secrets\n    paths: [\"repos/*/.secrets.baseline\"]\n",
    )
    .unwrap();
    let mut outputs: Vec<String> = Vec::new();

    // 1. Every result is an open finding. Exposures are keyed by the
    //    baseline's own hash: the AWS secret key reported by three plugins
    //    is one exposure, so 6 findings are 4 exposures.
    let (code, m, log) = once(&cfg);
    assert_eq!(code, Some(0), "log:\n{log}");
    assert_eq!(
        m.get("nhi_source_up", &[("source", "baselines")]),
        Some(1.0)
    );
    assert_eq!(
        m.get(
            "nhi_findings_open",
            &[
                ("source", "baselines"),
                ("secret_type", "aws_access_key"),
                ("validity", "unknown")
            ]
        ),
        Some(2.0)
    );
    assert_eq!(open_findings(&m, "baselines", "secret_keyword"), 2.0);
    assert_eq!(
        open_findings(&m, "baselines", "base64_high_entropy_string"),
        1.0
    );
    assert_eq!(open_findings(&m, "baselines", "private_key"), 1.0);
    assert_eq!(
        m.sum("nhi_findings_detected_total", &[("source", "baselines")]),
        6.0
    );
    assert_eq!(
        m.get("nhi_exposed_secrets", &[("validity", "unknown")]),
        Some(4.0)
    );
    assert_eq!(
        m.get("nhi_exposed_secrets", &[("validity", "live")]),
        Some(0.0)
    );
    outputs.push(m.text.clone());
    outputs.push(log);

    // 2. Audited: the keyword in settings.py is a false positive
    //    (`detect-secrets audit` sets is_secret: false).
    let mut baseline = read_baseline(&repo);
    let r = &mut baseline["results"]["config/settings.py"][0];
    assert_eq!(r["type"], "Secret Keyword");
    r["is_secret"] = serde_json::Value::Bool(false);
    let tmp = repo.join(".secrets.baseline.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&baseline).unwrap()).unwrap();
    std::fs::rename(&tmp, repo.join(".secrets.baseline")).unwrap();
    let (code, m, log) = once(&cfg);
    assert_eq!(code, Some(0), "log:\n{log}");
    assert_eq!(
        m.get(
            "nhi_findings_closed_total",
            &[("source", "baselines"), ("resolution", "false_positive")]
        ),
        Some(1.0)
    );
    assert_eq!(open_findings(&m, "baselines", "secret_keyword"), 1.0);
    assert_eq!(
        m.get("nhi_exposed_secrets", &[("validity", "unknown")]),
        Some(3.0)
    );
    assert_eq!(
        m.get(
            "nhi_time_to_close_seconds_count",
            &[("source", "baselines")]
        ),
        Some(1.0)
    );
    outputs.push(m.text.clone());
    outputs.push(log);

    // 3. The key is removed from the repository and the baseline updated
    //    by the tool (which keeps the audit label): its finding closes as
    //    disappeared; the false positive stays closed.
    git(&repo, &["rm", "-q", "keys/id_rsa"]);
    git(&repo, &["commit", "-q", "-m", "remove the key"]);
    scan(&ds, &repo, true);
    let baseline = read_baseline(&repo);
    assert_eq!(result_keys(&baseline).len(), 5);
    assert_eq!(
        baseline["results"]["config/settings.py"][0]["is_secret"],
        false
    );
    hashes.extend(hashed_secrets(&baseline));
    let (code, m, log) = once(&cfg);
    assert_eq!(code, Some(0), "log:\n{log}");
    assert_eq!(
        m.get(
            "nhi_findings_closed_total",
            &[("source", "baselines"), ("resolution", "disappeared")]
        ),
        Some(1.0)
    );
    assert_eq!(
        m.get(
            "nhi_findings_closed_total",
            &[("source", "baselines"), ("resolution", "false_positive")]
        ),
        Some(1.0)
    );
    assert_eq!(open_findings(&m, "baselines", "private_key"), 0.0);
    assert_eq!(open_findings(&m, "baselines", "secret_keyword"), 1.0);
    assert_eq!(
        m.get("nhi_exposed_secrets", &[("validity", "unknown")]),
        Some(2.0)
    );
    assert_eq!(
        m.sum("nhi_findings_detected_total", &[("source", "baselines")]),
        6.0
    );
    outputs.push(m.text.clone());
    outputs.push(log);

    // 4. The audit label is taken back: the finding reopens.
    let mut baseline = read_baseline(&repo);
    let r = baseline["results"]["config/settings.py"][0]
        .as_object_mut()
        .unwrap();
    r.remove("is_secret");
    let tmp = repo.join(".secrets.baseline.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&baseline).unwrap()).unwrap();
    std::fs::rename(&tmp, repo.join(".secrets.baseline")).unwrap();
    let (code, m, log) = once(&cfg);
    assert_eq!(code, Some(0), "log:\n{log}");
    assert_eq!(open_findings(&m, "baselines", "secret_keyword"), 2.0);
    assert_eq!(
        m.get("nhi_exposed_secrets", &[("validity", "unknown")]),
        Some(3.0)
    );
    assert_eq!(
        m.sum("nhi_findings_detected_total", &[("source", "baselines")]),
        6.0
    );
    outputs.push(m.text.clone());
    outputs.push(log);

    // Canaries: neither the secrets nor detect-secrets' unkeyed SHA-1 of
    // them appear in any exposition, log or file of the store.
    let store = read_all_files(&dir.path().join("state"));
    let mut needles: Vec<&str> = vec![AWS_SECRET, PRIVATE_KEY_BODY, KEYWORD_CANARY];
    needles.extend(hashes.iter().map(String::as_str));
    for (i, o) in outputs.iter().enumerate() {
        assert_no_secret(&format!("output {i}"), o.as_bytes(), &needles);
    }
    assert_no_secret("the store", &store, &needles);
}

/// One trufflehog v3 `--json` result from the git source, as it prints it.
fn th_result(
    detector: &str,
    raw: &str,
    raw_v2: &str,
    verified: bool,
    file: &str,
    line: u32,
) -> String {
    serde_json::json!({
        "SourceMetadata": {"Data": {"Git": {
            "commit": "c1", "file": file, "email": "Dev <dev@example.com>",
            "repository": "https://github.com/acme/repo.git",
            "timestamp": "2026-01-01 00:00:00 +0000", "line": line
        }}},
        "SourceID": 1, "SourceType": 7, "SourceName": "trufflehog - git",
        "DetectorType": 2, "DetectorName": detector, "DetectorDescription": "d",
        "DecoderName": "PLAIN", "Verified": verified, "VerificationFromCache": false,
        "Raw": raw, "RawV2": raw_v2, "Redacted": raw.get(..4).unwrap_or(""),
        "ExtraData": {"account": "123456789012", "arn": "arn:aws:iam::123456789012:user/ci"},
        "StructuredData": null
    })
    .to_string()
}

fn write_atomic(path: &Path, data: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, data).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[test]
fn one_secret_found_by_gitleaks_and_trufflehog_is_one_exposure() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("nhi.yaml");
    std::fs::write(
        &cfg,
        "state: {path: state/state.db}\nsources:\n  - {name: gl, type: gitleaks, paths: [\"gitleaks/*.json\"]}\n  - {name: th, type: trufflehog, paths: [\"trufflehog/*.jsonl\"]}\n",
    )
    .unwrap();
    for d in ["gitleaks", "trufflehog"] {
        std::fs::create_dir_all(dir.path().join(d)).unwrap();
    }
    let gl_report = dir.path().join("gitleaks/repo.json");
    let th_report = dir.path().join("trufflehog/repo.jsonl");
    // gitleaks reports the key id as the secret of its aws-access-token
    // rule; trufflehog's AWS detector has it as Raw (and id + secret as
    // RawV2), and verified it.
    let mut gl = gl_finding("aws-access-token", AWS_KEY_ID, "deploy/prod.env", 3, "c1");
    gl["Match"] = serde_json::Value::String(format!("{AWS_KEY_ID}:{AWS_SECRET}"));
    write_report(&gl_report, &[gl]);
    let th_line = th_result(
        "AWS",
        AWS_KEY_ID,
        &format!("{AWS_KEY_ID}{AWS_SECRET}"),
        true,
        "deploy/prod.env",
        3,
    );
    write_atomic(&th_report, format!("{th_line}\n").as_bytes());
    let mut outputs: Vec<String> = Vec::new();

    // 1. Two findings, one per scanner; one exposure, live (verified).
    let (code, m, log) = once(&cfg);
    assert_eq!(code, Some(0), "log:\n{log}");
    assert_eq!(m.get("nhi_source_up", &[("source", "th")]), Some(1.0));
    assert_eq!(m.get("nhi_source_up", &[("source", "gl")]), Some(1.0));
    assert_eq!(m.sum("nhi_exposed_secrets", &[]), 1.0);
    assert_eq!(
        m.get("nhi_exposed_secrets", &[("validity", "live")]),
        Some(1.0)
    );
    assert_eq!(m.sum("nhi_findings_open", &[("source", "gl")]), 1.0);
    assert_eq!(m.sum("nhi_findings_open", &[("source", "th")]), 1.0);
    assert_eq!(
        m.get(
            "nhi_findings_open",
            &[
                ("source", "th"),
                ("secret_type", "aws"),
                ("validity", "live")
            ]
        ),
        Some(1.0)
    );
    assert_eq!(
        m.get(
            "nhi_source_up",
            &[("source", "th"), ("source_type", "trufflehog")]
        ),
        Some(1.0)
    );
    outputs.push(m.text.clone());
    outputs.push(log);

    // 2. A malformed line (a truncated write, here quoting a canary) rejects
    //    the file: counted, logged with the file and line, state kept.
    let mut bad = format!("{th_line}\n");
    bad.push_str(&format!(
        "{{\"DetectorName\":\"Generic\",\"Raw\":\"{TH_CANARY}\"\n"
    ));
    write_atomic(&th_report, bad.as_bytes());
    let (code, m, log) = once(&cfg);
    assert_eq!(code, Some(1), "a rejected input fails --once; log:\n{log}");
    assert_eq!(m.get("nhi_source_up", &[("source", "th")]), Some(0.0));
    assert_eq!(m.get("nhi_source_up", &[("source", "gl")]), Some(1.0));
    assert_eq!(
        m.get(
            "nhi_source_errors_total",
            &[("source", "th"), ("reason", "parse")]
        ),
        Some(1.0)
    );
    assert_eq!(m.sum("nhi_findings_open", &[("source", "th")]), 1.0);
    assert_eq!(m.sum("nhi_findings_closed_total", &[("source", "th")]), 0.0);
    assert!(
        log.contains(&format!("{}: line 2 column", th_report.display())),
        "the log names the file and line:\n{log}"
    );
    outputs.push(m.text.clone());
    outputs.push(log);

    // 3. trufflehog's newer scan is empty (it prints nothing when it finds
    //    nothing): its finding disappears, gitleaks' keeps the exposure open.
    write_atomic(&th_report, b"");
    let (code, m, log) = once(&cfg);
    assert_eq!(code, Some(0), "log:\n{log}");
    assert_eq!(
        m.get(
            "nhi_findings_closed_total",
            &[("source", "th"), ("resolution", "disappeared")]
        ),
        Some(1.0)
    );
    assert_eq!(m.sum("nhi_findings_open", &[("source", "th")]), 0.0);
    assert_eq!(m.sum("nhi_exposed_secrets", &[]), 1.0);
    assert_eq!(m.get("nhi_residual_exposures", &[]), Some(0.0));
    outputs.push(m.text.clone());
    outputs.push(log);

    // 4. gitleaks' newer scan is clean too: every finding is closed, but the
    //    secret was last seen live, so the exposure is residual.
    write_report(&gl_report, &[]);
    let (code, m, log) = once(&cfg);
    assert_eq!(code, Some(0), "log:\n{log}");
    assert_eq!(m.sum("nhi_exposed_secrets", &[]), 0.0);
    assert_eq!(m.get("nhi_residual_exposures", &[]), Some(1.0));
    outputs.push(m.text.clone());
    outputs.push(log);

    let store = read_all_files(&dir.path().join("state"));
    let needles = [AWS_SECRET, TH_CANARY, "dev@example.com"];
    for (i, o) in outputs.iter().enumerate() {
        assert_no_secret(&format!("output {i}"), o.as_bytes(), &needles);
    }
    assert_no_secret("the store", &store, &needles);
}
