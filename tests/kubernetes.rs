//! The `kubernetes` source end to end through the real binary, against a
//! loopback API server shaped after the Kubernetes OpenAPI (tests/k8s_mock):
//! exact identity, privilege, credential and human counts on a
//! multi-namespace cluster; leaked service-account tokens (a legacy one, a
//! bound one that expired, a bound one still valid) linked by their claims
//! and confirmed revoked when the Secret or the service account is deleted
//! or `exp` passes; a residual exposure; per-namespace reads when the
//! cluster-wide lists are forbidden, with one namespace failing alone; no
//! request ever reads Secret data; token canaries absent from metrics, logs
//! and the store.

mod common;
mod k8s_mock;

use base64::Engine;
use common::{contains, gl_finding, read_all_files, write_report, Exporter, Metrics};
use k8s_mock::*;
use serde_json::json;

const DAY: i64 = 86_400;
const API_TOKEN: &str = "k8s-bearer-canary-5d1e";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A service-account JWT with these claims and a fake signature.
fn jwt(claims: serde_json::Value) -> String {
    let e = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    format!(
        "{}.{}.{}",
        e(br#"{"alg":"RS256","kid":"kid-1"}"#),
        e(claims.to_string().as_bytes()),
        e(b"signature-canary-not-real")
    )
}

fn legacy_jwt(ns: &str, secret: &str, sa: &str, uid: &str) -> String {
    jwt(json!({
        "iss": "kubernetes/serviceaccount",
        "kubernetes.io/serviceaccount/namespace": ns,
        "kubernetes.io/serviceaccount/secret.name": secret,
        "kubernetes.io/serviceaccount/service-account.name": sa,
        "kubernetes.io/serviceaccount/service-account.uid": uid,
        "sub": format!("system:serviceaccount:{ns}:{sa}"),
    }))
}

fn bound_jwt(ns: &str, sa: &str, uid: &str, exp: i64) -> String {
    jwt(json!({
        "aud": ["https://kubernetes.default.svc.cluster.local"],
        "exp": exp, "iat": exp - 3600, "nbf": exp - 3600,
        "iss": "https://kubernetes.default.svc.cluster.local",
        "kubernetes.io": {"namespace": ns, "pod": {"name": "p", "uid": "pod-uid"},
                          "serviceaccount": {"name": sa, "uid": uid}},
        "sub": format!("system:serviceaccount:{ns}:{sa}"),
    }))
}

fn date(t: i64) -> String {
    ts(t)[..10].to_string()
}

/// The seeded cluster `prod`: namespaces payments (team label), web,
/// team-b; seven service accounts; three legacy token Secrets and an
/// Opaque Secret; pods; RBAC.
fn seed(k: &Mock, t0: i64) {
    k.add("namespaces", namespace("payments", Some("payments")));
    k.add("namespaces", namespace("web", None));
    k.add("namespaces", namespace("team-b", None));
    let old = t0 - 200 * DAY;
    for (ns, name, uid, created, team) in [
        ("payments", "default", "uid-pay-default", old, None),
        ("payments", "ci", "uid-ci", old, Some("platform")),
        ("payments", "deployer", "uid-deployer", old, None),
        ("web", "default", "uid-web-default", t0 - 10 * DAY, None),
        ("web", "api", "uid-api", old, Some("web")),
        ("team-b", "default", "uid-b-default", old, None),
        ("team-b", "batch", "uid-batch", t0 - 5 * DAY, None),
    ] {
        k.add(
            "serviceaccounts",
            service_account(ns, name, uid, created, team),
        );
    }
    k.add(
        "secrets",
        token_secret(
            "payments",
            "ci-token",
            "ci",
            "uid-ci",
            t0 - 400 * DAY,
            "canary-legacy-ci",
            json!({"kubernetes.io/legacy-token-last-used": date(t0 - 3 * DAY)}),
        ),
    );
    k.add(
        "secrets",
        token_secret(
            "payments",
            "deployer-token",
            "deployer",
            "uid-deployer",
            t0 - 300 * DAY,
            "canary-legacy-dep",
            json!({"kubernetes.io/legacy-token-invalid-since": date(t0 - 30 * DAY)}),
        ),
    );
    k.add(
        "secrets",
        token_secret(
            "web",
            "api-token",
            "api",
            "uid-api",
            t0 - 30 * DAY,
            "canary-legacy-api",
            json!({}),
        ),
    );
    k.add(
        "secrets",
        opaque_secret("payments", "db-password", "canary-opaque-db"),
    );
    k.add("pods", pod("payments", "ci-runner", "ci", "Running"));
    k.add("pods", pod("web", "api-1", "api", "Running"));
    k.add("pods", pod("web", "migrate", "default", "Succeeded"));
    // An ended pod is no use of payments/default (200 days old, unused).
    k.add("pods", pod("payments", "old-job", "default", "Failed"));
    k.add("pods", pod("team-b", "batch-1", "batch", "Pending"));
    k.add(
        "clusterroles",
        cluster_role("cluster-admin", &["*"], &["*"]),
    );
    k.add(
        "clusterroles",
        cluster_role("view", &["get", "list", "watch"], &["pods", "services"]),
    );
    k.add("clusterroles", cluster_role("ops-all", &["*"], &["*"]));
    k.add(
        "clusterrolebindings",
        binding(
            None,
            "deployer-admin",
            "ClusterRole",
            "cluster-admin",
            &[("ServiceAccount", "deployer", Some("payments"))],
        ),
    );
    k.add(
        "clusterrolebindings",
        binding(
            None,
            "people-view",
            "ClusterRole",
            "view",
            &[
                ("User", "alice@example.com", None),
                ("Group", "sre", None),
                ("User", "system:kube-scheduler", None),
                ("Group", "system:serviceaccounts", None),
            ],
        ),
    );
    k.add(
        "clusterrolebindings",
        binding(
            None,
            "api-ops",
            "ClusterRole",
            "ops-all",
            &[("ServiceAccount", "api", Some("web"))],
        ),
    );
    k.add("roles", role("team-b", "everything", &["*"], &["*"]));
    k.add(
        "roles",
        role("payments", "reader", &["get"], &["configmaps"]),
    );
    k.add(
        "rolebindings",
        binding(
            Some("team-b"),
            "batch-everything",
            "Role",
            "everything",
            &[("ServiceAccount", "batch", None)],
        ),
    );
    k.add(
        "rolebindings",
        binding(
            Some("payments"),
            "ci-reader",
            "Role",
            "reader",
            &[
                ("ServiceAccount", "ci", None),
                ("User", "bob@example.com", None),
            ],
        ),
    );
}

fn g(m: &Metrics, name: &str, labels: &[(&str, &str)]) -> f64 {
    m.get(name, labels)
        .unwrap_or_else(|| panic!("{name}{labels:?} missing:\n{}", m.text))
}

#[test]
fn cluster_inventory_leaked_tokens_revoked_and_forbidden_namespace() {
    let t0 = now();
    let k = Mock::start(API_TOKEN);
    k.with(|s| s.chunk = Some(2)); // chunks smaller than the page asked
    seed(&k, t0);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("kubeconfig"), k.kubeconfig("prod-admin")).unwrap();
    std::fs::create_dir_all(dir.path().join("reports")).unwrap();
    let cfg = dir.path().join("nhi.yaml");
    std::fs::write(
        &cfg,
        "state: {path: state/state.db}\n\
         policy: {team_tag: team}\n\
         labels: {scope: {enabled: true}}\n\
         sources:\n\
         \x20 - name: leaks\n    type: gitleaks\n    interval: 1s\n    paths: [reports/*.json]\n\
         \x20 - name: k8s-prod\n    type: kubernetes\n    interval: 1s\n    kubeconfig: kubeconfig\n    cluster_name: prod\n",
    )
    .unwrap();
    let legacy = legacy_jwt("payments", "ci-token", "ci", "uid-ci");
    let expired = bound_jwt("payments", "ci", "uid-ci", t0 - 2 * DAY);
    let valid = bound_jwt("web", "api", "uid-api", t0 + 30 * DAY);
    let report = dir.path().join("reports/app.json");
    let commit = "c0ffee";
    write_report(
        &report,
        &[
            gl_finding("kubernetes-token", &legacy, "deploy/ci.env", 1, commit),
            gl_finding("kubernetes-token", &expired, "deploy/job.env", 2, commit),
            gl_finding("kubernetes-token", &valid, "web/api.env", 3, commit),
        ],
    );
    let log = dir.path().join("exporter.log");
    let mut ex = Exporter::start(&cfg, &log, &[]);
    let src = [("source", "k8s-prod"), ("provider", "kubernetes")];
    let sa = [src[0], src[1], ("kind", "service_account")];
    let lt = [src[0], src[1], ("kind", "legacy_token")];

    // The first polls: the inventory, and the expired bound token revoked
    // at its exp (the next poll after the leak names it).
    let m = ex.wait_for("inventory and the expired bound token revoked", |m| {
        m.get("nhi_identities", &sa) == Some(7.0)
            && m.get(
                "nhi_exposures_revoked_total",
                &[("confirmed_by", "kubernetes")],
            ) == Some(1.0)
    });
    assert_eq!(g(&m, "nhi_source_up", &[("source", "k8s-prod")]), 1.0);
    // deployer (cluster-admin), api (ClusterRole with * on *), batch (Role with * on *).
    assert_eq!(g(&m, "nhi_standing_privileged_identities", &sa), 3.0);
    // alice, sre, bob; system: names are not people.
    assert_eq!(g(&m, "nhi_human_identities", &src), 3.0);
    // Older than 90 days, no pod that has not ended, no token use:
    // payments/default, payments/deployer, team-b/default.
    assert_eq!(g(&m, "nhi_unused_identities", &sa), 3.0);
    // ci (own label), api (own label), the three of payments by namespace label.
    assert_eq!(g(&m, "nhi_identities_owned", &sa), 4.0);
    // Owned, used, and every active credential young: web/api only (ci's
    // token is 400 days old; the payments default and deployer are unused).
    assert_eq!(g(&m, "nhi_identities_governed", &sa), 1.0);
    assert_eq!(g(&m, "nhi_credentials_rotation_enabled", &lt), 0.0);
    assert_eq!(
        g(
            &m,
            "nhi_credentials",
            &[lt[0], lt[1], lt[2], ("state", "active")]
        ),
        2.0
    );
    assert_eq!(
        g(
            &m,
            "nhi_credentials",
            &[lt[0], lt[1], lt[2], ("state", "inactive")]
        ),
        1.0
    );
    // ci-token is 400 days old; api-token 30.
    assert_eq!(g(&m, "nhi_long_lived_credentials", &lt), 1.0);
    assert_eq!(
        g(
            &m,
            "nhi_credentials_by_age",
            &[src[0], src[1], ("band", "gt_365d")]
        ),
        1.0
    );
    let oldest = g(&m, "nhi_credential_oldest_age_seconds", &lt);
    assert!((oldest - (400 * DAY) as f64).abs() < 120.0, "{oldest}");
    assert_eq!(
        m.sum(
            "nhi_identities",
            &[("scope", "prod"), ("kind", "service_account")]
        ),
        7.0,
        "scope label is the cluster name"
    );
    assert_eq!(
        g(&m, "nhi_exposed_secrets", &[("validity", "unknown")]),
        3.0
    );
    let ttr = g(
        &m,
        "nhi_time_to_revoke_seconds_count",
        &[("confirmed_by", "kubernetes")],
    );
    assert_eq!(ttr, 1.0);

    // The legacy token's Secret is deleted: revoked.
    k.delete("secrets", "payments", "ci-token");
    let m = ex.wait_for("legacy token revoked", |m| {
        m.get(
            "nhi_exposures_revoked_total",
            &[("confirmed_by", "kubernetes")],
        ) == Some(2.0)
    });
    assert_eq!(
        g(
            &m,
            "nhi_credentials",
            &[lt[0], lt[1], lt[2], ("state", "active")]
        ),
        1.0
    );

    // The valid bound token's finding is closed while the token still
    // works: residual. Then its service account is deleted: revoked.
    write_report(
        &report,
        &[
            gl_finding("kubernetes-token", &legacy, "deploy/ci.env", 1, commit),
            gl_finding("kubernetes-token", &expired, "deploy/job.env", 2, commit),
        ],
    );
    ex.wait_for("residual bound token", |m| {
        m.get("nhi_residual_exposures", &[]) == Some(1.0)
    });
    k.delete("serviceaccounts", "web", "api");
    let m = ex.wait_for("bound token revoked with its service account", |m| {
        m.get(
            "nhi_exposures_revoked_total",
            &[("confirmed_by", "kubernetes")],
        ) == Some(3.0)
            && m.get("nhi_residual_exposures", &[]) == Some(0.0)
    });
    assert_eq!(g(&m, "nhi_identities", &sa), 6.0);
    assert_eq!(
        g(
            &m,
            "nhi_time_to_revoke_seconds_count",
            &[("confirmed_by", "kubernetes")]
        ),
        3.0
    );

    // Cluster-wide lists become forbidden and team-b too: the source reads
    // namespace by namespace; team-b fails alone (auth) and keeps its state.
    k.with(|s| {
        for p in ["serviceaccounts", "secrets", "pods"] {
            s.forbidden.insert(format!("/api/v1/{p}"));
            s.forbidden.insert(format!("/api/v1/namespaces/team-b/{p}"));
        }
        for p in ["roles", "rolebindings"] {
            s.forbidden
                .insert(format!("/apis/rbac.authorization.k8s.io/v1/{p}"));
            s.forbidden.insert(format!(
                "/apis/rbac.authorization.k8s.io/v1/namespaces/team-b/{p}"
            ));
        }
    });
    let auth = |m: &Metrics| {
        m.get(
            "nhi_source_errors_total",
            &[("source", "k8s-prod"), ("reason", "auth")],
        )
    };
    let before = auth(&m).unwrap_or(0.0);
    let m = ex.wait_for("team-b forbidden", |m| {
        auth(m).unwrap_or(0.0) >= before + 2.0
    });
    assert_eq!(
        g(&m, "nhi_identities", &sa),
        6.0,
        "team-b keeps its two service accounts"
    );
    assert_eq!(g(&m, "nhi_standing_privileged_identities", &sa), 2.0);
    assert_eq!(g(&m, "nhi_unused_identities", &sa), 3.0);
    let landing = ex.get("/").1;
    assert!(
        landing.contains("namespace team-b: HTTP 403"),
        "the landing page names the failed scope:\n{landing}"
    );

    // Nothing ever asked for Secret data, or for anything not listed.
    let (violations, requests) = k.with(|s| (s.violations.clone(), s.requests.clone()));
    assert!(violations.is_empty(), "{violations:?}");
    let secret_lists: Vec<_> = requests
        .iter()
        .filter(|(p, _)| p.contains("/secrets"))
        .collect();
    assert!(!secret_lists.is_empty());
    for (p, accept) in &secret_lists {
        assert!(
            p.contains("fieldSelector=type%3Dkubernetes.io%2Fservice-account-token")
                || p.contains("fieldSelector=type=kubernetes.io"),
            "{p}"
        );
        assert!(
            accept.contains("as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"),
            "{accept}"
        );
    }
    // Paging followed continue tokens (chunks of 2).
    assert!(
        requests.iter().any(|(p, _)| p.contains("continue=off-2")),
        "no continued list"
    );

    let metrics = ex.metrics();
    let (_, _) = ex.stop();
    let store = read_all_files(&dir.path().join("state"));
    let logs = std::fs::read(&log).unwrap();
    for canary in [
        API_TOKEN,
        "canary-legacy",
        "canary-opaque",
        legacy.as_str(),
        valid.as_str(),
        "signature-canary",
    ] {
        assert!(!metrics.contains(canary), "{canary} in /metrics");
        assert!(!contains(&logs, canary), "{canary} in the log");
        assert!(!contains(&store, canary), "{canary} in the store");
    }
}

