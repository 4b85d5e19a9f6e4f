//! Configuration tests of this source type: its keys, defaults and every
//! validation error, each naming its key path.

use super::*;
use crate::config::test_support::{env_of, errs, parse};

const KUBECONFIG: &str = "apiVersion: v1\nkind: Config\ncurrent-context: admin@prod\nclusters:\n- name: prod\n  cluster: {server: \"https://k8s.example.com:6443\"}\ncontexts:\n- name: admin@prod\n  context: {cluster: prod, user: u}\n- name: staging\n  context: {cluster: prod, user: u}\nusers:\n- name: u\n  user: {token: \"kube-canary-token\"}\n";

#[test]
fn kubernetes_sources_and_defaults() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("kc"), KUBECONFIG).unwrap();
    let c = parse(
        "sources:\n  - {name: a, type: kubernetes, kubeconfig: kc}\n  - {name: b, type: kubernetes, kubeconfig: kc, context: staging, cluster_name: eu-1}\n  - {name: c, type: kubernetes}\n",
        dir.path(),
        &env_of(&[]),
    )
    .unwrap();
    let a: &KubernetesConfig = c.sources[0].settings().unwrap();
    assert_eq!(
        a.kubeconfig.as_deref(),
        Some(dir.path().join("kc").as_path())
    );
    assert_eq!(
        a.context.as_deref(),
        Some("admin@prod"),
        "the current context"
    );
    assert_eq!(
        a.cluster_name, "admin@prod",
        "cluster_name defaults to the context"
    );
    let b: &KubernetesConfig = c.sources[1].settings().unwrap();
    assert_eq!(
        (b.context.as_deref(), b.cluster_name.as_str()),
        (Some("staging"), "eu-1")
    );
    let inc: &KubernetesConfig = c.sources[2].settings().unwrap();
    assert_eq!(
        (inc.kubeconfig.as_ref(), inc.cluster_name.as_str()),
        (None, "in-cluster")
    );
}

#[test]
fn kubernetes_errors_name_their_keys() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("kc"), KUBECONFIG).unwrap();
    std::fs::write(dir.path().join("bad"), "kube-canary-token: [").unwrap();
    std::fs::write(
        dir.path().join("nocur"),
        KUBECONFIG.replace("current-context: admin@prod\n", ""),
    )
    .unwrap();
    let cases = [
        (
            "{name: k, type: kubernetes, context: prod}",
            "sources[0].context: needs kubeconfig",
        ),
        (
            "{name: k, type: kubernetes, kubeconfig: kc, context: dev}",
            "sources[0].context: is not a context of",
        ),
        (
            "{name: k, type: kubernetes, kubeconfig: missing}",
            "sources[0].kubeconfig: cannot read",
        ),
        (
            "{name: k, type: kubernetes, kubeconfig: bad}",
            "sources[0].kubeconfig: cannot read",
        ),
        (
            "{name: k, type: kubernetes, kubeconfig: nocur}",
            "sources[0].context: is required",
        ),
        (
            "{name: k, type: kubernetes, kubeconfig: \"\"}",
            "sources[0].kubeconfig: must not be empty",
        ),
        (
            "{name: k, type: kubernetes, cluster_name: \"\"}",
            "sources[0].cluster_name: must be 1 to 128",
        ),
        ("{name: k, type: kubernetes, namespaces: [a]}", "sources[0]"),
    ];
    for (src, want) in cases {
        let yaml = format!("sources:\n  - {src}\n");
        let e = parse(&yaml, dir.path(), &env_of(&[]))
            .expect_err(src)
            .iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>();
        assert!(
            e.iter().any(|m| m.contains(want)),
            "{src}: {e:?} lacks {want}"
        );
        assert!(
            !e.iter().any(|m| m.contains("kube-canary-token")),
            "{e:?} quotes the kubeconfig"
        );
    }
    let e = errs("policy: {privileged: {kubernetes_roles: [\"\"]}}\n");
    assert!(
        e.iter()
            .any(|m| m.contains("policy.privileged.kubernetes_roles[0]: must not be empty")),
        "{e:?}"
    );
}
