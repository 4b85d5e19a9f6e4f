//! Test stores on either backend. `NHI_TEST_BACKEND=postgres` runs the
//! store, KPI and landing tests that open their store here against a real
//! PostgreSQL server (`tests/common/pg.rs`): `scripts/test.sh` runs the
//! library's tests once per backend.

use super::{Store, StoreError};
use sha2::{Digest, Sha256};
use std::path::Path;

#[path = "../../tests/common/pg.rs"]
pub mod pg_server;

/// Whether this run's test stores are PostgreSQL.
pub fn postgres() -> bool {
    std::env::var("NHI_TEST_BACKEND").is_ok_and(|v| v == "postgres")
}

/// The test store at `path`: the SQLite file, or (PostgreSQL run) the
/// database named after the path, created on first use, so that a test
/// reopening its store finds its rows.
pub fn open(path: &Path, key: &str) -> Result<Store, StoreError> {
    if !postgres() {
        return Store::open(path, key);
    }
    let digest = Sha256::digest(path.as_os_str().as_encoded_bytes());
    let name = format!("t_{}", hex::encode(&digest[..8]));
    Store::open_postgres(&pg_server::server().db(&name), key)
}
