//! The `gcp` source end to end through the real binary, against a loopback
//! server speaking Google's public REST shapes (tests/gcp_mock): exact
//! identity, privilege, credential, human and posture values on a
//! two-project estate under a folder and an organization; leaked key files
//! (a trufflehog `RawV2`, a gitleaks secret) linked by `private_key_id` to
//! their key and confirmed revoked when the key is disabled or deleted
//! (`confirmed_by="gcp"`); a residual exposure; a 503 and a 429 retried
//! within the poll, then a project that keeps failing alone while the
//! other is updated; exactly the expected calls and no secret value read;
//! canaries (the key files' private keys, the access token, the JWT) absent
//! from metrics, logs and the store. A second test covers `organization`
//! with the metadata server's token (ADC).

mod common;
mod gcp_mock;

use common::{contains, gl_finding, read_all_files, write_report, Exporter, Metrics};
use gcp_mock::*;
use serde_json::json;
use std::collections::BTreeSet;

const DAY: i64 = 86_400;
/// A test-only RSA key generated for this repository (never a Google key).
const FAKE_PEM: &str = include_str!("fixtures/gcp/FAKE-test-only-sa-key.pem");
const EXPORTER_KID: &str = "e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0";
const EXPORTER_SA: &str = "nhi-exporter@acme-ops.iam.gserviceaccount.com";
/// The start of every self-signed JWT the exporter sends
/// (`{"alg":"RS256","typ":"JWT",`): never in an output.
const JWT_PREFIX: &str = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCIs";
const K1: &str = "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1"; // ci, leaked (trufflehog)
const K2: &str = "b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2"; // ci
const K3: &str = "c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3"; // app, disabled
const K4: &str = "d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4"; // deployer, leaked (gitleaks)
const K5: &str = "e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5"; // batch (account disabled)
const K6: &str = "f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6"; // added later

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn ts(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

fn email(name: &str, project: &str) -> String {
    format!("{name}@{project}.iam.gserviceaccount.com")
}

/// A leaked key file of `key_id` (its private key a canary, not a key).
fn leaked_key_file(key_id: &str, client_email: &str, canary: &str) -> String {
    serde_json::to_string_pretty(&json!({
        "type": "service_account", "project_id": "acme-prod", "private_key_id": key_id,
        "private_key": format!("-----BEGIN PRIVATE KEY-----\n{canary}\n-----END PRIVATE KEY-----\n"),
        "client_email": client_email, "client_id": "100000000000000000001",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": "https://oauth2.googleapis.com/token",
    }))
    .unwrap()
}

/// trufflehog's GCP detector: the client email in `Raw`, the key JSON in `RawV2`.
fn th_gcp(client_email: &str, key_json: &str) -> String {
    json!({
        "SourceMetadata": {"Data": {"Git": {"commit": "c1", "file": "deploy/sa.json",
            "email": "Dev <dev@example.com>", "repository": "https://github.com/acme/infra.git",
            "timestamp": "2026-01-01 00:00:00 +0000", "line": 1}}},
        "SourceID": 1, "SourceType": 7, "SourceName": "trufflehog - git",
        "DetectorType": 1001, "DetectorName": "GCP", "DetectorDescription": "GCP service account key",
        "DecoderName": "PLAIN", "Verified": false, "VerificationFromCache": false,
        "Raw": client_email, "RawV2": key_json, "Redacted": client_email,
        "ExtraData": null, "StructuredData": null
    })
    .to_string()
}

/// The estate: organization 1 → folder 7 → acme-prod (1001, team label);
/// organization 1 → acme-dev (1002).
fn seed(g: &Mock, t0: i64) {
    let never = "9999-12-31T23:59:59Z";
    g.add_folder("7", "organizations/1");
    g.add_project(
        "acme-prod",
        "1001",
        "folders/7",
        json!({"team": "payments", "env": "prod"}),
    );
    g.add_project("acme-dev", "1002", "organizations/1", json!({}));
    let (ci, app, old) = (
        email("ci", "acme-prod"),
        email("app", "acme-prod"),
        email("old", "acme-prod"),
    );
    let (deployer, batch) = (email("deployer", "acme-dev"), email("batch", "acme-dev"));
    g.set_policy(
        "organizations/1",
        json!([
            {"role": "roles/owner", "members": ["user:alice@example.com"]},
            {"role": "roles/iam.serviceAccountTokenCreator", "members": [format!("serviceAccount:{deployer}")]},
        ]),
    );
    g.set_policy(
        "folders/7",
        json!([{"role": "roles/editor", "members": [format!("serviceAccount:{ci}"), "group:sre@example.com"]}]),
    );
    g.set_policy(
        "projects/1001",
        json!([
            {"role": "roles/viewer", "members": [format!("serviceAccount:{app}"), "user:bob@example.com",
                "serviceAccount:service-1001@gcp-sa-pubsub.iam.gserviceaccount.com"]},
            // Another project's account: no identity here.
            {"role": "roles/owner", "members": ["serviceAccount:x@other-proj.iam.gserviceaccount.com"]},
        ]),
    );
    g.set_policy(
        "projects/1002",
        json!([
            {"role": "roles/owner", "members": [format!("serviceAccount:{batch}"), "user:alice@example.com"],
             "condition": {"title": "until-2030", "expression": "request.time < timestamp('2030-01-01T00:00:00Z')"}},
        ]),
    );
    g.add_account("acme-prod", &ci, "101", false);
    g.add_account("acme-prod", &app, "102", false);
    g.add_account("acme-prod", &old, "103", false);
    g.add_account("acme-dev", &deployer, "201", false);
    g.add_account("acme-dev", &batch, "202", true);
    g.add_key("acme-prod", &ci, K1, &ts(t0 - 400 * DAY), never, false);
    g.add_key(
        "acme-prod",
        &ci,
        K2,
        &ts(t0 - 10 * DAY),
        &ts(t0 + 80 * DAY),
        false,
    );
    g.add_key("acme-prod", &app, K3, &ts(t0 - 100 * DAY), never, true);
    g.add_key("acme-dev", &deployer, K4, &ts(t0 - 5 * DAY), never, false);
    g.add_key("acme-dev", &batch, K5, &ts(t0 - 50 * DAY), never, false);
    let key_ty = "serviceAccountKeyLastAuthentication";
    let sa_ty = "serviceAccountLastAuthentication";
    g.add_activity(
        "acme-prod",
        "1001",
        key_ty,
        &format!("{ci}/keys/{K1}"),
        "101",
        &ts(t0 - DAY),
    );
    g.add_activity("acme-prod", "1001", sa_ty, &ci, "101", &ts(t0 - DAY));
    g.add_activity(
        "acme-dev",
        "1002",
        sa_ty,
        &deployer,
        "201",
        &ts(t0 - 3 * DAY),
    );
    g.add_secret(
        "1001",
        "db-password",
        json!({"createTime": ts(t0 - 200 * DAY), "labels": {"team": "data"},
               "rotation": {"nextRotationTime": ts(t0 + 10 * DAY), "rotationPeriod": "2592000s"},
               "topics": [{"name": "projects/acme-prod/topics/rotate"}]}),
        &[
            (&ts(t0 - 200 * DAY), "ENABLED"),
            (&ts(t0 - 31 * DAY), "ENABLED"),
            (&ts(t0 - 5 * DAY), "DISABLED"),
        ],
    );
    g.add_secret(
        "1001",
        "legacy",
        json!({"createTime": ts(t0 - 400 * DAY),
               "rotation": {"nextRotationTime": ts(t0 - 5 * DAY), "rotationPeriod": "2592000s"}}),
        &[(&ts(t0 - 400 * DAY), "ENABLED")],
    );
    g.add_secret(
        "1002",
        "api-token",
        json!({"createTime": ts(t0 - 10 * DAY), "expireTime": ts(t0 + 20 * DAY)}),
        &[(&ts(t0 - 10 * DAY), "DESTROYED")],
    );
}

/// The sum of the matching series (identity and credential gauges carry
/// a `scope` label per project here), which must exist.
fn g(m: &Metrics, name: &str, labels: &[(&str, &str)]) -> f64 {
    assert!(
        m.text.lines().any(|l| l.starts_with(name)
            && labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))),
        "{name}{labels:?} missing:\n{}",
        m.text
    );
    m.sum(name, labels)
}

