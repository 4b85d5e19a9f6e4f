//! Configuration tests of this source type: its keys, defaults and every
//! validation error, each naming its key path.

use super::auth::KeyFile;
use super::*;
use crate::config::test_support::{env_of, parse};

/// A test-only RSA key generated for this repository (never a Google key).
const FAKE_PEM: &str = include_str!("../../../tests/fixtures/gcp/FAKE-test-only-sa-key.pem");

fn key_json() -> String {
    serde_json::json!({
        "type": "service_account", "project_id": "acme-prod",
        "private_key_id": "0123456789abcdef0123456789abcdef01234567",
        "private_key": FAKE_PEM,
        "client_email": "nhi@acme-prod.iam.gserviceaccount.com",
        "token_uri": "https://oauth2.googleapis.com/token",
    })
    .to_string()
}

fn errors(yaml_source: &str, dir: &std::path::Path) -> Vec<String> {
    let yaml = format!("sources:\n  - {yaml_source}\n");
    parse(&yaml, dir, &env_of(&[]))
        .expect_err(yaml_source)
        .iter()
        .map(|i| i.to_string())
        .collect()
}

#[test]
fn gcp_sources_and_defaults() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("gcp.json"), key_json()).unwrap();
    let c = parse(
        "sources:\n  - {name: a, type: gcp, projects: [acme-prod, acme-dev]}\n  - name: b\n    type: gcp\n    organization: \"123456789012\"\n    credentials_file: gcp.json\n    activity: true\n    endpoints: {iam: \"http://127.0.0.1:9/\", resourcemanager: \"http://127.0.0.1:9\", secretmanager: \"http://127.0.0.1:9\", policyanalyzer: \"http://127.0.0.1:9\"}\n  - {name: c, type: gcp, organization: organizations/42, endpoints: {iam: \"http://127.0.0.1:8\"}}\n",
        dir.path(),
        &env_of(&[]),
    )
    .unwrap();
    let a: &GcpConfig = c.sources[0].settings().unwrap();
    assert_eq!(
        a,
        &GcpConfig {
            estate: Estate::Projects(vec!["acme-prod".into(), "acme-dev".into()]),
            credentials_file: None,
            activity: false,
            endpoints: Endpoints {
                iam: "https://iam.googleapis.com".into(),
                resourcemanager: "https://cloudresourcemanager.googleapis.com".into(),
                secretmanager: "https://secretmanager.googleapis.com".into(),
                policyanalyzer: "https://policyanalyzer.googleapis.com".into(),
            },
        }
    );
    let b: &GcpConfig = c.sources[1].settings().unwrap();
    assert_eq!(b.estate, Estate::Organization("123456789012".into()));
    assert_eq!(
        b.credentials_file.as_deref(),
        Some(dir.path().join("gcp.json").as_path())
    );
    assert!(b.activity);
    assert_eq!(b.endpoints.iam, "http://127.0.0.1:9", "trailing / dropped");
    let c3: &GcpConfig = c.sources[2].settings().unwrap();
    assert_eq!(c3.estate, Estate::Organization("42".into()));
    assert_eq!(c3.endpoints.iam, "http://127.0.0.1:8");
    assert_eq!(
        c3.endpoints.secretmanager, "https://secretmanager.googleapis.com",
        "unset endpoints keep Google's"
    );
    assert_eq!(
        c.sources[1].spec.inventory(),
        Some(crate::model::InventoryKinds {
            provider: "gcp",
            identity_kinds: &["service_account"],
            credential_kinds: &["sa_key", "secret"],
        })
    );
}

