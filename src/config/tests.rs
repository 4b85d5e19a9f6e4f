use super::test_support::{env_of, errs, ok};
use super::*;

#[test]
fn defaults_apply() {
    let c = ok("sources: []");
    assert_eq!(c.state.path, PathBuf::from("/etc/nhi/nhi-exporter.db"));
    assert_eq!(
        c.state.hash_key_path(),
        PathBuf::from("/etc/nhi/nhi-exporter.db.hmac.key")
    );
    assert_eq!(
        c.policy.max_credential_age,
        Duration::from_secs(90 * 86_400)
    );
    assert_eq!(c.policy.unused_after, Duration::from_secs(90 * 86_400));
    assert_eq!(c.policy.stale_after, None);
    assert_eq!(c.policy.team_tag, "team");
    let labels: Vec<_> = c.policy.windows.iter().map(|w| w.label.as_str()).collect();
    assert_eq!(labels, ["7d", "30d", "90d"]);
    assert_eq!(c.policy.max_secret_types, 100);
    assert_eq!(c.policy.privileged.vault_policies, ["root"]);
    assert_eq!(c.policy.privileged.kubernetes_roles, ["cluster-admin"]);
    assert_eq!(c.policy.privileged.aws_policies.len(), 3);
    assert!(!c.labels.team_enabled);
    assert_eq!(c.labels.team_max_values, 50);
    assert!(!c.labels.scope_enabled);
    assert_eq!(c.labels.scope_max_values, 1000);
    let c = ok("labels: {scope: {enabled: true, max_values: 2}}");
    assert!(c.labels.scope_enabled);
    assert_eq!(c.labels.scope_max_values, 2);
    assert!(!c.labels.team_enabled);
}

#[test]
fn empty_file_is_valid() {
    let c = ok("");
    assert!(c.sources.is_empty());
}

#[test]
fn stale_default_is_three_intervals() {
    let c = ok("sources: [{name: a, type: gitleaks, interval: 2m, paths: [a]}]");
    assert_eq!(
        c.sources[0].stale_after(&c.policy),
        Duration::from_secs(360)
    );
}

