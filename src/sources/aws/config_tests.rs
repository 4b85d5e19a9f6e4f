//! Configuration tests of this source type: its keys, defaults and every
//! validation error, each naming its key path.

use super::*;
use crate::config::test_support::{errs, ok};

#[test]
fn aws_source() {
    let c = ok(r#"
sources:
  - name: a
    type: aws
    regions: [us-east-1, eu-west-1]
    assume_role_arn: arn:aws:iam::123456789012:role/nhi-exporter-read
    endpoint_url: http://127.0.0.1:5000
  - name: b
    type: aws
    regions: [us-gov-west-1]
    services: [secretsmanager]
"#);
    let a: &AwsConfig = c.sources[0].settings().unwrap();
    assert_eq!(a.regions, vec!["us-east-1", "eu-west-1"]);
    assert_eq!(
        a.services,
        vec![AwsService::Iam, AwsService::SecretsManager]
    );
    assert_eq!(a.endpoint_url.as_deref(), Some("http://127.0.0.1:5000"));
    let b: &AwsConfig = c.sources[1].settings().unwrap();
    assert_eq!(b.services, vec![AwsService::SecretsManager]);
    assert_eq!(b.assume_role_arn, None);
    let e = errs(
        r#"
sources:
  - name: a
    type: aws
    services: [iam, ec2]
    assume_role_arn: arn:aws:iam::1234:user/x
    endpoint_url: ftp://x
  - name: b
    type: aws
    regions: [Europe]
  - name: c
    type: aws
    region: us-east-1
"#,
    );
    let want = [
        "sources[0].regions: is required",
        "sources[0].services[1]: unknown service;",
        "sources[0].assume_role_arn: is not a role ARN",
        "sources[0].endpoint_url:",
        "sources[1].regions[0]: is not an AWS region",
        "sources[2].region: unknown key \"region\"",
    ];
    for w in want {
        assert!(e.iter().any(|m| m.contains(w)), "missing {w:?} in {e:#?}");
    }
}

#[test]
fn aws_organization() {
    let c = ok(r#"
sources:
  - name: org
    type: aws
    regions: [us-east-1]
    organization:
      role_name: nhi-exporter-read
      include: ["*"]
      exclude: ["111111111111", "sandbox-*"]
      concurrency: 16
      external_id: acme-nhi
  - name: defaults
    type: aws
    regions: [us-east-1]
    organization: {role_name: audit/nhi-exporter-read}
  - name: single
    type: aws
    regions: [us-east-1]
"#);
    let o = c.sources[0]
        .settings::<AwsConfig>()
        .unwrap()
        .organization
        .clone()
        .unwrap();
    assert_eq!(o.role_name, "nhi-exporter-read");
    assert_eq!(o.external_id.as_deref(), Some("acme-nhi"));
    let s = |v: &[glob::Pattern]| v.iter().map(|p| p.as_str().to_string()).collect::<Vec<_>>();
    assert_eq!(s(&o.include), ["*"]);
    assert_eq!(s(&o.exclude), ["111111111111", "sandbox-*"]);
    assert_eq!(o.concurrency, 16);
    let d = c.sources[1]
        .settings::<AwsConfig>()
        .unwrap()
        .organization
        .clone()
        .unwrap();
    assert_eq!(d.role_name, "audit/nhi-exporter-read");
    assert_eq!(
        (s(&d.include), d.exclude.len(), d.concurrency),
        (vec!["*".to_string()], 0, 8)
    );
    assert_eq!(d.external_id, None);
    assert_eq!(
        c.sources[2].settings::<AwsConfig>().unwrap().organization,
        None
    );

    let e = errs(
        r#"
sources:
  - name: a
    type: aws
    regions: [us-east-1]
    organization: {include: ["[abc"], concurrency: 0, external_id: "x", roles: r}
  - name: b
    type: aws
    regions: [us-east-1]
    organization: {role_name: "arn:aws:iam::1:role/x", concurrency: 65}
"#,
    );
    let want = [
        "sources[0].organization.roles: unknown key \"roles\"",
        "sources[1].organization.role_name: is not an IAM role name",
        "sources[1].organization.concurrency: must be between 1 and 64 accounts at a time, got 65",
    ];
    for w in want {
        assert!(e.iter().any(|m| m.contains(w)), "missing {w:?} in {e:#?}");
    }
    let e = errs(
        r#"
sources:
  - name: a
    type: aws
    regions: [us-east-1]
    organization: {include: ["[abc"], concurrency: 0, external_id: "x"}
"#,
    );
    let want = [
        "sources[0].organization.role_name: is required",
        "sources[0].organization.external_id: must be 2 to 1224 characters",
        "sources[0].organization.include[0]: is not a glob",
        "sources[0].organization.concurrency: must be between 1 and 64 accounts at a time, got 0",
    ];
    for w in want {
        assert!(e.iter().any(|m| m.contains(w)), "missing {w:?} in {e:#?}");
    }
}
