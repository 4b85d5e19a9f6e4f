#!/usr/bin/env python3
"""Seed the demo stack's OpenBao dev server and moto server with a realistic
NHI estate, and later revoke what the story revokes. Fake secrets only.

  seed.py vault ADDR TOKEN            -> prints JSON facts
  seed.py aws ENDPOINT                -> prints JSON facts (leaked key ids)
  seed.py revoke ADDR TOKEN ENDPOINT KEY_ID
      deactivates the leaked AWS key and writes a new version of the leaked
      vault secret (the two confirmed revocations of the story).
  seed.py trufflehog DIR              -> a trufflehog report with a verified leak
  seed.py report DIR FACTS_JSON [--after]
      writes the gitleaks report of the leaks (--after: the residual leak
      was removed from the code, its finding closes)

Runs with the Python of the test virtualenv (moto[server] brings boto3 and
requests). Only loopback addresses are used.
"""
import json
import os
import sys

import requests

# The demo's leaked vault value: fake, and unique enough to be found.
LEAKED_VAULT_VALUE = "demo-db-password-3f9a1c7e5b"


def vault(addr, token, method, path, body=None):
    r = requests.request(
        method,
        f"{addr}/v1/{path}",
        headers={"X-Vault-Token": token},
        json=body,
        timeout=10,
    )
    if r.status_code >= 400:
        raise SystemExit(f"vault {method} {path}: HTTP {r.status_code}")
    return r.json() if r.content else {}


def seed_vault(addr, token):
    # KV v2 at secret/ exists on a dev server. Teams and rotation periods in
    # custom_metadata; one secret is the one that leaks.
    secrets = {
        "payments/db": ({"password": LEAKED_VAULT_VALUE}, {"team": "payments", "rotation_period": "30d"}),
        "payments/stripe": ({"api_key": "sk_test_demo_0001"}, {"team": "payments"}),
        "search/elastic": ({"password": "demo-elastic-0002"}, {"team": "search", "rotation_period": "90d"}),
        "platform/ci/deploy-key": ({"key": "demo-deploy-0003"}, {"team": "platform"}),
        "legacy/ftp": ({"password": "demo-ftp-0004"}, {}),
    }
    for path, (data, meta) in secrets.items():
        vault(addr, token, "POST", f"secret/data/{path}", {"data": data})
        vault(addr, token, "POST", f"secret/metadata/{path}", {"custom_metadata": meta})
    vault(addr, token, "PUT", "sys/policy/app-read", {"policy": 'path "secret/data/*" { capabilities = ["read"] }'})
    vault(addr, token, "PUT", "sys/policy/ops-admin", {"policy": 'path "*" { capabilities = ["sudo","read","list","create","update","delete"] }'})
    # Tokens: a forgotten root token without expiry (standing privileged),
    # an ops-admin token with a TTL, ordinary app tokens with team meta.
    vault(addr, token, "POST", "auth/token/create", {"policies": ["root"], "display_name": "legacy-automation", "meta": {"team": "platform"}})
    vault(addr, token, "POST", "auth/token/create", {"policies": ["ops-admin"], "ttl": "8h", "display_name": "oncall-break-glass", "meta": {"team": "platform"}})
    for team in ("payments", "search"):
        vault(addr, token, "POST", "auth/token/create", {"policies": ["app-read"], "ttl": "720h", "display_name": f"{team}-app", "meta": {"team": team}})
    # AppRoles: a CI role with admin policy and a never-expiring secret-id.
    vault(addr, token, "POST", "sys/auth/approle", {"type": "approle"})
    vault(addr, token, "POST", "auth/approle/role/ci-deployer", {"token_policies": ["ops-admin"], "secret_id_ttl": "0"})
    vault(addr, token, "POST", "auth/approle/role/batch-jobs", {"token_policies": ["app-read"], "secret_id_ttl": "24h"})
    vault(addr, token, "POST", "auth/approle/role/ci-deployer/secret-id", {})
    vault(addr, token, "POST", "auth/approle/role/batch-jobs/secret-id", {})
    # A human: userpass login.
    vault(addr, token, "POST", "sys/auth/userpass", {"type": "userpass"})
    vault(addr, token, "POST", "auth/userpass/users/alice", {"password": "demo-alice-pass", "policies": ["app-read"]})
    requests.post(f"{addr}/v1/auth/userpass/login/alice", json={"password": "demo-alice-pass"}, timeout=10)
    return {"vault_value": LEAKED_VAULT_VALUE}


