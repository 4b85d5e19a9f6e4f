//! `--web.config.file`: TLS, client certificates and basic auth on every
//! endpoint, with certificates made for the test.

mod common;
use common::*;
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use std::path::Path;
use std::time::Duration;

struct Pki {
    ca_pem: String,
    server_cert: String,
    server_key: String,
    client_pem: String, // cert + key
}

fn pki() -> Pki {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let server =
        CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server_cert = server.signed_by(&server_key, &ca_cert, &ca_key).unwrap();
    let client = CertificateParams::new(vec!["prometheus".to_string()]).unwrap();
    let client_key = KeyPair::generate().unwrap();
    let client_cert = client.signed_by(&client_key, &ca_cert, &ca_key).unwrap();
    Pki {
        ca_pem: ca_cert.pem(),
        server_cert: server_cert.pem(),
        server_key: server_key.serialize_pem(),
        client_pem: format!("{}{}", client_cert.pem(), client_key.serialize_pem()),
    }
}

fn setup(dir: &Path, web: &str, p: &Pki) -> (std::path::PathBuf, std::path::PathBuf) {
    std::fs::write(dir.join("ca.pem"), &p.ca_pem).unwrap();
    std::fs::write(dir.join("server.pem"), &p.server_cert).unwrap();
    std::fs::write(dir.join("server.key"), &p.server_key).unwrap();
    let cfg = dir.join("nhi.yaml");
    std::fs::create_dir_all(dir.join("reports")).unwrap();
    std::fs::write(
        &cfg,
        "state: {path: state.db}\nsources: [{name: ci, type: gitleaks, interval: 1s, paths: ['reports/*.json']}]\n",
    )
    .unwrap();
    let webf = dir.join("web.yml");
    std::fs::write(&webf, web).unwrap();
    (cfg, webf)
}

fn client(p: &Pki, with_cert: bool) -> reqwest::blocking::Client {
    let mut b = reqwest::blocking::Client::builder()
        .use_rustls_tls()
        .timeout(Duration::from_secs(10))
        .add_root_certificate(reqwest::Certificate::from_pem(p.ca_pem.as_bytes()).unwrap());
    if with_cert {
        b = b.identity(reqwest::Identity::from_pem(p.client_pem.as_bytes()).unwrap());
    }
    b.build().unwrap()
}

fn wait_tls(ex: &Exporter, c: &reqwest::blocking::Client, user: Option<(&str, &str)>) {
    for _ in 0..200 {
        let mut r = c.get(ex.url("/-/healthy"));
        if let Some((u, pw)) = user {
            r = r.basic_auth(u, Some(pw));
        }
        if r.send()
            .map(|r| r.status().as_u16() == 200)
            .unwrap_or(false)
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("TLS endpoint never became healthy:\n{}", ex.log_text());
}

#[test]
fn tls_and_basic_auth_protect_every_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let p = pki();
    let hash = bcrypt::hash("correct horse", 4).unwrap();
    let web = format!(
        "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  min_version: TLS12\nbasic_auth_users:\n  prometheus: '{hash}'\nhttp_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n"
    );
    let (cfg, webf) = setup(dir.path(), &web, &p);
    let ex = Exporter::start_with(
        &cfg,
        &dir.path().join("log"),
        &[&format!("--web.config.file={}", webf.display())],
        "https",
        false,
    );
    let c = client(&p, false);
    wait_tls(&ex, &c, Some(("prometheus", "correct horse")));
    for path in ["/metrics", "/", "/-/healthy", "/-/ready"] {
        let r = c.get(ex.url(path)).send().unwrap();
        assert_eq!(r.status().as_u16(), 401, "{path} without credentials");
        assert_eq!(r.headers()["www-authenticate"], "Basic");
        let r = c
            .get(ex.url(path))
            .basic_auth("prometheus", Some("wrong"))
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 401, "{path} with a wrong password");
    }
    let r = c
        .get(ex.url("/metrics"))
        .basic_auth("prometheus", Some("correct horse"))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert!(r.text().unwrap().contains("nhi_exporter_build_info"));
    // The landing page goes through the same handler: TLS, basic auth, the
    // configured headers, and its own Content-Security-Policy.
    let r = c
        .get(ex.url("/"))
        .basic_auth("prometheus", Some("correct horse"))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert_eq!(
        r.headers()["content-security-policy"],
        nhi_exporter::landing::page::CSP
    );
    assert!(r.text().unwrap().contains("<h2>Headline KPIs</h2>"));
    // Plain HTTP to the TLS port gets no metrics.
    let plain = reqwest::blocking::Client::new()
        .get(format!("http://127.0.0.1:{}/metrics", ex.port))
        .send();
    assert!(plain.map(|r| r.status().as_u16() != 200).unwrap_or(true));
    assert!(!ex.log_text().contains("correct horse"));
}

#[test]
fn client_certificates_are_required_and_verified() {
    let dir = tempfile::tempdir().unwrap();
    let p = pki();
    let web = "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n";
    let (cfg, webf) = setup(dir.path(), web, &p);
    let ex = Exporter::start_with(
        &cfg,
        &dir.path().join("log"),
        &[&format!("--web.config.file={}", webf.display())],
        "https",
        false,
    );
    let with = client(&p, true);
    wait_tls(&ex, &with, None);
    assert_eq!(
        with.get(ex.url("/metrics"))
            .send()
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    let without = client(&p, false);
    assert!(
        without.get(ex.url("/metrics")).send().is_err(),
        "a client without a certificate was served"
    );
}

#[test]
fn invalid_web_config_is_rejected_at_check_and_start() {
    let dir = tempfile::tempdir().unwrap();
    let p = pki();
    let (cfg, webf) = setup(dir.path(), "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  client_auth_type: Sometimes\n", &p);
    let out = std::process::Command::new(BIN)
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!("--web.config.file={}", webf.display()))
        .arg("--config.check")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("client_auth_type"));
    let out = std::process::Command::new(BIN)
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!("--web.config.file={}", webf.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{}", free_port()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("client_auth_type"));
}
