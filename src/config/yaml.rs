//! The YAML machinery of the configuration: `${VAR}` expansion over the
//! tree, decoding of a section into a `deny_unknown_fields` struct with
//! every problem reported by key path, and the helpers every part of the
//! configuration shares (credentials with their `*_file` twin, URLs,
//! paths, sizes). Each source type's own keys are decoded in its folder
//! under `src/sources/` through [`SourceParse`].

use super::{parse_size, ConfigIssue, Credential, Dur};
use serde::de::DeserializeOwned;
use serde_yaml::{Mapping, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The problems found so far, each with its key path.
#[derive(Debug, Default)]
pub struct Issues(pub(crate) Vec<ConfigIssue>);

impl Issues {
    pub fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigIssue {
            path: path.into(),
            message: message.into(),
        });
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What a source type's parser gets: its key path (`sources[2]`), the
/// directory relative paths are resolved against, where to report
/// problems, and its own keys (every key but the common ones).
pub struct SourceParse<'a> {
    pub path: &'a str,
    pub base: &'a Path,
    pub issues: &'a mut Issues,
    specific: Option<Mapping>,
}

impl<'a> SourceParse<'a> {
    pub(crate) fn new(
        path: &'a str,
        base: &'a Path,
        issues: &'a mut Issues,
        specific: Mapping,
    ) -> Self {
        Self {
            path,
            base,
            issues,
            specific: Some(specific),
        }
    }

    /// Decode the type's own keys into its raw struct (decoded once).
    pub fn decode<T: DeserializeOwned>(&mut self) -> Option<T> {
        let m = self.specific.take()?;
        decode(Value::Mapping(m), self.path, self.issues)
    }

    /// Report a problem with `key` of this source (`""`: the source itself).
    pub fn issue(&mut self, key: &str, message: impl Into<String>) {
        let path = if key.is_empty() {
            self.path.to_string()
        } else {
            format!("{}.{key}", self.path)
        };
        self.issues.push(path, message);
    }
}

pub(crate) fn key_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => serde_yaml::to_string(other)
            .map(|s| s.trim().to_string())
            .unwrap_or_default(),
    }
}

pub(crate) fn resolve(base: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() || p.as_os_str().is_empty() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

/// Decode one section, reporting a decoding error with its full key path.
pub(crate) fn section<T: DeserializeOwned>(
    top: &Mapping,
    key: &str,
    issues: &mut Issues,
) -> Option<T> {
    let v = top.get(key)?;
    if v.is_null() {
        return None;
    }
    decode(v.clone(), key, issues)
}

pub(crate) fn decode<T: DeserializeOwned>(
    v: Value,
    prefix: &str,
    issues: &mut Issues,
) -> Option<T> {
    match serde_path_to_error::deserialize::<_, T>(v) {
        Ok(t) => Some(t),
        Err(e) => {
            let inner = e.path().to_string();
            let path = if inner == "." || inner.is_empty() {
                prefix.to_string()
            } else if prefix.is_empty() {
                inner
            } else {
                format!("{prefix}.{inner}")
            };
            issues.push(path, friendly(e.inner().to_string()));
            None
        }
    }
}

/// serde's messages mention Rust-isms; make the common ones operator-friendly.
/// A type error quotes the offending value, which may be a credential: drop it.
pub(crate) fn friendly(msg: String) -> String {
    // serde_yaml may put the key path first (`a.b: invalid type: ...`).
    // Only the earliest marker counts: a later one may be inside the quoted
    // value (`invalid type: string "… unknown variant …"`).
    let first = [
        "invalid type: string ",
        "unknown variant ",
        "invalid value: ",
    ]
    .iter()
    .filter_map(|m| msg.find(m))
    .min();
    if let Some(at) = first.filter(|at| *at > 0) {
        let (head, tail) = msg.split_at(at);
        return format!("{head}{}", friendly(tail.to_string()));
    }
    if let Some(rest) = msg.strip_prefix("unknown field ") {
        // "unknown field `x`, expected one of `a`, `b`"
        return format!("unknown key {}", rest.replace('`', "\""));
    }
    // The offending value is never quoted back (it may be a secret put
    // under the wrong key): say what was expected instead.
    let expected = msg.rfind(", expected ").map(|at| msg[at..].to_string());
    let msg = if msg.starts_with("invalid type: string ") {
        format!("invalid type: a string{}", expected.unwrap_or_default())
    } else if msg.starts_with("unknown variant ") {
        format!("unknown value{}", expected.unwrap_or_default())
    } else if msg.starts_with("invalid value: ") {
        format!("invalid value{}", expected.unwrap_or_default())
    } else {
        msg
    };
    msg.replace('`', "\"")
}

/// Expand `${VAR}` in every string scalar; `$$` is a literal `$`.
pub(crate) fn expand_env(
    v: &mut Value,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
    issues: &mut Issues,
) {
    match v {
        Value::String(s) if s.contains('$') => match expand_str(s, env) {
            Ok(x) => *s = x,
            Err(e) => issues.push(path.to_string(), e),
        },
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                expand_env(item, &format!("{path}[{i}]"), env, issues);
            }
        }
        Value::Mapping(m) => {
            for (k, item) in m.iter_mut() {
                let k = key_str(k);
                let p = if path.is_empty() {
                    k
                } else {
                    format!("{path}.{k}")
                };
                expand_env(item, &p, env, issues);
            }
        }
        Value::Tagged(t) => expand_env(&mut t.value, path, env, issues),
        _ => {}
    }
}

