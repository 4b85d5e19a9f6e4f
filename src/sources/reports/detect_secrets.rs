//! `detect_secrets` source: Yelp detect-secrets baselines
//! (`.secrets.baseline`, format of v1.x) found by glob. Each baseline is
//! the latest scan of one target (its repository); a result missing from a
//! newer baseline was closed with resolution `disappeared`.
//!
//! - A baseline holds no secret value, only `hashed_secret` (the SHA-1 of
//!   the plaintext). The exposure is keyed by the HMAC of that hash
//!   ([`ExposureKey::ScannerSecret`]): one secret reported by several
//!   plugins (an AWS secret key is also a high-entropy string and a
//!   keyword) or in several baselines is one exposure, but it cannot be
//!   merged with other scanners, which report the plaintext.
//! - Finding id: `filename:type:<16 hex of the HMAC of hashed_secret>`,
//!   detect-secrets' own equality key (line numbers excluded). The SHA-1 is
//!   never stored: an unkeyed hash of a secret is dictionary-attackable.
//! - Validity: `is_verified: true` → live, else unknown.
//! - Triage: `is_secret: false` (set by `detect-secrets audit`) → closed as
//!   `false_positive`; `true` or absent → open.
//! - Repository: the name of the directory holding the baseline.

use super::files::{check_utf8, json_error, strip_bom, ParseError};
use crate::hashing::SecretHasher;
use crate::model::{ExposureKey, Location, ObservedFinding, Resolution, Validity};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// The parts of a baseline we use; `version`, `plugins_used`,
/// `filters_used`, `generated_at` and unknown keys are ignored.
#[derive(Deserialize)]
struct Baseline {
    #[serde(default)]
    results: Option<BTreeMap<String, Vec<RawSecret>>>,
}

#[derive(Deserialize)]
struct RawSecret {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    filename: Option<String>,
    hashed_secret: String,
    #[serde(default)]
    is_verified: Option<bool>,
    #[serde(default)]
    line_number: Option<i64>,
    #[serde(default)]
    is_secret: Option<bool>,
}

/// Parse one detect-secrets baseline held in memory.
pub fn parse_slice(
    data: &[u8],
    target: &str,
    hasher: &SecretHasher,
) -> Result<Vec<ObservedFinding>, ParseError> {
    let data = strip_bom(data);
    let Some(first) = data.iter().copied().find(|b| !b.is_ascii_whitespace()) else {
        return Err(ParseError::Format(
            "empty file: a detect-secrets baseline is a JSON object (`detect-secrets scan > .secrets.baseline`)".into(),
        ));
    };
    check_utf8(data)?;
    if first != b'{' {
        return Err(ParseError::Format(
            "line 1: not a detect-secrets baseline: expected a JSON object".into(),
        ));
    }
    let doc: Baseline = serde_json::from_slice(data).map_err(json_error)?;
    let Some(results) = doc.results else {
        return Err(ParseError::Format(
            "not a detect-secrets baseline: it has no \"results\" object".into(),
        ));
    };
    // The baseline sits at the root of the repository it scans.
    let repository = Path::new(target)
        .parent()
        .and_then(Path::file_name)
        .map(|n| n.to_string_lossy().into_owned());
    let mut out = Vec::new();
    for (key, secrets) in results {
        for s in secrets {
            let file = s
                .filename
                .filter(|f| !f.is_empty())
                .unwrap_or_else(|| key.clone());
            let keyed = hasher.hash(s.hashed_secret.as_bytes());
            let id_hash = hex::encode(&keyed[..8]);
            let exposure = ExposureKey::ScannerSecret(
                hasher.hash(format!("detect-secrets\0{}", s.hashed_secret).as_bytes()),
            );
            // `hashed_secret` is dropped here.
            out.push(ObservedFinding {
                scanner_id: format!("{file}:{}:{id_hash}", s.kind),
                secret_type: s.kind,
                exposure,
                location: Location {
                    repository: repository.clone(),
                    file: Some(file),
                    line: s.line_number.filter(|l| *l > 0),
                    commit: None,
                },
                detected_at: None,
                committed_at: None,
                closed: (s.is_secret == Some(false)).then_some((Resolution::FalsePositive, None)),
                validity: if s.is_verified == Some(true) {
                    Validity::Live
                } else {
                    Validity::Unknown
                },
                // The scan time: the baseline's modification time.
                validity_at: None,
                links: Vec::new(),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
