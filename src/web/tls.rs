//! `tls_server_config` → rustls. Follows the toolkit's `ConfigToTLSConfig`
//! (`web/tls_config.go`) where rustls can; the exceptions are listed in
//! docs/CONFIGURATION.md ("Web configuration") and asserted by
//! tests/toolkit_parity.rs.

use rustls::crypto::ring as ring_provider;
use rustls::crypto::{CryptoProvider, SupportedKxGroup};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme, SupportedCipherSuite};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    cert: Option<String>,
    key: Option<String>,
    client_ca: Option<String>,
    cert_file: Option<String>,
    key_file: Option<String>,
    client_auth_type: Option<String>,
    client_ca_file: Option<String>,
    cipher_suites: Option<Vec<String>>,
    curve_preferences: Option<Vec<String>>,
    min_version: Option<String>,
    max_version: Option<String>,
    prefer_server_cipher_suites: Option<bool>,
    client_allowed_sans: Option<Vec<String>>,
}

fn set(v: &Option<String>) -> bool {
    v.as_deref().is_some_and(|s| !s.is_empty())
}

impl RawTls {
    /// The toolkit's `IsEnabled`: TLS is on when a certificate, key, client
    /// CA or client auth type is given.
    pub(super) fn is_enabled(&self) -> bool {
        [
            &self.cert,
            &self.key,
            &self.client_ca,
            &self.cert_file,
            &self.key_file,
            &self.client_ca_file,
            &self.client_auth_type,
        ]
        .into_iter()
        .any(set)
    }
}

/// Go's cipher suite names (crypto/tls `CipherSuites` and
/// `InsecureCipherSuites`) and the rustls suite for those rustls has. TLS
/// 1.3 suites are listed by Go but, as in Go, `cipher_suites` does not
/// restrict TLS 1.3.
fn cipher(name: &str) -> Option<Option<SupportedCipherSuite>> {
    use ring_provider::cipher_suite as cs;
    Some(match name {
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" => {
            Some(cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256)
        }
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" => {
            Some(cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384)
        }
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" => Some(cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256),
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384" => Some(cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384),
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"
        | "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305" => {
            Some(cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256)
        }
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256" | "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305" => {
            Some(cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256)
        }
        // TLS 1.3 (not configurable, as in Go) and the CBC, RC4, 3DES and
        // static-RSA suites Go knows but rustls does not implement.
        "TLS_AES_128_GCM_SHA256"
        | "TLS_AES_256_GCM_SHA384"
        | "TLS_CHACHA20_POLY1305_SHA256"
        | "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA"
        | "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA"
        | "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"
        | "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA"
        | "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256"
        | "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256"
        | "TLS_RSA_WITH_AES_128_GCM_SHA256"
        | "TLS_RSA_WITH_AES_256_GCM_SHA384"
        | "TLS_RSA_WITH_AES_128_CBC_SHA"
        | "TLS_RSA_WITH_AES_256_CBC_SHA"
        | "TLS_RSA_WITH_AES_128_CBC_SHA256"
        | "TLS_RSA_WITH_3DES_EDE_CBC_SHA"
        | "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA"
        | "TLS_RSA_WITH_RC4_128_SHA"
        | "TLS_ECDHE_RSA_WITH_RC4_128_SHA"
        | "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA" => None,
        _ => return None,
    })
}

/// Go's curve names and the rustls group for those rustls' ring provider
/// has (not P-521).
fn curve(name: &str) -> Option<Option<&'static dyn SupportedKxGroup>> {
    use ring_provider::kx_group as kx;
    Some(match name {
        "CurveP256" => Some(kx::SECP256R1),
        "CurveP384" => Some(kx::SECP384R1),
        "X25519" => Some(kx::X25519),
        "CurveP521" => None,
        _ => return None,
    })
}

fn version(v: &str, key: &str) -> Result<u8, String> {
    match v {
        "TLS12" => Ok(2),
        "TLS13" => Ok(3),
        "TLS10" | "TLS11" => Err(format!(
            "tls_server_config.{key}: TLS 1.0 and 1.1 are not supported (rustls); use TLS12 or TLS13"
        )),
        _ => Err(format!(
            "tls_server_config.{key}: unknown TLS version; use TLS12 or TLS13"
        )),
    }
}

