use super::*;
use crate::model::{ExposureKey, Validity};
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/gitleaks")
        .join(name)
}

fn hasher() -> SecretHasher {
    SecretHasher::new([42; 32])
}

fn parse(name: &str) -> Result<Vec<ObservedFinding>, ParseError> {
    let data = std::fs::read(fixture(name)).unwrap();
    parse_slice(&data, &format!("/reports/{name}"), &hasher())
}

#[test]
fn parses_json_report() {
    let v = parse("basic.json").unwrap();
    assert_eq!(v.len(), 2);
    let a = &v[0];
    assert_eq!(a.scanner_id, "abc123:app/config.py:aws-access-token:3");
    assert_eq!(a.secret_type, "aws-access-token");
    assert_eq!(
        a.exposure,
        ExposureKey::Secret(hasher().hash(b"AKIAIOSFODNN7EXAMPLE"))
    );
    assert_eq!(
        a.location.repository.as_deref(),
        Some("github.com/acme/payments")
    );
    assert_eq!(a.location.file.as_deref(), Some("app/config.py"));
    assert_eq!(a.location.line, Some(3));
    assert_eq!(a.location.commit.as_deref(), Some("abc123"));
    assert_eq!(a.committed_at, Some(1_767_323_045));
    assert_eq!(a.validity, Validity::Unknown);
    assert!(a.closed.is_none());
    assert_eq!(
        a.links,
        vec![CredentialRef {
            provider: "aws",
            id: "AKIAIOSFODNN7EXAMPLE".into()
        }]
    );
    let b = &v[1];
    assert_eq!(
        b.location.repository.as_deref(),
        Some("gitlab.example.com/acme/payments")
    );
    assert_eq!(b.committed_at, Some(1_767_319_445)); // +01:00 offset honoured
    assert!(b.links.is_empty());
    assert_eq!(
        b.exposure,
        ExposureKey::Secret(hasher().hash(b"canary-fixture-value-1"))
    );
}

#[test]
fn parses_sarif_report() {
    let v = parse("report.sarif").unwrap();
    assert_eq!(v.len(), 2);
    assert_eq!(v[0].scanner_id, "def456:ci.yml:github-pat:5");
    assert_eq!(v[0].secret_type, "github-pat");
    assert_eq!(
        v[0].exposure,
        ExposureKey::Secret(hasher().hash(b"ghp_canaryFIXTUREcanaryFIXTUREcanary0001"))
    );
    assert_eq!(v[0].committed_at, Some(1_770_076_800));
    // The repository falls back to the report's name.
    assert_eq!(v[0].location.repository.as_deref(), Some("report"));
    // No commit: the fingerprint has three parts, as gitleaks writes it.
    assert_eq!(v[1].scanner_id, "no-commit.env:aws-access-token:1");
    assert_eq!(v[1].links[0].id, "ASIAIOSFODNN7EXAMPL2");
}

#[test]
fn same_secret_in_json_and_sarif_is_one_exposure_key() {
    let h = hasher();
    let json = br#"[{"RuleID":"r","Secret":"shared-value","File":"a","StartLine":1}]"#;
    let sarif = br#"{"version":"2.1.0","runs":[{"results":[{"ruleId":"r","locations":[{"physicalLocation":{"artifactLocation":{"uri":"b"},"region":{"startLine":2,"snippet":{"text":"shared-value"}}}}]}]}]}"#;
    let a = parse_slice(&json[..], "x", &h).unwrap();
    let b = parse_slice(&sarif[..], "y", &h).unwrap();
    assert_eq!(a[0].exposure, b[0].exposure);
    assert_ne!(a[0].scanner_id, b[0].scanner_id);
}