#[test]
fn expired_continue_restarts_the_list_and_a_bad_token_fails_the_poll() {
    let t0 = now();
    let k = Mock::start(API_TOKEN);
    k.with(|s| {
        s.chunk = Some(1);
        s.expire_next_continue = true;
        // The Opaque Secret and the ended pod come back too: filtered here.
        s.ignore_field_selectors = true;
    });
    seed(&k, t0);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("kubeconfig"), k.kubeconfig("prod")).unwrap();
    let cfg = dir.path().join("nhi.yaml");
    std::fs::write(
        &cfg,
        "state: {path: state/state.db}\nsources:\n  - name: k8s\n    type: kubernetes\n    interval: 1s\n    kubeconfig: kubeconfig\n",
    )
    .unwrap();
    let log = dir.path().join("exporter.log");
    let ex = Exporter::start(&cfg, &log, &[]);
    let sa = [
        ("source", "k8s"),
        ("provider", "kubernetes"),
        ("kind", "service_account"),
    ];
    let m = ex.wait_for("inventory after a 410", |m| {
        m.get("nhi_identities", &sa) == Some(7.0)
    });
    let lt = [
        ("source", "k8s"),
        ("provider", "kubernetes"),
        ("kind", "legacy_token"),
    ];
    assert_eq!(
        m.sum("nhi_credentials", &lt),
        3.0,
        "the Opaque Secret is not a token"
    );
    assert_eq!(
        g(&m, "nhi_unused_identities", &sa),
        3.0,
        "an ended pod is no use"
    );
    // cluster_name defaults to the context.
    assert_eq!(m.get("nhi_source_up", &[("source", "k8s")]), Some(1.0));
    let restarted = k.with(|s| {
        s.requests
            .iter()
            .filter(|(p, _)| {
                p.starts_with("/apis/rbac.authorization.k8s.io/v1/clusterroles?")
                    && !p.contains("continue")
            })
            .count()
    });
    assert!(restarted >= 2, "the expired list was started again");
    // The API server rejects the token: the poll fails (auth), nothing is removed.
    k.with(|s| s.token = "rotated".into());
    let m = ex.wait_for("auth failure", |m| {
        m.get(
            "nhi_source_errors_total",
            &[("source", "k8s"), ("reason", "auth")],
        )
        .unwrap_or(0.0)
            >= 1.0
            && m.get("nhi_source_up", &[("source", "k8s")]) == Some(0.0)
    });
    assert_eq!(g(&m, "nhi_identities", &sa), 7.0);
}

