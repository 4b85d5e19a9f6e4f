use super::*;
use crate::model::{
    CredentialRef, ExposureKey, Location, ObservedFinding, Resolution, TargetScan, Validity,
};
use crate::store::db::{params, Conn as Connection};

pub(crate) fn finding(id: &str, secret: u8) -> ObservedFinding {
    ObservedFinding {
        scanner_id: id.to_string(),
        secret_type: "Generic-API-Key".into(),
        exposure: ExposureKey::Secret([secret; 32]),
        location: Location {
            repository: Some("repo".into()),
            file: Some("f.py".into()),
            line: Some(1),
            commit: Some("c".into()),
        },
        detected_at: None,
        committed_at: None,
        closed: None,
        validity: Validity::Unknown,
        validity_at: None,
        links: vec![],
    }
}

pub(crate) fn scan(target: &str, at: i64, findings: Vec<ObservedFinding>) -> TargetScan {
    TargetScan {
        target: target.into(),
        fingerprint: format!("fp-{at}"),
        scanned_at: at,
        findings,
    }
}

pub(crate) fn apply(store: &Store, source: &str, now: i64, scans: &[TargetScan]) -> ApplyStats {
    let stats = {
        let mut conn = store.writer();
        let mut ap = PollApplier::begin(&mut conn, source, now, 100).unwrap();
        for s in scans {
            ap.target(s).unwrap();
        }
        ap.commit().unwrap()
    };
    assert_counts_consistent(store);
    stats
}

/// The incrementally maintained aggregates equal a full recount.
pub(crate) fn assert_counts_consistent(store: &Store) {
    let r = store.reader().unwrap();
    let rows = |sql: &str| -> Vec<(String, String, String, i64)> {
        let mut st = r.prepare(sql).unwrap();
        let v = st
            .query_map([], |x| Ok((x.get(0)?, x.get(1)?, x.get(2)?, x.get(3)?)))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        v
    };
    assert_eq!(
        rows("SELECT source, secret_type, validity, open FROM finding_counts WHERE open != 0 ORDER BY 1, 2, 3"),
        rows("SELECT source, secret_type, validity, COUNT(*) FROM findings WHERE open = 1 GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"),
        "finding_counts drifted from the findings"
    );
    let drift: i64 = r
        .query_row(
            "SELECT COUNT(*) FROM exposures e WHERE open_findings !=
               (SELECT COUNT(*) FROM findings f WHERE f.exposure_id = e.id AND f.open = 1)",
            [],
            |x| x.get(0),
        )
        .unwrap();
    assert_eq!(drift, 0, "exposures.open_findings drifted");
    // The applier's counts per time (schema v6) equal a recount.
    let times = |sql: &str| -> Vec<(i64, i64, i64)> {
        let mut st = r.prepare(sql).unwrap();
        let v = st
            .query_map([], |x| Ok((x.get(0)?, x.get(1)?, x.get(2)?)))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        v
    };
    assert_eq!(
        times("SELECT kind, t, n FROM time_counts WHERE n != 0 ORDER BY 1, 2"),
        times(
            "SELECT kind, t, COUNT(*) FROM (
                SELECT 1 AS kind, detected_at AS t FROM findings
                UNION ALL SELECT 2, closed_at FROM findings WHERE closed_at IS NOT NULL
                UNION ALL SELECT 3, first_detected_at FROM exposures
                UNION ALL SELECT 4, revoked_at FROM exposures WHERE revoked_at IS NOT NULL
                UNION ALL SELECT 5, CASE WHEN revoked_at IS NULL OR closed_at < revoked_at
                        THEN closed_at ELSE revoked_at END
                    FROM exposures WHERE closed_at IS NOT NULL OR revoked_at IS NOT NULL
                UNION ALL SELECT 6, CASE WHEN closed_at > first_detected_at
                        THEN closed_at ELSE first_detected_at END FROM exposures
                    WHERE closed_at IS NOT NULL
                UNION ALL SELECT CASE validity WHEN 'live' THEN 7 WHEN 'inactive' THEN 8 ELSE 9 END,
                    first_detected_at FROM exposures WHERE open_findings > 0) AS recount
             GROUP BY 1, 2 ORDER BY 1, 2"
        ),
        "time_counts drifted from the findings and exposures"
    );
}

fn open_store(dir: &tempfile::TempDir) -> Store {
    crate::store::testing::open(&dir.path().join("state.db"), "key1").unwrap()
}

