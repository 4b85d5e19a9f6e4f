//! Configuration tests of this source type: its keys, defaults and every
//! validation error, each naming its key path.

use super::*;
use crate::config::test_support::{env_of, errs, parse, write_ca};

#[test]
fn gitlab_source() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tok"), "glpat-file-token\n").unwrap();
    write_ca(dir.path(), "ca.pem");
    std::fs::write(dir.path().join("not-pem.pem"), "glpat-in-a-file").unwrap();
    let yaml = "sources:\n  - {name: gl, type: gitlab_secret_detection, api_url: 'https://gitlab.example.com/', group: platform/backend, token_file: tok, ca_file: ca.pem}\n  - {name: gl2, type: gitlab_secret_detection, api_url: 'http://127.0.0.1:8080/gitlab', project: platform/api, token: '${GITLAB_TOKEN}'}\n";
    let c = parse(
        yaml,
        dir.path(),
        &env_of(&[("GITLAB_TOKEN", "glpat-env-token")]),
    )
    .unwrap();
    assert_eq!(c.sources[0].type_name(), "gitlab_secret_detection");
    let g: &GitlabConfig = c.sources[0].settings().unwrap();
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
    let g: &GitlabConfig = c.sources[1].settings().unwrap();
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
        ("api_url: 'https://gl.example', group: 'a b', token: glpat-x", "sources[0].group: is not a group full path"),
        ("api_url: 'https://gl.example', group: 'a//b', token: glpat-x", "sources[0].group: is not a group full path"),
        ("api_url: 'https://gl.example', project: api, token: glpat-x", "sources[0].project: is not a project full path"),
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
    // A CA file is checked when the configuration is loaded, not at the
    // first poll; its content is never shown.
    for (ca, want) in [
        ("missing.pem", "sources[0].ca_file: cannot read"),
        ("not-pem.pem", "sources[0].ca_file:"),
    ] {
        let yaml = format!("sources: [{{{base}, api_url: 'https://gl.example', group: a, token: t, ca_file: {ca}}}]");
        let got = parse(&yaml, dir.path(), &env_of(&[])).expect_err("a bad CA file is refused");
        let got: Vec<String> = got.iter().map(|i| i.to_string()).collect();
        assert!(
            got.iter().any(|g| g.starts_with(want)),
            "{ca}: wanted {want:?}, got {got:?}"
        );
        assert!(!got.iter().any(|g| g.contains("glpat")), "{got:?}");
    }
}
