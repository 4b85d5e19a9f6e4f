use super::*;
use std::collections::HashMap;

fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let m: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| m.get(k).cloned()
}

fn ok(yaml: &str) -> Config {
    parse(yaml, Path::new("/etc/nhi"), &env_of(&[("SCANS", "/scans")]))
        .unwrap_or_else(|e| panic!("unexpected errors: {e:?}"))
}

fn errs(yaml: &str) -> Vec<String> {
    parse(yaml, Path::new("/etc/nhi"), &env_of(&[]))
        .expect_err("config should be rejected")
        .iter()
        .map(|i| i.to_string())
        .collect()
}

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
    assert_eq!(c.policy.privileged.aws_policies.len(), 3);
    assert!(!c.labels.team_enabled);
    assert_eq!(c.labels.team_max_values, 50);
}

#[test]
fn empty_file_is_valid() {
    let c = ok("");
    assert!(c.sources.is_empty());
}

#[test]
fn full_gitleaks_source() {
    let c = ok(r#"
state: {path: /var/lib/nhi/state.db, hash_key_file: keys/hmac.key}
policy: {stale_after: 30m, windows: [1d, 7d], max_secret_types: 5}
sources:
  - name: ci-gitleaks
    type: gitleaks
    interval: 1m
    timeout: 10s
    paths: ["${SCANS}/*.json", "rel/*.sarif"]
  - {name: off, type: gitleaks, enabled: false, paths: [x.json]}
"#);
    assert_eq!(
        c.state.hash_key_path(),
        PathBuf::from("/etc/nhi/keys/hmac.key")
    );
    assert_eq!(c.policy.stale_after, Some(Duration::from_secs(1800)));
    assert_eq!(c.policy.windows[0].label, "1d");
    let s = &c.sources[0];
    assert_eq!(s.name, "ci-gitleaks");
    assert_eq!(s.type_name(), "gitleaks");
    assert_eq!(s.interval, Duration::from_secs(60));
    assert_eq!(s.timeout, Duration::from_secs(10));
    assert!(s.enabled);
    let SourceKind::Gitleaks(g) = &s.kind else {
        panic!("{:?}", s.kind)
    };
    assert_eq!(g.paths, ["/scans/*.json", "/etc/nhi/rel/*.sarif"]);
    assert_eq!(g.max_file_size, DEFAULT_MAX_FILE_SIZE);
    assert!(!c.sources[1].enabled);
    assert_eq!(c.sources[1].interval, DEFAULT_INTERVAL);
    assert_eq!(c.sources[1].timeout, DEFAULT_TIMEOUT);
    assert_eq!(
        c.sources[1].stale_after(&c.policy),
        Duration::from_secs(1800)
    );
}

#[test]
fn trufflehog_and_detect_secrets_sources() {
    let c = ok(r#"
sources:
  - name: ci-trufflehog
    type: trufflehog
    interval: 2m
    paths: ["${SCANS}/trufflehog/*.jsonl"]
    max_file_size: 64MiB
  - name: baselines
    type: detect_secrets
    paths: ["/srv/repos/*/.secrets.baseline", "rel/.secrets.baseline"]
"#);
    let t = &c.sources[0];
    assert_eq!(t.type_name(), "trufflehog");
    assert_eq!(t.interval, Duration::from_secs(120));
    let SourceKind::Trufflehog(tc) = &t.kind else {
        panic!("{:?}", t.kind)
    };
    assert_eq!(tc.paths, ["/scans/trufflehog/*.jsonl"]);
    assert_eq!(tc.max_file_size, 64 * 1024 * 1024);
    let d = &c.sources[1];
    assert_eq!(d.type_name(), "detect_secrets");
    assert_eq!(d.timeout, DEFAULT_TIMEOUT);
    let SourceKind::DetectSecrets(dc) = &d.kind else {
        panic!("{:?}", d.kind)
    };
    assert_eq!(
        dc.paths,
        [
            "/srv/repos/*/.secrets.baseline",
            "/etc/nhi/rel/.secrets.baseline"
        ]
    );
    assert_eq!(dc.max_file_size, DEFAULT_MAX_FILE_SIZE);
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
        ("policy: {privileged: {aws_policies: [Admin]}}", "policy.privileged.aws_policies[0]: \"Admin\" is not a policy ARN"),
        ("policy: {privileged: {vault: [root]}}", "policy.privileged.vault: unknown key \"vault\""),
        ("labels: {team: {max_values: 0}}", "labels.team.max_values: must be between 1 and 1000"),
        ("labels: {team: {enabled: maybe}}", "labels.team.enabled: invalid type"),
        ("sources: {a: 1}", "sources: must be a list"),
        ("sources: [{type: gitleaks, paths: [a]}]", "sources[0].name: is required"),
        ("sources: [{name: Bad Name, type: gitleaks, paths: [a]}]", "sources[0].name: \"Bad Name\" is not a valid source name"),
        ("sources: [{name: a, paths: [a]}]", "sources[0].type: is required"),
        ("sources: [{name: a, type: nope}]", "sources[0].type: unknown source type \"nope\""),
        ("sources: [{name: a, type: gitleaks, interval: 0, paths: [a]}]", "sources[0].interval: must be greater than 0"),
        ("sources: [{name: a, type: gitleaks, interval: 500ms, paths: [a]}]", "sources[0].interval: must be at least 1s"),
        ("sources: [{name: a, type: gitleaks, timeout: 0, paths: [a]}]", "sources[0].timeout: must be greater than 0"),
        ("sources: [{name: a, type: gitleaks, paths: []}]", "sources[0].paths: must list at least one glob"),
        ("sources: [{name: a, type: gitleaks, paths: ['[']}]", "sources[0].paths[0]: invalid glob"),
        ("sources: [{name: a, type: gitleaks, paths: [a], max_file_size: 2TB}]", "sources[0].max_file_size: invalid size"),
        ("sources: [{name: a, type: gitleaks, paths: [a], max_file_size: 0}]", "sources[0].max_file_size: must be greater than 0"),
        ("sources: [{name: a, type: gitleaks, path: [a]}]", "sources[0].path: unknown key \"path\""),
        ("sources: [{name: a, type: gitleaks}]", "sources[0]: missing field \"paths\""),
        ("sources: [{name: a, type: gitleaks, paths: [a]}, {name: a, type: gitleaks, paths: [b]}]", "sources[1].name: duplicate source name \"a\""),
        ("sources: [{name: a, type: trufflehog}]", "sources[0]: missing field \"paths\""),
        ("sources: [{name: a, type: trufflehog, paths: []}]", "sources[0].paths: must list at least one glob"),
        ("sources: [{name: a, type: trufflehog, paths: ['[']}]", "sources[0].paths[0]: invalid glob"),
        ("sources: [{name: a, type: trufflehog, paths: [a], max_file_size: 0}]", "sources[0].max_file_size: must be greater than 0"),
        ("sources: [{name: a, type: trufflehog, paths: [a], verified_only: true}]", "sources[0].verified_only: unknown key \"verified_only\""),
        ("sources: [{name: a, type: detect_secrets}]", "sources[0]: missing field \"paths\""),
        ("sources: [{name: a, type: detect_secrets, paths: []}]", "sources[0].paths: must list at least one glob"),
        ("sources: [{name: a, type: detect_secrets, paths: [a], max_file_size: lots}]", "sources[0].max_file_size: invalid size"),
        ("sources: [{name: a, type: detect_secrets, paths: [a], baseline: x}]", "sources[0].baseline: unknown key \"baseline\""),
        ("sources: [{name: a, type: detect-secrets, paths: [a]}]", "sources[0].type: unknown source type \"detect-secrets\"; this build supports gitleaks, trufflehog, detect_secrets"),
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
fn github_source() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tok"), "ghp_file_token\n").unwrap();
    let yaml = "sources:\n  - {name: gh, type: github_secret_scanning, org: acme, token_file: tok}\n  - {name: gh2, type: github_secret_scanning, api_url: 'https://ghe.example/api/v3/', repositories: [a/b, c/d], token: t, hide_secret: true}\n";
    let c = parse(yaml, dir.path(), &env_of(&[])).unwrap();
    let SourceKind::GithubSecretScanning(g) = &c.sources[0].kind else {
        panic!()
    };
    assert_eq!(g.api_url, "https://api.github.com");
    assert_eq!(g.scope, GithubScope::Org("acme".into()));
    assert_eq!(g.token.expose(), "ghp_file_token");
    assert!(!g.hide_secret);
    assert!(
        !format!("{g:?}").contains("ghp_file_token"),
        "Debug must not print the token"
    );
    let SourceKind::GithubSecretScanning(g) = &c.sources[1].kind else {
        panic!()
    };
    assert_eq!(g.api_url, "https://ghe.example/api/v3");
    assert_eq!(
        g.scope,
        GithubScope::Repositories(vec!["a/b".into(), "c/d".into()])
    );
    assert!(g.hide_secret);
    for (yaml, want) in [
        ("sources: [{name: g, type: github_secret_scanning, token: t}]", "sources[0]: set exactly one of org, enterprise or repositories"),
        ("sources: [{name: g, type: github_secret_scanning, org: a, enterprise: b, token: t}]", "sources[0]: set exactly one"),
        ("sources: [{name: g, type: github_secret_scanning, org: a}]", "sources[0].token: is required (or token_file)"),
        ("sources: [{name: g, type: github_secret_scanning, org: a, token: t, token_file: f}]", "sources[0].token: set either token or token_file"),
        ("sources: [{name: g, type: github_secret_scanning, org: a, token_file: /nonexistent/tok}]", "sources[0].token_file: cannot read /nonexistent/tok"),
        ("sources: [{name: g, type: github_secret_scanning, repositories: [noslash], token: t}]", "sources[0].repositories[0]: \"noslash\" is not owner/name"),
        ("sources: [{name: g, type: github_secret_scanning, repositories: [], token: t}]", "sources[0].repositories: must list at least one"),
        ("sources: [{name: g, type: github_secret_scanning, org: a, token: t, api_url: 'ftp://x'}]", "sources[0].api_url: \"ftp://x\" is not an http(s) URL"),
        ("sources: [{name: g, type: github_secret_scanning, org: a, token: t, api_url: 'https://u:p@x'}]", "sources[0].api_url"),
        ("sources: [{name: g, type: github_secret_scanning, org: 'a b', token: t}]", "sources[0].org: \"a b\" is not an organization login"),
        ("sources: [{name: g, type: github_secret_scanning, org: a, token: t, per_page: 5}]", "sources[0].per_page: unknown key"),
    ] {
        let got = errs(yaml);
        assert!(got.iter().any(|g| g.starts_with(want)), "{yaml}: wanted {want:?}, got {got:?}");
        assert!(!got.iter().any(|g| g.contains("ghp_")), "{got:?}");
    }
}

#[test]
fn gitlab_source() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tok"), "glpat-file-token\n").unwrap();
    let yaml = "sources:\n  - {name: gl, type: gitlab_secret_detection, api_url: 'https://gitlab.example.com/', group: platform/backend, token_file: tok, ca_file: ca.pem}\n  - {name: gl2, type: gitlab_secret_detection, api_url: 'http://127.0.0.1:8080/gitlab', project: platform/api, token: '${GITLAB_TOKEN}'}\n";
    let c = parse(
        yaml,
        dir.path(),
        &env_of(&[("GITLAB_TOKEN", "glpat-env-token")]),
    )
    .unwrap();
    assert_eq!(c.sources[0].type_name(), "gitlab_secret_detection");
    let SourceKind::GitlabSecretDetection(g) = &c.sources[0].kind else {
        panic!()
    };
    assert_eq!(g.api_url, "https://gitlab.example.com");
    assert_eq!(g.scope, GitlabScope::Group("platform/backend".into()));
    assert_eq!(g.token.expose(), "glpat-file-token");
    assert_eq!(
        g.ca_file.as_deref(),
        Some(dir.path().join("ca.pem").as_path())
    );
    assert!(
        !format!("{g:?}").contains("glpat"),
        "Debug must not print the token"
    );
    let SourceKind::GitlabSecretDetection(g) = &c.sources[1].kind else {
        panic!()
    };
    assert_eq!(g.api_url, "http://127.0.0.1:8080/gitlab");
    assert_eq!(g.scope, GitlabScope::Project("platform/api".into()));
    assert_eq!(g.token.expose(), "glpat-env-token");
    assert_eq!(g.ca_file, None);
    let base = "name: g, type: gitlab_secret_detection";
    for (rest, want) in [
        ("api_url: 'https://gl.example', group: a, project: a/b, token: glpat-x", "sources[0]: set exactly one of group or project"),
        ("api_url: 'https://gl.example', token: glpat-x", "sources[0]: set exactly one of group or project"),
        ("group: a, token: glpat-x", "sources[0].api_url: is required"),
        ("api_url: 'ftp://gl.example', group: a, token: glpat-x", "sources[0].api_url: \"ftp://gl.example\" is not an http(s) URL without credentials, e.g. https://gitlab.example.com"),
        ("api_url: 'https://u:glpat-x@gl.example', group: a, token: t", "sources[0].api_url"),
        ("api_url: 'https://gl.example/api/v4', group: a, token: glpat-x", "sources[0].api_url: give the instance URL without /api/v4"),
        ("api_url: 'https://gl.example/api/graphql/', group: a, token: glpat-x", "sources[0].api_url: give the instance URL without /api/graphql"),
        ("api_url: 'https://gl.example', group: a", "sources[0].token: is required (or token_file)"),
        ("api_url: 'https://gl.example', group: a, token: glpat-x, token_file: f", "sources[0].token: set either token or token_file"),
        ("api_url: 'https://gl.example', group: a, token: ''", "sources[0].token: must not be empty"),
        ("api_url: 'https://gl.example', group: a, token_file: /nonexistent/tok", "sources[0].token_file: cannot read /nonexistent/tok"),
        ("api_url: 'https://gl.example', group: 'a b', token: glpat-x", "sources[0].group: \"a b\" is not a group full path"),
        ("api_url: 'https://gl.example', group: 'a//b', token: glpat-x", "sources[0].group: \"a//b\" is not a group full path"),
        ("api_url: 'https://gl.example', project: api, token: glpat-x", "sources[0].project: \"api\" is not a project full path"),
        ("api_url: 'https://gl.example', project: 'a/b/', token: glpat-x", "sources[0].project"),
        ("api_url: 'https://gl.example', groups: [a], token: glpat-x", "sources[0].groups: unknown key"),
        ("api_url: 'https://gl.example', group: a, token: '${GITLAB_TOKEN}'", "sources[0].token: environment variable GITLAB_TOKEN is not set"),
    ] {
        let yaml = format!("sources: [{{{base}, {rest}}}]");
        let got = errs(&yaml);
        assert!(got.iter().any(|g| g.starts_with(want)), "{yaml}: wanted {want:?}, got {got:?}");
        assert!(!got.iter().any(|g| g.contains("glpat")), "{got:?}");
    }
    assert!(errs("sources: [{name: a, type: nope}]")[0].contains("gitlab_secret_detection"));
}

#[test]
fn url_errors_do_not_echo_credentials() {
    let got = errs("sources: [{name: g, type: github_secret_scanning, org: a, token: t, api_url: 'https://user:hunter2@ghe.example'}]");
    assert!(
        got.iter().any(|g| g.starts_with("sources[0].api_url")),
        "{got:?}"
    );
    assert!(!got.iter().any(|g| g.contains("hunter2")), "{got:?}");
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
    assert_eq!(raw::expand_str("a$$b${X}c$d", &e).unwrap(), "a$b1c$d");
}

#[test]
fn vault_source() {
    let c = ok(r#"
sources:
  - name: v
    type: vault
    address: https://vault.example.com:8200/
    auth: {method: token, token: s.canary-token}
    kv_mounts: [secret, /team/kv/]
    match_values: true
    tls: {ca_file: ca.pem}
  - name: v2
    type: vault
    address: http://127.0.0.1:8200
    namespace: team-a/
    auth: {method: approle, role_id: rid, secret_id: sid}
"#);
    let SourceKind::Vault(v) = &c.sources[0].kind else {
        panic!("not vault")
    };
    assert_eq!(v.address, "https://vault.example.com:8200");
    assert_eq!(v.kv_mounts, vec!["secret", "team/kv"]);
    assert!(v.match_values);
    assert_eq!(v.ca_file.as_deref(), Some(Path::new("/etc/nhi/ca.pem")));
    assert!(matches!(&v.auth, VaultAuth::Token(t) if t.expose() == "s.canary-token"));
    assert!(
        !format!("{v:?}").contains("canary"),
        "Debug hides the token"
    );
    let SourceKind::Vault(v2) = &c.sources[1].kind else {
        panic!("not vault")
    };
    assert_eq!(v2.namespace, "team-a");
    assert!(v2.kv_mounts.is_empty() && !v2.match_values);
    assert!(
        matches!(&v2.auth, VaultAuth::AppRole { mount, role_id, secret_id }
            if mount == "approle" && role_id.expose() == "rid" && secret_id.expose() == "sid")
    );

    let e = errs(
        r#"
sources:
  - name: v
    type: vault
    auth: {method: approle, role_id: r, token: t}
    kv_mounts: ["bad path"]
  - name: w
    type: vault
    address: https://v
    auth: {method: kerberos}
  - name: x
    type: vault
    address: https://v
"#,
    );
    let want = [
        "sources[0].address: is required",
        "sources[0].auth.token: is only for method: token",
        "sources[0].auth.secret_id: is required (or secret_id_file)",
        "sources[0].kv_mounts[0]: \"bad path\" is not a mount path",
        "sources[1].auth.method: unknown method \"kerberos\"",
        "sources[2].auth: is required",
    ];
    for w in want {
        assert!(e.iter().any(|m| m.contains(w)), "missing {w:?} in {e:#?}");
    }
}

#[test]
fn aws_source() {
    let c = ok(r#"
sources:
  - name: a
    type: aws
    regions: [us-east-1, eu-west-1]
    assume_role_arn: arn:aws:iam::123456789012:role/nhi-exporter-read
    endpoint_url: http://127.0.0.1:5000
  - name: b
    type: aws
    regions: [us-gov-west-1]
    services: [secretsmanager]
"#);
    let SourceKind::Aws(a) = &c.sources[0].kind else {
        panic!("not aws")
    };
    assert_eq!(a.regions, vec!["us-east-1", "eu-west-1"]);
    assert_eq!(
        a.services,
        vec![AwsService::Iam, AwsService::SecretsManager]
    );
    assert_eq!(a.endpoint_url.as_deref(), Some("http://127.0.0.1:5000"));
    let SourceKind::Aws(b) = &c.sources[1].kind else {
        panic!("not aws")
    };
    assert_eq!(b.services, vec![AwsService::SecretsManager]);
    assert_eq!(b.assume_role_arn, None);
    let e = errs(
        r#"
sources:
  - name: a
    type: aws
    services: [iam, ec2]
    assume_role_arn: arn:aws:iam::1234:user/x
    endpoint_url: ftp://x
  - name: b
    type: aws
    regions: [Europe]
  - name: c
    type: aws
    region: us-east-1
"#,
    );
    let want = [
        "sources[0].regions: is required",
        "sources[0].services[1]: unknown service \"ec2\"",
        "sources[0].assume_role_arn: \"arn:aws:iam::1234:user/x\" is not a role ARN",
        "sources[0].endpoint_url:",
        "sources[1].regions[0]: \"Europe\" is not an AWS region",
        "sources[2].region: unknown key \"region\"",
    ];
    for w in want {
        assert!(e.iter().any(|m| m.contains(w)), "missing {w:?} in {e:#?}");
    }
}