fn q(conn: &Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

fn counter(conn: &Connection, name: &str, labels: &[(&str, &str)]) -> f64 {
    conn.query_row(
        "SELECT value FROM counters WHERE name = ?1 AND labels = ?2",
        params![name, encode_labels(labels)],
        |r| r.get(0),
    )
    .unwrap_or(0.0)
}

#[test]
fn lifecycle_open_disappeared_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir);
    let s = apply(
        &store,
        "gl",
        1000,
        &[scan("t1", 1000, vec![finding("a", 1), finding("b", 2)])],
    );
    assert_eq!(
        (s.findings_new, s.exposures_new, s.findings_closed),
        (2, 2, 0)
    );
    let r = store.reader().unwrap();
    assert_eq!(q(&r, "SELECT COUNT(*) FROM findings WHERE open = 1"), 2);
    assert_eq!(
        q(&r, "SELECT COUNT(*) FROM exposures WHERE open_findings > 0"),
        2
    );
    assert_eq!(
        counter(
            &r,
            events::FINDING_DETECTED,
            &[("source", "gl"), ("secret_type", "generic_api_key")]
        ),
        2.0
    );

    // b is gone from the newer scan: closed as disappeared at scan time.
    let s = apply(
        &store,
        "gl",
        1600,
        &[scan("t1", 1600, vec![finding("a", 1)])],
    );
    assert_eq!(s.findings_closed, 1);
    let (res, closed_at): (String, i64) = r
        .query_row(
            "SELECT resolution, closed_at FROM findings WHERE scanner_id = 'b'",
            [],
            |x| Ok((x.get(0)?, x.get(1)?)),
        )
        .unwrap();
    assert_eq!((res.as_str(), closed_at), ("disappeared", 1600));
    assert_eq!(
        counter(
            &r,
            events::FINDING_CLOSED,
            &[("source", "gl"), ("resolution", "disappeared")]
        ),
        1.0
    );
    // The exact duration is kept; the KPIs bucket it.
    let (seconds, n): (i64, i64) = r
        .query_row(
            "SELECT seconds, n FROM durations WHERE event = 'time_to_close'",
            [],
            |x| Ok((x.get(0)?, x.get(1)?)),
        )
        .unwrap();
    assert_eq!((seconds, n), (600, 1));
    // Closed with nothing to confirm: closed-unverified, neither residual nor revoked.
    assert_eq!(q(&r, "SELECT COUNT(*) FROM exposures WHERE open_findings = 0 AND closed_at = 1600 AND residual = 0 AND revoked_at IS NULL"), 1);

    // Back again: reopened, not detected twice.
    let s = apply(
        &store,
        "gl",
        2000,
        &[scan("t1", 2000, vec![finding("a", 1), finding("b", 2)])],
    );
    assert_eq!((s.findings_new, s.findings_reopened), (0, 1));
    assert_eq!(
        q(
            &r,
            "SELECT COUNT(*) FROM exposures WHERE open_findings > 0 AND closed_at IS NULL"
        ),
        2
    );
    assert_eq!(
        counter(
            &r,
            events::FINDING_DETECTED,
            &[("source", "gl"), ("secret_type", "generic_api_key")]
        ),
        2.0
    );
}

#[test]
fn same_secret_in_two_targets_is_one_exposure() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir);
    apply(
        &store,
        "gl",
        100,
        &[
            scan("t1", 100, vec![finding("a", 7)]),
            scan("t2", 200, vec![finding("x", 7)]),
        ],
    );
    let r = store.reader().unwrap();
    assert_eq!(q(&r, "SELECT COUNT(*) FROM exposures"), 1);
    assert_eq!(q(&r, "SELECT open_findings FROM exposures"), 2);
    assert_eq!(q(&r, "SELECT first_detected_at FROM exposures"), 100);
    apply(&store, "gl", 300, &[scan("t1", 300, vec![])]);
    assert_eq!(q(&r, "SELECT open_findings FROM exposures"), 1);
    assert_eq!(
        q(&r, "SELECT COUNT(*) FROM exposures WHERE closed_at IS NULL"),
        1
    );
    apply(&store, "gl", 400, &[scan("t2", 400, vec![])]);
    assert_eq!(q(&r, "SELECT open_findings FROM exposures"), 0);
    assert_eq!(q(&r, "SELECT closed_at FROM exposures"), 400);
}

#[test]
fn redacted_findings_are_scoped_to_their_target() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir);
    let mut a = finding("same-id", 0);
    a.exposure = ExposureKey::ScannerId;
    apply(
        &store,
        "gl",
        100,
        &[scan("t1", 100, vec![a.clone()]), scan("t2", 100, vec![a])],
    );
    let r = store.reader().unwrap();
    assert_eq!(q(&r, "SELECT COUNT(*) FROM exposures"), 2);
}