/// The calls of one poll (method and path), every one expected.
fn expected_calls() -> BTreeSet<String> {
    let mut v: Vec<String> = vec![
        "GET /v3/projects/acme-prod".into(),
        "GET /v3/projects/acme-dev".into(),
        "GET /v3/folders/7".into(),
        "POST /v3/organizations/1:getIamPolicy".into(),
        "POST /v3/folders/7:getIamPolicy".into(),
        "POST /v3/projects/1001:getIamPolicy".into(),
        "POST /v3/projects/1002:getIamPolicy".into(),
        "GET /v1/projects/acme-prod/serviceAccounts".into(),
        "GET /v1/projects/acme-dev/serviceAccounts".into(),
        "GET /v1/projects/acme-prod/secrets".into(),
        "GET /v1/projects/acme-dev/secrets".into(),
        "GET /v1/projects/1001/secrets/db-password/versions".into(),
        "GET /v1/projects/1001/secrets/legacy/versions".into(),
        "GET /v1/projects/1002/secrets/api-token/versions".into(),
    ];
    for (p, names) in [
        ("acme-prod", &["ci", "app", "old"][..]),
        ("acme-dev", &["deployer", "batch"][..]),
    ] {
        for n in names {
            v.push(format!(
                "GET /v1/projects/{p}/serviceAccounts/{}/keys",
                email(n, p)
            ));
        }
        for t in [
            "serviceAccountKeyLastAuthentication",
            "serviceAccountLastAuthentication",
        ] {
            v.push(format!(
                "GET /v1/projects/{p}/locations/global/activityTypes/{t}/activities:query"
            ));
        }
    }
    v.into_iter().collect()
}

