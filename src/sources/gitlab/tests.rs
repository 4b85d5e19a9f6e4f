use super::*;
use std::path::PathBuf;

fn fixture(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/gitlab")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn page(name: &str, field: Field) -> Result<Page, PageError> {
    parse_page(&fixture(name), field, None)
}

fn err_text(e: PageError) -> (ErrorReason, String) {
    let s = e.into_source_error(
        "https://gitlab.example.com/api/graphql",
        Field::Group,
        "platform",
    );
    (s.reason, s.message)
}

#[test]
fn maps_a_realistic_page() {
    let p = page("page.json", Field::Group).unwrap();
    assert_eq!(
        p.next.as_deref(),
        Some("eyJzZXZlcml0eSI6ImNyaXRpY2FsIiwidnVsbmVyYWJpbGl0eV9pZCI6IjEwMDQifQ")
    );
    let f = &p.findings;
    assert_eq!(f.len(), 4);

    assert_eq!(f[0].scanner_id, "gid://gitlab/Vulnerability/1001");
    assert_eq!(f[0].secret_type, "gitlab_personal_access_token");
    assert_eq!(f[0].exposure, ExposureKey::ScannerId);
    assert_eq!(f[0].closed, None);
    assert_eq!(f[0].validity, Validity::Live);
    assert_eq!(f[0].detected_at, Some(1_768_032_000));
    assert_eq!(f[0].committed_at, None);
    assert!(f[0].links.is_empty());
    assert_eq!(
        f[0].location,
        Location {
            repository: Some("platform/api".into()),
            file: Some("config/ci.env".into()),
            line: Some(4),
            commit: None,
        }
    );

    // CONFIRMED is open; INACTIVE is a validity check saying revoked.
    assert_eq!(f[1].secret_type, "AWS");
    assert_eq!(f[1].closed, None);
    assert_eq!(f[1].validity, Validity::Inactive);
    assert_eq!(
        f[1].location.repository.as_deref(),
        Some("platform/infra/terraform")
    );
    assert_eq!(f[1].location.line, Some(12));

    // RESOLVED: closed "other" at resolvedAt; the token still works.
    assert_eq!(f[2].closed, Some((Resolution::Other, Some(1_767_398_400))));
    assert_eq!(f[2].validity, Validity::Live);

    // DISMISSED false positive at dismissedAt; the gitleaks rule id is found
    // after another identifier; no token status is unknown.
    assert_eq!(f[3].secret_type, "generic-api-key");
    assert_eq!(
        f[3].closed,
        Some((Resolution::FalsePositive, Some(1_767_484_800)))
    );
    assert_eq!(f[3].validity, Validity::Unknown);
}

#[test]
fn maps_dismissal_reasons_and_sparse_nodes() {
    let p = page("last-page.json", Field::Group).unwrap();
    assert_eq!(
        p.next, None,
        "hasNextPage false ends the listing, whatever endCursor says"
    );
    let f = &p.findings;
    assert_eq!(f.len(), 5);
    assert_eq!(
        f[0].closed,
        Some((Resolution::UsedInTests, Some(1_767_657_600)))
    );
    assert_eq!(f[0].validity, Validity::Unknown, "UNKNOWN");
    assert_eq!(
        f[1].closed.map(|c| c.0),
        Some(Resolution::WontFix),
        "ACCEPTABLE_RISK"
    );
    assert_eq!(f[1].secret_type, "PKCS8 private key");
    // Dismissed without a reason or a time: other, closed at the poll.
    assert_eq!(f[2].closed, Some((Resolution::Other, None)));
    assert_eq!(f[2].validity, Validity::Inactive);
    assert_eq!(
        f[2].secret_type, "Password in URL",
        "no gitleaks identifier: the title"
    );
    assert_eq!(
        f[2].location,
        Location::default(),
        "empty location, null project, group scope"
    );
    // No findingTokenStatus at all (GitLab < 18.1); a numeric startLine;
    // an empty gitleaks id falls back to the title.
    assert_eq!(
        f[3].closed.map(|c| c.0),
        Some(Resolution::WontFix),
        "MITIGATING_CONTROL"
    );
    assert_eq!(f[3].validity, Validity::Unknown);
    assert_eq!(f[3].location.line, Some(9));
    assert_eq!(f[3].secret_type, "GitLab runner registration token");
    // Empty title, null identifiers, status null, bad time, null location.
    assert_eq!(f[4].secret_type, "unknown");
    assert_eq!(f[4].validity, Validity::Unknown);
    assert_eq!(f[4].detected_at, None);
    assert_eq!(f[4].closed, None);
    assert_eq!(f[4].location.repository.as_deref(), Some("platform/web"));
    assert_eq!(f[4].location.file, None);
}

