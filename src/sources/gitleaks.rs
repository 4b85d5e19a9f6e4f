//! `gitleaks` source: JSON and SARIF 2.1.0 reports found by glob. Each file
//! is the latest scan of one target; a finding missing from a target's newer
//! scan was closed with resolution `disappeared`.
//!
//! Fetching (globbing, change detection, reading) is kept apart from
//! parsing ([`parse_report`]), which is pure and tested on fixtures.

use super::{
    CredentialRef, ErrorReason, ExposureKey, Location, ObservationItem, ObservationSender,
    ObservedFinding, PollContext, SourceError, TargetScan, Validity,
};
use crate::config::GitleaksConfig;
use crate::hashing::SecretHasher;
use regex::Regex;
use serde::de::{SeqAccess, Visitor};
use serde::Deserialize;
use std::collections::BTreeSet;
use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::OnceLock;

#[derive(Debug, Clone)]
pub struct GitleaksSource {
    cfg: GitleaksConfig,
}

impl GitleaksSource {
    pub fn new(cfg: GitleaksConfig) -> Self {
        Self { cfg }
    }

    pub async fn poll(&self, ctx: PollContext, out: ObservationSender) -> Result<(), SourceError> {
        let cfg = self.cfg.clone();
        tokio::task::spawn_blocking(move || poll_blocking(&cfg, &ctx, &out))
            .await
            .map_err(|e| SourceError::new(ErrorReason::Io, format!("poll task failed: {e}")))?
    }
}

/// A stable marker of a file's content version without reading it.
fn fingerprint(meta: &std::fs::Metadata) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        format!(
            "{}:{}.{}:{}",
            meta.len(),
            meta.mtime(),
            meta.mtime_nsec(),
            meta.ino()
        )
    }
    #[cfg(not(unix))]
    {
        let m = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        format!("{}:{}", meta.len(), m)
    }
}

fn mtime_secs(meta: &std::fs::Metadata) -> Option<i64> {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs() as i64)
}

fn poll_blocking(
    cfg: &GitleaksConfig,
    ctx: &PollContext,
    out: &ObservationSender,
) -> Result<(), SourceError> {
    let mut files = BTreeSet::new();
    for pattern in &cfg.paths {
        let paths = glob::glob(pattern).map_err(|e| {
            SourceError::new(ErrorReason::Io, format!("invalid glob {pattern:?}: {e}"))
        })?;
        for entry in paths {
            match entry {
                Ok(p) if p.is_file() => {
                    files.insert(p);
                }
                Ok(_) => {}
                Err(e) => {
                    let target = e.path().to_string_lossy().into_owned();
                    let error =
                        SourceError::new(ErrorReason::Io, format!("{target}: {}", e.error()));
                    out.send_blocking(ObservationItem::TargetFailed { target, error })
                        .map_err(|_| cancelled())?;
                }
            }
        }
    }
    if files.is_empty() {
        tracing::debug!(source = %ctx.source, "no report file matches the configured paths");
    }
    for path in files {
        let target = path.to_string_lossy().into_owned();
        let item = match read_target(&path, cfg.max_file_size, ctx) {
            Ok(Some(scan)) => ObservationItem::Target(scan),
            Ok(None) => ObservationItem::TargetUnchanged { target },
            Err(error) => ObservationItem::TargetFailed { target, error },
        };
        out.send_blocking(item).map_err(|_| cancelled())?;
    }
    Ok(())
}

fn cancelled() -> SourceError {
    SourceError::new(ErrorReason::Timeout, "poll cancelled")
}

fn read_target(
    path: &Path,
    max: u64,
    ctx: &PollContext,
) -> Result<Option<TargetScan>, SourceError> {
    let target = path.to_string_lossy().into_owned();
    let io = |e: std::io::Error| SourceError::new(ErrorReason::Io, format!("{target}: {e}"));
    let file = File::open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    let fp = fingerprint(&meta);
    if ctx.known_targets.get(&target) == Some(&fp) {
        return Ok(None);
    }
    if meta.len() > max {
        return Err(SourceError::new(
            ErrorReason::Io,
            format!(
                "{target}: report is {} bytes, over max_file_size ({max} bytes); raise max_file_size or split the scan",
                meta.len()
            ),
        ));
    }
    let scanned_at = mtime_secs(&meta).unwrap_or(ctx.now).min(ctx.now);
    // The file may grow while we read it: never read more than the cap.
    let mut buf = Vec::with_capacity(meta.len() as usize + 1);
    file.take(max + 1).read_to_end(&mut buf).map_err(io)?;
    if buf.len() as u64 > max {
        return Err(SourceError::new(
            ErrorReason::Io,
            format!("{target}: report grew over max_file_size ({max} bytes) while being read"),
        ));
    }
    let findings = parse_slice(&buf, &target, &ctx.hasher).map_err(|e| match e {
        ParseError::Io(e) => io(e),
        ParseError::Format(m) => SourceError::new(ErrorReason::Parse, format!("{target}: {m}")),
    })?;
    Ok(Some(TargetScan {
        target,
        fingerprint: fp,
        scanned_at,
        findings,
    }))
}

