//! `store migrate`: a SQLite store copied row for row into an empty
//! PostgreSQL store, in one transaction on each side (a consistent
//! snapshot read, an all-or-nothing write). Ids are kept (findings refer
//! to exposures and targets by id) and the identity sequences moved past
//! them; the hash key must be the same (both stores were opened under it).

use super::db::{Conn, Value, ROWS_PER_INSERT};
use super::{Store, StoreError};
use std::collections::BTreeMap;

/// Every table of the schema, in an order that respects references; the
/// leases, replicas and source health of a shared store are not copied
/// (they are live state of running replicas).
const TABLES: [&str; 18] = [
    "meta",
    "targets",
    "exposures",
    "findings",
    "finding_counts",
    "exposure_links",
    "secret_types",
    "counters",
    "history",
    "polls",
    "identities",
    "credentials",
    "credential_values",
    "teams",
    "durations",
    "duration_sum_adjust",
    "scopes",
    "time_counts",
];
const NOT_COPIED: [&str; 3] = ["leases", "replicas", "source_health"];
/// Tables whose `id` is an identity column on PostgreSQL.
const WITH_IDS: [&str; 5] = [
    "targets",
    "exposures",
    "findings",
    "identities",
    "credentials",
];
/// Rows of `meta` that belong to the store itself, written when opened.
const OWN_META: [&str; 2] = ["hash_key_id", "schema_version"];

/// Copy `from` (SQLite) into `to` (PostgreSQL, empty). Returns the rows
/// copied per table.
pub fn copy_store(from: &Store, to: &Store) -> Result<BTreeMap<&'static str, u64>, StoreError> {
    let src = from.reader()?;
    let Some(lite) = src.lite() else {
        return Err(StoreError::Data(
            "the source of a copy must be SQLite".into(),
        ));
    };
    let tables: Vec<String> = {
        let mut stmt = lite.prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
        )?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        rows.collect::<Result<_, _>>()?
    };
    if let Some(t) = tables
        .iter()
        .find(|t| !TABLES.contains(&t.as_str()) && !NOT_COPIED.contains(&t.as_str()))
    {
        return Err(StoreError::Data(format!(
            "the SQLite store has a table {t} this build cannot copy"
        )));
    }
    let mut dst = to.writer();
    let tx = dst.transaction()?;
    for t in [
        "findings",
        "exposures",
        "targets",
        "identities",
        "credentials",
        "history",
        "counters",
        "polls",
    ] {
        let n: i64 = tx.query_row(&format!("SELECT COUNT(*) FROM {t}"), [], |r| r.get(0))?;
        if n > 0 {
            return Err(StoreError::Data(format!(
                "the PostgreSQL store already holds data ({n} rows in {t}); migrate into an empty database"
            )));
        }
    }
    // One read transaction: the copy is one consistent snapshot even if
    // the source is still being written.
    lite.execute_batch("BEGIN")?;
    let mut copied = BTreeMap::new();
    for table in TABLES {
        copied.insert(table, copy_table(lite, &tx, table)?);
    }
    lite.execute_batch("COMMIT")?;
    for t in WITH_IDS {
        tx.query_row(
            &format!(
                "SELECT setval(pg_get_serial_sequence('{t}', 'id'), (SELECT COALESCE(MAX(id), 0) + 1 FROM {t}), false)"
            ),
            [],
            |_| Ok(()),
        )?;
    }
    tx.commit()?;
    Ok(copied)
}

fn copy_table(lite: &rusqlite::Connection, tx: &Conn, table: &str) -> Result<u64, StoreError> {
    let mut read = lite.prepare(&format!("SELECT * FROM {table}"))?;
    let cols: Vec<String> = read.column_names().iter().map(|c| c.to_string()).collect();
    let conflict = if table == "meta" {
        " ON CONFLICT(key) DO NOTHING"
    } else {
        ""
    };
    let insert = |rows: usize| {
        format!(
            "INSERT INTO {table}({}) VALUES {}{conflict}",
            cols.join(", "),
            super::db::values_list(rows, cols.len())
        )
    };
    let mut rows = read.query([])?;
    let mut n = 0u64;
    let mut values: Vec<Value> = Vec::with_capacity(cols.len() * ROWS_PER_INSERT);
    let mut pending = 0;
    loop {
        let row = rows.next()?;
        if let Some(r) = row {
            let first = values.len();
            for i in 0..cols.len() {
                use rusqlite::types::ValueRef as V;
                values.push(match r.get_ref(i)? {
                    V::Null => Value::Null,
                    V::Integer(x) => Value::Integer(x),
                    V::Real(x) => Value::Real(x),
                    V::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
                    V::Blob(b) => Value::Blob(b.to_vec()),
                });
            }
            if table == "meta"
                && matches!(&values[first], Value::Text(k) if OWN_META.contains(&k.as_str()))
            {
                values.truncate(first);
                continue;
            }
            pending += 1;
            if pending < ROWS_PER_INSERT {
                continue;
            }
        }
        if pending > 0 {
            let params: Vec<&dyn super::db::Param> = values.iter().map(|v| v as _).collect();
            tx.execute_rows(&insert(pending), pending, &params)?;
            n += pending as u64;
            values.clear();
            pending = 0;
        }
        if row.is_none() {
            return Ok(n);
        }
    }
}
