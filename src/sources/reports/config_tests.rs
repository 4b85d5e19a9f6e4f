//! Configuration tests of this source type: its keys, defaults and every
//! validation error, each naming its key path.

use super::*;
use crate::config::test_support::ok;
use crate::config::{DEFAULT_INTERVAL, DEFAULT_TIMEOUT};
use std::path::PathBuf;
use std::time::Duration;

#[test]
fn full_gitleaks_source() {
    let c = ok(r#"
state: {path: /var/lib/nhi/state.db, hash_key_file: keys/hmac.key}
policy: {stale_after: 30m, windows: [1d, 7d], max_secret_types: 5}
sources:
  - name: ci-gitleaks
    type: gitleaks
    interval: 1m
    timeout: 10s
    paths: ["${SCANS}/*.json", "rel/*.sarif"]
  - {name: off, type: gitleaks, enabled: false, paths: [x.json]}
"#);
    assert_eq!(
        c.state.hash_key_path(),
        PathBuf::from("/etc/nhi/keys/hmac.key")
    );
    assert_eq!(c.policy.stale_after, Some(Duration::from_secs(1800)));
    assert_eq!(c.policy.windows[0].label, "1d");
    let s = &c.sources[0];
    assert_eq!(s.name, "ci-gitleaks");
    assert_eq!(s.type_name(), "gitleaks");
    assert_eq!(s.interval, Duration::from_secs(60));
    assert_eq!(s.timeout, Duration::from_secs(10));
    assert!(s.enabled);
    let g: &ReportsConfig = s.settings().unwrap();
    assert_eq!(g.paths, ["/scans/*.json", "/etc/nhi/rel/*.sarif"]);
    assert_eq!(g.max_file_size, DEFAULT_MAX_FILE_SIZE);
    assert!(!c.sources[1].enabled);
    assert_eq!(c.sources[1].interval, DEFAULT_INTERVAL);
    assert_eq!(c.sources[1].timeout, DEFAULT_TIMEOUT);
    assert_eq!(
        c.sources[1].stale_after(&c.policy),
        Duration::from_secs(1800)
    );
}

#[test]
fn trufflehog_and_detect_secrets_sources() {
    let c = ok(r#"
sources:
  - name: ci-trufflehog
    type: trufflehog
    interval: 2m
    paths: ["${SCANS}/trufflehog/*.jsonl"]
    max_file_size: 64MiB
  - name: baselines
    type: detect_secrets
    paths: ["/srv/repos/*/.secrets.baseline", "rel/.secrets.baseline"]
"#);
    let t = &c.sources[0];
    assert_eq!(t.type_name(), "trufflehog");
    assert_eq!(t.interval, Duration::from_secs(120));
    let tc: &ReportsConfig = t.settings().unwrap();
    assert_eq!(tc.paths, ["/scans/trufflehog/*.jsonl"]);
    assert_eq!(tc.max_file_size, 64 * 1024 * 1024);
    let d = &c.sources[1];
    assert_eq!(d.type_name(), "detect_secrets");
    assert_eq!(d.timeout, DEFAULT_TIMEOUT);
    let dc: &ReportsConfig = d.settings().unwrap();
    assert_eq!(
        dc.paths,
        [
            "/srv/repos/*/.secrets.baseline",
            "/etc/nhi/rel/.secrets.baseline"
        ]
    );
    assert_eq!(dc.max_file_size, DEFAULT_MAX_FILE_SIZE);
}

#[test]
fn backfill_dir_and_unverified_is_inactive() {
    let c = ok(r#"
sources:
  - name: th
    type: trufflehog
    paths: ["th/*.jsonl"]
    backfill_dir: th-history
    unverified_is_inactive: true
  - {name: gl, type: gitleaks, paths: [x.json], backfill_dir: /abs/history}
  - {name: ds, type: detect_secrets, paths: [x]}
"#);
    let t: &ReportsConfig = c.sources[0].settings().unwrap();
    assert_eq!(t.backfill_dir, Some(PathBuf::from("/etc/nhi/th-history")));
    assert!(t.unverified_is_inactive);
    let g: &ReportsConfig = c.sources[1].settings().unwrap();
    assert_eq!(g.backfill_dir, Some(PathBuf::from("/abs/history")));
    assert!(!g.unverified_is_inactive);
    let d: &ReportsConfig = c.sources[2].settings().unwrap();
    assert_eq!(d.backfill_dir, None);
    assert!(!d.unverified_is_inactive);
}

#[test]
fn unverified_is_inactive_is_a_trufflehog_key() {
    let got = crate::config::test_support::errs(
        "sources: [{name: g, type: gitleaks, paths: [x], unverified_is_inactive: true, backfill_dir: ''}]",
    );
    assert_eq!(
        got,
        [
            "sources[0].backfill_dir: must not be empty",
            "sources[0].unverified_is_inactive: only a trufflehog source has this key"
        ]
    );
}
