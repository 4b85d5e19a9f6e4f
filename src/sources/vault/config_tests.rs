//! Configuration tests of this source type: its keys, defaults and every
//! validation error, each naming its key path.

use super::*;
use crate::config::test_support::{env_of, errs, parse, write_ca};

#[test]
fn vault_source() {
    let dir = tempfile::tempdir().unwrap();
    let ca = write_ca(dir.path(), "ca.pem");
    let c = parse(
        r#"
sources:
  - name: v
    type: vault
    address: https://vault.example.com:8200/
    auth: {method: token, token: s.canary-token}
    kv_mounts: [secret, /team/kv/]
    match_values: true
    tls: {ca_file: ca.pem}
  - name: v2
    type: vault
    address: http://127.0.0.1:8200
    namespace: team-a/
    auth: {method: approle, role_id: rid, secret_id: sid}
"#,
        dir.path(),
        &env_of(&[]),
    )
    .unwrap();
    let v: &VaultConfig = c.sources[0].settings().unwrap();
    assert_eq!(v.address, "https://vault.example.com:8200");
    assert_eq!(v.kv_mounts, vec!["secret", "team/kv"]);
    assert!(v.match_values);
    assert_eq!(v.ca_file.as_deref(), Some(ca.as_path()));
    assert!(matches!(&v.auth, VaultAuth::Token(t) if t.expose() == "s.canary-token"));
    assert!(
        !format!("{v:?}").contains("canary"),
        "Debug hides the token"
    );
    let v2: &VaultConfig = c.sources[1].settings().unwrap();
    assert_eq!(v2.namespace, "team-a");
    assert!(v2.kv_mounts.is_empty() && !v2.match_values);
    assert!(
        matches!(&v2.auth, VaultAuth::AppRole { mount, role_id, secret_id }
            if mount == "approle" && role_id.expose() == "rid" && secret_id.expose() == "sid")
    );

    let e = errs(
        r#"
sources:
  - name: v
    type: vault
    auth: {method: approle, role_id: r, token: t}
    kv_mounts: ["bad path"]
  - name: w
    type: vault
    address: https://v
    auth: {method: kerberos}
  - name: x
    type: vault
    address: https://v
  - name: y
    type: vault
    address: https://v
    auth: {method: token, token: t}
    tls: {ca_file: /nonexistent/ca.pem}
"#,
    );
    let want = [
        "sources[0].address: is required",
        "sources[0].auth.token: is only for method: token",
        "sources[0].auth.secret_id: is required (or secret_id_file)",
        "sources[0].kv_mounts[0]: is not a mount path",
        "sources[1].auth.method: unknown method;",
        "sources[2].auth: is required",
        "sources[3].tls.ca_file: cannot read /nonexistent/ca.pem",
    ];
    for w in want {
        assert!(e.iter().any(|m| m.contains(w)), "missing {w:?} in {e:#?}");
    }
}
