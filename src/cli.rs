//! Command line, following the Prometheus exporter conventions.

use crate::logging;
use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Default listen port: 10073. The classic 9100-9999 exporter range of the
/// Prometheus default port allocations is fully allocated; 10073 is not
/// listed there.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:10073";

pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (revision: ",
    env!("NHI_EXPORTER_REVISION_OR_UNKNOWN"),
    ")"
);

#[derive(Debug, Parser)]
#[command(
    name = "nhi-exporter",
    version = LONG_VERSION,
    about = "Prometheus exporter of outcome KPIs for non-human identity (NHI) security."
)]
pub struct Cli {
    /// Configuration file (YAML).
    #[arg(
        long = "config.file",
        default_value = "nhi-exporter.yaml",
        value_name = "PATH",
        global = true
    )]
    pub config_file: PathBuf,
    /// Validate the configuration without contacting anything; print OK or every error; exit 0 or 1.
    #[arg(long = "config.check")]
    pub config_check: bool,
    /// Apply the sources' backfill_dir past scans, poll every enabled source once, apply to the store, print the exposition and exit (1 when a source or a backfill failed).
    #[arg(long = "once")]
    pub once: bool,
    /// Address to listen on for the web interface and telemetry.
    #[arg(long = "web.listen-address", default_value = DEFAULT_LISTEN, value_name = "HOST:PORT")]
    pub listen_address: SocketAddr,
    /// Path under which to expose metrics.
    #[arg(
        long = "web.telemetry-path",
        default_value = "/metrics",
        value_name = "PATH"
    )]
    pub telemetry_path: String,
    /// Web configuration file (exporter-toolkit format) enabling TLS and/or basic auth.
    #[arg(long = "web.config.file", value_name = "PATH")]
    pub web_config_file: Option<PathBuf>,
    /// Enable reload via HTTP request (`POST /-/reload`), as Prometheus does; SIGHUP always reloads.
    #[arg(long = "web.enable-lifecycle")]
    pub enable_lifecycle: bool,
    /// Longest time a client may take to send a request's headers.
    #[arg(long = "web.read-header-timeout", default_value = "10s", value_parser = parse_timeout, value_name = "DURATION")]
    pub read_header_timeout: std::time::Duration,
    /// Close a connection idle (no request in progress, nothing sent or received) for this long.
    #[arg(long = "web.idle-timeout", default_value = "60s", value_parser = parse_timeout, value_name = "DURATION")]
    pub idle_timeout: std::time::Duration,
    /// Connections served at once (0: half the file descriptor limit, at most 512); more clients wait in the listen backlog.
    #[arg(long = "web.max-connections", default_value_t = 0, value_name = "N")]
    pub max_connections: usize,
    /// Only log messages with the given severity or above.
    #[arg(long = "log.level", value_enum, default_value = "info", global = true)]
    pub log_level: logging::Level,
    /// Output format of log messages.
    #[arg(
        long = "log.format",
        value_enum,
        default_value = "logfmt",
        global = true
    )]
    pub log_format: logging::Format,
    /// Without a subcommand: run the exporter (or `--once`, `--config.check`).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands; without one, the exporter runs (daemon or `--once`).
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply the dated past scans of each report source's `backfill_dir`
    /// to the store (oldest first; scans the store already covers are
    /// skipped), print one line per source, exit 0 or 1 on any error.
    Backfill(BackfillArgs),
    /// Write the store's KPI history (observed, and reconstructed from dated sources) as OpenMetrics for `promtool tsdb create-blocks-from openmetrics`.
    ExportHistory(ExportHistoryArgs),
    /// Store maintenance.
    #[command(subcommand)]
    Store(StoreCommand),
}

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Copy a SQLite store, history included, into the (empty) PostgreSQL store of the configuration (`state.backend: postgres`), under the same hash key. Stop the exporter first.
    Migrate(MigrateArgs),
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The store to copy: `sqlite:PATH`.
    #[arg(long, value_name = "sqlite:PATH")]
    pub from: String,
    /// Where to: `postgres`, the configuration's `state.url_file`.
    #[arg(long, value_name = "postgres")]
    pub to: String,
}

#[derive(Debug, Args)]
pub struct BackfillArgs {
    /// Only this source (by `name`).
    #[arg(long = "source", value_name = "NAME")]
    pub source: Option<String>,
    /// Read the dated scans from this directory instead of the source's `backfill_dir` (needs --source).
    #[arg(long = "from", value_name = "DIR", requires = "source")]
    pub from: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ExportHistoryArgs {
    /// First point: RFC 3339 time, or a duration before now (90d); default: the start of the store's history.
    #[arg(long, value_name = "TIME")]
    pub from: Option<String>,
    /// Last point: RFC 3339 time, or a duration before now; default: now.
    #[arg(long, value_name = "TIME")]
    pub to: Option<String>,
    /// Time between points.
    #[arg(long, default_value = "1h", value_name = "DURATION")]
    pub step: String,
    /// Label added to every series, e.g. the job and instance Prometheus gives the exporter (repeatable).
    #[arg(long = "label", value_name = "NAME=VALUE", value_parser = crate::export::parse_label)]
    pub labels: Vec<(String, String)>,
    /// Write to this file instead of stdout.
    #[arg(long, value_name = "PATH")]
    pub output: Option<PathBuf>,
}

fn parse_timeout(s: &str) -> Result<std::time::Duration, String> {
    match crate::config::parse_duration(s) {
        Ok(d) if !d.is_zero() => Ok(d),
        _ => Err("expected a duration above zero, e.g. 10s or 500ms".into()),
    }
}