#[test]
fn gcp_errors_name_their_keys_and_never_quote_the_key_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("gcp.json"), key_json()).unwrap();
    std::fs::write(
        dir.path().join("broken.json"),
        key_json().replace("MII", "gcp-canary-key-content"),
    )
    .unwrap();
    std::fs::write(dir.path().join("text.json"), "gcp-canary-key-content [").unwrap();
    std::fs::write(
        dir.path().join("ext.json"),
        r#"{"type":"external_account","audience":"gcp-canary-key-content"}"#,
    )
    .unwrap();
    let cases = [
        ("{name: g, type: gcp}", "sources[0]: needs projects"),
        (
            "{name: g, type: gcp, projects: [acme-prod], organization: \"1\"}",
            "sources[0].organization: set either",
        ),
        (
            "{name: g, type: gcp, projects: []}",
            "sources[0].projects: must list at least one",
        ),
        (
            "{name: g, type: gcp, projects: [Acme_Prod]}",
            "sources[0].projects[0]: is not a project id",
        ),
        (
            "{name: g, type: gcp, projects: [acme-prod, acme-prod]}",
            "sources[0].projects[1]: acme-prod is listed twice",
        ),
        (
            "{name: g, type: gcp, organization: acme}",
            "sources[0].organization: must be the organization's number",
        ),
        (
            "{name: g, type: gcp, projects: [acme-prod], credentials_file: \"\"}",
            "sources[0].credentials_file: must not be empty",
        ),
        (
            "{name: g, type: gcp, projects: [acme-prod], credentials_file: missing.json}",
            "sources[0].credentials_file: cannot read",
        ),
        (
            "{name: g, type: gcp, projects: [acme-prod], credentials_file: text.json}",
            "is not a Google credentials file",
        ),
        (
            "{name: g, type: gcp, projects: [acme-prod], credentials_file: broken.json}",
            "private_key is not an RSA key",
        ),
        (
            "{name: g, type: gcp, projects: [acme-prod], credentials_file: ext.json}",
            "credentials of type \"external_account\" are not supported",
        ),
        (
            "{name: g, type: gcp, projects: [acme-prod], endpoints: {iam: \"ftp://x\"}}",
            "sources[0].endpoints.iam: \"ftp://x\" is not an http(s) URL",
        ),
        (
            "{name: g, type: gcp, projects: [acme-prod], endpoints: {asset: \"https://x\"}}",
            "sources[0].endpoints",
        ),
        (
            "{name: g, type: gcp, projects: [acme-prod], regions: [eu]}",
            "sources[0]",
        ),
        (
            "{name: g, type: gcp, projects: [acme-prod], activity: maybe}",
            "sources[0].activity",
        ),
    ];
    for (src, want) in cases {
        let e = errors(src, dir.path());
        assert!(
            e.iter().any(|m| m.contains(want)),
            "{src}: {e:?} lacks {want}"
        );
        assert!(
            !e.iter()
                .any(|m| m.contains("gcp-canary-key-content") || m.contains("PRIVATE KEY")),
            "{e:?} quotes the key file"
        );
    }
}

#[test]
fn key_files_parse_and_sign_a_self_signed_jwt() {
    use base64::Engine;
    let KeyFile::ServiceAccount {
        client_email,
        private_key_id,
        key,
    } = KeyFile::parse(key_json().as_bytes(), "k.json").unwrap()
    else {
        panic!("not a service account key")
    };
    let jwt = auth::self_signed_jwt(&client_email, &private_key_id, &key, 1_800_000_000).unwrap();
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3);
    let dec = |s: &str| -> serde_json::Value {
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(s)
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(
        dec(parts[0]),
        serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": "0123456789abcdef0123456789abcdef01234567"})
    );
    assert_eq!(
        dec(parts[1]),
        serde_json::json!({
            "iss": "nhi@acme-prod.iam.gserviceaccount.com",
            "sub": "nhi@acme-prod.iam.gserviceaccount.com",
            "scope": "https://www.googleapis.com/auth/cloud-platform",
            "iat": 1_800_000_000, "exp": 1_800_003_600,
        })
    );
    // The signature verifies with the key's public half.
    let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(parts[2])
        .unwrap();
    use ring::signature::KeyPair;
    ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        key.public_key().as_ref(),
    )
    .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
    .unwrap();
    let user = KeyFile::parse(
        br#"{"type":"authorized_user","client_id":"c","client_secret":"s","refresh_token":"r"}"#,
        "adc.json",
    )
    .unwrap();
    assert!(
        matches!(user, KeyFile::AuthorizedUser { ref token_uri, .. } if token_uri == "https://oauth2.googleapis.com/token")
    );
    assert!(matches!(
        KeyFile::parse(br#"{"type":"authorized_user","client_id":"c"}"#, "x"),
        Err(auth::AuthError::Incomplete(_))
    ));
}

#[test]
fn project_ids() {
    for ok in ["acme-prod", "a12345", "abcdefghijabcdefghijabcdefghij"] {
        assert!(config::project_id_ok(ok), "{ok}");
    }
    for bad in [
        "acme",
        "1acme-prod",
        "acme-prod-",
        "Acme-prod",
        "acme_prod",
        "abcdefghijabcdefghijabcdefghija",
    ] {
        assert!(!config::project_id_ok(bad), "{bad}");
    }
}
