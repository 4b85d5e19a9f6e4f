//! The `azure` source end to end through the real binary, against a
//! loopback server speaking the public shapes of the Entra token endpoint,
//! Microsoft Graph, ARM and Key Vault (tests/azure_mock): exact identity,
//! privilege, human and credential counts of a tenant; a leaked client
//! secret linked by its application and hint, residual while it works,
//! confirmed revoked when removed; a leaked Key Vault value confirmed
//! revoked when a new version replaces it; a 429 and a 503 retried within
//! the poll; a failing vault and a failing subscription failing only what
//! they must; canaries (client secret, tokens, leaked values) absent from
//! metrics, logs and the store.

mod azure_mock;
mod common;

use azure_mock::*;
use common::{contains, gl_finding, read_all_files, write_report, Exporter, Metrics};
use serde_json::json;

const DAY: i64 = 86_400;
const TENANT: &str = "aaaaaaaa-0000-0000-0000-000000000001";
const CLIENT: &str = "cccccccc-0000-0000-0000-000000000001";
const CLIENT_SECRET: &str = "exporter-client-secret-canary-7f3a";
const SUB: &str = "55555555-0000-0000-0000-000000000001";
const APP_BILLING: &str = "11111111-0000-0000-0000-000000000001";
const APP_REPORT: &str = "11111111-0000-0000-0000-000000000002";
const APP_LEGACY: &str = "11111111-0000-0000-0000-000000000003";
const APP_MI: &str = "11111111-0000-0000-0000-000000000004";
const MS_TENANT: &str = "f8cdef31-a31e-4b4a-93e4-5f571e91255a";
// Fake, in Entra's client secret format (`abc` + digit + `Q~` + 34).
const LEAKED_SECRET: &str = "abc8Q~leakedFAKEfakeFAKEfakeFAKEcanary01";
const KV_VALUE: &str = "kv-db-password-canary-value-91c2";
const KV_VALUE_NEW: &str = "kv-db-password-canary-rotated-5d7e";
const GA: &str = "62e90394-69f5-4237-9190-012177145e10";
const APP_ADMIN: &str = "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3";
const READERS: &str = "88d8e3e3-8f55-4a1e-953a-9b9898b8876b";
const OWNER: &str = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635";
const CONTRIBUTOR: &str = "b24988ac-6180-42a0-ab88-20f7382dd24c";
const READER: &str = "acdd72a7-3385-48ef-bd42-f606fba81ae7";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn g(m: &Metrics, name: &str, labels: &[(&str, &str)]) -> f64 {
    m.get(name, labels)
        .unwrap_or_else(|| panic!("{name}{labels:?} missing:\n{}", m.text))
}

fn billing_passwords(t0: i64, with_leaked: bool) -> Vec<serde_json::Value> {
    let mut v = vec![password(
        "b2b2b2b2-0000-0000-0000-000000000002",
        "old",
        t0 - 500 * DAY,
        t0 - 10 * DAY,
    )];
    if with_leaked {
        v.insert(
            0,
            password(
                "b1b1b1b1-0000-0000-0000-000000000001",
                "abc",
                t0 - 200 * DAY,
                t0 + 165 * DAY,
            ),
        );
    }
    v
}