/// A KPI computation reads one snapshot: a poll committed while it reads
/// is not half in its numbers.
#[test]
fn a_read_snapshot_does_not_see_commits_made_during_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir);
    apply(&store, "gl", 100, &[scan("t1", 100, vec![finding("a", 1)])]);
    let mut r = store.reader().unwrap();
    let read = r.snapshot().unwrap();
    assert_eq!(q(&read, "SELECT COUNT(*) FROM findings"), 1);
    apply(
        &store,
        "gl",
        200,
        &[scan("t1", 200, vec![finding("a", 1), finding("b", 2)])],
    );
    assert_eq!(q(&read, "SELECT COUNT(*) FROM findings"), 1);
    assert_eq!(q(&read, "SELECT last_success FROM polls"), 100);
    drop(read);
    assert_eq!(q(&r, "SELECT COUNT(*) FROM findings"), 2);
}

#[test]
fn uncommitted_poll_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir);
    apply(&store, "gl", 100, &[scan("t1", 100, vec![finding("a", 1)])]);
    {
        let mut conn = store.writer();
        let mut ap = PollApplier::begin(&mut conn, "gl", 200, 100).unwrap();
        ap.target(&scan("t1", 200, vec![])).unwrap(); // would close a
                                                      // dropped without commit: a failed poll
    }
    let r = store.reader().unwrap();
    assert_eq!(q(&r, "SELECT COUNT(*) FROM findings WHERE open = 1"), 1);
    assert_eq!(
        q(
            &r,
            "SELECT COUNT(*) FROM counters WHERE name = 'finding_closed'"
        ),
        0
    );
    assert_eq!(q(&r, "SELECT fingerprint = 'fp-100' FROM targets"), 1);
    assert_eq!(q(&r, "SELECT last_success FROM polls"), 100);
}

#[test]
fn validity_live_then_closed_is_residual_and_inactive_is_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir);
    let mut live = finding("a", 1);
    live.validity = Validity::Live;
    let mut other = finding("b", 2);
    other.validity = Validity::Live;
    apply(
        &store,
        "th",
        1000,
        &[scan("t", 1000, vec![live.clone(), other.clone()])],
    );
    let r = store.reader().unwrap();
    assert_eq!(
        q(
            &r,
            "SELECT COUNT(*) FROM exposures WHERE validity = 'live' AND open_findings > 0"
        ),
        2
    );

    // a closed by the scanner while still live: residual.
    let mut closed = live.clone();
    closed.closed = Some((Resolution::WontFix, Some(1500)));
    // b verified inactive: confirmed revocation by validity check.
    let mut dead = other.clone();
    dead.validity = Validity::Inactive;
    apply(&store, "th", 2000, &[scan("t", 2000, vec![closed, dead])]);
    assert_eq!(
        q(&r, "SELECT COUNT(*) FROM exposures WHERE residual = 1"),
        1
    );
    assert_eq!(
        q(&r, "SELECT closed_at FROM findings WHERE scanner_id = 'a'"),
        1500
    );
    let (revoked_at, by): (i64, String) = r
        .query_row(
            "SELECT revoked_at, confirmed_by FROM exposures WHERE revoked_at IS NOT NULL",
            [],
            |x| Ok((x.get(0)?, x.get(1)?)),
        )
        .unwrap();
    assert_eq!((revoked_at, by.as_str()), (2000, "validity_check"));
    assert_eq!(
        counter(
            &r,
            events::EXPOSURE_REVOKED,
            &[("confirmed_by", "validity_check")]
        ),
        1.0
    );
    let (seconds, n): (i64, i64) = r
        .query_row(
            "SELECT seconds, n FROM durations WHERE event = 'time_to_revoke'",
            [],
            |x| Ok((x.get(0)?, x.get(1)?)),
        )
        .unwrap();
    assert_eq!((seconds, n), (1000, 1));
    // Revocation is counted once per exposure.
    let mut dead2 = other.clone();
    dead2.validity = Validity::Inactive;
    apply(&store, "th", 3000, &[scan("t", 3000, vec![dead2])]);
    assert_eq!(
        counter(
            &r,
            events::EXPOSURE_REVOKED,
            &[("confirmed_by", "validity_check")]
        ),
        1.0
    );
}

