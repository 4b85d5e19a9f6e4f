//! Helpers of the configuration tests, here and in each source's folder.

use super::{Config, ConfigIssue};
use std::collections::HashMap;
use std::path::Path;

pub fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let m: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| m.get(k).cloned()
}

/// Parse with every source type this build knows.
pub fn parse(
    yaml: &str,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, Vec<ConfigIssue>> {
    crate::sources::registry::parse_config(yaml, base, env)
}

pub fn ok(yaml: &str) -> Config {
    parse(yaml, Path::new("/etc/nhi"), &env_of(&[("SCANS", "/scans")]))
        .unwrap_or_else(|e| panic!("unexpected errors: {e:?}"))
}

pub fn errs(yaml: &str) -> Vec<String> {
    parse(yaml, Path::new("/etc/nhi"), &env_of(&[]))
        .expect_err("config should be rejected")
        .iter()
        .map(|i| i.to_string())
        .collect()
}

/// A self-signed CA certificate in PEM, written to `dir/name`.
pub fn write_ca(dir: &Path, name: &str) -> std::path::PathBuf {
    let cert = rcgen::generate_simple_self_signed(vec!["ca.test".to_string()])
        .expect("generate a certificate");
    let p = dir.join(name);
    std::fs::write(&p, cert.cert.pem()).expect("write the certificate");
    p
}