/// The tenant: three applications, four service principals (one of them
/// Microsoft Graph's), directory and RBAC roles, two vaults.
fn seed(a: &Mock, t0: i64) {
    a.with(|s| {
        s.applications = vec![
            application("obj-billing", APP_BILLING, "billing", t0 - 400 * DAY, &["team:payments"],
                billing_passwords(t0, true),
                vec![certificate("b3b3b3b3-0000-0000-0000-000000000003", t0 - 20 * DAY, t0 + 345 * DAY)]),
            application("obj-reporting", APP_REPORT, "reporting", t0 - 30 * DAY, &[], vec![], vec![]),
            application("obj-legacy", APP_LEGACY, "legacy", t0 - 300 * DAY, &[],
                vec![password("c1c1c1c1-0000-0000-0000-000000000001", "lgc", t0 - 300 * DAY, t0 + 65 * DAY)], vec![]),
        ];
        let mut mi = service_principal("obj-mi", APP_MI, "deployer", "ManagedIdentity", "", vec![]);
        mi["tags"] = json!(["team=platform"]);
        s.service_principals = vec![
            service_principal("obj-sp-billing", APP_BILLING, "billing", "Application", TENANT, vec![]),
            service_principal("obj-sp-reporting", APP_REPORT, "reporting", "Application", TENANT, vec![]),
            mi,
            service_principal("obj-sp-graph", "00000003-0000-0000-c000-000000000000", "Microsoft Graph", "Application", MS_TENANT, vec![]),
        ];
        s.role_definitions = vec![
            role_definition(GA, "Global Administrator"),
            role_definition(APP_ADMIN, "Application Administrator"),
            role_definition(READERS, "Directory Readers"),
        ];
        s.role_assignments = vec![
            role_assignment(GA, "u-alice", "user", "/"),
            role_assignment(APP_ADMIN, "obj-sp-billing", "servicePrincipal", "/"),
            // Scoped to one application: not tenant-wide.
            role_assignment(APP_ADMIN, "u-bob", "user", "/obj-reporting"),
            role_assignment(READERS, "obj-sp-reporting", "servicePrincipal", "/"),
        ];
        s.arm.insert(SUB.into(), (
            vec![
                arm_role_definition(SUB, OWNER, "Owner"),
                arm_role_definition(SUB, CONTRIBUTOR, "Contributor"),
                arm_role_definition(SUB, READER, "Reader"),
            ],
            vec![
                arm_role_assignment(SUB, OWNER, "obj-mi", "ServicePrincipal", &format!("/subscriptions/{SUB}")),
                arm_role_assignment(SUB, CONTRIBUTOR, "obj-sp-reporting", "ServicePrincipal",
                    &format!("/subscriptions/{SUB}/resourceGroups/rg1")),
                arm_role_assignment(SUB, OWNER, "u-carol", "User", "/providers/Microsoft.Management/managementGroups/root"),
                arm_role_assignment(SUB, READER, "u-dave", "User", &format!("/subscriptions/{SUB}")),
                arm_role_assignment(SUB, OWNER, "g-ops", "Group", &format!("/subscriptions/{SUB}")),
            ],
        ));
        s.sp_sign_ins = vec![
            json!({"id": "x1", "appId": APP_BILLING, "lastSignInActivity": {"lastSignInDateTime": ts(t0 - DAY), "lastSignInRequestId": "r1"}}),
            json!({"id": "x2", "appId": APP_MI, "lastSignInActivity": {"lastSignInDateTime": ts(t0 - 2 * DAY), "lastSignInRequestId": "r2"}}),
        ];
        s.credential_sign_ins = vec![json!({"id": "y1", "keyId": "b1b1b1b1-0000-0000-0000-000000000001", "keyType": "clientSecret",
            "appId": APP_BILLING, "signInActivity": {"lastSignInDateTime": ts(t0 - DAY), "lastSignInRequestId": "r3"}})];
        let mut kv1 = std::collections::BTreeMap::new();
        kv1.insert("db-password".to_string(), VaultSecret {
            enabled: true, created: t0 - 100 * DAY, updated: t0 - 100 * DAY, exp: None,
            tags: json!({"team": "payments"}), value: KV_VALUE.into(),
        });
        kv1.insert("api-key".to_string(), VaultSecret {
            enabled: false, created: t0 - 400 * DAY, updated: t0 - 400 * DAY, exp: Some(t0 + 10 * DAY),
            tags: json!({}), value: "kv-disabled-canary-value".into(),
        });
        s.vaults.insert("kv1".into(), kv1);
        s.vaults.insert("kv2".into(), Default::default());
        s.page = 2; // every list is paged
    });
}

