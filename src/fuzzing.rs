//! Fuzzing entry points: one function per parser of outside input, each
//! feeding the bytes to the parser and checking its invariants. The
//! `cargo fuzz` targets under `fuzz/` call these, and so does the stable
//! smoke test `tests/fuzz_smoke.rs` (seed corpora plus deterministic
//! mutations), so both exercise the same checks.
//!
//! Invariants, for every target:
//! - the parser never panics (a panic is the crash libFuzzer reports);
//! - an error never quotes the input: the parsers promise that errors
//!   name a position (line, column, record, field), never content. Seeds
//!   and mutations plant [`CANARY`] in every field; an error text that
//!   contains it (in any letter case) is a failure. Only key names may be
//!   echoed (a configuration error names its key path): for the web
//!   configuration an error may contain the canary only when a mapping key
//!   does. The configuration still names some identifier values back (a
//!   region, an organization, a URL's scheme and host): there the check
//!   covers key names and credential values (`token`, `secret_id`...) and
//!   the values `${VAR}` expands to, and is skipped when the canary is in
//!   another value.
//!
//! Not part of the API: `#[doc(hidden)]`, no stability promise.

use crate::hashing::SecretHasher;
use crate::model::{CredentialRef, ObservedFinding};
use crate::sources::reports::files::ParseError;
use std::path::Path;

/// The marker planted in inputs; an error text must never contain it.
pub const CANARY: &str = "CANARY";

/// A fuzzing entry: the input in, a panic when an invariant fails.
pub type Entry = fn(&[u8]);

/// Every target by name, as `fuzz/fuzz_targets/<name>.rs` and
/// `fuzz/corpus/<name>/` are named.
pub const TARGETS: &[(&str, Entry)] = &[
    ("gitleaks", gitleaks),
    ("trufflehog", trufflehog),
    ("detect_secrets", detect_secrets),
    ("github_alerts", github_alerts),
    ("gitlab_page", gitlab_page),
    ("vault_list", vault_list),
    ("vault_login", vault_login),
    ("vault_approle", vault_approle),
    ("vault_kv", vault_kv),
    ("vault_token_lookup", vault_token_lookup),
    ("aws_credential_report", aws_credential_report),
    ("credential_links", credential_links),
    ("config", config),
    ("web_config", web_config),
];

/// Panics when `message` quotes the canary.
fn check_error(target: &str, message: &str) {
    assert!(
        !contains_canary(message),
        "{target}: an error quotes the input: {message:?}"
    );
}

fn contains_canary(s: &str) -> bool {
    s.to_ascii_uppercase().contains(CANARY)
}

fn hasher() -> SecretHasher {
    SecretHasher::new([7; 32])
}

fn report(name: &str, data: &[u8], parse: crate::sources::reports::files::Parser) {
    match parse(data, "/reports/fuzz.json", &hasher()) {
        Ok(findings) => check_findings(name, &findings),
        Err(ParseError::Format(m)) => check_error(name, &m),
        Err(ParseError::Io(e)) => check_error(name, &e.to_string()),
    }
}

/// What every parsed finding must satisfy.
fn check_findings(name: &str, findings: &[ObservedFinding]) {
    for f in findings {
        assert!(!f.scanner_id.is_empty(), "{name}: empty scanner id");
        check_links(name, &f.links);
    }
}

fn check_links(name: &str, links: &[CredentialRef]) {
    for (i, l) in links.iter().enumerate() {
        assert!(
            ["aws", "kubernetes", "azure"].contains(&l.provider),
            "{name}: unknown provider {}",
            l.provider
        );
        assert!(!l.id.is_empty(), "{name}: empty credential id");
        assert!(
            !links[..i].contains(l),
            "{name}: duplicate link {}/{}",
            l.provider,
            l.id
        );
    }
}

/// gitleaks JSON (v8 and v7 layouts, `null`) and SARIF reports.
pub fn gitleaks(data: &[u8]) {
    report(
        "gitleaks",
        data,
        crate::sources::reports::gitleaks::parse_slice,
    );
}

/// trufflehog JSON lines, with and without `unverified_is_inactive`.
pub fn trufflehog(data: &[u8]) {
    report(
        "trufflehog",
        data,
        crate::sources::reports::trufflehog::parse_slice,
    );
    report(
        "trufflehog",
        data,
        crate::sources::reports::trufflehog::parse_slice_unverified_inactive,
    );
}

