//! The `aws` source against the real moto server (loopback): exact
//! inventory, upstream request counts, faults and secret canaries.

mod common;

use aws_sdk_iam::types::{StatusType, Tag as IamTag};
use aws_sdk_secretsmanager::types::{RotationRulesType, Tag as SmTag};
use common::moto::{CountingProxy, Moto, SECRET_ACCESS_KEY};
use nhi_exporter::config::Policy;
use nhi_exporter::hashing::SecretHasher;
use nhi_exporter::model::{
    CredentialState, ErrorReason, InventoryScan, KnownCredential, ObservationItem, SourceError,
};
use nhi_exporter::sources::aws::AwsSource;
use nhi_exporter::sources::aws::{AwsConfig, AwsService};
use nhi_exporter::sources::{ObservationSender, PollContext};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

const ADMIN: &str = "arn:aws:iam::aws:policy/AdministratorAccess";
const READONLY: &str = "arn:aws:iam::aws:policy/ReadOnlyAccess";
const SECRET_CANARY: &str = "canary-db-password-7f3e9a1c5b";
const REGIONS: [&str; 2] = ["us-east-1", "eu-west-1"];

fn cfg(endpoint: &str) -> AwsConfig {
    AwsConfig {
        regions: REGIONS.iter().map(|r| r.to_string()).collect(),
        services: vec![AwsService::Iam, AwsService::SecretsManager],
        assume_role_arn: None,
        endpoint_url: Some(endpoint.to_string()),
        organization: None,
    }
}

fn ctx(known: Vec<KnownCredential>, linked: HashSet<String>) -> PollContext {
    PollContext {
        source: "aws-test".to_string(),
        hasher: Arc::new(SecretHasher::new([7; 32])),
        known_targets: Default::default(),
        now: 1_800_000_000,
        deadline: std::time::Instant::now() + Duration::from_secs(60),
        policy: Arc::new(Policy::default()),
        known_credentials: known,
        linked_credentials: linked,
    }
}

struct Polled {
    result: Result<(), SourceError>,
    items: Vec<ObservationItem>,
}