fn config(dir: &std::path::Path, a: &Mock) -> std::path::PathBuf {
    std::fs::write(dir.join("client-secret"), format!("{CLIENT_SECRET}\n")).unwrap();
    std::fs::create_dir_all(dir.join("reports")).unwrap();
    let cfg = dir.join("nhi.yaml");
    std::fs::write(
        &cfg,
        format!(
            "state: {{path: state/state.db}}\n\
             policy: {{team_tag: team, stale_after: 5m}}\n\
             labels: {{scope: {{enabled: true}}}}\n\
             sources:\n\
             \x20 - name: leaks\n    type: gitleaks\n    interval: 1s\n    paths: [reports/*.json]\n\
             \x20 - name: azure\n    type: azure\n    interval: 1s\n    timeout: 20s\n    tenant_id: {TENANT}\n\
             \x20   auth: {{method: client_secret, client_id: {CLIENT}, client_secret_file: client-secret}}\n\
             \x20   subscriptions: [{SUB}]\n\
             \x20   key_vaults: ['{}', '{}']\n\
             \x20   match_values: true\n\
             \x20   endpoints: {}\n",
            a.url("kv/kv1"),
            a.url("kv/kv2"),
            a.endpoints_yaml()
        ),
    )
    .unwrap();
    cfg
}

