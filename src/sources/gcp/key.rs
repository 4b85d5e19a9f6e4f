//! Linking a leaked service-account key file to a project's inventory.
//!
//! A key file is JSON naming its key: `"private_key_id": "<40 hex>"`, the
//! last segment of the key's resource name
//! (`projects/p/serviceAccounts/e/keys/<id>`), which is the id of the
//! `sa_key` credential a `gcp` source reports. A leak whose secret or match
//! text holds such a field links to that key — not to the account: a
//! service account has several keys and only the leaked one must go.
//! trufflehog's GCP detector puts the whole key JSON in `RawV2`; gitleaks
//! and GitHub put whatever their rule matched, which links only when it
//! includes the field. JSON escaped inside a string (`\"private_key_id\"`)
//! is recognised too. Nothing but the id is kept.

use crate::model::CredentialRef;
use regex::Regex;
use std::sync::OnceLock;

/// The provider of GCP identities and credentials.
pub const PROVIDER: &str = "gcp";

fn key_id_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r#"\\?"private_key_id\\?"\s*:\s*\\?"([0-9A-Fa-f]{40})\\?""#)
            .expect("static regex")
    })
}

/// The `private_key_id`s of service-account key files in `text`,
/// lowercase (as Google names keys).
pub fn key_links(text: &str) -> Vec<CredentialRef> {
    let mut out: Vec<CredentialRef> = Vec::new();
    for c in key_id_re().captures_iter(text) {
        let id = c[1].to_ascii_lowercase();
        if !out.iter().any(|l| l.id == id) {
            out.push(CredentialRef {
                provider: PROVIDER,
                id,
            });
        }
    }
    out
}

/// The key id of a key's resource name: its last segment.
pub fn key_id(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}
