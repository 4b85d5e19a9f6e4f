//! Unit tests of the inventory built from a cluster's objects: privilege
//! through every kind of binding, token states, scopes.

use super::*;
use crate::model::{CredentialState, ErrorReason, ObservationItem, SourceError};
use std::collections::{BTreeMap, HashSet};

fn sa(name: &str, uid: &str) -> ServiceAccount {
    ServiceAccount {
        name: name.into(),
        uid: uid.into(),
        created_at: Some(1_000),
        team: None,
    }
}

fn subject(kind: &str, name: &str, ns: Option<&str>) -> Subject {
    Subject {
        kind: kind.into(),
        name: name.into(),
        namespace: ns.map(Into::into),
    }
}

fn bind(ns: Option<&str>, kind: &str, role: &str, subjects: Vec<Subject>) -> Binding {
    Binding {
        namespace: ns.map(Into::into),
        name: format!("b-{role}"),
        role_kind: kind.into(),
        role_name: role.into(),
        subjects,
    }
}

#[test]
fn privilege_through_every_binding_kind_and_token_states() {
    let cluster = Cluster {
        cluster_roles: [("edit-all".to_string(), true), ("view".to_string(), false)].into(),
        cluster_role_bindings: vec![bind(
            None,
            "ClusterRole",
            "view",
            vec![subject("Group", "system:serviceaccounts", None)],
        )],
        namespace_teams: [("web".to_string(), "web-team".to_string())].into(),
    };
    let mut web = Namespace {
        service_accounts: vec![
            sa("a", "u-a"),
            sa("b", "u-b"),
            sa("c", "u-c"),
            sa("d", "u-d"),
        ],
        ..Default::default()
    };
    // a: RoleBinding in `ops` to a ClusterRole granting * on * (another namespace's binding).
    // b: bound to a role named in policy.
    // c: a Role without wildcard; d: nothing.
    web.roles.insert("reader".into(), false);
    web.role_bindings.push(bind(
        Some("web"),
        "Role",
        "reader",
        vec![subject("ServiceAccount", "c", None)],
    ));
    web.role_bindings.push(bind(
        Some("web"),
        "ClusterRole",
        "platform-admin",
        vec![subject("ServiceAccount", "b", None)],
    ));
    // Every service account of `jobs`, through its group, is cluster-admin in web.
    web.role_bindings.push(bind(
        Some("web"),
        "ClusterRole",
        "cluster-admin",
        vec![subject("Group", "system:serviceaccounts:jobs", None)],
    ));
    let jobs = Namespace {
        service_accounts: vec![sa("j", "u-j")],
        ..Default::default()
    };
    web.token_secrets = vec![
        TokenSecret {
            name: "t-ok".into(),
            created_at: Some(10),
            sa_name: Some("a".into()),
            sa_uid: Some("u-a".into()),
            last_used_at: Some(5_000),
            invalid: false,
        },
        TokenSecret {
            name: "t-old-uid".into(),
            created_at: Some(10),
            sa_name: Some("a".into()),
            sa_uid: Some("u-previous".into()),
            last_used_at: None,
            invalid: false,
        },
        TokenSecret {
            name: "t-invalid".into(),
            created_at: Some(10),
            sa_name: Some("d".into()),
            sa_uid: Some("u-d".into()),
            last_used_at: None,
            invalid: true,
        },
    ];
    web.used.insert("d".into());
    let ops = Namespace {
        role_bindings: vec![bind(
            Some("ops"),
            "ClusterRole",
            "edit-all",
            vec![subject("ServiceAccount", "a", Some("web"))],
        )],
        ..Default::default()
    };
    let linked: HashSet<String> = [
        "bound/u-b/9000".to_string(),
        "bound/u-elsewhere/9000".into(),
        "AKIAIOSFODNN7EXAMPLE".into(),
    ]
    .into();
    let roles = vec!["platform-admin".to_string()];
    let s = Settings {
        cluster_name: "prod",
        privileged_roles: &roles,
        observed_at: 7_300,
        linked: &linked,
    };
    let mut by_ns = BTreeMap::new();
    by_ns.insert("web".to_string(), Ok(web));
    by_ns.insert("ops".to_string(), Ok(ops));
    by_ns.insert("jobs".to_string(), Ok(jobs));
    by_ns.insert(
        "locked".to_string(),
        Err(SourceError::new(
            ErrorReason::Auth,
            "list serviceaccounts in namespace locked: HTTP 403 Forbidden",
        )
        .with_status(403)),
    );
    let out = observations(&s, &cluster, by_ns).unwrap();
    let web = out
        .iter()
        .find_map(|i| match i {
            ObservationItem::Inventory(inv) if inv.scope == "ns/web" => Some(inv),
            _ => None,
        })
        .unwrap();
    let priv_of = |n: &str| {
        web.identities
            .iter()
            .find(|i| i.name == format!("web/{n}"))
            .unwrap()
            .privileged
            .clone()
    };
    assert_eq!(
        priv_of("a").as_deref(),
        Some("RoleBinding ops/b-edit-all → ClusterRole edit-all (* on *)")
    );
    assert_eq!(
        priv_of("b").as_deref(),
        Some("RoleBinding web/b-platform-admin → ClusterRole platform-admin")
    );
    assert_eq!(priv_of("c"), None);
    assert!(web
        .identities
        .iter()
        .all(|i| i.standing == i.privileged.is_some()
            && i.team.as_deref() == Some("web-team")
            && i.account == "prod"));
    let used = |n: &str| {
        web.identities
            .iter()
            .find(|i| i.name == format!("web/{n}"))
            .unwrap()
            .last_used_at
    };
    assert_eq!(used("a"), Some(5_000), "token last use");
    assert_eq!(used("d"), Some(7_200), "a running pod: the poll's hour");
    assert_eq!(used("c"), None);
    let state = |id: &str| {
        web.credentials
            .iter()
            .find(|c| c.id == id)
            .map(|c| (c.kind, c.state, c.identity.clone(), c.expires_at))
    };
    assert_eq!(
        state("web/t-ok@u-a"),
        Some((
            "legacy_token",
            CredentialState::Active,
            Some("u-a".into()),
            None
        ))
    );
    assert_eq!(
        state("web/t-old-uid@u-previous"),
        Some(("legacy_token", CredentialState::Inactive, None, None))
    );
    assert_eq!(
        state("web/t-invalid@u-d"),
        Some((
            "legacy_token",
            CredentialState::Inactive,
            Some("u-d".into()),
            None
        ))
    );
    assert_eq!(
        state("bound/u-b/9000"),
        Some((
            "bound_token",
            CredentialState::Active,
            Some("u-b".into()),
            Some(9000)
        ))
    );
    assert_eq!(
        web.credentials.len(),
        4,
        "a bound token of another cluster is not reported"
    );
    // The failed namespace keeps its state; every scope is listed.
    assert!(out.iter().any(
        |i| matches!(i, ObservationItem::TargetFailed { target, .. } if target == "ns/locked")
    ));
    let scopes = out
        .iter()
        .find_map(|i| match i {
            ObservationItem::InventoryScopes(v) => Some(v.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        scopes,
        ["cluster", "ns/jobs", "ns/locked", "ns/ops", "ns/web"]
    );
    let jobs = out
        .iter()
        .find_map(|i| match i {
            ObservationItem::Inventory(inv) if inv.scope == "ns/jobs" => Some(inv),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        jobs.identities[0].privileged.as_deref(),
        Some("RoleBinding web/b-cluster-admin → ClusterRole cluster-admin")
    );
}
