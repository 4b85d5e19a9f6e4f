use super::*;
use crate::kpi::Snapshot;
use crate::sources::Source;
use std::collections::BTreeMap;
use tokio_util::sync::CancellationToken;

const DAY: i64 = 86_400;
/// 2026-06-01T00:00:00Z: the first past scan.
const T1: i64 = 1_780_272_000;

fn times() -> [i64; 6] {
    [
        T1,
        T1 + 10 * DAY,
        T1 + 20 * DAY,
        T1 + 30 * DAY,
        T1 + 45 * DAY,
        T1 + 60 * DAY,
    ]
}

/// One trufflehog result line (fake secrets only).
fn th(detector: &str, raw: &str, verified: bool, file: &str, error: bool) -> String {
    let err = if error {
        r#","VerificationError":"dial tcp: no such host""#
    } else {
        ""
    };
    format!(
        r#"{{"SourceMetadata":{{"Data":{{"Git":{{"commit":"c0ffee","file":"{file}","line":3,"repository":"https://git.example.com/acme/app.git"}}}}}},"DetectorName":"{detector}","Verified":{verified},"Raw":"{raw}"{err}}}"#
    )
}

const AWS: &str = "AKIAIOSFODNN7EXAMPLE";
const GH: &str = "ghp_FAKEfakeFAKEfakeFAKEfakeFAKEfake0001";
const SLACK: &str = "xoxb-FAKE-0000-fake";
const TOKEN: &str = "glpat-FAKEfakeFAKE0002";

/// The six scans: file (relative) → report.
fn scans() -> Vec<BTreeMap<&'static str, String>> {
    let aws_live = th("AWS", AWS, true, "deploy/prod.env", false);
    let aws_dead = th("AWS", AWS, false, "deploy/prod.env", false);
    let gh_unknown = th("Github", GH, false, "ci.yml", true);
    let gh_dead = th("Github", GH, false, "ci.yml", false);
    let slack = th("Slack", SLACK, true, "notify.sh", false);
    let token = th("Gitlab", TOKEN, true, "a.py", false);
    vec![
        BTreeMap::from([
            ("a.jsonl", format!("{aws_live}\n{gh_unknown}\n")),
            ("b.jsonl", format!("{slack}\n")),
        ]),
        BTreeMap::from([
            ("a.jsonl", format!("{aws_live}\n{gh_unknown}\n")),
            ("b.jsonl", format!("{slack}\n")),
        ]),
        BTreeMap::from([
            ("a.jsonl", format!("{aws_dead}\n{gh_unknown}\n")),
            ("b.jsonl", String::new()),
        ]),
        BTreeMap::from([
            ("a.jsonl", format!("{gh_unknown}\n")),
            ("b.jsonl", format!("{token}\n")),
        ]),
        BTreeMap::from([
            ("a.jsonl", format!("{gh_unknown}\n")),
            ("b.jsonl", format!("{token}\n")),
            ("sub/c.jsonl", format!("{slack}\n")),
        ]),
        BTreeMap::from([
            ("a.jsonl", format!("{gh_dead}\n")),
            ("b.jsonl", format!("{token}\n")),
            ("sub/c.jsonl", String::new()),
        ]),
    ]
}

fn write_scan(dir: &Path, scan: &BTreeMap<&str, String>) {
    for (rel, body) in scan {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }
}

/// An app over `root/<name>.db` with the shared key `root/key`, one
/// trufflehog source reading `root/live/**`.
fn app(root: &Path, name: &str, backfill: Option<&Path>) -> Arc<App> {
    App::open(&write_config(root, name, backfill)).unwrap()
}

fn write_config(root: &Path, name: &str, backfill: Option<&Path>) -> PathBuf {
    let cfg = root.join(format!("{name}.yaml"));
    let backfill = backfill
        .map(|b| format!(", backfill_dir: '{}'", b.display()))
        .unwrap_or_default();
    std::fs::write(
        &cfg,
        format!(
            "state: {{path: {name}.db, hash_key_file: key}}\nsources: [{{name: th, type: trufflehog, unverified_is_inactive: true, paths: ['{live}/**/*.jsonl']{backfill}}}]\n",
            live = root.join("live").display()
        ),
    )
    .unwrap();
    cfg
}

