//! AWS Organizations at scale against the real moto server (loopback):
//! ACCOUNTS member accounts (default 50) × USERS IAM users (default 200),
//! each user with one access key, the exporter's role in every account.
//! Times one first-ever poll of the whole organization (fresh source: no
//! sessions, no known credentials) at `concurrency` 1, 8 and 32, then a
//! steady-state poll at 8, and prints the upstream requests by API action
//! (counted by a reverse proxy in front of moto) and the peak RSS.
//!
//! Run: `cargo bench --bench aws_org` (needs moto_server: scripts/test.sh);
//! `ACCOUNTS=10 USERS=50 cargo bench --bench aws_org` for a quick look.

#[path = "../tests/common/moto.rs"]
mod moto;
mod support;
use support::Polled;

use moto::{in_account, CountingProxy, Moto, ACCOUNT};
use nhi_exporter::model::KnownCredential;
use nhi_exporter::sources::aws::{AwsConfig, AwsService, AwsSource, OrgConfig};
use std::time::{Duration, Instant};

const REGION: &str = "us-east-1";
const ROLE: &str = "nhi-exporter-read";
const SEED_CONCURRENCY: usize = 32;

async fn seed(moto: &Moto, accounts: usize, users: usize) {
    let t = Instant::now();
    let base = moto.sdk_config(REGION).await;
    let orgs = aws_sdk_organizations::Client::new(&base);
    orgs.create_organization()
        .feature_set(aws_sdk_organizations::types::OrganizationFeatureSet::All)
        .send()
        .await
        .expect("create organization");
    for a in 0..accounts {
        let out = orgs
            .create_account()
            .email(format!("acct-{a}@example.com"))
            .account_name(format!("acct-{a}"))
            .send()
            .await
            .expect("create account");
        let id = out
            .create_account_status()
            .and_then(|s| s.account_id())
            .expect("account id")
            .to_string();
        let iam = aws_sdk_iam::Client::new(&in_account(&base, &id).await);
        iam.create_role()
            .role_name(ROLE)
            .assume_role_policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"sts:AssumeRole"}]}"#)
            .send()
            .await
            .expect("create role");
        let mut set = tokio::task::JoinSet::new();
        for u in 0..users {
            if set.len() >= SEED_CONCURRENCY {
                set.join_next().await.expect("task").expect("seed task");
            }
            let iam = iam.clone();
            set.spawn(async move {
                let name = format!("svc-{u:04}");
                iam.create_user()
                    .user_name(&name)
                    .send()
                    .await
                    .expect("create user");
                iam.create_access_key()
                    .user_name(&name)
                    .send()
                    .await
                    .expect("create key");
            });
        }
        while let Some(r) = set.join_next().await {
            r.expect("seed task");
        }
    }
    println!(
        "seeded {accounts} accounts x {users} users (one key each) in {:.1}s",
        t.elapsed().as_secs_f64()
    );
}

fn source(endpoint: &str, concurrency: usize) -> AwsSource {
    AwsSource::new(AwsConfig {
        regions: vec![REGION.to_string()],
        services: vec![AwsService::Iam, AwsService::SecretsManager],
        assume_role_arn: None,
        endpoint_url: Some(endpoint.to_string()),
        organization: Some(OrgConfig {
            role_name: ROLE.into(),
            external_id: None,
            include: vec![glob::Pattern::new("*").expect("glob")],
            exclude: vec![glob::Pattern::new(ACCOUNT).expect("glob")],
            concurrency,
        }),
    })
}

async fn poll(src: &AwsSource, known: Vec<KnownCredential>) -> Polled {
    support::poll_inventory(src, "aws-org-bench", Duration::from_secs(3600), known).await
}

fn report(
    label: &str,
    proxy: &CountingProxy,
    took: Duration,
    scopes: usize,
    ids: usize,
    creds: usize,
) {
    println!(
        "{label}: {:.2}s wall, {scopes} scopes, {ids} identities, {creds} credentials, {} upstream requests",
        took.as_secs_f64(),
        proxy.total()
    );
    for (action, n) in proxy.counts() {
        println!("  {action:<32} {n}");
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let accounts = support::env_usize("ACCOUNTS", 50);
    let users = support::env_usize("USERS", 200);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let moto = Moto::start();
        seed(&moto, accounts, users).await;
        let proxy = CountingProxy::start(&moto.endpoint).await;
        let mut known = Vec::new();
        for concurrency in [1, 8, 32] {
            proxy.reset();
            let src = source(&proxy.endpoint, concurrency);
            let t = Instant::now();
            let Polled {
                known: k,
                scopes,
                identities: ids,
                credentials: creds,
            } = poll(&src, Vec::new()).await;
            report(
                &format!("first poll, concurrency {concurrency}"),
                &proxy,
                t.elapsed(),
                scopes,
                ids,
                creds,
            );
            known = k;
        }
        let src = source(&proxy.endpoint, 8);
        let _ = poll(&src, known.clone()).await;
        proxy.reset();
        let t = Instant::now();
        let Polled {
            scopes,
            identities: ids,
            credentials: creds,
            ..
        } = poll(&src, known).await;
        report(
            "steady-state poll, concurrency 8",
            &proxy,
            t.elapsed(),
            scopes,
            ids,
            creds,
        );
    });
    println!(
        "peak RSS of this process (seeding client, proxy and source): {} MiB",
        support::rss_kib("VmHWM:") / 1024
    );
}
