use super::*;
use base64::Engine;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn basic_auth_users() {
    let dir = tempfile::tempdir().unwrap();
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    let f = write(
        dir.path(),
        "web.yml",
        &format!("basic_auth_users:\n  alice: '{hash}'\n"),
    );
    let w = WebConfig::load(&f).unwrap();
    assert!(w.auth_required());
    let b = |s: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(s)
        )
    };
    assert!(w.authorize(Some(&b("alice:s3cret"))));
    assert!(w.authorize(Some(&b("alice:s3cret")))); // cached
    assert!(!w.authorize(Some(&b("alice:wrong"))));
    assert!(!w.authorize(Some(&b("bob:s3cret"))));
    assert!(!w.authorize(None));
    assert!(!w.authorize(Some("Bearer x")));
    assert!(!w.authorize(Some("Basic !!!")));
}

#[test]
fn rejects_bad_configs() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    write(dir.path(), "c.pem", &cert.cert.pem());
    write(dir.path(), "k.pem", &cert.key_pair.serialize_pem());
    for (text, want) in [
        (
            "tls_server_config: {cert_file: c.pem, key_file: k.pem, client_auth_type: canary-mode}",
            "tls_server_config.client_auth_type: invalid ClientAuth",
        ),
        (
            "tls_server_config: {cert_file: c.pem, key_file: canary-missing.pem}",
            "tls_server_config.key_file:",
        ),
        ("bogus: 1", "unknown key \"bogus\""),
        (
            "tls_server_config: {cert_file: c.pem, key_file: k.pem, min_version: canary-tls}",
            "tls_server_config.min_version: unknown TLS version",
        ),
        ("basic_auth_users: {a: plain}", "not a bcrypt hash"),
        (
            "tls_server_config: {key_file: k}",
            "missing one of cert or cert_file",
        ),
        (
            "tls_server_config: {cert_file: /nope, key_file: /nope}",
            "cert_file",
        ),
    ] {
        let f = write(dir.path(), "w.yml", text);
        let e = WebConfig::load(&f).unwrap_err().to_string();
        assert!(e.contains(want), "{text}: {e}");
        assert!(!e.contains("canary"), "a value is echoed: {e}");
    }
}
