//! Inventory apply: complete-scope semantics, linking leaks to credentials
//! and confirmed revocation (SPEC §2), with the KPIs they produce.

use super::tests::{apply, finding, scan};
use super::*;
use crate::config::{LabelsConfig, Policy};
use crate::kpi;
use crate::model::{
    CredentialRef, CredentialState, InventoryScan, ObservedCredential, ObservedIdentity,
};

const DAY: i64 = 86_400;
const T0: i64 = 1_750_000_000;
const KEY: &str = "AKIAIOSFODNN7EXAMPLE";

fn open_store(dir: &tempfile::TempDir) -> Store {
    crate::store::testing::open(&dir.path().join("state.db"), "key1").unwrap()
}

fn user(id: &str, privileged: bool, last_used: Option<i64>) -> ObservedIdentity {
    ObservedIdentity {
        provider: "aws",
        account: "123456789012".into(),
        kind: "user",
        id: id.into(),
        name: format!("name-{id}"),
        created_at: Some(T0 - 400 * DAY),
        last_used_at: last_used,
        usage_tracked: true,
        team: None,
        privileged: privileged.then(|| "AdministratorAccess".to_string()),
        standing: privileged,
        human: false,
    }
}

fn key(id: &str, owner: &str, rotated: i64, state: CredentialState) -> ObservedCredential {
    ObservedCredential {
        provider: "aws",
        account: String::new(),
        kind: "access_key",
        id: id.into(),
        identity: Some(owner.into()),
        team: None,
        created_at: Some(rotated),
        last_rotated_at: Some(rotated),
        expires_at: None,
        last_used_at: None,
        state,
        rotation_enabled: false,
        value_hashes: vec![],
        aliases: Vec::new(),
    }
}

fn inventory(
    store: &Store,
    source: &str,
    at: i64,
    scope: &str,
    identities: Vec<ObservedIdentity>,
    credentials: Vec<ObservedCredential>,
) -> ApplyStats {
    let mut conn = store.writer();
    let mut ap = PollApplier::begin(&mut conn, source, at, 100).unwrap();
    ap.inventory(&InventoryScan {
        scope: scope.into(),
        observed_at: at,
        identities,
        credentials,
    })
    .unwrap();
    let stats = ap.commit().unwrap();
    drop(conn);
    // Revocations by credential change are kept in the time counts too.
    crate::store::tests::assert_counts_consistent(store);
    stats
}

fn snapshot(store: &Store, now: i64, teams: bool) -> kpi::Snapshot {
    let labels = LabelsConfig {
        team_enabled: teams,
        team_max_values: 1,
        scope_enabled: false,
        scope_max_values: 1,
    };
    kpi::compute_with(
        &store.reader().unwrap(),
        &Policy::default(),
        &labels,
        None,
        now,
    )
    .unwrap()
}

fn counter(s: &kpi::Snapshot, name: &str, by: &str) -> f64 {
    s.counters
        .iter()
        .find(|(n, l, _)| n == name && l.iter().any(|(_, v)| v == by))
        .map(|c| c.2)
        .unwrap_or(0.0)
}

fn leak_with_key(id: &str, secret: u8) -> crate::model::ObservedFinding {
    let mut f = finding(id, secret);
    f.links = vec![CredentialRef {
        provider: "aws",
        id: KEY.into(),
    }];
    f
}

