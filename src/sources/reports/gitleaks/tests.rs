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

#[test]
fn null_is_a_clean_scan() {
    // gitleaks before v8.2.3 (and pipelines that serialise a nil list).
    assert!(parse("null.json").unwrap().is_empty());
    assert!(parse_slice(&b"\xEF\xBB\xBF null \n"[..], "x", &hasher())
        .unwrap()
        .is_empty());
    // SARIF of v8.0 to v8.2.4: `"results": null`.
    assert!(parse("null-results.sarif").unwrap().is_empty());
    for bad in [&b"nul"[..], b"null null", b"nulx", b"null,"] {
        match parse_slice(bad, "x", &hasher()) {
            Err(ParseError::Format(m)) => assert!(m.starts_with("line 1 column"), "{m}"),
            other => panic!("{bad:?}: {other:?}"),
        }
    }
}

#[test]
fn parses_v7_report() {
    let v = parse("v7.json").unwrap();
    assert_eq!(v.len(), 3);
    let a = &v[0];
    assert_eq!(
        a.scanner_id,
        "208ae4669ade2563fcaf9f12922fa2c0a5b37c63:secrets.py:AWS Access Key:13"
    );
    assert_eq!(a.secret_type, "AWS Access Key"); // normalised by the store
    assert_eq!(
        a.exposure,
        ExposureKey::Secret(hasher().hash(b"AKIAIOSFODNN7EXAMPLE"))
    );
    assert_eq!(
        a.location.repository.as_deref(),
        Some("github.com/acme/basic")
    );
    assert_eq!(a.location.file.as_deref(), Some("secrets.py"));
    assert_eq!(a.location.line, Some(13));
    assert_eq!(
        a.location.commit.as_deref(),
        Some("208ae4669ade2563fcaf9f12922fa2c0a5b37c63")
    );
    assert_eq!(a.committed_at, Some(1_631_067_099)); // -05:00 honoured
    assert_eq!(a.validity, Validity::Unknown);
    assert_eq!(
        a.links,
        vec![CredentialRef {
            provider: "aws",
            id: "AKIAIOSFODNN7EXAMPLE".into()
        }]
    );
    // `--no-git`: no commit, Go's zero time, no links: the report's name.
    let b = &v[1];
    assert_eq!(b.scanner_id, "config/app.env:Generic Credential:4");
    assert_eq!(
        b.exposure,
        ExposureKey::Secret(hasher().hash(b"canary-v7-fixture-value"))
    );
    assert_eq!(b.location.commit, None);
    assert_eq!(b.location.line, Some(4));
    assert_eq!(b.committed_at, None);
    assert_eq!(b.location.repository.as_deref(), Some("v7"));
    assert!(b.links.is_empty());
    // `--redact`, no leak URL: the repository URL without its credentials.
    let c = &v[2];
    assert_eq!(c.exposure, ExposureKey::ScannerId);
    assert_eq!(c.scanner_id, "c0ffee:deploy.yml:Gitlab Token:7");
    assert_eq!(
        c.location.repository.as_deref(),
        Some("gitlab.example.com/acme/payments")
    );
    assert_eq!(c.committed_at, Some(1_631_095_200));
    assert!(!format!("{v:?}").contains("canary-v7"));
}

#[test]
fn v7_sarif_hashes_the_offender_not_the_line() {
    let v = parse("v7.sarif").unwrap();
    assert_eq!(v.len(), 1);
    let json = parse("v7.json").unwrap();
    // The same secret as in the JSON report: one exposure.
    assert_eq!(v[0].exposure, json[0].exposure);
    assert_eq!(v[0].scanner_id, json[0].scanner_id);
    assert_eq!(v[0].committed_at, Some(1_631_067_099));
    assert_eq!(v[0].links, json[0].links);
}

#[test]
fn a_v7_report_without_its_rule_is_an_error() {
    let doc = br#"[{"offender":"canary-v7","file":"a","lineNumber":1}]"#;
    match parse_slice(&doc[..], "x", &hasher()) {
        Err(ParseError::Format(m)) => {
            assert!(m.contains("required field is missing"), "{m}");
            assert!(!m.contains("canary"), "{m}");
        }
        other => panic!("{other:?}"),
    }
}