#[test]
fn dismissal_mapping() {
    assert_eq!(dismissal(Some("FALSE_POSITIVE")), Resolution::FalsePositive);
    assert_eq!(dismissal(Some("USED_IN_TESTS")), Resolution::UsedInTests);
    for r in [
        "ACCEPTABLE_RISK",
        "NOT_APPLICABLE",
        "MITIGATING_CONTROL",
        "not_applicable",
    ] {
        assert_eq!(dismissal(Some(r)), Resolution::WontFix, "{r}");
    }
    assert_eq!(dismissal(Some("SOMETHING_NEW")), Resolution::Other);
    assert_eq!(dismissal(None), Resolution::Other);
}

#[test]
fn project_scope_uses_the_project_field_and_path() {
    let p = page("empty.json", Field::Project).unwrap();
    assert_eq!(
        p,
        Page {
            findings: vec![],
            next: None
        }
    );
    // A project response read as a group one: the group is missing.
    assert_eq!(page("empty.json", Field::Group), Err(PageError::NotFound));
    let body = br#"{"data":{"project":{"vulnerabilities":{"pageInfo":{"endCursor":"c","hasNextPage":false},
        "nodes":[{"id":"gid://gitlab/Vulnerability/5","state":"DETECTED","location":{"file":"a","startLine":"x"}}]}}}}"#;
    let p = parse_page(body, Field::Project, Some("platform/api")).unwrap();
    assert_eq!(
        p.findings[0].location.repository.as_deref(),
        Some("platform/api")
    );
    assert_eq!(
        p.findings[0].location.line, None,
        "a startLine that is not a number"
    );
    assert_eq!(p.findings[0].secret_type, "unknown");
}

#[test]
fn graphql_errors_are_classified_without_their_text() {
    let e = page("errors-permission.json", Field::Group).unwrap_err();
    assert_eq!(
        e,
        PageError::Graphql {
            kind: GqlKind::NoPermission,
            count: 1,
            path: Some("group.vulnerabilities".into())
        }
    );
    let (reason, msg) = err_text(e);
    assert_eq!(reason, ErrorReason::Auth);
    assert!(
        msg.contains("group platform does not exist or this token lacks permission"),
        "{msg}"
    );

    let e = page("errors-other.json", Field::Group).unwrap_err();
    assert_eq!(
        e,
        PageError::Graphql {
            kind: GqlKind::Other,
            count: 2,
            path: Some("group.vulnerabilities.nodes.3.location".into())
        },
        "errors fail the page even beside data"
    );
    let (reason, msg) = err_text(e);
    assert_eq!(reason, ErrorReason::Http4xx);
    assert!(
        !msg.contains("canary") && !msg.contains("glpat") && !msg.contains("Internal"),
        "{msg}"
    );
    assert!(
        msg.starts_with(
            "https://gitlab.example.com/api/graphql: GraphQL errors (2) at group.vulnerabilities"
        ),
        "{msg}"
    );

    let e = page("errors-token-status.json", Field::Group).unwrap_err();
    assert!(
        matches!(
            e,
            PageError::Graphql {
                kind: GqlKind::TokenStatusUnsupported,
                ..
            }
        ),
        "{e:?}"
    );
    // The path's elements are reduced to identifier characters.
    assert!(
        matches!(&e, PageError::Graphql { path: Some(p), .. } if p.starts_with("querynhiSecretDetection.group")),
        "{e:?}"
    );
    assert_eq!(err_text(e).0, ErrorReason::Http4xx);

    let e = page("errors-complexity.json", Field::Group).unwrap_err();
    assert_eq!(
        e,
        PageError::Graphql {
            kind: GqlKind::TooComplex,
            count: 1,
            path: None
        }
    );
    assert_eq!(err_text(e).0, ErrorReason::Http4xx);
}