#[test]
fn identity_and_credential_kpis_have_exact_values() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir);
    let mut owned = user("u-owned", false, Some(T0 - DAY));
    owned.team = Some("payments".into());
    let mut human = user("u-human", false, Some(T0));
    human.human = true;
    let mut other_team = user("u-other", false, Some(T0 - DAY));
    other_team.team = Some("search".into());
    let mut secret = key("arn:secret", "x", T0 - 10 * DAY, CredentialState::Active);
    secret.kind = "secret";
    secret.identity = None;
    secret.rotation_enabled = true;
    inventory(
        &store,
        "aws",
        T0,
        "iam",
        vec![
            user("u-admin", true, Some(T0 - 100 * DAY)), // privileged, unused
            owned.clone(),
            human,
            other_team,
        ],
        vec![
            key("AKIA1", "u-admin", T0 - 400 * DAY, CredentialState::Active),
            key("AKIA2", "u-owned", T0 - 40 * DAY, CredentialState::Active),
            key("AKIA3", "u-owned", T0 - 5 * DAY, CredentialState::Inactive),
            secret,
        ],
    );
    let s = snapshot(&store, T0, false);
    let inv = &s.inventory;
    let users = &inv.identities[&(
        "aws".into(),
        "aws".into(),
        "user".into(),
        String::new(),
        String::new(),
    )];
    assert_eq!(users.total, 3);
    assert_eq!(users.standing_privileged, 1);
    assert_eq!(users.unused, 1);
    assert_eq!(users.owned, 2);
    // u-owned: owned, used, its active key 40d < 90d: governed. u-other
    // has no credentials: governed too.
    assert_eq!(users.governed, 2);
    assert_eq!(inv.humans[&("aws".into(), "aws".into())], 1);
    let keys = &inv.credentials[&(
        "aws".into(),
        "aws".into(),
        "access_key".into(),
        String::new(),
        String::new(),
    )];
    assert_eq!((keys.active, keys.inactive, keys.long_lived), (2, 1, 1));
    assert_eq!(keys.oldest_age, Some((400 * DAY) as f64));
    assert_eq!(keys.bands, [0, 1, 0, 1]);
    let secrets = &inv.credentials[&(
        "aws".into(),
        "aws".into(),
        "secret".into(),
        String::new(),
        String::new(),
    )];
    assert_eq!(
        (secrets.active, secrets.rotation_enabled, secrets.bands),
        (1, 1, [1, 0, 0, 0])
    );
    assert_eq!(s.posture["privilege"], 1.0 - 1.0 / 3.0);
    assert_eq!(s.posture["governance"], 2.0 / 3.0);
    assert_eq!(s.posture["hygiene"], 1.0 - 1.0 / 3.0);
    let mean = (1.0 + (1.0 - 1.0 / 3.0) + 2.0 / 3.0 + (1.0 - 1.0 / 3.0)) / 4.0;
    assert!((s.posture["overall"] - mean).abs() < 1e-12);

    // Team labels, capped at one value: the first team keeps its name.
    let s = snapshot(&store, T0, true);
    let by_team: Vec<(String, u64)> = s
        .inventory
        .identities
        .iter()
        .map(|(k, c)| (k.3.clone(), c.total))
        .collect();
    assert_eq!(
        by_team,
        vec![
            (String::new(), 1),
            ("other".into(), 1),
            ("payments".into(), 1)
        ]
    );

    // An identity absent from the next complete inventory is gone; its
    // key is kept as deleted (not counted).
    inventory(
        &store,
        "aws",
        T0 + 60,
        "iam",
        vec![owned],
        vec![key(
            "AKIA2",
            "u-owned",
            T0 - 40 * DAY,
            CredentialState::Active,
        )],
    );
    let s = snapshot(&store, T0 + 60, false);
    let keys = &s.inventory.credentials[&(
        "aws".into(),
        "aws".into(),
        "access_key".into(),
        String::new(),
        String::new(),
    )];
    assert_eq!((keys.active, keys.inactive), (1, 0));
    // The secret lives in another scope of the same source: untouched? No:
    // it was sent under scope iam above, so it is deleted with it.
    assert!(!s.inventory.credentials.contains_key(&(
        "aws".into(),
        "aws".into(),
        "secret".into(),
        String::new(),
        String::new()
    )));
}

