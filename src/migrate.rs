//! `nhi-exporter store migrate --from sqlite:PATH --to postgres`: move an
//! installation from its SQLite store to the PostgreSQL store of its
//! configuration, history included (`store::copy_store`).

use crate::cli::MigrateArgs;
use crate::config::StoreBackend;
use crate::hashing::SecretHasher;
use crate::store::{copy_store, Store};
use std::path::{Path, PathBuf};

/// Run the migration; returns the report printed on success.
pub fn run(config_file: &Path, args: &MigrateArgs) -> Result<String, String> {
    let Some(from) = args.from.strip_prefix("sqlite:").map(PathBuf::from) else {
        return Err(format!(
            "--from {:?}: write sqlite:PATH, the SQLite store to copy",
            args.from
        ));
    };
    if args.to != "postgres" {
        return Err(format!(
            "--to {:?}: write postgres (the configuration's state.url_file)",
            args.to
        ));
    }
    let loaded = crate::sources::registry::load(config_file).map_err(|e| e.to_string())?;
    let state = &loaded.config.state;
    let StoreBackend::Postgres { url_file } = &state.backend else {
        return Err(format!(
            "{}: state.backend is not postgres; configure the PostgreSQL store (state.backend, state.url_file, state.hash_key_file) first",
            config_file.display()
        ));
    };
    if !from.is_file() {
        return Err(format!("--from: no SQLite store at {}", from.display()));
    }
    let key_path = state.hash_key_path();
    let hasher = SecretHasher::load(&key_path)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| {
            format!(
                "state.hash_key_file {} is missing: it must be the key the SQLite store was written under",
                key_path.display()
            )
        })?;
    let key_id = hasher.key_id();
    let source = Store::open(&from, &key_id).map_err(|e| e.to_string())?;
    let url = std::fs::read_to_string(url_file)
        .map_err(|e| format!("cannot read state.url_file {}: {e}", url_file.display()))?;
    let target = Store::open_postgres(&url, &key_id).map_err(|e| e.to_string())?;
    let copied = copy_store(&source, &target).map_err(|e| e.to_string())?;
    let total: u64 = copied.values().sum();
    let mut report = format!(
        "copied {total} rows from {} into PostgreSQL:",
        from.display()
    );
    for (table, n) in copied.iter().filter(|(_, n)| **n > 0) {
        report.push_str(&format!(" {table} {n},"));
    }
    report.pop();
    Ok(report)
}
