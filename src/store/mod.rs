//! The embedded store: SQLite in WAL mode with versioned migrations. It
//! keeps findings, exposures and their transitions, the persisted counters
//! and histograms, and the history behind the windowed KPIs.

mod apply;
mod copy;
pub mod db;
mod lease;
mod open;
mod schema;

pub use apply::{ApplyStats, PollApplier};
pub use copy::copy_store;
pub use lease::Replicas;
pub use schema::{rebuild_time_counts, SCHEMA_VERSION};

/// The migrations, for tests that build an older store.
#[cfg(test)]
pub(crate) fn schema_migrations() -> &'static [(&'static str, Option<schema::MigrationStep>)] {
    schema::MIGRATIONS
}

use db::{Conn, DbError};
use rusqlite::{Connection, OpenFlags};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

/// What the store counts and measures. It persists these events, never
/// metric names: the KPIs name them and choose the histogram buckets.
pub mod events {
    /// Counted in `counters`: a finding seen for the first time
    /// (labels source, secret_type).
    pub const FINDING_DETECTED: &str = "finding_detected";
    /// Counted in `counters`: a finding closed (labels source, resolution).
    pub const FINDING_CLOSED: &str = "finding_closed";
    /// Counted in `counters`: an exposure confirmed unusable (label
    /// confirmed_by); again after each re-exposure.
    pub const EXPOSURE_REVOKED: &str = "exposure_revoked";
    /// Counted in `counters`: a revoked exposure seen usable again (a newer
    /// live statement, or a linked credential active again).
    pub const EXPOSURE_REOPENED: &str = "exposure_reopened";
    /// Measured in `durations`: detection to closure of a finding (label
    /// source).
    pub const TIME_TO_CLOSE: &str = "time_to_close";
    /// Measured in `durations`: first detection (or the latest
    /// re-exposure) to confirmed revocation of an exposure (label
    /// confirmed_by).
    pub const TIME_TO_REVOKE: &str = "time_to_revoke";
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("the store {path} is corrupt ({detail}); it was left untouched. Restore it from a backup, or move it aside to start with an empty history")]
    Corrupt { path: PathBuf, detail: String },
    #[error("the store {path} has schema version {found}, newer than this build supports ({supported}); it was left untouched. Run a newer nhi-exporter, or restore a backup made by this version")]
    NewerSchema {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("the store {path} was written with a different hash key (key id {stored}, now {current}); exposures would no longer match. Point state.hash_key_file at the original key")]
    KeyMismatch {
        path: PathBuf,
        stored: String,
        current: String,
    },
    #[error("{path} is an SQLite database of another application (it has tables but no nhi-exporter schema); it was left untouched. Point state.path at a new file")]
    Foreign { path: PathBuf },
    #[error("the hash key file {key} is missing, but the store {path} was written under a key (key id {stored}); a new key would split every exposure. Restore the original key file, or move the store aside to start with an empty history")]
    KeyMissing {
        path: PathBuf,
        key: PathBuf,
        stored: String,
    },
    #[error("state.url_file: the URL {0}")]
    Url(String),
    #[error("cannot read state.url_file {path}: {source}")]
    UrlFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot connect to the store {location}: {source}")]
    Connect { location: String, source: DbError },
    #[error("the database {path} has tables of another application (meta, findings or exposures, but no nhi-exporter schema version); it was left untouched. Point the URL at a database or schema of its own")]
    ForeignPg { path: PathBuf },
    #[error("store error: {0}")]
    Db(#[from] DbError),
    #[error("corrupt value in the store: {0}")]
    Data(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Db(DbError::Lite(e))
    }
}

/// The store. One writer connection behind a mutex (SQLite has one writer;
/// PostgreSQL write transactions take one advisory lock, so replicas apply
/// one poll at a time too); readers use their own connections so KPI
/// queries never wait for a poll.
pub struct Store {
    backend: Backend,
    writer: Mutex<Conn>,
}

enum Backend {
    Lite(PathBuf),
    Pg(std::sync::Arc<db::pg::Pool>),
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.backend {
            Backend::Lite(p) => f.debug_struct("Store").field("path", p).finish(),
            Backend::Pg(pool) => f.debug_struct("Store").field("url", pool.target()).finish(),
        }
    }
}