pub(super) fn build(
    t: RawTls,
    resolve: &dyn Fn(&str) -> PathBuf,
    http2: bool,
) -> Result<rustls::ServerConfig, String> {
    // The toolkit's order of checks and its messages.
    if !set(&t.cert_file) && !set(&t.cert) {
        return Err("tls_server_config: missing one of cert or cert_file".into());
    }
    if !set(&t.key_file) && !set(&t.key) {
        return Err("tls_server_config: missing one of key or key_file".into());
    }
    let certs = match (&t.cert, &t.cert_file) {
        (Some(pem), _) if !pem.is_empty() => {
            certs_from(pem.as_bytes()).map_err(|e| format!("tls_server_config.cert: {e}"))?
        }
        (_, Some(f)) => {
            load_certs(&resolve(f)).map_err(|e| format!("tls_server_config.cert_file: {e}"))?
        }
        _ => return Err("tls_server_config: missing one of cert or cert_file".into()),
    };
    let key = match (&t.key, &t.key_file) {
        (Some(pem), _) if !pem.is_empty() => {
            key_from(pem.as_bytes()).map_err(|e| format!("tls_server_config.key: {e}"))?
        }
        (_, Some(f)) => {
            load_key(&resolve(f)).map_err(|e| format!("tls_server_config.key_file: {e}"))?
        }
        _ => return Err("tls_server_config: missing one of key or key_file".into()),
    };
    let min = version(t.min_version.as_deref().unwrap_or("TLS12"), "min_version")?;
    let max = version(t.max_version.as_deref().unwrap_or("TLS13"), "max_version")?;
    let versions: Vec<&'static rustls::SupportedProtocolVersion> =
        [(2, &rustls::version::TLS12), (3, &rustls::version::TLS13)]
            .into_iter()
            .filter(|(r, _)| *r >= min && *r <= max)
            .map(|(_, v)| v)
            .collect();
    if versions.is_empty() {
        return Err("tls_server_config: min_version is above max_version".into());
    }

    let mut prov: CryptoProvider = ring_provider::default_provider();
    if let Some(names) = &t.cipher_suites {
        let mut tls12 = Vec::new();
        let mut has_h2_cipher = false;
        for (i, n) in names.iter().enumerate() {
            match cipher(n) {
                None => {
                    return Err(format!(
                        "tls_server_config.cipher_suites[{i}]: unknown cipher"
                    ))
                }
                Some(None) => tracing::warn!(
                    key = %format!("tls_server_config.cipher_suites[{i}]"),
                    "cipher suite not implemented by rustls (or TLS 1.3, which is not configurable); ignored"
                ),
                Some(Some(s)) => {
                    has_h2_cipher |= matches!(
                        n.as_str(),
                        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
                            | "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"
                    );
                    tls12.push(s)
                }
            }
        }
        // As net/http does when HTTP/2 is on (the toolkit's default): a
        // TLS 1.2 suite list must hold an HTTP/2-required suite.
        if http2 && min < 3 && !names.is_empty() && !has_h2_cipher {
            return Err("tls_server_config.cipher_suites: TLSConfig.CipherSuites is missing an HTTP/2-required AES_128_GCM_SHA256 cipher (TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 or TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256); add one or set http_server_config.http2: false".into());
        }
        if tls12.is_empty() && max < 3 {
            return Err("tls_server_config.cipher_suites: none of the TLS 1.2 cipher suites is implemented by rustls".into());
        }
        let tls13: Vec<SupportedCipherSuite> = prov
            .cipher_suites
            .iter()
            .filter(|s| s.version() == &rustls::version::TLS13)
            .copied()
            .collect();
        prov.cipher_suites = tls13.into_iter().chain(tls12).collect();
    }
    if let Some(names) = &t.curve_preferences {
        let mut groups = Vec::new();
        for (i, n) in names.iter().enumerate() {
            match curve(n) {
                None => {
                    return Err(format!(
                        "tls_server_config.curve_preferences[{i}]: unknown curve"
                    ))
                }
                Some(None) => tracing::warn!(
                    key = %format!("tls_server_config.curve_preferences[{i}]"),
                    "CurveP521 is not implemented by rustls; ignored"
                ),
                Some(Some(g)) => groups.push(g),
            }
        }
        if groups.is_empty() && !names.is_empty() {
            return Err("tls_server_config.curve_preferences: none of the curves is implemented by rustls (CurveP521 is not); add CurveP256, CurveP384 or X25519".into());
        }
        prov.kx_groups = groups;
    }
    let prov = Arc::new(prov);

    let mode = t.client_auth_type.as_deref().unwrap_or("");
    let ca_given = set(&t.client_ca_file) || set(&t.client_ca);
    let roots = |required: bool| -> Result<Option<Arc<rustls::RootCertStore>>, String> {
        let certs = match (&t.client_ca_file, &t.client_ca) {
            (Some(f), _) if !f.is_empty() => load_certs(&resolve(f))
                .map_err(|e| format!("tls_server_config.client_ca_file: {e}"))?,
            (_, Some(pem)) if !pem.is_empty() => certs_from(pem.as_bytes())
                .map_err(|e| format!("tls_server_config.client_ca: {e}"))?,
            _ if required => {
                return Err(format!(
                    "tls_server_config.client_ca_file (or client_ca) is required with client_auth_type {mode}"
                ))
            }
            _ => return Ok(None),
        };
        let mut store = rustls::RootCertStore::empty();
        for c in certs {
            store
                .add(c)
                .map_err(|e| format!("tls_server_config.client_ca_file: {e}"))?;
        }
        Ok(Some(Arc::new(store)))
    };
    let webpki = |roots: Arc<rustls::RootCertStore>, optional: bool| {
        let b = WebPkiClientVerifier::builder_with_provider(roots, prov.clone());
        let b = if optional {
            b.allow_unauthenticated()
        } else {
            b
        };
        b.build()
            .map_err(|e| format!("tls_server_config.client_ca_file: {e}"))
    };
    let verifier: Option<Arc<dyn ClientCertVerifier>> = match mode {
        "" | "NoClientCert" => {
            if ca_given {
                // As the toolkit: a CA file is read first (a missing file
                // is that error), then the policy is checked.
                if let Some(f) = t.client_ca_file.as_deref().filter(|f| !f.is_empty()) {
                    std::fs::read(resolve(f))
                        .map_err(|e| format!("tls_server_config.client_ca_file: {e}"))?;
                }
                return Err("tls_server_config: client CA's have been configured without a Client Auth Policy (client_ca_file or client_ca needs client_auth_type)".into());
            }
            None
        }
        "RequestClientCert" => Some(Arc::new(AnyClientCert {
            mandatory: false,
            provider: prov.clone(),
        })),
        "RequireAnyClientCert" | "RequireClientCert" => Some(Arc::new(AnyClientCert {
            mandatory: true,
            provider: prov.clone(),
        })),
        // Without a CA no given certificate could be verified; as a client
        // without one is accepted, no certificate is asked for.
        "VerifyClientCertIfGiven" => match roots(false)? {
            Some(r) => Some(webpki(r, true)?),
            None => None,
        },
        "RequireAndVerifyClientCert" => roots(true)?.map(|r| webpki(r, false)).transpose()?,
        _ => {
            return Err("tls_server_config.client_auth_type: invalid ClientAuth (unknown value); one of NoClientCert, RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert".into())
        }
    };
    let verifier = match (verifier, &t.client_allowed_sans) {
        (Some(v), Some(sans)) if !sans.is_empty() => {
            let mut names = Vec::new();
            for (i, s) in sans.iter().enumerate() {
                names.push(ServerName::try_from(s.clone()).map_err(|_| {
                    format!(
                        "tls_server_config.client_allowed_sans[{i}]: not a DNS name or IP address"
                    )
                })?);
            }
            Some(Arc::new(AllowedSans { inner: v, names }) as Arc<dyn ClientCertVerifier>)
        }
        (v, _) => v,
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
    // The toolkit's default is to prefer the server's order.
    cfg.ignore_client_order = t.prefer_server_cipher_suites.unwrap_or(true);
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

fn certs_from(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(crate::config::yaml::pem_error)?;
    if certs.is_empty() {
        return Err("no PEM certificate found".into());
    }
    Ok(certs)
}

fn key_from(pem: &[u8]) -> Result<PrivateKeyDer<'static>, String> {
    use rustls::pki_types::pem::{Error, PemObject};
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        Error::NoItemsFound => "no PEM private key found".into(),
        e => crate::config::yaml::pem_error(e),
    })
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    // The key names the file; its name is not repeated (errors name keys,
    // never values).
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    certs_from(&bytes)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    key_from(&bytes)
}

/// `client_allowed_sans`: after the inner verifier accepted the chain, the
/// client certificate must be valid for one of the allowed names (DNS
/// names and IP addresses; the toolkit also compares e-mail and URI SANs,
/// which webpki does not expose).
#[derive(Debug)]
struct AllowedSans {
    inner: Arc<dyn ClientCertVerifier>,
    names: Vec<ServerName<'static>>,
}

impl ClientCertVerifier for AllowedSans {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }
    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }
    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let ok = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        let ee = webpki::EndEntityCert::try_from(end_entity).map_err(|_| {
            rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding)
        })?;
        if self
            .names
            .iter()
            .any(|n| ee.verify_is_valid_for_subject_name(n).is_ok())
        {
            Ok(ok)
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName,
            ))
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
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
