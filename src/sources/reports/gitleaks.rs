//! `gitleaks` source: JSON and SARIF 2.1.0 reports found by glob. Each file
//! is the latest scan of one target; a finding missing from a target's newer
//! scan was closed with resolution `disappeared`.
//!
//! Fetching (globbing, change detection, reading: [`super::files`]) is kept
//! apart from parsing ([`parse_slice`]), which is pure and
//! tested on fixtures.

pub use super::files::{credential_links, ParseError};
use super::files::{json_error, repository_from_link};
use crate::hashing::SecretHasher;
use crate::model::{ExposureKey, Location, ObservedFinding, Validity};
use serde::de::{SeqAccess, Visitor};
use serde::Deserialize;
use std::fmt;
use std::path::Path;
// Names the unit tests (`use super::*`) rely on.
#[cfg(test)]
use crate::model::CredentialRef;

/// Parse one gitleaks report held in memory (the fast path: serde_json
/// parses a slice several times faster than a reader).
pub fn parse_slice(
    data: &[u8],
    target: &str,
    hasher: &SecretHasher,
) -> Result<Vec<ObservedFinding>, ParseError> {
    let data = data.strip_prefix(&[0xEF, 0xBB, 0xBF][..]).unwrap_or(data);
    let Some(first) = data.iter().copied().find(|b| !b.is_ascii_whitespace()) else {
        return Err(empty_file());
    };
    let conv = Converter::new(hasher, target);
    match first {
        b'[' => {
            let mut de = serde_json::Deserializer::from_slice(data);
            let mut out = Vec::new();
            serde::Deserializer::deserialize_seq(
                &mut de,
                SeqVisitor {
                    conv: &conv,
                    out: &mut out,
                },
            )
            .map_err(json_error)?;
            de.end().map_err(json_error)?;
            Ok(out)
        }
        b'{' => {
            let mut de = serde_json::Deserializer::from_slice(data);
            let doc = Sarif::deserialize(&mut de).map_err(json_error)?;
            de.end().map_err(json_error)?;
            conv.sarif(doc)
        }
        _ => Err(not_a_report()),
    }
}

fn empty_file() -> ParseError {
    ParseError::Format(
        "empty file: a gitleaks report is a JSON array (`[]` when nothing was found) or a SARIF document".into(),
    )
}

fn not_a_report() -> ParseError {
    ParseError::Format(
        "line 1: not a gitleaks report: expected a JSON array or a SARIF object".into(),
    )
}

/// A gitleaks JSON finding; only the fields we use. Unknown fields (newer
/// gitleaks versions) are ignored.
#[derive(Deserialize)]
struct RawFinding {
    #[serde(rename = "RuleID")]
    rule_id: String,
    #[serde(rename = "Secret", default)]
    secret: Option<String>,
    #[serde(rename = "Match", default)]
    matched: Option<String>,
    #[serde(rename = "File", default)]
    file: Option<String>,
    #[serde(rename = "StartLine", default)]
    start_line: Option<i64>,
    #[serde(rename = "Commit", default)]
    commit: Option<String>,
    #[serde(rename = "Link", default)]
    link: Option<String>,
    #[serde(rename = "Date", default)]
    date: Option<String>,
    #[serde(rename = "Fingerprint", default)]
    fingerprint: Option<String>,
}

#[derive(Deserialize)]
struct Sarif {
    version: String,
    #[serde(default)]
    runs: Vec<SarifRun>,
}

