//! exporter-toolkit parity (issue 17 item 6): the cases of the toolkit's
//! own `web/tls_config_test.go` (TestYAMLFiles run + validate,
//! TestServerBehaviour, TestUsers, TestConfigReloading,
//! TestTLSConfigIsEnabled), run against nhi-exporter with the toolkit's
//! `web/testdata` files (tests/toolkit/, Apache-2.0, see its NOTICE.md).
//!
//! Each case either matches what the Go test expects, or is a documented
//! exception (docs/CONFIGURATION.md, "Web configuration") whose documented
//! behaviour is asserted instead:
//! - CurveP521 is not in rustls' ring provider: a list of only CurveP521
//!   is refused (2 cases);
//! - self-signed client certificates marked CA are refused by webpki
//!   (`CaUsedAsEndEntity`) where Go accepts them (2 cases);
//! - RequireAndVerifyClientCert without a CA is refused (Go verifies
//!   against the system roots), which TestConfigReloading starts with.
//!
//! The Go test's handler answers "Hello World!"; here `/metrics` answers.

mod common;
use base64::Engine;
use common::*;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/toolkit");

fn data(f: &str) -> PathBuf {
    Path::new(DIR).join(f)
}

fn exporter_config(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir.join("reports")).unwrap();
    let cfg = dir.join("nhi.yaml");
    std::fs::write(
        &cfg,
        "state: {path: state.db}\nsources: [{name: ci, type: gitleaks, interval: 1h, paths: ['reports/*.json']}]\n",
    )
    .unwrap();
    cfg
}