#[test]
fn a_leaked_key_deactivated_is_a_confirmed_revocation() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir);
    let owner = user("u1", false, Some(T0));
    inventory(
        &store,
        "aws",
        T0,
        "iam",
        vec![owner.clone()],
        vec![key(KEY, "u1", T0 - DAY, CredentialState::Active)],
    );
    apply(
        &store,
        "gl",
        T0 + 100,
        &[scan("r", T0 + 100, vec![leak_with_key("f1", 1)])],
    );
    let s = snapshot(&store, T0 + 100, false);
    assert_eq!(s.exposed_total(), 1);
    assert_eq!(counter(&s, "nhi_exposures_revoked_total", "aws"), 0.0);
    // The finding is closed while the key still works: residual.
    apply(&store, "gl", T0 + 200, &[scan("r", T0 + 200, vec![])]);
    assert_eq!(snapshot(&store, T0 + 200, false).residual_exposures, 1);
    // A failed poll sends nothing: nothing changes. The key deactivated:
    // confirmed revoked at the poll that saw it, no longer residual.
    inventory(
        &store,
        "aws",
        T0 + 3700,
        "iam",
        vec![owner],
        vec![key(KEY, "u1", T0 - DAY, CredentialState::Inactive)],
    );
    let s = snapshot(&store, T0 + 3700, false);
    assert_eq!(s.residual_exposures, 0);
    assert_eq!(counter(&s, "nhi_exposures_revoked_total", "aws"), 1.0);
    let h = s
        .histograms
        .iter()
        .find(|(n, l, _)| n == "nhi_time_to_revoke_seconds" && l[0].1 == "aws")
        .unwrap();
    assert_eq!((h.2.count, h.2.sum), (1, 3600.0));
    assert_eq!(reopened(&s), 0.0);
    // An unchanged inventory changes nothing.
    inventory(
        &store,
        "aws",
        T0 + 3800,
        "iam",
        vec![],
        vec![key(KEY, "u1", T0 - DAY, CredentialState::Inactive)],
    );
    let s = snapshot(&store, T0 + 3800, false);
    assert_eq!(counter(&s, "nhi_exposures_revoked_total", "aws"), 1.0);
    assert_eq!(reopened(&s), 0.0);
    // The key reactivated: a re-exposure (SPEC §3), residual again.
    inventory(
        &store,
        "aws",
        T0 + 4000,
        "iam",
        vec![],
        vec![key(KEY, "u1", T0 - DAY, CredentialState::Active)],
    );
    let s = snapshot(&store, T0 + 4000, false);
    assert_eq!(reopened(&s), 1.0);
    assert_eq!(s.residual_exposures, 1);
    assert_eq!(counter(&s, "nhi_exposures_revoked_total", "aws"), 1.0);
    // Deleted: revoked again, timed from the re-exposure (1000 s).
    inventory(&store, "aws", T0 + 5000, "iam", vec![], vec![]);
    let s = snapshot(&store, T0 + 5000, false);
    assert_eq!(counter(&s, "nhi_exposures_revoked_total", "aws"), 2.0);
    assert_eq!(reopened(&s), 1.0);
    assert_eq!(s.residual_exposures, 0);
    let h = s
        .histograms
        .iter()
        .find(|(n, l, _)| n == "nhi_time_to_revoke_seconds" && l[0].1 == "aws")
        .unwrap();
    assert_eq!((h.2.count, h.2.sum), (2, 4600.0));
    // And stays revoked.
    inventory(&store, "aws", T0 + 6000, "iam", vec![], vec![]);
    let s = snapshot(&store, T0 + 6000, false);
    assert_eq!(counter(&s, "nhi_exposures_revoked_total", "aws"), 2.0);
    assert_eq!(reopened(&s), 1.0);
}

fn reopened(s: &kpi::Snapshot) -> f64 {
    s.counters
        .iter()
        .filter(|(n, _, _)| n == "nhi_exposures_reopened_total")
        .map(|(_, _, v)| v)
        .sum()
}

#[test]
fn a_leak_of_a_key_already_deleted_links_on_detection() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir);
    inventory(
        &store,
        "aws",
        T0,
        "iam",
        vec![],
        vec![key(KEY, "u1", T0 - DAY, CredentialState::Active)],
    );
    inventory(&store, "aws", T0 + 10, "iam", vec![], vec![]);
    apply(
        &store,
        "gl",
        T0 + 50,
        &[scan("r", T0 + 50, vec![leak_with_key("f1", 1)])],
    );
    let s = snapshot(&store, T0 + 50, false);
    assert_eq!(counter(&s, "nhi_exposures_revoked_total", "aws"), 1.0);
    let h = s
        .histograms
        .iter()
        .find(|(n, l, _)| n == "nhi_time_to_revoke_seconds" && l[0].1 == "aws")
        .unwrap();
    assert_eq!((h.2.count, h.2.sum), (1, 0.0));
}