/// Every table, rows sorted; targets without their fingerprint (the
/// change marker of the file read).
fn dump(app: &App) -> BTreeMap<String, Vec<String>> {
    let conn = app.store.reader().unwrap();
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut out = BTreeMap::new();
    for t in tables {
        let sql = if t == "targets" {
            "SELECT id, source, target, scanned_at FROM targets".to_string()
        } else if t == "meta" {
            "SELECT * FROM meta WHERE key NOT LIKE 'backfill_anchor:%'".to_string()
        } else {
            format!("SELECT * FROM {t}")
        };
        let mut stmt = conn.prepare(&sql).unwrap();
        let n = stmt.column_count();
        let mut rows: Vec<String> = stmt
            .query_map(crate::store::db::params![], |r| {
                (0..n)
                    .map(|i| {
                        r.get::<_, crate::store::db::Value>(i)
                            .map(|v| format!("{v:?}"))
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map(|v| v.join("|"))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        rows.sort();
        out.insert(t, rows);
    }
    out
}

fn backfill_dir(root: &Path) -> PathBuf {
    let dir = root.join("history");
    for (scan, t) in scans().iter().zip(times()) {
        let name = time::OffsetDateTime::from_unix_timestamp(t)
            .unwrap()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        write_scan(&dir.join(name), scan);
    }
    dir
}

fn source(app: &App) -> (SourceConfig, Arc<dyn Source>) {
    let cfg = app.config().sources[0].clone();
    let s = app.source("th").unwrap();
    (cfg, s)
}

/// Six live polls through the normal pipeline at t1..t6, each followed by
/// the KPI recompute a live poll triggers.
async fn live(root: &Path) -> Arc<App> {
    let a = app(root, "live", None);
    let (cfg, s) = source(&a);
    let live = root.join("live");
    for (scan, t) in scans().iter().zip(times()) {
        let _ = std::fs::remove_dir_all(&live);
        write_scan(&live, scan);
        let out =
            poll::poll_once_at(a.as_ref(), &cfg, s.as_ref(), &CancellationToken::new(), t).await;
        assert!(out.ok(), "{:?}", out.errors);
        a.recompute(t).unwrap();
    }
    let _ = std::fs::remove_dir_all(&live);
    a
}

fn backfilled(root: &Path, dir: &Path) -> (Arc<App>, BackfillReport) {
    let a = app(root, "backfill", Some(dir));
    let cfg = a.config().sources[0].clone();
    let r = backfill_source(&a, &cfg, None, T1 + 90 * DAY).unwrap();
    (a, r)
}

const NOW: i64 = T1 + 70 * DAY;

fn snapshot(app: &App) -> Snapshot {
    app.compute_and_record(NOW).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_equals_six_live_polls() {
    let root = tempfile::tempdir().unwrap();
    let dir = backfill_dir(root.path());
    let (b, report) = backfilled(root.path(), &dir);
    assert_eq!(
        report,
        BackfillReport {
            applied: 6,
            skipped: 0,
            findings: 15
        }
    );
    let l = live(root.path()).await;
    let (bs, ls) = (snapshot(&b), snapshot(&l));
    assert_eq!(bs, ls);
    assert_eq!(dump(&b), dump(&l));
    // The story, exactly.
    assert_eq!(bs.first_success, Some(T1));
    assert_eq!(
        bs.exposed_secrets,
        BTreeMap::from([
            ("live".into(), 1),
            ("inactive".into(), 1),
            ("unknown".into(), 0)
        ])
    );
    assert_eq!(bs.residual_exposures, 1); // the slack token, last said live
    let revoked: Vec<_> = bs
        .counters
        .iter()
        .filter(|c| c.0 == "nhi_exposures_revoked_total")
        .map(|c| (c.1.clone(), c.2))
        .collect();
    assert_eq!(
        revoked,
        [(
            vec![("confirmed_by".to_string(), "validity_check".to_string())],
            2.0
        )]
    );
    let ttr = bs
        .histograms
        .iter()
        .find(|h| h.0 == "nhi_time_to_revoke_seconds")
        .unwrap();
    // AWS: t1 → t3 (20 days); Github: t1 → t6 (60 days).
    assert_eq!((ttr.2.count, ttr.2.sum), (2, (80 * DAY) as f64));
    let w90 = bs.windows.iter().find(|w| w.label == "90d").unwrap();
    assert_eq!(w90.start, T1);
    assert_eq!(w90.time_to_revoke_median, Some((40 * DAY) as f64));
    // Open now: Github (inactive) and the Gitlab token; at t1 three.
    assert_eq!(w90.secrets_in_code_delta, -1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_is_a_no_op() {
    let root = tempfile::tempdir().unwrap();
    let dir = backfill_dir(root.path());
    let (b, _) = backfilled(root.path(), &dir);
    let before = dump(&b);
    let cfg = b.config().sources[0].clone();
    let again = backfill_source(&b, &cfg, None, T1 + 90 * DAY).unwrap();
    assert_eq!(
        again,
        BackfillReport {
            applied: 0,
            skipped: 6,
            findings: 0
        }
    );
    assert_eq!(dump(&b), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_rewrites_what_the_store_observed() {
    let root = tempfile::tempdir().unwrap();
    let dir = backfill_dir(root.path());
    let a = app(root.path(), "observed", Some(&dir));
    let (cfg, s) = source(&a);
    // A live poll after t3 (of scan 3's content).
    write_scan(&root.path().join("live"), &scans()[2]);
    let t = times()[2] + DAY;
    let out = poll::poll_once_at(a.as_ref(), &cfg, s.as_ref(), &CancellationToken::new(), t).await;
    assert!(out.ok());
    let r = backfill_source(&a, &cfg, None, T1 + 90 * DAY).unwrap();
    assert_eq!(
        r,
        BackfillReport {
            applied: 3,
            skipped: 3,
            findings: 7
        }
    );
    let polls = &dump(&a)["polls"];
    assert_eq!(
        polls,
        &[format!("Text(\"th\")|Integer({t})|Integer({})", times()[5])]
    );
}

#[test]
fn scan_times() {
    let start = 1_800_000_000;
    assert_eq!(
        scan_time("2026-08-01T06:00:00Z", start),
        Some(1_785_564_000)
    );
    assert_eq!(scan_time("2026-08-01T060000Z", start), Some(1_785_564_000));
    assert_eq!(scan_time("2026-08-01", start), Some(1_785_542_400));
    assert_eq!(scan_time("60d-ago", start), Some(start - 60 * DAY));
    assert_eq!(scan_time("36h-ago", start), Some(start - 36 * 3600));
    for bad in [
        "latest",
        "2026-13-01",
        "x-ago",
        "2026-08-01T06Z",
        "-ago",
        "",
    ] {
        assert_eq!(scan_time(bad, start), None, "{bad}");
    }
}

#[test]
fn targets_are_named_as_a_live_poll_names_them() {
    let p = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let paths = p(&[
        "/r/gitleaks/*.json",
        "/r/sarif/*.sarif",
        "/r/repos/*/.secrets.baseline",
    ]);
    assert_eq!(
        target_name(&paths, "a.json").as_deref(),
        Some("/r/gitleaks/a.json")
    );
    assert_eq!(
        target_name(&paths, "b.sarif").as_deref(),
        Some("/r/sarif/b.sarif")
    );
    assert_eq!(
        target_name(&paths, "app/.secrets.baseline").as_deref(),
        Some("/r/repos/app/.secrets.baseline")
    );
    assert_eq!(target_name(&paths, "sub/a.json"), None);
    assert_eq!(target_name(&paths, "a.txt"), None);
    let literal = p(&["/r/one/report.json"]);
    assert_eq!(
        target_name(&literal, "report.json").as_deref(),
        Some("/r/one/report.json")
    );
}

#[test]
fn bad_names_and_unmatched_files_are_errors_naming_them() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("history");
    std::fs::create_dir_all(dir.join("2026-08-01")).unwrap();
    std::fs::create_dir_all(dir.join("last-week")).unwrap();
    let e = dated_scans(&dir, 1_800_000_000).unwrap_err();
    assert_eq!(e.reason, ErrorReason::Io);
    assert!(
        e.message.starts_with(&format!(
            "{}: not a scan time",
            dir.join("last-week").display()
        )),
        "{e}"
    );
    std::fs::remove_dir(dir.join("last-week")).unwrap();
    std::fs::write(dir.join("2026-08-01/notes.txt"), "x").unwrap();
    let a = app(root.path(), "bad", Some(&dir));
    let cfg = a.config().sources[0].clone();
    let e = backfill_source(&a, &cfg, None, 1_800_000_000).unwrap_err();
    assert_eq!(
        e.message,
        format!(
            "{}: notes.txt matches none of the source's paths",
            dir.join("2026-08-01").display()
        )
    );
    // Nothing was applied.
    assert!(a.store.last_successes().unwrap().is_empty());
    // A future scan time is refused too.
    std::fs::remove_file(dir.join("2026-08-01/notes.txt")).unwrap();
    let e = dated_scans(&dir, 1_700_000_000).unwrap_err();
    assert!(
        e.message
            .ends_with("2026-08-01: the scan time is in the future"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ages_count_from_the_first_backfill() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("history");
    for (i, name) in ["30d-ago", "36h-ago"].iter().enumerate() {
        write_scan(&dir.join(name), &scans()[i]);
    }
    let a = app(root.path(), "ago", Some(&dir));
    let cfg = a.config().sources[0].clone();
    let start = T1 + 90 * DAY;
    let r = backfill_source(&a, &cfg, None, start).unwrap();
    assert_eq!((r.applied, r.skipped), (2, 0));
    // Later runs date the directories as the first did: nothing new.
    let r = backfill_source(&a, &cfg, None, start + 3600).unwrap();
    assert_eq!((r.applied, r.skipped), (0, 2));
    assert_eq!(
        dump(&a)["polls"],
        [format!(
            "Text(\"th\")|Integer({})|Integer({})",
            start - 30 * DAY,
            start - 36 * 3600
        )]
    );
}

#[test]
fn a_reload_backfills_the_sources_it_starts() {
    let root = tempfile::tempdir().unwrap();
    let dir = backfill_dir(root.path());
    let a = app(root.path(), "before", None);
    let load = |name: &str, backfill: Option<&Path>| {
        crate::sources::registry::load(&write_config(root.path(), name, backfill))
            .unwrap()
            .config
    };
    // The same source, now with a backfill_dir: backfilled.
    let with_dir = load("after", Some(&dir));
    assert!(before_reload(&a, &with_dir).is_empty());
    assert_eq!(a.store.last_successes().unwrap()["th"], times()[5]);
    // A reload that keeps the source and its backfill_dir: nothing to do
    // (the start-up backfill covered it).
    let same = app(root.path(), "same", Some(&dir));
    assert!(before_reload(&same, &with_dir).is_empty());
    assert!(same.store.last_successes().unwrap().is_empty());
    // A bad directory: one failure of that source.
    let bad = root.path().join("bad");
    std::fs::create_dir_all(bad.join("someday")).unwrap();
    let failed = before_reload(&a, &load("bad", Some(&bad)));
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].0.name, "th");
    assert_eq!(failed[0].1.errors[0].reason, ErrorReason::Io);
    assert!(!failed[0].1.ok());
}
