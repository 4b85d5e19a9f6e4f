//! Unit tests of `iam.rs`: policy analysis, identity mapping, access-key
//! reuse from the credential report, service-linked roles.

use super::*;
use crate::sources::aws::report::KeySlot;

fn docs_fixture() -> serde_json::Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/aws/policies.json"
    ))
    .expect("fixture");
    serde_json::from_str(&text).expect("json")
}

fn doc(name: &str) -> String {
    docs_fixture()[name].as_str().expect("doc").to_string()
}

const ADMIN: &str = "arn:aws:iam::aws:policy/AdministratorAccess";

#[test]
fn statement_analysis() {
    assert!(doc_is_admin(&doc("admin_string")));
    assert!(doc_is_admin(&doc("admin_list")));
    assert!(!doc_is_admin(&doc("not_action")));
    assert!(!doc_is_admin(&doc("deny_all")));
    assert!(!doc_is_admin(&doc("scoped_resource")));
    assert!(!doc_is_admin(&doc("iam_star")));
    assert!(!doc_is_admin(&doc("garbage")));
}

fn user(name: &str) -> Principal {
    Principal {
        name: name.to_string(),
        id: format!("AIDA{}", name.to_uppercase()),
        arn: format!("arn:aws:iam::123456789012:user/{name}"),
        path: "/".to_string(),
        created_at: Some(100),
        ..Default::default()
    }
}

fn details() -> AuthDetails {
    let mut d = AuthDetails::default();
    d.groups.insert(
        "admins".into(),
        Group {
            attached: vec![ADMIN.into()],
            inline: vec![],
        },
    );
    d.groups.insert(
        "wild".into(),
        Group {
            attached: vec![],
            inline: vec![doc("admin_list")],
        },
    );
    d.local_policies.insert(
        "arn:aws:iam::123456789012:policy/cm".into(),
        doc("admin_string"),
    );
    d.local_policies.insert(
        "arn:aws:iam::123456789012:policy/narrow".into(),
        doc("scoped_resource"),
    );
    d
}

#[test]
fn privilege_reasons() {
    let d = details();
    let arns = vec![ADMIN.to_string()];
    let mut direct = user("direct");
    direct.attached = vec![ADMIN.into()];
    assert_eq!(
        privilege(&direct, &d, &arns).as_deref(),
        Some("AdministratorAccess")
    );
    let mut grouped = user("grouped");
    grouped.groups = vec!["admins".into()];
    assert_eq!(
        privilege(&grouped, &d, &arns).as_deref(),
        Some("AdministratorAccess")
    );
    let mut group_inline = user("gi");
    group_inline.groups = vec!["wild".into()];
    assert_eq!(
        privilege(&group_inline, &d, &arns).as_deref(),
        Some("statement */*")
    );
    let mut inline = user("inline");
    inline.inline = vec![doc("admin_string")];
    assert_eq!(
        privilege(&inline, &d, &arns).as_deref(),
        Some("statement */*")
    );
    let mut cm = user("cm");
    cm.attached = vec!["arn:aws:iam::123456789012:policy/cm".into()];
    assert_eq!(privilege(&cm, &d, &arns).as_deref(), Some("statement */*"));
    let mut plain = user("plain");
    plain.attached = vec![
        "arn:aws:iam::aws:policy/ReadOnlyAccess".into(),
        "arn:aws:iam::123456789012:policy/narrow".into(),
    ];
    plain.inline = vec![doc("not_action")];
    plain.groups = vec!["missing-group".into()];
    assert_eq!(privilege(&plain, &d, &arns), None);
    // A custom privileged list.
    assert_eq!(
        privilege(
            &plain,
            &d,
            &["arn:aws:iam::aws:policy/ReadOnlyAccess".into()]
        )
        .as_deref(),
        Some("ReadOnlyAccess")
    );
}

fn row(keys: Vec<KeySlot>, console: bool) -> ReportRow {
    ReportRow {
        user: "u".into(),
        arn: "arn:aws:iam::123456789012:user/u".into(),
        password_enabled: console,
        password_last_used: if console { Some(50) } else { None },
        keys,
    }
}

fn known(id: &str, created: i64, state: CredentialState) -> KnownCredential {
    KnownCredential {
        scope: "iam".into(),
        kind: "access_key".into(),
        id: id.into(),
        identity: Some("AIDAU".into()),
        created_at: Some(created),
        state,
    }
}

