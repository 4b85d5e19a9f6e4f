//! The PostgreSQL store's TLS against a real server: a throwaway CA and a
//! server certificate for `localhost` and `127.0.0.1` made with the
//! `openssl` CLI at test time, a TLS-only PostgreSQL (`common::pg::tls_server`:
//! `ssl=on`, `hostssl` lines only, `log_connections=on`), and the real
//! binary's `--once` (and daemon) with each `sslmode`.
//!
//! What `src/store/db/pg.rs` promises, and this proves: every TLS
//! connection verifies the server's certificate *and name* with rustls
//! against `sslrootcert` (or the system roots), whatever the mode, which is
//! stricter than libpq (whose `prefer`/`require` encrypt without verifying
//! and whose `verify-ca` checks no name); `disable` is plaintext, which a
//! `hostssl`-only server refuses; errors are clear and never show the URL's
//! password. A test binary of its own: it starts its own server.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The throwaway PKI: the CA that signed the server's certificate, another
/// CA that signed nothing here, and the server's certificate and key.
struct Pki {
    ca: PathBuf,
    other_ca: PathBuf,
    server: pg::Tls,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = match Command::new("openssl").args(args).current_dir(dir).output() {
        Ok(out) => out,
        Err(e) => panic!(
            "cannot run the openssl CLI ({e}): install it (Debian/Ubuntu: apt-get install openssl; \
             Fedora: dnf install openssl; macOS: brew install openssl)"
        ),
    };
    assert!(
        out.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A self-signed CA `name.crt` (its key `name.key`) in `dir`.
fn make_ca(dir: &Path, name: &str, cn: &str) -> PathBuf {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.crt"),
            "-days",
            "2",
            "-subj",
            &format!("/CN={cn}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    dir.join(format!("{name}.crt"))
}

/// Made once per test binary, in a directory a later run removes (the
/// CA keys are deleted once used; no key is ever committed).
fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let dir = pg::scratch_dir();
        let ca = make_ca(&dir, "ca", "nhi-exporter test CA");
        let other_ca = make_ca(&dir, "other-ca", "nhi-exporter unrelated CA");
        openssl(
            &dir,
            &[
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=localhost",
            ],
        );
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\n\
             basicConstraints=critical,CA:FALSE\n\
             keyUsage=critical,digitalSignature\n\
             extendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        openssl(
            &dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-set_serial",
                "2",
                "-days",
                "2",
                "-extfile",
                "server.ext",
                "-out",
                "server.crt",
            ],
        );
        for f in ["ca.key", "other-ca.key", "server.csr"] {
            std::fs::remove_file(dir.join(f)).unwrap();
        }
        Pki {
            ca: ca.clone(),
            other_ca,
            server: pg::Tls {
                cert: dir.join("server.crt"),
                key: dir.join("server.key"),
                ca,
            },
        }
    })
}

fn server() -> &'static pg::PgServer {
    pg::tls_server(&pki().server)
}

/// The URL of database `db` on the TLS server by `host`, with the password
/// and the `query` parameters (sslmode, sslrootcert...).
fn pg_url(host: &str, db: &str, query: &str) -> String {
    format!(
        "postgres://{}:{}@{host}:{}/{db}?{query}",
        pg::USER,
        pg::PASSWORD,
        server().port
    )
}

fn ca() -> String {
    pki().ca.display().to_string()
}

/// What the server logged of the connections to database `db` that it
/// authorized (`log_connections=on`).
fn authorized(db: &str) -> Vec<String> {
    let word = format!("database={db}");
    server()
        .log()
        .lines()
        .filter(|l| l.contains("connection authorized:") && l.split_whitespace().any(|w| w == word))
        .map(str::to_string)
        .collect()
}

/// Every connection the server authorized to `db` was TLS 1.3, and there
/// was at least one.
fn assert_all_tls(db: &str) {
    let lines = authorized(db);
    assert!(
        !lines.is_empty(),
        "no connection to {db} authorized; log:\n{}",
        server().log()
    );
    for l in &lines {
        assert!(l.contains("SSL enabled (protocol=TLSv1.3"), "not TLS: {l}");
    }
}

