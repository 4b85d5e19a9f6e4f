//! Window arithmetic: ratios, exact medians and the step-function history
//! lookups behind the `window`-labelled KPIs.

use crate::store::db::{params, Conn as Connection, OptionalExt};
use crate::store::StoreError;

/// The longest configured window, in seconds (0 with none).
pub fn longest(policy: &crate::config::Policy) -> i64 {
    policy
        .windows
        .iter()
        .map(|w| w.duration.as_secs() as i64)
        .max()
        .unwrap_or(0)
}

/// `num / den`, or `None` (series omitted) when there is nothing to divide by.
pub fn ratio(num: i64, den: i64) -> Option<f64> {
    if den <= 0 {
        None
    } else {
        Some((num as f64 / den as f64).clamp(0.0, 1.0))
    }
}

/// Exact median (mean of the two middle values for an even count).
pub fn median(v: &mut [i64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2] as f64
    } else {
        (v[n / 2 - 1] as f64 + v[n / 2] as f64) / 2.0
    })
}

/// The value of `series` at time `t`: its latest point at or before `t`, or
/// the earliest point when the history starts after `t`.
pub fn history_at(conn: &Connection, series: &str, t: i64) -> Result<Option<f64>, StoreError> {
    let before: Option<f64> = conn
        .prepare_cached(
            "SELECT value FROM history WHERE series = ?1 AND ts <= ?2 ORDER BY ts DESC LIMIT 1",
        )?
        .query_row(params![series, t], |r| r.get(0))
        .optional()?;
    if before.is_some() {
        return Ok(before);
    }
    Ok(conn
        .prepare_cached("SELECT value FROM history WHERE series = ?1 ORDER BY ts ASC LIMIT 1")?
        .query_row([series], |r| r.get(0))
        .optional()?)
}

/// Append a point when the value changed, then drop points older than
/// `cutoff` except the last one before it (the value at the cutoff).
/// Replicas share the history: the caller holds the write transaction, so
/// the read of the last point and the write are one step.
pub fn record_point(
    conn: &Connection,
    series: &str,
    ts: i64,
    value: f64,
    cutoff: i64,
) -> Result<(), StoreError> {
    let last: Option<(i64, f64)> = conn
        .prepare_cached("SELECT ts, value FROM history WHERE series = ?1 ORDER BY ts DESC LIMIT 1")?
        .query_row([series], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    match last {
        Some((_, v)) if (v - value).abs() < 1e-12 => {}
        // A newer point exists: another replica recorded a later
        // computation first, and this older value must not replace it.
        Some((t, _)) if t > ts => {}
        // Two computations in one second: the later one is the point.
        Some((t, _)) if t == ts => {
            conn.prepare_cached("UPDATE history SET value = ?3 WHERE series = ?1 AND ts = ?2")?
                .execute(params![series, t, value])?;
        }
        _ => {
            conn.prepare_cached("INSERT INTO history(series, ts, value) VALUES (?1, ?2, ?3)")?
                .execute(params![series, ts, value])?;
        }
    }
    conn.prepare_cached(
        "DELETE FROM history WHERE series = ?1 AND ts < (
            SELECT MAX(ts) FROM history WHERE series = ?1 AND ts <= ?2)",
    )?
    .execute(params![series, cutoff])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_and_median() {
        assert_eq!(ratio(1, 4), Some(0.25));
        assert_eq!(ratio(0, 0), None);
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [5]), Some(5.0));
        assert_eq!(median(&mut [9, 1, 5]), Some(5.0));
        assert_eq!(median(&mut [10, 1, 3, 4]), Some(3.5));
    }

    #[test]
    fn history_is_a_step_function() {
        let conn = Connection::Lite(rusqlite::Connection::open_in_memory().unwrap());
        conn.execute_batch(
            "CREATE TABLE history(series TEXT, ts INTEGER, value REAL, PRIMARY KEY(series, ts))",
        )
        .unwrap();
        record_point(&conn, "x", 100, 5.0, 0).unwrap();
        record_point(&conn, "x", 200, 5.0, 0).unwrap(); // unchanged: no row
        record_point(&conn, "x", 300, 7.0, 0).unwrap();
        let n: i64 = conn
            .query_row("SELECT COUNT(*) FROM history", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 2);
        assert_eq!(history_at(&conn, "x", 50).unwrap(), Some(5.0)); // before history: earliest
        assert_eq!(history_at(&conn, "x", 250).unwrap(), Some(5.0));
        assert_eq!(history_at(&conn, "x", 300).unwrap(), Some(7.0));
        assert_eq!(history_at(&conn, "y", 300).unwrap(), None);
        // Pruning keeps the value in force at the cutoff.
        record_point(&conn, "x", 400, 9.0, 350).unwrap();
        assert_eq!(history_at(&conn, "x", 360).unwrap(), Some(7.0));
        let n: i64 = conn
            .query_row("SELECT COUNT(*) FROM history", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 2);
        // Two computations in one second: the later value is the point.
        record_point(&conn, "x", 400, 8.0, 350).unwrap();
        assert_eq!(history_at(&conn, "x", 400).unwrap(), Some(8.0));
        // A replica's slower, older computation does not replace the
        // newer point another replica recorded.
        record_point(&conn, "x", 399, 3.0, 350).unwrap();
        assert_eq!(history_at(&conn, "x", 400).unwrap(), Some(8.0));
        assert_eq!(history_at(&conn, "x", 399).unwrap(), Some(7.0));
    }
}
