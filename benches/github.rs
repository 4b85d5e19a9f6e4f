//! GitHub secret scanning at scale against the loopback mock (figures, not
//! pass/fail): 50,000 alerts across 500 repositories of one organization.
//!
//!   cargo bench --bench github
//!
//! Reports requests per poll, poll wall time (fetch + apply), and the
//! re-poll cost when nothing changed (conditional requests, 304s).

#[path = "../tests/github_mock/mod.rs"]
mod github_mock;

use github_mock::{alert, Mock};
use nhi_exporter::app::App;
use nhi_exporter::poll;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let repos: usize = std::env::var("NHI_BENCH_REPOS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let per_repo: u64 = std::env::var("NHI_BENCH_ALERTS_PER_REPO")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let mock = Mock::start("bench-token");
    mock.with(|st| {
        let mut names = Vec::new();
        for r in 0..repos {
            let name = format!("acme/repo{r:04}");
            let alerts = (1..=per_repo)
                .map(|i| {
                    let state = if i % 4 == 0 { "resolved" } else { "open" };
                    let res = (i % 4 == 0).then_some("revoked");
                    let validity = ["active", "inactive", "unknown"][(i % 3) as usize];
                    alert(
                        &name,
                        i,
                        "github_personal_access_token",
                        &format!("s-{r}-{i}"),
                        state,
                        res,
                        validity,
                    )
                })
                .collect();
            st.repos.insert(name.clone(), alerts);
            names.push(name);
        }
        st.orgs.insert("acme".into(), names);
    });
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), "bench-token").unwrap();
    let cfg = dir.path().join("nhi.yaml");
    std::fs::write(
        &cfg,
        format!(
            "state: {{path: state.db}}\nsources: [{{name: gh, type: github_secret_scanning, api_url: '{}', org: acme, token_file: token, timeout: 10m}}]\n",
            mock.url()
        ),
    )
    .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let app = App::open(&cfg).unwrap();
        let scfg = app.config().sources[0].clone();
        let source = app.source(&scfg.name).unwrap();
        let total = repos as u64 * per_repo;
        for (label, expect_new) in [("first poll", true), ("re-poll, nothing changed", false)] {
            let before = mock.with(|st| (st.requests, st.not_modified));
            let t = Instant::now();
            let out = poll::poll_once(app.as_ref(), &scfg, source.as_ref(), &CancellationToken::new()).await;
            let wall = t.elapsed();
            assert!(out.ok(), "{:?}", out.errors);
            let after = mock.with(|st| (st.requests, st.not_modified));
            println!(
                "{label}: {total} alerts, {} requests ({} answered 304), {wall:.2?}; {} findings new, {} targets applied",
                after.0 - before.0,
                after.1 - before.1,
                out.stats.findings_new,
                out.stats.targets
            );
            assert_eq!(out.stats.findings_new > 0, expect_new);
        }
        // One alert changes: only its page is fetched in full.
        mock.with(|st| {
            st.repos.get_mut("acme/repo0000").unwrap()[0] =
                alert("acme/repo0000", 1, "github_personal_access_token", "s-0-1", "resolved", Some("revoked"), "inactive");
        });
        let before = mock.with(|st| (st.requests, st.not_modified));
        let t = Instant::now();
        let out = poll::poll_once(app.as_ref(), &scfg, source.as_ref(), &CancellationToken::new()).await;
        let after = mock.with(|st| (st.requests, st.not_modified));
        assert!(out.ok());
        println!(
            "re-poll, one alert changed: {} requests ({} answered 304), {:.2?}; {} closed",
            after.0 - before.0,
            after.1 - before.1,
            t.elapsed(),
            out.stats.findings_closed
        );
    });
}