#[test]
fn estate_leaked_keys_revoked_residual_faults_and_canaries() {
    let t0 = now();
    let gm = Mock::start();
    gm.with(|s| {
        s.key = Some((
            EXPORTER_KID.into(),
            EXPORTER_SA.into(),
            public_der(FAKE_PEM),
        ));
        s.page = Some(2); // pages of 2: three accounts in acme-prod take two
    });
    seed(&gm, t0);
    // The first poll meets a 503 on acme-dev's account list and a 429 on
    // a key list: both retried within the poll.
    gm.fault("/v1/projects/acme-dev/serviceAccounts", 503, 1);
    gm.fault(
        &format!(
            "/v1/projects/acme-dev/serviceAccounts/{}/keys",
            email("deployer", "acme-dev")
        ),
        429,
        1,
    );
    let dir = tempfile::tempdir().unwrap();
    let key_file = json!({
        "type": "service_account", "project_id": "acme-ops", "private_key_id": EXPORTER_KID,
        "private_key": FAKE_PEM, "client_email": EXPORTER_SA, "client_id": "1",
        "token_uri": format!("{}/token-never-called", gm.url()),
    });
    std::fs::write(dir.path().join("gcp.json"), key_file.to_string()).unwrap();
    std::fs::create_dir_all(dir.path().join("reports")).unwrap();
    let (ci, deployer) = (email("ci", "acme-prod"), email("deployer", "acme-dev"));
    let leak1 = leaked_key_file(K1, &ci, "gcp-leak-canary-one");
    let leak2 = leaked_key_file(K4, &deployer, "gcp-leak-canary-two");
    std::fs::write(
        dir.path().join("reports/infra.jsonl"),
        th_gcp(&ci, &leak1) + "\n",
    )
    .unwrap();
    let gl_report = dir.path().join("reports/app.json");
    write_report(
        &gl_report,
        &[gl_finding(
            "gcp-service-account",
            &leak2,
            "sa.json",
            1,
            "c0ffee",
        )],
    );
    let cfg = dir.path().join("nhi.yaml");
    std::fs::write(
        &cfg,
        format!(
            "state: {{path: state/state.db}}\n\
             policy: {{stale_after: 10m}}\n\
             labels: {{scope: {{enabled: true}}}}\n\
             sources:\n\
             \x20 - {{name: th, type: trufflehog, interval: 1s, paths: [reports/*.jsonl]}}\n\
             \x20 - {{name: leaks, type: gitleaks, interval: 1s, paths: [reports/*.json]}}\n\
             \x20 - name: gcp\n    type: gcp\n    interval: 1s\n    timeout: 20s\n    projects: [acme-prod, acme-dev]\n    credentials_file: gcp.json\n    activity: true\n    endpoints: {}\n",
            gm.endpoints_yaml()
        ),
    )
    .unwrap();
    let log = dir.path().join("exporter.log");
    let mut ex = Exporter::start(&cfg, &log, &[]);
    let src = [("source", "gcp"), ("provider", "gcp")];
    let sa = [src[0], src[1], ("kind", "service_account")];
    let key = [src[0], src[1], ("kind", "sa_key")];
    let sec = [src[0], src[1], ("kind", "secret")];
    let cred = |kind: &'static str, state: &'static str| {
        [src[0], src[1], ("kind", kind), ("state", state)]
    };

    let m = ex.wait_for("the estate", |m| m.sum("nhi_identities", &sa) == 5.0);
    assert_eq!(g(&m, "nhi_source_up", &[("source", "gcp")]), 1.0);
    // The 503 and the 429 were retried inside the poll: no error counted.
    assert_eq!(m.sum("nhi_source_errors_total", &[("source", "gcp")]), 0.0);
    assert!(
        gm.with(|s| s.faults.iter().all(|f| f.times == 0)),
        "faults served"
    );
    // ci: roles/editor on folder 7; deployer: token creator on the
    // organization; batch's owner binding is conditional (not standing).
    assert_eq!(g(&m, "nhi_standing_privileged_identities", &sa), 2.0);
    // alice (twice bound) and bob; groups, service agents are not counted.
    assert_eq!(g(&m, "nhi_human_identities", &src), 2.0);
    // app (oldest key 100 days, no authentication seen), old (nothing seen).
    assert_eq!(g(&m, "nhi_unused_identities", &sa), 2.0);
    // The three of acme-prod (project label team=payments).
    assert_eq!(g(&m, "nhi_identities_owned", &sa), 3.0);
    // ci is owned and used, but its key K1 is 400 days old.
    assert_eq!(g(&m, "nhi_identities_governed", &sa), 0.0);
    assert_eq!(g(&m, "nhi_credentials", &cred("sa_key", "active")), 3.0); // K1 K2 K4
    assert_eq!(g(&m, "nhi_credentials", &cred("sa_key", "inactive")), 2.0); // K3 disabled, K5 account disabled
    assert_eq!(g(&m, "nhi_credentials", &cred("secret", "active")), 2.0);
    assert_eq!(g(&m, "nhi_credentials", &cred("secret", "inactive")), 1.0); // only a destroyed version
    assert_eq!(g(&m, "nhi_long_lived_credentials", &key), 1.0); // K1
    assert_eq!(g(&m, "nhi_long_lived_credentials", &sec), 1.0); // legacy (400 days)
    assert_eq!(g(&m, "nhi_credentials_rotation_enabled", &key), 0.0);
    assert_eq!(g(&m, "nhi_credentials_rotation_enabled", &sec), 1.0); // db-password; legacy's is overdue
    for (band, n) in [
        ("lt_30d", 2.0),
        ("30d_90d", 1.0),
        ("90d_365d", 0.0),
        ("gt_365d", 2.0),
    ] {
        assert_eq!(
            g(
                &m,
                "nhi_credentials_by_age",
                &[src[0], src[1], ("band", band)]
            ),
            n,
            "{band}"
        );
    }
    let in_prod =
        |l: &[(&'static str, &'static str); 3]| [l[0], l[1], l[2], ("scope", "acme-prod")];
    let oldest = g(&m, "nhi_credential_oldest_age_seconds", &in_prod(&key));
    assert!((oldest - (400 * DAY) as f64).abs() < 120.0, "{oldest}");
    let oldest = g(&m, "nhi_credential_oldest_age_seconds", &in_prod(&sec));
    assert!((oldest - (400 * DAY) as f64).abs() < 120.0, "{oldest}");
    assert_eq!(
        m.sum(
            "nhi_identities",
            &[("scope", "acme-prod"), ("kind", "service_account")]
        ),
        3.0
    );
    assert_eq!(
        m.sum(
            "nhi_identities",
            &[("scope", "acme-dev"), ("kind", "service_account")]
        ),
        2.0
    );
    assert_eq!(
        m.sum(
            "nhi_credentials",
            &[("scope", "acme-dev"), ("kind", "secret")]
        ),
        1.0
    );
    assert_eq!(
        g(&m, "nhi_exposed_secrets", &[("validity", "unknown")]),
        2.0
    );
    assert_eq!(
        g(
            &m,
            "nhi_exposures_revoked_total",
            &[("confirmed_by", "gcp")]
        ),
        0.0
    );
    // Posture: privilege = 1 - 2/5; hygiene = 1 - 2 long-lived / 5 active.
    assert!((g(&m, "nhi_posture_score", &[("dimension", "privilege")]) - 0.6).abs() < 1e-9);
    assert!((g(&m, "nhi_posture_score", &[("dimension", "hygiene")]) - 0.6).abs() < 1e-9);

    // Exactly the expected calls; no value read; paging followed.
    let (violations, requests) = gm.with(|s| (s.violations.clone(), s.requests.clone()));
    assert!(violations.is_empty(), "{violations:?}");
    let seen: BTreeSet<String> = requests
        .iter()
        .map(|r| r.split_once('?').map(|(a, _)| a).unwrap_or(r).to_string())
        .collect();
    assert_eq!(seen, expected_calls(), "missing or unexpected calls");
    assert!(
        requests
            .iter()
            .any(|r| r.contains("/serviceAccounts?pageSize=100&pageToken=off-2")),
        "paged"
    );

    // K1 (leaked, trufflehog) is disabled while the finding is open: revoked.
    gm.set_key_disabled(&ci, K1, true);
    let m = ex.wait_for("K1 revoked", |m| {
        m.get("nhi_exposures_revoked_total", &[("confirmed_by", "gcp")]) == Some(1.0)
    });
    assert_eq!(
        g(
            &m,
            "nhi_time_to_revoke_seconds_count",
            &[("confirmed_by", "gcp")]
        ),
        1.0
    );
    assert_eq!(g(&m, "nhi_credentials", &cred("sa_key", "active")), 2.0);
    // ci's remaining active key is 10 days old: ci is governed now.
    assert_eq!(g(&m, "nhi_identities_governed", &sa), 1.0);
    let oldest = g(&m, "nhi_credential_oldest_age_seconds", &in_prod(&key));
    assert!((oldest - (10 * DAY) as f64).abs() < 120.0, "{oldest}");

    // K4's finding is closed while the key still works: residual. Then the
    // key is deleted: revoked.
    write_report(&gl_report, &[]);
    ex.wait_for("residual K4", |m| {
        m.get("nhi_residual_exposures", &[]) == Some(1.0)
    });
    gm.delete_key(&deployer, K4);
    let m = ex.wait_for("K4 revoked by deletion", |m| {
        m.get("nhi_exposures_revoked_total", &[("confirmed_by", "gcp")]) == Some(2.0)
            && m.get("nhi_residual_exposures", &[]) == Some(0.0)
    });
    assert_eq!(
        g(
            &m,
            "nhi_time_to_revoke_seconds_count",
            &[("confirmed_by", "gcp")]
        ),
        2.0
    );
    assert_eq!(
        g(
            &m,
            "nhi_time_to_revoke_seconds_bucket",
            &[("confirmed_by", "gcp"), ("le", "300")]
        ),
        2.0
    );

    // acme-dev keeps failing (503): its scopes keep their state, acme-prod
    // is still updated, and a key gone from acme-dev meanwhile is no deletion.
    gm.fault("/v1/projects/acme-dev/", 503, 1_000_000);
    let errs = |m: &Metrics| {
        m.get(
            "nhi_source_errors_total",
            &[("source", "gcp"), ("reason", "http_5xx")],
        )
        .unwrap_or(0.0)
    };
    let m = ex.wait_for("acme-dev failing", |m| errs(m) >= 2.0);
    gm.delete_key(&email("batch", "acme-dev"), K5);
    gm.add_key(
        "acme-prod",
        &ci,
        K6,
        &ts(t0 - 2 * DAY),
        "9999-12-31T23:59:59Z",
        false,
    );
    let before = errs(&m);
    let m = ex.wait_for("acme-prod updated beside failing acme-dev", |m| {
        m.sum("nhi_credentials", &cred("sa_key", "active")) == 2.0 && errs(m) >= before + 2.0
    });
    // Up is 1 only when every input was read; the data is kept and updated.
    assert_eq!(g(&m, "nhi_source_up", &[("source", "gcp")]), 0.0);
    assert_eq!(
        g(&m, "nhi_identities", &sa),
        5.0,
        "acme-dev keeps its two accounts"
    );
    assert_eq!(
        g(&m, "nhi_credentials", &cred("sa_key", "inactive")),
        3.0,
        "K1, K3 disabled; K5 kept though gone: its scope failed"
    );
    assert_eq!(
        g(&m, "nhi_human_identities", &src),
        2.0,
        "the humans keep their state"
    );
    assert_eq!(g(&m, "nhi_standing_privileged_identities", &sa), 2.0);
    let landing = ex.get("/").1;
    assert!(
        landing.contains("project acme-dev"),
        "the landing page names the project:\n{landing}"
    );

    let metrics = ex.metrics();
    let (_, _) = ex.stop();
    let store = read_all_files(&dir.path().join("state"));
    let logs = std::fs::read(&log).unwrap();
    let pem_line = FAKE_PEM.lines().nth(5).unwrap();
    for canary in [
        "gcp-leak-canary-one",
        "gcp-leak-canary-two",
        pem_line,
        JWT_PREFIX,
    ] {
        assert!(!metrics.contains(canary), "{canary} in /metrics");
        assert!(!contains(&logs, canary), "{canary} in the log");
        assert!(!contains(&store, canary), "{canary} in the store");
    }
}

