//! End to end through the real binary, against the real servers: a moto
//! server (AWS) and an OpenBao dev server, with gitleaks reports that leak
//! their credentials. Asserts the exact identity, credential and posture
//! metrics, the confirmed revocations (`confirmed_by="aws"`, `"vault"`), the
//! residual exposures, what a failing upstream does (and does not) change,
//! and that no secret value appears in metrics, logs or the store.

mod common;

use aws_sdk_iam::types::StatusType;
use common::moto::{set_sdk_env, Moto};
use common::openbao::OpenBao;
use common::{contains, gl_finding, read_all_files, write_report, Exporter, Metrics};
use serde_json::json;
use std::path::Path;

fn write_config(dir: &Path, sources: &str) -> std::path::PathBuf {
    let cfg = dir.join("nhi.yaml");
    std::fs::write(
        &cfg,
        format!(
            "state: {{path: state/state.db}}\npolicy: {{team_tag: team, stale_after: 1m}}\nsources:\n  - name: leaks\n    type: gitleaks\n    interval: 1s\n    paths: [reports/*.json]\n{sources}"
        ),
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("reports")).unwrap();
    cfg
}

fn labels<'a>(source: &'a str, provider: &'a str, kind: &'a str) -> [(&'a str, &'a str); 3] {
    [("source", source), ("provider", provider), ("kind", kind)]
}

fn g(m: &Metrics, name: &str, labels: &[(&str, &str)]) -> f64 {
    m.get(name, labels)
        .unwrap_or_else(|| panic!("{name}{labels:?} missing:\n{}", m.text))
}

