//! The embedded store: SQLite in WAL mode with versioned migrations. It
//! keeps findings, exposures and their transitions, the persisted counters
//! and histograms, and the history behind the windowed KPIs.

mod apply;
mod schema;

pub use apply::{ApplyStats, PollApplier};
pub use schema::{rebuild_time_counts, SCHEMA_VERSION};

/// The migrations, for tests that build an older store.
#[cfg(test)]
pub(crate) fn schema_migrations() -> &'static [(&'static str, Option<schema::MigrationStep>)] {
    schema::MIGRATIONS
}

use rusqlite::{Connection, OpenFlags, OptionalExtension};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
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
    #[error("store error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("corrupt value in the store: {0}")]
    Data(String),
}

/// The store. One writer connection behind a mutex (SQLite has one writer);
/// readers open their own connections so KPI queries never wait for a poll.
pub struct Store {
    path: PathBuf,
    writer: Mutex<Connection>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

fn is_corruption(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::NotADatabase) | Some(rusqlite::ErrorCode::DatabaseCorrupt)
    )
}

fn tune(conn: &Connection) -> Result<(), rusqlite::Error> {
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "cache_size", -32_000)?; // 32 MiB
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    Ok(())
}

impl Store {
    /// Open (creating if missing) and migrate the store. `key_id` is the
    /// fingerprint of the HMAC key; a store written under another key is
    /// refused.
    pub fn open(path: &Path, key_id: &str) -> Result<Self, StoreError> {
        let open_err = |source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        };
        let corrupt = |detail: String| StoreError::Corrupt {
            path: path.to_path_buf(),
            detail,
        };
        let cant_open = |what: String| {
            open_err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
                Some(what),
            ))
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::util::create_private_dir(dir).map_err(|e| {
                cant_open(format!("cannot create directory {}: {e}", dir.display()))
            })?;
        }
        let existed = path.metadata().map(|m| m.len() > 0).unwrap_or(false);
        // Created 0600 before SQLite opens it (its -wal and -shm files take
        // the database file's mode), whatever the umask; an existing store
        // and its files are made private too.
        crate::util::private_file(path)
            .map_err(|e| cant_open(format!("cannot create {}: {e}", path.display())))?;
        for suffix in ["-wal", "-shm"] {
            let mut p = path.as_os_str().to_owned();
            p.push(suffix);
            crate::util::restrict_if_exists(Path::new(&p));
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(open_err)?;
        let classify = |e: rusqlite::Error| {
            if is_corruption(&e) {
                corrupt(e.to_string())
            } else {
                open_err(e)
            }
        };
        if existed {
            let check: String = conn
                .query_row("PRAGMA quick_check", [], |r| r.get(0))
                .map_err(classify)?;
            if check != "ok" {
                return Err(corrupt(format!("quick_check: {check}")));
            }
        }
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(classify)?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                path: path.to_path_buf(),
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        if version < 0 {
            return Err(corrupt(format!("negative schema version {version}")));
        }
        if version == 0 {
            // Never add our tables to another application's database.
            let tables: i64 = conn
                .query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| r.get(0))
                .map_err(classify)?;
            if tables > 0 {
                return Err(StoreError::Foreign {
                    path: path.to_path_buf(),
                });
            }
        }
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(classify)?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(journal_mode = %mode, "the store could not switch to WAL mode");
        }
        tune(&conn).map_err(classify)?;
        // The writer gets a larger page cache: a first ingest of a million
        // findings touches indexes larger than the readers' 32 MiB (the
        // exposures' key index is 51 MiB at 1M). 64 MiB, not 96: the same
        // ingest time at 1M (measured against Python's json.load in the
        // same run: 2.31x vs 2.39x) and peak RSS 124 -> 89 MiB
        // (`cargo bench --bench ingest`).
        conn.pragma_update(None, "cache_size", -64_000)
            .map_err(classify)?;
        // Checkpoints run after each commit on a separate connection
        // (`Store::checkpoint`), not inside the poll's commit.
        conn.pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(classify)?;
        conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)
            .map_err(classify)?;
        let mut conn = conn;
        for (i, (sql, code)) in schema::MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = conn.transaction()?;
            tx.execute_batch(sql)?;
            if let Some(code) = code {
                code(&tx)?;
            }
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
            tx.commit()?;
            tracing::info!(version = i + 1, "store migrated");
        }
        let stored: Option<String> = conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'hash_key_id'",
                [],
                |r| r.get(0),
            )
            .optional()?;
        match stored {
            None => {
                conn.execute(
                    "INSERT INTO meta(key, value) VALUES ('hash_key_id', ?1)",
                    [key_id],
                )?;
            }
            Some(s) if s != key_id => {
                return Err(StoreError::KeyMismatch {
                    path: path.to_path_buf(),
                    stored: s,
                    current: key_id.to_string(),
                })
            }
            Some(_) => {}
        }
        Ok(Store {
            path: path.to_path_buf(),
            writer: Mutex::new(conn),
        })
    }

    /// The hash key id a store was written under, without changing it:
    /// `None` when the store is new or empty. Read before a new key is
    /// generated, so that a missing key file is reported instead of a new
    /// key being written that the store would refuse.
    pub fn stored_key_id(path: &Path) -> Result<Option<String>, StoreError> {
        if !path.metadata().map(|m| m.len() > 0).unwrap_or(false) {
            return Ok(None);
        }
        let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(
            |source| StoreError::Open {
                path: path.to_path_buf(),
                source,
            },
        )?;
        let (tables, has_meta): (i64, i64) = conn
            .query_row(
                "SELECT COUNT(*), COUNT(*) FILTER (WHERE type = 'table' AND name = 'meta') FROM sqlite_master",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(|e| {
                if is_corruption(&e) {
                    StoreError::Corrupt {
                        path: path.to_path_buf(),
                        detail: e.to_string(),
                    }
                } else {
                    StoreError::Open {
                        path: path.to_path_buf(),
                        source: e,
                    }
                }
            })?;
        if has_meta == 0 {
            // Another application's database: refused before a key is written.
            if tables > 0 {
                return Err(StoreError::Foreign {
                    path: path.to_path_buf(),
                });
            }
            return Ok(None);
        }
        Ok(conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'hash_key_id'",
                [],
                |r| r.get(0),
            )
            .optional()?)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The writer connection. Held for the length of one poll's apply.
    pub fn writer(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock rolls back its transaction (the
        // Transaction is dropped during unwinding), so the data is consistent.
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Copy committed WAL frames into the database file without blocking
    /// readers or the writer (PASSIVE). Called after each applied poll.
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
        Ok(())
    }

    /// A new read-only connection, for KPI queries.
    pub fn reader(&self) -> Result<Connection, StoreError> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        tune(&conn)?;
        Ok(conn)
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
            "INSERT OR IGNORE INTO meta(key, value) VALUES (?1, ?2)",
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
pub(crate) mod tests;
#[cfg(test)]
mod validity_tests;