// One invalid input per rule, each naming its key path.
#[test]
fn each_rule_names_its_key() {
    let cases: &[(&str, &str)] = &[
        ("bogus: 1", "bogus: unknown key"),
        ("state: {paht: x}", "state.paht: unknown key \"paht\""),
        ("policy: {max_credential_age: 5x}", "policy.max_credential_age: invalid duration"),
        ("policy: {unused_after: 0}", "policy.unused_after: must be greater than 0"),
        ("policy: {unused_after: 90}", "policy.unused_after: invalid duration 90: missing unit"),
        ("policy: {stale_after: 0}", "policy.stale_after: must be greater than 0"),
        ("policy: {team_tag: ''}", "policy.team_tag: must not be empty"),
        ("policy: {windows: []}", "policy.windows: must list at least one window"),
        ("policy: {windows: [7d, 168h]}", "policy.windows[1]: duplicate window 7d"),
        ("policy: {windows: [10s]}", "policy.windows[0]: must be at least 1m"),
        ("policy: {max_secret_types: 0}", "policy.max_secret_types: must be between 1 and 10000"),
        ("policy: {privileged: {aws_policies: [Admin]}}", "policy.privileged.aws_policies[0]: is not a policy ARN"),
        ("policy: {privileged: {vault: [root]}}", "policy.privileged.vault: unknown key \"vault\""),
        ("policy: {privileged: {gcp_roles: ['']}}", "policy.privileged.gcp_roles[0]: must not be empty"),
        ("policy: {privileged: {azure_rbac_roles: [' ']}}", "policy.privileged.azure_rbac_roles[0]: must not be empty"),
        ("state: {backend: postgres, url_file: /etc/pg}", "state.hash_key_file: is required with backend: postgres"),
        ("state: {backend: postgres, hash_key_file: /k}", "state.url_file: is required with backend: postgres"),
        ("state: {backend: postgres, url_file: /u, hash_key_file: /k, path: x.db}", "state.path: is for backend: sqlite"),
        ("state: {url_file: /etc/pg}", "state.url_file: is for backend: postgres"),
        ("state: {backend: mysql}", "state.backend: unknown backend \"mysql\"; use sqlite (the default) or postgres"),
        ("labels: {team: {max_values: 0}}", "labels.team.max_values: must be between 1 and 1000"),
        ("labels: {team: {enabled: maybe}}", "labels.team.enabled: invalid type"),
        ("labels: {scope: {max_values: 10001}}", "labels.scope.max_values: must be between 1 and 10000, got 10001"),
        ("labels: {scope: {cap: 3}}", "labels.scope.cap: unknown key \"cap\""),
        ("sources: {a: 1}", "sources: must be a list"),
        ("sources: [{type: gitleaks, paths: [a]}]", "sources[0].name: is required"),
        ("sources: [{name: Bad Name, type: gitleaks, paths: [a]}]", "sources[0].name: is not a valid source name"),
        ("sources: [{name: a, paths: [a]}]", "sources[0].type: is required"),
        ("sources: [{name: a, type: nope}]", "sources[0].type: unknown source type;"),
        ("sources: [{name: a, type: gitleaks, interval: 0, paths: [a]}]", "sources[0].interval: must be greater than 0"),
        ("sources: [{name: a, type: gitleaks, interval: 500ms, paths: [a]}]", "sources[0].interval: must be at least 1s"),
        ("sources: [{name: a, type: gitleaks, timeout: 0, paths: [a]}]", "sources[0].timeout: must be greater than 0"),
        ("sources: [{name: a, type: gitleaks, paths: []}]", "sources[0].paths: must list at least one glob"),
        ("sources: [{name: a, type: gitleaks, paths: ['[']}]", "sources[0].paths[0]: invalid glob"),
        ("sources: [{name: a, type: gitleaks, paths: [a], max_file_size: 2TB}]", "sources[0].max_file_size: invalid size"),
        ("sources: [{name: a, type: gitleaks, paths: [a], max_file_size: 0}]", "sources[0].max_file_size: must be greater than 0"),
        ("sources: [{name: a, type: gitleaks, path: [a]}]", "sources[0].path: unknown key \"path\""),
        ("sources: [{name: a, type: gitleaks}]", "sources[0]: missing field \"paths\""),
        ("sources: [{name: a, type: gitleaks, paths: [a]}, {name: a, type: gitleaks, paths: [b]}]", "sources[1].name: duplicate source name: source names must be unique"),
        ("sources: [{name: a, type: trufflehog}]", "sources[0]: missing field \"paths\""),
        ("sources: [{name: a, type: trufflehog, paths: []}]", "sources[0].paths: must list at least one glob"),
        ("sources: [{name: a, type: trufflehog, paths: ['[']}]", "sources[0].paths[0]: invalid glob"),
        ("sources: [{name: a, type: trufflehog, paths: [a], max_file_size: 0}]", "sources[0].max_file_size: must be greater than 0"),
        ("sources: [{name: a, type: trufflehog, paths: [a], verified_only: true}]", "sources[0].verified_only: unknown key \"verified_only\""),
        ("sources: [{name: a, type: detect_secrets}]", "sources[0]: missing field \"paths\""),
        ("sources: [{name: a, type: detect_secrets, paths: []}]", "sources[0].paths: must list at least one glob"),
        ("sources: [{name: a, type: detect_secrets, paths: [a], max_file_size: lots}]", "sources[0].max_file_size: invalid size"),
        ("sources: [{name: a, type: detect_secrets, paths: [a], baseline: x}]", "sources[0].baseline: unknown key \"baseline\""),
        ("sources: [{name: a, type: detect-secrets, paths: [a]}]", "sources[0].type: unknown source type; this build supports gitleaks, trufflehog, detect_secrets"),
        ("sources: [{name: a, type: gitleaks, paths: ['${NOPE}/x']}]", "sources[0].paths[0]: environment variable NOPE is not set"),
        ("sources: [{name: a, type: gitleaks, paths: ['${x']}]", "sources[0].paths[0]: unterminated ${...}"),
        ("[1, 2]", "the configuration must be a mapping"),
        ("a: [", "invalid YAML"),
    ];
    for (yaml, want) in cases {
        let got = errs(yaml);
        assert!(
            got.iter().any(|g| g.starts_with(want)),
            "config {yaml:?}: wanted an error starting with {want:?}, got {got:?}"
        );
    }
}