#[test]
fn null_scope_or_connection_is_auth() {
    let e = page("null-group.json", Field::Group).unwrap_err();
    assert_eq!(e, PageError::NotFound);
    let (reason, msg) = err_text(e);
    assert_eq!(reason, ErrorReason::Auth);
    assert!(
        msg.contains("group platform does not exist or this token cannot read it"),
        "{msg}"
    );
    let e = page("null-vulnerabilities.json", Field::Project).unwrap_err();
    assert_eq!(e, PageError::NoVulnerabilities);
    assert_eq!(err_text(e).0, ErrorReason::Auth);
}

#[test]
fn bad_responses_name_the_position_not_the_content() {
    for name in [
        "malformed.json",
        "wrong-type.json",
        "non-utf8.json",
        "html.json",
    ] {
        let e = page(name, Field::Group).unwrap_err();
        let PageError::Malformed(m) = &e else {
            panic!("{name}: {e:?}")
        };
        assert!(m.starts_with("line "), "{name}: {m}");
        let (reason, msg) = err_text(e);
        assert_eq!(reason, ErrorReason::Parse, "{name}");
        assert!(
            !msg.contains("canary") && !msg.contains("DETE") && !msg.contains("html"),
            "{name}: {msg}"
        );
    }
    for body in [&b""[..], b"[]", b"null", b"{\"data\": \"canary\"}", b"{}"] {
        let e = parse_page(body, Field::Group, None).unwrap_err();
        let PageError::Malformed(m) = &e else {
            panic!("{body:?}: {e:?}")
        };
        assert!(!m.contains("canary"), "{m}");
    }
    assert!(
        matches!(page("next-without-cursor.json", Field::Group), Err(PageError::Malformed(m)) if m.contains("endCursor"))
    );
    assert!(
        matches!(page("null-node.json", Field::Group), Err(PageError::Malformed(m)) if m == "node 0 is null")
    );
}

#[test]
fn the_query_asks_for_what_is_mapped_and_nothing_secret() {
    let q = query(Field::Group, &schema::Fields::all());
    assert!(q.contains("group(fullPath: $fullPath)"), "{q}");
    assert!(q.contains("reportType: [SECRET_DETECTION]"));
    assert!(q.contains("state: [DETECTED, CONFIRMED, RESOLVED, DISMISSED]"));
    assert!(q.contains("first: $first, after: $after"));
    assert!(q.contains("pageInfo { endCursor hasNextPage }"));
    assert!(q.contains("findingTokenStatus { status }"));
    assert!(q.contains("... on VulnerabilityLocationSecretDetection { file startLine blobPath }"));
    assert!(q.contains("identifiers { externalType externalId name }"));
    assert!(q.contains("project { fullPath }"));
    assert!(!q.contains("description") && !q.contains("rawSourceCodeExtract"));
    let q = query(
        Field::Project,
        &schema::Fields::all().without("findingTokenStatus"),
    );
    assert!(q.contains("project(fullPath: $fullPath)"));
    assert!(!q.contains("findingTokenStatus"));
    // Balanced braces.
    assert_eq!(q.matches('{').count(), q.matches('}').count());
}

#[test]
fn error_kinds_from_messages() {
    assert_eq!(
        GqlKind::of("Field 'findingTokenStatus' doesn't exist on type 'Vulnerability'"),
        GqlKind::TokenStatusUnsupported
    );
    assert_eq!(
        GqlKind::of("The resource that you are attempting to access does not exist or you don't have permission to perform this action"),
        GqlKind::NoPermission
    );
    assert_eq!(
        GqlKind::of("Query has complexity of 312, which exceeds max complexity of 250"),
        GqlKind::TooComplex
    );
    assert_eq!(
        GqlKind::of("Field 'foo' doesn't exist on type 'Vulnerability'"),
        GqlKind::Other
    );
    assert_eq!(GqlKind::of(""), GqlKind::Other);
}
