//! The report-file scanners: `gitleaks` (JSON, SARIF 2.1.0), `trufflehog`
//! (v3 JSON lines) and `detect_secrets` (`.secrets.baseline`). They share
//! everything but the parser of a file: the keys (`paths`, globs, and
//! `max_file_size`), globbing, change detection and reading ([`files`]).
//! Each file is the latest scan of one target.

pub mod borrowed;
pub mod budget;
#[cfg(test)]
mod config_tests;
pub mod detect_secrets;
pub mod files;
pub mod gitleaks;
pub mod trufflehog;

use super::registry::{Registration, SourceType};
use super::{Fetch, ObservationSender, PollContext, PollFuture, Source};
use crate::config::yaml::{resolve, size_value};
use crate::config::{SourceParse, SourceSettings, SourceSpec};
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::Arc;

/// Reports larger than this are rejected (counted `io` error) rather than
/// read into memory, unless `max_file_size` says otherwise.
pub const DEFAULT_MAX_FILE_SIZE: u64 = 256 * 1024 * 1024;

/// Which scanner wrote the reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Gitleaks,
    Trufflehog,
    DetectSecrets,
}

impl Format {
    pub fn type_name(self) -> &'static str {
        match self {
            Format::Gitleaks => "gitleaks",
            Format::Trufflehog => "trufflehog",
            Format::DetectSecrets => "detect_secrets",
        }
    }
}

/// The settings of a report-file source.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportsConfig {
    pub format: Format,
    /// Glob patterns of report files, made absolute.
    pub paths: Vec<String>,
    /// Reports larger than this are rejected (counted `io` error).
    pub max_file_size: u64,
    /// Dated past scans to backfill (see [`crate::backfill`]), made absolute.
    pub backfill_dir: Option<PathBuf>,
    /// trufflehog: `Verified: false` without a `VerificationError` means
    /// the detector found the secret invalid (validity `inactive`).
    pub unverified_is_inactive: bool,
}

impl ReportsConfig {
    /// The parser of one report of this source.
    pub fn parser(&self) -> files::Parser {
        match self.format {
            Format::Gitleaks => gitleaks::parse_slice,
            Format::Trufflehog if self.unverified_is_inactive => {
                trufflehog::parse_slice_unverified_inactive
            }
            Format::Trufflehog => trufflehog::parse_slice,
            Format::DetectSecrets => detect_secrets::parse_slice,
        }
    }
}

impl SourceSettings for ReportsConfig {
    fn type_name(&self) -> &'static str {
        self.format.type_name()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReports {
    paths: Vec<String>,
    max_file_size: Option<serde_yaml::Value>,
    backfill_dir: Option<String>,
    unverified_is_inactive: Option<bool>,
}

fn parse(format: Format, cx: &mut SourceParse<'_>) -> Option<Arc<dyn SourceSpec>> {
    let r: RawReports = cx.decode()?;
    if r.paths.is_empty() {
        cx.issue("paths", "must list at least one glob of report files");
    }
    let mut paths = Vec::new();
    for (i, p) in r.paths.iter().enumerate() {
        let abs = resolve(cx.base, p).to_string_lossy().into_owned();
        if let Err(e) = glob::Pattern::new(&abs) {
            cx.issue(&format!("paths[{i}]"), format!("invalid glob: {e}"));
        }
        paths.push(abs);
    }
    let max_file_size = match r.max_file_size.as_ref().map(size_value) {
        None => DEFAULT_MAX_FILE_SIZE,
        Some(Ok(n)) if n > 0 => n,
        Some(Ok(_)) => {
            cx.issue("max_file_size", "must be greater than 0");
            DEFAULT_MAX_FILE_SIZE
        }
        Some(Err(e)) => {
            cx.issue("max_file_size", e);
            DEFAULT_MAX_FILE_SIZE
        }
    };
    let backfill_dir = match r.backfill_dir.as_deref() {
        Some("") => {
            cx.issue("backfill_dir", "must not be empty");
            None
        }
        Some(d) => Some(resolve(cx.base, d)),
        None => None,
    };
    if r.unverified_is_inactive.is_some() && format != Format::Trufflehog {
        cx.issue(
            "unverified_is_inactive",
            "only a trufflehog source has this key",
        );
    }
    Some(Arc::new(ReportsConfig {
        format,
        paths,
        max_file_size,
        backfill_dir,
        unverified_is_inactive: r.unverified_is_inactive.unwrap_or(false),
    }))
}

/// A report-file source of any of the three formats.
#[derive(Debug, Clone)]
pub struct ReportsSource {
    cfg: ReportsConfig,
}

impl ReportsSource {
    pub fn new(cfg: ReportsConfig) -> Self {
        Self { cfg }
    }
}

impl Source for ReportsSource {
    fn poll<'a>(&'a self, ctx: PollContext, out: ObservationSender) -> PollFuture<'a> {
        let cfg = self.cfg.clone();
        Box::pin(async move {
            let name = ctx.source.clone();
            files::spawn_poll(&name, move || {
                files::poll_files(&cfg.paths, cfg.max_file_size, cfg.parser(), &ctx, &out)
            })
            .await
        })
    }

    /// Local files, possibly a million findings: applied while read.
    fn fetch(&self) -> Fetch {
        Fetch::Stream
    }
}

fn build(spec: &dyn SourceSpec) -> Result<Arc<dyn Source>, String> {
    let cfg = Registration::settings::<ReportsConfig>(spec)?;
    Ok(Arc::new(ReportsSource::new(cfg.clone())))
}

pub const GITLEAKS: Registration = Registration {
    ty: SourceType {
        name: "gitleaks",
        parse: |cx| parse(Format::Gitleaks, cx),
    },
    build,
};

pub const TRUFFLEHOG: Registration = Registration {
    ty: SourceType {
        name: "trufflehog",
        parse: |cx| parse(Format::Trufflehog, cx),
    },
    build,
};

pub const DETECT_SECRETS: Registration = Registration {
    ty: SourceType {
        name: "detect_secrets",
        parse: |cx| parse(Format::DetectSecrets, cx),
    },
    build,
};
