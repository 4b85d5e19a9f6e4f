//! The pure mapping of a tenant's objects to inventory scans.

use super::inventory::*;
use super::types::*;
use crate::model::CredentialState;
use std::collections::HashSet;

const T0: i64 = 1_780_000_000; // 2026-05-28T20:26:40Z

fn cred(key: &str, hint: Option<&str>, start: &str, end: &str) -> GraphCredential {
    GraphCredential {
        key_id: Some(key.into()),
        display_name: Some("ci".into()),
        hint: hint.map(Into::into),
        start_date_time: Some(start.into()),
        end_date_time: Some(end.into()),
    }
}

fn app(id: &str, app_id: &str, tags: &[&str]) -> DirectoryApp {
    DirectoryApp {
        id: id.into(),
        app_id: Some(app_id.into()),
        display_name: Some(format!("name-{id}")),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        ..Default::default()
    }
}

fn directory() -> Directory {
    let mut billing = app("obj-app-1", "APP-1", &["team:payments"]);
    billing.created_date_time = Some("2026-01-01T00:00:00Z".into());
    billing.password_credentials = vec![
        cred(
            "KEY-1",
            Some("abc"),
            "2026-01-01T00:00:00Z",
            "2027-01-01T00:00:00Z",
        ),
        cred(
            "key-2",
            Some("xyz"),
            "2025-01-01T00:00:00Z",
            "2026-01-01T00:00:00Z",
        ),
    ];
    billing.key_credentials = vec![cred(
        "key-3",
        None,
        "2026-02-01T00:00:00Z",
        "2028-02-01T00:00:00Z",
    )];
    let mut sp1 = app("obj-sp-1", "app-1", &[]);
    sp1.service_principal_type = Some("Application".into());
    let mut mi = app("obj-mi", "app-mi", &["team=infra"]);
    mi.service_principal_type = Some("ManagedIdentity".into());
    let mut graph = app("obj-graph", "00000003-0000-0000-c000-000000000000", &[]);
    graph.app_owner_organization_id = Some("f8cdef31-a31e-4b4a-93e4-5f571e91255a".into());
    graph.service_principal_type = Some("Application".into());
    let mut ms_priv = app("obj-ms-priv", "ms-app", &[]);
    ms_priv.app_owner_organization_id = Some("72F988BF-86F1-41AF-91AB-2D7CD011DB47".into());
    Directory {
        applications: vec![billing],
        service_principals: vec![sp1, mi, graph, ms_priv],
        grants: vec![
            Grant {
                principal_id: "obj-sp-1".into(),
                user: false,
                reason: "rbac Owner on /subscriptions/s".into(),
            },
            Grant {
                principal_id: "obj-sp-1".into(),
                user: false,
                reason: "directory role Global Administrator".into(),
            },
            Grant {
                principal_id: "obj-ms-priv".into(),
                user: false,
                reason: "directory role Application Administrator".into(),
            },
            Grant {
                principal_id: "user-1".into(),
                user: true,
                reason: "directory role Global Administrator".into(),
            },
            Grant {
                principal_id: "user-1".into(),
                user: true,
                reason: "rbac Owner on /".into(),
            },
        ],
        activity: Some(Activity {
            by_app: [("app-1".to_string(), T0 - 3600)].into(),
            by_key: [("key-1".to_string(), T0 - 60)].into(),
        }),
    }
}

