//! Kubernetes source at scale against the loopback API server of the tests
//! (tests/k8s_mock, in this process): 20,000 service accounts in 200
//! namespaces, 5,000 legacy token Secrets, 50,000 pods, 10,000 bindings
//! (100 ClusterRoleBindings, 9,900 RoleBindings). Times one full poll
//! through the real `kube` client (HTTP/1.1 on loopback, 500 items a page,
//! JSON parse, inventory build) and prints the requests per resource.
//! The mock answers on its own thread, one request at a time, and the
//! source's lists are sequential: the time it spends building responses is
//! printed so that the source's own share (wall minus mock) can be read.
//! Peak RSS is of the whole process, the mock's objects included: the
//! figure printed is the growth of the peak during the poll.
//!
//! Run: `cargo bench --bench kubernetes`.

#[path = "../tests/k8s_mock/mod.rs"]
mod k8s_mock;
mod support;

use k8s_mock::*;
use nhi_exporter::sources::kubernetes::{KubernetesConfig, KubernetesSource};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

fn main() {
    let sas = support::env_usize("NHI_BENCH_K8S_SAS", 20_000);
    let tokens = support::env_usize("NHI_BENCH_K8S_TOKENS", 5_000);
    let pods = support::env_usize("NHI_BENCH_K8S_PODS", 50_000);
    let bindings = support::env_usize("NHI_BENCH_K8S_BINDINGS", 10_000);
    const NS: usize = 200;
    let t0 = 1_800_000_000 - 400 * 86_400;
    let k = Mock::start("bench-token");
    let ns = |i: usize| format!("ns-{:03}", i % NS);
    k.with(|s| {
        let o = &mut s.objects;
        for i in 0..NS {
            o.entry("namespaces".into())
                .or_default()
                .push(namespace(&ns(i), Some("team-a")));
        }
        for i in 0..sas {
            o.entry("serviceaccounts".into())
                .or_default()
                .push(service_account(
                    &ns(i),
                    &format!("sa-{i}"),
                    &format!("uid-{i}"),
                    t0,
                    None,
                ));
        }
        for i in 0..tokens {
            o.entry("secrets".into()).or_default().push(token_secret(
                &ns(i),
                &format!("sa-{i}-token"),
                &format!("sa-{i}"),
                &format!("uid-{i}"),
                t0,
                "bench-token-value",
                serde_json::json!({}),
            ));
        }
        for i in 0..pods {
            let phase = if i % 10 == 0 { "Succeeded" } else { "Running" };
            o.entry("pods".into()).or_default().push(pod(
                &ns(i),
                &format!("pod-{i}"),
                &format!("sa-{}", i % sas),
                phase,
            ));
        }
        o.entry("clusterroles".into())
            .or_default()
            .push(cluster_role("cluster-admin", &["*"], &["*"]));
        o.entry("clusterroles".into())
            .or_default()
            .push(cluster_role("view", &["get", "list"], &["pods"]));
        for i in 0..NS {
            o.entry("roles".into()).or_default().push(role(
                &ns(i),
                "reader",
                &["get"],
                &["configmaps"],
            ));
        }
        for i in 0..bindings {
            let sa = format!("sa-{}", (i * 7) % sas);
            if i < 100 {
                let n = ns((i * 7) % sas);
                o.entry("clusterrolebindings".into())
                    .or_default()
                    .push(binding(
                        None,
                        &format!("crb-{i}"),
                        "ClusterRole",
                        if i % 10 == 0 { "cluster-admin" } else { "view" },
                        &[("ServiceAccount", &sa, Some(&n))],
                    ));
            } else {
                o.entry("rolebindings".into()).or_default().push(binding(
                    Some(&ns((i * 7) % sas)),
                    &format!("rb-{i}"),
                    "Role",
                    "reader",
                    &[
                        ("ServiceAccount", &sa, None),
                        ("User", &format!("user-{}@example.com", i % 50), None),
                    ],
                ));
            }
        }
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let kc = dir.path().join("kubeconfig");
    std::fs::write(&kc, k.kubeconfig("bench")).expect("kubeconfig");
    let src = KubernetesSource::new(KubernetesConfig {
        kubeconfig: Some(kc),
        context: Some("bench".into()),
        cluster_name: "bench".into(),
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!("kubernetes: {sas} service accounts, {tokens} legacy tokens, {pods} pods, {bindings} bindings, {NS} namespaces");
    for round in ["first poll", "second poll"] {
        k.with(|s| {
            s.requests.clear();
            s.busy = Duration::ZERO;
        });
        let hwm_before = support::rss_kib("VmHWM:");
        let started = Instant::now();
        let polled = rt.block_on(support::poll_inventory(
            &src,
            "k8s-bench",
            Duration::from_secs(600),
            Vec::new(),
        ));
        let wall = started.elapsed();
        let mock = k.with(|s| s.busy);
        let hwm_after = support::rss_kib("VmHWM:");
        let mut per: BTreeMap<String, usize> = BTreeMap::new();
        let reqs = k.with(|s| s.requests.clone());
        for (p, _) in &reqs {
            let path = p.split('?').next().unwrap_or("");
            let res = path.rsplit('/').next().unwrap_or("").to_string();
            *per.entry(res).or_default() += 1;
        }
        println!(
            "  {round}: {:.2} s wall ({:.2} s of it in the mock server building responses), {} requests {per:?}, {} scopes, {} identities, {} credentials; peak RSS {} MiB (+{} MiB during the poll)",
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
            sas + 50.min(bindings.saturating_sub(100)),
            "service accounts and the human users"
        );
        assert_eq!(polled.credentials, tokens);
    }
}
