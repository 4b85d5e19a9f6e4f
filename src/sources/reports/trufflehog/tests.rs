use super::*;
use crate::model::{CredentialRef, ExposureKey, Validity};
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/trufflehog")
        .join(name)
}

fn hasher() -> SecretHasher {
    SecretHasher::new([42; 32])
}

fn parse(name: &str) -> Result<Vec<ObservedFinding>, ParseError> {
    let data = std::fs::read(fixture(name)).unwrap();
    parse_slice(&data, &format!("/reports/{name}"), &hasher())
}

fn hash16(v: &str) -> String {
    hex::encode(&hasher().hash(v.as_bytes())[..8])
}

const AWS_ID: &str = "AKIAIOSFODNN7EXAMPLE";
const AWS_V2: &str = "AKIAIOSFODNN7EXAMPLEwJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const GH: &str = "ghp_canaryTRUFFLEcanaryTRUFFLEcanary00001";
const PK: &str =
    "-----BEGIN RSA PRIVATE KEY-----\nnhi-canary-trufflehog-private-key-body\n-----END RSA PRIVATE KEY-----\n";

#[test]
fn parses_git_github_and_filesystem_results() {
    let v = parse("basic.jsonl").unwrap();
    assert_eq!(v.len(), 3);

    // Git source, verified AWS key: RawV2 (id + secret) identifies the
    // finding, Raw (the key id, gitleaks' `Secret`) the exposure.
    let a = &v[0];
    assert_eq!(
        a.scanner_id,
        format!(
            "AWS:{}:9f1c2d3e4b5a69788796a5b4c3d2e1f009182736:deploy/prod.env:3",
            hash16(AWS_V2)
        )
    );
    assert_eq!(a.secret_type, "AWS");
    assert_eq!(
        a.exposure,
        ExposureKey::Secret(hasher().hash(AWS_ID.as_bytes()))
    );
    assert_eq!(a.validity, Validity::Live);
    assert_eq!(
        a.location,
        Location {
            repository: Some("github.com/acme/payments".into()),
            file: Some("deploy/prod.env".into()),
            line: Some(3),
            commit: Some("9f1c2d3e4b5a69788796a5b4c3d2e1f009182736".into()),
        }
    );
    assert_eq!(a.committed_at, Some(1_767_323_045)); // 2026-01-02 03:04:05 +0000
    assert_eq!(a.detected_at, None);
    assert!(a.closed.is_none());
    assert_eq!(
        a.links,
        vec![CredentialRef {
            provider: "aws",
            id: AWS_ID.into()
        }]
    );

    // Github source, verification failed: unknown, not inactive.
    let b = &v[1];
    assert_eq!(b.secret_type, "Github");
    assert_eq!(b.validity, Validity::Unknown);
    assert_eq!(
        b.exposure,
        ExposureKey::Secret(hasher().hash(GH.as_bytes()))
    );
    assert_eq!(
        b.scanner_id,
        format!(
            "Github:{}:0a1b2c3d4e5f60718293a4b5c6d7e8f901234567:ci/release.yml:12",
            hash16(GH)
        )
    );
    assert_eq!(
        b.location.repository.as_deref(),
        Some("github.com/acme/web")
    );
    assert_eq!(b.committed_at, Some(1_770_109_200)); // 10:00 +01:00 = 09:00 UTC
    assert!(b.links.is_empty());

    // Filesystem source: no commit, the repository falls back to the
    // report's name.
    let c = &v[2];
    assert_eq!(c.secret_type, "PrivateKey");
    assert_eq!(c.validity, Validity::Unknown);
    assert_eq!(
        c.exposure,
        ExposureKey::Secret(hasher().hash(PK.as_bytes()))
    );
    assert_eq!(
        c.scanner_id,
        format!("PrivateKey:{}::/srv/checkout/keys/id_rsa:1", hash16(PK))
    );
    assert_eq!(c.location.repository.as_deref(), Some("basic"));
    assert_eq!(c.location.commit, None);
    assert_eq!(c.committed_at, None);
}

#[test]
fn nothing_secret_is_kept() {
    let v = parse("basic.jsonl").unwrap();
    let dump = format!("{v:?}");
    for s in [
        "wJalrXUtnFEMI",
        GH,
        "nhi-canary-trufflehog-private-key-body",
        "dev@example.com",
        "ci-deployer",
    ] {
        assert!(!dump.contains(s), "{s} kept in {dump}");
    }
}