#[test]
fn a_vault_value_rotated_after_the_leak_is_a_revocation() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir);
    let kv = |rotated: i64, value: u8| ObservedCredential {
        provider: "vault",
        account: String::new(),
        kind: "kv",
        id: "secret/app/db".into(),
        identity: None,
        team: None,
        created_at: Some(T0 - DAY),
        last_rotated_at: Some(rotated),
        expires_at: None,
        last_used_at: None,
        state: CredentialState::Active,
        rotation_enabled: false,
        value_hashes: vec![[value; 32]],
        aliases: Vec::new(),
    };
    // The leak comes first, then the vault poll links it by value.
    apply(&store, "gl", T0, &[scan("r", T0, vec![finding("f1", 7)])]);
    inventory(
        &store,
        "vault",
        T0 + 10,
        "kv/secret",
        vec![],
        vec![kv(T0 - DAY, 7)],
    );
    apply(&store, "gl", T0 + 20, &[scan("r", T0 + 20, vec![])]);
    let s = snapshot(&store, T0 + 20, false);
    assert_eq!(s.residual_exposures, 1, "closed, the value still current");
    // A new version with another value, written after the leak.
    inventory(
        &store,
        "vault",
        T0 + 500,
        "kv/secret",
        vec![],
        vec![kv(T0 + 400, 8)],
    );
    let s = snapshot(&store, T0 + 500, false);
    assert_eq!(s.residual_exposures, 0);
    assert_eq!(counter(&s, "nhi_exposures_revoked_total", "vault"), 1.0);
    let h = s
        .histograms
        .iter()
        .find(|(n, l, _)| n == "nhi_time_to_revoke_seconds" && l[0].1 == "vault")
        .unwrap();
    assert_eq!(
        (h.2.count, h.2.sum),
        (1, 400.0),
        "the source's own timestamp"
    );

    // A vault value seen first, then leaked: linked on detection.
    inventory(
        &store,
        "vault",
        T0 + 600,
        "kv/secret",
        vec![],
        vec![kv(T0 + 400, 8)],
    );
    apply(
        &store,
        "gl",
        T0 + 700,
        &[scan("r", T0 + 700, vec![finding("f2", 8)])],
    );
    let links: i64 = store
        .reader()
        .unwrap()
        .query_row(
            "SELECT COUNT(*) FROM exposure_links WHERE provider = 'vault'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(links, 2);
}

#[test]
fn unchanged_inventories_rewrite_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir);
    let ids: Vec<_> = (0..50)
        .map(|i| user(&format!("u{i}"), false, Some(T0)))
        .collect();
    let creds: Vec<_> = (0..50)
        .map(|i| {
            key(
                &format!("AKIA{i}"),
                &format!("u{i}"),
                T0,
                CredentialState::Active,
            )
        })
        .collect();
    let first = inventory(&store, "aws", T0, "iam", ids.clone(), creds.clone());
    assert_eq!(
        (first.identities_changed, first.credentials_changed),
        (50, 50)
    );
    let again = inventory(&store, "aws", T0 + 60, "iam", ids, creds);
    assert_eq!(
        (again.identities_changed, again.credentials_changed),
        (0, 0)
    );
}

#[test]
fn open_leaks_of_many_keys_revoked_by_one_inventory() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir);
    let keys = |inactive: bool| -> Vec<ObservedCredential> {
        (0..30)
            .map(|i| {
                let s = if inactive && i % 10 == 0 {
                    CredentialState::Inactive
                } else {
                    CredentialState::Active
                };
                key(&format!("AKIA{i:016}"), "u", T0 - DAY, s)
            })
            .collect()
    };
    inventory(&store, "aws", T0, "iam", vec![], keys(false));
    let leaks: Vec<_> = (0..10)
        .map(|i| {
            let mut f = finding(&format!("l{i}"), i as u8 + 1);
            f.links = vec![CredentialRef {
                provider: "aws",
                id: format!("AKIA{:016}", i * 3),
            }];
            f
        })
        .collect();
    apply(&store, "gl", T0 + 100, &[scan("r", T0 + 100, leaks)]);
    inventory(&store, "aws", T0 + 200, "iam", vec![], keys(true));
    let s = snapshot(&store, T0 + 200, false);
    // Keys 0, 10 and 20 are deactivated; leak i links key 3i, so only
    // leak 0 (key 0) is revoked.
    assert_eq!(counter(&s, "nhi_exposures_revoked_total", "aws"), 1.0);
}

