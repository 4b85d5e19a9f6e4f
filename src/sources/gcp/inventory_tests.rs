//! Unit tests of the inventory built from projects as read: privilege at
//! every level, key and secret states, failed scopes, humans, and the
//! links a leaked key file gives.

use super::inventory::{iam_scan, secrets_scan};
use super::key::{key_id, key_links};
use super::*;
use crate::model::{
    CredentialRef, CredentialState, ErrorReason, ObservationItem, ObservedCredential,
    ObservedIdentity, SourceError,
};

const NOW: i64 = 1_800_000_000;
const DAY: i64 = 86_400;
const K1: &str = "1111111111111111111111111111111111111111";
const K2: &str = "2222222222222222222222222222222222222222";
const K3: &str = "3333333333333333333333333333333333333333";

fn roles() -> Vec<String> {
    vec!["roles/owner".into(), "roles/editor".into()]
}

fn key(sa: &str, id: &str, after: i64, before: Option<i64>, disabled: bool) -> Key {
    Key {
        name: format!("projects/acme-prod/serviceAccounts/{sa}/keys/{id}"),
        valid_after: Some(after),
        valid_before: before,
        disabled,
    }
}

fn bind(on: &str, role: &str, members: &[&str], conditional: bool) -> Binding {
    Binding {
        on: on.into(),
        role: role.into(),
        members: members.iter().map(|m| m.to_string()).collect(),
        conditional,
    }
}

fn project() -> Project {
    Project {
        id: "acme-prod".into(),
        team: Some("payments".into()),
    }
}

const CI: &str = "ci@acme-prod.iam.gserviceaccount.com";
const APP: &str = "app@acme-prod.iam.gserviceaccount.com";
const OFF: &str = "off@acme-prod.iam.gserviceaccount.com";

fn iam(activity: Option<Activity>) -> Iam {
    Iam {
        accounts: vec![
            ServiceAccount {
                email: CI.into(),
                unique_id: "101".into(),
                disabled: false,
                keys: vec![
                    // Never expires (Google's sentinel).
                    key(CI, K1, NOW - 400 * DAY, Some(253_402_300_799), false),
                    key(CI, K2, NOW - 10 * DAY, Some(NOW - DAY), false), // expired
                ],
            },
            ServiceAccount {
                email: APP.into(),
                unique_id: "102".into(),
                disabled: false,
                keys: vec![key(APP, K3, NOW - 5 * DAY, Some(NOW + 30 * DAY), true)],
            },
            ServiceAccount {
                email: OFF.into(),
                unique_id: "103".into(),
                disabled: true,
                keys: vec![key(
                    OFF,
                    "4444444444444444444444444444444444444444",
                    NOW - DAY,
                    None,
                    false,
                )],
            },
        ],
        bindings: vec![
            bind(
                "project acme-prod",
                "roles/viewer",
                &[&format!("serviceAccount:{CI}"), "user:alice@example.com"],
                false,
            ),
            bind(
                "folders/7",
                "roles/editor",
                &[&format!("serviceAccount:{CI}")],
                false,
            ),
            bind(
                "organizations/1",
                "roles/owner",
                &[&format!("serviceAccount:{APP}"), "user:bob@example.com"],
                true,
            ),
            // Another project's account and a service agent: no identity.
            bind(
                "project acme-prod",
                "roles/owner",
                &[
                    "serviceAccount:x@other-proj.iam.gserviceaccount.com",
                    "serviceAccount:service-1@gcp-sa-pubsub.iam.gserviceaccount.com",
                    "group:sre@example.com",
                ],
                false,
            ),
        ],
        activity,
    }
}

fn settings(r: &[String]) -> Settings<'_> {
    Settings {
        privileged_roles: r,
        observed_at: NOW,
    }
}

