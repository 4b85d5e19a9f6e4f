//! `--web.config.file`: the Prometheus exporter-toolkit web configuration
//! format (`tls_server_config`, `http_server_config`, `basic_auth_users`),
//! strict like the original: unknown keys are errors.

use base64::Engine;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

#[derive(Debug, thiserror::Error)]
#[error("web config {file}: {message}")]
pub struct WebConfigError {
    pub file: PathBuf,
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    tls_server_config: Option<RawTls>,
    http_server_config: Option<RawHttp>,
    basic_auth_users: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert_file: Option<String>,
    key_file: Option<String>,
    client_auth_type: Option<String>,
    client_ca_file: Option<String>,
    min_version: Option<String>,
    max_version: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    http2: Option<bool>,
    headers: Option<BTreeMap<String, String>>,
}

/// The validated web configuration.
pub struct WebConfig {
    pub tls: Option<Arc<rustls::ServerConfig>>,
    users: HashMap<String, String>,
    pub headers: Vec<(String, String)>,
    /// sha256(user, password, hash) of credentials already verified, so
    /// bcrypt (deliberately slow) runs once per distinct credential.
    verified: Mutex<HashMap<[u8; 32], bool>>,
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConfig")
            .field("tls", &self.tls.is_some())
            .field("users", &self.users.len())
            .finish()
    }
}

impl WebConfig {
    /// No TLS, no authentication.
    pub fn plain() -> Self {
        Self {
            tls: None,
            users: HashMap::new(),
            headers: Vec::new(),
            verified: Mutex::new(HashMap::new()),
        }
    }

    pub fn load(file: &Path) -> Result<Self, WebConfigError> {
        let text = std::fs::read_to_string(file).map_err(|e| WebConfigError {
            file: file.to_path_buf(),
            message: format!("cannot read: {e}"),
        })?;
        Self::from_text(&text, file)
    }

    /// Parse the text of the web configuration `file` (relative paths in
    /// it are resolved against its directory; the files it names are read).
    pub fn from_text(text: &str, file: &Path) -> Result<Self, WebConfigError> {
        let err = |m: String| WebConfigError {
            file: file.to_path_buf(),
            message: m,
        };
        let base = file.parent().unwrap_or_else(|| Path::new("."));
        let raw: Raw = serde_path_to_error::deserialize(serde_yaml::Deserializer::from_str(text))
            .map_err(|e| {
            err(format!(
                "{}: {}",
                e.path(),
                crate::config::yaml::friendly(e.inner().to_string())
            ))
        })?;
        let resolve = |p: &str| {
            let p = Path::new(p);
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };
        let tls = match raw.tls_server_config {
            None => None,
            Some(t) => Some(Arc::new(build_tls(t, &resolve).map_err(err)?)),
        };
        let mut users = HashMap::new();
        for (user, hash) in raw.basic_auth_users.unwrap_or_default() {
            let ok =
                hash.len() == 60 && ["$2a$", "$2b$", "$2y$"].iter().any(|p| hash.starts_with(p));
            if !ok {
                return Err(err(format!(
                    "basic_auth_users.{user}: not a bcrypt hash; create one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`"
                )));
            }
            users.insert(user, hash);
        }
        let mut headers = Vec::new();
        if let Some(h) = raw.http_server_config {
            if h.http2 == Some(true) {
                tracing::debug!(
                    "http_server_config.http2 is accepted; this server speaks HTTP/1.1"
                );
            }
            for (k, v) in h.headers.unwrap_or_default() {
                if hyper::header::HeaderName::from_bytes(k.as_bytes()).is_err()
                    || hyper::header::HeaderValue::from_str(&v).is_err()
                {
                    return Err(err(format!(
                        "http_server_config.headers.{k}: invalid header"
                    )));
                }
                headers.push((k, v));
            }
        }
        Ok(Self {
            tls,
            users,
            headers,
            verified: Mutex::new(HashMap::new()),
        })
    }

    pub fn auth_required(&self) -> bool {
        !self.users.is_empty()
    }

