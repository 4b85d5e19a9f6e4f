//! Unit tests of the `vault` source's parsers, on the fixtures in
//! `tests/fixtures/vault`.

use super::api::{account_of, encode_path, parse_list, parse_login};
use super::approle::{
    approle_identity, parse_approle_role, parse_auth_mounts, parse_secret_id_lookup,
};
use super::kv::{parse_kv_data_hashes, parse_kv_metadata};
use super::tokens::{parse_token_lookup, TokenEntry};
use crate::config::Policy;
use crate::hashing::SecretHasher;
use crate::model::{CredentialState, ObservedCredential, ObservedIdentity};
use crate::sources::rfc3339;

fn fx(name: &str) -> Vec<u8> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/vault")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn policy() -> Policy {
    let mut p = Policy {
        team_tag: "team".into(),
        ..Default::default()
    };
    p.privileged.vault_policies = vec!["admin".into()];
    p
}

fn t(s: &str) -> i64 {
    rfc3339(s).unwrap()
}

#[test]
fn lists_and_accounts() {
    assert_eq!(
        parse_list(&fx("list_metadata.json")).unwrap(),
        ["app/", "old"]
    );
    assert_eq!(
        parse_list(br#"{"errors":[]}"#).unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(
        account_of("https://vault.example.com:8200/"),
        "vault.example.com:8200"
    );
    assert_eq!(account_of("http://127.0.0.1:8200"), "127.0.0.1:8200");
    assert_eq!(encode_path("a b/c%d/"), "a%20b/c%25d/");
}

#[test]
fn kv_metadata_with_rotation_and_team() {
    let now = t("2026-11-28T00:00:00Z");
    let c = parse_kv_metadata(
        &fx("kv_metadata_rotated.json"),
        "secret",
        "app/db",
        "team",
        now,
    )
    .unwrap();
    assert_eq!(
        c,
        ObservedCredential {
            provider: "vault",
            account: String::new(),
            kind: "kv",
            id: "secret/app/db".into(),
            identity: None,
            team: Some("payments".into()),
            created_at: Some(t("2026-11-27T07:32:21Z")),
            last_rotated_at: Some(t("2026-11-27T07:32:21Z")),
            expires_at: None,
            last_used_at: None,
            state: CredentialState::Active,
            rotation_enabled: true,
            value_hashes: vec![],
            aliases: Vec::new(),
        }
    );
    // Past its declared rotation period (30d): not honoured.
    let late = t("2027-01-15T00:00:00Z");
    let c = parse_kv_metadata(
        &fx("kv_metadata_rotated.json"),
        "secret",
        "app/db",
        "team",
        late,
    )
    .unwrap();
    assert!(!c.rotation_enabled);
    // Another team tag: no team.
    let c = parse_kv_metadata(
        &fx("kv_metadata_rotated.json"),
        "secret",
        "app/db",
        "owner",
        now,
    )
    .unwrap();
    assert_eq!(c.team, None);
}

#[test]
fn kv_deleted_current_version_is_inactive() {
    let now = t("2026-11-28T00:00:00Z");
    let c = parse_kv_metadata(
        &fx("kv_metadata_deleted.json"),
        "secret",
        "old",
        "team",
        now,
    )
    .unwrap();
    assert_eq!(c.state, CredentialState::Inactive);
    assert_eq!(c.team, None);
    assert!(!c.rotation_enabled);
    // A deletion scheduled in the future (delete_version_after) is not yet.
    let before = t("2026-11-27T07:32:20Z");
    let c = parse_kv_metadata(
        &fx("kv_metadata_deleted.json"),
        "secret",
        "old",
        "team",
        before,
    )
    .unwrap();
    assert_eq!(c.state, CredentialState::Active);
    let destroyed = br#"{"data":{"created_time":"2026-01-01T00:00:00Z","updated_time":"2026-01-01T00:00:00Z","current_version":2,"versions":{"1":{"deletion_time":"","destroyed":false},"2":{"deletion_time":"","destroyed":true}}}}"#;
    let c = parse_kv_metadata(destroyed, "kv", "x", "team", now).unwrap();
    assert_eq!(c.state, CredentialState::Inactive);
    assert_eq!(c.id, "kv/x");
}

#[test]
fn kv_values_are_hashed_and_errors_do_not_quote_them() {
    let h = SecretHasher::new([7; 32]);
    let mut got = parse_kv_data_hashes(&fx("kv_data.json"), &h).unwrap();
    got.sort();
    let mut want = vec![h.hash(b"s3cr3t"), h.hash(b"5432")];
    want.sort();
    assert_eq!(got, want);
    // Deleted current version: data is null.
    let deleted = br#"{"data":{"data":null,"metadata":{"version":1}}}"#;
    assert!(parse_kv_data_hashes(deleted, &h).unwrap().is_empty());
    // A type error would quote the value in serde's message.
    let bad = br#"{"data":{"data":"CANARY-zzz-value"}}"#;
    let e = parse_kv_data_hashes(bad, &h).unwrap_err();
    assert!(!e.contains("CANARY"), "{e}");
    let e = parse_kv_data_hashes(b"{\"data\": \"CANARY-truncated", &h).unwrap_err();
    assert!(!e.contains("CANARY"), "{e}");
}

#[test]
fn token_lookups_are_classified() {
    let p = policy();
    let acct = "127.0.0.1:8200";
    assert_eq!(
        parse_token_lookup(&fx("lookup_token_approle_session.json"), acct, &p).unwrap(),
        TokenEntry::AppRoleSession
    );
    let TokenEntry::Human(h) =
        parse_token_lookup(&fx("lookup_token_userpass.json"), acct, &p).unwrap()
    else {
        panic!("userpass is human")
    };
    assert!(h.human);
    assert_eq!(h.id, "2VCmwQSK6segAVFRgIVfEbma");
    assert_eq!(h.name, "userpass-alice");
    assert_eq!(h.privileged, None);

    let TokenEntry::Nhi(i, c) =
        parse_token_lookup(&fx("lookup_token_root.json"), acct, &p).unwrap()
    else {
        panic!("root token is an NHI")
    };
    assert_eq!(
        *i,
        ObservedIdentity {
            provider: "vault",
            account: acct.into(),
            kind: "token",
            id: "x2uRcY2ssXNklkUagovZJbws".into(),
            name: "token".into(),
            created_at: Some(1795764738),
            last_used_at: None,
            usage_tracked: false,
            team: None,
            privileged: Some("policy root".into()),
            standing: true,
            human: false,
        }
    );
    assert_eq!(
        *c,
        ObservedCredential {
            provider: "vault",
            account: String::new(),
            kind: "token",
            id: "x2uRcY2ssXNklkUagovZJbws".into(),
            identity: Some("x2uRcY2ssXNklkUagovZJbws".into()),
            team: None,
            created_at: Some(1795764738),
            last_rotated_at: Some(1795764738),
            expires_at: None,
            last_used_at: None,
            state: CredentialState::Active,
            rotation_enabled: false,
            value_hashes: vec![],
            aliases: Vec::new(),
        }
    );

    let TokenEntry::Nhi(i, c) = parse_token_lookup(&fx("lookup_token_ttl.json"), acct, &p).unwrap()
    else {
        panic!("created token is an NHI")
    };
    assert_eq!(i.team.as_deref(), Some("infra"));
    assert_eq!(i.name, "token-ci-bot");
    assert_eq!(i.privileged, None);
    assert!(!i.standing);
    assert_eq!(c.expires_at, Some(t("2026-11-27T08:32:25Z")));
    assert_eq!(c.team.as_deref(), Some("infra"));

    // A privileged policy by identity, with a TTL: privileged, not standing.
    let body = br#"{"data":{"accessor":"acc1","creation_time":100,"display_name":"x","expire_time":"2026-11-27T08:32:25Z","path":"auth/token/create","policies":["default"],"identity_policies":["admin"]}}"#;
    let TokenEntry::Nhi(i, _) = parse_token_lookup(body, acct, &p).unwrap() else {
        panic!()
    };
    assert_eq!(i.privileged.as_deref(), Some("policy admin"));
    assert!(!i.standing);
}

#[test]
fn approle_parts() {
    assert_eq!(
        parse_auth_mounts(&fx("sys_auth.json")).unwrap(),
        ["approle"]
    );
    let two = br#"{"data":{"approle/":{"type":"approle"},"ci/apps/":{"type":"approle"},"token/":{"type":"token"}},"request_id":"r"}"#;
    assert_eq!(parse_auth_mounts(two).unwrap(), ["approle", "ci/apps"]);
    let legacy = br#"{"approle/":{"type":"approle"},"token/":{"type":"token"}}"#;
    assert_eq!(parse_auth_mounts(legacy).unwrap(), ["approle"]);

    assert_eq!(
        parse_approle_role(&fx("approle_role.json")).unwrap(),
        ["ops"]
    );

    let (never, n) = parse_secret_id_lookup(&fx("secret_id_never.json"), "approle/ci").unwrap();
    assert!(n);
    assert_eq!(
        never,
        ObservedCredential {
            provider: "vault",
            account: String::new(),
            kind: "secret_id",
            id: "c22656be-5498-d07e-b532-d2e0825263d0".into(),
            identity: Some("approle/ci".into()),
            team: None,
            created_at: Some(t("2026-11-27T07:32:25Z")),
            last_rotated_at: Some(t("2026-11-27T07:32:25Z")),
            expires_at: None,
            last_used_at: None,
            state: CredentialState::Active,
            rotation_enabled: false,
            value_hashes: vec![],
            aliases: Vec::new(),
        }
    );
    let (ttl, n) = parse_secret_id_lookup(&fx("secret_id_ttl.json"), "approle/ci").unwrap();
    assert!(!n);
    assert_eq!(ttl.expires_at, Some(t("2026-11-27T08:32:25Z")));

    let mut p = policy();
    let i = approle_identity(
        "approle",
        "ci",
        &["ops".into()],
        &[never.clone(), ttl.clone()],
        true,
        "h:1",
        &p,
    );
    assert_eq!(i.id, "approle/ci");
    assert_eq!(i.created_at, Some(t("2026-11-27T07:32:25Z")));
    assert_eq!(i.privileged, None);
    assert!(!i.standing);
    p.privileged.vault_policies = vec!["ops".into()];
    let i = approle_identity(
        "approle",
        "ci",
        &["ops".into()],
        &[never, ttl.clone()],
        true,
        "h:1",
        &p,
    );
    assert_eq!(i.privileged.as_deref(), Some("policy ops"));
    assert!(i.standing);
    let i = approle_identity("approle", "ci", &["ops".into()], &[ttl], false, "h:1", &p);
    assert!(!i.standing);
}

#[test]
fn login_token_is_redacted_in_debug() {
    let (tok, lease) = parse_login(&fx("login.json")).unwrap();
    assert_eq!(tok.expose(), "s.FIXTUREFIXTUREFIXTURE00");
    assert_eq!(lease, 2764800);
    assert!(!format!("{tok:?}").contains("FIXTURE"));
    assert!(parse_login(br#"{"auth":null}"#).is_err());
}