#[test]
fn accounts_keys_privilege_and_activity() {
    let r = roles();
    let act = Activity {
        keys: [(K1.to_string(), NOW - 3 * DAY)].into(),
        accounts: [("102".to_string(), NOW - 2 * DAY)].into(),
    };
    let scan = iam_scan(&settings(&r), &project(), &iam(Some(act)));
    assert_eq!(scan.scope, "acme-prod");
    let ident = |uid: &str,
                 name: &str,
                 created: Option<i64>,
                 used: Option<i64>,
                 priv_: Option<&str>,
                 standing: bool| {
        ObservedIdentity {
            provider: "gcp",
            account: "acme-prod".into(),
            kind: "service_account",
            id: uid.into(),
            name: name.into(),
            created_at: created,
            last_used_at: used,
            usage_tracked: true,
            team: Some("payments".into()),
            privileged: priv_.map(Into::into),
            standing,
            human: false,
        }
    };
    assert_eq!(
        scan.identities,
        vec![
            ident(
                "101",
                CI,
                Some(NOW - 400 * DAY),
                Some(NOW - 3 * DAY),
                Some("roles/editor on folders/7"),
                true
            ),
            ident(
                "102",
                APP,
                Some(NOW - 5 * DAY),
                Some(NOW - 2 * DAY),
                Some("roles/owner on organizations/1 (conditional)"),
                false
            ),
            ident("103", OFF, Some(NOW - DAY), None, None, false),
        ]
    );
    let cred =
        |id: &str, owner: &str, created: i64, expires: Option<i64>, used: Option<i64>, state| {
            ObservedCredential {
                provider: "gcp",
                account: "acme-prod".into(),
                kind: "sa_key",
                id: id.into(),
                identity: Some(owner.into()),
                team: Some("payments".into()),
                created_at: Some(created),
                last_rotated_at: Some(created),
                expires_at: expires,
                last_used_at: used,
                state,
                rotation_enabled: false,
                value_hashes: vec![],
                aliases: Vec::new(),
            }
        };
    use CredentialState::{Active, Inactive};
    assert_eq!(
        scan.credentials,
        vec![
            cred(
                K1,
                "101",
                NOW - 400 * DAY,
                None,
                Some(NOW - 3 * DAY),
                Active
            ),
            cred(K2, "101", NOW - 10 * DAY, Some(NOW - DAY), None, Inactive),
            cred(
                K3,
                "102",
                NOW - 5 * DAY,
                Some(NOW + 30 * DAY),
                None,
                Inactive
            ),
            cred(
                "4444444444444444444444444444444444444444",
                "103",
                NOW - DAY,
                None,
                None,
                Inactive
            ),
        ]
    );
    // Without activity, use is not tracked (never counted unused).
    let scan = iam_scan(&settings(&r), &project(), &iam(None));
    assert!(scan
        .identities
        .iter()
        .all(|i| !i.usage_tracked && i.last_used_at.is_none()));
}

#[test]
fn secrets_age_rotation_expiry_and_state() {
    let r = roles();
    let secrets = vec![
        Secret {
            name: "projects/123/secrets/db".into(),
            created_at: Some(NOW - 300 * DAY),
            team: Some("data".into()),
            next_rotation: Some(NOW + DAY),
            expires_at: Some(NOW + 60 * DAY),
            versions: vec![
                (Some(NOW - 300 * DAY), true),
                (Some(NOW - 20 * DAY), true),
                (Some(NOW - 2 * DAY), false), // newest, but disabled
            ],
        },
        Secret {
            name: "projects/123/secrets/old".into(),
            created_at: Some(NOW - 100 * DAY),
            team: None,
            next_rotation: Some(NOW - DAY), // overdue
            expires_at: None,
            versions: vec![(Some(NOW - 100 * DAY), false)],
        },
    ];
    let scan = secrets_scan(&settings(&r), &project(), &secrets);
    assert_eq!(scan.scope, "acme-prod/secretmanager");
    assert!(scan.identities.is_empty());
    let c = &scan.credentials;
    assert_eq!(
        (
            c[0].id.as_str(),
            c[0].kind,
            c[0].team.as_deref(),
            c[0].created_at,
            c[0].last_rotated_at,
            c[0].expires_at,
            c[0].state,
            c[0].rotation_enabled,
            c[0].identity.as_deref()
        ),
        (
            "projects/123/secrets/db",
            "secret",
            Some("data"),
            Some(NOW - 300 * DAY),
            Some(NOW - 20 * DAY),
            Some(NOW + 60 * DAY),
            CredentialState::Active,
            true,
            None
        )
    );
    assert_eq!(
        (
            c[1].team.as_deref(),
            c[1].last_rotated_at,
            c[1].state,
            c[1].rotation_enabled
        ),
        (
            Some("payments"),
            Some(NOW - 100 * DAY),
            CredentialState::Inactive,
            false
        )
    );
}

