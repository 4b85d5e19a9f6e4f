use super::*;
use crate::model::{ExposureKey, Resolution, Validity};
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/detect_secrets")
        .join(name)
}

fn hasher() -> SecretHasher {
    SecretHasher::new([42; 32])
}

/// Parsed as if the baseline sat at the root of /srv/repos/payments.
fn parse(name: &str) -> Result<Vec<ObservedFinding>, ParseError> {
    let data = std::fs::read(fixture(name)).unwrap();
    parse_slice(&data, "/srv/repos/payments/.secrets.baseline", &hasher())
}

fn id16(hashed_secret: &str) -> String {
    hex::encode(&hasher().hash(hashed_secret.as_bytes())[..8])
}

// SHA-1 of the plaintexts, as detect-secrets writes them.
const AWS_ID_SHA1: &str = "25910f981e85ca04baf359199dd0bd4a3ae738b6";

#[test]
fn parses_a_baseline() {
    let v = parse("basic.secrets.baseline").unwrap();
    assert_eq!(v.len(), 4);
    let a = &v[0];
    assert_eq!(
        a.scanner_id,
        format!("deploy/prod.env:AWS Access Key:{}", id16(AWS_ID_SHA1))
    );
    assert_eq!(a.secret_type, "AWS Access Key");
    assert_eq!(
        a.exposure,
        ExposureKey::ScannerSecret(
            hasher().hash(format!("detect-secrets\0{AWS_ID_SHA1}").as_bytes())
        )
    );
    assert_eq!(a.validity, Validity::Unknown);
    assert!(a.closed.is_none());
    assert_eq!(
        a.location,
        Location {
            repository: Some("payments".into()),
            file: Some("deploy/prod.env".into()),
            line: Some(1),
            commit: None,
        }
    );
    assert_eq!(a.committed_at, None);
    assert_eq!(a.detected_at, None);
    assert!(a.links.is_empty());

    // is_verified → live; is_secret: true stays open.
    let b = &v[1];
    assert_eq!(b.secret_type, "Secret Keyword");
    assert_eq!(b.validity, Validity::Live);
    assert!(b.closed.is_none());

    assert_eq!(v[2].secret_type, "Private Key");
    assert_eq!(v[2].location.file.as_deref(), Some("keys/id_rsa"));

    // Audited as a false positive: closed, at the scan time.
    let d = &v[3];
    assert_eq!(d.closed, Some((Resolution::FalsePositive, None)));
    assert_eq!(d.location.line, Some(7));
}

#[test]
fn the_sha1_is_not_kept() {
    let data = std::fs::read_to_string(fixture("basic.secrets.baseline")).unwrap();
    let v = parse("basic.secrets.baseline").unwrap();
    let dump = format!("{v:?}");
    let doc: serde_json::Value = serde_json::from_str(&data).unwrap();
    for list in doc["results"].as_object().unwrap().values() {
        for r in list.as_array().unwrap() {
            let h = r["hashed_secret"].as_str().unwrap();
            assert!(!dump.contains(h), "hashed_secret {h} kept");
            assert!(!dump.contains(&h[..12]), "a prefix of {h} kept");
        }
    }
}

#[test]
fn ids_ignore_line_numbers_and_differ_by_file_and_type() {
    let h = hasher();
    let mk = |file: &str, ty: &str, line: u32| {
        format!(
            r#"{{"results":{{"{file}":[{{"type":"{ty}","filename":"{file}","hashed_secret":"{AWS_ID_SHA1}","is_verified":false,"line_number":{line}}}]}}}}"#
        )
    };
    let id = |s: String| {
        parse_slice(s.as_bytes(), "/r/p/.secrets.baseline", &h).unwrap()[0]
            .scanner_id
            .clone()
    };
    assert_eq!(id(mk("a.py", "T", 1)), id(mk("a.py", "T", 9)));
    assert_ne!(id(mk("a.py", "T", 1)), id(mk("b.py", "T", 1)));
    assert_ne!(id(mk("a.py", "T", 1)), id(mk("a.py", "U", 1)));
    // The id is keyed: another HMAC key gives another id.
    let other = parse_slice(
        mk("a.py", "T", 1).as_bytes(),
        "x",
        &SecretHasher::new([1; 32]),
    )
    .unwrap();
    assert_ne!(id(mk("a.py", "T", 1)), other[0].scanner_id);
}

#[test]
fn slim_baselines_and_missing_filenames() {
    // --slim: no generated_at, no line numbers.
    let v = parse("slim.secrets.baseline").unwrap();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].location.line, None);
    assert_eq!(v[0].secret_type, "Base64 High Entropy String");
    // The filename falls back to the results key.
    let v = parse_slice(
        br#"{"results":{"k.py":[{"type":"T","hashed_secret":"00","is_secret":null}]}}"#,
        ".secrets.baseline",
        &hasher(),
    )
    .unwrap();
    assert_eq!(v[0].location.file.as_deref(), Some("k.py"));
    assert_eq!(v[0].location.repository, None);
    assert!(v[0].closed.is_none());
}

#[test]
fn empty_results_are_a_valid_empty_scan() {
    assert!(parse("empty-results.secrets.baseline").unwrap().is_empty());
    assert!(
        parse_slice(b"\xEF\xBB\xBF {\"results\": {}}", "x", &hasher())
            .unwrap()
            .is_empty()
    );
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
        ("empty.secrets.baseline", "empty file"),
        ("malformed.secrets.baseline", "line 38 column"),
        ("truncated.secrets.baseline", "unexpected end of file"),
        ("wrong-type.secrets.baseline", "wrong type"),
        ("missing-hash.secrets.baseline", "required field is missing"),
        ("no-results.secrets.baseline", "no \"results\" object"),
        ("array.secrets.baseline", "not a detect-secrets baseline"),
        (
            "non-utf8.secrets.baseline",
            "line 3 column 17: not valid UTF-8",
        ),
    ];
    for (name, want) in cases {
        let m = format_error(name);
        assert!(m.contains(want), "{name}: {m:?} should contain {want:?}");
        assert!(!m.contains("canary"), "{name}: error leaks input: {m:?}");
    }
}

#[test]
fn large_baseline() {
    let mut results = serde_json::Map::new();
    for i in 0..50_000 {
        results.insert(
            format!("src/f{i}.py"),
            serde_json::json!([{
                "type": "Secret Keyword", "filename": format!("src/f{i}.py"),
                "hashed_secret": format!("{i:040x}"), "is_verified": i % 10 == 0, "line_number": i + 1
            }]),
        );
    }
    let doc = serde_json::json!({"version": "1.5.0", "results": results});
    let data = serde_json::to_vec_pretty(&doc).unwrap();
    let v = parse_slice(&data, "/r/big/.secrets.baseline", &hasher()).unwrap();
    assert_eq!(v.len(), 50_000);
    assert_eq!(
        v.iter().filter(|f| f.validity == Validity::Live).count(),
        5_000
    );
    let ids: std::collections::HashSet<_> = v.iter().map(|f| &f.scanner_id).collect();
    assert_eq!(ids.len(), 50_000);
}