    /// Check an `Authorization` header value against `basic_auth_users`.
    pub fn authorize(&self, header: Option<&str>) -> bool {
        if self.users.is_empty() {
            return true;
        }
        let Some(encoded) = header.and_then(|h| h.strip_prefix("Basic ")) else {
            return false;
        };
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
            return false;
        };
        let Ok(decoded) = String::from_utf8(decoded) else {
            return false;
        };
        let Some((user, pass)) = decoded.split_once(':') else {
            return false;
        };
        // Unknown users are checked against a dummy hash so that timing does
        // not reveal which user names exist.
        const DUMMY: &str = "$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi";
        let hash = self.users.get(user).map(String::as_str).unwrap_or(DUMMY);
        let mut d = Sha256::new();
        d.update(user.as_bytes());
        d.update([0]);
        d.update(pass.as_bytes());
        d.update([0]);
        d.update(hash.as_bytes());
        let key: [u8; 32] = d.finalize().into();
        if let Some(ok) = self
            .verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return *ok && self.users.contains_key(user);
        }
        let ok = bcrypt::verify(pass, hash).unwrap_or(false) && self.users.contains_key(user);
        let mut cache = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() > 1024 {
            cache.clear();
        }
        cache.insert(key, ok);
        ok
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn build_tls(t: RawTls, resolve: &dyn Fn(&str) -> PathBuf) -> Result<rustls::ServerConfig, String> {
    let cert_file = t
        .cert_file
        .ok_or("tls_server_config.cert_file is required")?;
    let key_file = t.key_file.ok_or("tls_server_config.key_file is required")?;
    let certs = load_certs(&resolve(&cert_file))
        .map_err(|e| format!("tls_server_config.cert_file: {e}"))?;
    let key =
        load_key(&resolve(&key_file)).map_err(|e| format!("tls_server_config.key_file: {e}"))?;
    let version =
        |v: &str, key: &str| -> Result<&'static rustls::SupportedProtocolVersion, String> {
            match v {
                "TLS12" => Ok(&rustls::version::TLS12),
                "TLS13" => Ok(&rustls::version::TLS13),
                "TLS10" | "TLS11" => Err(format!(
                "tls_server_config.{key}: {v} is insecure and not supported; use TLS12 or TLS13"
            )),
                _ => Err(format!(
                    "tls_server_config.{key}: unknown version; use TLS12 or TLS13"
                )),
            }
        };
    let min = version(t.min_version.as_deref().unwrap_or("TLS12"), "min_version")?;
    let max = version(t.max_version.as_deref().unwrap_or("TLS13"), "max_version")?;
    let versions: Vec<&'static rustls::SupportedProtocolVersion> =
        [&rustls::version::TLS12, &rustls::version::TLS13]
            .into_iter()
            .filter(|v| {
                let rank = |x: &rustls::SupportedProtocolVersion| {
                    if x.version == rustls::ProtocolVersion::TLSv1_2 {
                        0
                    } else {
                        1
                    }
                };
                rank(v) >= rank(min) && rank(v) <= rank(max)
            })
            .collect();
    if versions.is_empty() {
        return Err("tls_server_config: min_version is above max_version".into());
    }
    let mode = t.client_auth_type.as_deref().unwrap_or("NoClientCert");
    let roots = || -> Result<Arc<rustls::RootCertStore>, String> {
        let ca = t.client_ca_file.as_deref().ok_or_else(|| {
            format!("tls_server_config.client_ca_file is required with client_auth_type {mode}")
        })?;
        let mut store = rustls::RootCertStore::empty();
        for c in load_certs(&resolve(ca))
            .map_err(|e| format!("tls_server_config.client_ca_file: {e}"))?
        {
            store
                .add(c)
                .map_err(|e| format!("tls_server_config.client_ca_file: {e}"))?;
        }
        Ok(Arc::new(store))
    };
    let prov = provider();
    let verifier: Option<Arc<dyn ClientCertVerifier>> = match mode {
        "NoClientCert" => None,
        "RequestClientCert" => Some(Arc::new(AnyClientCert { mandatory: false, provider: prov.clone() })),
        "RequireAnyClientCert" => Some(Arc::new(AnyClientCert { mandatory: true, provider: prov.clone() })),
        "VerifyClientCertIfGiven" => Some(
            WebPkiClientVerifier::builder_with_provider(roots()?, prov.clone())
                .allow_unauthenticated()
                .build()
                .map_err(|e| format!("tls_server_config.client_ca_file: {e}"))?,
        ),
        "RequireAndVerifyClientCert" => Some(
            WebPkiClientVerifier::builder_with_provider(roots()?, prov.clone())
                .build()
                .map_err(|e| format!("tls_server_config.client_ca_file: {e}"))?,
        ),
        _ => {
            return Err("tls_server_config.client_auth_type: unknown value; one of NoClientCert, RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert".into())
        }
    };
    let builder = rustls::ServerConfig::builder_with_provider(prov)
        .with_protocol_versions(&versions)
        .map_err(|e| format!("tls_server_config: {e}"))?;
    let builder = match verifier {
        None => builder.with_no_client_auth(),
        Some(v) => builder.with_client_cert_verifier(v),
    };
    let mut cfg = builder.with_single_cert(certs, key).map_err(|e| {
        format!("tls_server_config: certificate and key do not match or are invalid: {e}")
    })?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject;
    // The key names the file; its name is not repeated (errors name keys,
    // never values).
    let err = |e| crate::config::yaml::pem_error(e);
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(err)?
        .collect::<Result<_, _>>()
        .map_err(err)?;
    if certs.is_empty() {
        return Err("no PEM certificate found".into());
    }
    Ok(certs)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    use rustls::pki_types::pem::{Error, PemObject};
    PrivateKeyDer::from_pem_file(path).map_err(|e| match e {
        Error::NoItemsFound => "no PEM private key found".into(),
        e => crate::config::yaml::pem_error(e),
    })
}

/// `RequestClientCert` / `RequireAnyClientCert`: a client certificate is
/// asked for (or required) but, as in Go's crypto/tls, not verified against
/// a CA. rustls has no built-in verifier for this, hence this small one; the
/// handshake signature is still checked with the provider's algorithms.
#[derive(Debug)]
struct AnyClientCert {
    mandatory: bool,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ClientCertVerifier for AnyClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }
    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
                "tls_server_config.client_auth_type: unknown value",
            ),
            (
                "tls_server_config: {cert_file: c.pem, key_file: canary-missing.pem}",
                "tls_server_config.key_file:",
            ),
            ("bogus: 1", "unknown key \"bogus\""),
            (
                "tls_server_config: {cert_file: c.pem, key_file: k.pem, min_version: canary-tls}",
                "tls_server_config.min_version: unknown version",
            ),
            ("basic_auth_users: {a: plain}", "not a bcrypt hash"),
            ("tls_server_config: {key_file: k}", "cert_file is required"),
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
}