#[test]
fn a_leak_linked_to_two_keys_is_revoked_when_both_are_unusable() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir);
    let two = |a: CredentialState, b: CredentialState| {
        vec![
            key("AKIAAAAAAAAAAAAAAAA1", "u", T0 - DAY, a),
            key("AKIAAAAAAAAAAAAAAAA2", "u", T0 - DAY, b),
        ]
    };
    inventory(
        &store,
        "aws",
        T0,
        "iam",
        vec![],
        two(CredentialState::Active, CredentialState::Active),
    );
    let mut f = finding("f", 9);
    f.links = ["AKIAAAAAAAAAAAAAAAA1", "AKIAAAAAAAAAAAAAAAA2"]
        .map(|id| CredentialRef {
            provider: "aws",
            id: id.into(),
        })
        .to_vec();
    apply(&store, "gl", T0 + 10, &[scan("r", T0 + 10, vec![f])]);
    inventory(
        &store,
        "aws",
        T0 + 20,
        "iam",
        vec![],
        two(CredentialState::Inactive, CredentialState::Active),
    );
    let s = snapshot(&store, T0 + 20, false);
    assert_eq!(counter(&s, "nhi_exposures_revoked_total", "aws"), 0.0);
    inventory(
        &store,
        "aws",
        T0 + 30,
        "iam",
        vec![],
        two(CredentialState::Inactive, CredentialState::Inactive),
    );
    let s = snapshot(&store, T0 + 30, false);
    assert_eq!(counter(&s, "nhi_exposures_revoked_total", "aws"), 1.0);
}

#[test]
fn scope_labels_are_accounts_capped_in_order_of_first_appearance() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir);
    let in_account = |id: &str, account: &str| ObservedIdentity {
        account: account.into(),
        ..user(id, false, Some(T0))
    };
    let key_in = |id: &str, owner: &str, account: &str| ObservedCredential {
        account: account.into(),
        ..key(id, owner, T0 - 100 * DAY, CredentialState::Active)
    };
    // Account 111 appears first, then 222 and 333: with max_values 2 the
    // third is `other`.
    inventory(
        &store,
        "org",
        T0,
        "111111111111/iam",
        vec![in_account("u1", "111111111111")],
        vec![key_in("AKIA1", "u1", "111111111111")],
    );
    inventory(
        &store,
        "org",
        T0,
        "222222222222/iam",
        vec![
            in_account("u2", "222222222222"),
            in_account("u3", "222222222222"),
        ],
        vec![],
    );
    inventory(
        &store,
        "org",
        T0,
        "333333333333/iam",
        vec![in_account("u4", "333333333333")],
        vec![
            key_in("AKIA4", "u4", "333333333333"),
            key_in("AKIA5", "u4", "333333333333"),
        ],
    );
    let reader = store.reader().unwrap();
    let labels = LabelsConfig {
        team_enabled: false,
        team_max_values: 50,
        scope_enabled: true,
        scope_max_values: 2,
    };
    let s = kpi::compute_with(&reader, &Policy::default(), &labels, None, T0).unwrap();
    let ids: Vec<(String, u64)> = s
        .inventory
        .identities
        .iter()
        .map(|(k, c)| (k.4.clone(), c.total))
        .collect();
    assert_eq!(
        ids,
        vec![
            ("111111111111".into(), 1),
            ("222222222222".into(), 2),
            ("other".into(), 1)
        ]
    );
    let creds: Vec<(String, u64, u64)> = s
        .inventory
        .credentials
        .iter()
        .map(|(k, c)| (k.4.clone(), c.active, c.long_lived))
        .collect();
    assert_eq!(
        creds,
        vec![("111111111111".into(), 1, 1), ("other".into(), 2, 2)]
    );
    // Off: one series, no scope.
    let s = kpi::compute_with(
        &reader,
        &Policy::default(),
        &LabelsConfig {
            scope_enabled: false,
            ..labels
        },
        None,
        T0,
    )
    .unwrap();
    assert_eq!(s.inventory.identities.len(), 1);
    let only = s.inventory.identities.iter().next().unwrap();
    assert_eq!((only.0 .4.as_str(), only.1.total), ("", 4));
}