#[test]
fn all_errors_are_reported_together() {
    let got = errs(
        r#"
bogus: 1
policy: {windows: []}
sources:
  - {name: A, type: gitleaks, paths: [a]}
  - {name: b, type: nope}
"#,
    );
    assert_eq!(got.len(), 4, "{got:?}");
}

#[test]
fn type_errors_do_not_echo_the_value() {
    let got = errs("labels: {team: {enabled: 'canary-secret-value'}}");
    assert!(
        got[0].starts_with("labels.team.enabled: invalid type: a string, expected"),
        "{got:?}"
    );
    assert!(!got[0].contains("canary"), "{got:?}");
}

#[test]
fn dollar_escapes() {
    let e = env_of(&[("X", "1")]);
    assert_eq!(yaml::expand_str("a$$b${X}c$d", &e).unwrap(), "a$b1c$d");
}

#[test]
fn the_postgres_backend_reads_its_url_from_a_file() {
    // SPEC §6: `state: {backend: postgres, url_file: ..., hash_key_file: ...}`.
    let c = ok(
        "state: {backend: postgres, url_file: pg-url, hash_key_file: /etc/nhi-exporter/hmac.key}",
    );
    assert_eq!(
        c.state.backend,
        StoreBackend::Postgres {
            url_file: PathBuf::from("/etc/nhi/pg-url")
        }
    );
    assert_eq!(
        c.state.hash_key_path(),
        PathBuf::from("/etc/nhi-exporter/hmac.key")
    );
    assert_eq!(
        ok("state: {backend: sqlite}").state.backend,
        StoreBackend::Sqlite
    );
}

#[test]
fn spec_state_and_policy_sections_are_accepted() {
    // SPEC §6's example, verbatim for these two sections, with the explicit
    // default backend.
    let c = ok(r#"
state:
  backend: sqlite
  path: /var/lib/nhi-exporter/state.db
  hash_key_file: /etc/nhi-exporter/hmac.key
policy:
  max_credential_age: 90d
  unused_after: 90d
  stale_after: 30m
  team_tag: team
  windows: [7d, 30d, 90d]
  max_secret_types: 100
  privileged:
    aws_policies: [arn:aws:iam::aws:policy/AdministratorAccess]
    vault_policies: [root]
    gcp_roles: [roles/owner, roles/editor]
    azure_directory_roles: [Global Administrator]
    azure_rbac_roles: [Owner, Contributor, User Access Administrator]
    kubernetes_roles: [cluster-admin]
labels:
  team: {enabled: false, max_values: 50}
  scope: {enabled: false, max_values: 1000}
sources: []
"#);
    let p = &c.policy.privileged;
    assert_eq!(p.gcp_roles, ["roles/owner", "roles/editor"]);
    assert_eq!(p.azure_directory_roles, ["Global Administrator"]);
    assert_eq!(
        p.azure_rbac_roles,
        ["Owner", "Contributor", "User Access Administrator"]
    );
    assert_eq!(p.kubernetes_roles, ["cluster-admin"]);
    assert_eq!(
        c.state.path,
        PathBuf::from("/var/lib/nhi-exporter/state.db")
    );
    // Defaults are SPEC §4's.
    let d = ok("sources: []").policy.privileged;
    assert_eq!(d.gcp_roles.len(), 6);
    assert_eq!(d.azure_directory_roles.len(), 4);
    assert_eq!(
        d.azure_rbac_roles,
        ["Owner", "Contributor", "User Access Administrator"]
    );
}

/// A marker word inside the quoted value must not be taken for the start
/// of serde's message (found by the ASan fuzzing campaign: the value before
/// it was quoted back).
#[test]
fn friendly_errors_never_quote_a_value_holding_a_marker() {
    let msg = "invalid type: string \"tls CANARY-VALUE unknown variant oops\", expected struct Raw";
    assert_eq!(
        crate::config::yaml::friendly(msg.to_string()),
        "invalid type: a string, expected struct Raw"
    );
    let msg = "a.b: invalid value: string \"x invalid type: string y\", expected a duration";
    assert_eq!(
        crate::config::yaml::friendly(msg.to_string()),
        "a.b: invalid value, expected a duration"
    );
}