#[test]
fn identities_map_users_and_roles() {
    let mut d = details();
    let mut u = user("alice");
    u.tags = vec![("team".into(), "payments".into())];
    u.attached = vec![ADMIN.into()];
    d.users.push(u);
    d.roles.push(Principal {
        name: "app".into(),
        id: "AROAAPP".into(),
        arn: "arn:aws:iam::123456789012:role/app".into(),
        path: "/".into(),
        last_used_at: Some(77),
        ..Default::default()
    });
    d.roles.push(Principal {
        name: "AWSServiceRoleForX".into(),
        id: "AROASLR".into(),
        arn: "arn:aws:iam::123456789012:role/aws-service-role/x/AWSServiceRoleForX".into(),
        path: "/aws-service-role/x.amazonaws.com/".into(),
        ..Default::default()
    });
    let mut report = HashMap::new();
    let mut r = row(
        vec![KeySlot {
            active: true,
            last_rotated: 10,
            last_used: Some(90),
        }],
        true,
    );
    r.user = "alice".into();
    report.insert("alice".to_string(), r);
    let ids = identities(&d, "123456789012", &report, &Policy::default());
    assert_eq!(ids.len(), 2);
    let a = &ids[0];
    assert_eq!(
        (a.kind, a.id.as_str(), a.name.as_str()),
        ("user", "AIDAALICE", "alice")
    );
    assert_eq!(a.team.as_deref(), Some("payments"));
    assert_eq!(a.privileged.as_deref(), Some("AdministratorAccess"));
    assert!(a.standing && a.human && a.usage_tracked);
    assert_eq!(a.last_used_at, Some(90));
    let r = &ids[1];
    assert_eq!((r.kind, r.id.as_str()), ("role", "AROAAPP"));
    assert_eq!(r.last_used_at, Some(77));
    assert!(!r.human && !r.standing && r.privileged.is_none());
    assert_eq!(d.account().as_deref(), Some("123456789012"));
}

#[test]
fn keys_reused_when_report_matches_known() {
    let u = Principal {
        id: "AIDAU".into(),
        ..user("u")
    };
    let r = row(
        vec![
            KeySlot {
                active: true,
                last_rotated: 10,
                last_used: Some(20),
            },
            KeySlot {
                active: false,
                last_rotated: 30,
                last_used: None,
            },
        ],
        false,
    );
    let k1 = known("AKIA1", 10, CredentialState::Active);
    let k2 = known("AKIA2", 30, CredentialState::Inactive);
    let KeyPlan::Known(creds) = plan_keys(&u, Some("t".into()), Some(&r), &[&k2, &k1], false)
    else {
        panic!("expected reuse");
    };
    assert_eq!(creds.len(), 2);
    assert_eq!(creds[0].id, "AKIA1");
    assert_eq!(creds[0].last_used_at, Some(20));
    assert_eq!(creds[0].state, CredentialState::Active);
    assert_eq!(creds[0].identity.as_deref(), Some("AIDAU"));
    assert_eq!(creds[0].team.as_deref(), Some("t"));
    assert_eq!(creds[1].id, "AKIA2");
    assert_eq!(creds[1].state, CredentialState::Inactive);
    assert_eq!(creds[1].last_rotated_at, Some(30));
    // Linked to a leak: always listed.
    assert_eq!(
        plan_keys(&u, None, Some(&r), &[&k1, &k2], true),
        KeyPlan::List
    );
    // A state changed, a key added or removed: listed.
    let k1i = known("AKIA1", 10, CredentialState::Inactive);
    assert_eq!(
        plan_keys(&u, None, Some(&r), &[&k1i, &k2], false),
        KeyPlan::List
    );
    assert_eq!(plan_keys(&u, None, Some(&r), &[&k1], false), KeyPlan::List);
    assert_eq!(
        plan_keys(&u, None, Some(&row(vec![], false)), &[&k1], false),
        KeyPlan::List
    );
    // No keys anywhere: nothing to call.
    assert_eq!(
        plan_keys(&u, None, Some(&row(vec![], false)), &[], false),
        KeyPlan::Known(vec![])
    );
    // Missing from the report: only "no keys known" is trusted.
    assert_eq!(
        plan_keys(&u, None, None, &[], false),
        KeyPlan::Known(vec![])
    );
    assert_eq!(plan_keys(&u, None, None, &[&k1], false), KeyPlan::List);
}

#[test]
fn listed_keys_take_last_use_from_matching_slot() {
    let u = user("u");
    let r = row(
        vec![KeySlot {
            active: true,
            last_rotated: 10,
            last_used: Some(20),
        }],
        false,
    );
    let listed = vec![
        ListedKey {
            id: "AKIA1".into(),
            active: true,
            created_at: Some(10),
        },
        ListedKey {
            id: "AKIA9".into(),
            active: false,
            created_at: Some(99),
        },
    ];
    let (creds, missing) = keys_from_listing(&u, None, &listed, Some(&r));
    assert_eq!(missing, vec![1]);
    assert_eq!(creds[0].last_used_at, Some(20));
    assert_eq!(creds[1].state, CredentialState::Inactive);
    assert_eq!(creds[1].created_at, Some(99));
    assert_eq!(creds[1].last_used_at, None);
}

#[test]
fn account_and_service_linked() {
    assert_eq!(
        account_of("arn:aws:iam::123456789012:user/x").as_deref(),
        Some("123456789012")
    );
    assert_eq!(account_of("nonsense"), None);
    let slr = Principal {
        path: "/aws-service-role/elasticloadbalancing.amazonaws.com/".into(),
        ..Default::default()
    };
    assert!(is_service_linked(&slr));
    assert!(!is_service_linked(&user("x")));
}