impl Polled {
    fn scan(&self, scope: &str) -> &InventoryScan {
        self.items
            .iter()
            .find_map(|i| match i {
                ObservationItem::Inventory(s) if s.scope == scope => Some(s),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no inventory for {scope}: {:#?}", self.items))
    }

    fn failed(&self) -> Vec<(String, ErrorReason)> {
        self.items
            .iter()
            .filter_map(|i| match i {
                ObservationItem::TargetFailed { target, error } => {
                    Some((target.clone(), error.reason))
                }
                _ => None,
            })
            .collect()
    }

    /// Everything the poll produced, as text, for the canary search.
    fn text(&self) -> String {
        format!("{:?}\n{:?}", self.items, self.result)
    }

    /// The known credentials the store would hand to the next poll
    /// (sorted by id).
    fn known(&self) -> Vec<KnownCredential> {
        let mut v: Vec<KnownCredential> = self
            .items
            .iter()
            .filter_map(|i| match i {
                ObservationItem::Inventory(s) => Some(s),
                _ => None,
            })
            .flat_map(|s| s.known_credentials())
            .collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }
}

async fn poll(src: &AwsSource, ctx: PollContext) -> Polled {
    let (tx, mut rx) = ObservationSender::channel(1024);
    let result = src.poll(ctx, tx).await;
    let mut items = Vec::new();
    while let Ok(i) = rx.try_recv() {
        items.push(i);
    }
    Polled { result, items }
}

fn doc(v: serde_json::Value) -> String {
    v.to_string()
}

struct Seeded {
    /// user name → UserId
    users: BTreeMap<String, String>,
    /// role name → RoleId
    roles: BTreeMap<String, String>,
    /// (key id, user name, created_at, active)
    keys: Vec<(String, String, i64, bool)>,
    key_secrets: Vec<String>,
    /// (arn, region, rotation, team)
    secrets: Vec<(String, String, bool, Option<String>)>,
}

async fn create_user(
    iam: &aws_sdk_iam::Client,
    name: &str,
    team: Option<&str>,
    seeded: &mut Seeded,
) {
    let mut req = iam.create_user().user_name(name);
    if let Some(t) = team {
        req = req.tags(IamTag::builder().key("team").value(t).build().unwrap());
    }
    let out = req.send().await.expect("create user");
    let id = out.user().unwrap().user_id().to_string();
    seeded.users.insert(name.to_string(), id);
}

async fn create_key(iam: &aws_sdk_iam::Client, user: &str, active: bool, seeded: &mut Seeded) {
    let out = iam
        .create_access_key()
        .user_name(user)
        .send()
        .await
        .expect("create key");
    let k = out.access_key().unwrap();
    let id = k.access_key_id().to_string();
    seeded.key_secrets.push(k.secret_access_key().to_string());
    if !active {
        iam.update_access_key()
            .user_name(user)
            .access_key_id(&id)
            .status(StatusType::Inactive)
            .send()
            .await
            .expect("deactivate");
    }
    let created = k.create_date().map(|d| d.secs()).unwrap();
    seeded.keys.push((id, user.to_string(), created, active));
}

async fn create_role(
    iam: &aws_sdk_iam::Client,
    name: &str,
    team: Option<&str>,
    seeded: &mut Seeded,
) {
    let trust = doc(
        serde_json::json!({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}),
    );
    let mut req = iam
        .create_role()
        .role_name(name)
        .assume_role_policy_document(trust);
    if let Some(t) = team {
        req = req.tags(IamTag::builder().key("team").value(t).build().unwrap());
    }
    let out = req.send().await.expect("create role");
    seeded
        .roles
        .insert(name.to_string(), out.role().unwrap().role_id().to_string());
}

/// The scenario of the inventory test.
async fn seed(moto: &Moto) -> Seeded {
    let conf = moto.sdk_config("us-east-1").await;
    let iam = aws_sdk_iam::Client::new(&conf);
    let mut s = Seeded {
        users: BTreeMap::new(),
        roles: BTreeMap::new(),
        keys: Vec::new(),
        key_secrets: Vec::new(),
        secrets: Vec::new(),
    };
    // Admin directly, with an active key.
    create_user(&iam, "admin-direct", Some("platform"), &mut s).await;
    iam.attach_user_policy()
        .user_name("admin-direct")
        .policy_arn(ADMIN)
        .send()
        .await
        .expect("attach");
    create_key(&iam, "admin-direct", true, &mut s).await;
    // Admin through a group, with a deactivated key.
    iam.create_group()
        .group_name("admins")
        .send()
        .await
        .expect("group");
    iam.attach_group_policy()
        .group_name("admins")
        .policy_arn(ADMIN)
        .send()
        .await
        .expect("attach group");
    create_user(&iam, "admin-group", Some("platform"), &mut s).await;
    iam.add_user_to_group()
        .group_name("admins")
        .user_name("admin-group")
        .send()
        .await
        .expect("add to group");
    create_key(&iam, "admin-group", false, &mut s).await;
    // Admin by an inline */* statement (Action as a list).
    create_user(&iam, "admin-inline", None, &mut s).await;
    iam.put_user_policy()
        .user_name("admin-inline")
        .policy_name("everything")
        .policy_document(doc(serde_json::json!({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject","*"],"Resource":"*"}]})))
        .send()
        .await
        .expect("inline");
    // Unprivileged: read-only managed policy, NotAction statement, 2 keys.
    create_user(&iam, "reader", Some("payments"), &mut s).await;
    iam.attach_user_policy()
        .user_name("reader")
        .policy_arn(READONLY)
        .send()
        .await
        .expect("attach ro");
    iam.put_user_policy()
        .user_name("reader")
        .policy_name("not-iam")
        .policy_document(doc(serde_json::json!({"Version":"2012-10-17","Statement":{"Effect":"Allow","NotAction":"*","Resource":"*"}})))
        .send()
        .await
        .expect("inline notaction");
    create_key(&iam, "reader", true, &mut s).await;
    create_key(&iam, "reader", true, &mut s).await;
    // Console user (human) with a key.
    create_user(&iam, "alice", Some("payments"), &mut s).await;
    iam.create_login_profile()
        .user_name("alice")
        .password("Correct-Horse-9!")
        .send()
        .await
        .expect("login profile");
    create_key(&iam, "alice", true, &mut s).await;
    // Roles: admin, admin through a customer-managed */* policy, plain,
    // service-linked (excluded).
    create_role(&iam, "admin-role", Some("platform"), &mut s).await;
    iam.attach_role_policy()
        .role_name("admin-role")
        .policy_arn(ADMIN)
        .send()
        .await
        .expect("attach role");
    let cm = iam
        .create_policy()
        .policy_name("cm-admin")
        .policy_document(doc(serde_json::json!({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":["*"]}]})))
        .send()
        .await
        .expect("cm policy");
    create_role(&iam, "cm-role", None, &mut s).await;
    iam.attach_role_policy()
        .role_name("cm-role")
        .policy_arn(cm.policy().unwrap().arn().unwrap())
        .send()
        .await
        .expect("attach cm");
    create_role(&iam, "app-role", Some("payments"), &mut s).await;
    iam.put_role_policy()
        .role_name("app-role")
        .policy_name("s3")
        .policy_document(doc(serde_json::json!({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]})))
        .send()
        .await
        .expect("role inline");
    iam.create_service_linked_role()
        .aws_service_name("elasticloadbalancing.amazonaws.com")
        .send()
        .await
        .expect("service-linked role");

    // Secrets in two regions, with and without rotation.
    for (region, name, rotate, team) in [
        ("us-east-1", "db-password", true, Some("payments")),
        ("us-east-1", "api-token", false, None),
        ("eu-west-1", "legacy", false, Some("platform")),
        ("eu-west-1", "rotated-eu", true, None),
    ] {
        let conf = moto.sdk_config(region).await;
        let sm = aws_sdk_secretsmanager::Client::new(&conf);
        let mut req = sm.create_secret().name(name).secret_string(SECRET_CANARY);
        if let Some(t) = team {
            req = req.tags(SmTag::builder().key("team").value(t).build());
        }
        let out = req.send().await.expect("create secret");
        let arn = out.arn().unwrap().to_string();
        if rotate {
            sm.rotate_secret()
                .secret_id(&arn)
                .rotation_rules(
                    RotationRulesType::builder()
                        .automatically_after_days(30)
                        .build(),
                )
                .send()
                .await
                .expect("rotate");
        }
        s.secrets
            .push((arn, region.to_string(), rotate, team.map(str::to_string)));
    }
    s
}

fn assert_no_canary(text: &str, seeded: &Seeded) {
    assert!(!text.contains(SECRET_CANARY), "secret value leaked");
    assert!(!text.contains(SECRET_ACCESS_KEY), "SDK secret key leaked");
    for k in &seeded.key_secrets {
        assert!(!text.contains(k.as_str()), "access key secret leaked");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inventory_is_exact() {
    let moto = Moto::start();
    let seeded = seed(&moto).await;
    let src = AwsSource::new(cfg(&moto.endpoint));
    let p = poll(&src, ctx(Vec::new(), HashSet::new())).await;
    assert!(p.result.is_ok(), "{:?}", p.result);
    assert!(p.failed().is_empty(), "{:?}", p.failed());
    // Three complete scopes, then the set of every scope the source has.
    assert_eq!(p.items.len(), 4);
    match p.items.last() {
        Some(ObservationItem::InventoryScopes(all)) => assert_eq!(
            all,
            &[
                "iam",
                "secretsmanager/us-east-1",
                "secretsmanager/eu-west-1"
            ]
        ),
        other => panic!("{other:?}"),
    }

    let iam = p.scan("iam");
    assert_eq!(iam.observed_at, 1_800_000_000);
    type Row = (
        &'static str,
        String,
        String,
        Option<String>,
        bool,
        bool,
        Option<String>,
    );
    let mut got: Vec<Row> = iam
        .identities
        .iter()
        .map(|i| {
            assert_eq!(i.provider, "aws");
            assert_eq!(i.account, "123456789012");
            assert!(i.usage_tracked);
            assert!(i.created_at.is_some(), "{i:?}");
            (
                i.kind,
                i.name.clone(),
                i.id.clone(),
                i.privileged.clone(),
                i.standing,
                i.human,
                i.team.clone(),
            )
        })
        .collect();
    got.sort();
    let u = |n: &str| seeded.users[n].clone();
    let r = |n: &str| seeded.roles[n].clone();
    let s = |x: &str| Some(x.to_string());
    let mut want: Vec<Row> = vec![
        (
            "user",
            "admin-direct".into(),
            u("admin-direct"),
            s("AdministratorAccess"),
            true,
            false,
            s("platform"),
        ),
        (
            "user",
            "admin-group".into(),
            u("admin-group"),
            s("AdministratorAccess"),
            true,
            false,
            s("platform"),
        ),
        (
            "user",
            "admin-inline".into(),
            u("admin-inline"),
            s("statement */*"),
            true,
            false,
            None,
        ),
        (
            "user",
            "reader".into(),
            u("reader"),
            None,
            false,
            false,
            s("payments"),
        ),
        (
            "user",
            "alice".into(),
            u("alice"),
            None,
            false,
            true,
            s("payments"),
        ),
        (
            "role",
            "admin-role".into(),
            r("admin-role"),
            s("AdministratorAccess"),
            true,
            false,
            s("platform"),
        ),
        (
            "role",
            "cm-role".into(),
            r("cm-role"),
            s("statement */*"),
            true,
            false,
            None,
        ),
        (
            "role",
            "app-role".into(),
            r("app-role"),
            None,
            false,
            false,
            s("payments"),
        ),
    ];
    want.sort();
    assert_eq!(got, want);
    // Never used: no last use reported.
    assert!(iam.identities.iter().all(|i| i.last_used_at.is_none()));

    let mut keys: Vec<_> = iam
        .credentials
        .iter()
        .map(|c| {
            assert_eq!(c.provider, "aws");
            assert_eq!(c.kind, "access_key");
            assert_eq!(c.last_rotated_at, c.created_at);
            assert_eq!(c.expires_at, None);
            assert!(!c.rotation_enabled);
            assert!(c.value_hashes.is_empty());
            (
                c.id.clone(),
                c.identity.clone(),
                c.created_at,
                c.state.as_str(),
                c.team.clone(),
                c.last_used_at,
            )
        })
        .collect();
    keys.sort();
    let team_of = |user: &str| match user {
        "admin-direct" | "admin-group" => s("platform"),
        "reader" | "alice" => s("payments"),
        _ => None,
    };
    let mut want_keys: Vec<_> = seeded
        .keys
        .iter()
        .map(|(id, user, created, active)| {
            (
                id.clone(),
                Some(seeded.users[user].clone()),
                Some(*created),
                if *active {
                    CredentialState::Active
                } else {
                    CredentialState::Inactive
                }
                .as_str(),
                team_of(user),
                None,
            )
        })
        .collect();
    want_keys.sort();
    assert_eq!(keys, want_keys);

    for region in REGIONS {
        let scan = p.scan(&format!("secretsmanager/{region}"));
        assert!(scan.identities.is_empty());
        let mut got: Vec<_> = scan
            .credentials
            .iter()
            .map(|c| {
                assert_eq!(c.kind, "secret");
                assert_eq!(c.identity, None);
                assert_eq!(c.state, CredentialState::Active);
                assert_eq!(c.expires_at, None);
                assert!(c.created_at.is_some());
                assert!(c.last_rotated_at.is_some());
                (c.id.clone(), c.rotation_enabled, c.team.clone())
            })
            .collect();
        got.sort();
        let mut want: Vec<_> = seeded
            .secrets
            .iter()
            .filter(|(_, r, ..)| r == region)
            .map(|(arn, _, rot, team)| (arn.clone(), *rot, team.clone()))
            .collect();
        want.sort();
        assert_eq!(got, want, "{region}");
    }
    assert_no_canary(&p.text(), &seeded);
}

/// Seed `n` users with one active key each, on a fresh moto; return the
/// steady-state request counts and moto handles.
async fn steady_state(
    n: usize,
) -> (
    BTreeMap<String, u64>,
    Moto,
    CountingProxy,
    AwsSource,
    Vec<KnownCredential>,
) {
    let moto = Moto::start();
    let conf = moto.sdk_config("us-east-1").await;
    let iam = aws_sdk_iam::Client::new(&conf);
    for i in 0..n {
        let name = format!("svc-{i:04}");
        iam.create_user()
            .user_name(&name)
            .send()
            .await
            .expect("user");
        iam.create_access_key()
            .user_name(&name)
            .send()
            .await
            .expect("key");
    }
    let proxy = CountingProxy::start(&moto.endpoint).await;
    let src = AwsSource::new(cfg(&proxy.endpoint));
    let first = poll(&src, ctx(Vec::new(), HashSet::new())).await;
    assert!(first.result.is_ok(), "{:?}", first.result);
    assert_eq!(first.scan("iam").credentials.len(), n);
    // First poll ever: one ListAccessKeys per user with keys.
    assert_eq!(
        proxy.get("ListAccessKeys"),
        n as u64,
        "{:?}",
        proxy.counts()
    );
    let known = first.known();
    proxy.reset();
    let second = poll(&src, ctx(known.clone(), HashSet::new())).await;
    assert!(second.result.is_ok(), "{:?}", second.result);
    // Same inventory, from the known ids.
    assert_eq!(second.known(), known);
    (proxy.counts(), moto, proxy, src, known)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_count_grows_with_pages_not_users() {
    let (small, _m1, _p1, _s1, _k1) = steady_state(5).await;
    let (large, _moto, proxy, src, known) = steady_state(20).await;
    assert_eq!(small, large, "steady state must not grow with users");
    assert_eq!(large.get("ListAccessKeys"), None, "{large:?}");
    assert_eq!(large.get("GetAccessKeyLastUsed"), None, "{large:?}");
    assert_eq!(large.get("GetAccountAuthorizationDetails"), Some(&1));
    assert_eq!(large.get("GetCredentialReport"), Some(&1));
    assert_eq!(large.get("ListSecrets"), Some(&2));

    // A leak-linked key: its owner is listed again, nobody else.
    let linked_key = known[3].id.clone();
    proxy.reset();
    let p = poll(
        &src,
        ctx(known.clone(), HashSet::from([linked_key.clone()])),
    )
    .await;
    assert!(p.result.is_ok());
    assert_eq!(proxy.get("ListAccessKeys"), 1, "{:?}", proxy.counts());
    assert_eq!(p.known(), known);

    // A key changed (deactivated): only its owner is listed.
    let moto_conf = _moto.sdk_config("us-east-1").await;
    let iam = aws_sdk_iam::Client::new(&moto_conf);
    let owner = format!("svc-{:04}", 7);
    let keys = iam
        .list_access_keys()
        .user_name(&owner)
        .send()
        .await
        .expect("list");
    let changed = keys.access_key_metadata()[0]
        .access_key_id()
        .unwrap()
        .to_string();
    iam.update_access_key()
        .user_name(&owner)
        .access_key_id(&changed)
        .status(StatusType::Inactive)
        .send()
        .await
        .expect("deactivate");
    proxy.reset();
    let p = poll(&src, ctx(known.clone(), HashSet::new())).await;
    assert!(p.result.is_ok());
    assert_eq!(proxy.get("ListAccessKeys"), 1, "{:?}", proxy.counts());
    let c = p
        .scan("iam")
        .credentials
        .iter()
        .find(|c| c.id == changed)
        .expect("changed key present");
    assert_eq!(c.state, CredentialState::Inactive);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_down_fails_the_poll() {
    let mut moto = Moto::start();
    let src = AwsSource::new(cfg(&moto.endpoint));
    let p = poll(&src, ctx(Vec::new(), HashSet::new())).await;
    assert!(p.result.is_ok(), "{:?}", p.result);
    moto.stop();
    let p = poll(&src, ctx(Vec::new(), HashSet::new())).await;
    let err = p.result.as_ref().expect_err("every scope failed");
    assert_eq!(err.reason, ErrorReason::Io, "{err:?}");
    assert_eq!(p.failed().len(), 3);
    assert!(!p
        .items
        .iter()
        .any(|i| matches!(i, ObservationItem::Inventory(_))));
    assert!(!p.text().contains(SECRET_ACCESS_KEY));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_scope_is_target_failed_only() {
    let moto = Moto::start();
    let seeded = seed(&moto).await;
    let proxy = CountingProxy::start(&moto.endpoint).await;
    let src = AwsSource::new(cfg(&proxy.endpoint));

    // One region denied: that scope fails, IAM and the other region work.
    proxy.deny_secrets_region("eu-west-1");
    let p = poll(&src, ctx(Vec::new(), HashSet::new())).await;
    assert!(p.result.is_ok(), "{:?}", p.result);
    assert_eq!(
        p.failed(),
        vec![("secretsmanager/eu-west-1".to_string(), ErrorReason::Auth)]
    );
    assert_eq!(p.scan("iam").identities.len(), 8);
    assert_eq!(p.scan("secretsmanager/us-east-1").credentials.len(), 2);
    assert_no_canary(&p.text(), &seeded);

    // The principal may not read IAM: AccessDenied → auth, secrets work.
    proxy.clear_faults();
    proxy.deny_iam();
    let p = poll(&src, ctx(Vec::new(), HashSet::new())).await;
    assert!(p.result.is_ok(), "{:?}", p.result);
    assert_eq!(p.failed(), vec![("iam".to_string(), ErrorReason::Auth)]);
    let msg = p
        .items
        .iter()
        .find_map(|i| match i {
            ObservationItem::TargetFailed { error, .. } => Some(error.message.clone()),
            _ => None,
        })
        .unwrap();
    assert!(msg.contains("AccessDenied"), "{msg}");
    assert_eq!(p.scan("secretsmanager/eu-west-1").credentials.len(), 2);
    assert_no_canary(&p.text(), &seeded);

    // Both denied as well: every scope failed → the poll fails (auth).
    proxy.deny_secrets_region("us-east-1");
    proxy.deny_secrets_region("eu-west-1");
    let p = poll(&src, ctx(Vec::new(), HashSet::new())).await;
    assert_eq!(
        p.result.as_ref().map_err(|e| e.reason),
        Err(ErrorReason::Auth)
    );
    assert_no_canary(&p.text(), &seeded);
}
