//! Opening a store: the SQLite file (created private, checked, migrated in
//! WAL mode) or the PostgreSQL database (migrated once under a lock by
//! whichever replica comes first), and the hash key check of both.

use super::db::{self, Conn, OptionalExt};
use super::{schema, Backend, Store, StoreError, SCHEMA_VERSION};
use rusqlite::{Connection, OpenFlags};
use std::path::Path;
use std::sync::Mutex;

fn is_corruption(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::NotADatabase) | Some(rusqlite::ErrorCode::DatabaseCorrupt)
    )
}

pub(super) fn tune(conn: &Connection) -> Result<(), rusqlite::Error> {
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
        let mut conn = Conn::Lite(conn);
        for (i, (sql, code)) in schema::MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = conn.transaction()?;
            tx.execute_batch(sql)?;
            if let Some(code) = code {
                code(&tx)?;
            }
            tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1))?;
            tx.commit()?;
            tracing::info!(version = i + 1, "store migrated");
        }
        check_key(&conn, key_id, path)?;
        Ok(Store {
            backend: Backend::Lite(path.to_path_buf()),
            writer: Mutex::new(conn),
        })
    }

    /// Open and migrate the PostgreSQL store at `url` (the content of
    /// `state.url_file`). Replicas starting together on an empty database
    /// all come up: the first migrates under an advisory lock, the others
    /// wait for it and find the schema current.
    pub fn open_postgres(url: &str, key_id: &str) -> Result<Self, StoreError> {
        let (target, mut conn) = connect_postgres(url)?;
        let shown = Path::new(target.shown()).to_path_buf();
        schema::migrate_postgres(&mut conn, &shown)?;
        check_key(&conn, key_id, &shown)?;
        Ok(Store {
            backend: Backend::Pg(db::pg::Pool::new(target)),
            writer: Mutex::new(conn),
        })
    }

    /// [`Store::stored_key_id`] of a PostgreSQL store: `None` when the
    /// database has no store yet.
    pub fn stored_key_id_postgres(url: &str) -> Result<Option<String>, StoreError> {
        let (_, conn) = connect_postgres(url)?;
        let has_meta: bool =
            conn.query_row("SELECT to_regclass('meta') IS NOT NULL", [], |r| r.get(0))?;
        if !has_meta {
            return Ok(None);
        }
        key_id_of(&conn)
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
        key_id_of(&Conn::Lite(conn))
    }
}

/// Parse a PostgreSQL URL and open a connection to it.
fn connect_postgres(url: &str) -> Result<(db::pg::Target, Conn), StoreError> {
    let target = db::pg::Target::parse(url).map_err(StoreError::Url)?;
    let conn = db::pg::PgConn::connect(&target).map_err(|e| StoreError::Connect {
        location: target.shown().to_string(),
        source: e,
    })?;
    Ok((target, Conn::Pg(Box::new(conn))))
}

/// The hash key id recorded in a store's `meta`, if any.
fn key_id_of(conn: &Conn) -> Result<Option<String>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'hash_key_id'",
            [],
            |r| r.get(0),
        )
        .optional()?)
}

/// Record the hash key id in a new store; refuse a store written under
/// another key. Replicas may open a new PostgreSQL store at the same moment:
/// the first insert wins, and every replica compares its key with the winner's.
fn check_key(conn: &Conn, key_id: &str, path: &Path) -> Result<(), StoreError> {
    let mut stored = key_id_of(conn)?;
    if stored.is_none() {
        conn.execute(
            "INSERT INTO meta(key, value) VALUES ('hash_key_id', ?1) ON CONFLICT DO NOTHING",
            [key_id],
        )?;
        stored = key_id_of(conn)?;
    }
    match stored {
        Some(s) if s != key_id => Err(StoreError::KeyMismatch {
            path: path.to_path_buf(),
            stored: s,
            current: key_id.to_string(),
        }),
        _ => Ok(()),
    }
}
