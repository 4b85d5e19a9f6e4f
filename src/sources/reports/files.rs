//! What the report-file sources (`gitleaks`, `trufflehog`, `detect_secrets`)
//! share: globbing, change detection, the size cap, reading, error mapping,
//! and the non-secret helpers used while parsing (AWS key id extraction,
//! repository names from links).
//!
//! Each file is the latest scan of one target. A source supplies a pure
//! parser of a file's bytes; everything touching the file system is here.

use crate::hashing::SecretHasher;
use crate::model::{
    CredentialRef, ErrorReason, ObservationItem, ObservedFinding, SourceError, TargetScan,
};
use crate::sources::{ObservationSender, PollContext};
use regex::Regex;
use std::collections::BTreeSet;
use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::OnceLock;

/// A failure to parse one report. Never contains input text.
#[derive(Debug)]
pub enum ParseError {
    Io(std::io::Error),
    /// Message names the line (and column where known); never contains
    /// secret material.
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

/// A pure parser of one report held in memory: bytes and the target name
/// in, findings out. Secret values are HMAC'd with the hasher and dropped.
pub type Parser = fn(&[u8], &str, &SecretHasher) -> Result<Vec<ObservedFinding>, ParseError>;

/// The category of a serde_json error, without its message: serde_json
/// messages can quote the offending input (`invalid type: string "..."`),
/// which may be a secret.
pub fn json_error_kind(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Syntax => "invalid JSON syntax",
        serde_json::error::Category::Eof => "unexpected end of file (truncated report?)",
        serde_json::error::Category::Data => {
            "a field has the wrong type or a required field is missing"
        }
        serde_json::error::Category::Io => "read error",
    }
}

/// A serde_json error as a [`ParseError`] naming line and column only.
pub fn json_error(e: serde_json::Error) -> ParseError {
    if e.is_io() {
        return ParseError::Io(std::io::Error::other(e.to_string()));
    }
    ParseError::Format(format!(
        "line {} column {}: {}",
        e.line(),
        e.column(),
        json_error_kind(&e)
    ))
}

/// Strip a UTF-8 byte order mark.
pub fn strip_bom(data: &[u8]) -> &[u8] {
    data.strip_prefix(&[0xEF, 0xBB, 0xBF][..]).unwrap_or(data)
}

/// Reject input that is not UTF-8, naming the line and column (1-based,
/// in bytes) of the first invalid byte.
pub fn check_utf8(data: &[u8]) -> Result<(), ParseError> {
    match std::str::from_utf8(data) {
        Ok(_) => Ok(()),
        Err(e) => {
            let before = &data[..e.valid_up_to()];
            let line = before.iter().filter(|b| **b == b'\n').count() + 1;
            let col = before.len()
                - before
                    .iter()
                    .rposition(|b| *b == b'\n')
                    .map_or(0, |i| i + 1)
                + 1;
            Err(ParseError::Format(format!(
                "line {line} column {col}: not valid UTF-8"
            )))
        }
    }
}