pub(super) fn expand_str(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(a) = after.strip_prefix('$') {
            out.push('$');
            rest = a;
        } else if let Some(a) = after.strip_prefix('{') {
            let end = a.find('}').ok_or_else(|| {
                "unterminated ${...}: close it with } (write $$ for a literal $)".to_string()
            })?;
            let name = &a[..end];
            let valid = !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit());
            if !valid {
                return Err(
                    "invalid variable name in ${...}: use letters, digits and _, not starting with a digit"
                        .into(),
                );
            }
            match env(name) {
                Some(val) => out.push_str(&val),
                None => {
                    return Err(format!(
                        "environment variable {name} is not set (referenced as ${{{name}}}); set it or write $$ for a literal $"
                    ))
                }
            }
            rest = &a[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

pub(crate) fn positive(
    d: Option<Dur>,
    default: Duration,
    path: &str,
    issues: &mut Issues,
) -> Duration {
    let d = d.map(|d| d.0).unwrap_or(default);
    if d.is_zero() {
        issues.push(path, "must be greater than 0");
    }
    d
}

/// A credential given inline (`key`) or by file (`key_file`): exactly one.
/// The file is read here, so a reload re-reads it; its content is never
/// shown in messages.
pub(crate) fn credential(
    inline: Option<String>,
    file: Option<String>,
    key: &str,
    path: &str,
    base: &Path,
    issues: &mut Issues,
) -> Option<Credential> {
    match (inline, file) {
        (Some(_), Some(_)) => {
            issues.push(
                format!("{path}.{key}"),
                format!("set either {key} or {key}_file, not both"),
            );
            None
        }
        (None, None) => {
            issues.push(
                format!("{path}.{key}"),
                format!("is required (or {key}_file)"),
            );
            None
        }
        (Some(v), None) => {
            if v.trim().is_empty() {
                issues.push(format!("{path}.{key}"), "must not be empty");
                return None;
            }
            Some(Credential::new(v.trim().to_string()))
        }
        (None, Some(f)) => {
            let p = resolve(base, &f);
            match std::fs::read_to_string(&p) {
                Ok(v) if !v.trim().is_empty() => Some(Credential::new(v.trim().to_string())),
                Ok(_) => {
                    issues.push(
                        format!("{path}.{key}_file"),
                        format!("{} is empty", p.display()),
                    );
                    None
                }
                Err(e) => {
                    issues.push(
                        format!("{path}.{key}_file"),
                        format!("cannot read {}: {e}", p.display()),
                    );
                    None
                }
            }
        }
    }
}

/// An http(s) URL without credentials, trailing `/` removed; `example`
/// is shown in the message when it is not one.
pub(crate) fn http_url(v: &str, key: &str, example: &str, issues: &mut Issues) -> String {
    let v = v.trim().trim_end_matches('/').to_string();
    let ok = (v.starts_with("https://") || v.starts_with("http://"))
        && v.split("://")
            .nth(1)
            .is_some_and(|h| !h.is_empty() && !h.contains('@') && !h.contains(' '));
    if !ok {
        // Only the scheme and host are shown: user info, a path or a query
        // may hold a credential (a webhook token, `?token=`).
        let shown = match v.split_once("://") {
            Some((scheme, rest)) => {
                let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
                let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
                format!("{:?} is", format!("{scheme}://{host}"))
            }
            None => "the value is".to_string(),
        };
        issues.push(
            key,
            format!("{shown} not an http(s) URL without credentials, e.g. {example}"),
        );
    }
    v
}

pub(crate) fn size_value(v: &Value) -> Result<u64, String> {
    match v {
        Value::Number(n) => n
            .as_u64()
            .ok_or_else(|| format!("invalid size {n}: use a whole number of bytes or e.g. 256MiB")),
        Value::String(s) => parse_size(s),
        _ => Err("invalid size: use a whole number of bytes or e.g. 256MiB".into()),
    }
}

/// A CA bundle file (`ca_file`): resolved, and checked now, so that a
/// missing or unreadable file fails `--config.check` and a reload rather
/// than the first poll.
pub(crate) fn ca_file(
    value: Option<&str>,
    key: &str,
    base: &Path,
    issues: &mut Issues,
) -> Option<PathBuf> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let p = resolve(base, value?);
    match CertificateDer::pem_file_iter(&p) {
        Err(e) => issues.push(
            key,
            format!("cannot read {}: {}", p.display(), pem_error(e)),
        ),
        Ok(certs) => match certs.collect::<Result<Vec<_>, _>>() {
            Ok(c) if !c.is_empty() => {}
            Ok(_) => issues.push(key, format!("{} holds no PEM certificate", p.display())),
            Err(e) => issues.push(
                key,
                format!(
                    "{} is not a PEM certificate bundle: {}",
                    p.display(),
                    pem_error(e)
                ),
            ),
        },
    }
    Some(p)
}

/// A PEM error without the file's content.
pub(crate) fn pem_error(e: rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error;
    match e {
        Error::Io(e) => e.to_string(),
        Error::MissingSectionEnd { .. } => "a PEM section has no END line".into(),
        Error::IllegalSectionStart { .. } => "a PEM section start is malformed".into(),
        Error::Base64Decode(_) => "a PEM section is not valid base64".into(),
        Error::NoItemsFound => "no PEM section found".into(),
        _ => "not valid PEM".into(),
    }
}