#[test]
fn same_raw_as_gitleaks_secret_is_one_exposure() {
    let h = hasher();
    let th = parse_slice(
        br#"{"DetectorName":"AWS","Raw":"AKIAIOSFODNN7EXAMPLE","RawV2":"AKIAIOSFODNN7EXAMPLEsecret"}"#,
        "t",
        &h,
    )
    .unwrap();
    let gl = crate::sources::reports::gitleaks::parse_slice(
        br#"[{"RuleID":"aws-access-token","Secret":"AKIAIOSFODNN7EXAMPLE","File":"x","StartLine":1}]"#,
        "g",
        &h,
    )
    .unwrap();
    assert_eq!(th[0].exposure, gl[0].exposure);
}

#[test]
fn crlf_and_bom_are_tolerated() {
    let v = parse("crlf-bom.jsonl").unwrap();
    assert_eq!(v.len(), 2);
    let basic = parse("basic.jsonl").unwrap();
    assert_eq!(v[0].scanner_id, basic[0].scanner_id);
    assert_eq!(v[1].exposure, basic[2].exposure);
}

#[test]
fn empty_files_are_valid_empty_scans() {
    // trufflehog prints nothing when it finds nothing.
    assert!(parse("empty.jsonl").unwrap().is_empty());
    assert!(parse("blank-lines.jsonl").unwrap().is_empty());
}

#[test]
fn minimal_and_unusual_results() {
    let h = hasher();
    let data = concat!(
        // No metadata at all; unknown fields ignored.
        r#"{"DetectorName":"Slack","Raw":"xoxb-1","Future":{"x":[1,2]},"SourceMetadata":null}"#,
        "\n",
        // Raw empty: RawV2 is the value.
        r#"{"DetectorName":"URI","Raw":"","RawV2":"https://u:p@h.example"}"#,
        "\n",
        // No value at all: keyed by the finding id.
        r#"{"DetectorName":"X","Raw":""}"#,
        "\n",
        // Odd metadata: a string line, an unknown source, a credential in the
        // repository URL, a Go time.String() timestamp.
        r#"{"DetectorName":"Y","Raw":"v","SourceMetadata":{"Data":{"Gitlab":{"repository":"https://oauth2:glpat-x@gitlab.example.com/g/p.git","line":"7","file":"a","timestamp":"2026-01-02 03:04:05.123 +0000 UTC"}}}}"#,
        "\n",
        r#"{"DetectorName":"Z","Raw":"w","SourceMetadata":{"Data":{"Webhook":{"vector":{"timestamp":{"seconds":1}}}}}}"#,
    );
    let v = parse_slice(data.as_bytes(), "/r/x.jsonl", &h).unwrap();
    assert_eq!(v.len(), 5);
    assert_eq!(v[0].location.repository.as_deref(), Some("x"));
    assert_eq!(v[0].scanner_id, format!("Slack:{}:::", hash16("xoxb-1")));
    assert_eq!(
        v[1].exposure,
        ExposureKey::Secret(h.hash(b"https://u:p@h.example"))
    );
    assert_eq!(v[2].exposure, ExposureKey::ScannerId);
    assert_eq!(v[2].scanner_id, "X:-:::");
    assert_eq!(
        v[3].location.repository.as_deref(),
        Some("gitlab.example.com/g/p")
    );
    assert_eq!(v[3].location.line, Some(7));
    assert_eq!(v[3].committed_at, Some(1_767_323_045));
    assert_eq!(v[4].location.file, None);
}

#[test]
fn timestamps() {
    assert_eq!(
        parse_timestamp("2026-01-02 03:04:05 +0000"),
        Some(1_767_323_045)
    );
    assert_eq!(
        parse_timestamp("2026-01-02 04:04:05 +0100"),
        Some(1_767_323_045)
    );
    assert_eq!(parse_timestamp("2026-01-02T03:04:05Z"), Some(1_767_323_045));
    assert_eq!(parse_timestamp("yesterday"), None);
    assert_eq!(parse_timestamp(""), None);
}

fn format_error(name: &str) -> String {
    match parse(name) {
        Err(ParseError::Format(m)) => m,
        other => panic!("{name}: expected a format error, got {other:?}"),
    }
}