/// What a case expects.
#[derive(Clone, Copy, Debug)]
enum Want {
    /// Served: 200.
    Ok,
    /// Refused at load / start, the error containing this (lowercase).
    Refused(&'static str),
    /// The TLS handshake (or the plain request to a TLS port) fails.
    Fails,
    /// This status.
    Status(u16),
}

struct Tally {
    matched: Vec<String>,
    exceptions: Vec<(String, &'static str)>,
    mismatched: Vec<String>,
}

impl Tally {
    fn new() -> Self {
        Self {
            matched: vec![],
            exceptions: vec![],
            mismatched: vec![],
        }
    }
    fn check(
        &mut self,
        name: &str,
        want: Want,
        got: &Result<u16, String>,
        exc: Option<&'static str>,
    ) {
        let ok = match (want, got) {
            (Want::Ok, Ok(200)) => true,
            (Want::Status(s), Ok(c)) => *c == s,
            (Want::Refused(m), Err(e)) => e.to_lowercase().contains(m),
            (Want::Fails, Err(e)) => !e.starts_with("refused:"),
            _ => false,
        };
        match (ok, exc) {
            (true, None) => self.matched.push(name.into()),
            (true, Some(why)) => self.exceptions.push((name.into(), why)),
            (false, _) => self
                .mismatched
                .push(format!("{name}: want {want:?}, got {got:?}")),
        }
    }
    fn finish(self, group: &str) {
        eprintln!(
            "{group}: {} match, {} documented exceptions, {} mismatched",
            self.matched.len(),
            self.exceptions.len(),
            self.mismatched.len()
        );
        for (n, why) in &self.exceptions {
            eprintln!("  exception: {n}: {why}");
        }
        assert!(self.mismatched.is_empty(), "{:#?}", self.mismatched);
    }
}

/// Validate in-process (`Validate` in Go).
fn validate(file: &Path) -> Result<u16, String> {
    nhi_exporter::webconfig::WebConfig::load(file)
        .map(|_| 200)
        .map_err(|e| format!("refused: {e}"))
}

/// Start the daemon with `web`; Err("refused: …") if it exits at start.
fn start(dir: &Path, web: &Path, scheme: &'static str) -> Result<Exporter, String> {
    let cfg = exporter_config(dir);
    let log = dir.join(format!("log-{}", free_port()));
    let ex = Exporter::start_with(
        &cfg,
        &log,
        &[&format!("--web.config.file={}", web.display())],
        scheme,
        false,
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut ex = ex;
    loop {
        if let Some(st) = ex.child.as_mut().unwrap().try_wait().unwrap() {
            let text = ex.log_text();
            ex.child = None;
            return Err(format!("refused: exit {:?}: {text}", st.code()));
        }
        if TcpStream::connect(("127.0.0.1", ex.port)).is_ok() {
            return Ok(ex);
        }
        assert!(
            Instant::now() < deadline,
            "did not start: {}",
            ex.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn run(file: &Path) -> Result<u16, String> {
    let dir = tempfile::tempdir().unwrap();
    let ex = start(dir.path(), file, "http")?;
    let r = plain_get(ex.port, None);
    drop(ex);
    r
}

fn basic(user: &str, pass: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

fn plain_get(port: u16, auth: Option<(&str, &str)>) -> Result<u16, String> {
    let mut r = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap()
        .get(format!("http://localhost:{port}/metrics"));
    if let Some((u, p)) = auth {
        r = r.header("Authorization", basic(u, p));
    }
    r.send()
        .map(|r| r.status().as_u16())
        .map_err(|e| format!("{e:?}"))
}

#[derive(Default, Clone)]
struct TlsClient {
    ciphers: Vec<&'static str>,
    curves: Vec<&'static str>,
    cert: Option<&'static str>,
    auth: Option<(&'static str, &'static str)>,
    want_cipher: Option<&'static str>,
}

fn tls_get(port: u16, c: &TlsClient) -> Result<u16, String> {
    let mut prov = rustls::crypto::ring::default_provider();
    if !c.ciphers.is_empty() {
        // As Go: the list restricts TLS 1.2; TLS 1.3 suites stay offered.
        prov.cipher_suites.retain(|s| {
            s.version() == &rustls::version::TLS13
                || c.ciphers.contains(&format!("{:?}", s.suite()).as_str())
        });
        // The client's order is the list's order.
        let pos = |s: &rustls::SupportedCipherSuite| {
            let n = format!("{:?}", s.suite());
            c.ciphers.iter().position(|x| *x == n).unwrap_or(0)
        };
        prov.cipher_suites.sort_by_key(pos);
    }
    if !c.curves.is_empty() {
        let names: Vec<String> = c
            .curves
            .iter()
            .map(|n| match *n {
                "CurveP256" => "secp256r1".into(),
                "CurveP384" => "secp384r1".into(),
                "CurveP521" => "secp521r1".into(),
                n => n.to_lowercase(),
            })
            .collect();
        prov.kx_groups
            .retain(|g| names.contains(&format!("{:?}", g.name()).to_lowercase()));
    }
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(data("tls-ca-chain.pem")).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let b = rustls::ClientConfig::builder_with_provider(Arc::new(prov))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    let cfg = match c.cert {
        None => b.with_no_client_auth(),
        Some(name) => {
            let certs: Vec<_> = CertificateDer::pem_file_iter(data(&format!("{name}.pem")))
                .unwrap()
                .map(|c| c.unwrap())
                .collect();
            let key = PrivateKeyDer::from_pem_file(data(&format!("{name}.key"))).unwrap();
            b.with_client_auth_cert(certs, key).unwrap()
        }
    };
    let conn =
        rustls::ClientConnection::new(Arc::new(cfg), ServerName::try_from("localhost").unwrap())
            .map_err(|e| e.to_string())?;
    let sock = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    let auth = c
        .auth
        .map(|(u, p)| format!("Authorization: {}\r\n", basic(u, p)))
        .unwrap_or_default();
    tls.write_all(
        format!("GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{auth}\r\n")
            .as_bytes(),
    )
    .map_err(|e| format!("tls: {e}"))?;
    let mut buf = Vec::new();
    let r = tls.read_to_end(&mut buf);
    if buf.is_empty() {
        return Err(format!("tls: {r:?}"));
    }
    if let Some(want) = c.want_cipher {
        let got = tls
            .conn
            .negotiated_cipher_suite()
            .map(|s| format!("{:?}", s.suite()));
        if got.as_deref() != Some(want) {
            return Err(format!("refused: cipher {got:?}, want {want}"));
        }
    }
    let head = String::from_utf8_lossy(&buf[..buf.len().min(20)]).to_string();
    head.get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or(format!("bad response {head:?}"))
}

/// A TLS 1.1 ClientHello (rustls clients cannot speak 1.1): the server
/// must answer with an alert.
fn tls11_hello(port: u16) -> Result<u16, String> {
    let mut body = vec![0x03, 0x02];
    body.extend([7u8; 32]); // random
    body.push(0); // session id
    body.extend([0x00, 0x04, 0xc0, 0x13, 0xc0, 0x14]); // ECDHE_RSA AES CBC
    body.extend([0x01, 0x00]); // null compression
    let mut hs = vec![0x01, 0, 0, body.len() as u8];
    hs.extend(body);
    let mut rec = vec![0x16, 0x03, 0x01, 0, hs.len() as u8];
    rec.extend(hs);
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(&rec).map_err(|e| e.to_string())?;
    let mut b = [0u8; 7];
    match s.read(&mut b) {
        Ok(n) if n > 0 && b[0] == 0x15 => Err(format!("tls alert {:?}", &b[..n])),
        Ok(0) | Err(_) => Err("tls: closed".into()),
        Ok(_) => Ok(0),
    }
}

const P521: &str = "CurveP521 is not implemented by rustls (ring provider): a curve_preferences list of only CurveP521 is refused";
const CA_EE: &str = "webpki refuses a self-signed client certificate marked CA:TRUE (CaUsedAsEndEntity) even when it is the configured client CA; Go accepts it";

#[test]
fn yaml_files() {
    // TestYAMLFiles: each case twice, "run/" (start the daemon) and
    // "validate/" (Validate).
    let cases: &[(&str, &str, Want)] = &[
        (
            "path to config yml invalid",
            "somefile",
            Want::Refused("no such file"),
        ),
        ("empty config yml", "web_config_empty.yml", Want::Ok),
        (
            "invalid config yml (invalid structure)",
            "web_config_junk.yml",
            Want::Refused("invalid type"),
        ),
        (
            "invalid config yml (invalid key)",
            "web_config_junk_key.yml",
            Want::Refused("unknown field \"cert_filse\""),
        ),
        (
            "invalid config yml (cert path empty)",
            "web_config_noAuth_certPath_empty.bad.yml",
            Want::Refused("missing one of cert or cert_file"),
        ),
        (
            "invalid config yml (cert empty)",
            "web_config_noAuth_cert_empty.bad.yml",
            Want::Refused("missing one of cert or cert_file"),
        ),
        (
            "invalid config yml (key path empty)",
            "web_config_noAuth_keyPath_empty.bad.yml",
            Want::Refused("missing one of key or key_file"),
        ),
        (
            "invalid config yml (key empty)",
            "web_config_noAuth_key_empty.bad.yml",
            Want::Refused("missing one of key or key_file"),
        ),
        (
            "invalid config yml (cert path and key path empty)",
            "web_config_noAuth_certPath_keyPath_empty.bad.yml",
            Want::Refused("missing one of cert or cert_file"),
        ),
        (
            "invalid config yml (cert path invalid)",
            "web_config_noAuth_certPath_invalid.bad.yml",
            Want::Refused("no such file"),
        ),
        (
            "invalid config yml (key path invalid)",
            "web_config_noAuth_keyPath_invalid.bad.yml",
            Want::Refused("no such file"),
        ),
        (
            "invalid config yml (cert path and key path invalid)",
            "web_config_noAuth_certPath_keyPath_invalid.bad.yml",
            Want::Refused("no such file"),
        ),
        (
            "invalid config yml (invalid ClientAuth)",
            "web_config_noAuth.bad.yml",
            Want::Refused("without a client auth policy"),
        ),
        (
            "invalid config yml (invalid ClientCAs filepath)",
            "web_config_auth_clientCAs_invalid.bad.yml",
            Want::Refused("no such file"),
        ),
        (
            "invalid config yml (invalid user list)",
            "web_config_auth_user_list_invalid.bad.yml",
            Want::Refused("not a bcrypt hash"),
        ),
        (
            "invalid config yml (bad cipher)",
            "web_config_noAuth_inventedCiphers.bad.yml",
            Want::Refused("unknown cipher"),
        ),
        (
            "invalid config yml (bad curves)",
            "web_config_noAuth_inventedCurves.bad.yml",
            Want::Refused("unknown curve"),
        ),
        (
            "invalid config yml (bad TLS version)",
            "web_config_noAuth_wrongTLSVersion.bad.yml",
            Want::Refused("unknown tls version"),
        ),
    ];
    let mut t = Tally::new();
    for (name, file, want) in cases {
        let f = data(file);
        t.check(&format!("validate/{name}"), *want, &validate(&f), None);
        t.check(&format!("run/{name}"), *want, &run(&f), None);
        // No error echoes a value of the file (errors name keys).
        if let Err(e) = validate(&f) {
            for v in ["hWkNKCp3", "TLS111", "SHA2048", "CurveP257"] {
                assert!(!e.contains(v), "{name}: value echoed: {e}");
            }
        }
    }
    t.finish("TestYAMLFiles");
}

#[test]
fn server_behaviour() {
    let none = TlsClient::default();
    let plain = |port: u16| plain_get(port, None);
    type Case = (
        &'static str,
        Option<&'static str>,
        bool,
        TlsClient,
        Want,
        Option<&'static str>,
    );
    let c = |ciphers: Vec<&'static str>, want_cipher: Option<&'static str>| TlsClient {
        ciphers,
        want_cipher,
        ..Default::default()
    };
    let curves = |curves: Vec<&'static str>| TlsClient {
        curves,
        ..Default::default()
    };
    let cert = |n: &'static str| TlsClient {
        cert: Some(n),
        ..Default::default()
    };
    let r128 = "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256";
    let r256 = "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384";
    // (name, web config (None: no flag), TLS client, client, want, exception)
    let cases: Vec<Case> = vec![
        ("empty string YAMLConfigPath and default client", None, false, none.clone(), Want::Ok, None),
        ("empty string YAMLConfigPath and TLS client", None, true, none.clone(), Want::Fails, None),
        ("valid tls config yml and default client", Some("web_config_noAuth.good.yml"), false, none.clone(), Want::Fails, None),
        ("valid tls config yml and tls client", Some("web_config_noAuth.good.yml"), true, none.clone(), Want::Ok, None),
        ("valid tls config yml (cert and key inline) and tls client", Some("web_config_noAuth_tlsInline.good.yml"), true, none.clone(), Want::Ok, None),
        ("valid tls config yml with TLS 1.1 client", Some("web_config_noAuth.good.yml"), true, TlsClient { want_cipher: Some("TLS11"), ..Default::default() }, Want::Fails, None),
        ("valid tls config yml with all ciphers", Some("web_config_noAuth_allCiphers.good.yml"), true, none.clone(), Want::Ok, None),
        ("valid tls config yml with some ciphers", Some("web_config_noAuth_someCiphers.good.yml"), true, c(vec![r128], None), Want::Ok, None),
        ("valid tls config yml with no common cipher", Some("web_config_noAuth_someCiphers.good.yml"), true, c(vec!["TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA"], None), Want::Fails, None),
        ("valid tls config yml with multiple client ciphers", Some("web_config_noAuth_someCiphers.good.yml"), true, c(vec![r128, r256], Some(r128)), Want::Ok, None),
        ("valid tls config yml with multiple client ciphers, client chooses cipher", Some("web_config_noAuth_someCiphers_noOrder.good.yml"), true, c(vec![r128, r256], Some(r128)), Want::Ok, None),
        ("valid tls config yml with all curves", Some("web_config_noAuth_allCurves.good.yml"), true, none.clone(), Want::Ok, None),
        ("valid tls config yml with some curves", Some("web_config_noAuth_someCurves.good.yml"), true, curves(vec!["CurveP521"]), Want::Refused("none of the curves is implemented"), Some(P521)),
        ("valid tls config yml with no common curves", Some("web_config_noAuth_someCurves.good.yml"), true, curves(vec!["CurveP384"]), Want::Refused("none of the curves is implemented"), Some(P521)),
        ("valid tls config yml with non-http2 ciphers", Some("web_config_noAuth_noHTTP2.good.yml"), true, none.clone(), Want::Ok, None),
        ("valid tls config yml with non-http2 ciphers but http2 enabled", Some("web_config_noAuth_noHTTP2Cipher.bad.yml"), true, none.clone(), Want::Refused("missing an http/2-required"), None),
        ("valid headers config", Some("web_config_headers.good.yml"), false, none.clone(), Want::Ok, None),
        ("invalid X-Content-Type-Options headers config", Some("web_config_headers_content_type_options.bad.yml"), false, none.clone(), Want::Refused("invalid value for"), None),
        ("invalid X-Frame-Options headers config", Some("web_config_headers_frame_options.bad.yml"), false, none.clone(), Want::Refused("invalid value for"), None),
        ("HTTP header that can not be overridden", Some("web_config_headers_extra_header.bad.yml"), false, none.clone(), Want::Refused("can not be configured"), None),
        ("valid tls config yml and tls client with RequireAnyClientCert (present certificate)", Some("tls_config_noAuth.requireanyclientcert.good.yml"), true, cert("client_selfsigned"), Want::Ok, None),
        ("valid tls config yml (cert from file, key inline) and tls client with RequireAnyClientCert (present certificate)", Some("tls_config_noAuth.requireanyclientcert.good.yml"), true, cert("client_selfsigned"), Want::Ok, None),
        ("valid tls config yml and tls client with RequireAndVerifyClientCert (present certificate)", Some("tls_config_noAuth.requireandverifyclientcert.good.yml"), true, cert("client_selfsigned"), Want::Fails, Some(CA_EE)),
        ("valid tls config yml and tls client with VerifyPeerCertificate (present good SAN DNS entry)", Some("web_config_auth_client_san.good.yaml"), true, cert("client2_selfsigned"), Want::Fails, Some(CA_EE)),
        ("valid tls config yml and tls client with VerifyPeerCertificate (present invalid SAN DNS entries)", Some("web_config_auth_client_san.bad.yaml"), true, cert("client2_selfsigned"), Want::Fails, None),
        ("valid rate limiter (no rate limiter set up) that doesn't block", Some("web_config_rate_limiter_nonblocking.yaml"), false, TlsClient { want_cipher: Some("x11"), ..Default::default() }, Want::Ok, None),
        ("valid rate limiter with an interval of one second", Some("web_config_rate_limiter_one_second.yaml"), false, TlsClient { want_cipher: Some("x11"), ..Default::default() }, Want::Status(429), None),
    ];
    let mut t = Tally::new();
    for (name, web, use_tls, client, want, exc) in cases {
        let dir = tempfile::tempdir().unwrap();
        let started = match web {
            None => {
                let cfg = exporter_config(dir.path());
                Ok(Exporter::start(&cfg, &dir.path().join("log"), &[]))
            }
            Some(f) => start(dir.path(), &data(f), if use_tls { "https" } else { "http" }),
        };
        let got = match started {
            Err(e) => Err(e),
            Ok(ex) => {
                if client.want_cipher == Some("TLS11") {
                    tls11_hello(ex.port)
                } else if client.want_cipher == Some("x11") {
                    // Requests: 10 → the Go loop sends 11; the first
                    // non-200 ends it.
                    let mut last = Ok(200);
                    for _ in 0..=10 {
                        last = plain(ex.port);
                        if last != Ok(200) {
                            break;
                        }
                    }
                    last
                } else if use_tls {
                    tls_get(ex.port, &client)
                } else {
                    plain(ex.port)
                }
            }
        };
        t.check(name, want, &got, exc);
    }
    t.finish("TestServerBehaviour");
}

/// Ignored by default: the toolkit's users files give bob cost 18, so with
/// this exporter's timing-safe checks (one bcrypt per distinct cost) every
/// uncached check costs bcrypt 10 + 12 + 18, over 2 minutes for these cases
/// on a shared 2-core machine. Run with `--ignored`.
#[test]
#[ignore]
fn users() {
    // bob has cost 18 in these files: every uncached check runs bcrypt at
    // 10, 12 and 18 (see docs: costs should be equal), so the checks run
    // in parallel.
    type Creds = Option<(&'static str, &'static str)>;
    let cases: Vec<(&str, &str, bool, Creds, Want)> = vec![
        (
            "without basic auth",
            "web_config_users_noTLS.good.yml",
            false,
            None,
            Want::Status(401),
        ),
        (
            "with correct basic auth",
            "web_config_users_noTLS.good.yml",
            false,
            Some(("dave", "dave123")),
            Want::Ok,
        ),
        (
            "without basic auth and TLS",
            "web_config_users.good.yml",
            true,
            None,
            Want::Status(401),
        ),
        (
            "with correct basic auth and TLS",
            "web_config_users.good.yml",
            true,
            Some(("dave", "dave123")),
            Want::Ok,
        ),
        (
            "with another correct basic auth and TLS",
            "web_config_users.good.yml",
            true,
            Some(("carol", "carol123")),
            Want::Ok,
        ),
        (
            "with bad password and TLS",
            "web_config_users.good.yml",
            true,
            Some(("dave", "bad")),
            Want::Status(401),
        ),
        (
            "with bad username and TLS",
            "web_config_users.good.yml",
            true,
            Some(("nonexistent", "nonexistent")),
            Want::Status(401),
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    let d1 = dir.path().join("a");
    let d2 = dir.path().join("b");
    let plain_ex = start(&d1, &data("web_config_users_noTLS.good.yml"), "http").unwrap();
    let tls_ex = start(&d2, &data("web_config_users.good.yml"), "https").unwrap();
    let results: Vec<Result<u16, String>> = std::thread::scope(|s| {
        let hs: Vec<_> = cases
            .iter()
            .map(|(_, _, use_tls, auth, _)| {
                let (pp, tp) = (plain_ex.port, tls_ex.port);
                s.spawn(move || {
                    if *use_tls {
                        tls_get(
                            tp,
                            &TlsClient {
                                auth: *auth,
                                ..Default::default()
                            },
                        )
                    } else {
                        plain_get(pp, *auth)
                    }
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut t = Tally::new();
    for ((name, _, _, _, want), got) in cases.iter().zip(&results) {
        t.check(name, *want, got, None);
    }
    t.finish("TestUsers");
}

#[test]
fn config_reloading_and_tls_is_enabled() {
    let mut t = Tally::new();
    // TestConfigReloading starts with web_config_noAuth.good.blocking.yml
    // (RequireAndVerifyClientCert, no CA), which Go accepts and which
    // blocks clients without a certificate; here it is refused at start.
    let dir = tempfile::tempdir().unwrap();
    let r = start(
        dir.path(),
        &data("web_config_noAuth.good.blocking.yml"),
        "https",
    )
    .map(|_| 200);
    t.check(
        "TestConfigReloading",
        Want::Refused("client_ca_file (or client_ca) is required"),
        &r,
        Some("RequireAndVerifyClientCert without a CA is refused (Go verifies against the system roots)"),
    );
    // TestTLSConfigIsEnabled, through configs: TLS on or off.
    let crt = data("server.crt");
    let key = data("server.key");
    let indent = |f: &Path| {
        std::fs::read_to_string(f)
            .unwrap()
            .lines()
            .map(|l| format!("    {l}\n"))
            .collect::<String>()
    };
    let cases: Vec<(&str, String, Want)> = vec![
        ("empty config", "".into(), Want::Status(0)),
        (
            "only non-enabling fields set",
            "tls_server_config:\n  min_version: TLS12\n  prefer_server_cipher_suites: true\n"
                .into(),
            Want::Status(0),
        ),
        (
            "cert_file and key_file set",
            format!(
                "tls_server_config:\n  cert_file: {}\n  key_file: {}\n",
                crt.display(),
                key.display()
            ),
            Want::Status(1),
        ),
        (
            "inline cert and key set",
            format!(
                "tls_server_config:\n  cert: |\n{}  key: |\n{}",
                indent(&crt),
                indent(&key)
            ),
            Want::Status(1),
        ),
        (
            "only client CA file set",
            format!("tls_server_config:\n  client_ca_file: {}\n", crt.display()),
            Want::Refused("missing one of cert or cert_file"),
        ),
        (
            "only client auth type set",
            "tls_server_config:\n  client_auth_type: RequireAndVerifyClientCert\n".into(),
            Want::Refused("missing one of cert or cert_file"),
        ),
    ];
    for (name, text, want) in cases {
        let f = dir.path().join("w.yml");
        std::fs::write(&f, text).unwrap();
        let got = nhi_exporter::webconfig::WebConfig::load(&f)
            .map(|w| u16::from(w.tls.is_some()))
            .map_err(|e| format!("refused: {e}"));
        t.check(&format!("TestTLSConfigIsEnabled/{name}"), want, &got, None);
    }
    t.finish("TestConfigReloading + TestTLSConfigIsEnabled");
}

/// Not a toolkit case: `client_allowed_sans` with a CA-issued client
/// certificate (the toolkit's own are self-signed CAs, see CA_EE).
#[test]
fn client_allowed_sans_with_a_ca_issued_certificate() {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let dir = tempfile::tempdir().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    std::fs::write(dir.path().join("ca.pem"), ca_cert.pem()).unwrap();
    let client = |san: &str| {
        let k = KeyPair::generate().unwrap();
        let c = CertificateParams::new(vec![san.to_string()])
            .unwrap()
            .signed_by(&k, &ca_cert, &ca_key)
            .unwrap();
        (c.pem(), k.serialize_pem())
    };
    let run_with = |allowed: &str, san: &str| -> Result<u16, String> {
        let (c, k) = client(san);
        let sub = tempfile::tempdir().unwrap();
        std::fs::write(sub.path().join("c.pem"), c).unwrap();
        std::fs::write(sub.path().join("c.key"), k).unwrap();
        let web = sub.path().join("web.yml");
        std::fs::write(
            &web,
            format!(
                "tls_server_config:\n  cert_file: {}\n  key_file: {}\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {}\n  client_allowed_sans: [{allowed}]\n",
                data("server.crt").display(),
                data("server.key").display(),
                dir.path().join("ca.pem").display()
            ),
        )
        .unwrap();
        let ex = start(sub.path(), &web, "https")?;
        // The client identity comes from files named like the toolkit's.
        let cert: Vec<_> = CertificateDer::pem_file_iter(sub.path().join("c.pem"))
            .unwrap()
            .map(|c| c.unwrap())
            .collect();
        let key = PrivateKeyDer::from_pem_file(sub.path().join("c.key")).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(data("tls-ca-chain.pem")).unwrap() {
            roots.add(c.unwrap()).unwrap();
        }
        let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(cert, key)
        .unwrap();
        let conn = rustls::ClientConnection::new(
            Arc::new(cfg),
            ServerName::try_from("localhost").unwrap(),
        )
        .unwrap();
        let sock = TcpStream::connect(("127.0.0.1", ex.port)).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, sock);
        tls.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        let r = tls.read_to_end(&mut buf);
        if buf.is_empty() {
            return Err(format!("{r:?}"));
        }
        Ok(String::from_utf8_lossy(&buf[9..12]).parse().unwrap())
    };
    assert_eq!(run_with("one, test3, two", "test3"), Ok(200));
    assert!(run_with("bad", "test3").is_err());
    let _ = Command::new("true").stdout(Stdio::null()).status();
}
