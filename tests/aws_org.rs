//! The `aws` source with `organization` against the real moto server: an
//! organization with three member accounts, two with the exporter's role
//! and one without (moto lets any role be assumed, so the counting proxy
//! answers AssumeRole into that account with STS's AccessDenied, as AWS
//! does when the role is missing). Exact per-account inventories, the failing account
//! isolated, request counts per account, and end to end through the
//! binary: the `scope` label, the landing page, and a leaked key of a
//! member account deactivated (`confirmed_by="aws"`).

mod common;

use aws_sdk_iam::types::StatusType;
use common::moto::{in_account, set_sdk_env, CountingProxy, Moto, ACCOUNT};
use common::{contains, gl_finding, read_all_files, write_report, Exporter, Metrics};
use nhi_exporter::config::Policy;
use nhi_exporter::hashing::SecretHasher;
use nhi_exporter::model::{
    CredentialState, ErrorReason, InventoryScan, KnownCredential, ObservationItem,
};
use nhi_exporter::sources::aws::{AwsConfig, AwsService, AwsSource, OrgConfig};
use nhi_exporter::sources::{ObservationSender, PollContext};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

const ROLE: &str = "nhi-exporter-read";
const ADMIN: &str = "arn:aws:iam::aws:policy/AdministratorAccess";
const TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"sts:AssumeRole"}]}"#;

struct Org {
    /// prod-a: the role, svc-a1 (admin, one active key), svc-a2, a secret.
    a: String,
    /// prod-b: the role, role app-b, svc-b1 (one inactive key).
    b: String,
    /// dev-c: no role (svc-c1 only).
    c: String,
    a_key: String,
    a_user_id: String,
    secret_keys: Vec<String>,
}

async fn create_account(orgs: &aws_sdk_organizations::Client, name: &str) -> String {
    let out = orgs
        .create_account()
        .email(format!("{name}@example.com"))
        .account_name(name)
        .send()
        .await
        .expect("create account");
    out.create_account_status()
        .and_then(|s| s.account_id())
        .expect("account id")
        .to_string()
}

async fn seed(moto: &Moto) -> Org {
    let base = moto.sdk_config("us-east-1").await;
    let orgs = aws_sdk_organizations::Client::new(&base);
    orgs.create_organization()
        .feature_set(aws_sdk_organizations::types::OrganizationFeatureSet::All)
        .send()
        .await
        .expect("create organization");
    let a = create_account(&orgs, "prod-a").await;
    let b = create_account(&orgs, "prod-b").await;
    let c = create_account(&orgs, "dev-c").await;
    let mut secret_keys = Vec::new();

    let conf = in_account(&base, &a).await;
    let iam = aws_sdk_iam::Client::new(&conf);
    let role = |iam: aws_sdk_iam::Client, name: &'static str| async move {
        iam.create_role()
            .role_name(name)
            .assume_role_policy_document(TRUST)
            .send()
            .await
            .expect("create role");
    };
    role(iam.clone(), ROLE).await;
    let a_user_id = iam
        .create_user()
        .user_name("svc-a1")
        .send()
        .await
        .unwrap()
        .user()
        .unwrap()
        .user_id()
        .to_string();
    iam.attach_user_policy()
        .user_name("svc-a1")
        .policy_arn(ADMIN)
        .send()
        .await
        .unwrap();
    let k = iam
        .create_access_key()
        .user_name("svc-a1")
        .send()
        .await
        .unwrap();
    let k = k.access_key().unwrap();
    secret_keys.push(k.secret_access_key().to_string());
    let a_key = k.access_key_id().to_string();
    iam.create_user().user_name("svc-a2").send().await.unwrap();
    aws_sdk_secretsmanager::Client::new(&conf)
        .create_secret()
        .name("a/db")
        .secret_string("canary-org-secret-9d2b7e")
        .send()
        .await
        .unwrap();

    let conf = in_account(&base, &b).await;
    let iam = aws_sdk_iam::Client::new(&conf);
    role(iam.clone(), ROLE).await;
    role(iam.clone(), "app-b").await;
    iam.create_user().user_name("svc-b1").send().await.unwrap();
    let k = iam
        .create_access_key()
        .user_name("svc-b1")
        .send()
        .await
        .unwrap();
    let k = k.access_key().unwrap();
    secret_keys.push(k.secret_access_key().to_string());
    iam.update_access_key()
        .user_name("svc-b1")
        .access_key_id(k.access_key_id())
        .status(StatusType::Inactive)
        .send()
        .await
        .unwrap();

    let conf = in_account(&base, &c).await;
    let iam = aws_sdk_iam::Client::new(&conf);
    iam.create_user().user_name("svc-c1").send().await.unwrap();

    Org {
        a,
        b,
        c,
        a_key,
        a_user_id,
        secret_keys,
    }
}

