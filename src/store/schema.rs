//! Versioned schema migrations. `PRAGMA user_version` holds the version;
//! each migration runs in its own transaction. A store written by a newer
//! build stops start-up instead of being touched.

use super::db::{params, Conn, Tx};
use super::StoreError;
use std::path::Path;

/// A migration's data step, run in its transaction after its SQL.
pub type MigrationStep = fn(&Tx) -> Result<(), StoreError>;

/// Migrations, in order; migration `i` brings the schema to version `i + 1`.
pub const MIGRATIONS: &[(&str, Option<MigrationStep>)] = &[
    // v1: scanner findings, exposures, persisted counters and history.
    (
        r#"
CREATE TABLE meta(
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

-- One row per scanned target (a report file, a repository) of a source.
CREATE TABLE targets(
    id          INTEGER PRIMARY KEY,
    source      TEXT NOT NULL,
    target      TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    scanned_at  INTEGER NOT NULL,
    UNIQUE(source, target)
);

-- The secret behind findings, across scanners. `key` is a tag byte and the
-- first 128 bits of the HMAC of the secret value (or of a hash of the
-- scanner's own id when there is no value).
CREATE TABLE exposures(
    id                INTEGER PRIMARY KEY,
    key               BLOB NOT NULL UNIQUE,
    secret_type       TEXT NOT NULL,
    first_detected_at INTEGER NOT NULL,
    open_findings     INTEGER NOT NULL DEFAULT 0,
    validity          TEXT NOT NULL DEFAULT 'unknown',
    closed_at         INTEGER,
    revoked_at        INTEGER,
    confirmed_by      TEXT,
    residual          INTEGER NOT NULL DEFAULT 0
);

CREATE INDEX exposures_closed ON exposures(closed_at) WHERE closed_at IS NOT NULL;
CREATE INDEX exposures_revoked ON exposures(revoked_at) WHERE revoked_at IS NOT NULL;

-- One scanner's report of a secret. Location is kept here, never a label.
-- No secret value is ever stored.
CREATE TABLE findings(
    id           INTEGER PRIMARY KEY,
    source       TEXT NOT NULL,
    target_id    INTEGER NOT NULL REFERENCES targets(id),
    scanner_key  BLOB NOT NULL,   -- 16 bytes of SHA-256(scanner_id): a compact unique key
    scanner_id   TEXT NOT NULL,
    exposure_id  INTEGER NOT NULL REFERENCES exposures(id),
    secret_type  TEXT NOT NULL,
    repository   TEXT,
    file         TEXT,
    line         INTEGER,
    commit_sha   TEXT,
    detected_at  INTEGER NOT NULL,
    committed_at INTEGER,
    open         INTEGER NOT NULL,
    resolution   TEXT,
    closed_at    INTEGER,
    validity     TEXT NOT NULL
);
-- Not UNIQUE: the applier loads a target's findings and never inserts an id
-- twice, and a UNIQUE index costs an extra B-tree search on every insert.
CREATE INDEX findings_target ON findings(target_id, scanner_key);
CREATE INDEX findings_exposure ON findings(exposure_id);

CREATE INDEX findings_closed ON findings(closed_at) WHERE closed_at IS NOT NULL;

-- Open findings per (source, secret type, validity), maintained by every
-- transition so that the KPIs never scan the findings table.
CREATE TABLE finding_counts(
    source      TEXT NOT NULL,
    secret_type TEXT NOT NULL,
    validity    TEXT NOT NULL,
    open        INTEGER NOT NULL,
    PRIMARY KEY(source, secret_type, validity)
) WITHOUT ROWID;

-- Non-secret credential ids seen in a leak (AWS access key id, ...).
CREATE TABLE exposure_links(
    exposure_id   INTEGER NOT NULL REFERENCES exposures(id),
    provider      TEXT NOT NULL,
    credential_id TEXT NOT NULL,
    PRIMARY KEY(exposure_id, provider, credential_id)
) WITHOUT ROWID;
CREATE INDEX exposure_links_credential ON exposure_links(provider, credential_id);

-- Normalised secret types in order of first appearance: the first
-- policy.max_secret_types are label values, the rest are `other`.
CREATE TABLE secret_types(
    name TEXT PRIMARY KEY,
    rank INTEGER NOT NULL UNIQUE
) WITHOUT ROWID;

-- Counters and histograms survive restarts.
CREATE TABLE counters(
    name   TEXT NOT NULL,
    labels TEXT NOT NULL,
    value  REAL NOT NULL,
    PRIMARY KEY(name, labels)
) WITHOUT ROWID;
CREATE TABLE histograms(
    name    TEXT NOT NULL,
    labels  TEXT NOT NULL,
    buckets TEXT NOT NULL,
    sum     REAL NOT NULL,
    count   INTEGER NOT NULL,
    PRIMARY KEY(name, labels)
) WITHOUT ROWID;

-- Step-function history of aggregate KPIs (one row per change), for the
-- windowed deltas; survives restarts and short Prometheus retention.
CREATE TABLE history(
    series TEXT NOT NULL,
    ts     INTEGER NOT NULL,
    value  REAL NOT NULL,
    PRIMARY KEY(series, ts)
) WITHOUT ROWID;

-- First and last successful poll per source.
CREATE TABLE polls(
    source        TEXT PRIMARY KEY,
    first_success INTEGER NOT NULL,
    last_success  INTEGER NOT NULL
) WITHOUT ROWID;
"#,
        None,
    ),
    // v2: identity and credential inventories (vault, aws), value links.
    (
        r#"
-- Principals of a provider, as the latest complete inventory of their
-- scope reported them. Names are kept here, never a label.
CREATE TABLE identities(
    id            INTEGER PRIMARY KEY,
    source        TEXT NOT NULL,
    scope         TEXT NOT NULL,
    ext_id        TEXT NOT NULL,
    provider      TEXT NOT NULL,
    account       TEXT NOT NULL,
    kind          TEXT NOT NULL,
    name          TEXT NOT NULL,
    created_at    INTEGER,
    last_used_at  INTEGER,
    usage_tracked INTEGER NOT NULL,
    team          TEXT,
    privileged    TEXT,              -- the reason, NULL when not privileged
    standing      INTEGER NOT NULL,
    human         INTEGER NOT NULL,
    digest        BLOB NOT NULL,     -- of the observed fields: skip unchanged rows
    UNIQUE(source, ext_id)
);
CREATE INDEX identities_scope ON identities(source, scope);

-- Credentials. A credential absent from a complete inventory of its scope
-- is kept as 'deleted' (the evidence of a revocation), never removed
-- while a leak links to it.
CREATE TABLE credentials(
    id               INTEGER PRIMARY KEY,
    source           TEXT NOT NULL,
    scope            TEXT NOT NULL,
    ext_id           TEXT NOT NULL,
    provider         TEXT NOT NULL,
    kind             TEXT NOT NULL,
    identity         TEXT,
    team             TEXT,
    created_at       INTEGER,
    last_rotated_at  INTEGER,
    expires_at       INTEGER,
    last_used_at     INTEGER,
    state            TEXT NOT NULL,   -- active, inactive, deleted
    state_changed_at INTEGER NOT NULL,
    rotation_enabled INTEGER NOT NULL,
    digest           BLOB NOT NULL,
    UNIQUE(source, ext_id)
);
CREATE INDEX credentials_scope ON credentials(source, scope);
CREATE INDEX credentials_ext ON credentials(provider, ext_id);
CREATE INDEX credentials_identity ON credentials(source, identity) WHERE identity IS NOT NULL;

-- Keys (as in exposures.key) of a credential's current values, only under
-- a vault source's match_values: links leaks to the credential. No value.
CREATE TABLE credential_values(
    key           BLOB NOT NULL,
    credential_id INTEGER NOT NULL REFERENCES credentials(id) ON DELETE CASCADE,
    PRIMARY KEY(key, credential_id)
) WITHOUT ROWID;
CREATE INDEX credential_values_credential ON credential_values(credential_id);

-- Owning teams in order of first appearance: the first
-- labels.team.max_values are label values, the rest are `other`.
CREATE TABLE teams(
    name TEXT PRIMARY KEY,
    rank INTEGER NOT NULL UNIQUE
) WITHOUT ROWID;
"#,
        None,
    ),
    // v3: events instead of metric names. Counters are keyed by event;
    // histograms become exact durations that the KPIs bucket, so a changed
    // bucket layout needs no migration of its own.
    (
        r#"
-- Measured durations (time to close, time to revoke): occurrences per
-- whole number of seconds, per event and labels.
CREATE TABLE durations(
    event   TEXT NOT NULL,
    labels  TEXT NOT NULL,
    seconds INTEGER NOT NULL,
    n       INTEGER NOT NULL,
    PRIMARY KEY(event, labels, seconds)
) WITHOUT ROWID;
-- What the sums of durations migrated from v2 bucket counts lack: v2 kept
-- only each bucket's count and the exact sum.
CREATE TABLE duration_sum_adjust(
    event   TEXT NOT NULL,
    labels  TEXT NOT NULL,
    seconds REAL NOT NULL,
    PRIMARY KEY(event, labels)
) WITHOUT ROWID;
UPDATE counters SET name = 'finding_detected' WHERE name = 'nhi_findings_detected_total';
UPDATE counters SET name = 'finding_closed' WHERE name = 'nhi_findings_closed_total';
UPDATE counters SET name = 'exposure_revoked' WHERE name = 'nhi_exposures_revoked_total';
"#,
        Some(histograms_to_durations),
    ),
    // v4: validity as the latest statement across scanners (SPEC §2), and
    // re-exposures of revoked exposures.
    (
        r#"
-- When the finding's scanner made its validity statement (live/inactive);
-- NULL for unknown. Rows of older stores take their target's scan time.
ALTER TABLE findings ADD COLUMN validity_at INTEGER;
UPDATE findings SET validity_at = (SELECT scanned_at FROM targets t WHERE t.id = findings.target_id)
 WHERE validity != 'unknown';
-- The latest re-exposure of an exposure once revoked (a newer live
-- statement, or a linked credential active again); NULL if never.
ALTER TABLE exposures ADD COLUMN reopened_at INTEGER;
"#,
        None,
    ),
    // v5: the `scope` label. A credential's account (AWS account id, Vault
    // cluster), and scopes ranked by first appearance like teams.
    (
        r#"
ALTER TABLE credentials ADD COLUMN account TEXT NOT NULL DEFAULT '';
UPDATE credentials SET account = COALESCE(
    (SELECT i.account FROM identities i
     WHERE i.source = credentials.source AND i.ext_id = credentials.identity), '')
 WHERE identity IS NOT NULL;
-- Scopes (accounts) in order of first appearance: the first
-- labels.scope.max_values are label values, the rest are `other`.
CREATE TABLE scopes(
    name TEXT PRIMARY KEY,
    rank INTEGER NOT NULL UNIQUE
) WITHOUT ROWID;
INSERT INTO scopes(name, rank)
    SELECT account, ROW_NUMBER() OVER (ORDER BY MIN(id)) FROM identities
    WHERE account != '' GROUP BY account;
"#,
        None,
    ),
    // v6: incremental KPIs (issue 19). Counts of findings and exposures
    // per time, kept by the applier, so the windows read one row per
    // distinct time instead of scanning the tables; open exposures per
    // validity.
    (V6_TIME_COUNTS, Some(rebuild_time_counts)),
    // v7: replicas sharing a PostgreSQL store (issue 15). Which replica
    // polls a source; unused (and empty) on SQLite, which has one instance.
    (
        r#"
-- The lease of `name` (`source:<source name>`): its holder keeps
-- expires_at ahead of the store's clock; past it, another replica takes it.
CREATE TABLE leases(
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
-- Replicas by their latest lease heartbeat: how many share the sources.
CREATE TABLE replicas(
    id      TEXT PRIMARY KEY,
    seen_at INTEGER NOT NULL
) WITHOUT ROWID;
-- The outcome of each source's latest poll, by whichever replica polled it:
-- every replica exports the same `nhi_source_up`.
CREATE TABLE source_health(
    source TEXT PRIMARY KEY,
    up     INTEGER NOT NULL
) WITHOUT ROWID;
"#,
        None,
    ),
];

/// v6: what the KPI windows count, per time, kept by the applier at every
/// write of a finding's or an exposure's times (`PollApplier`; the store
/// tests recount them after every poll they apply). The kinds:
/// 1 findings by `detected_at`; 2 findings by `closed_at`;
/// 3 exposures by `first_detected_at`; 4 exposures by `revoked_at`;
/// 5 exposures by the earlier of `closed_at` and `revoked_at` (gone);
/// 6 closed exposures by the later of `first_detected_at` and `closed_at`
/// (detected and closed by then); 7, 8, 9 open exposures by
/// `first_detected_at`, per validity (live, inactive, unknown: the order of
/// `Validity::ALL`), whose earliest time is the oldest open one.
/// A row whose count falls to 0 is deleted at commit.
const V6_TIME_COUNTS: &str = r#"
CREATE TABLE time_counts(
    kind INTEGER NOT NULL,
    t    INTEGER NOT NULL,
    n    INTEGER NOT NULL,
    PRIMARY KEY(kind, t)
) WITHOUT ROWID;
-- The residual exposures (few rows) without a scan.
CREATE INDEX exposures_residual ON exposures(closed_at, first_detected_at) WHERE residual = 1;
"#;

/// `time_counts` recounted from the findings and exposures rows: the v6
/// migration's data step, and a repair for rows written by other means
/// (tests that build big stores in SQL).
pub fn rebuild_time_counts(tx: &Tx) -> Result<(), StoreError> {
    tx.execute_batch(TIME_COUNTS_FROM_ROWS)?;
    Ok(())
}

const TIME_COUNTS_FROM_ROWS: &str = r#"
DELETE FROM time_counts;
INSERT INTO time_counts(kind, t, n)
    SELECT 1, detected_at, COUNT(*) FROM findings GROUP BY detected_at;
INSERT INTO time_counts(kind, t, n)
    SELECT 2, closed_at, COUNT(*) FROM findings WHERE closed_at IS NOT NULL GROUP BY closed_at;
INSERT INTO time_counts(kind, t, n)
    SELECT 3, first_detected_at, COUNT(*) FROM exposures GROUP BY first_detected_at;
INSERT INTO time_counts(kind, t, n)
    SELECT 4, revoked_at, COUNT(*) FROM exposures WHERE revoked_at IS NOT NULL GROUP BY revoked_at;
INSERT INTO time_counts(kind, t, n)
    SELECT 5, g, COUNT(*) FROM
        (SELECT CASE WHEN revoked_at IS NULL OR closed_at < revoked_at THEN closed_at
                     ELSE revoked_at END AS g FROM exposures)
    AS gone WHERE g IS NOT NULL GROUP BY g;
INSERT INTO time_counts(kind, t, n)
    SELECT 6, g, COUNT(*) FROM
        (SELECT CASE WHEN closed_at > first_detected_at THEN closed_at
                     ELSE first_detected_at END AS g FROM exposures WHERE closed_at IS NOT NULL) AS c
    GROUP BY g;
INSERT INTO time_counts(kind, t, n)
    SELECT CASE validity WHEN 'live' THEN 7 WHEN 'inactive' THEN 8 ELSE 9 END, first_detected_at, COUNT(*)
    FROM exposures WHERE open_findings > 0 GROUP BY 1, 2;
"#;

/// The bucket bounds (seconds) the v2 schema stored histograms with.
const V2_BUCKETS: [i64; 11] = [
    300, 900, 3600, 14400, 43200, 86400, 259200, 604800, 1209600, 2592000, 7776000,
];

/// v3 data step: each v2 bucket count becomes that many durations at the
/// bucket's upper bound (overflow one second past the last bound), so every
/// v2 bucket keeps its exact count, and the difference to the exact v2 sum
/// is kept in `duration_sum_adjust`. Then the v2 table goes.
fn histograms_to_durations(tx: &Tx) -> Result<(), StoreError> {
    let rows: Vec<(String, String, String, f64, i64)> = {
        let mut stmt = tx.prepare("SELECT name, labels, buckets, sum, count FROM histograms")?;
        let rows = stmt.query_map(params![], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?;
        rows.collect::<Result<_, _>>()?
    };
    for (name, labels, buckets, sum, count) in rows {
        let event = match name.as_str() {
            "nhi_time_to_close_seconds" => super::events::TIME_TO_CLOSE,
            "nhi_time_to_revoke_seconds" => super::events::TIME_TO_REVOKE,
            other => {
                return Err(StoreError::Data(format!(
                    "v2 histogram {other:?} is not one this build knows"
                )))
            }
        };
        let buckets: Vec<i64> = serde_json::from_str(&buckets)
            .map_err(|e| StoreError::Data(format!("v2 histogram {name}: {e}")))?;
        if buckets.len() != V2_BUCKETS.len() {
            return Err(StoreError::Data(format!(
                "v2 histogram {name} has {} buckets, not {}",
                buckets.len(),
                V2_BUCKETS.len()
            )));
        }
        let overflow = count - buckets.iter().sum::<i64>();
        let last = V2_BUCKETS[V2_BUCKETS.len() - 1] + 1;
        let mut placed = 0f64;
        let entries = V2_BUCKETS
            .iter()
            .copied()
            .zip(buckets)
            .chain(std::iter::once((last, overflow)));
        for (seconds, n) in entries.filter(|(_, n)| *n > 0) {
            tx.execute(
                "INSERT INTO durations(event, labels, seconds, n) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(event, labels, seconds) DO UPDATE SET n = durations.n + excluded.n",
                params![event, labels, seconds, n],
            )?;
            placed += (seconds * n) as f64;
        }
        tx.execute(
            "INSERT INTO duration_sum_adjust(event, labels, seconds) VALUES (?1, ?2, ?3)",
            params![event, labels, sum - placed],
        )?;
    }
    tx.execute_batch("DROP TABLE histograms;")?;
    Ok(())
}

pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// A migration's SQLite DDL in PostgreSQL's types: rowid keys become
/// identity columns, integers `BIGINT` (every Rust integer is an `i64`),
/// `BLOB` `BYTEA`, `REAL` `DOUBLE PRECISION`; `WITHOUT ROWID` goes (a
/// PostgreSQL table is a heap with its primary key index either way).
pub fn postgres_ddl(sql: &str) -> String {
    use std::sync::OnceLock;
    static RULES: OnceLock<Vec<(regex::Regex, &str)>> = OnceLock::new();
    let rules = RULES.get_or_init(|| {
        [
            (
                r"\bINTEGER PRIMARY KEY\b",
                "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
            ),
            (r"\bINTEGER\b", "BIGINT"),
            (r"\bBLOB\b", "BYTEA"),
            (r"\bREAL\b", "DOUBLE PRECISION"),
            (r"\)\s*WITHOUT ROWID", ")"),
        ]
        .into_iter()
        .map(|(re, to)| (regex::Regex::new(re).expect("a valid pattern"), to))
        .collect()
    });
    let mut out = sql.to_string();
    for (re, to) in rules {
        out = re.replace_all(&out, *to).into_owned();
    }
    out
}

/// The advisory lock key under which one replica migrates a PostgreSQL
/// store ("nhi-mig" in ASCII).
const MIGRATION_LOCK: i64 = 0x006e_6869_2d6d_6967;

/// Bring a PostgreSQL store to [`SCHEMA_VERSION`]: every migration in one
/// transaction (PostgreSQL's DDL is transactional), under an advisory
/// lock, so replicas started together on an empty database migrate it
/// once and the others find it current. The version is the `meta` row
/// `schema_version`.
pub fn migrate_postgres(conn: &mut Conn, shown: &Path) -> Result<(), StoreError> {
    let tx = conn.transaction()?;
    tx.execute_batch(&format!("SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))?;
    let tables: Vec<String> = {
        let mut stmt = tx.prepare(
            "SELECT CAST(table_name AS TEXT) FROM information_schema.tables
             WHERE table_schema = current_schema() AND table_name IN ('meta', 'findings', 'exposures')",
        )?;
        let rows = stmt.query_map(params![], |r| r.get(0))?;
        rows.collect::<Result<_, _>>()?
    };
    let version: i64 = if tables.iter().any(|t| t == "meta") {
        use super::db::OptionalExt;
        tx.query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            params![],
            |r| r.get::<_, String>(0),
        )
        .optional()?
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| StoreError::ForeignPg {
            path: shown.to_path_buf(),
        })?
    } else if tables.is_empty() {
        0
    } else {
        return Err(StoreError::ForeignPg {
            path: shown.to_path_buf(),
        });
    };
    if version > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            path: shown.to_path_buf(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    for (sql, code) in MIGRATIONS.iter().skip(version as usize) {
        tx.execute_batch(&postgres_ddl(sql))?;
        if let Some(code) = code {
            code(&tx)?;
        }
    }
    if version < SCHEMA_VERSION {
        tx.execute(
            "INSERT INTO meta(key, value) VALUES ('schema_version', ?1)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [SCHEMA_VERSION.to_string()],
        )?;
        tracing::info!(from = version, to = SCHEMA_VERSION, "store migrated");
    }
    tx.commit()?;
    Ok(())
}