#[test]
fn tenant_inventory_leaks_revoked_residual_and_failed_scopes() {
    let t0 = now();
    let a = Mock::start(TENANT, CLIENT, CLIENT_SECRET);
    seed(&a, t0);
    // One vault refuses the exporter (no access policy): only its scope fails.
    a.fail("/kv/kv2", 403, None, usize::MAX);
    // A 429 with Retry-After and a 503, once each: retried within the poll.
    a.fail("/graph/v1.0/applications", 429, Some(1), 1);
    a.fail("/arm/", 503, None, 1);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &a);
    let report = dir.path().join("reports/app.json");
    let commit = "c0ffee";
    let client_leak = {
        let mut f = gl_finding(
            "azure-ad-client-secret",
            LEAKED_SECRET,
            "deploy/app.env",
            3,
            commit,
        );
        f["Match"] = json!(format!(
            "AZURE_CLIENT_ID={APP_BILLING} AZURE_CLIENT_SECRET={LEAKED_SECRET}"
        ));
        f
    };
    let kv_leak = gl_finding("generic-api-key", KV_VALUE, "deploy/db.env", 1, commit);
    write_report(&report, &[client_leak, kv_leak.clone()]);
    let log = dir.path().join("exporter.log");
    let mut ex = Exporter::start(&cfg, &log, &[]);
    let src = [("source", "azure"), ("provider", "azure")];
    let kind = |k: &'static str| [src[0], src[1], ("kind", k)];
    let cred = |k: &'static str, st: &'static str| [src[0], src[1], ("kind", k), ("state", st)];

    let m = ex.wait_for("tenant inventory", |m| {
        m.get("nhi_identities", &kind("application")) == Some(3.0)
            && m.get("nhi_credentials", &cred("secret", "active")) == Some(1.0)
    });
    assert_eq!(
        g(&m, "nhi_identities", &kind("service_principal")),
        2.0,
        "Microsoft Graph's is not counted"
    );
    assert_eq!(g(&m, "nhi_identities", &kind("managed_identity")), 1.0);
    // billing's service principal (Application Administrator, tenant-wide)
    // and the managed identity (Owner on the subscription); Contributor on
    // a resource group and Directory Readers are not privileged.
    assert_eq!(
        g(
            &m,
            "nhi_standing_privileged_identities",
            &kind("service_principal")
        ),
        1.0
    );
    assert_eq!(
        g(
            &m,
            "nhi_standing_privileged_identities",
            &kind("managed_identity")
        ),
        1.0
    );
    assert_eq!(
        g(
            &m,
            "nhi_standing_privileged_identities",
            &kind("application")
        ),
        0.0
    );
    // alice (Global Administrator), carol (Owner at a management group);
    // not bob (scoped), dave (Reader) or the group.
    assert_eq!(g(&m, "nhi_human_identities", &src), 2.0);
    // legacy: 300 days old, no sign-in. reporting is 30 days old.
    assert_eq!(g(&m, "nhi_unused_identities", &kind("application")), 1.0);
    assert_eq!(
        g(&m, "nhi_unused_identities", &kind("service_principal")),
        0.0
    );
    assert_eq!(
        g(&m, "nhi_unused_identities", &kind("managed_identity")),
        0.0
    );
    // billing (tag) and its service principal (its application's team), the
    // managed identity (tag).
    assert_eq!(g(&m, "nhi_identities_owned", &kind("application")), 1.0);
    assert_eq!(
        g(&m, "nhi_identities_owned", &kind("service_principal")),
        1.0
    );
    assert_eq!(
        g(&m, "nhi_identities_owned", &kind("managed_identity")),
        1.0
    );
    // billing's leaked secret is 200 days old: not governed.
    assert_eq!(g(&m, "nhi_identities_governed", &kind("application")), 0.0);
    assert_eq!(
        g(&m, "nhi_identities_governed", &kind("service_principal")),
        1.0
    );
    assert_eq!(
        g(&m, "nhi_identities_governed", &kind("managed_identity")),
        1.0
    );
    assert_eq!(
        g(&m, "nhi_credentials", &cred("client_secret", "active")),
        2.0
    );
    assert_eq!(
        g(&m, "nhi_credentials", &cred("client_secret", "inactive")),
        1.0,
        "expired"
    );
    assert_eq!(
        g(&m, "nhi_credentials", &cred("certificate", "active")),
        1.0
    );
    assert_eq!(
        g(&m, "nhi_credentials", &cred("secret", "inactive")),
        1.0,
        "disabled"
    );
    assert_eq!(
        g(&m, "nhi_long_lived_credentials", &kind("client_secret")),
        2.0
    );
    assert_eq!(
        g(&m, "nhi_long_lived_credentials", &kind("certificate")),
        0.0
    );
    assert_eq!(g(&m, "nhi_long_lived_credentials", &kind("secret")), 1.0);
    assert_eq!(
        g(&m, "nhi_credentials_rotation_enabled", &kind("secret")),
        0.0
    );
    let oldest = g(
        &m,
        "nhi_credential_oldest_age_seconds",
        &kind("client_secret"),
    );
    assert!((oldest - (300 * DAY) as f64).abs() < 120.0, "{oldest}");
    assert_eq!(
        m.sum("nhi_identities", &[("scope", TENANT)]),
        6.0,
        "scope label is the tenant"
    );
    assert_eq!(
        g(&m, "nhi_exposed_secrets", &[("validity", "unknown")]),
        2.0
    );
    // The failing vault is counted; the rest was applied.
    let errors = |m: &Metrics, reason: &str| {
        m.get(
            "nhi_source_errors_total",
            &[("source", "azure"), ("reason", reason)],
        )
        .unwrap_or(0.0)
    };
    assert!(errors(&m, "auth") >= 1.0, "kv2 refused");
    assert_eq!(
        g(&m, "nhi_source_up", &[("source", "azure")]),
        0.0,
        "an input was rejected"
    );
    assert_eq!(
        errors(&m, "rate_limited") + errors(&m, "http_5xx"),
        0.0,
        "the 429 and the 503 were retried within the poll"
    );
    assert_eq!(
        a.with(|s| s.failures.iter().filter(|f| f.times == 0).count()),
        2,
        "the 429 and the 503 were served"
    );
    let landing = ex.get("/").1;
    assert!(
        landing.contains("/kv/kv2/secrets: HTTP 403"),
        "the landing page names the failed vault:\n{landing}"
    );

    // The client-secret finding disappears while the secret still works:
    // residual (the leak was linked by application + hint).
    write_report(&report, std::slice::from_ref(&kv_leak));
    ex.wait_for("residual client secret", |m| {
        m.get("nhi_residual_exposures", &[]) == Some(1.0)
    });
    // The secret is removed from the application: confirmed revoked.
    a.with(|s| s.applications[0]["passwordCredentials"] = json!(billing_passwords(t0, false)));
    let m = ex.wait_for("client secret revoked", |m| {
        m.get("nhi_exposures_revoked_total", &[("confirmed_by", "azure")]) == Some(1.0)
            && m.get("nhi_residual_exposures", &[]) == Some(0.0)
    });
    assert_eq!(
        g(&m, "nhi_credentials", &cred("client_secret", "active")),
        1.0
    );
    assert_eq!(
        g(
            &m,
            "nhi_time_to_revoke_seconds_count",
            &[("confirmed_by", "azure")]
        ),
        1.0
    );

    // The leaked Key Vault value is replaced by a new version: revoked.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    a.with(|s| {
        let v = s
            .vaults
            .get_mut("kv1")
            .unwrap()
            .get_mut("db-password")
            .unwrap();
        v.value = KV_VALUE_NEW.into();
        v.created = now();
        v.updated = now();
    });
    let m = ex.wait_for("vault value revoked", |m| {
        m.get("nhi_exposures_revoked_total", &[("confirmed_by", "azure")]) == Some(2.0)
    });
    assert_eq!(
        g(
            &m,
            "nhi_time_to_revoke_seconds_count",
            &[("confirmed_by", "azure")]
        ),
        2.0
    );
    assert_eq!(
        g(&m, "nhi_long_lived_credentials", &kind("secret")),
        0.0,
        "just rotated"
    );

    // The subscription's assignments become forbidden: the Entra scope keeps
    // its state (privilege cannot be judged), counted as auth.
    a.fail(&format!("/arm/subscriptions/{SUB}"), 403, None, usize::MAX);
    a.with(|s| s.service_principals.retain(|sp| sp["id"] != "obj-mi"));
    let refused = format!("target=entra reason=auth error=\"subscription {SUB}");
    let m = ex.wait_for("subscription forbidden twice", |_| {
        ex.log_text().matches(&refused).count() >= 2
    });
    assert_eq!(
        g(&m, "nhi_identities", &kind("managed_identity")),
        1.0,
        "kept while the scope fails"
    );
    assert_eq!(
        g(
            &m,
            "nhi_standing_privileged_identities",
            &kind("managed_identity")
        ),
        1.0
    );

    let (violations, requests) = a.with(|s| (s.violations.clone(), s.requests.clone()));
    assert!(violations.is_empty(), "{violations:?}");
    assert!(
        requests
            .iter()
            .any(|r| r.contains("%24skiptoken=2") || r.contains("$skiptoken=2")),
        "paging followed"
    );
    // Values were read for enabled secrets only.
    assert!(
        !requests.iter().any(|r| r.contains("/secrets/api-key")),
        "a disabled secret's value was asked for"
    );

    let metrics = ex.metrics();
    let landing = ex.get("/").1;
    ex.stop();
    let store = read_all_files(&dir.path().join("state"));
    let logs = std::fs::read(&log).unwrap();
    for canary in [
        CLIENT_SECRET,
        GRAPH_TOKEN,
        ARM_TOKEN,
        VAULT_TOKEN,
        LEAKED_SECRET,
        KV_VALUE,
        KV_VALUE_NEW,
        "kv-disabled-canary",
    ] {
        assert!(!metrics.contains(canary), "{canary} in /metrics");
        assert!(!landing.contains(canary), "{canary} on the landing page");
        assert!(!contains(&logs, canary), "{canary} in the log");
        assert!(!contains(&store, canary), "{canary} in the store");
    }
}