#[test]
fn links_are_stored() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir);
    let mut f = finding("a", 1);
    f.links = vec![CredentialRef {
        provider: "aws",
        id: "AKIAIOSFODNN7EXAMPLE".into(),
    }];
    apply(
        &store,
        "gl",
        100,
        &[scan("t", 100, vec![f.clone()]), scan("t2", 100, vec![f])],
    );
    let r = store.reader().unwrap();
    assert_eq!(
        q(&r, "SELECT COUNT(*) FROM exposure_links WHERE provider = 'aws' AND credential_id = 'AKIAIOSFODNN7EXAMPLE'"),
        1
    );
}

#[test]
fn secret_types_are_capped_in_first_seen_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir);
    let mut fs = Vec::new();
    for (i, t) in ["AWS", "slack-token", "GitHubPAT"].iter().enumerate() {
        let mut f = finding(&format!("f{i}"), i as u8);
        f.secret_type = t.to_string();
        fs.push(f);
    }
    {
        let mut conn = store.writer();
        let mut ap = PollApplier::begin(&mut conn, "gl", 100, 2).unwrap();
        ap.target(&scan("t", 100, fs)).unwrap();
        ap.commit().unwrap();
    }
    assert_counts_consistent(&store);
    let r = store.reader().unwrap();
    for (t, n) in [
        ("aws", 1.0),
        ("slack_token", 1.0),
        ("other", 1.0),
        ("git_hub_pat", 0.0),
    ] {
        assert_eq!(
            counter(
                &r,
                events::FINDING_DETECTED,
                &[("source", "gl"), ("secret_type", t)]
            ),
            n,
            "{t}"
        );
    }
}

#[test]
fn counters_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open_store(&dir);
        apply(&store, "gl", 100, &[scan("t", 100, vec![finding("a", 1)])]);
        apply(&store, "gl", 200, &[scan("t", 200, vec![])]);
    }
    let store = open_store(&dir);
    apply(&store, "gl", 300, &[scan("t", 300, vec![finding("b", 2)])]);
    apply(&store, "gl", 400, &[scan("t", 400, vec![])]);
    let r = store.reader().unwrap();
    assert_eq!(
        counter(
            &r,
            events::FINDING_CLOSED,
            &[("source", "gl"), ("resolution", "disappeared")]
        ),
        2.0
    );
    assert_eq!(
        q(
            &r,
            "SELECT CAST(SUM(n) AS BIGINT) FROM durations WHERE event = 'time_to_close'"
        ),
        2
    );
    assert_eq!(q(&r, "SELECT first_success FROM polls"), 100);
}

#[test]
fn corrupt_store_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("state.db");
    let junk = b"this is not a sqlite database, just some bytes".repeat(100);
    std::fs::write(&p, &junk).unwrap();
    let e = Store::open(&p, "k").unwrap_err();
    assert!(matches!(e, StoreError::Corrupt { .. }), "{e}");
    assert!(e.to_string().contains("left untouched"));
    assert_eq!(std::fs::read(&p).unwrap(), junk);
}

#[test]
fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("state.db");
    {
        let c = rusqlite::Connection::open(&p).unwrap();
        c.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
    }
    let e = Store::open(&p, "k").unwrap_err();
    assert!(matches!(e, StoreError::NewerSchema { .. }), "{e}");
    assert!(e.to_string().contains("newer than this build supports"));
}

#[test]
fn a_different_hash_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("state.db");
    drop(Store::open(&p, "k1").unwrap());
    let e = Store::open(&p, "k2").unwrap_err();
    assert!(matches!(e, StoreError::KeyMismatch { .. }), "{e}");
}

#[test]
fn secret_type_normalisation() {
    assert_eq!(
        normalise_secret_type("aws-access-token"),
        "aws_access_token"
    );
    assert_eq!(
        normalise_secret_type("GitHubPersonalAccessToken"),
        "git_hub_personal_access_token"
    );
    assert_eq!(normalise_secret_type("AWS"), "aws");
    assert_eq!(
        normalise_secret_type("Slack Webhook URL"),
        "slack_webhook_url"
    );
    assert_eq!(normalise_secret_type("--"), "unknown");
    assert_eq!(normalise_secret_type(&"word-".repeat(30)).len(), 64);
    // A key or token where the rule id goes never becomes a label.
    assert_eq!(normalise_secret_type(&"x".repeat(100)), "unknown");
    assert_eq!(
        normalise_secret_type("AKIAIOSFODNN7EXAMPLEwJalrXUtnFEMI"),
        "unknown"
    );
    assert_eq!(
        normalise_secret_type("ghp_16C7e42F292c6912E7710c838347Ae178B4a"),
        "unknown"
    );
    assert_eq!(
        normalise_secret_type("hashicorp-tf-password"),
        "hashicorp_tf_password"
    );
}