/// Run a blocking poll on a low-priority background thread.
pub async fn spawn_poll<F>(name: &str, f: F) -> Result<(), SourceError>
where
    F: FnOnce() -> Result<(), SourceError> + Send + 'static,
{
    crate::util::spawn_background(name, f)
        .await
        .unwrap_or_else(|| Err(SourceError::new(ErrorReason::Io, "poll thread failed")))
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

/// Poll the files matching `patterns`: one [`ObservationItem`] per file
/// (a scan, unchanged, or failed), parsed with `parse`.
pub fn poll_files(
    patterns: &[String],
    max_file_size: u64,
    parse: Parser,
    ctx: &PollContext,
    out: &ObservationSender,
) -> Result<(), SourceError> {
    let mut files = BTreeSet::new();
    for pattern in patterns {
        let paths = glob::glob(pattern).map_err(|e| {
            SourceError::new(ErrorReason::Io, format!("invalid glob {pattern:?}: {e}"))
        })?;
        for entry in paths {
            match entry {
                // `metadata` follows symlinks: a dangling one, a loop or an
                // unreadable directory entry is an error here, and never
                // silently skipped. Only directories (a glob such as
                // `reports/*` may match one) are not inputs.
                Ok(p) => {
                    let why = match std::fs::metadata(&p) {
                        Ok(m) if m.is_file() => {
                            files.insert(p);
                            continue;
                        }
                        Ok(m) if m.is_dir() => continue,
                        Ok(_) => {
                            "not a regular file (a FIFO, socket or device); not read".to_string()
                        }
                        Err(e) => e.to_string(),
                    };
                    let target = p.to_string_lossy().into_owned();
                    let error = SourceError::new(ErrorReason::Io, format!("{target}: {why}"));
                    out.send_blocking(ObservationItem::TargetFailed { target, error })
                        .map_err(|_| cancelled())?;
                }
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
        let item = match read_target(&path, max_file_size, parse, ctx) {
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

/// Read and parse one file, or `None` when it is unchanged since it was
/// last applied. Errors name the file and never quote its content.
pub fn read_target(
    path: &Path,
    max: u64,
    parse: Parser,
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
    let scanned_at = mtime_secs(&meta).unwrap_or(ctx.now).min(ctx.now);
    let findings = read_open(file, &meta, &target, &target, max, parse, &ctx.hasher)?;
    Ok(Some(TargetScan {
        target,
        fingerprint: fp,
        scanned_at,
        findings,
    }))
}

/// Read and parse the report at `path` as the scan of `target` made at
/// `scanned_at`: a backfilled past scan, never skipped as unchanged.
/// Errors name `path`, not `target`.
pub fn read_as(
    path: &Path,
    target: String,
    scanned_at: i64,
    max: u64,
    parse: Parser,
    hasher: &SecretHasher,
) -> Result<TargetScan, SourceError> {
    let shown = path.to_string_lossy().into_owned();
    let io = |e: std::io::Error| SourceError::new(ErrorReason::Io, format!("{shown}: {e}"));
    let file = File::open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    let findings = read_open(file, &meta, &shown, &target, max, parse, hasher)?;
    Ok(TargetScan {
        target,
        fingerprint: fingerprint(&meta),
        scanned_at,
        findings,
    })
}

/// Read an opened report under the size cap and parse it as `target`;
/// errors name `shown`.
fn read_open(
    file: File,
    meta: &std::fs::Metadata,
    shown: &str,
    target: &str,
    max: u64,
    parse: Parser,
    hasher: &SecretHasher,
) -> Result<Vec<ObservedFinding>, SourceError> {
    let io = |e: std::io::Error| SourceError::new(ErrorReason::Io, format!("{shown}: {e}"));
    if meta.len() > max {
        return Err(SourceError::new(
            ErrorReason::Io,
            format!(
                "{shown}: report is {} bytes, over max_file_size ({max} bytes); raise max_file_size or split the scan",
                meta.len()
            ),
        ));
    }
    // Held until the report is parsed and its buffer dropped.
    let _bytes = super::budget::global().acquire(meta.len(), max);
    // The file may grow while we read it: never read more than the cap.
    let mut buf = Vec::with_capacity(meta.len() as usize + 1);
    file.take(max + 1).read_to_end(&mut buf).map_err(io)?;
    if buf.len() as u64 > max {
        return Err(SourceError::new(
            ErrorReason::Io,
            format!("{shown}: report grew over max_file_size ({max} bytes) while being read"),
        ));
    }
    parse(&buf, target, hasher).map_err(|e| match e {
        ParseError::Io(e) => io(e),
        ParseError::Format(m) => SourceError::new(ErrorReason::Parse, format!("{shown}: {m}")),
    })
}

fn aws_key_id_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"(AKIA|ASIA)[A-Z0-9]{16}").expect("static regex"))
}

/// The non-secret credential ids visible in the leaked text: the links to
/// the credential inventory. AWS access key ids, and the Secret or service
/// account a Kubernetes service-account token names (see
/// [`crate::sources::kubernetes::token`]), and the key a GCP service-account
/// key file names (`private_key_id`, see [`crate::sources::gcp::key`]).
pub fn credential_links(texts: &[Option<&str>]) -> Vec<CredentialRef> {
    let mut ids = BTreeSet::new();
    for t in texts.iter().flatten() {
        for m in aws_key_id_re().find_iter(t) {
            ids.insert(m.as_str().to_string());
        }
    }
    let mut links: Vec<CredentialRef> = ids
        .into_iter()
        .map(|id| CredentialRef {
            provider: "aws",
            id,
        })
        .collect();
    for t in texts.iter().flatten() {
        let k8s = crate::sources::kubernetes::token::token_links(t);
        // A GCP key file links to its key by `private_key_id`.
        let gcp = crate::sources::gcp::key::key_links(t);
        for l in k8s.into_iter().chain(gcp) {
            if !links.contains(&l) {
                links.push(l);
            }
        }
    }
    links.extend(crate::sources::azure::link::client_secret_links(texts));
    links
}

/// `https://github.com/org/repo/blob/sha/path#L1` → `github.com/org/repo`.
pub fn repository_from_link(link: &str) -> Option<String> {
    let rest = link.split_once("://").map(|(_, r)| r).unwrap_or(link);
    // Credentials in the authority part (`oauth2:TOKEN@host`) are never kept.
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let rest = match rest[..authority_end].rfind('@') {
        Some(at) => &rest[at + 1..],
        None => rest,
    };
    for marker in ["/-/blob/", "/blob/", "/commit/", "/-/commit/", "/src/"] {
        if let Some((repo, _)) = rest.split_once(marker) {
            return Some(repo.trim_end_matches('/').to_string());
        }
    }
    None
}

/// A repository URL as stored: without scheme, credentials (`user:token@`),
/// query, fragment or `.git` suffix. `https://x:y@github.com/o/r.git` →
/// `github.com/o/r`; a local path is kept as it is.
pub fn repository_from_url(url: &str) -> Option<String> {
    let url = url.trim();
    let rest = match url.split_once("://") {
        Some((_, r)) => r,
        None => url,
    };
    // Credentials in the authority part must never be stored.
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let path = path.split(['?', '#']).next().unwrap_or("");
    let repo = format!("{authority}{path}");
    let repo = repo.trim_end_matches('/');
    let repo = repo.strip_suffix(".git").unwrap_or(repo);
    let repo = repo.trim_end_matches('/');
    (!repo.is_empty()).then(|| repo.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::Arc;

    fn ctx(known: HashMap<String, String>) -> PollContext {
        PollContext {
            source: "t".into(),
            hasher: Arc::new(SecretHasher::new([7; 32])),
            known_targets: known,
            now: i64::MAX,
            deadline: std::time::Instant::now() + std::time::Duration::from_secs(60),
            policy: Arc::new(crate::config::Policy::default()),
            known_credentials: Vec::new(),
            linked_credentials: Default::default(),
        }
    }

    fn count_bytes(
        data: &[u8],
        _: &str,
        _: &SecretHasher,
    ) -> Result<Vec<ObservedFinding>, ParseError> {
        if data.starts_with(b"bad") {
            return Err(ParseError::Format("line 1: bad".into()));
        }
        Ok(Vec::new())
    }

    #[test]
    fn reads_skips_unchanged_and_caps_the_size() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.json");
        std::fs::write(&p, b"0123456789").unwrap();
        let scan = read_target(&p, 10, count_bytes, &ctx(HashMap::new()))
            .unwrap()
            .unwrap();
        assert_eq!(scan.target, p.to_string_lossy());
        assert!(scan.findings.is_empty());
        let known = HashMap::from([(scan.target.clone(), scan.fingerprint.clone())]);
        assert!(read_target(&p, 10, count_bytes, &ctx(known))
            .unwrap()
            .is_none());
        let e = read_target(&p, 9, count_bytes, &ctx(HashMap::new())).unwrap_err();
        assert_eq!(e.reason, ErrorReason::Io);
        assert!(e.message.contains("over max_file_size (9 bytes)"), "{e}");
        std::fs::write(&p, b"bad input").unwrap();
        let e = read_target(&p, 100, count_bytes, &ctx(HashMap::new())).unwrap_err();
        assert_eq!(e.reason, ErrorReason::Parse);
        assert_eq!(e.message, format!("{}: line 1: bad", p.display()));
    }

    #[test]
    fn polls_every_matching_file_in_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.jsonl"), b"").unwrap();
        std::fs::write(dir.path().join("a.jsonl"), b"bad").unwrap();
        std::fs::write(dir.path().join("c.txt"), b"").unwrap();
        std::fs::create_dir(dir.path().join("d.jsonl")).unwrap();
        // Paths that are no readable report: each one fails as `io`, and
        // none is opened (a FIFO would block the poll).
        #[cfg(unix)]
        {
            let fifo =
                std::ffi::CString::new(dir.path().join("e.jsonl").to_str().unwrap()).unwrap();
            assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
            std::os::unix::fs::symlink(dir.path().join("missing"), dir.path().join("f.jsonl"))
                .unwrap();
            std::os::unix::fs::symlink(dir.path().join("g.jsonl"), dir.path().join("g.jsonl"))
                .unwrap();
        }
        let pattern = format!("{}/*.jsonl", dir.path().display());
        let (tx, mut rx) = ObservationSender::channel(16);
        poll_files(&[pattern], 100, count_bytes, &ctx(HashMap::new()), &tx).unwrap();
        let mut got = Vec::new();
        while let Ok(item) = rx.try_recv() {
            got.push(match item {
                ObservationItem::Target(s) => format!("ok {}", s.target),
                ObservationItem::TargetFailed { target, error } => {
                    format!("failed {target} {}", error.reason)
                }
                ObservationItem::TargetUnchanged { target } => format!("unchanged {target}"),
                ObservationItem::InventoryScopes(s) => format!("scopes {s:?}"),
                ObservationItem::Inventory(i) => format!("inventory {}", i.scope),
            });
        }
        let d = dir.path().display();
        assert_eq!(
            got,
            [
                format!("failed {d}/e.jsonl io"),
                format!("failed {d}/f.jsonl io"),
                format!("failed {d}/g.jsonl io"),
                format!("failed {d}/a.jsonl parse"),
                format!("ok {d}/b.jsonl")
            ]
        );
    }

    #[test]
    fn utf8_errors_name_line_and_column() {
        assert!(check_utf8("ok\né".as_bytes()).is_ok());
        match check_utf8(b"{}\nab\xFFcd") {
            Err(ParseError::Format(m)) => assert_eq!(m, "line 2 column 3: not valid UTF-8"),
            other => panic!("{other:?}"),
        }
        assert_eq!(strip_bom(b"\xEF\xBB\xBF{}"), b"{}");
    }

    #[test]
    fn repository_urls_lose_credentials() {
        let cases = [
            (
                "https://github.com/acme/payments.git",
                Some("github.com/acme/payments"),
            ),
            (
                "https://x-access-token:ghp_x@github.com/acme/p.git/",
                Some("github.com/acme/p"),
            ),
            ("git@github.com:acme/p.git", Some("github.com:acme/p")),
            (
                "ssh://git@gitlab.example.com:2222/g/p",
                Some("gitlab.example.com:2222/g/p"),
            ),
            ("https://h.example/r?token=abc#x", Some("h.example/r")),
            ("file:///srv/repos/p", Some("/srv/repos/p")),
            ("/tmp/checkout", Some("/tmp/checkout")),
            ("", None),
        ];
        for (url, want) in cases {
            assert_eq!(repository_from_url(url).as_deref(), want, "{url}");
        }
    }
}