#[test]
fn a_failed_project_fails_only_its_scopes_and_keeps_the_humans() {
    let r = roles();
    let other = Project {
        id: "acme-dev".into(),
        team: None,
    };
    let down =
        SourceError::new(ErrorReason::Http5xx, "project acme-dev: HTTP 503").with_status(503);
    let denied =
        SourceError::new(ErrorReason::Auth, "project acme-prod: HTTP 403").with_status(403);
    let all_ok = [
        ProjectData {
            project: project(),
            iam: Ok(iam(None)),
            secrets: Err(denied.clone()),
        },
        ProjectData {
            project: other.clone(),
            iam: Ok(Iam::default()),
            secrets: Ok(vec![]),
        },
    ];
    let items = observations(&settings(&r), &all_ok).unwrap();
    let names: Vec<String> = items.iter().map(describe).collect();
    assert_eq!(
        names,
        [
            "inventory humans/all 2",
            "inventory acme-prod 3",
            "failed acme-prod/secretmanager auth",
            "inventory acme-dev 0",
            "inventory acme-dev/secretmanager 0",
            "scopes humans/all,acme-prod,acme-prod/secretmanager,acme-dev,acme-dev/secretmanager",
        ]
    );
    let ObservationItem::Inventory(h) = &items[0] else {
        panic!()
    };
    assert_eq!(
        h.identities
            .iter()
            .map(|i| (i.id.as_str(), i.kind, i.human))
            .collect::<Vec<_>>(),
        [
            ("user:alice@example.com", "user", true),
            ("user:bob@example.com", "user", true)
        ]
    );
    let one_down = [
        ProjectData {
            project: project(),
            iam: Ok(iam(None)),
            secrets: Ok(vec![]),
        },
        ProjectData {
            project: other,
            iam: Err(down.clone()),
            secrets: Err(down),
        },
    ];
    let names: Vec<String> = observations(&settings(&r), &one_down)
        .unwrap()
        .iter()
        .map(describe)
        .collect();
    assert_eq!(
        names,
        [
            "inventory acme-prod 3",
            "inventory acme-prod/secretmanager 0",
            "failed acme-dev http_5xx",
            "failed acme-dev/secretmanager http_5xx",
            "scopes humans/all,acme-prod,acme-prod/secretmanager,acme-dev,acme-dev/secretmanager",
        ],
        "no humans scope while a project's IAM failed: they keep their state"
    );
    // A rejected credential fails the whole poll.
    let unauth = SourceError::new(ErrorReason::Auth, "HTTP 401").with_status(401);
    let bad = [ProjectData {
        project: project(),
        iam: Err(unauth.clone()),
        secrets: Err(unauth),
    }];
    assert_eq!(
        observations(&settings(&r), &bad).unwrap_err().status,
        Some(401)
    );
}

fn describe(i: &ObservationItem) -> String {
    match i {
        ObservationItem::Inventory(s) => format!("inventory {} {}", s.scope, s.identities.len()),
        ObservationItem::TargetFailed { target, error } => {
            format!("failed {target} {}", error.reason)
        }
        ObservationItem::InventoryScopes(v) => format!("scopes {}", v.join(",")),
        other => format!("{other:?}"),
    }
}

#[test]
fn leaked_key_files_link_by_private_key_id() {
    let file = format!(
        "{{\n  \"type\": \"service_account\",\n  \"project_id\": \"acme-prod\",\n  \"private_key_id\": \"{}\",\n  \"private_key\": \"-----BEGIN PRIVATE KEY-----\\nfake\\n-----END PRIVATE KEY-----\\n\",\n  \"client_email\": \"{CI}\"\n}}",
        K1.to_uppercase()
    );
    let link = |id: &str| CredentialRef {
        provider: "gcp",
        id: id.into(),
    };
    assert_eq!(
        key_links(&file),
        [link(K1)],
        "lowercased like Google's key names"
    );
    // Escaped inside a JSON string (an env file, a gitleaks match), twice.
    let escaped = serde_json::to_string(&file).unwrap();
    assert_eq!(key_links(&format!("{escaped} {escaped}")), [link(K1)]);
    assert!(key_links("\"private_key_id\": \"short\"").is_empty());
    assert!(
        key_links(CI).is_empty(),
        "an email alone (trufflehog Raw) links nothing"
    );
    // Through the scanners' extraction, beside the other providers.
    let links = crate::sources::reports::files::credential_links(&[
        Some(CI),
        Some(&file),
        Some("AKIAABCDEFGHIJKLMNOP"),
    ]);
    assert_eq!(
        links,
        [
            CredentialRef {
                provider: "aws",
                id: "AKIAABCDEFGHIJKLMNOP".into()
            },
            link(K1)
        ]
    );
    assert_eq!(
        key_id(&format!("projects/p/serviceAccounts/{CI}/keys/{K2}")),
        K2
    );
}