impl Store {
    /// The writer connection. Held for the length of one poll's apply. A
    /// PostgreSQL connection lost (server restarted) is replaced here; if
    /// that fails, the apply fails with the connection error and the next
    /// poll tries again.
    pub fn writer(&self) -> MutexGuard<'_, Conn> {
        // A panic while holding the lock rolls back its transaction (the
        // transaction is dropped during unwinding), so the data is consistent.
        let mut w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        if let (Backend::Pg(pool), Conn::Pg(c)) = (&self.backend, &*w) {
            if c.is_closed() {
                match db::pg::PgConn::connect(pool.target()) {
                    Ok(c) => *w = Conn::Pg(Box::new(c)),
                    Err(e) => tracing::warn!(error = %e, "cannot reconnect to the store"),
                }
            }
        }
        w
    }

    /// Copy committed WAL frames into the database file without blocking
    /// readers or the writer (PASSIVE). Called after each applied poll.
    /// Nothing to do on PostgreSQL.
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        let Backend::Lite(path) = &self.backend else {
            return Ok(());
        };
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
        Ok(())
    }

    /// A read connection, for KPI queries: a new read-only SQLite
    /// connection, or one from the PostgreSQL pool.
    pub fn reader(&self) -> Result<Conn, StoreError> {
        match &self.backend {
            Backend::Lite(path) => {
                let conn = Connection::open_with_flags(
                    path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                open::tune(&conn)?;
                Ok(Conn::Lite(conn))
            }
            Backend::Pg(pool) => Ok(Conn::Pg(Box::new(pool.get()?))),
        }
    }

    /// Whether the store is PostgreSQL (shared by replicas).
    pub fn is_postgres(&self) -> bool {
        matches!(self.backend, Backend::Pg(_))
    }

    /// Fingerprints of the targets of `source` as last applied.
    pub fn target_fingerprints(
        &self,
        source: &str,
    ) -> Result<std::collections::HashMap<String, String>, StoreError> {
        let conn = self.reader()?;
        let mut stmt = conn.prepare("SELECT target, fingerprint FROM targets WHERE source = ?1")?;
        let rows = stmt.query_map([source], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// What a source's poll may reuse: its credentials as last applied (not
    /// deleted), and the ids of credentials linked to leaks not yet
    /// confirmed revoked. Only inventory sources (`inventory`) get the
    /// links, also before they have any credential: a `kubernetes` source
    /// reports a leaked bound token only once a link names it.
    pub fn poll_knowledge(
        &self,
        source: &str,
        inventory: bool,
    ) -> Result<
        (
            Vec<crate::model::KnownCredential>,
            std::collections::HashSet<String>,
        ),
        StoreError,
    > {
        use crate::model::{CredentialState, KnownCredential};
        let conn = self.reader()?;
        let mut stmt = conn.prepare(
            "SELECT scope, kind, ext_id, identity, created_at, state FROM credentials
             WHERE source = ?1 AND state != 'deleted'",
        )?;
        let rows = stmt.query_map([source], |r| {
            Ok(KnownCredential {
                scope: r.get(0)?,
                kind: r.get(1)?,
                id: r.get(2)?,
                identity: r.get(3)?,
                created_at: r.get(4)?,
                state: if r.get::<_, String>(5)? == "active" {
                    CredentialState::Active
                } else {
                    CredentialState::Inactive
                },
            })
        })?;
        let known = rows.collect::<Result<Vec<_>, _>>()?;
        let linked = if !inventory {
            Default::default()
        } else {
            let mut stmt = conn.prepare(
                "SELECT DISTINCT l.credential_id FROM exposure_links l
                 JOIN exposures e ON e.id = l.exposure_id WHERE e.revoked_at IS NULL",
            )?;
            let rows = stmt.query_map([], |r| r.get(0))?;
            rows.collect::<Result<_, _>>()?
        };
        Ok((known, linked))
    }

    /// The time of the latest KPI history point, if any.
    pub fn history_end(&self) -> Result<Option<i64>, StoreError> {
        let conn = self.reader()?;
        Ok(conn.query_row("SELECT MAX(ts) FROM history", [], |r| r.get(0))?)
    }

    /// The time a source's `<duration>-ago` past scans count from: `start`
    /// at its first backfill, kept so that a later run dates them alike.
    pub fn backfill_anchor(&self, source: &str, start: i64) -> Result<i64, StoreError> {
        let key = format!("backfill_anchor:{source}");
        let conn = self.writer();
        conn.execute(
            "INSERT INTO meta(key, value) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            [key.as_str(), start.to_string().as_str()],
        )?;
        let v: String = conn.query_row("SELECT value FROM meta WHERE key = ?1", [&key], |r| {
            r.get(0)
        })?;
        Ok(v.parse().unwrap_or(start))
    }

    /// Last successful poll time of each source, as persisted.
    pub fn last_successes(&self) -> Result<BTreeMap<String, i64>, StoreError> {
        let conn = self.reader()?;
        let mut stmt = conn.prepare("SELECT source, last_success FROM polls")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// Canonical label encoding for persisted counters: `k=v` pairs joined by
/// `\x1f`, sorted by key. Label values are from bounded sets and never
/// contain the separator.
pub fn encode_labels(pairs: &[(&str, &str)]) -> String {
    let mut v: Vec<_> = pairs.to_vec();
    v.sort();
    v.iter()
        .map(|(k, val)| format!("{k}={val}"))
        .collect::<Vec<_>>()
        .join("\x1f")
}

pub fn decode_labels(s: &str) -> Vec<(String, String)> {
    if s.is_empty() {
        return Vec::new();
    }
    s.split('\x1f')
        .filter_map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect()
}

/// Normalise a scanner rule id to lowercase snake case (`aws-access-token`
/// → `aws_access_token`, `GitHubToken` → `git_hub_token`), at most 64 chars.
pub fn normalise_secret_type(raw: &str) -> String {
    use heck::ToSnakeCase;
    let cleaned: String = raw
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let mut s = cleaned.to_snake_case();
    s.truncate(64);
    let s = s.trim_matches('_').to_string();
    // A rule id is a few words. A long unbroken run with digits, or a very
    // long one (a key or token put where the rule id goes), must not become
    // a label or reach the store: it is `unknown`.
    let secret_like = raw
        .split(|c: char| !c.is_ascii_alphanumeric())
        .any(|w| w.len() > 40 || (w.len() > 20 && w.chars().any(|c| c.is_ascii_digit())));
    if s.is_empty() || secret_like {
        "unknown".into()
    } else {
        s
    }
}

#[cfg(test)]
mod inventory_tests;
#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
pub(crate) mod tests;
#[cfg(test)]
mod validity_tests;
