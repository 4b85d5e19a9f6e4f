//! GCP source at scale against the loopback server of the tests
//! (tests/gcp_mock, in this process): 500 service accounts with 1,500
//! USER_MANAGED keys (and 500 Google-managed keys the filter leaves out)
//! over 20 projects under one folder, 200 Secret Manager secrets with two
//! versions each, Policy Analyzer activity on. Times one full poll through
//! the real source (HTTP/1.1 on loopback, JSON parse, inventory build) and
//! prints the requests per API call. The mock answers on its own thread
//! and verifies every request's self-signed JWT (RS256): the time it spends
//! is printed so that the source's own share (wall minus mock) can be read.
//! Peak RSS is of the whole process, the mock's objects included: the
//! figure printed is the growth of the peak during the poll.
//!
//! Run: `cargo bench --bench gcp`.

#[path = "../tests/gcp_mock/mod.rs"]
mod gcp_mock;
mod support;

use gcp_mock::*;
use nhi_exporter::sources::gcp::{Endpoints, Estate, GcpConfig, GcpSource};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const FAKE_PEM: &str = include_str!("../tests/fixtures/gcp/FAKE-test-only-sa-key.pem");

fn main() {
    let projects = support::env_usize("NHI_BENCH_GCP_PROJECTS", 20);
    let sas = support::env_usize("NHI_BENCH_GCP_SAS", 500);
    let keys_per_sa = support::env_usize("NHI_BENCH_GCP_KEYS_PER_SA", 3);
    let secrets_per_project = support::env_usize("NHI_BENCH_GCP_SECRETS", 10);
    let g = Mock::start();
    let kid = "0000000000000000000000000000000000000001";
    let sa_email = "nhi@bench.iam.gserviceaccount.com";
    g.with(|s| s.key = Some((kid.into(), sa_email.into(), public_der(FAKE_PEM))));
    g.add_folder("10", "organizations/1");
    g.set_policy(
        "organizations/1",
        json!([{"role": "roles/owner", "members": ["user:admin@example.com"]}]),
    );
    let pid = |i: usize| format!("bench-proj-{i:02}");
    for p in 0..projects {
        let number = format!("{}", 5000 + p);
        g.add_project(&pid(p), &number, "folders/10", json!({"team": "t"}));
        for s in 0..secrets_per_project {
            g.add_secret(
                &number,
                &format!("secret-{s}"),
                json!({"createTime": "2026-01-01T00:00:00Z"}),
                &[
                    ("2026-01-01T00:00:00Z", "DISABLED"),
                    ("2026-06-01T00:00:00Z", "ENABLED"),
                ],
            );
        }
    }
    let mut bindings: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for i in 0..sas {
        let p = i % projects;
        let email = format!("sa-{i}@{}.iam.gserviceaccount.com", pid(p));
        g.add_account(&pid(p), &email, &format!("{}", 100_000_000 + i), false);
        for k in 0..keys_per_sa {
            g.add_key(
                &pid(p),
                &email,
                &format!("{:040x}", i * 10 + k),
                "2026-01-01T00:00:00Z",
                "9999-12-31T23:59:59Z",
                false,
            );
        }
        if i % 10 == 0 {
            bindings
                .entry(p)
                .or_default()
                .push(format!("serviceAccount:{email}"));
        }
        g.add_activity(
            &pid(p),
            &format!("{}", 5000 + p),
            "serviceAccountLastAuthentication",
            &email,
            &format!("{}", 100_000_000 + i),
            "2026-11-01T00:00:00Z",
        );
    }
    for (p, members) in bindings {
        g.set_policy(
            &format!("projects/{}", 5000 + p),
            json!([{"role": "roles/editor", "members": members}]),
        );
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("gcp.json");
    std::fs::write(
        &key,
        json!({"type": "service_account", "private_key_id": kid, "private_key": FAKE_PEM,
               "client_email": sa_email})
        .to_string(),
    )
    .expect("key file");
    let u = g.url();
    let src = GcpSource::new(GcpConfig {
        estate: Estate::Projects((0..projects).map(pid).collect()),
        credentials_file: Some(key),
        activity: true,
        endpoints: Endpoints {
            iam: u.clone(),
            resourcemanager: u.clone(),
            secretmanager: u.clone(),
            policyanalyzer: u,
        },
    })
    .expect("source");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "gcp: {projects} projects, {sas} service accounts, {} user-managed keys, {} secrets",
        sas * keys_per_sa,
        projects * secrets_per_project
    );
    for round in ["first poll", "second poll"] {
        g.with(|s| {
            s.requests.clear();
            s.busy = Duration::ZERO;
        });
        let hwm_before = support::rss_kib("VmHWM:");
        let started = Instant::now();
        let polled = rt.block_on(support::poll_inventory(
            &src,
            "gcp-bench",
            Duration::from_secs(600),
            Vec::new(),
        ));
        let wall = started.elapsed();
        let mock = g.with(|s| s.busy);
        let hwm_after = support::rss_kib("VmHWM:");
        let mut per: BTreeMap<String, usize> = BTreeMap::new();
        let reqs = g.with(|s| s.requests.clone());
        for r in &reqs {
            let path = r.split('?').next().unwrap_or("");
            let last = path.rsplit('/').next().unwrap_or("");
            let kind = if last.ends_with(":getIamPolicy") {
                "getIamPolicy".to_string()
            } else if path.starts_with("GET /v3/projects/") {
                "projects.get".to_string()
            } else if path.starts_with("GET /v3/folders/") {
                "folders.get".to_string()
            } else {
                last.to_string()
            };
            *per.entry(kind).or_default() += 1;
        }
        println!(
            "  {round}: {:.3} s wall ({:.3} s of it in the mock server building responses and verifying JWTs), {} requests {per:?}, {} scopes, {} identities, {} credentials; peak RSS {} MiB (+{} MiB during the poll)",
            wall.as_secs_f64(),
            mock.as_secs_f64(),
            reqs.len(),
            polled.scopes,
            polled.identities,
            polled.credentials,
            hwm_after / 1024,
            hwm_after.saturating_sub(hwm_before) / 1024,
        );
        assert_eq!(
            polled.identities,
            sas + 1,
            "service accounts and the one human"
        );
        assert_eq!(
            polled.credentials,
            sas * keys_per_sa + projects * secrets_per_project
        );
        assert!(g.with(|s| s.violations.is_empty()));
    }
}
