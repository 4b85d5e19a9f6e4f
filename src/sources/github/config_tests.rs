//! Configuration tests of this source type: its keys, defaults and every
//! validation error, each naming its key path.

use super::*;
use crate::config::test_support::{env_of, errs, parse};

#[test]
fn github_source() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tok"), "ghp_file_token\n").unwrap();
    let yaml = "sources:\n  - {name: gh, type: github_secret_scanning, org: acme, token_file: tok}\n  - {name: gh2, type: github_secret_scanning, api_url: 'https://ghe.example/api/v3/', repositories: [a/b, c/d], token: t, hide_secret: true}\n";
    let c = parse(yaml, dir.path(), &env_of(&[])).unwrap();
    let g: &GithubConfig = c.sources[0].settings().unwrap();
    assert_eq!(g.api_url, "https://api.github.com");
    assert_eq!(g.scope, GithubScope::Org("acme".into()));
    assert_eq!(g.token.expose(), "ghp_file_token");
    assert!(!g.hide_secret);
    assert!(
        !format!("{g:?}").contains("ghp_file_token"),
        "Debug must not print the token"
    );
    let g: &GithubConfig = c.sources[1].settings().unwrap();
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
        ("sources: [{name: g, type: github_secret_scanning, repositories: [noslash], token: t}]", "sources[0].repositories[0]: is not owner/name"),
        ("sources: [{name: g, type: github_secret_scanning, repositories: [], token: t}]", "sources[0].repositories: must list at least one"),
        ("sources: [{name: g, type: github_secret_scanning, org: a, token: t, api_url: 'ftp://x'}]", "sources[0].api_url: \"ftp://x\" is not an http(s) URL"),
        ("sources: [{name: g, type: github_secret_scanning, org: a, token: t, api_url: 'https://u:p@x'}]", "sources[0].api_url"),
        ("sources: [{name: g, type: github_secret_scanning, org: 'a b', token: t}]", "sources[0].org: is not an organization login"),
        ("sources: [{name: g, type: github_secret_scanning, org: a, token: t, per_page: 5}]", "sources[0].per_page: unknown key"),
    ] {
        let got = errs(yaml);
        assert!(got.iter().any(|g| g.starts_with(want)), "{yaml}: wanted {want:?}, got {got:?}");
        assert!(!got.iter().any(|g| g.contains("ghp_")), "{got:?}");
    }
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
