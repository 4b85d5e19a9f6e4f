//! Linking a leaked service-account token to a cluster's inventory.
//!
//! A Kubernetes service-account token is a JWT whose claims name what it
//! belongs to. The claims are decoded here — never verified (the exporter
//! has no key and needs none: a forged token links to nothing real) and
//! never stored: only the credential id built from them is kept.
//!
//! - A legacy token (`iss` = `kubernetes/serviceaccount`) names its Secret
//!   and service account: it links to the `legacy_token` credential
//!   [`legacy_token_id`] of that Secret.
//! - A bound token (claim `kubernetes.io`) names its service account (uid)
//!   and expires at `exp`: it links to [`bound_token_id`], which a
//!   `kubernetes` source reports as a `bound_token` credential once a leak
//!   names it and the service account is in its cluster.
//!
//! Hand-written: decoding a JWT payload is base64url + JSON (both already
//! dependencies); JWT crates exist to verify signatures, which is exactly
//! what must not happen here.

use crate::model::CredentialRef;
use base64::Engine;
use regex::Regex;
use serde::Deserialize;
use std::sync::OnceLock;

/// The provider of Kubernetes credentials.
pub const PROVIDER: &str = "kubernetes";
/// A JWT payload longer than this is not a service-account token.
const MAX_PAYLOAD: usize = 16 * 1024;

/// The id of the `legacy_token` credential of a token Secret.
pub fn legacy_token_id(namespace: &str, secret: &str, sa_uid: &str) -> String {
    format!("{namespace}/{secret}@{sa_uid}")
}

/// The id of a leaked bound token: its service account's uid and `exp`.
pub fn bound_token_id(sa_uid: &str, exp: i64) -> String {
    format!("bound/{sa_uid}/{exp}")
}

/// The service-account uid and expiry of a [`bound_token_id`].
pub fn parse_bound_token_id(id: &str) -> Option<(&str, i64)> {
    let rest = id.strip_prefix("bound/")?;
    let (uid, exp) = rest.rsplit_once('/')?;
    (!uid.is_empty()).then_some(())?;
    Some((uid, exp.parse().ok()?))
}

fn jwt_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"eyJ[A-Za-z0-9_-]{4,}\.(eyJ[A-Za-z0-9_-]{4,})\.[A-Za-z0-9_-]{4,}")
            .expect("static regex")
    })
}

#[derive(Deserialize)]
struct Claims {
    iss: Option<String>,
    exp: Option<i64>,
    #[serde(rename = "kubernetes.io/serviceaccount/namespace")]
    legacy_namespace: Option<String>,
    #[serde(rename = "kubernetes.io/serviceaccount/secret.name")]
    legacy_secret: Option<String>,
    #[serde(rename = "kubernetes.io/serviceaccount/service-account.uid")]
    legacy_sa_uid: Option<String>,
    #[serde(rename = "kubernetes.io")]
    bound: Option<BoundClaims>,
}

#[derive(Deserialize)]
struct BoundClaims {
    serviceaccount: Option<NameUid>,
}

#[derive(Deserialize)]
struct NameUid {
    uid: Option<String>,
}

/// The credentials the service-account tokens in `text` link to.
pub fn token_links(text: &str) -> Vec<CredentialRef> {
    let mut out = Vec::new();
    for c in jwt_re().captures_iter(text) {
        let Some(payload) = c.get(1).map(|m| m.as_str()) else {
            continue;
        };
        if payload.len() > MAX_PAYLOAD {
            continue;
        }
        let Ok(json) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload) else {
            continue;
        };
        let Ok(claims) = serde_json::from_slice::<Claims>(&json) else {
            continue;
        };
        if let Some(id) = link_of(claims) {
            let r = CredentialRef {
                provider: PROVIDER,
                id,
            };
            if !out.contains(&r) {
                out.push(r);
            }
        }
    }
    out
}

fn link_of(c: Claims) -> Option<String> {
    let nonempty = |s: Option<String>| s.filter(|s| !s.is_empty());
    if c.iss.as_deref() == Some("kubernetes/serviceaccount") {
        return Some(legacy_token_id(
            &nonempty(c.legacy_namespace)?,
            &nonempty(c.legacy_secret)?,
            &nonempty(c.legacy_sa_uid)?,
        ));
    }
    let uid = nonempty(c.bound?.serviceaccount?.uid)?;
    Some(bound_token_id(&uid, c.exp?))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A token with these claims and a fake signature.
    pub(crate) fn jwt(claims: &serde_json::Value) -> String {
        let e = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        format!(
            "{}.{}.{}",
            e(br#"{"alg":"RS256","kid":"k1"}"#),
            e(claims.to_string().as_bytes()),
            e(b"not-a-real-signature-canary")
        )
    }

    pub(crate) fn legacy(ns: &str, secret: &str, sa: &str, uid: &str) -> String {
        jwt(&serde_json::json!({
            "iss": "kubernetes/serviceaccount",
            "kubernetes.io/serviceaccount/namespace": ns,
            "kubernetes.io/serviceaccount/secret.name": secret,
            "kubernetes.io/serviceaccount/service-account.name": sa,
            "kubernetes.io/serviceaccount/service-account.uid": uid,
            "sub": format!("system:serviceaccount:{ns}:{sa}"),
        }))
    }

    pub(crate) fn bound(ns: &str, sa: &str, uid: &str, exp: i64) -> String {
        jwt(&serde_json::json!({
            "aud": ["https://kubernetes.default.svc.cluster.local"],
            "exp": exp, "iat": exp - 3600, "nbf": exp - 3600,
            "iss": "https://kubernetes.default.svc.cluster.local",
            "kubernetes.io": {
                "namespace": ns,
                "pod": {"name": "api-7d9f", "uid": "pod-uid-1"},
                "serviceaccount": {"name": sa, "uid": uid}
            },
            "sub": format!("system:serviceaccount:{ns}:{sa}"),
        }))
    }

    #[test]
    fn legacy_and_bound_tokens_link_by_their_claims() {
        let text = format!(
            "token: {} and {} again {}",
            legacy("payments", "ci-token-x7", "ci", "uid-1"),
            bound("web", "api", "uid-2", 1_800_000_000),
            legacy("payments", "ci-token-x7", "ci", "uid-1"),
        );
        let ids: Vec<String> = token_links(&text).into_iter().map(|r| r.id).collect();
        assert_eq!(
            ids,
            ["payments/ci-token-x7@uid-1", "bound/uid-2/1800000000"]
        );
        assert_eq!(
            parse_bound_token_id("bound/uid-2/1800000000"),
            Some(("uid-2", 1_800_000_000))
        );
        assert_eq!(parse_bound_token_id("payments/x@u"), None);
    }

    #[test]
    fn other_jwts_and_garbage_link_nothing() {
        let oidc =
            jwt(&serde_json::json!({"iss": "https://accounts.google.com", "sub": "1", "exp": 1}));
        let no_uid =
            jwt(&serde_json::json!({"exp": 5, "kubernetes.io": {"serviceaccount": {"name": "a"}}}));
        let legacy_partial = jwt(&serde_json::json!({"iss": "kubernetes/serviceaccount"}));
        for t in [
            oidc,
            no_uid,
            legacy_partial,
            "eyJhbGci.eyJub3Q.json!!".into(),
            "eyJ.eyJ.x".into(),
        ] {
            assert!(token_links(&t).is_empty(), "{t}");
        }
    }
}