/// A scope the source no longer lists (an account that left the
/// organization) is retired as an empty complete inventory: its identities
/// go, its credentials are kept as deleted, and a leak of one of its keys is
/// confirmed revoked. Scopes still listed, failed or not, are untouched.
#[test]
fn scopes_no_longer_listed_are_retired() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir);
    let b_key = "AKIAIOSFODNN7EXAMPLF";
    inventory(
        &store,
        "org",
        T0,
        "111111111111/iam",
        vec![user("a1", false, Some(T0))],
        vec![key(KEY, "a1", T0, CredentialState::Active)],
    );
    inventory(
        &store,
        "org",
        T0,
        "222222222222/iam",
        vec![user("b1", true, Some(T0))],
        vec![key(b_key, "b1", T0, CredentialState::Active)],
    );
    let mut leak = finding("f1", 9);
    leak.links = vec![CredentialRef {
        provider: "aws",
        id: b_key.into(),
    }];
    apply(&store, "gl", T0 + 10, &[scan("r", T0 + 10, vec![leak])]);
    let r = store.reader().unwrap();
    let count = |sql: &str| -> i64 { r.query_row(sql, [], |x| x.get(0)).unwrap() };
    assert_eq!(count("SELECT COUNT(*) FROM identities"), 2);
    // Both scopes still listed (one of them failed this poll): nothing changes.
    let retire = |at: i64, keep: &[&str]| {
        let mut conn = store.writer();
        let mut ap = PollApplier::begin(&mut conn, "org", at, 100).unwrap();
        ap.retire_scopes(&keep.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
        ap.commit().unwrap()
    };
    retire(T0 + 50, &["111111111111/iam", "222222222222/iam"]);
    assert_eq!(count("SELECT COUNT(*) FROM identities"), 2);
    assert_eq!(
        count("SELECT COUNT(*) FROM credentials WHERE state = 'active'"),
        2
    );
    // Account 222222222222 left the organization.
    let stats = retire(T0 + 100, &["111111111111/iam"]);
    assert_eq!(stats.inventories, 1);
    assert_eq!(
        count("SELECT COUNT(*) FROM identities WHERE scope = '222222222222/iam'"),
        0
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM identities WHERE scope = '111111111111/iam'"),
        1
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM credentials WHERE ext_id = 'AKIAIOSFODNN7EXAMPLF' AND state = 'deleted'"),
        1
    );
    let s = snapshot(&store, T0 + 100, false);
    assert_eq!(counter(&s, "nhi_exposures_revoked_total", "aws"), 1.0);
    // Retiring again finds nothing left to retire.
    assert_eq!(retire(T0 + 200, &["111111111111/iam"]).inventories, 0);
}

/// Inventories larger than one multi-row statement (256 rows): every row is
/// written once with its own values, and a credential moving to another
/// scope keeps its row (and takes its state change time then).
#[test]
fn large_inventories_are_written_in_batches_row_for_row() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir);
    let users: Vec<_> = (0..600)
        .map(|i| user(&format!("u{i}"), i % 7 == 0, Some(T0 - i * 60)))
        .collect();
    let keys: Vec<_> = (0..700)
        .map(|i| {
            let state = if i % 5 == 0 {
                CredentialState::Inactive
            } else {
                CredentialState::Active
            };
            key(
                &format!("AKIA{i:016}"),
                &format!("u{}", i % 600),
                T0 - i * DAY,
                state,
            )
        })
        .collect();
    let stats = inventory(&store, "aws", T0, "a", users.clone(), keys.clone());
    assert_eq!(stats.identities_changed, 600);
    assert_eq!(stats.credentials_changed, 700);
    let r = store.reader().unwrap();
    let one = |sql: &str| -> i64 { r.query_row(sql, [], |row| row.get(0)).unwrap() };
    assert_eq!(one("SELECT COUNT(*) FROM identities"), 600);
    assert_eq!(
        one("SELECT COUNT(*) FROM identities WHERE standing = 1"),
        86
    );
    assert_eq!(
        one("SELECT last_used_at FROM identities WHERE ext_id = 'u599'"),
        T0 - 599 * 60
    );
    assert_eq!(one("SELECT COUNT(*) FROM credentials"), 700);
    assert_eq!(
        one("SELECT COUNT(*) FROM credentials WHERE state = 'inactive'"),
        140
    );
    assert_eq!(
        one("SELECT last_rotated_at FROM credentials WHERE ext_id = 'AKIA0000000000000699'"),
        T0 - 699 * DAY
    );
    assert_eq!(
        one("SELECT COUNT(*) FROM credentials WHERE state_changed_at = 1750000000"),
        700
    );
    // Scope b lists key 3 (moving it from a); a no longer lists it.
    let moved = key(
        "AKIA0000000000000003",
        "u3",
        T0 - 3 * DAY,
        CredentialState::Active,
    );
    let rest: Vec<_> = keys.iter().filter(|k| k.id != moved.id).cloned().collect();
    inventory(&store, "aws", T0 + 10, "b", vec![], vec![moved]);
    inventory(&store, "aws", T0 + 20, "a", users, rest);
    assert_eq!(one("SELECT COUNT(*) FROM credentials"), 700);
    assert_eq!(
        one("SELECT COUNT(*) FROM credentials WHERE ext_id = 'AKIA0000000000000003' AND scope = 'b' AND state = 'active' AND state_changed_at = 1750000010"),
        1
    );
}