#[test]
fn a_bad_line_rejects_the_file_naming_the_line_and_no_secret() {
    let cases = [
        ("malformed.jsonl", "line 2 column"),
        ("truncated.jsonl", "line 2 column"),
        ("wrong-type.jsonl", "line 2 column"),
        ("missing-detector.jsonl", "line 1 column"),
        ("non-utf8.jsonl", "line 2 column 43: not valid UTF-8"),
        ("gitleaks-array.json", "line 1: not a trufflehog result"),
        ("not-json.txt", "line 1: not a trufflehog result"),
    ];
    for (name, want) in cases {
        let m = format_error(name);
        assert!(
            m.starts_with(want),
            "{name}: {m:?} should start with {want:?}"
        );
        assert!(!m.contains("canary"), "{name}: error leaks input: {m:?}");
        assert!(!m.contains("AKIA"), "{name}: error leaks input: {m:?}");
    }
    assert!(format_error("truncated.jsonl").contains("unexpected end of file"));
    assert!(format_error("wrong-type.jsonl").contains("wrong type"));
    assert!(format_error("missing-detector.jsonl").contains("required field is missing"));
    assert!(format_error("gitleaks-array.json").contains("JSON array"));
}

#[test]
fn large_report() {
    let mut s = String::new();
    for i in 0..50_000 {
        s.push_str(&format!(
            r#"{{"SourceMetadata":{{"Data":{{"Git":{{"commit":"c","file":"f{i}.py","line":{i},"repository":"https://git.example.com/r.git","timestamp":"2026-01-02 03:04:05 +0000"}}}}}},"DetectorName":"Generic","DecoderName":"PLAIN","Verified":{},"Raw":"s{i}","RawV2":"","Redacted":"","ExtraData":null}}"#,
            i % 2 == 0
        ));
        s.push('\n');
    }
    let v = parse_slice(s.as_bytes(), "big", &hasher()).unwrap();
    assert_eq!(v.len(), 50_000);
    assert_eq!(v[49_999].location.line, Some(49_999));
    assert_eq!(v[0].location.line, None); // line 0 = unknown
    assert_eq!(
        v.iter().filter(|f| f.validity == Validity::Live).count(),
        25_000
    );
    // One bad line at the very end still rejects the whole file.
    s.push_str("{\"DetectorName\":\"Generic\",\"Raw\":\n");
    match parse_slice(s.as_bytes(), "big", &hasher()) {
        Err(ParseError::Format(m)) => assert!(m.starts_with("line 50001 column"), "{m}"),
        other => panic!("{:?}", other.map(|v| v.len())),
    }
}

#[test]
fn unverified_is_inactive_only_when_opted_in_and_without_a_verification_error() {
    let line = |verified: bool, err: &str| {
        format!(
            r#"{{"DetectorName":"Github","Verified":{verified},"Raw":"ghp_x{verified}{}"{err}}}"#,
            err.len()
        )
    };
    let report = [
        line(true, ""),
        line(false, ""),
        line(false, r#","VerificationError":"""#),
        line(false, r#","VerificationError":null"#),
        line(false, r#","VerificationError":"dial tcp: no such host""#),
        line(true, r#","VerificationError":"ignored when verified""#),
    ]
    .join("\n");
    let validities =
        |v: Vec<ObservedFinding>| -> Vec<Validity> { v.into_iter().map(|f| f.validity).collect() };
    let off = parse_slice(report.as_bytes(), "r.jsonl", &hasher()).unwrap();
    assert_eq!(
        validities(off),
        [
            Validity::Live,
            Validity::Unknown,
            Validity::Unknown,
            Validity::Unknown,
            Validity::Unknown,
            Validity::Live
        ]
    );
    let on = parse_slice_unverified_inactive(report.as_bytes(), "r.jsonl", &hasher()).unwrap();
    assert_eq!(
        validities(on),
        [
            Validity::Live,
            Validity::Inactive,
            Validity::Inactive,
            Validity::Inactive,
            Validity::Unknown,
            Validity::Live
        ]
    );
    // The fixture: verified, verification error, unverified.
    let data = std::fs::read(fixture("basic.jsonl")).unwrap();
    let v = parse_slice_unverified_inactive(&data, "/reports/basic.jsonl", &hasher()).unwrap();
    assert_eq!(
        validities(v),
        [Validity::Live, Validity::Unknown, Validity::Inactive]
    );
}