#[test]
fn refused_client_secret_fails_the_poll_and_unlicensed_sign_ins_are_logged_once() {
    let t0 = now();
    let a = Mock::start(TENANT, CLIENT, "another-secret");
    seed(&a, t0);
    a.with(|s| {
        s.vaults.remove("kv2");
        s.sign_ins_forbidden = true;
    });
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &a);
    std::fs::write(
        &cfg,
        std::fs::read_to_string(&cfg)
            .unwrap()
            .replace(&format!(", '{}'", a.url("kv/kv2")), ""),
    )
    .unwrap();
    let log = dir.path().join("exporter.log");
    let mut ex = Exporter::start(&cfg, &log, &[]);
    let m = ex.wait_for("refused credential", |m| {
        m.get(
            "nhi_source_errors_total",
            &[("source", "azure"), ("reason", "auth")],
        )
        .unwrap_or(0.0)
            >= 1.0
    });
    assert_eq!(g(&m, "nhi_source_up", &[("source", "azure")]), 0.0);
    assert!(
        m.get(
            "nhi_identities",
            &[("source", "azure"), ("kind", "application")]
        )
        .unwrap_or(0.0)
            == 0.0
    );

    // The right secret: the poll succeeds; use is not tracked without the
    // sign-in reports, so nothing is unused, and the refusal is logged once.
    a.with(|s| s.client_secret = CLIENT_SECRET.into());
    let m = ex.wait_for("inventory without sign-ins", |m| {
        m.get(
            "nhi_identities",
            &[("source", "azure"), ("kind", "application")],
        ) == Some(3.0)
    });
    assert_eq!(g(&m, "nhi_source_up", &[("source", "azure")]), 1.0);
    assert_eq!(m.sum("nhi_unused_identities", &[("source", "azure")]), 0.0);
    let polls_before = a.requests_to("servicePrincipalSignInActivities");
    ex.wait_for("more polls", |_| {
        a.requests_to("servicePrincipalSignInActivities") >= polls_before + 2
    });
    ex.stop();
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        text.matches("sign-in activity not readable").count(),
        1,
        "{text}"
    );
    assert!(!text.contains(CLIENT_SECRET) && !text.contains("another-secret"));
    assert!(a.with(|s| s.violations.is_empty()));
}

