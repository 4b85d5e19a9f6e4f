//! AWS source at scale against the real moto server (loopback): 5,000 IAM
//! users with 10,000 access keys and 2,000 Secrets Manager secrets. Times
//! one full poll (first ever, then steady state with the known
//! credentials) and prints the upstream requests by API action, counted by
//! a reverse proxy in front of moto.
//!
//! Run: `cargo bench --bench aws` (needs moto_server: scripts/test.sh).

#[path = "../tests/common/moto.rs"]
mod moto;
mod support;
use support::Polled;

use moto::{CountingProxy, Moto};
use nhi_exporter::model::KnownCredential;
use nhi_exporter::sources::aws::AwsSource;
use nhi_exporter::sources::aws::{AwsConfig, AwsService};
use std::future::Future;
use std::time::{Duration, Instant};

const USERS: usize = 5_000;
const KEYS_PER_USER: usize = 2;
const SECRETS: usize = 2_000;
const SEED_CONCURRENCY: usize = 32;
const REGION: &str = "us-east-1";

/// Run `f(i)` for `0..n` with bounded concurrency.
async fn concurrently<F, Fut>(n: usize, f: F)
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut set = tokio::task::JoinSet::new();
    for i in 0..n {
        if set.len() >= SEED_CONCURRENCY {
            set.join_next().await.expect("task").expect("seed task");
        }
        set.spawn(f(i));
    }
    while let Some(r) = set.join_next().await {
        r.expect("seed task");
    }
}

async fn seed(moto: &Moto) {
    let conf = moto.sdk_config(REGION).await;
    let iam = aws_sdk_iam::Client::new(&conf);
    let sm = aws_sdk_secretsmanager::Client::new(&conf);
    let t = Instant::now();
    concurrently(USERS, |i| {
        let iam = iam.clone();
        async move {
            let name = format!("svc-{i:05}");
            iam.create_user()
                .user_name(&name)
                .tags(
                    aws_sdk_iam::types::Tag::builder()
                        .key("team")
                        .value(format!("team-{}", i % 20))
                        .build()
                        .expect("tag"),
                )
                .send()
                .await
                .expect("create user");
            for _ in 0..KEYS_PER_USER {
                iam.create_access_key()
                    .user_name(&name)
                    .send()
                    .await
                    .expect("create key");
            }
        }
    })
    .await;
    concurrently(SECRETS, |i| {
        let sm = sm.clone();
        async move {
            sm.create_secret()
                .name(format!("app/secret-{i:05}"))
                .secret_string("bench-value")
                .send()
                .await
                .expect("create secret");
        }
    })
    .await;
    println!(
        "seeded {USERS} users, {} access keys, {SECRETS} secrets in {:.1}s",
        USERS * KEYS_PER_USER,
        t.elapsed().as_secs_f64()
    );
}

async fn poll(src: &AwsSource, known: Vec<KnownCredential>) -> Polled {
    support::poll_inventory(src, "aws-bench", Duration::from_secs(1800), known).await
}

fn report(label: &str, proxy: &CountingProxy, took: Duration, ids: usize, creds: usize) {
    println!(
        "{label}: {:.2}s wall, {ids} identities, {creds} credentials, {} upstream requests",
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
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let moto = Moto::start();
        seed(&moto).await;
        let proxy = CountingProxy::start(&moto.endpoint).await;
        let src = AwsSource::new(AwsConfig {
            regions: vec![REGION.to_string()],
            services: vec![AwsService::Iam, AwsService::SecretsManager],
            assume_role_arn: None,
            endpoint_url: Some(proxy.endpoint.clone()),
            organization: None,
        });

        let t = Instant::now();
        let Polled {
            known,
            identities: ids,
            credentials: creds,
            ..
        } = poll(&src, Vec::new()).await;
        report("first poll", &proxy, t.elapsed(), ids, creds);

        proxy.reset();
        let t = Instant::now();
        let Polled {
            identities: ids,
            credentials: creds,
            ..
        } = poll(&src, known).await;
        report("steady-state poll", &proxy, t.elapsed(), ids, creds);
    });
    println!(
        "peak RSS of this process (seeding client and source): {} MiB",
        support::rss_kib("VmHWM:") / 1024
    );
}