#[test]
fn aws_leaked_key_revoked_residual_and_faults() {
    let mut moto = Moto::start();
    set_sdk_env("us-east-1");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let conf = rt.block_on(moto.sdk_config("us-east-1"));
    let iam = aws_sdk_iam::Client::new(&conf);
    let sm = aws_sdk_secretsmanager::Client::new(&conf);
    const ADMIN: &str = "arn:aws:iam::aws:policy/AdministratorAccess";
    let (leaked, residual, secret_keys) = rt.block_on(async {
        let mut secret_keys = Vec::new();
        let mut key_of = |out: aws_sdk_iam::operation::create_access_key::CreateAccessKeyOutput| {
            let k = out.access_key.unwrap();
            secret_keys.push(k.secret_access_key().to_string());
            k.access_key_id().to_string()
        };
        let team = |t: &str| {
            aws_sdk_iam::types::Tag::builder()
                .key("team")
                .value(t)
                .build()
                .unwrap()
        };
        iam.create_user()
            .user_name("svc-ci")
            .tags(team("payments"))
            .send()
            .await
            .unwrap();
        iam.attach_user_policy()
            .user_name("svc-ci")
            .policy_arn(ADMIN)
            .send()
            .await
            .unwrap();
        let leaked = key_of(
            iam.create_access_key()
                .user_name("svc-ci")
                .send()
                .await
                .unwrap(),
        );
        iam.create_user()
            .user_name("svc-indexer")
            .send()
            .await
            .unwrap();
        let residual = key_of(
            iam.create_access_key()
                .user_name("svc-indexer")
                .send()
                .await
                .unwrap(),
        );
        iam.create_user().user_name("alice").send().await.unwrap();
        iam.create_login_profile()
            .user_name("alice")
            .password("Canary-Pass-1")
            .send()
            .await
            .unwrap();
        let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
        iam.create_role()
            .role_name("app")
            .assume_role_policy_document(trust)
            .send()
            .await
            .unwrap();
        iam.create_service_linked_role()
            .aws_service_name("autoscaling.amazonaws.com")
            .send()
            .await
            .unwrap();
        sm.create_secret()
            .name("payments/db")
            .secret_string("canary-sm-value-5e1f0a")
            .send()
            .await
            .unwrap();
        (leaked, residual, secret_keys)
    });

    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        &format!(
            "  - name: cloud\n    type: aws\n    interval: 1s\n    regions: [us-east-1]\n    endpoint_url: {}\n",
            moto.endpoint
        ),
    );
    let report = dir.path().join("reports/repo.json");
    let commit = "0123456789abcdef0123456789abcdef01234567";
    write_report(
        &report,
        &[
            gl_finding("aws-access-token", &leaked, "ci.env", 1, commit),
            gl_finding("aws-access-token", &residual, "indexer.py", 2, commit),
        ],
    );
    let ex = Exporter::start(&cfg, &dir.path().join("exporter.log"), &[]);
    let cloud = |kind: &'static str| labels("cloud", "aws", kind);
    let m = ex.wait_for("inventory and leaks", |m| {
        m.get("nhi_source_up", &[("source", "cloud")]) == Some(1.0)
            && m.sum("nhi_exposed_secrets", &[]) == 2.0
    });
    // svc-ci, svc-indexer (alice is human); the service-linked role is not
    // counted.
    assert_eq!(g(&m, "nhi_identities", &cloud("user")), 2.0);
    assert_eq!(g(&m, "nhi_identities", &cloud("role")), 1.0);
    assert_eq!(
        g(
            &m,
            "nhi_human_identities",
            &[("source", "cloud"), ("provider", "aws")]
        ),
        1.0
    );
    assert_eq!(
        g(&m, "nhi_standing_privileged_identities", &cloud("user")),
        1.0
    );
    assert_eq!(
        g(&m, "nhi_standing_privileged_identities", &cloud("role")),
        0.0
    );
    assert_eq!(g(&m, "nhi_identities_owned", &cloud("user")), 1.0);
    // Just created: used or not, nothing is older than unused_after.
    assert_eq!(g(&m, "nhi_unused_identities", &cloud("user")), 0.0);
    assert_eq!(g(&m, "nhi_identities_governed", &cloud("user")), 1.0);
    let mut creds = cloud("access_key").to_vec();
    creds.push(("state", "active"));
    assert_eq!(g(&m, "nhi_credentials", &creds), 2.0);
    let mut secrets = cloud("secret").to_vec();
    secrets.push(("state", "active"));
    assert_eq!(g(&m, "nhi_credentials", &secrets), 1.0);
    assert_eq!(
        g(&m, "nhi_long_lived_credentials", &cloud("access_key")),
        0.0
    );
    assert_eq!(
        g(&m, "nhi_credentials_rotation_enabled", &cloud("secret")),
        0.0
    );
    assert_eq!(
        g(
            &m,
            "nhi_credentials_by_age",
            &[("source", "cloud"), ("band", "lt_30d")]
        ),
        3.0
    );
    assert!(
        g(
            &m,
            "nhi_credential_oldest_age_seconds",
            &cloud("access_key")
        ) < 3600.0
    );
    // privilege: 1 - 1/3; hygiene 1; governance 1/3.
    let p = |d: &str| g(&m, "nhi_posture_score", &[("dimension", d)]);
    assert!((p("privilege") - 2.0 / 3.0).abs() < 1e-9);
    assert_eq!(p("hygiene"), 1.0);
    assert!((p("governance") - 1.0 / 3.0).abs() < 1e-9);
    assert_eq!(
        g(
            &m,
            "nhi_exposures_revoked_total",
            &[("confirmed_by", "aws")]
        ),
        0.0
    );

    // The leaked key is deactivated: a confirmed revocation, once.
    rt.block_on(
        iam.update_access_key()
            .user_name("svc-ci")
            .access_key_id(&leaked)
            .status(StatusType::Inactive)
            .send(),
    )
    .unwrap();
    let m = ex.wait_for("revocation confirmed by aws", |m| {
        m.get("nhi_exposures_revoked_total", &[("confirmed_by", "aws")]) == Some(1.0)
    });
    assert_eq!(
        g(
            &m,
            "nhi_time_to_revoke_seconds_count",
            &[("confirmed_by", "aws")]
        ),
        1.0
    );
    assert_eq!(g(&m, "nhi_credentials", &creds), 1.0);

    // The other leak is removed from the code, its key still active.
    write_report(
        &report,
        &[gl_finding("aws-access-token", &leaked, "ci.env", 1, commit)],
    );
    let m = ex.wait_for("residual exposure", |m| {
        m.get("nhi_residual_exposures", &[]) == Some(1.0)
    });
    assert_eq!(
        g(
            &m,
            "nhi_exposures_revoked_total",
            &[("confirmed_by", "aws")]
        ),
        1.0
    );

    // moto goes away: the source is down and counts why; nothing is revoked,
    // closed or deleted by the failure; the scanner source is unaffected.
    moto.stop();
    let m = ex.wait_for("aws source down", |m| {
        m.get("nhi_source_up", &[("source", "cloud")]) == Some(0.0)
            && m.sum("nhi_source_errors_total", &[("source", "cloud")]) >= 1.0
    });
    std::thread::sleep(std::time::Duration::from_secs(2));
    let m2 = Metrics::parse(&ex.metrics());
    for m in [&m, &m2] {
        assert_eq!(g(m, "nhi_source_up", &[("source", "leaks")]), 1.0);
        assert_eq!(g(m, "nhi_residual_exposures", &[]), 1.0);
        assert_eq!(
            g(m, "nhi_exposures_revoked_total", &[("confirmed_by", "aws")]),
            1.0
        );
        assert_eq!(g(m, "nhi_identities", &cloud("user")), 2.0);
    }

    // Canary: no AWS secret key or secret value anywhere.
    let mut everything = read_all_files(&dir.path().join("state"));
    everything.extend(ex.metrics().into_bytes());
    everything.extend(ex.log_text().into_bytes());
    for canary in secret_keys
        .iter()
        .map(String::as_str)
        .chain(["canary-sm-value-5e1f0a", "Canary-Pass-1"])
    {
        assert!(!contains(&everything, canary), "{canary} leaked");
    }
}