#[derive(Deserialize)]
struct SarifRun {
    #[serde(default)]
    results: Vec<SarifResult>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SarifResult {
    rule_id: String,
    #[serde(default)]
    locations: Vec<SarifLocation>,
    #[serde(default)]
    partial_fingerprints: SarifFingerprints,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SarifLocation {
    physical_location: Option<SarifPhysical>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SarifPhysical {
    artifact_location: Option<SarifArtifact>,
    region: Option<SarifRegion>,
}

#[derive(Deserialize)]
struct SarifArtifact {
    uri: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SarifRegion {
    start_line: Option<i64>,
    snippet: Option<SarifSnippet>,
}

#[derive(Deserialize)]
struct SarifSnippet {
    text: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct SarifFingerprints {
    commit_sha: Option<String>,
    date: Option<String>,
}

/// gitleaks `--redact` replaces the value by `REDACTED`, or keeps a prefix
/// followed by `...`: then there is no value to hash.
fn is_redacted(secret: &str) -> bool {
    secret.is_empty() || secret == "REDACTED" || secret.ends_with("...")
}

struct Converter<'a> {
    hasher: &'a SecretHasher,
    repo_fallback: Option<String>,
}

impl<'a> Converter<'a> {
    fn new(hasher: &'a SecretHasher, target: &str) -> Self {
        let repo_fallback = Path::new(target)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned());
        Converter {
            hasher,
            repo_fallback,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn finding(
        &self,
        rule_id: String,
        secret: Option<String>,
        matched: Option<String>,
        file: Option<String>,
        line: Option<i64>,
        commit: Option<String>,
        link: Option<String>,
        date: Option<String>,
        fingerprint: Option<String>,
    ) -> ObservedFinding {
        let commit = commit.filter(|c| !c.is_empty());
        let file = file.filter(|f| !f.is_empty());
        let scanner_id = fingerprint.filter(|f| !f.is_empty()).unwrap_or_else(|| {
            let f = file.as_deref().unwrap_or("");
            let l = line.unwrap_or(0);
            match &commit {
                Some(c) => format!("{c}:{f}:{rule_id}:{l}"),
                None => format!("{f}:{rule_id}:{l}"),
            }
        });
        let (exposure, links) = match secret.as_deref() {
            Some(s) if !is_redacted(s) => (
                ExposureKey::Secret(self.hasher.hash(s.as_bytes())),
                credential_links(&[Some(s), matched.as_deref()]),
            ),
            _ => (
                ExposureKey::ScannerId,
                credential_links(&[matched.as_deref().filter(|m| !is_redacted(m))]),
            ),
        };
        // `secret` and `matched` are dropped here.
        let repository = link
            .as_deref()
            .and_then(repository_from_link)
            .or_else(|| self.repo_fallback.clone());
        ObservedFinding {
            scanner_id,
            secret_type: rule_id,
            exposure,
            location: Location {
                repository,
                file,
                line,
                commit,
            },
            detected_at: None,
            committed_at: date.as_deref().and_then(crate::sources::rfc3339),
            closed: None,
            validity: Validity::Unknown,
            validity_at: None,
            links,
        }
    }

    fn sarif(&self, doc: Sarif) -> Result<Vec<ObservedFinding>, ParseError> {
        if doc.version != "2.1.0" {
            // The value read is not echoed: say what was expected.
            return Err(ParseError::Format(
                "unsupported SARIF version: expected \"version\": \"2.1.0\"".into(),
            ));
        }
        let mut out = Vec::new();
        for run in doc.runs {
            for r in run.results {
                let phys = r
                    .locations
                    .into_iter()
                    .next()
                    .and_then(|l| l.physical_location);
                let (uri, region) = match phys {
                    Some(p) => (p.artifact_location.and_then(|a| a.uri), p.region),
                    None => (None, None),
                };
                let (line, snippet) = match region {
                    Some(r) => (r.start_line, r.snippet.and_then(|s| s.text)),
                    None => (None, None),
                };
                out.push(self.finding(
                    r.rule_id,
                    snippet,
                    None,
                    uri,
                    line,
                    r.partial_fingerprints.commit_sha,
                    None,
                    r.partial_fingerprints.date,
                    None,
                ));
            }
        }
        Ok(out)
    }
}

/// Streams the top-level array so a large report is converted finding by
/// finding instead of being held as JSON values.
struct SeqVisitor<'a, 'b> {
    conv: &'a Converter<'b>,
    out: &'a mut Vec<ObservedFinding>,
}

impl<'de> Visitor<'de> for SeqVisitor<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of gitleaks findings")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(r) = seq.next_element::<RawFinding>()? {
            self.out.push(self.conv.finding(
                r.rule_id,
                r.secret,
                r.matched,
                r.file,
                r.start_line,
                r.commit,
                r.link,
                r.date,
                r.fingerprint,
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