def seed_aws(endpoint):
    import boto3

    kw = dict(
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
        aws_secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    )
    iam = boto3.client("iam", **kw)
    admin = "arn:aws:iam::aws:policy/AdministratorAccess"
    iam.create_group(GroupName="admins")
    iam.attach_group_policy(GroupName="admins", PolicyArn=admin)
    users = {
        "svc-payments-ci": ("payments", "admin-direct"),
        "svc-search-indexer": ("search", None),
        "svc-platform-terraform": ("platform", "admin-group"),
        "svc-legacy-backup": (None, "inline-star"),
        "svc-reporting": ("payments", None),
    }
    keys = {}
    for name, (team, priv) in users.items():
        tags = [{"Key": "team", "Value": team}] if team else []
        iam.create_user(UserName=name, Tags=tags)
        if priv == "admin-direct":
            iam.attach_user_policy(UserName=name, PolicyArn=admin)
        elif priv == "admin-group":
            iam.add_user_to_group(GroupName="admins", UserName=name)
        elif priv == "inline-star":
            doc = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
            iam.put_user_policy(UserName=name, PolicyName="everything", PolicyDocument=json.dumps(doc))
        keys[name] = iam.create_access_key(UserName=name)["AccessKey"]["AccessKeyId"]
    # A second key of the reporting service, deactivated long ago.
    old = iam.create_access_key(UserName="svc-reporting")["AccessKey"]["AccessKeyId"]
    iam.update_access_key(UserName="svc-reporting", AccessKeyId=old, Status="Inactive")
    # A human with a console password.
    iam.create_user(UserName="alice", Tags=[{"Key": "team", "Value": "platform"}])
    iam.create_login_profile(UserName="alice", Password="Demo-Alice-Pass-1")
    trust = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
    iam.create_role(RoleName="app-runtime", AssumeRolePolicyDocument=trust, Tags=[{"Key": "team", "Value": "search"}])
    iam.create_role(RoleName="break-glass-admin", AssumeRolePolicyDocument=trust)
    iam.attach_role_policy(RoleName="break-glass-admin", PolicyArn=admin)
    for region in ("us-east-1", "eu-west-1"):
        sm = boto3.client("secretsmanager", **{**kw, "region_name": region})
        sm.create_secret(Name=f"payments/api-{region}", SecretString="demo-secret-value", Tags=[{"Key": "team", "Value": "payments"}])
        sm.create_secret(Name=f"search/db-{region}", SecretString="demo-secret-value-2")
    return {
        # Leaked and later revoked; leaked and closed, never revoked.
        "revoked_key": keys["svc-payments-ci"],
        "residual_key": keys["svc-search-indexer"],
    }


def revoke(addr, token, endpoint, key_id):
    import boto3

    iam = boto3.client(
        "iam",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
        aws_secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    )
    iam.update_access_key(UserName="svc-payments-ci", AccessKeyId=key_id, Status="Inactive")
    vault(addr, token, "POST", "secret/data/payments/db", {"data": {"password": "demo-db-password-rotated-8d2b"}})


def finding(rule, secret, file, line, repo):
    commit = "9f8e7d6c5b4a39281706f5e4d3c2b1a098765432"
    return {
        "RuleID": rule, "Description": rule, "StartLine": line, "EndLine": line,
        "StartColumn": 1, "EndColumn": 40, "Match": f"{rule} = \"{secret}\"", "Secret": secret,
        "File": file, "SymlinkFile": "", "Commit": commit,
        "Link": f"https://git.example.com/acme/{repo}/blob/{commit}/{file}#L{line}",
        "Entropy": 4.0, "Author": "Demo Dev", "Email": "dev@example.com",
        "Date": "2026-11-01T10:00:00Z", "Message": "demo commit", "Tags": [],
        "Fingerprint": f"{commit}:{file}:{rule}:{line}",
    }


def report(directory, facts, after=False):
    """The latest scan of the payments-ci repository. `after`: the indexer
    key was removed from the code (its finding closes) but never revoked."""
    f = json.load(open(facts))
    leaks = [
        finding("aws-access-token", f["revoked_key"], "ci/deploy.env", 3, "payments-ci"),
        finding("generic-api-key", f["vault_value"], "db/migrate.sh", 7, "payments-ci"),
    ]
    if not after:
        leaks.append(finding("aws-access-token", f["residual_key"], "indexer/settings.py", 41, "payments-ci"))
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, ".payments-ci.json.tmp")
    json.dump(leaks, open(tmp, "w"))
    os.replace(tmp, os.path.join(directory, "payments-ci.json"))


def trufflehog(directory):
    """A trufflehog scan with one verified (live) leak: a fake test token."""
    line = {
        "SourceMetadata": {"Data": {"Git": {
            "commit": "4c3b2a1908f7e6d5c4b3a29180f7e6d5c4b3a291", "file": "web/checkout.js",
            "email": "Demo Dev <dev@example.com>", "repository": "https://git.example.com/acme/web.git",
            "timestamp": "2026-11-20 09:00:00 +0000", "line": 18}}},
        "SourceID": 1, "SourceType": 7, "SourceName": "trufflehog - git",
        "DetectorType": 17, "DetectorName": "Stripe", "DecoderName": "PLAIN",
        "Verified": True, "Raw": "sk_test_demo_verified_51f0e2d3", "Redacted": "sk_test_demo_****",
        "ExtraData": None, "StructuredData": None,
    }
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "web.jsonl"), "w") as fh:
        fh.write(json.dumps(line) + "\n")


def main(argv):
    cmd = argv[1] if len(argv) > 1 else ""
    if cmd == "vault":
        print(json.dumps(seed_vault(argv[2], argv[3])))
    elif cmd == "aws":
        print(json.dumps(seed_aws(argv[2])))
    elif cmd == "revoke":
        revoke(argv[2], argv[3], argv[4], argv[5])
    elif cmd == "trufflehog":
        trufflehog(argv[2])
    elif cmd == "report":
        report(argv[2], argv[3], after="--after" in argv)
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