fn cfg(endpoint: &str, concurrency: usize) -> AwsConfig {
    AwsConfig {
        regions: vec!["us-east-1".into()],
        services: vec![AwsService::Iam, AwsService::SecretsManager],
        assume_role_arn: None,
        endpoint_url: Some(endpoint.to_string()),
        organization: Some(OrgConfig {
            role_name: ROLE.into(),
            external_id: None,
            include: vec![glob::Pattern::new("*").unwrap()],
            exclude: vec![glob::Pattern::new(ACCOUNT).unwrap()],
            concurrency,
        }),
    }
}

fn ctx(known: Vec<KnownCredential>) -> PollContext {
    PollContext {
        source: "org".to_string(),
        hasher: Arc::new(SecretHasher::new([7; 32])),
        known_targets: Default::default(),
        now: 1_800_000_000,
        deadline: std::time::Instant::now() + Duration::from_secs(60),
        policy: Arc::new(Policy::default()),
        known_credentials: known,
        linked_credentials: HashSet::new(),
    }
}

async fn poll(src: &AwsSource, ctx: PollContext) -> Vec<ObservationItem> {
    let (tx, mut rx) = ObservationSender::channel(1024);
    src.poll(ctx, tx).await.expect("the poll succeeds");
    let mut items = Vec::new();
    while let Ok(i) = rx.try_recv() {
        items.push(i);
    }
    items
}

