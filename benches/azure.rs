//! Azure source at scale against the loopback server of the tests
//! (tests/azure_mock, in this process): 5,000 applications with 8,000
//! client secrets and certificates, their 5,000 service principals, 60
//! privileged directory and RBAC assignments, sign-in reports for every
//! service principal and credential, and 3 Key Vaults of 2,000 secrets.
//! Times one full poll through the source (token requests, HTTP/1.1 on
//! loopback, Graph pages of 999, Key Vault pages of 25, JSON parse,
//! inventory build), without and with `match_values` (one value read per
//! enabled secret), and prints the requests per API. The mock answers on
//! its own thread, one request at a time; the time it spends building
//! responses is printed so that the source's own share (wall minus mock)
//! can be read. Peak RSS is of the whole process, the mock's objects
//! included: the figure printed is the growth of the peak during the poll.
//!
//! Run: `cargo bench --bench azure`.

#[path = "../tests/azure_mock/mod.rs"]
mod azure_mock;
mod support;

use azure_mock::*;
use nhi_exporter::config::Credential;
use nhi_exporter::sources::azure::{AzureAuth, AzureConfig, AzureSource, Endpoints};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const TENANT: &str = "aaaaaaaa-0000-0000-0000-000000000001";
const CLIENT: &str = "cccccccc-0000-0000-0000-000000000001";
const SUB: &str = "55555555-0000-0000-0000-000000000001";

fn guid(prefix: u32, i: usize) -> String {
    format!("{prefix:08x}-0000-0000-0000-{i:012x}")
}

fn main() {
    let apps = support::env_usize("NHI_BENCH_AZURE_APPS", 5_000);
    let creds = support::env_usize("NHI_BENCH_AZURE_CREDENTIALS", 8_000);
    let per_vault = support::env_usize("NHI_BENCH_AZURE_VAULT_SECRETS", 2_000);
    let t0 = 1_800_000_000 - 400 * 86_400;
    let m = Mock::start(TENANT, CLIENT, "bench-secret");
    m.with(|s| {
        s.page = 999;
        let extra = creds.saturating_sub(apps); // apps with a second credential
        for i in 0..apps {
            let mut passwords = vec![password(&guid(0xb1, i), "abc", t0, t0 + 800 * 86_400)];
            let mut keys = Vec::new();
            if i < extra {
                if i % 2 == 0 {
                    passwords.push(password(&guid(0xb2, i), "xyz", t0, t0 + 800 * 86_400));
                } else {
                    keys.push(certificate(&guid(0xb3, i), t0, t0 + 800 * 86_400));
                }
            }
            let tag = format!("team:team-{}", i % 20);
            s.applications.push(application(&guid(0xa0, i), &guid(0xa1, i), &format!("app-{i}"), t0, &[tag.as_str()], passwords, keys));
            s.service_principals.push(service_principal(&guid(0x50, i), &guid(0xa1, i), &format!("app-{i}"), "Application", TENANT, vec![]));
            s.sp_sign_ins.push(json!({"id": i.to_string(), "appId": guid(0xa1, i),
                "lastSignInActivity": {"lastSignInDateTime": ts(t0 + 300 * 86_400), "lastSignInRequestId": "r"}}));
            s.credential_sign_ins.push(json!({"id": i.to_string(), "keyId": guid(0xb1, i), "keyType": "clientSecret",
                "signInActivity": {"lastSignInDateTime": ts(t0 + 300 * 86_400)}}));
        }
        let ga = "62e90394-69f5-4237-9190-012177145e10";
        s.role_definitions = vec![role_definition(ga, "Global Administrator"), role_definition("r2", "Directory Readers")];
        for i in 0..30 {
            s.role_assignments.push(role_assignment(ga, &guid(0x50, i * 100), "servicePrincipal", "/"));
        }
        let owner = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635";
        let assignments = (0..30)
            .map(|i| arm_role_assignment(SUB, owner, &guid(0x50, i * 101), "ServicePrincipal", &format!("/subscriptions/{SUB}")))
            .collect();
        s.arm.insert(SUB.into(), (vec![arm_role_definition(SUB, owner, "Owner")], assignments));
        for v in 0..3 {
            let mut secrets = BTreeMap::new();
            for i in 0..per_vault {
                secrets.insert(format!("secret-{i:05}"), VaultSecret {
                    enabled: i % 10 != 0, created: t0, updated: t0, exp: None,
                    tags: json!({"team": "payments"}), value: format!("bench-value-{v}-{i}"),
                });
            }
            s.vaults.insert(format!("kv{v}"), secrets);
        }
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!("azure: {apps} applications + {apps} service principals, {creds} credentials, 3 vaults x {per_vault} secrets");
    for match_values in [false, true] {
        let src = AzureSource::new(AzureConfig {
            tenant_id: TENANT.into(),
            auth: AzureAuth::ClientSecret {
                client_id: CLIENT.into(),
                secret: Credential::new("bench-secret".into()),
            },
            subscriptions: vec![SUB.into()],
            key_vaults: (0..3).map(|v| m.url(&format!("kv/kv{v}"))).collect(),
            match_values,
            endpoints: Endpoints {
                login: m.url("login"),
                graph: m.url("graph"),
                arm: m.url("arm"),
                ..Endpoints::default()
            },
            ca_file: None,
        })
        .expect("source");
        m.with(|s| {
            s.requests.clear();
            s.busy = Duration::ZERO;
        });
        let hwm_before = support::rss_kib("VmHWM:");
        let started = Instant::now();
        let polled = rt.block_on(support::poll_inventory(
            &src,
            "azure-bench",
            Duration::from_secs(600),
            Vec::new(),
        ));
        let wall = started.elapsed();
        let mock = m.with(|s| s.busy);
        let hwm_after = support::rss_kib("VmHWM:");
        let reqs = m.with(|s| s.requests.clone());
        let mut per: BTreeMap<&str, usize> = BTreeMap::new();
        for r in &reqs {
            let api = if r.contains("/login/") {
                "token"
            } else if r.contains("/graph/") {
                "graph"
            } else if r.contains("/arm/") {
                "arm"
            } else if r.contains("/secrets?") {
                "keyvault list"
            } else {
                "keyvault value"
            };
            *per.entry(api).or_default() += 1;
        }
        println!(
            "  match_values={match_values}: {:.2} s wall ({:.2} s of it in the mock server building responses), {} requests {per:?}, {} scopes, {} identities, {} credentials; peak RSS {} MiB (+{} MiB during the poll)",
            wall.as_secs_f64(),
            mock.as_secs_f64(),
            reqs.len(),
            polled.scopes,
            polled.identities,
            polled.credentials,
            hwm_after / 1024,
            hwm_after.saturating_sub(hwm_before) / 1024,
        );
        assert_eq!(polled.identities, 2 * apps);
        assert_eq!(polled.credentials, creds + 3 * per_vault);
        assert!(m.with(|s| s.violations.is_empty()));
    }
}
