//! Leases of a PostgreSQL store shared by replicas: which replica polls a
//! source. Times are the database server's clock (one clock for every
//! replica). Statements run on a pooled connection of their own, outside
//! the write lock, so a heartbeat never waits behind a poll's apply. On
//! SQLite (one instance) every lease is held.

use super::{Store, StoreError};
use crate::store::db::{params, OptionalExt};

/// The database server's clock, in unix seconds.
const DB_NOW: &str = "CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS BIGINT)";

/// A replica's view of the replicas sharing the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replicas {
    /// Replicas whose heartbeat is recent, this one included.
    pub live: u64,
    /// Leases this replica holds now.
    pub held: u64,
}

impl Store {
    /// Take or keep the lease `name` for `ttl` seconds as `holder`: kept
    /// when `holder` has it; taken when it is free or expired and `take`
    /// is set. Returns whether `holder` holds it now.
    pub fn hold_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: i64,
        take: bool,
    ) -> Result<bool, StoreError> {
        if !self.is_postgres() {
            return Ok(true);
        }
        let conn = self.reader()?;
        let sql = if take {
            format!(
                "INSERT INTO leases(name, holder, expires_at) VALUES (?1, ?2, {DB_NOW} + ?3)
                 ON CONFLICT(name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
                 WHERE leases.holder = excluded.holder OR leases.expires_at < {DB_NOW}
                 RETURNING holder"
            )
        } else {
            format!(
                "UPDATE leases SET expires_at = {DB_NOW} + ?3 WHERE name = ?1 AND holder = ?2
                 RETURNING holder"
            )
        };
        let got: Option<String> = conn
            .query_row(&sql, params![name, holder, ttl], |r| r.get(0))
            .optional()?;
        Ok(got.is_some())
    }

    /// Give the lease up (a rebalance, or a clean stop): another replica
    /// may take it at once.
    pub fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        if !self.is_postgres() {
            return Ok(());
        }
        self.reader()?.execute(
            "DELETE FROM leases WHERE name = ?1 AND holder = ?2",
            params![name, holder],
        )?;
        Ok(())
    }

    /// Record `holder` as live; count the replicas seen within `live_for`
    /// seconds and the unexpired leases `holder` holds. Replicas not seen
    /// for a day are forgotten.
    pub fn replica_heartbeat(&self, holder: &str, live_for: i64) -> Result<Replicas, StoreError> {
        if !self.is_postgres() {
            return Ok(Replicas { live: 1, held: 0 });
        }
        let conn = self.reader()?;
        conn.execute(
            &format!(
                "INSERT INTO replicas(id, seen_at) VALUES (?1, {DB_NOW})
                 ON CONFLICT(id) DO UPDATE SET seen_at = excluded.seen_at"
            ),
            params![holder],
        )?;
        conn.execute(
            &format!("DELETE FROM replicas WHERE seen_at < {DB_NOW} - 86400"),
            params![],
        )?;
        let (live, held): (i64, i64) = conn.query_row(
            &format!(
                "SELECT (SELECT COUNT(*) FROM replicas WHERE seen_at >= {DB_NOW} - ?2),
                        (SELECT COUNT(*) FROM leases WHERE holder = ?1 AND expires_at >= {DB_NOW})"
            ),
            params![holder, live_for],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok(Replicas {
            live: live.max(1) as u64,
            held: held.max(0) as u64,
        })
    }

    /// The sources whose lease some replica holds now (none on SQLite).
    pub fn leased_sources(&self) -> Result<std::collections::BTreeSet<String>, StoreError> {
        if !self.is_postgres() {
            return Ok(Default::default());
        }
        let conn = self.reader()?;
        let mut stmt = conn.prepare(&format!(
            "SELECT name FROM leases WHERE expires_at >= {DB_NOW} AND name LIKE 'source:%'"
        ))?;
        let rows = stmt.query_map(params![], |r| r.get::<_, String>(0))?;
        rows.map(|r| Ok(r?.trim_start_matches("source:").to_string()))
            .collect()
    }

    /// Record the outcome of a poll of `source` (nothing on SQLite, whose
    /// one instance exports its own polls).
    pub fn record_source_health(&self, source: &str, up: bool) -> Result<(), StoreError> {
        if !self.is_postgres() {
            return Ok(());
        }
        self.reader()?.execute(
            "INSERT INTO source_health(source, up) VALUES (?1, ?2)
             ON CONFLICT(source) DO UPDATE SET up = excluded.up",
            params![source, up as i64],
        )?;
        Ok(())
    }

    /// The outcome of each source's latest poll by any replica (none on
    /// SQLite).
    pub fn source_health(&self) -> Result<std::collections::BTreeMap<String, bool>, StoreError> {
        if !self.is_postgres() {
            return Ok(Default::default());
        }
        let conn = self.reader()?;
        let mut stmt = conn.prepare("SELECT source, up FROM source_health")?;
        let rows = stmt.query_map(params![], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? != 0))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The latest successful poll of `source`, as the store has it (any
    /// replica's).
    pub fn last_success(&self, source: &str) -> Result<Option<i64>, StoreError> {
        let conn = self.reader()?;
        Ok(conn
            .query_row(
                "SELECT last_success FROM polls WHERE source = ?1",
                [source],
                |r| r.get(0),
            )
            .optional()?)
    }
}
