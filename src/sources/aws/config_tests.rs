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
        "sources[0].services[1]: unknown service \"ec2\"",
        "sources[0].assume_role_arn: \"arn:aws:iam::1234:user/x\" is not a role ARN",
        "sources[0].endpoint_url:",
        "sources[1].regions[0]: \"Europe\" is not an AWS region",
        "sources[2].region: unknown key \"region\"",
    ];
    for w in want {
        assert!(e.iter().any(|m| m.contains(w)), "missing {w:?} in {e:#?}");
    }
}