/// A directory with a gitleaks report of one finding and a config whose
/// store is the PostgreSQL database of `url` (in `url_file`).
fn setup(url: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let reports = dir.path().join("reports");
    std::fs::create_dir_all(&reports).unwrap();
    write_report(
        &reports.join("r.json"),
        &[gl_finding(
            "generic-api-key",
            "nhi-canary-7e6f5a4b-pg-tls",
            "src/app.py",
            7,
            "c1",
        )],
    );
    let url_file = dir.path().join("pg-url");
    std::fs::write(&url_file, url).unwrap();
    let cfg = dir.path().join("nhi.yaml");
    std::fs::write(
        &cfg,
        format!(
            "state: {{backend: postgres, url_file: {}, hash_key_file: {}}}\nsources:\n  - name: ci\n    type: gitleaks\n    interval: 1m\n    timeout: 10s\n    paths: [\"{}/*.json\"]\n",
            url_file.display(),
            dir.path().join("hmac.key").display(),
            reports.display()
        ),
    )
    .unwrap();
    (dir, cfg)
}

fn run_once(cfg: &Path) -> Output {
    Command::new(BIN)
        .arg(format!("--config.file={}", cfg.display()))
        .arg("--once")
        .output()
        .unwrap()
}

/// `--once` with the store at `url` succeeds: the finding is counted, and
/// every connection the server authorized to `db` was TLS.
fn assert_stored_over_tls(db: &str, url: &str) {
    server().fresh_db(db);
    let (_dir, cfg) = setup(url);
    let out = run_once(&cfg);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let m = Metrics::parse(&stdout);
    assert_eq!(m.get("nhi_source_up", &[("source", "ci")]), Some(1.0));
    assert_eq!(
        m.get("nhi_exposed_secrets", &[("validity", "unknown")]),
        Some(1.0),
        "{stdout}"
    );
    assert!(!stderr.contains(pg::PASSWORD) && !stdout.contains(pg::PASSWORD));
    assert_all_tls(db);
    // The store is in that database: the finding was written over TLS.
    let findings: i64 = server()
        .client(db)
        .query_one("SELECT COUNT(*) FROM findings", &[])
        .unwrap()
        .get(0);
    assert_eq!(findings, 1);
}

/// `--once` with the store at `url` fails before any store is written:
/// a non-zero exit code (not a signal), stderr naming the database (as
/// `postgres://HOST:PORT/DB`) and holding every `reasons` text, the
/// password nowhere, and no connection to `db` authorized by the server.
fn assert_refused(db: &str, url: &str, reasons: &[&str]) -> String {
    server().fresh_db(db);
    let (_dir, cfg) = setup(url);
    let out = run_once(&cfg);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    // Shown with --nocapture: the messages an operator would read.
    eprintln!("{db}: {stderr}");
    let code = out.status.code();
    assert!(
        code.is_some_and(|c| c != 0),
        "exit {:?}; stderr: {stderr}",
        out.status
    );
    for reason in reasons {
        assert!(stderr.contains(reason), "{reason:?} not in: {stderr}");
    }
    let host = url::Url::parse(url)
        .unwrap()
        .host_str()
        .unwrap()
        .to_string();
    let shown = format!("postgres://{host}:{}/{db}", server().port);
    assert!(stderr.contains(&shown), "{shown} not in: {stderr}");
    for (what, text) in [("stderr", &*stderr), ("stdout", &*stdout)] {
        assert!(
            !text.contains(pg::PASSWORD),
            "the password in {what}: {text}"
        );
        assert!(
            !text.contains("nhi-canary-7e6f5a4b-pg-tls"),
            "the secret in {what}"
        );
    }
    assert_eq!(
        authorized(db),
        Vec::<String>::new(),
        "{db} was connected to"
    );
    stderr
}

#[test]
fn verify_full_with_the_servers_ca_stores_over_tls() {
    assert_stored_over_tls(
        "tls_full_name",
        &pg_url(
            "localhost",
            "tls_full_name",
            &format!("sslmode=verify-full&sslrootcert={}", ca()),
        ),
    );
}

#[test]
fn verify_full_checks_an_ip_address_against_the_certificates_ip_san() {
    assert_stored_over_tls(
        "tls_full_ip",
        &pg_url(
            "127.0.0.1",
            "tls_full_ip",
            &format!("sslmode=verify-full&sslrootcert={}", ca()),
        ),
    );
}

/// `require` verifies too (libpq's `require` would encrypt without
/// verifying: this exporter never sends its password to an unverified
/// server). With the right `sslrootcert` it connects over TLS...
#[test]
fn require_with_the_servers_ca_stores_over_tls() {
    assert_stored_over_tls(
        "tls_require",
        &pg_url(
            "localhost",
            "tls_require",
            &format!("sslmode=require&sslrootcert={}", ca()),
        ),
    );
}

