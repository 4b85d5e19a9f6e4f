//! Configuration tests of the `azure` source type: its keys, defaults and
//! every validation error, each naming its key path and never quoting a
//! secret.

use super::*;
use crate::config::test_support::{env_of, parse};

const TENANT: &str = "00000000-0000-0000-0000-0000000000aa";
const CLIENT: &str = "11111111-1111-1111-1111-111111111111";
const SUB: &str = "22222222-2222-2222-2222-222222222222";
const CANARY: &str = "azure-config-canary-8Q~secret";

fn settings(yaml: &str, dir: &std::path::Path) -> AzureConfig {
    let c = parse(yaml, dir, &env_of(&[])).unwrap_or_else(|e| panic!("{e:?}"));
    c.sources[0]
        .settings::<AzureConfig>()
        .expect("azure settings")
        .clone()
}

#[test]
fn azure_sources_and_defaults() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("secret"), format!("{CANARY}\n")).unwrap();
    std::fs::write(dir.path().join("federated"), "jwt").unwrap();
    let a = settings(
        &format!(
            "sources:\n  - name: a\n    type: azure\n    tenant_id: {}\n    auth: {{method: client_secret, client_id: {CLIENT}, client_secret_file: secret}}\n    subscriptions: [{SUB}, {SUB}]\n    key_vaults: [https://acme-prod.vault.azure.net/]\n    match_values: true\n",
            TENANT.to_uppercase()
        ),
        dir.path(),
    );
    assert_eq!(a.tenant_id, TENANT, "GUIDs are kept lower-case");
    match &a.auth {
        AzureAuth::ClientSecret { client_id, secret } => {
            assert_eq!(client_id, CLIENT);
            assert_eq!(secret.expose(), CANARY, "the file's content, trimmed");
        }
        other => panic!("{other:?}"),
    }
    assert!(
        !format!("{a:?}").contains(CANARY),
        "Debug never shows the secret"
    );
    assert_eq!(a.subscriptions, [SUB], "duplicates dropped");
    assert_eq!(a.key_vaults, ["https://acme-prod.vault.azure.net"]);
    assert!(a.match_values);
    assert_eq!(a.endpoints, Endpoints::default());
    assert_eq!(a.endpoints.graph, "https://graph.microsoft.com");

    let w = settings(
        &format!(
            "sources:\n  - name: w\n    type: azure\n    tenant_id: contoso.onmicrosoft.com\n    auth: {{method: workload_identity, client_id: {CLIENT}, token_file: federated}}\n    endpoints: {{login: 'http://127.0.0.1:1/', graph: 'http://127.0.0.1:2', arm: 'http://127.0.0.1:3', key_vault_resource: 'https://vault.azure.cn', managed_identity: 'http://127.0.0.1:4/token'}}\n"
        ),
        dir.path(),
    );
    assert_eq!(w.tenant_id, "contoso.onmicrosoft.com");
    assert_eq!(
        w.auth,
        AzureAuth::WorkloadIdentity {
            client_id: CLIENT.into(),
            token_file: dir.path().join("federated")
        }
    );
    assert_eq!(
        w.endpoints,
        Endpoints {
            login: "http://127.0.0.1:1".into(),
            graph: "http://127.0.0.1:2".into(),
            arm: "http://127.0.0.1:3".into(),
            key_vault_resource: "https://vault.azure.cn".into(),
            managed_identity: "http://127.0.0.1:4/token".into(),
        }
    );
    assert!(w.subscriptions.is_empty() && w.key_vaults.is_empty() && !w.match_values);

    let m = settings(
        &format!("sources:\n  - {{name: m, type: azure, tenant_id: {TENANT}, auth: {{method: managed_identity}}}}\n"),
        dir.path(),
    );
    assert_eq!(m.auth, AzureAuth::ManagedIdentity { client_id: None });
}

#[test]
fn azure_errors_name_their_keys_and_never_quote_values() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("empty"), "\n").unwrap();
    let ok_auth = format!("{{method: client_secret, client_id: {CLIENT}, client_secret: s}}");
    let cases = [
        (format!("{{name: z, type: azure, auth: {ok_auth}}}"), "sources[0].tenant_id: is required"),
        (format!("{{name: z, type: azure, tenant_id: '{CANARY}', auth: {ok_auth}}}"), "sources[0].tenant_id: must be the directory (tenant) id"),
        (format!("{{name: z, type: azure, tenant_id: {TENANT}}}"), "sources[0].auth: is required"),
        (format!("{{name: z, type: azure, tenant_id: {TENANT}, auth: {{method: password}}}}"), "sources[0].auth.method: must be client_secret, workload_identity or managed_identity"),
        (format!("{{name: z, type: azure, tenant_id: {TENANT}, auth: {{method: client_secret, client_secret: s}}}}"), "sources[0].auth.client_id: is required"),
        (format!("{{name: z, type: azure, tenant_id: {TENANT}, auth: {{method: client_secret, client_id: '{CANARY}', client_secret: s}}}}"), "sources[0].auth.client_id: must be the application (client) id as a GUID"),
        (format!("{{name: z, type: azure, tenant_id: {TENANT}, auth: {{method: client_secret, client_id: {CLIENT}}}}}"), "sources[0].auth.client_secret: is required (or client_secret_file)"),
        (format!("{{name: z, type: azure, tenant_id: {TENANT}, auth: {{method: client_secret, client_id: {CLIENT}, client_secret: '{CANARY}', client_secret_file: f}}}}"), "sources[0].auth.client_secret: set either client_secret or client_secret_file"),
        (format!("{{name: z, type: azure, tenant_id: {TENANT}, auth: {{method: client_secret, client_id: {CLIENT}, client_secret_file: empty}}}}"), "sources[0].auth.client_secret_file:"),
        (format!("{{name: z, type: azure, tenant_id: {TENANT}, auth: {{method: managed_identity, client_secret: '{CANARY}'}}}}"), "sources[0].auth.client_secret: is only for method client_secret"),
        (format!("{{name: z, type: azure, tenant_id: {TENANT}, auth: {{method: managed_identity, token_file: t}}}}"), "sources[0].auth.token_file: is only for method workload_identity"),
        (format!("{{name: z, type: azure, tenant_id: {TENANT}, auth: {ok_auth}, subscriptions: [prod]}}"), "sources[0].subscriptions[0]: must be the subscription id as a GUID"),
        (format!("{{name: z, type: azure, tenant_id: {TENANT}, auth: {ok_auth}, key_vaults: ['https://u:{CANARY}@kv.example']}}"), "sources[0].key_vaults[0]:"),
        (format!("{{name: z, type: azure, tenant_id: {TENANT}, auth: {ok_auth}, endpoints: {{graph: ftp://x}}}}"), "sources[0].endpoints.graph:"),
        (format!("{{name: z, type: azure, tenant_id: {TENANT}, auth: {ok_auth}, endpoints: {{storage: 'https://x'}}}}"), "sources[0].endpoints"),
        (format!("{{name: z, type: azure, tenant_id: {TENANT}, auth: {ok_auth}, vaults: []}}"), "sources[0]"),
    ];
    for (src, want) in cases {
        let yaml = format!("sources:\n  - {src}\n");
        let e = parse(&yaml, dir.path(), &env_of(&[]))
            .expect_err(&src)
            .iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>();
        assert!(
            e.iter().any(|m| m.contains(want)),
            "{src}: {e:?} lacks {want}"
        );
        assert!(
            !e.iter().any(|m| m.contains(CANARY)),
            "{e:?} quotes a value"
        );
    }
}