/// `--once` with each other auth method: a workload identity's federated
/// token exchanged as a client assertion, and a managed identity's token
/// from the instance metadata endpoint; both read the whole tenant.
#[test]
fn workload_identity_and_managed_identity_tokens() {
    let t0 = now();
    let federated = "federated-sa-token-canary-0b9e";
    let a = Mock::start(TENANT, CLIENT, "unused-secret");
    seed(&a, t0);
    a.with(|s| {
        s.vaults.remove("kv2");
        s.federated_token = federated.into();
    });
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("federated"), format!("{federated}\n")).unwrap();
    for auth in [
        format!("{{method: workload_identity, client_id: {CLIENT}, token_file: federated}}"),
        format!("{{method: managed_identity, client_id: {CLIENT}}}"),
    ] {
        let cfg = dir.path().join("nhi.yaml");
        std::fs::write(
            &cfg,
            format!(
                "state: {{path: state-{}/state.db}}\n\
                 sources:\n\
                 \x20 - name: azure\n    type: azure\n    tenant_id: {TENANT}\n    auth: {auth}\n\
                 \x20   subscriptions: [{SUB}]\n    key_vaults: ['{}']\n\
                 \x20   endpoints: {{login: '{}', graph: '{}', arm: '{}', managed_identity: '{}'}}\n",
                auth.len(),
                a.url("kv/kv1"),
                a.url("login"),
                a.url("graph"),
                a.url("arm"),
                a.url("msi/token"),
            ),
        )
        .unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_nhi-exporter"))
            .arg(format!("--config.file={}", cfg.display()))
            .arg("--once")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{auth}: {err}");
        let m = Metrics::parse(&text);
        assert_eq!(
            g(
                &m,
                "nhi_identities",
                &[("source", "azure"), ("kind", "application")]
            ),
            3.0,
            "{auth}"
        );
        assert_eq!(
            g(
                &m,
                "nhi_credentials",
                &[("source", "azure"), ("kind", "secret"), ("state", "active")]
            ),
            1.0
        );
        for canary in [federated, GRAPH_TOKEN, ARM_TOKEN, VAULT_TOKEN] {
            assert!(
                !text.contains(canary) && !err.contains(canary),
                "{canary} printed"
            );
        }
    }
    let (violations, tokens) = a.with(|s| (s.violations.clone(), s.tokens_issued));
    assert!(violations.is_empty(), "{violations:?}");
    assert_eq!(tokens, 6, "three audiences, twice");
}