#[derive(Debug)]
pub enum ParseError {
    Io(std::io::Error),
    /// Message names the line and column; never contains secret material.
    Format(String),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Io(e) => write!(f, "{e}"),
            ParseError::Format(m) => f.write_str(m),
        }
    }
}

fn json_error(e: serde_json::Error) -> ParseError {
    if e.is_io() {
        return ParseError::Io(std::io::Error::other(e.to_string()));
    }
    // serde_json messages can quote the offending input ("invalid type:
    // string \"...\""), which may be a secret: keep only the category and
    // the position.
    let what = match e.classify() {
        serde_json::error::Category::Syntax => "invalid JSON syntax",
        serde_json::error::Category::Eof => "unexpected end of file (truncated report?)",
        serde_json::error::Category::Data => {
            "a field has the wrong type or a required field is missing"
        }
        serde_json::error::Category::Io => "read error",
    };
    ParseError::Format(format!("line {} column {}: {what}", e.line(), e.column()))
}

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

/// Parse one gitleaks report (JSON array or SARIF 2.1.0, detected from the
/// first byte) from a reader, streaming. Secret values are HMAC'd with
/// `hasher` and dropped here.
pub fn parse_report<R: Read>(
    mut reader: R,
    target: &str,
    hasher: &SecretHasher,
) -> Result<Vec<ObservedFinding>, ParseError> {
    // Sniff the first non-whitespace byte, skipping a UTF-8 byte order mark.
    let mut first = [0u8; 1];
    let mut prefix = Vec::new();
    let mut pos = 0usize;
    loop {
        let n = reader.read(&mut first).map_err(ParseError::Io)?;
        if n == 0 {
            return Err(empty_file());
        }
        let is_bom = pos < 3 && first[0] == [0xEF, 0xBB, 0xBF][pos] && prefix.is_empty();
        pos += 1;
        if is_bom {
            continue;
        }
        prefix.push(first[0]);
        if !first[0].is_ascii_whitespace() {
            break;
        }
    }
    let chained = std::io::Cursor::new(prefix).chain(reader);
    let conv = Converter::new(hasher, target);
    match first[0] {
        b'[' => {
            let mut de = serde_json::Deserializer::from_reader(chained);
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
            let mut de = serde_json::Deserializer::from_reader(chained);
            let doc = Sarif::deserialize(&mut de).map_err(json_error)?;
            de.end().map_err(json_error)?;
            conv.sarif(doc)
        }
        _ => Err(not_a_report()),
    }
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

fn aws_key_id_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"(AKIA|ASIA)[A-Z0-9]{16}").expect("static regex"))
}

/// AWS access key ids visible in the leaked text: the link to the
/// credential inventory. They are ids, not secrets.
pub fn aws_key_ids(texts: &[Option<&str>]) -> Vec<CredentialRef> {
    let mut ids = BTreeSet::new();
    for t in texts.iter().flatten() {
        for m in aws_key_id_re().find_iter(t) {
            ids.insert(m.as_str().to_string());
        }
    }
    ids.into_iter()
        .map(|id| CredentialRef {
            provider: "aws",
            id,
        })
        .collect()
}

/// gitleaks `--redact` replaces the value by `REDACTED`, or keeps a prefix
/// followed by `...`: then there is no value to hash.
fn is_redacted(secret: &str) -> bool {
    secret.is_empty() || secret == "REDACTED" || secret.ends_with("...")
}

/// RFC 3339 to unix seconds.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    time::OffsetDateTime::parse(s.trim(), &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

/// `https://github.com/org/repo/blob/sha/path#L1` → `github.com/org/repo`.
fn repository_from_link(link: &str) -> Option<String> {
    let rest = link.split_once("://").map(|(_, r)| r).unwrap_or(link);
    for marker in ["/-/blob/", "/blob/", "/commit/", "/-/commit/", "/src/"] {
        if let Some((repo, _)) = rest.split_once(marker) {
            return Some(repo.trim_end_matches('/').to_string());
        }
    }
    None
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
                aws_key_ids(&[Some(s), matched.as_deref()]),
            ),
            _ => (
                ExposureKey::ScannerId,
                aws_key_ids(&[matched.as_deref().filter(|m| !is_redacted(m))]),
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
            committed_at: date.as_deref().and_then(parse_rfc3339),
            closed: None,
            validity: Validity::Unknown,
            links,
        }
    }

    fn sarif(&self, doc: Sarif) -> Result<Vec<ObservedFinding>, ParseError> {
        if doc.version != "2.1.0" {
            return Err(ParseError::Format(format!(
                "unsupported SARIF version {:?}: expected 2.1.0",
                doc.version.chars().take(16).collect::<String>()
            )));
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