#[test]
fn redacted_reports_fall_back_to_the_fingerprint() {
    let v = parse("redacted.json").unwrap();
    assert_eq!(v.len(), 2);
    assert!(v.iter().all(|f| f.exposure == ExposureKey::ScannerId));
    assert_eq!(v[0].scanner_id, "a.txt:generic-api-key:1");
    assert_eq!(v[1].scanner_id, "b.txt:generic-api-key:2"); // rebuilt
    assert_eq!(v[0].committed_at, None);
    assert_eq!(v[0].location.commit, None);
}

#[test]
fn empty_array_is_a_valid_empty_scan() {
    assert!(parse("empty-array.json").unwrap().is_empty());
    let ws = b"\xEF\xBB\xBF  \n []";
    assert!(parse_slice(&ws[..], "x", &hasher()).unwrap().is_empty());
}

fn format_error(name: &str) -> String {
    match parse(name) {
        Err(ParseError::Format(m)) => m,
        other => panic!("{name}: expected a format error, got {other:?}"),
    }
}

#[test]
fn bad_inputs_are_errors_with_position_and_no_secret() {
    let cases = [
        ("empty.json", "empty file"),
        ("truncated.json", "unexpected end of file"),
        ("malformed.json", "line 3 column"),
        ("wrong-type.json", "wrong type"),
        ("missing-rule.json", "required field is missing"),
        ("non-utf8.json", "line 1 column"),
        ("not-a-report.txt", "not a gitleaks report"),
        ("object-not-sarif.json", "unsupported SARIF version"),
    ];
    for (name, want) in cases {
        let m = format_error(name);
        assert!(m.contains(want), "{name}: {m:?} should contain {want:?}");
        assert!(!m.contains("canary"), "{name}: error leaks input: {m:?}");
    }
}

#[test]
fn large_report_streams() {
    let mut json = String::from("[");
    for i in 0..50_000 {
        if i > 0 {
            json.push(',');
        }
        json.push_str(&format!(
            r#"{{"RuleID":"generic-api-key","Secret":"s{i}","File":"f{i}.py","StartLine":{i},"Commit":"c","Fingerprint":"c:f{i}.py:generic-api-key:{i}"}}"#
        ));
    }
    json.push(']');
    let v = parse_slice(json.as_bytes(), "big", &hasher()).unwrap();
    assert_eq!(v.len(), 50_000);
    assert_eq!(v[49_999].location.line, Some(49_999));
}

#[test]
fn credential_links_are_extracted_and_deduplicated() {
    let ids = credential_links(&[
        Some("AKIAIOSFODNN7EXAMPLE and ASIAIOSFODNN7EXAMPL2"),
        Some("again AKIAIOSFODNN7EXAMPLE"),
        None,
        Some("akiaiosfodnn7example AKIA123"),
    ]);
    let got: Vec<_> = ids.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(got, ["AKIAIOSFODNN7EXAMPLE", "ASIAIOSFODNN7EXAMPL2"]);
}

#[test]
fn repository_links() {
    assert_eq!(
        repository_from_link("https://github.com/o/r/blob/sha/p#L1").as_deref(),
        Some("github.com/o/r")
    );
    assert_eq!(
        repository_from_link("https://gitlab.com/g/s/p/-/blob/sha/f").as_deref(),
        Some("gitlab.com/g/s/p")
    );
    assert_eq!(repository_from_link("https://example.com/x"), None);
    // Credentials in a link are never kept.
    assert_eq!(
        repository_from_link(
            "https://oauth2:glpat-canary-token@gitlab.example.com/g/p/-/blob/sha/f"
        )
        .as_deref(),
        Some("gitlab.example.com/g/p")
    );
}

#[test]
fn an_unsupported_sarif_version_is_not_echoed() {
    let doc = br#"{"version": "canary-version-9", "runs": []}"#;
    let m = match parse_slice(&doc[..], "x", &hasher()) {
        Err(ParseError::Format(m)) => m,
        other => panic!("expected a format error, got {other:?}"),
    };
    assert!(m.contains("unsupported SARIF version"), "{m}");
    assert!(!m.contains("canary"), "{m}");
}