#[test]
fn organization_projects_with_the_metadata_server_token() {
    let t0 = now();
    let token = "ya29.gcp-access-token-canary-9f3e";
    let gm = Mock::start();
    gm.with(|s| s.access_token = Some(token.into()));
    gm.add_folder("7", "organizations/1");
    gm.add_folder("8", "folders/7");
    gm.add_project("deep-proj", "3001", "folders/8", json!({"team": "data"}));
    gm.add_project("top-proj", "3002", "organizations/1", json!({}));
    gm.add_project("other-org", "3003", "organizations/2", json!({}));
    gm.with(|s| {
        // Being deleted: not ACTIVE, not polled.
        let mut p = s.projects[0].clone();
        p["projectId"] = json!("gone-proj");
        p["name"] = json!("projects/3004");
        p["state"] = json!("DELETE_REQUESTED");
        s.projects.push(p);
    });
    gm.set_policy("folders/7", json!([{"role": "roles/owner", "members": [format!("serviceAccount:{}", email("etl", "deep-proj"))]}]));
    gm.add_account("deep-proj", &email("etl", "deep-proj"), "301", false);
    gm.add_account("top-proj", &email("web", "top-proj"), "302", false);
    gm.add_account("other-org", &email("x", "other-org"), "303", false);
    gm.add_key(
        "deep-proj",
        &email("etl", "deep-proj"),
        K1,
        &ts(t0 - DAY),
        &ts(t0 + DAY),
        false,
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("nhi.yaml");
    std::fs::write(
        &cfg,
        format!(
            "state: {{path: state/state.db}}\nlabels: {{scope: {{enabled: true}}}}\nsources:\n  - name: org\n    type: gcp\n    interval: 1s\n    organization: \"1\"\n    endpoints: {}\n",
            gm.endpoints_yaml()
        ),
    )
    .unwrap();
    let log = dir.path().join("exporter.log");
    // Application Default Credentials: the metadata server, here the mock.
    std::env::set_var("GCE_METADATA_HOST", format!("127.0.0.1:{}", gm.port));
    std::env::remove_var("GOOGLE_APPLICATION_CREDENTIALS");
    std::env::set_var("HOME", dir.path());
    let mut ex = Exporter::start(&cfg, &log, &[]);
    let sa = [
        ("source", "org"),
        ("provider", "gcp"),
        ("kind", "service_account"),
    ];
    let m = ex.wait_for("organization projects", |m| {
        m.sum("nhi_identities", &sa) == 2.0
    });
    assert_eq!(m.sum("nhi_identities", &[("scope", "deep-proj")]), 1.0);
    assert_eq!(m.sum("nhi_identities", &[("scope", "top-proj")]), 1.0);
    assert_eq!(m.sum("nhi_identities", &[("scope", "other-org")]), 0.0);
    assert_eq!(
        g(&m, "nhi_standing_privileged_identities", &sa),
        1.0,
        "owner on folder 7, two levels up"
    );
    assert_eq!(g(&m, "nhi_identities_owned", &sa), 1.0);
    assert_eq!(
        g(
            &m,
            "nhi_credentials",
            &[
                ("source", "org"),
                ("provider", "gcp"),
                ("kind", "sa_key"),
                ("state", "active")
            ]
        ),
        1.0
    );
    let (violations, requests) = gm.with(|s| (s.violations.clone(), s.requests.clone()));
    assert!(violations.is_empty(), "{violations:?}");
    assert!(requests
        .iter()
        .any(|r| r.starts_with("GET /v3/projects:search?query=state%3AACTIVE")));
    assert!(requests
        .iter()
        .any(|r| r.starts_with("GET /computeMetadata/v1/instance/service-accounts/default/token")));
    assert!(
        !requests
            .iter()
            .any(|r| r.contains("other-org/serviceAccounts")),
        "another organization's project is not read"
    );
    assert!(!requests.iter().any(|r| r.contains("gone-proj")));
    let metrics = ex.metrics();
    ex.stop();
    let store = read_all_files(&dir.path().join("state"));
    let logs = std::fs::read(&log).unwrap();
    assert!(!metrics.contains(token) && !contains(&logs, token) && !contains(&store, token));
}