fn scan<'a>(items: &'a [ObservationItem], scope: &str) -> &'a InventoryScan {
    items
        .iter()
        .find_map(|i| match i {
            ObservationItem::Inventory(s) if s.scope == scope => Some(s),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no inventory for {scope}: {items:#?}"))
}

fn known(items: &[ObservationItem]) -> Vec<KnownCredential> {
    items
        .iter()
        .filter_map(|i| match i {
            ObservationItem::Inventory(s) => Some(s),
            _ => None,
        })
        .flat_map(|s| s.known_credentials())
        .collect()
}

/// (kind, name, account, privileged) of a scan's identities, sorted.
fn idents(s: &InventoryScan) -> Vec<(&str, &str, &str, bool)> {
    let mut v: Vec<_> = s
        .identities
        .iter()
        .map(|i| {
            (
                i.kind,
                i.name.as_str(),
                i.account.as_str(),
                i.privileged.is_some(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn organization_accounts_exact_failing_account_isolated_counts_per_account() {
    let moto = Moto::start();
    set_sdk_env("us-east-1");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let org = rt.block_on(seed(&moto));
    let proxy = rt.block_on(CountingProxy::start(&moto.endpoint));
    proxy.deny_assume_role(&org.c);
    let src = AwsSource::new(cfg(&proxy.endpoint, 2));

    let items = rt.block_on(poll(&src, ctx(vec![])));
    // Exactly: A's and B's two scopes, and C as one failed account.
    let mut scopes: Vec<String> = items
        .iter()
        .map(|i| match i {
            ObservationItem::Inventory(s) => s.scope.clone(),
            ObservationItem::TargetFailed { target, .. } => format!("failed {target}"),
            ObservationItem::InventoryScopes(all) => format!("all {}", all.len()),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    scopes.sort();
    let mut want = vec![
        format!("{}/iam", org.a),
        format!("{}/secretsmanager/us-east-1", org.a),
        format!("{}/iam", org.b),
        format!("{}/secretsmanager/us-east-1", org.b),
        format!("failed {}", org.c),
        // The complete set, the failed account's scopes included: nothing
        // of C is retired.
        "all 6".to_string(),
    ];
    want.sort();
    assert_eq!(scopes, want);
    let listed: Vec<String> = items
        .iter()
        .find_map(|i| match i {
            ObservationItem::InventoryScopes(all) => Some(all.clone()),
            _ => None,
        })
        .unwrap();
    for account in [&org.a, &org.b, &org.c] {
        assert!(listed.contains(&format!("{account}/iam")), "{listed:?}");
        assert!(
            listed.contains(&format!("{account}/secretsmanager/us-east-1")),
            "{listed:?}"
        );
    }

    let a = scan(&items, &format!("{}/iam", org.a));
    assert_eq!(
        idents(a),
        vec![
            (
                "role",
                "OrganizationAccountAccessRole",
                org.a.as_str(),
                false
            ),
            ("role", ROLE, org.a.as_str(), false),
            ("user", "svc-a1", org.a.as_str(), true),
            ("user", "svc-a2", org.a.as_str(), false),
        ]
    );
    assert_eq!(a.credentials.len(), 1);
    let key = &a.credentials[0];
    assert_eq!(
        (
            key.kind,
            key.id.as_str(),
            key.account.as_str(),
            key.identity.as_deref(),
            key.state
        ),
        (
            "access_key",
            org.a_key.as_str(),
            org.a.as_str(),
            Some(org.a_user_id.as_str()),
            CredentialState::Active
        )
    );
    let a_sm = scan(&items, &format!("{}/secretsmanager/us-east-1", org.a));
    assert_eq!(a_sm.credentials.len(), 1);
    assert_eq!(a_sm.credentials[0].kind, "secret");
    assert_eq!(a_sm.credentials[0].account, org.a);
    assert!(a_sm.credentials[0].id.starts_with(&format!(
        "arn:aws:secretsmanager:us-east-1:{}:secret:a/db",
        org.a
    )));

    let b = scan(&items, &format!("{}/iam", org.b));
    assert_eq!(
        idents(b),
        vec![
            (
                "role",
                "OrganizationAccountAccessRole",
                org.b.as_str(),
                false
            ),
            ("role", "app-b", org.b.as_str(), false),
            ("role", ROLE, org.b.as_str(), false),
            ("user", "svc-b1", org.b.as_str(), false),
        ]
    );
    assert_eq!(b.credentials.len(), 1);
    assert_eq!(b.credentials[0].state, CredentialState::Inactive);
    assert_eq!(b.credentials[0].account, org.b);
    assert!(scan(&items, &format!("{}/secretsmanager/us-east-1", org.b))
        .credentials
        .is_empty());

    let (target, err) = items
        .iter()
        .find_map(|i| match i {
            ObservationItem::TargetFailed { target, error } => Some((target, error)),
            _ => None,
        })
        .unwrap();
    assert_eq!(target, &org.c);
    assert_eq!(err.reason, ErrorReason::Auth);
    assert!(
        err.message.starts_with(&format!(
            "account {} (dev-c): AssumeRole arn:aws:iam::{}:role/{ROLE}: AccessDenied",
            org.c, org.c
        )),
        "{}",
        err.message
    );
    // Nothing of C was read with C's credentials; the caller listed the
    // organization once (3 accounts + management < one page of 20) and
    // assumed the role once per selected account.
    assert!(proxy.account_counts(&org.c).is_empty());
    let own = proxy.account_counts("self");
    assert_eq!(own.get("ListAccounts"), Some(&1), "{own:?}");
    assert_eq!(own.get("AssumeRole"), Some(&3), "{own:?}");
    let first_a = proxy.account_counts(&org.a);
    assert_eq!(first_a.get("GetAccountAuthorizationDetails"), Some(&1));
    // svc-a1's key is new: one ListAccessKeys, for that user only.
    assert_eq!(first_a.get("ListAccessKeys"), Some(&1), "{first_a:?}");
    assert_eq!(first_a.get("ListSecrets"), Some(&1));

    // 40 more users in A, none in B: the next poll makes the same requests
    // in both accounts (pages, not users), and reuses the sessions.
    rt.block_on(async {
        let base = moto.sdk_config("us-east-1").await;
        let iam = aws_sdk_iam::Client::new(&in_account(&base, &org.a).await);
        for i in 0..40 {
            iam.create_user()
                .user_name(format!("bulk-{i}"))
                .send()
                .await
                .unwrap();
        }
    });
    proxy.reset();
    let items = rt.block_on(poll(&src, ctx(known(&items))));
    assert_eq!(scan(&items, &format!("{}/iam", org.a)).identities.len(), 44);
    let (pa, pb) = (proxy.account_counts(&org.a), proxy.account_counts(&org.b));
    for action in [
        "GetAccountAuthorizationDetails",
        "GetCredentialReport",
        "ListSecrets",
    ] {
        assert_eq!(pa.get(action), Some(&1), "{action}: {pa:?}");
        assert_eq!(pb.get(action), Some(&1), "{action}: {pb:?}");
    }
    assert_eq!(pa.get("ListAccessKeys"), None, "{pa:?}");
    assert_eq!(pb.get("ListAccessKeys"), None, "{pb:?}");
    assert_eq!(pa.get("GetAccessKeyLastUsed"), None, "{pa:?}");
    let own = proxy.account_counts("self");
    // Only C, whose failure is not cached, is assumed again.
    assert_eq!(own.get("AssumeRole"), Some(&1), "{own:?}");

    // No secret material in what the poll produced.
    let text = format!("{items:?}");
    for canary in org
        .secret_keys
        .iter()
        .map(String::as_str)
        .chain(["canary-org-secret-9d2b7e"])
    {
        assert!(!text.contains(canary), "{canary} leaked");
    }
}

fn g(m: &Metrics, name: &str, labels: &[(&str, &str)]) -> f64 {
    m.get(name, labels)
        .unwrap_or_else(|| panic!("{name}{labels:?} missing:\n{}", m.text))
}

#[test]
fn organization_end_to_end_scope_labels_failed_account_and_revocation() {
    let moto = Moto::start();
    set_sdk_env("us-east-1");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let org = rt.block_on(seed(&moto));
    let proxy = rt.block_on(CountingProxy::start(&moto.endpoint));
    proxy.deny_assume_role(&org.c);

    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("nhi.yaml");
    std::fs::create_dir_all(dir.path().join("reports")).unwrap();
    std::fs::write(
        &cfg,
        format!(
            "state: {{path: state/state.db}}
policy: {{stale_after: 1m}}
labels: {{scope: {{enabled: true, max_values: 2}}}}
sources:
  - name: leaks
    type: gitleaks
    interval: 1s
    paths: [reports/*.json]
  - name: org
    type: aws
    interval: 1s
    regions: [us-east-1]
    endpoint_url: {}
    organization:
      role_name: {ROLE}
      exclude: [\"{ACCOUNT}\"]
      concurrency: 8
",
            proxy.endpoint
        ),
    )
    .unwrap();
    let report = dir.path().join("reports/repo.json");
    let commit = "0123456789abcdef0123456789abcdef01234567";
    write_report(
        &report,
        &[gl_finding(
            "aws-access-token",
            &org.a_key,
            "ci.env",
            1,
            commit,
        )],
    );
    let ex = Exporter::start(&cfg, &dir.path().join("exporter.log"), &[]);
    let l = |scope: &'static str, kind: &'static str| {
        [
            ("source", "org"),
            ("provider", "aws"),
            ("kind", kind),
            ("scope", scope),
        ]
    };
    let (a, b): (&'static str, &'static str) = (
        Box::leak(org.a.clone().into_boxed_str()),
        Box::leak(org.b.clone().into_boxed_str()),
    );
    let m = ex.wait_for("both readable accounts applied", |m| {
        m.get("nhi_identities", &l(a, "user")).is_some()
            && m.get("nhi_identities", &l(b, "user")).is_some()
            && m.sum("nhi_exposed_secrets", &[]) == 1.0
    });
    // One account failed: the source is down, by reason auth only.
    assert_eq!(g(&m, "nhi_source_up", &[("source", "org")]), 0.0);
    assert!(
        g(
            &m,
            "nhi_source_errors_total",
            &[("source", "org"), ("reason", "auth")]
        ) >= 1.0
    );
    for reason in [
        "timeout",
        "rate_limited",
        "http_4xx",
        "http_5xx",
        "parse",
        "io",
    ] {
        assert_eq!(
            m.sum(
                "nhi_source_errors_total",
                &[("source", "org"), ("reason", reason)]
            ),
            0.0,
            "{reason}"
        );
    }
    // Exact per-scope values.
    assert_eq!(g(&m, "nhi_identities", &l(a, "user")), 2.0);
    // moto, like AWS, creates OrganizationAccountAccessRole in every new
    // member account.
    assert_eq!(g(&m, "nhi_identities", &l(a, "role")), 2.0);
    assert_eq!(g(&m, "nhi_identities", &l(b, "user")), 1.0);
    assert_eq!(g(&m, "nhi_identities", &l(b, "role")), 3.0);
    assert_eq!(
        g(&m, "nhi_standing_privileged_identities", &l(a, "user")),
        1.0
    );
    assert_eq!(
        g(&m, "nhi_standing_privileged_identities", &l(b, "user")),
        0.0
    );
    let state = |scope: &'static str, kind: &'static str, st: &'static str| {
        let mut v = l(scope, kind).to_vec();
        v.push(("state", st));
        v
    };
    assert_eq!(
        g(&m, "nhi_credentials", &state(a, "access_key", "active")),
        1.0
    );
    assert_eq!(
        g(&m, "nhi_credentials", &state(b, "access_key", "inactive")),
        1.0
    );
    assert_eq!(g(&m, "nhi_credentials", &state(a, "secret", "active")), 1.0);
    assert_eq!(m.sum("nhi_identities", &[("scope", &org.c)]), 0.0);
    assert_eq!(m.sum("nhi_identities", &[("source", "org")]), 8.0);
    assert_eq!(m.sum("nhi_identities", &[("scope", "other")]), 0.0);

    // The landing page names the failed account.
    let (status, page) = ex.get("/");
    assert_eq!(status, 200);
    assert!(
        page.contains(&format!("account {} (dev-c): AssumeRole", org.c)),
        "{page}"
    );

    // The leaked key of member account A is deactivated there: confirmed
    // by aws, although C still fails.
    rt.block_on(async {
        let base = moto.sdk_config("us-east-1").await;
        aws_sdk_iam::Client::new(&in_account(&base, &org.a).await)
            .update_access_key()
            .user_name("svc-a1")
            .access_key_id(&org.a_key)
            .status(StatusType::Inactive)
            .send()
            .await
            .unwrap();
    });
    let m = ex.wait_for("revocation confirmed by aws", |m| {
        m.get("nhi_exposures_revoked_total", &[("confirmed_by", "aws")]) == Some(1.0)
    });
    assert_eq!(
        g(&m, "nhi_credentials", &state(a, "access_key", "inactive")),
        1.0
    );
    assert_eq!(
        g(&m, "nhi_credentials", &state(a, "access_key", "active")),
        0.0
    );

    // Account B is excluded now: the source no longer lists its scopes, so
    // its identities are retired; A's stay.
    let before = Metrics::parse(&ex.metrics());
    assert!(before.sum("nhi_identities", &[("scope", &org.b)]) > 0.0);
    let a_ids = before.sum("nhi_identities", &[("scope", &org.a)]);
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        text.replace(
            &format!("exclude: [\"{ACCOUNT}\"]"),
            &format!("exclude: [\"{ACCOUNT}\", \"{}\"]", org.b),
        ),
    )
    .unwrap();
    ex.signal("HUP");
    let m = ex.wait_for("account B retired", |m| {
        m.sum("nhi_identities", &[("scope", &org.b)]) == 0.0
            && m.get("nhi_config_last_reload_successful", &[]) == Some(1.0)
    });
    assert_eq!(m.sum("nhi_identities", &[("scope", &org.a)]), a_ids);

    // Canary: no AWS secret key or secret value anywhere.
    let mut everything = read_all_files(&dir.path().join("state"));
    everything.extend(ex.metrics().into_bytes());
    everything.extend(ex.log_text().into_bytes());
    everything.extend(page.into_bytes());
    for canary in org
        .secret_keys
        .iter()
        .map(String::as_str)
        .chain(["canary-org-secret-9d2b7e"])
    {
        assert!(!contains(&everything, canary), "{canary} leaked");
    }
}
