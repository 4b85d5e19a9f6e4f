//! `trufflehog` source: trufflehog v3 `--json` reports (JSON lines: one
//! result object per line) found by glob. Each file is the latest scan of
//! one target; a finding missing from a target's newer scan was closed with
//! resolution `disappeared`.
//!
//! - An empty file is a valid scan without findings (trufflehog prints
//!   nothing when it finds nothing); blank lines are ignored.
//! - A malformed line rejects the whole file, so that the target keeps its
//!   previous state rather than losing the findings on the bad line.
//! - Exposure: the HMAC of `Raw` (or `RawV2` when `Raw` is empty). `Raw` is
//!   what gitleaks reports as `Secret` for the same detector (for AWS: the
//!   access key id), so the same secret found by both scanners is one
//!   exposure.
//! - Finding id: `DetectorName:<16 hex of the HMAC of RawV2 or Raw>:commit:
//!   file:line`. The HMAC is keyed: a plain hash of the secret would be a
//!   dictionary-attackable fingerprint of it.
//! - Validity: `Verified: true` → live. Anything else → unknown by default:
//!   a result whose verification failed (`VerificationError`), or an
//!   unverified one, which may have been checked and found invalid or not
//!   checked at all (`--no-verification`, detectors without a verifier).
//!   The report does not tell these apart.
//! - `unverified_is_inactive: true` (opt-in, for reports of trufflehog run
//!   with verification on, its default): `Verified: false` with no (or an
//!   empty) `VerificationError` is trufflehog's "unverified" result, the
//!   detector's verifier said the secret does not work → `inactive`. A
//!   `VerificationError` stays unknown. Do not set it for scans run with
//!   `--no-verification`, where every result is `Verified: false`.
//!
//! `Raw`, `RawV2`, `Redacted`, `ExtraData` and `StructuredData` are never
//! kept: the first two are hashed and dropped, the others not even read.

use super::borrowed::Str;
use super::files::{
    check_utf8, credential_links, json_error_kind, repository_from_link, repository_from_url,
    strip_bom, ParseError,
};
use crate::hashing::SecretHasher;
use crate::model::{ExposureKey, Location, ObservedFinding, Validity};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// One trufflehog result; only the fields we use. Unknown fields (and the
/// ones deliberately left out: `Redacted`, `ExtraData`, ...) are skipped
/// without being kept. The secret (`Raw`, `RawV2`) is borrowed from the
/// report's bytes unless it holds escapes: a huge one is hashed in place.
#[derive(Deserialize)]
struct RawResult<'a> {
    #[serde(rename = "SourceMetadata", default)]
    source_metadata: Option<SourceMetadata>,
    #[serde(rename = "DetectorName")]
    detector_name: String,
    #[serde(rename = "Verified", default)]
    verified: bool,
    #[serde(rename = "Raw", borrow)]
    raw: Str<'a>,
    #[serde(rename = "RawV2", default, borrow)]
    raw_v2: Option<Str<'a>>,
    /// A string in trufflehog's output; any other JSON value is tolerated.
    #[serde(rename = "VerificationError", default)]
    verification_error: Option<Value>,
}

impl RawResult<'_> {
    /// Whether the result carries a verification error (not null, not an
    /// empty string).
    fn has_verification_error(&self) -> bool {
        match &self.verification_error {
            None | Some(Value::Null) => false,
            Some(Value::String(s)) => !s.trim().is_empty(),
            Some(_) => true,
        }
    }
}

/// `{"Data": {"<Source>": {...}}}`: a protobuf oneof written by Go's
/// encoding/json. The inner key names the source (`Git`, `Github`,
/// `Gitlab`, `Filesystem`, ...); its fields are snake_case. Kept as JSON
/// values so that a source with unusual field types does not reject the
/// line; only location fields are read from it.
#[derive(Deserialize, Default)]
struct SourceMetadata {
    #[serde(rename = "Data", default)]
    data: Option<BTreeMap<String, Value>>,
}

fn empty_is_none(s: Option<&str>) -> Option<&str> {
    s.map(str::trim).filter(|s| !s.is_empty())
}

/// Where a result is, from its source metadata.
struct Meta<'a> {
    fields: Option<&'a serde_json::Map<String, Value>>,
}

impl<'a> Meta<'a> {
    fn new(m: Option<&'a SourceMetadata>) -> Self {
        // The oneof has one entry; take the first that is an object.
        let fields = m
            .and_then(|m| m.data.as_ref())
            .and_then(|d| d.values().find_map(Value::as_object));
        Meta { fields }
    }

    fn str(&self, key: &str) -> Option<&'a str> {
        empty_is_none(self.fields?.get(key)?.as_str())
    }

    fn line(&self) -> Option<i64> {
        let v = self.fields?.get("line")?;
        let n = v
            .as_i64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))?;
        (n > 0).then_some(n)
    }

    fn repository(&self) -> Option<String> {
        if let Some(r) = self.str("repository") {
            return repository_from_url(r);
        }
        if let Some(r) = self.str("link").and_then(repository_from_link) {
            return repository_from_url(&r);
        }
        self.str("project")
            .or_else(|| self.str("project_name"))
            .map(str::to_string)
    }

    fn file(&self) -> Option<String> {
        self.str("file")
            .or_else(|| self.str("filename"))
            .or_else(|| self.str("path"))
            .map(str::to_string)
    }
}