#[test]
fn a_cluster_without_legacy_tokens_or_namespace_list_still_confirms_a_leaked_bound_token() {
    let t0 = now();
    let k = Mock::start(API_TOKEN);
    k.add("namespaces", namespace("web", None));
    k.add(
        "serviceaccounts",
        service_account("web", "api", "uid-api", t0 - 10 * DAY, None),
    );
    k.add("clusterroles", cluster_role("view", &["get"], &["pods"]));
    // Listing namespaces is optional (team labels only): refused, the poll goes on.
    k.with(|s| s.forbidden.insert("/api/v1/namespaces".into()));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("kubeconfig"), k.kubeconfig("prod")).unwrap();
    std::fs::create_dir_all(dir.path().join("reports")).unwrap();
    let expired_at = t0 - 3600;
    let token = bound_jwt("web", "api", "uid-api", expired_at);
    write_report(
        &dir.path().join("reports/r.json"),
        &[gl_finding("kubernetes-token", &token, "k.env", 1, "c1")],
    );
    let cfg = dir.path().join("nhi.yaml");
    std::fs::write(
        &cfg,
        "state: {path: state/state.db}\nsources:\n  - {name: leaks, type: gitleaks, interval: 1s, paths: [reports/*.json]}\n  - {name: k8s, type: kubernetes, interval: 1s, kubeconfig: kubeconfig}\n",
    )
    .unwrap();
    let ex = Exporter::start(&cfg, &dir.path().join("exporter.log"), &[]);
    let m = ex.wait_for("bound token revoked at its exp", |m| {
        m.get(
            "nhi_exposures_revoked_total",
            &[("confirmed_by", "kubernetes")],
        ) == Some(1.0)
    });
    // Revoked at exp, an hour before now; detected at the first poll: the
    // time to revoke is clamped at 0, in the first bucket.
    assert_eq!(
        g(
            &m,
            "nhi_time_to_revoke_seconds_bucket",
            &[("confirmed_by", "kubernetes"), ("le", "300")]
        ),
        1.0
    );
    assert_eq!(
        g(&m, "nhi_exposed_secrets", &[("validity", "unknown")]),
        1.0,
        "still open in the code"
    );
    assert_eq!(g(&m, "nhi_source_up", &[("source", "k8s")]), 1.0);
}
