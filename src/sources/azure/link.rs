//! Linking a leaked Entra client secret to the credential it is.
//!
//! A client secret does not name its application, and Graph never returns
//! a secret's value after its creation: only its `hint`, the first three
//! characters. A leak is linked when the application can be identified:
//! the application (client) id appears next to the secret (in the
//! finding's match, or in trufflehog's Azure detector's `RawV2`
//! `{"clientSecret","clientId","tenantId"}`). The link id is
//! `<appId>/<hint>`; the source gives that alias to the password
//! credential of that application with that hint, which links the leak to
//! it (`ObservedCredential::aliases`). Only the current secret format
//! (`xxx8Q~…`, since 2021) is recognised: older secrets have no marker to
//! tell them from any random string.

use crate::model::CredentialRef;
use regex::Regex;
use std::sync::OnceLock;

pub const PROVIDER: &str = "azure";

/// At most this many distinct client secrets and as many GUIDs are taken
/// from one finding's texts: every pair is a link, so without a cap a
/// report could make one finding hold a quadratic number of links (and
/// the de-duplication quadratic time).
const MAX_PER_KIND: usize = 16;
/// The most links one finding's texts give.
pub const MAX_LINKS: usize = MAX_PER_KIND * MAX_PER_KIND;

/// The alias a leak of a client secret names its credential by.
pub fn client_secret_alias(app_id: &str, hint: &str) -> String {
    format!("{}/{}", app_id.to_ascii_lowercase(), hint)
}

fn secret_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    // Three characters, a digit, `Q~`, then 31 to 34 characters (Entra's
    // current client secret format, as trufflehog's detector matches it).
    RE.get_or_init(|| {
        Regex::new(r"(?:^|[^A-Za-z0-9_~.-])([A-Za-z0-9_~.-]{3})[0-9]Q~[A-Za-z0-9_~.-]{31,34}(?:$|[^A-Za-z0-9_~.-])")
            .expect("static regex")
    })
}

fn guid_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(
            r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b",
        )
        .expect("static regex")
    })
}

/// Link ids of the client secrets in `texts`, one per (GUID, secret) pair
/// found across them: the GUID that is the application's client id links;
/// the others (a tenant id) match no credential and are ignored.
pub fn client_secret_links(texts: &[Option<&str>]) -> Vec<CredentialRef> {
    let mut hints = Vec::new();
    let mut guids = Vec::new();
    for t in texts.iter().flatten() {
        for c in secret_re().captures_iter(t) {
            if let Some(h) = c.get(1) {
                if hints.len() < MAX_PER_KIND && !hints.contains(&h.as_str()) {
                    hints.push(h.as_str());
                }
            }
        }
    }
    if hints.is_empty() {
        return Vec::new();
    }
    for t in texts.iter().flatten() {
        for m in guid_re().find_iter(t) {
            let g = m.as_str().to_ascii_lowercase();
            if guids.len() < MAX_PER_KIND && !guids.contains(&g) {
                guids.push(g);
            }
        }
    }
    let mut out = Vec::new();
    for g in &guids {
        for h in &hints {
            out.push(CredentialRef {
                provider: PROVIDER,
                id: client_secret_alias(g, h),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const APP: &str = "11111111-2222-3333-4444-555555555555";
    const TENANT: &str = "99999999-8888-7777-6666-555555555555";
    // Fake, in Entra's format: `abc` + digit + `Q~` + 34 characters.
    const SECRET: &str = "abc8Q~FAKEfakeFAKEfakeFAKEfakeFAKEfake12";

    #[test]
    fn secret_with_its_client_id_links_by_app_and_hint() {
        let line = format!("AZURE_CLIENT_ID={APP} AZURE_CLIENT_SECRET={SECRET}");
        let links = client_secret_links(&[Some(SECRET), Some(&line)]);
        assert_eq!(
            links,
            vec![CredentialRef {
                provider: "azure",
                id: format!("{APP}/abc")
            }]
        );
    }

    #[test]
    fn trufflehog_raw_v2_names_client_and_tenant() {
        let raw_v2 = format!(
            r#"{{"clientSecret":"{SECRET}","clientId":"{}","tenantId":"{TENANT}"}}"#,
            APP.to_uppercase()
        );
        let ids: Vec<String> = client_secret_links(&[Some(SECRET), Some(&raw_v2)])
            .into_iter()
            .map(|l| l.id)
            .collect();
        assert_eq!(ids, vec![format!("{APP}/abc"), format!("{TENANT}/abc")]);
    }

    #[test]
    fn no_secret_or_no_client_id_links_nothing() {
        assert!(client_secret_links(&[Some(APP)]).is_empty());
        assert!(client_secret_links(&[Some(SECRET)]).is_empty());
        // Not the format: no `Q~` after the digit.
        assert!(client_secret_links(&[Some(&format!(
            "{APP} abc8X~FAKEfakeFAKEfakeFAKEfakeFAKEfake12"
        ))])
        .is_empty());
    }

    #[test]
    fn many_ids_and_secrets_give_a_bounded_number_of_links() {
        let mut text = String::new();
        for i in 0..200 {
            text.push_str(&format!(
                "{i:08x}-2222-3333-4444-555555555555 x{:02}8Q~FAKEfakeFAKEfakeFAKEfakeFAKEfake12\n",
                i % 100
            ));
        }
        let links = client_secret_links(&[Some(&text)]);
        assert_eq!(links.len(), MAX_LINKS);
        assert_eq!(links[0].id, "00000000-2222-3333-4444-555555555555/x00");
    }
}