/// detect-secrets baselines.
pub fn detect_secrets(data: &[u8]) {
    report(
        "detect_secrets",
        data,
        crate::sources::reports::detect_secrets::parse_slice,
    );
}

/// One page of GitHub secret scanning alerts.
pub fn github_alerts(data: &[u8]) {
    match crate::sources::github::parse_alerts(data, "acme/payments", &hasher()) {
        Ok(findings) => check_findings("github_alerts", &findings),
        Err(m) => check_error("github_alerts", &m),
    }
}

/// One GitLab GraphQL page, read as a group's and as a project's.
pub fn gitlab_page(data: &[u8]) {
    use crate::sources::gitlab::{parse_page, Field, PageError};
    for field in [Field::Group, Field::Project] {
        match parse_page(data, field, Some("acme/payments")) {
            Ok(page) => {
                check_findings("gitlab_page", &page.findings);
                if let Some(next) = &page.next {
                    assert!(!next.is_empty(), "gitlab_page: empty cursor");
                }
            }
            Err(e) => {
                // The first GraphQL error's path is echoed by design (the
                // field names of our own query): it is reduced to
                // `[A-Za-z0-9_]` segments and 120 characters.
                if let PageError::Graphql { path: Some(p), .. } = &e {
                    assert!(p.len() <= 120, "gitlab_page: error path too long");
                    assert!(
                        p.chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '?'),
                        "gitlab_page: error path not reduced: {p:?}"
                    );
                }
                let e = match e {
                    PageError::Graphql { kind, count, .. } => PageError::Graphql {
                        kind,
                        count,
                        path: None,
                    },
                    e => e,
                };
                let m = e
                    .into_source_error("https://gitlab.example.com/api/graphql", field, "g/p")
                    .message;
                check_error("gitlab_page", &m);
            }
        }
    }
}

/// A Vault LIST response.
pub fn vault_list(data: &[u8]) {
    match crate::sources::vault::api::parse_list(data) {
        Ok(_) => {}
        Err(m) => check_error("vault_list", &m),
    }
}

/// A Vault AppRole login response.
pub fn vault_login(data: &[u8]) {
    match crate::sources::vault::api::parse_login(data) {
        Ok((token, _)) => assert!(
            !format!("{token:?}").contains(CANARY),
            "vault_login: a token is shown by Debug"
        ),
        Err(m) => check_error("vault_login", &m),
    }
}

/// Vault `sys/auth`, AppRole role and secret-id lookup responses.
pub fn vault_approle(data: &[u8]) {
    use crate::sources::vault::approle;
    if let Err(m) = approle::parse_auth_mounts(data) {
        check_error("vault_approle", &m);
    }
    if let Err(m) = approle::parse_approle_role(data) {
        check_error("vault_approle", &m);
    }
    match approle::parse_secret_id_lookup(data, "approle/ci") {
        Ok((c, _)) => assert!(!c.id.is_empty(), "vault_approle: empty accessor"),
        Err(m) => check_error("vault_approle", &m),
    }
}

/// Vault KV v2 metadata and data responses.
pub fn vault_kv(data: &[u8]) {
    use crate::sources::vault::kv;
    if let Err(m) = kv::parse_kv_metadata(data, "secret", "ci/deploy", "team", 1_767_323_045) {
        check_error("vault_kv", &m);
    }
    if let Err(m) = kv::parse_kv_data_hashes(data, &hasher()) {
        check_error("vault_kv", &m);
    }
}

/// A Vault token accessor lookup.
pub fn vault_token_lookup(data: &[u8]) {
    let policy = crate::config::Policy::default();
    if let Err(m) =
        crate::sources::vault::tokens::parse_token_lookup(data, "vault.example.com", &policy)
    {
        check_error("vault_token_lookup", &m);
    }
}

/// The AWS IAM credential report (CSV).
pub fn aws_credential_report(data: &[u8]) {
    match crate::sources::aws::report::parse(data) {
        Ok(rows) => {
            for (user, row) in &rows {
                assert!(!user.is_empty(), "aws_credential_report: empty user");
                assert!(row.keys.len() <= 2, "aws_credential_report: over 2 keys");
            }
        }
        Err(m) => check_error("aws_credential_report", &m),
    }
}

