//! nhi-exporter binary: parse the command line and hand over to the library.

use clap::Parser;
use nhi_exporter::cli::{Cli, Command, StoreCommand};
use nhi_exporter::{backfill, daemon, export, logging, migrate};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::ExportHistory(args)) = &cli.command {
        logging::init(cli.log_level, cli.log_format);
        return match export::run(&cli.config_file, args) {
            Ok(n) => {
                eprintln!("exported {n} points");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("nhi-exporter export-history: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(Command::Store(StoreCommand::Migrate(args))) = &cli.command {
        logging::init(cli.log_level, cli.log_format);
        return match migrate::run(&cli.config_file, args) {
            Ok(report) => {
                println!("{report}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("nhi-exporter store migrate: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if cli.config_check {
        return if daemon::check_config(&cli) {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    logging::init(cli.log_level, cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result: anyhow::Result<bool> = runtime.block_on(async {
        match &cli.command {
            Some(Command::Backfill(a)) => {
                Ok(
                    backfill::run_command(&cli.config_file, a.source.as_deref(), a.from.as_deref())
                        .await?,
                )
            }
            // Handled above, without a runtime.
            Some(Command::ExportHistory(_) | Command::Store(_)) => Ok(true),
            None if cli.once => Ok(daemon::run_once(&cli).await?),
            None => {
                daemon::run_daemon(&cli).await?;
                Ok(true)
            }
        }
    });
    // Do not wait for a poll still parsing a file: its transaction is
    // rolled back by SQLite when the process exits.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            tracing::error!(error = %e, "fatal");
            eprintln!("nhi-exporter: {e}");
            ExitCode::FAILURE
        }
    }
}
