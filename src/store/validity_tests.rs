//! Validity is the latest statement across scanners (SPEC §2): a newer
//! `inactive` confirms a revocation at its own time although an older report
//! still says live; a newer `live` after a revocation is a re-exposure.

use super::tests::{apply, finding, scan};
use super::*;
use crate::model::{ObservedFinding, Resolution, Validity};
use crate::store::db::Conn as Connection;

const T0: i64 = 1_767_225_600;
const DAY: i64 = 86_400;

fn open_store(dir: &tempfile::TempDir) -> Store {
    crate::store::testing::open(&dir.path().join("state.db"), "key1").unwrap()
}

/// A trufflehog-like finding: `Verified` (live) or not, stated at the scan.
fn th(secret: u8, verified: bool) -> ObservedFinding {
    let mut f = finding("th-1", secret);
    f.validity = if verified {
        Validity::Live
    } else {
        Validity::Unknown
    };
    f
}

/// A GitHub-like alert: its validity stated at the alert's update time.
fn gh(secret: u8, validity: Validity, updated: i64, resolved: Option<i64>) -> ObservedFinding {
    let mut f = finding("acme/api#1", secret);
    f.validity = validity;
    f.validity_at = Some(updated);
    f.detected_at = Some(T0);
    f.closed = resolved.map(|t| (Resolution::Revoked, Some(t)));
    f
}

fn one(conn: &Connection, sql: &str) -> Option<i64> {
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

fn exposure(conn: &Connection) -> (String, Option<i64>, Option<String>, i64) {
    conn.query_row(
        "SELECT validity, revoked_at, confirmed_by, residual FROM exposures",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )
    .unwrap()
}

fn counted(conn: &Connection, event: &str) -> f64 {
    conn.query_row(
        "SELECT COALESCE(SUM(value), 0) FROM counters WHERE name = ?1",
        [event],
        |r| r.get(0),
    )
    .unwrap()
}

#[test]
fn a_newer_inactive_confirms_the_revocation_at_its_own_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir);
    // trufflehog's CI report said Verified weeks ago, and is still there.
    apply(
        &store,
        "th",
        T0 + DAY,
        &[scan("th.jsonl", T0, vec![th(1, true)])],
    );
    let r = store.reader().unwrap();
    assert_eq!(exposure(&r), ("live".into(), None, None, 0));
    // GitHub's validity check now says inactive (alert updated 20 days
    // later), and the alert was resolved as revoked.
    let updated = T0 + 20 * DAY;
    apply(
        &store,
        "gh",
        T0 + 21 * DAY,
        &[scan(
            "org:acme",
            T0 + 21 * DAY,
            vec![gh(1, Validity::Inactive, updated, Some(updated))],
        )],
    );
    // Revoked at GitHub's time, by the validity check, although the older
    // trufflehog report still says Verified and its finding is open.
    assert_eq!(
        exposure(&r),
        (
            "inactive".into(),
            Some(updated),
            Some("validity_check".into()),
            0
        )
    );
    assert_eq!(counted(&r, events::EXPOSURE_REVOKED), 1.0);
    assert_eq!(
        one(
            &r,
            "SELECT seconds FROM durations WHERE event = 'time_to_revoke'"
        ),
        Some(20 * DAY)
    );
    assert_eq!(one(&r, "SELECT open_findings FROM exposures"), Some(1));
    // The same statements again change nothing.
    apply(
        &store,
        "gh",
        T0 + 22 * DAY,
        &[scan(
            "org:acme",
            T0 + 22 * DAY,
            vec![gh(1, Validity::Inactive, updated, Some(updated))],
        )],
    );
    apply(
        &store,
        "th",
        T0 + 22 * DAY,
        &[scan("th.jsonl", T0, vec![th(1, true)])],
    );
    assert_eq!(counted(&r, events::EXPOSURE_REVOKED), 1.0);
    assert_eq!(counted(&r, events::EXPOSURE_REOPENED), 0.0);
}

#[test]
fn a_newer_live_after_a_revocation_is_a_reexposure() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir);
    let r = store.reader().unwrap();
    apply(
        &store,
        "gh",
        T0 + DAY,
        &[scan(
            "org:acme",
            T0 + DAY,
            vec![gh(2, Validity::Inactive, T0 + DAY, None)],
        )],
    );
    assert_eq!(exposure(&r).1, Some(T0 + DAY));
    // An older live statement (a report scanned before) is not newer.
    apply(
        &store,
        "th",
        T0 + 2 * DAY,
        &[scan("old.jsonl", T0 + DAY / 2, vec![th(2, true)])],
    );
    assert_eq!(counted(&r, events::EXPOSURE_REOPENED), 0.0);
    assert_eq!(exposure(&r).0, "inactive");
    // A report scanned later still verifies it: the secret works again.
    apply(
        &store,
        "th",
        T0 + 3 * DAY,
        &[scan("old.jsonl", T0 + 3 * DAY, vec![th(2, true)])],
    );
    assert_eq!(counted(&r, events::EXPOSURE_REOPENED), 1.0);
    assert_eq!(exposure(&r), ("live".into(), None, None, 0));
    assert_eq!(
        one(&r, "SELECT reopened_at FROM exposures"),
        Some(T0 + 3 * DAY)
    );
    // GitHub checks again: inactive, a second revocation timed from the
    // re-exposure.
    apply(
        &store,
        "gh",
        T0 + 4 * DAY,
        &[scan(
            "org:acme",
            T0 + 4 * DAY,
            vec![gh(2, Validity::Inactive, T0 + 4 * DAY, None)],
        )],
    );
    assert_eq!(counted(&r, events::EXPOSURE_REVOKED), 2.0);
    assert_eq!(
        one(
            &r,
            "SELECT CAST(SUM(seconds * n) AS BIGINT) FROM durations WHERE event = 'time_to_revoke'"
        ),
        Some(DAY + DAY)
    );
    // Closed everywhere while the latest statement says inactive: revoked,
    // not residual.
    apply(
        &store,
        "th",
        T0 + 5 * DAY,
        &[scan("old.jsonl", T0 + 5 * DAY, vec![])],
    );
    apply(
        &store,
        "gh",
        T0 + 5 * DAY,
        &[scan(
            "org:acme",
            T0 + 5 * DAY,
            vec![gh(2, Validity::Inactive, T0 + 4 * DAY, Some(T0 + 5 * DAY))],
        )],
    );
    assert_eq!(exposure(&r).3, 0);
    assert_eq!(one(&r, "SELECT open_findings FROM exposures"), Some(0));
}

#[test]
fn closed_while_the_latest_statement_is_live_is_residual() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir);
    let r = store.reader().unwrap();
    apply(
        &store,
        "gh",
        T0 + DAY,
        &[scan(
            "org:acme",
            T0 + DAY,
            vec![gh(3, Validity::Live, T0 + DAY, Some(T0 + DAY))],
        )],
    );
    assert_eq!(exposure(&r), ("live".into(), None, None, 1));
    // A scanner that cannot check validity states nothing: still live.
    let mut gl = finding("gl-1", 3);
    gl.validity = Validity::Unknown;
    apply(
        &store,
        "gl",
        T0 + 2 * DAY,
        &[scan("r.json", T0 + 2 * DAY, vec![gl])],
    );
    assert_eq!(exposure(&r).0, "live");
}