#[test]
fn vault_value_rotated_after_a_leak_is_revoked() {
    let bao = OpenBao::start();
    const VALUE: &str = "canary-vault-db-password-9c27d1";
    bao.kv_put("secret", "payments/db", json!({"password": VALUE}));
    bao.kv_custom_metadata("secret", "payments/db", json!({"team": "payments"}));
    bao.kv_put(
        "secret",
        "search/api",
        json!({"key": "canary-vault-other-44af"}),
    );
    // A root token without expiry (standing privileged) and an ordinary one.
    bao.create_token(json!({"policies": ["root"], "display_name": "legacy"}));
    bao.put_policy(
        "app",
        "path \"secret/data/*\" { capabilities = [\"read\"] }",
    );
    bao.create_token(json!({"policies": ["app"], "ttl": "1h", "meta": {"team": "search"}}));

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("vault-token"), &bao.root_token).unwrap();
    let cfg = write_config(
        dir.path(),
        &format!(
            "  - name: bao\n    type: vault\n    interval: 1s\n    address: {}\n    auth: {{method: token, token_file: vault-token}}\n    kv_mounts: [secret]\n    match_values: true\n",
            bao.addr
        ),
    );
    let report = dir.path().join("reports/repo.json");
    let commit = "89abcdef0123456789abcdef0123456789abcdef";
    write_report(
        &report,
        &[gl_finding("generic-api-key", VALUE, "db.sh", 3, commit)],
    );
    let ex = Exporter::start(&cfg, &dir.path().join("exporter.log"), &[]);
    let bao_l = |kind: &'static str| labels("bao", "vault", kind);
    let m = ex.wait_for("vault inventory", |m| {
        m.get("nhi_source_up", &[("source", "bao")]) == Some(1.0)
            && m.sum("nhi_exposed_secrets", &[]) == 1.0
    });
    // Tokens: the dev root token, the exporter reads with it too (same
    // token), the legacy root token, the app token.
    assert_eq!(g(&m, "nhi_identities", &bao_l("token")), 3.0);
    assert_eq!(
        g(&m, "nhi_standing_privileged_identities", &bao_l("token")),
        2.0
    );
    assert_eq!(g(&m, "nhi_identities_owned", &bao_l("token")), 1.0);
    assert_eq!(g(&m, "nhi_unused_identities", &bao_l("token")), 0.0);
    let mut kv = bao_l("kv").to_vec();
    kv.push(("state", "active"));
    assert_eq!(g(&m, "nhi_credentials", &kv), 2.0);

    // Closed while the vault value is current: residual.
    write_report(&report, &[]);
    ex.wait_for("residual", |m| {
        m.get("nhi_residual_exposures", &[]) == Some(1.0)
    });
    // A new version with a new value: confirmed revoked by vault.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    bao.kv_put("secret", "payments/db", json!({"password": "rotated-7f00"}));
    let m = ex.wait_for("revocation confirmed by vault", |m| {
        m.get("nhi_exposures_revoked_total", &[("confirmed_by", "vault")]) == Some(1.0)
    });
    assert_eq!(g(&m, "nhi_residual_exposures", &[]), 0.0);
    assert_eq!(
        g(
            &m,
            "nhi_time_to_revoke_seconds_count",
            &[("confirmed_by", "vault")]
        ),
        1.0
    );

    let mut everything = read_all_files(&dir.path().join("state"));
    everything.extend(ex.metrics().into_bytes());
    everything.extend(ex.log_text().into_bytes());
    for canary in [VALUE, "canary-vault-other-44af", bao.root_token.as_str()] {
        assert!(!contains(&everything, canary), "{canary} leaked");
    }
}