/// Leak-link extraction: AWS key ids, Kubernetes service-account JWTs
/// (decoded) and Entra client secrets next to their application id.
///
/// The input is split at NUL bytes into up to four texts (a finding's
/// secret, match...). An input starting with `JWT:` is structured: the
/// rest is a JWT payload (claims JSON) that is base64url-encoded into a
/// token first, so that mutations reach the claims decoding.
pub fn credential_links(data: &[u8]) {
    use base64::Engine;
    let text = String::from_utf8_lossy(data);
    let text = match text.strip_prefix("JWT:") {
        Some(claims) => {
            let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
            format!(
                "token: eyJhbGciOiJSUzI1NiJ9.{}.c2lnbmF0dXJl",
                b64.encode(claims.as_bytes())
            )
        }
        None => text.into_owned(),
    };
    let texts: Vec<Option<&str>> = text.splitn(4, '\0').map(Some).collect();
    let links = crate::sources::reports::files::credential_links(&texts);
    check_links("credential_links", &links);
    // Linear in the input: a report cannot make one finding hold an
    // unbounded number of links.
    assert!(
        links.len() <= text.len() / 16 + crate::sources::azure::link::MAX_LINKS,
        "credential_links: {} links from {} bytes",
        links.len(),
        text.len()
    );
}

/// Keys whose values are credentials: an error must never quote them,
/// whatever else it names.
const CREDENTIAL_KEYS: &[&str] = &[
    "token",
    "secret_id",
    "role_id",
    "password",
    "client_secret",
    "secret",
];

/// Whether the canary appears in `text` (YAML) where an error may show it:
/// a mapping key (errors name key paths), or with `credentials_only`, the
/// value of a key that is not a credential (identifiers such as a region,
/// an organization or a mount path are named back in some errors; so is
/// the scheme and host of a URL). A `${VAR}` there counts too: the
/// environment gives the canary.
fn canary_where_shown(text: &str, credentials_only: bool) -> bool {
    fn scalar(v: &serde_yaml::Value) -> String {
        match v {
            serde_yaml::Value::String(s) => s.clone(),
            other => format!("{other:?}"),
        }
    }
    fn walk(v: &serde_yaml::Value, key: &str, values: bool) -> bool {
        match v {
            serde_yaml::Value::Mapping(m) => m.iter().any(|(k, v)| {
                let name = scalar(k);
                contains_canary(&name) || walk(k, "", values) || walk(v, &name, values)
            }),
            serde_yaml::Value::Sequence(s) => s.iter().any(|v| walk(v, key, values)),
            serde_yaml::Value::Tagged(t) => {
                contains_canary(&t.tag.to_string()) || walk(&t.value, key, values)
            }
            other => {
                let s = scalar(other);
                values
                    && !CREDENTIAL_KEYS.contains(&key)
                    && (contains_canary(&s) || s.contains("${"))
            }
        }
    }
    match serde_yaml::from_str::<serde_yaml::Value>(text) {
        Ok(v) => walk(&v, "", credentials_only),
        // Not a tree (a duplicate key, or `key: value:` further on) that a
        // struct may still read up to a key it rejects: whatever precedes
        // the last `:` on a line may be a key (`a:b c: d` has the key
        // `a:b c`), and keys are named in errors by design.
        Err(_) => text
            .lines()
            .any(|l| l.rsplit_once(':').is_some_and(|(k, _)| contains_canary(k))),
    }
}

/// Paths a fuzzed configuration must not make the parser read: devices
/// and kernel files (`/dev/zero` as a credential file never ends).
fn names_a_special_file(text: &str) -> bool {
    ["/dev", "/proc", "/sys"].iter().any(|p| text.contains(p))
}

/// The configuration file. `${VAR}` expands to a canary, so a value taken
/// from the environment (a token) is checked too.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return; // the file is read as UTF-8 before parsing
    };
    if names_a_special_file(text) {
        return;
    }
    let env = |_: &str| Some(format!("{CANARY}-from-env"));
    let base = Path::new("/nonexistent/nhi-exporter-fuzz");
    if let Err(issues) = crate::sources::registry::parse_config(text, base, &env) {
        assert!(!issues.is_empty(), "config: an error without issues");
        if !canary_where_shown(text, true) {
            for i in &issues {
                check_error("config", &i.to_string());
            }
        }
    }
}

/// The web configuration (`--web.config.file`).
pub fn web_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if names_a_special_file(text) {
        return;
    }
    let file = Path::new("/nonexistent/nhi-exporter-fuzz/web.yml");
    if let Err(e) = crate::webconfig::WebConfig::from_text(text, file) {
        if !canary_where_shown(text, false) {
            check_error("web_config", &e.message);
        }
    }
}