/// ... and without it the certificate (from a CA the system does not
/// trust) is refused, where libpq would connect.
#[test]
fn require_without_the_ca_is_refused_as_unverified() {
    assert_refused(
        "tls_require_noca",
        &pg_url("localhost", "tls_require_noca", "sslmode=require"),
        &["invalid peer certificate", "UnknownIssuer"],
    );
}

/// No `sslmode`: `prefer`, the default. The server offers TLS, so TLS it
/// is, verified as every TLS connection is.
#[test]
fn the_default_prefer_uses_tls_and_verifies_it() {
    assert_stored_over_tls(
        "tls_prefer",
        &pg_url("localhost", "tls_prefer", &format!("sslrootcert={}", ca())),
    );
    // An unverifiable certificate is an error, not a fall back to
    // plaintext (libpq's `prefer` would connect, encrypted, unverified).
    assert_refused(
        "tls_prefer_noca",
        &pg_url("localhost", "tls_prefer_noca", "sslmode=prefer"),
        &["invalid peer certificate", "UnknownIssuer"],
    );
}

#[test]
fn verify_full_with_another_ca_is_refused() {
    assert_refused(
        "tls_wrong_ca",
        &pg_url(
            "localhost",
            "tls_wrong_ca",
            &format!(
                "sslmode=verify-full&sslrootcert={}",
                pki().other_ca.display()
            ),
        ),
        &[
            "error performing TLS handshake",
            "invalid peer certificate",
            "UnknownIssuer",
        ],
    );
}

/// The server's certificate is for `localhost` and `127.0.0.1`: reached
/// (at 127.0.0.1, `hostaddr`) under another name, it is refused. The same
/// with `verify-ca`, which in libpq checks no name: here every mode does.
#[test]
fn a_name_not_in_the_certificate_is_refused() {
    for (db, mode) in [
        ("tls_bad_name_full", "verify-full"),
        ("tls_bad_name_ca", "verify-ca"),
    ] {
        assert_refused(
            db,
            &pg_url(
                "pg.nhi-test.invalid",
                db,
                &format!("hostaddr=127.0.0.1&sslmode={mode}&sslrootcert={}", ca()),
            ),
            &[
                "invalid peer certificate",
                "certificate not valid for name \"pg.nhi-test.invalid\"",
            ],
        );
    }
}

#[test]
fn plaintext_is_refused_by_a_hostssl_only_server() {
    assert_refused(
        "tls_plain",
        &pg_url("localhost", "tls_plain", "sslmode=disable"),
        &[
            "no pg_hba.conf entry for host \"127.0.0.1\"",
            "no encryption",
            "(28000)",
        ],
    );
}

/// A running exporter's connections (the writer and the pooled readers),
/// seen from the server: every one is TLS 1.3 with the certificate's
/// name verified, in `pg_stat_ssl`.
#[test]
fn a_running_exporters_connections_are_all_tls() {
    let db = "tls_daemon";
    server().fresh_db(db);
    let (dir, cfg) = setup(&pg_url(
        "localhost",
        db,
        &format!("sslmode=verify-full&sslrootcert={}", ca()),
    ));
    let mut e = Exporter::start(&cfg, &dir.path().join("log"), &[]);
    e.wait_for("the first poll", |m| {
        m.get("nhi_source_up", &[("source", "ci")]) == Some(1.0)
            && m.get("nhi_exposed_secrets", &[("validity", "unknown")]) == Some(1.0)
    });
    let row = server()
        .client("postgres")
        .query_one(
            "SELECT COUNT(*), COUNT(*) FILTER (WHERE s.ssl AND s.version = 'TLSv1.3'), \
             COUNT(*) FILTER (WHERE a.client_addr = '127.0.0.1') \
             FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.datname = $1",
            &[&db],
        )
        .unwrap();
    let (all, tls, tcp): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    assert!(all >= 1, "no connection of the exporter to {db}");
    assert_eq!(tls, all, "connections of the exporter without TLS 1.3");
    assert_eq!(tcp, all, "connections of the exporter not over TCP");
    let (status, _) = e.stop();
    assert!(status.success(), "{status:?}");
    assert!(!e.log_text().contains(pg::PASSWORD));
}