/// trufflehog's commit time, `2006-01-02 15:04:05 -0700` (Go's layout;
/// fractional seconds and a trailing zone name are tolerated), or RFC 3339.
pub fn parse_timestamp(s: &str) -> Option<i64> {
    let s = s.trim();
    let mut parts = s.split_whitespace();
    if let (Some(date), Some(clock), Some(offset)) = (parts.next(), parts.next(), parts.next()) {
        let clock = clock.split('.').next().unwrap_or(clock);
        let fmt = time::macros::format_description!(
            "[year]-[month]-[day] [hour]:[minute]:[second] [offset_hour sign:mandatory][offset_minute]"
        );
        if let Ok(t) = time::OffsetDateTime::parse(&format!("{date} {clock} {offset}"), fmt) {
            return Some(t.unix_timestamp());
        }
    }
    crate::sources::rfc3339(s)
}

fn line_error(n: usize, e: &serde_json::Error) -> ParseError {
    ParseError::Format(format!(
        "line {n} column {}: {}",
        e.column(),
        json_error_kind(e)
    ))
}

/// Parse one trufflehog JSON-lines report held in memory. Secret values
/// are HMAC'd with `hasher` and dropped here.
pub fn parse_slice(
    data: &[u8],
    target: &str,
    hasher: &SecretHasher,
) -> Result<Vec<ObservedFinding>, ParseError> {
    parse_with(data, target, hasher, false)
}

/// [`parse_slice`] with `unverified_is_inactive: true`: a result neither
/// verified nor in verification error is `inactive`.
pub fn parse_slice_unverified_inactive(
    data: &[u8],
    target: &str,
    hasher: &SecretHasher,
) -> Result<Vec<ObservedFinding>, ParseError> {
    parse_with(data, target, hasher, true)
}

fn parse_with(
    data: &[u8],
    target: &str,
    hasher: &SecretHasher,
    unverified_is_inactive: bool,
) -> Result<Vec<ObservedFinding>, ParseError> {
    let data = strip_bom(data);
    check_utf8(data)?;
    let repo_fallback = Path::new(target)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned());
    let mut out = Vec::new();
    for (i, line) in data.split(|b| *b == b'\n').enumerate() {
        let n = i + 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(first) = line.iter().copied().find(|b| !b.is_ascii_whitespace()) else {
            continue;
        };
        if first != b'{' {
            let what = if first == b'[' {
                "a JSON array (a gitleaks report?)"
            } else {
                "not a JSON object"
            };
            return Err(ParseError::Format(format!(
                "line {n}: not a trufflehog result: expected one JSON object per line (trufflehog --json), got {what}"
            )));
        }
        let r: RawResult = serde_json::from_slice(line).map_err(|e| line_error(n, &e))?;
        let validity = if r.verified {
            Validity::Live
        } else if unverified_is_inactive && !r.has_verification_error() {
            Validity::Inactive
        } else {
            Validity::Unknown
        };
        out.push(convert(r, validity, hasher, repo_fallback.as_deref()));
    }
    Ok(out)
}

fn convert(
    r: RawResult<'_>,
    validity: Validity,
    hasher: &SecretHasher,
    repo_fallback: Option<&str>,
) -> ObservedFinding {
    let meta = Meta::new(r.source_metadata.as_ref());
    let commit = meta.str("commit").map(str::to_string);
    let file = meta.file();
    let line = meta.line();
    let raw = Some(&*r.raw).filter(|s| !s.is_empty());
    let raw_v2 = r.raw_v2.as_deref().filter(|s| !s.is_empty());
    // Raw is what other scanners report as the secret; RawV2 (id + secret
    // for multi-part credentials) identifies the finding most precisely.
    let exposure_hash = raw.or(raw_v2).map(|v| hasher.hash(v.as_bytes()));
    let id_hash = match (raw_v2, exposure_hash) {
        (Some(v2), _) => hex::encode(&hasher.hash(v2.as_bytes())[..8]),
        (None, Some(h)) => hex::encode(&h[..8]),
        (None, None) => "-".into(),
    };
    let exposure = match exposure_hash {
        Some(h) => ExposureKey::Secret(h),
        None => ExposureKey::ScannerId,
    };
    let links = credential_links(&[raw, raw_v2]);
    // `r.raw` and `r.raw_v2` are dropped with `r`.
    let scanner_id = format!(
        "{}:{id_hash}:{}:{}:{}",
        r.detector_name,
        commit.as_deref().unwrap_or(""),
        file.as_deref().unwrap_or(""),
        line.map(|l| l.to_string()).unwrap_or_default(),
    );
    ObservedFinding {
        scanner_id,
        secret_type: r.detector_name,
        exposure,
        location: Location {
            repository: meta
                .repository()
                .or_else(|| repo_fallback.map(str::to_string)),
            file,
            line,
            commit,
        },
        detected_at: None,
        committed_at: meta.str("timestamp").and_then(parse_timestamp),
        closed: None,
        validity,
        // The scan time: the report's modification time.
        validity_at: None,
        links,
    }
}

#[cfg(test)]
mod tests;
