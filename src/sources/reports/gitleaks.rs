//! `gitleaks` source: JSON and SARIF 2.1.0 reports found by glob. Each file
//! is the latest scan of one target; a finding missing from a target's newer
//! scan was closed with resolution `disappeared`.
//!
//! Every layout gitleaks has written is read: v8's JSON (`RuleID`,
//! `Secret`...), v7's (`rule`, `offender`, `lineNumber`, `leakURL`...;
//! `scan/leak.go` of v7.6), `null` for a clean scan, and SARIF with
//! `"results": null` (v8.0 to v8.2.4) or v7's `properties.offender`.
//!
//! Fetching (globbing, change detection, reading: [`super::files`]) is kept
//! apart from parsing ([`parse_slice`]), which is pure and
//! tested on fixtures.

use super::borrowed::Str;
pub use super::files::{credential_links, ParseError};
use super::files::{json_error, repository_from_link, repository_from_url};
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
        // `null`: a clean scan, as some gitleaks versions write it.
        b'n' => {
            let mut de = serde_json::Deserializer::from_slice(data);
            <()>::deserialize(&mut de).map_err(json_error)?;
            de.end().map_err(json_error)?;
            Ok(Vec::new())
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
        "empty file: a gitleaks report is a JSON array (`[]` or `null` when nothing was found) or a SARIF document".into(),
    )
}

fn not_a_report() -> ParseError {
    ParseError::Format(
        "line 1: not a gitleaks report: expected a JSON array, null or a SARIF object".into(),
    )
}

/// A gitleaks JSON finding; only the fields we use. Unknown fields (newer
/// gitleaks versions) are ignored. The aliases are v7's names: `rule`,
/// `offender` (the secret), `line` (the whole line: read like v8's
/// `Match`, for links only), `file`, `lineNumber`, `commit`, `leakURL`,
/// `date`, and `repoURL`, which v8 does not have.
///
/// The secret and the matched text are borrowed from the report's bytes
/// unless they hold escapes: a huge secret costs no copy (it is only hashed
/// and searched for credential ids, then dropped).
#[derive(Deserialize)]
struct RawFinding<'a> {
    #[serde(rename = "RuleID", alias = "rule")]
    rule_id: String,
    #[serde(rename = "Secret", alias = "offender", default, borrow)]
    secret: Option<Str<'a>>,
    #[serde(rename = "Match", alias = "line", default, borrow)]
    matched: Option<Str<'a>>,
    #[serde(rename = "File", alias = "file", default)]
    file: Option<String>,
    #[serde(rename = "StartLine", alias = "lineNumber", default)]
    start_line: Option<i64>,
    #[serde(rename = "Commit", alias = "commit", default)]
    commit: Option<String>,
    #[serde(rename = "Link", alias = "leakURL", default)]
    link: Option<String>,
    #[serde(rename = "repoURL", default)]
    repo_url: Option<String>,
    #[serde(rename = "Date", alias = "date", default)]
    date: Option<String>,
    #[serde(rename = "Fingerprint", default)]
    fingerprint: Option<String>,
}

/// Go's zero `time.Time`, which v7 writes as the date of a finding outside
/// git (`--no-git`): no date.
const GO_ZERO_TIME: i64 = -62_135_596_800;

/// SARIF: the snippet (the secret) and v7's offender are borrowed from the
/// report's bytes like [`RawFinding`]'s.
#[derive(Deserialize)]
struct Sarif<'a> {
    version: String,
    #[serde(default, borrow)]
    runs: Vec<SarifRun<'a>>,
}

#[derive(Deserialize)]
struct SarifRun<'a> {
    /// `null` for a clean scan in v8.0 to v8.2.4.
    #[serde(default, borrow)]
    results: Option<Vec<SarifResult<'a>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SarifResult<'a> {
    rule_id: String,
    #[serde(default, borrow)]
    locations: Vec<SarifLocation<'a>>,
    #[serde(default)]
    partial_fingerprints: SarifFingerprints,
    /// v7 only: the secret, commit and date are here, and the snippet is
    /// the whole line.
    #[serde(default, borrow)]
    properties: Option<SarifProperties<'a>>,
}

#[derive(Deserialize)]
struct SarifProperties<'a> {
    #[serde(default, borrow)]
    offender: Option<Str<'a>>,
    commit: Option<String>,
    date: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SarifLocation<'a> {
    #[serde(borrow)]
    physical_location: Option<SarifPhysical<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SarifPhysical<'a> {
    artifact_location: Option<SarifArtifact>,
    #[serde(borrow)]
    region: Option<SarifRegion<'a>>,
}

#[derive(Deserialize)]
struct SarifArtifact {
    uri: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SarifRegion<'a> {
    start_line: Option<i64>,
    #[serde(borrow)]
    snippet: Option<SarifSnippet<'a>>,
}

#[derive(Deserialize)]
struct SarifSnippet<'a> {
    #[serde(default, borrow)]
    text: Option<Str<'a>>,
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
        secret: Option<Str>,
        matched: Option<Str>,
        file: Option<String>,
        line: Option<i64>,
        commit: Option<String>,
        repository: Option<String>,
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
        let repository = repository.or_else(|| self.repo_fallback.clone());
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
            committed_at: date
                .as_deref()
                .and_then(crate::sources::rfc3339)
                .filter(|t| *t != GO_ZERO_TIME),
            closed: None,
            validity: Validity::Unknown,
            validity_at: None,
            links,
        }
    }

    fn sarif(&self, doc: Sarif<'_>) -> Result<Vec<ObservedFinding>, ParseError> {
        if doc.version != "2.1.0" {
            // The value read is not echoed: say what was expected.
            return Err(ParseError::Format(
                "unsupported SARIF version: expected \"version\": \"2.1.0\"".into(),
            ));
        }
        let mut out = Vec::new();
        for run in doc.runs {
            for r in run.results.unwrap_or_default() {
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
                let fp = r.partial_fingerprints;
                let f = match r.properties {
                    // v7: the snippet is the line that holds the offender.
                    Some(p) if p.offender.is_some() => self.finding(
                        r.rule_id,
                        p.offender,
                        snippet,
                        uri,
                        line,
                        fp.commit_sha.or(p.commit),
                        None,
                        fp.date.or(p.date),
                        None,
                    ),
                    _ => self.finding(
                        r.rule_id,
                        snippet,
                        None,
                        uri,
                        line,
                        fp.commit_sha,
                        None,
                        fp.date,
                        None,
                    ),
                };
                out.push(f);
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
            // The repository: from the finding's link, else (v7) from the
            // repository URL; without either, the report's name.
            let repository = r
                .link
                .as_deref()
                .and_then(repository_from_link)
                .or_else(|| r.repo_url.as_deref().and_then(repository_from_url));
            self.out.push(self.conv.finding(
                r.rule_id,
                r.secret,
                r.matched,
                r.file,
                r.start_line,
                r.commit,
                repository,
                r.date,
                r.fingerprint,
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