#[test]
fn entra_identities_privilege_humans_and_credentials() {
    let linked: HashSet<String> = ["app-1/abc".to_string()].into();
    let s = Settings {
        tenant: "tenant-1",
        observed_at: T0,
        team_tag: "team",
        linked: &linked,
    };
    let scan = entra_scan(&s, &directory());
    assert_eq!(scan.scope, "entra");
    let ids: Vec<(&str, &str, bool)> = scan
        .identities
        .iter()
        .map(|i| (i.id.as_str(), i.kind, i.human))
        .collect();
    assert_eq!(
        ids,
        [
            ("obj-app-1", "application", false),
            ("obj-sp-1", "service_principal", false),
            ("obj-mi", "managed_identity", false),
            // Microsoft's Graph service principal is skipped; a privileged
            // first-party one is counted.
            ("obj-ms-priv", "service_principal", false),
            ("user:user-1", "user", true),
        ]
    );
    let by = |id: &str| scan.identities.iter().find(|i| i.id == id).unwrap();
    let a = by("obj-app-1");
    assert_eq!(
        (a.team.as_deref(), a.created_at, a.last_used_at, a.usage_tracked, a.privileged.as_deref()),
        (Some("payments"), Some(1_767_225_600), Some(T0 - 3600), true, None),
        "the application's use is its service principal's sign-in (app ids matched case-insensitively)"
    );
    let sp = by("obj-sp-1");
    assert_eq!(
        sp.privileged.as_deref(),
        Some("directory role Global Administrator, rbac Owner on /subscriptions/s")
    );
    assert!(sp.standing);
    assert_eq!(sp.last_used_at, Some(T0 - 3600));
    assert_eq!(
        sp.team.as_deref(),
        Some("payments"),
        "its application's team"
    );
    assert_eq!(by("obj-mi").team.as_deref(), Some("infra"));
    assert_eq!(
        by("obj-ms-priv").privileged.as_deref(),
        Some("directory role Application Administrator")
    );
    assert_eq!(
        scan.identities.iter().filter(|i| i.human).count(),
        1,
        "one user, two grants"
    );

    let creds: Vec<(&str, &str, CredentialState)> = scan
        .credentials
        .iter()
        .map(|c| (c.id.as_str(), c.kind, c.state))
        .collect();
    assert_eq!(
        creds,
        [
            ("key-1", "client_secret", CredentialState::Active),
            ("key-2", "client_secret", CredentialState::Inactive),
            ("key-3", "certificate", CredentialState::Active),
        ]
    );
    let k1 = &scan.credentials[0];
    assert_eq!(k1.identity.as_deref(), Some("obj-app-1"));
    assert_eq!(
        (k1.created_at, k1.last_rotated_at, k1.expires_at),
        (
            Some(1_767_225_600),
            Some(1_767_225_600),
            Some(1_798_761_600)
        )
    );
    assert_eq!(k1.last_used_at, Some(T0 - 60));
    assert_eq!(k1.team.as_deref(), Some("payments"));
    assert_eq!(k1.account, "tenant-1");
    // The leak named `app-1/abc`: the credential with that app and hint
    // carries the alias; the others none.
    assert_eq!(k1.aliases, ["app-1/abc"]);
    assert!(scan.credentials[1].aliases.is_empty() && scan.credentials[2].aliases.is_empty());
}

#[test]
fn without_sign_in_reports_use_is_not_tracked() {
    let mut d = directory();
    d.activity = None;
    let linked = HashSet::new();
    let s = Settings {
        tenant: "t",
        observed_at: T0,
        team_tag: "team",
        linked: &linked,
    };
    let scan = entra_scan(&s, &d);
    assert!(scan
        .identities
        .iter()
        .all(|i| !i.usage_tracked && i.last_used_at.is_none()));
    assert!(scan
        .credentials
        .iter()
        .all(|c| c.last_used_at.is_none() && c.aliases.is_empty()));
}

#[test]
fn vault_secrets_attributes_tags_and_values() {
    let item = |name: &str, enabled: bool, tags: &[(&str, &str)]| VaultSecretItem {
        id: format!("https://kv1.vault.azure.net/secrets/{name}"),
        attributes: VaultAttributes {
            enabled: Some(enabled),
            exp: Some(T0 + 86_400),
            created: Some(T0 - 100),
            updated: Some(T0 - 50),
        },
        tags: tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        managed: None,
    };
    let secrets = vec![
        VaultSecret {
            item: item("db", true, &[("team", "payments")]),
            value_hash: Some([7; 32]),
        },
        VaultSecret {
            item: item("old", false, &[]),
            value_hash: None,
        },
    ];
    let linked = HashSet::new();
    let s = Settings {
        tenant: "t",
        observed_at: T0,
        team_tag: "team",
        linked: &linked,
    };
    let scan = vault_scan(&s, "https://kv1.vault.azure.net", &secrets);
    assert_eq!(scan.scope, "keyvault/kv1.vault.azure.net");
    let db = &scan.credentials[0];
    assert_eq!(
        (
            db.id.as_str(),
            db.kind,
            db.state,
            db.team.as_deref(),
            db.created_at,
            db.last_rotated_at,
            db.expires_at
        ),
        (
            "https://kv1.vault.azure.net/secrets/db",
            "secret",
            CredentialState::Active,
            Some("payments"),
            Some(T0 - 100),
            Some(T0 - 100),
            Some(T0 + 86_400)
        )
    );
    assert_eq!(db.value_hashes, vec![[7; 32]]);
    assert_eq!(scan.credentials[1].state, CredentialState::Inactive);
    assert!(scan.identities.is_empty());
}
